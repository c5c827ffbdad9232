//! `--exportLayerInfo=F`: the engine's layers as `IEngineInspector` describes them, and the math
//! precision each layer ran in.
//!
//! The file is `{"Layers": [...], "Bindings": [...]}`. What a layer entry holds depends on the
//! profiling verbosity the engine was built with (Engine Inspector, TensorRT developer guide,
//! <https://docs.nvidia.com/deeplearning/tensorrt/10.16.1/inference-library/engine-tools.html>):
//!
//! - `--profilingVerbosity=layer_names_only` (trtexec's default): each entry is the layer's name,
//!   a string. Such a report carries no precision evidence ([`LayerReport::NamesOnly`]).
//! - `--profilingVerbosity=detailed`: each entry is an object. precheck reads `Name`, `LayerType`
//!   (the implementation: `CaskConvolution`, `Reformat`, Myelin's `gemm` and `kgen`),
//!   `ParameterType` (the network layer it came from: `Convolution`, `Softmax`; absent on
//!   Myelin layers), `Inputs` and `Outputs` (each with `Name` and `Format/Datatype`),
//!   `TacticName` (the kernel) and `Metadata` (TensorRT 10: the ONNX nodes a layer came from,
//!   `[ONNX Layer: /mlp/MatMul]`, several joined by the control characters U+001E or U+001F).
//!   Every other field is ignored.
//!
//! `Format/Datatype` names the datatype in one of two spellings: the layout-and-type sentences of
//! TensorRT's own kernels (`Row major linear FP16 format`, `Channel major INT8 format where channel
//! % 4 == 0`) and the bare type names of Myelin-compiled layers (`Half`, `Float`, `BFloat16`). Each
//! word is looked up in [`DATATYPES`]; a string with no known datatype word, or with two that
//! disagree, has no precision (`None`), never a guess.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::TrtexecError;
use crate::precision::kernels::{self, KernelClass, MathPrecision};

const FLAG: &str = "--exportLayerInfo";

/// What a tensor's datatype says about the math of the layer that reads or writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "precision")]
pub enum LayerPrecision {
    /// A datatype math runs in.
    Math(MathPrecision),
    /// Integer or boolean data no math runs in: shapes, indices, masks, and INT4 weights (weight-only
    /// quantization: dequantized into the other operand's type before the multiplication).
    Data,
}

use LayerPrecision::{Data, Math};
use MathPrecision::{Bf16, Fp16, Fp32, Fp4, Fp8, Int8};

const CASK: &str = "TensorRT kernels' format sentences: TREx trex/activations.py \
                    (_regionFormatDict), TensorRT issue #4020 (a TensorRT 10 layer report)";
const MYELIN: &str = "Myelin layers' type names: TREx trex/activations.py (\"kgen formats\"), \
                      samples/sampleEditableTimingCache/README.md (a TensorRT 10 `gemm` layer)";
const BOTH: &str = "both spellings: TREx trex/activations.py";

/// Datatype words of `Format/Datatype` strings (compared ignoring case: TensorRT writes `Int8` and
/// `INT8`, `Bool` and `BOOL`), with the source that shows TensorRT writing them. `Double` and
/// TensorRT's `None`/`Unknown format` are left out on purpose: no precision of precheck's.
pub const DATATYPES: &[(&str, LayerPrecision, &str)] = &[
    ("FP32", Math(Fp32), CASK),
    ("Float", Math(Fp32), MYELIN),
    ("FP16", Math(Fp16), CASK),
    ("Half", Math(Fp16), MYELIN),
    ("BFloat16", Math(Bf16), BOTH),
    // TensorRT's one FP8 type, DataType::kFP8, is E4M3.
    ("FP8", Math(Fp8), BOTH),
    ("FP4", Math(Fp4), BOTH),
    ("FP4E2M1", Math(Fp4), MYELIN),
    ("Int8", Math(Int8), BOTH),
    ("Int4", Data, MYELIN),
    ("Int16", Data, MYELIN),
    ("Int32", Data, BOTH),
    ("Int64", Data, BOTH),
    ("UInt8", Data, BOTH),
    ("UInt16", Data, MYELIN),
    ("UInt32", Data, MYELIN),
    ("UInt64", Data, MYELIN),
    ("Bool", Data, BOTH),
];

/// The precision a `Format/Datatype` string names: its one datatype word, `None` when it has none
/// or several that disagree.
pub fn datatype_precision(format: &str) -> Option<LayerPrecision> {
    let mut found = None;
    for word in format.split_whitespace() {
        let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if let Some(&(_, precision, _)) = DATATYPES
            .iter()
            .find(|(name, _, _)| name.eq_ignore_ascii_case(word))
        {
            match found {
                Some(earlier) if earlier != precision => return None,
                _ => found = Some(precision),
            }
        }
    }
    found
}

