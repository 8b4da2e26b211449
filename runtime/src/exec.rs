//! Running a plan: the executor holds a backend ([`Passes`]) and runs the plan's steps
//! ([`Plan::steps`]) in order — the reduce pass, the upper reductions and the solve on
//! aggregates (shared by every backend: [`crate::solve`]), the threshold pass, the apply pass —
//! timing every stage, telling an optional [`Progress`] hook how far each has got, and reporting
//! what happened to the groups. The stages are also public one by one ([`Executor::reduce`],
//! [`crate::stages::Solution::new`], [`Executor::threshold`], [`Executor::apply`]) for callers
//! that combine aggregates across processes.

use std::fmt;
use std::time::{Duration, Instant};

use ndarray::{ArrayViewD, ArrayViewMutD};

use multiproj_compiler::{ExactMethod, Method, Norm, Plan, Stage, Step};

use crate::backend::{Backend, Passes, Work};
use crate::element::Element;
use crate::error::DataError;
use crate::exact::{ExactGoal, ExactPrep};
use crate::progress::{Progress, Ticker};
use crate::solve::{self, Aggregates, GroupAction, Solved};
use crate::stages::{GroupNorms, Solution};
use crate::target::{self, RadiusTarget};
use crate::{balls, interp};

/// What a projection did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub backend: Backend,
    pub radius: f64,
    /// The multi-level norm of the input.
    pub norm_before: f64,
    /// The multi-level norm of the result as the solve set it: the norm of the group radii it
    /// handed down (kept groups at their norm, zeroed ones at 0). The stored result's norm is
    /// at most this and at most the radius (its own roundings only lower it), and within
    /// rounding of it; `multiproj norm` of the output measures it.
    pub norm_after: f64,
    /// Number of innermost groups.
    pub groups: usize,
    /// Groups left as they were (their radius was at least their norm).
    pub untouched: usize,
    /// Groups set to zero.
    pub zeroed: usize,
    /// Groups clipped, scaled or shrunk.
    pub projected: usize,
    /// Time per stage, in execution order (stages with nothing to do are left out).
    pub stages: Vec<(Stage, Duration)>,
    /// What each level of groups became, outermost first: `levels[0]` are the top-level groups
    /// (the entries of `V_1`), the last entry the innermost groups (the same counts as
    /// `untouched`, `projected`, `zeroed`). Empty for a single-level spec.
    pub levels: Vec<LevelReport>,
    /// Innermost l1: the soft threshold `τ` of each innermost group (0 for groups kept or
    /// zeroed). Empty otherwise.
    pub inner_thresholds: Vec<f64>,
    /// The top-level groups that survive — come out non-zero — by index: which rows, columns or
    /// features were kept. Empty for a single-level spec.
    pub survivors: Vec<usize>,
    /// What the exact solve found, when one ran.
    pub exact: Option<ExactReport>,
}

/// What an exact solve found (see [`Report::exact`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ExactReport {
    /// The common multiplier. `l1 of linf`: θ — every surviving group has
    /// `Σ_j (|y_gj| − μ_g)₊ = θ`, and the groups with `‖y_g‖₁ ≤ θ` are zero. `l2 of …`: λ (see
    /// `multiproj_compiler::ExactMethod`).
    pub theta: f64,
    /// Entries the solve kept in memory for its final step (`l1 of linf`: those the gather pass
    /// kept; all of them with the interpreter and for `l2 of …`).
    pub gathered: usize,
    /// Passes over the data the solve made.
    pub passes: usize,
}

/// What one level of groups became (see [`Report::levels`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LevelReport {
    /// The axes these groups are indexed by (the axes of this level and the levels above).
    pub axes: Vec<usize>,
    /// The norm whose projection set their radii (this level's).
    pub norm: Norm,
    /// How many groups there are, and how many were left as they were, shrunk, set to zero.
    pub groups: usize,
    pub kept: usize,
    pub shrunk: usize,
    pub zeroed: usize,
    /// When `norm` is l1: the soft threshold `τ` of each projection made at this level, one per
    /// group of the level above (0 where it was inside its ball or zeroed). Empty otherwise.
    pub thresholds: Vec<f64>,
}

impl Report {
    pub fn total_time(&self) -> Duration {
        self.stages.iter().map(|(_, d)| *d).sum()
    }

