//! The element types a tensor may hold. Aggregates and per-group parameters are always f64;
//! results are rounded to the element type once, at the end, to nearest.

use multiproj_compiler::DType;

use crate::float16;

/// f64, f32, or one of the 16-bit formats (`half::f16`, `half::bf16`).
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

impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        float16::F16.widen(self.to_bits())
    }
    /// Rounded once, to nearest even (not `half`'s `from_f64`: see [`float16`]).
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        half::f16::from_bits(float16::F16.round(v))
    }
    fn zero() -> Self {
        half::f16::ZERO
    }
    fn as_f64_slice(_: &[Self]) -> Option<&[f64]> {
        None
    }
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        float16::BF16.widen(self.to_bits())
    }
    /// Rounded once, to nearest even (not `half`'s `from_f64`: see [`float16`]).
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        half::bf16::from_bits(float16::BF16.round(v))
    }
    fn zero() -> Self {
        half::bf16::ZERO
    }
    fn as_f64_slice(_: &[Self]) -> Option<&[f64]> {
        None
    }
}
