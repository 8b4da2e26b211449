//! The check stage: binds a parsed [`Spec`] to a tensor's shape and produces the [`Ir`], or says
//! exactly what does not fit and where. Later stages rely on what is established here: every
//! level has at least one axis, axis sets are disjoint and cover `0..rank`, and a radius written
//! in the spec is finite and non-negative.

use multiproj_grammar::{Axes, Span, Spanned, Spec};

use crate::error::CheckError;
use crate::ir::{Ir, IrLevel};
use crate::tensor::{DType, TensorInfo};

/// The largest rank a NumPy array can have.
pub const MAX_RANK: usize = 64;

/// Binds `spec` to `tensor`.
pub fn check(spec: &Spec, tensor: &TensorInfo) -> Result<Ir, CheckError> {
    let src = spec.source.as_str();
    let rank = tensor.rank();
    let radius = match &spec.radius {
        Some(r) => Some(Spanned::new(validate_radius(src, r.node, Some(r.span))?, r.span)),
        None => None,
    };

    // Resolve each level's axes, remembering where each axis number was written.
    let mut owner: Vec<Option<Span>> = vec![None; rank];
    let mut levels = Vec::with_capacity(spec.levels.len());
    for level in &spec.levels {
        let mut axes: Vec<(usize, Span)> = Vec::new();
        match &level.axes.node {
            Axes::One(a) => axes.push((a.node, a.span)),
            Axes::List(items) => axes.extend(items.iter().map(|a| (a.node, a.span))),
            Axes::Range { start, end } => {
                if end.node < start.node {
                    return Err(CheckError::empty_level(
                        src,
                        format!(
                            "the range {}..{} is empty (ranges are inclusive and must not run backwards)",
                            start.node, end.node
                        ),
                        level.axes.span,
                    ));
                }
                // Out-of-range ends are reported on the number that is out of range, before
                // expanding a possibly huge range.
                for n in [start, end] {
                    if n.node >= rank {
                        return Err(CheckError::out_of_range(src, n.node, rank, n.span));
                    }
                }
                axes.extend((start.node..=end.node).map(|a| (a, level.axes.span)));
            }
            Axes::From(start) => {
                if start.node >= rank {
                    return Err(CheckError::empty_level(
                        src,
                        format!(
                            "`dims {}..` starts past the last axis of a rank-{rank} tensor",
                            start.node
                        ),
                        level.axes.span,
                    ));
                }
                axes.extend((start.node..rank).map(|a| (a, level.axes.span)));
            }
        }
        for &(a, span) in &axes {
            if a >= rank {
                return Err(CheckError::out_of_range(src, a, rank, span));
            }
            if let Some(first) = owner[a] {
                return Err(CheckError::used_twice(src, a, first, span));
            }
            owner[a] = Some(span);
        }
        let mut axes: Vec<usize> = axes.into_iter().map(|(a, _)| a).collect();
        axes.sort_unstable();
        levels.push(IrLevel {
            norm: level.norm.node,
            axes,
            span: level.span,
        });
    }
    if let Some(axis) = owner.iter().position(Option::is_none) {
        let whole = spec
            .levels
            .iter()
            .map(|l| l.span)
            .reduce(Span::join)
            .unwrap_or_default();
        return Err(CheckError::not_covered(src, axis, rank, whole));
    }
    if tensor.is_empty() {
        return Err(CheckError::EmptyTensor {
            shape: tensor.shape.clone(),
        });
    }
    Ok(Ir {
        source: spec.source.clone(),
        tensor: tensor.clone(),
        levels,
        radius,
    })
}

fn validate_radius(src: &str, value: f64, span: Option<Span>) -> Result<f64, CheckError> {
    if value.is_finite() && value >= 0.0 {
        // -0.0 is a valid way of writing zero; store +0.0 so it prints as 0.
        Ok(value + 0.0)
    } else {
        Err(CheckError::invalid_radius(src, value, span))
    }
}

/// The radius a projection runs with: the one fixed in the spec, or the one given at run time,
/// never both and never neither.
pub fn resolve_radius(
    source: &str,
    in_spec: Option<&Spanned<f64>>,
    at_run_time: Option<f64>,
) -> Result<f64, CheckError> {
    match (in_spec, at_run_time) {
        (Some(r), Some(given)) => Err(CheckError::radius_twice(source, r.node, given, r.span)),
        (Some(r), None) => Ok(r.node),
        (None, Some(given)) => validate_radius(source, given, None),
        (None, None) => Err(CheckError::MissingRadius),
    }
}

/// What a spec can be checked against without a tensor: the rank it implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankReq {
    /// Only tensors of exactly this rank.
    Exactly(usize),
    /// An open range (`dims A..`) makes the spec fit this rank and any larger one.
    AtLeast(usize),
}

impl std::fmt::Display for RankReq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RankReq::Exactly(r) => write!(f, "rank-{r} tensors"),
            RankReq::AtLeast(r) => write!(f, "tensors of rank {r} or more"),
        }
    }
}

/// Validates everything that does not depend on a shape by checking the spec against the
/// smallest rank it can describe (every extent 2). Returns that rank requirement.
pub fn check_shapeless(spec: &Spec) -> Result<RankReq, CheckError> {
    let mut max_axis: Option<usize> = None;
    let mut open: Option<usize> = None;
    for level in &spec.levels {
        match &level.axes.node {
            Axes::One(a) => max_axis = max_axis.max(Some(a.node)),
            Axes::List(items) => max_axis = max_axis.max(items.iter().map(|a| a.node).max()),
            Axes::Range { start, end } => {
                if end.node < start.node {
                    // Let `check` produce the error with its span.
                    max_axis = max_axis.max(Some(start.node));
                } else {
                    max_axis = max_axis.max(Some(end.node));
                }
            }
            Axes::From(s) => open = open.max(Some(s.node)),
        }
    }
    let explicit = max_axis.map_or(0, |m| m.saturating_add(1));
    let (rank, req) = match open {
        Some(s) => {
            let r = explicit.max(s.saturating_add(1));
            (r, RankReq::AtLeast(r))
        }
        None => (explicit, RankReq::Exactly(explicit)),
    };
    // NumPy arrays have at most 64 axes; a spec naming axis 10^9 is checked against that
    // largest rank, which reports the axis as out of range instead of allocating a huge shape.
    let probe_rank = rank.min(MAX_RANK);
    check(
        spec,
        &TensorInfo::c_order(&vec![2; probe_rank], DType::F64),
    )?;
    Ok(req)
}
