//! When a variant run on a real engine is also emulated on the CPU: for its agreement with the
//! emulation and for the numeric fingerprint. Each emulation is a whole forward pass on the host,
//! which the GPU waits for.

use serde::{Deserialize, Serialize};

/// Which variants of a run (on a backend other than the CPU emulation) are emulated on the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AgreementMode {
    /// Every variant.
    Every,
    /// The first variant of each policy in a run, and every variant whose kernel trace cannot
    /// vouch for it: no trace, kernels it cannot classify, or GEMMs in another precision.
    #[default]
    Sample,
    /// None: the verdict rests on the kernel trace and the engine's layer report.
    Off,
}

impl AgreementMode {
    /// Whether a variant is emulated, given whether its kernel trace shows every GEMM in the
    /// precision asked for.
    pub fn emulates(self, trace_agrees: bool) -> bool {
        match self {
            AgreementMode::Every => true,
            AgreementMode::Sample => !trace_agrees,
            AgreementMode::Off => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_emulates_only_where_the_trace_cannot_vouch() {
        use AgreementMode::*;
        let table = [
            (Every, [true, true]),
            (Sample, [true, false]),
            (Off, [false, false]),
        ];
        for (mode, [without, with]) in table {
            assert_eq!(mode.emulates(false), without, "{mode:?}");
            assert_eq!(mode.emulates(true), with, "{mode:?}");
        }
    }
}
