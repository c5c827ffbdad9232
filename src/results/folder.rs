//! A run folder opened for a run: a new one, or, with `--resume`, an interrupted one whose records
//! stand and whose `run.json` is carried on, once it is shown to be the same run.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::lock::{FolderLock, LockError, LOCK_FILE};
use super::{ResultsError, ResultsWriter, RunInfo, VariantRecord, RESULTS_FILE, RUN_INFO_FILE};

/// A run folder that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// A result file that cannot be read or written.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// A new run's folder that already holds files precheck would overwrite or mix with.
    #[error("{dir} already holds {}: a run writes into a new or empty folder (pick another --out, or --resume a run folder)", files.join(", "))]
    Occupied {
        /// The folder.
        dir: PathBuf,
        /// What it holds.
        files: Vec<String>,
    },
    /// Another process writes the folder, or it cannot be locked.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The folder's `run.json` cannot be read.
    #[error("--resume: {path}: {message}")]
    RunInfo {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The folder holds another run: resuming would mix two runs' results.
    #[error("--resume {dir}: that run had {what} {then}, this command has {now}: resume with the same suite file and options")]
    Mismatch {
        /// The run folder.
        dir: PathBuf,
        /// What differs.
        what: &'static str,
        /// The folder's value.
        then: String,
        /// This command's.
        now: String,
    },
}

/// An open run folder.
pub struct RunFolder {
    /// Appends to `results.jsonl`.
    pub writer: ResultsWriter,
    /// What `run.json` says now.
    pub info: RunInfo,
    /// Records of an earlier attempt.
    pub recorded: Vec<VariantRecord>,
    /// Torn lines skipped in them.
    pub warnings: Vec<String>,
    /// This process's hold on the folder, for as long as the run writes it.
    pub lock: FolderLock,
}

/// Creates the run folder `dir` for the run `info` (refusing one that holds results).
pub fn start(dir: &Path, info: RunInfo) -> Result<RunFolder, ResumeError> {
    std::fs::create_dir_all(dir).map_err(|source| ResultsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| ResultsError::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != LOCK_FILE)
        .collect();
    if !files.is_empty() {
        files.sort();
        return Err(ResumeError::Occupied {
            dir: dir.to_owned(),
            files,
        });
    }
    let lock = FolderLock::acquire(dir)?;
    let writer = ResultsWriter::create(dir)?;
    writer.write_run_info(&info)?;
    Ok(RunFolder {
        writer,
        info,
        recorded: Vec::new(),
        warnings: Vec::new(),
        lock,
    })
}

/// Continues the run in `dir` as `info` describes it, or starts it there if `dir` holds no
/// results yet (so that a requeued batch job can always pass `--resume`).
pub fn resume(dir: &Path, info: RunInfo) -> Result<RunFolder, ResumeError> {
    if !dir.join(RESULTS_FILE).exists() {
        return start(dir, info);
    }
    let lock = FolderLock::acquire(dir)?;
    let path = dir.join(RUN_INFO_FILE);
    let then: RunInfo = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|message| ResumeError::RunInfo {
            path: path.clone(),
            message,
        })?;
    check_same_run(dir, &then, &info)?;
    let (writer, recorded, warnings) = ResultsWriter::resume(dir)?;
    let mut resumed = then;
    resumed.finished_at = None;
    resumed.resumed_at.push(Utc::now());
    writer.write_run_info(&resumed)?;
    Ok(RunFolder {
        writer,
        info: resumed,
        recorded,
        warnings,
        lock,
    })
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("run info serializes")
}

fn check_same_run(dir: &Path, then: &RunInfo, now: &RunInfo) -> Result<(), ResumeError> {
    let pairs: [(&'static str, String, String); 4] = [
        (
            "suite sha256",
            then.suite.sha256.clone(),
            now.suite.sha256.clone(),
        ),
        (
            "precheck",
            then.precheck_version.clone(),
            now.precheck_version.clone(),
        ),
        ("backend", json(&then.backend), json(&now.backend)),
        ("settings", json(&then.settings), json(&now.settings)),
    ];
    match pairs.into_iter().find(|(_, a, b)| a != b) {
        Some((what, then, now)) => Err(ResumeError::Mismatch {
            dir: dir.to_owned(),
            what,
            then,
            now,
        }),
        None => Ok(()),
    }
}
