//! The part of a projection that works on aggregates only, shared by every backend: the upper
//! reductions (`V_{k-2} … V_0` from the innermost norms `V_{k-1}`), the top-down solve
//! (`U_1 … U_{k-1}`, `docs/SEMANTICS.md` §2, going down), and the per-group decision the apply pass acts on.
//!
//! **Inside the ball by construction.** Every radius the solve hands down satisfies
//! `norm(U_j[s,·]) ≤ U_{j-1}[s]` as [`norm_of`] computes it (checked after the fact, and the
//! scale factor or threshold nudged down until it holds), and the innermost groups are
//! projected with parameters chosen so that the *stored* elements of a group have a norm at
//! most its radius in any summation order: clip bounds rounded toward zero to the element type,
//! scale factors lowered by a bound on every rounding in between, the final rounding to the
//! element type included (see `scale_factor`), and soft thresholds raised until the stored
//! values fit (checked on the gathered values: `balls::l1_group_threshold`). No element pays
//! for it: only per-group parameters move. The norms are monotone in the magnitudes, so the
//! multi-level norm of the output, as `multiproj norm` computes it, is at most the radius.

use multiproj_compiler::{DType, Norm, Plan};

use crate::balls::{self, SoftThreshold};
use crate::float16;

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
/// `balls::overflow_exponent` of the number of entries, so that no norm at any level
/// overflows (every one of them is at most the l1 norm of the whole tensor). Scaling by a power
/// of two is exact, so the decisions ([`Aggregates::actions`]) are those of the unscaled
/// aggregates, and the group parameters are scaled back exactly.
#[derive(Clone, Debug)]
pub struct Aggregates {
    pub v: Vec<Vec<f64>>,
    pub scale_exp: i32,
}

impl Aggregates {
    /// Aggregates whose innermost level `V_{k-1}` is `inner` (norms of the tensor scaled by
    /// `2^-scale_exp`); the upper levels are filled in by [`Aggregates::upper_reduce`].
    pub(crate) fn from_inner(plan: &Plan, inner: Vec<f64>, scale_exp: i32) -> Aggregates {
        let k = plan.levels().len();
        debug_assert_eq!(inner.len(), plan.groups());
        let mut v = vec![Vec::new(); k];
        v[k - 1] = inner;
        Aggregates { v, scale_exp }
    }

    /// One upper-reduce step of the plan: `V_{level-1}` from `V_level`, reducing its segments
    /// with the norm of level `level` (1-based, outermost first).
    pub(crate) fn upper_reduce(&mut self, plan: &Plan, level: usize) {
        let l = &plan.levels()[level - 1];
        let (n, norm) = (l.extent, l.norm);
        self.v[level - 1] = self.v[level]
            .chunks_exact(n)
            .map(|seg| norm_of(norm, seg))
            .collect();
    }

    /// The upper reductions: from the innermost group norms `V_{k-1}` up to `V_0`.
    pub fn reduce_up(plan: &Plan, inner: Vec<f64>) -> Aggregates {
        Self::reduce_up_scaled(plan, inner, 0)
    }

    /// [`Aggregates::reduce_up`] from innermost norms of the tensor scaled by `2^-scale_exp`.
    pub(crate) fn reduce_up_scaled(plan: &Plan, inner: Vec<f64>, scale_exp: i32) -> Aggregates {
        let mut agg = Aggregates::from_inner(plan, inner, scale_exp);
        for level in (1..plan.levels().len()).rev() {
            agg.upper_reduce(plan, level);
        }
        agg
    }

    /// Whether every aggregate is finite (the multi-level norm bounds them all); if not, some
    /// norm overflowed and the aggregates must be computed scaled. Needs `V_0`.
    pub fn finite(&self) -> bool {
        self.v[0][0].is_finite()
    }

    /// The multi-level norm of the tensor (+∞ when it exceeds `f64::MAX`).
    pub fn norm(&self) -> f64 {
        self.v[0][0] * 2f64.powi(self.scale_exp)
    }

    /// `U_0`: the total radius, in the aggregates' scale.
    pub(crate) fn top_radius(&self, radius: f64) -> Vec<f64> {
        vec![radius * 2f64.powi(-self.scale_exp)]
    }

    /// The top-down solve: returns `U_{k-1}`, the radius of each innermost group, for a total
    /// radius `radius`. `U_0 = [radius]`; for each level `j < k` and each segment `s`,
    /// `U_j[s,·] = P_{p_j}(V_j[s,·], U_{j-1}[s])`. Like the aggregates, the radii are scaled by
    /// `2^-scale_exp`; [`Aggregates::actions`] takes them so.
    pub fn solve(&self, plan: &Plan, radius: f64) -> Vec<f64> {
        self.innermost_radii(&self.solve_all(plan, radius), radius)
    }

