//! Narrow floating-point formats (FP8, FP6, FP4), encoded and decoded bit-exactly.
//!
//! One generic implementation serves every format; a format is a row of the table below. Encoding
//! rounds to nearest, ties to even, on the integer bits of the `f32` input, subnormals included.
//! What happens beyond the largest finite value is the caller's choice ([`Overflow`]).

/// How a format spends the codes at the top of its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specials {
    /// IEEE 754 style: the all-ones exponent holds infinity (mantissa 0) and NaNs (FP8 E5M2).
    Ieee,
    /// Only `S.1111.111` is NaN; no infinities, so the all-ones exponent holds finite values
    /// (FP8 E4M3 `e4m3fn`: max 448).
    NanOnly,
    /// Every code is a finite number: no NaN, no infinity (OCP MX FP6 and FP4).
    FiniteOnly,
}

/// What encoding does with a value beyond the largest finite one (after rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Clamp to the largest finite value, as quantization kernels do (`satfinite`).
    Saturate,
    /// The plain cast of PyTorch and ml_dtypes: infinity where the format has one, else NaN where
    /// it has one, else the largest finite value.
    Cast,
}

/// A sign–exponent–mantissa format of at most 8 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniFloat {
    /// Name in suites (`fp8_e4m3`).
    pub name: &'static str,
    /// Exponent bits.
    pub exp_bits: u32,
    /// Mantissa bits.
    pub man_bits: u32,
    /// Exponent bias.
    pub bias: i32,
    /// Its special values.
    pub specials: Specials,
}

/// FP8 E4M3 (`float8_e4m3fn`): max 448, NaN = S.1111.111, no infinity.
pub const FP8_E4M3: MiniFloat = MiniFloat {
    name: "fp8_e4m3",
    exp_bits: 4,
    man_bits: 3,
    bias: 7,
    specials: Specials::NanOnly,
};

/// FP8 E5M2: IEEE-style, max 57344, with infinities.
pub const FP8_E5M2: MiniFloat = MiniFloat {
    name: "fp8_e5m2",
    exp_bits: 5,
    man_bits: 2,
    bias: 15,
    specials: Specials::Ieee,
};

/// FP6 E2M3 (OCP MX): max 7.5.
pub const FP6_E2M3: MiniFloat = MiniFloat {
    name: "fp6_e2m3",
    exp_bits: 2,
    man_bits: 3,
    bias: 1,
    specials: Specials::FiniteOnly,
};

/// FP6 E3M2 (OCP MX): max 28.
pub const FP6_E3M2: MiniFloat = MiniFloat {
    name: "fp6_e3m2",
    exp_bits: 3,
    man_bits: 2,
    bias: 3,
    specials: Specials::FiniteOnly,
};

/// FP4 E2M1 (OCP MX, NVFP4): the values 0, 0.5, 1, 1.5, 2, 3, 4, 6.
pub const FP4_E2M1: MiniFloat = MiniFloat {
    name: "fp4_e2m1",
    exp_bits: 2,
    man_bits: 1,
    bias: 1,
    specials: Specials::FiniteOnly,
};

/// Every narrow float format, for tests and listings.
pub const ALL: [MiniFloat; 5] = [FP8_E4M3, FP8_E5M2, FP6_E2M3, FP6_E3M2, FP4_E2M1];

impl MiniFloat {
    /// Bits of a code (sign included).
    pub const fn bits(&self) -> u32 {
        1 + self.exp_bits + self.man_bits
    }

    const fn sign_bit(&self) -> u8 {
        1 << (self.exp_bits + self.man_bits)
    }

    /// Smallest normal exponent.
    const fn emin(&self) -> i32 {
        1 - self.bias
    }

    /// The code (without sign) of the largest finite value.
    pub const fn max_code(&self) -> u8 {
        let exp_ones = (1u8 << self.exp_bits) - 1;
        let man_ones = (1u8 << self.man_bits) - 1;
        match self.specials {
            Specials::Ieee => ((exp_ones - 1) << self.man_bits) | man_ones,
            Specials::NanOnly => (exp_ones << self.man_bits) | (man_ones - 1),
            Specials::FiniteOnly => (exp_ones << self.man_bits) | man_ones,
        }
    }

