//! The exact Euclidean projection onto the l1,∞ ball (`exact l1 over A of linf over B`): the
//! fast solver the executor runs for a plan whose method is
//! [`multiproj_compiler::ExactMethod::L1Linf`].
//!
//! **The problem.** With `a_gj = |y_gj|`, the projection clips every group at its own level:
//! `x_gj = sign(y_gj)·min(a_gj, μ_g)`, where one multiplier `θ` ties the groups together
//! (`balls::exact` states the optimality conditions). For a fixed `θ` each group's level is
//! determined: `μ_g(θ)` solves `Θ_g(μ) := Σ_j (a_gj − μ)₊ = θ`, or is 0 when `‖y_g‖₁ ≤ θ`.
//! `Θ_g` is convex, piecewise linear and decreasing, so `μ_g(θ)` is too, and so is
//! `F(θ) = Σ_g μ_g(θ)`; the projection is at the `θ*` with `F(θ*) = R`.
//!
//! **The method** (after the read pass that gave the group maxima `m_g` and l1 norms `s_g`,
//! which the multi-level projection makes too):
//! 0. *Candidates.* `m_g` and `s_g` alone bound `μ_g(θ)` (`Θ_g(μ) ≥ m_g − μ` and `≥ s_g − n·μ`,
//!    and `≤ s_g·(1 − μ/m_g)`, the chord), hence `F`; the `θ` where the lower bound meets `R` is
//!    below `θ*`, and every group whose l1 norm is at most that `θ` is zero. The others are the
//!    candidates: at small radii, few.
//! 1. *Histograms.* Each candidate's magnitudes go into `B ≤ 64` buckets of equal width on
//!    `[0, m_g]`, with the count and sum of each. For groups of fewer than 2^20 entries the
//!    histogram is made in the first pass itself, from the group in cache right after its
//!    maximum, and it is *quantized* (`Quant`): each magnitude rounded to an integer of
//!    24–38 bits, a bucket's count and sum added up in one 64-bit integer (one addition per
//!    entry instead of two, about half the time), exact for the rounded data, which is
//!    within `n·δ` of the data in every `Θ_g` (the bounds below widen by that). (When the
//!    groups are the columns of C-order data, reading a group means a transposing copy of its
//!    tile, which the first pass makes anyway.) Larger groups get the plain histogram, of
//!    the candidates only, in a second visit. At every bucket edge `e` the histogram gives
//!    `Θ_g(e)` exactly (every entry of a bucket above `e` is above `e`), and between two edges
//!    convexity bounds `μ_g(θ)` from both sides: below by the tangents at the two edges, above
//!    by the chord. Summed over groups, these bound `F` from below and above.
//! 2. *Bracket.* Two one-dimensional searches on those bounds give `θ_a ≤ θ* ≤ θ_b`, and with
//!    them, per group, an interval `(lo_g, hi_g]` that holds `μ_g(θ)` for every `θ` in the
//!    bracket — typically a bucket or two wide.
//! 3. *Gather pass.* Per group, the count and sum of the entries above `hi_g`, and the entries
//!    in `(lo_g, hi_g]` themselves (entries at or below `lo_g` never matter): on the bracket,
//!    `Θ_g` is exactly `S_g + Σ_{u > μ} u − (c_g + #{u > μ})·μ` over the gathered `u`.
//! 4. *Exact solve* on the gathered entries alone: Newton's method on the convex, piecewise
//!    linear `F`, started at `θ_a` (where `F ≥ R`), climbs to `θ*` from below and stops on the
//!    first piece that holds its own root — exactly, in finitely many steps. Then
//!    `μ_g = (A_g − θ*)/k_g` on each group's piece.
//!
//! Finally every group's `μ_g` is checked against its interval; a group whose interval a
//! rounding made too narrow is gathered whole and the solve repeated (a safety net, not a path
//! the tests' data takes). The apply pass then clips, as for the multi-level projection.
//!
//! Work: one read of the data besides the multi-level projection's reduce and apply passes
//! (the gather; a second one, of the candidates only, for the histograms of groups of 2^20
//! entries or more), a few operations per entry for the histogram (in cache: groups are
//! visited tile by tile), and `O(G·B)` for the bracket plus `O(K log K)` for the `K`
//! gathered entries in the solve.
//! Everything per group runs in parallel; everything summed over groups is summed in a fixed
//! order, so the result does not depend on the number of threads.

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Ix2, IxDyn, Slice, Zip};
use rayon::prelude::*;

use multiproj_compiler::Plan;

use crate::balls::histogram::{
    Quant, bucket_bounds, buckets_for, edges_quantized, histogram_quantized,
};
use crate::element::Element;
use crate::error::DataError;
use crate::progress::Ticker;

/// Elements per tile: groups are copied (as f64 magnitudes) a tile at a time, so that every
/// per-group loop runs in cache.
const TILE_ELEMENTS: usize = 1 << 15;

/// Elements per tile when consecutive groups are adjacent in memory (groups as columns of
/// C-order data): the copy then reads the tile along the memory, one run of the tile's groups
/// per inner position, and a wider tile makes those runs longer (fewer pages and cache lines
/// touched per element: a tile one cache line wide reads a new page every 8 entries).
const TILE_ELEMENTS_ACROSS: usize = 1 << 17;

/// Groups per chunk of the parallel sums over groups (a fixed size, so that the sums do not
/// depend on the number of threads).
const SUM_CHUNK: usize = 1024;

/// What the exact solve found, in the scale of the magnitudes it was handed.
#[derive(Clone, Debug, PartialEq)]
pub struct ExactClips {
    /// The common multiplier `θ` (infinite at radius 0).
    pub theta: f64,
    /// Each group's clip level `μ_g` (0 for the groups set to zero).
    pub clips: Vec<f64>,
    /// How many entries the gather pass kept for the exact solve.
    pub gathered: usize,
    /// Passes over the data the solve made (histogram and gathers).
    pub passes: usize,
    /// The radius these clip levels sum to: the one asked for, or the one a [`ExactGoal::Keep`]
    /// chose (in the same scale).
    pub radius: f64,
}

impl ExactClips {
    /// No solve needed: every group kept whole (`all`, radius = the norm) or zeroed.
    pub(crate) fn trivial(maxes: &[f64], all: bool) -> ExactClips {
        ExactClips {
            theta: if all { 0.0 } else { f64::INFINITY },
            clips: if all {
                maxes.to_vec()
            } else {
                vec![0.0; maxes.len()]
            },
            gathered: 0,
            passes: 1,
            radius: if all { maxes.iter().sum() } else { 0.0 },
        }
    }
}

/// What an exact `l1 of linf` solve aims at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExactGoal {
    /// This radius (in the first pass's scale), with `0 < r < Σ m_g`.
    Radius(f64),
    /// The largest radius that keeps exactly this many groups non-zero: the groups survive
    /// exactly when `‖y_g‖₁ > θ`, so it is the radius at `θ` = the (K+1)-th largest l1 norm.
    Keep(usize),
}

/// Where an [`ExactGoal::Keep`] puts the projection, from the groups' l1 norms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kept {
    /// Radius 0: every group zero.
    Zero,
    /// Every non-zero group survives only at the norm itself: the identity.
    All,
    /// At this θ (the (K+1)-th largest l1 norm), exactly K groups have `‖y_g‖₁ > θ`.
    Theta(f64),
}

/// Makes the clip levels of a [`ExactGoal::Keep`] solve agree with the l1 norms that chose θ:
/// zero exactly for the groups with `l1 ≤ θ`, positive for the others. (Their sums of the
/// same entries can differ in the last bits; a group just above θ has all its entries above
/// its clip level, `μ = (l1 − θ)/#nonzero`.)
pub(crate) fn keep_exactly(clips: &mut [f64], l1: &[f64], nonzero: &[usize], theta: f64) {
    for ((c, &s), &nz) in clips.iter_mut().zip(l1).zip(nonzero) {
        if s <= theta {
            *c = 0.0;
        } else if *c <= 0.0 {
            *c = (s - theta) / nz.max(1) as f64;
        }
    }
}

/// The θ that keeps exactly `k` groups (see [`ExactGoal::Keep`]), or the error that says why
/// none does: more groups than the data has non-zero ones, or a tie across the K-th place.
pub(crate) fn keep_theta(l1: &[f64], k: usize) -> Result<Kept, DataError> {
    Ok(
        match crate::target::rank(l1, k, "l1 norm", " with the exact projection")? {
            crate::target::Ranked::None => Kept::Zero,
            crate::target::Ranked::All => Kept::All,
            crate::target::Ranked::Split(sorted) => Kept::Theta(sorted[k]),
        },
    )
}

/// What the first pass of an exact `l1 of linf` projection found
/// ([`crate::Passes::exact_first_pass`]): the group maxima, and for the fast solver the rest of
/// what it learned about every group.
#[derive(Debug)]
pub struct ExactPrep {
    pub(crate) maxes: Vec<f64>,
    pub(crate) sketch: Option<Sketch>,
}

