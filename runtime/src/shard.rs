//! Sharded tensors: one projection of a tensor split across processes along one axis, each
//! process holding a contiguous slice of it, in rank order (the *shard axis*).
//!
//! The only global coupling of a multi-level projection is a small vector of group aggregates,
//! so the stages of [`crate::stages`] become a split-phase protocol over a [`Communicator`]:
//!
//! 1. **Layout.** Every process's shape and dtype are gathered ([`ShardLayout::exchange`]): the
//!    shapes must agree except along the shard axis, whose extents (any, zero included) give each
//!    process its offset. A mismatch is the same error on every process.
//! 2. **Reduce** (local), then **combine** the innermost norms, O(groups) numbers:
//!    - *whole groups* — the shard axis indexes groups (an axis of an outer level): each
//!      process owns whole innermost groups; their norms are gathered and placed in the global
//!      group order;
//!    - *split groups* — the shard axis is one of the innermost level's axes: every process
//!      holds part of every group; the partial norms are all-reduced (max for linf, sum for
//!      l1, sum of squares for l2).
//! 3. **Solve** on the global norms ([`Solution::for_target`]): the same input and the same
//!    deterministic code on every process, so the same decisions, bit for bit.
//! 4. **Threshold** (innermost l1 only): whole groups locally, as in one process; split groups
//!    by Newton's method on the threshold (Michelot's iteration, from below), each step one
//!    all-reduce of a sum and a count per group, then raised until the stored results fit the
//!    radius (each step one all-reduce).
//! 5. **Apply** (local).
//!
//! After every local stage the processes agree on whether all succeeded (one all-reduce of a
//! flag), so that a failure on one process — a NaN in its data — stops every process with an
//! error instead of leaving the others waiting in a collective.
//!
//! The result equals the single-process projection of the whole tensor: bit for bit when the
//! innermost norm is linf (maxima do not depend on their order); to rounding otherwise (a shard's
//! sums are added in another order than the whole tensor's).
//!
//! Communication: the layout (rank × dimension numbers), one all-reduce of the scales, then for
//! whole groups an all-gather of the group norms (every process receives all `G` of them), for
//! split groups an all-reduce of `G` numbers (`2G` for l2), plus two numbers per shrinking
//! group and Newton step for split l1 groups — never a number per element.

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, IxDyn};
use rayon::prelude::*;

use std::time::{Duration, Instant};

use multiproj_compiler::{DType, Norm, Plan, Stage, Step, TensorInfo};

use crate::balls::{self, SoftThreshold};
use crate::element::Element;
use crate::error::DataError;
use crate::exec::{Executor, Report};
use crate::solve::{GroupAction, stored};
use crate::stages::{GroupNorms, Solution};
use crate::target::RadiusTarget;

/// An element-wise reduction over processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
}

/// The collectives a sharded projection needs, over a fixed group of processes (an MPI
/// communicator, a torch.distributed process group). Every process of the group calls the same
/// collectives in the same order.
pub trait Communicator {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Every process's `local` (of any length), in rank order, on every process.
    fn all_gather(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, String>;
    /// `buf` reduced element-wise over all processes, on every process. Every process must
    /// receive the same bits: an implementation reduces in a fixed order (for instance onto one
    /// process, then broadcasts) — a floating-point sum depends on its order.
    fn all_reduce(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), String>;
}

/// One process: the collectives are the identity. A sharded projection over it is the ordinary
/// projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Communicator for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, String> {
        Ok(vec![local.to_vec()])
    }
    fn all_reduce(&self, _buf: &mut [f64], _op: ReduceOp) -> Result<(), String> {
        Ok(())
    }
}

fn comm_err(e: String) -> DataError {
    DataError::Comm(e)
}

/// How a tensor is split: the global shape, and each process's extent and offset along the
/// shard axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardLayout {
    pub axis: usize,
    pub dtype: DType,
    pub global_shape: Vec<usize>,
    /// Per rank: its extent along the shard axis.
    pub extents: Vec<usize>,
    /// Per rank: its offset along the shard axis.
    pub offsets: Vec<usize>,
    pub rank: usize,
}

