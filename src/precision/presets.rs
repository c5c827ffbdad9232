//! The named precisions a suite can list, as data: each row is a policy.

use super::{MatmulPolicy, Policy};
use crate::formats::Format;
use crate::quant::QuantSpec;

/// `(name, default format, weights, activations, what it models)`. Matmul outputs and every
/// other tensor are stored in the default format.
const PRESETS: &[(&str, Format, &str, &str, &str)] = &[
    (
        "fp32",
        Format::Fp32,
        "fp32",
        "fp32",
        "FP32 everywhere (SIMT FP32 GEMM)",
    ),
    (
        "tf32",
        Format::Fp32,
        "tf32",
        "tf32",
        "FP32 tensors, TF32 matmul inputs",
    ),
    (
        "bf16",
        Format::Bf16,
        "bf16",
        "bf16",
        "BF16 everywhere, FP32 accumulation",
    ),
    (
        "fp16",
        Format::Fp16,
        "fp16",
        "fp16",
        "FP16 everywhere, FP32 accumulation",
    ),
    (
        "fp8_e4m3",
        Format::Bf16,
        "fp8_e4m3/per_tensor",
        "fp8_e4m3/per_tensor",
        "FP8 E4M3 GEMMs, current per-tensor scaling, BF16 output (torch._scaled_mm)",
    ),
    (
        "fp8_e4m3_delayed",
        Format::Bf16,
        "fp8_e4m3/per_tensor",
        "fp8_e4m3/delayed",
        "FP8 E4M3 GEMMs, activations with delayed scaling (Transformer Engine)",
    ),
    (
        "fp8_e5m2",
        Format::Bf16,
        "fp8_e5m2/per_tensor",
        "fp8_e5m2/per_tensor",
        "FP8 E5M2 GEMMs, current per-tensor scaling",
    ),
    (
        "int8",
        Format::Bf16,
        "int8/per_channel",
        "int8/per_token",
        "INT8 W8A8, per-channel weights, per-token activations, int32 accumulation",
    ),
    (
        "int4_w",
        Format::Bf16,
        "int4/group128",
        "bf16",
        "INT4 weight-only, groups of 128 (W4A16)",
    ),
    (
        "nf4_w",
        Format::Bf16,
        "nf4/group64",
        "bf16",
        "NF4 weight-only, groups of 64 (QLoRA)",
    ),
    (
        "mxfp8",
        Format::Bf16,
        "fp8_e4m3/mx",
        "fp8_e4m3/mx",
        "MXFP8: E4M3, blocks of 32, E8M0 scales",
    ),
    (
        "mxfp6",
        Format::Bf16,
        "fp6_e2m3/mx",
        "fp6_e2m3/mx",
        "MXFP6: E2M3, blocks of 32, E8M0 scales",
    ),
    (
        "mxfp4",
        Format::Bf16,
        "fp4_e2m1/mx",
        "fp4_e2m1/mx",
        "MXFP4: E2M1, blocks of 32, E8M0 scales",
    ),
    (
        "nvfp4",
        Format::Bf16,
        "fp4_e2m1/nvfp4",
        "fp4_e2m1/nvfp4",
        "NVFP4: E2M1, blocks of 16, E4M3 scales, FP32 tensor scale",
    ),
];

/// The names of every preset, in listing order.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|row| row.0).collect()
}

/// What a reference of a model run by an engine is: its weights held in `format` (the suite's
/// reference precision), everything computed and stored in FP32. precheck's own blocks have an
/// exact reference instead; a user's ONNX model is rewritten into this policy for its engine.
pub fn reference(format: Format) -> Policy {
    let mut policy = preset("fp32").expect("fp32 is a preset");
    policy.name = "reference".to_owned();
    policy.about = format!("weights in {format}, FP32 computation");
    policy.matmul.weights = QuantSpec::cast(format);
    policy
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<Policy> {
    let &(name, default, weights, activations, about) = PRESETS.iter().find(|row| row.0 == name)?;
    let spec = |text: &str| QuantSpec::try_from(text.to_owned()).expect("presets are valid");
    Some(Policy {
        name: name.to_owned(),
        about: about.to_owned(),
        default,
        activation: default,
        softmax: default,
        norm: default,
        output: default,
        planted_fault: None,
        matmul: MatmulPolicy {
            weights: spec(weights),
            activations: spec(activations),
            output: default,
        },
    })
}

/// A short description of every preset, for `precheck list --presets` and the README.
pub fn describe() -> Vec<(&'static str, &'static str)> {
    PRESETS.iter().map(|row| (row.0, row.4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_resolves() {
        for name in names() {
            let policy = preset(name).unwrap();
            assert_eq!(policy.name, name);
        }
        assert!(preset("fp9").is_none());
    }
}
