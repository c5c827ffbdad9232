//! The CUDA backend on a real GPU, against the CPU backend's emulation of the same policies.
//!
//! Run on the GPU machine: these tests are ignored elsewhere (no GPU here or in CI).
#![cfg(feature = "cuda")]

use std::path::Path;

use precheck::backend::{Backend, CpuBackend, CudaBackend};
use precheck::formats::Format;
use precheck::ident::Ident;
use precheck::measure::compare;
use precheck::model::blocks::layer_prefix;
use precheck::model::forward::{forward, Exact};
use precheck::model::graph::AttentionShape;
use precheck::model::Weights;
use precheck::model::{seeded, AttentionBlock, Block, LayerKind, LayerSpec, MlpShape, Model};
use precheck::model::{Activation, WeightsSpec};
use precheck::precision::{presets, Policy};
use precheck::quant::{QuantSpec, Recipe};
use precheck::tensor::Tensor;

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

/// Every preset, and FP8 with row-wise scaling (per-channel weights, per-token activations), which
/// a suite names as a mapping (README's `fp8_rowwise`).
fn policies() -> Vec<Policy> {
    let mut rowwise = presets::preset("fp8_e4m3").unwrap();
    rowwise.name = "fp8_rowwise".to_owned();
    rowwise.matmul.weights = QuantSpec::try_from("fp8_e4m3/per_channel".to_owned()).unwrap();
    rowwise.matmul.activations = QuantSpec::try_from("fp8_e4m3/per_token".to_owned()).unwrap();
    presets::names()
        .into_iter()
        .map(|name| presets::preset(name).unwrap())
        .chain([rowwise])
        .collect()
}

/// Runs `block` over `tokens` rows, with seeded weights and input, in every preset on the GPU and
/// on the CPU ([`every_preset_agrees_on`]).
fn every_preset_agrees(gpu: &CudaBackend, block: &Block, tokens: usize) -> Agreement {
    let model = model(block.clone(), tokens);
    let weights = seeded::weights(&model, 5, Format::Bf16);
    let input = seeded::input(&model, 5, Format::Bf16, seeded::INPUT);
    every_preset_agrees_on(gpu, &model, &weights, &input)
}

/// The largest 1 − cos allowed between the GPU and the CPU emulation of one block or layer run on
/// the same input.
///
/// The quantized operands are bit-identical (the same recipes; the GPU's FP8, INT8, MX and NVFP4
/// kernels round as the CPU does); what differs is the accumulation order inside the GEMMs, the
/// softmax's and the norms' sums, and the GPU's `expf` and `erff` (within 2 ulp of the CPU's).
/// Those move the last bit of a few BF16/FP16 values, and a value that moved can round to the
/// other side at the next quantization. That bounds a block at 1e-4; a wrong scale, layout,
/// head, bias, norm or format puts it near 1. FP8's three mantissa bits turn such a last-bit
/// difference into a whole FP8 step in about one case in 32, and a layer quantizes four tensors
/// in a row (its input, the attention's context, the MLP's input and its hidden tensor). Native
/// FP8 GEMMs move last bits far more often than BF16 ones: Hopper's FP8 tensor cores accumulate
/// with fewer bits than FP32 (one FP8 linear agrees at 2.4e-7, a BF16 linear at 2.5e-9, on an
/// H200). So a layer with FP8 activations is bounded at 3e-4 (measured on an H200: blocks ≤ 7e-5,
/// layers ≤ 1.9e-4; MXFP8, whose E4M3 values go through BF16 GEMMs, ≤ 1.7e-6).
/// FP8 with a scale per token (row-wise) takes each row's scale from its own largest value: where
/// that value moved by its last bit, the whole row is quantized on a slightly other grid, not one
/// value. Its blocks get the layers' bound (measured: attention ≤ 1.03e-4, the MLP ≤ 9e-6).
fn bound(block: &Block, policy: &Policy) -> f64 {
    let activations = policy.matmul.activations;
    let fp8 = matches!(activations.format, Format::Fp8E4m3 | Format::Fp8E5m2);
    let per_token = activations.recipe == Recipe::PerToken;
    let layered = matches!(block, Block::Layer(_) | Block::Stack { .. });
    if fp8 && (layered || per_token) {
        3e-4
    } else {
        1e-4
    }
}

