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
//! # What the cache trusts
//! A cached kernel is machine code this process will run, so the cache is used only where
//! nobody but the user running multiproj (or root) can have put anything: the trust model of
//! OpenSSH's `StrictModes`. The checksum is no signature (anyone can recompute it), it only
//! catches torn and damaged files; owners and modes are what decide.
//! - The directory, and every component of its path that is multiproj's own, must be a real
//!   directory (not a symbolic link), owned by the effective uid and not writable by group or
//!   others. Multiproj's own components are `multiproj` and `kernels` of the default
//!   `$XDG_CACHE_HOME/multiproj/kernels` (or `~/.cache/multiproj/kernels`), the directory
//!   itself when one is named (`MULTIPROJ_KERNEL_CACHE`, [`Jit::with_disk_cache`]), and any
//!   missing directory of the path, which is created with mode 0700. The path is walked one
//!   component at a time with directory descriptors (`openat`, with `O_NOFOLLOW` for
//!   multiproj's components, each checked with `fstat` on the open descriptor, never by path),
//!   and the cache keeps the directory's descriptor: every file is opened relative to it, so
//!   renaming or replacing a directory of the path afterwards redirects nothing.
//! - A kernel file is opened `O_NOFOLLOW | O_NONBLOCK` relative to that descriptor and read only
//!   if `fstat` on the open file says it is a regular file (a FIFO or a device is never read
//!   from), owned by the effective uid, not writable by group or others, and not larger than
//!   any kernel.
//!
//! Anything else, and the cache (or that one kernel file) is not used: kernels are compiled in
//! memory, the process says why once on standard error, and
//! [`Jit::disk_cache_refusals`] lists the reasons. A refused directory is never written to; a
//! refused file in a trusted directory is replaced by the kernel compiled in its stead.
//!
//! The cache is best effort: any I/O error reads as a miss or skips the store, never fails a
//! projection. A kernel is written to a temporary, created exclusively with mode 0600 and named
//! `.multiproj-<pid>-<random>.kernel.tmp`, and renamed into place, so concurrent processes
//! never see half a file; a failed write removes its temporary. Housekeeping, when a JIT first
//! stores a kernel, removes only such temporaries that are regular files owned by the effective
//! uid and whose process is gone (or that are more than a day old), and after a day the
//! `.tmp-<16 hex digits>` temporaries of earlier versions; nothing else, and no other user's
//! file.
//!
//! The trust checks need Unix; elsewhere there is no default cache directory and a named one is
//! never used.
//!
//! [`Jit::with_disk_cache`]: super::Jit::with_disk_cache
//! [`Jit::disk_cache_refusals`]: super::Jit::disk_cache_refusals

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const MAGIC: &[u8; 8] = b"MPKERNEL";
const FORMAT: u32 = 1;

/// The largest kernel file read (kernels take a few KiB).
const MAX_FILE_LEN: u64 = 16 << 20;

/// Whether this process has said why it did not use a cache (it says so once).
static NOTICE_GIVEN: AtomicBool = AtomicBool::new(false);

/// A directory of cached kernels for one target.
#[derive(Debug)]
pub(super) struct DiskCache {
    dir: PathBuf,
    target: String,
    /// How many trailing components of `dir` are multiproj's own (checked like the directory).
    owned: usize,
    /// The directory, once opened: `Ok` if it is trusted.
    opened: Option<Result<File, ()>>,
    /// Why the directory or a file in it was not used.
    refusals: Vec<String>,
    /// Whether housekeeping ran (once, at the first store).
    swept: bool,
}

