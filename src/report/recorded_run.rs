//! A run folder read back: `run.json` and every record of `results.jsonl`.

use std::path::{Path, PathBuf};

use super::ReportError;
use crate::exit_code::ExitCode;
use crate::results::{read_records, RunInfo, VariantRecord, RESULTS_FILE, RUN_INFO_FILE};

/// What a run folder holds, read back from its two files.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    /// The run folder.
    pub dir: PathBuf,
    /// `run.json`.
    pub info: RunInfo,
    /// `results.jsonl`, in the order the variants ran.
    pub records: Vec<VariantRecord>,
    /// Lines of `results.jsonl` that were skipped (a torn last line), said for people.
    pub warnings: Vec<String>,
}

impl RecordedRun {
    /// Reads the run folder `dir`.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let info_path = dir.join(RUN_INFO_FILE);
        let text = std::fs::read_to_string(&info_path).map_err(ReportError::io(&info_path))?;
        let info = serde_json::from_str(&text).map_err(|e| ReportError::RunInfo {
            path: info_path,
            message: e.to_string(),
        })?;
        let (records, warnings) = read_records(&dir.join(RESULTS_FILE))?;
        Ok(RecordedRun {
            dir: dir.to_owned(),
            info,
            records,
            warnings,
        })
    }

    /// Whether the run was interrupted: `run.json` has no end time.
    pub fn interrupted(&self) -> bool {
        self.info.finished_at.is_none()
    }

    /// The planned variants that have no record.
    pub fn missing(&self) -> Vec<&str> {
        self.info
            .planned
            .iter()
            .filter(|id| !self.records.iter().any(|r| &r.id == *id))
            .map(String::as_str)
            .collect()
    }

    /// The run's exit code as its folder holds it: stopped before it ended, then a planned
    /// variant without a record (a run killed, a record deleted), then as its records say. An
    /// incomplete run is never a pass.
    pub fn exit_code(&self) -> ExitCode {
        if self.interrupted() {
            ExitCode::Interrupted
        } else if !self.missing().is_empty() {
            ExitCode::VariantError
        } else {
            ExitCode::of_records(&self.records)
        }
    }
}
