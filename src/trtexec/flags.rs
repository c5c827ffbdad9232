//! The `trtexec` build flags for a precision policy.
//!
//! TensorRT picks each layer's precision among those the builder allows, so a weakly typed build
//! enables every type the policy uses (`--fp16`, `--bf16`, `--int8`, `--fp8`, `--int4`; FP32 is
//! always allowed, TF32 unless `--noTF32`) and pins the operation classes the policy holds at
//! another format than its default with `--precisionConstraints=obey --layerPrecisions=...`. A
//! strongly typed build (`--stronglyTyped`) takes every type from the network instead: trtexec
//! refuses the type flags and precision constraints there, so the ONNX model must carry the
//! policy's casts and Q/DQ nodes itself. Either way the flags only allow: an FP8 or INT8 GEMM also
//! needs Q/DQ nodes in the model (without them `--int8` calibrates with random scales, which is
//! only good for timing).
//!
//! The flags and their spelling are `trtexec --help`'s (`samples/common/sampleOptions.cpp`,
//! TensorRT 10.16): `--layerPrecisions` takes comma-separated `layerName:precision` pairs, splits
//! each at its last `:`, allows one `*` wildcard per name, and quotes with `'`; when both `--fp8`
//! and `--int8` are given, trtexec silently drops the precision constraints.

use serde::{Deserialize, Serialize};

use crate::formats::Format;
use crate::precision::kernels::{expected_gemm_precision, MathPrecision};
use crate::precision::Policy;

/// How the network's types are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Typing {
    /// TensorRT chooses among the enabled types, held by precision constraints.
    Weak,
    /// The network's tensors carry their types (`--stronglyTyped`).
    Strong,
}

/// How a build enables a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enable {
    /// Always allowed (FP32).
    Always,
    /// Allowed unless `--noTF32` (TF32 matmul inputs).
    Tf32,
    /// This builder flag in a weakly typed build; nothing in a strongly typed one.
    Flag(&'static str),
    /// Only in a strongly typed build (the type exists, no builder flag allows it): why.
    StronglyTypedOnly(&'static str),
    /// TensorRT cannot run it: why.
    Unsupported(&'static str),
}

/// Every format a policy can name, and how a build enables it (`trtexec --help`, TensorRT 10.16).
pub const FORMATS: &[(Format, Enable)] = &[
    (Format::Fp32, Enable::Always),
    (Format::Tf32, Enable::Tf32),
    (Format::Bf16, Enable::Flag("--bf16")),
    (Format::Fp16, Enable::Flag("--fp16")),
    (Format::Fp8E4m3, Enable::Flag("--fp8")),
    (
        Format::Fp8E5m2,
        Enable::Unsupported("TensorRT's one FP8 type (DataType::kFP8) is E4M3"),
    ),
    (
        Format::Fp6E2m3,
        Enable::Unsupported("TensorRT has no FP6 type"),
    ),
    (
        Format::Fp6E3m2,
        Enable::Unsupported("TensorRT has no FP6 type"),
    ),
    (
        Format::Fp4E2m1,
        Enable::StronglyTypedOnly("trtexec has no --fp4 flag: FP4 needs --stronglyTyped"),
    ),
    (Format::Int8, Enable::Flag("--int8")),
    (Format::Int4, Enable::Flag("--int4")),
    (Format::Nf4, Enable::Unsupported("TensorRT has no NF4 type")),
];

/// `--layerPrecisions` names of the formats an operation class can be held in (the carriers;
/// TF32 only rounds matmul inputs, so a non-matmul layer held in TF32 computes in FP32).
pub const LAYER_PRECISIONS: &[(Format, &str)] = &[
    (Format::Fp32, "fp32"),
    (Format::Tf32, "fp32"),
    (Format::Bf16, "bf16"),
    (Format::Fp16, "fp16"),
];

/// The network's layers of each operation class a policy can hold apart from its default: their
/// names as TensorRT sees them (the ONNX node names; one `*` wildcard allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassLayers {
    /// Softmax layers.
    pub softmax: Vec<String>,
    /// Normalisation layers.
    pub norm: Vec<String>,
    /// Activation layers.
    pub activation: Vec<String>,
}

/// Why a policy has no trtexec flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    /// A format TensorRT cannot run, or only in the other typing.
    #[error("policy `{policy}` uses {format}, which trtexec cannot build here: {why}")]
    Format {
        /// The policy.
        policy: String,
        /// The format.
        format: Format,
        /// Why.
        why: &'static str,
    },
    /// A layer name `--layerPrecisions` cannot express.
    #[error("layer `{name}` cannot be named in --layerPrecisions: {why}")]
    LayerName {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// Precision constraints trtexec would silently drop.
    #[error(
        "policy `{policy}` needs precision constraints, which trtexec drops when --fp8 and --int8 \
         are both given"
    )]
    ConstraintsDropped {
        /// The policy.
        policy: String,
    },
}

