//! The command line as clap sees it: subcommands, flags, their help texts, and the parsers for
//! values whose syntax clap cannot know (`--shape 64x48`, `--threads N`, at least 1 and at most
//! 4 per core or 64). Anything that needs
//! the spec or a file to judge is left to the commands.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use multiproj_compiler::{DType, Order};

/// The spec language in brief; shown by `multiproj --help`.
const LANGUAGE: &str = "\
Project tensors in .npy files onto the balls of multi-level norms.

A spec names one norm per level of a tree of aggregates, outermost level first:

    spec   := level ( \"of\" level )* ( \"<=\" R )?
    level  := norm \"over\" axes
    norm   := l1 | l2 | linf
    axes   := dimN | dimsA..B (inclusive) | dimsA.. (to the last axis) | dimsA,B,...

The levels' axes must be disjoint and cover every axis of the tensor. The innermost level
reduces each group (e.g. each row) to one number; the next level reduces those, and so on.
Projecting onto the ball of radius R of that multi-level norm zeroes, clips, scales or shrinks
whole groups: structured sparsity in linear time.

Example: `l1 over dim0 of linf over dim1` is the bi-level l1,inf norm of a matrix, the sum
over rows of each row's largest |entry|; projecting a weight matrix onto its ball removes the
weakest rows entirely:

    multiproj project 'l1 over dim0 of linf over dim1' w.npy --radius 1 --output w1.npy --stats";

/// Exit codes, shown after every help text.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a data or I/O failure (unreadable or malformed .npy file, NaN or inf in the data, ...)
  2  a bad spec or bad arguments
  3  an internal error: a bug in multiproj (please report it)";

/// multiproj: project tensors onto multi-level norm balls.
#[derive(Debug, Parser)]
#[command(
    name = "multiproj",
    version,
    about = "Project tensors in .npy files onto multi-level norm balls (l1, l2, linf per level)",
    long_about = LANGUAGE,
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Project a tensor onto the ball of a multi-level norm and write the result.
    #[command(
        long_about = "Project a tensor onto the ball of radius R of a multi-level norm.\n\n\
            The result keeps the input's shape, dtype (f64, f32 or f16) and memory order (C or\n\
            Fortran). It is written to a temporary file next to --output and renamed onto it\n\
            on success: a failed run leaves no output and never touches the input. With\n\
            --in-place the input file is replaced the same way (or, with --in-place=map,\n\
            written through); nothing is written if the data holds NaN or inf.",
        after_help = concat!(
            "Examples:\n",
            "  multiproj project 'l1 over dim0 of linf over dim1' w.npy --radius 1 -o w1.npy\n",
            "  multiproj project 'l1 over dim0 of l2 over dims1.. <= 0.5' w.npy --in-place --json\n\n",
            "Exit codes: 0 success, 1 data or I/O failure, 2 bad spec or arguments, 3 internal error"
        )
    )]
    Project(ProjectArgs),

    /// Print the multi-level norm of a tensor.
    #[command(
        long_about = "Print the multi-level norm of a tensor: the number alone, in shortest \
            round-trip form. A radius in the spec is ignored.",
        after_help = concat!(
            "Example:\n",
            "  multiproj norm 'l1 over dim0 of linf over dim1' w.npy\n\n",
            "Exit codes: 0 success, 1 data or I/O failure, 2 bad spec or arguments, 3 internal error"
        )
    )]
    Norm(NormArgs),

    /// Show how a spec is understood: syntax tree, and with --shape the IR, levels and plan.
    #[command(after_help = concat!(
        "Example:\n",
        "  multiproj explain 'l1 over dim0 of linf over dims1..' --shape 64x48x3 --order f\n\n",
        "Exit codes: 0 success, 2 bad spec or arguments, 3 internal error"
    ))]
    Explain(ExplainArgs),

    /// Check that a spec is well formed and say which tensors it fits.
    #[command(after_help = concat!(
        "Example:\n",
        "  multiproj check 'l1 over dim0 of linf over dim1'\n\n",
        "Exit codes: 0 the spec is valid, 2 it is not, 3 internal error"
    ))]
    Check(CheckArgs),

    /// Time a projection on random data of a given shape, or probe the memory bandwidth.
    #[command(
        long_about = "Time a projection on random data, or measure the memory bandwidth.\n\n\
            With a SPEC: fills a tensor of --shape with deterministic pseudo-random data\n\
            (uniform(-1,1) times a per-group scale, from --seed), runs --warmup untimed\n\
            projections and then --repeat timed ones, and prints the median, min and max time,\n\
            the median of every stage, the bytes the passes must move and the effective GB/s.\n\
            Only the projection is timed: the output is allocated and touched beforehand, and\n\
            with --in-place the data is restored from a copy before every run, untimed.\n\n\
            With --probe: a STREAM-like measurement of this machine's read, write and\n\
            read+write bandwidth, the floor any pass over the data is held against.",
        after_help = concat!(
            "Examples:\n",
            "  multiproj bench 'l1 over dim0 of linf over dim1' --shape 4096x4096 --radius-frac 0.25\n",
            "  multiproj bench 'l1 over dim0 of l2 over dim1' --shape 2048x512 --zero-frac 0.95 --json\n",
            "  multiproj bench --probe --size-mib 512\n\n",
            "Exit codes: 0 success, 1 data failure, 2 bad spec or arguments, 3 internal error"
        )
    )]
    Bench(BenchArgs),

    /// Project a tensor both ways — multi-level and exact — and show how the results differ.
    #[command(
        long_about = "Project a tensor onto the ball of a spec's norm both ways: the multi-level\n\
            projection and the exact Euclidean projection (whichever the spec asks for, with or\n\
            without `exact`). Prints, for each, how far it moved the data (‖Y − X‖₂; the exact\n\
            projection's is the least of any point of the ball), the groups it zeroed, its\n\
            nonzeros and its time, and the distance between the two results. Nothing is written.\n\
            --keep and --sparsity choose the radius for the multi-level projection; the exact one\n\
            runs at that radius.",
        after_help = concat!(
            "Example:\n",
            "  multiproj compare 'l1 over dim0 of linf over dim1' w.npy --radius-frac 0.5\n\n",
            "Exit codes: 0 success, 1 data or I/O failure, 2 bad spec or arguments, 3 internal error"
        )
    )]
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("radius_choice")
        .multiple(false)
        .args(["radius", "keep", "sparsity", "radius_frac"])
))]
pub struct CompareArgs {
    /// The spec, with or without `exact`, e.g. 'l1 over dim0 of linf over dim1'.
    #[arg(value_name = "SPEC")]
    pub spec: String,

