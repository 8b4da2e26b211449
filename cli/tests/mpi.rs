//! `multiproj project --shard-axis` under `mpirun` (feature `mpi`): one shard file per process
//! or one shared input, against the single-process command on the whole tensor; an input that
//! is missing on one process, and shards that do not fit, stop every process and leave no
//! output. Needs `mpirun` on the PATH: without it the tests say so and pass, unless
//! MULTIPROJ_REQUIRE_MPI=1 (CI sets it).
#![cfg(feature = "mpi")]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ndarray::{ArrayD, Axis, IxDyn, ShapeBuilder, Slice, concatenate};
use ndarray_npy::{read_npy, write_npy};

const BIN: &str = env!("CARGO_BIN_EXE_multiproj");

fn mpirun(p: usize, args: &[&str], dir: &Path) -> Option<Output> {
    let Ok(version) = Command::new("mpirun").arg("--version").output() else {
        assert!(
            std::env::var("MULTIPROJ_REQUIRE_MPI").as_deref() != Ok("1"),
            "mpirun is not on the PATH, and MULTIPROJ_REQUIRE_MPI=1"
        );
        eprintln!("mpirun is not on the PATH: the MPI tests do not run");
        return None;
    };
    let mut cmd = Command::new("mpirun");
    if String::from_utf8_lossy(&version.stdout).contains("Open MPI") {
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .arg("--oversubscribe")
            // A job that hangs is a failure, not a CI run that never ends.
            .args(["--timeout", "300"]);
    }
    cmd.current_dir(dir)
        .env("RAYON_NUM_THREADS", "1")
        .arg("-n")
        .arg(p.to_string())
        .arg(BIN)
        .args(args);
    let (out, killed) = output_within(&mut cmd, Duration::from_secs(300));
    assert!(!killed, "mpirun did not end within 300 s:\n{}", text(&out));
    Some(out)
}

/// Runs `cmd` (an `mpirun`) in a process group of its own and returns its output, and whether
/// it had to be killed: after `limit`, the whole group (mpirun and the processes it started)
/// gets SIGKILL. mpirun's own `--timeout` lives in its event loop, which was seen wedged for
/// over ten minutes after a rank was killed (the other rank ended, a zombie mpirun never
/// reaped); a CI run must not wait for it.
fn output_within(cmd: &mut Command, limit: Duration) -> (Output, bool) {
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun runs");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mpirun") {
            break status;
        }
        if !killed && start.elapsed() > limit {
            let group = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    };
    (out, killed)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tensor(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut rng = multiproj_runtime::rng::SplitMix64::new(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.next_f64() * 6.0 - 3.0)
}

