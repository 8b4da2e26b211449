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
//! it stays inside the groups ([`KernelKey::jam`]): [`JAM_ROWS`] consecutive runs go through
//! one strip, so a group's accumulator (reduce) or parameters and masks (apply) are loaded and
//! stored once per [`JAM_ROWS`] elements of the group instead of once per element. Each
//! group's elements are still folded in memory order, so results are bit-identical to one run
//! at a time. The remaining runs (fewer than [`JAM_ROWS`]) go one at a time.
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

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32, I32X4, I64, I64X2};
use cranelift_codegen::ir::{
    BlockArg, Endianness, Function, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type,
    Value,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use super::{ApplyKind, JAM_ROWS, KernelKey, LOOP_DESC_LEN, Pass};
use multiproj_compiler::{DType, Norm};

/// Pairs of elements per iteration of the unrolled loop (independent accumulators in reduce).
const UNROLL: usize = 4;
/// The same for jammed runs, whose iterations already take [`JAM_ROWS`] elements per group
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
    /// A jammed run ([`KernelKey::jam`]): [`JAM_ROWS`] runs of consecutive indices of the
    /// enclosing loop, which visit the same groups.
    rows: Option<Rows>,
}

/// The runs of a jammed run: their cursors (the first is the run's), and the enclosing loop's
/// data and output strides in bytes, from which row `k` is `k` strides from the first. (The
/// offsets are formed from the strides alone, so Cranelift computes them once per kernel; from
/// the cursors they would be recomputed in every iteration.)
#[derive(Clone, Copy)]
struct Rows {
    at: [Cursor; JAM_ROWS],
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
}

