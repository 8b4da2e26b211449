//! Runs of the apply pass: `apply_rows` (one decision per run: copy, zero fill or projection)
//! and `apply_cols` (the action selected per lane with masks), the projection of one element or
//! pair (`op`), and the max/min selects the reduce pass shares (`pick_if_less`, …).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I16, I16X8, I32, I64, I64X2};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};

use super::{ApplyKind, Groups, LANES, Run, Stride, Translator};

/// The offsets of a jammed run's rows from its first (`None` for the first itself).
type RowOffsets = Vec<Option<Value>>;

impl Translator<'_> {
    /// A run inside one group: decide once per run — untouched (copied out of place, not even
    /// written in place), zero-filled without reading, or projected.
    pub(super) fn apply_rows(&mut self, op: ApplyKind, in_place: bool, g: Groups, run: Run) {
        let vector = self.key.inner_contiguous;
        let native = self.native_f32();
        // Copies and zero fills of contiguous 16-bit runs move eight elements at a time.
        let half = vector && self.key.dtype.is_half();
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
            // f32: four elements per move; the 16-bit formats: eight.
            let (raw, lanes) = if native {
                (F32X4, 4)
            } else if half {
                (I16X8, 8)
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
        let lanes = if native {
            4
        } else if half {
            8
        } else {
            LANES
        };
        let ptrs = [(run.at.out, out_stride)];
        self.strip_ptrs(run.n, vector, lanes, vec![], &ptrs, &mut |t, c, st| {
            if c.pair {
                let zero = if native {
                    t.splat32(0.0)
                } else if half {
                    t.splat_i16(0)
                } else if t.raw_pair_type() == F64X2 {
                    t.splat(0.0)
                } else {
                    let ty = t.raw_pair_type();
                    t.b.ins().iconst(ty, 0)
                };
                t.b.ins()
                    .store(t.data, zero, st[0], (c.off * t.esize) as i32);
            } else {
                let zero = t.elem_zero();
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
        // The 16-bit formats clip on their bits, eight at a time: the bound is a value of the
        // format (rounded toward zero), so `|y| > r` compares magnitude patterns (finite data:
        // a non-finite element stopped the reduce pass), and a clipped element becomes the
        // bound's pattern with its own sign — what clipping in f64 and rounding gives.
        let clip16 = vector && self.key.dtype.is_half() && op == ApplyKind::Clip;
        let (bound16, mag16, sign16) = if clip16 {
            let b = self.round_bits16(param);
            let b = self.b.ins().splat(I16X8, b);
            (b, self.splat_i16(0x7fff), self.splat_i16(-0x8000))
        } else {
            (param, param, param)
        };
        // The 16-bit formats scale in f32 (`solve::apply_one_as`), eight at a time: widened
        // exactly to f32, multiplied by the factor (an f32), rounded to the format.
        let scale16 = vector && self.key.dtype.is_half() && op == ApplyKind::Scale;
        let factor32 = if scale16 {
            let p = self.b.ins().fdemote(F32, param);
            self.b.ins().splat(F32X4, p)
        } else {
            param
        };
        let lanes = if clip32 {
            4
        } else if clip16 || scale16 {
            8
        } else {
            LANES
        };
        let ptrs = [(run.at.data, stride), (run.at.out, out_stride)];
        self.strip_ptrs(run.n, vector, lanes, vec![], &ptrs, &mut |t, c, st| {
            let (src, dst) = (st[0], st[1]);
            if c.pair && scale16 {
                let y = t.b.ins().load(I16X8, t.data, src, (c.off * 2) as i32);
                let [a, b] = t.widen_half_x8_f32(y);
                let a = t.b.ins().fmul(a, factor32);
                let b = t.b.ins().fmul(b, factor32);
                let r = t.round_half_f32x4_pair(a, b);
                t.b.ins().store(t.data, r, dst, (c.off * 2) as i32);
            } else if c.pair && clip16 {
                let y = t.b.ins().load(I16X8, t.data, src, (c.off * 2) as i32);
                let a = t.b.ins().band(y, mag16);
                let over = t.b.ins().icmp(IntCC::SignedGreaterThan, a, bound16);
                let sign = t.b.ins().band(y, sign16);
                let clipped = t.b.ins().bor(sign, bound16);
                let r = t.b.ins().bitselect(over, clipped, y);
                t.b.ins().store(t.data, r, dst, (c.off * 2) as i32);
            } else if c.pair && clip32 {
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
    pub(super) fn apply_cols(&mut self, op: ApplyKind, in_place: bool, g: Groups, run: Run) {
        if op == ApplyKind::Clip && self.bits16_cols() {
            return self.clip_cols_bits16(g, run, in_place);
        }
        if op == ApplyKind::Scale && self.bits16_cols() {
            return self.scale_cols_bits16(g, run, in_place);
        }
        if op == ApplyKind::Clip && !in_place && self.native_f32() {
            return self.clip_cols_f32(g, run);
        }
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
        // A jammed run loads each group's parameters and masks once for all its rows.
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

    /// [`Self::apply_cols`] for the clip of contiguous f32 data out of place: four lanes of
    /// f32 against the radii rounded to f32 (`param32`), masked with `live32` — bit for bit the
    /// clip in f64 rounded once, by the argument in [`Self::apply_rows`]. A kept group has the
    /// radius +∞ and `live` set, a zeroed one `live` clear.
    fn clip_cols_f32(&mut self, g: Groups, run: Run) {
        let param = self.elem_addr(g.param32, run.at.group, Stride::Const(4));
        let live = self.elem_addr(g.live32, run.at.group, Stride::Const(4));
        let (stride, out_stride) = (self.data_stride(run), self.out_stride(run));
        // A jammed run loads each group's radius and mask once for all its rows.
        let data_rows = self.row_offsets(run, false);
        let out_rows = self.row_offsets(run, true);
        let ptrs = [
            (run.at.data, stride),
            (param, Stride::Const(4)),
            (live, Stride::Const(4)),
            (run.at.out, out_stride),
        ];
        self.strip_ptrs(run.n, true, 4, vec![], &ptrs, &mut |t, c, st| {
            let (data, param, live, out) = (st[0], st[1], st[2], st[3]);
            let (ty, mask_ty, off) = if c.pair {
                (F32X4, F32X4, (c.off * 4) as i32)
            } else {
                (F32, F32, 0)
            };
            let p = t.b.ins().load(ty, t.data, param, off);
            let l = t.b.ins().load(mask_ty, t.data, live, off);
            for (&d, &o) in data_rows.iter().zip(&out_rows) {
                let src = t.offset_ptr(data, d);
                let y = t.b.ins().load(ty, t.data, src, off);
                let r = t.op(ApplyKind::Clip, y, p, p, c.pair);
                let r = if c.pair {
                    t.b.ins().band(r, l)
                } else {
                    // Scalar floats are masked through their bits.
                    let bits = t.b.ins().bitcast(I32, MemFlagsData::new(), r);
                    let lb = t.b.ins().bitcast(I32, MemFlagsData::new(), l);
                    let m = t.b.ins().band(bits, lb);
                    t.b.ins().bitcast(F32, MemFlagsData::new(), m)
                };
                let dst = t.offset_ptr(out, o);
                t.b.ins().store(t.data, r, dst, off);
            }
        });
    }

    /// Whether 16-bit data runs across groups eight lanes of bits at a time (contiguous runs).
    pub(super) fn bits16_cols(&self) -> bool {
        self.key.dtype.is_half() && self.key.inner_contiguous
    }

    /// What the 16-bit column kernels walk: the jammed rows' offsets (data, output) and the
    /// pointers along the run — data, the groups' parameters (`params`, `size` bytes each),
    /// `live16`, output.
    fn cols16_walk(
        &mut self,
        params: Value,
        size: i64,
        g: Groups,
        run: Run,
    ) -> (RowOffsets, RowOffsets, [(Value, Stride); 4]) {
        let param = self.elem_addr(params, run.at.group, Stride::Const(size));
        let live = self.elem_addr(g.live16, run.at.group, Stride::Const(2));
        let (stride, out_stride) = (self.data_stride(run), self.out_stride(run));
        let data_rows = self.row_offsets(run, false);
        let out_rows = self.row_offsets(run, true);
        let ptrs = [
            (run.at.data, stride),
            (param, Stride::Const(size)),
            (live, Stride::Const(2)),
            (run.at.out, out_stride),
        ];
        (data_rows, out_rows, ptrs)
    }

    /// The column-wise clip of f16/bf16 data, on the bits, eight lanes at a time: a magnitude
    /// pattern above the group's bound pattern (`param16`) becomes the bound's with the
    /// element's sign, as in `apply_rows`; then `& live16` (zero-filled groups). A kept group's
    /// bound is `0x7fff`, above every magnitude pattern (NaN's included), so its elements come
    /// out with their own bits. In place, eight columns that are all kept are not written; where
    /// kept and other columns share a vector, the kept lanes are stored with the bits they were
    /// loaded with (integer operations only: nothing can change them).
    fn clip_cols_bits16(&mut self, g: Groups, run: Run, in_place: bool) {
        let (data_rows, out_rows, ptrs) = self.cols16_walk(g.param16, 2, g, run);
        let (mag_v, sign_v) = (self.splat_i16(0x7fff), self.splat_i16(-0x8000));
        self.strip_ptrs(run.n, true, 8, vec![], &ptrs, &mut |t, c, st| {
            let (data, param, live, out) = (st[0], st[1], st[2], st[3]);
            let (ty, off) = if c.pair {
                (I16X8, (c.off * 2) as i32)
            } else {
                (I16, 0)
            };
            let b = t.b.ins().load(ty, t.data, param, off);
            let l = t.b.ins().load(ty, t.data, live, off);
            let join = in_place.then(|| {
                // Skip the rows when every column here is kept.
                let kept = if c.pair {
                    let k = t.b.ins().icmp(IntCC::Equal, b, mag_v);
                    t.b.ins().vall_true(k)
                } else {
                    t.b.ins().icmp_imm_s(IntCC::Equal, b, 0x7fff)
                };
                let (write, join) = (t.b.create_block(), t.b.create_block());
                t.b.ins().brif(kept, join, &[], write, &[]);
                t.b.switch_to_block(write);
                join
            });
            for (&d, &o) in data_rows.iter().zip(&out_rows) {
                let src = t.offset_ptr(data, d);
                let y = t.b.ins().load(ty, t.data, src, off);
                let (a, sign) = if c.pair {
                    (t.b.ins().band(y, mag_v), t.b.ins().band(y, sign_v))
                } else {
                    (
                        t.b.ins().band_imm_s(y, 0x7fff),
                        t.b.ins().band_imm_s(y, -0x8000),
                    )
                };
                let over = t.b.ins().icmp(IntCC::SignedGreaterThan, a, b);
                let clipped = t.b.ins().bor(sign, b);
                let r = if c.pair {
                    t.b.ins().bitselect(over, clipped, y)
                } else {
                    t.b.ins().select(over, clipped, y)
                };
                let r = t.b.ins().band(r, l);
                let dst = t.offset_ptr(out, o);
                t.b.ins().store(t.data, r, dst, off);
            }
            if let Some(join) = join {
                t.b.ins().jump(join, &[]);
                t.b.switch_to_block(join);
            }
        });
    }

    /// The column-wise scaling of f16/bf16 data, eight lanes at a time in f32
    /// (`solve::apply_one_as`): each lane's factor from `param32` (an f32 already), the
    /// product rounded to the format, then `& live16` (zero-filled groups). A kept group's
    /// factor is 1: its lanes are selected with the bits they were loaded with. In place,
    /// eight columns that are all kept are not written; where kept and other columns share a
    /// vector, the kept lanes are stored with those same bits.
    fn scale_cols_bits16(&mut self, g: Groups, run: Run, in_place: bool) {
        let (data_rows, out_rows, ptrs) = self.cols16_walk(g.param32, 4, g, run);
        let one = self.splat32(1.0);
        self.strip_ptrs(run.n, true, 8, vec![], &ptrs, &mut |t, c, st| {
            let (data, param, live, out) = (st[0], st[1], st[2], st[3]);
            let (p, l) = if c.pair {
                let p0 = t.b.ins().load(F32X4, t.data, param, (c.off * 4) as i32);
                let p1 =
                    t.b.ins()
                        .load(F32X4, t.data, param, (c.off * 4 + 16) as i32);
                let l = t.b.ins().load(I16X8, t.data, live, (c.off * 2) as i32);
                ([p0, p1], l)
            } else {
                let p = t.b.ins().load(F32, t.data, param, 0);
                let l = t.b.ins().load(I16, t.data, live, 0);
                ([p, p], l)
            };
            // The kept lanes (factor 1): their loaded bits are stored back as they are (a NaN
            // pattern through f32 would lose its payload).
            let kept = if c.pair {
                let k0 = t.b.ins().fcmp(FloatCC::Equal, p[0], one);
                let k1 = t.b.ins().fcmp(FloatCC::Equal, p[1], one);
                t.b.ins().snarrow(k0, k1)
            } else {
                let one = t.b.ins().f32const(1.0);
                t.b.ins().fcmp(FloatCC::Equal, p[0], one)
            };
            let join = in_place.then(|| {
                // Skip the rows when every column here is kept.
                let all = if c.pair {
                    t.b.ins().vall_true(kept)
                } else {
                    kept
                };
                let (write, join) = (t.b.create_block(), t.b.create_block());
                t.b.ins().brif(all, join, &[], write, &[]);
                t.b.switch_to_block(write);
                join
            });
            for (&d, &o) in data_rows.iter().zip(&out_rows) {
                let src = t.offset_ptr(data, d);
                let dst = t.offset_ptr(out, o);
                if c.pair {
                    let y = t.b.ins().load(I16X8, t.data, src, (c.off * 2) as i32);
                    let [a, b] = t.widen_half_x8_f32(y);
                    let a = t.b.ins().fmul(a, p[0]);
                    let b = t.b.ins().fmul(b, p[1]);
                    let r = t.round_half_f32x4_pair(a, b);
                    let r = t.b.ins().bitselect(kept, y, r);
                    let r = t.b.ins().band(r, l);
                    t.b.ins().store(t.data, r, dst, (c.off * 2) as i32);
                } else {
                    let raw = t.b.ins().load(I16, t.data, src, 0);
                    let y = t.widen_bits16(raw);
                    let y = t.b.ins().fdemote(F32, y);
                    let r = t.b.ins().fmul(y, p[0]);
                    let r = t.b.ins().fpromote(F64, r);
                    let r = t.round_bits16(r);
                    let r = t.b.ins().select(kept, raw, r);
                    let r = t.b.ins().band(r, l);
                    t.b.ins().store(t.data, r, dst, 0);
                }
            }
            if let Some(join) = join {
                t.b.ins().jump(join, &[]);
                t.b.switch_to_block(join);
            }
        });
    }

    /// The projection of `y` with the group parameters `p` (radius, factor, or the base of the
    /// threshold) and `o` (the threshold's offset), in f64, exactly as `solve::apply_one_as`
    /// computes it.
    fn op(&mut self, op: ApplyKind, y: Value, p: Value, o: Value, vector: bool) -> Value {
        match op {
            ApplyKind::Scale if self.key.dtype.is_half() => {
                // `solve::apply_one_as`: in f32 (`y` is exact there).
                if vector {
                    let (y, p) = (self.b.ins().fvdemote(y), self.b.ins().fvdemote(p));
                    let r = self.b.ins().fmul(y, p);
                    self.b.ins().fvpromote_low(r)
                } else {
                    let (y, p) = (self.b.ins().fdemote(F32, y), self.b.ins().fdemote(F32, p));
                    let r = self.b.ins().fmul(y, p);
                    self.b.ins().fpromote(F64, r)
                }
            }
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
    pub(super) fn pick_if_less(&mut self, x: Value, y: Value, vector: bool) -> Value {
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
}
