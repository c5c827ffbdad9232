//! ONNX files as models (`block: onnx`): a model precheck does not build from its own operations
//! but hands as it is to engines that run ONNX (the trtexec backend, a command engine such as
//! `ort_runner.py`). precheck reads only its interface: one FP32 input `[tokens, features]` and
//! one FP32 output `[tokens, features]`. It cannot evaluate such a model itself, so a suite with
//! one takes its reference from a golden file (`precheck golden --backend ...`), and its variants
//! have no CPU emulation to agree with or to fingerprint against: their precision evidence is
//! what the engine reports (kernels, layers).

use std::path::{Path, PathBuf};

use prost::Message;

use crate::onnx_proto::{DataType, ModelProto, ValueInfoProto};

/// An ONNX model file and its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxFile {
    /// The file.
    pub path: PathBuf,
    /// The graph's input.
    pub input: String,
    /// The graph's output.
    pub output: String,
    /// Columns of the input.
    pub input_features: usize,
    /// Columns of the output.
    pub output_features: usize,
    /// Rows, where the model fixes them (`None`: a dynamic first dimension).
    pub tokens: Option<usize>,
}

/// Why an ONNX file cannot be a model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an ONNX model.
    #[error("{} is not an ONNX model: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What protobuf said.
        message: String,
    },
    /// Its inputs or outputs are not one FP32 `[tokens, features]` tensor each.
    #[error("{}: {message}; precheck runs ONNX models with one FP32 input and one FP32 output, each [tokens, features]", path.display())]
    Interface {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads the interface of the ONNX model at `path`.
pub fn read(path: &Path) -> Result<OnnxFile, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_owned(),
        source,
    })?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| OnnxError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let interface = |message: String| OnnxError::Interface {
        path: path.to_owned(),
        message,
    };
    let graph = model
        .graph
        .ok_or_else(|| interface("the model has no graph".into()))?;
    // Before IR version 4, initializers were listed among the inputs too.
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .collect();
    let [input] = inputs[..] else {
        return Err(interface(format!("{} inputs", inputs.len())));
    };
    let [output] = &graph.output[..] else {
        return Err(interface(format!("{} outputs", graph.output.len())));
    };
    let (tokens, input_features) = matrix(input).map_err(interface)?;
    let (_, output_features) = matrix(output).map_err(interface)?;
    Ok(OnnxFile {
        path: path.to_owned(),
        input: input.name.clone(),
        output: output.name.clone(),
        input_features,
        output_features,
        tokens,
    })
}

/// The rows (if fixed) and columns of a 2-D FP32 tensor's declared shape.
fn matrix(value: &ValueInfoProto) -> Result<(Option<usize>, usize), String> {
    let tensor = value
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| format!("`{}` is not a tensor", value.name))?;
    if tensor.elem_type != DataType::Float as i32 {
        return Err(format!(
            "`{}` has element type {} (ONNX's FLOAT is 1)",
            value.name, tensor.elem_type
        ));
    }
    let dims: Vec<Option<usize>> = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| d.dim_value.map(|v| v as usize))
                .collect()
        })
        .unwrap_or_default();
    match dims[..] {
        [rows, Some(cols)] => Ok((rows, cols)),
        _ => Err(format!(
            "`{}` has shape {dims:?}, not [tokens, features] with fixed features",
            value.name
        )),
    }
}
