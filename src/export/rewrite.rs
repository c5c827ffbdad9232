//! Precision variants of a user's ONNX model, made by rewriting its graph: the same policy
//! semantics precheck's own blocks have, said with ONNX operators so that any engine that runs
//! ONNX runs them.
//!
//! Every node belongs to one of a policy's operation classes ([`op_class`], a table): its float
//! outputs are held in that class's format (a `Cast` there and back; the value keeps its name, so
//! the graph's interface does not change). A matmul-class node with a constant weight takes its
//! operands as the policy's matmul recipes say: the weight rounded, or quantized once
//! (`DequantizeLinear` of a quantized initializer, per tensor, per output channel or in blocks);
//! the activation rounded, or quantized on every call with the scale of its current amax (per
//! tensor: `QuantizeLinear`/`DequantizeLinear`; per token: the same arithmetic written out along
//! the last axis). A matmul of two activations (attention's own products) runs on operands held
//! in the default format, as precheck's blocks do. Recipes ONNX cannot say (MX, NVFP4, delayed
//! scaling, TF32 and FP6 tensors) are an error that names them.
//!
//! Which values are float is inferred along the graph ([`FloatValues`]) from the inputs'
//! declared types, the initializers and each operator's rule, so that shape arithmetic (int64)
//! and masks (bool) are never cast.

use std::collections::{HashMap, HashSet};

use super::emit::{channel_major, f32_bytes, float_values, Emitter};
use super::ExportError;
use crate::formats::Format;
use crate::model::onnx::Localize;
use crate::onnx_proto::{DataType, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use crate::precision::Policy;
use crate::quant::{QuantSpec, Recipe};
use crate::tensor::Tensor;

/// The operation classes a policy gives formats to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// Products: the policy's matmul recipes.
    Matmul,
    /// The softmax format.
    Softmax,
    /// The norm format.
    Norm,
    /// The activation format.
    Activation,
    /// Arithmetic that is none of those: the default format.
    Default,
    /// Moves or selects values without computing new ones (reshapes, gathers, pooling by max):
    /// nothing to round.
    DataMovement,
}

/// ONNX operator types and their class; an operator not listed computes in the default class.
const OP_CLASSES: &[(&str, OpClass)] = &[
    ("MatMul", OpClass::Matmul),
    ("Gemm", OpClass::Matmul),
    ("Conv", OpClass::Matmul),
    ("ConvTranspose", OpClass::Matmul),
    ("Einsum", OpClass::Matmul),
    ("Softmax", OpClass::Softmax),
    ("LogSoftmax", OpClass::Softmax),
    ("LayerNormalization", OpClass::Norm),
    ("BatchNormalization", OpClass::Norm),
    ("InstanceNormalization", OpClass::Norm),
    ("GroupNormalization", OpClass::Norm),
    ("RMSNormalization", OpClass::Norm),
    ("SimplifiedLayerNormalization", OpClass::Norm),
    ("SkipLayerNormalization", OpClass::Norm),
    ("LpNormalization", OpClass::Norm),
    ("MeanVarianceNormalization", OpClass::Norm),
    ("Relu", OpClass::Activation),
    ("LeakyRelu", OpClass::Activation),
    ("PRelu", OpClass::Activation),
    ("Elu", OpClass::Activation),
    ("Selu", OpClass::Activation),
    ("Celu", OpClass::Activation),
    ("Gelu", OpClass::Activation),
    ("FastGelu", OpClass::Activation),
    ("Sigmoid", OpClass::Activation),
    ("HardSigmoid", OpClass::Activation),
    ("HardSwish", OpClass::Activation),
    ("Tanh", OpClass::Activation),
    ("Softplus", OpClass::Activation),
    ("Softsign", OpClass::Activation),
    ("Mish", OpClass::Activation),
    ("Clip", OpClass::Activation),
    ("Reshape", OpClass::DataMovement),
    ("Transpose", OpClass::DataMovement),
    ("Squeeze", OpClass::DataMovement),
    ("Unsqueeze", OpClass::DataMovement),
    ("Flatten", OpClass::DataMovement),
    ("Slice", OpClass::DataMovement),
    ("Gather", OpClass::DataMovement),
    ("GatherElements", OpClass::DataMovement),
    ("GatherND", OpClass::DataMovement),
    ("Concat", OpClass::DataMovement),
    ("Split", OpClass::DataMovement),
    ("Expand", OpClass::DataMovement),
    ("Tile", OpClass::DataMovement),
    ("Identity", OpClass::DataMovement),
    ("Pad", OpClass::DataMovement),
    ("DepthToSpace", OpClass::DataMovement),
    ("SpaceToDepth", OpClass::DataMovement),
    ("MaxPool", OpClass::DataMovement),
    ("GlobalMaxPool", OpClass::DataMovement),
    ("ReduceMax", OpClass::DataMovement),
    ("ReduceMin", OpClass::DataMovement),
    ("Cast", OpClass::DataMovement),
    ("Shape", OpClass::DataMovement),
    ("Constant", OpClass::DataMovement),
];