impl ExactPrep {
    pub(crate) fn fast(sketch: Sketch) -> ExactPrep {
        ExactPrep {
            maxes: sketch.maxes.clone(),
            sketch: Some(sketch),
        }
    }

    /// The group maxima (`V_{k−1}` of the plan), in the first pass's scale.
    pub fn maxes(&self) -> &[f64] {
        &self.maxes
    }

    /// Whether the pass met a NaN or an infinity, or a sum that overflowed.
    pub(crate) fn not_finite(&self) -> bool {
        self.maxes.iter().any(|v| !v.is_finite())
            || self.sketch.as_ref().is_some_and(|s| s.not_finite)
    }
}

/// The groups of a two-level plan as tiles of consecutive groups, each a rectangular block of
/// the tensor (the outer axes first, in group-index order, then the inner axes).
struct Groups<'a, T> {
    view: ArrayViewD<'a, T>,
    outer: usize,
    groups: usize,
    n: usize,
    /// The extent of the last outer axis: a tile never crosses a multiple of it.
    last: usize,
    per_tile: usize,
    /// Consecutive groups are adjacent in memory (see [`across`]).
    across: bool,
}

#[derive(Clone, Copy, Debug)]
struct Tile {
    first: usize,
    len: usize,
}

impl<'a, T: Element> Groups<'a, T> {
    fn new(plan: &Plan, x: &'a ArrayViewD<'_, T>) -> Result<Self, DataError> {
        let levels = plan.levels();
        if levels.len() != 2 {
            return Err(DataError::Internal(format!(
                "the exact l1,inf solve needs two levels, the plan has {}",
                levels.len()
            )));
        }
        let mut order: Vec<usize> = levels[0].axes.clone();
        let outer = order.len();
        order.extend_from_slice(&levels[1].axes);
        let view = x.view().permuted_axes(IxDyn(&order));
        let last = view.shape()[outer - 1];
        let n = plan.group_len();
        let across = across(&view, outer);
        let tile = if across {
            TILE_ELEMENTS_ACROSS
        } else {
            TILE_ELEMENTS
        };
        Ok(Groups {
            view,
            outer,
            groups: plan.groups(),
            n,
            last,
            per_tile: (tile / n.max(1)).max(1),
            across,
        })
    }

    fn tiles(&self) -> Vec<Tile> {
        let mut tiles = Vec::new();
        if self.last == 0 {
            return tiles;
        }
        for p in 0..self.groups / self.last {
            let mut a = 0;
            while a < self.last {
                let len = self.per_tile.min(self.last - a);
                tiles.push(Tile {
                    first: p * self.last + a,
                    len,
                });
                a += len;
            }
        }
        tiles
    }

    /// The data as `n` rows of `G` groups each, in memory order, when the groups are the
    /// columns of a C-order matrix (one outer and one inner axis, the groups' axis
    /// contiguous): the gather pass then reads the memory row by row ([`Columns`]) instead
    /// of copying each group out.
    fn columns(&self) -> Option<Columns<'_, T>> {
        if self.outer != 1 || self.view.ndim() != 2 || self.n == 0 || self.groups == 0 {
            return None;
        }
        let rows = self
            .view
            .view()
            .reversed_axes()
            .into_dimensionality::<Ix2>()
            .ok()?;
        let data = rows.to_slice()?;
        Some(Columns {
            data,
            n: self.n,
            groups: self.groups,
        })
    }

    /// Hands `f` the tile's groups, group after group, as f64 values (signed, unscaled): the
    /// data itself when the tile is contiguous f64, else a copy in `buf`.
    fn with_tile<R>(&self, tile: Tile, buf: &mut Vec<f64>, f: impl FnOnce(&[f64]) -> R) -> R {
        let mut v = self.view.view();
        let mut rest = tile.first / self.last;
        let mut idx = vec![0usize; self.outer - 1];
        for ax in (0..self.outer - 1).rev() {
            let extent = self.view.shape()[ax];
            idx[ax] = rest % extent;
            rest /= extent;
        }
        for &i in &idx {
            v = v.index_axis_move(Axis(0), i);
        }
        let a = tile.first % self.last;
        v.slice_axis_inplace(Axis(0), Slice::from(a..a + tile.len));
        if let Some(s) = v.as_slice() {
            if let Some(s) = T::as_f64_slice(s) {
                return f(s);
            }
            buf.clear();
            buf.extend(s.iter().map(|y| y.to_f64()));
            return f(buf);
        }
        buf.clear();
        buf.resize(tile.len * self.n, 0.0);
        if v.ndim() > 1 && v.strides()[0].unsigned_abs() == 1 {
            // Consecutive groups are adjacent in memory: read along the memory, a run of the
            // tile's groups at each inner position (in the groups' element order), and scatter
            // it into the group-major buffer, which the tile keeps in cache.
            let n = self.n;
            if let Ok(v2) = v.view().into_dimensionality::<Ix2>()
                && v2.strides()[0] == 1
            {
                // Blocks of 8 inner positions: each group's 8 entries fill one cache line of
                // the buffer at once.
                const R: usize = 8;
                let len = v2.shape()[0];
                let mut r0 = 0;
                while r0 + R <= n {
                    let runs: [&[T]; R] =
                        std::array::from_fn(|k| v2.column(r0 + k).to_slice().expect("unit stride"));
                    for (c, dst) in buf[r0..].chunks_mut(n).take(len).enumerate() {
                        for k in 0..R {
                            dst[k] = runs[k][c].to_f64();
                        }
                    }
                    r0 += R;
                }
                for r in r0..n {
                    let run = v2.column(r).to_slice().expect("unit stride");
                    for (d, y) in buf[r..].iter_mut().step_by(n).zip(run) {
                        *d = y.to_f64();
                    }
                }
            } else if let Ok(v2) = v.view().into_dimensionality::<Ix2>() {
                for (r, lane) in v2.axis_iter(Axis(1)).enumerate() {
                    match lane.as_slice() {
                        Some(run) => {
                            for (d, y) in buf[r..].iter_mut().step_by(n).zip(run) {
                                *d = y.to_f64();
                            }
                        }
                        None => {
                            for (d, y) in buf[r..].iter_mut().step_by(n).zip(lane.iter()) {
                                *d = y.to_f64();
                            }
                        }
                    }
                }
            } else {
                for (r, lane) in v.lanes(Axis(0)).into_iter().enumerate() {
                    for (c, y) in lane.iter().enumerate() {
                        buf[c * n + r] = y.to_f64();
                    }
                }
            }
            return f(buf);
        }
        let shape = v.shape().to_vec();
        let mut dst = ArrayViewMutD::from_shape(IxDyn(&shape), &mut buf[..])
            .expect("the buffer holds the tile");
        Zip::from(&mut dst)
            .and(&v)
            .for_each(|d, &s| *d = s.to_f64());
        f(buf)
    }
}

/// Whether consecutive groups are adjacent in memory: the last outer axis of `view` (outer axes
/// first, then the inner ones) has unit stride, and the groups have more than one entry.
fn across<T>(view: &ArrayViewD<'_, T>, outer: usize) -> bool {
    view.ndim() > outer && view.strides()[outer - 1].unsigned_abs() == 1
}

/// Splits `data` into consecutive pieces of `tile.len · per_group` entries, one per tile.
fn split_by_tiles<'s, U>(data: &'s mut [U], tiles: &[Tile], per_group: usize) -> Vec<&'s mut [U]> {
    split_lengths(data, tiles.iter().map(|t| t.len * per_group))
}

/// Splits `data` into consecutive pieces of the given lengths.
fn split_lengths<U>(mut data: &mut [U], lengths: impl Iterator<Item = usize>) -> Vec<&mut [U]> {
    let mut out = Vec::new();
    for len in lengths {
        let (head, tail) = data.split_at_mut(len);
        out.push(head);
        data = tail;
    }
    out
}

/// What the first pass over the data learns about every group: its
/// maximum `m_g` and l1 norm `s_g`, and `Θ_g` at the edges `e_j = j·m_g/b` of a histogram of
/// its magnitudes on `[0, m_g]`, with the count of magnitudes at or above each edge (suffix
/// sums over the buckets `j…b−1`: `Θ_g(e_j) = S_j − C_j·e_j`).
#[derive(Clone, Debug)]
pub struct Sketch {
    b: usize,
    n: usize,
    maxes: Vec<f64>,
    l1: Vec<f64>,
    /// Per group: whether its histogram was made (`counts` and `theta` hold it). A group
    /// without one is bounded by its maximum and l1 norm alone (see [`Sketch::bounds`]).
    hist: Vec<bool>,
    /// `G × (b + 1)`: `C_j`.
    counts: Vec<f64>,
    /// `G × (b + 1)`: `Θ_g(e_j)`, decreasing in `j`, from `s_g` to 0. For a quantized
    /// histogram, `Θ'` of the rounded data, exactly.
    theta: Vec<f64>,
    /// Per group: how far `Θ_g` can be from what `theta` describes (0 for a plain histogram,
    /// `n·δ` for a quantized one, see [`Quant`]).
    err: Vec<f64>,
    /// Whether any group held a NaN or an infinity, or had an l1 norm that overflowed.
    pub(crate) not_finite: bool,
}

