//! What `project --stats` and `project --json` print: one [`Stats`] record, rendered either as
//! aligned lines for people or as one JSON object for programs. Both show the same facts.

use std::fmt::Write as _;
use std::time::Duration;

use multiproj_compiler::{DType, Norm, Order};
use multiproj_runtime::verify::Agreement;
use multiproj_runtime::{Backend, Report};
use serde_json::{Map, Value, json};

use crate::diagnostics::CliError;
use crate::output::{self, shape_text};

/// Everything known about one projection run.
#[derive(Clone, Debug)]
pub struct Stats {
    /// The spec in its canonical spelling.
    pub spec: String,
    pub input: String,
    /// The file written: the output, or the input itself with `--in-place`.
    pub output: String,
    pub in_place: bool,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub order: Order,
    pub backend: Backend,
    pub threads: usize,
    /// The innermost norm, which names what happened to projected groups.
    pub innermost: Norm,
    /// The projection computed: multi-level or exact.
    pub exact: bool,
    pub report: Report,
    pub norm_after: f64,
    pub nonzeros_before: usize,
    pub nonzeros_after: usize,
    /// With `--verify`: how the other backend's result compared.
    pub verified: Option<Agreement>,
}

/// How a group that is projected but not zeroed is changed, by the innermost norm.
pub fn projected_verb(innermost: Norm) -> &'static str {
    match innermost {
        Norm::Linf => "clipped",
        Norm::L2 => "scaled",
        Norm::L1 => "shrunk",
    }
}

/// Milliseconds; dividing whole nanoseconds keeps `15µs` printing as `0.015`.
/// "jit, 2 threads": the backend and the number of threads of a run.
pub fn backend_text(backend: Backend, threads: usize) -> String {
    format!(
        "{backend}, {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    )
}

fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

impl Stats {
    /// Prints the statistics on stdout, as JSON or for people, once the output is written. If
    /// stdout fails (full, or an I/O error), the output stays written — it is correct, and
    /// removing it would lose work — and the error (exit code 1: what was asked for was not
    /// all delivered) says so.
    pub fn print(&self, json: bool) -> Result<(), CliError> {
        let text = if json {
            format!("{}\n", self.json())
        } else {
            self.human()
        };
        let done = if self.in_place {
            format!(
                "the projection succeeded: '{}' was projected in place",
                self.output
            )
        } else {
            format!("the projection succeeded: '{}' was written", self.output)
        };
        output::print_after(&text, done)
    }

    /// Aligned `name  value` lines, ending in a newline.
    pub fn human(&self) -> String {
        let r = &self.report;
        let mut out = String::new();
        let mut line = |name: &str, value: String| {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "{name:<15}{value}");
        };
        line("spec", self.spec.clone());
        line(
            "input",
            format!(
                "{}  ({}, shape {}, {} order)",
                self.input,
                self.dtype,
                shape_text(&self.shape),
                self.order
            ),
        );
        line(
            "output",
            if self.in_place {
                format!("{} (in place)", self.output)
            } else {
                self.output.clone()
            },
        );
        line("backend", backend_text(self.backend, self.threads));
        if self.exact {
            line(
                "method",
                match &r.exact {
                    Some(e) => format!(
                        "exact Euclidean projection: multiplier {}; {} entries kept for the final solve, after {} pass{} over the data",
                        e.theta,
                        e.gathered,
                        e.passes,
                        if e.passes == 1 { "" } else { "es" }
                    ),
                    None => "exact Euclidean projection".to_owned(),
                },
            );
        }
        line("radius", r.radius.to_string());
        line("norm before", r.norm_before.to_string());
        line("norm after", self.norm_after.to_string());
        line(
            "groups",
            format!(
                "{} total: {} zeroed, {} {}, {} untouched",
                r.groups,
                r.zeroed,
                r.projected,
                projected_verb(self.innermost),
                r.untouched
            ),
        );
        // Every level of groups above the innermost (whose counts are the line above), then
        // which top-level groups survive, then the l1 thresholds.
        let k = r.levels.len();
        for (i, l) in r.levels.iter().enumerate().take(k.saturating_sub(1)) {
            line(
                &format!("level {}", i + 1),
                format!(
                    "{} groups over axes {}: {} zeroed, {} shrunk, {} untouched ({})",
                    l.groups,
                    axes_text(&l.axes),
                    l.zeroed,
                    l.shrunk,
                    l.kept,
                    l.norm
                ),
            );
        }
        if let Some(top) = r.levels.first() {
            line(
                "survivors",
                format!(
                    "{} of {} top-level groups: {}",
                    r.survivors.len(),
                    top.groups,
                    index_list(&r.survivors, 16)
                ),
            );
        }
        for (i, l) in r.levels.iter().enumerate() {
            if !l.thresholds.is_empty() {
                line(&format!("τ level {}", i + 1), summary(&l.thresholds));
            }
        }
        if !r.inner_thresholds.is_empty() {
            line("τ innermost", summary(&r.inner_thresholds));
        }
        line(
            "nonzeros",
            format!(
                "{} -> {} of {}",
                self.nonzeros_before,
                self.nonzeros_after,
                self.shape.iter().product::<usize>()
            ),
        );
        let stages: Vec<String> = r
            .stages
            .iter()
            .map(|(name, d)| format!("{name} {:.3} ms", ms(*d)))
            .collect();
        line(
            "time",
            format!("{}; total {:.3} ms", stages.join(", "), ms(r.total_time())),
        );
        if let Some(v) = &self.verified {
            line(
                "verified",
                if v.identical {
                    format!("{} agrees bit for bit", v.other)
                } else {
                    format!(
                        "{} agrees within {:e} (largest difference {:e})",
                        v.other, v.tolerance, v.max_abs_diff
                    )
                },
            );
        }
        out
    }

    /// One JSON object. Keys: `method` ("multi-level" or "exact"), `exact` (null, or
    /// `{multiplier, gathered, passes}` when an exact solve ran), `spec, input, output, in_place, dtype, shape, order, backend,
    /// threads, radius, norm_before, norm_after, groups, zeroed, projected, projected_as,
    /// untouched, nonzeros_before, nonzeros_after, stages {name: ms}, total_ms, levels [{axes,
    /// norm, groups, kept, shrunk, zeroed, thresholds}], survivors, inner_thresholds`.
    pub fn json(&self) -> Value {
        let r = &self.report;
        let stages: Map<String, Value> = r
            .stages
            .iter()
            .map(|(stage, d)| (stage.name().to_owned(), json!(ms(*d))))
            .collect();
        let verified = self.verified.map(|v| {
            json!({
                "other": v.other.name(),
                "identical": v.identical,
                "max_abs_diff": v.max_abs_diff,
                "tolerance": v.tolerance,
            })
        });
        let exact = r.exact.as_ref().map(|e| {
            json!({
                "multiplier": e.theta,
                "gathered": e.gathered,
                "passes": e.passes,
            })
        });
        json!({
            "method": if self.exact { "exact" } else { "multi-level" },
            "exact": exact,
            "verified": verified,
            "spec": self.spec,
            "input": self.input,
            "output": self.output,
            "in_place": self.in_place,
            "dtype": self.dtype.to_string(),
            "shape": self.shape,
            "order": self.order.to_string(),
            "backend": self.backend.name(),
            "threads": self.threads,
            "radius": r.radius,
            "norm_before": r.norm_before,
            "norm_after": self.norm_after,
            "groups": r.groups,
            "zeroed": r.zeroed,
            "projected": r.projected,
            "projected_as": projected_verb(self.innermost),
            "untouched": r.untouched,
            "nonzeros_before": self.nonzeros_before,
            "nonzeros_after": self.nonzeros_after,
            "stages": stages,
            "total_ms": ms(r.total_time()),
            "levels": r.levels.iter().map(|l| json!({
                "axes": l.axes,
                "norm": l.norm.to_string(),
                "groups": l.groups,
                "kept": l.kept,
                "shrunk": l.shrunk,
                "zeroed": l.zeroed,
                "thresholds": l.thresholds,
            })).collect::<Vec<_>>(),
            "survivors": r.survivors,
            "inner_thresholds": r.inner_thresholds,
        })
    }
}

