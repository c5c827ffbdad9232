//! Number formats and the precisions a suite can ask for.
//!
//! A [`Precision`] is what a suite names (`fp16`, `bf16`, ...); a [`Format`] is the number format a
//! value is rounded to. Today every precision is one format end to end (operands, matmul outputs and
//! activations); per-operation policies grow out of this mapping.

use std::fmt;

use half::{bf16, f16};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A precision a variant runs in, as named in a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// IEEE binary32 operands, FP32 accumulation.
    Fp32,
    /// bfloat16 operands and outputs, FP32 accumulation.
    Bf16,
    /// IEEE binary16 operands and outputs, FP32 accumulation.
    Fp16,
}

impl Precision {
    /// Every precision, in the order they are listed to users.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Fp16];

    /// The name used in suites, variant ids and records.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// The format operands, matmul outputs and activations are rounded to.
    pub fn format(self) -> Format {
        match self {
            Precision::Fp32 => Format::Fp32,
            Precision::Bf16 => Format::Bf16,
            Precision::Fp16 => Format::Fp16,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A floating-point number format values are rounded to (round to nearest, ties to even).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// IEEE binary32: rounding is the identity on `f32` values.
    Fp32,
    /// bfloat16: 8 exponent bits, 7 mantissa bits.
    Bf16,
    /// IEEE binary16: 5 exponent bits, 10 mantissa bits; overflow becomes infinity.
    Fp16,
}

/// Below this many elements, rounding runs on the calling thread: spawning costs more than it saves.
const PARALLEL_MIN_LEN: usize = 1 << 16;

impl Format {
    /// Rounds one value to the nearest representable value (ties to even), returned as `f32`.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Format::Fp32 => x,
            Format::Bf16 => bf16::from_f32(x).to_f32(),
            Format::Fp16 => f16::from_f32(x).to_f32(),
        }
    }

    /// Rounds every value of `values` in place.
    pub fn round_slice(self, values: &mut [f32]) {
        if self == Format::Fp32 {
            return;
        }
        if values.len() < PARALLEL_MIN_LEN {
            values.iter_mut().for_each(|v| *v = self.round(*v));
        } else {
            values
                .par_chunks_mut(PARALLEL_MIN_LEN)
                .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = self.round(*v)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_ties_to_even() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the even neighbour is 1.
        assert_eq!(Format::Bf16.round(1.0 + 2f32.powi(-8)), 1.0);
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: the even neighbour is 1 + 2^-6.
        assert_eq!(
            Format::Bf16.round(1.0 + 3.0 * 2f32.powi(-8)),
            1.0 + 2f32.powi(-6)
        );
    }

    #[test]
    fn fp16_overflows_to_infinity_and_keeps_nan() {
        assert_eq!(Format::Fp16.round(65520.0), f32::INFINITY);
        assert_eq!(Format::Fp16.round(65504.0), 65504.0);
        assert!(Format::Fp16.round(f32::NAN).is_nan());
    }

    #[test]
    fn round_slice_matches_round_on_both_paths() {
        for len in [10, PARALLEL_MIN_LEN + 7] {
            let values: Vec<f32> = (0..len).map(|i| (i as f32).sin() * 1000.0).collect();
            let mut rounded = values.clone();
            Format::Fp16.round_slice(&mut rounded);
            for (r, v) in rounded.iter().zip(&values) {
                assert_eq!(*r, Format::Fp16.round(*v));
            }
        }
    }
}
