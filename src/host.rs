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

/// The environment variable that sets the memory a variant may need, in GiB (default: this
/// machine's memory).
pub const MEMORY_LIMIT_VARIABLE: &str = "PRECHECK_MEMORY_LIMIT_GIB";

/// precheck's folder in the user's cache: `$XDG_CACHE_HOME/precheck`, else
/// `~/.cache/precheck`, else in the system's temporary folder.
pub fn cache_home() -> std::path::PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("precheck")
}

/// The memory a variant may need, in bytes, and where the limit comes from: the environment's
/// [`MEMORY_LIMIT_VARIABLE`], else the machine's memory (`/proc/meminfo`); `None` where
/// neither is known. An unreadable setting is an error naming it.
pub fn memory_limit() -> Result<Option<(u128, &'static str)>, String> {
    if let Ok(text) = std::env::var(MEMORY_LIMIT_VARIABLE) {
        return match text.trim().parse::<u64>() {
            Ok(gib) if gib > 0 => Ok(Some((u128::from(gib) << 30, MEMORY_LIMIT_VARIABLE))),
            _ => Err(format!(
                "{MEMORY_LIMIT_VARIABLE}={text}: expected a whole number of GiB above zero"
            )),
        };
    }
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    Ok(total.map(|bytes| (bytes, "this machine's memory")))
}

/// The CPU's model name from `/proc/cpuinfo` (Linux); `None` elsewhere.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, name)| name.trim().to_owned())
}
