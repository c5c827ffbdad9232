//! Number formats: every element format a precision policy can name, rounded bit-exactly.
//!
//! [`Format`] is the catalogue. Floating formats round to nearest, ties to even; the narrow ones
//! ([`minifloat`]) take an [`Overflow`] policy. Integer formats ([`integer`]) are symmetric grids.
//! [`scale`] holds E8M0, the power-of-two scale of MX blocks (NVFP4's E4M3 block scale is
//! [`minifloat::FP8_E4M3`]).

pub mod integer;
pub mod minifloat;
pub mod scale;

use std::fmt;

use half::{bf16, f16};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use minifloat::{MiniFloat, Overflow};

/// An element format.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// IEEE binary32.
    Fp32,
    /// TF32: FP32's range with a 10-bit mantissa (tensor-core matmul inputs).
    Tf32,
    /// bfloat16.
    Bf16,
    /// IEEE binary16.
    Fp16,
    /// FP8 E4M3 (`e4m3fn`).
    Fp8E4m3,
    /// FP8 E5M2.
    Fp8E5m2,
    /// FP6 E2M3 (OCP MX).
    Fp6E2m3,
    /// FP6 E3M2 (OCP MX).
    Fp6E3m2,
    /// FP4 E2M1.
    Fp4E2m1,
    /// Symmetric 8-bit integers, [-127, 127].
    Int8,
    /// Symmetric 4-bit integers, [-7, 7].
    Int4,
    /// The NF4 code book, values in [-1, 1].
    Nf4,
}

/// Below this many elements, rounding runs on the calling thread: spawning costs more than it saves.
const PARALLEL_MIN_LEN: usize = 1 << 16;

impl Format {
    /// Every format, in listing order.
    pub const ALL: [Format; 12] = [
        Format::Fp32,
        Format::Tf32,
        Format::Bf16,
        Format::Fp16,
        Format::Fp8E4m3,
        Format::Fp8E5m2,
        Format::Fp6E2m3,
        Format::Fp6E3m2,
        Format::Fp4E2m1,
        Format::Int8,
        Format::Int4,
        Format::Nf4,
    ];