/// The single-process command's result on the whole tensor.
fn whole(dir: &Path, spec: &str, radius: &str) -> ArrayD<f64> {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args([
            "project",
            spec,
            "w.npy",
            "--output",
            "whole.npy",
            "--radius",
            radius,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    read_npy(dir.join("whole.npy")).unwrap()
}

fn close(got: &ArrayD<f64>, want: &ArrayD<f64>, exact: bool, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        if exact {
            assert_eq!(a.to_bits(), b.to_bits(), "{what}: entry {i}: {a} vs {b}");
        } else {
            assert!(
                (a - b).abs() <= 1e-12 * 3.0,
                "{what}: entry {i}: {a} vs {b}"
            );
        }
    }
}

fn gather(dir: &Path, prefix: &str, p: usize, axis: usize) -> ArrayD<f64> {
    let parts: Vec<ArrayD<f64>> = (0..p)
        .filter_map(|r| read_npy(dir.join(format!("{prefix}.{r}.npy"))).ok())
        .collect();
    let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
    concatenate(Axis(axis), &views).unwrap()
}

#[test]
fn one_shard_file_per_process() {
    let cases = [
        (
            "l1 over dim0 of linf over dim1",
            0,
            vec![4usize, 0, 7],
            true,
        ),
        ("l1 over dim0 of linf over dim1", 1, vec![2, 3, 1], true),
        ("l1 over dim0 of l1 over dim1", 1, vec![3, 1, 2], false),
        ("l1 over dim1 of l2 over dim0", 0, vec![5, 5, 1], false),
    ];
    for (c, (spec, axis, extents, exact)) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut shape = vec![11usize, 6];
        shape[*axis] = extents.iter().sum();
        let x = tensor(&shape, c as u64);
        write_npy(dir.path().join("w.npy"), &x).unwrap();
        let mut start = 0;
        let mut files = 0;
        for (r, &e) in extents.iter().enumerate() {
            if e > 0 {
                let part = x
                    .slice_axis(Axis(*axis), Slice::from(start..start + e))
                    .to_owned();
                write_npy(dir.path().join(format!("w.{files}.npy")), &part).unwrap();
                files += 1;
            }
            let _ = r;
            start += e;
        }
        let want = whole(dir.path(), spec, "2.5");
        let axis_text = axis.to_string();
        let args = [
            "project",
            spec,
            "w.{rank}.npy",
            "--output",
            "o.{rank}.npy",
            "--shard-axis",
            &axis_text,
            "--radius",
            "2.5",
            "--json",
        ];
        let Some(out) = mpirun(files, &args, dir.path()) else {
            return;
        };
        assert!(out.status.success(), "{}", text(&out));
        let stats: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        assert_eq!(stats["processes"], files);
        close(&gather(dir.path(), "o", files, *axis), &want, *exact, spec);
    }
}

#[test]
fn one_shared_input_uneven_and_empty_slices() {
    let dir = tempfile::tempdir().unwrap();
    let x = tensor(&[9, 5], 42);
    write_npy(dir.path().join("w.npy"), &x).unwrap();
    for (spec, exact) in [
        ("l1 over dim0 of linf over dim1", true),
        ("l1 over dim0 of l1 over dim1", false),
    ] {
        let want = whole(dir.path(), spec, "1.5");
        // 7 processes over the 5 columns: two of them have nothing and write nothing.
        for (p, axis) in [(2usize, 0usize), (4, 1), (7, 1)] {
            for f in std::fs::read_dir(dir.path()).unwrap() {
                let f = f.unwrap().path();
                if f.file_name().unwrap().to_string_lossy().starts_with("s.") {
                    std::fs::remove_file(f).unwrap();
                }
            }
            let axis_text = axis.to_string();
            let args = [
                "project",
                spec,
                "w.npy",
                "--output",
                "s.{rank}.npy",
                "--shard-axis",
                &axis_text,
                "--radius",
                "1.5",
            ];
            let Some(out) = mpirun(p, &args, dir.path()) else {
                return;
            };
            assert!(out.status.success(), "{}", text(&out));
            let written = (0..p)
                .filter(|r| dir.path().join(format!("s.{r}.npy")).exists())
                .count();
            assert_eq!(written, p.min(x.shape()[axis]), "{spec} on {p}");
            close(&gather(dir.path(), "s", p, axis), &want, exact, spec);
        }
    }
}

#[test]
fn a_missing_shard_stops_every_process_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let x = tensor(&[6, 4], 3);
    write_npy(dir.path().join("w.0.npy"), &x).unwrap();
    write_npy(dir.path().join("w.2.npy"), &x).unwrap();
    let args = [
        "project",
        "l1 over dim0 of linf over dim1",
        "w.{rank}.npy",
        "--output",
        "o.{rank}.npy",
        "--shard-axis",
        "0",
        "--radius",
        "1",
    ];
    let Some(out) = mpirun(3, &args, dir.path()) else {
        return;
    };
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // The failing process says why. (The others say that another process failed — unless
    // mpirun, which aborts the job when one process exits with an error, kills them first.)
    // It says so before it tells the others (who then fail, and mpirun may kill it), and once.
    assert_eq!(
        err.matches("could not open 'w.1.npy'").count(),
        1,
        "{}",
        text(&out)
    );
    for r in 0..3 {
        assert!(
            !dir.path().join(format!("o.{r}.npy")).exists(),
            "o.{r}.npy was written"
        );
    }
}

