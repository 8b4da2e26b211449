//! Feeds arbitrary UTF-8 to the spec parser. Beyond "never panics", it checks what the
//! property tests check, on inputs no strategy would think of: an error points at a span inside
//! the text on character boundaries, and an accepted spec survives its canonical round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The parser takes `&str`; invalid UTF-8 is rejected before it (by the CLI's argument
    // handling), so it is not the parser's to handle.
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match multiproj_grammar::parse(src) {
        Ok(spec) => {
            let canonical = spec.canonical();
            let again = match multiproj_grammar::parse(&canonical) {
                Ok(again) => again,
                Err(err) => panic!("canonical text {canonical:?} of {src:?} does not parse: {err}"),
            };
            assert_eq!(
                again.canonical(),
                canonical,
                "canonical text is not a fixed point"
            );
            assert_eq!(again.levels.len(), spec.levels.len());
            let _ = spec.to_string();
        }
        Err(err) => {
            let span = err.span();
            assert!(
                span.start <= span.end && span.end <= src.len(),
                "{span} out of {src:?}"
            );
            assert!(src.is_char_boundary(span.start) && src.is_char_boundary(span.end));
            assert!(!err.message().is_empty());
        }
    }
});
