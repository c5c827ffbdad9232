//! Planted precision mismatches are caught by the numeric fingerprint, with the right direction
//! and operation; honest outputs (the right policy, with GPU-like accumulation-order noise) are not
//! flagged over 20 seeds.

mod common;

use common::{precheck, Fake, Plant};
use precheck::backend::{Backend, CpuBackend, Executable, MatmulOverride};
use precheck::formats::{Format, Overflow};
use precheck::ident::Ident;
use precheck::mismatch::fingerprint::{
    fingerprint, fingerprint_where_undecided, one_by_one, Candidate,
};
use precheck::mismatch::Direction;
use precheck::model::graph::AttentionShape;
use precheck::model::{seeded, AttentionBlock, Block, MlpShape, Model, Weights};
use precheck::model::{Activation, OutlierSpec, WeightsSpec};
use precheck::precision::{presets, Policy};
use precheck::quant::QuantSpec;
use precheck::tensor::Tensor;
use rand::{Rng, SeedableRng};

fn mlp() -> Model {
    Model {
        name: Ident::try_from("m".to_owned()).unwrap(),
        block: Block::Mlp(MlpShape {
            hidden: 256,
            intermediate: 1024,
            activation: Activation::GeluTanh,
            gated: true,
        }),
        tokens: 32,
        outliers: None,
        input_file: None,
        weights: WeightsSpec::Seeded,
    }
}

fn linear() -> Model {
    Model {
        block: Block::Linear {
            in_features: 512,
            out_features: 1024,
        },
        ..mlp()
    }
}

/// GQA attention on inputs with outlier channels scaled 30×: large logits, where the softmax's
/// precision shows (at 8× an FP16 softmax moves the output by only 4e-7 in `1 − cos`, below the
/// fingerprint's noise floor: such a fault is then harmless and not reported).
fn attention() -> Model {
    Model {
        block: Block::Attention(AttentionBlock {
            hidden: 256,
            shape: AttentionShape {
                heads: 4,
                kv_heads: 2,
                head_dim: 64,
                causal: false,
            },
            rope_theta: Some(10_000.0),
        }),
        tokens: 64,
        outliers: Some(OutlierSpec {
            fraction: 0.05,
            scale: 30.0,
        }),
        ..mlp()
    }
}

/// FP16 with the softmax kept in FP32, as the seed's attention ran.
fn fp16_fp32_softmax() -> Policy {
    Policy {
        name: "fp16_fp32_softmax".into(),
        softmax: Format::Fp32,
        ..presets::preset("fp16").unwrap()
    }
}

fn setup(model: &Model, seed: u64) -> (Weights, Tensor) {
    (
        seeded::weights(model, seed, Format::Bf16),
        seeded::input(model, seed, Format::Bf16, seeded::INPUT),
    )
}

/// The CPU emulation of `policy`: the request the fingerprint compares against.
fn emulate(model: &Model, weights: &Weights, input: &Tensor, policy: &Policy) -> Tensor {
    CpuBackend::new()
        .prepare_with_overrides(model, weights, policy, &[])
        .run(input)
        .unwrap()
}

/// What a faulty backend computes: the policy, except `operation` in `spec`.
fn faulty(
    model: &Model,
    weights: &Weights,
    input: &Tensor,
    policy: &Policy,
    operation: &str,
    spec: &str,
) -> Tensor {
    let spec = QuantSpec::try_from(spec.to_owned()).unwrap();
    CpuBackend::new()
        .prepare_with_overrides(
            model,
            weights,
            policy,
            &[(operation.to_owned(), MatmulOverride::operands(spec))],
        )
        .run(input)
        .unwrap()
}

