//! The command backend: any engine, run as a program that speaks a file protocol.
//!
//! For each variant precheck makes a work folder and writes `variant.json` (the model, its block,
//! its activation and graph parameters, the precision policy, `warmup` and `iterations`) and `weights.safetensors`
//! (the block's parameters under their names, F32, as held in the reference precision). For each
//! call it writes `inputs.safetensors` (tensor `input`, `[tokens, features]`, F32) and runs the
//! command through `sh -c` with the folder as its one argument. The command writes
//! `outputs.safetensors` (tensor `output`, `[tokens, out_features]`, F32, F16 or BF16) and, when
//! `iterations` > 0, `timings.json` (`{"latency_ms": [..]}`, one entry per timed iteration), and
//! optionally, on every call, `kernels.json` (`[{"name": .., "duration_us": ..}]`), the kernels
//! one forward pass launched, and `layers.json`, an engine's layer report in trtexec's
//! `--exportLayerInfo` format (detailed), both of which precision-mismatch detection reads. precheck calls it twice per variant: once
//! with `iterations: 0` for the output, once with the run's iterations for the timings.
//!
//! A user's ONNX model (`block: onnx`) has no weights file or feature counts: `variant.json` lists
//! its `inputs` (name, dtype, shape) and the `outputs` to write (the graph's, then the values
//! marked along it), the folder holds `model.onnx` (the rewrite, marks among its outputs), and
//! `inputs.safetensors` / `outputs.safetensors` hold every input and output under its own name,
//! in its own type.
//!
//! A command that exits non-zero, writes no or malformed outputs, or the wrong shape, is an error
//! record with the command's stderr; one that hangs is ended by the worker's timeout (it dies with
//! its worker).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{capture, Backend, BackendError, BackendKind, Executable, GraphExecutable, Timing};
use crate::array::Array;
use crate::export::{self, Calibration};
use crate::measure::engine_latency;
use crate::measure::KernelLaunches;
use crate::model::graph::{Graph, Param};
use crate::model::onnx::OnnxModel;
use crate::model::{load, AttentionBlock, Block, Model, Weights};
use crate::precision::Policy;
use crate::tensor::Tensor;
use crate::trtexec::layers::{self, EngineLayer};

/// The last bytes of a failed command's stderr kept in its error.
const STDERR_TAIL: usize = 2000;

/// An external engine run as a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBackend {
    /// The shell command line; the work folder is appended.
    pub command: String,
    /// Whether each variant's work folder also gets `model.onnx`, the block and policy exported
    /// ([`crate::export`]), for engines that take ONNX.
    #[serde(default)]
    pub onnx: bool,
}

impl CommandBackend {
    /// The backend running `command` (a shell command line; the work folder is appended).
    pub fn new(command: impl Into<String>) -> Self {
        CommandBackend {
            command: command.into(),
            onnx: false,
        }
    }

    /// Also writes `model.onnx` into each work folder.
    pub fn with_onnx(self) -> Self {
        CommandBackend { onnx: true, ..self }
    }
}

/// `variant.json`: what the command is asked to build and run.
#[derive(Debug, Serialize)]
struct VariantFile<'a> {
    model: &'a str,
    block: &'a str,
    /// The MLP's activation (`mlp`, `transformer_layer`, `stack`).
    activation: Option<&'static str>,
    /// An `attention` block's heads and rotary embedding.
    #[serde(skip_serializing_if = "Option::is_none")]
    attention: Option<AttentionBlock>,
    tokens: usize,
    input_features: usize,
    output_features: usize,
    /// The block's parameters: name, shape, kind, in graph order.
    parameters: &'a [Param],
    policy: &'a Policy,
    /// With `--onnx`: the exported model's file, or why the policy has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    onnx: Option<&'a OnnxFile>,
    warmup: u32,
    iterations: usize,
}

/// The exported model's file name in the work folder.
const ONNX_FILE: &str = "model.onnx";

/// `variant.json`'s `onnx`: `{"file": "model.onnx"}` or `{"unavailable": "why"}`.
#[derive(Debug, Serialize)]
struct OnnxFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<String>,
}

