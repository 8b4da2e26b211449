//! In place: [`NpyInPlace`], an `.npy` file mapped read-write and locked, for `--in-place=map`.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::MmapMut;

use super::TensorViewMut;
use super::mapped::{MappedNpy, open_locked};
use super::stored::Stored;
use crate::DataError;
use crate::files::io_error;

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

impl NpyInPlace {
    /// The data, writable. (Only the view is handed out mutably, never the mapping itself:
    /// the file, its lock and its mapping stay together.)
    pub fn view_mut(&mut self) -> TensorViewMut<'_> {
        self.npy.view_mut()
    }

    /// Opens `path` for reading and writing, locks it (waiting for another process holding the
    /// lock) and maps it, with the checks of [`NpyInput::open`](super::NpyInput::open).
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
