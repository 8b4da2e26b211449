//! Memory: the element type and the strides of a run, addresses, loads and stores of single
//! elements, of pairs (f64x2, widened from and rounded to f32 for f32 data) and of f32x4
//! vectors, and vector constants (zeros, the `|x|` and `-x` masks) and lanes.

use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32, I32X4, I64, I64X2};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use multiproj_compiler::DType;

use super::{Run, Stride, Translator};

impl Translator<'_> {
    pub(super) fn elem_type(&self) -> Type {
        match self.key.dtype {
            DType::F64 => F64,
            DType::F32 => F32,
        }
    }

    /// The type that moves a pair of elements unchanged.
    pub(super) fn raw_pair_type(&self) -> Type {
        match self.key.dtype {
            DType::F64 => F64X2,
            DType::F32 => I64,
        }
    }

    pub(super) fn data_stride(&self, run: Run) -> Stride {
        if self.key.inner_contiguous {
            Stride::Const(self.esize)
        } else {
            Stride::Var(run.stride)
        }
    }

    pub(super) fn out_stride(&self, run: Run) -> Stride {
        if self.key.inner_contiguous {
            Stride::Const(self.esize)
        } else {
            Stride::Var(run.out_stride)
        }
    }

    /// Byte stride through an f64/u64 group array along the run.
    pub(super) fn group_stride(&mut self, run: Run) -> Stride {
        if self.key.inner_contiguous {
            Stride::Const(8)
        } else {
            Stride::Var(self.b.ins().imul_imm_s(run.group_stride, 8))
        }
    }

    /// `base + i·stride`.
    pub(super) fn elem_addr(&mut self, base: Value, i: Value, stride: Stride) -> Value {
        let d = match stride {
            Stride::Const(s) => self.b.ins().imul_imm_s(i, s),
            Stride::Var(s) => self.b.ins().imul(i, s),
        };
        self.b.ins().iadd(base, d)
    }

    /// The element at `at`, as f64.
    pub(super) fn load_at(&mut self, at: Value) -> Value {
        let ty = self.elem_type();
        let x = self.b.ins().load(ty, self.data, at, 0);
        match self.key.dtype {
            DType::F64 => x,
            DType::F32 => self.b.ins().fpromote(F64, x),
        }
    }

    /// Stores an f64 as the element at `at`, rounding once to the element type.
    pub(super) fn store_at(&mut self, v: Value, at: Value) {
        let v = match self.key.dtype {
            DType::F64 => v,
            DType::F32 => self.b.ins().fdemote(F32, v),
        };
        self.b.ins().store(self.data, v, at, 0);
    }

    /// The elements `i + off` and `i + off + 1` of a contiguous run, as f64x2.
    pub(super) fn load_pair(&mut self, base: Value, i: Value, off: i64) -> Value {
        let at = self.elem_addr(base, i, Stride::Const(self.esize));
        self.load_pair_at(at, off)
    }

    /// The elements `off` and `off + 1` after `at`, as f64x2.
    pub(super) fn load_pair_at(&mut self, at: Value, off: i64) -> Value {
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
    pub(super) fn store_pair_at(&mut self, v: Value, at: Value, off: i64) {
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
    pub(super) fn store_lane_at(&mut self, v: Value, lane: u8, at: Value, off: i64) {
        let x = self.b.ins().extractlane(v, lane);
        let x = match self.key.dtype {
            DType::F64 => x,
            DType::F32 => self.b.ins().fdemote(F32, x),
        };
        let off = ((off + i64::from(lane)) * self.esize) as i32;
        self.b.ins().store(self.data, x, at, off);
    }

    /// The element `i` of a run, as f64.
    pub(super) fn load_one(&mut self, base: Value, i: Value, stride: Stride) -> Value {
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
    pub(super) fn native_f32(&self) -> bool {
        self.key.dtype == DType::F32 && self.key.inner_contiguous
    }

    /// The f32 elements `off .. off + 4` after `at`.
    pub(super) fn load_f32x4_at(&mut self, at: Value, off: i64) -> Value {
        self.b.ins().load(F32X4, self.data, at, (off * 4) as i32)
    }

    /// Stores an f32x4 as the elements `off .. off + 4` after `at`.
    pub(super) fn store_f32x4_at(&mut self, v: Value, at: Value, off: i64) {
        self.b.ins().store(self.data, v, at, (off * 4) as i32);
    }

    /// A float vector of type `ty` (f64x2 or f32x4) with the sign bits clear: `x & mask` is
    /// `|x|`. (A vector `fabs` rebuilds its mask at every use; this constant is loaded once.)
    pub(super) fn abs_mask(&mut self, ty: Type) -> Value {
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

    pub(super) fn splat32(&mut self, x: f32) -> Value {
        let s = self.b.ins().f32const(x);
        self.b.ins().splat(F32X4, s)
    }

    pub(super) fn splat(&mut self, x: f64) -> Value {
        let s = self.b.ins().f64const(x);
        self.b.ins().splat(F64X2, s)
    }

    /// The two lanes of an f64x2.
    pub(super) fn lanes(&mut self, v: Value) -> (Value, Value) {
        (
            self.b.ins().extractlane(v, 0),
            self.b.ins().extractlane(v, 1),
        )
    }
}
