//! Quantized histograms of magnitudes on `[0, m]` and the bounds they give on a soft
//! threshold: shared by the exact l1,∞ solver (`crate::exact`) and the l1 threshold search
//! ([`super::l1`]).

/// Buckets of a group of `n` entries: 64, fewer for small groups (about 4 entries a bucket or
/// more), a power of two.
pub(crate) fn buckets_for(n: usize) -> usize {
    let b = (n / 4).clamp(2, 64);
    1 << b.ilog2()
}

/// The layout of a quantized histogram ([`histogram_quantized`]) of a group of `n` entries.
///
/// Every magnitude `v` of a group whose maximum is `m` is rounded to the integer
/// `q = round(v·2^qb/m)` (at most `2^qb`), its bucket is `q >> shift`, and each bucket adds
/// up `q + 2^count_shift` in one 64-bit integer: the count of its entries in the high bits,
/// the sum of their `q` in the low ones. One integer added per entry, where the plain
/// histogram adds a count and a float (measured: about half the time per entry). The
/// histogram is exact for the *rounded* data `v' = q·δ` (`δ = m·2^-qb`, integers all the
/// way), and `|v − v'| ≤ δ/2` (to rounding) for every entry, so `|Θ(μ) − Θ'(μ)| ≤ n·δ`
/// for every `μ` ([`Sketch::bounds`] widens by that).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Quant {
    pub(crate) qb: u32,
    pub(crate) shift: u32,
}

impl Quant {
    /// The layout for `n` entries in `b` buckets: with `n < 2^cb`, counts take the top `cb`
    /// bits, and a bucket's sum of at most `n` values up to `2^qb` fits below them when
    /// `qb ≤ 64 − 2·cb`. Three layouts (`cb` = 13, 16, 20), so that the kernel's shifts are
    /// constants ([`histogram_quantized`]). `None` for groups of `2^20` entries or more,
    /// where `qb` would drop below 24 bits: they keep the plain histogram.
    pub(crate) fn new(n: usize, b: usize) -> Option<Quant> {
        let cb = [13, 16, 20].into_iter().find(|&cb| n < 1usize << cb)?;
        let qb = 64 - 2 * cb;
        Some(Quant {
            qb,
            shift: qb - b.trailing_zeros(),
        })
    }
}

/// Bounds on `μ(θ)` inside the bucket `[e0, e1]` that holds it, where `Θ(e0) = t0 ≥ θ ≥
/// t1 = Θ(e1)` and `c0`, `c1` count the entries at or above each edge: `Θ` is convex, so it
/// lies above its tangents at the two edges (slopes `−c0`, `−c1`), which bound `μ` from below,
/// and below the chord, which bounds it from above.
pub(crate) fn bucket_bounds(
    theta: f64,
    (e0, e1): (f64, f64),
    (t0, t1): (f64, f64),
    (c0, c1): (f64, f64),
) -> (f64, f64) {
    let mut low = e0;
    if c0 > 0.0 {
        low = low.max(e0 + (t0 - theta) / c0);
    }
    if c1 > 0.0 {
        low = low.max(e1 - (theta - t1) / c1);
    }
    let high = if t0 > t1 {
        e0 + (t0 - theta) / (t0 - t1) * (e1 - e0)
    } else {
        e1
    };
    (low.clamp(e0, e1), high.clamp(e0, e1))
}

/// One group's quantized histogram ([`Quant`]), for its maximum `m` (times `scale`, as the
/// magnitudes are read): per bucket `j ≤ b`, the count of the rounded magnitudes `q` in it
/// and the sum of their `q`, into `cnt` and `qsum`.
pub(crate) fn histogram_quantized(
    row: &[f64],
    scale: f64,
    m: f64,
    quant: Quant,
    (cnt, qsum): (&mut [u64], &mut [u64]),
) {
    match quant.qb {
        38 => histogram_packed::<38>(row, scale, m, (cnt, qsum)),
        32 => histogram_packed::<32>(row, scale, m, (cnt, qsum)),
        24 => histogram_packed::<24>(row, scale, m, (cnt, qsum)),
        _ => unreachable!("Quant::new makes three layouts"),
    }
}

/// [`histogram_quantized`] for `qb = QB` (and `count_shift = 64 − (64 − QB)/2`), in 64
/// buckets (`q >> (QB − 6)`, the maximum in bucket 64), merged at the end into the `b ≤ 64`
/// of `cnt`. Four sub-histograms, taken in turn, keep consecutive entries of one bucket
/// from waiting on each other.
fn histogram_packed<const QB: u32>(
    row: &[f64],
    scale: f64,
    m: f64,
    (cnt, qsum): (&mut [u64], &mut [u64]),
) {
    const BLOCK: usize = 64;
    const WAYS: usize = 4;
    // `x + 2^52` holds `round(x)` in its low mantissa bits for `0 ≤ x < 2^52`.
    const MAGIC: f64 = 4_503_599_627_370_496.0;
    let count_shift: u32 = 64 - (64 - QB) / 2;
    cnt.fill(0);
    qsum.fill(0);
    if !m.is_finite() || m == 0.0 {
        return;
    }
    // The buckets of each sub-histogram: 65 used, 128 so that a mask keeps the index in
    // bounds without a check.
    let mut acc = [[0u64; 128]; WAYS];
    let inv = 2f64.powi(QB as i32) / m;
    // Subtracting the bits of `2^52` less one count leaves `round(x) + 2^count_shift`.
    let offset = MAGIC.to_bits().wrapping_sub(1u64 << count_shift);
    let packed = |y: f64| {
        (y.abs() * scale * inv + MAGIC)
            .to_bits()
            .wrapping_sub(offset)
    };
    let low = (1u64 << count_shift) - 1;
    let bucket = |v: u64| ((v & low) >> (QB - 6)) as usize & 127;
    let mut q = [0u64; BLOCK];
    let mut blocks = row.chunks_exact(BLOCK);
    for block in &mut blocks {
        for (d, &y) in q.iter_mut().zip(block) {
            *d = packed(y);
        }
        for quad in q.chunks_exact(WAYS) {
            for (way, &v) in acc.iter_mut().zip(quad) {
                way[bucket(v)] += v;
            }
        }
    }
    for &y in blocks.remainder() {
        let v = packed(y);
        acc[0][bucket(v)] += v;
    }
    let merge = 6 - (cnt.len() - 1).trailing_zeros();
    for i in 0..=64 {
        let t = acc[0][i] + acc[1][i] + acc[2][i] + acc[3][i];
        cnt[i >> merge] += t >> count_shift;
        qsum[i >> merge] += t & low;
    }
}

/// A group's counts and `Θ'` at the edges of its quantized histogram (`cnt`, `qsum`): the
/// suffix sums over the buckets, in integers, so `Θ'(e_j) = (Q_j − C_j·j·2^shift)·δ` is
/// exact (every integer here is below `2^53`).
pub(crate) fn edges_quantized(
    (cnt, qsum): (&[u64], &[u64]),
    m: f64,
    quant: Quant,
    out_c: &mut [f64],
    out_t: &mut [f64],
) {
    let b = cnt.len() - 1;
    let delta = m * 2f64.powi(-(quant.qb as i32));
    let (mut ca, mut qa) = (0u64, 0u64);
    for j in (0..=b).rev() {
        ca += cnt[j];
        qa += qsum[j];
        out_c[j] = ca as f64;
        out_t[j] = (qa - ca * ((j as u64) << quant.shift)) as f64 * delta;
    }
}
