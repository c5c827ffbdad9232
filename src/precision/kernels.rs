//! Kernel traces as evidence: which precision each GEMM kernel's math ran in, read from the
//! naming conventions of the libraries that launch them.
//!
//! The rules are data ([`RULES`]); the first that matches a name decides, and a name no rule
//! matches is `unclassified`, never guessed. Each rule says where its convention comes from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::formats::Format;
use crate::measure::KernelLaunches;
use crate::precision::Policy;

/// The precision a GEMM's multiplications ran in. Each is its own precision (FP16 is not TF32,
/// though both keep 11 significant bits: other ranges, other kernels), and they are ordered from
/// the lowest to the highest, as "above" and "below" a request compare them: by significant bits,
/// and of FP16 and TF32, TF32 (FP32 data, FP32's range) is the higher.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MathPrecision {
    /// FP4 operands.
    Fp4,
    /// FP8 operands (E4M3 or E5M2).
    Fp8,
    /// INT8 operands.
    Int8,
    /// BF16 operands.
    Bf16,
    /// FP16 operands.
    Fp16,
    /// TF32 tensor-core math on FP32 data.
    Tf32,
    /// FP32 (SIMT FMA) math.
    Fp32,
}

impl MathPrecision {
    /// Significant bits of an operand.
    pub fn bits(self) -> u32 {
        match self {
            MathPrecision::Fp4 => 2,
            MathPrecision::Fp8 => 4,
            MathPrecision::Int8 => 7,
            MathPrecision::Bf16 => 8,
            MathPrecision::Fp16 | MathPrecision::Tf32 => 11,
            MathPrecision::Fp32 => 24,
        }
    }
}

/// What a kernel is, as far as precision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "precision")]
pub enum KernelClass {
    /// A GEMM whose math ran in this precision.
    Gemm(MathPrecision),
    /// A fused attention kernel (both of attention's products and its softmax), with the
    /// precision its name proves, if it proves one.
    Attention(Option<MathPrecision>),
    /// Not a GEMM: casts, reductions, elementwise work, copies.
    Auxiliary,
    /// No rule knows this name.
    Unclassified,
}

/// How a rule matches a kernel name.
enum Matcher {
    /// cuBLAS 13's Hopper GEMMs, `nvjet_sm90_<types>_...`: the type letters start with these
    /// (one letter per operand: `q` E4M3, `r` E5M2, `t` BF16, `h` FP16, `s` FP32).
    NvjetTypes(&'static str),
    /// The name contains every one of these.
    Contains(&'static [&'static str]),
    /// The name is exactly this (precheck's own kernels).
    Exactly(&'static str),
}

impl Matcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::NvjetTypes(prefix) => name
                .strip_prefix("nvjet_sm")
                .and_then(|rest| rest.split('_').nth(1))
                .is_some_and(|types| types.starts_with(prefix)),
            Matcher::Contains(parts) => parts.iter().all(|p| name.contains(p)),
            Matcher::Exactly(exact) => name == *exact,
        }
    }
}

use KernelClass::{Auxiliary, Gemm};
use MathPrecision::{Bf16, Fp16, Fp32, Fp4, Fp8, Int8, Tf32};

const FIXTURE: &str = "cuBLAS 13.1 on H100, tests/fixtures/kernels/h100_mlp_kernels.json";
const H200: &str = "cuBLAS 13.1 on H200, precheck's own CUPTI traces (BENCHMARKS.md)";
const LEGACY: &str = "cuBLAS 11-12 kernel names as nsys and torch.profiler show them \
                      (e.g. ampere_sgemm_128x64_tn, ampere_h16816gemm_..., ampere_bf16_s16816gemm_bf16_...)";
const OWN: &str = "precheck's own kernels, src/backend/cuda/kernels.cu";
const H200_DECODE: &str = "precheck's own CUPTI trace of a one-token linear layer on H200 \
                           (cuBLAS 13.1; CUPTI gives the mangled name), \
                           tests/fixtures/kernels/h200_precheck_linear_kernels.json";
