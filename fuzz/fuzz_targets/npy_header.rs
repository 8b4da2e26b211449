//! Feeds arbitrary bytes to the `.npy` header parser. Beyond "never panics, never hangs, never
//! overflows the stack" (what the hostile headers of issue 8 did to the parser before it), it
//! checks what the property tests check, on inputs no strategy would think of: an accepted
//! header is within NumPy's limits, and the header NumPy would write for the same values parses
//! back to them (so the descr shown in messages is a faithful Python literal).

#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproj_runtime::npy_header::{self, MAX_DIMS, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    // Mostly past the preamble: the fuzzer mutates the header text, not the magic string.
    let mut file = Vec::with_capacity(data.len() + 12);
    match data.split_first() {
        Some((&v, text)) if v < 0xf0 => {
            file.extend(npy_header::MAGIC);
            let version = 1 + v % 3;
            file.extend([version, 0]);
            if version == 1 {
                file.extend((text.len() as u16).to_le_bytes());
            } else {
                file.extend((text.len() as u32).to_le_bytes());
            }
            file.extend(text);
        }
        _ => file.extend(data),
    }
    match npy_header::parse(&file) {
        Ok(h) => {
            assert!(h.shape.len() <= MAX_DIMS);
            assert!(h.data_offset <= file.len());
            assert!(h.data_offset <= 12 + 4 * MAX_HEADER_LEN);
            let again = npy_header::numpy_style(&h.descr, h.fortran_order, &h.shape);
            let back = match npy_header::parse(&again) {
                Ok(back) => back,
                // Escapes (`\xff` for one Latin-1 character) can push it over the limit.
                Err(npy_header::HeaderError::TooLong { .. }) if again.len() > MAX_HEADER_LEN => {
                    return;
                }
                Err(e) => panic!("{h:?} written as NumPy would does not parse: {e}"),
            };
            assert_eq!(back.descr, h.descr);
            assert_eq!(back.fortran_order, h.fortran_order);
            assert_eq!(back.shape, h.shape);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
