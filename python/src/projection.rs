//! The native `Projection` class: a compiled [`multiproj::Projection`] and the four things
//! Python does with it — project out of place, project in place, take the norm, explain the
//! plan — each on a NumPy array viewed where it lies, with the GIL released while the passes run.
//!
//! The pure-Python `multiproj.Projection` wraps this class and adds what is Python's business:
//! array-likes through `np.asarray`, torch tensors, the one-shot functions.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ndarray::{ArrayD, IxDyn};
use numpy::{BorrowError, PyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use multiproj::{Backend, DType, Order, RadiusTarget, Report, TensorInfo};

use crate::arrays::{Access, Float, Layout, Typed, type_name};
use crate::errors::{self, Stage};

/// What a call aims at, from its keyword arguments: a radius, or a target the radius is chosen
/// for from the data (`keep=`, `sparsity=`, `radius_frac=`). At most one of them (an error if
/// several); `None` means the radius the spec fixes (`... <= R`).
fn chosen(
    radius: Option<f64>,
    keep: Option<usize>,
    sparsity: Option<f64>,
    radius_frac: Option<f64>,
) -> PyResult<Option<RadiusTarget>> {
    if keep.is_none() && sparsity.is_none() && radius_frac.is_none() {
        // The common call: a radius or none (no list to build).
        return Ok(radius.map(RadiusTarget::Radius));
    }
    let given: Vec<(&str, RadiusTarget)> = [
        radius.map(|r| ("radius", RadiusTarget::Radius(r))),
        keep.map(|k| ("keep", RadiusTarget::Keep(k))),
        sparsity.map(|f| ("sparsity", RadiusTarget::Sparsity(f))),
        radius_frac.map(|f| ("radius_frac", RadiusTarget::RadiusFrac(f))),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        [] => Ok(None),
        [(_, t)] => Ok(Some(*t)),
        several => {
            let names: Vec<String> = several.iter().map(|(n, _)| format!("{n}=")).collect();
            Err(PyValueError::new_err(format!(
                "give one of radius=, keep=, sparsity=, radius_frac=, not {}",
                names.join(" and ")
            )))
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
    #[pyo3(signature = (x, *, radius = None, keep = None, sparsity = None, radius_frac = None))]
    fn project<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: Option<f64>,
        keep: Option<usize>,
        sparsity: Option<f64>,
        radius_frac: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(self
            .project_with_report(py, x, radius, keep, sparsity, radius_frac)?
            .0)
    }

    /// Like `project`, also returning the report: `(array, report)`.
    #[pyo3(signature = (x, *, radius = None, keep = None, sparsity = None, radius_frac = None))]
    fn project_with_report<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: Option<f64>,
        keep: Option<usize>,
        sparsity: Option<f64>,
        radius_frac: Option<f64>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let target = chosen(radius, keep, sparsity, radius_frac)?;
        let proj = &self.inner;
        let (out, report) = match Layout::of(x, Access::Read)? {
            Typed::F16(a) => project_typed::<half::f16>(py, proj, a, target)?,
            Typed::BF16(a) => project_typed::<half::bf16>(py, proj, a, target)?,
            Typed::F32(a) => project_typed::<f32>(py, proj, a, target)?,
            Typed::F64(a) => project_typed::<f64>(py, proj, a, target)?,
        };
        Ok((out, report_to_py(py, report)?))
    }

    /// Projects the writable ndarray `x` in place and returns the report.
    #[pyo3(signature = (x, *, radius = None, keep = None, sparsity = None, radius_frac = None))]
    fn project_<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: Option<f64>,
        keep: Option<usize>,
        sparsity: Option<f64>,
        radius_frac: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let target = chosen(radius, keep, sparsity, radius_frac)?;
        let proj = &self.inner;
        let report = match Layout::of(x, Access::Write)? {
            Typed::F16(a) => project_in_place_typed::<half::f16>(py, proj, a, target)?,
            Typed::BF16(a) => project_in_place_typed::<half::bf16>(py, proj, a, target)?,
            Typed::F32(a) => project_in_place_typed::<f32>(py, proj, a, target)?,
            Typed::F64(a) => project_in_place_typed::<f64>(py, proj, a, target)?,
        };
        report_to_py(py, report)
    }

    /// Projects this process's shard `x` (a writable ndarray) of a tensor split along `axis`
    /// across the processes of `comm`, in place, together with them (each calls this with its
    /// own shard, in rank order along `axis`), and returns the whole tensor's report. `comm`
    /// provides `rank()`, `size()`, `all_gather(a)` (every process's float64 array, in rank
    /// order) and `all_reduce(a, op)` (op "sum" or "max"; the same bits on every process):
    /// `multiproj.distributed.TorchCommunicator` is one over torch.distributed.
    #[pyo3(signature = (x, axis, comm, *, radius = None, keep = None, sparsity = None, radius_frac = None))]
    #[allow(clippy::too_many_arguments)]
    fn project_shard_<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        axis: usize,
        comm: &Bound<'py, PyAny>,
        radius: Option<f64>,
        keep: Option<usize>,
        sparsity: Option<f64>,
        radius_frac: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let target = chosen(radius, keep, sparsity, radius_frac)?;
        let comm = PyComm::new(comm)?;
        let proj = &self.inner;
        let report = match Layout::of(x, Access::Write)? {
            Typed::F16(a) => project_shard_typed::<half::f16>(py, proj, a, axis, &comm, target)?,
            Typed::BF16(a) => project_shard_typed::<half::bf16>(py, proj, a, axis, &comm, target)?,
            Typed::F32(a) => project_shard_typed::<f32>(py, proj, a, axis, &comm, target)?,
            Typed::F64(a) => project_shard_typed::<f64>(py, proj, a, axis, &comm, target)?,
        };
        report_to_py(py, report)
    }

    /// True when the spec asks for the exact Euclidean projection (a leading `exact`).
    #[getter]
    fn exact(&self) -> bool {
        self.inner.is_exact()
    }

    /// The multi-level and the exact projection of the ndarray `x`, compared: a dict with
    /// "radius", "distance" (between the two results) and, under "multi_level" and "exact",
    /// "report", "distance_to_input", "nonzeros", "seconds".
    #[pyo3(signature = (x, *, radius = None, keep = None, sparsity = None, radius_frac = None))]
    fn compare<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: Option<f64>,
        keep: Option<usize>,
        sparsity: Option<f64>,
        radius_frac: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let target = chosen(radius, keep, sparsity, radius_frac)?;
        let proj = &self.inner;
        let c = match Layout::of(x, Access::Read)? {
            Typed::F16(a) => compare_typed::<half::f16>(py, proj, a, target)?,
            Typed::BF16(a) => compare_typed::<half::bf16>(py, proj, a, target)?,
            Typed::F32(a) => compare_typed::<f32>(py, proj, a, target)?,
            Typed::F64(a) => compare_typed::<f64>(py, proj, a, target)?,
        };
        let side = |s: multiproj::Compared| -> PyResult<Bound<'py, PyDict>> {
            let d = PyDict::new(py);
            d.set_item("distance_to_input", s.distance_to_input)?;
            d.set_item("nonzeros", s.nonzeros)?;
            d.set_item("seconds", s.time.as_secs_f64())?;
            d.set_item("report", report_to_py(py, s.report)?)?;
            Ok(d)
        };
        let out = PyDict::new(py);
        out.set_item("radius", c.multi_level.report.radius)?;
        out.set_item("distance", c.distance)?;
        out.set_item("multi_level", side(c.multi_level)?)?;
        out.set_item("exact", side(c.exact)?)?;
        Ok(out)
    }

    /// The multi-level norm of the ndarray `x`.
    fn norm(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<f64> {
        match Layout::of(x, Access::Read)? {
            Typed::F16(a) => norm_typed::<half::f16>(py, &self.inner, a),
            Typed::BF16(a) => norm_typed::<half::bf16>(py, &self.inner, a),
            Typed::F32(a) => norm_typed::<f32>(py, &self.inner, a),
            Typed::F64(a) => norm_typed::<f64>(py, &self.inner, a),
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
            "float16" | "f16" | "half" => DType::F16,
            "bfloat16" | "bf16" => DType::BF16,
            "float32" | "f32" => DType::F32,
            "float64" | "f64" => DType::F64,
            other => {
                return Err(PyTypeError::new_err(format!(
                    "multiproj computes on float16, bfloat16, float32 and float64, not {other}"
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
    array: &Bound<'py, PyArrayDyn<T::Np>>,
    target: Option<RadiusTarget>,
) -> PyResult<(Bound<'py, PyAny>, Report)> {
    let shape = array.shape().to_vec();
    let borrowed = array.try_readonly().map_err(|e| borrow_error(e, array))?;
    let run = |x: &ndarray::ArrayViewD<'_, T>| match target {
        None => proj.project_with_report(x),
        Some(t) => proj.project_to(x, t),
    };
    let result = if array.is_empty() {
        // No view of an empty array: its data pointer need not be valid. The library refuses
        // the shape (a ShapeError) without reading any element.
        run(&empty::<T>(&shape)?.view())
    } else {
        let view = T::view(borrowed.as_array());
        detached(py, || run(&view))?
    };
    let (out, report) =
        result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))?;
    // The result's buffer becomes the NumPy array's: no copy, the memory order kept.
    Ok((
        PyArray::from_owned_array(py, T::into_np(out)).into_any(),
        report,
    ))
}

fn project_in_place_typed<T: Float>(
    py: Python<'_>,
    proj: &multiproj::Projection,
    array: &Bound<'_, PyArrayDyn<T::Np>>,
    target: Option<RadiusTarget>,
) -> PyResult<Report> {
    let shape = array.shape().to_vec();
    let mut borrowed = array.try_readwrite().map_err(|e| borrow_error(e, array))?;
    let run = |x: &mut ndarray::ArrayViewMutD<'_, T>| match target {
        None => proj.project_in_place(x),
        Some(t) => proj.project_in_place_to(x, t),
    };
    let result = if array.is_empty() {
        run(&mut empty::<T>(&shape)?.view_mut())
    } else {
        let mut view = T::view_mut(borrowed.as_array_mut());
        detached(py, || run(&mut view))?
    };
    result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))
}

