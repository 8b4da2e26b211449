//! The JIT backend, in one place: Cranelift code generation for the passes over the data
//! (`translate`), the owner of the compiled code and its in-memory and on-disk kernel caches
//! (`module`, `disk`), the kernels of one run (`kernels`), and the executor that runs them over a
//! tensor in parallel (`exec`, `threshold`). `Jit` implements the backend seam
//! ([`crate::Passes`]) in `backend.rs`.

mod disk;
mod exec;
mod kernels;
mod module;
mod threshold;
mod translate;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::DataError;

pub use disk::default_dir as default_kernel_cache_dir;
pub use exec::{CHUNK_ELEMENTS, GATHER_TILE, PARALLEL_MIN, find_non_finite};
pub(crate) use exec::{apply, apply_in_place, reduce};
pub use kernels::Kernels;
pub use module::*;
pub(crate) use threshold::threshold;

/// Whether the global JIT keeps kernels on disk when `MULTIPROJ_KERNEL_CACHE` is not set.
static DISK_CACHE_BY_DEFAULT: AtomicBool = AtomicBool::new(false);

/// Makes the global JIT keep compiled kernels in the default disk cache
/// ([`default_kernel_cache_dir`]: `$XDG_CACHE_HOME/multiproj/kernels` or
/// `~/.cache/multiproj/kernels`) when `MULTIPROJ_KERNEL_CACHE` is not set. The `multiproj`
/// command does this; a library leaves the user's home alone unless asked. Takes effect if
/// called before the first projection.
pub fn use_disk_cache_by_default() {
    DISK_CACHE_BY_DEFAULT.store(true, Ordering::Relaxed);
}

/// The process-wide JIT, with its kernel cache. It also keeps kernels on disk between
/// processes when `MULTIPROJ_KERNEL_CACHE` names a directory (`off` turns that off), or by
/// default after [`use_disk_cache_by_default`].
pub fn global() -> Result<&'static Jit, DataError> {
    static JIT: OnceLock<Result<Jit, CodegenError>> = OnceLock::new();
    JIT.get_or_init(|| {
        let asked = std::env::var_os("MULTIPROJ_KERNEL_CACHE").is_some()
            || DISK_CACHE_BY_DEFAULT.load(Ordering::Relaxed);
        match asked.then(default_kernel_cache_dir).flatten() {
            Some(dir) => Jit::with_disk_cache(dir),
            None => Jit::new(),
        }
    })
    .as_ref()
    .map_err(internal)
}

fn internal(e: &CodegenError) -> DataError {
    DataError::Internal(e.to_string())
}
