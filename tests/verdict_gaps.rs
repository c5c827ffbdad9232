//! The four fallbacks that used to pass as honest (issue 19), planted through the command
//! backend's protocol (`tests/runners/linear.py`) in 20 models with their own seeded weights and
//! inputs, and caught in every one; the same engine run honestly over the same models raises no
//! alarm.
//! - an FP32 variant run as a BF16 GEMM with a BF16 output, or an FP16 one (the numbers);
//! - a TF32 variant that ran an FP16 kernel, and an FP16 variant that ran a TF32 one (the kernel
//!   trace: same significant bits, other precisions);
//! - a BF16 variant whose one-token GEMM ran as cuBLAS's FP32 GEMV (the kernel trace).
//!
//! The fourth, a golden file whose taps do not match the model's, is `tests/golden.rs`'s.

mod common;

use std::path::Path;

use common::precheck;
use precheck::mismatch::{Direction, Verdict};
use precheck::results::{read_records, VariantRecord, RESULTS_FILE};

const FP16_GEMM: &str = "nvjet_sm90_hsh_128x248_64x4_2x1_v_bz_coopA_TNT";
const BF16_GEMM: &str = "nvjet_sm90_tst_128x248_64x4_2x1_v_bz_coopA_TNT";
const TF32_GEMM: &str = "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize64x64x32_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas";
const FP32_GEMM: &str = "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize64x256x8_stage3_warpsize1x4x1_ffma_aligna4_alignc4_execute_kernel__5x_cublas";
const FP32_GEMV: &str = "void gemv2T_kernel_val<int, int, float, float, float, float, 128, 16, 4, 4, false, false, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float>, float> >(cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float>, float>, float, float)";

/// 20 linear models (each name seeds its own weights and input) in four precisions.
fn suite() -> String {
    let models: Vec<String> = (0..20)
        .map(|i| format!("  - {{ name: m{i}, block: linear, dims: {{ hidden: 48, out_features: 24 }}, input: {{ tokens: 8 }} }}"))
        .collect();
    format!(
        "name: gaps\ndefaults: {{ seed: 11, warmup: 0, iterations: 1, timeout: 60s }}\nmodels:\n{}\nprecisions: [bf16, fp32, tf32, fp16]\ngates: {{ cos_min: 0.99 }}\n",
        models.join("\n")
    )
}

fn run(engine: &[String]) -> Vec<VariantRecord> {
    let dir = tempfile::tempdir().unwrap();
    let suite_file = dir.path().join("gaps.yaml");
    std::fs::write(&suite_file, suite()).unwrap();
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runners/linear.py");
    let out = dir.path().join("run");
    precheck()
        .arg("run")
        .arg(&suite_file)
        .args(["--backend", "command", "--command"])
        .arg(format!("python3 {} {}", runner.display(), engine.join(" ")))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let (records, _) = read_records(&out.join(RESULTS_FILE)).unwrap();
    assert_eq!(records.len(), 80, "every variant recorded");
    records
}

/// `--kernel` and `--compute` arguments of the engine, quoted for its shell command line.
/// Prints the range of `1 − cos` to the request of the FP32 variants' outputs (what README's
/// table of the evidence quotes; `--no-capture` shows it).
fn print_fp32_distances(what: &str, records: &[VariantRecord]) {
    let distances: Vec<f64> = records
        .iter()
        .filter(|r| r.precision == "fp32")
        .map(|r| {
            let mismatch = r.mismatch.as_ref().unwrap();
            mismatch.fingerprint.as_ref().unwrap().requested_distance
        })
        .collect();
    let (low, high) = distances
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &d| {
            (l.min(d), h.max(d))
        });
    eprintln!("{what}: 1 − cos to the FP32 request {low:.1e} to {high:.1e}");
}

fn engine(kernels: &[(&str, &str)], computes: &[(&str, &str)]) -> Vec<String> {
    let mut args = Vec::new();
    for (precision, name) in kernels {
        args.push(format!("--kernel '{precision}={name}'"));
    }
    for (precision, format) in computes {
        args.push(format!("--compute {precision}={format}"));
    }
    args
}

#[test]
fn each_planted_fallback_is_caught_in_every_model() {
    let records = run(&engine(
        &[
            ("tf32", FP16_GEMM),
            ("fp16", TF32_GEMM),
            ("bf16", FP32_GEMV),
        ],
        &[("fp32", "bf16"), ("bf16", "bf16"), ("fp16", "fp16")],
    ));
    print_fp32_distances("FP32 run as a BF16 GEMM", &records);
    for record in &records {
        let verdict = &record.mismatch.as_ref().unwrap().verdict;
        let Verdict::Detected {
            direction,
            evidence,
        } = verdict
        else {
            panic!("{} passed as honest: {verdict:?}", record.id);
        };
        let (expected_direction, shown) = match record.precision.as_str() {
            "fp32" => (Direction::Lower, "weight ran as bf16 → bf16"),
            "tf32" => (Direction::Lower, FP16_GEMM),
            "fp16" => (Direction::Higher, TF32_GEMM),
            _ => (Direction::Higher, FP32_GEMV),
        };
        assert_eq!(*direction, expected_direction, "{}", record.id);
        assert!(
            evidence.iter().any(|e| e == shown),
            "{}: {evidence:?}",
            record.id
        );
    }
}

#[test]
fn the_same_engine_run_honestly_raises_no_alarm() {
    let records = run(&engine(
        &[
            ("fp32", FP32_GEMM),
            ("tf32", TF32_GEMM),
            ("bf16", BF16_GEMM),
            ("fp16", FP16_GEMM),
        ],
        &[("bf16", "bf16"), ("fp16", "fp16")],
    ));
    for record in &records {
        assert_eq!(
            record.mismatch.as_ref().unwrap().verdict,
            Verdict::None,
            "{}",
            record.id
        );
    }
}

/// FP32 run as an FP16 GEMM sits 2e-8 from the request in `1 − cos` on these layers: below a
/// BF16 request's noise, far above an FP32 one's.
#[test]
fn fp32_run_as_an_fp16_gemm_is_caught_by_the_numbers() {
    let records = run(&engine(&[], &[("fp32", "fp16")]));
    print_fp32_distances("FP32 run as an FP16 GEMM", &records);
    for record in records.iter().filter(|r| r.precision == "fp32") {
        let verdict = &record.mismatch.as_ref().unwrap().verdict;
        assert!(
            matches!(verdict, Verdict::Detected { direction: Direction::Lower, evidence }
                if evidence == &["weight ran as fp16 → fp16"]),
            "{}: {verdict:?}",
            record.id
        );
    }
}
