//! The interpreter backend: the oracle every other backend is tested against.
//!
//! It runs the three passes over the data of a [`Plan`] — reduce, threshold, apply — with plain
//! ndarray iteration, so a reviewer can check it against DESIGN §2 line by line. It walks the
//! tensor in the plan's memory order (axes permuted by `plan.memory_order`) and maps every
//! element to its innermost group with `plan.group_strides`. Only the apply pass runs in
//! parallel: it writes each element once from read-only per-group parameters, so the result
//! does not depend on the number of threads. The reduce pass is serial on purpose: summing in
//! one fixed order keeps the oracle deterministic.

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Dimension, IxDyn};
use rayon::prelude::*;

use multiproj_compiler::{Norm, Plan};

use crate::balls;
use crate::element::Element;
use crate::error::DataError;
use crate::solve::GroupAction;

/// Group index of the element at logical index `idx`.
#[inline]
fn group_of(plan: &Plan, idx: &[usize]) -> usize {
    idx.iter()
        .zip(&plan.group_strides)
        .map(|(&i, &s)| i * s)
        .sum()
}

/// Visits every element in memory order with its logical index.
fn for_each_in_memory_order<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    mut f: impl FnMut(&[usize], T) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let walk = x.view().permuted_axes(IxDyn(&plan.memory_order));
    let mut logical = vec![0usize; plan.memory_order.len()];
    for (idx, &y) in walk.indexed_iter() {
        for (p, &a) in plan.memory_order.iter().enumerate() {
            logical[a] = idx[p];
        }
        f(&logical, y)?;
    }
    Ok(())
}

/// The reduce pass: the innermost norm of every group (`V_{k-1}`), in f64. Fails on the first
/// NaN or infinity, naming its index, before anything is written anywhere.
pub fn reduce<T: Element>(plan: &Plan, x: &ArrayViewD<'_, T>) -> Result<Vec<f64>, DataError> {
    let norm = plan.innermost().norm;
    let mut acc = vec![0.0f64; plan.groups];
    for_each_in_memory_order(plan, x, |idx, y| {
        let y = y.to_f64();
        if !y.is_finite() {
            return Err(DataError::NonFinite {
                index: idx.to_vec(),
                value: y,
            });
        }
        let a = &mut acc[group_of(plan, idx)];
        match norm {
            Norm::L1 => *a += y.abs(),
            Norm::L2 => *a += y * y,
            Norm::Linf => *a = a.max(y.abs()),
        }
        Ok(())
    })?;
    if norm == Norm::L2 {
        acc.iter_mut().for_each(|a| *a = a.sqrt());
    }
    Ok(acc)
}

/// The threshold stage (innermost l1): for every group marked
/// [`GroupAction::NeedsThreshold`], gathers its entries and computes the soft threshold `τ`.
pub fn threshold<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    actions: &mut [GroupAction],
) -> Result<(), DataError> {
    if !actions
        .iter()
        .any(|a| matches!(a, GroupAction::NeedsThreshold(_)))
    {
        return Ok(());
    }
    let mut members: Vec<Vec<f64>> = actions
        .iter()
        .map(|a| match a {
            GroupAction::NeedsThreshold(_) => Vec::with_capacity(plan.group_len),
            _ => Vec::new(),
        })
        .collect();
    for_each_in_memory_order(plan, x, |idx, y| {
        let g = group_of(plan, idx);
        if let GroupAction::NeedsThreshold(_) = actions[g] {
            members[g].push(y.to_f64());
        }
        Ok(())
    })?;
    for (action, values) in actions.iter_mut().zip(&members) {
        if let GroupAction::NeedsThreshold(r) = *action {
            *action = GroupAction::Shrink(balls::l1_threshold(values, r));
        }
    }
    Ok(())
}

fn check_ready(actions: &[GroupAction]) -> Result<(), DataError> {
    if actions
        .iter()
        .any(|a| matches!(a, GroupAction::NeedsThreshold(_)))
    {
        return Err(DataError::Internal(
            "apply pass reached with a group whose l1 threshold was never computed".into(),
        ));
    }
    Ok(())
}

/// Group index of the element at `[i0, rest...]`.
#[inline]
fn group_of_split(plan: &Plan, i0: usize, rest: &[usize]) -> usize {
    i0 * plan.group_strides[0] + group_of_rest(plan, rest)
}

#[inline]
fn group_of_rest(plan: &Plan, rest: &[usize]) -> usize {
    rest.iter()
        .zip(&plan.group_strides[1..])
        .map(|(&i, &s)| i * s)
        .sum()
}

/// The element after applying its group's action, computed in f64 and rounded once.
#[inline]
fn applied<T: Element>(action: GroupAction, y: T) -> T {
    match action {
        GroupAction::Keep => y,
        GroupAction::Zero => T::zero(),
        a => T::from_f64(crate::solve::apply_one(a, y.to_f64())),
    }
}

/// The apply pass, out of place: writes every element of `out` (same shape as `x`). Runs in
/// parallel over the first axis; every element is written once from read-only parameters.
pub fn apply<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    check_ready(actions)?;
    if out.shape() != x.shape() {
        return Err(DataError::ShapeMismatch {
            expected: x.shape().to_vec(),
            found: out.shape().to_vec(),
        });
    }
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(x.axis_iter(Axis(0)).into_par_iter())
        .enumerate()
        .for_each(|(i0, (mut o, xi))| {
            for ((rest, o), &y) in o.indexed_iter_mut().zip(xi.iter()) {
                *o = applied(actions[group_of_split(plan, i0, rest.slice())], y);
            }
        });
    Ok(())
}

/// The apply pass, in place: groups that are kept are not written at all.
pub fn apply_in_place<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    data: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    check_ready(actions)?;
    data.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i0, mut d)| {
            for (rest, y) in d.indexed_iter_mut() {
                let action = actions[group_of_split(plan, i0, rest.slice())];
                if action != GroupAction::Keep {
                    *y = applied(action, *y);
                }
            }
        });
    Ok(())
}

/// Number of non-zero entries (for statistics).
pub fn count_nonzeros<T: Element>(x: &ArrayViewD<'_, T>) -> usize {
    x.iter().filter(|&&y| y != T::zero()).count()
}
