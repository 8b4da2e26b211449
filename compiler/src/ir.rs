//! The checked IR: a spec bound to one tensor. Every axis is resolved to a number, every level
//! knows its axis set, and the sets are known to be disjoint and to cover the tensor.

use std::fmt;

use multiproj_grammar::{Norm, Span, Spanned};

use crate::exact::Method;
use crate::tensor::TensorInfo;

/// One level of the checked spec: a norm over a sorted, non-empty set of axes.
#[derive(Clone, Debug, PartialEq)]
pub struct IrLevel {
    pub norm: Norm,
    /// Sorted ascending, never empty.
    pub axes: Vec<usize>,
    /// Where the level was written; for merged levels, the span covering all of them.
    pub span: Span,
}

impl IrLevel {
    /// Number of entries of one group at this level: the product of its axes' extents.
    pub fn extent(&self, shape: &[usize]) -> usize {
        self.axes.iter().map(|&a| shape[a]).product()
    }
}

/// Axis sets print as `{0}`, `{1,2}`.
pub(crate) struct AxisSet<'a>(pub &'a [usize]);

impl fmt::Display for AxisSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for IrLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} over {}", self.norm, AxisSet(&self.axes))
    }
}

/// A spec bound to a tensor: levels outermost first. Built only by [`crate::check`], so its
/// axis sets are known to be disjoint, sorted, non-empty and to cover the tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Ir {
    pub(crate) source: String,
    pub(crate) tensor: TensorInfo,
    pub(crate) levels: Vec<IrLevel>,
    pub(crate) radius: Option<Spanned<f64>>,
    /// Set when the spec asks for the exact projection; [`crate::check`] has made sure there is
    /// one for these levels.
    pub(crate) method: Method,
}

impl Ir {
    /// The spec text (spans point into it).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The tensor the spec was checked against.
    pub fn tensor(&self) -> &TensorInfo {
        &self.tensor
    }

    /// The levels, outermost first.
    pub fn levels(&self) -> &[IrLevel] {
        &self.levels
    }

    /// The radius fixed in the spec, already known to be finite and non-negative.
    pub fn radius(&self) -> Option<&Spanned<f64>> {
        self.radius.as_ref()
    }

    /// The projection the spec asks for (an exact one only when it has a method).
    pub fn method(&self) -> Method {
        self.method
    }
}

/// Writes the multi-level norm as nested norms, innermost applied to `Y`:
/// `l1{0}( linf{1}( Y ) )`.
pub(crate) fn write_norm_formula(f: &mut fmt::Formatter<'_>, levels: &[IrLevel]) -> fmt::Result {
    for l in levels {
        write!(f, "{}{}( ", l.norm, AxisSet(&l.axes))?;
    }
    f.write_str("Y")?;
    for _ in levels {
        f.write_str(" )")?;
    }
    Ok(())
}

pub(crate) fn write_radius(
    f: &mut fmt::Formatter<'_>,
    radius: &Option<Spanned<f64>>,
) -> fmt::Result {
    match radius {
        Some(r) => write!(f, "radius {} (fixed in the spec)", r.node),
        None => f.write_str("radius R (given at run time)"),
    }
}

impl fmt::Display for Ir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ir for {}", self.tensor)?;
        if self.method.is_exact() {
            writeln!(f, "  method: {}", self.method)?;
        }
        f.write_str("  norm(Y) = ")?;
        write_norm_formula(f, &self.levels)?;
        writeln!(f)?;
        for (j, l) in self.levels.iter().enumerate() {
            let extents: Vec<String> = l
                .axes
                .iter()
                .map(|&a| self.tensor.shape[a].to_string())
                .collect();
            writeln!(
                f,
                "  level {}: {:<4} over axes {:<10} extent {:<12} @{}",
                j + 1,
                l.norm.to_string(),
                AxisSet(&l.axes).to_string(),
                if extents.len() == 1 {
                    extents[0].clone()
                } else {
                    format!("{} = {}", extents.join("x"), l.extent(&self.tensor.shape))
                },
                l.span
            )?;
        }
        f.write_str("  ")?;
        write_radius(f, &self.radius)?;
        writeln!(f)
    }
}
