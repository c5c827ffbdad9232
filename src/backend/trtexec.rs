//! The trtexec backend: TensorRT through its `trtexec` tool.
//!
//! For each variant precheck exports the block in its policy as ONNX ([`crate::export`]) and
//! builds one engine from it with the flags the policy needs ([`crate::trtexec::flags`], a weakly
//! typed build: the model's casts and Q/DQ nodes hold the policy's formats, the flags allow the
//! types), with `--profilingVerbosity=detailed --exportLayerInfo` so that the engine's layer report
//! is precision evidence. Engines are cached by the ONNX model's bytes, the flags, the GPU and the
//! TensorRT version, so a nightly rebuilds only what changed. A run loads the engine with the
//! input (`--loadInputs`) and reads `--exportOutput`; timing is `--exportTimes` of CUDA-graph
//! launches without host transfers, the GPU compute time of each iteration.
//!
//! Where `trtexec` is not found, the backend still plans the run and every variant is recorded
//! as `skipped`, saying so: never a pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{capture, Backend, BackendError, BackendKind, Executable, GraphExecutable, Timing};
use crate::array::{Array, ArrayData};
use crate::export::{self, Calibration};
use crate::measure::engine_latency;
use crate::model::onnx::{Dim, OnnxModel};
use crate::model::{Model, Weights};
use crate::precision::Policy;
use crate::quant::Recipe;
use crate::tensor::Tensor;
use crate::trtexec::flags::{self, ClassLayers, Typing};
use crate::trtexec::layers::EngineLayer;
use crate::trtexec::{layers, output, times};

/// Where TensorRT installs `trtexec` when it is not on `PATH` (the NGC containers, the Debian
/// packages).
const INSTALLED: &str = "/usr/src/tensorrt/bin/trtexec";

/// The last bytes of a failed trtexec's output kept in its error.
const OUTPUT_TAIL: usize = 3000;

/// trtexec warms up for a time, not a number of runs: this long when the run asks for warm-up.
const WARM_UP_MS: u32 = 200;

/// TensorRT's `trtexec`, found or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrtexecBackend {
    /// The program, or why there is none.
    program: Result<PathBuf, String>,
    /// Where built engines are kept.
    cache: PathBuf,
    /// The TensorRT version from trtexec's banner (`v101600`).
    version: String,
    /// The GPU's name (`nvidia-smi`), part of the cache key.
    gpu: String,
}

impl TrtexecBackend {
    /// Finds trtexec: `program` if given, else `trtexec` on `PATH`, else [`INSTALLED`]; engines
    /// are cached in `cache`.
    pub fn locate(program: Option<&Path>, cache: PathBuf) -> Self {
        let found = match program {
            Some(path) => Ok(path.to_owned()),
            None => on_path("trtexec")
                .or_else(|| Path::new(INSTALLED).is_file().then(|| INSTALLED.into()))
                .ok_or_else(|| {
                    format!(
                        "trtexec not found (not on PATH, not at {INSTALLED}); give --trtexec PATH"
                    )
                }),
        };
        let program = found.and_then(|path| version(&path).map(|v| (path, v)));
        let (program, version) = match program {
            Ok((path, version)) => (Ok(path), version),
            Err(why) => (Err(why), String::new()),
        };
        TrtexecBackend {
            program,
            cache,
            version,
            gpu: gpu_name(),
        }
    }

    /// The default engine cache: `$XDG_CACHE_HOME/precheck/engines` or `~/.cache/...`.
    pub fn default_cache() -> PathBuf {
        crate::host::cache_home().join("engines")
    }

    fn program(&self) -> Result<&Path, BackendError> {
        self.program
            .as_deref()
            .map_err(|why| BackendError::Unavailable(why.clone()))
    }
}

/// `name` in a folder of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The TensorRT version trtexec's banner names (`&&&& RUNNING TensorRT.trtexec [TensorRT v101600]`).
fn version(program: &Path) -> Result<String, String> {
    let output = Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split("[TensorRT ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "{} --help printed no TensorRT version banner",
                program.display()
            )
        })
}

/// GPU 0's name, from `nvidia-smi`; `unknown GPU` without one.
fn gpu_name() -> String {
    Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", "-i", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown GPU".to_owned())
}