/// Operators whose inputs the upgrade and the rewrite read by position, and how many each must
/// have: a node with fewer is refused when the model is read, naming it.
pub(super) const LEAST_INPUTS: &[(&str, usize)] = &[
    ("MatMul", 2),
    ("Gemm", 2),
    ("Conv", 2),
    ("ConvTranspose", 2),
    ("Einsum", 1),
    ("Mul", 2),
    ("Div", 2),
    ("Sub", 2),
    ("Add", 2),
    ("Pow", 2),
    ("Sigmoid", 1),
    ("Sqrt", 1),
    ("ReduceMean", 1),
    ("Softmax", 1),
    ("LogSoftmax", 1),
];

/// The class of an ONNX operator type.
pub fn op_class(op_type: &str) -> OpClass {
    OP_CLASSES
        .iter()
        .find(|(name, _)| *name == op_type)
        .map_or(OpClass::Default, |&(_, class)| class)
}

/// Operators whose outputs are never float, whatever their inputs.
const NOT_FLOAT: &[&str] = &[
    "Shape",
    "Size",
    "NonZero",
    "ArgMax",
    "ArgMin",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "IsNaN",
    "IsInf",
];

/// The float values of a graph, inferred in node order: graph inputs and initializers of type
/// FLOAT; a `Cast`'s output when it casts to FLOAT; a `Constant` or `ConstantOfShape` of a FLOAT
/// tensor; `Where`'s output as its second input; every other operator's outputs as its first
/// input, except those that always give integers or booleans ([`NOT_FLOAT`]).
struct FloatValues(HashSet<String>);

