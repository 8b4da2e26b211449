//! The planner: turns checked, normalized levels into the steps a backend runs.
//!
//! A [`Plan`] is the *algorithm* — the level tree (`docs/SEMANTICS.md`), the innermost groups and
//! the [`Step`]s that compute the projection, in order — together with its [`Schedule`], *how*
//! the passes over the big tensor walk memory (`schedule.rs`). Both are decided here, once, so
//! every backend executes the same plan, and the executor runs exactly [`Plan::steps`].
//!
//! - **Groups.** With `k` levels, the innermost groups are indexed by the axes of levels
//!   `1..k-1`; the group index is row-major over those axes taken level by level (each level's
//!   axes ascending). So the aggregate `V_j` (`j < k`) is a dense vector of `n_1·…·n_j` entries,
//!   and the segments a level-`j` projection works on are contiguous runs of `n_j` entries.
//! - **Steps.** A reduce pass over the data (`V_{k-1}`), the upper reductions (`V_{k-2} … V_0`),
//!   the top-down solve (`U_1 … U_{k-1}`), a threshold stage when the innermost norm is l1, and
//!   the apply pass.
//! - **Skip rules** (decided after the solve, per group `g` with radius `r_g` and norm `V[g]`):
//!   `r_g ≥ V[g]` leaves the group untouched (not written in place, copied out of place);
//!   `r_g = 0` fills it with zeros without reading it.

use std::fmt;

use multiproj_grammar::{Norm, Span, Spanned};

use crate::exact::{ExactMethod, Method};
use crate::ir::{AxisSet, Ir, IrLevel, write_norm_formula, write_radius};
use crate::normalize::{Applied, normalize, normalize_exact};
use crate::schedule::Schedule;
use crate::tensor::TensorInfo;

/// A level after normalization, with the number of entries of one of its segments.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanLevel {
    pub norm: Norm,
    pub axes: Vec<usize>,
    /// `n_j`: the product of the extents of this level's axes.
    pub extent: usize,
    pub span: Span,
}

impl PlanLevel {
    fn to_ir(&self) -> IrLevel {
        IrLevel {
            norm: self.norm,
            axes: self.axes.clone(),
            span: self.span,
        }
    }
}

/// What the apply pass does to an element of a group that is neither untouched nor zeroed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOp {
    /// linf: clip to `[-r_g, r_g]`.
    Clip,
    /// l2: multiply by `r_g / V[g]`.
    Scale,
    /// l1: soft threshold, `sign(y)·max(|y| - τ_g, 0)`.
    Shrink,
}

impl ApplyOp {
    pub fn for_norm(norm: Norm) -> Self {
        match norm {
            Norm::Linf => ApplyOp::Clip,
            Norm::L2 => ApplyOp::Scale,
            Norm::L1 => ApplyOp::Shrink,
        }
    }
}

/// The stages of a run, in the order they happen: the plan's [`Step`]s by kind, plus compiling
/// kernels (a backend's preparation) and writing an output file (the command line's). Reports,
/// progress hooks and `multiproj bench` name stages with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Compiling the JIT kernels (or finding them in the cache). No elements.
    Compile,
    /// The reduce pass: the innermost norm of every group. Every element.
    Reduce,
    /// The upper reductions, on aggregates. No elements of the tensor.
    UpperReduce,
    /// The top-down solve and the per-group decisions, on aggregates. No elements of the tensor.
    Solve,
    /// The exact `l1 of linf` solve: the passes over the data that find the common threshold θ
    /// and each group's clip level. Every element, about twice.
    ExactSolve,
    /// The threshold stage (innermost l1): gathering the groups that need a soft threshold.
    /// Every element.
    Threshold,
    /// The apply pass: writing the result. Every element.
    Apply,
    /// Writing the result to a file (the command line's runs).
    Write,
}

