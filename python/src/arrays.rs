//! NumPy arrays as `ndarray` views, without copying: the dtype and layout checks that make
//! rust-numpy's views sound, done before any view is made.
//!
//! rust-numpy's `as_array` divides each byte stride by the element size (truncating) and trusts
//! the data pointer's alignment; an unaligned array (`np.frombuffer(b, offset=1)`), a stride
//! that is not a whole number of elements (a field of a packed structured array) or a writable
//! view whose elements overlap (`np.lib.stride_tricks.as_strided` with a stride of 0) would make
//! a view that reads the wrong elements or is undefined behaviour. [`Layout::of`] refuses them
//! with a message that says what to do instead.

use std::fmt::Write as _;

use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use multiproj::{DType, Element};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};

/// The most dimensions a view can have: rust-numpy's limit (NumPy 2 allows 64).
const MAX_RANK: usize = 32;

/// What the projection writes: a new array, or the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// An ndarray of float16, bfloat16 (`ml_dtypes`), float32 or float64 whose layout a view can
/// describe, typed.
#[derive(Debug)]
pub enum Typed<'a, 'py> {
    F16(&'a Bound<'py, PyArrayDyn<half::f16>>),
    /// bfloat16 as its bits: a `uint16` array whose dtype carries the metadata
    /// `{"multiproj.dtype": "bfloat16"}` (see [`BF16_METADATA`]).
    BF16(&'a Bound<'py, PyArrayDyn<u16>>),
    F32(&'a Bound<'py, PyArrayDyn<f32>>),
    F64(&'a Bound<'py, PyArrayDyn<f64>>),
}

/// The checks of an array made before it is viewed.
#[derive(Debug)]
pub struct Layout;

impl Layout {
    /// `x` as a typed NumPy array that can be viewed in place (read, or written for
    /// [`Access::Write`]), or the error that says why not and what to do.
    pub fn of<'a, 'py>(x: &'a Bound<'py, PyAny>, access: Access) -> PyResult<Typed<'a, 'py>> {
        let Ok(array) = x.cast::<PyUntypedArray>() else {
            return Err(PyTypeError::new_err(format!(
                "expected a numpy.ndarray, got {}",
                type_name(x)
            )));
        };
        let dtype = dtype_of(array)?;
        if array.ndim() > MAX_RANK {
            return Err(PyValueError::new_err(format!(
                "the array has {} dimensions; multiproj handles at most {MAX_RANK}",
                array.ndim()
            )));
        }
        // The dtype was checked just above, so these casts (which compare dtypes the same way)
        // cannot fail for another reason.
        Ok(match dtype {
            DType::F16 => Typed::F16(checked::<half::f16>(
                array.cast::<PyArrayDyn<half::f16>>()?,
                access,
            )?),
            DType::BF16 => Typed::BF16(checked::<half::bf16>(
                array.cast::<PyArrayDyn<u16>>()?,
                access,
            )?),
            DType::F32 => Typed::F32(checked::<f32>(array.cast::<PyArrayDyn<f32>>()?, access)?),
            DType::F64 => Typed::F64(checked::<f64>(array.cast::<PyArrayDyn<f64>>()?, access)?),
        })
    }
}

/// `array` once its layout is known to be one a view can describe.
fn checked<'a, 'py, T: Float>(
    array: &'a Bound<'py, PyArrayDyn<T::Np>>,
    access: Access,
) -> PyResult<&'a Bound<'py, PyArrayDyn<T::Np>>> {
    check_aligned::<T>(array, access)?;
    if access == Access::Write {
        check_no_overlap(array.as_untyped())?;
    }
    Ok(array)
}

/// `numpy.ndarray`, `list`, `torch.Tensor`: what the user passed, for messages.
pub fn type_name(x: &Bound<'_, PyAny>) -> String {
    let ty = x.get_type();
    let name = ty
        .qualname()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    match ty.module() {
        Ok(m) if m != "builtins" => format!("{m}.{name}"),
        _ => name,
    }
}

