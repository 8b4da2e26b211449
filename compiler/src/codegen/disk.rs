//! The on-disk kernel cache: machine code of compiled kernels, kept between processes, so that
//! a `multiproj` run does not compile again what an earlier run compiled (Cranelift takes
//! 0.5–3 ms per projection's kernels; a tensor of a few MiB projects in less).
//!
//! A kernel is found by its identity — its [`KernelKey`](super::KernelKey) and a hash of the
//! code generator's source, which together determine its CLIF, so a hit needs no translation —
//! and the target it was compiled for (triple, Cranelift settings and CPU features, the version
//! of multiproj): a change to the code generator, a change of machine or of flags is a miss.
//! The file name is a hash of both; the file holds both in full and is used only if they match
//! exactly, and only if its checksum does (a torn or corrupted file is a miss, and is
//! replaced). Only code without relocations is cached (every kernel so far): it runs wherever
//! it is loaded.
//!
//! The cache is best effort: any I/O error reads as a miss or skips the store, never fails a
//! projection. Files are written to a temporary name and renamed, so concurrent processes never
//! see half a file; the directory is created with mode 0700 on Unix (the files are code this
//! process will run).

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MPKERNEL";
const FORMAT: u32 = 1;

/// A directory of cached kernels for one target.
#[derive(Debug, Clone)]
pub(super) struct DiskCache {
    dir: PathBuf,
    target: String,
}

impl DiskCache {
    pub(super) fn new(dir: PathBuf, target: String) -> Self {
        DiskCache { dir, target }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        self.target.hash(&mut h);
        id.hash(&mut h);
        self.dir.join(format!("{:016x}.kernel", h.finish()))
    }

    /// The code and its alignment, if the kernel `id` is cached for this target.
    pub(super) fn load(&self, id: &str) -> Option<(Vec<u8>, u64)> {
        let bytes = fs::read(self.path(id)).ok()?;
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC || r.u32()? != FORMAT {
            return None;
        }
        let align = r.u64()?;
        if r.field()? != self.target.as_bytes() || r.field()? != id.as_bytes() {
            return None;
        }
        let code = r.field()?.to_vec();
        (r.0.is_empty() && !code.is_empty()).then_some((code, align))
    }

    /// Stores a kernel; errors are ignored (the cache is best effort).
    pub(super) fn store(&self, id: &str, code: &[u8], align: u64) {
        let _ = self.try_store(id, code, align);
    }

    fn try_store(&self, id: &str, code: &[u8], align: u64) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        self.remove_stale_temporaries();
        let mut body = Vec::with_capacity(64 + self.target.len() + id.len() + code.len());
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&FORMAT.to_le_bytes());
        body.extend_from_slice(&align.to_le_bytes());
        for field in [self.target.as_bytes(), id.as_bytes(), code] {
            body.extend_from_slice(&(field.len() as u64).to_le_bytes());
            body.extend_from_slice(field);
        }
        let sum = checksum(&body);
        body.extend_from_slice(&sum.to_le_bytes());
        let path = self.path(id);
        let mut tmp = tempfile_in(&self.dir)?;
        tmp.1.write_all(&body)?;
        tmp.1.sync_data().ok();
        fs::rename(&tmp.0, &path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp.0);
        })
    }

    /// Removes temporary files a process left behind when it died between writing and renaming
    /// (older than a day, so that no other process is still writing them). Runs when a kernel
    /// is stored, i.e. only after a compile.
    fn remove_stale_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let day = std::time::Duration::from_secs(24 * 60 * 60);
        for e in entries.flatten() {
            let stale = e.file_name().to_string_lossy().starts_with(".tmp-")
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day));
            if stale {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// A new file with a name no other process uses, in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let mut h = DefaultHasher::new();
    std::process::id().hash(&mut h);
    std::thread::current().id().hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    let path = dir.join(format!(".tmp-{:016x}", h.finish()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Reads the fields of a cache file.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
}

/// The default cache directory: `$MULTIPROJ_KERNEL_CACHE` if set (`off`, `0` or empty turn the
/// cache off), else `$XDG_CACHE_HOME/multiproj/kernels`, else `$HOME/.cache/multiproj/kernels`.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os("MULTIPROJ_KERNEL_CACHE") {
        Some(v) if v.is_empty() || v == "off" || v == "0" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|v| !v.is_empty())
                        .map(|h| PathBuf::from(h).join(".cache"))
                })?;
            Some(base.join("multiproj").join("kernels"))
        }
    }
}
