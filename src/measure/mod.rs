//! Measuring a variant: accuracy against the reference, the distribution of its latency, the cache
//! state and clocks it was timed in, the kernels it launched, and where its wall time went.

mod accuracy;
mod agreement;
mod cache;
mod clocks;
mod latency;
mod launches;
mod phases;

pub use accuracy::{compare, Accuracy, MetricError};
pub use agreement::AgreementMode;
pub use cache::CacheMode;
pub use clocks::{Clocks, SmClock};
pub use latency::{engine_latency, percentile, time_runs, LatencyStats};
pub use launches::KernelLaunches;
pub use phases::Phases;
