//! The suite file as written: serde types that reject unknown keys.
//!
//! Checks that one value can make on its own (a name's characters, a positive dimension, a known
//! precision) happen while deserializing, so that serde_yaml reports them with their line and column.
//! Checks across values (a matrix entry naming a model) happen in [`super::validate`].

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::formats::Format;
use crate::gate::GateSpec;
use crate::ident::Ident;
use crate::measure::{AgreementMode, CacheMode};
use crate::model::onnx::{CalibrateSpec, Localize, OnnxInputSpec};
use crate::model::{Activation, OutlierSpec, WeightsSpec};
use crate::precision::PrecisionSpec;

/// A suite file, deserialized but not yet cross-checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// The suite's name: part of the default output folder.
    pub name: Ident,
    /// Free text shown in reports.
    #[serde(default)]
    pub description: String,
    /// Run settings that the command line can override.
    #[serde(default)]
    pub defaults: Defaults,
    /// What every variant is compared with.
    #[serde(default)]
    pub reference: Reference,
    /// The models (blocks) to run.
    pub models: Vec<ModelSpec>,
    /// The precision axis of the matrix: preset names or policy mappings.
    pub precisions: Vec<PrecisionSpec>,
    /// The device axis of the matrix.
    #[serde(default = "default_gpus")]
    pub gpus: Vec<DeviceSelector>,
    /// Exclusions from and additions to the full product of the axes.
    #[serde(default)]
    pub matrix: MatrixSpec,
    /// The thresholds every variant must meet.
    #[serde(default)]
    pub gates: GateSpec,
}

fn default_gpus() -> Vec<DeviceSelector> {
    vec![DeviceSelector::Cpu]
}

/// Run settings: seed, warm-up and timed iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Seed of every seeded weight and input.
    pub seed: u64,
    /// Untimed runs before timing starts.
    pub warmup: u32,
    /// Timed runs per variant.
    pub iterations: Count,
    /// How long one variant's worker may run before it is ended (`90s`, `10m`, `1h 30m`).
    pub timeout: Timeout,
    /// What the GPU's L2 cache holds when each timed iteration starts.
    pub cache: CacheMode,
    /// Which variants on a real engine are also emulated on the CPU (`every`, `sample`, `off`):
    /// a model too large to emulate on the host in reasonable time says `off` here.
    pub cpu_agreement: AgreementMode,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            seed: 0,
            warmup: 3,
            iterations: Count(NonZeroUsize::new(20).expect("20 is not zero")),
            timeout: Timeout(Duration::from_secs(600)),
            cache: CacheMode::Warm,
            cpu_agreement: AgreementMode::Sample,
        }
    }
}

/// A positive duration, written as humantime reads it: `500ms`, `90s`, `10m`, `1h 30m`; at most
/// [`Timeout::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Timeout(Duration);

