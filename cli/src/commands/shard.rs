//! `multiproj project SPEC IN --output OUT --shard-axis A` under `mpirun -n P`: a tensor sharded
//! across the processes of an MPI job along axis A, projected with
//! [`multiproj_runtime::shard`] (O(groups) numbers communicated, never the data).
//!
//! - `{rank}` in INPUT: each process reads its own shard file (`w.{rank}.npy`); the shards are in
//!   rank order along the axis and their other extents must agree.
//! - No `{rank}` in INPUT: every process maps the one file and takes its slice along the axis
//!   (the extent split as evenly as it goes, the first processes taking one more).
//! - `{rank}` in OUT is required with more than one process: each process writes its own shard
//!   of the result, in a temporary file beside it. `--in-place` (with `{rank}` in INPUT)
//!   replaces each process's shard file the same way; `--in-place=map` is refused, since
//!   writing through the files could not be undone on the others when one process fails. The outputs are renamed into place only when
//!   every process has projected successfully (an all-reduced flag); a process that fails makes
//!   every process stop with an error, and none of them leaves an output. A process with an empty
//!   slice writes no file.
//!
//! With `--stats` / `--json`, rank 0 prints the whole tensor's report.

use crate::args::ProjectArgs;
use crate::diagnostics::CliError;

/// Runs the sharded projection (needs the `mpi` feature).
pub fn run(args: &ProjectArgs, axis: usize) -> Result<(), CliError> {
    #[cfg(feature = "mpi")]
    {
        imp::run(args, axis)
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = (args, axis);
        Err(CliError::usage(
            "--shard-axis projects a tensor sharded across the processes of an MPI job, and \
             this multiproj was built without MPI",
            Some(
                "build it with `cargo build --release --features multiproj-cli/mpi` (an MPI \
                 library, its development files and libclang are needed), then run it under \
                 mpirun",
            ),
        ))
    }
}

#[cfg(feature = "mpi")]
mod imp {
    use std::path::{Path, PathBuf};

