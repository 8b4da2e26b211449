//! The native `Projection` class: a compiled [`multiproj::Projection`] and the four things
//! Python does with it — project out of place, project in place, take the norm, explain the
//! plan — each on a NumPy array viewed where it lies, with the GIL released while the passes run.
//!
//! The pure-Python `multiproj.Projection` wraps this class and adds what is Python's business:
//! array-likes through `np.asarray`, torch tensors, the one-shot functions.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ndarray::{ArrayD, IxDyn};
use numpy::{BorrowError, PyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use multiproj::{Backend, DType, Order, Report, TensorInfo};

use crate::arrays::{Access, Float, Layout, Typed, type_name};
use crate::errors::{self, Stage};

/// What a projection aims at, from the keyword arguments of a call.
///
/// Only `radius=` so far. A new target (`keep=`, `sparsity=`, `radius_frac=`) is a field here, a
/// keyword in the methods' `signature`s and the `.pyi` stub, and its arm in
/// [`Target::configure`], which hands it to the facade's builder (`with_radius` and the like,
/// which also refuse a target given twice, by the spec and at run time).
#[derive(Clone, Copy, Debug, Default)]
struct Target {
    radius: Option<f64>,
}

impl Target {
    /// The projection to run: the compiled one, or a clone configured for this call. Clones
    /// share the plan cache, so configuring one costs a copy of the spec, not a new plan.
    fn configure(
        self,
        base: &multiproj::Projection,
    ) -> Result<Cow<'_, multiproj::Projection>, multiproj::Error> {
        match self.radius {
            None => Ok(Cow::Borrowed(base)),
            Some(r) => Ok(Cow::Owned(base.clone().with_radius(r)?)),
        }
    }
}

/// A compiled multi-level norm-ball projection (the native half of
/// `multiproj.Projection`; use that class).
#[pyclass(frozen, module = "multiproj._multiproj", name = "Projection")]
#[derive(Debug)]
pub struct Projection {
    inner: multiproj::Projection,
}

#[pymethods]
impl Projection {
    /// Parses and checks `spec` once; `backend` is "jit" (the default) or "interp".
    #[new]
    #[pyo3(signature = (spec, *, backend = "jit"))]
    fn new(py: Python<'_>, spec: &str, backend: &str) -> PyResult<Self> {
        let backend: Backend = backend.parse().map_err(|_| {
            PyValueError::new_err(format!(
                "unknown backend {backend:?}: expected \"jit\" or \"interp\""
            ))
        })?;
        let inner = multiproj::Projection::compile(spec)
            .map_err(|e| errors::to_py(py, &e, spec, Stage::Compile))?
            .with_backend(backend);
        Ok(Projection { inner })
    }

    /// The spec, as written.
    #[getter]
    fn spec(&self) -> &str {
        &self.inner.spec().source
    }

    /// The radius fixed by the spec (`... <= R`), or None.
    #[getter]
    fn radius(&self) -> Option<f64> {
        self.inner.radius()
    }

