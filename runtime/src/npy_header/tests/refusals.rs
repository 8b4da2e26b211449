//! Headers that are refused, with the reason: expressions, bad numbers and strings, stray
//! characters, NumPy's checks on the dict, the limits on dimensions, length and nesting, and
//! a bad preamble.

use super::*;

#[test]
fn arithmetic_and_other_expressions_are_refused() {
    for (shape, reason) in [
        ("(1+1, 3)", "arithmetic ('+')"),
        ("(2-1,)", "arithmetic ('-')"),
        ("(1,)*1", "unexpected '*'"),
        ("(1,)+()", "arithmetic ('+')"),
        ("(--1,)", "arithmetic ('-')"),
        ("(+-1,)", "arithmetic ('+')"),
        ("(-True,)", "arithmetic ('-')"),
        ("(1 if 1 else 2,)", "the name \"if\""),
        ("(x,)", "the name \"x\""),
        ("(...,)", "unexpected '.'"),
        ("(f'1',)", "an f-string"),
        ("(ur'1',)", "the name \"ur\""),
        ("(1,),,", "unexpected ','"),
        ("(,)", "unexpected ','"),
        ("(1 2)", "unexpected number 2"),
    ] {
        refused_with(&with_shape(shape), reason);
    }
    refused_with(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), **{}}",
        "unexpected '*'",
    );
    refused_with(
        "{'descr': 1+2j, 'fortran_order': False, 'shape': (1,)}",
        "arithmetic",
    );
}

#[test]
fn bad_numbers_are_refused() {
    for shape in [
        "(01,)", "(0777,)", "(1_,)", "(1__0,)", "(0x,)", "(0b_,)", "(0o8,)", "(0b12,)", "(1e,)",
        "(0x1g,)", "(1_.5,)",
    ] {
        refused_with(&with_shape(shape), "cannot be parsed");
    }
}

#[test]
fn bad_strings_are_refused() {
    for descr in [
        "'<f8",
        "'<f8\n'",
        "'''<f8",
        "'\\x4'",
        "'\\u004'",
        "'\\U00110000'",
        "r'\\'",
        "'\\N{DIGIT EIGHT}'",
        "b'é'",
        "'a' b'b'",
        "b'a' 'b'",
        "f'<f8'",
    ] {
        let e = refusal(3, &with_descr(descr));
        assert!(e.contains("cannot be parsed"), "{descr}: {e}");
    }
}

#[test]
fn stray_characters_are_refused() {
    let d = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}";
    for text in [
        format!("{d}\0"),
        format!("{d} #\0"),
        "{'descr': '<f8\0', 'fortran_order': False, 'shape': (1,)}".to_string(),
        format!("{d}\x0b"),
        format!("{d}\x1a"),
        format!("{d}\u{a0}"),
        format!("{d} ;"),
        format!("{d} {{}}"),
        format!("{d} \\"),
        format!("{d}\\\n"),
        format!("{d}\n \\\n"),
        format!("\n  {d}"),
        format!("\n\t{d}"),
        format!("  # c\n  {d}"),
        format!(" \\\n {d}"),
        format!("\u{feff}{d}"),
        String::new(),
        "   \n".into(),
    ] {
        match parse(&raw(3, text.as_bytes())) {
            Err(HeaderError::Syntax { .. }) => {}
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let e = parse(&raw(
        1,
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}\xa0",
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "its header cannot be parsed (the character '\\u{a0}' at byte 65)"
    );
    let e = parse(&raw(
        1,
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,),,}",
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "its header cannot be parsed (unexpected ',' at byte 65)"
    );
    let e = parse(&raw(
        1,
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,",
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "its header cannot be parsed (the header ends early at byte 63)"
    );
}

#[test]
fn numpy_checks_on_the_dict() {
    let cases = [
        ("['descr']", "its header is not a dict but ['descr']"),
        (
            "{'descr', 'shape', 'fortran_order'}",
            "its header is not a dict but {'descr', 'shape', 'fortran_order'}",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "its header has the key 'x'; an .npy header has exactly the keys 'descr', 'fortran_order' and 'shape'",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), b'descr': 1}",
            "its header has the key b'descr'",
        ),
        (
            "{'descr': '<f8', 'shape': (1,)}",
            "its header lacks one of the keys 'descr', 'fortran_order' and 'shape'",
        ),
        ("{}", "its header lacks one of the keys"),
        (
            "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}",
            "its header's fortran_order 0 is not True or False",
        ),
        (
            "{'descr': '<f8', 'fortran_order': None, 'shape': (1,)}",
            "its header's fortran_order None is not True or False",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': [1]}",
            "its header's shape [1] is not a tuple of integers",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1)}",
            "its header's shape 1 is not a tuple of integers",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1.0,)}",
            "its header's shape (1.0,) is not a tuple of integers",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1e0, 2j)}",
            "its header's shape (1.0, 2.0j) is not a tuple of integers",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (True, 3)}",
            "its header's shape (True, 3) is not a tuple of integers",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, -1)}",
            "its shape (2, -1) has a negative dimension",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-99999999999999999999999999999999999999999,)}",
            "has a negative dimension",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551616,)}",
            "its shape (18446744073709551616,) has a dimension too large for this machine",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999999999999999999999,)}",
            "has a dimension too large for this machine",
        ),
    ];
    for (dict, reason) in cases {
        let e = refusal(1, dict);
        assert!(e.contains(reason), "{dict}: {e}");
    }
    // Long values are cut short in messages.
    let e = refusal(1, &with_shape(&format!("[{}]", "12345, ".repeat(1000))));
    assert!(e.ends_with(", 123... is not a tuple of integers"), "{e}");
    assert!(e.len() < 300, "{e}");
}

