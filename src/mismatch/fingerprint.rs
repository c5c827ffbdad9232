//! Numeric fingerprints: quantization leaves a signature in an output. The CPU emulation of the
//! requested policy and of each plausible mismatch (one matmul in a higher precision, or, where
//! the policy keeps it high, one step lower, as an engine runs it: operands and output in the
//! lower format; a softmax, norm or activation the policy keeps above
//! its default format, run in the default) run on the same weights and input; an output that
//! sits clearly closer to a mismatch than to the request says which operation ran in what.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Direction;
use crate::backend::{BackendError, CpuBackend, Executable, MatmulOverride};
use crate::formats::Format;
use crate::measure::compare;
use crate::model::blocks::split_layer;
use crate::model::{Model, Weights};
use crate::precision::kernels::{math_precision, MathPrecision};
use crate::precision::Policy;
use crate::quant::{QuantSpec, Recipe};
use crate::tensor::Tensor;

/// How much closer to a mismatch than to the request an output must be to be called one: a
/// factor of 10 in `1 − cos`, far beyond the accumulation-order noise between two correct
/// implementations (`1 − cos` of 1e-5 or less against the emulation, see BENCHMARKS.md), which
/// is the same for every candidate.
pub const CLOSER_BY: f64 = 10.0;

/// Below this `1 − cos` to the requested emulation, an output is the request as far as any
/// fingerprint can tell: the accumulation-order noise of a correct GPU kernel whose output is
/// rounded to a 16-bit or narrower format (one BF16 ulp in a tenth of the elements is ~1e-6).
pub const NOISE_FLOOR: f64 = 1e-6;

/// The same for a request that computes and stores in FP32 (`fp32`, `tf32`): a correct kernel
/// differs from the emulation by FP32 rounding only (~1e-12), so a BF16 or FP16 output, 1e-6 and
/// 2e-8 away on a linear layer (BENCHMARKS.md), stands out far above it.
pub const FP32_NOISE_FLOOR: f64 = 1e-9;

/// The noise floor of a request whose matmuls run in `requested`.
fn noise_floor(requested: MathPrecision, output: Format) -> f64 {
    match (requested, output) {
        (MathPrecision::Fp32 | MathPrecision::Tf32, Format::Fp32) => FP32_NOISE_FLOOR,
        _ => NOISE_FLOOR,
    }
}

/// One alternative the output was compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alternative {
    /// The operation: a matmul (named by its weight), a group of them, or an operation class
    /// (`softmax`, `norm`, `activation`).
    pub operation: String,
    /// The format it was emulated in (`fp32`, `bf16/cast`, `fp8_e4m3/per_tensor`).
    pub spec: String,
    /// Above or below what the policy asks for.
    pub direction: Direction,
    /// Other formats of the same operation whose emulations sit as close (within
    /// [`ALIKE_WITHIN`]): readings the numbers cannot tell apart, for the kernel trace or the
    /// engine's layer report to decide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alike: Vec<String>,
    /// `1 − cos` of the output to this emulation (NaN when the output holds NaN).
    #[serde(with = "crate::nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub distance: f64,
}

/// The fingerprint of one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FingerprintEvidence {
    /// `1 − cos` of the output to the emulation of the requested policy.
    #[serde(with = "crate::nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub requested_distance: f64,
    /// Every alternative, nearest first.
    pub alternatives: Vec<Alternative>,
    /// The alternative the output matches, if it is clearly closer than the request.
    pub detected: Option<Alternative>,
    /// Why the alternatives were not emulated, when they were not ([`fingerprint_where_undecided`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_evaluated: Option<String>,
}

/// The alternatives for a policy's matmuls, each as an engine would run it: a quantized matmul
/// one step up in every carrier (BF16, FP16, FP32), its output as the policy says; a carrier one
/// step down, with BF16 operands into the policy's output and, as a BF16 or FP16 GEMM writes it,
/// with operands and output in the lower format (FP32, TF32 → BF16, FP16; BF16, FP16 → FP8).
fn alternatives(policy: &Policy) -> Vec<MatmulOverride> {
    let requested = policy.matmul.weights;
    let fp8 = QuantSpec {
        format: Format::Fp8E4m3,
        recipe: Recipe::PerTensor,
    };
    let lower = |format: Format| MatmulOverride {
        operands: QuantSpec::cast(format),
        output: Some(format),
    };
    match (requested.recipe, requested.format) {
        (Recipe::Cast, Format::Fp32 | Format::Tf32) => vec![
            MatmulOverride::operands(QuantSpec::cast(Format::Bf16)),
            lower(Format::Bf16),
            lower(Format::Fp16),
        ],
        (Recipe::Cast, _) => vec![MatmulOverride::operands(fp8)],
        _ => [Format::Bf16, Format::Fp16, Format::Fp32]
            .map(|format| MatmulOverride::operands(QuantSpec::cast(format)))
            .to_vec(),
    }
}

