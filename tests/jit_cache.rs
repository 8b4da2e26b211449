//! The kernel cache: a new shape with the same loop structure reuses the compiled kernels, and
//! repeated projections (a training loop) never compile anything. Alone in its own test binary,
//! because it counts compilations of the process-wide JIT.

use multiproj::Projection;
use multiproj::runtime::jit;
use ndarray::Array2;

#[test]
fn same_structure_never_recompiles() {
    let proj = Projection::compile("l1 over dim0 of linf over dim1")
        .unwrap()
        .with_radius(1.0)
        .unwrap();
    let jit = jit::global().unwrap();
    let x = Array2::from_shape_fn((64, 48), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    proj.project(&x).unwrap();
    let after_first = jit.compiled();
    assert!(after_first >= 2, "reduce and apply compiled: {after_first}");

    // A training loop: the same projection, over and over.
    let mut w = x.clone();
    for _ in 0..20 {
        proj.project_in_place(&mut w).unwrap();
        proj.project(&w).unwrap();
    }
    let in_place_too = jit.compiled();
    // Other shapes with the same structure (2 loops, rows reduced innermost, contiguous).
    for (rows, cols) in [(10, 3), (1000, 17), (3, 1025)] {
        let y = Array2::from_shape_fn((rows, cols), |(i, j)| (i as f64) - (j as f64) * 0.5);
        proj.project(&y).unwrap();
    }
    assert_eq!(
        jit.compiled(),
        in_place_too,
        "a new shape of the same structure compiled new kernels"
    );
    // And the loop above compiled at most the in-place apply kernel.
    assert!(in_place_too <= after_first + 1);
}
