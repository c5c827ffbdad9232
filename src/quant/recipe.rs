//! Scaling recipes: how a tensor is mapped onto a format's range, and how suites spell them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::formats::Format;

/// How the amax history of delayed scaling becomes the amax a scale is computed from, as in
/// Transformer Engine's `DelayedScaling(amax_compute_algo=...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmaxAlgorithm {
    /// The largest amax of the history.
    Max,
    /// The amax of the latest step.
    MostRecent,
}

/// How a tensor is scaled before it is rounded to its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Recipe {
    /// No scale: the values are rounded to the format as they are (FP32, TF32, BF16, FP16).
    Cast,
    /// One scale, `amax / format max`, from the tensor itself (current, just-in-time scaling).
    PerTensor,
    /// One scale per output feature (a weight's rows).
    PerChannel,
    /// One scale per token (an activation's rows).
    PerToken,
    /// OCP MX: blocks of 32 along the reduction dimension share an E8M0 (power of two) scale.
    Mx,
    /// NVFP4: FP4 E2M1 in blocks of 16 along the reduction dimension with an E4M3 block scale,
    /// times one FP32 scale per tensor.
    Nvfp4,
    /// Groups of `size` along the reduction dimension, each scaled by its absmax (INT4, NF4).
    Group {
        /// Values per group.
        size: usize,
    },
    /// Per-tensor scaling from the amax of earlier steps (Transformer Engine's DelayedScaling):
    /// values beyond the history's range saturate.
    Delayed {
        /// Steps of amax kept.
        history: usize,
        /// How the history becomes one amax.
        algorithm: AmaxAlgorithm,
    },
}

/// OCP MX block size.
pub const MX_BLOCK: usize = 32;
/// NVFP4 block size.
pub const NVFP4_BLOCK: usize = 16;

impl Recipe {
    /// The recipe a format gets when a suite names the format alone.
    pub fn default_for(format: Format) -> Recipe {
        match format {
            Format::Fp32 | Format::Tf32 | Format::Bf16 | Format::Fp16 => Recipe::Cast,
            Format::Fp8E4m3 | Format::Fp8E5m2 | Format::Int8 => Recipe::PerTensor,
            Format::Fp6E2m3 | Format::Fp6E3m2 | Format::Fp4E2m1 => Recipe::Mx,
            Format::Int4 => Recipe::Group { size: 128 },
            Format::Nf4 => Recipe::Group { size: 64 },
        }
    }

    /// Parses a recipe as written after `/` in a suite.
    fn parse(text: &str) -> Result<Recipe, String> {
        let simple = match text {
            "cast" => Some(Recipe::Cast),
            "per_tensor" | "current" => Some(Recipe::PerTensor),
            "per_channel" => Some(Recipe::PerChannel),
            "per_token" => Some(Recipe::PerToken),
            "mx" => Some(Recipe::Mx),
            "nvfp4" => Some(Recipe::Nvfp4),
            // Static calibration (TensorRT's Q/DQ) is delayed scaling at the call measured: the
            // scale of the largest amax over the calibration inputs.
            "delayed" | "static" => Some(Recipe::Delayed {
                history: 16,
                algorithm: AmaxAlgorithm::Max,
            }),
            _ => None,
        };
        if let Some(recipe) = simple {
            return Ok(recipe);
        }
        if let Some(size) = text.strip_prefix("group") {
            return match size.parse::<usize>() {
                Ok(size) if size > 0 => Ok(Recipe::Group { size }),
                _ => Err(format!("`{text}`: expected a group size, as in `group64`")),
            };
        }
        if let Some(history) = text.strip_prefix("static:") {
            return match history.parse::<usize>() {
                Ok(history) if history > 0 => Ok(Recipe::Delayed {
                    history,
                    algorithm: AmaxAlgorithm::Max,
                }),
                _ => Err(format!(
                    "`{text}`: expected `static:N`, N calibration inputs"
                )),
            };
        }
        if let Some(rest) = text.strip_prefix("delayed:") {
            let (history, algorithm) = rest.split_once(':').unwrap_or((rest, "max"));
            let history = history.parse::<usize>().ok().filter(|h| *h > 0);
            let algorithm = match algorithm {
                "max" => Some(AmaxAlgorithm::Max),
                "most_recent" => Some(AmaxAlgorithm::MostRecent),
                _ => None,
            };
            return match (history, algorithm) {
                (Some(history), Some(algorithm)) => Ok(Recipe::Delayed { history, algorithm }),
                _ => Err(format!(
                    "`{text}`: expected `delayed:HISTORY` or `delayed:HISTORY:max|most_recent`"
                )),
            };
        }
        let names = [
            "cast",
            "per_tensor",
            "per_channel",
            "per_token",
            "mx",
            "nvfp4",
            "delayed",
            "static",
        ];
        let hint = crate::hints::nearest(text, names)
            .map(|s| format!(", did you mean `{s}`?"))
            .unwrap_or_default();
        Err(format!(
            "unknown recipe `{text}`{hint} (expected one of `cast`, `per_tensor`, `per_channel`, \
             `per_token`, `mx`, `nvfp4`, `groupN`, `delayed`, `delayed:HISTORY[:max|most_recent]`, \
             `static[:N]`)"
        ))
    }

