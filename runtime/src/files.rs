//! Files on a shared machine: how the `.npy` layer opens its inputs and creates, replaces or
//! streams its outputs, so that another user's files, odd file types and interruptions cannot
//! turn a projection into damage.
//!
//! - **Inputs** are opened with `O_NONBLOCK | O_NOCTTY` and checked with `fstat` on the open
//!   descriptor: anything but a regular file (a FIFO, which would block forever, a device, a
//!   directory) is refused by name before a byte is read.
//! - **Outputs** go to one of two places ([`Target`]). A regular file (or a name that does not
//!   exist yet) is built in a temporary file beside it and renamed onto it — atomically, so a
//!   reader sees the old file or the whole new one. On Linux the temporary file is made with
//!   `O_TMPFILE`: it has no name until the result is complete, so even SIGKILL or a power cut
//!   leaves nothing behind; it gets a name (`.multiproj-<host>-<pid>-<random>.npy.tmp`) only for
//!   the instant between `linkat` and `rename`. Where the file system cannot make unnamed files,
//!   the temporary file is named from the start; the name says which host and process made it,
//!   so a later run can prove its maker dead and remove it (`sweep_stale`), and while it exists
//!   it is listed in [`named_temporaries`] for a signal handler to remove. Anything else that
//!   already exists at the output's name is never replaced: a FIFO or a character device
//!   (`/dev/null`) is written as a stream, standard output is `-`, and a terminal, a directory,
//!   a block device, a socket or a symbolic link are refused with an error.
//! - **Replacing** a file keeps its permission bits and, where permitted, its owner and group;
//!   where the group cannot be kept, group and other permissions are dropped rather than handed
//!   to another group. The new file is never more readable than the one it replaces.
//! - **Space** is reserved before anything is computed: `fallocate` where the file system has
//!   it, else zeros are written through `pwrite`, so a full disk is an `ENOSPC` error on every
//!   file system, not a SIGBUS when the memory map is written.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::DataError;

/// Turns an I/O error into a [`DataError::Io`] naming `path` and what was being done to it.
pub(crate) fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> DataError {
    let path = path.to_path_buf();
    move |source| DataError::Io {
        path,
        action,
        source,
    }
}

/// What a file that is not a regular file is, in words.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens the existing regular file `path` for reading (and writing, if `write`), without ever
/// blocking on a FIFO or becoming a terminal's controlling process; anything but a regular file
/// is refused, judged on the open descriptor.
pub(crate) fn open_regular(path: &Path, write: bool) -> Result<File, DataError> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)
        .map_err(io_error(
            path,
            if write { "open for writing" } else { "open" },
        ))?;
    let meta = file
        .metadata()
        .map_err(io_error(path, "read the metadata of"))?;
    if !meta.file_type().is_file() {
        return Err(DataError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    Ok(file)
}

/// Where an output goes.
#[derive(Debug)]
pub enum Target {
    /// A regular file, or a name nothing has yet: written beside it and renamed onto it. The
    /// metadata is that of the file being replaced, if there is one.
    File {
        path: PathBuf,
        replaces: Option<Metadata>,
    },
    /// A stream — standard output, a FIFO, a character device such as `/dev/null` — written
    /// once, in order, when the result is complete.
    Stream { file: File, name: PathBuf },
}

impl Target {
    /// Decides where an output named `path` goes (`-` is standard output), refusing what must
    /// not be written to or replaced. A FIFO is opened here, so this waits for its reader.
    pub fn resolve(path: &Path) -> Result<Target, DataError> {
        if path.as_os_str() == "-" {
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(io_error(path, "use as output"))?;
            let file = File::from(fd);
            return Self::stream(file, PathBuf::from("<stdout>"));
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            // Nothing there (or a parent is not a directory: creating the file says so).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Target::File {
                    path: path.to_path_buf(),
                    replaces: None,
                });
            }
            Err(e) => return Err(io_error(path, "read the metadata of")(e)),
        };
        let ft = meta.file_type();
        if ft.is_file() {
            return Ok(Target::File {
                path: path.to_path_buf(),
                replaces: Some(meta),
            });
        }
        if ft.is_symlink() {
            // Following it could write where another user pointed it; replacing it would turn a
            // link (`/dev/stdout` among them) into a file. A link to a stream is a stream.
            match std::fs::metadata(path) {
                Ok(m) if m.file_type().is_fifo() || m.file_type().is_char_device() => {}
                Ok(m) if m.file_type().is_file() => {
                    return Err(DataError::RefusedOutput {
                        path: path.to_path_buf(),
                        reason: "it is a symbolic link to a regular file; multiproj neither \
                                 replaces symbolic links nor writes through them"
                            .into(),
                        help: "name the file it points to, or use `-o -` for standard output",
                    });
                }
                Ok(m) => return Err(refused_kind(path, kind_of(m.file_type()))),
                Err(_) => return Err(refused_kind(path, "a dangling symbolic link")),
            }
        } else if !(ft.is_fifo() || ft.is_char_device()) {
            return Err(refused_kind(path, kind_of(ft)));
        }
        let file = OpenOptions::new()
            .write(true)
            .custom_flags((OFlags::NOCTTY | OFlags::CLOEXEC).bits() as i32)
            .open(path)
            .map_err(io_error(path, "open for writing"))?;
        let m = file
            .metadata()
            .map_err(io_error(path, "read the metadata of"))?;
        if !(m.file_type().is_fifo() || m.file_type().is_char_device()) {
            // It was replaced between the look and the open: judge the new one afresh.
            return Self::resolve(path);
        }
        Self::stream(file, path.to_path_buf())
    }

    fn stream(file: File, name: PathBuf) -> Result<Target, DataError> {
        if rustix::termios::isatty(&file) {
            return Err(DataError::RefusedOutput {
                path: name,
                reason: "it is a terminal, and the output is binary data".into(),
                help: "redirect it to a file or a pipe (`-o - > out.npy`, `-o - | …`), or name a file",
            });
        }
        Ok(Target::Stream { file, name })
    }
}

