//! Tests of the norms, the projections and the l1 threshold (against the sort-based reference,
//! on the sphere, optimal), and the timing of the threshold search (ignored; run in release).

use super::l1::{
    HISTOGRAM_FROM, SAMPLE, SAMPLE_FROM, l1_soft_threshold_budget, l1_soft_threshold_candidates,
    l1_soft_threshold_sampled,
};
use super::passes::abs_sum_min_max;
use super::*;
use crate::rng::SplitMix64;
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

/// `t` agrees with the sort-based threshold and lands `v` on the sphere.
fn assert_threshold_ok(v: &[f64], r: f64, t: SoftThreshold) {
    let slow = l1_threshold_sorted(v, r);
    let atol = 4.0 * v.len() as f64 * f64::EPSILON * norm_linf(v);
    assert!(close(t.tau(), slow, 1e-12, atol), "{t:?} vs sorted {slow}");
    assert!(t.tau() > 0.0);
    let x: Vec<f64> = v.iter().map(|y| t.shrink(y.abs()).copysign(*y)).collect();
    // Σ|x| compensated (Neumaier), so that long sums do not blur the check.
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for y in x.iter().map(|y| y.abs()) {
        let s = sum + y;
        c += if sum >= y {
            (sum - s) + y
        } else {
            (y - s) + sum
        };
        sum = s;
    }
    let sum = sum + c;
    assert!(close(sum, r, 1e-12, 0.0), "Σ|x| = {sum} vs r = {r}, {t:?}");
    assert_l1_optimal(v, &x, r);
}

/// Long vectors (the histogram's first cut and, forced, the sampled one; compacting and
/// read-only passes; the Condat fallback forced with a zero budget) on the distributions of
/// the timing test and adversarial ones.
#[test]
fn long_vectors() {
    let n = 50_000;
    let unit = |i: usize| {
        ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
    };
    let stride = n / SAMPLE;
    let cases: Vec<Vec<f64>> = vec![
        (0..n).map(|i| unit(i) - 0.5).collect(),
        (0..n)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect(),
        (0..n).map(|i| 2f64.powf(-40.0 * unit(i))).collect(),
        (0..n).map(|i| 0.999f64.powi(i as i32)).collect(),
        (0..n).map(|i| (n - i) as f64).collect(),
        // The sample sees only the large entries, or only the small ones.
        (0..n)
            .map(|i| {
                if i % stride == stride / 2 {
                    1.0
                } else {
                    1e-3 * unit(i)
                }
            })
            .collect(),
        (0..n)
            .map(|i| {
                if i % stride == stride / 2 {
                    1e-3
                } else {
                    unit(i)
                }
            })
            .collect(),
        (0..n)
            .map(|i| if i < 10 { 1e300 } else { unit(i) })
            .collect(),
        (0..n).map(|i| 1e6 + (i % 7) as f64).collect(),
    ];
    let mut scratch = Vec::new();
    for v in &cases {
        for frac in [0.9, 0.5, 0.1, 0.01, 1e-6, 1e-15] {
            let r = frac * norm_l1(v);
            for budget in [usize::MAX, 0] {
                let t = l1_soft_threshold_budget(v, r, &mut scratch, budget);
                assert_threshold_ok(v, r, t);
                let t = l1_soft_threshold_sampled(v, r, &mut scratch, budget);
                assert_threshold_ok(v, r, t);
            }
        }
    }
}

