//! The exact Euclidean projection onto the l1,∞ ball, by a plain, obviously correct method: the
//! oracle a fast exact algorithm will be tested against (issue 11), and the optimality
//! certificate every exact result is checked with.
//!
//! The ball: `Σ_g max_j |x_gj| ≤ R` over groups `g` (rows of a row-major matrix). The projection
//! `x` of `y` has one multiplier `θ ≥ 0` and a clip level `μ_g ≥ 0` per group with
//! - `x_gj = sign(y_gj)·min(|y_gj|, μ_g)`,
//! - `Σ_j (|y_gj| − μ_g)₊ = θ` for every group with `μ_g > 0`,
//! - `μ_g = 0` exactly for the groups with `‖y_g‖₁ ≤ θ`,
//! - `Σ_g μ_g = R` (when `y` is outside the ball).
//!
//! These are the KKT conditions of the (strictly convex) problem, so they characterize the
//! projection. For a fixed `θ`, each group's `μ_g(θ)` is determined — the `μ` with
//! `Σ_j (|y_gj| − μ)₊ = θ`, or 0 when `‖y_g‖₁ ≤ θ` — and with `a` the group's magnitudes sorted in
//! decreasing order and `P_k = a_1 + … + a_k` it is `μ = (P_k − θ)/k` on the interval of `θ`
//! where `a_{k+1} ≤ μ ≤ a_k`, whose ends are the breakpoints `B_k = P_k − k·a_{k+1}` (with
//! `a_{n+1} = 0`, so `B_n = ‖y_g‖₁`). `S(θ) = Σ_g μ_g(θ)` is continuous, piecewise linear and
//! non-increasing, from the norm at `θ = 0` to 0. The oracle evaluates `S` at every breakpoint of
//! every group (sorted), finds the piece where it crosses `R`, and solves the linear equation on
//! that piece: `O(N log N)` for the sort plus `O(N·G·log n)` for the evaluations — fine for the
//! small matrices of the tests, and not meant for anything else.

/// One group's magnitudes in decreasing order and their prefix sums.
struct Group {
    sorted: Vec<f64>,
    /// `prefix[k] = a_1 + … + a_k`, `prefix[0] = 0`.
    prefix: Vec<f64>,
}

impl Group {
    fn new(values: &[f64]) -> Group {
        let mut sorted: Vec<f64> = values.iter().map(|v| v.abs()).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let mut prefix = Vec::with_capacity(sorted.len() + 1);
        prefix.push(0.0);
        for &a in &sorted {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + a);
        }
        Group { sorted, prefix }
    }

    fn a(&self, k: usize) -> f64 {
        // a_k, 1-based; 0 past the end.
        if k == 0 {
            f64::INFINITY
        } else {
            self.sorted.get(k - 1).copied().unwrap_or(0.0)
        }
    }

    /// The breakpoints `B_k`, `k = 0 … n` (`B_0 = 0`, `B_n = ‖y_g‖₁`), non-decreasing.
    fn breakpoints(&self) -> impl Iterator<Item = f64> + '_ {
        (0..=self.sorted.len()).map(|k| self.prefix[k] - k as f64 * self.a(k + 1))
    }

    /// The `k` of the piece holding `θ` (`0 < k ≤ n`), or `None` when `θ ≥ ‖y_g‖₁` (`μ = 0`).
    fn piece(&self, theta: f64) -> Option<usize> {
        let n = self.sorted.len();
        if n == 0 || theta >= self.prefix[n] {
            return None;
        }
        // The smallest k ≥ 1 with B_k ≥ θ.
        (1..=n).find(|&k| self.prefix[k] - k as f64 * self.a(k + 1) >= theta)
    }

    /// `μ_g(θ)`.
    fn mu(&self, theta: f64) -> f64 {
        match self.piece(theta) {
            None => 0.0,
            Some(k) => ((self.prefix[k] - theta) / k as f64).max(0.0),
        }
    }
}

