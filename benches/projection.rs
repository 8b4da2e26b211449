//! Criterion benchmarks of whole projections through the library: the plan of a
//! `multiproj::Projection`, run by the backend named in `MULTIPROJ_BACKEND` (`jit` or
//! `interp`; the default backend otherwise) into a preallocated output, so that only the
//! projection is timed. The radius is a quarter of the data's norm, which zeroes about half of
//! the groups of the bi-level specs. Throughput is in elements: criterion's `thrpt` is the
//! inverse of the cost per element.
//!
//! `cargo bench --bench projection`; `MULTIPROJ_BACKEND=interp cargo bench --bench projection`.

mod common;

use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use multiproj::{Element, Projection, tensor_info};
use ndarray::ArrayD;

/// A spec, a shape, and a name for the report.
struct Case {
    name: &'static str,
    spec: &'static str,
    shape: &'static [usize],
}

const CASES: &[Case] = &[
    Case {
        name: "l1inf-rows",
        spec: "l1 over dim0 of linf over dim1",
        shape: &[1024, 1024],
    },
    Case {
        name: "l1inf-cols",
        spec: "l1 over dim1 of linf over dim0",
        shape: &[1024, 1024],
    },
    Case {
        name: "l1inf-inf-3d",
        spec: "l1 over dim0 of linf over dim1 of linf over dim2",
        shape: &[64, 64, 64],
    },
    Case {
        name: "l1-l1",
        spec: "l1 over dim0 of l1 over dim1",
        shape: &[1024, 1024],
    },
    Case {
        name: "l1-l2",
        spec: "l1 over dim0 of l2 over dim1",
        shape: &[1024, 1024],
    },
];

fn bench_case<T: Element>(c: &mut Criterion, case: &Case) {
    let backend = common::backend();
    let dtype = T::DTYPE;
    let proj = Projection::compile(case.spec)
        .expect("a valid spec")
        .with_backend(backend);
    let probe: ArrayD<T> = ArrayD::from_elem(ndarray::IxDyn(case.shape), T::zero());
    let plan = proj
        .plan_for(&tensor_info(&probe.view()))
        .expect("the spec fits the shape");
    let x: ArrayD<T> = common::grouped_tensor(&plan, 42);
    let norm = proj.norm(&x).expect("finite data");
    let radius = 0.25 * norm;
    let mut out = x.clone();

    let mut group = c.benchmark_group(format!("project/{backend}"));
    // The same number of calls per sample: the interpreter takes tens of ms per call.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function(BenchmarkId::new(case.name, format!("{dtype}")), |b| {
        b.iter(|| {
            multiproj::runtime::project(&plan, &x.view(), &mut out.view_mut(), radius, backend)
                .expect("the projection runs")
        })
    });
    group.finish();
}

/// The owned-result API, which also allocates (and page-faults) the output on every call.
fn bench_owned(c: &mut Criterion) {
    let backend = common::backend();
    let probe: ArrayD<f64> = ArrayD::zeros(&[1024, 1024][..]);
    let proj = Projection::compile("l1 over dim0 of linf over dim1")
        .expect("a valid spec")
        .with_backend(backend);
    let plan = proj.plan_for(&tensor_info(&probe.view())).expect("fits");
    let x: ArrayD<f64> = common::grouped_tensor(&plan, 42);
    let proj = proj
        .with_radius(0.25 * proj_norm(&plan, &x, backend))
        .expect("a valid radius");
    let mut group = c.benchmark_group(format!("project-owned/{backend}"));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("l1inf-rows/f64", |b| {
        b.iter(|| proj.project(&x).expect("the projection runs"))
    });
    group.finish();
}

fn proj_norm(plan: &multiproj::Plan, x: &ArrayD<f64>, backend: multiproj::Backend) -> f64 {
    multiproj::runtime::norm(plan, &x.view(), backend).expect("finite data")
}

fn projections(c: &mut Criterion) {
    for case in CASES {
        bench_case::<f64>(c, case);
        if case.name == "l1inf-rows" {
            bench_case::<f32>(c, case);
        }
    }
    bench_owned(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = projections
}
criterion_main!(benches);
