//! A block and a precision policy as an ONNX model (opset 21), so that every engine can run the
//! computation precheck measures: ONNX Runtime through the command backend, TensorRT through
//! `trtexec`.
//!
//! The graph computes in FP32 and holds the policy's precision the way a QDQ model does:
//! - a tensor the policy stores in BF16 or FP16 passes through a `Cast` to that type and back
//!   (round to nearest even, as precheck's emulation rounds);
//! - a matmul operand with a scaling recipe passes through `QuantizeLinear` → `DequantizeLinear`:
//!   weights are quantized here, once, with precheck's own recipes (the codes are initializers of
//!   the format's ONNX type: INT8, INT4, FLOAT8E4M3FN, FLOAT8E5M2), activations on every call,
//!   with the scale computed in the graph from their amax (per tensor, or per token along axis 0);
//! - the other operations are ONNX's own (`Gemm`, `Gelu`, `LayerNormalization`, `Softmax`) or
//!   short decompositions (SiLU, RMSNorm, rotary embedding, grouped-query attention).
//!
//! What opset 21 cannot say is an [`ExportError`]: TF32 (no such type), MX and NVFP4 block
//! scales and FP4/FP6 elements (opset 23), NF4 (no type), delayed scaling (its amax history is
//! state across calls, which an ONNX graph does not have).

use prost::Message;
use thiserror::Error;

use crate::formats::minifloat::{FP8_E4M3, FP8_E5M2};
use crate::formats::{Format, Overflow};
use crate::model::forward::rotary_tables;
use crate::model::graph::{Graph, Op};
use crate::model::Activation;
use crate::model::{Block, Model, Weights};
use crate::onnx_proto::{
    AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, ValueInfoProto,
};
use crate::precision::Policy;
use crate::quant::{self, AmaxHistory, QuantSpec, Recipe};
use crate::tensor::Tensor;
use crate::trtexec::flags::ClassLayers;

/// Why a block or policy has no ONNX form.
#[derive(Debug, Error, PartialEq)]
pub enum ExportError {
    /// Something the policy asks for that opset 21 cannot express.
    #[error("ONNX opset 21 cannot express {0}")]
    Unsupported(String),
    /// An ONNX model file that cannot be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// The name of the exported graph's input, `[tokens, input features]`, FP32.
pub const INPUT: &str = "input";
/// The name of its output, `[tokens, output features]`, FP32.
pub const OUTPUT: &str = "output";

/// An exported model.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The serialized ONNX `ModelProto`.
    pub model: Vec<u8>,
    /// Its nodes of the classes a policy can hold apart (softmax, norms, activations), by the
    /// names TensorRT gives their layers: what `--layerPrecisions` pins.
    pub layers: ClassLayers,
    /// The graph's input: `input` for exported blocks.
    pub input: String,
    /// The graph's output: `output` for exported blocks.
    pub output: String,
}

/// What [`write_files`] did with one policy.
#[derive(Debug)]
pub enum Written {
    /// The model in this policy, written to this file.
    File(std::path::PathBuf),
    /// The policy has no ONNX form: its name and why.
    Skipped(String, ExportError),
}

/// Writes `model` in each of `policies` as `out/<model>/<policy>.onnx`; a policy ONNX cannot
/// express is skipped, saying why. Fails only when a file cannot be written.
pub fn write_files(
    model: &Model,
    weights: &Weights,
    policies: &[&Policy],
    out: &std::path::Path,
) -> std::io::Result<Vec<Written>> {
    let folder = out.join(model.name.as_str());
    let mut written = Vec::with_capacity(policies.len());
    for policy in policies {
        match onnx(model, weights, policy) {
            Ok(exported) => {
                let file = folder.join(format!("{}.onnx", policy.name));
                std::fs::create_dir_all(&folder)
                    .and_then(|()| std::fs::write(&file, exported.model))
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("writing {}: {e}", file.display()))
                    })?;
                written.push(Written::File(file));
            }
            Err(why) => written.push(Written::Skipped(policy.name.clone(), why)),
        }
    }
    Ok(written)
}

