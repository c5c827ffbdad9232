//! Models: the built-in blocks, their weights and inputs, and their math.
//!
//! A [`Model`] is a validated suite entry. [`seeded`] makes its weights and inputs reproducibly;
//! [`forward`] holds the block math once, generic over the scalar type and the rounding applied after
//! each operation, so the CPU backend (f32, rounded to a format) and the exact reference (f64, not
//! rounded) cannot drift apart.

pub mod blocks;
pub mod budget;
pub mod config;
pub mod forward;
pub mod golden;
pub mod graph;
pub mod load;
pub mod onnx;
pub mod seeded;

use std::path::PathBuf;

pub use blocks::{AttentionBlock, Block, LayerKind, LayerSpec, MlpShape};
pub use config::{Activation, CheckpointSpec, OutlierSpec, WeightsSpec};
pub use load::LoadError;

use crate::formats::Format;
use crate::ident::Ident;
use crate::tensor::Tensor;

/// A model of a suite, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model's name.
    pub name: Ident,
    /// Its block.
    pub block: Block,
    /// Rows of its input.
    pub tokens: usize,
    /// Outlier channels of its seeded input.
    pub outliers: Option<OutlierSpec>,
    /// A file its input is read from instead of seeded.
    pub input_file: Option<InputFile>,
    /// Where its weights come from (paths resolved against the suite's folder).
    pub weights: WeightsSpec,
}

/// A captured input: a `.safetensors` tensor or a `.npy` array of shape `[tokens, features]`
/// (a leading batch dimension of 1 is accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The file.
    pub path: PathBuf,
    /// The tensor of a `.safetensors` file; may be left out when the file holds one.
    pub tensor: Option<String>,
}

impl Model {
    /// The model's weights, seeded or read from its checkpoint, rounded to `format`.
    pub fn weights(&self, seed: u64, format: Format) -> Result<Weights, LoadError> {
        match &self.weights {
            WeightsSpec::Seeded => Ok(seeded::weights(self, seed, format)),
            WeightsSpec::Safetensors(checkpoint) => {
                load::checkpoint(checkpoint, &self.block.graph(), format)
            }
        }
    }

    /// Checks what can be checked of the model's files without reading their data: the
    /// checkpoint's header (names, shapes, types). Seeded models and inputs pass.
    pub fn check_files(&self) -> Result<(), LoadError> {
        match &self.weights {
            WeightsSpec::Seeded => Ok(()),
            WeightsSpec::Safetensors(checkpoint) => {
                load::check_checkpoint(checkpoint, &self.block.graph())
            }
        }
    }

    /// The measured input, seeded or read from its file, rounded to `format`.
    pub fn input(&self, seed: u64, format: Format) -> Result<Tensor, LoadError> {
        match &self.input_file {
            None => Ok(seeded::input(self, seed, format, seeded::INPUT)),
            Some(file) => load::input(file, [self.tokens, self.block.input_features()], format),
        }
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
    pub fn map<U: Copy + Send>(&self, f: impl Fn(T) -> U + Copy + Sync + Send) -> Weights<U>
    where
        T: Sync,
    {
        Weights {
            tensors: self
                .tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.map(f)))
                .collect(),
        }
    }
}
