//! Fixture conformance (DESIGN §2): every case of `tests/fixtures/manifest.json` and of
//! `tests/fixtures/exact/manifest.json` (the exact projections) — input and expected output
//! computed by independent NumPy implementations — through the library
//! (out of place and in place) and through the `multiproj` binary
//! (`project` to a new file, `project --in-place`, and `norm`), each on both backends: the
//! interpreter and the JIT.
//!
//! For each case the result must have the input's shape, dtype and memory order, match the
//! expected output within `atol + rtol·|expected|` (bit for bit for `bitwise_identity` cases),
//! and the multi-level norm of the input must equal `norm_before` within `rtol`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use multiproj::{Backend, Projection};
use ndarray::ArrayD;
use serde_json::Value;

use common::{NpyFloat as Float, compare_bits, compare_close, has_order, layout_name};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// One entry of the manifest.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    spec: String,
    radius: f64,
    input: PathBuf,
    expected: PathBuf,
    dtype: String,
    order: String,
    shape: Vec<usize>,
    norm_before: f64,
    rtol: f64,
    atol: f64,
    bitwise_identity: bool,
}

fn field<'a>(case: &'a Value, name: &str, key: &str) -> &'a Value {
    case.get(key)
        .unwrap_or_else(|| panic!("manifest case {name:?} has no {key:?}"))
}

fn str_field(case: &Value, name: &str, key: &str) -> String {
    field(case, name, key)
        .as_str()
        .unwrap_or_else(|| panic!("manifest case {name:?}: {key:?} is not a string"))
        .to_owned()
}

fn f64_field(case: &Value, name: &str, key: &str) -> f64 {
    field(case, name, key)
        .as_f64()
        .unwrap_or_else(|| panic!("manifest case {name:?}: {key:?} is not a number"))
}

/// The cases of both manifests: the multi-level fixtures (`tests/fixtures/`) and the exact
/// projections' (`tests/fixtures/exact/`, from `make_exact_fixtures.py`).
fn manifest() -> Vec<Case> {
    let mut all = manifest_in(&fixture_dir());
    all.extend(manifest_in(&fixture_dir().join("exact")));
    all
}

fn manifest_in(dir: &Path) -> Vec<Case> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    let cases = json["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no \"cases\" array", path.display()));
    cases
        .iter()
        .map(|c| {
            let name = c["name"]
                .as_str()
                .unwrap_or_else(|| panic!("a manifest case without a name: {c}"))
                .to_owned();
            let shape = field(c, &name, "shape")
                .as_array()
                .unwrap_or_else(|| panic!("manifest case {name:?}: \"shape\" is not an array"))
                .iter()
                .map(|n| {
                    n.as_u64()
                        .unwrap_or_else(|| panic!("manifest case {name:?}: bad extent {n}"))
                        as usize
                })
                .collect();
            Case {
                spec: str_field(c, &name, "spec"),
                radius: f64_field(c, &name, "radius"),
                input: dir.join(str_field(c, &name, "input")),
                expected: dir.join(str_field(c, &name, "expected")),
                dtype: str_field(c, &name, "dtype"),
                order: str_field(c, &name, "order"),
                shape,
                norm_before: f64_field(c, &name, "norm_before"),
                rtol: f64_field(c, &name, "rtol"),
                atol: f64_field(c, &name, "atol"),
                bitwise_identity: field(c, &name, "bitwise_identity")
                    .as_bool()
                    .unwrap_or_else(|| panic!("manifest case {name:?}: bad bitwise_identity")),
                name,
            }
        })
        .collect()
}

fn case(name: &str) -> Case {
    manifest()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name:?} in the manifest"))
}

fn read<T: Float>(path: &Path) -> ArrayD<T> {
    ndarray_npy::read_npy(path)
        .unwrap_or_else(|e| panic!("cannot read {} as {}: {e}", path.display(), T::NAME))
}

/// Compares a result with the expected output as the manifest asks, and checks its layout.
fn check_result<T: Float>(case: &Case, what: &str, got: &ArrayD<T>, expected: &ArrayD<T>) {
    let name = &case.name;
    assert_eq!(
        got.shape(),
        case.shape.as_slice(),
        "{name} ({what}): the output has the wrong shape"
    );
    assert!(
        has_order(&got.view(), &case.order),
        "{name} ({what}): the output should be in {} order, it is {} (strides {:?})",
        case.order,
        layout_name(&got.view()),
        got.strides()
    );
    let verdict = if case.bitwise_identity {
        compare_bits(&got.view(), &expected.view())
    } else {
        compare_close(&got.view(), &expected.view(), case.rtol, case.atol)
    };
    if let Err(e) = verdict {
        panic!(
            "{name} ({what}, spec `{}`, radius {}): {e}",
            case.spec, case.radius
        );
    }
}

