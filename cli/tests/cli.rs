//! End-to-end tests of the `multiproj` binary: every command on real `.npy` files written into
//! a temporary directory, and every kind of bad input — each failure checked for its exit code,
//! its message (an inline snapshot of stderr), and for leaving the directory exactly as it was
//! (no output, no temporary file, the input byte for byte unchanged).
//!
//! The binary runs with the temporary directory as its working directory and gets relative
//! paths, so messages do not depend on where the system keeps temporary files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use multiproj::Projection;
use ndarray::{Array2, ArrayD, ShapeBuilder, array};
use ndarray_npy::{read_npy, write_npy};
use serde_json::Value;

const BILEVEL: &str = "l1 over dim0 of linf over dim1";

/// A 4×3 matrix whose bi-level l1,∞ norm is 3 + 0.2 + 2.5 + 0.4 = 6.1.
fn weights() -> Array2<f64> {
    array![
        [3.0, -1.0, 0.5],
        [0.1, 0.2, -0.1],
        [-2.0, 2.5, 1.0],
        [0.4, -0.3, 0.2]
    ]
}

/// The same values laid out in Fortran order.
fn weights_f() -> Array2<f64> {
    let c = weights();
    let mut f = Array2::zeros(c.dim().f());
    f.assign(&c);
    f
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A temporary working directory for one test.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn write<A, S, D>(&self, name: &str, a: &ndarray::ArrayBase<S, D>)
    where
        A: ndarray_npy::WritableElement,
        S: ndarray::Data<Elem = A>,
        D: ndarray::Dimension,
    {
        write_npy(self.path(name), a).expect("write an .npy file");
    }

    fn write_bytes(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).expect("write a file");
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).expect("read a file")
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new(env!("CARGO_BIN_EXE_multiproj"))
            .args(args)
            .current_dir(self.tmp.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run multiproj");
        Out {
            code: out.status.code().expect("an exit code, not a signal"),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
        }
    }

    /// Runs a command that must succeed with nothing on stderr; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "{args:?} failed:\n{}", out.stderr);
        assert_eq!(out.stderr, "", "{args:?} wrote to stderr");
        out.stdout
    }

    /// Every file in the directory (recursively) with its bytes.
    fn state(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in fs::read_dir(dir).expect("list a directory") {
                let path = entry.expect("a directory entry").path();
                let rel = path
                    .strip_prefix(root)
                    .expect("inside the root")
                    .to_path_buf();
                if path.is_dir() {
                    out.insert(rel, b"<dir>".to_vec());
                    walk(root, &path, out);
                } else {
                    out.insert(rel, fs::read(&path).unwrap_or_default());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.tmp.path(), self.tmp.path(), &mut out);
        out
    }

    /// Runs a command that must fail with `code`, print nothing on stdout and leave every file
    /// in the directory as it was. Returns stderr with the directory's path replaced by `[TMP]`.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let before = self.state();
        let out = self.run(args);
        assert_eq!(out.code, code, "{args:?}:\n{}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?} printed on stdout");
        assert!(!out.stderr.is_empty(), "{args:?} printed no diagnostic");
        assert!(
            !out.stderr.contains("panicked"),
            "{args:?} panicked:\n{}",
            out.stderr
        );
        assert_eq!(
            self.state(),
            before,
            "{args:?} changed the directory (an output or temporary file left, or the input \
             modified)"
        );
        self.redact(&out.stderr)
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        let dir = self.tmp.path();
        if let Ok(canonical) = dir.canonicalize() {
            text = text.replace(&canonical.display().to_string(), "[TMP]");
        }
        text.replace(&dir.display().to_string(), "[TMP]")
    }
}

/// A raw version-1.0 `.npy` file with any `descr` and `data_len` zero bytes of data.
fn raw_npy(descr: &str, shape: &[usize], data_len: usize) -> Vec<u8> {
    let shape = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 6 + 4 + dict.len() + 1;
    let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([1, 0]);
    out.extend((header_len as u16).to_le_bytes());
    out.extend(dict.bytes());
    out.resize(10 + header_len - 1, b' ');
    out.push(b'\n');
    out.resize(out.len() + data_len, 0);
    out
}

/// The data bytes of an `.npy` file (everything after the header).
fn data(bytes: &[u8]) -> &[u8] {
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    &bytes[10 + len..]
}

/// The header of an `.npy` file as text.
fn header(bytes: &[u8]) -> String {
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    String::from_utf8_lossy(&bytes[10..10 + len]).into_owned()
}

fn json(text: &str) -> Value {
    assert!(
        text.ends_with('\n') && text.trim_end().lines().count() == 1,
        "{text}"
    );
    serde_json::from_str(text).expect("one JSON object")
}

// ---------------------------------------------------------------------------------------------
// Happy paths
// ---------------------------------------------------------------------------------------------

#[test]
fn project_out_of_place_keeps_shape_dtype_and_order() {
    let proj = Projection::compile(BILEVEL)
        .unwrap()
        .with_radius(1.0)
        .unwrap();
    for (order, input) in [("C", weights()), ("F", weights_f())] {
        let d = Dir::new();
        d.write("w64.npy", &input);
        d.write("w32.npy", &input.mapv(|x| x as f32));

        assert_eq!(
            d.ok(&[
                "project", BILEVEL, "w64.npy", "--output", "o64.npy", "--radius", "1"
            ]),
            ""
        );
        assert_eq!(
            d.ok(&["project", BILEVEL, "w32.npy", "-o", "o32.npy", "-r", "1"]),
            ""
        );

        let fortran = if order == "F" { "True" } else { "False" };
        for (name, descr) in [("o64.npy", "<f8"), ("o32.npy", "<f4")] {
            let h = header(&d.read(name));
            assert!(h.contains(&format!("'descr': '{descr}'")), "{h}");
            assert!(h.contains(&format!("'fortran_order': {fortran}")), "{h}");
            assert!(h.contains("'shape': (4, 3)"), "{h}");
        }
        let o64: ArrayD<f64> = read_npy(d.path("o64.npy")).unwrap();
        assert_eq!(o64, proj.project(&input).unwrap().into_dyn());
        let o32: ArrayD<f32> = read_npy(d.path("o32.npy")).unwrap();
        assert_eq!(
            o32,
            proj.project(&input.mapv(|x| x as f32)).unwrap().into_dyn()
        );
        assert!(proj.norm(&o64).unwrap() <= 1.0 + 1e-12);
        // The weak second row is gone; the input is unchanged.
        assert!(
            o64.index_axis(ndarray::Axis(0), 1)
                .iter()
                .all(|&x| x == 0.0)
        );
        let back: ArrayD<f64> = read_npy(d.path("w64.npy")).unwrap();
        assert_eq!(back, input.clone().into_dyn());
        // Only the inputs and the outputs: no temporary files.
        assert_eq!(d.state().len(), 4);
    }
}

#[test]
fn project_replaces_an_existing_output() {
    let d = Dir::new();
    d.write("w.npy", &weights());
    d.write_bytes("o.npy", b"old contents");
    d.ok(&["project", BILEVEL, "w.npy", "-o", "o.npy", "--radius", "1"]);
    let o: ArrayD<f64> = read_npy(d.path("o.npy")).unwrap();
    assert_eq!(o.shape(), [4, 3]);
}

#[test]
fn project_in_place_in_both_orders() {
    let proj = Projection::compile(BILEVEL)
        .unwrap()
        .with_radius(1.0)
        .unwrap();
    for input in [weights(), weights_f()] {
        let d = Dir::new();
        d.write("w.npy", &input.mapv(|x| x as f32));
        let before = d.read("w.npy");
        assert_eq!(
            d.ok(&["project", BILEVEL, "w.npy", "--in-place", "--radius", "1"]),
            ""
        );
        let after = d.read("w.npy");
        assert_eq!(header(&after), header(&before));
        let got: ArrayD<f32> = read_npy(d.path("w.npy")).unwrap();
        assert_eq!(
            got,
            proj.project(&input.mapv(|x| x as f32)).unwrap().into_dyn()
        );
        assert_eq!(d.state().len(), 1);
    }
}

