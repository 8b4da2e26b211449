//! The multiproj runtime: tensors in `.npy` files (memory-mapped, C and Fortran order, f32 and
//! f64), the ball projections used on aggregates, the shared solve, and the backends that
//! execute a [`multiproj_compiler::Plan`].

pub mod balls;
pub mod element;
pub mod error;
pub mod exec;
pub mod files;
pub mod interp;
pub mod jit;
pub mod npy;
pub mod npy_header;
pub mod progress;
pub mod rng;
pub mod solve;
pub mod verify;

pub use element::Element;
pub use error::DataError;
pub use exec::{Backend, BackendError, Executor, Report, norm, project, project_in_place};
pub use progress::{Progress, Stage};
