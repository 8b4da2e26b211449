//! Every syntax form of `docs/SEMANTICS.md` §1, the spans the parser records, and the two printed forms
//! of a spec (the tree and the canonical text).

use multiproj_grammar::{Axes, Norm, Span, Spanned, Spec, parse};

fn ok(src: &str) -> Spec {
    match parse(src) {
        Ok(spec) => spec,
        Err(err) => panic!("{src:?} should parse, got: {err}"),
    }
}

/// The only level of a one-level spec.
fn axes_of(src: &str) -> Axes {
    let spec = ok(src);
    assert_eq!(spec.levels.len(), 1, "{src:?}");
    spec.levels[0].axes.node.clone()
}

fn sp<T>(node: T, start: usize, end: usize) -> Spanned<T> {
    Spanned::new(node, Span::new(start, end))
}

/// The text a span covers.
fn text(src: &str, span: Span) -> &str {
    &src[span.start..span.end]
}

fn radius_of(src: &str) -> f64 {
    match ok(src).radius {
        Some(r) => r.node,
        None => panic!("{src:?} should fix a radius"),
    }
}

#[test]
fn all_norms() {
    for (word, norm) in [("l1", Norm::L1), ("l2", Norm::L2), ("linf", Norm::Linf)] {
        let src = format!("{word} over dim0");
        let spec = ok(&src);
        assert_eq!(spec.levels[0].norm, sp(norm, 0, word.len()));
        assert_eq!(spec.levels[0].norm.node.to_string(), word);
    }
}

#[test]
fn one_axis() {
    assert_eq!(axes_of("l1 over dim0"), Axes::One(sp(0, 11, 12)));
    assert_eq!(axes_of("l1 over dim 0"), Axes::One(sp(0, 12, 13)));
    assert_eq!(axes_of("l1 over dim   17"), Axes::One(sp(17, 14, 16)));
    // Leading zeros are just decimal digits.
    assert_eq!(axes_of("l1 over dim007"), Axes::One(sp(7, 11, 14)));
}

#[test]
fn inclusive_range() {
    assert_eq!(
        axes_of("l1 over dims1..2"),
        Axes::Range {
            start: sp(1, 12, 13),
            end: sp(2, 15, 16)
        }
    );
    assert_eq!(
        axes_of("l1 over dims 1 .. 2"),
        Axes::Range {
            start: sp(1, 13, 14),
            end: sp(2, 18, 19)
        }
    );
    // The grammar does not order the ends; an empty range is the checker's to reject.
    assert_eq!(
        axes_of("l1 over dims3..1"),
        Axes::Range {
            start: sp(3, 12, 13),
            end: sp(1, 15, 16)
        }
    );
}

#[test]
fn open_range() {
    assert_eq!(axes_of("l1 over dims1.."), Axes::From(sp(1, 12, 13)));
    assert_eq!(axes_of("l1 over dims 1 .."), Axes::From(sp(1, 13, 14)));
    let spec = ok("l1 over dims0.. <= 2");
    assert_eq!(spec.levels[0].axes.node, Axes::From(sp(0, 12, 13)));
    assert_eq!(spec.levels[0].axes.span, Span::new(8, 15));
}

#[test]
fn explicit_list() {
    assert_eq!(
        axes_of("l1 over dims0,2"),
        Axes::List(vec![sp(0, 12, 13), sp(2, 14, 15)])
    );
    assert_eq!(
        axes_of("l1 over dims0, 2"),
        Axes::List(vec![sp(0, 12, 13), sp(2, 15, 16)])
    );
    assert_eq!(
        axes_of("l1 over dims 0 , 2 ,4"),
        Axes::List(vec![sp(0, 13, 14), sp(2, 17, 18), sp(4, 20, 21)])
    );
    // A list of one is `dim N`; `dims N` alone is an error (see errors.rs).
    assert!(parse("l1 over dims 0").is_err());
}