/// `{0,2}`.
fn axes_text(axes: &[usize]) -> String {
    let inner: Vec<String> = axes.iter().map(usize::to_string).collect();
    format!("{{{}}}", inner.join(","))
}

/// The first `max` indices, then how many more.
fn index_list(indices: &[usize], max: usize) -> String {
    if indices.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<String> = indices.iter().take(max).map(usize::to_string).collect();
    let more = indices.len().saturating_sub(max);
    if more > 0 {
        format!(
            "{} and {more} more (all of them in --json)",
            shown.join(", ")
        )
    } else {
        shown.join(", ")
    }
}

/// The positive thresholds of a level: how many, their smallest, median and largest.
fn summary(thresholds: &[f64]) -> String {
    let mut positive: Vec<f64> = thresholds.iter().copied().filter(|&t| t > 0.0).collect();
    if positive.is_empty() {
        return "none (nothing was shrunk)".to_string();
    }
    positive.sort_by(f64::total_cmp);
    let n = positive.len();
    if n == 1 {
        return format!("{} (1 projection)", positive[0]);
    }
    format!(
        "{n} projections: min {}, median {}, max {}",
        positive[0],
        positive[n / 2],
        positive[n - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiproj_runtime::Stage;

    fn sample() -> Stats {
        Stats {
            spec: "l1 over dim0 of linf over dim1".into(),
            input: "w.npy".into(),
            output: "w1.npy".into(),
            in_place: false,
            dtype: DType::F64,
            shape: vec![4, 3],
            order: Order::C,
            backend: Backend::Interp,
            threads: 2,
            innermost: Norm::Linf,
            exact: false,
            report: Report {
                backend: Backend::Interp,
                radius: 1.0,
                norm_before: 5.5,
                groups: 4,
                untouched: 1,
                zeroed: 1,
                projected: 2,
                stages: vec![
                    (Stage::Reduce, Duration::from_micros(10)),
                    (Stage::Solve, Duration::from_micros(2)),
                    (Stage::Apply, Duration::from_micros(15)),
                ],
                ..Report::default()
            },
            norm_after: 1.0,
            nonzeros_before: 12,
            nonzeros_after: 7,
            verified: None,
        }
    }

    #[test]
    fn human_lines() {
        insta::assert_snapshot!(sample().human(), @r"
        spec           l1 over dim0 of linf over dim1
        input          w.npy  (f64, shape 4x3, C order)
        output         w1.npy
        backend        interp, 2 threads
        radius         1
        norm before    5.5
        norm after     1
        groups         4 total: 1 zeroed, 2 clipped, 1 untouched
        nonzeros       12 -> 7 of 12
        time           reduce 0.010 ms, solve 0.002 ms, apply 0.015 ms; total 0.027 ms
        ");
    }

    #[test]
    fn json_object() {
        let v = sample().json();
        assert_eq!(v["projected_as"], "clipped");
        assert_eq!(v["shape"], json!([4, 3]));
        assert_eq!(v["order"], "C");
        assert_eq!(v["stages"]["apply"], json!(0.015));
        assert_eq!(v["total_ms"], json!(0.027));
    }
}
