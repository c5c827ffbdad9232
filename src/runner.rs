//! Running a plan: for each variant, build, run once for accuracy, time, gate, and append the
//! record. A variant that fails (an error or a panic in a backend) becomes an error record and the
//! run goes on.

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use chrono::Utc;

use crate::backend::{Backend, BackendError, BackendKind, CpuBackend};
use crate::matrix::Variant;
use crate::measure::{compare, Accuracy, LatencyStats};
use crate::model::forward::{forward, Exact};
use crate::model::{seeded, Model, Tensor, Weights};
use crate::plan::Plan;
use crate::precision::Policy;
use crate::results::{
    Baseline, KernelLaunches, ResultsError, ResultsWriter, RunSettings, Status, VariantRecord,
    RECORD_SCHEMA,
};
use crate::suite::Suite;

/// Hears about progress; the terminal's progress bar is one.
pub trait Observer {
    /// Variant `index` (from 0) of `total` starts.
    fn started(&mut self, index: usize, total: usize, variant: &Variant);
    /// A variant's record was written.
    fn finished(&mut self, record: &VariantRecord);
}

/// An observer that ignores everything (tests, `--quiet`).
pub struct Silent;

impl Observer for Silent {
    fn started(&mut self, _: usize, _: usize, _: &Variant) {}
    fn finished(&mut self, _: &VariantRecord) {}
}

/// Weights, input and exact reference output of one model, built once for all its variants.
struct ModelContext {
    model: Model,
    weights: Weights,
    input: Tensor,
    reference: Tensor<f64>,
    seed: u64,
    format: crate::formats::Format,
}

impl ModelContext {
    /// Builds the model's seeded weights and input in the reference precision, and the reference:
    /// the same block evaluated in f64 with no rounding, i.e. exactly what the model in the
    /// reference precision defines, up to f64 accumulation.
    fn new(model: &Model, settings: &RunSettings) -> Self {
        let format = settings.reference;
        let weights = seeded::weights(model, settings.seed, format);
        let input = seeded::input(model, settings.seed, format, seeded::INPUT);
        let exact_weights = weights.map(f64::from);
        let reference = forward(
            &model.block,
            &mut Exact {
                weights: &exact_weights,
            },
            &input.map(f64::from),
        );
        ModelContext {
            model: model.clone(),
            weights,
            input,
            reference,
            seed: settings.seed,
            format,
        }
    }

    /// Calibration input `index`: seeded like the measured input, from another stream.
    fn calibration_input(&self, index: usize) -> Tensor {
        seeded::input(
            &self.model,
            self.seed,
            self.format,
            &format!("calibration.{index}"),
        )
    }
}

/// What one variant measured.
struct Measured {
    accuracy: Accuracy,
    latency: LatencyStats,
    emulated: bool,
    cpu_agreement: Option<Accuracy>,
    kernels: Option<Vec<KernelLaunches>>,
}

/// Runs every variant of `plan` on `backend`, appending each record to `writer` as it ends.
///
/// Returns the records in run order. Only a failure to write results stops the run early.
pub fn run(
    suite: &Suite,
    plan: &Plan,
    backend: &dyn Backend,
    writer: &mut ResultsWriter,
    observer: &mut dyn Observer,
) -> Result<Vec<VariantRecord>, ResultsError> {
    let settings = &plan.settings;
    let device_name = backend.device_name();
    let mut context: Option<ModelContext> = None;
    let mut baseline: Option<(String, Option<f64>)> = None;
    let mut records = Vec::with_capacity(plan.variants.len());
    for (index, variant) in plan.variants.iter().enumerate() {
        observer.started(index, plan.variants.len(), variant);
        let clock = Instant::now();
        let model = suite
            .model(&variant.model)
            .expect("validated suites only name their own models");
        let mut record = blank_record(variant, model, backend, &device_name);
        if context.as_ref().is_none_or(|c| c.model.name != model.name) {
            context = Some(ModelContext::new(model, settings));
        }
        let ctx = context.as_ref().expect("set just above");
        let outcome = guarded(|| measure(ctx, &variant.precision, backend, settings));

        let baseline_policy = suite.baseline_policy();
        let baseline_id = Variant::new(
            variant.model.clone(),
            baseline_policy.clone(),
            variant.device.clone(),
            variant.gates,
        )
        .id;
        if baseline.as_ref().is_none_or(|(id, _)| *id != baseline_id) {
            let median = if baseline_id == variant.id {
                outcome.as_ref().ok().map(|m| m.latency.median_ms)
            } else {
                // The reference precision is not in this run (excluded or filtered out): time it
                // anyway, without a record, so that speed-ups stay comparable across runs.
                guarded(|| measure(ctx, &baseline_policy, backend, settings))
                    .ok()
                    .map(|m| m.latency.median_ms)
            };
            baseline = Some((baseline_id, median));
        }
        let baseline_median = baseline
            .as_ref()
            .and_then(|(id, median)| median.map(|m| (id.clone(), m)));
        conclude(&mut record, outcome, baseline_median);
        record.wall_s = clock.elapsed().as_secs_f64();
        writer.append(&record)?;
        observer.finished(&record);
        records.push(record);
    }
    Ok(records)
}

