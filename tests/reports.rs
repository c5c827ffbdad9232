//! Reports end to end: the files a run writes, read back and checked against results.jsonl;
//! escaping; `compare` on recorded runs (tests/fixtures/runs/README.md); `history`.

#![cfg(feature = "report")]

mod common;

use common::{junit, precheck};

use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::{DataFrame, ParquetReader, SerReader};
use precheck::report::{HTML_FILE, JUNIT_FILE, MARKDOWN_FILE, PARQUET_FILE};
use precheck::results::{read_records, Status, VariantRecord};
use predicates::prelude::*;
use quick_xml::events::Event;

const FIXTURES: &str = "tests/fixtures/runs";

fn records(dir: &Path) -> Vec<VariantRecord> {
    read_records(&dir.join("results.jsonl")).unwrap().0
}

/// A copy of the recorded run `name` in a fresh folder, so that tests never write into fixtures.
fn fixture_copy(name: &str, into: &Path) -> PathBuf {
    let copy = into.join(name);
    fs::create_dir_all(&copy).unwrap();
    for file in ["results.jsonl", "run.json"] {
        fs::copy(Path::new(FIXTURES).join(name).join(file), copy.join(file)).unwrap();
    }
    copy
}

/// A JUnit test case as read back.
#[derive(Debug, Default)]
struct Case {
    name: String,
    classname: String,
    failure: Option<String>,
    error: Option<String>,
}

/// The `<testsuite>` name and every `<testcase>` of a JUnit file, attributes unescaped.
fn parse_junit(path: &Path) -> (String, Vec<Case>) {
    let text = fs::read_to_string(path).unwrap();
    if let Err(problem) = junit::check_strict(&text) {
        panic!("{} is not valid JUnit: {problem}\n{text}", path.display());
    }
    let mut reader = quick_xml::Reader::from_str(&text);
    let (mut suite, mut cases) = (String::new(), Vec::<Case>::new());
    loop {
        let event = reader.read_event().unwrap();
        let element = match &event {
            Event::Start(e) | Event::Empty(e) => e.clone(),
            Event::Eof => break,
            _ => continue,
        };
        let attribute = |name: &str| {
            element
                .try_get_attribute(name)
                .unwrap()
                .map(|a| a.unescape_value().unwrap().into_owned())
        };
        match element.name().as_ref() {
            b"testsuite" => suite = attribute("name").unwrap(),
            b"testcase" => cases.push(Case {
                name: attribute("name").unwrap(),
                classname: attribute("classname").unwrap(),
                ..Case::default()
            }),
            b"failure" => cases.last_mut().unwrap().failure = attribute("message"),
            b"error" => cases.last_mut().unwrap().error = attribute("message"),
            _ => {}
        }
    }
    (suite, cases)
}

/// `text` as tera's HTML escaping writes it (it escapes `/` too).
fn escaped(text: &str) -> String {
    text.replace('/', "&#x2F;")
}

/// A variant's id cell in an HTML table.
fn cell(id: &str) -> String {
    format!("<td class=\"id\">{}</td>", escaped(id))
}

fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn texts(table: &DataFrame, column: &str) -> Vec<Option<String>> {
    let column = table.column(column).unwrap().str().unwrap();
    (0..column.len())
        .map(|i| column.get(i).map(str::to_owned))
        .collect()
}

fn numbers(table: &DataFrame, column: &str) -> Vec<Option<f64>> {
    let column = table.column(column).unwrap().f64().unwrap();
    (0..column.len()).map(|i| column.get(i)).collect()
}

