//! The command backend: an external engine (`tests/runners/linear.py`, stdlib Python) run through
//! precheck's file protocol. An honest engine's variants are measured and gated like any other;
//! one that writes garbage, one that exits 1, one that hangs and one whose timings are short each
//! become an error record that says why, and the suite runs on; a kernel list the engine hands
//! back is precision evidence.

mod common;

use common::precheck;

use std::path::Path;

use precheck::mismatch::Verdict;
use precheck::results::{read_records, Status, VariantRecord, RESULTS_FILE};

const SUITE: &str = "
name: engine
defaults: { warmup: 1, iterations: 3, timeout: 5s }
models:
  - { name: m, block: linear, dims: { hidden: 8, out_features: 4 }, input: { tokens: 3 } }
precisions: [bf16, fp32]
gates: { cos_min: 0.99 }
";

/// Runs [`SUITE`] with `--backend command --command "python3 tests/runners/linear.py ARGS"`;
/// returns the exit code and the records.
fn run(args: &str) -> (Option<i32>, Vec<VariantRecord>) {
    run_suite(SUITE, args)
}

fn run_suite(text: &str, args: &str) -> (Option<i32>, Vec<VariantRecord>) {
    run_with_tmpdir(text, args, &std::env::temp_dir())
}

/// [`run_suite`] with `TMPDIR` set to `tmpdir` for precheck and everything it starts.
fn run_with_tmpdir(text: &str, args: &str, tmpdir: &Path) -> (Option<i32>, Vec<VariantRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("engine.yaml");
    std::fs::write(&suite, text).unwrap();
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runners/linear.py");
    let out = dir.path().join("run");
    let status = precheck()
        .arg("run")
        .arg(&suite)
        .args(["--backend", "command", "--command"])
        .arg(format!("python3 {} {args}", runner.display()))
        .arg("--out")
        .arg(&out)
        .env("TMPDIR", tmpdir)
        .output()
        .unwrap()
        .status;
    let (records, _) = read_records(&out.join(RESULTS_FILE)).unwrap();
    (status.code(), records)
}

fn errors(records: &[VariantRecord]) -> Vec<String> {
    assert_eq!(records.len(), 2, "{records:?}");
    records
        .iter()
        .map(|r| {
            assert_eq!(r.status, Status::Error, "{}", r.id);
            r.error.clone().unwrap()
        })
        .collect()
}

#[test]
fn an_honest_engine_is_measured_and_gated_with_its_kernel_list() {
    let fp32_gemm = "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize64x256x8_stage3_warpsize1x4x1_ffma_aligna4_alignc4_execute_kernel__5x_cublas";
    let bf16_gemm = "nvjet_sm90_tst_128x248_64x4_2x1_v_bz_coopA_TNT";
    let (code, records) = run(&format!(
        "--kernel fp32={fp32_gemm} --kernel bf16={bf16_gemm}"
    ));
    assert_eq!(code, Some(0), "{records:?}");
    let fp32 = records.iter().find(|r| r.id == "m/fp32/command").unwrap();
    assert_eq!(fp32.status, Status::Passed);
    assert_eq!(fp32.backend.name(), "command");
    assert!(fp32.accuracy.unwrap().cos > 0.999_999);
    assert_eq!(fp32.latency.as_ref().unwrap().samples_ms.len(), 3);
    assert_eq!(fp32.kernels.as_ref().unwrap()[0].name, fp32_gemm);
    assert_eq!(fp32.mismatch.as_ref().unwrap().verdict, Verdict::None);
}

#[test]
fn an_engine_whose_kernels_ran_in_fp16_fails_its_fp32_variant() {
    let (code, records) = run("--kernel fp32=nvjet_sm90_hsh_128x248_64x4_2x1_v_bz_coopA_TNT");
    assert_eq!(code, Some(1));
    let fp32 = records.iter().find(|r| r.id == "m/fp32/command").unwrap();
    assert_eq!(fp32.status, Status::Failed);
    let verdict = &fp32.mismatch.as_ref().unwrap().verdict;
    assert!(
        matches!(verdict, Verdict::Detected { evidence, .. } if evidence[0].starts_with("nvjet_sm90_hsh")),
        "{verdict:?}"
    );
}

