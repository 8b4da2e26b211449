//! Norms of, and Euclidean projections onto the l1, l2 and l∞ balls of, `f64` vectors: the
//! building blocks of the "upper reductions and solve" and "threshold" stages, which work on
//! aggregates (small next to the tensor, but one threshold per group, so they run in hot loops).
//!
//! The l1 projection is the soft threshold `x = sign(v)·max(|v| − τ, 0)` with τ chosen so that
//! `Σ|x| = r`. τ is found by Condat's algorithm (expected linear time, no sort); the sort-based
//! method is kept as [`l1_threshold_sorted`], the reference the tests compare against.
//!
//! All functions expect finite entries; the runtime rejects NaN and ±inf before any projection.

/// `Σ |v_i|`.
pub fn norm_l1(v: &[f64]) -> f64 {
    v.iter().map(|x| x.abs()).sum()
}

/// `sqrt(Σ v_i²)`, without spurious overflow or underflow.
///
/// When the plain sum of squares is a normal finite number (the common case) this is exactly
/// `sqrt(Σ v_i²)`, the same value the streaming reduce pass computes; only when the squares
/// overflow (entries beyond ~1e154) or underflow does it fall back to scaling by the largest entry.
pub fn norm_l2(v: &[f64]) -> f64 {
    let s: f64 = v.iter().map(|x| x * x).sum();
    if s.is_finite() && s >= f64::MIN_POSITIVE {
        return s.sqrt();
    }
    let m = norm_linf(v);
    if m == 0.0 || !m.is_finite() {
        // All zeros, or a NaN/inf entry: nothing to rescue; the norm is 0, NaN or inf.
        return m;
    }
    let scaled: f64 = v.iter().map(|x| (x / m) * (x / m)).sum();
    m * scaled.sqrt()
}

/// `max |v_i|` (0 for an empty slice). A NaN entry makes the result NaN rather than being
/// skipped, so a bad aggregate cannot pass for a small one.
pub fn norm_linf(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m: f64, x| {
        let a = x.abs();
        if a > m || a.is_nan() { a } else { m }
    })
}

/// A soft threshold τ kept as `base + offset`, where `base` is one of the magnitudes it is
/// applied to and `offset` is small.
///
/// All magnitudes that survive the threshold lie in `(τ, τ + r]`. When `r` is tiny next to them
/// (a single huge entry, a radius of 1e-12 on entries of 1e6) `τ` rounded to one `f64` has lost
/// the digits that matter, and `|v| − τ` would no longer sum to `r`. Evaluating
/// `(|v| − base) − offset` instead keeps them: `|v| − base` is exact for magnitudes near `base`
/// (Sterbenz), and `offset` carries the radius at full precision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftThreshold {
    pub base: f64,
    pub offset: f64,
}

impl SoftThreshold {
    /// The threshold that changes nothing (`max(|v| − 0, 0) = |v|`).
    pub const ZERO: SoftThreshold = SoftThreshold {
        base: 0.0,
        offset: 0.0,
    };

    /// τ as one number (rounded).
    pub fn tau(self) -> f64 {
        self.base + self.offset
    }

    /// `max(magnitude − τ, 0)` for a magnitude `|v_i| ≥ 0`.
    ///
    /// Never larger than `magnitude`, and exactly 0 for every magnitude below τ: rounding is
    /// monotone, so `fl(magnitude − base) ≤ offset` whenever `magnitude − base < offset`.
    #[inline]
    pub fn shrink(self, magnitude: f64) -> f64 {
        let d = (magnitude - self.base) - self.offset;
        if d > 0.0 { d } else { 0.0 }
    }
}

/// The soft threshold τ > 0 with `Σ max(|v_i| − τ, 0) = radius`.
///
/// # Preconditions
/// `radius > 0`, every entry finite, and `Σ |v_i| > radius` (otherwise no positive τ exists; the
/// caller leaves such vectors alone). Checked with `debug_assert!`; in release builds a violated
/// precondition yields a harmless threshold (0, or the largest magnitude for `radius == 0`),
/// never a panic.
///
/// Allocates a scratch buffer; in loops use [`l1_threshold_with`].
pub fn l1_threshold(v: &[f64], radius: f64) -> f64 {
    l1_threshold_with(v, radius, &mut Vec::new())
}