/// JUnit and Parquet say what results.jsonl says, variant by variant.
fn check_against_records(dir: &Path, records: &[VariantRecord]) {
    let (suite, cases) = parse_junit(&dir.join(JUNIT_FILE));
    assert_eq!(suite, "smoke");
    assert_eq!(cases.len(), records.len());
    for (case, record) in cases.iter().zip(records) {
        assert_eq!(case.name, record.id);
        assert_eq!(case.classname, format!("smoke.{}", record.model));
        assert_eq!(
            case.failure.is_some(),
            record.status == Status::Failed,
            "{case:?}"
        );
        assert_eq!(
            case.error.is_some(),
            record.status == Status::Error,
            "{case:?}"
        );
        for failure in &record.failures {
            assert!(case
                .failure
                .as_ref()
                .unwrap()
                .contains(&failure.to_string()));
        }
    }

    let table = read_parquet(&dir.join(PARQUET_FILE));
    assert_eq!(table.height(), records.len());
    let ids: Vec<Option<String>> = records.iter().map(|r| Some(r.id.clone())).collect();
    assert_eq!(texts(&table, "id"), ids);
    let cos: Vec<Option<f64>> = records.iter().map(|r| r.accuracy.map(|a| a.cos)).collect();
    assert_eq!(numbers(&table, "cos"), cos);
    let medians: Vec<Option<f64>> = records
        .iter()
        .map(|r| r.latency.as_ref().map(|l| l.median_ms))
        .collect();
    assert_eq!(numbers(&table, "median_ms"), medians);
    let statuses: Vec<Option<String>> = records
        .iter()
        .map(|r| Some(format!("{:?}", r.status).to_lowercase()))
        .collect();
    assert_eq!(texts(&table, "status"), statuses);
    let samples = table.column("samples_ms").unwrap().list().unwrap();
    for (i, record) in records.iter().enumerate() {
        let list = samples.get_as_series(i).unwrap();
        let list = list.f64().unwrap();
        let values: Vec<Option<f64>> = (0..list.len()).map(|j| list.get(j)).collect();
        let recorded: Vec<Option<f64>> = record
            .latency
            .as_ref()
            .unwrap()
            .samples_ms
            .iter()
            .map(|&s| Some(s))
            .collect();
        assert_eq!(values, recorded);
    }
    check_every_field_is_a_typed_column(&table, records);
}

/// Every field of the record is in the table: flattened (accuracy, latency, baseline) or as it is,
/// nested where the record nests, each typed (no number or structure as text).
fn check_every_field_is_a_typed_column(table: &DataFrame, records: &[VariantRecord]) {
    use polars::prelude::DataType;
    let has = |column: &str| table.column(column).is_ok();
    for record in records {
        let json = serde_json::to_value(record).unwrap();
        for (field, value) in json.as_object().unwrap() {
            let flattened: Vec<String> = match field.as_str() {
                "accuracy" | "latency" => value
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default(),
                "baseline" => vec![
                    "baseline_id".into(),
                    "baseline_median_ms".into(),
                    "speedup".into(),
                ],
                _ => vec![field.clone()],
            };
            for column in flattened {
                assert!(
                    has(&column),
                    "record field `{field}` has no column `{column}`"
                );
            }
        }
    }
    let dtype = |column: &str| table.column(column).unwrap().dtype().clone();
    assert_eq!(dtype("tokens"), DataType::UInt64);
    assert_eq!(dtype("schema"), DataType::Int64);
    assert_eq!(dtype("emulated"), DataType::Boolean);
    assert!(
        matches!(dtype("policy"), DataType::Struct(_)),
        "{:?}",
        dtype("policy")
    );
    assert!(matches!(dtype("gates"), DataType::Struct(_)));
    if records.iter().any(|r| r.phases.is_some()) {
        assert!(matches!(dtype("phases"), DataType::Struct(_)));
    }
    assert!(matches!(dtype("failures"), DataType::List(_)));
    // The policy's fields read back as the record has them.
    let policy = table.column("policy").unwrap().struct_().unwrap().clone();
    let names = policy.field_by_name("name").unwrap();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            names.str().unwrap().get(i),
            Some(record.policy.name.as_str())
        );
    }
}

