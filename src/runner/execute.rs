//! Where a variant runs: a worker process of its own ([`super::worker::Workers`]) or this
//! process ([`InProcess`]).

use std::sync::{Arc, Mutex};

use super::measurement::{measure_guarded, Outcome};
use super::pool::Slot;
use super::reference::ModelContext;
use crate::backend::Backend;
use crate::model::Model;
use crate::precision::Policy;
use crate::results::{RunSettings, WorkerExit};

/// How running one policy of one model on a slot ended.
#[derive(Debug)]
pub enum Execution {
    /// It ran: a measurement or an error the backend reported (boxed: a measurement is large).
    Finished(Box<Outcome>),
    /// Its worker process crashed, was killed or timed out: why, and how it ended.
    Failed(String, WorkerExit),
    /// The run was stopped while it ran: nothing to record.
    Interrupted,
}

/// Runs one policy of one model on a slot.
pub trait Executor: Sync {
    /// Measures `policy` of `model` on `slot`.
    fn execute(
        &self,
        slot: &Slot,
        model: &Model,
        policy: &Policy,
        settings: &RunSettings,
    ) -> Execution;
}

/// Runs variants in this process on one backend: no isolation, no timeout (a hang hangs the run),
/// for library use and tests of backends. Keeps the last model's context for the next variant.
pub struct InProcess<'a> {
    backend: &'a dyn Backend,
    context: Mutex<Option<Arc<ModelContext>>>,
}

impl<'a> InProcess<'a> {
    /// Runs on `backend`.
    pub fn new(backend: &'a dyn Backend) -> Self {
        InProcess {
            backend,
            context: Mutex::new(None),
        }
    }
}

impl Executor for InProcess<'_> {
    fn execute(
        &self,
        _: &Slot,
        model: &Model,
        policy: &Policy,
        settings: &RunSettings,
    ) -> Execution {
        let started = std::time::Instant::now();
        let ctx = {
            let mut cached = self.context.lock().expect("no panic holds this lock");
            match cached.as_ref() {
                Some(ctx) if ctx.model() == model => ctx.clone(),
                _ => match ModelContext::new(model, settings) {
                    Ok(ctx) => cached.insert(Arc::new(ctx)).clone(),
                    Err(e) => return Execution::Finished(Box::new(Err(format!("model: {e}")))),
                },
            }
        };
        let reference_s = started.elapsed().as_secs_f64();
        let outcome = measure_guarded(&ctx, policy, self.backend, settings).map(|mut m| {
            m.phases.reference = reference_s;
            m
        });
        Execution::Finished(Box::new(outcome))
    }
}
