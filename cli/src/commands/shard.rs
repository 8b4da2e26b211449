//! `multiproj project SPEC IN --output OUT --shard-axis A` under `mpirun -n P`: a tensor sharded
//! across the processes of an MPI job along axis A, projected with
//! [`multiproj_runtime::shard`] (O(groups) numbers communicated, never the data).
//!
//! - `{rank}` in INPUT: each process reads its own shard file (`w.{rank}.npy`); the shards are in
//!   rank order along the axis and their other extents must agree.
//! - No `{rank}` in INPUT: every process maps the one file and takes its slice along the axis
//!   (the extent split as evenly as it goes, the first processes taking one more).
//! - `{rank}` in OUT: each process writes its own shard of the result, in a temporary file
//!   beside it. `--in-place` (with `{rank}` in INPUT) replaces each process's shard file the
//!   same way; `--in-place=map` is refused, since writing through the files could not be
//!   undone on the others when one process fails.
//! - No `{rank}` in OUT: one output file that every process writes its slice of. The first
//!   process creates it as a temporary file beside OUT — unnamed when every process runs on
//!   its host, the others opening it through its descriptor in `/proc`; named otherwise — and
//!   sends the others where it is; they open it only if it is that very file (see [`SharedOutput`](multiproj_runtime::npy::SharedOutput)) and write exactly their bytes
//!   with positioned writes, not a shared memory map, so that processes on different hosts of
//!   a network file system never write the same page. This works across hosts wherever OUT's
//!   directory is one shared file system seen at the same path.
//!
//! Outputs are put in place (renamed) only when every process has projected and written
//! successfully (an all-reduced flag after each step); a process that fails makes every process
//! stop with an error, and no output is left. A process killed outright makes `mpirun` end the
//! others (OpenMPI with SIGTERM, MPICH's Hydra with SIGKILL): unnamed temporary files vanish
//! with them; a named one (processes on several hosts) is removed on SIGTERM, or after SIGKILL
//! by the next run in its directory on that host. A process with an empty slice writes
//! nothing.
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
    use multiproj_compiler::{DType, Order};
    use multiproj_runtime::npy::{NpyInput, NpyOutput, SharedOutput, TensorView, TensorViewMut};
    use multiproj_runtime::shard::{Communicator, ReduceOp, ShardLayout, project_shard};
    use multiproj_runtime::{DataError, Element, Executor, RadiusTarget, Report};
    use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, ShapeBuilder, Slice};

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
    /// fail returns an error naming the step when another did. A process that failed writes
    /// its error before it tells the others: they then fail too, and mpirun, which aborts the
    /// job when a process exits with an error, could kill it before it wrote anything.
    fn agree<R>(
        comm: &impl Communicator,
        local: Result<R, CliError>,
        step: &str,
    ) -> Result<R, CliError> {
        let local = local.map_err(CliError::report_now);
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
        if output.as_os_str() == "-" {
            return Err(CliError::usage(
                "with --shard-axis the result is written to files, not to standard output",
                Some(
                    "e.g. --output out.npy (one file) or --output 'out.{rank}.npy' (a shard each)",
                ),
            ));
        }
        // One output file that every process writes its slice of.
        let one_output = size > 1 && !has_rank(&output);
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
        // Every process's shape: the same error everywhere if they do not fit together.
        let layout = ShardLayout::exchange(&comm, &shape, info.dtype, axis)?;
        let out = if one_output {
            Out::One(open_one_output(
                &world,
                &comm,
                &output,
                &layout,
                file.order(),
                len,
            )?)
        } else {
            let own = if len > 0 {
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
            Out::Own(agree(&comm, own, "create its output")?)
        };
        let mut out = out;
        // Results for the one output are built here, then written to their place in it.
        let local = match (&out, len > 0) {
            (Out::One(_), true) => Buffer::zeroed(info.dtype, &shape, file.order())
                .map(Some)
                .ok_or_else(|| {
                    CliError::from(DataError::TooLarge {
                        what: "this process's part of the result".into(),
                        shape: shape.clone(),
                    })
                }),
            _ => Ok(None),
        };
        let mut local = agree(&comm, local, "allocate its result")?;

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
            let written = match (&mut out, local.as_mut()) {
                (Out::Own(Some(o)), _) => Some(o.view_mut()),
                (_, Some(b)) => Some(b.view_mut()),
                _ => None,
            };
            // One arm per dtype, with and without a written part (an empty slice — more
            // processes than the axis has entries — has no output, but its part, an empty
            // view, in the collectives).
            macro_rules! run {
                ($t:ty, $x:expr, $o:expr) => {
                    shard::<$t>(
                        &exec,
                        &comm,
                        &proj,
                        &input,
                        &layout,
                        &part.of($x),
                        $o,
                        target,
                    )
                };
            }
            match (file.view(), written) {
                (TensorView::F16(x), Some(TensorViewMut::F16(mut o))) => {
                    run!(multiproj_runtime::half::f16, x, Some(&mut o))
                }
                (TensorView::BF16(x), Some(TensorViewMut::BF16(mut o))) => {
                    run!(multiproj_runtime::half::bf16, x, Some(&mut o))
                }
                (TensorView::F32(x), Some(TensorViewMut::F32(mut o))) => {
                    run!(f32, x, Some(&mut o))
                }
                (TensorView::F64(x), Some(TensorViewMut::F64(mut o))) => {
                    run!(f64, x, Some(&mut o))
                }
                (TensorView::F16(x), None) => run!(multiproj_runtime::half::f16, x, None),
                (TensorView::BF16(x), None) => run!(multiproj_runtime::half::bf16, x, None),
                (TensorView::F32(x), None) => run!(f32, x, None),
                (TensorView::F64(x), None) => run!(f64, x, None),
                (x, Some(o)) => Err(CliError::from(DataError::DTypeMismatch {
                    expected: x.dtype(),
                    found: o.dtype(),
                })),
            }
        }?;
        // The shared input must not have changed under us.
        agree(
            &comm,
            file.check_unchanged().map_err(CliError::from),
            "read its input whole",
        )?;
        let sync = args.sync || in_place;
        match out {
            Out::Own(own) => {
                let committed = match own {
                    // The only copy of a shard replaced in place: durable before the rename,
                    // always.
                    Some(o) => o.commit(sync).map_err(CliError::from),
                    None => Ok(()),
                };
                agree(&comm, committed, "write its output")?;
            }
            Out::One(one) => {
                // Each process writes its slice, and flushes it with --sync; once all have,
                // the first renames the file into place.
                let written = match (&one, &local) {
                    (Some(o), Some(b)) => o
                        .write_part(axis, layout.offsets[rank], &b.view())
                        .map_err(CliError::from),
                    _ => Ok(()),
                };
                drop(local);
                let finished = written.and_then(|()| match one {
                    Some(o) if rank != 0 => o.finish(sync).map(|()| None).map_err(CliError::from),
                    other => Ok(other),
                });
                let first = agree(&comm, finished, "write its part of the output")?;
                let committed = match first {
                    Some(o) => {
                        let _held = crate::signals::Deferred::begin();
                        o.commit(sync).map_err(CliError::from)
                    }
                    None => Ok(()),
                };
                agree(&comm, committed, "put the output in place")?;
            }
        }
        if rank == 0 && (args.stats || args.json) {
            print_stats(&report, size, axis, args.json);
        }
        Ok(())
    }

    /// Where a process's result goes: its own file (none for an empty slice), or its slice of
    /// the one output (the process that created it holds it to commit; a process with an empty
    /// slice holds nothing).
    enum Out {
        Own(Option<NpyOutput>),
        One(Option<SharedOutput>),
    }

    /// A process's part of the result, built in memory before it is written to the one output.
    enum Buffer {
        F16(ArrayD<multiproj_runtime::half::f16>),
        BF16(ArrayD<multiproj_runtime::half::bf16>),
        F32(ArrayD<f32>),
        F64(ArrayD<f64>),
    }

    impl Buffer {
        fn zeroed(dtype: DType, shape: &[usize], order: Order) -> Option<Buffer> {
            let dim = IxDyn(shape).set_f(order == Order::F);
            // Refuse a size that would not fit instead of aborting in the allocator.
            let n = shape.iter().try_fold(1usize, |a, &e| a.checked_mul(e))?;
            n.checked_mul(dtype.size())
                .filter(|&b| b <= isize::MAX as usize)?;
            Some(match dtype {
                DType::F16 => {
                    Buffer::F16(ArrayD::from_elem(dim, multiproj_runtime::half::f16::ZERO))
                }
                DType::BF16 => {
                    Buffer::BF16(ArrayD::from_elem(dim, multiproj_runtime::half::bf16::ZERO))
                }
                DType::F32 => Buffer::F32(ArrayD::zeros(dim)),
                DType::F64 => Buffer::F64(ArrayD::zeros(dim)),
            })
        }

        fn view(&self) -> TensorView<'_> {
            match self {
                Buffer::F16(a) => TensorView::F16(a.view()),
                Buffer::BF16(a) => TensorView::BF16(a.view()),
                Buffer::F32(a) => TensorView::F32(a.view()),
                Buffer::F64(a) => TensorView::F64(a.view()),
            }
        }

        fn view_mut(&mut self) -> TensorViewMut<'_> {
            match self {
                Buffer::F16(a) => TensorViewMut::F16(a.view_mut()),
                Buffer::BF16(a) => TensorViewMut::BF16(a.view_mut()),
                Buffer::F32(a) => TensorViewMut::F32(a.view_mut()),
                Buffer::F64(a) => TensorViewMut::F64(a.view_mut()),
            }
        }
    }

    /// The one output every process writes its slice of: the first process creates it beside
    /// `output` and sends the others its name, which they open only if it is that very file
    /// (see [`SharedOutput::join`]). Agreed: every process fails alike.
    fn open_one_output<C: mpi::traits::Communicator>(
        world: &C,
        comm: &MpiComm<'_, C>,
        output: &Path,
        layout: &ShardLayout,
        order: Order,
        len: usize,
    ) -> Result<Option<SharedOutput>, CliError> {
        use mpi::traits::Root;
        use std::os::unix::ffi::{OsStrExt, OsStringExt};

        let root = world.process_at_rank(0);
        let host = mpi::environment::processor_name().unwrap_or_default();
        let rank = comm.rank();
        // Whether every process runs on this host: then the file needs no name (nothing is
        // left behind however the job ends); otherwise the others open it by its name.
        let tag = {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            host.hash(&mut h);
            (h.finish() >> 11) as f64
        };
        let hosts = comm
            .all_gather(&[tag])
            .map_err(|e| CliError::from(DataError::Comm(e)))?;
        let one_host = hosts.iter().all(|h| h.first() == hosts[0].first());
        let created = if rank == 0 {
            Target::resolve(output)
                .and_then(|t| {
                    SharedOutput::create(t, layout.dtype, &layout.global_shape, order, !one_host)
                })
                .and_then(|o| o.identity().map(|id| (o, id)))
                .map(Some)
                .map_err(CliError::from)
        } else {
            Ok(None)
        };
        let created = agree(comm, created, "create the output")?;
        // The first process's file: its order, device, inode, host and name, as one message.
        let mut message = match &created {
            Some((o, (dev, ino))) => {
                let order = if order == Order::F { "F" } else { "C" };
                let mut m = format!("{order}\n{dev}\n{ino}\n{host}\n").into_bytes();
                m.extend_from_slice(o.name().as_os_str().as_bytes());
                m
            }
            None => Vec::new(),
        };
        let mut n = message.len() as u64;
        root.broadcast_into(&mut n);
        message.resize(n as usize, 0);
        root.broadcast_into(&mut message[..]);
        let joined = if let Some((o, _)) = created {
            Ok(Some(o))
        } else if len > 0 {
            // Order, device, inode and host are text; the name (the rest) is raw bytes.
            let fields: Vec<&[u8]> = message.splitn(5, |&b| b == b'\n').collect();
            let text =
                |i: usize| String::from_utf8_lossy(fields.get(i).copied().unwrap_or_default());
            let (first_order, dev, ino, first_host) = (text(0), text(1), text(2), text(3));
            let name = std::path::PathBuf::from(std::ffi::OsString::from_vec(
                fields.get(4).copied().unwrap_or_default().to_vec(),
            ));
            let order = if first_order == "F" {
                Order::F
            } else {
                Order::C
            };
            let identity = (first_host == host.as_str())
                .then(|| Some((dev.parse().ok()?, ino.parse().ok()?)))
                .flatten();
            SharedOutput::join(
                &name,
                output,
                layout.dtype,
                &layout.global_shape,
                order,
                identity,
            )
            .map(Some)
            .map_err(CliError::from)
        } else {
            Ok(None)
        };
        agree(comm, joined, "open the output the first process created")
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
        layout: &ShardLayout,
        x: &ArrayViewD<'_, T>,
        out: Option<&mut ArrayViewMutD<'_, T>>,
        target: RadiusTarget,
    ) -> Result<Report, CliError> {
        // The same on every process: they fail here alike or not at all.
        let global = plan_for(proj, &layout.global_info(), input)?;
        let local = match &out {
            Some(_) => plan_for(proj, &multiproj::tensor_info(x), input).map(Some),
            None => Ok(None),
        };
        let local = agree(comm, local, "plan its shard")?;
        let report = match out {
            Some(o) => project_shard(exec, comm, layout, &global, local.as_deref(), x, o, target),
            None => {
                // An empty shard: nothing to read or write, but its part in the collectives.
                let mut none =
                    ndarray::ArrayD::<T>::from_elem(ndarray::IxDyn(x.shape()), T::from_f64(0.0));
                project_shard(
                    exec,
                    comm,
                    layout,
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
