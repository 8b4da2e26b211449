//! The l1 ball: the soft threshold τ of a vector for a radius (a sampled first cut, Michelot's
//! passes, Condat's algorithm when they stall, then a split threshold that lands on the sphere),
//! the sort-based reference, and the projection.

use super::histogram::{Quant, bucket_bounds, buckets_for, edges_quantized, histogram_quantized};
use super::norm_l1;
use super::passes::{
    Kept, abs_sum_min_max, compact, compact_by, filter_abs, filter_abs_sparse, split_threshold,
    split_threshold_from, spread_above, stats_above,
};

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

/// [`l1_threshold`] with a caller-provided scratch buffer, so that hot loops do not allocate.
/// The buffer is grown to at least `v.len()` (and kept at that length); its contents on return
/// are unspecified.
pub fn l1_threshold_with(v: &[f64], radius: f64, scratch: &mut Vec<f64>) -> f64 {
    l1_soft_threshold(v, radius, scratch).tau()
}

/// The soft threshold of [`l1_threshold`] in the split form of [`SoftThreshold`], for callers
/// that apply it and want the result to land on the sphere even when `radius` is tiny next to
/// the entries. Same preconditions as [`l1_threshold`]; `scratch` as in [`l1_threshold_with`].
///
/// With `f(c) = Σ max(|v_i| − c, 0) − r` (decreasing, zero at τ): every set `S` of magnitudes
/// gives a lower bound `(Σ_S y − r)/|S| ≤ τ` (τ is the largest of these), and so does every cut
/// `c` with `f(c) ≥ 0`; the magnitudes at or below a lower bound are inactive. The *candidates*
/// are the magnitudes above the current cut, in `v` or, once worth copying, in `scratch`.
///
/// 1. A first cut. One read-only pass for `Σ|v|`, `min|v|`, `max|v|` gives the bounds of the
///    whole set and of the largest entry. From 256 entries, a quantized histogram of the
///    magnitudes (one more read-only pass, `histogram_cut`) then gives a cut inside the bucket
///    that holds τ, checked with the pass that counts its candidates (their count, minimum
///    and distances to the cut give `f(c)`), so that the candidates are the active entries and
///    a few more. (Measured on groups of 4096 uniform magnitudes, the apply pass's whole
///    threshold with its check, `group_timing`: 1.2–2.5 ns per entry at thresholds from 0.05
///    to 0.999 of the largest, where the bounds alone took 2.7–7.3 ns.) From 2^20 entries,
///    where the histogram's layouts stop, a guess from a strided sample comes first instead
///    (the sample's threshold for the proportional radius, moved down by a few standard
///    deviations), checked the same way. Few candidates are copied to `scratch` by a pass
///    that branches on each entry (it predicts), many only counted; vectors below 8192
///    entries are copied at once when the first cut is the bounds'.
/// 2. Michelot's iteration (Newton's method on `f` from below): the bound of the candidates
///    becomes the cut, until their smallest one is above the next bound. The passes are
///    branch-free with independent accumulators; they only read the candidates, or copy them
///    into `scratch` once at most an eighth of the set they scan remains. Computed bounds are
///    lowered by a bound on their rounding error, so they never cut an active entry.
/// 3. The candidates contain the active set; with the split threshold of [`SoftThreshold`]
///    they usually all stay positive and that is the answer. Its base is the last cut when
///    the candidates' distances to it (which the last pass summed) add up to at most `2r`,
///    so that they carry the radius's digits; otherwise the smallest candidate, with one more
///    read-only pass. If some candidates do not stay positive, Michelot's iteration with split
///    thresholds drops them (ties within rounding, tiny radii).
/// 4. If step 2 stops paying off (a spread of magnitudes where each pass removes only a few),
///    Condat's algorithm (L. Condat, "Fast projection onto the simplex and the l1 ball", Math.
///    Prog. 158, 2016; expected linear time) finishes on the candidates before step 3, so the
///    whole search is expected linear time, whatever the data. The passes cost about as much
///    as 3 to 6 reads of `v`.
pub fn l1_soft_threshold(v: &[f64], radius: f64, scratch: &mut Vec<f64>) -> SoftThreshold {
    debug_assert!(radius > 0.0 && radius.is_finite(), "radius {radius}");
    l1_soft_threshold_budget(v, radius, scratch, 8 * v.len() + 64)
}