/// `model` with `weights`, computing as `policy` says, as an ONNX model; a model that is an ONNX
/// file already is that file, as it is (the policy reaches its engine as build flags).
pub fn onnx(model: &Model, weights: &Weights, policy: &Policy) -> Result<Exported, ExportError> {
    if let Block::Onnx(file) = &model.block {
        let bytes = std::fs::read(&file.path).map_err(|e| ExportError::Read {
            path: file.path.display().to_string(),
            message: e.to_string(),
        })?;
        return Ok(Exported {
            model: bytes,
            layers: ClassLayers::default(),
            input: file.input.clone(),
            output: file.output.clone(),
        });
    }
    let graph = model.block.graph();
    let mut lowering = Lowering::new(policy, weights, model.tokens);
    let output = lowering.graph(&graph)?;
    // The output is a value of the graph; name it as the interface says.
    lowering
        .nodes
        .push(node("Identity", &[&output], OUTPUT, vec![]));
    let layers = std::mem::take(&mut lowering.layers);
    let proto = ModelProto {
        ir_version: crate::onnx_proto::IR_VERSION,
        producer_name: "precheck".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("{} in {}: {policy}", model.name, policy.name),
        graph: Some(GraphProto {
            node: lowering.nodes,
            name: format!("{}_{}", model.name, policy.name),
            initializer: lowering.initializers,
            input: vec![ValueInfoProto::float(
                INPUT,
                &[model.tokens, graph.input_features],
            )],
            output: vec![ValueInfoProto::float(
                OUTPUT,
                &[model.tokens, graph.output_features()],
            )],
            ..Default::default()
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: crate::onnx_proto::OPSET,
        }],
        ..Default::default()
    };
    let mut bytes = Vec::new();
    proto
        .encode(&mut bytes)
        .expect("a Vec grows to any message");
    Ok(Exported {
        model: bytes,
        layers,
        input: INPUT.to_owned(),
        output: OUTPUT.to_owned(),
    })
}

/// An ONNX node with one output.
fn node(op_type: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_owned()],
        name: output.to_owned(),
        op_type: op_type.to_owned(),
        attribute,
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: Some(value),
        r#type: AttributeType::Int as i32,
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: Some(value),
        r#type: AttributeType::Float as i32,
        ..Default::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: Some(value.as_bytes().to_vec()),
        r#type: AttributeType::String as i32,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.to_vec(),
        r#type: AttributeType::Ints as i32,
        ..Default::default()
    }
}

/// A tensor initializer.
fn tensor(name: &str, data_type: DataType, dims: &[usize], raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        name: name.to_owned(),
        raw_data,
        ..Default::default()
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The ONNX type of a quantized format, and how one code is written.
fn quantized_type(format: Format) -> Result<DataType, ExportError> {
    match format {
        Format::Int8 => Ok(DataType::Int8),
        Format::Int4 => Ok(DataType::Int4),
        Format::Fp8E4m3 => Ok(DataType::Float8E4m3fn),
        Format::Fp8E5m2 => Ok(DataType::Float8E5m2),
        other => Err(ExportError::Unsupported(format!(
            "{other} quantized operands"
        ))),
    }
}

/// `codes` (values of `format`) as the raw bytes of its ONNX type.
fn code_bytes(format: Format, codes: &[f32]) -> Vec<u8> {
    match format {
        Format::Int8 => codes.iter().map(|&c| c as i8 as u8).collect(),
        // Two per byte, the first in the low nibble.
        Format::Int4 => codes
            .chunks(2)
            .map(|pair| {
                let nibble = |c: f32| (c as i8 as u8) & 0x0f;
                nibble(pair[0]) | pair.get(1).map_or(0, |&c| nibble(c) << 4)
            })
            .collect(),
        Format::Fp8E4m3 => codes
            .iter()
            .map(|&c| FP8_E4M3.encode(c, Overflow::Saturate))
            .collect(),
        Format::Fp8E5m2 => codes
            .iter()
            .map(|&c| FP8_E5M2.encode(c, Overflow::Saturate))
            .collect(),
        _ => unreachable!("quantized_type admits only these"),
    }
}

/// Zero points of `format` for `count` scales (all zero: precheck's recipes are symmetric).
fn zero_bytes(format: Format, count: usize) -> Vec<u8> {
    code_bytes(format, &vec![0.0; count])
}

/// Builds the ONNX graph: nodes and initializers, names made unique by a counter.
struct Lowering<'a> {
    policy: &'a Policy,
    weights: &'a Weights,
    tokens: usize,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: usize,
    layers: ClassLayers,
}

impl<'a> Lowering<'a> {
    fn new(policy: &'a Policy, weights: &'a Weights, tokens: usize) -> Self {
        Lowering {
            policy,
            weights,
            tokens,
            nodes: Vec::new(),
            initializers: Vec::new(),
            names: 0,
            layers: ClassLayers::default(),
        }
    }

