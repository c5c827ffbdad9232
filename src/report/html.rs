//! HTML pages: tera templates from `templates/`, embedded in the binary, filled from serializable
//! page structs. Every page is one self-contained file: inline CSS and SVG, no script, no network.
//!
//! Templates are registered under `.html` names, so tera escapes every value it prints; only the
//! SVG charts, which plotters wrote and escaped itself, are marked `safe`.

use serde::Serialize;
use tera::{Context, Tera};

use super::ReportError;
use super::{cells, charts, rows, RecordedRun};

const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("../../templates/base.html.tera")),
    (
        "report.html",
        include_str!("../../templates/report.html.tera"),
    ),
    (
        "compare.html",
        include_str!("../../templates/compare.html.tera"),
    ),
    (
        "history.html",
        include_str!("../../templates/history.html.tera"),
    ),
];

/// Renders the template `name` (`report.html`, `compare.html`, `history.html`) with `page`.
pub fn render(name: &str, page: &impl Serialize) -> Result<String, ReportError> {
    let template_error = |e: tera::Error| ReportError::Template {
        template: name.to_owned(),
        message: error_chain(&e),
    };
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES).map_err(template_error)?;
    let context = Context::from_serialize(page).map_err(template_error)?;
    tera.render(name, &context).map_err(template_error)
}

/// Tera's message and its causes (tera's own message names only the template).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A name and a value, for the environment table.
#[derive(Debug, Serialize)]
pub struct Fact {
    name: &'static str,
    value: String,
}

/// The environment of a run, from `run.json`.
pub fn environment(run: &RecordedRun) -> Vec<Fact> {
    let info = &run.info;
    let settings = &info.settings;
    let fact = |name, value: String| Fact { name, value };
    vec![
        fact(
            "suite",
            format!("{} ({})", info.suite.name, info.suite.path),
        ),
        fact("suite SHA-256", info.suite.sha256.clone()),
        fact("precheck", info.precheck_version.clone()),
        fact(
            "backend",
            format!("{} ({})", info.backend.name(), info.device_name),
        ),
        fact("host", format!("{} · {}", info.host.hostname, info.host.os)),
        fact(
            "CPU",
            format!(
                "{} · {} threads",
                info.host.cpu_model, info.host.cpu_threads
            ),
        ),
        fact("reference", settings.reference.to_string()),
        fact(
            "seed · warm-up · iterations",
            format!(
                "{} · {} · {}",
                settings.seed, settings.warmup, settings.iterations
            ),
        ),
        fact("filters", settings.filters.join(" ")),
        fact("command", info.command_line.join(" ")),
        fact("started", info.started_at.to_rfc3339()),
        fact(
            "finished",
            info.finished_at
                .map_or_else(|| "never: interrupted".to_owned(), |t| t.to_rfc3339()),
        ),
        fact("run folder", run.dir.display().to_string()),
        fact("where the time went", time_spent(run)),
    ]
}

/// The run's wall time (start to end, or its variants' sum when it never ended), the device's
/// busy share and the largest phases.
fn time_spent(run: &RecordedRun) -> String {
    let wall_s = match run.info.finished_at {
        Some(end) => (end - run.info.started_at).as_seconds_f64(),
        None => run.records.iter().map(|r| r.wall_s).sum(),
    };
    super::terminal::time_line(&run.records, wall_s)
        .unwrap_or_else(|| "not recorded (records older than `phases`)".to_owned())
}

/// The charts of a run report; a chart is absent when no variant has its numbers.
#[derive(Debug, Serialize)]
struct RunCharts {
    cosine: Option<String>,
    latency: Option<String>,
    accuracy_vs_speed: Option<String>,
    depth: Option<String>,
    /// Ids of the timed variants whose timings are an emulation's, not their precision's.
    emulated: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RunPage {
    suite: String,
    verdict: rows::Verdict,
    interrupted: bool,
    warnings: Vec<String>,
    rows: Vec<cells::VariantRow>,
    charts: RunCharts,
    depth: Option<rows::DepthTable>,
    details: Vec<rows::VariantDetail>,
    environment: Vec<Fact>,
}

/// `report.html` of a run.
pub fn run_report(run: &RecordedRun) -> Result<String, ReportError> {
    let page = RunPage {
        suite: run.info.suite.name.clone(),
        verdict: rows::Verdict::of(run),
        interrupted: run.interrupted(),
        warnings: run.warnings.clone(),
        rows: cells::failing_first(&run.records),
        charts: RunCharts {
            cosine: charts::cosine(&run.records)?,
            latency: charts::latency(&run.records)?,
            accuracy_vs_speed: charts::accuracy_vs_speed(&run.records)?,
            depth: charts::depth(&run.records)?,
            emulated: run
                .records
                .iter()
                .filter(|r| r.latency.is_some() && !cells::timed_natively(r))
                .map(|r| r.id.clone())
                .collect(),
        },
        depth: rows::DepthTable::of(&run.records),
        details: rows::details(&run.records)?,
        environment: environment(run),
    };
    render("report.html", &page)
}