/// [`l1_soft_threshold`] with the number of entries Michelot's passes may visit before Condat
/// takes over (tests force that path with 0).
pub(super) fn l1_soft_threshold_budget(
    v: &[f64],
    radius: f64,
    scratch: &mut Vec<f64>,
    budget: usize,
) -> SoftThreshold {
    search(v, radius, scratch, budget, None, false).0
}

/// [`l1_soft_threshold_budget`] with the sampled first cut of vectors of [`HISTOGRAM_TO`]
/// entries or more forced on any of [`SAMPLE_FROM`] or more (so that tests reach it on
/// vectors they can sort).
#[cfg(test)]
pub(super) fn l1_soft_threshold_sampled(
    v: &[f64],
    radius: f64,
    scratch: &mut Vec<f64>,
    budget: usize,
) -> SoftThreshold {
    search(v, radius, scratch, budget, None, true).0
}

/// Where [`l1_soft_threshold_candidates`] left the candidates: `scratch[..len]` holds, in
/// order, every magnitude of the vector above `cut`, a lower bound of τ (the threshold found
/// is above it but for rounding: a caller that relies on it checks `t.shrink(cut) == 0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Candidates {
    pub(crate) cut: f64,
    pub(crate) len: usize,
}

/// [`l1_soft_threshold`] for a vector whose `(Σ|v_i|, min|v_i|, max|v_i|)` are known
/// (`stats`, as [`abs_sum_min_max`](super::passes::abs_sum_min_max) computes them; the
/// precondition is on that sum), which also says where the search left its candidates, when it
/// left them in `scratch` — a caller that checks the results need only read those: every other
/// magnitude is at or below the threshold.
pub(crate) fn l1_soft_threshold_candidates(
    v: &[f64],
    radius: f64,
    scratch: &mut Vec<f64>,
    stats: (f64, f64, f64),
) -> (SoftThreshold, Option<Candidates>) {
    search(v, radius, scratch, 8 * v.len() + 64, Some(stats), false)
}