/// Native-endian float16, float32 and float64, and `ml_dtypes`' bfloat16 (a 2-byte NumPy
/// dtype named `bfloat16`), are computed on; anything else is a `TypeError` that names the
/// dtype and the conversion to make.
fn dtype_of(array: &Bound<'_, PyUntypedArray>) -> PyResult<DType> {
    let descr = array.dtype();
    let shown = descr
        .str()
        .map_or_else(|_| "?".to_owned(), |s| s.to_string());
    let native = descr.is_native_byteorder() != Some(false);
    let plain = !descr.has_fields() && !descr.has_subarray();
    if plain && descr.kind() == b'u' && descr.itemsize() == 2 && native && is_bf16_bits(&descr) {
        return Ok(DType::BF16);
    }
    match (descr.kind(), descr.itemsize(), native) {
        (b'f', 2, true) if plain => Ok(DType::F16),
        (b'f', 4, true) if !descr.has_fields() && !descr.has_subarray() => Ok(DType::F32),
        (b'f', 8, true) if !descr.has_fields() && !descr.has_subarray() => Ok(DType::F64),
        (b'f', 2 | 4 | 8, false) => Err(PyTypeError::new_err(format!(
            "the array has dtype '{}' (byte-swapped: not this machine's byte order); multiproj \
             computes on native float16, float32 and float64: convert it with \
             x.astype(x.dtype.newbyteorder('='))",
            descr_str(&descr)
        ))),
        _ => Err(PyTypeError::new_err(format!(
            "the array has dtype {shown}; multiproj computes on float16, bfloat16, float32 and \
             float64: convert it first, e.g. x.astype(np.float32) or x.astype(np.float64)"
        ))),
    }
}

/// The key and value of the dtype metadata that marks a `uint16` array as the bits of bfloat16
/// values: what the Python layer passes for a torch `bfloat16` tensor or an `ml_dtypes`
/// `bfloat16` array (NumPy has no bfloat16 type), a view of the same memory.
pub const BF16_METADATA: (&str, &str) = ("multiproj.dtype", "bfloat16");

fn is_bf16_bits(descr: &Bound<'_, numpy::PyArrayDescr>) -> bool {
    descr
        .getattr("metadata")
        .and_then(|m| m.get_item(BF16_METADATA.0))
        .and_then(|v| v.extract::<String>())
        .is_ok_and(|v| v == BF16_METADATA.1)
}

/// `'>f8'`: the dtype with its byte order, which `str(dtype)` leaves out for floats.
fn descr_str(descr: &Bound<'_, numpy::PyArrayDescr>) -> String {
    descr
        .getattr("str")
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The data pointer is a multiple of the element's alignment and every stride that is ever
/// followed (the axis has more than one element) a whole number of elements: what rust-numpy's
/// view assumes without checking.
fn check_aligned<T: Float>(array: &Bound<'_, PyArrayDyn<T::Np>>, access: Access) -> PyResult<()> {
    let size = size_of::<T>();
    // An array without elements is never read; the projection refuses it by its shape.
    if array.shape().contains(&0) {
        return Ok(());
    }
    // Only the address is looked at: the pointer is not dereferenced.
    let data = array.data() as usize;
    let strides_ok = array
        .shape()
        .iter()
        .zip(array.strides())
        .all(|(&n, &s)| n <= 1 || s.unsigned_abs().is_multiple_of(size));
    if data.is_multiple_of(align_of::<T>()) && strides_ok {
        return Ok(());
    }
    let mut msg = format!(
        "the array's {} elements are not aligned in memory (data at address {data:#x}, strides \
         {:?} bytes; each must be a multiple of {size})",
        numpy_name(T::DTYPE),
        array.strides()
    );
    match access {
        // Not `np.ascontiguousarray`, which returns a contiguous array as it is, unaligned.
        Access::Read => msg.push_str(": pass an aligned copy, x.copy()"),
        Access::Write => msg.push_str(
            ": it cannot be projected in place; project it out of place \
             (y = P.project(x, ...); x[...] = y) or keep the data in an aligned array",
        ),
    }
    Err(PyValueError::new_err(msg))
}

/// Writing through a view whose elements overlap (two indices, one address) is undefined
/// behaviour for a mutable view, and would make the result depend on the order of writes.
/// Sorted by stride, each axis must step over the whole extent of the ones inside it: this
/// accepts every slice, transpose and reversal of a dense array and refuses broadcasts and
/// `as_strided` tricks.
fn check_no_overlap(array: &Bound<'_, PyUntypedArray>) -> PyResult<()> {
    // Without elements nothing overlaps (NumPy gives empty arrays zero strides).
    if array.shape().contains(&0) {
        return Ok(());
    }
    let mut axes: Vec<(usize, usize)> = array
        .shape()
        .iter()
        .zip(array.strides())
        .filter(|&(&n, _)| n > 1)
        .map(|(&n, &s)| (s.unsigned_abs(), n))
        .collect();
    axes.sort_unstable();
    // The least stride the next axis may have: the bytes spanned by the axes inside it.
    let mut span = array.dtype().itemsize();
    for &(stride, n) in &axes {
        if stride < span {
            let mut msg = String::from(
                "the array's elements overlap in memory (a broadcast or as_strided view, \
                 strides ",
            );
            let _ = write!(msg, "{:?}", array.strides());
            msg.push_str(
                " bytes), so it cannot be projected in place: project a copy, \
                 y = P.project(x, ...), instead",
            );
            return Err(PyValueError::new_err(msg));
        }
        span = stride.saturating_mul(n);
    }
    Ok(())
}

/// NumPy's name of the dtype.
pub fn numpy_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F32 => "float32",
        DType::F64 => "float64",
    }
}

