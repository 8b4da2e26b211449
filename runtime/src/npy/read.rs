//! Reading: [`NpyInput`], an `.npy` file mapped read-only, optionally locked for a projection
//! that will replace it.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use super::mapped::{MappedNpy, open_locked};
use super::stored::Stored;
use crate::DataError;
use crate::files::{self, io_error};

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
