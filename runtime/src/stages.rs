//! The values that flow between the stages of a projection, for callers that run the stages
//! themselves: reduce on their own data, combine aggregates with another process's, solve once,
//! and apply locally.
//!
//! - [`GroupNorms`] — what the reduce stage produces ([`crate::Executor::reduce`]): the innermost
//!   norm of every group, `V_{k-1}`. Partial norms of the same groups, from different parts of
//!   the data, combine with [`GroupNorms::combine`] (a sum for l1, a max for linf, a root sum of
//!   squares for l2).
//! - [`Solution`] — what the upper reductions and the solve produce ([`Solution::new`]): every
//!   aggregate, and what the apply pass does to each group. Deterministic: the same norms and
//!   radius give the same solution, bit for bit, on every machine.
//! - The threshold stage ([`crate::Executor::threshold`], innermost l1 only) completes a solution
//!   from the data of the groups that shrink; the apply stage ([`crate::Executor::apply`],
//!   [`crate::Executor::apply_in_place`]) carries it out.
//!
//! Run by hand, the stages give exactly what [`crate::Executor::project`] gives:
//!
//! ```
//! use multiproj_compiler::{DType, TensorInfo};
//! use multiproj_runtime::stages::Solution;
//! use multiproj_runtime::{Backend, Executor};
//! use ndarray::{ArrayD, IxDyn};
//!
//! let spec = multiproj_grammar::parse("l1 over dim0 of l1 over dim1").unwrap();
//! let info = TensorInfo::c_order(&[3, 4], DType::F64);
//! let plan = multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap());
//! let x = ArrayD::from_shape_vec(
//!     IxDyn(&[3, 4]),
//!     vec![3.0, -1.0, 0.5, 2.0, 0.1, 0.2, -0.1, 0.0, -2.0, 2.5, 1.0, -4.0],
//! )
//! .unwrap();
//! let exec = Executor::new(Backend::Jit);
//!
//! let norms = exec.reduce(&plan, &x.view()).unwrap();
//! let mut solution = Solution::new(&plan, &norms, 3.0).unwrap();
//! exec.threshold(&plan, &x.view(), &mut solution).unwrap();
//! let mut by_hand = ArrayD::<f64>::zeros(IxDyn(&[3, 4]));
//! exec.apply(&plan, &solution, &x.view(), &mut by_hand.view_mut()).unwrap();
//!
//! let mut projected = ArrayD::<f64>::zeros(IxDyn(&[3, 4]));
//! exec.project(&plan, &x.view(), &mut projected.view_mut(), 3.0).unwrap();
//! assert_eq!(by_hand, projected);
//! ```
//!
//! And the reduce stage can run on parts of the data — here the two halves of every group — whose
//! norms are combined before a single solve:
//!
//! ```
//! use multiproj_compiler::{DType, TensorInfo};
//! use multiproj_runtime::stages::Solution;
//! use multiproj_runtime::{Backend, Executor};
//! use ndarray::{ArrayD, IxDyn, s};
//!
//! let plan_for = |cols: usize| {
//!     let spec = multiproj_grammar::parse("l1 over dim0 of linf over dim1").unwrap();
//!     let info = TensorInfo::c_order(&[2, cols], DType::F64);
//!     multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
//! };
//! let x = ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![3.0, -1.0, 0.5, 2.0, 0.1, 0.2, -0.1, 0.7])
//!     .unwrap();
//! let exec = Executor::new(Backend::Interp);
//! let (left, right) = (x.slice(s![.., ..2]).to_owned(), x.slice(s![.., 2..]).to_owned());
//! let half = plan_for(2);
//! let mut norms = exec.reduce(&half, &left.into_dyn().view()).unwrap();
//! norms.combine(&half, &exec.reduce(&half, &right.into_dyn().view()).unwrap()).unwrap();
//!
//! let whole = plan_for(4);
//! let solution = Solution::new(&whole, &norms, 1.0).unwrap();
//! assert_eq!(solution.norm(), 3.0 + 0.7);
//! let mut out = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
//! exec.apply(&whole, &solution, &x.view(), &mut out.view_mut()).unwrap();
//! let mut projected = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
//! exec.project(&whole, &x.view(), &mut projected.view_mut(), 1.0).unwrap();
//! assert_eq!(out, projected);
//! ```