/// Runs `model` in every preset on the GPU and on the CPU, and checks that they agree within
/// [`bound`]. A stack is checked twice:
/// - layer by layer, each layer on the GPU fed the CPU emulation's input to that layer: every
///   layer computes what the CPU computes, within [`bound`];
/// - as a whole, every layer's output: differences that start in the last bits grow along depth
///   (each layer's quantization turns them into whole steps), so the whole stack is held to
///   staying closer to the CPU emulation than the emulation is to the exact reference. Two
///   independent quantizations of the same values would be twice that far apart; a wrong layer
///   much farther.
fn every_preset_agrees_on(
    gpu: &CudaBackend,
    model: &Model,
    weights: &Weights,
    input: &Tensor,
) -> Agreement {
    let block = &model.block;
    // The exact reference's layers, for a stack as a whole.
    let exact = matches!(block, Block::Stack { .. }).then(|| {
        let weights = weights.map(f64::from);
        forward(
            &block.graph(),
            &mut Exact { weights: &weights },
            &input.map(f64::from),
        )
    });
    let mut agreement = Agreement::default();
    for policy in policies() {
        let name = policy.name.as_str();
        let mut executable = gpu
            .prepare(model, weights, &policy)
            .unwrap_or_else(|e| panic!("{} {name}: {e}", block.kind_name()));
        let output = executable.run(input).unwrap();
        let taps = executable.taps();
        let mut on_cpu = CpuBackend::new().prepare(model, weights, &policy).unwrap();
        let emulation = on_cpu.run(input).unwrap();
        let emulated_taps = on_cpu.taps();
        assert_eq!(
            taps.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            emulated_taps.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "{name}: the GPU reports the CPU's layers"
        );
        let what = format!("{} {name}", block.kind_name());
        if let Block::Stack { layer, .. } = block {
            let mut layer_input = input.clone();
            for (index, (tap, cpu)) in emulated_taps.iter().enumerate() {
                let one = Model {
                    block: Block::Layer(*layer),
                    ..model.clone()
                };
                let prefix = layer_prefix(index);
                let layer_weights = Weights {
                    tensors: weights
                        .tensors
                        .iter()
                        .filter_map(|(n, t)| Some((n.strip_prefix(&prefix)?.to_owned(), t.clone())))
                        .collect(),
                };
                let on_gpu = gpu
                    .prepare(&one, &layer_weights, &policy)
                    .unwrap()
                    .run(&layer_input)
                    .unwrap();
                let allowed = bound(&one.block, &policy);
                agreement.check(format!("{what} {tap} alone"), &on_gpu, cpu, allowed);
                layer_input = cpu.clone();
            }
            let exact = exact.as_ref().expect("computed for stacks");
            let whole = taps.iter().zip(&emulated_taps).zip(&exact.taps);
            for (((tap, on_gpu), (_, cpu)), (_, exact)) in whole {
                let off = 1.0 - compare(&cpu.data, &exact.data).unwrap().cos;
                let allowed = off.max(bound(block, &policy));
                agreement.check(format!("{what} {tap} in the stack"), on_gpu, cpu, allowed);
            }
        } else {
            agreement.check(what, &output, &emulation, bound(block, &policy));
        }
        agreement.checked += 1;
    }
    agreement
}

/// What [`every_preset_agrees_on`] found.
#[derive(Debug, Default)]
struct Agreement {
    /// Presets run.
    checked: usize,
    /// Each output or layer whose 1 − cos reached its bound.
    disagreements: Vec<String>,
}

