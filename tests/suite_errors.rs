//! Every way a suite can be wrong, each with the exact message a person sees: file, line and column,
//! key path, what was expected, and a suggestion for a misspelt name.

use std::collections::BTreeSet;
use std::path::Path;

use precheck::suite;

/// `(fixture under tests/bad_suites, message after the file name)`.
const CASES: &[(&str, &str)] = &[
    (
        "attention_kv_heads",
        ":5:46: `models[0].dims.kv_heads`: 3 key/value heads do not divide 8 query heads",
    ),
    (
        "attention_with_gated",
        ":6:12: `models[0].gated`: block `attention` has no `gated` option (blocks that do: `mlp`)",
    ),
    (
        "stack_prefix_without_layer",
        ":10:15: `models[0].weights.prefix`: a stack reads one layer per index: its prefix needs `{layer}` (`encoder.layer.{layer}.`)",
    ),
    (
        "weights_unknown_keyword",
        ":7:14: `models[0].weights`: unknown value `seded`, did you mean `seeded`? (expected one of `seeded`, `safetensors`)",
    ),
    (
        "weights_unknown_key",
        ":7:48: `models[0].weights.prefx`: unknown key `prefx`, did you mean `prefix`? (expected one of `safetensors`, `prefix`, `map`)",
    ),
    (
        "input_tensor_without_file",
        ":6:33: `models[0].input.tensor`: `tensor` names a tensor of the input `file`, and there is none",
    ),
    (
        "layer_unknown_kind",
        ":5:12: `models[0].layer`: unknown value `encodr`, did you mean `encoder`? (expected one of `decoder`, `encoder`)",
    ),
    (
        "bad_timeout",
        ":3:12: `defaults.timeout`: invalid duration `10 minuets`: unknown time unit \"minuets\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (expected e.g. `90s`, `10m`, `1h 30m`)",
    ),
    (
        "bad_cache",
        ":3:10: `defaults.cache`: unknown value `clod`, did you mean `cold`? (expected one of `warm`, `cold`)",
    ),
    (
        "bad_device",
        ":8:13: `gpus[1]`: invalid device `cuda:x`: expected `cuda:` and a number",
    ),
    (
        "bad_name",
        ":1:7: `name`: invalid name `my suite`: expected ASCII letters, digits, `_`, `-` or `.`",
    ),
    (
        "dotdot_name",
        ":1:7: `name`: invalid name `..`: a name becomes a folder and must not point outside it",
    ),
    (
        "cos_min_out_of_range",
        ":9:12: `gates.cos_min`: expected a cosine between -1 and 1, found 1.5",
    ),
    (
        "duplicate_model",
        ":7:11: `models[1].name`: `mlp` is listed twice (first as models[0])",
    ),
    (
        "duplicate_policy_name",
        ":9:7: `precisions[1]`: `fp16` is listed twice (first as precisions[0])",
    ),
    (
        "duplicate_precision",
        ":7:26: `precisions[2]`: `fp16` is listed twice (first as precisions[0])",
    ),
    (
        "empty_precisions",
        ":7:13: `precisions`: expected at least one entry",
    ),
    (
        "exclude_empty_entry",
        ":10:7: `matrix.exclude[0]`: an empty entry would exclude everything: give `model`, `precision` or `gpu`",
    ),
    (
        "exclude_precision_not_on_axis",
        ":10:18: `matrix.exclude[0].precision`: `fp32` is not in `precisions`, so this entry excludes nothing",
    ),
    (
        "exclude_unknown_model",
        ":10:14: `matrix.exclude[0].model`: no model is called `mpl`, did you mean `mlp`? (models: mlp)",
    ),
    (
        "include_gate_negative",
        ":11:28: `matrix.include[0].gates.rel_l2_max`: expected a finite number >= 0, found -1",
    ),
    (
        "include_incomplete_new_combination",
        ":10:7: `matrix.include[0]`: this entry matches no combination, so it adds a new one, which needs `gpu` too",
    ),
    (
        "include_unknown_precision",
        ":10:32: `matrix.include[0].precision`: `fp8_e4m4` is neither in `precisions` nor a preset, did you mean `fp8_e4m3`? (fp32, tf32, bf16, fp16, fp8_e4m3, fp8_e4m3_delayed, fp8_e5m2, int8, int4_w, nf4_w, mxfp8, mxfp6, mxfp4, nvfp4)",
    ),
    (
        "linear_with_activation",
        ":6:17: `models[0].activation`: block `linear` has no `activation` option (blocks that do: `mlp`, `transformer_layer`, `stack`)",
    ),
    (
        "linear_with_intermediate",
        ":5:39: `models[0].dims.intermediate`: `intermediate` is not a dimension of block `linear`, which takes `hidden` and optionally `out_features`",
    ),
    (
        "missing_block",
        ":3:5: `models[0]`: missing field `block`",
    ),
    (
        "mlp_without_intermediate",
        ":9:13: `models[1].dims`: missing `intermediate`: block `mlp` needs `hidden` and `intermediate`",
    ),
    (
        "nan_gate",
        ":9:16: `gates.max_abs_err`: expected a finite number >= 0, found NaN",
    ),
    (
        "negative_dimension",
        ":5:21: `models[0].dims.hidden`: invalid type: integer `-3`, expected a positive integer",
    ),
    (
        "outlier_fraction",
        ":6:47: `models[0].input.outliers.fraction`: expected a fraction in (0, 1], found 1.5",
    ),
    (
        "policy_bad_recipe",
        ":10:16: `precisions[0].matmul.weights`: unknown recipe `per_chanel`, did you mean `per_channel`? (expected one of `cast`, `per_tensor`, `per_channel`, `per_token`, `mx`, `nvfp4`, `groupN`, `delayed`, `delayed:HISTORY[:max|most_recent]`, `static[:N]`)",
    ),
    (
        "policy_recipe_mismatch",
        ":9:24: `precisions[0].matmul.weights`: `bf16` cannot be scaled with `per_tensor`",
    ),
    (
        "policy_scaled_output",
        ":9:13: `precisions[0].output`: `fp8_e4m3` needs a scale; tensors between operations are fp32, tf32, bf16 or fp16",
    ),
    (
        "policy_unknown_base",
        ":8:23: `precisions[0].base`: unknown preset `fp8_e4m4`, did you mean `fp8_e4m3`? (expected one of fp32, tf32, bf16, fp16, fp8_e4m3, fp8_e4m3_delayed, fp8_e5m2, int8, int4_w, nf4_w, mxfp8, mxfp6, mxfp4, nvfp4)",
    ),
    (
        "policy_unknown_key",
        ":11:5: `precisions[1].sotfmax`: unknown key `sotfmax`, did you mean `softmax`? (expected one of `name`, `base`, `default`, `matmul`, `activation`, `softmax`, `norm`, `output`, `planted_fault`)",
    ),
    (
        "reference_scaled_format",
        ":8:25: `reference.precision`: unknown value `fp8_e4m3` (expected one of `fp32`, `bf16`, `fp16`)",
    ),
    (
        "reference_unknown_precision",
        ":9:14: `reference.precision`: unknown value `bf61`, did you mean `bf16`? (expected one of `fp32`, `bf16`, `fp16`)",
    ),
    (
        "onnx_with_dims",
        ":7:21: `models[0].dims.hidden`: `hidden` is not a dimension of block `onnx`, which takes no dimensions",
    ),
    (
        "onnx_without_file",
        ":4:5: `models[0]`: block `onnx` needs `onnx: FILE`, the model file",
    ),
    (
        "onnx_with_input",
        ":6:14: `models[0].input`: block `onnx` has no `input` option (blocks that do: `linear`, `mlp`, `attention`, `transformer_layer`, `stack`)",
    ),
    (
        "onnx_input_unknown",
        ":7:16: `models[0].inputs.imgae`: the model has no input `imgae` (did you mean `image`?); its inputs: `image` float32 [N, 3, H, W], `ids` int64 [N, 5]",
    ),
    (
        "onnx_input_without_shape",
        ":7:16: `models[0].inputs.image.shape`: input `image` is float32 [N, 3, H, W]: give its shape, e.g. `inputs: { image: { shape: [...] } }`",
    ),
    (
        "onnx_input_shape_against_model",
        ":7:23: `models[0].inputs.image.shape`: dimension 1 of input `image` is fixed at 3 by the model [N, 3, H, W], the shape given says 4",
    ),
    (
        "onnx_ids_without_range",
        ":8:14: `models[0].inputs.ids.integers`: input `ids` is int64: give its range, `integers: [low, high]` (token ids: [0, vocabulary - 1]; a mask: [1, 1]), or a `file`",
    ),
    (
        "onnx_output_unknown",
        ":9:14: `models[0].outputs`: the model has no output `prob` (did you mean `probs`?); its outputs: `features` float32 [N, 4], `probs` float32 [N, 4]",
    ),
    (
        "onnx_not_a_model",
        ":5:11: `models[0].onnx`: tests/bad_suites/onnx_not_a_model.yaml is not an ONNX model: failed to decode Protobuf message: invalid wire type value: 6",
    ),
    (
        "onnx_input_two_sources",
        ":7:16: `models[0].inputs.image`: input `image` has normal and uniform sources: give one of `normal`, `uniform`, `integers`, `file`",
    ),
    (
        "onnx_calibrate_percentile",
        ":9:30: `models[0].calibrate.percentile`: expected a percentile in (0, 100], found 150",
    ),
    (
        "timeout_too_long",
        ":2:22: `defaults.timeout`: invalid duration `18446744073709551615s`: longer than the most a variant may take, 7days",
    ),
    (
        "dims_past_counting",
        ":3:36: `models[0].dims`: this model cannot be run: its dimensions multiply past 2^128",
    ),
    (
        "syntax_error",
        ":4:1: `models[0].name`: found a tab character that violates indentation at line 4 column 1, while scanning a plain scalar at line 3 column 11",
    ),
    (
        "unknown_block",
        ":4:12: `models[0].block`: unknown value `mpl`, did you mean `mlp`? (expected one of `linear`, `mlp`, `attention`, `transformer_layer`, `stack`, `onnx`)",
    ),
    (
        "unknown_dimension",
        ":5:25: `models[0].dims.intermediat`: unknown key `intermediat`, did you mean `intermediate`? (expected one of `hidden`, `intermediate`, `out_features`, `heads`, `kv_heads`, `head_dim`, `layers`)",
    ),
    (
        "unknown_key_typo",
        ":10:3: `defaults.iteratons`: unknown key `iteratons`, did you mean `iterations`? (expected one of `seed`, `warmup`, `iterations`, `timeout`, `cache`, `cpu_agreement`)",
    ),
    (
        "unknown_precision",
        ":7:20: `precisions[1]`: unknown value `fp61`, did you mean `fp16`? (expected one of `fp32`, `tf32`, `bf16`, `fp16`, `fp8_e4m3`, `fp8_e4m3_delayed`, `fp8_e5m2`, `int8`, `int4_w`, `nf4_w`, `mxfp8`, `mxfp6`, `mxfp4`, `nvfp4`)",
    ),
    (
        "unknown_top_level_key",
        ":7:1: `precision`: unknown key `precision`, did you mean `precisions`? (expected one of `name`, `description`, `defaults`, `reference`, `models`, `precisions`, `gpus`, `matrix`, `gates`)",
    ),
    (
        "wrong_type",
        r#":5:21: `models[0].dims.hidden`: invalid type: string "big", expected a positive integer"#,
    ),
    (
        "zero_dimension",
        ":6:15: `models[0].dims.hidden`: invalid value: integer `0`, expected a positive integer",
    ),
    (
        "zero_iterations",
        ":9:15: `defaults.iterations`: invalid value: integer `0`, expected a positive integer",
    ),
];

