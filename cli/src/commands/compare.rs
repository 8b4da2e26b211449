//! `multiproj compare SPEC INPUT.npy`: the multi-level and the exact projection of one tensor,
//! side by side (`multiproj::Projection::compare`). Nothing is written.

use std::fmt::Write as _;

use multiproj::{Compared, Comparison, Projection, RadiusTarget};
use multiproj_runtime::npy::{NpyInput, TensorView};
use serde_json::{Value, json};

use crate::args::CompareArgs;
use crate::commands::{choose_backend, target_of, with_threads};
use crate::diagnostics::CliError;
use crate::output::{self, shape_text};

pub fn run(args: &CompareArgs) -> Result<(), CliError> {
    let backend = choose_backend(args.backend.as_deref())?;
    let proj = Projection::compile(&args.spec)?.with_backend(backend);
    // Both specs must exist before any data is read: a spec without an exact projection is a
    // spec error.
    let multi = proj.with_exact(false)?;
    let exact = proj.with_exact(true)?;
    let target = target_of(
        &proj,
        args.radius,
        args.keep,
        args.sparsity,
        args.radius_frac,
    )?;
    let target = match (target, proj.spec().radius.as_ref()) {
        // The spec fixes the radius: nothing to choose per call.
        (RadiusTarget::Radius(_), Some(_)) => None,
        (t, _) => Some(t),
    };
    let input = NpyInput::open(&args.input)?;
    crate::signals::watch(
        crate::signals::Mapped::Input,
        input.mapped_range(),
        crate::signals::input_message(&args.input, "nothing was compared"),
    );
    let tensor = input.info();
    let compared = with_threads(args.threads, || match input.view() {
        TensorView::F16(x) => proj.compare(&x, target),
        TensorView::BF16(x) => proj.compare(&x, target),
        TensorView::F32(x) => proj.compare(&x, target),
        TensorView::F64(x) => proj.compare(&x, target),
    })??;
    input.check_unchanged()?;
    let total: usize = tensor.shape.iter().product();
    let text = if args.json {
        let value = json!({
            "spec": multi.spec().canonical(),
            "exact_spec": exact.spec().canonical(),
            "input": args.input.display().to_string(),
            "shape": tensor.shape,
            "dtype": tensor.dtype.to_string(),
            "radius": compared.multi_level.report.radius,
            "elements": total,
            "multi_level": side_json(&compared.multi_level),
            "exact": side_json(&compared.exact),
            "distance": compared.distance,
        });
        format!("{value}\n")
    } else {
        table(
            &multi,
            &exact,
            args,
            &tensor.shape,
            tensor.dtype,
            total,
            &compared,
        )
    };
    output::print(&text)
}

fn side_json(c: &Compared) -> Value {
    let r = &c.report;
    json!({
        "distance_to_input": c.distance_to_input,
        "groups": r.groups,
        "zeroed": r.zeroed,
        "survivors": r.survivors.len(),
        "nonzeros": c.nonzeros,
        "norm_after": r.norm_after,
        "ms": c.time.as_secs_f64() * 1e3,
        "multiplier": r.exact.as_ref().map(|e| e.theta),
    })
}

fn table(
    multi: &Projection,
    exact: &Projection,
    args: &CompareArgs,
    shape: &[usize],
    dtype: multiproj::DType,
    total: usize,
    c: &Comparison,
) -> String {
    let (m, e) = (&c.multi_level, &c.exact);
    let mut out = String::new();
    let _ = writeln!(out, "{:<19}{}", "multi-level", multi.spec().canonical());
    let _ = writeln!(out, "{:<19}{}", "exact", exact.spec().canonical());
    let _ = writeln!(
        out,
        "{:<19}{}  ({dtype}, shape {})",
        "input",
        args.input.display(),
        shape_text(shape)
    );
    let _ = writeln!(out, "{:<19}{}", "radius", m.report.radius);
    let mut line = |name: &str, a: String, b: String| {
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{name:<19}{a:<24}{b}");
    };
    line("", "multi-level".into(), "exact".into());
    line(
        "distance to input",
        format!("{:.6e}", m.distance_to_input),
        format!("{:.6e}", e.distance_to_input),
    );
    let groups = |r: &multiproj::Report| format!("{} of {}", r.zeroed, r.groups);
    line("groups zeroed", groups(&m.report), groups(&e.report));
    line(
        "nonzeros",
        format!("{} of {total}", m.nonzeros),
        format!("{} of {total}", e.nonzeros),
    );
    line(
        "norm after",
        m.report.norm_after.to_string(),
        e.report.norm_after.to_string(),
    );
    line(
        "time",
        format!("{:.3} ms", m.time.as_secs_f64() * 1e3),
        format!("{:.3} ms", e.time.as_secs_f64() * 1e3),
    );
    let relative = if e.distance_to_input > 0.0 {
        format!(
            " ({:.2}% of the exact projection's distance to the input)",
            100.0 * c.distance / e.distance_to_input
        )
    } else {
        String::new()
    };
    let _ = writeln!(out, "{:<19}{:.6e}{relative}", "between the two", c.distance);
    out
}
