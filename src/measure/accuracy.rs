//! Accuracy of an output against the reference, accumulated in f64.

use rayon::prelude::*;
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

/// Values per partial sum of [`compare`]: chunks are summed in parallel and their sums added in
/// order, so that a comparison gives the same bits on any number of threads (an MLP's output is
/// 2 M values, and a variant compares it several times).
const CHUNK: usize = 1 << 14;

/// The running sums of a comparison.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    dot: f64,
    out_sq: f64,
    ref_sq: f64,
    diff_sq: f64,
    abs_sum: f64,
    abs_max: f64,
    nonfinite: usize,
}

impl Sums {
    fn of<R: Copy + Into<f64>>(output: &[f32], reference: &[R]) -> Sums {
        let mut sums = Sums::default();
        for (&y, &r) in output.iter().zip(reference) {
            let (y, r) = (f64::from(y), r.into());
            if !y.is_finite() {
                sums.nonfinite += 1;
            }
            let d = (y - r).abs();
            sums.dot += y * r;
            sums.out_sq += y * y;
            sums.ref_sq += r * r;
            sums.diff_sq += d * d;
            sums.abs_sum += d;
            sums.abs_max = max_keeping_nan(sums.abs_max, d);
        }
        sums
    }

    /// These sums followed by `next`'s.
    fn then(self, next: Sums) -> Sums {
        Sums {
            dot: self.dot + next.dot,
            out_sq: self.out_sq + next.out_sq,
            ref_sq: self.ref_sq + next.ref_sq,
            diff_sq: self.diff_sq + next.diff_sq,
            abs_sum: self.abs_sum + next.abs_sum,
            abs_max: max_keeping_nan(self.abs_max, next.abs_max),
            nonfinite: self.nonfinite + next.nonfinite,
        }
    }
}

/// The larger of `max` and `d`, or NaN once either is: `f64::max` would drop a NaN.
fn max_keeping_nan(max: f64, d: f64) -> f64 {
    if d > max || d.is_nan() {
        d
    } else {
        max
    }
}

/// Compares `output` with `reference` (f64, or f32 such as a CPU emulation's: read as f64 without
/// a copy of the whole tensor).
///
/// A non-finite output value makes `cos` (and the error norms) NaN, so that no gate can pass it.
/// An all-zero output or reference is an error, not a cosine of 0, 1 or NaN by accident.
pub fn compare<R: Copy + Into<f64> + Sync>(
    output: &[f32],
    reference: &[R],
) -> Result<Accuracy, MetricError> {
    if output.len() != reference.len() {
        return Err(MetricError::LengthMismatch {
            output: output.len(),
            reference: reference.len(),
        });
    }
    let chunks: Vec<Sums> = output
        .par_chunks(CHUNK)
        .zip(reference.par_chunks(CHUNK))
        .map(|(output, reference)| Sums::of(output, reference))
        .collect();
    let Sums {
        dot,
        out_sq,
        ref_sq,
        diff_sq,
        abs_sum,
        abs_max,
        nonfinite,
    } = chunks.into_iter().reduce(Sums::then).unwrap_or_default();
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

    /// Chunks are summed in parallel and added in order: the same bits on one thread or many,
    /// and a NaN or the largest error anywhere is kept.
    #[test]
    fn a_long_comparison_gives_the_same_bits_on_any_number_of_threads() {
        let n = 5 * CHUNK + 123;
        let output: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 997.0).collect();
        let reference: Vec<f64> = (0..n)
            .map(|i| f64::from(output[i]) + 1e-3 * (i % 13) as f64)
            .collect();
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| compare(&output, &reference).unwrap())
        };
        let one = on(1);
        assert_eq!(one, on(4));
        assert!(
            (one.max_abs_err - 0.012).abs() < 1e-12,
            "{}",
            one.max_abs_err
        );
        let mut with_nan = output.clone();
        with_nan[n - 1] = f32::NAN;
        let found = compare(&with_nan, &reference).unwrap();
        assert!(found.cos.is_nan() && found.max_abs_err.is_nan());
        assert_eq!(found.nonfinite, 1);
    }

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
