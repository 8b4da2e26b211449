//! `multiproj norm SPEC INPUT.npy`: the multi-level norm of a tensor, the number alone.

use multiproj_runtime::Executor;
use multiproj_runtime::npy::{NpyInput, TensorView};
use serde_json::json;

use crate::args::NormArgs;
use crate::commands::{choose_backend, file_size, plan_for, read_spec, with_threads};
use crate::diagnostics::CliError;
use crate::output;
use crate::progress;

pub fn run(args: &NormArgs) -> Result<(), CliError> {
    let backend = choose_backend(args.backend.as_deref())?;
    let proj = read_spec(&args.spec)?;
    let input = NpyInput::open(&args.input)?;
    crate::signals::watch(
        crate::signals::Mapped::Input,
        input.mapped_range(),
        crate::signals::input_message(&args.input, "no norm was printed"),
    );
    let tensor = input.info();
    let plan = plan_for(&proj, &tensor, &args.input)?;
    let norm = progress::run(args.progress, file_size(&args.input), |bar| {
        let mut exec = Executor::new(backend);
        if let Some(bar) = bar {
            bar.element_size(tensor.dtype.size());
            bar.phase("norm");
            exec = exec.with_progress(bar);
        }
        with_threads(args.threads, || match input.view() {
            TensorView::F16(x) => exec.norm(&plan, &x),
            TensorView::BF16(x) => exec.norm(&plan, &x),
            TensorView::F32(x) => exec.norm(&plan, &x),
            TensorView::F64(x) => exec.norm(&plan, &x),
        })?
        .map_err(|e| CliError::data_in(e, "cannot compute the norm of", &args.input))
    })?;
    // Numbers read from a file that changed size under us mean nothing.
    input.check_unchanged()?;
    let text = if args.json {
        let value = json!({
            "norm": norm,
            "spec": proj.spec().canonical(),
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
