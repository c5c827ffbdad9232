//! Running a plan: each variant is built, run once for accuracy, timed and gated, and its record
//! appended. Where a variant runs is an [`Executor`]'s business: a worker process of its own
//! ([`Workers`], what `precheck run` uses) or this process ([`InProcess`], for
//! library use and tests of backends). A variant that fails (an error, a panic, a crashed or hung
//! worker) becomes an error record and the run goes on; variants run on as many devices at a time
//! as the run has [`Slot`]s.

mod evidence;
pub mod execute;
pub mod fault;
mod graph;
pub mod measurement;
pub mod pool;
pub mod process;
mod record;
pub mod reference;
mod schedule;
mod spec;
pub mod store;
pub mod worker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub use execute::{Execution, Executor, InProcess};
pub use graph::GraphContext;
pub use measurement::{measure_guarded, Measured, Outcome};
pub use pool::{slots, Pending, Placement, Scheduler, Slot};
pub use reference::{exact_reference, golden_outputs, BlockContext, ModelContext};
pub use spec::RunSpec;
pub use worker::{serve, WorkerJob, WorkerReply, Workers};

use crate::measure::AgreementMode;
use crate::precision::Policy;
use crate::results::{ResultsError, ResultsWriter, RunSettings, Status, VariantRecord};
use crate::suite::Variant;
use record::{blank_record, check_speed, conclude, stranded_record};
use schedule::{index_of, schedule, task_subject, Task};

/// Hears about progress; the terminal's progress bar is one.
pub trait Observer {
    /// Variant `index` (from 0) of `total` starts.
    fn started(&mut self, index: usize, total: usize, variant: &Variant);
    /// A variant's record was written.
    fn finished(&mut self, record: &VariantRecord);
}

/// An observer that ignores everything (tests, `--quiet`).
pub struct Silent;

impl Observer for Silent {
    fn started(&mut self, _: usize, _: usize, _: &Variant) {}
    fn finished(&mut self, _: &VariantRecord) {}
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// The records this run appended, in the order they ended.
    pub records: Vec<VariantRecord>,
    /// Whether it was stopped before every variant ran.
    pub interrupted: bool,
}

/// A task that ended.
struct TaskEnd {
    slot: usize,
    pending: Pending<Task>,
    execution: Execution,
    started_at: DateTime<Utc>,
    wall_s: f64,
}

/// The settings a task runs with: under `--cpu-agreement sample`, the first task of each policy
/// (`sampled` holds the policies seen) is emulated on the CPU whatever its kernel trace says.
fn task_settings(
    settings: &RunSettings,
    policy: &Policy,
    sampled: &mut HashSet<String>,
) -> RunSettings {
    let mut settings = settings.clone();
    if settings.cpu_agreement == AgreementMode::Sample && sampled.insert(policy.name.clone()) {
        settings.cpu_agreement = AgreementMode::Every;
    }
    settings
}

/// How often the run looks at its stop flag while variants run.
const POLL: Duration = Duration::from_millis(50);

