//! The `multiproj` command-line interface: `project`, `norm`, `explain`, `check` and `bench`
//! (the README's "Command line").
//!
//! [`main`] parses the command line ([`args`]), runs one command ([`commands`]) and turns its
//! outcome into an exit code: 0 on success, 1 for data and I/O failures, 2 for a bad spec or bad
//! arguments, 3 for an internal error. Failures are rendered on stderr by [`diagnostics`]. A
//! panic never reaches the user as a bare Rust panic: a hook prints it as an internal error (with
//! a backtrace only if `RUST_BACKTRACE` asks for one) and the unwind is caught here, after
//! destructors have removed any temporary output.
//!
//! Resource limits are the user's to set, not bugs: the command runs on a thread of its own
//! with a fixed 8 MiB stack, so a tiny `ulimit -s` (which only sizes the main thread's stack)
//! cannot overflow it, and SIGXFSZ is ignored, so writing past `ulimit -f` is an ordinary
//! `EFBIG` error ("File too large") that removes the temporary output like any other, instead
//! of killing the process. Nothing written to stderr may fail the run or panic: a full or
//! closed stderr loses the message, and the exit code still says what happened.

pub mod args;
pub mod commands;
pub mod diagnostics;
pub mod output;
pub mod progress;
pub mod signals;
pub mod stats;

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use crate::args::{Cli, Command};
use crate::diagnostics::{CliError, Failure, INTERNAL_EXIT_CODE};

/// The stack of the thread that runs the command: what a main thread usually gets, whatever
/// `ulimit -s` says.
const STACK_SIZE: usize = 8 << 20;

/// Runs the command line of this process and returns its exit code.
pub fn main() -> ExitCode {
    install_panic_hook();
    signals::install();
    ignore_sigxfsz();
    // Compiled kernels are kept on disk between runs (MULTIPROJ_KERNEL_CACHE=off turns it off).
    multiproj_runtime::jit::use_disk_cache_by_default();
    let worker = std::thread::Builder::new()
        .name("multiproj".into())
        .stack_size(STACK_SIZE)
        // Unwind safety: on a panic nothing run here is looked at again; the process ends.
        .spawn(|| panic::catch_unwind(AssertUnwindSafe(run)));
    match worker.map(std::thread::JoinHandle::join) {
        Ok(Ok(Ok(code))) => code,
        // A panic, already reported by the hook.
        Ok(_) => ExitCode::from(INTERNAL_EXIT_CODE),
        Err(source) => {
            let e = CliError::new(Failure::Data, ThreadError { source });
            say(&e.render());
            ExitCode::from(e.exit_code())
        }
    }
}

/// The command's thread could not be started: the system is out of threads or memory.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not start a thread with an 8 MiB stack to run the command")]
#[diagnostic(
    code(multiproj::resources),
    help("a resource limit is too low for multiproj (see `ulimit -u` and `ulimit -v`)")
)]
struct ThreadError {
    #[source]
    source: io::Error,
}

/// Writes `text` to stderr. A failure is ignored: there is nowhere left to report it.
fn say(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Makes a write past `ulimit -f` fail with `EFBIG` instead of killing the process with
/// SIGXFSZ, whose default action leaves the temporary output behind.
fn ignore_sigxfsz() {
    #[cfg(unix)]
    // SAFETY: SIG_IGN is not a handler that could run code; setting a signal's disposition
    // has no other precondition. Ignored signals stay ignored across exec, which multiproj
    // never does.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
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
            if !e.reported() {
                say(&e.render());
            }
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
        Command::Compare(a) => commands::compare::run(a),
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
        say(&format!(
            "internal error: this is a bug in multiproj: {message}{place}\n\
             please report it with the command line and the input's shape and dtype\n"
        ));
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            say(&format!("{}\n", std::backtrace::Backtrace::force_capture()));
        }
    }));
}