impl Stage {
    /// The stage's name, as printed in statistics: `reduce`, `upper-reduce`, ….
    pub fn name(self) -> &'static str {
        match self {
            Stage::Compile => "compile",
            Stage::Reduce => "reduce",
            Stage::UpperReduce => "upper-reduce",
            Stage::Solve => "solve",
            Stage::ExactSolve => "exact-solve",
            Stage::Threshold => "threshold",
            Stage::Apply => "apply",
            Stage::Write => "write",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A step of the plan, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// One pass over the data: `V_{k-1}[g]` = the innermost norm of group `g`.
    Reduce {
        norm: Norm,
        groups: usize,
        group_len: usize,
    },
    /// On aggregates: `V_{level-1}` from `V_level`, reducing segments of `segment_len`.
    UpperReduce {
        level: usize,
        norm: Norm,
        segments: usize,
        segment_len: usize,
    },
    /// On aggregates: `U_level[s,·] = P_norm(V_level[s,·], U_{level-1}[s])` for each segment.
    Solve {
        level: usize,
        norm: Norm,
        segments: usize,
        segment_len: usize,
    },
    /// Exact projections that are not multi-level ones: each innermost group's radius, from the
    /// data (`l1 of linf`: the common threshold θ and each group's clip level, from a histogram
    /// pass and a pass gathering the entries near the clip levels; `l2 of linf`, `l2 of l1`: the
    /// multiplier λ, from every group's sorted magnitudes).
    ExactSolve {
        method: ExactMethod,
        groups: usize,
        group_len: usize,
    },
    /// Innermost l1 only: the soft threshold `τ_g` of each group that must shrink (reads the
    /// data of those groups).
    Threshold { groups: usize, group_len: usize },
    /// One pass over the data writing the output.
    Apply {
        op: ApplyOp,
        groups: usize,
        group_len: usize,
    },
}

impl Step {
    /// The stage this step belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            Step::Reduce { .. } => Stage::Reduce,
            Step::UpperReduce { .. } => Stage::UpperReduce,
            Step::Solve { .. } => Stage::Solve,
            Step::ExactSolve { .. } => Stage::ExactSolve,
            Step::Threshold { .. } => Stage::Threshold,
            Step::Apply { .. } => Stage::Apply,
        }
    }

    /// A short name: the stage's.
    pub fn name(&self) -> &'static str {
        self.stage().name()
    }
}

/// Everything a backend needs to run a projection of one tensor layout: the algorithm (levels,
/// groups, steps) and its [`Schedule`]. Built only by [`plan()`], from an [`Ir`] that only
/// [`crate::check`] builds, so a plan always describes a layout the spec was checked against;
/// its fields are read through methods and cannot be changed (the JIT's address arithmetic
/// relies on them).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    source: String,
    tensor: TensorInfo,
    levels: Vec<PlanLevel>,
    rules_applied: Vec<Applied>,
    groups: usize,
    group_len: usize,
    group_strides: Vec<usize>,
    steps: Vec<Step>,
    radius: Option<Spanned<f64>>,
    method: Method,
    schedule: Schedule,
}

impl Plan {
    /// The spec text (spans point into it).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The layout of the tensors this plan runs on.
    pub fn tensor(&self) -> &TensorInfo {
        &self.tensor
    }

    /// The normalized levels, outermost first. Never empty.
    pub fn levels(&self) -> &[PlanLevel] {
        &self.levels
    }

    /// The normalization rules that were applied.
    pub fn rules_applied(&self) -> &[Applied] {
        &self.rules_applied
    }

    /// Number of innermost groups: `n_1·…·n_{k-1}` (1 for a single level).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Entries per innermost group: `n_k`.
    pub fn group_len(&self) -> usize {
        self.group_len
    }

    /// Per tensor axis: step of the innermost-group index (0 for the innermost level's axes).
    pub fn group_strides(&self) -> &[usize] {
        &self.group_strides
    }

