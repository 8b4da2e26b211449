//! The typed, spanned syntax tree of a spec. Nothing here knows about tensors: a spec is
//! checked against a shape only in `multiproj-compiler`.

use std::fmt;

/// A byte range `start..end` in the spec text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.start, s.len()).into()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A value with the place in the spec it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

/// The norm of one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Norm {
    L1,
    L2,
    Linf,
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Norm::L1 => "l1",
            Norm::L2 => "l2",
            Norm::Linf => "linf",
        })
    }
}

/// The axes clause of a level, as written (not yet bound to a rank).
#[derive(Clone, Debug, PartialEq)]
pub enum Axes {
    /// `dim N`
    One(Spanned<usize>),
    /// `dims A..B`, inclusive at both ends.
    Range {
        start: Spanned<usize>,
        end: Spanned<usize>,
    },
    /// `dims A..`: from A to the last axis of whatever tensor the spec meets.
    From(Spanned<usize>),
    /// `dims A,B,C` (at least two entries).
    List(Vec<Spanned<usize>>),
}

impl fmt::Display for Axes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Axes::One(a) => write!(f, "dim {}", a.node),
            Axes::Range { start, end } => write!(f, "dims {}..{}", start.node, end.node),
            Axes::From(a) => write!(f, "dims {}..", a.node),
            Axes::List(items) => {
                f.write_str("dims ")?;
                for (i, a) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}", a.node)?;
                }
                Ok(())
            }
        }
    }
}

/// `norm over axes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub norm: Spanned<Norm>,
    pub axes: Spanned<Axes>,
    /// From the norm keyword to the end of the axes clause.
    pub span: Span,
}

/// A whole spec: levels outermost first, and the radius if the spec fixes one.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The text the spans point into.
    pub source: String,
    /// The span of a leading `exact`: the spec asks for the Euclidean projection onto the ball
    /// of its norm rather than the multi-level projection.
    pub exact: Option<Span>,
    pub levels: Vec<Level>,
    /// `<= R` as written. The grammar accepts any decimal number here (including a sign) so
    /// that the checker can say *why* a radius is invalid instead of a bare syntax error.
    pub radius: Option<Spanned<f64>>,
}
