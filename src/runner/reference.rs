//! The reference a variant is compared with, and the weights and input it runs on: built once per
//! model in each process.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::graph::GraphContext;
use super::store::{Store, StoreKey, StoredTensors};
use crate::backend::{Backend, CpuBackend, MatmulOverride};
use crate::export::{self, Calibration};
use crate::formats::Format;
use crate::mismatch::fingerprint::Candidate;
use crate::model::forward::{forward, Exact, Forward};
use crate::model::golden::{self, GoldenOutput, GoldenValues};
use crate::model::onnx::OnnxModel;
use crate::model::{seeded, Block, LoadError, Model, Weights, WeightsSpec};
use crate::precision::{presets, Policy};
use crate::results::RunSettings;
use crate::suite::Suite;
use crate::tensor::Tensor;

/// What a model's variants are measured against, built once for all its variants in a process:
/// a built-in block's or a user's ONNX model's.
pub enum ModelContext {
    /// A built-in block.
    Block(BlockContext),
    /// A user's ONNX model.
    Graph(GraphContext),
}

impl ModelContext {
    /// The context of `model`: its inputs and reference. Fails when an input, a weight or a
    /// golden file cannot be read as the model needs it, or the reference cannot be evaluated.
    pub fn new(model: &Model, settings: &RunSettings) -> Result<Self, LoadError> {
        Self::with_inputs(model, settings, None)
    }

    /// [`ModelContext::new`], with a built-in block's weights and input already read (by
    /// [`BlockInputs::read`] with the same `model` and `settings`).
    pub fn with_inputs(
        model: &Model,
        settings: &RunSettings,
        inputs: Option<BlockInputs>,
    ) -> Result<Self, LoadError> {
        match &model.block {
            Block::Onnx(_) => GraphContext::new(model, settings).map(ModelContext::Graph),
            _ => {
                let inputs = match inputs {
                    Some(inputs) => inputs,
                    None => BlockInputs::read(model, settings)?,
                };
                BlockContext::new(model, settings, inputs).map(ModelContext::Block)
            }
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        match self {
            ModelContext::Block(ctx) => &ctx.model,
            ModelContext::Graph(ctx) => &ctx.model,
        }
    }
}

/// Weights, input and exact reference output of a built-in block.
pub struct BlockContext {
    pub(super) model: Model,
    pub(super) weights: Weights,
    pub(super) input: Tensor,
    pub(super) reference: Tensor<f64>,
    /// The reference's taps (a stack's layers).
    pub(super) reference_taps: Vec<(String, Tensor<f64>)>,
    seed: u64,
    format: Format,
    /// The reference store and this model's key in it, when the run keeps one.
    stored: Option<(Store, StoreKey)>,
}

/// A built-in block's weights and measured input in the reference precision: host work only
/// (drawn from the seed, or read from the model's files), which a worker does while it opens its
/// device.
pub struct BlockInputs {
    weights: Weights,
    input: Tensor,
}

impl BlockInputs {
    /// Draws or reads `model`'s weights and input in the run's reference precision. Fails when a
    /// weight or input file cannot be read as the model needs it.
    pub fn read(model: &Model, settings: &RunSettings) -> Result<Self, LoadError> {
        let format = settings.reference;
        let weights = model.weights(settings.seed, format)?;
        let input = model.input(settings.seed, format)?;
        Ok(BlockInputs { weights, input })
    }
}

impl BlockContext {
    /// The context of `model` on its `inputs`, with the reference: the run's golden file's, or
    /// the same block evaluated in f64 with no rounding, i.e. exactly what the model in the
    /// reference precision defines, up to f64 accumulation. Fails when a golden file cannot be
    /// read as the model needs it.
    pub fn new(
        model: &Model,
        settings: &RunSettings,
        BlockInputs { weights, input }: BlockInputs,
    ) -> Result<Self, LoadError> {
        let format = settings.reference;
        let stored = settings
            .store
            .as_deref()
            .and_then(Store::open)
            .map(|store| {
                let key = reference_key(model, settings, &weights, &input);
                (store, key)
            });
        let (reference, reference_taps) = match &settings.golden {
            Some(path) => {
                let graph = model.block.graph();
                let taps: Vec<String> = graph.taps.iter().map(|(name, _)| name.clone()).collect();
                let name = model.name.as_str();
                golden::read(path, name, &input, graph.output_features(), &taps)?
            }
            None => stored_or_exact(model, &weights, &input, stored.as_ref())?,
        };
        Ok(BlockContext {
            model: model.clone(),
            weights,
            input,
            reference,
            reference_taps,
            seed: settings.seed,
            format,
            stored,
        })
    }