#[test]
fn at_most_64_dimensions() {
    let dims = |n: usize| format!("({})", vec!["1"; n].join(", ") + ",");
    assert_eq!(shape_of(&with_shape(&dims(64))).len(), 64);
    assert_eq!(
        refusal(1, &with_shape(&dims(65))),
        "its shape has 65 dimensions; NumPy supports at most 64"
    );
    assert!(refusal(2, &with_shape(&dims(1000))).contains("1000 dimensions"));
}

#[test]
fn headers_longer_than_numpy_reads_are_refused() {
    // 10,000 characters exactly is fine, one more is not, in every version.
    for v in [1u8, 2, 3] {
        let dict = with_shape("(1,)");
        let mut text = dict.clone().into_bytes();
        text.resize(MAX_HEADER_LEN - 1, b' ');
        text.push(b'\n');
        assert!(parse(&raw(v, &text)).is_ok());
        text.insert(dict.len(), b' ');
        assert_eq!(
            parse(&raw(v, &text)),
            Err(HeaderError::TooLong { len: 10_001 })
        );
    }
    assert_eq!(
        HeaderError::TooLong { len: 10_001 }.to_string(),
        "its header is 10001 bytes long, more than the 10000 characters numpy.load reads (its max_header_size)"
    );
    // Version 3.0 counts characters: 10,000 two-byte characters are fine.
    let mut text = with_descr("'x'").into_bytes();
    text.extend(
        " ".repeat(MAX_HEADER_LEN - 1 - with_descr("'x'").len())
            .bytes(),
    );
    text.push(b'\n');
    let s = String::from_utf8(text).unwrap().replacen("'x'", "'é'", 1);
    let h = parse(&raw(3, s.as_bytes())).unwrap();
    assert_eq!(h.descr, Literal::Str("é".into()));
    assert!(parse(&raw(1, s.as_bytes())).is_err());
    // A huge length field with few bytes behind it is cut short; with the bytes, too long.
    let mut huge = MAGIC.to_vec();
    huge.extend([2, 0]);
    huge.extend(u32::MAX.to_le_bytes());
    assert_eq!(parse(&huge), Err(HeaderError::CutShort));
    let mut big = raw(3, &vec![b' '; 50_000]);
    assert_eq!(parse(&big), Err(HeaderError::TooLong { len: 50_000 }));
    big[6] = 1;
    assert!(parse(&big).is_err());
}

/// The attacks of issue 8: exponential backtracking on nested lists (hours at depth 30 in
/// `ndarray-npy`'s parser) and a stack overflow on 5,000 nested tuples. Each is answered at
/// once; the test would hang or abort before the fix.
#[test]
fn hostile_nesting_is_refused_or_parsed_quickly() {
    // 176 bytes: 30 nested lists as the descr parse, as a (structured-looking) descr.
    let lists = format!("{}{}", "[".repeat(30), "]".repeat(30));
    let file = padded(1, &with_descr(&lists));
    assert_eq!(file.len(), 128);
    let h = parse(&file).unwrap();
    assert_eq!(h.descr.to_string(), lists);
    // Unclosed, and in the shape.
    assert!(refusal(1, &with_descr(&"[".repeat(30))).contains("unexpected ','"));
    assert!(refusal(1, &"[".repeat(30)).contains("ends early"));
    assert!(refusal(1, &with_shape(&lists)).contains("is not a tuple"));
    // Deeper than the cap.
    for open in ["[", "(", "{", "{1:"] {
        let deep = open.repeat(40);
        let e = parse_v(1, &with_descr(&deep)).unwrap_err();
        assert!(matches!(e, HeaderError::TooDeep { .. }), "{open}: {e}");
        assert!(
            e.to_string().starts_with("its header nests too deeply"),
            "{e}"
        );
    }
    // 32 levels in all (the dict is one) still parse; 33 do not.
    let depth = |n: usize| with_descr(&format!("{}{}", "[".repeat(n), "]".repeat(n)));
    assert!(parse_v(1, &depth(MAX_NESTING - 1)).is_ok());
    assert!(matches!(
        parse_v(1, &depth(MAX_NESTING)),
        Err(HeaderError::TooDeep { .. })
    ));
    // 3,000 nested tuples fit in 10,000 characters; 5,000 do not.
    let tuples = |n: usize| format!("{}1{}", "(".repeat(n), ",)".repeat(n));
    assert!(matches!(
        parse_v(2, &with_shape(&tuples(3_000))),
        Err(HeaderError::TooDeep { .. })
    ));
    assert!(matches!(
        parse_v(2, &with_shape(&tuples(5_000))),
        Err(HeaderError::TooLong { .. })
    ));
    // Long flat sequences are fine (linear, no recursion).
    let flat = format!("[{}]", "'a', ".repeat(1_900));
    assert!(parse_v(1, &with_descr(&flat)).is_ok());
}

#[test]
fn preamble_errors() {
    let good = padded(1, &with_shape("(1,)"));
    assert_eq!(parse(b""), Err(HeaderError::CutShort));
    assert_eq!(parse(b"\x93NUM"), Err(HeaderError::CutShort));
    assert_eq!(parse(b"hello"), Err(HeaderError::Magic));
    for cut in 0..good.len() {
        assert_eq!(parse(&good[..cut]), Err(HeaderError::CutShort), "{cut}");
    }
    for (major, minor) in [(0, 0), (1, 1), (4, 0), (9, 0)] {
        let mut v = good.clone();
        v[6..8].copy_from_slice(&[major, minor]);
        assert_eq!(parse(&v), Err(HeaderError::Version { major, minor }));
    }
    assert_eq!(
        HeaderError::Version { major: 9, minor: 0 }.to_string(),
        "it uses .npy format version 9.0, which multiproj does not know"
    );
}
