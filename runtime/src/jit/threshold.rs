//! The JIT's threshold pass (innermost l1).
//!
//! The generated gather kernel copies `|y|` (as f64) of the groups
//! that need a threshold into a group-major buffer, walking the tensor in memory order; each
//! group's run of the buffer then goes through Condat's algorithm, in parallel over groups. The
//! kernel finds a group's place through a per-group cursor (`-1`: not gathered), so it visits
//! each group's elements in memory order — the interpreter's order, so the thresholds are bit
//! for bit the interpreter's. Two schedules:
//! - *Chunks own their groups* (the split loop is not reduced: row-wise groups, the common case).
//!   Each chunk gathers its own groups into a buffer of its own (about [`CHUNK_ELEMENTS`] f64,
//!   reused by the thread, so it stays in cache) and thresholds them right away: one read of the
//!   data, no tensor-sized buffer.
//! - *Chunks share groups* (column-wise groups, or one group): one buffer for all gathered groups.
//!   A chunk over loop-0 indices `b..e` visits `group_len / n0` elements of every group per
//!   index, so its part of each group's run starts at `start[g] + b·group_len/n0`: chunks get
//!   their own cursor arrays and gather in parallel, and the buffer still ends up in memory
//!   order. When the innermost loop runs across groups, a chunk is further cut into tiles of
//!   [`GATHER_TILE`] groups of that loop, so the scattered stores of a row go to few pages.

use std::sync::Mutex;

use ndarray::ArrayViewD;
use rayon::prelude::*;

use multiproj_compiler::{GATHER_TILE, Norm, Plan, ThresholdSchedule};

use super::exec::{check_view, elements_per_index};
use super::module::{self as codegen, GatherKernel};
use crate::element::Element;
use crate::error::DataError;
use crate::progress::Ticker;
use crate::solve::{self, GroupAction};

/// The threshold stage (innermost l1): every group marked [`GroupAction::NeedsThreshold`]`(r)`
/// becomes [`GroupAction::Shrink`] with the soft threshold of its entries for radius `r` whose
/// stored results fit the radius (`balls::l1_group_threshold`) — exactly the interpreter's
/// thresholds: both gather a group's entries in memory order. See the module docs for the
/// schedule.
pub(crate) fn threshold<T: Element>(
    kernel: &GatherKernel,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    actions: &mut [GroupAction],
    ticker: &Ticker<'_>,
) -> Result<(), DataError> {
    check_view::<T>(plan.tensor(), x.shape(), x.strides())?;
    if actions.len() != plan.groups() {
        return Err(DataError::Internal(format!(
            "{} group actions for a plan with {} groups",
            actions.len(),
            plan.groups()
        )));
    }
    let needing: Vec<usize> = (0..actions.len())
        .filter(|&g| matches!(actions[g], GroupAction::NeedsThreshold(_)))
        .collect();
    if needing.is_empty() {
        return Ok(());
    }
    if plan.innermost().norm != Norm::L1 {
        return Err(DataError::Internal(
            "a group needs an l1 threshold in a plan whose innermost norm is not l1".into(),
        ));
    }
    if x.is_empty() {
        return Err(DataError::Internal(
            "a group of an empty tensor needs an l1 threshold".into(),
        ));
    }
    let gather = Gather {
        kernel: kernel.clone(),
        loops: codegen::loop_descriptor(plan),
        data: x.as_ptr().wrapping_offset(plan.schedule().data_start()) as usize,
    };
    let chunks = plan.schedule().reduce_chunks().ranges();
    let decided = match plan.schedule().threshold() {
        Some(ThresholdSchedule::ByChunk) => {
            threshold_by_chunk(plan, &gather, &chunks, actions, ticker)
        }
        Some(ThresholdSchedule::OneBuffer { tiled }) => {
            threshold_in_one_buffer(plan, &gather, &chunks, tiled, actions, &needing, ticker)
        }
        None => {
            return Err(DataError::Internal(
                "a threshold pass for a plan without a threshold step".into(),
            ));
        }
    };
    for (g, action) in decided {
        actions[g] = action;
    }
    Ok(())
}

/// The gather kernel with what every call shares.
struct Gather {
    kernel: GatherKernel,
    loops: Vec<i64>,
    /// Address of the nest's first element.
    data: usize,
}