    /// The tensor: a .npy file holding little-endian f64, f32 or f16 (read, never written).
    #[arg(value_name = "INPUT.npy")]
    pub input: PathBuf,

    /// The radius of the ball (required unless the spec ends in `<= R` or another option
    /// chooses it).
    #[arg(short, long, value_name = "R", allow_negative_numbers = true)]
    pub radius: Option<f64>,

    /// Choose the radius at which the multi-level projection keeps exactly K top-level groups.
    #[arg(long, value_name = "K")]
    pub keep: Option<usize>,

    /// Choose the radius at which the multi-level projection zeroes this fraction F of the
    /// top-level groups.
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub sparsity: Option<f64>,

    /// The radius as a fraction F ≥ 0 of the data's norm.
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub radius_frac: Option<f64>,

    /// The backend that runs the passes over the data: jit or interp [default: jit].
    #[arg(long, value_name = "BACKEND", value_parser = ["jit", "interp"])]
    pub backend: Option<String>,

    /// Number of threads, from 1 to 4 per core (but up to 64 on any machine) [default: one
    /// per core].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .multiple(false)
        .args(["output", "in_place"])
))]
#[command(group(
    ArgGroup::new("radius_choice")
        .multiple(false)
        .args(["radius", "keep", "sparsity", "radius_frac"])
))]
pub struct ProjectArgs {
    /// The projection spec, e.g. 'l1 over dim0 of linf over dim1' (quote it).
    #[arg(value_name = "SPEC")]
    pub spec: String,

    /// The tensor to project: a .npy file holding little-endian f64, f32 or f16.
    #[arg(value_name = "INPUT.npy")]
    pub input: PathBuf,

    /// Where to write the result: a file (replaced atomically if it exists, keeping its
    /// permissions), `-` for standard output, or a FIFO or character device (written as a
    /// stream). Terminals, directories and symbolic links are refused.
    #[arg(short, long, value_name = "OUT.npy")]
    pub output: Option<PathBuf>,

