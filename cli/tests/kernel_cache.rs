//! The on-disk kernel cache: a second JIT (standing for a second process) loads what the first
//! compiled instead of compiling it, and the loaded kernels compute exactly what compiled ones
//! do; damaged or foreign files are ignored (compiled again and replaced); the `multiproj`
//! command uses `MULTIPROJ_KERNEL_CACHE`.
//!
//! And the cache runs no code anyone else could have planted (issue 8): each hostile set-up is
//! made for real — a directory writable by group or others or owned by another uid, a symbolic
//! link as the directory or as a component multiproj makes, a kernel file of another uid,
//! group-writable, a symbolic link, a FIFO — with a *poisoned* kernel in it (the machine code of
//! another kernel, correctly checksummed: it computes wrong numbers, as a control shows when the
//! file is our own), and the projection is still right, nothing is loaded and the reason is
//! given. Set-ups that chown to another uid need root; elsewhere they say so and are skipped.
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

mod mount;
use mount::Mounted;

use multiproj::compiler::{self, DType, Order, Plan, TensorInfo};
use multiproj::runtime::Executor;
use multiproj::runtime::backend::Work;
use multiproj::runtime::jit::Jit;
use multiproj::runtime::stages::Solution;
use ndarray::{ArrayD, IxDyn};

const SPECS: &[&str] = &[
    "l1 over dim0 of linf over dim1",
    "l1 over dim1 of linf over dim0",
    "l1 over dim1 of l1 over dim0",
    "l1 over dim0 of l2 over dim1",
    // The l1 twin of the first: its reduce kernel is the one poisoned (`poison`).
    "l1 over dim0 of l1 over dim1",
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
        jit_.kernels(&plan, Work::all(&plan)).unwrap();
        let exec = Executor::new(jit_);
        let norms = exec.reduce(&plan, &x.view()).unwrap();
        results.push(norms.values().iter().map(|v| v.to_bits()).collect());
        let norm = Solution::new(&plan, &norms, 0.0).unwrap().norm();
        let mut solution = Solution::new(&plan, &norms, norm * 0.3).unwrap();
        exec.threshold(&plan, &x.view(), &mut solution).unwrap();
        let mut out = ArrayD::zeros(x.raw_dim());
        exec.apply(&plan, &solution, &x.view(), &mut out.view_mut())
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

/// An uid that is not ours (nobody).
const OTHER_UID: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives `path` (not following a symbolic link) to [`OTHER_UID`]; `false`, with the reason on
/// stderr, where that is not permitted (not root).
fn give_away(path: &Path, test: &str) -> bool {
    match std::os::unix::fs::lchown(path, Some(OTHER_UID), Some(OTHER_UID)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{test}: skipped the set-up owned by another uid: chown failed ({e})");
            false
        }
    }
}

fn set_age(path: &Path, age: Duration) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

const TWO_DAYS: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// A kernel file's fields, as an attacker who read `disk.rs` can parse and write them.
struct KernelFile {
    align: u64,
    target: Vec<u8>,
    id: String,
    code: Vec<u8>,
}

impl KernelFile {
    fn read(path: &Path) -> KernelFile {
        let bytes = fs::read(path).unwrap();
        let mut at = 8 + 4;
        let u64_at = |at: &mut usize| {
            let v = u64::from_le_bytes(bytes[*at..*at + 8].try_into().unwrap());
            *at += 8;
            v
        };
        let align = u64_at(&mut at);
        let mut fields = Vec::new();
        for _ in 0..3 {
            let n = u64_at(&mut at) as usize;
            fields.push(bytes[at..at + n].to_vec());
            at += n;
        }
        let code = fields.pop().unwrap();
        let id = String::from_utf8(fields.pop().unwrap()).unwrap();
        let target = fields.pop().unwrap();
        KernelFile {
            align,
            target,
            id,
            code,
        }
    }

