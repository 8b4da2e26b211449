//! `multiproj bench SPEC --shape S …`: times a projection on random data, and
//! `multiproj bench --probe`: measures the memory bandwidth the projection is held against.
//!
//! Everything that can be judged without data is judged first (backend, spec, radius choice,
//! shape), so bad arguments fail fast with exit code 2. Then the data is generated
//! (`data`), the radius fixed (given, a fraction of the norm, or searched for a fraction of
//! zeroed groups: all untimed), and the projection run `--warmup` times untimed and `--repeat`
//! times timed. Only the call to the runtime is timed: the out-of-place output is allocated and
//! its pages touched beforehand, and in place the data is restored from a copy before each run.
//!
//! **Bytes moved** is a model of the traffic a pass structure must cause, not a measurement:
//! - reduce reads the whole tensor;
//! - threshold (innermost l1 only) reads the groups that are shrunk (`projected` in the report),
//!   not the whole tensor — a backend that reads more is slower than the model, by design;
//! - apply, out of place, reads and writes every group that is kept or projected, and only
//!   writes the zeroed ones; in place it skips kept groups, reads and writes projected ones and
//!   only writes zeroed ones.
//!
//! The apply pass is counted by cache lines of 64 bytes, in memory order, since memory moves
//! whole lines: a line only written must hold nothing but zeroed groups' elements, and a line
//! skipped in place nothing but kept ones; any other line is read and written. For groups as
//! rows (each group whole lines) that is the rule above. For groups across the contiguous axis
//! (columns of a C-order matrix), a line holds eight to thirty-two groups, so nearly every line
//! is read and written whatever the groups became: an implementation that skipped reading the
//! zeroed columns would still have their lines read, by the cache, to write part of them.
//!
//! Bytes are counted as the probe counts them (read plus written). The floor is the time those
//! bytes take at the probe's rates: read-only bytes at the read rate, read-and-written bytes at
//! the read+write rate, written-only bytes at the write rate.

mod data;
mod probe;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use serde_json::{Map, Value, json};

use multiproj_compiler::{DType, Norm, Order, Plan};
use multiproj_grammar::Spec;
use multiproj_runtime::npy::{NpyInput, TensorView};
use multiproj_runtime::solve::{Aggregates, GroupAction};
use multiproj_runtime::{Backend, DataError, Element, Report, Stage};

use crate::args::BenchArgs;
use crate::commands::{read_spec, shaped_tensor, with_threads};
use crate::diagnostics::{CliError, Failure};
use crate::output::{self, shape_text};
use crate::stats::backend_text;

use self::probe::Bandwidth;

pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    if args.probe {
        let bw = with_threads(args.threads, || probe::measure(args.size_mib, args.repeat))?;
        let text = if args.json {
            format!("{}\n", bw.json())
        } else {
            bw.human()
        };
        return output::print(&text);
    }
    let setup = Setup::from_args(args)?;
    let result = with_threads(args.threads, || setup.run())??;
    let text = if args.json {
        format!("{}\n", result.json())
    } else {
        result.human()
    };
    output::print(&text)
}

/// How the radius is chosen.
#[derive(Clone, Copy, Debug)]
enum RadiusChoice {
    /// Given, in the spec or with `--radius`.
    Fixed(f64),
    /// `--radius-frac F`: F times the data's multi-level norm.
    FracOfNorm(f64),
    /// `--zero-frac Z`: the radius that zeroes a fraction Z of the innermost groups.
    ZeroFrac(f64),
}

/// Everything decided before any data exists.
struct Setup<'a> {
    args: &'a BenchArgs,
    spec: Spec,
    plan: Plan,
    order: Order,
    backend: Backend,
    radius: RadiusChoice,
}

