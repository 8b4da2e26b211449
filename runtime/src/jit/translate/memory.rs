//! Memory: the element type and the strides of a run, addresses, loads and stores of single
//! elements, of pairs (f64x2, widened from and rounded to f32 for f32 data) and of f32x4
//! vectors, and vector constants (zeros, the `|x|` and `-x` masks) and lanes.
//!
//! The 16-bit formats are loaded as integers and widened to f64 exactly, and rounded from f64
//! once, to nearest even, by the method of [`crate::float16`] written out in instructions
//! (scalar, and two lanes at a time for pairs), so the JIT stores the same bits as the
//! interpreter.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I16, I16X8, I32, I32X4, I64, I64X2};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use multiproj_compiler::DType;

use super::{Run, Stride, Translator};
use crate::float16::{self, Format};

impl Translator<'_> {
    /// The type an element is loaded and stored as (the 16-bit formats as their bits).
    pub(super) fn elem_type(&self) -> Type {
        match self.key.dtype {
            DType::F64 => F64,
            DType::F32 => F32,
            DType::F16 | DType::BF16 => I16,
        }
    }

    /// The type that moves a pair of elements unchanged.
    pub(super) fn raw_pair_type(&self) -> Type {
        match self.key.dtype {
            DType::F64 => F64X2,
            DType::F32 => I64,
            DType::F16 | DType::BF16 => I32,
        }
    }

    /// A zero of [`elem_type`](Self::elem_type).
    pub(super) fn elem_zero(&mut self) -> Value {
        match self.key.dtype {
            DType::F64 => self.b.ins().f64const(0.0),
            DType::F32 => self.b.ins().f32const(0.0),
            DType::F16 | DType::BF16 => self.b.ins().iconst(I16, 0),
        }
    }

    /// The bits of a 16-bit element (i16), as f64 (exact).
    pub(super) fn widen_bits16(&mut self, h: Value) -> Value {
        debug_assert!(self.key.dtype.is_half());
        self.widen_one(h)
    }

    /// Two 16-bit elements packed in an i32 (the first in the low half), as an f64x2 (exact).
    pub(super) fn widen_bits16_pair(&mut self, two: Value) -> Value {
        debug_assert!(self.key.dtype.is_half());
        self.widen_half_pair(two)
    }

    /// Eight 16-bit elements (an i16x8 of their bits), widened exactly to four f64x2
    /// (elements 0–1, 2–3, 4–5, 6–7): through f32x4, which holds every f16 and bf16 value.
    /// An f16 is moved into an f32 as if its bias were f32's and scaled by `2^(127 − 15)`
    /// (exact, subnormals included); ∞ and NaN patterns, which that scales to at least 2^16,
    /// get f32's all-ones exponent instead.
    pub(super) fn widen_half_x8(&mut self, v: Value) -> [Value; 4] {
        let halves = self.widen_half_x8_f32(v);
        self.widen_f32x4_pair(halves)
    }

    /// Eight 16-bit *magnitudes* (an i16x8 of bit patterns with the sign bits clear), widened
    /// as [`Self::widen_half_x8`] does for finite ones, without its care for the sign and for ∞
    /// and NaN: an f16 ∞ or NaN pattern widens to a finite value. For the sums of the reduce
    /// pass, which detect non-finite elements on the bits (the largest pattern) instead. Three
    /// instructions per four f16 elements (widen, shift, scale) where the general one takes
    /// eleven; bf16 is the same shift either way.
    pub(super) fn widen_half_mag_x8(&mut self, v: Value) -> [Value; 4] {
        if self.key.dtype == DType::BF16 {
            return self.widen_half_x8(v);
        }
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let words = [self.b.ins().uwiden_low(v), self.b.ins().uwiden_high(v)];
        let halves = words.map(|w| {
            let moved = self.b.ins().ishl_imm_u(w, 13);
            let f = self.b.ins().bitcast(F32X4, little, moved);
            let scale = self.splat32(2f32.powi(112));
            self.b.ins().fmul(f, scale)
        });
        self.widen_f32x4_pair(halves)
    }

    /// Two f32x4 as four f64x2 (lanes 0–1, 2–3 of the first, then of the second), exactly.
    fn widen_f32x4_pair(&mut self, [a, b]: [Value; 2]) -> [Value; 4] {
        let (a0, a1) = self.widen_f32x4(a);
        let (b0, b1) = self.widen_f32x4(b);
        [a0, a1, b0, b1]
    }

    /// Eight 16-bit elements (an i16x8 of their bits), widened exactly to two f32x4 (elements
    /// 0–3, 4–7), as [`Self::widen_half_x8`] describes.
    pub(super) fn widen_half_x8_f32(&mut self, v: Value) -> [Value; 2] {
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let words = [self.b.ins().uwiden_low(v), self.b.ins().uwiden_high(v)];
        words.map(|w| {
            if self.key.dtype == DType::BF16 {
                let w = self.b.ins().ishl_imm_u(w, 16);
                self.b.ins().bitcast(F32X4, little, w)
            } else {
                let m = self.splat_i32(0x7fff);
                let a = self.b.ins().band(w, m);
                let m = self.splat_i32(0x8000);
                let sign = self.b.ins().band(w, m);
                let sign = self.b.ins().ishl_imm_u(sign, 16);
                let moved = self.b.ins().ishl_imm_u(a, 13);
                let fin = self.b.ins().bitcast(F32X4, little, moved);
                let scale = self.splat32(2f32.powi(112));
                let fin = self.b.ins().fmul(fin, scale);
                let big = self.splat32(65536.0);
                let special = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, fin, big);
                let fin = self.b.ins().bitcast(I32X4, little, fin);
                let ones = self.splat_i32(0x7f80_0000);
                let spec = self.b.ins().bor(moved, ones);
                let bits = self.b.ins().bitselect(special, spec, fin);
                let bits = self.b.ins().bor(bits, sign);
                self.b.ins().bitcast(F32X4, little, bits)
            }
        })
    }

    /// Two f32x4 rounded to nearest even in the 16-bit format, packed into an i16x8 of bit
    /// patterns (`lo`'s lanes first): [`Format::round`] of each f32's value (exact in f64),
    /// on the f32's bits. bf16 shares f32's exponent range, so cutting the significand rounds
    /// its normal and subnormal numbers alike; f16's subnormals round by one f32 addition of
    /// `c = 2^-1`, whose ulp is f16's subnormal unit.
    pub(super) fn round_half_f32x4_pair(&mut self, lo: Value, hi: Value) -> Value {
        let h = [lo, hi].map(|v| {
            let r = self.round_half_f32x4(v);
            // Sign-extended from 16 bits, so that the signed narrowing keeps every pattern.
            let r = self.b.ins().ishl_imm_u(r, 16);
            self.b.ins().sshr_imm_u(r, 16)
        });
        self.b.ins().snarrow(h[0], h[1])
    }

    /// An f32x4 rounded to the 16-bit format, each lane's bits in the low half of an i32.
    fn round_half_f32x4(&mut self, v: Value) -> Value {
        let f = Format::of(self.key.dtype).expect("a 16-bit format");
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        // f32 keeps 23 significand bits; the format keeps `mant`.
        let shift = i64::from(23 - f.mant);
        let b = self.b.ins().bitcast(I32X4, little, v);
        let sign = self.b.ins().ushr_imm_u(b, 16);
        let m = self.splat_i32(0x8000);
        let sign = self.b.ins().band(sign, m);
        let m = self.splat_i32(0x7fff_ffff);
        let a = self.b.ins().band(b, m);
        // Rebias, round to nearest even (`Format::normal_add` for f32's bits).
        let lsb = self.b.ins().ushr_imm_u(a, shift);
        let one = self.splat_i32(1);
        let lsb = self.b.ins().band(lsb, one);
        let add = ((f.bias - 127) << 23) + (1 << (shift - 1)) - 1;
        let add = self.splat_i32(add);
        let r = self.b.ins().iadd(a, add);
        let r = self.b.ins().iadd(r, lsb);
        let r = self.b.ins().ushr_imm_u(r, shift);
        let af = self.b.ins().bitcast(F32X4, little, a);
        let r = if f.bias == 127 {
            // bf16: a carry out of the largest binade is ∞'s pattern, and f32 has nothing
            // larger; subnormals are cut like normals.
            r
        } else {
            // f16: clamp to ∞ from 2^16 on (65520 and up carry to ∞ by themselves).
            let limit = self.splat32(2f32.powi(f.bias as i32 + 1));
            let over = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, af, limit);
            let inf = self.splat_i32(i64::from(f.inf_bits()));
            let r = self.b.ins().bitselect(over, inf, r);
            // Subnormals: `|v| + 2^-1 − 2^-1` on the bits.
            let c = 2f32.powi(1 - f.bias as i32 - f.mant as i32 + 23);
            let cv = self.splat32(c);
            let sum = self.b.ins().fadd(af, cv);
            let sum = self.b.ins().bitcast(I32X4, little, sum);
            let cb = self.splat_i32(i64::from(c.to_bits()));
            let sub = self.b.ins().isub(sum, cb);
            let min_normal = self.splat32(2f32.powi(1 - f.bias as i32));
            let normal = self
                .b
                .ins()
                .fcmp(FloatCC::GreaterThanOrEqual, af, min_normal);
            self.b.ins().bitselect(normal, r, sub)
        };
        let is_nan = self.b.ins().fcmp(FloatCC::Unordered, v, v);
        let nan = self.splat_i32(i64::from(f.nan_bits()));
        let h = self.b.ins().bitselect(is_nan, nan, r);
        self.b.ins().bor(h, sign)
    }

    fn splat_i32(&mut self, x: i64) -> Value {
        let s = self.b.ins().iconst(I32, x);
        self.b.ins().splat(I32X4, s)
    }

    /// An f64 rounded to the 16-bit format, as its bits (i16).
    pub(super) fn round_bits16(&mut self, v: Value) -> Value {
        debug_assert!(self.key.dtype.is_half());
        self.narrow_one(v)
    }

    /// `x` in every lane of an i16x8.
    pub(super) fn splat_i16(&mut self, x: i64) -> Value {
        let s = self.b.ins().iconst(I16, x);
        self.b.ins().splat(I16X8, s)
    }

    /// An element as loaded ([`elem_type`](Self::elem_type)), as f64 (exact).
    fn widen_one(&mut self, x: Value) -> Value {
        match self.key.dtype {
            DType::F64 => x,
            DType::F32 => self.b.ins().fpromote(F64, x),
            DType::F16 => self.widen_f16(x),
            DType::BF16 => {
                let w = self.b.ins().uextend(I32, x);
                let w = self.b.ins().ishl_imm_u(w, 16);
                let w = self.b.ins().bitcast(F32, MemFlagsData::new(), w);
                self.b.ins().fpromote(F64, w)
            }
        }
    }

    /// An f64 rounded once to the element type, as stored ([`elem_type`](Self::elem_type)).
    fn narrow_one(&mut self, v: Value) -> Value {
        match self.key.dtype {
            DType::F64 => v,
            DType::F32 => self.b.ins().fdemote(F32, v),
            DType::F16 => self.round_half(float16::F16, v),
            DType::BF16 => self.round_half(float16::BF16, v),
        }
    }

    /// f16 bits (i16) to f64: the bits moved into an f64 and scaled by `2^(1023 − 15)`, exact
    /// for normal and subnormal values; ∞ and NaN patterns are moved under f64's all-ones
    /// exponent instead.
    fn widen_f16(&mut self, h: Value) -> Value {
        let f = float16::F16;
        let x = self.b.ins().uextend(I64, h);
        let a = self.b.ins().band_imm_s(x, 0x7fff);
        let sign = self.b.ins().band_imm_s(x, 0x8000);
        let sign = self.b.ins().ishl_imm_u(sign, 48);
        let moved = self.b.ins().ishl_imm_u(a, i64::from(f.shift()));
        let fin = self.b.ins().bitcast(F64, MemFlagsData::new(), moved);
        let scale = self.b.ins().f64const(2f64.powi((1023 - f.bias) as i32));
        let fin = self.b.ins().fmul(fin, scale);
        let fin = self.b.ins().bitcast(I64, MemFlagsData::new(), fin);
        let special = self.b.ins().bor_imm_s(moved, 0x7ff << 52);
        let is_special = self.b.ins().icmp_imm_s(
            IntCC::UnsignedGreaterThanOrEqual,
            a,
            i64::from(f.inf_bits()),
        );
        let bits = self.b.ins().select(is_special, special, fin);
        let bits = self.b.ins().bor(bits, sign);
        self.b.ins().bitcast(F64, MemFlagsData::new(), bits)
    }

    /// An f64 rounded to nearest even in the 16-bit format `f`, as i16 bits (see
    /// [`Format::round`], which this follows step by step).
    fn round_half(&mut self, f: Format, v: Value) -> Value {
        let flags = MemFlagsData::new();
        let b = self.b.ins().bitcast(I64, flags, v);
        let sign = self.b.ins().ushr_imm_u(b, 48);
        let sign = self.b.ins().band_imm_s(sign, 0x8000);
        let a = self.b.ins().band_imm_s(b, i64::MAX);
        // Normal range: rebias, round to nearest even, clamp to ∞.
        let lsb = self.b.ins().ushr_imm_u(a, i64::from(f.shift()));
        let lsb = self.b.ins().band_imm_s(lsb, 1);
        let r = self.b.ins().iadd_imm_s(a, f.normal_add() as i64);
        let r = self.b.ins().iadd(r, lsb);
        let r = self.b.ins().ushr_imm_u(r, i64::from(f.shift()));
        let inf = self.b.ins().iconst(I64, i64::from(f.inf_bits()));
        let r = self.b.ins().umin(r, inf);
        // Subnormal range: one f64 addition rounds at the format's subnormal unit.
        let c = f.subnormal_magic();
        let af = self.b.ins().bitcast(F64, flags, a);
        let cv = self.b.ins().f64const(c);
        let sum = self.b.ins().fadd(af, cv);
        let sum = self.b.ins().bitcast(I64, flags, sum);
        let sub = self
            .b
            .ins()
            .iadd_imm_s(sum, (c.to_bits() as i64).wrapping_neg());
        let normal = self.b.ins().icmp_imm_s(
            IntCC::UnsignedGreaterThanOrEqual,
            a,
            f.min_normal_bits() as i64,
        );
        let h = self.b.ins().select(normal, r, sub);
        let nan = self.b.ins().iconst(I64, i64::from(f.nan_bits()));
        let is_nan = self.b.ins().fcmp(FloatCC::Unordered, v, v);
        let h = self.b.ins().select(is_nan, nan, h);
        let h = self.b.ins().bor(h, sign);
        self.b.ins().ireduce(I16, h)
    }

    /// Two 16-bit elements (an i32 as loaded) to an f64x2, exactly.
    fn widen_half_pair(&mut self, raw: Value) -> Value {
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let v = self.b.ins().scalar_to_vector(I32X4, raw);
        let v = self.b.ins().bitcast(I16X8, little, v);
        let w = self.b.ins().uwiden_low(v);
        if self.key.dtype == DType::BF16 {
            let w = self.b.ins().ishl_imm_u(w, 16);
            let w = self.b.ins().bitcast(F32X4, little, w);
            return self.b.ins().fvpromote_low(w);
        }
        let f = float16::F16;
        let x = self.b.ins().uwiden_low(w);
        let a = self.splat_i64(0x7fff);
        let a = self.b.ins().band(x, a);
        let sign = self.splat_i64(0x8000);
        let sign = self.b.ins().band(x, sign);
        let sign = self.b.ins().ishl_imm_u(sign, 48);
        let moved = self.b.ins().ishl_imm_u(a, i64::from(f.shift()));
        let fin = self.b.ins().bitcast(F64X2, little, moved);
        let scale = self.splat(2f64.powi((1023 - f.bias) as i32));
        let fin = self.b.ins().fmul(fin, scale);
        // ∞ and NaN patterns scale to at least 2^16, above every finite f16 (max 65504).
        let big = self.splat(65536.0);
        let is_special = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, fin, big);
        let fin = self.b.ins().bitcast(I64X2, little, fin);
        let ones = self.splat_i64(0x7ff << 52);
        let special = self.b.ins().bor(moved, ones);
        let bits = self.b.ins().bitselect(is_special, special, fin);
        let bits = self.b.ins().bor(bits, sign);
        self.b.ins().bitcast(F64X2, little, bits)
    }

    /// An f64x2 rounded to the 16-bit format, the two results packed in an i32 (lane 0 low).
    fn round_half_pair(&mut self, v: Value) -> Value {
        let f = Format::of(self.key.dtype).expect("a 16-bit format");
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let b = self.b.ins().bitcast(I64X2, little, v);
        let sign = self.b.ins().ushr_imm_u(b, 48);
        let m = self.splat_i64(0x8000);
        let sign = self.b.ins().band(sign, m);
        let m = self.splat_i64(i64::MAX);
        let a = self.b.ins().band(b, m);
        let af = self.b.ins().bitcast(F64X2, little, a);
        // Normal range, as in `round_half`; the clamp to ∞ compares magnitudes as floats
        // (2^(bias+1) is where the integer result passes ∞'s pattern).
        let lsb = self.b.ins().ushr_imm_u(a, i64::from(f.shift()));
        let one = self.splat_i64(1);
        let lsb = self.b.ins().band(lsb, one);
        let add = self.splat_i64(f.normal_add() as i64);
        let r = self.b.ins().iadd(a, add);
        let r = self.b.ins().iadd(r, lsb);
        let r = self.b.ins().ushr_imm_u(r, i64::from(f.shift()));
        let limit = self.splat(2f64.powi(f.bias as i32 + 1));
        let over = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, af, limit);
        let inf = self.splat_i64(i64::from(f.inf_bits()));
        let r = self.b.ins().bitselect(over, inf, r);
        // Subnormal range.
        let c = f.subnormal_magic();
        let cv = self.splat(c);
        let sum = self.b.ins().fadd(af, cv);
        let sum = self.b.ins().bitcast(I64X2, little, sum);
        let cb = self.splat_i64(c.to_bits() as i64);
        let sub = self.b.ins().isub(sum, cb);
        let min_normal = self.splat(f64::from_bits(f.min_normal_bits()));
        let normal = self
            .b
            .ins()
            .fcmp(FloatCC::GreaterThanOrEqual, af, min_normal);
        let h = self.b.ins().bitselect(normal, r, sub);
        let is_nan = self.b.ins().fcmp(FloatCC::Unordered, v, v);
        let nan = self.splat_i64(i64::from(f.nan_bits()));
        let h = self.b.ins().bitselect(is_nan, nan, h);
        let h = self.b.ins().bor(h, sign);
        let lo = self.b.ins().extractlane(h, 0);
        let hi = self.b.ins().extractlane(h, 1);
        let hi = self.b.ins().ishl_imm_u(hi, 16);
        let both = self.b.ins().bor(lo, hi);
        self.b.ins().ireduce(I32, both)
    }

    fn splat_i64(&mut self, x: i64) -> Value {
        let s = self.b.ins().iconst(I64, x);
        self.b.ins().splat(I64X2, s)
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
        self.widen_one(x)
    }

    /// Stores an f64 as the element at `at`, rounding once to the element type.
    pub(super) fn store_at(&mut self, v: Value, at: Value) {
        let v = self.narrow_one(v);
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
            DType::F16 | DType::BF16 => {
                let two = self.b.ins().load(I32, self.data, at, off);
                self.widen_half_pair(two)
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
            DType::F16 | DType::BF16 => {
                let two = self.round_half_pair(v);
                self.b.ins().store(self.data, two, at, off);
            }
        }
    }

    /// Stores lane `lane` of an f64x2 as the element `off + lane` after `at`.
    pub(super) fn store_lane_at(&mut self, v: Value, lane: u8, at: Value, off: i64) {
        let x = self.b.ins().extractlane(v, lane);
        let x = self.narrow_one(x);
        let off = ((off + i64::from(lane)) * self.esize) as i32;
        self.b.ins().store(self.data, x, at, off);
    }

    /// The element `i` of a run, as f64.
    pub(super) fn load_one(&mut self, base: Value, i: Value, stride: Stride) -> Value {
        let at = self.elem_addr(base, i, stride);
        let ty = self.elem_type();
        let x = self.b.ins().load(ty, self.data, at, 0);
        self.widen_one(x)
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
