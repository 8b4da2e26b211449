//! # multiproj
//!
//! A compiler for **multi-level norm-ball projections** of tensors (Perez & Barlaud,
//! arXiv 2405.02086; Barlaud, Perez & Marmorat, arXiv 2407.16293). A spec such as
//! `l1 over dim0 of linf over dim1` names one norm per level of a tree of aggregates; projecting
//! onto the ball of that multi-level norm zeroes whole rows, columns or channels of a tensor
//! (structured sparsity) in linear time.
//!
//! Compile a spec once, then project as many tensors as you like — of any shape the spec fits,
//! f32 or f64, any memory layout. Plans are cached per layout.
//!
//! ```
//! use multiproj::Projection;
//! use ndarray::array;
//!
//! // The bi-level l1,∞ projection: rows are the groups.
//! let proj = Projection::compile("l1 over dim0 of linf over dim1")?.with_radius(1.0)?;
//! let w = array![[3.0, -1.0, 0.5], [0.1, 0.2, -0.1], [-2.0, 2.5, 1.0]];
//! let x = proj.project(&w)?;
//!
//! // The result lies in the ball: the sum over rows of each row's max |x| is at most 1.
//! assert!(proj.norm(&x)? <= 1.0 + 1e-12);
//! // The weak middle row is gone entirely.
//! assert!(x.row(1).iter().all(|&v| v == 0.0));
//!
//! // In place, e.g. inside a training loop; nothing is recompiled for the same layout.
//! let mut w2 = w.clone();
//! let report = proj.project_in_place(&mut w2)?;
//! assert_eq!(w2, x);
//! assert_eq!(report.zeroed, 1);
//! # Ok::<(), multiproj::Error>(())
//! ```
//!
//! The pipeline is public for tools that want its stages: [`grammar::parse`] → [`compiler::check`]
//! → [`compiler::plan()`] → [`runtime::project`]; and so are a projection's own stages, for
//! callers that combine the aggregates of several parts of the data before one solve:
//! [`Executor::reduce`] → [`GroupNorms::combine`] → [`Solution::new`] → [`Executor::apply`]
//! (see [`runtime::stages`]). `docs/ARCHITECTURE.md` in the repository says where everything
//! lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ndarray::{Array, ArrayBase, Data, DataMut, Dimension};

#[cfg(feature = "mpi")]
pub mod mpi;

pub use multiproj_compiler as compiler;
pub use multiproj_grammar as grammar;
pub use multiproj_runtime as runtime;
/// The 16-bit float types (`half::f16`, `half::bf16`) tensors may hold.
pub use multiproj_runtime::half;

pub use multiproj_compiler::{CheckError, DType, Norm, Order, Plan, RankReq, TensorInfo};
pub use multiproj_grammar::{ParseError, Spec};
pub use multiproj_runtime::{
    Backend, DataError, Element, Executor, GroupNorms, Interpreter, LevelReport, Passes, Progress,
    RadiusTarget, Report, Solution, Stage,
};

/// Everything that can go wrong, by stage.
/// Renders with miette, spec errors with the spec underlined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The spec does not fit the tensor, or the radius is invalid, missing or given twice.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The data cannot be projected (NaN or infinity, a shape mismatch, I/O).
    #[error(transparent)]
    Data(#[from] DataError),
}

impl Error {
    fn inner(&self) -> &dyn miette::Diagnostic {
        match self {
            Error::Parse(e) => e,
            Error::Check(e) => e,
            Error::Data(e) => e,
        }
    }
}

impl miette::Diagnostic for Error {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner().code()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner().help()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.inner().source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.inner().labels()
    }
}

/// A compiled spec: parse once, project many tensors. `Send + Sync`; share it across threads.
///
/// Clones share the plan cache: a plan depends only on the spec and the tensor's layout, never
/// on the radius or the backend, so `proj.clone().with_radius(r)` per call (as the Python
/// package does for its `radius=` argument) plans each layout once for all of them.
#[derive(Debug, Clone)]
pub struct Projection {
    spec: Spec,
    ranks: RankReq,
    radius: Option<f64>,
    backend: Backend,
    plans: Arc<Mutex<HashMap<TensorInfo, Arc<Plan>>>>,
}

