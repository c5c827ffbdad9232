//! Measuring a variant: accuracy against the reference, the distribution of its latency, the cache
//! state and clocks it was timed in, and the kernels it launched.

mod accuracy;
mod cache;
mod clocks;
mod latency;
mod launches;

pub use accuracy::{compare, Accuracy, MetricError};
pub use cache::CacheMode;
pub use clocks::{Clocks, SmClock};
pub use latency::{engine_latency, time_runs, LatencyStats};
pub use launches::KernelLaunches;
