//! Running a plan: each variant is built, run once for accuracy, timed and gated, and its record
//! appended. Where a variant runs is an [`Executor`]'s business: a worker process of its own
//! ([`crate::farm::Workers`], what `precheck run` uses) or this process ([`InProcess`], for
//! library use and tests of backends). A variant that fails (an error, a panic, a crashed or hung
//! worker) becomes an error record and the run goes on; variants run on as many devices at a time
//! as the run has [`Slot`]s.

use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, CpuBackend, Timing};
use crate::farm::{Pending, Scheduler, Slot};
use crate::matrix::Variant;
use crate::measure::{compare, Accuracy, LatencyStats};
use crate::mismatch::{self, Mismatch};
use crate::model::forward::{forward, Exact, Forward};
use crate::model::golden::{self, GoldenOutput};
use crate::model::{seeded, Block, LoadError, Model, Tensor, Weights};
use crate::plan::Plan;
use crate::precision::Policy;
use crate::results::{
    Baseline, Clocks, KernelLaunches, LayerAccuracy, ResultsError, ResultsWriter, RunSettings,
    Status, VariantRecord, WorkerExit, RECORD_SCHEMA,
};
use crate::suite::{CacheMode, Suite};
use crate::trtexec::layers::EngineLayer;

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

/// Weights, input and exact reference output of one model, built once for all its variants of a
/// process.
pub struct ModelContext {
    model: Model,
    weights: Weights,
    input: Tensor,
    reference: Tensor<f64>,
    /// The reference's taps (a stack's layers).
    reference_taps: Vec<(String, Tensor<f64>)>,
    seed: u64,
    format: crate::formats::Format,
}

