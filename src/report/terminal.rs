//! The compact table printed at the end of a run, and the one-line verdict per variant.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};

use super::cells::{self, VariantRow};
use crate::results::{Status, VariantRecord};

/// The summary table: variant, cos, max abs err, median latency, speed-up, verdict.
pub fn summary_table(records: &[VariantRecord]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "variant",
        "cos",
        "1 − cos",
        "max abs err",
        "median ms",
        "p10–p90 ms",
        "speedup",
        "verdict",
    ]);
    for row in records.iter().map(VariantRow::of) {
        table.add_row(vec![
            row.id,
            row.cos,
            row.one_minus_cos,
            row.max_abs_err,
            row.median_ms,
            row.spread_ms,
            row.speedup,
            row.verdict.to_owned(),
        ]);
    }
    for column in 1..=6 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

/// One line per variant that did not pass: which and why.
pub fn problems(records: &[VariantRecord]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.status != Status::Passed)
        .map(|r| format!("{:5} {}: {}", r.status.name(), r.id, cells::why(r)))
        .collect()
}

/// The closing line: counts per verdict.
pub fn verdict_line(records: &[VariantRecord]) -> String {
    let count = |status| records.iter().filter(|r| r.status == status).count();
    let skipped = match count(Status::Skipped) {
        0 => String::new(),
        n => format!(", {n} skipped"),
    };
    format!(
        "{} variants: {} passed, {} failed a gate, {} errored{skipped}",
        records.len(),
        count(Status::Passed),
        count(Status::Failed),
        count(Status::Error)
    )
}
