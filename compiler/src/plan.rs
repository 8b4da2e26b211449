//! The planner: turns checked, normalized levels into the passes a backend runs.
//!
//! The *algorithm* is the level tree (`docs/SEMANTICS.md`); the *schedule* is how the passes over the big
//! tensor walk memory. Both are decided here, once, so every backend executes the same plan:
//!
//! - **Groups.** With `k` levels, the innermost groups are indexed by the axes of levels
//!   `1..k-1`; the group index is row-major over those axes taken level by level (each level's
//!   axes ascending). So the aggregate `V_j` (`j < k`) is a dense vector of `n_1·…·n_j` entries,
//!   and the segments a level-`j` projection works on are contiguous runs of `n_j` entries.
//! - **Loop order.** Data passes visit axes in memory order (largest |stride| outermost), so
//!   column-wise groups are walked row by row with a vector of group accumulators, never column by
//!   column. Negative strides are walked forwards in memory by flipping the axis (and its group
//!   and output strides with it). Axes that are contiguous in data, in group index and in output
//!   are coalesced into one loop.
//! - **Parallel split.** The outermost loop is split across threads. Precondition: if that loop
//!   runs over a reduced axis (group stride 0), threads share groups, so the reduce pass needs
//!   per-thread accumulators merged afterwards; the apply pass writes disjoint elements and can
//!   always be split.
//! - **Skip rules** (decided after the solve, per group `g` with radius `r_g` and norm `V[g]`):
//!   `r_g ≥ V[g]` leaves the group untouched (not written in place, copied out of place);
//!   `r_g = 0` fills it with zeros without reading it.

use std::fmt;

use multiproj_grammar::{Norm, Span, Spanned};

use crate::ir::{AxisSet, Ir, IrLevel, write_norm_formula, write_radius};
use crate::normalize::{Applied, normalize};
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

/// One loop of a pass over the data, possibly several coalesced axes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loop {
    /// The tensor axes this loop runs over, outermost first.
    pub axes: Vec<usize>,
    pub extent: usize,
    /// Data stride in elements; never negative (negative axes are flipped).
    pub stride: isize,
    /// Step of the innermost-group index; 0 when the loop runs inside a group (reduced axes).
    pub group_stride: isize,
    /// Stride of the out-of-place output (see [`Plan::output`]).
    pub out_stride: isize,
}

impl Loop {
    pub fn is_reduced(&self) -> bool {
        self.group_stride == 0
    }
}

/// Which loop is split across threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Index into [`Plan::loops`].
    pub loop_index: usize,
    /// The split loop runs over a reduced axis: the reduce pass needs per-thread accumulators.
    pub reduced: bool,
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

/// A stage of the plan, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
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

impl Stage {
    /// A short name, used for statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Reduce { .. } => "reduce",
            Stage::UpperReduce { .. } => "upper-reduce",
            Stage::Solve { .. } => "solve",
            Stage::Threshold { .. } => "threshold",
            Stage::Apply { .. } => "apply",
        }
    }
}

/// Everything a backend needs to run a projection of one tensor layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub source: String,
    pub tensor: TensorInfo,
    /// Layout of an out-of-place result: dense, same shape and dtype, and the same memory order
    /// of axes as the input (so a C input gives a C output, an F input an F output).
    pub output: TensorInfo,
    /// The normalized levels, outermost first. Never empty.
    pub levels: Vec<PlanLevel>,
    /// The normalization rules that were applied.
    pub rules_applied: Vec<Applied>,
    /// Number of innermost groups: `n_1·…·n_{k-1}` (1 for a single level).
    pub groups: usize,
    /// Entries per innermost group: `n_k`.
    pub group_len: usize,
    /// Axes by memory order, outermost first (ties broken by axis number).
    pub memory_order: Vec<usize>,
    /// Per tensor axis: step of the innermost-group index (0 for the innermost level's axes).
    pub group_strides: Vec<usize>,
    /// The loop nest of the data passes, outermost first, after flipping and coalescing.
    /// Empty when the tensor has a single element.
    pub loops: Vec<Loop>,
    /// Element offset (from the logical origin) of the first element the loop nest visits.
    pub data_start: isize,
    /// Group index of the first element the loop nest visits.
    pub group_start: isize,
    /// Output element offset of the first element the loop nest visits.
    pub out_start: isize,
    pub split: Option<Split>,
    pub stages: Vec<Stage>,
    /// The radius fixed in the spec, if any.
    pub radius: Option<Spanned<f64>>,
}

