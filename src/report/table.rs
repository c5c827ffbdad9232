//! The records of a run as one flat polars table: a row per variant, a column per number. It is
//! what `results.parquet` holds, for people who analyse runs in pandas or polars.
//!
//! Conventions: a metric that was not measured (an errored variant) is null; a metric that was
//! measured as NaN (a non-finite output) stays NaN; `samples_ms` keeps every timed iteration as a
//! list. The record's other fields follow as typed, nested
//! columns ([`super::nested`]): `policy` and `phases` as structs, `failures`, `kernels` and
//! `layers` as lists of structs, and so on, so that the table holds every field of the record.

use polars::prelude::*;

use crate::measure::{Accuracy, LatencyStats};
use crate::results::VariantRecord;

/// The flat table of `records`, from the suite named `suite`.
pub fn records_table(suite: &str, records: &[VariantRecord]) -> PolarsResult<DataFrame> {
    let columns = vec![
        text("suite", records, |_| suite.to_owned()),
        text("id", records, |r| r.id.clone()),
        text("model", records, |r| r.model.clone()),
        text("block", records, |r| r.block.clone()),
        text("precision", records, |r| r.precision.clone()),
        text("device", records, |r| r.device.clone()),
        text("backend", records, |r| r.backend.name().to_owned()),
        text("device_name", records, |r| r.device_name.clone()),
        Series::new(
            "tokens".into(),
            records.iter().map(|r| r.tokens as u64).collect::<Vec<_>>(),
        )
        .into_column(),
        number("flops", records, |r| Some(r.flops)),
        text("status", records, |r| {
            super::cells::status_class(r.status).to_owned()
        }),
        accuracy("cos", records, |a| a.cos),
        accuracy("one_minus_cos", records, |a| 1.0 - a.cos),
        accuracy("max_abs_err", records, |a| a.max_abs_err),
        accuracy("mean_abs_err", records, |a| a.mean_abs_err),
        accuracy("rel_l2", records, |a| a.rel_l2),
        Series::new(
            "nonfinite".into(),
            records
                .iter()
                .map(|r| r.accuracy.map(|a| a.nonfinite as u64))
                .collect::<Vec<_>>(),
        )
        .into_column(),
        latency("median_ms", records, |l| l.median_ms),
        latency("p10_ms", records, |l| l.p10_ms),
        latency("p90_ms", records, |l| l.p90_ms),
        latency("min_ms", records, |l| l.min_ms),
        latency("max_ms", records, |l| l.max_ms),
        latency("mean_ms", records, |l| l.mean_ms),
        latency("stddev_ms", records, |l| l.stddev_ms),
        samples(records),
        optional_text("baseline_id", records, |r| {
            r.baseline.as_ref().map(|b| b.id.clone())
        }),
        number("baseline_median_ms", records, |r| {
            r.baseline.as_ref().map(|b| b.median_ms)
        }),
        number("speedup", records, |r| {
            r.baseline.as_ref().map(|b| b.speedup)
        }),
        optional_text("error", records, |r| r.error.clone()),
        text("started_at", records, |r| r.started_at.to_rfc3339()),
        number("wall_s", records, |r| Some(r.wall_s)),
    ];
    let json: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::to_value(r).expect("records serialize"))
        .collect();
    let nested = NESTED
        .iter()
        .map(|field| {
            let values: Vec<&serde_json::Value> = json.iter().map(|r| &r[*field]).collect();
            super::nested::column(field, &values)
        })
        .collect::<PolarsResult<Vec<Column>>>()?;
    DataFrame::new(records.len(), [columns, nested].concat())
}

/// The record's fields that are columns as they are in the record, nested where it nests (the
/// others are flattened above, into columns of their own).
const NESTED: [&str; 13] = [
    "schema",
    "policy",
    "failures",
    "emulated",
    "cpu_agreement",
    "kernels",
    "mismatch",
    "layers",
    "clocks",
    "cache",
    "phases",
    "worker",
    "gates",
];

fn text(name: &str, records: &[VariantRecord], cell: impl Fn(&VariantRecord) -> String) -> Column {
    let values: Vec<String> = records.iter().map(cell).collect();
    Series::new(name.into(), values).into_column()
}

fn optional_text(
    name: &str,
    records: &[VariantRecord],
    cell: impl Fn(&VariantRecord) -> Option<String>,
) -> Column {
    let values: Vec<Option<String>> = records.iter().map(cell).collect();
    Series::new(name.into(), values).into_column()
}

fn number(
    name: &str,
    records: &[VariantRecord],
    cell: impl Fn(&VariantRecord) -> Option<f64>,
) -> Column {
    let values: Vec<Option<f64>> = records.iter().map(cell).collect();
    Series::new(name.into(), values).into_column()
}

fn accuracy(name: &str, records: &[VariantRecord], metric: impl Fn(&Accuracy) -> f64) -> Column {
    number(name, records, |r| r.accuracy.as_ref().map(&metric))
}

fn latency(name: &str, records: &[VariantRecord], stat: impl Fn(&LatencyStats) -> f64) -> Column {
    number(name, records, |r| r.latency.as_ref().map(&stat))
}

/// Every timed iteration, as a list per variant (null when not timed).
fn samples(records: &[VariantRecord]) -> Column {
    let lists: Vec<Option<Series>> = records
        .iter()
        .map(|r| {
            r.latency
                .as_ref()
                .map(|l| Series::new("".into(), l.samples_ms.as_slice()))
        })
        .collect();
    Series::new("samples_ms".into(), lists).into_column()
}
