//! The `precheck` binary end to end: exit codes, files written, messages.

mod common;

use common::precheck;

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use precheck::results::{read_records, Status, VariantRecord};
use predicates::prelude::*;

fn records(dir: &Path) -> Vec<VariantRecord> {
    let (records, warnings) = read_records(&dir.join("results.jsonl")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    records
}

fn cos_of(records: &[VariantRecord], id: &str) -> f64 {
    let record = records.iter().find(|r| r.id == id).unwrap();
    record.accuracy.unwrap().cos
}

#[test]
fn smoke_suite_passes_and_records_every_variant() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    precheck()
        .args([
            "run",
            "suites/smoke.yaml",
            "--iterations",
            "3",
            "--warmup",
            "1",
            "--out",
        ])
        .arg(&run)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "6 variants: 6 passed, 0 failed a gate, 0 errored",
        ));
    let records = records(&run);
    assert_eq!(records.len(), 6);
    for record in &records {
        assert_eq!(record.status, Status::Passed, "{record:?}");
        let latency = record.latency.as_ref().unwrap();
        assert_eq!(latency.samples_ms.len(), 3);
        assert!(latency.median_ms > 0.0);
        assert!(record.baseline.as_ref().unwrap().speedup > 0.0);
    }
    let fp32 = cos_of(&records, "tiny_mlp/fp32/cpu");
    let fp16 = cos_of(&records, "tiny_mlp/fp16/cpu");
    let bf16 = cos_of(&records, "tiny_mlp/bf16/cpu");
    for cos in [fp16, bf16] {
        assert!(cos > 0.999 && cos < 1.0, "cos {cos}");
    }
    assert!(
        fp32 > fp16 && fp16 > bf16,
        "fp32 {fp32}, fp16 {fp16}, bf16 {bf16}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["suite"]["name"], "smoke");
    assert_eq!(info["suite"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(info["settings"]["iterations"], 3);
    assert!(info["finished_at"].is_string());
}

#[test]
fn an_unreachable_gate_exits_1_and_says_why() {
    let out = tempfile::tempdir().unwrap();
    precheck()
        .args(["run", "tests/suites/unreachable_gate.yaml", "--out"])
        .arg(out.path())
        .assert()
        .code(1)
        .stdout(predicate::str::is_match(r"FAIL  mlp/bf16/cpu: cos 0\.\d{6} < 0\.9999999").unwrap())
        .stdout(predicate::str::contains("FAIL  mlp/fp16/cpu: cos"));
    let records = records(out.path());
    let failed: Vec<&str> = records
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(failed, ["mlp/bf16/cpu", "mlp/fp16/cpu"]);
    let bf16 = records.iter().find(|r| r.precision == "bf16").unwrap();
    assert_eq!(bf16.failures[0].gate, "cos_min");
}

#[test]
fn a_malformed_suite_exits_2_with_its_location() {
    precheck()
        .args(["run", "tests/bad_suites/unknown_key_typo.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "tests/bad_suites/unknown_key_typo.yaml:10:3: `defaults.iteratons`: unknown key `iteratons`, did you mean `iterations`?",
        ));
}

#[test]
fn validate_checks_every_suite_and_fails_on_any() {
    precheck()
        .args(["validate", "suites/smoke.yaml", "suites/paligemma.yaml"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "ok    suites/smoke.yaml: 6 variants",
        ));
    precheck()
        .args([
            "validate",
            "suites/smoke.yaml",
            "tests/bad_suites/zero_dimension.yaml",
        ])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("ok    suites/smoke.yaml"))
        .stderr(predicate::str::contains("zero_dimension.yaml:6:15"));
}

#[test]
fn list_shows_the_expanded_matrix() {
    precheck()
        .args(["list", "suites/smoke.yaml"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("tiny_mlp/fp16/cpu"))
        .stdout(predicate::str::contains("6 variants; reference: bf16"));
}

#[test]
fn cuda_without_a_cuda_backend_exits_2_and_auto_runs_on_the_cpu() {
    let why = if cfg!(feature = "cuda") {
        "--backend cuda: no CUDA driver found"
    } else {
        "--backend cuda: this precheck was built without the CUDA backend"
    };
    precheck()
        .args(["run", "suites/smoke.yaml", "--backend", "cuda"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(why));
    let out = tempfile::tempdir().unwrap();
    precheck()
        .args([
            "run",
            "suites/smoke.yaml",
            "--backend",
            "auto",
            "--iterations",
            "1",
        ])
        .args(["--filter", "tiny_linear/fp16", "--out"])
        .arg(out.path())
        .assert()
        .code(0)
        .stderr(predicate::str::contains("running on the CPU"));
    assert_eq!(records(out.path()).len(), 1);
}

#[test]
fn devices_lists_the_cpu() {
    precheck()
        .arg("devices")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("cpu   available:"));
}

#[test]
fn a_filter_that_matches_nothing_exits_2() {
    precheck()
        .args(["run", "suites/smoke.yaml", "--filter", "fp8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no variant matches --filter `fp8`",
        ));
}

#[test]
fn the_command_backend_without_a_command_exits_2_and_says_so() {
    precheck()
        .args(["run", "suites/smoke.yaml", "--backend", "command"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--backend command needs --command 'PROGRAM ARGS'",
        ));
}

#[test]
fn a_folder_with_files_precheck_did_not_write_is_refused() {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("report.html"), "<p>my own report</p>").unwrap();
    precheck()
        .args(["run", "suites/smoke.yaml", "--out"])
        .arg(out.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already holds report.html"));
    let kept = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert_eq!(kept, "<p>my own report</p>");
    assert!(!out.path().join("run.json").exists());
}

#[test]
fn existing_results_are_never_overwritten() {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("results.jsonl"), "keep me\n").unwrap();
    precheck()
        .args(["run", "suites/smoke.yaml", "--out"])
        .arg(out.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already holds results"));
    let kept = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    assert_eq!(kept, "keep me\n");
}

#[test]
fn a_killed_run_leaves_every_finished_variant_readable() {
    let out = tempfile::tempdir().unwrap();
    let results = out.path().join("results.jsonl");
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("precheck"))
        .args(["run", "tests/suites/slow.yaml", "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines(&results) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (records, _torn) = read_records(&results).unwrap();
    assert!(records.len() >= 2, "only {} records", records.len());
    assert!(records.len() < 12, "the run finished before it was killed");
    assert!(records.iter().all(|r| r.status == Status::Passed));
}

/// A timeout beyond a week is refused where it is written, before a deadline computed from it
/// could overflow the clock (it used to panic and leave the run waiting forever).
#[test]
fn a_timeout_beyond_a_week_is_refused_on_the_command_line() {
    let out = tempfile::tempdir().unwrap();
    precheck()
        .args([
            "run",
            "suites/smoke.yaml",
            "--timeout",
            "300000000000y",
            "--out",
        ])
        .arg(out.path().join("run"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "longer than the most a variant may take, 7days",
        ));
}

/// A model whose dimensions need more memory than a variant may take (a billion layers) is
/// refused by `validate` and `run` at once, with the numbers, instead of hanging while its
/// graph is built; `PRECHECK_MEMORY_LIMIT_GIB` sets the limit.
#[test]
fn a_model_beyond_the_memory_budget_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("huge.yaml");
    std::fs::write(
        &suite,
        "name: huge\nmodels:\n  - { name: m, block: stack, layer: encoder, dims: { hidden: 64, intermediate: 64, heads: 4, layers: 1000000000 }, input: { tokens: 4 } }\nprecisions: [fp32]\n",
    )
    .unwrap();
    for command in ["validate", "run"] {
        let started = Instant::now();
        precheck()
            .arg(command)
            .arg(&suite)
            .env("PRECHECK_MEMORY_LIMIT_GIB", "1")
            .current_dir(dir.path())
            .assert()
            .code(2)
            .stderr(predicates::str::contains(
                "29056000000000 parameters, 4 tokens), above the 1.0 GiB a variant may take \
                 (PRECHECK_MEMORY_LIMIT_GIB",
            ));
        assert!(started.elapsed() < Duration::from_secs(10), "{command}");
    }
}

/// The work folders a killed run leaves in the temporary folder (its workers' scratch, engines'
/// files inside) are removed by the next run; those of a run still alive are not.
#[test]
fn a_run_sweeps_the_work_folders_of_killed_runs() {
    let tmp = tempfile::tempdir().unwrap();
    // No process has id 999999999 (Linux's limit is 2^22).
    let stale = tmp.path().join("precheck-worker-999999999-a1b2c3");
    std::fs::create_dir_all(stale.join("precheck-command-x")).unwrap();
    std::fs::write(
        stale.join("precheck-command-x/weights.safetensors"),
        b"left",
    )
    .unwrap();
    let live = tmp
        .path()
        .join(format!("precheck-worker-{}-d4e5f6", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    let out = tempfile::tempdir().unwrap();
    precheck()
        .args(["run", "suites/smoke.yaml", "--iterations", "1", "--out"])
        .arg(out.path().join("run"))
        .env("TMPDIR", tmp.path())
        .assert()
        .success();
    assert!(!stale.exists(), "the killed run's folder is swept");
    assert!(live.exists(), "a live run's folder is kept");
}

/// `precheck --format json COMMAND ...`: its stdout, which must be one JSON document and nothing
/// else, and its exit code.
fn json_of(args: &[&str]) -> (serde_json::Value, i32) {
    let output = precheck()
        .arg("--format")
        .arg("json")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed more or less than JSON ({e}):\n{stdout}"));
    (value, output.status.code().unwrap())
}

#[test]
fn every_command_that_prints_speaks_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (run, code) = json_of(&[
        "run",
        "suites/smoke.yaml",
        "--iterations",
        "2",
        "--warmup",
        "0",
        "--out",
        &path("runs/a"),
    ]);
    assert_eq!((code, run["exit_code"].as_i64()), (0, Some(0)), "{run}");
    assert_eq!(run["passed"], 6);
    let ids: Vec<&str> = run["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    assert!(run["variants"][0]["cos"].as_f64().unwrap() > 0.99);
    assert_eq!(run["reports"].as_array().unwrap().len(), 4, "{run}");

    let (report, code) = json_of(&["report", &path("runs/a")]);
    assert_eq!((code, &report["variants"]), (0, &run["variants"]));
    let (merged, code) = json_of(&["merge", &path("runs/a"), "--out", &path("merged")]);
    assert_eq!((code, merged["passed"].as_i64()), (0, Some(6)), "{merged}");
    let (compared, code) = json_of(&["compare", &path("runs/a"), &path("merged")]);
    assert_eq!(
        (code, compared["exit_code"].as_i64()),
        (0, Some(0)),
        "{compared}"
    );
    assert_eq!(compared["variants"].as_array().unwrap().len(), 6);
    let (history, code) = json_of(&["history", &path("runs")]);
    assert_eq!(
        (code, &history["suites"][0][0]),
        (0, &serde_json::json!("smoke"))
    );
    let (explained, code) = json_of(&["explain", &path("runs/a"), ids[0]]);
    assert_eq!((code, explained["id"].as_str()), (0, Some(ids[0])));

    let (listed, code) = json_of(&["list", "suites/smoke.yaml"]);
    assert_eq!((code, listed["variants"].as_array().unwrap().len()), (0, 6));
    let mut listed_ids: Vec<&str> = listed["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    let mut run_ids = ids.clone();
    listed_ids.sort_unstable();
    run_ids.sort_unstable();
    assert_eq!(listed_ids, run_ids, "the run ran what list planned");
    let bad = "tests/bad_suites/unknown_key_typo.yaml";
    let (validated, code) = json_of(&["validate", "suites/smoke.yaml", bad]);
    assert_eq!(code, 2);
    assert_eq!(validated[0]["variants"], 6);
    assert!(validated[1]["error"]
        .as_str()
        .unwrap()
        .contains("unknown_key_typo.yaml:"));
    let (devices, code) = json_of(&["devices"]);
    assert_eq!(
        (code, &devices[0]["backend"]),
        (0, &serde_json::json!("cpu"))
    );
    assert_eq!(devices[0]["available"], true);
    let (presets, code) = json_of(&["precisions"]);
    assert_eq!(code, 0);
    assert!(presets
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fp8_e4m3"));
    let (exported, code) = json_of(&["export", "suites/smoke.yaml", "--out", &path("onnx")]);
    assert_eq!(code, 0);
    assert!(
        !exported["written"].as_array().unwrap().is_empty(),
        "{exported}"
    );
    let (golden, code) = json_of(&[
        "golden",
        "suites/smoke.yaml",
        "--out",
        &path("g.safetensors"),
    ]);
    assert_eq!(
        (code, golden["models"].as_array().unwrap().len()),
        (0, 2),
        "{golden}"
    );
}

/// A worker fed a line that is not a job says so and exits 2, with no reply on stdout.
#[test]
fn a_worker_given_a_line_that_is_not_a_job_exits_2_saying_so() {
    precheck()
        .arg("worker")
        .write_stdin("{\"suite\": 3}\n")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("error: not a job: "));
}