/// A layer's input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// `Format/Datatype` as written.
    pub format: String,
    /// What the format's datatype says, `None` when [`DATATYPES`] does not know it.
    pub precision: Option<LayerPrecision>,
}

/// One engine layer of a detailed report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineLayer {
    /// `Name`: fused layers join their parts with ` + `.
    pub name: String,
    /// `LayerType`: the implementation (`CaskConvolution`, `Reformat`, `gemm`, `kgen`).
    pub layer_type: String,
    /// `ParameterType`: the network layer type, where the report gives one.
    pub parameter_type: Option<String>,
    /// `Inputs`.
    pub inputs: Vec<TensorInfo>,
    /// `Outputs`.
    pub outputs: Vec<TensorInfo>,
    /// `TacticName`: the kernel, where the report gives one.
    pub tactic: Option<String>,
    /// `Metadata`: the ONNX nodes the layer came from (TensorRT 10), where given and not empty.
    pub metadata: Option<String>,
}

/// The precision a layer's math ran in, as far as the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "precision")]
pub enum LayerMath {
    /// The math ran in this precision.
    Ran(MathPrecision),
    /// FP32 tensors, and no kernel name to tell whether FP32 or TF32 math read them (TF32 only
    /// rounds GEMM inputs: any other layer on FP32 tensors computes in FP32).
    Fp32OrTf32,
    /// No tensor holds a datatype math runs in (shapes, indices): nothing to compare.
    NoMath,
    /// A tensor's datatype is one [`DATATYPES`] does not know.
    Unclassified,
}

impl EngineLayer {
    /// The precision the layer's math ran in. A tactic the kernel table
    /// ([`kernels::classify`]) knows as a GEMM decides: the kernel name says what the tensor
    /// types cannot, such as TF32 math on `Float` tensors. Otherwise the inputs decide (the
    /// outputs where no input holds a math datatype): the narrowest math datatype among them,
    /// since a fused layer's GEMM reads its narrowest operands (FP8 operands with a BF16 bias
    /// multiply in FP8); FP32 there is [`LayerMath::Fp32OrTf32`]. Any tensor of unknown datatype
    /// among those read makes the layer unclassified.
    pub fn math(&self) -> LayerMath {
        if let Some(KernelClass::Gemm(precision)) = self.tactic.as_deref().map(kernels::classify) {
            return LayerMath::Ran(precision);
        }
        for tensors in [&self.inputs, &self.outputs] {
            let mut narrowest: Option<MathPrecision> = None;
            for tensor in tensors {
                match tensor.precision {
                    None => return LayerMath::Unclassified,
                    Some(Data) => {}
                    Some(Math(p)) => {
                        if narrowest.is_none_or(|n| p < n) {
                            narrowest = Some(p);
                        }
                    }
                }
            }
            match narrowest {
                Some(Fp32) => return LayerMath::Fp32OrTf32,
                Some(precision) => return LayerMath::Ran(precision),
                None => {}
            }
        }
        LayerMath::NoMath
    }
}

/// The error a names-only report gives where precision evidence is asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the engine layer report names {layers} layers but no tensors: the engine was built without \
     --profilingVerbosity=detailed, so the report holds no precision evidence"
)]
pub struct NoPrecisionEvidence {
    /// How many layers the report names.
    pub layers: usize,
}

/// A parsed `--exportLayerInfo` file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LayerReport {
    /// Built with `--profilingVerbosity=detailed`: layers with their tensors.
    Detailed(Vec<EngineLayer>),
    /// Built with the default verbosity: layer names only (also a report without layers).
    NamesOnly(Vec<String>),
}

impl LayerReport {
    /// The layers with their tensors, or why the report holds no precision evidence.
    pub fn detailed(&self) -> Result<&[EngineLayer], NoPrecisionEvidence> {
        match self {
            LayerReport::Detailed(layers) => Ok(layers),
            LayerReport::NamesOnly(names) => Err(NoPrecisionEvidence {
                layers: names.len(),
            }),
        }
    }

    /// Every layer's name, in engine order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            LayerReport::Detailed(layers) => layers.iter().map(|l| l.name.as_str()).collect(),
            LayerReport::NamesOnly(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

/// A tensor entry as written.
#[derive(Deserialize)]
struct RawTensor {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Format/Datatype")]
    format: String,
}

impl From<RawTensor> for TensorInfo {
    fn from(raw: RawTensor) -> Self {
        TensorInfo {
            precision: datatype_precision(&raw.format),
            name: raw.name,
            format: raw.format,
        }
    }
}

/// A detailed layer entry as written.
#[derive(Deserialize)]
struct RawLayer {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "LayerType")]
    layer_type: String,
    #[serde(rename = "ParameterType")]
    parameter_type: Option<String>,
    #[serde(rename = "Inputs", default)]
    inputs: Vec<RawTensor>,
    #[serde(rename = "Outputs", default)]
    outputs: Vec<RawTensor>,
    #[serde(rename = "TacticName")]
    tactic: Option<String>,
    #[serde(rename = "Metadata")]
    metadata: Option<String>,
}

