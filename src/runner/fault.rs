//! Test-only fault injection into workers, so that the tests can plant the failures isolation
//! exists for: `PRECHECK_TEST_WORKER_FAULT=PRECISION=FAULT[,PRECISION=FAULT...]` makes the worker
//! of every variant in that precision (by name) fail so:
//!
//! - `segfault`: killed by SIGSEGV, as a crash in a driver or kernel launch;
//! - `hang`: sleeps forever, as a hung kernel, until the run's timeout ends it;
//! - `cuda_error`: prints a CUDA error and exits with status 1, as a CUDA runtime that aborts;
//! - `input_panic`: panics on the thread that reads the model's inputs while the device opens,
//!   as a loader bug would ([`inject_while_reading`]).
//!
//! Only `precheck worker` reads the variable; nothing else in precheck looks at it.

use std::time::Duration;

/// The variable read.
pub const FAULT_VAR: &str = "PRECHECK_TEST_WORKER_FAULT";

/// The fault the variable names for `precision`, if any.
fn planted(precision: &str) -> Option<String> {
    let spec = std::env::var(FAULT_VAR).ok()?;
    spec.split(',')
        .filter_map(|entry| entry.split_once('='))
        .find(|(name, _)| *name == precision)
        .map(|(_, fault)| fault.to_string())
}

/// Panics if the variable plants `input_panic` for `precision`; called on the thread that reads
/// a model's inputs.
pub fn inject_while_reading(precision: &str) {
    if planted(precision).as_deref() == Some("input_panic") {
        panic!("{FAULT_VAR}: input_panic planted for {precision}");
    }
}

/// Fails as the variable says for `precision`; returns when it names no fault for it, or one
/// planted elsewhere (`input_panic`).
pub fn inject(precision: &str) {
    match planted(precision).as_deref() {
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
        Some("input_panic") | None => {}
        Some(other) => eprintln!("{FAULT_VAR}: unknown fault `{other}`, ignored"),
    }
}
