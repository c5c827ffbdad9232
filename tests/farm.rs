//! Farm-scale runs end to end: faults planted in workers (crash, hang, CUDA error), a run killed
//! and resumed, Ctrl-C, shards and their merge.

mod common;

use common::{junit, precheck, quick_smoke};

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use precheck::results::{read_records, RunInfo, Status, VariantRecord};
use predicates::prelude::*;

fn recorded(dir: &Path) -> (Vec<VariantRecord>, Vec<String>) {
    read_records(&dir.join("results.jsonl")).unwrap()
}

fn run_info(dir: &Path) -> RunInfo {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

fn ids(records: &[VariantRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

/// The ids `precheck list` gives for the smoke suite on the CPU.
fn smoke_ids() -> Vec<String> {
    let mut ids: Vec<String> = ["tiny_linear", "tiny_mlp"]
        .iter()
        .flat_map(|m| ["fp32", "bf16", "fp16"].map(|p| format!("{m}/{p}/cpu")))
        .collect();
    ids.sort();
    ids
}

#[test]
fn crashed_hung_and_cuda_failed_workers_become_error_records_and_the_rest_pass() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    quick_smoke(dir.path())
        .args(["--timeout", "2s"])
        .env(
            "PRECHECK_TEST_WORKER_FAULT",
            "fp16=segfault,fp32=hang,nothing=cuda_error",
        )
        .args(["--filter", "tiny_linear"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "ERROR tiny_linear/fp16/cpu: worker killed by signal 11 (SIGSEGV)",
        ))
        .stdout(predicate::str::contains(
            "ERROR tiny_linear/fp32/cpu: worker timed out after 2s and was ended",
        ));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the hang was ended"
    );
    let (records, _) = recorded(dir.path());
    let by_id = |id: &str| records.iter().find(|r| r.id == id).unwrap();
    assert_eq!(by_id("tiny_linear/bf16/cpu").status, Status::Passed);
    let crashed = by_id("tiny_linear/fp16/cpu");
    assert_eq!(crashed.status, Status::Error);
    let exit = crashed.worker.as_ref().unwrap();
    assert_eq!(
        (exit.signal, exit.exit_code, exit.timed_out),
        (Some(11), None, false)
    );
    let hung = by_id("tiny_linear/fp32/cpu").worker.as_ref().unwrap();
    assert!(hung.timed_out);

    let dir = tempfile::tempdir().unwrap();
    quick_smoke(dir.path())
        .env("PRECHECK_TEST_WORKER_FAULT", "fp16=cuda_error")
        .assert()
        .code(3);
    let (records, _) = recorded(dir.path());
    let errored: Vec<&VariantRecord> = records
        .iter()
        .filter(|r| r.status == Status::Error)
        .collect();
    assert_eq!(ids(&records), smoke_ids());
    assert_eq!(errored.len(), 2, "both fp16 variants, and only they");
    for record in errored {
        assert!(record.id.contains("/fp16/"));
        let exit = record.worker.as_ref().unwrap();
        assert_eq!(exit.exit_code, Some(1));
        assert!(
            exit.stderr_tail.contains("CUDA_ERROR_ILLEGAL_ADDRESS"),
            "{exit:?}"
        );
        assert!(record
            .error
            .as_ref()
            .unwrap()
            .contains("an illegal memory access"));
    }
    // JUnit shows the crashed worker's stderr where CI servers look for it.
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert_eq!(junit::check_strict(&junit), Ok(()), "{junit}");
    assert_eq!(junit.matches("<system-err>").count(), 2, "{junit}");
    assert!(junit.contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{junit}");
}

/// A worker whose input reader panics (a loader bug) gives an error record that says so, and the
/// next variant gets a fresh worker, whose reader panics again: each of the three is recorded.
#[test]
fn a_panic_while_reading_a_models_inputs_is_an_error_record_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    quick_smoke(dir.path())
        .env(
            "PRECHECK_TEST_WORKER_FAULT",
            "fp32=input_panic,bf16=input_panic,fp16=input_panic",
        )
        .args(["--filter", "tiny_linear"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "): model: panicked while reading its inputs",
        ))
        .stdout(predicate::str::contains(
            "3 variants: 0 passed, 0 failed a gate, 3 errored",
        ));
    let (records, _) = recorded(dir.path());
    assert_eq!(records.len(), 3, "every variant has its record");
    for record in &records {
        assert_eq!(record.status, Status::Error, "{}", record.id);
        assert_eq!(
            record.error.as_deref(),
            Some("model: panicked while reading its inputs"),
            "{}",
            record.id
        );
    }
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Starts the slow suite into `dir` and waits until `lines` records are written.
fn start_slow_run(dir: &Path, lines: usize, fault: &str) -> std::process::Child {
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("precheck"))
        .args(["run", "tests/suites/slow.yaml", "--out"])
        .arg(dir)
        .env("PRECHECK_TEST_WORKER_FAULT", fault)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while line_count(&dir.join("results.jsonl")) < lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_run_killed_with_sigkill_resumes_with_no_variant_lost_or_doubled() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let mut child = start_slow_run(&dir, 2, "");
    child.kill().unwrap();
    child.wait().unwrap();
    let (before, _) = recorded(&dir);
    assert!(
        before.len() >= 2 && before.len() < 12,
        "{} records",
        before.len()
    );
    // As if the kill had torn the line being written.
    let mut text = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    text.push_str(r#"{"schema":1,"id":"a/fp"#);
    std::fs::write(dir.join("results.jsonl"), text).unwrap();

    precheck()
        .args(["run", "tests/suites/slow.yaml", "--resume"])
        .arg(&dir)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("ignoring an incomplete line"))
        .stderr(predicate::str::contains(format!(
            "{} already recorded",
            before.len()
        )));
    let (after, warnings) = recorded(&dir);
    assert_eq!(warnings.len(), 1, "only the torn line: {warnings:?}");
    let unique: BTreeSet<&str> = after.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(after.len(), 12, "{:?}", ids(&after));
    assert_eq!(unique.len(), 12);
    assert_eq!(after[..before.len()], before[..], "the first records stand");
    assert!(after.iter().all(|r| r.status == Status::Passed));
    let info = run_info(&dir);
    assert_eq!(info.resumed_at.len(), 1);
    assert!(info.finished_at.is_some());
    let ids_planned: BTreeSet<&str> = info.planned.iter().map(String::as_str).collect();
    assert_eq!(ids_planned, unique);
}

#[test]
fn resume_refuses_a_run_with_other_options() {
    let dir = tempfile::tempdir().unwrap();
    quick_smoke(dir.path())
        .args(["--filter", "tiny_linear/bf16"])
        .assert()
        .code(0);
    precheck()
        .args([
            "run",
            "suites/smoke.yaml",
            "--iterations",
            "3",
            "--warmup",
            "0",
        ])
        .args(["--filter", "tiny_linear/bf16", "--resume"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("that run had settings"))
        .stderr(predicate::str::contains("\"iterations\":2"));
}

#[test]
fn ctrl_c_ends_the_worker_keeps_the_records_and_writes_the_report() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    // a/bf16 and a/fp32 pass, then a/fp16's worker hangs: the run is stopped while it does.
    let child = start_slow_run(&dir, 2, "fp16=hang");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signals the child started above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130));
    let (records, warnings) = recorded(&dir);
    assert!(warnings.is_empty());
    assert_eq!(ids(&records), ["a/bf16/cpu", "a/fp32/cpu"]);
    assert!(
        records.iter().all(|r| r.worker.is_none()),
        "an ended worker is not an error"
    );
    assert!(run_info(&dir).finished_at.is_none());
    #[cfg(feature = "report")]
    assert!(dir.join("report.html").exists());
}