/// [`l1_threshold`] with a caller-provided scratch buffer (cleared, grown to `v.len()`), so
/// that hot loops do not allocate.
pub fn l1_threshold_with(v: &[f64], radius: f64, scratch: &mut Vec<f64>) -> f64 {
    l1_soft_threshold(v, radius, scratch).tau()
}

/// The soft threshold of [`l1_threshold`] in the split form of [`SoftThreshold`], for callers
/// that apply it and want the result to land on the sphere even when `radius` is tiny next to
/// the entries. Same preconditions as [`l1_threshold`].
///
/// This is Condat's algorithm (L. Condat, "Fast projection onto the simplex and the l1 ball",
/// Math. Prog. 158, 2016): one pass keeps an *active list* whose mean-based estimate ρ of τ only
/// grows, parking discarded prefixes on a *waiting list*; the waiting list is then revisited
/// once, and a few cleanup sweeps drop active entries that fell below ρ. Expected O(n), no sort.
/// Both lists live in `scratch`: `scratch[..start]` is the waiting list, `scratch[start..]`
/// the active one, exactly as in Condat's reference C code.
pub fn l1_soft_threshold(v: &[f64], radius: f64, scratch: &mut Vec<f64>) -> SoftThreshold {
    debug_assert!(radius > 0.0 && radius.is_finite(), "radius {radius}");
    debug_assert!(v.iter().all(|x| x.is_finite()), "non-finite entry");
    debug_assert!(
        norm_l1(v) > radius,
        "Σ|v| = {} is not above the radius {radius}",
        norm_l1(v)
    );
    let a = radius;
    let Some((first, rest)) = v.split_first() else {
        return SoftThreshold::ZERO;
    };

    scratch.clear();
    scratch.reserve(v.len());
    let first = first.abs();
    scratch.push(first);
    let mut start = 0;
    let mut rho = first - a;

    // 1. One pass. An entry above ρ joins the active list and raises ρ towards the mean-based
    //    threshold of the list; if it alone gives a higher threshold, the list so far is parked.
    for y in rest.iter().map(|x| x.abs()) {
        if y > rho {
            scratch.push(y);
            let k = scratch.len() - start;
            rho += (y - rho) / k as f64;
            if rho <= y - a {
                rho = y - a;
                start = scratch.len() - 1;
            }
        }
    }

    // 2. Parked entries still above ρ rejoin. They are written just below the active list, which
    //    stays contiguous: the write position only moves down and never passes the read one.
    for i in (0..start).rev() {
        let y = scratch[i];
        if y > rho {
            start -= 1;
            scratch[start] = y;
            rho += (y - rho) / (scratch.len() - start) as f64;
        }
    }

    // 3. Drop active entries at or below ρ until none is left (each removal raises ρ).
    let active = &mut scratch[start..];
    let mut len = active.len();
    loop {
        let before = len;
        let mut kept = 0;
        for i in 0..before {
            let y = active[i];
            let remaining = kept + (before - i - 1);
            // `remaining == 0` would mean ρ ≥ max|v|, impossible in exact arithmetic when
            // Σ|v| > radius; keep the entry rather than divide by zero.
            if y > rho || remaining == 0 {
                active[kept] = y;
                kept += 1;
            } else {
                rho += (rho - y) / remaining as f64;
            }
        }
        len = kept;
        if len == before {
            break;
        }
    }
    let mut t = split_threshold(&active[..len], a);

    // 4. Settle the active set with the split threshold. ρ went through many rounded updates,
    //    and once `radius` is below an ulp of the entries, `y − radius` rounds to `y`, so ties
    //    of the largest entry were never "above ρ" and are missing. Any set's threshold is a
    //    lower bound on τ (τ = max over sets S of (Σ_S y − radius)/|S|), so the entries above
    //    `t` are a superset of the true active set; dropping the entries at or below the
    //    threshold of the current set until none is left (Michelot's iteration) converges to
    //    it. Usually the first set is already right and this is one pass over `v`.
    scratch.clear();
    scratch.extend(v.iter().map(|x| x.abs()).filter(|&y| t.shrink(y) > 0.0));
    while !scratch.is_empty() {
        t = split_threshold(scratch, a);
        let before = scratch.len();
        scratch.retain(|&y| t.shrink(y) > 0.0);
        if scratch.len() == before {
            break;
        }
    }

    if t.tau() > 0.0 {
        t
    } else {
        // Only reachable through rounding (τ below an ulp of Σ|v|) or a violated precondition;
        // a non-positive threshold would inflate entries.
        SoftThreshold::ZERO
    }
}

