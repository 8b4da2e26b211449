//! The `.npy` header parser: the magic string, the format version (1.0, 2.0, 3.0), the header
//! length and the Python dict literal that describes the array — read the way NumPy's
//! `numpy.lib.format` reads it, and unable to hang or overflow the stack on hostile input.
//!
//! NumPy evaluates the header text with `ast.literal_eval` after refusing headers longer than
//! `max_header_size` (10,000 characters by default); then it wants a dict with exactly the keys
//! `'descr'`, `'fortran_order'` (a bool) and `'shape'` (a tuple of ints), and an array of that
//! shape must exist (at most 64 dimensions, none negative). This module accepts the same
//! headers, with the same length cap, and no more: no arithmetic (`(1+1, 3)`), no names but
//! `True`, `False`, `None` and `set()`, no unary sign on anything but a number. What the
//! grammar allows is Python's: `'` and `"` strings (triple-quoted, `r`/`u`/`b` prefixes, every
//! escape but `\N{...}`), implicit string concatenation, decimal/`0x`/`0o`/`0b` integers with
//! underscores, floats and imaginary numbers (only ever refused, as shapes or dtypes), tuples,
//! lists, dicts, sets, trailing commas, comments, line continuations, and — in versions 1.0 and
//! 2.0, whose text is Latin-1 — the Python 2 long suffix `L` that NumPy strips (`(3L, 4L)`).
//!
//! Parsing is linear in the header's length: one pass of a tokenizer, then a parser that keeps
//! its open brackets on an explicit stack instead of recursing, capped at [`MAX_NESTING`]. The
//! cap is far above anything a real dtype needs (a structured dtype nests lists of tuples two
//! levels per field level) and below anything that could hurt; a structured dtype therefore
//! still parses, and is refused later as an unsupported dtype showing its Python literal.
//! (The parser of `ndarray-npy` backtracked exponentially on nested lists and recursed once per
//! bracket: a 176-byte header ran for hours, 5,000 nested tuples overflowed the stack.)
//!
//! Known differences from NumPy, all refusals of headers no writer produces: named escapes
//! `\N{...}` in strings; brackets nested deeper than [`MAX_NESTING`] (Python stops at 200);
//! complex literals written as a sum (`1+2j`, which `literal_eval` evaluates); a form feed
//! followed by spaces before the dict on its first line (which NumPy's Python 2 fallback
//! tokenizer happens to repair).
//!
//! The tokenizer is in `lexer`, the parser in `parser`, the display of literals in `print`.

mod lexer;
mod parser;
mod print;
#[cfg(test)]
mod tests;

pub use print::printable;

use lexer::Text;
use parser::Parser;
use print::shown;
use std::fmt;

/// The first bytes of every `.npy` file.
pub const MAGIC: &[u8] = b"\x93NUMPY";

/// The longest header text NumPy reads by default (`max_header_size` of `numpy.load`), in
/// characters, padding and final newline included.
pub const MAX_HEADER_LEN: usize = 10_000;

/// The most dimensions an array may have (NumPy 2's `NPY_MAXDIMS`).
pub const MAX_DIMS: usize = 64;

/// How deeply brackets may nest in a header.
pub const MAX_NESTING: usize = 32;

/// A parsed and checked `.npy` header.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    /// The format version, `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// The `'descr'` value: a string such as `'<f8'` for a simple dtype, a list of tuples for a
    /// structured one. Which dtypes are usable is the caller's call.
    pub descr: Literal,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Where the data starts: the length of magic string, version, length field and header.
    pub data_offset: usize,
}

/// A Python literal, as `ast.literal_eval` returns it.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Bytes(Vec<u8>),
    Int(i128),
    /// An integer beyond `i128`, kept as its source text (digits, base prefix, sign).
    BigInt(String),
    Float(f64),
    /// An imaginary number such as `2j`.
    Imag(f64),
    Bool(bool),
    None,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
    Set(Vec<Literal>),
}

