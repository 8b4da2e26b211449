//! The `multiproj` command-line interface: `project`, `norm`, `explain`, `check` and `bench`
//! (DESIGN §4).
//!
//! [`main`] parses the command line ([`args`]), runs one command ([`commands`]) and turns its
//! outcome into an exit code: 0 on success, 1 for data and I/O failures, 2 for a bad spec or bad
//! arguments, 3 for an internal error. Failures are rendered on stderr by [`diagnostics`]. A
//! panic never reaches the user as a bare Rust panic: a hook prints it as an internal error (with
//! a backtrace only if `RUST_BACKTRACE` asks for one) and the unwind is caught here, after
//! destructors have removed any temporary output.

pub mod args;
pub mod commands;
pub mod diagnostics;
pub mod output;
pub mod progress;
pub mod signals;
pub mod stats;

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use crate::args::{Cli, Command};
use crate::diagnostics::{CliError, INTERNAL_EXIT_CODE};

/// Runs the command line of this process and returns its exit code.
pub fn main() -> ExitCode {
    install_panic_hook();
    signals::install();
    // Compiled kernels are kept on disk between runs (MULTIPROJ_KERNEL_CACHE=off turns it off).
    multiproj_runtime::jit::use_disk_cache_by_default();
    // Unwind safety: on a panic nothing run here is looked at again; the process ends.
    match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(code) => code,
        Err(_) => ExitCode::from(INTERNAL_EXIT_CODE),
    }
}

fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version print to stdout and exit 0; errors print to stderr, exit 2.
            let code = e.exit_code();
            // A closed pipe while printing help is not worth a second error.
            let _ = e.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    match dispatch(&cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(command: &Command) -> Result<(), CliError> {
    match command {
        Command::Project(a) => commands::project::run(a),
        Command::Norm(a) => commands::norm::run(a),
        Command::Explain(a) => commands::explain::run(a),
        Command::Check(a) => commands::check::run(a),
        Command::Bench(a) => commands::bench::run(a),
    }
}

/// Prints a panic as an internal error, once even if several threads panic.
fn install_panic_hook() {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    panic::set_hook(Box::new(|info| {
        if REPORTED.swap(true, Ordering::SeqCst) {
            return;
        }
        // A progress bar must not share the line with the report, nor draw after it.
        progress::silence();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        let place = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "internal error: this is a bug in multiproj: {message}{place}\n\
             please report it with the command line and the input's shape and dtype"
        );
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}
