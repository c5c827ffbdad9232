//! A user's ONNX model (`block: onnx`) through the precision matrix: any interface (a conv net
//! with an image and token ids, two outputs, dynamic dimensions, opset 11), the reference and
//! the CPU emulation in ONNX Runtime in process, the same rewrites handed to a command engine
//! (`ort_runner.py`) and to trtexec (its stand-in), localization along the graph, and inputs
//! that cannot be read. Needs python3 with onnxruntime, numpy and safetensors (the test
//! environment's), and ONNX Runtime's library from the `onnxruntime` package.

mod common;

use common::precheck;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use precheck::array::ArrayData;
use precheck::backend::ort::OrtModel;
use precheck::export;
use precheck::formats::Format;
use precheck::model::onnx::{self, Localize, OnnxInputSpec, OnnxModel};
use precheck::precision::presets;
use precheck::results::{read_records, Status, VariantRecord, RESULTS_FILE};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture: `scripts/gen_onnx_model_fixtures.py`.
fn two_inputs() -> PathBuf {
    root().join("tests/fixtures/onnx/two_inputs.onnx")
}

fn suite(extra: &str) -> String {
    format!(
        "
name: user_model
defaults: {{ seed: 5, warmup: 1, iterations: 3 }}
models:
  - name: net
    block: onnx
    onnx: {}
    inputs:
      image: {{ shape: [2, 3, 16, 16], uniform: [0, 1] }}
      ids: {{ shape: [2, 5], integers: [0, 15] }}
{extra}
precisions:
  - fp32
  - bf16
  - fp16
  - fp8_e4m3
  - int8
  - {{ name: int8_static, default: bf16, matmul: {{ weights: int8/per_channel, activations: int8/static:4, output: bf16 }} }}
gates: {{ cos_min: 0.99 }}
",
        two_inputs().display()
    )
}

fn ort_runner() -> String {
    format!(
        "python3 {}",
        root().join("examples/runners/ort_runner.py").display()
    )
}

fn run(dir: &Path, suite: &str, args: &[&str]) -> (Option<i32>, Vec<VariantRecord>) {
    let file = dir.join("suite.yaml");
    std::fs::write(&file, suite).unwrap();
    let out = dir.join(format!("out-{}", args.join("-").replace(['/', ' '], "_")));
    let output = precheck()
        .arg("run")
        .arg(&file)
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let records = read_records(&out.join(RESULTS_FILE))
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)))
        .0;
    (output.status.code(), records)
}

fn record<'a>(records: &'a [VariantRecord], precision: &str) -> &'a VariantRecord {
    records.iter().find(|r| r.precision == precision).unwrap()
}

#[test]
fn a_conv_net_with_an_image_and_token_ids_runs_through_the_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let (code, records) = run(dir.path(), &suite(""), &["--backend", "cpu"]);
    assert_eq!(code, Some(0), "{records:?}");
    assert_eq!(records.len(), 6);
    let cos = |precision: &str| record(&records, precision).accuracy.as_ref().unwrap().cos;
    // The reference is the FP32 rewrite of the model with its weights in BF16: the FP32
    // variant is it, exactly; every other format loses something, FP8 the most.
    let fp32 = record(&records, "fp32").accuracy.as_ref().unwrap();
    assert_eq!(fp32.max_abs_err, 0.0);
    for precision in ["bf16", "fp16", "fp8_e4m3", "int8", "int8_static"] {
        assert!(cos(precision) < 1.0, "{precision} ran in FP32");
    }
    assert!(cos("fp8_e4m3") < cos("int8") && cos("int8") < cos("fp16"));
    for record in &records {
        assert_eq!(record.status, Status::Passed, "{}", record.id);
        // Along the graph: the conv (the matmul-class node that is not an output), then
        // each output.
        let names: Vec<&str> = record.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["conv (Conv)", "output features", "output probs"],
            "{}",
            record.id
        );
        let quantized = matches!(
            record.precision.as_str(),
            "fp8_e4m3" | "int8" | "int8_static"
        );
        assert_eq!(record.emulated, quantized, "{}", record.id);
    }
    let explained = precheck()
        .arg("explain")
        .arg(dir.path().join("out---backend-cpu"))
        .arg("net/fp8_e4m3/cpu")
        .output()
        .unwrap();
    let text = String::from_utf8(explained.stdout).unwrap();
    assert!(text.contains("Along the graph, in graph order"), "{text}");
    assert!(text.contains("none below cos_min 0.99"), "{text}");
    assert!(text.contains("conv (Conv)"), "{text}");
}

