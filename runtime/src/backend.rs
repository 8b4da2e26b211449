//! The backend seam: [`Passes`], the passes over the data a backend implements, and the two
//! backends — the [`Interpreter`] (the oracle) and the JIT ([`crate::jit::Jit`]) — plus
//! [`Backend`], the choice between them that the command line and [`crate::Executor::new`]
//! take (the JIT choice runs the process-wide [`crate::jit::global`] JIT).
//!
//! Everything that is not a pass over the data — the upper reductions, the solve and every
//! per-group decision — is made once, by the shared code in [`crate::solve`], and a backend only
//! carries the decisions out. The interpreter shares no numeric code with the JIT on the hot
//! path. The rare-path helpers they do share are listed in `docs/ARCHITECTURE.md`: naming a
//! non-finite element (the JIT asks the interpreter, so both name the same one), recomputing an
//! l2 group norm whose sum of squares over- or underflowed (`interp::finish_l2`), the scaled
//! reduce of a tensor whose norms overflow f64 (`interp::reduce_scaled`, run by the executor),
//! and the per-group l1 threshold ([`crate::solve::threshold_action`]), computed by one function
//! from the values each backend gathers.

use std::fmt;
use std::str::FromStr;

use ndarray::{ArrayViewD, ArrayViewMutD};

use multiproj_compiler::Plan;

use crate::element::Element;
use crate::error::DataError;
use crate::exact::{ExactClips, ExactGoal, ExactPrep};
use crate::progress::Ticker;
use crate::solve::GroupAction;
use crate::{interp, jit};

/// The passes a run will make, for [`Passes::prepare`] to get ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Work {
    pub reduce: bool,
    pub threshold: bool,
    pub apply: bool,
    pub apply_in_place: bool,
}

impl Work {
    /// Nothing.
    pub const NONE: Work = Work {
        reduce: false,
        threshold: false,
        apply: false,
        apply_in_place: false,
    };

    /// Every pass of a projection with `plan`, in place or not.
    pub fn project(plan: &Plan, in_place: bool) -> Work {
        Work {
            reduce: true,
            threshold: plan.has_threshold(),
            apply: !in_place,
            apply_in_place: in_place,
        }
    }

    /// Every pass there is: reduce, threshold (if the plan has one), both applies.
    pub fn all(plan: &Plan) -> Work {
        Work {
            reduce: true,
            threshold: plan.has_threshold(),
            apply: true,
            apply_in_place: true,
        }
    }
}

/// The passes over the data of a [`Plan`]. A run first [`Passes::prepare`]s the passes it will
/// make (the JIT compiles its kernels, or finds them in its caches) and hands what that returns
/// to every pass. Each pass ticks its [`Ticker`] as it finishes pieces of the tensor. Views must
/// have the plan's shape; a backend may require more (the JIT requires the plan's exact strides,
/// and the plan's output layout out of place) and returns a [`DataError`] when a view does not
/// fit, or when what it is handed was prepared for another plan or other work.
pub trait Passes: Sync {
    /// What [`Passes::prepare`] gets ready for the passes of one plan.
    type Prepared: Sync + Send;

    /// Which backend this is, for reports and `--verify`.
    fn kind(&self) -> Backend;

    /// Whether [`Passes::prepare`] does work worth its own [`crate::Stage::Compile`] stage.
    fn compiles(&self) -> bool {
        false
    }

    /// Gets ready to make the passes `work` of `plan`.
    fn prepare(&self, plan: &Plan, work: Work) -> Result<Self::Prepared, DataError>;

    /// The reduce pass: the innermost norm of every group (`V_{k-1}`), in f64. Fails on the first
    /// NaN or infinity (in the interpreter's walk order), naming its index.
    fn reduce<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<Vec<f64>, DataError>;

    /// The threshold pass (innermost l1): every group marked [`GroupAction::NeedsThreshold`]
    /// becomes [`GroupAction::Shrink`] with the threshold [`crate::solve::threshold_action`]
    /// computes from its entries, gathered in memory order.
    fn threshold<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        actions: &mut [GroupAction],
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError>;

    /// The apply pass, out of place: writes every element of `out`.
    fn apply<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        actions: &[GroupAction],
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError>;

    /// The apply pass, in place: elements of groups that are kept are not written.
    fn apply_in_place<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        actions: &[GroupAction],
        data: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError>;