impl Gather {
    /// Gathers loop-0 indices `begin..end` with the cursor array at `cursor` (offset to the
    /// group of the nest's first element) into `out`.
    ///
    /// # Safety
    /// The view the plan was made for was checked (`check_view`) and outlives the call; every
    /// group the range visits has an entry at `cursor`, and the gathered ones have room in `out`
    /// as [`GatherKernel::call`] requires; nothing else accesses those entries during the call.
    unsafe fn run(
        &self,
        loops: &[i64],
        data: usize,
        cursor: usize,
        out: *mut f64,
        r: (usize, usize),
    ) {
        // SAFETY: the caller's contract is the kernel's.
        unsafe {
            self.kernel
                .call(data as *const u8, loops, cursor as *mut i64, out, r.0, r.1)
        }
    }
}

/// The decision for a gathered group: the one both backends make
/// ([`solve::threshold_action`]), from the same values in the same order.
fn decide(plan: &Plan, values: &[f64], r: f64, scratch: &mut Vec<f64>) -> GroupAction {
    solve::threshold_action(plan.tensor().dtype, values, r, scratch)
}

/// The radius of a group that needs a threshold.
fn needs(action: GroupAction) -> Option<f64> {
    match action {
        GroupAction::NeedsThreshold(r) => Some(r),
        _ => None,
    }
}

/// Chunks own their groups (the split loop is not reduced): each chunk gathers its groups into
/// its own buffer and thresholds them at once.
fn threshold_by_chunk(
    plan: &Plan,
    gather: &Gather,
    chunks: &[(usize, usize)],
    actions: &[GroupAction],
    ticker: &Ticker<'_>,
) -> Vec<(usize, GroupAction)> {
    let gl = plan.group_len();
    let l0 = &plan.schedule().loops()[0];
    let per_index = elements_per_index(plan, plan.tensor().len());
    // Group offsets (from the group at loop-0 index i0) of the groups one loop-0 index visits.
    let mut inner: Vec<isize> = vec![0];
    for l in plan.schedule().loops()[1..]
        .iter()
        .filter(|l| !l.is_reduced())
    {
        inner = inner
            .iter()
            .flat_map(|&o| (0..l.extent as isize).map(move |i| o + i * l.group_stride))
            .collect();
    }
    let mut cursors = vec![-1i64; plan.groups()];
    let cursor = cursors
        .as_mut_ptr()
        .wrapping_offset(plan.schedule().group_start()) as usize;
    let entries = cursors.as_mut_ptr() as usize;
    chunks
        .par_iter()
        .map_init(
            || (Vec::<f64>::new(), Vec::<f64>::new()),
            |(buf, scratch), &(begin, end)| {
                let members: Vec<(usize, f64)> = (begin..end)
                    .flat_map(|i0| {
                        let g0 = plan.schedule().group_start() + i0 as isize * l0.group_stride;
                        inner.iter().map(move |&o| (g0 + o) as usize)
                    })
                    .filter_map(|g| needs(actions[g]).map(|r| (g, r)))
                    .collect();
                if members.is_empty() {
                    ticker.tick((end - begin) * per_index);
                    return Vec::new();
                }
                for (k, &(g, _)) in members.iter().enumerate() {
                    // SAFETY: `g < groups` (a group index of the plan); chunks visit disjoint
                    // groups (the split loop is not reduced), so no other thread touches entry
                    // `g` while this chunk runs.
                    unsafe { *(entries as *mut i64).add(g) = (k * gl) as i64 };
                }
                // Only grown, never cleared: the gather overwrites the part it uses (a cleared
                // buffer would be zero-filled again for every chunk).
                let need = members.len() * gl;
                if buf.len() < need {
                    buf.resize(need, 0.0);
                }
                // SAFETY: loop-0 indices `begin..end` visit only this chunk's groups, each with
                // a cursor entry; the gathered ones (cursor ≥ 0) are `members`, whose runs
                // `k·gl..(k+1)·gl` lie in `buf` and receive exactly `gl` entries each.
                unsafe {
                    gather.run(
                        &gather.loops,
                        gather.data,
                        cursor,
                        buf.as_mut_ptr(),
                        (begin, end),
                    )
                };
                ticker.tick((end - begin) * per_index);
                members
                    .iter()
                    .zip(buf[..need].chunks_exact(gl))
                    .map(|(&(g, r), values)| (g, decide(plan, values, r, scratch)))
                    .collect::<Vec<_>>()
            },
        )
        .flatten_iter()
        .collect()
}