/// The `trtexec` flags that build `policy` with `typing`; `layers` names the network's layers of
/// the classes the policy may hold apart from its default.
pub fn flags(
    policy: &Policy,
    typing: Typing,
    layers: &ClassLayers,
) -> Result<Vec<String>, FlagsError> {
    let used = policy.formats();
    let mut flags = Vec::new();
    if typing == Typing::Strong {
        flags.push("--stronglyTyped".to_owned());
    }
    for &(format, enable) in FORMATS {
        if !used.contains(&format) {
            continue;
        }
        let unsupported = |why| FlagsError::Format {
            policy: policy.name.clone(),
            format,
            why,
        };
        match (enable, typing) {
            (Enable::Flag(flag), Typing::Weak) => flags.push(flag.to_owned()),
            (Enable::StronglyTypedOnly(why), Typing::Weak) | (Enable::Unsupported(why), _) => {
                return Err(unsupported(why))
            }
            _ => {}
        }
    }
    // trtexec enables TF32 by default: an FP32 policy's GEMMs must turn it off.
    if expected_gemm_precision(policy, false) == MathPrecision::Fp32 {
        flags.push("--noTF32".to_owned());
    }
    if typing == Typing::Weak {
        let pinned = pinned_layers(policy, layers)?;
        if !pinned.is_empty() {
            if flags.iter().any(|f| f == "--fp8") && flags.iter().any(|f| f == "--int8") {
                return Err(FlagsError::ConstraintsDropped {
                    policy: policy.name.clone(),
                });
            }
            flags.push("--precisionConstraints=obey".to_owned());
            flags.push(format!("--layerPrecisions={}", pinned.join(",")));
        }
    }
    Ok(flags)
}

/// `name:precision` for every layer of a class held at another format than the default.
fn pinned_layers(policy: &Policy, layers: &ClassLayers) -> Result<Vec<String>, FlagsError> {
    let mut pinned = Vec::new();
    for (format, names) in [
        (policy.softmax, &layers.softmax),
        (policy.norm, &layers.norm),
        (policy.activation, &layers.activation),
    ] {
        if format == policy.default {
            continue;
        }
        let Some(&(_, precision)) = LAYER_PRECISIONS.iter().find(|(f, _)| *f == format) else {
            return Err(FlagsError::Format {
                policy: policy.name.clone(),
                format,
                why: "--layerPrecisions holds layers in fp32, bf16 or fp16 only",
            });
        };
        for name in names {
            check_layer_name(name)?;
            pinned.push(format!("{name}:{precision}"));
        }
    }
    Ok(pinned)
}

/// Characters trtexec's `--layerPrecisions` parser gives a meaning, and what it does with them.
const RESERVED: &[(char, &str)] = &[
    (',', "trtexec splits the list at commas"),
    ('\'', "trtexec reads single quotes as quoting"),
];

fn check_layer_name(name: &str) -> Result<(), FlagsError> {
    let error = |why| FlagsError::LayerName {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(error("it is empty"));
    }
    if let Some(&(_, why)) = RESERVED.iter().find(|(c, _)| name.contains(*c)) {
        return Err(error(why));
    }
    if name.matches('*').count() > 1 {
        return Err(error("trtexec allows one `*` wildcard per name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_a_row() {
        for format in Format::ALL {
            assert!(
                FORMATS.iter().any(|(f, _)| *f == format),
                "{format} has no row"
            );
        }
    }

    #[test]
    fn layer_names_trtexec_would_misread_are_refused() {
        for name in ["a,b", "it's", "*a*", ""] {
            assert!(check_layer_name(name).is_err(), "{name:?}");
        }
        for name in ["/model/layers.0/self_attn/Softmax", "*/Softmax", "a:b"] {
            assert!(check_layer_name(name).is_ok(), "{name:?}");
        }
    }
}