#[test]
fn a_command_engine_gets_the_same_rewrites_and_agrees_with_the_emulation() {
    let dir = tempfile::tempdir().unwrap();
    let runner = ort_runner();
    let (code, records) = run(
        dir.path(),
        &suite(""),
        &["--backend", "command", "--command", &runner],
    );
    assert_eq!(code, Some(0), "{records:?}");
    for record in &records {
        let agreement = record.cpu_agreement.as_ref().unwrap().cos;
        assert!(agreement > 0.999_999, "{}: {agreement}", record.id);
        assert!(
            record.layers.iter().any(|l| l.name == "conv (Conv)"),
            "{}: the marked conv came back",
            record.id
        );
    }
}

#[test]
fn trtexec_builds_qdq_rewrites_strongly_typed_and_casts_with_builder_flags() {
    let dir = tempfile::tempdir().unwrap();
    let fake = root().join("tests/runners/fake_trtexec.py");
    let log = dir.path().join("trtexec.log");
    let file = dir.path().join("suite.yaml");
    std::fs::write(&file, suite("")).unwrap();
    let out = dir.path().join("trt");
    let status = precheck()
        .arg("run")
        .arg(&file)
        .args(["--backend", "trtexec", "--trtexec"])
        .arg(&fake)
        .arg("--engine-cache")
        .arg(dir.path().join("engines"))
        .arg("--out")
        .arg(&out)
        .env("FAKE_TRTEXEC_LOG", &log)
        .output()
        .unwrap()
        .status;
    let (records, _) = read_records(&out.join(RESULTS_FILE)).unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    let builds: Vec<&str> = log.lines().filter(|l| l.contains("--onnx=")).collect();
    assert_eq!(builds.len(), 6, "{log}");
    let shapes = "--optShapes=image:2x3x16x16,ids:2x5";
    assert!(builds.iter().all(|b| b.contains(shapes)), "{log}");
    let strong: Vec<&&str> = builds
        .iter()
        .filter(|b| b.contains("--stronglyTyped"))
        .collect();
    assert_eq!(strong.len(), 3, "the FP8 and INT8 rewrites: {log}");
    assert!(strong
        .iter()
        .all(|b| !b.contains("--fp16") && !b.contains("--bf16")));
    assert!(builds
        .iter()
        .any(|b| b.contains("--fp16") && !b.contains("--stronglyTyped")));
    let fp8 = record(&records, "fp8_e4m3");
    assert_eq!(fp8.status, Status::Passed, "{fp8:?}");
    let layers = fp8.mismatch.as_ref().unwrap().layers.as_ref().unwrap();
    assert_eq!(layers.layers_checked, 2, "the conv and the matmul");
    // Static INT8 scales are Q/DQ nodes with constant scales, as TensorRT's engines take them:
    // both products run in INT8. (The verdict may still be `suspect`: the stand-in's timings
    // are ONNX Runtime's on a loaded CPU, and speed sanity reads them.)
    let static_int8 = record(&records, "int8_static");
    assert_eq!(static_int8.status, Status::Passed, "{static_int8:?}");
    let evidence = static_int8.mismatch.as_ref().unwrap();
    let layers = evidence.layers.as_ref().unwrap();
    assert_eq!(layers.layers_checked, 2);
    assert!(
        layers.above.is_empty() && layers.below.is_empty(),
        "{layers:?}"
    );
    assert!(!evidence.verdict.summary().starts_with("detected"));
    // INT8 with per-token activations is written out in float arithmetic, not Q/DQ: a
    // strongly typed engine runs its products in FP32, and the layer report says so.
    let int8 = record(&records, "int8");
    assert_eq!(int8.status, Status::Failed, "{int8:?}");
    let verdict = int8.mismatch.as_ref().unwrap().verdict.summary();
    assert_eq!(verdict, "detected (higher)");
    assert_eq!(status.code(), Some(1));
}