    /// The time of `stage`, if it ran.
    pub fn time_of(&self, stage: Stage) -> Option<Duration> {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, d)| *d)
    }
}

/// How to run a plan: the backend, and who hears how far the passes have got. The free
/// functions [`project`], [`project_in_place`] and [`norm`] are an `Executor` without a
/// progress hook.
///
/// The backend is a [`Backend`] choice (the JIT choice runs the process-wide JIT), or any value
/// implementing [`Passes`]: a [`crate::jit::Jit`] of your own, the [`crate::Interpreter`].
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
///
/// // A JIT of one's own (its own kernel cache) instead of the process-wide one:
/// let jit = multiproj_runtime::jit::Jit::new().unwrap();
/// let mut by_jit = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[4, 3]));
/// Executor::new(&jit).project(&plan, &x.view(), &mut by_jit.view_mut(), 2.0).unwrap();
/// assert_eq!(by_jit, out);
/// ```
#[derive(Clone, Copy, Default)]
pub struct Executor<'a, B: Passes = Backend> {
    backend: B,
    progress: Option<&'a dyn Progress>,
}

impl<B: Passes + fmt::Debug> fmt::Debug for Executor<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("backend", &self.backend)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Times the stages of one run and tells the progress hook when each starts and ends. Steps of
/// the same stage in a row (the upper reductions of several levels; the solve and the group
/// decisions) are timed as one stage.
struct Stages<'a> {
    hook: Option<&'a dyn Progress>,
    times: Vec<(Stage, Duration)>,
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
        let continues = self.times.last().is_some_and(|(s, _)| *s == stage);
        let ticker = if continues {
            Ticker::continued(self.hook, stage, total)
        } else {
            Ticker::new(self.hook, stage, total)
        };
        let out = f(&ticker)?;
        ticker.finish();
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        match self.times.last_mut() {
            Some((s, d)) if *s == stage => *d += took,
            _ => self.times.push((stage, took)),
        }
        Ok(out)
    }
}

/// The data of one run: read-only with a separate output, or in place.
enum Data<'r, 'x, 'o, T> {
    Separate {
        x: &'r ArrayViewD<'x, T>,
        out: &'r mut ArrayViewMutD<'o, T>,
    },
    InPlace(&'r mut ArrayViewMutD<'o, T>),
}

impl<T: Element> Data<'_, '_, '_, T> {
    fn input(&self) -> ArrayViewD<'_, T> {
        match self {
            Data::Separate { x, .. } => x.view(),
            Data::InPlace(d) => d.view(),
        }
    }
}

/// What the steps have produced so far.
struct State {
    target: RadiusTarget,
    aggregates: Option<Aggregates>,
    /// The radius, once the target has been resolved (at the first solve step).
    radius: Option<f64>,
    /// `U_1 …` as far as solved.
    solved: Vec<Solved>,
    actions: Option<Vec<GroupAction>>,
    /// What the exact solve found, if the plan has one.
    exact: Option<ExactReport>,
    /// The first pass of an exact `l1 of linf` plan.
    first: Option<ExactPrep>,
}

impl<'a, B: Passes> Executor<'a, B> {
    pub fn new(backend: B) -> Self {
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

    /// The backend that runs the passes.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The same executor (same progress hook) with another backend.
    pub fn with_backend<C: Passes>(&self, backend: C) -> Executor<'a, C> {
        Executor {
            backend,
            progress: self.progress,
        }
    }

