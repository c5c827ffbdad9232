//! The transformer blocks: their numerics against the exact reference, the causal mask, the
//! softmax precision, and a stack's per-layer accuracy through a run and its reports.

mod common;

use common::precheck;

use precheck::backend::{Backend, CpuBackend};
use precheck::formats::Format;
use precheck::ident::Ident;
use precheck::measure::compare;
use precheck::model::forward::{forward, Exact};
use precheck::model::graph::AttentionShape;
use precheck::model::{seeded, AttentionBlock, Block, LayerKind, LayerSpec, Model};
use precheck::model::{Activation, OutlierSpec, WeightsSpec};
use precheck::precision::{presets, Policy};
use precheck::tensor::Tensor;

fn model(block: Block, outliers: Option<OutlierSpec>) -> Model {
    Model {
        name: Ident::try_from("m".to_owned()).unwrap(),
        block,
        tokens: 48,
        outliers,
        input_file: None,
        weights: WeightsSpec::Seeded,
    }
}

fn decoder_layer() -> Block {
    Block::Layer(LayerSpec {
        kind: LayerKind::Decoder,
        hidden: 256,
        intermediate: 512,
        attention: AttentionShape {
            heads: 4,
            kv_heads: 1,
            head_dim: 64,
            causal: true,
        },
        activation: Activation::GeluTanh,
        norm_eps: 1e-6,
        rope_theta: 10_000.0,
    })
}

fn exact(model: &Model, input: &Tensor) -> Tensor<f64> {
    let weights = seeded::weights(model, 1, Format::Bf16).map(f64::from);
    forward(
        &model.block.graph(),
        &mut Exact { weights: &weights },
        &input.map(f64::from),
    )
    .output
}

fn cpu(model: &Model, policy: &Policy, input: &Tensor) -> Tensor {
    let weights = seeded::weights(model, 1, Format::Bf16);
    CpuBackend::new()
        .prepare(model, &weights, policy)
        .unwrap()
        .run(input)
        .unwrap()
}

#[test]
fn a_decoder_layer_in_fp32_is_the_exact_layer_up_to_f32_rounding() {
    let model = model(decoder_layer(), None);
    let input = seeded::input(&model, 1, Format::Bf16, seeded::INPUT);
    let accuracy = compare(
        &cpu(&model, &presets::preset("fp32").unwrap(), &input).data,
        &exact(&model, &input).data,
    )
    .unwrap();
    assert!(accuracy.cos > 0.999_999_9, "{accuracy:?}");
    assert!(accuracy.max_abs_err < 1e-4, "{accuracy:?}");
}

#[test]
fn a_causal_layer_never_reads_later_tokens() {
    let model = model(decoder_layer(), None);
    let input = seeded::input(&model, 1, Format::Bf16, seeded::INPUT);
    let mut changed = input.clone();
    let last_row = (input.rows - 1) * input.cols;
    for v in &mut changed.data[last_row..] {
        *v += 1.0;
    }
    let (before, after) = (exact(&model, &input), exact(&model, &changed));
    assert_eq!(before.data[..last_row], after.data[..last_row]);
    assert_ne!(before.data[last_row..], after.data[last_row..]);
}

#[test]
fn an_fp32_softmax_makes_fp16_attention_more_accurate_on_large_logits() {
    let attention = Block::Attention(AttentionBlock {
        hidden: 256,
        shape: AttentionShape {
            heads: 4,
            kv_heads: 1,
            head_dim: 64,
            causal: false,
        },
        rope_theta: Some(10_000.0),
    });
    let outliers = OutlierSpec {
        fraction: 0.05,
        scale: 30.0,
    };
    let model = model(attention, Some(outliers));
    let input = seeded::input(&model, 1, Format::Bf16, seeded::INPUT);
    let reference = exact(&model, &input);
    let fp16 = presets::preset("fp16").unwrap();
    let fp32_softmax = Policy {
        softmax: Format::Fp32,
        ..fp16.clone()
    };
    let error = |policy: &Policy| {
        1.0 - compare(&cpu(&model, policy, &input).data, &reference.data)
            .unwrap()
            .cos
    };
    let (plain, kept) = (error(&fp16), error(&fp32_softmax));
    assert!(
        kept < plain / 2.0,
        "1 − cos: fp16 {plain:e}, fp32 softmax {kept:e}"
    );
}

#[test]
fn a_stack_run_records_and_reports_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("stack.yaml");
    std::fs::write(
        &suite,
        "
name: depth
defaults: { warmup: 0, iterations: 2 }
models:
  - name: llama_like
    block: stack
    dims: { hidden: 128, intermediate: 256, heads: 4, kv_heads: 2, layers: 3 }
    activation: silu
    input: { tokens: 16 }
precisions: [bf16, fp8_e4m3]
gates: { cos_min: 0.9 }
",
    )
    .unwrap();
    let out = dir.path().join("run");
    precheck()
        .args(["run", suite.to_str().unwrap(), "--out"])
        .arg(&out)
        .assert()
        .code(0);
    let (records, _) =
        precheck::results::read_records(&out.join(precheck::results::RESULTS_FILE)).unwrap();
    for record in &records {
        let names: Vec<&str> = record.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["layer.0", "layer.1", "layer.2"], "{}", record.id);
        // The last layer is the output.
        let last = record.layers[2].accuracy.cos;
        assert_eq!(last, record.accuracy.unwrap().cos, "{}", record.id);
    }
    let fp8 = records.iter().find(|r| r.precision == "fp8_e4m3").unwrap();
    assert!(fp8.layers[0].accuracy.cos < 1.0 && fp8.layers[2].accuracy.cos < 1.0);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Accuracy along depth") && html.contains("1 − cos after each layer"));
    let markdown = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(markdown.contains("### Cosine after each layer"));
    assert!(markdown.contains("| llama\\_like/fp8\\_e4m3/cpu |"));
}
