//! `precheck run`, the worker a run starts for each variant, and `merge` of shard runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::RunArgs;
use super::catalog::load;
use super::output::{print_json, OutputFormat, RunSummary};
use crate::backend::{self};
use crate::exit_code::ExitCode;
use crate::host;
use crate::plan::{self, Overrides};
#[cfg(feature = "report")]
use crate::report;
use crate::report::terminal;
use crate::results::{self, VariantRecord};
use crate::runner::Workers;
use crate::runner::{self, Observer, RunSpec};
use crate::shard::Shard;
use crate::suite::Timeout;
use crate::suite::Variant;

pub(super) fn run(args: &RunArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.suite)?;
    let suite = &loaded.suite;
    let engines = args.engines.engines(Some(args.backend));
    let selected = backend::select(args.backend, &engines)?;
    if let Some(note) = &selected.note {
        eprintln!("note: {note}");
    }
    let backend = selected.backend.as_ref();
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => Shard::from_env(|name| std::env::var(name).ok())?,
    };
    let overrides = Overrides {
        seed: args.seed,
        warmup: args.warmup,
        iterations: args.iterations,
        filters: args.filter.clone(),
        timeout: args.timeout.map(Timeout::get),
        cache: args.cache,
        cpu_agreement: args.cpu_agreement,
        products_on_host: args.products_on_host,
        store: match args.no_store {
            true => None,
            false => Some(
                args.store
                    .clone()
                    .unwrap_or_else(|| host::cache_home().join("references")),
            ),
        },
        shard,
    };
    let plan = plan::plan(suite, backend.kind(), &backend.device_name(), &overrides)?;
    let started_at = Utc::now();
    let out = args.resume.clone().or(args.out.clone()).unwrap_or_else(|| {
        Path::new("reports")
            .join(suite.name.as_str())
            .join(started_at.format("%Y%m%dT%H%M%SZ").to_string())
    });
    let info = plan.run_info(&loaded, backend.kind(), backend.device_name(), started_at);
    let mut folder = match &args.resume {
        Some(dir) => results::resume(dir, info)?,
        None => results::start(&out, info)?,
    };
    for warning in &folder.warnings {
        eprintln!("warning: {warning}");
    }
    let slots = runner::slots(backend);
    eprintln!(
        "precheck: {} variants of suite `{}`{} on {} ({}, {} at a time), {} already recorded, results in {}",
        plan.variants.len(),
        suite.name,
        shard.map_or(String::new(), |s| format!(", shard {s}")),
        backend.kind().name(),
        folder.info.device_name,
        slots.len(),
        folder.recorded.len(),
        out.display()
    );
    let stop = stop_on_signals()?;
    let spec = RunSpec {
        suite,
        plan: &plan,
        slots,
        recorded: &folder.recorded,
        stop: &stop,
        skip: backend.skip_reason(),
    };
    if let Some(store) = &plan.settings.store {
        runner::store::prune(store);
    }
    let swept = runner::worker::sweep_stale_scratch();
    if swept > 0 {
        tracing::info!("removed {swept} work folders that killed runs left behind");
    }
    let workers = Workers::new(
        std::env::current_exe().context("finding the precheck binary for its workers")?,
        loaded.path.clone(),
        loaded.sha256.clone(),
        engines,
        stop.clone(),
    );
    let mut progress = Progress::new(plan.variants.len(), folder.recorded.len());
    let outcome = runner::run(&spec, &workers, &mut folder.writer, &mut progress)
        .context("writing results")?;
    // The workers end before the reports: they hold a GPU context and memory each.
    drop(workers);
    progress.bar.finish_and_clear();
    if !outcome.interrupted {
        folder.info.finished_at = Some(Utc::now());
    }
    folder.writer.write_run_info(&folder.info)?;
    let wall_s = (Utc::now() - started_at).as_seconds_f64();
    let this_run = terminal::time_line(&outcome.records, wall_s);
    let records = [folder.recorded, outcome.records].concat();
    #[cfg(feature = "report")]
    let reports = write_reports(&out);
    #[cfg(not(feature = "report"))]
    let reports = Vec::new();
    let code = match outcome.interrupted {
        true => ExitCode::Interrupted,
        false => ExitCode::of_records(&records),
    };
    match format {
        OutputFormat::Json => {
            print_json(&RunSummary::new(
                &out,
                &records,
                code,
                outcome.interrupted,
                reports,
            ));
        }
        OutputFormat::Text => {
            print_summary(&records, &out);
            if let Some(line) = this_run {
                println!("time: {line}");
            }
            if !reports.is_empty() {
                println!("reports: {}", display_paths(&reports));
            }
        }
    }
    if outcome.interrupted {
        eprintln!(
            "interrupted: {} of {} variants recorded; `precheck run {} --resume {}` (with the same options) runs the rest",
            records.len(),
            plan.variants.len(),
            args.suite.display(),
            out.display()
        );
    }
    Ok(code)
}