    /// `U_{k-1}` from the solve steps `solved` (`U_0 = [radius]` when there are none).
    pub(crate) fn innermost_radii(&self, solved: &[Solved], radius: f64) -> Vec<f64> {
        match solved.last() {
            Some(s) => s.radii.clone(),
            None => self.top_radius(radius),
        }
    }

    /// Every solve step: `U_1 … U_{k-1}` with the thresholds of the l1 levels.
    pub(crate) fn solve_all(&self, plan: &Plan, radius: f64) -> Vec<Solved> {
        let mut solved: Vec<Solved> = Vec::new();
        for level in 1..plan.levels().len() {
            let next = match solved.last() {
                Some(prev) => self.solve_level(plan, level, &prev.radii),
                None => self.solve_level(plan, level, &self.top_radius(radius)),
            };
            solved.push(next);
        }
        solved
    }

    /// One solve step of the plan: `U_level` from `U_{level-1}` (`u`).
    pub(crate) fn solve_level(&self, plan: &Plan, level: usize, u: &[f64]) -> Solved {
        let j = level;
        let level = &plan.levels()[j - 1];
        let n = level.extent;
        let mut scratch = Vec::new();
        let mut next = Vec::with_capacity(u.len() * n);
        let mut thresholds = vec![0.0; if level.norm == Norm::L1 { u.len() } else { 0 }];
        for (s, seg) in self.v[j].chunks_exact(n).enumerate() {
            let r = u[s];
            let seg_norm = self.v[j - 1][s];
            if inside(r, seg_norm) {
                // Inside the ball: the identity, bit for bit.
                next.extend_from_slice(seg);
            } else if r == 0.0 {
                next.extend(std::iter::repeat_n(0.0, n));
            } else {
                let start = next.len();
                match level.norm {
                    Norm::Linf => next.extend(seg.iter().map(|&x| x.min(r))),
                    Norm::L2 => {
                        // `x·(r/‖seg‖)` may round up to a norm a few ulps above `r`:
                        // lower the factor until the norm as computed is within `r`.
                        let mut f = r / seg_norm;
                        for tries in 0.. {
                            next.extend(seg.iter().map(|&x| x * f));
                            let got = balls::norm_l2(&next[start..]);
                            if got <= r {
                                break;
                            }
                            next.truncate(start);
                            f = lower_factor(f, r, got, tries);
                        }
                    }
                    Norm::L1 => {
                        // Aggregates are norms, hence non-negative: no signs to keep.
                        let t = balls::l1_soft_threshold(seg, r, &mut scratch);
                        let t = balls::fit_l1(seg, r, t, |m| m, false);
                        thresholds[s] = t.tau();
                        next.extend(seg.iter().map(|&x| t.shrink(x)));
                    }
                }
                debug_assert!(norm_of(level.norm, &next[start..]) <= r);
            }
        }
        Solved {
            radii: next,
            thresholds,
        }
    }

    /// The action on each innermost group given its radius. Groups with an innermost l1 norm
    /// that must shrink come out as [`GroupAction::NeedsThreshold`]; the threshold stage fills in
    /// `τ`.
    ///
    /// The parameters keep the stored output inside each group's ball (see the module docs): a
    /// clip bound is the radius rounded toward zero to the element type, a scale factor comes
    /// from `scale_factor`; a group whose parameter rounds to nothing is zero-filled.
    pub fn actions(&self, plan: &Plan, radii: &[f64]) -> Vec<GroupAction> {
        let inner = &self.v[plan.levels().len() - 1];
        let norm = plan.innermost().norm;
        let dtype = plan.tensor().dtype;
        // Radii back to the tensor's scale (exact: a power of two, and at most the radius).
        let up = 2f64.powi(self.scale_exp);
        // The absolute rounding margin of `scale_factor`, in the aggregates' scale.
        let down = 2f64.powi(-self.scale_exp);
        inner
            .iter()
            .zip(radii)
            .map(|(&vg, &r)| {
                if inside(r, vg) {
                    GroupAction::Keep
                } else if r == 0.0 {
                    GroupAction::Zero
                } else {
                    let nonzero =
                        |p: f64, a: GroupAction| if p > 0.0 { a } else { GroupAction::Zero };
                    match norm {
                        Norm::Linf => {
                            let b = toward_zero(dtype, r * up);
                            nonzero(b, GroupAction::Clip(b))
                        }
                        Norm::L2 => {
                            let f = scale_factor(dtype, r, vg, plan.group_len(), down);
                            nonzero(f, GroupAction::Scale(f))
                        }
                        Norm::L1 => GroupAction::NeedsThreshold(r * up),
                    }
                }
            })
            .collect()
    }
}

