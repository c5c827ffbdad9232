//! Accuracy of an output against the reference, accumulated in f64.

use serde::{Deserialize, Serialize};

/// How far an output is from the reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Accuracy {
    /// Cosine similarity `⟨y, r⟩ / (‖y‖ ‖r‖)`; NaN when the output holds NaN or infinity.
    #[serde(with = "crate::nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub cos: f64,
    /// Largest `|y − r|`.
    #[serde(with = "crate::nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub max_abs_err: f64,
    /// Mean `|y − r|`.
    #[serde(with = "crate::nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub mean_abs_err: f64,
    /// `‖y − r‖ / ‖r‖`.
    #[serde(with = "crate::nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub rel_l2: f64,
    /// Output values that are NaN or infinite.
    pub nonfinite: usize,
}

/// Why two tensors cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// The output and the reference differ in length.
    #[error("output has {output} values but the reference has {reference}")]
    LengthMismatch {
        /// Values in the output.
        output: usize,
        /// Values in the reference.
        reference: usize,
    },
    /// A tensor is all zeros: its direction, hence the cosine, is undefined.
    #[error("the {0} is all zeros: cosine similarity is undefined")]
    ZeroNorm(&'static str),
}

/// Compares `output` with `reference` (f64, or f32 such as a CPU emulation's: read as f64 without
/// a copy of the whole tensor).
///
/// A non-finite output value makes `cos` (and the error norms) NaN, so that no gate can pass it.
/// An all-zero output or reference is an error, not a cosine of 0, 1 or NaN by accident.
pub fn compare<R: Copy + Into<f64>>(
    output: &[f32],
    reference: &[R],
) -> Result<Accuracy, MetricError> {
    if output.len() != reference.len() {
        return Err(MetricError::LengthMismatch {
            output: output.len(),
            reference: reference.len(),
        });
    }
    let (mut dot, mut out_sq, mut ref_sq, mut diff_sq, mut abs_sum, mut abs_max) =
        (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut nonfinite = 0;
    for (&y, &r) in output.iter().zip(reference) {
        let (y, r) = (f64::from(y), r.into());
        if !y.is_finite() {
            nonfinite += 1;
        }
        let d = (y - r).abs();
        dot += y * r;
        out_sq += y * y;
        ref_sq += r * r;
        diff_sq += d * d;
        abs_sum += d;
        // `max` would drop NaN; an explicit comparison keeps it.
        if d > abs_max || d.is_nan() {
            abs_max = d;
        }
    }
    if ref_sq == 0.0 {
        return Err(MetricError::ZeroNorm("reference"));
    }
    if out_sq == 0.0 {
        return Err(MetricError::ZeroNorm("output"));
    }
    let cos = if nonfinite > 0 {
        f64::NAN
    } else {
        dot / (out_sq.sqrt() * ref_sq.sqrt())
    };
    Ok(Accuracy {
        cos,
        max_abs_err: abs_max,
        mean_abs_err: abs_sum / output.len() as f64,
        rel_l2: (diff_sq / ref_sq).sqrt(),
        nonfinite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_vectors() {
        let a = compare(&[1.0, -2.0, 3.0], &[1.0, -2.0, 3.0]).unwrap();
        assert_eq!(a.cos, 1.0);
        assert_eq!(a.max_abs_err, 0.0);
        assert_eq!(a.rel_l2, 0.0);
    }

    #[test]
    fn hand_computed_case() {
        // y = (1, 0), r = (1, 1): cos = 1/sqrt 2; errors (0, 1); rel L2 = 1/sqrt 2.
        let a = compare(&[1.0, 0.0], &[1.0, 1.0]).unwrap();
        assert!((a.cos - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        assert_eq!(a.max_abs_err, 1.0);
        assert_eq!(a.mean_abs_err, 0.5);
        assert!((a.rel_l2 - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        // Opposite directions.
        assert!((compare(&[-2.0, -2.0], &[1.0, 1.0]).unwrap().cos + 1.0).abs() < 1e-15);
    }

    #[test]
    fn zero_vectors_are_errors() {
        assert_eq!(
            compare(&[0.0, 0.0], &[1.0, 2.0]),
            Err(MetricError::ZeroNorm("output"))
        );
        assert_eq!(
            compare(&[1.0, 0.0], &[0.0, 0.0]),
            Err(MetricError::ZeroNorm("reference"))
        );
    }

    #[test]
    fn nan_and_infinity_make_cos_nan() {
        let nan = compare(&[1.0, f32::NAN], &[1.0, 1.0]).unwrap();
        assert!(nan.cos.is_nan() && nan.max_abs_err.is_nan());
        assert_eq!(nan.nonfinite, 1);
        let inf = compare(&[f32::INFINITY, 1.0], &[1.0, 1.0]).unwrap();
        assert!(inf.cos.is_nan());
        assert_eq!(inf.nonfinite, 1);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert!(matches!(
            compare(&[1.0], &[1.0, 2.0]),
            Err(MetricError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn nan_survives_a_json_round_trip() {
        let a = compare(&[1.0, f32::NAN], &[1.0, 1.0]).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"cos\":null"), "{json}");
        let back: Accuracy = serde_json::from_str(&json).unwrap();
        assert!(back.cos.is_nan());
    }
}
