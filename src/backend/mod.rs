//! Backends: what builds and runs a variant. Every backend implements the same two small traits:
//! [`Backend::prepare`] builds an executable for a model in a precision (an engine build: weights
//! converted once), and [`Executable::run`] runs it on an input.

pub mod capture;
mod command;
mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod ort;
mod trtexec;

use std::time::Duration;

pub use command::{parse_kernels, parse_timings, CommandBackend};
pub use cpu::{CpuBackend, MatmulOverride};
#[cfg(feature = "cuda")]
pub use cuda::CudaBackend;
pub use trtexec::TrtexecBackend;

use crate::array::Array;
use crate::export::Calibration;
use crate::measure::time_runs;
use crate::measure::CacheMode;
use crate::measure::{KernelLaunches, SmClock};
use crate::model::onnx::OnnxModel;
use crate::model::{Model, Weights};
use crate::precision::Policy;
use crate::tensor::Tensor;
use crate::trtexec::layers::EngineLayer;

/// Which backend a run uses, as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// precheck's CPU emulation of each precision (a user's ONNX model: ONNX Runtime in process).
    Cpu,
    /// CUDA GPUs.
    Cuda,
    /// CUDA where a driver is present, else the CPU.
    Auto,
    /// An external engine: the program given with `--command` (see docs/engines.md, "Command backend").
    Command,
    /// TensorRT through `trtexec` (see docs/engines.md, "trtexec backend").
    Trtexec,
}

/// The backends that exist.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// [`CpuBackend`].
    Cpu,
    /// The CUDA backend.
    Cuda,
    /// [`CommandBackend`].
    Command,
    /// [`TrtexecBackend`].
    Trtexec,
}

impl BackendKind {
    /// The name used on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Command => "command",
            BackendKind::Trtexec => "trtexec",
        }
    }
}

/// A backend failure: the variant becomes an error record; the suite runs on.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot run here at all.
    #[error("{0}")]
    Unavailable(String),
    /// The backend cannot run this variant.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Building or running failed.
    #[error("{0}")]
    Failed(String),
}

/// Builds executables for models. Implementations: [`CpuBackend`]; CUDA, trtexec and external
/// commands implement the same trait.
pub trait Backend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// The device variants run on, for people (CPU model, GPU name).
    fn device_name(&self) -> String;

    /// Whether this backend is precheck's own emulation of every precision (the CPU backend),
    /// whose outputs are the fingerprints other backends are compared with.
    fn is_emulation(&self) -> bool {
        false
    }

    /// Why no variant can run on this backend here, so that each is recorded as skipped (a
    /// missing `trtexec`). None by default.
    fn skip_reason(&self) -> Option<String> {
        None
    }

    /// The policies this backend is about to build, in order: it may get ready for them in the
    /// background (the CUDA backend asks cuBLASLt about their GEMM types while the worker draws
    /// the model's weights). Nothing by default.
    fn anticipate(&self, _policies: &[Policy]) {}

    /// A device that can compute the host's products (the exact reference's, the CPU
    /// emulations'; see [`crate::linalg`]), where this backend has one. None by default.
    fn product_device(&self) -> Option<std::sync::Arc<dyn crate::linalg::ProductDevice>> {
        None
    }

    /// Builds `model` with `weights` (held in the reference precision) to run as `policy` says.
    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError>;

    /// Builds a user's ONNX model to run as `policy` says (activations scaled from earlier
    /// calls with `calibration`'s static scales), reporting the values `marks` names besides its
    /// outputs (where the backend can). Unsupported by default.
    fn prepare_graph(
        &self,
        model: &OnnxModel,
        policy: &Policy,
        calibration: &Calibration,
        marks: &[String],
    ) -> Result<Box<dyn GraphExecutable>, BackendError> {
        let _ = (model, policy, calibration, marks);
        Err(onnx_unsupported(self.kind()))
    }
}

/// Why a backend of `kind`, which runs precheck's own blocks, cannot run an ONNX model.
pub(crate) fn onnx_unsupported(kind: BackendKind) -> BackendError {
    BackendError::Unsupported(format!(
        "the {} backend runs precheck's own blocks; ONNX models run on `cpu` (ONNX Runtime), \
         `command --onnx` and `trtexec`",
        kind.name()
    ))
}

