//! Where a variant runs: a worker process of its own ([`super::worker::Workers`]) or this
//! process ([`InProcess`]).

use std::sync::{Arc, Mutex};

use super::measurement::{measure_guarded, Outcome};
use super::pool::Slot;
use super::reference::{BlockInputs, ModelContext};
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

/// The last model's context, kept for the next variant that needs the same one: a model's
/// variants run one after another, and its weights, input and reference are the same for all.
#[derive(Default)]
pub(super) struct ContextCache {
    last: Option<(ContextKey, Arc<ModelContext>)>,
}

/// What a model's context is made of: the model and the run settings its weights, input and
/// reference depend on (not, say, the iterations, or whether its variant is emulated on the CPU).
#[derive(PartialEq)]
struct ContextKey {
    model: Model,
    seed: u64,
    reference: crate::formats::Format,
    golden: Option<std::path::PathBuf>,
    store: Option<std::path::PathBuf>,
}

impl ContextKey {
    fn of(model: &Model, settings: &RunSettings) -> Self {
        ContextKey {
            model: model.clone(),
            seed: settings.seed,
            reference: settings.reference,
            golden: settings.golden.clone(),
            store: settings.store.clone(),
        }
    }
}

impl ContextCache {
    /// Whether the kept context is `model`'s under `settings`.
    pub(super) fn holds(&self, model: &Model, settings: &RunSettings) -> bool {
        self.last
            .as_ref()
            .is_some_and(|(kept, _)| *kept == ContextKey::of(model, settings))
    }

    /// Measures `policy` of `model` on `backend`, making the model's context unless the last one
    /// fits (on `inputs`, when the caller has read them already); the record's `reference`
    /// phase is the time spent making it (0 when it was kept).
    pub(super) fn measure(
        &mut self,
        backend: &dyn Backend,
        (model, inputs): (&Model, Option<BlockInputs>),
        policy: &Policy,
        settings: &RunSettings,
    ) -> Outcome {
        let started = std::time::Instant::now();
        crate::linalg::set_product_device(match settings.products_on_host {
            true => None,
            false => backend.product_device(),
        });
        let products_busy = || crate::linalg::product_device().map_or(0.0, |d| d.busy_s());
        let products_before = products_busy();
        let key = ContextKey::of(model, settings);
        let ctx = match &self.last {
            Some((kept, ctx)) if *kept == key => ctx.clone(),
            _ => {
                // The old context goes first: two models' weights need not fit at once.
                self.last = None;
                let ctx = Arc::new(
                    ModelContext::with_inputs(model, settings, inputs)
                        .map_err(|e| format!("model: {e}"))?,
                );
                self.last = Some((key, ctx.clone()));
                ctx
            }
        };
        let reference_s = started.elapsed().as_secs_f64();
        measure_guarded(&ctx, policy, backend, settings).map(|mut m| {
            m.phases.reference = reference_s;
            m.phases.products = products_busy() - products_before;
            m
        })
    }
}

/// Runs variants in this process on one backend: no isolation, no timeout (a hang hangs the run),
/// for library use and tests of backends. Keeps the last model's context for the next variant.
pub struct InProcess<'a> {
    backend: &'a dyn Backend,
    contexts: Mutex<ContextCache>,
}

impl<'a> InProcess<'a> {
    /// Runs on `backend`.
    pub fn new(backend: &'a dyn Backend) -> Self {
        InProcess {
            backend,
            contexts: Mutex::new(ContextCache::default()),
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
        let mut contexts = self.contexts.lock().expect("no panic holds this lock");
        let outcome = contexts.measure(self.backend, (model, None), policy, settings);
        Execution::Finished(Box::new(outcome))
    }
}
