//! The JIT backend, in one place: Cranelift code generation for the passes over the data
//! (`translate`), the owner of the compiled code and its in-memory and on-disk kernel caches
//! (`module`, `disk`), and the executor that runs the kernels over a tensor in parallel
//! (`exec`).

mod disk;
mod exec;
mod module;
mod translate;

pub use disk::default_dir as default_kernel_cache_dir;
pub use exec::*;
pub use module::*;