    /// Projects `x` into `out` (same shape; any layout the backend accepts: the JIT needs
    /// [`Plan::output`]'s).
    pub fn project<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        radius: f64,
    ) -> Result<Report, DataError> {
        self.run(
            plan,
            RadiusTarget::Radius(radius),
            Data::Separate { x, out },
        )
    }

    /// Projects `data` in place. Nothing is written unless the whole analysis succeeded (so a
    /// NaN in the data leaves it untouched), and groups that are kept are not written at all.
    pub fn project_in_place<T: Element>(
        &self,
        plan: &Plan,
        data: &mut ArrayViewMutD<'_, T>,
        radius: f64,
    ) -> Result<Report, DataError> {
        self.run(plan, RadiusTarget::Radius(radius), Data::InPlace(data))
    }

    /// [`Executor::project`] with the radius chosen for `target` from the data (see
    /// [`crate::target`]); the report says which radius it was.
    pub fn project_to<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
        target: RadiusTarget,
    ) -> Result<Report, DataError> {
        self.run(plan, target, Data::Separate { x, out })
    }

    /// [`Executor::project_in_place`] with the radius chosen for `target` from the data.
    pub fn project_in_place_to<T: Element>(
        &self,
        plan: &Plan,
        data: &mut ArrayViewMutD<'_, T>,
        target: RadiusTarget,
    ) -> Result<Report, DataError> {
        self.run(plan, target, Data::InPlace(data))
    }

    /// The multi-level norm of `x`: one reduce pass.
    pub fn norm<T: Element>(&self, plan: &Plan, x: &ArrayViewD<'_, T>) -> Result<f64, DataError> {
        check_layout(plan, x.shape())?;
        let mut stages = Stages::new(self.progress);
        let reduce_only = Work {
            reduce: true,
            ..Work::NONE
        };
        let inner = stages.run(Stage::Reduce, x.len(), |t| {
            let prepared = self.backend.prepare(plan, reduce_only)?;
            self.backend.reduce(&prepared, plan, x, t)
        })?;
        Ok(Aggregates::reduce_up(plan, inner).norm())
    }

    /// The reduce stage on its own: the innermost norm of every group of `x`, ready to be
    /// combined with other norms of the same groups or solved (see [`crate::stages`]). When the
    /// norms of `x` overflow f64, they come scaled by a power of two.
    pub fn reduce<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
    ) -> Result<GroupNorms, DataError> {
        check_layout(plan, x.shape())?;
        let mut stages = Stages::new(self.progress);
        let reduce_only = Work {
            reduce: true,
            ..Work::NONE
        };
        let inner = stages.run(Stage::Reduce, x.len(), |t| {
            let prepared = self.backend.prepare(plan, reduce_only)?;
            self.backend.reduce(&prepared, plan, x, t)
        })?;
        let mut agg = Aggregates::reduce_up(plan, inner);
        rescale_if_overflowed(plan, x, &mut agg)?;
        Ok(GroupNorms::from_aggregates(plan, agg))
    }

    /// The threshold stage on its own: computes the l1 threshold of every group of `solution`
    /// that needs one, from `x` (nothing to do unless [`Solution::needs_threshold`]).
    pub fn threshold<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        solution: &mut Solution,
    ) -> Result<(), DataError> {
        check_layout(plan, x.shape())?;
        check_actions(plan, &solution.actions)?;
        if solution.needs_threshold() {
            let mut stages = Stages::new(self.progress);
            let work = Work {
                threshold: true,
                ..Work::NONE
            };
            stages.run(Stage::Threshold, x.len(), |t| {
                let prepared = self.backend.prepare(plan, work)?;
                self.backend
                    .threshold(&prepared, plan, x, &mut solution.actions, t)
            })?;
        }
        Ok(())
    }

    /// The apply stage on its own: writes `solution` carried out on `x` to `out`.
    pub fn apply<T: Element>(
        &self,
        plan: &Plan,
        solution: &Solution,
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
    ) -> Result<(), DataError> {
        check_layout(plan, x.shape())?;
        check_layout(plan, out.shape())?;
        check_actions(plan, &solution.actions)?;
        let mut stages = Stages::new(self.progress);
        let work = Work {
            apply: true,
            ..Work::NONE
        };
        stages.run(Stage::Apply, x.len(), |t| {
            let prepared = self.backend.prepare(plan, work)?;
            self.backend
                .apply(&prepared, plan, &solution.actions, x, out, t)
        })
    }

    /// The apply stage on its own, in place.
    pub fn apply_in_place<T: Element>(
        &self,
        plan: &Plan,
        solution: &Solution,
        data: &mut ArrayViewMutD<'_, T>,
    ) -> Result<(), DataError> {
        check_layout(plan, data.shape())?;
        check_actions(plan, &solution.actions)?;
        let mut stages = Stages::new(self.progress);
        let len = data.len();
        let work = Work {
            apply_in_place: true,
            ..Work::NONE
        };
        stages.run(Stage::Apply, len, |t| {
            let prepared = self.backend.prepare(plan, work)?;
            self.backend
                .apply_in_place(&prepared, plan, &solution.actions, data, t)
        })
    }

    /// Runs the plan's steps, in order.
    fn run<T: Element>(
        &self,
        plan: &Plan,
        target: RadiusTarget,
        mut data: Data<'_, '_, '_, T>,
    ) -> Result<Report, DataError> {
        target.check(plan)?;
        let len = plan.tensor().len();
        check_layout(plan, data.input().shape())?;
        let mut stages = Stages::new(self.progress);
        let work = Work::project(plan, matches!(data, Data::InPlace(_)));
        let prepared = if self.backend.compiles() {
            // Compiling (or fetching from the cache) is its own stage, so that kernel compile
            // time never hides inside the time of a pass over the data.
            stages.run(Stage::Compile, 0, |_| self.backend.prepare(plan, work))?
        } else {
            self.backend.prepare(plan, work)?
        };
        let k = plan.levels().len();
        let mut st = State {
            target,
            aggregates: None,
            radius: None,
            solved: Vec::new(),
            actions: None,
            exact: None,
            first: None,
        };
        for step in plan.steps() {
            match *step {
                Step::Reduce { .. } if plan.method() == Method::Exact(ExactMethod::L1Linf) => {
                    // The exact l1,inf solve's first pass is the reduce pass.
                    let x = data.input();
                    let mut exp = 0;
                    let mut first = stages.run(Stage::Reduce, len, |t| {
                        self.backend.exact_first_pass(&prepared, plan, &x, exp, t)
                    })?;
                    if first.not_finite() {
                        // A NaN or an infinity: the plain reduce names it. Otherwise a sum
                        // overflowed: the pass again, on the data scaled down.
                        self.backend.reduce(&prepared, plan, &x, &Ticker::none())?;
                        exp = balls::overflow_exponent(len);
                        first = stages.run(Stage::Reduce, len, |t| {
                            self.backend.exact_first_pass(&prepared, plan, &x, exp, t)
                        })?;
                    }
                    st.aggregates = Some(Aggregates::from_inner(plan, first.maxes().to_vec(), exp));
                    st.first = Some(first);
                }
                Step::Reduce { .. } => {
                    let x = data.input();
                    let inner = stages.run(Stage::Reduce, len, |t| {
                        self.backend.reduce(&prepared, plan, &x, t)
                    })?;
                    let mut agg = Aggregates::from_inner(plan, inner, 0);
                    if k == 1 {
                        rescale_if_overflowed(plan, &x, &mut agg)?;
                    }
                    st.aggregates = Some(agg);
                }
                Step::UpperReduce { level, .. } => {
                    let x = data.input();
                    let agg = st.aggregates.as_mut().ok_or_else(|| out_of_order(step))?;
                    stages.run(Stage::UpperReduce, 0, |_| {
                        agg.upper_reduce(plan, level);
                        if level == 1 {
                            rescale_if_overflowed(plan, &x, agg)?;
                        }
                        Ok(())
                    })?;
                }
                Step::Solve { level, .. } => {
                    let State {
                        target,
                        aggregates,
                        radius,
                        solved,
                        actions,
                        ..
                    } = &mut st;
                    let agg = aggregates.as_ref().ok_or_else(|| out_of_order(step))?;
                    stages.run(Stage::Solve, 0, |_| {
                        let r = resolved(radius, plan, agg, *target)?;
                        let next = match solved.last() {
                            Some(prev) => agg.solve_level(plan, level, &prev.radii),
                            None => agg.solve_level(plan, level, &agg.top_radius(r)),
                        };
                        if level + 1 == k {
                            // The last solve step: the group decisions, in the same stage.
                            *actions = Some(agg.actions(plan, &next.radii));
                        }
                        solved.push(next);
                        Ok(())
                    })?;
                }
                Step::ExactSolve { method, .. } => {
                    let State {
                        target,
                        aggregates,
                        radius,
                        solved,
                        actions,
                        exact,
                        first,
                    } = &mut st;
                    let agg = aggregates.as_ref().ok_or_else(|| out_of_order(step))?;
                    let x = data.input();
                    let inner = &agg.v[k - 1];
                    // A count of groups to keep: for l1 of linf the solve itself finds the
                    // radius (the groups kept are those with ‖y_g‖₁ > θ).
                    let keep = match (*target, method) {
                        (RadiusTarget::Keep(n), ExactMethod::L1Linf) => Some(n),
                        (RadiusTarget::Sparsity(f), ExactMethod::L1Linf) => {
                            target.check(plan)?;
                            let n = inner.len();
                            Some(n - ((f * n as f64).round() as usize).min(n))
                        }
                        _ => None,
                    };
                    if let Some(n) = keep {
                        target.check(plan)?;
                        let first = first.as_ref().ok_or_else(|| out_of_order(step))?;
                        let found = stages.run(Stage::ExactSolve, 2 * len, |t| {
                            self.backend.exact_l1_linf(
                                &prepared,
                                plan,
                                &x,
                                first,
                                agg.scale_exp,
                                ExactGoal::Keep(n),
                                t,
                            )
                        })?;
                        let up = 2f64.powi(agg.scale_exp);
                        *radius = Some(found.radius * up);
                        *exact = Some(ExactReport {
                            theta: found.theta * up,
                            gathered: found.gathered,
                            passes: found.passes,
                        });
                        let radii = if found.theta == 0.0 {
                            // Every non-zero group kept: the identity.
                            inner.clone()
                        } else if found.radius == 0.0 {
                            vec![0.0; inner.len()]
                        } else {
                            fit_radii(found.clips, inner, Norm::L1, found.radius)
                        };
                        *actions = Some(agg.actions(plan, &radii));
                        solved.push(Solved {
                            radii,
                            thresholds: Vec::new(),
                        });
                        continue;
                    }
                    let r =
                        stages.run(Stage::Solve, 0, |_| resolved(radius, plan, agg, *target))?;
                    let radii = if solve::inside(agg.top_radius(r)[0], agg.v[0][0]) {
                        inner.clone()
                    } else if r == 0.0 {
                        vec![0.0; inner.len()]
                    } else {
                        // The solve sums magnitudes within a group (and squares those sums
                        // for an l2 top level): scale the data down when that could overflow
                        // and the aggregates did not (see `Aggregates::scale_exp`).
                        let top = inner.iter().fold(0.0f64, |m, &v| m.max(v));
                        let big = top * (plan.group_len() as f64) * 4.0;
                        let exp = if agg.scale_exp != 0 {
                            agg.scale_exp
                        } else if !big.is_finite() {
                            balls::overflow_exponent(len)
                        } else if !(big * big * inner.len() as f64).is_finite() {
                            // Bring the largest possible group sum near 2^400.
                            (big.log2().ceil() as i32 - 400).max(0)
                        } else {
                            0
                        };
                        let back = 2f64.powi(exp - agg.scale_exp);
                        let r_agg = r * 2f64.powi(-agg.scale_exp);
                        if method == ExactMethod::L1Linf {
                            // In the first pass's scale, which is the aggregates'.
                            let first = first.as_ref().ok_or_else(|| out_of_order(step))?;
                            let found = stages.run(Stage::ExactSolve, 2 * len, |t| {
                                self.backend.exact_l1_linf(
                                    &prepared,
                                    plan,
                                    &x,
                                    first,
                                    agg.scale_exp,
                                    ExactGoal::Radius(r_agg),
                                    t,
                                )
                            })?;
                            *exact = Some(ExactReport {
                                theta: found.theta * 2f64.powi(agg.scale_exp),
                                gathered: found.gathered,
                                passes: found.passes,
                            });
                            fit_radii(found.clips, inner, Norm::L1, r_agg)
                        } else {
                            let linf = method == ExactMethod::L2Linf;
                            let (lambda, radii) = stages.run(Stage::ExactSolve, len, |t| {
                                crate::exact::solve_l2(plan, &x, linf, exp, r * 2f64.powi(-exp), t)
                            })?;
                            *exact = Some(ExactReport {
                                theta: lambda,
                                gathered: len,
                                passes: 1,
                            });
                            let radii = radii.iter().map(|&c| c * back).collect();
                            fit_radii(radii, inner, Norm::L2, r_agg)
                        }
                    };
                    *actions = Some(agg.actions(plan, &radii));
                    solved.push(Solved {
                        radii,
                        thresholds: Vec::new(),
                    });
                }
                Step::Threshold { .. } => {
                    st.decide(plan, &mut stages, step)?;
                    let actions = st.actions.as_mut().ok_or_else(|| out_of_order(step))?;
                    if actions
                        .iter()
                        .any(|a| matches!(a, GroupAction::NeedsThreshold(_)))
                    {
                        let x = data.input();
                        stages.run(Stage::Threshold, len, |t| {
                            self.backend.threshold(&prepared, plan, &x, actions, t)
                        })?;
                    }
                }
                Step::Apply { .. } => {
                    st.decide(plan, &mut stages, step)?;
                    let actions = st.actions.as_ref().ok_or_else(|| out_of_order(step))?;
                    match &mut data {
                        Data::Separate { x, out } => {
                            check_layout(plan, out.shape())?;
                            stages.run(Stage::Apply, len, |t| {
                                self.backend.apply(&prepared, plan, actions, x, out, t)
                            })?;
                        }
                        Data::InPlace(d) => {
                            stages.run(Stage::Apply, len, |t| {
                                self.backend.apply_in_place(&prepared, plan, actions, d, t)
                            })?;
                        }
                    }
                }
            }
        }
        let agg = st
            .aggregates
            .ok_or_else(|| DataError::Internal("a plan without a reduce step".into()))?;
        let actions = st.actions.unwrap_or_default();
        let radius = st.radius.unwrap_or(0.0);
        let mut r = report(
            self.backend.kind(),
            plan,
            radius,
            &agg,
            &st.solved,
            &actions,
        );
        r.stages = stages.times;
        r.exact = st.exact;
        Ok(r)
    }
}

