//! Weights and inputs read from files: a checkpoint that lacks a tensor, holds one of the wrong
//! shape or type, or is truncated, each gives an error naming the file, the tensor and what was
//! expected; a run whose checkpoint is unreadable records the error for every variant and exits 3.

mod common;

use common::precheck;

use std::path::Path;

use precheck::formats::Format;
use precheck::suite;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// A suite with one `linear` block (hidden 4 → 3 features) reading `weights.safetensors` and,
/// when `input` is set, its input from `input.safetensors`.
fn suite(dir: &Path, input: bool) -> String {
    let input = if input {
        "{ tokens: 2, file: input.safetensors }"
    } else {
        "{ tokens: 2 }"
    };
    let text = format!(
        "
name: files
defaults: {{ warmup: 0, iterations: 2 }}
models:
  - name: m
    block: linear
    dims: {{ hidden: 4, out_features: 3 }}
    input: {input}
    weights: {{ safetensors: weights.safetensors, prefix: 'dense.' }}
precisions: [bf16, fp32]
"
    );
    let path = dir.join("suite.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn write(path: &Path, tensors: &[(&str, Dtype, &[usize], Vec<u8>)]) {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                *name,
                TensorView::new(*dtype, shape.to_vec(), bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// The error `Model::weights` gives for the checkpoint `tensors`.
fn weights_error(tensors: &[(&str, Dtype, &[usize], Vec<u8>)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("weights.safetensors"), tensors);
    let loaded = suite::load(Path::new(&suite(dir.path(), false))).unwrap();
    let error = loaded.suite.models[0]
        .weights(1, Format::Bf16)
        .expect_err("the checkpoint is bad");
    error
        .to_string()
        .replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn a_checkpoint_is_read_by_prefixed_hugging_face_names_in_every_float_type() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.25).collect();
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    write(
        &dir.path().join("weights.safetensors"),
        &[("dense.weight", Dtype::BF16, &[3, 4], bf16)],
    );
    write(
        &dir.path().join("input.safetensors"),
        &[("x", Dtype::F32, &[1, 2, 4], f32_bytes([1.0; 8]))],
    );
    let loaded = suite::load(Path::new(&suite(dir.path(), true))).unwrap();
    let model = &loaded.suite.models[0];
    let weights = model.weights(1, Format::Fp32).unwrap();
    assert_eq!(weights.get("weight").data, values);
    let input = model.input(1, Format::Fp32).unwrap();
    assert_eq!((input.rows, input.cols), (2, 4));
    assert_eq!(input.data, [1.0; 8]);
}

#[test]
fn a_missing_tensor_is_named_with_the_nearest_one() {
    let error = weights_error(&[("dense.wieght", Dtype::F32, &[3, 4], f32_bytes([0.0; 12]))]);
    assert_eq!(
        error,
        "DIR/weights.safetensors has no tensor `dense.weight` (the block's `weight`); did you mean `dense.wieght`?"
    );
}

#[test]
fn a_wrong_shape_names_both_shapes() {
    let error = weights_error(&[("dense.weight", Dtype::F32, &[4, 3], f32_bytes([0.0; 12]))]);
    assert_eq!(
        error,
        "DIR/weights.safetensors: tensor `dense.weight` has shape [4, 3], the block's `weight` needs [3, 4]"
    );
}

#[test]
fn an_integer_tensor_is_refused() {
    let error = weights_error(&[("dense.weight", Dtype::I64, &[3, 4], vec![0; 96])]);
    assert_eq!(
        error,
        "DIR/weights.safetensors: tensor `dense.weight` is I64; precheck reads F32, F16 and BF16 tensors"
    );
}

#[test]
fn a_truncated_checkpoint_is_not_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    write(
        &path,
        &[("dense.weight", Dtype::F32, &[3, 4], f32_bytes([0.0; 12]))],
    );
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let loaded = suite::load(Path::new(&suite(dir.path(), false))).unwrap();
    let error = loaded.suite.models[0]
        .weights(1, Format::Bf16)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "{} is not a valid .safetensors file: ",
            path.display()
        )),
        "{error}"
    );
}

#[test]
fn an_input_file_of_the_wrong_width_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("weights.safetensors"),
        &[("dense.weight", Dtype::F32, &[3, 4], f32_bytes([0.0; 12]))],
    );
    write(
        &dir.path().join("input.safetensors"),
        &[("x", Dtype::F32, &[2, 5], f32_bytes([0.0; 10]))],
    );
    let loaded = suite::load(Path::new(&suite(dir.path(), true))).unwrap();
    let error = loaded.suite.models[0]
        .input(1, Format::Bf16)
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with(
            "input.safetensors: tensor `x` has shape [2, 5], the block's `input` needs [2, 4]"
        ),
        "{error}"
    );
}

#[test]
fn a_run_without_its_checkpoint_records_the_error_for_every_variant_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path(), false);
    let out = dir.path().join("run");
    precheck()
        .args(["run", &suite, "--out"])
        .arg(&out)
        .assert()
        .code(3);
    let (records, _) =
        precheck::results::read_records(&out.join(precheck::results::RESULTS_FILE)).unwrap();
    assert_eq!(records.len(), 2);
    for record in records {
        let error = record.error.expect("an error record");
        assert!(
            error.contains("weights.safetensors") && error.contains("No such file"),
            "{error}"
        );
    }
}

#[test]
fn an_npy_input_of_float64_is_read_with_its_batch_dimension() {
    use npyz::WriterBuilder;

    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("weights.safetensors"),
        &[("dense.weight", Dtype::F32, &[3, 4], f32_bytes([0.0; 12]))],
    );
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[1, 2, 4])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    writer.extend((0..8).map(|i| i as f64 * 0.5)).unwrap();
    writer.finish().unwrap();
    std::fs::write(dir.path().join("input.npy"), bytes).unwrap();
    let suite = suite(dir.path(), false);
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("{ tokens: 2 }", "{ tokens: 2, file: input.npy }");
    std::fs::write(&suite, text).unwrap();
    let loaded = suite::load(Path::new(&suite)).unwrap();
    let input = loaded.suite.models[0].input(1, Format::Fp32).unwrap();
    assert_eq!(input.data, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
}

#[test]
fn validate_checks_the_checkpoint_without_running() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("weights.safetensors"),
        &[("dense.weight", Dtype::F32, &[4, 3], f32_bytes([0.0; 12]))],
    );
    let suite = suite(dir.path(), false);
    let output = precheck().args(["validate", &suite]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(
        error.contains("model `m`: ")
            && error.contains(
                "tensor `dense.weight` has shape [4, 3], the block's `weight` needs [3, 4]"
            ),
        "{error}"
    );
}