#[test]
fn levels_are_outermost_first_with_spans() {
    let src = "l1 over dim0 of linf over dims1..2 of l2 over dims 3 ..";
    let spec = ok(src);
    let levels: Vec<(Norm, &str, &str)> = spec
        .levels
        .iter()
        .map(|l| (l.norm.node, text(src, l.span), text(src, l.axes.span)))
        .collect();
    assert_eq!(
        levels,
        [
            (Norm::L1, "l1 over dim0", "dim0"),
            (Norm::Linf, "linf over dims1..2", "dims1..2"),
            (Norm::L2, "l2 over dims 3 ..", "dims 3 .."),
        ]
    );
    assert_eq!(spec.radius, None);
    assert_eq!(spec.source, src);
}

#[test]
fn radius_forms() {
    assert_eq!(radius_of("l1 over dim0 <= 1"), 1.0);
    assert_eq!(radius_of("l1 over dim0 <= 1.5"), 1.5);
    assert_eq!(radius_of("l1 over dim0 <= .5"), 0.5);
    assert_eq!(radius_of("l1 over dim0 <= 2."), 2.0);
    assert_eq!(radius_of("l1 over dim0 <= 1e-3"), 1e-3);
    assert_eq!(radius_of("l1 over dim0 <= 2.5E+2"), 250.0);
    assert_eq!(radius_of("l1 over dim0<=0"), 0.0);
    assert_eq!(radius_of("l1 over dim0 <=+3"), 3.0);
    // Accepted here so that the checker can explain why they are not radii.
    assert_eq!(radius_of("l1 over dim0 <= -1"), -1.0);
    assert_eq!(radius_of("l1 over dim0 <= 1e999"), f64::INFINITY);
    assert!(radius_of("l1 over dim0 <= -0").is_sign_negative());
}

#[test]
fn radius_span_is_the_number() {
    let src = "l1 over dim0 of linf over dim1 <=  -2.5e1";
    let spec = ok(src);
    let radius = spec.radius.expect("a fixed radius");
    assert_eq!(radius.node, -25.0);
    assert_eq!(text(src, radius.span), "-2.5e1");
}

#[test]
fn radius_must_be_a_number() {
    for bad in [
        "inf", "nan", "1e", "1..2", "1.5.", "1_000", "e3", ".", "--1", "0x10",
    ] {
        let src = format!("l1 over dim0 <= {bad}");
        assert!(parse(&src).is_err(), "{src:?} should not parse");
    }
}

#[test]
fn white_space_is_free_between_tokens() {
    let spellings = [
        "l1 over dim0 of linf over dims1..2 <= 1",
        "  l1 over dim 0 of linf over dims 1 .. 2 <= 1  ",
        "l1\tover\tdim0\nof\r\nlinf over dims1..2<=1",
        "l1 over dim0of linf over dims1..2<=1",
    ];
    let canonical: Vec<String> = spellings.iter().map(|s| ok(s).canonical()).collect();
    for c in &canonical {
        assert_eq!(c, "l1 over dim0 of linf over dims1..2 <= 1");
    }
    // Between words white space is required, of course.
    assert!(parse("l1overdim0").is_err());
}