/// Innermost radii whose top-level norm (`top`: l1 or l2 of the radii, each capped at its
/// group's norm), in any order, is at most `r` (all in the aggregates' scale): the exact solves
/// put that norm on `r` up to rounding; a few ulps down keep the output inside the ball (the
/// stored groups are then fitted inside their radii by [`Aggregates::actions`] and the
/// threshold stage). Radii at or above a group's norm keep the group.
fn fit_radii(mut radii: Vec<f64>, norms: &[f64], top: Norm, r: f64) -> Vec<f64> {
    let n = radii.len();
    let bound = |radii: &[f64]| -> f64 {
        let capped = radii.iter().zip(norms).map(|(&c, &m)| c.min(m));
        match top {
            Norm::L2 => {
                let sq: f64 = capped.map(|c| c * c).sum();
                // sqrt of a sum of squares bounded in any order, plus the sqrt's rounding.
                balls::any_order_bound(sq, 2 * n).sqrt() * (1.0 + f64::EPSILON)
            }
            _ => balls::any_order_bound(capped.sum::<f64>(), n),
        }
    };
    for _ in 0..64 {
        let b = bound(&radii);
        if b <= r || b == 0.0 {
            break;
        }
        let f = (r / b).min(1.0 - f64::EPSILON);
        for c in &mut radii {
            *c *= f;
        }
    }
    radii
}

