//! `run.json`: what ran, where, when and how.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::formats::Format;
use crate::host::HostInfo;
use crate::measure::{AgreementMode, CacheMode};
use crate::shard::Shard;

/// The suite a run came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteInfo {
    /// Suite name.
    pub name: String,
    /// Path as given on the command line.
    pub path: String,
    /// SHA-256 of the suite file.
    pub sha256: String,
}

/// Settings after command-line overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Seed of weights and inputs.
    pub seed: u64,
    /// Untimed runs per variant.
    pub warmup: u32,
    /// Timed runs per variant.
    pub iterations: usize,
    /// `--filter` patterns.
    pub filters: Vec<String>,
    /// The reference format: the model is defined in it.
    pub reference: Format,
    /// The golden file the reference outputs come from; none: precheck's exact evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden: Option<std::path::PathBuf>,
    /// How long one variant's worker may run before it is ended, seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// The slice of the matrix this run executes (`--shard`, Slurm or Kubernetes); none: all.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// What the GPU's L2 cache holds when each timed iteration starts (each record says what its
    /// backend could do).
    #[serde(default)]
    pub cache: CacheMode,
    /// Which variants on an engine are also emulated on the CPU (`--cpu-agreement`).
    #[serde(default)]
    pub cpu_agreement: AgreementMode,
    /// Whether the host's products (the exact reference's, the CPU emulations') stay on the
    /// host's cores when the backend's device could compute them (`--products-on-host`).
    #[serde(default)]
    pub products_on_host: bool,
    /// The reference store's folder (`--store`); none: every reference is computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<std::path::PathBuf>,
}

/// For `run.json` files older than the field: the suite's default.
fn default_timeout_s() -> f64 {
    crate::suite::Defaults::default()
        .timeout
        .get()
        .as_secs_f64()
}

/// The environment of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// precheck's version.
    pub precheck_version: String,
    /// The suite.
    pub suite: SuiteInfo,
    /// The host.
    pub host: HostInfo,
    /// The backend.
    pub backend: BackendKind,
    /// What the backend runs on.
    pub device_name: String,
    /// Settings.
    pub settings: RunSettings,
    /// Variants planned.
    pub variants_planned: usize,
    /// Their ids: what `merge` checks its shards against.
    #[serde(default)]
    pub planned: Vec<String>,
    /// The command line.
    pub command_line: Vec<String>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time; absent while running or after a kill.
    pub finished_at: Option<DateTime<Utc>>,
    /// When `--resume` continued the run, once per resume.
    #[serde(default)]
    pub resumed_at: Vec<DateTime<Utc>>,
    /// The run folders `precheck merge` joined into this one.
    #[serde(default)]
    pub merged_from: Vec<String>,
}
