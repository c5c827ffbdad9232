//! Models: the built-in blocks, their weights and inputs, and their math.
//!
//! A [`Model`] is a validated suite entry. [`seeded`] makes its weights and inputs reproducibly;
//! [`forward`] holds the block math once, generic over the scalar type and the rounding applied after
//! each operation, so the CPU backend (f32, rounded to a format) and the exact reference (f64, not
//! rounded) cannot drift apart.

pub mod forward;
pub mod seeded;

use crate::suite::{Activation, Ident, OutlierSpec, WeightsSpec};

/// A built-in block with its dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// `y = x Wᵀ`, `W` of shape `[out_features, in_features]`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// Gated MLP: `y = down(act(gate(x)) * up(x))`.
    Mlp {
        /// Model width (input and output features).
        hidden: usize,
        /// Inner width.
        intermediate: usize,
        /// Activation applied to the gate projection.
        activation: Activation,
    },
}

impl Block {
    /// The block's name as in suites.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Block::Linear { .. } => "linear",
            Block::Mlp { .. } => "mlp",
        }
    }

    /// Features of one input row.
    pub fn input_features(&self) -> usize {
        match *self {
            Block::Linear { in_features, .. } => in_features,
            Block::Mlp { hidden, .. } => hidden,
        }
    }

    /// Features of one output row.
    pub fn output_features(&self) -> usize {
        match *self {
            Block::Linear { out_features, .. } => out_features,
            Block::Mlp { hidden, .. } => hidden,
        }
    }

    /// The weight tensors the block needs: Hugging Face names, shapes `[out, in]`.
    pub fn weight_shapes(&self) -> Vec<(&'static str, [usize; 2])> {
        match *self {
            Block::Linear {
                in_features,
                out_features,
            } => vec![("weight", [out_features, in_features])],
            Block::Mlp {
                hidden,
                intermediate,
                ..
            } => vec![
                ("gate_proj.weight", [intermediate, hidden]),
                ("up_proj.weight", [intermediate, hidden]),
                ("down_proj.weight", [hidden, intermediate]),
            ],
        }
    }

    /// Multiply-adds of one forward pass over `tokens` rows, times two: the FLOP count.
    pub fn flops(&self, tokens: usize) -> f64 {
        let macs: usize = self.weight_shapes().iter().map(|(_, [o, i])| o * i).sum();
        2.0 * (macs * tokens) as f64
    }
}

/// A model of a suite, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model's name.
    pub name: Ident,
    /// Its block.
    pub block: Block,
    /// Rows of its input.
    pub tokens: usize,
    /// Outlier channels of its input.
    pub outliers: Option<OutlierSpec>,
    /// Where its weights come from.
    pub weights: WeightsSpec,
}

/// A row-major 2-D tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T = f32> {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<T>,
}

impl<T: Copy> Tensor<T> {
    /// A tensor of the given shape; panics if `data` has another length (a programming error).
    pub fn new(rows: usize, cols: usize, data: Vec<T>) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "tensor data does not match its shape"
        );
        Tensor { rows, cols, data }
    }

    /// The same values converted element by element.
    pub fn map<U: Copy>(&self, f: impl Fn(T) -> U) -> Tensor<U> {
        Tensor::new(
            self.rows,
            self.cols,
            self.data.iter().map(|&v| f(v)).collect(),
        )
    }
}

/// A model's weights, in the order of [`Block::weight_shapes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Weights<T = f32> {
    /// `(name, tensor)` pairs.
    pub tensors: Vec<(String, Tensor<T>)>,
}

impl<T: Copy> Weights<T> {
    /// The tensor called `name`; panics if the block has none (a programming error).
    pub fn get(&self, name: &str) -> &Tensor<T> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("block has no weight `{name}`"))
    }

    /// Every tensor converted element by element.
    pub fn map<U: Copy>(&self, f: impl Fn(T) -> U + Copy) -> Weights<U> {
        Weights {
            tensors: self
                .tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.map(f)))
                .collect(),
        }
    }
}
