//! The on-disk kernel cache: a second JIT (standing for a second process) loads what the first
//! compiled instead of compiling it, and the loaded kernels compute exactly what compiled ones
//! do; damaged or foreign files are ignored (compiled again and replaced); the `multiproj`
//! command uses `MULTIPROJ_KERNEL_CACHE`.

use std::fs;
use std::path::Path;
use std::process::Command;

use multiproj::compiler::codegen::Jit;
use multiproj::compiler::{self, DType, Order, Plan, TensorInfo};
use multiproj::runtime::jit;
use multiproj::runtime::progress::Ticker;
use ndarray::{ArrayD, IxDyn};

const SPECS: &[&str] = &[
    "l1 over dim0 of linf over dim1",
    "l1 over dim1 of linf over dim0",
    "l1 over dim1 of l1 over dim0",
    "l1 over dim0 of l2 over dim1",
];

fn plan(spec: &str) -> Plan {
    let parsed = multiproj::grammar::parse(spec).unwrap();
    let ir = compiler::check(
        &parsed,
        &TensorInfo::with_order(&[37, 29], DType::F64, Order::C),
    )
    .unwrap();
    compiler::plan(&ir)
}

fn data() -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(&[37, 29]), |i| {
        let (r, c) = (i[0] as f64, i[1] as f64);
        ((r * 0.37 + c * 1.3).sin() * (1.0 + r % 5.0)).round() / 8.0
    })
}

/// Every kernel of every spec (reduce, gather, both applies), and what they compute: the
/// reduce pass's group norms and an out-of-place apply with radius ~30% of the norm.
fn run_all(jit_: &Jit) -> Vec<Vec<u64>> {
    let x = data();
    let mut results = Vec::new();
    for spec in SPECS {
        let plan = plan(spec);
        jit::prepare_with(jit_, &plan, true, false).unwrap();
        jit::prepare_with(jit_, &plan, true, true).unwrap();
        let inner = jit::reduce_with(jit_, &plan, &x.view(), &Ticker::none()).unwrap();
        results.push(inner.iter().map(|v| v.to_bits()).collect());
        let agg = multiproj::runtime::solve::Aggregates::reduce_up(&plan, inner);
        let radii = agg.solve(&plan, agg.norm() * 0.3);
        let mut actions = agg.actions(&plan, &radii);
        jit::threshold_with(jit_, &plan, &x.view(), &mut actions, &Ticker::none()).unwrap();
        let mut out = ArrayD::zeros(x.raw_dim());
        jit::apply_with(
            jit_,
            &plan,
            &actions,
            &x.view(),
            &mut out.view_mut(),
            &Ticker::none(),
        )
        .unwrap();
        results.push(out.iter().map(|v: &f64| v.to_bits()).collect());
    }
    results
}

fn kernel_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "kernel"));
    files.sort();
    files
}

#[test]
fn a_second_jit_loads_what_the_first_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kernels");

    let first = Jit::with_disk_cache(&cache).unwrap();
    let expected = run_all(&first);
    let compiled = first.compiled();
    assert!(compiled >= 4 * 3, "{compiled} kernels compiled");
    assert_eq!(first.loaded(), 0);
    assert_eq!(kernel_files(&cache).len(), compiled, "one file per kernel");

    let second = Jit::with_disk_cache(&cache).unwrap();
    assert_eq!(
        run_all(&second),
        expected,
        "loaded kernels compute the same bits"
    );
    assert_eq!(second.loaded(), compiled, "every kernel came from the disk");
    assert_eq!(second.compiled(), 0);

    // A loaded kernel is translated only when its CLIF is asked for: the same text.
    for spec in SPECS {
        let plan = plan(spec);
        assert_eq!(
            first.reduce_kernel(&plan).unwrap().clif(),
            second.reduce_kernel(&plan).unwrap().clif()
        );
        assert_eq!(
            first.apply_kernel(&plan, true).unwrap().clif(),
            second.apply_kernel(&plan, true).unwrap().clif()
        );
    }
    assert_eq!(second.compiled(), 0, "asking for the CLIF compiles nothing");

    // And a JIT without the cache agrees too.
    assert_eq!(run_all(&Jit::new().unwrap()), expected);
}

#[test]
fn damaged_or_foreign_files_are_compiled_again_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_path_buf();
    let expected = run_all(&Jit::with_disk_cache(&cache).unwrap());
    let files = kernel_files(&cache);
    let originals: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    // One bit flipped in the code of the first, the second truncated, the third emptied, the
    // rest replaced by another kernel's file (a name that does not match its content).
    for (i, f) in files.iter().enumerate() {
        let mut bytes = originals[i].clone();
        match i {
            0 => {
                let at = bytes.len() - 20;
                bytes[at] ^= 0x10;
            }
            1 => bytes.truncate(bytes.len() / 2),
            2 => bytes.clear(),
            _ => bytes = originals[(i + 1) % files.len()].clone(),
        }
        fs::write(f, bytes).unwrap();
    }
    let jit_ = Jit::with_disk_cache(&cache).unwrap();
    assert_eq!(run_all(&jit_), expected);
    assert_eq!(jit_.loaded(), 0, "no damaged or foreign file was used");
    assert_eq!(jit_.compiled(), files.len());
    let rewritten: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    assert_eq!(rewritten, originals, "each file was replaced by a good one");
}

#[test]
fn an_unusable_directory_only_means_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    fs::write(&blocker, b"not a directory").unwrap();
    let jit_ = Jit::with_disk_cache(blocker.join("kernels")).unwrap();
    assert_eq!(run_all(&jit_), run_all(&Jit::new().unwrap()));
    assert_eq!(jit_.loaded(), 0);
}

#[test]
fn the_command_keeps_kernels_where_multiproj_kernel_cache_says() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let input = dir.path().join("in.npy");
    ndarray_npy::write_npy(&input, &data()).unwrap();
    let run = |env: &str, out: &str| {
        let out = dir.path().join(out);
        let status = Command::new(env!("CARGO_BIN_EXE_multiproj"))
            .args(["project", SPECS[2]])
            .arg(&input)
            .args(["--radius", "3", "--output"])
            .arg(&out)
            .env("MULTIPROJ_KERNEL_CACHE", env)
            .status()
            .unwrap();
        assert!(status.success());
        fs::read(out).unwrap()
    };
    let a = run(cache.to_str().unwrap(), "a.npy");
    let n = kernel_files(&cache).len();
    assert!(n >= 3, "{n} kernels kept");
    let b = run(cache.to_str().unwrap(), "b.npy");
    assert_eq!(a, b, "the run from cached kernels writes the same file");
    assert_eq!(kernel_files(&cache).len(), n, "nothing new compiled");
    let c = run("off", "c.npy");
    assert_eq!(a, c);
}

#[test]
fn temporaries_left_by_a_dead_process_are_removed_after_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_path_buf();
    let old = cache.join(".tmp-0123456789abcdef");
    let fresh = cache.join(".tmp-fedcba9876543210");
    for p in [&old, &fresh] {
        fs::write(p, b"half a kernel").unwrap();
    }
    let two_days = std::time::Duration::from_secs(2 * 24 * 60 * 60);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - two_days)
        .unwrap();
    run_all(&Jit::with_disk_cache(&cache).unwrap());
    assert!(
        !old.exists(),
        "a day-old temporary is removed when kernels are stored"
    );
    assert!(fresh.exists(), "a fresh one may still be written: kept");
}