#[test]
fn a_smoke_run_writes_every_report_and_they_agree_with_the_records() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    precheck()
        .args(["run", "suites/smoke.yaml", "--iterations", "3", "--out"])
        .arg(&run)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("reports: "));
    for file in [
        "results.jsonl",
        "run.json",
        HTML_FILE,
        MARKDOWN_FILE,
        JUNIT_FILE,
        PARQUET_FILE,
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let records = records(&run);
    assert_eq!(records.len(), 6);
    check_against_records(&run, &records);

    let html = fs::read_to_string(run.join(HTML_FILE)).unwrap();
    assert!(html.contains("PASS · suite smoke"));
    assert_eq!(
        html.matches("<svg").count(),
        2 + records.len(),
        "cosine and latency, no accuracy against speed for a CPU run's emulated timings; and \
         each variant's histogram of timed iterations"
    );
    // Each variant in detail: its percentiles, and whether they time an emulation.
    for record in &records {
        let detail = html
            .split(&format!(
                "<summary><span class=\"id\">{}",
                escaped(&record.id)
            ))
            .nth(1)
            .unwrap_or_else(|| panic!("{} has no detail", record.id));
        let latency = detail.split("<p>").nth(1).unwrap();
        assert!(
            latency.starts_with("3 timed iterations, ms: p50 "),
            "{latency}"
        );
        assert!(latency.contains(" · p99 "), "{latency}");
        let emulation = latency.split("</p>").next().unwrap().contains("emulation");
        assert_eq!(emulation, record.emulated, "{}: {latency}", record.id);
    }
    assert!(html.contains("Not performance: 6 variants were timed as an emulation"));
    for record in &records {
        let expected = if record.emulated { "emulated" } else { "—" };
        assert_eq!(record.emulated, record.precision != "fp32", "{}", record.id);
        let row = html.split(&cell(&record.id)).nth(1).unwrap();
        let speedup = row.split("<td class=\"num\">").nth(7).unwrap();
        assert!(speedup.starts_with(expected), "{}: {speedup}", record.id);
    }
    // Self-contained: no script, nothing fetched.
    for forbidden in ["<script", "src=\"http", "href=\"http", "<link"] {
        assert!(!html.contains(forbidden), "{forbidden}");
    }
    let summary = fs::read_to_string(run.join(MARKDOWN_FILE)).unwrap();
    assert!(summary.starts_with("## ✅ precheck `smoke`: PASS"));
    for record in &records {
        assert!(html.contains(&cell(&record.id)));
        assert!(summary.contains(&record.id.replace('_', "\\_")));
    }
}

#[test]
fn report_of_a_failing_run_puts_failures_first_and_exits_1() {
    let out = tempfile::tempdir().unwrap();
    let run = fixture_copy("regressed", out.path());
    precheck()
        .arg("report")
        .arg(&run)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "FAIL  tiny_mlp/bf16/cpu: cos 0.998500 < 0.999",
        ));
    let records = records(&run);
    check_against_records(&run, &records);

    let html = fs::read_to_string(run.join(HTML_FILE)).unwrap();
    assert!(html.contains("FAIL · suite smoke"));
    assert!(html.contains("1 variant failed cos_min"));
    let first_row = html.find("<tr class=").unwrap();
    assert!(html[first_row..].starts_with("<tr class=\"failed\">"));
    let failing = html.find(&cell("tiny_mlp/bf16/cpu")).unwrap();
    let passing = html.find(&cell("tiny_linear/bf16/cpu")).unwrap();
    assert!(failing < passing, "failing rows come first");
    let summary = fs::read_to_string(run.join(MARKDOWN_FILE)).unwrap();
    assert!(summary.contains("- **FAIL** tiny\\_mlp/bf16/cpu: cos 0.998500 &lt; 0.999"));
}

#[test]
fn markup_in_names_and_messages_stays_text() {
    let out = tempfile::tempdir().unwrap();
    let run = fixture_copy("regressed", out.path());
    let info_path = run.join("run.json");
    let mut info: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&info_path).unwrap()).unwrap();
    let hostile = "<script>alert(\"x\")</script>&'";
    info["suite"]["name"] = hostile.into();
    info["host"]["hostname"] = "<img src=x onerror=alert(1)>".into();
    fs::write(&info_path, info.to_string()).unwrap();
    precheck().arg("report").arg(&run).assert().code(1);

    let html = fs::read_to_string(run.join(HTML_FILE)).unwrap();
    assert!(!html.contains("<script"), "a suite name became markup");
    assert!(!html.contains("<img"), "a host name became markup");
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2F;script&gt;&amp;&#x27;"));
    let summary = fs::read_to_string(run.join(MARKDOWN_FILE)).unwrap();
    assert!(!summary.contains("<script"));
    assert!(summary.contains("&lt;script&gt;"));
    // JUnit stays well-formed XML and reads back as the very name.
    let (suite, cases) = parse_junit(&run.join(JUNIT_FILE));
    assert_eq!(suite, hostile);
    assert_eq!(cases[0].classname, format!("{hostile}.tiny_linear"));
}

#[test]
fn compare_does_not_flag_two_runs_of_the_same_build() {
    let out = tempfile::tempdir().unwrap();
    precheck()
        .args([
            "compare",
            "tests/fixtures/runs/base",
            "tests/fixtures/runs/same_build",
        ])
        .arg("--out")
        .arg(out.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "6 variants compared: 0 regressed, 0 new, 0 missing",
        ))
        .stdout(predicate::str::contains("REGRESSION").not())
        .stderr(predicate::str::contains(
            "note: drift between runs not measured (1 base run)",
        ));
    let html = fs::read_to_string(out.path().join("compare.html")).unwrap();
    assert!(html.contains("NO REGRESSION"));
    let markdown = fs::read_to_string(out.path().join("compare.md")).unwrap();
    assert!(markdown.starts_with("## ✅ precheck compare: NO REGRESSION"));
}

