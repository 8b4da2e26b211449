//! `multiproj project SPEC INPUT.npy (--output OUT.npy | --in-place[=replace|map])`: the
//! projection itself.
//!
//! Everything that can be judged without reading data is judged first (flags, spec, radius,
//! whether the output would overwrite the input), then the input is opened and the spec bound
//! to it, and only then is an output created. An output file is a temporary file (unnamed, on
//! Linux) renamed onto the target on success and gone on any failure, signal or crash; a stream
//! output (`-`, a FIFO, a character device) is built in memory and written whole at the end.
//! `--in-place` is the same as an output onto the input's own name, synced before the rename,
//! under an advisory lock; `--in-place=map` writes through the input's map instead, holding
//! SIGINT/SIGTERM/SIGHUP/SIGQUIT until the write pass is over. The input is checked, after the
//! run, to have kept its size; a fault reading a file cut short under us is explained by the
//! SIGBUS handler (`crate::signals`).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ndarray::{ArrayViewD, ArrayViewMutD};

use multiproj::Projection;
use multiproj_compiler::Plan;
use multiproj_runtime::files::Target;
use multiproj_runtime::interp::count_nonzeros;
use multiproj_runtime::npy::{NpyInPlace, NpyInput, NpyOutput, TensorView, TensorViewMut};
use multiproj_runtime::verify::Agreement;
use multiproj_runtime::{
    Backend, DataError, Element, Executor, Progress, RadiusTarget, Report, Stage,
};

use crate::args::{InPlaceMode, ProjectArgs};
use crate::commands::{choose_backend, file_size, plan_for, read_spec, target_of, with_threads};
use crate::diagnostics::CliError;
use crate::progress::{self, Bar};
use crate::signals::{self, Deferred, Mapped};
use crate::stats::Stats;

pub fn run(args: &ProjectArgs) -> Result<(), CliError> {
    if let Some(axis) = args.shard_axis {
        return super::shard::run(args, axis);
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
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if let Some(out) = &args.output
        && !to_stdout
        && same_file(&args.input, out)
    {
        return Err(CliError::usage(
            "the output would overwrite the input; pass --in-place to project the file in place",
            Some("name another file with --output, or use --in-place instead of --output"),
        ));
    }
    let stats = progress::run(args.progress, file_size(&args.input), |bar| {
        let job = Job {
            args,
            proj: &proj,
            target,
            backend,
            want_stats: args.stats || args.json,
            bar,
        };
        with_threads(args.threads, || job.run())?
    })?;
    match stats {
        Some(stats) if to_stdout => {
            // Standard output holds the tensor: the statistics go to stderr.
            use std::io::Write;
            let text = if args.json {
                format!("{}\n", stats.json())
            } else {
                stats.human()
            };
            let _ = std::io::stderr().write_all(text.as_bytes());
            Ok(())
        }
        Some(stats) => stats.print(args.json),
        None => Ok(()),
    }
}

/// Whether writing `output` would replace `input`: the same path once symbolic links and `..`
/// are resolved, or (on Unix) another name for the same file (a hard link).
fn same_file(input: &Path, output: &Path) -> bool {
    // Either file missing: opening the input or creating the output reports it.
    let (Ok(a), Ok(b)) = (fs::canonicalize(input), fs::canonicalize(output)) else {
        return false;
    };
    if a == b {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (fs::metadata(&a), fs::metadata(&b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    false
}

/// One projection, with everything decided that could be decided without the data.
struct Job<'a> {
    args: &'a ProjectArgs,
    proj: &'a Projection,
    target: RadiusTarget,
    /// The backend to run (`--verify` also runs the other one).
    backend: Backend,
    want_stats: bool,
    bar: Option<&'a Bar>,
}

/// What a typed run returns: the runtime's report, and for `--stats` the counts and the norm
/// that need another look at the data.
struct Outcome {
    report: Report,
    measured: Option<Measured>,
    verified: Option<Agreement>,
    /// Time to write the result out (commit, flush).
    write: Duration,
}

/// The progress hook of a run: forwards to the bar, and for `--in-place=map` holds signals from
/// the start of the apply pass (the first write to the file) until [`end`](Self::end).
struct Hook<'a> {
    bar: Option<&'a Bar>,
    defer_apply: bool,
    deferred: Mutex<Option<Deferred>>,
}

impl Hook<'_> {
    /// Ends the deferral (acting on a signal that arrived during it).
    fn end(&self) {
        let held = self
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(held);
    }
}

impl Progress for Hook<'_> {
    fn update(&self, stage: Stage, done: u64, total: u64) {
        if let Some(bar) = self.bar {
            bar.update(stage, done, total);
        }
    }

    fn start(&self, stage: Stage, total: u64) {
        if self.defer_apply && stage == Stage::Apply {
            let mut held = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
            held.get_or_insert_with(Deferred::begin);
        }
        if let Some(bar) = self.bar {
            bar.start(stage, total);
        }
    }
}