/// The opset upgrade keeps the model's meaning: opset 11's Softmax (flattening at axis 1) and
/// ReduceMean (axes as an attribute) rewritten for opset 21 compute what the original computes,
/// both run by ONNX Runtime.
#[test]
fn the_opset_upgrade_keeps_the_models_meaning() {
    let file = onnx::read(&two_inputs()).unwrap();
    assert_eq!(file.opset, 11);
    let specs: BTreeMap<String, OnnxInputSpec> = serde_yaml::from_str(
        "{ image: { shape: [3, 3, 9, 7] }, ids: { shape: [3, 5], integers: [0, 15] } }",
    )
    .unwrap();
    let model = OnnxModel::new(file, &specs, None, Localize::Off, Format::Fp32, root()).unwrap();
    let inputs = model.make_inputs(1, "net", Format::Fp32).unwrap();
    let fp32 = presets::preset("fp32").unwrap();
    let none = export::Calibration::default();
    let upgraded =
        export::user_model(&model, &fp32, export::Precision::InGraph, &none, &[]).unwrap();
    let original = std::fs::read(two_inputs()).unwrap();
    let run = |bytes: &[u8]| OrtModel::new(bytes).unwrap().run(&inputs).unwrap();
    let (before, after) = (run(&original), run(&upgraded));
    assert_eq!(before.len(), 2);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.name, &b.shape), (&a.name, &a.shape));
        let (ArrayData::F32(b), ArrayData::F32(a)) = (&b.data, &a.data) else {
            panic!("float outputs")
        };
        let worst = b
            .iter()
            .zip(a)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-6, "{worst}");
    }
}

#[test]
fn an_input_file_of_the_wrong_shape_is_an_error_naming_file_and_input() {
    let dir = tempfile::tempdir().unwrap();
    // int64 ids of shape [2, 4] in a .npy file, where the model takes [2, 5].
    let npy = dir.path().join("ids.npy");
    let script =
        "import numpy, sys; numpy.save(sys.argv[1], numpy.zeros((2, 4), dtype=numpy.int64))";
    let made = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&npy)
        .status()
        .unwrap();
    assert!(made.success());
    let text = suite("").replace(
        "ids: { shape: [2, 5], integers: [0, 15] }",
        &format!("ids: {{ shape: [2, 5], file: {} }}", npy.display()),
    );
    let (code, records) = run(dir.path(), &text, &["--backend", "cpu"]);
    assert_eq!(code, Some(3));
    for record in &records {
        let error = record.error.as_deref().unwrap();
        assert!(
            error.contains("ids.npy") && error.contains("input ids") && error.contains("[2, 4]"),
            "{error}"
        );
    }
}

/// PP-OCRv4 as rapidocr-onnxruntime ships it (`suites/ppocr.yaml`, models fetched by the test
/// environment): three models nobody here wrote, opsets 11 and 12, weights in `Constant` nodes,
/// pass their gates in every precision of the suite (static INT8 and FP8 calibrated), and every
/// variant is compared along its graph: each conv, in graph order, then the outputs.
#[test]
fn the_ppocr_suite_passes_and_localizes_every_variant() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ppocr");
    let output = precheck()
        .arg("run")
        .arg(root().join("suites/ppocr.yaml"))
        .args(["--backend", "cpu", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let (records, _) = read_records(&out.join(RESULTS_FILE)).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(records.len(), 18);
    // Matmul-class nodes that are not outputs: det 64 convs, rec 38 convs and 13 matmuls, cls
    // 53 convs and one matmul.
    let marked = |model: &str| match model {
        "det" => 64,
        "rec" => 51,
        _ => 54,
    };
    for record in &records {
        let nodes = record
            .layers
            .iter()
            .filter(|l| !l.name.starts_with("output "))
            .count();
        assert_eq!(nodes, marked(&record.model), "{}", record.id);
        if record.precision != "fp32" {
            let worst = record
                .layers
                .iter()
                .map(|l| l.accuracy.cos)
                .fold(1.0, f64::min);
            assert!(
                worst < 1.0,
                "{}: nothing rounded along the graph",
                record.id
            );
        }
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("p2o.Conv.0 (Conv)"),
        "the depth chart names the nodes"
    );
}

/// The README's "Your own ONNX model" suite, as written, with the fixture as its model.
#[test]
fn the_readme_own_model_suite_runs_as_the_readme_says() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## Your own ONNX model").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::copy(two_inputs(), dir.path().join("models/net.onnx")).unwrap();
    let (code, records) = run(dir.path(), yaml, &["--backend", "cpu"]);
    assert_eq!(code, Some(0), "{records:?}");
    assert_eq!(records.len(), 5);
}