impl Sketch {
    fn edge(&self, g: usize, j: usize) -> f64 {
        let m = self.maxes[g];
        if j == self.b {
            m
        } else {
            j as f64 * (m / self.b as f64)
        }
    }

    /// Lower and upper bounds on `μ_g(θ)`: the bucket holding `μ`, then the tangents at its two
    /// edges below `Θ_g` (which is convex) and the chord above it. Without a histogram, the
    /// one bucket `[0, m_g]`: `Θ_g(μ) ≥ m_g − μ` (its largest entry) and `≥ s_g − n·μ` (every
    /// entry), and `≤ s_g·(1 − μ/m_g)` (the chord).
    ///
    /// A quantized histogram describes `Θ'`, within `err` of `Θ`: `μ(θ)` is then between
    /// `μ'(θ + err)` and `μ'(θ − err)`.
    fn bounds(&self, g: usize, theta: f64) -> (f64, f64) {
        let (m, s) = (self.maxes[g], self.l1[g]);
        if theta >= s || m == 0.0 {
            return (0.0, 0.0);
        }
        if !self.hist[g] {
            let low = (m - theta).max((s - theta) / self.n as f64).max(0.0);
            let high = m * (1.0 - theta / s);
            return (low.min(m), high.clamp(low.min(m), m));
        }
        let err = self.err[g];
        if err == 0.0 {
            return self.hist_bounds(g, theta);
        }
        let (low, _) = self.hist_bounds(g, theta + err);
        let (_, high) = self.hist_bounds(g, (theta - err).max(0.0));
        (low, high.max(low))
    }

    /// One side of [`Sketch::bounds`], the upper one or the lower: the lower one of a
    /// quantized histogram needs one search, not two.
    fn bound(&self, g: usize, theta: f64, upper: bool) -> f64 {
        let err = self.err[g];
        if upper || err == 0.0 || !self.hist[g] || theta >= self.l1[g] || self.maxes[g] == 0.0 {
            let (low, high) = self.bounds(g, theta);
            return if upper { high } else { low };
        }
        self.hist_bounds(g, theta + err).0
    }

    /// [`Sketch::bounds`] for the data the histogram describes exactly.
    fn hist_bounds(&self, g: usize, theta: f64) -> (f64, f64) {
        let b = self.b;
        let m = self.maxes[g];
        let c = &self.counts[g * (b + 1)..(g + 1) * (b + 1)];
        let t = &self.theta[g * (b + 1)..(g + 1) * (b + 1)];
        if theta >= t[0] {
            return (0.0, 0.0);
        }
        if theta <= 0.0 {
            return (m, m);
        }
        // The bucket j with Θ(e_{j+1}) ≤ θ < Θ(e_j): Θ(e_j) decreases with j, Θ(e_0) > θ ≥
        // Θ(e_b) = 0. A binary search of fixed steps (b is a power of two), each a
        // selection rather than a branch: the searches of neighbouring groups do not
        // predict each other.
        let mut j = 0;
        let mut step = b / 2;
        while step > 0 {
            j += if t[j + step] > theta { step } else { 0 };
            step /= 2;
        }
        bucket_bounds(
            theta,
            (self.edge(g, j), self.edge(g, j + 1)),
            (t[j], t[j + 1]),
            (c[j], c[j + 1]),
        )
    }

    /// `Σ_g` of the lower (`upper = false`) or upper bounds at `θ`, in a fixed order.
    fn total(&self, theta: f64, upper: bool) -> f64 {
        let groups = self.maxes.len();
        let chunks: Vec<f64> = (0..groups.div_ceil(SUM_CHUNK))
            .into_par_iter()
            .map(|c| {
                (c * SUM_CHUNK..((c + 1) * SUM_CHUNK).min(groups))
                    .map(|g| self.bound(g, theta, upper))
                    .sum::<f64>()
            })
            .collect();
        chunks.iter().sum()
    }
}

/// One group's maximum and l1 norm (four lanes; `max` skips a NaN, but the sum keeps it, so a
/// NaN makes the l1 norm NaN and the maximum NaN too).
fn max_and_l1(row: &[f64], scale: f64) -> (f64, f64) {
    let (mut m4, mut s4) = ([0.0f64; 4], [0.0f64; 4]);
    let mut chunks = row.chunks_exact(4);
    // `if v > m` (not `f64::max`) compiles to a plain max instruction; a NaN fails the
    // comparison and is kept by the sum instead.
    for q in &mut chunks {
        for l in 0..4 {
            let v = q[l].abs() * scale;
            m4[l] = if v > m4[l] { v } else { m4[l] };
            s4[l] += v;
        }
    }
    for &y in chunks.remainder() {
        let v = y.abs() * scale;
        m4[0] = if v > m4[0] { v } else { m4[0] };
        s4[0] += v;
    }
    let m = m4[0].max(m4[1]).max(m4[2].max(m4[3]));
    let l1 = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    (if l1.is_nan() { f64::NAN } else { m }, l1)
}

/// One group's histogram, for its maximum `m` (times `scale`, as the magnitudes are read): the
/// count and sum of the magnitudes in each bucket `⌊v·b/m⌋` (`b + 1` of them: the magnitudes
/// equal to the maximum land in bucket `b`). The bucket indices of a block are computed
/// first, in a loop the compiler vectorizes, then counted.
fn histogram_row(row: &[f64], scale: f64, m: f64, b: usize, cnt: &mut [u64], sm: &mut [f64]) {
    const BLOCK: usize = 64;
    cnt.fill(0);
    sm.fill(0.0);
    if !m.is_finite() || m == 0.0 {
        return;
    }
    let inv = b as f64 / m;
    let top = b as f64;
    // The bucket index without a float-to-integer conversion (which SSE2 has no vector form
    // of): `x + 2^52` for `0 ≤ x ≤ b` holds `round(x)` in its low mantissa bits, and
    // `round(v·inv − ½)` is `⌊v·inv⌋` except exactly at an edge, where either side is right
    // (an entry at an edge adds nothing to `Θ` there).
    const MAGIC: f64 = 4_503_599_627_370_496.0;
    let magic_bits = MAGIC.to_bits();
    let mut idx = [0u64; BLOCK];
    let mut val = [0.0f64; BLOCK];
    for block in row.chunks(BLOCK) {
        for (k, &y) in block.iter().enumerate() {
            let v = y.abs() * scale;
            val[k] = v;
            idx[k] = ((v * inv - 0.5).clamp(0.0, top) + MAGIC).to_bits() - magic_bits;
        }
        for k in 0..block.len() {
            let j = idx[k] as usize;
            cnt[j] += 1;
            sm[j] += val[k];
        }
    }
}

/// The groups as the columns of a C-order matrix, read in memory order by the gather pass:
/// `n` rows of `groups` entries. The pass splits the columns into blocks, one task each, and
/// a task reads its block's part of every row (a run of up to [`Columns::BLOCK`] entries),
/// four rows at a time, keeping each column's counts and sums in cache. Every column is
/// summed in row order by one task, so nothing depends on the number of threads. (Measured
/// on 4096² f64, 1 thread: 16 ms, where copying each tile of columns out took 35–41 ms.
/// The first pass still copies tiles out: its histograms, one table per column, ran at
/// about 3 ns per entry in memory order, slower than the copy.)
struct Columns<'a, T> {
    data: &'a [T],
    n: usize,
    groups: usize,
}

