//! Blocks as a small graph of operations.
//!
//! A block is a [`Graph`] that a builder writes in a few lines ([`super::blocks`]). The exact
//! reference, the CPU emulation and the ONNX export interpret that graph operation by operation;
//! the CUDA backend runs hand-written programs of the blocks it supports (`backend/cuda/mlp.rs`,
//! `attention.rs`), checked against the CPU's interpretation of the same graph.
//! Tensors are 2-D, `[tokens, features]`; attention heads are column blocks of a tensor (head `h`
//! of `[tokens, heads × head_dim]` is columns `h·head_dim .. (h+1)·head_dim`), so splitting and
//! merging heads moves no data.

use serde::Serialize;

use crate::model::Activation;

/// A value in a graph: the output of node number `.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value(pub usize);

/// An operation of a graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The block's input.
    Input,
    /// `x · Wᵀ (+ b)`: a matmul with the parameter `weight` `[out, in]` and an optional `bias` `[out]`.
    Linear {
        /// The weight's name.
        weight: String,
        /// The bias's name.
        bias: Option<String>,
    },
    /// An activation function, elementwise.
    Activation(Activation),
    /// `a + b`, elementwise (residual connections).
    Add,
    /// `a · b`, elementwise (gating).
    Mul,
    /// LayerNorm over each row: `(x − mean) / sqrt(var + eps) · weight + bias`.
    LayerNorm {
        /// The scale's name.
        weight: String,
        /// The shift's name.
        bias: String,
        /// Added to the variance.
        eps: f64,
    },
    /// RMSNorm over each row: `x / sqrt(mean(x²) + eps) · weight` (Llama's convention).
    RmsNorm {
        /// The scale's name.
        weight: String,
        /// Added to the mean square.
        eps: f64,
    },
    /// Rotary position embedding (the "rotate half" layout of Llama and Gemma) of each head, at
    /// positions `0..tokens`.
    Rotary {
        /// Columns per head.
        head_dim: usize,
        /// The frequency base.
        theta: f64,
    },
    /// Scaled dot-product attention of queries `[T, heads·head_dim]` with keys and values
    /// `[T, kv_heads·head_dim]`; query head `h` reads key/value head `h / (heads / kv_heads)` (GQA;
    /// MHA when `kv_heads == heads`). Output `[T, heads·head_dim]`, heads merged.
    Attention {
        /// Query heads.
        heads: usize,
        /// Key and value heads.
        kv_heads: usize,
        /// Columns per head.
        head_dim: usize,
        /// Whether token `i` sees only tokens `≤ i`.
        causal: bool,
    },
    /// The whole model, in a file an engine runs (an ONNX model): precheck knows its output's
    /// width and nothing of how it computes it.
    External {
        /// Columns of the output.
        output_features: usize,
    },
}

impl Op {
    /// The operation class a precision policy addresses it by.
    pub fn class(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Linear { .. } => "matmul",
            Op::Activation(_) => "activation",
            Op::Add | Op::Mul | Op::Rotary { .. } => "elementwise",
            Op::LayerNorm { .. } | Op::RmsNorm { .. } => "norm",
            Op::Attention { .. } => "attention",
            Op::External { .. } => "external",
        }
    }
}

/// A node: an operation and the values it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// Its operands, earlier values of the graph.
    pub inputs: Vec<Value>,
}

/// What a parameter is, which fixes its shape and how a policy treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A matmul weight `[out, in]`: quantized as the policy's matmul weights.
    MatmulWeight,
    /// A bias `[out]`, added in the matmul's epilogue.
    Bias,
    /// A normalisation's scale `[features]`.
    NormScale,
    /// A normalisation's shift `[features]`.
    NormShift,
}

/// A parameter a graph reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    /// Its name (Hugging Face's, under the block's prefix).
    pub name: String,
    /// Its shape: `[out, in]` for matmul weights, `[n]` otherwise.
    pub shape: Vec<usize>,
    /// What it is.
    pub kind: ParamKind,
}

impl Param {
    /// Its shape as a row-major matrix: `[out, in]` as is, `[n]` as one row.
    pub fn matrix_shape(&self) -> (usize, usize) {
        match self.shape[..] {
            [rows, cols] => (rows, cols),
            [n] => (1, n),
            _ => unreachable!("parameters are 1-D or 2-D"),
        }
    }
}

/// A block as operations, in an order in which every node comes after its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The nodes; node 0 is the input.
    pub nodes: Vec<Node>,
    /// The parameters, in the order the nodes first read them.
    pub params: Vec<Param>,
    /// The block's output.
    pub output: Value,
    /// Intermediate values a run reports besides the output (a stack's layers), by name.
    pub taps: Vec<(String, Value)>,
    /// Columns of the input.
    pub input_features: usize,
}

impl Graph {
    /// The matmul weights, in the order the graph runs them.
    pub fn matmuls(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .filter(|p| p.kind == ParamKind::MatmulWeight)
            .map(|p| p.name.as_str())
    }

    /// Columns of the output.
    pub fn output_features(&self) -> usize {
        self.features(self.output)
    }