/// The search of [`l1_soft_threshold`], with the budget of [`l1_soft_threshold_budget`], the
/// statistics of [`l1_soft_threshold_candidates`] when known, and the sampled first cut forced
/// (`sampled`, see [`l1_soft_threshold_sampled`]).
fn search(
    v: &[f64],
    radius: f64,
    scratch: &mut Vec<f64>,
    budget: usize,
    stats: Option<(f64, f64, f64)>,
    sampled: bool,
) -> (SoftThreshold, Option<Candidates>) {
    debug_assert!(v.iter().all(|x| x.is_finite()), "non-finite entry");
    debug_assert!(
        stats.map_or_else(|| norm_l1(v), |s| s.0) > radius,
        "Σ|v| = {} is not above the radius {radius}",
        norm_l1(v)
    );
    let a = radius;
    let n = v.len();
    if n == 0 {
        return (SoftThreshold::ZERO, None);
    }
    if scratch.len() < n {
        if scratch.capacity() < n {
            // A zeroed allocation: its pages are only touched where entries are kept.
            *scratch = vec![0.0; n];
        } else {
            scratch.resize(n, 0.0);
        }
    }

    // 1. A first cut, and the count, sum and minimum of the candidates.
    let sampled = sampled || n >= HISTOGRAM_TO;
    let guessed = sampled.then(|| sample_cut(v, a)).flatten().and_then(|c| {
        let kept = stats_above(v, c);
        valid_cut(kept, a).then_some((c, kept))
    });
    // The candidates are the magnitudes above `cut` in `v`, or in `scratch[..len]` once copied
    // (short vectors at once, long ones when a pass shows that it pays off).
    let mut in_scratch = false;
    let (mut cut, mut kept) = match guessed {
        Some(g) => g,
        None => {
            let (total, min, max) = stats.unwrap_or_else(|| abs_sum_min_max(v));
            let c = f64::max(
                safe_cut(max - a, max),
                safe_cut((total - a) / n as f64, total),
            );
            if c < min {
                // Everything is above the cut (ties, or a large radius): no pass needed.
                let kept = Kept {
                    len: n,
                    sum: total,
                    min,
                    spread: f64::NAN,
                };
                (c, kept)
            } else {
                // A histogram's cut when it is higher, and how many candidates it leaves at
                // most; short vectors are copied at once, as are few candidates.
                let hist = (!sampled && n >= HISTOGRAM_FROM)
                    .then(|| histogram_cut(v, a, max))
                    .flatten();
                let (h, above) = hist.unwrap_or((c, n));
                let first = if h > c {
                    let (kept, copy) = first_filter(v, h, above, scratch);
                    valid_cut(kept, a).then_some((h, kept, copy))
                } else {
                    None
                };
                let (cut, kept, copy) = first.unwrap_or_else(|| {
                    let short = n < SAMPLE_FROM;
                    let (kept, copy) = if short {
                        (filter_abs_by_count(v, c, above, scratch), true)
                    } else {
                        (stats_above(v, c), false)
                    };
                    (c, kept, copy)
                });
                in_scratch = copy;
                (cut, kept)
            }
        }
    };
    let mut len = if in_scratch { kept.len } else { n };
    // The cut above which `scratch[..len]` holds every magnitude, once copied.
    let mut scratch_cut = cut;

    // 2. Michelot's iteration, while it pays off. A pass compacts the candidates when at most
    //    an eighth of the set it scans is still above the cut, and only reads them otherwise.
    let mut work = 0;
    let mut condat = false;
    while kept.len > 0 {
        // Newton's step from the cut, by the candidates' distances to it when measured.
        let len_f = kept.len as f64;
        let next = if kept.spread.is_nan() {
            (kept.sum - a) / len_f
        } else {
            cut + (kept.spread - a) / len_f
        };
        let next = safe_cut(next, kept.sum);
        if !(next > cut && kept.min <= next) {
            // No progress possible, or every candidate survives the next cut: stable.
            break;
        }
        if work >= budget {
            condat = true;
            break;
        }
        cut = next;
        work += len;
        let shrink = kept.len <= len / 8;
        kept = match (in_scratch, shrink) {
            (false, false) => stats_above(v, cut),
            (true, false) => stats_above(&scratch[..len], cut),
            (false, true) => filter_abs_by_count(v, cut, kept.len, scratch),
            (true, true) => compact(&mut scratch[..len], cut),
        };
        if shrink {
            (in_scratch, len, scratch_cut) = (true, kept.len, cut);
        }
    }
    let candidates: &[f64] = if in_scratch { &scratch[..len] } else { v };

    // 3. Settle with the split threshold. The candidates contain every active entry; usually
    //    their threshold leaves them all positive. The last pass measured them from the cut,
    //    a lower bound near τ: when it is close enough (the candidates' distances to it sum
    //    to at most twice the radius, so they keep as many digits as the radius has), the cut
    //    is the base; otherwise (or unmeasured) one read-only pass measures them from their
    //    smallest.
    let left = in_scratch.then_some(Candidates {
        cut: scratch_cut,
        len,
    });
    if !condat && kept.len > 0 && kept.spread <= 2.0 * a {
        let t = SoftThreshold {
            base: cut,
            offset: (kept.spread - a) / kept.len as f64,
        };
        if t.shrink(kept.min) > 0.0 {
            return (positive(t), left);
        }
    }
    let mut t = SoftThreshold {
        base: kept.min,
        offset: (spread_above(candidates, cut, kept.min) - a) / kept.len as f64,
    };
    if !condat && (t.offset < 0.0 || kept.len == 0) {
        return (positive(t), left);
    }
    // The candidates, compacted in `scratch`: the last passes may only have read them.
    if !in_scratch {
        kept = filter_abs_by_count(v, cut, kept.len, scratch);
    } else if kept.len < len {
        kept = compact(&mut scratch[..len], cut);
    }
    let mut k = kept.len;

    // 4. Condat on the candidates; its threshold (a lower bound up to rounding) cuts them.
    if condat {
        if scratch.len() < 2 * k {
            scratch.resize(2 * k, 0.0);
        }
        let (set, buf) = scratch.split_at_mut(k);
        let tc = split_threshold(condat_active(set, &mut buf[..k], a), a);
        let base;
        (k, base) = compact_by(set, |y| tc.shrink(y) > 0.0);
        if k == 0 {
            return (positive(tc), None);
        }
        t = split_threshold_from(&set[..k], base, a);
    }

    // 3. Drop the entries at or below the threshold of the current set until none is left
    //    (each threshold is again a lower bound, so no active entry is ever dropped).
    let mut set = &mut scratch[..k];
    while t.offset >= 0.0 {
        // `shrink` is monotone, so once it is positive at the smallest entry, all of them stay.
        let (len, base) = compact_by(set, |y| t.shrink(y) > 0.0);
        if len == 0 {
            break;
        }
        set = &mut set[..len];
        t = split_threshold_from(set, base, a);
    }
    (positive(t), None)
}

