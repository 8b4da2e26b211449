//! Thresholds for the apply pass: the l1 threshold of a group raised until its stored results
//! (rounded to the element type, summed in any order) fit the radius, and the scaling that
//! keeps an overflowing group's sums finite.

use super::l1::l1_soft_threshold_candidates;
use super::l1_soft_threshold;
use super::passes::{LANES, Tail, abs_sum_min_max, lanes, one_if};
use super::{SoftThreshold, norm_l1, norm_linf};

/// The soft threshold of a group with l1 radius `radius > 0` (finite entries, any magnitude)
/// that the apply pass uses, for a group whose norm (as the reduce pass computed it) is above
/// `radius`: the [`l1_soft_threshold`] of a radius lowered by the margin [`fit_l1`] checks
/// (about `(4n + 32)·2^-53` relative, and `2^-24` more when `f32` results are stored), then
/// raised by [`fit_l1`] if still needed until the stored results — the shrunk magnitudes as
/// `store` rounds them to the element type — sum to at most `radius` in any order of summation.
/// (The sum in the gathering order may itself be within `radius`: then the threshold starts from
/// zero and is raised only as far as that bound needs.)
///
/// A group whose l1 norm overflows f64 (entries near `f64::MAX`) is solved on its entries
/// scaled by `2^-k`, enough that no sum overflows, and the threshold scaled back: scaling by a
/// power of two is exact (entries below `2^(k-1074)` lose bits, which cannot change a
/// threshold of that size). Only f64 data gets there, whose `store` is the identity.
pub(crate) fn l1_group_threshold(
    values: &[f64],
    radius: f64,
    scratch: &mut Vec<f64>,
    f32: bool,
    store: impl Fn(f64) -> f64,
) -> SoftThreshold {
    let n = values.len() as f64;
    let mut margin = 1.0 - (4.0 * n + 32.0) * (f64::EPSILON / 2.0);
    if f32 {
        margin *= 1.0 - f64::from(f32::EPSILON) / 2.0;
    }
    let stats = abs_sum_min_max(values);
    let total = stats.0;
    if total.is_finite() {
        let target = radius * margin;
        if !(total > target && target > 0.0) {
            return fit_l1(values, radius, SoftThreshold::ZERO, store, true);
        }
        let (t, left) = l1_soft_threshold_candidates(values, target, scratch, stats);
        // Every magnitude outside the candidates is at most their cut, where the threshold
        // already gives 0 (and raising it keeps 0): the results are those of the candidates.
        return match left {
            Some(c) if c.len > 0 && t.shrink(c.cut) == 0.0 => {
                fit_l1_of(&scratch[..c.len], values.len(), radius, t, store, true)
            }
            _ => fit_l1(values, radius, t, store, true),
        };
    }
    let k = overflow_exponent(values.len());
    let down = 2f64.powi(-k);
    let scaled: Vec<f64> = values.iter().map(|&y| y * down).collect();
    let r = radius * down;
    let target = r * margin;
    let t = if norm_l1(&scaled) > target && target > 0.0 {
        l1_soft_threshold(&scaled, target, scratch)
    } else {
        SoftThreshold::ZERO
    };
    let t = fit_l1(&scaled, r, t, |m| m, true);
    let up = 2f64.powi(k);
    SoftThreshold {
        base: t.base * up,
        offset: t.offset * up,
    }
}

/// An upper bound on any floating-point sum (any order, round to nearest) of `n` non-negative
/// numbers whose sum in one order is `sum`: each is within a factor `(1 ± u)^(n-1)` of the exact
/// sum, so `sum·(1 + (2n + 10)·u)` bounds them all, the rounding of this product included.
pub(crate) fn any_order_bound(sum: f64, n: usize) -> f64 {
    sum * (1.0 + (2.0 * n as f64 + 10.0) * (f64::EPSILON / 2.0))
}

/// Raises the threshold `t` until the results `store(t.shrink(|v_i|))` fit `radius`: with
/// `any_order`, their sum (taken in `LANES` lanes) bounded by [`any_order_bound`] — the group
/// norm of the stored output however a backend adds it up — else their sum in order, exactly as
/// [`norm_l1`] adds them. Each step adds the excess divided by the number of non-zero results to
/// the offset (one step usually: the excess is a few roundings), twice as much each time a step
/// did not reduce the excess (rounding to coarse subnormal results); the threshold that zeroes
/// everything (the largest magnitude) ends the search in the worst case.
pub(crate) fn fit_l1(
    values: &[f64],
    radius: f64,
    t: SoftThreshold,
    store: impl Fn(f64) -> f64,
    any_order: bool,
) -> SoftThreshold {
    fit_l1_of(values, values.len(), radius, t, store, any_order)
}

/// [`fit_l1`] for a vector of `n` magnitudes of which `values` are the ones the threshold may
/// leave non-zero (`t.shrink` is 0 for every other one, and stays 0 as `t` rises): the sums
/// are those of `values`, and the bound for any order is the one for `n` terms.
fn fit_l1_of(
    values: &[f64],
    n: usize,
    radius: f64,
    mut t: SoftThreshold,
    store: impl Fn(f64) -> f64,
    any_order: bool,
) -> SoftThreshold {
    let (mut boost, mut last) = (1.0, f64::INFINITY);
    for _ in 0..64 {
        let (got, live) = if any_order {
            let (sum, live) = stored_sum(values, t, &store);
            (any_order_bound(sum, n), live)
        } else {
            values.iter().fold((0.0f64, 0usize), |(s, k), &y| {
                let x = store(t.shrink(y.abs()));
                (s + x, k + usize::from(x > 0.0))
            })
        };
        if got <= radius {
            return t;
        }
        let excess = got - radius;
        if excess >= last {
            boost *= 2.0;
        }
        last = excess;
        let step = excess / live.max(1) as f64 * boost;
        t.offset = (t.offset + step).max(t.offset.next_up());
    }
    SoftThreshold {
        base: norm_linf(values),
        offset: 0.0,
    }
}

/// `(Σ store(t.shrink(|v_i|)), how many are non-zero)`, in [`LANES`] independent lanes.
fn stored_sum(values: &[f64], t: SoftThreshold, store: &impl Fn(f64) -> f64) -> (f64, usize) {
    let mut sums = [0.0f64; LANES];
    // Counts as floats (exact below 2^53) stay in the vector registers with the sums.
    let mut live = [0.0f64; LANES];
    lanes(values, Tail::Spread, |j, y| {
        let x = store(t.shrink(y.abs()));
        sums[j] += x;
        live[j] += one_if(x > 0.0);
    });
    (sums.iter().sum(), live.iter().sum::<f64>() as usize)
}

/// The `k` for which the sum of `n` magnitudes, each at most `f64::MAX`, scaled by `2^-k`
/// stays below `f64::MAX / 2`: `2^k ≥ 2n`.
pub(crate) fn overflow_exponent(n: usize) -> i32 {
    (usize::BITS - n.max(1).leading_zeros()) as i32 + 1
}