/// Runs every variant of `spec.plan` not yet recorded with `executor`, appending each record to
/// `writer` as it ends.
///
/// Only a failure to write results stops the run early (running variants are ended first).
pub fn run(
    spec: &RunSpec,
    executor: &dyn Executor,
    writer: &mut ResultsWriter,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, ResultsError> {
    if let Some(why) = &spec.skip {
        return skip_all(spec, writer, observer, why);
    }
    let mut scheduler = schedule(spec);
    let total = spec.plan.variants.len();
    let mut started = spec
        .plan
        .variants
        .iter()
        .filter(|v| spec.recorded.iter().any(|r| r.id == v.id))
        .count();
    let mut records = Vec::new();
    let mut failure = None;
    let mut interrupted = false;
    let mut sampled = HashSet::new();
    let (sender, receiver) = mpsc::channel::<TaskEnd>();
    std::thread::scope(|scope| {
        let mut running = 0;
        // Records of variants that ended, written once the next variants are under way: a
        // slot's worker measures while the results file syncs to disk.
        let mut ended_records = Vec::new();
        loop {
            while !spec.stop.load(Ordering::SeqCst) {
                let Some((slot, pending)) = scheduler.start_next() else {
                    break;
                };
                if let Task::Variant(index) = pending.item {
                    observer.started(started, total, &spec.plan.variants[index]);
                    started += 1;
                }
                let (model, policy) = task_subject(spec, pending.item);
                let settings = task_settings(&spec.plan.settings, &policy, &mut sampled);
                let sender = sender.clone();
                let slot_info = scheduler.slots()[slot].clone();
                scope.spawn(move || {
                    let (started_at, clock) = (Utc::now(), Instant::now());
                    let execution = executor.execute(&slot_info, model, &policy, &settings);
                    let wall_s = clock.elapsed().as_secs_f64();
                    let ended = TaskEnd {
                        slot,
                        pending,
                        execution,
                        started_at,
                        wall_s,
                    };
                    sender.send(ended).expect("the run outlives its tasks");
                });
                running += 1;
            }
            let stopped = spec.stop.load(Ordering::SeqCst);
            if running == 0 && !stopped {
                let (stranded, why) = scheduler.stranded();
                ended_records.extend(stranded.into_iter().filter_map(
                    |pending| match pending.item {
                        Task::Variant(index) => {
                            Some(stranded_record(spec, index, &scheduler.slots()[0], &why))
                        }
                        _ => None,
                    },
                ));
            }
            for record in ended_records.drain(..) {
                append(
                    writer,
                    observer,
                    &mut records,
                    record,
                    &mut failure,
                    spec.stop,
                );
            }
            if running == 0 {
                interrupted |= stopped && scheduler.pending() > 0;
                break;
            }
            let Ok(ended) = receiver.recv_timeout(POLL) else {
                continue;
            };
            running -= 1;
            interrupted |= matches!(ended.execution, Execution::Interrupted);
            if let Some(record) = conclude_task(spec, &mut scheduler, ended) {
                ended_records.push(record);
            }
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(RunOutcome {
        records,
        interrupted,
    })
}

/// Records every variant not yet recorded as skipped, for `why`.
fn skip_all(
    spec: &RunSpec,
    writer: &mut ResultsWriter,
    observer: &mut dyn Observer,
    why: &str,
) -> Result<RunOutcome, ResultsError> {
    let mut records = Vec::new();
    let slot = spec.slots.first().expect("a run has a slot");
    for (index, variant) in spec.plan.variants.iter().enumerate() {
        if spec.recorded.iter().any(|r| r.id == variant.id) {
            continue;
        }
        let mut record = blank_record(spec, index, slot);
        record.status = Status::Skipped;
        record.error = Some(why.to_owned());
        writer.append(&record)?;
        observer.finished(&record);
        records.push(record);
    }
    Ok(RunOutcome {
        records,
        interrupted: false,
    })
}

/// Frees the task's slot (retiring a GPU whose worker hung), resolves its group if it leads, and
/// returns the record of a variant that ended.
fn conclude_task(
    spec: &RunSpec,
    scheduler: &mut Scheduler<Task>,
    ended: TaskEnd,
) -> Option<VariantRecord> {
    let TaskEnd {
        slot,
        pending,
        execution,
        started_at,
        wall_s,
    } = ended;
    let hang = match &execution {
        Execution::Failed(_, exit) if exit.timed_out => Some(format!(
            "its worker hung on {}",
            spec.plan.variants[index_of(pending.item)].id
        )),
        _ => None,
    };
    let median = match &execution {
        Execution::Finished(outcome) => outcome.as_ref().as_ref().ok().map(|m| m.latency.median_ms),
        _ => None,
    };
    let interrupted = matches!(execution, Execution::Interrupted);
    let lead = (pending.leads && !interrupted).then(|| (pending.group.clone(), median));
    let slot_info = scheduler.slots()[slot].clone();
    scheduler.finish(slot, lead, hang);
    let Task::Variant(index) = pending.item else {
        return None;
    };
    let mut record = blank_record(spec, index, &slot_info);
    record.started_at = started_at;
    record.wall_s = wall_s;
    let baseline = scheduler
        .median(&pending.group)
        .map(|median| (pending.group.clone(), median));
    match execution {
        Execution::Finished(outcome) => {
            conclude(&mut record, *outcome, baseline);
            check_speed(&mut record, &spec.suite.baseline_policy());
        }
        Execution::Failed(message, exit) => {
            record.error = Some(message);
            record.worker = Some(exit);
        }
        Execution::Interrupted => return None,
    }
    Some(record)
}

/// Appends `record`; on a write failure, keeps the error and stops the run.
fn append(
    writer: &mut ResultsWriter,
    observer: &mut dyn Observer,
    records: &mut Vec<VariantRecord>,
    record: VariantRecord,
    failure: &mut Option<ResultsError>,
    stop: &AtomicBool,
) {
    if failure.is_some() {
        return;
    }
    match writer.append(&record) {
        Ok(()) => {
            observer.finished(&record);
            records.push(record);
        }
        Err(error) => {
            *failure = Some(error);
            stop.store(true, Ordering::SeqCst);
        }
    }
}
