//! The schedule: *how* the passes over the big tensor walk memory, apart from *what* they compute
//! (the level tree of [`crate::Plan`]). Every schedule decision of every backend is made here,
//! once, from the tensor's layout, and [`Schedule`]'s `Display` (part of `multiproj explain`)
//! prints each one with its precondition:
//!
//! - **Loop order.** Data passes visit axes in memory order (largest |stride| outermost), so
//!   column-wise groups are walked row by row with a vector of group accumulators, never column by
//!   column. Negative strides are walked forwards in memory by flipping the axis (and its group
//!   and output strides with it). Axes that are contiguous in data, in group index and in output
//!   are coalesced into one loop.
//! - **Output layout.** An out-of-place result is dense, in the input's memory order of axes.
//! - **Parallel split.** The outermost loop is split across threads, in chunks of about
//!   [`CHUNK_ELEMENTS`] elements; tensors below [`PARALLEL_MIN`] elements run as one chunk.
//!   Chunk boundaries depend only on the shape, never on the number of threads. If the split loop
//!   runs over a reduced axis (group stride 0), chunks share groups, so the reduce pass gives each
//!   chunk its own accumulators, merged in chunk order (and the chunk count is capped so those
//!   stay small next to the tensor); the apply pass writes disjoint elements and can always be
//!   split.
//! - **Kernel shape** ([`KernelShape`]): the innermost loop runs inside one group or across
//!   groups; it is vectorized when contiguous; column-wise groups inside an enclosing in-group
//!   loop are unrolled-and-jammed, [`JAM_ROWS_REDUCE`] rows at a time in the reduce pass and
//!   [`JAM_ROWS_APPLY`] in the apply pass.
//! - **Threshold schedule** ([`ThresholdSchedule`], innermost l1 only).
//!
//! The skip rules (untouched, zero-filled groups) depend on the data and are decided by the
//! solve at run time; `docs/SEMANTICS.md` states them.

use std::fmt;

use crate::ir::AxisSet;
use crate::tensor::TensorInfo;

/// Below this many elements a pass runs as one chunk on the calling thread.
pub const PARALLEL_MIN: usize = 1 << 16;
/// Target size of a parallel chunk, in elements: big enough to amortize scheduling.
pub const CHUNK_ELEMENTS: usize = 1 << 18;
/// Groups of the innermost loop a column-wise gather handles per tile.
pub const GATHER_TILE: usize = 256;
/// Runs of the innermost loop a jammed reduce kernel processes together (see
/// [`KernelShape::jam`]). Each group's accumulator is loaded and stored once per this many rows,
/// so more rows mean less traffic to the accumulators, which for a few thousand columns live in
/// the L2 cache: measured on 4096² column groups, 8 rows take 10–30% less time than 4.
pub const JAM_ROWS_REDUCE: usize = 8;
/// The same for the apply kernels, which write as many rows as they read: 8 rows make 16
/// streams of memory at once, which measured 40–60% slower than 4 rows' 8 on 4096² column
/// groups.
pub const JAM_ROWS_APPLY: usize = 4;
/// The most rows any kernel jams.
pub const MAX_JAM_ROWS: usize = if JAM_ROWS_REDUCE > JAM_ROWS_APPLY {
    JAM_ROWS_REDUCE
} else {
    JAM_ROWS_APPLY
};

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
    /// Stride of the out-of-place output (see [`Schedule::output`]).
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
    /// Index into [`Schedule::loops`].
    pub loop_index: usize,
    /// The split loop runs over a reduced axis: the reduce pass needs per-thread accumulators.
    pub reduced: bool,
}

/// A pass over the data, as far as the schedule distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PassKind {
    Reduce,
    /// The threshold stage's gather of `|y|` (innermost l1).
    Gather,
    /// The apply pass into a separate output.
    Apply,
    /// The apply pass in place.
    ApplyInPlace,
}

