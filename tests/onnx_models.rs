//! ONNX files as models (`block: onnx`): read for their interface, refused without a golden
//! reference, rewritten into each policy for ONNX Runtime (command backend), handed as they are
//! with builder flags to trtexec (its stand-in), and never evaluated by precheck's CPU backend. Needs python3 with onnx,
//! onnxruntime, numpy and safetensors.

mod common;

use common::precheck;

use std::path::{Path, PathBuf};

use precheck::results::{read_records, Status, VariantRecord, RESULTS_FILE};
use predicates::prelude::*;

const SOURCE: &str = "
name: source
defaults: { seed: 5 }
models:
  - { name: mlp, block: mlp, dims: { hidden: 32, intermediate: 96 }, activation: silu, input: { tokens: 6 } }
precisions: [fp32]
";

const SUITE: &str = "
name: onnx_models
defaults: { seed: 5, warmup: 1, iterations: 3 }
reference: { precision: bf16, file: golden.safetensors }
models:
  - { name: exported, block: onnx, onnx: mlp.onnx, input: { tokens: 6 } }
  - { name: dynamic, block: onnx, onnx: dynamic.onnx, input: { tokens: 6 } }
precisions: [fp32, fp16, bf16]
gates: { cos_min: 0.99 }
";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ort_runner() -> String {
    format!(
        "python3 {}",
        root().join("examples/runners/ort_runner.py").display()
    )
}

/// Exports model `model` of the suite `source` in FP32 (`precheck export`, in `dir`) to `to`.
fn export_fp32(dir: &Path, source: &str, model: &str, to: &Path) {
    let suite = dir.join("source.yaml");
    std::fs::write(&suite, source).unwrap();
    precheck()
        .arg("export")
        .arg(&suite)
        .arg("--out")
        .arg(dir.join("export"))
        .assert()
        .success();
    std::fs::copy(dir.join("export").join(model).join("fp32.onnx"), to).unwrap();
}

/// A folder with `mlp.onnx` (a gated MLP exported by precheck, 6 × 32 → 6 × 32), `dynamic.onnx`
/// (the same with a dynamic token dimension) and the suite.
fn models() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("mlp.onnx");
    export_fp32(dir.path(), SOURCE, "mlp", &exported);
    let dynamic = "import onnx, sys
m = onnx.load(sys.argv[1])
for v in (m.graph.input[0], m.graph.output[0]):
    v.type.tensor_type.shape.dim[0].dim_param = 'tokens'
onnx.save(m, sys.argv[2])";
    let status = std::process::Command::new("python3")
        .args(["-c", dynamic])
        .arg(&exported)
        .arg(dir.path().join("dynamic.onnx"))
        .status()
        .unwrap();
    assert!(status.success(), "python3 with onnx");
    let suite = dir.path().join("onnx_models.yaml");
    std::fs::write(&suite, SUITE).unwrap();
    (dir, suite)
}

/// The suite's golden file, ONNX Runtime's outputs.
fn golden(suite: &Path) {
    precheck()
        .arg("golden")
        .arg(suite)
        .args(["--backend", "command", "--onnx", "--command", &ort_runner()])
        .arg("--out")
        .arg(suite.with_file_name("golden.safetensors"))
        .assert()
        .success();
}

fn run(suite: &Path, out: &str, args: &[&str]) -> (Option<i32>, Vec<VariantRecord>) {
    let out = suite.with_file_name(out);
    let status = precheck()
        .arg("run")
        .arg(suite)
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap()
        .status;
    (
        status.code(),
        read_records(&out.join(RESULTS_FILE)).unwrap().0,
    )
}

