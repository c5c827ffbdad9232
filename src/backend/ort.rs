//! ONNX Runtime in this process: what evaluates a user's ONNX model on the CPU, for its reference
//! and as the CPU backend's emulation of each precision.
//!
//! precheck loads `libonnxruntime` at run time (the `ort` crate's `load-dynamic`), so that it
//! builds with no ONNX Runtime and uses the one the `onnxruntime` pip package ships: the library
//! is `PRECHECK_ONNXRUNTIME` (or `ORT_DYLIB_PATH`) when set, else the one inside the package that
//! `python3` imports. In process, a model's every marked value comes back as memory, with no
//! file in between, and one process runs many variants with no interpreter started per variant.
//!
//! Sessions run the graph as written: the Q/DQ fusions of ONNX Runtime's CPU optimizer are off
//! (`session.disable_quant_qdq`), since its fused INT8 kernels add products in 16 bits on x86
//! CPUs without VNNI and saturate, and it has no fused FP8 kernel at all; a `DequantizeLinear`
//! then a float product is the arithmetic the graph says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use half::{bf16, f16};
use ort::session::Session;
use ort::tensor::TensorElementType;
use ort::value::{DynValue, Tensor};

use super::BackendError;
use crate::array::{Array, ArrayData};

/// The environment variable that names the ONNX Runtime library to load.
pub const LIBRARY_VARIABLE: &str = "PRECHECK_ONNXRUNTIME";

/// Loads ONNX Runtime once per process; the library's path, or why it cannot be loaded.
fn runtime() -> Result<&'static Path, BackendError> {
    static RUNTIME: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let path = library()?;
            let builder = ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
            builder.with_name("precheck").commit();
            Ok(path)
        })
        .as_deref()
        .map_err(|why| BackendError::Unavailable(why.clone()))
}

/// The library to load: the environment's, or the `onnxruntime` package's.
fn library() -> Result<PathBuf, String> {
    for variable in [LIBRARY_VARIABLE, "ORT_DYLIB_PATH"] {
        if let Some(path) = std::env::var_os(variable) {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{variable}={} is not a file", path.display()))
            };
        }
    }
    let missing = "ONNX Runtime not found: `pip install onnxruntime==1.32.0` (precheck loads the \
                   library inside the package python3 imports), or set PRECHECK_ONNXRUNTIME to \
                   libonnxruntime's path";
    let probe = Command::new("python3")
        .args([
            "-c",
            "import os, onnxruntime; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|_| missing.to_owned())?;
    if !probe.status.success() {
        return Err(missing.to_owned());
    }
    let package = PathBuf::from(String::from_utf8_lossy(&probe.stdout).trim());
    let capi = package.join("capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .map_err(|e| format!("{}: {e}", capi.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib")
        })
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| format!("{} holds no libonnxruntime: {missing}", capi.display()))
}

/// A model loaded into ONNX Runtime's CPU provider.
pub struct OrtModel {
    session: Session,
    outputs: Vec<String>,
}

fn failed(what: &str) -> impl Fn(ort::Error) -> BackendError + '_ {
    move |e| BackendError::Failed(format!("ONNX Runtime, {what}: {e}"))
}

impl OrtModel {
    /// Loads `model` (ONNX bytes) into a session.
    pub fn new(model: &[u8]) -> Result<Self, BackendError> {
        runtime()?;
        let session = Session::builder()
            .and_then(|b| b.with_config_entry("session.disable_quant_qdq", "1"))
            .and_then(|b| b.commit_from_memory(model))
            .map_err(failed("loading the model"))?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        Ok(OrtModel { session, outputs })
    }

    /// Runs once: every output of the graph, by name, in its own element type.
    pub fn run(&mut self, inputs: &[Array]) -> Result<Vec<Array>, BackendError> {
        let feeds = inputs
            .iter()
            .map(|a| Ok((a.name.clone(), value(a)?)))
            .collect::<Result<Vec<(String, DynValue)>, BackendError>>()?;
        let outputs = self.session.run(feeds).map_err(failed("running"))?;
        self.outputs
            .iter()
            .map(|name| {
                let value = outputs.get(name).ok_or_else(|| {
                    BackendError::Failed(format!("ONNX Runtime returned no output `{name}`"))
                })?;
                array(name, value)
            })
            .collect()
    }

    /// Times `iterations` runs after `warmup` untimed ones, with a wall clock.
    pub fn time(
        &mut self,
        inputs: &[Array],
        warmup: usize,
        iterations: usize,
    ) -> Result<Vec<Duration>, BackendError> {
        for _ in 0..warmup {
            self.run(inputs)?;
        }
        (0..iterations)
            .map(|_| {
                let start = Instant::now();
                self.run(inputs).map(|_| start.elapsed())
            })
            .collect()
    }
}

/// An array as an ONNX Runtime tensor.
fn value(array: &Array) -> Result<DynValue, BackendError> {
    let shape: Vec<i64> = array.shape.iter().map(|&d| d as i64).collect();
    let made = match &array.data {
        ArrayData::F32(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::F64(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::F16(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::Bf16(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::I64(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::I32(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::I8(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::U8(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
        ArrayData::Bool(v) => Tensor::from_array((shape, v.clone())).map(Into::into),
    };
    made.map_err(|e| BackendError::Failed(format!("input `{}`: {e}", array.name)))
}

/// An output of ONNX Runtime as an array.
fn array(name: &str, value: &DynValue) -> Result<Array, BackendError> {
    let bad = |e: ort::Error| BackendError::Failed(format!("output `{name}`: {e}"));
    let element = value
        .dtype()
        .tensor_type()
        .ok_or_else(|| BackendError::Failed(format!("output `{name}` is not a tensor")))?;
    fn take<T: ort::tensor::PrimitiveTensorElementType + Copy + std::fmt::Debug>(
        value: &DynValue,
    ) -> Result<(Vec<usize>, Vec<T>), ort::Error> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        Ok((shape.iter().map(|&d| d as usize).collect(), data.to_vec()))
    }
    let (shape, data) = match element {
        TensorElementType::Float32 => take::<f32>(value).map(|(s, d)| (s, ArrayData::F32(d))),
        TensorElementType::Float64 => take::<f64>(value).map(|(s, d)| (s, ArrayData::F64(d))),
        TensorElementType::Float16 => take::<f16>(value).map(|(s, d)| (s, ArrayData::F16(d))),
        TensorElementType::Bfloat16 => take::<bf16>(value).map(|(s, d)| (s, ArrayData::Bf16(d))),
        TensorElementType::Int64 => take::<i64>(value).map(|(s, d)| (s, ArrayData::I64(d))),
        TensorElementType::Int32 => take::<i32>(value).map(|(s, d)| (s, ArrayData::I32(d))),
        TensorElementType::Int8 => take::<i8>(value).map(|(s, d)| (s, ArrayData::I8(d))),
        TensorElementType::Uint8 => take::<u8>(value).map(|(s, d)| (s, ArrayData::U8(d))),
        TensorElementType::Bool => take::<bool>(value).map(|(s, d)| (s, ArrayData::Bool(d))),
        other => {
            return Err(BackendError::Failed(format!(
                "output `{name}` is {other:?}, which precheck does not compare"
            )))
        }
    }
    .map_err(bad)?;
    Array::new(name, shape, data).map_err(BackendError::Failed)
}
