//! The trtexec files (TensorRT 10), parsed from hand-written fixtures (`tests/fixtures/trtexec/`,
//! whose README says where each format is documented), engine layer reports as precision-mismatch
//! evidence, and the build flags of each policy.

use std::path::{Path, PathBuf};

use precheck::mismatch::layers::evidence;
use precheck::mismatch::Direction;
use precheck::precision::{presets, Policy, PrecisionSpec};
use precheck::trtexec::flags::{flags, ClassLayers, FlagsError, Typing};
use precheck::trtexec::layers::{EngineLayer, LayerMath, LayerReport};
use precheck::trtexec::{layers, output, profile, times, TrtexecError};

fn fixture(name: &str) -> PathBuf {
    Path::new("tests/fixtures/trtexec").join(name)
}

fn detailed(name: &str) -> Vec<EngineLayer> {
    let report = layers::read(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
    report.detailed().unwrap().to_vec()
}

/// A policy from a suite's `precisions` mapping.
fn policy(yaml: &str) -> Policy {
    match serde_yaml::from_str::<PrecisionSpec>(yaml).unwrap() {
        PrecisionSpec::Custom(spec) => spec.resolve().unwrap(),
        PrecisionSpec::Preset(policy) => policy,
    }
}

fn preset(name: &str) -> Policy {
    presets::preset(name).unwrap()
}

#[test]
fn times_are_read_as_per_iteration_compute_latencies() {
    let trace = times::read(&fixture("times.json")).unwrap();
    assert_eq!(trace.compute_ms(), [0.465248, 0.46192, 0.468, 0.463]);
    let first = &trace.iterations[0];
    assert_eq!((first.start_enq_ms, first.latency_ms), (412.731, 0.49392));
    assert_eq!((first.h2d_ms, first.d2h_ms), (0.016384, 0.012288));
    let stats = trace.compute_stats().unwrap();
    assert!(
        (stats.median_ms - 0.464124).abs() < 1e-9,
        "{}",
        stats.median_ms
    );
    assert_eq!(stats.samples_ms.len(), 4);
}

#[test]
fn a_profile_is_read_as_per_layer_timings() {
    let profile = profile::read(&fixture("profile.json")).unwrap();
    assert_eq!(profile.count, 4);
    assert_eq!(profile.layers.len(), 4);
    let up = profile.layer("/mlp/up_proj/MatMul").unwrap();
    assert_eq!(
        (up.time_ms, up.average_ms, up.median_ms, up.percentage),
        (0.8192, 0.2048, 0.20352, 43.956)
    );
    let total: f64 = profile.layers.iter().map(|l| l.percentage).sum();
    assert!((total - 100.0).abs() < 1e-3, "{total}");
    assert!(profile.layer("missing").is_none());
}

#[test]
fn outputs_are_read_as_named_tensors_with_shapes_and_non_finite_values() {
    let tensors = output::read(&fixture("output.json")).unwrap();
    assert_eq!(tensors.len(), 2);
    let logits = &tensors[0];
    assert_eq!(
        (logits.name.as_str(), logits.shape.as_slice()),
        ("logits", &[2, 3][..])
    );
    assert_eq!(&logits.values[..2], [0.5, -1.25]);
    assert_eq!(logits.values[2], f32::INFINITY);
    assert!(logits.values[5].is_nan());
    let ids = &tensors[1];
    assert_eq!(
        (ids.shape.as_slice(), ids.values.as_slice()),
        (&[4][..], &[1.0, 0.0, 7.0, 2.0][..])
    );
}

#[test]
fn a_names_only_report_says_it_holds_no_precision_evidence() {
    let report = layers::read(&fixture("layer_names_only.layers.json")).unwrap();
    assert!(matches!(report, LayerReport::NamesOnly(_)));
    assert_eq!(report.names()[1], "/mlp/up_proj/MatMul");
    let why = report.detailed().unwrap_err().to_string();
    assert!(
        why.contains("4 layers") && why.contains("--profilingVerbosity=detailed"),
        "{why}"
    );
}

#[test]
fn a_detailed_report_keeps_types_tensors_tactics_and_metadata() {
    let layers = detailed("fp8_engine_with_fp32_layers.layers.json");
    assert_eq!(layers.len(), 11);
    let up = &layers[2];
    assert_eq!(
        (up.name.as_str(), up.layer_type.as_str()),
        ("/mlp/up_proj/MatMul_myl0_1", "gemm")
    );
    assert_eq!(up.inputs[1].name, "mlp.up_proj.weight");
    assert_eq!(up.inputs[1].format, "FP8");
    assert_eq!(
        up.metadata.as_deref(),
        Some("[ONNX Layer: /mlp/up_proj/MatMul]")
    );
    assert_eq!(up.tactic, None);
    let reformat = &layers[0];
    assert_eq!(reformat.parameter_type.as_deref(), Some("Reformat"));
    assert_eq!(reformat.metadata, None, "an empty Metadata is none");
    let gelu = &layers[3];
    assert!(gelu.metadata.as_deref().unwrap().contains('\u{1e}'));
    let down = &layers[5];
    assert!(down
        .tactic
        .as_deref()
        .unwrap()
        .starts_with("sm90_xmma_gemm_f32f32"));
    assert_eq!(
        down.math(),
        LayerMath::Ran(precheck::precision::kernels::MathPrecision::Fp32)
    );
}

#[test]
fn an_fp8_engine_with_fp32_and_fp16_layers_is_flagged_above_with_their_names() {
    let layers = detailed("fp8_engine_with_fp32_layers.layers.json");
    let found = evidence(&layers, &preset("fp8_e4m3"));
    assert_eq!(
        found.above,
        [
            "/mlp/down_proj/MatMul_myl0_4",
            "/residual/Add",
            "/lm_head/MatMul"
        ]
    );
    assert!(found.below.is_empty(), "{:?}", found.below);
    // The FP8 up projection, the BF16 activation and LayerNorm match; the reformat, the
    // quantize, the constant and the shuffle have no math; one layer is unclassified.
    assert_eq!(found.layers_checked, 6);
    assert_eq!(found.direction(), Some(Direction::Higher));
}

#[test]
fn unknown_datatype_strings_come_out_unclassified() {
    let layers = detailed("fp8_engine_with_fp32_layers.layers.json");
    let mul = layers
        .iter()
        .find(|l| l.name == "__myl_Mul_myl0_3")
        .unwrap();
    assert_eq!(mul.inputs[0].format, "Unknown format");
    assert_eq!(mul.inputs[0].precision, None);
    assert_eq!(mul.math(), LayerMath::Unclassified);
    let found = evidence(&layers, &preset("fp8_e4m3"));
    assert_eq!(found.unclassified, ["__myl_Mul_myl0_3"]);
}

#[test]
fn a_softmax_the_policy_keeps_in_fp32_is_not_a_fallback() {
    let layers = detailed("fp16_fp32_softmax_obeyed.layers.json");
    let kept = policy("{ name: fp16_fp32_softmax, base: fp16, softmax: fp32 }");
    let found = evidence(&layers, &kept);
    assert!(
        found.above.is_empty() && found.below.is_empty(),
        "{found:?}"
    );
    assert!(found.unclassified.is_empty());
    assert_eq!(found.layers_checked, 5);
    assert_eq!(found.direction(), None);
    // The same engine against plain FP16: the FP32 softmax is above what was asked.
    let plain = evidence(&layers, &preset("fp16"));
    assert_eq!(plain.above, ["__myl_MaxSubExpSumDiv_myl0_1"]);
}

#[test]
fn a_norm_the_policy_keeps_in_fp32_that_ran_fp16_is_flagged_below() {
    let layers = detailed("fp32_layernorm_ran_fp16.layers.json");
    let kept = policy("{ name: fp16_fp32_norm, base: fp16, norm: fp32 }");
    let found = evidence(&layers, &kept);
    assert_eq!(
        found.below,
        [
            "__myl_ReduMeanSubMulReduMeanAddSqrtDivMulAdd_myl0_0",
            "__myl_CastPowReduMeanAddSqrtDivMulCast_myl0_3"
        ]
    );
    assert!(found.above.is_empty(), "{:?}", found.above);
    assert_eq!(found.direction(), Some(Direction::Lower));
    let plain = evidence(&layers, &preset("fp16"));
    assert!(
        plain.above.is_empty() && plain.below.is_empty(),
        "{plain:?}"
    );
}

#[test]
fn malformed_json_names_the_file_line_and_column() {
    let path = fixture("fp8_engine_with_fp32_layers.layers.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let truncated = &text[..text.find("\"LayerType\": \"gemm\"").unwrap() + 14];
    let error = layers::parse(&path, truncated).unwrap_err();
    match &error {
        TrtexecError::Json { line, column, .. } => assert_eq!((*line, *column), (43, 16)),
        other => panic!("{other}"),
    }
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "{}:43:16: not a trtexec --exportLayerInfo file",
            path.display()
        )),
        "{message}"
    );
    let missing = "{\"Layers\": [{\"Name\": \"a\",\n \"LayerType\": \"gemm\", \"Inputs\": [{\"Name\": \"x\"}]}]}";
    let message = layers::parse(Path::new("l.json"), missing)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("missing field `Format/Datatype`")
            && message.contains("Layers[0].Inputs[0]"),
        "{message}"
    );
}

