//! What a model costs before it runs: its parameters, the memory a variant holds and the FLOPs
//! of one forward pass, from its dimensions alone, in checked arithmetic, so that a suite whose
//! dimensions would need terabytes, or wrap a product past 2⁶⁴, is refused with the numbers
//! instead of aborting a worker, hanging on a billion layers or measuring zeros.

use super::blocks::{AttentionBlock, Block, LayerSpec, MlpShape};
use super::graph::AttentionShape;
use super::Model;

/// A model's cost, in elements and bytes, estimated from its dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Parameters (weights, biases, norm scales).
    pub parameters: u128,
    /// Bytes a variant holds at once: the weights as held (f32), as quantized (f32) and in the
    /// exact reference (f64), and the activations of one layer for every token (f64 and f32
    /// copies; attention's scores as a heads × tokens × tokens matrix).
    pub bytes: u128,
}

/// Why a model's cost cannot be counted: a product of its dimensions overflows even 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("its dimensions multiply past 2^128")]
pub struct Uncountable;

fn mul(values: &[usize]) -> Result<u128, Uncountable> {
    values
        .iter()
        .try_fold(1u128, |acc, &v| acc.checked_mul(v as u128))
        .ok_or(Uncountable)
}

fn add(values: &[u128]) -> Result<u128, Uncountable> {
    values
        .iter()
        .try_fold(0u128, |acc, &v| acc.checked_add(v))
        .ok_or(Uncountable)
}

fn attention_parameters(hidden: usize, shape: &AttentionShape) -> Result<u128, Uncountable> {
    let queries = mul(&[hidden, shape.heads, shape.head_dim])?;
    let keys_values = mul(&[2, hidden, shape.kv_heads, shape.head_dim])?;
    add(&[queries, queries, keys_values])
}

fn mlp_parameters(hidden: usize, intermediate: usize, gated: bool) -> Result<u128, Uncountable> {
    let projections = mul(&[if gated { 3 } else { 2 }, hidden, intermediate])?;
    add(&[projections, hidden as u128, intermediate as u128])
}

fn layer_parameters(layer: &LayerSpec) -> Result<u128, Uncountable> {
    let attention = attention_parameters(layer.hidden, &layer.attention)?;
    let mlp = mlp_parameters(layer.hidden, layer.intermediate, true)?;
    add(&[attention, mlp, mul(&[4, layer.hidden])?])
}

impl Model {
    /// The model's cost from its dimensions; `None` for an ONNX model (its file says what it
    /// holds).
    pub fn footprint(&self) -> Option<Result<Footprint, Uncountable>> {
        let tokens = self.tokens;
        let (parameters, width, attention) = match &self.block {
            Block::Onnx(_) => return None,
            Block::Linear {
                in_features,
                out_features,
            } => (
                mul(&[*in_features, *out_features]),
                (*in_features).max(*out_features),
                None,
            ),
            Block::Mlp(MlpShape {
                hidden,
                intermediate,
                gated,
                ..
            }) => (
                mlp_parameters(*hidden, *intermediate, *gated),
                (*hidden).max(*intermediate),
                None,
            ),
            Block::Attention(AttentionBlock { hidden, shape, .. }) => (
                attention_parameters(*hidden, shape),
                (*hidden).max(shape.heads.saturating_mul(shape.head_dim)),
                Some(shape.heads),
            ),
            Block::Layer(layer) => (
                layer_parameters(layer),
                layer.hidden.max(layer.intermediate),
                Some(layer.attention.heads),
            ),
            Block::Stack { layer, layers } => (
                layer_parameters(layer).and_then(|p| {
                    mul(&[*layers]).and_then(|n| p.checked_mul(n).ok_or(Uncountable))
                }),
                layer.hidden.max(layer.intermediate),
                Some(layer.attention.heads),
            ),
        };
        Some((|| {
            let parameters = parameters?;
            let weights = parameters.checked_mul(16).ok_or(Uncountable)?;
            let activations = mul(&[tokens, width, 8, 12])?;
            let scores = match attention {
                Some(heads) => mul(&[heads, tokens, tokens, 8, 3])?,
                None => 0,
            };
            Ok(Footprint {
                parameters,
                bytes: add(&[weights, activations, scores])?,
            })
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, WeightsSpec};

    fn model(block: Block, tokens: usize) -> Model {
        Model {
            name: crate::ident::Ident::try_from("m".to_owned()).unwrap(),
            block,
            tokens,
            outliers: None,
            input_file: None,
            weights: WeightsSpec::Seeded,
        }
    }

    #[test]
    fn a_small_mlp_costs_what_its_dimensions_say() {
        let mlp = Block::Mlp(MlpShape {
            hidden: 64,
            intermediate: 256,
            activation: Activation::Gelu,
            gated: true,
        });
        let cost = model(mlp, 8).footprint().unwrap().unwrap();
        assert_eq!(cost.parameters, 3 * 64 * 256 + 64 + 256);
        assert!(cost.bytes > cost.parameters * 16);
    }

    #[test]
    fn hostile_dimensions_are_counted_not_wrapped() {
        let huge = usize::MAX;
        let linear = Block::Linear {
            in_features: huge,
            out_features: huge,
        };
        let cost = model(linear, huge).footprint().unwrap();
        assert_eq!(cost, Err(Uncountable), "2^64 squared times 16 bytes");
        let wide = Block::Linear {
            in_features: 1 << 32,
            out_features: 1 << 32,
        };
        let cost = model(wide, 1 << 32).footprint().unwrap().unwrap();
        assert_eq!(cost.parameters, 1 << 64, "no wrap to zero");
    }
}
