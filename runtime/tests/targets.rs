//! Choosing the radius from a target (`RadiusTarget`): keep exactly K top-level groups, a
//! sparsity, a fraction of the norm; what the report says about every level.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

use multiproj_compiler::{DType, Plan, TensorInfo};
use multiproj_runtime::verify::alloc_output;
use multiproj_runtime::{Backend, DataError, Executor, RadiusTarget, Report};

fn plan(spec: &str, shape: &[usize]) -> Plan {
    let spec = multiproj_grammar::parse(spec).unwrap();
    let info = TensorInfo::c_order(shape, DType::F64);
    multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
}

fn tensor(shape: &[usize], values: &[f64]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| values[i % values.len()]).collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

fn run(
    p: &Plan,
    x: &ArrayD<f64>,
    target: RadiusTarget,
) -> Result<(ArrayD<f64>, Report), DataError> {
    let mut out = alloc_output::<f64>(p);
    let report =
        Executor::new(Backend::Jit).project_to(p, &x.view(), &mut out.view_mut(), target)?;
    Ok((out, report))
}

/// Rows of `out` (axis 0) with a non-zero entry.
fn nonzero_rows(out: &ArrayD<f64>) -> Vec<usize> {
    (0..out.shape()[0])
        .filter(|&i| {
            out.index_axis(ndarray::Axis(0), i)
                .iter()
                .any(|&v| v != 0.0)
        })
        .collect()
}

