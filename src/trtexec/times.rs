//! `--exportTimes=F`: the timing trace, one object per timed iteration (warm-up iterations are left
//! out by trtexec).
//!
//! As `exportJSONTrace` in `samples/common/sampleReporting.cpp` writes it:
//!
//! ```text
//! [
//!   { "startEnqMs" : 4.11, "endEnqMs" : 4.15, "startH2dMs" : 4.02, "endH2dMs" : 4.02,
//!     "startComputeMs" : 4.02, "endComputeMs" : 4.93, "startD2hMs" : 4.93, "endD2hMs" : 4.93,
//!     "h2dMs" : 0, "computeMs" : 0.909, "d2hMs" : 0, "latencyMs" : 0.909 }
//! , { ... }
//! ]
//! ```
//!
//! Timestamps are milliseconds since trtexec's start; durations are milliseconds. `computeMs`, the
//! GPU time between the CUDA events around the engine's enqueue, is what precheck compares: it
//! leaves out the host-device copies (`h2dMs`, `d2hMs`, zero with `--noDataTransfers`), which
//! `latencyMs` adds.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TrtexecError;
use crate::measure::LatencyStats;

const FLAG: &str = "--exportTimes";

/// One timed iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Iteration {
    /// When the host started enqueuing the inference.
    pub start_enq_ms: f64,
    /// When the enqueue call returned.
    pub end_enq_ms: f64,
    /// When the input copies started on the GPU.
    pub start_h2d_ms: f64,
    /// When they ended.
    pub end_h2d_ms: f64,
    /// When the engine's kernels started.
    pub start_compute_ms: f64,
    /// When they ended.
    pub end_compute_ms: f64,
    /// When the output copies started.
    pub start_d2h_ms: f64,
    /// When they ended.
    pub end_d2h_ms: f64,
    /// Input copy time.
    pub h2d_ms: f64,
    /// GPU compute time.
    pub compute_ms: f64,
    /// Output copy time.
    pub d2h_ms: f64,
    /// Input copy, compute and output copy: the host-side latency of one inference.
    pub latency_ms: f64,
}

/// A timing trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The timed iterations, in order.
    pub iterations: Vec<Iteration>,
}

impl Trace {
    /// The GPU compute time of each iteration, milliseconds, in order.
    pub fn compute_ms(&self) -> Vec<f64> {
        self.iterations.iter().map(|i| i.compute_ms).collect()
    }

    /// The distribution of the compute times, as precheck's own latency measurements report it;
    /// `None` for a trace without iterations.
    pub fn compute_stats(&self) -> Option<LatencyStats> {
        let samples: Vec<Duration> = self
            .iterations
            .iter()
            .map(|i| Duration::from_secs_f64(i.compute_ms / 1e3))
            .collect();
        LatencyStats::from_samples(&samples)
    }
}

/// Reads a trace file.
pub fn read(path: &Path) -> Result<Trace, TrtexecError> {
    parse(path, &super::read_text(path)?)
}

/// Parses a trace, `text` read from `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> Result<Trace, TrtexecError> {
    let iterations: Vec<Iteration> = super::parse_json(path, FLAG, text)?;
    // Durations are differences of clock readings: a negative or non-finite one means the file
    // is not what trtexec wrote (and `Duration` cannot hold it).
    for (index, iteration) in iterations.iter().enumerate() {
        for (field, value) in [
            ("h2dMs", iteration.h2d_ms),
            ("computeMs", iteration.compute_ms),
            ("d2hMs", iteration.d2h_ms),
            ("latencyMs", iteration.latency_ms),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(TrtexecError::Content {
                    path: path.to_owned(),
                    flag: FLAG,
                    message: format!("iteration {index} has {field} {value}; durations are >= 0"),
                });
            }
        }
    }
    Ok(Trace { iterations })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{ "startEnqMs" : 1, "endEnqMs" : 1.1, "startH2dMs" : 1, "endH2dMs" : 1, "startComputeMs" : 1, "endComputeMs" : 1.5, "startD2hMs" : 1.5, "endD2hMs" : 1.5, "h2dMs" : 0, "computeMs" : 0.5, "d2hMs" : 0, "latencyMs" : 0.5 }"#;

    #[test]
    fn a_negative_duration_names_the_iteration_and_field() {
        let text = format!(
            "[ {ONE}, {} ]",
            ONE.replace("\"computeMs\" : 0.5", "\"computeMs\" : -0.5")
        );
        let error = parse(Path::new("t.json"), &text).unwrap_err().to_string();
        assert!(
            error.contains("t.json") && error.contains("iteration 1 has computeMs -0.5"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_field_names_the_iteration_and_field() {
        let text = format!(
            "[ {ONE},\n {} ]",
            ONE.replace("\"latencyMs\" : 0.5", "\"x\" : 0")
        );
        let error = parse(Path::new("t.json"), &text).unwrap_err().to_string();
        assert!(error.starts_with("t.json:2:"), "{error}");
        assert!(
            error.contains("missing field `latencyMs`") && error.contains("[1]"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_trace_has_no_statistics() {
        let trace = parse(Path::new("t.json"), "[\n]\n").unwrap();
        assert!(trace.iterations.is_empty() && trace.compute_stats().is_none());
    }
}
