//! Measuring one policy of one model on a backend: build, calibrate, run for accuracy, check
//! against the CPU emulation, gather the precision evidence, time.

use std::panic::{self, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use super::evidence::{precision_evidence, Traces};
use super::reference::{BlockContext, ModelContext};
use crate::backend::{Backend, BackendError, CpuBackend, Timing};
use crate::measure::{compare, Accuracy, CacheMode, Clocks, KernelLaunches, LatencyStats, Phases};
use crate::mismatch::Mismatch;
use crate::precision::Policy;
use crate::results::{LayerAccuracy, RunSettings};
use crate::tensor::Tensor;

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
    /// See [`VariantRecord::phases`].
    #[serde(default)]
    pub phases: Phases,
}

/// A measurement, or why there is none.
pub type Outcome = Result<Measured, String>;

/// Measures `policy`, turning a panic inside a backend into an error like any other.
pub fn measure_guarded(
    ctx: &ModelContext,
    policy: &Policy,
    backend: &dyn Backend,
    settings: &RunSettings,
) -> Outcome {
    panic::catch_unwind(AssertUnwindSafe(|| match ctx {
        ModelContext::Block(ctx) => measure(ctx, policy, backend, settings),
        ModelContext::Graph(ctx) => super::graph::measure(ctx, policy, backend, settings),
    }))
    .unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(format!("panicked: {message}"))
    })
}

/// A backend's error as the stage of a measurement it broke (`build: ...`).
pub(super) fn failed(stage: &'static str) -> impl Fn(BackendError) -> String {
    move |e| format!("{stage}: {e}")
}

fn measure(
    ctx: &BlockContext,
    policy: &Policy,
    backend: &dyn Backend,
    settings: &RunSettings,
) -> Result<Measured, String> {
    let mut phases = Phases::default();
    let mut executable = phases
        .time(
            |p| &mut p.build,
            || backend.prepare(&ctx.model, &ctx.weights, policy),
        )
        .map_err(failed("build"))?;
    phases.time(
        |p| &mut p.calibration,
        || {
            (0..executable.calibration_runs()).try_for_each(|index| {
                executable
                    .run(&ctx.calibration_input(index))
                    .map(drop)
                    .map_err(failed("calibration"))
            })
        },
    )?;
    let (output, accuracy, layers) = phases.time(
        |p| &mut p.run,
        || -> Result<_, String> {
            let output = executable.run(&ctx.input).map_err(failed("run"))?;
            let accuracy =
                compare(&output.data, &ctx.reference.data).map_err(|e| format!("accuracy: {e}"))?;
            let layers = layer_accuracy(ctx, executable.taps())?;
            Ok((output, accuracy, layers))
        },
    )?;
    let (kernels, engine_layers) = phases.time(
        |p| &mut p.trace,
        || -> Result<_, String> {
            let kernels = executable.kernel_trace().map_err(failed("kernel trace"))?;
            let layers = executable.layer_report().map_err(failed("layer report"))?;
            Ok((kernels, layers))
        },
    )?;
    let traces = Traces {
        kernels: kernels.as_deref(),
        layers: engine_layers.as_deref(),
    };
    let emulated = executable.emulated();
    // The CPU backend is the emulation itself: agreement and evidence only mean something for
    // other backends, which are emulated where the run's `--cpu-agreement` says.
    let checked = !backend.is_emulation();
    let trace_agrees = traces.agree(&ctx.model.block, policy, emulated);
    let emulates = settings.cpu_agreement.emulates(trace_agrees);
    let emulation = (checked && emulates)
        .then(|| phases.time(|p| &mut p.agreement, || cpu_emulation(ctx, policy)))
        .transpose()?;
    let cpu_agreement = emulation
        .as_ref()
        .map(|emulation| {
            compare(&output.data, &emulation.data).map_err(|e| format!("CPU agreement: {e}"))
        })
        .transpose()?;
    let mismatch = checked
        .then(|| {
            phases.time(
                |p| &mut p.fingerprint,
                || {
                    let traces = (traces, trace_agrees);
                    precision_evidence(ctx, policy, &output, emulation.as_ref(), traces, emulated)
                },
            )
        })
        .transpose()?;
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
    let samples = phases
        .time(|p| &mut p.timing, || executable.time(&ctx.input, timing))
        .map_err(failed("timing"))?;
    phases.timed = samples.iter().map(|t| t.as_secs_f64()).sum();
    phases.warmup = executable.warmup_device_s().unwrap_or(0.0);
    let clocks = clock_before
        .zip(executable.sm_clock())
        .map(|(before, after)| Clocks { before, after });
    let latency = LatencyStats::from_samples(&samples)
        .ok_or_else(|| "timing: the backend returned no samples".to_owned())?;
    Ok(Measured {
        accuracy,
        latency,
        emulated,
        cpu_agreement,
        kernels,
        mismatch,
        layers,
        clocks,
        cache,
        phases,
    })
}

/// Each tap the executable reported against the reference's tap of the same name.
fn layer_accuracy(
    ctx: &BlockContext,
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

/// The CPU backend's emulation of `policy` on the same inputs: what other backends' outputs are
/// checked against, for agreement and for the fingerprint.
fn cpu_emulation(ctx: &BlockContext, policy: &Policy) -> Result<Tensor, String> {
    ctx.stored_emulation(policy, &[], || {
        let failed = |e: BackendError| format!("CPU emulation: {e}");
        CpuBackend::new()
            .prepare(&ctx.model, &ctx.weights, policy)
            .map_err(failed)?
            .run(&ctx.input)
            .map_err(failed)
    })
}