    /// The largest finite value.
    pub fn max_value(&self) -> f32 {
        self.decode(self.max_code())
    }

    /// The code a NaN input encodes to, as ml_dtypes does: the quiet NaN (top mantissa bit set)
    /// of an IEEE format, `S.1111.111` of E4M3, and in formats without NaN a zero of the opposite
    /// sign. [`round`](Self::round) keeps NaN as NaN whatever the format.
    fn nan_code(&self, sign: u8) -> u8 {
        let exp_ones = (1u8 << self.exp_bits) - 1;
        match self.specials {
            Specials::Ieee => sign | (exp_ones << self.man_bits) | (1 << (self.man_bits - 1)),
            Specials::NanOnly => sign | (self.sign_bit() - 1),
            Specials::FiniteOnly => sign ^ self.sign_bit(),
        }
    }

    /// The value of `code` (its low [`bits`](Self::bits) bits).
    pub fn decode(&self, code: u8) -> f32 {
        let m = self.man_bits;
        let magnitude = code & (self.sign_bit() - 1);
        let exp = i32::from(magnitude >> m);
        let man = i32::from(magnitude & ((1 << m) - 1));
        let exp_ones = (1 << self.exp_bits) - 1;
        let special = match self.specials {
            Specials::Ieee if exp == exp_ones => {
                Some(if man == 0 { f32::INFINITY } else { f32::NAN })
            }
            Specials::NanOnly if magnitude == self.sign_bit() - 1 => Some(f32::NAN),
            _ => None,
        };
        let value = special.unwrap_or_else(|| {
            // Subnormals: man × 2^(emin − m); normals: (2^m + man) × 2^(exp − bias − m).
            let (significand, scale) = if exp == 0 {
                (man, self.emin() - m as i32)
            } else {
                ((1 << m) + man, exp - self.bias - m as i32)
            };
            significand as f32 * 2f32.powi(scale)
        });
        if code & self.sign_bit() != 0 {
            -value
        } else {
            value
        }
    }

    /// The code of `x` rounded to nearest, ties to even; beyond the range as `overflow` says.
    /// Matches ml_dtypes' casts bit for bit (`tests/format_vectors.rs`).
    pub fn encode(&self, x: f32, overflow: Overflow) -> u8 {
        let bits = x.to_bits();
        let sign = if bits >> 31 != 0 { self.sign_bit() } else { 0 };
        let abs = bits & 0x7fff_ffff;
        if abs > 0x7f80_0000 {
            return self.nan_code(sign);
        }
        if abs == 0x7f80_0000 {
            return self.overflow_code(sign, overflow);
        }
        // x = significand × 2^(exp − 23), with the implicit bit for normal f32 inputs.
        let f32_exp = (abs >> 23) as i32;
        let (significand, exp) = if f32_exp == 0 {
            (abs, -126)
        } else {
            ((abs & 0x7f_ffff) | 1 << 23, f32_exp - 127)
        };
        // Count units of the target's spacing at this exponent (2^(max(exp, emin) − m)).
        let m = self.man_bits as i32;
        let target_exp = exp.max(self.emin());
        let shift = (23 - m + target_exp - exp) as u32;
        let units = shift_round_even(significand, shift);
        // Subnormals are `units` (< 2^m, or exactly 2^m when rounding reaches the smallest normal);
        // normals add the exponent above emin. A carry into the next binade falls out naturally.
        let magnitude = (((target_exp - self.emin()) as u32) << m) + units;
        if magnitude > u32::from(self.max_code()) {
            return self.overflow_code(sign, overflow);
        }
        sign | magnitude as u8
    }

    fn overflow_code(&self, sign: u8, overflow: Overflow) -> u8 {
        match (overflow, self.specials) {
            (Overflow::Cast, Specials::Ieee) => sign | (self.max_code() + 1),
            (Overflow::Cast, Specials::NanOnly) => sign | (self.sign_bit() - 1),
            _ => sign | self.max_code(),
        }
    }

