//! A user's ONNX model measured in one policy: its inputs and reference, built once per process,
//! and each variant compared output by output and along the graph, value by value (Polygraphy's
//! `--mark all` comparison, for every variant of the matrix).
//!
//! The reference is the model rewritten into the reference policy (weights held in the reference
//! precision, everything computed in FP32) and run by ONNX Runtime on the CPU, with every value
//! that `localize` names marked as an output; or those values as a golden file froze them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::evidence::{assess, Traces};
use super::measurement::{failed, Measured};
use crate::array::Array;
use crate::backend::{Backend, CpuBackend, Timing};
use crate::export::{self, rewrite::Mark, Calibration};
use crate::formats::Format;
use crate::measure::{compare, Accuracy, CacheMode, LatencyStats, Phases};
use crate::model::golden;
use crate::model::onnx::{magnitude_percentile, OnnxModel};
use crate::model::{Block, LoadError, Model};
use crate::precision::{presets, Policy};
use crate::quant::{AmaxAlgorithm, Recipe};
use crate::results::{LayerAccuracy, RunSettings};

/// A user's ONNX model's inputs and reference.
pub struct GraphContext {
    pub(super) model: Model,
    onnx: Arc<OnnxModel>,
    /// The inputs every variant runs on.
    inputs: Vec<Array>,
    /// The values compared along the graph, in graph order.
    marks: Vec<Mark>,
    /// The reference's outputs and marked values, by name.
    reference: Vec<Array>,
    seed: u64,
    /// The reference precision.
    format: Format,
    /// Static scales made for policies that need them, by amax history and algorithm.
    calibrations: Mutex<HashMap<(usize, AmaxAlgorithm), Arc<Calibration>>>,
}

impl GraphContext {
    /// Makes the inputs and evaluates the reference. Fails when an input file cannot be read or
    /// the reference cannot be evaluated (no ONNX Runtime, a model it cannot run).
    pub fn new(model: &Model, settings: &RunSettings) -> Result<Self, LoadError> {
        let Block::Onnx(onnx) = &model.block else {
            unreachable!("graph contexts are made for ONNX models")
        };
        let path = &onnx.file.path;
        let engine = |message: String| LoadError::Reference {
            path: path.clone(),
            message,
        };
        let format = settings.reference;
        let inputs = onnx.make_inputs(settings.seed, model.name.as_str(), format)?;
        let marks = export::localized_values(onnx).map_err(|e| engine(e.to_string()))?;
        let values: Vec<String> = marks.iter().map(|m| m.value.clone()).collect();
        let reference = match &settings.golden {
            Some(path) => {
                let outputs: Vec<String> =
                    onnx.file.outputs.iter().map(|p| p.name.clone()).collect();
                golden::read_values(path, model.name.as_str(), &inputs, &outputs, &values)?
            }
            None => CpuBackend::new()
                .prepare_graph(
                    onnx,
                    &presets::reference(format),
                    &Calibration::default(),
                    &values,
                )
                .and_then(|mut reference| reference.run(&inputs))
                .map_err(|e| engine(e.to_string()))?,
        };
        Ok(GraphContext {
            model: model.clone(),
            onnx: onnx.clone(),
            inputs,
            marks,
            reference,
            seed: settings.seed,
            format,
            calibrations: Mutex::new(HashMap::new()),
        })
    }