/// A Python object's collectives as a [`multiproj::runtime::shard::Communicator`]: every call
/// takes the GIL (the projection runs without it) and turns a Python exception into the error
/// text.
struct PyComm {
    obj: Py<PyAny>,
    rank: usize,
    size: usize,
}

impl PyComm {
    fn new(obj: &Bound<'_, PyAny>) -> PyResult<PyComm> {
        let rank: usize = obj.call_method0("rank")?.extract()?;
        let size: usize = obj.call_method0("size")?.extract()?;
        if size == 0 || rank >= size {
            return Err(PyValueError::new_err(format!(
                "the communicator says rank {rank} of {size} processes"
            )));
        }
        Ok(PyComm {
            obj: obj.clone().unbind(),
            rank,
            size,
        })
    }
}

fn py_text(e: PyErr) -> String {
    Python::attach(|py| {
        let v = e.value(py);
        format!(
            "{}: {}",
            v.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            v
        )
    })
}

impl multiproj::runtime::shard::Communicator for PyComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_gather(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, String> {
        Python::attach(|py| -> PyResult<Vec<Vec<f64>>> {
            let a = numpy::PyArray1::from_slice(py, local);
            let parts = self.obj.bind(py).call_method1("all_gather", (a,))?;
            let mut out = Vec::with_capacity(self.size);
            for p in parts.try_iter()? {
                let p = p?;
                let v: numpy::PyReadonlyArray1<'_, f64> = p.extract()?;
                out.push(v.as_array().to_vec());
            }
            if out.len() != self.size {
                return Err(PyValueError::new_err(format!(
                    "all_gather returned {} arrays for {} processes",
                    out.len(),
                    self.size
                )));
            }
            Ok(out)
        })
        .map_err(py_text)
    }
    fn all_reduce(
        &self,
        buf: &mut [f64],
        op: multiproj::runtime::shard::ReduceOp,
    ) -> Result<(), String> {
        use multiproj::runtime::shard::ReduceOp;
        Python::attach(|py| -> PyResult<()> {
            let a = numpy::PyArray1::from_slice(py, buf);
            let op = match op {
                ReduceOp::Sum => "sum",
                ReduceOp::Max => "max",
            };
            let r = self.obj.bind(py).call_method1("all_reduce", (a, op))?;
            let v: numpy::PyReadonlyArray1<'_, f64> = r.extract()?;
            let v = v.as_array();
            if v.len() != buf.len() {
                return Err(PyValueError::new_err(format!(
                    "all_reduce returned {} values for {}",
                    v.len(),
                    buf.len()
                )));
            }
            for (b, x) in buf.iter_mut().zip(v.iter()) {
                *b = *x;
            }
            Ok(())
        })
        .map_err(py_text)
    }
}

