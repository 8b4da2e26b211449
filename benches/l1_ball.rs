//! Criterion benchmarks of the aggregate solve's workhorse: the l1-ball threshold, by Condat's
//! algorithm (`l1_threshold`, expected linear time, what the runtime uses) and by sorting
//! (`l1_threshold_sorted`, O(n log n), the textbook method), on 10⁵, 10⁶ and 10⁷ entries
//! uniform in [-1, 1) with a radius of a tenth of their l1 norm. Throughput is in elements, so
//! a flat `thrpt` across sizes means linear time.
//!
//! `cargo bench --bench l1_ball`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use multiproj::runtime::balls::{l1_threshold, l1_threshold_sorted, norm_l1};

fn thresholds(c: &mut Criterion) {
    let mut group = c.benchmark_group("l1_threshold");
    for n in [100_000usize, 1_000_000, 10_000_000] {
        let v = common::uniform_vec(n, 7);
        let radius = 0.1 * norm_l1(&v);
        // The two methods agree (up to rounding) before either is timed.
        let (a, b) = (l1_threshold(&v, radius), l1_threshold_sorted(&v, radius));
        assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {b}");

        group.throughput(Throughput::Elements(n as u64));
        if n >= 10_000_000 {
            // Hundreds of ms per call: one call per sample keeps the run to seconds.
            group.sampling_mode(SamplingMode::Flat);
            group.measurement_time(Duration::from_secs(6));
        } else {
            group.sampling_mode(SamplingMode::Auto);
            group.measurement_time(Duration::from_secs(3));
        }
        group.bench_with_input(BenchmarkId::new("condat", n), &v, |bch, v| {
            bch.iter(|| l1_threshold(black_box(v), radius))
        });
        group.bench_with_input(BenchmarkId::new("sorted", n), &v, |bch, v| {
            bch.iter(|| l1_threshold_sorted(black_box(v), radius))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    targets = thresholds
}
criterion_main!(benches);
