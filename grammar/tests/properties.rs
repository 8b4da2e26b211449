//! Properties over random input: any valid spec, however it is spaced, parses to what was
//! meant and survives the canonical round trip; any string at all parses or fails with a
//! well-formed error, never a panic.

use multiproj_grammar::{Axes, Norm, Spanned, Spec, parse};
use proptest::prelude::*;

/// A spec with the spans stripped: what "the same AST" means across spellings. The radius is
/// compared by bits so that `-0` and `0` stay apart.
#[derive(Clone, Debug, PartialEq)]
struct Shape {
    levels: Vec<(Norm, AxesShape)>,
    radius: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
enum AxesShape {
    One(usize),
    Range(usize, usize),
    From(usize),
    List(Vec<usize>),
}

fn shape(spec: &Spec) -> Shape {
    Shape {
        levels: spec
            .levels
            .iter()
            .map(|l| {
                let axes = match &l.axes.node {
                    Axes::One(a) => AxesShape::One(a.node),
                    Axes::Range { start, end } => AxesShape::Range(start.node, end.node),
                    Axes::From(a) => AxesShape::From(a.node),
                    Axes::List(items) => AxesShape::List(items.iter().map(|a| a.node).collect()),
                };
                (l.norm.node, axes)
            })
            .collect(),
        radius: spec.radius.as_ref().map(|r| r.node.to_bits()),
    }
}

fn axis_numbers(axes: &Axes) -> Vec<&Spanned<usize>> {
    match axes {
        Axes::One(a) | Axes::From(a) => vec![a],
        Axes::Range { start, end } => vec![start, end],
        Axes::List(items) => items.iter().collect(),
    }
}

fn norm() -> impl Strategy<Value = Norm> {
    prop_oneof![Just(Norm::L1), Just(Norm::L2), Just(Norm::Linf)]
}

/// Mostly small axis numbers, sometimes huge ones (they must still fit a usize).
fn axis() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..16, 1 => any::<usize>()]
}

fn axes() -> impl Strategy<Value = AxesShape> {
    prop_oneof![
        axis().prop_map(AxesShape::One),
        (axis(), axis()).prop_map(|(a, b)| AxesShape::Range(a, b)),
        axis().prop_map(AxesShape::From),
        prop::collection::vec(axis(), 2..5).prop_map(AxesShape::List),
    ]
}

/// Any radius the grammar accepts: signed, huge (overflowing to inf), tiny, zero.
fn radius() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |r| r.is_finite()),
        0.0f64..10.0,
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec((norm(), axes()), 1..6),
        prop::option::of(radius().prop_map(f64::to_bits)),
    )
        .prop_map(|(levels, radius)| Shape { levels, radius })
}

/// White space that must separate two words, and white space that may be absent.
const GAPS: &[&str] = &[" ", "  ", "\t", "\n", " \r\n "];
const OPTIONAL_GAPS: &[&str] = &["", " ", "\n", "\t "];

/// Writes `shape` as spec text, choosing white space and number spellings with `pick`, so
/// that one shape has many spellings.
fn spell(shape: &Shape, pick: &mut impl FnMut(usize) -> usize) -> String {
    fn gap(need: bool, pick: &mut impl FnMut(usize) -> usize) -> &'static str {
        let gaps = if need { GAPS } else { OPTIONAL_GAPS };
        gaps[pick(gaps.len())]
    }
    let mut out = gap(false, pick).to_owned();
    for (i, (norm, axes)) in shape.levels.iter().enumerate() {
        if i > 0 {
            out += gap(true, pick);
            out += "of";
            out += gap(true, pick);
        }
        out += &norm.to_string();
        out += gap(true, pick);
        out += "over";
        out += gap(true, pick);
        match axes {
            AxesShape::One(a) => out += &format!("dim{}{a}", gap(false, pick)),
            AxesShape::Range(a, b) => {
                out += &format!(
                    "dims{}{a}{}..{}{b}",
                    gap(false, pick),
                    gap(false, pick),
                    gap(false, pick)
                );
            }
            AxesShape::From(a) => {
                out += &format!("dims{}{a}{}..", gap(false, pick), gap(false, pick))
            }
            AxesShape::List(items) => {
                out += "dims";
                for (j, a) in items.iter().enumerate() {
                    if j > 0 {
                        out += gap(false, pick);
                        out += ",";
                    }
                    out += gap(false, pick);
                    out += &a.to_string();
                }
            }
        }
    }
    if let Some(bits) = shape.radius {
        let r = f64::from_bits(bits);
        out += gap(false, pick);
        out += "<=";
        out += gap(false, pick);
        out += &if r.is_infinite() {
            format!("{}1e400", if r < 0.0 { "-" } else { "" })
        } else if pick(2) == 0 {
            format!("{r}")
        } else {
            format!("{r:e}")
        };
    }
    out += gap(false, pick);
    out
}