    /// The CPU emulation of `policy` (with some matmuls `overridden`, for the fingerprint) on this
    /// context's input: read from the reference store, or made by `emulate` and kept there.
    pub(super) fn stored_emulation<E>(
        &self,
        policy: &Policy,
        overridden: &[(String, MatmulOverride)],
        emulate: impl FnOnce() -> Result<Tensor, E>,
    ) -> Result<Tensor, E> {
        match self.load_emulation(policy, overridden) {
            Some(found) => Ok(found),
            None => self.emulate_and_keep(policy, overridden, emulate),
        }
    }

    /// [`BlockContext::stored_emulation`] of each candidate: those in the store read in parallel
    /// (reading and decoding an entry is host work of tens of milliseconds, and a fingerprint
    /// reads a dozen), the others made by `emulate` one after another (an emulation is parallel
    /// itself, and its products may go to the device).
    pub(super) fn stored_emulations<E>(
        &self,
        candidates: &[Candidate],
        mut emulate: impl FnMut(&Candidate) -> Result<Tensor, E>,
    ) -> Result<Vec<Tensor>, E> {
        let found: Vec<Option<Tensor>> = candidates
            .par_iter()
            .map(|c| self.load_emulation(&c.policy, &c.overrides))
            .collect();
        found
            .into_iter()
            .zip(candidates)
            .map(|(found, c)| match found {
                Some(found) => Ok(found),
                None => self.emulate_and_keep(&c.policy, &c.overrides, || emulate(c)),
            })
            .collect()
    }

    /// The store's key of the emulation of `policy` with `overridden` matmuls, when the run
    /// keeps a store.
    fn emulation_key(
        &self,
        policy: &Policy,
        overridden: &[(String, MatmulOverride)],
    ) -> Option<(&Store, StoreKey)> {
        self.stored.as_ref().map(|(store, key)| {
            let parts = [&format!("{policy:?}"), &format!("{overridden:?}")];
            (store, key.derived("emulation", &parts.map(String::as_str)))
        })
    }

    fn load_emulation(
        &self,
        policy: &Policy,
        overridden: &[(String, MatmulOverride)],
    ) -> Option<Tensor> {
        let (store, key) = self.emulation_key(policy, overridden)?;
        let (rows, cols) = (self.reference.rows, self.reference.cols);
        let shape = [("output", rows, cols)];
        let (_, output) = store.load_as(&key, &shape, |v| v as f32)?.remove(0);
        Some(output)
    }

    fn emulate_and_keep<E>(
        &self,
        policy: &Policy,
        overridden: &[(String, MatmulOverride)],
        emulate: impl FnOnce() -> Result<Tensor, E>,
    ) -> Result<Tensor, E> {
        let emulation = emulate()?;
        if let Some((store, key)) = self.emulation_key(policy, overridden) {
            store.save(&key, &[("output", &emulation.map(f64::from))]);
        }
        Ok(emulation)
    }