impl Projection {
    /// Parses `spec` and checks everything that does not depend on a tensor's shape.
    pub fn compile(spec: &str) -> Result<Self, Error> {
        let spec = grammar::parse(spec)?;
        let ranks = compiler::check_shapeless(&spec)?;
        let radius = spec.radius.as_ref().map(|r| r.node);
        Ok(Projection {
            spec,
            ranks,
            radius,
            backend: Backend::default(),
            plans: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Sets the radius. An error if the spec already fixes one (`<= R`) or if `radius` is not
    /// a finite, non-negative number.
    pub fn with_radius(mut self, radius: f64) -> Result<Self, Error> {
        self.radius = Some(compiler::resolve_radius(
            &self.spec.source,
            self.spec.radius.as_ref(),
            Some(radius),
        )?);
        Ok(self)
    }

    /// Chooses the backend that runs the passes over the data.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The ranks of the tensors the spec fits.
    pub fn ranks(&self) -> RankReq {
        self.ranks
    }

    /// The radius projections run with, if one is set.
    pub fn radius(&self) -> Option<f64> {
        self.radius
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The plan for a tensor layout, from the cache or freshly checked and planned.
    pub fn plan_for(&self, tensor: &TensorInfo) -> Result<Arc<Plan>, Error> {
        if let Some(p) = self.lock_plans().get(tensor) {
            return Ok(p.clone());
        }
        let ir = compiler::check(&self.spec, tensor)?;
        let plan = Arc::new(compiler::plan(&ir));
        self.lock_plans().insert(tensor.clone(), plan.clone());
        Ok(plan)
    }

    /// Number of layouts planned so far (each planned once), by this projection and its clones.
    pub fn cached_plans(&self) -> usize {
        self.lock_plans().len()
    }

    fn lock_plans(&self) -> std::sync::MutexGuard<'_, HashMap<TensorInfo, Arc<Plan>>> {
        // A poisoned cache only means another thread panicked while inserting a plan; the map
        // itself is always in a consistent state, so keep using it.
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn radius_or_err(&self) -> Result<f64, Error> {
        self.radius.ok_or(Error::Check(CheckError::MissingRadius))
    }

    /// Projects `x` onto the ball and returns the result as a new array with the same shape and
    /// the same memory order of axes as `x`.
    pub fn project<T, S, D>(&self, x: &ArrayBase<S, D>) -> Result<Array<T, D>, Error>
    where
        T: Element,
        S: Data<Elem = T>,
        D: Dimension,
    {
        Ok(self.project_with_report(x)?.0)
    }

    /// Like [`Projection::project`], also returning what happened to the groups.
    pub fn project_with_report<T, S, D>(
        &self,
        x: &ArrayBase<S, D>,
    ) -> Result<(Array<T, D>, Report), Error>
    where
        T: Element,
        S: Data<Elem = T>,
        D: Dimension,
    {
        let radius = self.radius_or_err()?;
        let x = x.view().into_dyn();
        let plan = self.plan_for(&tensor_info(&x))?;
        let mut out = runtime::verify::alloc_output::<T>(&plan);
        let report = runtime::project(&plan, &x, &mut out.view_mut(), radius, self.backend)?;
        let out = out
            .into_dimensionality::<D>()
            .map_err(|e| DataError::Internal(format!("output rank: {e}")))?;
        Ok((out, report))
    }

    /// Projects `x` in place. Groups inside their ball are not written. If the data holds a
    /// NaN or an infinity, nothing is written and an error is returned.
    pub fn project_in_place<T, S, D>(&self, x: &mut ArrayBase<S, D>) -> Result<Report, Error>
    where
        T: Element,
        S: DataMut<Elem = T>,
        D: Dimension,
    {
        let radius = self.radius_or_err()?;
        let mut x = x.view_mut().into_dyn();
        let plan = self.plan_for(&tensor_info(&x.view()))?;
        Ok(runtime::project_in_place(
            &plan,
            &mut x,
            radius,
            self.backend,
        )?)
    }

    /// Projects `x` with the radius chosen for this call: a radius, or a target the radius is
    /// chosen for from the data — [`RadiusTarget::Keep`] (exactly K top-level groups survive),
    /// [`RadiusTarget::Sparsity`], [`RadiusTarget::RadiusFrac`]. The report says which radius
    /// it was and which top-level groups survive. An error if the spec fixes the radius.
    ///
    /// ```
    /// use multiproj::{Projection, RadiusTarget};
    /// use ndarray::array;
    ///
    /// let proj = Projection::compile("l1 over dim0 of linf over dim1")?;
    /// let w = array![[3.0, -1.0], [0.1, 0.2], [-2.0, 2.5], [0.5, 0.4]];
    /// let (x, report) = proj.project_to(&w, RadiusTarget::Keep(2))?;
    /// assert_eq!(report.survivors, vec![0, 2]);
    /// assert!(x.row(1).iter().chain(x.row(3).iter()).all(|&v| v == 0.0));
    /// # Ok::<(), multiproj::Error>(())
    /// ```
    pub fn project_to<T, S, D>(
        &self,
        x: &ArrayBase<S, D>,
        target: impl Into<RadiusTarget>,
    ) -> Result<(Array<T, D>, Report), Error>
    where
        T: Element,
        S: Data<Elem = T>,
        D: Dimension,
    {
        let target = self.per_call(target.into())?;
        let x = x.view().into_dyn();
        let plan = self.plan_for(&tensor_info(&x))?;
        let mut out = runtime::verify::alloc_output::<T>(&plan);
        let report =
            Executor::new(self.backend).project_to(&plan, &x, &mut out.view_mut(), target)?;
        let out = out
            .into_dimensionality::<D>()
            .map_err(|e| DataError::Internal(format!("output rank: {e}")))?;
        Ok((out, report))
    }

    /// [`Projection::project_in_place`] with the radius chosen for this call (see
    /// [`Projection::project_to`]).
    pub fn project_in_place_to<T, S, D>(
        &self,
        x: &mut ArrayBase<S, D>,
        target: impl Into<RadiusTarget>,
    ) -> Result<Report, Error>
    where
        T: Element,
        S: DataMut<Elem = T>,
        D: Dimension,
    {
        let target = self.per_call(target.into())?;
        let mut x = x.view_mut().into_dyn();
        let plan = self.plan_for(&tensor_info(&x.view()))?;
        Ok(Executor::new(self.backend).project_in_place_to(&plan, &mut x, target)?)
    }

    /// Projects this process's shard of a tensor split along `axis` across the processes of
    /// `comm`, in place, together with them: every process calls this with its own shard (the
    /// shards in rank order along `axis`, any extents, empty ones included; the other extents
    /// equal). The radius — the spec's, or `target` — is the whole tensor's, and so is the
    /// report. Only O(groups) numbers are communicated; see [`runtime::shard`] for the protocol
    /// and what the result equals.
    ///
    /// ```
    /// use multiproj::{Projection, RadiusTarget};
    /// use multiproj::runtime::shard::Solo;
    /// use ndarray::array;
    ///
    /// // One process: the ordinary projection.
    /// let proj = Projection::compile("l1 over dim0 of linf over dim1")?;
    /// let mut w = array![[3.0, -1.0], [0.1, 0.2], [-2.0, 2.5]];
    /// let report = proj.project_shard_in_place(&Solo, &mut w, 0, Some(RadiusTarget::Radius(1.0)))?;
    /// assert_eq!(report.norm_before, 3.0 + 0.2 + 2.5);
    /// # Ok::<(), multiproj::Error>(())
    /// ```
    pub fn project_shard_in_place<T, S, D, C>(
        &self,
        comm: &C,
        x: &mut ArrayBase<S, D>,
        axis: usize,
        target: Option<RadiusTarget>,
    ) -> Result<Report, Error>
    where
        T: Element,
        S: DataMut<Elem = T>,
        D: Dimension,
        C: runtime::shard::Communicator + ?Sized,
    {
        use runtime::shard::{ShardLayout, project_shard_in_place};
        let target = match target {
            Some(t) => self.per_call(t)?,
            None => RadiusTarget::Radius(self.radius_or_err()?),
        };
        let mut x = x.view_mut().into_dyn();
        let layout = ShardLayout::exchange(comm, x.shape(), T::DTYPE, axis)?;
        // Every process plans the same whole tensor, so they all fail here alike or not at all.
        let global = self.plan_for(&layout.global_info())?;
        let local = if x.is_empty() {
            None
        } else {
            Some(self.plan_for(&tensor_info(&x.view()))?)
        };
        Ok(project_shard_in_place(
            &Executor::new(self.backend),
            comm,
            &layout,
            &global,
            local.as_deref(),
            &mut x,
            target,
        )?)
    }

    /// A radius or target given for one call: refused when the spec fixes the radius.
    fn per_call(&self, target: RadiusTarget) -> Result<RadiusTarget, Error> {
        match (target, self.spec.radius.as_ref()) {
            (RadiusTarget::Radius(r), _) => Ok(RadiusTarget::Radius(compiler::resolve_radius(
                &self.spec.source,
                self.spec.radius.as_ref(),
                Some(r),
            )?)),
            (_, Some(fixed)) => Err(Error::Data(DataError::BadTarget(format!(
                "the spec fixes the radius (`<= {}`), so it cannot be chosen per call",
                fixed.node
            )))),
            (t, None) => Ok(t),
        }
    }

    /// True when the spec asks for the exact Euclidean projection (a leading `exact`).
    pub fn is_exact(&self) -> bool {
        self.spec.exact.is_some()
    }

    /// The same spec, radius and backend, asking for the exact projection (`exact = true`) or
    /// the multi-level one. An error if the spec has no exact projection (three levels that do
    /// not normalize to two).
    pub fn with_exact(&self, exact: bool) -> Result<Projection, Error> {
        if self.is_exact() == exact {
            return Ok(self.clone());
        }
        let mut text = self.spec.canonical();
        if exact {
            text.insert_str(0, "exact ");
        } else {
            text = text
                .strip_prefix("exact ")
                .unwrap_or(text.as_str())
                .to_owned();
        }
        let mut other = Projection::compile(&text)?.with_backend(self.backend);
        if self.spec.radius.is_none() {
            other.radius = self.radius;
        }
        Ok(other)
    }

    /// Projects `x` both ways — the multi-level projection and the exact Euclidean projection
    /// onto the same ball (whichever of the two the spec asks for) — and measures how they
    /// differ: their distances to `x` (the exact one's is the smallest of any point of the
    /// ball), to each other, and what each zeroes. The radius comes from `target` when one is
    /// given (a [`RadiusTarget::Keep`] or [`RadiusTarget::Sparsity`] picks it for the
    /// multi-level projection, and the exact one runs at that radius), else from the spec or
    /// [`Projection::with_radius`]. Both results are held in memory.
    ///
    /// ```
    /// use multiproj::{Projection, RadiusTarget};
    /// use ndarray::array;
    ///
    /// let proj = Projection::compile("l1 over dim0 of linf over dim1")?;
    /// let w = array![[3.0, -1.0, 0.5], [0.1, 0.2, 0.0], [-2.0, 2.5, 2.4], [0.5, 0.4, 0.3]];
    /// let c = proj.compare(&w, Some(RadiusTarget::RadiusFrac(0.5)))?;
    /// assert!(c.exact.distance_to_input <= c.multi_level.distance_to_input);
    /// assert_eq!(c.exact.report.radius, c.multi_level.report.radius);
    /// # Ok::<(), multiproj::Error>(())
    /// ```
    pub fn compare<T, S, D>(
        &self,
        x: &ArrayBase<S, D>,
        target: Option<RadiusTarget>,
    ) -> Result<Comparison, Error>
    where
        T: Element,
        S: Data<Elem = T>,
        D: Dimension,
    {
        let multi = self.with_exact(false)?;
        let exact = self.with_exact(true)?;
        let run = |p: &Projection, target: Option<RadiusTarget>| {
            let start = std::time::Instant::now();
            let (out, report) = match target {
                Some(t) => p.project_to(x, t)?,
                None => p.project_with_report(x)?,
            };
            Ok::<_, Error>((out, report, start.elapsed()))
        };
        let (xm, rm, tm) = run(&multi, target)?;
        let exact_target = target.map(|_| RadiusTarget::Radius(rm.radius));
        let (xe, re, te) = run(&exact, exact_target)?;
        let side = |out: &Array<T, D>, report: Report, time| {
            let d: f64 = x
                .iter()
                .zip(out.iter())
                .map(|(a, b)| {
                    let d = a.to_f64() - b.to_f64();
                    d * d
                })
                .sum();
            Compared {
                report,
                distance_to_input: d.sqrt(),
                nonzeros: out.iter().filter(|v| v.to_f64() != 0.0).count(),
                time,
            }
        };
        let distance: f64 = xm
            .iter()
            .zip(xe.iter())
            .map(|(a, b)| {
                let d = a.to_f64() - b.to_f64();
                d * d
            })
            .sum::<f64>()
            .sqrt();
        Ok(Comparison {
            multi_level: side(&xm, rm, tm),
            exact: side(&xe, re, te),
            distance,
        })
    }

    /// The multi-level norm of `x` (no radius needed).
    pub fn norm<T, S, D>(&self, x: &ArrayBase<S, D>) -> Result<f64, Error>
    where
        T: Element,
        S: Data<Elem = T>,
        D: Dimension,
    {
        let x = x.view().into_dyn();
        let plan = self.plan_for(&tensor_info(&x))?;
        Ok(runtime::norm(&plan, &x, self.backend)?)
    }
}

/// The multi-level and the exact projection of the same data onto the same ball
/// ([`Projection::compare`]).
#[derive(Clone, Debug)]
pub struct Comparison {
    pub multi_level: Compared,
    pub exact: Compared,
    /// `‖X_multi − X_exact‖₂`, the distance between the two results.
    pub distance: f64,
}

/// One side of a [`Comparison`].
#[derive(Clone, Debug)]
pub struct Compared {
    /// The projection's report: its radius, the groups it zeroed, its stage times.
    pub report: Report,
    /// `‖Y − X‖₂`: how far the result moved the data (the exact projection's is the least).
    pub distance_to_input: f64,
    /// Entries of the result that are not zero.
    pub nonzeros: usize,
    /// Wall time of the projection (in memory, output allocated inside).
    pub time: std::time::Duration,
}

/// Layout of an ndarray view as the compiler sees it.
pub fn tensor_info<T: Element>(x: &ndarray::ArrayViewD<'_, T>) -> TensorInfo {
    TensorInfo {
        shape: x.shape().to_vec(),
        strides: x.strides().to_vec(),
        dtype: T::DTYPE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn projection_is_send_and_sync() {
        assert_send_sync::<Projection>();
    }

    #[test]
    fn clones_share_the_plan_cache() {
        let proj = Projection::compile("l1 over dim0 of linf over dim1").unwrap();
        let x = ndarray::Array2::<f64>::ones((3, 4));
        let with_radius = proj.clone().with_radius(1.0).unwrap();
        with_radius.project(&x).unwrap();
        assert_eq!(proj.cached_plans(), 1);
        proj.clone().with_radius(2.0).unwrap().project(&x).unwrap();
        assert_eq!(proj.cached_plans(), 1, "the same layout is planned once");
    }
}

/// The README's Rust example is compiled and run as a doc test, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