    /// Runs `lower`, and names the nodes it adds (casts aside: they are stores) as layers of the
    /// class `class` picks.
    fn in_class(
        &mut self,
        class: fn(&mut ClassLayers) -> &mut Vec<String>,
        lower: impl FnOnce(&mut Self) -> String,
    ) -> String {
        let start = self.nodes.len();
        let output = lower(self);
        let names: Vec<String> = self.nodes[start..]
            .iter()
            .filter(|node| node.op_type != "Cast")
            .map(|node| node.name.clone())
            .collect();
        class(&mut self.layers).extend(names);
        output
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.names += 1;
        format!("{hint}_{}", self.names)
    }

    /// Appends a node and returns its output's name.
    fn op(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh(&op_type.to_ascii_lowercase());
        self.nodes.push(node(op_type, inputs, &output, attribute));
        output
    }

    fn constant(
        &mut self,
        hint: &str,
        data_type: DataType,
        dims: &[usize],
        raw: Vec<u8>,
    ) -> String {
        let name = self.fresh(hint);
        self.initializers.push(tensor(&name, data_type, dims, raw));
        name
    }

    fn scalar(&mut self, value: f32) -> String {
        self.constant("const", DataType::Float, &[], f32_bytes(&[value]))
    }

    fn shape(&mut self, dims: &[i64]) -> String {
        let raw = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
        self.constant("shape", DataType::Int64, &[dims.len()], raw)
    }

