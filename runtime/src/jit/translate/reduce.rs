//! Runs of the reduce pass: `reduce_rows` (a run inside one group, folded in registers) and
//! `reduce_cols` (a run across groups, folded into the accumulators in memory), the folds of the
//! three norms, the horizontal merge of the vector accumulators, and the NaN detector with its
//! rescan (`check_finite`). Also the row offsets of a jammed run, which the apply pass shares.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32X4, F64, F64X2, I16X8, I32, I32X4, I64};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Value};
use multiproj_compiler::{DType, Norm};

use super::{LANES, Run, Stride, Translator, UNROLL};

/// What [`Translator::reduce_rows`] carries through the loops of its strip, by name: block
/// parameters in the order of the fields (the maxima only for l2), then the data pointer.
#[derive(Clone, Copy)]
struct RowState {
    /// The vector accumulators, one per unrolled pair: sums (l1, l2) or maxima (linf).
    acc: [Value; UNROLL],
    /// l2: the vector maxima of `|x|`, one per unrolled pair.
    max: Option<[Value; UNROLL]>,
    /// The NaN detector of the vector loops.
    det: Value,
    /// The accumulator, maximum (l2) and NaN detector of the scalar loop.
    scalar_acc: Value,
    scalar_max: Option<Value>,
    scalar_det: Value,
}

impl RowState {
    /// The state before the first element: `vector` zeros and `scalar` zeros.
    fn zero(vector: Value, scalar: Value, l2: bool) -> Self {
        RowState {
            acc: [vector; UNROLL],
            max: l2.then_some([vector; UNROLL]),
            det: vector,
            scalar_acc: scalar,
            scalar_max: l2.then_some(scalar),
            scalar_det: scalar,
        }
    }

    /// The carried values, in order.
    fn values(&self) -> Vec<Value> {
        let mut v = self.acc.to_vec();
        v.extend(self.max.into_iter().flatten());
        v.extend([self.det, self.scalar_acc]);
        v.extend(self.scalar_max);
        v.push(self.scalar_det);
        v
    }

    /// The state at the front of the carried values.
    fn read(values: &[Value], l2: bool) -> Self {
        let mut values = values.iter().copied();
        let mut next = || values.next().expect("the carried values hold the state");
        RowState {
            acc: std::array::from_fn(|_| next()),
            max: l2.then(|| std::array::from_fn(|_| next())),
            det: next(),
            scalar_acc: next(),
            scalar_max: l2.then(&mut next),
            scalar_det: next(),
        }
    }

    /// Writes the state back to the front of the carried values.
    fn write(&self, values: &mut [Value]) {
        let v = self.values();
        values[..v.len()].copy_from_slice(&v);
    }
}

