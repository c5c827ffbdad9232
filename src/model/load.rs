//! Weights and inputs from files: `.safetensors` checkpoints (memory-mapped) and captured
//! activations (`.safetensors` or `.npy`).
//!
//! A block's parameter is looked up in the checkpoint as `prefix + name`, where a stack's layer
//! `layers.N.` prefix becomes `{layer}` = N in the checkpoint's prefix, and `map` renames what a
//! checkpoint calls otherwise. Every problem names the file and the tensor, and for a wrong shape
//! both shapes: a suite author fixes it without opening the file.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::blocks::split_layer;
use super::graph::Graph;
use super::{InputFile, Weights};
use crate::array::{Array, ArrayData, ElementType};
use crate::formats::Format;
use crate::model::CheckpointSpec;
use crate::tensor::Tensor;

/// Why weights or an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be opened or mapped.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid `.safetensors` or `.npy` file (truncated, for instance).
    #[error("{} is not a valid {kind} file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// `.safetensors` or `.npy`.
        kind: &'static str,
        /// What the reader said.
        message: String,
    },
    /// A tensor the block needs is not in the file.
    #[error("{} has no tensor `{tensor}` (the block's `{param}`){hint}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The name looked up.
        tensor: String,
        /// The block's parameter.
        param: String,
        /// A near name in the file, if any.
        hint: String,
    },
    /// A tensor has another shape than the block needs.
    #[error("{}: tensor `{tensor}` has shape {found:?}, the block's `{param}` needs {expected:?}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The block's parameter.
        param: String,
        /// What the block needs.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// A tensor's element type is not one precheck reads.
    #[error("{}: tensor `{tensor}` is {found}; precheck reads F32, F16 and BF16 tensors", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its element type.
        found: String,
    },
    /// A `.safetensors` input file holds several tensors and the suite names none.
    #[error("{} holds {count} tensors ({names}): say which with `input.tensor`", path.display())]
    Ambiguous {
        /// The file.
        path: PathBuf,
        /// How many.
        count: usize,
        /// Their names.
        names: String,
    },
    /// A user's ONNX model, which has no exact evaluation and no golden file.
    #[error("{} is an ONNX model: its reference is evaluated by ONNX Runtime in every run, not kept in a golden file", path.display())]
    NotEvaluable {
        /// The model file.
        path: PathBuf,
    },
    /// A user's ONNX model whose reference could not be evaluated.
    #[error("{}: its reference could not be evaluated: {message}", path.display())]
    Reference {
        /// The model file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A golden file made for another input than the run's (seed, tokens, input file).
    #[error("{}: the reference of `{model}` was made for another input (seed, tokens or input file changed since); make it again with `precheck golden`", path.display())]
    Stale {
        /// The golden file.
        path: PathBuf,
        /// The model.
        model: String,
    },
    /// A golden file with taps of a model, but not the ones the model has (misnamed, or of
    /// another depth): the run would compare no layer.
    #[error("{}: the reference lacks the taps {} that the run compares each layer with; it holds {}{}", path.display(), quoted(missing), quoted(present), hint.as_ref().map_or(String::new(), |h| format!("; did you mean `{h}`?")))]
    MissingTaps {
        /// The golden file.
        path: PathBuf,
        /// The taps the model has and the file lacks, as `MODEL/TAP`.
        missing: Vec<String>,
        /// The model's taps the file holds.
        present: Vec<String>,
        /// The present tap nearest the first missing one.
        hint: Option<String>,
    },
    /// An input file that is neither `.safetensors` nor `.npy`.
    #[error("{}: inputs are read from `.safetensors` or `.npy` files", path.display())]
    Extension {
        /// The file.
        path: PathBuf,
    },
}

/// A memory-mapped `.safetensors` file.
pub(super) struct Checkpoint {
    path: PathBuf,
    map: Mmap,
}

