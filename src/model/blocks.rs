//! The built-in blocks and the graphs they are made of.
//!
//! Parameter names are Hugging Face's, so that a block reads a real checkpoint with at most a
//! prefix: Llama/Gemma names (`self_attn.q_proj`, `mlp.gate_proj`, `input_layernorm`) for the
//! decoder layer and the standalone attention and gated MLP, BERT names (`attention.self.query`,
//! `intermediate.dense`, `output.LayerNorm`) for the encoder layer, SigLIP/CLIP names (`fc1`,
//! `fc2`) for the plain MLP. The names of each layout are one table below.

use serde::Serialize;

use std::sync::Arc;

use super::graph::{AttentionShape, Graph, GraphBuilder, Value};
use super::onnx::OnnxModel;
use crate::model::Activation;

/// A built-in block with its dimensions, or an ONNX model.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A user's ONNX model, rewritten into each precision and run by engines that take ONNX.
    Onnx(Arc<OnnxModel>),
    /// `y = x Wᵀ`, `W` of shape `[out_features, in_features]`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// An MLP: gated `down(act(gate(x)) · up(x))` (Gemma, Llama) or plain `fc2(act(fc1(x)))` with
    /// biases (BERT, SigLIP).
    Mlp(MlpShape),
    /// Self-attention: Q/K/V projections, rotary embedding, scaled dot-product attention (MHA or
    /// GQA), output projection; no biases (Gemma, Llama).
    Attention(AttentionBlock),
    /// One transformer layer.
    Layer(LayerSpec),
    /// `layers` transformer layers of one kind, each reported on its own.
    Stack {
        /// The layer.
        layer: LayerSpec,
        /// How many.
        layers: usize,
    },
}

/// An MLP's dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpShape {
    /// Model width (input and output features).
    pub hidden: usize,
    /// Inner width.
    pub intermediate: usize,
    /// The activation.
    pub activation: Activation,
    /// Gated (`gate_proj`, `up_proj`, `down_proj`, no biases) or plain (`fc1`, `fc2`, biases).
    pub gated: bool,
}

/// A self-attention block's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AttentionBlock {
    /// Model width.
    pub hidden: usize,
    /// Heads.
    pub shape: AttentionShape,
    /// Rotary embedding's frequency base; `None` for none.
    pub rope_theta: Option<f64>,
}

/// The two transformer layer layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Pre-norm decoder layer (Gemma, Llama): `x + attn(rms(x))`, then `h + mlp(rms(h))` with a
    /// gated MLP, rotary embedding, no biases.
    Decoder,
    /// Post-norm encoder layer (BERT): `ln(x + attn(x))`, then `ln(h + mlp(h))` with a plain MLP,
    /// biases everywhere, no rotary embedding.
    Encoder,
}

impl LayerKind {
    /// Where a layer of this kind keeps its parameters.
    pub fn names(self) -> LayerNames {
        match self {
            LayerKind::Decoder => LayerNames {
                attention: &DECODER_ATTENTION,
                mlp: &DECODER_MLP,
                norms: DECODER_NORMS,
            },
            LayerKind::Encoder => LayerNames {
                attention: &ENCODER_ATTENTION,
                mlp: &ENCODER_MLP,
                norms: ENCODER_NORMS,
            },
        }
    }

    /// The name used in suites.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Decoder => "decoder",
            LayerKind::Encoder => "encoder",
        }
    }
}

/// A transformer layer's dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSpec {
    /// Pre-norm decoder or post-norm encoder.
    pub kind: LayerKind,
    /// Model width.
    pub hidden: usize,
    /// The MLP's inner width.
    pub intermediate: usize,
    /// Heads.
    pub attention: AttentionShape,
    /// The MLP's activation.
    pub activation: Activation,
    /// The norms' epsilon.
    pub norm_eps: f64,
    /// Rotary embedding's frequency base (decoder layers).
    pub rope_theta: f64,
}