#[test]
fn compare_flags_the_planted_slowdown_accuracy_drop_and_failure() {
    let out = tempfile::tempdir().unwrap();
    let assert = precheck()
        .args([
            "compare",
            "tests/fixtures/runs/base",
            "tests/fixtures/runs/regressed",
        ])
        .arg("--out")
        .arg(out.path())
        .assert()
        .code(1);
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let regressions: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("REGRESSION"))
        .collect();
    assert_eq!(regressions.len(), 3, "{stdout}");
    let line = |id: &str| {
        regressions
            .iter()
            .find(|l| l.contains(&format!(" {id}: ")))
            .unwrap_or_else(|| panic!("{id} not flagged: {stdout}"))
            .to_string()
    };
    assert!(line("tiny_linear/fp32/cpu").contains("slower"));
    assert!(line("tiny_linear/fp16/cpu").contains("accuracy dropped"));
    assert!(line("tiny_mlp/bf16/cpu").contains("verdict pass → FAIL"));
    assert!(stdout.contains("6 variants compared: 3 regressed, 0 new, 0 missing"));
    let markdown = fs::read_to_string(out.path().join("compare.md")).unwrap();
    assert!(markdown.starts_with("## ❌ precheck compare: REGRESSION"));
}

/// Twenty runs of one build, one after the other, on one machine (tests/fixtures/runs/README.md).
fn repeats(machine: &str) -> Vec<PathBuf> {
    (1..=20)
        .map(|i| {
            Path::new(FIXTURES)
                .join("repeats")
                .join(machine)
                .join(format!("{i:02}"))
        })
        .collect()
}

/// `precheck compare --format json BASES... HEAD --out OUT`: its exit code and its JSON.
fn compare_json(bases: &[PathBuf], head: &Path, out: &Path) -> (i32, serde_json::Value) {
    let output = precheck()
        .args(["--format", "json", "compare"])
        .args(bases)
        .arg(head)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stderr));
    });
    (output.status.code().unwrap(), json)
}

/// The latency comparison of variant `id` in a `compare --format json` answer.
fn latency_of<'a>(compared: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    let variants = compared["variants"].as_array().unwrap();
    &variants.iter().find(|v| v["id"] == id).unwrap()["latency"]
}

#[test]
fn compare_measures_drift_so_twenty_runs_of_one_build_never_regress() {
    // Each run against the five before it, as a nightly compares with its last five nights. On
    // the H200 the BF16 MLP's median moves by up to 10 % between these runs, and the host CPU's
    // tiny linear by 3×; with one base, compare flags 1 of 19 consecutive GPU pairs and 10 of 19
    // CPU pairs.
    let out = tempfile::tempdir().unwrap();
    for machine in ["h200-seed", "h200-host-cpu"] {
        let runs = repeats(machine);
        for head in 5..runs.len() {
            let (code, compared) = compare_json(&runs[head - 5..head], &runs[head], out.path());
            assert_eq!(
                code,
                0,
                "{machine} run {head}: {}",
                serde_json::to_string_pretty(&compared["variants"]).unwrap()
            );
            assert!(!compared["caveats"].to_string().contains("drift"));
        }
    }
}

