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

mod emit;
pub mod rewrite;

pub use rewrite::Calibration;
mod upgrade;

use prost::Message;
use thiserror::Error;

use crate::model::forward::rotary_tables;
use crate::model::graph::{Graph, Op};
use crate::model::onnx::OnnxModel;
use crate::model::Activation;
use crate::model::{Block, Model, Weights};
use crate::onnx_proto::{
    DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto,
};
use crate::precision::Policy;
use crate::quant::{QuantSpec, Recipe};
use crate::tensor::Tensor;
use crate::trtexec::flags::ClassLayers;
use emit::{f32_bytes, float, int, ints, node, string, tensor, Emitter};

/// Why a block or policy has no ONNX form.
#[derive(Debug, Error, PartialEq)]
pub enum ExportError {
    /// Something the policy asks for that opset 21 cannot express.
    #[error("ONNX opset 21 cannot express {0}")]
    Unsupported(String),
    /// A user's model that cannot be brought to opset 21 (an operator whose meaning changed in a
    /// way precheck does not rewrite).
    #[error("cannot bring the model to opset 21: {0}")]
    Upgrade(String),
    /// A model that breaks the ONNX format's own rules (data that does not fit its shape).
    #[error("malformed model: {0}")]
    Malformed(String),
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
        match onnx(model, weights, policy, Precision::InGraph) {
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

/// Where a policy's precision is said when a user's ONNX model reaches an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// In the graph: the model rewritten into the policy ([`rewrite`]), for engines that run what
    /// the graph says (ONNX Runtime, a command engine).
    InGraph,
    /// Outside it: the model as it is, the policy given to the engine's builder as flags
    /// (trtexec's `--fp16`, `--bf16`, `--int8`, `--fp8`).
    BuilderFlags,
}

/// `model` with `weights`, computing as `policy` says, as an ONNX model. precheck's own blocks
/// carry the policy in their graph either way; a user's ONNX model is rewritten into it or handed
/// as it is, as `precision` says.
pub fn onnx(
    model: &Model,
    weights: &Weights,
    policy: &Policy,
    precision: Precision,
) -> Result<Exported, ExportError> {
    if let Block::Onnx(onnx) = &model.block {
        let first = |ports: &[crate::model::onnx::Port]| {
            ports.first().map(|p| p.name.clone()).unwrap_or_default()
        };
        return Ok(Exported {
            model: user_model(onnx, policy, precision, &Calibration::default(), &[])?,
            layers: ClassLayers::default(),
            input: first(&onnx.file.inputs),
            output: first(&onnx.file.outputs),
        });
    }
    let graph = model.block.graph();
    let mut lowering = Lowering::new(policy, weights, model.tokens);
    let output = lowering.graph(&graph)?;
    // The output is a value of the graph; name it as the interface says.
    lowering
        .e
        .nodes
        .push(node("Identity", &[&output], OUTPUT, vec![]));
    let layers = std::mem::take(&mut lowering.layers);
    let proto = ModelProto {
        ir_version: crate::onnx_proto::IR_VERSION,
        producer_name: "precheck".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("{} in {}: {policy}", model.name, policy.name),
        graph: Some(GraphProto {
            node: lowering.e.nodes,
            name: format!("{}_{}", model.name, policy.name),
            initializer: lowering.e.initializers,
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

/// A user's ONNX model as an engine gets it for `policy`: rewritten into it at opset 21
/// ([`upgrade`], [`rewrite`]) with `marks` added to the graph's outputs (the values compared
/// along the graph), or as it is for an engine's builder flags.
pub fn user_model(
    model: &OnnxModel,
    policy: &Policy,
    precision: Precision,
    calibration: &Calibration,
    marks: &[String],
) -> Result<Vec<u8>, ExportError> {
    let decoded = read_user_model(&model.file.path)?;
    if precision == Precision::BuilderFlags {
        // As it is, but for its weights held in the reference precision.
        let mut held = decoded;
        rewrite::hold_weights(&mut held, model.held)?;
        return Ok(held.encode_to_vec());
    }
    let mut held = upgrade::to_current_opset(&decoded)?;
    rewrite::hold_weights(&mut held, model.held)?;
    let mut rewritten = rewrite::rewrite(&held, policy, calibration)?;
    rewrite::mark(&mut rewritten, marks);
    Ok(rewritten.encode_to_vec())
}

/// The activations of a user's model that a static calibration measures.
pub fn calibrated_values(model: &OnnxModel) -> Result<Vec<String>, ExportError> {
    let upgraded = upgrade::to_current_opset(&read_user_model(&model.file.path)?)?;
    Ok(rewrite::calibrated_values(&upgraded))
}

/// The values along a user's model that `localize` compares, in graph order.
pub fn localized_values(model: &OnnxModel) -> Result<Vec<rewrite::Mark>, ExportError> {
    let upgraded = upgrade::to_current_opset(&read_user_model(&model.file.path)?)?;
    Ok(rewrite::marks(&upgraded, model.localize))
}

/// The model file at `path`, decoded, with tensors it keeps in external-data files (models over
/// 2 GB, and exporters that always write them) read into it, so that what precheck writes stands
/// alone wherever an engine loads it.
fn read_user_model(path: &std::path::Path) -> Result<ModelProto, ExportError> {
    let failed = |message: String| ExportError::Read {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let mut model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| failed(format!("not an ONNX model: {e}")))?;
    check_arity(&model).map_err(&failed)?;
    let folder = path.parent().unwrap_or(std::path::Path::new("."));
    if let Some(graph) = model.graph.as_mut() {
        for tensor in &mut graph.initializer {
            inline_external_data(tensor, folder).map_err(&failed)?;
        }
    }
    Ok(model)
}

/// Every node has an output, and every operator the upgrade and the rewrite read by position
/// has the inputs they read: the checker's rule, which a hand-made or truncated model can break.
fn check_arity(model: &ModelProto) -> Result<(), String> {
    let nodes = model.graph.iter().flat_map(|g| g.node.iter());
    for (index, node) in nodes.enumerate() {
        let least = rewrite::LEAST_INPUTS
            .iter()
            .find(|(op, _)| *op == node.op_type)
            .map_or(0, |&(_, n)| n);
        let problem = if node.output.is_empty() {
            "has no output".to_owned()
        } else if node.input.len() < least {
            format!("has {} inputs, fewer than its {least}", node.input.len())
        } else {
            continue;
        };
        return Err(format!(
            "node #{index} `{}` ({}) {problem}",
            node.name, node.op_type
        ));
    }
    Ok(())
}

/// Reads `tensor`'s external data (`location` relative to `folder`, `offset`, `length`) into
/// its raw data.
fn inline_external_data(
    tensor: &mut crate::onnx_proto::TensorProto,
    folder: &std::path::Path,
) -> Result<(), String> {
    if tensor.data_location != Some(crate::onnx_proto::DataLocation::External as i32) {
        return Ok(());
    }
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key.as_deref() == Some(key))
            .and_then(|e| e.value.clone())
    };
    let name = tensor.name.clone();
    let location = entry("location")
        .ok_or_else(|| format!("tensor `{name}` is external and names no `location`"))?;
    let number = |key: &str| -> Result<Option<usize>, String> {
        entry(key)
            .map(|v| v.parse::<usize>())
            .transpose()
            .map_err(|e| format!("tensor `{name}`: external `{key}`: {e}"))
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let file = folder.join(&location);
    let data = std::fs::read(&file)
        .map_err(|e| format!("tensor `{name}`'s external data {}: {e}", file.display()))?;
    let end = length.map_or(Some(data.len()), |l| offset.checked_add(l));
    let bytes = end
        .and_then(|end| data.get(offset..end))
        .ok_or_else(|| {
            format!(
                "tensor `{name}`'s external data {} holds {} bytes, not offset {offset} + length {length:?}",
                file.display(),
                data.len()
            )
        })?;
    tensor.raw_data = bytes.to_vec();
    tensor.external_data.clear();
    tensor.data_location = None;
    Ok(())
}

/// Builds the ONNX graph: nodes and initializers, names made unique by a counter.
struct Lowering<'a> {
    policy: &'a Policy,
    weights: &'a Weights,
    tokens: usize,
    e: Emitter,
    layers: ClassLayers,
}

impl<'a> Lowering<'a> {
    fn new(policy: &'a Policy, weights: &'a Weights, tokens: usize) -> Self {
        Lowering {
            policy,
            weights,
            tokens,
            e: Emitter::new("", crate::onnx_proto::OPSET),
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
        let start = self.e.nodes.len();
        let output = lower(self);
        let names: Vec<String> = self.e.nodes[start..]
            .iter()
            .filter(|node| node.op_type != "Cast")
            .map(|node| node.name.clone())
            .collect();
        class(&mut self.layers).extend(names);
        output
    }

    fn reshape(&mut self, x: &str, dims: &[i64]) -> String {
        let shape = self.e.shape(dims);
        self.e.op("Reshape", &[x, &shape], vec![])
    }

    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.e.op("Transpose", &[x], vec![ints("perm", perm)])
    }

    /// A parameter that is not a matmul weight, FP32 as held in the reference precision.
    fn parameter(&mut self, name: &str) -> String {
        if !self.e.initializers.iter().any(|t| t.name == name) {
            let t = self.weights.get(name);
            let dims = [t.data.len()];
            self.e
                .initializers
                .push(tensor(name, DataType::Float, &dims, f32_bytes(&t.data)));
        }
        name.to_owned()
    }

    /// Lowers every node; returns the name of the stored output.
    fn graph(&mut self, graph: &Graph) -> Result<String, ExportError> {
        let mut values: Vec<String> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let arg = |i: usize| values[node.inputs[i].0].clone();
            let output = match &node.op {
                Op::Input => self.e.store(INPUT.to_owned(), self.policy.default)?,
                Op::Linear { weight, bias } => {
                    let shape = graph.param(weight).shape.clone();
                    self.linear(&arg(0), weight, &shape, bias.as_deref())?
                }
                Op::Activation(activation) => {
                    let y = self.in_class(
                        |c| &mut c.activation,
                        |l| l.activation(&arg(0), *activation),
                    );
                    self.e.store(y, self.policy.activation)?
                }
                Op::Add | Op::Mul => {
                    let op_type = if node.op == Op::Add { "Add" } else { "Mul" };
                    let y = self.e.op(op_type, &[&arg(0), &arg(1)], vec![]);
                    self.e.store(y, self.policy.default)?
                }
                Op::LayerNorm { weight, bias, eps } => {
                    let (w, b) = (self.parameter(weight), self.parameter(bias));
                    let attributes = vec![int("axis", -1), float("epsilon", *eps as f32)];
                    let y = self.in_class(
                        |c| &mut c.norm,
                        |l| l.e.op("LayerNormalization", &[&arg(0), &w, &b], attributes),
                    );
                    self.e.store(y, self.policy.norm)?
                }
                Op::RmsNorm { weight, eps } => {
                    let y = self.in_class(|c| &mut c.norm, |l| l.rms_norm(&arg(0), weight, *eps));
                    self.e.store(y, self.policy.norm)?
                }
                Op::Rotary { head_dim, theta } => {
                    let heads = graph.features(node.inputs[0]) / head_dim;
                    let y = self.rotary(&arg(0), heads, *head_dim, *theta);
                    self.e.store(y, self.policy.default)?
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
        self.e.store(output, self.policy.output)
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
        let x = self
            .e
            .quantize_activation(x, matmul.activations, Some(self.tokens))?;
        let mut w = self.weight(weight, shape, matmul.weights)?;
        if matches!(matmul.weights.recipe, Recipe::Group { .. })
            && matmul.activations.recipe == Recipe::Cast
        {
            // Weight-only groups dequantize into the activations' format (as the CPU backend).
            w = self.e.store(w, matmul.activations.format)?;
        }
        let mut inputs = vec![x.as_str(), w.as_str()];
        let bias = bias.map(|b| self.parameter(b));
        inputs.extend(bias.as_deref());
        let y = self.e.op("Gemm", &inputs, vec![int("transB", 1)]);
        self.e.store(y, matmul.output)
    }

    /// A matmul weight `[out, in]` quantized as `spec` says, dequantized in the graph.
    fn weight(
        &mut self,
        name: &str,
        shape: &[usize],
        spec: QuantSpec,
    ) -> Result<String, ExportError> {
        let (rows, cols) = (shape[0], shape.get(1).copied().unwrap_or(1));
        let values = Tensor::new(rows, cols, self.weights.get(name).data.clone());
        if spec.recipe == Recipe::Cast {
            let mut values = values.data;
            spec.format.round_slice(&mut values);
            let raw = f32_bytes(&values);
            self.e
                .initializers
                .push(tensor(name, DataType::Float, &[rows, cols], raw));
            return Ok(name.to_owned());
        }
        self.e.weight(name, &values, spec, 0, &[rows, cols])
    }

    fn activation(&mut self, x: &str, activation: Activation) -> String {
        match activation {
            Activation::Silu => {
                let sigmoid = self.e.op("Sigmoid", &[x], vec![]);
                self.e.op("Mul", &[x, &sigmoid], vec![])
            }
            Activation::GeluTanh => self.e.op("Gelu", &[x], vec![string("approximate", "tanh")]),
            Activation::Gelu => self.e.op("Gelu", &[x], vec![string("approximate", "none")]),
            Activation::Relu => self.e.op("Relu", &[x], vec![]),
        }
    }

    /// `x / sqrt(mean(x²) + eps) · weight`.
    fn rms_norm(&mut self, x: &str, weight: &str, eps: f64) -> String {
        let w = self.parameter(weight);
        let square = self.e.op("Mul", &[x, x], vec![]);
        let axes = self.e.shape(&[-1]);
        let mean = self
            .e
            .op("ReduceMean", &[&square, &axes], vec![int("keepdims", 1)]);
        let eps = self.e.scalar(eps as f32);
        let shifted = self.e.op("Add", &[&mean, &eps], vec![]);
        let root = self.e.op("Sqrt", &[&shifted], vec![]);
        let inverse = self.e.op("Reciprocal", &[&root], vec![]);
        let normed = self.e.op("Mul", &[x, &inverse], vec![]);
        self.e.op("Mul", &[&normed, &w], vec![])
    }

    /// Rotary embedding ("rotate half") of each head at positions `0..tokens`: the angle tables
    /// are initializers computed as precheck's forward pass computes them (f64, then f32).
    fn rotary(&mut self, x: &str, heads: usize, head_dim: usize, theta: f64) -> String {
        let half = head_dim / 2;
        let (cos, sin) = rotary_tables(self.tokens, head_dim, theta);
        let dims = [self.tokens, 1, half];
        let cos = self
            .e
            .constant("rotary_cos", DataType::Float, &dims, f32_bytes(&cos));
        let sin = self
            .e
            .constant("rotary_sin", DataType::Float, &dims, f32_bytes(&sin));
        let (t, h, d) = (self.tokens as i64, heads as i64, head_dim as i64);
        let x3 = self.reshape(x, &[t, h, d]);
        let split = self.e.shape(&[half as i64, half as i64]);
        let first = self.e.fresh("rotary_first");
        let second = self.e.fresh("rotary_second");
        self.e.nodes.push(NodeProto {
            input: vec![x3, split],
            output: vec![first.clone(), second.clone()],
            name: first.clone(),
            op_type: "Split".into(),
            attribute: vec![int("axis", 2)],
            ..Default::default()
        });
        let first_cos = self.e.op("Mul", &[&first, &cos], vec![]);
        let second_sin = self.e.op("Mul", &[&second, &sin], vec![]);
        let a = self.e.op("Sub", &[&first_cos, &second_sin], vec![]);
        let second_cos = self.e.op("Mul", &[&second, &cos], vec![]);
        let first_sin = self.e.op("Mul", &[&first, &sin], vec![]);
        let b = self.e.op("Add", &[&second_cos, &first_sin], vec![]);
        let joined = self.e.op("Concat", &[&a, &b], vec![int("axis", 2)]);
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
        let scores = self.e.op("MatMul", &[&q, &k], vec![]);
        let scale = self.e.scalar((1.0 / (head_dim as f64).sqrt()) as f32);
        let scores = self.e.op("Mul", &[&scores, &scale], vec![]);
        let mut scores = self.e.store(scores, self.policy.softmax)?;
        if causal {
            let mask = self.causal_mask(group as usize);
            scores = self.e.op("Add", &[&scores, &mask], vec![]);
        }
        let probabilities = self.in_class(
            |c| &mut c.softmax,
            |l| l.e.op("Softmax", &[&scores], vec![int("axis", -1)]),
        );
        let probabilities = self.e.store(probabilities, self.policy.softmax)?;
        let probabilities = self.e.store(probabilities, self.policy.default)?;
        let context = self.e.op("MatMul", &[&probabilities, &v], vec![]);
        let context = self.reshape(&context, &[h, t, d]);
        let context = self.transpose(&context, &[1, 0, 2]);
        let context = self.reshape(&context, &[t, h * d]);
        self.e.store(context, self.policy.default)
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
        self.e.constant(
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