/// The threshold that makes the entries of `active` (all of them, and nothing else) sum to
/// `radius` after shrinking, in split form: `base` is the smallest of them, and `Σ(y − base)`
/// over magnitudes within `radius` of each other is nearly exact, unlike `Σy − radius`.
fn split_threshold(active: &[f64], radius: f64) -> SoftThreshold {
    let base = active.iter().copied().fold(f64::INFINITY, f64::min);
    let spread: f64 = active.iter().map(|y| y - base).sum();
    SoftThreshold {
        base,
        offset: (spread - radius) / active.len() as f64,
    }
}

/// The reference l1 threshold by sorting (Held, Wolfe & Crowder 1974; Duchi et al. 2008):
/// sort magnitudes in decreasing order `u`, take the largest `k` with
/// `u_k > (Σ_{j≤k} u_j − radius) / k`, and return that quotient. O(n log n); kept for tests
/// and benchmarks, not used by the runtime. Same preconditions as [`l1_threshold`].
pub fn l1_threshold_sorted(v: &[f64], radius: f64) -> f64 {
    let mut u: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    u.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut sum = 0.0;
    let mut tau = 0.0;
    for (j, &uj) in u.iter().enumerate() {
        sum += uj;
        let t = (sum - radius) / (j + 1) as f64;
        if uj > t {
            tau = t;
        } else {
            break;
        }
    }
    tau.max(0.0)
}

/// Projects `v` onto the l1 ball of radius `r` in place: `v_i ← sign(v_i)·max(|v_i| − τ, 0)`.
///
/// Entries already inside the ball (`Σ|v| ≤ r`) are left untouched, bit for bit; `r == 0`
/// gives zeros. Zeroed entries are `+0.0` whatever their sign was. `r` must be non-negative
/// (debug-asserted; a negative `r` is treated as 0). Allocates; in loops use
/// [`project_l1_with`].
pub fn project_l1(v: &mut [f64], r: f64) {
    project_l1_with(v, r, &mut Vec::new());
}

/// [`project_l1`] with a caller-provided scratch buffer.
pub fn project_l1_with(v: &mut [f64], r: f64, scratch: &mut Vec<f64>) {
    debug_assert!(r >= 0.0, "radius {r}");
    if norm_l1(v) <= r {
        return;
    }
    if r <= 0.0 {
        v.fill(0.0);
        return;
    }
    let t = l1_soft_threshold(v, r, scratch);
    for x in v.iter_mut() {
        let m = t.shrink(x.abs());
        *x = if m > 0.0 { m.copysign(*x) } else { 0.0 };
    }
}

/// Projects `v` onto the l2 ball of radius `r` in place: scales by `r / ‖v‖₂` when outside,
/// leaves `v` untouched (bit for bit) when inside, zeros for `r == 0`.
pub fn project_l2(v: &mut [f64], r: f64) {
    debug_assert!(r >= 0.0, "radius {r}");
    let norm = norm_l2(v);
    if norm <= r {
        return;
    }
    if r <= 0.0 {
        v.fill(0.0);
        return;
    }
    let scale = r / norm;
    for x in v.iter_mut() {
        *x *= scale;
    }
}