impl ShardLayout {
    /// Gathers every process's shape and dtype and checks that they fit together along `axis`
    /// (in rank order). On a mismatch every process returns the same [`DataError::Shard`].
    pub fn exchange<C: Communicator + ?Sized>(
        comm: &C,
        local_shape: &[usize],
        dtype: DType,
        axis: usize,
    ) -> Result<ShardLayout, DataError> {
        let dcode = match dtype {
            DType::F64 => 0.0,
            DType::F32 => 1.0,
            DType::F16 => 2.0,
            DType::BF16 => 3.0,
        };
        let mut mine = vec![axis as f64, dcode, local_shape.len() as f64];
        mine.extend(local_shape.iter().map(|&e| e as f64));
        let all = comm.all_gather(&mine).map_err(comm_err)?;
        let describe = |v: &[f64]| -> String {
            let dims: Vec<String> = v
                .get(3..)
                .unwrap_or(&[])
                .iter()
                .map(|e| format!("{e}"))
                .collect();
            let dtype = match v.get(1).map(|&c| c as u8) {
                Some(0) => "f64",
                Some(1) => "f32",
                Some(2) => "f16",
                _ => "bf16",
            };
            format!("({}) {dtype}, shard axis {}", dims.join(", "), v[0])
        };
        let listing = || -> String {
            all.iter()
                .enumerate()
                .map(|(r, v)| format!("rank {r}: {}", describe(v)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let first = &all[0];
        let fits = all.iter().all(|v| {
            v.len() == first.len()
                && v[..3] == first[..3]
                && v[3..]
                    .iter()
                    .zip(&first[3..])
                    .enumerate()
                    .all(|(a, (x, y))| a == axis || x == y)
        });
        if !fits {
            return Err(DataError::Shard(format!(
                "the shards do not fit together: every process needs the same dtype, shard axis \
                 and extents on the other axes ({})",
                listing()
            )));
        }
        if axis >= local_shape.len() {
            return Err(DataError::Shard(format!(
                "shard axis {axis} for a tensor of {} dimensions",
                local_shape.len()
            )));
        }
        let extents: Vec<usize> = all.iter().map(|v| v[3 + axis] as usize).collect();
        let mut offsets = Vec::with_capacity(extents.len());
        let mut total = 0usize;
        for &e in &extents {
            offsets.push(total);
            total += e;
        }
        let mut global_shape = local_shape.to_vec();
        global_shape[axis] = total;
        Ok(ShardLayout {
            axis,
            dtype,
            global_shape,
            extents,
            offsets,
            rank: comm.rank(),
        })
    }

    /// The whole tensor's layout, C order (the solve does not depend on the memory order).
    pub fn global_info(&self) -> TensorInfo {
        TensorInfo::c_order(&self.global_shape, self.dtype)
    }

    /// The shape of rank `r`'s shard.
    pub fn shape_of(&self, r: usize) -> Vec<usize> {
        let mut s = self.global_shape.clone();
        s[self.axis] = self.extents[r];
        s
    }

    /// Whether the shard axis is one of the innermost level's axes (every process holds part
    /// of every group) rather than an axis that indexes groups.
    pub fn splits_groups(&self, global: &Plan) -> bool {
        global.innermost().axes.contains(&self.axis)
    }
}

/// The global index of each innermost group of rank `r`'s shard, in the shard's own group order
/// (row-major over the outer levels' axes, as [`Plan::group_strides`]), when the shard axis
/// indexes groups.
fn global_groups(global: &Plan, layout: &ShardLayout, r: usize) -> Vec<usize> {
    let shape = layout.shape_of(r);
    let k = global.levels().len();
    // The group axes in group-index order (outermost level first), with their local extents.
    let axes: Vec<usize> = global.levels()[..k - 1]
        .iter()
        .flat_map(|l| l.axes.iter().copied())
        .collect();
    let count: usize = axes.iter().map(|&a| shape[a]).product();
    let gs = global.group_strides();
    (0..count)
        .map(|mut g| {
            let mut global_index = 0usize;
            for &a in axes.iter().rev() {
                let c = g % shape[a];
                g /= shape[a];
                let c = if a == layout.axis {
                    c + layout.offsets[r]
                } else {
                    c
                };
                global_index += c * gs[a];
            }
            global_index
        })
        .collect()
}

/// Whether every process succeeded at a local stage: one all-reduce of a flag. Every process
/// returns an error when one failed, its own where it failed.
fn agree<R>(
    comm: &(impl Communicator + ?Sized),
    local: Result<R, DataError>,
    what: &str,
) -> Result<R, DataError> {
    let mut flag = [if local.is_err() { 1.0 } else { 0.0 }];
    comm.all_reduce(&mut flag, ReduceOp::Max)
        .map_err(comm_err)?;
    match local {
        Err(e) => Err(e),
        Ok(_) if flag[0] != 0.0 => Err(DataError::Shard(format!(
            "another process failed during the {what}; nothing was written here"
        ))),
        Ok(v) => Ok(v),
    }
}

/// The data a sharded projection reads and writes.
enum Local<'a, 'b, 'c, T> {
    Separate {
        x: &'a ArrayViewD<'b, T>,
        out: &'a mut ArrayViewMutD<'c, T>,
    },
    InPlace(&'a mut ArrayViewMutD<'b, T>),
}

impl<T> Local<'_, '_, '_, T> {
    fn input(&self) -> ArrayViewD<'_, T> {
        match self {
            Local::Separate { x, .. } => x.view(),
            Local::InPlace(d) => d.view(),
        }
    }
}