impl<T: Element> Columns<'_, T> {
    /// Columns per block at most: a 4 KiB run of f64 per row.
    const BLOCK: usize = 512;

    /// The column blocks: about four per thread, at most [`Columns::BLOCK`] wide (any split
    /// gives the same results).
    fn blocks(&self) -> Vec<std::ops::Range<usize>> {
        let per = (self.groups / (4 * rayon::current_num_threads()).max(1))
            .next_multiple_of(8)
            .clamp(8, Self::BLOCK);
        (0..self.groups)
            .step_by(per)
            .map(|a| a..(a + per).min(self.groups))
            .collect()
    }

    /// Row `i`'s entries of the columns `cols`.
    fn run(&self, i: usize, cols: &std::ops::Range<usize>) -> &[T] {
        &self.data[i * self.groups + cols.start..i * self.groups + cols.end]
    }

    /// The gather pass in memory order, for the pending groups ([`gather`]'s result).
    fn gather(&self, reduced: &mut [Reduced], scale: f64, ticker: &Ticker<'_>) {
        let blocks = self.blocks();
        let parts = split_lengths(reduced, blocks.iter().map(|r| r.len()));
        blocks
            .par_iter()
            .zip(parts.into_par_iter())
            .for_each(|(cols, part)| {
                if !part.iter().any(|r| r.pending) {
                    return;
                }
                // Windows that nothing passes for the other groups.
                let (lo, hi): (Vec<f64>, Vec<f64>) = part
                    .iter()
                    .map(|r| {
                        if r.pending {
                            (r.lo, r.hi)
                        } else {
                            (f64::INFINITY, f64::INFINITY)
                        }
                    })
                    .unzip();
                let width = cols.len();
                let (mut c, mut s) = (vec![0.0f64; width], vec![0.0f64; width]);
                let mut flags = vec![0u8; width];
                for r in part.iter_mut().filter(|r| r.pending) {
                    r.u.clear();
                }
                let magnitude = |y: &T| y.to_f64().abs() * scale;
                // Four rows at a time, as for the maxima; a jam with an entry in a window
                // is read again, row by row, for it (the windows are narrow: rarely).
                let mut i = 0;
                while i < self.n {
                    let jam = (self.n - i).min(4);
                    let mut near = false;
                    if jam == 4 {
                        let w = width;
                        let (r0, r1) = (&self.run(i, cols)[..w], &self.run(i + 1, cols)[..w]);
                        let (r2, r3) = (&self.run(i + 2, cols)[..w], &self.run(i + 3, cols)[..w]);
                        let (lo, hi) = (&lo[..w], &hi[..w]);
                        let (c, s) = (&mut c[..w], &mut s[..w]);
                        // Selections, not branches, so that the loop vectorizes.
                        let one = |v: f64, h: f64| if v > h { 1.0 } else { 0.0 };
                        let keep = |v: f64, h: f64| if v > h { v } else { 0.0 };
                        let window = |v: f64, l: f64, h: f64| (v > l) & (v <= h);
                        let flags = &mut flags[..w];
                        let mut hits = 0u8;
                        for k in 0..w {
                            let (a, b) = (magnitude(&r0[k]), magnitude(&r1[k]));
                            let (e, d) = (magnitude(&r2[k]), magnitude(&r3[k]));
                            let h = hi[k];
                            c[k] += (one(a, h) + one(b, h)) + (one(e, h) + one(d, h));
                            s[k] += (keep(a, h) + keep(b, h)) + (keep(e, h) + keep(d, h));
                            let l = lo[k];
                            let f = u8::from(window(a, l, h) | window(b, l, h))
                                | u8::from(window(e, l, h) | window(d, l, h));
                            flags[k] = f;
                            hits |= f;
                        }
                        if hits != 0 {
                            // Only the flagged columns of the jam hold window entries.
                            for k in (0..w).filter(|&k| flags[k] != 0) {
                                for run in [r0, r1, r2, r3] {
                                    let v = magnitude(&run[k]);
                                    if v > lo[k] && v <= hi[k] {
                                        part[k].u.push(v);
                                    }
                                }
                            }
                        }
                    } else {
                        for r in 0..jam {
                            for (k, y) in self.run(i + r, cols).iter().enumerate() {
                                let v = magnitude(y);
                                let above = v > hi[k];
                                c[k] += if above { 1.0 } else { 0.0 };
                                s[k] += if above { v } else { 0.0 };
                                near |= (v > lo[k]) & !above;
                            }
                        }
                    }
                    if near {
                        for r in 0..jam {
                            for (k, y) in self.run(i + r, cols).iter().enumerate() {
                                let v = magnitude(y);
                                if v > lo[k] && v <= hi[k] {
                                    part[k].u.push(v);
                                }
                            }
                        }
                    }
                    i += jam;
                }
                for (k, r) in part.iter_mut().enumerate() {
                    if r.pending {
                        r.pending = false;
                        (r.c, r.s) = (c[k], s[k]);
                    }
                }
                ticker.tick(width * self.n);
            });
    }
}

/// The first pass over the data of an exact `l1 of linf` projection, in place of the reduce
/// pass: every group's maximum (the aggregates) and l1 norm, in parallel. The magnitudes are
/// multiplied by `scale` as they are read. The histograms come later ([`histograms`]), for the
/// groups the solve cannot rule out.
pub(crate) fn first_pass<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    scale: f64,
    ticker: &Ticker<'_>,
) -> Result<Sketch, DataError> {
    let groups = Groups::new(plan, x)?;
    let n = groups.n;
    let b = buckets_for(n);
    let g_total = groups.groups;
    let tiles = groups.tiles();
    let quant = Quant::new(n, b);
    let mut maxes = vec![0.0f64; g_total];
    let mut l1 = vec![0.0f64; g_total];
    let mut err = vec![0.0f64; g_total];
    // Every group's histogram is made here, from the group in cache, when the groups are
    // columns of C-order data (the tile, a transposing copy, is the costly part) or when the
    // quantized histogram applies. Measured on 4096² rows against a second visit of the
    // groups the solve cannot rule out (5 alternating runs): faster when every row is a
    // candidate (Gaussian at 0.01 × the norm: 42.8 against 48.1 ms at 1 thread, 31.7 against
    // 33.6 at 2), slower when few are (rows of mixed scales: 27.9 against 21.9, 18.6 against
    // 14.6). This pass cannot know which (the radius may be a fraction of the norm it
    // computes). Otherwise (groups of 2^20 entries or more) the histograms wait.
    let fused = groups.across || quant.is_some();
    let h = if fused { b + 1 } else { 0 };
    let (mut counts, mut theta) = (vec![0.0f64; g_total * h], vec![0.0f64; g_total * h]);
    let pieces = split_by_tiles(&mut maxes, &tiles, 1)
        .into_iter()
        .zip(split_by_tiles(&mut l1, &tiles, 1))
        .zip(split_by_tiles(&mut err, &tiles, 1))
        .zip(split_by_tiles(&mut counts, &tiles, h))
        .zip(split_by_tiles(&mut theta, &tiles, h))
        .collect::<Vec<_>>();
    tiles.par_iter().zip(pieces.into_par_iter()).for_each_init(
        || {
            (
                Vec::new(),
                vec![0u64; b + 1],
                vec![0.0f64; b + 1],
                vec![0u64; b + 1],
            )
        },
        |(buf, cnt, sm, qsum), (&tile, ((((mx, ls), es), cs), ts))| {
            groups.with_tile(tile, buf, |data| {
                for t in 0..tile.len {
                    let row = &data[t * n..(t + 1) * n];
                    (mx[t], ls[t]) = max_and_l1(row, scale);
                    if !fused {
                        continue;
                    }
                    let out = t * (b + 1)..(t + 1) * (b + 1);
                    match quant {
                        Some(quant) => {
                            histogram_quantized(row, scale, mx[t], quant, (cnt, qsum));
                            edges_quantized(
                                (cnt, qsum),
                                mx[t],
                                quant,
                                &mut cs[out.clone()],
                                &mut ts[out],
                            );
                            es[t] = n as f64 * mx[t] * 2f64.powi(-(quant.qb as i32));
                        }
                        None => {
                            histogram_row(row, scale, mx[t], b, cnt, sm);
                            edges(
                                cnt,
                                sm,
                                (mx[t], ls[t]),
                                n,
                                &mut cs[out.clone()],
                                &mut ts[out],
                            );
                        }
                    }
                }
            });
            ticker.tick(tile.len * n);
        },
    );
    let not_finite = maxes.iter().chain(&l1).any(|v| !v.is_finite());
    Ok(Sketch {
        b,
        n,
        hist: vec![fused; g_total],
        maxes,
        l1,
        counts,
        theta,
        err,
        not_finite,
    })
}

/// A group's counts and `Θ` at the edges of its histogram (`cnt`, `sm`; maximum and l1 norm
/// `m`, `sum`; `n` entries): suffix sums, the bucket at the maximum joining the last, `Θ` at
/// each edge held in `[max(m − e, s − n·e, 0), s − e]` against rounding.
fn edges(
    cnt: &[u64],
    sm: &[f64],
    (m, sum): (f64, f64),
    n: usize,
    out_c: &mut [f64],
    out_t: &mut [f64],
) {
    let b = cnt.len() - 1;
    let step = m / b as f64;
    let (mut ca, mut sa) = ((cnt[b] + cnt[b - 1]) as f64, sm[b] + sm[b - 1]);
    out_c[b] = 0.0;
    out_t[b] = 0.0;
    for j in (0..b).rev() {
        if j < b - 1 {
            ca += cnt[j] as f64;
            sa += sm[j];
        }
        let e = j as f64 * step;
        let floor = (m - e).max(sum - n as f64 * e).max(0.0);
        out_c[j] = ca;
        out_t[j] = (sa - ca * e).clamp(floor, (sum - e).max(floor));
    }
    out_t[0] = sum;
}

