//! Norms of, and Euclidean projections onto the l1, l2 and l∞ balls of, `f64` vectors: the
//! building blocks of the "upper reductions and solve" and "threshold" stages, which work on
//! aggregates (small next to the tensor, but one threshold per group, so they run in hot loops).
//!
//! The l1 projection is the soft threshold `x = sign(v)·max(|v| − τ, 0)` with τ chosen so that
//! `Σ|x| = r`. τ is found by Condat's algorithm (expected linear time, no sort); the sort-based
//! method is kept as [`l1_threshold_sorted`], the reference the tests compare against.
//!
//! All functions expect finite entries; the runtime rejects NaN and ±inf before any projection.

use std::cell::Cell;

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
fn l1_soft_threshold_budget(
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
pub fn l1_group_threshold(
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
    let total = norm_l1(values);
    if total.is_finite() {
        let target = radius * margin;
        let t = if total > target && target > 0.0 {
            l1_soft_threshold(values, target, scratch)
        } else {
            SoftThreshold::ZERO
        };
        return fit_l1(values, radius, t, store, true);
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
pub fn any_order_bound(sum: f64, n: usize) -> f64 {
    sum * (1.0 + (2.0 * n as f64 + 10.0) * (f64::EPSILON / 2.0))
}

/// Raises the threshold `t` until the results `store(t.shrink(|v_i|))` fit `radius`: with
/// `any_order`, their sum (taken in `LANES` lanes) bounded by [`any_order_bound`] — the group
/// norm of the stored output however a backend adds it up — else their sum in order, exactly as
/// [`norm_l1`] adds them. Each step adds the excess divided by the number of non-zero results to
/// the offset (one step usually: the excess is a few roundings), twice as much each time a step
/// did not reduce the excess (rounding to coarse subnormal results); the threshold that zeroes
/// everything (the largest magnitude) ends the search in the worst case.
pub fn fit_l1(
    values: &[f64],
    radius: f64,
    mut t: SoftThreshold,
    store: impl Fn(f64) -> f64,
    any_order: bool,
) -> SoftThreshold {
    let (mut boost, mut last) = (1.0, f64::INFINITY);
    for _ in 0..64 {
        let (got, live) = if any_order {
            let (sum, live) = stored_sum(values, t, &store);
            (any_order_bound(sum, values.len()), live)
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
    let mut live = [0usize; LANES];
    lanes(values, Tail::Spread, |j, y| {
        let x = store(t.shrink(y.abs()));
        sums[j] += x;
        live[j] += usize::from(x > 0.0);
    });
    (sums.iter().sum(), live.iter().sum())
}

/// The `k` for which the sum of `n` magnitudes, each at most `f64::MAX`, scaled by `2^-k`
/// stays below `f64::MAX / 2`: `2^k ≥ 2n`.
pub fn overflow_exponent(n: usize) -> i32 {
    (usize::BITS - n.max(1).leading_zeros()) as i32 + 1
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

/// Independent accumulators in the passes: enough to hide the latency of floating-point adds
/// and let the compiler vectorize.
const LANES: usize = 8;

/// The lane [`lanes`] gives each entry after the last whole chunk of [`LANES`].
#[derive(Clone, Copy)]
enum Tail {
    /// The `i`-th of them goes to lane `i`, as in a chunk.
    Spread,
    /// All of them go to lane 0.
    First,
}

/// The loop of every pass over [`LANES`] independent accumulators: `step(j, y)` for each entry
/// `y` of `v` in order, where `j` is the lane whose accumulators take `y` — `i % LANES` for the
/// `i`-th entry of the whole chunks, then as `tail` says. Each pass combines its lanes in lane
/// order at the end. The lane of every entry and that order fix the rounding of the sums, on
/// which the thresholds depend bit for bit (and which other implementations are compared with
/// bit for bit): they must not change.
///
/// `v` may be a slice of [`Cell`]s, for a pass that rewrites the slice it reads ([`compact`]).
#[inline(always)]
fn lanes<T>(v: &[T], tail: Tail, mut step: impl FnMut(usize, &T)) {
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (j, y) in c.iter().enumerate() {
            step(j, y);
        }
    }
    for (i, y) in rest.iter().enumerate() {
        let j = match tail {
            Tail::Spread => i,
            Tail::First => 0,
        };
        step(j, y);
    }
}

/// The minimum of the lanes' minima (+∞ for none).
fn min_of(mins: &[f64; LANES]) -> f64 {
    mins.iter().fold(f64::INFINITY, |m, &y| f64::min(m, y))
}

/// The largest sample [`sample_cut`] takes, and the shortest vector it samples.
const SAMPLE: usize = 1024;
const SAMPLE_FROM: usize = 8192;

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
/// `y ≤ t` exactly. (The sums of non-negative terms in [`LANES`] accumulators are within
/// `(n/LANES + LANES)·ε·total` of the exact ones, i.e. within `ε·total` after dividing by `n`;
/// the subtraction and the division add an ε of `|t|` each. Four times that leaves room.)
fn safe_cut(t: f64, total: f64) -> f64 {
    t - 4.0 * f64::EPSILON * (total + t.abs())
}

/// `(Σ|v_i|, min|v_i|, max|v_i|)`.
fn abs_sum_min_max(v: &[f64]) -> (f64, f64, f64) {
    let mut sums = [0.0; LANES];
    let mut mins = [f64::INFINITY; LANES];
    let mut maxs = [0.0; LANES];
    lanes(v, Tail::Spread, |j, x| {
        let y = x.abs();
        sums[j] += y;
        mins[j] = if y < mins[j] { y } else { mins[j] };
        maxs[j] = if y > maxs[j] { y } else { maxs[j] };
    });
    (
        sums.iter().sum(),
        min_of(&mins),
        maxs.iter().fold(0.0, |m, &y| f64::max(m, y)),
    )
}

/// The entries a pass kept: how many, their sum and their minimum (+∞ for none).
#[derive(Clone, Copy, Debug)]
struct Kept {
    len: usize,
    sum: f64,
    min: f64,
}

impl Kept {
    /// `len` entries, from the lanes' sums and minima combined in lane order.
    fn from_lanes(len: usize, sums: &[f64; LANES], mins: &[f64; LANES]) -> Kept {
        Kept {
            len,
            sum: sums.iter().sum(),
            min: min_of(mins),
        }
    }
}

/// Keeps `y` when `keep`: `dst[*k] = y` always, the position only moves for kept entries.
/// (`dst` is a slice of cells so that a pass can compact the slice it reads.)
#[inline(always)]
fn keep_into(dst: &[Cell<f64>], k: &mut usize, y: f64, keep: bool, sum: &mut f64, min: &mut f64) {
    dst[*k].set(y);
    *k += usize::from(keep);
    // Selections by masks: with branches, a mix of kept and dropped entries mispredicts.
    let mask = 0u64.wrapping_sub(u64::from(keep));
    let kept = y.to_bits() & mask;
    *sum += f64::from_bits(kept);
    let m = f64::from_bits(kept | (f64::INFINITY.to_bits() & !mask));
    *min = if m < *min { m } else { *min };
}

/// Copies the magnitudes of `v` above `cut` to the front of `dst` (`dst.len() ≥ v.len()`).
/// Branch-free: every entry is written, and the write position moves only for kept ones.
fn filter_abs(v: &[f64], cut: f64, dst: &mut [f64]) -> Kept {
    let dst = Cell::from_mut(dst).as_slice_of_cells();
    let mut k = 0;
    let mut sums = [0.0; LANES];
    let mut mins = [f64::INFINITY; LANES];
    lanes(v, Tail::First, |j, x| {
        let y = x.abs();
        keep_into(dst, &mut k, y, y > cut, &mut sums[j], &mut mins[j]);
    });
    Kept::from_lanes(k, &sums, &mins)
}

/// Keeps the entries of `set` above `cut` at its front, in order.
fn compact(set: &mut [f64], cut: f64) -> Kept {
    let set = Cell::from_mut(set).as_slice_of_cells();
    let mut k = 0;
    let mut sums = [0.0; LANES];
    let mut mins = [f64::INFINITY; LANES];
    lanes(set, Tail::First, |j, y| {
        let y = y.get();
        keep_into(set, &mut k, y, y > cut, &mut sums[j], &mut mins[j]);
    });
    Kept::from_lanes(k, &sums, &mins)
}

/// The magnitudes of `set` above `cut`, read only and branch-free.
fn stats_above(set: &[f64], cut: f64) -> Kept {
    let mut counts = [0u64; LANES];
    let mut sums = [0.0; LANES];
    let mut mins = [f64::INFINITY; LANES];
    lanes(set, Tail::Spread, |j, x| {
        let y = x.abs();
        let keep = y > cut;
        counts[j] += u64::from(keep);
        sums[j] += if keep { y } else { 0.0 };
        let m = if keep { y } else { f64::INFINITY };
        mins[j] = if m < mins[j] { m } else { mins[j] };
    });
    Kept::from_lanes(counts.iter().sum::<u64>() as usize, &sums, &mins)
}

/// `Σ (|y| − base)` over the magnitudes of `set` above `cut`, read only.
fn spread_above(set: &[f64], cut: f64, base: f64) -> f64 {
    let mut sums = [0.0; LANES];
    lanes(set, Tail::Spread, |j, x| {
        let y = x.abs();
        sums[j] += if y > cut { y - base } else { 0.0 };
    });
    sums.iter().sum()
}

/// Keeps the entries of `set` that satisfy `keep` at its front, in order; returns their count
/// and minimum.
fn compact_by(set: &mut [f64], keep: impl Fn(f64) -> bool) -> (usize, f64) {
    let set = Cell::from_mut(set).as_slice_of_cells();
    let mut k = 0;
    let mut sum = 0.0;
    let mut min = f64::INFINITY;
    for y in set {
        let y = y.get();
        keep_into(set, &mut k, y, keep(y), &mut sum, &mut min);
    }
    (k, min)
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

/// The threshold that makes the entries of `active` (all of them, and nothing else) sum to
/// `radius` after shrinking, in split form: `base` is the smallest of them, and `Σ(y − base)`
/// over magnitudes within `radius` of each other is nearly exact, unlike `Σy − radius`.
fn split_threshold(active: &[f64], radius: f64) -> SoftThreshold {
    let base = active.iter().copied().fold(f64::INFINITY, f64::min);
    split_threshold_from(active, base, radius)
}

/// [`split_threshold`] with the smallest entry of `active` already known.
fn split_threshold_from(active: &[f64], base: f64, radius: f64) -> SoftThreshold {
    let mut sums = [0.0; LANES];
    lanes(active, Tail::Spread, |j, y| sums[j] += y - base);
    let spread: f64 = sums.iter().sum();
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

    /// Long vectors (sampled first cut, compacting and read-only passes, the Condat fallback
    /// forced with a zero budget) on the distributions of the timing test and adversarial ones.
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
                }
            }
        }
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

    fn long_vector_and_radius() -> impl Strategy<Value = (Vec<f64>, f64)> {
        (
            prop::collection::vec(entry(), SAMPLE_FROM..3 * SAMPLE_FROM),
            0.001..0.99f64,
        )
            .prop_filter_map("needs a positive sum", |(v, frac)| {
                let s = norm_l1(&v);
                (s > 0.0).then_some((v, frac * s))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn long_vectors_match_sort((v, r) in long_vector_and_radius()) {
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
}
