//! Reports read from the result records: the terminal summary always; with the `report` feature,
//! the files of a run folder (HTML, Markdown, JUnit, Parquet), the comparison of two runs and the
//! history of many. Every report reads only `results.jsonl` and `run.json`, so any of them can be
//! rebuilt offline from a run folder.

mod cells;
pub mod terminal;

#[cfg(feature = "report")]
mod charts;
#[cfg(feature = "report")]
pub mod compare;
#[cfg(feature = "report")]
mod error;
pub mod explain;
#[cfg(feature = "report")]
pub mod history;
#[cfg(feature = "report")]
mod html;
#[cfg(feature = "report")]
pub mod junit;
#[cfg(feature = "report")]
pub mod markdown;
#[cfg(feature = "report")]
mod nested;
#[cfg(feature = "report")]
pub mod parquet;
#[cfg(feature = "report")]
mod recorded_run;
#[cfg(feature = "report")]
mod rows;
#[cfg(feature = "report")]
pub mod stats;
#[cfg(feature = "report")]
pub mod table;
#[cfg(feature = "report")]
mod write;

pub use cells::why;
#[cfg(feature = "report")]
pub use error::ReportError;
#[cfg(feature = "report")]
pub use recorded_run::RecordedRun;
#[cfg(feature = "report")]
pub use write::{write_run_reports, HTML_FILE, JUNIT_FILE, MARKDOWN_FILE, PARQUET_FILE};