    /// `x` rounded to this format and back to `f32`. NaN stays NaN even in formats without NaN: a
    /// harness that turned NaN into zero would hide the failures it exists to find.
    pub fn round(&self, x: f32, overflow: Overflow) -> f32 {
        if x.is_nan() {
            return x;
        }
        self.decode(self.encode(x, overflow))
    }
}

/// `value / 2^shift` rounded to nearest, ties to even.
fn shift_round_even(value: u32, shift: u32) -> u32 {
    if shift == 0 {
        return value;
    }
    if shift > 32 {
        // value < 2^24, so the quotient is below 2^-8: rounds to 0.
        return 0;
    }
    let value = u64::from(value);
    let quotient = value >> shift;
    let remainder = value & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    let up = remainder > half || (remainder == half && quotient & 1 == 1);
    (quotient + u64::from(up)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_specs() {
        assert_eq!(FP8_E4M3.max_value(), 448.0);
        assert_eq!(FP8_E5M2.max_value(), 57344.0);
        assert_eq!(FP6_E2M3.max_value(), 7.5);
        assert_eq!(FP6_E3M2.max_value(), 28.0);
        assert_eq!(FP4_E2M1.max_value(), 6.0);
        // Smallest subnormals: 2^-9, 2^-16, 2^-3, 2^-4, 2^-1.
        let smallest: Vec<f32> = ALL.iter().map(|f| f.decode(1)).collect();
        assert_eq!(
            smallest,
            [2f32.powi(-9), 2f32.powi(-16), 0.125, 0.0625, 0.5]
        );
    }

    #[test]
    fn fp4_holds_the_eight_ocp_values() {
        let values: Vec<f32> = (0..8).map(|c| FP4_E2M1.decode(c)).collect();
        assert_eq!(values, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(FP4_E2M1.decode(0b1111), -6.0);
    }

    #[test]
    fn ties_go_to_even_codes() {
        // 1.0625 lies halfway between 1 (code 0x38, even) and 1.125 (0x39).
        assert_eq!(FP8_E4M3.encode(1.0625, Overflow::Cast), 0x38);
        // 1.1875 lies halfway between 1.125 (0x39) and 1.25 (0x3a, even).
        assert_eq!(FP8_E4M3.encode(1.1875, Overflow::Cast), 0x3a);
        // FP4: 2.5 between 2 (even) and 3; 5 between 4 (even) and 6.
        assert_eq!(FP4_E2M1.round(2.5, Overflow::Cast), 2.0);
        assert_eq!(FP4_E2M1.round(5.0, Overflow::Cast), 4.0);
        // Half the smallest subnormal rounds to zero (even), a bit more rounds up.
        assert_eq!(FP8_E4M3.encode(2f32.powi(-10), Overflow::Cast), 0);
        assert_eq!(FP8_E4M3.encode(2f32.powi(-10) * 1.01, Overflow::Cast), 1);
    }

    #[test]
    fn overflow_policies() {
        // E4M3: 464 is the tie between 448 and the NaN slot (480): it rounds to even, 448.
        assert_eq!(FP8_E4M3.round(464.0, Overflow::Cast), 448.0);
        assert!(FP8_E4M3.round(465.0, Overflow::Cast).is_nan());
        assert_eq!(FP8_E4M3.round(1e9, Overflow::Saturate), 448.0);
        assert_eq!(FP8_E4M3.round(-1e9, Overflow::Saturate), -448.0);
        assert_eq!(FP8_E5M2.round(61440.0, Overflow::Cast), f32::INFINITY);
        assert_eq!(FP8_E5M2.round(61439.0, Overflow::Cast), 57344.0);
        assert_eq!(
            FP8_E5M2.round(f32::NEG_INFINITY, Overflow::Saturate),
            -57344.0
        );
        assert!(FP8_E4M3.round(f32::NAN, Overflow::Saturate).is_nan());
    }
}
