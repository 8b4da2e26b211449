//! Column-wise groups run through *jammed* kernels (eight rows of data per pass over the group
//! arrays in the reduce pass, four in the apply pass, then the leftover rows one at a time). These tests pin that the jammed kernels are
//! the ones chosen, and that they compute exactly what the interpreter computes for every
//! number of rows around the jam width (all leftovers), every innermost norm, both dtypes, out
//! of place and in place (bit for bit for linf, to rounding for sums), and that a non-finite element in any row of a jammed block is named
//! like the interpreter names it.

use multiproj::compiler::{self, DType, JAM_ROWS_APPLY, JAM_ROWS_REDUCE, Order, TensorInfo};
use multiproj::runtime::half;
use multiproj::runtime::jit;
use multiproj::runtime::rng::SplitMix64;
use multiproj::{Backend, Projection};
use ndarray::{Array2, ArrayD, IxDyn};

/// Column-wise specs for 2-D tensors, one per innermost norm.
const SPECS: &[&str] = &[
    "l1 over dim1 of linf over dim0",
    "l1 over dim1 of l2 over dim0",
    "l1 over dim1 of l1 over dim0",
    "linf over dim1 of l2 over dim0",
];

fn data(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = SplitMix64::new(seed);
    Array2::from_shape_fn((rows, cols), |(_, c)| {
        let u = rng.next_f64() * 2.0 - 1.0;
        u * (1.0 + (c % 5) as f64)
    })
}

fn projections(spec: &str, x: &Array2<f64>, frac: f64) -> (Projection, Projection) {
    let base = Projection::compile(spec).unwrap();
    let r = base.norm(x).unwrap() * frac;
    let jit = Projection::compile(spec)
        .unwrap()
        .with_radius(r)
        .unwrap()
        .with_backend(Backend::Jit);
    let interp = Projection::compile(spec)
        .unwrap()
        .with_radius(r)
        .unwrap()
        .with_backend(Backend::Interp);
    (jit, interp)
}

