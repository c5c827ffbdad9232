//! The compact table printed at the end of a run, and the one-line verdict per variant.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};

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
    for record in records {
        // 1 − cos in scientific notation tells FP32 (1e-14) from FP16 (1e-7) where cos reads 1.000000.
        let (cos, one_minus, err) = record.accuracy.map_or_else(Default::default, |a| {
            (
                format!("{:.6}", a.cos),
                format!("{:.2e}", 1.0 - a.cos),
                format!("{:.3e}", a.max_abs_err),
            )
        });
        let (median, spread) =
            record
                .latency
                .as_ref()
                .map_or((String::new(), String::new()), |l| {
                    (
                        format!("{:.3}", l.median_ms),
                        format!("{:.3}–{:.3}", l.p10_ms, l.p90_ms),
                    )
                });
        let speedup = record
            .baseline
            .as_ref()
            .map_or(String::new(), |b| format!("{:.2}x", b.speedup));
        table.add_row(vec![
            record.id.clone(),
            cos,
            one_minus,
            err,
            median,
            spread,
            speedup,
            record.status.name().to_owned(),
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
        .filter_map(|r| match r.status {
            Status::Passed => None,
            Status::Failed => Some(format!(
                "FAIL  {}: {}",
                r.id,
                r.failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Status::Error => Some(format!(
                "ERROR {}: {}",
                r.id,
                r.error.as_deref().unwrap_or("unknown error")
            )),
        })
        .collect()
}

/// The closing line: counts per verdict.
pub fn verdict_line(records: &[VariantRecord]) -> String {
    let count = |status| records.iter().filter(|r| r.status == status).count();
    format!(
        "{} variants: {} passed, {} failed a gate, {} errored",
        records.len(),
        count(Status::Passed),
        count(Status::Failed),
        count(Status::Error)
    )
}