/// Projects this process's shard `x` of a tensor split along the layout's axis into `out`
/// (the same shape), together with the other processes of `comm`, which call this with their
/// own shards. `global` is the plan for the whole tensor ([`ShardLayout::global_info`]);
/// `local` the plan for this shard (`None` for an empty shard). The report is the whole
/// tensor's: its norms and counts are global.
#[allow(clippy::too_many_arguments)]
pub fn project_shard<T: Element, C: Communicator + ?Sized>(
    exec: &Executor<'_, crate::Backend>,
    comm: &C,
    layout: &ShardLayout,
    global: &Plan,
    local: Option<&Plan>,
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
    target: RadiusTarget,
) -> Result<Report, DataError> {
    run(
        exec,
        comm,
        layout,
        global,
        local,
        Local::Separate { x, out },
        target,
    )
}

/// [`project_shard`] in place.
pub fn project_shard_in_place<T: Element, C: Communicator + ?Sized>(
    exec: &Executor<'_, crate::Backend>,
    comm: &C,
    layout: &ShardLayout,
    global: &Plan,
    local: Option<&Plan>,
    data: &mut ArrayViewMutD<'_, T>,
    target: RadiusTarget,
) -> Result<Report, DataError> {
    run(
        exec,
        comm,
        layout,
        global,
        local,
        Local::InPlace(data),
        target,
    )
}

fn run<T: Element, C: Communicator + ?Sized>(
    exec: &Executor<'_, crate::Backend>,
    comm: &C,
    layout: &ShardLayout,
    global: &Plan,
    local: Option<&Plan>,
    mut data: Local<'_, '_, '_, T>,
    target: RadiusTarget,
) -> Result<Report, DataError> {
    if global
        .steps()
        .iter()
        .any(|s| matches!(s, Step::ExactSolve { .. }))
    {
        return Err(DataError::Shard(format!(
            "`{}` is an exact projection whose solve reads the data; sharded projections run \
             multi-level specs",
            global.source()
        )));
    }
    let local_fits = match local {
        Some(p) => p.tensor().shape == layout.shape_of(layout.rank),
        None => layout.extents[layout.rank] == 0,
    };
    if global.tensor().shape != layout.global_shape || !local_fits {
        return Err(DataError::Internal(
            "the plans of a sharded projection do not match its layout".into(),
        ));
    }
    let split = layout.splits_groups(global);

    // Stage times, as `Report::stages`: the local reduce; the combination of the norms (the
    // communication) with the solve; the thresholds; the apply.
    let mut stages: Vec<(Stage, Duration)> = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |stage: Stage, stages: &mut Vec<(Stage, Duration)>| {
        let now = Instant::now();
        stages.push((stage, now - clock));
        clock = now;
    };

    // Reduce, locally.
    let mine = match local {
        Some(p) => exec.reduce(p, &data.input()),
        None => Ok(GroupNorms::empty(global.innermost().norm)),
    };
    let mine = agree(comm, mine, "reduce")?;
    lap(Stage::Reduce, &mut stages);

    // Combine the norms into the whole tensor's.
    let norms = if split {
        combine_split(comm, global, &mine)?
    } else {
        combine_whole(comm, global, layout, &mine)?
    };
    let mut solution = Solution::for_target(global, &norms, target)?;
    lap(Stage::Solve, &mut stages);

    // Thresholds, then apply, locally.
    let result = (|| -> Result<(), DataError> {
        if split {
            if solution.needs_threshold() {
                split_thresholds(comm, global, local, &data.input(), &mut solution)?;
            }
            lap(Stage::Threshold, &mut stages);
            // Every shard holds part of every group: the global solution applies as it is.
            if let Some(p) = local {
                apply(exec, p, &solution, &mut data)?;
            }
            Ok(())
        } else {
            let map = global_groups(global, layout, layout.rank);
            // This shard's groups' actions, in its own group order.
            let mut local_solution = Solution {
                actions: map.iter().map(|&g| solution.actions[g]).collect(),
                ..solution.clone()
            };
            let local_result = match local {
                Some(p) => exec.threshold(p, &data.input(), &mut local_solution),
                None => Ok(()),
            };
            agree(comm, local_result, "threshold")?;
            if solution.needs_threshold() {
                gather_thresholds(comm, layout, global, &local_solution, &mut solution)?;
            }
            lap(Stage::Threshold, &mut stages);
            if let Some(p) = local {
                apply(exec, p, &local_solution, &mut data)?;
            }
            Ok(())
        }
    })();
    agree(comm, result, "apply")?;
    lap(Stage::Apply, &mut stages);
    let mut report = solution.report(global, *exec.backend());
    report.stages = stages;
    Ok(report)
}

