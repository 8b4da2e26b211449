//! Sharded projections over a real MPI (feature `mpi`): `examples/shard_mpi.rs` under
//! `mpirun -n 2, 3, 4` (oversubscribed on this machine), checked against the single-process
//! projection; shards that do not fit (the same error on every rank); a process that dies
//! (the job ends with an error instead of hanging). Needs `mpirun` on the PATH: without it the
//! tests say so and pass, unless MULTIPROJ_REQUIRE_MPI=1 (CI sets it).
#![cfg(feature = "mpi")]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn example() -> PathBuf {
    // target/<profile>/deps/mpi-<hash> → target/<profile>/examples/shard_mpi
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join("shard_mpi")
}

/// `mpirun -n P shard_mpi MODE`, or None when there is no mpirun and it is not required.
fn mpirun(p: usize, mode: &str) -> Option<Output> {
    let version = Command::new("mpirun").arg("--version").output();
    let Ok(version) = version else {
        assert!(
            std::env::var("MULTIPROJ_REQUIRE_MPI").as_deref() != Ok("1"),
            "mpirun is not on the PATH, and MULTIPROJ_REQUIRE_MPI=1"
        );
        eprintln!("mpirun is not on the PATH: the MPI tests do not run");
        return None;
    };
    let open_mpi = String::from_utf8_lossy(&version.stdout).contains("Open MPI");
    let bin = example();
    assert!(
        bin.exists(),
        "{} was not built (cargo test builds the examples)",
        bin.display()
    );
    let mut cmd = Command::new("mpirun");
    if open_mpi {
        // Open MPI refuses root unless told, and more ranks than cores unless oversubscribed.
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .arg("--oversubscribe");
    }
    cmd.arg("-n").arg(p.to_string()).arg(&bin).arg(mode);
    // One rayon thread per process: P processes share the machine's cores.
    cmd.env("RAYON_NUM_THREADS", "1");
    let start = Instant::now();
    let out = cmd.output().expect("mpirun runs");
    assert!(
        start.elapsed() < Duration::from_secs(240),
        "mpirun took {:?}",
        start.elapsed()
    );
    Some(out)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn sharded_projections_equal_the_single_process_one_on_2_3_4_processes() {
    for p in [2, 3, 4] {
        let Some(out) = mpirun(p, "check") else {
            return;
        };
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!(
                "504 sharded projections on {p} processes, 0 mismatches"
            )),
            "{t}"
        );
    }
}

#[test]
fn shards_that_do_not_fit_are_the_same_error_on_every_rank() {
    let Some(out) = mpirun(3, "mismatch") else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("rank ")).collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 3, "{}", text(&out));
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once(": ").unwrap().1)
        .collect();
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
    assert!(
        messages[0].contains("do not fit together"),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains("rank 1: (3, 5) f64"),
        "{}",
        messages[0]
    );
}

#[test]
fn a_process_that_dies_ends_the_job_with_an_error() {
    let Some(out) = mpirun(3, "die") else { return };
    assert!(!out.status.success(), "{}", text(&out));
    // Nobody finished the projection without the dead process.
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Ok("),
        "{}",
        text(&out)
    );
}
