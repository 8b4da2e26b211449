//! The kernels of one run: compiled (or found in the caches) once, before the passes, and
//! checked against each pass's key before it is called.

use multiproj_compiler::{ApplyOp, Plan};

use super::internal;
use super::module::{
    ApplyKernel, CodegenError, GatherKernel, Jit, Kernel, KernelKey, Pass, ReduceKernel,
};
use crate::backend::Work;
use crate::error::DataError;

/// The kernels of the passes one run makes, compiled (or found in the caches) once by
/// [`Jit::kernels`] and handed to every pass. A kernel is only run for a plan whose key it was
/// compiled for: handed kernels of another plan's structure, a pass fails instead.
#[derive(Clone, Debug, Default)]
pub struct Kernels {
    reduce: Option<ReduceKernel>,
    gather: Option<GatherKernel>,
    apply: Option<ApplyKernel>,
    apply_in_place: Option<ApplyKernel>,
}

impl Jit {
    /// Compiles (or finds in the caches) the kernels of the passes `work` of `plan`: the gather
    /// only when the plan has a threshold step.
    pub fn kernels(&self, plan: &Plan, work: Work) -> Result<Kernels, DataError> {
        let err = |e: CodegenError| internal(&e);
        Ok(Kernels {
            reduce: work
                .reduce
                .then(|| self.reduce_kernel(plan))
                .transpose()
                .map_err(err)?,
            gather: (work.threshold && plan.has_threshold())
                .then(|| self.gather_kernel(plan))
                .transpose()
                .map_err(err)?,
            apply: work
                .apply
                .then(|| self.apply_kernel(plan, false))
                .transpose()
                .map_err(err)?,
            apply_in_place: work
                .apply_in_place
                .then(|| self.apply_kernel(plan, true))
                .transpose()
                .map_err(err)?,
        })
    }
}

impl Kernels {
    /// The reduce kernel, if it was prepared and fits `plan`.
    pub fn reduce(&self, plan: &Plan) -> Result<&ReduceKernel, DataError> {
        let pass = Pass::Reduce(plan.innermost().norm);
        fitting(self.reduce.as_ref(), plan, pass)
    }

    /// The gather kernel of the threshold pass, if it was prepared and fits `plan`.
    pub fn gather(&self, plan: &Plan) -> Result<&GatherKernel, DataError> {
        fitting(self.gather.as_ref(), plan, Pass::Gather)
    }

    /// The apply kernel (in place or not), if it was prepared and fits `plan`.
    pub fn apply(&self, plan: &Plan, in_place: bool) -> Result<&ApplyKernel, DataError> {
        let op = ApplyOp::for_norm(plan.innermost().norm).into();
        let kernel = if in_place {
            self.apply_in_place.as_ref()
        } else {
            self.apply.as_ref()
        };
        fitting(kernel, plan, Pass::Apply { op, in_place })
    }
}

/// `kernel` if it was compiled for `pass` of a plan with `plan`'s structure: its loop-nest
/// depth, element type and shape are what the plan's descriptor and views give it.
fn fitting<'k, F>(
    kernel: Option<&'k Kernel<F>>,
    plan: &Plan,
    pass: Pass,
) -> Result<&'k Kernel<F>, DataError> {
    let want = KernelKey::for_plan(plan, pass);
    match kernel {
        Some(k) if *k.key() == want => Ok(k),
        Some(k) => Err(DataError::Internal(format!(
            "kernel {} handed to a pass that needs {want}",
            k.key()
        ))),
        None => Err(DataError::Internal(format!(
            "kernel {want} was not prepared for this pass"
        ))),
    }
}