#[test]
fn a_radius_in_the_spec_needs_no_flag() {
    let d = Dir::new();
    d.write("w.npy", &weights());
    d.ok(&[
        "project",
        "l1 over dim0 of linf over dim1 <= 1",
        "w.npy",
        "-o",
        "o.npy",
    ]);
    let o: ArrayD<f64> = read_npy(d.path("o.npy")).unwrap();
    let norm = d.ok(&["norm", BILEVEL, "o.npy"]);
    assert!(norm.trim().parse::<f64>().unwrap() <= 1.0 + 1e-12);
    assert_eq!(o.shape(), [4, 3]);
}

#[test]
fn input_already_inside_the_ball_is_copied_bit_for_bit() {
    let d = Dir::new();
    d.write("w.npy", &weights());
    d.ok(&["project", BILEVEL, "w.npy", "-o", "o.npy", "--radius", "10"]);
    assert_eq!(d.read("o.npy"), d.read("w.npy"));
}

#[test]
fn stats_are_human_readable_and_consistent() {
    let d = Dir::new();
    d.write("w.npy", &weights());
    let out = d.ok(&[
        "project",
        BILEVEL,
        "w.npy",
        "-o",
        "o.npy",
        "--radius",
        "1",
        "--stats",
        "--threads",
        "2",
    ]);
    let field = |name: &str| -> String {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no `{name}` line in\n{out}"));
        line[name.len()..].trim().to_owned()
    };
    assert_eq!(field("spec"), BILEVEL);
    assert_eq!(field("input"), "w.npy  (f64, shape 4x3, C order)");
    assert_eq!(field("output"), "o.npy");
    assert_eq!(field("backend"), "jit, 2 threads");
    assert_eq!(field("radius"), "1");
    let norm_before = Projection::compile(BILEVEL)
        .unwrap()
        .norm(&weights())
        .unwrap();
    assert_eq!(field("norm before"), norm_before.to_string());
    let after: f64 = field("norm after").parse().unwrap();
    assert!(after <= 1.0 + 1e-12, "{after}");
    // Rows 0 and 2 are clipped, rows 1 and 3 zeroed (their max is below the threshold).
    let groups = field("groups");
    assert!(groups.starts_with("4 total: "), "{groups}");
    assert!(
        groups.contains("zeroed") && groups.contains("clipped") && groups.contains("untouched")
    );
    let nonzeros = field("nonzeros");
    assert!(nonzeros.starts_with("12 -> "), "{nonzeros}");
    let time = field("time");
    assert!(
        time.contains("reduce") && time.contains("apply") && time.contains("total"),
        "{time}"
    );

    // Without --stats: nothing at all.
    assert_eq!(
        d.ok(&["project", BILEVEL, "w.npy", "-o", "o.npy", "--radius", "1"]),
        ""
    );
}

#[test]
fn json_statistics_are_one_consistent_object() {
    let proj = Projection::compile(BILEVEL)
        .unwrap()
        .with_radius(1.0)
        .unwrap();
    let (_, report) = proj.project_with_report(&weights()).unwrap();
    let d = Dir::new();
    d.write("w.npy", &weights_f().mapv(|x| x as f32));
    let v = json(&d.ok(&[
        "project",
        BILEVEL,
        "w.npy",
        "-o",
        "o.npy",
        "--radius",
        "1",
        "--json",
        "--threads",
        "1",
    ]));
    assert_eq!(v["spec"], BILEVEL);
    assert_eq!(v["input"], "w.npy");
    assert_eq!(v["output"], "o.npy");
    assert_eq!(v["in_place"], false);
    assert_eq!(v["dtype"], "f32");
    assert_eq!(v["shape"], serde_json::json!([4, 3]));
    assert_eq!(v["order"], "F");
    assert_eq!(v["backend"], "jit");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["radius"], 1.0);
    let before = v["norm_before"].as_f64().unwrap();
    assert!((before - 6.1).abs() < 1e-6, "{before}");
    let after = v["norm_after"].as_f64().unwrap();
    assert!(after <= 1.0 * (1.0 + 1e-6), "{after}");
    let count = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert_eq!(count("groups"), 4);
    assert_eq!(
        count("zeroed") + count("projected") + count("untouched"),
        count("groups")
    );
    assert_eq!(count("zeroed"), report.zeroed as u64);
    assert_eq!(count("projected"), report.projected as u64);
    assert_eq!(v["projected_as"], "clipped");
    assert_eq!(count("nonzeros_before"), 12);
    assert!(count("nonzeros_after") <= 12 - 3 * count("zeroed"));
    let stages = v["stages"].as_object().unwrap();
    assert!(
        stages.contains_key("reduce") && stages.contains_key("apply"),
        "{v}"
    );
    let sum: f64 = stages.values().map(|t| t.as_f64().unwrap()).sum();
    let total = v["total_ms"].as_f64().unwrap();
    assert!(
        (sum - total).abs() <= 1e-9 * total.max(1.0),
        "{sum} vs {total}"
    );
}

#[test]
fn json_names_what_projected_groups_became() {
    let d = Dir::new();
    d.write("w.npy", &weights());
    for (spec, verb) in [
        ("l1 over dim0 of l2 over dim1", "scaled"),
        ("l1 over dim0 of l1 over dim1", "shrunk"),
        ("linf over dim0 of linf over dim1", "clipped"),
    ] {
        let v = json(&d.ok(&[
            "project",
            spec,
            "w.npy",
            "--in-place",
            "--radius",
            "0.5",
            "--json",
        ]));
        assert_eq!(v["projected_as"], verb, "{spec}");
        assert_eq!(v["in_place"], true);
        assert_eq!(v["output"], "w.npy");
        assert!(
            v["norm_after"].as_f64().unwrap() <= 0.5 * (1.0 + 1e-12),
            "{v}"
        );
    }
}

#[test]
fn norm_prints_the_number_alone() {
    let d = Dir::new();
    d.write("w.npy", &weights());
    let proj = Projection::compile(BILEVEL).unwrap();
    let expected = proj.norm(&weights()).unwrap();
    assert_eq!(d.ok(&["norm", BILEVEL, "w.npy"]), format!("{expected}\n"));
    assert!((expected - 6.1).abs() < 1e-12);
    // A radius in the spec is irrelevant to the norm.
    assert_eq!(
        d.ok(&["norm", "l1 over dim0 of linf over dim1 <= 2", "w.npy"]),
        format!("{expected}\n")
    );

    let v = json(&d.ok(&["norm", BILEVEL, "w.npy", "--json"]));
    assert_eq!(v["norm"], expected);
    assert_eq!(v["spec"], BILEVEL);
    assert_eq!(v["shape"], serde_json::json!([4, 3]));
    assert_eq!(v["dtype"], "f64");
    assert_eq!(v["order"], "C");
}

/// Every fixture through the binary: `norm` prints the fixture's norm and `project` writes the
/// expected tensor within the stated tolerance (bit for bit where the manifest says so).
#[test]
fn fixtures_through_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let spec = case["spec"].as_str().unwrap();
        let radius = case["radius"].as_f64().unwrap().to_string();
        let (rtol, atol) = (
            case["rtol"].as_f64().unwrap(),
            case["atol"].as_f64().unwrap(),
        );
        let d = Dir::new();
        fs::copy(root.join(case["input"].as_str().unwrap()), d.path("in.npy")).unwrap();

        let norm: f64 = d.ok(&["norm", spec, "in.npy"]).trim().parse().unwrap();
        let expected_norm = case["norm_before"].as_f64().unwrap();
        assert!(
            (norm - expected_norm).abs() <= atol + rtol * expected_norm.abs(),
            "{name}: norm {norm} vs {expected_norm}"
        );

        d.ok(&[
            "project", spec, "in.npy", "-o", "out.npy", "--radius", &radius,
        ]);
        let expected = root.join(case["expected"].as_str().unwrap());
        let bitwise = case["bitwise_identity"].as_bool().unwrap();
        if bitwise {
            // The data, not the header: NumPy and ndarray-npy pad headers differently.
            assert_eq!(data(&d.read("out.npy")), data(&d.read("in.npy")), "{name}");
        }
        let (got, want): (Vec<f64>, Vec<f64>) = match case["dtype"].as_str().unwrap() {
            "f32" => {
                let g: ArrayD<f32> = read_npy(d.path("out.npy")).unwrap();
                let w: ArrayD<f32> = read_npy(&expected).unwrap();
                assert_eq!(g.shape(), w.shape(), "{name}");
                (
                    g.iter().map(|&x| x as f64).collect(),
                    w.iter().map(|&x| x as f64).collect(),
                )
            }
            _ => {
                let g: ArrayD<f64> = read_npy(d.path("out.npy")).unwrap();
                let w: ArrayD<f64> = read_npy(&expected).unwrap();
                assert_eq!(g.shape(), w.shape(), "{name}");
                (g.iter().copied().collect(), w.iter().copied().collect())
            }
        };
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= atol + rtol * w.abs(),
                "{name}: element {i}: {g} vs {w}"
            );
        }
        let fortran = case["order"] == "F";
        assert!(
            header(&d.read("out.npy")).contains(if fortran { "True" } else { "False" }),
            "{name}: order"
        );
    }
}

