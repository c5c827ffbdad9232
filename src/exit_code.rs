//! precheck's exit codes: what CI gates on.

use crate::results::{Status, VariantRecord};

/// How a precheck command ended. The numeric values are part of precheck's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every variant passed every gate (or the command had nothing to gate).
    Success = 0,
    /// At least one variant failed a gate (`run`, `report`), or regressed against the base run
    /// (`compare`).
    GateFailed = 1,
    /// Bad usage, a bad suite, or a backend that cannot run here: nothing was measured.
    UsageOrSuiteError = 2,
    /// At least one variant errored (could not be built, run or measured) or was skipped (its
    /// backend cannot run here): the run is incomplete.
    VariantError = 3,
    /// The run was stopped (Ctrl-C, SIGTERM) before every variant ran; `--resume` finishes it.
    Interrupted = 130,
}

impl ExitCode {
    /// The code for a run's records: an error outranks a gate failure, since an incomplete run
    /// cannot vouch for anything.
    pub fn of_records(records: &[VariantRecord]) -> ExitCode {
        let has = |status| records.iter().any(|r| r.status == status);
        if has(Status::Error) || has(Status::Skipped) {
            ExitCode::VariantError
        } else if has(Status::Failed) {
            ExitCode::GateFailed
        } else {
            ExitCode::Success
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
