//! The compact table printed at the end of a run, and the one-line verdict per variant.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};

use super::cells::{self, VariantRow};
use crate::measure::Phases;
use crate::results::{Status, VariantRecord};

/// Whether terminal output is coloured: on a terminal, unless `NO_COLOR` is set (no-color.org).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// The style for a stream that `is_terminal` or not, with the `NO_COLOR` variable's value.
    pub fn new(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> Style {
        Style {
            colour: is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    /// A verdict word (`pass`, `FAIL`, `ERROR`, `SKIP`), padded to 5 columns, coloured if on.
    pub fn status(self, status: Status) -> String {
        let word = format!("{:5}", status.name());
        if !self.colour {
            return word;
        }
        let code = match status {
            Status::Passed => "32",
            Status::Failed => "1;31",
            Status::Error => "1;35",
            Status::Skipped => "33",
        };
        format!("\u{1b}[{code}m{word}\u{1b}[0m")
    }
}

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

/// One line per reason variants did not pass: which and why (variants that did not pass for the
/// same reason, a missing engine say, share one line), their verdict styled by `style`.
pub fn problems(records: &[VariantRecord], style: Style) -> Vec<String> {
    let mut groups: Vec<(Status, String, Vec<&str>)> = Vec::new();
    for record in records.iter().filter(|r| r.status != Status::Passed) {
        let why = cells::why(record);
        match groups
            .iter_mut()
            .find(|(status, reason, _)| *status == record.status && *reason == why)
        {
            Some((_, _, ids)) => ids.push(&record.id),
            None => groups.push((record.status, why, vec![&record.id])),
        }
    }
    groups
        .into_iter()
        .map(|(status, why, ids)| match ids[..] {
            [id] => format!("{} {id}: {why}", style.status(status)),
            _ => format!(
                "{} {} variants ({}): {why}",
                style.status(status),
                ids.len(),
                ids.join(", ")
            ),
        })
        .collect()
}

/// Where a run's `wall_s` seconds went: the device's share (the timed iterations of variants that
/// ran on a device, not an emulation) and the phases' sums, largest first. None when no record
/// has phases.
pub fn time_line(records: &[VariantRecord], wall_s: f64) -> Option<String> {
    let measured: Vec<(&Phases, bool)> = records
        .iter()
        .filter_map(|r| r.phases.as_ref().map(|p| (p, r.emulated)))
        .collect();
    if measured.is_empty() {
        return None;
    }
    let mut sums: Vec<(&str, f64)> = Phases::default().named().to_vec();
    for (phases, _) in &measured {
        for (sum, (_, seconds)) in sums.iter_mut().zip(phases.named()) {
            sum.1 += seconds;
        }
    }
    sums.sort_by(|a, b| b.1.total_cmp(&a.1));
    let largest: Vec<String> = sums
        .iter()
        .filter(|(_, seconds)| *seconds >= 0.05)
        .take(4)
        .map(|(name, seconds)| format!("{name} {seconds:.1} s"))
        .collect();
    let on_device: Vec<f64> = measured
        .iter()
        .filter(|(_, emulated)| !emulated)
        .map(|(phases, _)| phases.timed)
        .collect();
    let device = match on_device.is_empty() {
        true => "timed on the CPU emulation, not a device".to_owned(),
        false => {
            let busy: f64 = on_device.iter().sum();
            format!(
                "device busy {busy:.2} s in timed iterations ({:.1} % of the wall time)",
                100.0 * busy / wall_s.max(f64::MIN_POSITIVE)
            )
        }
    };
    Some(format!(
        "{wall_s:.1} s wall; {device}; most time in {}",
        largest.join(", ")
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The first record of a recorded run, as `status` with `error`.
    fn record(id: &str, status: Status, error: &str) -> VariantRecord {
        let line = include_str!("../../tests/fixtures/runs/base/results.jsonl")
            .lines()
            .next()
            .unwrap();
        let mut record: VariantRecord = serde_json::from_str(line).unwrap();
        record.id = id.to_owned();
        record.status = status;
        record.error = Some(error.to_owned());
        record
    }

    #[test]
    fn variants_skipped_for_one_reason_share_a_line_and_controls_stay_visible() {
        let missing = "trtexec not found on PATH";
        let records = [
            record("a/fp16/trt", Status::Skipped, missing),
            record("a/fp8/trt", Status::Skipped, missing),
            record("b/fp8/trt", Status::Error, "engine said \u{1b}[31mno\u{7}"),
        ];
        assert_eq!(
            problems(&records, Style::new(false, None)),
            [
                format!("SKIP  2 variants (a/fp16/trt, a/fp8/trt): {missing}"),
                "ERROR b/fp8/trt: engine said \\u{1b}[31mno\\u{7}".to_owned(),
            ]
        );
    }

    #[test]
    fn verdicts_are_coloured_on_a_terminal_unless_no_color_is_set() {
        let plain = Style::new(false, None);
        assert_eq!(plain.status(Status::Failed), "FAIL ");
        let coloured = Style::new(true, None);
        assert_eq!(
            coloured.status(Status::Failed),
            "\u{1b}[1;31mFAIL \u{1b}[0m"
        );
        assert_eq!(Style::new(true, Some("1".into())), plain);
        // An empty NO_COLOR does not count (no-color.org).
        assert_eq!(Style::new(true, Some("".into())), coloured);
    }
}
