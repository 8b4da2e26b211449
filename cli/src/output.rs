//! Writing results to stdout. A closed pipe (`multiproj explain … | head`) ends the output
//! quietly instead of panicking like `println!` would; any other write error (a full disk,
//! `>/dev/full`) is an I/O failure, exit code 1. A report on work already done
//! ([`print_after`]: the statistics of a written output) says that the work stands.

use std::io::{self, Write};

use crate::diagnostics::{CliError, Failure};

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<(), CliError> {
    write_stdout(text).map_err(|source| CliError::new(Failure::Data, StdoutError { source }))
}

/// Writes `text`, a report on work already done, to stdout. If that fails, the error names
/// what was `done` all the same ("'out.npy' was written"), so that nobody mistakes the exit
/// code 1 for a failed run and deletes or redoes a good result.
pub fn print_after(text: &str, done: String) -> Result<(), CliError> {
    write_stdout(text).map_err(|source| CliError::new(Failure::Data, ReportError { done, source }))
}

fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        done => done,
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not write to standard output")]
#[diagnostic(code(multiproj::io))]
struct StdoutError {
    #[source]
    source: io::Error,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not write the statistics to standard output")]
#[diagnostic(code(multiproj::io))]
struct ReportError {
    #[help]
    done: String,
    #[source]
    source: io::Error,
}

/// A shape as `64x48` (a scalar as `scalar`).
pub fn shape_text(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".to_owned();
    }
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}
