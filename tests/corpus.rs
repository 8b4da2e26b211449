//! The spec corpus: every `tests/specs/*.spec` is printed at every stage — AST,
//! IR, normalized levels, plan — and pinned as a snapshot; every `tests/specs/invalid/*.spec`
//! is pinned as the diagnostic a user reads. The valid specs are also run on generated data, so
//! a spec whose printout looks right but whose projection does not land in the ball still fails.
//!
//! A spec file starts with header comments, then the spec text (which may span lines):
//!
//! ```text
//! # shape: 64x48          the tensor the spec is checked against (required for valid specs)
//! # dtype: f32            optional, default f64
//! # order: f              optional, c (default) or f
//! # about: one line saying what the example shows
//! l1 over dim0 of linf over dim1
//! ```
//!
//! An invalid spec without `# shape:` is checked with `check_shapeless`, as `multiproj check`
//! and `Projection::compile` do.

mod common;

use std::path::{Path, PathBuf};

use multiproj::compiler::{self, DType, Order, TensorInfo};
use multiproj::runtime::rng::SplitMix64;
use multiproj::{Projection, grammar};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use common::{Float, compare_bits, has_order};

/// One `.spec` file: its header and its text.
#[derive(Debug)]
struct SpecFile {
    path: PathBuf,
    shape: Option<Vec<usize>>,
    dtype: DType,
    order: Order,
    about: String,
    text: String,
}

impl SpecFile {
    fn read(path: &Path) -> SpecFile {
        let content = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut file = SpecFile {
            path: path.to_owned(),
            shape: None,
            dtype: DType::F64,
            order: Order::C,
            about: String::new(),
            text: String::new(),
        };
        let mut lines = content.lines().peekable();
        while let Some(line) = lines.next_if(|l| l.starts_with('#')) {
            let Some((key, value)) = line.trim_start_matches('#').split_once(':') else {
                panic!(
                    "{}: header line {line:?} is not `# key: value`",
                    path.display()
                );
            };
            let value = value.trim();
            match key.trim() {
                "shape" => file.shape = Some(parse_shape(value, path)),
                "dtype" => {
                    file.dtype = match value {
                        "f64" => DType::F64,
                        "f32" => DType::F32,
                        other => panic!("{}: unknown dtype {other:?}", path.display()),
                    }
                }
                "order" => {
                    file.order = match value {
                        "c" | "C" => Order::C,
                        "f" | "F" => Order::F,
                        other => panic!("{}: unknown order {other:?}", path.display()),
                    }
                }
                "about" => file.about = value.to_owned(),
                other => panic!("{}: unknown header key {other:?}", path.display()),
            }
        }
        assert!(
            !file.about.is_empty(),
            "{}: every spec says what it shows in an `# about:` line",
            path.display()
        );
        file.text = lines.collect::<Vec<_>>().join("\n");
        file
    }

    fn tensor(&self) -> Option<TensorInfo> {
        self.shape
            .as_ref()
            .map(|s| TensorInfo::with_order(s, self.dtype, self.order))
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

fn parse_shape(text: &str, path: &Path) -> Vec<usize> {
    text.split('x')
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{}: bad shape {text:?}", path.display()))
        })
        .collect()
}

fn specs_in(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "spec"))
        .collect();
    paths.sort();
    paths
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_snapshot_path("snapshots/corpus");
    s
}

/// Every stage of a valid spec, as `multiproj explain` would show it.
fn explain(file: &SpecFile) -> String {
    let name = file.name();
    let tensor = file
        .tensor()
        .unwrap_or_else(|| panic!("{name}: a valid spec needs a `# shape:` header"));
    let spec = grammar::parse(&file.text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let ir = compiler::check(&spec, &tensor).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    // An exact projection is normalized with the rules that keep the norm (`l1 of l1` too).
    let normalized = if ir.method().is_exact() {
        compiler::normalize_exact(ir.levels())
    } else {
        compiler::normalize(ir.levels())
    };
    let plan = compiler::plan(&ir);
    format!(
        "about: {}\n\n── AST ──\n{spec}\n\n── IR ──\n{ir}\n── normalized ──\n{normalized}\n── plan ──\n{plan}",
        file.about
    )
}

#[test]
fn explain_every_spec() {
    let count = specs_in("tests/specs").len();
    assert!(
        count >= 32,
        "the corpus should hold at least 32 specs, found {count}"
    );
    settings().bind(|| {
        insta::glob!("specs/*.spec", |path| {
            let file = SpecFile::read(path);
            insta::assert_snapshot!("explain", explain(&file));
        });
    });
}

fn render(diagnostic: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, diagnostic)
        .expect("rendering into a String cannot fail");
    out
}

