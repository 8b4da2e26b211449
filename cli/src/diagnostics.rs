//! How failures reach the user: [`CliError`] pairs a diagnostic with the kind of failure that
//! decides the exit code, and [`render`] draws it with miette — the spec underlined for spec
//! errors, the file named for data errors.
//!
//! Rendering is deterministic when stderr is not a terminal (no colour, a fixed width of 100
//! columns), so that tests can compare it byte for byte; on a terminal it is coloured unless
//! `NO_COLOR` is set.

use std::fmt;
use std::io::IsTerminal;
use std::path::Path;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};
use multiproj_compiler::CheckError;
use multiproj_grammar::{ParseError, ParseErrorKind};
use multiproj_runtime::DataError;

/// The width diagnostics are wrapped to.
const WIDTH: usize = 100;

/// The kind of failure; it decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A data or I/O failure: exit code 1.
    Data,
    /// A bad spec or bad arguments: exit code 2.
    Usage,
    /// A bug in multiproj: exit code 3.
    Internal,
}

impl Failure {
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::Data => 1,
            Failure::Usage => 2,
            Failure::Internal => INTERNAL_EXIT_CODE,
        }
    }
}

/// The exit code of an internal error, including a panic caught at the top.
pub const INTERNAL_EXIT_CODE: u8 = 3;

type BoxedDiagnostic = Box<dyn Diagnostic + Send + Sync + 'static>;

/// A failure of a command, ready to render.
#[derive(Debug)]
pub struct CliError {
    failure: Failure,
    diagnostic: BoxedDiagnostic,
    /// Already written to stderr (see [`CliError::report_now`]): not printed again at the end.
    reported: bool,
}

impl CliError {
    pub fn new(failure: Failure, diagnostic: impl Diagnostic + Send + Sync + 'static) -> Self {
        CliError {
            failure,
            diagnostic: Box::new(diagnostic),
            reported: false,
        }
    }

    /// Writes the error to stderr now, and marks it so that the command's end does not write it
    /// again. For a process of an MPI job that fails a step: once it tells the others, mpirun
    /// may kill it before it gets to the end.
    pub fn report_now(mut self) -> Self {
        use std::io::Write as _;
        let _ = std::io::stderr().lock().write_all(self.render().as_bytes());
        self.reported = true;
        self
    }

    /// Whether [`CliError::report_now`] already wrote it.
    pub fn reported(&self) -> bool {
        self.reported
    }

    /// A bad combination of arguments that clap cannot see.
    pub fn usage(message: impl Into<String>, help: Option<&str>) -> Self {
        Self::new(
            Failure::Usage,
            ArgError {
                message: message.into(),
                help: help.map(str::to_owned),
            },
        )
    }

    /// A data error about the file at `path`. When the error does not already name the file,
    /// it becomes the cause of "`context` '`path`'", so the reader knows which file it is about.
    pub fn data_in(error: DataError, context: &str, path: &Path) -> Self {
        let failure = data_failure(&error);
        let shown = path.display().to_string();
        if error.to_string().contains(&shown) {
            return Self::new(failure, error);
        }
        Self::new(
            failure,
            Context {
                message: format!("{context} '{shown}'"),
                inner: Box::new(error),
            },
        )
    }

    /// A spec that does not fit the tensor in `path`, described as `what` (dtype and shape).
    pub fn spec_mismatch(error: CheckError, path: &Path, what: &str) -> Self {
        Self::new(
            Failure::Usage,
            Context {
                message: format!("the spec does not fit '{}' ({what})", path.display()),
                inner: Box::new(error),
            },
        )
    }

    pub fn failure(&self) -> Failure {
        self.failure
    }

    pub fn exit_code(&self) -> u8 {
        self.failure.exit_code()
    }

    /// The diagnostic drawn for stderr, ending in a newline.
    pub fn render(&self) -> String {
        render(self.diagnostic.as_ref())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.diagnostic, f)
    }
}

fn data_failure(error: &DataError) -> Failure {
    match error {
        DataError::Internal(_) => Failure::Internal,
        _ => Failure::Data,
    }
}

impl From<ParseError> for CliError {
    fn from(e: ParseError) -> Self {
        let failure = match e.kind() {
            ParseErrorKind::Internal => Failure::Internal,
            _ => Failure::Usage,
        };
        Self::new(failure, e)
    }
}

impl From<CheckError> for CliError {
    fn from(e: CheckError) -> Self {
        Self::new(Failure::Usage, e)
    }
}

impl From<multiproj::Error> for CliError {
    fn from(e: multiproj::Error) -> Self {
        match e {
            multiproj::Error::Parse(e) => e.into(),
            multiproj::Error::Check(e) => e.into(),
            multiproj::Error::Data(e) => e.into(),
            e => Self::new(Failure::Internal, e),
        }
    }
}

/// For data errors that already name their file (opening, reading, writing).
impl From<DataError> for CliError {
    fn from(e: DataError) -> Self {
        Self::new(data_failure(&e), e)
    }
}

/// An argument error found after clap: a flag the build cannot honour, an output that would
/// overwrite the input.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(multiproj::args))]
pub struct ArgError {
    message: String,
    #[help]
    help: Option<String>,
}

/// A diagnostic about a file or a tensor whose own message does not say which: the context
/// ("cannot project 'w.npy'") heads the report, the original message follows as its cause, and
/// the original's code, spec snippet, labels and help are shown as they were.
#[derive(Debug)]
struct Context {
    message: String,
    inner: BoxedDiagnostic,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

/// Everything but the message is the inner diagnostic's. It is deliberately not a
/// `diagnostic_source`: miette would draw it as a second, nested report.
impl Diagnostic for Context {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner.code()
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.inner.severity()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner.help()
    }

    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner.url()
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.inner.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.inner.labels()
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        self.inner.related()
    }
}

/// Draws `diagnostic` as miette's graphical report.
pub fn render(diagnostic: &dyn Diagnostic) -> String {
    let theme = if use_color() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(WIDTH)
        .with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, diagnostic).is_err() {
        // Rendering only fails if the source code cannot be read back, which for our in-memory
        // specs cannot happen; fall back to the bare message rather than print nothing.
        out = format!("error: {diagnostic}\n");
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Colour only on a terminal, and never when `NO_COLOR` is set (https://no-color.org).
fn use_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn exit_codes() {
        assert_eq!(Failure::Data.exit_code(), 1);
        assert_eq!(Failure::Usage.exit_code(), 2);
        assert_eq!(Failure::Internal.exit_code(), 3);
    }

    #[test]
    fn data_errors_name_the_file() {
        let e = CliError::data_in(
            DataError::NonFinite {
                index: vec![1, 2],
                value: f64::NAN,
            },
            "cannot project",
            Path::new("w.npy"),
        );
        assert_eq!(e.failure(), Failure::Data);
        let text = e.render();
        assert!(text.contains("cannot project 'w.npy'"), "{text}");
        assert!(
            text.contains("the input holds NaN at index [1, 2]"),
            "{text}"
        );

        // Already named: left as it is.
        let e = CliError::data_in(
            DataError::NotNpy {
                path: PathBuf::from("w.npy"),
                reason: "it is a directory".into(),
            },
            "cannot project",
            Path::new("w.npy"),
        );
        assert!(!e.render().contains("cannot project"));

        let e = CliError::data_in(
            DataError::Internal("x".into()),
            "cannot project",
            Path::new("w.npy"),
        );
        assert_eq!(e.failure(), Failure::Internal);
    }
}
