//! Precision policies: per operation class, the format a tensor is held in and how matmul operands
//! are quantized.
//!
//! A suite's `precisions` entry is a preset name ([`presets`]) or a mapping that starts from a
//! preset (`base`, BF16 by default) and overrides parts of it:
//!
//! ```yaml
//! - { name: fp16_fp32_softmax, base: fp16, softmax: fp32 }
//! - { name: fp8_w_a, matmul: { weights: fp8_e4m3/per_channel, activations: fp8_e4m3/per_token }, output: bf16 }
//! ```

pub mod kernels;
pub mod presets;

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::formats::Format;
use crate::ident::Ident;
use crate::quant::{QuantSpec, Recipe};

/// How the operations of a block compute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Policy {
    /// The name in variant ids.
    pub name: String,
    /// What it models, for people.
    pub about: String,
    /// The format of tensors between operations unless an operation class says otherwise.
    pub default: Format,
    /// Matmul operands and output.
    pub matmul: MatmulPolicy,
    /// Activation functions (GELU, SiLU) compute in and store this format.
    pub activation: Format,
    /// Softmax computes in and stores this format.
    pub softmax: Format,
    /// Normalisations compute in and store this format.
    pub norm: Format,
    /// The block's output is stored in this format.
    pub output: Format,
    /// For testing precheck's own detection only: a fault a backend plants on purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planted_fault: Option<PlantedFault>,
}

/// Faults a suite can plant, to prove that precision-mismatch detection catches them. Never for
/// real runs: a variant with a planted fault measures something other than its name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlantedFault {
    /// The CUDA backend runs an FP8 policy's matmuls on BF16 operands (a non-FP8 cuBLASLt path),
    /// as an engine that silently falls back would.
    Fp8GemmAsBf16,
}

/// How matmuls run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MatmulPolicy {
    /// How weights are quantized (once, when the variant is built).
    pub weights: QuantSpec,
    /// How activations are quantized (on every call).
    pub activations: QuantSpec,
    /// The format of the matmul's output.
    pub output: Format,
}

impl Policy {
    /// Every format the policy names: the default, the matmul's operands and output, and each
    /// class's.
    pub fn formats(&self) -> [Format; 8] {
        [
            self.default,
            self.matmul.weights.format,
            self.matmul.activations.format,
            self.matmul.output,
            self.activation,
            self.softmax,
            self.norm,
            self.output,
        ]
    }

    /// Whether running this policy rounds or scales anything away from FP32: what a host CPU,
    /// which computes in FP32, can only emulate.
    pub fn narrower_than_fp32(&self) -> bool {
        self.formats().iter().any(|f| *f != Format::Fp32)
            || self.matmul.weights.recipe != Recipe::Cast
            || self.matmul.activations.recipe != Recipe::Cast
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "matmul acts {} · weights {} -> {}; default {}",
            self.matmul.activations, self.matmul.weights, self.matmul.output, self.default
        )?;
        for (class, format) in [
            ("activation", self.activation),
            ("softmax", self.softmax),
            ("norm", self.norm),
            ("output", self.output),
        ] {
            if format != self.default {
                write!(f, "; {class} {format}")?;
            }
        }
        Ok(())
    }
}

/// A `precisions` entry as written: a preset name or a policy mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum PrecisionSpec {
    /// A preset, already resolved.
    Preset(Policy),
    /// A mapping, resolved by [`PolicySpec::resolve`].
    Custom(PolicySpec),
}

impl PrecisionSpec {
    /// The name the variant ids use.
    pub fn name(&self) -> &str {
        match self {
            PrecisionSpec::Preset(policy) => &policy.name,
            PrecisionSpec::Custom(spec) => spec.name.as_str(),
        }
    }
}

/// A policy mapping in a suite. Unset fields come from `base`; `default` also sets every class
/// the mapping does not name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The name in variant ids.
    pub name: Ident,
    /// The preset to start from (default `bf16`).
    pub base: Option<String>,
    /// Tensors between operations.
    pub default: Option<Format>,
    /// Matmul operands and output.
    #[serde(default)]
    pub matmul: MatmulSpec,
    /// Activation functions.
    pub activation: Option<Format>,
    /// Softmax.
    pub softmax: Option<Format>,
    /// Normalisations.
    pub norm: Option<Format>,
    /// The block's output.
    pub output: Option<Format>,
    /// Testing precheck only: a fault the backend plants (see [`PlantedFault`]).
    pub planted_fault: Option<PlantedFault>,
}

/// The `matmul` part of a policy mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatmulSpec {
    /// Weights: `FORMAT[/RECIPE]`.
    pub weights: Option<QuantSpec>,
    /// Activations: `FORMAT[/RECIPE]`.
    pub activations: Option<QuantSpec>,
    /// The matmul's output format.
    pub output: Option<Format>,
}

