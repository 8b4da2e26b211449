//! Tensors in `.npy` files, memory-mapped: [`NpyInput`] (read-only), [`NpyInPlace`]
//! (read-write, for `--in-place`) and [`NpyOutput`] (a new file written atomically), all
//! exposing the data as ndarray views ([`TensorView`], [`TensorViewMut`]) in the file's own
//! memory order, C or Fortran, `f64` or `f32`.
//!
//! Headers are parsed by multiproj's own parser ([`crate::npy_header`]: linear time, bounded
//! stack, NumPy's rules) and written by `ndarray-npy`; this module decides what multiproj accepts
//! (little-endian `<f8`/`<f4`, exact file length, non-empty) and turns every refusal into a
//! [`DataError`] that names the file. Zero-rank (scalar) arrays open fine; whether a spec can be
//! applied to one is the checker's call.
//!
//! How files are opened, created, replaced and streamed — what is refused, temporary files,
//! locks, permissions — is [`crate::files`]'s business.
//!
//! The header is parsed once, at open. Views are rebuilt from the remembered shape and data
//! offset (with `ndarray-npy`'s [`ViewElement`], which checks length and alignment) instead of
//! re-parsing the mapped header each time, so a header rewritten under us by another process
//! cannot change the shape of a view.

use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};
use multiproj_compiler::{DType, Order, TensorInfo};
use ndarray::{ArrayViewD, ArrayViewMutD, Dimension, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::{Header, Layout};
use ndarray_npy::{ViewDataError, ViewElement, ViewMutElement, WritableElement};

use crate::files::io_error;
use crate::npy_header::{self, Literal};
use crate::{DataError, files};

use npy_header::MAGIC;

/// A read-only view of a tensor's data, in the file's memory order.
#[derive(Clone, Debug)]
pub enum TensorView<'a> {
    F32(ArrayViewD<'a, f32>),
    F64(ArrayViewD<'a, f64>),
}

/// A writable view of a tensor's data, in the file's memory order.
#[derive(Debug)]
pub enum TensorViewMut<'a> {
    F32(ArrayViewMutD<'a, f32>),
    F64(ArrayViewMutD<'a, f64>),
}

impl TensorView<'_> {
    /// Shape, strides (in elements, as ndarray reports them) and dtype.
    pub fn info(&self) -> TensorInfo {
        match self {
            TensorView::F32(a) => info_of(a.shape(), a.strides(), DType::F32),
            TensorView::F64(a) => info_of(a.shape(), a.strides(), DType::F64),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            TensorView::F32(_) => DType::F32,
            TensorView::F64(_) => DType::F64,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            TensorView::F32(a) => a.shape(),
            TensorView::F64(a) => a.shape(),
        }
    }

    /// `Err(NonFinite)` naming the first NaN or ±inf in C (row-major) index order.
    ///
    /// The scan runs in memory order; only when it finds something is the tensor searched again
    /// in index order, so that the reported index does not depend on the file's layout.
    pub fn check_finite(&self) -> Result<(), DataError> {
        match self {
            TensorView::F32(a) => first_non_finite(a),
            TensorView::F64(a) => first_non_finite(a),
        }
    }
}

impl TensorViewMut<'_> {
    pub fn info(&self) -> TensorInfo {
        self.view().info()
    }

    pub fn dtype(&self) -> DType {
        match self {
            TensorViewMut::F32(_) => DType::F32,
            TensorViewMut::F64(_) => DType::F64,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            TensorViewMut::F32(a) => a.shape(),
            TensorViewMut::F64(a) => a.shape(),
        }
    }

    /// A read-only view of the same data.
    pub fn view(&self) -> TensorView<'_> {
        match self {
            TensorViewMut::F32(a) => TensorView::F32(a.view()),
            TensorViewMut::F64(a) => TensorView::F64(a.view()),
        }
    }

    /// Copies `src` element by element (by index, whatever the two memory orders are).
    /// Shapes and dtypes must match exactly: ndarray would otherwise broadcast a smaller source.
    pub fn assign(&mut self, src: &TensorView<'_>) -> Result<(), DataError> {
        if self.shape() != src.shape() {
            return Err(DataError::ShapeMismatch {
                expected: src.shape().to_vec(),
                found: self.shape().to_vec(),
            });
        }
        match (self, src) {
            (TensorViewMut::F32(d), TensorView::F32(s)) => d.assign(s),
            (TensorViewMut::F64(d), TensorView::F64(s)) => d.assign(s),
            (d, s) => {
                return Err(DataError::DTypeMismatch {
                    expected: s.dtype(),
                    found: d.dtype(),
                });
            }
        }
        Ok(())
    }
}

fn info_of(shape: &[usize], strides: &[isize], dtype: DType) -> TensorInfo {
    TensorInfo {
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        dtype,
    }
}