impl FloatValues {
    fn infer(graph: &GraphProto) -> FloatValues {
        let float = DataType::Float as i32;
        let mut values: HashSet<String> = graph
            .input
            .iter()
            .filter(|i| {
                i.r#type
                    .as_ref()
                    .and_then(|t| t.tensor_type.as_ref())
                    .is_some_and(|t| t.elem_type == float)
            })
            .map(|i| i.name.clone())
            .collect();
        values.extend(
            graph
                .initializer
                .iter()
                .filter(|t| t.data_type == float)
                .map(|t| t.name.clone()),
        );
        for node in &graph.node {
            let first_is_float = |index: usize| {
                node.input
                    .get(index)
                    .is_some_and(|name| values.contains(name))
            };
            let is_float = match node.op_type.as_str() {
                op if NOT_FLOAT.contains(&op) => false,
                "Cast" => attribute_int(node, "to") == Some(i64::from(float)),
                "Constant" | "ConstantOfShape" => node
                    .attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
                    .map_or(node.op_type == "ConstantOfShape", |t| t.data_type == float),
                "Where" => first_is_float(1),
                _ => first_is_float(0),
            };
            if is_float {
                values.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
            }
        }
        FloatValues(values)
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// Operations written as several operators, computed and held as one, as precheck's own are:
/// SiLU as `x · Sigmoid(x)` (an activation); LayerNorm as `(x − mean) / sqrt(var + eps)` from
/// `ReduceMean`, `Sub`, `Pow`, `Add`, `Sqrt` and `Div` (a norm, as PyTorch exports
/// `nn.LayerNorm` before opset 17 and Paddle2ONNX always).
struct Fused {
    /// Values inside a fused operation: not held in any format of their own.
    inside: HashSet<String>,
    /// The values fused operations give, with the class whose format holds them.
    outputs: HashMap<String, OpClass>,
}

impl Fused {
    fn find(graph: &GraphProto) -> Fused {
        let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
        let mut producers: HashMap<&str, &NodeProto> = HashMap::new();
        for node in &graph.node {
            for input in &node.input {
                consumers.entry(input.as_str()).or_default().push(node);
            }
            for output in &node.output {
                producers.insert(output.as_str(), node);
            }
        }
        let mut fused = Fused {
            inside: HashSet::new(),
            outputs: HashMap::new(),
        };
        for sigmoid in graph.node.iter().filter(|n| n.op_type == "Sigmoid") {
            let (x, s) = (&sigmoid.input[0], &sigmoid.output[0]);
            let Some([product]) = consumers.get(s.as_str()).map(Vec::as_slice) else {
                continue;
            };
            let operands = [&product.input[0], &product.input[1]];
            if product.op_type == "Mul" && operands.contains(&x) && operands.contains(&s) {
                fused.inside.insert(s.clone());
                fused
                    .outputs
                    .insert(product.output[0].clone(), OpClass::Activation);
            }
        }
        let made_by = |value: &str, op: &str| {
            producers
                .get(value)
                .copied()
                .filter(|node| node.op_type == op)
        };
        for div in graph
            .node
            .iter()
            .filter(|n| n.op_type == "Div" && n.input.len() == 2)
        {
            // Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), eps))) with d = Sub(x, ReduceMean(x)).
            let (d, denominator) = (&div.input[0], &div.input[1]);
            let Some(sqrt) = made_by(denominator, "Sqrt") else {
                continue;
            };
            let under = &sqrt.input[0];
            // `+ eps` on either side, or none.
            let (variance, add) = match made_by(under, "Add") {
                Some(add) => match add
                    .input
                    .iter()
                    .find(|i| made_by(i, "ReduceMean").is_some())
                {
                    Some(variance) => (variance, Some(add)),
                    None => continue,
                },
                None => (under, None),
            };
            let Some(variance_mean) = made_by(variance, "ReduceMean") else {
                continue;
            };
            let Some(pow) = made_by(&variance_mean.input[0], "Pow") else {
                continue;
            };
            let Some(sub) = made_by(d, "Sub") else {
                continue;
            };
            let Some(mean) = made_by(&sub.input[1], "ReduceMean") else {
                continue;
            };
            if pow.input[0] != *d || mean.input[0] != sub.input[0] {
                continue;
            }
            let parts = [
                Some(mean),
                Some(sub),
                Some(pow),
                Some(variance_mean),
                add,
                Some(sqrt),
            ];
            for part in parts.into_iter().flatten() {
                fused.inside.insert(part.output[0].clone());
            }
            fused.outputs.insert(div.output[0].clone(), OpClass::Norm);
        }
        fused
    }
}

fn attribute_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name)?.i
}

/// The default-domain opset the model imports.
fn opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version)
}

/// The amax of each matmul activation over calibration inputs, by value name: what static
/// scales are made from (TensorRT's Q/DQ calibration; delayed scaling at the call measured).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    amax: HashMap<String, f32>,
}

impl Calibration {
    /// A calibration of these values' amax.
    pub fn new(amax: HashMap<String, f32>) -> Self {
        Calibration { amax }
    }

    /// The calibrated amax of `value`.
    pub fn amax(&self, value: &str) -> Option<f32> {
        self.amax.get(value).copied()
    }
}

/// The float activations that matmul-class nodes with a constant weight quantize, in graph
/// order, each once: what a calibration measures.
pub fn calibrated_values(model: &ModelProto) -> Vec<String> {
    let Some(graph) = model.graph.as_ref() else {
        return Vec::new();
    };
    let floats = FloatValues::infer(graph);
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut values: Vec<String> = Vec::new();
    for node in &graph.node {
        let constant_weight = weight_input(node)
            .and_then(|w| node.input.get(w))
            .is_some_and(|w| initializers.contains(w.as_str()));
        let Some(x) = node.input.first() else {
            continue;
        };
        if op_class(&node.op_type) == OpClass::Matmul
            && constant_weight
            && floats.contains(x)
            && !values.contains(x)
        {
            values.push(x.clone());
        }
    }
    values
}

