//! The kernels a forward pass launched, as a backend's kernel trace (CUPTI, trtexec's profile)
//! reports them: the raw evidence the kernel-name classifier reads.

use serde::{Deserialize, Serialize};

/// The launches of one kernel in one forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KernelLaunches {
    /// The kernel's name as the driver reports it (`nvjet_sm90_qqtst_...`).
    pub name: String,
    /// Launches in one forward pass.
    pub launches: u32,
    /// Their total duration, microseconds.
    pub total_us: f64,
}