#[test]
fn explain_without_a_shape() {
    let d = Dir::new();
    insta::assert_snapshot!(d.ok(&["explain", "l1 over dim0 of linf over dims1.."]), @r"
        == syntax tree ==
        spec `l1 over dim0 of linf over dims1..`
        ├─ level 1  l1 over dim 0         @0..12
        └─ level 2  linf over dims 1..    @16..33
        radius: given at run time

        == rank ==
        the spec fits tensors of rank 2 or more

        note: pass --shape (e.g. --shape 64x48) to see the IR, the normalized levels and the plan
        ");
}

#[test]
fn explain_bilevel_rows() {
    let d = Dir::new();
    insta::assert_snapshot!(d.ok(&["explain", BILEVEL, "--shape", "64x48"]), @"
    == syntax tree ==
    spec `l1 over dim0 of linf over dim1`
    ├─ level 1  l1 over dim 0      @0..12
    └─ level 2  linf over dim 1    @16..30
    radius: given at run time

    == IR ==
    ir for f64 tensor [64x48] order C strides [48, 1]
      norm(Y) = l1{0}( linf{1}( Y ) )
      level 1: l1   over axes {0}        extent 64           @0..12
      level 2: linf over axes {1}        extent 48           @16..30
      radius R (given at run time)

    == normalized levels ==
    normalized levels: l1 over {0} of linf over {1}
      no rule applied

    == plan ==
    plan for f64 tensor [64x48] order C strides [48, 1]
      norm(Y) = l1{0}( linf{1}( Y ) )
      groups: 64 groups of 48 entries (group index over axes {0})
      loops (memory order):
        for axes {0} in 0..64  stride 48, group step 1, out stride 48
          for axes {1} in 0..48  stride 1, inside a group, out stride 1
      parallel: split loop 1 across threads; threads own whole groups
      stages:
        1. reduce       V1[g] = max|·| of Y[g,·] over {1}   (64 groups × 48, f64 accumulators)
        2. upper-reduce V0[s] = Σ|·| of V1[s,·] over {0}   (1 × 64)
        3. solve        U1[s,·] = P_l1(V1[s,·], R)   (1 × 64)
        4. apply        X[g,·] = clip(Y[g,·], -r, r) with r = U1[g]
                        skip: untouched if r ≥ V1[g]; zero-filled without reading if r = 0
      schedule:
        apply chunks:  1 chunk (fewer than 65536 elements)
        reduce chunks: 1 chunk (fewer than 65536 elements)
        kernels:
          reduce    a run per group (the innermost loop stays inside a group); vectorized (it is contiguous)
          apply     a run per group (the innermost loop stays inside a group); vectorized (it is contiguous)
          in place  a run per group (the innermost loop stays inside a group); vectorized (it is contiguous)
      radius R (given at run time)
    ");
}

#[test]
fn explain_merged_levels_in_fortran_order() {
    let d = Dir::new();
    insta::assert_snapshot!(
        d.ok(&[
            "explain",
            "l1 over dim0 of linf over dim1 of linf over dim2 <= 1.5",
            "--shape",
            "16x8x12",
            "--dtype",
            "f32",
            "--order",
            "f",
        ]),
        @"
    == syntax tree ==
    spec `l1 over dim0 of linf over dim1 of linf over dim2 <= 1.5`
    ├─ level 1  l1 over dim 0      @0..12
    ├─ level 2  linf over dim 1    @16..30
    └─ level 3  linf over dim 2    @34..48
    radius: 1.5  @52..55

    == IR ==
    ir for f32 tensor [16x8x12] order F strides [1, 16, 128]
      norm(Y) = l1{0}( linf{1}( linf{2}( Y ) ) )
      level 1: l1   over axes {0}        extent 16           @0..12
      level 2: linf over axes {1}        extent 8            @16..30
      level 3: linf over axes {2}        extent 12           @34..48
      radius 1.5 (fixed in the spec)

    == normalized levels ==
    normalized levels: l1 over {0} of linf over {1,2}
      rule merge-linf-linf: l1 over {0} of linf over {1} of linf over {2}  =>  l1 over {0} of linf over {1,2}

    == plan ==
    plan for f32 tensor [16x8x12] order F strides [1, 16, 128]
      norm(Y) = l1{0}( linf{1,2}( Y ) )
      groups: 16 groups of 96 entries (group index over axes {0})
      loops (memory order):
        for axes {2,1} in 0..96  stride 16, inside a group, out stride 16
          for axes {0} in 0..16  stride 1, group step 1, out stride 1
      parallel: split loop 1 across threads; it runs inside groups, so reduce uses per-thread accumulators
      stages:
        1. reduce       V1[g] = max|·| of Y[g,·] over {1,2}   (16 groups × 96, f64 accumulators)
        2. upper-reduce V0[s] = Σ|·| of V1[s,·] over {0}   (1 × 16)
        3. solve        U1[s,·] = P_l1(V1[s,·], R)   (1 × 16)
        4. apply        X[g,·] = clip(Y[g,·], -r, r) with r = U1[g]
                        skip: untouched if r ≥ V1[g]; zero-filled without reading if r = 0
      schedule:
        apply chunks:  1 chunk (fewer than 65536 elements)
        reduce chunks: 1 chunk (fewer than 65536 elements)
        kernels:
          reduce    runs across groups (the innermost loop steps through groups); vectorized (it is contiguous); 8 rows jammed (the loop around it stays inside groups)
          apply     runs across groups (the innermost loop steps through groups); vectorized (it is contiguous); 4 rows jammed (the loop around it stays inside groups)
          in place  runs across groups (the innermost loop steps through groups); vectorized (it is contiguous); 4 rows jammed (the loop around it stays inside groups)
      radius 1.5 (fixed in the spec)
    "
    );
}

#[test]
fn check_accepts_a_valid_spec() {
    let d = Dir::new();
    assert_eq!(
        d.ok(&["check", "l1 over dim 0 of linf over dim1"]),
        "ok: l1 over dim0 of linf over dim1 fits rank-2 tensors\n"
    );
    assert_eq!(
        d.ok(&["check", "l1 over dim0 of l2 over dims1..  <= 2.50"]),
        "ok: l1 over dim0 of l2 over dims1.. <= 2.5 fits tensors of rank 2 or more\n"
    );
}

#[test]
fn check_rejects_an_axis_used_twice() {
    let d = Dir::new();
    insta::assert_snapshot!(d.fails(&["check", "l1 over dim0 of linf over dims0..1"], 2), @r"
        multiproj::check::axis_used_twice

          × axis 0 is used twice
           ╭─[spec:1:12]
         1 │ l1 over dim0 of linf over dims0..1
           ·            ┬              ────┬───
           ·            │                  ╰── used again here
           ·            ╰── first use
           ╰────
          help: the levels' axis sets must be disjoint: each axis belongs to exactly one level
        ");
}

#[test]
fn help_explains_the_language_and_exit_codes() {
    let d = Dir::new();
    let help = d.ok(&["--help"]);
    assert!(help.contains("l1 over dim0 of linf over dim1"), "{help}");
    assert!(help.contains("Exit codes"), "{help}");
    assert!(help.contains("3  an internal error"), "{help}");
    let help = d.ok(&["project", "--help"]);
    assert!(
        help.contains("--in-place") && help.contains("Example"),
        "{help}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit code, message, nothing written, input unchanged.
// ---------------------------------------------------------------------------------------------

/// A directory holding `w.npy` (the 4×3 f64 matrix).
fn with_weights() -> Dir {
    let d = Dir::new();
    d.write("w.npy", &weights());
    d
}

fn project_args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["project", BILEVEL, input, "-o", "out.npy"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn malformed_spec() {
    let d = with_weights();
    insta::assert_snapshot!(
        d.fails(&["project", "l1 over dim0 of", "w.npy", "-o", "out.npy", "--radius", "1"], 2),
        @r"
        multiproj::parse

          × expected a norm: l1, l2 or linf
           ╭─[spec:1:14]
         1 │ l1 over dim0 of
           ·              ─┬
           ·               ╰── unexpected end of the spec after this
           ╰────
          help: `of` must be followed by another level: `l1 over dim0 of linf over dim1`, or removed
        "
    );
    insta::assert_snapshot!(d.fails(&["check", "l3 over dim0"], 2), @r"
        multiproj::parse

          × expected a norm: l1, l2 or linf
           ╭─[spec:1:1]
         1 │ l3 over dim0
           · ─┬
           ·  ╰── found `l3`
           ╰────
        ");
}

#[test]
fn spec_axis_out_of_range_for_the_file() {
    let d = with_weights();
    insta::assert_snapshot!(
        d.fails(
            &["project", "l1 over dim0 of linf over dims1..2", "w.npy", "-o", "out.npy", "-r", "1"],
            2
        ),
        @r"
        multiproj::check::axis_out_of_range

          × the spec does not fit 'w.npy' (a rank-2 f64 tensor of shape 4x3)
          ╰─▶ axis 2 is out of range for a rank-2 tensor
           ╭─[spec:1:34]
         1 │ l1 over dim0 of linf over dims1..2
           ·                                  ┬
           ·                                  ╰── no axis 2 here
           ╰────
          help: the tensor has axes 0 to 1
        "
    );
}

#[test]
fn spec_leaves_an_axis_of_the_file_uncovered() {
    let d = with_weights();
    insta::assert_snapshot!(
        d.fails(&["project", "l1 over dim0", "w.npy", "--in-place", "-r", "1"], 2),
        @r"
        multiproj::check::axis_not_covered

          × the spec does not fit 'w.npy' (a rank-2 f64 tensor of shape 4x3)
          ╰─▶ axis 1 of a rank-2 tensor is not covered
           ╭─[spec:1:1]
         1 │ l1 over dim0
           · ──────┬─────
           ·       ╰── these levels leave axis 1 out
           ╰────
          help: every axis must belong to exactly one level; add axis 1 to a level (e.g. `dims A,B` or
                `dims A..`)
        "
    );
    d.write("t3.npy", &ndarray::Array3::<f64>::ones((2, 3, 4)));
    insta::assert_snapshot!(d.fails(&["norm", BILEVEL, "t3.npy"], 2), @r"
        multiproj::check::axis_not_covered

          × the spec does not fit 't3.npy' (a rank-3 f64 tensor of shape 2x3x4)
          ╰─▶ axis 2 of a rank-3 tensor is not covered
           ╭─[spec:1:1]
         1 │ l1 over dim0 of linf over dim1
           · ───────────────┬──────────────
           ·                ╰── these levels leave axis 2 out
           ╰────
          help: every axis must belong to exactly one level; add axis 2 to a level (e.g. `dims A,B` or
                `dims A..`)
        ");
}

#[test]
fn truncated_npy() {
    let d = with_weights();
    let bytes = d.read("w.npy");
    d.write_bytes("t.npy", &bytes[..bytes.len() - 5]);
    insta::assert_snapshot!(d.fails(&project_args("t.npy", &["-r", "1"]), 1), @r"
        multiproj::npy::truncated

          × 't.npy' is truncated: its header describes 224 bytes but the file has only 219
          help: the file was probably cut short while being written or copied; write it again
        ");
    d.fails(&["project", BILEVEL, "t.npy", "--in-place", "-r", "1"], 1);
    d.fails(&["norm", BILEVEL, "t.npy"], 1);
}

#[test]
fn bad_magic() {
    let d = Dir::new();
    d.write_bytes("w.npy", b"not an npy file at all");
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["-r", "1"]), 1), @r"
        multiproj::npy::not_npy

          × 'w.npy' is not a .npy file: it does not start with the .npy magic string \x93NUMPY
          help: multiproj reads NumPy .npy files as written by numpy.save
        ");
}

#[test]
fn unsupported_dtype_int64() {
    let d = Dir::new();
    d.write("w.npy", &array![[1i64, 2, 3], [4, 5, 6]]);
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["-r", "1"]), 1), @r"
        multiproj::npy::unsupported_dtype

          × 'w.npy' has dtype '<i8'; multiproj reads little-endian float64 ('<f8'), float32 ('<f4') and
          │ float16 ('<f2')
          help: convert it with NumPy first, e.g. np.save(path, arr.astype('<f8'))
        ");
}

#[test]
fn unsupported_dtype_big_endian() {
    let d = Dir::new();
    d.write_bytes("w.npy", &raw_npy(">f8", &[2, 2], 32));
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["-r", "1"]), 1), @r"
        multiproj::npy::unsupported_dtype

          × 'w.npy' has dtype '>f8', which is big-endian; multiproj reads little-endian float64 ('<f8'),
          │ float32 ('<f4') and float16 ('<f2')
          help: convert it with NumPy first, e.g. np.save(path, arr.astype('<f8'))
        ");
    d.fails(&["project", BILEVEL, "w.npy", "--in-place", "-r", "1"], 1);
}

#[test]
fn unsupported_dtype_object() {
    let d = Dir::new();
    d.write_bytes("w.npy", &raw_npy("|O", &[2, 2], 32));
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["-r", "1"]), 1), @r"
        multiproj::npy::unsupported_dtype

          × 'w.npy' has dtype '|O'; multiproj reads little-endian float64 ('<f8'), float32 ('<f4') and
          │ float16 ('<f2')
          help: convert it with NumPy first, e.g. np.save(path, arr.astype('<f8'))
        ");
}

#[test]
fn nan_in_the_data() {
    let d = Dir::new();
    let mut w = weights();
    w[[2, 1]] = f64::NAN;
    d.write("w.npy", &w);
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["-r", "1"]), 1), @r"
        multiproj::non_finite

          × cannot project 'w.npy'
          ╰─▶ the input holds NaN at index [2, 1]
          help: multiproj projects finite tensors; replace or remove NaN and infinite entries first (e.g.
                np.nan_to_num)
        ");
    insta::assert_snapshot!(
        d.fails(&["project", BILEVEL, "w.npy", "--in-place", "-r", "1"], 1),
        @r"
        multiproj::non_finite

          × cannot project 'w.npy'
          ╰─▶ the input holds NaN at index [2, 1]
          help: multiproj projects finite tensors; replace or remove NaN and infinite entries first (e.g.
                np.nan_to_num)
        "
    );
    d.fails(&["norm", BILEVEL, "w.npy"], 1);
}