use multiproj_compiler::{Norm, Plan};

use crate::balls;
use crate::error::DataError;
use crate::solve::{Aggregates, GroupAction, Solved};
use crate::target::{self, RadiusTarget};

/// The innermost norm of every group of a plan (`V_{k-1}`, in group order), as the reduce stage
/// computed it, scaled by `2^-scale_exp` (0 unless the norms of the tensor overflow f64). Every
/// value is finite and non-negative, and so is the multi-level norm they make.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupNorms {
    norm: Norm,
    values: Vec<f64>,
    scale_exp: i32,
}

impl GroupNorms {
    /// Group norms received from elsewhere (another process, a file): `values` are the innermost
    /// norms of `plan`'s groups, in group order, of the tensor scaled by `2^-scale_exp`. An error
    /// if their number is not the plan's number of groups, or if one of them, or the multi-level
    /// norm they make, is not a finite, non-negative number.
    pub fn new(plan: &Plan, values: Vec<f64>, scale_exp: i32) -> Result<GroupNorms, DataError> {
        let norms = GroupNorms {
            norm: plan.innermost().norm,
            values,
            scale_exp,
        };
        norms.check(plan)?;
        Ok(norms)
    }

    /// No groups: what an empty shard contributes to a sharded projection.
    pub(crate) fn empty(norm: Norm) -> GroupNorms {
        GroupNorms {
            norm,
            values: Vec::new(),
            scale_exp: 0,
        }
    }

    /// The reduce stage's result: `inner` as a backend computed it, `aggregates` the complete
    /// aggregates made from it (finite).
    pub(crate) fn from_aggregates(plan: &Plan, aggregates: Aggregates) -> GroupNorms {
        let k = plan.levels().len();
        let scale_exp = aggregates.scale_exp;
        let values = aggregates.v.into_iter().nth(k - 1).unwrap_or_default();
        GroupNorms {
            norm: plan.innermost().norm,
            values,
            scale_exp,
        }
    }

    fn check(&self, plan: &Plan) -> Result<(), DataError> {
        let bad = |why: String| Err(DataError::BadAggregates(why));
        if self.values.len() != plan.groups() {
            return bad(format!(
                "{} group norms for a plan with {} groups",
                self.values.len(),
                plan.groups()
            ));
        }
        if self.norm != plan.innermost().norm {
            return bad(format!(
                "{} group norms for a plan whose innermost norm is {}",
                self.norm,
                plan.innermost().norm
            ));
        }
        if let Some(g) = self
            .values
            .iter()
            .position(|v| !(v.is_finite() && *v >= 0.0))
        {
            return bad(format!(
                "the norm of group {g} is {}, not a finite non-negative number",
                self.values[g]
            ));
        }
        if !self.aggregates(plan).finite() {
            return bad(format!(
                "the multi-level norm of these group norms overflows at scale 2^{}",
                -self.scale_exp
            ));
        }
        Ok(())
    }

    /// The norms, in group order (scaled by `2^-scale_exp`).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The power of two the norms are scaled down by.
    pub fn scale_exp(&self) -> i32 {
        self.scale_exp
    }

    /// The innermost norm these are norms of.
    pub fn norm(&self) -> Norm {
        self.norm
    }

    /// Folds in the norms of the same groups over other elements: afterwards every value is the
    /// norm of the group's elements seen by both (l1: the sum; linf: the max; l2: the root of the
    /// sum of squares). Values at different scales are brought to the coarser one first (scaling
    /// by a power of two is exact, up to values that fall below the normal range), and when the
    /// combined norms would overflow, both sides are scaled down further. Deterministic, and
    /// commutative up to rounding: combine in a fixed order for bit-identical results.
    pub fn combine(&mut self, plan: &Plan, other: &GroupNorms) -> Result<(), DataError> {
        other.check(plan)?;
        self.check(plan)?;
        let mut exp = self.scale_exp.max(other.scale_exp);
        let step = balls::overflow_exponent(plan.tensor().len());
        loop {
            let a = 2f64.powi(self.scale_exp - exp);
            let b = 2f64.powi(other.scale_exp - exp);
            let values: Vec<f64> = self
                .values
                .iter()
                .zip(&other.values)
                .map(|(&x, &y)| {
                    let (x, y) = (x * a, y * b);
                    match self.norm {
                        Norm::L1 => x + y,
                        Norm::Linf => x.max(y),
                        Norm::L2 => x.hypot(y),
                    }
                })
                .collect();
            let combined = GroupNorms {
                norm: self.norm,
                values,
                scale_exp: exp,
            };
            if combined.values.iter().all(|v| v.is_finite()) && combined.aggregates(plan).finite() {
                *self = combined;
                return Ok(());
            }
            exp += step;
        }
    }