    /// Replace INPUT.npy with the result. `--in-place` (or `=replace`) writes the result beside
    /// the file and renames it over the file once complete and on disk: an interruption
    /// leaves the old file or the new one, never a mixture (needs a writable directory and
    /// space for a second copy; refuses files with other hard links). `--in-place=map`
    /// writes through the file's memory map instead, touching only groups that change (for
    /// files larger than the free disk): SIGINT, SIGTERM and SIGHUP wait until the write pass
    /// ends, but a crash, SIGKILL or power loss during it leaves the file partly projected.
    /// Both take an advisory lock on the file, so concurrent in-place runs take turns.
    #[arg(
        long,
        value_name = "MODE",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "replace"
    )]
    pub in_place: Option<InPlaceMode>,

    /// Flush the output to the device before renaming it into place (fsync), so that it
    /// survives a crash of the machine. Off by default for --output, whose input survives
    /// anyway; always on for --in-place=replace, which replaces the only copy.
    #[arg(long)]
    pub sync: bool,

    /// The radius of the ball: a finite number ≥ 0. Required unless the spec ends in `<= R`
    /// or the radius is chosen by --keep, --sparsity or --radius-frac.
    #[arg(short, long, value_name = "R", allow_negative_numbers = true)]
    pub radius: Option<f64>,

    /// Choose the largest radius that keeps exactly K top-level groups (the rows, columns or
    /// channels the outermost norm sums over) and sets the others to zero. The top level must
    /// be l1. Ties that make K impossible are an error naming the counts that can be kept.
    #[arg(long, value_name = "K")]
    pub keep: Option<usize>,

    /// Choose the radius that sets this fraction F (0 to 1) of the top-level groups to zero:
    /// --keep of the rest, rounded to whole groups.
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub sparsity: Option<f64>,

    /// The radius as a fraction F ≥ 0 of the data's multi-level norm.
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub radius_frac: Option<f64>,

    /// The backend that runs the passes over the data: the compiled kernels (jit) or the
    /// reference interpreter (interp) [default: jit].
    #[arg(long, value_name = "BACKEND", value_parser = ["jit", "interp"])]
    pub backend: Option<String>,

    /// Number of threads, from 1 to 4 per core (but up to 64 on any machine) [default: one
    /// per core].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// When to show a progress bar on stderr: auto (a terminal and a long run), always, never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,

    /// Run both backends and fail if they disagree (needs the jit backend). Needs memory for
    /// one more copy of the tensor (two when projecting in place); if it cannot be had, the
    /// run fails cleanly and writes nothing.
    #[arg(long)]
    pub verify: bool,

    /// Print statistics: norms before and after, what happened to the groups, nonzeros, time
    /// per stage.
    #[arg(long)]
    pub stats: bool,

    /// Print the statistics as one JSON object on stdout (implies --stats).
    #[arg(long)]
    pub json: bool,

    /// Project a tensor sharded across the processes of an MPI job (run under `mpirun -n P`)
    /// along this axis: `{rank}` in INPUT names each process's shard file, or, without it, every
    /// process takes its slice of the one INPUT; `{rank}` in --output names each process's
    /// output (or --in-place replaces each process's shard file). Needs a multiproj built with
    /// the `mpi` feature.
    #[arg(long, value_name = "AXIS")]
    pub shard_axis: Option<usize>,
}

/// How `--in-place` replaces the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InPlaceMode {
    /// Write beside the file and rename over it when complete (crash-safe).
    Replace,
    /// Write through the file's memory map (no second copy; not crash-safe).
    Map,
}

#[derive(Debug, Args)]
pub struct NormArgs {
    /// The spec whose norm to compute, e.g. 'l1 over dim0 of linf over dim1'.
    #[arg(value_name = "SPEC")]
    pub spec: String,

    /// The tensor: a .npy file holding little-endian f64, f32 or f16.
    #[arg(value_name = "INPUT.npy")]
    pub input: PathBuf,

    /// The backend that runs the reduce pass: the compiled kernels (jit) or the reference
    /// interpreter (interp) [default: jit].
    #[arg(long, value_name = "BACKEND", value_parser = ["jit", "interp"])]
    pub backend: Option<String>,

