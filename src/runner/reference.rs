//! The reference a variant is compared with, and the weights and input it runs on: built once per
//! model in each process.

use super::graph::GraphContext;
use crate::backend::{Backend, CpuBackend};
use crate::export::{self, Calibration};
use crate::formats::Format;
use crate::model::forward::{forward, Exact, Forward};
use crate::model::golden::{self, GoldenOutput, GoldenValues};
use crate::model::onnx::OnnxModel;
use crate::model::{seeded, Block, LoadError, Model, Weights};
use crate::precision::presets;
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
        match &model.block {
            Block::Onnx(_) => GraphContext::new(model, settings).map(ModelContext::Graph),
            _ => BlockContext::new(model, settings).map(ModelContext::Block),
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
}

impl BlockContext {
    /// Builds or reads the model's weights and input in the reference precision, and the
    /// reference: the run's golden file's, or the same block evaluated in f64 with no rounding,
    /// i.e. exactly what the model in the reference precision defines, up to f64 accumulation.
    /// Fails when a weight, input or golden file cannot be read as the model needs it.
    pub fn new(model: &Model, settings: &RunSettings) -> Result<Self, LoadError> {
        let format = settings.reference;
        let weights = model.weights(settings.seed, format)?;
        let input = model.input(settings.seed, format)?;
        let (reference, reference_taps) = match &settings.golden {
            Some(path) => {
                let graph = model.block.graph();
                let taps: Vec<String> = graph.taps.iter().map(|(name, _)| name.clone()).collect();
                let name = model.name.as_str();
                golden::read(path, name, &input, graph.output_features(), &taps)?
            }
            None => {
                let exact = exact_reference(model, &weights, &input)?;
                (exact.output, exact.taps)
            }
        };
        Ok(BlockContext {
            model: model.clone(),
            weights,
            input,
            reference,
            reference_taps,
            seed: settings.seed,
            format,
        })
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
