//! The JIT backend's executor: runs the Cranelift kernels of [`multiproj_compiler::codegen`] for
//! the passes over the data (reduce, apply), with the same contracts as the interpreter's
//! [`crate::interp::reduce`], [`crate::interp::apply`] and [`crate::interp::apply_in_place`].
//!
//! A kernel walks the plan's loop nest from raw pointers, so before any call the view is checked
//! to have exactly the layout the plan was made for (shape, strides of every axis longer than 1,
//! dtype); then every address a kernel forms is the address of an element of the view.
//!
//! **Parallelism.** The plan's split loop (loop 0) is cut into chunks of about
//! [`CHUNK_ELEMENTS`] elements, run by rayon; tensors below [`PARALLEL_MIN`] elements run as one
//! chunk. Chunk boundaries depend only on the shape, never on the number of threads, so results
//! are the same for every thread count. Apply chunks write disjoint elements. Reduce chunks over
//! a loop that is not reduced own disjoint groups and share the accumulator array; when the
//! split loop is reduced (threads share groups), each chunk gets its own accumulators, merged in
//! chunk order afterwards.
//!
//! **Non-finite input.** The reduce kernels detect NaN and ±inf as they read. The error names
//! the same element the interpreter names — the first in the interpreter's walk order — because
//! on that (rare) path the executor asks the interpreter to name it, which costs one more pass.
//! [`find_non_finite`] exposes the element the kernel itself stopped at.

use std::sync::OnceLock;

use ndarray::{ArrayViewD, ArrayViewMutD};
use rayon::prelude::*;

use multiproj_compiler::codegen::{self, ApplyKernel, CodegenError, GroupParams, Jit};
use multiproj_compiler::{ApplyOp, Norm, Plan, TensorInfo};

use crate::element::Element;
use crate::error::DataError;
use crate::interp;
use crate::solve::GroupAction;

/// Below this many elements a pass runs as one chunk on the calling thread.
pub const PARALLEL_MIN: usize = 1 << 16;
/// Target size of a parallel chunk, in elements: big enough to amortize scheduling.
pub const CHUNK_ELEMENTS: usize = 1 << 18;

/// The process-wide JIT, with its kernel cache.
pub fn global() -> Result<&'static Jit, DataError> {
    static JIT: OnceLock<Result<Jit, CodegenError>> = OnceLock::new();
    JIT.get_or_init(Jit::new).as_ref().map_err(internal)
}

fn internal(e: &CodegenError) -> DataError {
    DataError::Internal(e.to_string())
}

/// The reduce pass with the global JIT: see [`reduce_with`].
pub fn reduce<T: Element>(plan: &Plan, x: &ArrayViewD<'_, T>) -> Result<Vec<f64>, DataError> {
    reduce_with(global()?, plan, x)
}

/// The apply pass, out of place, with the global JIT: see [`apply_with`].
pub fn apply<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    apply_with(global()?, plan, actions, x, out)
}

/// The apply pass, in place, with the global JIT: see [`apply_in_place_with`].
pub fn apply_in_place<T: Element>(
    plan: &Plan,
    actions: &[GroupAction],
    data: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    apply_in_place_with(global()?, plan, actions, data)
}

/// The reduce pass: the innermost norm of every group (`V_{k-1}`), in f64. Fails on NaN or ±inf
/// with the index the interpreter would name. For l2, groups whose sum of squares over- or
/// underflowed are recomputed exactly as the interpreter does ([`interp::finish_l2`]).
pub fn reduce_with<T: Element>(
    jit: &Jit,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
) -> Result<Vec<f64>, DataError> {
    let (mut acc, bad) = run_reduce(jit, plan, x)?;
    if let Some(pos) = bad {
        let index = logical_index(plan, pos);
        return Err(match interp::reduce(plan, x) {
            Err(e) => e,
            Ok(_) => DataError::Internal(format!(
                "the jit reduce kernel reported a non-finite element at index {index:?}, \
                 which the interpreter does not see"
            )),
        });
    }
    if plan.innermost().norm == Norm::L2 {
        interp::finish_l2(plan, x, &mut acc.sum, &acc.max);
    }
    Ok(acc.sum)
}

