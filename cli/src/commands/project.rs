//! `multiproj project SPEC INPUT.npy (--output OUT.npy | --in-place)`: the projection itself.
//!
//! Everything that can be judged without reading data is judged first (flags, spec, radius,
//! whether the output would overwrite the input), then the input is opened and the spec bound
//! to it, and only then is an output created. The output is a temporary file renamed onto the
//! target on success and removed on any failure (including a panic, which unwinds through its
//! destructor), so a failed run leaves nothing behind and never touches the input. In place, the
//! runtime writes nothing unless its analysis of the whole tensor succeeded.

use std::fs;
use std::path::Path;

use ndarray::{ArrayViewD, ArrayViewMutD};

use multiproj_compiler::Plan;
use multiproj_grammar::Spec;
use multiproj_runtime::interp::count_nonzeros;
use multiproj_runtime::npy::{NpyInPlace, NpyInput, NpyOutput, TensorView, TensorViewMut};
use multiproj_runtime::verify::Agreement;
use multiproj_runtime::{Backend, DataError, Element, Executor, Report};

use crate::args::ProjectArgs;
use crate::commands::{choose_backend, file_size, plan_for, read_spec, with_threads};
use crate::diagnostics::CliError;
use crate::progress::{self, Bar};
use crate::stats::Stats;

pub fn run(args: &ProjectArgs) -> Result<(), CliError> {
    let backend = choose_backend(args.backend.as_deref())?;
    let (spec, _) = read_spec(&args.spec)?;
    let radius =
        multiproj_compiler::resolve_radius(&spec.source, spec.radius.as_ref(), args.radius)?;
    if let Some(out) = &args.output
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
            spec: &spec,
            radius,
            backend,
            want_stats: args.stats || args.json,
            bar,
        };
        with_threads(args.threads, || job.run())?
    })?;
    match stats {
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
    spec: &'a Spec,
    radius: f64,
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
}

struct Measured {
    nonzeros_before: usize,
    nonzeros_after: usize,
    norm_after: f64,
}

impl Job<'_> {
    /// The runtime's options: the backend, and the progress bar if there is one.
    fn exec(&self) -> Executor<'_> {
        let exec = Executor::new(self.backend);
        match self.bar {
            Some(bar) => exec.with_progress(bar),
            None => exec,
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
        let (tensor, order, plan, outcome, written) = match &self.args.output {
            Some(target) => {
                let file = NpyInput::open(input)?;
                let tensor = file.info();
                self.element_size(tensor.dtype.size());
                let plan = plan_for(self.spec, &tensor, input)?;
                let mut out = NpyOutput::create(target, tensor.dtype, &tensor.shape, file.order())?;
                let outcome = match (file.view(), out.view_mut()) {
                    (TensorView::F32(x), TensorViewMut::F32(mut o)) => {
                        self.out_of_place(&plan, &x, &mut o)
                    }
                    (TensorView::F64(x), TensorViewMut::F64(mut o)) => {
                        self.out_of_place(&plan, &x, &mut o)
                    }
                    (x, o) => Err(DataError::DTypeMismatch {
                        expected: x.dtype(),
                        found: o.dtype(),
                    }),
                }
                .map_err(|e| CliError::data_in(e, "cannot project", input))?;
                self.phase("write");
                out.commit()?;
                (tensor, file.order(), plan, outcome, target.as_path())
            }
            None => {
                let mut file = NpyInPlace::open(input)?;
                let tensor = file.info();
                self.element_size(tensor.dtype.size());
                let plan = plan_for(self.spec, &tensor, input)?;
                let outcome = match file.view_mut() {
                    TensorViewMut::F32(mut x) => self.in_place(&plan, &mut x),
                    TensorViewMut::F64(mut x) => self.in_place(&plan, &mut x),
                }
                .map_err(|e| CliError::data_in(e, "cannot project", input))?;
                let order = file.order();
                self.phase("write");
                file.flush()?;
                (tensor, order, plan, outcome, input.as_path())
            }
        };
        let Some(m) = outcome.measured else {
            return Ok(None);
        };
        Ok(Some(Stats {
            spec: self.spec.canonical(),
            input: input.display().to_string(),
            output: written.display().to_string(),
            in_place: self.args.in_place,
            dtype: tensor.dtype,
            shape: tensor.shape,
            order,
            backend: self.backend,
            threads: rayon::current_num_threads(),
            innermost: plan.innermost().norm,
            report: outcome.report,
            norm_after: m.norm_after,
            nonzeros_before: m.nonzeros_before,
            nonzeros_after: m.nonzeros_after,
            verified: outcome.verified,
        }))
    }

    fn out_of_place<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        out: &mut ArrayViewMutD<'_, T>,
    ) -> Result<Outcome, DataError> {
        self.phase("project");
        let before = self.want_stats.then(|| count_nonzeros(x));
        let report = self.exec().project(plan, x, out, self.radius)?;
        let verified = self.verify(plan, x, &out.view())?;
        let measured = self.measure(plan, before, &out.view())?;
        Ok(Outcome {
            report,
            measured,
            verified,
        })
    }

    fn in_place<T: Element>(
        &self,
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
            self.exec()
                .project(plan, &data.view(), &mut ours.view_mut(), self.radius)?;
            let verified = self.verify(plan, &data.view(), &ours.view().into_dyn())?;
            self.phase("project");
            verified
        } else {
            None
        };
        let report = self.exec().project_in_place(plan, data, self.radius)?;
        let measured = self.measure(plan, before, &data.view())?;
        Ok(Outcome {
            report,
            measured,
            verified,
        })
    }

    /// `--verify`: the other backend must produce the same result (see
    /// [`multiproj_runtime::verify`]).
    fn verify<T: Element>(
        &self,
        plan: &Plan,
        x: &ArrayViewD<'_, T>,
        result: &ArrayViewD<'_, T>,
    ) -> Result<Option<Agreement>, DataError> {
        if !self.args.verify {
            return Ok(None);
        }
        self.phase("verify");
        let (agreement, _) = multiproj_runtime::verify::check_against_with(
            plan,
            x,
            result,
            self.radius,
            &self.exec(),
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
        Ok(Some(Measured {
            nonzeros_before,
            nonzeros_after: count_nonzeros(result),
            norm_after: self.exec().norm(plan, result)?,
        }))
    }
}
