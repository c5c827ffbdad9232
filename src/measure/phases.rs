//! Where a variant's wall time went: seconds per phase of its measurement.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Seconds a variant spent in each phase. The GPU works in `timing` (and in `run` and `trace`);
/// the rest is host work that a farm pays GPU hours for while the GPU waits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Phases {
    /// Weights, input and the reference: made, or read from the reference store.
    pub reference: f64,
    /// The backend's build of the variant (compiling, quantizing weights, an engine's build).
    pub build: f64,
    /// Calibration runs (static scales).
    pub calibration: f64,
    /// The accuracy run and the comparisons with the reference.
    pub run: f64,
    /// The kernel trace and the engine's layer report.
    pub trace: f64,
    /// The CPU emulation of the policy, for agreement and the fingerprint.
    pub agreement: f64,
    /// The fingerprint's alternatives.
    pub fingerprint: f64,
    /// Warm-up and timed iterations.
    pub timing: f64,
    /// Seconds the timed iterations took on the device: the sum of their latencies.
    pub timed: f64,
    /// Seconds the warm-up runs before them took on the device, where the backend can tell
    /// (within `timing`, like `timed`).
    #[serde(default)]
    pub warmup: f64,
    /// Seconds the device spent on the host's products (the reference's, the emulations'),
    /// within `reference`, `agreement` and `fingerprint`: kernels only, not the copies.
    #[serde(default)]
    pub products: f64,
}

impl Phases {
    /// Runs `work`, adding its wall time to the phase `field` picks.
    pub fn time<T>(&mut self, field: fn(&mut Phases) -> &mut f64, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        *field(self) += started.elapsed().as_secs_f64();
        result
    }

    /// The seconds of every phase, named, in order (`timed` is within `timing`, not beside it).
    pub fn named(&self) -> [(&'static str, f64); 8] {
        [
            ("reference", self.reference),
            ("build", self.build),
            ("calibration", self.calibration),
            ("run", self.run),
            ("trace", self.trace),
            ("agreement", self.agreement),
            ("fingerprint", self.fingerprint),
            ("timing", self.timing),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_adds_to_the_phase_it_is_given() {
        let mut phases = Phases::default();
        let value = phases.time(
            |p| &mut p.build,
            || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                7
            },
        );
        phases.time(|p| &mut p.build, || ());
        assert_eq!(value, 7);
        assert!(phases.build >= 0.02, "{phases:?}");
        assert_eq!(phases.timing, 0.0);
        assert_eq!(phases.named()[1], ("build", phases.build));
    }
}