impl<'a> Setup<'a> {
    fn from_args(args: &'a BenchArgs) -> Result<Self, CliError> {
        let backend = match args.backend.as_deref() {
            None => Backend::default(),
            Some(name) => name.parse::<Backend>().map_err(|e| {
                CliError::usage(
                    e.to_string(),
                    Some("`--backend interp` is always available"),
                )
            })?,
        };
        // clap requires both unless --probe, which returned earlier.
        let Some(text) = &args.spec else {
            return Err(CliError::usage(
                "bench needs a SPEC and a --shape or --input (or --probe)",
                None,
            ));
        };
        let proj = read_spec(text)?;
        let spec = proj.spec().clone();
        let in_spec = spec.radius.as_ref();
        if in_spec.is_some() && (args.radius_frac.is_some() || args.zero_frac.is_some()) {
            return Err(CliError::usage(
                "the spec fixes the radius (`<= R`), so --radius-frac and --zero-frac cannot \
                 choose it",
                Some("remove `<= R` from the spec, or leave out --radius-frac and --zero-frac"),
            ));
        }
        let radius = match (args.radius, args.radius_frac, args.zero_frac) {
            (_, Some(f), _) => {
                if !(f.is_finite() && f >= 0.0) {
                    return Err(CliError::usage(
                        format!("--radius-frac must be a finite number ≥ 0, not {f}"),
                        Some("e.g. --radius-frac 0.25 for a quarter of the data's norm"),
                    ));
                }
                RadiusChoice::FracOfNorm(f)
            }
            (_, _, Some(z)) => {
                if !(0.0..=1.0).contains(&z) {
                    return Err(CliError::usage(
                        format!("--zero-frac must be between 0 and 1, not {z}"),
                        Some("e.g. --zero-frac 0.95 to zero 95% of the groups"),
                    ));
                }
                RadiusChoice::ZeroFrac(z)
            }
            (r, None, None) => RadiusChoice::Fixed(multiproj_compiler::resolve_radius(
                &spec.source,
                in_spec,
                r,
            )?),
        };
        let (tensor, order) = match (&args.input, &args.shape) {
            (Some(path), _) => {
                let file = NpyInput::open(path)?;
                (file.info(), file.order())
            }
            (None, Some(shape)) => {
                let order = Order::from(args.order);
                (
                    shaped_tensor(&shape.0, DType::from(args.dtype), order)?,
                    order,
                )
            }
            (None, None) => {
                return Err(CliError::usage("bench needs a --shape or an --input", None));
            }
        };
        let plan = Arc::unwrap_or_clone(proj.plan_for(&tensor)?);
        check_memory(&plan)?;
        Ok(Setup {
            args,
            spec,
            plan,
            order,
            backend,
            radius,
        })
    }

    fn run(&self) -> Result<Outcome, CliError> {
        let floor = self
            .args
            .probe_floor
            .then(|| probe::measure(self.args.size_mib, 5));
        match self.plan.tensor().dtype {
            DType::F16 => self.run_typed::<multiproj_runtime::half::f16>(floor),
            DType::BF16 => self.run_typed::<multiproj_runtime::half::bf16>(floor),
            DType::F32 => self.run_typed::<f32>(floor),
            DType::F64 => self.run_typed::<f64>(floor),
        }
    }

