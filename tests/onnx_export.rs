//! The ONNX export, checked by another engine: every block of `tests/suites/onnx_roundtrip.yaml`
//! in every precision opset 21 can express is exported (`--onnx`), validated by the `onnx`
//! package's full checker and run by ONNX Runtime on the CPU (`examples/runners/ort_runner.py`
//! through the command backend). Needs python3 with `onnxruntime`, `onnx`, `numpy` and
//! `safetensors` (`.ci/run` installs them).

mod common;

use common::precheck;

use std::path::Path;

use precheck::results::{read_records, Status, VariantRecord, RESULTS_FILE};

/// Precisions whose recipes opset 21 cannot say: their variants must be errors that say so.
const INEXPRESSIBLE: [&str; 2] = ["mxfp8", "fp8_e4m3_delayed"];

fn roundtrip() -> Vec<VariantRecord> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let runner = root.join("examples/runners/ort_runner.py");
    precheck()
        .arg("run")
        .arg(root.join("tests/suites/onnx_roundtrip.yaml"))
        .args(["--backend", "command", "--onnx", "--command"])
        .arg(format!("python3 {} --check", runner.display()))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    read_records(&out.path().join(RESULTS_FILE)).unwrap().0
}

#[test]
fn every_block_round_trips_through_onnx_runtime() {
    let records = roundtrip();
    assert_eq!(records.len(), 6 * 11, "every variant recorded");
    for record in &records {
        let precision = record.precision.as_str();
        if INEXPRESSIBLE.contains(&precision) {
            let error = record.error.as_deref().unwrap_or_default();
            assert!(
                error.contains("ONNX opset 21 cannot express the operand recipe"),
                "{}: {error}",
                record.id
            );
            continue;
        }
        assert_eq!(
            record.status,
            Status::Passed,
            "{} (needs python3 with onnxruntime, onnx, numpy, safetensors): {:?}",
            record.id,
            record.error
        );
        // ONNX Runtime runs the exported policy; precheck's CPU backend emulates the same policy
        // on the same inputs. They differ only in accumulation order (and in where ONNX Runtime
        // fuses INT8 Q/DQ into integer GEMMs, which accumulate exactly as the emulation does once
        // ort_runner.py asks for the kernel that does not saturate on CPUs without VNNI).
        let agreement = record.cpu_agreement.as_ref().unwrap();
        assert!(
            agreement.cos > 0.999_999,
            "{}: cos to the CPU emulation {}",
            record.id,
            agreement.cos
        );
        let cos = record.accuracy.as_ref().unwrap().cos;
        if precision == "fp32" {
            assert!(cos > 0.999_99, "{}: FP32 cos {cos}", record.id);
        }
    }
}

#[test]
fn export_writes_each_expressible_precision_and_says_why_it_skips_the_rest() {
    let out = tempfile::tempdir().unwrap();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suites/onnx_roundtrip.yaml");
    let output = precheck()
        .arg("export")
        .arg(&suite)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let model = out.path().join("gqa_attention");
    for precision in ["fp32", "bf16", "fp8_e4m3", "int8", "int4_w"] {
        let file = model.join(format!("{precision}.onnx"));
        let bytes = std::fs::read(&file).unwrap();
        // A protobuf ModelProto: field 1 (ir_version, varint) = 10 comes first.
        assert_eq!(&bytes[..2], &[0x08, 10], "{}", file.display());
    }
    assert!(
        stdout.contains("skipped gqa_attention/mxfp8: ONNX opset 21 cannot express the operand recipe fp8_e4m3/mx"),
        "{stdout}"
    );
    assert!(!model.join("mxfp8.onnx").exists());
    assert!(stdout.contains("54 models written"), "{stdout}");
}

/// The ONNX Runtime the round trip was checked with is the one tests/requirements.txt pins: a
/// different one changes what the test proves, so it must be a decision (edit both).
#[test]
fn the_round_trip_runs_the_pinned_onnx_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let requirements = std::fs::read_to_string(root.join("tests/requirements.txt")).unwrap();
    let pinned = requirements
        .lines()
        .find_map(|line| line.strip_prefix("onnxruntime=="))
        .expect("tests/requirements.txt pins onnxruntime");
    assert_eq!(pinned, "1.32.0", "the version README.md names");
    let output = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime; print(onnxruntime.__version__)"])
        .output()
        .expect("python3 (cargo nextest sets up target/test-env)");
    let version = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        version.trim(),
        pinned,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
