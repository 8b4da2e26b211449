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
//! **The method** (after the read pass that gave the group maxima `m_g`, which the multi-level
//! projection makes too):
//! 1. *Histogram pass.* Each group's magnitudes go into `B ≤ 64` buckets of equal width on
//!    `[0, m_g]`, with the count and sum of each. At every bucket edge `e` the histogram gives
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
//! Work: two reads of the data besides the multi-level projection's reduce and apply passes, a
//! few operations per entry in the histogram pass (in cache: groups are copied tile by tile),
//! and `O(G·B)` for the bracket plus `O(K log K)` for the `K` gathered entries in the solve.
//! Everything per group runs in parallel; everything summed over groups is summed in a fixed
//! order, so the result does not depend on the number of threads.

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, IxDyn, Slice, Zip};
use rayon::prelude::*;

use multiproj_compiler::Plan;

use crate::element::Element;
use crate::error::DataError;
use crate::progress::Ticker;

/// Elements per tile: groups are copied (as f64 magnitudes) a tile at a time, so that every
/// per-group loop runs in cache.
const TILE_ELEMENTS: usize = 1 << 15;

/// Groups per chunk of the parallel sums over groups (a fixed size, so that the sums do not
/// depend on the number of threads).
const SUM_CHUNK: usize = 1024;

/// What the exact solve found, in the scale of the magnitudes it was handed (see [`solve`]).
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
}

/// Buckets of a group of `n` entries: 64, fewer for small groups (about 4 entries a bucket).
fn buckets_for(n: usize) -> usize {
    (n / 4).clamp(1, 64)
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
        Ok(Groups {
            view,
            outer,
            groups: plan.groups(),
            n,
            last,
            per_tile: (TILE_ELEMENTS / n.max(1)).max(1),
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
        let shape = v.shape().to_vec();
        let mut dst = ArrayViewMutD::from_shape(IxDyn(&shape), &mut buf[..])
            .expect("the buffer holds the tile");
        Zip::from(&mut dst)
            .and(&v)
            .for_each(|d, &s| *d = s.to_f64());
        f(buf)
    }
}

/// Splits `data` into consecutive pieces of `tile.len · per_group` entries, one per tile.
fn split_by_tiles<'s, U>(
    mut data: &'s mut [U],
    tiles: &[Tile],
    per_group: usize,
) -> Vec<&'s mut [U]> {
    let mut out = Vec::with_capacity(tiles.len());
    for t in tiles {
        let (head, tail) = data.split_at_mut(t.len * per_group);
        out.push(head);
        data = tail;
    }
    out
}

/// Per group: the histogram of its magnitudes on `[0, m_g]`, as suffix counts and sums (`C_j`,
/// `S_j` = the entries in buckets `j…B-1`), so that `Θ_g(e_j) = S_j − C_j·e_j`.
struct Histograms {
    b: usize,
    /// `G × (b + 1)`: `C_0 … C_b` (`C_b = 0`).
    counts: Vec<f64>,
    /// `G × (b + 1)`: `S_0 … S_b` (`S_0` the group's l1 norm, `S_b = 0`).
    sums: Vec<f64>,
    maxes: Vec<f64>,
}

impl Histograms {
    fn l1(&self, g: usize) -> f64 {
        self.sums[g * (self.b + 1)]
    }

