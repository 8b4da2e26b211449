//! `l1 over A of l1 over B` → `l1 over A∪B`, for exact projections only.

use multiproj_grammar::Norm;

use super::{Rule, merge_first_adjacent};
use crate::ir::IrLevel;

/// Merges two adjacent l1 levels into one l1 level over the union of their axes — a rule of
/// [`super::normalize_exact`] only.
///
/// Why it is sound *for the exact projection*: the norm is `Σ_a Σ_b |Y[a,b]| = Σ_{a,b} |Y[a,b]|`,
/// so both spellings describe the same ball, and the Euclidean projection onto a ball depends on
/// the ball only. It is *not* sound for the multi-level projection (which is why
/// [`super::rules`] does not hold it): there the outer level hands each group its own radius,
/// and each group is soft-thresholded with its own τ, where the flattened l1 projection uses one
/// τ for every entry.
#[derive(Debug)]
pub struct MergeL1L1;

impl Rule for MergeL1L1 {
    fn name(&self) -> &'static str {
        "merge-l1-l1"
    }

    fn rewrite(&self, levels: &[IrLevel]) -> Option<Vec<IrLevel>> {
        merge_first_adjacent(levels, Norm::L1)
    }
}

#[cfg(test)]
mod tests {
    use multiproj_grammar::Norm::*;

    use super::*;
    use crate::normalize::test_util::levels;
    use crate::normalize::{LevelList, normalize, normalize_exact};

    #[test]
    fn merges_adjacent_l1_levels() {
        let ls = levels(&[(L1, &[0]), (L1, &[1]), (Linf, &[2])]);
        let out = MergeL1L1.rewrite(&ls).expect("applies");
        assert_eq!(
            LevelList(&out).to_string(),
            "l1 over {0,1} of linf over {2}"
        );
        // Not across another norm.
        let ls = levels(&[(L1, &[0]), (Linf, &[1]), (L1, &[2])]);
        assert!(MergeL1L1.rewrite(&ls).is_none());
    }

    #[test]
    fn only_exact_normalization_holds_it() {
        let ls = levels(&[(L1, &[0]), (L1, &[1])]);
        assert_eq!(normalize(&ls).levels.len(), 2);
        let exact = normalize_exact(&ls);
        assert_eq!(exact.levels.len(), 1);
        assert_eq!(exact.applied[0].rule, "merge-l1-l1");
    }
}
