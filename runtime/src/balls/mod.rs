//! Norms of, and Euclidean projections onto the l1, l2 and l∞ balls of, `f64` vectors: the
//! building blocks of the "upper reductions and solve" and "threshold" stages, which work on
//! aggregates (small next to the tensor, but one threshold per group, so they run in hot loops).
//!
//! The l1 projection is the soft threshold `x = sign(v)·max(|v| − τ, 0)` with τ chosen so that
//! `Σ|x| = r`. τ is found from a first cut (a quantized histogram of the magnitudes, or a
//! sample of very long vectors) by Michelot's passes, with Condat's algorithm as the fallback
//! (expected linear time, no sort); the sort-based method is kept as [`l1_threshold_sorted`],
//! the reference the tests compare against.
//!
//! All functions expect finite entries; the runtime rejects NaN and ±inf before any projection.
//!
//! The items are defined in private submodules and re-exported here: the norms and the l2 and
//! l∞ projections in `norms`, the l1 threshold search and projection in `l1` (its passes over
//! the data in `passes`, the histograms of its first cut — shared with the exact l1,∞ solver —
//! in `histogram`), the thresholds the apply pass uses in `fit`.

mod exact;
mod fit;
pub(crate) mod histogram;
mod l1;
mod norms;
mod passes;
#[cfg(test)]
mod tests;

pub use exact::{check_l1_linf_kkt, l1_linf_clips_at, l1_linf_exact_clips, project_l1_linf_exact};
pub(crate) use fit::{any_order_bound, fit_l1, l1_group_threshold, overflow_exponent};
pub use l1::{
    SoftThreshold, l1_soft_threshold, l1_threshold, l1_threshold_sorted, l1_threshold_with,
    project_l1, project_l1_with,
};
pub use norms::{norm_l1, norm_l2, norm_linf, project_l2, project_linf};