const TORCH_H200: &str = "PyTorch 2.11 (CUDA 13.0, cuBLAS 13.1) on H200, \
                          tests/fixtures/kernels/h200_torch_kernels.json (scripts/record_kernel_names.py)";
const CUTLASS3: &str =
    "CUTLASS 3 generated kernel names, cutlass3x_sm90_tensorop_gemm_<a>_<b>_..., \
                        python/cutlass_library/generator.py";

/// The rules, in order: the first match decides (so `bf16` is tested before `f16`).
static RULES: &[(Matcher, KernelClass, &str)] = &[
    (Matcher::NvjetTypes("qq"), Gemm(Fp8), FIXTURE),
    (Matcher::NvjetTypes("qr"), Gemm(Fp8), FIXTURE),
    (Matcher::NvjetTypes("rq"), Gemm(Fp8), FIXTURE),
    (Matcher::NvjetTypes("t"), Gemm(Bf16), FIXTURE),
    (Matcher::NvjetTypes("h"), Gemm(Fp16), FIXTURE),
    (
        Matcher::Contains(&["xmma_gemm", "tf32f32"]),
        Gemm(Tf32),
        FIXTURE,
    ),
    (
        Matcher::Contains(&["xmma_gemm", "f32f32_f32f32", "ffma"]),
        Gemm(Fp32),
        FIXTURE,
    ),
    (Matcher::Contains(&["xmma_gemm", "i8i32"]), Gemm(Int8), H200),
    (
        Matcher::Contains(&["tensorop", "gemm_s8"]),
        Gemm(Int8),
        FIXTURE,
    ),
    (
        Matcher::Contains(&["cutlass3x", "gemm", "e2m1"]),
        Gemm(Fp4),
        CUTLASS3,
    ),
    (
        Matcher::Contains(&["cutlass3x", "gemm", "e4m3"]),
        Gemm(Fp8),
        CUTLASS3,
    ),
    (
        Matcher::Contains(&["cutlass3x", "gemm", "e5m2"]),
        Gemm(Fp8),
        CUTLASS3,
    ),
    (
        Matcher::Contains(&["cutlass3x", "gemm", "bf16"]),
        Gemm(Bf16),
        CUTLASS3,
    ),
    (
        Matcher::Contains(&["cutlass3x", "gemm", "f16"]),
        Gemm(Fp16),
        CUTLASS3,
    ),
    // cuBLAS GEMVs (one row: decode shapes), typed by their template arguments, as
    // torch.profiler shows them and as CUPTI does (Itanium-mangled: `Iiiffff` is
    // `<int, int, float, float, …`).
    (
        Matcher::Contains(&["gemv", "<int, int, float, float"]),
        Gemm(Fp32),
        TORCH_H200,
    ),
    (
        Matcher::Contains(&["gemv", "Iiiffff"]),
        Gemm(Fp32),
        H200_DECODE,
    ),
    (
        Matcher::Contains(&["gemv", "__nv_bfloat16"]),
        Gemm(Bf16),
        LEGACY,
    ),
    (Matcher::Contains(&["gemv", "__half"]), Gemm(Fp16), LEGACY),
    (
        Matcher::Contains(&["xmma_gemm", "bf16bf16"]),
        Gemm(Bf16),
        LEGACY,
    ),
    (
        Matcher::Contains(&["xmma_gemm", "f16f16_f16f16"]),
        Gemm(Fp16),
        LEGACY,
    ),
    // CUTLASS 2's TF32 tensor-op GEMM on FP32 data: TF32 shows only as the MMA shape.
    (
        Matcher::Contains(&["tensorop_s1688gemm"]),
        Gemm(Tf32),
        TORCH_H200,
    ),
    // Fused attention: FlashAttention (PyTorch's copy) and CUTLASS memory-efficient attention
    // name their element type; cuDNN's SDPA writes `f16` for both BF16 and FP16, so it proves no
    // precision and is never guessed.
    (
        Matcher::Contains(&["flash_fwd", "cutlass::bfloat16_t"]),
        KernelClass::Attention(Some(Bf16)),
        TORCH_H200,
    ),
    (
        Matcher::Contains(&["flash_fwd", "cutlass::half_t"]),
        KernelClass::Attention(Some(Fp16)),
        TORCH_H200,
    ),
    (
        Matcher::Contains(&["fmha_cutlassF", "cutlass::bfloat16_t"]),
        KernelClass::Attention(Some(Bf16)),
        TORCH_H200,
    ),
    (
        Matcher::Contains(&["fmha_cutlassF", "cutlass::half_t"]),
        KernelClass::Attention(Some(Fp16)),
        TORCH_H200,
    ),
    (
        Matcher::Contains(&["cudnn_generated_fort_native_sdpa"]),
        KernelClass::Attention(None),
        TORCH_H200,
    ),
    (Matcher::Contains(&["sgemm"]), Gemm(Fp32), LEGACY),
    (Matcher::Contains(&["fp16_s16816gemm"]), Gemm(Fp16), LEGACY),
    (Matcher::Contains(&["bf16_s16816gemm"]), Gemm(Bf16), LEGACY),
    (Matcher::Contains(&["h16816gemm"]), Gemm(Fp16), LEGACY),
    (Matcher::Contains(&["h1688gemm"]), Gemm(Fp16), LEGACY),
    (Matcher::Contains(&["splitKreduce_kernel"]), Auxiliary, H200),
    (
        Matcher::Contains(&["cublasLt::epilogue"]),
        Auxiliary,
        TORCH_H200,
    ),
    (Matcher::Contains(&["scal_kernel"]), Auxiliary, TORCH_H200),
    (
        Matcher::Contains(&["softmax_warp_forward"]),
        Auxiliary,
        TORCH_H200,
    ),
    (Matcher::Contains(&["at::native::"]), Auxiliary, FIXTURE),
    (Matcher::Contains(&["Memset"]), Auxiliary, FIXTURE),
    (Matcher::Contains(&["Memcpy"]), Auxiliary, FIXTURE),
    (Matcher::Exactly("convert"), Auxiliary, OWN),
    (Matcher::Exactly("round_tf32"), Auxiliary, OWN),
    (Matcher::Exactly("amax"), Auxiliary, OWN),
    (Matcher::Exactly("quantize_fp8"), Auxiliary, OWN),
    (Matcher::Exactly("quantize_fp8_current"), Auxiliary, OWN),
    (Matcher::Exactly("quantize_rows"), Auxiliary, OWN),
    (Matcher::Exactly("gated_act"), Auxiliary, OWN),
    (Matcher::Exactly("rescale"), Auxiliary, OWN),
    (Matcher::Exactly("mx_dequant"), Auxiliary, OWN),
    (Matcher::Exactly("nvfp4_dequant"), Auxiliary, OWN),
    (Matcher::Exactly("amax_history_push"), Auxiliary, OWN),
    (Matcher::Exactly("gated_act_scaled"), Auxiliary, OWN),
    (Matcher::Exactly("gated_act_rows"), Auxiliary, OWN),
    (Matcher::Exactly("gated_act_fp8"), Auxiliary, OWN),
    (Matcher::Exactly("rescale_rotary"), Auxiliary, OWN),
    (Matcher::Exactly("rotary"), Auxiliary, OWN),
    (Matcher::Exactly("softmax_rows"), Auxiliary, OWN),
    (Matcher::Exactly("activation"), Auxiliary, OWN),
    (Matcher::Exactly("add_norm"), Auxiliary, OWN),
];

