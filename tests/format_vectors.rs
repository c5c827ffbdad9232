//! precheck's number formats against ml_dtypes, an implementation no one here wrote.
//!
//! The vectors under `tests/vectors/` come from `scripts/gen_format_vectors.py` (its README gives
//! the layout and the ml_dtypes version): every code of every narrow format decoded, every BF16 and
//! FP16 value encoded to each, and f32 inputs at and around every rounding tie and the overflow
//! threshold. Encoding is the plain cast ([`Overflow::Cast`]), as ml_dtypes' `astype`.

use half::{bf16, f16};
use precheck::formats::minifloat::{self, MiniFloat};
use precheck::formats::scale::E8m0;
use precheck::formats::Overflow;

fn vectors(name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/vectors/{name}.bin")).unwrap()
}

/// `(short name in file names, format)`.
const FORMATS: [(&str, MiniFloat); 5] = [
    ("e4m3", minifloat::FP8_E4M3),
    ("e5m2", minifloat::FP8_E5M2),
    ("e2m3", minifloat::FP6_E2M3),
    ("e3m2", minifloat::FP6_E3M2),
    ("e2m1", minifloat::FP4_E2M1),
];

/// A 16-bit source format: its name in file names and how its bits widen to f32 (exactly).
type Source = (&'static str, fn(u16) -> f32);

const BF16: Source = ("bf16", |bits| bf16::from_bits(bits).to_f32());
const F16: Source = ("f16", |bits| f16::from_bits(bits).to_f32());

/// Equal as values, with every NaN equal to every NaN (payloads carry no meaning here).
fn same_value(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_code_decodes_as_ml_dtypes() {
    for (short, format) in FORMATS {
        let expected = vectors(&format!("decode_{short}"));
        assert_eq!(expected.len(), 4 << format.bits());
        for (code, bytes) in expected.chunks_exact(4).enumerate() {
            let want = f32::from_le_bytes(bytes.try_into().unwrap());
            let got = format.decode(code as u8);
            assert!(
                same_value(got, want),
                "{short} code {code:#04x}: {got} != {want}"
            );
        }
    }
}

#[test]
fn every_e8m0_code_decodes_as_ml_dtypes() {
    for (code, bytes) in vectors("decode_e8m0").chunks_exact(4).enumerate() {
        let want = f32::from_le_bytes(bytes.try_into().unwrap());
        assert!(
            same_value(E8m0::decode(code as u8), want),
            "e8m0 code {code}"
        );
    }
}

#[test]
fn e8m0_casts_as_ml_dtypes() {
    for (source, to_f32) in [BF16, F16] {
        let expected = vectors(&format!("encode_{source}_e8m0"));
        for bits in 0..=u16::MAX {
            let x = to_f32(bits);
            assert_eq!(
                E8m0::encode(x),
                expected[usize::from(bits)],
                "{source} {x:e}"
            );
        }
    }
    for record in vectors("encode_f32_e8m0").chunks_exact(5) {
        let x = f32::from_le_bytes(record[..4].try_into().unwrap());
        assert_eq!(E8m0::encode(x), record[4], "{x:e} ({:#010x})", x.to_bits());
    }
}

fn check_exhaustive((source, to_f32): Source) {
    for (short, format) in FORMATS {
        let expected = vectors(&format!("encode_{source}_{short}"));
        assert_eq!(expected.len(), 1 << 16);
        let wrong: Vec<String> = (0..=u16::MAX)
            .filter_map(|bits| {
                let x = to_f32(bits);
                let got = format.encode(x, Overflow::Cast);
                let want = expected[usize::from(bits)];
                (got != want).then(|| format!("{x:e} ({bits:#06x}): {got:#04x} != {want:#04x}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{source} -> {short}: {} wrong, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
}

#[test]
fn every_bf16_value_encodes_as_ml_dtypes() {
    check_exhaustive(BF16);
}

#[test]
fn every_fp16_value_encodes_as_ml_dtypes() {
    check_exhaustive(F16);
}

#[test]
fn ties_overflow_and_random_f32_encode_as_ml_dtypes() {
    for (short, format) in FORMATS {
        let records = vectors(&format!("encode_f32_{short}"));
        assert!(records.len() > 10_000);
        for record in records.chunks_exact(5) {
            let x = f32::from_le_bytes(record[..4].try_into().unwrap());
            let got = format.encode(x, Overflow::Cast);
            assert_eq!(got, record[4], "{short}: {x:e} ({:#010x})", x.to_bits());
        }
    }
}

/// BF16 and FP16 rounding (the `half` crate) against ml_dtypes and NumPy, ties included.
#[test]
fn bf16_and_fp16_rounding_match_ml_dtypes() {
    type Encode = fn(f32) -> u16;
    let cases: [(&str, Encode); 2] = [
        ("bf16", |x| bf16::from_f32(x).to_bits()),
        ("f16", |x| f16::from_f32(x).to_bits()),
    ];
    for (short, encode) in cases {
        let records = vectors(&format!("encode_f32_{short}"));
        assert!(records.len() > 10_000);
        for record in records.chunks_exact(6) {
            let x = f32::from_le_bytes(record[..4].try_into().unwrap());
            let want = u16::from_le_bytes(record[4..].try_into().unwrap());
            if x.is_nan() {
                // NaN payloads differ between implementations and carry no meaning: NaN must
                // stay NaN, which `half` guarantees; the code itself is not compared.
                continue;
            }
            assert_eq!(encode(x), want, "{short}: {x:e} ({:#010x})", x.to_bits());
        }
    }
}