    fn reshape(&mut self, x: &str, dims: &[i64]) -> String {
        let shape = self.shape(dims);
        self.op("Reshape", &[x, &shape], vec![])
    }

    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op("Transpose", &[x], vec![ints("perm", perm)])
    }

    /// A parameter that is not a matmul weight, FP32 as held in the reference precision.
    fn parameter(&mut self, name: &str) -> String {
        if !self.initializers.iter().any(|t| t.name == name) {
            let t = self.weights.get(name);
            let dims = [t.data.len()];
            self.initializers
                .push(tensor(name, DataType::Float, &dims, f32_bytes(&t.data)));
        }
        name.to_owned()
    }

    /// `x` held in `format`: a cast there and back, or nothing for FP32.
    fn store(&mut self, x: String, format: Format) -> Result<String, ExportError> {
        let to = match format {
            Format::Fp32 => return Ok(x),
            Format::Bf16 => DataType::Bfloat16,
            Format::Fp16 => DataType::Float16,
            other => {
                return Err(ExportError::Unsupported(format!(
                    "rounding tensors to {other} (no such type)"
                )))
            }
        };
        let low = self.op("Cast", &[&x], vec![int("to", to as i64)]);
        Ok(self.op("Cast", &[&low], vec![int("to", DataType::Float as i64)]))
    }

    /// Lowers every node; returns the name of the stored output.
    fn graph(&mut self, graph: &Graph) -> Result<String, ExportError> {
        let mut values: Vec<String> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let arg = |i: usize| values[node.inputs[i].0].clone();
            let output = match &node.op {
                Op::Input => self.store(INPUT.to_owned(), self.policy.default)?,
                Op::Linear { weight, bias } => {
                    let shape = graph.param(weight).shape.clone();
                    self.linear(&arg(0), weight, &shape, bias.as_deref())?
                }
                Op::Activation(activation) => {
                    let y = self.in_class(
                        |c| &mut c.activation,
                        |l| l.activation(&arg(0), *activation),
                    );
                    self.store(y, self.policy.activation)?
                }
                Op::Add | Op::Mul => {
                    let op_type = if node.op == Op::Add { "Add" } else { "Mul" };
                    let y = self.op(op_type, &[&arg(0), &arg(1)], vec![]);
                    self.store(y, self.policy.default)?
                }
                Op::LayerNorm { weight, bias, eps } => {
                    let (w, b) = (self.parameter(weight), self.parameter(bias));
                    let attributes = vec![int("axis", -1), float("epsilon", *eps as f32)];
                    let y = self.in_class(
                        |c| &mut c.norm,
                        |l| l.op("LayerNormalization", &[&arg(0), &w, &b], attributes),
                    );
                    self.store(y, self.policy.norm)?
                }
                Op::RmsNorm { weight, eps } => {
                    let y = self.in_class(|c| &mut c.norm, |l| l.rms_norm(&arg(0), weight, *eps));
                    self.store(y, self.policy.norm)?
                }
                Op::Rotary { head_dim, theta } => {
                    let heads = graph.features(node.inputs[0]) / head_dim;
                    let y = self.rotary(&arg(0), heads, *head_dim, *theta);
                    self.store(y, self.policy.default)?
                }
                Op::Attention {
                    heads,
                    kv_heads,
                    head_dim,
                    causal,
                } => {
                    let layout = Heads {
                        heads: *heads,
                        kv_heads: *kv_heads,
                        head_dim: *head_dim,
                        causal: *causal,
                    };
                    self.attention([&arg(0), &arg(1), &arg(2)], layout)?
                }
                Op::External { .. } => unreachable!("ONNX files are exported as they are"),
            };
            values.push(output);
        }
        let output = values[graph.output.0].clone();
        self.store(output, self.policy.output)
    }

    /// `x · Wᵀ (+ b)` with both operands as the policy's matmul recipes say, stored in the
    /// matmul's output format.
    fn linear(
        &mut self,
        x: &str,
        weight: &str,
        shape: &[usize],
        bias: Option<&str>,
    ) -> Result<String, ExportError> {
        let matmul = self.policy.matmul;
        let x = self.quantize_activation(x, matmul.activations)?;
        let mut w = self.weight(weight, shape, matmul.weights)?;
        if matches!(matmul.weights.recipe, Recipe::Group { .. })
            && matmul.activations.recipe == Recipe::Cast
        {
            // Weight-only groups dequantize into the activations' format (as the CPU backend).
            w = self.store(w, matmul.activations.format)?;
        }
        let mut inputs = vec![x.as_str(), w.as_str()];
        let bias = bias.map(|b| self.parameter(b));
        inputs.extend(bias.as_deref());
        let y = self.op("Gemm", &inputs, vec![int("transB", 1)]);
        self.store(y, matmul.output)
    }

    /// A matmul weight `[out, in]` quantized as `spec` says, dequantized in the graph.
    fn weight(
        &mut self,
        name: &str,
        shape: &[usize],
        spec: QuantSpec,
    ) -> Result<String, ExportError> {
        let (rows, cols) = (shape[0], shape.get(1).copied().unwrap_or(1));
        let tensor = Tensor::new(rows, cols, self.weights.get(name).data.clone());
        match spec.recipe {
            Recipe::Cast => {
                let mut values = tensor.data;
                spec.format.round_slice(&mut values);
                let raw = f32_bytes(&values);
                self.initializers
                    .push(self::tensor(name, DataType::Float, &[rows, cols], raw));
                Ok(name.to_owned())
            }
            Recipe::PerTensor | Recipe::PerChannel | Recipe::PerToken => {
                let operand = quant::quantize(&tensor, spec, &mut AmaxHistory::default());
                let scales = operand.row_scales.expect("scaled recipes keep row scales");
                let quantized =
                    self.quantized(name, spec.format, &[rows, cols], &operand.values.data)?;
                if spec.recipe == Recipe::PerTensor {
                    self.dequantize(&quantized, spec.format, &scales[..1], &[], vec![])
                } else {
                    self.dequantize(
                        &quantized,
                        spec.format,
                        &scales,
                        &[rows],
                        vec![int("axis", 0)],
                    )
                }
            }
            Recipe::Group { size } => {
                // The codes and scales of precheck's group recipe, kept apart for a blocked
                // DequantizeLinear (the CPU backend folds them together).
                let mut scales = Vec::with_capacity(rows * cols.div_ceil(size));
                let mut codes = Vec::with_capacity(rows * cols);
                for group in tensor.data.chunks(cols).flat_map(|row| row.chunks(size)) {
                    let scale = quant::scale_for(quant::amax(group), spec.format);
                    scales.push(scale);
                    codes.extend(
                        group
                            .iter()
                            .map(|v| spec.format.round(v / scale, Overflow::Saturate)),
                    );
                }
                let quantized = self.quantized(name, spec.format, &[rows, cols], &codes)?;
                let blocks = vec![int("axis", 1), int("block_size", size as i64)];
                self.dequantize(
                    &quantized,
                    spec.format,
                    &scales,
                    &[rows, cols.div_ceil(size)],
                    blocks,
                )
            }
            Recipe::Mx | Recipe::Nvfp4 | Recipe::Delayed { .. } => Err(unsupported_recipe(spec)),
        }
    }

    /// An initializer of quantized codes, named after the weight.
    fn quantized(
        &mut self,
        name: &str,
        format: Format,
        dims: &[usize],
        codes: &[f32],
    ) -> Result<String, ExportError> {
        let data_type = quantized_type(format)?;
        let name = format!("{name}.quantized");
        self.initializers
            .push(tensor(&name, data_type, dims, code_bytes(format, codes)));
        Ok(name)
    }

    /// `DequantizeLinear` of `quantized` with constant `scales` of shape `dims`.
    fn dequantize(
        &mut self,
        quantized: &str,
        format: Format,
        scales: &[f32],
        dims: &[usize],
        attributes: Vec<AttributeProto>,
    ) -> Result<String, ExportError> {
        let data_type = quantized_type(format)?;
        let scale = self.constant("scale", DataType::Float, dims, f32_bytes(scales));
        let zero = self.constant("zero", data_type, dims, zero_bytes(format, scales.len()));
        Ok(self.op("DequantizeLinear", &[quantized, &scale, &zero], attributes))
    }

    /// An activation quantized as `spec` says on every call: the scale from its amax in the graph,
    /// 1 where the amax is 0 (as precheck's recipes).
    fn quantize_activation(&mut self, x: &str, spec: QuantSpec) -> Result<String, ExportError> {
        let (reduce, attributes) = match spec.recipe {
            Recipe::Cast => return self.store(x.to_owned(), spec.format),
            Recipe::PerTensor => (vec![int("keepdims", 0)], vec![]),
            Recipe::PerToken | Recipe::PerChannel => {
                (vec![int("keepdims", 0)], vec![int("axis", 0)])
            }
            Recipe::Mx | Recipe::Nvfp4 | Recipe::Group { .. } | Recipe::Delayed { .. } => {
                return Err(unsupported_recipe(spec))
            }
        };
        let data_type = quantized_type(spec.format)?;
        let magnitude = self.op("Abs", &[x], vec![]);
        let amax = if spec.recipe == Recipe::PerTensor {
            self.op("ReduceMax", &[&magnitude], reduce)
        } else {
            let axes = self.shape(&[1]);
            self.op("ReduceMax", &[&magnitude, &axes], reduce)
        };
        let format_max = self.scalar(spec.format.max_value());
        let (zero, one) = (self.scalar(0.0), self.scalar(1.0));
        let scaled = self.op("Div", &[&amax, &format_max], vec![]);
        let is_zero = self.op("Equal", &[&amax, &zero], vec![]);
        let scale = self.op("Where", &[&is_zero, &one, &scaled], vec![]);
        let zero_dims: Vec<usize> = if spec.recipe == Recipe::PerTensor {
            vec![]
        } else {
            vec![self.tokens]
        };
        let count = zero_dims.iter().product();
        let zero_point = self.constant(
            "zero",
            data_type,
            &zero_dims,
            zero_bytes(spec.format, count),
        );
        let q = self.op(
            "QuantizeLinear",
            &[x, &scale, &zero_point],
            attributes.clone(),
        );
        Ok(self.op("DequantizeLinear", &[&q, &scale, &zero_point], attributes))
    }

    fn activation(&mut self, x: &str, activation: Activation) -> String {
        match activation {
            Activation::Silu => {
                let sigmoid = self.op("Sigmoid", &[x], vec![]);
                self.op("Mul", &[x, &sigmoid], vec![])
            }
            Activation::GeluTanh => self.op("Gelu", &[x], vec![string("approximate", "tanh")]),
            Activation::Gelu => self.op("Gelu", &[x], vec![string("approximate", "none")]),
            Activation::Relu => self.op("Relu", &[x], vec![]),
        }
    }

    /// `x / sqrt(mean(x²) + eps) · weight`.
    fn rms_norm(&mut self, x: &str, weight: &str, eps: f64) -> String {
        let w = self.parameter(weight);
        let square = self.op("Mul", &[x, x], vec![]);
        let axes = self.shape(&[-1]);
        let mean = self.op("ReduceMean", &[&square, &axes], vec![int("keepdims", 1)]);
        let eps = self.scalar(eps as f32);
        let shifted = self.op("Add", &[&mean, &eps], vec![]);
        let root = self.op("Sqrt", &[&shifted], vec![]);
        let inverse = self.op("Reciprocal", &[&root], vec![]);
        let normed = self.op("Mul", &[x, &inverse], vec![]);
        self.op("Mul", &[&normed, &w], vec![])
    }

    /// Rotary embedding ("rotate half") of each head at positions `0..tokens`: the angle tables
    /// are initializers computed as precheck's forward pass computes them (f64, then f32).
    fn rotary(&mut self, x: &str, heads: usize, head_dim: usize, theta: f64) -> String {
        let half = head_dim / 2;
        let (cos, sin) = rotary_tables(self.tokens, head_dim, theta);
        let dims = [self.tokens, 1, half];
        let cos = self.constant("rotary_cos", DataType::Float, &dims, f32_bytes(&cos));
        let sin = self.constant("rotary_sin", DataType::Float, &dims, f32_bytes(&sin));
        let (t, h, d) = (self.tokens as i64, heads as i64, head_dim as i64);
        let x3 = self.reshape(x, &[t, h, d]);
        let split = self.shape(&[half as i64, half as i64]);
        let first = self.fresh("rotary_first");
        let second = self.fresh("rotary_second");
        self.nodes.push(NodeProto {
            input: vec![x3, split],
            output: vec![first.clone(), second.clone()],
            name: first.clone(),
            op_type: "Split".into(),
            attribute: vec![int("axis", 2)],
            ..Default::default()
        });
        let first_cos = self.op("Mul", &[&first, &cos], vec![]);
        let second_sin = self.op("Mul", &[&second, &sin], vec![]);
        let a = self.op("Sub", &[&first_cos, &second_sin], vec![]);
        let second_cos = self.op("Mul", &[&second, &cos], vec![]);
        let first_sin = self.op("Mul", &[&first, &sin], vec![]);
        let b = self.op("Add", &[&second_cos, &first_sin], vec![]);
        let joined = self.op("Concat", &[&a, &b], vec![int("axis", 2)]);
        self.reshape(&joined, &[t, h * d])
    }

    /// Scaled dot-product attention with grouped heads: query heads `[T, H·D]` become
    /// `[KV, G·T, D]` (the `G` query heads of a key/value head stacked), so that one batched
    /// `MatMul` per product serves every head; stores as precheck's forward pass does.
    fn attention(&mut self, [q, k, v]: [&str; 3], layout: Heads) -> Result<String, ExportError> {
        let Heads {
            heads,
            kv_heads,
            head_dim,
            causal,
        } = layout;
        let (t, h, kv, d) = (
            self.tokens as i64,
            heads as i64,
            kv_heads as i64,
            head_dim as i64,
        );
        let group = h / kv;
        let q = self.reshape(q, &[t, h, d]);
        let q = self.transpose(&q, &[1, 0, 2]);
        let q = self.reshape(&q, &[kv, group * t, d]);
        let k = self.reshape(k, &[t, kv, d]);
        let k = self.transpose(&k, &[1, 2, 0]);
        let v = self.reshape(v, &[t, kv, d]);
        let v = self.transpose(&v, &[1, 0, 2]);
        let scores = self.op("MatMul", &[&q, &k], vec![]);
        let scale = self.scalar((1.0 / (head_dim as f64).sqrt()) as f32);
        let scores = self.op("Mul", &[&scores, &scale], vec![]);
        let mut scores = self.store(scores, self.policy.softmax)?;
        if causal {
            let mask = self.causal_mask(group as usize);
            scores = self.op("Add", &[&scores, &mask], vec![]);
        }
        let probabilities = self.in_class(
            |c| &mut c.softmax,
            |l| l.op("Softmax", &[&scores], vec![int("axis", -1)]),
        );
        let probabilities = self.store(probabilities, self.policy.softmax)?;
        let probabilities = self.store(probabilities, self.policy.default)?;
        let context = self.op("MatMul", &[&probabilities, &v], vec![]);
        let context = self.reshape(&context, &[h, t, d]);
        let context = self.transpose(&context, &[1, 0, 2]);
        let context = self.reshape(&context, &[t, h * d]);
        self.store(context, self.policy.default)
    }

    /// `[G·T, T]`: 0 where query row `i` (of each stacked head) may see key `j ≤ i`, −∞ beyond.
    fn causal_mask(&mut self, group: usize) -> String {
        let t = self.tokens;
        let mut mask = Vec::with_capacity(group * t * t);
        for _ in 0..group {
            for i in 0..t {
                mask.extend((0..t).map(|j| if j <= i { 0.0 } else { f32::NEG_INFINITY }));
            }
        }
        self.constant(
            "causal_mask",
            DataType::Float,
            &[group * t, t],
            f32_bytes(&mask),
        )
    }
}

/// An attention's head layout.
#[derive(Debug, Clone, Copy)]
struct Heads {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    causal: bool,
}

fn unsupported_recipe(spec: QuantSpec) -> ExportError {
    ExportError::Unsupported(format!("the operand recipe {spec}"))
}
