//! Random headers: whatever NumPy writes reads back, and no input (random bytes, token soup,
//! mutated headers) makes the parser panic.

use super::*;
use proptest::prelude::*;

fn descr_strategy() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Str("<f8".into())),
        Just(Literal::Str("<f4".into())),
        Just(Literal::Str("|O".into())),
        "[ -~]{0,8}".prop_map(Literal::Str),
        Just(Literal::List(vec![
            Literal::Tuple(vec![Literal::Str("a".into()), Literal::Str("<f8".into())]),
            Literal::Tuple(vec![
                Literal::Str("b".into()),
                Literal::Str("<i4".into()),
                Literal::Tuple(vec![Literal::Int(2), Literal::Int(3)]),
            ]),
        ])),
    ]
}

proptest! {
    /// Every header NumPy writes reads back exactly: any rank up to 64, both orders,
    /// simple and structured descrs, versions 1.0 and 2.0 (the one it picks, and forced).
    #[test]
    fn numpy_headers_round_trip(
        descr in descr_strategy(),
        fortran in any::<bool>(),
        shape in prop::collection::vec(
            prop_oneof![0usize..10, any::<usize>()], 0..=MAX_DIMS),
        version in 1u8..=3,
        extra_padding in 0usize..200,
    ) {
        let bytes = numpy_style(&descr, fortran, &shape);
        let h = parse(&bytes).unwrap();
        prop_assert_eq!(&h.descr, &descr);
        prop_assert_eq!(h.fortran_order, fortran);
        prop_assert_eq!(&h.shape, &shape);
        prop_assert_eq!(h.data_offset, bytes.len());
        // The same text in another version, with more padding.
        let text = &bytes[10..];
        let mut text = text[..text.len() - 1].to_vec();
        text.resize(text.len() + extra_padding, b' ');
        text.push(b'\n');
        let again = parse(&raw(version, &text)).unwrap();
        prop_assert_eq!((again.descr, again.fortran_order, again.shape), (descr, fortran, shape));
    }

    /// No input panics, and whatever parses is within the limits.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_any(&bytes);
        let mut with_preamble = raw(1, &bytes);
        check_any(&with_preamble);
        with_preamble[6] = 3;
        check_any(&with_preamble);
    }

    /// Python-ish token soup: reaches deep into the parser.
    #[test]
    fn token_soup_never_panics(
        tokens in prop::collection::vec(prop::sample::select(SOUP), 0..80),
        version in 1u8..=3,
    ) {
        let text = tokens.concat();
        check_any(&raw(version, text.as_bytes()));
        let dict = format!("{{'descr': {text}, 'fortran_order': False, 'shape': (1,)}}");
        check_any(&raw(version, dict.as_bytes()));
        let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({text})}}");
        check_any(&raw(version, dict.as_bytes()));
    }

    /// A valid header with one byte changed is parsed or refused, never a panic.
    #[test]
    fn mutated_headers_never_panic(
        shape in prop::collection::vec(0usize..5, 0..4),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = numpy_style(&f8(), false, &shape);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_any(&bytes);
    }
}

const SOUP: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    " ",
    "'descr'",
    "'shape'",
    "'<f8'",
    "True",
    "False",
    "None",
    "1",
    "0x1",
    "0_0",
    "1.5",
    "2j",
    "-",
    "+",
    "L",
    "#",
    "\n",
    "\\\n",
    "'",
    "\"",
    "'''",
    "b'x'",
    "r'\\'",
    "'\\x4",
    "'\\u00e9'",
    "set()",
    "set",
    "_",
    "0",
    "\t",
    "\r",
    "é",
    "\0",
    "*",
    ".",
    "e",
    "1e",
    "l",
];

fn check_any(bytes: &[u8]) {
    match parse(bytes) {
        Ok(h) => {
            assert!(h.shape.len() <= MAX_DIMS);
            assert!(h.data_offset <= bytes.len());
            // What is shown for the descr reads back as the same value.
            let written = numpy_style(&h.descr, h.fortran_order, &h.shape);
            match parse(&written) {
                Ok(again) => {
                    assert_eq!(again.descr, h.descr);
                    assert_eq!(again.shape, h.shape);
                }
                // Escapes (`\xff` for one Latin-1 character) can push it over the limit.
                Err(HeaderError::TooLong { .. }) if written.len() > MAX_HEADER_LEN => {}
                Err(e) => panic!("{h:?} written as NumPy would: {e}"),
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