    /// The static scales `policy`'s activations take: none unless they are scaled from earlier
    /// calls (`delayed:N:ALGORITHM`); then the amax of each matmul activation in the reference
    /// run on N calibration input sets, combined by the algorithm (the largest, or the last).
    /// Made once per history and algorithm.
    fn calibration(&self, policy: &Policy) -> Result<Arc<Calibration>, String> {
        let Recipe::Delayed { history, algorithm } = policy.matmul.activations.recipe else {
            return Ok(Arc::default());
        };
        let mut made = self.calibrations.lock().expect("no panic holds this lock");
        if let Some(calibration) = made.get(&(history, algorithm)) {
            return Ok(calibration.clone());
        }
        let failed = |e: &dyn std::fmt::Display| format!("calibration: {e}");
        let values = export::calibrated_values(&self.onnx).map_err(|e| failed(&e))?;
        let inputs: Vec<&str> = self.onnx.inputs.iter().map(|i| i.name.as_str()).collect();
        let marks: Vec<String> = values
            .iter()
            .filter(|v| !inputs.contains(&v.as_str()))
            .cloned()
            .collect();
        let mut reference = CpuBackend::new()
            .prepare_graph(
                &self.onnx,
                &presets::reference(self.format),
                &Calibration::default(),
                &marks,
            )
            .map_err(|e| failed(&e))?;
        // Inputs read from files give as many sets as there are files.
        let sets = self.onnx.calibration_sets(history);
        let mut amax: HashMap<String, f32> = HashMap::new();
        for index in 0..sets {
            let set = self
                .onnx
                .make_calibration_inputs(self.seed, self.model.name.as_str(), self.format, index)
                .map_err(|e| failed(&e))?;
            let outputs = reference.run(&set).map_err(|e| failed(&e))?;
            for value in &values {
                let array = set
                    .iter()
                    .chain(&outputs)
                    .find(|a| &a.name == value)
                    .ok_or_else(|| failed(&format!("no value `{value}`")))?;
                let values = array.data.to_f32();
                let this = match self.onnx.percentile {
                    Some(percentile) => magnitude_percentile(&values, percentile),
                    None => values.iter().fold(0.0f32, |m, v| m.max(v.abs())),
                };
                let entry = amax.entry(value.clone()).or_insert(0.0);
                *entry = match algorithm {
                    AmaxAlgorithm::Max => entry.max(this),
                    AmaxAlgorithm::MostRecent => this,
                };
            }
        }
        let calibration = Arc::new(Calibration::new(amax));
        made.insert((history, algorithm), calibration.clone());
        Ok(calibration)
    }

    fn reference(&self, name: &str) -> Option<&Array> {
        self.reference.iter().find(|a| a.name == name)
    }
}

fn value<'a>(values: &'a [Array], name: &str) -> Result<&'a Array, String> {
    values
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| format!("the engine returned no output `{name}`"))
}

/// `value` against the reference's value of the same name.
fn against(reference: &Array, value: &Array) -> Result<Accuracy, String> {
    if value.shape != reference.shape {
        return Err(format!(
            "`{}` has shape {:?}, the reference's {:?}",
            value.name, value.shape, reference.shape
        ));
    }
    compare(&value.data.to_f32(), &reference.data.to_f64())
        .map_err(|e| format!("accuracy of `{}`: {e}", value.name))
}

/// The worst of the gated outputs' accuracies: the lowest cosine, NaN lowest of all.
fn worst(accuracies: Vec<Accuracy>) -> Option<Accuracy> {
    accuracies.into_iter().min_by(|a, b| {
        let key = |x: &Accuracy| {
            if x.cos.is_nan() {
                f64::NEG_INFINITY
            } else {
                x.cos
            }
        };
        key(a).total_cmp(&key(b))
    })
}

/// The gated outputs of `values` against `reference`'s, each; fails on a missing output.
fn gated_outputs(
    ctx: &GraphContext,
    values: &[Array],
    reference: impl Fn(&str) -> Option<Array>,
) -> Result<Vec<Accuracy>, String> {
    ctx.onnx
        .gated
        .iter()
        .map(|name| {
            let expected =
                reference(name).ok_or_else(|| format!("the reference has no output `{name}`"))?;
            against(&expected, value(values, name)?)
        })
        .collect()
}

