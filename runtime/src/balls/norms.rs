//! The l1, l2 and l∞ norms of a vector, and the projections onto the l2 and l∞ balls (a
//! scaling and a clip; the l1 ball needs a threshold search, in `l1`).

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