impl Checkpoint {
    pub(super) fn open(path: &Path) -> Result<Self, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is only read, and a checkpoint is not written while a run reads it; a
        // file truncated meanwhile would fault, as with any mmap reader (safetensors' own).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Ok(Checkpoint {
            path: path.to_owned(),
            map,
        })
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub(super) fn tensors(&self) -> Result<SafeTensors<'_>, LoadError> {
        SafeTensors::deserialize(&self.map).map_err(|e| LoadError::Format {
            path: self.path.clone(),
            kind: ".safetensors",
            message: e.to_string(),
        })
    }
}

/// Tensor `name` of `tensors`, checked against `expected` (`param` names the block's parameter in
/// errors): present, of that shape (a leading dimension of 1 is dropped, as a batch of one), and
/// of a float type precheck reads.
pub(super) fn find<'a>(
    file: &Path,
    tensors: &'a SafeTensors,
    name: &str,
    param: &str,
    expected: &[usize],
) -> Result<TensorView<'a>, LoadError> {
    let view = tensors.tensor(name).map_err(|_| {
        let names = tensors.names();
        let hint = crate::hints::nearest(name, names.iter().copied())
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        LoadError::Missing {
            path: file.to_owned(),
            tensor: name.to_owned(),
            param: param.to_owned(),
            hint,
        }
    })?;
    let mut shape = view.shape().to_vec();
    if shape.len() == expected.len() + 1 && shape[0] == 1 {
        shape.remove(0);
    }
    if shape != expected {
        return Err(LoadError::Shape {
            path: file.to_owned(),
            tensor: name.to_owned(),
            param: param.to_owned(),
            expected: expected.to_vec(),
            found: view.shape().to_vec(),
        });
    }
    if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
        return Err(LoadError::Dtype {
            path: file.to_owned(),
            tensor: name.to_owned(),
            found: format!("{:?}", view.dtype()),
        });
    }
    Ok(view)
}

/// The values of a tensor [`find`] accepted, as f32.
pub(super) fn values(view: &TensorView) -> Vec<f32> {
    let bytes = view.data();
    match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => unreachable!("find() accepts only float tensors, not {other:?}"),
    }
}

