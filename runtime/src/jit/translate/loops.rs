//! The loop structure around the runs: the entry block and the loop descriptor, the nest of
//! loops down to the innermost runs (jammed or one at a time), counted loops that carry values
//! (`for_range`), and the strips that walk a run (`strip`, `strip_ptrs`).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{BlockArg, InstBuilder, MemFlagsData, Value};

use super::{
    Chunk, ChunkFn, Cursor, LOOP_DESC_LEN, LoopDesc, MAX_JAM_ROWS, Rows, Run, RunFn, Stride,
    Translator, UNROLL, UNROLL_JAM,
};

impl Translator<'_> {
    /// The cursor at the nest's first element: group 0 (relative), position 0.
    pub(super) fn start(&mut self, data: Value, out: Value) -> Cursor {
        let zero = self.b.ins().iconst(I64, 0);
        Cursor {
            data,
            out,
            group: zero,
            pos: zero,
        }
    }

    /// Creates the entry block and returns the function's parameters.
    pub(super) fn entry<const N: usize>(&mut self) -> [Value; N] {
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
    pub(super) fn load_loops(&mut self, loops: Value, in_place: bool) -> Vec<LoopDesc> {
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
    pub(super) fn nest(
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
        let jam = self.key.jam;
        if jam > 0 && level + 2 == loops.len() {
            // Unroll-and-jam: `jam` runs at a time, then the rest one by one.
            let inner = loops[level + 1];
            (start, _) = self.for_range(start, end, jam as i64, &[], |t, i, _| {
                let zero = t.b.ins().iconst(I64, 0);
                let mut rows: Vec<Cursor> = (0..jam)
                    .map(|k| {
                        let ik = t.b.ins().iadd_imm_s(i, k as i64);
                        let row = t.step(at, l, ik);
                        t.step(row, inner, zero)
                    })
                    .collect();
                rows.resize(MAX_JAM_ROWS, rows[0]);
                let rows: [Cursor; MAX_JAM_ROWS] =
                    rows.try_into().ok().expect("MAX_JAM_ROWS cursors");
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
                            count: jam,
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
    pub(super) fn for_range(
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
    pub(super) fn strip(
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
    pub(super) fn strip_ptrs(
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
                            unrolled: true,
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
                        unrolled: false,
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
                    unrolled: false,
                },
                &mut c,
            );
            advance(t, &mut c, 1);
            c
        });
        state.truncate(k);
        state
    }
}
