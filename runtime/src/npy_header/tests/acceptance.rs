//! Headers that are read: what NumPy writes, all three versions, and every spelling Python
//! allows for integers, strings, other literals and the layout of the dict.

use super::*;

#[test]
fn reads_what_numpy_writes() {
    // Byte for byte what NumPy 2.4's np.save writes.
    let h = parse(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }                                                          \n").unwrap();
    assert_eq!(
        h,
        NpyHeader {
            version: (1, 0),
            descr: f8(),
            fortran_order: false,
            shape: vec![3, 4],
            data_offset: 128,
        }
    );
    let h = parse(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': True, 'shape': (2, 5), }                                                           \n").unwrap();
    assert_eq!(
        (h.descr, h.fortran_order, h.shape),
        (Literal::Str("<f4".into()), true, vec![2, 5])
    );
    let h = parse(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (), }                                                              \n").unwrap();
    assert_eq!(h.shape, Vec::<usize>::new());
    // The same bytes from `numpy_style`.
    assert_eq!(
        numpy_style(&f8(), false, &[3, 4]),
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }                                                          \n"
    );
    assert_eq!(numpy_style(&f8(), false, &[1; 64]).len(), 320);
    // Data after the header is not looked at.
    let mut with_data = numpy_style(&f8(), true, &[7]);
    with_data.extend([0xff; 56]);
    assert_eq!(parse(&with_data).unwrap().data_offset, 128);
}

#[test]
fn all_three_versions() {
    let dict = with_shape("(2, 3)");
    for v in [1, 2, 3] {
        let h = parse_v(v, &dict).unwrap();
        assert_eq!(h.version, (v, 0));
        assert_eq!(h.shape, [2, 3]);
        assert_eq!(h.data_offset % 64, 0);
    }
    // Latin-1 in versions 1.0 and 2.0, UTF-8 in 3.0: in strings and comments.
    let mut latin1 = with_descr("'<f8'").into_bytes();
    latin1.extend(b" # caf\xe9\n");
    assert_eq!(parse(&raw(1, &latin1)).unwrap().descr, f8());
    assert_eq!(
        parse(&raw(
            2,
            b"{'descr': '\xe9', 'fortran_order': False, 'shape': (1,)}"
        ))
        .unwrap()
        .descr,
        Literal::Str("\u{e9}".into())
    );
    let utf8 = with_descr("'<f8'") + " # café ✓\n";
    assert_eq!(parse(&raw(3, utf8.as_bytes())).unwrap().descr, f8());
    assert_eq!(
        parse(&raw(
            3,
            "{'descr': 'ü', 'fortran_order': False, 'shape': (1,)}".as_bytes()
        ))
        .unwrap()
        .descr,
        Literal::Str("ü".into())
    );
    let e = parse(&raw(3, &latin1)).unwrap_err();
    assert!(e.to_string().contains("must be UTF-8"), "{e}");
}

#[test]
fn integer_forms() {
    for (text, dims) in [
        ("(1,)", vec![1]),
        ("(1, 2)", vec![1, 2]),
        ("(1 ,2 )", vec![1, 2]),
        ("( 1 , ) ", vec![1]),
        ("((1),)", vec![1]),
        ("(+1,)", vec![1]),
        ("(- 0,)", vec![0]),
        (
            "(0x1f, 0X1, 0o10, 0O7, 0b101, 0B1)",
            vec![31, 1, 8, 7, 5, 1],
        ),
        ("(0x_1, 0b_1, 0o1_0)", vec![1, 1, 8]),
        ("(1_000, 00, 0_0, 0)", vec![1000, 0, 0, 0]),
        ("(18446744073709551615,)", vec![usize::MAX]),
        ("()", vec![]),
        ("(\n1,\n2\n)", vec![1, 2]),
        ("(1 # one\n, 2)", vec![1, 2]),
        ("(1,\\\n 2)", vec![1, 2]),
    ] {
        assert_eq!(shape_of(&with_shape(text)), dims, "{text}");
    }
}

#[test]
fn python_2_long_suffixes_in_versions_1_and_2_only() {
    for text in ["(1L, 2L)", "(1 L, 2)", "(1 L L,)", "(0xfL,)", "(1 \\\n L,)"] {
        let dict = with_shape(text);
        assert!(parse_v(1, &dict).is_ok(), "{text}");
        assert!(parse_v(2, &dict).is_ok(), "{text}");
        assert!(parse_v(3, &dict).is_err(), "{text}");
    }
    assert_eq!(shape_of(&with_shape("(3L, 0xfL)")), [3, 15]);
    // Only an `L` right after a number (NumPy's filter works on tokens).
    for text in [
        "(1l,)",
        "(1LL,)",
        "(1 #\n L,)",
        "(1 \n L,)",
        "(1,) L",
        "(1, L)",
    ] {
        refused_with(&with_shape(text), "cannot be parsed");
    }
    refused_with(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }L",
        "cannot be parsed",
    );
    refused_with(&with_shape("(1.5L,)"), "is not a tuple of integers");
}

