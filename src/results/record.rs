//! The record of one variant: one line of `results.jsonl`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::gate::{GateFailure, Gates};
use crate::measure::{Accuracy, CacheMode, Clocks, KernelLaunches, LatencyStats, Phases};
use crate::mismatch::Mismatch;
use crate::precision::Policy;

/// Version of the record layout; bumped when a field changes meaning. 2: `emulated` is true for
/// every precision but FP32 on the CPU backend (1: only for quantized recipes, and never for a
/// built-in block there).
pub const RECORD_SCHEMA: u32 = 2;

/// A variant's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every gate met.
    Passed,
    /// At least one gate not met.
    Failed,
    /// The variant could not be built, run or measured.
    Error,
    /// The variant was not run: its backend cannot run here (a missing `trtexec`); the record
    /// says why. Never a pass.
    Skipped,
}

impl Status {
    /// The name shown to people.
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "pass",
            Status::Failed => "FAIL",
            Status::Error => "ERROR",
            Status::Skipped => "SKIP",
        }
    }
}

/// What a variant's speed is compared with: the reference precision on the same device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Baseline {
    /// Id of the baseline (`model/bf16/cpu`); it may be a variant of the run or timed only for this.
    pub id: String,
    /// The baseline's median latency.
    pub median_ms: f64,
    /// `baseline median / variant median`: above 1 is faster than the baseline.
    pub speedup: f64,
}

/// Accuracy of one intermediate output (a stack's layer) against the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerAccuracy {
    /// The tap's name (`layer.3`).
    pub name: String,
    /// Against the reference's same tap.
    pub accuracy: Accuracy,
}

/// How a variant's worker process ended, when it returned no result: crashed, killed, timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkerExit {
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Whether it ran past the variant's timeout (and was ended).
    pub timed_out: bool,
    /// The end of its stderr.
    pub stderr_tail: String,
}

/// Everything recorded about one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantRecord {
    /// [`RECORD_SCHEMA`] of the writer.
    pub schema: u32,
    /// `model/precision/device`.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Block kind (`linear`, `mlp`).
    pub block: String,
    /// Name of the precision asked for.
    pub precision: String,
    /// The precision policy, resolved.
    pub policy: Policy,
    /// Device of the variant id.
    pub device: String,
    /// Backend that ran it.
    pub backend: BackendKind,
    /// What it ran on, for people.
    pub device_name: String,
    /// Input rows.
    pub tokens: usize,
    /// FLOPs of one forward pass.
    pub flops: f64,
    /// The verdict.
    pub status: Status,
    /// The gates it was held to.
    pub gates: Gates,
    /// Gates not met (empty unless `failed`).
    pub failures: Vec<GateFailure>,
    /// Accuracy against the reference, when measured.
    pub accuracy: Option<Accuracy>,
    /// Latency distribution, when measured.
    pub latency: Option<LatencyStats>,
    /// Speed against the reference precision, when both were timed.
    pub baseline: Option<Baseline>,
    /// Whether the backend emulated the precision (rounded or quantized values computed in a wider
    /// format) instead of running it natively: on the CPU backend, every precision but FP32. An
    /// emulation's latency is not its precision's speed.
    #[serde(default)]
    pub emulated: bool,
    /// On a backend other than the CPU: this output against the CPU backend's emulation of the
    /// same policy, which should differ only by accumulation order.
    #[serde(default)]
    pub cpu_agreement: Option<Accuracy>,
    /// Every kernel one forward pass launched, where the backend can trace them (CUDA: CUPTI).
    #[serde(default)]
    pub kernels: Option<Vec<KernelLaunches>>,
    /// Whether the precision asked for is the one that ran, with the evidence (backends other
    /// than the CPU emulation).
    #[serde(default)]
    pub mismatch: Option<Mismatch>,
    /// Accuracy after each layer of a stack against the reference's same layer, in depth order:
    /// where along the depth the error grows (empty for other blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerAccuracy>,
    /// The GPU's SM clock before and after the timed iterations, where the backend reads it
    /// (CUDA, through NVML): a throttled run shows here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clocks: Option<Clocks>,
    /// What the GPU's L2 cache held when each timed iteration started: the run's `cache`
    /// setting where the backend could honour it, else `warm`. None without a timing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheMode>,
    /// Where the variant's wall time went, seconds per phase, when it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
    /// Why the variant errored.
    pub error: Option<String>,
    /// How its worker process ended, when that, not the measurement, is why it errored.
    #[serde(default)]
    pub worker: Option<WorkerExit>,
    /// When the variant started.
    pub started_at: DateTime<Utc>,
    /// Wall time of the whole variant (build, accuracy run, timing), seconds.
    pub wall_s: f64,
}