fn apply<T: Element>(
    exec: &Executor<'_, crate::Backend>,
    plan: &Plan,
    solution: &Solution,
    data: &mut Local<'_, '_, '_, T>,
) -> Result<(), DataError> {
    match data {
        Local::Separate { x, out } => exec.apply(plan, solution, x, out),
        Local::InPlace(d) => exec.apply_in_place(plan, solution, d),
    }
}

/// The common scale of every process's norms: the largest `scale_exp` (an empty shard has
/// none).
fn common_scale(comm: &(impl Communicator + ?Sized), mine: &GroupNorms) -> Result<i32, DataError> {
    let mut e = [if mine.values().is_empty() {
        f64::NEG_INFINITY
    } else {
        f64::from(mine.scale_exp())
    }];
    comm.all_reduce(&mut e, ReduceOp::Max).map_err(comm_err)?;
    Ok(if e[0].is_finite() { e[0] as i32 } else { 0 })
}

/// Whole groups: every process's norms, at a common scale, in the global group order.
fn combine_whole(
    comm: &(impl Communicator + ?Sized),
    global: &Plan,
    layout: &ShardLayout,
    mine: &GroupNorms,
) -> Result<GroupNorms, DataError> {
    let e = common_scale(comm, mine)?;
    let down = 2f64.powi(mine.scale_exp() - e);
    let local: Vec<f64> = mine.values().iter().map(|&v| v * down).collect();
    let all = comm.all_gather(&local).map_err(comm_err)?;
    let mut values = vec![0.0f64; global.groups()];
    for (r, part) in all.iter().enumerate() {
        let map = global_groups(global, layout, r);
        if map.len() != part.len() {
            return Err(DataError::Shard(format!(
                "process {r} sent {} group norms for a shard of {} groups",
                part.len(),
                map.len()
            )));
        }
        for (&g, &v) in map.iter().zip(part) {
            values[g] = v;
        }
    }
    at_finite_scale(global, values, e, |v, extra| v * 2f64.powi(-extra))
}

