//! The element types a tensor may hold. Aggregates and per-group parameters are always f64;
//! results are rounded to the element type once, at the end.

use multiproj_compiler::DType;

/// f32 or f64.
pub trait Element: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn zero() -> Self;
    /// The slice itself when the elements are f64 (so passes written for `f64` can read the
    /// data without a copy), `None` otherwise.
    fn as_f64_slice(s: &[Self]) -> Option<&[f64]>;
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    fn zero() -> Self {
        0.0
    }
    fn as_f64_slice(s: &[Self]) -> Option<&[f64]> {
        Some(s)
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn zero() -> Self {
        0.0
    }
    fn as_f64_slice(_: &[Self]) -> Option<&[f64]> {
        None
    }
}