/// Runs `f`, turning a panic inside a backend into an error like any other.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(format!("panicked: {message}"))
    })
}

fn measure(
    ctx: &ModelContext,
    policy: &Policy,
    backend: &dyn Backend,
    settings: &RunSettings,
) -> Result<Measured, String> {
    fn failed(stage: &'static str) -> impl Fn(BackendError) -> String {
        move |e| format!("{stage}: {e}")
    }
    let mut executable = backend
        .prepare(&ctx.model, &ctx.weights, policy)
        .map_err(failed("build"))?;
    for index in 0..executable.calibration_runs() {
        executable
            .run(&ctx.calibration_input(index))
            .map_err(failed("calibration"))?;
    }
    let output = executable.run(&ctx.input).map_err(failed("run"))?;
    let accuracy =
        compare(&output.data, &ctx.reference.data).map_err(|e| format!("accuracy: {e}"))?;
    let cpu_agreement = match backend.kind() {
        BackendKind::Cpu => None,
        _ => Some(cpu_agreement(ctx, policy, &output)?),
    };
    let kernels = executable.kernel_trace().map_err(failed("kernel trace"))?;
    let samples = executable
        .time(&ctx.input, settings.warmup, settings.iterations)
        .map_err(failed("timing"))?;
    let latency = LatencyStats::from_samples(&samples)
        .ok_or_else(|| "timing: the backend returned no samples".to_owned())?;
    Ok(Measured {
        accuracy,
        latency,
        emulated: executable.emulated(),
        cpu_agreement,
        kernels,
    })
}

/// `output` against the CPU backend's emulation of the same policy on the same inputs.
fn cpu_agreement(ctx: &ModelContext, policy: &Policy, output: &Tensor) -> Result<Accuracy, String> {
    let failed = |e: BackendError| format!("CPU emulation: {e}");
    let emulation = CpuBackend::new()
        .prepare(&ctx.model, &ctx.weights, policy)
        .map_err(failed)?
        .run(&ctx.input)
        .map_err(failed)?;
    compare(&output.data, &emulation.map(f64::from).data).map_err(|e| format!("CPU agreement: {e}"))
}

/// A record with the variant's identity filled in and no measurement yet (status `error`).
fn blank_record(
    variant: &Variant,
    model: &Model,
    backend: &dyn Backend,
    device_name: &str,
) -> VariantRecord {
    VariantRecord {
        schema: RECORD_SCHEMA,
        id: variant.id.clone(),
        model: model.name.to_string(),
        block: model.block.kind_name().to_owned(),
        precision: variant.precision.name.clone(),
        policy: variant.precision.clone(),
        device: variant.device.to_string(),
        backend: backend.kind(),
        device_name: device_name.to_owned(),
        tokens: model.tokens,
        flops: model.block.flops(model.tokens),
        status: Status::Error,
        gates: variant.gates,
        failures: Vec::new(),
        accuracy: None,
        latency: None,
        baseline: None,
        emulated: false,
        cpu_agreement: None,
        kernels: None,
        error: None,
        started_at: Utc::now(),
        wall_s: 0.0,
    }
}

/// Fills in what was measured (or why nothing was) and the verdict of the gates.
fn conclude(
    record: &mut VariantRecord,
    outcome: Result<Measured, String>,
    baseline: Option<(String, f64)>,
) {
    match outcome {
        Ok(measured) => {
            record.failures = record.gates.evaluate(&measured.accuracy);
            record.status = if record.failures.is_empty() {
                Status::Passed
            } else {
                Status::Failed
            };
            record.baseline = baseline.map(|(id, median_ms)| Baseline {
                id,
                median_ms,
                speedup: median_ms / measured.latency.median_ms,
            });
            record.accuracy = Some(measured.accuracy);
            record.latency = Some(measured.latency);
            record.emulated = measured.emulated;
            record.cpu_agreement = measured.cpu_agreement;
            record.kernels = measured.kernels;
        }
        Err(message) => record.error = Some(message),
    }
}