/// `timings.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Timings {
    latency_ms: Vec<f64>,
}

/// One entry of `kernels.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kernel {
    name: String,
    duration_us: f64,
}

impl Backend for CommandBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Command
    }

    fn device_name(&self) -> String {
        format!("command `{}`", self.command)
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError> {
        let folder = WorkFolder::new(&self.command)?;
        write_weights(
            &folder.path("weights.safetensors"),
            &model.block.graph(),
            weights,
        )?;
        let onnx = if self.onnx {
            Some(write_onnx(folder.dir.path(), model, weights, policy)?)
        } else {
            None
        };
        Ok(Box::new(CommandExecutable {
            folder,
            model: model.clone(),
            policy: policy.clone(),
            onnx,
        }))
    }

    /// A user's ONNX model: `model.onnx`, rewritten into the policy with the marked values among
    /// its outputs, whether or not the backend was asked for `--onnx` (there is nothing else to
    /// run).
    fn prepare_graph(
        &self,
        model: &OnnxModel,
        policy: &Policy,
        calibration: &Calibration,
        marks: &[String],
    ) -> Result<Box<dyn GraphExecutable>, BackendError> {
        let onnx = export::user_model(
            model,
            policy,
            export::Precision::InGraph,
            calibration,
            marks,
        )
        .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        let folder = WorkFolder::new(&self.command)?;
        std::fs::write(folder.path(ONNX_FILE), onnx)
            .map_err(|e| failed("writing model.onnx", e))?;
        let outputs = model
            .file
            .outputs
            .iter()
            .map(|port| port.name.clone())
            .chain(marks.iter().cloned())
            .collect();
        Ok(Box::new(GraphCommand {
            folder,
            model: model.clone(),
            policy: policy.clone(),
            outputs,
        }))
    }
}

/// Writes `model.onnx` when the policy has an ONNX form; otherwise says why, for `variant.json`.
fn write_onnx(
    dir: &Path,
    model: &Model,
    weights: &Weights,
    policy: &Policy,
) -> Result<OnnxFile, BackendError> {
    match export::onnx(model, weights, policy, export::Precision::InGraph) {
        Ok(exported) => {
            std::fs::write(dir.join(ONNX_FILE), exported.model)
                .map_err(|e| failed("writing model.onnx", e))?;
            Ok(OnnxFile {
                file: Some(ONNX_FILE),
                unavailable: None,
            })
        }
        Err(why) => Ok(OnnxFile {
            file: None,
            unavailable: Some(why.to_string()),
        }),
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(format!("command backend: {what}: {error}"))
}

/// Writes `tensors` as F32 safetensors.
fn write_tensors<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, Vec<usize>, &'a [f32])>,
) -> Result<(), BackendError> {
    load::write_f32(path, tensors, None).map_err(|e| failed("writing its files", e))
}

fn write_weights(path: &Path, graph: &Graph, weights: &Weights) -> Result<(), BackendError> {
    write_tensors(
        path,
        graph.params.iter().map(|param| {
            let data = weights.get(&param.name).data.as_slice();
            (param.name.as_str(), param.shape.clone(), data)
        }),
    )
}

/// The command and a variant's work folder, with what the command's last call reported.
struct WorkFolder {
    command: String,
    dir: tempfile::TempDir,
    /// The kernels of the last call, when the command reported them.
    kernels: Option<Vec<KernelLaunches>>,
    /// The engine's layers of the last call, when the command reported them.
    layers: Option<Vec<EngineLayer>>,
}

/// A block's variant built for a command.
struct CommandExecutable {
    folder: WorkFolder,
    model: Model,
    policy: Policy,
    /// The exported model, with `--onnx`.
    onnx: Option<OnnxFile>,
}