    /// "jit" or "interp".
    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.backend().name()
    }

    /// The projection of the ndarray `x` as a new array of the same shape, dtype and memory
    /// order of axes.
    #[pyo3(signature = (x, *, radius = None))]
    fn project<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.project_with_report(py, x, radius)?.0)
    }

    /// Like `project`, also returning the report: `(array, report)`.
    #[pyo3(signature = (x, *, radius = None))]
    fn project_with_report<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: Option<f64>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let proj = self.configured(py, Target { radius })?;
        let (out, report) = match Layout::of(x, Access::Read)? {
            Typed::F32(a) => project_typed(py, &proj, a)?,
            Typed::F64(a) => project_typed(py, &proj, a)?,
        };
        Ok((out, report_to_py(py, &report)?))
    }

    /// Projects the writable ndarray `x` in place and returns the report.
    #[pyo3(signature = (x, *, radius = None))]
    fn project_<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let proj = self.configured(py, Target { radius })?;
        let report = match Layout::of(x, Access::Write)? {
            Typed::F32(a) => project_in_place_typed(py, &proj, a)?,
            Typed::F64(a) => project_in_place_typed(py, &proj, a)?,
        };
        report_to_py(py, &report)
    }

    /// The multi-level norm of the ndarray `x`.
    fn norm(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<f64> {
        match Layout::of(x, Access::Read)? {
            Typed::F32(a) => norm_typed(py, &self.inner, a),
            Typed::F64(a) => norm_typed(py, &self.inner, a),
        }
    }

    /// The text of `multiproj explain SPEC --shape ...`: the syntax tree, the IR, the normalized
    /// levels and the plan for an array of this shape and dtype ("float32" or "float64"), in
    /// `order` "C" or "F", or with these `strides` (in elements, as a view has them).
    #[pyo3(signature = (shape, *, dtype = "float64", order = "C", strides = None))]
    fn explain(
        &self,
        py: Python<'_>,
        shape: Vec<usize>,
        dtype: &str,
        order: &str,
        strides: Option<Vec<isize>>,
    ) -> PyResult<String> {
        let dtype = match dtype {
            "float32" | "f32" => DType::F32,
            "float64" | "f64" => DType::F64,
            other => {
                return Err(PyTypeError::new_err(format!(
                    "multiproj computes on float32 and float64, not {other}"
                )));
            }
        };
        let order = match order {
            "C" | "c" => Order::C,
            "F" | "f" => Order::F,
            other => {
                return Err(PyValueError::new_err(format!(
                    "order must be \"C\" or \"F\", not {other:?}"
                )));
            }
        };
        let fits = shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
            .is_some_and(|bytes| bytes <= isize::MAX as usize);
        if !fits {
            return Err(PyValueError::new_err(format!(
                "the shape {shape:?} is too large for this machine's address space"
            )));
        }
        let tensor = match strides {
            None => TensorInfo::with_order(&shape, dtype, order),
            Some(strides) if strides.len() == shape.len() => TensorInfo {
                shape: shape.clone(),
                strides,
                dtype,
            },
            Some(strides) => {
                return Err(PyValueError::new_err(format!(
                    "{} strides for a shape of {} dimensions",
                    strides.len(),
                    shape.len()
                )));
            }
        };
        let spec = self.inner.spec();
        let stage = Stage::Array {
            shape: &shape,
            dtype,
        };
        let ir = multiproj::compiler::check(spec, &tensor)
            .map_err(|e| errors::to_py(py, &e.into(), &spec.source, stage))?;
        let plan = multiproj::compiler::plan(&ir);
        let mut text = String::new();
        section(&mut text, "syntax tree", &spec.to_string());
        section(&mut text, "IR", &ir.to_string());
        section(
            &mut text,
            "normalized levels",
            &plan.normalized().to_string(),
        );
        section(&mut text, "plan", &plan.to_string());
        Ok(text)
    }

    fn __repr__(&self) -> String {
        format!(
            "Projection({:?}, backend={:?})",
            self.inner.spec().source,
            self.inner.backend().name()
        )
    }
}

impl Projection {
    fn configured(
        &self,
        py: Python<'_>,
        target: Target,
    ) -> PyResult<Cow<'_, multiproj::Projection>> {
        target
            .configure(&self.inner)
            .map_err(|e| errors::to_py(py, &e, &self.inner.spec().source, Stage::Compile))
    }
}

/// `== heading ==`, the body, and a blank line between sections: `multiproj explain`'s layout.
fn section(out: &mut String, heading: &str, body: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str("== ");
    out.push_str(heading);
    out.push_str(" ==\n");
    out.push_str(body.trim_end());
    out.push('\n');
}

/// Runs `f` with the GIL released, a panic in it becoming a `multiproj.Error`.
///
/// Everything `f` touches is Rust data or an ndarray view into an array whose rust-numpy
/// borrow the caller holds until `f` returns: the borrow keeps the array alive (and NumPy
/// refuses to resize an array others hold a reference to), and keeps other rust-numpy code —
/// another multiproj call in another thread — from writing it meanwhile. Pure Python code in
/// another thread can still write into the same array while it is projected, as with any
/// NumPy function that releases the GIL; the result is then unspecified (but memory-safe for
/// floats: every bit pattern is a valid f32 or f64).
fn detached<R: Send>(py: Python<'_>, f: impl FnOnce() -> R + Send) -> PyResult<R> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|payload| errors::panic_to_py(py, payload.as_ref()))
}

