//! Scale formats: E8M0, the power-of-two scale of OCP MX blocks.

/// E8M0 (`float8_e8m0fnu`): unsigned, exponent only, value 2^(code − 127); code 255 is NaN.
pub struct E8m0;

impl E8m0 {
    /// The NaN code.
    pub const NAN: u8 = 0xff;

    /// The value of `code`.
    pub fn decode(code: u8) -> f32 {
        if code == Self::NAN {
            return f32::NAN;
        }
        // 2^-127 is an f32 subnormal: build it from bits rather than powi.
        let exp = i32::from(code) - 127;
        if exp >= -126 {
            2f32.powi(exp)
        } else {
            f32::from_bits(1 << 22)
        }
    }

    /// The cast of `x` to E8M0, as ml_dtypes' `float8_e8m0fnu` does it: the nearest power of two
    /// in linear distance, ties upward (`1.5 → 2`); values in (0, 2^-127] give the smallest code;
    /// zero, negatives, infinities, NaN and values from `1.5 × 2^127` up give NaN.
    pub fn encode(x: f32) -> u8 {
        if x.is_nan() || x <= 0.0 || x.is_infinite() {
            return Self::NAN;
        }
        let bits = x.to_bits();
        let biased_exp = (bits >> 23) as i32;
        if biased_exp == 0 {
            // f32 subnormals: (0, 2^-127] clamps to 2^-127; above it, 2^-126 is nearer.
            return u8::from(bits > 1 << 22);
        }
        let round_up = bits & (1 << 22) != 0;
        let code = biased_exp + i32::from(round_up);
        if code > 254 {
            Self::NAN
        } else {
            code as u8
        }
    }

    /// The code of the power of two `2^exp`, `exp` clamped to the representable [-127, 127].
    pub fn from_exponent(exp: i32) -> u8 {
        (exp.clamp(-127, 127) + 127) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_powers_of_two() {
        assert_eq!(E8m0::decode(127), 1.0);
        assert_eq!(E8m0::decode(130), 8.0);
        assert_eq!(E8m0::decode(0), 2f32.powi(-127));
        assert_eq!(E8m0::decode(254), 2f32.powi(127));
        assert!(E8m0::decode(255).is_nan());
        assert_eq!(E8m0::from_exponent(-200), 0);
        assert_eq!(E8m0::decode(E8m0::from_exponent(-3)), 0.125);
    }

    #[test]
    fn casts_to_the_nearest_power_of_two_ties_up() {
        assert_eq!(E8m0::encode(1.0), 127);
        assert_eq!(E8m0::encode(1.49), 127);
        assert_eq!(E8m0::encode(1.5), 128);
        assert_eq!(E8m0::encode(3.0), 129);
        assert_eq!(E8m0::encode(0.0), E8m0::NAN);
        assert_eq!(E8m0::encode(-2.0), E8m0::NAN);
        assert_eq!(E8m0::encode(f32::MAX), E8m0::NAN);
    }
}
