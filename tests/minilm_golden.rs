//! precheck's BERT layer against Hugging Face `transformers`' own, on the real all-MiniLM-L6-v2.
//!
//! `tests/golden/minilm_layers.safetensors` holds the model's embedding of a sentence (38 tokens)
//! and the output of each of its six `BertLayer`s, computed by `transformers` in FP32 with
//! `scripts/gen_minilm_golden.py`. precheck reads the same checkpoint through `suites/minilm.yaml`
//! (weights from `scripts/fetch_minilm.sh`, which CI runs) and must reproduce every layer: FP32 on
//! the CPU backend to cos > 0.999999 and max abs err < 1e-4, and so must its f64 reference.

use std::path::Path;

use precheck::backend::{Backend, CpuBackend};
use precheck::formats::Format;
use precheck::measure::compare;
use precheck::model::forward::{forward, Exact};
use precheck::precision::presets;
use safetensors::SafeTensors;

fn golden() -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read("tests/golden/minilm_layers.safetensors").expect("golden file");
    let tensors = SafeTensors::deserialize(&bytes).expect("golden is safetensors");
    (0..6)
        .map(|layer| {
            let name = format!("layer.{layer}");
            let view = tensors.tensor(&name).expect("golden has every layer");
            assert_eq!(view.shape(), [38, 384]);
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect()
}

fn assert_matches(what: &str, layer: &str, got: &[f64], golden: &[f32]) {
    let accuracy = compare(golden, got).unwrap();
    assert!(
        accuracy.cos > 0.999_999 && accuracy.max_abs_err < 1e-4,
        "{what} {layer}: cos {} max abs err {}",
        accuracy.cos,
        accuracy.max_abs_err
    );
}

#[test]
fn fp32_layers_match_transformers_bert_layers() {
    assert!(
        Path::new("models/all-MiniLM-L6-v2/model.safetensors").exists(),
        "the MiniLM checkpoint is missing: run scripts/fetch_minilm.sh"
    );
    let loaded = precheck::suite::load(Path::new("suites/minilm.yaml")).unwrap();
    let model = &loaded.suite.models[0];
    let weights = model.weights(1, Format::Fp32).unwrap();
    let input = model.input(1, Format::Fp32).unwrap();
    let golden = golden();

    let mut cpu = CpuBackend::new()
        .prepare(model, &weights, &presets::preset("fp32").unwrap())
        .unwrap();
    cpu.run(&input).unwrap();
    let taps = cpu.taps();
    assert_eq!(taps.len(), 6);
    for ((name, tensor), (golden_name, golden)) in taps.iter().zip(&golden) {
        assert_eq!(name, golden_name);
        let values: Vec<f64> = tensor.data.iter().map(|&v| f64::from(v)).collect();
        assert_matches("CPU fp32", name, &values, golden);
    }

    let exact = forward(
        &model.block.graph(),
        &mut Exact {
            weights: &weights.map(f64::from),
        },
        &input.map(f64::from),
    );
    for ((name, tensor), (_, golden)) in exact.taps.iter().zip(&golden) {
        assert_matches("f64 reference", name, &tensor.data, golden);
    }
}
