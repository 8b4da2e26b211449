//! Progress reporting: every pass of both backends ticks exactly the tensor's element count (one
//! chunk and many, row- and column-wise groups, both threshold schedules, C and Fortran order),
//! the executor announces the stages in order with their totals and ends each at its total, and
//! a hook changes no result.

use std::sync::Mutex;

use ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};

use multiproj_compiler::{Plan, TensorInfo};
use multiproj_runtime::backend::Passes;
use multiproj_runtime::progress::Ticker;
use multiproj_runtime::solve::{Aggregates, GroupAction};
use multiproj_runtime::verify::alloc_output;
use multiproj_runtime::{Backend, Element, Executor, Interpreter, Stage, interp};

mod support;
/// The JIT's passes, one at a time.
mod jit {
    pub use super::support::*;
    pub use multiproj_runtime::jit::global;
}

/// Specs with row-wise and column-wise groups; the l1-innermost ones need the threshold stage.
const SPECS: [&str; 6] = [
    "l1 over dim0 of linf over dim1",
    "l1 over dim1 of linf over dim0",
    "l1 over dim0 of l1 over dim1",
    "l1 over dim1 of l1 over dim0",
    "l1 over dim0 of l2 over dim1",
    "l2 over dims0..1",
];

/// One chunk (below `PARALLEL_MIN`), and several chunks of `CHUNK_ELEMENTS`.
const SHAPES: [[usize; 2]; 2] = [[12, 7], [1100, 530]];

/// Pseudo-random entries; the first half of the rows is weak, so that with row-wise groups whole
/// chunks have no group that needs a threshold.
fn tensor(shape: [usize; 2], fortran: bool) -> ArrayD<f64> {
    let f = |i: IxDyn| {
        let k = (i[0] * 7919 + i[1] * 104_729) % 1009;
        let weak = if i[0] < shape[0] / 2 { 1e-3 } else { 1.0 };
        (k as f64 - 504.0) / 97.0 * (1.0 + (i[0] % 5) as f64) * weak
    };
    if fortran {
        ArrayD::from_shape_fn(IxDyn(&shape).f(), f)
    } else {
        ArrayD::from_shape_fn(IxDyn(&shape), f)
    }
}

fn plan_for<T: Element>(spec: &str, x: &ArrayViewD<'_, T>) -> Plan {
    let info = TensorInfo {
        shape: x.shape().to_vec(),
        strides: x.strides().to_vec(),
        dtype: T::DTYPE,
    };
    let spec = multiproj_grammar::parse(spec).unwrap();
    multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
}

/// A ticker that counts (a ticker without a hook counts nothing).
fn counting(stage: Stage, total: usize) -> Ticker<'static> {
    static QUIET: fn(Stage, u64, u64) = |_, _, _| {};
    Ticker::new(Some(&QUIET), stage, total)
}

fn radius_for(plan: &Plan, x: &ArrayViewD<'_, f64>) -> f64 {
    0.3 * Aggregates::reduce_up(plan, interp::reduce(plan, x).unwrap()).norm()
}

fn each_case(mut f: impl FnMut(&str, &Plan, &ArrayViewD<'_, f64>)) {
    for spec in SPECS {
        for shape in SHAPES {
            for fortran in [false, true] {
                let x = tensor(shape, fortran);
                let plan = plan_for(spec, &x.view());
                f(
                    &format!("{spec} {shape:?} fortran={fortran}"),
                    &plan,
                    &x.view(),
                );
            }
        }
    }
}

#[test]
fn every_pass_ticks_exactly_the_element_count() {
    let jit_ = jit::global().unwrap();
    each_case(|ctx, plan, x| {
        let len = x.len() as u64;
        let t = counting(Stage::Reduce, x.len());
        let inner = jit::reduce_with(jit_, plan, x, &t).unwrap();
        assert_eq!(t.done(), len, "{ctx}: jit reduce");
        let t = counting(Stage::Reduce, x.len());
        assert_eq!(
            Interpreter.reduce(&(), plan, x, &t).unwrap(),
            interp::reduce(plan, x).unwrap()
        );
        assert_eq!(t.done(), len, "{ctx}: interp reduce");

        let agg = Aggregates::reduce_up(plan, inner);
        let radii = agg.solve(plan, radius_for(plan, x));
        let actions = agg.actions(plan, &radii);
        let needs_threshold = actions
            .iter()
            .any(|a| matches!(a, GroupAction::NeedsThreshold(_)));
        assert_eq!(
            needs_threshold,
            ctx.contains("of l1"),
            "{ctx}: the l1-innermost cases exercise the threshold stage"
        );
        let mut decided = actions.clone();
        if needs_threshold {
            let t = counting(Stage::Threshold, x.len());
            jit::threshold_with(jit_, plan, x, &mut decided, &t).unwrap();
            assert_eq!(t.done(), len, "{ctx}: jit threshold");
            let mut by_interp = actions.clone();
            let t = counting(Stage::Threshold, x.len());
            Interpreter
                .threshold(&(), plan, x, &mut by_interp, &t)
                .unwrap();
            assert_eq!(t.done(), len, "{ctx}: interp threshold");
        }

        let mut out = alloc_output::<f64>(plan);
        let t = counting(Stage::Apply, x.len());
        jit::apply_with(jit_, plan, &decided, x, &mut out.view_mut(), &t).unwrap();
        assert_eq!(t.done(), len, "{ctx}: jit apply");
        let t = counting(Stage::Apply, x.len());
        Interpreter
            .apply(&(), plan, &decided, x, &mut out.view_mut(), &t)
            .unwrap();
        assert_eq!(t.done(), len, "{ctx}: interp apply");

        let mut data = x.to_owned();
        let t = counting(Stage::Apply, x.len());
        jit::apply_in_place_with(jit_, plan, &decided, &mut data.view_mut(), &t).unwrap();
        assert_eq!(t.done(), len, "{ctx}: jit apply in place");
        let mut data = x.to_owned();
        let t = counting(Stage::Apply, x.len());
        Interpreter
            .apply_in_place(&(), plan, &decided, &mut data.view_mut(), &t)
            .unwrap();
        assert_eq!(t.done(), len, "{ctx}: interp apply in place");
    });
}

/// Everything a hook heard, in order.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(Stage, u64, u64)>>,
}

