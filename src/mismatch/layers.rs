//! Engine layer reports as evidence: the precision each layer of a built engine ran in (read by
//! [`crate::trtexec::layers`]) against the precision its operation class asked for.
//!
//! A layer's class comes from its types and the ONNX nodes it was built from, by the rules in
//! [`KINDS`] (data, the first match decides): GEMMs and convolutions are held to the policy's
//! matmul precision, softmax, normalisation and activation layers to their class's format, every
//! other layer with math (elementwise, reductions, pooling) to the policy's default. A layer is
//! listed `above` when it ran more precisely than that, so a softmax the policy keeps in FP32 is not
//! a fallback; `below` when less. A GEMM on FP32 tensors, without a kernel name that tells FP32
//! from TF32 math, is flagged only where both would be. Layers that only move or convert data
//! (reformats, shuffles, constants, casts, Q/DQ) are ignored, and layers whose datatypes the table
//! does not know are `unclassified`, never guessed.

use serde::{Deserialize, Serialize};

use super::Direction;
use crate::precision::kernels::{expected_gemm_precision, math_precision, MathPrecision};
use crate::precision::Policy;
use crate::trtexec::layers::{EngineLayer, LayerMath};

/// What an engine layer computes, as far as the policy's operation classes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerClass {
    /// Moves or converts data without math: reformats, shuffles, constants, casts, Q/DQ.
    DataMovement,
    /// A GEMM or convolution (fused attention included): the policy's matmul precision.
    Matmul,
    /// A softmax: the policy's `softmax`.
    Softmax,
    /// A normalisation (LayerNorm, RMSNorm, ...): the policy's `norm`.
    Norm,
    /// An activation function: the policy's `activation`.
    Activation,
    /// Other math (elementwise, reductions, pooling): the policy's `default`.
    Other,
}

/// Where a rule looks.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    /// `LayerType` or `ParameterType`.
    Type,
    /// The operator of any ONNX node the layer came from: the last component of a node's path,
    /// less a `_<n>` suffix (`/attn/Softmax_1` → `Softmax`). The paths are `Metadata`'s where the
    /// report gives it (Myelin names its layers itself: `__myl_MulSum_myl0_1`), else the parts of
    /// `Name` (joined by ` + ` in fused layers).
    AnyOp,
    /// The operators of every such node (and there is one).
    EveryOp,
    /// The module components of those paths (`/model/input_layernorm/Pow` → `model`,
    /// `input_layernorm`).
    Module,
}

/// How a rule compares.
#[derive(Debug, Clone, Copy)]
pub enum Match {
    /// Equal to one of these, ignoring case.
    Exactly(&'static [&'static str]),
    /// Contains this, ignoring case.
    Contains(&'static str),
}

impl Match {
    fn matches(self, text: &str) -> bool {
        match self {
            Match::Exactly(names) => names.iter().any(|n| n.eq_ignore_ascii_case(text)),
            Match::Contains(part) => text.to_ascii_lowercase().contains(part),
        }
    }
}

use Field::{AnyOp, EveryOp, Module, Type};
use LayerClass::{Activation, DataMovement, Matmul, Norm, Other, Softmax};