#[test]
fn an_fp8_matmul_run_in_fp32_or_fp16_is_caught_higher() {
    let model = mlp();
    let (weights, input) = setup(&model, 3);
    let fp8 = presets::preset("fp8_e4m3").unwrap();
    for (operation, spec) in [("down_proj.weight", "fp32"), ("gate_proj.weight", "fp16")] {
        let output = faulty(&model, &weights, &input, &fp8, operation, spec);
        let found = fingerprint(
            &model,
            &weights,
            &input,
            &fp8,
            &output.data,
            &emulate(&model, &weights, &input, &fp8),
        )
        .unwrap();
        let detected = found
            .detected
            .clone()
            .unwrap_or_else(|| panic!("{operation} in {spec} not caught: {found:?}"));
        assert_eq!(detected.operation, operation);
        assert_eq!(detected.direction, Direction::Higher);
        // On BF16 tensors an FP32 and a BF16 matmul give the same output: the planted format must
        // be among the nearest, not necessarily first.
        let planted = found
            .alternatives
            .iter()
            .find(|a| a.operation == operation && a.spec == spec)
            .unwrap();
        assert!(planted.distance <= detected.distance, "{found:?}");
    }
}

#[test]
fn a_bf16_matmul_run_in_fp8_is_caught_lower() {
    let model = mlp();
    let (weights, input) = setup(&model, 4);
    let bf16 = presets::preset("bf16").unwrap();
    let output = faulty(
        &model,
        &weights,
        &input,
        &bf16,
        "up_proj.weight",
        "fp8_e4m3/per_tensor",
    );
    let found = fingerprint(
        &model,
        &weights,
        &input,
        &bf16,
        &output.data,
        &emulate(&model, &weights, &input, &bf16),
    )
    .unwrap();
    let detected = found.detected.expect("caught");
    assert_eq!(
        (detected.operation.as_str(), detected.direction),
        ("up_proj.weight", Direction::Lower)
    );
}

#[test]
fn a_policy_fp32_softmax_run_in_fp16_is_caught_lower() {
    let model = attention();
    let (weights, input) = setup(&model, 5);
    let policy = fp16_fp32_softmax();
    // The planted fault: a backend that fuses the softmax into an FP16 node.
    let fused = Policy {
        softmax: Format::Fp16,
        ..policy.clone()
    };
    let output = emulate(&model, &weights, &input, &fused);
    let found = fingerprint(
        &model,
        &weights,
        &input,
        &policy,
        &output.data,
        &emulate(&model, &weights, &input, &policy),
    )
    .unwrap();
    let detected = found
        .detected
        .clone()
        .unwrap_or_else(|| panic!("FP16 softmax not caught: {found:?}"));
    assert_eq!(
        (
            detected.operation.as_str(),
            detected.direction,
            detected.spec.as_str()
        ),
        ("softmax", Direction::Lower, "fp16")
    );
}

/// The right policy, computed with its outputs perturbed by one BF16 ulp in 10 % of the elements:
/// what a correct GPU kernel with another accumulation order gives (BENCHMARKS.md).
fn honest_with_noise(
    model: &Model,
    weights: &Weights,
    input: &Tensor,
    policy: &Policy,
    seed: u64,
) -> Vec<f32> {
    let mut output = CpuBackend::new()
        .prepare_with_overrides(model, weights, policy, &[])
        .run(input)
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for v in output.data.iter_mut() {
        if rng.random_bool(0.1) {
            let ulp = Format::Bf16.round(*v * (1.0 + 2f32.powi(-7)), Overflow::Cast) - *v;
            *v += if rng.random_bool(0.5) { ulp } else { -ulp };
        }
    }
    output.data
}

/// An honest FP32 or TF32 output, as a GPU kernel with another accumulation order gives it: one
/// FP32 ulp off in a tenth of the elements.
#[test]
fn honest_fp32_and_tf32_outputs_raise_no_alarm_over_20_seeds() {
    for seed in 0..20 {
        for model in [mlp(), linear(), attention()] {
            let (weights, input) = setup(&model, seed);
            for name in ["fp32", "tf32"] {
                let policy = presets::preset(name).unwrap();
                let requested = emulate(&model, &weights, &input, &policy);
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let output: Vec<f32> = requested
                    .data
                    .iter()
                    .map(|&v| match rng.random_bool(0.1) {
                        true if rng.random_bool(0.5) => v.next_up(),
                        true => v.next_down(),
                        false => v,
                    })
                    .collect();
                let found =
                    fingerprint(&model, &weights, &input, &policy, &output, &requested).unwrap();
                assert!(
                    found.detected.is_none(),
                    "seed {seed}, {name}: {:?}",
                    found.detected
                );
            }
        }
    }
}

