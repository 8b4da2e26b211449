//! The subcommands, one module each, and the steps they share: reading a spec, opening a
//! tensor file, and binding the spec to the tensor.

pub mod bench;
pub mod check;
pub mod explain;
pub mod norm;
pub mod project;

use std::path::Path;

use multiproj_compiler::{Plan, RankReq, TensorInfo};
use multiproj_grammar::Spec;
use multiproj_runtime::Backend;

use crate::diagnostics::{CliError, Failure};
use crate::output::shape_text;

/// Parses the spec and checks everything that does not need a tensor (axis sets, a radius
/// fixed in the spec), returning the ranks the spec fits.
pub fn read_spec(text: &str) -> Result<(Spec, RankReq), CliError> {
    let spec = multiproj_grammar::parse(text)?;
    let req = multiproj_compiler::check_shapeless(&spec)?;
    Ok((spec, req))
}

/// Binds the spec to the tensor in `path` and plans it.
pub fn plan_for(spec: &Spec, tensor: &TensorInfo, path: &Path) -> Result<Plan, CliError> {
    let ir = multiproj_compiler::check(spec, tensor).map_err(|e| {
        let what = format!(
            "a rank-{} {} tensor of shape {}",
            tensor.rank(),
            tensor.dtype,
            shape_text(&tensor.shape)
        );
        CliError::spec_mismatch(e, path, &what)
    })?;
    Ok(multiproj_compiler::plan(&ir))
}

/// The backend `--backend` names, or the default.
pub fn choose_backend(name: Option<&str>) -> Result<Backend, CliError> {
    match name {
        None => Ok(Backend::default()),
        Some(name) => name
            .parse::<Backend>()
            .map_err(|e| CliError::usage(e.to_string(), None)),
    }
}

/// The size of the file at `path` in bytes, for deciding whether a run is long; 0 if it cannot
/// be read (opening the file reports why).
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Runs `f` on a pool of `threads` threads, or on rayon's global pool (one thread per core).
pub fn with_threads<R: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> R + Send,
) -> Result<R, CliError> {
    let Some(n) = threads else {
        return Ok(f());
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("multiproj-{i}"))
        .build()
        .map_err(|source| CliError::new(Failure::Data, ThreadsError { n, source }))?;
    Ok(pool.install(f))
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not start {n} threads")]
#[diagnostic(
    code(multiproj::threads),
    help("pass a smaller --threads, or leave it out for one thread per core")
)]
struct ThreadsError {
    n: usize,
    #[source]
    source: rayon::ThreadPoolBuildError,
}
