//! What the integration tests share: the `precheck` binary, the one fake backend, and a run in
//! this process. Each test crate uses part of it, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod junit;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use precheck::backend::{Backend, BackendError, BackendKind, CpuBackend, Executable, Timing};
use precheck::measure::CacheMode;
use precheck::model::{Model, Weights};
use precheck::plan::{plan, Overrides};
use precheck::precision::Policy;
use precheck::results::{ResultsWriter, VariantRecord};
use precheck::runner::{run, InProcess, Placement, RunSpec, Silent, Slot};
use precheck::tensor::Tensor;
use precheck::trtexec::layers::EngineLayer;

/// The `precheck` binary this test build made.
pub fn precheck() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("precheck").unwrap()
}

/// `precheck run suites/smoke.yaml` with 2 timed iterations and no warm-up, into `out`: the
/// quickest whole run.
pub fn quick_smoke(out: &Path) -> assert_cmd::Command {
    let mut command = precheck();
    command
        .args([
            "run",
            "suites/smoke.yaml",
            "--iterations",
            "2",
            "--warmup",
            "0",
        ])
        .arg("--out")
        .arg(out);
    command
}

/// How a [`Fake`] backend's executable departs from the CPU backend's for one policy.
#[derive(Clone, Default)]
pub struct Plant {
    /// The output's value at this index is NaN.
    pub nan_at: Option<usize>,
    /// Every timed iteration takes this long.
    pub fixed_time: Option<Duration>,
    /// The engine layer report it gives.
    pub layer_report: Option<Vec<EngineLayer>>,
    /// Whether it says it can flush the GPU's L2 cache.
    pub flushes_cache: bool,
    /// Where the cache state each timing asked for is written down.
    pub cache_asked: Option<Arc<Mutex<Vec<CacheMode>>>>,
}

/// The tests' fake backend: the CPU backend's numerics (or what `build` makes), with what `plant`
/// returns for a policy planted into its executable. `build` may fail or panic, as a broken
/// engine does.
pub struct Fake<B, P> {
    /// The device name it reports.
    pub name: &'static str,
    /// Builds the honest executable.
    pub build: B,
    /// What to plant for a policy.
    pub plant: P,
}

/// A [`Fake`]'s honest build: the CPU backend.
pub fn cpu(
    model: &Model,
    weights: &Weights,
    policy: &Policy,
) -> Result<Box<dyn Executable>, BackendError> {
    CpuBackend::new().prepare(model, weights, policy)
}

impl<B, P> Backend for Fake<B, P>
where
    B: Fn(&Model, &Weights, &Policy) -> Result<Box<dyn Executable>, BackendError> + Send + Sync,
    P: Fn(&Policy) -> Plant + Send + Sync,
{
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn device_name(&self) -> String {
        self.name.into()
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(Planted {
            inner: (self.build)(model, weights, policy)?,
            plant: (self.plant)(policy),
        }))
    }
}

struct Planted {
    inner: Box<dyn Executable>,
    plant: Plant,
}

impl Executable for Planted {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        let mut output = self.inner.run(input)?;
        if let Some(index) = self.plant.nan_at {
            output.data[index] = f32::NAN;
        }
        Ok(output)
    }

    fn layer_report(&mut self) -> Result<Option<Vec<EngineLayer>>, BackendError> {
        Ok(self.plant.layer_report.clone())
    }

    fn time(&mut self, input: &Tensor, timing: Timing) -> Result<Vec<Duration>, BackendError> {
        if let Some(asked) = &self.plant.cache_asked {
            asked.lock().unwrap().push(timing.cache);
        }
        match self.plant.fixed_time {
            Some(each) => Ok(vec![each; timing.iterations]),
            None => self.inner.time(input, timing),
        }
    }

    fn flushes_cache(&self) -> bool {
        self.plant.flushes_cache
    }
}

/// Runs the suite `text` on `backend` in this process, as a library user would, recording in
/// `dir`.
pub fn run_in_process(
    backend: &dyn Backend,
    text: &str,
    overrides: &Overrides,
    dir: &Path,
) -> Vec<VariantRecord> {
    let suite = precheck::suite::from_str(Path::new("test.yaml"), text).unwrap();
    let plan = plan(&suite, BackendKind::Cpu, "cpu", overrides).unwrap();
    let mut writer = ResultsWriter::create(dir).unwrap();
    let stop = AtomicBool::new(false);
    let spec = RunSpec {
        suite: &suite,
        plan: &plan,
        slots: vec![Slot {
            device: Placement::Cpu,
            name: backend.device_name(),
        }],
        recorded: &[],
        stop: &stop,
        skip: None,
    };
    let outcome = run(&spec, &InProcess::new(backend), &mut writer, &mut Silent).unwrap();
    assert!(!outcome.interrupted);
    outcome.records
}