/// `model` computing as `policy` says, with activations scaled from earlier calls (`delayed`)
/// quantized with the static scales of `calibration`. Fails on a policy ONNX cannot express at
/// the model's opset, or on weights it cannot read.
pub fn rewrite(
    model: &ModelProto,
    policy: &Policy,
    calibration: &Calibration,
) -> Result<ModelProto, ExportError> {
    let opset = opset(model);
    check_expressible(policy, opset)?;
    let mut rewritten = model.clone();
    let graph = rewritten
        .graph
        .as_mut()
        .ok_or_else(|| ExportError::Unsupported("a model without a graph".into()))?;
    let floats = FloatValues::infer(graph);
    let initializers: HashMap<String, TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t.clone()))
        .collect();
    let outputs: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut emit = Emitter::new("precheck_", opset);
    let mut renamed: HashMap<String, String> = HashMap::new();

    // Graph inputs are held in the default format before anything reads them.
    for input in &graph.input {
        if floats.contains(&input.name) && !initializers.contains_key(&input.name) {
            let stored = emit.store(input.name.clone(), policy.default)?;
            if stored != input.name {
                renamed.insert(input.name.clone(), stored);
            }
        }
    }
    let fused = Fused::find(graph);
    let mut rounded_weights: Vec<TensorProto> = Vec::new();
    let mut weights_done: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(graph.node.len());
    nodes.append(&mut emit.nodes);
    for original in &graph.node {
        let mut node = original.clone();
        for input in node.input.iter_mut() {
            if let Some(new) = renamed.get(input) {
                *input = new.clone();
            }
        }
        let class = fused
            .outputs
            .get(&node.output[0])
            .copied()
            .unwrap_or_else(|| op_class(&node.op_type));
        if class == OpClass::Matmul {
            let weight = weight_input(&node).filter(|&i| initializers.contains_key(&node.input[i]));
            match weight {
                Some(w) => {
                    // A weight several matmuls share (tied embeddings) is rounded or quantized
                    // once, so that its quantized initializer is not written twice.
                    let name = match weights_done.get(&node.input[w]) {
                        Some(done) => done.clone(),
                        None => {
                            let tensor = &initializers[&node.input[w]];
                            let (name, rounded) =
                                emit_weight(&mut emit, &node, w, tensor, policy.matmul.weights)?;
                            rounded_weights.extend(rounded);
                            weights_done.insert(node.input[w].clone(), name.clone());
                            name
                        }
                    };
                    node.input[w] = name;
                    let matmul = policy.matmul;
                    if matches!(matmul.weights.recipe, Recipe::Group { .. })
                        && matmul.activations.recipe == Recipe::Cast
                    {
                        // Weight-only groups dequantize into the activations' format.
                        node.input[w] =
                            emit.store(node.input[w].clone(), matmul.activations.format)?;
                    }
                    if floats.contains(&original.input[0]) {
                        node.input[0] = match matmul.activations.recipe {
                            Recipe::Delayed { .. } => {
                                let amax =
                                    calibration.amax(&original.input[0]).ok_or_else(|| {
                                        ExportError::Unsupported(format!(
                                            "the activation `{}` of node `{}` scaled from earlier \
                                         calls ({}) without a calibration",
                                            original.input[0], original.name, matmul.activations
                                        ))
                                    })?;
                                emit.quantize_activation_static(
                                    &node.input[0],
                                    matmul.activations,
                                    amax,
                                )?
                            }
                            _ => {
                                emit.quantize_activation(&node.input[0], matmul.activations, None)?
                            }
                        };
                    }
                }
                // A product of two activations: operands in the default format, as attention's
                // own products in precheck's blocks.
                None => {
                    for input in node.input.iter_mut().take(2) {
                        if floats.contains(input) {
                            *input = emit.store(input.clone(), policy.default)?;
                        }
                    }
                }
            }
        }
        nodes.append(&mut emit.nodes);
        // Outputs held in the class's format, then the output format where they leave the graph.
        let class_format = match class {
            OpClass::Matmul => Some(policy.matmul.output),
            OpClass::Softmax => Some(policy.softmax),
            OpClass::Norm => Some(policy.norm),
            OpClass::Activation => Some(policy.activation),
            OpClass::Default => Some(policy.default),
            OpClass::DataMovement => None,
        };
        let mut tails = Vec::new();
        for output in node.output.iter_mut() {
            if output.is_empty() || !floats.contains(output) || fused.inside.contains(output) {
                continue;
            }
            let mut formats: Vec<Format> = class_format.into_iter().collect();
            if outputs.contains(output.as_str()) {
                formats.push(policy.output);
            }
            formats.retain(|&f| f != Format::Fp32);
            if formats.is_empty() {
                continue;
            }
            let name = output.clone();
            let unrounded = format!("{name}_precheck_unrounded");
            *output = unrounded.clone();
            let mut value = unrounded;
            for (i, &format) in formats.iter().enumerate() {
                value = if i + 1 == formats.len() {
                    emit.store_as(value, format, &name)?
                } else {
                    emit.store(value, format)?
                };
            }
            tails.append(&mut emit.nodes);
        }
        nodes.push(node);
        nodes.append(&mut tails);
    }
    graph.node = nodes;
    // Weights rounded in place keep their names; quantized ones are new initializers.
    for weight in rounded_weights {
        if let Some(slot) = graph.initializer.iter_mut().find(|t| t.name == weight.name) {
            *slot = weight;
        }
    }
    graph.initializer.append(&mut emit.initializers);
    // A weight quantized into a new initializer leaves its float original unread.
    let mut read: HashSet<String> = HashSet::new();
    read_values(graph, &mut read);
    graph.initializer.retain(|t| read.contains(&t.name));
    Ok(rewritten)
}