/// Measures `policy` of the context's model on `backend`.
pub fn measure(
    ctx: &GraphContext,
    policy: &Policy,
    backend: &dyn Backend,
    settings: &RunSettings,
) -> Result<Measured, String> {
    let mut phases = Phases::default();
    let values: Vec<String> = ctx.marks.iter().map(|m| m.value.clone()).collect();
    let calibration = phases.time(|p| &mut p.calibration, || ctx.calibration(policy))?;
    let mut executable = phases
        .time(
            |p| &mut p.build,
            || backend.prepare_graph(&ctx.onnx, policy, &calibration, &values),
        )
        .map_err(failed("build"))?;
    let (outputs, accuracy, layers) = phases.time(
        |p| &mut p.run,
        || -> Result<_, String> {
            let outputs = executable.run(&ctx.inputs).map_err(failed("run"))?;
            let by_reference = |name: &str| ctx.reference(name).cloned();
            let accuracy = worst(gated_outputs(ctx, &outputs, by_reference)?)
                .ok_or_else(|| "accuracy: the model has no gated output".to_owned())?;
            let layers = along_the_graph(ctx, &outputs)?;
            Ok((outputs, accuracy, layers))
        },
    )?;
    // Another backend's outputs are checked against ONNX Runtime's run of the same rewrite,
    // where the run's `--cpu-agreement` says (no engine here reports its kernels).
    let checked = !backend.is_emulation() && settings.cpu_agreement.emulates(false);
    let cpu_agreement = match checked {
        false => None,
        true => phases.time(
            |p| &mut p.agreement,
            || -> Result<_, String> {
                let emulation = CpuBackend::new()
                    .prepare_graph(&ctx.onnx, policy, &calibration, &[])
                    .and_then(|mut e| e.run(&ctx.inputs))
                    .map_err(failed("CPU emulation"))?;
                let by_emulation = |name: &str| emulation.iter().find(|a| a.name == name).cloned();
                let agreement = gated_outputs(ctx, &outputs, by_emulation)
                    .map_err(|e| format!("CPU agreement: {e}"))?;
                Ok(worst(agreement))
            },
        )?,
    };
    drop(outputs);
    let engine_layers = phases
        .time(|p| &mut p.trace, || executable.layer_report())
        .map_err(failed("layer report"))?;
    let traces = Traces {
        kernels: None,
        layers: engine_layers.as_deref(),
    };
    let emulated = executable.emulated();
    // The emulation is what other engines are judged by; what an engine reports is evidence.
    let mismatch =
        (!backend.is_emulation()).then(|| assess(None, &ctx.model.block, policy, traces, emulated));
    if settings.cache == CacheMode::Cold {
        tracing::warn!("ONNX models run on the host's engines: timing warm");
    }
    let timing = Timing {
        warmup: settings.warmup,
        iterations: settings.iterations,
        cache: CacheMode::Warm,
    };
    let samples = phases
        .time(|p| &mut p.timing, || executable.time(&ctx.inputs, timing))
        .map_err(failed("timing"))?;
    phases.timed = samples.iter().map(|t| t.as_secs_f64()).sum();
    let latency = LatencyStats::from_samples(&samples)
        .ok_or_else(|| "timing: the backend returned no samples".to_owned())?;
    Ok(Measured {
        accuracy,
        latency,
        emulated,
        cpu_agreement,
        kernels: None,
        mismatch,
        layers,
        clocks: None,
        cache: CacheMode::Warm,
        phases,
    })
}

/// Each output, then each marked value the engine reported, in graph order, against the
/// reference's: named `output NAME` and `NODE (OpType)`.
fn along_the_graph(ctx: &GraphContext, values: &[Array]) -> Result<Vec<LayerAccuracy>, String> {
    let outputs = ctx.onnx.file.outputs.iter().map(|port| {
        let name = format!("output {}", port.name);
        (name, port.name.as_str())
    });
    let marks = ctx
        .marks
        .iter()
        .map(|m| (format!("{} ({})", m.node, m.op_type), m.value.as_str()));
    marks
        .chain(outputs)
        .filter_map(|(name, value)| {
            let found = values.iter().find(|a| a.name == value)?;
            let reference = ctx.reference(value)?;
            Some(against(reference, found).map(|accuracy| LayerAccuracy { name, accuracy }))
        })
        .collect()
}