    /// The file, with a valid checksum.
    fn bytes(&self) -> Vec<u8> {
        let mut body = b"MPKERNEL".to_vec();
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&self.align.to_le_bytes());
        for field in [&self.target[..], self.id.as_bytes(), &self.code] {
            body.extend_from_slice(&(field.len() as u64).to_le_bytes());
            body.extend_from_slice(field);
        }
        let mut h = DefaultHasher::new();
        body.as_slice().hash(&mut h);
        body.extend_from_slice(&h.finish().to_le_bytes());
        body
    }
}

/// Fills `cache` with every kernel of [`run_all`] (a JIT of our own: directory 0700, files
/// 0600) and returns what they compute.
fn filled(cache: &Path) -> Vec<Vec<u64>> {
    let jit_ = Jit::with_disk_cache(cache).unwrap();
    let expected = run_all(&jit_);
    assert_eq!(jit_.compiled(), kernel_files(cache).len());
    expected
}

/// Plants a poisoned kernel in `cache`: the file of the l1 reduce kernel of [`POISONED_SPEC`]
/// (row-wise groups) gets the machine code of the linf reduce kernel of the same structure (of
/// the first spec), correctly checksummed, so it sums nothing and takes maxima instead. Returns
/// the poisoned file.
fn poison(cache: &Path) -> PathBuf {
    let files: Vec<(PathBuf, KernelFile)> = kernel_files(cache)
        .into_iter()
        .map(|p| {
            let k = KernelFile::read(&p);
            (p, k)
        })
        .collect();
    for (path, l1) in &files {
        if !(l1.id.contains("Reduce(L1)") && l1.id.contains("inner_reduced: true")) {
            continue;
        }
        let twin = l1.id.replace("Reduce(L1)", "Reduce(Linf)");
        if let Some((_, linf)) = files.iter().find(|(_, k)| k.id == twin) {
            let poisoned = KernelFile {
                align: linf.align,
                target: l1.target.clone(),
                id: l1.id.clone(),
                code: linf.code.clone(),
            };
            fs::write(path, poisoned.bytes()).unwrap();
            return path.clone();
        }
    }
    panic!(
        "no row-wise l1 reduce kernel with a linf twin among {}",
        files.len()
    );
}

/// Names and contents of the files of a directory.
fn listing(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), fs::read(e.path()).unwrap_or_default())
        })
        .collect();
    all.sort();
    all
}

/// A JIT with the disk cache in `cache` computes `expected`, loads nothing, writes nothing
/// there, and says why, mentioning `why`.
fn assert_not_used(cache: &Path, expected: &[Vec<u64>], why: &str) {
    let before = listing(cache);
    let jit_ = Jit::with_disk_cache(cache).unwrap();
    assert!(
        run_all(&jit_) == expected,
        "wrong projection: a planted kernel was run"
    );
    assert_eq!(jit_.loaded(), 0, "no kernel was loaded from the disk");
    let refusals = jit_.disk_cache_refusals();
    assert!(
        refusals.len() == 1 && refusals[0].contains(why),
        "expected one reason mentioning {why:?}: {refusals:?}"
    );
    assert_eq!(
        listing(cache),
        before,
        "nothing written to a refused directory"
    );
}

/// A fresh cache directory `kernels` in a temporary directory of our own, filled and poisoned:
/// the directory, what the kernels compute, the poisoned file.
fn poisoned_cache() -> (tempfile::TempDir, PathBuf, Vec<Vec<u64>>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kernels");
    let expected = filled(&cache);
    let poisoned = poison(&cache);
    (dir, cache, expected, poisoned)
}

#[test]
fn a_cache_of_our_own_is_used_and_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("made").join("kernels");
    let expected = filled(&cache);
    for d in [dir.path().join("made"), cache.clone()] {
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700, "{d:?}");
    }
    for f in kernel_files(&cache) {
        let meta = fs::symlink_metadata(&f).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600, "{f:?}");
        assert_eq!(meta.uid(), our_uid());
    }
    // Readable by others is fine (only who can write matters): files of earlier versions were
    // made 0644.
    chmod(&cache, 0o755);
    chmod(&kernel_files(&cache)[0], 0o644);
    let jit_ = Jit::with_disk_cache(&cache).unwrap();
    assert!(
        run_all(&jit_) == expected,
        "loaded kernels compute what compiled ones do"
    );
    assert_eq!(jit_.loaded(), kernel_files(&cache).len());
    assert_eq!(jit_.disk_cache_refusals(), Vec::<String>::new());
}

