//! `multiproj explain SPEC [--shape S]`: every printable stage of the compiler, with headings —
//! the syntax tree, and for a given shape the IR, the normalized levels and the plan.

use multiproj_compiler::TensorInfo;

use crate::args::ExplainArgs;
use crate::diagnostics::CliError;
use crate::output;

/// Builds the whole text first, so that a failing stage prints nothing but its diagnostic.
pub fn run(args: &ExplainArgs) -> Result<(), CliError> {
    if args.clif {
        return Err(CliError::usage(
            "the jit backend is not built yet: no Cranelift IR to show",
            Some("leave out --clif to see the syntax tree, the IR and the plan"),
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
            let tensor = TensorInfo::with_order(&shape.0, args.dtype.into(), args.order.into());
            let ir = multiproj_compiler::check(&spec, &tensor)?;
            let normalized = multiproj_compiler::normalize(&ir.levels);
            let plan = multiproj_compiler::plan(&ir);
            section(&mut text, "IR", &ir.to_string());
            section(&mut text, "normalized levels", &normalized.to_string());
            section(&mut text, "plan", &plan.to_string());
        }
    }
    output::print(&text)
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
