//! Writing: [`NpyOutput`], a new `.npy` file built in a temporary file (or in memory, for a
//! stream) and put in place whole on commit, and [`write_npy_atomic`].

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::MmapMut;
use multiproj_compiler::{DType, Order};

use super::mapped::MappedNpy;
use super::stored::Stored;
use super::{TensorView, TensorViewMut};
use crate::DataError;
use crate::files::{self, io_error};

/// Where a new `.npy` file's bytes are built, and where they go on commit.
#[derive(Debug)]
enum Sink {
    /// A temporary file beside the target, mapped; renamed onto the target on commit.
    File {
        temp: files::TempFile,
        replaces: Option<Box<std::fs::Metadata>>,
    },
    /// Anonymous memory, written to the stream on commit.
    Stream(File),
}

/// A new `.npy` file. Written to a regular file, it is built in a temporary file next to its
/// target and renamed onto the target by [`commit`](Self::commit); dropped without `commit`,
/// the temporary file is gone: a failed run leaves neither a partial output nor a changed
/// target. Written to a stream (standard output, a FIFO, a character device), it is built in
/// memory and written out whole on commit, so a failed run writes nothing to the stream.
///
/// Its accessors (`info`, `view`, `view_mut`, `mapped_range`, and `path`, which is its
/// [`target`](Self::target)) are [`MappedNpy`]'s.
#[derive(Debug)]
pub struct NpyOutput {
    // Declared before `sink` so that it is unmapped before the file is deleted.
    npy: MappedNpy<MmapMut>,
    sink: Sink,
}

impl Deref for NpyOutput {
    type Target = MappedNpy<MmapMut>;

    fn deref(&self) -> &Self::Target {
        &self.npy
    }
}