    /// Lower and upper bounds on `μ_g(θ)`.
    fn bounds(&self, g: usize, theta: f64) -> (f64, f64) {
        let b = self.b;
        let c = &self.counts[g * (b + 1)..(g + 1) * (b + 1)];
        let s = &self.sums[g * (b + 1)..(g + 1) * (b + 1)];
        let m = self.maxes[g];
        if theta >= s[0] || m == 0.0 {
            return (0.0, 0.0);
        }
        let edge = |j: usize| if j == b { m } else { j as f64 * m / b as f64 };
        let big_theta = |j: usize| (s[j] - c[j] * edge(j)).max(0.0);
        // The bucket j with Θ(e_{j+1}) ≤ θ < Θ(e_j): Θ(e_j) decreases with j, Θ(e_0) = s[0] > θ.
        let (mut lo, mut hi) = (0usize, b);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if big_theta(mid) > theta {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let j = lo;
        let (e0, e1) = (edge(j), edge(j + 1));
        let (t0, t1) = (big_theta(j), big_theta(j + 1));
        let mut low = e0;
        if c[j] > 0.0 {
            low = low.max(e0 + (t0 - theta) / c[j]);
        }
        if c[j + 1] > 0.0 {
            low = low.max(e1 - (theta - t1) / c[j + 1]);
        }
        let high = if t0 > t1 {
            e0 + (t0 - theta) / (t0 - t1) * (e1 - e0)
        } else {
            e1
        };
        (low.clamp(e0, e1), high.clamp(e0, e1))
    }

    /// `Σ_g` of the lower (`upper = false`) or upper bounds at `θ`, in a fixed order.
    fn total(&self, theta: f64, upper: bool) -> f64 {
        let groups = self.maxes.len();
        let chunks: Vec<f64> = (0..groups.div_ceil(SUM_CHUNK))
            .into_par_iter()
            .map(|c| {
                (c * SUM_CHUNK..((c + 1) * SUM_CHUNK).min(groups))
                    .map(|g| {
                        let (l, h) = self.bounds(g, theta);
                        if upper { h } else { l }
                    })
                    .sum::<f64>()
            })
            .collect();
        chunks.iter().sum()
    }
}

/// The histogram pass.
fn histograms<T: Element>(
    groups: &Groups<'_, T>,
    tiles: &[Tile],
    maxes: &[f64],
    scale: f64,
    ticker: &Ticker<'_>,
) -> Histograms {
    let n = groups.n;
    let b = buckets_for(n);
    let g_total = groups.groups;
    let mut counts = vec![0.0f64; g_total * (b + 1)];
    let mut sums = vec![0.0f64; g_total * (b + 1)];
    let cs = split_by_tiles(&mut counts, tiles, b + 1);
    let ss = split_by_tiles(&mut sums, tiles, b + 1);
    tiles
        .par_iter()
        .zip(cs.into_par_iter().zip(ss.into_par_iter()))
        .for_each_init(
            || (Vec::new(), vec![0u64; b], vec![0.0f64; b]),
            |(buf, cnt, sm), (&tile, (c_out, s_out))| {
                groups.with_tile(tile, buf, |data| {
                    for t in 0..tile.len {
                        let g = tile.first + t;
                        let m = maxes[g];
                        let row = &data[t * n..(t + 1) * n];
                        let c_out = &mut c_out[t * (b + 1)..(t + 1) * (b + 1)];
                        let s_out = &mut s_out[t * (b + 1)..(t + 1) * (b + 1)];
                        if m == 0.0 {
                            continue;
                        }
                        cnt.fill(0);
                        sm.fill(0.0);
                        let inv = b as f64 / m;
                        for &y in row {
                            let v = y.abs() * scale;
                            let j = ((v * inv) as usize).min(b - 1);
                            cnt[j] += 1;
                            sm[j] += v;
                        }
                        let (mut ca, mut sa) = (0u64, 0.0f64);
                        for j in (0..b).rev() {
                            ca += cnt[j];
                            sa += sm[j];
                            c_out[j] = ca as f64;
                            s_out[j] = sa;
                        }
                    }
                });
                ticker.tick(tile.len * n);
            },
        );
    Histograms {
        b,
        counts,
        sums,
        maxes: maxes.to_vec(),
    }
}

/// The largest `θ` (to about 1e-11 relative) with `f(θ) ≥ r` (`lower`), or the smallest with
/// `f(θ) ≤ r`, for a continuous non-increasing `f` with `f(lo) ≥ r ≥ f(hi)`: regula falsi with
/// the Illinois modification, falling back to bisection.
fn search(f: impl Fn(f64) -> f64, r: f64, mut lo: f64, mut hi: f64, lower: bool) -> f64 {
    let (mut f_lo, mut f_hi) = (f(lo) - r, f(hi) - r);
    let mut side = 0i8;
    let mut evals = 0;
    for i in 0..200 {
        evals += 1;
        if hi - lo <= 1e-11 * hi.abs() || f_lo == 0.0 && !lower || f_hi == 0.0 && lower {
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
    if std::env::var_os("MP_DEBUG").is_some() {
        eprintln!("search evals {evals}");
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
}

/// A group's piece at `θ`: on it `μ_g = (a − θ)/k`, for `θ` up to `right` (its next breakpoint).
#[derive(Clone, Copy, Debug)]
enum Piece {
    /// `μ_g = 0` from `θ` on.
    Zero,
    Linear {
        a: f64,
        k: f64,
        right: f64,
    },
}

impl Reduced {
    /// `Θ_g` at the gathered entry `i` (1-based), at `hi` (`i = 0`) and at `lo` (`i = K+1`).
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

    /// The piece at `θ`, for `θ` at least `Θ_g(hi)` (below it the piece for `μ > hi` is
    /// extrapolated, and the final check catches it).
    fn piece(&self, theta: f64) -> Piece {
        if !self.live {
            return Piece::Zero;
        }
        let k = self.u.len();
        let at_lo = self.big_theta(k + 1);
        if theta >= at_lo && self.lo == 0.0 {
            return Piece::Zero;
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
        let right = if i < k { self.big_theta(i + 1) } else { at_lo };
        let kk = self.c + i as f64;
        if kk == 0.0 {
            // Above every gathered entry and nothing above hi: μ = hi is the group's max.
            return Piece::Linear {
                a: self.s + self.p[i],
                k: 1.0,
                right,
            };
        }
        Piece::Linear {
            a: self.s + self.p[i],
            k: kk,
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
            if part.iter().any(|r| r.live) {
                groups.with_tile(tile, buf, |data| {
                    for (t, r) in part.iter_mut().enumerate() {
                        if !r.live {
                            continue;
                        }
                        let row = &data[t * n..(t + 1) * n];
                        (r.c, r.s) = gather_group(row, scale, r.lo, r.hi, &mut r.u);
                        r.u.sort_unstable_by(|a, b| b.total_cmp(a));
                        r.p.clear();
                        r.p.push(0.0);
                        let mut acc = 0.0;
                        for &v in &r.u {
                            acc += v;
                            r.p.push(acc);
                        }
                    }
                });
            }
            ticker.tick(tile.len * n);
        });
}

/// One group of the gather pass: the count and sum of the magnitudes (times `scale`) above
/// `hi`, and those in `(lo, hi]` pushed onto `u`. Four lanes: no chain of dependent additions,
/// and no branch but the rare one of an entry in `(lo, hi]`.
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

/// `Σ_g` over the live groups' pieces at `θ`: `(Σ a/k, Σ 1/k, min right)`, in a fixed order.
fn pieces_at(reduced: &[Reduced], theta: f64) -> (f64, f64, f64) {
    let chunks: Vec<(f64, f64, f64)> = reduced
        .par_chunks(SUM_CHUNK)
        .map(|chunk| {
            let (mut num, mut den, mut right) = (0.0, 0.0, f64::INFINITY);
            for r in chunk {
                if let Piece::Linear { a, k, right: rt } = r.piece(theta) {
                    num += a / k;
                    den += 1.0 / k;
                    right = f64::min(right, rt);
                }
            }
            (num, den, right)
        })
        .collect();
    chunks
        .iter()
        .fold((0.0, 0.0, f64::INFINITY), |(n, d, r), &(a, b, c)| {
            (n + a, d + b, r.min(c))
        })
}

/// Newton's method on `F` from `θ_a` (where `F ≥ r`): see the module docs.
fn newton(reduced: &[Reduced], r: f64, theta_a: f64, theta_b: f64) -> f64 {
    let mut theta = theta_a;
    for _ in 0..10_000 {
        let (num, den, right) = pieces_at(reduced, theta);
        if den == 0.0 {
            return theta;
        }
        let next = (num - r) / den;
        if next <= right || next <= theta || next.is_nan() {
            // The root of this piece is on it: θ*.
            return next.max(theta).min(theta_b.max(theta));
        }
        // From below, a Newton step on a convex decreasing F never passes θ*.
        theta = next;
    }
    theta
}

/// The exact solve of the module docs. `maxes` are the group maxima `m_g` and `r` the radius,
/// both in the scale `2^-exp` of the data (`exp` from the aggregates: the magnitudes are
/// multiplied by `2^-exp` as they are read), with `0 < r < Σ m_g`. The clip levels come back in
/// that scale.
pub(crate) fn solve<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    maxes: &[f64],
    exp: i32,
    r: f64,
    ticker: &Ticker<'_>,
) -> Result<ExactClips, DataError> {
    let groups = Groups::new(plan, x)?;
    if maxes.len() != groups.groups {
        return Err(DataError::Internal(format!(
            "{} group maxima for a plan with {} groups",
            maxes.len(),
            groups.groups
        )));
    }
    let scale = 2f64.powi(-exp);
    let tiles = groups.tiles();
    let t0 = std::time::Instant::now();
    let hist = histograms(&groups, &tiles, maxes, scale, ticker);
    let t1 = std::time::Instant::now();
    let top = (0..groups.groups)
        .map(|g| hist.l1(g))
        .fold(0.0f64, f64::max);
    // F_lo(0) = F_hi(0) = Σ m_g > r, and both are 0 at the largest group l1 norm.
    let theta_a = search(|t| hist.total(t, false), r, 0.0, top, true);
    let theta_b = search(|t| hist.total(t, true), r, 0.0, top, false).max(theta_a);
    let mut reduced: Vec<Reduced> = (0..groups.groups)
        .map(|g| {
            let m = hist.maxes[g];
            if theta_a >= hist.l1(g) || m == 0.0 {
                return Reduced::default();
            }
            let margin = 64.0 * f64::EPSILON * m;
            let (lo, _) = hist.bounds(g, theta_b);
            let (_, hi) = hist.bounds(g, theta_a);
            let lo = if theta_b >= hist.l1(g) {
                0.0
            } else {
                (lo - margin).max(0.0)
            };
            Reduced {
                lo,
                hi: (hi + margin).min(m),
                live: true,
                ..Reduced::default()
            }
        })
        .collect();
    let mut passes = 1;
    let t2 = std::time::Instant::now();
    loop {
        gather(&groups, &tiles, &mut reduced, scale, ticker);
        let t3 = std::time::Instant::now();
        passes += 1;
        let theta = newton(&reduced, r, theta_a, theta_b);
        if std::env::var_os("MP_DEBUG").is_some() {
            eprintln!(
                "hist {:?} bracket {:?} gather {:?} newton {:?} K {} live {} θ {theta_a} {theta_b}",
                t1 - t0,
                t2 - t1,
                t3 - t2,
                t3.elapsed(),
                reduced.iter().map(|r| r.u.len()).sum::<usize>(),
                reduced.iter().filter(|r| r.live).count()
            );
        }
        let bad: Vec<usize> = (0..reduced.len())
            .filter(|&g| !reduced[g].holds(theta))
            .collect();
        let dead_but_active = (0..reduced.len())
            .any(|g| !reduced[g].live && theta < hist.l1(g) && hist.maxes[g] > 0.0);
        if (bad.is_empty() && !dead_but_active) || passes > 4 {
            let clips = reduced
                .iter()
                .map(|red| match red.piece(theta) {
                    Piece::Zero => 0.0,
                    Piece::Linear { a, k, .. } => ((a - theta) / k).clamp(0.0, red.hi),
                })
                .collect();
            return Ok(ExactClips {
                theta,
                clips,
                gathered: reduced.iter().map(|red| red.u.len()).sum(),
                passes,
            });
        }
        // A rounding made some interval too narrow: gather those groups whole and solve again.
        for (g, red) in reduced.iter_mut().enumerate() {
            let m = hist.maxes[g];
            if bad.contains(&g) || (!red.live && theta < hist.l1(g) && m > 0.0) {
                *red = Reduced {
                    lo: 0.0,
                    hi: m,
                    live: true,
                    ..Reduced::default()
                };
            }
        }
    }
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
