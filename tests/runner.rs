//! The runner with planted faults: a backend that returns NaN, one that fails, one that panics.
//! Each becomes its own record and the run goes on. And what the runner asks of a backend's
//! timing: the cache state, honoured only where the backend can.

use std::path::Path;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use precheck::backend::{Backend, BackendError, BackendKind, CpuBackend, Executable, Timing};
use precheck::exit_code::ExitCode;
use precheck::farm::{Device, Slot};
use precheck::model::{Model, Tensor, Weights};
use precheck::plan::{plan, Overrides};
use precheck::precision::Policy;
use precheck::results::VariantRecord;
use precheck::results::{read_records, ResultsWriter, Status};
use precheck::runner::{run, InProcess, RunSpec, Silent};
use precheck::suite::CacheMode;
use std::sync::atomic::AtomicBool;

const SUITE: &str = "
name: faults
defaults: { warmup: 0, iterations: 2 }
models:
  - { name: m, block: linear, dims: { hidden: 32 }, input: { tokens: 4 } }
precisions: [bf16, fp32, fp16]
";

/// The CPU backend, except in FP16, where it misbehaves as told.
struct Faulty(Fault);

#[derive(Clone, Copy)]
enum Fault {
    Nan,
    BuildError,
    Panic,
}

struct NanOutput(Box<dyn Executable>);

impl Executable for NanOutput {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        let mut output = self.0.run(input)?;
        output.data[3] = f32::NAN;
        Ok(output)
    }
}

impl Backend for Faulty {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn device_name(&self) -> String {
        "faulty".into()
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError> {
        let inner = CpuBackend::new().prepare(model, weights, policy)?;
        if policy.name != "fp16" {
            return Ok(inner);
        }
        match self.0 {
            Fault::Nan => Ok(Box::new(NanOutput(inner))),
            Fault::BuildError => Err(BackendError::Failed("no kernel for this shape".into())),
            Fault::Panic => panic!("illegal memory access"),
        }
    }
}

/// Runs the suite in this process on `backend`, as a library user would.
fn run_in_process(backend: &dyn Backend, dir: &Path) -> Vec<VariantRecord> {
    run_in_process_with(backend, dir, &Overrides::default())
}

fn run_in_process_with(
    backend: &dyn Backend,
    dir: &Path,
    overrides: &Overrides,
) -> Vec<VariantRecord> {
    let suite = precheck::suite::from_str(Path::new("faults.yaml"), SUITE).unwrap();
    let plan = plan(&suite, BackendKind::Cpu, "cpu", overrides).unwrap();
    let mut writer = ResultsWriter::create(dir).unwrap();
    let stop = AtomicBool::new(false);
    let spec = RunSpec {
        suite: &suite,
        plan: &plan,
        slots: vec![Slot {
            device: Device::Cpu,
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

fn run_with(fault: Fault) -> (Status, Option<String>, ExitCode) {
    let dir = tempfile::tempdir().unwrap();
    let records = run_in_process(&Faulty(fault), dir.path());
    let (on_disk, _) = read_records(&dir.path().join("results.jsonl")).unwrap();
    // Compared as JSON: a NaN measurement is never equal to itself.
    assert_eq!(
        serde_json::to_string(&on_disk).unwrap(),
        serde_json::to_string(&records).unwrap(),
        "the file holds exactly what the run returned"
    );
    let statuses: Vec<Status> = records.iter().map(|r| r.status).collect();
    let fp16 = records.iter().find(|r| r.id == "m/fp16/cpu").unwrap();
    assert_eq!(statuses.len(), 3);
    assert_eq!(
        statuses.iter().filter(|s| **s == Status::Passed).count(),
        2,
        "the other variants still pass"
    );
    (
        fp16.status,
        fp16.error.clone(),
        ExitCode::of_records(&records),
    )
}

#[test]
fn nan_output_fails_every_gate_it_touches() {
    let dir = tempfile::tempdir().unwrap();
    let records = run_in_process(&Faulty(Fault::Nan), dir.path());
    let fp16 = records.iter().find(|r| r.id == "m/fp16/cpu").unwrap();
    assert_eq!(fp16.status, Status::Failed);
    let gates: Vec<&str> = fp16.failures.iter().map(|f| f.gate.as_str()).collect();
    assert_eq!(gates, ["finite", "cos_min"]);
    assert!(fp16.accuracy.unwrap().cos.is_nan());
    assert_eq!(run_with(Fault::Nan).2, ExitCode::GateFailed);
}

#[test]
fn a_backend_error_becomes_an_error_record() {
    let (status, error, code) = run_with(Fault::BuildError);
    assert_eq!(status, Status::Error);
    assert_eq!(error.as_deref(), Some("build: no kernel for this shape"));
    assert_eq!(code, ExitCode::VariantError);
}

#[test]
fn a_backend_panic_becomes_an_error_record() {
    let (status, error, code) = run_with(Fault::Panic);
    assert_eq!(status, Status::Error);
    assert_eq!(error.as_deref(), Some("panicked: illegal memory access"));
    assert_eq!(code, ExitCode::VariantError);
}

/// The CPU backend, whose executables say whether they can flush the GPU's L2 cache and
/// remember the cache state each timing asked for.
struct CacheAware {
    flushes: bool,
    asked: Arc<Mutex<Vec<CacheMode>>>,
}

struct CacheAwareExecutable {
    inner: Box<dyn Executable>,
    flushes: bool,
    asked: Arc<Mutex<Vec<CacheMode>>>,
}

impl Executable for CacheAwareExecutable {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        self.inner.run(input)
    }

    fn time(&mut self, input: &Tensor, timing: Timing) -> Result<Vec<Duration>, BackendError> {
        self.asked.lock().unwrap().push(timing.cache);
        self.inner.time(input, timing)
    }

    fn flushes_cache(&self) -> bool {
        self.flushes
    }
}

impl Backend for CacheAware {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn device_name(&self) -> String {
        "cache-aware".into()
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(CacheAwareExecutable {
            inner: CpuBackend::new().prepare(model, weights, policy)?,
            flushes: self.flushes,
            asked: self.asked.clone(),
        }))
    }
}

#[test]
fn a_cold_cache_is_timed_and_recorded_only_where_the_backend_can_flush() {
    let overrides = Overrides {
        cache: Some(CacheMode::Cold),
        ..Overrides::default()
    };
    for flushes in [true, false] {
        let backend = CacheAware {
            flushes,
            asked: Arc::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        let records = run_in_process_with(&backend, dir.path(), &overrides);
        let expect = if flushes {
            CacheMode::Cold
        } else {
            CacheMode::Warm
        };
        assert_eq!(records.len(), 3);
        assert!(
            records.iter().all(|r| r.cache == Some(expect)),
            "{records:?}"
        );
        assert_eq!(*backend.asked.lock().unwrap(), vec![expect; 3]);
    }
}