/// Max-based levels must agree bit for bit; sums (l1, l2) within 1e-12 of the largest
/// magnitude (the interpreter and the kernels may associate a group's sum differently when the
/// group is one contiguous run).
fn assert_agree<T: Copy + Into<f64>>(
    spec: &str,
    got: &ndarray::ArrayView2<'_, T>,
    want: &ndarray::ArrayView2<'_, T>,
    what: &str,
) {
    let exact = spec.ends_with("linf over dim0");
    let scale = want.iter().fold(1.0f64, |m, &v| m.max(v.into().abs()));
    for ((i, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let (g, w) = (g.into(), w.into());
        let ok = if exact {
            g.to_bits() == w.to_bits()
        } else {
            (g - w).abs() <= 1e-12 * scale
        };
        assert!(ok, "{what}: at {i:?} jit {g:e} vs interpreter {w:e}");
    }
}

#[test]
fn column_wise_plans_use_jammed_kernels() {
    let jit = jit::global().unwrap();
    for spec in SPECS {
        let parsed = multiproj::grammar::parse(spec).unwrap();
        let ir = compiler::check(
            &parsed,
            &TensorInfo::with_order(&[9, 7], DType::F64, Order::C),
        )
        .unwrap();
        let plan = compiler::plan(&ir);
        let key = *jit.reduce_kernel(&plan).unwrap().key();
        assert_eq!(key.jam, JAM_ROWS_REDUCE, "{spec}: reduce");
        assert!(
            key.to_string().ends_with(&format!("_jam{JAM_ROWS_REDUCE}")),
            "{key}"
        );
        for in_place in [false, true] {
            let key = *jit.apply_kernel(&plan, in_place).unwrap().key();
            assert_eq!(
                key.jam, JAM_ROWS_APPLY,
                "{spec}: apply (in place: {in_place})"
            );
            assert!(
                key.to_string().ends_with(&format!("_jam{JAM_ROWS_APPLY}")),
                "{key}"
            );
        }
    }
    // Row-wise groups are not jammed (the innermost loop stays inside one group).
    let parsed = multiproj::grammar::parse("l1 over dim0 of linf over dim1").unwrap();
    let ir = compiler::check(
        &parsed,
        &TensorInfo::with_order(&[9, 7], DType::F64, Order::C),
    )
    .unwrap();
    assert_eq!(
        jit.reduce_kernel(&compiler::plan(&ir)).unwrap().key().jam,
        0
    );
}

#[test]
fn jammed_kernels_equal_the_interpreter() {
    // Rows 1..=18 cover no full block, one, two, and every leftover of both widths (8 and 4);
    // columns cover the unrolled vector loop, the single-pair loop and the scalar tail.
    for spec in SPECS {
        for rows in 1..=18 {
            for cols in [1, 2, 3, 9, 17] {
                let x = data(rows, cols, (rows * 31 + cols) as u64);
                for frac in [0.05, 0.4, 2.0] {
                    let (jit, interp) = projections(spec, &x, frac);
                    let what = format!("{spec} on {rows}x{cols}, radius {frac} x norm");
                    // f64, out of place and in place.
                    let a = jit.project(&x).unwrap();
                    let b = interp.project(&x).unwrap();
                    assert_agree(spec, &a.view(), &b.view(), &what);
                    let mut c = x.clone();
                    jit.project_in_place(&mut c).unwrap();
                    assert_agree(spec, &c.view(), &b.view(), &format!("{what}, in place"));
                    // f32.
                    let x32 = x.mapv(|v| v as f32);
                    let a = jit.project(&x32).unwrap();
                    let b = interp.project(&x32).unwrap();
                    assert_agree(spec, &a.view(), &b.view(), &format!("{what}, f32"));
                    let mut c = x32.clone();
                    jit.project_in_place(&mut c).unwrap();
                    assert_agree(spec, &c.view(), &b.view(), &format!("{what}, f32 in place"));
                }
            }
        }
    }
}

#[test]
fn a_non_finite_element_in_any_jammed_row_is_named_like_the_interpreter() {
    let spec = "l1 over dim1 of linf over dim0";
    for (rows, cols) in [(8, 5), (9, 16), (4, 3), (19, 9)] {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for r in 0..rows {
                for c in [0, cols / 2, cols - 1] {
                    let mut x: ArrayD<f64> = data(rows, cols, 3).into_dyn();
                    x[IxDyn(&[r, c])] = bad;
                    let (jit, interp) = (
                        Projection::compile(spec)
                            .unwrap()
                            .with_radius(1.0)
                            .unwrap()
                            .with_backend(Backend::Jit),
                        Projection::compile(spec)
                            .unwrap()
                            .with_radius(1.0)
                            .unwrap()
                            .with_backend(Backend::Interp),
                    );
                    let e_jit = jit.project(&x).unwrap_err().to_string();
                    let e_interp = interp.project(&x).unwrap_err().to_string();
                    assert_eq!(e_jit, e_interp, "{bad} at [{r}, {c}] of {rows}x{cols}");
                    assert!(
                        e_jit.contains(&format!("[{r}, {c}]")),
                        "{bad} at [{r}, {c}]: {e_jit}"
                    );
                    // f32, whose maxima are taken on the bits (four columns at a time).
                    let x32 = x.mapv(|v| v as f32);
                    let e_jit = jit.project(&x32).unwrap_err().to_string();
                    let e_interp = interp.project(&x32).unwrap_err().to_string();
                    assert_eq!(e_jit, e_interp, "f32: {bad} at [{r}, {c}] of {rows}x{cols}");
                    // The 16-bit formats, eight columns at a time: maxima on the bits, and sums
                    // whose magnitudes widen without regard for ∞ and NaN (detected on the
                    // bits instead).
                    for sum_spec in [
                        spec,
                        "l1 over dim1 of l2 over dim0",
                        "l1 over dim1 of l1 over dim0",
                    ] {
                        let jit = Projection::compile(sum_spec)
                            .unwrap()
                            .with_radius(1.0)
                            .unwrap()
                            .with_backend(Backend::Jit);
                        let interp = Projection::compile(sum_spec)
                            .unwrap()
                            .with_radius(1.0)
                            .unwrap()
                            .with_backend(Backend::Interp);
                        let h = x.mapv(half::f16::from_f64);
                        let e_jit = jit.project(&h).unwrap_err().to_string();
                        let e_interp = interp.project(&h).unwrap_err().to_string();
                        assert_eq!(e_jit, e_interp, "{sum_spec} f16: {bad} at [{r}, {c}]");
                        let b = x.mapv(half::bf16::from_f64);
                        let e_jit = jit.project(&b).unwrap_err().to_string();
                        let e_interp = interp.project(&b).unwrap_err().to_string();
                        assert_eq!(e_jit, e_interp, "{sum_spec} bf16: {bad} at [{r}, {c}]");
                    }
                }
            }
        }
    }
}