/// The logical index of the non-finite element the reduce kernel stopped at (the first one in
/// memory order within the first chunk that has one), or `None` if the tensor is finite.
pub fn find_non_finite<T: Element>(
    jit: &Jit,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
) -> Result<Option<Vec<usize>>, DataError> {
    let (_, bad) = run_reduce(jit, plan, x)?;
    Ok(bad.map(|pos| logical_index(plan, pos)))
}

/// Raw per-group accumulators of the reduce kernel: Σ|x|, Σx² or max|x|, and for l2 max|x|.
struct Accumulators {
    sum: Vec<f64>,
    /// Empty unless the innermost norm is l2.
    max: Vec<f64>,
}

impl Accumulators {
    fn new(plan: &Plan) -> Self {
        let l2 = plan.innermost().norm == Norm::L2;
        Accumulators {
            sum: vec![0.0; plan.groups],
            max: vec![0.0; if l2 { plan.groups } else { 0 }],
        }
    }

    /// Addresses for the kernel: offset to the group of the nest's first element. `max` is null
    /// when unused (the kernel reads it only for l2).
    fn addresses(&mut self, plan: &Plan) -> (usize, usize) {
        let g = plan.group_start;
        let max = if self.max.is_empty() {
            0
        } else {
            self.max.as_mut_ptr().wrapping_offset(g) as usize
        };
        (self.sum.as_mut_ptr().wrapping_offset(g) as usize, max)
    }

    fn merge(&mut self, norm: Norm, other: &Accumulators) {
        for (a, &p) in self.sum.iter_mut().zip(&other.sum) {
            *a = match norm {
                Norm::L1 | Norm::L2 => *a + p,
                Norm::Linf => a.max(p),
            };
        }
        for (a, &p) in self.max.iter_mut().zip(&other.max) {
            *a = a.max(p);
        }
    }
}

/// Runs the reduce kernel: raw accumulators and the loop-nest position of a non-finite element,
/// if a chunk found one.
fn run_reduce<T: Element>(
    jit: &Jit,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
) -> Result<(Accumulators, Option<u64>), DataError> {
    check_view::<T>(&plan.tensor, x.shape(), x.strides())?;
    let norm = plan.innermost().norm;
    let mut acc = Accumulators::new(plan);
    if x.is_empty() {
        return Ok((acc, None));
    }
    let kernel = jit.reduce_kernel(plan).map_err(|e| internal(&e))?;
    let loops = codegen::loop_descriptor(plan);
    let data = x.as_ptr().wrapping_offset(plan.data_start) as usize;
    let split_reduced = plan.split.is_some_and(|s| s.reduced);
    let chunks = chunks(plan, x.len(), split_reduced);

    let run = |(sum, max): (usize, usize), (begin, end): (usize, usize)| {
        // SAFETY: the view has the plan's shape and strides (checked above), so for loop-0
        // indices in `begin..end ⊆ 0..extent` and every other index below its loop's extent,
        // `data_start + Σ index·stride` is the offset of an element of `x` from its logical
        // origin, and `group_start + Σ index·group_stride` is a group index in `0..groups`,
        // i.e. an entry of the accumulator arrays `sum` and `max` (l2) point into at
        // `-group_start`. Chunks running at the same time either own disjoint groups (split
        // loop not reduced) or have their own arrays.
        unsafe {
            kernel.call(
                data as *const u8,
                &loops,
                sum as *mut f64,
                max as *mut f64,
                begin,
                end,
            )
        }
    };

    let bad = if chunks.len() == 1 {
        run(acc.addresses(plan), chunks[0])
    } else if !split_reduced {
        let shared = acc.addresses(plan);
        let found: Vec<Option<u64>> = chunks.par_iter().map(|&c| run(shared, c)).collect();
        found.into_iter().flatten().next()
    } else {
        let partials: Vec<(Accumulators, Option<u64>)> = chunks
            .par_iter()
            .map(|&c| {
                let mut part = Accumulators::new(plan);
                let found = run(part.addresses(plan), c);
                (part, found)
            })
            .collect();
        let mut bad = None;
        for (part, found) in &partials {
            bad = bad.or(*found);
            acc.merge(norm, part);
        }
        bad
    };
    Ok((acc, bad))
}

