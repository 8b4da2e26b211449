//! `multiproj project --shard-axis` under `mpirun` (feature `mpi`): one shard file per process
//! or one shared input, against the single-process command on the whole tensor; an input that
//! is missing on one process, and shards that do not fit, stop every process and leave no
//! output. Needs `mpirun` on the PATH: without it the tests say so and pass, unless
//! MULTIPROJ_REQUIRE_MPI=1 (CI sets it).
#![cfg(feature = "mpi")]

use std::path::Path;
use std::process::{Command, Output};

use ndarray::{ArrayD, Axis, IxDyn, Slice, concatenate};
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
            .arg("--oversubscribe");
    }
    cmd.current_dir(dir)
        .env("RAYON_NUM_THREADS", "1")
        .arg("-n")
        .arg(p.to_string())
        .arg(BIN)
        .args(args);
    Some(cmd.output().expect("mpirun runs"))
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
    assert!(err.contains("could not open 'w.1.npy'"), "{}", text(&out));
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

#[test]
fn several_processes_need_rank_in_the_output() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(dir.path().join("w.npy"), &tensor(&[4, 4], 1)).unwrap();
    let args = [
        "project",
        "l1 over dim0 of linf over dim1",
        "w.npy",
        "--output",
        "o.npy",
        "--shard-axis",
        "0",
        "--radius",
        "1",
    ];
    let Some(out) = mpirun(2, &args, dir.path()) else {
        return;
    };
    assert!(!out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("every process writes its own shard"));
    assert!(!dir.path().join("o.npy").exists());
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