fn first_non_finite<T: Copy + Into<f64>>(a: &ArrayViewD<'_, T>) -> Result<(), DataError> {
    let finite = |x: &T| (*x).into().is_finite();
    let all_finite = match a.as_slice_memory_order() {
        Some(s) => s.iter().all(finite),
        None => a.iter().all(finite),
    };
    if all_finite {
        return Ok(());
    }
    match a.indexed_iter().find(|(_, x)| !finite(x)) {
        Some((index, &value)) => Err(DataError::NonFinite {
            index: index.as_array_view().to_vec(),
            value: value.into(),
        }),
        None => Err(DataError::Internal(
            "a non-finite value was seen in memory order but not in index order".into(),
        )),
    }
}

/// What the header says, checked against the bytes: enough to rebuild a view without
/// re-parsing.
#[derive(Clone, Debug)]
struct Stored {
    /// Kept whole because `ViewElement` wants the header's type descriptor.
    header: Header,
    dtype: DType,
    data_offset: usize,
    len: usize,
}

impl Stored {
    /// Parses and checks the header of the mapped file `bytes`, in the order a user would fix
    /// things: is it an .npy at all, is the dtype usable, does the length match, is there data.
    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, DataError> {
        let not_npy = |reason: String| DataError::NotNpy {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.is_empty() {
            return Err(not_npy("the file is empty".into()));
        }
        if !bytes.starts_with(MAGIC) {
            return Err(not_npy(if bytes.starts_with(b"PK\x03\x04") {
                "it is a zip archive (an .npz?); save the array alone with numpy.save".into()
            } else {
                "it does not start with the .npy magic string \\x93NUMPY".into()
            }));
        }
        // Our own parser, not `ndarray-npy`'s, which hangs or overflows the stack on hostile
        // headers and accepts what NumPy refuses (see `npy_header`).
        let parsed = npy_header::parse(bytes).map_err(|e| not_npy(e.to_string()))?;
        let data_offset = parsed.data_offset;

        let dtype = match &parsed.descr {
            Literal::Str(s) if s == "<f8" => DType::F64,
            Literal::Str(s) if s == "<f4" => DType::F32,
            other => {
                return Err(DataError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    descr: match other {
                        Literal::Str(s) => npy_header::printable(s),
                        // A structured dtype: show the Python literal from the header.
                        other => other.to_string(),
                    },
                });
            }
        };
        // `ViewElement` wants `ndarray-npy`'s header; build it from what was checked.
        let header = Header {
            type_descriptor: match dtype {
                DType::F64 => f64::type_descriptor(),
                DType::F32 => f32::type_descriptor(),
            },
            layout: if parsed.fortran_order {
                Layout::Fortran
            } else {
                Layout::Standard
            },
            shape: parsed.shape,
        };

        let too_large = || DataError::TooLarge {
            what: format!("'{}'", path.display()),
            shape: header.shape.clone(),
        };
        let len = element_count(&header.shape, dtype).ok_or_else(too_large)?;
        let data_bytes = len * dtype.size();
        let expected = data_offset.checked_add(data_bytes).ok_or_else(too_large)?;
        if bytes.len() < expected {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                expected_bytes: expected as u64,
                actual_bytes: bytes.len() as u64,
            });
        }
        if bytes.len() > expected {
            return Err(DataError::ExtraBytes {
                path: path.to_path_buf(),
                extra: (bytes.len() - expected) as u64,
            });
        }
        if len == 0 {
            return Err(DataError::Empty {
                what: format!("'{}'", path.display()),
                shape: header.shape,
            });
        }
        Ok(Stored {
            header,
            dtype,
            data_offset,
            len,
        })
    }

    /// The header of a new file.
    fn new_output(
        target: &Path,
        dtype: DType,
        shape: &[usize],
        order: Order,
    ) -> Result<(Self, Vec<u8>), DataError> {
        let header = Header {
            type_descriptor: match dtype {
                DType::F64 => f64::type_descriptor(),
                DType::F32 => f32::type_descriptor(),
            },
            layout: match order {
                Order::F => Layout::Fortran,
                Order::C | Order::Strided => Layout::Standard,
            },
            shape: shape.to_vec(),
        };
        let bytes = header.to_bytes().map_err(|e| {
            DataError::Internal(format!(
                "cannot format an .npy header for shape {shape:?}: {e}"
            ))
        })?;
        let too_large = || DataError::TooLarge {
            what: format!("the output '{}'", target.display()),
            shape: shape.to_vec(),
        };
        let len = element_count(shape, dtype).ok_or_else(too_large)?;
        bytes
            .len()
            .checked_add(len * dtype.size())
            .ok_or_else(too_large)?;
        let stored = Stored {
            header,
            dtype,
            data_offset: bytes.len(),
            len,
        };
        Ok((stored, bytes))
    }

    fn total_bytes(&self) -> usize {
        self.data_offset + self.len * self.dtype.size()
    }

    fn order(&self) -> Order {
        if self.header.layout.is_fortran() {
            Order::F
        } else {
            Order::C
        }
    }

    fn dim(&self) -> ndarray::Shape<IxDyn> {
        IxDyn(&self.header.shape).set_f(self.header.layout.is_fortran())
    }

    /// The view of the data in `bytes` (the whole file). Fails only on misalignment (checked
    /// once, at open; the mapping's address and length never change afterwards) or a
    /// non-native byte order.
    fn try_view<'a>(&self, path: &Path, bytes: &'a [u8]) -> Result<TensorView<'a>, DataError> {
        let data = &bytes[self.data_offset..];
        let descr = &self.header.type_descriptor;
        let err = |e| self.view_error(path, e);
        Ok(match self.dtype {
            DType::F64 => TensorView::F64(
                ArrayViewD::from_shape(
                    self.dim(),
                    f64::bytes_as_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::F32 => TensorView::F32(
                ArrayViewD::from_shape(
                    self.dim(),
                    f32::bytes_as_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
        })
    }

    fn try_view_mut<'a>(
        &self,
        path: &Path,
        bytes: &'a mut [u8],
    ) -> Result<TensorViewMut<'a>, DataError> {
        let data = &mut bytes[self.data_offset..];
        let descr = &self.header.type_descriptor;
        let err = |e| self.view_error(path, e);
        Ok(match self.dtype {
            DType::F64 => TensorViewMut::F64(
                ArrayViewMutD::from_shape(
                    self.dim(),
                    f64::bytes_as_mut_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::F32 => TensorViewMut::F32(
                ArrayViewMutD::from_shape(
                    self.dim(),
                    f32::bytes_as_mut_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
        })
    }

    fn view_error(&self, path: &Path, e: ViewDataError) -> DataError {
        match e {
            ViewDataError::Misaligned => DataError::Misaligned {
                path: path.to_path_buf(),
                offset: self.data_offset,
                align: self.dtype.size(),
            },
            // Only on a big-endian machine, where '<f8' is foreign.
            ViewDataError::NonNativeEndian => DataError::UnsupportedDtype {
                path: path.to_path_buf(),
                descr: self.header.type_descriptor.to_string(),
            },
            e => DataError::Internal(format!(
                "viewing '{}' after its header was checked: {e}",
                path.display()
            )),
        }
    }
}

/// Number of elements, if it and its size in bytes fit in `isize` (ndarray's limit).
fn element_count(shape: &[usize], dtype: DType) -> Option<usize> {
    let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    let bytes = len.checked_mul(dtype.size())?;
    (bytes <= isize::MAX as usize).then_some(len)
}

/// The message for a `try_view` that succeeded at open and failed later, which the fixed
/// address and length of the mapping rule out.
const VIEW_INVARIANT: &str =
    "the view was checked at open and the mapping's address and length cannot change";

/// Takes an exclusive advisory lock on the file `path` names, waiting for another process that
/// holds one, and returns the file once `path` still names the locked file (it may have been
/// replaced while we waited: then the new file is opened and locked instead).
fn open_locked(path: &Path, write: bool) -> Result<File, DataError> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let file = files::open_regular(path, write)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "multiproj: waiting for another process to finish with '{}'",
                    path.display()
                );
                file.lock().map_err(io_error(path, "lock"))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(path, "lock")(e)),
        }
        let held = file
            .metadata()
            .map_err(io_error(path, "read the metadata of"))?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(file),
            Ok(_) => continue,
            Err(e) => return Err(io_error(path, "open")(e)),
        }
    }
}

