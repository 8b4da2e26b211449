//! The interpreter backend: the oracle every other backend is tested against.
//!
//! It runs the three passes over the data of a [`Plan`] — reduce, threshold, apply — with plain
//! ndarray iteration, so a reviewer can check it against DESIGN §2 line by line. It walks the
//! tensor in the plan's memory order (axes permuted by `plan.memory_order`) and maps every
//! element to its innermost group with `plan.group_strides`. Only the apply pass runs in
//! parallel: it writes each element once from read-only per-group parameters, so the result
//! does not depend on the number of threads. The reduce pass is serial on purpose: summing in
//! one fixed order keeps the oracle deterministic.
//!
//! The `*_ticked` forms report progress to a [`Ticker`]: the serial walks every
//! [`TICK_ELEMENTS`] elements, the apply pass after every index of the first axis.

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Dimension, IxDyn};
use rayon::prelude::*;

use multiproj_compiler::{Norm, Plan};

use crate::balls;
use crate::element::Element;
use crate::error::DataError;
use crate::progress::Ticker;
use crate::solve::GroupAction;

/// How many elements the serial walks visit between two progress ticks.
pub const TICK_ELEMENTS: usize = 1 << 16;

/// Group index of the element at logical index `idx`.
#[inline]
fn group_of(plan: &Plan, idx: &[usize]) -> usize {
    idx.iter()
        .zip(&plan.group_strides)
        .map(|(&i, &s)| i * s)
        .sum()
}

/// Visits every element in memory order with its logical index, ticking `ticker` every
/// [`TICK_ELEMENTS`] elements and once more at the end.
fn for_each_in_memory_order<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
    mut f: impl FnMut(&[usize], T) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let walk = x.view().permuted_axes(IxDyn(&plan.memory_order));
    let mut logical = vec![0usize; plan.memory_order.len()];
    let mut pending = 0;
    for (idx, &y) in walk.indexed_iter() {
        for (p, &a) in plan.memory_order.iter().enumerate() {
            logical[a] = idx[p];
        }
        f(&logical, y)?;
        pending += 1;
        if pending == TICK_ELEMENTS {
            ticker.tick(pending);
            pending = 0;
        }
    }
    if pending > 0 {
        ticker.tick(pending);
    }
    Ok(())
}

/// The reduce pass: the innermost norm of every group (`V_{k-1}`), in f64. Fails on the first
/// NaN or infinity, naming its index, before anything is written anywhere.
pub fn reduce<T: Element>(plan: &Plan, x: &ArrayViewD<'_, T>) -> Result<Vec<f64>, DataError> {
    reduce_ticked(plan, x, &Ticker::none())
}

/// [`reduce`], reporting progress to `ticker`.
pub fn reduce_ticked<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<Vec<f64>, DataError> {
    reduce_scaled(plan, x, ticker, 0)
}

/// [`reduce_ticked`] of the tensor scaled by `2^-exp` (exactly, up to entries that fall below
/// the normal range): the group norms of a tensor whose norms overflow f64 unscaled (see
/// `solve::Aggregates::scale_exp`).
pub fn reduce_scaled<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
    exp: i32,
) -> Result<Vec<f64>, DataError> {
    let down = 2f64.powi(-exp);
    let norm = plan.innermost().norm;
    let mut acc = vec![0.0f64; plan.groups];
    // For l2 also the largest magnitude, to notice a sum of squares that over- or underflowed.
    let mut max = vec![0.0f64; if norm == Norm::L2 { plan.groups } else { 0 }];
    for_each_in_memory_order(plan, x, ticker, |idx, y| {
        let y = y.to_f64();
        if !y.is_finite() {
            return Err(DataError::NonFinite {
                index: idx.to_vec(),
                value: y,
            });
        }
        let g = group_of(plan, idx);
        let y = y * down;
        match norm {
            Norm::L1 => acc[g] += y.abs(),
            Norm::L2 => {
                acc[g] += y * y;
                max[g] = max[g].max(y.abs());
            }
            Norm::Linf => acc[g] = acc[g].max(y.abs()),
        }
        Ok(())
    })?;
    if norm == Norm::L2 {
        finish_l2_scaled(plan, x, &mut acc, &max, down);
    }
    Ok(acc)
}