/// Tells the signal handlers what an interruption from now on leaves (`leaves`), and how to
/// explain a fault reading `file` (it was cut short under us).
fn expect_interruption(file: &NpyInput, leaves: &str) {
    signals::set_leaves(leaves);
    signals::watch(
        Mapped::Input,
        file.mapped_range(),
        signals::input_message(file.path(), leaves),
    );
}

/// How the statistics name the output.
fn target_name(output: &Option<std::path::PathBuf>) -> String {
    match output.as_deref() {
        Some(p) if p == Path::new("-") => "<stdout>".into(),
        Some(p) => p.display().to_string(),
        None => String::new(),
    }
}

/// `--in-place` builds a second copy beside the input; when that cannot be made (no space, a
/// directory we may not write), say so and name the mode that needs none.
fn no_second_copy(input: &Path, e: DataError) -> DataError {
    match e {
        DataError::Io { action, source, .. } => DataError::InPlaceRefused {
            path: input.to_path_buf(),
            reason: format!(
                "the new copy beside it could not be made (could not {action} it: {source})"
            ),
            help: "--in-place builds the result beside the file and renames it over the file; \
                   --in-place=map writes through the file itself and needs neither the space nor \
                   a writable directory (but an interruption can leave it partly projected)",
        },
        e => e,
    }
}

/// Replacing a file with other hard links would leave the other names with the old data.
pub(crate) fn refuse_hard_links(input: &Path, meta: &fs::Metadata) -> Result<(), DataError> {
    use std::os::unix::fs::MetadataExt;
    if meta.nlink() > 1 {
        return Err(DataError::InPlaceRefused {
            path: input.to_path_buf(),
            reason: format!(
                "it has {} hard links, and replacing it would leave the other names with the \
                 old data",
                meta.nlink()
            ),
            help: "use --in-place=map to write through the file itself (not crash-safe), or \
                   write the result elsewhere with --output",
        });
    }
    Ok(())
}

struct Measured {
    nonzeros_before: usize,
    nonzeros_after: usize,
    norm_after: f64,
}