#[test]
fn infinity_in_the_data() {
    let d = Dir::new();
    let mut w = weights_f().mapv(|x| x as f32);
    w[[3, 0]] = f32::INFINITY;
    d.write("w.npy", &w);
    insta::assert_snapshot!(
        d.fails(&["project", BILEVEL, "w.npy", "--in-place", "-r", "1", "--stats"], 1),
        @r"
        multiproj::non_finite

          × cannot project 'w.npy'
          ╰─▶ the input holds +inf at index [3, 0]
          help: multiproj projects finite tensors; replace or remove NaN and infinite entries first (e.g.
                np.nan_to_num)
        "
    );
    d.fails(&project_args("w.npy", &["-r", "1", "--json"]), 1);
}

#[test]
fn negative_radius() {
    let d = with_weights();
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["--radius", "-1"]), 2), @"
    multiproj::check::invalid_radius

      × invalid radius -1: a radius must be non-negative
    ");
    insta::assert_snapshot!(
        d.fails(&["project", "l1 over dim0 of linf over dim1 <= -0.5", "w.npy", "--in-place"], 2),
        @"
    multiproj::check::invalid_radius

      × invalid radius -0.5: a radius must be non-negative
       ╭─[spec:1:35]
     1 │ l1 over dim0 of linf over dim1 <= -0.5
       ·                                   ──┬─
       ·                                     ╰── not a valid radius
       ╰────
    "
    );
}