/// How an alternative is named in evidence: its operands' recipe, and its output where that
/// changes too (`bf16/cast`, `bf16/cast → bf16`).
fn describe(alternative: MatmulOverride) -> String {
    match alternative.output {
        Some(output) => format!("{} → {output}", alternative.operands),
        None => alternative.operands.to_string(),
    }
}

/// Alternatives whose distances differ by less than this fraction are readings the numbers
/// cannot tell apart (FP16 and BF16 operands of BF16 weights, say).
pub const ALIKE_WITHIN: f64 = 0.01;

/// Matmuls that one alternative overrides together, named for the report: one matmul at a time
/// (a stack: one layer's matmuls at a time, or it would take hundreds of emulations), then all of
/// them, since a fallback often takes every GEMM of a block.
fn matmul_groups(matmuls: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for name in matmuls {
        let layer = split_layer(name).map(|(index, _)| format!("layers.{index}"));
        match (layer, groups.last_mut()) {
            (Some(layer), Some((last, members))) if *last == layer => {
                members.push(name.to_string())
            }
            (Some(layer), _) => groups.push((layer, vec![name.to_string()])),
            (None, _) => groups.push((name.to_string(), vec![name.to_string()])),
        }
    }
    if matmuls.len() > 1 {
        let all = matmuls.iter().map(|m| m.to_string()).collect();
        groups.push(("every matmul".into(), all));
    }
    groups
}

/// The operation classes a policy keeps above its default format, and which the block has: each
/// as the policy with that class lowered to the default (a softmax or norm fused into an FP16
/// node, TensorRT #3889).
fn lowered_classes(model: &Model, policy: &Policy) -> Vec<(&'static str, Policy)> {
    type Field = fn(&mut Policy) -> &mut Format;
    const CLASSES: [(&str, &str, Field); 3] = [
        ("softmax", "attention", |p| &mut p.softmax),
        ("norm", "norm", |p| &mut p.norm),
        ("activation", "activation", |p| &mut p.activation),
    ];
    let graph = model.block.graph();
    let default = math_precision(policy.default).bits();
    CLASSES
        .iter()
        .filter(|(_, op_class, _)| graph.nodes.iter().any(|n| n.op.class() == *op_class))
        .filter_map(|&(name, _, field)| {
            let mut lowered = policy.clone();
            let format = field(&mut lowered);
            if math_precision(*format).bits() <= default {
                return None;
            }
            *format = policy.default;
            Some((name, lowered))
        })
        .collect()
}

/// A policy with some of its matmuls overridden: one alternative to emulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The policy (the request's, or one with an operation class lowered).
    pub policy: Policy,
    /// The matmuls run otherwise, by name.
    pub overrides: Vec<(String, MatmulOverride)>,
}

/// The CPU emulations of the candidates, in their order, on the weights and input the output
/// came from: what the alternatives are compared through. All at once, so that an implementation
/// can work on them together (the runner reads stored ones from its reference store in
/// parallel).
pub type Emulate<'a> = &'a mut dyn FnMut(&[Candidate]) -> Result<Vec<Tensor>, BackendError>;

/// [`Emulate`] one candidate at a time with `emulate_one`.
pub fn one_by_one(
    candidates: &[Candidate],
    mut emulate_one: impl FnMut(&Candidate) -> Result<Tensor, BackendError>,
) -> Result<Vec<Tensor>, BackendError> {
    candidates.iter().map(&mut emulate_one).collect()
}

/// Compares `output` of `model` run as `policy` with `requested`, the CPU emulation of the
/// request (which the caller has already computed for its agreement check), and with the
/// emulation of every alternative, on the same `weights` and `input`.
pub fn fingerprint(
    model: &Model,
    weights: &Weights,
    input: &Tensor,
    policy: &Policy,
    output: &[f32],
    requested: &Tensor,
) -> Result<FingerprintEvidence, BackendError> {
    let cpu = CpuBackend::keeping_weights();
    fingerprint_with(model, policy, output, requested, &mut |candidates| {
        one_by_one(candidates, |c| {
            cpu.prepare_with_overrides(model, weights, &c.policy, &c.overrides)
                .run(input)
        })
    })
}