impl WorkFolder {
    fn new(command: &str) -> Result<Self, BackendError> {
        let dir = tempfile::Builder::new()
            .prefix("precheck-command-")
            .tempdir()
            .map_err(|e| failed("creating its work folder", e))?;
        Ok(WorkFolder {
            command: command.to_owned(),
            dir,
            kernels: None,
            layers: None,
        })
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Writes `variant.json` and `inputs.safetensors` (by `write_inputs`), runs the command, and
    /// reads what it reported besides its outputs.
    fn call(
        &mut self,
        variant: &impl Serialize,
        write_inputs: impl FnOnce(&Path) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let json = serde_json::to_string_pretty(variant).map_err(|e| failed("variant.json", e))?;
        std::fs::write(self.path("variant.json"), json).map_err(|e| failed("variant.json", e))?;
        for stale in [
            "outputs.safetensors",
            "timings.json",
            "kernels.json",
            "layers.json",
        ] {
            let _ = std::fs::remove_file(self.path(stale));
        }
        write_inputs(&self.path("inputs.safetensors"))?;
        self.run_command()?;
        self.kernels = self.read_kernels()?;
        self.layers = self.read_layers()?;
        Ok(())
    }

    /// `timings.json` of a call that timed `iterations`.
    fn timings(&self, iterations: usize) -> Result<Vec<Duration>, BackendError> {
        let path = self.path("timings.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| failed("reading timings.json (the command wrote none)", e))?;
        parse_timings(&text, iterations).map_err(|e| failed("timings.json", e))
    }

    fn run_command(&self) -> Result<(), BackendError> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{} \"$0\"", self.command))
            .arg(self.dir.path())
            .stdin(Stdio::null());
        die_with_parent(&mut command);
        let (status, _, stderr) = capture::run(&mut command, STDERR_TAIL)
            .map_err(|e| failed(&format!("starting `{}`", self.command), e))?;
        if status.success() {
            return Ok(());
        }
        Err(BackendError::Failed(format!(
            "command `{}` {}: {}",
            self.command,
            status,
            stderr.text().trim()
        )))
    }

    /// `layers.json`, an engine layer report in trtexec's `--exportLayerInfo` format, built with
    /// `--profilingVerbosity=detailed` (one without types is no evidence, and an error).
    fn read_layers(&self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        let path = self.path("layers.json");
        if !path.is_file() {
            return Ok(None);
        }
        layers::read_detailed(&path)
            .map(Some)
            .map_err(|e| failed("reading layers.json", e))
    }

    fn read_kernels(&self) -> Result<Option<Vec<KernelLaunches>>, BackendError> {
        let path = self.path("kernels.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        parse_kernels(&text)
            .map(Some)
            .map_err(|e| failed("reading kernels.json", e))
    }
}

/// An engine's `timings.json` for a call that timed `iterations`: one finite, positive latency
/// per iteration, or an error saying what is wrong.
pub fn parse_timings(text: &str, iterations: usize) -> Result<Vec<Duration>, String> {
    let timings: Timings = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if timings.latency_ms.len() != iterations {
        return Err(format!(
            "{} latencies for {iterations} iterations",
            timings.latency_ms.len()
        ));
    }
    timings
        .latency_ms
        .iter()
        .map(|&ms| engine_latency(ms).map_err(|e| e.to_string()))
        .collect()
}

/// An engine's `kernels.json`: the kernels one call launched, each with its duration.
pub fn parse_kernels(text: &str) -> Result<Vec<KernelLaunches>, String> {
    let kernels: Vec<Kernel> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(kernels
        .into_iter()
        .map(|k| KernelLaunches {
            name: k.name,
            launches: 1,
            total_us: k.duration_us,
        })
        .collect())
}

