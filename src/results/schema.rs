//! The record's JSON Schema (draft 2020-12), derived from the record's types, so that it cannot
//! drift from what the writer writes. Its `$id` carries [`RECORD_SCHEMA`]; the committed copy,
//! [`SCHEMA_FILE`], is checked against it by the tests, and every record the tests write is
//! validated against it.

use super::record::{VariantRecord, RECORD_SCHEMA};

/// Where the repository keeps the schema of the current record version.
pub const SCHEMA_FILE: &str = "schema/record-v2.schema.json";

/// The JSON Schema of one line of `results.jsonl`.
pub fn record_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(VariantRecord).to_value();
    let object = schema.as_object_mut().expect("a schema is an object");
    object.insert(
        "$id".into(),
        format!("https://precheck.dev/schema/record-v{RECORD_SCHEMA}.schema.json").into(),
    );
    object.insert(
        "title".into(),
        format!("precheck variant record, schema {RECORD_SCHEMA}").into(),
    );
    schema
}