impl Plan {
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
    let normalized = normalize(&ir.levels);
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

    // Memory order: largest |stride| outermost; ties (size-1 axes, broadcasts) by axis number.
    let mut memory_order: Vec<usize> = (0..rank).collect();
    memory_order.sort_by_key(|&a| (std::cmp::Reverse(ir.tensor.strides[a].unsigned_abs()), a));

    // The out-of-place output is dense in that same order.
    let mut out_strides = vec![0isize; rank];
    let mut s = 1isize;
    for &a in memory_order.iter().rev() {
        out_strides[a] = s;
        s *= shape[a] as isize;
    }
    let output = TensorInfo {
        shape: shape.clone(),
        strides: out_strides.clone(),
        dtype: ir.tensor.dtype,
    };

    let (mut data_start, mut group_start, mut out_start) = (0isize, 0isize, 0isize);
    let mut loops: Vec<Loop> = Vec::new();
    for &a in &memory_order {
        let n = shape[a];
        if n == 1 {
            continue;
        }
        let (mut stride, mut gs, mut os) = (
            ir.tensor.strides[a],
            group_strides[a] as isize,
            out_strides[a],
        );
        if stride < 0 {
            let last = n as isize - 1;
            data_start += last * stride;
            group_start += last * gs;
            out_start += last * os;
            stride = -stride;
            gs = -gs;
            os = -os;
        }
        let next = Loop {
            axes: vec![a],
            extent: n,
            stride,
            group_stride: gs,
            out_stride: os,
        };
        match loops.last_mut() {
            Some(outer)
                if outer.stride == next.stride * n as isize
                    && outer.group_stride == next.group_stride * n as isize
                    && outer.out_stride == next.out_stride * n as isize =>
            {
                outer.axes.push(a);
                outer.extent *= n;
                outer.stride = next.stride;
                outer.group_stride = next.group_stride;
                outer.out_stride = next.out_stride;
            }
            _ => loops.push(next),
        }
    }
    let split = loops.first().map(|l| Split {
        loop_index: 0,
        reduced: l.is_reduced(),
    });

    let mut stages = vec![Stage::Reduce {
        norm: levels[k - 1].norm,
        groups,
        group_len,
    }];
    let mut sizes = vec![1usize];
    for l in &levels[..k - 1] {
        sizes.push(sizes.last().unwrap() * l.extent);
    }
    for j in (1..k).rev() {
        stages.push(Stage::UpperReduce {
            level: j,
            norm: levels[j - 1].norm,
            segments: sizes[j - 1],
            segment_len: levels[j - 1].extent,
        });
    }
    for j in 1..k {
        stages.push(Stage::Solve {
            level: j,
            norm: levels[j - 1].norm,
            segments: sizes[j - 1],
            segment_len: levels[j - 1].extent,
        });
    }
    if levels[k - 1].norm == Norm::L1 {
        stages.push(Stage::Threshold { groups, group_len });
    }
    stages.push(Stage::Apply {
        op: ApplyOp::for_norm(levels[k - 1].norm),
        groups,
        group_len,
    });