/// Whether a sum of squares has lost the l2 norm of a group whose largest magnitude is `max`:
/// it overflowed (entries beyond ~1e154) or fell below the normal range (entries below ~1e-154).
pub fn sum_of_squares_lost(sum: f64, max: f64) -> bool {
    !sum.is_finite() || (sum < f64::MIN_POSITIVE && max > 0.0)
}

/// Turns per-group sums of squares into l2 norms. Groups whose sum lost the norm (see
/// [`sum_of_squares_lost`]) — rare, so a second look at their data costs nothing in practice —
/// are recomputed from their entries with [`balls::norm_l2`], which rescales.
pub fn finish_l2<T: Element>(plan: &Plan, x: &ArrayViewD<'_, T>, acc: &mut [f64], max: &[f64]) {
    finish_l2_scaled(plan, x, acc, max, 1.0);
}

/// [`finish_l2`] for sums of the squares of the entries times `scale` (a power of two).
fn finish_l2_scaled<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    acc: &mut [f64],
    max: &[f64],
    scale: f64,
) {
    let redo: Vec<bool> = acc
        .iter()
        .zip(max)
        .map(|(&s, &m)| sum_of_squares_lost(s, m))
        .collect();
    for (a, &r) in acc.iter_mut().zip(&redo) {
        if !r {
            *a = a.sqrt();
        }
    }
    if !redo.contains(&true) {
        return;
    }
    let mut members: Vec<Vec<f64>> = vec![Vec::new(); acc.len()];
    // Cannot fail: the closure never returns an error.
    let _ = for_each_in_memory_order(plan, x, &Ticker::none(), |idx, y| {
        let g = group_of(plan, idx);
        if redo[g] {
            members[g].push(y.to_f64() * scale);
        }
        Ok(())
    });
    for (g, values) in members.iter().enumerate() {
        if redo[g] {
            acc[g] = balls::norm_l2(values);
        }
    }
}

/// The threshold stage (innermost l1): for every group marked
/// [`GroupAction::NeedsThreshold`], gathers its entries and computes the soft threshold `τ`.
pub fn threshold<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    actions: &mut [GroupAction],
) -> Result<(), DataError> {
    threshold_ticked(plan, x, actions, &Ticker::none())
}

/// [`threshold`], reporting progress to `ticker` (the gathering walk; nothing when no group
/// needs a threshold).
pub fn threshold_ticked<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    actions: &mut [GroupAction],
    ticker: &Ticker<'_>,
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
    for_each_in_memory_order(plan, x, ticker, |idx, y| {
        let g = group_of(plan, idx);
        if let GroupAction::NeedsThreshold(_) = actions[g] {
            members[g].push(y.to_f64());
        }
        Ok(())
    })?;
    let mut scratch = Vec::new();
    for (action, values) in actions.iter_mut().zip(&members) {
        if let GroupAction::NeedsThreshold(r) = *action {
            // A backend that summed the group in another order may have seen its norm a
            // rounding error above `r`; summed here, in gathering order, it may be inside. Then
            // no positive threshold exists and the projection is the identity.
            *action = match balls::l1_group_threshold(values, r, &mut scratch) {
                None => GroupAction::Keep,
                Some(t) => GroupAction::Shrink(t),
            };
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
    apply_ticked(plan, actions, x, out, &Ticker::none())
}

/// [`apply`], reporting progress to `ticker` after every index of the first axis.
pub fn apply_ticked<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
    ticker: &Ticker<'_>,
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
            ticker.tick(xi.len());
        });
    Ok(())
}

/// The apply pass, in place: groups that are kept are not written at all.
pub fn apply_in_place<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    data: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    apply_in_place_ticked(plan, actions, data, &Ticker::none())
}

/// [`apply_in_place`], reporting progress to `ticker` after every index of the first axis.
pub fn apply_in_place_ticked<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    data: &mut ArrayViewMutD<'_, T>,
    ticker: &Ticker<'_>,
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
            ticker.tick(d.len());
        });
    Ok(())
}

/// Number of non-zero entries (for statistics).
pub fn count_nonzeros<T: Element>(x: &ArrayViewD<'_, T>) -> usize {
    x.iter().filter(|&&y| y != T::zero()).count()
}
