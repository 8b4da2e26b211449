//! `multiproj explain SPEC [--shape S]`: every printable stage of the compiler, with headings —
//! the syntax tree, and for a given shape the IR, the normalized levels and the plan.

use crate::args::ExplainArgs;
use crate::commands::shaped_tensor;
use crate::diagnostics::CliError;
use crate::output;

/// Builds the whole text first, so that a failing stage prints nothing but its diagnostic.
pub fn run(args: &ExplainArgs) -> Result<(), CliError> {
    if args.clif && args.shape.is_none() {
        return Err(CliError::usage(
            "--clif needs --shape: kernels are generated for a plan, and a plan for a shape",
            Some("add e.g. --shape 64x48 (kernels depend on the rank and layout, not the sizes)"),
        ));
    }
    let spec = multiproj_grammar::parse(&args.spec)?;
    let mut text = String::new();
    section(&mut text, "syntax tree", &spec.to_string());
    match &args.shape {
        None => {
            let req = multiproj_compiler::check_shapeless(&spec)?;
            section(&mut text, "rank", &format!("the spec fits {req}"));
            text.push_str(
                "\nnote: pass --shape (e.g. --shape 64x48) to see the IR, the normalized levels \
                 and the plan\n",
            );
        }
        Some(shape) => {
            let tensor = shaped_tensor(&shape.0, args.dtype.into(), args.order.into())?;
            let ir = multiproj_compiler::check(&spec, &tensor)?;
            let plan = multiproj_compiler::plan(&ir);
            section(&mut text, "IR", &ir.to_string());
            section(
                &mut text,
                "normalized levels",
                &plan.normalized().to_string(),
            );
            section(&mut text, "plan", &plan.to_string());
            if args.clif {
                for (title, clif) in kernels(&plan)? {
                    section(&mut text, &title, &clif);
                }
            }
        }
    }
    output::print(&text)
}

/// The Cranelift IR of every kernel the jit backend runs for `plan`: the reduce pass, the gather
/// of the threshold stage (innermost l1), and the apply pass out of place and in place.
fn kernels(plan: &multiproj_compiler::Plan) -> Result<Vec<(String, String)>, CliError> {
    let jit = multiproj_runtime::jit::global()?;
    let internal = |e: multiproj_runtime::jit::CodegenError| {
        CliError::from(multiproj_runtime::DataError::Internal(e.to_string()))
    };
    let reduce = jit.reduce_kernel(plan).map_err(internal)?;
    let apply = jit.apply_kernel(plan, false).map_err(internal)?;
    let in_place = jit.apply_kernel(plan, true).map_err(internal)?;
    Ok(vec![
        ("clif: reduce".to_string(), reduce.clif().to_string()),
        (
            "clif: apply (out of place)".to_string(),
            apply.clif().to_string(),
        ),
        (
            "clif: apply (in place)".to_string(),
            in_place.clif().to_string(),
        ),
    ])
}

/// `== heading ==`, the body, and a blank line between sections.
fn section(out: &mut String, heading: &str, body: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str("== ");
    out.push_str(heading);
    out.push_str(" ==\n");
    out.push_str(body.trim_end());
    out.push('\n');
}