/// [`fingerprint`], each alternative emulated by `emulate`.
pub fn fingerprint_with(
    model: &Model,
    policy: &Policy,
    output: &[f32],
    requested: &Tensor,
    emulate: Emulate<'_>,
) -> Result<FingerprintEvidence, BackendError> {
    let requested_distance = distance(output, requested)?;
    against_alternatives(model, policy, output, requested_distance, emulate)
}

/// `1 − cos` of `output` to `emulation`.
fn distance(output: &[f32], emulation: &Tensor) -> Result<f64, BackendError> {
    compare(output, &emulation.data)
        .map(|a| 1.0 - a.cos)
        .map_err(|e| BackendError::Failed(format!("fingerprint: {e}")))
}

/// The fingerprint of `output`, `requested_distance` from the request's emulation, against
/// every alternative that `emulate` runs.
fn against_alternatives(
    model: &Model,
    policy: &Policy,
    output: &[f32],
    requested_distance: f64,
    emulate: Emulate<'_>,
) -> Result<FingerprintEvidence, BackendError> {
    let requested = math_precision(policy.matmul.weights.format);
    // What each candidate is called in the evidence, and the candidates, in one order.
    let mut named: Vec<(String, String, Direction)> = Vec::new();
    let mut candidates = Vec::new();
    let groups = matmul_groups(&model.block.graph().matmuls().collect::<Vec<_>>());
    for (operation, members) in &groups {
        for alternative in alternatives(policy) {
            let direction = if math_precision(alternative.operands.format) > requested {
                Direction::Higher
            } else {
                Direction::Lower
            };
            named.push((operation.clone(), describe(alternative), direction));
            candidates.push(Candidate {
                policy: policy.clone(),
                overrides: members.iter().map(|m| (m.clone(), alternative)).collect(),
            });
        }
    }
    for (operation, lowered) in lowered_classes(model, policy) {
        named.push((
            operation.to_owned(),
            lowered.default.to_string(),
            Direction::Lower,
        ));
        candidates.push(Candidate {
            policy: lowered,
            overrides: Vec::new(),
        });
    }
    let emulations = emulate(&candidates)?;
    assert_eq!(
        emulations.len(),
        candidates.len(),
        "one emulation per candidate"
    );
    let distances: Vec<f64> = emulations
        .par_iter()
        .map(|emulation| distance(output, emulation))
        .collect::<Result<_, _>>()?;
    let mut compared: Vec<Alternative> = named
        .into_iter()
        .zip(distances)
        .map(|((operation, spec, direction), distance)| Alternative {
            operation,
            spec,
            direction,
            alike: Vec::new(),
            distance,
        })
        .collect();
    compared.sort_by(|a, b| a.distance.total_cmp(&b.distance));
    let detected = match compared.split_first_mut() {
        Some((best, others))
            if requested_distance > noise_floor(requested, policy.output)
                && best.distance * CLOSER_BY < requested_distance =>
        {
            best.alike = others
                .iter()
                .filter(|other| {
                    other.operation == best.operation
                        && other.spec != best.spec
                        && other.distance - best.distance <= ALIKE_WITHIN * best.distance.abs()
                })
                .map(|other| other.spec.clone())
                .collect();
            Some(best.clone())
        }
        _ => None,
    };
    Ok(FingerprintEvidence {
        requested_distance,
        alternatives: compared,
        detected,
        not_evaluated: None,
    })
}

/// [`fingerprint`], with its alternatives emulated only where they can decide something. An
/// output within the noise floor of the request can match no alternative (a detection needs the
/// output above the floor); when, besides, the kernel trace has classified every GEMM as the
/// policy asks (`trace_agrees`), nothing is left for the alternatives to say, and each of them is
/// a whole CPU emulation. Without a trace, or with one that shows a mismatch or kernels it cannot
/// classify, they are emulated as ever, so that the evidence says which operation ran in what.
pub fn fingerprint_where_undecided(
    model: &Model,
    policy: &Policy,
    output: &[f32],
    requested: &Tensor,
    trace_agrees: bool,
    emulate: Emulate<'_>,
) -> Result<FingerprintEvidence, BackendError> {
    let requested_distance = distance(output, requested)?;
    let floor = noise_floor(math_precision(policy.matmul.weights.format), policy.output);
    if trace_agrees && requested_distance <= floor {
        return Ok(FingerprintEvidence {
            requested_distance,
            alternatives: Vec::new(),
            detected: None,
            not_evaluated: Some(format!(
                "the output is within the noise floor ({floor:e}) of the request and the kernel \
                 trace shows every GEMM in the requested precision"
            )),
        });
    }
    against_alternatives(model, policy, output, requested_distance, emulate)
}