/// The structure a kernel is specialized on (besides its pass, norm and element type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelShape {
    /// Number of loops of the nest (at least 1).
    pub depth: usize,
    /// The innermost loop runs inside one group (group stride 0): one group per run.
    pub inner_reduced: bool,
    /// The innermost loop is contiguous in the data (and in the output, out of place, and in the
    /// group index when it is not reduced), so it is vectorized.
    pub inner_contiguous: bool,
    /// Column-wise groups whose enclosing loop stays inside the groups (group stride 0): the
    /// reduce and apply kernels take this many runs of that loop at once
    /// ([`JAM_ROWS_REDUCE`], [`JAM_ROWS_APPLY`]; 0 when not jammed), so each group's
    /// accumulator, parameters and masks are loaded (and stored) once per that many rows of
    /// data instead of once per row (unroll-and-jam; the order of every group's fold is
    /// unchanged).
    pub jam: usize,
}

/// How the threshold stage (innermost l1) gathers the groups that need a soft threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdSchedule {
    /// *Chunks own their groups* (the split loop is not reduced and there are several chunks:
    /// row-wise groups, the common case). Each chunk gathers its own groups into a buffer of its
    /// own (about [`CHUNK_ELEMENTS`] f64, reused by the thread, so it stays in cache) and
    /// thresholds them right away: one read of the data, no tensor-sized buffer.
    ByChunk,
    /// *Chunks share groups* (column-wise groups, one group, or one chunk): one buffer for all
    /// gathered groups, which chunks fill in parallel in memory order. With `tiled`, the
    /// innermost loop runs across more than [`GATHER_TILE`] groups and a chunk is cut into tiles
    /// of that many, so the scattered stores of a row go to few pages.
    OneBuffer { tiled: bool },
}

/// How the passes over one tensor layout walk memory. Built only by [`crate::plan()`].
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    output: TensorInfo,
    memory_order: Vec<usize>,
    loops: Vec<Loop>,
    data_start: isize,
    group_start: isize,
    out_start: isize,
    split: Option<Split>,
    apply_chunks: Chunks,
    reduce_chunks: Chunks,
    threshold: Option<ThresholdSchedule>,
}

/// How the split loop (loop 0) is cut into parallel chunks: consecutive ranges of `step`
/// indices (the last one shorter). Boundaries depend only on the shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks {
    /// Extent of loop 0 (1 without loops).
    extent: usize,
    step: usize,
}

impl Chunks {
    /// Loop-0 indices per chunk (of the first chunk: the last one may be shorter).
    pub fn step(&self) -> usize {
        self.step.min(self.extent)
    }

    /// Number of chunks (at least 1).
    pub fn len(&self) -> usize {
        self.extent.div_ceil(self.step).max(1)
    }

    /// Never: there is always at least one chunk.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The loop-0 ranges `begin..end`, in order.
    pub fn ranges(&self) -> Vec<(usize, usize)> {
        if self.extent == 0 {
            return vec![(0, 0)];
        }
        (0..self.extent)
            .step_by(self.step)
            .map(|b| (b, (b + self.step).min(self.extent)))
            .collect()
    }
}

impl Schedule {
    /// Schedules the passes over a tensor with layout `tensor`, whose innermost groups are
    /// numbered by `group_strides` (per axis; 0 for the innermost level's axes). `l1_threshold`:
    /// the plan has a threshold stage.
    pub(crate) fn new(
        tensor: &TensorInfo,
        group_strides: &[usize],
        groups: usize,
        l1_threshold: bool,
    ) -> Schedule {
        let shape = &tensor.shape;
        let rank = shape.len();
        // Memory order: largest |stride| outermost; ties (size-1 axes, broadcasts) by axis number.
        let mut memory_order: Vec<usize> = (0..rank).collect();
        memory_order.sort_by_key(|&a| (std::cmp::Reverse(tensor.strides[a].unsigned_abs()), a));

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
            dtype: tensor.dtype,
        };

