//! The JIT's passes one at a time, through the backend seam ([`Passes`]) as the executor calls
//! them: for tests that compare single passes with the interpreter's.

#![allow(dead_code)]

use ndarray::{ArrayViewD, ArrayViewMutD};

use multiproj_compiler::Plan;
use multiproj_runtime::backend::{Passes, Work};
use multiproj_runtime::jit::Jit;
use multiproj_runtime::progress::Ticker;
use multiproj_runtime::solve::GroupAction;
use multiproj_runtime::{DataError, Element};

/// The reduce pass of `jit`.
pub fn reduce_with<T: Element>(
    jit: &Jit,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<Vec<f64>, DataError> {
    let k = jit.prepare(plan, Work::all(plan))?;
    jit.reduce(&k, plan, x, ticker)
}

/// The threshold pass of `jit`.
pub fn threshold_with<T: Element>(
    jit: &Jit,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    actions: &mut [GroupAction],
    ticker: &Ticker<'_>,
) -> Result<(), DataError> {
    let k = jit.prepare(plan, Work::all(plan))?;
    jit.threshold(&k, plan, x, actions, ticker)
}

/// The apply pass of `jit`, out of place.
pub fn apply_with<T: Element>(
    jit: &Jit,
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<(), DataError> {
    let k = jit.prepare(plan, Work::all(plan))?;
    jit.apply(&k, plan, actions, x, out, ticker)
}

/// The apply pass of `jit`, in place.
pub fn apply_in_place_with<T: Element>(
    jit: &Jit,
    plan: &Plan,
    actions: &[GroupAction],
    data: &mut ArrayViewMutD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<(), DataError> {
    let k = jit.prepare(plan, Work::all(plan))?;
    jit.apply_in_place(&k, plan, actions, data, ticker)
}

/// The global JIT's reduce pass.
pub fn reduce<T: Element>(plan: &Plan, x: &ArrayViewD<'_, T>) -> Result<Vec<f64>, DataError> {
    reduce_with(multiproj_runtime::jit::global()?, plan, x, &Ticker::none())
}

/// The global JIT's threshold pass.
pub fn threshold<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    actions: &mut [GroupAction],
) -> Result<(), DataError> {
    threshold_with(
        multiproj_runtime::jit::global()?,
        plan,
        x,
        actions,
        &Ticker::none(),
    )
}

/// The global JIT's apply pass, out of place.
pub fn apply<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    apply_with(
        multiproj_runtime::jit::global()?,
        plan,
        actions,
        x,
        out,
        &Ticker::none(),
    )
}