/// Why a header was refused. [`Display`](fmt::Display) gives the reason as the end of a
/// sentence starting "'x.npy' is not a .npy file: ".
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The bytes do not start with [`MAGIC`].
    Magic,
    /// The bytes end before the header does.
    CutShort,
    /// A format version other than 1.0, 2.0 and 3.0.
    Version { major: u8, minor: u8 },
    /// The header is longer than [`MAX_HEADER_LEN`] characters; `len` is its length in bytes.
    TooLong { len: usize },
    /// Brackets nest deeper than [`MAX_NESTING`].
    TooDeep { at: usize },
    /// The text is not a Python literal `literal_eval` accepts; `at` is the byte offset in the
    /// file.
    Syntax { at: usize, message: String },
    /// A literal, but not a header NumPy reads (not a dict, wrong keys, a bad shape, ...).
    Invalid(String),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Magic => {
                f.write_str("it does not start with the .npy magic string \\x93NUMPY")
            }
            HeaderError::CutShort => f.write_str("its header is cut short"),
            HeaderError::Version { major, minor } => write!(
                f,
                "it uses .npy format version {major}.{minor}, which multiproj does not know"
            ),
            HeaderError::TooLong { len } => write!(
                f,
                "its header is {len} bytes long, more than the {MAX_HEADER_LEN} characters \
                 numpy.load reads (its max_header_size)"
            ),
            HeaderError::TooDeep { at } => write!(
                f,
                "its header nests too deeply (more than {MAX_NESTING} levels of brackets, at \
                 byte {at})"
            ),
            HeaderError::Syntax { at, message } => {
                write!(f, "its header cannot be parsed ({message} at byte {at})")
            }
            HeaderError::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Parses the header at the start of `bytes` (an `.npy` file, or at least its beginning) and
/// checks it as NumPy does. The data is not looked at.
pub fn parse(bytes: &[u8]) -> Result<NpyHeader, HeaderError> {
    if !bytes.starts_with(MAGIC) {
        return Err(if MAGIC.starts_with(bytes) {
            HeaderError::CutShort
        } else {
            HeaderError::Magic
        });
    }
    let rest = &bytes[MAGIC.len()..];
    let Some((&[major, minor], rest)) = rest.split_first_chunk::<2>() else {
        return Err(HeaderError::CutShort);
    };
    let (len_bytes, latin1) = match (major, minor) {
        (1, 0) => (2, true),
        (2, 0) => (4, true),
        (3, 0) => (4, false),
        _ => return Err(HeaderError::Version { major, minor }),
    };
    if rest.len() < len_bytes {
        return Err(HeaderError::CutShort);
    }
    let (len_field, rest) = rest.split_at(len_bytes);
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let start = MAGIC.len() + 2 + len_bytes;
    if rest.len() < header_len {
        return Err(HeaderError::CutShort);
    }
    let raw = &rest[..header_len];
    // NumPy decodes first (Latin-1 or UTF-8), then counts characters. A UTF-8 character is at
    // most 4 bytes, so a longer header cannot be short enough; don't decode it at all.
    if header_len > MAX_HEADER_LEN && (latin1 || header_len > 4 * MAX_HEADER_LEN) {
        return Err(HeaderError::TooLong { len: header_len });
    }
    let text = if latin1 {
        Text::latin1(raw, start)
    } else {
        let s = std::str::from_utf8(raw).map_err(|e| HeaderError::Syntax {
            at: start + e.valid_up_to(),
            message: "a version 3.0 header must be UTF-8, and this one is not".into(),
        })?;
        Text::utf8(s, start)
    };
    if text.chars.len() > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong { len: header_len });
    }
    // Python refuses source text with a NUL anywhere, comments and strings included.
    if let Some(i) = text.chars.iter().position(|&c| c == '\0') {
        return Err(HeaderError::Syntax {
            at: text.offsets[i],
            message: "a NUL character".into(),
        });
    }
    let value = Parser::new(&text, latin1).parse()?;
    let (descr, fortran_order, shape) = check_dict(value)?;
    Ok(NpyHeader {
        version: (major, minor),
        descr,
        fortran_order,
        shape,
        data_offset: start + header_len,
    })
}

