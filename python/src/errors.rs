//! [`multiproj::Error`] as Python exceptions, mapped in one place.
//!
//! The exception classes live in Python (`multiproj/_errors.py`: `SpecError` derives from both
//! `multiproj.Error` and `ValueError`, which a class made here could not do as simply); this
//! module imports them once and raises them with the rendered diagnostic as the message — its
//! first line the error in words, then miette's drawing of the spec with the culprit underlined,
//! then the help — and the details as attributes (`span`, `labels`, `index`, ...).
//!
//! Which class: a spec that does not parse, or is wrong whatever the tensor (an axis used twice,
//! a radius given twice, missing or invalid), is a `SpecError`; a spec that does not fit the
//! array it is applied to is a `ShapeError`; data that cannot be projected (NaN, infinity) is a
//! `DataError`; a bug in multiproj (an internal error or a panic) is the base `Error`.

use std::fmt;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use multiproj::{CheckError, DType, DataError, Error};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::arrays::numpy_name;

/// Where an error happened: compiling the spec, or applying it to an array of this layout.
#[derive(Clone, Copy, Debug)]
pub enum Stage<'a> {
    Compile,
    Array { shape: &'a [usize], dtype: DType },
}

/// The Python exception for `error`; `spec` is the spec's text (for spans in characters).
pub fn to_py(py: Python<'_>, error: &Error, spec: &str, stage: Stage<'_>) -> PyErr {
    // If importing multiproj._errors or building the exception fails, that error says why.
    exception(py, error, spec, stage).unwrap_or_else(|e| e)
}

/// A bug in multiproj that surfaced as a panic: the base `multiproj.Error`, never a
/// `PanicException` (which derives from `BaseException` and escapes `except Exception`).
pub fn panic_to_py(py: Python<'_>, payload: &(dyn std::any::Any + Send)) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    let message = format!(
        "this is a bug in multiproj: {what}\nhelp: please report it with the spec and the \
         array's shape, dtype and strides"
    );
    match raise(py, "Error", &message, |_| Ok(())) {
        Ok(e) | Err(e) => e,
    }
}

fn exception(py: Python<'_>, error: &Error, spec: &str, stage: Stage<'_>) -> PyResult<PyErr> {
    let (class, context) = match error {
        Error::Parse(_) => ("SpecError", None),
        Error::Check(e) => match (spec_only(e), stage) {
            (true, _) | (false, Stage::Compile) => ("SpecError", None),
            (false, Stage::Array { shape, dtype }) => (
                "ShapeError",
                Some(format!(
                    "the spec does not fit a {} array of shape {}",
                    numpy_name(dtype),
                    shape_text(shape)
                )),
            ),
        },
        Error::Data(DataError::NonFinite { .. }) => ("DataError", None),
        Error::Data(DataError::Empty { .. }) => ("ShapeError", None),
        Error::Data(DataError::Internal(_)) => ("Error", None),
        Error::Data(_) => ("DataError", None),
        _ => ("Error", None),
    };
    let message = match error {
        // The library's text names the command-line flag; say how to give it from Python.
        Error::Check(CheckError::MissingRadius) => {
            "no radius: the spec has no `<= R` and none was given\n  help: pass radius=R, or \
             add `<= R` to the spec"
                .to_owned()
        }
        _ => render(error, context.as_deref()),
    };
    raise(py, class, &message, |kw| {
        if let Some(code) = error.code() {
            kw.set_item("code", code.to_string())?;
        }
        if let Some(help) = error.help() {
            kw.set_item("help", help.to_string())?;
        }
        if matches!(class, "SpecError" | "ShapeError") {
            let labels = labels(error, spec);
            kw.set_item("spec", spec)?;
            kw.set_item("span", labels.first().map(|l| (l.0, l.1)))?;
            kw.set_item("labels", labels)?;
        }
        if let Error::Data(DataError::NonFinite { index, value }) = error {
            kw.set_item("index", PyTuple::new(py, index)?)?;
            kw.set_item("value", *value)?;
        }
        if let (Stage::Array { shape, .. }, "ShapeError") = (stage, class) {
            kw.set_item("shape", PyTuple::new(py, shape)?)?;
        }
        Ok(())
    })
}

/// Errors about the spec alone, whatever the tensor: these are `SpecError`s even when found
/// while applying the spec to an array.
fn spec_only(e: &CheckError) -> bool {
    matches!(
        e,
        CheckError::AxisUsedTwice { .. }
            | CheckError::AxisRepeated { .. }
            | CheckError::RadiusGivenTwice { .. }
            | CheckError::InvalidRadius { .. }
            | CheckError::MissingRadius
    )
}

/// `(3, 4)`, as Python prints a shape.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// The exception classes, imported once from the pure-Python part of the package.
fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module =
        ERRORS.get_or_try_init(py, || py.import("multiproj._errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// `class(message, **kwargs)` as a `PyErr`, `kwargs` filled by `fill`.
fn raise(
    py: Python<'_>,
    name: &str,
    message: &str,
    fill: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyResult<PyErr> {
    let kwargs = PyDict::new(py);
    fill(&kwargs)?;
    let instance = class(py, name)?.call((message,), Some(&kwargs))?;
    Ok(PyErr::from_value(instance))
}

/// The labels of `error` as `(start, end, label)` in characters of `spec` (what Python
/// indexes a `str` by), the primary label first.
fn labels(error: &Error, spec: &str) -> Vec<(usize, usize, String)> {
    let Some(labels) = error.labels() else {
        return Vec::new();
    };
    let chars = |byte: usize| {
        let byte = byte.min(spec.len());
        // Spans are at character boundaries; `get` keeps a stray one from panicking.
        spec.get(..byte).map_or(byte, |s| s.chars().count())
    };
    labels
        .map(|l: LabeledSpan| {
            let (start, end) = (l.offset(), l.offset() + l.len());
            (
                chars(start),
                chars(end),
                l.label().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The diagnostic as text: the message on the first line (after `context`, if any), then
/// miette's drawing without colours — the spec with its labels, the help.
fn render(error: &Error, context: Option<&str>) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        // Python prints messages unwrapped; only the drawing of the spec needs the columns.
        .with_width(1000)
        .with_links(false);
    let mut drawn = String::new();
    if handler.render_report(&mut drawn, &Headless(error)).is_err() {
        drawn.clear();
    }
    let message = error.to_string();
    // The drawing opens with `  × message`; the message is already the first line.
    let body = drawn
        .strip_prefix(&format!("  × {message}\n"))
        .unwrap_or(drawn.as_str())
        .trim_end();
    let mut out = String::new();
    if let Some(context) = context {
        out.push_str(context);
        out.push_str(": ");
    }
    out.push_str(&message);
    if !body.trim().is_empty() {
        out.push('\n');
        out.push_str(body);
    }
    out
}

/// A diagnostic drawn without its code line: Python shows the class name there, and the code
/// is the exception's `code` attribute.
struct Headless<'a>(&'a Error);

impl fmt::Debug for Headless<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Headless<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl std::error::Error for Headless<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(self.0)
    }
}

impl Diagnostic for Headless<'_> {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.0.labels()
    }
}