    /// Number of threads, from 1 to 4 per core (but up to 64 on any machine) [default: one
    /// per core].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// When to show a progress bar on stderr: auto (a terminal and a long run), always, never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,

    /// Print one JSON object: {"norm": …, "spec": …, "shape": …, "dtype": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The spec to explain.
    #[arg(value_name = "SPEC")]
    pub spec: String,

    /// A tensor shape such as 64x48 (extents joined by `x`); shows the IR, the normalized
    /// levels and the plan for it.
    #[arg(long, value_name = "SHAPE", value_parser = parse_shape)]
    pub shape: Option<Shape>,

    /// Element type of the tensor.
    #[arg(long, value_enum, default_value_t = DTypeArg::F64, requires = "shape")]
    pub dtype: DTypeArg,

    /// Memory order of the tensor: c (row-major) or f (Fortran, column-major).
    #[arg(long, value_enum, default_value_t = OrderArg::C, requires = "shape")]
    pub order: OrderArg,

    /// Also show the Cranelift IR of the compiled kernels (needs the jit backend).
    #[arg(long)]
    pub clif: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The spec to check.
    #[arg(value_name = "SPEC")]
    pub spec: String,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("radius_choice")
        .multiple(false)
        .args(["radius", "radius_frac", "zero_frac"])
))]
pub struct BenchArgs {
    /// The projection spec to time, e.g. 'l1 over dim0 of linf over dim1' (not with --probe).
    #[arg(value_name = "SPEC", required_unless_present = "probe")]
    pub spec: Option<String>,

    /// The shape of the random tensor, e.g. 4096x4096.
    #[arg(
        long,
        value_name = "SHAPE",
        value_parser = parse_shape,
        required_unless_present_any = ["probe", "input"]
    )]
    pub shape: Option<Shape>,

    /// Time the projection of this .npy file's data instead of random data: it is read into
    /// memory once (untimed), with its shape, dtype and memory order.
    #[arg(
        long,
        value_name = "FILE.npy",
        conflicts_with_all = ["shape", "seed", "probe"]
    )]
    pub input: Option<std::path::PathBuf>,

    /// Element type of the tensor.
    #[arg(long, value_enum, default_value_t = DTypeArg::F64)]
    pub dtype: DTypeArg,

    /// Memory order of the tensor: c (row-major) or f (Fortran, column-major).
    #[arg(long, value_enum, default_value_t = OrderArg::C)]
    pub order: OrderArg,

    /// The radius of the ball (or fix it in the spec with `<= R`).
    #[arg(short, long, value_name = "R", allow_negative_numbers = true)]
    pub radius: Option<f64>,

    /// The radius as a fraction F of the data's multi-level norm (computed once, untimed).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub radius_frac: Option<f64>,

    /// Choose the radius that zeroes this fraction Z of the innermost groups (searched on the
    /// aggregates, untimed).
    #[arg(long, value_name = "Z", allow_negative_numbers = true)]
    pub zero_frac: Option<f64>,

    /// The backend that runs the passes over the data: jit or interp [default: jit].
    #[arg(long, value_name = "BACKEND")]
    pub backend: Option<String>,

    /// Number of threads, from 1 to 4 per core (but up to 64 on any machine) [default: one
    /// per core].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// Number of timed runs (at least 1).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = parse_repeat)]
    pub repeat: usize,

    /// Number of untimed runs before the timed ones.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warmup: usize,

    /// Seed of the pseudo-random data (splitmix64).
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,

    /// Time the in-place projection (on a fresh copy of the data each run, copy untimed).
    #[arg(long)]
    pub in_place: bool,

    /// Run the bandwidth probe first and print the floor (bytes moved / bandwidth) and the
    /// ratio of the median to it.
    #[arg(long, conflicts_with = "probe")]
    pub probe_floor: bool,

    /// Measure the memory bandwidth instead of timing a projection.
    #[arg(long, conflicts_with_all = ["spec", "shape", "radius", "radius_frac", "zero_frac", "in_place"])]
    pub probe: bool,

    /// Size of each probe buffer in MiB (the probe allocates two); make it several times the
    /// last-level cache.
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = parse_size_mib)]
    pub size_mib: usize,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--progress`: when to draw the progress bar (see [`crate::progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// When stderr is a terminal and the input is at least 256 MiB or the run takes over 0.5 s.
    Auto,
    /// From the start, also when stderr is a file or a pipe.
    Always,
    /// Never.
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    F64,
    F32,
    F16,
    Bf16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> Self {
        match d {
            DTypeArg::F64 => DType::F64,
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::BF16,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    C,
    F,
}

impl From<OrderArg> for Order {
    fn from(o: OrderArg) -> Self {
        match o {
            OrderArg::C => Order::C,
            OrderArg::F => Order::F,
        }
    }
}

/// The extents of `--shape`. A newtype so that clap takes it as one value, not a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape(pub Vec<usize>);

/// The most threads `--threads` accepts: 4 per core, and 64 on any machine. The passes are
/// memory-bound, so more threads than cores only add the cost of starting them (4,000 threads
/// took 25 s on a 5×4 tensor), and an unbounded number can exhaust the system's process ids.
pub fn max_threads() -> usize {
    cores().saturating_mul(4).max(64)
}

/// The cores this process may use (its CPU affinity and cgroup quota included).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `--threads`: a positive integer, at most [`max_threads`].
fn parse_threads(text: &str) -> Result<usize, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a whole number of threads, at least 1".to_owned());
    }
    let max = max_threads();
    match text.parse::<usize>() {
        Ok(0) => Err("the number of threads must be at least 1".to_owned()),
        Ok(n) if n <= max => Ok(n),
        // Too many, or more digits than any number of threads has.
        _ => Err(format!(
            "at most {max} threads are allowed (4 per core of this machine's {}, and never fewer \
             than 64)",
            cores()
        )),
    }
}