fn project_shard_typed<T: Float>(
    py: Python<'_>,
    proj: &multiproj::Projection,
    array: &Bound<'_, PyArrayDyn<T::Np>>,
    axis: usize,
    comm: &PyComm,
    target: Option<RadiusTarget>,
) -> PyResult<Report> {
    let shape = array.shape().to_vec();
    let mut borrowed = array.try_readwrite().map_err(|e| borrow_error(e, array))?;
    let result = if array.is_empty() {
        proj.project_shard_in_place(comm, &mut empty::<T>(&shape)?, axis, target)
    } else {
        let mut view = T::view_mut(borrowed.as_array_mut());
        detached(py, || {
            proj.project_shard_in_place(comm, &mut view, axis, target)
        })?
    };
    result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))
}

fn compare_typed<T: Float>(
    py: Python<'_>,
    proj: &multiproj::Projection,
    array: &Bound<'_, PyArrayDyn<T::Np>>,
    target: Option<RadiusTarget>,
) -> PyResult<multiproj::Comparison> {
    let shape = array.shape().to_vec();
    let borrowed = array.try_readonly().map_err(|e| borrow_error(e, array))?;
    let result = if array.is_empty() {
        proj.compare(&empty::<T>(&shape)?.view(), target)
    } else {
        let view = T::view(borrowed.as_array());
        detached(py, || proj.compare(&view, target))?
    };
    result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))
}

