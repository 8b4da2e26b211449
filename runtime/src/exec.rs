//! Running a plan: the backend-independent driver. A backend supplies the passes over the data
//! (reduce, threshold, apply); the driver runs the shared solve on aggregates between them,
//! times every stage, tells an optional [`Progress`] hook how far each has got, and reports what
//! happened to the groups.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ndarray::{ArrayViewD, ArrayViewMutD};

use multiproj_compiler::Plan;

use crate::element::Element;
use crate::error::DataError;
use crate::progress::{Progress, Stage, Ticker};
use crate::solve::{Aggregates, GroupAction};
use crate::{interp, jit};

/// Which backend runs the passes over the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// Cranelift-compiled, vectorized, parallel kernels (the default).
    #[default]
    Jit,
    /// The interpreter: plain code, the oracle.
    Interp,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Jit => "jit",
            Backend::Interp => "interp",
        }
    }

    /// The other backend: what `--verify` compares against.
    pub fn other(self) -> Backend {
        match self {
            Backend::Jit => Backend::Interp,
            Backend::Interp => Backend::Jit,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend `{0}`: expected `jit` or `interp`")]
    Unknown(String),
}

impl FromStr for Backend {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "interp" | "interpreter" => Ok(Backend::Interp),
            "jit" => Ok(Backend::Jit),
            other => Err(BackendError::Unknown(other.to_string())),
        }
    }
}

/// What a projection did.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub backend: Backend,
    pub radius: f64,
    /// The multi-level norm of the input.
    pub norm_before: f64,
    /// Number of innermost groups.
    pub groups: usize,
    /// Groups left as they were (their radius was at least their norm).
    pub untouched: usize,
    /// Groups set to zero.
    pub zeroed: usize,
    /// Groups clipped, scaled or shrunk.
    pub projected: usize,
    /// Time per stage, in execution order.
    pub stages: Vec<(&'static str, Duration)>,
}

impl Report {
    pub fn total_time(&self) -> Duration {
        self.stages.iter().map(|(_, d)| *d).sum()
    }
}

/// How to run a plan: the backend, and who hears how far the passes have got. The free
/// functions [`project`], [`project_in_place`] and [`norm`] are an `Executor` without a
/// progress hook.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use multiproj_compiler::{DType, TensorInfo};
/// use multiproj_runtime::{Backend, Executor, Stage};
///
/// let spec = multiproj_grammar::parse("l1 over dim0 of linf over dim1").unwrap();
/// let info = TensorInfo::c_order(&[4, 3], DType::F64);
/// let plan = multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap());
/// let x = ndarray::ArrayD::<f64>::ones(ndarray::IxDyn(&[4, 3]));
///
/// let applied = AtomicU64::new(0);
/// let hook = |stage: Stage, done: u64, _total: u64| {
///     if stage == Stage::Apply {
///         applied.fetch_max(done, Ordering::Relaxed);
///     }
/// };
/// let mut out = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[4, 3]));
/// let exec = Executor::new(Backend::Interp).with_progress(&hook);
/// exec.project(&plan, &x.view(), &mut out.view_mut(), 2.0).unwrap();
/// assert_eq!(applied.load(Ordering::Relaxed), 12);
/// ```
#[derive(Clone, Copy, Default)]
pub struct Executor<'a> {
    pub backend: Backend,
    pub progress: Option<&'a dyn Progress>,
}

impl fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("backend", &self.backend)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Times the stages of one run and tells the progress hook when each starts and ends.
struct Stages<'a> {
    hook: Option<&'a dyn Progress>,
    times: Vec<(&'static str, Duration)>,
    last: Instant,
}

impl<'a> Stages<'a> {
    fn new(hook: Option<&'a dyn Progress>) -> Self {
        Stages {
            hook,
            times: Vec::new(),
            last: Instant::now(),
        }
    }

    /// Runs `stage`, which has `total` elements to go, and records its time if it succeeds.
    fn run<R>(
        &mut self,
        stage: Stage,
        total: usize,
        f: impl FnOnce(&Ticker<'a>) -> Result<R, DataError>,
    ) -> Result<R, DataError> {
        let ticker = Ticker::new(self.hook, stage, total);
        let out = f(&ticker)?;
        ticker.finish();
        let now = Instant::now();
        self.times.push((stage.name(), now - self.last));
        self.last = now;
        Ok(out)
    }
}

impl<'a> Executor<'a> {
    pub fn new(backend: Backend) -> Self {
        Executor {
            backend,
            progress: None,
        }
    }