fn assert_norm(case: &Case, what: &str, got: f64) {
    let tol = case.rtol * case.norm_before.abs();
    assert!(
        (got - case.norm_before).abs() <= tol,
        "{} ({what}): norm of the input is {got:e}, expected {:e} (|diff| {:e} > {tol:e})",
        case.name,
        case.norm_before,
        (got - case.norm_before).abs()
    );
}

/// Loads the case's input and expected output, checking them against the manifest.
fn load<T: Float>(case: &Case) -> (ArrayD<T>, ArrayD<T>) {
    let input: ArrayD<T> = read(&case.input);
    let expected: ArrayD<T> = read(&case.expected);
    for (what, a) in [("input", &input), ("expected", &expected)] {
        assert_eq!(
            a.shape(),
            case.shape.as_slice(),
            "{}: the {what} file's shape disagrees with the manifest",
            case.name
        );
    }
    assert!(
        has_order(&input.view(), &case.order),
        "{}: the input file should load in {} order, it loads as {} (strides {:?})",
        case.name,
        case.order,
        layout_name(&input.view()),
        input.strides()
    );
    (input, expected)
}

fn run_library_typed<T: Float>(case: &Case, backend: Backend) {
    let name = &case.name;
    let (input, expected) = load::<T>(case);
    let proj = Projection::compile(&case.spec)
        .and_then(|p| p.with_radius(case.radius))
        .map(|p| p.with_backend(backend))
        .unwrap_or_else(|e| panic!("{name}: cannot compile `{}`: {e}", case.spec));

    assert_norm(
        case,
        "library",
        proj.norm(&input).unwrap_or_else(|e| panic!("{name}: {e}")),
    );

    let (out, report) = proj
        .project_with_report(&input)
        .unwrap_or_else(|e| panic!("{name}: project: {e}"));
    check_result(case, "library, out of place", &out, &expected);
    assert_norm(case, "report.norm_before", report.norm_before);
    assert_eq!(
        report.untouched + report.zeroed + report.projected,
        report.groups,
        "{name}: the report's group counts do not add up: {report:?}"
    );

    let mut in_place = input.clone();
    proj.project_in_place(&mut in_place)
        .unwrap_or_else(|e| panic!("{name}: project_in_place: {e}"));
    check_result(case, "library, in place", &in_place, &expected);
    if let Err(e) = compare_bits(&in_place.view(), &out.view()) {
        panic!("{name}: in place and out of place disagree: {e}");
    }

    // The result is on or inside the ball: its norm is at most the radius, up to rounding.
    let after = proj.norm(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
    let slack = if T::NAME == "f32" { 1e-6 } else { 1e-12 };
    assert!(
        after <= case.radius * (1.0 + slack) + case.atol,
        "{name}: the projected tensor has norm {after:e}, above the radius {:e}",
        case.radius
    );
}

fn run_library(name: &str, backend: Backend) {
    let case = case(name);
    match case.dtype.as_str() {
        "f64" => run_library_typed::<f64>(&case, backend),
        "f32" => run_library_typed::<f32>(&case, backend),
        other => panic!("{name}: unknown dtype {other:?}"),
    }
}

/// The `multiproj` binary, when this test build has it (it is behind the default `cli`
/// feature).
fn binary() -> Option<&'static str> {
    option_env!("CARGO_BIN_EXE_multiproj")
}