/// The histogram pass: makes the histogram of every group `wanted` says (see [`Sketch`]),
/// reading only the tiles that hold one.
fn histograms<T: Element>(
    groups: &Groups<'_, T>,
    tiles: &[Tile],
    sketch: &mut Sketch,
    wanted: &[bool],
    scale: f64,
    ticker: &Ticker<'_>,
) {
    let (b, n) = (sketch.b, sketch.n);
    let g_total = sketch.maxes.len();
    sketch.counts = vec![0.0f64; g_total * (b + 1)];
    sketch.theta = vec![0.0f64; g_total * (b + 1)];
    let (maxes, l1) = (&sketch.maxes, &sketch.l1);
    let pieces = split_by_tiles(&mut sketch.counts, tiles, b + 1)
        .into_iter()
        .zip(split_by_tiles(&mut sketch.theta, tiles, b + 1))
        .collect::<Vec<_>>();
    tiles.par_iter().zip(pieces.into_par_iter()).for_each_init(
        || (Vec::new(), vec![0u64; b + 1], vec![0.0f64; b + 1]),
        |(buf, cnt, sm), (&tile, (cs, ts))| {
            let of_tile = tile.first..tile.first + tile.len;
            if !wanted[of_tile].iter().any(|&w| w) {
                return;
            }
            groups.with_tile(tile, buf, |data| {
                for t in 0..tile.len {
                    let g = tile.first + t;
                    if !wanted[g] {
                        continue;
                    }
                    let (m, sum) = (maxes[g], l1[g]);
                    histogram_row(&data[t * n..(t + 1) * n], scale, m, b, cnt, sm);
                    let out = t * (b + 1)..(t + 1) * (b + 1);
                    edges(cnt, sm, (m, sum), n, &mut cs[out.clone()], &mut ts[out]);
                }
            });
            ticker.tick(tile.len * n);
        },
    );
    for (h, &w) in sketch.hist.iter_mut().zip(wanted) {
        *h = w;
    }
}

/// The largest `θ` (to `tol` relative) with `f(θ) ≥ r` (`lower`), or the smallest with
/// `f(θ) ≤ r`, for a continuous non-increasing `f` with `f(lo) ≥ r ≥ f(hi)`: regula falsi with
/// the Illinois modification, falling back to bisection.
fn search(f: impl Fn(f64) -> f64, r: f64, mut lo: f64, mut hi: f64, lower: bool, tol: f64) -> f64 {
    let (mut f_lo, mut f_hi) = (f(lo) - r, f(hi) - r);
    let mut side = 0i8;
    for i in 0..200 {
        if hi - lo <= tol * hi.abs() || f_lo == 0.0 && !lower || f_hi == 0.0 && lower {
            break;
        }
        let mut t = if i % 4 == 3 || f_lo <= f_hi {
            0.5 * (lo + hi)
        } else {
            lo + (hi - lo) * (f_lo / (f_lo - f_hi))
        };
        if !(t > lo && t < hi) {
            t = 0.5 * (lo + hi);
            if !(t > lo && t < hi) {
                break;
            }
        }
        let ft = f(t) - r;
        let keep_low = if lower { ft >= 0.0 } else { ft > 0.0 };
        if keep_low {
            lo = t;
            f_lo = ft;
            if side == 1 {
                f_hi *= 0.5;
            }
            side = 1;
        } else {
            hi = t;
            f_hi = ft;
            if side == -1 {
                f_lo *= 0.5;
            }
            side = -1;
        }
    }
    if lower { lo } else { hi }
}

/// One group's gathered entries: `c`, `s` the count and sum of its entries above `hi`, `u` its
/// entries in `(lo, hi]` in decreasing order with prefix sums `p` (`p[0] = 0`).
#[derive(Clone, Debug, Default)]
struct Reduced {
    lo: f64,
    hi: f64,
    c: f64,
    s: f64,
    u: Vec<f64>,
    p: Vec<f64>,
    /// False for groups known to be zero on the whole bracket (nothing gathered).
    live: bool,
    /// True when the next gather pass must (re)gather this group.
    pending: bool,
}

/// A group's piece of the reduced `F` at `θ`: on `[left, right)` its clip level is
/// `(a − θ)/k` (pieces at the ends of a group's window extend past them), or 0.
#[derive(Clone, Copy, Debug)]
enum Piece {
    Zero {
        left: f64,
    },
    Linear {
        a: f64,
        k: f64,
        left: f64,
        right: f64,
    },
}

impl Reduced {
    /// `Θ_g` at the gathered entry `i` (1-based, `u` sorted decreasing), at `hi` (`i = 0`) and
    /// at `lo` (`i = K+1`).
    fn big_theta(&self, i: usize) -> f64 {
        let k = self.u.len();
        let mu = if i == 0 {
            self.hi
        } else if i > k {
            self.lo
        } else {
            self.u[i - 1]
        };
        // Entries above μ: none at hi, i − 1 at u_i, all K at lo.
        let above = i.saturating_sub(1).min(k);
        self.s + self.p[above] - (self.c + above as f64) * mu
    }