impl PolicySpec {
    /// The policy, or the key (relative to the entry) and why it cannot be.
    pub fn resolve(&self) -> Result<Policy, (String, String)> {
        let base_name = self.base.as_deref().unwrap_or("bf16");
        let base = presets::preset(base_name).ok_or_else(|| {
            let hint = crate::hints::nearest(base_name, presets::names())
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default();
            (
                "base".to_owned(),
                format!(
                    "unknown preset `{base_name}`{hint} (expected one of {})",
                    presets::names().join(", ")
                ),
            )
        })?;
        for (key, format) in [
            ("default", self.default),
            ("activation", self.activation),
            ("softmax", self.softmax),
            ("norm", self.norm),
            ("output", self.output),
            ("matmul.output", self.matmul.output),
        ] {
            if let Some(format) = format.filter(|f| !f.is_carrier()) {
                return Err((
                    key.to_owned(),
                    format!("`{format}` needs a scale; tensors between operations are fp32, tf32, bf16 or fp16"),
                ));
            }
        }
        let default = self.default.unwrap_or(base.default);
        let class =
            |set: Option<Format>, from_base: Format| set.or(self.default).unwrap_or(from_base);
        Ok(Policy {
            name: self.name.to_string(),
            about: format!("custom policy based on {base_name}"),
            default,
            matmul: MatmulPolicy {
                weights: self.matmul.weights.unwrap_or(base.matmul.weights),
                activations: self.matmul.activations.unwrap_or(base.matmul.activations),
                output: class(self.matmul.output, base.matmul.output),
            },
            activation: class(self.activation, base.activation),
            softmax: class(self.softmax, base.softmax),
            norm: class(self.norm, base.norm),
            output: class(self.output, base.output),
            planted_fault: self.planted_fault,
        })
    }
}

impl<'de> Deserialize<'de> for PrecisionSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;

        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = PrecisionSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a preset name or a policy mapping")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<PrecisionSpec, E> {
                presets::preset(name)
                    .map(PrecisionSpec::Preset)
                    .ok_or_else(|| {
                        // serde's wording for unknown variants, which the suite loader turns into a
                        // suggestion.
                        let names: Vec<String> =
                            presets::names().iter().map(|n| format!("`{n}`")).collect();
                        E::custom(format!(
                            "unknown variant `{name}`, expected one of {}",
                            names.join(", ")
                        ))
                    })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PrecisionSpec, A::Error> {
                PolicySpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(PrecisionSpec::Custom)
            }
        }

        deserializer.deserialize_any(SpecVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(yaml: &str) -> Result<Policy, (String, String)> {
        match serde_yaml::from_str::<PrecisionSpec>(yaml).unwrap() {
            PrecisionSpec::Custom(spec) => spec.resolve(),
            PrecisionSpec::Preset(_) => panic!("not a mapping"),
        }
    }

    #[test]
    fn a_mapping_overrides_its_base() {
        let policy = custom("{ name: p, base: fp16, softmax: fp32 }").unwrap();
        assert_eq!(
            (policy.default, policy.softmax),
            (Format::Fp16, Format::Fp32)
        );
        assert_eq!(policy.matmul.weights.format, Format::Fp16);
        let policy = custom(
            "{ name: q, matmul: { weights: fp8_e4m3/per_channel, activations: fp8_e4m3/per_token }, output: bf16 }",
        )
        .unwrap();
        assert_eq!(policy.matmul.weights.to_string(), "fp8_e4m3/per_channel");
        assert_eq!(
            (policy.default, policy.output),
            (Format::Bf16, Format::Bf16)
        );
        assert_eq!(
            policy.to_string(),
            "matmul acts fp8_e4m3/per_token · weights fp8_e4m3/per_channel -> bf16; default bf16"
        );
    }

    #[test]
    fn default_sets_the_classes_a_mapping_leaves_out() {
        let policy = custom("{ name: p, base: bf16, default: fp16, norm: fp32 }").unwrap();
        assert_eq!(policy.activation, Format::Fp16);
        assert_eq!(policy.matmul.output, Format::Fp16);
        assert_eq!(policy.norm, Format::Fp32);
    }

    #[test]
    fn tensors_between_operations_need_carrier_formats() {
        let error = custom("{ name: p, output: fp8_e4m3 }").unwrap_err();
        assert_eq!(error.0, "output");
        let error = custom("{ name: p, base: fp17 }").unwrap_err();
        assert!(error.1.contains("did you mean `fp16`?"), "{}", error.1);
    }
}
