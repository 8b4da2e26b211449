//! Norms beyond `f64::MAX`: entries near the top of the f64 range whose sums overflow. The
//! aggregates are then computed on the tensor scaled by a power of two (exactly), so the
//! projection is still right; known answers, on both backends, out of place and in place.

use multiproj::{Backend, Projection};
use ndarray::{ArrayD, IxDyn, array};

fn project(
    spec: &str,
    x: &ArrayD<f64>,
    radius: f64,
    backend: Backend,
) -> (ArrayD<f64>, ArrayD<f64>) {
    let p = Projection::compile(spec)
        .unwrap()
        .with_radius(radius)
        .unwrap()
        .with_backend(backend);
    let out = p
        .project(x)
        .unwrap_or_else(|e| panic!("{spec} ({backend:?}): {e}"));
    let mut in_place = x.clone();
    p.project_in_place(&mut in_place)
        .unwrap_or_else(|e| panic!("{spec} ({backend:?}) in place: {e}"));
    (out, in_place)
}

fn assert_close(spec: &str, got: &ArrayD<f64>, want: &ArrayD<f64>) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{spec}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn projections_whose_norms_overflow_are_right() {
    let x = array![[1.5e308, -1.5e308], [1.0, 2.0]].into_dyn();
    let r = 1e308;
    // Known answers: the l1 norms of the tensor and of row 0 are 3e308 (beyond f64::MAX).
    let cases: [(&str, ArrayD<f64>); 5] = [
        // Row norms [3e308, 3] onto the l1 ball of 1e308: τ = 2e308, radii [1e308, 0]; row 0
        // then shrinks to l1 norm 1e308.
        (
            "l1 over dim0 of l1 over dim1",
            array![[5e307, -5e307], [0.0, 0.0]].into_dyn(),
        ),
        // One l1 ball: 2(1.5e308 − τ) = 1e308, τ = 1e308 (the small entries are below it).
        (
            "l1 over dims0..1",
            array![[5e307, -5e307], [0.0, 0.0]].into_dyn(),
        ),
        // One l2 ball: everything times 1e308 / (1.5e308·√2 + tiny).
        ("l2 over dims0..1", {
            let f = (1e308 / 1.5e308) / 2f64.sqrt();
            array![[1.5e308 * f, -1.5e308 * f], [f, 2.0 * f]].into_dyn()
        }),
        // Row l2 norms [1.5e308·√2, √5] onto the l1 ball: row 1 is zeroed (τ > √5), row 0 scaled
        // to norm 1e308.
        ("l1 over dim0 of l2 over dim1", {
            let f = (1e308 / 1.5e308) / 2f64.sqrt();
            array![[1.5e308 * f, -1.5e308 * f], [0.0, 0.0]].into_dyn()
        }),
        // linf of row l1 norms: each row onto the l1 ball of 1e308 on its own; row 1 is inside.
        (
            "linf over dim0 of l1 over dim1",
            array![[5e307, -5e307], [1.0, 2.0]].into_dyn(),
        ),
    ];
    for (spec, want) in cases {
        for backend in [Backend::Jit, Backend::Interp] {
            let (out, in_place) = project(spec, &x, r, backend);
            assert_close(spec, &out, &want);
            assert_eq!(out, in_place, "{spec} ({backend:?}): in place differs");
            // The result is inside the ball (its norm is finite now).
            let norm = Projection::compile(spec).unwrap().norm(&out).unwrap();
            assert!(norm <= r * (1.0 + 1e-12), "{spec}: norm after {norm:e}");
        }
    }
}

#[test]
fn the_norm_beyond_f64_max_is_infinite() {
    let x = ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.5e308, 1.5e308, 1.0]).unwrap();
    let norm = Projection::compile("l1 over dim0")
        .unwrap()
        .norm(&x)
        .unwrap();
    assert_eq!(norm, f64::INFINITY);
}

/// The extremes of the narrow formats: a sum of squares of f32, f16 or bf16 values never
/// overflows f64 nor falls below its normal range, so the JIT keeps no maxima for their l2
/// groups. Groups of the smallest subnormals, of the largest finite values, and of both, as
/// rows and as columns (jammed), have the interpreter's norms and projections bit for bit.
#[test]
fn narrow_formats_at_their_extremes_have_exact_l2_norms() {
    use multiproj::runtime::half::{bf16, f16};
    let tiny = f32::from_bits(1); // 2^-149
    let huge = f32::MAX;
    let cols = 19;
    let x32 = ArrayD::from_shape_fn(IxDyn(&[11, cols]), |i| {
        let (r, c) = (i[0], i[1]);
        match c % 4 {
            0 => tiny * (1 + r % 3) as f32,
            1 => huge / (1 + r % 2) as f32,
            2 if r % 2 == 0 => tiny,
            2 => huge,
            _ => 0.0,
        }
    });
    for spec in [
        "l1 over dim0 of l2 over dim1",
        "l1 over dim1 of l2 over dim0",
    ] {
        let jit = Projection::compile(spec)
            .unwrap()
            .with_backend(Backend::Jit);
        let interp = Projection::compile(spec)
            .unwrap()
            .with_backend(Backend::Interp);
        let (a, b) = (jit.norm(&x32).unwrap(), interp.norm(&x32).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "{spec}: norm {a:e} vs {b:e}");
        assert!(a.is_finite() && a > 0.0, "{spec}: {a:e}");
        let (jit, interp) = (
            jit.with_radius(a * 0.3).unwrap(),
            interp.with_radius(a * 0.3).unwrap(),
        );
        let (p, q) = (jit.project(&x32).unwrap(), interp.project(&x32).unwrap());
        assert!(
            p.iter().zip(&q).all(|(u, v)| u.to_bits() == v.to_bits()),
            "{spec}: f32 projections differ"
        );
        // The 16-bit formats, at their own extremes.
        let h = at_extremes(&x32, [f16::ZERO, f16::from_bits(1), f16::MAX]);
        let b16 = at_extremes(&x32, [bf16::ZERO, bf16::from_bits(1), bf16::MAX]);
        let (a, b) = (jit.norm(&h).unwrap(), interp.norm(&h).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "{spec}: f16 norm {a:e} vs {b:e}");
        let (a, b) = (jit.norm(&b16).unwrap(), interp.norm(&b16).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "{spec}: bf16 norm {a:e} vs {b:e}");
    }
}

/// `x` with its zeros, small values and large values replaced by `[zero, tiny, huge]`.
fn at_extremes<T: Copy>(x: &ArrayD<f32>, [zero, tiny, huge]: [T; 3]) -> ArrayD<T> {
    x.mapv(|v| {
        if v == 0.0 {
            zero
        } else if v < 1.0 {
            tiny
        } else {
            huge
        }
    })
}