/// The kind rules, in order: the first that matches decides, so a layer whose parts include a
/// MatMul is a matmul even when a softmax is fused into it (its inputs are the GEMM's operands),
/// and a reformat named after the softmax it feeds is still a reformat.
pub static KINDS: &[(Field, Match, LayerClass, &str)] = &[
    (
        Type,
        Match::Exactly(&[
            "Reformat",
            "NoOp",
            "Shuffle",
            "Constant",
            "Identity",
            "Cast",
            "Quantize",
            "Dequantize",
            "Slice",
            "Concatenation",
            "Gather",
            "Shape",
            "Padding",
            "shape_call",
            "signal",
            "wait",
            "TrainStation",
        ]),
        DataMovement,
        "TensorRT layer types that copy, reshape or convert; TREx (trex/engine_plan.py, \
         trex/parser.py) drops Constant, NoOp, shape_call, signal, wait and TrainStation too",
    ),
    (
        EveryOp,
        Match::Exactly(&[
            "QuantizeLinear",
            "DequantizeLinear",
            "Cast",
            "Reshape",
            "Transpose",
            "Squeeze",
            "Unsqueeze",
            "Flatten",
            "Concat",
            "Split",
            "Slice",
            "Gather",
            "Expand",
            "Identity",
            "Shape",
        ]),
        DataMovement,
        "ONNX operators that copy, reshape or convert: a layer made of nothing else (a standalone \
         Q/DQ of an FP8 or INT8 graph)",
    ),
    (
        Type,
        Match::Exactly(&[
            "Convolution",
            "Deconvolution",
            "MatrixMultiply",
            "FullyConnected",
            "gemm",
        ]),
        Matmul,
        "TensorRT ParameterType names; `gemm`: Myelin's GEMM layers \
         (samples/sampleEditableTimingCache/README.md)",
    ),
    (
        Type,
        Match::Contains("convolution"),
        Matmul,
        "TensorRT convolution kernels' LayerType (CaskConvolution, CudaDepthwiseConvolution)",
    ),
    (
        AnyOp,
        Match::Exactly(&["MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"]),
        Matmul,
        "ONNX operators",
    ),
    (
        Type,
        Match::Exactly(&["Softmax", "SoftMax"]),
        Softmax,
        "TensorRT layer type",
    ),
    (
        AnyOp,
        Match::Exactly(&["Softmax", "LogSoftmax"]),
        Softmax,
        "ONNX operators",
    ),
    (
        Type,
        Match::Exactly(&["Normalization"]),
        Norm,
        "TensorRT layer type (INormalizationLayer)",
    ),
    (
        AnyOp,
        Match::Exactly(&[
            "LayerNormalization",
            "RMSNormalization",
            "GroupNormalization",
            "InstanceNormalization",
            "BatchNormalization",
        ]),
        Norm,
        "ONNX operators",
    ),
    (
        Module,
        Match::Contains("norm"),
        Norm,
        "a norm exported as its pieces (Pow, ReduceMean, Sqrt, Div) under a module named after it \
         (input_layernorm, LayerNorm, norm)",
    ),
    (
        Type,
        Match::Exactly(&["Activation"]),
        Activation,
        "TensorRT layer type (IActivationLayer)",
    ),
    (
        AnyOp,
        Match::Exactly(&[
            "Relu",
            "Gelu",
            "Erf",
            "Sigmoid",
            "Tanh",
            "Elu",
            "Selu",
            "LeakyRelu",
            "Softplus",
            "HardSigmoid",
            "HardSwish",
            "Mish",
        ]),
        Activation,
        "ONNX operators",
    ),
];

/// The ONNX node paths a layer names: its `Metadata` entries, else the parts of its `Name`.
fn node_paths(layer: &EngineLayer) -> impl Iterator<Item = &str> {
    let parts: Vec<&str> = match layer.metadata.as_deref() {
        Some(metadata) => metadata.split(['\u{1e}', '\u{1f}']).collect(),
        None => layer.name.split(" + ").collect(),
    };
    parts
        .into_iter()
        .map(|part| {
            let part = part.trim();
            part.strip_prefix("[ONNX Layer: ")
                .and_then(|p| p.strip_suffix(']'))
                .unwrap_or(part)
        })
        .filter(|part| !part.is_empty())
}