/// Projects `v` onto the l∞ ball of radius `r` in place: clips every entry to `[-r, r]`.
/// Entries inside are untouched bit for bit; `r == 0` gives zeros.
pub fn project_linf(v: &mut [f64], r: f64) {
    debug_assert!(r >= 0.0, "radius {r}");
    if r <= 0.0 {
        v.fill(0.0);
        return;
    }
    for x in v.iter_mut() {
        if x.abs() > r {
            *x = r.copysign(*x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
        (a - b).abs() <= rtol * a.abs().max(b.abs()) + atol
    }

    /// Optimality of `x` as the projection of `v` onto the l1 ball of radius `r`, checked
    /// without τ: the ball is the convex hull of `±r·e_i`, so `x` (inside the ball) is the
    /// projection iff `⟨v − x, z − x⟩ ≤ 0` for every vertex `z`, i.e.
    /// `r·‖v − x‖∞ ≤ ⟨v − x, x⟩`.
    fn assert_l1_optimal(v: &[f64], x: &[f64], r: f64) {
        let scale = norm_linf(v).max(r);
        let tol = 1e-12 * scale * r.max(norm_l1(x)) * (v.len() as f64);
        assert!(norm_l1(x) <= r * (1.0 + 1e-12), "{} > {r}", norm_l1(x));
        let d: Vec<f64> = v.iter().zip(x).map(|(a, b)| a - b).collect();
        let lhs = r * norm_linf(&d);
        let rhs: f64 = d.iter().zip(x).map(|(a, b)| a * b).sum();
        assert!(
            lhs <= rhs + tol,
            "not optimal: r·‖v−x‖∞ = {lhs} > ⟨v−x, x⟩ = {rhs}"
        );
        for (a, b) in v.iter().zip(x) {
            assert!(
                *b == 0.0 || a.signum() == b.signum(),
                "sign flipped: {a} -> {b}"
            );
            assert!(b.abs() <= a.abs(), "grew: {a} -> {b}");
        }
    }

    fn projected_l1(v: &[f64], r: f64) -> Vec<f64> {
        let mut x = v.to_vec();
        project_l1(&mut x, r);
        x
    }

    #[test]
    fn norms() {
        let v = [3.0, -4.0, 0.0];
        assert_eq!(norm_l1(&v), 7.0);
        assert_eq!(norm_l2(&v), 5.0);
        assert_eq!(norm_linf(&v), 4.0);
        assert_eq!(norm_l2(&[]), 0.0);
        assert_eq!(norm_linf(&[]), 0.0);
        assert!(norm_linf(&[1.0, f64::NAN, 2.0]).is_nan());
        // Squares overflow / underflow: the scaled fallback still gets the norm.
        assert!(close(norm_l2(&[3e200, 4e200]), 5e200, 1e-15, 0.0));
        assert!(close(norm_l2(&[3e-200, 4e-200]), 5e-200, 1e-15, 0.0));
        assert_eq!(norm_l2(&[1.0, f64::INFINITY]), f64::INFINITY);
        assert!(norm_l2(&[1.0, f64::NAN]).is_nan());
    }

    #[test]
    fn l1_threshold_small_cases() {
        // n = 1: τ = |v| − r.
        assert_eq!(l1_threshold(&[5.0], 2.0), 3.0);
        assert_eq!(l1_threshold(&[-5.0], 2.0), 3.0);
        // Ties: [1, 1, 1] onto radius 1.5 gives τ = 0.5.
        assert_eq!(l1_threshold(&[1.0, -1.0, 1.0], 1.5), 0.5);
        // Zeros never become active.
        assert_eq!(l1_threshold(&[0.0, 2.0, 0.0, -2.0, 0.0], 2.0), 1.0);
        // Everything active: τ = (Σ − r)/n.
        assert_eq!(l1_threshold(&[4.0, 3.0, 2.0], 6.0), 1.0);
        // Some entries cut off.
        assert_eq!(l1_threshold(&[10.0, 1.0, 0.5], 2.0), 8.0);
    }

    #[test]
    fn single_huge_entry_lands_on_the_sphere() {
        let v = [1e300, 1.0, -1.0, 0.0];
        let x = projected_l1(&v, 1.0);
        assert_eq!(x, [1.0, 0.0, 0.0, 0.0]);
        assert!(close(l1_threshold(&v, 1.0), 1e300, 1e-15, 0.0));
        let x = projected_l1(&[1e16, 1e16 + 2.0, 3.0], 1e-10);
        assert_eq!(x[0], 0.0);
        assert!(close(x[1], 1e-10, 1e-12, 0.0));
        assert_eq!(x[2], 0.0);
    }

    #[test]
    fn tiny_radius_on_ties() {
        let v = [1.0, -1.0, 1.0, 0.5];
        let r = 1e-300;
        let x = projected_l1(&v, r);
        assert!(close(norm_l1(&x), r, 1e-12, 0.0), "{x:?}");
        assert_eq!(x[0], -x[1]);
        assert_eq!(x[3], 0.0);
        assert_l1_optimal(&v, &x, r);
    }

    #[test]
    fn radius_just_below_the_sum() {
        let v = [1.0, 2.0, 3.0];
        let r = 6.0 * (1.0 - 1e-15);
        let t = l1_threshold(&v, r);
        assert!(t > 0.0 && t < 1e-14, "{t}");
        assert_l1_optimal(&v, &projected_l1(&v, r), r);
    }

    #[test]
    fn magnitudes_spanning_many_orders() {
        let v = [1e-300, -1e-150, 1e-10, 1.0, -1e10, 1e150, 1e300, -1e300];
        for r in [1e-200, 1e-5, 1.0, 1e100, 1e299, 1.5e300] {
            let x = projected_l1(&v, r);
            assert!(close(norm_l1(&x), r, 1e-12, 0.0), "r = {r}: {x:?}");
            assert_l1_optimal(&v, &x, r);
        }
    }

    #[test]
    fn projections_inside_are_identity_and_radius_zero_gives_zeros() {
        let v = [0.1, -0.2, 0.30000000000000004, -0.0];
        for p in [project_l1, project_l2, project_linf] {
            let mut x = v;
            p(&mut x, 10.0);
            assert_eq!(x.map(f64::to_bits), v.map(f64::to_bits));
            p(&mut x, f64::INFINITY);
            assert_eq!(x.map(f64::to_bits), v.map(f64::to_bits));
            p(&mut x, 0.0);
            assert_eq!(x.map(f64::to_bits), [0.0f64; 4].map(f64::to_bits));
        }
        // On the boundary counts as inside.
        let mut x = [3.0, -4.0];
        project_l1(&mut x, 7.0);
        project_l2(&mut x, 5.0);
        project_linf(&mut x, 4.0);
        assert_eq!(x, [3.0, -4.0]);
    }

    #[test]
    fn l2_and_linf_outside() {
        let mut x = [3.0, -4.0];
        project_l2(&mut x, 1.0);
        assert!(close(x[0], 0.6, 1e-15, 0.0) && close(x[1], -0.8, 1e-15, 0.0));
        let mut x = [3.0, -4.0, 0.5];
        project_linf(&mut x, 1.0);
        assert_eq!(x, [1.0, -1.0, 0.5]);
    }

    #[test]
    fn scratch_reuse_gives_the_same_answer() {
        let mut scratch = Vec::new();
        let a = l1_threshold_with(&[5.0, 1.0, 2.0, 7.0, 7.0], 3.0, &mut scratch);
        let b = l1_threshold_with(&[1.0, 2.0], 1.0, &mut scratch);
        assert_eq!(a, l1_threshold(&[5.0, 1.0, 2.0, 7.0, 7.0], 3.0));
        assert_eq!(b, l1_threshold(&[1.0, 2.0], 1.0));
    }

    /// Entries that exercise the algorithm: exact zeros, a few repeated values (ties), smooth
    /// values, and magnitudes over many binades.
    fn entry() -> impl Strategy<Value = f64> {
        prop_oneof![
            1 => Just(0.0),
            2 => (-4i32..=4).prop_map(|k| f64::from(k) * 0.25),
            3 => -100.0..100.0f64,
            2 => (1.0..2.0f64, -20i32..20, any::<bool>())
                .prop_map(|(m, e, neg)| if neg { -m } else { m } * 2f64.powi(e)),
        ]
    }

    fn vector_and_radius() -> impl Strategy<Value = (Vec<f64>, f64)> {
        (prop::collection::vec(entry(), 1..80), 0.01..0.99f64).prop_filter_map(
            "needs a positive sum",
            |(v, frac)| {
                let s = norm_l1(&v);
                (s > 0.0).then_some((v, frac * s))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn condat_matches_sort((v, r) in vector_and_radius()) {
            let fast = l1_threshold(&v, r);
            let slow = l1_threshold_sorted(&v, r);
            // The sort-based reference sums naively; allow its rounding on top of 1e-12.
            let atol = 4.0 * v.len() as f64 * f64::EPSILON * norm_linf(&v);
            prop_assert!(close(fast, slow, 1e-12, atol), "condat {fast} vs sorted {slow}");
            prop_assert!(fast > 0.0);
        }

        #[test]
        fn l1_projection_is_on_the_sphere_and_optimal((v, r) in vector_and_radius()) {
            let x = projected_l1(&v, r);
            prop_assert!(close(norm_l1(&x), r, 1e-12, 0.0), "Σ|x| = {} vs r = {r}", norm_l1(&x));
            assert_l1_optimal(&v, &x, r);
            // KKT form: x = sign(v)·max(|v| − τ, 0) for the reference τ.
            let tau = l1_threshold_sorted(&v, r);
            let atol = 8.0 * v.len() as f64 * f64::EPSILON * norm_linf(&v);
            for (a, b) in v.iter().zip(&x) {
                let expect = (a.abs() - tau).max(0.0).copysign(*a);
                prop_assert!(close(*b, expect, 1e-12, atol), "{a}: {b} vs {expect}");
            }
        }

        #[test]
        fn inside_is_identity_bit_for_bit(v in prop::collection::vec(entry(), 0..40), grow in 1.0..4.0f64) {
            for (p, norm) in [
                (project_l1 as fn(&mut [f64], f64), norm_l1 as fn(&[f64]) -> f64),
                (project_l2, norm_l2),
                (project_linf, norm_linf),
            ] {
                let mut x = v.clone();
                p(&mut x, norm(&v) * grow);
                prop_assert_eq!(
                    x.iter().map(|a| a.to_bits()).collect::<Vec<_>>(),
                    v.iter().map(|a| a.to_bits()).collect::<Vec<_>>()
                );
            }
        }

        #[test]
        fn radius_zero_gives_zeros(v in prop::collection::vec(entry(), 0..40)) {
            for p in [project_l1 as fn(&mut [f64], f64), project_l2, project_linf] {
                let mut x = v.clone();
                p(&mut x, 0.0);
                prop_assert!(x.iter().all(|a| a.to_bits() == 0));
            }
        }

        #[test]
        fn l2_and_linf_land_on_the_sphere((v, frac) in (prop::collection::vec(entry(), 1..40), 0.01..0.99f64)) {
            let n2 = norm_l2(&v);
            let ninf = norm_linf(&v);
            prop_assume!(n2 > 0.0);
            let mut x = v.clone();
            project_l2(&mut x, frac * n2);
            prop_assert!(close(norm_l2(&x), frac * n2, 1e-14, 0.0));
            let mut x = v.clone();
            project_linf(&mut x, frac * ninf);
            prop_assert_eq!(norm_linf(&x), frac * ninf);
            for (a, b) in v.iter().zip(&x) {
                prop_assert!(*b == a.clamp(-frac * ninf, frac * ninf));
            }
        }

        /// Extreme magnitudes and radii: no panic, a finite positive τ, and the projection
        /// inside the ball and optimal.
        #[test]
        fn extreme_scales(
            v in prop::collection::vec(
                (1.0..2.0f64, -500i32..500, any::<bool>())
                    .prop_map(|(m, e, neg)| if neg { -m } else { m } * 2f64.powi(e)),
                1..30,
            ),
            frac_exp in -300i32..0,
        ) {
            let s = norm_l1(&v);
            prop_assume!(s.is_finite() && s > 0.0);
            let r = s * 10f64.powi(frac_exp).min(0.5);
            prop_assume!(r > 0.0);
            let t = l1_threshold(&v, r);
            prop_assert!(t.is_finite() && t > 0.0 && t <= norm_linf(&v));
            let x = projected_l1(&v, r);
            prop_assert!(norm_l1(&x) <= r * (1.0 + 1e-12));
            assert_l1_optimal(&v, &x, r);
        }
    }
}