    fn run_typed<T: Element>(&self, probe: Option<Bandwidth>) -> Result<Outcome, CliError> {
        let plan = &self.plan;
        let x: ArrayD<T> = match &self.args.input {
            Some(path) => from_file(path, plan)?,
            None => data::generate(plan, self.order, self.args.seed),
        };
        let data_err = |e: DataError| CliError::new(failure_of(&e), e);
        let (radius, norm) = match self.radius {
            RadiusChoice::Fixed(r) => (r, None),
            RadiusChoice::FracOfNorm(f) => {
                let norm =
                    multiproj_runtime::norm(plan, &x.view(), self.backend).map_err(data_err)?;
                (f * norm, Some(norm))
            }
            RadiusChoice::ZeroFrac(z) => {
                let inner = multiproj_runtime::interp::reduce(plan, &x.view()).map_err(data_err)?;
                let agg = Aggregates::reduce_up(plan, inner);
                (radius_for_zero_frac(plan, &agg, z), Some(agg.norm()))
            }
        };

        let mut runs: Vec<(Duration, Report)> = Vec::with_capacity(self.args.repeat);
        let result = if self.args.in_place {
            // The copy the projection overwrites; restored from `x` before every run.
            let mut work = x.clone();
            for i in 0..self.args.warmup + self.args.repeat {
                restore(&mut work, &x);
                let start = Instant::now();
                let report = multiproj_runtime::project_in_place(
                    plan,
                    &mut work.view_mut(),
                    radius,
                    self.backend,
                )
                .map_err(data_err)?;
                let t = start.elapsed();
                if i >= self.args.warmup {
                    runs.push((t, report));
                }
            }
            work
        } else {
            // A clone has the input's layout, and copying into it has touched every page.
            let mut out = x.clone();
            for i in 0..self.args.warmup + self.args.repeat {
                let start = Instant::now();
                let report = multiproj_runtime::project(
                    plan,
                    &x.view(),
                    &mut out.view_mut(),
                    radius,
                    self.backend,
                )
                .map_err(data_err)?;
                let t = start.elapsed();
                if i >= self.args.warmup {
                    runs.push((t, report));
                }
            }
            out
        };
        let (Some(xs), Some(ys)) = (x.as_slice_memory_order(), result.as_slice_memory_order())
        else {
            return Err(CliError::new(
                Failure::Internal,
                DataError::Internal("the benchmark's tensors are not contiguous in memory".into()),
            ));
        };
        let fates = observed_fates(plan, x.strides(), xs, ys);
        let traffic = Traffic::model(plan, x.strides(), &fates, self.args.in_place);
        Ok(Outcome::new(self, runs, radius, norm, probe, traffic))
    }
}

fn failure_of(e: &DataError) -> Failure {
    match e {
        DataError::Internal(_) => Failure::Internal,
        _ => Failure::Data,
    }
}

/// Copies `src` into `dst` (same layout), as one flat copy when both are dense.
fn restore<T: Element>(dst: &mut ArrayD<T>, src: &ArrayD<T>) {
    match (dst.as_slice_memory_order_mut(), src.as_slice_memory_order()) {
        (Some(d), Some(s)) if d.len() == s.len() => d.copy_from_slice(s),
        _ => dst.assign(src),
    }
}

/// The radius at which about a fraction `z` of the innermost groups is zeroed. The number of
/// zeroed groups never grows with the radius (every level's projection is monotone in its
/// radius), so a bisection on the aggregates finds it; no data is read.
/// The data of the .npy file at `path`, in memory, with the layout `plan` was made for (the
/// file's: dense, in its memory order). Converting between f32 and f64 cannot happen: the plan
/// was made for the file's dtype.
fn from_file<T: Element>(path: &std::path::Path, plan: &Plan) -> Result<ArrayD<T>, CliError> {
    let file = NpyInput::open(path)?;
    let mut x = multiproj_runtime::verify::alloc_output::<T>(plan);
    match file.view() {
        TensorView::F16(v) => x.zip_mut_with(&v, |o, &i| *o = T::from_f64(f64::from(i))),
        TensorView::BF16(v) => x.zip_mut_with(&v, |o, &i| *o = T::from_f64(f64::from(i))),
        TensorView::F32(v) => x.zip_mut_with(&v, |o, &i| *o = T::from_f64(f64::from(i))),
        TensorView::F64(v) => x.zip_mut_with(&v, |o, &i| *o = T::from_f64(i)),
    }
    Ok(x)
}

