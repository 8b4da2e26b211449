//! The tokenizer: the header text as characters ([`Text`]), and Python's tokens read from it
//! one at a time ([`Lexer`]), skipping whitespace, comments and line continuations.

use super::{HeaderError, Literal};
use std::fmt;

/// The header text as characters, with the byte offset in the file of each (and of the end).
pub(super) struct Text {
    pub(super) chars: Vec<char>,
    pub(super) offsets: Vec<usize>,
}

impl Text {
    pub(super) fn latin1(raw: &[u8], start: usize) -> Self {
        Text {
            chars: raw.iter().map(|&b| char::from(b)).collect(),
            offsets: (start..=start + raw.len()).collect(),
        }
    }

    pub(super) fn utf8(s: &str, start: usize) -> Self {
        let mut offsets: Vec<usize> = s.char_indices().map(|(i, _)| start + i).collect();
        offsets.push(start + s.len());
        Text {
            chars: s.chars().collect(),
            offsets,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bracket {
    Paren,
    Square,
    Curly,
}

#[derive(Debug, PartialEq)]
pub(super) enum Tok {
    Open(Bracket),
    Close(Bracket),
    Comma,
    Colon,
    Sign(char),
    /// An operator or delimiter that has no place in a literal (`*`, `=`, `.`, ...).
    Other(char),
    Number(Literal),
    Str(String),
    Bytes(Vec<u8>),
    Name(String),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = |b: &Bracket, open| match (b, open) {
            (Bracket::Paren, true) => '(',
            (Bracket::Paren, false) => ')',
            (Bracket::Square, true) => '[',
            (Bracket::Square, false) => ']',
            (Bracket::Curly, true) => '{',
            (Bracket::Curly, false) => '}',
        };
        match self {
            Tok::Open(b) => write!(f, "'{}'", bracket(b, true)),
            Tok::Close(b) => write!(f, "'{}'", bracket(b, false)),
            Tok::Comma => f.write_str("','"),
            Tok::Colon => f.write_str("':'"),
            Tok::Sign(c) | Tok::Other(c) => write!(f, "{c:?}"),
            Tok::Number(n) => write!(f, "number {n}"),
            Tok::Str(_) | Tok::Bytes(_) => f.write_str("string"),
            Tok::Name(n) => write!(f, "the name {n:?}"),
            Tok::End => f.write_str("the end of the header"),
        }
    }
}

/// One Python token at a time, skipping whitespace, comments and line continuations.
pub(super) struct Lexer<'t> {
    pub(super) text: &'t Text,
    pub(super) pos: usize,
    /// Versions 1.0 and 2.0: drop a name `L` after a number, as NumPy's `_filter_header` does.
    pub(super) drop_long_suffix: bool,
    /// No token yet: the expression may not be indented (Python's "unexpected indent").
    pub(super) first: bool,
}

pub(super) type Lexed = Result<(Tok, usize), HeaderError>;

impl<'t> Lexer<'t> {
    fn peek_at(&self, k: usize) -> Option<char> {
        self.text.chars.get(self.pos + k).copied()
    }

    pub(super) fn at(&self, pos: usize) -> usize {
        self.text.offsets[pos.min(self.text.chars.len())]
    }

    pub(super) fn error<T>(
        &self,
        pos: usize,
        message: impl Into<String>,
    ) -> Result<T, HeaderError> {
        Err(HeaderError::Syntax {
            at: self.at(pos),
            message: message.into(),
        })
    }

    /// The length of the newline at `pos` (`\n`, `\r\n`, `\r`), or 0.
    fn newline_at(&self, pos: usize) -> usize {
        match (self.text.chars.get(pos), self.text.chars.get(pos + 1)) {
            (Some('\r'), Some('\n')) => 2,
            (Some('\n' | '\r'), _) => 1,
            _ => 0,
        }
    }

    /// Skips to the next token. Before the first one, counts the indentation of its line:
    /// `literal_eval` strips spaces and tabs at the very start, but an indented later line is
    /// a syntax error; a form feed resets the count, as in Python's tokenizer.
    fn skip_trivia(&mut self) -> Result<(), HeaderError> {
        let mut indent = 0;
        if self.first {
            while matches!(self.peek_at(0), Some(' ' | '\t')) {
                self.pos += 1;
            }
        }
        loop {
            match self.peek_at(0) {
                Some(' ' | '\t') => {
                    indent += 1;
                    self.pos += 1;
                }
                Some('\x0c') => {
                    indent = 0;
                    self.pos += 1;
                }
                Some('\n' | '\r') => {
                    indent = 0;
                    self.pos += self.newline_at(self.pos);
                }
                Some('#') => {
                    while !matches!(self.peek_at(0), None | Some('\n' | '\r')) {
                        self.pos += 1;
                    }
                }
                Some('\\') => {
                    let nl = self.newline_at(self.pos + 1);
                    if nl == 0 {
                        return self.error(self.pos, "a backslash outside a string");
                    }
                    if self.pos + 1 + nl == self.text.chars.len() {
                        return self.error(self.pos, "a line continuation at the end");
                    }
                    indent = 0;
                    self.pos += 1 + nl;
                }
                Some(_) if self.first && indent > 0 => {
                    return self.error(self.pos, "an indented dict");
                }
                _ => return Ok(()),
            }
        }
    }

