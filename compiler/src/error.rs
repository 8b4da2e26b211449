//! Errors of the check stage: a spec that cannot be bound to a tensor, or a bad radius.
//! Every error that is about a place in the spec carries its span and renders with the spec
//! underlined.

use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};
use multiproj_grammar::Span;
use thiserror::Error;

/// Shared, so that errors stay small (clippy's `result_large_err`) and cheap to clone.
fn src(source: &str) -> Arc<NamedSource<String>> {
    Arc::new(NamedSource::new("spec", source.to_string()))
}

#[derive(Debug, Error, Diagnostic)]
#[non_exhaustive]
pub enum CheckError {
    #[error("axis {axis} is out of range for a rank-{rank} tensor")]
    #[diagnostic(
        code(multiproj::check::axis_out_of_range),
        help("{}", axis_range_help(*rank))
    )]
    AxisOutOfRange {
        axis: usize,
        rank: usize,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("no axis {axis} here")]
        span: SourceSpan,
    },

    #[error("axis {axis} is used twice")]
    #[diagnostic(
        code(multiproj::check::axis_used_twice),
        help("the levels' axis sets must be disjoint: each axis belongs to exactly one level")
    )]
    AxisUsedTwice {
        axis: usize,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("first use")]
        first: SourceSpan,
        #[label("used again here")]
        second: SourceSpan,
    },

    #[error("axis {axis} is listed twice in one level")]
    #[diagnostic(
        code(multiproj::check::axis_repeated),
        help("name each axis once: a level's axes form a set")
    )]
    AxisRepeated {
        axis: usize,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("first here")]
        first: SourceSpan,
        #[label("again here")]
        second: SourceSpan,
    },

    #[error("no exact projection onto the ball of `{levels}`")]
    #[diagnostic(
        code(multiproj::check::no_exact_projection),
        help(
            "exact projections exist for: {}; leave out `exact` for the multi-level projection",
            crate::exact::EXACT_PROJECTIONS
        )
    )]
    NoExactProjection {
        /// The levels after the norm-preserving rewrites.
        levels: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("asks for the exact projection")]
        exact: SourceSpan,
        #[label("onto the ball of these levels")]
        span: SourceSpan,
    },

    #[error("axis {axis} of a rank-{rank} tensor is not covered")]
    #[diagnostic(
        code(multiproj::check::axis_not_covered),
        help(
            "every axis must belong to exactly one level; add axis {axis} to a level (e.g. `dims A,B` or `dims A..`)"
        )
    )]
    AxisNotCovered {
        axis: usize,
        rank: usize,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("these levels leave axis {axis} out")]
        span: SourceSpan,
    },

    #[error("this level names no axis: {reason}")]
    #[diagnostic(code(multiproj::check::empty_level))]
    EmptyLevel {
        reason: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("empty")]
        span: SourceSpan,
    },

    #[error("the radius is given twice: `<= {in_spec}` in the spec and {at_run_time} at run time")]
    #[diagnostic(
        code(multiproj::check::radius_given_twice),
        help("drop one of them: either fix the radius in the spec or pass it at run time")
    )]
    RadiusGivenTwice {
        in_spec: f64,
        at_run_time: f64,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("radius fixed here")]
        span: SourceSpan,
    },

    #[error("invalid radius {shown}: {reason}")]
    #[diagnostic(code(multiproj::check::invalid_radius))]
    InvalidRadius {
        value: f64,
        /// The radius as written (in the spec) or as given.
        shown: String,
        reason: &'static str,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("not a valid radius")]
        span: Option<SourceSpan>,
    },

    #[error("no radius: the spec has no `<= R` and none was given at run time")]
    #[diagnostic(
        code(multiproj::check::missing_radius),
        help("add `<= R` to the spec or pass a radius (`--radius R` on the command line)")
    )]
    MissingRadius,

    #[error("the tensor has no elements (shape {shape:?})")]
    #[diagnostic(code(multiproj::check::empty_tensor))]
    EmptyTensor { shape: Vec<usize> },
}

fn axis_range_help(rank: usize) -> String {
    match rank {
        0 => "the tensor is a scalar: it has no axes".to_string(),
        1 => "the tensor has one axis: 0".to_string(),
        r => format!("the tensor has axes 0 to {}", r - 1),
    }
}

impl CheckError {
    pub(crate) fn out_of_range(source: &str, axis: usize, rank: usize, span: Span) -> Self {
        CheckError::AxisOutOfRange {
            axis,
            rank,
            src: src(source),
            span: span.into(),
        }
    }

    pub(crate) fn used_twice(source: &str, axis: usize, first: Span, second: Span) -> Self {
        CheckError::AxisUsedTwice {
            axis,
            src: src(source),
            first: first.into(),
            second: second.into(),
        }
    }

    pub(crate) fn repeated(source: &str, axis: usize, first: Span, second: Span) -> Self {
        CheckError::AxisRepeated {
            axis,
            src: src(source),
            first: first.into(),
            second: second.into(),
        }
    }

    pub(crate) fn not_covered(source: &str, axis: usize, rank: usize, span: Span) -> Self {
        CheckError::AxisNotCovered {
            axis,
            rank,
            src: src(source),
            span: span.into(),
        }
    }

    pub(crate) fn no_exact(source: &str, levels: String, exact: Span, span: Span) -> Self {
        CheckError::NoExactProjection {
            levels,
            src: src(source),
            exact: exact.into(),
            span: span.into(),
        }
    }

    pub(crate) fn empty_level(source: &str, reason: String, span: Span) -> Self {
        CheckError::EmptyLevel {
            reason,
            src: src(source),
            span: span.into(),
        }
    }

    pub(crate) fn invalid_radius(source: &str, value: f64, span: Option<Span>) -> Self {
        let shown = match span {
            Some(s) => source[s.start..s.end].to_string(),
            None => value.to_string(),
        };
        let reason = if value.is_nan() {
            "a radius must be a number (finite and non-negative)"
        } else if value.is_infinite() && span.is_some() && value > 0.0 {
            "it is too large for a float64 and would be infinite"
        } else if value.is_infinite() {
            "a radius must be finite"
        } else {
            "a radius must be non-negative"
        };
        CheckError::InvalidRadius {
            value,
            shown,
            reason,
            src: src(source),
            span: span.map(Into::into),
        }
    }

    pub(crate) fn radius_twice(source: &str, in_spec: f64, at_run_time: f64, span: Span) -> Self {
        CheckError::RadiusGivenTwice {
            in_spec,
            at_run_time,
            src: src(source),
            span: span.into(),
        }
    }
}
