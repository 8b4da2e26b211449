//! The multiproj spec language: the pest grammar (`spec.pest`), the typed and spanned AST,
//! and parse errors that name what was expected in words and underline the place.
//!
//! pest types never leave this crate: [`parse`] returns an [`ast::Spec`] or a [`ParseError`].

pub mod ast;
mod error;
mod parser;
mod print;

pub use ast::{Axes, Level, Norm, Span, Spanned, Spec};
pub use error::{ParseError, ParseErrorKind};
pub use parser::parse;