/// MiniLM's six real BERT layers exported by precheck (FP32) run as a user's ONNX model: ONNX
/// Runtime's output agrees with precheck's own stack evaluated exactly (cos > 0.999999), and the
/// file goes through a suite like any model, every matmul of the six layers compared.
#[test]
fn minilm_exported_by_precheck_runs_as_an_onnx_model_and_agrees_with_the_stack() {
    let loaded = precheck::suite::load(&root().join("suites/minilm.yaml")).unwrap();
    let model = &loaded.suite.models[0];
    let weights = model.weights(1, Format::Fp32).unwrap();
    let input = model.input(1, Format::Fp32).unwrap();
    let fp32 = presets::preset("fp32").unwrap();
    let exported = export::onnx(model, &weights, &fp32, export::Precision::InGraph).unwrap();
    let array = precheck::array::Array::new(
        "input",
        vec![input.rows, input.cols],
        ArrayData::F32(input.data.clone()),
    )
    .unwrap();
    let outputs = OrtModel::new(&exported.model)
        .unwrap()
        .run(&[array])
        .unwrap();
    let exact = precheck::runner::exact_reference(model, &weights, &input).unwrap();
    let agreement =
        precheck::measure::compare(&outputs[0].data.to_f32(), &exact.output.data).unwrap();
    eprintln!("ONNX Runtime FP32 against the exact stack: {agreement:?}");
    assert!(agreement.cos > 0.999_999, "{agreement:?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("minilm.onnx");
    std::fs::write(&file, &exported.model).unwrap();
    let suite = format!(
        "
name: minilm_onnx
reference: {{ precision: fp32 }}
defaults: {{ warmup: 0, iterations: 1 }}
models:
  - name: minilm
    block: onnx
    onnx: {}
    inputs:
      input: {{ file: {}, tensor: input }}
precisions: [fp32, bf16]
gates: {{ cos_min: 0.99 }}
",
        file.display(),
        root()
            .join("tests/golden/minilm_layers.safetensors")
            .display()
    );
    let (code, records) = run(dir.path(), &suite, &["--backend", "cpu"]);
    assert_eq!(code, Some(0), "{records:?}");
    for record in &records {
        let matmuls = record
            .layers
            .iter()
            .filter(|l| !l.name.starts_with("output "))
            .count();
        // Q, K, V, attention output, two MLP projections per layer; the last is the output's.
        assert!(matmuls >= 6 * 6 - 1, "{}: {matmuls}", record.id);
    }
    let fp32 = record(&records, "fp32").accuracy.as_ref().unwrap();
    assert_eq!(fp32.max_abs_err, 0.0);
}

/// A model whose weights live in an external-data file (as exporters write models over 2 GB)
/// runs as the same model inline: its data is read in, so every rewrite stands alone.
#[test]
fn a_model_with_external_data_runs_as_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let external = dir.path().join("external.onnx");
    let script = "import onnx, sys
m = onnx.load(sys.argv[1])
onnx.save_model(m, sys.argv[2], save_as_external_data=True, all_tensors_to_one_file=True,
                location='weights.bin', size_threshold=0)";
    let saved = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(two_inputs())
        .arg(&external)
        .status()
        .unwrap();
    assert!(saved.success(), "python3 with onnx");
    assert!(dir.path().join("weights.bin").is_file());
    let inline = suite("");
    let text = inline.replace(
        &two_inputs().display().to_string(),
        &external.display().to_string(),
    );
    let (code, records) = run(dir.path(), &text, &["--backend", "cpu"]);
    assert_eq!(code, Some(0), "{records:?}");
    let (_, same) = run(dir.path(), &inline, &["--backend", "cpu", "--seed", "5"]);
    for record in &records {
        let twin = same
            .iter()
            .find(|r| r.precision == record.precision)
            .unwrap();
        assert_eq!(record.accuracy, twin.accuracy, "{}", record.id);
    }
}