    /// The piece at `θ` (`u` sorted, `p` its prefix sums).
    fn piece(&self, theta: f64) -> Piece {
        if !self.live {
            return Piece::Zero {
                left: f64::NEG_INFINITY,
            };
        }
        let k = self.u.len();
        let at_lo = self.big_theta(k + 1);
        if self.lo == 0.0 && theta >= at_lo {
            return Piece::Zero { left: at_lo };
        }
        // i = #{gathered entries with Θ(u_i) ≤ θ}: those are above μ.
        let (mut lo, mut hi) = (0usize, k);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.big_theta(mid) <= theta {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let i = lo;
        let left = if i == 0 {
            f64::NEG_INFINITY
        } else {
            self.big_theta(i)
        };
        let right = if i < k {
            self.big_theta(i + 1)
        } else if self.lo == 0.0 {
            at_lo
        } else {
            f64::INFINITY
        };
        Piece::Linear {
            a: self.s + self.p[i],
            // No entry above μ only when nothing is above hi and μ is past every gathered
            // entry: μ is then the group's maximum, not a solution; any slope keeps the
            // extrapolation monotone, and the final check rejects the group.
            k: (self.c + i as f64).max(1.0),
            left,
            right,
        }
    }

    /// Whether `μ_g(θ)` really lies in `[lo, hi]` (or the group is really zero) at `θ`.
    fn holds(&self, theta: f64) -> bool {
        if !self.live {
            return true;
        }
        let k = self.u.len();
        let at_hi = self.big_theta(0);
        let at_lo = self.big_theta(k + 1);
        theta >= at_hi && (self.lo == 0.0 || theta <= at_lo)
    }

    /// Sorts `u` (decreasing) and fills the prefix sums.
    fn sort(&mut self) {
        self.u.sort_unstable_by(|a, b| b.total_cmp(a));
        self.p.clear();
        self.p.push(0.0);
        let mut acc = 0.0;
        for &v in &self.u {
            acc += v;
            self.p.push(acc);
        }
    }
}

/// The gather pass: the entries of the live groups in `(lo_g, hi_g]`, and the count and sum of
/// those above `hi_g`.
fn gather<T: Element>(
    groups: &Groups<'_, T>,
    tiles: &[Tile],
    reduced: &mut [Reduced],
    scale: f64,
    ticker: &Ticker<'_>,
) {
    let n = groups.n;
    let parts = split_by_tiles(reduced, tiles, 1);
    tiles
        .par_iter()
        .zip(parts.into_par_iter())
        .for_each_init(Vec::new, |buf, (&tile, part)| {
            if part.iter().any(|r| r.pending) {
                groups.with_tile(tile, buf, |data| {
                    for (t, r) in part.iter_mut().enumerate() {
                        if !r.pending {
                            continue;
                        }
                        r.pending = false;
                        let row = &data[t * n..(t + 1) * n];
                        (r.c, r.s) = gather_group(row, scale, r.lo, r.hi, &mut r.u);
                    }
                });
            }
            ticker.tick(tile.len * n);
        });
}

/// One group of the gather pass: the count and sum of the magnitudes (times `scale`) above
/// `hi`, and those in `(lo, hi]` pushed onto `u`. Four lanes: no chain of dependent additions,
/// and no branch but the rare one of a block holding an entry in `(lo, hi]` (the windows are
/// narrow).
fn gather_group(row: &[f64], scale: f64, lo: f64, hi: f64, u: &mut Vec<f64>) -> (f64, f64) {
    u.clear();
    let (mut c4, mut s4) = ([0.0f64; 4], [0.0f64; 4]);
    let mut chunks = row.chunks_exact(4);
    for q in &mut chunks {
        let mut near = false;
        for l in 0..4 {
            let v = q[l].abs() * scale;
            let above = v > hi;
            c4[l] += if above { 1.0 } else { 0.0 };
            s4[l] += if above { v } else { 0.0 };
            near |= (v > lo) & !above;
        }
        if near {
            for &y in q {
                let v = y.abs() * scale;
                if (v > lo) & (v <= hi) {
                    u.push(v);
                }
            }
        }
    }
    for &y in chunks.remainder() {
        let v = y.abs() * scale;
        if v > hi {
            c4[0] += 1.0;
            s4[0] += v;
        } else if v > lo {
            u.push(v);
        }
    }
    (
        (c4[0] + c4[1]) + (c4[2] + c4[3]),
        (s4[0] + s4[1]) + (s4[2] + s4[3]),
    )
}

/// The pieces of all groups at `θ`, summed in a fixed order: `(Σ a/k, Σ 1/k, left, right)`
/// where `[left, right)` is the interval on which they all hold. The reduced
/// `F(θ) = Σ a/k − θ·Σ 1/k` there.
fn pieces_at(reduced: &[Reduced], theta: f64) -> (f64, f64, f64, f64) {
    let chunks: Vec<(f64, f64, f64, f64)> = reduced
        .par_chunks(SUM_CHUNK)
        .map(|chunk| {
            let (mut num, mut den) = (0.0, 0.0);
            let (mut left, mut right) = (f64::NEG_INFINITY, f64::INFINITY);
            for r in chunk {
                match r.piece(theta) {
                    Piece::Zero { left: l } => left = left.max(l),
                    Piece::Linear {
                        a,
                        k,
                        left: l,
                        right: rt,
                    } => {
                        num += a / k;
                        den += 1.0 / k;
                        left = left.max(l);
                        right = right.min(rt);
                    }
                }
            }
            (num, den, left, right)
        })
        .collect();
    chunks.iter().fold(
        (0.0, 0.0, f64::NEG_INFINITY, f64::INFINITY),
        |(n, d, l, r), &(a, b, c, e)| (n + a, d + b, l.max(c), r.min(e)),
    )
}

/// The root of the reduced `F(θ) = r` (continuous, piecewise linear, non-increasing): Newton's
/// method from `start`, each step the root of the current piece, kept inside the bracket of the
/// values seen so far (bisection when a step leaves it). It ends on the first piece that holds
/// its own root — exactly, in finitely many steps: on a convex `F`, started below the root,
/// every step lands on a new piece closer to it.
fn newton(reduced: &[Reduced], r: f64, start: f64) -> f64 {
    let (mut below, mut above) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut theta = start;
    for _ in 0..500 {
        let (num, den, left, right) = pieces_at(reduced, theta);
        if den == 0.0 {
            // Every group is zero here: F = 0 < r, the root is below.
            above = above.min(theta);
            theta = if below.is_finite() {
                0.5 * (below + theta)
            } else {
                theta * 0.5
            };
            continue;
        }
        let next = (num - r) / den;
        if next >= left && next <= right {
            return next;
        }
        if num - theta * den >= r {
            below = below.max(theta);
        } else {
            above = above.min(theta);
        }
        theta = if next > below && next < above {
            next
        } else if below.is_finite() && above.is_finite() {
            0.5 * (below + above)
        } else {
            next
        };
    }
    theta
}

/// Refines the windows of the gathered groups in memory until few entries are left in them:
/// each round histograms every group's gathered entries on its window (exactly: the count and
/// sum above the window are known), brackets the root of the reduced `F` as the first pass did,
/// and narrows every window to its new bounds, moving the entries above it into the group's
/// count and sum and dropping those below. Returns the bracket `(θ_a, θ_b)`.
fn refine(reduced: &mut [Reduced], r: f64, mut bracket: (f64, f64)) -> (f64, f64) {
    let live = reduced.iter().filter(|g| g.live).count().max(1);
    for _ in 0..4 {
        let k: usize = reduced.iter().map(|g| g.u.len()).sum();
        if k <= 16 * live || k <= 4096 {
            break;
        }
        let hists: Vec<Option<Window>> = reduced.par_iter().map(Window::new).collect();
        let total = |theta: f64, upper: bool| -> f64 {
            let parts: Vec<f64> = hists
                .par_chunks(SUM_CHUNK)
                .map(|c| {
                    c.iter()
                        .flatten()
                        .map(|h| {
                            let (l, u) = h.bounds(theta);
                            if upper { u } else { l }
                        })
                        .sum::<f64>()
                })
                .collect();
            parts.iter().sum()
        };
        // The reduced F is at least r at θ_a and at most r at θ_b (up to the windows being
        // right, which the final check decides).
        let (a0, b0) = bracket;
        let lo_end = if total(a0, false) >= r { a0 } else { 0.0 };
        let hi_end = if total(b0, true) <= r {
            b0
        } else {
            hists
                .iter()
                .flatten()
                .map(|h| h.l1_at_lo)
                .fold(b0, f64::max)
        };
        let theta_a = search(|t| total(t, false), r, lo_end, hi_end, true, 1e-9);
        let theta_b = search(|t| total(t, true), r, lo_end, hi_end, false, 1e-9).max(theta_a);
        for (g, h) in reduced.iter_mut().zip(&hists) {
            let Some(h) = h else { continue };
            let margin = 64.0 * f64::EPSILON * g.hi;
            let (new_lo, _) = h.bounds(theta_b);
            let (_, new_hi) = h.bounds(theta_a);
            let new_lo = if g.lo == 0.0 && theta_b >= h.l1_at_lo {
                0.0
            } else {
                (new_lo - margin).max(g.lo)
            };
            let new_hi = (new_hi + margin).min(g.hi);
            let (mut c, mut s) = (g.c, g.s);
            g.u.retain(|&v| {
                if v > new_hi {
                    c += 1.0;
                    s += v;
                    false
                } else {
                    v > new_lo
                }
            });
            (g.c, g.s, g.lo, g.hi) = (c, s, new_lo, new_hi);
        }
        bracket = (theta_a, theta_b);
    }
    bracket
}

/// An exact histogram of one group's gathered entries on its window `(lo, hi]`, for
/// [`refine`]: `Θ` at every bucket edge, `Θ(e_j) = s + S_j − (c + C_j)·e_j`.
struct Window {
    edges: Vec<f64>,
    /// `Θ` at the edges, decreasing.
    theta: Vec<f64>,
    /// Entries at or above each edge (`c + C_j`).
    count: Vec<f64>,
    /// `Θ(lo)`: where the group becomes zero when `lo = 0`.
    l1_at_lo: f64,
    zero_below: bool,
}

impl Window {
    fn new(g: &Reduced) -> Option<Window> {
        if !g.live || g.hi <= g.lo {
            return None;
        }
        let b = (g.u.len() / 4).clamp(1, 256);
        let width = g.hi - g.lo;
        let mut cnt = vec![0.0f64; b + 1];
        let mut sum = vec![0.0f64; b + 1];
        for &v in &g.u {
            let j = (((v - g.lo) / width * b as f64) as usize).min(b - 1);
            cnt[j] += 1.0;
            sum[j] += v;
        }
        let mut edges = vec![0.0; b + 1];
        let mut theta = vec![0.0; b + 1];
        let mut count = vec![0.0; b + 1];
        let (mut ca, mut sa) = (g.c, g.s);
        for j in (0..=b).rev() {
            if j < b {
                ca += cnt[j];
                sa += sum[j];
            }
            let e = if j == b {
                g.hi
            } else {
                g.lo + width * j as f64 / b as f64
            };
            edges[j] = e;
            count[j] = ca;
            theta[j] = (sa - ca * e).max(0.0);
        }
        Some(Window {
            l1_at_lo: theta[0],
            edges,
            theta,
            count,
            zero_below: g.lo == 0.0,
        })
    }