/// One solve step's result: `U_j`, and for an l1 level the soft threshold `τ` of each segment
/// (0 where the segment was inside its ball or zeroed), in the aggregates' scale.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Solved {
    pub radii: Vec<f64>,
    pub thresholds: Vec<f64>,
}

/// The one test of "inside the ball" every backend and level uses: a group or segment whose
/// norm `norm` (as computed by the reduce and upper reductions, which give the same number on
/// every backend) is at most its radius `radius` is left exactly as it is.
#[inline]
pub fn inside(radius: f64, norm: f64) -> bool {
    radius >= norm
}

/// `f64::EPSILON / 2`: the unit roundoff of f64 arithmetic.
const U: f64 = f64::EPSILON / 2.0;

/// The factor an l2 group of `n` elements with computed norm `norm > radius` is scaled by, so
/// that the stored elements (of type `dtype`) have an l2 norm at most `radius` however it is
/// computed (any summation order, the rescaled form for sums that underflow), or 0 when no
/// positive factor is safe (radii of a few subnormal units).
///
/// With `ũ = (1 + u)`: the computed norm of `n` numbers is within a factor `ũ^(n/2+4)` of the
/// exact one, both for the input (so `‖y‖ ≤ norm·ũ^(n/2+4)`) and for the output; each product
/// `y·f` rounds up by at most a factor `ũ` plus half a subnormal unit, and storing to f32 (to
/// nearest) by at most a factor `1 + 2^-24` plus half an f32 subnormal unit (f16: `1 + 2^-11`,
/// bf16: `1 + 2^-8`, and their subnormal units). So `(radius − abs) / norm · (1 − (n + 16)·u)`,
/// times `1 − u'` for a narrower type of unit roundoff `u'`, is safe: the `n + 9`
/// relative roundings above, four more for computing the factor itself, and room; the absolute
/// margin `abs` is `(√n + 2)` subnormal units of the element type, in the aggregates' scale
/// (`down`). For f64 data this lowers results by about `n·1.1e-16` relative, for f32 by at most
/// an f32 ulp. A factor in the subnormal range is lowered by two subnormal units, so that its
/// own roundings cannot raise it above the exact factor.
pub(crate) fn scale_factor(dtype: DType, radius: f64, norm: f64, n: usize, down: f64) -> f64 {
    let n = n as f64;
    let unit = dtype.min_positive_subnormal();
    let store = match dtype {
        DType::F64 => 1.0,
        _ => 1.0 - dtype.unit_roundoff(),
    };
    let abs = (n.sqrt() + 2.0) * unit * down;
    let r = radius - abs;
    if r <= 0.0 {
        return 0.0;
    }
    let f = (r / norm) * (1.0 - (n + 16.0) * U) * store;
    if dtype.is_half() {
        // The 16-bit formats scale in f32 (see `apply_one_as`): the factor rounded toward zero
        // to f32, and one more rounding of the product to f32, `1 + 2^-24` at most (plus half
        // an f32 subnormal unit, far below the format's own, which `abs` counts).
        let f = f * (1.0 - f64::from(f32::EPSILON) / 2.0);
        return toward_zero(DType::F32, f.max(0.0));
    }
    if f < f64::MIN_POSITIVE {
        // A subnormal factor (a radius of a few subnormal units over a norm above 1): each of
        // the three roundings above may have added half a subnormal unit, which is not small
        // next to `f` (a factor of 0.6 units rounds to 1 and scales a group of norm 47 to 47
        // units, far above a radius of 33). Two units down make `f` a lower bound of the exact
        // factor again; the products' own roundings are in `abs`.
        return (f - 2.0 * f64::from_bits(1)).max(0.0);
    }
    f.max(0.0)
}

/// A factor below `f` after `f` gave the computed norm `got > r` (upper-level l2 segments): in
/// proportion, a few ulps more, and halving after a few tries (results of a few subnormal units,
/// where rounding is coarse), down to 0 which always fits.
fn lower_factor(f: f64, r: f64, got: f64, tries: usize) -> f64 {
    if tries >= 64 {
        return 0.0;
    }
    let lower = f * (r / got) * (1.0 - 8.0 * f64::EPSILON);
    if tries >= 3 { lower * 0.5 } else { lower }
}

