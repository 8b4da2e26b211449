//! Snapshots of the Cranelift IR the JIT generates for a handful of plans: the printed kernels
//! are reviewed like code, and a change to the code generator shows up here as a diff.
//!
//! Kernels depend on the loop structure (depth, which loops are reduced, contiguity), the dtype,
//! the norm and the apply operation — not on the sizes — so small shapes stand for big ones.

use multiproj::compiler::{self, DType, Norm, Order, TensorInfo};
use multiproj::runtime::jit;

fn kernels(spec: &str, shape: &[usize], dtype: DType, order: Order) -> String {
    let spec = multiproj::grammar::parse(spec).expect("the spec parses");
    let ir = compiler::check(&spec, &TensorInfo::with_order(shape, dtype, order))
        .expect("the spec fits");
    let plan = compiler::plan(&ir);
    let jit = jit::global().expect("the JIT starts");
    let mut out = format!("{plan}\n");
    let mut section = |title: &str, clif: &str| {
        out.push_str(&format!("== {title} ==\n{}\n", clif.trim_end()));
    };
    section("reduce", jit.reduce_kernel(&plan).expect("compiles").clif());
    if plan.innermost().norm == Norm::L1 {
        section("gather", jit.gather_kernel(&plan).expect("compiles").clif());
    }
    section(
        "apply (out of place)",
        jit.apply_kernel(&plan, false).expect("compiles").clif(),
    );
    section(
        "apply (in place)",
        jit.apply_kernel(&plan, true).expect("compiles").clif(),
    );
    out
}

#[test]
fn bilevel_rows_f64() {
    insta::assert_snapshot!(kernels(
        "l1 over dim0 of linf over dim1",
        &[64, 48],
        DType::F64,
        Order::C
    ));
}

#[test]
fn bilevel_columns_f32() {
    insta::assert_snapshot!(kernels(
        "l1 over dim1 of linf over dim0",
        &[48, 64],
        DType::F32,
        Order::C
    ));
}

#[test]
fn innermost_l1_fortran() {
    insta::assert_snapshot!(kernels(
        "l1 over dim0 of l1 over dim1",
        &[30, 20],
        DType::F64,
        Order::F
    ));
}

#[test]
fn group_lasso_3d() {
    insta::assert_snapshot!(kernels(
        "l1 over dim0 of l2 over dims1..2",
        &[8, 5, 6],
        DType::F64,
        Order::C
    ));
}