impl Backend for TrtexecBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Trtexec
    }

    fn device_name(&self) -> String {
        match &self.program {
            Ok(_) => format!("{} (TensorRT {})", self.gpu, self.version),
            Err(_) => format!("{} (no trtexec)", self.gpu),
        }
    }

    fn skip_reason(&self) -> Option<String> {
        self.program.as_ref().err().cloned()
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError> {
        let exported = export::onnx(model, weights, policy, export::Precision::BuilderFlags)
            .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        let build_flags = flags::flags(policy, Typing::Weak, &exported.layers)
            .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        let engine = self.engine(&exported.model, build_flags, Vec::new())?;
        Ok(Box::new(BlockEngine {
            engine,
            input: exported.input,
            output: exported.output,
            output_features: model.block.output_features(),
        }))
    }

    /// A user's ONNX model: rewritten into a policy that quantizes matmuls and built
    /// `--stronglyTyped`, so that its Q/DQ nodes and casts decide each layer's type; as it is
    /// with the builder flags of a policy that only casts. Dynamic dimensions are built for the
    /// suite's shapes. Marks are not built in: marking a tensor as an output keeps TensorRT from
    /// fusing across it, and the engine measured must be the one deployed.
    fn prepare_graph(
        &self,
        model: &OnnxModel,
        policy: &Policy,
        calibration: &Calibration,
        _marks: &[String],
    ) -> Result<Box<dyn GraphExecutable>, BackendError> {
        let unsupported = |e: &dyn std::fmt::Display| BackendError::Unsupported(e.to_string());
        let quantized = policy.matmul.weights.recipe != Recipe::Cast
            || policy.matmul.activations.recipe != Recipe::Cast;
        let (precision, typing) = if quantized {
            (export::Precision::InGraph, Typing::Strong)
        } else {
            (export::Precision::BuilderFlags, Typing::Weak)
        };
        let onnx = export::user_model(model, policy, precision, calibration, &[])
            .map_err(|e| unsupported(&e))?;
        let mut build_flags =
            flags::flags(policy, typing, &ClassLayers::default()).map_err(|e| unsupported(&e))?;
        let dynamic = model
            .file
            .inputs
            .iter()
            .any(|port| port.dims.iter().any(|d| matches!(d, Dim::Free(_))));
        let mut run_flags = Vec::new();
        if dynamic {
            let shapes: Vec<String> = model
                .inputs
                .iter()
                .map(|input| {
                    let dims: Vec<String> = input.shape.iter().map(usize::to_string).collect();
                    format!("{}:{}", input.name, dims.join("x"))
                })
                .collect();
            let shapes = shapes.join(",");
            for flag in ["--minShapes", "--optShapes", "--maxShapes"] {
                build_flags.push(format!("{flag}={shapes}"));
            }
            run_flags.push(format!("--shapes={shapes}"));
        }
        Ok(Box::new(self.engine(&onnx, build_flags, run_flags)?))
    }
}

impl TrtexecBackend {
    /// The engine built from `onnx` with `build_flags`, from the cache when it was built before;
    /// `run_flags` go with every run of it.
    fn engine(
        &self,
        onnx: &[u8],
        build_flags: Vec<String>,
        run_flags: Vec<String>,
    ) -> Result<TrtexecEngine, BackendError> {
        let program = self.program()?.to_owned();
        let key = self.cache_key(onnx, &build_flags);
        let engine = self.cache.join(format!("{key}.engine"));
        let layers = self.cache.join(format!("{key}.layers.json"));
        let work = tempfile::Builder::new()
            .prefix("precheck-trtexec-")
            .tempdir()
            .map_err(|e| failed("creating its work folder", e))?;
        if !engine.is_file() || !layers.is_file() {
            std::fs::create_dir_all(&self.cache)
                .map_err(|e| failed(&format!("creating {}", self.cache.display()), e))?;
            let model = work.path().join("model.onnx");
            std::fs::write(&model, onnx).map_err(|e| failed("writing model.onnx", e))?;
            build(&program, &model, &build_flags, &engine, &layers)?;
        }
        Ok(TrtexecEngine {
            program,
            engine,
            layers,
            work,
            run_flags,
        })
    }

    /// The engine's cache key: what it was built from, with and for.
    fn cache_key(&self, onnx: &[u8], build_flags: &[String]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(onnx);
        for part in build_flags.iter().chain([&self.gpu, &self.version]) {
            hasher.update([0]);
            hasher.update(part.as_bytes());
        }
        format!("{:x}", hasher.finalize())
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(format!("trtexec backend: {what}: {error}"))
}

/// Builds the engine and its layer report into temporary names, then moves them into place, so
/// that a build killed half way leaves no engine that looks finished.
fn build(
    program: &Path,
    onnx: &Path,
    build_flags: &[String],
    engine: &Path,
    layers: &Path,
) -> Result<(), BackendError> {
    let partial = |path: &Path| path.with_extension(format!("partial.{}", std::process::id()));
    let (engine_tmp, layers_tmp) = (partial(engine), partial(layers));
    let mut args = vec![
        format!("--onnx={}", onnx.display()),
        format!("--saveEngine={}", engine_tmp.display()),
        "--skipInference".to_owned(),
        "--profilingVerbosity=detailed".to_owned(),
        format!("--exportLayerInfo={}", layers_tmp.display()),
    ];
    args.extend(build_flags.iter().cloned());
    run(program, &args, "building the engine")?;
    std::fs::rename(&layers_tmp, layers)
        .and_then(|()| std::fs::rename(&engine_tmp, engine))
        .map_err(|e| failed("keeping the built engine", e))
}

/// Runs trtexec with `args`; its output's tail is the error when it fails.
fn run(program: &Path, args: &[String], what: &str) -> Result<(), BackendError> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    let (status, stdout, stderr) = capture::run(&mut command, OUTPUT_TAIL)
        .map_err(|e| failed(&format!("starting {}", program.display()), e))?;
    if status.success() {
        return Ok(());
    }
    let text = format!("{}{}", stdout.text(), stderr.text());
    let tail = super::text_tail(&text, OUTPUT_TAIL);
    Err(BackendError::Failed(format!(
        "trtexec {what} {status}: {}",
        tail.trim()
    )))
}

