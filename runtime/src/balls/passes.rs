//! The passes of the l1 threshold search over a vector or its candidates (sums, minima and
//! counts above a cut, compaction), branch-free, over [`LANES`] independent accumulators.

use std::cell::Cell;

use super::SoftThreshold;

/// Independent accumulators in the passes: enough to hide the latency of floating-point adds
/// and let the compiler vectorize.
pub(super) const LANES: usize = 8;

/// The lane [`lanes`] gives each entry after the last whole chunk of [`LANES`].
#[derive(Clone, Copy)]
pub(super) enum Tail {
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
pub(super) fn lanes<T>(v: &[T], tail: Tail, mut step: impl FnMut(usize, &T)) {
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

/// 1.0 if `b`, else 0.0, by a mask: a count kept as a float this way stays a vector add (a
/// selection between constants may be compiled to a branch per lane).
#[inline(always)]
pub(super) fn one_if(b: bool) -> f64 {
    f64::from_bits(1f64.to_bits() & 0u64.wrapping_sub(u64::from(b)))
}

/// The minimum of the lanes' minima (+∞ for none).
fn min_of(mins: &[f64; LANES]) -> f64 {
    mins.iter().fold(f64::INFINITY, |m, &y| f64::min(m, y))
}

/// `(Σ|v_i|, min|v_i|, max|v_i|)`.
pub(super) fn abs_sum_min_max(v: &[f64]) -> (f64, f64, f64) {
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

/// The entries a pass kept, those above its cut: how many, their sum, their minimum (+∞ for
/// none), and the sum of their distances to the cut (NaN when not computed). Near τ the
/// distances are nearly exact where the sum loses digits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Kept {
    pub(super) len: usize,
    pub(super) sum: f64,
    pub(super) min: f64,
    pub(super) spread: f64,
}

impl Kept {
    /// `len` entries, from the lanes' sums, minima and spreads combined in lane order.
    fn from_lanes(
        len: usize,
        sums: &[f64; LANES],
        mins: &[f64; LANES],
        spreads: &[f64; LANES],
    ) -> Kept {
        Kept {
            len,
            sum: sums.iter().sum(),
            min: min_of(mins),
            spread: spreads.iter().sum(),
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
pub(super) fn filter_abs(v: &[f64], cut: f64, dst: &mut [f64]) -> Kept {
    let dst = Cell::from_mut(dst).as_slice_of_cells();
    let mut k = 0;
    let mut sums = [0.0; LANES];
    let mut mins = [f64::INFINITY; LANES];
    let mut spreads = [0.0; LANES];
    lanes(v, Tail::First, |j, x| {
        let y = x.abs();
        let keep = y > cut;
        keep_into(dst, &mut k, y, keep, &mut sums[j], &mut mins[j]);
        spreads[j] += if keep { y - cut } else { 0.0 };
    });
    Kept::from_lanes(k, &sums, &mins, &spreads)
}

/// [`filter_abs`] with a branch per entry instead of a store of every entry: faster when few
/// entries are kept (the branch predicts), slower for a mix. The same lanes in the same
/// order, so the same result to the bit.
pub(super) fn filter_abs_sparse(v: &[f64], cut: f64, dst: &mut [f64]) -> Kept {
    let mut k = 0;
    let mut sums = [0.0; LANES];
    let mut mins = [f64::INFINITY; LANES];
    let mut spreads = [0.0; LANES];
    lanes(v, Tail::First, |j, x| {
        let y = x.abs();
        if y > cut {
            dst[k] = y;
            k += 1;
            sums[j] += y;
            mins[j] = if y < mins[j] { y } else { mins[j] };
            spreads[j] += y - cut;
        }
    });
    Kept::from_lanes(k, &sums, &mins, &spreads)
}

/// Keeps the entries of `set` above `cut` at its front, in order.
pub(super) fn compact(set: &mut [f64], cut: f64) -> Kept {
    let set = Cell::from_mut(set).as_slice_of_cells();
    let mut k = 0;
    let mut sums = [0.0; LANES];
    let mut mins = [f64::INFINITY; LANES];
    let mut spreads = [0.0; LANES];
    lanes(set, Tail::First, |j, y| {
        let y = y.get();
        let keep = y > cut;
        keep_into(set, &mut k, y, keep, &mut sums[j], &mut mins[j]);
        spreads[j] += if keep { y - cut } else { 0.0 };
    });
    Kept::from_lanes(k, &sums, &mins, &spreads)
}

/// The magnitudes of `set` above `cut`, read only and branch-free. Their distances to the cut
/// are summed, not the magnitudes themselves (three accumulators a lane, where four would not
/// fit the registers): their sum is `spread + len·cut`, rounded.
pub(super) fn stats_above(set: &[f64], cut: f64) -> Kept {
    // Counts as floats (exact below 2^53) stay in the vector registers with the rest.
    let mut counts = [0.0f64; LANES];
    let mut mins = [f64::INFINITY; LANES];
    let mut spreads = [0.0; LANES];
    lanes(set, Tail::Spread, |j, x| {
        let y = x.abs();
        // `y > cut` exactly when `y − cut > 0` (gradual underflow): the distance is computed
        // for every entry, and selected, so that the loop stays branch-free.
        let d = y - cut;
        let keep = d > 0.0;
        counts[j] += one_if(keep);
        let m = if keep { y } else { f64::INFINITY };
        mins[j] = if m < mins[j] { m } else { mins[j] };
        spreads[j] += if keep { d } else { 0.0 };
    });
    let len = counts.iter().sum::<f64>() as usize;
    let spread: f64 = spreads.iter().sum();
    Kept {
        len,
        sum: spread + len as f64 * cut,
        min: min_of(&mins),
        spread,
    }
}

/// `Σ (|y| − base)` over the magnitudes of `set` above `cut`, read only.
pub(super) fn spread_above(set: &[f64], cut: f64, base: f64) -> f64 {
    let mut sums = [0.0; LANES];
    lanes(set, Tail::Spread, |j, x| {
        let y = x.abs();
        sums[j] += if y > cut { y - base } else { 0.0 };
    });
    sums.iter().sum()
}

/// Keeps the entries of `set` that satisfy `keep` at its front, in order; returns their count
/// and minimum.
pub(super) fn compact_by(set: &mut [f64], keep: impl Fn(f64) -> bool) -> (usize, f64) {
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

/// The threshold that makes the entries of `active` (all of them, and nothing else) sum to
/// `radius` after shrinking, in split form: `base` is the smallest of them, and `Σ(y − base)`
/// over magnitudes within `radius` of each other is nearly exact, unlike `Σy − radius`.
pub(super) fn split_threshold(active: &[f64], radius: f64) -> SoftThreshold {
    let base = active.iter().copied().fold(f64::INFINITY, f64::min);
    split_threshold_from(active, base, radius)
}

/// [`split_threshold`] with the smallest entry of `active` already known.
pub(super) fn split_threshold_from(active: &[f64], base: f64, radius: f64) -> SoftThreshold {
    let mut sums = [0.0; LANES];
    lanes(active, Tail::Spread, |j, y| sums[j] += y - base);
    let spread: f64 = sums.iter().sum();
    SoftThreshold {
        base,
        offset: (spread - radius) / active.len() as f64,
    }
}