impl NpyOutput {
    /// The data, writable. (Only the view is handed out mutably, never the mapping itself:
    /// the file, its lock and its mapping stay together.)
    pub fn view_mut(&mut self) -> TensorViewMut<'_> {
        self.npy.view_mut()
    }

    /// [`create_at`](Self::create_at) with the target `target` resolves to (see
    /// [`files::Target::resolve`]: `-` is standard output, a FIFO or character device is a
    /// stream, and what must not be replaced is refused).
    pub fn create(
        target: &Path,
        dtype: DType,
        shape: &[usize],
        order: Order,
    ) -> Result<Self, DataError> {
        Self::create_at(files::Target::resolve(target)?, dtype, shape, order)
    }

    /// Creates the output: for a file, a temporary file `.multiproj-*.npy.tmp` in the target's
    /// directory (so the final rename stays within one filesystem and is atomic; on Linux it
    /// has no name until it is complete) with the permissions of the file it will replace, its
    /// disk space reserved; for a stream, anonymous memory. Then writes the header for `dtype`,
    /// `shape` and `order` (`Order::Strided` is written in C order) and maps the data, which
    /// starts zeroed.
    pub fn create_at(
        target: files::Target,
        dtype: DType,
        shape: &[usize],
        order: Order,
    ) -> Result<Self, DataError> {
        let name = match &target {
            files::Target::File { path, .. } => path.clone(),
            files::Target::Stream { name, .. } => name.clone(),
        };
        let (stored, header) = Stored::new_output(&name, dtype, shape, order)?;
        let total = stored.total_bytes();
        let (map, sink) = match target {
            files::Target::File { path, replaces } => {
                let dir = files::parent_dir(&path);
                // The temporary file is never more open than the file it replaces.
                let mode = replaces
                    .as_ref()
                    .map_or(0o666, |m| std::os::unix::fs::MetadataExt::mode(m) & 0o666);
                let temp = files::TempFile::create_in(dir, mode)
                    // The error would name a random temporary path; the user knows the directory.
                    .map_err(|e| std::io::Error::new(e.kind(), ErrorKindText(e.kind())))
                    .map_err(io_error(dir, "create a temporary file in"))?;
                let file = temp.file();
                file.set_len(total as u64)
                    .map_err(io_error(&path, "allocate space for"))?;
                // Reserve the disk space now: a full disk is then this error, before anything
                // is computed, instead of a SIGBUS when the map is written.
                files::reserve(file, total as u64)
                    .map_err(io_error(&path, "allocate space for"))?;
                {
                    use std::os::unix::fs::FileExt;
                    file.write_all_at(&header, 0)
                        .map_err(io_error(&path, "write the header of"))?;
                }
                // SAFETY: the file was just created by us, unnamed (O_TMPFILE) or with a fresh
                // name (O_EXCL), and is reached only through this struct, so the only writer is
                // this process, through `&mut self`. Another process would have to find and
                // open the hidden temporary file on purpose to modify or truncate it; we assume
                // none does (truncation would fault with SIGBUS; writes would only mix values).
                let map =
                    unsafe { MmapMut::map_mut(file) }.map_err(io_error(&path, "memory-map"))?;
                let replaces = replaces.map(Box::new);
                (map, Sink::File { temp, replaces })
            }
            files::Target::Stream { file, name } => {
                let mut map =
                    MmapMut::map_anon(total).map_err(io_error(&name, "allocate memory for"))?;
                map[..header.len()].copy_from_slice(&header);
                (map, Sink::Stream(file))
            }
        };
        Ok(NpyOutput {
            npy: MappedNpy::new(map, stored, &name)?,
            sink,
        })
    }

    /// Where the output goes: the file it will replace, or the stream's name.
    pub fn target(&self) -> &Path {
        self.path()
    }

    /// Whether the output goes to a stream rather than a file.
    pub fn is_stream(&self) -> bool {
        matches!(self.sink, Sink::Stream(_))
    }

    /// Renames the file onto the target, replacing any file there (with its permissions and,
    /// where permitted, its owner), or writes the stream. With `sync`, the data reaches the
    /// device before the rename and the directory after it: after a crash the target is the
    /// old file or the whole new one. Without it the data is in the page cache, and a crash of
    /// the machine (not of the process) in the next seconds may lose it. On error the temporary
    /// file is removed and the target is left as it was.
    pub fn commit(self, sync: bool) -> Result<(), DataError> {
        let NpyOutput { npy, sink } = self;
        let MappedNpy {
            map, path: target, ..
        } = npy;
        match sink {
            Sink::File { temp, replaces } => {
                if sync {
                    map.flush().map_err(io_error(&target, "write"))?;
                }
                drop(map);
                temp.replace(&target, replaces.as_deref(), sync)
            }
            Sink::Stream(mut file) => files::write_stream(&mut file, &target, &map),
        }
    }
}

/// Writes `view` to `target` atomically and durably (see [`NpyOutput`]), in Fortran order if
/// the view is Fortran-contiguous and not C-contiguous, in C order otherwise.
pub fn write_npy_atomic(target: &Path, view: TensorView<'_>) -> Result<(), DataError> {
    let order = match view.info().order() {
        Order::F => Order::F,
        Order::C | Order::Strided => Order::C,
    };
    let mut out = NpyOutput::create(target, view.dtype(), view.shape(), order)?;
    out.view_mut().assign(&view)?;
    out.commit(true)
}

/// The plain description of an I/O error kind ("No such file or directory"), without the path
/// a wrapped error may carry.
#[derive(Debug)]
struct ErrorKindText(std::io::ErrorKind);

impl std::fmt::Display for ErrorKindText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            std::io::ErrorKind::NotFound => f.write_str("no such directory"),
            std::io::ErrorKind::PermissionDenied => f.write_str("permission denied"),
            std::io::ErrorKind::NotADirectory => f.write_str("not a directory"),
            std::io::ErrorKind::ReadOnlyFilesystem => f.write_str("read-only file system"),
            std::io::ErrorKind::StorageFull => f.write_str("no space left on device"),
            k => write!(f, "{k}"),
        }
    }
}

impl std::error::Error for ErrorKindText {}