impl multiproj_runtime::Progress for Recorder {
    fn update(&self, stage: Stage, done: u64, total: u64) {
        self.events.lock().unwrap().push((stage, done, total));
    }
}

impl Recorder {
    /// The stages in the order they started, with their totals, after checking that each ended
    /// at its total and no count went past it.
    fn stages(&self, ctx: &str) -> Vec<(Stage, u64)> {
        let events = self.events.lock().unwrap();
        let mut stages: Vec<(Stage, u64, u64)> = Vec::new();
        for &(stage, done, total) in events.iter() {
            assert!(done <= total, "{ctx}: {stage} at {done} of {total}");
            match stages.last_mut() {
                Some((s, t, max)) if *s == stage && *t == total && done > 0 => {
                    *max = (*max).max(done);
                }
                _ => {
                    assert_eq!(done, 0, "{ctx}: {stage} starts at 0");
                    stages.push((stage, total, 0));
                }
            }
        }
        for &(stage, total, max) in &stages {
            assert_eq!(max, total, "{ctx}: {stage} ends at its total");
        }
        stages.into_iter().map(|(s, t, _)| (s, t)).collect()
    }
}

#[test]
fn the_executor_reports_every_stage_and_a_hook_changes_nothing() {
    each_case(|ctx, plan, x| {
        let radius = radius_for(plan, x);
        let len = x.len() as u64;
        for backend in [Backend::Jit, Backend::Interp] {
            let ctx = format!("{ctx} {backend}");
            let quiet = Executor::new(backend);
            let rec = Recorder::default();
            let heard = Executor::new(backend).with_progress(&rec);

            let mut expected = alloc_output::<f64>(plan);
            let report = quiet
                .project(plan, x, &mut expected.view_mut(), radius)
                .unwrap();
            let mut out = alloc_output::<f64>(plan);
            let report_heard = heard.project(plan, x, &mut out.view_mut(), radius).unwrap();
            assert!(
                out.iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{ctx}: the result changed"
            );
            let mut expected_stages = Vec::new();
            if backend == Backend::Jit {
                expected_stages.push((Stage::Compile, 0));
            }
            // The plan's steps, by stage: the upper reductions only with several levels.
            expected_stages.push((Stage::Reduce, len));
            if plan.levels().len() > 1 {
                expected_stages.push((Stage::UpperReduce, 0));
            }
            expected_stages.push((Stage::Solve, 0));
            if ctx.contains("of l1") {
                expected_stages.push((Stage::Threshold, len));
            }
            expected_stages.push((Stage::Apply, len));
            assert_eq!(rec.stages(&ctx), expected_stages, "{ctx}");
            // The report names the same stages.
            let names = |r: &multiproj_runtime::Report| -> Vec<Stage> {
                r.stages.iter().map(|(n, _)| *n).collect()
            };
            assert_eq!(names(&report), names(&report_heard));
            let listed: Vec<Stage> = expected_stages.iter().map(|(s, _)| *s).collect();
            assert_eq!(names(&report_heard), listed, "{ctx}");

            let rec = Recorder::default();
            let mut data = x.to_owned();
            heard
                .with_progress(&rec)
                .project_in_place(plan, &mut data.view_mut(), radius)
                .unwrap();
            assert!(
                data.iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{ctx}: the in-place result changed"
            );
            assert_eq!(rec.stages(&ctx), expected_stages, "{ctx}: in place");

            let rec = Recorder::default();
            let norm = heard.with_progress(&rec).norm(plan, x).unwrap();
            assert_eq!(norm.to_bits(), quiet.norm(plan, x).unwrap().to_bits());
            assert_eq!(rec.stages(&ctx), [(Stage::Reduce, len)], "{ctx}: norm");
        }
    });
}