/// A mapped `.npy` file whose header was checked: the accessors [`NpyInput`], [`NpyInPlace`]
/// and [`NpyOutput`] share. Each of them holds one (over a read-only map `M = Mmap` or a
/// writable one `M = MmapMut`) and dereferences to it.
#[derive(Debug)]
pub struct MappedNpy<M> {
    map: M,
    stored: Stored,
    path: PathBuf,
}

impl<M: Deref<Target = [u8]>> MappedNpy<M> {
    /// `map` with its header `stored`, once a view of it has been built: the one check a view
    /// can fail (alignment, byte order) is made here, at open, so later views cannot fail.
    fn new(map: M, stored: Stored, path: &Path) -> Result<Self, DataError> {
        stored.try_view(path, &map)?;
        Ok(MappedNpy {
            map,
            stored,
            path: path.to_path_buf(),
        })
    }

    /// The file's path; for an [`NpyOutput`], its target.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dtype(&self) -> DType {
        self.stored.dtype
    }

    /// The order the header declares (`fortran_order`), which the output keeps.
    pub fn order(&self) -> Order {
        self.stored.order()
    }

    pub fn info(&self) -> TensorInfo {
        self.view().info()
    }

    pub fn view(&self) -> TensorView<'_> {
        self.stored
            .try_view(&self.path, &self.map)
            .expect(VIEW_INVARIANT)
    }

    /// The address and length of the mapping, for telling a fault in it (the file was cut
    /// short under us) from any other.
    pub fn mapped_range(&self) -> (usize, usize) {
        (self.map.as_ptr() as usize, self.map.len())
    }
}

impl<M: DerefMut<Target = [u8]>> MappedNpy<M> {
    /// The data, writable.
    pub fn view_mut(&mut self) -> TensorViewMut<'_> {
        self.stored
            .try_view_mut(&self.path, &mut self.map)
            .expect(VIEW_INVARIANT)
    }
}

/// An `.npy` file mapped read-only. Its accessors (`path`, `dtype`, `order`, `info`, `view`,
/// `mapped_range`) are [`MappedNpy`]'s.
#[derive(Debug)]
pub struct NpyInput {
    npy: MappedNpy<Mmap>,
    file: File,
}

