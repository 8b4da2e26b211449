//! SplitMix64, the small deterministic pseudo-random generator behind `multiproj bench`'s data,
//! the benchmarks' tensors and the tests' reproducible cases: one definition, so that they all
//! draw the same sequence from the same seed.

/// SplitMix64 (G. Steele, D. Lea and C. Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014; the generator of `java.util.SplittableRandom`): a Weyl sequence
/// `seed + k·γ` passed through a bijective mixing function.
///
/// Fast, with good statistical quality for test data and benchmarks, and counter-based: the
/// `k`-th output depends only on the seed and `k` ([`nth`](Self::nth)), so any chunk of a long
/// stream can be generated on its own. Not for anything that must be unpredictable.
///
/// ```
/// use multiproj_runtime::rng::SplitMix64;
///
/// let mut rng = SplitMix64::new(0);
/// assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
/// assert_eq!(rng.next_u64(), SplitMix64::nth(0, 1));
/// let u = rng.next_f64();
/// assert!((0.0..1.0).contains(&u));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The increment of the state: the golden ratio in 64 bits (odd, so the state visits every
    /// `u64` before repeating).
    pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// The generator whose state starts at `seed`; its first output is
    /// `mix(seed + GAMMA)`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        Self::mix(self.state)
    }

    /// The next number uniform in `[0, 1)`: [`unit_f64`](Self::unit_f64) of
    /// [`next_u64`](Self::next_u64).
    pub fn next_f64(&mut self) -> f64 {
        Self::unit_f64(self.next_u64())
    }

    /// The `i`-th output (counting from 0) of the generator seeded with `seed`, without
    /// generating the ones before it: what the `(i + 1)`-th call of
    /// [`next_u64`](Self::next_u64) on `SplitMix64::new(seed)` returns.
    pub const fn nth(seed: u64, i: u64) -> u64 {
        Self::mix(seed.wrapping_add(i.wrapping_add(1).wrapping_mul(Self::GAMMA)))
    }

    /// The output function: a bijection of `u64` that spreads every input bit over the whole
    /// word (two xor-shift-multiply rounds, the finalizer of MurmurHash3 with better constants).
    /// Also a good way to turn a structured seed into an unstructured one.
    pub const fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The top 53 bits of `bits` as a number uniform in `[0, 1)`: a multiple of `2^-53`,
    /// computed exactly.
    pub fn unit_f64(bits: u64) -> f64 {
        (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    /// The reference outputs for seed 0 (Vigna's `splitmix64.c`, state starting at 0), and the
    /// stream, counter and float forms agreeing with each other.
    #[test]
    fn reference_values_and_forms_agree() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(
            [rng.next_u64(), rng.next_u64(), rng.next_u64()],
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F
            ]
        );
        for seed in [0, 1, 7, u64::MAX, SplitMix64::GAMMA] {
            let mut a = SplitMix64::new(seed);
            let mut b = a.clone();
            for i in 0..100 {
                let bits = a.next_u64();
                assert_eq!(bits, SplitMix64::nth(seed, i));
                let u = b.next_f64();
                assert_eq!(u, (bits >> 11) as f64 / (1u64 << 53) as f64);
                assert!((0.0..1.0).contains(&u));
            }
        }
        assert_eq!(SplitMix64::unit_f64(u64::MAX), 1.0 - f64::EPSILON / 2.0);
        assert_eq!(SplitMix64::unit_f64(0x7FF), 0.0);
    }
}