/// The per-group arrays of an apply kernel.
#[derive(Clone, Copy)]
struct Groups {
    param: Value,
    offset: Value,
    keep: Value,
    live: Value,
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
        let flags = MemFlagsData::trusted().with_readonly();
        let mut field = |i: i32| self.b.ins().load(I64, flags, groups, 8 * i);
        let groups = Groups {
            param: field(0),
            offset: field(1),
            keep: field(2),
            live: field(3),
        };
        let rows = self.key.inner_reduced;
        self.nest(0, &descs, begin, end, at, &mut |t, run| {
            if rows {
                t.apply_rows(op, in_place, groups, run)
            } else {
                t.apply_cols(op, in_place, groups, run)
            }
        });
        self.b.ins().return_(&[]);
    }

    // ---- runs of the reduce pass ---------------------------------------------------------

    /// A run inside one group: fold it into registers (independent vector accumulators), then
    /// fold the total into `acc[group]` (and, for l2, the largest magnitude into `aux[group]`).
    fn reduce_rows(&mut self, norm: Norm, acc: Value, aux: Value, run: Run) {
        let vector = self.key.inner_contiguous;
        let l2 = norm == Norm::L2;
        // max|x| of f32 elements is exact in f32 (it is one of them), so the linf reduce of f32
        // data runs on f32x4 vectors: four elements per load, no widening. The result is
        // promoted to f64 exactly. Sums (l1, l2) are formed in f64.
        let native = self.native_f32() && norm == Norm::Linf;
        let lanes = if native { 4 } else { LANES };
        let zv = if native {
            self.splat32(0.0)
        } else {
            self.splat(0.0)
        };
        let zs = self.b.ins().f64const(0.0);
        // [sums or maxima ×UNROLL, (l2: maxima ×UNROLL), vector NaN detector,
        //  scalar accumulator, (l2: scalar maximum), scalar detector]
        let n_max = if l2 { UNROLL } else { 0 };
        let det_v = UNROLL + n_max;
        let (acc_s, max_s) = (det_v + 1, det_v + 2);
        let det_s = det_v + 2 + usize::from(l2);
        let mut state = vec![zv; det_v + 1];
        state.extend(vec![zs; det_s - det_v]);
        let ptr = state.len();
        let stride = self.data_stride(run);
        let abs_mask = if native {
            self.abs_mask(F32X4)
        } else {
            self.abs_mask(F64X2)
        };
        let ptrs = [(run.at.data, stride)];
        let st = self.strip_ptrs(run.n, vector, lanes, state, &ptrs, &mut |t, c, st| {
            if c.pair {
                let x = if native {
                    t.load_f32x4_at(st[ptr], c.off)
                } else {
                    t.load_pair_at(st[ptr], c.off)
                };
                let abs = t.b.ins().band(x, abs_mask);
                st[c.u] = t.fold_abs(norm, st[c.u], x, abs, true);
                if l2 {
                    st[UNROLL + c.u] = t.fold_abs(Norm::Linf, st[UNROLL + c.u], x, abs, true);
                }
                st[det_v] = t.detect(st[det_v], x);
            } else {
                let x = t.load_at(st[ptr]);
                st[acc_s] = t.fold(norm, st[acc_s], x, false);
                if l2 {
                    st[max_s] = t.fold(Norm::Linf, st[max_s], x, false);
                }
                st[det_s] = t.detect(st[det_s], x);
            }
        });
        let mut det = st[det_s];
        let mut total = st[acc_s];
        let mut max = if l2 { st[max_s] } else { zs };
        if vector {
            if native {
                total = self.horizontal_f32(&st[..UNROLL], total);
            } else {
                total = self.horizontal(norm, &st[..UNROLL], total);
            }
            if l2 {
                max = self.horizontal(Norm::Linf, &st[UNROLL..2 * UNROLL], max);
            }
            let little = MemFlagsData::new().with_endianness(Endianness::Little);
            let dv = if native {
                self.b.ins().bitcast(F64X2, little, st[det_v])
            } else {
                st[det_v]
            };
            let (lo, hi) = self.lanes(dv);
            let d = self.b.ins().bor(lo, hi);
            det = self.b.ins().bor(d, det);
        }
        self.check_finite(det, run);
        let slot = self.elem_addr(acc, run.at.group, Stride::Const(8));
        let old = self.b.ins().load(F64, self.data, slot, 0);
        let new = self.combine(norm, old, total);
        self.b.ins().store(self.data, new, slot, 0);
        if l2 {
            let slot = self.elem_addr(aux, run.at.group, Stride::Const(8));
            let old = self.b.ins().load(F64, self.data, slot, 0);
            let new = self.combine(Norm::Linf, old, max);
            self.b.ins().store(self.data, new, slot, 0);
        }
    }

    /// Folds f32x4 maxima and a scalar f64 maximum into one f64 (exactly: f32 → f64 is exact).
    fn horizontal_f32(&mut self, vectors: &[Value], scalar: Value) -> Value {
        let a = self.combine(Norm::Linf, vectors[0], vectors[1]);
        let b = self.combine(Norm::Linf, vectors[2], vectors[3]);
        let v = self.combine(Norm::Linf, a, b);
        let l: Vec<Value> = (0..4u8)
            .map(|lane| self.b.ins().extractlane(v, lane))
            .collect();
        let a = self.combine(Norm::Linf, l[0], l[1]);
        let b = self.combine(Norm::Linf, l[2], l[3]);
        let m = self.combine(Norm::Linf, a, b);
        let m = self.b.ins().fpromote(F64, m);
        self.combine(Norm::Linf, m, scalar)
    }

    /// Folds vector accumulators and a scalar one into one f64.
    fn horizontal(&mut self, norm: Norm, vectors: &[Value], scalar: Value) -> Value {
        let a = self.combine(norm, vectors[0], vectors[1]);
        let b = self.combine(norm, vectors[2], vectors[3]);
        let v = self.combine(norm, a, b);
        let (lo, hi) = self.lanes(v);
        let h = self.combine(norm, lo, hi);
        self.combine(norm, h, scalar)
    }

    /// A run across groups (column-wise groups): a vector of accumulators `acc[g..]` (and, for
    /// l2, of maxima `aux[g..]`) updated in place.
    fn reduce_cols(&mut self, norm: Norm, acc: Value, aux: Value, run: Run) {
        let vector = self.key.inner_contiguous;
        let l2 = norm == Norm::L2;
        let zv = self.splat(0.0);
        let zs = self.b.ins().f64const(0.0);
        let base = self.elem_addr(acc, run.at.group, Stride::Const(8));
        let aux_base = self.elem_addr(aux, run.at.group, Stride::Const(8));
        let stride = self.data_stride(run);
        let gstride = self.group_stride(run);
        let abs_mask = self.abs_mask(F64X2);
        // A jammed run folds the same element of JAM_ROWS rows into one load and store of its
        // accumulator, row after row: the same order of operations as one run per row.
        let row_offsets = self.row_offsets(run, false);
        // [vector NaN detector, scalar detector; pointers: data, accumulators, (l2) maxima].
        let mut ptrs = vec![(run.at.data, stride), (base, gstride)];
        if l2 {
            ptrs.push((aux_base, gstride));
        }
        let st = self.strip_ptrs(
            run.n,
            vector,
            LANES,
            vec![zv, zs],
            &ptrs,
            &mut |t, c, st| {
                let (ty, off) = if c.pair {
                    (F64X2, (c.off * 8) as i32)
                } else {
                    (F64, 0)
                };
                let mut a = t.b.ins().load(ty, t.data, st[3], off);
                let mut m = l2.then(|| t.b.ins().load(ty, t.data, st[4], off));
                let mut bad = None;
                for &row in &row_offsets {
                    let at = t.offset_ptr(st[2], row);
                    let x = if c.pair {
                        t.load_pair_at(at, c.off)
                    } else {
                        t.load_at(at)
                    };
                    let abs = if c.pair {
                        t.b.ins().band(x, abs_mask)
                    } else {
                        t.b.ins().fabs(x)
                    };
                    a = t.fold_abs(norm, a, x, abs, c.pair);
                    if let Some(mm) = m {
                        m = Some(t.fold_abs(Norm::Linf, mm, x, abs, c.pair));
                    }
                    let d = t.b.ins().fsub(x, x);
                    bad = Some(bad.map_or(d, |b| t.b.ins().bor(b, d)));
                }
                // The NaN detector, through the stored accumulator: `x - x` is +0 for every
                // finite `x`, so OR-ing it into the accumulator changes nothing, and NaN bits
                // for a non-finite one, which make the accumulator NaN (it is thrown away with
                // the error). The detector then only needs the stored value, not every `x`
                // until the end of the iteration (which would spill them).
                let a = t.b.ins().bor(a, bad.expect("a run has rows"));
                t.b.ins().store(t.data, a, st[3], off);
                if let Some(m) = m {
                    t.b.ins().store(t.data, m, st[4], off);
                }
                let d = usize::from(!c.pair);
                st[d] = t.detect(st[d], a);
            },
        );
        let mut det = st[1];
        if vector {
            let (lo, hi) = self.lanes(st[0]);
            let d = self.b.ins().bor(lo, hi);
            det = self.b.ins().bor(d, det);
        }
        self.check_finite(det, run);
    }

    /// The byte offsets of the rows of a jammed run from its first row (`[None]`, no offset,
    /// for a plain run), in the data or (`out`) in the output.
    fn row_offsets(&mut self, run: Run, out: bool) -> Vec<Option<Value>> {
        match run.rows {
            None => vec![None],
            Some(rows) => {
                let stride = if out { rows.out_stride } else { rows.stride };
                std::iter::once(None)
                    .chain((1..JAM_ROWS).map(|k| Some(self.b.ins().imul_imm_s(stride, k as i64))))
                    .collect()
            }
        }
    }

    /// `ptr + offset` (a row of a jammed run), or `ptr`.
    fn offset_ptr(&mut self, ptr: Value, offset: Option<Value>) -> Value {
        match offset {
            Some(o) => self.b.ins().iadd(ptr, o),
            None => ptr,
        }
    }

    /// A float vector of type `ty` (f64x2 or f32x4) with the sign bits clear: `x & mask` is
    /// `|x|`. (A vector `fabs` rebuilds its mask at every use; this constant is loaded once.)
    fn abs_mask(&mut self, ty: Type) -> Value {
        let v = if ty == F32X4 {
            let bits = self.b.ins().iconst(I32, i64::from(i32::MAX));
            self.b.ins().splat(I32X4, bits)
        } else {
            let bits = self.b.ins().iconst(I64, i64::MAX);
            self.b.ins().splat(I64X2, bits)
        };
        self.b.ins().bitcast(ty, MemFlagsData::new(), v)
    }

    /// A float vector of type `ty` (f64x2 or f32x4) with only the sign bits set: `x ^ mask` is
    /// `-x`.
    fn sign_mask(&mut self, ty: Type) -> Value {
        let v = if ty == F32X4 {
            let bits = self.b.ins().iconst(I32, i64::from(i32::MIN));
            self.b.ins().splat(I32X4, bits)
        } else {
            let bits = self.b.ins().iconst(I64, i64::MIN);
            self.b.ins().splat(I64X2, bits)
        };
        self.b.ins().bitcast(ty, MemFlagsData::new(), v)
    }

    /// [`Self::fold`] with `|x|` already computed.
    fn fold_abs(&mut self, norm: Norm, acc: Value, x: Value, abs: Value, vector: bool) -> Value {
        match norm {
            Norm::L1 => self.b.ins().fadd(acc, abs),
            Norm::L2 => {
                let sq = self.b.ins().fmul(x, x);
                self.b.ins().fadd(acc, sq)
            }
            Norm::Linf => self.pick_if_less(abs, acc, vector),
        }
    }

    /// `acc ⊕ x` for the norm: `acc + |x|`, `acc + x²`, `max(acc, |x|)`.
    fn fold(&mut self, norm: Norm, acc: Value, x: Value, vector: bool) -> Value {
        match norm {
            Norm::L1 => {
                let a = self.b.ins().fabs(x);
                self.b.ins().fadd(acc, a)
            }
            Norm::L2 => {
                let sq = self.b.ins().fmul(x, x);
                self.b.ins().fadd(acc, sq)
            }
            Norm::Linf => {
                let a = self.b.ins().fabs(x);
                self.pick_if_less(a, acc, vector)
            }
        }
    }

    /// Merges two partial results of the norm.
    fn combine(&mut self, norm: Norm, a: Value, b: Value) -> Value {
        let vector = self.b.func.dfg.value_type(a).is_vector();
        match norm {
            Norm::L1 | Norm::L2 => self.b.ins().fadd(a, b),
            Norm::Linf => self.pick_if_less(a, b, vector),
        }
    }

    /// The NaN detector: `x - x` is +0 exactly when `x` is finite, NaN otherwise; OR-ing the
    /// bits keeps any NaN, so the detector is nonzero iff a non-finite element was seen.
    fn detect(&mut self, det: Value, x: Value) -> Value {
        let d = self.b.ins().fsub(x, x);
        self.b.ins().bor(det, d)
    }

    /// If the detector saw a non-finite element, rescans the run and returns the position of
    /// the first one from the kernel.
    fn check_finite(&mut self, det: Value, run: Run) {
        let bits = self.b.ins().bitcast(I64, MemFlagsData::new(), det);
        let bad = self.b.ins().icmp_imm_s(IntCC::NotEqual, bits, 0);
        let rescan = self.b.create_block();
        let ok = self.b.create_block();
        self.b.set_cold_block(rescan);
        self.b.ins().brif(bad, rescan, &[], ok, &[]);
        self.b.switch_to_block(rescan);
        let stride = self.data_stride(run);
        // A jammed run rescans its rows in memory order, so the first one found is the first.
        let rows = match run.rows {
            Some(rows) => rows.at.to_vec(),
            None => vec![run.at],
        };
        for at in rows {
            let zero = self.b.ins().iconst(I64, 0);
            self.for_range(zero, run.n, 1, &[], |t, j, _| {
                let x = t.load_one(at.data, j, stride);
                let d = t.b.ins().fsub(x, x);
                let nan = t.b.ins().fcmp(FloatCC::Unordered, d, d);
                let found = t.b.create_block();
                let next = t.b.create_block();
                t.b.set_cold_block(found);
                t.b.ins().brif(nan, found, &[], next, &[]);
                t.b.switch_to_block(found);
                let pos = t.b.ins().iadd(at.pos, j);
                t.b.ins().return_(&[pos]);
                t.b.switch_to_block(next);
                vec![]
            });
        }
        // Not reached when the detector is right; carrying on is the safe fallback.
        self.b.ins().jump(ok, &[]);
        self.b.switch_to_block(ok);
    }

    // ---- runs of the gather ---------------------------------------------------------------

    /// A run inside one group: one decision per run, then a straight copy of `|x|` to the
    /// group's cursor (vectorized when the run is contiguous; the output always is).
    fn gather_rows(&mut self, cursor: Value, out: Value, run: Run) {
        let vector = self.key.inner_contiguous;
        let slot = self.elem_addr(cursor, run.at.group, Stride::Const(8));
        let c = self.b.ins().load(I64, self.data, slot, 0);
        let copy = self.b.create_block();
        let done = self.b.create_block();
        let skip = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, c, 0);
        self.b.ins().brif(skip, done, &[], copy, &[]);

        self.b.switch_to_block(copy);
        let dst = self.elem_addr(out, c, Stride::Const(8));
        let stride = self.data_stride(run);
        self.strip(run.n, vector, LANES, vec![], &mut |t, ch, _| {
            let at = t.elem_addr(dst, ch.i, Stride::Const(8));
            if ch.pair {
                let x = t.load_pair(run.at.data, ch.i, ch.off);
                let a = t.b.ins().fabs(x);
                t.b.ins().store(t.data, a, at, (ch.off * 8) as i32);
            } else {
                let x = t.load_one(run.at.data, ch.i, stride);
                let a = t.b.ins().fabs(x);
                t.b.ins().store(t.data, a, at, 0);
            }
        });
        let next = self.b.ins().iadd(c, run.n);
        self.b.ins().store(self.data, next, slot, 0);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// A run across groups: every element has its own cursor. Branch-free, since which groups
    /// are gathered follows no pattern a predictor could learn: a skipped element (cursor < 0)
    /// is stored to `trash`, and its cursor rewritten unchanged (`c + 1 + (c >> 63)` is `c + 1`
    /// for `c ≥ 0` and `-1` for `c = -1`).
    fn gather_cols(&mut self, cursor: Value, out: Value, trash: Value, run: Run) {
        let vector = self.key.inner_contiguous;
        let base = self.elem_addr(cursor, run.at.group, Stride::Const(8));
        let stride = self.data_stride(run);
        let gstride = self.group_stride(run);
        // `|x|` to the cursor at `slot + off` bytes.
        let put = |t: &mut Translator<'_>, a: Value, slot: Value, off: i32| {
            let c = t.b.ins().load(I64, t.data, slot, off);
            let to = t.elem_addr(out, c, Stride::Const(8));
            let skip = t.b.ins().icmp_imm_s(IntCC::SignedLessThan, c, 0);
            let to = t.b.ins().select(skip, trash, to);
            t.b.ins().store(t.data, a, to, 0);
            let sign = t.b.ins().sshr_imm_u(c, 63);
            let next = t.b.ins().iadd_imm_s(c, 1);
            let next = t.b.ins().iadd(next, sign);
            t.b.ins().store(t.data, next, slot, off);
        };
        self.strip(run.n, vector, LANES, vec![], &mut |t, ch, _| {
            if ch.pair {
                // Contiguous: the pair's cursors are adjacent too.
                let x = t.load_pair(run.at.data, ch.i, ch.off);
                let a = t.b.ins().fabs(x);
                let slot = t.elem_addr(base, ch.i, Stride::Const(8));
                for lane in 0..2u8 {
                    let al = t.b.ins().extractlane(a, lane);
                    put(t, al, slot, ((ch.off + i64::from(lane)) * 8) as i32);
                }
            } else {
                let x = t.load_one(run.at.data, ch.i, stride);
                let a = t.b.ins().fabs(x);
                let slot = t.elem_addr(base, ch.i, gstride);
                put(t, a, slot, 0);
            }
        });
    }

    // ---- runs of the apply pass ----------------------------------------------------------

    /// A run inside one group: decide once per run — untouched (copied out of place, not even
    /// written in place), zero-filled without reading, or projected.
    fn apply_rows(&mut self, op: ApplyKind, in_place: bool, g: Groups, run: Run) {
        let vector = self.key.inner_contiguous;
        let native = self.native_f32();
        let keep_at = self.elem_addr(g.keep, run.at.group, Stride::Const(8));
        let live_at = self.elem_addr(g.live, run.at.group, Stride::Const(8));
        let param_at = self.elem_addr(g.param, run.at.group, Stride::Const(8));
        let keep = self.b.ins().load(I64, self.data, keep_at, 0);
        let live = self.b.ins().load(I64, self.data, live_at, 0);
        let param = self.b.ins().load(F64, self.data, param_at, 0);
        let offset_at = self.elem_addr(g.offset, run.at.group, Stride::Const(8));
        let offset = self.b.ins().load(F64, self.data, offset_at, 0);
        let (keep_b, other_b, zero_b, op_b, join) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.ins().brif(keep, keep_b, &[], other_b, &[]);

        self.b.switch_to_block(keep_b);
        if !in_place {
            let (stride, out_stride) = (self.data_stride(run), self.out_stride(run));
            let elem = self.elem_type();
            // f32: four elements per move.
            let (raw, lanes) = if native {
                (F32X4, 4)
            } else {
                (self.raw_pair_type(), LANES)
            };
            let ptrs = [(run.at.data, stride), (run.at.out, out_stride)];
            self.strip_ptrs(run.n, vector, lanes, vec![], &ptrs, &mut |t, c, st| {
                let (ty, off) = if c.pair {
                    (raw, (c.off * t.esize) as i32)
                } else {
                    (elem, 0)
                };
                let v = t.b.ins().load(ty, t.data, st[0], off);
                t.b.ins().store(t.data, v, st[1], off);
            });
        }
        self.b.ins().jump(join, &[]);

        self.b.switch_to_block(other_b);
        self.b.ins().brif(live, op_b, &[], zero_b, &[]);

        self.b.switch_to_block(zero_b);
        let out_stride = self.out_stride(run);
        let lanes = if native { 4 } else { LANES };
        let ptrs = [(run.at.out, out_stride)];
        self.strip_ptrs(run.n, vector, lanes, vec![], &ptrs, &mut |t, c, st| {
            if c.pair {
                let zero = if native {
                    t.splat32(0.0)
                } else if t.raw_pair_type() == F64X2 {
                    t.splat(0.0)
                } else {
                    t.b.ins().iconst(I64, 0)
                };
                t.b.ins()
                    .store(t.data, zero, st[0], (c.off * t.esize) as i32);
            } else {
                let zero = match t.key.dtype {
                    DType::F64 => t.b.ins().f64const(0.0),
                    DType::F32 => t.b.ins().f32const(0.0),
                };
                t.b.ins().store(t.data, zero, st[0], 0);
            }
        });
        self.b.ins().jump(join, &[]);

        self.b.switch_to_block(op_b);
        let stride = self.data_stride(run);
        // Clipping f32 data runs in f32 against the radius rounded to f32, `r32 = fl32(r)`,
        // which is bit-identical to clipping in f64 and rounding the result (what the scalar
        // tail and the interpreter do), because rounding to nearest is monotone and leaves f32
        // values unchanged. For an f32 element `y`: if `|y| ≤ r` then `|y| = fl32(|y|) ≤ r32`,
        // so both give `y`; if `y > r` then `y = fl32(y) ≥ r32`, f64 gives `fl32(r) = r32` and
        // f32 gives `r32` (when `y = r32`, `y` itself, the same value); `y < -r` likewise with
        // `fl32(-r) = -r32`. Signed zeros follow the same comparisons in both. Scaling and the
        // soft threshold round differently in f32, so they stay in f64.
        let clip32 = native && op == ApplyKind::Clip;
        let (param_v, offset_v) = if clip32 {
            let p = self.b.ins().fdemote(F32, param);
            let p = self.b.ins().splat(F32X4, p);
            (p, p)
        } else if vector {
            (
                self.b.ins().splat(F64X2, param),
                self.b.ins().splat(F64X2, offset),
            )
        } else {
            (param, offset)
        };
        let lanes = if clip32 { 4 } else { LANES };
        let ptrs = [(run.at.data, stride), (run.at.out, out_stride)];
        self.strip_ptrs(run.n, vector, lanes, vec![], &ptrs, &mut |t, c, st| {
            let (src, dst) = (st[0], st[1]);
            if c.pair && clip32 {
                let y = t.load_f32x4_at(src, c.off);
                let r = t.op(op, y, param_v, offset_v, true);
                t.store_f32x4_at(r, dst, c.off);
            } else if c.pair {
                let y = t.load_pair_at(src, c.off);
                let r = t.op(op, y, param_v, offset_v, true);
                t.store_pair_at(r, dst, c.off);
            } else {
                let y = t.load_at(src);
                let r = t.op(op, y, param, offset, false);
                t.store_at(r, dst);
            }
        });
        self.b.ins().jump(join, &[]);

        self.b.switch_to_block(join);
    }

    /// A run across groups (column-wise groups): every lane has its own group, so the action is
    /// selected with masks: `op(y) & live` for clip and scale, where a kept group has the
    /// identity parameter and `live` set (see the docs of `jit::module`), and
    /// `(y & keep) | (op(y) & live)` for the soft threshold (zero when neither). In place, a pair
    /// of kept elements is not written, and of a pair with one kept element only the other lane
    /// is stored. A zero-filled lane's data is loaded with its neighbour's but masked out, so
    /// whatever it holds (even NaN) never reaches the output.
    fn apply_cols(&mut self, op: ApplyKind, in_place: bool, g: Groups, run: Run) {
        let vector = self.key.inner_contiguous;
        let keep = self.elem_addr(g.keep, run.at.group, Stride::Const(8));
        let live = self.elem_addr(g.live, run.at.group, Stride::Const(8));
        let param = self.elem_addr(g.param, run.at.group, Stride::Const(8));
        let offset = self.elem_addr(g.offset, run.at.group, Stride::Const(8));
        let (stride, out_stride, gstride) = (
            self.data_stride(run),
            self.out_stride(run),
            self.group_stride(run),
        );
        // A jammed run loads each group's parameters and masks once for JAM_ROWS rows.
        let data_rows = self.row_offsets(run, false);
        let out_rows = if in_place {
            data_rows.clone()
        } else {
            self.row_offsets(run, true)
        };
        // Pointers walked along the run: data, param, live, then the output (out of place; in
        // place it is the data pointer), `keep` (soft threshold and in place) and the offset
        // (soft threshold only).
        let shrink = op == ApplyKind::Shrink;
        let mut ptrs = vec![(run.at.data, stride), (param, gstride), (live, gstride)];
        let out_at = if in_place {
            0
        } else {
            ptrs.push((run.at.out, out_stride));
            ptrs.len() - 1
        };
        let needs_keep = shrink || in_place;
        let keep_at = ptrs.len();
        if needs_keep {
            ptrs.push((keep, gstride));
        }
        let offset_at = ptrs.len();
        if shrink {
            ptrs.push((offset, gstride));
        }
        self.strip_ptrs(run.n, vector, LANES, vec![], &ptrs, &mut |t, c, st| {
            let (data, param, live, out) = (st[0], st[1], st[2], st[out_at]);
            let (ty, off) = if c.pair {
                (F64X2, (c.off * 8) as i32)
            } else {
                (F64, 0)
            };
            let p = t.b.ins().load(ty, t.data, param, off);
            // Only the soft threshold has a second parameter.
            let o = if shrink {
                t.b.ins().load(ty, t.data, st[offset_at], off)
            } else {
                p
            };
            let l = t.b.ins().load(ty, t.data, live, off);
            let k = needs_keep.then(|| t.b.ins().load(ty, t.data, st[keep_at], off));
            // The projected rows: clip and scale: a kept group has the identity parameter and
            // `live` set (see the module docs), so `op(y)` is `y` there; only the soft
            // threshold needs `keep` to select `y`. In place, `keep` also says which lanes not
            // to store.
            let results: Vec<(Value, Value)> = data_rows
                .iter()
                .zip(&out_rows)
                .map(|(&d, &o_row)| {
                    let src = t.offset_ptr(data, d);
                    let y = if c.pair {
                        t.load_pair_at(src, c.off)
                    } else {
                        t.load_at(src)
                    };
                    let r = t.op(op, y, p, o, c.pair);
                    let res = match k {
                        Some(k) if shrink => {
                            let kept = t.b.ins().band(y, k);
                            let projected = t.b.ins().band(r, l);
                            t.b.ins().bor(kept, projected)
                        }
                        _ => t.b.ins().band(r, l),
                    };
                    (res, t.offset_ptr(out, o_row))
                })
                .collect();
            let store_all = |t: &mut Translator<'_>| {
                for &(res, dst) in &results {
                    if c.pair {
                        t.store_pair_at(res, dst, c.off)
                    } else {
                        t.store_at(res, dst)
                    }
                }
            };
            if !in_place {
                store_all(t);
                return;
            }
            // In place, a kept element is never stored to, not even with its own bits (that
            // would dirty a clean page of a memory map). The rows share their groups, so one
            // decision covers them all.
            let k = k.expect("loaded in place");
            let next = t.b.create_block();
            if c.pair {
                let k = t.b.ins().bitcast(I64X2, MemFlagsData::new(), k);
                // Bit j set: lane j is kept.
                let kept = t.b.ins().vhigh_bits(I64, k);
                let (some, none, mixed, lane1) = (
                    t.b.create_block(),
                    t.b.create_block(),
                    t.b.create_block(),
                    t.b.create_block(),
                );
                let all = t.b.ins().icmp_imm_s(IntCC::Equal, kept, 3);
                t.b.ins().brif(all, next, &[], some, &[]);
                t.b.switch_to_block(some);
                let no_lane = t.b.ins().icmp_imm_s(IntCC::Equal, kept, 0);
                t.b.ins().brif(no_lane, none, &[], mixed, &[]);
                t.b.switch_to_block(none);
                store_all(t);
                t.b.ins().jump(next, &[]);
                t.b.switch_to_block(mixed);
                let lane0_kept = t.b.ins().icmp_imm_s(IntCC::Equal, kept, 1);
                let lane0 = t.b.create_block();
                t.b.ins().brif(lane0_kept, lane1, &[], lane0, &[]);
                t.b.switch_to_block(lane0);
                for &(res, dst) in &results {
                    t.store_lane_at(res, 0, dst, c.off);
                }
                t.b.ins().jump(next, &[]);
                t.b.switch_to_block(lane1);
                for &(res, dst) in &results {
                    t.store_lane_at(res, 1, dst, c.off);
                }
                t.b.ins().jump(next, &[]);
            } else {
                let write = t.b.create_block();
                let k = t.b.ins().bitcast(I64, MemFlagsData::new(), k);
                let kept = t.b.ins().icmp_imm_s(IntCC::NotEqual, k, 0);
                t.b.ins().brif(kept, next, &[], write, &[]);
                t.b.switch_to_block(write);
                store_all(t);
                t.b.ins().jump(next, &[]);
            }
            t.b.switch_to_block(next);
        });
    }

    /// The projection of `y` with the group parameters `p` (radius, factor, or the base of the
    /// threshold) and `o` (the threshold's offset), in f64, exactly as `solve::apply_one`
    /// computes it.
    fn op(&mut self, op: ApplyKind, y: Value, p: Value, o: Value, vector: bool) -> Value {
        match op {
            ApplyKind::Scale => self.b.ins().fmul(y, p),
            ApplyKind::Clip => {
                // `y.clamp(-p, p)`: `if y < -p { -p }`, then `if y > p { p }`.
                // For vectors, the sign flip as an xor with a constant the loop keeps in a
                // register (a vector `fneg` rebuilds its mask at every use).
                let lo = if vector {
                    let ty = self.b.func.dfg.value_type(p);
                    let m = self.sign_mask(ty);
                    self.b.ins().bxor(p, m)
                } else {
                    self.b.ins().fneg(p)
                };
                let r = self.pick_if_less(lo, y, vector);
                self.pick_if_greater_operand(p, r, vector)
            }
            ApplyKind::Shrink => {
                // `m = (|y| - base) - offset; if m > 0 { m.copysign(y) } else { +0 }`.
                let a = self.b.ins().fabs(y);
                let m = self.b.ins().fsub(a, p);
                let m = self.b.ins().fsub(m, o);
                let (zero, sign_bit) = if vector {
                    (self.splat(0.0), self.splat(-0.0))
                } else {
                    (self.b.ins().f64const(0.0), self.b.ins().f64const(-0.0))
                };
                let sign = self.b.ins().band(y, sign_bit);
                let signed = self.b.ins().bor(m, sign);
                let positive = self.b.ins().fcmp(FloatCC::GreaterThan, m, zero);
                if vector {
                    let mask = self.b.ins().bitcast(F64X2, MemFlagsData::new(), positive);
                    self.b.ins().band(signed, mask)
                } else {
                    self.b.ins().select(positive, signed, zero)
                }
            }
        }
    }

    /// `if y < x { x } else { y }` — a max that lowers to one `maxpd` for vectors.
    fn pick_if_less(&mut self, x: Value, y: Value, vector: bool) -> Value {
        self.select_if_lt(y, x, x, y, vector)
    }

    /// `if x < y { x } else { y }` — a min that lowers to one `minpd` for vectors.
    fn pick_if_greater_operand(&mut self, x: Value, y: Value, vector: bool) -> Value {
        self.select_if_lt(x, y, x, y, vector)
    }

    /// `if a < b { then } else { otherwise }`, as a `bitselect` on the comparison mask for
    /// vectors (which is what lowers to a single `maxpd`/`minpd`) and a `select` for scalars.
    fn select_if_lt(
        &mut self,
        a: Value,
        b: Value,
        then: Value,
        otherwise: Value,
        vector: bool,
    ) -> Value {
        let lt = self.b.ins().fcmp(FloatCC::LessThan, a, b);
        if vector {
            let ty = self.b.func.dfg.value_type(then);
            let mask = self.b.ins().bitcast(ty, MemFlagsData::new(), lt);
            self.b.ins().bitselect(mask, then, otherwise)
        } else {
            self.b.ins().select(lt, then, otherwise)
        }
    }

    // ---- loop structure ------------------------------------------------------------------

    /// The cursor at the nest's first element: group 0 (relative), position 0.
    fn start(&mut self, data: Value, out: Value) -> Cursor {
        let zero = self.b.ins().iconst(I64, 0);
        Cursor {
            data,
            out,
            group: zero,
            pos: zero,
        }
    }

    /// Creates the entry block and returns the function's parameters.
    fn entry<const N: usize>(&mut self) -> [Value; N] {
        let block = self.b.create_block();
        self.b.append_block_params_for_function_params(block);
        self.b.switch_to_block(block);
        self.b
            .block_params(block)
            .try_into()
            .expect("the signature has N parameters")
    }

    /// Reads the loop descriptor; strides are turned into bytes. In place, the output is the
    /// data, so its stride is the data stride.
    fn load_loops(&mut self, loops: Value, in_place: bool) -> Vec<LoopDesc> {
        let flags = MemFlagsData::trusted().with_readonly();
        (0..self.key.depth)
            .map(|l| {
                let at = |field: usize| (8 * (l * LOOP_DESC_LEN + field)) as i32;
                let extent = self.b.ins().load(I64, flags, loops, at(0));
                let stride = self.b.ins().load(I64, flags, loops, at(1));
                let group_stride = self.b.ins().load(I64, flags, loops, at(2));
                let stride = self.b.ins().imul_imm_s(stride, self.esize);
                let out_stride = if in_place {
                    stride
                } else {
                    let s = self.b.ins().load(I64, flags, loops, at(3));
                    self.b.ins().imul_imm_s(s, self.esize)
                };
                LoopDesc {
                    extent,
                    stride,
                    group_stride,
                    out_stride,
                }
            })
            .collect()
    }

    /// The loops `level..` for loop indices `start..end` of `level` (`0..extent` below it),
    /// calling `run` for each innermost run.
    fn nest(
        &mut self,
        level: usize,
        loops: &[LoopDesc],
        start: Value,
        end: Value,
        at: Cursor,
        run: &mut RunFn<'_>,
    ) {
        let l = loops[level];
        if level + 1 == loops.len() {
            let n = self.b.ins().isub(end, start);
            let at = self.step(at, l, start);
            run(
                self,
                Run {
                    at,
                    n,
                    stride: l.stride,
                    group_stride: l.group_stride,
                    out_stride: l.out_stride,
                    rows: None,
                },
            );
            return;
        }
        let inner_extent = loops[level + 1].extent;
        let mut start = start;
        if self.key.jam && level + 2 == loops.len() {
            // Unroll-and-jam: JAM_ROWS runs at a time, then the rest one by one.
            let inner = loops[level + 1];
            (start, _) = self.for_range(start, end, JAM_ROWS as i64, &[], |t, i, _| {
                let zero = t.b.ins().iconst(I64, 0);
                let rows: [Cursor; JAM_ROWS] = std::array::from_fn(|k| {
                    let ik = t.b.ins().iadd_imm_s(i, k as i64);
                    let row = t.step(at, l, ik);
                    t.step(row, inner, zero)
                });
                let n = inner_extent;
                t.unroll = UNROLL_JAM;
                run(
                    t,
                    Run {
                        at: rows[0],
                        n,
                        stride: inner.stride,
                        group_stride: inner.group_stride,
                        out_stride: inner.out_stride,
                        rows: Some(Rows {
                            at: rows,
                            stride: l.stride,
                            out_stride: l.out_stride,
                        }),
                    },
                );
                t.unroll = UNROLL;
                vec![]
            });
        }
        self.for_range(start, end, 1, &[], |t, i, _| {
            let at = t.step(at, l, i);
            let zero = t.b.ins().iconst(I64, 0);
            t.nest(level + 1, loops, zero, inner_extent, at, run);
            vec![]
        });
    }

    /// The cursor at index `i` of loop `l`, from the cursor at its index 0.
    fn step(&mut self, at: Cursor, l: LoopDesc, i: Value) -> Cursor {
        let ins = |t: &mut Self, base: Value, stride: Value| {
            let d = t.b.ins().imul(i, stride);
            t.b.ins().iadd(base, d)
        };
        let data = ins(self, at.data, l.stride);
        let out = ins(self, at.out, l.out_stride);
        let group = ins(self, at.group, l.group_stride);
        let scaled = self.b.ins().imul(at.pos, l.extent);
        let pos = self.b.ins().iadd(scaled, i);
        Cursor {
            data,
            out,
            group,
            pos,
        }
    }

    /// `for i in (start..end).step_by(step)` while `i + step <= end`, carrying `carried`
    /// through the iterations. Returns the first `i` not run and the final carried values.
    fn for_range(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        carried: &[Value],
        body: impl FnOnce(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> (Value, Vec<Value>) {
        let header = self.b.create_block();
        let body_b = self.b.create_block();
        let exit = self.b.create_block();
        for block in [header, exit] {
            self.b.append_block_param(block, I64);
            for &v in carried {
                let ty = self.b.func.dfg.value_type(v);
                self.b.append_block_param(block, ty);
            }
        }
        let args = |i: Value, c: &[Value]| -> Vec<BlockArg> {
            std::iter::once(i)
                .chain(c.iter().copied())
                .map(BlockArg::from)
                .collect()
        };
        self.b.ins().jump(header, &args(start, carried));

        self.b.switch_to_block(header);
        let params = self.b.block_params(header).to_vec();
        let (i, c) = (params[0], &params[1..]);
        let next = self.b.ins().iadd_imm_s(i, step);
        let more = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next, end);
        self.b.ins().brif(more, body_b, &[], exit, &args(i, c));

        self.b.switch_to_block(body_b);
        let out = body(self, i, c);
        self.b.ins().jump(header, &args(next, &out));

        self.b.switch_to_block(exit);
        let params = self.b.block_params(exit).to_vec();
        (params[0], params[1..].to_vec())
    }

    /// Walks a run of `n` elements: unrolled pairs, single pairs and a scalar tail when
    /// `vector`, else one element at a time.
    fn strip(
        &mut self,
        n: Value,
        vector: bool,
        lanes: i64,
        state: Vec<Value>,
        chunk: &mut ChunkFn<'_>,
    ) -> Vec<Value> {
        self.strip_ptrs(n, vector, lanes, state, &[], chunk)
    }

    /// [`Self::strip`] with pointers that advance with the walk: `ptrs` are `(start, bytes per
    /// element)`, and the chunk finds the pointer of the current position `i` after the state,
    /// at `state[state.len()..]` (a chunk at `i + off` adds `off` elements itself). Pointers
    /// carried through the loops stay in registers, where addresses formed from the loop index
    /// and a base computed outside the loop are recomputed in every iteration.
    fn strip_ptrs(
        &mut self,
        n: Value,
        vector: bool,
        lanes: i64,
        state: Vec<Value>,
        ptrs: &[(Value, Stride)],
        chunk: &mut ChunkFn<'_>,
    ) -> Vec<Value> {
        let k = state.len();
        let mut state = state;
        state.extend(ptrs.iter().map(|&(p, _)| p));
        let advance = |t: &mut Translator<'_>, c: &mut [Value], elems: i64| {
            for (j, &(_, stride)) in ptrs.iter().enumerate() {
                c[k + j] = match stride {
                    Stride::Const(bytes) => t.b.ins().iadd_imm_s(c[k + j], bytes * elems),
                    Stride::Var(bytes) => {
                        debug_assert_eq!(elems, 1);
                        t.b.ins().iadd(c[k + j], bytes)
                    }
                };
            }
        };
        let mut i = self.b.ins().iconst(I64, 0);
        if vector {
            let unroll = self.unroll;
            let step = lanes * unroll as i64;
            (i, state) = self.for_range(i, n, step, &state, |t, i, c| {
                let mut c = c.to_vec();
                for u in 0..unroll {
                    let off = lanes * u as i64;
                    chunk(
                        t,
                        Chunk {
                            pair: true,
                            i,
                            off,
                            u,
                        },
                        &mut c,
                    );
                }
                advance(t, &mut c, step);
                c
            });
            (i, state) = self.for_range(i, n, lanes, &state, |t, i, c| {
                let mut c = c.to_vec();
                chunk(
                    t,
                    Chunk {
                        pair: true,
                        i,
                        off: 0,
                        u: 0,
                    },
                    &mut c,
                );
                advance(t, &mut c, lanes);
                c
            });
        }
        let (_, mut state) = self.for_range(i, n, 1, &state, |t, i, c| {
            let mut c = c.to_vec();
            chunk(
                t,
                Chunk {
                    pair: false,
                    i,
                    off: 0,
                    u: 0,
                },
                &mut c,
            );
            advance(t, &mut c, 1);
            c
        });
        state.truncate(k);
        state
    }

    // ---- memory --------------------------------------------------------------------------

    fn elem_type(&self) -> Type {
        match self.key.dtype {
            DType::F64 => F64,
            DType::F32 => F32,
        }
    }

    /// The type that moves a pair of elements unchanged.
    fn raw_pair_type(&self) -> Type {
        match self.key.dtype {
            DType::F64 => F64X2,
            DType::F32 => I64,
        }
    }

    fn data_stride(&self, run: Run) -> Stride {
        if self.key.inner_contiguous {
            Stride::Const(self.esize)
        } else {
            Stride::Var(run.stride)
        }
    }

    fn out_stride(&self, run: Run) -> Stride {
        if self.key.inner_contiguous {
            Stride::Const(self.esize)
        } else {
            Stride::Var(run.out_stride)
        }
    }

    /// Byte stride through an f64/u64 group array along the run.
    fn group_stride(&mut self, run: Run) -> Stride {
        if self.key.inner_contiguous {
            Stride::Const(8)
        } else {
            Stride::Var(self.b.ins().imul_imm_s(run.group_stride, 8))
        }
    }

    /// `base + i·stride`.
    fn elem_addr(&mut self, base: Value, i: Value, stride: Stride) -> Value {
        let d = match stride {
            Stride::Const(s) => self.b.ins().imul_imm_s(i, s),
            Stride::Var(s) => self.b.ins().imul(i, s),
        };
        self.b.ins().iadd(base, d)
    }

    /// The element at `at`, as f64.
    fn load_at(&mut self, at: Value) -> Value {
        let ty = self.elem_type();
        let x = self.b.ins().load(ty, self.data, at, 0);
        match self.key.dtype {
            DType::F64 => x,
            DType::F32 => self.b.ins().fpromote(F64, x),
        }
    }

    /// Stores an f64 as the element at `at`, rounding once to the element type.
    fn store_at(&mut self, v: Value, at: Value) {
        let v = match self.key.dtype {
            DType::F64 => v,
            DType::F32 => self.b.ins().fdemote(F32, v),
        };
        self.b.ins().store(self.data, v, at, 0);
    }

    /// The elements `i + off` and `i + off + 1` of a contiguous run, as f64x2.
    fn load_pair(&mut self, base: Value, i: Value, off: i64) -> Value {
        let at = self.elem_addr(base, i, Stride::Const(self.esize));
        self.load_pair_at(at, off)
    }

    /// The elements `off` and `off + 1` after `at`, as f64x2.
    fn load_pair_at(&mut self, at: Value, off: i64) -> Value {
        let off = (off * self.esize) as i32;
        match self.key.dtype {
            DType::F64 => self.b.ins().load(F64X2, self.data, at, off),
            DType::F32 => {
                let two = self.b.ins().load(F64, self.data, at, off);
                let v = self.b.ins().scalar_to_vector(F64X2, two);
                let little = MemFlagsData::new().with_endianness(Endianness::Little);
                let v = self.b.ins().bitcast(F32X4, little, v);
                self.b.ins().fvpromote_low(v)
            }
        }
    }

    /// Stores an f64x2 as the elements `off`, `off + 1` after `at`.
    fn store_pair_at(&mut self, v: Value, at: Value, off: i64) {
        let off = (off * self.esize) as i32;
        match self.key.dtype {
            DType::F64 => {
                self.b.ins().store(self.data, v, at, off);
            }
            DType::F32 => {
                let narrow = self.b.ins().fvdemote(v);
                let little = MemFlagsData::new().with_endianness(Endianness::Little);
                let wide = self.b.ins().bitcast(F64X2, little, narrow);
                let two = self.b.ins().extractlane(wide, 0);
                self.b.ins().store(self.data, two, at, off);
            }
        }
    }

    /// Stores lane `lane` of an f64x2 as the element `off + lane` after `at`.
    fn store_lane_at(&mut self, v: Value, lane: u8, at: Value, off: i64) {
        let x = self.b.ins().extractlane(v, lane);
        let x = match self.key.dtype {
            DType::F64 => x,
            DType::F32 => self.b.ins().fdemote(F32, x),
        };
        let off = ((off + i64::from(lane)) * self.esize) as i32;
        self.b.ins().store(self.data, x, at, off);
    }

    /// The element `i` of a run, as f64.
    fn load_one(&mut self, base: Value, i: Value, stride: Stride) -> Value {
        let at = self.elem_addr(base, i, stride);
        let ty = self.elem_type();
        let x = self.b.ins().load(ty, self.data, at, 0);
        match self.key.dtype {
            DType::F64 => x,
            DType::F32 => self.b.ins().fpromote(F64, x),
        }
    }

    /// Whether f32 data is handled four elements at a time in f32 (contiguous f32 runs), where
    /// that is bit-identical to the f64 computation: see the callers.
    fn native_f32(&self) -> bool {
        self.key.dtype == DType::F32 && self.key.inner_contiguous
    }

    /// The f32 elements `off .. off + 4` after `at`.
    fn load_f32x4_at(&mut self, at: Value, off: i64) -> Value {
        self.b.ins().load(F32X4, self.data, at, (off * 4) as i32)
    }

    /// Stores an f32x4 as the elements `off .. off + 4` after `at`.
    fn store_f32x4_at(&mut self, v: Value, at: Value, off: i64) {
        self.b.ins().store(self.data, v, at, (off * 4) as i32);
    }

    fn splat32(&mut self, x: f32) -> Value {
        let s = self.b.ins().f32const(x);
        self.b.ins().splat(F32X4, s)
    }

    fn splat(&mut self, x: f64) -> Value {
        let s = self.b.ins().f64const(x);
        self.b.ins().splat(F64X2, s)
    }

    /// The two lanes of an f64x2.
    fn lanes(&mut self, v: Value) -> (Value, Value) {
        (
            self.b.ins().extractlane(v, 0),
            self.b.ins().extractlane(v, 1),
        )
    }
}