fn shard(out: &Path, index: usize) -> std::path::PathBuf {
    let dir = out.join(format!("shard-{index}"));
    quick_smoke(&dir)
        .env("SLURM_ARRAY_TASK_ID", (index + 1).to_string())
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_MAX", "3")
        .assert()
        .code(0)
        .stderr(predicate::str::contains(format!("shard {index}/3")));
    dir
}

#[test]
fn three_shards_merge_into_the_whole_matrix_once() {
    let out = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3).map(|i| shard(out.path(), i)).collect();
    let sizes: Vec<usize> = dirs.iter().map(|d| recorded(d).0.len()).collect();
    assert_eq!(sizes, [2, 2, 2]);
    let merged = out.path().join("merged");
    precheck()
        .arg("merge")
        .args(&dirs)
        .arg("--out")
        .arg(&merged)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("6 variants: 6 passed"));
    let (records, _) = recorded(&merged);
    assert_eq!(ids(&records), smoke_ids());
    let info = run_info(&merged);
    assert_eq!(info.settings.shard, None);
    assert_eq!(info.merged_from.len(), 3);
    #[cfg(feature = "report")]
    assert!(merged.join("report.html").exists());

    // Two of three shards: the missing one is said, and the run is incomplete.
    precheck()
        .arg("merge")
        .args(&dirs[..2])
        .arg("--out")
        .arg(out.path().join("partial"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("error: shard missing: 2/3"))
        .stderr(predicate::str::contains("error: variant missing").not());
}

#[test]
fn merge_rejects_shards_of_different_suites() {
    let out = tempfile::tempdir().unwrap();
    let smoke = shard(out.path(), 0);
    let other = out.path().join("other");
    precheck()
        .args([
            "run",
            "tests/suites/unreachable_gate.yaml",
            "--shard",
            "1/3",
            "--out",
        ])
        .arg(&other)
        .assert()
        .code(predicate::in_iter([0, 1]));
    let smoke_sha = run_info(&smoke).suite.sha256;
    let other_sha = run_info(&other).suite.sha256;
    precheck()
        .arg("merge")
        .args([&smoke, &other])
        .arg("--out")
        .arg(out.path().join("merged"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "suite files differ (suite `smoke` sha256 {smoke_sha} and suite `unreachable` sha256 {other_sha})"
        )));
}

/// The Kubernetes example passes the shard count precheck reads, equal to the Job's completions.
#[test]
fn the_kubernetes_example_gives_the_shard_count_it_runs() {
    let text = std::fs::read_to_string("examples/k8s/nightly-job.yaml").unwrap();
    let job: serde_yaml::Value = serde_yaml::Deserializer::from_str(&text)
        .next()
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .unwrap();
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let count = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|var| var["name"] == precheck::shard::SHARD_COUNT_VAR)
        .map(|var| var["value"].as_str().unwrap().parse::<u64>().unwrap());
    assert_eq!(count, Some(completions));
    assert!(container["args"][0]
        .as_str()
        .unwrap()
        .contains("--resume \"/runs/nightly/shard-${JOB_COMPLETION_INDEX}\""));
}

/// Two runs of one folder at once (a requeued job while the first still runs): the second is
/// refused, naming the holder, and the first finishes with every variant recorded once.
#[test]
fn a_second_run_of_a_folder_being_written_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let mut first = start_slow_run(&dir, 1, "");
    precheck()
        .args(["run", "tests/suites/slow.yaml", "--resume"])
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "is being written by another precheck (process {})",
            first.id()
        )));
    assert!(first.wait().unwrap().success());
    let (records, warnings) = recorded(&dir);
    assert!(warnings.is_empty(), "{warnings:?}");
    let unique: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((records.len(), unique.len()), (12, 12));
}
