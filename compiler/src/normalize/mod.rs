//! Normalization: named rewrite rules on the checked levels, applied to a fixpoint before
//! planning. Each rule lives in its own file, says in its doc comment why it preserves the
//! projection (`docs/SEMANTICS.md` §3), and has its own tests. Only rules that are sound for the projection,
//! not merely for the norm, belong here: `l1 of l1` has the same norm as one l1 level over the
//! union of axes, but a different projection, so it is never merged — except for an exact
//! projection ([`normalize_exact`]), which depends on the norm alone.

mod merge_l1;
mod merge_l2;
mod merge_linf;

use std::fmt;

pub use merge_l1::MergeL1L1;
pub use merge_l2::MergeL2L2;
pub use merge_linf::MergeLinfLinf;

use crate::ir::{AxisSet, IrLevel};

/// A rewrite of the level list, outermost level first.
pub trait Rule {
    /// A short kebab-case name, printed by `explain`.
    fn name(&self) -> &'static str;
    /// Rewrites once, or returns `None` when the rule does not apply.
    fn rewrite(&self, levels: &[IrLevel]) -> Option<Vec<IrLevel>>;
}

/// One application of a rule, for `explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub rule: &'static str,
    pub before: String,
    pub after: String,
}

/// The levels after normalization and the rules that produced them.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalized {
    pub levels: Vec<IrLevel>,
    pub applied: Vec<Applied>,
}

/// The rules, in the order they are tried.
pub fn rules() -> Vec<Box<dyn Rule>> {
    vec![Box::new(MergeLinfLinf), Box::new(MergeL2L2)]
}

/// The rules of an exact projection: [`rules`], and the rewrites that keep the *norm* (hence
/// the ball, hence its Euclidean projection) but not the multi-level projection: [`MergeL1L1`].
pub fn exact_rules() -> Vec<Box<dyn Rule>> {
    let mut all = rules();
    all.push(Box::new(MergeL1L1));
    all
}

/// Applies [`rules`] until none applies. Every rule strictly reduces the number of levels, so
/// this terminates after at most `levels.len() - 1` rewrites.
pub fn normalize(levels: &[IrLevel]) -> Normalized {
    normalize_with(levels, &rules())
}

/// Normalization for an exact projection: [`exact_rules`] to a fixpoint.
pub fn normalize_exact(levels: &[IrLevel]) -> Normalized {
    normalize_with(levels, &exact_rules())
}

fn normalize_with(levels: &[IrLevel], rules: &[Box<dyn Rule>]) -> Normalized {
    let mut levels = levels.to_vec();
    let mut applied = Vec::new();
    'outer: loop {
        for rule in rules {
            if let Some(next) = rule.rewrite(&levels) {
                debug_assert!(next.len() < levels.len());
                applied.push(Applied {
                    rule: rule.name(),
                    before: LevelList(&levels).to_string(),
                    after: LevelList(&next).to_string(),
                });
                levels = next;
                continue 'outer;
            }
        }
        break;
    }
    Normalized { levels, applied }
}

/// Merges the first adjacent pair of levels that both have `norm` into one level over the union
/// of their axes. Shared by the rules whose soundness argument is "this pair is one level".
pub(crate) fn merge_first_adjacent(
    levels: &[IrLevel],
    norm: multiproj_grammar::Norm,
) -> Option<Vec<IrLevel>> {
    let i = levels
        .windows(2)
        .position(|w| w[0].norm == norm && w[1].norm == norm)?;
    let mut axes = levels[i].axes.clone();
    axes.extend_from_slice(&levels[i + 1].axes);
    axes.sort_unstable();
    let merged = IrLevel {
        norm,
        axes,
        span: levels[i].span.join(levels[i + 1].span),
    };
    let mut out = levels[..i].to_vec();
    out.push(merged);
    out.extend_from_slice(&levels[i + 2..]);
    Some(out)
}

/// Prints levels as `l1 over {0} of linf over {1,2}`.
#[derive(Debug)]
pub struct LevelList<'a>(pub &'a [IrLevel]);

impl fmt::Display for LevelList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" of ")?;
            }
            write!(f, "{} over {}", l.norm, AxisSet(&l.axes))?;
        }
        Ok(())
    }
}

impl fmt::Display for Normalized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "normalized levels: {}", LevelList(&self.levels))?;
        if self.applied.is_empty() {
            writeln!(f, "  no rule applied")?;
        }
        for a in &self.applied {
            writeln!(f, "  rule {}: {}  =>  {}", a.rule, a.before, a.after)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use multiproj_grammar::{Norm, Span};

    use crate::ir::IrLevel;

    /// Levels from `(norm, axes)` pairs, with spans laid out as if written one after another.
    pub fn levels(spec: &[(Norm, &[usize])]) -> Vec<IrLevel> {
        spec.iter()
            .enumerate()
            .map(|(i, (norm, axes))| IrLevel {
                norm: *norm,
                axes: axes.to_vec(),
                span: Span::new(i * 20, i * 20 + 16),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use multiproj_grammar::Norm::*;

    use super::test_util::levels;
    use super::*;

    #[test]
    fn runs_to_a_fixpoint_across_rules() {
        let ls = levels(&[
            (Linf, &[0]),
            (Linf, &[1]),
            (L2, &[2]),
            (L2, &[3]),
            (L2, &[4]),
        ]);
        let n = normalize(&ls);
        insta::assert_snapshot!(n, @r"
        normalized levels: linf over {0,1} of l2 over {2,3,4}
          rule merge-linf-linf: linf over {0} of linf over {1} of l2 over {2} of l2 over {3} of l2 over {4}  =>  linf over {0,1} of l2 over {2} of l2 over {3} of l2 over {4}
          rule merge-l2-l2: linf over {0,1} of l2 over {2} of l2 over {3} of l2 over {4}  =>  linf over {0,1} of l2 over {2,3} of l2 over {4}
          rule merge-l2-l2: linf over {0,1} of l2 over {2,3} of l2 over {4}  =>  linf over {0,1} of l2 over {2,3,4}
        ");
    }

    #[test]
    fn leaves_l1_of_l1_alone() {
        let ls = levels(&[(L1, &[0]), (L1, &[1])]);
        let n = normalize(&ls);
        assert_eq!(n.levels, ls);
        assert!(n.applied.is_empty());
    }

    #[test]
    fn does_not_merge_across_another_norm() {
        let ls = levels(&[(Linf, &[0]), (L1, &[1]), (Linf, &[2])]);
        assert_eq!(normalize(&ls).levels, ls);
    }
}