#[test]
fn tree_display() {
    insta::assert_snapshot!(ok("l1 over dim0 of linf over dims1..2"), @r"
    spec `l1 over dim0 of linf over dims1..2`
    ├─ level 1  l1 over dim 0          @0..12
    └─ level 2  linf over dims 1..2    @16..34
    radius: given at run time
    ");
}

#[test]
fn tree_display_with_radius_and_every_axis_form() {
    insta::assert_snapshot!(
        ok("l1 over dims 0,2 of l2 over dim1 of linf over dims3.. <= 1.5"),
        @r"
    spec `l1 over dims 0,2 of l2 over dim1 of linf over dims3.. <= 1.5`
    ├─ level 1  l1 over dims 0,2      @0..16
    ├─ level 2  l2 over dim 1         @20..32
    └─ level 3  linf over dims 3..    @36..53
    radius: 1.5  @57..60
    "
    );
}

#[test]
fn tree_display_escapes_line_breaks_and_aligns_many_levels() {
    let src = (0..10)
        .map(|i| format!("linf over dim{i}"))
        .collect::<Vec<_>>()
        .join("\nof ");
    insta::assert_snapshot!(ok(&src), @r"
    spec `linf over dim0\nof linf over dim1\nof linf over dim2\nof linf over dim3\nof linf over dim4\nof linf over dim5\nof linf over dim6\nof linf over dim7\nof linf over dim8\nof linf over dim9`
    ├─ level 1   linf over dim 0    @0..14
    ├─ level 2   linf over dim 1    @18..32
    ├─ level 3   linf over dim 2    @36..50
    ├─ level 4   linf over dim 3    @54..68
    ├─ level 5   linf over dim 4    @72..86
    ├─ level 6   linf over dim 5    @90..104
    ├─ level 7   linf over dim 6    @108..122
    ├─ level 8   linf over dim 7    @126..140
    ├─ level 9   linf over dim 8    @144..158
    └─ level 10  linf over dim 9    @162..176
    radius: given at run time
    ");
}

#[test]
fn canonical_text() {
    let cases = [
        ("l1 over dim 0", "l1 over dim0"),
        ("l1 over dims 1 .. 2", "l1 over dims1..2"),
        ("l1 over dims 1 ..", "l1 over dims1.."),
        ("l1 over dims 0 , 2", "l1 over dims0,2"),
        (
            "l2  over dim0\nof  linf over dim1 <= 1.50",
            "l2 over dim0 of linf over dim1 <= 1.5",
        ),
        ("l1 over dim0 <= .5", "l1 over dim0 <= 0.5"),
        ("l1 over dim0 <= 1e-3", "l1 over dim0 <= 0.001"),
        ("l1 over dim0 <= 1e999", "l1 over dim0 <= 1e999"),
        ("l1 over dim0 <= -1e999", "l1 over dim0 <= -1e999"),
        ("l1 over dim0 <= -0.0", "l1 over dim0 <= -0"),
    ];
    for (src, canonical) in cases {
        let spec = ok(src);
        assert_eq!(spec.canonical(), canonical, "{src:?}");
        // Canonical text is a fixed point.
        assert_eq!(ok(canonical).canonical(), canonical);
    }
}

#[test]
fn level_display_reads_like_the_math() {
    let spec = ok("linf over dims0,2");
    assert_eq!(spec.levels[0].to_string(), "linf over dims 0,2");
    assert_eq!(spec.levels[0].axes.node.canonical(), "dims0,2");
}

#[test]
fn exact_marker() {
    let src = "exact l1 over dim0 of linf over dim1";
    let spec = ok(src);
    assert_eq!(spec.exact, Some(Span::new(0, 5)));
    assert_eq!(spec.levels.len(), 2);
    assert_eq!(text(src, spec.levels[0].span), "l1 over dim0");
    assert_eq!(spec.canonical(), "exact l1 over dim0 of linf over dim1");
    // Free white space, as everywhere, and a radius.
    let spaced = ok("  exact\tl1 over dim0 <= 2");
    assert_eq!(spaced.exact, Some(Span::new(2, 7)));
    assert_eq!(spaced.canonical(), "exact l1 over dim0 <= 2");
    // Without the word, no marker.
    assert_eq!(ok("l1 over dim0").exact, None);
    // The canonical text parses back to an exact spec.
    assert_eq!(ok(&spec.canonical()).exact, Some(Span::new(0, 5)));
}

#[test]
fn exact_tree() {
    insta::assert_snapshot!(ok("exact l1 over dim0 of linf over dim1 <= 3").to_string(), @r"
    spec `exact l1 over dim0 of linf over dim1 <= 3`
    method: exact Euclidean projection  @0..5
    ├─ level 1  l1 over dim 0      @6..18
    └─ level 2  linf over dim 1    @22..36
    radius: 3  @40..41
    ");
}
