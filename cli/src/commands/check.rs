//! `multiproj check SPEC`: parse and validate a spec without a tensor.

use crate::args::CheckArgs;
use crate::commands::read_spec;
use crate::diagnostics::CliError;
use crate::output;

/// Prints `ok: <canonical spec> fits <ranks>` or fails with the diagnostic.
pub fn run(args: &CheckArgs) -> Result<(), CliError> {
    let proj = read_spec(&args.spec)?;
    output::print(&format!(
        "ok: {} fits {}\n",
        proj.spec().canonical(),
        proj.ranks()
    ))
}