/// The parameter names of one layout's attention (each `{name}.weight`, and `{name}.bias` where
/// the layout has biases).
#[derive(Debug)]
pub struct AttentionNames {
    /// The query projection.
    pub q: &'static str,
    /// The key projection.
    pub k: &'static str,
    /// The value projection.
    pub v: &'static str,
    /// The output projection.
    pub o: &'static str,
}

/// The parameter names of one layout's MLP; `gate` only in gated MLPs.
#[derive(Debug)]
pub struct MlpNames {
    /// The gate projection.
    pub gate: Option<&'static str>,
    /// The up projection (`fc1`).
    pub up: &'static str,
    /// The down projection (`fc2`).
    pub down: &'static str,
}

/// The parameter names of one transformer layer layout.
#[derive(Debug)]
pub struct LayerNames {
    /// Its attention.
    pub attention: &'static AttentionNames,
    /// Its MLP.
    pub mlp: &'static MlpNames,
    /// Its two norms (`{name}.weight`, and `{name}.bias` for LayerNorm): before (decoder) or
    /// after (encoder) the attention, then the MLP.
    pub norms: [&'static str; 2],
}

/// A standalone `attention` block's names.
pub const STANDALONE_ATTENTION: AttentionNames = AttentionNames {
    q: "q_proj",
    k: "k_proj",
    v: "v_proj",
    o: "o_proj",
};
/// A gated `mlp` block's names.
pub const GATED_MLP: MlpNames = MlpNames {
    gate: Some("gate_proj"),
    up: "up_proj",
    down: "down_proj",
};
/// A plain `mlp` block's names.
pub const PLAIN_MLP: MlpNames = MlpNames {
    gate: None,
    up: "fc1",
    down: "fc2",
};
const DECODER_ATTENTION: AttentionNames = AttentionNames {
    q: "self_attn.q_proj",
    k: "self_attn.k_proj",
    v: "self_attn.v_proj",
    o: "self_attn.o_proj",
};
const DECODER_MLP: MlpNames = MlpNames {
    gate: Some("mlp.gate_proj"),
    up: "mlp.up_proj",
    down: "mlp.down_proj",
};
const DECODER_NORMS: [&str; 2] = ["input_layernorm", "post_attention_layernorm"];
const ENCODER_ATTENTION: AttentionNames = AttentionNames {
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    o: "attention.output.dense",
};
const ENCODER_MLP: MlpNames = MlpNames {
    gate: None,
    up: "intermediate.dense",
    down: "output.dense",
};
const ENCODER_NORMS: [&str; 2] = ["attention.output.LayerNorm", "output.LayerNorm"];

/// Where a stack's layer `index` keeps its parameters: `layers.{index}.` + the layer's names.
pub fn layer_prefix(index: usize) -> String {
    format!("layers.{index}.")
}

/// A stack parameter's layer index and its name within the layer (`layers.3.fc1.weight` →
/// `(3, "fc1.weight")`); `None` for a parameter of no stack layer.
pub fn split_layer(param: &str) -> Option<(usize, &str)> {
    let (index, rest) = param.strip_prefix("layers.")?.split_once('.')?;
    Some((index.parse().ok()?, rest))
}

impl Block {
    /// The block's name as in suites.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Block::Linear { .. } => "linear",
            Block::Mlp(_) => "mlp",
            Block::Attention(_) => "attention",
            Block::Layer(_) => "transformer_layer",
            Block::Stack { .. } => "stack",
            Block::Onnx(_) => "onnx",
        }
    }

    /// Whether the block computes attention, whose own two products (scores and `p·v`) run on
    /// default-format operands whatever the policy's matmul recipe. `false` for an ONNX model:
    /// precheck cannot tell.
    pub fn has_attention(&self) -> bool {
        matches!(
            self,
            Block::Attention(_) | Block::Layer(_) | Block::Stack { .. }
        )
    }

    /// Features of one input row; 0 for an ONNX model, whose inputs are arrays of their own
    /// shapes ([`OnnxModel::inputs`]).
    pub fn input_features(&self) -> usize {
        match *self {
            Block::Onnx(_) => 0,
            Block::Linear { in_features, .. } => in_features,
            Block::Mlp(MlpShape { hidden, .. })
            | Block::Attention(AttentionBlock { hidden, .. })
            | Block::Layer(LayerSpec { hidden, .. })
            | Block::Stack {
                layer: LayerSpec { hidden, .. },
                ..
            } => hidden,
        }
    }

    /// Features of one output row (0 for an ONNX model).
    pub fn output_features(&self) -> usize {
        match *self {
            Block::Linear { out_features, .. } => out_features,
            _ => self.input_features(),
        }
    }

    /// Multiply-adds of one forward pass over `tokens` rows, times two: the FLOP count.
    pub fn flops(&self, tokens: usize) -> f64 {
        self.graph().flops(tokens)
    }

    /// The block as operations.
    pub fn graph(&self) -> Graph {
        let mut b = GraphBuilder::new(self.input_features());
        let x = b.input();
        let output = match *self {
            Block::Onnx(_) => b.external(x, 0),
            Block::Linear { out_features, .. } => b.linear(x, "", out_features, false),
            Block::Mlp(shape) => {
                let names = if shape.gated { &GATED_MLP } else { &PLAIN_MLP };
                mlp(&mut b, x, names, shape, !shape.gated)
            }
            Block::Attention(block) => attention(&mut b, x, &STANDALONE_ATTENTION, block, false),
            Block::Layer(layer) => transformer_layer(&mut b, x, layer),
            Block::Stack { layer, layers } => {
                let mut x = x;
                for index in 0..layers {
                    b.set_prefix(layer_prefix(index));
                    x = transformer_layer(&mut b, x, layer);
                    b.tap(format!("layer.{index}"), x);
                }
                x
            }
        };
        b.finish(output)
    }
}

