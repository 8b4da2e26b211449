//! Sharded projections (`multiproj_runtime::shard`) over P processes — here threads, with a
//! test communicator whose collectives combine in rank order — against the single-process
//! projection of the whole tensor: every spec shape, every shard axis (groups whole, split, an
//! outer level's axis), uneven and empty shards, f64, f32, f16 and bf16, in place and out of place; shards
//! that do not fit together; a failure on one process.

use std::sync::{Arc, Barrier, Mutex};

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice, concatenate};
use proptest::prelude::*;

use multiproj_compiler::{DType, Plan, TensorInfo};
use multiproj_runtime::shard::{
    Communicator, ReduceOp, ShardLayout, project_shard, project_shard_in_place,
};
use multiproj_runtime::{Backend, DataError, Element, Executor, RadiusTarget, Report};

/// P threads as processes: a collective is a barrier, a write of this rank's slot, a barrier and
/// a read of all slots (the next collective's first barrier keeps a slot from being overwritten
/// before everyone has read it).
struct Threads {
    rank: usize,
    size: usize,
    barrier: Arc<Barrier>,
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
}

impl Threads {
    fn group(size: usize) -> Vec<Threads> {
        let barrier = Arc::new(Barrier::new(size));
        let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
        (0..size)
            .map(|rank| Threads {
                rank,
                size,
                barrier: barrier.clone(),
                slots: slots.clone(),
            })
            .collect()
    }
}

impl Communicator for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_gather(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, String> {
        self.barrier.wait();
        self.slots.lock().unwrap()[self.rank] = local.to_vec();
        self.barrier.wait();
        Ok(self.slots.lock().unwrap().clone())
    }
    fn all_reduce(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), String> {
        let all = self.all_gather(buf)?;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = all[1..].iter().fold(all[0][i], |acc, v| match op {
                ReduceOp::Sum => acc + v[i],
                ReduceOp::Max => acc.max(v[i]),
            });
        }
        Ok(())
    }
}

fn plan(spec: &str, info: &TensorInfo) -> Plan {
    let spec = multiproj_grammar::parse(spec).unwrap();
    multiproj_compiler::plan(&multiproj_compiler::check(&spec, info).unwrap())
}

/// One process: its layout, plans and the sharded projection of its shard.
fn run_rank<T: Element>(
    comm: &Threads,
    spec: &str,
    shard: ArrayViewD<'_, T>,
    axis: usize,
    target: RadiusTarget,
    in_place: bool,
) -> Result<(ArrayD<T>, Report), DataError> {
    let layout = ShardLayout::exchange(comm, shard.shape(), T::DTYPE, axis)?;
    let global = plan(spec, &layout.global_info());
    let local =
        (!shard.is_empty()).then(|| plan(spec, &TensorInfo::c_order(shard.shape(), T::DTYPE)));
    let exec = Executor::new(Backend::Jit);
    let mut out = shard.to_owned();
    let report = if in_place {
        project_shard_in_place(
            &exec,
            comm,
            &layout,
            &global,
            local.as_ref(),
            &mut out.view_mut(),
            target,
        )?
    } else {
        let mut o = ArrayD::<T>::from_elem(IxDyn(shard.shape()), T::from_f64(0.0));
        let r = project_shard(
            &exec,
            comm,
            &layout,
            &global,
            local.as_ref(),
            &shard,
            &mut o.view_mut(),
            target,
        )?;
        out = o;
        r
    };
    Ok((out, report))
}

