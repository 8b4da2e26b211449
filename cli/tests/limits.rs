//! Resource limits and unwritable standard streams are the user's to set, not bugs in
//! multiproj: under each, a run either works or fails with a diagnostic and exit code 1, and
//! leaves no temporary file behind — never a signal, an abort or an "internal error".
//!
//! - `ulimit -s` (a tiny main-thread stack): the command runs on a thread with its own stack.
//! - `ulimit -f` (a file size limit): SIGXFSZ is ignored, so the write fails with EFBIG.
//! - `ulimit -v` (an address-space limit) with `--verify`: its copy of the result is allocated
//!   fallibly.
//! - stderr or stdout on `/dev/full`: diagnostics are dropped, not a panic; statistics that
//!   cannot be printed leave the written output in place and say so.
//!
//! Limits are set by `sh -c 'ulimit …; exec multiproj …'`, so they apply to multiproj alone.
#![cfg(target_os = "linux")]

use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const BILEVEL: &str = "l1 over dim0 of linf over dim1";

/// A temporary directory holding an f64 matrix of `rows`×`cols` as `in.npy`.
struct Dir(tempfile::TempDir);

impl Dir {
    fn with_input(rows: usize, cols: usize) -> Dir {
        let dir = Dir(tempfile::tempdir().expect("a temporary directory"));
        let x = ndarray::Array2::from_shape_fn((rows, cols), |(i, j)| {
            ((i * 7 + j * 3) % 13) as f64 - 6.0
        });
        ndarray_npy::write_npy(dir.path("in.npy"), &x).expect("write in.npy");
        dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// The names in the directory, sorted (hidden temporary files included).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.0.path())
            .expect("list the directory")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// multiproj with `args`, after the shell command `limit` (e.g. `ulimit -s 64`).
    fn command(&self, limit: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_multiproj"))
            .args(args)
            .current_dir(self.0.path())
            // A clean environment: its strings live on the main thread's stack, and a large
            // one would leave less of a small `ulimit -s` to the dynamic loader.
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("NO_COLOR", "1")
            .env("MULTIPROJ_KERNEL_CACHE", "off")
            // One malloc arena: the address space a run needs does not depend on how many
            // threads happened to allocate.
            .env("MALLOC_ARENA_MAX", "1");
        cmd
    }

    fn run(&self, limit: &str, args: &[&str]) -> Output {
        self.command(limit, args).output().expect("run sh")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `/dev/full`, where every write fails with ENOSPC.
fn dev_full() -> File {
    OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
}

/// The exit code, or a failure naming the signal that ended the process.
fn code(out: &Output, what: &str) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match out.status.code() {
        Some(code) => code,
        None => panic!(
            "{what}: killed by signal {:?}\nstderr:\n{}",
            out.status.signal(),
            stderr(out)
        ),
    }
}

fn project<'a>(output: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["project", BILEVEL, "in.npy", "-r", "3", "-o", output];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_tiny_stack_limit_changes_nothing() {
    // Before, a 128 KiB stack (and anything less) overflowed the main thread: SIGABRT. Below
    // about 16 KiB the dynamic loader itself crashes while loading libc, before any code of
    // multiproj runs (as /bin/true does below about 12 KiB), so the smallest tried is 24 KiB.
    let d = Dir::with_input(5, 4);
    let expected = d.run("true", &project("expected.npy", &[]));
    assert_eq!(code(&expected, "no limit"), 0, "{}", stderr(&expected));
    let expected = fs::read(d.path("expected.npy")).unwrap();
    for kib in [24, 32, 64, 128] {
        let limit = format!("ulimit -s {kib}");
        let out = d.run(&limit, &project("out.npy", &["--stats"]));
        assert_eq!(code(&out, &limit), 0, "{limit}: {}", stderr(&out));
        assert_eq!(fs::read(d.path("out.npy")).unwrap(), expected, "{limit}");
        let out = d.run(&limit, &["norm", BILEVEL, "in.npy", "--backend", "interp"]);
        assert_eq!(code(&out, &limit), 0, "{limit}: {}", stderr(&out));
        let out = d.run(&limit, &["explain", BILEVEL, "--shape", "5x4"]);
        assert_eq!(code(&out, &limit), 0, "{limit}: {}", stderr(&out));
        let out = d.run(&limit, &["check", "l1 over dims0"]);
        assert_eq!(code(&out, &limit), 2, "{limit}: {}", stderr(&out));
        assert!(stderr(&out).contains("multiproj::"), "{}", stderr(&out));
    }
}

#[test]
fn writing_past_the_file_size_limit_is_an_error_not_a_signal() {
    // 8 MiB of output against a limit of 512 KiB (dash counts `ulimit -f` in 512-byte
    // blocks; bash in KiB, which would still be far too small). Before, SIGXFSZ killed the
    // run and left the temporary file.
    let d = Dir::with_input(1024, 1024);
    let out = d.run("ulimit -f 1024", &project("out.npy", &[]));
    let msg = stderr(&out);
    assert_eq!(code(&out, "ulimit -f"), 1, "{msg}");
    assert!(msg.contains("File too large"), "{msg}");
    assert!(msg.contains("out.npy"), "{msg}");
    assert!(!msg.contains("internal error"), "{msg}");
    assert_eq!(
        d.names(),
        ["in.npy"],
        "an output or a temporary file was left"
    );
}

/// The address-space limit of the `--verify` tests, in KiB, for an input of `tensor` bytes:
/// room for the input and the output (both mapped) and 48 MiB for the program, but not for a
/// third copy.
fn verify_limit(tensor: usize) -> String {
    format!("ulimit -v {}", (2 * tensor + (48 << 20)) >> 10)
}

#[test]
fn verify_under_a_memory_limit_fails_cleanly() {
    // 64 MiB of f64. Before, the second copy --verify needs was allocated infallibly: the run
    // aborted and left the temporary output.
    let (rows, cols) = (4096, 2048);
    let d = Dir::with_input(rows, cols);
    let limit = verify_limit(rows * cols * 8);
    let plain = d.run(&limit, &project("plain.npy", &["--threads", "1"]));
    assert_eq!(
        code(&plain, "without --verify"),
        0,
        "the limit must leave room for a run without --verify: {}",
        stderr(&plain)
    );
    let out = d.run(&limit, &project("out.npy", &["--threads", "1", "--verify"]));
    let msg = stderr(&out);
    assert_eq!(code(&out, "--verify"), 1, "{msg}");
    assert!(
        msg.contains(&format!("could not allocate {} bytes", rows * cols * 8)),
        "{msg}"
    );
    assert!(msg.contains("run without --verify"), "{msg}");
    assert!(!msg.contains("internal error"), "{msg}");
    assert_eq!(
        d.names(),
        ["in.npy", "plain.npy"],
        "an output or a temporary file was left"
    );
}

#[test]
fn verify_in_place_under_a_memory_limit_leaves_the_input_alone() {
    let (rows, cols) = (4096, 2048);
    let d = Dir::with_input(rows, cols);
    let before = fs::read(d.path("in.npy")).unwrap();
    let limit = verify_limit(rows * cols * 8);
    let args = [
        "project",
        BILEVEL,
        "in.npy",
        "-r",
        "3",
        "--in-place",
        "--verify",
        "--threads",
        "1",
    ];
    let out = d.run(&limit, &args);
    let msg = stderr(&out);
    assert_eq!(code(&out, "--in-place --verify"), 1, "{msg}");
    assert!(msg.contains("could not allocate"), "{msg}");
    assert!(msg.contains("run without --verify"), "{msg}");
    assert_eq!(d.names(), ["in.npy"]);
    assert!(
        fs::read(d.path("in.npy")).unwrap() == before,
        "the input was modified"
    );
}

#[test]
fn a_full_stderr_does_not_abort() {
    // Before, the diagnostic's eprint! panicked, the panic hook's eprintln! panicked again,
    // and the process aborted (SIGABRT). The message is lost; the exit code still tells.
    let d = Dir::with_input(5, 4);
    let cases: [(&[&str], i32); 3] = [
        (
            &[
                "project",
                BILEVEL,
                "missing.npy",
                "-r",
                "1",
                "-o",
                "out.npy",
            ],
            1,
        ),
        (
            &["project", "l1 over", "in.npy", "-r", "1", "-o", "out.npy"],
            2,
        ),
        (
            &[
                "project",
                BILEVEL,
                "in.npy",
                "-r",
                "1",
                "-o",
                "out.npy",
                "--threads",
                "0",
            ],
            2,
        ),
    ];
    for (args, expected) in cases {
        let out = d
            .command("true", args)
            .stderr(Stdio::from(dev_full()))
            .output()
            .unwrap();
        assert_eq!(code(&out, &format!("{args:?}")), expected, "{args:?}");
    }
    assert_eq!(d.names(), ["in.npy"]);
}

#[test]
fn statistics_to_a_full_stdout_keep_the_output_and_say_so() {
    let d = Dir::with_input(5, 4);
    let expected = d.run("true", &project("expected.npy", &[]));
    assert_eq!(code(&expected, "no limit"), 0);
    for flag in ["--stats", "--json"] {
        let out = d
            .command("true", &project("out.npy", &[flag]))
            .stdout(Stdio::from(dev_full()))
            .output()
            .unwrap();
        let msg = stderr(&out);
        assert_eq!(code(&out, flag), 1, "{flag}: {msg}");
        assert!(
            msg.contains("could not write the statistics to standard output"),
            "{msg}"
        );
        assert!(msg.contains("'out.npy' was written"), "{msg}");
        assert_eq!(
            fs::read(d.path("out.npy")).unwrap(),
            fs::read(d.path("expected.npy")).unwrap(),
            "{flag}: the output is the projection"
        );
        fs::remove_file(d.path("out.npy")).unwrap();
    }
    assert_eq!(d.names(), ["expected.npy", "in.npy"]);
}