/// The radius of `target`, resolved once from the aggregates (complete up to `V_1`).
fn resolved(
    radius: &mut Option<f64>,
    plan: &Plan,
    agg: &Aggregates,
    target: RadiusTarget,
) -> Result<f64, DataError> {
    match *radius {
        Some(r) => Ok(r),
        None => {
            let r = target::resolve(plan, agg, target)?;
            *radius = Some(r);
            Ok(r)
        }
    }
}

impl State {
    /// The group decisions, if the last solve step has not made them (a plan of one level has
    /// no solve step): timed as the solve.
    fn decide(
        &mut self,
        plan: &Plan,
        stages: &mut Stages<'_>,
        step: &Step,
    ) -> Result<(), DataError> {
        if self.actions.is_some() {
            return Ok(());
        }
        let State {
            target,
            aggregates,
            radius,
            ..
        } = self;
        let agg = aggregates.as_ref().ok_or_else(|| out_of_order(step))?;
        let actions = stages.run(Stage::Solve, 0, |_| {
            let r = resolved(radius, plan, agg, *target)?;
            Ok(agg.actions(plan, &agg.top_radius(r)))
        })?;
        self.actions = Some(actions);
        Ok(())
    }
}

fn out_of_order(step: &Step) -> DataError {
    DataError::Internal(format!(
        "plan step {} before the steps it needs",
        step.name()
    ))
}

