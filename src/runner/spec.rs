//! What a run is given: its suite and plan, its devices, what an earlier attempt recorded, and
//! when to stop.

use std::sync::atomic::AtomicBool;

use super::pool::Slot;
use crate::plan::Plan;
use crate::results::VariantRecord;
use crate::suite::Suite;

/// A run: its plan, where it runs, what an earlier attempt recorded, and when to stop.
pub struct RunSpec<'a> {
    /// The suite.
    pub suite: &'a Suite,
    /// What runs.
    pub plan: &'a Plan,
    /// The devices: one variant at a time on each.
    pub slots: Vec<Slot>,
    /// Records of an earlier attempt (`--resume`): their variants do not run again.
    pub recorded: &'a [VariantRecord],
    /// Set (Ctrl-C, SIGTERM) to stop: running variants are ended and not recorded.
    pub stop: &'a AtomicBool,
    /// Why the backend cannot run here: every variant is recorded as skipped, saying so.
    pub skip: Option<String>,
}