    /// The steps, in execution order: what the executor runs.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Whether the plan has a threshold step (the innermost norm is l1).
    pub fn has_threshold(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Threshold { .. }))
    }

    /// The radius fixed in the spec, if any.
    pub fn radius(&self) -> Option<&Spanned<f64>> {
        self.radius.as_ref()
    }

    /// The projection this plan computes: multi-level, or exact by some method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// How the passes over the data walk memory.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Layout of an out-of-place result (see [`Schedule::output`]).
    pub fn output(&self) -> &TensorInfo {
        self.schedule.output()
    }

    /// The normalized levels and the rules that made them, as [`normalize`] returned them.
    pub fn normalized(&self) -> crate::Normalized {
        crate::Normalized {
            levels: self.levels.iter().map(PlanLevel::to_ir).collect(),
            applied: self.rules_applied.clone(),
        }
    }

    pub fn innermost(&self) -> &PlanLevel {
        self.levels.last().expect("a plan has at least one level")
    }

    /// The number of entries of each aggregate `V_j`, `j = 0..k-1`: `sizes[j] = n_1·…·n_j`.
    pub fn aggregate_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![1usize];
        for l in &self.levels[..self.levels.len() - 1] {
            sizes.push(sizes.last().unwrap() * l.extent);
        }
        sizes
    }
}

/// Plans a checked IR. Cannot fail: everything that could go wrong was ruled out by `check`.
pub fn plan(ir: &Ir) -> Plan {
    let normalized = match ir.method {
        Method::MultiLevel => normalize(&ir.levels),
        Method::Exact(_) => normalize_exact(&ir.levels),
    };
    let shape = &ir.tensor.shape;
    let rank = shape.len();
    let levels: Vec<PlanLevel> = normalized
        .levels
        .iter()
        .map(|l: &IrLevel| PlanLevel {
            norm: l.norm,
            axes: l.axes.clone(),
            extent: l.extent(shape),
            span: l.span,
        })
        .collect();
    let k = levels.len();
    let group_len = levels[k - 1].extent;
    let groups: usize = levels[..k - 1].iter().map(|l| l.extent).product();

    // Group index: row-major over the outer levels' axes, level by level.
    let mut group_strides = vec![0usize; rank];
    let mut step = 1usize;
    for l in levels[..k - 1].iter().rev() {
        for &a in l.axes.iter().rev() {
            group_strides[a] = step;
            step *= shape[a];
        }
    }

    let mut steps = vec![Step::Reduce {
        norm: levels[k - 1].norm,
        groups,
        group_len,
    }];
    let mut sizes = vec![1usize];
    for l in &levels[..k - 1] {
        sizes.push(sizes.last().unwrap() * l.extent);
    }
    for j in (1..k).rev() {
        steps.push(Step::UpperReduce {
            level: j,
            norm: levels[j - 1].norm,
            segments: sizes[j - 1],
            segment_len: levels[j - 1].extent,
        });
    }
    if let Method::Exact(m @ (ExactMethod::L1Linf | ExactMethod::L2Linf | ExactMethod::L2L1)) =
        ir.method
    {
        // The solve needs the data, not only the aggregates (`runtime::exact`); it hands each
        // innermost group its radius, and an innermost l1 norm still needs its threshold.
        steps.push(Step::ExactSolve {
            method: m,
            groups,
            group_len,
        });
        if levels[k - 1].norm == Norm::L1 {
            steps.push(Step::Threshold { groups, group_len });
        }
    } else {
        for j in 1..k {
            steps.push(Step::Solve {
                level: j,
                norm: levels[j - 1].norm,
                segments: sizes[j - 1],
                segment_len: levels[j - 1].extent,
            });
        }
        if levels[k - 1].norm == Norm::L1 {
            steps.push(Step::Threshold { groups, group_len });
        }
    }
    steps.push(Step::Apply {
        op: ApplyOp::for_norm(levels[k - 1].norm),
        groups,
        group_len,
    });

    let threshold = steps.iter().any(|s| matches!(s, Step::Threshold { .. }));
    let schedule = Schedule::new(&ir.tensor, &group_strides, groups, threshold);
    Plan {
        source: ir.source.clone(),
        tensor: ir.tensor.clone(),
        levels,
        rules_applied: normalized.applied,
        groups,
        group_len,
        group_strides,
        steps,
        radius: ir.radius.clone(),
        method: ir.method,
        schedule,
    }
}