/// `t`, or [`SoftThreshold::ZERO`] when it is not positive: only reachable through rounding
/// (τ below an ulp of Σ|v|) or a violated precondition; a non-positive threshold would inflate
/// entries.
fn positive(t: SoftThreshold) -> SoftThreshold {
    if t.tau() > 0.0 {
        t
    } else {
        SoftThreshold::ZERO
    }
}

/// Whether the candidates `kept` above a cut show `f(cut) = Σ (y − cut) − a > 0` (so the cut
/// is below τ), with room for the rounding of their sum.
fn valid_cut(kept: Kept, a: f64) -> bool {
    let f = kept.spread - a;
    kept.len > 0 && f > 16.0 * f64::EPSILON * (kept.sum + a)
}

/// The candidates above a first cut `cut` that at most `above` magnitudes of `v` exceed:
/// copied to `scratch` when few (the second result), else only counted.
fn first_filter(v: &[f64], cut: f64, above: usize, scratch: &mut [f64]) -> (Kept, bool) {
    if above <= v.len() / COPY_BELOW {
        (filter_abs_sparse(v, cut, scratch), true)
    } else {
        (stats_above(v, cut), false)
    }
}

/// [`filter_abs`], or its branching form when at most `above` of the entries (at most a
/// [`COPY_BELOW`]th of them) are kept.
fn filter_abs_by_count(v: &[f64], cut: f64, above: usize, scratch: &mut [f64]) -> Kept {
    if above <= v.len() / COPY_BELOW {
        filter_abs_sparse(v, cut, scratch)
    } else {
        filter_abs(v, cut, scratch)
    }
}

/// Candidates are copied out of a vector when at most this fraction of it is left.
const COPY_BELOW: usize = 4;

/// The shortest vector whose first cut comes from a histogram ([`histogram_cut`]).
pub(super) const HISTOGRAM_FROM: usize = 256;

/// The shortest vector whose first cut is sampled instead ([`sample_cut`]): the quantized
/// histogram's layouts stop below 2^20 entries. (Measured on groups of 16384 and 65536 uniform
/// magnitudes, `group_timing`, thresholds from 0.05 to 0.999 of the largest: 3.0–3.6 and
/// 1.6–3.6 ns per entry from the histogram, 3.2–6.0 and 2.2–5.9 from the sample.)
pub(super) const HISTOGRAM_TO: usize = 1 << 20;

/// A lower bound on τ for the radius `a`, from a quantized histogram of the magnitudes of `v`
/// (whose largest is `max`), and how many magnitudes lie at or above the edge below it. The
/// histogram gives `Θ'(e) = Σ (v' − e)₊` of the rounded magnitudes `v'` exactly at every
/// bucket edge `e`, and `|Θ − Θ'| ≤ err` everywhere: the bound is where the tangents of the
/// bucket below `Θ'` reach `a + err`, so `Θ ≥ a` there. `None` when the histogram cannot
/// tell (the radius within `err` of `Σ|v|`, a maximum of zero).
fn histogram_cut(v: &[f64], a: f64, max: f64) -> Option<(f64, usize)> {
    let n = v.len();
    let b = buckets_for(n);
    let quant = Quant::new(n, b)?;
    if !(max > 0.0 && max.is_finite()) {
        return None;
    }
    let (mut cnt, mut qsum) = ([0u64; 65], [0u64; 65]);
    histogram_quantized(v, 1.0, max, quant, (&mut cnt[..=b], &mut qsum[..=b]));
    let (mut c, mut t) = ([0.0f64; 65], [0.0f64; 65]);
    edges_quantized(
        (&cnt[..=b], &qsum[..=b]),
        max,
        quant,
        &mut c[..=b],
        &mut t[..=b],
    );
    let err = n as f64 * max * 2f64.powi(-(quant.qb as i32));
    let theta = a + err;
    // (Also `None` for a NaN.)
    if t[0].partial_cmp(&theta) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    // The bucket j with Θ'(e_{j+1}) ≤ θ < Θ'(e_j) (Θ'(e_b) = 0).
    let j = (1..=b).find(|&j| t[j] <= theta).unwrap_or(b) - 1;
    let edge = |j: usize| {
        if j == b {
            max
        } else {
            j as f64 * (max / b as f64)
        }
    };
    let (low, _) = bucket_bounds(
        theta,
        (edge(j), edge(j + 1)),
        (t[j], t[j + 1]),
        (c[j], c[j + 1]),
    );
    Some((safe_cut(low, max), c[j] as usize))
}