/// A flag that the first Ctrl-C or SIGTERM sets, so that the run ends its workers, keeps its
/// records and writes its reports; a second Ctrl-C exits at once.
pub(super) fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        flag::register_conditional_shutdown(signal, ExitCode::Interrupted as i32, stop.clone())
            .and_then(|_| flag::register(signal, stop.clone()))
            .context("installing the Ctrl-C handler")?;
    }
    Ok(stop)
}

/// `precheck worker`: the jobs on stdin, a reply line each on stdout.
pub(super) fn worker() -> anyhow::Result<ExitCode> {
    runner::serve(std::io::stdin().lock(), std::io::stdout().lock())?;
    Ok(ExitCode::Success)
}

/// `precheck merge`: exits 3 when a variant or shard is missing or doubled, else as `run` would.
pub(super) fn merge(
    run_dirs: &[PathBuf],
    out: &Path,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let merged = results::merge(run_dirs, out, std::env::args().collect())?;
    for warning in &merged.warnings {
        eprintln!("warning: {warning}");
    }
    let problems = [
        ("shard missing", &merged.missing_shards),
        ("variant missing", &merged.missing),
        (
            "variant recorded twice (the first record kept)",
            &merged.duplicates,
        ),
    ];
    for (what, items) in problems {
        for item in items {
            eprintln!("error: {what}: {item}");
        }
    }
    #[cfg(feature = "report")]
    let reports = write_reports(out);
    #[cfg(not(feature = "report"))]
    let reports = Vec::new();
    let code = match merged.complete() {
        true => ExitCode::of_records(&merged.records),
        false => ExitCode::VariantError,
    };
    match format {
        OutputFormat::Json => {
            print_json(&RunSummary::new(out, &merged.records, code, false, reports));
        }
        OutputFormat::Text => {
            print_summary(&merged.records, out);
            if !reports.is_empty() {
                println!("reports: {}", display_paths(&reports));
            }
        }
    }
    Ok(code)
}

pub(super) fn print_summary(records: &[VariantRecord], out: &Path) {
    println!("{}", terminal::summary_table(records, None));
    let style = terminal::Style::new(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    for line in terminal::problems(records, style) {
        println!("{line}");
    }
    println!("{}", terminal::verdict_line(records));
    println!("results: {}", out.display());
}

/// Writes the run's reports at the end of `run` and returns their paths. A report that cannot be
/// written is said, but leaves the exit code to the gates: their verdict stands on results.jsonl,
/// which is complete, and `precheck report` rebuilds the reports from it. (Exit 2 would claim
/// nothing was gated.)
#[cfg(feature = "report")]
fn write_reports(out: &Path) -> Vec<PathBuf> {
    match report::RecordedRun::load(out).and_then(|run| report::write_run_reports(&run)) {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!(
                "error: writing the reports: {error} (the results are complete: `precheck report {}` retries)",
                out.display()
            );
            Vec::new()
        }
    }
}

pub(super) fn display_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// A progress bar on a terminal; one line per finished variant either way.
pub(super) struct Progress {
    bar: ProgressBar,
    interactive: bool,
    style: terminal::Style,
}

impl Progress {
    fn new(total: usize, done: usize) -> Self {
        let bar = ProgressBar::new(total as u64);
        bar.set_position(done as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
                .expect("the template is valid"),
        );
        let interactive = std::io::stderr().is_terminal();
        Progress {
            bar,
            interactive,
            style: terminal::Style::new(interactive, std::env::var_os("NO_COLOR")),
        }
    }
}

impl Observer for Progress {
    fn started(&mut self, _index: usize, _total: usize, variant: &Variant) {
        self.bar.set_message(variant.id.clone());
    }

    fn finished(&mut self, record: &VariantRecord) {
        let cos = record
            .accuracy
            .map_or_else(|| "-".to_owned(), |a| format!("{:.6}", a.cos));
        let line = format!(
            "{} {} cos {} ({:.1} s)",
            self.style.status(record.status),
            record.id,
            cos,
            record.wall_s
        );
        if self.interactive {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
        self.bar.inc(1);
    }
}