fn radius_for_zero_frac(plan: &Plan, agg: &Aggregates, z: f64) -> f64 {
    let target = (z * plan.groups() as f64).round() as usize;
    let zeros = |r: f64| {
        let radii = agg.solve(plan, r);
        agg.actions(plan, &radii)
            .iter()
            .filter(|a| matches!(a, GroupAction::Zero))
            .count()
    };
    let (mut lo, mut hi) = (0.0, agg.norm());
    // Invariant: zeros(hi) ≤ target. 64 halvings reach the resolution of an f64.
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if zeros(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Refuses a tensor that would not fit in memory twice over (data and output, or data and its
/// working copy), before trying to allocate it. Only on systems that say what is available.
fn check_memory(plan: &Plan) -> Result<(), CliError> {
    let too_large = || {
        CliError::new(
            Failure::Data,
            DataError::TooLarge {
                what: "the benchmark tensor".into(),
                shape: plan.tensor().shape.clone(),
            },
        )
    };
    let bytes = plan
        .tensor()
        .shape
        .iter()
        .try_fold(plan.tensor().dtype.size(), |acc, &n| acc.checked_mul(n))
        .and_then(|b| b.checked_mul(2))
        .ok_or_else(too_large)?;
    if let Some(available) = available_memory()
        && bytes as u64 > available
    {
        return Err(CliError::usage(
            format!(
                "a tensor of shape {} needs {:.1} GiB (data and output), but only {:.1} GiB of \
                 memory is available",
                shape_text(&plan.tensor().shape),
                bytes as f64 / GIB,
                available as f64 / GIB
            ),
            Some("pass a smaller --shape, or f32 with --dtype f32"),
        ));
    }
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

/// `MemAvailable` from /proc/meminfo, in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The traffic model of the module docs, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Traffic {
    /// Bytes only read (reduce, threshold).
    read: u64,
    /// Bytes read and then written by the apply pass, counted once (they move twice).
    read_write: u64,
    /// Bytes only written (zeroed groups).
    write: u64,
}

/// What the apply pass does to one innermost group, for the traffic model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Kept,
    Zeroed,
    Projected,
}

impl Fate {
    /// Its bit in a cache line's record of what its elements' groups became.
    fn bit(self) -> u8 {
        match self {
            Fate::Kept => 1,
            Fate::Zeroed => 2,
            Fate::Projected => 4,
        }
    }
}

/// Bytes per cache line, the unit memory moves in.
const LINE: u64 = 64;

impl Traffic {
    /// The model of the module docs for a tensor of the plan's shape laid out with `strides`
    /// (in elements, as ndarray gives them), whose innermost groups became `fates`.
    fn model(plan: &Plan, strides: &[isize], fates: &[Fate], in_place: bool) -> Traffic {
        let elem = plan.tensor().dtype.size() as u64;
        let group = plan.group_len() as u64 * elem;
        let all = plan.tensor().len() as u64 * elem;
        let projected = fates.iter().filter(|&&f| f == Fate::Projected).count() as u64;
        let threshold = if plan.innermost().norm == Norm::L1 {
            projected * group
        } else {
            0
        };
        let mut t = Traffic {
            read: all + threshold,
            read_write: 0,
            write: 0,
        };
        for (bytes, seen) in line_fates(plan, strides, fates) {
            if seen == Fate::Zeroed.bit() {
                t.write += bytes;
            } else if !(in_place && seen == Fate::Kept.bit()) {
                t.read_write += bytes;
            }
        }
        t
    }

    fn bytes(self) -> u64 {
        self.read + 2 * self.read_write + self.write
    }

    /// The time these bytes take at the probe's rates, in ms.
    fn floor_ms(self, bw: &Bandwidth) -> f64 {
        let s = self.read as f64 / (bw.read_gbps * 1e9)
            + 2.0 * self.read_write as f64 / (bw.copy_gbps * 1e9)
            + self.write as f64 / (bw.write_gbps * 1e9);
        s * 1e3
    }
}

/// Visits every element of a tensor of the plan's shape laid out with `strides` (in elements,
/// as ndarray gives them) with its offset from the lowest element (its index in memory order)
/// and its innermost group.
fn for_each_element(plan: &Plan, strides: &[isize], mut f: impl FnMut(usize, usize)) {
    let shape = &plan.tensor().shape;
    if shape.contains(&0) {
        return;
    }
    // Axes with a negative stride start at their far end.
    let base: isize = shape
        .iter()
        .zip(strides)
        .map(|(&n, &s)| if s < 0 { -s * (n as isize - 1) } else { 0 })
        .sum();
    let gstrides = plan.group_strides();
    // An odometer over the logical indices, the last axis fastest, carrying the offset and the
    // group.
    let mut idx = vec![0usize; shape.len()];
    let (mut off, mut g) = (base, 0usize);
    for _ in 0..plan.tensor().len() {
        f(off as usize, g);
        for axis in (0..shape.len()).rev() {
            idx[axis] += 1;
            off += strides[axis];
            g += gstrides[axis];
            if idx[axis] < shape[axis] {
                break;
            }
            off -= strides[axis] * shape[axis] as isize;
            g -= gstrides[axis] * shape[axis];
            idx[axis] = 0;
        }
    }
}

/// What became of every innermost group, read off the input and the result (both in memory
/// order, laid out with `strides`): kept if every element is unchanged, zeroed if every element
/// is now zero, projected otherwise.
fn observed_fates<T: Element>(plan: &Plan, strides: &[isize], x: &[T], y: &[T]) -> Vec<Fate> {
    let mut changed = vec![false; plan.groups()];
    let mut nonzero = vec![false; plan.groups()];
    for_each_element(plan, strides, |off, g| {
        let (a, b) = (x[off].to_f64(), y[off].to_f64());
        changed[g] |= a.to_bits() != b.to_bits();
        nonzero[g] |= b != 0.0;
    });
    changed
        .iter()
        .zip(&nonzero)
        .map(|(&c, &n)| match (c, n) {
            (false, _) => Fate::Kept,
            (true, false) => Fate::Zeroed,
            (true, true) => Fate::Projected,
        })
        .collect()
}

/// For every cache line the tensor's elements occupy (from its lowest address, taken as the
/// start of a line), the bytes of elements in it and the [`Fate::bit`]s of their groups, OR-ed.
fn line_fates(plan: &Plan, strides: &[isize], fates: &[Fate]) -> Vec<(u64, u8)> {
    let elem = plan.tensor().dtype.size() as u64;
    let per_line = (LINE / elem).max(1) as usize;
    let span = plan
        .tensor()
        .shape
        .iter()
        .zip(strides)
        .map(|(&n, &s)| s.unsigned_abs() * n.saturating_sub(1))
        .sum::<usize>()
        + 1;
    let mut lines = vec![(0u64, 0u8); span.div_ceil(per_line)];
    for_each_element(plan, strides, |off, g| {
        let line = &mut lines[off / per_line];
        line.0 += elem;
        line.1 |= fates[g].bit();
    });
    lines.retain(|&(bytes, _)| bytes > 0);
    lines
}

/// What a benchmark found.
struct Outcome {
    spec: String,
    dtype: DType,
    shape: Vec<usize>,
    order: Order,
    backend: Backend,
    threads: usize,
    in_place: bool,
    seed: u64,
    /// Where the data came from: the random distribution, or the `--input` file.
    data: String,
    warmup: usize,
    innermost: Norm,
    radius: f64,
    /// The multi-level norm of the data, when it was computed to choose the radius.
    norm: Option<f64>,
    /// The last run's report (the counts are the same in every run).
    report: Report,
    times_ms: Vec<f64>,
    /// Median time of each stage, in the order the stages ran.
    stages: Vec<(Stage, f64)>,
    traffic: Traffic,
    probe: Option<Bandwidth>,
}

fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

impl Outcome {
    fn new(
        setup: &Setup<'_>,
        runs: Vec<(Duration, Report)>,
        radius: f64,
        norm: Option<f64>,
        probe: Option<Bandwidth>,
        traffic: Traffic,
    ) -> Outcome {
        let times_ms: Vec<f64> = runs.iter().map(|(t, _)| ms(*t)).collect();
        let mut stages: Vec<(Stage, f64)> = Vec::new();
        if let Some((_, first)) = runs.first() {
            for &(stage, _) in &first.stages {
                let times: Vec<f64> = runs
                    .iter()
                    .filter_map(|(_, r)| r.time_of(stage))
                    .map(ms)
                    .collect();
                stages.push((stage, median(&times)));
            }
        }
        let report = runs
            .into_iter()
            .last()
            .map(|(_, r)| r)
            .expect("--repeat is at least 1");
        Outcome {
            spec: setup.spec.canonical(),
            dtype: setup.plan.tensor().dtype,
            shape: setup.plan.tensor().shape.clone(),
            order: setup.order,
            backend: setup.backend,
            threads: rayon::current_num_threads(),
            in_place: setup.args.in_place,
            seed: setup.args.seed,
            data: match &setup.args.input {
                Some(path) => format!("the file '{}'", path.display()),
                None => data::DISTRIBUTION.to_string(),
            },
            warmup: setup.args.warmup,
            innermost: setup.plan.innermost().norm,
            radius,
            norm,
            report,
            times_ms,
            stages,
            traffic,
            probe,
        }
    }

    fn median_ms(&self) -> f64 {
        median(&self.times_ms)
    }

    fn min_ms(&self) -> f64 {
        self.times_ms.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max_ms(&self) -> f64 {
        self.times_ms.iter().copied().fold(0.0, f64::max)
    }

    fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    fn gbps(&self) -> f64 {
        self.traffic.bytes() as f64 / (self.median_ms() * 1e-3) / 1e9
    }

    fn floor_ms(&self) -> Option<f64> {
        self.probe.as_ref().map(|bw| self.traffic.floor_ms(bw))
    }

    fn json(&self) -> Value {
        let stages: Map<String, Value> = self
            .stages
            .iter()
            .map(|(stage, t)| (stage.name().to_owned(), json!(t)))
            .collect();
        let r = &self.report;
        let mut v = json!({
            "spec": self.spec,
            "dtype": self.dtype.to_string(),
            "shape": self.shape,
            "order": self.order.to_string(),
            "elements": self.elements(),
            "backend": self.backend.name(),
            "threads": self.threads,
            "in_place": self.in_place,
            "seed": self.seed,
            "data": self.data,
            "radius": self.radius,
            "norm": self.norm.unwrap_or(r.norm_before),
            "radius_frac": self.radius / self.norm.unwrap_or(r.norm_before),
            "groups": r.groups,
            "zero_groups": r.zeroed,
            "projected": r.projected,
            "projected_as": crate::stats::projected_verb(self.innermost),
            "untouched": r.untouched,
            "warmup": self.warmup,
            "repeat": self.times_ms.len(),
            "times_ms": self.times_ms,
            "median_ms": self.median_ms(),
            "min_ms": self.min_ms(),
            "max_ms": self.max_ms(),
            "ns_per_element": self.median_ms() * 1e6 / self.elements() as f64,
            "stages": stages,
            "bytes_moved": self.traffic.bytes(),
            "bytes_read_only": self.traffic.read,
            "bytes_read_write": self.traffic.read_write,
            "bytes_write_only": self.traffic.write,
            "gbps": self.gbps(),
        });
        if let (Some(bw), Some(floor), Some(obj)) =
            (&self.probe, self.floor_ms(), v.as_object_mut())
        {
            obj.insert("probe".into(), bw.json());
            obj.insert("floor_ms".into(), json!(floor));
            obj.insert("ratio_to_floor".into(), json!(self.median_ms() / floor));
        }
        v
    }

    fn human(&self) -> String {
        let r = &self.report;
        let mut out = String::new();
        let mut line = |name: &str, value: String| {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "{name:<15}{value}");
        };
        let bytes_of_data = self.elements() * self.dtype.size();
        line("spec", self.spec.clone());
        line(
            "data",
            format!(
                "{}, shape {}, {} order, {} elements ({:.1} MiB); {}",
                self.dtype,
                shape_text(&self.shape),
                self.order,
                self.elements(),
                bytes_of_data as f64 / MIB,
                if self.data == data::DISTRIBUTION {
                    format!("seed {}", self.seed)
                } else {
                    self.data.clone()
                }
            ),
        );
        line("backend", backend_text(self.backend, self.threads));
        let radius = match self.norm {
            Some(n) => format!("{} ({:.4} × norm {})", self.radius, self.radius / n, n),
            None => self.radius.to_string(),
        };
        line("radius", radius);
        line(
            "groups",
            format!(
                "{} total: {} zeroed, {} {}, {} untouched",
                r.groups,
                r.zeroed,
                r.projected,
                crate::stats::projected_verb(self.innermost),
                r.untouched
            ),
        );
        line(
            "runs",
            format!(
                "{} timed after {} warm-up, {}",
                self.times_ms.len(),
                self.warmup,
                if self.in_place {
                    "in place (data restored before each run, untimed)"
                } else {
                    "out of place into a preallocated output"
                }
            ),
        );
        line(
            "time",
            format!(
                "median {:.3} ms, min {:.3} ms, max {:.3} ms; {:.3} ns per element",
                self.median_ms(),
                self.min_ms(),
                self.max_ms(),
                self.median_ms() * 1e6 / self.elements() as f64
            ),
        );
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|(name, t)| format!("{name} {t:.3} ms"))
            .collect();
        line("stages", format!("{} (medians)", stages.join(", ")));
        let t = self.traffic;
        line(
            "bytes moved",
            format!(
                "{:.1} MiB: {:.1} MiB read only, {:.1} MiB read and written, {:.1} MiB written only",
                t.bytes() as f64 / MIB,
                t.read as f64 / MIB,
                t.read_write as f64 / MIB,
                t.write as f64 / MIB
            ),
        );
        line("throughput", format!("{:.2} GB/s", self.gbps()));
        if let (Some(bw), Some(floor)) = (&self.probe, self.floor_ms()) {
            line(
                "floor",
                format!(
                    "{floor:.3} ms at {:.2} GB/s read, {:.2} GB/s read+write, {:.2} GB/s write; \
                     median is {:.2}× the floor",
                    bw.read_gbps,
                    bw.copy_gbps,
                    bw.write_gbps,
                    self.median_ms() / floor
                ),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiproj_compiler::TensorInfo;

    fn plan(spec: &str, shape: &[usize]) -> Plan {
        let spec = multiproj_grammar::parse(spec).unwrap();
        let tensor = TensorInfo::c_order(shape, DType::F32);
        multiproj_compiler::plan(&multiproj_compiler::check(&spec, &tensor).unwrap())
    }

    /// `n` fates: the first `zeroed` zeroed, the next `projected` projected, the rest kept.
    fn fates(n: usize, zeroed: usize, projected: usize) -> Vec<Fate> {
        (0..n)
            .map(|g| {
                if g < zeroed {
                    Fate::Zeroed
                } else if g < zeroed + projected {
                    Fate::Projected
                } else {
                    Fate::Kept
                }
            })
            .collect()
    }

    #[test]
    fn traffic_of_the_bilevel_projection() {
        // 10 rows of 16 f32 = one cache line per row; 5 zeroed, 3 clipped, 2 untouched.
        let p = plan("l1 over dim0 of linf over dim1", &[10, 16]);
        let f = fates(10, 5, 3);
        let out = Traffic::model(&p, &[16, 1], &f, false);
        assert_eq!(
            out,
            Traffic {
                read: 640,
                read_write: 320,
                write: 320
            }
        );
        assert_eq!(out.bytes(), 640 + 640 + 320);
        let inp = Traffic::model(&p, &[16, 1], &f, true);
        assert_eq!(inp.read_write, 192);
        assert_eq!(inp.bytes(), 640 + 384 + 320);
    }

    #[test]
    fn traffic_counts_whole_cache_lines() {
        // Rows of 4 f32 share lines, four rows a line: a line is only written when its four
        // rows are all zeroed, and skipped in place when they are all kept.
        let p = plan("l1 over dim0 of linf over dim1", &[12, 4]);
        let f = fates(12, 6, 2);
        // Lines: rows 0-3 zeroed; rows 4-5 zeroed, 6-7 projected; rows 8-11 kept.
        let out = Traffic::model(&p, &[4, 1], &f, false);
        assert_eq!((out.read, out.read_write, out.write), (192, 128, 64));
        let inp = Traffic::model(&p, &[4, 1], &f, true);
        assert_eq!((inp.read_write, inp.write), (64, 64));
    }

    #[test]
    fn traffic_of_column_groups_reads_every_mixed_line() {
        // 4 rows of 16 f32 (a line each), groups as columns: half the columns zeroed, half kept.
        let p = plan("l1 over dim1 of linf over dim0", &[4, 16]);
        let half: Vec<Fate> = (0..16)
            .map(|g| if g % 2 == 0 { Fate::Zeroed } else { Fate::Kept })
            .collect();
        let out = Traffic::model(&p, &[16, 1], &half, false);
        assert_eq!((out.read, out.read_write, out.write), (256, 256, 0));
        let inp = Traffic::model(&p, &[16, 1], &half, true);
        assert_eq!((inp.read_write, inp.write), (256, 0));
        // Every column zeroed: every line only written; every column kept: in place, nothing.
        let zero = Traffic::model(&p, &[16, 1], &[Fate::Zeroed; 16], false);
        assert_eq!((zero.read_write, zero.write), (0, 256));
        let kept = Traffic::model(&p, &[16, 1], &[Fate::Kept; 16], true);
        assert_eq!((kept.read_write, kept.write), (0, 0));
        // The same matrix in Fortran order: four columns a line, so the alternating columns
        // mix every line, and eight zeroed columns side by side fill two lines.
        let f_order = Traffic::model(&p, &[1, 4], &half, false);
        assert_eq!((f_order.read_write, f_order.write), (256, 0));
        let f_order = Traffic::model(&p, &[1, 4], &fates(16, 8, 0), false);
        assert_eq!((f_order.read_write, f_order.write), (128, 128));
    }

    #[test]
    fn traffic_with_an_innermost_l1_reads_shrunk_groups_again() {
        let p = plan("l1 over dim0 of l1 over dim1", &[10, 16]);
        let t = Traffic::model(&p, &[16, 1], &fates(10, 5, 3), false);
        assert_eq!(t.read, 640 + 192);
    }

    #[test]
    fn fates_are_read_off_the_input_and_the_result() {
        // Columns of a 2×3 matrix: kept, zeroed, clipped; and a negative stride on dim1.
        let p = plan("l1 over dim1 of linf over dim0", &[2, 3]);
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = [1.0f32, 0.0, 2.5, 4.0, -0.0, 2.5];
        assert_eq!(
            observed_fates(&p, &[3, 1], &x, &y),
            [Fate::Kept, Fate::Zeroed, Fate::Projected]
        );
        // Stride −1 on dim1: column 0 is the last element of each row in memory.
        assert_eq!(
            observed_fates(&p, &[3, -1], &x, &y),
            [Fate::Projected, Fate::Zeroed, Fate::Kept]
        );
    }

    #[test]
    fn floor_uses_each_rate() {
        let bw = Bandwidth {
            size_mib: 1,
            threads: 1,
            repeat: 1,
            read_gbps: 1.0,
            write_gbps: 2.0,
            copy_gbps: 4.0,
            read_ms: 0.0,
            write_ms: 0.0,
            copy_ms: 0.0,
        };
        let t = Traffic {
            read: 1_000_000,
            read_write: 1_000_000,
            write: 1_000_000,
        };
        // 1 ms + 0.5 ms + 0.5 ms.
        assert!((t.floor_ms(&bw) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn zero_fraction_search() {
        let p = plan("l1 over dim0 of linf over dim1", &[1000, 16]);
        let x = data::generate::<f32>(&p, Order::C, 5);
        let inner = multiproj_runtime::interp::reduce(&p, &x.view()).unwrap();
        let agg = Aggregates::reduce_up(&p, inner);
        for z in [0.5, 0.95] {
            let r = radius_for_zero_frac(&p, &agg, z);
            let radii = agg.solve(&p, r);
            let zeros = agg
                .actions(&p, &radii)
                .iter()
                .filter(|a| matches!(a, GroupAction::Zero))
                .count();
            assert!(zeros.abs_diff((z * 1000.0) as usize) <= 2, "{z}: {zeros}");
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
