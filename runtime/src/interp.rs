//! The interpreter backend: the oracle every other backend is tested against.
//!
//! It runs the three passes over the data of a [`Plan`] — reduce, threshold, apply — with plain
//! ndarray iteration, so a reviewer can check it against `docs/SEMANTICS.md` line by line. It walks the
//! tensor in the plan's memory order (axes permuted by `plan.schedule().memory_order()`) and maps every
//! element to its innermost group with `plan.group_strides()`. Only the apply pass runs in
//! parallel: it writes each element once from read-only per-group parameters, so the result
//! does not depend on the number of threads. The reduce pass is serial on purpose, and adds up
//! every group in the JIT's order (`SumOrder`): both backends then compute the same norms and
//! decide "inside the ball" from the same numbers.
//!
//! Through [`crate::Interpreter`] (the backend seam), the passes report progress to a
//! [`Ticker`]: the serial walks every
//! `TICK_ELEMENTS` elements, the apply pass after every index of the first axis.

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Dimension, IxDyn};
use rayon::prelude::*;

use multiproj_compiler::{Norm, PassKind, Plan};

use crate::balls;
use crate::element::Element;
use crate::error::DataError;
use crate::progress::Ticker;
use crate::solve::{self, GroupAction};

/// How many elements the serial walks visit between two progress ticks.
pub(crate) const TICK_ELEMENTS: usize = 1 << 16;

/// Group index of the element at logical index `idx`.
#[inline]
fn group_of(plan: &Plan, idx: &[usize]) -> usize {
    idx.iter()
        .zip(plan.group_strides())
        .map(|(&i, &s)| i * s)
        .sum()
}

/// Visits every element in memory order with its logical index, ticking `ticker` every
/// [`TICK_ELEMENTS`] elements and once more at the end. Memory order is the order of the
/// addresses, as the JIT's loop nest walks them: axes by decreasing |stride|, and an axis with a
/// negative stride from its last index to its first.
fn for_each_in_memory_order<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
    mut f: impl FnMut(&[usize], T) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let order = plan.schedule().memory_order();
    let mut walk = x.view().permuted_axes(IxDyn(order));
    let flipped: Vec<bool> = order
        .iter()
        .map(|&a| plan.tensor().strides[a] < 0)
        .collect();
    for (p, &flip) in flipped.iter().enumerate() {
        if flip {
            walk.invert_axis(Axis(p));
        }
    }
    let shape = x.shape();
    let mut logical = vec![0usize; order.len()];
    let mut pending = 0;
    for (idx, &y) in walk.indexed_iter() {
        for (p, &a) in order.iter().enumerate() {
            logical[a] = if flipped[p] {
                shape[a] - 1 - idx[p]
            } else {
                idx[p]
            };
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
pub(crate) fn reduce_ticked<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<Vec<f64>, DataError> {
    reduce_scaled(plan, x, ticker, 0)
}

/// The reduce pass ([`reduce`], with progress) of the tensor scaled by `2^-exp` (exactly, up to entries that fall below
/// the normal range): the group norms of a tensor whose norms overflow f64 unscaled (see
/// `solve::Aggregates::scale_exp`).
///
/// Sums (l1, l2) are formed in the order of `SumOrder`, which is the JIT's, so that both
/// backends compute every group norm — hence every norm and every "inside the ball" decision
/// — bit for bit the same.
pub(crate) fn reduce_scaled<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
    exp: i32,
) -> Result<Vec<f64>, DataError> {
    let down = 2f64.powi(-exp);
    let norm = plan.innermost().norm;
    let order = SumOrder::new(plan, x.len());
    let mut acc = vec![0.0f64; plan.groups()];
    // A chunk's own sums, added to `acc` at its end, when chunks share groups.
    let mut part = vec![0.0f64; if order.partials { plan.groups() } else { 0 }];
    let mut run: Vec<f64> = Vec::new();
    // For l2 also the largest magnitude, to notice a sum of squares that over- or underflowed.
    let mut max = vec![0.0f64; if norm == Norm::L2 { plan.groups() } else { 0 }];
    let mut pos = 0usize;
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
        let term = match norm {
            Norm::L1 => y.abs(),
            Norm::L2 => {
                max[g] = max[g].max(y.abs());
                y * y
            }
            Norm::Linf => {
                acc[g] = acc[g].max(y.abs());
                pos += 1;
                return Ok(());
            }
        };
        let sums = if order.partials { &mut part } else { &mut acc };
        if order.rows {
            run.push(term);
            if order.run_ends(pos) {
                sums[g] += run_sum(&run, order.vector);
                run.clear();
            }
        } else {
            sums[g] += term;
        }
        if order.partials && order.chunk_ends(pos) {
            for (a, p) in acc.iter_mut().zip(part.iter_mut()) {
                *a += *p;
                *p = 0.0;
            }
        }
        pos += 1;
        Ok(())
    })?;
    if norm == Norm::L2 {
        finish_l2_scaled(plan, x, &mut acc, &max, down);
    }
    Ok(acc)
}