/// `Err(RefusedOutput)` if something other than a regular file (or nothing) is now at `path`:
/// checked again just before a rename, so that what was judged at the start still holds.
pub(crate) fn check_still_replaceable(path: &Path) -> Result<(), DataError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(refused_kind(path, kind_of(m.file_type()))),
        _ => Ok(()),
    }
}

fn refused_kind(path: &Path, kind: &'static str) -> DataError {
    DataError::RefusedOutput {
        path: path.to_path_buf(),
        reason: format!("it is {kind}, which multiproj does not replace"),
        help: "outputs are regular files (replaced atomically), FIFOs, character devices or `-` \
               for standard output",
    }
}

/// The directory a file named `path` lives in.
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

const TEMP_PREFIX: &str = ".multiproj-";
const TEMP_SUFFIX: &str = ".npy.tmp";

/// This machine's name as it goes into temporary file names: letters, digits, `.`, `_`, `-`.
fn host_tag() -> String {
    let uname = rustix::system::uname();
    let tag: String = uname
        .nodename()
        .to_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
                b as char
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if tag.is_empty() { "host".into() } else { tag }
}

fn temp_name() -> OsString {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(std::time::SystemTime::now());
    format!(
        "{TEMP_PREFIX}{}-{}-{:016x}{TEMP_SUFFIX}",
        host_tag(),
        std::process::id(),
        random
    )
    .into()
}

/// Temporary files that have a name while they exist, for a signal handler to remove, as C
/// strings reachable without a lock or an allocation (a handler of SIGBUS may run at any
/// moment). A process has at most a few at once (the command: one); should all slots be taken,
/// a further file is still removed when dropped, but not by a signal handler.
const SLOTS: usize = 8;
static NAMED: [AtomicPtr<std::ffi::c_char>; SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

fn register(path: &Path) {
    if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
        let raw = c.into_raw();
        for slot in &NAMED {
            if slot
                .compare_exchange(
                    std::ptr::null_mut(),
                    raw,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            {
                return;
            }
        }
        // No free slot. SAFETY: `raw` came from `into_raw` above and was not stored anywhere.
        drop(unsafe { CString::from_raw(raw) });
    }
}

fn deregister(path: &Path) {
    for slot in &NAMED {
        let p = slot.load(Ordering::SeqCst);
        if p.is_null() {
            continue;
        }
        // SAFETY: non-null pointers in the slots come from `CString::into_raw` and are freed
        // only by whoever swaps them out, which happens below, once.
        let name = unsafe { std::ffi::CStr::from_ptr(p) };
        if name.to_bytes() == path.as_os_str().as_bytes()
            && slot
                .compare_exchange(p, std::ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            // SAFETY: swapped out of its slot just now, so no one else will free it. A signal
            // handler that loaded it before the swap ends the process without returning.
            drop(unsafe { CString::from_raw(p) });
        }
    }
}

/// The temporary files of this process that have a name right now (see `TempFile`).
pub fn named_temporaries() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for_each_named_temporary_signal_safe(|c| {
        out.push(PathBuf::from(OsStr::from_bytes(c.to_bytes())));
    });
    out
}

