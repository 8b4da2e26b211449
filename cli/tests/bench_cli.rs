//! End-to-end tests of `multiproj bench`: timing a projection on tiny random tensors (the JSON
//! object has every documented key, with values that agree with each other), the bandwidth
//! probe, and bad arguments, which exit with code 2 before any data is generated.

use std::process::Command;

use serde_json::Value;

const BILEVEL: &str = "l1 over dim0 of linf over dim1";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_multiproj"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run multiproj");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

#[test]
fn json_has_the_keys_with_sane_values() {
    let v = json(&[
        BILEVEL,
        "--shape",
        "40x32",
        "--radius-frac",
        "0.25",
        "--repeat",
        "2",
        "--backend",
        "interp",
        "--threads",
        "1",
        "--json",
    ]);
    for key in [
        "median_ms",
        "min_ms",
        "max_ms",
        "stages",
        "bytes_moved",
        "gbps",
        "backend",
        "threads",
        "dtype",
        "shape",
        "zero_groups",
        "groups",
        "untouched",
        "projected",
        "radius",
        "repeat",
    ] {
        assert!(v.get(key).is_some(), "`{key}` missing from {v}");
    }
    assert_eq!(v["backend"], "interp");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["dtype"], "f64");
    assert_eq!(v["shape"], serde_json::json!([40, 32]));
    assert_eq!(v["repeat"], 2);
    assert_eq!(v["groups"], 40);
    assert_eq!(v["times_ms"].as_array().map(Vec::len), Some(2));
    let (min, med, max) = (num(&v, "min_ms"), num(&v, "median_ms"), num(&v, "max_ms"));
    assert!(0.0 < min && min <= med && med <= max, "{min} {med} {max}");
    let groups = num(&v, "zero_groups") + num(&v, "projected") + num(&v, "untouched");
    assert_eq!(groups, 40.0);
    // A quarter of the norm zeroes some rows and clips others.
    assert!(
        num(&v, "zero_groups") > 0.0 && num(&v, "projected") > 0.0,
        "{v}"
    );
    assert!((num(&v, "radius") / num(&v, "norm") - 0.25).abs() < 1e-12);
    let stages = v["stages"].as_object().expect("stages is an object");
    for stage in ["reduce", "solve", "apply"] {
        assert!(stages[stage].as_f64().is_some_and(|t| t >= 0.0), "{stage}");
    }
    // Out of place: the whole tensor is read by reduce; apply reads and writes the clipped rows
    // and only writes the zeroed ones (rows of four whole cache lines).
    let row = 32.0 * 8.0;
    let expected = 40.0 * row + 2.0 * num(&v, "projected") * row + num(&v, "zero_groups") * row;
    assert_eq!(num(&v, "bytes_moved"), expected);
    let gbps = num(&v, "bytes_moved") / (med * 1e-3) / 1e9;
    assert!((num(&v, "gbps") - gbps).abs() <= 1e-9 * gbps);
}