    pub(super) fn next(&mut self) -> Lexed {
        self.skip_trivia()?;
        self.first = false;
        let start = self.pos;
        let Some(c) = self.peek_at(0) else {
            return Ok((Tok::End, start));
        };
        let tok = match c {
            '(' | '[' | '{' | ')' | ']' | '}' => {
                self.pos += 1;
                let b = match c {
                    '(' | ')' => Bracket::Paren,
                    '[' | ']' => Bracket::Square,
                    _ => Bracket::Curly,
                };
                if matches!(c, '(' | '[' | '{') {
                    Tok::Open(b)
                } else {
                    Tok::Close(b)
                }
            }
            ',' => {
                self.pos += 1;
                Tok::Comma
            }
            ':' => {
                self.pos += 1;
                Tok::Colon
            }
            '+' | '-' => {
                self.pos += 1;
                Tok::Sign(c)
            }
            '0'..='9' => self.number()?,
            '.' if matches!(self.peek_at(1), Some('0'..='9')) => self.number()?,
            '\'' | '"' => self.string(false, false, false)?,
            'a'..='z' | 'A'..='Z' | '_' => {
                while matches!(
                    self.peek_at(0),
                    Some('a'..='z' | 'A'..='Z' | '0'..='9' | '_')
                ) {
                    self.pos += 1;
                }
                let name: String = self.text.chars[start..self.pos].iter().collect();
                if matches!(self.peek_at(0), Some('\'' | '"')) {
                    match name.to_ascii_lowercase().as_str() {
                        "r" => self.string(true, false, false)?,
                        "u" => self.string(false, false, false)?,
                        "b" => self.string(false, true, false)?,
                        "br" | "rb" => self.string(true, true, false)?,
                        "f" | "fr" | "rf" => self.string(false, false, true)?,
                        _ => Tok::Name(name),
                    }
                } else {
                    Tok::Name(name)
                }
            }
            '\0' => return self.error(start, "a NUL character"),
            c if c.is_ascii_graphic() => {
                self.pos += 1;
                Tok::Other(c)
            }
            c => return self.error(start, format!("the character {c:?}")),
        };
        if self.drop_long_suffix && matches!(tok, Tok::Number(_)) {
            self.skip_long_suffixes();
        }
        Ok((tok, start))
    }

    /// Skips names `L` separated from the number before them by blanks or line continuations
    /// only (the tokens NumPy's `_filter_header` drops; a comment or newline in between is a
    /// token of its own and ends the run).
    fn skip_long_suffixes(&mut self) {
        loop {
            let mut p = self.pos;
            loop {
                match self.text.chars.get(p) {
                    Some(' ' | '\t' | '\x0c') => p += 1,
                    Some('\\') if self.newline_at(p + 1) > 0 => p += 1 + self.newline_at(p + 1),
                    _ => break,
                }
            }
            let is_name_char = |c: Option<&char>| {
                matches!(
                    c,
                    Some('a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '\'' | '"')
                )
            };
            if self.text.chars.get(p) == Some(&'L') && !is_name_char(self.text.chars.get(p + 1)) {
                self.pos = p + 1;
            } else {
                return;
            }
        }
    }

    /// Consumes `("_"? digit)*` in `radix`; a `_` must sit between two digits.
    fn digits(&mut self, radix: u32) -> Result<String, HeaderError> {
        let mut out = String::new();
        loop {
            match self.peek_at(0) {
                Some(c) if c.is_digit(radix) => {
                    out.push(c);
                    self.pos += 1;
                }
                Some('_') if !out.is_empty() || radix != 10 => {
                    if !self.peek_at(1).is_some_and(|c| c.is_digit(radix)) {
                        return self.error(self.pos, "an invalid number");
                    }
                    self.pos += 1;
                }
                _ => return Ok(out),
            }
        }
    }

    fn number(&mut self) -> Result<Tok, HeaderError> {
        let start = self.pos;
        let radix = match (self.peek_at(0), self.peek_at(1)) {
            (Some('0'), Some('x' | 'X')) => 16,
            (Some('0'), Some('o' | 'O')) => 8,
            (Some('0'), Some('b' | 'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.pos += 2;
            let digits = self.digits(radix)?;
            if digits.is_empty() {
                return self.error(start, "an invalid number");
            }
            return Ok(Tok::Number(int_literal(&digits, radix, || {
                self.text.chars[start..self.pos]
                    .iter()
                    .filter(|&&c| c != '_')
                    .collect()
            })));
        }
        let int_part = self.digits(10)?;
        let mut float = String::from(&int_part);
        let mut is_float = false;
        if self.peek_at(0) == Some('.') {
            is_float = true;
            self.pos += 1;
            float.push('.');
            if self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                float.push_str(&self.digits(10)?);
            }
        }
        if matches!(self.peek_at(0), Some('e' | 'E')) {
            let sign = matches!(self.peek_at(1), Some('+' | '-'));
            let digit_at = if sign { 2 } else { 1 };
            if self.peek_at(digit_at).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                float.push('e');
                if sign {
                    float.push(self.peek_at(1).unwrap_or('+'));
                }
                self.pos += digit_at;
                float.push_str(&self.digits(10)?);
            }
        }
        let imag = matches!(self.peek_at(0), Some('j' | 'J'));
        if imag {
            self.pos += 1;
        }
        if is_float || imag {
            let Ok(x) = float.parse::<f64>() else {
                return self.error(start, "an invalid number");
            };
            return Ok(Tok::Number(if imag {
                Literal::Imag(x)
            } else {
                Literal::Float(x)
            }));
        }
        if int_part.starts_with('0') && int_part.bytes().any(|b| b != b'0') {
            return self.error(start, "a decimal integer with a leading zero");
        }
        Ok(Tok::Number(int_literal(&int_part, 10, || int_part.clone())))
    }

