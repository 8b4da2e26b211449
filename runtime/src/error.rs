//! [`DataError`]: every way the runtime's data and I/O can fail — a file that cannot be opened or
//! written, a file that is not a usable `.npy` tensor, values the projection cannot take, output
//! views that do not fit — plus [`DataError::Internal`] for broken invariants.
//!
//! Messages name the file and say what is wrong in words a NumPy user recognises; the `help`
//! says what to do about it. The CLI maps every variant to exit code 1 (data/I/O failure); spec
//! and argument errors live in other crates.

use std::io;
use std::path::PathBuf;

use multiproj_compiler::DType;

/// A data or I/O failure of the runtime.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum DataError {
    /// An operating-system call on a file or directory failed. The `io::Error` is the
    /// diagnostic's source, so renderers print it as the cause ("No such file or directory").
    #[error("could not {action} '{}'", .path.display())]
    #[diagnostic(code(multiproj::io))]
    Io {
        path: PathBuf,
        /// What was being attempted, as a verb phrase: "open", "read", "memory-map",
        /// "create a temporary file in", "rename a temporary file onto", ...
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// The file is not an `.npy` file (wrong magic, unparsable header, a directory, ...).
    #[error("'{}' is not a .npy file: {reason}", .path.display())]
    #[diagnostic(
        code(multiproj::npy::not_npy),
        help("multiproj reads NumPy .npy files as written by numpy.save")
    )]
    NotNpy { path: PathBuf, reason: String },

    /// The file is shorter than its header says.
    #[error(
        "'{}' is truncated: its header describes {expected_bytes} bytes but the file has only {actual_bytes}",
        .path.display()
    )]
    #[diagnostic(
        code(multiproj::npy::truncated),
        help("the file was probably cut short while being written or copied; write it again")
    )]
    Truncated {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },

    /// The file is longer than its header says.
    #[error(
        "'{}' has {extra} unexpected bytes after the data its header describes",
        .path.display()
    )]
    #[diagnostic(
        code(multiproj::npy::extra_bytes),
        help("the header and the data disagree; write the array again with numpy.save")
    )]
    ExtraBytes { path: PathBuf, extra: u64 },

    /// The element type is not one multiproj computes on.
    #[error(
        "'{}' has dtype '{descr}'{}; multiproj reads little-endian float64 ('<f8'), float32 ('<f4') and float16 ('<f2')",
        .path.display(),
        endianness_note(.descr)
    )]
    #[diagnostic(
        code(multiproj::npy::unsupported_dtype),
        help("convert it with NumPy first, e.g. np.save(path, arr.astype('<f8'))")
    )]
    UnsupportedDtype {
        path: PathBuf,
        /// The header's `descr`, as written there (`<i8`, `>f8`, `|O`, or a Python literal for
        /// structured types).
        descr: String,
    },

    /// A bfloat16 tensor cannot be written as an `.npy` file: NumPy's format has no type for it.
    #[error("'{}' cannot hold bfloat16 data: the .npy format has no bfloat16 type", .path.display())]
    #[diagnostic(
        code(multiproj::npy::bf16),
        help("write it as float32 (exact), or keep bfloat16 tensors in memory (torch, ml_dtypes)")
    )]
    Bf16NotInNpy { path: PathBuf },

    /// The data does not start at a multiple of the element size, so it cannot be viewed in
    /// place. `numpy.save` always pads the header so that this cannot happen.
    #[error(
        "'{}' is not usable in place: its data starts at byte {offset}, which is not a multiple of {align}",
        .path.display()
    )]
    #[diagnostic(
        code(multiproj::npy::misaligned),
        help("write the array again with numpy.save, which aligns the data")
    )]
    Misaligned {
        path: PathBuf,
        offset: usize,
        align: usize,
    },

    /// A tensor with no elements: there is nothing to project, and a norm of nothing would be a
    /// silent 0.
    #[error("{what} has no elements (shape {shape:?})")]
    #[diagnostic(code(multiproj::empty))]
    Empty {
        /// What the tensor is, e.g. `'weights.npy'` (quoted path) or `the requested tensor`.
        what: String,
        shape: Vec<usize>,
    },

    /// A shape whose element or byte count does not fit this machine's address space.
    #[error("{what} is too large for this machine: shape {shape:?}")]
    #[diagnostic(code(multiproj::too_large))]
    TooLarge { what: String, shape: Vec<usize> },

    /// `--verify`: the memory for a copy of the result to compare could not be allocated (a
    /// `ulimit -v`, a cgroup limit, an exhausted machine).
    #[error(
        "could not allocate {bytes} bytes ({:.1} MiB) of memory for a copy of the result to compare (--verify)",
        *.bytes as f64 / 1048576.0
    )]
    #[diagnostic(
        code(multiproj::verify::out_of_memory),
        help(
            "--verify keeps a copy of the result in memory (two with --in-place); run without --verify, or with more memory"
        )
    )]
    VerifyOutOfMemory { bytes: u64 },

    /// A NaN or infinity in the input: every norm and threshold would be meaningless.
    #[error("the input holds {} at index {index:?}", describe_non_finite(*.value))]
    #[diagnostic(
        code(multiproj::non_finite),
        help(
            "multiproj projects finite tensors; replace or remove NaN and infinite entries first (e.g. np.nan_to_num)"
        )
    )]
    NonFinite {
        /// The multi-index of the first offending element in C (row-major) index order.
        index: Vec<usize>,
        value: f64,
    },

    /// An output view handed to the library has the wrong shape.
    #[error("the output has shape {found:?}, but the result has shape {expected:?}")]
    #[diagnostic(code(multiproj::shape_mismatch))]
    ShapeMismatch {
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// `--verify`: the two backends produced different results.
    #[error(
        "the {primary} and {other} backends disagree at index {index:?}: {primary_value} vs {other_value} (tolerance {tolerance:e})"
    )]
    #[diagnostic(
        code(multiproj::verify),
        help("this is a bug in multiproj; please report it with the spec and the input")
    )]
    BackendsDisagree {
        index: Vec<usize>,
        primary: &'static str,
        other: &'static str,
        primary_value: f64,
        other_value: f64,
        tolerance: f64,
    },

    /// A view does not have the memory layout the plan was made for.
    #[error("the view has strides {found:?}, but the plan was made for strides {expected:?}")]
    #[diagnostic(
        code(multiproj::layout_mismatch),
        help(
            "plan for the view's own layout (`Projection` does this for you), or pass a view with the planned layout"
        )
    )]
    LayoutMismatch {
        expected: Vec<isize>,
        found: Vec<isize>,
    },

    /// An output view handed to the library has the wrong element type.
    #[error("the output has dtype {found}, but the result has dtype {expected}")]
    #[diagnostic(code(multiproj::dtype_mismatch))]
    DTypeMismatch { expected: DType, found: DType },

    /// An input that is not a regular file: a FIFO (reading it would block until a writer
    /// came), a device, a directory.
    #[error("'{}' is {kind}, not a regular file", .path.display())]
    #[diagnostic(
        code(multiproj::not_regular),
        help("multiproj reads .npy tensors from regular files; save the data to a file first")
    )]
    NotRegular { path: PathBuf, kind: &'static str },

    /// An output that must not be written to or replaced (a terminal, a directory, a symbolic
    /// link, a block device …).
    #[error("will not write the output to '{}': {reason}", .path.display())]
    #[diagnostic(code(multiproj::refused_output))]
    RefusedOutput {
        path: PathBuf,
        reason: String,
        #[help]
        help: &'static str,
    },

    /// An in-place target that cannot be replaced without breaking what the user has.
    #[error("will not replace '{}' in place: {reason}", .path.display())]
    #[diagnostic(code(multiproj::in_place))]
    InPlaceRefused {
        path: PathBuf,
        reason: String,
        #[help]
        help: &'static str,
    },

    /// The input file changed size (another process truncated or extended it) while it was
    /// being read.
    #[error("'{}' changed size while being read (from {before} to {after} bytes)", .path.display())]
    #[diagnostic(
        code(multiproj::input_changed),
        help("another process is writing the file; wait for it to finish and run again")
    )]
    InputChanged {
        path: PathBuf,
        before: u64,
        after: u64,
    },

    /// A radius target that is invalid or cannot be met by this data (see
    /// [`crate::target::RadiusTarget`]).
    #[error("{0}")]
    #[diagnostic(code(multiproj::target))]
    BadTarget(String),

    /// Aggregates handed to a stage by its caller do not fit the plan (see
    /// [`crate::stages`]).
    #[error("the aggregates do not fit the plan: {0}")]
    #[diagnostic(code(multiproj::bad_aggregates))]
    BadAggregates(String),

    /// The shards of a sharded projection do not fit together, or another process of it failed
    /// (see [`crate::shard`]). Every process reports the same problem.
    #[error("sharded projection: {0}")]
    #[diagnostic(code(multiproj::shard))]
    Shard(String),

    /// A collective operation of a sharded projection failed (the communicator's own error).
    #[error("sharded projection: the communicator failed: {0}")]
    #[diagnostic(code(multiproj::comm))]
    Comm(String),

    /// An invariant of the runtime does not hold.
    #[error("this is a bug in multiproj: {0}")]
    #[diagnostic(
        code(multiproj::internal),
        help("please report it with the command line and the input's shape and dtype")
    )]
    Internal(String),
}

