//! Measuring a variant: accuracy against the reference and the distribution of its latency.

mod accuracy;
mod latency;

pub use accuracy::{compare, Accuracy, MetricError};
pub use latency::{time_runs, LatencyStats};