/// The largest sample [`sample_cut`] takes, and the shortest vector it samples.
pub(super) const SAMPLE: usize = 1024;

pub(super) const SAMPLE_FROM: usize = 8192;

/// A guess for a cut just below τ, from a strided sample of `v`: the sample's own threshold for
/// the radius scaled to its size, moved down past a few standard deviations of the number of
/// sample entries above it. `None` on short vectors, or when the guess would keep nearly all
/// of the sample (then the bounds of step 1 do as well, and are certain).
fn sample_cut(v: &[f64], radius: f64) -> Option<f64> {
    let n = v.len();
    if n < SAMPLE_FROM {
        return None;
    }
    let m = (n / 8).min(SAMPLE);
    let mut u = [0.0; SAMPLE];
    let u = &mut u[..m];
    let stride = n / m;
    for (j, y) in u.iter_mut().enumerate() {
        *y = v[j * stride + stride / 2].abs();
    }
    // The sample's threshold for the scaled radius, by a few of Michelot's passes (capped: a
    // lower threshold only makes the guess more cautious).
    let r = radius * m as f64 / n as f64;
    let mut t = (u.iter().sum::<f64>() - r) / m as f64;
    let mut active = m;
    for _ in 0..16 {
        let (count, sum) = u
            .iter()
            .filter(|&&y| y > t)
            .fold((0usize, 0.0), |(c, s), &y| (c + 1, s + y));
        active = count;
        let next = (sum - r) / count as f64;
        let progress = next > t;
        if !progress {
            break;
        }
        t = next;
    }
    let q = active + 3 * (active as f64).sqrt() as usize + 8;
    (q < m - m / 8).then(|| *u.select_nth_unstable_by(q, |x, y| y.total_cmp(x)).1)
}

/// A lower bound `t` on τ computed in floating point from sums of at most `total`, lowered by
/// a bound on its rounding error so that it stays a lower bound: `y ≤` the result implies
/// `y ≤ t` exactly. (The sums of non-negative terms in [`LANES`](super::passes::LANES)
/// accumulators are within `(n/LANES + LANES)·ε·total` of the exact ones, i.e. within
/// `ε·total` after dividing by `n`; the subtraction and the division add an ε of `|t|` each.
/// Four times that leaves room.)
fn safe_cut(t: f64, total: f64) -> f64 {
    t - 4.0 * f64::EPSILON * (total + t.abs())
}

/// Condat's algorithm on the magnitudes `set`, with `buf` (as long as `set`) for its lists:
/// returns its active set, whose entries are those above Condat's estimate ρ of τ. One pass
/// keeps an *active list* whose mean-based estimate ρ only grows, parking discarded prefixes on
/// a *waiting list*; the waiting list is then revisited once, and a few cleanup sweeps drop
/// active entries that fell below ρ. `buf[..start]` is the waiting list, `buf[start..len]` the
/// active one, exactly as in Condat's reference C code. Rounding may leave out ties of the
/// largest entries when the radius is tiny: callers settle the result (see step 4 above).
fn condat_active<'b>(set: &[f64], buf: &'b mut [f64], a: f64) -> &'b [f64] {
    let Some((&first, rest)) = set.split_first() else {
        return &buf[..0];
    };
    buf[0] = first;
    let mut len = 1;
    let mut start = 0;
    let mut rho = first - a;

    // 1. One pass. An entry above ρ joins the active list and raises ρ towards the mean-based
    //    threshold of the list; if it alone gives a higher threshold, the list so far is parked.
    for &y in rest {
        if y > rho {
            buf[len] = y;
            len += 1;
            let k = len - start;
            rho += (y - rho) / k as f64;
            if rho <= y - a {
                rho = y - a;
                start = len - 1;
            }
        }
    }

    // 2. Parked entries still above ρ rejoin. They are written just below the active list, which
    //    stays contiguous: the write position only moves down and never passes the read one.
    for i in (0..start).rev() {
        let y = buf[i];
        if y > rho {
            start -= 1;
            buf[start] = y;
            rho += (y - rho) / (len - start) as f64;
        }
    }

    // 3. Drop active entries at or below ρ until none is left (each removal raises ρ).
    let active = &mut buf[start..len];
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
    &active[..len]
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
