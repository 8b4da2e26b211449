//! Choosing the radius from what the user wants ([`RadiusTarget`]): a radius, a fraction of the data's
//! norm, or a number of top-level groups to keep.
//!
//! The *top-level groups* are the entries of the aggregate `V_1`: for `l1 over dim0 of linf over
//! dim1`, the rows; for `l1 over dim1 of linf over dim0`, the columns. A top-level group
//! *survives* when it comes out non-zero: it is not zero in the data and the solve gives it a
//! positive radius (`U_1 > 0`); a group the solve gives radius 0 is set to zero whole.
//!
//! **Keep K, closed form.** Only an l1 top level removes groups (linf clips and l2 scales: every
//! group keeps a positive radius). With `v` the top-level norms sorted in decreasing order and
//! `S_K = v_1 + … + v_K`, the l1 projection of `v` onto radius `R` is the soft threshold by the
//! `τ` with `Σ max(v_i − τ, 0) = R`, so exactly the groups with `v_i > τ` survive. Exactly `K`
//! survive when `v_{K+1} ≤ τ < v_K`, that is for `S_K − K·v_K < R ≤ S_K − K·v_{K+1}`: the largest
//! such radius is `R = S_K − K·v_{K+1}`. The interval is empty when `v_K = v_{K+1}` (a tie across
//! the K-th place): no radius keeps exactly K groups, and the error names the nearest counts that
//! can be kept. The radius is then checked by running the top-level solve on the aggregates
//! (linear in the number of groups), and lowered by a few ulps if rounding made it keep one
//! group too many.

use multiproj_compiler::{Norm, Plan};

use crate::error::DataError;
use crate::solve::Aggregates;

/// What a projection aims for.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum RadiusTarget {
    /// This radius.
    Radius(f64),
    /// A fraction of the data's multi-level norm: `R = f · norm` (`f ≥ 0`; `f ≥ 1` changes
    /// nothing).
    RadiusFrac(f64),
    /// The largest radius for which exactly this many top-level groups survive.
    Keep(usize),
    /// This fraction of the top-level groups set to zero (`0 ≤ f ≤ 1`): [`RadiusTarget::Keep`] of
    /// `n − round(f · n)` of the `n` groups.
    Sparsity(f64),
}

impl From<f64> for RadiusTarget {
    fn from(radius: f64) -> Self {
        RadiusTarget::Radius(radius)
    }
}

impl RadiusTarget {
    /// Whether the target needs the data's aggregates to become a radius.
    pub fn needs_data(self) -> bool {
        !matches!(self, RadiusTarget::Radius(_))
    }

