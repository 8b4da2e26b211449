//! Writing results to stdout. A closed pipe (`multiproj explain … | head`) ends the output
//! quietly instead of panicking like `println!` would; any other write error is an I/O failure.

use std::io::{self, Write};

use crate::diagnostics::{CliError, Failure};

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(CliError::new(Failure::Data, StdoutError { source })),
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not write to standard output")]
#[diagnostic(code(multiproj::io))]
struct StdoutError {
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