/// Writes `tensors` as an F32 `.safetensors` file with `metadata` in its header.
pub fn write_f32<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, Vec<usize>, &'a [f32])>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<(), String> {
    let bytes: Vec<(&str, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, data)| {
            let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, raw)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data).map(|view| (*name, view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("encoding tensors: {e}"))?;
    let encoded =
        safetensors::serialize(views, metadata).map_err(|e| format!("encoding tensors: {e}"))?;
    std::fs::write(path, encoded).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Each element type with its safetensors type.
const SAFETENSORS_TYPES: [(ElementType, Dtype); 9] = [
    (ElementType::F32, Dtype::F32),
    (ElementType::F64, Dtype::F64),
    (ElementType::F16, Dtype::F16),
    (ElementType::Bf16, Dtype::BF16),
    (ElementType::I64, Dtype::I64),
    (ElementType::I32, Dtype::I32),
    (ElementType::I8, Dtype::I8),
    (ElementType::U8, Dtype::U8),
    (ElementType::Bool, Dtype::BOOL),
];

/// The safetensors type of an element type.
fn safetensors_dtype(element: ElementType) -> Dtype {
    SAFETENSORS_TYPES
        .iter()
        .find(|(e, _)| *e == element)
        .map(|(_, dtype)| *dtype)
        .expect("every element type has a safetensors type")
}

/// Writes `arrays` to a `.safetensors` file, each in its own element type, under its name.
pub fn write_arrays(path: &Path, arrays: &[Array]) -> Result<(), String> {
    let bytes: Vec<Vec<u8>> = arrays.iter().map(|a| a.data.to_le_bytes()).collect();
    let views = arrays
        .iter()
        .zip(&bytes)
        .map(|(array, data)| {
            let dtype = safetensors_dtype(array.data.element());
            TensorView::new(dtype, array.shape.clone(), data)
                .map(|view| (array.name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("encoding tensors: {e}"))?;
    let encoded =
        safetensors::serialize(views, None).map_err(|e| format!("encoding tensors: {e}"))?;
    std::fs::write(path, encoded).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Every array of a `.safetensors` file (an engine's outputs).
pub fn read_arrays(path: &Path) -> Result<Vec<Array>, LoadError> {
    let checkpoint = Checkpoint::open(path)?;
    let tensors = checkpoint.tensors()?;
    let mut names = tensors.names();
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| safetensors_array(path, &tensors, name))
        .collect()
}

/// Checks that the checkpoint `spec` holds every parameter of `graph` with its shape and a float
/// type, reading only the file's header (`precheck validate`).
pub fn check_checkpoint(spec: &CheckpointSpec, graph: &Graph) -> Result<(), LoadError> {
    let file = Checkpoint::open(&spec.safetensors)?;
    let tensors = file.tensors()?;
    for param in &graph.params {
        let name = checkpoint_name(spec, &param.name);
        find(&file.path, &tensors, &name, &param.name, &param.shape)?;
    }
    Ok(())
}

/// The checkpoint's name for the block parameter `param`.
fn checkpoint_name(spec: &CheckpointSpec, param: &str) -> String {
    let (layer, rest) = split_layer(param).map_or((String::new(), param), |(index, rest)| {
        (index.to_string(), rest)
    });
    let rest = spec.map.get(rest).map_or(rest, String::as_str);
    format!("{}{rest}", spec.prefix.replace("{layer}", &layer))
}

/// Every parameter of `graph` from the checkpoint `spec`, rounded to `format`.
pub fn checkpoint(
    spec: &CheckpointSpec,
    graph: &Graph,
    format: Format,
) -> Result<Weights, LoadError> {
    let file = Checkpoint::open(&spec.safetensors)?;
    let tensors = file.tensors()?;
    let tensors = graph
        .params
        .iter()
        .map(|param| {
            let name = checkpoint_name(spec, &param.name);
            let mut data = values(&find(
                &file.path,
                &tensors,
                &name,
                &param.name,
                &param.shape,
            )?);
            format.round_slice(&mut data);
            let (rows, cols) = param.matrix_shape();
            Ok((param.name.clone(), Tensor::new(rows, cols, data)))
        })
        .collect::<Result<_, LoadError>>()?;
    Ok(Weights { tensors })
}

/// The input `[rows, cols]` from `file`, rounded to `format`.
pub fn input(
    file: &InputFile,
    [rows, cols]: [usize; 2],
    format: Format,
) -> Result<Tensor, LoadError> {
    let path = &file.path;
    let mut data = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => {
            safetensors_tensor(path, file.tensor.as_deref(), "input", [rows, cols])?
        }
        Some("npy") => read_npy(path, [rows, cols])?,
        _ => return Err(LoadError::Extension { path: path.clone() }),
    };
    format.round_slice(&mut data);
    Ok(Tensor::new(rows, cols, data))
}

/// An engine's output `[rows, cols]`: tensor `output` of the `.safetensors` file `path` (what the
/// command backend's engines write).
pub fn output(path: &Path, [rows, cols]: [usize; 2]) -> Result<Tensor, LoadError> {
    let data = safetensors_tensor(path, Some("output"), "output", [rows, cols])?;
    Ok(Tensor::new(rows, cols, data))
}

/// Tensor `tensor` of a `.safetensors` file (the only one when `None`), of shape `shape`; `role`
/// names it in errors.
fn safetensors_tensor(
    path: &Path,
    tensor: Option<&str>,
    role: &str,
    shape: [usize; 2],
) -> Result<Vec<f32>, LoadError> {
    let checkpoint = Checkpoint::open(path)?;
    let tensors = checkpoint.tensors()?;
    let name = match tensor {
        Some(name) => name.to_owned(),
        None => {
            let mut names = tensors.names();
            if names.len() != 1 {
                names.sort_unstable();
                return Err(LoadError::Ambiguous {
                    path: path.to_owned(),
                    count: names.len(),
                    names: names.join(", "),
                });
            }
            names[0].to_owned()
        }
    };
    Ok(values(&find(path, &tensors, &name, role, &shape)?))
}

/// A float32 or float64 `.npy` array of shape `[rows, cols]` (or `[1, rows, cols]`).
fn read_npy(path: &Path, expected: [usize; 2]) -> Result<Vec<f32>, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |message: String| LoadError::Format {
        path: path.to_owned(),
        kind: ".npy",
        message,
    };
    let array = checked_npy(path, ".npy", &bytes)?;
    let mut shape: Vec<usize> = array.shape().iter().map(|&d| d as usize).collect();
    if shape.len() == 3 && shape[0] == 1 {
        shape.remove(0);
    }
    if shape != expected {
        return Err(LoadError::Shape {
            path: path.to_owned(),
            tensor: "(the array)".into(),
            param: "input".into(),
            expected: expected.to_vec(),
            found: array.shape().iter().map(|&d| d as usize).collect(),
        });
    }
    let descr = array.dtype().descr();
    let fortran = array.order() == npyz::Order::Fortran;
    let values: Vec<f32> = match descr.trim_matches('\'') {
        "<f4" => array
            .into_vec::<f32>()
            .map_err(|e| invalid(e.to_string()))?,
        "<f8" => array
            .into_vec::<f64>()
            .map(|v| v.into_iter().map(|x| x as f32).collect())
            .map_err(|e| invalid(e.to_string()))?,
        other => {
            return Err(LoadError::Dtype {
                path: path.to_owned(),
                tensor: "(the array)".into(),
                found: other.to_owned(),
            })
        }
    };
    if !fortran {
        return Ok(values);
    }
    // Column-major (`fortran_order: True`, NumPy's `asfortranarray`): element (r, c) is stored
    // at c · rows + r; a leading axis of 1 changes no stride.
    let [rows, cols] = expected;
    Ok((0..rows * cols)
        .map(|i| values[(i % cols) * rows + i / cols])
        .collect())
}

/// The array `tensor` of an input file, of any shape and element type: a `.npy` file holds one
/// array, an `.npz` or `.safetensors` file an array by that name.
pub fn named_array(path: &Path, tensor: &str) -> Result<Array, LoadError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => {
            let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
                path: path.to_owned(),
                source,
            })?;
            typed_npy(path, tensor, checked_npy(path, ".npy", &bytes)?)
        }
        Some("npz") => {
            let bytes = npz_member(path, tensor)?;
            typed_npy(path, tensor, checked_npy(path, ".npz", &bytes)?)
        }
        Some("safetensors") => {
            let checkpoint = Checkpoint::open(path)?;
            safetensors_array(path, &checkpoint.tensors()?, tensor)
        }
        _ => Err(LoadError::Extension {
            path: path.to_owned(),
        }),
    }
}

