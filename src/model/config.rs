//! A model's part of the suite file: what the suite's `models` entries say about weights, inputs
//! and activations, deserialized as written.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// An MLP activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(x)` (Llama, Gemma 2 variants).
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`: Gemma, PaliGemma, SigLIP).
    GeluTanh,
    /// GELU with erf (BERT's `gelu`, PyTorch's default).
    Gelu,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// The name used in suites.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Gelu => "gelu",
            Activation::Relu => "relu",
        }
    }
}

/// Outlier channels of an input.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierSpec {
    /// Fraction of the channels that are outliers, in (0, 1]; at least one channel.
    pub fraction: f64,
    /// Factor the outlier channels are multiplied by.
    pub scale: f64,
}

/// Where a model's weights come from: `seeded`, or a mapping naming a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsSpec {
    /// Normal, standard deviation `1/sqrt(fan_in)`, from the suite's seed (see README).
    #[default]
    Seeded,
    /// Tensors of a `.safetensors` checkpoint.
    Safetensors(CheckpointSpec),
}

/// A checkpoint the weights are read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// The `.safetensors` file, relative to the suite file (resolved when the suite loads).
    pub safetensors: PathBuf,
    /// Prepended to every parameter name (`encoder.layer.{layer}.`; a stack's layers replace
    /// `{layer}` with their index).
    #[serde(default)]
    pub prefix: String,
    /// Renames parameters whose name in the checkpoint differs: block name → checkpoint name
    /// (both after the prefix).
    #[serde(default)]
    pub map: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for WeightsSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WeightsVisitor;

        impl<'de> Visitor<'de> for WeightsVisitor {
            type Value = WeightsSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`seeded` or a mapping with `safetensors`")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<WeightsSpec, E> {
                match name {
                    "seeded" => Ok(WeightsSpec::Seeded),
                    // serde's wording, which the suite loader turns into a suggestion.
                    _ => Err(E::custom(format!(
                        "unknown variant `{name}`, expected `seeded` or a mapping with `safetensors`"
                    ))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WeightsSpec, A::Error> {
                CheckpointSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(WeightsSpec::Safetensors)
            }
        }

        deserializer.deserialize_any(WeightsVisitor)
    }
}