    /// Bounds on `μ(θ)` clamped to the window: tangents below, chord above.
    fn bounds(&self, theta: f64) -> (f64, f64) {
        let b = self.edges.len() - 1;
        if theta >= self.theta[0] {
            let lo = if self.zero_below { 0.0 } else { self.edges[0] };
            return (lo, lo);
        }
        if theta <= self.theta[b] {
            return (self.edges[b], self.edges[b]);
        }
        let (mut lo, mut hi) = (0usize, b);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if self.theta[mid] > theta {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let j = lo;
        bucket_bounds(
            theta,
            (self.edges[j], self.edges[j + 1]),
            (self.theta[j], self.theta[j + 1]),
            (self.count[j], self.count[j + 1]),
        )
    }
}

/// The exact solve of the module docs, after the [`first_pass`] that gave `sketch`. `r` is
/// the radius in the scale `2^-exp` of the data (the magnitudes are multiplied by `2^-exp` as
/// they are read; the sketch was made with the same scale), with `0 < r < Σ m_g`. The clip
/// levels come back in that scale.
pub(crate) fn solve<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    sketch: &Sketch,
    exp: i32,
    goal: ExactGoal,
    ticker: &Ticker<'_>,
) -> Result<ExactClips, DataError> {
    let groups = Groups::new(plan, x)?;
    if sketch.maxes.len() != groups.groups || sketch.n != groups.n {
        return Err(DataError::Internal(format!(
            "a sketch of {} groups of {} for a plan with {} groups of {}",
            sketch.maxes.len(),
            sketch.n,
            groups.groups,
            groups.n
        )));
    }
    let scale = 2f64.powi(-exp);
    let tiles = groups.tiles();
    let top = sketch.l1.iter().fold(0.0f64, |m, &v| m.max(v));
    let (r, fixed) = match goal {
        ExactGoal::Radius(r) => (r, None),
        ExactGoal::Keep(k) => match keep_theta(&sketch.l1, k)? {
            Kept::Zero => return Ok(ExactClips::trivial(&sketch.maxes, false)),
            Kept::All => return Ok(ExactClips::trivial(&sketch.maxes, true)),
            Kept::Theta(t) => (f64::NAN, Some(t)),
        },
    };
    // A first bracket from the maxima and l1 norms alone: the groups whose l1 norm is at most
    // its lower end are zero, and need no histogram (at small radii, most of them).
    let mut own;
    let sketch = if sketch.hist.iter().all(|&h| h) {
        sketch
    } else {
        own = sketch.clone();
        let coarse = match fixed {
            Some(t) => t,
            None => search(|t| own.total(t, false), r, 0.0, top, true, 1e-9),
        };
        let wanted: Vec<bool> = own
            .l1
            .iter()
            .zip(&own.maxes)
            .map(|(&l1, &m)| l1 > coarse && m > 0.0)
            .collect();
        histograms(&groups, &tiles, &mut own, &wanted, scale, ticker);
        &own
    };
    let (theta_a, theta_b) = match fixed {
        Some(t) => (t, t),
        None => bracket(sketch, r, top),
    };
    let mut reduced: Vec<Reduced> = (0..groups.groups)
        .map(|g| {
            let (m, l1) = (sketch.maxes[g], sketch.l1[g]);
            if theta_a >= l1 || m == 0.0 {
                return Reduced::default();
            }
            let margin = 64.0 * f64::EPSILON * m;
            let (lo, _) = sketch.bounds(g, theta_b);
            let (_, hi) = sketch.bounds(g, theta_a);
            let lo = if theta_b >= l1 {
                0.0
            } else {
                (lo - margin).max(0.0)
            };
            Reduced {
                lo,
                hi: (hi + margin).min(m),
                live: true,
                pending: true,
                ..Reduced::default()
            }
        })
        .collect();
    #[cfg(test)]
    if tests::MISLEAD.with(std::cell::Cell::get) {
        // Windows above every clip level: each one misses, and the solve must notice.
        for (g, red) in reduced.iter_mut().enumerate().filter(|(_, r)| r.live) {
            red.lo = red.hi;
            red.hi = sketch.maxes[g];
        }
    }
    let mut passes = 2;
    let mut bracket = (theta_a, theta_b);
    loop {
        match groups.columns() {
            Some(columns) => columns.gather(&mut reduced, scale, ticker),
            None => gather(&groups, &tiles, &mut reduced, scale, ticker),
        }
        passes += 1;
        let gathered: usize = reduced.iter().map(|g| g.u.len()).sum();
        if fixed.is_none() {
            bracket = refine(&mut reduced, r, bracket);
        }
        reduced.par_iter_mut().for_each(Reduced::sort);
        let theta = match fixed {
            Some(t) => t,
            None => newton(&reduced, r, bracket.0),
        };
        let mut again = false;
        for (g, red) in reduced.iter_mut().enumerate() {
            let (m, l1) = (sketch.maxes[g], sketch.l1[g]);
            let wrong = if red.live {
                !red.holds(theta)
            } else {
                m > 0.0 && theta < l1
            };
            if wrong {
                // The window missed the group's clip level (a sample that misled, or a
                // rounding): gather the group whole and solve again.
                *red = Reduced {
                    lo: 0.0,
                    hi: m,
                    live: true,
                    pending: true,
                    ..Reduced::default()
                };
                again = true;
            }
        }
        if !again || passes > 6 {
            let mut clips: Vec<f64> = reduced
                .iter()
                .map(|red| match red.piece(theta) {
                    Piece::Zero { .. } => 0.0,
                    Piece::Linear { a, k, .. } => ((a - theta) / k).clamp(0.0, red.hi),
                })
                .collect();
            if fixed.is_some() {
                // A survivor whose clip level rounded to nothing has every entry above it.
                let nonzero: Vec<usize> = reduced
                    .iter()
                    .map(|red| (red.c as usize + red.u.len()).max(1))
                    .collect();
                keep_exactly(&mut clips, &sketch.l1, &nonzero, theta);
            }
            let radius = if fixed.is_some() {
                clips.iter().sum()
            } else {
                r
            };
            return Ok(ExactClips {
                theta,
                clips,
                gathered,
                passes,
                radius,
            });
        }
        bracket = (0.0, top);
    }
}

/// The exact solve's bracket `θ_a ≤ θ* ≤ θ_b` from the sketch's bounds (`r` in its scale).
fn bracket(sketch: &Sketch, r: f64, top: f64) -> (f64, f64) {
    // F_lo(0) = F_hi(0) = Σ m_g > r, and both are 0 at the largest group l1 norm. To 1e-6
    // of θ: the windows come out as narrow as at 1e-9 (the same entries gathered on 4096²
    // Gaussian data at 0.01, 0.1 and 0.5 × the norm), in fewer evaluations.
    let theta_a = search(|t| sketch.total(t, false), r, 0.0, top, true, 1e-6);
    // θ_b is close above θ_a (the bounds are a bucket apart at most): find a small bracket
    // first, growing the step from a millionth of θ_a.
    let upper = |t: f64| sketch.total(t, true);
    let mut step = theta_a.abs().max(f64::MIN_POSITIVE) * 1e-6;
    let mut lo_b = theta_a;
    let mut hi_b = (theta_a + step).min(top);
    while hi_b < top && upper(hi_b) > r {
        lo_b = hi_b;
        step *= 8.0;
        hi_b = (hi_b + step).min(top);
    }
    let theta_b = search(upper, r, lo_b, hi_b, false, 1e-6).max(theta_a);
    (theta_a, theta_b)
}

/// One group's magnitudes for the `l2 of …` solves: sorted in decreasing order, with prefix
/// sums (`p[0] = 0`).
struct Sorted {
    a: Vec<f64>,
    p: Vec<f64>,
}

impl Sorted {
    fn new(mut a: Vec<f64>) -> Sorted {
        a.sort_unstable_by(|x, y| y.total_cmp(x));
        let mut p = Vec::with_capacity(a.len() + 1);
        p.push(0.0);
        let mut acc = 0.0;
        for &v in &a {
            acc += v;
            p.push(acc);
        }
        Sorted { a, p }
    }

