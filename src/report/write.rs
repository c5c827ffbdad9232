//! Writing a run folder's reports: `report.html`, `summary.md`, `junit.xml`, `results.parquet`.

use std::fs;
use std::path::{Path, PathBuf};

use super::{html, junit, markdown, parquet, table, RecordedRun, ReportError};

/// The HTML report of a run.
pub const HTML_FILE: &str = "report.html";
/// The Markdown summary of a run.
pub const MARKDOWN_FILE: &str = "summary.md";
/// The JUnit XML of a run.
pub const JUNIT_FILE: &str = "junit.xml";
/// The flat table of a run.
pub const PARQUET_FILE: &str = "results.parquet";

/// Writes the four reports of `run` into its folder; returns their paths.
pub fn write_run_reports(run: &RecordedRun) -> Result<Vec<PathBuf>, ReportError> {
    let dir = run.dir.as_path();
    let html_path = write_text(dir, HTML_FILE, &html::run_report(run)?)?;
    let markdown_path = write_text(dir, MARKDOWN_FILE, &markdown::summary(run))?;
    let junit_path = write_text(dir, JUNIT_FILE, &junit::junit(run)?)?;
    let parquet_path = dir.join(PARQUET_FILE);
    let mut flat = table::records_table(&run.info.suite.name, &run.records).map_err(|source| {
        ReportError::Table {
            path: parquet_path.clone(),
            source,
        }
    })?;
    parquet::write_parquet(&mut flat, &parquet_path)?;
    Ok(vec![html_path, markdown_path, junit_path, parquet_path])
}

/// Writes `text` to `dir/name` through a temporary file and a rename, so that a reader (a CI
/// artifact upload) never sees half a report.
pub fn write_text(dir: &Path, name: &str, text: &str) -> Result<PathBuf, ReportError> {
    let path = dir.join(name);
    let partial = dir.join(format!("{name}.partial"));
    fs::write(&partial, text).map_err(ReportError::io(&partial))?;
    fs::rename(&partial, &path).map_err(ReportError::io(&path))?;
    Ok(path)
}
