//! Runs of the gather (the threshold stage's data movement): `gather_rows`, one decision per
//! run and a straight copy, and `gather_cols`, branch-free with a cursor per element.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::{LANES, Run, Stride, Translator};

impl Translator<'_> {
    /// A run inside one group: one decision per run, then a straight copy of `|x|` to the
    /// group's cursor (vectorized when the run is contiguous; the output always is).
    pub(super) fn gather_rows(&mut self, cursor: Value, out: Value, run: Run) {
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
    pub(super) fn gather_cols(&mut self, cursor: Value, out: Value, trash: Value, run: Run) {
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
}