#[test]
fn a_missing_file_names_its_path() {
    let error = times::read(Path::new("no/such/times.json")).unwrap_err();
    assert!(matches!(error, TrtexecError::Io { .. }));
    assert!(
        error
            .to_string()
            .starts_with("cannot read no/such/times.json"),
        "{error}"
    );
}

#[test]
fn each_preset_has_its_build_flags() {
    let expected: &[(&str, Result<&[&str], ()>)] = &[
        ("fp32", Ok(&["--noTF32"])),
        ("tf32", Ok(&[])),
        ("bf16", Ok(&["--bf16"])),
        ("fp16", Ok(&["--fp16"])),
        ("fp8_e4m3", Ok(&["--bf16", "--fp8"])),
        ("fp8_e5m2", Err(())),
        ("int8", Ok(&["--bf16", "--int8"])),
        ("int4_w", Ok(&["--bf16", "--int4"])),
        ("nf4_w", Err(())),
        ("mxfp6", Err(())),
        ("nvfp4", Err(())),
    ];
    for (name, want) in expected {
        let got = flags(&preset(name), Typing::Weak, &ClassLayers::default());
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, *want, "{name}"),
            (Err(FlagsError::Format { .. }), Err(())) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn strongly_typed_builds_take_types_from_the_network() {
    let none = ClassLayers::default();
    let strong = |name: &str| flags(&preset(name), Typing::Strong, &none);
    assert_eq!(strong("fp8_e4m3").unwrap(), ["--stronglyTyped"]);
    assert_eq!(strong("fp32").unwrap(), ["--stronglyTyped", "--noTF32"]);
    assert_eq!(strong("nvfp4").unwrap(), ["--stronglyTyped"]);
    let fp6 = strong("mxfp6").unwrap_err().to_string();
    assert!(fp6.contains("FP6"), "{fp6}");
}

#[test]
fn softmax_and_norm_kept_above_the_default_are_pinned_by_precision_constraints() {
    let layers = ClassLayers {
        softmax: vec!["/attn/Softmax".into()],
        norm: vec!["*/LayerNormalization".into()],
        activation: vec!["/mlp/act/Gelu".into()],
    };
    let softmax = policy("{ name: p, base: fp16, softmax: fp32 }");
    assert_eq!(
        flags(&softmax, Typing::Weak, &layers).unwrap(),
        [
            "--fp16",
            "--precisionConstraints=obey",
            "--layerPrecisions=/attn/Softmax:fp32"
        ]
    );
    let both = policy("{ name: p, base: bf16, softmax: fp32, norm: fp32 }");
    assert_eq!(
        flags(&both, Typing::Weak, &layers).unwrap().last().unwrap(),
        "--layerPrecisions=/attn/Softmax:fp32,*/LayerNormalization:fp32"
    );
    // Below the default too: an FP32 policy with an FP16 softmax enables FP16 for it.
    let lower = policy("{ name: p, base: fp32, softmax: fp16 }");
    assert_eq!(
        flags(&lower, Typing::Weak, &layers).unwrap(),
        [
            "--fp16",
            "--noTF32",
            "--precisionConstraints=obey",
            "--layerPrecisions=/attn/Softmax:fp16"
        ]
    );
    // A strongly typed network carries the casts itself: no constraints.
    assert_eq!(
        flags(&softmax, Typing::Strong, &layers).unwrap(),
        ["--stronglyTyped"]
    );
    let comma = ClassLayers {
        softmax: vec!["a,b".into()],
        ..ClassLayers::default()
    };
    assert!(matches!(
        flags(&softmax, Typing::Weak, &comma),
        Err(FlagsError::LayerName { .. })
    ));
}
