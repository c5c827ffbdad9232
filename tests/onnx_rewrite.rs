//! The rewrite of a user's ONNX model into a precision policy agrees with precheck's own formats:
//! each block of `tests/suites/onnx_roundtrip.yaml`, exported in FP32 (as a user's FP32 model),
//! rewritten into a policy by `export::rewrite` and run by ONNX Runtime on the CPU, gives what
//! precheck's CPU backend gives for the same block in the same policy. Needs python3 with
//! `onnxruntime` and `numpy` (the test command's environment has them).

use std::path::Path;

use precheck::backend::{Backend, CpuBackend};
use precheck::export::rewrite::{rewrite, Calibration};
use precheck::measure::compare;
use precheck::onnx_proto::ModelProto;
use precheck::precision::{presets, Policy};
use precheck::tensor::Tensor;
use prost::Message;

/// Runs `model` on `input` (`[rows, cols]`, FP32) in ONNX Runtime on the CPU.
fn onnx_runtime(model: &[u8], input: &Tensor, dir: &Path) -> Tensor {
    let (model_path, input_path, output_path) = (
        dir.join("model.onnx"),
        dir.join("input.f32"),
        dir.join("output.f32"),
    );
    std::fs::write(&model_path, model).unwrap();
    let bytes: Vec<u8> = input.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_path, bytes).unwrap();
    // The non-saturating INT8 kernel, as examples/runners/ort_runner.py asks for it.
    let script = "
import sys, numpy as np, onnxruntime as ort
model, source, target, rows, cols = sys.argv[1:]
settings = ort.SessionOptions()
settings.add_session_config_entry('session.x64quantprecision', '1')
session = ort.InferenceSession(model, settings, providers=['CPUExecutionProvider'])
x = np.fromfile(source, dtype=np.float32).reshape(int(rows), int(cols))
(y,) = session.run(None, {session.get_inputs()[0].name: x})
y.astype(np.float32).tofile(target)
";
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([&model_path, &input_path, &output_path])
        .args([input.rows.to_string(), input.cols.to_string()])
        .output()
        .expect("python3 (cargo nextest sets up target/test-env)");
    assert!(
        output.status.success(),
        "ONNX Runtime: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&output_path).unwrap();
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::new(input.rows, data.len() / input.rows, data)
}

fn policy(name: &str) -> Policy {
    presets::preset(name).unwrap_or_else(|| {
        let suite = precheck::suite::from_str(
            Path::new("p.yaml"),
            &format!(
                "name: p\nmodels: [{{ name: m, block: linear, dims: {{ hidden: 8 }}, input: {{ tokens: 2 }} }}]\nprecisions: [{name}]\n"
            ),
        )
        .unwrap();
        suite.precisions[0].clone()
    })
}

#[test]
fn rewritten_models_agree_with_the_cpu_emulation_of_their_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = precheck::suite::load(&root.join("tests/suites/onnx_roundtrip.yaml"))
        .unwrap()
        .suite;
    let fp32 = presets::preset("fp32").unwrap();
    let policies = [
        "bf16",
        "fp16",
        "fp8_e4m3",
        "fp8_e5m2",
        "int8",
        "int4_w",
        "{ name: int8_per_tensor_acts, matmul: { weights: int8/per_channel, activations: int8/per_tensor } }",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    // The blocks without attention: a rewrite cannot tell attention's scores from any other
    // product, so it holds them in the matmul's output format where precheck holds them in the
    // softmax's, and precheck's RMSNorm is several ONNX operators, each held in the default
    // format by the rewrite.
    for model in suite.models.iter().filter(|m| !m.block.has_attention()) {
        let weights = model
            .weights(7, suite.reference.precision.format())
            .unwrap();
        let input = model.input(7, suite.reference.precision.format()).unwrap();
        let exported =
            precheck::export::onnx(model, &weights, &fp32, precheck::export::Precision::InGraph)
                .unwrap();
        let decoded = ModelProto::decode(exported.model.as_slice()).unwrap();
        for written in policies {
            let policy = policy(written);
            let rewritten = rewrite(&decoded, &policy, &Calibration::default())
                .unwrap_or_else(|e| panic!("{}/{}: {e}", model.name, policy.name));
            let output = onnx_runtime(&rewritten.encode_to_vec(), &input, dir.path());
            let emulation = CpuBackend::new()
                .prepare(model, &weights, &policy)
                .unwrap()
                .run(&input)
                .unwrap();
            let agreement = compare(&output.data, &emulation.map(f64::from).data).unwrap();
            assert!(
                agreement.cos > 0.999_999 && agreement.nonfinite == 0,
                "{}/{}: cos to the CPU emulation {}",
                model.name,
                policy.name,
                agreement.cos
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * policies.len(), "linear, gated and plain MLP");
}

#[test]
fn policies_onnx_cannot_say_are_refused_with_the_reason() {
    let model = ModelProto {
        opset_import: vec![precheck::onnx_proto::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(Default::default()),
        ..Default::default()
    };
    for (name, reason) in [
        ("mxfp8", "operand recipes"),
        ("nvfp4", "operand recipes"),
        // Delayed scaling is static Q/DQ with a calibration's scales: FP8 needs opset 19.
        ("fp8_e4m3_delayed", "needs opset 19"),
        ("tf32", "TF32"),
        ("fp8_e4m3", "needs opset 19"),
        ("int4_w", "needs opset 21"),
    ] {
        let error = rewrite(&model, &policy(name), &Calibration::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains(reason), "{name}: {error}");
    }
}