#[test]
fn an_engine_that_writes_garbage_is_an_error_record() {
    let (code, records) = run("--mode garbage");
    assert_eq!(code, Some(3));
    for error in errors(&records) {
        assert!(
            error.contains("reading its output")
                && error.contains("outputs.safetensors is not a valid .safetensors file"),
            "{error}"
        );
    }
}

#[test]
fn an_engine_that_exits_1_is_an_error_record_with_its_stderr() {
    let (code, records) = run("--mode exit1");
    assert_eq!(code, Some(3));
    for error in errors(&records) {
        assert!(
            error.contains("exit status: 1")
                && error.contains("the engine refused to build (planted)"),
            "{error}"
        );
    }
}

#[test]
fn an_engine_that_hangs_is_ended_by_the_timeout_and_leaves_no_files() {
    let tmpdir = tempfile::tempdir().unwrap();
    let (code, records) = run_with_tmpdir(SUITE, "--mode hang", tmpdir.path());
    assert_eq!(code, Some(3));
    for record in &records {
        assert!(record.worker.as_ref().unwrap().timed_out, "{record:?}");
    }
    errors(&records);
    // The killed workers' work folders went with their temporary folders.
    let left: Vec<_> = std::fs::read_dir(tmpdir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_engine_with_too_few_timings_is_an_error_record() {
    let (code, records) = run("--mode short-timings");
    assert_eq!(code, Some(3));
    for error in errors(&records) {
        assert!(error.contains("2 latencies for 3 iterations"), "{error}");
    }
}

/// Zero timings would make an infinite speed-up, 1e308 ms overflows a duration: each is the
/// engine's error, in a record, and the run's reports are still written.
#[test]
fn an_engine_with_zero_or_huge_timings_is_an_error_record() {
    for mode in ["zero-timings", "huge-timings"] {
        let (code, records) = run(&format!("--mode {mode}"));
        assert_eq!(code, Some(3), "{mode}");
        for error in errors(&records) {
            assert!(
                error.contains("timings.json") && error.contains("must be positive, finite"),
                "{mode}: {error}"
            );
        }
    }
}

#[test]
fn a_weight_of_one_row_reaches_the_engine_as_a_matrix() {
    // `out_features: 1` makes the weight [1, 8]: the engine must see that shape, not [8].
    let (code, records) = run_suite(&SUITE.replace("out_features: 4", "out_features: 1"), "");
    assert_eq!(code, Some(0), "{records:?}");
    let fp32 = records.iter().find(|r| r.id == "m/fp32/command").unwrap();
    assert!(fp32.accuracy.unwrap().cos > 0.999_999);
}

#[test]
fn runs_on_two_backends_merge_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("engine.yaml");
    std::fs::write(&suite, SUITE).unwrap();
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runners/linear.py");
    let run = |out: &str, args: &[String]| {
        precheck()
            .arg("run")
            .arg(&suite)
            .args(args)
            .arg("--out")
            .arg(dir.path().join(out))
            .assert()
            .success();
    };
    run("cpu", &[]);
    let engine = format!("python3 {}", runner.display());
    run(
        "engine",
        &[
            "--backend".into(),
            "command".into(),
            "--command".into(),
            engine,
        ],
    );
    precheck()
        .arg("merge")
        .args([dir.path().join("cpu"), dir.path().join("engine")])
        .arg("--out")
        .arg(dir.path().join("both"))
        .assert()
        .success();
    let (records, _) = read_records(&dir.path().join("both").join(RESULTS_FILE)).unwrap();
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "m/bf16/command",
            "m/bf16/cpu",
            "m/fp32/command",
            "m/fp32/cpu"
        ]
    );
    let command = records.iter().find(|r| r.id == "m/fp32/command").unwrap();
    assert_eq!(command.baseline.as_ref().unwrap().id, "m/bf16/command");
    let html = std::fs::read_to_string(dir.path().join("both/report.html")).unwrap();
    assert!(html.contains("m/fp32/command") && html.contains("m/fp32/cpu"));
}