/// The class of the kernel called `name`.
pub fn classify(name: &str) -> KernelClass {
    RULES
        .iter()
        .find(|(matcher, _, _)| matcher.matches(name))
        .map_or(KernelClass::Unclassified, |(_, class, _)| *class)
}

/// What a variant's kernel trace shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KernelEvidence {
    /// The precision the policy's GEMMs should run in.
    pub expected: MathPrecision,
    /// The precision of attention's own products (the policy's default format), where the block
    /// has attention: GEMMs in it are expected too, as long as some GEMM ran in `expected` (if
    /// none did, the linears ran in the wrong precision and these say which).
    #[serde(default)]
    pub attention: Option<MathPrecision>,
    /// GEMM time per precision, microseconds.
    pub gemm_us: BTreeMap<MathPrecision, f64>,
    /// GEMM kernels whose math ran above the expected precision.
    pub above: Vec<String>,
    /// GEMM kernels whose math ran below it.
    pub below: Vec<String>,
    /// Kernels no rule knows.
    pub unclassified: Vec<String>,
    /// Fused attention kernels whose names prove no precision (cuDNN's SDPA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unproven: Vec<String>,
}

/// Reads `kernels` against the precision the linears' GEMMs should run in (`expected`) and,
/// for a block with attention, the precision of attention's own products (`attention`).
pub fn evidence(
    kernels: &[KernelLaunches],
    expected: MathPrecision,
    attention: Option<MathPrecision>,
) -> KernelEvidence {
    let mut found = KernelEvidence {
        expected,
        attention,
        gemm_us: BTreeMap::new(),
        above: Vec::new(),
        below: Vec::new(),
        unclassified: Vec::new(),
        unproven: Vec::new(),
    };
    let mut attention_gemms = Vec::new();
    for kernel in kernels {
        match classify(&kernel.name) {
            Gemm(precision) => {
                *found.gemm_us.entry(precision).or_default() += kernel.total_us;
                if Some(precision) == attention {
                    attention_gemms.push((kernel.name.clone(), precision));
                } else {
                    found.judge(kernel.name.clone(), precision, expected);
                }
            }
            // Attention's own products run in the default format where the block has
            // attention; elsewhere a fused attention kernel is judged like any GEMM.
            KernelClass::Attention(Some(precision)) => {
                let against = attention.unwrap_or(expected);
                found.judge(kernel.name.clone(), precision, against);
            }
            KernelClass::Attention(None) => found.unproven.push(kernel.name.clone()),
            Auxiliary => {}
            KernelClass::Unclassified => found.unclassified.push(kernel.name.clone()),
        }
    }
    if !found.gemm_us.contains_key(&expected) {
        for (name, precision) in attention_gemms {
            found.judge(name, precision, expected);
        }
    }
    found
}