    /// The name used in suites.
    pub fn name(self) -> &'static str {
        match self {
            Format::Fp32 => "fp32",
            Format::Tf32 => "tf32",
            Format::Bf16 => "bf16",
            Format::Fp16 => "fp16",
            Format::Fp8E4m3 => "fp8_e4m3",
            Format::Fp8E5m2 => "fp8_e5m2",
            Format::Fp6E2m3 => "fp6_e2m3",
            Format::Fp6E3m2 => "fp6_e3m2",
            Format::Fp4E2m1 => "fp4_e2m1",
            Format::Int8 => "int8",
            Format::Int4 => "int4",
            Format::Nf4 => "nf4",
        }
    }

    /// The format called `name` in suites.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The narrow float format behind this one, if it is one.
    pub fn minifloat(self) -> Option<MiniFloat> {
        match self {
            Format::Fp8E4m3 => Some(minifloat::FP8_E4M3),
            Format::Fp8E5m2 => Some(minifloat::FP8_E5M2),
            Format::Fp6E2m3 => Some(minifloat::FP6_E2M3),
            Format::Fp6E3m2 => Some(minifloat::FP6_E3M2),
            Format::Fp4E2m1 => Some(minifloat::FP4_E2M1),
            _ => None,
        }
    }

    /// Whether tensors can be stored in this format between operations without a scale: the
    /// formats frameworks compute in (FP32, TF32, BF16, FP16).
    pub fn is_carrier(self) -> bool {
        matches!(
            self,
            Format::Fp32 | Format::Tf32 | Format::Bf16 | Format::Fp16
        )
    }

    /// Whether values are integers (matmuls on them accumulate exactly, as in int32).
    pub fn is_integer(self) -> bool {
        matches!(self, Format::Int8 | Format::Int4)
    }

    /// The largest magnitude a scaled value may take: what a scale maps the tensor's amax to.
    pub fn max_value(self) -> f32 {
        match self {
            Format::Fp32 | Format::Tf32 => f32::MAX,
            Format::Bf16 => bf16::MAX.to_f32(),
            Format::Fp16 => f16::MAX.to_f32(),
            Format::Int8 => 127.0,
            Format::Int4 => 7.0,
            Format::Nf4 => 1.0,
            narrow => narrow.minifloat().expect("narrow float").max_value(),
        }
    }

    /// `x` rounded to this format (nearest, ties to even; NF4: nearest code-book value). NaN stays
    /// NaN in every format.
    pub fn round(self, x: f32, overflow: Overflow) -> f32 {
        if x.is_nan() {
            return x;
        }
        match self {
            Format::Fp32 => x,
            Format::Tf32 => round_tf32(x),
            Format::Bf16 => bf16::from_f32(x).to_f32(),
            Format::Fp16 => f16::from_f32(x).to_f32(),
            Format::Int8 | Format::Int4 => integer::round_symmetric_int(x, self.max_value()),
            Format::Nf4 => integer::NF4_VALUES[usize::from(integer::nf4_encode(x))],
            narrow => narrow.minifloat().expect("narrow float").round(x, overflow),
        }
    }

    /// Rounds every value of `values` in place (plain cast on overflow).
    pub fn round_slice(self, values: &mut [f32]) {
        if self == Format::Fp32 {
            return;
        }
        let round = |v: &mut f32| *v = self.round(*v, Overflow::Cast);
        if values.len() < PARALLEL_MIN_LEN {
            values.iter_mut().for_each(round);
        } else {
            values
                .par_chunks_mut(PARALLEL_MIN_LEN)
                .for_each(|chunk| chunk.iter_mut().for_each(round));
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `x` rounded to TF32 (10 mantissa bits), nearest, ties to even; overflow becomes infinity.
fn round_tf32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let bits = x.to_bits();
    let dropped = 13;
    let lsb = (bits >> dropped) & 1;
    let rounded = bits.wrapping_add((1 << (dropped - 1)) - 1 + lsb) & !((1 << dropped) - 1);
    f32::from_bits(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_ties_to_even() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the even neighbour is 1.
        assert_eq!(Format::Bf16.round(1.0 + 2f32.powi(-8), Overflow::Cast), 1.0);
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: the even neighbour is 1 + 2^-6.
        assert_eq!(
            Format::Bf16.round(1.0 + 3.0 * 2f32.powi(-8), Overflow::Cast),
            1.0 + 2f32.powi(-6)
        );
    }

    #[test]
    fn tf32_keeps_ten_mantissa_bits() {
        assert_eq!(round_tf32(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(round_tf32(1.0 + 3.0 * 2f32.powi(-11)), 1.0 + 2f32.powi(-9));
        assert_eq!(
            round_tf32(1.0 + 2f32.powi(-11) + 2f32.powi(-20)),
            1.0 + 2f32.powi(-10)
        );
        assert_eq!(round_tf32(f32::MAX), f32::INFINITY);
        assert!(round_tf32(f32::NAN).is_nan());
        assert_eq!(round_tf32(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn fp16_overflows_to_infinity_and_keeps_nan() {
        assert_eq!(Format::Fp16.round(65520.0, Overflow::Cast), f32::INFINITY);
        assert_eq!(Format::Fp16.round(65504.0, Overflow::Cast), 65504.0);
        assert!(Format::Fp16.round(f32::NAN, Overflow::Cast).is_nan());
    }

    #[test]
    fn names_round_trip() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
    }

    #[test]
    fn round_slice_matches_round_on_both_paths() {
        for len in [10, PARALLEL_MIN_LEN + 7] {
            let values: Vec<f32> = (0..len).map(|i| (i as f32).sin() * 1000.0).collect();
            let mut rounded = values.clone();
            Format::Fp8E4m3.round_slice(&mut rounded);
            for (r, v) in rounded.iter().zip(&values) {
                assert!(*r == Format::Fp8E4m3.round(*v, Overflow::Cast) || r.is_nan());
            }
        }
    }
}