impl Translator<'_> {
    /// A run inside one group: fold it into registers (independent vector accumulators), then
    /// fold the total into `acc[group]` (and, for l2, the largest magnitude into `aux[group]`).
    pub(super) fn reduce_rows(&mut self, norm: Norm, acc: Value, aux: Value, run: Run) {
        let vector = self.key.inner_contiguous;
        let l2 = self.keeps_l2_max(norm);
        // max|x| of f32 elements is exact in f32 (it is one of them), so the linf reduce of f32
        // data runs on f32x4 vectors: four elements per load, no widening. The result is
        // promoted to f64 exactly. Sums (l1, l2) are formed in f64.
        let native = self.native_f32() && norm == Norm::Linf;
        // The same for the 16-bit formats, on their bits: magnitudes of finite values order as
        // their bit patterns with the sign cleared, ∞ and NaN above them all, so the largest
        // pattern, widened once, is max|x| — or non-finite exactly when an element is.
        let bits16 = vector && self.key.dtype.is_half() && norm == Norm::Linf;
        let lanes = if native {
            4
        } else if bits16 {
            8
        } else {
            LANES
        };
        let zv = if native {
            self.splat32(0.0)
        } else if bits16 {
            self.splat_i16(0)
        } else {
            self.splat(0.0)
        };
        let zs = self.b.ins().f64const(0.0);
        // One accumulator per unrolled pair: jammed runs, whose strips unroll less, are
        // column-wise and never come here.
        debug_assert_eq!(self.unroll, UNROLL);
        // Sums of 16-bit data (see below) keep their NaN detector as the largest magnitude
        // pattern, an i16x8.
        let sums16 = vector && self.key.dtype.is_half() && norm != Norm::Linf;
        let mut state = RowState::zero(zv, zs, l2);
        if sums16 {
            state.det = self.splat_i16(0);
        }
        let mag16 = sums16.then(|| self.splat_i16(0x7fff));
        let state = state.values();
        // The data pointer follows the state (see `strip_ptrs`).
        let ptr = state.len();
        let stride = self.data_stride(run);
        let abs_mask = if native {
            self.abs_mask(F32X4)
        } else if bits16 {
            self.splat_i16(0x7fff)
        } else {
            self.abs_mask(F64X2)
        };
        let ptrs = [(run.at.data, stride)];
        // Sums of 16-bit data: the unrolled loop's first pair loads all eight elements of its
        // step and widens their magnitudes to the four pairs that its four pairs would load,
        // each into that pair's accumulator; the other three pairs then have nothing left to
        // do, so the sums are formed in the same order as pair by pair (and as the
        // interpreter's `SumOrder`). The largest magnitude (l2's maximum, and the NaN detector:
        // non-finite exactly when an element is) is taken on the bits, as for linf.
        let st = self.strip_ptrs(run.n, vector, lanes, state, &ptrs, &mut |t, c, st| {
            let (mut s, data) = (RowState::read(st, l2), st[ptr]);
            if let (true, true, Some(mag16)) = (c.pair, c.unrolled, mag16) {
                if c.u == 0 {
                    let v = t.b.ins().load(I16X8, t.data, data, (c.off * 2) as i32);
                    let a = t.b.ins().band(v, mag16);
                    s.det = t.b.ins().umax(s.det, a);
                    let pairs = t.widen_half_x8(a);
                    for (k, x) in pairs.into_iter().enumerate() {
                        s.acc[k] = t.fold_abs(norm, s.acc[k], x, x, true);
                    }
                }
            } else if c.pair && sums16 {
                // The loop of single pairs after the unrolled one: as for other types, but the
                // detector is the i16x8 above (NaN bits of `x − x` OR-ed into it).
                let x = t.load_pair_at(data, c.off);
                let abs = t.b.ins().band(x, abs_mask);
                s.acc[c.u] = t.fold_abs(norm, s.acc[c.u], x, abs, true);
                if let Some(max) = &mut s.max {
                    max[c.u] = t.fold_abs(Norm::Linf, max[c.u], x, abs, true);
                }
                let d = t.b.ins().fsub(x, x);
                let little = MemFlagsData::new().with_endianness(Endianness::Little);
                let d = t.b.ins().bitcast(I16X8, little, d);
                s.det = t.b.ins().bor(s.det, d);
            } else if c.pair && bits16 {
                let x = t.b.ins().load(I16X8, t.data, data, (c.off * 2) as i32);
                let abs = t.b.ins().band(x, abs_mask);
                s.acc[c.u] = t.b.ins().umax(s.acc[c.u], abs);
            } else if c.pair {
                let x = if native {
                    t.load_f32x4_at(data, c.off)
                } else {
                    t.load_pair_at(data, c.off)
                };
                let abs = t.b.ins().band(x, abs_mask);
                s.acc[c.u] = t.fold_abs(norm, s.acc[c.u], x, abs, true);
                if let Some(max) = &mut s.max {
                    max[c.u] = t.fold_abs(Norm::Linf, max[c.u], x, abs, true);
                }
                if norm == Norm::Linf {
                    s.det = t.detect(s.det, x);
                }
            } else {
                let x = t.load_at(data);
                s.scalar_acc = t.fold(norm, s.scalar_acc, x, false);
                if let Some(max) = &mut s.scalar_max {
                    *max = t.fold(Norm::Linf, *max, x, false);
                }
                if norm == Norm::Linf {
                    s.scalar_det = t.detect(s.scalar_det, x);
                }
            }
            s.write(st);
        });
        let s = RowState::read(&st, l2);
        let mut det = s.scalar_det;
        let mut total = s.scalar_acc;
        let mut max = s.scalar_max.unwrap_or(zs);
        if bits16 {
            let m = self.horizontal_bits16(&s.acc);
            total = self.combine(Norm::Linf, m, total);
            let d = self.b.ins().fsub(m, m);
            det = self.b.ins().bor(det, d);
        } else if sums16 {
            total = self.horizontal(norm, &s.acc, total);
            // No maxima to merge: `keeps_l2_max` is false for the 16-bit formats.
            let m = self.horizontal_bits16(&[s.det]);
            let d = self.b.ins().fsub(m, m);
            det = self.b.ins().bor(det, d);
        } else if vector {
            if native {
                total = self.horizontal_f32(&s.acc, total);
            } else {
                total = self.horizontal(norm, &s.acc, total);
            }
            if let Some(maxima) = s.max {
                max = self.horizontal(Norm::Linf, &maxima, max);
            }
            let little = MemFlagsData::new().with_endianness(Endianness::Little);
            let dv = if native {
                self.b.ins().bitcast(F64X2, little, s.det)
            } else {
                s.det
            };
            let (lo, hi) = self.lanes(dv);
            let d = self.b.ins().bor(lo, hi);
            det = self.b.ins().bor(d, det);
        }
        if norm != Norm::Linf {
            // Sums detect for themselves: their terms are never negative, so the total is
            // non-finite exactly when an element is or the sum overflowed (then the rescan
            // finds nothing and the run carries on, see `check_finite`). One subtraction per
            // run instead of two instructions per vector.
            let d = self.b.ins().fsub(total, total);
            det = self.b.ins().bor(det, d);
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

    /// Whether the reduce pass keeps each group's largest magnitude beside its sum of squares:
    /// only for an l2 norm of f64 data. The maximum only tells whether a sum of squares lost the
    /// norm (`interp::sum_of_squares_lost`: it overflowed, or fell below f64's normal range
    /// while the group is not zero), and neither can happen to an f32, f16 or bf16 group. Every
    /// nonzero finite magnitude of those formats is at least 2^-149 and below 2^128, so its
    /// square is exact in f64 and lies in [2^-298, 2^256]; a sum of such squares (fewer than
    /// 2^64 of them) is either 0 (a zero group, whose maximum is 0) or normal and finite. The
    /// maxima are then left at 0, which gives the same answer, and the kernels save an AND
    /// and a maximum per vector (and, across groups, a second array of accumulators).
    fn keeps_l2_max(&self, norm: Norm) -> bool {
        norm == Norm::L2 && self.key.dtype == DType::F64
    }

    /// The largest of the 16-bit magnitude patterns in `vectors` (i16x8), widened to f64.
    fn horizontal_bits16(&mut self, vectors: &[Value]) -> Value {
        let mut v = vectors[0];
        for &w in &vectors[1..] {
            v = self.b.ins().umax(v, w);
        }
        let mut m = self.b.ins().extractlane(v, 0);
        for lane in 1..8u8 {
            let x = self.b.ins().extractlane(v, lane);
            m = self.b.ins().umax(m, x);
        }
        self.widen_bits16(m)
    }

    /// Folds f32x4 maxima and a scalar f64 maximum into one f64 (exactly: f32 → f64 is exact).
    fn horizontal_f32(&mut self, vectors: &[Value], scalar: Value) -> Value {
        let v = self.merge_tree(Norm::Linf, vectors);
        let l: Vec<Value> = (0..4u8)
            .map(|lane| self.b.ins().extractlane(v, lane))
            .collect();
        let m = self.merge_tree(Norm::Linf, &l);
        let m = self.b.ins().fpromote(F64, m);
        self.combine(Norm::Linf, m, scalar)
    }

    /// Folds vector accumulators (any number of them, see [`Self::merge_tree`]) and a scalar
    /// one into one f64.
    fn horizontal(&mut self, norm: Norm, vectors: &[Value], scalar: Value) -> Value {
        let v = self.merge_tree(norm, vectors);
        let (lo, hi) = self.lanes(v);
        let h = self.combine(norm, lo, hi);
        self.combine(norm, h, scalar)
    }

    /// Merges `values` (at least one) into one with [`Self::combine`], as a pairwise tree:
    /// neighbours first, then their results, level by level; an odd one out moves up a level
    /// unchanged. Four values (the [`UNROLL`] accumulators) give `(v0 ⊕ v1) ⊕ (v2 ⊕ v3)`, in
    /// that order of instructions.
    fn merge_tree(&mut self, norm: Norm, values: &[Value]) -> Value {
        assert!(!values.is_empty(), "a merge of no accumulators");
        let mut level = values.to_vec();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| match *pair {
                    [a, b] => self.combine(norm, a, b),
                    [a] => a,
                    _ => unreachable!("chunks of at most two"),
                })
                .collect();
        }
        level[0]
    }

    /// A run across groups (column-wise groups): a vector of accumulators `acc[g..]` (and, for
    /// l2, of maxima `aux[g..]`) updated in place.
    pub(super) fn reduce_cols(&mut self, norm: Norm, acc: Value, aux: Value, run: Run) {
        let vector = self.key.inner_contiguous;
        let l2 = self.keeps_l2_max(norm);
        let zv = self.splat(0.0);
        let zs = self.b.ins().f64const(0.0);
        let base = self.elem_addr(acc, run.at.group, Stride::Const(8));
        let aux_base = self.elem_addr(aux, run.at.group, Stride::Const(8));
        let stride = self.data_stride(run);
        let gstride = self.group_stride(run);
        let abs_mask = self.abs_mask(F64X2);
        // A jammed run folds the same element of its rows into one load and store of its
        // accumulator, row after row: the same order of operations as one run per row.
        let row_offsets = self.row_offsets(run, false);
        // [vector NaN detector, scalar detector; pointers: data, accumulators, (l2) maxima].
        let mut ptrs = vec![(run.at.data, stride), (base, gstride)];
        if l2 {
            ptrs.push((aux_base, gstride));
        }
        // f32 maxima: four lanes of f32 through the jammed rows (a maximum of f32 values is
        // exact in f32), widened once per run of rows to meet the f64 accumulators.
        let native_linf = norm == Norm::Linf && self.native_f32();
        let abs32 = native_linf.then(|| {
            let bits = self.b.ins().iconst(I32, i64::from(i32::MAX));
            self.b.ins().splat(I32X4, bits)
        });
        // The 16-bit formats: the largest magnitude pattern through the jammed rows, eight
        // columns at a time (see `reduce_rows`), widened once per run of rows.
        let bits16 = norm == Norm::Linf && vector && self.key.dtype.is_half();
        let mag16 = bits16.then(|| self.splat_i16(0x7fff));
        // Sums of 16-bit data: eight columns at a time, each row's magnitudes widened through
        // f32x4 into four pairs of accumulators (each column still adds its rows in order).
        let sums16 = norm != Norm::Linf && vector && self.key.dtype.is_half();
        let sum_mag16 = sums16.then(|| self.splat_i16(0x7fff));
        // The largest finite magnitude pattern of the format, for the sums' detector.
        let finite16 = sums16.then(|| {
            let f = crate::float16::Format::of(self.key.dtype).expect("a 16-bit format");
            self.splat_i16(i64::from(f.inf_bits() - 1))
        });
        let lanes = if native_linf {
            4
        } else if bits16 || sums16 {
            8
        } else {
            LANES
        };
        let st = self.strip_ptrs(
            run.n,
            vector,
            lanes,
            vec![zv, zs],
            &ptrs,
            &mut |t, c, st| {
                if let (true, Some(mag16)) = (c.pair, mag16) {
                    let mut m = None;
                    for &row in &row_offsets {
                        let at = t.offset_ptr(st[2], row);
                        let x = t.b.ins().load(I16X8, t.data, at, (c.off * 2) as i32);
                        let abs = t.b.ins().band(x, mag16);
                        m = Some(m.map_or(abs, |mm| t.b.ins().umax(mm, abs)));
                    }
                    let m = m.expect("a run has rows");
                    let little = MemFlagsData::new().with_endianness(Endianness::Little);
                    let words = t.b.ins().bitcast(I32X4, little, m);
                    for quarter in 0..4u8 {
                        let two = t.b.ins().extractlane(words, quarter);
                        let w = t.widen_bits16_pair(two);
                        let off = (c.off * 8 + 16 * i64::from(quarter)) as i32;
                        let a = t.b.ins().load(F64X2, t.data, st[3], off);
                        let a = t.pick_if_less(w, a, true);
                        // The NaN detector, as below: a non-finite maximum is ∞ or NaN.
                        let bad = t.b.ins().fsub(w, w);
                        let a = t.b.ins().bor(a, bad);
                        t.b.ins().store(t.data, a, st[3], off);
                        st[0] = t.detect(st[0], a);
                    }
                    return;
                }
                if let (true, Some(mag16), Some(finite16)) = (c.pair, sum_mag16, finite16) {
                    // (No maxima: `keeps_l2_max` is false for the 16-bit formats.)
                    let at_acc = |q: i64| (c.off * 8 + 16 * q) as i32;
                    let mut accs: Vec<Value> = (0..4)
                        .map(|q| t.b.ins().load(F64X2, t.data, st[3], at_acc(q)))
                        .collect();
                    let mut top = None;
                    for &row in &row_offsets {
                        let at = t.offset_ptr(st[2], row);
                        let v = t.b.ins().load(I16X8, t.data, at, (c.off * 2) as i32);
                        let a = t.b.ins().band(v, mag16);
                        top = Some(top.map_or(a, |m| t.b.ins().umax(m, a)));
                        let pairs = t.widen_half_mag_x8(a);
                        for (q, x) in pairs.into_iter().enumerate() {
                            accs[q] = t.fold_abs(norm, accs[q], x, x, true);
                        }
                    }
                    for (q, a) in accs.into_iter().enumerate() {
                        t.b.ins().store(t.data, a, st[3], at_acc(q as i64));
                    }
                    // The NaN detector, on the bits: the magnitudes widen without regard for ∞
                    // and NaN, whose patterns are the largest; a lane above the largest finite
                    // pattern sets every bit of its lane of the mask.
                    let top = top.expect("a run has rows");
                    let bad = t.b.ins().icmp(IntCC::UnsignedGreaterThan, top, finite16);
                    let little = MemFlagsData::new().with_endianness(Endianness::Little);
                    let bad = t.b.ins().bitcast(F64X2, little, bad);
                    st[0] = t.b.ins().bor(st[0], bad);
                    return;
                }
                if let (true, Some(abs32)) = (c.pair, abs32) {
                    // On the bits, as for the 16-bit formats: magnitudes of finite f32 values
                    // order as their patterns with the sign cleared, ∞ and NaN above them all,
                    // so the largest pattern is max|x|, or non-finite exactly when an element
                    // is: one `pmaxud` a row, and no detector until the widened maximum.
                    let little = MemFlagsData::new().with_endianness(Endianness::Little);
                    let mut m = None;
                    for &row in &row_offsets {
                        let at = t.offset_ptr(st[2], row);
                        let x = t.b.ins().load(I32X4, t.data, at, (c.off * 4) as i32);
                        let abs = t.b.ins().band(x, abs32);
                        m = Some(m.map_or(abs, |mm| t.b.ins().umax(mm, abs)));
                    }
                    let m = m.expect("a run has rows");
                    let m = t.b.ins().bitcast(F32X4, little, m);
                    let (m_lo, m_hi) = t.widen_f32x4(m);
                    for (half, m) in [(0, m_lo), (1, m_hi)] {
                        let off = (c.off * 8 + 16 * half) as i32;
                        let a = t.b.ins().load(F64X2, t.data, st[3], off);
                        let a = t.pick_if_less(m, a, true);
                        // The NaN detector, as below (a maximum can pass over a NaN).
                        let bad = t.b.ins().fsub(m, m);
                        let a = t.b.ins().bor(a, bad);
                        t.b.ins().store(t.data, a, st[3], off);
                        st[0] = t.detect(st[0], a);
                    }
                    return;
                }
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
                    if norm == Norm::Linf {
                        let d = t.b.ins().fsub(x, x);
                        bad = Some(bad.map_or(d, |b| t.b.ins().bor(b, d)));
                    }
                }
                // The NaN detector, through the stored accumulator. A maximum can pass over a
                // NaN, so linf ORs `x - x` into it: +0 for every finite `x`, which changes
                // nothing, and NaN bits for a non-finite one, which make the accumulator NaN
                // (it is thrown away with the error). The detector then only needs the stored
                // value, not every `x` until the end of the iteration (which would spill
                // them). A sum (l1, l2) needs nothing more: its terms are never negative, so
                // it is non-finite exactly when an element is or it overflowed (then the
                // rescan finds nothing and the run carries on, see `check_finite`).
                if let Some(bad) = bad {
                    a = t.b.ins().bor(a, bad);
                }
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

    /// The four lanes of an f32x4 as two f64x2 (lanes 0 and 1, then 2 and 3), exactly.
    pub(super) fn widen_f32x4(&mut self, v: Value) -> (Value, Value) {
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let lo = self.b.ins().fvpromote_low(v);
        let wide = self.b.ins().bitcast(F64X2, little, v);
        let two = self.b.ins().extractlane(wide, 1);
        let high = self.b.ins().scalar_to_vector(F64X2, two);
        let high = self.b.ins().bitcast(F32X4, little, high);
        (lo, self.b.ins().fvpromote_low(high))
    }

    /// The byte offsets of the rows of a jammed run from its first row (`[None]`, no offset,
    /// for a plain run), in the data or (`out`) in the output.
    pub(super) fn row_offsets(&mut self, run: Run, out: bool) -> Vec<Option<Value>> {
        match run.rows {
            None => vec![None],
            Some(rows) => {
                let stride = if out { rows.out_stride } else { rows.stride };
                std::iter::once(None)
                    .chain((1..rows.count).map(|k| Some(self.b.ins().imul_imm_s(stride, k as i64))))
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
            Some(rows) => rows.at[..rows.count].to_vec(),
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