const INNER: [&str; 3] = ["linf", "l1", "l2"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// `Keep(K)` keeps exactly K rows — the K of largest norm — and is the largest such radius:
    /// a radius a little larger keeps more. Ties across the K-th place are an error that names
    /// the counts that can be kept, and those counts work.
    #[test]
    fn keep_k_keeps_exactly_k(
        inner in 0usize..3,
        rows in 1usize..12,
        cols in 1usize..6,
        values in prop::collection::vec(-4i32..5, 1..50),
        k in 0usize..13,
    ) {
        let spec = format!("l1 over dim0 of {} over dim1", INNER[inner]);
        let p = plan(&spec, &[rows, cols]);
        let values: Vec<f64> = values.iter().map(|&v| v as f64 * 0.5).collect();
        let x = tensor(&[rows, cols], &values);
        match run(&p, &x, RadiusTarget::Keep(k)) {
            Ok((out, report)) => {
                let kept = nonzero_rows(&out);
                prop_assert_eq!(kept.len(), k, "{}: radius {}", spec, report.radius);
                // The norm after, as the solve set it, is the measured one to rounding.
                let measured = Executor::new(Backend::Interp).norm(&p, &out.view()).unwrap();
                prop_assert!(
                    measured <= report.norm_after * (1.0 + 1e-12)
                        && measured >= report.norm_after * (1.0 - 1e-9),
                    "{}: measured {} vs reported {}", spec, measured, report.norm_after
                );
                prop_assert_eq!(&report.survivors, &kept);
                prop_assert_eq!(report.levels[0].zeroed + report.levels[0].kept
                    + report.levels[0].shrunk, rows);
                // The largest radius: a little more keeps more rows (when there are any).
                let all = nonzero_rows(&x);
                if k < all.len() {
                    let more = report.radius * (1.0 + 1e-9) + 1e-12;
                    let (out2, _) = run(&p, &x, RadiusTarget::Radius(more)).unwrap();
                    prop_assert!(nonzero_rows(&out2).len() > k, "{}: radius {} is not the largest", spec, report.radius);
                }
                // The survivors are the rows of largest norm.
                let norm = |i: usize| p_norm(INNER[inner], &x, i);
                if let (Some(weakest), Some(strongest_gone)) = (
                    kept.iter().map(|&i| norm(i)).reduce(f64::min),
                    (0..rows).filter(|i| !kept.contains(i)).map(norm).reduce(f64::max),
                ) {
                    prop_assert!(weakest > strongest_gone);
                }
            }
            Err(DataError::BadTarget(why)) => {
                let all = nonzero_rows(&x).len();
                if k > all {
                    prop_assert!(why.contains("are zero in the data"), "{}", why);
                } else {
                    // A tie: the message names two counts that can be kept.
                    prop_assert!(why.contains("the same norm"), "{}", why);
                    let counts: Vec<usize> = why
                        .rsplit(';')
                        .next()
                        .unwrap()
                        .split_whitespace()
                        .filter_map(|w| w.parse().ok())
                        .collect();
                    prop_assert_eq!(counts.len(), 2, "{}", why);
                    for c in counts {
                        let (out, _) = run(&p, &x, RadiusTarget::Keep(c)).unwrap();
                        prop_assert_eq!(nonzero_rows(&out).len(), c);
                    }
                }
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    /// `Sparsity(F)` zeroes round(F·n) of the n rows; `RadiusFrac(F)` is F times the norm.
    #[test]
    fn sparsity_and_radius_fraction(
        rows in 2usize..20,
        values in prop::collection::vec(-1000i32..1000, 40..80),
        f in 0.0f64..=1.0,
    ) {
        let p = plan("l1 over dim0 of l2 over dim1", &[rows, 3]);
        // Distinct row norms (no ties): scaled distinct integers.
        let values: Vec<f64> = values.iter().enumerate().map(|(i, &v)| v as f64 + i as f64 * 1e-3).collect();
        let x = tensor(&[rows, 3], &values);
        if let Ok((out, report)) = run(&p, &x, RadiusTarget::Sparsity(f)) {
            let removed = (f * rows as f64).round() as usize;
            prop_assert_eq!(nonzero_rows(&out).len(), rows - removed);
            prop_assert_eq!(report.levels[0].zeroed, removed);
        }
        let norm = Executor::new(Backend::Interp).norm(&p, &x.view()).unwrap();
        let (_, report) = run(&p, &x, RadiusTarget::RadiusFrac(f)).unwrap();
        prop_assert_eq!(report.radius, f * norm);
    }
}

/// The innermost norm of row `i`.
fn p_norm(norm: &str, x: &ArrayD<f64>, i: usize) -> f64 {
    let row = x.index_axis(ndarray::Axis(0), i);
    match norm {
        "linf" => row.iter().fold(0.0, |m: f64, v| m.max(v.abs())),
        "l1" => row.iter().map(|v| v.abs()).sum(),
        _ => row.iter().map(|v| v * v).sum::<f64>().sqrt(),
    }
}

#[test]
fn targets_that_cannot_remove_groups_are_refused() {
    let x = tensor(&[4, 3], &[1.0, 2.0, 3.0]);
    let why = |spec: &str, shape: &[usize], t: RadiusTarget| {
        let p = plan(spec, shape);
        match run(&p, &tensor(shape, &[1.0, 2.0, 3.0]), t) {
            Err(DataError::BadTarget(why)) => why,
            other => panic!("{spec}: expected BadTarget, got {other:?}"),
        }
    };
    assert!(
        why(
            "linf over dim0 of l1 over dim1",
            &[4, 3],
            RadiusTarget::Keep(2)
        )
        .contains("clips")
    );
    assert!(
        why(
            "l2 over dim0 of l1 over dim1",
            &[4, 3],
            RadiusTarget::Sparsity(0.5)
        )
        .contains("scales")
    );
    assert!(why("l1 over dims 0..1", &[4, 3], RadiusTarget::Keep(2)).contains("single level"));
    assert!(
        why(
            "l1 over dim0 of l1 over dim1",
            &[4, 3],
            RadiusTarget::Sparsity(1.5)
        )
        .contains("between 0 and 1")
    );
    assert!(
        why(
            "l1 over dim0 of l1 over dim1",
            &[4, 3],
            RadiusTarget::RadiusFrac(-1.0)
        )
        .contains("≥ 0")
    );
    assert!(
        why(
            "l1 over dim0 of l1 over dim1",
            &[4, 3],
            RadiusTarget::Radius(f64::NAN)
        )
        .contains("finite")
    );
    // Every row has the same norm: only 0 or 4 rows can be kept.
    let p = plan("l1 over dim0 of linf over dim1", &[4, 3]);
    match run(&p, &x, RadiusTarget::Keep(2)) {
        Err(DataError::BadTarget(why)) => assert!(
            why.contains("ranked 1 to 4") && why.contains("0 or 4 can be kept"),
            "{why}"
        ),
        other => panic!("expected a tie, got {other:?}"),
    }
    assert_eq!(
        nonzero_rows(&run(&p, &x, RadiusTarget::Keep(4)).unwrap().0).len(),
        4
    );
    assert_eq!(
        nonzero_rows(&run(&p, &x, RadiusTarget::Keep(0)).unwrap().0).len(),
        0
    );
}

/// Three levels: the report counts every level, the l1 thresholds of each projection, and the
/// surviving top-level groups.
#[test]
fn the_report_covers_every_level() {
    let shape = [4, 5, 6];
    let p = plan("l1 over dim0 of l1 over dim1 of l1 over dim2", &shape);
    let values: Vec<f64> = (0..120)
        .map(|i| ((i * 37 % 23) as f64 - 11.0) * (1.0 + (i / 30) as f64))
        .collect();
    let x = tensor(&shape, &values);
    let (out, r) = run(&p, &x, RadiusTarget::Keep(2)).unwrap();
    assert_eq!(r.levels.len(), 2);
    let (top, inner) = (&r.levels[0], &r.levels[1]);
    assert_eq!((top.axes.clone(), top.groups), (vec![0], 4));
    assert_eq!((inner.axes.clone(), inner.groups), (vec![0, 1], 20));
    assert_eq!(top.kept + top.shrunk + top.zeroed, 4);
    assert_eq!(top.zeroed, 2);
    assert_eq!(r.survivors, nonzero_rows(&out));
    assert_eq!(
        (inner.kept, inner.zeroed, inner.shrunk),
        (r.untouched, r.zeroed, r.projected)
    );
    // One threshold for the top projection, one per top-level group below it, and one per
    // innermost group; positive exactly where something was shrunk.
    assert_eq!(top.thresholds.len(), 1);
    assert!(top.thresholds[0] > 0.0);
    assert_eq!(inner.thresholds.len(), 4);
    assert_eq!(r.inner_thresholds.len(), 20);
    assert_eq!(
        r.inner_thresholds.iter().filter(|&&t| t > 0.0).count(),
        r.projected
    );
}