/// Scales every latency of variant `id` in the run folder `dir` by `factor`: a planted slowdown.
fn slow_down(dir: &Path, id: &str, factor: f64) {
    let path = dir.join("results.jsonl");
    let lines: Vec<String> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["id"] == id {
                let latency = record["latency"].as_object_mut().unwrap();
                for value in latency.values_mut() {
                    match value {
                        serde_json::Value::Number(ms) => {
                            *value = (ms.as_f64().unwrap() * factor).into();
                        }
                        serde_json::Value::Array(samples) => {
                            for ms in samples.iter_mut() {
                                *ms = (ms.as_f64().unwrap() * factor).into();
                            }
                        }
                        _ => {}
                    }
                }
            }
            record.to_string()
        })
        .collect();
    fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn compare_with_measured_drift_catches_a_slowdown_beyond_it_and_only_that() {
    let out = tempfile::tempdir().unwrap();
    let runs = repeats("h200-seed");
    let head = out.path().join("head");
    fs::create_dir_all(&head).unwrap();
    for file in ["results.jsonl", "run.json"] {
        fs::copy(runs[19].join(file), head.join(file)).unwrap();
    }
    // 5 % on two MLPs: FP8's median holds within 0.3 % from run to run, BF16's moves by 2 % in
    // these five runs, which puts 5 % (11 % against their mean) within its drift.
    let (fp8, bf16) = ("paligemma_mlp/fp8_e4m3/h200", "paligemma_mlp/bf16/h200");
    slow_down(&head, fp8, 1.05);
    slow_down(&head, bf16, 1.05);
    let (code, compared) = compare_json(&runs[14..19], &head, out.path());
    assert_eq!(code, 1, "{compared}");
    let regressed: Vec<&str> = compared["variants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["findings"].to_string().contains("slower"))
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(regressed, [fp8]);
    let (fp8_latency, bf16_latency) = (latency_of(&compared, fp8), latency_of(&compared, bf16));
    assert_eq!(fp8_latency["base_runs"], 5);
    assert_eq!(fp8_latency["threshold"], 0.03, "the minimum effect decides");
    let bf16_threshold = bf16_latency["threshold"].as_f64().unwrap();
    let bf16_change = bf16_latency["change"].as_f64().unwrap();
    assert!(
        bf16_change > 0.05 && bf16_threshold > bf16_change,
        "{bf16_latency}"
    );
    assert_eq!(bf16_latency["drift"]["margin"], bf16_threshold);
    // The same head against one base: drift unmeasured, the BF16 MLP flagged as well.
    let (code, compared) = compare_json(&runs[18..19], &head, out.path());
    assert_eq!(code, 1);
    assert!(latency_of(&compared, bf16)["drift"].is_null());
    assert!(compared["caveats"]
        .to_string()
        .contains("drift between runs not measured"));
}

#[test]
fn compare_lists_new_and_missing_variants() {
    let out = tempfile::tempdir().unwrap();
    let base = fixture_copy("base", out.path());
    let lines = fs::read_to_string(base.join("results.jsonl")).unwrap();
    let kept: Vec<&str> = lines
        .lines()
        .filter(|l| !l.contains("\"id\":\"tiny_mlp/fp16/cpu\""))
        .collect();
    fs::write(base.join("results.jsonl"), kept.join("\n") + "\n").unwrap();
    let head = fixture_copy("same_build", out.path());
    let lines = fs::read_to_string(head.join("results.jsonl")).unwrap();
    let renamed = lines.replace("tiny_linear/fp32/cpu", "tiny_linear/fp32_new/cpu");
    fs::write(head.join("results.jsonl"), renamed).unwrap();
    precheck()
        .arg("compare")
        .arg(&base)
        .arg(&head)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "4 variants compared: 0 regressed, 2 new, 1 missing",
        ));
    let markdown = fs::read_to_string(head.join("compare.md")).unwrap();
    assert!(
        markdown.contains("**New variants**: tiny\\_linear/fp32\\_new/cpu, tiny\\_mlp/fp16/cpu")
    );
    assert!(markdown.contains("**Missing variants**: tiny\\_linear/fp32/cpu"));
}

#[test]
fn compare_of_a_folder_without_results_exits_2() {
    let out = tempfile::tempdir().unwrap();
    precheck()
        .args(["compare", "tests/fixtures/runs/base"])
        .arg(out.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("run.json"));
}

