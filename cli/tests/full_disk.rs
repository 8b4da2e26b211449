//! A full disk is an error, not a crash: the output's space is reserved before anything is
//! computed, so `project` onto a file system too small for the result exits 1 with a
//! diagnostic naming the file, and leaves nothing behind (before, writing through the map hit
//! SIGBUS, killed the process and left the temporary file, filling the disk).
//!
//! Needs a small file system: the test mounts a 1 MiB tmpfs, which takes root (or
//! CAP_SYS_ADMIN). Where mounting is not permitted it says so on stderr and checks nothing.

use std::process::Command;

mod mount;
use mount::Mounted;

#[test]
fn a_full_disk_is_an_error_that_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npy");
    // 2 MiB of f64: twice the file system below.
    let x = ndarray::Array2::from_shape_fn((512, 512), |(i, j)| ((i * 7 + j) % 13) as f64 - 6.0);
    ndarray_npy::write_npy(&input, &x).unwrap();
    let Some(small) = Mounted::tmpfs(&dir.path().join("small"), "size=1m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let out = small.0.join("out.npy");
    let run = Command::new(env!("CARGO_BIN_EXE_multiproj"))
        .args(["project", "l1 over dim0 of linf over dim1"])
        .arg(&input)
        .args(["--radius", "10", "--output"])
        .arg(&out)
        .env("MULTIPROJ_KERNEL_CACHE", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("could not allocate space for") && stderr.contains("out.npy"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&small.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