/// A golden file freezes a user's model's reference (its outputs and the values along the
/// graph, made here by the command engine), and a run reads it instead of evaluating one: the
/// same numbers as a run that evaluates it; a run on other inputs is refused.
#[test]
fn a_golden_file_freezes_an_onnx_models_reference() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suite.yaml");
    std::fs::write(&file, suite("")).unwrap();
    let golden = dir.path().join("golden.safetensors");
    let runner = ort_runner();
    precheck()
        .arg("golden")
        .arg(&file)
        .args(["--backend", "command", "--command", &runner, "--out"])
        .arg(&golden)
        .assert()
        .success();
    let frozen = suite("").replace(
        "name: user_model\n",
        "name: user_model\nreference: { precision: bf16, file: golden.safetensors }\n",
    );
    let (code, records) = run(dir.path(), &frozen, &["--backend", "cpu"]);
    assert_eq!(code, Some(0), "{records:?}");
    let (_, evaluated) = run(dir.path(), &suite(""), &["--backend", "cpu", "--seed", "5"]);
    for record in &records {
        let twin = evaluated
            .iter()
            .find(|r| r.precision == record.precision)
            .unwrap();
        let (a, b) = (record.accuracy.unwrap(), twin.accuracy.unwrap());
        assert!((a.cos - b.cos).abs() < 1e-9, "{}: {a:?} {b:?}", record.id);
        assert_eq!(record.layers.len(), twin.layers.len(), "{}", record.id);
    }
    let (code, records) = run(dir.path(), &frozen, &["--backend", "cpu", "--seed", "6"]);
    assert_eq!(code, Some(3));
    let error = records[0].error.as_deref().unwrap();
    assert!(error.contains("made for another input"), "{error}");
}

/// `calibrate: { percentile: P }` makes static scales from that percentile of each activation's
/// magnitudes: a low one saturates much of every activation, and the static variant's accuracy
/// says so; the other variants do not change.
#[test]
fn a_calibration_percentile_changes_the_static_scales_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, amax) = run(dir.path(), &suite(""), &["--backend", "cpu"]);
    let clipped = suite("    calibrate: { percentile: 50 }");
    let (code, percentile) = run(dir.path(), &clipped, &["--backend", "cpu", "--seed", "5"]);
    assert!(code.is_some(), "{percentile:?}");
    for record in &percentile {
        let before = record_cos(&amax, &record.precision);
        let after = record.accuracy.as_ref().unwrap().cos;
        if record.precision == "int8_static" {
            assert!(after < before - 1e-3, "{before} -> {after}");
        } else {
            assert_eq!(after, before, "{}", record.id);
        }
    }
}

fn record_cos(records: &[VariantRecord], precision: &str) -> f64 {
    record(records, precision).accuracy.as_ref().unwrap().cos
}

/// Found by fuzzing (`fuzz/corpus/onnx_model/regress-*`): a node without an output, and an
/// initializer whose data is shorter than its shape, panicked in the rewrite; each is refused
/// naming what is wrong.
#[test]
fn a_model_that_breaks_the_formats_rules_is_refused_naming_the_node_or_tensor() {
    use precheck::onnx_proto::ModelProto;
    use prost::Message;
    let original = ModelProto::decode(std::fs::read(two_inputs()).unwrap().as_slice()).unwrap();
    let mut no_output = original.clone();
    no_output.graph.as_mut().unwrap().node[0].output.clear();
    let mut short = original;
    let weight = &mut short.graph.as_mut().unwrap().initializer[0];
    let kept = weight.raw_data.len() - 6;
    weight.raw_data.truncate(kept);
    let cases = [
        (no_output, "node #0 `conv` (Conv) has no output"),
        (
            short,
            "malformed model: the initializer `conv.weight` of shape [8, 3, 3, 3] holds 858 bytes of data",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let int8 = presets::preset("int8").unwrap();
    for (index, (model, expected)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("{index}.onnx"));
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let model = OnnxModel {
            file: onnx::read(&path).unwrap(),
            inputs: Vec::new(),
            gated: Vec::new(),
            localize: Localize::All,
            held: Format::Bf16,
            percentile: None,
        };
        let error = export::localized_values(&model)
            .and_then(|marks| {
                let marks: Vec<String> = marks.into_iter().map(|m| m.value).collect();
                let none = export::Calibration::default();
                export::user_model(&model, &int8, export::Precision::InGraph, &none, &marks)
            })
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
}