fn mlp(b: &mut GraphBuilder, x: Value, names: &MlpNames, shape: MlpShape, bias: bool) -> Value {
    let hidden = match names.gate {
        Some(gate) => {
            let gate = b.linear(x, gate, shape.intermediate, bias);
            let activated = b.activation(gate, shape.activation);
            let up = b.linear(x, names.up, shape.intermediate, bias);
            b.mul(activated, up)
        }
        None => {
            let up = b.linear(x, names.up, shape.intermediate, bias);
            b.activation(up, shape.activation)
        }
    };
    b.linear(hidden, names.down, shape.hidden, bias)
}

fn attention(
    b: &mut GraphBuilder,
    x: Value,
    names: &AttentionNames,
    block: AttentionBlock,
    bias: bool,
) -> Value {
    let AttentionShape {
        heads,
        kv_heads,
        head_dim,
        ..
    } = block.shape;
    let mut q = b.linear(x, names.q, heads * head_dim, bias);
    let mut k = b.linear(x, names.k, kv_heads * head_dim, bias);
    let v = b.linear(x, names.v, kv_heads * head_dim, bias);
    if let Some(theta) = block.rope_theta {
        q = b.rotary(q, head_dim, theta);
        k = b.rotary(k, head_dim, theta);
    }
    let context = b.attention(q, k, v, block.shape);
    b.linear(context, names.o, block.hidden, bias)
}

