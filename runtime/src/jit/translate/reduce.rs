//! Runs of the reduce pass: `reduce_rows` (a run inside one group, folded in registers) and
//! `reduce_cols` (a run across groups, folded into the accumulators in memory), the folds of the
//! three norms, the horizontal merge of the vector accumulators, and the NaN detector with its
//! rescan (`check_finite`). Also the helpers the apply pass shares: the row offsets of a jammed
//! run and the constant `|x|` and `-x` masks.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32X4, F64, F64X2, I32, I32X4, I64, I64X2};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use multiproj_compiler::Norm;

use super::{JAM_ROWS, LANES, Run, Stride, Translator, UNROLL};

impl Translator<'_> {
    /// A run inside one group: fold it into registers (independent vector accumulators), then
    /// fold the total into `acc[group]` (and, for l2, the largest magnitude into `aux[group]`).
    pub(super) fn reduce_rows(&mut self, norm: Norm, acc: Value, aux: Value, run: Run) {
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
    pub(super) fn reduce_cols(&mut self, norm: Norm, acc: Value, aux: Value, run: Run) {
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
    pub(super) fn row_offsets(&mut self, run: Run, out: bool) -> Vec<Option<Value>> {
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
    pub(super) fn offset_ptr(&mut self, ptr: Value, offset: Option<Value>) -> Value {
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
    pub(super) fn sign_mask(&mut self, ty: Type) -> Value {
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
}
