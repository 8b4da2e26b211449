//! The stages of a projection run one by one (`multiproj_runtime::stages`): by hand they give
//! exactly what `Executor::project` gives on both backends; group norms of parts of the data
//! combine into the norms of the whole; and aggregates that do not fit the plan are refused.

use ndarray::{ArrayD, IxDyn, s};
use proptest::prelude::*;

use multiproj_compiler::{DType, Plan, TensorInfo};
use multiproj_runtime::stages::{GroupNorms, Solution};
use multiproj_runtime::verify::alloc_output;
use multiproj_runtime::{Backend, DataError, Executor, Interpreter};

fn plan(spec: &str, shape: &[usize]) -> Plan {
    let spec = multiproj_grammar::parse(spec).unwrap();
    let info = TensorInfo::c_order(shape, DType::F64);
    multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
}

const SPECS: [&str; 6] = [
    "l1 over dim0 of linf over dim1",
    "l1 over dim0 of l1 over dim1",
    "l1 over dim0 of l2 over dim1",
    "l2 over dim0 of l1 over dim1",
    "linf over dim1 of l1 over dim0",
    "l1 over dim0 of l2 over dim1 of l1 over dim2",
];

fn tensor(shape: &[usize], values: &[f64]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| values[i % values.len()]).collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

