//! `multiproj norm SPEC INPUT.npy`: the multi-level norm of a tensor, the number alone.

use multiproj_runtime::npy::{NpyInput, TensorView};
use multiproj_runtime::{Backend, DataError};
use serde_json::json;

use crate::args::NormArgs;
use crate::commands::{plan_for, read_spec};
use crate::diagnostics::CliError;
use crate::output;

pub fn run(args: &NormArgs) -> Result<(), CliError> {
    let (spec, _) = read_spec(&args.spec)?;
    let input = NpyInput::open(&args.input)?;
    let tensor = input.info();
    let plan = plan_for(&spec, &tensor, &args.input)?;
    let backend = Backend::default();
    let norm = match input.view() {
        TensorView::F32(x) => multiproj_runtime::norm(&plan, &x, backend),
        TensorView::F64(x) => multiproj_runtime::norm(&plan, &x, backend),
    }
    .map_err(|e: DataError| CliError::data_in(e, "cannot compute the norm of", &args.input))?;
    let text = if args.json {
        let value = json!({
            "norm": norm,
            "spec": spec.canonical(),
            "input": args.input.display().to_string(),
            "shape": tensor.shape,
            "dtype": tensor.dtype.to_string(),
            "order": input.order().to_string(),
        });
        format!("{value}\n")
    } else {
        // `{}` of an f64 is its shortest round-trip form.
        format!("{norm}\n")
    };
    output::print(&text)
}
