//! Properties every format must have, on random inputs (proptest): representable values
//! round-trip exactly, rounding is monotone, the error inside the range is at most half a unit in
//! the last place, and NaN stays NaN.

use precheck::formats::minifloat::{self, MiniFloat};
use precheck::formats::{Format, Overflow};
use proptest::prelude::*;

/// The spacing of representable values at `x` (the larger spacing at a binade boundary).
fn ulp(format: Format, x: f32) -> f64 {
    let mantissa_bits = match format {
        Format::Fp32 => 23,
        Format::Tf32 | Format::Fp16 => 10,
        Format::Bf16 => 7,
        Format::Int8 | Format::Int4 => return 1.0,
        narrow => narrow.minifloat().expect("narrow float").man_bits as i32,
    };
    let min_normal_exp = match format {
        Format::Fp16 => -14,
        Format::Fp32 | Format::Tf32 | Format::Bf16 => -126,
        narrow => {
            let spec = narrow.minifloat().expect("narrow float");
            1 - spec.bias
        }
    };
    let exp = (x.abs() as f64).log2().floor().max(min_normal_exp as f64) as i32;
    2f64.powi(exp - mantissa_bits)
}

/// Formats with a fixed grid (NF4's code book has uneven gaps and is checked on its own).
const GRID_FORMATS: [Format; 10] = [
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
];

fn format() -> impl Strategy<Value = Format> {
    prop::sample::select(GRID_FORMATS.to_vec())
}

/// A finite f32 inside `format`'s range, spread over its binades.
fn in_range(format: Format) -> impl Strategy<Value = f32> {
    let max = format.max_value().min(1e30);
    (-1.0f32..=1.0, 0.0f64..1.0).prop_map(move |(sign_and_mantissa, spread)| {
        // Log-uniform magnitudes from 2^-30 of the max up to the max.
        let magnitude = (max as f64) * 2f64.powf(-30.0 * spread);
        (sign_and_mantissa as f64 * magnitude) as f32
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rounding_error_is_at_most_half_an_ulp((format, x) in format().prop_flat_map(|f| (Just(f), in_range(f)))) {
        let rounded = format.round(x, Overflow::Saturate);
        let error = (rounded as f64 - x as f64).abs();
        prop_assert!(error <= ulp(format, x) / 2.0, "{format}: {x:e} -> {rounded:e}, error {error:e}");
    }

    #[test]
    fn rounding_is_idempotent((format, x) in format().prop_flat_map(|f| (Just(f), in_range(f)))) {
        let once = format.round(x, Overflow::Saturate);
        prop_assert_eq!(format.round(once, Overflow::Saturate).to_bits(), once.to_bits());
    }

    #[test]
    fn rounding_is_monotone(format in format(), a in -1e6f32..1e6, b in -1e6f32..1e6) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for overflow in [Overflow::Saturate, Overflow::Cast] {
            let (rlo, rhi) = (format.round(lo, overflow), format.round(hi, overflow));
            // Cast overflow of E4M3 gives NaN, outside any order: only compare numbers.
            if !rlo.is_nan() && !rhi.is_nan() {
                prop_assert!(rlo <= rhi, "{format}: {lo:e} -> {rlo:e} but {hi:e} -> {rhi:e}");
            }
        }
    }

    #[test]
    fn nan_stays_nan(format in prop::sample::select(Format::ALL.to_vec()), payload in 1u32..(1 << 22)) {
        let nan = f32::from_bits(0x7fc0_0000 | payload);
        prop_assert!(format.round(nan, Overflow::Saturate).is_nan());
        prop_assert!(format.round(-nan, Overflow::Cast).is_nan());
    }

    #[test]
    fn nf4_picks_the_nearest_code_book_value(x in -1.0f32..=1.0) {
        let rounded = Format::Nf4.round(x, Overflow::Saturate);
        let best = precheck::formats::integer::NF4_VALUES
            .iter()
            .map(|v| (v - x).abs())
            .fold(f32::INFINITY, f32::min);
        prop_assert_eq!((rounded - x).abs(), best);
    }
}

/// Every non-NaN code of every narrow format decodes to a value that encodes back to that code.
#[test]
fn every_representable_value_round_trips() {
    let formats: [MiniFloat; 5] = minifloat::ALL;
    for format in formats {
        for code in 0..(1u16 << format.bits()) {
            let code = code as u8;
            let value = format.decode(code);
            if value.is_nan() {
                continue;
            }
            assert_eq!(
                format.encode(value, Overflow::Cast),
                code,
                "{} {code:#04x}",
                format.name
            );
            if value.is_finite() {
                let saturated = format.encode(value, Overflow::Saturate);
                assert_eq!(saturated, code, "{} {code:#04x}", format.name);
            }
        }
    }
}
