//! What can go wrong while reading a run folder or writing a report.

use std::io;
use std::path::PathBuf;

use crate::results::ResultsError;

/// A report that cannot be built or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `results.jsonl` cannot be read.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// `run.json` is missing or is not a run description.
    #[error("{path}: not a run description: {message}")]
    RunInfo {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A file or folder that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A template that does not render (a bug in precheck, not in the data).
    #[error("rendering {template}: {message}")]
    Template {
        /// The template's name.
        template: String,
        /// Tera's message, with its causes.
        message: String,
    },
    /// A chart that plotters could not draw.
    #[error("drawing the {chart} chart: {message}")]
    Chart {
        /// Which chart.
        chart: &'static str,
        /// plotters' message.
        message: String,
    },
    /// The flat table or its Parquet file.
    #[error("{path}: {source}")]
    Table {
        /// The Parquet file.
        path: PathBuf,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// A folder that holds no run folder.
    #[error("{0}: no run folders (folders holding results.jsonl) under it")]
    NoRuns(PathBuf),
}

impl ReportError {
    /// A closure turning an I/O error on `path` into a [`ReportError::Io`].
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(io::Error) -> ReportError + '_ {
        move |source| ReportError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