impl ModelContext {
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
        Ok(ModelContext {
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
    fn calibration_input(&self, index: usize) -> Tensor {
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
    if let Block::Onnx(file) = &model.block {
        return Err(LoadError::NotEvaluable {
            path: file.path.clone(),
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
/// suite's reference precision (its baseline policy) run there. Fails on the first model that
/// cannot be loaded or run.
pub fn golden_outputs(
    suite: &Suite,
    seed: u64,
    backend: Option<&dyn Backend>,
) -> Result<Vec<GoldenOutput>, String> {
    let format = suite.reference.precision.format();
    let policy = suite.baseline_policy();
    suite
        .models
        .iter()
        .map(|model| {
            let failed = |e: &dyn std::fmt::Display| format!("model {}: {e}", model.name);
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
                output,
                taps,
            })
        })
        .collect()
}

/// What one variant measured; a worker sends it to the run as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Against the reference.
    pub accuracy: Accuracy,
    /// Timed iterations.
    pub latency: LatencyStats,
    /// See [`VariantRecord::emulated`].
    pub emulated: bool,
    /// See [`VariantRecord::cpu_agreement`].
    pub cpu_agreement: Option<Accuracy>,
    /// See [`VariantRecord::kernels`].
    pub kernels: Option<Vec<KernelLaunches>>,
    /// See [`VariantRecord::mismatch`].
    #[serde(default)]
    pub mismatch: Option<Mismatch>,
    /// See [`VariantRecord::layers`].
    #[serde(default)]
    pub layers: Vec<LayerAccuracy>,
    /// See [`VariantRecord::clocks`].
    #[serde(default)]
    pub clocks: Option<Clocks>,
    /// See [`VariantRecord::cache`].
    #[serde(default)]
    pub cache: CacheMode,
}

/// A measurement, or why there is none.
pub type Outcome = Result<Measured, String>;

/// How running one policy of one model on a slot ended.
#[derive(Debug)]
pub enum Execution {
    /// It ran: a measurement or an error the backend reported (boxed: a measurement is large).
    Finished(Box<Outcome>),
    /// Its worker process crashed, was killed or timed out: why, and how it ended.
    Failed(String, WorkerExit),
    /// The run was stopped while it ran: nothing to record.
    Interrupted,
}

/// Runs one policy of one model on a slot.
pub trait Executor: Sync {
    /// Measures `policy` of `model` on `slot`.
    fn execute(
        &self,
        slot: &Slot,
        model: &Model,
        policy: &Policy,
        settings: &RunSettings,
    ) -> Execution;
}

/// Runs variants in this process on one backend: no isolation, no timeout (a hang hangs the run),
/// for library use and tests of backends. Keeps the last model's context for the next variant.
pub struct InProcess<'a> {
    backend: &'a dyn Backend,
    context: Mutex<Option<Arc<ModelContext>>>,
}

impl<'a> InProcess<'a> {
    /// Runs on `backend`.
    pub fn new(backend: &'a dyn Backend) -> Self {
        InProcess {
            backend,
            context: Mutex::new(None),
        }
    }
}

impl Executor for InProcess<'_> {
    fn execute(
        &self,
        _: &Slot,
        model: &Model,
        policy: &Policy,
        settings: &RunSettings,
    ) -> Execution {
        let ctx = {
            let mut cached = self.context.lock().expect("no panic holds this lock");
            match cached.as_ref() {
                Some(ctx) if ctx.model == *model => ctx.clone(),
                _ => match ModelContext::new(model, settings) {
                    Ok(ctx) => cached.insert(Arc::new(ctx)).clone(),
                    Err(e) => return Execution::Finished(Box::new(Err(format!("model: {e}")))),
                },
            }
        };
        Execution::Finished(Box::new(measure_guarded(
            &ctx,
            policy,
            self.backend,
            settings,
        )))
    }
}

/// A run: its plan, where it runs, what an earlier attempt recorded, and when to stop.
pub struct RunSpec<'a> {
    /// The suite.
    pub suite: &'a Suite,
    /// What runs.
    pub plan: &'a Plan,
    /// The devices: one variant at a time on each.
    pub slots: Vec<Slot>,
    /// Records of an earlier attempt (`--resume`): their variants do not run again.
    pub recorded: &'a [VariantRecord],
    /// Set (Ctrl-C, SIGTERM) to stop: running variants are ended and not recorded.
    pub stop: &'a AtomicBool,
    /// Why the backend cannot run here: every variant is recorded as skipped, saying so.
    pub skip: Option<String>,
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// The records this run appended, in the order they ended.
    pub records: Vec<VariantRecord>,
    /// Whether it was stopped before every variant ran.
    pub interrupted: bool,
}

/// What a slot is busy with: a variant of the plan, or the timing of a group's baseline that the
/// plan leaves out (excluded, filtered out, in another shard), so that speed-ups stay comparable.
#[derive(Debug, Clone, Copy)]
enum Task {
    Variant(usize),
    Baseline(usize),
}

/// A task that ended.
struct Ended {
    slot: usize,
    pending: Pending<Task>,
    execution: Execution,
    started_at: DateTime<Utc>,
    wall_s: f64,
}

/// How often the run looks at its stop flag while variants run.
const POLL: Duration = Duration::from_millis(50);

/// Runs every variant of `spec.plan` not yet recorded with `executor`, appending each record to
/// `writer` as it ends.
///
/// Only a failure to write results stops the run early (running variants are ended first).
pub fn run(
    spec: &RunSpec,
    executor: &dyn Executor,
    writer: &mut ResultsWriter,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, ResultsError> {
    if let Some(why) = &spec.skip {
        return skip_all(spec, writer, observer, why);
    }
    let mut scheduler = schedule(spec);
    let total = spec.plan.variants.len();
    let mut started = spec
        .plan
        .variants
        .iter()
        .filter(|v| spec.recorded.iter().any(|r| r.id == v.id))
        .count();
    let mut records = Vec::new();
    let mut failure = None;
    let mut interrupted = false;
    let (sender, receiver) = mpsc::channel::<Ended>();
    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            while !spec.stop.load(Ordering::SeqCst) {
                let Some((slot, pending)) = scheduler.start_next() else {
                    break;
                };
                if let Task::Variant(index) = pending.item {
                    observer.started(started, total, &spec.plan.variants[index]);
                    started += 1;
                }
                let (model, policy) = task_subject(spec, pending.item);
                let sender = sender.clone();
                let slot_info = scheduler.slots()[slot].clone();
                scope.spawn(move || {
                    let (started_at, clock) = (Utc::now(), Instant::now());
                    let execution =
                        executor.execute(&slot_info, model, &policy, &spec.plan.settings);
                    let wall_s = clock.elapsed().as_secs_f64();
                    let ended = Ended {
                        slot,
                        pending,
                        execution,
                        started_at,
                        wall_s,
                    };
                    sender.send(ended).expect("the run outlives its tasks");
                });
                running += 1;
            }
            if running == 0 {
                if spec.stop.load(Ordering::SeqCst) {
                    interrupted |= scheduler.pending() > 0;
                } else {
                    let (stranded, why) = scheduler.stranded();
                    for pending in stranded {
                        if let Task::Variant(index) = pending.item {
                            let record = stranded_record(spec, index, &scheduler.slots()[0], &why);
                            append(
                                writer,
                                observer,
                                &mut records,
                                record,
                                &mut failure,
                                spec.stop,
                            );
                        }
                    }
                }
                break;
            }
            let Ok(ended) = receiver.recv_timeout(POLL) else {
                continue;
            };
            running -= 1;
            interrupted |= matches!(ended.execution, Execution::Interrupted);
            if let Some(record) = conclude_task(spec, &mut scheduler, ended) {
                append(
                    writer,
                    observer,
                    &mut records,
                    record,
                    &mut failure,
                    spec.stop,
                );
            }
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(RunOutcome {
        records,
        interrupted,
    })
}

/// Records every variant not yet recorded as skipped, for `why`.
fn skip_all(
    spec: &RunSpec,
    writer: &mut ResultsWriter,
    observer: &mut dyn Observer,
    why: &str,
) -> Result<RunOutcome, ResultsError> {
    let mut records = Vec::new();
    let slot = spec.slots.first().expect("a run has a slot");
    for (index, variant) in spec.plan.variants.iter().enumerate() {
        if spec.recorded.iter().any(|r| r.id == variant.id) {
            continue;
        }
        let mut record = blank_record(spec, index, slot);
        record.status = Status::Skipped;
        record.error = Some(why.to_owned());
        writer.append(&record)?;
        observer.finished(&record);
        records.push(record);
    }
    Ok(RunOutcome {
        records,
        interrupted: false,
    })
}

/// The tasks of a run in plan order: each group's lead first (its baseline variant, or the
/// timing of a baseline the plan leaves out), then its other variants; recorded variants skipped.
fn schedule(spec: &RunSpec) -> Scheduler<Task> {
    let medians: HashMap<String, Option<f64>> = spec
        .recorded
        .iter()
        .map(|r| (r.id.clone(), r.latency.as_ref().map(|l| l.median_ms)))
        .collect();
    let mut led: HashSet<String> = medians.keys().cloned().collect();
    let mut pending = Vec::new();
    for (index, variant) in spec.plan.variants.iter().enumerate() {
        if medians.contains_key(&variant.id) {
            continue;
        }
        let group = baseline_variant(spec.suite, variant).id;
        let leads = group == variant.id;
        if !led.contains(&group) && !leads {
            pending.push(Pending {
                item: Task::Baseline(index),
                device: variant.device.clone(),
                group: group.clone(),
                leads: true,
            });
        }
        led.insert(group.clone());
        pending.push(Pending {
            item: Task::Variant(index),
            device: variant.device.clone(),
            group,
            leads,
        });
    }
    Scheduler::new(spec.slots.clone(), pending, medians)
}
/// The variant a variant's speed-up is measured against: the reference precision, same model
/// and device.
fn baseline_variant(suite: &Suite, variant: &Variant) -> Variant {
    Variant::new(
        variant.model.clone(),
        suite.baseline_policy(),
        variant.device.clone(),
        variant.gates,
    )
}

/// The model and policy a task runs.
fn task_subject<'a>(spec: &RunSpec<'a>, task: Task) -> (&'a Model, Policy) {
    let (Task::Variant(index) | Task::Baseline(index)) = task;
    let variant = &spec.plan.variants[index];
    let model = spec
        .suite
        .model(&variant.model)
        .expect("validated suites only name their own models");
    let policy = match task {
        Task::Variant(_) => variant.precision.clone(),
        Task::Baseline(_) => spec.suite.baseline_policy(),
    };
    (model, policy)
}

/// Frees the task's slot (retiring a GPU whose worker hung), resolves its group if it leads, and
/// returns the record of a variant that ended.
fn conclude_task(
    spec: &RunSpec,
    scheduler: &mut Scheduler<Task>,
    ended: Ended,
) -> Option<VariantRecord> {
    let Ended {
        slot,
        pending,
        execution,
        started_at,
        wall_s,
    } = ended;
    let hang = match &execution {
        Execution::Failed(_, exit) if exit.timed_out => Some(format!(
            "its worker hung on {}",
            spec.plan.variants[index_of(pending.item)].id
        )),
        _ => None,
    };
    let median = match &execution {
        Execution::Finished(outcome) => outcome.as_ref().as_ref().ok().map(|m| m.latency.median_ms),
        _ => None,
    };
    let interrupted = matches!(execution, Execution::Interrupted);
    let lead = (pending.leads && !interrupted).then(|| (pending.group.clone(), median));
    let slot_info = scheduler.slots()[slot].clone();
    scheduler.finish(slot, lead, hang);
    let Task::Variant(index) = pending.item else {
        return None;
    };
    let mut record = blank_record(spec, index, &slot_info);
    record.started_at = started_at;
    record.wall_s = wall_s;
    let baseline = scheduler
        .median(&pending.group)
        .map(|median| (pending.group.clone(), median));
    match execution {
        Execution::Finished(outcome) => {
            conclude(&mut record, *outcome, baseline);
            check_speed(&mut record, &spec.suite.baseline_policy());
        }
        Execution::Failed(message, exit) => {
            record.error = Some(message);
            record.worker = Some(exit);
        }
        Execution::Interrupted => return None,
    }
    Some(record)
}

fn index_of(task: Task) -> usize {
    let (Task::Variant(index) | Task::Baseline(index)) = task;
    index
}

/// The record of a variant that no device was left to run.
fn stranded_record(spec: &RunSpec, index: usize, slot: &Slot, why: &str) -> VariantRecord {
    let mut record = blank_record(spec, index, slot);
    record.error = Some(why.to_owned());
    record
}

/// Appends `record`; on a write failure, keeps the error and stops the run.
fn append(
    writer: &mut ResultsWriter,
    observer: &mut dyn Observer,
    records: &mut Vec<VariantRecord>,
    record: VariantRecord,
    failure: &mut Option<ResultsError>,
    stop: &AtomicBool,
) {
    if failure.is_some() {
        return;
    }
    match writer.append(&record) {
        Ok(()) => {
            observer.finished(&record);
            records.push(record);
        }
        Err(error) => {
            *failure = Some(error);
            stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Measures `policy`, turning a panic inside a backend into an error like any other.
pub fn measure_guarded(
    ctx: &ModelContext,
    policy: &Policy,
    backend: &dyn Backend,
    settings: &RunSettings,
) -> Outcome {
    panic::catch_unwind(AssertUnwindSafe(|| measure(ctx, policy, backend, settings)))
        .unwrap_or_else(|payload| {
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
    let layers = layer_accuracy(ctx, executable.taps())?;
    // The CPU backend is the emulation itself: agreement and fingerprints only mean something
    // for other backends, and an ONNX model has no emulation.
    let checked = !backend.is_emulation() && !matches!(ctx.model.block, Block::Onnx(_));
    let emulation = checked.then(|| cpu_emulation(ctx, policy)).transpose()?;
    let cpu_agreement = emulation
        .as_ref()
        .map(|emulation| {
            compare(&output.data, &emulation.map(f64::from).data)
                .map_err(|e| format!("CPU agreement: {e}"))
        })
        .transpose()?;
    let kernels = executable.kernel_trace().map_err(failed("kernel trace"))?;
    let engine_layers = executable.layer_report().map_err(failed("layer report"))?;
    let traces = Traces {
        kernels: kernels.as_deref(),
        layers: engine_layers.as_deref(),
    };
    let mismatch = match &emulation {
        Some(emulation) => Some(precision_evidence(
            ctx,
            policy,
            &output,
            emulation,
            traces,
            executable.emulated(),
        )?),
        // An ONNX model: what its engine reports is all the evidence there is.
        None if matches!(ctx.model.block, Block::Onnx(_)) => Some(assess(
            None,
            &ctx.model.block,
            policy,
            traces,
            executable.emulated(),
        )),
        None => None,
    };
    let cache = match settings.cache {
        CacheMode::Cold if !executable.flushes_cache() => {
            tracing::warn!("this backend cannot flush the GPU's L2 cache: timing warm");
            CacheMode::Warm
        }
        cache => cache,
    };
    let timing = Timing {
        warmup: settings.warmup,
        iterations: settings.iterations,
        cache,
    };
    let clock_before = executable.sm_clock();
    let samples = executable
        .time(&ctx.input, timing)
        .map_err(failed("timing"))?;
    let clocks = clock_before
        .zip(executable.sm_clock())
        .map(|(before, after)| Clocks { before, after });
    let latency = LatencyStats::from_samples(&samples)
        .ok_or_else(|| "timing: the backend returned no samples".to_owned())?;
    Ok(Measured {
        accuracy,
        latency,
        emulated: executable.emulated(),
        cpu_agreement,
        kernels,
        mismatch,
        layers,
        clocks,
        cache,
    })
}

/// Each tap the executable reported against the reference's tap of the same name.
fn layer_accuracy(
    ctx: &ModelContext,
    taps: Vec<(String, Tensor)>,
) -> Result<Vec<LayerAccuracy>, String> {
    taps.into_iter()
        .filter_map(|(name, tensor)| {
            let reference = ctx.reference_taps.iter().find(|(n, _)| *n == name)?;
            Some(
                compare(&tensor.data, &reference.1.data)
                    .map(|accuracy| LayerAccuracy { name, accuracy })
                    .map_err(|e| format!("accuracy of {}: {e}", reference.0)),
            )
        })
        .collect()
}

/// What a backend reported of what ran, where it can.
struct Traces<'a> {
    kernels: Option<&'a [KernelLaunches]>,
    layers: Option<&'a [EngineLayer]>,
}

/// The fingerprint of `output` and the readings of the kernel trace and the engine's layer
/// report, as one verdict.
fn precision_evidence(
    ctx: &ModelContext,
    policy: &Policy,
    output: &Tensor,
    emulation: &Tensor,
    traces: Traces,
    emulated: bool,
) -> Result<Mismatch, String> {
    let fingerprint = Some(
        mismatch::fingerprint::fingerprint(
            &ctx.model,
            &ctx.weights,
            &ctx.input,
            policy,
            &output.data,
            emulation,
        )
        .map_err(|e| format!("fingerprint: {e}"))?,
    );
    Ok(assess(
        fingerprint,
        &ctx.model.block,
        policy,
        traces,
        emulated,
    ))
}

/// The verdict of a fingerprint (if any) and the readings of the kernel trace and the engine's
/// layer report for `block` run in `policy`; in a block with attention, attention's own products
/// run in the policy's default format.
fn assess(
    fingerprint: Option<mismatch::fingerprint::FingerprintEvidence>,
    block: &Block,
    policy: &Policy,
    traces: Traces,
    emulated: bool,
) -> Mismatch {
    let expected = mismatch::expected_gemm_precision(policy, emulated);
    let attention = block
        .has_attention()
        .then(|| mismatch::math_precision(policy.default));
    let kernels = traces
        .kernels
        .map(|k| mismatch::kernels::evidence(k, expected, attention));
    let layers = traces.layers.map(|l| mismatch::layers::evidence(l, policy));
    mismatch::assess(fingerprint, kernels, layers)
}

/// The CPU backend's emulation of `policy` on the same inputs: what other backends' outputs are
/// checked against, for agreement and for the fingerprint.
fn cpu_emulation(ctx: &ModelContext, policy: &Policy) -> Result<Tensor, String> {
    let failed = |e: BackendError| format!("CPU emulation: {e}");
    CpuBackend::new()
        .prepare(&ctx.model, &ctx.weights, policy)
        .map_err(failed)?
        .run(&ctx.input)
        .map_err(failed)
}

/// A record with the variant's identity filled in and no measurement yet (status `error`).
fn blank_record(spec: &RunSpec, index: usize, slot: &Slot) -> VariantRecord {
    let variant = &spec.plan.variants[index];
    let model = spec
        .suite
        .model(&variant.model)
        .expect("validated suites only name their own models");
    VariantRecord {
        schema: RECORD_SCHEMA,
        id: variant.id.clone(),
        model: model.name.to_string(),
        block: model.block.kind_name().to_owned(),
        precision: variant.precision.name.clone(),
        policy: variant.precision.clone(),
        device: variant.device.to_string(),
        backend: slot.backend(),
        device_name: slot.name.clone(),
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
        mismatch: None,
        layers: Vec::new(),
        clocks: None,
        cache: None,
        error: None,
        worker: None,
        started_at: Utc::now(),
        wall_s: 0.0,
    }
}

/// Marks a measured variant whose lower precision bought no speed against its baseline.
fn check_speed(record: &mut VariantRecord, baseline_policy: &Policy) {
    if let (Some(mismatch), Some(baseline)) = (record.mismatch.as_mut(), &record.baseline) {
        mismatch::speed_sanity(
            mismatch,
            &record.policy,
            baseline_policy,
            record.emulated,
            baseline.median_ms,
            baseline.speedup,
        );
    }
}

/// Fills in what was measured (or why nothing was) and the verdict of the gates.
fn conclude(record: &mut VariantRecord, outcome: Outcome, baseline: Option<(String, f64)>) {
    match outcome {
        Ok(measured) => {
            record.failures = record.gates.evaluate(&measured.accuracy);
            record
                .failures
                .extend(record.gates.evaluate_mismatch(measured.mismatch.as_ref()));
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
            record.mismatch = measured.mismatch;
            record.layers = measured.layers;
            record.clocks = measured.clocks;
            record.cache = Some(measured.cache);
        }
        Err(message) => record.error = Some(message),
    }
}
