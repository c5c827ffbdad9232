//! Test-only fault injection into workers, so that the tests can plant the failures isolation
//! exists for: `PRECHECK_TEST_WORKER_FAULT=PRECISION=FAULT[,PRECISION=FAULT...]` makes the worker
//! of every variant in that precision (by name) fail so:
//!
//! - `segfault`: killed by SIGSEGV, as a crash in a driver or kernel launch;
//! - `hang`: sleeps forever, as a hung kernel, until the run's timeout ends it;
//! - `cuda_error`: prints a CUDA error and exits with status 1, as a CUDA runtime that aborts.
//!
//! Only `precheck worker` reads the variable; nothing else in precheck looks at it.

use std::time::Duration;

/// The variable read.
pub const FAULT_VAR: &str = "PRECHECK_TEST_WORKER_FAULT";

/// Fails as the variable says for `precision`; returns when it names no fault for it.
pub fn inject(precision: &str) {
    let Ok(spec) = std::env::var(FAULT_VAR) else {
        return;
    };
    let fault = spec
        .split(',')
        .filter_map(|entry| entry.split_once('='))
        .find(|(name, _)| *name == precision)
        .map(|(_, fault)| fault);
    match fault {
        Some("segfault") => {
            // SAFETY: restores the default action (Rust's handler only reports stack overflows)
            // and raises the signal, which ends the process as a real SIGSEGV does.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
        }
        Some("hang") => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some("cuda_error") => {
            eprintln!(
                "CUDA error: an illegal memory access was encountered (CUDA_ERROR_ILLEGAL_ADDRESS)"
            );
            std::process::exit(1);
        }
        Some(other) => eprintln!("{FAULT_VAR}: unknown fault `{other}`, ignored"),
        None => {}
    }
}
