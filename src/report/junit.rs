//! `junit.xml`: one test case per variant, so that GitLab, Jenkins and GitHub test reporters show
//! precheck's verdicts next to the unit tests.
//!
//! Layout: valid against Jenkins' strict JUnit schema (its xunit plugin's `junit-4.xsd`), which
//! GitLab and GitHub reporters read too. `<testsuites>` → one `<testsuite>` named after the suite →
//! a `<testcase name="ID" classname="SUITE.MODEL">` per variant, holding, in the schema's order,
//! `<skipped>why</skipped>` (the schema gives it no attributes), `<error type="error"
//! message="first line">whole message</error>` when it errored, `<failure type="GATE"
//! message="…">` when a gate failed, its numbers in `<system-out>` when it was measured, and in
//! `<system-err>` a crashed worker's stderr or an engine's error output. Terminal escapes are
//! removed from everything an engine wrote.

use serde::Serialize;
use tera::{Context, Tera};

use super::cells::VariantRow;
use super::{html::error_chain, RecordedRun, ReportError};
use crate::results::{Status, VariantRecord};

const TEMPLATE: &str = include_str!("../../templates/junit.xml.tera");

#[derive(Debug, Serialize)]
struct Suite {
    name: String,
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
    timestamp: String,
    hostname: String,
    properties: Vec<(&'static str, String)>,
    cases: Vec<Case>,
}

#[derive(Debug, Serialize)]
struct Case {
    name: String,
    classname: String,
    time: f64,
    failure: Option<Problem>,
    error: Option<Problem>,
    skipped: Option<String>,
    /// The variant's numbers, when it was measured.
    output: Option<String>,
    /// A crashed or hung worker's stderr, or an errored variant's whole message (an engine's
    /// output is in it).
    stderr: Option<String>,
}

#[derive(Debug, Serialize)]
struct Problem {
    kind: String,
    /// One line, for the reporters that show only the attribute.
    message: String,
    /// The whole text.
    text: String,
}

impl Problem {
    fn new(kind: String, text: &str) -> Self {
        let text = strip_terminal_escapes(text.trim());
        Problem {
            kind,
            message: first_line(&text),
            text,
        }
    }
}

/// The first line of `text`, at most [`MESSAGE_CHARS`] characters.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// How long a `message` attribute may be: reporters show it on one line.
const MESSAGE_CHARS: usize = 300;

fn case(suite: &str, record: &VariantRecord) -> Case {
    let row = VariantRow::of(record);
    let gates = || {
        record
            .failures
            .iter()
            .map(|f| f.gate.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let measured = matches!(record.status, Status::Passed | Status::Failed);
    let worker_stderr = record.worker.as_ref().map(|w| w.stderr_tail.as_str());
    let stderr = match (record.status, worker_stderr) {
        (_, Some(tail)) if !tail.trim().is_empty() => Some(tail),
        (Status::Error, _) => record.error.as_deref(),
        _ => None,
    };
    Case {
        name: record.id.clone(),
        classname: format!("{suite}.{}", record.model),
        time: record.wall_s,
        failure: (record.status == Status::Failed).then(|| Problem::new(gates(), &row.why)),
        error: (record.status == Status::Error).then(|| Problem::new("error".into(), &row.why)),
        skipped: (record.status == Status::Skipped).then(|| strip_terminal_escapes(&row.why)),
        stderr: stderr.map(strip_terminal_escapes),
        output: measured.then(|| {
            format!(
                "precision {} ({}) on {}: cos {}, 1 - cos {}, max abs err {}, median {} ms (p10-p90 {}), speed-up {}",
                record.precision,
                record.policy,
                record.device_name,
                row.cos,
                row.one_minus_cos,
                row.max_abs_err,
                row.median_ms,
                row.spread_ms,
                row.speedup,
            )
        }),
    }
}

/// `text` without the terminal's escape sequences (`ESC [ … m` colours, cursor moves): an
/// engine's stderr as a CI server should show it.
pub fn strip_terminal_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // Parameters and intermediates, then one final byte in @..~.
            for next in chars.by_ref() {
                if ('@'..='~').contains(&next) {
                    break;
                }
            }
        }
    }
    out
}

/// Escapes text for XML content and attribute values, dropping the control characters XML 1.0
/// cannot hold even as references.
pub fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if (c as u32) < 0x20 => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// `junit.xml` of a run.
pub fn junit(run: &RecordedRun) -> Result<String, ReportError> {
    let info = &run.info;
    let count = |status| run.records.iter().filter(|r| r.status == status).count();
    let missing = run.missing();
    let why_missing = if run.interrupted() {
        "not run: the run was stopped before this variant ended"
    } else {
        "no record: the plan has this variant and results.jsonl does not"
    };
    let mut cases: Vec<Case> = run
        .records
        .iter()
        .map(|r| case(&info.suite.name, r))
        .collect();
    cases.extend(missing.iter().map(|id| Case {
        name: id.to_string(),
        classname: format!(
            "{}.{}",
            info.suite.name,
            id.split('/').next().unwrap_or_default()
        ),
        time: 0.0,
        failure: None,
        error: Some(Problem::new("incomplete".to_owned(), why_missing)),
        skipped: None,
        output: None,
        stderr: None,
    }));
    let suite = Suite {
        name: info.suite.name.clone(),
        tests: cases.len(),
        failures: count(Status::Failed),
        errors: count(Status::Error) + missing.len(),
        skipped: count(Status::Skipped),
        time: run.records.iter().map(|r| r.wall_s).sum(),
        timestamp: info.started_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        hostname: info.host.hostname.clone(),
        properties: vec![
            ("precheck_version", info.precheck_version.clone()),
            ("suite_path", info.suite.path.clone()),
            ("suite_sha256", info.suite.sha256.clone()),
            ("backend", info.backend.name().to_owned()),
            ("device", info.device_name.clone()),
            ("seed", info.settings.seed.to_string()),
            ("iterations", info.settings.iterations.to_string()),
        ],
        cases,
    };
    let template_error = |e: tera::Error| ReportError::Template {
        template: "junit.xml".to_owned(),
        message: error_chain(&e),
    };
    let mut tera = Tera::default();
    // tera's HTML escaping would turn every `/` of a variant id into `&#x2F;`: valid XML, but
    // unreadable in the reporters that show raw names; XML needs only these five.
    tera.set_escape_fn(escape_xml);
    tera.add_raw_template("junit.xml", TEMPLATE)
        .map_err(template_error)?;
    let context = Context::from_serialize(&suite).map_err(template_error)?;
    tera.render("junit.xml", &context).map_err(template_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_xml_escapes_markup_and_drops_forbidden_controls() {
        assert_eq!(
            escape_xml("<a href=\"x\">'&'</a>\u{1}\n"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;\n"
        );
    }

    #[test]
    fn terminal_escapes_are_removed_from_engine_output() {
        assert_eq!(
            strip_terminal_escapes("\u{1b}[31merror\u{1b}[0m: bad \u{1b}[2Kline"),
            "error: bad line"
        );
    }
}