/// Calls `f` with each named temporary file of this process, without locking or allocating:
/// usable from a signal handler.
pub fn for_each_named_temporary_signal_safe(mut f: impl FnMut(&std::ffi::CStr)) {
    for slot in &NAMED {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: see `deregister`: a pointer in a slot is a live `CString` until it is
            // swapped out.
            f(unsafe { std::ffi::CStr::from_ptr(p) });
        }
    }
}

/// Removes temporary files in `dir` that a multiproj process on this host left behind when it
/// died: named by this host, owned by this user, regular files, and made by a process id that
/// no longer exists. Anything else — other users' files, live processes' files, files of other
/// hosts sharing the directory — is left alone. Best effort, silent.
pub(crate) fn sweep_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let host = host_tag();
    let me = std::process::id();
    let euid = rustix::process::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = stale_pid(&name, &host) else {
            continue;
        };
        if pid == me || pid == 0 {
            continue;
        }
        let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
            continue;
        };
        // ESRCH proves the process gone; EPERM means it exists (another user's).
        let dead = matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        );
        if !dead {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.file_type().is_file() && meta.uid() == euid {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The process id in the name of a temporary file this host's multiproj made, if `name` is one.
fn stale_pid(name: &OsStr, host: &str) -> Option<u32> {
    let name = name.to_str()?;
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    let rest = rest.strip_prefix(host)?.strip_prefix('-')?;
    let (pid, random) = rest.split_once('-')?;
    (random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    pid.parse().ok()
}

/// A file being built in a directory, to be renamed onto its target when complete. Dropped
/// without `persist`, it is gone: unnamed files vanish with their descriptor,
/// named ones are removed.
#[derive(Debug)]
pub(crate) struct TempFile {
    file: File,
    dir: PathBuf,
    /// The name, if the file has one (the fallback for file systems without `O_TMPFILE`).
    named: Option<PathBuf>,
}

impl TempFile {
    /// Creates a temporary file in `dir` with permission bits `mode` (less the umask).
    pub(crate) fn create_in(dir: &Path, mode: u32) -> io::Result<TempFile> {
        // A named window (or the fallback) of a process that died leaves a file: clear those.
        sweep_stale(dir);
        #[cfg(target_os = "linux")]
        {
            let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
            match rustix::fs::open(dir, flags, Mode::from_raw_mode(mode)) {
                Ok(fd) => {
                    return Ok(TempFile {
                        file: File::from(fd),
                        dir: dir.to_path_buf(),
                        named: None,
                    });
                }
                // Not supported by this file system (or kernel): name it.
                Err(
                    rustix::io::Errno::OPNOTSUPP
                    | rustix::io::Errno::ISDIR
                    | rustix::io::Errno::INVAL
                    | rustix::io::Errno::NOSYS,
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Self::create_named(dir, mode)
    }

    /// Creates a temporary file that has a name from the start.
    pub(crate) fn create_named(dir: &Path, mode: u32) -> io::Result<TempFile> {
        loop {
            let path = dir.join(temp_name());
            register(&path);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(OFlags::CLOEXEC.bits() as i32)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        dir: dir.to_path_buf(),
                        named: Some(path),
                    });
                }
                Err(e) => {
                    deregister(&path);
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                }
            }
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file's name, if it has one before it is persisted.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.named.as_deref()
    }

    /// Gives the file the permissions and (where permitted) the owner of `like`, the file it
    /// will replace. When the group cannot be kept, group and other permissions are dropped.
    pub(crate) fn copy_identity(&self, like: &Metadata) -> io::Result<()> {
        let mut mode = like.mode() & 0o777;
        let uid = rustix::fs::Uid::from_raw(like.uid());
        let gid = rustix::fs::Gid::from_raw(like.gid());
        let meta = self.file.metadata()?;
        if meta.uid() != like.uid() || meta.gid() != like.gid() {
            let both = rustix::fs::fchown(&self.file, Some(uid), Some(gid));
            if both.is_err() && rustix::fs::fchown(&self.file, None, Some(gid)).is_err() {
                mode &= 0o700;
            }
        }
        rustix::fs::fchmod(&self.file, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Renames the file onto `target` (linking it first if it has no name). With `sync`, the
    /// data is flushed to the device before the rename and the directory after it, so that
    /// after a crash `target` is the old file or the whole new one.
    pub(crate) fn persist(mut self, target: &Path, sync: bool) -> io::Result<()> {
        if sync {
            self.file.sync_all()?;
        }
        if self.named.is_none() {
            self.link()?;
        }
        let from = self.named.clone().expect("linked above");
        std::fs::rename(&from, target)?;
        deregister(&from);
        self.named = None;
        if sync {
            // The rename itself is durable once the directory is.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Puts the complete file in place of `target` (see [`persist`](Self::persist)), once its
    /// data is written (and flushed, with `sync`): if `target` is still replaceable (a file of
    /// another kind put there meanwhile is left alone), with the permissions and, where
    /// permitted, the owner of the file it `replaces`.
    pub(crate) fn replace(
        self,
        target: &Path,
        replaces: Option<&Metadata>,
        sync: bool,
    ) -> Result<(), DataError> {
        check_still_replaceable(target)?;
        if let Some(old) = replaces {
            self.copy_identity(old)
                .map_err(io_error(target, "set the permissions of"))?;
        }
        self.persist(target, sync)
            .map_err(io_error(target, "rename a temporary file onto"))
    }

    /// Gives an unnamed file a temporary name in its directory.
    fn link(&mut self) -> io::Result<()> {
        loop {
            let path = self.dir.join(temp_name());
            register(&path);
            // With CAP_DAC_READ_SEARCH the descriptor itself can be linked; otherwise through
            // /proc, which links the file the descriptor refers to.
            let linked =
                rustix::fs::linkat(&self.file, "", rustix::fs::CWD, &path, AtFlags::EMPTY_PATH)
                    .or_else(|_| {
                        rustix::fs::linkat(
                            rustix::fs::CWD,
                            format!("/proc/self/fd/{}", self.file.as_raw_fd()),
                            rustix::fs::CWD,
                            &path,
                            AtFlags::SYMLINK_FOLLOW,
                        )
                    });
            match linked {
                Ok(()) => {
                    self.named = Some(path);
                    return Ok(());
                }
                Err(rustix::io::Errno::EXIST) => deregister(&path),
                Err(e) => {
                    deregister(&path);
                    return Err(e.into());
                }
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.named.take() {
            let _ = std::fs::remove_file(&path);
            deregister(&path);
        }
    }
}

/// Allocates the blocks of the first `len` bytes of `file`, so that writing them later cannot
/// fail for want of space: `fallocate` where the file system has it, else zeros written with
/// `pwrite` (slower, but a full disk is then `ENOSPC` here on every file system).
pub(crate) fn reserve(file: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::io::Errno;
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
    }
    write_zeros(file, len)
}

/// Writes `len` zero bytes at the start of `file`.
pub(crate) fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Writes all of `bytes` to a stream, naming it in the error.
pub(crate) fn write_stream(file: &mut File, name: &Path, bytes: &[u8]) -> Result<(), DataError> {
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(io_error(name, "write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_only_with_this_host() {
        let host = host_tag();
        let name = temp_name();
        assert_eq!(stale_pid(&name, &host), Some(std::process::id()));
        assert_eq!(stale_pid(&name, "otherhost"), None);
        for other in [
            ".multiproj-abc.npy.tmp",
            ".tmp-123",
            "x.npy",
            &format!(".multiproj-{host}-12-zz.npy.tmp"),
        ] {
            assert_eq!(stale_pid(OsStr::new(other), &host), None, "{other}");
        }
    }
}
