//! `multiproj._multiproj`: the native module of the Python package `multiproj`, a thin PyO3
//! layer over the Rust library (the `multiproj` facade): no numerics of its own.
//!
//! - `projection`: the `Projection` class — compile once, then project, project in place,
//!   take the norm, explain the plan; the GIL released while the passes run;
//! - `arrays`: NumPy arrays viewed as `ndarray` views where they lie (any strides, f32 and
//!   f64), with the dtype and layout checks that make the views sound;
//! - `errors`: `multiproj::Error` mapped once to the exceptions of `multiproj/_errors.py`;
//! - `report`: `Report` and `Level`, what a projection did.
//!
//! The Python half (`python/multiproj/`) re-exports these and adds array-likes, torch tensors
//! and the one-shot functions. Build and install with `pip install ./python` (maturin).

mod arrays;
mod errors;
mod projection;
mod report;

use pyo3::prelude::*;

/// The native half of multiproj's Python package; import `multiproj` instead.
#[pymodule]
fn _multiproj(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<projection::Projection>()?;
    m.add_class::<report::Report>()?;
    m.add_class::<report::Level>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
