//! [`SharedOutput`]: one `.npy` output written by several processes, each its own slice.

use std::fs::{File, Metadata, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use multiproj_compiler::{DType, Order};
use ndarray::ArrayViewD;
use rustix::fs::OFlags;

use super::TensorView;
use super::stored::Stored;
use crate::DataError;
use crate::files::{self, io_error};

/// Bytes handed to one `pwrite` at most: runs longer than this are converted and written in
/// pieces, so the copy into bytes stays small.
const CHUNK_BYTES: usize = 4 << 20;

/// One new `.npy` file written by several processes (the ranks of an MPI job),
/// each its own slice along one axis, and put in place whole by one of them once all are done.
///
/// The protocol, driven by the caller (which owns the communication):
/// 1. One process [`create`](SharedOutput::create)s it beside the target, its space reserved
///    and its header written. When every process runs on its host, the file has no name
///    (`O_TMPFILE`): nothing is left whatever kills the job, and the others open it through
///    `/proc/<pid>/fd/<fd>`. Otherwise it has a fresh name (`O_EXCL`) that says which host and
///    process made it, so a later run in the directory removes it if that process is killed
///    (see [`files`](crate::files)), and the command's signal handling removes it on SIGTERM.
/// 2. The caller sends the others its [`name`](SharedOutput::name) and
///    [`identity`](SharedOutput::identity); each [`join`](SharedOutput::join)s it, which opens
///    the name (without following a symbolic link, unless it is the creator's descriptor)
///    and refuses anything but the file just made: a regular file of this user, of exactly
///    the expected length and header, with one link (none when unnamed),
///    and — for a process on the same host — the same device and inode. (On another host the
///    device number of a network file system differs, so only the rest is checked there.)
/// 3. Each process writes its slice with [`write_part`](SharedOutput::write_part): positioned
///    writes (`pwrite`) of exactly its bytes, never a shared memory map, so that processes on
///    different hosts of a network file system never write the same page (NFS and its kin
///    keep byte ranges apart for `write`, not for a mapped page).
/// 4. Each process [`finish`](SharedOutput::finish)es (flushes its writes to the device with
///    `sync`); once the caller knows all did, the creator [`commit`](SharedOutput::commit)s:
///    the rename onto the target, as for [`NpyOutput`](super::NpyOutput). Dropped without
///    commit, the creator's temporary file is removed.
#[derive(Debug)]
pub struct SharedOutput {
    file: File,
    /// The temporary file, on the process that created it (and commits it).
    temp: Option<files::TempFile>,
    replaces: Option<Box<Metadata>>,
    /// The temporary file's name.
    name: PathBuf,
    target: PathBuf,
    dtype: DType,
    shape: Vec<usize>,
    order: Order,
    data_offset: u64,
}

impl SharedOutput {
    /// Creates the file for a tensor of `dtype`, `shape` and `order` (`Strided` is written in C
    /// order) that will replace `target`, which must be a regular file or a free name: a
    /// stream cannot be written by several processes.
    ///
    /// With `named` false (every process on this host), the file has no name until the commit
    /// (`O_TMPFILE`, where the file system can), so even SIGKILL leaves nothing behind; the
    /// others open it through `/proc/<pid>/fd/<fd>` of this process. With `named`, it is named
    /// from the start, for processes on other hosts.
    pub fn create(
        target: files::Target,
        dtype: DType,
        shape: &[usize],
        order: Order,
        named: bool,
    ) -> Result<Self, DataError> {
        let (path, replaces) = match target {
            files::Target::File { path, replaces } => (path, replaces),
            files::Target::Stream { name, .. } => {
                return Err(DataError::RefusedOutput {
                    path: name,
                    reason: "several processes write one output, which must be a regular file \
                             (or a name nothing has yet), not a stream"
                        .into(),
                    help: "name a file, or give each process its own output with `{rank}`",
                });
            }
        };
        let (stored, header) = Stored::new_output(&path, dtype, shape, order)?;
        let total = stored.total_bytes() as u64;
        let dir = files::parent_dir(&path);
        let mode = replaces
            .as_ref()
            .map_or(0o666, |m| MetadataExt::mode(m) & 0o666);
        let temp = if named {
            // Named from the start: the other processes open it by its name. (Files that
            // processes of this host left when they were killed go first.)
            files::sweep_stale(dir);
            files::TempFile::create_named(dir, mode)
        } else {
            files::TempFile::create_in(dir, mode)
        }
        .map_err(io_error(dir, "create a temporary file in"))?;
        let file = temp.file().try_clone().map_err(io_error(&path, "open"))?;
        file.set_len(total)
            .map_err(io_error(&path, "allocate space for"))?;
        files::reserve(&file, total).map_err(io_error(&path, "allocate space for"))?;
        file.write_all_at(&header, 0)
            .map_err(io_error(&path, "write the header of"))?;
        let name = match temp.path() {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                temp.file().as_raw_fd()
            )),
        };
        Ok(SharedOutput {
            file,
            temp: Some(temp),
            replaces: replaces.map(Box::new),
            name,
            target: path,
            dtype,
            shape: shape.to_vec(),
            order: stored.order(),
            data_offset: header.len() as u64,
        })
    }

    /// Opens the file another process [`create`](Self::create)d as `name` for `target`, with
    /// the same `dtype`, `shape` and `order`, refusing anything but that file (see
    /// [`SharedOutput`]). `identity` is the creator's [`identity`](Self::identity) when it runs
    /// on this host, `None` otherwise.
    pub fn join(
        name: &Path,
        target: &Path,
        dtype: DType,
        shape: &[usize],
        order: Order,
        identity: Option<(u64, u64)>,
    ) -> Result<Self, DataError> {
        let refused = |reason: String| DataError::RefusedOutput {
            path: name.to_path_buf(),
            reason,
            help: "another user may be interfering with the job's directory; write the output \
                   to a directory only you can write to",
        };
        // An unnamed file is reached through the creator's descriptor, a link that must be
        // followed (and that only the creator's user can follow); a name is not followed.
        let unnamed = name.starts_with("/proc/");
        let mut flags = OFlags::NONBLOCK | OFlags::NOCTTY;
        if !unnamed {
            flags |= OFlags::NOFOLLOW;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags.bits() as i32)
            .open(name)
            .map_err(io_error(name, "open the job's shared output"))?;
        let meta = file
            .metadata()
            .map_err(io_error(name, "read the metadata of"))?;
        let (stored, header) = Stored::new_output(target, dtype, shape, order)?;
        if !meta.file_type().is_file() {
            return Err(refused("it is not a regular file".into()));
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(refused(format!(
                "it belongs to user {}, not to this job's",
                meta.uid()
            )));
        }
        let links = u64::from(!unnamed);
        if meta.nlink() != links {
            return Err(refused(format!(
                "it has {} names, not {links}",
                meta.nlink()
            )));
        }
        if let Some((dev, ino)) = identity
            && (meta.dev(), meta.ino()) != (dev, ino)
        {
            return Err(refused(
                "it is not the file the first process created (another file has its name)".into(),
            ));
        }
        if meta.len() != stored.total_bytes() as u64 {
            return Err(refused(format!(
                "it has {} bytes, not the {} the result needs",
                meta.len(),
                stored.total_bytes()
            )));
        }
        let mut found = vec![0u8; header.len()];
        file.read_exact_at(&mut found, 0)
            .map_err(io_error(name, "read the header of"))?;
        if found != header {
            return Err(refused("its header is not the result's".into()));
        }
        Ok(SharedOutput {
            file,
            temp: None,
            replaces: None,
            name: name.to_path_buf(),
            target: target.to_path_buf(),
            dtype,
            shape: shape.to_vec(),
            order: stored.order(),
            data_offset: header.len() as u64,
        })
    }

    /// The temporary file's name, for the other processes to [`join`](Self::join).
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The file's device and inode numbers.
    pub fn identity(&self) -> Result<(u64, u64), DataError> {
        let meta = self
            .file
            .metadata()
            .map_err(io_error(&self.name, "read the metadata of"))?;
        Ok((meta.dev(), meta.ino()))
    }

    /// The target the file will replace.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes `part`, the slice `start..start + len` along `axis` of the whole tensor (its
    /// other extents the whole tensor's), into its place in the file.
    pub fn write_part(
        &self,
        axis: usize,
        start: usize,
        part: &TensorView<'_>,
    ) -> Result<(), DataError> {
        if part.dtype() != self.dtype {
            return Err(DataError::DTypeMismatch {
                expected: self.dtype,
                found: part.dtype(),
            });
        }
        let fits = part.shape().len() == self.shape.len()
            && axis < self.shape.len()
            && part
                .shape()
                .iter()
                .zip(&self.shape)
                .enumerate()
                .all(|(k, (&p, &w))| {
                    if k == axis {
                        start.checked_add(p).is_some_and(|end| end <= w)
                    } else {
                        p == w
                    }
                });
        if !fits {
            return Err(DataError::Shard(format!(
                "a part of shape {:?} at {start} along axis {axis} does not fit the output's \
                 shape {:?}",
                part.shape(),
                self.shape
            )));
        }
        match part {
            TensorView::F64(v) => self.write_runs(v, axis, start, |x: f64| x.to_le_bytes()),
            TensorView::F32(v) => self.write_runs(v, axis, start, |x: f32| x.to_le_bytes()),
            TensorView::F16(v) => {
                self.write_runs(v, axis, start, |x: half::f16| x.to_bits().to_le_bytes())
            }
            TensorView::BF16(v) => {
                self.write_runs(v, axis, start, |x: half::bf16| x.to_bits().to_le_bytes())
            }
        }
    }

    /// The file stores the tensor in `order`; in that memory order, the slice along `axis` is
    /// `outer` runs of `len × inner` elements, run `o` at element `o·n·inner + start·inner`.
    fn write_runs<T: Copy, const N: usize>(
        &self,
        part: &ArrayViewD<'_, T>,
        axis: usize,
        start: usize,
        bytes: impl Fn(T) -> [u8; N],
    ) -> Result<(), DataError> {
        // The part, and the axes, in the file's memory order (a Fortran array is the C array
        // of its reversed axes).
        let (part, axis, whole): (ArrayViewD<'_, T>, usize, Vec<usize>) = match self.order {
            Order::F => (
                part.clone().reversed_axes(),
                self.shape.len() - 1 - axis,
                self.shape.iter().rev().copied().collect(),
            ),
            Order::C | Order::Strided => (part.clone(), axis, self.shape.clone()),
        };
        let inner: usize = whole[axis + 1..].iter().product();
        let run = part.shape()[axis] * inner;
        let n = whole[axis];
        let mut buf = Vec::with_capacity(CHUNK_BYTES.min(run.saturating_mul(N)));
        let flush = |buf: &mut Vec<u8>, run_index: usize, from: usize| -> Result<(), DataError> {
            let element = (run_index * n + start) * inner + from;
            let at = self.data_offset + (element * N) as u64;
            self.file
                .write_all_at(buf, at)
                .map_err(io_error(&self.target, "write"))?;
            buf.clear();
            Ok(())
        };
        // In memory order, the part's elements come run after run; `from` is where in its run
        // the buffered bytes start.
        let (mut in_run, mut run_index, mut from) = (0usize, 0usize, 0usize);
        for x in part.iter() {
            buf.extend_from_slice(&bytes(*x));
            in_run += 1;
            if in_run == run || buf.len() + N > CHUNK_BYTES {
                flush(&mut buf, run_index, from)?;
                if in_run == run {
                    in_run = 0;
                    run_index += 1;
                }
                from = in_run;
            }
        }
        debug_assert!(buf.is_empty());
        Ok(())
    }

    /// Ends this process's part: with `sync`, its writes reach the device.
    pub fn finish(self, sync: bool) -> Result<(), DataError> {
        if sync {
            self.file
                .sync_all()
                .map_err(io_error(&self.target, "write"))?;
        }
        Ok(())
    }

    /// Renames the file onto its target, replacing any regular file there (keeping its
    /// permissions and, where permitted, its owner), once every process has
    /// [`finish`](Self::finish)ed. Only the creating process commits; with `sync` the rename is
    /// durable (each process flushed its own writes in `finish`).
    pub fn commit(self, sync: bool) -> Result<(), DataError> {
        let SharedOutput {
            file,
            temp,
            replaces,
            target,
            ..
        } = self;
        let Some(temp) = temp else {
            return Err(DataError::Internal(
                "only the process that created a shared output commits it".into(),
            ));
        };
        if sync {
            file.sync_all().map_err(io_error(&target, "write"))?;
        }
        drop(file);
        temp.replace(&target, replaces.as_deref(), sync)
    }
}