    /// A string or bytes literal starting at the quote at `self.pos`.
    fn string(&mut self, raw: bool, bytes: bool, fstring: bool) -> Result<Tok, HeaderError> {
        let start = self.pos;
        if fstring {
            return self.error(start, "an f-string, which is not a literal");
        }
        let quote = self.peek_at(0).unwrap_or('\'');
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut out = String::new();
        let unterminated = |l: &Self| l.error::<Tok>(start, "an unterminated string");
        loop {
            let Some(c) = self.peek_at(0) else {
                return unterminated(self);
            };
            let here = self.pos;
            self.pos += 1;
            match c {
                '\0' => return self.error(here, "a NUL character"),
                c if c == quote => {
                    if !triple {
                        break;
                    }
                    if self.peek_at(0) == Some(quote) && self.peek_at(1) == Some(quote) {
                        self.pos += 2;
                        break;
                    }
                    out.push(c);
                }
                '\n' | '\r' => {
                    if !triple {
                        return unterminated(self);
                    }
                    self.pos = here + self.newline_at(here);
                    out.push('\n');
                }
                '\\' => {
                    let Some(e) = self.peek_at(0) else {
                        return unterminated(self);
                    };
                    let nl = self.newline_at(self.pos);
                    if raw {
                        out.push('\\');
                        if nl > 0 {
                            self.pos += nl;
                            out.push('\n');
                        } else {
                            self.pos += 1;
                            out.push(e);
                        }
                        continue;
                    }
                    if nl > 0 {
                        self.pos += nl;
                        continue;
                    }
                    self.pos += 1;
                    match e {
                        '\\' | '\'' | '"' => out.push(e),
                        'a' => out.push('\x07'),
                        'b' => out.push('\x08'),
                        'f' => out.push('\x0c'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\x0b'),
                        '0'..='7' => {
                            let mut v = e.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                match self.peek_at(0).and_then(|c| c.to_digit(8)) {
                                    Some(d) => {
                                        v = v * 8 + d;
                                        self.pos += 1;
                                    }
                                    None => break,
                                }
                            }
                            // Bytes keep the low 8 bits of `\777`, as Python 3.11 does.
                            let v = if bytes { v & 0xff } else { v };
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        }
                        'x' => out.push(self.hex_escape(here, 2)?),
                        'u' if !bytes => out.push(self.hex_escape(here, 4)?),
                        'U' if !bytes => out.push(self.hex_escape(here, 8)?),
                        'N' if !bytes => {
                            return self.error(
                                here,
                                "a named escape \\N{...}, which multiproj does not read",
                            );
                        }
                        e => {
                            if bytes && !e.is_ascii() {
                                return self.error(here + 1, "a non-ASCII character in bytes");
                            }
                            out.push('\\');
                            out.push(e);
                        }
                    }
                }
                c if bytes && !c.is_ascii() => {
                    return self.error(here, "a non-ASCII character in bytes");
                }
                c => out.push(c),
            }
        }
        Ok(if bytes {
            // Every char is ASCII or an escape below 256.
            Tok::Bytes(out.chars().map(|c| c as u32 as u8).collect())
        } else {
            Tok::Str(out)
        })
    }

    /// The `n` hex digits of a `\x`, `\u` or `\U` escape starting at `escape`.
    fn hex_escape(&mut self, escape: usize, n: usize) -> Result<char, HeaderError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            match self.peek_at(0).and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.pos += 1;
                }
                None => return self.error(escape, "a truncated escape"),
            }
        }
        if v > 0x10_ffff {
            return self.error(escape, "an escape beyond U+10FFFF");
        }
        // Python strings may hold lone surrogates; Rust's cannot. Only ever shown in a message.
        Ok(char::from_u32(v).unwrap_or('\u{fffd}'))
    }
}

/// An integer from its digits; `source` gives the text kept when it exceeds `i128`.
fn int_literal(digits: &str, radix: u32, source: impl FnOnce() -> String) -> Literal {
    match i128::from_str_radix(digits, radix) {
        Ok(n) => Literal::Int(n),
        Err(_) => Literal::BigInt(source()),
    }
}