proptest! {
    /// Any spelling of a valid spec parses to the spec meant, with spans that point at the
    /// words they stand for.
    #[test]
    fn valid_specs_parse_to_what_was_meant(
        meant in shape_strategy(),
        choices in prop::collection::vec(any::<usize>(), 64),
    ) {
        let mut i = 0;
        let mut pick = |n: usize| { i += 1; choices[i % choices.len()] % n };
        let src = spell(&meant, &mut pick);
        let spec = parse(&src).map_err(|e| TestCaseError::fail(format!("{src:?}: {e}")))?;
        prop_assert_eq!(shape(&spec), meant);
        for level in &spec.levels {
            let norm_text = &src[level.norm.span.start..level.norm.span.end];
            prop_assert_eq!(norm_text, level.norm.node.to_string());
            prop_assert!(src[level.span.start..level.span.end].starts_with(norm_text));
            prop_assert_eq!(level.span.end, level.axes.span.end);
            for span in [level.span, level.axes.span] {
                let text = &src[span.start..span.end];
                prop_assert_eq!(text.trim(), text, "a span includes white space");
            }
            for n in axis_numbers(&level.axes.node) {
                prop_assert_eq!(src[n.span.start..n.span.end].parse::<usize>().ok(), Some(n.node));
            }
        }
        if let Some(r) = &spec.radius {
            let text = &src[r.span.start..r.span.end];
            prop_assert_eq!(text.parse::<f64>().map(f64::to_bits).ok(), Some(r.node.to_bits()));
        }
    }

    /// The canonical text parses back to the same levels and radius, and is a fixed point.
    #[test]
    fn canonical_text_round_trips(meant in shape_strategy()) {
        let src = spell(&meant, &mut |_| 0);
        let spec = parse(&src).map_err(|e| TestCaseError::fail(format!("{src:?}: {e}")))?;
        let canonical = spec.canonical();
        let again = parse(&canonical)
            .map_err(|e| TestCaseError::fail(format!("{canonical:?}: {e}")))?;
        prop_assert_eq!(shape(&again), shape(&spec));
        prop_assert_eq!(again.canonical(), canonical);
    }

    /// Arbitrary text never panics, and an error's span lies inside the text on character
    /// boundaries, so that rendering it cannot panic either.
    #[test]
    fn any_string_parses_or_fails_cleanly(src in any::<String>()) {
        check_no_panic(&src)?;
    }

    /// The same over near-misses: strings made of the language's own tokens, which reach far
    /// deeper into the grammar than random characters do.
    #[test]
    fn token_soup_parses_or_fails_cleanly(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "l1", "l2", "linf", "l3", "over", "of", "dim", "dims", "..", ",", "<=", "<",
                "0", "1", "17", "99999999999999999999", "1.5", "-2", ".5", "1e", "e", "x", "é",
                " ", " ", " ", "\n", "\t",
            ]),
            0..24,
        ),
    ) {
        check_no_panic(&tokens.concat())?;
    }
}

fn check_no_panic(src: &str) -> Result<(), TestCaseError> {
    match parse(src) {
        Ok(spec) => {
            let canonical = spec.canonical();
            let again = parse(&canonical)
                .map_err(|e| TestCaseError::fail(format!("{canonical:?}: {e}")))?;
            prop_assert_eq!(shape(&again), shape(&spec));
            let _ = spec.to_string();
        }
        Err(err) => {
            let span = err.span();
            prop_assert!(span.start <= span.end && span.end <= src.len());
            prop_assert!(src.is_char_boundary(span.start) && src.is_char_boundary(span.end));
            prop_assert!(!err.message().is_empty());
            let mut out = String::new();
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100)
                .render_report(&mut out, &err)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    Ok(())
}