impl KernelEvidence {
    /// Files kernel `name`, whose math ran in `precision`, above or below `expected`.
    fn judge(&mut self, name: String, precision: MathPrecision, expected: MathPrecision) {
        if precision > expected {
            self.above.push(name);
        } else if precision < expected {
            self.below.push(name);
        }
    }
}

/// The math precision a format's matmul runs in.
pub fn math_precision(format: Format) -> MathPrecision {
    match format {
        Format::Fp32 => MathPrecision::Fp32,
        Format::Tf32 => MathPrecision::Tf32,
        Format::Bf16 => MathPrecision::Bf16,
        Format::Fp16 => MathPrecision::Fp16,
        Format::Fp8E4m3 | Format::Fp8E5m2 | Format::Fp6E2m3 | Format::Fp6E3m2 => MathPrecision::Fp8,
        Format::Fp4E2m1 => MathPrecision::Fp4,
        Format::Int8 | Format::Int4 | Format::Nf4 => MathPrecision::Int8,
    }
}

/// The precision a variant's GEMMs should run in: the policy's matmul operands; weight-only
/// formats multiply in the activations' format; an emulated variant (block formats on a GPU
/// without their kernels) multiplies in BF16, as its record says.
pub fn expected_gemm_precision(policy: &Policy, emulated: bool) -> MathPrecision {
    let matmul = policy.matmul;
    if emulated {
        MathPrecision::Bf16
    } else if matmul.weights.format.is_carrier()
        || matches!(matmul.weights.format, Format::Int4 | Format::Nf4)
    {
        math_precision(matmul.activations.format)
    } else {
        math_precision(matmul.weights.format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel of the shared H100 fixture, by the precision its run was asked for.
    fn fixture() -> BTreeMap<String, BTreeMap<String, u32>> {
        let text = std::fs::read_to_string("tests/fixtures/kernels/h100_mlp_kernels.json").unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        serde_json::from_value(json["kernels"].clone()).unwrap()
    }

    #[test]
    fn the_h100_fixture_is_classified_as_its_runs_asked() {
        let expected = [
            ("bf16", Bf16),
            ("fp16", Fp16),
            ("fp32", Fp32),
            ("tf32", Tf32),
            ("fp8_e4m3", Fp8),
            ("fp8_e5m2xe4m3", Fp8),
            ("int8", Int8),
        ];
        let runs = fixture();
        for (run, precision) in expected {
            let kernels = &runs[run];
            let mut gemms = 0;
            for name in kernels.keys() {
                match classify(name) {
                    Gemm(found) => {
                        assert_eq!(found, precision, "{run}: {name}");
                        gemms += 1;
                    }
                    Auxiliary => {}
                    other => panic!("{run}: {name} is {other:?}"),
                }
            }
            assert!(gemms > 0, "{run}: no GEMM found");
        }
    }

    /// Every kernel PyTorch launched on an H200 for matmuls at m = 1, 16 and 970, linear layers
    /// with a bias, FP8 `_scaled_mm` and each SDPA backend, classified as what ran: at m = 1
    /// cuBLAS runs an FP32 GEMV even with TF32 allowed, and SDPA's math backend computes BF16 and
    /// FP16 attention in FP32.
    #[test]
    fn the_h200_pytorch_fixture_is_classified_as_what_ran() {
        let text =
            std::fs::read_to_string("tests/fixtures/kernels/h200_torch_kernels.json").unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let workloads: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
            serde_json::from_value(json["kernels"].clone()).unwrap();
        let ran = |workload: &str| -> KernelClass {
            let precision = |name: &str| match name {
                "fp32" => Fp32,
                "tf32" => Tf32,
                "bf16" => Bf16,
                "fp16" => Fp16,
                _ => Fp8,
            };
            let parts: Vec<&str> = workload.split('_').collect();
            match parts[..] {
                ["sdpa", "cudnn", _, _] => KernelClass::Attention(None),
                ["sdpa", "math", _] => Gemm(Fp32),
                ["sdpa", _, _, dtype] => KernelClass::Attention(Some(precision(dtype))),
                [.., "tf32", "m1"] => Gemm(Fp32),
                [.., dtype, _] => Gemm(precision(dtype)),
                _ => panic!("workload {workload}"),
            }
        };
        assert_eq!(workloads.len(), 34);
        for (workload, kernels) in &workloads {
            let expected = ran(workload);
            let mut found = 0;
            for name in kernels.keys() {
                match classify(name) {
                    Auxiliary => {}
                    KernelClass::Unclassified => panic!("{workload}: unclassified {name}"),
                    class => {
                        assert_eq!(class, expected, "{workload}: {name}");
                        found += 1;
                    }
                }
            }
            assert!(found > 0, "{workload}: nothing but auxiliary kernels");
        }
    }

    /// Every kernel precheck's own CUDA backend launched (through CUPTI, mangled names and all)
    /// for a linear layer at 1 and 256 tokens in five precisions on an H200: classified as what
    /// ran, which at one token in TF32 is cuBLAS's FP32 GEMV.
    #[test]
    fn the_h200_precheck_fixture_is_classified_as_what_ran() {
        let text =
            std::fs::read_to_string("tests/fixtures/kernels/h200_precheck_linear_kernels.json")
                .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let runs: BTreeMap<String, BTreeMap<String, u32>> =
            serde_json::from_value(json["kernels"].clone()).unwrap();
        assert_eq!(runs.len(), 10);
        for (id, kernels) in &runs {
            let expected = match id.split('/').nth(1).unwrap() {
                "fp32" => Fp32,
                "tf32" if id.starts_with("one_token") => Fp32,
                "tf32" => Tf32,
                "bf16" => Bf16,
                "fp16" => Fp16,
                _ => Fp8,
            };
            let gemms: Vec<KernelClass> = kernels
                .keys()
                .map(|name| classify(name))
                .filter(|class| *class != Auxiliary)
                .collect();
            assert_eq!(gemms, [Gemm(expected)], "{id}: {kernels:?}");
        }
    }

    #[test]
    fn an_fp16_kernel_is_not_tf32_and_neither_is_fp32() {
        let launch = |name: &str| KernelLaunches {
            name: name.into(),
            launches: 1,
            total_us: 1.0,
        };
        let fp16 = launch("nvjet_sm90_hsh_128x248_64x4_2x1_v_bz_coopA_TNT");
        let tf32 = launch("sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize64x64x32_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas");
        let gemv = launch("void gemv2T_kernel_val<int, int, float, float, float, float, 128, 16, 4, 4, false, false, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float>, float> >(cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float>, float>, float, float)");
        // A TF32 variant that ran an FP16 kernel ran lower; an FP16 variant that ran TF32, higher.
        assert_eq!(
            evidence(std::slice::from_ref(&fp16), Tf32, None)
                .below
                .len(),
            1
        );
        assert_eq!(
            evidence(std::slice::from_ref(&tf32), Fp16, None)
                .above
                .len(),
            1
        );
        // A BF16 variant whose one-token GEMM ran as cuBLAS's FP32 GEMV ran higher, and a TF32
        // one too: cuBLAS runs its one-token GEMMs in FP32 (the name as CUPTI gives it).
        assert_eq!(evidence(&[gemv], Bf16, None).above.len(), 1);
        let mangled = launch("_Z17gemv2T_kernel_valIiiffffLi128ELi16ELi4ELi4ELb0ELb0E18cublasGemvParamsExIi30cublasGemvTensorStridedBatchedIKfES3_S1_IfEfEEvT11_T4_S7_");
        assert_eq!(evidence(&[mangled], Tf32, None).above.len(), 1);
    }

    #[test]
    fn each_rule_has_a_name_it_classifies() {
        let names = [
            (
                "nvjet_sm90_qqtst_128x144_128x6_2x1_v_bz_coopA_algo2_TNT",
                Gemm(Fp8),
            ),
            (
                "nvjet_sm90_qrtst_128x144_128x6_2x1_v_bz_coopA_algo2_TNT",
                Gemm(Fp8),
            ),
            ("nvjet_sm90_rqtst_128x144", Gemm(Fp8)),
            ("nvjet_sm90_tst_128x248_64x4_2x1_v_bz_coopA_TNT", Gemm(Bf16)),
            ("nvjet_sm90_tss_128x248_64x4_2x1_v_bz_coopA_TNT", Gemm(Bf16)),
            (
                "nvjet_sm90_hsh_128x248_64x4_2x1_v_bz_coopA_splitK_TNT",
                Gemm(Fp16),
            ),
            (
                "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32",
                Gemm(Tf32),
            ),
            (
                "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize64x256x8_stage3_ffma",
                Gemm(Fp32),
            ),
            (
                "sm90_xmma_gemm_i8i32_i8i32_i32_tn_n_tilesize128x128x128",
                Gemm(Int8),
            ),
            (
                "cutlass_80_tensorop_i16832gemm_s8_128x64_128x3_tn_align16",
                Gemm(Int8),
            ),
            (
                "cutlass3x_sm100_bstensorop_s16864gemm_block_scaled_e2m1_e2m1_f32",
                Gemm(Fp4),
            ),
            (
                "cutlass3x_sm90_tensorop_gemm_e4m3_e4m3_f32_bf16_bf16_128x128x128",
                Gemm(Fp8),
            ),
            ("cutlass3x_sm90_tensorop_gemm_e5m2_e4m3_f32_bf16", Gemm(Fp8)),
            (
                "cutlass3x_sm90_tensorop_gemm_bf16_bf16_f32_bf16_bf16",
                Gemm(Bf16),
            ),
            (
                "cutlass3x_sm90_tensorop_gemm_f16_f16_f32_f16_f16",
                Gemm(Fp16),
            ),
            ("ampere_sgemm_128x64_tn", Gemm(Fp32)),
            (
                "ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_tn",
                Gemm(Bf16),
            ),
            ("ampere_h16816gemm_128x128_ldg8_stages_64x3_tn", Gemm(Fp16)),
            ("turing_h1688gemm_128x128_ldg8_tn", Gemm(Fp16)),
            (
                "_ZN8cublasLt19splitKreduce_kernelILi32ELi16Eif6__half",
                Auxiliary,
            ),
            ("Memset (Device)", Auxiliary),
            ("Memcpy HtoD (Pageable -> Device)", Auxiliary),
            ("gated_act", Auxiliary),
            ("quantize_fp8", Auxiliary),
        ];
        for (name, class) in names {
            assert_eq!(classify(name), class, "{name}");
        }
    }

    #[test]
    fn unknown_names_are_unclassified() {
        for name in [
            "my_custom_gemm_kernel",
            "nvjet_sm90_zzz_128",
            "flash_fwd_kernel",
        ] {
            assert_eq!(classify(name), KernelClass::Unclassified, "{name}");
        }
    }

    fn launch(name: &str, us: f64) -> KernelLaunches {
        KernelLaunches {
            name: name.into(),
            launches: 1,
            total_us: us,
        }
    }

    #[test]
    fn an_fp8_variant_with_a_bf16_or_fp32_gemm_is_flagged_above() {
        let kernels = [
            launch("quantize_fp8", 5.0),
            launch(
                "nvjet_sm90_qqtst_128x144_128x6_2x1_v_bz_coopA_algo2_TNT",
                100.0,
            ),
            launch("nvjet_sm90_hsh_128x128_64x6_1x2_h_bz_TNT", 80.0),
            launch("ampere_sgemm_128x64_tn", 20.0),
            launch("mystery", 1.0),
        ];
        let found = evidence(&kernels, Fp8, None);
        assert_eq!(found.above.len(), 2);
        assert!(found.below.is_empty());
        assert_eq!(found.unclassified, ["mystery"]);
        assert_eq!(found.gemm_us[&Fp8], 100.0);
        assert_eq!(found.gemm_us[&Fp16], 80.0);
        let honest = evidence(&kernels[..2], Fp8, None);
        assert!(honest.above.is_empty() && honest.below.is_empty());
    }

    #[test]
    fn attention_products_in_the_default_format_are_expected_only_beside_the_linears() {
        // An FP8 attention on the H100: FP8 projections, BF16 scores and p·v (cutlass, sm80).
        let projection = launch(
            "nvjet_sm90_qqtst_128x128_128x6_1x2_h_bz_coopA_algo2_TNT",
            20.0,
        );
        let scores = launch(
            "_ZN7cutlass7Kernel2I63cutlass_80_tensorop_bf16_s16816gemm_bf16_256x128_64x3_tn_align8EEvNT_6ParamsE",
            25.0,
        );
        let honest = evidence(&[projection.clone(), scores.clone()], Fp8, Some(Bf16));
        assert!(honest.above.is_empty() && honest.below.is_empty());
        // The same trace read as a block without attention: the BF16 GEMM is a finding.
        let no_attention = evidence(&[projection, scores.clone()], Fp8, None);
        assert_eq!(no_attention.above.len(), 1);
        // Projections that fell back to BF16 as well: no FP8 GEMM at all, every BF16 one is above.
        let projection_bf16 = launch("nvjet_sm90_tst_128x168_64x5_4x2_h_bz_TNT", 18.0);
        let fallback = evidence(&[projection_bf16, scores], Fp8, Some(Bf16));
        assert_eq!(fallback.above.len(), 2);
    }
}