/// Our effective uid: the owner of a file we make.
fn our_uid() -> u32 {
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid()
}

#[test]
fn a_poisoned_kernel_is_run_only_from_a_file_of_our_own() {
    let (_dir, cache, expected, _) = poisoned_cache();
    let n = kernel_files(&cache).len();
    // The control: our own poisoned file is trusted (it could only be ours), and the poison
    // works.
    let trusting = Jit::with_disk_cache(&cache).unwrap();
    assert!(
        run_all(&trusting) != expected,
        "the control failed: the poisoned kernel computes the right numbers"
    );
    assert_eq!(trusting.loaded(), n);
    drop(trusting);

    let (_dir, cache, expected, poisoned) = poisoned_cache();
    if !give_away(
        &poisoned,
        "a_poisoned_kernel_is_run_only_from_a_file_of_our_own",
    ) {
        return;
    }
    let jit_ = Jit::with_disk_cache(&cache).unwrap();
    assert!(
        run_all(&jit_) == expected,
        "wrong projection: the foreign file was run"
    );
    assert_eq!(jit_.loaded(), n - 1, "every other kernel was loaded");
    let refusals = jit_.disk_cache_refusals();
    assert!(
        refusals.len() == 1 && refusals[0].contains("is owned by uid 65534"),
        "{refusals:?}"
    );
    // The directory is ours: the file was replaced by the kernel compiled instead.
    let meta = fs::symlink_metadata(&poisoned).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (our_uid(), 0o600));
    let again = Jit::with_disk_cache(&cache).unwrap();
    assert!(
        run_all(&again) == expected,
        "wrong projection: a planted kernel was run"
    );
    assert_eq!(again.loaded(), n);
}

#[test]
fn a_group_writable_kernel_file_is_not_run() {
    let (_dir, cache, expected, poisoned) = poisoned_cache();
    chmod(&poisoned, 0o620);
    let jit_ = Jit::with_disk_cache(&cache).unwrap();
    assert!(
        run_all(&jit_) == expected,
        "wrong projection: a planted kernel was run"
    );
    assert_eq!(jit_.loaded(), kernel_files(&cache).len() - 1);
    let refusals = jit_.disk_cache_refusals();
    assert!(
        refusals.len() == 1 && refusals[0].contains("is writable by group (mode 0620)"),
        "{refusals:?}"
    );
    assert_eq!(fs::metadata(&poisoned).unwrap().mode() & 0o7777, 0o600);
}

#[test]
fn a_symbolic_link_at_a_kernel_name_is_not_followed() {
    let (dir, cache, expected, poisoned) = poisoned_cache();
    // A valid (checksummed, well-named) kernel file of our own elsewhere, linked to.
    let elsewhere = dir.path().join("elsewhere.kernel");
    fs::rename(&poisoned, &elsewhere).unwrap();
    symlink(&elsewhere, &poisoned).unwrap();
    let linked_to = fs::read(&elsewhere).unwrap();
    let jit_ = Jit::with_disk_cache(&cache).unwrap();
    assert!(
        run_all(&jit_) == expected,
        "wrong projection: a planted kernel was run"
    );
    assert_eq!(jit_.loaded(), kernel_files(&cache).len() - 1);
    let refusals = jit_.disk_cache_refusals();
    assert!(
        refusals.len() == 1 && refusals[0].contains("is a symbolic link"),
        "{refusals:?}"
    );
    let meta = fs::symlink_metadata(&poisoned).unwrap();
    assert!(meta.is_file(), "the link was replaced by a kernel file");
    assert_eq!(
        fs::read(&elsewhere).unwrap(),
        linked_to,
        "what it pointed at is untouched"
    );
}

