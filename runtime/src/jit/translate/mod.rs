//! The translator: CLIF for one kernel, from its [`KernelKey`].
//!
//! Every kernel is a loop nest over the plan's loops (memory order, outermost first) whose
//! innermost loop is a *run*: `n` elements at a fixed data stride. What a run does is the
//! kernel's business (`reduce_rows`, `reduce_cols`, `apply_rows`, `apply_cols`); the nest around
//! it only steps the data, output and group cursors. The gather kernel (`gather_rows`,
//! `gather_cols`) uses the "output" slot of the signature for its per-group cursor array.
//!
//! A run is walked by a *strip*: when the run is contiguous, an unrolled loop of
//! [`UNROLL`] pairs of elements (two f64 lanes: one 128-bit vector; f32 elements are loaded two
//! at a time and widened), then a loop of single pairs, then a scalar tail; otherwise a scalar
//! loop. Arithmetic is f64, so a kernel computes exactly what the interpreter computes element
//! by element (sums only differ by reassociation) — except where f32 arithmetic is provably
//! bit-identical and the strip then takes four f32 lanes at a time: the max|x| of the linf
//! reduce, the copy and zero fill of the apply, and clipping (see `apply_rows`).
//!
//! Column-wise groups (the innermost loop runs across groups) are *jammed* when the loop around
//! it stays inside the groups: [`KernelKey::jam`] consecutive runs (8 in the reduce pass, 4 in
//! the apply pass) go through one strip, so a group's accumulator (reduce) or parameters and
//! masks (apply) are loaded and stored once per that many elements of the group instead of
//! once per element. Each group's elements are still folded in memory order, so results are
//! bit-identical to one run at a time. The remaining runs go one at a time.
//!
//! The addresses a strip reads and writes are pointers carried through its loops and advanced
//! each iteration (`strip_ptrs`): Cranelift would otherwise recompute a base computed outside
//! the loop from the loop indices in every iteration. Constant masks (`|x|`, `-x`) are built
//! once per run for the same reason: a vector `fabs`/`fneg` rebuilds its mask at every use.
//!
//! Notes on Cranelift 0.135 (x86-64) this code relies on:
//! - max/min are written as `bitselect(bitcast(fcmp lt a b), …)`, which lowers to one
//!   `maxpd`/`minpd`; CLIF `fmax`/`fmin` would lower to a long NaN-propagating sequence. The data
//!   is known finite when these run (the reduce pass rejects NaN and ±inf).
//! - There is no vector `fcopysign` on x64: signs are moved with `band`/`bor` on the bits.
//! - Data loads are never marked aligned: mmap'd `.npy` data is only element-aligned.
//!
//! The translator is one [`Translator`] whose methods are spread over this module's files by
//! what they generate: here the entry point, the types the files share and the kernels (the
//! nest around the runs of each pass); the runs of each pass in `reduce`, `gather` and
//! `apply`; the loop nest, counted loops and strips in `loops`; element types, addresses,
//! loads, stores and vector constants in `memory`.

