//! The CPU backend: each precision policy emulated exactly on the CPU.
//!
//! Matmul operands are quantized with the policy's recipes ([`crate::quant`]): weights once, in
//! `prepare`, like an engine build; activations on every call. Products accumulate in f32 (integer
//! operands exactly, as int32), scales apply after accumulation, and every operation's output is
//! rounded to the format the policy gives its class.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ort::OrtModel;
use super::{Backend, BackendError, BackendKind, Executable, GraphExecutable, Timing};
use crate::array::Array;
use crate::export::{self, Calibration, ExportError};
use crate::formats::Format;
use crate::host::HostInfo;
use crate::model::forward::{add_row, forward, OpClass, Ops};
use crate::model::graph::Graph;
use crate::model::onnx::OnnxModel;
use crate::model::{Block, Model, Weights};
use crate::precision::{MatmulPolicy, Policy};
use crate::quant::{self, AmaxHistory, Operand, QuantSpec, Recipe};
use crate::tensor::Tensor;

/// How one matmul runs in a "what if" emulation: both operands as `operands` says, the product
/// stored in `output` (`None`: in the policy's matmul output format).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatmulOverride {
    /// Both operands' recipe.
    pub operands: QuantSpec,
    /// The product's format, where it changes too.
    pub output: Option<Format>,
}

impl MatmulOverride {
    /// Both operands as `spec` says, the output as the policy says.
    pub fn operands(spec: QuantSpec) -> Self {
        MatmulOverride {
            operands: spec,
            output: None,
        }
    }
}

/// precheck's CPU emulation of each precision.
#[derive(Debug, Default)]
pub struct CpuBackend {
    /// Weights already quantized, by weight name and matmul policy, where this backend keeps them
    /// ([`CpuBackend::keeping_weights`]).
    kept: Option<Mutex<KeptWeights>>,
}

/// Quantized weights by weight name and the matmul policy they were quantized for.
type KeptWeights = HashMap<(String, MatmulPolicy), Arc<Operand>>;

impl CpuBackend {
    /// The CPU backend, using rayon's global thread pool.
    pub fn new() -> Self {
        CpuBackend::default()
    }

    /// A CPU backend that quantizes each weight once per matmul policy and keeps it for its later
    /// builds: the fingerprint's emulations of one model differ in one matmul at a time, and
    /// quantizing the others again was most of their host time. Weights are known by name, so
    /// such a backend builds one model's weights only.
    pub fn keeping_weights() -> Self {
        CpuBackend {
            kept: Some(Mutex::default()),
        }
    }

    /// `tensor`, the weight `name`, quantized for `matmul`: kept from an earlier build where this
    /// backend keeps weights.
    fn quantized_weight(&self, name: &str, tensor: &Tensor, matmul: &MatmulPolicy) -> Arc<Operand> {
        let Some(kept) = &self.kept else {
            return Arc::new(prepare_weight(tensor, matmul));
        };
        let key = (name.to_owned(), *matmul);
        if let Some(operand) = kept.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return operand.clone();
        }
        let operand = Arc::new(prepare_weight(tensor, matmul));
        kept.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, operand.clone());
        operand
    }
}

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn device_name(&self) -> String {
        let host = HostInfo::current();
        format!("{} ({} threads)", host.cpu_model, host.cpu_threads)
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError> {
        if let Block::Onnx(onnx) = &model.block {
            return Err(BackendError::Unsupported(format!(
                "{} is an ONNX model: it runs as a graph (`Backend::prepare_graph`)",
                onnx.file.path.display()
            )));
        }
        Ok(Box::new(self.prepare_with_overrides(
            model,
            weights,
            policy,
            &[],
        )))
    }

    fn is_emulation(&self) -> bool {
        true
    }

    /// A user's ONNX model runs in ONNX Runtime's CPU provider, rewritten into the policy:
    /// precheck's emulation of it.
    fn prepare_graph(
        &self,
        model: &OnnxModel,
        policy: &Policy,
        calibration: &Calibration,
        marks: &[String],
    ) -> Result<Box<dyn GraphExecutable>, BackendError> {
        let unsupported = |e: ExportError| BackendError::Unsupported(e.to_string());
        let marked = export::user_model(
            model,
            policy,
            export::Precision::InGraph,
            calibration,
            marks,
        )
        .map_err(unsupported)?;
        Ok(Box::new(OrtGraph {
            marked: OrtModel::new(&marked)?,
            plain: None,
            model: model.clone(),
            policy: policy.clone(),
            calibration: calibration.clone(),
            quantized: policy.matmul.weights.recipe != Recipe::Cast
                || policy.matmul.activations.recipe != Recipe::Cast,
        }))
    }
}

