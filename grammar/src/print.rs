//! How a spec prints. Two forms, both stable (snapshot tests and `multiproj explain` pin them):
//!
//! - the `Display` of [`Spec`]: a tree that reads like the math, levels outermost first, each
//!   with its span in the source, then the radius;
//! - [`Spec::canonical`]: the spec as text in one normal spelling, which parses back to the
//!   same levels and radius. Error messages and caches use it so that `dim 0` and `dim0` are
//!   the same spec.

use std::fmt::{self, Write as _};

use crate::ast::{Axes, Level, Spec};

impl Spec {
    /// The canonical text of the spec: single spaces between words, no space inside an axis
    /// clause, the radius (if any) in shortest round-trip form:
    /// `l1 over dim0 of linf over dims1..2 <= 1.5`.
    ///
    /// `parse(&spec.canonical())` gives the same levels and radius, spans aside. A radius that
    /// overflowed to ±inf prints as `1e999` / `-1e999`, which parses back to the same value;
    /// a NaN radius cannot come out of the parser and prints as `NaN`, which does not parse.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        if self.exact.is_some() {
            out.push_str("exact ");
        }
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                out.push_str(" of ");
            }
            // Writing into a String cannot fail.
            let _ = write!(
                out,
                "{} over {}",
                level.norm.node,
                level.axes.node.canonical()
            );
        }
        if let Some(r) = &self.radius {
            let r = r.node;
            let _ = if r.is_infinite() {
                // `{}` prints `inf`, which the grammar does not accept as a radius.
                write!(out, " <= {}1e999", if r < 0.0 { "-" } else { "" })
            } else {
                write!(out, " <= {r}")
            };
        }
        out
    }
}

impl Axes {
    /// The axis clause as [`Spec::canonical`] writes it: `dim0`, `dims1..2`, `dims1..`,
    /// `dims0,2`. The `Display` form (`dim 0`, `dims 1..2`) is the one for reading.
    pub fn canonical(&self) -> String {
        match self {
            Axes::One(a) => format!("dim{}", a.node),
            Axes::Range { start, end } => format!("dims{}..{}", start.node, end.node),
            Axes::From(a) => format!("dims{}..", a.node),
            Axes::List(items) => {
                let items: Vec<String> = items.iter().map(|a| a.node.to_string()).collect();
                format!("dims{}", items.join(","))
            }
        }
    }
}

/// `l1 over dim 0`.
impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} over {}", self.norm.node, self.axes.node)
    }
}

/// The tree, e.g. for `l1 over dim0 of linf over dims1..2`:
///
/// ```text
/// spec `l1 over dim0 of linf over dims1..2`
/// ├─ level 1  l1 over dim 0          @0..12
/// └─ level 2  linf over dims 1..2    @16..34
/// radius: given at run time
/// ```
///
/// With a fixed radius the last line is `radius: 1.5  @38..41` (the span of the number). A
/// leading `exact` adds the line `method: exact Euclidean projection  @0..5` after the header.
impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source may span lines; escaping keeps the tree one line per node so that the
        // spans below still read against the header.
        writeln!(f, "spec `{}`", self.source.escape_debug())?;
        if let Some(span) = self.exact {
            writeln!(f, "method: exact Euclidean projection  @{span}")?;
        }
        let texts: Vec<String> = self.levels.iter().map(Level::to_string).collect();
        let text_width = texts.iter().map(String::len).max().unwrap_or(0);
        let number_width = self.levels.len().to_string().len();
        for (i, (level, text)) in self.levels.iter().zip(&texts).enumerate() {
            let branch = if i + 1 == self.levels.len() {
                "└─"
            } else {
                "├─"
            };
            // Padded by hand: a width argument above 65,535 (a level written out over that
            // many characters) makes `format!` panic.
            let pad = text_width.saturating_sub(text.chars().count());
            write!(f, "{branch} level {:<number_width$}  {text}", i + 1)?;
            f.write_str(&" ".repeat(pad))?;
            writeln!(f, "    @{}", level.span)?;
        }
        match &self.radius {
            Some(r) => write!(f, "radius: {}  @{}", r.node, r.span),
            None => write!(f, "radius: given at run time"),
        }
    }
}