fn stage<'a, T: Float>(shape: &'a [usize]) -> Stage<'a> {
    Stage::Array {
        shape,
        dtype: T::DTYPE,
    }
}

fn project_typed<'py, T: Float>(
    py: Python<'py>,
    proj: &multiproj::Projection,
    array: &Bound<'py, PyArrayDyn<T>>,
) -> PyResult<(Bound<'py, PyAny>, Report)> {
    let shape = array.shape().to_vec();
    let borrowed = array.try_readonly().map_err(|e| borrow_error(e, array))?;
    let result = if array.is_empty() {
        // No view of an empty array: its data pointer need not be valid. The library refuses
        // the shape (a ShapeError) without reading any element.
        proj.project_with_report(&empty::<T>(&shape)?)
    } else {
        let view = borrowed.as_array();
        detached(py, || proj.project_with_report(&view))?
    };
    let (out, report) =
        result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))?;
    // The result's buffer becomes the NumPy array's: no copy, the memory order kept.
    Ok((PyArray::from_owned_array(py, out).into_any(), report))
}

fn project_in_place_typed<T: Float>(
    py: Python<'_>,
    proj: &multiproj::Projection,
    array: &Bound<'_, PyArrayDyn<T>>,
) -> PyResult<Report> {
    let shape = array.shape().to_vec();
    let mut borrowed = array.try_readwrite().map_err(|e| borrow_error(e, array))?;
    let result = if array.is_empty() {
        proj.project_in_place(&mut empty::<T>(&shape)?)
    } else {
        let mut view = borrowed.as_array_mut();
        detached(py, || proj.project_in_place(&mut view))?
    };
    result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))
}

fn norm_typed<T: Float>(
    py: Python<'_>,
    proj: &multiproj::Projection,
    array: &Bound<'_, PyArrayDyn<T>>,
) -> PyResult<f64> {
    let shape = array.shape().to_vec();
    let borrowed = array.try_readonly().map_err(|e| borrow_error(e, array))?;
    let result = if array.is_empty() {
        proj.norm(&empty::<T>(&shape)?)
    } else {
        let view = borrowed.as_array();
        detached(py, || proj.norm(&view))?
    };
    result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))
}

/// An array of `shape`, which has a zero extent, without elements to allocate.
fn empty<T: Float>(shape: &[usize]) -> PyResult<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), Vec::new())
        .map_err(|e| PyValueError::new_err(format!("an empty array of shape {shape:?}: {e}")))
}

fn borrow_error<T: Float>(e: BorrowError, array: &Bound<'_, PyArrayDyn<T>>) -> PyErr {
    match e {
        BorrowError::NotWriteable => PyValueError::new_err(format!(
            "the array is read-only ({} with writeable=False: a broadcast view, an array over \
             bytes or a memory map opened read-only): project_ writes into its argument; use \
             P.project(x) for a new array, or pass a writable copy",
            type_name(array.as_any())
        )),
        BorrowError::AlreadyBorrowed => PyValueError::new_err(
            "the array is being written by another multiproj call (project_ in another \
             thread), or is being read while project_ writes it: wait for that call to finish",
        ),
        other => PyValueError::new_err(format!("the array cannot be borrowed: {other}")),
    }
}

/// The report as a `multiproj.Report` (a frozen dataclass defined in Python).
fn report_to_py<'py>(py: Python<'py>, report: &Report) -> PyResult<Bound<'py, PyAny>> {
    static REPORT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let class = REPORT.import(py, "multiproj._report", "Report")?;
    let stages = PyDict::new(py);
    for (stage, time) in &report.stages {
        stages.set_item(stage.name(), time.as_secs_f64())?;
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("backend", report.backend.name())?;
    kwargs.set_item("radius", report.radius)?;
    kwargs.set_item("norm_before", report.norm_before)?;
    kwargs.set_item("groups", report.groups)?;
    kwargs.set_item("untouched", report.untouched)?;
    kwargs.set_item("zeroed", report.zeroed)?;
    kwargs.set_item("projected", report.projected)?;
    kwargs.set_item("stages", stages)?;
    class.call((), Some(&kwargs))
}