    Plan {
        source: ir.source.clone(),
        tensor: ir.tensor.clone(),
        output,
        levels,
        rules_applied: normalized.applied,
        groups,
        group_len,
        memory_order,
        group_strides,
        loops,
        data_start,
        group_start,
        out_start,
        split,
        stages,
        radius: ir.radius.clone(),
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
        let as_ir: Vec<IrLevel> = self
            .levels
            .iter()
            .map(|l| IrLevel {
                norm: l.norm,
                axes: l.axes.clone(),
                span: l.span,
            })
            .collect();
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
        f.write_str("  loops (memory order):")?;
        if self.loops.is_empty() {
            f.write_str(" none (a single element)")?;
        }
        writeln!(f)?;
        for (depth, l) in self.loops.iter().enumerate() {
            writeln!(
                f,
                "  {:indent$}for axes {} in 0..{}  stride {}, {}, out stride {}",
                "",
                AxisSet(&l.axes),
                l.extent,
                l.stride,
                if l.is_reduced() {
                    "inside a group".to_string()
                } else {
                    format!("group step {}", l.group_stride)
                },
                l.out_stride,
                indent = 2 * depth + 2
            )?;
        }
        if self.data_start != 0 || self.group_start != 0 || self.out_start != 0 {
            writeln!(
                f,
                "  start: data {}, group {}, out {} (flipped axes)",
                self.data_start, self.group_start, self.out_start
            )?;
        }
        match self.split {
            Some(s) if s.reduced => writeln!(
                f,
                "  parallel: split loop {} across threads; it runs inside groups, so reduce uses per-thread accumulators",
                s.loop_index + 1
            )?,
            Some(s) => writeln!(
                f,
                "  parallel: split loop {} across threads; threads own whole groups",
                s.loop_index + 1
            )?,
            None => writeln!(f, "  parallel: none")?,
        }
        writeln!(f, "  stages:")?;
        for (i, st) in self.stages.iter().enumerate() {
            write!(f, "    {}. {:<13}", i + 1, st.name())?;
            match st {
                Stage::Reduce {
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
                Stage::UpperReduce {
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
                Stage::Solve {
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
                Stage::Threshold { groups, group_len } => writeln!(
                    f,
                    "τ[g] with Σ max(|Y[g,·]| - τ[g], 0) = r[g], for groups with V{}[g] > r[g] > 0   ({groups} × {group_len})",
                    k - 1
                )?,
                Stage::Apply { op, .. } => {
                    let r = if k == 1 {
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
        f.write_str("  ")?;
        write_radius(f, &self.radius)?;
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    fn plan_for(spec: &str, tensor: TensorInfo) -> Plan {
        let spec = multiproj_grammar::parse(spec).unwrap();
        plan(&crate::check(&spec, &tensor).unwrap())
    }

    fn loops(p: &Plan) -> Vec<(Vec<usize>, usize, isize, isize, isize)> {
        p.loops
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
        assert_eq!((p.groups, p.group_len), (64, 48));
        assert_eq!(
            loops(&p),
            vec![(vec![0], 64, 48, 1, 48), (vec![1], 48, 1, 0, 1)]
        );
        assert_eq!(
            p.split,
            Some(Split {
                loop_index: 0,
                reduced: false
            })
        );
        assert_eq!(p.output, p.tensor);
    }

    #[test]
    fn column_groups_are_walked_row_by_row() {
        // Groups are columns (axis 1); memory order is still rows outermost.
        let p = plan_for(
            "l1 over dim1 of linf over dim0",
            TensorInfo::c_order(&[48, 64], DType::F64),
        );
        assert_eq!(p.memory_order, vec![0, 1]);
        assert_eq!(
            loops(&p),
            vec![(vec![0], 48, 64, 0, 64), (vec![1], 64, 1, 1, 1)]
        );
        assert_eq!(
            p.split,
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
        assert_eq!(p.memory_order, vec![1, 0]);
        assert_eq!(
            loops(&p),
            vec![(vec![1], 20, 30, 0, 30), (vec![0], 30, 1, 1, 1)]
        );
        assert_eq!(p.output, p.tensor);
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
        assert_eq!((p.groups, p.group_len), (1, 120));
    }

    #[test]
    fn permuted_levels_get_level_major_group_index() {
        // Levels: l1 over {2}, l1 over {0}, linf over {1}; groups indexed by (a2, a0).
        let p = plan_for(
            "l1 over dim2 of l1 over dim0 of linf over dim1",
            TensorInfo::c_order(&[6, 7, 9], DType::F64),
        );
        assert_eq!(p.group_strides, vec![1, 0, 6]);
        assert_eq!((p.groups, p.group_len), (54, 7));
        assert_eq!(p.aggregate_sizes(), vec![1, 9, 54]);
        let names: Vec<&str> = p.stages.iter().map(Stage::name).collect();
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
        assert_eq!(p.data_start, -8);
        assert_eq!(p.group_start, 2);
        assert_eq!(p.out_start, 8);
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
        assert!(p.loops.is_empty());
        assert_eq!(p.split, None);
    }

    #[test]
    fn innermost_l1_gets_a_threshold_stage() {
        let p = plan_for(
            "l1 over dim0 of l1 over dim1",
            TensorInfo::c_order(&[4, 5], DType::F64),
        );
        assert!(p.stages.contains(&Stage::Threshold {
            groups: 4,
            group_len: 5
        }));
        assert!(matches!(
            p.stages.last(),
            Some(Stage::Apply {
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
        assert_eq!(p.levels.len(), 2);
        assert_eq!(p.levels[1].axes, vec![1, 2]);
        assert_eq!(p.rules_applied.len(), 1);
        assert_eq!(p.rules_applied[0].rule, "merge-linf-linf");
    }
}