#[test]
fn shards_that_do_not_fit_stop_every_process_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(dir.path().join("w.0.npy"), &tensor(&[3, 4], 1)).unwrap();
    write_npy(dir.path().join("w.1.npy"), &tensor(&[3, 5], 2)).unwrap();
    let args = [
        "project",
        "l1 over dim0 of linf over dim1",
        "w.{rank}.npy",
        "--output",
        "o.{rank}.npy",
        "--shard-axis",
        "0",
        "--radius",
        "1",
    ];
    let Some(out) = mpirun(2, &args, dir.path()) else {
        return;
    };
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // Every process finds the same mismatch; mpirun may kill one before it prints it.
    assert!(
        err.matches("do not fit together").count() >= 1,
        "{}",
        text(&out)
    );
    assert!(err.contains("rank 1: (3, 5) f64"), "{}", text(&out));
    assert!(!dir.path().join("o.0.npy").exists() && !dir.path().join("o.1.npy").exists());
}

/// The names in `dir` of multiproj's temporary files (none may be left after a run).
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".multiproj-"))
        .collect()
}

#[test]
fn one_output_file_written_by_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let x = tensor(&[9, 5], 7);
    let xf = {
        let mut f = ArrayD::zeros(IxDyn(&[9, 5]).f());
        f.assign(&x);
        f
    };
    for (spec, exact) in [
        ("l1 over dim0 of linf over dim1", true),
        ("l1 over dim1 of l2 over dim0", false),
    ] {
        for fortran in [false, true] {
            write_npy(dir.path().join("w.npy"), if fortran { &xf } else { &x }).unwrap();
            let want = whole(dir.path(), spec, "1.5");
            // 7 processes over 5 columns: two have nothing to write.
            for (p, axis) in [(2usize, 0usize), (3, 1), (7, 1), (3, 0)] {
                // An existing output is replaced.
                std::fs::write(dir.path().join("o.npy"), b"old").unwrap();
                let axis_text = axis.to_string();
                let args = [
                    "project",
                    spec,
                    "w.npy",
                    "--output",
                    "o.npy",
                    "--shard-axis",
                    &axis_text,
                    "--radius",
                    "1.5",
                    "--sync",
                ];
                let Some(out) = mpirun(p, &args, dir.path()) else {
                    return;
                };
                let what = format!("{spec}, {p} processes, axis {axis}, F {fortran}");
                assert!(out.status.success(), "{what}: {}", text(&out));
                let got: ArrayD<f64> = read_npy(dir.path().join("o.npy")).unwrap();
                close(&got, &want, exact, &what);
                let header = std::fs::read(dir.path().join("o.npy")).unwrap();
                let fortran_order =
                    String::from_utf8_lossy(&header[..128]).contains("'fortran_order': True");
                assert_eq!(fortran_order, fortran, "{what}: the input's order is kept");
                assert!(temporaries(dir.path()).is_empty(), "{what}");
            }
        }
    }

    // One shard file per process, one output.
    for (r, (a, b)) in [(0usize, 2usize), (2, 7), (7, 9)].into_iter().enumerate() {
        let part = x.slice_axis(Axis(0), Slice::from(a..b)).to_owned();
        write_npy(dir.path().join(format!("w.{r}.npy")), &part).unwrap();
    }
    write_npy(dir.path().join("w.npy"), &x).unwrap();
    let want = whole(dir.path(), "l1 over dim0 of linf over dim1", "1.5");
    let args = [
        "project",
        "l1 over dim0 of linf over dim1",
        "w.{rank}.npy",
        "--output",
        "o.npy",
        "--shard-axis",
        "0",
        "--radius",
        "1.5",
    ];
    let Some(out) = mpirun(3, &args, dir.path()) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    close(
        &read_npy(dir.path().join("o.npy")).unwrap(),
        &want,
        true,
        "shard files, one output",
    );
}