/// The order in which the JIT's reduce kernel adds up a group (see `jit::translate`), for
/// the interpreter to add in the same order. Positions count elements in memory order.
/// - Row-wise groups (the innermost loop is reduced): each *run* — a pass of the innermost loop,
///   cut at chunk boundaries when it is the only loop — is summed on its own ([`run_sum`]) and
///   added to the group's sum.
/// - Column-wise groups: every element is added to its group's sum in memory order.
/// - When the split loop is reduced and the tensor is cut into several parallel chunks
///   ([`multiproj_compiler::Schedule::reduce_chunks`]), each chunk sums into sums of its own, which are added to the totals in
///   chunk order.
struct SumOrder {
    rows: bool,
    /// The innermost loop is contiguous: runs are summed in vector lanes.
    vector: bool,
    partials: bool,
    run_len: usize,
    chunk_len: usize,
    len: usize,
}

impl SumOrder {
    fn new(plan: &Plan, len: usize) -> SumOrder {
        let schedule = plan.schedule();
        let shape = schedule.kernel_shape(PassKind::Reduce);
        let chunks = schedule.reduce_chunks();
        let per_index = schedule.elements_per_index(len);
        let step = chunks.step();
        SumOrder {
            rows: shape.inner_reduced,
            vector: shape.inner_contiguous,
            partials: schedule.split_reduced() && chunks.len() > 1,
            run_len: plan.schedule().loops().last().map_or(1, |l| l.extent),
            chunk_len: step * per_index,
            len,
        }
    }

    fn chunk_ends(&self, pos: usize) -> bool {
        (pos + 1).is_multiple_of(self.chunk_len) || pos + 1 == self.len
    }

    fn run_ends(&self, pos: usize) -> bool {
        (pos + 1).is_multiple_of(self.run_len) || self.chunk_ends(pos)
    }
}

/// The sum of one run's terms (`|y|` or `y²`) as the JIT's `reduce_rows` forms it: for a
/// contiguous run, [`UNROLL_PAIRS`] two-lane accumulators take eight terms per step, then the
/// first accumulator takes pairs, a scalar sum takes the last odd term; they are combined as
/// `((a0 + a1) + (a2 + a3))`, its two lanes added, then the scalar. A strided run is summed one
/// term after the other.
fn run_sum(terms: &[f64], vector: bool) -> f64 {
    if !vector {
        return terms.iter().fold(0.0, |s, &t| s + t);
    }
    let n = terms.len();
    let mut acc = [[0.0f64; 2]; UNROLL_PAIRS];
    let mut i = 0;
    while i + 2 * UNROLL_PAIRS <= n {
        for (u, a) in acc.iter_mut().enumerate() {
            a[0] += terms[i + 2 * u];
            a[1] += terms[i + 2 * u + 1];
        }
        i += 2 * UNROLL_PAIRS;
    }
    while i + 2 <= n {
        acc[0][0] += terms[i];
        acc[0][1] += terms[i + 1];
        i += 2;
    }
    let mut tail = 0.0;
    while i < n {
        tail += terms[i];
        i += 1;
    }
    let lanes = |a: [f64; 2], b: [f64; 2]| [a[0] + b[0], a[1] + b[1]];
    let v = lanes(lanes(acc[0], acc[1]), lanes(acc[2], acc[3]));
    (v[0] + v[1]) + tail
}

/// Pairs of elements per step of the JIT's unrolled reduce loop (`translate::UNROLL`).
const UNROLL_PAIRS: usize = 4;

