//! Gates: the thresholds a variant must meet, and the verdict they give.
//!
//! Every comparison goes through [`at_least`] and [`at_most`], which are false for NaN: NaN fails.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::measure::Accuracy;
use crate::mismatch::{Mismatch, Verdict};

/// Resolved thresholds for one variant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Gates {
    /// Smallest cosine similarity to the reference that passes.
    pub cos_min: f64,
    /// Largest absolute error that passes, if gated.
    pub max_abs_err: Option<f64>,
    /// Largest relative L2 error that passes, if gated.
    pub rel_l2_max: Option<f64>,
    /// Smallest relative change of median latency that `compare` may call a regression (0.03:
    /// 3 %), and only when it is also beyond the noise of both runs.
    pub latency_min_effect: f64,
    /// What a detected precision mismatch does to the verdict.
    #[serde(default)]
    pub precision_mismatch: MismatchGate,
}

/// What a detected precision mismatch does (`gates.precision_mismatch`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MismatchGate {
    /// The variant fails (the default: a silent fallback is the failure that hurts most).
    #[default]
    Fail,
    /// Recorded and reported, not failed.
    Warn,
    /// Not evaluated against the gate (the evidence is still recorded).
    Ignore,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            cos_min: Self::DEFAULT_COS_MIN,
            max_abs_err: None,
            rel_l2_max: None,
            latency_min_effect: Self::DEFAULT_LATENCY_MIN_EFFECT,
            precision_mismatch: MismatchGate::Fail,
        }
    }
}

/// One gate a variant did not meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateFailure {
    /// The gate's name as in suites (`cos_min`, `max_abs_err`, `rel_l2_max`, `finite`).
    pub gate: String,
    /// The threshold.
    pub threshold: f64,
    /// The measured value (NaN when the output held NaN).
    #[serde(with = "crate::nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub value: f64,
}

impl std::fmt::Display for GateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.gate.as_str() {
            "finite" => write!(f, "{} non-finite output values", self.value),
            "precision_mismatch" => {
                f.write_str("precision mismatch detected (see the record's evidence)")
            }
            "cos_min" => write!(
                f,
                "cos {} < {}",
                below(self.value, self.threshold),
                self.threshold
            ),
            gate => write!(f, "{gate} {:.4e} > {:.4e}", self.value, self.threshold),
        }
    }
}

/// `value` with the fewest decimals (6 at least) that still show it below `threshold`: a cosine
/// of 0.99999993 under a gate of 0.9999999 reads `0.99999993`, not `1.000000`.
fn below(value: f64, threshold: f64) -> String {
    (6..=17)
        .map(|decimals| format!("{value:.decimals$}"))
        .find(|text| text.parse::<f64>().is_ok_and(|shown| shown < threshold))
        .unwrap_or_else(|| value.to_string())
}

impl Gates {
    /// The cosine gate unless a suite sets another: the seed projects' bar for a precision change.
    pub const DEFAULT_COS_MIN: f64 = 0.999;

    /// Latency changes below 3 % are not regressions, however significant.
    pub const DEFAULT_LATENCY_MIN_EFFECT: f64 = 0.03;

    /// These gates with the thresholds `spec` sets replacing ours.
    pub fn overridden_by(self, spec: &GateSpec) -> Gates {
        Gates {
            cos_min: spec.cos_min.unwrap_or(self.cos_min),
            max_abs_err: spec.max_abs_err.or(self.max_abs_err),
            rel_l2_max: spec.rel_l2_max.or(self.rel_l2_max),
            latency_min_effect: spec.latency_min_effect.unwrap_or(self.latency_min_effect),
            precision_mismatch: spec.precision_mismatch.unwrap_or(self.precision_mismatch),
        }
    }

    /// The gates `accuracy` fails; empty when it passes.
    pub fn evaluate(&self, accuracy: &Accuracy) -> Vec<GateFailure> {
        let mut failures = Vec::new();
        let mut fail = |gate: &str, threshold: f64, value: f64| {
            failures.push(GateFailure {
                gate: gate.to_owned(),
                threshold,
                value,
            })
        };
        if accuracy.nonfinite > 0 {
            fail("finite", 0.0, accuracy.nonfinite as f64);
        }
        if !at_least(accuracy.cos, self.cos_min) {
            fail("cos_min", self.cos_min, accuracy.cos);
        }
        if let Some(max) = self.max_abs_err {
            if !at_most(accuracy.max_abs_err, max) {
                fail("max_abs_err", max, accuracy.max_abs_err);
            }
        }
        if let Some(max) = self.rel_l2_max {
            if !at_most(accuracy.rel_l2, max) {
                fail("rel_l2_max", max, accuracy.rel_l2);
            }
        }
        failures
    }
}