#[test]
fn history_charts_every_run_and_marks_the_failing_one() {
    let out = tempfile::tempdir().unwrap();
    let reports = out.path().join("reports").join("smoke");
    for name in ["base", "same_build", "regressed"] {
        fixture_copy(name, &reports);
    }
    precheck()
        .arg("history")
        .arg(out.path().join("reports"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("suite smoke: 3 runs"));
    let html = fs::read_to_string(out.path().join("reports").join("history.html")).unwrap();
    // Two charts per variant, oldest run first.
    assert_eq!(html.matches("<svg").count(), 12);
    let order: Vec<usize> = ["base", "same_build", "regressed"]
        .iter()
        .map(|name| html.find(&format!("smoke&#x2F;{name}</td>")).unwrap())
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{order:?}");
    assert!(html.contains(&format!(
        "{} <span class=\"why\">· failed in 1 run</span>",
        escaped("tiny_mlp/bf16/cpu")
    )));
    assert_eq!(html.matches("failed in").count(), 1);
}

#[test]
fn history_of_a_folder_without_runs_exits_2() {
    let out = tempfile::tempdir().unwrap();
    precheck()
        .arg("history")
        .arg(out.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no run folders"));
}

/// A run killed after some variants, or one whose record was deleted, is INCOMPLETE in every
/// report (JUnit counts the missing variants as errors, saying why) and `precheck report` exits
/// 130 for a stopped run and 3 for a missing record, never 0.
#[test]
fn an_interrupted_or_partial_run_is_incomplete_in_every_report() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    precheck()
        .args(["run", "suites/smoke.yaml", "--iterations", "2", "--out"])
        .arg(&run)
        .assert()
        .code(0);
    let results = fs::read_to_string(run.join("results.jsonl")).unwrap();
    let kept: Vec<&str> = results.lines().take(2).collect();
    fs::write(run.join("results.jsonl"), kept.join("\n") + "\n").unwrap();
    let info_path = run.join("run.json");
    let finished: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&info_path).unwrap()).unwrap();
    let mut stopped = finished.clone();
    stopped["finished_at"] = serde_json::Value::Null;
    for (info, code, why) in [
        (&stopped, 130, "the run was stopped"),
        (&finished, 3, "no record: the plan has this variant"),
    ] {
        fs::write(&info_path, serde_json::to_string(info).unwrap()).unwrap();
        precheck().arg("report").arg(&run).assert().code(code);
        let summary = fs::read_to_string(run.join(MARKDOWN_FILE)).unwrap();
        assert!(
            summary.starts_with("## ⚠️ precheck `smoke`: INCOMPLETE")
                && summary.contains("4 of 6 planned variants have no record"),
            "{summary}"
        );
        let html = fs::read_to_string(run.join(HTML_FILE)).unwrap();
        assert!(html.contains("<h1>INCOMPLETE"), "{code}");
        let (_, cases) = parse_junit(&run.join(JUNIT_FILE));
        assert_eq!(cases.len(), 6, "every planned variant is a test case");
        let errors: Vec<&String> = cases.iter().filter_map(|c| c.error.as_ref()).collect();
        assert_eq!(errors.len(), 4);
        assert!(errors.iter().all(|e| e.contains(why)), "{errors:?}");
    }
}

/// Two runs with nothing in common exit 2 (not 0: nothing was compared), and runs with other
/// seeds or iteration counts say so.
#[test]
fn compare_says_what_differs_and_refuses_runs_with_nothing_in_common() {
    let out = tempfile::tempdir().unwrap();
    let base = fixture_copy("base", out.path());
    let other = out.path().join("other");
    let suite = out.path().join("tiny.yaml");
    fs::write(
        &suite,
        "name: tiny\nmodels: [{ name: other, block: linear, dims: { hidden: 8 }, input: { tokens: 2 } }]\nprecisions: [bf16]\n",
    )
    .unwrap();
    precheck()
        .arg("run")
        .arg(&suite)
        .args(["--iterations", "2", "--seed", "99", "--out"])
        .arg(&other)
        .assert()
        .code(0);
    let output = precheck()
        .arg("compare")
        .arg(&base)
        .arg(&other)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("different suites"), "{stderr}");
    assert!(stderr.contains("different seeds"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("0 variants compared"), "{stdout}");
}

/// The checker itself: each rule of the strict schema that precheck's JUnit once broke, or could.
#[test]
fn the_junit_rules_refuse_what_jenkins_strict_schema_refuses() {
    let case = |inside: &str| {
        format!(
            "<testsuites><testsuite name=\"s\" tests=\"1\"><testcase name=\"c\">{inside}</testcase></testsuite></testsuites>"
        )
    };
    assert_eq!(
        junit::check_strict(&case("<system-out>x</system-out>")),
        Ok(())
    );
    let refused = [
        (
            case("<skipped message=\"m\"/>"),
            "cannot have the attribute `message`",
        ),
        (case("<failure/><skipped/>"), "<skipped> after <failure>"),
        (case("<skipped/><skipped/>"), "more than 1 <skipped>"),
        (
            case("<system-out>\u{1b}[31mred</system-out>"),
            "control character",
        ),
        (case("<flaky/>"), "not in the schema"),
        (
            "<testsuites><testsuite name=\"s\" tests=\"0\"><properties/></testsuite></testsuites>"
                .into(),
            "needs a <property>",
        ),
        (
            "<testsuite tests=\"0\"/>".into(),
            "lacks the attribute `name`",
        ),
    ];
    for (xml, problem) in refused {
        let error = junit::check_strict(&xml).unwrap_err();
        assert!(error.contains(problem), "{xml}: {error}");
    }
}
