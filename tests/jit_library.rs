//! The JIT backend as a library user meets it: one compiled `Projection` shared by many threads
//! at once, results that do not depend on the number of threads, and agreement with the
//! interpreter on tensors big enough to take the parallel paths.

mod common;

use std::sync::Arc;

use multiproj::runtime::rng::SplitMix64;
use multiproj::{Backend, Projection};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use common::{compare_bits, compare_close};

/// Deterministic data with varied group scales (splitmix64 → uniform(-1, 1) × a row scale).
fn data(shape: &[usize], fortran: bool, seed: u64) -> ArrayD<f64> {
    let mut rng = SplitMix64::new(seed);
    let mut next = move || rng.next_f64() * 2.0 - 1.0;
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|i| next() * (1.0 + (i / shape[shape.len() - 1] % 7) as f64))
        .collect();
    let shape = IxDyn(shape);
    if fortran {
        ArrayD::from_shape_vec(shape.f(), values).expect("shape matches")
    } else {
        ArrayD::from_shape_vec(shape, values).expect("shape matches")
    }
}

/// Specs covering every innermost norm, row- and column-wise groups and three levels.
const SPECS: &[&str] = &[
    "l1 over dim0 of linf over dim1",
    "l1 over dim1 of linf over dim0",
    "l1 over dim0 of l2 over dim1",
    "linf over dim1 of l2 over dim0",
    "l1 over dim0 of l1 over dim1",
    "l1 over dim1 of l1 over dim0",
];

fn radius_for(proj: &Projection, x: &ArrayD<f64>) -> f64 {
    proj.norm(x).expect("finite data") * 0.3
}

/// Max-based innermost levels must agree bit for bit; sums within rounding.
fn assert_agree(spec: &str, got: &ArrayD<f64>, want: &ArrayD<f64>) {
    let result = if spec.ends_with("linf over dim1") || spec.ends_with("linf over dim0") {
        compare_bits(&got.view(), &want.view())
    } else {
        let scale = common::max_abs(&want.view()).max(1.0);
        compare_close(&got.view(), &want.view(), 0.0, 1e-12 * scale)
    };
    if let Err(e) = result {
        panic!("{spec}: jit and interpreter disagree: {e}");
    }
}

#[test]
fn big_tensors_agree_with_the_interpreter() {
    // 300×700 = 210 000 elements: above the parallel threshold, with vector tails.
    for (i, spec) in SPECS.iter().enumerate() {
        for fortran in [false, true] {
            let x = data(&[300, 700], fortran, 7 + i as u64);
            let jit = Projection::compile(spec)
                .unwrap()
                .with_backend(Backend::Jit);
            let r = radius_for(&jit, &x);
            let jit = jit.with_radius(r).unwrap();
            let interp = Projection::compile(spec)
                .unwrap()
                .with_radius(r)
                .unwrap()
                .with_backend(Backend::Interp);
            let a = jit.project(&x).unwrap();
            let b = interp.project(&x).unwrap();
            assert_agree(spec, &a, &b);
            assert_eq!(a.is_standard_layout(), !fortran, "{spec}: layout kept");
        }
    }
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    for spec in SPECS {
        let x = data(&[512, 640], false, 11);
        let proj = Projection::compile(spec).unwrap();
        let r = radius_for(&proj, &x);
        let proj = proj.with_radius(r).unwrap();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(|| proj.project(&x).unwrap())
        };
        let one = run(1);
        let two = run(2);
        if let Err(e) = compare_bits(&one.view(), &two.view()) {
            panic!("{spec}: 1 and 2 threads disagree: {e}");
        }
    }
}

#[test]
fn one_projection_serves_many_threads_at_once() {
    let proj = Arc::new(
        Projection::compile("l1 over dim0 of linf over dims1..")
            .unwrap()
            .with_radius(5.0)
            .unwrap(),
    );
    let oracle = Projection::compile("l1 over dim0 of linf over dims1..")
        .unwrap()
        .with_radius(5.0)
        .unwrap()
        .with_backend(Backend::Interp);
    let shapes: [&[usize]; 4] = [&[40, 30], &[64, 8, 9], &[300, 257], &[7, 3, 5, 2]];
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            let proj = Arc::clone(&proj);
            std::thread::spawn(move || {
                (0..12u64)
                    .map(|k| {
                        let shape = shapes[((t + k) % 4) as usize];
                        let x = data(shape, (t + k) % 2 == 1, t * 100 + k);
                        let y = proj.project(&x).expect("projects");
                        (x, y)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for (x, y) in h.join().expect("no thread panicked") {
            let want = oracle.project(&x).unwrap();
            if let Err(e) = compare_bits(&y.view(), &want.view()) {
                panic!(
                    "shape {:?}: a concurrent projection differs: {e}",
                    x.shape()
                );
            }
        }
    }
    // Four shapes in two orders: at most eight layouts were planned, each once.
    assert!(proj.cached_plans() <= 8, "{} plans", proj.cached_plans());
}