/// A user's ONNX model built for one precision on one backend.
pub trait GraphExecutable {
    /// Runs once on `inputs` and returns the graph's outputs and the marked values that the
    /// backend reports, by name.
    fn run(&mut self, inputs: &[Array]) -> Result<Vec<Array>, BackendError>;

    /// Per-iteration latency of the model without marks, as [`Executable::time`].
    fn time(&mut self, inputs: &[Array], timing: Timing) -> Result<Vec<Duration>, BackendError>;

    /// The engine's layers with the types they ran in, as [`Executable::layer_report`].
    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        Ok(None)
    }

    /// Whether the precision is emulated, as [`Executable::emulated`]: Q/DQ run by ONNX
    /// Runtime's CPU provider is (dequantized, then multiplied in FP32).
    fn emulated(&self) -> bool {
        false
    }
}

/// A model built for one precision on one backend.
pub trait Executable {
    /// Runs once on `input` and returns the output, as `f32` values of the variant's format.
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError>;

    /// The intermediate values the last [`Executable::run`] reported besides its output (a stack's
    /// layers, named `layer.N`), where the backend exposes them. None by default.
    fn taps(&mut self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Runs on other inputs this executable needs before it is measured: delayed scaling needs
    /// an amax history. None by default.
    fn calibration_runs(&self) -> usize {
        0
    }

    /// The kernels one forward pass launches, with their durations, where the backend can trace
    /// them. None by default.
    fn kernel_trace(&mut self) -> Result<Option<Vec<KernelLaunches>>, BackendError> {
        Ok(None)
    }

    /// The layers of the engine this executable built, with the types they ran in, where the
    /// backend builds an engine that reports them (TensorRT's `--exportLayerInfo`). None by
    /// default.
    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        Ok(None)
    }

    /// The GPU's SM clock now, where the backend can read it (CUDA through NVML); read before
    /// and after timing. None by default.
    fn sm_clock(&self) -> Option<SmClock> {
        None
    }

    /// Whether this executable emulates its precision (quantized values multiplied in a wider
    /// format) rather than running it natively: precheck never hides its own fallback.
    fn emulated(&self) -> bool {
        false
    }

    /// Per-iteration latency: `timing.warmup` untimed runs, then `timing.iterations` timed ones.
    /// Host timing by default; a GPU backend overrides this with device-side timing.
    fn time(&mut self, input: &Tensor, timing: Timing) -> Result<Vec<Duration>, BackendError> {
        time_runs(timing.warmup, timing.iterations, || {
            self.run(input).map(drop)
        })
    }

    /// Whether [`Executable::time`] can start each iteration with the GPU's L2 cache flushed
    /// ([`CacheMode::Cold`]); backends that cannot time warm, and their records say so.
    fn flushes_cache(&self) -> bool {
        false
    }

    /// Seconds the device spent on the last [`Executable::time`]'s warm-up runs, where the
    /// backend can tell (CUDA events around them). None by default.
    fn warmup_device_s(&self) -> Option<f64> {
        None
    }
}

/// How to time a prepared block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Untimed runs first.
    pub warmup: u32,
    /// Timed runs.
    pub iterations: usize,
    /// What the L2 cache holds when each timed run starts.
    pub cache: CacheMode,
}

/// A backend chosen for a run, and a note for the user when the choice was not literal.
pub struct Selected {
    /// The backend.
    pub backend: Box<dyn Backend>,
    /// Why `auto` chose what it chose.
    pub note: Option<String>,
}

/// How to reach the engines outside precheck, as the command line configured them; carried to
/// every worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Engines {
    /// [`BackendChoice::Command`]'s program.
    pub command: Option<CommandBackend>,
    /// [`BackendChoice::Trtexec`]'s trtexec.
    pub trtexec: Option<TrtexecBackend>,
}