/// Split groups: the partial norms all-reduced (max, sum, or the root of the sum of squares).
fn combine_split(
    comm: &(impl Communicator + ?Sized),
    global: &Plan,
    mine: &GroupNorms,
) -> Result<GroupNorms, DataError> {
    let g = global.groups();
    let e = common_scale(comm, mine)?;
    let down = 2f64.powi(mine.scale_exp() - e);
    let mut local: Vec<f64> = if mine.values().is_empty() {
        vec![0.0; g]
    } else {
        mine.values().iter().map(|&v| v * down).collect()
    };
    if local.len() != g {
        return Err(DataError::Internal(format!(
            "{} partial norms for {g} groups",
            local.len()
        )));
    }
    match global.innermost().norm {
        Norm::Linf => {
            comm.all_reduce(&mut local, ReduceOp::Max)
                .map_err(comm_err)?;
            at_finite_scale(global, local, e, |v, extra| v * 2f64.powi(-extra))
        }
        Norm::L1 => {
            let partial = local.clone();
            comm.all_reduce(&mut local, ReduceOp::Sum)
                .map_err(comm_err)?;
            if local.iter().all(|v| v.is_finite()) {
                return at_finite_scale(global, local, e, |v, extra| v * 2f64.powi(-extra));
            }
            // The sums overflowed: every process sees it, and sums again at a coarser scale.
            let step = balls::overflow_exponent(comm.size().max(2));
            let down = 2f64.powi(-step);
            let mut again: Vec<f64> = partial.iter().map(|v| v * down).collect();
            comm.all_reduce(&mut again, ReduceOp::Sum)
                .map_err(comm_err)?;
            at_finite_scale(global, again, e + step, |v, extra| v * 2f64.powi(-extra))
        }
        Norm::L2 => {
            // Squares of the partial norms scaled so that the largest is about 1: no square
            // overflows, and none that matters underflows.
            let mut top = [local.iter().fold(0.0f64, |m, &v| m.max(v))];
            comm.all_reduce(&mut top, ReduceOp::Max).map_err(comm_err)?;
            let h = if top[0] > 0.0 {
                top[0].log2().ceil() as i32
            } else {
                0
            };
            let s = 2f64.powi(-h);
            let mut squares: Vec<f64> = local.iter().map(|&v| (v * s) * (v * s)).collect();
            comm.all_reduce(&mut squares, ReduceOp::Sum)
                .map_err(comm_err)?;
            // sqrt(Σ(v·2^-h)²)·2^h, at scale e; at_finite_scale coarsens it if that overflows.
            at_finite_scale(global, squares, e, move |q, extra| {
                q.sqrt() * 2f64.powi(h - extra)
            })
        }
    }
}

/// `GroupNorms` from combined values at scale `e`, coarsening the scale by powers of two while
/// the norms or the multi-level norm they make overflow. `finish(v, extra)` turns a combined
/// value into the norm at scale `e + extra`.
fn at_finite_scale(
    global: &Plan,
    combined: Vec<f64>,
    e: i32,
    finish: impl Fn(f64, i32) -> f64,
) -> Result<GroupNorms, DataError> {
    let step = balls::overflow_exponent(global.tensor().len());
    let mut extra = 0;
    loop {
        let values: Vec<f64> = combined.iter().map(|&v| finish(v, extra)).collect();
        if values.iter().all(|v| v.is_finite()) {
            match GroupNorms::new(global, values, e + extra) {
                Ok(n) => return Ok(n),
                // A multi-level norm that overflows at this scale: coarser.
                Err(_) if extra < 2048 => {}
                Err(err) => return Err(err),
            }
        } else if extra >= 2048 {
            return Err(DataError::Internal(
                "the combined norms of a sharded projection do not fit f64 at any scale".into(),
            ));
        }
        extra += step;
    }
}

/// Whole groups: every process's thresholds, gathered into the global solution (for its
/// report).
fn gather_thresholds(
    comm: &(impl Communicator + ?Sized),
    layout: &ShardLayout,
    global: &Plan,
    local: &Solution,
    solution: &mut Solution,
) -> Result<(), DataError> {
    let mine: Vec<f64> = local
        .actions
        .iter()
        .flat_map(|a| match a {
            GroupAction::Shrink(t) => [t.base, t.offset],
            _ => [f64::NAN, f64::NAN],
        })
        .collect();
    let all = comm.all_gather(&mine).map_err(comm_err)?;
    for (r, part) in all.iter().enumerate() {
        for (&g, t) in global_groups(global, layout, r).iter().zip(part.chunks(2)) {
            if matches!(solution.actions[g], GroupAction::NeedsThreshold(_)) && !t[0].is_nan() {
                solution.actions[g] = GroupAction::Shrink(SoftThreshold {
                    base: t[0],
                    offset: t[1],
                });
            }
        }
    }
    Ok(())
}

/// The entries of one innermost group of a shard, as a view of the innermost level's axes.
struct GroupViews<'a, T> {
    view: ArrayViewD<'a, T>,
    outer: Vec<usize>,
}