impl Agreement {
    /// Compares `on_gpu` with the CPU's `on_cpu`: 1 − cos must stay below `allowed`.
    fn check(&mut self, what: String, on_gpu: &Tensor, on_cpu: &Tensor, allowed: f64) {
        let agreement = compare(&on_gpu.data, &on_cpu.map(f64::from).data).unwrap();
        let off = 1.0 - agreement.cos;
        println!(
            "{what}: 1 - cos {off:.3e} (bound {allowed:.1e}), max abs {:.3e}",
            agreement.max_abs_err
        );
        // NaN agrees with nothing.
        if off.is_nan() || off >= allowed {
            self.disagreements
                .push(format!("{what}: 1 - cos {off:.3e} >= {allowed:.1e}"));
        }
    }
}

impl std::iter::Sum for Agreement {
    fn sum<I: Iterator<Item = Agreement>>(iter: I) -> Self {
        iter.fold(Agreement::default(), |mut all, one| {
            all.checked += one.checked;
            all.disagreements.extend(one.disagreements);
            all
        })
    }
}

fn heads(heads: usize, kv_heads: usize, causal: bool) -> AttentionShape {
    AttentionShape {
        heads,
        kv_heads,
        head_dim: 64,
        causal,
    }
}

/// A gated or plain MLP, small.
fn mlp_block(activation: Activation, gated: bool) -> Block {
    Block::Mlp(MlpShape {
        hidden: 256,
        intermediate: 1024,
        activation,
        gated,
    })
}

/// An attention block of `heads_n` query heads and `kv_heads` key/value heads of 64.
fn attention_block(
    hidden: usize,
    heads_n: usize,
    kv_heads: usize,
    causal: bool,
    rope_theta: Option<f64>,
) -> Block {
    Block::Attention(AttentionBlock {
        hidden,
        shape: heads(heads_n, kv_heads, causal),
        rope_theta,
    })
}

/// A decoder layer (pre-norm, RMSNorm, rotary GQA, gated MLP) or an encoder layer (post-norm,
/// LayerNorm, biases, MHA, plain GELU MLP), small.
fn layer(kind: LayerKind) -> LayerSpec {
    let decoder = kind == LayerKind::Decoder;
    LayerSpec {
        kind,
        hidden: 256,
        intermediate: 768,
        attention: if decoder {
            heads(4, 1, true)
        } else {
            heads(4, 4, false)
        },
        activation: if decoder {
            Activation::GeluTanh
        } else {
            Activation::Gelu
        },
        norm_eps: 1e-6,
        rope_theta: 10_000.0,
    }
}

/// Every preset runs on CUDA (natively or emulated) on every block, and agrees with its CPU
/// emulation ([`every_preset_agrees`]).
#[test]
#[ignore = "needs a CUDA GPU (sm_89+): run on the device with --run-ignored only"]
fn every_cuda_precision_matches_the_cpu_emulation() {
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    let blocks = [
        (
            Block::Linear {
                in_features: 512,
                out_features: 256,
            },
            96,
        ),
        (mlp_block(Activation::GeluTanh, true), 96),
        // Plain MLPs with biases: BERT's erf GELU, and ReLU.
        (mlp_block(Activation::Gelu, false), 96),
        (mlp_block(Activation::Relu, false), 96),
        // GQA with rotary embedding (the seed's layout, smaller); causal MHA without, on 77 tokens
        // (rows of scores padded to 80); causal GQA on 1100 tokens, whose rows are too long for
        // the softmax's registers.
        (attention_block(256, 4, 2, false, Some(10_000.0)), 96),
        (attention_block(192, 3, 3, true, None), 77),
        (attention_block(128, 2, 1, true, Some(10_000.0)), 1100),
        (Block::Layer(layer(LayerKind::Decoder)), 96),
        (Block::Layer(layer(LayerKind::Encoder)), 77),
    ];
    let every = blocks.len() * policies().len();
    let agreement: Agreement = blocks
        .iter()
        .map(|(block, tokens)| every_preset_agrees(&gpu, block, *tokens))
        .sum();
    assert_eq!(agreement.disagreements, Vec::<String>::new());
    assert_eq!(
        agreement.checked, every,
        "every preset runs on CUDA, natively or emulated"
    );
}

