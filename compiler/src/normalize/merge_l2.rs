//! `l2 over A of l2 over B` → `l2 over A∪B`.

use multiproj_grammar::Norm;

use super::{Rule, merge_first_adjacent};
use crate::ir::IrLevel;

/// Merges two adjacent l2 levels into one l2 level over the union of their axes.
///
/// Why it is sound: the norm is `sqrt(Σ_a (sqrt(Σ_b Y[a,b]²))²) = sqrt(Σ_{a,b} Y[a,b]²)`. The
/// outer projection scales the vector `V` of group norms by `s = min(1, r/‖V‖)`, so group `a`
/// gets radius `s·V[a]`, and the inner projection scales group `a` by
/// `min(1, s·V[a]/V[a]) = s`: every entry is scaled by the same `s = min(1, r/‖Y‖)`, which is
/// the l2 projection over `A∪B`. (A zero group stays zero either way.) In floating point the two
/// forms round differently — the merged form does one square root instead of a square root per
/// group — so results agree to rounding, not bit for bit; the merged form is the more accurate.
#[derive(Debug)]
pub struct MergeL2L2;

impl Rule for MergeL2L2 {
    fn name(&self) -> &'static str {
        "merge-l2-l2"
    }

    fn rewrite(&self, levels: &[IrLevel]) -> Option<Vec<IrLevel>> {
        merge_first_adjacent(levels, Norm::L2)
    }
}

#[cfg(test)]
mod tests {
    use multiproj_grammar::Norm::*;

    use super::*;
    use crate::normalize::LevelList;
    use crate::normalize::test_util::levels;

    fn rewrite(ls: &[IrLevel]) -> String {
        match MergeL2L2.rewrite(ls) {
            Some(out) => format!("{} => {}", LevelList(ls), LevelList(&out)),
            None => format!("{} unchanged", LevelList(ls)),
        }
    }

    #[test]
    fn merges_a_pair() {
        insta::assert_snapshot!(
            rewrite(&levels(&[(L2, &[1]), (L2, &[0])])),
            @"l2 over {1} of l2 over {0} => l2 over {0,1}"
        );
    }

    #[test]
    fn merges_an_inner_pair_under_l1() {
        insta::assert_snapshot!(
            rewrite(&levels(&[(L1, &[0]), (L2, &[1]), (L2, &[2, 3])])),
            @"l1 over {0} of l2 over {1} of l2 over {2,3} => l1 over {0} of l2 over {1,2,3}"
        );
    }

    #[test]
    fn leaves_non_adjacent_and_other_norms() {
        insta::assert_snapshot!(
            rewrite(&levels(&[(L2, &[0]), (Linf, &[1]), (L2, &[2])])),
            @"l2 over {0} of linf over {1} of l2 over {2} unchanged"
        );
        insta::assert_snapshot!(
            rewrite(&levels(&[(L1, &[0]), (L1, &[1])])),
            @"l1 over {0} of l1 over {1} unchanged"
        );
    }
}