/// A norm overflowed f64 (entries near `f64::MAX`): replaces `agg` (complete up to `V_0`) by
/// the aggregates of the tensor scaled by a power of two, from a second, scaling pass (the
/// interpreter's: such data is rare, and this pass only runs for it).
fn rescale_if_overflowed<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    agg: &mut Aggregates,
) -> Result<(), DataError> {
    if !agg.finite() {
        let exp = balls::overflow_exponent(x.len());
        let inner = interp::reduce_scaled(plan, x, &Ticker::none(), exp)?;
        *agg = Aggregates::reduce_up_scaled(plan, inner, exp);
    }
    Ok(())
}

fn check_actions(plan: &Plan, actions: &[GroupAction]) -> Result<(), DataError> {
    if actions.len() != plan.groups() {
        return Err(DataError::BadAggregates(format!(
            "a solution for {} groups, for a plan with {} groups",
            actions.len(),
            plan.groups()
        )));
    }
    Ok(())
}

fn check_layout(plan: &Plan, shape: &[usize]) -> Result<(), DataError> {
    if shape != plan.tensor().shape.as_slice() {
        return Err(DataError::ShapeMismatch {
            expected: plan.tensor().shape.clone(),
            found: shape.to_vec(),
        });
    }
    Ok(())
}

/// What the projection did, from the aggregates, the solve and the group decisions (stage times
/// are added by the caller).
pub(crate) fn report(
    backend: Backend,
    plan: &Plan,
    radius: f64,
    agg: &Aggregates,
    solved: &[Solved],
    actions: &[GroupAction],
) -> Report {
    let mut r = Report {
        backend,
        radius,
        norm_before: agg.norm(),
        norm_after: 0.0,
        groups: actions.len(),
        untouched: 0,
        zeroed: 0,
        projected: 0,
        stages: Vec::new(),
        levels: Vec::new(),
        inner_thresholds: Vec::new(),
        survivors: Vec::new(),
        exact: None,
    };
    for a in actions {
        match a {
            GroupAction::Keep => r.untouched += 1,
            GroupAction::Zero => r.zeroed += 1,
            _ => r.projected += 1,
        }
    }
    let k = plan.levels().len();
    let up = 2f64.powi(agg.scale_exp);
    r.norm_after = match solved.last() {
        Some(last) => Aggregates::reduce_up_scaled(plan, last.radii.clone(), agg.scale_exp).norm(),
        None => agg.norm().min(radius),
    };
    let mut axes = Vec::new();
    for (i, s) in solved.iter().enumerate() {
        let j = i + 1;
        let level = &plan.levels()[j - 1];
        axes.extend_from_slice(&level.axes);
        axes.sort_unstable();
        let mut l = LevelReport {
            axes: axes.clone(),
            norm: level.norm,
            groups: s.radii.len(),
            kept: 0,
            shrunk: 0,
            zeroed: 0,
            thresholds: s.thresholds.iter().map(|t| t * up).collect(),
        };
        if j + 1 == k && s.radii.len() == actions.len() {
            // The innermost groups: what the apply pass does to them.
            (l.kept, l.zeroed, l.shrunk) = (r.untouched, r.zeroed, r.projected);
        } else {
            for (&u, &v) in s.radii.iter().zip(&agg.v[j]) {
                if u == v {
                    l.kept += 1;
                } else if u == 0.0 {
                    l.zeroed += 1;
                } else {
                    l.shrunk += 1;
                }
            }
        }
        r.levels.push(l);
    }
    if k >= 2 {
        // A top-level group survives when it comes out non-zero: it was not zero in the data,
        // and the solve gave it a positive radius (with two levels: it is not zero-filled).
        let v1 = &agg.v[1];
        r.survivors = if k == 2 {
            let alive = |g: usize| v1[g] > 0.0 && !matches!(actions[g], GroupAction::Zero);
            (0..actions.len()).filter(|&g| alive(g)).collect()
        } else {
            let top = solved.first().map_or(&[][..], |s| &s.radii[..]);
            (0..top.len())
                .filter(|&g| top[g] > 0.0 && v1[g] > 0.0)
                .collect()
        };
    }
    if plan.innermost().norm == Norm::L1 {
        r.inner_thresholds = actions
            .iter()
            .map(|a| match a {
                GroupAction::Shrink(t) => t.tau(),
                _ => 0.0,
            })
            .collect();
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