/// The value an f64 result is stored as in a tensor of type `dtype` (rounded to nearest, as
/// both backends store).
#[inline(always)]
pub fn stored(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F64 => v,
        DType::F32 => f64::from(v as f32),
        DType::F16 => float16::F16.stored(v),
        DType::BF16 => float16::BF16.stored(v),
    }
}

/// `v` rounded toward zero to the element type: the largest value of `dtype` whose magnitude
/// is at most `|v|` (finite `v`; beyond the type's largest finite value gives ± that value).
/// Clip bounds are rounded so, then clipping never rounds.
pub(crate) fn toward_zero(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F64 => v,
        DType::F32 => {
            let r = v as f32;
            if f64::from(r).abs() > v.abs() {
                // `r ≠ 0` here; the next bit pattern down is the next f32 toward zero.
                f64::from(f32::from_bits(r.to_bits() - 1))
            } else {
                f64::from(r)
            }
        }
        DType::F16 => float16::F16.toward_zero(v),
        DType::BF16 => float16::BF16.toward_zero(v),
    }
}

/// Applies a group action to one element of a tensor of type `dtype`, before the rounding to
/// the element type: in f64 ([`apply_one`]), except the scaling of the 16-bit formats, which
/// is in f32: `fl32(y · fl32(f))` (every 16-bit value is an f32; the runtime's factors for
/// them are f32s already, see `scale_factor`, so that is the exact product rounded to f32).
/// The JIT scales eight elements at a time so, and both backends round that f32 once more to
/// the element type.
#[inline(always)]
pub fn apply_one_as(dtype: DType, action: GroupAction, y: f64) -> f64 {
    match action {
        GroupAction::Scale(f) if dtype.is_half() => f64::from((y as f32) * (f as f32)),
        a => apply_one(a, y),
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

/// The threshold of a group that must shrink (innermost l1), from its entries' magnitudes
/// `values` (gathered in memory order) and its radius `r`: the soft threshold whose *stored*
/// results fit the radius (`balls::l1_group_threshold`). Both backends call this one function
/// on the same values in the same order, so their thresholds are bit for bit the same.
pub fn threshold_action(
    dtype: DType,
    values: &[f64],
    r: f64,
    scratch: &mut Vec<f64>,
) -> GroupAction {
    // One instance per element type, so that the rounding of the check pass is not a match.
    let t = match dtype {
        DType::F64 => balls::l1_group_threshold(values, r, scratch, false, |m| m),
        // `stored_f32` is `stored(F32, ·)` (every result is finite), in a form that vectorizes.
        DType::F32 => balls::l1_group_threshold(values, r, scratch, true, float16::stored_f32),
        DType::F16 => {
            balls::l1_group_threshold(values, r, scratch, false, |m| stored(DType::F16, m))
        }
        DType::BF16 => {
            balls::l1_group_threshold(values, r, scratch, false, |m| stored(DType::BF16, m))
        }
    };
    GroupAction::Shrink(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored l2 norm of `values` scaled by `f`, as `multiproj norm` computes it.
    fn stored_norm(values: &[f64], f: f64) -> f64 {
        let out: Vec<f64> = values.iter().map(|&y| stored(DType::F64, y * f)).collect();
        balls::norm_l2(&out)
    }

    /// Regression (found by `lands_in_the_ball_exactly_on_both_backends`): a radius of 33
    /// subnormal units over a group of norm 47.68 gave the factor 0.6 units, which rounded to
    /// one unit, and the group came out with norm 47.7 units.
    #[test]
    fn a_subnormal_factor_is_a_lower_bound() {
        let values = [
            -9.67e-45,
            2.11597259,
            1.65e-11,
            46.9235574,
            -1.13466e-4,
            8.20260916,
        ];
        let norm = balls::norm_l2(&values);
        let unit = f64::from_bits(1);
        for units in [1u64, 2, 7, 33, 100, 1000, 1 << 20] {
            let r = units as f64 * unit;
            let f = scale_factor(DType::F64, r, norm, values.len(), 1.0);
            assert!(
                stored_norm(&values, f) <= r,
                "radius {units} units: factor {f:e} gives norm {:e}",
                stored_norm(&values, f)
            );
        }
        // Normal factors are not touched by the subnormal rule.
        let f = scale_factor(DType::F64, 1.0, norm, values.len(), 1.0);
        assert!(f > 0.9 / norm && stored_norm(&values, f) <= 1.0);
    }
}
