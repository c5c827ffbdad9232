//! Integer and code-book formats: symmetric INT8 and INT4, and NF4.

/// The 16 values of NF4, the QLoRA code book (Dettmers et al. 2023, appendix E; bitsandbytes
/// `NF4_QUANT_TABLE`): quantiles of a standard normal, normalised to [-1, 1], with an exact zero.
// The digits as bitsandbytes publishes them; each rounds to the f32 it stores.
#[allow(clippy::excessive_precision)]
pub const NF4_VALUES: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// `x` rounded to the nearest integer (ties to even) and clamped to `[-max, max]`: symmetric
/// quantization, which leaves the most negative code unused so that the grid is sign-symmetric.
pub fn round_symmetric_int(x: f32, max: f32) -> f32 {
    if x.is_nan() {
        return f32::NAN;
    }
    x.round_ties_even().clamp(-max, max)
}

/// The NF4 code of `x` (expected in [-1, 1]; outside, the nearest end): the nearest code-book
/// value, the lower code on an exact tie.
pub fn nf4_encode(x: f32) -> u8 {
    if x.is_nan() {
        return 7;
    }
    // The code book is sorted: the code is the number of midpoints below x.
    NF4_VALUES
        .windows(2)
        .take_while(|pair| x > (pair[0] + pair[1]) / 2.0)
        .count() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_int_rounds_and_clamps() {
        assert_eq!(round_symmetric_int(2.5, 127.0), 2.0);
        assert_eq!(round_symmetric_int(3.5, 127.0), 4.0);
        assert_eq!(round_symmetric_int(-200.0, 127.0), -127.0);
        assert_eq!(round_symmetric_int(7.6, 7.0), 7.0);
    }

    #[test]
    fn nf4_finds_the_nearest_value() {
        for (code, &value) in NF4_VALUES.iter().enumerate() {
            assert_eq!(nf4_encode(value), code as u8);
        }
        assert_eq!(nf4_encode(0.03), 7);
        assert_eq!(nf4_encode(0.05), 8);
        assert_eq!(nf4_encode(-3.0), 0);
        assert_eq!(nf4_encode(2.0), 15);
    }
}