#[test]
fn one_output_is_left_alone_when_a_process_fails() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(dir.path().join("w.0.npy"), &tensor(&[3, 4], 1)).unwrap();
    write_npy(dir.path().join("w.2.npy"), &tensor(&[3, 4], 2)).unwrap();
    std::fs::write(dir.path().join("o.npy"), b"old").unwrap();
    let args = [
        "project",
        "l1 over dim0 of linf over dim1",
        "w.{rank}.npy",
        "--output",
        "o.npy",
        "--shard-axis",
        "0",
        "--radius",
        "1",
    ];
    let Some(out) = mpirun(3, &args, dir.path()) else {
        return;
    };
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(dir.path().join("o.npy")).unwrap(), b"old");
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );

    // Standard output cannot be written by several processes.
    let args = [
        "project",
        "l1 over dim0 of linf over dim1",
        "w.{rank}.npy",
        "--output",
        "-",
        "--shard-axis",
        "0",
        "--radius",
        "1",
    ];
    let Some(out) = mpirun(2, &args, dir.path()) else {
        return;
    };
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not to standard output"),
        "{}",
        text(&out)
    );
}

/// A process killed outright (SIGKILL) while the job runs: mpirun ends the others, the output
/// is never partial — absent, or (had the kill come after every process finished writing)
/// the whole result — and no temporary file is left.
#[test]
fn a_killed_process_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let x = tensor(&[1200, 1000], 5);
    write_npy(dir.path().join("w.npy"), &x).unwrap();
    let spec = "l1 over dim0 of linf over dim1";
    let want = whole(dir.path(), spec, "3");
    // Rank 1 runs the command in the background and kills it in the middle of the job.
    let script = dir.path().join("kill-rank-1.sh");
    std::fs::write(
        &script,
        r#"#!/bin/sh
rank="${OMPI_COMM_WORLD_RANK:-$PMI_RANK}"
trigger="$1"
shift
if [ "$rank" != 1 ]; then exec "$@"; fi
"$@" &
pid=$!
# Kill the command inside the job: once it has mapped its input ("mapped"), or once it has
# opened the one output rank 0 created ("joined": an unnamed file, shown as deleted).
# (Until it ends: a zombie, not yet waited for, counts as ended.)
while [ -e /proc/$pid ] && ! grep -q ') Z' /proc/$pid/stat 2>/dev/null; do
  if [ "$trigger" = mapped ]; then
    grep -q 'w[.]npy' /proc/$pid/maps 2>/dev/null && hit=1
  else
    ls -l /proc/$pid/fd 2>/dev/null | grep -q '(deleted)' && hit=1
  fi
  if [ -n "$hit" ]; then
    kill -9 $pid
    wait $pid
    exit 137
  fi
done
echo "kill-rank-1.sh: $trigger never happened" >&2
wait $pid
"#,
    )
    .unwrap();
    for (output, kept, trigger) in [
        ("o.npy", None, "joined"),
        ("o.npy", None, "mapped"),
        ("o.{rank}.npy", None, "mapped"),
        ("o.npy", Some(b"old"), "joined"),
    ] {
        if let Some(old) = kept {
            std::fs::write(dir.path().join("o.npy"), old).unwrap();
        }
        let Ok(version) = Command::new("mpirun").arg("--version").output() else {
            assert!(std::env::var("MULTIPROJ_REQUIRE_MPI").as_deref() != Ok("1"));
            return;
        };
        let mut cmd = Command::new("mpirun");
        if String::from_utf8_lossy(&version.stdout).contains("Open MPI") {
            cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
                .arg("--oversubscribe")
                .args(["--timeout", "300"]);
        }
        cmd.current_dir(dir.path())
            .env("RAYON_NUM_THREADS", "1")
            .args(["-n", "2", "sh"])
            .arg(&script)
            .arg(trigger)
            .args([BIN, "project", spec, "w.npy", "--output", output])
            .args(["--shard-axis", "0", "--radius", "3"]);
        // The job fails within seconds; mpirun itself may then hang (see `output_within`),
        // which is Open MPI's business: what is checked is what the killed job left behind.
        let (out, killed) = output_within(&mut cmd, Duration::from_secs(120));
        if killed {
            eprintln!("mpirun hung after the job was killed ({trigger}); it was killed");
        }
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            temporaries(dir.path()).is_empty(),
            "{:?}",
            temporaries(dir.path())
        );
        if output == "o.npy" {
            match std::fs::read(dir.path().join("o.npy")) {
                Ok(bytes) if kept.is_some_and(|k| bytes == k) => {}
                Ok(_) => close(
                    &read_npy(dir.path().join("o.npy")).unwrap(),
                    &want,
                    true,
                    "an output left by a killed job",
                ),
                Err(_) => assert!(kept.is_none(), "the old output was removed"),
            }
        } else {
            // Each shard file is the whole of its shard or absent.
            let mut start = 0;
            for r in 0..2 {
                let len = 600;
                if let Ok(got) = read_npy::<_, ArrayD<f64>>(dir.path().join(format!("o.{r}.npy"))) {
                    let part = want
                        .slice_axis(Axis(0), Slice::from(start..start + len))
                        .to_owned();
                    close(&got, &part, true, "a shard left by a killed job");
                }
                start += len;
            }
        }
        for f in ["o.npy", "o.0.npy", "o.1.npy"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
    }
}

