//! From text to [`Spec`]: runs the pest grammar (`spec.pest`) and turns its pairs into the
//! spanned AST, one small function per grammar rule. This module and `error.rs` are the only
//! places that see pest's types; everything they return is ours.

use pest::Parser as _;
use pest::iterators::Pair;
use pest_derive::Parser;

use crate::ast::{Axes, Level, Norm, Span, Spanned, Spec};
use crate::error::ParseError;

#[derive(Parser)]
#[grammar = "spec.pest"]
struct SpecParser;

/// Parses a spec such as `l1 over dim0 of linf over dims1..2 <= 1.5`.
///
/// Only the syntax is checked here. Whether the axes fit a tensor, are disjoint and cover it,
/// and whether the radius is finite and non-negative, is decided when the spec meets a shape
/// (`multiproj-compiler`), because only then can those errors be stated precisely.
pub fn parse(src: &str) -> Result<Spec, ParseError> {
    let mut pairs =
        SpecParser::parse(Rule::spec, src).map_err(|err| ParseError::from_pest(src, &err))?;
    match pairs.next() {
        Some(pair) => spec(pair, src),
        None => Err(ParseError::internal(
            src,
            "the grammar matched without a `spec`",
        )),
    }
}

fn spec(pair: Pair<'_, Rule>, src: &str) -> Result<Spec, ParseError> {
    let mut levels = Vec::new();
    let mut radius_value = None;
    let mut exact = None;
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::kw_exact => exact = Some(span_of(&inner)),
            Rule::level => levels.push(level(inner, src)?),
            Rule::radius => radius_value = Some(radius(inner, src)?),
            // Punctuation: its place is already implied by the structure.
            Rule::kw_of | Rule::le | Rule::EOI => {}
            rule => unreachable!("`spec` cannot contain {rule:?}"),
        }
    }
    Ok(Spec {
        source: src.to_owned(),
        exact,
        levels,
        radius: radius_value,
    })
}

fn level(pair: Pair<'_, Rule>, src: &str) -> Result<Level, ParseError> {
    let span = span_of(&pair);
    let mut norm_kw = None;
    let mut axes_clause = None;
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::norm => norm_kw = Some(norm(inner)),
            Rule::axes => axes_clause = Some(axes(inner, src)?),
            Rule::kw_over => {}
            rule => unreachable!("`level` cannot contain {rule:?}"),
        }
    }
    match (norm_kw, axes_clause) {
        (Some(norm), Some(axes)) => Ok(Level { norm, axes, span }),
        _ => Err(ParseError::internal(src, "a level without a norm or axes")),
    }
}

fn norm(pair: Pair<'_, Rule>) -> Spanned<Norm> {
    let norm = match pair.as_str() {
        "l1" => Norm::L1,
        "l2" => Norm::L2,
        "linf" => Norm::Linf,
        other => unreachable!("the `norm` rule matched {other:?}"),
    };
    Spanned::new(norm, span_of(&pair))
}

fn axes(pair: Pair<'_, Rule>, src: &str) -> Result<Spanned<Axes>, ParseError> {
    let span = span_of(&pair);
    let Some(form) = pair.into_inner().next() else {
        return Err(ParseError::internal(src, "an empty axis clause"));
    };
    let axes = match form.as_rule() {
        Rule::axes_one => Axes::One(single_int(form, src)?),
        Rule::axes_from => Axes::From(single_int(form, src)?),
        Rule::axes_range => {
            let mut ints = ints(form, src)?.into_iter();
            match (ints.next(), ints.next()) {
                (Some(start), Some(end)) => Axes::Range { start, end },
                _ => return Err(ParseError::internal(src, "a range without two ends")),
            }
        }
        Rule::axes_list => Axes::List(ints(form, src)?),
        rule => unreachable!("`axes` cannot contain {rule:?}"),
    };
    Ok(Spanned::new(axes, span))
}

/// The axis numbers of one axis clause, in order; keywords and punctuation are skipped.
fn ints(pair: Pair<'_, Rule>, src: &str) -> Result<Vec<Spanned<usize>>, ParseError> {
    pair.into_inner()
        .filter(|p| p.as_rule() == Rule::int)
        .map(|p| int(p, src))
        .collect()
}

fn single_int(pair: Pair<'_, Rule>, src: &str) -> Result<Spanned<usize>, ParseError> {
    match ints(pair, src)?.pop() {
        Some(n) => Ok(n),
        None => Err(ParseError::internal(src, "an axis clause without a number")),
    }
}

fn int(pair: Pair<'_, Rule>, src: &str) -> Result<Spanned<usize>, ParseError> {
    let span = span_of(&pair);
    // The grammar only lets digits through, so the one way this fails is overflow.
    pair.as_str()
        .parse::<usize>()
        .map(|n| Spanned::new(n, span))
        .map_err(|_| ParseError::axis_too_large(src, span))
}

fn radius(pair: Pair<'_, Rule>, src: &str) -> Result<Spanned<f64>, ParseError> {
    let span = span_of(&pair);
    // Every string the `radius` rule accepts is valid for `f64::from_str`; too large a
    // number becomes ±inf, which the checker rejects with its own message.
    pair.as_str()
        .parse::<f64>()
        .map(|r| Spanned::new(r, span))
        .map_err(|_| ParseError::internal(src, "the grammar accepted a radius Rust cannot parse"))
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}