/// Array `tensor` of the open `.safetensors` file `path`, in its own element type.
pub(super) fn safetensors_array(
    path: &Path,
    tensors: &SafeTensors,
    tensor: &str,
) -> Result<Array, LoadError> {
    let view = tensors.tensor(tensor).map_err(|_| {
        let names: Vec<&str> = tensors.names();
        missing_array(path, tensor, names.into_iter())
    })?;
    let element = SAFETENSORS_TYPES
        .iter()
        .find(|(_, dtype)| *dtype == view.dtype())
        .map(|(element, _)| *element)
        .ok_or_else(|| LoadError::Dtype {
            path: path.to_owned(),
            tensor: tensor.to_owned(),
            found: format!("{:?}", view.dtype()),
        })?;
    let data = array_data_from_le(element, view.data());
    Array::new(tensor, view.shape().to_vec(), data).map_err(|message| LoadError::Format {
        path: path.to_owned(),
        kind: ".safetensors",
        message,
    })
}

/// The error for an array `tensor` that the file `path` lacks, with the nearest of `names`.
fn missing_array<'a>(path: &Path, tensor: &str, names: impl Iterator<Item = &'a str>) -> LoadError {
    LoadError::Missing {
        path: path.to_owned(),
        tensor: tensor.to_owned(),
        param: format!("input {tensor}"),
        hint: crate::hints::did_you_mean(tensor, names),
    }
}