#[test]
fn string_forms() {
    for descr in [
        "'<f8'",
        "\"<f8\"",
        "'''<f8'''",
        "\"\"\"<f8\"\"\"",
        "r'<f8'",
        "R'<f8'",
        "u'<f8'",
        "U\"<f8\"",
        "'<' 'f8'",
        "'<'\n\"f\" '''8'''",
        "'\\x3cf8'",
        "'<f\\70'",
        "'<f\\u0038'",
        "'<f\\U00000038'",
        "'<\\\nf8'",
        "('<f8')",
        "(('<f8'))",
    ] {
        assert_eq!(descr_of(&with_descr(descr)), f8(), "{descr}");
    }
    for (descr, value) in [
        ("'a\\'b'", "a'b"),
        ("\"a\\\"b\"", "a\"b"),
        ("'\\a\\b\\f\\n\\r\\t\\v\\\\'", "\x07\x08\x0c\n\r\t\x0b\\"),
        ("'\\q'", "\\q"),
        ("'\\777'", "\u{1ff}"),
        ("r'\\n\\''", "\\n\\'"),
        ("'''a\nb'c'''", "a\nb'c"),
        ("'''a\r\nb'''", "a\nb"),
        ("'\\ud800'", "\u{fffd}"),
        ("''", ""),
    ] {
        assert_eq!(
            descr_of(&with_descr(descr)),
            Literal::Str(value.into()),
            "{descr}"
        );
    }
    for (descr, value) in [
        ("b'<f8'", &b"<f8"[..]),
        ("rb'\\x'", b"\\x"),
        ("Br'a'", b"a"),
        ("b'\\xff\\777\\u0041'", b"\xff\xff\\u0041"),
        ("b'a' b'b'", b"ab"),
    ] {
        assert_eq!(
            descr_of(&with_descr(descr)),
            Literal::Bytes(value.to_vec()),
            "{descr}"
        );
    }
    // The key, too, may be spelled any way Python allows.
    assert!(
        parse_v(
            1,
            "{\"descr\": '<f8', 'fortran_' r'order': False, u'shape': (1,)}"
        )
        .is_ok()
    );
}

#[test]
fn other_literals_parse_as_descr() {
    for (text, literal) in [
        ("[('a', '<f8'), ('b', '<i4', (2, 3))]", None),
        ("[]", None),
        ("{}", None),
        ("{'names': ['a'], 'formats': ['<f8']}", None),
        ("{1, 2,}", Some("{1, 2}")),
        ("set()", None),
        ("set ( )", Some("set()")),
        ("None", None),
        ("True", None),
        ("1.5", None),
        ("-2.5e-3", Some("-0.0025")),
        ("1e999", None),
        ("2j", Some("2.0j")),
        ("-1_0.0_1J", Some("-10.01j")),
        (".5", Some("0.5")),
        ("1.", Some("1.0")),
        ("1.e2", Some("100.0")),
        ("07.5", Some("7.5")),
        ("99999999999999999999999999999999999999999", None),
        (
            "-0x7_fffffffffffffffffffffffffffffffffffffff",
            Some("-0x7fffffffffffffffffffffffffffffffffffffff"),
        ),
        ("(1,)", None),
        ("()", None),
        ("('a', [1, {2: 3}])", None),
    ] {
        let descr = descr_of(&with_descr(text));
        let shown = descr.to_string();
        assert_eq!(shown, literal.unwrap_or(text), "{text}");
        // What is shown reads back as the same value.
        assert_eq!(descr_of(&with_descr(&shown)), descr, "{text}");
    }
    // Control characters are escaped when shown.
    let descr = descr_of(&with_descr("'\\x1b[31m\\t'"));
    assert_eq!(descr.to_string(), "'\\x1b[31m\\t'");
    assert_eq!(printable("\x1b[31m"), "\\u{1b}[31m");
    assert_eq!(printable(">f8"), ">f8");
}

#[test]
fn layout_forms() {
    let dict = |rest: &str| format!("{{'descr': '<f8', 'shape': (1,), {rest}}}");
    assert!(
        parse_v(1, &dict("'fortran_order': True"))
            .unwrap()
            .fortran_order
    );
    assert!(
        !parse_v(1, &dict("'fortran_order': (False),"))
            .unwrap()
            .fortran_order
    );
    for text in [
        // No trailing comma, no padding, no newline, odd whitespace and comments.
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
        "  \t{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
        "\n{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
        "# comment\n{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
        "\x0c\n{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
        "\\\n{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f8',\r'fortran_order': False,\r\n'shape': (1,)}\r",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} # c\n#d",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}\n \t \x0c",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}\\\n  ",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}#\\",
        "({'descr': '<f8', 'fortran_order': False, 'shape': (1,)})",
        "{\n  'descr': '<f8',\n  'fortran_order': False,\n  'shape': (1,),\n}",
        // A repeated key keeps its last value, as in a Python dict.
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'descr': '<f8'}",
    ] {
        let h = parse(&raw(1, text.as_bytes())).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!((h.descr, h.shape), (f8(), vec![1]), "{text:?}");
    }
}
