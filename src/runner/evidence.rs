//! The precision evidence of one measurement as one verdict: the fingerprint against the CPU
//! emulation, the kernel trace and the engine's layer report.

use super::reference::BlockContext;
use crate::backend::{CpuBackend, Executable};
use crate::measure::KernelLaunches;
use crate::mismatch::fingerprint::{Candidate, FingerprintEvidence};
use crate::mismatch::{self, Mismatch};
use crate::model::Block;
use crate::precision::kernels::{
    evidence, expected_gemm_precision, math_precision, KernelEvidence,
};
use crate::precision::Policy;
use crate::tensor::Tensor;
use crate::trtexec::layers::EngineLayer;

/// What a backend reported of what ran, where it can.
pub(super) struct Traces<'a> {
    pub(super) kernels: Option<&'a [KernelLaunches]>,
    pub(super) layers: Option<&'a [EngineLayer]>,
}

/// The fingerprint of `output` against its CPU `emulation` (when there is one) and the readings
/// of the kernel trace and the engine's layer report, as one verdict; `trace_agrees` is
/// [`Traces::agree`] of `traces`, which the caller has read already.
pub(super) fn precision_evidence(
    ctx: &BlockContext,
    policy: &Policy,
    output: &Tensor,
    emulation: Option<&Tensor>,
    (traces, trace_agrees): (Traces, bool),
    emulated: bool,
) -> Result<Mismatch, String> {
    let cpu = CpuBackend::keeping_weights();
    let mut emulate = |candidates: &[Candidate]| {
        ctx.stored_emulations(candidates, |c| {
            cpu.prepare_with_overrides(&ctx.model, &ctx.weights, &c.policy, &c.overrides)
                .run(&ctx.input)
        })
    };
    let fingerprint = emulation
        .map(|emulation| {
            mismatch::fingerprint::fingerprint_where_undecided(
                &ctx.model,
                policy,
                &output.data,
                emulation,
                trace_agrees,
                &mut emulate,
            )
            .map_err(|e| format!("fingerprint: {e}"))
        })
        .transpose()?;
    Ok(assess(
        fingerprint,
        &ctx.model.block,
        policy,
        traces,
        emulated,
    ))
}

impl Traces<'_> {
    /// Whether the kernel trace shows GEMMs, every one of them in the precision `policy` asks of
    /// `block`, and nothing it cannot classify: a trace that vouches for the GEMMs.
    pub(super) fn agree(&self, block: &Block, policy: &Policy, emulated: bool) -> bool {
        self.kernels.is_some_and(|kernels| {
            let found = kernel_evidence(kernels, block, policy, emulated);
            found.gemm_us.contains_key(&found.expected)
                && found.above.is_empty()
                && found.below.is_empty()
                && found.unclassified.is_empty()
                && found.unproven.is_empty()
        })
    }
}

/// The kernel trace read for `block` in `policy`; in a block with attention, attention's own
/// products run in the policy's default format.
fn kernel_evidence(
    kernels: &[KernelLaunches],
    block: &Block,
    policy: &Policy,
    emulated: bool,
) -> KernelEvidence {
    let attention = block
        .has_attention()
        .then(|| math_precision(policy.default));
    evidence(
        kernels,
        expected_gemm_precision(policy, emulated),
        attention,
    )
}

/// The verdict of a fingerprint (if any) and the readings of the kernel trace and the engine's
/// layer report for `block` run in `policy`.
pub(super) fn assess(
    fingerprint: Option<FingerprintEvidence>,
    block: &Block,
    policy: &Policy,
    traces: Traces,
    emulated: bool,
) -> Mismatch {
    let kernels = traces
        .kernels
        .map(|k| kernel_evidence(k, block, policy, emulated));
    let layers = traces.layers.map(|l| mismatch::layers::evidence(l, policy));
    mismatch::assess(fingerprint, kernels, layers)
}
