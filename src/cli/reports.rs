//! Commands that read a run folder: `explain`, `report`, `compare`, `history`.

use std::path::Path;

#[cfg(feature = "report")]
use super::output::RunSummary;
use super::output::{print_json, OutputFormat};

#[cfg(feature = "report")]
use super::run::{display_paths, print_summary};
use crate::exit_code::ExitCode;
#[cfg(feature = "report")]
use crate::report;

/// `precheck explain`: the evidence of one recorded variant; an unknown id is a usage error with
/// the nearest recorded one.
/// In JSON, the variant's record: its evidence is there.
pub(super) fn explain(
    run_dir: &Path,
    variant: &str,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let path = run_dir.join(crate::results::RESULTS_FILE);
    let (records, _) = crate::results::read_records(&path)?;
    let Some(record) = records.iter().find(|r| r.id == variant) else {
        let hint = crate::hints::nearest(variant, records.iter().map(|r| r.id.as_str()))
            .map(|id| format!(", did you mean `{id}`?"))
            .unwrap_or_default();
        anyhow::bail!("{} has no variant `{variant}`{hint}", path.display());
    };
    match format {
        OutputFormat::Json => print_json(record),
        OutputFormat::Text => print!("{}", crate::report::explain::explain(record)),
    }
    Ok(ExitCode::Success)
}

/// `precheck report`: exits as `run` did, so that CI can gate on a rebuilt report.
#[cfg(feature = "report")]
pub(super) fn report(run_dir: &Path, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let run = report::RecordedRun::load(run_dir)?;
    for warning in &run.warnings {
        eprintln!("warning: {warning}");
    }
    let paths = report::write_run_reports(&run)?;
    let code = run.exit_code();
    match format {
        OutputFormat::Json => {
            print_json(&RunSummary::new(
                run_dir,
                &run.records,
                code,
                run.interrupted(),
                paths,
            ));
        }
        OutputFormat::Text => {
            print_summary(&run.records, run_dir);
            println!("reports: {}", display_paths(&paths));
        }
    }
    Ok(code)
}

#[cfg(feature = "report")]
pub(super) fn compare(
    bases: &[std::path::PathBuf],
    head: &Path,
    out: Option<&Path>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let bases = bases
        .iter()
        .map(|dir| report::RecordedRun::load(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let head = report::RecordedRun::load(head)?;
    let comparison = report::compare::Comparison::of(&bases, &head);
    let paths = report::compare::write_comparison(&comparison, out.unwrap_or(&head.dir))?;
    for caveat in &comparison.caveats {
        eprintln!("note: {caveat}");
    }
    if format == OutputFormat::Json {
        #[derive(serde::Serialize)]
        struct Compared<'a> {
            exit_code: i32,
            verdict: String,
            #[serde(flatten)]
            comparison: &'a report::compare::Comparison,
            reports: Vec<std::path::PathBuf>,
        }
        print_json(&Compared {
            exit_code: comparison.exit_code() as i32,
            verdict: comparison.verdict_line(),
            comparison: &comparison,
            reports: paths,
        });
        return Ok(comparison.exit_code());
    }
    for line in comparison.finding_lines() {
        println!("{line}");
    }
    println!("{}", comparison.verdict_line());
    println!("reports: {}", display_paths(&paths));
    Ok(comparison.exit_code())
}

#[cfg(feature = "report")]
pub(super) fn history(
    reports_dir: &Path,
    out: Option<&Path>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let (path, history) = report::history::write_history(reports_dir, out.unwrap_or(reports_dir))?;
    for skipped in &history.skipped {
        eprintln!("warning: skipped {skipped}");
    }
    if format == OutputFormat::Json {
        #[derive(serde::Serialize)]
        struct Charted<'a> {
            /// Each suite and how many runs of it were charted.
            suites: Vec<(&'a str, usize)>,
            history: &'a Path,
        }
        print_json(&Charted {
            suites: history
                .suites
                .iter()
                .map(|s| (s.name.as_str(), s.runs.len()))
                .collect(),
            history: &path,
        });
        return Ok(ExitCode::Success);
    }
    for suite in &history.suites {
        println!("suite {}: {} runs", suite.name, suite.runs.len());
    }
    println!("history: {}", path.display());
    Ok(ExitCode::Success)
}
