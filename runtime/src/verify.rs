//! Cross-checking backends (`--verify`): run the same plan on both and compare the results.
//!
//! The backends agree bit for bit on everything decided by maxima and on kept, zeroed and
//! clipped entries; sums (l1 and l2 norms, hence scaling factors and soft thresholds) may be
//! accumulated in a different order, so they agree to rounding. The tolerance is therefore
//! relative to the largest magnitude in the input: `|a - b| ≤ rtol · max|x|`, with
//! `rtol = 1e-12` for f64, `1e-6` for f32, `2e-3` for f16 and `1.6e-2` for bf16 (a few ulps of
//! the type, since both results are rounded from f64).
//!
//! Memory: the other backend's result is a second copy of the tensor, in memory (and in place,
//! the primary's result before the file is touched is a third). Its allocation is fallible: a
//! memory limit makes `--verify` fail with [`DataError::VerifyOutOfMemory`], naming the bytes,
//! instead of aborting the process (which would leave the temporary output behind).

use ndarray::{Array, ArrayViewD, Dimension, IxDyn};

use multiproj_compiler::{DType, Plan};

use crate::backend::{Backend, Passes};
use crate::element::Element;
use crate::error::DataError;
use crate::exec::{Executor, Report};

/// How closely two backends agreed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    pub other: Backend,
    /// Every element has the same bits.
    pub identical: bool,
    pub max_abs_diff: f64,
    pub tolerance: f64,
}

/// The relative tolerance for a dtype (see the module docs).
pub fn rtol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 1e-6,
        // A few ulps: 2^-11 ≈ 4.9e-4, 2^-8 ≈ 3.9e-3.
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
    }
}

/// A zeroed array with the plan's output layout: dense, axes in the input's memory order. Like
/// any infallible allocation, it aborts the process if the memory cannot be had;
/// [`try_alloc_output`] returns an error instead.
pub fn alloc_output<T: Element>(plan: &Plan) -> Array<T, IxDyn> {
    let (permuted, inverse) = output_layout(plan);
    let len = permuted.iter().product();
    Array::from_shape_vec(IxDyn(&permuted), crate::alloc::zeroed(len))
        .expect("a buffer of the shape's length")
        .permuted_axes(IxDyn(&inverse))
}

/// [`alloc_output`], failing with [`DataError::VerifyOutOfMemory`] (which names the bytes) when
/// the memory cannot be allocated.
pub fn try_alloc_output<T: Element>(plan: &Plan) -> Result<Array<T, IxDyn>, DataError> {
    let (permuted, inverse) = output_layout(plan);
    let len = plan.tensor().shape.iter().product::<usize>();
    let data = crate::alloc::try_zeroed(len).ok_or(DataError::VerifyOutOfMemory {
        bytes: (len as u64).saturating_mul(size_of::<T>() as u64),
    })?;
    let dense = Array::from_shape_vec(IxDyn(&permuted), data)
        .map_err(|e| DataError::Internal(format!("the layout of a --verify copy: {e}")))?;
    Ok(dense.permuted_axes(IxDyn(&inverse)))
}

/// The extents in memory order, and the permutation that puts the axes back in logical order.
fn output_layout(plan: &Plan) -> (Vec<usize>, Vec<usize>) {
    let order = &plan.schedule().memory_order();
    let permuted: Vec<usize> = order.iter().map(|&a| plan.tensor().shape[a]).collect();
    let mut inverse = vec![0usize; order.len()];
    for (p, &a) in order.iter().enumerate() {
        inverse[a] = p;
    }
    (permuted, inverse)
}

/// Projects `x` with `other` into a fresh array and compares it with `result` (what the primary
/// backend produced from the same `x`). An error names the first element that differs by more
/// than the tolerance, and the fresh array is allocated fallibly ([`try_alloc_output`]).
pub fn check_against<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    result: &ArrayViewD<'_, T>,
    radius: f64,
    primary: Backend,
) -> Result<(Agreement, Report), DataError> {
    check_against_with(plan, x, result, radius, &Executor::new(primary))
}

/// [`check_against`] where `exec`'s backend produced `result`; the other backend's run reports
/// its progress to `exec`'s progress hook.
pub fn check_against_with<T: Element, B: Passes>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    result: &ArrayViewD<'_, T>,
    radius: f64,
    exec: &Executor<'_, B>,
) -> Result<(Agreement, Report), DataError> {
    let primary = exec.backend().kind();
    let other = primary.other();
    let mut theirs = try_alloc_output::<T>(plan)?;
    let report = exec
        .with_backend(other)
        .project(plan, x, &mut theirs.view_mut(), radius)?;
    let scale = x.iter().fold(0.0f64, |m, &y| m.max(y.to_f64().abs()));
    let tolerance = rtol(T::DTYPE) * scale;
    let mut agreement = Agreement {
        other,
        identical: true,
        max_abs_diff: 0.0,
        tolerance,
    };
    for ((index, &a), &b) in result.indexed_iter().zip(theirs.iter()) {
        if a == b && a.to_f64().to_bits() == b.to_f64().to_bits() {
            continue;
        }
        agreement.identical = false;
        let diff = (a.to_f64() - b.to_f64()).abs();
        agreement.max_abs_diff = agreement.max_abs_diff.max(diff);
        if diff > tolerance || diff.is_nan() {
            return Err(DataError::BackendsDisagree {
                index: index.slice().to_vec(),
                primary: primary.name(),
                other: other.name(),
                primary_value: a.to_f64(),
                other_value: b.to_f64(),
                tolerance,
            });
        }
    }
    Ok((agreement, report))
}