#[test]
fn nan_radius() {
    let d = with_weights();
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["--radius", "NaN"]), 2), @"
    multiproj::check::invalid_radius

      × invalid radius NaN: a radius must be a number (finite and non-negative)
    ");
    d.fails(&project_args("w.npy", &["--radius", "inf"]), 2);
}

#[test]
fn radius_given_twice() {
    let d = with_weights();
    insta::assert_snapshot!(
        d.fails(
            &["project", "l1 over dim0 of linf over dim1 <= 1", "w.npy", "-o", "out.npy", "-r", "2"],
            2
        ),
        @r"
        multiproj::check::radius_given_twice

          × the radius is given twice: `<= 1` in the spec and 2 at run time
           ╭─[spec:1:35]
         1 │ l1 over dim0 of linf over dim1 <= 1
           ·                                   ┬
           ·                                   ╰── radius fixed here
           ╰────
          help: drop one of them: either fix the radius in the spec or pass it at run time
        "
    );
}

#[test]
fn missing_radius() {
    let d = with_weights();
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &[]), 2), @r"
        multiproj::check::missing_radius

          × no radius: the spec has no `<= R` and none was given at run time
          help: add `<= R` to the spec or pass a radius (`--radius R` on the command line)
        ");
}

#[test]
fn missing_input_file() {
    let d = Dir::new();
    insta::assert_snapshot!(d.fails(&project_args("nope.npy", &["-r", "1"]), 1), @r"
        multiproj::io

          × could not open 'nope.npy'
          ╰─▶ No such file or directory (os error 2)
        ");
    d.fails(
        &["project", BILEVEL, "nope.npy", "--in-place", "-r", "1"],
        1,
    );
    d.fails(&["norm", BILEVEL, "nope.npy"], 1);
}

#[test]
fn input_is_a_directory() {
    let d = Dir::new();
    fs::create_dir(d.path("w.npy")).unwrap();
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["-r", "1"]), 1), @r"
        multiproj::not_regular

          × 'w.npy' is a directory, not a regular file
          help: multiproj reads .npy tensors from regular files; save the data to a file first
        ");
}

