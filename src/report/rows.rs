//! What the HTML and Markdown reports show of a run: the verdict and one row per variant, failing
//! rows first.

use serde::Serialize;

use super::{terminal, RecordedRun};
use crate::exit_code::ExitCode;
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

/// A variant's precision evidence as `precheck explain` prints it, for the report.
#[derive(Debug, Serialize)]
pub struct Evidence {
    /// The variant.
    pub id: String,
    /// The verdict, in a word or two.
    pub verdict: String,
    /// Everything, as text.
    pub text: String,
}

/// The evidence of every variant that has some (backends other than the CPU emulation).
pub fn evidence(records: &[VariantRecord]) -> Vec<Evidence> {
    records
        .iter()
        .filter_map(|r| {
            let mismatch = r.mismatch.as_ref()?;
            Some(Evidence {
                id: r.id.clone(),
                verdict: mismatch.verdict.summary(),
                text: crate::report::explain::explain(r),
            })
        })
        .collect()
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