        let (mut data_start, mut group_start, mut out_start) = (0isize, 0isize, 0isize);
        let mut loops: Vec<Loop> = Vec::new();
        for &a in &memory_order {
            let n = shape[a];
            if n == 1 {
                continue;
            }
            let (mut stride, mut gs, mut os) =
                (tensor.strides[a], group_strides[a] as isize, out_strides[a]);
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
        let len = tensor.len();
        let split_reduced = split.is_some_and(|s| s.reduced);
        let apply_chunks = chunks(&loops, len, groups, false);
        let reduce_chunks = chunks(&loops, len, groups, split_reduced);
        let threshold = l1_threshold.then(|| {
            if !split_reduced && reduce_chunks.len() > 1 {
                ThresholdSchedule::ByChunk
            } else {
                ThresholdSchedule::OneBuffer {
                    tiled: loops.len() > 1
                        && loops
                            .last()
                            .is_some_and(|l| !l.is_reduced() && l.extent > GATHER_TILE),
                }
            }
        });
        Schedule {
            output,
            memory_order,
            loops,
            data_start,
            group_start,
            out_start,
            split,
            apply_chunks,
            reduce_chunks,
            threshold,
        }
    }

    /// Layout of an out-of-place result: dense, same shape and dtype, and the same memory order
    /// of axes as the input (so a C input gives a C output, an F input an F output).
    pub fn output(&self) -> &TensorInfo {
        &self.output
    }

    /// Axes by memory order, outermost first (ties broken by axis number).
    pub fn memory_order(&self) -> &[usize] {
        &self.memory_order
    }

    /// The loop nest of the data passes, outermost first, after flipping and coalescing.
    /// Empty when the tensor has a single element.
    pub fn loops(&self) -> &[Loop] {
        &self.loops
    }

    /// Element offset (from the logical origin) of the first element the loop nest visits.
    pub fn data_start(&self) -> isize {
        self.data_start
    }

    /// Group index of the first element the loop nest visits.
    pub fn group_start(&self) -> isize {
        self.group_start
    }

    /// Output element offset of the first element the loop nest visits.
    pub fn out_start(&self) -> isize {
        self.out_start
    }

    /// The loop split across threads, if any.
    pub fn split(&self) -> Option<Split> {
        self.split
    }

    /// The split loop runs inside groups: chunks share groups.
    pub fn split_reduced(&self) -> bool {
        self.split.is_some_and(|s| s.reduced)
    }

    /// The chunks of the apply pass (they write disjoint elements).
    pub fn apply_chunks(&self) -> Chunks {
        self.apply_chunks
    }

    /// The chunks of the reduce pass and the threshold gather. When
    /// [`Schedule::split_reduced`], each chunk has its own accumulators (merged in chunk order),
    /// and their number is capped so they stay small next to the tensor.
    pub fn reduce_chunks(&self) -> Chunks {
        self.reduce_chunks
    }

    /// Elements one loop-0 index covers, for a tensor of `len` elements.
    pub fn elements_per_index(&self, len: usize) -> usize {
        len / self.loops.first().map_or(1, |l| l.extent).max(1)
    }

    /// How the threshold stage gathers; `None` when the plan has no threshold stage.
    pub fn threshold(&self) -> Option<ThresholdSchedule> {
        self.threshold
    }

    /// The kernel structure of `pass`.
    pub fn kernel_shape(&self, pass: PassKind) -> KernelShape {
        let inner = self.loops.last();
        let inner_reduced = inner.is_none_or(|l| l.is_reduced());
        let inner_contiguous = match inner {
            None => true,
            Some(l) => {
                l.stride == 1
                    && (l.is_reduced() || l.group_stride == 1)
                    && (pass != PassKind::Apply || l.out_stride == 1)
            }
        };
        let outer_in_group = self.loops.len() >= 2 && self.loops[self.loops.len() - 2].is_reduced();
        let jam = match pass {
            _ if inner_reduced || !inner_contiguous || !outer_in_group => 0,
            PassKind::Reduce => JAM_ROWS_REDUCE,
            PassKind::Apply | PassKind::ApplyInPlace => JAM_ROWS_APPLY,
            PassKind::Gather => 0,
        };
        KernelShape {
            depth: self.loops.len().max(1),
            inner_reduced,
            inner_contiguous,
            jam,
        }
    }
}