fn transformer_layer(b: &mut GraphBuilder, x: Value, layer: LayerSpec) -> Value {
    let mlp_shape = MlpShape {
        hidden: layer.hidden,
        intermediate: layer.intermediate,
        activation: layer.activation,
        gated: layer.kind == LayerKind::Decoder,
    };
    let names = layer.kind.names();
    match layer.kind {
        LayerKind::Decoder => {
            let block = AttentionBlock {
                hidden: layer.hidden,
                shape: layer.attention,
                rope_theta: Some(layer.rope_theta),
            };
            let [attention_norm, mlp_norm] = names.norms;
            let normed = b.rms_norm(x, attention_norm, layer.norm_eps);
            let attended = attention(b, normed, names.attention, block, false);
            let h = b.add(x, attended);
            let normed = b.rms_norm(h, mlp_norm, layer.norm_eps);
            let transformed = mlp(b, normed, names.mlp, mlp_shape, false);
            b.add(h, transformed)
        }
        LayerKind::Encoder => {
            let block = AttentionBlock {
                hidden: layer.hidden,
                shape: layer.attention,
                rope_theta: None,
            };
            let [attention_norm, mlp_norm] = names.norms;
            let attended = attention(b, x, names.attention, block, true);
            let sum = b.add(attended, x);
            let h = b.layer_norm(sum, attention_norm, layer.norm_eps);
            let transformed = mlp(b, h, names.mlp, mlp_shape, true);
            let sum = b.add(transformed, h);
            b.layer_norm(sum, mlp_norm, layer.norm_eps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::ParamKind;

    fn bert_layer() -> LayerSpec {
        LayerSpec {
            kind: LayerKind::Encoder,
            hidden: 384,
            intermediate: 1536,
            attention: AttentionShape {
                heads: 12,
                kv_heads: 12,
                head_dim: 32,
                causal: false,
            },
            activation: Activation::Gelu,
            norm_eps: 1e-12,
            rope_theta: 10_000.0,
        }
    }

    #[test]
    fn an_encoder_layer_has_bert_parameter_names_and_shapes() {
        let graph = Block::Layer(bert_layer()).graph();
        let names: Vec<(&str, &[usize])> = graph
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.shape.as_slice()))
            .collect();
        assert_eq!(
            names,
            [
                ("attention.self.query.weight", &[384, 384][..]),
                ("attention.self.query.bias", &[384]),
                ("attention.self.key.weight", &[384, 384]),
                ("attention.self.key.bias", &[384]),
                ("attention.self.value.weight", &[384, 384]),
                ("attention.self.value.bias", &[384]),
                ("attention.output.dense.weight", &[384, 384]),
                ("attention.output.dense.bias", &[384]),
                ("attention.output.LayerNorm.weight", &[384]),
                ("attention.output.LayerNorm.bias", &[384]),
                ("intermediate.dense.weight", &[1536, 384]),
                ("intermediate.dense.bias", &[1536]),
                ("output.dense.weight", &[384, 1536]),
                ("output.dense.bias", &[384]),
                ("output.LayerNorm.weight", &[384]),
                ("output.LayerNorm.bias", &[384]),
            ]
        );
    }

    #[test]
    fn a_stack_prefixes_each_layer_and_taps_it() {
        let graph = Block::Stack {
            layer: bert_layer(),
            layers: 3,
        }
        .graph();
        assert_eq!(graph.params.len(), 3 * 16);
        assert_eq!(
            graph.params[16].name,
            "layers.1.attention.self.query.weight"
        );
        let taps: Vec<&str> = graph.taps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(taps, ["layer.0", "layer.1", "layer.2"]);
        assert_eq!(graph.taps[2].1, graph.output);
    }

    #[test]
    fn gqa_attention_has_narrow_key_and_value_projections_and_counts_its_flops() {
        let block = Block::Attention(AttentionBlock {
            hidden: 2048,
            shape: AttentionShape {
                heads: 8,
                kv_heads: 1,
                head_dim: 256,
                causal: false,
            },
            rope_theta: Some(10_000.0),
        });
        let graph = block.graph();
        let matmuls: Vec<(&str, &[usize])> = graph
            .params
            .iter()
            .filter(|p| p.kind == ParamKind::MatmulWeight)
            .map(|p| (p.name.as_str(), p.shape.as_slice()))
            .collect();
        assert_eq!(
            matmuls,
            [
                ("q_proj.weight", &[2048, 2048][..]),
                ("k_proj.weight", &[256, 2048]),
                ("v_proj.weight", &[256, 2048]),
                ("o_proj.weight", &[2048, 2048]),
            ]
        );
        // Projections: t·2048·(2048 + 256 + 256 + 2048); attention: 2 products of t·t·256 per head.
        let t = 970.0;
        let expect = 2.0 * (t * 2048.0 * 4608.0 + 2.0 * 8.0 * t * t * 256.0);
        assert_eq!(block.flops(970), expect);
        assert_eq!(graph.output_features(), 2048);
    }
}
