//! The record of one variant: one line of `results.jsonl`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::gate::{GateFailure, Gates};
use crate::measure::{Accuracy, LatencyStats};
use crate::mismatch::Mismatch;
use crate::precision::Policy;
use crate::suite::CacheMode;

/// Version of the record layout; bumped when a field changes meaning.
pub const RECORD_SCHEMA: u32 = 1;

/// A variant's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// One reading of a GPU's SM clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmClock {
    /// The SM clock, MHz.
    pub sm_mhz: u32,
    /// Its maximum, MHz.
    pub max_sm_mhz: u32,
    /// Why NVML says the clock is held down (`sw_power_cap`, `hw_thermal_slowdown`, ...;
    /// `gpu_idle` between launches); empty for none.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// NVML's running total of the time the power limit held the clocks down, nanoseconds
    /// (its difference across a timing shows capping the clock read after it cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_capped_ns: Option<u64>,
}

/// The SM clock around a variant's timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clocks {
    /// Before the warm-up.
    pub before: SmClock,
    /// After the last timed iteration.
    pub after: SmClock,
}

impl Clocks {
    /// How long the power limit held the clocks down between the two reads, milliseconds.
    pub fn power_capped_ms(&self) -> Option<f64> {
        let (before, after) = (self.before.power_capped_ns?, self.after.power_capped_ns?);
        Some(after.saturating_sub(before) as f64 / 1e6)
    }

    /// A note when the clock ended below 90 % of its maximum, or the power limit held it down
    /// during the timing: the timings may be throttled.
    pub fn throttle_note(&self) -> Option<String> {
        let after = &self.after;
        let low = f64::from(after.sm_mhz) < 0.9 * f64::from(after.max_sm_mhz);
        let capped = self.power_capped_ms().filter(|&ms| ms > 0.0);
        if !low && capped.is_none() {
            return None;
        }
        let reasons = if after.reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", after.reasons.join(", "))
        };
        let capped = capped.map_or(String::new(), |ms| {
            format!("; power-capped for {ms:.1} ms of it")
        });
        Some(format!(
            "SM clock {} → {} MHz of {} during timing{reasons}{capped}",
            self.before.sm_mhz, after.sm_mhz, after.max_sm_mhz,
        ))
    }
}

/// What a variant's speed is compared with: the reference precision on the same device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Id of the baseline (`model/bf16/cpu`); it may be a variant of the run or timed only for this.
    pub id: String,
    /// The baseline's median latency.
    pub median_ms: f64,
    /// `baseline median / variant median`: above 1 is faster than the baseline.
    pub speedup: f64,
}

/// Accuracy of one intermediate output (a stack's layer) against the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerAccuracy {
    /// The tap's name (`layer.3`).
    pub name: String,
    /// Against the reference's same tap.
    pub accuracy: Accuracy,
}

/// The launches of one kernel in one forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelLaunches {
    /// The kernel's name as the driver reports it (`nvjet_sm90_qqtst_...`).
    pub name: String,
    /// Launches in one forward pass.
    pub launches: u32,
    /// Their total duration, microseconds.
    pub total_us: f64,
}

/// How a variant's worker process ended, when it returned no result: crashed, killed, timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Whether the backend emulated the precision (quantized values multiplied in a wider format)
    /// instead of running it natively.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(sm_mhz: u32, reasons: &[&str]) -> SmClock {
        SmClock {
            sm_mhz,
            max_sm_mhz: 1980,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            power_capped_ns: None,
        }
    }

    #[test]
    fn a_clock_below_nine_tenths_of_its_maximum_is_noted() {
        let steady = Clocks {
            before: clock(1980, &[]),
            after: clock(1800, &[]),
        };
        assert_eq!(steady.throttle_note(), None);
        let throttled = Clocks {
            before: clock(1980, &[]),
            after: clock(1410, &["sw_power_cap"]),
        };
        assert_eq!(
            throttled.throttle_note().unwrap(),
            "SM clock 1980 → 1410 MHz of 1980 during timing (sw_power_cap)"
        );
    }

    #[test]
    fn power_capping_during_the_timing_is_noted_even_at_full_clock() {
        let capped_at = |ns| SmClock {
            power_capped_ns: Some(ns),
            ..clock(1980, &[])
        };
        let capped = Clocks {
            before: capped_at(5_000_000),
            after: capped_at(17_500_000),
        };
        assert_eq!(capped.power_capped_ms(), Some(12.5));
        assert_eq!(
            capped.throttle_note().unwrap(),
            "SM clock 1980 → 1980 MHz of 1980 during timing; power-capped for 12.5 ms of it"
        );
        let uncapped = Clocks {
            before: capped_at(5_000_000),
            after: capped_at(5_000_000),
        };
        assert_eq!(uncapped.throttle_note(), None);
    }
}