/// A user's ONNX model in ONNX Runtime: with its marks for accuracy, without them for timing
/// (marked values keep the engine from fusing across them).
struct OrtGraph {
    marked: OrtModel,
    plain: Option<OrtModel>,
    model: OnnxModel,
    policy: Policy,
    calibration: Calibration,
    quantized: bool,
}

impl GraphExecutable for OrtGraph {
    fn run(&mut self, inputs: &[Array]) -> Result<Vec<Array>, BackendError> {
        self.marked.run(inputs)
    }

    fn time(&mut self, inputs: &[Array], timing: Timing) -> Result<Vec<Duration>, BackendError> {
        let plain = match &mut self.plain {
            Some(plain) => plain,
            None => {
                let bytes = export::user_model(
                    &self.model,
                    &self.policy,
                    export::Precision::InGraph,
                    &self.calibration,
                    &[],
                )
                .map_err(|e| BackendError::Unsupported(e.to_string()))?;
                self.plain.insert(OrtModel::new(&bytes)?)
            }
        };
        plain.time(inputs, timing.warmup as usize, timing.iterations)
    }

    fn emulated(&self) -> bool {
        self.quantized
    }
}

impl CpuBackend {
    /// Like [`Backend::prepare`], with some matmuls (named by their weight) running as their
    /// [`MatmulOverride`] says instead of as the policy says: the "what if this operation ran in
    /// another precision" emulations that precision-mismatch fingerprints compare against.
    pub fn prepare_with_overrides(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
        overrides: &[(String, MatmulOverride)],
    ) -> CpuExecutable {
        let graph = model.block.graph();
        let matmuls: HashMap<String, MatmulPolicy> = graph
            .matmuls()
            .map(|name| {
                let mut matmul = policy.matmul;
                if let Some((_, changed)) = overrides.iter().find(|(op, _)| op == name) {
                    matmul.weights = changed.operands;
                    matmul.activations = changed.operands;
                    matmul.output = changed.output.unwrap_or(matmul.output);
                }
                (name.to_owned(), matmul)
            })
            .collect();
        let mut operands = HashMap::new();
        let mut parameters = HashMap::new();
        for (name, tensor) in &weights.tensors {
            if let Some(matmul) = matmuls.get(name) {
                operands.insert(name.clone(), self.quantized_weight(name, tensor, matmul));
            } else {
                parameters.insert(name.clone(), tensor.data.clone());
            }
        }
        CpuExecutable {
            graph,
            ops: PolicyOps {
                policy: policy.clone(),
                matmuls,
                weights: operands,
                parameters,
                histories: HashMap::new(),
            },
            taps: Vec::new(),
        }
    }
}

/// Quantizes a weight once. Weight-only group recipes dequantize into the activations' format,
/// as W4A16 kernels do before their BF16 or FP16 matmul.
fn prepare_weight(weight: &Tensor, matmul: &MatmulPolicy) -> Operand {
    let spec = matmul.weights;
    let mut operand = quant::quantize(weight, spec, &mut AmaxHistory::default());
    let activations = matmul.activations;
    if matches!(spec.recipe, Recipe::Group { .. }) && activations.recipe == Recipe::Cast {
        activations.format.round_slice(&mut operand.values.data);
    }
    operand
}

struct PolicyOps {
    policy: Policy,
    /// Each matmul's policy, by weight name: the policy's, unless overridden.
    matmuls: HashMap<String, MatmulPolicy>,
    /// The quantized matmul weights.
    weights: HashMap<String, Arc<Operand>>,
    /// Biases and norm parameters, in the reference precision (engines keep them high).
    parameters: HashMap<String, Vec<f32>>,
    /// Amax history per matmul (by weight name), for delayed scaling of activations.
    histories: HashMap<String, AmaxHistory>,
}

impl Ops<f32> for PolicyOps {
    fn linear(&mut self, x: &Tensor, weight: &str, bias: Option<&str>) -> Tensor {
        let matmul = self.matmuls[weight];
        let history = self.histories.entry(weight.to_owned()).or_default();
        let x = quant::quantize(x, matmul.activations, history);
        let mut y = quant::matmul(&x, &self.weights[weight]);
        if let Some(bias) = bias {
            add_row(&mut y, &self.parameters[bias]);
        }
        matmul.output.round_slice(&mut y.data);
        y
    }