/// How loop 0 is cut into chunks. With `separate_accumulators`, the count is capped so the
/// per-chunk accumulator arrays stay small next to the tensor.
fn chunks(loops: &[Loop], len: usize, groups: usize, separate_accumulators: bool) -> Chunks {
    let n0 = loops.first().map_or(1, |l| l.extent);
    if len < PARALLEL_MIN || n0 < 2 {
        return Chunks {
            extent: n0,
            step: n0.max(1),
        };
    }
    let per_index = len / n0;
    let mut step = (CHUNK_ELEMENTS / per_index.max(1)).max(1);
    if separate_accumulators {
        let max_chunks = (len / (4 * groups.max(1))).max(1);
        step = step.max(n0.div_ceil(max_chunks));
    }
    Chunks { extent: n0, step }
}

impl fmt::Display for KernelShape {
    /// Each decision with its precondition.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.inner_reduced {
            "a run per group (the innermost loop stays inside a group)"
        } else {
            "runs across groups (the innermost loop steps through groups)"
        })?;
        f.write_str(if self.inner_contiguous {
            "; vectorized (it is contiguous)"
        } else {
            "; strided (it is not contiguous)"
        })?;
        if self.jam > 0 {
            write!(
                f,
                "; {} rows jammed (the loop around it stays inside groups)",
                self.jam
            )?;
        }
        Ok(())
    }
}

impl Schedule {
    /// The loop nest and the parallel split, as `multiproj explain` prints them before the
    /// plan's stages.
    pub(crate) fn fmt_loops(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        Ok(())
    }

