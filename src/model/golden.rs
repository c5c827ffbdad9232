//! Golden references: each model's reference output frozen in a `.safetensors` file, so that a
//! nightly compares against the same numbers however precheck or the engines change, and so that
//! the reference can come from any backend (PyTorch BF16 on the GPU through the command backend,
//! say) rather than from precheck's exact evaluation.
//!
//! Layout (`precheck golden` writes it; a suite names it as `reference: { file: ... }`): tensor
//! `MODEL` is the model's output `[tokens, out_features]`, F32; `MODEL/TAP` a tap of a stack
//! (`MODEL/layer.3`, the output of its layer 3). A file that holds taps of a model must hold every
//! tap the model has; one that holds none (an engine that reports no taps made it) gives no
//! per-layer results. The header's metadata holds, per model, `MODEL.input_sha256` (a digest of
//! the input the output was computed from: a run whose input differs is refused, so a changed
//! seed cannot pass silently) and `MODEL.source` (what computed it).

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::load::{self, Checkpoint, LoadError};
use crate::array::Array;
use crate::tensor::Tensor;

/// One model's frozen reference.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenOutput {
    /// The model's name.
    pub model: String,
    /// Digest of the input it was computed from ([`input_digest`]).
    pub input_sha256: String,
    /// What computed it, for people (`exact`, `cuda: NVIDIA H100 …`, `command …`).
    pub source: String,
    /// What it froze.
    pub values: GoldenValues,
}

/// The values a golden file holds for one model.
#[derive(Debug, Clone, PartialEq)]
pub enum GoldenValues {
    /// A block's output and its taps (a stack's layers), by name.
    Block {
        /// The output.
        output: Tensor,
        /// The taps.
        taps: Vec<(String, Tensor)>,
    },
    /// A user's ONNX model's outputs and the values marked along it, each under its name and
    /// with its shape.
    Graph(Vec<Array>),
}

/// A reference read back: output and taps, as the runner compares in f64.
pub type Reference = (Tensor<f64>, Vec<(String, Tensor<f64>)>);

/// SHA-256 of an input's shape and f32 values, hex.
pub fn input_digest(input: &Tensor) -> String {
    let mut hasher = Sha256::new();
    hasher.update((input.rows as u64).to_le_bytes());
    hasher.update((input.cols as u64).to_le_bytes());
    for v in &input.data {
        hasher.update(v.to_le_bytes());
    }
    format!("{:x}", hasher.finalize())
}

fn digest_key(model: &str) -> String {
    format!("{model}.input_sha256")
}

/// Writes `outputs` to `path`.
pub fn write(path: &Path, outputs: &[GoldenOutput]) -> Result<(), String> {
    let mut metadata = HashMap::new();
    let mut tensors = Vec::new();
    let mut arrays: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for golden in outputs {
        metadata.insert(digest_key(&golden.model), golden.input_sha256.clone());
        metadata.insert(format!("{}.source", golden.model), golden.source.clone());
        match &golden.values {
            GoldenValues::Block { output, taps } => {
                tensors.push((golden.model.clone(), output));
                for (tap, tensor) in taps {
                    tensors.push((format!("{}/{tap}", golden.model), tensor));
                }
            }
            GoldenValues::Graph(values) => {
                for value in values {
                    let name = format!("{}/{}", golden.model, value.name);
                    arrays.push((name, value.shape.clone(), value.data.to_f32()));
                }
            }
        }
    }
    let blocks = tensors
        .iter()
        .map(|(name, t)| (name.as_str(), vec![t.rows, t.cols], t.data.as_slice()));
    let graphs = arrays
        .iter()
        .map(|(name, shape, data)| (name.as_str(), shape.clone(), data.as_slice()));
    load::write_f32(path, blocks.chain(graphs), Some(metadata))
}

/// The reference of `model` in the golden file `path`, checked against the run's `input` and
/// the block's output shape; the taps the file holds of `taps`.
pub fn read(
    path: &Path,
    model: &str,
    input: &Tensor,
    output_cols: usize,
    taps: &[String],
) -> Result<Reference, LoadError> {
    let file = Checkpoint::open(path)?;
    let tensors = file.tensors()?;
    let shape = [input.rows, output_cols];
    let view = load::find(path, &tensors, model, "reference output", &shape)?;
    let output = Tensor::new(input.rows, output_cols, load::values(&view));
    check_fresh(path, &file, model, &input_digest(input))?;
    let prefix = format!("{model}/");
    let present: Vec<String> = tensors
        .names()
        .into_iter()
        .filter(|name| name.starts_with(&prefix))
        .map(|name| name.to_owned())
        .collect();
    let missing: Vec<String> = taps
        .iter()
        .map(|tap| format!("{prefix}{tap}"))
        .filter(|name| !present.contains(name))
        .collect();
    if !present.is_empty() && !missing.is_empty() {
        return Err(LoadError::MissingTaps {
            path: path.to_owned(),
            hint: crate::hints::nearest(&missing[0], present.iter().map(String::as_str)),
            missing,
            present,
        });
    }
    let taps = taps
        .iter()
        .filter_map(|tap| {
            let view = tensors.tensor(&format!("{prefix}{tap}")).ok()?;
            let shape = view.shape();
            let tensor = Tensor::new(shape[0], shape[1], load::values(&view));
            Some((tap.clone(), tensor.map(f64::from)))
        })
        .collect();
    Ok((output.map(f64::from), taps))
}

