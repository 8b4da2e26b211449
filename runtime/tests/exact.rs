//! The exact l1,∞ projection (`exact l1 over … of linf over …`): the fast solver (run by the
//! JIT backend) against the plain oracle (run by the interpreter), and every result against
//! the optimality certificate (`balls::check_l1_linf_kkt`), on random signed and non-negative
//! matrices of odd sizes, with ties and zero rows, at radii from 0 to past the norm, in f32 and
//! f64, C and Fortran order, groups as rows and as columns, and 3-D tensors.

use ndarray::{ArrayD, Dimension, IxDyn, ShapeBuilder};
use proptest::prelude::*;

use multiproj_compiler::{DType, Order, Plan, TensorInfo};
use multiproj_runtime::balls::{check_l1_linf_kkt, project_l1_linf_exact};
use multiproj_runtime::rng::SplitMix64;
use multiproj_runtime::{Backend, Executor, RadiusTarget, Report};

fn plan(spec: &str, shape: &[usize], dtype: DType, order: Order) -> Plan {
    let spec = multiproj_grammar::parse(spec).unwrap();
    let info = if order == Order::F {
        TensorInfo::f_order(shape, dtype)
    } else {
        TensorInfo::c_order(shape, dtype)
    };
    multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
}

/// Rows of a 2-D array as a row-major f64 matrix (groups = rows).
fn rows(a: &ArrayD<f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

fn project(p: &Plan, x: &ArrayD<f64>, r: f64, backend: Backend) -> (ArrayD<f64>, Report) {
    let exec = Executor::new(backend);
    let mut out = ArrayD::zeros(x.raw_dim());
    if p.tensor().order() == Order::F {
        out = ArrayD::zeros(IxDyn(x.shape()).f());
    }
    let report = exec
        .project(p, &x.view(), &mut out.view_mut(), r)
        .unwrap_or_else(|e| panic!("{}: {e}", p.source()));
    (out, report)
}

/// A matrix of the given kind: 0 signed Gaussian-like, 1 uniform [0, 1), 2 small integers
/// (ties), 3 signed with some zero rows, 4 periodic (small in the first 8 of every 64
/// entries, large elsewhere), 5 heavy-tailed.
fn matrix(rng: &mut SplitMix64, g: usize, n: usize, kind: u8) -> Vec<f64> {
    let mut v: Vec<f64> = (0..g * n)
        .map(|i| match kind {
            0 => (rng.next_f64() - 0.5) * 4.0 + (rng.next_f64() - 0.5),
            1 => rng.next_f64(),
            2 => (rng.next_f64() * 7.0).floor() - 3.0,
            4 => {
                let j = i % n;
                if j % 64 < 8 {
                    rng.next_f64() * 0.01
                } else {
                    1.0 + rng.next_f64() * (j % 7) as f64
                }
            }
            5 => {
                let u = rng.next_f64().max(1e-12);
                (1.0 / u).powf(0.8) * if rng.next_f64() < 0.5 { -1.0 } else { 1.0 }
            }
            _ => rng.next_f64() * 2.0 - 1.0,
        })
        .collect();
    if kind == 3 {
        for row in v.chunks_mut(n) {
            if rng.next_f64() < 0.3 {
                row.fill(0.0);
            }
        }
    }
    v
}

fn check_case(g: usize, n: usize, kind: u8, frac: f64, seed: u64) -> Report {
    let mut rng = SplitMix64::new(seed);
    let y = matrix(&mut rng, g, n, kind);
    let x = ArrayD::from_shape_vec(IxDyn(&[g, n]), y.clone()).unwrap();
    let p = plan(
        "exact l1 over dim0 of linf over dim1",
        &[g, n],
        DType::F64,
        Order::C,
    );
    let norm: f64 = y
        .chunks(n)
        .map(|r| r.iter().fold(0.0f64, |m, v| m.max(v.abs())))
        .sum();
    let r = frac * norm;
    let (fast, report) = project(&p, &x, r, Backend::Jit);
    let (slow, _) = project(&p, &x, r, Backend::Interp);
    let what = format!("{g}×{n} kind {kind} radius {frac}×{norm} seed {seed}");
    check_l1_linf_kkt(&y, &rows(&fast), g, n, r, 1e-12).unwrap_or_else(|e| panic!("{what}: {e}"));
    check_l1_linf_kkt(&y, &rows(&slow), g, n, r, 1e-12).unwrap_or_else(|e| panic!("{what}: {e}"));
    let oracle = project_l1_linf_exact(&y, g, n, r);
    let scale = y.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    for (i, ((a, b), c)) in fast.iter().zip(slow.iter()).zip(&oracle).enumerate() {
        assert!(
            (a - c).abs() <= 1e-11 * scale && (b - c).abs() <= 1e-11 * scale,
            "{what}: entry {i}: fast {a}, interpreter {b}, oracle {c}"
        );
    }
    assert!(report.norm_after <= r * (1.0 + 1e-15), "{what}: {report:?}");
    // The fast solver ran (a histogram and at least one gather pass) whenever there was
    // something to solve.
    if r > 0.0 && r < norm {
        let e = report
            .exact
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no exact report"));
        assert!(e.passes >= 2, "{what}: {e:?}");
        assert!(e.gathered <= g * n, "{what}: {e:?}");
    }
    report
}

/// Long groups (64 buckets of many entries each), with periodic and heavy-tailed data.
#[test]
fn long_groups_match_the_oracle() {
    let mut seed = 1000;
    for &(g, n) in &[(8, 512), (20, 700), (3, 4096), (40, 1031)] {
        for kind in 0..6u8 {
            for &frac in &[1e-4, 0.01, 0.1, 0.5, 0.9] {
                let _ = check_case(g, n, kind, frac, seed);
                seed += 1;
            }
        }
    }
}

/// Groups as the columns of C-order data, long and many enough that the solver's tiles (runs
/// of adjacent columns, copied along the memory in blocks of 8 rows) split the columns several
/// ways, with a row count that is not a multiple of 8: the fast solver against the oracle.
#[test]
fn column_groups_across_tiles_match_the_oracle() {
    let mut seed = 5000;
    for &(g, n) in &[(100, 3000), (300, 1031), (70, 2053)] {
        for kind in [0u8, 3, 5] {
            for &frac in &[0.003, 0.1, 0.6] {
                let mut rng = SplitMix64::new(seed);
                seed += 1;
                let y = matrix(&mut rng, g, n, kind);
                // Column j of the (n, g) array is group j.
                let x = ArrayD::from_shape_fn(IxDyn(&[n, g]), |i| y[i[1] * n + i[0]]);
                let p = plan(
                    "exact l1 over dim1 of linf over dim0",
                    &[n, g],
                    DType::F64,
                    Order::C,
                );
                let norm: f64 = y
                    .chunks(n)
                    .map(|r| r.iter().fold(0.0f64, |m, v| m.max(v.abs())))
                    .sum();
                let r = frac * norm;
                let (fast, _) = project(&p, &x, r, Backend::Jit);
                let oracle = project_l1_linf_exact(&y, g, n, r);
                let scale = y.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
                for ((i, j), want) in (0..g)
                    .flat_map(|j| (0..n).map(move |i| (i, j)))
                    .zip(&oracle)
                {
                    let got = fast[[i, j]];
                    assert!(
                        (got - want).abs() <= 1e-11 * scale,
                        "{g} columns of {n}, kind {kind}, radius {frac}×norm: ({i}, {j}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn fast_solver_matches_the_oracle_on_many_matrices() {
    let mut seed = 1;
    for &(g, n) in &[
        (1, 1),
        (1, 13),
        (13, 1),
        (7, 13),
        (31, 17),
        (64, 48),
        (5, 300),
        (200, 9),
    ] {
        for kind in 0..4u8 {
            for &frac in &[0.0, 1e-6, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.9, 0.999, 1.0, 1.5] {
                let _ = check_case(g, n, kind, frac, seed);
                seed += 1;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fast_solver_matches_the_oracle(
        g in 1usize..40,
        n in 1usize..70,
        kind in 0u8..6,
        frac in 0.0f64..1.1,
        seed in any::<u64>(),
    ) {
        let _ = check_case(g, n, kind, frac, seed);
    }
}

/// `‖v‖` of a 2-D array with groups as rows: outer norm `p` of the inner norms `q`.
fn mixed_norm(v: &[f64], n: usize, p: char, q: char) -> f64 {
    let norm = |k: char, it: &mut dyn Iterator<Item = f64>| -> f64 {
        match k {
            '1' => it.map(f64::abs).sum(),
            '2' => it.map(|x| x * x).sum::<f64>().sqrt(),
            _ => it.fold(0.0, |m, x| m.max(x.abs())),
        }
    };
    let inner: Vec<f64> = v
        .chunks(n)
        .map(|r| norm(q, &mut r.iter().copied()))
        .collect();
    norm(p, &mut inner.into_iter())
}

fn dual(k: char) -> char {
    match k {
        '1' => 'i',
        '2' => '2',
        _ => '1',
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every exact two-level projection, on both backends, is certified optimal: with `x` the
    /// result and `d = y − x`, `x` is in the ball, on its sphere when `y` is outside, and
    /// `⟨d, x⟩ = R·‖d‖_*` (the dual norm of `p of q` is `p* of q*`) — which says that `d` is in
    /// the normal cone of the ball at `x`, the optimality condition of the projection.
    #[test]
    fn every_exact_projection_is_certified(
        outer in 0usize..3,
        inner in 0usize..3,
        g in 1usize..12,
        n in 1usize..12,
        frac in 0.0f64..1.2,
        seed in any::<u64>(),
        nonneg in any::<bool>(),
    ) {
        let names = ['1', '2', 'i'];
        let (p, q) = (names[outer], names[inner]);
        let word = |k: char| match k { '1' => "l1", '2' => "l2", _ => "linf" };
        let spec = format!("exact {} over dim0 of {} over dim1", word(p), word(q));
        let mut rng = SplitMix64::new(seed);
        let y: Vec<f64> = (0..g * n)
            .map(|_| if nonneg { rng.next_f64() } else { rng.next_f64() * 2.0 - 1.0 })
            .collect();
        let x = ArrayD::from_shape_vec(IxDyn(&[g, n]), y.clone()).unwrap();
        let plan = plan(&spec, &[g, n], DType::F64, Order::C);
        let norm = mixed_norm(&y, n, p, q);
        let r = frac * norm;
        for backend in [Backend::Jit, Backend::Interp] {
            let (out, _) = project(&plan, &x, r, backend);
            let xs = rows(&out);
            let after = mixed_norm(&xs, n, p, q);
            let tol = 1e-10 * (1.0 + norm);
            prop_assert!(after <= r + tol, "{spec} {backend:?}: norm {after} > radius {r}");
            if norm <= r {
                prop_assert_eq!(&xs, &y);
                continue;
            }
            prop_assert!((after - r).abs() <= tol, "{spec} {backend:?}: norm {after} ≠ radius {r}");
            let d: Vec<f64> = y.iter().zip(&xs).map(|(a, b)| a - b).collect();
            let inner_product: f64 = d.iter().zip(&xs).map(|(a, b)| a * b).sum();
            let support = r * mixed_norm(&d, n, dual(p), dual(q));
            prop_assert!(
                (inner_product - support).abs() <= 1e-9 * (1.0 + support),
                "{spec} {backend:?}: ⟨d, x⟩ = {inner_product}, R·‖d‖* = {support}"
            );
        }
    }
}

/// The stage API refuses an exact plan whose solve needs the data, rather than solving it as a
/// multi-level one.
#[test]
fn stage_api_refuses_an_exact_solve() {
    use multiproj_runtime::stages::Solution;
    let p = plan(
        "exact l1 over dim0 of linf over dim1",
        &[3, 4],
        DType::F64,
        Order::C,
    );
    let x = ArrayD::from_shape_vec(IxDyn(&[3, 4]), (0..12).map(f64::from).collect()).unwrap();
    let norms = Executor::new(Backend::Interp)
        .reduce(&p, &x.view())
        .unwrap();
    let err = Solution::new(&p, &norms, 1.0).unwrap_err().to_string();
    assert!(err.contains("exact projection"), "{err}");
    // The group lasso's exact projection is the multi-level one: the stages work.
    let q = plan(
        "exact l1 over dim0 of l2 over dim1",
        &[3, 4],
        DType::F64,
        Order::C,
    );
    let norms = Executor::new(Backend::Interp)
        .reduce(&q, &x.view())
        .unwrap();
    assert!(Solution::new(&q, &norms, 1.0).is_ok());
}

/// The fast solver on every layout the plan can describe: groups as columns, Fortran order,
/// f32, and a 3-D tensor whose groups span two axes — each against the oracle on the same
/// groups laid out as rows.
#[test]
fn every_layout_matches_the_oracle() {
    let mut rng = SplitMix64::new(99);
    for case in 0..48u64 {
        let (g, n) = (1 + (case as usize * 7) % 23, 1 + (case as usize * 5) % 37);
        let rows: Vec<f64> = (0..g * n).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
        let frac = [0.003, 0.2, 0.6, 0.97][case as usize % 4];
        let f32_data = case % 3 == 0;
        let y: Vec<f64> = if f32_data {
            rows.iter().map(|&v| f64::from(v as f32)).collect()
        } else {
            rows.clone()
        };
        let norm: f64 = y
            .chunks(n)
            .map(|r| r.iter().fold(0.0f64, |m, v| m.max(v.abs())))
            .sum();
        let r = frac * norm;
        let want = project_l1_linf_exact(&y, g, n, r);
        let tol = if f32_data { 1e-6 } else { 1e-12 } * (1.0 + norm);
        let order = if case % 2 == 0 { Order::C } else { Order::F };
        // (spec, logical shape, element (row i, entry j) → logical index)
        let layouts: Vec<(&str, Vec<usize>)> = vec![
            ("exact l1 over dim0 of linf over dim1", vec![g, n]),
            ("exact l1 over dim1 of linf over dim0", vec![n, g]),
        ];
        for (spec, shape) in layouts {
            let cols = spec.contains("dim1 of");
            let at = |idx: &[usize]| {
                if cols {
                    idx[1] * n + idx[0]
                } else {
                    idx[0] * n + idx[1]
                }
            };
            let mut x = if order == Order::F {
                ArrayD::zeros(IxDyn(&shape).f())
            } else {
                ArrayD::zeros(IxDyn(&shape))
            };
            for (idx, v) in x.indexed_iter_mut() {
                *v = y[at(idx.slice())];
            }
            let dtype = if f32_data { DType::F32 } else { DType::F64 };
            let p = plan(spec, &shape, dtype, order);
            let check = |got: Vec<(Vec<usize>, f64)>| {
                for (idx, v) in got {
                    let w = want[at(&idx)];
                    assert!(
                        (v - w).abs() <= tol,
                        "{spec} {order:?} f32={f32_data} {g}×{n} at {idx:?}: {v} vs {w}"
                    );
                }
            };
            if f32_data {
                let x32 = x.mapv(|v| v as f32);
                let mut out = if order == Order::F {
                    ArrayD::<f32>::zeros(IxDyn(&shape).f())
                } else {
                    ArrayD::<f32>::zeros(IxDyn(&shape))
                };
                Executor::new(Backend::Jit)
                    .project(&p, &x32.view(), &mut out.view_mut(), r)
                    .unwrap();
                check(
                    out.indexed_iter()
                        .map(|(i, &v)| (i.slice().to_vec(), f64::from(v)))
                        .collect(),
                );
            } else {
                let (out, _) = project(&p, &x, r, Backend::Jit);
                check(
                    out.indexed_iter()
                        .map(|(i, &v)| (i.slice().to_vec(), v))
                        .collect(),
                );
            }
        }
        // 3-D: groups over axes 0 and 2, entries along axis 1 (shape g1 × n × g2 with g = g1·g2).
        if g % 2 == 0 {
            let (g1, g2) = (g / 2, 2);
            let shape = vec![g1, n, g2];
            let p = plan(
                "exact l1 over dims0,2 of linf over dim1",
                &shape,
                DType::F64,
                order,
            );
            let mut x = if order == Order::F {
                ArrayD::zeros(IxDyn(&shape).f())
            } else {
                ArrayD::zeros(IxDyn(&shape))
            };
            // Group index: row-major over axes (0, 2).
            for (idx, v) in x.indexed_iter_mut() {
                *v = y[(idx[0] * g2 + idx[2]) * n + idx[1]];
            }
            let (out, _) = project(&p, &x, r, Backend::Jit);
            for (idx, &v) in out.indexed_iter() {
                let w = want[(idx[0] * g2 + idx[2]) * n + idx[1]];
                assert!(
                    (v - w).abs() <= 1e-12 * (1.0 + norm),
                    "3-D {order:?} at {idx:?}: {v} vs {w}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Keeping K rows with the exact projection: exactly K rows survive, the radius is the
    /// largest that keeps K (a hair more and row K+1 comes back), the result is the exact
    /// projection at that radius (the oracle's), and both backends agree.
    #[test]
    fn exact_keep_keeps_exactly_k(
        g in 2usize..30,
        n in 1usize..40,
        kfrac in 0.0f64..1.0,
        seed in any::<u64>(),
    ) {
        let mut rng = SplitMix64::new(seed);
        let y: Vec<f64> = (0..g * n).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
        let x = ArrayD::from_shape_vec(IxDyn(&[g, n]), y.clone()).unwrap();
        let p = plan("exact l1 over dim0 of linf over dim1", &[g, n], DType::F64, Order::C);
        let k = ((kfrac * g as f64) as usize).min(g);
        let mut reports = Vec::new();
        for backend in [Backend::Jit, Backend::Interp] {
            let mut out = ArrayD::zeros(x.raw_dim());
            let report = Executor::new(backend)
                .project_to(&p, &x.view(), &mut out.view_mut(), RadiusTarget::Keep(k))
                .unwrap();
            let kept = out
                .rows()
                .into_iter()
                .filter(|r| r.iter().any(|&v| v != 0.0))
                .count();
            prop_assert_eq!(kept, k, "{:?}: {:?}", backend, report);
            prop_assert_eq!(report.survivors.len(), k);
            let r = report.radius;
            let want = project_l1_linf_exact(&y, g, n, r);
            for (a, b) in out.iter().zip(&want) {
                prop_assert!((a - b).abs() <= 1e-11, "{backend:?} k={k}: {a} vs {b}");
            }
            if k > 0 && k < g {
                // The largest radius: a little more keeps another row.
                let more = project_l1_linf_exact(&y, g, n, r * (1.0 + 1e-9) + 1e-12);
                let kept_more = more.chunks(n).filter(|row| row.iter().any(|&v| v != 0.0)).count();
                prop_assert!(kept_more > k, "{backend:?}: radius {r} is not the largest for {k}");
            }
            reports.push(report.radius);
        }
        prop_assert!((reports[0] - reports[1]).abs() <= 1e-12 * (1.0 + reports[1]));
    }
}
