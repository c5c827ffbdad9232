//! What the HTML and Markdown reports show of a run: the verdict and one row per variant, failing
//! rows first.

use serde::Serialize;

use super::{charts, terminal, RecordedRun, ReportError};
use crate::exit_code::ExitCode;
use crate::measure::{percentile, KernelLaunches};
use crate::results::VariantRecord;

/// The run's verdict, for the top of a report.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `PASS`, `FAIL` (a gate failed) or `INCOMPLETE` (a variant errored), as the exit code says.
    pub headline: &'static str,
    /// CSS class of the headline: `passed`, `failed` or `error`.
    pub class: &'static str,
    /// Counts per verdict.
    pub counts: String,
    /// One line per gate that failed somewhere: `2 variants failed cos_min`.
    pub gates_failed: Vec<String>,
}

impl Verdict {
    /// The verdict of a run: incomplete (stopped, or planned variants without a record) before
    /// anything its records say.
    pub fn of(run: &RecordedRun) -> Verdict {
        let records = &run.records;
        let (headline, class) = match run.exit_code() {
            ExitCode::Success => ("PASS", "passed"),
            ExitCode::GateFailed => ("FAIL", "failed"),
            _ => ("INCOMPLETE", "error"),
        };
        let mut counts = terminal::verdict_line(records);
        let missing = run.missing().len();
        if missing > 0 {
            counts += &format!(
                "; {missing} of {} planned variants have no record",
                run.info.planned.len()
            );
        }
        if run.interrupted() {
            counts += " (the run was stopped)";
        }
        Verdict {
            headline,
            class,
            counts,
            gates_failed: gate_failure_counts(records),
        }
    }
}

/// `N variant(s) failed GATE`, per gate, in the order gates are evaluated.
fn gate_failure_counts(records: &[VariantRecord]) -> Vec<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for failure in records.iter().flat_map(|r| &r.failures) {
        match counts.iter_mut().find(|(gate, _)| *gate == failure.gate) {
            Some((_, n)) => *n += 1,
            None => counts.push((&failure.gate, 1)),
        }
    }
    counts
        .into_iter()
        .map(|(gate, n)| {
            let variants = if n == 1 { "variant" } else { "variants" };
            format!("{n} {variants} failed {gate}")
        })
        .collect()
}

/// One variant in detail, as Criterion gives each benchmark a page: its timed iterations
/// (percentiles and a histogram), the kernels one forward pass launched, and its precision
/// evidence as `precheck explain` prints it.
#[derive(Debug, Serialize)]
pub struct VariantDetail {
    /// The variant.
    pub id: String,
    /// The verdict and, where there is evidence, what it says, in a few words.
    pub summary: String,
    /// Percentiles of the timed iterations, or why there are none.
    pub latency: String,
    /// The histogram of the timed iterations (SVG).
    pub histogram: Option<String>,
    /// The kernels of one forward pass, longest first.
    pub kernels: Vec<KernelRow>,
    /// The precision evidence, as text.
    pub evidence: Option<String>,
}

/// A kernel of one forward pass.
#[derive(Debug, Serialize)]
pub struct KernelRow {
    /// Its name.
    pub name: String,
    /// Launches in one pass.
    pub launches: u32,
    /// Microseconds in one pass.
    pub total_us: String,
    /// Its share of the pass's kernel time.
    pub share: String,
}

/// The details of every variant, in run order.
pub fn details(records: &[VariantRecord]) -> Result<Vec<VariantDetail>, ReportError> {
    records
        .iter()
        .map(|r| {
            let verdict = r.status.name();
            let summary = match &r.mismatch {
                Some(mismatch) => format!("{verdict} · mismatch: {}", mismatch.verdict.summary()),
                None => verdict.to_owned(),
            };
            let traced = r.kernels.as_deref().unwrap_or_default();
            let total_us: f64 = traced.iter().map(|k| k.total_us).sum();
            let mut longest_first: Vec<&KernelLaunches> = traced.iter().collect();
            longest_first.sort_by(|a, b| b.total_us.total_cmp(&a.total_us));
            let kernels = longest_first
                .into_iter()
                .map(|k| KernelRow {
                    name: k.name.clone(),
                    launches: k.launches,
                    total_us: format!("{:.1}", k.total_us),
                    share: format!("{:.0} %", 100.0 * k.total_us / total_us),
                })
                .collect();
            Ok(VariantDetail {
                id: r.id.clone(),
                summary,
                latency: latency_line(r),
                histogram: charts::histogram(r)?,
                kernels,
                evidence: r
                    .mismatch
                    .as_ref()
                    .map(|_| crate::report::explain::explain(r)),
            })
        })
        .collect()
}

/// `p50 · p90 · p99 · min · max` of a variant's timed iterations, and what they time.
fn latency_line(record: &VariantRecord) -> String {
    let Some(latency) = &record.latency else {
        return "not timed".to_owned();
    };
    let mut sorted = latency.samples_ms.clone();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return format!("median {:.4} ms (no samples kept)", latency.median_ms);
    }
    let at = |q| percentile(&sorted, q);
    let what = if record.emulated {
        " (an emulation's timing, not the precision's)"
    } else {
        ""
    };
    format!(
        "{} timed iterations, ms: p50 {:.4} · p90 {:.4} · p99 {:.4} · min {:.4} · max {:.4}{what}",
        sorted.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        latency.min_ms,
        latency.max_ms
    )
}

/// Cosine after each layer, a row per variant that has layers (stacks).
#[derive(Debug, Serialize)]
pub struct DepthTable {
    /// The layers' names, deepest variant's.
    pub layers: Vec<String>,
    /// A row per variant with layers.
    pub rows: Vec<DepthRow>,
}

#[derive(Debug, Serialize)]
pub struct DepthRow {
    /// The variant.
    pub id: String,
    /// Cosine after each layer, 6 decimals.
    pub cos: Vec<String>,
}

impl DepthTable {
    /// The table of `records`; `None` when none has layers.
    pub fn of(records: &[VariantRecord]) -> Option<DepthTable> {
        let deepest = records.iter().max_by_key(|r| r.layers.len())?;
        if deepest.layers.is_empty() {
            return None;
        }
        let rows = records
            .iter()
            .filter(|r| !r.layers.is_empty())
            .map(|r| DepthRow {
                id: r.id.clone(),
                cos: r
                    .layers
                    .iter()
                    .map(|l| format!("{:.6}", l.accuracy.cos))
                    .collect(),
            })
            .collect();
        Some(DepthTable {
            layers: deepest.layers.iter().map(|l| l.name.clone()).collect(),
            rows,
        })
    }
}