#[test]
fn each_bad_suite_gives_its_message() {
    let mut wrong = Vec::new();
    for (name, expected) in CASES {
        let path = format!("tests/bad_suites/{name}.yaml");
        let message = match suite::load(Path::new(&path)) {
            Ok(_) => "no error".to_owned(),
            Err(error) => error.to_string(),
        };
        if message != format!("{path}{expected}") {
            wrong.push(format!(
                "{name}:\n  expected {path}{expected}\n  got      {message}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_fixture_has_a_case() {
    let fixtures: BTreeSet<String> = std::fs::read_dir("tests/bad_suites")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let cases: BTreeSet<String> = CASES.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(fixtures, cases);
}

#[test]
fn a_missing_file_names_the_file() {
    let error = suite::load(Path::new("tests/bad_suites/absent.yaml")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("tests/bad_suites/absent.yaml: cannot read the suite:"),
        "{error}"
    );
}

/// 200 models × 200 precisions × 500 GPUs in 26 KB of YAML: 20 million variants, which took
/// `validate` past 8 GB before the matrix was counted ahead of its expansion.
#[test]
fn a_matrix_past_the_bound_is_refused_before_it_is_expanded() {
    let mut text = String::from("name: big\nmodels:\n");
    for i in 0..200 {
        text += &format!(
            "  - {{ name: m{i}, block: linear, dims: {{ hidden: 8 }}, input: {{ tokens: 2 }} }}\n"
        );
    }
    text += "precisions:\n";
    for i in 0..200 {
        text += &format!("  - {{ name: p{i}, base: bf16 }}\n");
    }
    let gpus: Vec<String> = (0..500).map(|i| format!("cuda:{i}")).collect();
    text += &format!("gpus: [{}]\n", gpus.join(", "));

    let started = std::time::Instant::now();
    let error = suite::from_str(Path::new("big.yaml"), &text).unwrap_err();
    assert!(
        error.to_string().contains(
            "`matrix`: 200 models × 200 precisions × 500 gpus (+ 0 includes) is more than the 100000 variants one suite may plan"
        ),
        "{error}"
    );
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

/// Found by fuzzing: where serde_yaml reads a multi-line quoted scalar that yaml-rust2 (which
/// locates keys) stops at, the error still names its line and column.
#[test]
fn a_problem_past_where_the_locator_stops_reading_still_has_a_location() {
    let text = "name: bad
models:
  - name: bert
    block: stack
    layer: encoder
    dims: { hidden: 384, intermediate: 1536, heads: 12, layers: 6 }
    input: { tokens: 4 }
    weights:
      safetensors: model.safetensors
      prefix: \"encoder.
  - layer.0.\"
precisions: [fp16]
";
    let error = suite::from_str(Path::new("s.yaml"), text).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("s.yaml:10:7: `models[0].weights.prefix`"),
        "{error}"
    );
}