/// Fails unless the golden file `file` (at `path`) records `digest` as the digest of the input
/// `model`'s reference was made from: a changed seed or input cannot pass silently.
fn check_fresh(path: &Path, file: &Checkpoint, model: &str, digest: &str) -> Result<(), LoadError> {
    let (_, header) =
        safetensors::SafeTensors::read_metadata(file.bytes()).map_err(|e| LoadError::Format {
            path: path.to_owned(),
            kind: ".safetensors",
            message: e.to_string(),
        })?;
    let recorded = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(&digest_key(model)).cloned());
    if recorded.as_deref() == Some(digest) {
        Ok(())
    } else {
        Err(LoadError::Stale {
            path: path.to_owned(),
            model: model.to_owned(),
        })
    }
}

/// A digest of a user's ONNX model's inputs: each one's name, shape, type and bytes.
pub fn arrays_digest(inputs: &[Array]) -> String {
    let mut hasher = Sha256::new();
    for input in inputs {
        hasher.update(input.name.as_bytes());
        hasher.update([0]);
        for &d in &input.shape {
            hasher.update((d as u64).to_le_bytes());
        }
        hasher.update(input.data.element().name().as_bytes());
        hasher.update(input.data.to_le_bytes());
    }
    format!("{:x}", hasher.finalize())
}

/// A user's ONNX model's reference from the golden file at `path`: `MODEL/OUTPUT` for each of
/// `outputs` (every one needed) and `MODEL/VALUE` for each of `marks` (all or none: a file
/// made without them gives no comparison along the graph), made from `inputs`.
pub fn read_values(
    path: &Path,
    model: &str,
    inputs: &[Array],
    outputs: &[String],
    marks: &[String],
) -> Result<Vec<Array>, LoadError> {
    let file = Checkpoint::open(path)?;
    let tensors = file.tensors()?;
    let read = |value: &str| load::safetensors_array(path, &tensors, &format!("{model}/{value}"));
    let mut values = outputs
        .iter()
        .map(|output| read(output))
        .collect::<Result<Vec<Array>, LoadError>>()?;
    check_fresh(path, &file, model, &arrays_digest(inputs))?;
    let present: Vec<&String> = marks
        .iter()
        .filter(|m| tensors.names().contains(&format!("{model}/{m}").as_str()))
        .collect();
    if !present.is_empty() && present.len() < marks.len() {
        let missing: Vec<String> = marks
            .iter()
            .filter(|m| !present.contains(m))
            .map(|m| format!("{model}/{m}"))
            .collect();
        return Err(LoadError::MissingTaps {
            path: path.to_owned(),
            hint: None,
            missing,
            present: present.iter().map(|m| format!("{model}/{m}")).collect(),
        });
    }
    for mark in present {
        values.push(read(mark)?);
    }
    // The file holds FP32 values under `MODEL/NAME`; the reference is named as the graph's.
    for value in &mut values {
        value.name = value.name[model.len() + 1..].to_owned();
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(model: &str, input: &Tensor) -> GoldenOutput {
        GoldenOutput {
            model: model.into(),
            input_sha256: input_digest(input),
            source: "test".into(),
            values: GoldenValues::Block {
                output: Tensor::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]),
                taps: vec![("layers.0".into(), Tensor::new(2, 1, vec![7.0, 8.0]))],
            },
        }
    }

    #[test]
    fn written_references_read_back_for_the_same_input_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("golden.safetensors");
        let input = Tensor::new(2, 2, vec![0.5, -1.0, 2.0, 0.25]);
        write(&path, &[golden("m", &input)]).unwrap();
        let taps = ["layers.0".to_owned()];
        let (output, found) = read(&path, "m", &input, 3, &taps).unwrap();
        assert_eq!(output.data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.data, [7.0, 8.0]);

        let other = Tensor::new(2, 2, vec![0.5, -1.0, 2.0, 0.5]);
        let stale = read(&path, "m", &other, 3, &taps).unwrap_err().to_string();
        assert!(
            stale.contains("the reference of `m` was made for another input"),
            "{stale}"
        );
        // Taps named otherwise than the model's: an error naming both, not a silent run
        // without per-layer results.
        let layer_taps = ["layer.0".to_owned(), "layer.1".to_owned()];
        let misnamed = read(&path, "m", &input, 3, &layer_taps)
            .unwrap_err()
            .to_string();
        assert!(
            misnamed.contains("lacks the taps `m/layer.0`, `m/layer.1`")
                && misnamed.contains("it holds `m/layers.0`")
                && misnamed.contains("did you mean `m/layers.0`?"),
            "{misnamed}"
        );
        let missing = read(&path, "n", &input, 3, &taps).unwrap_err().to_string();
        assert!(missing.contains("has no tensor `n`"), "{missing}");
        let shape = read(&path, "m", &input, 4, &taps).unwrap_err().to_string();
        assert!(shape.contains("needs [2, 4]"), "{shape}");
    }
}
