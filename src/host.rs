//! Facts about the machine precheck runs on, for `run.json` and `precheck devices`.

use serde::{Deserialize, Serialize};

/// The host's identity and CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Operating system and architecture (`linux x86_64`).
    pub os: String,
    /// CPU model name, or `unknown`.
    pub cpu_model: String,
    /// Threads the CPU backend uses.
    pub cpu_threads: usize,
}

impl HostInfo {
    /// Reads the current host.
    pub fn current() -> Self {
        HostInfo {
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            cpu_threads: rayon::current_num_threads(),
        }
    }
}

/// The CPU's model name from `/proc/cpuinfo` (Linux); `None` elsewhere.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, name)| name.trim().to_owned())
}