/// Stacks of both layouts agree with the CPU emulation after every layer, in every preset: the
/// GPU reports each layer's output as the CPU does (`layer.N`).
#[test]
#[ignore = "needs a CUDA GPU (sm_89+): run on the device with --run-ignored only"]
fn stacks_match_the_cpu_emulation_layer_by_layer() {
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    let agreement: Agreement = [(LayerKind::Decoder, 3), (LayerKind::Encoder, 2)]
        .into_iter()
        .map(|(kind, layers)| {
            let stack = Block::Stack {
                layer: layer(kind),
                layers,
            };
            every_preset_agrees(&gpu, &stack, 96)
        })
        .sum();
    assert_eq!(agreement.disagreements, Vec::<String>::new());
    assert_eq!(agreement.checked, 2 * policies().len());
}

/// all-MiniLM-L6-v2's six real BERT layers (`suites/minilm.yaml`) agree with the CPU emulation
/// after every layer, in every preset.
#[test]
#[ignore = "needs a CUDA GPU (sm_89+) and the MiniLM checkpoint (scripts/fetch_minilm.sh): run on the device with --run-ignored only"]
fn minilm_agrees_with_the_cpu_layer_by_layer() {
    assert!(
        Path::new("models/all-MiniLM-L6-v2/model.safetensors").exists(),
        "the MiniLM checkpoint is missing: run scripts/fetch_minilm.sh"
    );
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    let loaded = precheck::suite::load(Path::new("suites/minilm.yaml")).unwrap();
    let model = &loaded.suite.models[0];
    let weights = model.weights(1, Format::Fp32).unwrap();
    let input = model.input(1, Format::Fp32).unwrap();
    let agreement = every_preset_agrees_on(&gpu, model, &weights, &input);
    assert_eq!(agreement.disagreements, Vec::<String>::new());
    assert_eq!(agreement.checked, policies().len());
}