#[test]
fn in_place_replaces_each_shard_file_once_every_process_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let x = tensor(&[9, 4], 11);
    write_npy(dir.path().join("w.npy"), &x).unwrap();
    for (r, (a, b)) in [(0usize, 4usize), (4, 6), (6, 9)].into_iter().enumerate() {
        let part = x.slice_axis(Axis(0), Slice::from(a..b)).to_owned();
        write_npy(dir.path().join(format!("w.{r}.npy")), &part).unwrap();
    }
    let want = whole(dir.path(), "l1 over dim0 of l1 over dim1", "2");
    let args = [
        "project",
        "l1 over dim0 of l1 over dim1",
        "w.{rank}.npy",
        "--in-place",
        "--shard-axis",
        "0",
        "--radius",
        "2",
    ];
    let Some(out) = mpirun(3, &args, dir.path()) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    close(&gather(dir.path(), "w", 3, 0), &want, false, "in place");

    // A failure on one process (a shard that is not an .npy file) leaves every shard as it was.
    let before: Vec<Vec<u8>> = (0..3)
        .map(|r| std::fs::read(dir.path().join(format!("w.{r}.npy"))).unwrap())
        .collect();
    std::fs::write(dir.path().join("w.3.npy"), b"not an npy file").unwrap();
    let Some(out) = mpirun(4, &args, dir.path()) else {
        return;
    };
    assert!(!out.status.success(), "{}", text(&out));
    for (r, b) in before.iter().enumerate() {
        assert_eq!(
            &std::fs::read(dir.path().join(format!("w.{r}.npy"))).unwrap(),
            b,
            "w.{r}.npy changed"
        );
    }
}

#[test]
fn in_place_under_mpi_refuses_map_and_a_shared_input() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(dir.path().join("w.npy"), &tensor(&[4, 4], 1)).unwrap();
    write_npy(dir.path().join("w.0.npy"), &tensor(&[4, 4], 1)).unwrap();
    write_npy(dir.path().join("w.1.npy"), &tensor(&[4, 4], 2)).unwrap();
    let before = std::fs::read(dir.path().join("w.npy")).unwrap();
    for (input, mode, says) in [
        ("w.npy", "--in-place", "INPUT must"),
        (
            "w.{rank}.npy",
            "--in-place=map",
            "--in-place=map is not supported",
        ),
    ] {
        let args = [
            "project",
            "l1 over dim0 of linf over dim1",
            input,
            mode,
            "--shard-axis",
            "0",
            "--radius",
            "1",
        ];
        let Some(out) = mpirun(2, &args, dir.path()) else {
            return;
        };
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            text(&out)
        );
    }
    assert_eq!(std::fs::read(dir.path().join("w.npy")).unwrap(), before);
}
