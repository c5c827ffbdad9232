//! Results that survive: one JSON line per variant in `results.jsonl`, appended and flushed as each
//! variant ends, and the run's environment in `run.json`. Reports and gates read only these files,
//! so they can be rebuilt offline, and a run killed half way leaves every finished variant readable.

mod folder;
mod lock;
mod merge;
mod record;
mod run_info;
mod schema;
mod writer;

pub use folder::{resume, start, ResumeError, RunFolder};
pub use lock::{FolderLock, LockError, LOCK_FILE};
pub use merge::{merge, MergeError, Merged};
pub use record::{Baseline, LayerAccuracy, Status, VariantRecord, WorkerExit, RECORD_SCHEMA};
pub use run_info::{RunInfo, RunSettings, SuiteInfo};
pub use schema::{record_schema, SCHEMA_FILE};
pub use writer::{read_records, ResultsError, ResultsWriter, RESULTS_FILE, RUN_INFO_FILE};