fn run_cli_command(case: &Case, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let bin = binary().expect("checked by the caller");
    let out = Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: cannot run {bin}: {e}", case.name));
    assert!(
        out.status.success(),
        "{}: `multiproj {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        case.name,
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_cli_typed<T: Float>(case: &Case, backend: Backend) {
    let backend_name = backend.name();
    let (input, expected) = load::<T>(case);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let radius = case.radius.to_string();

    // project SPEC IN --radius R --output OUT --backend B
    let out_path = dir.path().join("out.npy");
    run_cli_command(
        case,
        &[
            "project".as_ref(),
            case.spec.as_ref(),
            case.input.as_os_str(),
            "--radius".as_ref(),
            radius.as_ref(),
            "--output".as_ref(),
            out_path.as_os_str(),
            "--backend".as_ref(),
            backend_name.as_ref(),
        ],
    );
    let out: ArrayD<T> = read(&out_path);
    check_result(case, "cli, --output", &out, &expected);
    let after: ArrayD<T> = read(&case.input);
    if let Err(e) = compare_bits(&after.view(), &input.view()) {
        panic!(
            "{}: `project --output` modified its input file: {e}",
            case.name
        );
    }

    // project SPEC COPY --radius R --in-place --backend B
    let copy = dir.path().join("in_place.npy");
    std::fs::copy(&case.input, &copy).expect("copy the input");
    run_cli_command(
        case,
        &[
            "project".as_ref(),
            case.spec.as_ref(),
            copy.as_os_str(),
            "--radius".as_ref(),
            radius.as_ref(),
            "--in-place".as_ref(),
            "--backend".as_ref(),
            backend_name.as_ref(),
        ],
    );
    let in_place: ArrayD<T> = read(&copy);
    check_result(case, "cli, --in-place", &in_place, &expected);

    // norm SPEC IN: the number alone on stdout.
    let norm = run_cli_command(
        case,
        &["norm".as_ref(), case.spec.as_ref(), case.input.as_os_str()],
    );
    let stdout = String::from_utf8_lossy(&norm.stdout);
    let value: f64 = stdout.trim().parse().unwrap_or_else(|_| {
        panic!(
            "{}: `multiproj norm` should print a number alone, printed {stdout:?}",
            case.name
        )
    });
    assert_norm(case, "cli norm", value);
}

fn run_cli(name: &str, backend: Backend) {
    if binary().is_none() {
        eprintln!("{name}: the multiproj binary is not built (the `cli` feature is off); skipped");
        return;
    }
    let case = case(name);
    match case.dtype.as_str() {
        "f64" => run_cli_typed::<f64>(&case, backend),
        "f32" => run_cli_typed::<f32>(&case, backend),
        other => panic!("{name}: unknown dtype {other:?}"),
    }
}

/// One test per manifest case and per way of running it, so a failure names the case.
macro_rules! fixture_tests {
    ($($name:ident),* $(,)?) => {
        // `box` is a keyword, so that case is written `box_`; names lose a trailing `_`.
        const CASES: &[&str] = &[$(stringify!($name)),*];

        mod library_interp {
            use multiproj::Backend::Interp;
            $(#[test] fn $name() { super::run_library(stringify!($name).trim_end_matches('_'), Interp); })*
        }

        mod library_jit {
            use multiproj::Backend::Jit;
            $(#[test] fn $name() { super::run_library(stringify!($name).trim_end_matches('_'), Jit); })*
        }

        mod cli_interp {
            use multiproj::Backend::Interp;
            $(#[test] fn $name() { super::run_cli(stringify!($name).trim_end_matches('_'), Interp); })*
        }

        mod cli_jit {
            use multiproj::Backend::Jit;
            $(#[test] fn $name() { super::run_cli(stringify!($name).trim_end_matches('_'), Jit); })*
        }
    };
}

fixture_tests!(
    bilevel_rows,
    bilevel_cols,
    bilevel_3d,
    trilevel_linf,
    bilevel_l11,
    bilevel_l12,
    maxnorm_rows,
    frobenius,
    l1_flat,
    box_,
    vector_l1,
    permuted_3d,
    four_levels,
    open_range,
    f32_rows,
    fortran_rows,
    radius_zero,
    inside_ball,
    ties_and_zero_rows,
    // tests/fixtures/exact/
    l1inf_rows_gauss,
    l1inf_cols_gauss,
    l1inf_rows_unif_r01,
    l1inf_rows_unif_r09,
    l1inf_odd_7x13,
    l1inf_cols_odd_7x13,
    l1inf_f32_rows,
    l1inf_f32_fortran_cols,
    l1inf_fortran_rows,
    l1inf_ties_int,
    l1inf_ties_int_f32_cols,
    l1inf_ties_tiered,
    l1inf_zero_rows_gauss,
    l1inf_radius_zero,
    l1inf_tiny_radius,
    l1inf_tiny_radius_cols_f32,
    l1inf_inside,
    l1inf_inside_f32_fortran,
    l1inf_3d_dim0,
    l1inf_3d_dims02,
    l1inf_3d_f32_fortran,
    l1inf_one_group,
    l1inf_singletons,
    l1l1_rows,
    l1l1_f32_fortran_cols,
    l1l2_rows,
    l1l2_3d_f32,
    l2l2_rows,
    linfl1_rows,
    linfl2_fortran_cols,
    linflinf_rows,
    l2linf_rows,
    l2linf_f32_fortran_cols,
    l2linf_ties_int,
    l2linf_3d_dims02,
    l2linf_radius_zero,
    l2l1_rows,
    l2l1_3d_dim0,
    l2l1_f32_tiny_radius,
    l2l1_inside,
);

/// A case added to the manifest must get its tests here.
#[test]
fn every_manifest_case_has_a_test() {
    let mut in_manifest: Vec<String> = manifest().into_iter().map(|c| c.name).collect();
    let mut tested: Vec<String> = CASES
        .iter()
        .map(|c| c.trim_end_matches('_').to_owned())
        .collect();
    in_manifest.sort();
    tested.sort();
    assert_eq!(
        tested, in_manifest,
        "the tests in fixture_tests! and the cases in manifest.json differ"
    );
}