impl<'a, T> GroupViews<'a, T> {
    fn new(plan: &Plan, x: &'a ArrayViewD<'_, T>) -> Self {
        let k = plan.levels().len();
        let mut order: Vec<usize> = plan.levels()[..k - 1]
            .iter()
            .flat_map(|l| l.axes.iter().copied())
            .collect();
        let outer = order.iter().map(|&a| x.shape()[a]).collect();
        order.extend_from_slice(&plan.innermost().axes);
        GroupViews {
            view: x.view().permuted_axes(IxDyn(&order)),
            outer,
        }
    }

    fn group(&self, mut g: usize) -> ArrayViewD<'_, T> {
        let mut idx = vec![0usize; self.outer.len()];
        for (i, &e) in self.outer.iter().enumerate().rev() {
            idx[i] = g % e;
            g /= e;
        }
        let mut v = self.view.view();
        for &i in &idx {
            v = v.index_axis_move(Axis(0), i);
        }
        v
    }
}

/// Split l1 groups: the soft threshold of every group that must shrink, over all processes'
/// parts of it.
///
/// The threshold is kept as `base + offset` (see [`SoftThreshold`]) with `base` the group's
/// largest magnitude (all-reduced), so that `|y| − base` is exact for the magnitudes that
/// survive. Newton's method on `f(τ) = Σ (|y| − τ)₊ − r`, from `τ = 0` (Michelot's iteration:
/// `τ ← (Σ_{|y|>τ} |y| − r) / #{|y| > τ}`) increases to the root and stops when the active set
/// no longer changes; each step is one all-reduce of a sum and a count per group. As in one
/// process, the radius is first lowered by a rounding margin, and the threshold then raised
/// until the stored results, summed in any order, fit the radius.
///
/// The shard's magnitudes of the groups that shrink are read once, into memory (at most the
/// shard's size, as f64), and those that fall below the rising threshold are dropped after
/// every step.
fn split_thresholds<T: Element>(
    comm: &(impl Communicator + ?Sized),
    global: &Plan,
    local: Option<&Plan>,
    x: &ArrayViewD<'_, T>,
    solution: &mut Solution,
) -> Result<(), DataError> {
    let dtype = global.tensor().dtype;
    let n_global = global.group_len();
    let which: Vec<usize> = solution
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, GroupAction::NeedsThreshold(_)))
        .map(|(g, _)| g)
        .collect();
    let radii: Vec<f64> = which
        .iter()
        .map(|&g| match solution.actions[g] {
            GroupAction::NeedsThreshold(r) => r,
            _ => unreachable!("only groups that need a threshold"),
        })
        .collect();
    let mut margin = 1.0 - (4.0 * n_global as f64 + 32.0) * (f64::EPSILON / 2.0);
    if dtype != DType::F64 {
        margin *= 1.0 - dtype.unit_roundoff();
    }
    // Michelot's first step needs no pass over the data: with every entry active,
    // τ₁ = (‖y_g‖₁ − r)/n, from the group's combined l1 norm; no magnitude at or below it is
    // active (τ only rises). Kept a hair lower, against the rounding of that quotient.
    let k = global.levels().len();
    let up = 2f64.powi(solution.aggregates.scale_exp);
    let floor: Vec<f64> = which
        .iter()
        .zip(&radii)
        .map(|(&g, &r)| {
            let s = solution.aggregates.v[k - 1][g] * up;
            let t = (s - r * margin) / n_global as f64;
            (t - 1e-12 * (s / n_global as f64)).max(0.0)
        })
        .collect();
    // This shard's magnitudes above τ₁ of each group that needs a threshold — the candidates
    // for the active set — read once, with the shard's largest magnitude of the group. Later
    // steps drop the candidates the rising threshold leaves behind (Michelot's pruning).
    let (mut cands, mut base): (Vec<Vec<f64>>, Vec<f64>) = match local {
        Some(p) => {
            let groups = GroupViews::new(p, x);
            which
                .par_iter()
                .zip(&floor)
                .map(|(&g, &t)| {
                    let v = groups.group(g);
                    let mut kept = vec![0.0f64; v.len()];
                    let (mut n, mut top) = (0usize, 0.0f64);
                    let mut take = |m: f64| {
                        // Branch-free: written always, kept when above τ₁.
                        kept[n] = m;
                        n += usize::from(m > t);
                        top = top.max(m);
                    };
                    match v.as_slice_memory_order() {
                        Some(s) => s.iter().for_each(|y| take(y.to_f64().abs())),
                        None => v.iter().for_each(|y| take(y.to_f64().abs())),
                    }
                    kept.truncate(n);
                    kept.shrink_to_fit();
                    (kept, top)
                })
                .unzip()
        }
        None => (vec![Vec::new(); which.len()], vec![0.0; which.len()]),
    };
    // The largest magnitude of each group.
    comm.all_reduce(&mut base, ReduceOp::Max)
        .map_err(comm_err)?;
    // Newton (Michelot) from τ₁: the offset is τ − base.
    let mut offset: Vec<f64> = floor.iter().zip(&base).map(|(&t, &b)| t - b).collect();
    let mut count = vec![f64::NAN; which.len()];
    for _ in 0..200 {
        // One pass over the candidates: the sum of `|y| − base` and the count of the active
        // ones, and the inactive ones dropped (branch-free).
        let mut sums: Vec<f64> = cands
            .par_iter_mut()
            .enumerate()
            .flat_map_iter(|(i, cand)| {
                let (b, o) = (base[i], offset[i]);
                let (mut d, mut c, mut n) = (0.0f64, 0.0f64, 0usize);
                for j in 0..cand.len() {
                    let m = cand[j];
                    let above = m - b;
                    let on = above - o > 0.0;
                    d += if on { above } else { 0.0 };
                    c += f64::from(u8::from(on));
                    cand[n] = m;
                    n += usize::from(on);
                }
                cand.truncate(n);
                [d, c].into_iter()
            })
            .collect();
        comm.all_reduce(&mut sums, ReduceOp::Sum)
            .map_err(comm_err)?;
        let mut changed = false;
        for (i, dc) in sums.chunks(2).enumerate() {
            let (d, c) = (dc[0], dc[1]);
            if c == 0.0 || c == count[i] {
                continue;
            }
            // Σ_A (|y| − base) − |A|·offset = r·margin.
            let next = (d - radii[i] * margin) / c;
            if next > offset[i] {
                offset[i] = next;
                changed = true;
            }
            count[i] = c;
        }
        if !changed {
            break;
        }
    }
    // Raise each threshold until the stored results fit the radius in any order of summation.
    let (mut boost, mut last) = (vec![1.0f64; which.len()], vec![f64::INFINITY; which.len()]);
    let mut done = vec![false; which.len()];
    for _ in 0..64 {
        let mut sums: Vec<f64> = cands
            .par_iter()
            .enumerate()
            .flat_map_iter(|(i, cand)| {
                let t = SoftThreshold {
                    base: base[i],
                    offset: offset[i],
                };
                let (mut s, mut live) = (0.0f64, 0.0f64);
                for &m in cand {
                    let y = stored(dtype, t.shrink(m));
                    s += y;
                    live += f64::from(u8::from(y > 0.0));
                }
                [s, live].into_iter()
            })
            .collect();
        comm.all_reduce(&mut sums, ReduceOp::Sum)
            .map_err(comm_err)?;
        let mut all_fit = true;
        for (i, sl) in sums.chunks(2).enumerate() {
            if done[i] {
                continue;
            }
            let got = balls::any_order_bound(sl[0], n_global);
            if got <= radii[i] {
                done[i] = true;
                continue;
            }
            all_fit = false;
            let excess = got - radii[i];
            if excess >= last[i] {
                boost[i] *= 2.0;
            }
            last[i] = excess;
            let step = excess / sl[1].max(1.0) * boost[i];
            offset[i] = (offset[i] + step).max(offset[i].next_up());
        }
        if all_fit {
            break;
        }
    }
    for (i, &g) in which.iter().enumerate() {
        solution.actions[g] = if done[i] {
            GroupAction::Shrink(SoftThreshold {
                base: base[i],
                offset: offset[i],
            })
        } else {
            // The threshold that zeroes the group ends the search in the worst case.
            GroupAction::Shrink(SoftThreshold {
                base: base[i],
                offset: 0.0,
            })
        };
    }
    Ok(())
}