#[test]
fn honest_outputs_raise_no_alarm_over_20_seeds() {
    for seed in 0..20 {
        for model in [mlp(), linear(), attention()] {
            let (weights, input) = setup(&model, seed);
            for name in ["fp8_e4m3", "bf16", "mxfp4", "fp16_fp32_softmax"] {
                let policy = match name {
                    "fp16_fp32_softmax" => fp16_fp32_softmax(),
                    _ => presets::preset(name).unwrap(),
                };
                let output = honest_with_noise(&model, &weights, &input, &policy, seed);
                let found = fingerprint(
                    &model,
                    &weights,
                    &input,
                    &policy,
                    &output,
                    &emulate(&model, &weights, &input, &policy),
                )
                .unwrap();
                assert!(
                    found.detected.is_none(),
                    "seed {seed} {} {name}: false alarm {found:?}",
                    model.block.kind_name()
                );
            }
        }
    }
}

/// Silently runs every FP8 matmul in FP32: the silent fallback precheck exists to catch, end to
/// end through the runner and the gate.
fn silent_fp32_fallback(
    model: &Model,
    weights: &Weights,
    policy: &Policy,
) -> Result<Box<dyn Executable>, precheck::backend::BackendError> {
    let overrides: Vec<(String, MatmulOverride)> = if policy.name == "fp8_e4m3" {
        weights
            .tensors
            .iter()
            .map(|(name, _)| {
                let fp32 = MatmulOverride::operands(QuantSpec::cast(Format::Fp32));
                (name.clone(), fp32)
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Box::new(CpuBackend::new().prepare_with_overrides(
        model, weights, policy, &overrides,
    )))
}

/// A BF16 and an FP8 variant of a linear block run through the runner on `backend`, recorded in
/// the returned folder.
fn run_in_process(
    backend: &dyn Backend,
) -> (tempfile::TempDir, Vec<precheck::results::VariantRecord>) {
    let text = "
name: fallback
defaults: { warmup: 0, iterations: 1 }
models:
  - { name: m, block: linear, dims: { hidden: 256 }, input: { tokens: 32 } }
precisions: [bf16, fp8_e4m3]
gates: { cos_min: 0.99 }
";
    let dir = tempfile::tempdir().unwrap();
    let records = common::run_in_process(backend, text, &Default::default(), dir.path());
    (dir, records)
}

/// The fake backend building with `build` and planting nothing.
fn built_by<B>(build: B) -> impl Backend
where
    B: Fn(
            &Model,
            &Weights,
            &Policy,
        ) -> Result<Box<dyn Executable>, precheck::backend::BackendError>
        + Send
        + Sync,
{
    Fake {
        name: "fallback",
        build,
        plant: |_: &Policy| Plant::default(),
    }
}

#[test]
fn a_silent_fallback_fails_the_precision_mismatch_gate() {
    use precheck::mismatch::Verdict;
    use precheck::results::Status;

    let (dir, records) = run_in_process(&built_by(silent_fp32_fallback));
    let by_id = |id: &str| records.iter().find(|r| r.id == id).unwrap();
    let fp8 = by_id("m/fp8_e4m3/cpu");
    assert_eq!(fp8.status, Status::Failed);
    assert_eq!(fp8.failures[0].gate, "precision_mismatch");
    let verdict = &fp8.mismatch.as_ref().unwrap().verdict;
    assert!(
        matches!(
            verdict,
            Verdict::Detected {
                direction: Direction::Higher,
                ..
            }
        ),
        "{verdict:?}"
    );
    let bf16 = by_id("m/bf16/cpu");
    assert_eq!(bf16.status, Status::Passed);
    assert_eq!(bf16.mismatch.as_ref().unwrap().verdict, Verdict::None);

    // `precheck explain` shows a person the verdict and the alternative the output matched.
    let explain = |id: &str| {
        precheck()
            .arg("explain")
            .arg(dir.path())
            .arg(id)
            .output()
            .unwrap()
    };
    let shown = explain("m/fp8_e4m3/cpu");
    assert!(shown.status.success());
    let text = String::from_utf8(shown.stdout).unwrap();
    assert!(
        text.contains("Verdict: MISMATCH, higher than asked"),
        "{text}"
    );
    let matched = text.lines().find(|l| l.ends_with("<- matches")).unwrap();
    assert!(
        matched.contains("weight as ") && matched.contains("(Higher)"),
        "{text}"
    );
    // The report carries the same evidence (run.json borrowed from a recorded run's fixture).
    std::fs::copy(
        "tests/fixtures/runs/base/run.json",
        dir.path().join(precheck::results::RUN_INFO_FILE),
    )
    .unwrap();
    precheck().arg("report").arg(dir.path()).assert().code(1);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<h2>Each variant</h2>"));
    // (tera escapes `/` in ids as `&#x2F;`.)
    assert!(html.contains("m&#x2F;fp8_e4m3&#x2F;cpu</span>: FAIL · mismatch: detected (higher)"));
    assert!(html.contains("m&#x2F;bf16&#x2F;cpu</span>: pass · mismatch: none"));
    let unknown = explain("m/fp8_e4m3/gpu");
    assert_eq!(unknown.status.code(), Some(2));
    let error = String::from_utf8(unknown.stderr).unwrap();
    assert!(error.contains("did you mean `m/fp8_e4m3/cpu`?"), "{error}");
}

/// Honest numerics, but FP8 twice as slow as BF16: a lower precision that bought no speed.
fn slow_fp8(policy: &Policy) -> Plant {
    let ms = if policy.name == "fp8_e4m3" { 2 } else { 1 };
    Plant {
        fixed_time: Some(std::time::Duration::from_millis(ms)),
        ..Plant::default()
    }
}

#[test]
fn an_fp8_variant_slower_than_bf16_is_suspect_but_not_failed() {
    use precheck::mismatch::Verdict;
    use precheck::results::Status;

    let (_dir, records) = run_in_process(&Fake {
        name: "slow fp8",
        build: common::cpu,
        plant: slow_fp8,
    });
    let fp8 = records.iter().find(|r| r.id == "m/fp8_e4m3/cpu").unwrap();
    assert_eq!(fp8.status, Status::Passed, "{:?}", fp8.failures);
    let Some(Verdict::Suspect { reason }) = fp8.mismatch.as_ref().map(|m| &m.verdict) else {
        panic!("not suspect: {:?}", fp8.mismatch);
    };
    assert_eq!(
        reason,
        "Fp8 GEMMs are not faster than the Bf16 baseline (0.50x of its 1.000 ms)"
    );
    let bf16 = records.iter().find(|r| r.id == "m/bf16/cpu").unwrap();
    assert_eq!(bf16.mismatch.as_ref().unwrap().verdict, Verdict::None);
}

/// Honest numerics, but the FP8 engine's layer report (a TensorRT 10 `--exportLayerInfo` file)
/// shows layers that ran in FP32 and FP16: a fallback only the engine's own report reveals.
fn reports_fallback_layers(policy: &Policy) -> Plant {
    let layer_report = (policy.name == "fp8_e4m3").then(|| {
        let path = "tests/fixtures/trtexec/fp8_engine_with_fp32_layers.layers.json";
        let report = precheck::trtexec::layers::read(std::path::Path::new(path)).unwrap();
        report.detailed().unwrap().to_vec()
    });
    Plant {
        layer_report,
        ..Plant::default()
    }
}

#[test]
fn an_engine_layer_report_with_fp32_layers_fails_an_fp8_variant() {
    use precheck::mismatch::Verdict;
    use precheck::results::Status;

    let (_dir, records) = run_in_process(&Fake {
        name: "fp8 engine",
        build: common::cpu,
        plant: reports_fallback_layers,
    });
    let fp8 = records.iter().find(|r| r.id == "m/fp8_e4m3/cpu").unwrap();
    assert_eq!(fp8.status, Status::Failed);
    let mismatch = fp8.mismatch.as_ref().unwrap();
    let Verdict::Detected {
        direction,
        evidence,
    } = &mismatch.verdict
    else {
        panic!("not detected: {mismatch:?}");
    };
    assert_eq!(*direction, Direction::Higher);
    let layers = mismatch.layers.as_ref().unwrap();
    assert!(!layers.above.is_empty());
    for name in &layers.above {
        assert!(evidence.contains(&format!("layer {name}")), "{evidence:?}");
    }
    assert!(precheck::report::explain::explain(fp8).contains("Engine layer report"));
    let bf16 = records.iter().find(|r| r.id == "m/bf16/cpu").unwrap();
    assert_eq!(bf16.mismatch.as_ref().unwrap().verdict, Verdict::None);
}

/// Alternatives emulated only where they can decide: over 20 seeds, on honest outputs and planted
/// faults, with a trace that agrees with the request (the case that skips them), the verdict is
/// the full fingerprint's, and an output that is the request itself costs no alternative.
#[test]
fn the_lazy_fingerprint_gives_the_full_verdict_over_20_seeds() {
    let bf16 = presets::preset("bf16").unwrap();
    let fp8 = presets::preset("fp8_e4m3").unwrap();
    let mut skipped = 0;
    for seed in 0..20 {
        let model = mlp();
        let (weights, input) = setup(&model, seed);
        let mut cases = Vec::new();
        let [bf16_requested, fp8_requested] =
            [&bf16, &fp8].map(|policy| emulate(&model, &weights, &input, policy));
        for (policy, requested) in [(&bf16, &bf16_requested), (&fp8, &fp8_requested)] {
            cases.push((policy, requested.data.clone(), requested.clone()));
            let noisy = honest_with_noise(&model, &weights, &input, policy, seed);
            cases.push((policy, noisy, requested.clone()));
        }
        let planted = faulty(
            &model,
            &weights,
            &input,
            &bf16,
            "up_proj.weight",
            "fp8_e4m3/per_tensor",
        );
        cases.push((&bf16, planted.data, bf16_requested));
        let planted = faulty(&model, &weights, &input, &fp8, "down_proj.weight", "fp32");
        cases.push((&fp8, planted.data, fp8_requested));
        for (index, (policy, output, requested)) in cases.iter().enumerate() {
            let full = fingerprint(&model, &weights, &input, policy, output, requested).unwrap();
            let cpu = CpuBackend::new();
            let mut emulate = |candidates: &[Candidate]| {
                one_by_one(candidates, |c| {
                    cpu.prepare_with_overrides(&model, &weights, &c.policy, &c.overrides)
                        .run(&input)
                })
            };
            let lazy =
                fingerprint_where_undecided(&model, policy, output, requested, true, &mut emulate)
                    .unwrap();
            assert_eq!(lazy.detected, full.detected, "seed {seed} {}", policy.name);
            if lazy.not_evaluated.is_some() {
                assert!(lazy.alternatives.is_empty());
                skipped += 1;
            }
            if output == &requested.data {
                assert!(lazy.not_evaluated.is_some(), "seed {seed} {}", policy.name);
            }
            let planted = index >= 4;
            assert_eq!(lazy.detected.is_some(), planted, "seed {seed} case {index}");
        }
    }
    assert!(
        skipped >= 40,
        "{skipped} of 120 fingerprints skipped their alternatives"
    );
}