    /// Calibration input `index`: seeded like the measured input, from another stream.
    pub(super) fn calibration_input(&self, index: usize) -> Tensor {
        seeded::input(
            &self.model,
            self.seed,
            self.format,
            &format!("calibration.{index}"),
        )
    }
}

/// The key of `model`'s reference: the model as the suite gives it, the seed, the reference
/// format, the input's bytes and, for weights from a checkpoint, theirs (seeded weights follow
/// from the model and the seed).
fn reference_key(
    model: &Model,
    settings: &RunSettings,
    weights: &Weights,
    input: &Tensor,
) -> StoreKey {
    let weights_digest = match model.weights {
        WeightsSpec::Seeded => "seeded".to_owned(),
        WeightsSpec::Safetensors(_) => {
            let mut hasher = Sha256::new();
            for (name, tensor) in &weights.tensors {
                hasher.update(name.as_bytes());
                hasher.update(golden::input_digest(tensor).as_bytes());
            }
            format!("{:x}", hasher.finalize())
        }
    };
    StoreKey::new(
        "reference",
        &[
            &format!("{model:?}"),
            &settings.seed.to_string(),
            &settings.reference.to_string(),
            &golden::input_digest(input),
            &weights_digest,
        ],
    )
}

/// The exact reference's output and taps, from the store when it holds them, else computed (and
/// kept there).
fn stored_or_exact(
    model: &Model,
    weights: &Weights,
    input: &Tensor,
    stored: Option<&(Store, StoreKey)>,
) -> Result<(Tensor<f64>, StoredTensors), LoadError> {
    let graph = model.block.graph();
    let mut shapes = vec![("output", input.rows, graph.output_features())];
    shapes.extend(
        graph
            .taps
            .iter()
            .map(|(name, value)| (name.as_str(), input.rows, graph.features(*value))),
    );
    if let Some((store, key)) = stored {
        if let Some(mut found) = store.load(key, &shapes) {
            let (_, output) = found.remove(0);
            return Ok((output, found));
        }
    }
    let exact = exact_reference(model, weights, input)?;
    if let Some((store, key)) = stored {
        let mut tensors = vec![("output", &exact.output)];
        tensors.extend(exact.taps.iter().map(|(name, t)| (name.as_str(), t)));
        store.save(key, &tensors);
    }
    Ok((exact.output, exact.taps))
}

/// `model` evaluated exactly: f64 products of the weights and input as held, no rounding. An
/// ONNX model has no exact evaluation here.
pub fn exact_reference(
    model: &Model,
    weights: &Weights,
    input: &Tensor,
) -> Result<Forward<f64>, LoadError> {
    let graph = model.block.graph();
    if let Block::Onnx(onnx) = &model.block {
        return Err(LoadError::NotEvaluable {
            path: onnx.file.path.clone(),
        });
    }
    let exact_weights = weights.map(f64::from);
    Ok(forward(
        &graph,
        &mut Exact {
            weights: &exact_weights,
        },
        &input.map(f64::from),
    ))
}

/// Each model's reference for a golden file: precheck's exact evaluation, or with `backend`, the
/// suite's reference precision (its baseline policy) run there; a user's ONNX model's outputs
/// and marked values, its reference rewrite run by `backend` (ONNX Runtime in process without
/// one). Fails on the first model that cannot be loaded or run.
pub fn golden_outputs(
    suite: &Suite,
    seed: u64,
    backend: Option<&dyn Backend>,
) -> Result<Vec<GoldenOutput>, String> {
    let format = suite.reference.precision.format();
    let baseline = suite.baseline_policy();
    suite
        .models
        .iter()
        .map(|model| {
            let failed = |e: &dyn std::fmt::Display| format!("model {}: {e}", model.name);
            if let Block::Onnx(onnx) = &model.block {
                return graph_golden(model, onnx, seed, format, backend).map_err(|e| failed(&e));
            }
            let weights = model.weights(seed, format).map_err(|e| failed(&e))?;
            let input = model.input(seed, format).map_err(|e| failed(&e))?;
            let (source, output, taps) = match backend {
                None => {
                    let exact = exact_reference(model, &weights, &input).map_err(|e| failed(&e))?;
                    let to_f32 = |t: Tensor<f64>| t.map(|v| v as f32);
                    let taps = exact.taps.into_iter().map(|(n, t)| (n, to_f32(t)));
                    ("exact".to_owned(), to_f32(exact.output), taps.collect())
                }
                Some(backend) => {
                    let policy = baseline.clone();
                    let mut executable = backend
                        .prepare(model, &weights, &policy)
                        .map_err(|e| failed(&e))?;
                    let output = executable.run(&input).map_err(|e| failed(&e))?;
                    let source = format!("{} on {}", policy.name, backend.device_name());
                    (source, output, executable.taps())
                }
            };
            Ok(GoldenOutput {
                model: model.name.to_string(),
                input_sha256: golden::input_digest(&input),
                source,
                values: GoldenValues::Block { output, taps },
            })
        })
        .collect()
}

/// A user's ONNX model's golden values: its reference rewrite (weights in `format`, computing
/// in FP32) run on `backend`, or in ONNX Runtime in process, with its localized values marked.
fn graph_golden(
    model: &Model,
    onnx: &OnnxModel,
    seed: u64,
    format: Format,
    backend: Option<&dyn Backend>,
) -> Result<GoldenOutput, String> {
    let inputs = onnx
        .make_inputs(seed, model.name.as_str(), format)
        .map_err(|e| e.to_string())?;
    let marks: Vec<String> = export::localized_values(onnx)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|m| m.value)
        .collect();
    let cpu = CpuBackend::new();
    let backend = backend.unwrap_or(&cpu);
    let policy = presets::reference(format);
    let values = backend
        .prepare_graph(onnx, &policy, &Calibration::default(), &marks)
        .and_then(|mut reference| reference.run(&inputs))
        .map_err(|e| e.to_string())?;
    Ok(GoldenOutput {
        model: model.name.to_string(),
        input_sha256: golden::arrays_digest(&inputs),
        source: format!("{} on {}", policy.name, backend.device_name()),
        values: GoldenValues::Graph(values),
    })
}
