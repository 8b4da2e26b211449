//! The multiproj compiler: binds a parsed spec to a tensor ([`check`]), normalizes its levels
//! with named rewrite rules ([`normalize()`]), and plans the passes over the data ([`plan()`]).
//!
//! The stages gate each other: [`plan()`] takes an [`Ir`], which only [`check`] produces, so an
//! unchecked spec cannot reach a backend.

mod check;
mod error;
mod exact;
mod ir;
pub mod normalize;
mod plan;
mod schedule;
pub mod tensor;

pub use check::{MAX_RANK, RankReq, check, check_shapeless, resolve_radius};
pub use error::CheckError;
pub use exact::{EXACT_PROJECTIONS, ExactMethod, Method, Why, classify};
pub use ir::{Ir, IrLevel};
pub use multiproj_grammar::{Norm, Span, Spanned};
pub use normalize::{Normalized, normalize, normalize_exact};
pub use plan::{ApplyOp, Plan, PlanLevel, Stage, Step, plan};
pub use schedule::{
    CHUNK_ELEMENTS, Chunks, GATHER_TILE, JAM_ROWS_APPLY, JAM_ROWS_REDUCE, KernelShape, Loop,
    MAX_JAM_ROWS, PARALLEL_MIN, PassKind, Schedule, Split, ThresholdSchedule,
};
pub use tensor::{DType, Order, TensorInfo};