#[test]
fn output_naming_the_input() {
    let d = with_weights();
    let msg = d.fails(&["project", BILEVEL, "w.npy", "-o", "w.npy", "-r", "1"], 2);
    insta::assert_snapshot!(msg, @r"
        multiproj::args

          × the output would overwrite the input; pass --in-place to project the file in place
          help: name another file with --output, or use --in-place instead of --output
        ");
    // Another spelling of the same path, and a hard link to the same file.
    fs::create_dir(d.path("sub")).unwrap();
    assert_eq!(
        d.fails(
            &[
                "project",
                BILEVEL,
                "w.npy",
                "-o",
                "./sub/../w.npy",
                "-r",
                "1"
            ],
            2
        ),
        msg
    );
    fs::hard_link(d.path("w.npy"), d.path("link.npy")).unwrap();
    assert_eq!(
        d.fails(
            &["project", BILEVEL, "w.npy", "-o", "link.npy", "-r", "1"],
            2
        ),
        msg
    );
}

#[test]
fn output_into_a_missing_directory() {
    let d = with_weights();
    let msg = d.fails(
        &[
            "project",
            BILEVEL,
            "w.npy",
            "-o",
            "missing/out.npy",
            "-r",
            "1",
        ],
        1,
    );
    insta::assert_snapshot!(msg, @r"
        multiproj::io

          × could not create a temporary file in 'missing'
          ╰─▶ no such directory
        ");
}

#[test]
fn output_into_an_unwritable_directory() {
    use std::os::unix::fs::PermissionsExt;
    let d = with_weights();
    // A regular file where a directory should be: unwritable for everyone, root included.
    let msg = d.fails(
        &[
            "project",
            BILEVEL,
            "w.npy",
            "-o",
            "w.npy/out.npy",
            "-r",
            "1",
        ],
        1,
    );
    assert!(
        msg.contains("could not create a temporary file in 'w.npy'"),
        "{msg}"
    );

    fs::create_dir(d.path("ro")).unwrap();
    fs::set_permissions(d.path("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions; only check the refusal where the system enforces it.
    let enforced = fs::write(d.path("ro/probe"), b"").is_err();
    if enforced {
        let msg = d.fails(
            &["project", BILEVEL, "w.npy", "-o", "ro/out.npy", "-r", "1"],
            1,
        );
        assert!(
            msg.contains("could not create a temporary file in 'ro'"),
            "{msg}"
        );
        assert!(msg.contains("Permission denied"), "{msg}");
    } else {
        fs::remove_file(d.path("ro/probe")).unwrap();
    }
    fs::set_permissions(d.path("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn zero_threads() {
    let d = with_weights();
    insta::assert_snapshot!(d.fails(&project_args("w.npy", &["-r", "1", "--threads", "0"]), 2), @r"
        error: invalid value '0' for '--threads <N>': the number of threads must be at least 1

        For more information, try '--help'.
        ");
}

/// `--threads` above the cap (4 per core, at least 64), with the machine-dependent numbers
/// replaced by `[MAX]`, `[MAX+1]` and `[CORES]`.
fn too_many_threads(d: &Dir, args: &[&str]) -> String {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let max = (4 * cores).max(64);
    d.fails(args, 2)
        .replace(&format!("value '{}'", max + 1), "value '[MAX+1]'")
        .replace(&format!("at most {max} threads"), "at most [MAX] threads")
        .replace(&format!("machine's {cores},"), "machine's [CORES],")
}

#[test]
fn too_many_threads_are_refused() {
    let d = with_weights();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let over = ((4 * cores).max(64) + 1).to_string();
    // Before the cap, 4,000 threads on this 4×3 tensor took seconds and a huge number ran the
    // system out of process ids.
    insta::assert_snapshot!(
        too_many_threads(&d, &project_args("w.npy", &["-r", "1", "--threads", &over])), @r"
    error: invalid value '[MAX+1]' for '--threads <N>': at most [MAX] threads are allowed (4 per core of this machine's [CORES], and never fewer than 64)

    For more information, try '--help'.
    ");
    let huge = "1000000000000000000000000";
    for args in [
        &project_args("w.npy", &["-r", "1", "--threads", huge])[..],
        &["norm", BILEVEL, "w.npy", "--threads", &over],
        &["norm", BILEVEL, "w.npy", "--threads", huge],
        &[
            "bench",
            BILEVEL,
            "--shape",
            "4x3",
            "-r",
            "1",
            "--threads",
            &over,
        ],
        &["bench", "--probe", "--size-mib", "1", "--threads", huge],
    ] {
        let msg = too_many_threads(&d, args);
        assert!(
            msg.contains("at most [MAX] threads are allowed"),
            "{args:?}:\n{msg}"
        );
    }
    // The cap itself is accepted, and so is 64 on any machine.
    d.ok(&project_args("w.npy", &["-r", "1", "--threads", "64"]));
    let help = d.ok(&["project", "--help"]);
    assert!(help.contains("4 per core"), "{help}");
}

#[test]
fn both_backends_agree_and_verify_says_so() {
    let d = with_weights();
    d.ok(&[
        "project",
        BILEVEL,
        "w.npy",
        "-o",
        "jit.npy",
        "-r",
        "1",
        "--backend",
        "jit",
    ]);
    d.ok(&[
        "project",
        BILEVEL,
        "w.npy",
        "-o",
        "interp.npy",
        "-r",
        "1",
        "--backend",
        "interp",
    ]);
    // Max-based levels: the backends agree bit for bit, so the files are identical.
    assert_eq!(d.read("jit.npy"), d.read("interp.npy"));
    for extra in [&["--stats"][..], &["--stats", "--in-place"][..]] {
        let mut args = vec!["project", BILEVEL, "w.npy", "-r", "1", "--verify"];
        if !extra.contains(&"--in-place") {
            args.extend(["-o", "verified.npy"]);
        }
        args.extend_from_slice(extra);
        let out = d.ok(&args);
        assert!(
            out.contains("verified       interp agrees bit for bit"),
            "{args:?}:\n{out}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&d.ok(&project_args(
        "w.npy",
        &["-r", "1", "--verify", "--json", "--backend", "interp"],
    )))
    .expect("--json prints JSON");
    assert_eq!(json["verified"]["other"], "jit");
    assert_eq!(json["verified"]["identical"], true);
}

#[test]
fn unknown_backend_and_clif_without_shape() {
    let d = with_weights();
    insta::assert_snapshot!(
        d.fails(&project_args("w.npy", &["-r", "1", "--backend", "gpu"]), 2),
        @"
    error: invalid value 'gpu' for '--backend <BACKEND>'
      [possible values: jit, interp]

    For more information, try '--help'.
    "
    );
    insta::assert_snapshot!(d.fails(&["explain", BILEVEL, "--clif"], 2), @r"
        multiproj::args

          × --clif needs --shape: kernels are generated for a plan, and a plan for a shape
          help: add e.g. --shape 64x48 (kernels depend on the rank and layout, not the sizes)
        ");
}

#[test]
fn output_and_in_place_are_exclusive_and_one_is_required() {
    let d = with_weights();
    let msg = d.fails(&["project", BILEVEL, "w.npy", "-r", "1"], 2);
    assert!(
        msg.contains("--output") && msg.contains("--in-place"),
        "{msg}"
    );
    let msg = d.fails(
        &[
            "project",
            BILEVEL,
            "w.npy",
            "-o",
            "out.npy",
            "--in-place",
            "-r",
            "1",
        ],
        2,
    );
    assert!(msg.contains("cannot be used with"), "{msg}");
}

#[test]
fn explain_with_a_bad_shape() {
    let d = Dir::new();
    insta::assert_snapshot!(d.fails(&["explain", BILEVEL, "--shape", "64xx"], 2), @r"
        error: invalid value '64xx' for '--shape <SHAPE>': an extent is missing; a shape is extents joined by `x`, such as 64x48 or 10x3x3

        For more information, try '--help'.
        ");
    insta::assert_snapshot!(d.fails(&["explain", BILEVEL, "--shape", "0x3"], 2), @r"
        multiproj::check::empty_tensor

          × the tensor has no elements (shape [0, 3])
        ");
    insta::assert_snapshot!(d.fails(&["explain", BILEVEL, "--shape", "4x3x2"], 2), @r"
        multiproj::check::axis_not_covered

          × axis 2 of a rank-3 tensor is not covered
           ╭─[spec:1:1]
         1 │ l1 over dim0 of linf over dim1
           · ───────────────┬──────────────
           ·                ╰── these levels leave axis 2 out
           ╰────
          help: every axis must belong to exactly one level; add axis 2 to a level (e.g. `dims A,B` or
                `dims A..`)
        ");
}

#[test]
fn a_shape_too_large_to_address() {
    let d = Dir::new();
    // Its element count wraps around to 0 in 64 bits: once reported as "no elements".
    insta::assert_snapshot!(
        d.fails(&["explain", BILEVEL, "--shape", "4294967296x4294967296x16"], 2), @r"
    multiproj::args

      × the shape 4294967296x4294967296x16 is too large: its extents multiply to more than
      │ 9223372036854775807 bytes of f64 data, more than this machine can address
      help: pass a smaller --shape
    ");
    for args in [
        &[
            "explain",
            BILEVEL,
            "--shape",
            "4294967296x4294967296x16",
            "--dtype",
            "f32",
        ][..],
        &["explain", BILEVEL, "--shape", "0x4294967296x4294967296"],
        &[
            "explain",
            BILEVEL,
            "--shape",
            "4294967296x2147483648",
            "--dtype",
            "f64",
        ],
        &[
            "bench",
            BILEVEL,
            "--shape",
            "4294967296x4294967296x16",
            "-r",
            "1",
        ],
        &[
            "bench",
            BILEVEL,
            "--shape",
            "4294967296x4294967296",
            "-r",
            "1",
        ],
    ] {
        let msg = d.fails(args, 2);
        assert!(msg.contains("is too large"), "{args:?}:\n{msg}");
    }
    // The largest addressable f32 matrix is a shape like any other (explain allocates nothing).
    d.ok(&[
        "explain",
        BILEVEL,
        "--shape",
        "4294967296x536870911",
        "--dtype",
        "f32",
    ]);
}

#[test]
fn explain_a_level_longer_than_a_format_width() {
    // One level whose text is over 65,535 characters: the tree printer padded it with a
    // `format!` width, which panicked (exit 3). The spec is invalid (axis 0 used twice), so
    // explain must say that instead.
    let d = Dir::new();
    let spec = format!("l1 over dims {}", vec!["0"; 33_000].join(","));
    let out = d.run(&["explain", &spec]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("internal error"), "{}", out.stderr);
    assert!(out.stderr.contains("multiproj::"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// `norm --backend/--threads` and the progress bar.
// ---------------------------------------------------------------------------------------------

/// A directory holding the example weights (512×64 f32) as `w.npy`.
fn with_example_weights() -> Dir {
    let d = Dir::new();
    let bytes = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/weights.npy"))
        .expect("examples/weights.npy");
    d.write_bytes("w.npy", &bytes);
    d
}

#[test]
fn norm_gives_the_same_number_on_both_backends_and_any_thread_count() {
    let d = with_example_weights();
    let w: ArrayD<f32> = read_npy(d.path("w.npy")).unwrap();
    for spec in [BILEVEL, "l1 over dim1 of linf over dim0"] {
        // Max-based levels: every backend and thread count gives the same bits.
        let expected = Projection::compile(spec).unwrap().norm(&w).unwrap();
        for extra in [
            &["--backend", "jit"][..],
            &["--backend", "interp"],
            &["--backend", "interp", "--threads", "1"],
            &["--backend", "jit", "--threads", "2"],
            &["--threads", "1"],
        ] {
            let mut args = vec!["norm", spec, "w.npy"];
            args.extend_from_slice(extra);
            assert_eq!(d.ok(&args), format!("{expected}\n"), "{args:?}");
        }
    }
    // Sums may be added up in another order: within rounding.
    let spec = "l1 over dim0 of l2 over dim1";
    let number = |backend: &str| -> f64 {
        d.ok(&["norm", spec, "w.npy", "--backend", backend])
            .trim()
            .parse()
            .expect("a number")
    };
    let (jit, interp) = (number("jit"), number("interp"));
    assert!((jit - interp).abs() <= 1e-12 * interp, "{jit} vs {interp}");

    // And on a fixture in Fortran order, with --json.
    let d = with_weights();
    d.write("f.npy", &weights_f());
    for backend in ["jit", "interp"] {
        let v = json(&d.ok(&["norm", BILEVEL, "f.npy", "--json", "--backend", backend]));
        assert!((v["norm"].as_f64().unwrap() - 6.1).abs() < 1e-12, "{v}");
        assert_eq!(v["order"], "F");
    }
}

#[test]
fn norm_rejects_a_bad_backend_or_thread_count() {
    let d = with_weights();
    insta::assert_snapshot!(d.fails(&["norm", BILEVEL, "w.npy", "--backend", "gpu"], 2), @"
    error: invalid value 'gpu' for '--backend <BACKEND>'
      [possible values: jit, interp]

    For more information, try '--help'.
    ");
    insta::assert_snapshot!(d.fails(&["norm", BILEVEL, "w.npy", "--threads", "0"], 2), @"
    error: invalid value '0' for '--threads <N>': the number of threads must be at least 1

    For more information, try '--help'.
    ");
}

/// The frames of a progress bar: stderr cut at each `\r` and newline, blank ones dropped.
fn frames(stderr: &str) -> Vec<&str> {
    stderr
        .split(['\r', '\n'])
        .map(str::trim_end)
        .filter(|f| !f.is_empty())
        .collect()
}

#[test]
fn progress_always_draws_the_stages_and_changes_nothing_else() {
    let d = with_example_weights();
    for backend in ["jit", "interp"] {
        let run = |progress: &str, out: &str| {
            d.run(&[
                "project",
                BILEVEL,
                "w.npy",
                "-r",
                "40",
                "-o",
                out,
                "--json",
                "--backend",
                backend,
                "--progress",
                progress,
            ])
        };
        let quiet = run("never", "quiet.npy");
        assert_eq!(quiet.code, 0, "{}", quiet.stderr);
        assert_eq!(quiet.stderr, "", "--progress never draws nothing");
        let drawn = run("always", "drawn.npy");
        assert_eq!(drawn.code, 0, "{}", drawn.stderr);

        // stdout and the output file are exactly those of a run without the bar.
        let (a, b) = (json(&quiet.stdout), json(&drawn.stdout));
        assert_eq!(a["norm_after"], b["norm_after"]);
        assert_eq!(a["groups"], b["groups"]);
        assert_eq!(d.read("quiet.npy"), d.read("drawn.npy"));

        // Every stage is drawn as it starts, then the statistics' pass and the writing of the
        // file; the bar is redrawn in place and its last frame, at 100%, ends with a newline.
        let err = &drawn.stderr;
        assert!(err.starts_with('\r') && err.ends_with('\n'), "{err:?}");
        assert_eq!(err.matches('\n').count(), 1, "{err:?}");
        let frames = frames(err);
        let mut stages = vec![];
        if backend == "jit" {
            stages.push("project: compile");
        }
        stages.extend(["project: reduce", "project: solve", "project: apply"]);
        stages.extend(["stats: reduce", "write"]);
        let mut at = 0;
        for stage in &stages {
            let found = frames[at..].iter().position(|f| f.starts_with(stage));
            at += found.unwrap_or_else(|| panic!("{backend}: no frame for {stage}: {frames:#?}"));
        }
        // 512×64 f32: 128 KiB.
        let last = frames.last().unwrap();
        assert!(
            last.starts_with("done          100% [####################] 128.0 KiB / 128.0 KiB"),
            "{last}"
        );
        assert!(
            frames
                .iter()
                .any(|f| f.starts_with("project: reduce") && f.contains("  0% [---")),
            "{frames:#?}"
        );
    }
}

#[test]
fn progress_auto_draws_nothing_when_stderr_is_not_a_terminal() {
    let d = with_example_weights();
    // `ok` checks that stderr stays empty.
    d.ok(&["project", BILEVEL, "w.npy", "-r", "40", "-o", "o.npy"]);
    d.ok(&[
        "project",
        BILEVEL,
        "w.npy",
        "-r",
        "40",
        "-o",
        "o.npy",
        "--progress",
        "auto",
    ]);
    d.ok(&["norm", BILEVEL, "w.npy", "--progress", "auto"]);
    d.ok(&["norm", BILEVEL, "w.npy", "--progress", "never"]);
}

#[test]
fn progress_of_norm_verify_and_in_place() {
    let d = with_example_weights();
    let out = d.run(&["norm", BILEVEL, "w.npy", "--progress", "always"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, d.ok(&["norm", BILEVEL, "w.npy"]));
    let frames_of_norm = frames(&out.stderr);
    assert!(
        frames_of_norm
            .iter()
            .any(|f| f.starts_with("norm: reduce      0% [---")),
        "{frames_of_norm:#?}"
    );
    let last = frames_of_norm.last().unwrap();
    assert!(last.starts_with("done          100% [#"), "{last}");

    let before = d.read("w.npy");
    let out = d.run(&[
        "project",
        BILEVEL,
        "w.npy",
        "-r",
        "40",
        "--in-place=map",
        "--verify",
        "--progress",
        "always",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    let frames = frames(&out.stderr);
    let at = |prefix: &str| frames.iter().rposition(|f| f.starts_with(prefix));
    // Writing through the map: the in-memory run and the other backend's are checked first,
    // then the file is written.
    assert!(at("verify: apply") < at("project: apply"), "{frames:#?}");
    assert!(at("project: apply") < at("write"), "{frames:#?}");
    assert!(frames.last().unwrap().starts_with("done "), "{frames:#?}");
    assert_ne!(d.read("w.npy"), before, "projected in place");
}

#[test]
fn a_failure_wipes_the_bar_before_the_diagnostic() {
    let d = Dir::new();
    let mut w = weights();
    w[[2, 1]] = f64::NAN;
    d.write("w.npy", &w);
    for args in [
        project_args("w.npy", &["-r", "1"]),
        vec!["project", BILEVEL, "w.npy", "--in-place", "-r", "1"],
        vec!["norm", BILEVEL, "w.npy"],
    ] {
        let plain = d.fails(&args, 1);
        let mut drawn = args.clone();
        drawn.extend(["--progress", "always"]);
        let with_bar = d.fails(&drawn, 1);
        // The bar's line is blanked and the cursor returned to its start: the diagnostic then
        // begins on a clean line, exactly as without the bar.
        let (bar, diagnostic) = with_bar.rsplit_once('\r').expect("a bar was drawn");
        assert_eq!(diagnostic, plain, "{drawn:?}");
        assert!(!bar.contains('\n'), "{drawn:?}: {bar:?}");
        let blank = bar.rsplit_once('\r').map_or(bar, |(_, b)| b);
        assert!(
            !blank.is_empty() && blank.chars().all(|c| c == ' '),
            "{drawn:?}: {bar:?}"
        );
    }
}

/// `--keep K` on the example weights: exactly the 24 informative features (rows) survive, the
/// JSON lists them, and the radius is the one `--radius` reproduces.
#[test]
fn keep_chooses_the_radius_that_keeps_k_groups() {
    let d = Dir::new();
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/weights.npy");
    d.write_bytes("w.npy", &fs::read(weights).expect("examples/weights.npy"));
    let v = json(&d.ok(&[
        "project", BILEVEL, "w.npy", "-o", "k.npy", "--keep", "24", "--json",
    ]));
    let survivors: Vec<u64> = v["survivors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(survivors.len(), 24);
    let top = &v["levels"][0];
    assert_eq!(top["groups"], 512);
    assert_eq!(top["zeroed"], 488);
    assert_eq!(top["axes"], serde_json::json!([0]));
    assert_eq!(top["norm"], "l1");
    assert_eq!(top["thresholds"].as_array().unwrap().len(), 1);
    let kept: Array2<f32> = read_npy(d.path("k.npy")).unwrap();
    let nonzero: Vec<u64> = (0..512)
        .filter(|&i| kept.row(i).iter().any(|&x| x != 0.0))
        .map(|i| i as u64)
        .collect();
    assert_eq!(nonzero, survivors);
    // The same radius, given as a number, gives the same file.
    let radius = v["radius"].as_f64().unwrap().to_string();
    d.ok(&[
        "project", BILEVEL, "w.npy", "-o", "r.npy", "--radius", &radius,
    ]);
    assert_eq!(d.read("k.npy"), d.read("r.npy"));
    // --sparsity 0.5 zeroes half the rows; --radius-frac is a fraction of the norm.
    let v = json(&d.ok(&[
        "project",
        BILEVEL,
        "w.npy",
        "-o",
        "s.npy",
        "--sparsity",
        "0.5",
        "--json",
    ]));
    assert_eq!(v["levels"][0]["zeroed"], 256);
    let v = json(&d.ok(&[
        "project",
        BILEVEL,
        "w.npy",
        "-o",
        "f.npy",
        "--radius-frac",
        "0.5",
        "--json",
    ]));
    let (r, n) = (
        v["radius"].as_f64().unwrap(),
        v["norm_before"].as_f64().unwrap(),
    );
    assert_eq!(r, 0.5 * n);
}

#[test]
fn targets_that_cannot_be_met_are_errors() {
    let d = Dir::new();
    d.write("w.npy", &weights());
    // A linf top level never removes a group.
    let msg = d.fails(
        &[
            "project",
            "linf over dim0 of l1 over dim1",
            "w.npy",
            "-o",
            "o.npy",
            "--keep",
            "2",
        ],
        1,
    );
    assert!(msg.contains("only an l1 top level removes groups"), "{msg}");
    // One way to choose the radius at a time, and not when the spec fixes it.
    let msg = d.fails(
        &[
            "project", BILEVEL, "w.npy", "-o", "o.npy", "--keep", "2", "--radius", "1",
        ],
        2,
    );
    assert!(msg.contains("cannot be used with"), "{msg}");
    let msg = d.fails(
        &[
            "project",
            &format!("{BILEVEL} <= 1"),
            "w.npy",
            "-o",
            "o.npy",
            "--keep",
            "2",
        ],
        2,
    );
    assert!(msg.contains("the spec fixes the radius"), "{msg}");
    let msg = d.fails(
        &[
            "project",
            BILEVEL,
            "w.npy",
            "-o",
            "o.npy",
            "--sparsity",
            "1.5",
        ],
        2,
    );
    assert!(msg.contains("between 0 and 1"), "{msg}");
    // More groups than the data has non-zero ones.
    let msg = d.fails(
        &["project", BILEVEL, "w.npy", "-o", "o.npy", "--keep", "9"],
        1,
    );
    assert!(msg.contains("cannot keep 9 top-level groups"), "{msg}");
}

// --- exact projections -----------------------------------------------------------------------

/// A 6×4 matrix on which the exact and the bi-level l1,∞ projections differ.
fn exact_weights() -> Array2<f64> {
    array![
        [3.0, -1.0, 0.5, 0.2],
        [0.1, 0.2, -0.1, 0.3],
        [-2.0, 2.5, 1.0, -2.4],
        [0.4, -0.3, 0.2, 0.1],
        [1.5, 1.4, -1.3, 1.2],
        [0.05, 0.0, 0.0, 0.0]
    ]
}

#[test]
fn exact_project_says_which_method_ran() {
    let dir = Dir::new();
    dir.write("w.npy", &exact_weights());
    let json: Value = serde_json::from_str(&dir.ok(&[
        "project",
        &format!("exact {BILEVEL}"),
        "w.npy",
        "--radius",
        "2",
        "-o",
        "x.npy",
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(json["method"], "exact");
    let theta = json["exact"]["multiplier"].as_f64().expect("a multiplier");
    // Rows whose l1 norm is at most θ are zeroed, the others clipped with Σ(|y| − μ)₊ = θ.
    let x: Array2<f64> = read_npy(dir.path("x.npy")).expect("the output");
    for (y, xr) in exact_weights().rows().into_iter().zip(x.rows()) {
        let mu = xr.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let l1: f64 = y.iter().map(|v| v.abs()).sum();
        if mu == 0.0 {
            assert!(
                l1 <= theta * (1.0 + 1e-12),
                "row {y} zeroed with θ = {theta}"
            );
        } else {
            let t: f64 = y.iter().map(|v| (v.abs() - mu).max(0.0)).sum();
            assert!(
                (t - theta).abs() <= 1e-12 * theta,
                "row {y}: {t} ≠ θ = {theta}"
            );
        }
    }
    let multi: Value = serde_json::from_str(&dir.ok(&[
        "project", BILEVEL, "w.npy", "--radius", "2", "-o", "y.npy", "--json",
    ]))
    .expect("JSON");
    assert_eq!(multi["method"], "multi-level");
    assert_eq!(multi["exact"], Value::Null);
}

#[test]
fn compare_shows_both_projections() {
    let dir = Dir::new();
    dir.write("w.npy", &exact_weights());
    let before = dir.state();
    let json: Value =
        serde_json::from_str(&dir.ok(&["compare", BILEVEL, "w.npy", "--radius", "2", "--json"]))
            .expect("JSON");
    assert_eq!(dir.state(), before, "compare writes nothing");
    let (m, e) = (&json["multi_level"], &json["exact"]);
    let dm = m["distance_to_input"].as_f64().unwrap();
    let de = e["distance_to_input"].as_f64().unwrap();
    assert!(
        de < dm,
        "the exact projection is the nearest point: {de} vs {dm}"
    );
    assert!(json["distance"].as_f64().unwrap() > 0.0);
    assert_eq!(json["radius"], 2.0);
    assert_eq!(m["groups"], 6);
    assert_eq!(json["exact_spec"], format!("exact {BILEVEL}"));
    // The table names the same facts.
    let table = dir.ok(&["compare", BILEVEL, "w.npy", "--radius", "2"]);
    for needle in [
        "distance to input",
        "groups zeroed",
        "nonzeros",
        "between the two",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }
    // --keep picks the multi-level projection's radius.
    let kept: Value =
        serde_json::from_str(&dir.ok(&["compare", BILEVEL, "w.npy", "--keep", "2", "--json"]))
            .expect("JSON");
    assert_eq!(kept["multi_level"]["survivors"], 2);
}

#[test]
fn compare_needs_an_exact_projection() {
    let dir = Dir::new();
    dir.write("w.npy", &exact_weights());
    let err = dir.fails(
        &[
            "compare",
            "l1 over dim0 of linf over dim1 of l1 over dim2",
            "w.npy",
            "--radius",
            "1",
        ],
        2,
    );
    assert!(err.contains("no exact projection"), "{err}");
}

#[test]
fn exact_keep_keeps_k_rows() {
    let dir = Dir::new();
    dir.write("w.npy", &exact_weights());
    let json: Value = serde_json::from_str(&dir.ok(&[
        "project",
        &format!("exact {BILEVEL}"),
        "w.npy",
        "--keep",
        "2",
        "-o",
        "x.npy",
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(json["survivors"], serde_json::json!([2, 4]), "{json}");
    let x: Array2<f64> = read_npy(dir.path("x.npy")).expect("the output");
    let kept = x
        .rows()
        .into_iter()
        .filter(|r| r.iter().any(|&v| v != 0.0))
        .count();
    assert_eq!(kept, 2);
    // The same radius given explicitly gives the same result.
    let r = json["radius"].as_f64().expect("a radius").to_string();
    dir.ok(&[
        "project",
        &format!("exact {BILEVEL}"),
        "w.npy",
        "--radius",
        &r,
        "-o",
        "y.npy",
    ]);
    // (to rounding: one solve fixes θ, the other finds it from the radius)
    let y: Array2<f64> = read_npy(dir.path("y.npy")).expect("the output");
    for (a, b) in x.iter().zip(y.iter()) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // An l2 top level never zeroes a group, exact or not.
    let err = dir.fails(
        &[
            "project",
            "exact l2 over dim0 of linf over dim1",
            "w.npy",
            "--keep",
            "2",
            "-o",
            "z.npy",
        ],
        1,
    );
    assert!(err.contains("only an l1 top level removes groups"), "{err}");
}

/// Without the `mpi` feature, `--shard-axis` says how to get it (exit 2, nothing written).
#[cfg(not(feature = "mpi"))]
#[test]
fn shard_axis_without_mpi_says_how_to_build_it() {
    let dir = Dir::new();
    dir.write("w.npy", &weights());
    let out = dir.run(&[
        "project",
        "l1 over dim0 of linf over dim1",
        "w.npy",
        "--output",
        "o.{rank}.npy",
        "--shard-axis",
        "0",
        "--radius",
        "1",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("built without MPI"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--features multiproj-cli/mpi"),
        "{}",
        out.stderr
    );
    assert!(!dir.path("o.{rank}.npy").exists());
}

/// float16 files (`<f2`): projected out of place and in place to the library's bits (computed
/// in f64, rounded once), the output an `<f2` file too, and the norm read the same way.
#[test]
fn float16_files_project_like_the_library() {
    use multiproj::half::f16;
    let d = Dir::new();
    let w = weights();
    let x: ArrayD<f16> = w.mapv(f16::from_f64).into_dyn();
    let mut bytes = raw_npy("<f2", &[4, 3], 0);
    for v in x.iter() {
        bytes.extend(v.to_bits().to_le_bytes());
    }
    d.write_bytes("w16.npy", &bytes);
    let proj = Projection::compile(BILEVEL)
        .unwrap()
        .with_radius(2.0)
        .unwrap();
    let want = proj.project(&x).unwrap();
    let want_bytes: Vec<u8> = want
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect();

    d.ok(&project_args("w16.npy", &["-r", "2"]));
    let out = d.read("out.npy");
    assert!(header(&out).contains("'descr': '<f2'"), "{}", header(&out));
    assert_eq!(data(&out), want_bytes.as_slice());
    assert_ne!(data(&out), data(&bytes), "the radius is inside the norm");

    d.ok(&["project", BILEVEL, "w16.npy", "-r", "2", "--in-place"]);
    assert_eq!(data(&d.read("w16.npy")), want_bytes.as_slice());

    d.write_bytes("w16.npy", &bytes);
    let norm = json(&d.ok(&["norm", BILEVEL, "w16.npy", "--json"]));
    assert_eq!(norm["dtype"], "f16");
    assert_eq!(norm["norm"].as_f64(), Some(proj.norm(&x).unwrap()));
}
