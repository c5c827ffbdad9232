//! The compact table printed at the end of a run, and the one-line verdict per variant.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table};

use super::cells::{self, VariantRow, SUMMARY_COLUMNS};
use crate::backend::BackendKind;
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

/// The summary table's columns (of [`SUMMARY_COLUMNS`]) in the order they are dropped when the
/// table is too wide for its terminal: the spread, the max error, then 1 − cos (the verdict and
/// cos always stay).
const DROPPED_FIRST: [usize; 3] = [5, 3, 2];

/// The variant ids wrap down to this width before a column is dropped.
const ID_MIN_WIDTH: usize = 24;

/// The summary table: variant, cos, 1 − cos, max abs err, median and p10–p90 latency, speed-up,
/// verdict. At most `width` columns wide (the terminal's width when printed to one and `width` is
/// None): numbers are never broken; the ids wrap, and where that is not enough the spread, the
/// max error and 1 − cos are left out, in that order.
pub fn summary_table(records: &[VariantRecord], width: Option<u16>) -> String {
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|record| VariantRow::of(record).summary_cells())
        .collect();
    let mut table = Table::new();
    let width = width.or_else(|| table.width()).map(usize::from);
    let content = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .chain([SUMMARY_COLUMNS[column].chars().count()])
            .max()
            .unwrap_or(0)
    };
    // Each column takes its content plus 3 (a space either side and a rule), and the table 1.
    let needed = |kept: &[usize]| {
        1 + kept
            .iter()
            .map(|&c| {
                3 + if c == 0 {
                    content(0).min(ID_MIN_WIDTH)
                } else {
                    content(c)
                }
            })
            .sum::<usize>()
    };
    let mut kept: Vec<usize> = (0..SUMMARY_COLUMNS.len()).collect();
    if let Some(width) = width {
        for dropped in DROPPED_FIRST {
            if needed(&kept) <= width {
                break;
            }
            kept.retain(|&c| c != dropped);
        }
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(u16::try_from(width).unwrap_or(u16::MAX));
    }
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(kept.iter().map(|&c| SUMMARY_COLUMNS[c]).collect::<Vec<_>>());
    for row in &rows {
        table.add_row(kept.iter().map(|&c| row[c].clone()).collect::<Vec<_>>());
    }
    for (index, &column) in kept.iter().enumerate().skip(1) {
        if let Some(c) = table.column_mut(index) {
            c.set_constraint(ColumnConstraint::ContentWidth);
            if column <= 6 {
                c.set_cell_alignment(CellAlignment::Right);
            }
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
/// ran on a device, formats the device emulates with its kernels included: the device ran them;
/// not those of the host CPU) and the phases' sums, largest first. None when no record has
/// phases.
pub fn time_line(records: &[VariantRecord], wall_s: f64) -> Option<String> {
    let measured: Vec<(&Phases, bool)> = records
        .iter()
        .filter_map(|r| {
            r.phases
                .as_ref()
                .map(|p| (p, r.backend == BackendKind::Cpu))
        })
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
    let on_device: Vec<&Phases> = measured
        .iter()
        .filter(|(_, off_device)| !off_device)
        .map(|(phases, _)| *phases)
        .collect();
    let products: f64 = measured.iter().map(|(phases, _)| phases.products).sum();
    let device = match (on_device.is_empty(), products > 0.0) {
        (true, false) => "timed on the host CPU, not on a device".to_owned(),
        _ => {
            let timed: f64 = on_device.iter().map(|p| p.timed).sum();
            let warmup: f64 = on_device.iter().map(|p| p.warmup).sum();
            let share = |seconds: f64| 100.0 * seconds / wall_s.max(f64::MIN_POSITIVE);
            let mut parts = vec![format!("timed iterations {timed:.2} s")];
            if warmup > 0.0 {
                parts.push(format!("their warm-up {warmup:.2} s"));
            }
            if products > 0.0 {
                parts.push(format!(
                    "the reference's and emulations' products {products:.2} s"
                ));
            }
            let busy = timed + warmup + products;
            format!(
                "device busy {busy:.2} s ({:.1} % of the wall time): {}",
                share(busy),
                parts.join(", ")
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

    /// A device's timed iterations count as the device busy, a format it emulates with its own
    /// kernels included; the host CPU's do not.
    #[test]
    fn the_busy_share_counts_device_timings_only() {
        let line = include_str!("../../tests/fixtures/runs/base/results.jsonl")
            .lines()
            .next()
            .unwrap();
        let record: VariantRecord = serde_json::from_str(line).unwrap();
        let on_with = |phases: Phases, backend, emulated| {
            let mut record = record.clone();
            record.phases = Some(phases);
            record.backend = backend;
            record.emulated = emulated;
            time_line(&[record], 4.0).unwrap()
        };
        let timed = Phases {
            timed: 1.0,
            ..Phases::default()
        };
        let on = |backend, emulated| on_with(timed.clone(), backend, emulated);
        for emulated in [false, true] {
            assert!(on(BackendKind::Cuda, emulated).contains(
                "device busy 1.00 s (25.0 % of the wall time): timed iterations 1.00 s;"
            ));
        }
        let with_warmup = Phases {
            warmup: 0.5,
            ..timed.clone()
        };
        assert!(on_with(with_warmup, BackendKind::Cuda, false).contains(
            "device busy 1.50 s (37.5 % of the wall time): timed iterations 1.00 s, their \
             warm-up 0.50 s;"
        ));
        let with_products = Phases {
            products: 1.0,
            ..timed.clone()
        };
        assert!(on_with(with_products, BackendKind::Cuda, false).contains(
            "device busy 2.00 s (50.0 % of the wall time): timed iterations 1.00 s, the \
             reference's and emulations' products 1.00 s"
        ));
        for emulated in [false, true] {
            assert!(on(BackendKind::Cpu, emulated).contains("not on a device"));
        }
    }

    #[test]
    fn the_table_fits_the_width_it_is_given() {
        let records: Vec<VariantRecord> =
            include_str!("../../tests/fixtures/runs/base/results.jsonl")
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
        let wide = summary_table(&records, None);
        assert!(wide.lines().any(|l| l.chars().count() > 80), "{wide}");
        for width in [100, 80, 60] {
            let narrow = summary_table(&records, Some(width));
            for line in narrow.lines() {
                assert!(
                    line.chars().count() <= usize::from(width),
                    "{width}: {line}\n{narrow}"
                );
            }
            // Every variant is there, its numbers whole.
            for record in &records {
                let row = VariantRow::of(record);
                assert!(narrow.contains(&row.cos), "{width}: {}\n{narrow}", row.cos);
                assert!(narrow.contains(&row.median_ms), "{narrow}");
            }
        }
        assert!(!summary_table(&records, Some(60)).contains("p10–p90"));
    }

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