fn bits(a: &ArrayD<f64>) -> Vec<u64> {
    a.iter().map(|v| v.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// reduce → solve → threshold → apply, by hand, is `project`, bit for bit, on both
    /// backends, out of place and in place.
    #[test]
    fn stages_by_hand_are_project(
        spec in 0..SPECS.len(),
        dims in (1usize..6, 1usize..7, 1usize..4),
        values in prop::collection::vec(-10.0f64..10.0, 1..40),
        frac in 0.0f64..1.2,
    ) {
        let spec = SPECS[spec];
        let shape: Vec<usize> = if spec.contains("dim2") {
            vec![dims.0, dims.1, dims.2]
        } else {
            vec![dims.0, dims.1]
        };
        let p = plan(spec, &shape);
        let x = tensor(&shape, &values);
        for backend in [Backend::Jit, Backend::Interp] {
            let exec = Executor::new(backend);
            let radius = frac * exec.norm(&p, &x.view()).unwrap();
            let mut projected = alloc_output::<f64>(&p);
            exec.project(&p, &x.view(), &mut projected.view_mut(), radius).unwrap();

            let norms = exec.reduce(&p, &x.view()).unwrap();
            let mut solution = Solution::new(&p, &norms, radius).unwrap();
            exec.threshold(&p, &x.view(), &mut solution).unwrap();
            prop_assert!(!solution.needs_threshold());
            let mut by_hand = alloc_output::<f64>(&p);
            exec.apply(&p, &solution, &x.view(), &mut by_hand.view_mut()).unwrap();
            prop_assert_eq!(bits(&by_hand), bits(&projected), "{} on {}", spec, backend);

            let mut in_place = x.clone();
            exec.apply_in_place(&p, &solution, &mut in_place.view_mut()).unwrap();
            prop_assert_eq!(bits(&in_place), bits(&projected), "{} in place on {}", spec, backend);
        }
    }

    /// Group norms of the two halves of every group, combined, solve to the projection of the
    /// whole: exactly for linf groups (a max is exact), to rounding for l1 and l2, and always
    /// inside the ball.
    #[test]
    fn norms_of_parts_combine(
        inner in 0usize..3,
        rows in 1usize..6,
        (left, right) in (1usize..5, 1usize..5),
        values in prop::collection::vec(-10.0f64..10.0, 1..40),
        frac in 0.0f64..1.0,
    ) {
        let norm = ["linf", "l1", "l2"][inner];
        let spec = format!("l1 over dim0 of {norm} over dim1");
        let cols = left + right;
        let x = tensor(&[rows, cols], &values);
        let exec = Executor::new(Interpreter);
        let part = |a: usize, b: usize| {
            let p = plan(&spec, &[rows, b - a]);
            let xs = x.slice(s![.., a..b]).to_owned().into_dyn();
            (exec.reduce(&p, &xs.view()).unwrap(), p)
        };
        let (mut norms, left_plan) = part(0, left);
        let (right_norms, _) = part(left, cols);
        norms.combine(&left_plan, &right_norms).unwrap();

        let whole = plan(&spec, &[rows, cols]);
        let reduced = exec.reduce(&whole, &x.view()).unwrap();
        for (a, b) in norms.values().iter().zip(reduced.values()) {
            if norm == "linf" {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            } else {
                prop_assert!((a - b).abs() <= 1e-12 * b.max(1.0), "{} vs {}", a, b);
            }
        }
        let radius = frac * exec.norm(&whole, &x.view()).unwrap();
        let mut solution = Solution::new(&whole, &norms, radius).unwrap();
        exec.threshold(&whole, &x.view(), &mut solution).unwrap();
        let mut out = alloc_output::<f64>(&whole);
        exec.apply(&whole, &solution, &x.view(), &mut out.view_mut()).unwrap();
        let mut projected = alloc_output::<f64>(&whole);
        exec.project(&whole, &x.view(), &mut projected.view_mut(), radius).unwrap();
        // Inside the ball to rounding: the combined norms are the whole's to rounding (exactly
        // inside needs the norms this process's reduce computes, as `project` uses).
        let after = exec.norm(&whole, &out.view()).unwrap();
        prop_assert!(after <= radius * (1.0 + 1e-12), "outside the ball: {} > {}", after, radius);
        for (a, b) in out.iter().zip(&projected) {
            if norm == "linf" {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            } else {
                prop_assert!((a - b).abs() <= 1e-9, "{} vs {}", a, b);
            }
        }
    }
}

#[test]
fn aggregates_that_do_not_fit_the_plan_are_refused() {
    let p = plan("l1 over dim0 of linf over dim1", &[3, 4]);
    let bad = |r: Result<GroupNorms, DataError>| match r {
        Err(DataError::BadAggregates(why)) => why,
        other => panic!("expected BadAggregates, got {other:?}"),
    };
    assert!(bad(GroupNorms::new(&p, vec![1.0; 2], 0)).contains("2 group norms for a plan with 3"));
    assert!(bad(GroupNorms::new(&p, vec![1.0, -1.0, 0.0], 0)).contains("group 1 is -1"));
    assert!(bad(GroupNorms::new(&p, vec![1.0, f64::NAN, 0.0], 0)).contains("group 1 is NaN"));
    assert!(bad(GroupNorms::new(&p, vec![f64::MAX; 3], 0)).contains("overflows"));

    let norms = GroupNorms::new(&p, vec![1.0, 2.0, 3.0], 0).unwrap();
    assert!(matches!(
        Solution::new(&p, &norms, -1.0),
        Err(DataError::BadTarget(_))
    ));
    // Norms of another plan's groups, a solution for another plan.
    let other = plan("l1 over dim0 of linf over dim1", &[2, 4]);
    let mut theirs = GroupNorms::new(&other, vec![1.0, 2.0], 0).unwrap();
    assert!(matches!(
        theirs.combine(&other, &norms),
        Err(DataError::BadAggregates(_))
    ));
    let solution = Solution::new(&p, &norms, 1.0).unwrap();
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
    let mut out = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
    let exec = Executor::new(Backend::Jit);
    assert!(matches!(
        exec.apply(&other, &solution, &x.view(), &mut out.view_mut()),
        Err(DataError::BadAggregates(_))
    ));
    // Norms of an l1 inner level for a linf plan.
    let l1 = plan("l1 over dim0 of l1 over dim1", &[3, 4]);
    let mut l1_norms = GroupNorms::new(&l1, vec![1.0, 2.0, 3.0], 0).unwrap();
    assert!(matches!(
        l1_norms.combine(&p, &norms),
        Err(DataError::BadAggregates(_))
    ));
}

/// Two parts whose l1 norms are each finite but whose sum overflows f64 combine into norms
/// scaled by a power of two, and the solve still works.
#[test]
fn combining_norms_that_overflow_scales_them() {
    let p = plan("l1 over dim0 of l1 over dim1", &[2, 4]);
    let big = f64::MAX * 0.4;
    let mut a = GroupNorms::new(&p, vec![big, big], 0).unwrap();
    let b = a.clone();
    a.combine(&p, &b).unwrap();
    assert!(a.scale_exp() > 0);
    assert!(a.values().iter().all(|v| v.is_finite()));
    let solution = Solution::new(&p, &a, 1.0).unwrap();
    assert_eq!(solution.norm(), f64::INFINITY);
    assert_eq!(solution.counts(), (0, 0, 2));
}