impl Deref for NpyInput {
    type Target = MappedNpy<Mmap>;

    fn deref(&self) -> &Self::Target {
        &self.npy
    }
}

impl NpyInput {
    /// Opens and maps `path`, checking the header, the dtype (`<f8` or `<f4`), the file length
    /// and that the tensor has elements. Anything but a regular file is refused (a FIFO would
    /// block the open forever).
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Self::map(path, files::open_regular(path, false)?)
    }

    /// [`open`](Self::open), holding an exclusive advisory lock on the file (`flock`) for as
    /// long as the returned value lives: for a projection that will replace the file.
    pub fn open_locked(path: &Path) -> Result<Self, DataError> {
        Self::map(path, open_locked(path, false)?)
    }

    fn map(path: &Path, file: File) -> Result<Self, DataError> {
        // SAFETY: the mapping is only read, through `&[u8]` and views borrowed from `self`.
        // Another process could still modify or truncate the file while it is mapped; Rust
        // cannot rule that out. We assume it does not — the usual contract of mmap'd tensor
        // files (NumPy's mmap_mode, too). If it happens, values read may be torn or change
        // mid-run (every bit pattern is a valid f32/f64, so this yields wrong numbers, not
        // invalid ones) and a truncation makes reads past the new end fault with SIGBUS (the
        // command turns that into an error naming the file, see `mapped_range`). The shape and
        // offset are remembered from open, so header changes cannot alter a view.
        let map = unsafe { Mmap::map(&file) }.map_err(io_error(path, "memory-map"))?;
        let stored = Stored::parse(path, &map)?;
        Ok(NpyInput {
            npy: MappedNpy::new(map, stored, path)?,
            file,
        })
    }

    /// The file's metadata (as it is now, not as it was at open).
    pub fn metadata(&self) -> Result<std::fs::Metadata, DataError> {
        self.file
            .metadata()
            .map_err(io_error(self.path(), "read the metadata of"))
    }

    /// `Err(InputChanged)` if the file no longer has the length it had when it was mapped.
    pub fn check_unchanged(&self) -> Result<(), DataError> {
        let now = self.metadata()?.len();
        let before = self.npy.map.len() as u64;
        if now != before {
            return Err(DataError::InputChanged {
                path: self.path().to_path_buf(),
                before,
                after: now,
            });
        }
        Ok(())
    }
}

/// An `.npy` file mapped read-write: the projection writes through to the file itself
/// (`--in-place=map`). Not crash-safe: an interruption leaves some groups projected and others
/// not. Holds an exclusive advisory lock on the file while it lives. Its accessors (`path`,
/// `dtype`, `order`, `info`, `view`, `view_mut`, `mapped_range`) are [`MappedNpy`]'s.
#[derive(Debug)]
pub struct NpyInPlace {
    npy: MappedNpy<MmapMut>,
    _file: File,
}

impl Deref for NpyInPlace {
    type Target = MappedNpy<MmapMut>;

    fn deref(&self) -> &Self::Target {
        &self.npy
    }
}

impl DerefMut for NpyInPlace {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.npy
    }
}

impl NpyInPlace {
    /// Opens `path` for reading and writing, locks it (waiting for another process holding the
    /// lock) and maps it, with the checks of [`NpyInput::open`].
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = open_locked(path, true)?;
        // SAFETY: as in `NpyInput::map`, we assume no other process modifies or truncates the
        // file while it is mapped (a truncation would make accesses fault with SIGBUS;
        // concurrent writes would race with ours and leave a mix of values, never invalid
        // ones, since every bit pattern is a valid float; other multiproj runs wait for our
        // lock). Within this process the map is reached only through `&mut self`, so our own
        // views never alias.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io_error(path, "memory-map"))?;
        let stored = Stored::parse(path, &map)?;
        Ok(NpyInPlace {
            npy: MappedNpy::new(map, stored, path)?,
            _file: file,
        })
    }

    /// Writes the changes back to the file and waits for the write to finish, so that an I/O
    /// error (a full disk, a vanished network share) is reported instead of lost.
    pub fn flush(self) -> Result<(), DataError> {
        self.npy.map.flush().map_err(io_error(self.path(), "write"))
    }
}

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

impl DerefMut for NpyOutput {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.npy
    }
}

