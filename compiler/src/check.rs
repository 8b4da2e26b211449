//! The check stage: binds a parsed [`Spec`] to a tensor's shape and produces the [`Ir`], or says
//! exactly what does not fit and where. Later stages rely on what is established here: every
//! level has at least one axis, axis sets are disjoint and cover `0..rank`, and a radius written
//! in the spec is finite and non-negative.

use multiproj_grammar::{Axes, Span, Spanned, Spec};

use crate::error::CheckError;
use crate::exact::{Method, classify};
use crate::ir::{Ir, IrLevel};
use crate::normalize::{LevelList, normalize_exact};
use crate::tensor::{DType, TensorInfo};

/// The largest rank a NumPy array can have.
pub const MAX_RANK: usize = 64;

/// Binds `spec` to `tensor`.
pub fn check(spec: &Spec, tensor: &TensorInfo) -> Result<Ir, CheckError> {
    let src = spec.source.as_str();
    let rank = tensor.rank();
    let radius = match &spec.radius {
        Some(r) => Some(Spanned::new(
            validate_radius(src, r.node, Some(r.span))?,
            r.span,
        )),
        None => None,
    };

    // Resolve each level's axes, remembering where each axis number was written.
    let mut owner: Vec<Option<(Span, usize)>> = vec![None; rank];
    let mut levels = Vec::with_capacity(spec.levels.len());
    for (li, level) in spec.levels.iter().enumerate() {
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
            match owner[a] {
                Some((first, l)) if l == li => {
                    return Err(CheckError::repeated(src, a, first, span));
                }
                Some((first, _)) => return Err(CheckError::used_twice(src, a, first, span)),
                None => owner[a] = Some((span, li)),
            }
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
    let method = match spec.exact {
        None => Method::MultiLevel,
        Some(exact_span) => {
            let normalized = normalize_exact(&levels);
            match classify(&normalized.levels) {
                Some(m) => Method::Exact(m),
                None => {
                    let whole = levels
                        .iter()
                        .map(|l| l.span)
                        .reduce(Span::join)
                        .unwrap_or_default();
                    return Err(CheckError::no_exact(
                        src,
                        LevelList(&normalized.levels).to_string(),
                        exact_span,
                        whole,
                    ));
                }
            }
        }
    };
    Ok(Ir {
        source: spec.source.clone(),
        tensor: tensor.clone(),
        levels,
        radius,
        method,
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
/// smallest rank it can describe (every extent 1). Returns that rank requirement.
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
    check(spec, &TensorInfo::c_order(&vec![1; probe_rank], DType::F64))?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Order;

    fn info(shape: &[usize]) -> TensorInfo {
        TensorInfo::c_order(shape, DType::F64)
    }

    fn bind(spec: &str, shape: &[usize]) -> Result<Ir, CheckError> {
        let spec = multiproj_grammar::parse(spec).expect("test specs parse");
        check(&spec, &info(shape))
    }

    /// The error's message and the text under each label.
    fn err(spec: &str, shape: &[usize]) -> String {
        let e = bind(spec, shape).expect_err("expected a check error");
        let mut out = e.to_string();
        if let Some(labels) = miette::Diagnostic::labels(&e) {
            for l in labels {
                let s = &spec[l.offset()..l.offset() + l.len()];
                out += &format!(" | {}: `{s}`", l.label().unwrap_or(""));
            }
        }
        out
    }

    #[test]
    fn binds_every_axis_form() {
        let ir = bind(
            "l1 over dim 1 of linf over dims 2.. of l2 over dims 0,3",
            &[2, 3, 4, 5, 6],
        )
        .expect_err("axis 4 is covered by the open range, axis 3 twice");
        assert!(ir.to_string().contains("axis 3 is used twice"));
        let ir = bind(
            "l1 over dim 1 of linf over dims 2..3 of l2 over dims 0,4",
            &[2, 3, 4, 5, 6],
        )
        .unwrap();
        let axes: Vec<Vec<usize>> = ir.levels.iter().map(|l| l.axes.clone()).collect();
        assert_eq!(axes, vec![vec![1], vec![2, 3], vec![0, 4]]);
        assert_eq!(ir.levels[1].extent(&ir.tensor.shape), 20);
    }

    #[test]
    fn open_range_follows_the_rank() {
        for rank in 2..6 {
            let shape = vec![3; rank];
            let ir = bind("l1 over dim0 of linf over dims1..", &shape).unwrap();
            assert_eq!(ir.levels[1].axes, (1..rank).collect::<Vec<_>>());
        }
    }

    #[test]
    fn axis_out_of_range_points_at_the_number() {
        assert_eq!(
            err("l1 over dim0 of linf over dim 7", &[3, 4]),
            "axis 7 is out of range for a rank-2 tensor | no axis 7 here: `7`"
        );
        assert_eq!(
            err("l1 over dims 0..5", &[3, 4]),
            "axis 5 is out of range for a rank-2 tensor | no axis 5 here: `5`"
        );
    }

    #[test]
    fn axis_used_twice_points_at_both_uses() {
        assert_eq!(
            err("l1 over dims 0,1 of linf over dim1", &[3, 4]),
            "axis 1 is used twice | first use: `1` | used again here: `1`"
        );
        assert_eq!(
            err("l1 over dims0..1 of linf over dims 1..2", &[3, 4, 5]),
            "axis 1 is used twice | first use: `dims0..1` | used again here: `dims 1..2`"
        );
    }

    #[test]
    fn uncovered_axis_is_named() {
        assert_eq!(
            err("l1 over dim0 of linf over dim2", &[3, 4, 5]),
            "axis 1 of a rank-3 tensor is not covered | these levels leave axis 1 out: `l1 over dim0 of linf over dim2`"
        );
    }

    #[test]
    fn empty_levels() {
        assert_eq!(
            err("l1 over dims 3..1", &[3, 4, 5, 6]),
            "this level names no axis: the range 3..1 is empty (ranges are inclusive and must not run backwards) | empty: `dims 3..1`"
        );
        assert_eq!(
            err("l1 over dim0 of linf over dims 2..", &[3, 4]),
            "this level names no axis: `dims 2..` starts past the last axis of a rank-2 tensor | empty: `dims 2..`"
        );
    }

    #[test]
    fn radius_rules() {
        assert_eq!(
            err("l1 over dim0 <= -1", &[3]),
            "invalid radius -1: a radius must be non-negative | not a valid radius: `-1`"
        );
        assert_eq!(
            err("l1 over dim0 <= 1e999", &[3]),
            "invalid radius 1e999: it is too large for a float64 and would be infinite | not a valid radius: `1e999`"
        );
        assert_eq!(
            err("l1 over dims 0,1,0", &[3, 4]),
            "axis 0 is listed twice in one level | first here: `0` | again here: `0`"
        );
        let ir = bind("l1 over dim0 <= -0", &[3]).unwrap();
        assert_eq!(ir.radius.as_ref().unwrap().node.to_bits(), 0.0f64.to_bits());

        let spec = multiproj_grammar::parse("l1 over dim0 <= 2").unwrap();
        let r = spec.radius.as_ref();
        assert_eq!(resolve_radius(&spec.source, r, None).unwrap(), 2.0);
        assert!(matches!(
            resolve_radius(&spec.source, r, Some(1.0)),
            Err(CheckError::RadiusGivenTwice { .. })
        ));
        assert!(matches!(
            resolve_radius("", None, None),
            Err(CheckError::MissingRadius)
        ));
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(matches!(
                resolve_radius("", None, Some(bad)),
                Err(CheckError::InvalidRadius { .. })
            ));
        }
    }

    #[test]
    fn empty_tensor_is_rejected() {
        assert_eq!(
            err("l1 over dim0 of linf over dim1", &[3, 0]),
            "the tensor has no elements (shape [3, 0])"
        );
    }

    #[test]
    fn shapeless_check_infers_the_rank() {
        let req = |s: &str| check_shapeless(&multiproj_grammar::parse(s).unwrap());
        assert_eq!(
            req("l1 over dim0 of linf over dim1").unwrap(),
            RankReq::Exactly(2)
        );
        assert_eq!(
            req("l1 over dim0 of linf over dims1..").unwrap(),
            RankReq::AtLeast(2)
        );
        assert_eq!(
            req("l1 over dims 0,1 of linf over dims 2..").unwrap(),
            RankReq::AtLeast(3)
        );
        assert!(matches!(
            req("l1 over dim0 of linf over dim2"),
            Err(CheckError::AxisNotCovered { axis: 1, .. })
        ));
        assert!(matches!(
            req("l1 over dim 100000"),
            Err(CheckError::AxisOutOfRange { rank: MAX_RANK, .. })
        ));
    }

    #[test]
    fn order_is_recognized() {
        assert_eq!(info(&[3, 4]).order(), Order::C);
        assert_eq!(TensorInfo::f_order(&[3, 4], DType::F32).order(), Order::F);
        assert_eq!(info(&[3, 1]).order(), Order::C);
        let strided = TensorInfo {
            shape: vec![3, 4],
            strides: vec![8, 1],
            dtype: DType::F64,
        };
        assert_eq!(strided.order(), Order::Strided);
    }
}
