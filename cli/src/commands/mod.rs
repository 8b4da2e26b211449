//! The subcommands, one module each, and the steps they share: reading a spec, opening a
//! tensor file, binding the spec to the tensor, the tensor a `--shape` describes, and the
//! thread pool of `--threads`.

pub mod bench;
pub mod check;
pub mod compare;
pub mod explain;
pub mod norm;
pub mod project;
pub mod shard;

use std::path::Path;
use std::sync::Arc;

use multiproj::Projection;
use multiproj_compiler::{DType, Order, Plan, TensorInfo};
use multiproj_runtime::{Backend, RadiusTarget};

use crate::diagnostics::{CliError, Failure};
use crate::output::shape_text;

/// Compiles the spec with the library ([`Projection::compile`]): parses it and checks everything
/// that does not need a tensor (axis sets, a radius fixed in the spec).
pub fn read_spec(text: &str) -> Result<Projection, CliError> {
    Ok(Projection::compile(text)?)
}

/// The radius of a run: the spec's, or `--radius` (an error if both or neither are given).
pub fn radius_of(proj: &Projection, given: Option<f64>) -> Result<f64, CliError> {
    let spec = proj.spec();
    Ok(multiproj_compiler::resolve_radius(
        &spec.source,
        spec.radius.as_ref(),
        given,
    )?)
}

/// What a run aims for: the spec's radius, `--radius`, or the radius `--keep`, `--sparsity` or
/// `--radius-frac` chooses from the data (one of them; clap keeps them exclusive).
pub fn target_of(
    proj: &Projection,
    radius: Option<f64>,
    keep: Option<usize>,
    sparsity: Option<f64>,
    radius_frac: Option<f64>,
) -> Result<RadiusTarget, CliError> {
    let chosen = match (keep, sparsity, radius_frac) {
        (Some(k), _, _) => Some(("--keep", RadiusTarget::Keep(k))),
        (_, Some(f), _) => Some(("--sparsity", RadiusTarget::Sparsity(f))),
        (_, _, Some(f)) => Some(("--radius-frac", RadiusTarget::RadiusFrac(f))),
        _ => None,
    };
    match chosen {
        None => Ok(RadiusTarget::Radius(radius_of(proj, radius)?)),
        Some((flag, _)) if proj.spec().radius.is_some() => Err(CliError::usage(
            format!("the spec fixes the radius (`<= R`), so {flag} cannot choose it"),
            Some(&format!("remove `<= R` from the spec, or leave out {flag}")),
        )),
        Some((flag, target)) => {
            let fraction = |f: f64| (0.0..=1.0).contains(&f);
            let ok = match target {
                RadiusTarget::Sparsity(f) => fraction(f),
                RadiusTarget::RadiusFrac(f) => f.is_finite() && f >= 0.0,
                _ => true,
            };
            if !ok {
                return Err(CliError::usage(
                    match target {
                        RadiusTarget::Sparsity(f) => {
                            format!("{flag} must be between 0 and 1, not {f}")
                        }
                        RadiusTarget::RadiusFrac(f) => {
                            format!("{flag} must be a finite number ≥ 0, not {f}")
                        }
                        _ => unreachable!("only fractions are checked here"),
                    },
                    Some(match target {
                        RadiusTarget::Sparsity(_) => {
                            "e.g. --sparsity 0.9 to zero 90% of the top-level groups"
                        }
                        _ => "e.g. --radius-frac 0.25 for a quarter of the data's norm",
                    }),
                ));
            }
            Ok(target)
        }
    }
}

/// Binds the spec to the tensor in `path` and plans it ([`Projection::plan_for`]).
pub fn plan_for(
    proj: &Projection,
    tensor: &TensorInfo,
    path: &Path,
) -> Result<Arc<Plan>, CliError> {
    proj.plan_for(tensor).map_err(|e| match e {
        multiproj::Error::Check(e) => {
            let what = format!(
                "a rank-{} {} tensor of shape {}",
                tensor.rank(),
                tensor.dtype,
                shape_text(&tensor.shape)
            );
            CliError::spec_mismatch(e, path, &what)
        }
        e => e.into(),
    })
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

/// The tensor of `--shape` (explain, bench). A shape too large for this machine's address
/// space is refused as a bad argument, as the `.npy` reader refuses such a header: its element
/// count and strides would wrap around (`4294967296x4294967296x16` would count 0 elements).
/// Zero extents are left out of the product, so that every stride fits too; an empty tensor
/// is the checker's to refuse.
pub fn shaped_tensor(shape: &[usize], dtype: DType, order: Order) -> Result<TensorInfo, CliError> {
    let fits = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !fits {
        return Err(CliError::usage(
            format!(
                "the shape {} is too large: its extents multiply to more than {} bytes of {dtype} \
                 data, more than this machine can address",
                shape_text(shape),
                isize::MAX
            ),
            Some("pass a smaller --shape"),
        ));
    }
    Ok(TensorInfo::with_order(shape, dtype, order))
}

/// Runs `f` on a pool of `threads` threads, or on rayon's global pool (one thread per core).
/// More than [`crate::args::max_threads`] is refused (the parser of `--threads` already does).
pub fn with_threads<R: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> R + Send,
) -> Result<R, CliError> {
    let Some(n) = threads else {
        return Ok(f());
    };
    let max = crate::args::max_threads();
    if n > max {
        return Err(CliError::usage(
            format!("{n} threads are too many: at most {max} (4 per core, and 64 on any machine)"),
            Some("pass a smaller --threads, or leave it out for one thread per core"),
        ));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("multiproj-{i}"))
        .build()
        .map_err(|source| CliError::new(Failure::Data, ThreadsError { n, source }))?;
    Ok(pool.install(f))
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not start {n} thread{}", if *.n == 1 { "" } else { "s" })]
#[diagnostic(
    code(multiproj::threads),
    help("pass a smaller --threads, or leave it out for one thread per core")
)]
struct ThreadsError {
    n: usize,
    #[source]
    source: rayon::ThreadPoolBuildError,
}
