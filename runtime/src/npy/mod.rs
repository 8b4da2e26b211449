//! Tensors in `.npy` files, memory-mapped: [`NpyInput`] (read-only), [`NpyInPlace`]
//! (read-write, for `--in-place`) and [`NpyOutput`] (a new file written atomically), all
//! exposing the data as ndarray views ([`TensorView`], [`TensorViewMut`]) in the file's own
//! memory order, C or Fortran, `f64`, `f32` or `f16` (`bf16` views come from memory: NumPy's
//! `.npy` format has no bfloat16 type).
//!
//! Headers are parsed by multiproj's own parser ([`crate::npy_header`]: linear time, bounded
//! stack, NumPy's rules) and written by `ndarray-npy`; this module decides what multiproj accepts
//! (little-endian `<f8`/`<f4`/`<f2`, exact file length, non-empty) and turns every refusal into a
//! [`DataError`] that names the file. Zero-rank (scalar) arrays open fine; whether a spec can be
//! applied to one is the checker's call.
//!
//! How files are opened, created, replaced and streamed — what is refused, temporary files,
//! locks, permissions — is [`crate::files`]'s business.
//!
//! The header is parsed once, at open. Views are rebuilt from the remembered shape and data
//! offset (with `ndarray-npy`'s [`ViewElement`](ndarray_npy::ViewElement), which checks length
//! and alignment) instead of re-parsing the mapped header each time, so a header rewritten
//! under us by another process cannot change the shape of a view.
//!
//! The header checks are in `stored`, what the three types share in `mapped`, and the types
//! themselves in `read`, `in_place` and `write`; their public items are re-exported here.

use multiproj_compiler::{DType, TensorInfo};
use ndarray::{ArrayViewD, ArrayViewMutD, Dimension};

use crate::DataError;

mod in_place;
mod mapped;
mod read;
mod shared;
mod stored;
#[cfg(test)]
mod tests;
mod write;

pub use in_place::NpyInPlace;
pub use mapped::MappedNpy;
pub use read::NpyInput;
pub use shared::SharedOutput;
pub use write::{NpyOutput, write_npy_atomic};

/// A read-only view of a tensor's data, in the file's memory order.
#[derive(Clone, Debug)]
pub enum TensorView<'a> {
    F16(ArrayViewD<'a, half::f16>),
    BF16(ArrayViewD<'a, half::bf16>),
    F32(ArrayViewD<'a, f32>),
    F64(ArrayViewD<'a, f64>),
}

/// A writable view of a tensor's data, in the file's memory order.
#[derive(Debug)]
pub enum TensorViewMut<'a> {
    F16(ArrayViewMutD<'a, half::f16>),
    BF16(ArrayViewMutD<'a, half::bf16>),
    F32(ArrayViewMutD<'a, f32>),
    F64(ArrayViewMutD<'a, f64>),
}

impl TensorView<'_> {
    /// Shape, strides (in elements, as ndarray reports them) and dtype.
    pub fn info(&self) -> TensorInfo {
        match self {
            TensorView::F16(a) => info_of(a.shape(), a.strides(), DType::F16),
            TensorView::BF16(a) => info_of(a.shape(), a.strides(), DType::BF16),
            TensorView::F32(a) => info_of(a.shape(), a.strides(), DType::F32),
            TensorView::F64(a) => info_of(a.shape(), a.strides(), DType::F64),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            TensorView::F16(_) => DType::F16,
            TensorView::BF16(_) => DType::BF16,
            TensorView::F32(_) => DType::F32,
            TensorView::F64(_) => DType::F64,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            TensorView::F16(a) => a.shape(),
            TensorView::BF16(a) => a.shape(),
            TensorView::F32(a) => a.shape(),
            TensorView::F64(a) => a.shape(),
        }
    }

    /// `Err(NonFinite)` naming the first NaN or ±inf in C (row-major) index order.
    ///
    /// The scan runs in memory order; only when it finds something is the tensor searched again
    /// in index order, so that the reported index does not depend on the file's layout.
    pub fn check_finite(&self) -> Result<(), DataError> {
        match self {
            TensorView::F16(a) => first_non_finite(a),
            TensorView::BF16(a) => first_non_finite(a),
            TensorView::F32(a) => first_non_finite(a),
            TensorView::F64(a) => first_non_finite(a),
        }
    }
}

impl TensorViewMut<'_> {
    pub fn info(&self) -> TensorInfo {
        self.view().info()
    }

    pub fn dtype(&self) -> DType {
        match self {
            TensorViewMut::F16(_) => DType::F16,
            TensorViewMut::BF16(_) => DType::BF16,
            TensorViewMut::F32(_) => DType::F32,
            TensorViewMut::F64(_) => DType::F64,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            TensorViewMut::F16(a) => a.shape(),
            TensorViewMut::BF16(a) => a.shape(),
            TensorViewMut::F32(a) => a.shape(),
            TensorViewMut::F64(a) => a.shape(),
        }
    }

    /// A read-only view of the same data.
    pub fn view(&self) -> TensorView<'_> {
        match self {
            TensorViewMut::F16(a) => TensorView::F16(a.view()),
            TensorViewMut::BF16(a) => TensorView::BF16(a.view()),
            TensorViewMut::F32(a) => TensorView::F32(a.view()),
            TensorViewMut::F64(a) => TensorView::F64(a.view()),
        }
    }

    /// Copies `src` element by element (by index, whatever the two memory orders are).
    /// Shapes and dtypes must match exactly: ndarray would otherwise broadcast a smaller source.
    pub fn assign(&mut self, src: &TensorView<'_>) -> Result<(), DataError> {
        if self.shape() != src.shape() {
            return Err(DataError::ShapeMismatch {
                expected: src.shape().to_vec(),
                found: self.shape().to_vec(),
            });
        }
        match (self, src) {
            (TensorViewMut::F16(d), TensorView::F16(s)) => d.assign(s),
            (TensorViewMut::BF16(d), TensorView::BF16(s)) => d.assign(s),
            (TensorViewMut::F32(d), TensorView::F32(s)) => d.assign(s),
            (TensorViewMut::F64(d), TensorView::F64(s)) => d.assign(s),
            (d, s) => {
                return Err(DataError::DTypeMismatch {
                    expected: s.dtype(),
                    found: d.dtype(),
                });
            }
        }
        Ok(())
    }
}

fn info_of(shape: &[usize], strides: &[isize], dtype: DType) -> TensorInfo {
    TensorInfo {
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        dtype,
    }
}

fn first_non_finite<T: Copy + Into<f64>>(a: &ArrayViewD<'_, T>) -> Result<(), DataError> {
    let finite = |x: &T| (*x).into().is_finite();
    let all_finite = match a.as_slice_memory_order() {
        Some(s) => s.iter().all(finite),
        None => a.iter().all(finite),
    };
    if all_finite {
        return Ok(());
    }
    match a.indexed_iter().find(|(_, x)| !finite(x)) {
        Some((index, &value)) => Err(DataError::NonFinite {
            index: index.as_array_view().to_vec(),
            value: value.into(),
        }),
        None => Err(DataError::Internal(
            "a non-finite value was seen in memory order but not in index order".into(),
        )),
    }
}
