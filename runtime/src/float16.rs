//! The 16-bit formats, f16 (IEEE 754 binary16) and bf16 (bfloat16): exact widening to f64 and
//! rounding from f64 to nearest, ties to even, **once**.
//!
//! The `half` crate supplies the types, but its `from_f64` is not correctly rounded: with F16C
//! it rounds to f32 first (so a value just above a tie between two f16 numbers can land on the
//! tie and then go to even, the wrong way), and its portable path drops the low 32 bits of the
//! f64 significand before rounding. multiproj's contract is "computed in f64, rounded once to
//! the element type", and the JIT must give the same bits as the interpreter, so both use the
//! method here; the JIT emits it as Cranelift instructions (`jit::translate::memory`). (The one
//! result computed otherwise is the l2 scaling, defined in f32 for these formats —
//! `solve::apply_one_as` — and then rounded once from that f32 by the same method.)
//!
//! **Rounding** `v` (|v| with bits `a`):
//! - `|v|` at least the format's smallest normal: the f64's exponent is rebiased and its
//!   significand cut to the format's `m` bits, rounding to nearest even with the usual integer
//!   trick: `(a + rebias + 2^(s−1) − 1 + lsb) >> s`, where `s = 52 − m` and `lsb` is the lowest
//!   kept bit. A carry out of the significand moves to the next binade, out of the largest one
//!   to infinity's bit pattern, which is right: a value at least the largest finite plus half
//!   an ulp rounds to ∞. Larger values are clamped to ∞.
//! - Below it (the format's subnormals, and 0): `|v| + c − c` in f64 with `c = 2^(52 + e_min −
//!   m)`, whose ulp is the format's subnormal unit, so the f64 addition itself rounds to nearest
//!   even at that unit; the difference of the bit patterns is the format's bit pattern (a carry
//!   to the smallest normal gives exactly its pattern).
//! - NaN gives the format's quiet NaN; the sign is copied in every case.
//!
//! **Widening** is exact: bf16 is the upper half of an f32; an f16's exponent and significand
//! are moved into an f64 as if its exponent bias were f64's and the value multiplied by
//! `2^(1023 − 15)` (exact, subnormals included), with ∞ and NaN patterns mapped directly.

use multiproj_compiler::DType;

/// The constants of one 16-bit format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Stored significand bits (10 for f16, 7 for bf16).
    pub mant: u32,
    /// Exponent bias (15 for f16, 127 for bf16).
    pub bias: i64,
}

/// IEEE 754 binary16.
pub const F16: Format = Format { mant: 10, bias: 15 };
/// bfloat16.
pub const BF16: Format = Format { mant: 7, bias: 127 };

impl Format {
    /// The 16-bit format of `dtype`, `None` for f32 and f64.
    pub fn of(dtype: DType) -> Option<Format> {
        match dtype {
            DType::F16 => Some(F16),
            DType::BF16 => Some(BF16),
            DType::F32 | DType::F64 => None,
        }
    }

    /// How many low f64 significand bits are cut off.
    pub const fn shift(self) -> u32 {
        52 - self.mant
    }

    /// The bits of ∞ (sign clear).
    pub const fn inf_bits(self) -> u16 {
        (0x7fff >> self.mant << self.mant) as u16
    }

    /// The bits of the quiet NaN produced (sign clear).
    pub const fn nan_bits(self) -> u16 {
        self.inf_bits() | (1 << (self.mant - 1))
    }

    /// The f64 bits of the smallest positive normal number of the format.
    pub const fn min_normal_bits(self) -> u64 {
        ((1024 - self.bias) as u64) << 52
    }

    /// What is added to the bits of an f64 in the normal range to rebias its exponent, plus
    /// half an ulp of the format minus one (the rounding constant without the tie bit).
    pub const fn normal_add(self) -> u64 {
        (((self.bias - 1023) << 52) as u64).wrapping_add((1u64 << (self.shift() - 1)) - 1)
    }

    /// `c` of the subnormal rounding: an f64 whose ulp is the format's subnormal unit.
    pub fn subnormal_magic(self) -> f64 {
        2f64.powi((52 + 1 - self.bias - i64::from(self.mant)) as i32)
    }