    /// The first pass over the data of an exact `l1 of linf` plan
    /// ([`multiproj_compiler::ExactMethod::L1Linf`]), in place of the reduce pass: the group
    /// maxima (the aggregates), and what the solve needs besides, with the magnitudes scaled by
    /// `2^-exp` as they are read. By default the fast solver's pass ([`crate::exact`]: maxima,
    /// l1 norms and a histogram per group); the interpreter runs its plain reduce.
    fn exact_first_pass<T: Element>(
        &self,
        _prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        exp: i32,
        ticker: &Ticker<'_>,
    ) -> Result<ExactPrep, DataError> {
        crate::exact::first_pass(plan, x, 2f64.powi(-exp), ticker).map(ExactPrep::fast)
    }

    /// The solve of an exact `l1 of linf` plan: the multiplier and each group's clip level,
    /// from the data, what [`Passes::exact_first_pass`] found and the `goal` — a radius (in
    /// the scale `2^-exp` of the first pass, with `0 < r < Σ maxima`) or a number of groups
    /// to keep. By default the fast solver of
    /// [`crate::exact`]; the interpreter runs the plain oracle
    /// ([`crate::balls::l1_linf_exact_clips`]) instead.
    #[allow(clippy::too_many_arguments)]
    fn exact_l1_linf<T: Element>(
        &self,
        _prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        first: &ExactPrep,
        exp: i32,
        goal: ExactGoal,
        ticker: &Ticker<'_>,
    ) -> Result<ExactClips, DataError> {
        match &first.sketch {
            Some(sketch) => crate::exact::solve(plan, x, sketch, exp, goal, ticker),
            None => Err(DataError::Internal(
                "the fast exact solve needs the first pass's sketch".into(),
            )),
        }
    }
}

/// The interpreter: plain ndarray iteration, the oracle every other backend is tested against
/// (see [`crate::interp`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interpreter;

impl Passes for Interpreter {
    type Prepared = ();

    fn kind(&self) -> Backend {
        Backend::Interp
    }

    /// The plain reduce: the maxima only.
    fn exact_first_pass<T: Element>(
        &self,
        _prepared: &(),
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        exp: i32,
        ticker: &Ticker<'_>,
    ) -> Result<ExactPrep, DataError> {
        Ok(ExactPrep {
            maxes: interp::reduce_scaled(plan, x, ticker, exp)?,
            sketch: None,
        })
    }

    /// The plain oracle: every group gathered, sorted, and every breakpoint tried.
    fn exact_l1_linf<T: Element>(
        &self,
        _prepared: &(),
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        first: &ExactPrep,
        exp: i32,
        goal: ExactGoal,
        ticker: &Ticker<'_>,
    ) -> Result<ExactClips, DataError> {
        interp::exact_l1_linf(plan, x, &first.maxes, exp, goal, ticker)
    }

    fn prepare(&self, _plan: &Plan, _work: Work) -> Result<(), DataError> {
        Ok(())
    }

    fn reduce<T: Element>(
        &self,
        _: &(),
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<Vec<f64>, DataError> {
        interp::reduce_ticked(plan, x, ticker)
    }

    fn threshold<T: Element>(
        &self,
        _: &(),
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        actions: &mut [GroupAction],
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        interp::threshold_ticked(plan, x, actions, ticker)
    }

    fn apply<T: Element>(
        &self,
        _: &(),
        plan: &Plan,
        actions: &[GroupAction],
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        interp::apply_ticked(plan, actions, x, out, ticker)
    }

    fn apply_in_place<T: Element>(
        &self,
        _: &(),
        plan: &Plan,
        actions: &[GroupAction],
        data: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        interp::apply_in_place_ticked(plan, actions, data, ticker)
    }
}

impl Passes for jit::Jit {
    type Prepared = jit::Kernels;

    fn kind(&self) -> Backend {
        Backend::Jit
    }

    fn compiles(&self) -> bool {
        true
    }

    fn prepare(&self, plan: &Plan, work: Work) -> Result<jit::Kernels, DataError> {
        self.kernels(plan, work)
    }

    fn reduce<T: Element>(
        &self,
        prepared: &jit::Kernels,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<Vec<f64>, DataError> {
        jit::reduce(prepared.reduce(plan)?, plan, x, ticker)
    }

    fn threshold<T: Element>(
        &self,
        prepared: &jit::Kernels,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        actions: &mut [GroupAction],
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        jit::threshold(prepared.gather(plan)?, plan, x, actions, ticker)
    }

    fn apply<T: Element>(
        &self,
        prepared: &jit::Kernels,
        plan: &Plan,
        actions: &[GroupAction],
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        jit::apply(prepared.apply(plan, false)?, plan, actions, x, out, ticker)
    }

    fn apply_in_place<T: Element>(
        &self,
        prepared: &jit::Kernels,
        plan: &Plan,
        actions: &[GroupAction],
        data: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        jit::apply_in_place(prepared.apply(plan, true)?, plan, actions, data, ticker)
    }
}

impl<P: Passes> Passes for &P {
    type Prepared = P::Prepared;