    /// The rest of the schedule, printed after the plan's stages: each decision with its
    /// precondition.
    pub(crate) fn fmt_decisions(&self, f: &mut fmt::Formatter<'_>, elements: usize) -> fmt::Result {
        writeln!(f, "  schedule:")?;
        let describe = |c: &Chunks| {
            if c.len() > 1 {
                format!(
                    "{} chunks of {} loop-1 indices (~{} elements each; target {CHUNK_ELEMENTS})",
                    c.len(),
                    c.step(),
                    c.step().saturating_mul(self.elements_per_index(elements))
                )
            } else if elements < PARALLEL_MIN {
                format!("1 chunk (fewer than {PARALLEL_MIN} elements)")
            } else {
                "1 chunk (loop 1 has a single index)".to_string()
            }
        };
        writeln!(f, "    apply chunks:  {}", describe(&self.apply_chunks))?;
        if self.split_reduced() && self.reduce_chunks.len() > 1 {
            writeln!(
                f,
                "    reduce chunks: {}; per-chunk accumulators merged in chunk order (split loop inside groups)",
                describe(&self.reduce_chunks)
            )?;
        } else {
            writeln!(f, "    reduce chunks: {}", describe(&self.reduce_chunks))?;
        }
        writeln!(f, "    kernels:")?;
        let mut passes = vec![("reduce", PassKind::Reduce)];
        if self.threshold.is_some() {
            passes.push(("gather", PassKind::Gather));
        }
        passes.extend([
            ("apply", PassKind::Apply),
            ("in place", PassKind::ApplyInPlace),
        ]);
        for (name, pass) in passes {
            writeln!(f, "      {name:<9} {}", self.kernel_shape(pass))?;
        }
        match self.threshold {
            None => {}
            Some(ThresholdSchedule::ByChunk) => writeln!(
                f,
                "    threshold: by chunk (chunks own their groups): gathered and solved per chunk, no tensor-sized buffer"
            )?,
            Some(ThresholdSchedule::OneBuffer { tiled }) => writeln!(
                f,
                "    threshold: one buffer (chunks share groups, or one chunk){}",
                if tiled {
                    format!("; the innermost loop cut into tiles of {GATHER_TILE} groups")
                } else {
                    String::new()
                }
            )?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;
    use crate::{Plan, check, plan};

    fn plan_for(spec: &str, shape: &[usize]) -> Plan {
        let spec = multiproj_grammar::parse(spec).unwrap();
        plan(&check(&spec, &TensorInfo::c_order(shape, DType::F64)).unwrap())
    }

    #[test]
    fn small_tensors_run_as_one_chunk() {
        let p = plan_for("l1 over dim0 of l1 over dim1", &[64, 48]);
        let s = p.schedule();
        assert_eq!(s.apply_chunks().ranges(), vec![(0, 64)]);
        assert_eq!(s.reduce_chunks().len(), 1);
        assert_eq!(
            s.threshold(),
            Some(ThresholdSchedule::OneBuffer { tiled: false })
        );
    }

    #[test]
    fn row_groups_split_into_chunks_that_own_their_groups() {
        // 4096 rows of 1024: 256 rows (2^18 elements) per chunk.
        let p = plan_for("l1 over dim0 of l1 over dim1", &[4096, 1024]);
        let s = p.schedule();
        assert_eq!(s.apply_chunks().step(), 256);
        assert_eq!(s.apply_chunks().len(), 16);
        assert_eq!(s.reduce_chunks(), s.apply_chunks());
        assert_eq!(s.threshold(), Some(ThresholdSchedule::ByChunk));
        let shape = s.kernel_shape(PassKind::Reduce);
        assert!(shape.inner_reduced && shape.inner_contiguous && shape.jam == 0);
        // linf groups have no threshold stage.
        let p = plan_for("l1 over dim0 of linf over dim1", &[4096, 1024]);
        assert_eq!(p.schedule().threshold(), None);
    }

    #[test]
    fn column_groups_share_chunks_and_tile_the_gather() {
        // Groups are the 1024 columns: the split loop (rows) runs inside groups, so the reduce
        // needs per-chunk accumulators, capped at len / (4 · groups) = 1024 chunks; here the
        // element target gives 16.
        let p = plan_for("l1 over dim1 of l1 over dim0", &[4096, 1024]);
        let s = p.schedule();
        assert!(s.split_reduced());
        assert_eq!(s.reduce_chunks().len(), 16);
        assert_eq!(
            s.threshold(),
            Some(ThresholdSchedule::OneBuffer { tiled: true })
        );
        let shape = s.kernel_shape(PassKind::Reduce);
        assert!(!shape.inner_reduced && shape.inner_contiguous);
        assert_eq!(shape.jam, JAM_ROWS_REDUCE);
        assert_eq!(s.kernel_shape(PassKind::Apply).jam, JAM_ROWS_APPLY);
        assert_eq!(s.kernel_shape(PassKind::ApplyInPlace).jam, JAM_ROWS_APPLY);
        assert_eq!(s.kernel_shape(PassKind::Gather).jam, 0);
        // Many groups, few rows: the accumulator cap makes the chunks longer than the target.
        // 8 rows of 2^17 groups: two rows per chunk by the element target, but at most
        // 2^20 / (4 · 2^17) = 2 chunks of accumulators.
        let p = plan_for("l1 over dim1 of l1 over dim0", &[8, 1 << 17]);
        let s = p.schedule();
        assert_eq!(s.apply_chunks().len(), 4);
        assert_eq!(s.reduce_chunks().len(), 2);
    }

    #[test]
    fn a_huge_shape_is_scheduled_without_listing_its_chunks() {
        // 2^32 chunks of one row each: counted, not allocated.
        let p = plan_for("l1 over dim0 of linf over dim1", &[1 << 32, (1 << 29) - 1]);
        assert_eq!(p.schedule().apply_chunks().len(), 1 << 32);
        assert!(
            p.to_string()
                .contains("4294967296 chunks of 1 loop-1 indices")
        );
    }
}
