//! Sharded projections over MPI, checked: run under `mpirun -n P` (tests/mpi.rs does, for P = 2,
//! 3, 4). Every process builds the same deterministic tensors, takes its shard of each, and
//! projects it together with the others; the shards are gathered and rank 0 compares them with
//! the single-process projection of the whole tensor (bit for bit when the innermost norm is
//! linf, to 1e-12 · max|x| otherwise, 1e-6 for f32) and with the whole tensor's report.
//!
//! ```text
//! cargo build --features mpi --example shard_mpi
//! mpirun -n 3 target/debug/examples/shard_mpi check      # every case; exit 1 on a mismatch
//! mpirun -n 3 target/debug/examples/shard_mpi mismatch   # shards that do not fit: each rank prints its error
//! mpirun -n 3 target/debug/examples/shard_mpi die        # rank 1 dies before projecting
//! mpirun -n 2 target/release/examples/shard_mpi bench SPEC ROWS COLS AXIS REPEAT
//!     # times the phases and counts the bytes each process sends and receives (bench/shard_bench.py)
//! ```

use std::cell::Cell;
use std::time::{Duration, Instant};

use multiproj::mpi::MpiComm;
use multiproj::runtime::rng::SplitMix64;
use multiproj::runtime::shard::{Communicator, ReduceOp};
use multiproj::{Element, Projection, RadiusTarget};
use ndarray::{ArrayD, Axis, IxDyn, Slice, concatenate};

const CASES: [(&str, &[usize]); 9] = [
    ("l1 over dim0 of linf over dim1", &[9, 7]),
    ("l1 over dim0 of l1 over dim1", &[6, 13]),
    ("l1 over dim0 of l2 over dim1", &[7, 8]),
    ("l2 over dim0 of l1 over dim1", &[5, 11]),
    ("linf over dim1 of l1 over dim0", &[10, 4]),
    ("l1 over dim1 of linf over dim0", &[12, 6]),
    ("l1 over dim0 of l2 over dim1 of l1 over dim2", &[4, 5, 6]),
    ("l1 over dim0 of linf over dim1 of l2 over dim2", &[5, 3, 7]),
    ("l1 over dim2 of l1 over dims0..1", &[3, 4, 5]),
];

/// Extents of `len` over `p` processes: even, uneven, or with the first and last empty.
fn extents(len: usize, p: usize, kind: usize) -> Vec<usize> {
    match kind {
        0 => (0..p).map(|r| len / p + usize::from(r < len % p)).collect(),
        1 => {
            // Rank r gets about (r + 1) parts.
            let parts: usize = (1..=p).sum();
            let mut e: Vec<usize> = (0..p).map(|r| len * (r + 1) / parts).collect();
            let s: usize = e.iter().sum();
            e[p - 1] += len - s;
            e
        }
        _ => {
            let mut e = vec![0; p];
            if p > 2 {
                e[1..p - 1].copy_from_slice(&extents(len, p - 2, 0));
            } else {
                e[p - 1] = len;
            }
            e
        }
    }
}

fn run_case<T: Element>(
    comm: &MpiComm<'_, mpi::topology::SimpleCommunicator>,
    spec: &str,
    shape: &[usize],
    axis: usize,
    kind: usize,
    frac: f64,
    seed: u64,
) -> Result<(), String> {
    let (rank, p) = (comm.rank(), comm.size());
    let mut rng = SplitMix64::new(seed);
    let n: usize = shape.iter().product();
    let x = ArrayD::from_shape_vec(
        IxDyn(shape),
        (0..n)
            .map(|_| T::from_f64(rng.next_f64() * 8.0 - 4.0))
            .collect(),
    )
    .unwrap();
    let proj = Projection::compile(spec).map_err(|e| e.to_string())?;
    let radius = frac * proj.norm(&x).map_err(|e| e.to_string())?;
    let ext = extents(shape[axis], p, kind);
    let start: usize = ext[..rank].iter().sum();
    let mut mine = x
        .slice_axis(Axis(axis), Slice::from(start..start + ext[rank]))
        .to_owned();
    let report = proj
        .project_shard_in_place(comm, &mut mine, axis, Some(RadiusTarget::Radius(radius)))
        .map_err(|e| format!("rank {rank}: {e}"))?;
    // Gather the shards (as f64) and put them together on every process.
    let flat: Vec<f64> = mine.iter().map(|v| v.to_f64()).collect();
    let all = comm.all_gather(&flat)?;
    let parts: Vec<ArrayD<f64>> = all
        .into_iter()
        .enumerate()
        .map(|(r, v)| {
            let mut s = shape.to_vec();
            s[axis] = ext[r];
            ArrayD::from_shape_vec(IxDyn(&s), v).unwrap()
        })
        .collect();
    if rank != 0 {
        return Ok(());
    }
    let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
    let got = concatenate(Axis(axis), &views).unwrap();
    let (want, want_report) = proj
        .project_to(&x, RadiusTarget::Radius(radius))
        .map_err(|e| e.to_string())?;
    let what = format!(
        "{spec} {shape:?} axis {axis} extents {ext:?} radius {frac}×norm {:?}",
        T::DTYPE
    );
    let linf = proj
        .plan_for(&multiproj::TensorInfo::c_order(shape, T::DTYPE))
        .unwrap()
        .innermost()
        .norm
        == multiproj::Norm::Linf;
    let max = x.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
    let tol = if T::DTYPE == multiproj::DType::F64 {
        1e-12
    } else {
        1e-6
    } * max;
    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        let b = b.to_f64();
        let ok = if linf {
            a.to_bits() == b.to_bits()
        } else {
            (a - b).abs() <= tol
        };
        if !ok {
            return Err(format!("{what}: entry {i}: {a} vs {b}"));
        }
    }
    if (report.zeroed, report.groups) != (want_report.zeroed, want_report.groups)
        || (report.norm_before - want_report.norm_before).abs()
            > 1e-9 * (1.0 + want_report.norm_before)
    {
        return Err(format!("{what}: report {report:?} vs {want_report:?}"));
    }
    Ok(())
}