/// `--repeat`: a positive integer.
fn parse_repeat(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("at least one timed run is needed".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of runs, at least 1".to_owned()),
    }
}

/// `--size-mib`: a positive number of MiB, at most 1 TiB.
fn parse_size_mib(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=1 << 20).contains(&n) => Ok(n),
        _ => Err("expected a whole number of MiB between 1 and 1048576".to_owned()),
    }
}

/// `--shape`: extents joined by `x`, such as `64x48` or `10x3x3`. Zero extents are syntax the
/// checker rejects with its own message (an empty tensor), so they pass here.
pub(crate) fn parse_shape(text: &str) -> Result<Shape, String> {
    const FORM: &str = "a shape is extents joined by `x`, such as 64x48 or 10x3x3";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the shape is empty; {FORM}"));
    }
    text.split(['x', 'X'])
        .map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("an extent is missing; {FORM}"));
            }
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{part}` is not an extent; {FORM}"));
            }
            part.parse::<usize>()
                .map_err(|_| format!("the extent {part} is too large"))
        })
        .collect::<Result<Vec<usize>, String>>()
        .and_then(|shape| {
            if shape.len() > multiproj_compiler::MAX_RANK {
                Err(format!(
                    "{} axes are too many: a tensor has at most {}",
                    shape.len(),
                    multiproj_compiler::MAX_RANK
                ))
            } else {
                Ok(Shape(shape))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn shapes() {
        assert_eq!(parse_shape("64x48"), Ok(Shape(vec![64, 48])));
        assert_eq!(parse_shape("7"), Ok(Shape(vec![7])));
        assert_eq!(parse_shape("0x3"), Ok(Shape(vec![0, 3])));
        assert!(parse_shape("64xx").is_err());
        assert!(parse_shape("").is_err());
        assert!(parse_shape("a").is_err());
        assert!(parse_shape("-1x2").is_err());
        assert!(parse_shape("99999999999999999999999").is_err());
    }

    #[test]
    fn threads() {
        assert_eq!(parse_threads("4"), Ok(4));
        assert_eq!(parse_threads("64"), Ok(64));
        assert_eq!(parse_threads(&max_threads().to_string()), Ok(max_threads()));
        assert!(parse_threads("0").is_err());
        assert!(parse_threads("-1").is_err());
        assert!(parse_threads("").is_err());
        let too_many = parse_threads(&(max_threads() + 1).to_string()).unwrap_err();
        assert!(too_many.starts_with("at most "), "{too_many}");
        let huge = parse_threads("99999999999999999999999999").unwrap_err();
        assert_eq!(huge, too_many);
    }
}