impl From<RawLayer> for EngineLayer {
    fn from(raw: RawLayer) -> Self {
        EngineLayer {
            name: raw.name,
            layer_type: raw.layer_type,
            parameter_type: raw.parameter_type,
            inputs: raw.inputs.into_iter().map(TensorInfo::from).collect(),
            outputs: raw.outputs.into_iter().map(TensorInfo::from).collect(),
            tactic: raw.tactic.filter(|t| !t.is_empty()),
            metadata: raw.metadata.filter(|m| !m.is_empty()),
        }
    }
}

/// The file's top level; `Bindings` and anything else are ignored.
#[derive(Deserialize)]
struct RawReport {
    #[serde(rename = "Layers")]
    layers: Entries,
}

/// The `Layers` list: all names or all objects. Read element by element (not as an untagged
/// enum) so that an error inside one layer keeps serde_json's position and the element's path.
struct Entries(LayerReport);

/// One element of `Layers`.
enum Entry {
    Name(String),
    Layer(RawLayer),
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a layer name or a layer object")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Entry, E> {
                Ok(Entry::Name(name.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
                RawLayer::deserialize(de::value::MapAccessDeserializer::new(map)).map(Entry::Layer)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of layer names or of layer objects")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries, A::Error> {
                let mut names = Vec::new();
                let mut layers = Vec::new();
                while let Some(entry) = seq.next_element()? {
                    match entry {
                        Entry::Name(name) => names.push(name),
                        Entry::Layer(layer) => layers.push(EngineLayer::from(layer)),
                    }
                    if !names.is_empty() && !layers.is_empty() {
                        return Err(de::Error::custom(
                            "layer names and layer objects are mixed (trtexec writes one or the other)",
                        ));
                    }
                }
                Ok(Entries(if layers.is_empty() {
                    LayerReport::NamesOnly(names)
                } else {
                    LayerReport::Detailed(layers)
                }))
            }
        }

        deserializer.deserialize_seq(EntriesVisitor)
    }
}

/// Reads a layer report.
pub fn read(path: &Path) -> Result<LayerReport, TrtexecError> {
    parse(path, &super::read_text(path)?)
}

/// Reads a report and its layers with their tensors: a report of names only (an engine built
/// without `--profilingVerbosity=detailed`) holds no evidence, and is an error that says so.
pub fn read_detailed(path: &Path) -> Result<Vec<EngineLayer>, String> {
    let report = read(path).map_err(|e| e.to_string())?;
    let layers = report
        .detailed()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(layers.to_vec())
}