    /// The number `k ≥ 1` of entries above the root of the decreasing `g(t) = Θ(t) − w·t`
    /// (`Θ(t) = Σ (a − t)₊`): the last `k` with `g(a_k) < 0`, where
    /// `g(a_k) = P_{k−1} − (k − 1)·a_k − w·a_k` increases with `k`.
    fn above(&self, w: f64) -> usize {
        let n = self.a.len();
        let g = |k: usize| self.p[k - 1] - (k - 1) as f64 * self.a[k - 1] - w * self.a[k - 1];
        let (mut lo, mut hi) = (1usize, n);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if g(mid) < 0.0 {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// The group's radius at the multiplier `λ > 0`: for `l2 of linf` the clip level `t` with
    /// `Θ(t) = λ·t`, `t = P_k/(k + λ)`; for `l2 of l1` the l1 norm `Θ(ν) = ν/λ` of the soft
    /// threshold, `P_k/(1 + λ·k)`.
    fn radius(&self, linf: bool, lambda: f64) -> f64 {
        if self.a.first().is_none_or(|&m| m == 0.0) {
            return 0.0;
        }
        if linf {
            let k = self.above(lambda);
            self.p[k] / (k as f64 + lambda)
        } else {
            let k = self.above(1.0 / lambda);
            self.p[k] / (1.0 + lambda * k as f64)
        }
    }
}

/// The exact projection onto the `l2 of linf` (`linf = true`) or `l2 of l1` ball: every
/// innermost group's radius (its clip level, or the l1 norm its soft threshold leaves), for
/// `0 < r < ‖Σ_g ‖y_g‖²‖^½`, all in the scale `2^-exp` of the data (`exp` chosen by the caller
/// so that squared group sums cannot overflow).
///
/// With λ the multiplier of `Σ_g ‖x_g‖² ≤ R²`, the optimality conditions give each group's
/// radius as a decreasing function of λ (see [`Sorted::radius`] and
/// `multiproj_compiler::ExactMethod`), and λ is the root of `Σ_g radius_g(λ)² = r²`, found by
/// bisection to adjacent floats from `[0, λ_hi]` (`radius_g ≤ ‖y_g‖₁/λ` for linf and
/// `≤ ‖y_g‖₁/(1 + λ)` for l1 bound λ_hi). The radii returned are those at the upper end, where
/// the sum is at most `r²`. Every group is gathered and sorted: `O(N log n)` time and two
/// f64 copies of the data in memory.
pub(crate) fn solve_l2<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    linf: bool,
    exp: i32,
    r: f64,
    ticker: &Ticker<'_>,
) -> Result<(f64, Vec<f64>), DataError> {
    let groups = Groups::new(plan, x)?;
    let scale = 2f64.powi(-exp);
    let n = groups.n;
    let tiles = groups.tiles();
    let per_tile: Vec<Vec<Sorted>> = tiles
        .par_iter()
        .map_init(Vec::new, |buf, &tile| {
            let sorted = groups.with_tile(tile, buf, |data| {
                data.chunks_exact(n.max(1))
                    .take(tile.len)
                    .map(|row| Sorted::new(row.iter().map(|y| y.abs() * scale).collect()))
                    .collect::<Vec<_>>()
            });
            ticker.tick(tile.len * n);
            sorted
        })
        .collect();
    let all: Vec<Sorted> = per_tile.into_iter().flatten().collect();
    let sum_sq = |lambda: f64| -> f64 {
        let parts: Vec<f64> = all
            .par_chunks(SUM_CHUNK)
            .map(|c| {
                c.iter()
                    .map(|g| {
                        let v = g.radius(linf, lambda);
                        v * v
                    })
                    .sum::<f64>()
            })
            .collect();
        parts.iter().sum()
    };
    let l1_sq: f64 = all.iter().map(|g| g.p[g.a.len()] * g.p[g.a.len()]).sum();
    let target = r * r;
    let mut lo = 0.0f64;
    let mut hi = if linf {
        l1_sq.sqrt() / r
    } else {
        (l1_sq.sqrt() / r).max(1.0)
    };
    while sum_sq(hi) > target {
        hi *= 2.0;
    }
    for _ in 0..2100 {
        let mid = 0.5 * (lo + hi);
        if !(mid > lo && mid < hi) {
            break;
        }
        if sum_sq(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((hi, all.iter().map(|g| g.radius(linf, hi)).collect()))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ndarray::{ArrayD, IxDyn};

    use super::*;
    use crate::balls::l1_linf_exact_clips;
    use crate::rng::SplitMix64;

    thread_local! {
        /// Makes [`solve`] start from windows that miss every clip level.
        pub(super) static MISLEAD: Cell<bool> = const { Cell::new(false) };
    }

    fn plan(g: usize, n: usize) -> Plan {
        let spec = multiproj_grammar::parse("exact l1 over dim0 of linf over dim1").unwrap();
        let info = multiproj_compiler::TensorInfo::c_order(&[g, n], multiproj_compiler::DType::F64);
        multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
    }

    /// Windows that miss are caught by the final check, gathered whole, and the answer is
    /// still exact: the safety net runs and agrees with the oracle.
    #[test]
    fn misleading_windows_are_caught() {
        let (g, n) = (30, 203);
        let mut rng = SplitMix64::new(7);
        let y: Vec<f64> = (0..g * n).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
        // The groups as rows, and as the columns of the transposed matrix (read in memory
        // order, [`Columns`]).
        let rows = ArrayD::from_shape_vec(IxDyn(&[g, n]), y.clone()).unwrap();
        let columns = rows.t().as_standard_layout().into_owned();
        let column_plan = {
            let spec = multiproj_grammar::parse("exact l1 over dim1 of linf over dim0").unwrap();
            let info =
                multiproj_compiler::TensorInfo::c_order(&[n, g], multiproj_compiler::DType::F64);
            multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
        };
        for (p, x) in [(plan(g, n), rows), (column_plan, columns)] {
            let by_columns = Groups::new(&p, &x.view()).unwrap().columns().is_some();
            assert_eq!(by_columns, x.shape()[0] == n);
            let sketch = first_pass(&p, &x.view(), 1.0, &Ticker::none()).unwrap();
            let norm: f64 = sketch.maxes.iter().sum();
            for frac in [0.05, 0.3, 0.7] {
                let r = frac * norm;
                let (theta, want) = l1_linf_exact_clips(&y, g, n, r).unwrap();
                for mislead in [false, true] {
                    MISLEAD.with(|m| m.set(mislead));
                    let got = solve(
                        &p,
                        &x.view(),
                        &sketch,
                        0,
                        ExactGoal::Radius(r),
                        &Ticker::none(),
                    )
                    .unwrap();
                    MISLEAD.with(|m| m.set(false));
                    assert_eq!(got.passes > 3, mislead, "{got:?}");
                    assert!(
                        (got.theta - theta).abs() <= 1e-12 * theta,
                        "columns {by_columns}: {} vs {theta}",
                        got.theta
                    );
                    for (a, b) in got.clips.iter().zip(&want) {
                        assert!((a - b).abs() <= 1e-12 * norm, "{a} vs {b}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod sketch_tests {
    use ndarray::{ArrayD, IxDyn};

    use super::*;
    use crate::rng::SplitMix64;

    /// Makes the `i`-th entry of a test group.
    type Kind = Box<dyn Fn(&mut SplitMix64, usize) -> f64>;

    /// `μ(θ)` of one group, the plain way: sorted magnitudes and prefix sums.
    fn clip_level(a: &[f64], theta: f64) -> f64 {
        let mut a: Vec<f64> = a.iter().map(|v| v.abs()).collect();
        a.sort_by(|x, y| y.total_cmp(x));
        if theta >= a.iter().sum::<f64>() {
            return 0.0;
        }
        let mut prefix = 0.0;
        for k in 0..a.len() {
            prefix += a[k];
            let mu = (prefix - theta) / (k + 1) as f64;
            let next = a.get(k + 1).copied().unwrap_or(0.0);
            if mu >= next {
                return mu;
            }
        }
        0.0
    }

    /// The first pass over `rows` as the groups: the rows of a C-order matrix, or (`columns`)
    /// the columns of its transpose, which the first pass reads in memory order.
    fn sketch_of(rows: &[Vec<f64>], columns: bool) -> Sketch {
        let (g, n) = (rows.len(), rows[0].len());
        let (text, shape) = if columns {
            ("exact l1 over dim1 of linf over dim0", [n, g])
        } else {
            ("exact l1 over dim0 of linf over dim1", [g, n])
        };
        let spec = multiproj_grammar::parse(text).unwrap();
        let info = multiproj_compiler::TensorInfo::c_order(&shape, multiproj_compiler::DType::F64);
        let plan = multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap());
        let x = ArrayD::from_shape_vec(IxDyn(&[g, n]), rows.concat()).unwrap();
        let x = if columns {
            x.t().as_standard_layout().into_owned()
        } else {
            x
        };
        let view = x.view();
        let groups = Groups::new(&plan, &view).unwrap();
        assert_eq!(groups.columns().is_some(), columns);
        first_pass(&plan, &view, 1.0, &Ticker::none()).unwrap()
    }

    /// The first pass's bounds hold every group's clip level, at every θ, for data made to sit
    /// on the histogram's edges (integers, ties, zeros), across the quantized layouts (groups
    /// below 2^13, 2^16 and 2^20 entries), for groups as rows and as columns.
    #[test]
    fn the_bounds_hold_the_clip_level() {
        let mut rng = SplitMix64::new(11);
        for n in [5, 64, 300, 8191, 8192, 70_000] {
            let kinds: Vec<Kind> = vec![
                Box::new(|r, _| r.next_f64() * 2.0 - 1.0),
                // Integers up to 64: every one on an edge of the 64 buckets.
                Box::new(|r, _| (r.next_f64() * 65.0).floor()),
                Box::new(|r, i| if i % 3 == 0 { 0.0 } else { r.next_f64() }),
                Box::new(|r, _| 2f64.powi(-((r.next_f64() * 40.0) as i32))),
                Box::new(|_, _| 0.25),
            ];
            let rows: Vec<Vec<f64>> = kinds
                .iter()
                .map(|kind| (0..n).map(|i| kind(&mut rng, i)).collect())
                .collect();
            for columns in [false, true] {
                let sketch = sketch_of(&rows, columns);
                assert_eq!(
                    sketch.err.iter().any(|&e| e > 0.0),
                    Quant::new(n, buckets_for(n)).is_some()
                );
                for (g, row) in rows.iter().enumerate() {
                    let s: f64 = row.iter().map(|v| v.abs()).sum();
                    let m = sketch.maxes[g];
                    for k in 0..40 {
                        let theta = s * (k as f64 / 40.0).powi(3);
                        let mu = clip_level(row, theta);
                        let (low, high) = sketch.bounds(g, theta);
                        let tol = 1e-12 * m;
                        assert!(
                            low <= mu + tol && mu <= high + tol,
                            "n {n}, columns {columns}, group {g}, θ {theta}: μ {mu} outside [{low}, {high}]"
                        );
                    }
                }
            }
        }
    }
}
