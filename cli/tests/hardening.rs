//! What `multiproj project` does to files under attack, interruption and odd file types: each
//! test builds the situation for real (signals sent to a running process, FIFOs, device nodes,
//! symbolic links, a file system without `fallocate`, a second process on the same file) and
//! checks what is left on disk — never a temporary file, never a half-written or replaced
//! file that should have been kept.
//!
//! Runs that must be caught in the middle use the interpreter on a few MiB (seconds in a test
//! build) and `--progress always`, whose stage names on stderr say where the run is; the signal
//! is sent once the wanted stage has started. Set-ups that need root (device nodes, `chown`,
//! mounts) print "skipped: …" and check nothing where they are not permitted.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ndarray::Array2;
use ndarray_npy::write_npy;

mod mount;
use mount::Mounted;

const BILEVEL: &str = "l1 over dim0 of linf over dim1";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_multiproj"));
    c.env("MULTIPROJ_KERNEL_CACHE", "off")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE");
    c
}

/// A tensor of `rows` × `cols` f64 with rows of very different norms (so a projection zeroes
/// some, clips others).
fn tensor(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let scale = ((i * 37) % 101) as f64 / 10.0;
        scale * (((i * 13 + j * 7) % 17) as f64 - 8.0) / 8.0
    })
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A running `multiproj` whose stderr is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn start(dir: &Path, args: &[&str]) -> Running {
        let mut child = bin()
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running { child, stderr }
    }

    /// Waits until stderr shows `needle` (the progress bar naming a stage).
    fn wait_for(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.stderr.lock().unwrap().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "finished ({status}) before showing {needle:?}:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "never showed {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the end (at most two minutes); the exit status and everything on stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(50));
                let text = self.stderr.lock().unwrap().clone();
                return (status, text);
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = self.child.kill();
                panic!("still running after two minutes (blocked?)");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A directory with `in.npy` (1024 × 2048 f64, 16 MiB: seconds with the interpreter in a test
/// build).
fn big_input() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    write_npy(dir.path().join("in.npy"), &tensor(1024, 2048)).unwrap();
    let bytes = fs::read(dir.path().join("in.npy")).unwrap();
    (dir, bytes)
}

const SLOW: &[&str] = &[
    "--backend",
    "interp",
    "--progress",
    "always",
    "--threads",
    "1",
];

fn args<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

/// A slow projection of `in.npy` into `out.npy`, started.
fn slow_out_of_place(dir: &Path) -> Running {
    Running::start(
        dir,
        &args(
            &["project", BILEVEL, "in.npy", "-r", "100", "-o", "out.npy"],
            SLOW,
        ),
    )
}

#[test]
fn catchable_signals_mid_run_leave_nothing_and_exit_128_plus_n() {
    for (sig, code) in [("INT", 130), ("TERM", 143), ("HUP", 129), ("QUIT", 131)] {
        let (dir, _) = big_input();
        let mut run = slow_out_of_place(dir.path());
        run.wait_for("reduce");
        run.signal(sig);
        let (status, stderr) = run.finish();
        assert_eq!(status.code(), Some(code), "SIG{sig}: {stderr}");
        assert!(
            stderr.contains(&format!("interrupted by SIG{sig}; no output was written")),
            "{stderr}"
        );
        assert_eq!(names(dir.path()), ["in.npy"], "SIG{sig} left files behind");
    }
}

#[test]
fn sigkill_mid_run_leaves_no_temporary_file() {
    let (dir, _) = big_input();
    let mut run = slow_out_of_place(dir.path());
    run.wait_for("apply");
    run.signal("KILL");
    let (status, _) = run.finish();
    assert_eq!(status.code(), None);
    assert_eq!(names(dir.path()), ["in.npy"]);
}

#[test]
fn an_interrupted_in_place_run_leaves_the_old_file() {
    for sig in ["INT", "KILL"] {
        let (dir, original) = big_input();
        let mut run = Running::start(
            dir.path(),
            &args(
                &["project", BILEVEL, "in.npy", "-r", "100", "--in-place"],
                SLOW,
            ),
        );
        // The apply pass is when the old write-through mode tore rows.
        run.wait_for("apply");
        run.signal(sig);
        let (status, stderr) = run.finish();
        if sig == "INT" {
            assert_eq!(status.code(), Some(130), "{stderr}");
            assert!(stderr.contains("'in.npy' is unchanged"), "{stderr}");
        }
        assert!(
            fs::read(dir.path().join("in.npy")).unwrap() == original,
            "SIG{sig} changed the input"
        );
        assert_eq!(names(dir.path()), ["in.npy"]);
    }
}

/// The projection of `in.npy` in `dir` with `radius`, computed into `name` by a plain run.
fn reference(dir: &Path, input: &str, radius: &str, name: &str) -> Vec<u8> {
    let out = bin()
        .args(["project", BILEVEL, input, "-r", radius, "-o", name])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    fs::read(dir.join(name)).unwrap()
}

#[test]
fn in_place_map_finishes_its_write_pass_before_obeying_sigint() {
    let (dir, _) = big_input();
    let work = tempfile::tempdir().unwrap();
    fs::copy(dir.path().join("in.npy"), work.path().join("in.npy")).unwrap();
    let expected = reference(work.path(), "in.npy", "100", "expected.npy");
    let mut run = Running::start(
        dir.path(),
        &args(
            &["project", BILEVEL, "in.npy", "-r", "100", "--in-place=map"],
            SLOW,
        ),
    );
    run.wait_for("apply");
    run.signal("INT");
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("finishing the write in progress first")
            && stderr.contains("interrupted by SIGINT; 'in.npy' had been projected completely"),
        "{stderr}"
    );
    assert!(
        fs::read(dir.path().join("in.npy")).unwrap() == expected,
        "the file is not the whole projection"
    );
}