    /// Whether `format` can be scaled this way; `Err` says why not.
    fn check(self, format: Format) -> Result<(), String> {
        let ok = match self {
            Recipe::Cast => format.is_carrier(),
            Recipe::PerTensor | Recipe::PerChannel | Recipe::PerToken | Recipe::Delayed { .. } => {
                !format.is_carrier() && format != Format::Nf4
            }
            Recipe::Mx => format.minifloat().is_some(),
            Recipe::Nvfp4 => format == Format::Fp4E2m1,
            Recipe::Group { .. } => matches!(format, Format::Int4 | Format::Nf4 | Format::Int8),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("`{format}` cannot be scaled with `{self}`"))
        }
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipe::Cast => f.write_str("cast"),
            Recipe::PerTensor => f.write_str("per_tensor"),
            Recipe::PerChannel => f.write_str("per_channel"),
            Recipe::PerToken => f.write_str("per_token"),
            Recipe::Mx => f.write_str("mx"),
            Recipe::Nvfp4 => f.write_str("nvfp4"),
            Recipe::Group { size } => write!(f, "group{size}"),
            Recipe::Delayed { history, algorithm } => {
                let algorithm = match algorithm {
                    AmaxAlgorithm::Max => "max",
                    AmaxAlgorithm::MostRecent => "most_recent",
                };
                write!(f, "delayed:{history}:{algorithm}")
            }
        }
    }
}

/// A format and the recipe that scales tensors into it: `fp8_e4m3/per_channel` in suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct QuantSpec {
    /// The element format.
    pub format: Format,
    /// The scaling recipe.
    pub recipe: Recipe,
}

impl QuantSpec {
    /// A plain cast to a carrier format.
    pub fn cast(format: Format) -> QuantSpec {
        QuantSpec {
            format,
            recipe: Recipe::Cast,
        }
    }
}

impl TryFrom<String> for QuantSpec {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let (format_name, recipe) = match text.split_once('/') {
            Some((format, recipe)) => (format, Some(recipe)),
            None => (text.as_str(), None),
        };
        let format = Format::from_name(format_name).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown format `{format_name}` (expected one of {})",
                names.join(", ")
            )
        })?;
        let recipe = match recipe {
            Some(recipe) => Recipe::parse(recipe)?,
            None => Recipe::default_for(format),
        };
        recipe.check(format)?;
        Ok(QuantSpec { format, recipe })
    }
}

impl From<QuantSpec> for String {
    fn from(spec: QuantSpec) -> String {
        spec.to_string()
    }
}

impl fmt::Display for QuantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.recipe {
            Recipe::Cast => write!(f, "{}", self.format),
            recipe => write!(f, "{}/{recipe}", self.format),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<QuantSpec, String> {
        QuantSpec::try_from(text.to_owned())
    }

    #[test]
    fn formats_alone_get_their_default_recipe() {
        assert_eq!(parse("bf16").unwrap().recipe, Recipe::Cast);
        assert_eq!(parse("fp8_e4m3").unwrap().recipe, Recipe::PerTensor);
        assert_eq!(parse("fp4_e2m1").unwrap().recipe, Recipe::Mx);
        assert_eq!(parse("nf4").unwrap().recipe, Recipe::Group { size: 64 });
    }

    #[test]
    fn recipes_parse_and_print_back() {
        for text in [
            "fp8_e4m3/per_channel",
            "int8/per_token",
            "fp4_e2m1/nvfp4",
            "int4/group64",
            "fp8_e4m3/delayed:1024:most_recent",
            "fp6_e3m2/mx",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            parse("fp8_e5m2/delayed").unwrap().to_string(),
            "fp8_e5m2/delayed:16:max"
        );
        assert_eq!(
            parse("int8/static:8").unwrap().to_string(),
            "int8/delayed:8:max"
        );
    }

    #[test]
    fn mismatches_are_explained() {
        assert_eq!(
            parse("bf16/per_tensor").unwrap_err(),
            "`bf16` cannot be scaled with `per_tensor`"
        );
        assert_eq!(
            parse("fp8_e4m3/nvfp4").unwrap_err(),
            "`fp8_e4m3` cannot be scaled with `nvfp4`"
        );
        assert!(parse("fp9/mx")
            .unwrap_err()
            .starts_with("unknown format `fp9`"));
        assert!(parse("int4/group").unwrap_err().contains("group size"));
    }
}
