//! What the three file types share: a mapped file with its checked header and the accessors
//! over it ([`MappedNpy`]), and the locked open of the file to read or to rewrite.

use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use multiproj_compiler::{DType, Order, TensorInfo};

use super::stored::Stored;
use super::{TensorView, TensorViewMut};
use crate::DataError;
use crate::files::{self, io_error};

/// The message for a `try_view` that succeeded at open and failed later, which the fixed
/// address and length of the mapping rule out.
const VIEW_INVARIANT: &str =
    "the view was checked at open and the mapping's address and length cannot change";

/// Takes an exclusive advisory lock on the file `path` names, waiting for another process that
/// holds one, and returns the file once `path` still names the locked file (it may have been
/// replaced while we waited: then the new file is opened and locked instead).
pub(super) fn open_locked(path: &Path, write: bool) -> Result<File, DataError> {
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

/// A mapped `.npy` file whose header was checked: the accessors [`NpyInput`](super::NpyInput),
/// [`NpyInPlace`](super::NpyInPlace) and [`NpyOutput`](super::NpyOutput) share. Each of them
/// holds one (over a read-only map `M = Mmap` or a writable one `M = MmapMut`) and
/// dereferences to it.
#[derive(Debug)]
pub struct MappedNpy<M> {
    pub(super) map: M,
    stored: Stored,
    pub(super) path: PathBuf,
}

impl<M: Deref<Target = [u8]>> MappedNpy<M> {
    /// `map` with its header `stored`, once a view of it has been built: the one check a view
    /// can fail (alignment, byte order) is made here, at open, so later views cannot fail.
    pub(super) fn new(map: M, stored: Stored, path: &Path) -> Result<Self, DataError> {
        stored.try_view(path, &map)?;
        Ok(MappedNpy {
            map,
            stored,
            path: path.to_path_buf(),
        })
    }

    /// The file's path; for an [`NpyOutput`](super::NpyOutput), its target.
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