    /// The largest finite value.
    pub fn max(self) -> f64 {
        self.widen(self.inf_bits() - 1)
    }

    /// `v` rounded to nearest, ties to even, as the format's bits.
    pub fn round(self, v: f64) -> u16 {
        let b = v.to_bits();
        let sign = ((b >> 48) & 0x8000) as u16;
        let a = b & !(1u64 << 63);
        let h = if v.is_nan() {
            self.nan_bits()
        } else if a >= self.min_normal_bits() {
            let lsb = (a >> self.shift()) & 1;
            let r = a.wrapping_add(self.normal_add()).wrapping_add(lsb) >> self.shift();
            r.min(u64::from(self.inf_bits())) as u16
        } else {
            let c = self.subnormal_magic();
            ((f64::from_bits(a) + c).to_bits() - c.to_bits()) as u16
        };
        sign | h
    }

    /// The value of the bits `h`, exactly.
    pub fn widen(self, h: u16) -> f64 {
        if self == BF16 {
            return f64::from(f32::from_bits(u32::from(h) << 16));
        }
        let sign = u64::from(h & 0x8000) << 48;
        let a = u64::from(h & 0x7fff);
        let moved = a << self.shift();
        let v = if h & 0x7fff >= self.inf_bits() {
            f64::from_bits(moved | (0x7ffu64 << 52))
        } else {
            f64::from_bits(moved) * 2f64.powi((1023 - self.bias) as i32)
        };
        f64::from_bits(v.to_bits() | sign)
    }

    /// `v` as stored in this format: rounded to nearest, as a value — `widen(round(v))`,
    /// computed without the bit pattern (the l1 thresholds check it for every element, many
    /// times), by `stored_at`.
    #[inline]
    pub fn stored(self, v: f64) -> f64 {
        stored_at(v, self.mant, self.bias as i32)
    }

    /// `v` rounded toward zero: the format's value of largest magnitude at most `|v|` (finite
    /// `v`; beyond the largest finite value, ± that value).
    pub fn toward_zero(self, v: f64) -> f64 {
        let h = self.round(v);
        if self.widen(h).abs() > v.abs() {
            // `h ≠ ±0` here; one less in magnitude is the next value toward zero.
            self.widen(h - 1)
        } else {
            self.widen(h)
        }
    }
}

/// `v` rounded to nearest, ties to even, in a binary format with `mant` stored significand
/// bits and exponent bias `bias` (and f64's range or less), as a value: `(|v| + c) − c` in
/// f64, with `c` the power of two whose ulp is the format's spacing at `|v|` (`2^(e + 52 −
/// m)` for `|v|` in `[2^e, 2^(e+1))`, at least the subnormal rounding's constant), rounds
/// `|v|` to nearest even at that spacing: the addition itself does. Past the largest finite
/// value (half its spacing beyond), ±∞; NaN stays itself.
///
/// Branch-free (the special cases are selected, not branched to), so that loops over many
/// values — the l1 thresholds' checks — vectorize.
#[inline(always)]
fn stored_at(v: f64, mant: u32, bias: i32) -> f64 {
    let a = v.abs();
    let m = mant as i32;
    // The largest finite value, `2^(bias+1) − 2^(bias−m)`, plus half its spacing.
    let limit = 2f64.powi(bias + 1) - 2f64.powi(bias - m - 1);
    let subnormal_magic = 2f64.powi(52 + 1 - bias - m);
    // (For ∞ and NaN, `c` is meaningless, and the result is selected below.)
    let binade = a.to_bits() & (0x7ffu64 << 52);
    let c = f64::from_bits(binade + (u64::from(52 - mant) << 52)).max(subnormal_magic);
    let r = ((a + c) - c).copysign(v);
    // ∞, or a value that rounds to ∞ (the tie at max + half a spacing included): ±∞.
    let r = if a >= limit {
        f64::INFINITY.copysign(v)
    } else {
        r
    };
    if v.is_nan() { v } else { r }
}

