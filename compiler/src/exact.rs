//! Which projection a plan computes: the multi-level projection of `docs/SEMANTICS.md` §2, or —
//! for a spec written with a leading `exact` — the Euclidean projection onto the ball of the
//! same norm (§4), and by which method.
//!
//! An exact projection depends on the ball only, so its levels are normalized with the rules
//! that keep the norm ([`crate::normalize_exact`]: also `l1 of l1` → one l1 level). What is left
//! decides the method:
//!
//! - **One level.** The single-level projections (l1 by soft threshold, l2 by scaling, linf by
//!   clipping) are Euclidean projections already.
//! - **`l1 of l2`** (the group-lasso ball). The projection `x` of `y` minimizes
//!   `½‖x − y‖² + λ·Σ_g ‖x_g‖₂` for the λ ≥ 0 that puts it on the sphere (λ = 0 inside). Per
//!   group that is block soft thresholding, `x_g = y_g · (1 − λ/‖y_g‖₂)₊`, so
//!   `‖x_g‖₂ = (‖y_g‖₂ − λ)₊` and `Σ_g (‖y_g‖₂ − λ)₊ = R`: the group norms are soft-thresholded
//!   at the λ of the l1 projection of the vector `V` of group norms onto the l1 ball of radius
//!   `R`. That is the multi-level projection: its top level projects `V` onto that l1 ball, and
//!   its inner level scales each group to the norm the top level handed it.
//! - **`linf of p`** (separable). The ball `{max_g ‖x_g‖_p ≤ R}` is the product of the balls
//!   `{‖x_g‖_p ≤ R}`, and the projection onto a product is the product of the projections:
//!   each group onto its own p-ball of radius R. The multi-level projection gives group `g` the
//!   radius `min(V[g], R)` and projects it onto its p-ball of that radius: unchanged when
//!   `V[g] ≤ R` (inside either way), onto the ball of radius R otherwise.
//! - **`l1 of linf`** (the l1,∞ ball). Not the multi-level projection: the exact one solves for
//!   one threshold θ shared by all groups (`runtime::exact`).
//! - **`l2 of linf`, `l2 of l1`.** One multiplier λ for the constraint `Σ_g ‖x_g‖² ≤ R²` and a
//!   one-dimensional equation per group: for `l2 of linf` each group is clipped at the `t_g` with
//!   `Σ_j (|y_gj| − t_g)₊ = λ·t_g`, for `l2 of l1` soft-thresholded at the `ν_g` with
//!   `Σ_j (|y_gj| − ν_g)₊ = ν_g/λ` (its l1 norm is then `ν_g/λ`); λ is the root of the monotone
//!   `Σ_g ‖x_g(λ)‖² = R²` (`runtime::exact::solve_l2`).
//! - Anything else (three levels that stay three): no exact method; the checker says which
//!   ones exist.

use std::fmt;

use multiproj_grammar::Norm;

use crate::ir::IrLevel;

/// Which projection a plan computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The multi-level projection (`docs/SEMANTICS.md` §2).
    MultiLevel,
    /// The Euclidean projection onto the ball of the spec's norm, by this method.
    Exact(ExactMethod),
}

impl Method {
    /// True for an exact projection.
    pub fn is_exact(self) -> bool {
        matches!(self, Method::Exact(_))
    }
}

/// How an exact projection is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExactMethod {
    /// The multi-level projection of the normalized levels is the exact one, for this reason.
    MultiLevel(Why),
    /// `l1 of linf`: the search for the common threshold θ (`runtime::exact`).
    L1Linf,
    /// `l2 of linf`: the search for the multiplier λ, each group clipped.
    L2Linf,
    /// `l2 of l1`: the search for the multiplier λ, each group soft-thresholded.
    L2L1,
}

/// Why the multi-level projection of some level trees is already the Euclidean projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// One level (after normalization): a plain l1, l2 or linf projection.
    OneLevel,
    /// `l1 of l2`: block soft thresholding at the threshold of the group norms' l1 projection.
    GroupLasso,
    /// `linf of p`: the ball is a product of the groups' balls.
    Separable,
}