    use multiproj::mpi::MpiComm;
    use multiproj_compiler::DType;
    use multiproj_runtime::npy::{NpyInput, NpyOutput, TensorView, TensorViewMut};
    use multiproj_runtime::shard::{Communicator, ReduceOp, ShardLayout, project_shard};
    use multiproj_runtime::{DataError, Element, Executor, RadiusTarget, Report};
    use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Slice};

    use super::super::{choose_backend, plan_for, read_spec, target_of};
    use crate::args::{InPlaceMode, ProjectArgs};
    use crate::diagnostics::CliError;
    use multiproj_runtime::files::Target;

    /// `path` with `{rank}` replaced by the rank.
    fn expand(path: &Path, rank: usize) -> Result<PathBuf, CliError> {
        let text = path.to_str().ok_or_else(|| {
            CliError::usage(
                format!("'{}' is not valid UTF-8", path.display()),
                Some("with --shard-axis, name the files in UTF-8"),
            )
        })?;
        Ok(PathBuf::from(text.replace("{rank}", &rank.to_string())))
    }

    fn has_rank(path: &Path) -> bool {
        path.to_string_lossy().contains("{rank}")
    }

    /// Whether every process succeeded at a step: one all-reduced flag. A process that did not
    /// fail returns an error naming the step when another did.
    fn agree<R>(
        comm: &impl Communicator,
        local: Result<R, CliError>,
        step: &str,
    ) -> Result<R, CliError> {
        let mut flag = [if local.is_err() { 1.0 } else { 0.0 }];
        comm.all_reduce(&mut flag, ReduceOp::Max)
            .map_err(|e| CliError::from(DataError::Comm(e)))?;
        match local {
            Err(e) => Err(e),
            Ok(_) if flag[0] != 0.0 => Err(CliError::from(DataError::Shard(format!(
                "another process of the job failed to {step}; no output was written"
            )))),
            Ok(v) => Ok(v),
        }
    }

    pub fn run(args: &ProjectArgs, axis: usize) -> Result<(), CliError> {
        let universe = mpi::initialize().ok_or_else(|| {
            CliError::from(DataError::Internal("MPI was initialized twice".into()))
        })?;
        let world = universe.world();
        let comm = MpiComm::new(&world);
        let (rank, size) = (comm.rank(), comm.size());
        // Everything decided from the arguments alone is the same on every process: these
        // errors need no agreement.
        let in_place = args.output.is_none();
        if args.in_place == Some(InPlaceMode::Map) {
            return Err(CliError::usage(
                "--in-place=map is not supported with --shard-axis: a process that fails while \
                 the others write through their files would leave the job's shards half \
                 projected",
                Some("use --in-place (each shard file replaced once every process succeeded)"),
            ));
        }
        if in_place && size > 1 && !has_rank(&args.input) {
            return Err(CliError::usage(
                "--in-place with --shard-axis under mpirun replaces each process's own shard \
                 file: INPUT must contain `{rank}`",
                Some("e.g. 'w.{rank}.npy', or write the result with --output 'out.{rank}.npy'"),
            ));
        }
        let output = args.output.clone().unwrap_or_else(|| args.input.clone());
        if output.as_os_str() == "-" || (size > 1 && !has_rank(&output)) {
            return Err(CliError::usage(
                "with --shard-axis under mpirun, every process writes its own shard of the \
                 result: --output must contain `{rank}`",
                Some("e.g. --output 'out.{rank}.npy'"),
            ));
        }
        let backend = choose_backend(args.backend.as_deref())?;
        let proj = read_spec(&args.spec)?;
        let target = target_of(
            &proj,
            args.radius,
            args.keep,
            args.sparsity,
            args.radius_frac,
        )?;
        let input = expand(&args.input, rank)?;
        let output = expand(&output, rank)?;
        let shared = !has_rank(&args.input);

        // In place: the shard file itself is replaced (wherever a symbolic link to it points),
        // locked meanwhile, and refused if another name shares it (a hard link).
        let opened = if in_place {
            open_to_replace(&input)
        } else {
            NpyInput::open(&input)
                .map(|f| (f, None))
                .map_err(CliError::from)
        };
        let (file, replaces) = agree(&comm, opened, "open its input")?;
        let info = file.info();
        // This process's part: the whole file, or its slice of the shared one.
        let (start, len) = if shared {
            if axis >= info.shape.len() {
                return Err(CliError::usage(
                    format!(
                        "--shard-axis {axis} for a tensor of {} dimensions",
                        info.shape.len()
                    ),
                    None,
                ));
            }
            let n = info.shape[axis];
            let len = n / size + usize::from(rank < n % size);
            let start = rank * (n / size) + rank.min(n % size);
            (start, len)
        } else {
            (0, info.shape.get(axis).copied().unwrap_or(0))
        };
        let mut shape = info.shape.clone();
        if let Some(e) = shape.get_mut(axis) {
            *e = len;
        }
        let out = if len > 0 {
            let target = match replaces {
                Some((real, meta)) => Ok(Target::File {
                    path: real,
                    replaces: Some(meta),
                }),
                None => Target::resolve(&output),
            };
            Some(
                target
                    .and_then(|t| NpyOutput::create_at(t, info.dtype, &shape, file.order()))
                    .map_err(CliError::from),
            )
            .transpose()
        } else {
            Ok(None)
        };
        let mut out = agree(&comm, out, "create its output")?;

        // MPI is called from this (the main) thread only: --threads sizes rayon's global pool,
        // which the passes use from here, instead of running the whole job inside a pool.
        if let Some(n) = args.threads {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global();
        }
        let report = {
            let exec = Executor::new(backend);
            let part = Part {
                shared,
                axis,
                start,
                len,
            };
            match (file.view(), out.as_mut().map(|o| o.view_mut())) {
                (TensorView::F32(x), Some(TensorViewMut::F32(mut o))) => shard::<f32>(
                    &exec,
                    &comm,
                    &proj,
                    &input,
                    &part.of(x),
                    Some(&mut o),
                    axis,
                    target,
                ),
                (TensorView::F64(x), Some(TensorViewMut::F64(mut o))) => shard::<f64>(
                    &exec,
                    &comm,
                    &proj,
                    &input,
                    &part.of(x),
                    Some(&mut o),
                    axis,
                    target,
                ),
                // An empty slice (more processes than the axis has entries): no output, but
                // its part, an empty view, in the collectives.
                (TensorView::F32(x), None) => {
                    shard::<f32>(&exec, &comm, &proj, &input, &part.of(x), None, axis, target)
                }
                (TensorView::F64(x), None) => {
                    shard::<f64>(&exec, &comm, &proj, &input, &part.of(x), None, axis, target)
                }
                (x, _) => Err(CliError::from(DataError::DTypeMismatch {
                    expected: x.dtype(),
                    found: if x.dtype() == DType::F64 {
                        DType::F32
                    } else {
                        DType::F64
                    },
                })),
            }
        }?;
        // The shared input must not have changed under us.
        agree(
            &comm,
            file.check_unchanged().map_err(CliError::from),
            "read its input whole",
        )?;
        let committed = match out {
            // The only copy of a shard replaced in place: durable before the rename, always.
            Some(o) => o.commit(args.sync || in_place).map_err(CliError::from),
            None => Ok(()),
        };
        agree(&comm, committed, "write its output")?;
        if rank == 0 && (args.stats || args.json) {
            print_stats(&report, size, axis, args.json);
        }
        Ok(())
    }

    /// The shard file to project in place, locked, with its real path and metadata.
    fn open_to_replace(
        input: &Path,
    ) -> Result<(NpyInput, Option<(PathBuf, std::fs::Metadata)>), CliError> {
        let real = std::fs::canonicalize(input).map_err(|source| DataError::Io {
            path: input.to_path_buf(),
            action: "open",
            source,
        })?;
        let file = NpyInput::open_locked(input)?;
        let meta = file.metadata()?;
        super::super::project::refuse_hard_links(input, &meta)?;
        Ok((file, Some((real, meta))))
    }

    #[allow(clippy::too_many_arguments)]
    fn shard<T: Element>(
        exec: &Executor<'_>,
        comm: &impl Communicator,
        proj: &multiproj::Projection,
        input: &Path,
        x: &ArrayViewD<'_, T>,
        out: Option<&mut ArrayViewMutD<'_, T>>,
        axis: usize,
        target: RadiusTarget,
    ) -> Result<Report, CliError> {
        let layout = ShardLayout::exchange(comm, x.shape(), T::DTYPE, axis)?;
        // The same on every process: they fail here alike or not at all.
        let global = plan_for(proj, &layout.global_info(), input)?;
        let local = match &out {
            Some(_) => plan_for(proj, &multiproj::tensor_info(x), input).map(Some),
            None => Ok(None),
        };
        let local = agree(comm, local, "plan its shard")?;
        let report = match out {
            Some(o) => project_shard(exec, comm, &layout, &global, local.as_deref(), x, o, target),
            None => {
                // An empty shard: nothing to read or write, but its part in the collectives.
                let mut none =
                    ndarray::ArrayD::<T>::from_elem(ndarray::IxDyn(x.shape()), T::from_f64(0.0));
                project_shard(
                    exec,
                    comm,
                    &layout,
                    &global,
                    None,
                    x,
                    &mut none.view_mut(),
                    target,
                )
            }
        };
        Ok(report?)
    }

    /// This process's part of the input: the whole file, or its slice of the shared one.
    struct Part {
        shared: bool,
        axis: usize,
        start: usize,
        len: usize,
    }

    impl Part {
        fn of<'a, T>(&self, v: ArrayViewD<'a, T>) -> ArrayViewD<'a, T> {
            if self.shared {
                v.slice_axis_move(
                    Axis(self.axis),
                    Slice::from(self.start..self.start + self.len),
                )
            } else {
                v
            }
        }
    }

    fn print_stats(r: &Report, processes: usize, axis: usize, json: bool) {
        if json {
            let v = serde_json::json!({
                "processes": processes,
                "shard_axis": axis,
                "radius": r.radius,
                "norm_before": r.norm_before,
                "norm_after": r.norm_after,
                "groups": r.groups,
                "zeroed": r.zeroed,
                "projected": r.projected,
                "untouched": r.untouched,
                "survivors": r.survivors.len(),
            });
            println!("{v}");
        } else {
            println!("processes      {processes} (sharded along axis {axis})");
            println!(
                "norm           {} before, {} after (radius {})",
                r.norm_before, r.norm_after, r.radius
            );
            println!(
                "groups         {}: {} zeroed, {} projected, {} untouched",
                r.groups, r.zeroed, r.projected, r.untouched
            );
        }
    }
}
