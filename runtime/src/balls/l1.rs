//! The l1 ball: the soft threshold τ of a vector for a radius (a sampled first cut, Michelot's
//! passes, Condat's algorithm when they stall, then a split threshold that lands on the sphere),
//! the sort-based reference, and the projection.

use super::norm_l1;
use super::passes::{
    Kept, abs_sum_min_max, compact, compact_by, filter_abs, split_threshold, split_threshold_from,
    spread_above, stats_above,
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
/// 1. A first cut. On long vectors, a guess from a strided sample (the sample's threshold for
///    the proportional radius, moved down by a few standard deviations) is checked with one
///    read-only pass (count, sum and minimum of the candidates give `f(c)`). If the guess was
///    too high (rare), or on short vectors: one read-only pass for `Σ|v|`, `min|v|`, `max|v|`
///    gives the bounds of the whole set and of the largest entry.
/// 2. Michelot's iteration (Newton's method on `f` from below): the bound of the candidates
///    becomes the cut, until their smallest one is above the next bound. The passes are
///    branch-free with independent accumulators; they only read the candidates, or copy them
///    into `scratch` once at most an eighth of the set they scan remains. Computed bounds are
///    lowered by a bound on their rounding error, so they never cut an active entry.
/// 3. The candidates contain the active set; with the split threshold of [`SoftThreshold`]
///    (one read-only pass) they usually all stay positive and that is the answer. Otherwise
///    Michelot's iteration with split thresholds drops the rest (ties within rounding, tiny
///    radii).
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
    debug_assert!(v.iter().all(|x| x.is_finite()), "non-finite entry");
    debug_assert!(
        norm_l1(v) > radius,
        "Σ|v| = {} is not above the radius {radius}",
        norm_l1(v)
    );
    let a = radius;
    let n = v.len();
    if n == 0 {
        return SoftThreshold::ZERO;
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
    let guessed = sample_cut(v, a).and_then(|c| {
        let kept = stats_above(v, c);
        // f(c) > 0, with room for the rounding of the sums.
        let f = (kept.sum - kept.len as f64 * c) - a;
        (kept.len > 0 && f > 16.0 * f64::EPSILON * (kept.sum + a)).then_some((c, kept))
    });
    // The candidates are the magnitudes above `cut` in `v`, or in `scratch[..len]` once copied
    // (short vectors at once, long ones when a pass shows that it pays off).
    let mut in_scratch = guessed.is_none() && n < SAMPLE_FROM;
    let (mut cut, mut kept) = guessed.unwrap_or_else(|| {
        let (total, min, max) = abs_sum_min_max(v);
        let c = f64::max(
            safe_cut(max - a, max),
            safe_cut((total - a) / n as f64, total),
        );
        let kept = if c < min {
            // Everything is above the cut (ties, or a large radius): no pass needed.
            in_scratch = false;
            Kept {
                len: n,
                sum: total,
                min,
            }
        } else if in_scratch {
            filter_abs(v, c, scratch)
        } else {
            stats_above(v, c)
        };
        (c, kept)
    });
    let mut len = if in_scratch { kept.len } else { n };

    // 2. Michelot's iteration, while it pays off. A pass compacts the candidates when at most
    //    an eighth of the set it scans is still above the cut, and only reads them otherwise.
    let mut work = 0;
    let mut condat = false;
    while kept.len > 0 {
        let next = safe_cut((kept.sum - a) / kept.len as f64, kept.sum);
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
            (false, true) => filter_abs(v, cut, scratch),
            (true, true) => compact(&mut scratch[..len], cut),
        };
        if shrink {
            (in_scratch, len) = (true, kept.len);
        }
    }
    let candidates: &[f64] = if in_scratch { &scratch[..len] } else { v };

    // 3. Settle with the split threshold. The candidates contain every active entry; usually
    //    their threshold leaves them all positive and this is one read-only pass.
    let mut t = SoftThreshold {
        base: kept.min,
        offset: (spread_above(candidates, cut, kept.min) - a) / kept.len as f64,
    };
    if !condat && (t.offset < 0.0 || kept.len == 0) {
        return positive(t);
    }
    // The candidates, compacted in `scratch`: the last passes may only have read them.
    if !in_scratch {
        kept = filter_abs(v, cut, scratch);
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
            return positive(tc);
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
    positive(t)
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
