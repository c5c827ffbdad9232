//! One variant's numbers as the text every report shows, so that the terminal, HTML and Markdown
//! tables agree to the digit.

use crate::mismatch::Verdict;
use crate::results::{Clocks, Status, VariantRecord};

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

/// Speed-up against the reference precision.
pub fn speedup(record: &VariantRecord) -> String {
    record
        .baseline
        .as_ref()
        .map_or_else(String::new, |b| format!("{:.2}x", b.speedup))
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
            .clone()
            .unwrap_or_else(|| "unknown error".to_owned()),
    }
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
