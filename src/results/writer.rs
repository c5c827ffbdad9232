//! Writing and reading a run folder's result files.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{RunInfo, VariantRecord};

/// One JSON object per variant, one per line.
pub const RESULTS_FILE: &str = "results.jsonl";
/// The run's environment.
pub const RUN_INFO_FILE: &str = "run.json";

/// A result file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// An I/O failure on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The run folder already holds results; precheck never overwrites them.
    #[error("{0} already holds results: choose another --out folder")]
    AlreadyExists(PathBuf),
    /// A line of `results.jsonl` that is not a record (other than a torn last line).
    #[error("{path}:{line}: not a result record: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// The parser's message.
        message: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Appends records to `results.jsonl`, each flushed to the disk before the next variant starts.
pub struct ResultsWriter {
    dir: PathBuf,
    file: File,
}

impl ResultsWriter {
    /// Creates the run folder (and parents) and a new, empty `results.jsonl` in it.
    pub fn create(dir: &Path) -> Result<Self, ResultsError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(RESULTS_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => ResultsError::AlreadyExists(dir.to_owned()),
                _ => ResultsError::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
        Ok(ResultsWriter {
            dir: dir.to_owned(),
            file,
        })
    }

    /// Opens the run folder's `results.jsonl` to append to it, after the records it holds, which
    /// are returned with warnings about lines skipped (see [`read_records`]). A torn last line is
    /// left in place and ended, so that the next record starts on a line of its own: the file is
    /// only ever appended to.
    pub fn resume(dir: &Path) -> Result<(Self, Vec<VariantRecord>, Vec<String>), ResultsError> {
        let path = dir.join(RESULTS_FILE);
        let (records, warnings) = read_records(&path)?;
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let ends_a_line = fs::read(&path)
            .map_err(io_error(&path))?
            .last()
            .is_none_or(|&byte| byte == b'\n');
        if !ends_a_line {
            file.write_all(b"\n")
                .and_then(|()| file.sync_data())
                .map_err(io_error(&path))?;
        }
        let writer = ResultsWriter {
            dir: dir.to_owned(),
            file,
        };
        Ok((writer, records, warnings))
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `record` as one line with a single write, then syncs it to the disk.
    pub fn append(&mut self, record: &VariantRecord) -> Result<(), ResultsError> {
        let mut line = serde_json::to_string(record).expect("records always serialize");
        line.push('\n');
        let path = self.dir.join(RESULTS_FILE);
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io_error(&path))
    }

    /// Writes `run.json` through a temporary file and a rename, so that it is never half written.
    pub fn write_run_info(&self, info: &RunInfo) -> Result<(), ResultsError> {
        let path = self.dir.join(RUN_INFO_FILE);
        let partial = self.dir.join(format!("{RUN_INFO_FILE}.partial"));
        let json = serde_json::to_string_pretty(info).expect("run info always serializes");
        fs::write(&partial, json + "\n").map_err(io_error(&partial))?;
        fs::rename(&partial, &path).map_err(io_error(&path))
    }
}

/// Reads the records of `results.jsonl`. A torn line (a run killed while writing it: JSON that
/// ends early) is skipped and reported in the returned warnings, wherever it is, since `--resume`
/// appends after it; any other bad line is an error.
pub fn read_records(path: &Path) -> Result<(Vec<VariantRecord>, Vec<String>), ResultsError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (i, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<VariantRecord>(line) {
            // Two writers of one folder (before folders were locked) recorded variants twice.
            Ok(record) => match first_line.get(&record.id) {
                Some(first) => warnings.push(format!(
                    "{}:{}: `{}` is recorded again (first on line {first}); the later record is ignored",
                    path.display(),
                    i + 1,
                    record.id
                )),
                None => {
                    first_line.insert(record.id.clone(), i + 1);
                    records.push(record);
                }
            },
            Err(e) if e.is_eof() => warnings.push(format!(
                "{}:{}: ignoring an incomplete line (the run was interrupted while writing it): {e}",
                path.display(),
                i + 1
            )),
            Err(e) => {
                return Err(ResultsError::Malformed {
                    path: path.to_owned(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok((records, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's results, the first line of which is a record.
    const RUN: &str = include_str!("../../tests/fixtures/runs/base/results.jsonl");

    #[test]
    fn a_torn_line_is_skipped_and_resume_starts_a_fresh_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_FILE);
        let record = RUN.lines().next().unwrap();
        fs::write(&path, format!("{record}\n{}", &record[..record.len() / 2])).unwrap();
        let (mut writer, records, warnings) = ResultsWriter::resume(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(":2: ignoring an incomplete line"));
        let next: VariantRecord = serde_json::from_str(RUN.lines().nth(1).unwrap()).unwrap();
        writer.append(&next).unwrap();
        let (again, warnings) = read_records(&path).unwrap();
        assert_eq!(again, [records[0].clone(), next]);
        assert!(
            warnings[0].contains(":2: ignoring an incomplete line"),
            "the torn line stays"
        );
    }

    #[test]
    fn a_corrupt_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_FILE);
        fs::write(&path, format!("{{\"id\": 3}}\n{RUN}")).unwrap();
        let error = read_records(&path).unwrap_err();
        assert!(
            error.to_string().contains(":1: not a result record"),
            "{error}"
        );
    }

    #[test]
    fn a_variant_recorded_twice_is_read_once_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_FILE);
        let record = RUN.lines().next().unwrap();
        fs::write(&path, format!("{record}\n{record}\n")).unwrap();
        let (records, warnings) = read_records(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert!(
            warnings[0].contains(":2: `")
                && warnings[0].contains("is recorded again (first on line 1)"),
            "{warnings:?}"
        );
    }
}