/// A communicator that counts what goes through it: bytes this process sends and receives
/// (an all-gather sends its values and receives everyone's; an all-reduce, done as a reduce and
/// a broadcast, sends and receives its buffer once each way at most) and the time spent inside
/// the collectives.
struct Counting<'a, C: Communicator> {
    inner: &'a C,
    sent: Cell<usize>,
    received: Cell<usize>,
    calls: Cell<usize>,
    time: Cell<Duration>,
}

impl<C: Communicator> Communicator for Counting<'_, C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn all_gather(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, String> {
        let t = Instant::now();
        let r = self.inner.all_gather(local)?;
        self.time.set(self.time.get() + t.elapsed());
        self.calls.set(self.calls.get() + 1);
        self.sent.set(self.sent.get() + 8 * local.len() + 8);
        let others: usize = r.iter().map(Vec::len).sum::<usize>() - local.len();
        self.received
            .set(self.received.get() + 8 * others + 8 * (self.size() - 1));
        Ok(r)
    }
    fn all_reduce(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), String> {
        let t = Instant::now();
        self.inner.all_reduce(buf, op)?;
        self.time.set(self.time.get() + t.elapsed());
        self.calls.set(self.calls.get() + 1);
        self.sent.set(self.sent.get() + 8 * buf.len());
        self.received.set(self.received.get() + 8 * buf.len());
        Ok(())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times sharded projections of a ROWS × COLS f64 tensor of uniform(−1, 1) values split evenly
/// along AXIS: every phase's median over REPEAT runs (after one untimed), the time inside the
/// collectives, and the bytes sent and received per process and projection. Rank 0 prints one
/// JSON line.
fn bench(comm: &MpiComm<'_, mpi::topology::SimpleCommunicator>, args: &[String]) {
    let spec = &args[0];
    let (rows, cols, axis, repeat): (usize, usize, usize, usize) = (
        args[1].parse().unwrap(),
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
    );
    let (rank, p) = (comm.rank(), comm.size());
    let shape = [rows, cols];
    let n = shape[axis];
    let len = n / p + usize::from(rank < n % p);
    let mut local_shape = shape.to_vec();
    local_shape[axis] = len;
    let mut rng = SplitMix64::new(1 + rank as u64);
    let data = ArrayD::from_shape_fn(IxDyn(&local_shape), |_| rng.next_f64() * 2.0 - 1.0);
    let proj = Projection::compile(spec).unwrap();
    // The radius: a tenth of the whole tensor's norm (its norm from a first run at radius ∞).
    let mut x = data.clone();
    let norm = proj
        .project_shard_in_place(comm, &mut x, axis, Some(RadiusTarget::Radius(f64::MAX)))
        .unwrap()
        .norm_before;
    let target = Some(RadiusTarget::Radius(0.1 * norm));
    let (mut totals, mut comm_times) = (Vec::new(), Vec::new());
    let mut stage_times: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let (mut sent, mut received, mut calls) = (0, 0, 0);
    for i in 0..=repeat {
        let mut x = data.clone();
        let counting = Counting {
            inner: comm,
            sent: Cell::new(0),
            received: Cell::new(0),
            calls: Cell::new(0),
            time: Cell::new(Duration::ZERO),
        };
        counting.all_reduce(&mut [0.0], ReduceOp::Max).unwrap(); // start together
        let (s0, r0, c0, t0) = (
            counting.sent.get(),
            counting.received.get(),
            counting.calls.get(),
            counting.time.get(),
        );
        let t = Instant::now();
        let report = proj
            .project_shard_in_place(&counting, &mut x, axis, target)
            .unwrap();
        let total = t.elapsed().as_secs_f64();
        if i == 0 {
            continue;
        }
        totals.push(total);
        comm_times.push((counting.time.get() - t0).as_secs_f64());
        (sent, received, calls) = (
            counting.sent.get() - s0,
            counting.received.get() - r0,
            counting.calls.get() - c0,
        );
        for (stage, d) in &report.stages {
            stage_times
                .entry(stage.name().to_string())
                .or_default()
                .push(d.as_secs_f64());
        }
    }
    // The slowest process's numbers decide: gather every process's medians.
    let mine = [
        median(totals.clone()),
        median(comm_times.clone()),
        sent as f64,
        received as f64,
    ];
    let all = comm.all_gather(&mine).unwrap();
    if rank == 0 {
        let stages: Vec<String> = stage_times
            .iter()
            .map(|(k, v)| format!("\"{k}\": {}", median(v.clone())))
            .collect();
        println!(
            "{{\"spec\": \"{spec}\", \"rows\": {rows}, \"cols\": {cols}, \"axis\": {axis}, \
             \"processes\": {p}, \"repeat\": {repeat}, \"total\": {}, \"comm\": {}, \
             \"bytes_sent_max\": {}, \"bytes_received_max\": {}, \"collectives\": {calls}, \
             \"tensor_bytes\": {}, \"stages_rank0\": {{{}}}}}",
            all.iter().map(|v| v[0]).fold(0.0, f64::max),
            all.iter().map(|v| v[1]).fold(0.0, f64::max),
            all.iter().map(|v| v[2]).fold(0.0, f64::max),
            all.iter().map(|v| v[3]).fold(0.0, f64::max),
            rows * cols * 8,
            stages.join(", ")
        );
    }
}

/// The latency and bandwidth of this MPI's collectives: the median time of an all-reduce (sum:
/// a reduce and a broadcast) and of an all-gather of n doubles per process, for n = 1 … 2^20.
/// Rank 0 prints one JSON line per size.
fn collectives(comm: &MpiComm<'_, mpi::topology::SimpleCommunicator>) {
    let p = comm.size();
    for k in [0u32, 4, 8, 12, 16, 20] {
        let n = 1usize << k;
        let reps = if n > 1 << 16 { 10 } else { 50 };
        let (mut reduce, mut gather) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let mut buf = vec![1.0f64; n];
            comm.all_reduce(&mut [0.0], ReduceOp::Max).unwrap();
            let t = Instant::now();
            comm.all_reduce(&mut buf, ReduceOp::Sum).unwrap();
            reduce.push(t.elapsed().as_secs_f64());
            comm.all_reduce(&mut [0.0], ReduceOp::Max).unwrap();
            let t = Instant::now();
            let _ = comm.all_gather(&buf).unwrap();
            gather.push(t.elapsed().as_secs_f64());
        }
        if comm.rank() == 0 {
            println!(
                "{{\"processes\": {p}, \"doubles\": {n}, \"all_reduce_sum\": {}, \"all_gather\": {}}}",
                median(reduce),
                median(gather)
            );
        }
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "check".into());
    let universe = mpi::initialize().expect("MPI initialized once");
    let world = universe.world();
    let comm = MpiComm::new(&world);
    let (rank, p) = (comm.rank(), comm.size());
    match mode.as_str() {
        "check" => {
            let mut failures = Vec::new();
            let mut count = 0;
            let mut seed = 1;
            for (spec, shape) in CASES {
                for axis in 0..shape.len() {
                    for kind in 0..3 {
                        for frac in [0.0, 0.03, 0.4, 1.5] {
                            seed += 1;
                            count += 2;
                            for r in [
                                run_case::<f64>(&comm, spec, shape, axis, kind, frac, seed),
                                run_case::<f32>(&comm, spec, shape, axis, kind, frac, seed),
                            ] {
                                if let Err(e) = r {
                                    failures.push(e);
                                }
                            }
                        }
                    }
                }
            }
            if rank == 0 {
                for f in &failures {
                    eprintln!("MISMATCH {f}");
                }
                println!(
                    "{count} sharded projections on {p} processes, {} mismatches",
                    failures.len()
                );
                if !failures.is_empty() {
                    std::process::exit(1);
                }
            }
        }
        "mismatch" => {
            let proj = Projection::compile("l1 over dim0 of linf over dim1").unwrap();
            let mut x = ArrayD::<f64>::zeros(IxDyn(&[3, if rank == 1 { 5 } else { 4 }]));
            match proj.project_shard_in_place(&comm, &mut x, 0, Some(RadiusTarget::Radius(1.0))) {
                Ok(_) => println!("rank {rank}: no error"),
                Err(e) => println!("rank {rank}: {e}"),
            }
        }
        "collectives" => collectives(&comm),
        "bench" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            bench(&comm, &args);
        }
        "die" => {
            let proj = Projection::compile("l1 over dim0 of linf over dim1").unwrap();
            let mut x = ArrayD::<f64>::ones(IxDyn(&[4, 4]));
            if rank == 1 {
                std::process::abort();
            }
            let r = proj.project_shard_in_place(&comm, &mut x, 0, Some(RadiusTarget::Radius(1.0)));
            println!("rank {rank}: {r:?}");
        }
        other => {
            eprintln!("unknown mode {other}: check, mismatch or die");
            std::process::exit(2);
        }
    }
}
