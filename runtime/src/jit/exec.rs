//! The JIT backend's executor: runs the Cranelift kernels of [`super::module`] for the passes
//! over the data (reduce, threshold, apply), with the contracts of [`crate::Passes`], which
//! `Jit` implements (in `backend.rs`) with the [`Kernels`] it prepares once per run.
//!
//! A kernel walks the plan's loop nest from raw pointers, so before any call the view is checked
//! to have exactly the layout the plan was made for (shape, strides of every axis longer than 1,
//! dtype); then every address a kernel forms is the address of an element of the view.
//!
//! **Parallelism.** The schedule ([`multiproj_compiler::Schedule`]) cuts the split loop (loop 0)
//! into chunks of about [`CHUNK_ELEMENTS`] elements, run by rayon; tensors below
//! [`PARALLEL_MIN`] elements run as one chunk. Chunk boundaries depend only on the shape, never on the number of threads, so results
//! are the same for every thread count. Apply chunks write disjoint elements. Reduce chunks over
//! a loop that is not reduced own disjoint groups and share the accumulator array; when the
//! split loop is reduced (threads share groups), each chunk gets its own accumulators, merged in
//! chunk order afterwards.
//!
//! **Non-finite input.** The reduce kernels detect NaN and ±inf as they read. The error names
//! the same element the interpreter names — the first in the interpreter's walk order — because
//! on that (rare) path the executor asks the interpreter to name it, which costs one more pass.
//! [`find_non_finite`] exposes the element the kernel itself stopped at.
//!
//! The threshold pass lives in `threshold.rs`, the kernels one run uses in `kernels.rs`.

use ndarray::{ArrayViewD, ArrayViewMutD};
use rayon::prelude::*;

use multiproj_compiler::{ApplyOp, Norm, Plan, TensorInfo};

use super::internal;
use super::module::{self as codegen, ApplyKernel, GroupParams, Jit, ReduceKernel};
use crate::element::Element;
use crate::error::DataError;
use crate::interp;
use crate::progress::Ticker;
use crate::solve::GroupAction;

pub use multiproj_compiler::{CHUNK_ELEMENTS, GATHER_TILE, PARALLEL_MIN};