#[test]
fn in_place_f32_fortran_with_a_zero_fraction() {
    let v = json(&[
        "l1 over dim1 of l1 over dim0",
        "--shape",
        "32x50",
        "--dtype",
        "f32",
        "--order",
        "f",
        "--zero-frac",
        "0.5",
        "--in-place",
        "--repeat",
        "2",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_eq!(v["dtype"], "f32");
    assert_eq!(v["order"], "F");
    assert_eq!(v["in_place"], true);
    assert_eq!(v["groups"], 50);
    assert!((num(&v, "zero_groups") - 25.0).abs() <= 1.0, "{v}");
    // Innermost l1: shrunk groups are read again for their threshold.
    assert!(v["stages"].get("threshold").is_some(), "{v}");
    // In place, untouched groups cost nothing beyond the reduce pass (columns of two whole
    // cache lines).
    let col = 32.0 * 4.0;
    let expected = 1600.0 * 4.0
        + num(&v, "projected") * col
        + 2.0 * num(&v, "projected") * col
        + num(&v, "zero_groups") * col;
    assert_eq!(num(&v, "bytes_moved"), expected);
}

#[test]
fn a_radius_in_the_spec_and_the_human_report() {
    let out = run(&[
        "l1 over dim0 of l2 over dim1 <= 2",
        "--shape",
        "8x8x2",
        "--repeat",
        "1",
    ]);
    // A rank-3 shape does not fit a rank-2 spec: a spec error.
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(&[
        "l1 over dim0 of l2 over dims1.. <= 2",
        "--shape",
        "8x8x2",
        "--repeat",
        "1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for label in [
        "spec",
        "groups",
        "time",
        "stages",
        "bytes moved",
        "throughput",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(label)),
            "no `{label}` line in\n{}",
            out.stdout
        );
    }
}

#[test]
fn probe() {
    let v = json(&["--probe", "--size-mib", "8", "--repeat", "2", "--json"]);
    for key in ["read_gbps", "write_gbps", "copy_gbps"] {
        assert!(num(&v, key) > 0.0, "{key} in {v}");
    }
    assert_eq!(v["size_mib"], 8);
}

#[test]
fn probe_floor() {
    let v = json(&[
        BILEVEL,
        "--shape",
        "64x64",
        "--radius",
        "1",
        "--repeat",
        "1",
        "--probe-floor",
        "--size-mib",
        "4",
        "--json",
    ]);
    assert!(num(&v, "floor_ms") > 0.0);
    assert!(num(&v, "ratio_to_floor") > 0.0);
    assert!(v["probe"]["read_gbps"].as_f64().is_some());
}

#[test]
fn bad_arguments_exit_2() {
    let cases: &[&[&str]] = &[
        // Both a radius and a fraction of the norm.
        &[
            BILEVEL,
            "--shape",
            "4x4",
            "--radius",
            "1",
            "--radius-frac",
            "0.5",
        ],
        // Neither (and none in the spec).
        &[BILEVEL, "--shape", "4x4"],
        // Bad shapes.
        &[BILEVEL, "--shape", "4xx4", "--radius", "1"],
        &[BILEVEL, "--shape", "four", "--radius", "1"],
        &[BILEVEL, "--shape", "0x4", "--radius", "1"],
        // No shape, no spec.
        &[BILEVEL, "--radius", "1"],
        &["--shape", "4x4", "--radius", "1"],
        // A fraction out of range, a spec that does not fit, a bad spec, an unknown backend.
        &[BILEVEL, "--shape", "4x4", "--radius-frac", "-1"],
        &[BILEVEL, "--shape", "4x4", "--zero-frac", "1.5"],
        &[BILEVEL, "--shape", "4x4x4", "--radius", "1"],
        &["l3 over dim0", "--shape", "4", "--radius", "1"],
        &[
            BILEVEL,
            "--shape",
            "4x4",
            "--radius",
            "1",
            "--backend",
            "gpu",
        ],
        &[BILEVEL, "--shape", "4x4", "--radius", "1", "--repeat", "0"],
        // The spec fixes the radius.
        &[
            "l1 over dims0.. <= 1",
            "--shape",
            "4x4",
            "--radius-frac",
            "0.5",
        ],
        // The probe takes no spec.
        &["--probe", BILEVEL],
    ];
    for args in cases {
        let out = run(args);
        assert_eq!(
            out.code, 2,
            "bench {args:?}: stdout {} stderr {}",
            out.stdout, out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "bench {args:?} printed {}",
            out.stdout
        );
        assert!(!out.stderr.is_empty(), "bench {args:?} said nothing");
    }
}

/// `--input` times the projection of a file's data: its shape, dtype and order, and the same
/// norm `multiproj norm` gives.
#[test]
fn bench_on_a_files_data() {
    let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/weights.npy");
    let spec = "l1 over dim0 of linf over dim1";
    let v = json(&[
        spec,
        "--input",
        weights,
        "--radius-frac",
        "0.25",
        "--repeat",
        "1",
        "--json",
    ]);
    assert_eq!(v["shape"], serde_json::json!([512, 64]));
    assert_eq!(v["dtype"], "f32");
    assert!(v["data"].as_str().unwrap().contains("weights.npy"), "{v}");
    let out = Command::new(env!("CARGO_BIN_EXE_multiproj"))
        .args(["norm", spec, weights])
        .output()
        .unwrap();
    let norm: f64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(num(&v, "norm"), norm);
    // --input and --shape are exclusive.
    let out = run(&[spec, "--input", weights, "--shape", "4x4", "--radius", "1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// `--input` reads only regular files: a directory or a FIFO (which another user could have put
/// there, and which would block a reader) is refused with a message naming it, without waiting.
#[test]
fn bench_input_refuses_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("w.npy");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for path in [dir.path().to_path_buf(), fifo] {
        let p = path.to_str().unwrap();
        let out = run(&[
            "l1 over dim0 of linf over dim1",
            "--input",
            p,
            "--radius",
            "1",
        ]);
        assert_eq!(out.code, 1, "{p}: {}", out.stderr);
        assert!(
            out.stderr.contains("not a regular file"),
            "{p}: {}",
            out.stderr
        );
    }
}

#[test]
fn column_groups_of_a_c_order_matrix_are_counted_by_cache_lines() {
    // Eight f64 columns share each cache line of a row: a line is only written when all eight
    // columns are zeroed, so about half the columns zeroed leaves nearly every line read and
    // written.
    let v = json(&[
        "l1 over dim1 of linf over dim0",
        "--shape",
        "16x64",
        "--zero-frac",
        "0.5",
        "--repeat",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    let all = 16.0 * 64.0 * 8.0;
    let zeroed = num(&v, "zero_groups");
    assert!((zeroed - 32.0).abs() <= 2.0, "{v}");
    assert_eq!(num(&v, "bytes_read_only"), all);
    assert_eq!(
        num(&v, "bytes_read_write") + num(&v, "bytes_write_only"),
        all,
        "{v}"
    );
    // Counted by groups, the zeroed columns' bytes would all be written only.
    assert!(num(&v, "bytes_write_only") < zeroed * 16.0 * 8.0, "{v}");
}
