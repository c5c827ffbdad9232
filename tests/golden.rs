//! Golden references: `precheck golden` freezes each model's reference output, from precheck's
//! exact evaluation or from a backend; a suite naming the file compares against it, and refuses
//! it for another input.

mod common;

use common::precheck;

use std::path::{Path, PathBuf};

use precheck::results::{read_records, Status, VariantRecord, RESULTS_FILE};

const SUITE: &str = "
name: frozen
defaults: { seed: 3, warmup: 0, iterations: 2 }
reference: { precision: bf16, file: golden.safetensors }
models:
  - { name: lin, block: linear, dims: { hidden: 64, out_features: 48 }, input: { tokens: 8 } }
  - name: deep
    block: stack
    dims: { hidden: 32, intermediate: 64, heads: 2, layers: 2 }
    activation: silu
    input: { tokens: 8 }
precisions: [bf16, fp32, fp8_e4m3]
gates: { cos_min: 0.99 }
";

/// The suite in a fresh folder; its golden file is `golden.safetensors` beside it.
fn suite() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frozen.yaml");
    std::fs::write(&path, SUITE).unwrap();
    (dir, path)
}

fn golden(suite: &Path, args: &[&str]) {
    let out = suite.with_file_name("golden.safetensors");
    precheck()
        .arg("golden")
        .arg(suite)
        .arg("--out")
        .arg(out)
        .args(args)
        .assert()
        .success();
}

fn run(suite: &Path, args: &[&str]) -> (Option<i32>, Vec<VariantRecord>) {
    let out = suite.with_file_name(format!("run{}", args.len()));
    let status = precheck()
        .arg("run")
        .arg(suite)
        .arg("--out")
        .arg(&out)
        .args(args)
        .output()
        .unwrap()
        .status;
    (
        status.code(),
        read_records(&out.join(RESULTS_FILE)).unwrap().0,
    )
}

fn cos(records: &[VariantRecord], id: &str) -> f64 {
    let record = records.iter().find(|r| r.id == id).unwrap();
    record.accuracy.as_ref().unwrap().cos
}

#[test]
fn an_exact_golden_file_gives_the_exact_references_numbers() {
    let (_dir, suite) = suite();
    golden(&suite, &[]);
    let (code, records) = run(&suite, &[]);
    assert_eq!(code, Some(0), "{records:?}");
    assert_eq!(records.len(), 6);
    for record in &records {
        assert_eq!(record.status, Status::Passed, "{}", record.id);
    }
    assert!(cos(&records, "lin/fp32/cpu") > 0.999_999);
    let deep = records.iter().find(|r| r.id == "deep/bf16/cpu").unwrap();
    assert_eq!(
        deep.layers.len(),
        2,
        "the stack's taps come from the golden file"
    );
}

#[test]
fn a_golden_file_from_a_backend_is_that_backends_output() {
    let (_dir, suite) = suite();
    // The reference is the CPU backend's BF16 emulation: the BF16 variant is that same
    // computation, so it matches exactly, while FP32 no longer does.
    golden(&suite, &["--backend", "cpu"]);
    let (_, records) = run(&suite, &[]);
    let error = |id: &str| {
        let record = records.iter().find(|r| r.id == id).unwrap();
        record.accuracy.as_ref().unwrap().max_abs_err
    };
    assert_eq!(error("lin/bf16/cpu"), 0.0);
    assert!(error("lin/fp32/cpu") > 0.0);
}

#[test]
fn a_golden_file_for_another_input_is_refused_per_variant() {
    let (_dir, suite) = suite();
    golden(&suite, &[]);
    let (code, records) = run(&suite, &["--seed", "4"]);
    assert_eq!(code, Some(3));
    for record in &records {
        let error = record.error.as_deref().unwrap();
        assert!(
            error.contains("was made for another input") && error.contains("precheck golden"),
            "{}: {error}",
            record.id
        );
    }
}

#[test]
fn a_missing_golden_file_is_an_error_record_naming_it() {
    let (_dir, suite) = suite();
    let (code, records) = run(&suite, &[]);
    assert_eq!(code, Some(3));
    let error = records[0].error.as_deref().unwrap();
    assert!(error.contains("golden.safetensors"), "{error}");
}

/// A golden file whose taps are named otherwise than the stack's layers (`deep/layers.0`, the
/// form an old doc comment suggested, for `deep/layer.0`) is an error record for each of the
/// stack's variants naming the missing taps and the nearest present, not a run that silently
/// compares no layer.
#[test]
fn a_golden_file_with_misnamed_taps_is_an_error_record_naming_them() {
    let (_dir, suite) = suite();
    golden(&suite, &[]);
    let file = suite.with_file_name("golden.safetensors");
    let rename = "import sys
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
path = sys.argv[1]
with safe_open(path, 'np') as f:
    metadata = f.metadata()
tensors = {k.replace('/layer.', '/layers.'): v for k, v in load_file(path).items()}
save_file(tensors, path, metadata=metadata)";
    let status = std::process::Command::new("python3")
        .args(["-c", rename])
        .arg(&file)
        .status()
        .expect("python3 (cargo nextest sets up target/test-env)");
    assert!(status.success(), "python3 with safetensors and numpy");
    let (code, records) = run(&suite, &[]);
    assert_eq!(code, Some(3), "{records:?}");
    for record in &records {
        if record.model == "deep" {
            let error = record.error.as_deref().unwrap_or_default();
            assert_eq!(record.status, Status::Error);
            assert!(
                error.contains("lacks the taps `deep/layer.0`, `deep/layer.1`")
                    && error.contains("did you mean `deep/layers.0`?"),
                "{error}"
            );
        } else {
            assert_eq!(record.status, Status::Passed, "{}", record.id);
        }
    }
}