/// Delayed scaling on the GPU keeps the same amax history as the CPU backend, in an MLP and in
/// a decoder layer (whose norms hand their amax to the next quantization): the first
/// step scales from its own amax and runs the first step's graph; later steps run the graph that
/// leaves out the amax passes and their buffers' zeroing. A second input four times larger
/// saturates the MLP in both and differs from current scaling of the same input; the third, the
/// first again, is quantized with the history's largest amax, the second's.
#[test]
#[ignore = "needs a CUDA GPU (sm_89+): run on the device with --run-ignored only"]
fn delayed_scaling_follows_the_same_history_as_the_cpu() {
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    let decoder = Block::Layer(layer(LayerKind::Decoder));
    for block in [mlp_block(Activation::GeluTanh, true), decoder] {
        let delayed = presets::preset("fp8_e4m3_delayed").unwrap();
        let allowed = bound(&block, &delayed);
        let model = model(block, 96);
        let name = model.block.kind_name();
        let weights = seeded::weights(&model, 5, Format::Bf16);
        let first = seeded::input(&model, 5, Format::Bf16, seeded::INPUT);
        let second = first.map(|v| v * 4.0);
        let mut on_gpu = gpu.prepare(&model, &weights, &delayed).unwrap();
        let mut on_cpu = CpuBackend::new()
            .prepare(&model, &weights, &delayed)
            .unwrap();
        for (step, input) in [&first, &second, &first].into_iter().enumerate() {
            let output = on_gpu.run(input).unwrap();
            let emulation = on_cpu.run(input).unwrap();
            let agreement = compare(&output.data, &emulation.map(f64::from).data).unwrap();
            println!(
                "{name}, delayed step {step}: 1 - cos {:.3e}",
                1.0 - agreement.cos
            );
            assert!(
                1.0 - agreement.cos <= allowed,
                "{name}, step {step}: cos {}",
                agreement.cos
            );
            // A layer's norms take the input's scale away: only the MLP sees the larger input.
            if step == 1 && name == "mlp" {
                let current = presets::preset("fp8_e4m3").unwrap();
                let current = gpu
                    .prepare(&model, &weights, &current)
                    .unwrap()
                    .run(input)
                    .unwrap();
                let apart = compare(&output.data, &current.map(f64::from).data).unwrap();
                println!(
                    "{name}, delayed against current scaling at step 1: 1 - cos {:.3e}",
                    1.0 - apart.cos
                );
                assert!(
                    apart.cos < 0.9999,
                    "{name}: the history made no difference: cos {}",
                    apart.cos
                );
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU (sm_89+): run on the device with --run-ignored only"]
fn weights_quantized_on_the_gpu_are_the_hosts_bytes_and_scales() {
    use precheck::backend::cuda::Quantizing;
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    // Two weights of one group (rows of different counts, a row count no block size divides),
    // drawn as a checkpoint's f32 values would be: normal, a few outliers 40× larger, an all-zero
    // row (scale 1), and BF16-exact copies as precheck's seeded weights are.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut normal = move || {
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (u, v) = (uniform().max(1e-300), uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let k = 320;
    let mut draw = |rows: usize| {
        let mut data: Vec<f32> = (0..rows * k)
            .map(|i| normal() * if i % 997 == 0 { 40.0 } else { 0.05 })
            .collect();
        data[k..2 * k].fill(0.0);
        Tensor::new(rows, k, data)
    };
    let (first, second) = (draw(96), draw(161));
    let bf16_exact = |t: &Tensor| {
        let mut t = t.clone();
        Format::Bf16.round_slice(&mut t.data);
        t
    };
    let (first_bf16, second_bf16) = (bf16_exact(&first), bf16_exact(&second));
    // Every finite BF16 value (the others as 0), a row per 256 bit patterns, so that FP8 and INT8
    // divide every significand by a tensor's scale and by 256 row scales, across the whole
    // exponent range (the kernels' division takes another path near the subnormals), and the
    // same values times 0.3 (not BF16-exact).
    let every_bf16 = Tensor::new(
        256,
        256,
        (0..=u16::MAX)
            .map(|bits| {
                let v = f32::from_bits(u32::from(bits) << 16);
                if v.is_finite() {
                    v
                } else {
                    0.0
                }
            })
            .collect(),
    );
    let every_bf16_scaled = every_bf16.map(|v| v * 0.3);
    let divides = |policy: &Policy| {
        let format = policy.matmul.weights.format;
        matches!(format, Format::Fp8E4m3 | Format::Fp8E5m2 | Format::Int8)
    };
    const EVERY_VALUE: &str = "every bf16 value";
    let (mut checked, mut every_value_checked) = (0, 0);
    for policy in policies() {
        let name = &policy.name;
        let mut sets = vec![
            ("f32", [&first, &second]),
            ("bf16-exact", [&first_bf16, &second_bf16]),
        ];
        if divides(&policy) {
            sets.push((EVERY_VALUE, [&every_bf16, &every_bf16_scaled]));
        }
        for (what, weights) in sets {
            let host = match gpu.quantized_weights(&policy, &weights, Quantizing::Host) {
                Ok(host) => host,
                Err(_) => continue, // no CUDA route for this preset
            };
            let fastest = gpu
                .quantized_weights(&policy, &weights, Quantizing::Fastest)
                .unwrap();
            assert_eq!(fastest.1, host.1, "{name} ({what}): column scales");
            let differing = fastest
                .0
                .iter()
                .zip(&host.0)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                (fastest.0.len(), differing),
                (host.0.len(), 0),
                "{name} ({what}): operand bytes"
            );
            checked += 1;
            every_value_checked += usize::from(what == EVERY_VALUE);
        }
    }
    assert!(checked >= 20, "only {checked} presets have a CUDA route");
    assert!(
        every_value_checked >= 3,
        "every BF16 value went through {every_value_checked} presets"
    );
}

/// The host's definitions (the exact reference and the CPU emulation of every preset) computed
/// with their products on the GPU ([`precheck::linalg::ProductDevice`]) agree with the same
/// definitions computed on the host's cores, on every block, and after every layer of a stack.
///
/// Every rounding stays on the host either way; only the order of accumulation inside the
/// products differs (f32 in f32, never TF32; f64 in f64). That moves an f32 value by a few ulp,
/// about 1e-7 of it, and only a value that close to a rounding boundary of the next quantization
/// rounds the other way: the emulations are held to 1e-5 (a wrong product, layout or accumulation
/// type is near 1, TF32 near 1e-6 in every value), the f64 reference to 1e-12.
#[test]
#[ignore = "needs a CUDA GPU (sm_89+): run on the device with --run-ignored only"]
fn the_host_definitions_with_products_on_the_gpu_match_the_hosts() {
    use precheck::linalg::set_product_device;
    let gpu = CudaBackend::new(0).expect("a CUDA device");
    let device = gpu.product_device().expect("the GPU computes products");
    // 512 tokens: every product is large enough to go to the device (a head's scores are
    // 512 × 64 × 512 multiply-adds).
    let blocks = [
        Block::Linear {
            in_features: 512,
            out_features: 256,
        },
        mlp_block(Activation::GeluTanh, true),
        mlp_block(Activation::Gelu, false),
        attention_block(256, 4, 2, false, Some(10_000.0)),
        attention_block(256, 4, 4, true, None),
        Block::Layer(layer(LayerKind::Decoder)),
        Block::Layer(layer(LayerKind::Encoder)),
        Block::Stack {
            layer: layer(LayerKind::Decoder),
            layers: 2,
        },
    ];
    let mut agreement = Agreement::default();
    // Runs `define` with the products on the host, then on the GPU, which must have worked.
    let both = |define: &dyn Fn() -> Vec<(String, Tensor<f64>)>, what: &str| {
        set_product_device(None);
        let on_host = define();
        set_product_device(Some(device.clone()));
        let busy = device.busy_s();
        let on_gpu = define();
        set_product_device(None);
        assert!(device.busy_s() > busy, "{what}: no product ran on the GPU");
        on_host.into_iter().zip(on_gpu).collect::<Vec<_>>()
    };
    for block in &blocks {
        let model = model(block.clone(), 512);
        let weights = seeded::weights(&model, 5, Format::Bf16);
        let input = seeded::input(&model, 5, Format::Bf16, seeded::INPUT);
        let kind = block.kind_name();
        let exact = || {
            let weights = weights.map(f64::from);
            let out = forward(
                &block.graph(),
                &mut Exact { weights: &weights },
                &input.map(f64::from),
            );
            let mut all = out.taps;
            all.push(("output".to_owned(), out.output));
            all
        };
        for ((tap, on_host), (_, on_gpu)) in both(&exact, kind) {
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            let (a, b) = (&on_gpu.data, &on_host.data);
            let off = 1.0 - dot(a, b) / (dot(a, a) * dot(b, b)).sqrt();
            println!("{kind} exact {tap}: 1 - cos {off:.3e}");
            if off.is_nan() || off >= 1e-12 {
                agreement
                    .disagreements
                    .push(format!("{kind} exact {tap}: 1 - cos {off:.3e} >= 1e-12"));
            }
        }
        for policy in policies() {
            let what = format!("{kind} {}", policy.name);
            let emulate = || {
                let mut cpu = CpuBackend::new()
                    .prepare(&model, &weights, &policy)
                    .unwrap();
                let output = cpu.run(&input).unwrap();
                let mut all = cpu.taps();
                all.push(("output".to_owned(), output));
                all.into_iter()
                    .map(|(tap, t)| (tap, t.map(f64::from)))
                    .collect()
            };
            for ((tap, on_host), (_, on_gpu)) in both(&emulate, &what) {
                let on_gpu = on_gpu.map(|v| v as f32);
                let on_host = on_host.map(|v| v as f32);
                agreement.check(format!("{what} {tap}"), &on_gpu, &on_host, 1e-5);
            }
            agreement.checked += 1;
        }
    }
    assert_eq!(agreement.disagreements, Vec::<String>::new());
    assert_eq!(agreement.checked, blocks.len() * policies().len());
}
