//! `linf over A of linf over B` → `linf over A∪B`.

use multiproj_grammar::Norm;

use super::{Rule, merge_first_adjacent};
use crate::ir::IrLevel;

/// Merges two adjacent linf levels into one linf level over the union of their axes.
///
/// Why it is sound: the outer level sees `V[a] = max_b |Y[a,b]|` and projects it by clipping,
/// `U[a] = min(V[a], r)`; the inner level then clips each group to `U[a]`. Clipping `Y[a,b]` to
/// `min(V[a], r)` is clipping to `r`, because no entry of the group exceeds `V[a]` in magnitude.
/// So the pair clips every entry to `r`, which is the linf projection over `A∪B`; the norm is
/// `max_a max_b |Y| = max_{a,b} |Y|`. Both are exact in floating point (max and clip do not
/// round), so the rewrite does not change a single bit of the output.
#[derive(Debug)]
pub struct MergeLinfLinf;

impl Rule for MergeLinfLinf {
    fn name(&self) -> &'static str {
        "merge-linf-linf"
    }

    fn rewrite(&self, levels: &[IrLevel]) -> Option<Vec<IrLevel>> {
        merge_first_adjacent(levels, Norm::Linf)
    }
}

#[cfg(test)]
mod tests {
    use multiproj_grammar::Norm::*;

    use super::*;
    use crate::normalize::test_util::levels;
    use crate::normalize::{LevelList, normalize};

    fn rewrite(ls: &[IrLevel]) -> String {
        match MergeLinfLinf.rewrite(ls) {
            Some(out) => format!("{} => {}", LevelList(ls), LevelList(&out)),
            None => format!("{} unchanged", LevelList(ls)),
        }
    }

    #[test]
    fn merges_a_pair() {
        insta::assert_snapshot!(
            rewrite(&levels(&[(L1, &[0]), (Linf, &[2]), (Linf, &[1])])),
            @"l1 over {0} of linf over {2} of linf over {1} => l1 over {0} of linf over {1,2}"
        );
    }

    #[test]
    fn merged_span_covers_both_levels() {
        let out = MergeLinfLinf
            .rewrite(&levels(&[(Linf, &[0]), (Linf, &[1])]))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].span.start, out[0].span.end), (0, 36));
    }

    #[test]
    fn three_linf_levels_become_one() {
        let n = normalize(&levels(&[(Linf, &[1]), (Linf, &[0]), (Linf, &[2])]));
        assert_eq!(LevelList(&n.levels).to_string(), "linf over {0,1,2}");
        assert_eq!(n.applied.len(), 2);
    }

    #[test]
    fn does_not_touch_other_norms() {
        insta::assert_snapshot!(
            rewrite(&levels(&[(Linf, &[0]), (L2, &[1]), (Linf, &[2])])),
            @"linf over {0} of l2 over {1} of linf over {2} unchanged"
        );
        insta::assert_snapshot!(
            rewrite(&levels(&[(L1, &[0]), (L1, &[1])])),
            @"l1 over {0} of l1 over {1} unchanged"
        );
    }
}