use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{
    Function, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use super::{ApplyKind, KernelKey, LOOP_DESC_LEN, MAX_JAM_ROWS, Pass};
use multiproj_compiler::Norm;

mod apply;
mod gather;
mod loops;
mod memory;
mod reduce;

/// Pairs of elements per iteration of the unrolled loop (independent accumulators in reduce).
const UNROLL: usize = 4;
/// The same for jammed runs, whose iterations already take [`KernelKey::jam`] elements per group
/// (more would only lengthen the code and its compile time: measured no faster).
const UNROLL_JAM: usize = 1;
/// Elements per vector: two f64 lanes.
const LANES: i64 = 2;

/// Builds the body of `func` (whose signature is already set) for `key`.
pub(super) fn translate(
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    key: KernelKey,
    config: TargetFrontendConfig,
) {
    let mut t = Translator {
        b: FunctionBuilder::new(func, fctx),
        key,
        esize: key.dtype.size() as i64,
        data: MemFlagsData::new().with_notrap(),
        unroll: UNROLL,
    };
    match key.pass {
        Pass::Reduce(norm) => t.translate_reduce(norm),
        Pass::Gather => t.translate_gather(),
        Pass::Apply { op, in_place } => t.translate_apply(op, in_place),
    }
    t.b.seal_all_blocks();
    t.b.finalize(config);
}

/// One loop of the nest, as read from the descriptor. Strides in bytes, group stride in groups.
#[derive(Clone, Copy)]
struct LoopDesc {
    extent: Value,
    stride: Value,
    group_stride: Value,
    out_stride: Value,
}

/// Where the nest is: data and output addresses, group index, and the position in the nest
/// (row-major over the loops; only the reduce pass uses it, to name a non-finite element).
#[derive(Clone, Copy)]
struct Cursor {
    data: Value,
    out: Value,
    group: Value,
    pos: Value,
}

/// An innermost run: `n` elements starting at `at`, with the innermost loop's strides.
#[derive(Clone, Copy)]
struct Run {
    at: Cursor,
    n: Value,
    stride: Value,
    group_stride: Value,
    out_stride: Value,
    /// A jammed run: [`KernelKey::jam`] runs of consecutive indices of the enclosing loop, which
    /// visit the same groups.
    rows: Option<Rows>,
}

/// The runs of a jammed run: their cursors (the first is the run's), and the enclosing loop's
/// data and output strides in bytes, from which row `k` is `k` strides from the first. (The
/// offsets are formed from the strides alone, so Cranelift computes them once per kernel; from
/// the cursors they would be recomputed in every iteration.)
#[derive(Clone, Copy)]
struct Rows {
    at: [Cursor; MAX_JAM_ROWS],
    /// How many of `at` are rows of the run ([`KernelKey::jam`]); the rest repeat the first.
    count: usize,
    stride: Value,
    out_stride: Value,
}

/// A stride of an address computation: known at compile time (contiguous runs, group arrays)
/// or read from the descriptor.
#[derive(Clone, Copy)]
enum Stride {
    Const(i64),
    Var(Value),
}

/// One step of a strip: a pair of elements at `i + off` (vector), or the element at `i`.
#[derive(Clone, Copy)]
struct Chunk {
    pair: bool,
    i: Value,
    /// Element offset from `i` (unrolled pairs), a compile-time constant.
    off: i64,
    /// Index of the unrolled pair, for independent accumulators.
    u: usize,
    /// A vector chunk of the unrolled loop (`false` in the loop of single vectors after it and
    /// in the scalar tail).
    unrolled: bool,
}

/// The per-group arrays of an apply kernel.
#[derive(Clone, Copy)]
struct Groups {
    param: Value,
    offset: Value,
    keep: Value,
    live: Value,
    /// Read only by the f32 column-wise clip (the same values as `param`, `live` elsewhere).
    param32: Value,
    live32: Value,
    /// Read only by the 16-bit column-wise clip (the same values as `param`, `live` elsewhere).
    param16: Value,
    live16: Value,
}

type RunFn<'f> = dyn FnMut(&mut Translator<'_>, Run) + 'f;
type ChunkFn<'f> = dyn FnMut(&mut Translator<'_>, Chunk, &mut [Value]) + 'f;

struct Translator<'a> {
    b: FunctionBuilder<'a>,
    key: KernelKey,
    esize: i64,
    /// Flags of accesses to the tensor and the group arrays: valid, but not known aligned.
    data: MemFlagsData,
    /// Pairs per iteration of a strip's unrolled loop: [`UNROLL`], or [`UNROLL_JAM`] while a
    /// jammed run is translated.
    unroll: usize,
}