impl Timeout {
    /// The longest a variant may be given: a week. Longer ones are refused where they are
    /// written, before a deadline computed from them can overflow the clock.
    pub const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match humantime::parse_duration(text) {
            Ok(duration) if duration > Timeout::MAX => Err(format!(
                "invalid duration `{text}`: longer than the most a variant may take, {}",
                humantime::format_duration(Timeout::MAX)
            )),
            Ok(duration) if !duration.is_zero() => Ok(Timeout(duration)),
            Ok(_) => Err(format!(
                "invalid duration `{text}`: expected more than zero"
            )),
            Err(e) => Err(format!(
                "invalid duration `{text}`: {e} (expected e.g. `90s`, `10m`, `1h 30m`)"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl From<Timeout> for String {
    fn from(timeout: Timeout) -> String {
        humantime::format_duration(timeout.0).to_string()
    }
}

/// What variants are compared with: the model held in `precision`, evaluated exactly, or the
/// outputs frozen in a golden file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reference {
    /// The format the model's weights and inputs are defined in (a BF16 checkpoint by default).
    /// The preset of the same name is the speed baseline.
    pub precision: ReferenceFormat,
    /// A golden file (`precheck golden`): each model's reference output as some backend computed
    /// it, frozen (relative to the suite's folder once validated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl Default for Reference {
    fn default() -> Self {
        Reference {
            precision: ReferenceFormat::Bf16,
            file: None,
        }
    }
}

/// The formats a model can be defined in: those that hold tensors without a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceFormat {
    /// FP32 weights and inputs.
    Fp32,
    /// BF16 weights and inputs.
    Bf16,
    /// FP16 weights and inputs.
    Fp16,
}

impl ReferenceFormat {
    /// The number format.
    pub fn format(self) -> Format {
        match self {
            ReferenceFormat::Fp32 => Format::Fp32,
            ReferenceFormat::Bf16 => Format::Bf16,
            ReferenceFormat::Fp16 => Format::Fp16,
        }
    }
}

/// One model of the suite: a built-in block with its dimensions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The model's name: the first part of its variant ids.
    pub name: Ident,
    /// Which built-in block, or `onnx`.
    pub block: BlockKind,
    /// The block's dimensions; which ones apply depends on the block (none for `onnx`).
    #[serde(default)]
    pub dims: Dims,
    /// `block: onnx`: the ONNX model file (relative to the suite's folder).
    #[serde(default)]
    pub onnx: Option<PathBuf>,
    /// The MLP's activation (`mlp`, `transformer_layer`, `stack`).
    #[serde(default)]
    pub activation: Option<Activation>,
    /// Whether an `mlp` is gated (default) or plain.
    #[serde(default)]
    pub gated: Option<bool>,
    /// The layout of a `transformer_layer` or `stack`'s layers.
    #[serde(default)]
    pub layer: Option<LayerKindSpec>,
    /// Whether attention is causal (default: only in decoder layers).
    #[serde(default)]
    pub causal: Option<bool>,
    /// Whether an `attention` block applies rotary embedding (default true, as Gemma and Llama).
    #[serde(default)]
    pub rotary: Option<bool>,
    /// The rotary embedding's frequency base (default 10000).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// The norms' epsilon (default 1e-6 in decoder layers, 1e-12 in encoder layers, as Gemma and BERT).
    #[serde(default)]
    pub norm_eps: Option<f64>,
    /// A built-in block's input: its rows and source.
    #[serde(default)]
    pub input: Option<InputSpec>,
    /// `block: onnx`: how each input is made, by name (shape where the model leaves it free,
    /// a distribution or a file).
    #[serde(default)]
    pub inputs: Option<BTreeMap<String, OnnxInputSpec>>,
    /// `block: onnx`: the outputs the gate applies to (default: all).
    #[serde(default)]
    pub outputs: Option<Vec<String>>,
    /// `block: onnx`: which values along the graph are compared (`matmul`, the default; `all`;
    /// `off`).
    #[serde(default)]
    pub localize: Option<Localize>,
    /// `block: onnx`: how static activation scales are calibrated (`{ percentile: 99.99 }`).
    #[serde(default)]
    pub calibrate: Option<CalibrateSpec>,
    /// Where the weights come from.
    #[serde(default)]
    pub weights: WeightsSpec,
}

/// The built-in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// `y = x Wᵀ`.
    Linear,
    /// An MLP: gated `down(act(gate(x)) * up(x))` (Gemma, Llama) or plain (BERT, SigLIP).
    Mlp,
    /// Self-attention with Q/K/V/O projections, MHA or GQA.
    Attention,
    /// One transformer layer: pre-norm decoder or post-norm encoder.
    TransformerLayer,
    /// Several transformer layers, each measured.
    Stack,
    /// An ONNX model file, run as it is by engines that take ONNX.
    Onnx,
}

impl BlockKind {
    /// The name used in suites.
    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Linear => "linear",
            BlockKind::Mlp => "mlp",
            BlockKind::Attention => "attention",
            BlockKind::TransformerLayer => "transformer_layer",
            BlockKind::Stack => "stack",
            BlockKind::Onnx => "onnx",
        }
    }
}

/// A transformer layer's layout, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKindSpec {
    /// Pre-norm decoder layer (Gemma, Llama).
    Decoder,
    /// Post-norm encoder layer (BERT).
    Encoder,
}

/// Block dimensions. Every field is optional here; [`super::validate`] checks which the block needs.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dims {
    /// Input features (the model width).
    pub hidden: Option<Count>,
    /// The MLP's inner width.
    pub intermediate: Option<Count>,
    /// Output features of a `linear` block (default: `hidden`).
    pub out_features: Option<Count>,
    /// Attention's query heads.
    pub heads: Option<Count>,
    /// Attention's key/value heads (default: `heads`; fewer for GQA).
    pub kv_heads: Option<Count>,
    /// Columns per head (default: `hidden / heads`).
    pub head_dim: Option<Count>,
    /// A stack's layers.
    pub layers: Option<Count>,
}

