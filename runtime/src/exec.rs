//! Running a plan: the backend-independent driver. A backend supplies the passes over the data
//! (reduce, threshold, apply); the driver runs the shared solve on aggregates between them,
//! times every stage, and reports what happened to the groups.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ndarray::{ArrayViewD, ArrayViewMutD};

use multiproj_compiler::Plan;

use crate::element::Element;
use crate::error::DataError;
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

struct Timer {
    stages: Vec<(&'static str, Duration)>,
    last: Instant,
}

impl Timer {
    fn new() -> Self {
        Timer {
            stages: Vec::new(),
            last: Instant::now(),
        }
    }
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.stages.push((name, now - self.last));
        self.last = now;
    }
}

/// Reduce, solve and threshold: everything before the apply pass.
fn analyze<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    radius: f64,
    backend: Backend,
    timer: &mut Timer,
) -> Result<(Aggregates, Vec<GroupAction>), DataError> {
    debug_assert!(radius.is_finite() && radius >= 0.0);
    check_layout(plan, x.shape())?;
    if backend == Backend::Jit {
        // Compiling (or fetching from the cache) is its own stage, so that kernel compile time
        // never hides inside the time of a pass over the data.
        jit::prepare(plan, plan.innermost().norm == multiproj_compiler::Norm::L1)?;
        timer.lap("compile");
    }
    let inner = match backend {
        Backend::Jit => jit::reduce(plan, x)?,
        Backend::Interp => interp::reduce(plan, x)?,
    };
    timer.lap("reduce");
    let agg = Aggregates::reduce_up(plan, inner);
    let radii = agg.solve(plan, radius);
    let mut actions = agg.actions(plan, &radii);
    timer.lap("solve");
    if actions
        .iter()
        .any(|a| matches!(a, GroupAction::NeedsThreshold(_)))
    {
        match backend {
            Backend::Jit => jit::threshold(plan, x, &mut actions)?,
            Backend::Interp => interp::threshold(plan, x, &mut actions)?,
        }
        timer.lap("threshold");
    }
    Ok((agg, actions))
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
    timer: Timer,
) -> Report {
    let mut r = Report {
        backend,
        radius,
        norm_before: agg.norm(),
        groups: actions.len(),
        untouched: 0,
        zeroed: 0,
        projected: 0,
        stages: timer.stages,
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
    let mut timer = Timer::new();
    let (agg, actions) = analyze(plan, x, radius, backend, &mut timer)?;
    check_layout(plan, out.shape())?;
    match backend {
        Backend::Jit => jit::apply(plan, &actions, x, out)?,
        Backend::Interp => interp::apply(plan, &actions, x, out)?,
    }
    timer.lap("apply");
    Ok(report(backend, radius, &agg, &actions, timer))
}

/// Projects `data` in place. Nothing is written unless the whole analysis succeeded (so a NaN
/// in the data leaves it untouched), and groups that are kept are not written at all.
pub fn project_in_place<T: Element>(
    plan: &Plan,
    data: &mut ArrayViewMutD<'_, T>,
    radius: f64,
    backend: Backend,
) -> Result<Report, DataError> {
    let mut timer = Timer::new();
    let (agg, actions) = analyze(plan, &data.view(), radius, backend, &mut timer)?;
    match backend {
        Backend::Jit => jit::apply_in_place(plan, &actions, data)?,
        Backend::Interp => interp::apply_in_place(plan, &actions, data)?,
    }
    timer.lap("apply");
    Ok(report(backend, radius, &agg, &actions, timer))
}

/// The multi-level norm of `x`.
pub fn norm<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    backend: Backend,
) -> Result<f64, DataError> {
    check_layout(plan, x.shape())?;
    let inner = match backend {
        Backend::Jit => jit::reduce(plan, x)?,
        Backend::Interp => interp::reduce(plan, x)?,
    };
    Ok(Aggregates::reduce_up(plan, inner).norm())
}
