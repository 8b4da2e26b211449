//! `multiproj.Report` and `multiproj.Level`: what a projection did, as native, immutable
//! objects. A report holds the library's `Report` and builds the Python values of a field only
//! when it is read (the arrays of survivors and thresholds, the levels, the stage times), so
//! returning one costs next to nothing on a small array's projection.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// What a projection did, as returned by `Projection.project_` and
/// `Projection.project_with_report`.
///
/// Attributes:
///     backend: "jit" or "interp".
///     radius: the radius projected onto (the one chosen for a target).
///     norm_before: the multi-level norm of the input.
///     norm_after: the result's norm as the solve set it (the measured one to rounding, and
///         never above the radius).
///     groups: the number of innermost groups (e.g. rows for `l1 over dim0 of linf over dim1`).
///     untouched: innermost groups left as they were (inside their ball).
///     zeroed: innermost groups set to zero.
///     projected: innermost groups clipped, scaled or shrunk.
///     survivors: the indices of the top-level groups that come out non-zero — which rows,
///         columns or features were kept (an int64 array; empty for a single-level spec).
///     levels: what happened at every level of groups, outermost first (a tuple of `Level`);
///         the last are the innermost groups, whose counts are `untouched`, `projected`,
///         `zeroed`.
///     inner_thresholds: for an l1 innermost level, the soft threshold of each innermost group
///         (0 where it was kept or zeroed); empty otherwise.
///     stages: seconds per stage, in execution order ("compile", "reduce", "upper-reduce",
///         "solve", "threshold", "apply"); stages with nothing to do are left out.
///     total_seconds: the time of all stages together.
///     multiplier: for an exact projection that needed its own solve (`l1 of linf`, `l2 of
///         linf`, `l2 of l1`), its common multiplier (θ for `l1 of linf`: every surviving row
///         has `sum(max(|y| - clip, 0)) = θ`); None otherwise.
#[pyclass(frozen, module = "multiproj", name = "Report")]
#[derive(Debug)]
pub struct Report {
    inner: multiproj::Report,
}

impl Report {
    pub fn new(inner: multiproj::Report) -> Self {
        Report { inner }
    }
}

#[pymethods]
impl Report {
    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.backend.name()
    }

    #[getter]
    fn radius(&self) -> f64 {
        self.inner.radius
    }

    #[getter]
    fn multiplier(&self) -> Option<f64> {
        self.inner.exact.as_ref().map(|e| e.theta)
    }

    #[getter]
    fn norm_before(&self) -> f64 {
        self.inner.norm_before
    }

    #[getter]
    fn norm_after(&self) -> f64 {
        self.inner.norm_after
    }

    #[getter]
    fn groups(&self) -> usize {
        self.inner.groups
    }

    #[getter]
    fn untouched(&self) -> usize {
        self.inner.untouched
    }

    #[getter]
    fn zeroed(&self) -> usize {
        self.inner.zeroed
    }

    #[getter]
    fn projected(&self) -> usize {
        self.inner.projected
    }

    #[getter]
    fn survivors<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let s: Vec<i64> = self.inner.survivors.iter().map(|&g| g as i64).collect();
        PyArray1::from_vec(py, s)
    }

    #[getter]
    fn inner_thresholds<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.inner.inner_thresholds.clone())
    }

    #[getter]
    fn levels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let levels = self
            .inner
            .levels
            .iter()
            .map(|l| Level { inner: l.clone() })
            .map(|l| Bound::new(py, l))
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, levels)
    }

    #[getter]
    fn stages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stages = PyDict::new(py);
        for (stage, time) in &self.inner.stages {
            stages.set_item(stage.name(), time.as_secs_f64())?;
        }
        Ok(stages)
    }

    #[getter]
    fn total_seconds(&self) -> f64 {
        self.inner.total_time().as_secs_f64()
    }

    /// Reports are equal when they say the same about the projection (stage times aside).
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        let Ok(other) = other.cast::<Report>() else {
            return false;
        };
        let (a, b) = (&self.inner, &other.get().inner);
        a.backend == b.backend
            && a.radius.to_bits() == b.radius.to_bits()
            && a.norm_before.to_bits() == b.norm_before.to_bits()
            && a.groups == b.groups
            && (a.untouched, a.zeroed, a.projected) == (b.untouched, b.zeroed, b.projected)
            && a.survivors == b.survivors
            && a.levels == b.levels
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "Report(backend={:?}, radius={}, norm_before={}, norm_after={}, groups={}, \
             untouched={}, zeroed={}, projected={}, survivors=<{} groups>)",
            r.backend.name(),
            r.radius,
            r.norm_before,
            r.norm_after,
            r.groups,
            r.untouched,
            r.zeroed,
            r.projected,
            r.survivors.len()
        )
    }
}

/// What one level of groups became (an entry of `Report.levels`).
///
/// Attributes:
///     axes: the axes these groups are indexed by (this level's and those above).
///     norm: the norm whose projection set their radii ("l1", "l2", "linf").
///     groups: how many groups there are.
///     kept: groups left as they were.
///     shrunk: groups clipped, scaled or shrunk.
///     zeroed: groups set to zero.
///     thresholds: for an l1 level, the soft threshold of each projection made at this level,
///         one per group of the level above (0 where nothing was shrunk); empty otherwise.
#[pyclass(frozen, module = "multiproj", name = "Level")]
#[derive(Debug)]
pub struct Level {
    inner: multiproj::LevelReport,
}

#[pymethods]
impl Level {
    #[getter]
    fn axes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.inner.axes)
    }

    #[getter]
    fn norm(&self) -> String {
        self.inner.norm.to_string()
    }

    #[getter]
    fn groups(&self) -> usize {
        self.inner.groups
    }

    #[getter]
    fn kept(&self) -> usize {
        self.inner.kept
    }

    #[getter]
    fn shrunk(&self) -> usize {
        self.inner.shrunk
    }

    #[getter]
    fn zeroed(&self) -> usize {
        self.inner.zeroed
    }

    #[getter]
    fn thresholds<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.inner.thresholds.clone())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Level>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __repr__(&self) -> String {
        let l = &self.inner;
        format!(
            "Level(axes={:?}, norm={:?}, groups={}, kept={}, shrunk={}, zeroed={})",
            l.axes,
            l.norm.to_string(),
            l.groups,
            l.kept,
            l.shrunk,
            l.zeroed
        )
    }
}