/// The exact method for normalized levels (see [`crate::normalize_exact`]), or `None` when
/// there is none.
pub fn classify(levels: &[IrLevel]) -> Option<ExactMethod> {
    match levels {
        [_] => Some(ExactMethod::MultiLevel(Why::OneLevel)),
        [outer, inner] => match (outer.norm, inner.norm) {
            (Norm::L1, Norm::Linf) => Some(ExactMethod::L1Linf),
            (Norm::L1, Norm::L2) => Some(ExactMethod::MultiLevel(Why::GroupLasso)),
            (Norm::Linf, _) => Some(ExactMethod::MultiLevel(Why::Separable)),
            (Norm::L2, Norm::Linf) => Some(ExactMethod::L2Linf),
            (Norm::L2, Norm::L1) => Some(ExactMethod::L2L1),
            _ => None,
        },
        _ => None,
    }
}

/// The exact projections there are, for error messages and documentation.
pub const EXACT_PROJECTIONS: &str = "one level, and two levels of any norms (`l1 of linf`, `l2 of l1`, …), \
     including the specs that normalize to one or two levels (`l1 of l1 of linf` is `l1 of linf`)";

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::MultiLevel => f.write_str("multi-level projection"),
            Method::Exact(ExactMethod::L1Linf) => f.write_str(
                "exact Euclidean projection onto the l1,inf ball: one threshold θ for all groups",
            ),
            Method::Exact(ExactMethod::L2Linf) => f.write_str(
                "exact Euclidean projection onto the l2,inf ball: one multiplier λ for all groups",
            ),
            Method::Exact(ExactMethod::L2L1) => f.write_str(
                "exact Euclidean projection onto the l2,1 ball: one multiplier λ for all groups",
            ),
            Method::Exact(ExactMethod::MultiLevel(why)) => write!(
                f,
                "exact Euclidean projection, which the multi-level projection is here: {}",
                match why {
                    Why::OneLevel => "one level",
                    Why::GroupLasso => "l1 of l2 (block soft thresholding)",
                    Why::Separable => "linf of a norm (a product of balls)",
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use multiproj_grammar::Norm::*;

    use super::*;
    use crate::normalize::normalize_exact;
    use crate::normalize::test_util::levels;

    fn method(spec: &[(Norm, &[usize])]) -> Option<ExactMethod> {
        classify(&normalize_exact(&levels(spec)).levels)
    }

    #[test]
    fn classifies_every_two_level_tree() {
        use ExactMethod::*;
        let cases: [(Norm, Norm, Option<ExactMethod>); 9] = [
            (L1, Linf, Some(L1Linf)),
            (L1, L2, Some(MultiLevel(Why::GroupLasso))),
            (L1, L1, Some(MultiLevel(Why::OneLevel))),
            (L2, L2, Some(MultiLevel(Why::OneLevel))),
            (Linf, Linf, Some(MultiLevel(Why::OneLevel))),
            (Linf, L1, Some(MultiLevel(Why::Separable))),
            (Linf, L2, Some(MultiLevel(Why::Separable))),
            (L2, L1, Some(L2L1)),
            (L2, Linf, Some(L2Linf)),
        ];
        for (outer, inner, want) in cases {
            assert_eq!(
                method(&[(outer, &[0]), (inner, &[1])]),
                want,
                "{outer} of {inner}"
            );
        }
    }

    #[test]
    fn three_levels_only_when_they_normalize_to_two() {
        assert_eq!(
            method(&[(L1, &[0]), (L1, &[1]), (Linf, &[2])]),
            Some(ExactMethod::L1Linf)
        );
        assert_eq!(
            method(&[(L1, &[0]), (Linf, &[1]), (Linf, &[2])]),
            Some(ExactMethod::L1Linf)
        );
        assert_eq!(method(&[(L1, &[0]), (Linf, &[1]), (L1, &[2])]), None);
        assert_eq!(method(&[(L1, &[0]), (L2, &[1]), (Linf, &[2])]), None);
    }
}