impl Gates {
    /// The precision-mismatch gate: a failure when a mismatch was detected and the gate fails on
    /// it.
    pub fn evaluate_mismatch(&self, mismatch: Option<&Mismatch>) -> Option<GateFailure> {
        let detected = matches!(mismatch.map(|m| &m.verdict), Some(Verdict::Detected { .. }));
        (detected && self.precision_mismatch == MismatchGate::Fail).then(|| GateFailure {
            gate: "precision_mismatch".into(),
            threshold: 0.0,
            value: 1.0,
        })
    }
}

/// `value >= min`, false when either is NaN.
fn at_least(value: f64, min: f64) -> bool {
    matches!(
        value.partial_cmp(&min),
        Some(Ordering::Greater | Ordering::Equal)
    )
}

/// `value <= max`, false when either is NaN.
fn at_most(value: f64, max: f64) -> bool {
    matches!(
        value.partial_cmp(&max),
        Some(Ordering::Less | Ordering::Equal)
    )
}

/// Gate thresholds as written; unset ones inherit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Smallest cosine similarity to the reference that passes (default 0.999).
    pub cos_min: Option<f64>,
    /// Largest absolute error that passes.
    pub max_abs_err: Option<f64>,
    /// Largest relative L2 error `‖y − r‖ / ‖r‖` that passes.
    pub rel_l2_max: Option<f64>,
    /// Smallest relative latency change `compare` may call a regression (default 0.03).
    pub latency_min_effect: Option<f64>,
    /// `fail` (default), `warn` or `ignore` a detected precision mismatch.
    pub precision_mismatch: Option<MismatchGate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accuracy(cos: f64, max_abs_err: f64, nonfinite: usize) -> Accuracy {
        Accuracy {
            cos,
            max_abs_err,
            mean_abs_err: max_abs_err / 2.0,
            rel_l2: 1.0 - cos,
            nonfinite,
        }
    }

    #[test]
    fn passes_within_every_threshold() {
        let gates = Gates {
            max_abs_err: Some(0.1),
            rel_l2_max: Some(0.01),
            ..Gates::default()
        };
        assert!(gates.evaluate(&accuracy(0.9995, 0.05, 0)).is_empty());
    }

    #[test]
    fn names_each_failed_gate() {
        let gates = Gates {
            max_abs_err: Some(0.1),
            ..Gates::default()
        };
        let failed: Vec<String> = gates
            .evaluate(&accuracy(0.99, 0.5, 0))
            .into_iter()
            .map(|f| f.gate)
            .collect();
        assert_eq!(failed, ["cos_min", "max_abs_err"]);
    }

    #[test]
    fn nan_never_passes() {
        let gates = Gates {
            max_abs_err: Some(1e9),
            rel_l2_max: Some(1e9),
            cos_min: -1.0,
            ..Gates::default()
        };
        let failed: Vec<String> = gates
            .evaluate(&accuracy(f64::NAN, f64::NAN, 3))
            .into_iter()
            .map(|f| f.gate)
            .collect();
        assert_eq!(failed, ["finite", "cos_min", "max_abs_err", "rel_l2_max"]);
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let spec = GateSpec {
            rel_l2_max: Some(0.02),
            ..GateSpec::default()
        };
        let gates = Gates::default().overridden_by(&spec);
        assert_eq!(gates.cos_min, Gates::DEFAULT_COS_MIN);
        assert_eq!(gates.rel_l2_max, Some(0.02));
    }

    #[test]
    fn a_failed_cosine_shows_the_digits_that_put_it_below_the_gate() {
        let failure = |value, threshold| GateFailure {
            gate: "cos_min".into(),
            threshold,
            value,
        };
        assert_eq!(
            failure(0.99999993, 0.9999999).to_string(),
            "cos 0.99999993 < 0.9999999"
        );
        assert_eq!(failure(0.98, 0.999).to_string(), "cos 0.980000 < 0.999");
        assert_eq!(failure(f64::NAN, 0.999).to_string(), "cos NaN < 0.999");
    }
}