/// Every value a node of `graph` or of its subgraphs reads, and the graph's outputs.
fn read_values(graph: &GraphProto, read: &mut HashSet<String>) {
    read.extend(graph.output.iter().map(|o| o.name.clone()));
    for node in &graph.node {
        read.extend(node.input.iter().cloned());
        for attribute in &node.attribute {
            for body in attribute.g.iter().chain(&attribute.graphs) {
                read_values(body, read);
            }
        }
    }
}

/// `model` with the weights and biases of its matmul-class nodes rounded to `format`, in place:
/// a user's model defined in the suite's reference precision, as a BF16 checkpoint is.
pub fn hold_weights(model: &mut ModelProto, format: Format) -> Result<(), ExportError> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(());
    };
    let held: HashSet<String> = graph
        .node
        .iter()
        .filter(|node| op_class(&node.op_type) == OpClass::Matmul)
        .flat_map(|node| node.input.iter().skip(1).cloned())
        .collect();
    for tensor in graph
        .initializer
        .iter_mut()
        .filter(|t| held.contains(&t.name) && t.data_type == DataType::Float as i32)
    {
        let mut values = float_values(tensor)?;
        format.round_slice(&mut values);
        let dims: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
        *tensor = super::emit::tensor(&tensor.name, DataType::Float, &dims, f32_bytes(&values));
    }
    Ok(())
}

/// A value along the graph that is compared between reference and variant: a node's float
/// output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The value's name (kept by the rewrite).
    pub value: String,
    /// The node that computes it (its name, or `#N`, its place in the graph, when it has none).
    pub node: String,
    /// The node's operator.
    pub op_type: String,
}

/// The values `localize` compares along `model`, in graph (topological) order: the first float
/// output of each matmul-class node, or of every node but constants; the graph's outputs are
/// compared as outputs.
pub fn marks(model: &ModelProto, localize: Localize) -> Vec<Mark> {
    let Some(graph) = model.graph.as_ref() else {
        return Vec::new();
    };
    let floats = FloatValues::infer(graph);
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, node)| match localize {
            Localize::Off => false,
            Localize::Matmul => op_class(&node.op_type) == OpClass::Matmul,
            Localize::All => !matches!(node.op_type.as_str(), "Constant" | "ConstantOfShape"),
        })
        .filter_map(|(index, node)| {
            let value = node.output.first()?;
            (floats.contains(value) && !outputs.contains(value.as_str())).then(|| Mark {
                value: value.clone(),
                node: if node.name.is_empty() {
                    format!("#{index}")
                } else {
                    node.name.clone()
                },
                op_type: node.op_type.clone(),
            })
        })
        .collect()
}