/// `v` as stored in f32, as a value: `f64::from(v as f32)` for every `v` but NaN (which stays
/// itself here), computed as [`Format::stored`] does — branch-free, so that the l1 thresholds'
/// checks of f32 results vectorize (the two conversions do not, and cost two instructions a
/// value).
#[inline]
pub fn stored_f32(v: f64) -> f64 {
    stored_at(v, 23, 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stored_f32` is `f64::from(v as f32)`: on random bit patterns, every f32 value's ties
    /// and neighbours (normal, subnormal, around the largest finite), and the special values.
    #[test]
    fn stored_f32_is_the_conversion() {
        let check = |v: f64| {
            let want = f64::from(v as f32);
            assert_eq!(stored_f32(v).to_bits(), want.to_bits(), "{v:e}");
        };
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_nan() {
                check(v);
            }
            // Near f32's range: exponents from 2^-160 to 2^130.
            let e = (x >> 52) % 290;
            let v = f64::from_bits((x & ((1 << 52) - 1)) | ((e + 1023 - 160) << 52));
            check(v);
            check(-v);
        }
        for bits in (0u32..0x7f80_0000)
            .step_by(0x1_0001)
            .chain([1, 2, 3, 0x7f7f_ffff])
        {
            let f = f64::from(f32::from_bits(bits));
            let next = f64::from(f32::from_bits(bits + 1));
            let tie = (f + next) / 2.0;
            for v in [
                f,
                next,
                tie,
                tie.next_up(),
                tie.next_down(),
                f.next_up(),
                next.next_down(),
            ] {
                check(v);
                check(-v);
            }
        }
        let max = f64::from(f32::MAX);
        let beyond = max + 2f64.powi(103);
        for v in [
            0.0,
            -0.0,
            max,
            beyond,
            beyond.next_down(),
            f64::MAX,
            f64::INFINITY,
        ] {
            check(v);
            check(-v);
        }
        assert!(stored_f32(f64::NAN).is_nan());
    }

    /// The format's values in increasing order of magnitude, with their bits (finite, ≥ 0).
    fn finite(f: Format) -> impl Iterator<Item = (u16, f64)> {
        (0..f.inf_bits()).map(move |h| (h, f.widen(h)))
    }

    #[test]
    fn widening_agrees_with_the_half_crate() {
        for h in 0..=u16::MAX {
            let a = F16.widen(h);
            let b = half::f16::from_bits(h).to_f64();
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "f16 {h:#x}"
            );
            let a = BF16.widen(h);
            let b = half::bf16::from_bits(h).to_f64();
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "bf16 {h:#x}"
            );
        }
    }

    #[test]
    fn constants() {
        assert_eq!(F16.inf_bits(), 0x7c00);
        assert_eq!(F16.nan_bits(), 0x7e00);
        assert_eq!(BF16.inf_bits(), 0x7f80);
        assert_eq!(BF16.nan_bits(), 0x7fc0);
        assert_eq!(F16.max(), 65504.0);
        assert_eq!(f64::from_bits(F16.min_normal_bits()), 2f64.powi(-14));
        assert_eq!(f64::from_bits(BF16.min_normal_bits()), 2f64.powi(-126));
        assert_eq!(BF16.max(), f64::from(f32::from_bits(0x7f7f_0000)));
    }

    /// Every value, every midpoint between neighbours and the f64 numbers on either side of
    /// it: rounding to nearest even, checked against the definition (the nearer neighbour;
    /// on a tie, the one whose bits are even).
    #[test]
    fn rounding_is_to_nearest_even_at_every_midpoint() {
        for f in [F16, BF16] {
            let values: Vec<(u16, f64)> = finite(f).collect();
            for w in values.windows(2) {
                let ((hl, lo), (hh, hi)) = (w[0], w[1]);
                assert_eq!(f.round(lo), hl);
                assert_eq!(f.round(-lo), hl | 0x8000);
                let mid = lo + (hi - lo) / 2.0; // exact: both have few significant bits
                let even = if hl % 2 == 0 { hl } else { hh };
                assert_eq!(f.round(mid), even, "{f:?} tie {mid:e}");
                for v in [lo, mid, mid.next_down(), mid.next_up(), -mid] {
                    let want = f.widen(f.round(v));
                    assert_eq!(f.stored(v).to_bits(), want.to_bits(), "{f:?} stored {v:e}");
                }
                assert_eq!(f.round(-mid), even | 0x8000);
                assert_eq!(f.round(mid.next_down()), hl, "{f:?} below {mid:e}");
                assert_eq!(f.round(mid.next_up()), hh, "{f:?} above {mid:e}");
            }
            // Past the largest finite value: half an ulp more goes to ∞ (a tie, and the
            // largest value's significand is odd), anything less stays.
            let (hmax, max) = values[values.len() - 1];
            let ulp = max - values[values.len() - 2].1;
            assert_eq!(f.round(max + ulp / 2.0), f.inf_bits());
            assert_eq!(f.round((max + ulp / 2.0).next_down()), hmax);
            assert_eq!(f.round(1e300), f.inf_bits());
            assert_eq!(f.round(f64::INFINITY), f.inf_bits());
            assert_eq!(f.round(f64::NEG_INFINITY), f.inf_bits() | 0x8000);
            assert_eq!(f.round(f64::NAN), f.nan_bits());
            for v in [
                max + ulp / 2.0,
                (max + ulp / 2.0).next_down(),
                1e300,
                -1e300,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
                -0.0,
                f64::MIN_POSITIVE,
            ] {
                let want = f.widen(f.round(v));
                assert_eq!(f.stored(v).to_bits(), want.to_bits(), "{f:?} stored {v:e}");
            }
            assert!(f.stored(f64::NAN).is_nan());
            // Below half the smallest subnormal: zero, with its sign.
            let tiny = f.widen(1);
            assert_eq!(f.round(tiny / 2.0), 0);
            assert_eq!(f.round((tiny / 2.0).next_up()), 1);
            assert_eq!(f.round(-f64::MIN_POSITIVE), 0x8000);
            assert_eq!(f.round(-0.0), 0x8000);
        }
    }

    /// Random f64 values against a reference that brackets the value between its neighbours
    /// in the sorted list of the format's values (past the largest, ∞ stands at `2^(bias+1)`).
    #[test]
    fn rounding_matches_the_nearest_neighbour_on_random_values() {
        let mut rng = crate::rng::SplitMix64::new(7);
        for f in [F16, BF16] {
            let values: Vec<(u16, f64)> = finite(f).collect();
            let span = (f.bias + i64::from(f.mant) + 4) as u64;
            for _ in 0..200_000 {
                let bits = rng.next_u64();
                // Exponents from below the subnormals to the largest binade.
                let e = (rng.next_u64() % (span + f.bias as u64 + 1)) as i64 - span as i64;
                let v = f64::from_bits((bits & ((1 << 52) - 1)) | (((e + 1023) as u64) << 52));
                let i = values.partition_point(|&(_, x)| x <= v) - 1;
                let (hl, lo) = values[i];
                let (hh, hi) = match values.get(i + 1) {
                    Some(&next) => next,
                    None => (f.inf_bits(), 2f64.powi(f.bias as i32 + 1)),
                };
                let want = if v - lo < hi - v || (v - lo == hi - v && hl % 2 == 0) {
                    hl
                } else {
                    hh
                };
                assert_eq!(f.round(v), want, "{f:?} {v:e}");
                assert_eq!(f.round(-v), want | 0x8000, "{f:?} {v:e}");
                assert_eq!(
                    f.stored(v).to_bits(),
                    f.widen(want).to_bits(),
                    "{f:?} {v:e}"
                );
                assert_eq!(f.stored(-v).to_bits(), f.widen(want | 0x8000).to_bits());
            }
        }
    }

    #[test]
    fn toward_zero_never_rounds_up() {
        for f in [F16, BF16] {
            for (h, x) in finite(f).step_by(7) {
                assert_eq!(f.toward_zero(x), x);
                if h + 1 < f.inf_bits() {
                    let next = f.widen(h + 1);
                    let inside = x + (next - x) * 0.75;
                    assert_eq!(f.toward_zero(inside), x);
                    assert_eq!(f.toward_zero(-inside), -x);
                }
            }
            assert_eq!(f.toward_zero(1e300), f.max());
        }
    }
}