    fn kind(&self) -> Backend {
        (**self).kind()
    }

    fn compiles(&self) -> bool {
        (**self).compiles()
    }

    fn prepare(&self, plan: &Plan, work: Work) -> Result<P::Prepared, DataError> {
        (**self).prepare(plan, work)
    }

    fn reduce<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<Vec<f64>, DataError> {
        (**self).reduce(prepared, plan, x, ticker)
    }

    fn threshold<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        actions: &mut [GroupAction],
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        (**self).threshold(prepared, plan, x, actions, ticker)
    }

    fn apply<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        actions: &[GroupAction],
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        (**self).apply(prepared, plan, actions, x, out, ticker)
    }

    fn apply_in_place<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        actions: &[GroupAction],
        data: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        (**self).apply_in_place(prepared, plan, actions, data, ticker)
    }

    fn exact_l1_linf<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        first: &ExactPrep,
        exp: i32,
        goal: ExactGoal,
        ticker: &Ticker<'_>,
    ) -> Result<ExactClips, DataError> {
        (**self).exact_l1_linf(prepared, plan, x, first, exp, goal, ticker)
    }

    fn exact_first_pass<T: Element>(
        &self,
        prepared: &Self::Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        exp: i32,
        ticker: &Ticker<'_>,
    ) -> Result<ExactPrep, DataError> {
        (**self).exact_first_pass(prepared, plan, x, exp, ticker)
    }
}

/// Which backend runs the passes over the data: a choice made by name (`--backend`), run by
/// the process-wide JIT or the interpreter. To run with a JIT of your own, hand the [`jit::Jit`]
/// itself to [`crate::Executor::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
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
#[non_exhaustive]
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

/// What [`Backend`] prepares: the JIT's kernels, or nothing for the interpreter.
#[derive(Clone, Debug)]
pub enum Prepared {
    Jit(jit::Kernels),
    Interp,
}

impl Passes for Backend {
    type Prepared = Prepared;

    fn kind(&self) -> Backend {
        *self
    }

    fn compiles(&self) -> bool {
        *self == Backend::Jit
    }

    fn prepare(&self, plan: &Plan, work: Work) -> Result<Prepared, DataError> {
        Ok(match self {
            Backend::Jit => Prepared::Jit(jit::global()?.prepare(plan, work)?),
            Backend::Interp => Prepared::Interp,
        })
    }

    fn reduce<T: Element>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<Vec<f64>, DataError> {
        match prepared {
            Prepared::Jit(k) => jit::global()?.reduce(k, plan, x, ticker),
            Prepared::Interp => Interpreter.reduce(&(), plan, x, ticker),
        }
    }

    fn exact_l1_linf<T: Element>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        first: &ExactPrep,
        exp: i32,
        goal: ExactGoal,
        ticker: &Ticker<'_>,
    ) -> Result<ExactClips, DataError> {
        match prepared {
            Prepared::Jit(k) => jit::global()?.exact_l1_linf(k, plan, x, first, exp, goal, ticker),
            Prepared::Interp => Interpreter.exact_l1_linf(&(), plan, x, first, exp, goal, ticker),
        }
    }

    fn exact_first_pass<T: Element>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        exp: i32,
        ticker: &Ticker<'_>,
    ) -> Result<ExactPrep, DataError> {
        match prepared {
            Prepared::Jit(k) => jit::global()?.exact_first_pass(k, plan, x, exp, ticker),
            Prepared::Interp => Interpreter.exact_first_pass(&(), plan, x, exp, ticker),
        }
    }

    fn threshold<T: Element>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        actions: &mut [GroupAction],
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        match prepared {
            Prepared::Jit(k) => jit::global()?.threshold(k, plan, x, actions, ticker),
            Prepared::Interp => Interpreter.threshold(&(), plan, x, actions, ticker),
        }
    }

    fn apply<T: Element>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        actions: &[GroupAction],
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        match prepared {
            Prepared::Jit(k) => jit::global()?.apply(k, plan, actions, x, out, ticker),
            Prepared::Interp => Interpreter.apply(&(), plan, actions, x, out, ticker),
        }
    }

    fn apply_in_place<T: Element>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        actions: &[GroupAction],
        data: &mut ArrayViewMutD<'_, T>,
        ticker: &Ticker<'_>,
    ) -> Result<(), DataError> {
        match prepared {
            Prepared::Jit(k) => jit::global()?.apply_in_place(k, plan, actions, data, ticker),
            Prepared::Interp => Interpreter.apply_in_place(&(), plan, actions, data, ticker),
        }
    }
}