impl Translator<'_> {
    // ---- kernels -------------------------------------------------------------------------

    /// `reduce(data, loops, acc, aux, begin, end) -> i64`.
    fn translate_reduce(&mut self, norm: Norm) {
        let [data, loops, acc, aux, begin, end] = self.entry::<6>();
        let descs = self.load_loops(loops, false);
        let at = self.start(data, data);
        let rows = self.key.inner_reduced;
        self.nest(0, &descs, begin, end, at, &mut |t, run| {
            if rows {
                t.reduce_rows(norm, acc, aux, run)
            } else {
                t.reduce_cols(norm, acc, aux, run)
            }
        });
        let none = self.b.ins().iconst(I64, -1);
        self.b.ins().return_(&[none]);
    }

    /// `gather(data, loops, cursor, out, begin, end)`.
    fn translate_gather(&mut self) {
        let [data, loops, cursor, out, begin, end] = self.entry::<6>();
        let descs = self.load_loops(loops, true);
        let at = self.start(data, data);
        let rows = self.key.inner_reduced;
        // Column-wise runs store every element somewhere: the skipped ones into this slot.
        let trash = if rows {
            None
        } else {
            let slot = self.b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                8,
                3,
            ));
            Some(self.b.ins().stack_addr(I64, slot, 0))
        };
        self.nest(0, &descs, begin, end, at, &mut |t, run| match trash {
            None => t.gather_rows(cursor, out, run),
            Some(trash) => t.gather_cols(cursor, out, trash, run),
        });
        self.b.ins().return_(&[]);
    }

    /// `apply(src, dst, loops, groups, begin, end)`.
    fn translate_apply(&mut self, op: ApplyKind, in_place: bool) {
        let [src, dst, loops, groups, begin, end] = self.entry::<6>();
        let descs = self.load_loops(loops, in_place);
        let at = self.start(src, if in_place { src } else { dst });
        let rows = self.key.inner_reduced;
        // The f32 arrays only where they are read (see `apply_cols`).
        let f32_clip = op == ApplyKind::Clip && !in_place && !rows && self.native_f32();
        let half_clip = op == ApplyKind::Clip && !rows && self.bits16_cols();
        let half_scale = op == ApplyKind::Scale && !rows && self.bits16_cols();
        let flags = MemFlagsData::trusted().with_readonly();
        let mut field = |i: i32| self.b.ins().load(I64, flags, groups, 8 * i);
        let (param, offset, keep, live) = (field(0), field(1), field(2), field(3));
        let (param32, live32) = if f32_clip || half_scale {
            (field(4), field(5))
        } else {
            (param, live)
        };
        let (param16, live16) = if half_clip || half_scale {
            (field(6), field(7))
        } else {
            (param, live)
        };
        let groups = Groups {
            param,
            offset,
            keep,
            live,
            param32,
            live32,
            param16,
            live16,
        };
        self.nest(0, &descs, begin, end, at, &mut |t, run| {
            if rows {
                t.apply_rows(op, in_place, groups, run)
            } else {
                t.apply_cols(op, in_place, groups, run)
            }
        });
        self.b.ins().return_(&[]);
    }
}

#[cfg(test)]
mod tests {
    /// The disk cache knows a kernel by a hash of the code generator's source
    /// (`codegen_source_hash` in `jit::module`), which names the files of this directory one by
    /// one: a file left out would let a changed translator meet machine code compiled before.
    #[test]
    fn every_file_is_in_the_codegen_source_hash() {
        let jit = concat!(env!("CARGO_MANIFEST_DIR"), "/src/jit");
        let module = std::fs::read_to_string(format!("{jit}/module.rs")).expect("module.rs reads");
        let dir = std::fs::read_dir(format!("{jit}/translate")).expect("the directory reads");
        for entry in dir {
            let name = entry.expect("an entry").file_name();
            let name = name.to_str().expect("a UTF-8 name");
            if name.ends_with(".rs") {
                let hashed = format!("include_str!(\"translate/{name}\")");
                assert!(
                    module.contains(&hashed),
                    "{name} is not in codegen_source_hash: add {hashed} there"
                );
            }
        }
    }
}