/// Big-endian floats are the one unsupported dtype with an obvious, lossless fix; say so.
fn endianness_note(descr: &str) -> &'static str {
    match descr {
        ">f8" | ">f4" => ", which is big-endian",
        _ => "",
    }
}

fn describe_non_finite(value: f64) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "+inf"
    } else {
        "-inf"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences() {
        let e = DataError::UnsupportedDtype {
            path: "w.npy".into(),
            descr: "<i8".into(),
        };
        assert_eq!(
            e.to_string(),
            "'w.npy' has dtype '<i8'; multiproj reads little-endian float64 ('<f8'), float32 ('<f4') and float16 ('<f2')"
        );
        let e = DataError::UnsupportedDtype {
            path: "w.npy".into(),
            descr: ">f8".into(),
        };
        assert_eq!(
            e.to_string(),
            "'w.npy' has dtype '>f8', which is big-endian; multiproj reads little-endian float64 ('<f8'), float32 ('<f4') and float16 ('<f2')"
        );
        let e = DataError::NonFinite {
            index: vec![3, 7],
            value: f64::NAN,
        };
        assert_eq!(e.to_string(), "the input holds NaN at index [3, 7]");
        let e = DataError::NonFinite {
            index: vec![0],
            value: f64::NEG_INFINITY,
        };
        assert_eq!(e.to_string(), "the input holds -inf at index [0]");
        let e = DataError::Empty {
            what: "'w.npy'".into(),
            shape: vec![3, 0],
        };
        assert_eq!(e.to_string(), "'w.npy' has no elements (shape [3, 0])");
        let e = DataError::Io {
            path: "out".into(),
            action: "create a temporary file in",
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(e.to_string(), "could not create a temporary file in 'out'");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn every_variant_has_a_code() {
        use miette::Diagnostic;
        let e = DataError::Internal("x".into());
        assert_eq!(
            e.code().map(|c| c.to_string()).as_deref(),
            Some("multiproj::internal")
        );
        assert_eq!(e.to_string(), "this is a bug in multiproj: x");
    }
}