/// Vectors of the lengths whose first cut comes from a histogram, on distributions that
/// mislead it (ties on the bucket edges, magnitudes over many binades, one huge entry) and
/// radii down to 1e-15 of the norm, where the cut is far from the digits of the actives: the
/// threshold agrees with sorting and lands on the sphere, and the candidates it reports are
/// exactly the magnitudes above their cut, which is at most the threshold.
#[test]
fn medium_vectors() {
    let unit = |i: usize| {
        ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut scratch = Vec::new();
    for n in [HISTOGRAM_FROM, 300, 4096, SAMPLE_FROM - 1] {
        let cases: Vec<Vec<f64>> = vec![
            (0..n).map(|i| unit(i) - 0.5).collect(),
            (0..n).map(unit).collect(),
            (0..n)
                .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
                .collect(),
            // Every magnitude on a bucket edge of the histogram (64ths of the maximum).
            (0..n).map(|i| ((i * 37) % 65) as f64 / 64.0).collect(),
            (0..n).map(|i| 2f64.powf(-40.0 * unit(i))).collect(),
            (0..n).map(|i| 0.999f64.powi(i as i32)).collect(),
            (0..n).map(|i| (n - i) as f64).collect(),
            (0..n)
                .map(|i| if i == n / 2 { 1.0 } else { 1e-3 * unit(i) })
                .collect(),
            (0..n)
                .map(|i| if i < 3 { 1e300 } else { unit(i) })
                .collect(),
            (0..n).map(|i| 1e6 + (i % 7) as f64).collect(),
            (0..n)
                .map(|i| if i % 5 == 0 { unit(i) } else { 0.0 })
                .collect(),
        ];
        for v in &cases {
            for frac in [0.9, 0.5, 0.1, 0.01, 1e-6, 1e-15] {
                let r = frac * norm_l1(v);
                let t = l1_soft_threshold(v, r, &mut scratch);
                assert_threshold_ok(v, r, t);
                let (t2, left) =
                    l1_soft_threshold_candidates(v, r, &mut scratch, abs_sum_min_max(v));
                assert_eq!(t2, t, "n {n}, frac {frac}");
                if let Some(c) = left {
                    let above: Vec<f64> =
                        v.iter().map(|y| y.abs()).filter(|&y| y > c.cut).collect();
                    assert_eq!(&scratch[..c.len], &above[..], "n {n}, frac {frac}");
                    // What the apply pass's check relies on to read only the candidates.
                    assert_eq!(
                        t.shrink(c.cut),
                        0.0,
                        "n {n}, frac {frac}: {t:?}, cut {}",
                        c.cut
                    );
                }
            }
        }
    }
}

/// The apply pass's thresholds on groups of those lengths: the stored results (f64, or
/// rounded to f32) sum to at most the radius in every order (here: compensated, and smallest
/// first and largest first), and to nearly all of it.
#[test]
fn group_thresholds_fit_the_radius() {
    let unit = |i: usize| {
        ((i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut scratch = Vec::new();
    for n in [HISTOGRAM_FROM, 1000, 4096] {
        let cases: Vec<Vec<f64>> = vec![
            (0..n).map(unit).collect(),
            (0..n).map(|i| 2f64.powf(-30.0 * unit(i))).collect(),
            (0..n).map(|i| 1e6 + (i % 7) as f64).collect(),
            (0..n).map(|i| ((i * 37) % 65) as f64 / 64.0).collect(),
        ];
        for v in &cases {
            for frac in [0.9, 0.3, 0.01, 1e-4, 1e-9] {
                let r = frac * norm_l1(v);
                for f32 in [false, true] {
                    let store = |m: f64| if f32 { f64::from(m as f32) } else { m };
                    let t = l1_group_threshold(v, r, &mut scratch, f32, store);
                    let mut x: Vec<f64> = v.iter().map(|&y| store(t.shrink(y.abs()))).collect();
                    x.sort_by(f64::total_cmp);
                    let up: f64 = x.iter().sum();
                    let down: f64 = x.iter().rev().sum();
                    let exact = compensated_sum(&x);
                    for s in [up, down, exact] {
                        assert!(s <= r, "n {n}, frac {frac}, f32 {f32}: {s} > {r}");
                    }
                    let slack = if f32 { 1e-6 } else { 1e-11 };
                    assert!(
                        exact >= r * (1.0 - slack),
                        "n {n}, frac {frac}, f32 {f32}: {exact} far below {r}"
                    );
                }
            }
        }
    }
}

/// `Σ x` compensated (Neumaier).
fn compensated_sum(x: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for &y in x {
        let s = sum + y;
        c += if sum.abs() >= y.abs() {
            (sum - s) + y
        } else {
            (y - s) + sum
        };
        sum = s;
    }
    sum + c
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

/// Vectors of `len` entries and a radius of `frac` times their l1 norm.
fn vector_and_radius_in(
    len: std::ops::Range<usize>,
    frac: impl Strategy<Value = f64>,
) -> impl Strategy<Value = (Vec<f64>, f64)> {
    (prop::collection::vec(entry(), len), frac).prop_filter_map(
        "needs a positive sum",
        |(v, frac)| {
            let s = norm_l1(&v);
            (s > 0.0).then_some((v, frac * s))
        },
    )
}

/// Long vectors (a histogram's first cut, or a sampled one where forced).
fn long_vector_and_radius() -> impl Strategy<Value = (Vec<f64>, f64)> {
    vector_and_radius_in(SAMPLE_FROM..3 * SAMPLE_FROM, 0.001..0.99f64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn long_vectors_match_sort((v, r) in long_vector_and_radius()) {
        assert_threshold_ok(&v, r, l1_soft_threshold(&v, r, &mut Vec::new()));
        assert_threshold_ok(&v, r, l1_soft_threshold_sampled(&v, r, &mut Vec::new(), usize::MAX));
    }

    /// Vectors whose first cut comes from a histogram, radii down to 1e-12 of the norm.
    #[test]
    fn medium_vectors_match_sort((v, r) in vector_and_radius_in(
        HISTOGRAM_FROM..SAMPLE_FROM,
        prop_oneof![0.001..0.99f64, 1e-12..1e-3f64],
    )) {
        assert_threshold_ok(&v, r, l1_soft_threshold(&v, r, &mut Vec::new()));
    }

    #[test]
    fn condat_fallback_matches_sort((v, r) in prop_oneof![vector_and_radius(), long_vector_and_radius()]) {
        assert_threshold_ok(&v, r, l1_soft_threshold_budget(&v, r, &mut Vec::new(), 0));
    }
}

/// Timing of `l1_soft_threshold` against the sort-based reference on the distributions that
/// matter (`cargo test --release -p multiproj-runtime --lib balls::tests::timing -- --ignored
/// --nocapture`); prints ns per entry at 10⁵, 10⁶, 10⁷ and the ratio to sorting at 10⁷.
#[test]
#[ignore = "timing; run in release"]
fn timing() {
    use std::time::Instant;
    fn mix(i: u64) -> u64 {
        SplitMix64::nth(7, i)
    }
    let unit = |i: u64| SplitMix64::unit_f64(mix(i));
    let sign = |i: u64| if mix(i ^ 0x5555) & 1 == 0 { 1.0 } else { -1.0 };
    type Gen = Box<dyn Fn(u64) -> f64>;
    thread_local!(static N: std::cell::Cell<u64> = const { std::cell::Cell::new(1) });
    let cases: Vec<(&str, Gen, f64)> = vec![
        ("uniform r=0.5", Box::new(move |i| unit(i) * sign(i)), 0.5),
        ("uniform r=0.1", Box::new(move |i| unit(i) * sign(i)), 0.1),
        ("uniform r=0.01", Box::new(move |i| unit(i) * sign(i)), 0.01),
        (
            "gaussian r=0.1",
            Box::new(move |i| {
                let (u1, u2) = (1.0 - unit(2 * i), unit(2 * i + 1));
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            }),
            0.1,
        ),
        ("all equal r=0.1", Box::new(sign), 0.1),
        (
            "log-uniform 2^-40..1 r=0.1",
            Box::new(move |i| 2f64.powf(-40.0 * unit(i)) * sign(i)),
            0.1,
        ),
        (
            "log-uniform 2^-40..1 r=0.5",
            Box::new(move |i| 2f64.powf(-40.0 * unit(i)) * sign(i)),
            0.5,
        ),
        // Decaying by e^-1 every 10⁴ entries, sorted: a spread Michelot's passes dislike.
        (
            "geometric e^(-i/1e4) r=0.1",
            Box::new(move |i| (-(i as f64) * 1e-4).exp()),
            0.1,
        ),
        (
            "geometric e^(-i/1e4) r=1e-3",
            Box::new(move |i| (-(i as f64) * 1e-4).exp()),
            1e-3,
        ),
        // The same, shuffled (1000003 is prime to every n here), so that sorting has work.
        (
            "shuffled geometric r=0.1",
            Box::new(move |i| (-(((i * 1_000_003) % N.with(|n| n.get())) as f64) * 1e-4).exp()),
            0.1,
        ),
    ];
    let mut scratch = Vec::new();
    let only = std::env::var("L1_TIMING_ONLY").unwrap_or_default();
    for (name, g, frac) in cases.iter().filter(|c| c.0.contains(only.as_str())) {
        let mut line = format!("{name:28}");
        let mut fast_ns;
        for n in [100_000usize, 1_000_000, 10_000_000] {
            N.with(|c| c.set(n as u64));
            let v: Vec<f64> = (0..n as u64).map(g).collect();
            let r = frac * norm_l1(&v);
            let reps = (30_000_000 / n).max(3);
            let mut best = f64::INFINITY;
            let mut tau = 0.0;
            for _ in 0..reps {
                let t0 = Instant::now();
                tau = std::hint::black_box(l1_soft_threshold(&v, r, &mut scratch)).tau();
                best = best.min(t0.elapsed().as_secs_f64());
            }
            fast_ns = best * 1e9 / n as f64;
            line += &format!(" {n:>9}: {fast_ns:6.2} ns");
            if n == 10_000_000 {
                let t0 = Instant::now();
                let slow = l1_threshold_sorted(&v, r);
                let sort_ns = t0.elapsed().as_secs_f64() * 1e9 / n as f64;
                assert!(close(tau, slow, 1e-9, 0.0), "{tau} vs {slow}");
                line += &format!(" | sort {sort_ns:6.2} ns, x{:.1}", sort_ns / fast_ns);
            }
        }
        println!("{line}");
    }
}

/// The thresholds of groups of a tensor (a few hundred to a few thousand entries, the apply
/// pass's [`l1_group_threshold`] with its check of the results), ns per entry, uniform(0, 1)
/// magnitudes for thresholds from 0.05 to 0.999 (`cargo test --release -p multiproj-runtime
/// --lib balls::tests::group_timing -- --ignored --nocapture`; `GROUP_N` sets the length).
#[test]
#[ignore = "timing; run in release"]
fn group_timing() {
    use std::time::Instant;
    let n: usize = std::env::var("GROUP_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let groups = (1 << 20) / n;
    let data: Vec<Vec<f64>> = (0..groups)
        .map(|g| {
            (0..n as u64)
                .map(|i| SplitMix64::unit_f64(SplitMix64::nth(g as u64 + 3, i)))
                .collect()
        })
        .collect();
    // `GROUP_F32=1`: the check rounds the results to f32.
    let f32 = std::env::var_os("GROUP_F32").is_some();
    let mut scratch = Vec::new();
    for tau in [0.05, 0.3, 0.6, 0.9, 0.99, 0.999] {
        let radii: Vec<f64> = data
            .iter()
            .map(|v| v.iter().map(|&y| (y - tau).max(0.0)).sum::<f64>())
            .collect();
        let mut best = f64::INFINITY;
        for _ in 0..9 {
            let t0 = Instant::now();
            for (v, &r) in data.iter().zip(&radii) {
                std::hint::black_box(if f32 {
                    l1_group_threshold(v, r, &mut scratch, true, crate::float16::stored_f32)
                } else {
                    l1_group_threshold(v, r, &mut scratch, false, |m| m)
                });
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "n {n}, τ {tau:5}: {:.2} ns per entry",
            best * 1e9 / (n * groups) as f64
        );
    }
}