#[test]
fn an_engine_whose_layer_report_shows_fp16_fails_its_fp32_variant() {
    let (code, records) = run("--layer fp32=Half --layer bf16=BFloat16");
    assert_eq!(code, Some(1));
    let fp32 = records.iter().find(|r| r.id == "m/fp32/command").unwrap();
    let verdict = &fp32.mismatch.as_ref().unwrap().verdict;
    assert!(
        matches!(verdict, Verdict::Detected { evidence, .. } if evidence == &["layer /linear/MatMul"]),
        "{verdict:?}"
    );
    let bf16 = records.iter().find(|r| r.id == "m/bf16/command").unwrap();
    assert_eq!(bf16.status, Status::Passed);
}

/// [`SUITE`] with `command` as the engine (a shell line; the work folder is its last argument).
fn run_command(command: &str) -> (Option<i32>, Vec<VariantRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("engine.yaml");
    std::fs::write(&suite, SUITE).unwrap();
    let out = dir.path().join("run");
    let status = precheck()
        .arg("run")
        .arg(&suite)
        .args(["--backend", "command", "--command", command, "--out"])
        .arg(&out)
        .output()
        .unwrap()
        .status;
    let (records, _) = read_records(&out.join(RESULTS_FILE)).unwrap();
    (status.code(), records)
}

/// An engine that floods stderr (10 MB) before it fails: the record keeps the end, where the
/// error is, and says how much came before; the worker holds kilobytes of it, not megabytes.
#[test]
fn a_flood_of_stderr_keeps_the_error_at_its_end() {
    let flood = "f() { head -c 10000000 /dev/zero | tr '\\0' x >&2; echo 'the real error' >&2; exit 1; }; f";
    let (code, records) = run_command(flood);
    assert_eq!(code, Some(3));
    for error in errors(&records) {
        assert!(
            error.contains("earlier bytes dropped") && error.ends_with("the real error"),
            "{}",
            &error[error.len().saturating_sub(200)..]
        );
        assert!(error.len() < 3000, "{} bytes", error.len());
    }
}

/// An engine that exits 0 but leaves a child holding its stderr open is done when it exits: its
/// variants are measured, not timed out.
#[test]
fn an_engine_is_done_when_it_exits_not_when_its_pipes_close() {
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runners/linear.py");
    let lingering = format!(
        "f() {{ python3 {} \"$1\" || return 1; sleep 60 & return 0; }}; f",
        runner.display()
    );
    let (code, records) = run_command(&lingering);
    assert_eq!(code, Some(0), "{records:?}");
    assert!(records.iter().all(|r| r.status == Status::Passed));
}

/// Whether process `pid` is gone (or a zombie waiting for a reaper: it runs nothing).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// `kill -9` of a run whose engine hangs with a child of its own: the worker dies with the run,
/// and the engine's process group (the engine and its child) dies with the worker, instead of
/// running on under PID 1.
#[test]
fn a_killed_run_takes_its_engine_and_the_engines_children_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let hanging = format!(
        "f() {{ sleep 300 & echo $! > {0}.tmp; echo $$ >> {0}.tmp; mv {0}.tmp {0}; wait; }}; f",
        pids.display()
    );
    let suite = dir.path().join("engine.yaml");
    std::fs::write(&suite, SUITE.replace("timeout: 5s", "timeout: 5m")).unwrap();
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_precheck"))
        .arg("run")
        .arg(&suite)
        .args(["--backend", "command", "--command", &hanging, "--out"])
        .arg(dir.path().join("run"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !pids.exists() {
        assert!(started.elapsed().as_secs() < 60, "the engine never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let engine: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(engine.len(), 2);
    assert!(engine.iter().all(|&pid| !gone(pid)), "the engine runs");
    run.kill().unwrap();
    run.wait().unwrap();
    let killed = std::time::Instant::now();
    while !engine.iter().all(|&pid| gone(pid)) {
        assert!(
            killed.elapsed().as_secs() < 10,
            "the engine {engine:?} outlived its run"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