/// A built engine.
struct TrtexecEngine {
    program: PathBuf,
    engine: PathBuf,
    layers: PathBuf,
    work: tempfile::TempDir,
    /// Flags every run needs (`--shapes` for dynamic dimensions).
    run_flags: Vec<String>,
}

impl TrtexecEngine {
    /// Writes each input as the raw little-endian file `--loadInputs` reads; returns the flags
    /// that load the engine with them.
    fn load_flags(&self, inputs: &[Array]) -> Result<Vec<String>, BackendError> {
        let mut loads = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let file = self.work.path().join(format!("input{index}.bin"));
            std::fs::write(&file, input.data.to_le_bytes())
                .map_err(|e| failed(&format!("writing {}", file.display()), e))?;
            loads.push(format!("{}:{}", input.name, file.display()));
        }
        let mut flags = vec![
            format!("--loadEngine={}", self.engine.display()),
            format!("--loadInputs={}", loads.join(",")),
        ];
        flags.extend(self.run_flags.iter().cloned());
        Ok(flags)
    }

    /// Runs once; every output the engine exported.
    fn outputs(&mut self, inputs: &[Array]) -> Result<Vec<Array>, BackendError> {
        let file = self.work.path().join("output.json");
        let mut args = self.load_flags(inputs)?;
        args.extend([
            format!("--exportOutput={}", file.display()),
            "--iterations=1".to_owned(),
            "--warmUp=0".to_owned(),
            "--duration=0".to_owned(),
        ]);
        run(&self.program, &args, "running the engine")?;
        output::read(&file)
            .map_err(|e| failed("reading its output", e))?
            .into_iter()
            .map(|t| {
                Array::new(&t.name, t.shape, ArrayData::F32(t.values))
                    .map_err(|e| failed("reading its output", e))
            })
            .collect()
    }

    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        layers::read_detailed(&self.layers)
            .map(Some)
            .map_err(|e| failed("reading its layers", e))
    }

    fn time(&mut self, inputs: &[Array], timing: Timing) -> Result<Vec<Duration>, BackendError> {
        let iterations = timing.iterations;
        let file = self.work.path().join("times.json");
        let mut args = self.load_flags(inputs)?;
        let warm_up_ms = if timing.warmup > 0 { WARM_UP_MS } else { 0 };
        args.extend([
            format!("--exportTimes={}", file.display()),
            format!("--iterations={iterations}"),
            format!("--warmUp={warm_up_ms}"),
            "--duration=0".to_owned(),
            "--useCudaGraph".to_owned(),
            "--noDataTransfers".to_owned(),
        ]);
        run(&self.program, &args, "timing the engine")?;
        let trace = times::read(&file).map_err(|e| failed("reading its times", e))?;
        let compute = trace.compute_ms();
        if compute.len() < iterations {
            return Err(failed(
                "reading its times",
                format!("{} iterations for {iterations}", compute.len()),
            ));
        }
        compute[..iterations]
            .iter()
            .map(|&ms| engine_latency(ms).map_err(|e| failed("reading its times", e)))
            .collect()
    }
}

impl GraphExecutable for TrtexecEngine {
    fn run(&mut self, inputs: &[Array]) -> Result<Vec<Array>, BackendError> {
        self.outputs(inputs)
    }

    fn time(&mut self, inputs: &[Array], timing: Timing) -> Result<Vec<Duration>, BackendError> {
        TrtexecEngine::time(self, inputs, timing)
    }

    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        TrtexecEngine::layer_report(self)
    }
}

/// An engine of one of precheck's blocks: one input `[tokens, features]`, one output.
struct BlockEngine {
    engine: TrtexecEngine,
    input: String,
    output: String,
    output_features: usize,
}

impl BlockEngine {
    fn inputs(&self, input: &Tensor) -> Vec<Array> {
        let array = Array::new(
            &self.input,
            vec![input.rows, input.cols],
            ArrayData::F32(input.data.clone()),
        );
        vec![array.expect("a tensor's values fill its shape")]
    }
}

impl Executable for BlockEngine {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        let inputs = self.inputs(input);
        let outputs = self.engine.outputs(&inputs)?;
        let tensor = outputs
            .into_iter()
            .find(|t| t.name == self.output)
            .ok_or_else(|| failed("reading its output", format!("no tensor `{}`", self.output)))?;
        let expected = [input.rows, self.output_features];
        if tensor.shape != expected {
            return Err(failed(
                "reading its output",
                format!("shape {:?}, expected {expected:?}", tensor.shape),
            ));
        }
        Ok(Tensor::new(
            input.rows,
            self.output_features,
            tensor.data.to_f32(),
        ))
    }

    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        self.engine.layer_report()
    }

    fn time(&mut self, input: &Tensor, timing: Timing) -> Result<Vec<Duration>, BackendError> {
        let inputs = self.inputs(input);
        self.engine.time(&inputs, timing)
    }
}