/// `1 group`, `64 groups`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn norm_symbol(n: Norm) -> &'static str {
    match n {
        Norm::L1 => "Σ|·|",
        Norm::L2 => "sqrt Σ(·)²",
        Norm::Linf => "max|·|",
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.levels.len();
        writeln!(f, "plan for {}", self.tensor)?;
        if self.method.is_exact() {
            writeln!(f, "  method: {}", self.method)?;
        }
        let as_ir: Vec<IrLevel> = self.levels.iter().map(PlanLevel::to_ir).collect();
        f.write_str("  norm(Y) = ")?;
        write_norm_formula(f, &as_ir)?;
        writeln!(f)?;
        writeln!(
            f,
            "  groups: {} of {} entries (group index over {})",
            plural(self.groups, "group"),
            self.group_len,
            if k == 1 {
                "nothing: one group".to_string()
            } else {
                let outer: Vec<usize> = self.levels[..k - 1]
                    .iter()
                    .flat_map(|l| l.axes.iter().copied())
                    .collect();
                format!("axes {}", AxisSet(&outer))
            }
        )?;
        self.schedule.fmt_loops(f)?;
        writeln!(f, "  stages:")?;
        for (i, st) in self.steps.iter().enumerate() {
            write!(f, "    {}. {:<13}", i + 1, st.name())?;
            match st {
                Step::Reduce {
                    norm,
                    groups,
                    group_len,
                } => writeln!(
                    f,
                    "V{}[g] = {} of Y[g,·] over {}   ({} × {}, f64 accumulators)",
                    k - 1,
                    norm_symbol(*norm),
                    AxisSet(&self.levels[k - 1].axes),
                    plural(*groups, "group"),
                    group_len
                )?,
                Step::UpperReduce {
                    level,
                    norm,
                    segments,
                    segment_len,
                } => writeln!(
                    f,
                    "V{}[s] = {} of V{}[s,·] over {}   ({} × {})",
                    level - 1,
                    norm_symbol(*norm),
                    level,
                    AxisSet(&self.levels[level - 1].axes),
                    segments,
                    segment_len
                )?,
                Step::Solve {
                    level,
                    norm,
                    segments,
                    segment_len,
                } => writeln!(
                    f,
                    "U{level}[s,·] = P_{norm}(V{level}[s,·], {})   ({segments} × {segment_len})",
                    if *level == 1 {
                        "R".to_string()
                    } else {
                        format!("U{}[s]", level - 1)
                    }
                )?,
                Step::ExactSolve {
                    method,
                    groups,
                    group_len,
                } => match method {
                    ExactMethod::L2Linf | ExactMethod::L2L1 => {
                        let what = if *method == ExactMethod::L2Linf {
                            "t[g] with Σ max(|Y[g,·]| - t[g], 0) = λ·t[g]"
                        } else {
                            "r[g] = Σ max(|Y[g,·]| - ν[g], 0) with ν[g] = λ·r[g]"
                        };
                        writeln!(
                            f,
                            "{what}, λ with sqrt Σ (·)² = R   ({} × {group_len})",
                            plural(*groups, "group"),
                        )?;
                        writeln!(
                            f,
                            "{:20}passes: one gathering every group's magnitudes, sorted (memory: twice the data in f64); then λ by bisection",
                            ""
                        )?;
                    }
                    _ => {
                        writeln!(
                            f,
                            "θ and μ[g] with Σ max(|Y[g,·]| - μ[g], 0) = θ for groups with Σ|Y[g,·]| > θ (μ[g] = 0 for the others), Σ μ[g] = R   ({} × {group_len})",
                            plural(*groups, "group"),
                        )?;
                        writeln!(
                            f,
                            "{:20}passes: a histogram of |Y[g,·]| per group on [0, V{}[g]], a bracket on θ from it, one gathering the entries near each μ[g]; then θ exactly",
                            "",
                            k - 1
                        )?;
                    }
                },
                Step::Threshold { groups, group_len } => writeln!(
                    f,
                    "τ[g] with Σ max(|Y[g,·]| - τ[g], 0) = r[g], for groups with V{}[g] > r[g] > 0   ({groups} × {group_len})",
                    k - 1
                )?,
                Step::Apply { op, .. } => {
                    let r = if self.method == Method::Exact(ExactMethod::L1Linf) {
                        "μ[g]".to_string()
                    } else if self.method == Method::Exact(ExactMethod::L2Linf) {
                        "t[g]".to_string()
                    } else if k == 1 {
                        "R".to_string()
                    } else {
                        format!("U{}[g]", k - 1)
                    };
                    let what = match op {
                        ApplyOp::Clip => format!("clip(Y[g,·], -r, r) with r = {r}"),
                        ApplyOp::Scale => format!("Y[g,·] · r / V{}[g] with r = {r}", k - 1),
                        ApplyOp::Shrink => "sign(Y[g,·]) · max(|Y[g,·]| - τ[g], 0)".to_string(),
                    };
                    writeln!(f, "X[g,·] = {what}")?;
                    writeln!(
                        f,
                        "{:20}skip: untouched if r ≥ V{}[g]; zero-filled without reading if r = 0",
                        "",
                        k - 1
                    )?;
                }
            }
        }
        self.schedule.fmt_decisions(f, self.tensor.len())?;
        f.write_str("  ")?;
        write_radius(f, &self.radius)?;
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Split;
    use crate::tensor::DType;

    fn plan_for(spec: &str, tensor: TensorInfo) -> Plan {
        let spec = multiproj_grammar::parse(spec).unwrap();
        plan(&crate::check(&spec, &tensor).unwrap())
    }

    fn loops(p: &Plan) -> Vec<(Vec<usize>, usize, isize, isize, isize)> {
        p.schedule()
            .loops()
            .iter()
            .map(|l| {
                (
                    l.axes.clone(),
                    l.extent,
                    l.stride,
                    l.group_stride,
                    l.out_stride,
                )
            })
            .collect()
    }

    #[test]
    fn row_groups_in_c_order() {
        let p = plan_for(
            "l1 over dim0 of linf over dim1",
            TensorInfo::c_order(&[64, 48], DType::F64),
        );
        assert_eq!((p.groups(), p.group_len()), (64, 48));
        assert_eq!(
            loops(&p),
            vec![(vec![0], 64, 48, 1, 48), (vec![1], 48, 1, 0, 1)]
        );
        assert_eq!(
            p.schedule().split(),
            Some(Split {
                loop_index: 0,
                reduced: false
            })
        );
        assert_eq!(p.output(), p.tensor());
    }

    #[test]
    fn column_groups_are_walked_row_by_row() {
        // Groups are columns (axis 1); memory order is still rows outermost.
        let p = plan_for(
            "l1 over dim1 of linf over dim0",
            TensorInfo::c_order(&[48, 64], DType::F64),
        );
        assert_eq!(p.schedule().memory_order(), vec![0, 1]);
        assert_eq!(
            loops(&p),
            vec![(vec![0], 48, 64, 0, 64), (vec![1], 64, 1, 1, 1)]
        );
        assert_eq!(
            p.schedule().split(),
            Some(Split {
                loop_index: 0,
                reduced: true
            })
        );
    }

    #[test]
    fn fortran_order_puts_axis_0_innermost() {
        let p = plan_for(
            "l1 over dim0 of linf over dim1",
            TensorInfo::f_order(&[30, 20], DType::F64),
        );
        assert_eq!(p.schedule().memory_order(), vec![1, 0]);
        assert_eq!(
            loops(&p),
            vec![(vec![1], 20, 30, 0, 30), (vec![0], 30, 1, 1, 1)]
        );
        assert_eq!(p.output(), p.tensor());
    }

    #[test]
    fn contiguous_axes_coalesce() {
        let p = plan_for(
            "l1 over dim0 of linf over dims1..2",
            TensorInfo::c_order(&[16, 8, 12], DType::F32),
        );
        assert_eq!(
            loops(&p),
            vec![(vec![0], 16, 96, 1, 96), (vec![1, 2], 96, 1, 0, 1)]
        );
        // A single level over everything is one flat loop.
        let p = plan_for(
            "l2 over dims 0..",
            TensorInfo::c_order(&[4, 5, 6], DType::F64),
        );
        assert_eq!(loops(&p), vec![(vec![0, 1, 2], 120, 1, 0, 1)]);
        assert_eq!((p.groups(), p.group_len()), (1, 120));
    }

    #[test]
    fn permuted_levels_get_level_major_group_index() {
        // Levels: l1 over {2}, l1 over {0}, linf over {1}; groups indexed by (a2, a0).
        let p = plan_for(
            "l1 over dim2 of l1 over dim0 of linf over dim1",
            TensorInfo::c_order(&[6, 7, 9], DType::F64),
        );
        assert_eq!(p.group_strides(), vec![1, 0, 6]);
        assert_eq!((p.groups(), p.group_len()), (54, 7));
        assert_eq!(p.aggregate_sizes(), vec![1, 9, 54]);
        let names: Vec<&str> = p.steps().iter().map(Step::name).collect();
        assert_eq!(
            names,
            [
                "reduce",
                "upper-reduce",
                "upper-reduce",
                "solve",
                "solve",
                "apply"
            ]
        );
    }

    #[test]
    fn negative_strides_are_flipped() {
        // A [3, 4] C-order tensor viewed with axis 0 reversed: strides [-4, 1], origin at row 2.
        let t = TensorInfo {
            shape: vec![3, 4],
            strides: vec![-4, 1],
            dtype: DType::F64,
        };
        let p = plan_for("l1 over dim0 of linf over dim1", t);
        assert_eq!(p.schedule().data_start(), -8);
        assert_eq!(p.schedule().group_start(), 2);
        assert_eq!(p.schedule().out_start(), 8);
        assert_eq!(
            loops(&p),
            vec![(vec![0], 3, 4, -1, -4), (vec![1], 4, 1, 0, 1)]
        );
    }

    #[test]
    fn size_one_axes_vanish_from_loops() {
        let p = plan_for(
            "l1 over dims 0,1 of linf over dim2",
            TensorInfo::c_order(&[1, 5, 1], DType::F64),
        );
        assert_eq!(loops(&p), vec![(vec![1], 5, 1, 1, 1)]);
        let p = plan_for(
            "linf over dims 0..1",
            TensorInfo::c_order(&[1, 1], DType::F64),
        );
        assert!(p.schedule().loops().is_empty());
        assert_eq!(p.schedule().split(), None);
    }

    #[test]
    fn innermost_l1_gets_a_threshold_stage() {
        let p = plan_for(
            "l1 over dim0 of l1 over dim1",
            TensorInfo::c_order(&[4, 5], DType::F64),
        );
        assert!(p.steps().contains(&Step::Threshold {
            groups: 4,
            group_len: 5
        }));
        assert!(matches!(
            p.steps().last(),
            Some(Step::Apply {
                op: ApplyOp::Shrink,
                ..
            })
        ));
    }

    #[test]
    fn merged_levels_are_planned_as_one() {
        let p = plan_for(
            "l1 over dim0 of linf over dim1 of linf over dim2",
            TensorInfo::c_order(&[16, 8, 12], DType::F64),
        );
        assert_eq!(p.levels().len(), 2);
        assert_eq!(p.levels()[1].axes, vec![1, 2]);
        assert_eq!(p.rules_applied().len(), 1);
        assert_eq!(p.rules_applied()[0].rule, "merge-linf-linf");
    }
}
