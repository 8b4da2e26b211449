//! The parser: one Python literal from the lexer's tokens, with the open brackets on an
//! explicit stack ([`Frame`]) instead of recursion.

use super::lexer::{Bracket, Lexed, Lexer, Text, Tok};
use super::{HeaderError, Literal, MAX_NESTING};

/// An open bracket and what has been read inside it.
enum Frame {
    /// `(`: a tuple, or a parenthesized value if no comma follows the first item.
    Paren {
        items: Vec<Literal>,
        comma: bool,
    },
    List(Vec<Literal>),
    /// `{` with nothing in it yet: a dict or a set.
    Brace,
    Dict {
        pairs: Vec<(Literal, Literal)>,
        key: Option<Literal>,
    },
    Set(Vec<Literal>),
}

/// A parser for one Python literal, with an explicit stack of open brackets.
pub(super) struct Parser<'t> {
    lexer: Lexer<'t>,
    peeked: Option<(Tok, usize)>,
}

impl<'t> Parser<'t> {
    pub(super) fn new(text: &'t Text, drop_long_suffix: bool) -> Self {
        Parser {
            lexer: Lexer {
                text,
                pos: 0,
                drop_long_suffix,
                first: true,
            },
            peeked: None,
        }
    }

    fn next(&mut self) -> Lexed {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    fn unexpected<T>(&self, tok: &Tok, at: usize) -> Result<T, HeaderError> {
        let message = match tok {
            Tok::Sign(c) => format!("arithmetic ({c:?}), which NumPy does not evaluate,"),
            Tok::Name(n) => format!("the name {n:?}, which is not a literal,"),
            Tok::End => "the header ends early".into(),
            tok => format!("unexpected {tok}"),
        };
        self.lexer.error(at, message)
    }

    pub(super) fn parse(mut self) -> Result<Literal, HeaderError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // Read one value (or close an empty / trailing-comma container).
            let (tok, at) = self.next()?;
            let mut value = match tok {
                Tok::Open(b) => {
                    if stack.len() >= MAX_NESTING {
                        return Err(HeaderError::TooDeep {
                            at: self.lexer.at(at),
                        });
                    }
                    stack.push(match b {
                        Bracket::Paren => Frame::Paren {
                            items: Vec::new(),
                            comma: false,
                        },
                        Bracket::Square => Frame::List(Vec::new()),
                        Bracket::Curly => Frame::Brace,
                    });
                    continue;
                }
                Tok::Close(b) => match (stack.pop(), b) {
                    // Right after the open bracket, or after a trailing comma.
                    (Some(Frame::Paren { items, .. }), Bracket::Paren) => Literal::Tuple(items),
                    (Some(Frame::List(items)), Bracket::Square) => Literal::List(items),
                    (Some(Frame::Brace), Bracket::Curly) => Literal::Dict(Vec::new()),
                    (Some(Frame::Dict { pairs, key: None }), Bracket::Curly) => {
                        Literal::Dict(pairs)
                    }
                    (Some(Frame::Set(items)), Bracket::Curly) => Literal::Set(items),
                    _ => return self.unexpected(&tok, at),
                },
                Tok::Sign(sign) => match self.next()? {
                    (Tok::Number(n), _) => negate_if(sign == '-', n),
                    _ => return self.unexpected(&tok, at),
                },
                Tok::Number(n) => n,
                Tok::Str(mut s) => loop {
                    match self.next()? {
                        (Tok::Str(more), _) => s.push_str(&more),
                        (Tok::Bytes(_), at) => {
                            return self.lexer.error(at, "bytes after a string");
                        }
                        t => {
                            self.peeked = Some(t);
                            break Literal::Str(s);
                        }
                    }
                },
                Tok::Bytes(mut b) => loop {
                    match self.next()? {
                        (Tok::Bytes(more), _) => b.extend(more),
                        (Tok::Str(_), at) => {
                            return self.lexer.error(at, "a string after bytes");
                        }
                        t => {
                            self.peeked = Some(t);
                            break Literal::Bytes(b);
                        }
                    }
                },
                Tok::Name(ref n) => match n.as_str() {
                    "True" => Literal::Bool(true),
                    "False" => Literal::Bool(false),
                    "None" => Literal::None,
                    "set" => match (self.next()?, self.next()?) {
                        ((Tok::Open(Bracket::Paren), _), (Tok::Close(Bracket::Paren), _)) => {
                            Literal::Set(Vec::new())
                        }
                        _ => return self.unexpected(&tok, at),
                    },
                    _ => return self.unexpected(&tok, at),
                },
                tok => return self.unexpected(&tok, at),
            };
            // Attach the value to the open brackets, closing as many as the text closes.
            loop {
                let Some(frame) = stack.last_mut() else {
                    return match self.next()? {
                        (Tok::End, _) => Ok(value),
                        (tok, at) => self.unexpected(&tok, at),
                    };
                };
                let (tok, at) = self.next()?;
                match (frame, tok) {
                    (Frame::Paren { items, comma }, Tok::Comma) => {
                        items.push(value);
                        *comma = true;
                    }
                    (Frame::Paren { items, comma }, Tok::Close(Bracket::Paren)) => {
                        if *comma {
                            items.push(value);
                            value = Literal::Tuple(std::mem::take(items));
                        }
                        stack.pop();
                        continue;
                    }
                    (Frame::List(items), Tok::Comma) => items.push(value),
                    (Frame::List(items), Tok::Close(Bracket::Square)) => {
                        items.push(value);
                        value = Literal::List(std::mem::take(items));
                        stack.pop();
                        continue;
                    }
                    (frame @ Frame::Brace, Tok::Colon) => {
                        *frame = Frame::Dict {
                            pairs: Vec::new(),
                            key: Some(value),
                        };
                    }
                    (frame @ Frame::Brace, Tok::Comma) => *frame = Frame::Set(vec![value]),
                    (Frame::Brace, Tok::Close(Bracket::Curly)) => {
                        value = Literal::Set(vec![value]);
                        stack.pop();
                        continue;
                    }
                    (
                        Frame::Dict {
                            key: key @ None, ..
                        },
                        Tok::Colon,
                    ) => *key = Some(value),
                    (Frame::Dict { pairs, key }, Tok::Comma) if key.is_some() => {
                        pairs.push((key.take().unwrap_or(Literal::None), value));
                    }
                    (Frame::Dict { pairs, key }, Tok::Close(Bracket::Curly)) if key.is_some() => {
                        pairs.push((key.take().unwrap_or(Literal::None), value));
                        value = Literal::Dict(std::mem::take(pairs));
                        stack.pop();
                        continue;
                    }
                    (Frame::Set(items), Tok::Comma) => items.push(value),
                    (Frame::Set(items), Tok::Close(Bracket::Curly)) => {
                        items.push(value);
                        value = Literal::Set(std::mem::take(items));
                        stack.pop();
                        continue;
                    }
                    (_, tok) => return self.unexpected(&tok, at),
                }
                break;
            }
        }
    }
}

/// `-n` for a signed number literal (`literal_eval` allows one sign, on a number only).
fn negate_if(negative: bool, n: Literal) -> Literal {
    if !negative {
        return n;
    }
    match n {
        Literal::Int(i) => Literal::Int(-i),
        Literal::BigInt(s) => Literal::BigInt(format!("-{s}")),
        Literal::Float(x) => Literal::Float(-x),
        Literal::Imag(x) => Literal::Imag(-x),
        other => other,
    }
}
