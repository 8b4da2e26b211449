//! The part of a projection that works on aggregates only, shared by every backend: the upper
//! reductions (`V_{k-2} … V_0` from the innermost norms `V_{k-1}`), the top-down solve
//! (`U_1 … U_{k-1}`, DESIGN §2 step 2), and the per-group decision the apply pass acts on.

use multiproj_compiler::{Norm, Plan};

use crate::balls::{self, SoftThreshold};

/// What the apply pass does to one innermost group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GroupAction {
    /// Radius ≥ the group's norm: the projection is the identity. Not written in place, copied
    /// out of place.
    Keep,
    /// Radius 0: every entry becomes 0; the group is not read.
    Zero,
    /// linf: clip every entry to `[-r, r]`.
    Clip(f64),
    /// l2: multiply every entry by this factor (`r / ‖group‖₂`, in `[0, 1)`).
    Scale(f64),
    /// l1 with radius `r`, before the threshold stage has computed `τ`.
    NeedsThreshold(f64),
    /// l1: soft threshold `sign(y)·max(|y| - τ, 0)`, with τ held in two parts so that a tiny
    /// radius next to large entries keeps its digits (see [`SoftThreshold`]).
    Shrink(SoftThreshold),
}

/// Norm of one segment of an aggregate (or of a gathered group).
pub fn norm_of(norm: Norm, v: &[f64]) -> f64 {
    match norm {
        Norm::L1 => balls::norm_l1(v),
        Norm::L2 => balls::norm_l2(v),
        Norm::Linf => balls::norm_linf(v),
    }
}

/// All aggregates of a projection: `v[j]` is `V_j` (`v[0]` holds the multi-level norm), each
/// scaled by `2^-scale_exp`.
///
/// The scale is 0 unless some norm overflows f64 (sums of entries near `f64::MAX`): then the
/// aggregates are those of the tensor scaled by `2^-k`, with `k` from
/// [`balls::overflow_exponent`] of the number of entries, so that no norm at any level
/// overflows (every one of them is at most the l1 norm of the whole tensor). Scaling by a power
/// of two is exact, so the decisions ([`Aggregates::actions`]) are those of the unscaled
/// aggregates, and the group parameters are scaled back exactly.
#[derive(Clone, Debug)]
pub struct Aggregates {
    pub v: Vec<Vec<f64>>,
    pub scale_exp: i32,
}

impl Aggregates {
    /// The upper reductions: from the innermost group norms `V_{k-1}` up to `V_0`.
    pub fn reduce_up(plan: &Plan, inner: Vec<f64>) -> Aggregates {
        Self::reduce_up_scaled(plan, inner, 0)
    }

    /// [`Aggregates::reduce_up`] from innermost norms of the tensor scaled by `2^-scale_exp`.
    pub fn reduce_up_scaled(plan: &Plan, inner: Vec<f64>, scale_exp: i32) -> Aggregates {
        let k = plan.levels.len();
        debug_assert_eq!(inner.len(), plan.groups);
        let mut v = vec![Vec::new(); k];
        v[k - 1] = inner;
        for j in (1..k).rev() {
            let n = plan.levels[j - 1].extent;
            let norm = plan.levels[j - 1].norm;
            v[j - 1] = v[j].chunks_exact(n).map(|seg| norm_of(norm, seg)).collect();
        }
        Aggregates { v, scale_exp }
    }

    /// Whether every aggregate is finite (the multi-level norm bounds them all); if not, some
    /// norm overflowed and the aggregates must be computed scaled.
    pub fn finite(&self) -> bool {
        self.v[0][0].is_finite()
    }

    /// The multi-level norm of the tensor (+∞ when it exceeds `f64::MAX`).
    pub fn norm(&self) -> f64 {
        self.v[0][0] * 2f64.powi(self.scale_exp)
    }

    /// The top-down solve: returns `U_{k-1}`, the radius of each innermost group, for a total
    /// radius `radius`. `U_0 = [radius]`; for each level `j < k` and each segment `s`,
    /// `U_j[s,·] = P_{p_j}(V_j[s,·], U_{j-1}[s])`. Like the aggregates, the radii are scaled by
    /// `2^-scale_exp`; [`Aggregates::actions`] takes them so.
    pub fn solve(&self, plan: &Plan, radius: f64) -> Vec<f64> {
        let k = plan.levels.len();
        let mut u = vec![radius * 2f64.powi(-self.scale_exp)];
        let mut scratch = Vec::new();
        for j in 1..k {
            let level = &plan.levels[j - 1];
            let n = level.extent;
            let mut next = Vec::with_capacity(u.len() * n);
            for (s, seg) in self.v[j].chunks_exact(n).enumerate() {
                let r = u[s];
                let seg_norm = self.v[j - 1][s];
                if r >= seg_norm {
                    // Inside the ball: the identity, bit for bit.
                    next.extend_from_slice(seg);
                } else if r == 0.0 {
                    next.extend(std::iter::repeat_n(0.0, n));
                } else {
                    match level.norm {
                        Norm::Linf => next.extend(seg.iter().map(|&x| x.min(r))),
                        Norm::L2 => {
                            let f = r / seg_norm;
                            next.extend(seg.iter().map(|&x| x * f));
                        }
                        Norm::L1 => {
                            // Aggregates are norms, hence non-negative: no signs to keep.
                            let t = balls::l1_soft_threshold(seg, r, &mut scratch);
                            next.extend(seg.iter().map(|&x| t.shrink(x)));
                        }
                    }
                }
            }
            u = next;
        }
        u
    }

    /// The action on each innermost group given its radius. Groups with an innermost l1 norm
    /// that must shrink come out as [`GroupAction::NeedsThreshold`]; the threshold stage fills in
    /// `τ`.
    pub fn actions(&self, plan: &Plan, radii: &[f64]) -> Vec<GroupAction> {
        let inner = &self.v[plan.levels.len() - 1];
        let norm = plan.innermost().norm;
        // Radii back to the tensor's scale (exact: a power of two, and at most the radius).
        let up = 2f64.powi(self.scale_exp);
        inner
            .iter()
            .zip(radii)
            .map(|(&vg, &r)| {
                if r >= vg {
                    GroupAction::Keep
                } else if r == 0.0 {
                    GroupAction::Zero
                } else {
                    match norm {
                        Norm::Linf => GroupAction::Clip(r * up),
                        Norm::L2 => GroupAction::Scale(r / vg),
                        Norm::L1 => GroupAction::NeedsThreshold(r * up),
                    }
                }
            })
            .collect()
    }
}

/// Applies a group action to one element, computing in f64.
#[inline(always)]
pub fn apply_one(action: GroupAction, y: f64) -> f64 {
    match action {
        GroupAction::Keep | GroupAction::NeedsThreshold(_) => y,
        GroupAction::Zero => 0.0,
        GroupAction::Clip(r) => y.clamp(-r, r),
        GroupAction::Scale(f) => y * f,
        GroupAction::Shrink(t) => {
            let m = t.shrink(y.abs());
            if m > 0.0 { m.copysign(y) } else { 0.0 }
        }
    }
}