/// The multiplier `θ` and clip levels `μ_g` of the exact Euclidean projection of the row-major
/// matrix `y` (`groups` rows of `group_len`) onto the l1,∞ ball of radius `r`
/// (`Σ_rows max |x| ≤ r`), by the breakpoint method above; `None` when `y` is inside the ball
/// (the projection is `y`). At `r = 0`, `θ` is infinite and every `μ_g` is 0. `r` must be
/// finite and non-negative, `y` finite.
pub fn l1_linf_exact_clips(
    y: &[f64],
    groups: usize,
    group_len: usize,
    r: f64,
) -> Option<(f64, Vec<f64>)> {
    assert_eq!(y.len(), groups * group_len, "a {groups}×{group_len} matrix");
    assert!(r.is_finite() && r >= 0.0, "radius {r}");
    let rows: Vec<Group> = y
        .chunks_exact(group_len.max(1))
        .take(groups)
        .map(Group::new)
        .collect();
    let norm: f64 = rows.iter().map(|g| g.a(1)).sum();
    if norm <= r {
        return None;
    }
    if r == 0.0 || group_len == 0 {
        return Some((f64::INFINITY, vec![0.0; groups]));
    }
    let s = |theta: f64| rows.iter().map(|g| g.mu(theta)).sum::<f64>();
    let mut points: Vec<f64> = rows.iter().flat_map(|g| g.breakpoints()).collect();
    points.sort_by(f64::total_cmp);
    points.dedup();
    // S(points[0] = 0) = norm > r and S(last) = 0 ≤ r: find the piece where S crosses r.
    let mut lo = 0;
    let mut hi = points.len() - 1;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if s(points[mid]) > r {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // On (points[lo], points[hi]) every group's formula is fixed: solve Σ (P_k − θ)/k = r.
    let inside = 0.5 * (points[lo] + points[hi]);
    let (mut num, mut den) = (0.0, 0.0);
    for g in &rows {
        if let Some(k) = g.piece(inside) {
            num += g.prefix[k] / k as f64;
            den += 1.0 / k as f64;
        }
    }
    let theta = if den > 0.0 {
        ((num - r) / den).clamp(points[lo], points[hi])
    } else {
        points[hi]
    };
    Some((theta, rows.iter().map(|g| g.mu(theta)).collect()))
}

/// The clip levels `μ_g(θ)` of the rows of `y` at a given multiplier `θ` (0 for rows with
/// `‖y_g‖₁ ≤ θ`): the projection onto the l1,∞ ball of radius `Σ_g μ_g(θ)`.
pub fn l1_linf_clips_at(y: &[f64], groups: usize, group_len: usize, theta: f64) -> Vec<f64> {
    assert_eq!(y.len(), groups * group_len, "a {groups}×{group_len} matrix");
    y.chunks_exact(group_len.max(1))
        .take(groups)
        .map(|row| Group::new(row).mu(theta))
        .collect()
}

/// The exact Euclidean projection of the row-major matrix `y` (`groups` rows of `group_len`)
/// onto the l1,∞ ball of radius `r` (`Σ_rows max |x| ≤ r`), by the breakpoint method above
/// ([`l1_linf_exact_clips`], then the clip). `r` must be finite and non-negative, `y` finite.
pub fn project_l1_linf_exact(y: &[f64], groups: usize, group_len: usize, r: f64) -> Vec<f64> {
    let Some((_, mus)) = l1_linf_exact_clips(y, groups, group_len, r) else {
        return y.to_vec();
    };
    let mut x = Vec::with_capacity(y.len());
    for (&mu, row) in mus.iter().zip(y.chunks_exact(group_len.max(1))) {
        x.extend(row.iter().map(|&v| v.abs().min(mu).copysign(v)));
    }
    x
}

/// Checks that `x` is the Euclidean projection of `y` onto the l1,∞ ball of radius `r` (rows as
/// groups), by its optimality conditions (see the module docs), to a relative tolerance `tol` of
/// the data's scale. Returns what fails, if anything.
pub fn check_l1_linf_kkt(
    y: &[f64],
    x: &[f64],
    groups: usize,
    group_len: usize,
    r: f64,
    tol: f64,
) -> Result<(), String> {
    let scale = y
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(r)
        .max(f64::MIN_POSITIVE);
    let eps = tol * scale * (group_len.max(1) as f64);
    let mus: Vec<f64> = x
        .chunks_exact(group_len.max(1))
        .take(groups)
        .map(|row| row.iter().fold(0.0f64, |m, v| m.max(v.abs())))
        .collect();
    let total: f64 = mus.iter().sum();
    let norm_y: f64 = y
        .chunks_exact(group_len.max(1))
        .take(groups)
        .map(|row| row.iter().fold(0.0f64, |m, v| m.max(v.abs())))
        .sum();
    if total > r + eps * groups as f64 {
        return Err(format!("outside the ball: {total} > {r}"));
    }
    if norm_y <= r {
        return if x == y {
            Ok(())
        } else {
            Err("inside the ball, but x ≠ y".into())
        };
    }
    if (total - r).abs() > eps * groups as f64 {
        return Err(format!("not on the sphere: {total} ≠ {r}"));
    }
    // The clip structure and one θ for the groups that survive.
    let mut theta: Option<f64> = None;
    for (g, ((yr, xr), &mu)) in y
        .chunks_exact(group_len)
        .zip(x.chunks_exact(group_len))
        .zip(&mus)
        .enumerate()
    {
        for (j, (&a, &b)) in yr.iter().zip(xr).enumerate() {
            let want = a.abs().min(mu).copysign(a);
            if (want - b).abs() > eps {
                return Err(format!("x[{g},{j}] = {b}, not clip(y, μ) = {want}"));
            }
        }
        if mu > 0.0 {
            let t: f64 = yr.iter().map(|v| (v.abs() - mu).max(0.0)).sum();
            match theta {
                None => theta = Some(t),
                Some(th) if (th - t).abs() > eps => {
                    return Err(format!("group {g} has θ = {t}, another {th}"));
                }
                _ => {}
            }
        }
    }
    // No surviving group (radius 0): any θ ≥ every ‖y_g‖₁ certifies the zero matrix.
    let theta = theta.unwrap_or(f64::INFINITY);
    for (g, (yr, &mu)) in y.chunks_exact(group_len).zip(&mus).enumerate() {
        let l1: f64 = yr.iter().map(|v| v.abs()).sum();
        if mu == 0.0 && l1 > theta + eps {
            return Err(format!("group {g} is zero but ‖y_g‖₁ = {l1} > θ = {theta}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balls::project_l1;
    use crate::rng::SplitMix64;

    fn matrix(rng: &mut SplitMix64, n: usize, signed: bool) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u = rng.next_f64();
                if signed { 2.0 * u - 1.0 } else { u }
            })
            .collect()
    }

    #[test]
    fn random_matrices_meet_the_optimality_conditions() {
        let mut rng = SplitMix64::new(11);
        for case in 0..400 {
            let groups = 1 + case % 9;
            let len = 1 + (case / 9) % 7;
            let y = matrix(&mut rng, groups * len, case % 3 != 0);
            let norm: f64 = y
                .chunks_exact(len)
                .map(|r| r.iter().fold(0.0f64, |m, v| m.max(v.abs())))
                .sum();
            for frac in [0.0, 1e-6, 0.01, 0.1, 0.5, 0.9, 1.0, 1.5] {
                let r = frac * norm;
                let x = project_l1_linf_exact(&y, groups, len, r);
                check_l1_linf_kkt(&y, &x, groups, len, r, 1e-12)
                    .unwrap_or_else(|e| panic!("{groups}×{len}, radius {frac}·norm: {e}"));
            }
        }
    }

    /// Groups of one entry: the l1,∞ ball is the l1 ball of the vector.
    #[test]
    fn one_entry_groups_are_the_l1_ball() {
        let mut rng = SplitMix64::new(5);
        for n in 1..40 {
            let y = matrix(&mut rng, n, true);
            let mut expected = y.clone();
            let r = 0.3 * y.iter().map(|v| v.abs()).sum::<f64>();
            project_l1(&mut expected, r);
            let x = project_l1_linf_exact(&y, n, 1, r);
            for (a, b) in x.iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-12, "{n}: {a} vs {b}");
            }
        }
    }

    /// One group: the l∞ ball, a clip at the radius.
    #[test]
    fn one_group_is_the_linf_ball() {
        let y = [3.0, -1.0, 0.5, -4.0];
        let x = project_l1_linf_exact(&y, 1, 4, 2.0);
        assert_eq!(x, vec![2.0, -1.0, 0.5, -2.0]);
    }

    /// Ties, zero rows, radius 0, and a hand-worked case: rows [3,1] and [1,1] at radius 1.
    #[test]
    fn edge_cases() {
        let y = [3.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        assert_eq!(project_l1_linf_exact(&y, 3, 2, 0.0), vec![0.0; 6]);
        assert_eq!(project_l1_linf_exact(&y, 3, 2, 10.0), y.to_vec());
        // θ = 2: row 0 clips at μ = 1 ((3−1) + 0 = 2), row 1 (‖·‖₁ = 2 ≤ θ) is zero.
        let x = project_l1_linf_exact(&y, 3, 2, 1.0);
        assert_eq!(x, vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        check_l1_linf_kkt(&y, &x, 3, 2, 1.0, 1e-12).unwrap();
        let tied = [1.0, -1.0, 1.0, 1.0, -1.0, 1.0];
        let x = project_l1_linf_exact(&tied, 3, 2, 1.5);
        check_l1_linf_kkt(&tied, &x, 3, 2, 1.5, 1e-12).unwrap();
    }

    /// The certificate rejects what is not the projection: the multi-level (bi-level) result
    /// in general, and perturbations of the exact one.
    #[test]
    fn the_certificate_can_fail() {
        let y = [3.0, 1.0, 1.0, 1.0, 0.5, 0.2];
        let mut x = project_l1_linf_exact(&y, 3, 2, 1.0);
        x[0] -= 1e-3;
        assert!(check_l1_linf_kkt(&y, &x, 3, 2, 1.0, 1e-12).is_err());
        // The bi-level projection keeps rows by their maxima: [3, 1, 0.5] → l1 ball of radius 1
        // gives μ = [1, 0, 0], the same here; on [2,2] vs [3,0] it differs.
        let y = [2.0, 2.0, 3.0, 0.0];
        let bilevel = vec![0.0, 0.0, 1.0, 0.0]; // maxima [2, 3] → l1(1): [0, 1]
        assert!(check_l1_linf_kkt(&y, &bilevel, 2, 2, 1.0, 1e-12).is_err());
        let x = project_l1_linf_exact(&y, 2, 2, 1.0);
        check_l1_linf_kkt(&y, &x, 2, 2, 1.0, 1e-12).unwrap();
    }
}
