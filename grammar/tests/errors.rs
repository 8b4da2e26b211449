//! Rendered parse diagnostics, pinned as inline snapshots: these are what a user reads, so a
//! change to any of them is a change to the user interface and is reviewed as one.

use multiproj_grammar::{ParseErrorKind, Span, parse};

/// The diagnostic as the CLI prints it, minus colour and terminal-width dependence.
fn render(src: &str) -> String {
    let err = match parse(src) {
        Ok(spec) => panic!("{src:?} should not parse, got {spec:?}"),
        Err(err) => err,
    };
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, &err)
        .expect("rendering into a String cannot fail");
    out
}

#[test]
fn empty_spec() {
    insta::assert_snapshot!(render(""), @r"
    multiproj::parse

      × the spec is empty
       ╭─[spec:1:1]
       ╰────
      help: a spec looks like `l1 over dim0 of linf over dim1`, optionally followed by `<= R`
    ");
}

#[test]
fn missing_norm() {
    insta::assert_snapshot!(render("over dim0"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:1]
     1 │ over dim0
       · ──┬─
       ·   ╰── found `over`
       ╰────
    ");
}

#[test]
fn unknown_norm() {
    insta::assert_snapshot!(render("l3 over dim0"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:1]
     1 │ l3 over dim0
       · ─┬
       ·  ╰── found `l3`
       ╰────
    ");
}

#[test]
fn upper_case_norm() {
    insta::assert_snapshot!(render("L1 over dim0"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:1]
     1 │ L1 over dim0
       · ─┬
       ·  ╰── found `L1`
       ╰────
      help: norms are written in lower case: `l1`
    ");
}

#[test]
fn missing_over() {
    insta::assert_snapshot!(render("l1 dim0"), @r"
    multiproj::parse

      × expected `over`
       ╭─[spec:1:4]
     1 │ l1 dim0
       ·    ──┬─
       ·      ╰── found `dim0`
       ╰────
      help: a level reads `<norm> over <axes>`, as in `l1 over dim0 of linf over dim1`
    ");
}

#[test]
fn missing_axes() {
    insta::assert_snapshot!(render("l1 over"), @r"
    multiproj::parse

      × expected an axis clause: `dim N`, `dims A..B`, `dims A..` or `dims A,B`
       ╭─[spec:1:4]
     1 │ l1 over
       ·    ──┬─
       ·      ╰── unexpected end of the spec after this
       ╰────
    ");
}

#[test]
fn number_without_dim() {
    insta::assert_snapshot!(render("l1 over 0"), @r"
    multiproj::parse

      × expected an axis clause: `dim N`, `dims A..B`, `dims A..` or `dims A,B`
       ╭─[spec:1:9]
     1 │ l1 over 0
       ·         ┬
       ·         ╰── found `0`
       ╰────
      help: name the axis with `dim`: `dim 0`
    ");
}

#[test]
fn dim_without_number() {
    insta::assert_snapshot!(render("l1 over dim"), @r"
    multiproj::parse

      × expected an axis number
       ╭─[spec:1:9]
     1 │ l1 over dim
       ·         ─┬─
       ·          ╰── unexpected end of the spec after this
       ╰────
    ");
}

#[test]
fn dims_with_one_number() {
    insta::assert_snapshot!(render("l1 over dims 1"), @r"
    multiproj::parse

      × expected `..` or `,`
       ╭─[spec:1:14]
     1 │ l1 over dims 1
       ·              ┬
       ·              ╰── unexpected end of the spec after this
       ╰────
      help: `dims` takes a range or a list: `dims 1..3`, `dims 1..` or `dims 0,2`; a single axis is
            `dim N`
    ");
}

#[test]
fn range_and_list_mixed() {
    insta::assert_snapshot!(render("l1 over dims 1,2..3"), @r"
    multiproj::parse

      × expected `,`, `of`, `<=` or the end of the spec
       ╭─[spec:1:17]
     1 │ l1 over dims 1,2..3
       ·                 ─┬─
       ·                  ╰── found `..3`
       ╰────
    ");
}

#[test]
fn trailing_of() {
    insta::assert_snapshot!(render("l1 over dim0 of"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:14]
     1 │ l1 over dim0 of
       ·              ─┬
       ·               ╰── unexpected end of the spec after this
       ╰────
      help: `of` must be followed by another level: `l1 over dim0 of linf over dim1`, or removed
    ");
}

#[test]
fn garbage_after_spec() {
    insta::assert_snapshot!(render("l1 over dim0 x"), @r"
    multiproj::parse

      × expected `of`, `<=` or the end of the spec
       ╭─[spec:1:14]
     1 │ l1 over dim0 x
       ·              ┬
       ·              ╰── found `x`
       ╰────
    ");
}

#[test]
fn levels_not_joined() {
    insta::assert_snapshot!(render("l1 over dim0 linf over dim1"), @r"
    multiproj::parse

      × expected `of`, `<=` or the end of the spec
       ╭─[spec:1:14]
     1 │ l1 over dim0 linf over dim1
       ·              ──┬─
       ·                ╰── found `linf`
       ╰────
      help: levels are joined with `of`: `l1 over dim0 of linf over dim1`
    ");
}

#[test]
fn keyword_run_into_next() {
    insta::assert_snapshot!(render("l1over dim0"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:1]
     1 │ l1over dim0
       · ───┬──
       ·    ╰── found `l1over`
       ╰────
      help: separate the words: `l1 over`
    ");
}

#[test]
fn of_run_into_norm() {
    insta::assert_snapshot!(render("l1 over dim0 ofl1 over dim1"), @r"
    multiproj::parse

      × expected `of`, `<=` or the end of the spec
       ╭─[spec:1:14]
     1 │ l1 over dim0 ofl1 over dim1
       ·              ──┬─
       ·                ╰── found `ofl1`
       ╰────
      help: separate the words: `of l1`
    ");
}

#[test]
fn less_than_instead_of_le() {
    insta::assert_snapshot!(render("l1 over dim0 < 1"), @r"
    multiproj::parse

      × expected `of`, `<=` or the end of the spec
       ╭─[spec:1:14]
     1 │ l1 over dim0 < 1
       ·              ┬
       ·              ╰── found `<`
       ╰────
      help: a fixed radius is written `<= R`, as in `l1 over dim0 <= 1`
    ");
}

#[test]
fn two_radii() {
    insta::assert_snapshot!(render("l1 over dim0 <= 1 <= 2"), @r"
    multiproj::parse

      × expected the end of the spec
       ╭─[spec:1:19]
     1 │ l1 over dim0 <= 1 <= 2
       ·                   ─┬
       ·                    ╰── found `<=`
       ╰────
      help: a spec fixes at most one radius
    ");
}

#[test]
fn radius_not_last() {
    insta::assert_snapshot!(render("l1 over dim0 <= 1 of linf over dim1"), @r"
    multiproj::parse

      × expected the end of the spec
       ╭─[spec:1:19]
     1 │ l1 over dim0 <= 1 of linf over dim1
       ·                   ─┬
       ·                    ╰── found `of`
       ╰────
      help: the radius comes last: `l1 over dim0 of linf over dim1 <= 1`
    ");
}

#[test]
fn overflowing_axis_number() {
    insta::assert_snapshot!(render("l1 over dim99999999999999999999"), @r"
    multiproj::parse

      × axis number 99999999999999999999 is too large
       ╭─[spec:1:12]
     1 │ l1 over dim99999999999999999999
       ·            ──────────┬─────────
       ·                      ╰── too large to be an axis
       ╰────
      help: axes are numbered from 0 up to the rank of the tensor minus one
    ");
}

#[test]
fn bad_radius() {
    insta::assert_snapshot!(render("l1 over dim0 <= abc"), @r"
    multiproj::parse

      × expected a radius (a non-negative number)
       ╭─[spec:1:17]
     1 │ l1 over dim0 <= abc
       ·                 ─┬─
       ·                  ╰── found `abc`
       ╰────
      help: a radius is a number such as `1`, `0.5` or `1e-3`; leave out `<= R` to give the radius at
            run time
    ");
}

#[test]
fn radius_with_trailing_letters() {
    insta::assert_snapshot!(render("l1 over dim0 <= 1.5x"), @r"
    multiproj::parse

      × expected a radius (a non-negative number)
       ╭─[spec:1:17]
     1 │ l1 over dim0 <= 1.5x
       ·                 ──┬─
       ·                   ╰── found `1.5x`
       ╰────
      help: a radius is a number such as `1`, `0.5` or `1e-3`; leave out `<= R` to give the radius at
            run time
    ");
}

#[test]
fn missing_radius() {
    insta::assert_snapshot!(render("l1 over dim0 <="), @r"
    multiproj::parse

      × expected a radius (a non-negative number)
       ╭─[spec:1:14]
     1 │ l1 over dim0 <=
       ·              ─┬
       ·               ╰── unexpected end of the spec after this
       ╰────
      help: a radius is a number such as `1`, `0.5` or `1e-3`; leave out `<= R` to give the radius at
            run time
    ");
}

#[test]
fn error_on_second_line() {
    insta::assert_snapshot!(render("l1 over dim0\nof l3 over dim1"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:2:4]
     1 │ l1 over dim0
     2 │ of l3 over dim1
       ·    ─┬
       ·     ╰── found `l3`
       ╰────
    ");
}

#[test]
fn white_space_only_is_empty() {
    for src in ["", " ", "\n\t  \r\n"] {
        let err = parse(src).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::Empty, "{src:?}");
        assert_eq!(err.message(), "the spec is empty");
    }
}

#[test]
fn accessors_give_kind_span_message_label_and_help() {
    let err = parse("l1 over dim0 <= 1 <= 2").unwrap_err();
    assert_eq!(err.kind(), ParseErrorKind::Syntax);
    assert_eq!(err.span(), Span::new(18, 20));
    assert_eq!(err.message(), "expected the end of the spec");
    assert_eq!(err.to_string(), err.message());
    assert_eq!(err.label(), "found `<=`");
    assert_eq!(err.help(), Some("a spec fixes at most one radius"));
}

#[test]
fn overflowing_axis_number_points_at_the_number() {
    let src = "l1 over dims 0, 18446744073709551616";
    let err = parse(src).unwrap_err();
    assert_eq!(err.kind(), ParseErrorKind::AxisTooLarge);
    assert_eq!(
        &src[err.span().start..err.span().end],
        "18446744073709551616"
    );
    assert_eq!(
        err.message(),
        "axis number 18446744073709551616 is too large"
    );
    // The largest usize itself is an axis number as far as the grammar is concerned.
    assert!(parse(&format!("l1 over dim{}", usize::MAX)).is_ok());
}

#[test]
fn a_short_spec_points_at_its_last_word() {
    let err = parse("l1 over dims 3   ").unwrap_err();
    assert_eq!(err.span(), Span::new(13, 14));
    assert_eq!(err.label(), "unexpected end of the spec after this");
    assert_eq!(err.message(), "expected `..` or `,`");
}

#[test]
fn keywords_do_not_run_into_words() {
    for src in [
        "l1over dim0",
        "l1 overdim0",
        "l1 over dim0 ofl2 over dim1",
        "l1 over dimsx",
        "l1 over dimx0",
        "l10 over dim0",
        "linfover dim0",
    ] {
        let err = parse(src).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::Syntax, "{src:?}");
    }
}

#[test]
fn messages_never_name_grammar_rules() {
    let rule_names = [
        "kw_",
        "axes_",
        "dotdot",
        "comma",
        "EOI",
        "SOI",
        "WHITESPACE",
        "word_char",
        "Rule",
    ];
    for src in [
        "x",
        "l1",
        "l1 over",
        "l1 over dims",
        "l1 over dims1",
        "l1 over dims1.. of",
        "l1 over dims1,",
        "l1 over dim0 of",
        "l1 over dim0 <=",
        "l1 over dim0 <= 1 x",
        "l1 over dims1..2,3",
    ] {
        let err = parse(src).unwrap_err();
        let text = format!("{} {} {:?}", err.message(), err.label(), err.help());
        for name in rule_names {
            assert!(!text.contains(name), "{src:?} gave {text:?}");
        }
    }
}

#[test]
fn unicode_space_is_not_a_separator() {
    insta::assert_snapshot!(render("l1\u{3000}over dim0"), @r"
    multiproj::parse

      × expected `over`
       ╭─[spec:1:3]
     1 │ l1　over dim0
       ·   ───┬──
       ·      ╰── found `　over`
       ╰────
      help: only spaces, tabs and line breaks separate words; retype this space
    ");
}

#[test]
fn exact_run_into_norm() {
    insta::assert_snapshot!(render("exactl1 over dim0"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:1]
     1 │ exactl1 over dim0
       · ───┬───
       ·    ╰── found `exactl1`
       ╰────
      help: separate the words: `exact l1`
    ");
}

#[test]
fn exact_not_first() {
    insta::assert_snapshot!(render("l1 over dim0 exact"), @r"
    multiproj::parse

      × expected `of`, `<=` or the end of the spec
       ╭─[spec:1:14]
     1 │ l1 over dim0 exact
       ·              ──┬──
       ·                ╰── found `exact`
       ╰────
      help: `exact` comes first: `exact l1 over dim0 of linf over dim1`
    ");
}

#[test]
fn exact_alone() {
    insta::assert_snapshot!(render("exact"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:1]
     1 │ exact
       · ──┬──
       ·   ╰── unexpected end of the spec after this
       ╰────
      help: `exact` is followed by the spec whose ball to project on: `exact l1 over dim0 of linf over
            dim1`
    ");
}

#[test]
fn exact_twice() {
    insta::assert_snapshot!(render("exact exact l1 over dim0"), @r"
    multiproj::parse

      × expected a norm: l1, l2 or linf
       ╭─[spec:1:7]
     1 │ exact exact l1 over dim0
       ·       ──┬──
       ·         ╰── found `exact`
       ╰────
    ");
}