#[test]
fn a_fifo_at_a_kernel_name_neither_hangs_nor_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kernels");
    let expected = filled(&cache);
    let victim = kernel_files(&cache).pop().unwrap();
    fs::remove_file(&victim).unwrap();
    let made = Command::new("mkfifo").arg(&victim).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    // Before the fix every run blocked forever opening the FIFO: a watchdog turns a hang into
    // a failure (it never fires otherwise; the run takes milliseconds).
    let (tx, rx) = std::sync::mpsc::channel();
    let in_thread = cache.clone();
    std::thread::spawn(move || {
        let jit_ = Jit::with_disk_cache(&in_thread).unwrap();
        let results = run_all(&jit_);
        let _ = tx.send((results, jit_.loaded(), jit_.disk_cache_refusals()));
    });
    let (results, loaded, refusals) = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("a FIFO in the cache blocked the run");
    assert!(
        results == expected,
        "wrong projection: a planted kernel was run"
    );
    assert_eq!(loaded, kernel_files(&cache).len() - 1);
    assert!(
        refusals.len() == 1 && refusals[0].contains("is a FIFO, not a regular file"),
        "{refusals:?}"
    );
    assert!(fs::symlink_metadata(&victim).unwrap().is_file(), "replaced");
}

#[test]
fn a_directory_writable_by_group_or_others_is_not_used() {
    for (mode, why) in [
        (0o770, "is writable by group (mode 0770)"),
        (0o703, "is writable by others (mode 0703)"),
        (0o777, "is writable by group and others (mode 0777)"),
        (0o1777, "is writable by group and others (mode 1777)"),
    ] {
        let (_dir, cache, expected, _) = poisoned_cache();
        chmod(&cache, mode);
        assert_not_used(&cache, &expected, why);
    }
}

#[test]
fn a_directory_of_another_user_is_not_used() {
    let (_dir, cache, expected, _) = poisoned_cache();
    if give_away(&cache, "a_directory_of_another_user_is_not_used") {
        assert_not_used(&cache, &expected, "is owned by uid 65534");
    }
}

#[test]
fn a_symbolic_link_as_the_directory_is_not_followed() {
    let (dir, cache, expected, _) = poisoned_cache();
    let link = dir.path().join("link");
    symlink(&cache, &link).unwrap();
    assert_not_used(&link, &expected, "is a symbolic link");
}

#[test]
fn housekeeping_removes_only_our_own_dead_temporaries() {
    let test = "housekeeping_removes_only_our_own_dead_temporaries";
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kernels");
    fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o700);
    // A process that is surely gone.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = std::process::id();
    let ours = |pid: u32, r: &str| cache.join(format!(".multiproj-{pid}-{r}.kernel.tmp"));
    let removed = [
        ours(dead, "0123456789abcdef"),
        // Of an earlier version, a day old.
        cache.join(".tmp-0123456789abcdef"),
    ];
    let kept = [
        // Of a running process (this one), fresh.
        ours(me, "00000000000000aa"),
        // Not multiproj's, however old.
        cache.join(".tmp-notes"),
        cache.join("notes.txt"),
        cache.join(".multiproj-notes.kernel.tmp"),
    ];
    let foreign = [
        ours(dead, "fedcba9876543210"),
        cache.join(".tmp-fedcba9876543210"),
    ];
    for p in removed.iter().chain(&kept).chain(&foreign) {
        fs::write(p, b"half a kernel").unwrap();
        set_age(p, TWO_DAYS);
    }
    // Except the running process's: fresh (after a day, its pid may have been reused).
    set_age(&kept[0], Duration::ZERO);
    // A symbolic link with a temporary's name: neither it nor what it points at is touched.
    let target = dir.path().join("precious");
    fs::write(&target, b"precious").unwrap();
    let link = ours(dead, "1111111111111111");
    symlink(&target, &link).unwrap();
    let others = foreign.iter().all(|p| give_away(p, test));

    let jit_ = Jit::with_disk_cache(&cache).unwrap();
    run_all(&jit_);
    assert!(
        jit_.compiled() > 0,
        "kernels were stored, so housekeeping ran"
    );
    for p in &removed {
        assert!(!p.exists(), "{p:?} removed");
    }
    for p in &kept {
        assert!(p.exists(), "{p:?} kept");
    }
    if others {
        for p in &foreign {
            assert!(p.exists(), "another user's {p:?} kept");
        }
    }
    assert!(fs::symlink_metadata(&link).is_ok(), "the link kept");
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    let leftovers: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(&format!(".multiproj-{me}-")))
        .filter(|n| !n.ends_with("-00000000000000aa.kernel.tmp"))
        .collect();
    assert!(leftovers.is_empty(), "this process left {leftovers:?}");
}