impl DiskCache {
    /// The cache in `dir`, opened when first used. The default location's `multiproj` and
    /// `kernels` are multiproj's own; otherwise the named directory is.
    pub(super) fn new(dir: PathBuf, target: String) -> Self {
        let owned = if default_location().is_some_and(|d| d == dir) {
            2
        } else {
            1
        };
        DiskCache {
            dir,
            target,
            owned,
            opened: None,
            refusals: Vec::new(),
            swept: false,
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the directory, or files in it, were not used (empty if everything was).
    pub(super) fn refusals(&self) -> &[String] {
        &self.refusals
    }

    fn file_name(&self, id: &str) -> String {
        let mut h = DefaultHasher::new();
        self.target.hash(&mut h);
        id.hash(&mut h);
        format!("{:016x}.kernel", h.finish())
    }

    /// The directory, opened (and checked) on first use; `None` if it is not to be used.
    fn directory(&mut self) -> Option<&File> {
        if self.opened.is_none() {
            let opened = sys::open_trusted_dir(&self.dir, self.owned)
                .map_err(|why| self.refuse("kernel cache not used", why, "compiling in memory"));
            self.opened = Some(opened);
        }
        self.opened.as_ref()?.as_ref().ok()
    }

    /// Records why something was not used, and says so on stderr if this process has not yet.
    fn refuse(&mut self, what: &str, why: String, instead: &str) {
        if !NOTICE_GIVEN.swap(true, Ordering::Relaxed) {
            // A full or closed stderr must not fail (or panic) a projection over a notice.
            let _ = writeln!(std::io::stderr(), "multiproj: {what}: {why}; {instead}");
        }
        self.refusals.push(why);
    }

    /// The code and its alignment, if the kernel `id` is cached for this target.
    pub(super) fn load(&mut self, id: &str) -> Option<(Vec<u8>, u64)> {
        let name = self.file_name(id);
        let read = sys::read_trusted_file(self.directory()?, &name);
        let bytes = match read {
            Ok(bytes) => bytes?,
            Err(why) => {
                let why = format!("'{}' {why}", self.dir.join(&name).display());
                self.refuse("cached kernel not used", why, "compiling it again");
                return None;
            }
        };
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

    /// Stores a kernel if the directory is trusted; errors are ignored (the cache is best
    /// effort).
    pub(super) fn store(&mut self, id: &str, code: &[u8], align: u64) {
        let name = self.file_name(id);
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
        let sweep = !std::mem::replace(&mut self.swept, true);
        let Some(dir) = self.directory() else {
            return;
        };
        if sweep {
            sys::remove_stale_temporaries(dir);
        }
        let _ = sys::write_atomically(dir, &name, &body);
    }
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
/// None where the cache cannot be trusted (not Unix).
pub fn default_dir() -> Option<PathBuf> {
    if cfg!(not(unix)) {
        return None;
    }
    match std::env::var_os("MULTIPROJ_KERNEL_CACHE") {
        Some(v) if v.is_empty() || v == "off" || v == "0" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => default_location(),
    }
}

/// `$XDG_CACHE_HOME/multiproj/kernels`, else `$HOME/.cache/multiproj/kernels`.
fn default_location() -> Option<PathBuf> {
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

/// The file system side: every check on an open descriptor, every access relative to the
/// directory's descriptor.
#[cfg(unix)]
mod sys {
    use std::ffi::OsStr;
    use std::fs::{File, Metadata};
    use std::hash::{BuildHasher, RandomState};
    use std::io::{self, Read, Write};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::{Component, Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use rustix::io::Errno;

    use super::MAX_FILE_LEN;

    /// A temporary of this process is named `{TEMP_PREFIX}{pid}-{16 hex digits}{TEMP_SUFFIX}`.
    const TEMP_PREFIX: &str = ".multiproj-";
    const TEMP_SUFFIX: &str = ".kernel.tmp";
    /// Earlier versions named their temporaries `.tmp-{16 hex digits}`.
    const LEGACY_TEMP_PREFIX: &str = ".tmp-";
    /// Temporaries older than this are removed even if their process seems alive (its pid may
    /// have been reused).
    const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

    const DIR_FLAGS: OFlags = OFlags::RDONLY
        .union(OFlags::DIRECTORY)
        .union(OFlags::CLOEXEC);

    /// An error as a message says it: "permission denied", without "(os error 13)".
    fn text(e: impl Into<io::Error>) -> String {
        let text = e.into().to_string();
        let text = text.split(" (os error").next().unwrap_or_default();
        text.to_lowercase()
    }

    /// Opens `dir` component by component and checks multiproj's own components (the last
    /// `owned`, and any it creates) and the directory itself. The reason, if it is not to be
    /// used.
    pub(super) fn open_trusted_dir(dir: &Path, owned: usize) -> Result<File, String> {
        let names = dir
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count();
        let first_owned = names.saturating_sub(owned);
        let start = if dir.has_root() { "/" } else { "." };
        let mut fd = rustix::fs::open(start, DIR_FLAGS, Mode::empty())
            .map(File::from)
            .map_err(|e| format!("'{start}' could not be opened ({})", text(e)))?;
        let mut shown = PathBuf::new();
        let mut index = 0;
        for c in dir.components() {
            shown.push(c);
            fd = match c {
                Component::Prefix(_) | Component::RootDir | Component::CurDir => continue,
                Component::ParentDir => step(&fd, OsStr::new(".."), false, &shown)?,
                Component::Normal(name) => {
                    index += 1;
                    step(&fd, name, index > first_owned, &shown)?
                }
            };
        }
        check_dir(
            &fd,
            if shown.as_os_str().is_empty() {
                dir
            } else {
                &shown
            },
        )?;
        Ok(fd)
    }

    /// Opens (or creates) the directory `name` in `parent`; `ours`: a component of multiproj's
    /// own, which must not be a symbolic link and is checked.
    fn step(parent: &File, name: &OsStr, ours: bool, shown: &Path) -> Result<File, String> {
        let flags = |ours: bool| {
            if ours {
                DIR_FLAGS | OFlags::NOFOLLOW
            } else {
                DIR_FLAGS
            }
        };
        let mut ours = ours;
        let opened = match rustix::fs::openat(parent, name, flags(ours), Mode::empty()) {
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(format!(
                            "'{}' could not be created ({})",
                            shown.display(),
                            text(e)
                        ));
                    }
                }
                // Made by multiproj (or, in a race, by someone else): checked either way.
                ours = true;
                rustix::fs::openat(parent, name, flags(ours), Mode::empty())
            }
            other => other,
        };
        let fd = File::from(opened.map_err(|e| {
            let what = match e {
                Errno::LOOP | Errno::MLINK | Errno::NOTDIR => not_a_directory(parent, name),
                _ => None,
            };
            match what {
                Some(what) => format!("'{}' is {what}", shown.display()),
                None => format!("'{}' could not be opened ({})", shown.display(), text(e)),
            }
        })?);
        if ours {
            check_dir(&fd, shown)?;
        }
        Ok(fd)
    }

    /// What `name` in `parent` is, when it could not be opened as a directory: for the message.
    fn not_a_directory(parent: &File, name: &OsStr) -> Option<&'static str> {
        let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some(match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => "a symbolic link",
            FileType::Directory => return None,
            _ => "not a directory",
        })
    }

    fn check_dir(fd: &File, shown: &Path) -> Result<(), String> {
        let meta = fd
            .metadata()
            .map_err(|e| format!("'{}' could not be examined ({})", shown.display(), text(e)))?;
        if !meta.is_dir() {
            return Err(format!("'{}' is not a directory", shown.display()));
        }
        check_owner_and_mode(&meta).map_err(|why| format!("'{}' {why}", shown.display()))
    }

    /// Owned by the effective uid and not writable by group or others.
    fn check_owner_and_mode(meta: &Metadata) -> Result<(), String> {
        let euid = rustix::process::geteuid().as_raw();
        if meta.uid() != euid {
            return Err(format!(
                "is owned by uid {}, not by uid {euid} who runs multiproj",
                meta.uid()
            ));
        }
        let writable = match (meta.mode() & 0o020 != 0, meta.mode() & 0o002 != 0) {
            (false, false) => return Ok(()),
            (true, false) => "group",
            (false, true) => "others",
            (true, true) => "group and others",
        };
        Err(format!(
            "is writable by {writable} (mode {:04o})",
            meta.mode() & 0o7777
        ))
    }

    /// The content of `name` in `dir`: `Ok(None)` if there is no such file, the reason if it
    /// is there but not to be trusted.
    pub(super) fn read_trusted_file(dir: &File, name: &str) -> Result<Option<Vec<u8>>, String> {
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP | Errno::MLINK) => return Err("is a symbolic link".into()),
            Err(e) => return Err(format!("could not be opened ({})", text(e))),
        };
        let meta = file
            .metadata()
            .map_err(|e| format!("could not be examined ({})", text(e)))?;
        let kind = meta.file_type();
        let other = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "not a regular file"
        };
        if !kind.is_file() {
            return Err(format!("is {other}, not a regular file"));
        }
        check_owner_and_mode(&meta)?;
        if meta.len() > MAX_FILE_LEN {
            return Err(format!("is too large for a kernel ({} bytes)", meta.len()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_FILE_LEN)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("could not be read ({})", text(e)))?;
        Ok(Some(bytes))
    }

    /// Writes `body` to `name` in `dir` through a temporary, which is removed if anything fails.
    pub(super) fn write_atomically(dir: &File, name: &str, body: &[u8]) -> io::Result<()> {
        let (tmp, mut file) = create_temporary(dir)?;
        let written = file
            .write_all(body)
            .and_then(|()| {
                // Durable before it is visible; a torn file would only be a miss (checksum).
                let _ = file.sync_data();
                rustix::fs::renameat(dir, &tmp, dir, name).map_err(io::Error::from)
            })
            .inspect_err(|_| {
                let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
            });
        drop(file);
        written
    }

    /// A new file of mode 0600 in `dir`, named as this process's temporary.
    fn create_temporary(dir: &File) -> io::Result<(String, File)> {
        let pid = std::process::id();
        let random = RandomState::new();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for attempt in 0u32.. {
            let r = random.hash_one((SystemTime::now(), std::thread::current().id(), attempt));
            let tmp = format!("{TEMP_PREFIX}{pid}-{r:016x}{TEMP_SUFFIX}");
            match rustix::fs::openat(dir, &tmp, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok((tmp, File::from(fd))),
                Err(Errno::EXIST) if attempt < 8 => {}
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns")
    }

    /// A temporary multiproj made: of the process `Some(pid)`, or of an earlier version.
    fn temporary_of(name: &str) -> Option<Option<u32>> {
        let hex16 = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(rest) = name.strip_prefix(TEMP_PREFIX) {
            let (pid, random) = rest.strip_suffix(TEMP_SUFFIX)?.split_once('-')?;
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || !hex16(random) {
                return None;
            }
            return pid.parse().ok().map(Some);
        }
        hex16(name.strip_prefix(LEGACY_TEMP_PREFIX)?).then_some(None)
    }

    /// Whether the process `pid` may still be running (it exists, or cannot be asked).
    fn alive(pid: u32) -> bool {
        match i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            Some(pid) => !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH)),
            None => false,
        }
    }

    /// Removes the temporaries multiproj processes left behind when they died between writing
    /// and renaming: regular files with multiproj's temporary names, owned by the effective
    /// uid, whose process is gone or which are older than a day (of an earlier version: older
    /// than a day). Runs when the first kernel is stored, i.e. only after a compile.
    pub(super) fn remove_stale_temporaries(dir: &File) {
        let Ok(mut entries) = rustix::fs::Dir::read_from(dir) else {
            return;
        };
        let mut candidates = Vec::new();
        while let Some(Ok(entry)) = entries.read() {
            if let Ok(name) = entry.file_name().to_str()
                && let Some(pid) = temporary_of(name)
            {
                candidates.push((name.to_owned(), pid));
            }
        }
        let euid = rustix::process::geteuid().as_raw();
        let now = SystemTime::now();
        for (name, pid) in candidates {
            let Ok(st) = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != euid {
                continue;
            }
            let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
            let old = now
                .duration_since(modified)
                .is_ok_and(|age| age > STALE_AFTER);
            if old || pid.is_some_and(|pid| !alive(pid)) {
                let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::temporary_of;

        #[test]
        fn only_multiproj_temporaries_are_recognized() {
            let r = "0123456789abcdef";
            assert_eq!(
                temporary_of(&format!(".multiproj-42-{r}.kernel.tmp")),
                Some(Some(42))
            );
            assert_eq!(temporary_of(&format!(".tmp-{r}")), Some(None));
            for other in [
                format!(".multiproj--{r}.kernel.tmp"),
                format!(".multiproj-4x2-{r}.kernel.tmp"),
                format!(".multiproj-42-{r}.kernel"),
                format!(".multiproj-42-{r}0.kernel.tmp"),
                format!(".multiproj-99999999999-{r}.kernel.tmp"),
                format!(".tmp-{r}0"),
                ".tmp-foo".to_string(),
                format!("{r}.kernel"),
                "notes.txt".to_string(),
            ] {
                assert_eq!(temporary_of(&other), None, "{other}");
            }
        }
    }
}

/// Without Unix's owners, modes and `O_NOFOLLOW`, nothing on disk is trusted.
#[cfg(not(unix))]
mod sys {
    use std::fs::File;
    use std::path::Path;

    pub(super) fn open_trusted_dir(_dir: &Path, _owned: usize) -> Result<File, String> {
        Err("the kernel cache needs a Unix system".into())
    }

    pub(super) fn read_trusted_file(_dir: &File, _name: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }

    pub(super) fn write_atomically(_dir: &File, _name: &str, _body: &[u8]) -> std::io::Result<()> {
        Ok(())
    }

    pub(super) fn remove_stale_temporaries(_dir: &File) {}
}
