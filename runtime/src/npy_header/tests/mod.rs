//! Tests of the header parser, by theme: what is accepted (`acceptance`), what is refused
//! (`refusals`), random headers and bytes (`properties`), and the verdicts of `numpy.load`
//! itself (`numpy_differential`). The helpers building headers are here.

use super::*;

mod acceptance;
mod numpy_differential;
mod properties;
mod refusals;

/// A file start with header text `text` in format `version` (1, 2 or 3), unpadded.
fn raw(version: u8, text: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((text.len() as u16).to_le_bytes());
    } else {
        out.extend((text.len() as u32).to_le_bytes());
    }
    out.extend(text);
    out
}

/// `dict` as NumPy pads it: spaces and a newline up to a multiple of 64 bytes.
fn padded(version: u8, dict: &str) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut text = dict.as_bytes().to_vec();
    text.resize(
        text.len() + (64 - (prefix + text.len() + 1) % 64) % 64,
        b' ',
    );
    text.push(b'\n');
    raw(version, &text)
}

fn parse_v(version: u8, dict: &str) -> Result<NpyHeader, HeaderError> {
    parse(&padded(version, dict))
}

/// `{'descr': '<f8', 'fortran_order': False, 'shape': SHAPE, }`.
fn with_shape(shape: &str) -> String {
    format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}")
}

fn with_descr(descr: &str) -> String {
    format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}")
}

#[track_caller]
fn shape_of(dict: &str) -> Vec<usize> {
    match parse_v(1, dict) {
        Ok(h) => h.shape,
        Err(e) => panic!("{dict:?}: {e}"),
    }
}

#[track_caller]
fn descr_of(dict: &str) -> Literal {
    match parse_v(1, dict) {
        Ok(h) => h.descr,
        Err(e) => panic!("{dict:?}: {e}"),
    }
}

#[track_caller]
fn refusal(version: u8, dict: &str) -> String {
    match parse_v(version, dict) {
        Ok(h) => panic!("{dict:?} was accepted: {h:?}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn refused_with(dict: &str, reason: &str) {
    let e = refusal(1, dict);
    assert!(e.contains(reason), "{dict:?}: {e}");
}

fn f8() -> Literal {
    Literal::Str("<f8".into())
}