impl Job<'_> {
    /// The runtime's options: the backend, and the hook that hears of the stages.
    fn exec<'h>(&self, hook: &'h Hook<'_>) -> Executor<'h> {
        Executor::new(self.backend).with_progress(hook)
    }

    /// The hook for a run: the progress bar, if any; with `defer_apply`, SIGINT and friends
    /// wait from the start of the apply pass until [`Hook::end`].
    fn hook(&self, defer_apply: bool) -> Hook<'_> {
        Hook {
            bar: self.bar,
            defer_apply,
            deferred: Mutex::new(None),
        }
    }

    /// Names the step the progress bar shows.
    fn phase(&self, name: &'static str) {
        if let Some(bar) = self.bar {
            bar.phase(name);
        }
    }

    fn element_size(&self, bytes: usize) {
        if let Some(bar) = self.bar {
            bar.element_size(bytes);
        }
    }

    fn run(&self) -> Result<Option<Stats>, CliError> {
        let input = &self.args.input;
        let (tensor, order, plan, mut outcome, written) =
            match (&self.args.output, self.args.in_place) {
                (Some(target), _) => {
                    let file = NpyInput::open(input)?;
                    let (tensor, plan) = self.bind(&file, input)?;
                    let leaves = "no output was written";
                    expect_interruption(&file, leaves);
                    let target = Target::resolve(target)?;
                    let out =
                        NpyOutput::create_at(target, tensor.dtype, &tensor.shape, file.order())?;
                    let outcome = self.project_to(&plan, &file, out, self.args.sync, leaves)?;
                    (
                        tensor,
                        file.order(),
                        plan,
                        outcome,
                        target_name(&self.args.output),
                    )
                }
                (None, Some(InPlaceMode::Replace) | None) => {
                    // The file itself is replaced, wherever a symbolic link to it points.
                    let real = fs::canonicalize(input).map_err(|source| DataError::Io {
                        path: input.clone(),
                        action: "open",
                        source,
                    })?;
                    let file = NpyInput::open_locked(input)?;
                    let meta = file.metadata()?;
                    refuse_hard_links(input, &meta)?;
                    let (tensor, plan) = self.bind(&file, input)?;
                    let leaves = format!("'{}' is unchanged", input.display());
                    expect_interruption(&file, &leaves);
                    let target = Target::File {
                        path: real,
                        replaces: Some(meta),
                    };
                    let out =
                        NpyOutput::create_at(target, tensor.dtype, &tensor.shape, file.order())
                            .map_err(|e| no_second_copy(input, e))?;
                    // The only copy is replaced: durable before the rename, always.
                    let outcome = self.project_to(&plan, &file, out, true, &leaves)?;
                    (
                        tensor,
                        file.order(),
                        plan,
                        outcome,
                        input.display().to_string(),
                    )
                }
                (None, Some(InPlaceMode::Map)) => {
                    let mut file = NpyInPlace::open(input)?;
                    let tensor = file.info();
                    self.element_size(tensor.dtype.size());
                    let plan = plan_for(self.proj, &tensor, input)?;
                    // Signals wait while the write pass runs (see `Hook`): before it, nothing has
                    // been written.
                    signals::set_leaves(format!("'{}' is unchanged", input.display()));
                    signals::watch(
                        Mapped::Output,
                        file.mapped_range(),
                        signals::output_message(input, "the file may be partly projected"),
                    );
                    let hook = self.hook(true);
                    let outcome = match file.view_mut() {
                        TensorViewMut::F16(mut x) => self.in_place(&hook, &plan, &mut x),
                        TensorViewMut::BF16(mut x) => self.in_place(&hook, &plan, &mut x),
                        TensorViewMut::F32(mut x) => self.in_place(&hook, &plan, &mut x),
                        TensorViewMut::F64(mut x) => self.in_place(&hook, &plan, &mut x),
                    }
                    .map_err(|e| CliError::data_in(e, "cannot project", input));
                    let order = file.order();
                    let mut outcome = outcome?;
                    self.phase("write");
                    let start = Instant::now();
                    file.flush()?;
                    signals::set_leaves(format!(
                        "'{}' had been projected completely",
                        input.display()
                    ));
                    hook.end();
                    outcome.write = start.elapsed();
                    (tensor, order, plan, outcome, input.display().to_string())
                }
            };
        // Writing the result is part of the run: shown, and in the total.
        outcome.report.stages.push((Stage::Write, outcome.write));
        let Some(m) = outcome.measured else {
            return Ok(None);
        };
        Ok(Some(Stats {
            spec: self.proj.spec().canonical(),
            input: input.display().to_string(),
            output: written,
            in_place: self.args.in_place.is_some(),
            dtype: tensor.dtype,
            shape: tensor.shape,
            order,
            backend: self.backend,
            threads: rayon::current_num_threads(),
            innermost: plan.innermost().norm,
            exact: plan.method().is_exact(),
            report: outcome.report,
            norm_after: m.norm_after,
            nonzeros_before: m.nonzeros_before,
            nonzeros_after: m.nonzeros_after,
            verified: outcome.verified,
        }))
    }

    /// Binds the spec to the input's tensor.
    fn bind(
        &self,
        file: &NpyInput,
        input: &Path,
    ) -> Result<(multiproj_compiler::TensorInfo, Arc<Plan>), CliError> {
        let tensor = file.info();
        self.element_size(tensor.dtype.size());
        let plan = plan_for(self.proj, &tensor, input)?;
        Ok((tensor, plan))
    }

    /// Projects `file` into `out` and commits it (`sync`: durably), checking that the input
    /// kept its size while it was read.
    fn project_to(
        &self,
        plan: &Plan,
        file: &NpyInput,
        mut out: NpyOutput,
        sync: bool,
        leaves: &str,
    ) -> Result<Outcome, CliError> {
        let input = file.path();
        if !out.is_stream() {
            signals::watch(
                Mapped::Output,
                out.mapped_range(),
                signals::output_message(out.target(), leaves),
            );
        }
        let hook = self.hook(false);
        let outcome = match (file.view(), out.view_mut()) {
            (TensorView::F16(x), TensorViewMut::F16(mut o)) => {
                self.out_of_place(&hook, plan, &x, &mut o)
            }
            (TensorView::BF16(x), TensorViewMut::BF16(mut o)) => {
                self.out_of_place(&hook, plan, &x, &mut o)
            }
            (TensorView::F32(x), TensorViewMut::F32(mut o)) => {
                self.out_of_place(&hook, plan, &x, &mut o)
            }
            (TensorView::F64(x), TensorViewMut::F64(mut o)) => {
                self.out_of_place(&hook, plan, &x, &mut o)
            }
            (x, o) => Err(DataError::DTypeMismatch {
                expected: x.dtype(),
                found: o.dtype(),
            }),
        }
        .map_err(|e| CliError::data_in(e, "cannot project", input));
        let mut outcome = outcome?;
        // A writer that changed the file under us may have given us torn numbers.
        file.check_unchanged()?;
        self.phase("write");
        let start = Instant::now();
        {
            let _held = Deferred::begin();
            out.commit(sync)?;
            // A signal held during the commit is obeyed now, and says so.
            signals::set_leaves("the result had been written completely");
        }
        outcome.write = start.elapsed();
        Ok(outcome)
    }

    fn out_of_place<T: Element>(
        &self,
        hook: &Hook<'_>,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
    ) -> Result<Outcome, DataError> {
        self.phase("project");
        let before = self.want_stats.then(|| count_nonzeros(x));
        let report = self.exec(hook).project_to(plan, x, out, self.target)?;
        let verified = self.verify(plan, x, &out.view(), report.radius)?;
        let measured = self.measure(plan, before, &out.view())?;
        Ok(Outcome {
            report,
            measured,
            verified,
            write: Duration::ZERO,
        })
    }

    fn in_place<T: Element>(
        &self,
        hook: &Hook<'_>,
        plan: &Plan,
        data: &mut ArrayViewMutD<'_, T>,
    ) -> Result<Outcome, DataError> {
        self.phase("project");
        let before = self.want_stats.then(|| count_nonzeros(&data.view()));
        // With --verify, both backends first project into memory and must agree before the
        // file is touched.
        let verified = if self.args.verify {
            self.phase("verify");
            let mut ours = multiproj_runtime::verify::try_alloc_output::<T>(plan)?;
            let plain = self.hook(false);
            let report = self.exec(&plain).project_to(
                plan,
                &data.view(),
                &mut ours.view_mut(),
                self.target,
            )?;
            let verified =
                self.verify(plan, &data.view(), &ours.view().into_dyn(), report.radius)?;
            self.phase("project");
            verified
        } else {
            None
        };
        let report = self
            .exec(hook)
            .project_in_place_to(plan, data, self.target)?;
        let measured = self.measure(plan, before, &data.view())?;
        Ok(Outcome {
            report,
            measured,
            verified,
            write: Duration::ZERO,
        })
    }

    /// `--verify`: the other backend must produce the same result (see
    /// [`multiproj_runtime::verify`]).
    fn verify<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        result: &ArrayViewD<'_, T>,
        radius: f64,
    ) -> Result<Option<Agreement>, DataError> {
        if !self.args.verify {
            return Ok(None);
        }
        self.phase("verify");
        let plain = self.hook(false);
        let (agreement, _) = multiproj_runtime::verify::check_against_with(
            plan,
            x,
            result,
            radius,
            &self.exec(&plain),
        )?;
        Ok(Some(agreement))
    }

    /// The statistics that need the result: its norm and its nonzeros.
    fn measure<T: Element>(
        &self,
        plan: &Plan,
        nonzeros_before: Option<usize>,
        result: &ArrayViewD<'_, T>,
    ) -> Result<Option<Measured>, DataError> {
        let Some(nonzeros_before) = nonzeros_before else {
            return Ok(None);
        };
        self.phase("stats");
        let plain = self.hook(false);
        Ok(Some(Measured {
            nonzeros_before,
            nonzeros_after: count_nonzeros(result),
            norm_after: self.exec(&plain).norm(plan, result)?,
        }))
    }
}