/// `values` added to `model`'s outputs (as FP32: the rewrite holds every marked value there).
pub fn mark(model: &mut ModelProto, values: &[String]) {
    if let Some(graph) = model.graph.as_mut() {
        for value in values {
            graph.output.push(ValueInfoProto::float_of_any_shape(value));
        }
    }
}

/// Fails on what ONNX at `opset` cannot say of `policy`.
fn check_expressible(policy: &Policy, opset: i64) -> Result<(), ExportError> {
    let classes = [
        policy.default,
        policy.activation,
        policy.softmax,
        policy.norm,
        policy.output,
        policy.matmul.output,
    ];
    if let Some(format) = classes
        .into_iter()
        .find(|f| !matches!(f, Format::Fp32 | Format::Bf16 | Format::Fp16))
    {
        return Err(ExportError::Unsupported(format!(
            "tensors held in {format} (ONNX has no such type)"
        )));
    }
    let (weights, activations) = (policy.matmul.weights, policy.matmul.activations);
    let inexpressible = matches!(weights.recipe, Recipe::Mx | Recipe::Nvfp4)
        || !matches!(
            activations.recipe,
            Recipe::Cast | Recipe::PerTensor | Recipe::PerToken | Recipe::Delayed { .. }
        );
    if inexpressible {
        return Err(ExportError::Unsupported(format!(
            "the operand recipes {weights} × {activations}"
        )));
    }
    for spec in [weights, activations] {
        let needs = match (spec.recipe, spec.format) {
            (Recipe::Cast, Format::Tf32) => {
                return Err(ExportError::Unsupported(
                    "TF32 (a math mode, not a type: trtexec's --tf32 builds it)".into(),
                ))
            }
            (Recipe::Cast, _) => 13,
            (Recipe::Group { .. }, _) => 21,
            (_, Format::Fp8E4m3 | Format::Fp8E5m2) => 19,
            (_, Format::Int4) => 21,
            _ => 13,
        };
        if opset < needs {
            return Err(ExportError::Unsupported(format!(
                "the operand recipe {spec} at the model's opset {opset} (it needs opset {needs}; re-export the model at a newer opset)"
            )));
        }
    }
    Ok(())
}

/// The input of a matmul-class node that holds its weight, if the operator has one.
fn weight_input(node: &NodeProto) -> Option<usize> {
    match node.op_type.as_str() {
        "MatMul" | "Gemm" | "Conv" | "ConvTranspose" => Some(1),
        _ => None,
    }
}

/// The axis of a weight that indexes output channels: what per-channel scales run along.
fn channel_axis(node: &NodeProto, rank: usize) -> usize {
    match node.op_type.as_str() {
        "Gemm" if attribute_int(node, "transB") == Some(1) => 0,
        "Gemm" | "MatMul" => rank - 1,
        "ConvTranspose" => 1,
        _ => 0,
    }
}