impl CommandExecutable {
    /// Writes the call's files, runs the command, and reads its output.
    fn call(
        &mut self,
        input: &Tensor,
        warmup: u32,
        iterations: usize,
    ) -> Result<Tensor, BackendError> {
        let graph = self.model.block.graph();
        let variant = VariantFile {
            model: self.model.name.as_str(),
            block: self.model.block.kind_name(),
            activation: match &self.model.block {
                Block::Mlp(mlp) => Some(mlp.activation.name()),
                Block::Layer(layer) | Block::Stack { layer, .. } => Some(layer.activation.name()),
                Block::Linear { .. } | Block::Attention(_) | Block::Onnx(_) => None,
            },
            attention: match &self.model.block {
                Block::Attention(attention) => Some(*attention),
                _ => None,
            },
            tokens: input.rows,
            input_features: input.cols,
            output_features: graph.output_features(),
            parameters: &graph.params,
            policy: &self.policy,
            onnx: self.onnx.as_ref(),
            warmup,
            iterations,
        };
        self.folder.call(&variant, |path| {
            write_tensors(
                path,
                [("input", vec![input.rows, input.cols], input.data.as_slice())],
            )
        })?;
        load::output(
            &self.folder.path("outputs.safetensors"),
            [input.rows, graph.output_features()],
        )
        .map_err(|e| failed("reading its output", e))
    }
}

/// Asks Linux to kill the command when its worker dies (a timed-out worker is killed; the
/// command it started must not run on).
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and takes plain integers.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
}

impl Executable for CommandExecutable {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        self.call(input, 0, 0)
    }

    fn kernel_trace(&mut self) -> Result<Option<Vec<KernelLaunches>>, BackendError> {
        Ok(self.folder.kernels.clone())
    }

    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        Ok(self.folder.layers.clone())
    }

    fn time(&mut self, input: &Tensor, timing: Timing) -> Result<Vec<Duration>, BackendError> {
        let iterations = timing.iterations;
        self.call(input, timing.warmup, iterations)?;
        self.folder.timings(iterations)
    }
}

/// `variant.json` of a user's ONNX model.
#[derive(Debug, Serialize)]
struct GraphVariantFile<'a> {
    model: &'a str,
    block: &'static str,
    /// The graph's inputs, as `inputs.safetensors` holds them.
    inputs: Vec<PortFile<'a>>,
    /// The values to write into `outputs.safetensors`: the graph's outputs, then the marked
    /// values (the model's outputs too).
    outputs: &'a [String],
    policy: &'a Policy,
    onnx: OnnxFile,
    warmup: u32,
    iterations: usize,
}

/// An input of `variant.json`.
#[derive(Debug, Serialize)]
struct PortFile<'a> {
    name: &'a str,
    dtype: &'static str,
    shape: &'a [usize],
}

/// A user's ONNX model's variant built for a command: `model.onnx` in its work folder.
struct GraphCommand {
    folder: WorkFolder,
    model: OnnxModel,
    policy: Policy,
    outputs: Vec<String>,
}

impl GraphCommand {
    fn call(
        &mut self,
        inputs: &[Array],
        warmup: u32,
        iterations: usize,
    ) -> Result<(), BackendError> {
        let variant = GraphVariantFile {
            model: &self.model.file.path.display().to_string(),
            block: "onnx",
            inputs: self
                .model
                .inputs
                .iter()
                .map(|input| PortFile {
                    name: &input.name,
                    dtype: input.element.name(),
                    shape: &input.shape,
                })
                .collect(),
            outputs: &self.outputs,
            policy: &self.policy,
            onnx: OnnxFile {
                file: Some(ONNX_FILE),
                unavailable: None,
            },
            warmup,
            iterations,
        };
        self.folder.call(&variant, |path| {
            load::write_arrays(path, inputs).map_err(|e| failed("writing its inputs", e))
        })
    }
}

impl GraphExecutable for GraphCommand {
    fn run(&mut self, inputs: &[Array]) -> Result<Vec<Array>, BackendError> {
        self.call(inputs, 0, 0)?;
        load::read_arrays(&self.folder.path("outputs.safetensors"))
            .map_err(|e| failed("reading its outputs", e))
    }

    fn time(&mut self, inputs: &[Array], timing: Timing) -> Result<Vec<Duration>, BackendError> {
        let iterations = timing.iterations;
        self.call(inputs, timing.warmup, iterations)?;
        self.folder.timings(iterations)
    }

    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        Ok(self.folder.layers.clone())
    }
}
