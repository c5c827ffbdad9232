//! The CUDA backend on a real GPU, against the CPU backend's emulation of the same policies.
//!
//! Run on the GPU machine: these tests are ignored elsewhere (no GPU here or in CI).
#![cfg(feature = "cuda")]

use precheck::backend::{Backend, CpuBackend, CudaBackend};
use precheck::formats::Format;
use precheck::ident::Ident;
use precheck::measure::compare;
use precheck::model::graph::AttentionShape;
use precheck::model::{seeded, AttentionBlock, Block, MlpShape, Model};
use precheck::model::{Activation, WeightsSpec};
use precheck::precision::presets;

fn model(block: Block, tokens: usize) -> Model {
    Model {
        name: Ident::try_from("m".to_owned()).unwrap(),
        block,
        tokens,
        outliers: None,
        input_file: None,
        weights: WeightsSpec::Seeded,
    }
}

/// Every preset runs on CUDA (natively or emulated) and agrees with its CPU emulation. The quantized operands are
/// bit-identical (the same recipes; the GPU's FP8, INT8, MX and NVFP4 kernels round as the CPU
/// does); what differs is the accumulation order inside the GEMMs (and the softmax's sum), the
/// GPU's `expf` (within 2 ulp of the CPU's), and, for BF16/FP16 tensors, the last bit of a value
/// that lands near a rounding boundary, which in attention can move an FP8 scale or an INT8 row
/// scale downstream. That bounds 1 − cos well below 1e-4; a wrong scale, layout, head or format
/// would put it near 1.
#[test]
#[ignore = "needs a CUDA GPU (sm_89+): run on the device with --run-ignored only"]
fn every_cuda_precision_matches_the_cpu_emulation() {
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    let attention = |hidden, heads, kv_heads, causal, rope_theta| {
        Block::Attention(AttentionBlock {
            hidden,
            shape: AttentionShape {
                heads,
                kv_heads,
                head_dim: 64,
                causal,
            },
            rope_theta,
        })
    };
    let blocks = [
        (
            Block::Linear {
                in_features: 512,
                out_features: 256,
            },
            96,
        ),
        (
            Block::Mlp(MlpShape {
                hidden: 256,
                intermediate: 1024,
                activation: Activation::GeluTanh,
                gated: true,
            }),
            96,
        ),
        // GQA with rotary embedding (the seed's layout, smaller); causal MHA without, on 77 tokens
        // (rows of scores padded to 80); causal GQA on 1100 tokens, whose rows are too long for
        // the softmax's registers.
        (attention(256, 4, 2, false, Some(10_000.0)), 96),
        (attention(192, 3, 3, true, None), 77),
        (attention(128, 2, 1, true, Some(10_000.0)), 1100),
    ];
    let every = blocks.len() * presets::names().len();
    let mut checked = 0;
    for (block, tokens) in blocks {
        let model = model(block.clone(), tokens);
        let weights = seeded::weights(&model, 5, Format::Bf16);
        let input = seeded::input(&model, 5, Format::Bf16, seeded::INPUT);
        for name in presets::names() {
            let policy = presets::preset(name).unwrap();
            let mut executable = gpu
                .prepare(&model, &weights, &policy)
                .unwrap_or_else(|e| panic!("{} {name}: {e}", block.kind_name()));
            let output = executable.run(&input).unwrap();
            let emulation = CpuBackend::new()
                .prepare(&model, &weights, &policy)
                .unwrap()
                .run(&input)
                .unwrap();
            let agreement = compare(&output.data, &emulation.map(f64::from).data).unwrap();
            println!(
                "{} {name}: 1 - cos {:.3e}, max abs {:.3e}, emulated {}",
                block.kind_name(),
                1.0 - agreement.cos,
                agreement.max_abs_err,
                executable.emulated()
            );
            assert!(agreement.cos > 0.9999, "{name}: cos {}", agreement.cos);
            checked += 1;
        }
    }
    assert_eq!(
        checked, every,
        "every preset runs on CUDA, natively or emulated"
    );
}

/// Delayed scaling on the GPU keeps the same amax history as the CPU backend: the first step
/// scales from its own amax, the next from the history, so a second input four times larger
/// saturates in both, and differs from current scaling of the same input.
#[test]
#[ignore = "needs a CUDA GPU (sm_89+): run on the device with --run-ignored only"]
fn delayed_scaling_follows_the_same_history_as_the_cpu() {
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    let mlp = Block::Mlp(MlpShape {
        hidden: 256,
        intermediate: 1024,
        activation: Activation::GeluTanh,
        gated: true,
    });
    let model = model(mlp, 96);
    let weights = seeded::weights(&model, 5, Format::Bf16);
    let first = seeded::input(&model, 5, Format::Bf16, seeded::INPUT);
    let second = first.map(|v| v * 4.0);
    let delayed = presets::preset("fp8_e4m3_delayed").unwrap();
    let mut on_gpu = gpu.prepare(&model, &weights, &delayed).unwrap();
    let mut on_cpu = CpuBackend::new()
        .prepare(&model, &weights, &delayed)
        .unwrap();
    for (step, input) in [&first, &second].into_iter().enumerate() {
        let output = on_gpu.run(input).unwrap();
        let emulation = on_cpu.run(input).unwrap();
        let agreement = compare(&output.data, &emulation.map(f64::from).data).unwrap();
        println!("delayed step {step}: 1 - cos {:.3e}", 1.0 - agreement.cos);
        assert!(agreement.cos > 0.9999, "step {step}: cos {}", agreement.cos);
        if step == 1 {
            let current = presets::preset("fp8_e4m3").unwrap();
            let current = gpu
                .prepare(&model, &weights, &current)
                .unwrap()
                .run(input)
                .unwrap();
            let apart = compare(&output.data, &current.map(f64::from).data).unwrap();
            println!(
                "delayed against current scaling at step 1: 1 - cos {:.3e}",
                1.0 - apart.cos
            );
            assert!(
                apart.cos < 0.9999,
                "the history made no difference: cos {}",
                apart.cos
            );
        }
    }
}