#[test]
fn concurrent_in_place_runs_take_turns() {
    let (dir, _) = big_input();
    // The two orders in which two runs can take turns.
    let work = tempfile::tempdir().unwrap();
    fs::copy(dir.path().join("in.npy"), work.path().join("in.npy")).unwrap();
    reference(work.path(), "in.npy", "30", "a.npy");
    reference(work.path(), "in.npy", "300", "b.npy");
    let ab = reference(work.path(), "a.npy", "300", "ab.npy");
    let ba = reference(work.path(), "b.npy", "30", "ba.npy");
    for mode in ["--in-place", "--in-place=map"] {
        let (dir, _) = big_input();
        let one = Running::start(
            dir.path(),
            &args(&["project", BILEVEL, "in.npy", "-r", "30", mode], SLOW),
        );
        let two = Running::start(
            dir.path(),
            &args(&["project", BILEVEL, "in.npy", "-r", "300", mode], SLOW),
        );
        let (s1, e1) = one.finish();
        let (s2, e2) = two.finish();
        assert!(s1.success() && s2.success(), "{e1}\n{e2}");
        let got = fs::read(dir.path().join("in.npy")).unwrap();
        assert!(
            got == ab || got == ba,
            "{mode}: the result is a mixture of both runs"
        );
        assert_eq!(names(dir.path()), ["in.npy"]);
    }
}

#[test]
fn an_input_cut_short_mid_run_is_an_error_that_leaves_nothing() {
    let (dir, _) = big_input();
    let mut run = slow_out_of_place(dir.path());
    run.wait_for("reduce");
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("in.npy"))
        .unwrap();
    f.set_len(4096).unwrap();
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("'in.npy' changed size while") && stderr.contains("being read"),
        "{stderr}"
    );
    assert_eq!(names(dir.path()), ["in.npy"]);
}

fn small_input(dir: &Path) {
    write_npy(dir.join("in.npy"), &tensor(16, 8)).unwrap();
}

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    bin().args(args).current_dir(dir).output().unwrap()
}