/// Chunks share groups (the split loop is reduced, or there is one chunk): one buffer holds
/// every gathered group; chunks and tiles of the innermost loop gather their parts of it in
/// parallel, then groups are thresholded in parallel.
fn threshold_in_one_buffer(
    plan: &Plan,
    gather: &Gather,
    chunks: &[(usize, usize)],
    tiled: bool,
    actions: &[GroupAction],
    needing: &[usize],
    ticker: &Ticker<'_>,
) -> Vec<(usize, GroupAction)> {
    let gl = plan.group_len();
    let mut start = vec![-1i64; plan.groups()];
    for (k, &g) in needing.iter().enumerate() {
        start[g] = (k * gl) as i64;
    }
    let mut buf = spare_buffer(needing.len() * gl);
    let out = buf.as_mut_ptr() as usize;
    // Elements of each group one loop-0 index visits: all of them when loop 0 is not reduced
    // (then there is one chunk), else `gl / n0`.
    let n0 = plan.schedule().loops().first().map_or(1, |l| l.extent);
    let per_index = if chunks.len() > 1 { gl / n0 } else { 0 };
    debug_assert!(chunks.len() == 1 || gl.is_multiple_of(n0));

    // Tiles of the innermost loop when it runs across groups: a tile's groups are its own, so
    // tiles may run one after the other with the chunk's cursors.
    let tiles: Vec<(usize, Vec<i64>)> = match plan.schedule().loops().last() {
        Some(inner) if tiled => (0..inner.extent)
            .step_by(GATHER_TILE)
            .map(|t0| {
                let mut loops = gather.loops.clone();
                let at = loops.len() - codegen::LOOP_DESC_LEN;
                loops[at] = (GATHER_TILE.min(inner.extent - t0)) as i64;
                (t0, loops)
            })
            .collect(),
        _ => vec![(0, gather.loops.clone())],
    };
    let (esize, inner_stride, inner_gs) = plan.schedule().loops().last().map_or((0, 0, 0), |l| {
        (
            plan.tensor().dtype.size() as isize,
            l.stride,
            l.group_stride,
        )
    });
    let run = |cursors: &mut [i64], (begin, end): (usize, usize)| {
        for (t0, loops) in &tiles {
            let t0 = *t0 as isize;
            let data = gather.data.wrapping_add_signed(t0 * inner_stride * esize);
            let cursor = cursors
                .as_mut_ptr()
                .wrapping_offset(plan.schedule().group_start() + t0 * inner_gs)
                as usize;
            // SAFETY: `loops` is the plan's descriptor with the innermost extent cut to the
            // tile, and `data`/`cursor` are moved to the tile's first element/group, so every
            // element and cursor entry visited is one the whole nest visits. The cursor array
            // is this chunk's own. A gathered group's run in `buf` starts at
            // `start[g] + begin·per_index` and receives `(end - begin)·per_index` entries (all
            // `gl` with one chunk): the parts of different chunks and groups do not overlap.
            unsafe { gather.run(loops, data, cursor, out as *mut f64, (begin, end)) };
        }
        ticker.tick((end - begin) * elements_per_index(plan, plan.tensor().len()));
    };
    if chunks.len() == 1 {
        run(&mut start, chunks[0]);
    } else {
        let start = &start;
        chunks
            .par_iter()
            .for_each_init(Vec::new, |cursors, &(begin, end)| {
                let shift = (begin * per_index) as i64;
                cursors.clear();
                cursors.extend(start.iter().map(|&s| if s < 0 { s } else { s + shift }));
                run(cursors, (begin, end));
            });
    }
    let decided = buf
        .par_chunks_exact(gl)
        .zip(needing.par_iter())
        .map_init(Vec::new, |scratch, (values, &g)| {
            let r = needs(actions[g]).expect("only groups that need a threshold are gathered");
            (g, decide(plan, values, r, scratch))
        })
        .collect();
    keep_spare_buffer(buf);
    decided
}

/// Largest gather buffer kept for the next threshold stage, in f64s (1 GiB).
const SPARE_MAX: usize = 1 << 27;

/// The buffer kept by the last threshold stage (see [`spare_buffer`]).
static SPARE: Mutex<Vec<f64>> = Mutex::new(Vec::new());

/// A buffer of `n` f64s for the gather, with arbitrary contents. A tensor-sized buffer costs
/// more in page faults than the gather itself (first writes to fresh pages), so the last one is
/// kept for the next call: a training loop projecting the same tensor every step reuses it.
fn spare_buffer(n: usize) -> Vec<f64> {
    let mut buf = std::mem::take(&mut *SPARE.lock().unwrap_or_else(|e| e.into_inner()));
    if buf.capacity() < n {
        // Freshly zeroed pages from the allocator: nothing is written until the gather.
        return vec![0.0; n];
    }
    if buf.len() >= n {
        buf.truncate(n);
    } else {
        buf.resize(n, 0.0);
    }
    buf
}

/// Keeps `buf` for the next threshold stage, unless it is too big to hold on to or a bigger one
/// is already kept.
fn keep_spare_buffer(buf: Vec<f64>) {
    if buf.capacity() > SPARE_MAX {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    if buf.capacity() > spare.capacity() {
        *spare = buf;
    }
}
