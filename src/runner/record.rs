//! A variant's record: its identity, then what was measured and the gates' verdict.

use chrono::Utc;

use super::measurement::Outcome;
use super::pool::Slot;
use super::spec::RunSpec;
use crate::mismatch;
use crate::precision::Policy;
use crate::results::{Baseline, Status, VariantRecord, RECORD_SCHEMA};

/// The record of a variant that no device was left to run.
pub(super) fn stranded_record(
    spec: &RunSpec,
    index: usize,
    slot: &Slot,
    why: &str,
) -> VariantRecord {
    let mut record = blank_record(spec, index, slot);
    record.error = Some(why.to_owned());
    record
}

/// A record with the variant's identity filled in and no measurement yet (status `error`).
pub(super) fn blank_record(spec: &RunSpec, index: usize, slot: &Slot) -> VariantRecord {
    let variant = &spec.plan.variants[index];
    let model = spec
        .suite
        .model(&variant.model)
        .expect("validated suites only name their own models");
    VariantRecord {
        schema: RECORD_SCHEMA,
        id: variant.id.clone(),
        model: model.name.to_string(),
        block: model.block.kind_name().to_owned(),
        precision: variant.precision.name.clone(),
        policy: variant.precision.clone(),
        device: variant.device.to_string(),
        backend: slot.backend(),
        device_name: slot.name.clone(),
        tokens: model.tokens,
        flops: model.block.flops(model.tokens),
        status: Status::Error,
        gates: variant.gates,
        failures: Vec::new(),
        accuracy: None,
        latency: None,
        baseline: None,
        emulated: false,
        cpu_agreement: None,
        phases: None,
        kernels: None,
        mismatch: None,
        layers: Vec::new(),
        clocks: None,
        cache: None,
        error: None,
        worker: None,
        started_at: Utc::now(),
        wall_s: 0.0,
    }
}

/// Marks a measured variant whose lower precision bought no speed against its baseline.
pub(super) fn check_speed(record: &mut VariantRecord, baseline_policy: &Policy) {
    if let (Some(mismatch), Some(baseline)) = (record.mismatch.as_mut(), &record.baseline) {
        mismatch::speed_sanity(
            mismatch,
            &record.policy,
            baseline_policy,
            record.emulated,
            baseline.median_ms,
            baseline.speedup,
        );
    }
}

/// Fills in what was measured (or why nothing was) and the verdict of the gates.
pub(super) fn conclude(
    record: &mut VariantRecord,
    outcome: Outcome,
    baseline: Option<(String, f64)>,
) {
    match outcome {
        Ok(measured) => {
            record.failures = record.gates.evaluate(&measured.accuracy);
            record
                .failures
                .extend(record.gates.evaluate_mismatch(measured.mismatch.as_ref()));
            record.status = if record.failures.is_empty() {
                Status::Passed
            } else {
                Status::Failed
            };
            record.baseline = baseline.map(|(id, median_ms)| Baseline {
                id,
                median_ms,
                speedup: median_ms / measured.latency.median_ms,
            });
            record.accuracy = Some(measured.accuracy);
            record.latency = Some(measured.latency);
            record.emulated = measured.emulated;
            record.cpu_agreement = measured.cpu_agreement;
            record.kernels = measured.kernels;
            record.mismatch = measured.mismatch;
            record.layers = measured.layers;
            record.clocks = measured.clocks;
            record.cache = Some(measured.cache);
            record.phases = Some(measured.phases);
        }
        Err(message) => record.error = Some(message),
    }
}
