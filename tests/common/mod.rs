//! Helpers shared by the integration tests: element access that does not care whether a tensor
//! is f64, f32, f16 or bf16, comparisons that name the worst element instead of just failing, and layout
//! checks. Each test crate uses a different subset, hence the `allow(dead_code)`.
#![allow(dead_code)]

use std::fmt::Write as _;

use multiproj::Element;
use ndarray::{ArrayViewD, Dimension};

/// An element type the tests build, project and compare bit for bit.
pub trait Float: Element + std::fmt::LowerExp {
    /// The NumPy-style name, as in the fixture manifest.
    const NAME: &'static str;
    /// The bit pattern, widened to 64 bits.
    fn bits(self) -> u64;
}

/// An element type the tests also read from and write to `.npy` files with `ndarray-npy`
/// (f64 and f32: it has no 16-bit types).
pub trait NpyFloat: Float + ndarray_npy::ReadableElement + ndarray_npy::WritableElement {}
impl<T: Float + ndarray_npy::ReadableElement + ndarray_npy::WritableElement> NpyFloat for T {}

impl Float for f64 {
    const NAME: &'static str = "f64";
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Float for multiproj::half::f16 {
    const NAME: &'static str = "f16";
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Float for multiproj::half::bf16 {
    const NAME: &'static str = "bf16";
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

/// `true` when the array is dense in Fortran order (first axis contiguous).
pub fn is_fortran<T>(x: &ArrayViewD<'_, T>) -> bool {
    x.t().is_standard_layout()
}

/// `"C"` or `"F"` for dense arrays (a vector or a single element is both; `"C"` wins), or
/// `"strided"`.
pub fn layout_name<T>(x: &ArrayViewD<'_, T>) -> &'static str {
    if x.is_standard_layout() {
        "C"
    } else if is_fortran(x) {
        "F"
    } else {
        "strided"
    }
}

/// `true` when `x` is dense in the named order (`"C"` or `"F"`).
pub fn has_order<T>(x: &ArrayViewD<'_, T>, order: &str) -> bool {
    match order {
        "C" => x.is_standard_layout(),
        "F" => is_fortran(x),
        other => panic!("unknown memory order {other:?} (expected \"C\" or \"F\")"),
    }
}

/// Largest magnitude in `x`, in f64 (0 for an empty array).
pub fn max_abs<T: Element>(x: &ArrayViewD<'_, T>) -> f64 {
    x.iter().fold(0.0, |m: f64, v| m.max(v.to_f64().abs()))
}

fn check_shapes<T>(got: &ArrayViewD<'_, T>, expected: &ArrayViewD<'_, T>) -> Result<(), String> {
    if got.shape() == expected.shape() {
        Ok(())
    } else {
        Err(format!(
            "shape differs: got {:?}, expected {:?}",
            got.shape(),
            expected.shape()
        ))
    }
}

/// Checks `|got - expected| <= atol + rtol·|expected|` element by element (by logical index,
/// whatever the layouts). On failure, says how many elements fail and which one fails worst.
pub fn compare_close<T: Element>(
    got: &ArrayViewD<'_, T>,
    expected: &ArrayViewD<'_, T>,
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    check_shapes(got, expected)?;
    let mut failures = 0usize;
    // (ratio of the difference to the tolerance, index, got, expected)
    let mut worst: Option<(f64, Vec<usize>, f64, f64)> = None;
    for (idx, &e) in expected.indexed_iter() {
        let idx = idx.slice();
        let (g, e) = (got[idx].to_f64(), e.to_f64());
        let diff = (g - e).abs();
        let tol = atol + rtol * e.abs();
        // A NaN anywhere fails and ranks worst.
        if diff.is_nan() || diff > tol {
            failures += 1;
            let ratio = if diff.is_nan() {
                f64::INFINITY
            } else {
                diff / tol
            };
            if worst.as_ref().is_none_or(|w| ratio > w.0) {
                worst = Some((ratio, idx.to_vec(), g, e));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((ratio, idx, g, e)) => Err(format!(
            "{failures} of {} elements differ by more than {atol:e} + {rtol:e}·|expected|; \
             worst at {idx:?}: got {g:e}, expected {e:e}, |diff| {:e} ({ratio:.3e} × the tolerance)",
            expected.len(),
            (g - e).abs()
        )),
    }
}

/// Checks that `got` and `expected` hold the same bits at every logical index.
pub fn compare_bits<T: Float>(
    got: &ArrayViewD<'_, T>,
    expected: &ArrayViewD<'_, T>,
) -> Result<(), String> {
    check_shapes(got, expected)?;
    let mut failures = 0usize;
    let mut first: Option<(Vec<usize>, T, T)> = None;
    for (idx, &e) in expected.indexed_iter() {
        let idx = idx.slice();
        let g = got[idx];
        if g.bits() != e.bits() {
            failures += 1;
            if first.is_none() {
                first = Some((idx.to_vec(), g, e));
            }
        }
    }
    match first {
        None => Ok(()),
        Some((idx, g, e)) => Err(format!(
            "{failures} of {} elements differ in their bits; first at {idx:?}: \
             got {g:e} ({:#018x}), expected {e:e} ({:#018x})",
            expected.len(),
            g.bits(),
            e.bits()
        )),
    }
}

/// A short listing of a small array for failure messages (the first `max` values).
pub fn preview<T: Element>(x: &ArrayViewD<'_, T>, max: usize) -> String {
    let mut s = String::from("[");
    for (i, v) in x.iter().take(max).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{:?}", v);
    }
    if x.len() > max {
        let _ = write!(s, ", … ({} values)", x.len());
    }
    s.push(']');
    s
}