/// A path's operator, less a `_<n>` suffix.
fn operator(path: &str) -> &str {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rsplit_once('_') {
        Some((op, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => op,
        _ => last,
    }
}

/// A path's module components (all but the last).
fn modules(path: &str) -> impl Iterator<Item = &str> {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    parts.pop();
    parts.into_iter()
}

/// The kind of `layer`, by [`KINDS`].
pub fn kind(layer: &EngineLayer) -> LayerClass {
    KINDS
        .iter()
        .find(|(field, rule, _, _)| match field {
            Type => std::iter::once(layer.layer_type.as_str())
                .chain(layer.parameter_type.as_deref())
                .any(|t| rule.matches(t)),
            AnyOp => node_paths(layer).any(|p| rule.matches(operator(p))),
            EveryOp => {
                let mut paths = node_paths(layer).peekable();
                paths.peek().is_some() && paths.all(|p| rule.matches(operator(p)))
            }
            Module => node_paths(layer).any(|p| modules(p).any(|m| rule.matches(m))),
        })
        .map_or(Other, |&(_, _, kind, _)| kind)
}

/// The precision `policy` asks of a layer of `kind`; `None` for data movement.
pub fn expected(kind: LayerClass, policy: &Policy) -> Option<MathPrecision> {
    match kind {
        DataMovement => None,
        Matmul => Some(expected_gemm_precision(policy, false)),
        Softmax => Some(math_precision(policy.softmax)),
        Norm => Some(math_precision(policy.norm)),
        Activation => Some(math_precision(policy.activation)),
        Other => Some(math_precision(policy.default)),
    }
}

/// What an engine's layer report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerEvidence {
    /// Layers whose math ran above the precision their class asked for.
    pub above: Vec<String>,
    /// Layers whose math ran below it.
    pub below: Vec<String>,
    /// Layers with math whose datatypes the table does not know.
    pub unclassified: Vec<String>,
    /// Layers compared with the policy (those with math and a known precision).
    pub layers_checked: usize,
}

impl LayerEvidence {
    /// The mismatch the layers show, if any: above before below, as for kernel traces.
    pub fn direction(&self) -> Option<Direction> {
        if !self.above.is_empty() {
            Some(Direction::Higher)
        } else if !self.below.is_empty() {
            Some(Direction::Lower)
        } else {
            None
        }
    }
}

/// Reads `layers` (a detailed report's) against `policy`.
pub fn evidence(layers: &[EngineLayer], policy: &Policy) -> LayerEvidence {
    let mut found = LayerEvidence {
        above: Vec::new(),
        below: Vec::new(),
        unclassified: Vec::new(),
        layers_checked: 0,
    };
    for layer in layers {
        let kind = kind(layer);
        let Some(expected) = expected(kind, policy) else {
            continue;
        };
        // The layer ran somewhere from `low` to `high`.
        let mut compare = |low: MathPrecision, high: MathPrecision| {
            found.layers_checked += 1;
            if low > expected {
                found.above.push(layer.name.clone());
            } else if high < expected {
                found.below.push(layer.name.clone());
            }
        };
        match layer.math() {
            LayerMath::Ran(ran) => compare(ran, ran),
            // TF32 rounds matmul inputs only: a GEMM on FP32 tensors is above or below only if
            // both readings are; any other layer on them computes in FP32.
            LayerMath::Fp32OrTf32 if kind == Matmul => {
                compare(MathPrecision::Tf32, MathPrecision::Fp32)
            }
            LayerMath::Fp32OrTf32 => compare(MathPrecision::Fp32, MathPrecision::Fp32),
            LayerMath::NoMath => {}
            LayerMath::Unclassified => found.unclassified.push(layer.name.clone()),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precision::presets;

    fn layer(name: &str, layer_type: &str, metadata: &str, format: &str) -> EngineLayer {
        let tensor = crate::trtexec::layers::TensorInfo {
            name: "t".into(),
            format: format.into(),
            precision: crate::trtexec::layers::datatype_precision(format),
        };
        EngineLayer {
            name: name.into(),
            layer_type: layer_type.into(),
            parameter_type: None,
            inputs: vec![tensor.clone()],
            outputs: vec![tensor],
            tactic: None,
            metadata: (!metadata.is_empty()).then(|| metadata.to_owned()),
        }
    }

    #[test]
    fn each_rule_has_a_layer_it_classifies() {
        let cases = [
            (
                layer(
                    "Reformatting CopyNode for Input Tensor 0 to /attn/Softmax",
                    "Reformat",
                    "",
                    "Half",
                ),
                DataMovement,
            ),
            (
                layer(
                    "__myl_Quan_myl0_0",
                    "kgen",
                    "[ONNX Layer: /x/input_quantizer/QuantizeLinear]",
                    "FP8",
                ),
                DataMovement,
            ),
            (
                layer(
                    "/x/input_quantizer/QuantizeLinear + /x/MatMul",
                    "CaskGemmMatrixMultiply",
                    "",
                    "FP8",
                ),
                Matmul,
            ),
            (layer("/mlp/MatMul", "gemm", "", "Half"), Matmul),
            (
                layer("conv1 + relu1", "CaskConvolution", "", "Half"),
                Matmul,
            ),
            (
                layer(
                    "__myl_MulSum_myl0_1",
                    "kgen",
                    "[ONNX Layer: /attn/MatMul]\u{1e}[ONNX Layer: /attn/Softmax]",
                    "Half",
                ),
                Matmul,
            ),
            (layer("softmax", "SoftMax", "", "Float"), Softmax),
            (
                layer(
                    "__myl_MaxSubExpSumDiv_myl0_2",
                    "kgen",
                    "[ONNX Layer: /attn/Softmax_1]",
                    "Float",
                ),
                Softmax,
            ),
            (layer("ln", "Normalization", "", "Float"), Norm),
            (layer("/ln/LayerNormalization", "kgen", "", "Float"), Norm),
            (
                layer(
                    "__myl_PowMeanAddSqrtDivMul_myl0_3",
                    "kgen",
                    "[ONNX Layer: /model/norm/Pow]\u{1f}[ONNX Layer: /model/norm/ReduceMean]",
                    "Half",
                ),
                Norm,
            ),
            (layer("act", "Activation", "", "Half"), Activation),
            (
                layer(
                    "PWN(/mlp/act/Gelu)",
                    "PointWiseV2",
                    "[ONNX Layer: /mlp/act/Gelu]",
                    "Half",
                ),
                Activation,
            ),
            (layer("/block/Add_3", "ElementWise", "", "Half"), Other),
        ];
        for (layer, expected) in cases {
            assert_eq!(kind(&layer), expected, "{}", layer.name);
        }
    }

    #[test]
    fn operators_lose_their_index_suffix_only() {
        assert_eq!(operator("/attn/Softmax_12"), "Softmax");
        assert_eq!(operator("Softmax"), "Softmax");
        assert_eq!(operator("/x/down_proj"), "down_proj");
        assert_eq!(
            modules("/model/input_layernorm/Pow").collect::<Vec<_>>(),
            ["model", "input_layernorm"]
        );
    }

    #[test]
    fn fp32_tensors_without_a_kernel_name_meet_an_fp32_or_a_tf32_request() {
        let mut gemm = layer("/mlp/MatMul", "gemm", "", "Float");
        for (policy, above) in [("fp32", false), ("tf32", false), ("bf16", true)] {
            let found = evidence(
                std::slice::from_ref(&gemm),
                &presets::preset(policy).unwrap(),
            );
            assert_eq!(found.above.len(), usize::from(above), "{policy}");
            assert!(found.below.is_empty(), "{policy}");
        }
        // With its kernel named, TF32 math in an FP32 policy is below it.
        gemm.tactic = Some("sm80_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize32x32x64_stage3".into());
        let found = evidence(&[gemm], &presets::preset("fp32").unwrap());
        assert_eq!(found.below, ["/mlp/MatMul"]);
    }

    #[test]
    fn an_fp16_softmax_is_above_a_bf16_policy_and_below_an_fp32_one() {
        let layers = [layer("/attn/Softmax", "kgen", "", "Half")];
        let bf16 = presets::preset("bf16").unwrap();
        assert_eq!(evidence(&layers, &bf16).above, ["/attn/Softmax"]);
        let fp32_softmax = Policy {
            softmax: crate::formats::Format::Fp32,
            ..bf16
        };
        let found = evidence(&layers, &fp32_softmax);
        assert_eq!(
            (found.above.len(), found.below.as_slice()),
            (0, &["/attn/Softmax".to_owned()][..])
        );
        assert_eq!(found.direction(), Some(Direction::Lower));
    }
}