/// Parses a layer report, `text` read from `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> Result<LayerReport, TrtexecError> {
    let report: RawReport = super::parse_json(path, FLAG, text)?;
    Ok(report.layers.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Format/Datatype` strings TensorRT writes, each with the precision it names. Every row of
    /// [`DATATYPES`] must be named by one of them (checked below).
    const WRITTEN: &[(&str, Option<LayerPrecision>)] = &[
        ("Row major linear FP32", Some(Math(Fp32))),
        (
            "Thirty-two wide channel vectorized row major FP32 format",
            Some(Math(Fp32)),
        ),
        ("Float", Some(Math(Fp32))),
        ("Row major linear FP16 format", Some(Math(Fp16))),
        (
            "Channel major FP16 format where channel % 8 == 0",
            Some(Math(Fp16)),
        ),
        (
            "Two wide channel vectorized row major FP16 format",
            Some(Math(Fp16)),
        ),
        ("Half", Some(Math(Fp16))),
        ("Row major linear BFloat16 format", Some(Math(Bf16))),
        ("BFloat16", Some(Math(Bf16))),
        ("Row major linear FP8 format", Some(Math(Fp8))),
        ("FP8", Some(Math(Fp8))),
        ("Row major linear FP4 format (kLINEAR)", Some(Math(Fp4))),
        ("FP4E2M1", Some(Math(Fp4))),
        ("Row major Int8 format", Some(Math(Int8))),
        (
            "Channel major INT8 format where channel % 16 == 0",
            Some(Math(Int8)),
        ),
        (
            "Thirty-two wide channel vectorized row major Int8 format",
            Some(Math(Int8)),
        ),
        ("Int8", Some(Math(Int8))),
        ("Int4", Some(Data)),
        ("Int16", Some(Data)),
        ("Row major linear Int32", Some(Data)),
        ("Row major linear Int64 format", Some(Data)),
        ("Row major linear UInt8 format", Some(Data)),
        ("UInt16", Some(Data)),
        ("UInt32", Some(Data)),
        ("UInt64", Some(Data)),
        ("Row major linear BOOL", Some(Data)),
        ("Bool", Some(Data)),
        ("Unknown format", None),
        ("None", None),
        ("Double", None),
        ("Row major linear FP6 format", None),
        ("", None),
    ];

    #[test]
    fn written_formats_name_their_precision() {
        for &(format, precision) in WRITTEN {
            assert_eq!(datatype_precision(format), precision, "{format:?}");
        }
    }

    #[test]
    fn every_datatype_row_is_exercised() {
        for (word, precision, _) in DATATYPES {
            assert!(
                WRITTEN.iter().any(|(format, expected)| {
                    format
                        .split_whitespace()
                        .any(|w| w.eq_ignore_ascii_case(word))
                        && *expected == Some(*precision)
                }),
                "no written format exercises `{word}`"
            );
        }
    }

    #[test]
    fn a_format_naming_two_different_datatypes_is_not_guessed() {
        assert_eq!(datatype_precision("FP16 to FP32"), None);
        assert_eq!(datatype_precision("FP16 FP16"), Some(Math(Fp16)));
    }

    fn tensor(format: &str) -> TensorInfo {
        TensorInfo::from(RawTensor {
            name: "t".into(),
            format: format.into(),
        })
    }

    fn layer(inputs: &[&str], outputs: &[&str], tactic: Option<&str>) -> EngineLayer {
        EngineLayer {
            name: "l".into(),
            layer_type: "gemm".into(),
            parameter_type: None,
            inputs: inputs.iter().map(|f| tensor(f)).collect(),
            outputs: outputs.iter().map(|f| tensor(f)).collect(),
            tactic: tactic.map(str::to_owned),
            metadata: None,
        }
    }

    #[test]
    fn a_layer_runs_in_its_narrowest_input() {
        let fp8 = layer(&["FP8", "FP8", "BFloat16"], &["BFloat16"], None);
        assert_eq!(fp8.math(), LayerMath::Ran(Fp8));
        let gather = layer(&["Int64", "Half"], &["Half"], None);
        assert_eq!(gather.math(), LayerMath::Ran(Fp16));
        let int4_weights = layer(&["BFloat16", "Int4"], &["BFloat16"], None);
        assert_eq!(int4_weights.math(), LayerMath::Ran(Bf16));
    }

    #[test]
    fn outputs_decide_when_no_input_holds_math() {
        assert_eq!(
            layer(&["Int32"], &["Half"], None).math(),
            LayerMath::Ran(Fp16)
        );
        assert_eq!(
            layer(&["Int32"], &["Int64"], None).math(),
            LayerMath::NoMath
        );
    }

    #[test]
    fn an_unknown_input_format_makes_the_layer_unclassified() {
        let unknown = layer(&["Half", "Unknown format"], &["Half"], None);
        assert_eq!(unknown.math(), LayerMath::Unclassified);
    }

    #[test]
    fn a_gemm_tactic_decides_over_the_tensor_types() {
        let untold = layer(&["Float", "Float"], &["Float"], None);
        assert_eq!(untold.math(), LayerMath::Fp32OrTf32);
        // TF32 tensor-core math on FP32 tensors.
        let tf32 = layer(
            &["Float", "Float"],
            &["Float"],
            Some("sm80_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize32x32x64_stage3_warpsize2x1x2_tensor16x8x8"),
        );
        assert_eq!(tf32.math(), LayerMath::Ran(MathPrecision::Tf32));
        let myelin = layer(
            &["Half"],
            &["Half"],
            Some("__myl_TraMaxSubExpSum_0xcbcb71f1"),
        );
        assert_eq!(myelin.math(), LayerMath::Ran(Fp16));
    }

    #[test]
    fn mixed_names_and_objects_are_an_error() {
        let text = r#"{"Layers": ["a", {"Name": "b", "LayerType": "Reformat"}]}"#;
        let error = parse(Path::new("l.json"), text).unwrap_err().to_string();
        assert!(error.contains("mixed"), "{error}");
    }

    #[test]
    fn an_empty_report_has_no_precision_evidence() {
        let report = parse(Path::new("l.json"), r#"{"Layers": [], "Bindings": []}"#).unwrap();
        assert_eq!(report.detailed(), Err(NoPrecisionEvidence { layers: 0 }));
    }
}
