//! The runner with planted faults: a backend that returns NaN, one that fails, one that panics.
//! Each becomes its own record and the run goes on. And what the runner asks of a backend's
//! timing: the cache state, honoured only where the backend can.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{cpu, run_in_process, Fake, Plant};
use precheck::backend::{Backend, BackendError, Executable};
use precheck::exit_code::ExitCode;
use precheck::measure::CacheMode;
use precheck::model::{Model, Weights};
use precheck::plan::Overrides;
use precheck::precision::Policy;
use precheck::results::{read_records, Status, VariantRecord};

const SUITE: &str = "
name: faults
defaults: { warmup: 0, iterations: 2 }
models:
  - { name: m, block: linear, dims: { hidden: 32 }, input: { tokens: 4 } }
precisions: [bf16, fp32, fp16]
";

/// How the fake backend misbehaves in FP16.
#[derive(Clone, Copy)]
enum Fault {
    Nan,
    BuildError,
    Panic,
}

/// The CPU backend, except in FP16, where it misbehaves as `fault` says.
fn faulty(fault: Fault) -> impl Backend {
    let build = move |model: &Model,
                      weights: &Weights,
                      policy: &Policy|
          -> Result<Box<dyn Executable>, BackendError> {
        match fault {
            Fault::BuildError if policy.name == "fp16" => {
                Err(BackendError::Failed("no kernel for this shape".into()))
            }
            Fault::Panic if policy.name == "fp16" => panic!("illegal memory access"),
            _ => cpu(model, weights, policy),
        }
    };
    let plant = move |policy: &Policy| Plant {
        nan_at: (matches!(fault, Fault::Nan) && policy.name == "fp16").then_some(3),
        ..Plant::default()
    };
    Fake {
        name: "faulty",
        build,
        plant,
    }
}

fn run_faults(backend: &dyn Backend, dir: &Path) -> Vec<VariantRecord> {
    run_in_process(backend, SUITE, &Overrides::default(), dir)
}

fn run_with(fault: Fault) -> (Status, Option<String>, ExitCode) {
    let dir = tempfile::tempdir().unwrap();
    let records = run_faults(&faulty(fault), dir.path());
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
    let records = run_faults(&faulty(Fault::Nan), dir.path());
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

#[test]
fn a_cold_cache_is_timed_and_recorded_only_where_the_backend_can_flush() {
    let overrides = Overrides {
        cache: Some(CacheMode::Cold),
        ..Overrides::default()
    };
    for flushes in [true, false] {
        let asked: Arc<Mutex<Vec<CacheMode>>> = Arc::default();
        let backend = Fake {
            name: "cache-aware",
            build: cpu,
            plant: |_: &Policy| Plant {
                flushes_cache: flushes,
                cache_asked: Some(asked.clone()),
                ..Plant::default()
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let records = run_in_process(&backend, SUITE, &overrides, dir.path());
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
        assert_eq!(*asked.lock().unwrap(), vec![expect; 3]);
    }
}