/// The weight input `index` of `node` as `spec` says: rounded in place (returned to replace the
/// initializer) or quantized into new initializers and dequantized in the graph.
fn emit_weight(
    emit: &mut Emitter,
    node: &NodeProto,
    index: usize,
    tensor: &TensorProto,
    spec: QuantSpec,
) -> Result<(String, Option<TensorProto>), ExportError> {
    let name = node.input[index].clone();
    let values = float_values(tensor)?;
    let dims: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
    if spec.recipe == Recipe::Cast {
        let mut rounded = values;
        spec.format.round_slice(&mut rounded);
        let mut replaced = tensor.clone();
        replaced.float_data.clear();
        replaced.raw_data = f32_bytes(&rounded);
        return Ok((name, Some(replaced)));
    }
    let axis = channel_axis(node, dims.len().max(1));
    // Channels as rows: the layout precheck's recipes scale along.
    let channels = dims.get(axis).copied().unwrap_or(1);
    let rows = Tensor::new(
        channels,
        values.len() / channels.max(1),
        channel_major(&values, &dims, axis),
    );
    let quantized = emit.weight(&name, &rows, spec, axis, &dims)?;
    Ok((quantized, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_fall_into_the_policy_classes() {
        assert_eq!(op_class("Conv"), OpClass::Matmul);
        assert_eq!(op_class("LogSoftmax"), OpClass::Softmax);
        assert_eq!(op_class("LayerNormalization"), OpClass::Norm);
        assert_eq!(op_class("HardSwish"), OpClass::Activation);
        assert_eq!(op_class("Reshape"), OpClass::DataMovement);
        assert_eq!(op_class("Add"), OpClass::Default);
        assert_eq!(op_class("SomeCustomOp"), OpClass::Default);
    }

    #[test]
    fn a_layer_norm_written_out_is_held_as_one_norm() {
        use super::super::emit::{f32_bytes, node, tensor};
        use crate::onnx_proto::{OperatorSetIdProto, ValueInfoProto};
        let scalar = |name: &str, v: f32| tensor(name, DataType::Float, &[], f32_bytes(&[v]));
        let graph = GraphProto {
            input: vec![ValueInfoProto::float("x", &[2, 8])],
            output: vec![ValueInfoProto::float("y", &[2, 8])],
            initializer: vec![
                scalar("two", 2.0),
                scalar("eps", 1e-5),
                scalar("gamma", 1.5),
            ],
            node: vec![
                node("ReduceMean", &["x"], "mean", vec![]),
                node("Sub", &["x", "mean"], "d", vec![]),
                node("Pow", &["d", "two"], "square", vec![]),
                node("ReduceMean", &["square"], "variance", vec![]),
                node("Add", &["eps", "variance"], "shifted", vec![]),
                node("Sqrt", &["shifted"], "std", vec![]),
                node("Div", &["d", "std"], "normed", vec![]),
                node("Mul", &["normed", "gamma"], "y", vec![]),
            ],
            ..Default::default()
        };
        let model = ModelProto {
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 21,
            }],
            graph: Some(graph),
            ..Default::default()
        };
        // Everything in BF16 but the norms, in FP32: the norm's inside is never rounded, its
        // output stays FP32, and the scale after it is a default-class operation again.
        let mut policy = crate::precision::presets::preset("bf16").unwrap();
        policy.norm = Format::Fp32;
        policy.output = Format::Fp32;
        let graph = rewrite(&model, &policy, &Calibration::default())
            .unwrap()
            .graph
            .unwrap();
        let rounded: Vec<&str> = graph
            .node
            .iter()
            .flat_map(|n| &n.output)
            .filter_map(|o| o.strip_suffix("_precheck_unrounded"))
            .collect();
        assert_eq!(rounded, ["y"]);
    }

    #[test]
    fn a_weight_two_matmuls_share_is_quantized_once() {
        use super::super::emit::{f32_bytes, node, tensor};
        use crate::onnx_proto::{OperatorSetIdProto, ValueInfoProto};
        let graph = GraphProto {
            input: vec![ValueInfoProto::float("x", &[2, 4])],
            output: vec![ValueInfoProto::float("y", &[2, 3])],
            initializer: vec![tensor("w", DataType::Float, &[4, 3], f32_bytes(&[0.5; 12]))],
            node: vec![
                node("MatMul", &["x", "w"], "a", vec![]),
                node("MatMul", &["x", "w"], "b", vec![]),
                node("Add", &["a", "b"], "y", vec![]),
            ],
            ..Default::default()
        };
        let model = ModelProto {
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 21,
            }],
            graph: Some(graph),
            ..Default::default()
        };
        let policy = crate::precision::presets::preset("int8").unwrap();
        let graph = rewrite(&model, &policy, &Calibration::default())
            .unwrap()
            .graph
            .unwrap();
        let mut names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "w.quantized").count(), 1);
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "initializer names are unique");
    }
}
