//! Precision-mismatch detection: evidence that the precision asked for is the precision that ran,
//! in both directions, combined into one verdict per variant.
//!
//! Four kinds of evidence: the numeric [`fingerprint`] (any backend: the output against CPU
//! emulations of the request and of plausible mismatches), the kernel trace ([`crate::precision::kernels`]) (backends that
//! report the kernels they launched: the CUDA backend through CUPTI), the engine's [`layers`]
//! report (backends whose engines report their layers' types: TensorRT's, as trtexec exports
//! them), and [`speed_sanity`] (a lower precision that bought no speed is `suspect`). `report::explain`
//! writes them out for a person.

pub mod fingerprint;
pub mod layers;

use serde::{Deserialize, Serialize};

use crate::precision::kernels::{expected_gemm_precision, KernelEvidence};
use crate::precision::Policy;
use fingerprint::FingerprintEvidence;
use layers::LayerEvidence;

/// Which way a mismatch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More precise than asked for: the precision paid for did not run (a silent fallback).
    Higher,
    /// Less precise than asked for: an operation the policy keeps high ran lower.
    Lower,
}

/// The verdict on one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// The evidence shows the requested precision.
    None,
    /// A mismatch: its direction and the operations or kernels that show it.
    Detected {
        /// Higher or lower than requested.
        direction: Direction,
        /// Operations (by weight name) or kernel names.
        evidence: Vec<String>,
    },
    /// Nothing shows a mismatch, but the variant's lower precision bought no speed: its GEMMs
    /// should be faster than the baseline's and are not (speed sanity).
    Suspect {
        /// What was compared.
        reason: String,
    },
    /// No kind of evidence could be gathered.
    NoEvidence {
        /// The kinds that were unavailable, and why.
        missing: Vec<String>,
    },
}

impl Verdict {
    /// One word or two for tables: `none`, `detected (higher)`, `suspect`, `no evidence`.
    pub fn summary(&self) -> String {
        match self {
            Verdict::None => "none".into(),
            Verdict::Detected { direction, .. } => {
                format!("detected ({})", format!("{direction:?}").to_lowercase())
            }
            Verdict::Suspect { .. } => "suspect".into(),
            Verdict::NoEvidence { .. } => "no evidence".into(),
        }
    }
}

/// Everything precheck found about a variant's precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Mismatch {
    /// The verdict.
    pub verdict: Verdict,
    /// The numeric fingerprint, when computed.
    pub fingerprint: Option<FingerprintEvidence>,
    /// The kernel trace's reading, when the backend traced its kernels.
    pub kernels: Option<KernelEvidence>,
    /// The engine layer report's reading, when the backend's engine reports its layers.
    #[serde(default)]
    pub layers: Option<LayerEvidence>,
}

/// Below this baseline latency a block is launch-bound, and a lower precision need not be faster:
/// speed sanity only judges blocks at least this slow (the seed MLP takes 0.34 ms in BF16).
pub const SPEED_SANITY_MIN_MS: f64 = 0.1;

/// Speed sanity, the fourth kind of evidence: a variant whose GEMMs run in a lower precision than
/// its baseline's (the reference precision, same model and device) and that is not faster than
/// it is marked [`Verdict::Suspect`], unless other evidence already decided. Emulated variants
/// (quantized values multiplied in a wider format) are not expected to be faster.
pub fn speed_sanity(
    mismatch: &mut Mismatch,
    policy: &Policy,
    baseline: &Policy,
    emulated: bool,
    baseline_median_ms: f64,
    speedup: f64,
) {
    let asked = expected_gemm_precision(policy, emulated);
    let base = expected_gemm_precision(baseline, false);
    // A NaN speed-up (no timing) is no evidence of speed either way.
    let faster = speedup > 1.0 || speedup.is_nan();
    if emulated || asked.bits() >= base.bits() || baseline_median_ms < SPEED_SANITY_MIN_MS || faster
    {
        return;
    }
    if matches!(mismatch.verdict, Verdict::None) {
        mismatch.verdict = Verdict::Suspect {
            reason: format!(
                "{asked:?} GEMMs are not faster than the {base:?} baseline ({speedup:.2}x of its {baseline_median_ms:.3} ms)"
            ),
        };
    }
}

/// Combines the evidence into a verdict: any kind that detects a mismatch decides (the kernel
/// trace first: it names what ran; then the engine's layer report; then the fingerprint);
/// otherwise `none` when some evidence exists.
pub fn assess(
    fingerprint: Option<FingerprintEvidence>,
    kernels: Option<KernelEvidence>,
    layers: Option<LayerEvidence>,
) -> Mismatch {
    let from_kernels = kernels.as_ref().and_then(|k| {
        if !k.above.is_empty() {
            Some((Direction::Higher, k.above.clone()))
        } else if !k.below.is_empty() {
            Some((Direction::Lower, k.below.clone()))
        } else {
            None
        }
    });
    let from_layers = layers.as_ref().and_then(|l| {
        let direction = l.direction()?;
        let names = match direction {
            Direction::Higher => &l.above,
            Direction::Lower => &l.below,
        };
        Some((
            direction,
            names.iter().map(|n| format!("layer {n}")).collect(),
        ))
    });
    let from_fingerprint = fingerprint.as_ref().and_then(|f| {
        f.detected.as_ref().map(|a| {
            let reading = if a.alike.is_empty() {
                format!("{} ran as {}", a.operation, a.spec)
            } else {
                format!(
                    "{} ran as {} or {} (the numbers cannot tell them apart)",
                    a.operation,
                    a.spec,
                    a.alike.join(" or ")
                )
            };
            (a.direction, vec![reading])
        })
    });
    let detections: Vec<(Direction, Vec<String>)> = [from_kernels, from_layers, from_fingerprint]
        .into_iter()
        .flatten()
        .collect();
    let missing: Vec<String> = [
        ("fingerprint", fingerprint.is_none()),
        ("kernel trace", kernels.is_none()),
        ("engine layer report", layers.is_none()),
    ]
    .iter()
    .filter(|(_, absent)| *absent)
    .map(|(kind, _)| kind.to_string())
    .collect();
    let verdict = match detections.first() {
        Some(&(direction, _)) => Verdict::Detected {
            direction,
            evidence: detections.into_iter().flat_map(|(_, e)| e).collect(),
        },
        None if missing.len() == 3 => Verdict::NoEvidence { missing },
        None => Verdict::None,
    };
    Mismatch {
        verdict,
        fingerprint,
        kernels,
        layers,
    }
}