impl NpyOutput {
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
                // What was judged replaceable at the start must still be: a file of another
                // kind put there meanwhile is left alone.
                files::check_still_replaceable(&target)?;
                if let Some(old) = &replaces {
                    temp.copy_identity(old)
                        .map_err(io_error(&target, "set the permissions of"))?;
                }
                temp.persist(&target, sync)
                    .map_err(io_error(&target, "rename a temporary file onto"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, s};
    use ndarray_npy::{read_npy, write_npy};
    use std::fs;

    const SHAPES: &[&[usize]] = &[&[7], &[3, 5], &[2, 3, 4], &[2, 1, 3, 2], &[1, 6]];

    fn sample(shape: &[usize], fortran: bool) -> ArrayD<f64> {
        let mut k = 0.0;
        let mut a = ArrayD::zeros(IxDyn(shape).set_f(fortran));
        // Distinct values in index order, so any transposition shows.
        for x in a.iter_mut() {
            k += 1.0;
            *x = k * 0.5 - 3.0;
        }
        a
    }

    /// An .npy file with a hand-written header, for dtypes ndarray-npy would not write.
    fn raw_npy(descr: &str, shape: &[usize], data_len: usize) -> Vec<u8> {
        let shape = match shape {
            [n] => format!("({n},)"),
            _ => format!(
                "({})",
                shape
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        raw_npy_text(1, dict.as_bytes(), data_len)
    }

    /// An .npy file of format `version` (1, 2 or 3) whose header text is `dict` padded with
    /// spaces and a newline to a multiple of 64 bytes, then `data_len` zero bytes.
    fn raw_npy_text(version: u8, dict: &[u8], data_len: usize) -> Vec<u8> {
        let len_bytes = if version == 1 { 2 } else { 4 };
        let unpadded = MAGIC.len() + 2 + len_bytes + dict.len() + 1;
        let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
        let mut out = MAGIC.to_vec();
        out.extend([version, 0]);
        out.extend(&(header_len as u32).to_le_bytes()[..len_bytes]);
        out.extend(dict);
        out.resize(MAGIC.len() + 2 + len_bytes + header_len - 1, b' ');
        out.push(b'\n');
        out.resize(out.len() + data_len, 0);
        out
    }

    fn with_shape(shape: &str) -> String {
        format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}")
    }

    /// Issue 8: a 176-byte header of nested lists took hours in `ndarray-npy`'s parser
    /// (exponential backtracking), and deeply nested tuples overflowed the stack. Now the
    /// first is an unsupported (structured-looking) dtype and the others are refused.
    #[test]
    fn hostile_headers_are_answered_at_once() {
        let lists = format!("{}{}", "[".repeat(30), "]".repeat(30));
        let dict = format!("{{'descr': {lists}, 'fortran_order': False, 'shape': (6,), }}");
        let e = open_err(&raw_npy_text(1, dict.as_bytes(), 48));
        assert!(
            matches!(&e, DataError::UnsupportedDtype { descr, .. } if *descr == lists),
            "{e:?}"
        );
        let e = open_err(&raw_npy_text(1, with_shape(&lists).as_bytes(), 48));
        assert!(e.to_string().contains("is not a tuple of integers"), "{e}");

        let tuples = |n: usize| format!("{}1{}", "(".repeat(n), ",)".repeat(n));
        let e = open_err(&raw_npy_text(2, with_shape(&tuples(3_000)).as_bytes(), 8));
        assert!(
            e.to_string()
                .contains("is not a .npy file: its header nests too deeply (more than 32 levels"),
            "{e}"
        );
        let e = open_err(&raw_npy_text(2, with_shape(&tuples(5_000)).as_bytes(), 8));
        assert!(
            e.to_string().contains(
                "is not a .npy file: its header is 15092 bytes long, more than the 10000 \
                 characters numpy.load reads (its max_header_size)"
            ),
            "{e}"
        );
    }

    /// Issue 8: headers NumPy refuses were accepted (and a projection of them written out in
    /// a form NumPy cannot load), headers it reads were refused.
    #[test]
    fn headers_are_read_as_numpy_reads_them() {
        // Arithmetic: `ndarray-npy` evaluated it to shape [2, 3].
        let e = open_err(&raw_npy_text(1, with_shape("(1+1, 3)").as_bytes(), 48));
        assert!(
            e.to_string()
                .contains("its header cannot be parsed (arithmetic ('+'), which NumPy does not evaluate, at byte 62)"),
            "{e}"
        );
        // 65 dimensions.
        let e = open_err(&raw_npy_text(
            1,
            with_shape(&format!("({})", "1, ".repeat(65))).as_bytes(),
            8,
        ));
        assert!(
            e.to_string().ends_with(
                "is not a .npy file: its shape has 65 dimensions; NumPy supports at most 64"
            ),
            "{e}"
        );
        // Longer than 10,000 characters, even if valid.
        let mut long = with_shape("(1,)").into_bytes();
        long.resize(10_001, b' ');
        let e = open_err(&raw_npy_text(2, &long, 8));
        assert!(e.to_string().contains("numpy.load reads"), "{e}");
        // `True` as a dimension, a float, a negative one.
        for shape in ["(True,)", "(1.0,)", "(-1,)"] {
            let e = open_err(&raw_npy_text(1, with_shape(shape).as_bytes(), 8));
            assert!(matches!(e, DataError::NotNpy { .. }), "{shape}: {e:?}");
        }

        // What NumPy reads: no final newline, Python 2's `L` suffix, Latin-1 in a comment,
        // another spelling of the same strings.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.npy");
        let no_newline = {
            let dict = with_shape("(2, 3)");
            let mut out = MAGIC.to_vec();
            out.extend([1, 0]);
            let pad = (64 - (10 + dict.len()) % 64) % 64;
            out.extend(((dict.len() + pad) as u16).to_le_bytes());
            out.extend(dict.bytes());
            out.resize(out.len() + pad, b' ');
            out.resize(out.len() + 48, 0);
            out
        };
        assert_eq!(no_newline.len() % 8, 0);
        for bytes in [
            no_newline,
            raw_npy_text(1, with_shape("(2L, 3L)").as_bytes(), 48),
            raw_npy_text(
                2,
                b"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)} # \xe9",
                48,
            ),
            raw_npy_text(
                3,
                "{\"descr\": u'<' 'f8', 'fortran_order': False, 'shape': (0x2, 3)} # é".as_bytes(),
                48,
            ),
        ] {
            fs::write(&path, &bytes).unwrap();
            let f = NpyInput::open(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.info().shape, [2, 3]);
            assert_eq!(f.dtype(), DType::F64);
        }
    }

    #[test]
    fn structured_dtypes_show_their_literal() {
        let dict = "{'descr': [('a', '<f8'), ('b', '<i4', (2,))], 'fortran_order': False, 'shape': (1,), }";
        let e = open_err(&raw_npy_text(1, dict.as_bytes(), 16));
        assert!(
            e.to_string()
                .contains("has dtype '[('a', '<f8'), ('b', '<i4', (2,))]'; multiproj reads"),
            "{e}"
        );
        // Control characters in a dtype string are not written to the terminal raw.
        let e = open_err(&raw_npy("\\x1b[2J", &[1], 8));
        assert!(e.to_string().contains("has dtype '\\u{1b}[2J'"), "{e}");
    }

    fn open_err(bytes: &[u8]) -> DataError {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npy");
        fs::write(&path, bytes).unwrap();
        let err = NpyInput::open(&path).unwrap_err();
        // The read-write path makes the same decisions.
        assert_eq!(
            NpyInPlace::open(&path).unwrap_err().to_string(),
            err.to_string()
        );
        err
    }

    #[test]
    fn opens_what_ndarray_npy_writes() {
        let dir = tempfile::tempdir().unwrap();
        for &shape in SHAPES {
            for fortran in [false, true] {
                let a = sample(shape, fortran);
                let p64 = dir.path().join("a64.npy");
                let p32 = dir.path().join("a32.npy");
                write_npy(&p64, &a).unwrap();
                write_npy(&p32, &a.mapv(|x| x as f32)).unwrap();

                let f = NpyInput::open(&p64).unwrap();
                let TensorView::F64(v) = f.view() else {
                    panic!("dtype")
                };
                assert_eq!(v, a);
                // ndarray-npy writes arrays that are both C and F contiguous (1-D, [1, n]) in C.
                let order = if fortran && !a.is_standard_layout() {
                    Order::F
                } else {
                    Order::C
                };
                assert_eq!(f.order(), order);
                let expected = TensorInfo::with_order(shape, DType::F64, order);
                assert_eq!(f.info(), expected);
                assert_eq!(v.strides(), expected.strides);
                assert_eq!(f.dtype(), DType::F64);
                assert_eq!(f.path(), p64);

                let f = NpyInput::open(&p32).unwrap();
                let TensorView::F32(v) = f.view() else {
                    panic!("dtype")
                };
                assert_eq!(v, a.mapv(|x| x as f32));
                assert_eq!(f.info(), TensorInfo::with_order(shape, DType::F32, order));
            }
        }
    }

    #[test]
    fn output_round_trip_in_both_orders() {
        let dir = tempfile::tempdir().unwrap();
        for &shape in SHAPES {
            for order in [Order::C, Order::F] {
                let a = sample(shape, order == Order::F);
                let target = dir.path().join("out.npy");
                for dtype in [DType::F64, DType::F32] {
                    let mut out = NpyOutput::create(&target, dtype, shape, order).unwrap();
                    assert_eq!(out.target(), target);
                    assert_eq!(out.info(), TensorInfo::with_order(shape, dtype, order));
                    let a32 = a.mapv(|x| x as f32);
                    let src = match dtype {
                        DType::F64 => TensorView::F64(a.view()),
                        DType::F32 => TensorView::F32(a32.view()),
                    };
                    out.view_mut().assign(&src).unwrap();
                    out.commit(true).unwrap();
                    match dtype {
                        DType::F64 => assert_eq!(read_npy::<_, ArrayD<f64>>(&target).unwrap(), a),
                        DType::F32 => assert_eq!(read_npy::<_, ArrayD<f32>>(&target).unwrap(), a32),
                    }
                    let back = NpyInput::open(&target).unwrap();
                    assert_eq!(back.order(), order);
                    assert_eq!(back.info().strides, a.strides());
                }
            }
        }
        // Only the target is left: no temporary files.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropping_an_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.npy");
        let mut out = NpyOutput::create(&target, DType::F64, &[4, 4], Order::C).unwrap();
        let TensorViewMut::F64(mut v) = out.view_mut() else {
            panic!("dtype")
        };
        v.fill(1.0);
        // On Linux the file being built has no name at all (O_TMPFILE): a SIGKILL now would
        // leave nothing.
        #[cfg(target_os = "linux")]
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(out);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        // Where the file system cannot make unnamed files, the named temporary file is removed.
        let temp = files::TempFile::create_named(dir.path(), 0o600).unwrap();
        let name = temp.path().unwrap().to_path_buf();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(files::named_temporaries().contains(&name));
        drop(temp);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(!files::named_temporaries().contains(&name));

        // An existing target is untouched until commit, and untouched if there is none.
        fs::write(&target, b"old").unwrap();
        drop(NpyOutput::create(&target, DType::F32, &[2], Order::C).unwrap());
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }

    #[test]
    fn a_target_turned_into_a_fifo_meanwhile_is_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.npy");
        let out = NpyOutput::create(&target, DType::F64, &[2], Order::C).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&target)
            .status()
            .unwrap();
        assert!(made.success());
        let e = out.commit(false).unwrap_err();
        assert!(matches!(&e, DataError::RefusedOutput { .. }), "{e:?}");
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(fs::symlink_metadata(&target).unwrap().file_type().is_fifo());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn output_files_get_ordinary_permissions() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let plain = dir.path().join("plain");
            fs::write(&plain, b"").unwrap();
            let target = dir.path().join("out.npy");
            NpyOutput::create(&target, DType::F64, &[1], Order::C)
                .unwrap()
                .commit(true)
                .unwrap();
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&target), mode(&plain));
        }
    }

    #[test]
    fn write_npy_atomic_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("w.npy");
        let f = sample(&[3, 4], true);
        write_npy_atomic(&target, TensorView::F64(f.view())).unwrap();
        let back = NpyInput::open(&target).unwrap();
        assert_eq!(back.order(), Order::F);
        assert_eq!(read_npy::<_, ArrayD<f64>>(&target).unwrap(), f);

        // A strided view (every other column) is written in C order.
        let c = sample(&[3, 4], false);
        let strided = c.slice(s![.., ..;2]).into_dyn();
        write_npy_atomic(&target, TensorView::F64(strided.view())).unwrap();
        let back = NpyInput::open(&target).unwrap();
        assert_eq!(back.order(), Order::C);
        assert_eq!(read_npy::<_, ArrayD<f64>>(&target).unwrap(), strided);
    }

    #[test]
    fn in_place_writes_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.npy");
        let a = sample(&[2, 3], true);
        write_npy(&path, &a.mapv(|x| x as f32)).unwrap();
        let mut f = NpyInPlace::open(&path).unwrap();
        assert_eq!(f.order(), Order::F);
        assert_eq!(f.info().dtype, DType::F32);
        assert_eq!(f.path(), path);
        let TensorViewMut::F32(mut v) = f.view_mut() else {
            panic!("dtype")
        };
        v.mapv_inplace(|x| 2.0 * x);
        f.flush().unwrap();
        assert_eq!(
            read_npy::<_, ArrayD<f32>>(&path).unwrap(),
            a.mapv(|x| 2.0 * x as f32)
        );
    }

    #[test]
    fn scalars_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.npy");
        write_npy(&path, &ndarray::arr0(2.5f64)).unwrap();
        let f = NpyInput::open(&path).unwrap();
        assert_eq!(f.info().shape, Vec::<usize>::new());
        let TensorView::F64(v) = f.view() else {
            panic!("dtype")
        };
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), [2.5]);
    }

    #[test]
    fn truncated_and_extra_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        write_npy(&path, &sample(&[4, 4], false)).unwrap();
        let full = fs::read(&path).unwrap();
        assert_eq!(full.len(), 128 + 16 * 8);

        match open_err(&full[..full.len() - 3]) {
            DataError::Truncated {
                expected_bytes: 256,
                actual_bytes: 253,
                ..
            } => {}
            e => panic!("{e:?}"),
        }
        let mut longer = full.clone();
        longer.extend([0; 5]);
        let e = open_err(&longer);
        assert!(matches!(e, DataError::ExtraBytes { extra: 5, .. }), "{e:?}");
        assert!(
            e.to_string()
                .ends_with("has 5 unexpected bytes after the data its header describes")
        );

        // Cut inside the header.
        let e = open_err(&full[..20]);
        assert!(
            e.to_string()
                .ends_with("is not a .npy file: its header is cut short"),
            "{e}"
        );
    }

    #[test]
    fn not_npy_files() {
        for (bytes, reason) in [
            (&b""[..], "the file is empty"),
            (
                b"hello world",
                "it does not start with the .npy magic string",
            ),
            (b"PK\x03\x04rest", "it is a zip archive"),
        ] {
            let e = open_err(bytes);
            assert!(matches!(e, DataError::NotNpy { .. }), "{e:?}");
            assert!(e.to_string().contains(reason), "{e}");
        }
        let mut bad_version = raw_npy("<f8", &[1], 8);
        bad_version[6] = 9;
        assert!(
            open_err(&bad_version)
                .to_string()
                .contains("format version 9.0")
        );
        let mut bad_dict = raw_npy("<f8", &[1], 8);
        bad_dict[10] = b'[';
        assert!(
            open_err(&bad_dict)
                .to_string()
                .contains("its header cannot be parsed")
        );

        let dir = tempfile::tempdir().unwrap();
        let e = NpyInput::open(dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("is a directory, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.npy");
        write_npy(&path, &ndarray::arr1(&[1i64, 2, 3])).unwrap();
        let e = NpyInput::open(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "'{}' has dtype '<i8'; multiproj reads little-endian float64 ('<f8') and float32 ('<f4')",
                path.display()
            )
        );

        let e = open_err(&raw_npy(">f8", &[2, 2], 32));
        assert!(matches!(&e, DataError::UnsupportedDtype { descr, .. } if descr == ">f8"));
        assert!(e.to_string().contains("'>f8', which is big-endian"), "{e}");
        assert!(
            open_err(&raw_npy(">f4", &[3], 12))
                .to_string()
                .contains("big-endian")
        );

        let e = open_err(&raw_npy("|O", &[2], 16));
        assert!(
            matches!(&e, DataError::UnsupportedDtype { descr, .. } if descr == "|O"),
            "{e:?}"
        );
        let e = open_err(&raw_npy("<c16", &[2], 32));
        assert!(e.to_string().contains("dtype '<c16'"), "{e}");
    }

    #[test]
    fn empty_tensors_are_refused() {
        let e = open_err(&raw_npy("<f8", &[3, 0], 0));
        assert!(
            matches!(&e, DataError::Empty { shape, .. } if shape == &[3, 0]),
            "{e:?}"
        );
        assert!(
            e.to_string().ends_with("has no elements (shape [3, 0])"),
            "{e}"
        );
    }

    #[test]
    fn misaligned_data_is_refused() {
        // A valid header whose length is not a multiple of 8 (numpy.save never writes one).
        let mut bytes = raw_npy("<f8", &[2], 0);
        let dict_end = bytes.len() - 1;
        bytes.insert(dict_end, b' ');
        let header_len = (bytes.len() - 10) as u16;
        bytes[8..10].copy_from_slice(&header_len.to_le_bytes());
        bytes.extend([0; 16]);
        let e = open_err(&bytes);
        let header_len = bytes.len() - 16;
        assert_eq!(header_len % 8, 1);
        match e {
            DataError::Misaligned { offset, align, .. } => {
                assert_eq!((offset, align), (header_len, 8))
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn io_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = NpyInput::open(&missing.join("x.npy")).unwrap_err();
        assert!(matches!(&e, DataError::Io { action: "open", .. }), "{e:?}");

        let e =
            NpyOutput::create(&missing.join("out.npy"), DType::F64, &[2], Order::C).unwrap_err();
        match &e {
            DataError::Io { path, action, .. } => {
                assert_eq!(path, &missing);
                assert_eq!(*action, "create a temporary file in");
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(
            e.to_string(),
            format!(
                "could not create a temporary file in '{}'",
                missing.display()
            )
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        // A directory at the target's name is refused before anything is created.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("keep"), b"").unwrap();
        let e = NpyOutput::create(&sub, DType::F64, &[2], Order::C).unwrap_err();
        assert!(matches!(&e, DataError::RefusedOutput { .. }), "{e:?}");
        assert!(e.to_string().contains("it is a directory"), "{e}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        // A rename that fails at commit cleans up the temporary file: the target's directory
        // disappears under us.
        let gone = dir.path().join("gone");
        fs::create_dir(&gone).unwrap();
        let out = NpyOutput::create(&gone.join("o.npy"), DType::F64, &[2], Order::C).unwrap();
        fs::rename(&gone, dir.path().join("moved")).unwrap();
        let e = out.commit(false).unwrap_err();
        assert!(
            matches!(
                &e,
                DataError::Io {
                    action: "rename a temporary file onto",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(fs::read_dir(dir.path().join("moved")).unwrap().count(), 0);
    }

    #[test]
    fn finite_check_reports_the_first_index_in_c_order() {
        let mut a = sample(&[3, 4], true);
        a[[2, 0]] = f64::INFINITY;
        a[[1, 3]] = f64::NAN;
        let e = TensorView::F64(a.view()).check_finite().unwrap_err();
        assert_eq!(e.to_string(), "the input holds NaN at index [1, 3]");
        let b = a.mapv(|x| x as f32);
        let e = TensorView::F32(b.slice(s![2.., ..]).into_dyn())
            .check_finite()
            .unwrap_err();
        assert_eq!(e.to_string(), "the input holds +inf at index [0, 0]");
        assert!(
            TensorView::F64(sample(&[2, 2], false).view())
                .check_finite()
                .is_ok()
        );
    }

    #[test]
    fn assign_checks_shape_and_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let mut out =
            NpyOutput::create(&dir.path().join("o.npy"), DType::F64, &[2, 3], Order::C).unwrap();
        let small = sample(&[3], false);
        let e = out
            .view_mut()
            .assign(&TensorView::F64(small.view()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the output has shape [2, 3], but the result has shape [3]"
        );
        let f32s = sample(&[2, 3], false).mapv(|x| x as f32);
        let e = out
            .view_mut()
            .assign(&TensorView::F32(f32s.view()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the output has dtype f64, but the result has dtype f32"
        );
    }
}