/// Little-endian values of `element` (a `.safetensors` tensor's bytes, an engine's output).
pub fn array_data_from_le(element: ElementType, bytes: &[u8]) -> ArrayData {
    fn each<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks of N bytes")))
            .collect()
    }
    match element {
        ElementType::F32 => ArrayData::F32(each(bytes, f32::from_le_bytes)),
        ElementType::F64 => ArrayData::F64(each(bytes, f64::from_le_bytes)),
        ElementType::F16 => ArrayData::F16(each(bytes, half::f16::from_le_bytes)),
        ElementType::Bf16 => ArrayData::Bf16(each(bytes, half::bf16::from_le_bytes)),
        ElementType::I64 => ArrayData::I64(each(bytes, i64::from_le_bytes)),
        ElementType::I32 => ArrayData::I32(each(bytes, i32::from_le_bytes)),
        ElementType::I8 => ArrayData::I8(each(bytes, i8::from_le_bytes)),
        ElementType::U8 => ArrayData::U8(bytes.to_vec()),
        ElementType::Bool => ArrayData::Bool(bytes.iter().map(|&b| b != 0).collect()),
    }
}

/// The deepest a `.npy` header may nest brackets: its dict holds the shape's tuple (2); a
/// structured dtype, which precheck does not read, nests deeper. npyz's header parser backtracks
/// exponentially on deep nesting (a 300-byte header of `{` took it past 15 seconds: found by
/// fuzzing), so a deeper header is refused before it is parsed.
const NPY_HEADER_DEPTH: usize = 3;