/// Whether a sum of squares has lost the l2 norm of a group whose largest magnitude is `max`:
/// it overflowed (entries beyond ~1e154) or fell below the normal range (entries below ~1e-154).
pub(crate) fn sum_of_squares_lost(sum: f64, max: f64) -> bool {
    !sum.is_finite() || (sum < f64::MIN_POSITIVE && max > 0.0)
}

/// Turns per-group sums of squares into l2 norms. Groups whose sum lost the norm (see
/// [`sum_of_squares_lost`]) — rare, so a second look at their data costs nothing in practice —
/// are recomputed from their entries with [`balls::norm_l2`], which rescales.
pub(crate) fn finish_l2<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    acc: &mut [f64],
    max: &[f64],
) {
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
pub(crate) fn threshold_ticked<T: Element>(
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
            GroupAction::NeedsThreshold(_) => Vec::with_capacity(plan.group_len()),
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
            *action = solve::threshold_action(T::DTYPE, values, r, &mut scratch);
        }
    }
    Ok(())
}

/// The exact `l1 of linf` solve by the plain oracle ([`balls::l1_linf_exact_clips`]): every
/// group's magnitudes (times `2^-exp`) gathered in memory order, then the breakpoint method.
/// See [`crate::Passes::exact_l1_linf`].
pub(crate) fn exact_l1_linf<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    maxes: &[f64],
    exp: i32,
    goal: crate::exact::ExactGoal,
    ticker: &Ticker<'_>,
) -> Result<crate::exact::ExactClips, DataError> {
    use crate::exact::{ExactClips, ExactGoal, Kept, keep_theta};
    let (groups, n) = (plan.groups(), plan.group_len());
    if maxes.len() != groups {
        return Err(DataError::Internal(format!(
            "{} group maxima for a plan with {groups} groups",
            maxes.len()
        )));
    }
    let scale = 2f64.powi(-exp);
    let mut members: Vec<Vec<f64>> = vec![Vec::with_capacity(n); groups];
    for_each_in_memory_order(plan, x, ticker, |idx, y| {
        members[group_of(plan, idx)].push(y.to_f64().abs() * scale);
        Ok(())
    })?;
    let flat: Vec<f64> = members.concat();
    let (theta, clips, radius) = match goal {
        ExactGoal::Radius(r) => {
            let (theta, clips) = balls::l1_linf_exact_clips(&flat, groups, n, r)
                .unwrap_or_else(|| (0.0, maxes.to_vec()));
            (theta, clips, r)
        }
        ExactGoal::Keep(k) => {
            let l1: Vec<f64> = members.iter().map(|g| balls::norm_l1(g)).collect();
            match keep_theta(&l1, k)? {
                Kept::Zero => return Ok(ExactClips::trivial(maxes, false)),
                Kept::All => return Ok(ExactClips::trivial(maxes, true)),
                Kept::Theta(theta) => {
                    let mut clips = balls::l1_linf_clips_at(&flat, groups, n, theta);
                    crate::exact::keep_exactly(&mut clips, &l1, &members_nonzero(&members), theta);
                    let radius = clips.iter().sum();
                    (theta, clips, radius)
                }
            }
        }
    };
    Ok(ExactClips {
        theta,
        clips,
        gathered: flat.len(),
        passes: 1,
        radius,
    })
}

/// The number of non-zero entries of each gathered group.
fn members_nonzero(members: &[Vec<f64>]) -> Vec<usize> {
    members
        .iter()
        .map(|g| g.iter().filter(|&&v| v != 0.0).count())
        .collect()
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
    i0 * plan.group_strides()[0] + group_of_rest(plan, rest)
}

#[inline]
fn group_of_rest(plan: &Plan, rest: &[usize]) -> usize {
    rest.iter()
        .zip(&plan.group_strides()[1..])
        .map(|(&i, &s)| i * s)
        .sum()
}

/// The element after applying its group's action, computed in f64 (the 16-bit formats'
/// scaling in f32, see `solve::apply_one_as`) and rounded once.
#[inline]
fn applied<T: Element>(action: GroupAction, y: T) -> T {
    match action {
        GroupAction::Keep => y,
        GroupAction::Zero => T::zero(),
        a => T::from_f64(solve::apply_one_as(T::DTYPE, a, y.to_f64())),
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
pub(crate) fn apply_ticked<T: Element>(
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
pub(crate) fn apply_in_place_ticked<T: Element>(
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