/// The reduce pass: the innermost norm of every group (`V_{k-1}`), in f64. Fails on NaN or ±inf
/// with the index the interpreter would name. For l2, groups whose sum of squares over- or
/// underflowed are recomputed exactly as the interpreter does ([`interp::finish_l2`]). Ticks
/// `ticker` after every chunk.
pub(crate) fn reduce<T: Element>(
    kernel: &ReduceKernel,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<Vec<f64>, DataError> {
    let (mut acc, bad) = run_reduce(kernel, plan, x, ticker)?;
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
    let kernel = jit.reduce_kernel(plan).map_err(|e| internal(&e))?;
    let (_, bad) = run_reduce(&kernel, plan, x, &Ticker::none())?;
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
            sum: vec![0.0; plan.groups()],
            max: vec![0.0; if l2 { plan.groups() } else { 0 }],
        }
    }

    /// Addresses for the kernel: offset to the group of the nest's first element. `max` is null
    /// when unused (the kernel reads it only for l2).
    fn addresses(&mut self, plan: &Plan) -> (usize, usize) {
        let g = plan.schedule().group_start();
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
    kernel: &ReduceKernel,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<(Accumulators, Option<u64>), DataError> {
    check_view::<T>(plan.tensor(), x.shape(), x.strides())?;
    let norm = plan.innermost().norm;
    let mut acc = Accumulators::new(plan);
    if x.is_empty() {
        return Ok((acc, None));
    }
    let loops = codegen::loop_descriptor(plan);
    let data = x.as_ptr().wrapping_offset(plan.schedule().data_start()) as usize;
    let split_reduced = plan.schedule().split_reduced();
    let chunks = plan.schedule().reduce_chunks().ranges();
    let per_index = elements_per_index(plan, x.len());

    let run = |(sum, max): (usize, usize), (begin, end): (usize, usize)| {
        // SAFETY: the view has the plan's shape and strides (checked above), so for loop-0
        // indices in `begin..end ⊆ 0..extent` and every other index below its loop's extent,
        // `data_start + Σ index·stride` is the offset of an element of `x` from its logical
        // origin, and `group_start + Σ index·group_stride` is a group index in `0..groups`,
        // i.e. an entry of the accumulator arrays `sum` and `max` (l2) point into at
        // `-group_start`. Chunks running at the same time either own disjoint groups (split
        // loop not reduced) or have their own arrays.
        let found = unsafe {
            kernel.call(
                data as *const u8,
                &loops,
                sum as *mut f64,
                max as *mut f64,
                begin,
                end,
            )
        };
        ticker.tick((end - begin) * per_index);
        found
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
/// output layout (`plan.output()`: same shape, dense in the input's memory order).
pub(crate) fn apply<T: Element>(
    kernel: &ApplyKernel,
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<(), DataError> {
    check_view::<T>(plan.tensor(), x.shape(), x.strides())?;
    check_view::<T>(plan.output(), out.shape(), out.strides())?;
    let table = GroupTable::new(plan, actions)?;
    if x.is_empty() {
        return Ok(());
    }
    let src = x.as_ptr().wrapping_offset(plan.schedule().data_start()) as usize;
    let dst = out
        .as_mut_ptr()
        .wrapping_offset(plan.schedule().out_start()) as usize;
    run_apply(plan, kernel, &table, src, dst, x.len(), ticker);
    Ok(())
}

/// The apply pass, in place: elements of groups that are kept are never written. Zero-filled
/// groups are not read (column-wise, their elements are loaded with their neighbours' but
/// masked out).
pub(crate) fn apply_in_place<T: Element>(
    kernel: &ApplyKernel,
    plan: &Plan,
    actions: &[GroupAction],
    data: &mut ArrayViewMutD<'_, T>,
    ticker: &Ticker<'_>,
) -> Result<(), DataError> {
    check_view::<T>(plan.tensor(), data.shape(), data.strides())?;
    let table = GroupTable::new(plan, actions)?;
    if data.is_empty() {
        return Ok(());
    }
    let base = data
        .as_mut_ptr()
        .wrapping_offset(plan.schedule().data_start()) as usize;
    run_apply(plan, kernel, &table, base, 0, data.len(), ticker);
    Ok(())
}

fn run_apply(
    plan: &Plan,
    kernel: &ApplyKernel,
    table: &GroupTable,
    src: usize,
    dst: usize,
    len: usize,
    ticker: &Ticker<'_>,
) {
    let loops = codegen::loop_descriptor(plan);
    let g = plan.schedule().group_start();
    let (param, offset, keep, live) = (
        table.param.as_ptr().wrapping_offset(g) as usize,
        table.offset.as_ptr().wrapping_offset(g) as usize,
        table.keep.as_ptr().wrapping_offset(g) as usize,
        table.live.as_ptr().wrapping_offset(g) as usize,
    );
    let (param32, live32) = (
        table.param32.as_ptr().wrapping_offset(g) as usize,
        table.live32.as_ptr().wrapping_offset(g) as usize,
    );
    let (param16, live16) = (
        table.param16.as_ptr().wrapping_offset(g) as usize,
        table.live16.as_ptr().wrapping_offset(g) as usize,
    );
    let run = |(begin, end): (usize, usize)| {
        let groups = GroupParams {
            param: param as *const f64,
            offset: offset as *const f64,
            keep: keep as *const u64,
            live: live as *const u64,
            param32: param32 as *const f32,
            live32: live32 as *const u32,
            param16: param16 as *const u16,
            live16: live16 as *const u16,
        };
        // SAFETY: the input (and, out of place, the output) views have the layouts of
        // `plan.tensor()` and `plan.output()` (checked by the callers), so for loop-0 indices in
        // `begin..end ⊆ 0..extent` and every other index below its loop's extent,
        // `data_start + Σ index·stride` and `out_start + Σ index·out_stride` are offsets of
        // elements of the views, and `group_start + Σ index·group_stride` is an index into the
        // group table's arrays (length `groups`). Chunks cover disjoint loop-0 ranges, so no
        // element is written by two chunks; in place nothing else holds the data (`&mut`).
        unsafe { kernel.call(src as *const u8, dst as *mut u8, &loops, groups, begin, end) };
        ticker.tick((end - begin) * elements_per_index(plan, len));
    };
    let chunks = plan.schedule().apply_chunks().ranges();
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
    /// `param` rounded to f32 (to nearest) and `live` as 32-bit masks, for the f32
    /// column-wise clip.
    param32: Vec<f32>,
    live32: Vec<u32>,
    /// For 16-bit data only (empty otherwise): `param` as the format's bits (exact for a clip
    /// bound, which is a value of the format; `0x7fff`, above every magnitude pattern, for a
    /// kept group) and `live` as 16-bit masks, for the column-wise clip on the bits.
    param16: Vec<u16>,
    live16: Vec<u16>,
}

impl GroupTable {
    fn new(plan: &Plan, actions: &[GroupAction]) -> Result<GroupTable, DataError> {
        if actions.len() != plan.groups() {
            return Err(DataError::Internal(format!(
                "{} group actions for a plan with {} groups",
                actions.len(),
                plan.groups()
            )));
        }
        let op = ApplyOp::for_norm(plan.innermost().norm);
        let mut t = GroupTable {
            param: Vec::with_capacity(actions.len()),
            offset: Vec::with_capacity(actions.len()),
            keep: Vec::with_capacity(actions.len()),
            live: Vec::with_capacity(actions.len()),
            param32: Vec::with_capacity(actions.len()),
            live32: Vec::with_capacity(actions.len()),
            param16: Vec::new(),
            live16: Vec::new(),
        };
        let half = crate::float16::Format::of(plan.tensor().dtype);
        for &a in actions {
            let (param, offset, keep, live) = match (a, op) {
                // Clip and scale also get the identity parameter (an infinite radius, a
                // factor of 1) and `live`: column-wise kernels then need not select `y` with
                // `keep` (`y` is finite when the apply pass runs: the reduce rejects NaN and
                // ±inf; and even then clipping to ±inf and scaling by 1 return `y`'s value).
                (GroupAction::Keep, ApplyOp::Clip) => (f64::INFINITY, 0.0, u64::MAX, u64::MAX),
                (GroupAction::Keep, ApplyOp::Scale) => (1.0, 0.0, u64::MAX, u64::MAX),
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
            t.param32.push(param as f32);
            t.live32.push(live as u32);
            if let Some(f) = half {
                // A kept group's bound is above every magnitude pattern, NaN's included, so
                // that its elements keep their bits (a clip bound is a value of the format,
                // whose pattern is exact).
                t.param16.push(if param.is_infinite() {
                    0x7fff
                } else {
                    f.round(param)
                });
                t.live16.push(live as u16);
            }
        }
        Ok(t)
    }
}

/// Checks that a view has exactly the layout `info` describes (strides only matter on axes
/// longer than 1), so the kernels' address arithmetic stays inside it.
pub(super) fn check_view<T: Element>(
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

/// Elements one loop-0 index covers (loop 0 times the rest is the whole tensor), for progress
/// ticks.
pub(super) fn elements_per_index(plan: &Plan, len: usize) -> usize {
    plan.schedule().elements_per_index(len)
}

/// The logical index of the element at loop-nest position `pos` (row-major over the plan's
/// loops; flipped axes counted from their end).
fn logical_index(plan: &Plan, mut pos: u64) -> Vec<usize> {
    let shape = &plan.tensor().shape;
    let mut index = vec![0usize; shape.len()];
    for l in plan.schedule().loops().iter().rev() {
        let mut i = (pos % l.extent as u64) as usize;
        pos /= l.extent as u64;
        for &a in l.axes.iter().rev() {
            let k = i % shape[a];
            i /= shape[a];
            index[a] = if plan.tensor().strides[a] < 0 {
                shape[a] - 1 - k
            } else {
                k
            };
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use multiproj_compiler::{DType, TensorInfo};

    use super::*;
    use crate::backend::Work;

    /// Clipping f32 rows runs in f32 against the radius rounded to f32: bit for bit what the
    /// interpreter computes in f64, also for elements at, just above and just below the rounded
    /// radius, for radii that f32 cannot represent, and for signed zeros; rows and columns, out
    /// of place and in place, with kept and zeroed groups around.
    #[test]
    fn f32_clip_is_bit_identical_at_the_rounded_radius() {
        let radii = [0.1f64, 1.0 / 3.0, 2.0f64.sqrt(), 1e-3 + 1e-12, 7.0, 1e-50];
        for spec in [
            "l1 over dim0 of linf over dim1 <= 1",
            "l1 over dim1 of linf over dim0 <= 1",
        ] {
            let rows = spec.starts_with("l1 over dim0");
            let (groups, len) = (radii.len() + 2, 4 * 9 + 3);
            let shape = if rows { [groups, len] } else { [len, groups] };
            let mut x = ArrayD::<f32>::zeros(IxDyn(&shape));
            let mut actions = Vec::new();
            for g in 0..groups {
                let r = radii.get(g).copied().unwrap_or(0.5);
                actions.push(match g.checked_sub(radii.len()) {
                    None => GroupAction::Clip(r),
                    Some(0) => GroupAction::Keep,
                    Some(_) => GroupAction::Zero,
                });
                let r32 = r as f32;
                let near = [
                    r32,
                    r32.next_up(),
                    r32.next_down(),
                    -r32,
                    (-r32).next_up(),
                    (-r32).next_down(),
                    0.0,
                    -0.0,
                    2.5 * r32,
                    -0.5 * r32,
                    1e-45,
                    -1e-45,
                    f32::MAX,
                ];
                for j in 0..len {
                    let v = near[j % near.len()];
                    let at = if rows { [g, j] } else { [j, g] };
                    x[IxDyn(&at)] = v;
                }
            }
            let info = TensorInfo::c_order(&shape, DType::F32);
            let parsed = multiproj_grammar::parse(spec).unwrap();
            let plan =
                multiproj_compiler::plan(&multiproj_compiler::check(&parsed, &info).unwrap());
            let jit = Jit::new().unwrap();
            let mut by_interp = ArrayD::<f32>::zeros(IxDyn(&shape));
            interp::apply(&plan, &actions, &x.view(), &mut by_interp.view_mut()).unwrap();
            let mut by_jit = ArrayD::<f32>::zeros(IxDyn(&shape));
            let t = Ticker::none();
            let k = jit.kernels(&plan, Work::all(&plan)).unwrap();
            let out_of_place = k.apply(&plan, false).unwrap();
            apply(
                out_of_place,
                &plan,
                &actions,
                &x.view(),
                &mut by_jit.view_mut(),
                &t,
            )
            .unwrap();
            let mut in_place = x.clone();
            let k_in_place = k.apply(&plan, true).unwrap();
            apply_in_place(k_in_place, &plan, &actions, &mut in_place.view_mut(), &t).unwrap();
            for (k, ((a, b), c)) in by_interp.iter().zip(&by_jit).zip(&in_place).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{spec}: element {k}: {a} vs {b}");
                assert_eq!(a.to_bits(), c.to_bits(), "{spec}: in place {k}: {a} vs {c}");
            }
        }
    }

    #[test]
    fn kernels_outlive_the_jit_and_run_from_many_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Jit>();
        send_sync::<super::super::ReduceKernel>();
        send_sync::<super::super::ApplyKernel>();
        let x = ArrayD::from_shape_fn(IxDyn(&[64, 48]), |i| {
            (i[0] as f64 - 30.0) * (i[1] as f64 + 1.0)
        });
        let info = TensorInfo::c_order(&[64, 48], DType::F64);
        let spec = multiproj_grammar::parse("l1 over dim1 of linf over dim0").unwrap();
        let plan = multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap());
        let expected = interp::reduce(&plan, &x.view()).unwrap();
        let jit_ = Jit::new().unwrap();
        let kernel = jit_.reduce_kernel(&plan).unwrap();
        drop(jit_);
        let loops = codegen::loop_descriptor(&plan);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mut acc = vec![0.0; plan.groups()];
                    // SAFETY: the plan was made for `x`'s layout (no flipped axes, group_start 0),
                    // `acc` has one entry per group, and the loop-0 range is the whole loop.
                    let bad = unsafe {
                        kernel.call(
                            x.as_ptr().cast(),
                            &loops,
                            acc.as_mut_ptr(),
                            std::ptr::null_mut(),
                            0,
                            plan.schedule().loops()[0].extent,
                        )
                    };
                    assert_eq!(bad, None);
                    assert_eq!(acc, expected);
                });
            }
        });
    }
}