#[test]
fn outputs_onto_streams_are_streamed_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    let expected = reference(d, "in.npy", "5", "file.npy");

    // `-o -` is standard output, with the statistics on stderr.
    let out = run_in(
        d,
        &[
            "project", BILEVEL, "in.npy", "-r", "5", "-o", "-", "--stats",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout == expected, "stdout is not the .npy file");
    assert!(String::from_utf8_lossy(&out.stderr).contains("norm after"));
    assert!(!d.join("-").exists());

    // A FIFO is written as a stream and stays a FIFO.
    let fifo = d.join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    let out = run_in(d, &["project", BILEVEL, "in.npy", "-r", "5", "-o", "pipe"]);
    assert!(out.status.success(), "{out:?}");
    assert!(reader.join().unwrap() == expected);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    // A symbolic link to a FIFO is a stream too.
    std::os::unix::fs::symlink("pipe", d.join("to-pipe")).unwrap();
    let reader = std::thread::spawn(move || fs::read(fifo).unwrap());
    let out = run_in(
        d,
        &["project", BILEVEL, "in.npy", "-r", "5", "-o", "to-pipe"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(reader.join().unwrap() == expected);
    assert!(
        fs::symlink_metadata(d.join("to-pipe"))
            .unwrap()
            .is_symlink()
    );

    // A character device (a private /dev/null) is written to, not replaced.
    let null = d.join("null");
    if Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success())
    {
        let before = fs::symlink_metadata(&null).unwrap();
        let out = run_in(d, &["project", BILEVEL, "in.npy", "-r", "5", "-o", "null"]);
        assert!(out.status.success(), "{out:?}");
        let after = fs::symlink_metadata(&null).unwrap();
        assert!(after.file_type().is_char_device());
        assert_eq!((after.ino(), after.rdev()), (before.ino(), before.rdev()));
    } else {
        eprintln!("skipped: cannot make a device node here (needs root)");
    }
}

#[test]
fn outputs_that_must_not_be_replaced_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    fs::write(d.join("precious"), b"keep me").unwrap();
    std::os::unix::fs::symlink("precious", d.join("link.npy")).unwrap();
    std::os::unix::fs::symlink("nowhere", d.join("dangling.npy")).unwrap();
    fs::create_dir(d.join("sub.npy")).unwrap();
    for (target, says) in [
        ("link.npy", "it is a symbolic link to a regular file"),
        ("dangling.npy", "it is a dangling symbolic link"),
        ("sub.npy", "it is a directory"),
    ] {
        let out = run_in(d, &["project", BILEVEL, "in.npy", "-r", "5", "-o", target]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target}: {stderr}");
        assert!(
            stderr.contains(&format!("will not write the output to '{target}'"))
                && stderr.contains(says),
            "{stderr}"
        );
    }
    assert_eq!(fs::read(d.join("precious")).unwrap(), b"keep me");
    assert!(
        fs::symlink_metadata(d.join("link.npy"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        names(d),
        ["dangling.npy", "in.npy", "link.npy", "precious", "sub.npy"]
    );
}

#[test]
fn a_fifo_as_input_is_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(
        Command::new("mkfifo")
            .arg(d.join("in.npy"))
            .status()
            .unwrap()
            .success()
    );
    for extra in [&["-o", "out.npy"][..], &["--in-place"], &["--in-place=map"]] {
        let run = Running::start(d, &args(&["project", BILEVEL, "in.npy", "-r", "1"], extra));
        let (status, stderr) = run.finish();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("'in.npy' is a FIFO (named pipe), not a regular file"),
            "{stderr}"
        );
    }
    let out = bin()
        .args(["norm", BILEVEL, "in.npy"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_replaced_output_keeps_its_mode_and_owner() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    let out = d.join("out.npy");
    fs::write(&out, b"old").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o600)).unwrap();
    let run = run_in(
        d,
        &["project", BILEVEL, "in.npy", "-r", "5", "-o", "out.npy"],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // In place too.
    fs::set_permissions(d.join("in.npy"), fs::Permissions::from_mode(0o640)).unwrap();
    let run = run_in(d, &["project", BILEVEL, "in.npy", "-r", "5", "--in-place"]);
    assert!(run.status.success(), "{run:?}");
    let meta = fs::metadata(d.join("in.npy")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);

    // Another owner is kept where we may give files away (root).
    let chowned = Command::new("chown")
        .args(["65534:65534"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if chowned && rustix_euid_is_root() {
        let run = run_in(
            d,
            &["project", BILEVEL, "in.npy", "-r", "5", "-o", "out.npy"],
        );
        assert!(run.status.success(), "{run:?}");
        let meta = fs::metadata(&out).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    } else {
        eprintln!("skipped: cannot give a file to another user here (needs root)");
    }
}

fn rustix_euid_is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn in_place_refuses_files_with_other_hard_links() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    fs::hard_link(d.join("in.npy"), d.join("other.npy")).unwrap();
    let before = fs::read(d.join("in.npy")).unwrap();
    let out = run_in(d, &["project", BILEVEL, "in.npy", "-r", "5", "--in-place"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("it has 2 hard links"), "{stderr}");
    assert_eq!(fs::read(d.join("in.npy")).unwrap(), before);
    // Writing through the map keeps the link: both names see the result.
    let out = run_in(
        d,
        &["project", BILEVEL, "in.npy", "-r", "5", "--in-place=map"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        fs::read(d.join("in.npy")).unwrap(),
        fs::read(d.join("other.npy")).unwrap()
    );
    assert_ne!(fs::read(d.join("in.npy")).unwrap(), before);
}

#[test]
fn in_place_through_a_symbolic_link_replaces_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    std::os::unix::fs::symlink("in.npy", d.join("link.npy")).unwrap();
    let expected = reference(d, "in.npy", "5", "expected.npy");
    let out = run_in(
        d,
        &["project", BILEVEL, "link.npy", "-r", "5", "--in-place"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        fs::symlink_metadata(d.join("link.npy"))
            .unwrap()
            .is_symlink()
    );
    assert!(fs::read(d.join("in.npy")).unwrap() == expected);
}

/// The process id of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn host_tag() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    host.trim()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
                b as char
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

#[test]
fn stale_temporaries_of_dead_multiproj_processes_are_swept_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    let host = host_tag();
    let dead = dead_pid();
    let live = std::process::id();
    let name = |pid: u32| format!(".multiproj-{host}-{pid}-0123456789abcdef.npy.tmp");
    let stale = name(dead);
    let alive = name(live);
    let other_host = format!(".multiproj-elsewhere-{dead}-0123456789abcdef.npy.tmp");
    let not_ours = ".tmp-123456";
    for n in [&stale, &alive, &other_host, &not_ours.to_string()] {
        fs::write(d.join(n), b"x").unwrap();
    }
    // Another user's file with a dead pid stays too (where we can make one).
    let theirs = format!(".multiproj-{host}-{}-fedcba9876543210.npy.tmp", dead_pid());
    fs::write(d.join(&theirs), b"x").unwrap();
    let chowned = Command::new("chown")
        .arg("65534")
        .arg(d.join(&theirs))
        .status()
        .is_ok_and(|s| s.success());
    if !chowned {
        fs::remove_file(d.join(&theirs)).unwrap();
        eprintln!("skipped part: cannot give a file to another user here (needs root)");
    }
    let out = run_in(
        d,
        &["project", BILEVEL, "in.npy", "-r", "5", "-o", "out.npy"],
    );
    assert!(out.status.success(), "{out:?}");
    let left = names(d);
    assert!(!left.contains(&stale), "{left:?}");
    for kept in [&alive, &other_host, &not_ours.to_string()] {
        assert!(left.contains(kept), "{kept} was removed: {left:?}");
    }
    if chowned {
        assert!(left.contains(&theirs), "another user's file was removed");
    }
}

#[test]
fn a_full_disk_without_fallocate_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 8 MiB of f64 onto a 4 MiB ext2, which has no fallocate.
    write_npy(d.join("in.npy"), &tensor(1024, 1024)).unwrap();
    let Some(small) = Mounted::ext2(&d.join("fs.img"), &d.join("small"), 4) else {
        eprintln!("skipped: cannot loop-mount an ext2 image here (needs root and mkfs.ext2)");
        return;
    };
    let before = names(&small.0);
    let out = bin()
        .args(["project", BILEVEL, "in.npy", "-r", "10", "-o"])
        .arg(small.0.join("out.npy"))
        .current_dir(d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not allocate space for") && stderr.contains("out.npy"),
        "{stderr}"
    );
    assert_eq!(names(&small.0), before, "left something behind");
}

#[test]
fn the_write_stage_is_timed_and_sync_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    for extra in [&[][..], &["--sync"]] {
        let out = run_in(
            d,
            &args(
                &[
                    "project", BILEVEL, "in.npy", "-r", "5", "-o", "o.npy", "--json",
                ],
                extra,
            ),
        );
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let stages = v["stages"].as_object().unwrap();
        assert!(stages.contains_key("write"), "{v}");
        let sum: f64 = stages.values().map(|x| x.as_f64().unwrap()).sum();
        let total = v["total_ms"].as_f64().unwrap();
        assert!(
            (sum - total).abs() <= 1e-3 * total.max(1.0),
            "{sum} vs {total}"
        );
    }
}

#[test]
fn binary_output_to_a_terminal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_input(d);
    // `script` runs the command with a pseudo-terminal as its standard output.
    let command = format!(
        "{} project '{BILEVEL}' in.npy -r 5 -o -; echo exit=$?",
        env!("CARGO_BIN_EXE_multiproj")
    );
    let Ok(out) = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(d)
        .env("MULTIPROJ_KERNEL_CACHE", "off")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
    else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("it is a terminal, and the output is binary data") && text.contains("exit=1"),
        "{text}"
    );
    assert_eq!(names(d), ["in.npy"]);
}

#[test]
fn in_place_without_room_for_a_second_copy_names_the_mode_that_needs_none() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = Mounted::tmpfs(&dir.path().join("small"), "size=1m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    // 640 KiB of f64 on a 1 MiB file system: no room for a second copy.
    write_npy(small.0.join("in.npy"), &tensor(80, 1024)).unwrap();
    let before = fs::read(small.0.join("in.npy")).unwrap();
    let out = run_in(
        &small.0,
        &["project", BILEVEL, "in.npy", "-r", "5", "--in-place"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "will not replace 'in.npy' in place: the new copy beside it could not be made"
        ) && stderr.contains("--in-place=map")
            && stderr.contains("writes through the file itself"),
        "{stderr}"
    );
    assert_eq!(fs::read(small.0.join("in.npy")).unwrap(), before);
    assert_eq!(names(&small.0), ["in.npy"]);
    // Writing through the map needs no second copy.
    let out = run_in(
        &small.0,
        &["project", BILEVEL, "in.npy", "-r", "5", "--in-place=map"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_ne!(fs::read(small.0.join("in.npy")).unwrap(), before);
}