/// The `.npy` array in `bytes` (a file, or a member of the `.npz` file `path`), its header
/// checked before npyz parses it.
fn checked_npy<'a>(
    path: &Path,
    kind: &'static str,
    bytes: &'a [u8],
) -> Result<npyz::NpyFile<&'a [u8]>, LoadError> {
    let invalid = |message: String| LoadError::Format {
        path: path.to_owned(),
        kind,
        message,
    };
    // Magic, version, then the header's length: 2 bytes in version 1, 4 in versions 2 and 3.
    // npyz allocates the length it reads before reading the header (4 GiB, for a length of
    // 0xffffffff: found by fuzzing), so a length past the file's end is refused first.
    let header = match bytes {
        [0x93, b'N', b'U', b'M', b'P', b'Y', 1, _, a, b, rest @ ..] => {
            Some((u64::from(u16::from_le_bytes([*a, *b])), rest))
        }
        [0x93, b'N', b'U', b'M', b'P', b'Y', 2 | 3, _, a, b, c, d, rest @ ..] => {
            Some((u64::from(u32::from_le_bytes([*a, *b, *c, *d])), rest))
        }
        _ => None,
    };
    if let Some((length, rest)) = header {
        let header = usize::try_from(length)
            .ok()
            .and_then(|n| rest.get(..n))
            .ok_or_else(|| {
                invalid(format!(
                    "its header says it is {length} bytes long; {} bytes follow",
                    rest.len()
                ))
            })?;
        let (mut depth, mut deepest) = (0usize, 0usize);
        for byte in header {
            match byte {
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if deepest > NPY_HEADER_DEPTH {
            return Err(invalid(format!(
                "its header nests brackets {deepest} deep; an array's header nests at most \
                 {NPY_HEADER_DEPTH}"
            )));
        }
    }
    npyz::NpyFile::new(bytes).map_err(|e| invalid(e.to_string()))
}

/// The bytes of the array `tensor` (`TENSOR.npy`) of the `.npz` file `path`. A member that says
/// it unpacks to more than the file could hold uncompressed (deflate packs at most 1032:1) is
/// refused before it is unpacked.
fn npz_member(path: &Path, tensor: &str) -> Result<Vec<u8>, LoadError> {
    let invalid = |message: String| LoadError::Format {
        path: path.to_owned(),
        kind: ".npz",
        message,
    };
    let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let file_size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let mut archive = zip::ZipArchive::new(file).map_err(|e| invalid(e.to_string()))?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|name| name.strip_suffix(".npy"))
        .map(str::to_owned)
        .collect();
    let mut member = match archive.by_name(&format!("{tensor}.npy")) {
        Ok(member) => member,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(missing_array(
                path,
                tensor,
                names.iter().map(String::as_str),
            ))
        }
        Err(e) => return Err(invalid(e.to_string())),
    };
    let size = member.size();
    if size > file_size.saturating_mul(1032) {
        return Err(invalid(format!(
            "`{tensor}.npy` says it unpacks to {size} bytes from a {file_size}-byte file"
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut member, size), &mut bytes)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(bytes)
}

/// A `.npy` array in its own element type, C order (a Fortran-order array is transposed).
fn typed_npy<R: std::io::Read>(
    path: &Path,
    tensor: &str,
    array: npyz::NpyFile<R>,
) -> Result<Array, LoadError> {
    let invalid = |message: String| LoadError::Format {
        path: path.to_owned(),
        kind: ".npy",
        message,
    };
    let shape: Vec<usize> = array.shape().iter().map(|&d| d as usize).collect();
    let fortran = array.order() == npyz::Order::Fortran;
    let descr = array.dtype().descr();
    let read = |e: std::io::Error| invalid(e.to_string());
    let data = match descr.trim_matches('\'') {
        "<f4" => ArrayData::F32(array.into_vec().map_err(read)?),
        "<f8" => ArrayData::F64(array.into_vec().map_err(read)?),
        "<i8" => ArrayData::I64(array.into_vec().map_err(read)?),
        "<i4" => ArrayData::I32(array.into_vec().map_err(read)?),
        "|i1" => ArrayData::I8(array.into_vec().map_err(read)?),
        "|u1" => ArrayData::U8(array.into_vec().map_err(read)?),
        other => {
            return Err(LoadError::Dtype {
                path: path.to_owned(),
                tensor: tensor.to_owned(),
                found: format!("{other} (inputs are read as <f4, <f8, <i8, <i4, |i1 or |u1)"),
            })
        }
    };
    let data = if fortran {
        from_fortran_order(data, &shape)
    } else {
        data
    };
    Array::new(tensor, shape, data).map_err(invalid)
}

/// `data` stored column-major (the first index fastest) put in row-major order.
fn from_fortran_order(data: ArrayData, shape: &[usize]) -> ArrayData {
    let count: usize = shape.iter().product();
    // The column-major position of each row-major index.
    let source: Vec<usize> = (0..count)
        .map(|mut index| {
            let (mut position, mut stride) = (0, 1);
            let mut strides: Vec<usize> = Vec::with_capacity(shape.len());
            for &size in shape {
                strides.push(stride);
                stride *= size;
            }
            for (axis, &size) in shape.iter().enumerate().rev() {
                position += (index % size) * strides[axis];
                index /= size;
            }
            position
        })
        .collect();
    fn gather<T: Copy>(values: Vec<T>, source: &[usize]) -> Vec<T> {
        source.iter().map(|&i| values[i]).collect()
    }
    match data {
        ArrayData::F32(v) => ArrayData::F32(gather(v, &source)),
        ArrayData::F64(v) => ArrayData::F64(gather(v, &source)),
        ArrayData::F16(v) => ArrayData::F16(gather(v, &source)),
        ArrayData::Bf16(v) => ArrayData::Bf16(gather(v, &source)),
        ArrayData::I64(v) => ArrayData::I64(gather(v, &source)),
        ArrayData::I32(v) => ArrayData::I32(gather(v, &source)),
        ArrayData::I8(v) => ArrayData::I8(gather(v, &source)),
        ArrayData::U8(v) => ArrayData::U8(gather(v, &source)),
        ArrayData::Bool(v) => ArrayData::Bool(gather(v, &source)),
    }
}

/// Names as `` `a`, `b` `` for messages.
fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` header of a hundred nested braces took npyz's parser past 15 seconds (found by
    /// fuzzing: `fuzz/corpus/arrays/regress-npy-header-nested-deep`).
    #[test]
    fn a_deeply_nested_npy_header_is_refused_before_it_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let header = format!("{{'descr':{}'<f8'}}", "{".repeat(100));
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        for (name, file) in [("x.npy", bytes.clone()), ("y.npz", npz(&bytes))] {
            let path = dir.path().join(name);
            std::fs::write(&path, file).unwrap();
            let started = std::time::Instant::now();
            let error = named_array(&path, "x").unwrap_err().to_string();
            assert!(
                error.contains("its header nests brackets 101 deep"),
                "{error}"
            );
            assert!(started.elapsed().as_secs() < 2);
        }
    }

    /// A version-2 header that says it is 4 GiB long made npyz allocate 4 GiB before reading it
    /// (found by fuzzing: `fuzz/corpus/arrays/regress-npy-header-length-past-the-end`).
    #[test]
    fn a_header_longer_than_the_file_is_refused_before_it_is_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend(b"{'descr': '<f4'}");
        let path = dir.path().join("x.npy");
        std::fs::write(&path, bytes).unwrap();
        let error = named_array(&path, "x").unwrap_err().to_string();
        assert!(
            error.contains("its header says it is 4294967295 bytes long; 16 bytes follow"),
            "{error}"
        );
    }

    /// `x.npy` holding `bytes`, as an `.npz` archive.
    fn npz(bytes: &[u8]) -> Vec<u8> {
        let mut buffer = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buffer);
        zip.start_file("x.npy", zip::write::FileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
        zip.finish().unwrap();
        drop(zip);
        buffer.into_inner()
    }

    /// A zip bomb's member says it unpacks to far more than deflate could make of the file: it is
    /// refused from the size it declares, before anything is unpacked.
    #[test]
    fn an_npz_member_claiming_more_than_the_file_can_hold_is_refused_unread() {
        let mut archive = npz(&fortran_npy("(2,)", &[1.0, 2.0]));
        // The central directory's record of `x.npy`: its uncompressed size is at byte 24.
        let at = archive
            .windows(4)
            .position(|w| w == b"PK\x01\x02")
            .expect("a central directory")
            + 24;
        archive[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.npz");
        std::fs::write(&path, &archive).unwrap();
        let error = named_array(&path, "x").unwrap_err().to_string();
        let expected = format!(
            "`x.npy` says it unpacks to 4294967280 bytes from a {}-byte file",
            archive.len()
        );
        assert!(error.contains(&expected), "{error}");
    }

    #[test]
    fn stack_layers_fill_the_prefix_and_map_renames() {
        let spec = CheckpointSpec {
            safetensors: PathBuf::from("m.safetensors"),
            prefix: "encoder.layer.{layer}.".into(),
            map: [("fc1.weight".to_owned(), "mlp.fc_in.weight".to_owned())].into(),
        };
        assert_eq!(
            checkpoint_name(&spec, "layers.3.attention.self.query.weight"),
            "encoder.layer.3.attention.self.query.weight"
        );
        assert_eq!(
            checkpoint_name(&spec, "fc1.weight"),
            "encoder.layer..mlp.fc_in.weight"
        );
        let plain = CheckpointSpec {
            prefix: "model.layers.2.mlp.".into(),
            ..spec
        };
        assert_eq!(
            checkpoint_name(&plain, "gate_proj.weight"),
            "model.layers.2.mlp.gate_proj.weight"
        );
    }

    /// A `.npy` file of `values` (f32) in Fortran order with `shape`, as NumPy writes it.
    fn fortran_npy(shape: &str, values: &[f32]) -> Vec<u8> {
        let mut header = format!("{{'descr': '<f4', 'fortran_order': True, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        bytes
    }

    #[test]
    fn fortran_order_arrays_are_read_in_their_layout() {
        let dir = tempfile::tempdir().unwrap();
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let columns = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        for shape in ["(2, 3)", "(1, 2, 3)"] {
            let path = dir.path().join("x.npy");
            std::fs::write(&path, fortran_npy(shape, &columns)).unwrap();
            let values = read_npy(&path, [2, 3]).unwrap();
            assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "{shape}");
        }
    }
}