fn norm_typed<T: Float>(
    py: Python<'_>,
    proj: &multiproj::Projection,
    array: &Bound<'_, PyArrayDyn<T::Np>>,
) -> PyResult<f64> {
    let shape = array.shape().to_vec();
    let borrowed = array.try_readonly().map_err(|e| borrow_error(e, array))?;
    let result = if array.is_empty() {
        proj.norm(&empty::<T>(&shape)?)
    } else {
        let view = T::view(borrowed.as_array());
        detached(py, || proj.norm(&view))?
    };
    result.map_err(|e| errors::to_py(py, &e, &proj.spec().source, stage::<T>(&shape)))
}

/// An array of `shape`, which has a zero extent, without elements to allocate.
fn empty<T: Float>(shape: &[usize]) -> PyResult<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), Vec::new())
        .map_err(|e| PyValueError::new_err(format!("an empty array of shape {shape:?}: {e}")))
}

fn borrow_error<T: numpy::Element>(e: BorrowError, array: &Bound<'_, PyArrayDyn<T>>) -> PyErr {
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

/// The report as a `multiproj.Report` (a native object that builds its fields when read).
fn report_to_py<'py>(py: Python<'py>, report: Report) -> PyResult<Bound<'py, PyAny>> {
    Ok(Bound::new(py, crate::report::Report::new(report))?.into_any())
}