/// The header `numpy.save` writes for these values: keys sorted, `repr` values, spare room for
/// the growth axis, spaces and a newline up to a multiple of 64 bytes; version 1.0 when the
/// length fits 16 bits, 2.0 otherwise. For tests and the fuzz target: multiproj writes its
/// headers with `ndarray-npy`.
#[doc(hidden)]
pub fn numpy_style(descr: &Literal, fortran_order: bool, shape: &[usize]) -> Vec<u8> {
    let shape_lit = Literal::Tuple(shape.iter().map(|&d| Literal::Int(d as i128)).collect());
    let order = if fortran_order { "True" } else { "False" };
    let mut dict =
        format!("{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape_lit}, }}");
    // GROWTH_AXIS_MAX_DIGITS: room to rewrite the length of the axis that can grow in place.
    let growth = if fortran_order {
        shape.last()
    } else {
        shape.first()
    };
    if let Some(d) = growth {
        dict.push_str(&" ".repeat(21usize.saturating_sub(d.to_string().len())));
    }
    // NumPy's `_wrap_header`: always some padding, a whole 64 bytes when already aligned.
    let header_len = |len_bytes: usize| {
        let hlen = dict.len() + 1;
        hlen + 64 - (MAGIC.len() + 2 + len_bytes + hlen) % 64
    };
    let (version, len_bytes) = if header_len(2) < 1 << 16 {
        (1, 2)
    } else {
        (2, 4)
    };
    let header_len = header_len(len_bytes);
    let mut out = MAGIC.to_vec();
    out.extend([version, 0]);
    out.extend(&(header_len as u32).to_le_bytes()[..len_bytes]);
    out.extend(dict.bytes());
    out.resize(MAGIC.len() + 2 + len_bytes + header_len - 1, b' ');
    out.push(b'\n');
    out
}

/// NumPy's checks on the evaluated header, in its order.
fn check_dict(value: Literal) -> Result<(Literal, bool, Vec<usize>), HeaderError> {
    let invalid = |s: String| Err(HeaderError::Invalid(s));
    let Literal::Dict(pairs) = value else {
        return invalid(format!("its header is not a dict but {}", shown(&value)));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (key, value) in pairs {
        // A repeated key keeps its last value, as in Python.
        match &key {
            Literal::Str(k) if k == "descr" => descr = Some(value),
            Literal::Str(k) if k == "fortran_order" => fortran = Some(value),
            Literal::Str(k) if k == "shape" => shape = Some(value),
            _ => {
                return invalid(format!(
                    "its header has the key {}; an .npy header has exactly the keys 'descr', \
                     'fortran_order' and 'shape'",
                    shown(&key)
                ));
            }
        }
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return invalid(
            "its header lacks one of the keys 'descr', 'fortran_order' and 'shape'".into(),
        );
    };
    let dims = match &shape {
        // `True` passes NumPy's `isinstance(x, int)`, but NumPy 2 cannot make an array of that
        // shape ("an integer is required"): refused too.
        Literal::Tuple(items)
            if items
                .iter()
                .all(|x| matches!(x, Literal::Int(_) | Literal::BigInt(_))) =>
        {
            items
        }
        _ => {
            return invalid(format!(
                "its header's shape {} is not a tuple of integers",
                shown(&shape)
            ));
        }
    };
    let Literal::Bool(fortran) = fortran else {
        return invalid(format!(
            "its header's fortran_order {} is not True or False",
            shown(&fortran)
        ));
    };
    if dims.len() > MAX_DIMS {
        return invalid(format!(
            "its shape has {} dimensions; NumPy supports at most {MAX_DIMS}",
            dims.len()
        ));
    }
    let mut out = Vec::with_capacity(dims.len());
    for d in dims {
        match d {
            Literal::Int(n) if *n < 0 => {
                return invalid(format!(
                    "its shape {} has a negative dimension",
                    shown(&shape)
                ));
            }
            Literal::Int(n) if usize::try_from(*n).is_ok() => out.push(*n as usize),
            Literal::BigInt(text) if text.starts_with('-') => {
                return invalid(format!(
                    "its shape {} has a negative dimension",
                    shown(&shape)
                ));
            }
            _ => {
                return invalid(format!(
                    "its shape {} has a dimension too large for this machine",
                    shown(&shape)
                ));
            }
        }
    }
    Ok((descr, fortran, out))
}