    /// All aggregates, from the upper reductions of these norms.
    fn aggregates(&self, plan: &Plan) -> Aggregates {
        Aggregates::reduce_up_scaled(plan, self.values.clone(), self.scale_exp)
    }
}

/// Every aggregate of a projection and what the apply pass does to each innermost group: the
/// result of the upper reductions and the solve, from [`GroupNorms`] and a radius.
#[derive(Clone, Debug)]
pub struct Solution {
    pub(crate) aggregates: Aggregates,
    pub(crate) radius: f64,
    pub(crate) solved: Vec<Solved>,
    pub(crate) actions: Vec<GroupAction>,
}

impl Solution {
    /// Runs the plan's upper reductions and solve on `norms` for the total radius `radius` (a
    /// finite, non-negative number), and decides every group's action. Not for an exact plan
    /// whose solve reads the data (`Step::ExactSolve`): that is an error. Groups with an innermost
    /// l1 norm that must shrink still need their threshold ([`Solution::needs_threshold`]).
    pub fn new(plan: &Plan, norms: &GroupNorms, radius: f64) -> Result<Solution, DataError> {
        Solution::for_target(plan, norms, RadiusTarget::Radius(radius))
    }

    /// [`Solution::new`] with the radius chosen for `target` from the norms (see
    /// [`crate::target`]).
    pub fn for_target(
        plan: &Plan,
        norms: &GroupNorms,
        target: RadiusTarget,
    ) -> Result<Solution, DataError> {
        norms.check(plan)?;
        target.check(plan)?;
        if plan
            .steps()
            .iter()
            .any(|s| matches!(s, multiproj_compiler::Step::ExactSolve { .. }))
        {
            return Err(DataError::BadTarget(format!(
                "`{}` is an exact projection whose solve reads the data, not only the group \
                 norms: run it with `Executor::project`",
                plan.source()
            )));
        }
        let aggregates = norms.aggregates(plan);
        let radius = target::resolve(plan, &aggregates, target)?;
        let solved = aggregates.solve_all(plan, radius);
        let actions = aggregates.actions(plan, &aggregates.innermost_radii(&solved, radius));
        Ok(Solution {
            aggregates,
            radius,
            solved,
            actions,
        })
    }

    /// What the projection will do, level by level (see [`crate::Report`]): the same fields a
    /// run of [`crate::Executor::project`] reports, without stage times, and with the
    /// thresholds of the innermost l1 groups once the threshold stage has run.
    pub fn report(&self, plan: &Plan, backend: crate::Backend) -> crate::Report {
        crate::exec::report(
            backend,
            plan,
            self.radius,
            &self.aggregates,
            &self.solved,
            &self.actions,
        )
    }

    /// The multi-level norm of the data (+∞ when it exceeds `f64::MAX`).
    pub fn norm(&self) -> f64 {
        self.aggregates.norm()
    }

    /// The total radius.
    pub fn radius(&self) -> f64 {
        self.radius
    }

    /// All aggregates: `V_0 … V_{k-1}`.
    pub fn aggregates(&self) -> &Aggregates {
        &self.aggregates
    }

    /// What the apply pass does to each innermost group, in group order.
    pub fn actions(&self) -> &[GroupAction] {
        &self.actions
    }

    /// Whether some group still needs its l1 threshold (the threshold stage computes it).
    pub fn needs_threshold(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, GroupAction::NeedsThreshold(_)))
    }

    /// Groups left as they were, set to zero, and projected (clipped, scaled or shrunk).
    pub fn counts(&self) -> (usize, usize, usize) {
        let (mut kept, mut zeroed, mut projected) = (0, 0, 0);
        for a in &self.actions {
            match a {
                GroupAction::Keep => kept += 1,
                GroupAction::Zero => zeroed += 1,
                _ => projected += 1,
            }
        }
        (kept, zeroed, projected)
    }
}