#[test]
fn onnx_models_run_on_onnx_engines_against_a_golden_reference() {
    let (_dir, suite) = models();
    golden(&suite);

    let (code, records) = run(
        &suite,
        "ort",
        &["--backend", "command", "--onnx", "--command", &ort_runner()],
    );
    assert_eq!(code, Some(0), "{records:?}");
    assert_eq!(records.len(), 6);
    for record in &records {
        assert_eq!(record.block, "onnx");
        assert!(
            record.cpu_agreement.is_none(),
            "no emulation of an ONNX file"
        );
        // The golden file is ONNX Runtime's own output of the same file (its weights already in
        // BF16): the FP32 variant gives it exactly, the others are their rewrites and do not.
        let error = record.accuracy.as_ref().unwrap().max_abs_err;
        if record.precision == "fp32" {
            assert_eq!(error, 0.0, "{}", record.id);
        } else {
            assert!(error > 0.0, "{}: ran in FP32", record.id);
        }
    }

    let fake = root().join("tests/runners/fake_trtexec.py");
    let cache = suite.with_file_name("engines");
    let log = suite.with_file_name("trtexec.log");
    let out = suite.with_file_name("trt");
    let status = precheck()
        .arg("run")
        .arg(&suite)
        .args(["--backend", "trtexec", "--trtexec"])
        .arg(&fake)
        .arg("--engine-cache")
        .arg(&cache)
        .arg("--out")
        .arg(&out)
        .env("FAKE_TRTEXEC_LOG", &log)
        .output()
        .unwrap()
        .status;
    let (records, _) = read_records(&out.join(RESULTS_FILE)).unwrap();
    assert_eq!(status.code(), Some(0), "{records:?}");
    let log = std::fs::read_to_string(&log).unwrap();
    let builds: Vec<&str> = log.lines().filter(|l| l.contains("--onnx=")).collect();
    assert_eq!(builds.len(), 6, "{log}");
    assert!(builds.iter().any(|b| b.contains("--fp16")));
    assert!(
        builds
            .iter()
            .filter(|b| b.contains("--optShapes=input:6x32"))
            .count()
            == 3,
        "the dynamic model is built for 6 tokens: {log}"
    );
    for record in &records {
        let layers = record.mismatch.as_ref().unwrap().layers.as_ref();
        assert!(
            layers.is_some_and(|l| l.layers_checked == 3),
            "{}",
            record.id
        );
    }
}

#[test]
fn an_onnx_model_is_not_evaluated_by_the_cpu_backend() {
    let (_dir, suite) = models();
    golden(&suite);
    let (code, records) = run(&suite, "cpu", &[]);
    assert_eq!(code, Some(3));
    for record in &records {
        assert_eq!(record.status, Status::Error);
        let error = record.error.as_deref().unwrap();
        assert!(error.contains("does not evaluate ONNX files"), "{error}");
    }
}

#[test]
fn an_onnx_model_needs_a_golden_reference_and_a_model_file() {
    let (dir, suite) = models();
    let without = SUITE.replace(
        "reference: { precision: bf16, file: golden.safetensors }\n",
        "",
    );
    std::fs::write(&suite, without).unwrap();
    precheck()
        .arg("validate")
        .arg(&suite)
        .assert()
        .failure()
        .stderr(
            predicates::str::contains("models[0].onnx").and(predicates::str::contains(
                "the suite's reference must be a golden file",
            )),
        );
    std::fs::write(dir.path().join("mlp.onnx"), b"not protobuf at all").unwrap();
    std::fs::write(&suite, SUITE).unwrap();
    precheck()
        .arg("validate")
        .arg(&suite)
        .assert()
        .failure()
        .stderr(
            predicates::str::contains("models[0].onnx")
                .and(predicates::str::contains("is not an ONNX model")),
        );
}

/// The README's "Your own ONNX model" suite, as written, on a model of that interface (a
/// precheck linear layer exported in FP32, `[128, 64]`): golden, then every precision rewritten
/// and run in ONNX Runtime, each variant gated and agreeing with the reference as its format can.
#[test]
fn the_readme_own_model_suite_runs_as_the_readme_says() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("### Your own ONNX model").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    let source = "name: source\nmodels: [{ name: encoder, block: linear, dims: { hidden: 64 }, input: { tokens: 128 } }]\nprecisions: [fp32]\n";
    export_fp32(
        dir.path(),
        source,
        "encoder",
        &dir.path().join("models/encoder.onnx"),
    );
    let suite = dir.path().join("my_encoder.yaml");
    std::fs::write(&suite, yaml).unwrap();
    golden(&suite);
    let (code, records) = run(
        &suite,
        "run",
        &["--backend", "command", "--onnx", "--command", &ort_runner()],
    );
    assert_eq!(code, Some(0), "{records:?}");
    let precisions: Vec<&str> = records.iter().map(|r| r.precision.as_str()).collect();
    assert_eq!(precisions, ["bf16", "fp32", "fp16", "fp8_e4m3", "int8"]);
    let cos = |precision: &str| {
        let record = records.iter().find(|r| r.precision == precision).unwrap();
        record.accuracy.as_ref().unwrap().cos
    };
    // FP8 is the coarsest of them; every rewrite really ran in its format.
    assert!(cos("fp8_e4m3") < cos("int8") && cos("int8") < cos("fp32"));
    assert!(
        cos("fp32") > 0.999_999_9,
        "FP32 against the reference: {}",
        cos("fp32")
    );
}