/// The apply pass, out of place: writes every element of `out`, which must have the plan's
/// output layout (`plan.output`: same shape, dense in the input's memory order).
pub fn apply_with<T: Element>(
    jit: &Jit,
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    check_view::<T>(&plan.tensor, x.shape(), x.strides())?;
    check_view::<T>(&plan.output, out.shape(), out.strides())?;
    let table = GroupTable::new(plan, actions)?;
    if x.is_empty() {
        return Ok(());
    }
    let kernel = jit.apply_kernel(plan, false).map_err(|e| internal(&e))?;
    let src = x.as_ptr().wrapping_offset(plan.data_start) as usize;
    let dst = out.as_mut_ptr().wrapping_offset(plan.out_start) as usize;
    run_apply(plan, &kernel, &table, src, dst, x.len());
    Ok(())
}

/// The apply pass, in place: groups that are kept are not written (see the codegen docs for
/// column-wise groups, where a vector pair holding a kept element may rewrite it unchanged).
pub fn apply_in_place_with<T: Element>(
    jit: &Jit,
    plan: &Plan,
    actions: &[GroupAction],
    data: &mut ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    check_view::<T>(&plan.tensor, data.shape(), data.strides())?;
    let table = GroupTable::new(plan, actions)?;
    if data.is_empty() {
        return Ok(());
    }
    let kernel = jit.apply_kernel(plan, true).map_err(|e| internal(&e))?;
    let base = data.as_mut_ptr().wrapping_offset(plan.data_start) as usize;
    run_apply(plan, &kernel, &table, base, 0, data.len());
    Ok(())
}

fn run_apply(
    plan: &Plan,
    kernel: &ApplyKernel,
    table: &GroupTable,
    src: usize,
    dst: usize,
    len: usize,
) {
    let loops = codegen::loop_descriptor(plan);
    let g = plan.group_start;
    let (param, offset, keep, live) = (
        table.param.as_ptr().wrapping_offset(g) as usize,
        table.offset.as_ptr().wrapping_offset(g) as usize,
        table.keep.as_ptr().wrapping_offset(g) as usize,
        table.live.as_ptr().wrapping_offset(g) as usize,
    );
    let run = |(begin, end): (usize, usize)| {
        let groups = GroupParams {
            param: param as *const f64,
            offset: offset as *const f64,
            keep: keep as *const u64,
            live: live as *const u64,
        };
        // SAFETY: the input (and, out of place, the output) views have the layouts of
        // `plan.tensor` and `plan.output` (checked by the callers), so for loop-0 indices in
        // `begin..end ⊆ 0..extent` and every other index below its loop's extent,
        // `data_start + Σ index·stride` and `out_start + Σ index·out_stride` are offsets of
        // elements of the views, and `group_start + Σ index·group_stride` is an index into the
        // group table's arrays (length `groups`). Chunks cover disjoint loop-0 ranges, so no
        // element is written by two chunks; in place nothing else holds the data (`&mut`).
        unsafe { kernel.call(src as *const u8, dst as *mut u8, &loops, groups, begin, end) }
    };
    let chunks = chunks(plan, len, false);
    if chunks.len() == 1 {
        run(chunks[0]);
    } else {
        chunks.par_iter().for_each(|&c| run(c));
    }
}

/// The per-group inputs of the apply kernels (see the codegen docs): parameters, and masks for
/// "untouched" and "the operation applies"; a group with neither mask is zero-filled.
struct GroupTable {
    param: Vec<f64>,
    offset: Vec<f64>,
    keep: Vec<u64>,
    live: Vec<u64>,
}