/// An element type the bindings compute on (multiproj's), with the NumPy element type its data
/// is held as: itself, or `u16` for bfloat16, which NumPy lacks.
pub trait Float: Element {
    type Np: numpy::Element + Copy;
    /// The elements of `v` as `Self`.
    fn view(v: ArrayViewD<'_, Self::Np>) -> ArrayViewD<'_, Self>;
    /// The elements of `v` as `Self`, writable.
    fn view_mut(v: ArrayViewMutD<'_, Self::Np>) -> ArrayViewMutD<'_, Self>;
    /// A result as NumPy holds it, in the same memory order.
    fn into_np(a: ArrayD<Self>) -> ArrayD<Self::Np>;
}

macro_rules! numpy_float {
    ($($t:ty),*) => {$(
        impl Float for $t {
            type Np = $t;
            fn view(v: ArrayViewD<'_, $t>) -> ArrayViewD<'_, $t> {
                v
            }
            fn view_mut(v: ArrayViewMutD<'_, $t>) -> ArrayViewMutD<'_, $t> {
                v
            }
            fn into_np(a: ArrayD<$t>) -> ArrayD<$t> {
                a
            }
        }
    )*};
}
numpy_float!(half::f16, f32, f64);

impl Float for half::bf16 {
    type Np = u16;
    fn view(v: ArrayViewD<'_, u16>) -> ArrayViewD<'_, half::bf16> {
        let raw = v.raw_view().cast::<half::bf16>();
        // SAFETY: `half::bf16` is `#[repr(transparent)]` over `u16` (same size, alignment, and
        // every bit pattern valid), so the raw view's pointer, shape and strides describe
        // valid `bf16` elements; the lifetime is the borrowed `u16` view's.
        unsafe { raw.deref_into_view() }
    }
    fn view_mut(v: ArrayViewMutD<'_, u16>) -> ArrayViewMutD<'_, half::bf16> {
        let mut v = v;
        let raw = v.raw_view_mut().cast::<half::bf16>();
        // SAFETY: as in `view`; the mutable borrow of the `u16` view is moved into the result,
        // so the memory has one writer.
        unsafe { raw.deref_into_view_mut() }
    }
    fn into_np(a: ArrayD<half::bf16>) -> ArrayD<u16> {
        // `map` keeps a contiguous array's memory order.
        a.map(|v| v.to_bits())
    }
}
