//! One variant's row as every report shows it ([`VariantRow`]): the terminal, HTML, Markdown and
//! JUnit reports all format a variant's numbers here, so that they agree to the digit.

use serde::Serialize;

use crate::backend::BackendKind;
use crate::measure::Clocks;
use crate::mismatch::Verdict;
use crate::results::{Status, VariantRecord};

/// Cosine similarity, 6 decimals; empty when not measured.
pub fn cos(record: &VariantRecord) -> String {
    record
        .accuracy
        .map_or_else(String::new, |a| format!("{:.6}", a.cos))
}

/// `1 − cos` in scientific notation: it tells FP32 (1e-14) from FP16 (1e-7) where cos reads
/// 1.000000.
pub fn one_minus_cos(record: &VariantRecord) -> String {
    record
        .accuracy
        .map_or_else(String::new, |a| format!("{:.2e}", 1.0 - a.cos))
}

/// Largest absolute error.
pub fn max_abs_err(record: &VariantRecord) -> String {
    record
        .accuracy
        .map_or_else(String::new, |a| format!("{:.3e}", a.max_abs_err))
}

/// Median latency in ms.
pub fn median_ms(record: &VariantRecord) -> String {
    record
        .latency
        .as_ref()
        .map_or_else(String::new, |l| format!("{:.3}", l.median_ms))
}

/// The p10–p90 latency range in ms.
pub fn spread_ms(record: &VariantRecord) -> String {
    record
        .latency
        .as_ref()
        .map_or_else(String::new, |l| format!("{:.3}–{:.3}", l.p10_ms, l.p90_ms))
}

/// Speed-up against the reference precision, where the timings are the precision's own
/// ([`timed_natively`]): "emulated" for an emulation, "—" for FP32 on the CPU backend (its
/// baseline is an emulation).
pub fn speedup(record: &VariantRecord) -> String {
    match &record.baseline {
        None => String::new(),
        Some(_) if record.emulated => "emulated".to_owned(),
        Some(_) if !timed_natively(record) => "—".to_owned(),
        Some(b) => format!("{:.2}x", b.speedup),
    }
}

/// Whether a variant's timings are its precision's own: not emulated, and not on the CPU
/// backend, which emulates every precision but FP32, the reference precision its speed-ups
/// divide by included.
pub fn timed_natively(record: &VariantRecord) -> bool {
    !record.emulated && record.backend != BackendKind::Cpu
}

/// Why a variant did not pass (the gates it failed, or its error); for one that passed, a
/// precision verdict that only warns (a mismatch under `precision_mismatch: warn`, a suspect).
pub fn why(record: &VariantRecord) -> String {
    let why = verdict_reason(record);
    match record.clocks.as_ref().and_then(Clocks::throttle_note) {
        Some(note) if why.is_empty() => note,
        Some(note) => format!("{why}; {note}"),
        None => why,
    }
}

fn verdict_reason(record: &VariantRecord) -> String {
    match record.status {
        Status::Passed => match record.mismatch.as_ref().map(|m| &m.verdict) {
            Some(Verdict::Suspect { reason }) => format!("precision suspect: {reason}"),
            Some(Verdict::Detected {
                direction,
                evidence,
            }) => format!(
                "precision mismatch ({direction:?}, not gated): {}",
                evidence.join("; ")
            ),
            _ => String::new(),
        },
        Status::Failed => failures(record),
        Status::Error | Status::Skipped => record
            .error
            .as_deref()
            .map_or_else(|| "unknown error".to_owned(), visible_controls),
    }
}

/// `text` (an engine's message) with its control characters other than newline and tab shown as
/// `\u{1b}` escapes, so that an engine's NUL, ESC or BEL reaches no terminal or report raw.
pub fn visible_controls(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            shown.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            shown.push(c);
        }
    }
    shown
}

/// The gates a variant failed, with their numbers: `cos 0.998000 < 0.999; …`.
pub fn failures(record: &VariantRecord) -> String {
    record
        .failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One variant as a table row: every cell already formatted.
#[derive(Debug, Clone, Serialize)]
pub struct VariantRow {
    /// `model/precision/device`.
    pub id: String,
    /// `pass`, `FAIL`, `ERROR`.
    pub verdict: &'static str,
    /// CSS class: `passed`, `failed`, `error`.
    pub class: &'static str,
    /// Cosine similarity.
    pub cos: String,
    /// `1 − cos`.
    pub one_minus_cos: String,
    /// Largest absolute error.
    pub max_abs_err: String,
    /// Relative L2 error.
    pub rel_l2: String,
    /// Median latency, ms.
    pub median_ms: String,
    /// p10–p90 latency, ms.
    pub spread_ms: String,
    /// Speed-up against the reference precision.
    pub speedup: String,
    /// The gates failed or the error.
    pub why: String,
}

/// The summary table's columns, as the terminal and `summary.md` print them
/// ([`VariantRow::summary_cells`]).
pub const SUMMARY_COLUMNS: [&str; 8] = [
    "variant",
    "cos",
    "1 − cos",
    "max abs err",
    "median ms",
    "p10–p90 ms",
    "speed-up",
    "verdict",
];

impl VariantRow {
    /// The row's cells under [`SUMMARY_COLUMNS`].
    pub fn summary_cells(&self) -> [String; 8] {
        [
            self.id.clone(),
            self.cos.clone(),
            self.one_minus_cos.clone(),
            self.max_abs_err.clone(),
            self.median_ms.clone(),
            self.spread_ms.clone(),
            self.speedup.clone(),
            self.verdict.to_owned(),
        ]
    }

    /// The row of `record`.
    pub fn of(record: &VariantRecord) -> VariantRow {
        VariantRow {
            id: record.id.clone(),
            verdict: record.status.name(),
            class: status_class(record.status),
            cos: cos(record),
            one_minus_cos: one_minus_cos(record),
            max_abs_err: max_abs_err(record),
            rel_l2: record
                .accuracy
                .map_or_else(String::new, |a| format!("{:.3e}", a.rel_l2)),
            median_ms: median_ms(record),
            spread_ms: spread_ms(record),
            speedup: speedup(record),
            why: why(record),
        }
    }
}

/// The CSS class of a status.
pub fn status_class(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Error => "error",
        Status::Skipped => "skipped",
    }
}

/// The rows of `records`: errored, failed, skipped, then passed variants, each in run order.
#[cfg(feature = "report")]
pub fn failing_first(records: &[VariantRecord]) -> Vec<VariantRow> {
    let mut ordered: Vec<&VariantRecord> = records.iter().collect();
    ordered.sort_by_key(|r| match r.status {
        Status::Error => 0,
        Status::Failed => 1,
        Status::Skipped => 2,
        Status::Passed => 3,
    });
    ordered.into_iter().map(VariantRow::of).collect()
}