impl GroupTable {
    fn new(plan: &Plan, actions: &[GroupAction]) -> Result<GroupTable, DataError> {
        if actions.len() != plan.groups {
            return Err(DataError::Internal(format!(
                "{} group actions for a plan with {} groups",
                actions.len(),
                plan.groups
            )));
        }
        let op = ApplyOp::for_norm(plan.innermost().norm);
        let mut t = GroupTable {
            param: Vec::with_capacity(actions.len()),
            offset: Vec::with_capacity(actions.len()),
            keep: Vec::with_capacity(actions.len()),
            live: Vec::with_capacity(actions.len()),
        };
        for &a in actions {
            let (param, offset, keep, live) = match (a, op) {
                (GroupAction::Keep, _) => (0.0, 0.0, u64::MAX, 0),
                (GroupAction::Zero, _) => (0.0, 0.0, 0, 0),
                (GroupAction::Clip(r), ApplyOp::Clip) | (GroupAction::Scale(r), ApplyOp::Scale) => {
                    (r, 0.0, 0, u64::MAX)
                }
                (GroupAction::Shrink(t), ApplyOp::Shrink) => (t.base, t.offset, 0, u64::MAX),
                (GroupAction::NeedsThreshold(_), _) => {
                    return Err(DataError::Internal(
                        "apply pass reached with a group whose l1 threshold was never computed"
                            .into(),
                    ));
                }
                (a, op) => {
                    return Err(DataError::Internal(format!(
                        "group action {a:?} in a plan whose apply operation is {op:?}"
                    )));
                }
            };
            t.param.push(param);
            t.offset.push(offset);
            t.keep.push(keep);
            t.live.push(live);
        }
        Ok(t)
    }
}

/// Checks that a view has exactly the layout `info` describes (strides only matter on axes
/// longer than 1), so the kernels' address arithmetic stays inside it.
fn check_view<T: Element>(
    info: &TensorInfo,
    shape: &[usize],
    strides: &[isize],
) -> Result<(), DataError> {
    if T::DTYPE != info.dtype {
        return Err(DataError::DTypeMismatch {
            expected: info.dtype,
            found: T::DTYPE,
        });
    }
    if shape != info.shape.as_slice() {
        return Err(DataError::ShapeMismatch {
            expected: info.shape.clone(),
            found: shape.to_vec(),
        });
    }
    let same = shape
        .iter()
        .zip(strides.iter().zip(&info.strides))
        .all(|(&n, (a, b))| n <= 1 || a == b);
    if !same {
        return Err(DataError::LayoutMismatch {
            expected: info.strides.clone(),
            found: strides.to_vec(),
        });
    }
    Ok(())
}

/// Loop-0 ranges run as separate chunks. With `separate_accumulators`, the count is capped so
/// the per-chunk accumulator arrays stay small next to the tensor.
fn chunks(plan: &Plan, len: usize, separate_accumulators: bool) -> Vec<(usize, usize)> {
    let n0 = plan.loops.first().map_or(1, |l| l.extent);
    if len < PARALLEL_MIN || n0 < 2 {
        return vec![(0, n0)];
    }
    let per_index = len / n0;
    let mut step = (CHUNK_ELEMENTS / per_index.max(1)).max(1);
    if separate_accumulators {
        let max_chunks = (len / (4 * plan.groups.max(1))).max(1);
        step = step.max(n0.div_ceil(max_chunks));
    }
    (0..n0)
        .step_by(step)
        .map(|b| (b, (b + step).min(n0)))
        .collect()
}

/// The logical index of the element at loop-nest position `pos` (row-major over the plan's
/// loops; flipped axes counted from their end).
fn logical_index(plan: &Plan, mut pos: u64) -> Vec<usize> {
    let shape = &plan.tensor.shape;
    let mut index = vec![0usize; shape.len()];
    for l in plan.loops.iter().rev() {
        let mut i = (pos % l.extent as u64) as usize;
        pos /= l.extent as u64;
        for &a in l.axes.iter().rev() {
            let k = i % shape[a];
            i /= shape[a];
            index[a] = if plan.tensor.strides[a] < 0 {
                shape[a] - 1 - k
            } else {
                k
            };
        }
    }
    index
}
