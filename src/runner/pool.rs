//! Which variant runs where, and when: the devices of a run as slots, one worker per slot at a
//! time. A CPU run has one slot (its timings must not share the cores); a CUDA run has one per
//! visible GPU. A slot whose worker hung on a GPU is retired for the rest of the run, since a
//! hung kernel can leave its GPU unusable. Speed-ups need each group's baseline (the reference
//! precision on that device) first, so a group's other variants wait until its lead has finished.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::backend::{self, Backend, BackendError, BackendKind, CpuBackend, Engines};
use crate::suite::DeviceSelector;

/// A device one worker at a time runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The host's CPU.
    Cpu,
    /// The CUDA device of this ordinal.
    Cuda(usize),
    /// Wherever the command backend's program runs: one at a time.
    Command,
    /// The GPU trtexec runs on (its default, GPU 0): one at a time.
    Trtexec,
}

impl Placement {
    /// Opens the backend that runs on this device; `engines` configures the outside ones.
    pub fn open(self, engines: &Engines) -> Result<Box<dyn Backend>, BackendError> {
        let missing = |what: &str| BackendError::Unavailable(format!("the job names no {what}"));
        match self {
            Placement::Cpu => Ok(Box::new(CpuBackend::new())),
            Placement::Cuda(ordinal) => backend::cuda(ordinal),
            Placement::Command => engines
                .command
                .clone()
                .map(|c| Box::new(c) as Box<dyn Backend>)
                .ok_or_else(|| missing("command")),
            Placement::Trtexec => engines
                .trtexec
                .clone()
                .map(|t| Box::new(t) as Box<dyn Backend>)
                .ok_or_else(|| missing("trtexec")),
        }
    }
}

/// The slots of a run on `backend`: the CPU, or every GPU this process sees, each named like the
/// first (one host's GPUs are one model).
pub fn slots(backend: &dyn Backend) -> Vec<Slot> {
    let name = backend.device_name();
    match backend.kind() {
        BackendKind::Cpu => vec![Slot {
            device: Placement::Cpu,
            name,
        }],
        BackendKind::Command => vec![Slot {
            device: Placement::Command,
            name,
        }],
        BackendKind::Trtexec => vec![Slot {
            device: Placement::Trtexec,
            name,
        }],
        BackendKind::Cuda => (0..backend::cuda_device_count().max(1))
            .map(|ordinal| Slot {
                device: Placement::Cuda(ordinal),
                name: name.clone(),
            })
            .collect(),
    }
}

/// A device of the run, with its name for records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The device.
    pub device: Placement,
    /// Its name, for people (CPU model, GPU name).
    pub name: String,
}

impl Slot {
    /// The backend that runs on this slot.
    pub fn backend(&self) -> BackendKind {
        match self.device {
            Placement::Cpu => BackendKind::Cpu,
            Placement::Cuda(_) => BackendKind::Cuda,
            Placement::Command => BackendKind::Command,
            Placement::Trtexec => BackendKind::Trtexec,
        }
    }

    /// Whether a variant targeting `selector` may run here: `cuda:N` only on GPU N; anything
    /// else on any slot (the plan has already matched GPU models).
    fn accepts(&self, selector: &DeviceSelector) -> bool {
        match (self.device, selector) {
            (Placement::Cuda(ordinal), DeviceSelector::CudaOrdinal(wanted)) => ordinal == *wanted,
            _ => true,
        }
    }

    /// Whether a hang retires this slot: a GPU, yes; the CPU is fine once its worker is killed.
    fn retired_by_hang(&self) -> bool {
        matches!(self.device, Placement::Cuda(_))
    }
}

/// An item waiting to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending<T> {
    /// What runs.
    pub item: T,
    /// The device its variant targets.
    pub device: DeviceSelector,
    /// Its speed-up group: the id of the baseline variant it is compared with.
    pub group: String,
    /// Whether it is its group's baseline: its median resolves the group.
    pub leads: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum SlotState {
    Free,
    Busy,
    Retired(String),
}

/// Hands out pending items to free slots, in order, as their groups allow.
#[derive(Debug)]
pub struct Scheduler<T> {
    slots: Vec<Slot>,
    states: Vec<SlotState>,
    pending: Vec<Pending<T>>,
    medians: HashMap<String, Option<f64>>,
}

impl<T> Scheduler<T> {
    /// A scheduler of `pending` (in order) over `slots`; `medians` holds the baseline medians
    /// already known (from records of an earlier attempt), by variant id.
    pub fn new(
        slots: Vec<Slot>,
        pending: Vec<Pending<T>>,
        medians: HashMap<String, Option<f64>>,
    ) -> Self {
        Scheduler {
            states: vec![SlotState::Free; slots.len()],
            slots,
            pending,
            medians,
        }
    }

    /// The slots.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Items not handed out yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The first pending item that may start now, with the free slot it starts on (now busy).
    pub fn start_next(&mut self) -> Option<(usize, Pending<T>)> {
        let (position, slot) = self.pending.iter().enumerate().find_map(|(position, p)| {
            let ready = p.leads || self.medians.contains_key(&p.group);
            let slot = self.states.iter().enumerate().position(|(i, state)| {
                *state == SlotState::Free && self.slots[i].accepts(&p.device)
            });
            slot.filter(|_| ready).map(|slot| (position, slot))
        })?;
        self.states[slot] = SlotState::Busy;
        Some((slot, self.pending.remove(position)))
    }

    /// `slot`'s item ended; `lead` carries the group and median of a group's baseline. A hang
    /// retires a GPU slot, saying why in `reason`.
    pub fn finish(
        &mut self,
        slot: usize,
        lead: Option<(String, Option<f64>)>,
        hang: Option<String>,
    ) {
        if let Some((group, median)) = lead {
            self.medians.insert(group, median);
        }
        self.states[slot] = match hang {
            Some(reason) if self.slots[slot].retired_by_hang() => SlotState::Retired(reason),
            _ => SlotState::Free,
        };
    }

