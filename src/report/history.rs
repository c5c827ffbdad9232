//! `precheck history REPORTS_DIR`: every run folder under a folder (nightly runs as
//! `reports/<suite>/<timestamp>/`), per suite and variant, cos and median latency over time, the
//! runs where the variant failed a gate or errored marked; written as `history.html`.
//!
//! Runs are placed in order of their start time, one step apart whatever the time between them:
//! nightly runs are about evenly spaced, and a gap of a week should not squeeze a week of data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::charts::{self, HistorySeries};
use super::write::write_text;
use super::{html, rows, RecordedRun, ReportError};
use crate::results::{Status, VariantRecord, RESULTS_FILE};

/// The HTML history.
pub const HTML_FILE: &str = "history.html";

/// The run folders under `root` (folders holding `results.jsonl`), `root` itself included. Does
/// not follow symbolic links, so a link cannot make it loop.
pub fn find_run_dirs(root: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        if dir.join(RESULTS_FILE).is_file() {
            found.push(dir.clone());
        }
        for entry in std::fs::read_dir(&dir).map_err(ReportError::io(&dir))? {
            let entry = entry.map_err(ReportError::io(&dir))?;
            if entry.file_type().map_err(ReportError::io(&dir))?.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The runs of one suite, oldest first.
#[derive(Debug)]
pub struct SuiteHistory {
    /// Suite name.
    pub name: String,
    /// Its runs, by start time.
    pub runs: Vec<RecordedRun>,
}

impl SuiteHistory {
    /// Every variant id, in the order the runs first show them.
    pub fn variant_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for record in self.runs.iter().flat_map(|run| &run.records) {
            if !ids.contains(&record.id) {
                ids.push(record.id.clone());
            }
        }
        ids
    }

    /// The variant's record in each run (`None` where the run lacks it).
    pub fn records_of<'a>(&'a self, id: &str) -> Vec<Option<&'a VariantRecord>> {
        self.runs
            .iter()
            .map(|run| run.records.iter().find(|r| r.id == id))
            .collect()
    }
}

/// The runs under a folder, by suite.
#[derive(Debug)]
pub struct History {
    /// One entry per suite, by name.
    pub suites: Vec<SuiteHistory>,
    /// Run folders that could not be read, and why: a broken night does not hide the others.
    pub skipped: Vec<String>,
}

impl History {
    /// Reads every run folder under `root`.
    pub fn load(root: &Path) -> Result<History, ReportError> {
        let dirs = find_run_dirs(root)?;
        if dirs.is_empty() {
            return Err(ReportError::NoRuns(root.to_owned()));
        }
        let mut by_suite: BTreeMap<String, Vec<RecordedRun>> = BTreeMap::new();
        let mut skipped = Vec::new();
        for dir in dirs {
            match RecordedRun::load(&dir) {
                Ok(run) => by_suite
                    .entry(run.info.suite.name.clone())
                    .or_default()
                    .push(run),
                Err(e) => skipped.push(e.to_string()),
            }
        }
        let suites = by_suite
            .into_iter()
            .map(|(name, mut runs)| {
                runs.sort_by_key(|run| run.info.started_at);
                SuiteHistory { name, runs }
            })
            .collect();
        Ok(History { suites, skipped })
    }
}

#[derive(Debug, Serialize)]
struct RunRow {
    label: String,
    headline: &'static str,
    class: &'static str,
    counts: String,
    dir: String,
}

#[derive(Debug, Serialize)]
struct VariantCharts {
    id: String,
    failures: usize,
    cosine: String,
    latency: String,
}

#[derive(Debug, Serialize)]
struct SuitePage {
    name: String,
    runs: Vec<RunRow>,
    variants: Vec<VariantCharts>,
}

#[derive(Debug, Serialize)]
struct Page {
    root: String,
    suites: Vec<SuitePage>,
    skipped: Vec<String>,
}

fn run_label(run: &RecordedRun) -> String {
    run.info.started_at.format("%m-%d %H:%M").to_string()
}

fn variant_charts(
    suite: &SuiteHistory,
    id: &str,
    labels: &[String],
) -> Result<VariantCharts, ReportError> {
    let records = suite.records_of(id);
    let failed: Vec<bool> = records
        .iter()
        .map(|r| r.is_some_and(|r| r.status != Status::Passed))
        .collect();
    let latest_gate = records
        .iter()
        .rev()
        .flatten()
        .next()
        .map(|r| r.gates.cos_min);
    let cosine = HistorySeries {
        title: "1 − cos (red line: the cos_min gate)",
        unit: "1 − cos",
        runs: labels,
        values: records
            .iter()
            .map(|r| charts::one_minus_cos((*r)?.accuracy?.cos))
            .collect(),
        band: vec![None; labels.len()],
        failed: failed.clone(),
        threshold: latest_gate.map(|cos_min| 1.0 - cos_min),
        log: true,
    };
    let latency = HistorySeries {
        title: "median latency, ms (bars: p10–p90)",
        unit: "ms",
        runs: labels,
        values: records
            .iter()
            .map(|r| Some((*r)?.latency.as_ref()?.median_ms))
            .collect(),
        band: records
            .iter()
            .map(|r| {
                r.and_then(|r| r.latency.as_ref())
                    .map(|l| (l.p10_ms, l.p90_ms))
            })
            .collect(),
        failed: failed.clone(),
        threshold: None,
        log: false,
    };
    Ok(VariantCharts {
        id: id.to_owned(),
        failures: failed.iter().filter(|f| **f).count(),
        cosine: charts::history(&cosine)?,
        latency: charts::history(&latency)?,
    })
}

fn suite_page(suite: &SuiteHistory) -> Result<SuitePage, ReportError> {
    let labels: Vec<String> = suite.runs.iter().map(run_label).collect();
    let runs = suite
        .runs
        .iter()
        .zip(&labels)
        .map(|(run, label)| {
            let verdict = rows::Verdict::of(run);
            RunRow {
                label: label.clone(),
                headline: verdict.headline,
                class: verdict.class,
                counts: verdict.counts,
                dir: run.dir.display().to_string(),
            }
        })
        .collect();
    let variants = suite
        .variant_ids()
        .iter()
        .map(|id| variant_charts(suite, id, &labels))
        .collect::<Result<_, _>>()?;
    Ok(SuitePage {
        name: suite.name.clone(),
        runs,
        variants,
    })
}

/// Writes `history.html` of the runs under `root` into `out`; returns its path and the history.
pub fn write_history(root: &Path, out: &Path) -> Result<(PathBuf, History), ReportError> {
    let history = History::load(root)?;
    let page = Page {
        root: root.display().to_string(),
        suites: history
            .suites
            .iter()
            .map(suite_page)
            .collect::<Result<_, _>>()?,
        skipped: history.skipped.clone(),
    };
    std::fs::create_dir_all(out).map_err(ReportError::io(out))?;
    let path = write_text(out, HTML_FILE, &html::render("history.html", &page)?)?;
    Ok((path, history))
}