    /// Checks what can be checked without data: finite, non-negative numbers, fractions in
    /// range, and a spec whose top level can remove groups for [`RadiusTarget::Keep`] and
    /// [`RadiusTarget::Sparsity`].
    pub fn check(self, plan: &Plan) -> Result<(), DataError> {
        let bad = |why: String| Err(DataError::BadTarget(why));
        match self {
            RadiusTarget::Radius(r) if !(r.is_finite() && r >= 0.0) => {
                bad(format!("the radius is {r}, not a finite number ≥ 0"))
            }
            RadiusTarget::RadiusFrac(f) if !(f.is_finite() && f >= 0.0) => bad(format!(
                "the radius fraction is {f}, not a finite number ≥ 0"
            )),
            RadiusTarget::Sparsity(f) if !(0.0..=1.0).contains(&f) => bad(format!(
                "the sparsity is {f}, not a fraction between 0 and 1"
            )),
            RadiusTarget::Keep(_) | RadiusTarget::Sparsity(_) => {
                if plan.levels().len() < 2 {
                    return bad(format!(
                        "`{}` has a single level, so it has no groups to keep or remove; \
                         choose a radius or a radius fraction",
                        plan.source()
                    ));
                }
                let top = plan.levels()[0].norm;
                if top != Norm::L1 {
                    return bad(format!(
                        "the top level of `{}` is {top}, which {} every group and never sets \
                         one to zero; only an l1 top level removes groups (e.g. `l1 over …`)",
                        plan.source(),
                        if top == Norm::Linf { "clips" } else { "scales" }
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The radius for `target`, from the aggregates of the data (complete up to `V_0`).
pub(crate) fn resolve(
    plan: &Plan,
    agg: &Aggregates,
    target: RadiusTarget,
) -> Result<f64, DataError> {
    target.check(plan)?;
    let up = 2f64.powi(agg.scale_exp);
    let radius = match target {
        RadiusTarget::Radius(r) => return Ok(r),
        RadiusTarget::RadiusFrac(f) => f * agg.norm(),
        RadiusTarget::Keep(k) => keep(plan, agg, k)? * up,
        RadiusTarget::Sparsity(f) => {
            let n = agg.v[1].len();
            let removed = (f * n as f64).round() as usize;
            keep(plan, agg, n - removed.min(n))? * up
        }
    };
    if !radius.is_finite() {
        return Err(DataError::BadTarget(format!(
            "the radius this target needs is beyond the largest f64 ({radius})"
        )));
    }
    Ok(radius)
}

/// Where keeping the `k` largest of `values` (the top-level groups' norms, or for the exact
/// l1,∞ projection their l1 norms) puts a split: nowhere (`k = 0`), past every non-zero one, or
/// between the k-th and the (k+1)-th — with the values sorted in decreasing order.
pub(crate) enum Ranked {
    None,
    All,
    Split(Vec<f64>),
}

/// Ranks `values` for keeping `k` of them (see [`Ranked`]), or says why no split keeps exactly
/// `k`: more than are non-zero, or a tie across the k-th place (naming the counts that can be
/// kept). `what` names the values in the message ("norm", "l1 norm"), `how` the projection.
pub(crate) fn rank(values: &[f64], k: usize, what: &str, how: &str) -> Result<Ranked, DataError> {
    let n = values.len();
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let nonzero = sorted.iter().take_while(|&&x| x > 0.0).count();
    if k > nonzero {
        return Err(DataError::BadTarget(format!(
            "cannot keep {k} top-level groups: {} of the {n} are zero in the data",
            n - nonzero
        )));
    }
    if k == 0 {
        return Ok(Ranked::None);
    }
    if k == nonzero {
        return Ok(Ranked::All);
    }
    let (vk, vk1) = (sorted[k - 1], sorted[k]);
    if vk == vk1 {
        let first = sorted.iter().position(|&x| x == vk).unwrap_or(0);
        let last = first + sorted.iter().skip(first).take_while(|&&x| x == vk).count();
        return Err(DataError::BadTarget(format!(
            "no radius keeps exactly {k} top-level groups{how}: the groups ranked {} to {last} \
             have the same {what} ({vk:e}), so they survive or go together; {first} or {last} \
             can be kept",
            first + 1
        )));
    }
    Ok(Ranked::Split(sorted))
}

/// The largest radius (in the aggregates' scale) that keeps exactly `k` top-level groups; see
/// the module docs.
fn keep(plan: &Plan, agg: &Aggregates, k: usize) -> Result<f64, DataError> {
    let sorted = match rank(&agg.v[1], k, "norm", "")? {
        Ranked::None => return Ok(0.0),
        // Every non-zero group survives at the norm itself: the identity.
        Ranked::All => return Ok(agg.v[0][0]),
        Ranked::Split(sorted) => sorted,
    };
    let (vk, vk1) = (sorted[k - 1], sorted[k]);
    let sum: f64 = sorted[..k].iter().sum();
    let high = sum - k as f64 * vk1;
    let low = sum - k as f64 * vk;
    let survivors = |r: f64| {
        agg.solve_level(plan, 1, &[r])
            .radii
            .iter()
            .filter(|&&u| u > 0.0)
            .count()
    };
    // Rounding in the sums, or in the solve's own threshold, can shift the boundary by a few
    // ulps: step down from `high` by 1, 2, 4, … ulps until the solve keeps exactly k, so the
    // radius found is the largest to within a few ulps.
    let mut r = high;
    let mut step = high - high.next_down();
    for _ in 0..1100 {
        match survivors(r) {
            c if c == k => return Ok(r),
            c if c > k => {
                r = high - step;
                step *= 2.0;
            }
            _ => break,
        }
        if r <= low || !r.is_finite() {
            break;
        }
    }
    Err(DataError::BadTarget(format!(
        "no radius keeps exactly {k} top-level groups at the precision of f64 (the groups \
         ranked {k} and {} differ by {:e})",
        k + 1,
        vk - vk1
    )))
}