impl Dims {
    /// Every dimension with its name, in the order of the schema.
    pub fn named(&self) -> [(&'static str, Option<Count>); 7] {
        [
            ("hidden", self.hidden),
            ("intermediate", self.intermediate),
            ("out_features", self.out_features),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("layers", self.layers),
        ]
    }
}

/// The input: `tokens` rows of the block's input width, seeded standard normal (optionally with
/// outlier channels) or read from a file of captured activations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Rows of the input (tokens of a sequence, or batch × sequence).
    pub tokens: Count,
    /// Channels scaled up in every token, as real activations have (LLM.int8(), SmoothQuant).
    pub outliers: Option<OutlierSpec>,
    /// A `.safetensors` or `.npy` file holding the input, relative to the suite file.
    pub file: Option<PathBuf>,
    /// The tensor to read from a `.safetensors` file (needed when it holds several).
    pub tensor: Option<String>,
}

/// `exclude` and `include` entries with GitHub Actions matrix semantics.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// Combinations removed from the product of the axes.
    #[serde(default)]
    pub exclude: Vec<ExcludeEntry>,
    /// Gate overrides for matching combinations, or new combinations.
    #[serde(default)]
    pub include: Vec<IncludeEntry>,
}

/// Removes every combination that matches all the keys given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeEntry {
    /// Matches this model.
    pub model: Option<Ident>,
    /// Matches this precision (by name).
    pub precision: Option<Ident>,
    /// Matches this device.
    pub gpu: Option<DeviceSelector>,
}

/// Extends the combinations it matches, or adds a new one (GitHub Actions `include`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeEntry {
    /// Model of the combination.
    pub model: Option<Ident>,
    /// Precision of the combination: a name in `precisions`, or a preset.
    pub precision: Option<Ident>,
    /// Device of the combination.
    pub gpu: Option<DeviceSelector>,
    /// Gates for the matching combinations, over the suite's.
    #[serde(default)]
    pub gates: GateSpec,
}

/// A positive count or dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Count(pub NonZeroUsize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PositiveInteger;

        impl serde::de::Visitor<'_> for PositiveInteger {
            type Value = Count;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive integer")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Count, E> {
                usize::try_from(v)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .map(Count)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
        }

        deserializer.deserialize_u64(PositiveInteger)
    }
}

impl Count {
    /// The count as a `usize`.
    pub fn get(self) -> usize {
        self.0.get()
    }
}

/// A device a variant targets: `cpu`, `cuda` (any GPU), `cuda:N`, or a GPU model such as `h100`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSelector {
    /// The host CPU.
    Cpu,
    /// Any CUDA device.
    AnyCuda,
    /// The CUDA device with this ordinal.
    CudaOrdinal(usize),
    /// A CUDA device whose name contains this model name (`h100` matches "NVIDIA H100 80GB HBM3").
    GpuModel(Ident),
    /// Wherever the command backend's program runs (`--backend command` maps every device here).
    Command,
    /// The GPU trtexec runs on (`--backend trtexec` maps every device here).
    Trtexec,
}

impl TryFrom<String> for DeviceSelector {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => return Ok(DeviceSelector::Cpu),
            "cuda" => return Ok(DeviceSelector::AnyCuda),
            "command" => return Ok(DeviceSelector::Command),
            "trtexec" => return Ok(DeviceSelector::Trtexec),
            _ => {}
        }
        if let Some(ordinal) = lower.strip_prefix("cuda:") {
            return ordinal
                .parse()
                .map(DeviceSelector::CudaOrdinal)
                .map_err(|_| format!("invalid device `{text}`: expected `cuda:` and a number"));
        }
        Ident::try_from(lower)
            .map(DeviceSelector::GpuModel)
            .map_err(|_| {
                format!("invalid device `{text}`: expected `cpu`, `cuda`, `cuda:N` or a GPU model such as `h100`")
            })
    }
}

impl From<DeviceSelector> for String {
    fn from(device: DeviceSelector) -> String {
        device.to_string()
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Cpu => f.write_str("cpu"),
            DeviceSelector::AnyCuda => f.write_str("cuda"),
            DeviceSelector::CudaOrdinal(n) => write!(f, "cuda:{n}"),
            DeviceSelector::GpuModel(name) => write!(f, "{name}"),
            DeviceSelector::Command => f.write_str("command"),
            DeviceSelector::Trtexec => f.write_str("trtexec"),
        }
    }
}