/// Picks the backend for `choice`; `engines` holds the command and trtexec backends.
pub fn select(choice: BackendChoice, engines: &Engines) -> Result<Selected, BackendError> {
    let cpu = || Selected {
        backend: Box::new(CpuBackend::new()),
        note: None,
    };
    match choice {
        BackendChoice::Cpu => Ok(cpu()),
        BackendChoice::Cuda => cuda(0)
            .map(|backend| Selected {
                backend,
                note: None,
            })
            .map_err(|why| BackendError::Unavailable(format!("--backend cuda: {why}"))),
        BackendChoice::Trtexec => engines
            .trtexec
            .as_ref()
            .map(|trtexec| Selected {
                backend: Box::new(trtexec.clone()),
                note: trtexec
                    .skip_reason()
                    .map(|why| format!("--backend trtexec: {why}: every variant is skipped")),
            })
            .ok_or_else(|| BackendError::Unavailable("--backend trtexec: not configured".into())),
        BackendChoice::Command => engines
            .command
            .as_ref()
            .map(|command| Selected {
                backend: Box::new(command.clone()),
                note: None,
            })
            .ok_or_else(|| {
                BackendError::Unavailable("--backend command needs --command 'PROGRAM ARGS'".into())
            }),
        BackendChoice::Auto => Ok(match cuda(0) {
            Ok(backend) => Selected {
                backend,
                note: Some("--backend auto: running on CUDA".into()),
            },
            Err(why) => Selected {
                note: Some(format!("--backend auto: {why}; running on the CPU")),
                ..cpu()
            },
        }),
    }
}

/// The CUDA backend on GPU `ordinal`.
#[cfg(feature = "cuda")]
pub fn cuda(ordinal: usize) -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(CudaBackend::new(ordinal)?))
}

/// The CUDA backend on GPU `ordinal`: not in this build.
#[cfg(not(feature = "cuda"))]
pub fn cuda(_ordinal: usize) -> Result<Box<dyn Backend>, BackendError> {
    Err(BackendError::Unavailable(
        "this precheck was built without the CUDA backend (cargo feature `cuda`)".into(),
    ))
}

/// How many CUDA devices this process sees (`CUDA_VISIBLE_DEVICES` applies); 0 without CUDA.
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "cuda")]
    if cuda::unavailable().is_none() {
        return cudarc::driver::CudaContext::device_count().map_or(0, |n| n as usize);
    }
    0
}

/// One entry per backend: what it can run on here, or why it cannot run.
pub fn describe_all() -> Vec<(BackendKind, Result<Vec<String>, String>)> {
    #[cfg(feature = "cuda")]
    let cuda = cuda::describe();
    #[cfg(not(feature = "cuda"))]
    let cuda =
        Err("this precheck was built without the CUDA backend (cargo feature `cuda`)".to_owned());
    vec![
        (BackendKind::Cpu, Ok(vec![CpuBackend::new().device_name()])),
        (BackendKind::Cuda, cuda),
    ]
}

/// The last `max_bytes` bytes of an engine's output or less, cut at a character boundary, so that
/// a multi-byte character at the cut cannot hide the engine's error behind a panic.
pub(crate) fn text_tail(text: &str, max_bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(max_bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::{onnx_unsupported, text_tail, BackendChoice, BackendKind};
    use clap::ValueEnum;

    /// The backends the message sends an ONNX model to are `--backend` values.
    #[test]
    fn an_onnx_model_on_a_blocks_backend_is_sent_to_backends_that_exist() {
        let message = onnx_unsupported(BackendKind::Cuda).to_string();
        assert!(message.contains("the cuda backend"), "{message}");
        let named: Vec<&str> = message
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|quoted| quoted.split(' ').next().unwrap())
            .collect();
        assert_eq!(named, ["cpu", "command", "trtexec"], "{message}");
        for name in named {
            assert!(BackendChoice::from_str(name, false).is_ok(), "{name}");
        }
    }

    #[test]
    fn a_tail_cut_inside_a_character_starts_after_it() {
        // "é" is two bytes: a cut of 1 byte from the end falls inside it.
        let text = "error: café";
        assert_eq!(text_tail(text, 1), "");
        assert_eq!(text_tail(text, 2), "é");
        assert_eq!(text_tail(text, 3), "fé");
        assert_eq!(text_tail(text, 100), text);
        assert_eq!(text_tail("→→→", 4), "→");
    }
}
