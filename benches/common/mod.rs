//! What the benchmarks share: deterministic random tensors whose groups have spread scales
//! (so that a radius zeroes some groups and clips others, as on real weights), and the backend
//! chosen by the environment.
#![allow(dead_code)]

use multiproj::runtime::rng::SplitMix64;
use multiproj::{Backend, Element, Plan};
use ndarray::{ArrayD, Dimension, IxDyn};

/// The backend named by `MULTIPROJ_BACKEND` (`jit` or `interp`), or the default backend.
pub fn backend() -> Backend {
    match std::env::var("MULTIPROJ_BACKEND") {
        Ok(name) if !name.is_empty() => name
            .parse()
            .unwrap_or_else(|e| panic!("MULTIPROJ_BACKEND={name}: {e}")),
        _ => Backend::default(),
    }
}

/// Uniform in [0, 1): the `i`-th output of the SplitMix64 stream seeded with `key`.
fn unit(key: u64, i: u64) -> f64 {
    SplitMix64::unit_f64(SplitMix64::nth(key, i))
}

/// `n` values uniform in [-1, 1).
pub fn uniform_vec(n: usize, seed: u64) -> Vec<f64> {
    (0..n as u64).map(|i| 2.0 * unit(seed, i) - 1.0).collect()
}

/// A C-order tensor of the plan's shape: uniform(-1, 1) times a scale uniform in (0, 1] drawn
/// per innermost group.
pub fn grouped_tensor<T: Element>(plan: &Plan, seed: u64) -> ArrayD<T> {
    let scales: Vec<f64> = (0..plan.groups() as u64)
        .map(|g| 1.0 - unit(seed ^ 0xABCD, g))
        .collect();
    let shape = plan.tensor().shape.clone();
    let mut x = ArrayD::from_elem(IxDyn(&shape), T::zero());
    for (counter, (idx, v)) in x.indexed_iter_mut().enumerate() {
        let g: usize = idx
            .slice()
            .iter()
            .zip(plan.group_strides())
            .map(|(i, s)| i * s)
            .sum();
        *v = T::from_f64((2.0 * unit(seed, counter as u64) - 1.0) * scales[g]);
    }
    x
}