    fn parameter(&self, name: &str) -> &[f32] {
        &self.parameters[name]
    }

    fn store(&self, class: OpClass, values: &mut [f32]) {
        let format = match class {
            OpClass::Activation => self.policy.activation,
            OpClass::Elementwise => self.policy.default,
            OpClass::Softmax => self.policy.softmax,
            OpClass::Norm => self.policy.norm,
            OpClass::Output => self.policy.output,
        };
        format.round_slice(values);
    }
}

/// A model built by the CPU backend.
pub struct CpuExecutable {
    graph: Graph,
    ops: PolicyOps,
    /// The last run's taps.
    taps: Vec<(String, Tensor)>,
}

impl Executable for CpuExecutable {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        if input.cols != self.graph.input_features {
            return Err(BackendError::Failed(format!(
                "input has {} features, the block takes {}",
                input.cols, self.graph.input_features
            )));
        }
        let mut input = input.clone();
        self.ops.policy.default.round_slice(&mut input.data);
        let result = forward(&self.graph, &mut self.ops, &input);
        self.taps = result.taps;
        Ok(result.output)
    }

    fn taps(&mut self) -> Vec<(String, Tensor)> {
        std::mem::take(&mut self.taps)
    }

    /// Every precision but FP32 is emulated here: rounded or quantized, then computed in FP32.
    fn emulated(&self) -> bool {
        self.ops.policy.narrower_than_fp32()
    }

    fn calibration_runs(&self) -> usize {
        let recipe = self.ops.policy.matmul.activations.recipe;
        match recipe {
            Recipe::Delayed { history, .. } => history.min(MAX_CALIBRATION_RUNS),
            _ => 0,
        }
    }
}

/// Calibration passes before a delayed-scaling variant is measured: its amax history holds the
/// passes that ran, up to this many (each is a full forward pass).
const MAX_CALIBRATION_RUNS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Format;
    use crate::ident::Ident;
    use crate::model::WeightsSpec;
    use crate::model::{seeded, Block};
    use crate::precision::presets;

    fn mlp() -> Model {
        Model {
            name: Ident::try_from("m".to_owned()).unwrap(),
            block: Block::Mlp(crate::model::MlpShape {
                hidden: 64,
                intermediate: 128,
                activation: crate::model::Activation::GeluTanh,
                gated: true,
            }),
            tokens: 8,
            outliers: None,
            input_file: None,
            weights: WeightsSpec::Seeded,
        }
    }

    #[test]
    fn every_preset_runs_and_stays_close() {
        let model = mlp();
        let weights = seeded::weights(&model, 1, Format::Bf16);
        let input = seeded::input(&model, 1, Format::Bf16, seeded::INPUT);
        let reference = CpuBackend::new()
            .prepare(&model, &weights, &presets::preset("fp32").unwrap())
            .unwrap()
            .run(&input)
            .unwrap();
        for name in presets::names() {
            let policy = presets::preset(name).unwrap();
            let output = CpuBackend::new()
                .prepare(&model, &weights, &policy)
                .unwrap()
                .run(&input)
                .unwrap();
            let cos = crate::measure::compare(&output.data, &reference.data)
                .unwrap()
                .cos;
            assert!(cos > 0.9, "{name}: cos {cos}");
        }
    }

    #[test]
    fn kept_weights_are_quantized_once_and_change_nothing() {
        let model = mlp();
        let weights = seeded::weights(&model, 1, Format::Bf16);
        let input = seeded::input(&model, 1, Format::Bf16, seeded::INPUT);
        let policy = presets::preset("fp8_e4m3").unwrap();
        let names: Vec<String> = model.block.graph().matmuls().map(str::to_owned).collect();
        let overridden = [(
            names[0].clone(),
            MatmulOverride::operands(QuantSpec::cast(Format::Bf16)),
        )];
        let keeping = CpuBackend::keeping_weights();
        let first = keeping.prepare_with_overrides(&model, &weights, &policy, &[]);
        let mut second = keeping.prepare_with_overrides(&model, &weights, &policy, &overridden);
        for name in &names[1..] {
            assert!(Arc::ptr_eq(
                &first.ops.weights[name],
                &second.ops.weights[name]
            ));
        }
        assert!(!Arc::ptr_eq(
            &first.ops.weights[&names[0]],
            &second.ops.weights[&names[0]]
        ));
        let fresh = CpuBackend::new()
            .prepare_with_overrides(&model, &weights, &policy, &overridden)
            .run(&input)
            .unwrap();
        assert_eq!(second.run(&input).unwrap(), fresh);
    }
}