/// The diagnostic for an invalid spec, with a line saying what it was checked against.
fn diagnose(file: &SpecFile) -> String {
    let name = file.name();
    let (stage, rendered) = match grammar::parse(&file.text) {
        Err(e) => ("parse", render(&e)),
        Ok(spec) => {
            let result = match file.tensor() {
                Some(tensor) => compiler::check(&spec, &tensor).map(drop),
                None => compiler::check_shapeless(&spec).map(drop),
            };
            match result {
                Err(e) => ("check", render(&e)),
                Ok(()) => panic!("{name}: {:?} should be rejected but is accepted", file.text),
            }
        }
    };
    let against = match file.tensor() {
        Some(t) => format!("{t}"),
        None => "no tensor (check_shapeless)".to_owned(),
    };
    format!(
        "about: {}\nspec: {:?}\nchecked against: {against}\nrejected by: {stage}\n\n{rendered}",
        file.about, file.text
    )
}

#[test]
fn diagnose_every_invalid_spec() {
    let count = specs_in("tests/specs/invalid").len();
    assert!(
        count >= 12,
        "the corpus should hold at least 12 invalid specs, found {count}"
    );
    settings().bind(|| {
        insta::glob!("specs/invalid/*.spec", |path| {
            let file = SpecFile::read(path);
            insta::assert_snapshot!("diagnostic", diagnose(&file));
        });
    });
}

/// Deterministic data in `[-2, 2]` with some exact zeros and repeated values (splitmix64).
fn sample_data(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let z = rng.next_u64();
            match z % 16 {
                0 => 0.0,
                1 => 1.25,
                _ => SplitMix64::unit_f64(z) * 4.0 - 2.0,
            }
        })
        .collect()
}

/// Projects generated data with the spec: the result keeps shape and layout, lies in the ball,
/// is the identity when the data is inside, and in place gives the same bits.
fn project_sample<T: Float>(file: &SpecFile) -> Result<(), String> {
    let shape = file.shape.clone().ok_or("no `# shape:` header")?;
    let n: usize = shape.iter().product();
    let values: Vec<T> = sample_data(n, n as u64)
        .into_iter()
        .map(T::from_f64)
        .collect();
    let (x, order) = match file.order {
        Order::F => (ArrayD::from_shape_vec(IxDyn(&shape).f(), values), "F"),
        _ => (ArrayD::from_shape_vec(IxDyn(&shape), values), "C"),
    };
    let x = x.map_err(|e| e.to_string())?;
    let proj = Projection::compile(&file.text).map_err(|e| format!("compile: {e}"))?;
    let norm_before = proj.norm(&x).map_err(|e| format!("norm: {e}"))?;
    let (proj, radius) = match proj.radius() {
        Some(r) => (proj, r),
        None => {
            let r = 0.5 * norm_before;
            (proj.with_radius(r).map_err(|e| e.to_string())?, r)
        }
    };
    let out = proj.project(&x).map_err(|e| format!("project: {e}"))?;
    if !has_order(&out.view(), order) {
        return Err(format!(
            "the output is not in {order} order (strides {:?})",
            out.strides()
        ));
    }
    let after = proj.norm(&out).map_err(|e| e.to_string())?;
    let rel = if T::NAME == "f32" { 1e-6 } else { 1e-12 };
    let bound = radius * (1.0 + rel) + n as f64 * f64::EPSILON * norm_before;
    if after > bound {
        return Err(format!(
            "norm after projection {after:e} exceeds the radius {radius:e} (bound {bound:e})"
        ));
    }
    if norm_before <= radius {
        compare_bits(&out.view(), &x.view()).map_err(|e| format!("inside the ball: {e}"))?;
    }
    let mut y = x.clone();
    proj.project_in_place(&mut y)
        .map_err(|e| format!("in place: {e}"))?;
    compare_bits(&y.view(), &out.view()).map_err(|e| format!("in place vs out of place: {e}"))
}

#[test]
fn every_spec_projects_into_its_ball() {
    let mut failures = Vec::new();
    for path in specs_in("tests/specs") {
        let file = SpecFile::read(&path);
        let result = match file.dtype {
            DType::F64 => project_sample::<f64>(&file),
            DType::F32 => project_sample::<f32>(&file),
            DType::F16 | DType::BF16 => unreachable!("the corpus header takes f32 and f64"),
        };
        if let Err(e) = result {
            failures.push(format!("{}: {e}", file.name()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
