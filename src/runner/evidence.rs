//! The precision evidence of one measurement as one verdict: the fingerprint against the CPU
//! emulation, the kernel trace and the engine's layer report.

use super::reference::BlockContext;
use crate::measure::KernelLaunches;
use crate::mismatch::{self, fingerprint::FingerprintEvidence, Mismatch};
use crate::model::Block;
use crate::precision::kernels::{evidence, expected_gemm_precision, math_precision};
use crate::precision::Policy;
use crate::tensor::Tensor;
use crate::trtexec::layers::EngineLayer;

/// What a backend reported of what ran, where it can.
pub(super) struct Traces<'a> {
    pub(super) kernels: Option<&'a [KernelLaunches]>,
    pub(super) layers: Option<&'a [EngineLayer]>,
}

/// The fingerprint of `output` and the readings of the kernel trace and the engine's layer
/// report, as one verdict.
pub(super) fn precision_evidence(
    ctx: &BlockContext,
    policy: &Policy,
    output: &Tensor,
    emulation: &Tensor,
    traces: Traces,
    emulated: bool,
) -> Result<Mismatch, String> {
    let fingerprint = Some(
        mismatch::fingerprint::fingerprint(
            &ctx.model,
            &ctx.weights,
            &ctx.input,
            policy,
            &output.data,
            emulation,
        )
        .map_err(|e| format!("fingerprint: {e}"))?,
    );
    Ok(assess(
        fingerprint,
        &ctx.model.block,
        policy,
        traces,
        emulated,
    ))
}

/// The verdict of a fingerprint (if any) and the readings of the kernel trace and the engine's
/// layer report for `block` run in `policy`; in a block with attention, attention's own products
/// run in the policy's default format.
pub(super) fn assess(
    fingerprint: Option<FingerprintEvidence>,
    block: &Block,
    policy: &Policy,
    traces: Traces,
    emulated: bool,
) -> Mismatch {
    let expected = expected_gemm_precision(policy, emulated);
    let attention = block
        .has_attention()
        .then(|| math_precision(policy.default));
    let kernels = traces.kernels.map(|k| evidence(k, expected, attention));
    let layers = traces.layers.map(|l| mismatch::layers::evidence(l, policy));
    mismatch::assess(fingerprint, kernels, layers)
}
