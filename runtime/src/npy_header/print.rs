//! Literals and strings shown in messages: [`Literal`] as Python source, `shown` cut short,
//! [`printable`] with control characters escaped.

use super::Literal;
use std::fmt;

/// `value` for a message, cut short after 200 characters.
pub(super) fn shown(value: &Literal) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

/// Writes `s` as a Python string body between `quote`s: the escapes `ndarray-npy`'s formatter
/// (`py_literal`) used, so that messages showing a structured dtype read as before, plus
/// `\xNN` for every other control character so that none reaches a terminal raw.
fn write_escaped(f: &mut fmt::Formatter<'_>, chars: impl Iterator<Item = char>) -> fmt::Result {
    for c in chars {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\r' => f.write_str("\\r")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\'' => f.write_str("\\'")?,
            c if c.is_ascii() && !c.is_ascii_control() => write!(f, "{c}")?,
            c => match c as u32 {
                n @ 0..=0xff => write!(f, "\\x{n:02x}")?,
                n @ 0..=0xffff => write!(f, "\\u{n:04x}")?,
                n => write!(f, "\\U{n:08x}")?,
            },
        }
    }
    Ok(())
}

/// `s` for a message: unchanged unless it holds control characters, which are escaped.
pub fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_owned()
    }
}

fn write_seq(f: &mut fmt::Formatter<'_>, items: &[Literal]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// The literal as Python source that reads back as the same value (recursion is bounded by
/// [`MAX_NESTING`](super::MAX_NESTING)).
impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => {
                f.write_str("'")?;
                write_escaped(f, s.chars())?;
                f.write_str("'")
            }
            Literal::Bytes(b) => {
                f.write_str("b'")?;
                write_escaped(f, b.iter().map(|&b| char::from(b)))?;
                f.write_str("'")
            }
            Literal::Int(n) => write!(f, "{n}"),
            Literal::BigInt(s) => f.write_str(s),
            Literal::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "1e999" } else { "-1e999" })
            }
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Imag(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "1e999j" } else { "-1e999j" })
            }
            Literal::Imag(x) => write!(f, "{x:?}j"),
            Literal::Bool(true) => f.write_str("True"),
            Literal::Bool(false) => f.write_str("False"),
            Literal::None => f.write_str("None"),
            Literal::Tuple(items) => {
                f.write_str("(")?;
                write_seq(f, items)?;
                f.write_str(if items.len() == 1 { ",)" } else { ")" })
            }
            Literal::List(items) => {
                f.write_str("[")?;
                write_seq(f, items)?;
                f.write_str("]")
            }
            Literal::Set(items) if items.is_empty() => f.write_str("set()"),
            Literal::Set(items) => {
                f.write_str("{")?;
                write_seq(f, items)?;
                f.write_str("}")
            }
            Literal::Dict(pairs) => {
                f.write_str("{")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}
