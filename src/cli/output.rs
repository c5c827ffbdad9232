//! How commands print: text for people, or `--format json` for programs. In JSON a command prints
//! one document on stdout (messages and progress stay on stderr), and exits as it would in text.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::exit_code::ExitCode;
use crate::report;
use crate::results::{Status, VariantRecord};

/// What a command prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables and lines for people.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Prints `value` as one JSON document.
pub(super) fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("command outputs serialize")
    );
}

/// What `run`, `merge` and `report` print in JSON: the run's verdict and each variant's.
#[derive(Debug, Serialize)]
pub(super) struct RunSummary<'a> {
    /// The run folder.
    pub run_dir: &'a Path,
    /// The exit code the command returns.
    pub exit_code: i32,
    /// Whether the run was stopped before its end.
    pub interrupted: bool,
    /// How many variants ended each way.
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    pub skipped: usize,
    /// Each variant, in record order.
    pub variants: Vec<VariantSummary<'a>>,
    /// The report files written.
    pub reports: Vec<PathBuf>,
}

/// One variant's verdict in a [`RunSummary`]; `results.jsonl` holds the whole record.
#[derive(Debug, Serialize)]
pub(super) struct VariantSummary<'a> {
    pub id: &'a str,
    pub status: Status,
    pub cos: Option<f64>,
    pub max_abs_err: Option<f64>,
    pub median_ms: Option<f64>,
    pub speedup: Option<f64>,
    pub emulated: bool,
    /// Why it failed, errored or was skipped; for one that passed, a warning, if any.
    pub why: String,
}

impl<'a> RunSummary<'a> {
    /// The summary of `records` in `run_dir`, exiting with `exit_code`, its reports at `reports`.
    pub fn new(
        run_dir: &'a Path,
        records: &'a [VariantRecord],
        exit_code: ExitCode,
        interrupted: bool,
        reports: Vec<PathBuf>,
    ) -> Self {
        let count = |status| records.iter().filter(|r| r.status == status).count();
        RunSummary {
            run_dir,
            exit_code: exit_code as i32,
            interrupted,
            passed: count(Status::Passed),
            failed: count(Status::Failed),
            errored: count(Status::Error),
            skipped: count(Status::Skipped),
            variants: records
                .iter()
                .map(|r| VariantSummary {
                    id: &r.id,
                    status: r.status,
                    cos: r.accuracy.map(|a| a.cos),
                    max_abs_err: r.accuracy.map(|a| a.max_abs_err),
                    median_ms: r.latency.as_ref().map(|l| l.median_ms),
                    speedup: r.baseline.as_ref().map(|b| b.speedup),
                    emulated: r.emulated,
                    why: report::why(r),
                })
                .collect(),
            reports,
        }
    }
}