    /// Reports the progress of every stage to `progress` (see [`crate::progress`]).
    pub fn with_progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Reduce, solve and threshold: everything before the apply pass.
    fn analyze<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        radius: f64,
        in_place: bool,
        stages: &mut Stages<'a>,
    ) -> Result<(Aggregates, Vec<GroupAction>), DataError> {
        debug_assert!(radius.is_finite() && radius >= 0.0);
        check_layout(plan, x.shape())?;
        if self.backend == Backend::Jit {
            // Compiling (or fetching from the cache) is its own stage, so that kernel compile
            // time never hides inside the time of a pass over the data.
            stages.run(Stage::Compile, 0, |_| {
                let l1 = plan.innermost().norm == multiproj_compiler::Norm::L1;
                jit::prepare(plan, l1, in_place)
            })?;
        }
        let inner = stages.run(Stage::Reduce, x.len(), |t| self.reduce(plan, x, t))?;
        let (agg, mut actions) = stages.run(Stage::Solve, 0, |_| {
            let mut agg = Aggregates::reduce_up(plan, inner);
            if !agg.finite() {
                // A norm overflowed f64 (entries near f64::MAX): the aggregates of the tensor
                // scaled by a power of two, from a second, scaling pass (the interpreter's:
                // such data is rare, and this pass only runs for it).
                let exp = crate::balls::overflow_exponent(x.len());
                let inner = interp::reduce_scaled(plan, x, &Ticker::none(), exp)?;
                agg = Aggregates::reduce_up_scaled(plan, inner, exp);
            }
            let radii = agg.solve(plan, radius);
            let actions = agg.actions(plan, &radii);
            Ok((agg, actions))
        })?;
        if actions
            .iter()
            .any(|a| matches!(a, GroupAction::NeedsThreshold(_)))
        {
            stages.run(Stage::Threshold, x.len(), |t| match self.backend {
                Backend::Jit => jit::threshold_with(jit::global()?, plan, x, &mut actions, t),
                Backend::Interp => interp::threshold_ticked(plan, x, &mut actions, t),
            })?;
        }
        Ok((agg, actions))
    }

    fn reduce<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<Vec<f64>, DataError> {
        match self.backend {
            Backend::Jit => jit::reduce_with(jit::global()?, plan, x, ticker),
            Backend::Interp => interp::reduce_ticked(plan, x, ticker),
        }
    }

    /// Projects `x` into `out` (same shape; any layout).
    pub fn project<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        radius: f64,
    ) -> Result<Report, DataError> {
        let mut stages = Stages::new(self.progress);
        let (agg, actions) = self.analyze(plan, x, radius, false, &mut stages)?;
        check_layout(plan, out.shape())?;
        stages.run(Stage::Apply, x.len(), |t| match self.backend {
            Backend::Jit => jit::apply_with(jit::global()?, plan, &actions, x, out, t),
            Backend::Interp => interp::apply_ticked(plan, &actions, x, out, t),
        })?;
        Ok(report(self.backend, radius, &agg, &actions, stages))
    }

    /// Projects `data` in place. Nothing is written unless the whole analysis succeeded (so a
    /// NaN in the data leaves it untouched), and groups that are kept are not written at all.
    pub fn project_in_place<T: Element>(
        &self,
        plan: &Plan,
        data: &mut ArrayViewMutD<'_, T>,
        radius: f64,
    ) -> Result<Report, DataError> {
        let mut stages = Stages::new(self.progress);
        let (agg, actions) = self.analyze(plan, &data.view(), radius, true, &mut stages)?;
        stages.run(Stage::Apply, data.len(), |t| match self.backend {
            Backend::Jit => jit::apply_in_place_with(jit::global()?, plan, &actions, data, t),
            Backend::Interp => interp::apply_in_place_ticked(plan, &actions, data, t),
        })?;
        Ok(report(self.backend, radius, &agg, &actions, stages))
    }

    /// The multi-level norm of `x`: one reduce pass.
    pub fn norm<T: Element>(&self, plan: &Plan, x: &ArrayViewD<'_, T>) -> Result<f64, DataError> {
        check_layout(plan, x.shape())?;
        let mut stages = Stages::new(self.progress);
        let inner = stages.run(Stage::Reduce, x.len(), |t| self.reduce(plan, x, t))?;
        Ok(Aggregates::reduce_up(plan, inner).norm())
    }
}

fn check_layout(plan: &Plan, shape: &[usize]) -> Result<(), DataError> {
    if shape != plan.tensor.shape.as_slice() {
        return Err(DataError::ShapeMismatch {
            expected: plan.tensor.shape.clone(),
            found: shape.to_vec(),
        });
    }
    Ok(())
}

fn report(
    backend: Backend,
    radius: f64,
    agg: &Aggregates,
    actions: &[GroupAction],
    stages: Stages<'_>,
) -> Report {
    let mut r = Report {
        backend,
        radius,
        norm_before: agg.norm(),
        groups: actions.len(),
        untouched: 0,
        zeroed: 0,
        projected: 0,
        stages: stages.times,
    };
    for a in actions {
        match a {
            GroupAction::Keep => r.untouched += 1,
            GroupAction::Zero => r.zeroed += 1,
            _ => r.projected += 1,
        }
    }
    r
}

/// Projects `x` into `out` (same shape; any layout).
pub fn project<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    out: &mut ArrayViewMutD<'_, T>,
    radius: f64,
    backend: Backend,
) -> Result<Report, DataError> {
    Executor::new(backend).project(plan, x, out, radius)
}

/// Projects `data` in place. Nothing is written unless the whole analysis succeeded (so a NaN
/// in the data leaves it untouched), and groups that are kept are not written at all.
pub fn project_in_place<T: Element>(
    plan: &Plan,
    data: &mut ArrayViewMutD<'_, T>,
    radius: f64,
    backend: Backend,
) -> Result<Report, DataError> {
    Executor::new(backend).project_in_place(plan, data, radius)
}

/// The multi-level norm of `x`.
pub fn norm<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    backend: Backend,
) -> Result<f64, DataError> {
    Executor::new(backend).norm(plan, x)
}