    /// The baseline median of `group`, once known.
    pub fn median(&self, group: &str) -> Option<f64> {
        self.medians.get(group).copied().flatten()
    }

    /// When nothing runs and nothing can start: the items left, which no usable slot will ever
    /// run, and why. Empty while an item is running or can start.
    pub fn stranded(&mut self) -> (Vec<Pending<T>>, String) {
        if self.states.contains(&SlotState::Busy) {
            return (Vec::new(), String::new());
        }
        let retired: Vec<String> = self
            .states
            .iter()
            .zip(&self.slots)
            .filter_map(|(state, slot)| match state {
                SlotState::Retired(reason) => Some(format!("{} retired: {reason}", slot.name)),
                _ => None,
            })
            .collect();
        let why = format!("not run: no usable device is left ({})", retired.join("; "));
        (std::mem::take(&mut self.pending), why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(n: usize) -> Vec<Slot> {
        (0..n)
            .map(|i| Slot {
                device: Placement::Cuda(i),
                name: format!("gpu{i}"),
            })
            .collect()
    }

    fn pending(item: &'static str, group: &str, device: DeviceSelector) -> Pending<&'static str> {
        Pending {
            item,
            device,
            group: group.into(),
            leads: item == group,
        }
    }

    /// Two models' groups on two GPUs: both leads start at once, each group's followers only after
    /// their lead, never two items on one GPU.
    #[test]
    fn two_gpus_run_two_groups_at_once_leads_first() {
        let any = DeviceSelector::AnyCuda;
        let items = vec![
            pending("a/bf16", "a/bf16", any.clone()),
            pending("a/fp8", "a/bf16", any.clone()),
            pending("a/fp16", "a/bf16", any.clone()),
            pending("b/bf16", "b/bf16", any.clone()),
            pending("b/fp8", "b/bf16", any.clone()),
        ];
        let mut s = Scheduler::new(gpus(2), items, HashMap::new());
        let (slot_a, a) = s.start_next().unwrap();
        let (slot_b, b) = s.start_next().unwrap();
        assert_eq!((a.item, b.item), ("a/bf16", "b/bf16"));
        assert_ne!(slot_a, slot_b);
        assert!(s.start_next().is_none(), "both GPUs busy");
        s.finish(slot_b, Some(("b/bf16".into(), Some(2.0))), None);
        let (slot, next) = s.start_next().unwrap();
        assert_eq!(
            (slot, next.item),
            (slot_b, "b/fp8"),
            "a's group waits for its lead"
        );
        assert_eq!(s.median("b/bf16"), Some(2.0));
        s.finish(slot_a, Some(("a/bf16".into(), Some(1.0))), None);
        assert_eq!(s.start_next().unwrap().1.item, "a/fp8");
        assert!(s.start_next().is_none());
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn one_cpu_runs_in_plan_order_one_at_a_time() {
        let cpu = vec![Slot {
            device: Placement::Cpu,
            name: "cpu".into(),
        }];
        let items = vec![
            pending("a/bf16", "a/bf16", DeviceSelector::Cpu),
            pending("a/fp16", "a/bf16", DeviceSelector::Cpu),
        ];
        let mut s = Scheduler::new(cpu, items, HashMap::new());
        let (slot, first) = s.start_next().unwrap();
        assert_eq!(first.item, "a/bf16");
        assert!(s.start_next().is_none());
        // A CPU timeout does not retire the CPU.
        s.finish(slot, Some(("a/bf16".into(), None)), Some("hung".into()));
        assert_eq!(s.start_next().unwrap().1.item, "a/fp16");
    }

    #[test]
    fn a_pinned_variant_waits_for_its_gpu() {
        let items = vec![pending("a/bf16", "a/bf16", DeviceSelector::CudaOrdinal(1))];
        let mut s = Scheduler::new(gpus(2), items, HashMap::new());
        assert_eq!(s.start_next().unwrap().0, 1);
    }

    #[test]
    fn a_hung_gpu_is_not_used_again_and_its_work_is_stranded_when_none_is_left() {
        let known = HashMap::from([("a/bf16".to_owned(), Some(1.0))]);
        let items = vec![
            pending("a/fp8", "a/bf16", DeviceSelector::AnyCuda),
            pending("a/fp16", "a/bf16", DeviceSelector::AnyCuda),
            pending("a/int8", "a/bf16", DeviceSelector::AnyCuda),
            pending("a/fp32", "a/bf16", DeviceSelector::AnyCuda),
        ];
        let mut s = Scheduler::new(gpus(2), items, known);
        let (first, _) = s.start_next().unwrap();
        let (second, _) = s.start_next().unwrap();
        s.finish(first, None, Some("its worker hung on a/fp8".into()));
        assert_eq!(
            s.start_next().map(|(slot, _)| slot),
            None,
            "the other GPU is busy"
        );
        s.finish(second, None, None);
        let (slot, item) = s.start_next().unwrap();
        assert_eq!((slot, item.item), (second, "a/int8"));
        assert_eq!(s.stranded().0.len(), 0, "a GPU is still busy");
        s.finish(second, None, Some("its worker hung on a/int8".into()));
        assert!(s.start_next().is_none());
        let (left, why) = s.stranded();
        assert_eq!(left.iter().map(|p| p.item).collect::<Vec<_>>(), ["a/fp32"]);
        assert_eq!(
            why,
            "not run: no usable device is left (gpu0 retired: its worker hung on a/fp8; gpu1 retired: its worker hung on a/int8)"
        );
    }
}