#[test]
fn a_failed_write_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    // One page: room for a kernel or two, not for all of them.
    let Some(small) = Mounted::tmpfs(&dir.path().join("small"), "size=4k,mode=0700") else {
        eprintln!("a_failed_write_leaves_no_temporary: skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    let cache = small.0.join("kernels");
    let jit_ = Jit::with_disk_cache(&cache).unwrap();
    assert_eq!(run_all(&jit_), run_all(&Jit::new().unwrap()));
    let stored = kernel_files(&cache).len();
    assert!(
        stored < jit_.compiled(),
        "some stores failed ({stored} stored)"
    );
    let left: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".kernel"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Runs `multiproj project` on `input` with `env` (`None`: removed); its output and stderr.
fn project(
    input: &Path,
    out: &Path,
    spec: &str,
    env: &[(&str, Option<&Path>)],
) -> (Vec<u8>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multiproj"));
    cmd.args(["project", spec])
        .arg(input)
        .args(["--radius", "3", "--output"])
        .arg(out);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let run = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    (fs::read(out).unwrap(), stderr)
}

/// The spec whose reduce kernel [`poison`] replaces.
const POISONED_SPEC: &str = "l1 over dim0 of l1 over dim1";

#[test]
fn the_command_says_once_why_a_hostile_cache_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npy");
    ndarray_npy::write_npy(&input, &data()).unwrap();
    let out = dir.path().join("out.npy");
    let (reference, quiet) = project(
        &input,
        &out,
        POISONED_SPEC,
        &[("MULTIPROJ_KERNEL_CACHE", Some(Path::new("off")))],
    );
    assert_eq!(quiet, "");

    let cache = dir.path().join("kernels");
    filled(&cache);
    poison(&cache);
    // The control: the command runs the poisoned kernel from a cache of our own.
    let (trusted, _) = project(
        &input,
        &out,
        POISONED_SPEC,
        &[("MULTIPROJ_KERNEL_CACHE", Some(&*cache))],
    );
    assert!(
        trusted != reference,
        "the control failed: the poisoned kernel was not run"
    );

    chmod(&cache, 0o777);
    let (hostile, stderr) = project(
        &input,
        &out,
        POISONED_SPEC,
        &[("MULTIPROJ_KERNEL_CACHE", Some(&*cache))],
    );
    assert!(
        hostile == reference,
        "wrong projection: a planted kernel was run"
    );
    let notice = format!(
        "multiproj: kernel cache not used: '{}' is writable by group and others (mode 0777); \
         compiling in memory\n",
        cache.display()
    );
    assert_eq!(stderr, notice, "said once, and nothing else");

    // Many refused files (every kernel group-writable) are one line too.
    chmod(&cache, 0o700);
    for f in kernel_files(&cache) {
        chmod(&f, 0o666);
    }
    let (hostile, stderr) = project(
        &input,
        &out,
        POISONED_SPEC,
        &[("MULTIPROJ_KERNEL_CACHE", Some(&*cache))],
    );
    assert!(
        hostile == reference,
        "wrong projection: a planted kernel was run"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("multiproj: cached kernel not used: ")
            && stderr.contains("is writable by group and others (mode 0666)"),
        "{stderr}"
    );
}

#[test]
fn the_default_cache_checks_the_directories_multiproj_makes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npy");
    ndarray_npy::write_npy(&input, &data()).unwrap();
    let out = dir.path().join("out.npy");
    let (reference, _) = project(
        &input,
        &out,
        POISONED_SPEC,
        &[("MULTIPROJ_KERNEL_CACHE", Some(Path::new("off")))],
    );
    let run = |xdg: &Path| {
        project(
            &input,
            &out,
            POISONED_SPEC,
            &[
                ("MULTIPROJ_KERNEL_CACHE", None),
                ("XDG_CACHE_HOME", Some(xdg)),
            ],
        )
    };
    // `$XDG_CACHE_HOME/multiproj/kernels` of our own, poisoned: the control (it is the
    // directory the command uses, and it is trusted).
    let trusted = dir.path().join("trusted");
    fs::create_dir(&trusted).unwrap();
    filled(&trusted.join("multiproj").join("kernels"));
    poison(&trusted.join("multiproj").join("kernels"));
    let (result, stderr) = run(&trusted);
    assert!(
        result != reference,
        "the control failed: the poisoned kernel was not run"
    );
    assert_eq!(stderr, "");

    // `multiproj` a symbolic link to that directory.
    let linked = dir.path().join("linked");
    fs::create_dir(&linked).unwrap();
    symlink(trusted.join("multiproj"), linked.join("multiproj")).unwrap();
    let (result, stderr) = run(&linked);
    assert!(
        result == reference,
        "wrong projection: a planted kernel was run"
    );
    let notice = format!(
        "multiproj: kernel cache not used: '{}' is a symbolic link; compiling in memory\n",
        linked.join("multiproj").display()
    );
    assert_eq!(stderr, notice);

    // `multiproj` (made by someone else, or by mistake) writable by group: `kernels` in it
    // could be replaced by anyone in the group.
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::rename(trusted.join("multiproj"), shared.join("multiproj")).unwrap();
    chmod(&shared.join("multiproj"), 0o770);
    let (result, stderr) = run(&shared);
    assert!(
        result == reference,
        "wrong projection: a planted kernel was run"
    );
    assert!(
        stderr.contains(&format!(
            "'{}' is writable by group (mode 0770)",
            shared.join("multiproj").display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // `kernels` a symbolic link to the poisoned directory, in a `multiproj` of our own.
    let final_link = dir.path().join("final-link");
    fs::create_dir_all(final_link.join("multiproj")).unwrap();
    chmod(&final_link.join("multiproj"), 0o700);
    chmod(&shared.join("multiproj"), 0o700);
    symlink(
        shared.join("multiproj").join("kernels"),
        final_link.join("multiproj").join("kernels"),
    )
    .unwrap();
    let (result, stderr) = run(&final_link);
    assert!(
        result == reference,
        "wrong projection: a planted kernel was run"
    );
    assert!(stderr.contains("kernels' is a symbolic link"), "{stderr}");

    // `multiproj` of another user (mode 0755: not even writable by us).
    if give_away(
        &shared.join("multiproj"),
        "the_default_cache_checks_the_directories_multiproj_makes",
    ) {
        chmod(&shared.join("multiproj"), 0o755);
        let (result, stderr) = run(&shared);
        assert!(
            result == reference,
            "wrong projection: a planted kernel was run"
        );
        assert!(
            stderr.contains(&format!(
                "'{}' is owned by uid 65534",
                shared.join("multiproj").display()
            )),
            "{stderr}"
        );
    }

    // Missing, both are made private.
    let fresh = dir.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    chmod(&fresh, 0o755);
    let (result, stderr) = run(&fresh);
    assert!(
        result == reference,
        "wrong projection: a planted kernel was run"
    );
    assert_eq!(stderr, "");
    for d in [
        fresh.join("multiproj"),
        fresh.join("multiproj").join("kernels"),
    ] {
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700, "{d:?}");
    }
}
