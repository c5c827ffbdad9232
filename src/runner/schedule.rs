//! The order tasks run in: each group's speed baseline first, then its variants.

use std::collections::{HashMap, HashSet};

use super::pool::{Pending, Scheduler};
use super::spec::RunSpec;
use crate::model::Model;
use crate::precision::Policy;
use crate::suite::{Suite, Variant};

/// What a slot is busy with: a variant of the plan, or the timing of a group's baseline that the
/// plan leaves out (excluded, filtered out, in another shard), so that speed-ups stay comparable.
#[derive(Debug, Clone, Copy)]
pub(super) enum Task {
    Variant(usize),
    Baseline(usize),
}

/// The tasks of a run in plan order: each group's lead first (its baseline variant, or the
/// timing of a baseline the plan leaves out), then its other variants; recorded variants skipped.
pub(super) fn schedule(spec: &RunSpec) -> Scheduler<Task> {
    let medians: HashMap<String, Option<f64>> = spec
        .recorded
        .iter()
        .map(|r| (r.id.clone(), r.latency.as_ref().map(|l| l.median_ms)))
        .collect();
    let mut led: HashSet<String> = medians.keys().cloned().collect();
    let mut pending = Vec::new();
    for (index, variant) in spec.plan.variants.iter().enumerate() {
        if medians.contains_key(&variant.id) {
            continue;
        }
        let group = baseline_variant(spec.suite, variant).id;
        let leads = group == variant.id;
        if !led.contains(&group) && !leads {
            pending.push(Pending {
                item: Task::Baseline(index),
                device: variant.device.clone(),
                group: group.clone(),
                leads: true,
            });
        }
        led.insert(group.clone());
        pending.push(Pending {
            item: Task::Variant(index),
            device: variant.device.clone(),
            group,
            leads,
        });
    }
    Scheduler::new(spec.slots.clone(), pending, medians)
}

/// The variant a variant's speed-up is measured against: the reference precision, same model
/// and device.
pub(super) fn baseline_variant(suite: &Suite, variant: &Variant) -> Variant {
    Variant::new(
        variant.model.clone(),
        suite.baseline_policy(),
        variant.device.clone(),
        variant.gates,
    )
}

/// The model and policy a task runs.
pub(super) fn task_subject<'a>(spec: &RunSpec<'a>, task: Task) -> (&'a Model, Policy) {
    let (Task::Variant(index) | Task::Baseline(index)) = task;
    let variant = &spec.plan.variants[index];
    let model = spec
        .suite
        .model(&variant.model)
        .expect("validated suites only name their own models");
    let policy = match task {
        Task::Variant(_) => variant.precision.clone(),
        Task::Baseline(_) => spec.suite.baseline_policy(),
    };
    (model, policy)
}

pub(super) fn index_of(task: Task) -> usize {
    let (Task::Variant(index) | Task::Baseline(index)) = task;
    index
}