/// Splits `x` along `axis` into `extents`, runs the sharded projection on one thread per
/// shard, and returns each process's result.
fn sharded<T: Element>(
    spec: &str,
    x: &ArrayD<T>,
    axis: usize,
    extents: &[usize],
    target: RadiusTarget,
    in_place: bool,
) -> Vec<Result<(ArrayD<T>, Report), DataError>> {
    let comms = Threads::group(extents.len());
    let mut start = 0;
    let shards: Vec<ArrayD<T>> = extents
        .iter()
        .map(|&e| {
            let s = x
                .slice_axis(Axis(axis), Slice::from(start..start + e))
                .to_owned();
            start += e;
            s
        })
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = comms
            .iter()
            .zip(&shards)
            .map(|(c, s)| scope.spawn(move || run_rank(c, spec, s.view(), axis, target, in_place)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

const SPECS: [&str; 9] = [
    "l1 over dim0 of linf over dim1",
    "l1 over dim0 of l1 over dim1",
    "l1 over dim0 of l2 over dim1",
    "l2 over dim0 of l1 over dim1",
    "linf over dim1 of l1 over dim0",
    "l1 over dim1 of linf over dim0",
    "l1 over dim0 of l2 over dim1 of l1 over dim2",
    "l1 over dim0 of linf over dim1 of linf over dim2",
    "l1 over dim2 of l1 over dims0..1",
];

/// Extents along the shard axis for `p` processes summing to `len`, some possibly empty.
fn extents(len: usize, p: usize, cuts: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = cuts.iter().take(p - 1).map(|&k| k % (len + 1)).collect();
    c.sort_unstable();
    let mut out = Vec::with_capacity(p);
    let mut prev = 0;
    for k in c {
        out.push(k - prev);
        prev = k;
    }
    out.push(len - prev);
    out
}

fn check<T: Element>(
    spec: &str,
    shape: &[usize],
    values: &[f64],
    axis: usize,
    ext: &[usize],
    frac: f64,
    in_place: bool,
) -> Result<(), TestCaseError> {
    let n: usize = shape.iter().product();
    let x = ArrayD::from_shape_vec(
        IxDyn(shape),
        (0..n)
            .map(|i| T::from_f64(values[i % values.len()]))
            .collect(),
    )
    .unwrap();
    let whole = plan(spec, &TensorInfo::c_order(shape, T::DTYPE));
    let exec = Executor::new(Backend::Jit);
    let radius = frac * exec.norm(&whole, &x.view()).unwrap();
    let mut want = ArrayD::<T>::from_elem(IxDyn(shape), T::from_f64(0.0));
    let want_report = exec
        .project(&whole, &x.view(), &mut want.view_mut(), radius)
        .unwrap();
    let results = sharded(spec, &x, axis, ext, RadiusTarget::Radius(radius), in_place);
    let mut parts = Vec::new();
    for (r, res) in results.into_iter().enumerate() {
        let (part, report) = res.map_err(|e| TestCaseError::fail(format!("rank {r}: {e}")))?;
        // Every process reports the whole tensor's numbers.
        prop_assert_eq!(report.groups, want_report.groups);
        prop_assert_eq!(
            (report.untouched, report.zeroed, report.projected),
            (
                want_report.untouched,
                want_report.zeroed,
                want_report.projected
            ),
            "rank {}",
            r
        );
        let scale = 1e-12 * (1.0 + want_report.norm_before);
        prop_assert!((report.norm_before - want_report.norm_before).abs() <= scale);
        parts.push(part);
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    // In C order, the layout the whole tensor's plan is for.
    let got = concatenate(Axis(axis), &views)
        .unwrap()
        .as_standard_layout()
        .into_owned();
    let layout_split = whole.innermost().axes.contains(&axis);
    let exact = whole.innermost().norm == multiproj_compiler::Norm::Linf || !layout_split;
    let max = x.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
    let tol = multiproj_runtime::verify::rtol(T::DTYPE) * max;
    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        let (a, b) = (a.to_f64(), b.to_f64());
        if exact && whole.innermost().norm == multiproj_compiler::Norm::Linf {
            prop_assert_eq!(a.to_bits(), b.to_bits(), "entry {}: {} vs {}", i, a, b);
        } else {
            prop_assert!(
                (a - b).abs() <= tol,
                "entry {}: {} vs {} (tolerance {})",
                i,
                a,
                b,
                tol
            );
        }
    }
    // The result is inside the ball (the norm of the gathered result, by the single-process
    // norm).
    let norm_after = exec.norm(&whole, &got.view()).unwrap();
    prop_assert!(
        norm_after <= radius * (1.0 + 1e-9) + 1e-300,
        "{} > {}",
        norm_after,
        radius
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// The sharded projection is the single-process one, on every spec, shard axis, number of
    /// processes and split of the axis (empty shards included).
    #[test]
    fn sharded_equals_single_process(
        spec in 0..SPECS.len(),
        dims in (1usize..9, 1usize..11, 1usize..5),
        values in prop::collection::vec(-10.0f64..10.0, 1..60),
        axis in 0usize..3,
        p in 1usize..5,
        cuts in prop::collection::vec(0usize..20, 3),
        frac in prop_oneof![Just(0.0), 0.0f64..1.0, Just(1.5)],
        dtype in 0usize..4,
        in_place in any::<bool>(),
    ) {
        let spec = SPECS[spec];
        let shape: Vec<usize> = if spec.contains("dim2") {
            vec![dims.0, dims.1, dims.2]
        } else {
            vec![dims.0, dims.1]
        };
        let axis = axis % shape.len();
        let ext = extents(shape[axis], p, &cuts);
        // The values as the element type holds them.
        fn typed<T: Element>(values: &[f64]) -> Vec<f64> {
            values.iter().map(|&v| T::from_f64(v).to_f64()).collect()
        }
        match dtype {
            0 => check::<f64>(spec, &shape, &values, axis, &ext, frac, in_place)?,
            1 => check::<f32>(spec, &shape, &typed::<f32>(&values), axis, &ext, frac, in_place)?,
            2 => {
                let v = typed::<half::f16>(&values);
                check::<half::f16>(spec, &shape, &v, axis, &ext, frac, in_place)?
            }
            _ => {
                let v = typed::<half::bf16>(&values);
                check::<half::bf16>(spec, &shape, &v, axis, &ext, frac, in_place)?
            }
        }
    }
}

/// Long split l1 groups with a tiny radius (the threshold lands next to the largest entries):
/// the distributed threshold still lands on the ball, to rounding of the single-process one.
#[test]
fn split_l1_groups_with_tiny_and_large_radii() {
    let mut rng = multiproj_runtime::rng::SplitMix64::new(7);
    let (g, n) = (6usize, 997usize);
    let values: Vec<f64> = (0..g * n).map(|_| rng.next_f64() * 200.0 - 100.0).collect();
    for frac in [1e-9, 1e-4, 0.03, 0.5, 0.999] {
        for ext in [vec![500, 497], vec![0, 300, 697], vec![1, 1, 995, 0]] {
            check::<f64>(
                "l1 over dim0 of l1 over dim1",
                &[g, n],
                &values,
                1,
                &ext,
                frac,
                false,
            )
            .unwrap();
        }
    }
}

#[test]
fn shards_that_do_not_fit_are_the_same_error_everywhere() {
    let comms = Threads::group(3);
    let shapes = [vec![4usize, 3], vec![5, 3], vec![2, 4]];
    let errors: Vec<String> = std::thread::scope(|scope| {
        let hs: Vec<_> = comms
            .iter()
            .zip(&shapes)
            .map(|(c, s)| scope.spawn(move || ShardLayout::exchange(c, s, DType::F64, 0)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap().unwrap_err().to_string())
            .collect()
    });
    assert!(errors.iter().all(|e| e == &errors[0]), "{errors:?}");
    assert!(errors[0].contains("rank 2: (2, 4) f64"), "{}", errors[0]);
    assert!(errors[0].contains("do not fit together"), "{}", errors[0]);
}

#[test]
fn a_nan_on_one_process_stops_every_process() {
    let mut x = ArrayD::from_shape_fn(IxDyn(&[6, 4]), |i| (i[0] * 4 + i[1]) as f64 - 7.5);
    x[[5, 2]] = f64::NAN;
    for axis in [0, 1] {
        let ext = if axis == 0 {
            vec![2, 2, 2]
        } else {
            vec![1, 2, 1]
        };
        let results = sharded(
            "l1 over dim0 of l2 over dim1",
            &x,
            axis,
            &ext,
            RadiusTarget::Radius(1.0),
            true,
        );
        let msgs: Vec<String> = results
            .into_iter()
            .map(|r| r.map(|_| ()).unwrap_err().to_string())
            .collect();
        let nan_rank = if axis == 0 { 2 } else { 1 };
        for (r, m) in msgs.iter().enumerate() {
            if r == nan_rank {
                assert!(m.contains("NaN"), "rank {r}: {m}");
            } else {
                assert!(m.contains("another process failed"), "rank {r}: {m}");
            }
        }
    }
}

#[test]
fn an_exact_spec_is_refused_on_every_process() {
    let x = ArrayD::from_shape_fn(IxDyn(&[4, 3]), |i| (i[0] + i[1]) as f64);
    let results = sharded(
        "exact l1 over dim0 of linf over dim1",
        &x,
        0,
        &[2, 2],
        RadiusTarget::Radius(1.0),
        false,
    );
    for r in results {
        let e = r.map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("exact projection"), "{e}");
    }
}

#[test]
fn keep_k_is_global() {
    // 8 rows, sharded by rows over 3 processes: keep the 3 strongest rows of the whole tensor.
    let x = ArrayD::from_shape_fn(IxDyn(&[8, 5]), |i| {
        (((i[0] * 7 + i[1] * 3) % 11) as f64 - 5.0) * (1.0 + 0.1 * i[0] as f64)
    });
    let whole = plan(
        "l1 over dim0 of linf over dim1",
        &TensorInfo::c_order(&[8, 5], DType::F64),
    );
    let exec = Executor::new(Backend::Jit);
    let mut want = ArrayD::<f64>::zeros(IxDyn(&[8, 5]));
    let want_report = exec
        .project_to(
            &whole,
            &x.view(),
            &mut want.view_mut(),
            RadiusTarget::Keep(3),
        )
        .unwrap();
    let results = sharded(
        "l1 over dim0 of linf over dim1",
        &x,
        0,
        &[3, 0, 5],
        RadiusTarget::Keep(3),
        true,
    );
    let parts: Vec<ArrayD<f64>> = results
        .into_iter()
        .map(|r| {
            let (part, report) = r.unwrap();
            assert_eq!(report.survivors, want_report.survivors);
            assert_eq!(report.radius, want_report.radius);
            part
        })
        .collect();
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    assert_eq!(concatenate(Axis(0), &views).unwrap(), want);
}

/// Norms that overflow f64 on the way (sums of squares of entries near 1e305; the whole norms
/// stay finite): every process reduces at its own scale, the processes agree on a common one,
/// and the result is still the single-process projection.
#[test]
fn norms_that_overflow_combine_across_processes() {
    let mut rng = multiproj_runtime::rng::SplitMix64::new(3);
    let values: Vec<f64> = (0..4 * 60)
        .map(|_| (rng.next_f64() * 2.0 - 1.0) * 1.5e305)
        .collect();
    for spec in [
        "l1 over dim0 of linf over dim1",
        "l1 over dim0 of l1 over dim1",
        "l1 over dim0 of l2 over dim1",
        "l2 over dim0 of l1 over dim1",
    ] {
        for (axis, ext) in [(1usize, vec![20usize, 0, 40]), (0, vec![1, 3])] {
            for frac in [0.01, 0.5] {
                check::<f64>(spec, &[4, 60], &values, axis, &ext, frac, true).unwrap();
            }
        }
    }
}
