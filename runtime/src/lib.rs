//! The multiproj runtime: tensors in `.npy` files (memory-mapped, C and Fortran order, f32 and
//! f64), the ball projections used on aggregates, the shared solve, the stages of a projection
//! as public values ([`stages`]), the backend seam ([`Passes`]) with its two backends — the
//! interpreter ([`interp`]) and the JIT ([`jit`]) — and the [`Executor`] that runs a
//! [`multiproj_compiler::Plan`]'s steps with one of them.

mod alloc;
pub mod backend;
pub mod balls;
pub mod element;
pub mod error;
pub mod exact;
pub mod exec;
pub mod files;
pub mod float16;
pub mod interp;
pub mod jit;
pub mod npy;
pub mod npy_header;
pub mod progress;
pub mod rng;
pub mod shard;
pub mod solve;
pub mod stages;
pub mod target;
pub mod verify;

/// The 16-bit float types (`half::f16`, `half::bf16`) tensors may hold.
pub use half;

pub use backend::{Backend, BackendError, Interpreter, Passes};
pub use element::Element;
pub use error::DataError;
pub use exec::{ExactReport, Executor, LevelReport, Report, norm, project, project_in_place};
pub use progress::{Progress, Stage};
pub use stages::{GroupNorms, Solution};
pub use target::RadiusTarget;
