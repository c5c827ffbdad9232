//! The record's JSON Schema (`schema/record-v2.schema.json`): the committed copy is the one the
//! record's types give, and real records validate against it: recorded runs, a fresh run, a run
//! whose workers crashed, and a record with a NaN cosine.

mod common;

use common::{precheck, quick_smoke};

use std::fs;
use std::path::Path;

use precheck::results::{read_records, record_schema, Status, SCHEMA_FILE};

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&record_schema()).expect("the record's schema is a valid schema")
}

/// Every line of `path`, checked against the schema.
fn check_lines(validator: &jsonschema::Validator, path: &Path) -> usize {
    let text = fs::read_to_string(path).unwrap();
    let mut checked = 0;
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let problems: Vec<String> = validator
            .iter_errors(&record)
            .map(|e| e.to_string())
            .collect();
        assert!(
            problems.is_empty(),
            "{}:{}: {problems:?}",
            path.display(),
            number + 1
        );
        checked += 1;
    }
    checked
}

#[test]
fn the_committed_schema_is_the_one_the_record_types_give() {
    let committed: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(SCHEMA_FILE).unwrap()).unwrap();
    assert!(
        committed == record_schema(),
        "{SCHEMA_FILE} is stale: `precheck schema > {SCHEMA_FILE}` (and bump RECORD_SCHEMA if a \
         field changed meaning)"
    );
    let printed = precheck().arg("schema").output().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&printed.stdout).unwrap(),
        committed
    );
}

#[test]
fn recorded_fresh_crashed_and_nan_records_validate() {
    let validator = validator();
    let mut checked = 0;
    for run in ["base", "regressed", "same_build"] {
        checked += check_lines(
            &validator,
            &Path::new("tests/fixtures/runs")
                .join(run)
                .join("results.jsonl"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, fault: &str| {
        let out = dir.path().join(name);
        quick_smoke(&out)
            .env("PRECHECK_TEST_WORKER_FAULT", fault)
            .output()
            .unwrap();
        out.join("results.jsonl")
    };
    checked += check_lines(&validator, &run("fresh", ""));
    let crashed = run("crashed", "fp16=segfault");
    let (records, _) = read_records(&crashed).unwrap();
    assert!(records
        .iter()
        .any(|r| r.status == Status::Error && r.worker.is_some()));
    checked += check_lines(&validator, &crashed);

    // A non-finite output: its cosine is NaN, written as null.
    let mut record = records
        .iter()
        .find(|r| r.accuracy.is_some())
        .unwrap()
        .clone();
    let accuracy = record.accuracy.as_mut().unwrap();
    accuracy.cos = f64::NAN;
    accuracy.max_abs_err = f64::INFINITY;
    let line = serde_json::to_value(&record).unwrap();
    assert!(line["accuracy"]["cos"].is_null());
    assert!(validator.is_valid(&line));

    // And the schema refuses what is not a record.
    let mut wrong = line.clone();
    wrong["status"] = "passed_mostly".into();
    assert!(!validator.is_valid(&wrong));
    wrong = line;
    wrong.as_object_mut().unwrap().remove("id");
    assert!(!validator.is_valid(&wrong));
    assert!(checked > 20, "{checked} records checked");
}