    /// For each node, the index of the last node that reads it (itself if none does), so that an
    /// interpreter can free values early.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (index, node) in self.nodes.iter().enumerate() {
            for input in &node.inputs {
                last[input.0] = index;
            }
        }
        for (_, tap) in &self.taps {
            last[tap.0] = usize::MAX;
        }
        last[self.output.0] = usize::MAX;
        last
    }

    /// Multiply-adds of one forward pass over `tokens` rows, times two: the FLOP count (matmuls
    /// and attention's two products).
    pub fn flops(&self, tokens: usize) -> f64 {
        let macs: usize = self
            .nodes
            .iter()
            .map(|node| match &node.op {
                Op::Linear { weight, .. } => {
                    let shape = &self.param(weight).shape;
                    tokens * shape[0] * shape[1]
                }
                Op::Attention {
                    heads, head_dim, ..
                } => 2 * heads * tokens * tokens * head_dim,
                _ => 0,
            })
            .sum();
        2.0 * macs as f64
    }

    /// The parameter called `name`; panics if the graph has none (a programming error).
    pub fn param(&self, name: &str) -> &Param {
        self.params
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("graph has no parameter `{name}`"))
    }

    /// Columns of `value`.
    pub fn features(&self, value: Value) -> usize {
        let node = &self.nodes[value.0];
        match &node.op {
            Op::Input => self.input_features,
            Op::Linear { weight, .. } => self.param(weight).shape[0],
            Op::External { output_features } => *output_features,
            _ => self.features(node.inputs[0]),
        }
    }
}

/// Writes a graph: each method appends a node and returns its value.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
    prefix: String,
}

impl GraphBuilder {
    /// A graph whose input has `input_features` columns.
    pub fn new(input_features: usize) -> Self {
        GraphBuilder {
            graph: Graph {
                nodes: vec![Node {
                    op: Op::Input,
                    inputs: vec![],
                }],
                params: vec![],
                output: Value(0),
                taps: vec![],
                input_features,
            },
            prefix: String::new(),
        }
    }

    /// The input.
    pub fn input(&self) -> Value {
        Value(0)
    }

    /// Names parameters added from now on `prefix` + their name (`layers.3.`).
    pub fn set_prefix(&mut self, prefix: impl Into<String>) {
        self.prefix = prefix.into();
    }

    /// `x · Wᵀ (+ b)` with a new weight `[out, in]` called `name.weight` (and `name.bias`).
    pub fn linear(&mut self, x: Value, name: &str, out: usize, bias: bool) -> Value {
        let input = self.graph.features(x);
        let weight = self.param(
            leaf(name, "weight"),
            vec![out, input],
            ParamKind::MatmulWeight,
        );
        let bias = bias.then(|| self.param(leaf(name, "bias"), vec![out], ParamKind::Bias));
        self.push(Op::Linear { weight, bias }, vec![x])
    }

    /// `activation(x)`.
    pub fn activation(&mut self, x: Value, activation: Activation) -> Value {
        self.push(Op::Activation(activation), vec![x])
    }

    /// `a + b`.
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.push(Op::Add, vec![a, b])
    }

    /// `a · b`.
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.push(Op::Mul, vec![a, b])
    }

    /// LayerNorm with parameters `name.weight` and `name.bias`.
    pub fn layer_norm(&mut self, x: Value, name: &str, eps: f64) -> Value {
        let features = self.graph.features(x);
        let weight = self.param(leaf(name, "weight"), vec![features], ParamKind::NormScale);
        let bias = self.param(leaf(name, "bias"), vec![features], ParamKind::NormShift);
        self.push(Op::LayerNorm { weight, bias, eps }, vec![x])
    }

    /// RMSNorm with the parameter `name.weight`.
    pub fn rms_norm(&mut self, x: Value, name: &str, eps: f64) -> Value {
        let features = self.graph.features(x);
        let weight = self.param(leaf(name, "weight"), vec![features], ParamKind::NormScale);
        self.push(Op::RmsNorm { weight, eps }, vec![x])
    }

    /// Rotary position embedding of every head of `x`.
    pub fn rotary(&mut self, x: Value, head_dim: usize, theta: f64) -> Value {
        self.push(Op::Rotary { head_dim, theta }, vec![x])
    }

    /// Scaled dot-product attention.
    pub fn attention(&mut self, q: Value, k: Value, v: Value, shape: AttentionShape) -> Value {
        let op = Op::Attention {
            heads: shape.heads,
            kv_heads: shape.kv_heads,
            head_dim: shape.head_dim,
            causal: shape.causal,
        };
        self.push(op, vec![q, k, v])
    }

    /// Reports `value` under `name` besides the output.
    pub fn tap(&mut self, name: impl Into<String>, value: Value) {
        self.graph.taps.push((name.into(), value));
    }

    /// A model an engine computes from `x` ([`Op::External`]).
    pub fn external(&mut self, x: Value, output_features: usize) -> Value {
        self.push(Op::External { output_features }, vec![x])
    }

    /// The graph, with `output` as its output.
    pub fn finish(mut self, output: Value) -> Graph {
        self.graph.output = output;
        self.graph
    }

    fn param(&mut self, name: String, shape: Vec<usize>, kind: ParamKind) -> String {
        let name = format!("{}{name}", self.prefix);
        self.graph.params.push(Param {
            name: name.clone(),
            shape,
            kind,
        });
        name
    }

    fn push(&mut self, op: Op, inputs: Vec<Value>) -> Value {
        self.graph.nodes.push(Node { op, inputs });
        Value(self.graph.nodes.len() - 1)
    }
}

/// `module.leaf`, or `leaf` for the block's own parameters (a `linear` block's `weight`).
fn leaf(module: &str, leaf: &str) -> String {
    if module.is_empty() {
        leaf.to_owned()
    } else {
        format!("{module}.{leaf}")
    }
}

/// The head layout of an attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key and value heads (`heads` for MHA, fewer for GQA, 1 for MQA).
    pub kv_heads: usize,
    /// Columns per head.
    pub head_dim: usize,
    /// Whether token `i` sees only tokens `≤ i`.
    pub causal: bool,
}
