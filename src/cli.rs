//! The command line: argument types (clap) and one function per subcommand.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{self, BackendChoice, CommandBackend, Engines, TrtexecBackend};
use crate::exit_code::ExitCode;
use crate::export;
use crate::measure::CacheMode;
use crate::model::golden;
use crate::plan::{self, Overrides};
use crate::precision::presets;
use crate::precision::Policy;
#[cfg(feature = "report")]
use crate::report;
use crate::report::terminal;
use crate::results::{self, VariantRecord};
use crate::runner::{self, Observer, RunSpec};
use crate::runner::{WorkerJob, Workers};
use crate::shard::Shard;
use crate::suite::Variant;
use crate::suite::{self, LoadedSuite, Timeout};

const EXIT_CODES: &str = "\
Exit codes:
  0  every variant passed every gate
  1  a variant failed a gate (cosine, error bound, non-finite output)
  2  usage error, invalid suite, unusable backend or unwritable results: nothing was gated
  3  a variant errored (build, run, measurement failed; a worker crashed or timed out): the
     run is incomplete
  130  the run was stopped (Ctrl-C, SIGTERM): `--resume` finishes it";

/// Accuracy and performance regression harness for mixed-precision inference.
#[derive(Debug, Parser)]
#[command(name = "precheck", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a suite: every variant against the reference, gated.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Check suites without running them.
    Validate {
        /// Suite files.
        #[arg(required = true)]
        suites: Vec<PathBuf>,
    },
    /// Show a suite's expanded variant matrix.
    List {
        /// Suite file.
        suite: PathBuf,
    },
    /// Join shard runs (or runs of one suite on several backends, side by side) into one run
    /// folder and write its reports; exit 3 if a variant is missing.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// Run folders of the shards.
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
        /// The new run folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one variant in this process and print its measurement (what `run` starts per variant).
    #[command(hide = true)]
    Worker {
        /// The job, as JSON.
        #[arg(long)]
        job: String,
    },
    /// Print a variant's precision evidence for a person: fingerprint, kernel trace, verdict.
    Explain {
        /// Run folder (holding results.jsonl).
        run_dir: PathBuf,
        /// The variant's id (`model/precision/device`).
        variant: String,
    },
    /// Write each model of a suite in each of its precisions as ONNX (opset 21):
    /// OUT/MODEL/PRECISION.onnx, input `input`, output `output`, weights included.
    Export {
        /// Suite file.
        suite: PathBuf,
        /// Folder for the models.
        #[arg(long)]
        out: PathBuf,
        /// Seed of seeded weights [default: the suite's].
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
    },
    /// Freeze each model's reference output in a golden file (a suite's `reference.file`):
    /// precheck's exact evaluation, or with --backend the reference precision run there.
    Golden(GoldenArgs),
    /// Show the backends and devices this machine has.
    Devices,
    /// Show the precision presets a suite can name.
    Precisions,
    /// Write a run folder's reports: report.html, summary.md, junit.xml, results.parquet.
    #[cfg(feature = "report")]
    #[command(after_help = EXIT_CODES)]
    Report {
        /// Run folder (holding results.jsonl and run.json).
        run_dir: PathBuf,
    },
    /// Compare two runs variant by variant: compare.html, compare.md; exit 1 on a regression.
    #[cfg(feature = "report")]
    #[command(after_help = report::compare::EXIT_CODES)]
    Compare {
        /// The run to compare against.
        base_run: PathBuf,
        /// The run under test.
        head_run: PathBuf,
        /// Folder for compare.html and compare.md [default: HEAD_RUN].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Chart every run under a folder over time: history.html.
    #[cfg(feature = "report")]
    History {
        /// Folder holding run folders (e.g. reports/).
        reports_dir: PathBuf,
        /// Folder for history.html [default: REPORTS_DIR].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct GoldenArgs {
    /// Suite file.
    suite: PathBuf,
    /// The golden file to write (`.safetensors`).
    #[arg(long)]
    out: PathBuf,
    /// Run the reference precision on this backend [default: precheck's exact evaluation].
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    #[command(flatten)]
    engines: EngineArgs,
    /// Seed of weights and inputs [default: the suite's].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// How the engines outside precheck are reached: the command backend's program, trtexec.
#[derive(Debug, Args)]
struct EngineArgs {
    /// The program of `--backend command`, a shell command line; precheck appends the work folder
    /// (see README, "Command backend").
    #[arg(long, value_name = "PROGRAM ARGS")]
    command: Option<String>,
    /// With `--backend command`: also write each variant exported as ONNX (`model.onnx`, opset
    /// 21, Q/DQ for quantized operands) into its work folder, for engines that take ONNX.
    #[arg(long, requires = "command")]
    onnx: bool,
    /// trtexec for `--backend trtexec` [default: on PATH, else /usr/src/tensorrt/bin/trtexec].
    #[arg(long, value_name = "PATH")]
    trtexec: Option<PathBuf>,
    /// Where `--backend trtexec` caches built engines [default: ~/.cache/precheck/engines].
    #[arg(long, value_name = "DIR")]
    engine_cache: Option<PathBuf>,
}

impl EngineArgs {
    /// The engines as configured; trtexec is looked for only when `backend` is trtexec.
    fn engines(&self, backend: Option<BackendChoice>) -> Engines {
        let command = self.command.as_ref().map(|program| {
            let backend = CommandBackend::new(program);
            if self.onnx {
                backend.with_onnx()
            } else {
                backend
            }
        });
        let trtexec = (backend == Some(BackendChoice::Trtexec)).then(|| {
            let cache = self
                .engine_cache
                .clone()
                .unwrap_or_else(TrtexecBackend::default_cache);
            TrtexecBackend::locate(self.trtexec.as_deref(), cache)
        });
        Engines { command, trtexec }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Suite file.
    suite: PathBuf,
    /// Run folder [default: reports/<suite>/<UTC timestamp>].
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the interrupted run in this folder: recorded variants are kept, the rest run
    /// (a folder without results starts the run there).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Run slice INDEX of COUNT (from 0) of the variants [default: from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX with PRECHECK_SHARD_COUNT].
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<Shard>,
    /// Backend to run on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    backend: BackendChoice,
    #[command(flatten)]
    engines: EngineArgs,
    /// Run only variants whose id matches: a glob (`*/fp16/*`) or a substring (`mlp`). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    filter: Vec<String>,
    /// Timed iterations per variant [default: the suite's].
    #[arg(long, value_name = "N")]
    iterations: Option<usize>,
    /// Untimed warm-up runs per variant [default: the suite's].
    #[arg(long, value_name = "N")]
    warmup: Option<u32>,
    /// Seed of weights and inputs [default: the suite's].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// End a variant's worker after this long (`90s`, `10m`) [default: the suite's, or 10m].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<Timeout>,
    /// The GPU's L2 cache at the start of each timed iteration: `cold` flushes it first
    /// [default: the suite's, or warm].
    #[arg(long, value_enum)]
    cache: Option<CacheMode>,
}

/// Parses the command line, runs the command, prints any error, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::UsageOrSuiteError
            } else {
                ExitCode::Success
            };
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Validate { suites } => Ok(validate(&suites)),
        Command::List { suite } => list(&suite),
        Command::Merge { run_dirs, out } => merge(&run_dirs, &out),
        Command::Worker { job } => worker(&job),
        Command::Explain { run_dir, variant } => explain(&run_dir, &variant),
        Command::Export { suite, out, seed } => export(&suite, &out, seed),
        Command::Golden(args) => golden(&args),
        Command::Devices => Ok(devices()),
        Command::Precisions => Ok(precisions()),
        #[cfg(feature = "report")]
        Command::Report { run_dir } => report(&run_dir),
        #[cfg(feature = "report")]
        Command::Compare {
            base_run,
            head_run,
            out,
        } => compare(&base_run, &head_run, out.as_deref()),
        #[cfg(feature = "report")]
        Command::History { reports_dir, out } => history(&reports_dir, out.as_deref()),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::UsageOrSuiteError
    })
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

fn load(path: &Path) -> anyhow::Result<LoadedSuite> {
    // A suite error renders as file:line:col: key: message; anyhow adds nothing to it.
    suite::load(path).map_err(anyhow::Error::new)
}

fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
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
    let workers = Workers {
        exe: std::env::current_exe().context("finding the precheck binary for its workers")?,
        suite: loaded.path.clone(),
        sha256: loaded.sha256.clone(),
        engines,
        stop: &stop,
    };
    let mut progress = Progress::new(plan.variants.len(), folder.recorded.len());
    let outcome = runner::run(&spec, &workers, &mut folder.writer, &mut progress)
        .context("writing results")?;
    progress.bar.finish_and_clear();
    if !outcome.interrupted {
        folder.info.finished_at = Some(Utc::now());
    }
    folder.writer.write_run_info(&folder.info)?;
    let records = [folder.recorded, outcome.records].concat();
    print_summary(&records, &out);
    #[cfg(feature = "report")]
    write_reports(&out);
    if outcome.interrupted {
        eprintln!(
            "interrupted: {} of {} variants recorded; `precheck run {} --resume {}` (with the same options) runs the rest",
            records.len(),
            plan.variants.len(),
            args.suite.display(),
            out.display()
        );
        return Ok(ExitCode::Interrupted);
    }
    Ok(ExitCode::of_records(&records))
}

/// A flag that the first Ctrl-C or SIGTERM sets, so that the run ends its workers, keeps its
/// records and writes its reports; a second Ctrl-C exits at once.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
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

/// `precheck worker`: one variant, its reply on stdout.
fn worker(job: &str) -> anyhow::Result<ExitCode> {
    let job: WorkerJob = serde_json::from_str(job).context("reading the worker's job")?;
    let reply = runner::serve(&job)?;
    println!(
        "{}",
        serde_json::to_string(&reply).expect("replies serialize")
    );
    Ok(ExitCode::Success)
}

/// `precheck merge`: exits 3 when a variant or shard is missing or doubled, else as `run` would.
fn merge(run_dirs: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
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
    print_summary(&merged.records, out);
    #[cfg(feature = "report")]
    write_reports(out);
    if !merged.complete() {
        return Ok(ExitCode::VariantError);
    }
    Ok(ExitCode::of_records(&merged.records))
}

fn print_summary(records: &[VariantRecord], out: &Path) {
    println!("{}", terminal::summary_table(records));
    for line in terminal::problems(records) {
        println!("{line}");
    }
    println!("{}", terminal::verdict_line(records));
    println!("results: {}", out.display());
}

/// Writes the run's reports at the end of `run`. A report that cannot be written is said, but
/// leaves the exit code to the gates: their verdict stands on results.jsonl, which is complete,
/// and `precheck report` rebuilds the reports from it. (Exit 2 would claim nothing was gated.)
#[cfg(feature = "report")]
fn write_reports(out: &Path) {
    match report::RecordedRun::load(out).and_then(|run| report::write_run_reports(&run)) {
        Ok(paths) => println!("reports: {}", display_paths(&paths)),
        Err(error) => eprintln!(
            "error: writing the reports: {error} (the results are complete: `precheck report {}` retries)",
            out.display()
        ),
    }
}

#[cfg(feature = "report")]
fn display_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// `precheck explain`: the evidence of one recorded variant; an unknown id is a usage error with
/// the nearest recorded one.
fn explain(run_dir: &Path, variant: &str) -> anyhow::Result<ExitCode> {
    let path = run_dir.join(crate::results::RESULTS_FILE);
    let (records, _) = crate::results::read_records(&path)?;
    let Some(record) = records.iter().find(|r| r.id == variant) else {
        let hint = crate::hints::nearest(variant, records.iter().map(|r| r.id.as_str()))
            .map(|id| format!(", did you mean `{id}`?"))
            .unwrap_or_default();
        anyhow::bail!("{} has no variant `{variant}`{hint}", path.display());
    };
    print!("{}", crate::report::explain::explain(record));
    Ok(ExitCode::Success)
}

/// `precheck report`: exits as `run` did, so that CI can gate on a rebuilt report.
#[cfg(feature = "report")]
fn report(run_dir: &Path) -> anyhow::Result<ExitCode> {
    let run = report::RecordedRun::load(run_dir)?;
    for warning in &run.warnings {
        eprintln!("warning: {warning}");
    }
    let paths = report::write_run_reports(&run)?;
    print_summary(&run.records, run_dir);
    println!("reports: {}", display_paths(&paths));
    Ok(ExitCode::of_records(&run.records))
}

#[cfg(feature = "report")]
fn compare(base: &Path, head: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (base, head) = (
        report::RecordedRun::load(base)?,
        report::RecordedRun::load(head)?,
    );
    let comparison = report::compare::Comparison::of(&base, &head);
    let paths = report::compare::write_comparison(&comparison, out.unwrap_or(&head.dir))?;
    for caveat in &comparison.caveats {
        eprintln!("note: {caveat}");
    }
    for line in comparison.finding_lines() {
        println!("{line}");
    }
    println!("{}", comparison.verdict_line());
    println!("reports: {}", display_paths(&paths));
    Ok(comparison.exit_code())
}

#[cfg(feature = "report")]
fn history(reports_dir: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (path, history) = report::history::write_history(reports_dir, out.unwrap_or(reports_dir))?;
    for skipped in &history.skipped {
        eprintln!("warning: skipped {skipped}");
    }
    for suite in &history.suites {
        println!("suite {}: {} runs", suite.name, suite.runs.len());
    }
    println!("history: {}", path.display());
    Ok(ExitCode::Success)
}

/// A progress bar on a terminal; one line per finished variant either way.
struct Progress {
    bar: ProgressBar,
    interactive: bool,
}

impl Progress {
    fn new(total: usize, done: usize) -> Self {
        let bar = ProgressBar::new(total as u64);
        bar.set_position(done as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
                .expect("the template is valid"),
        );
        Progress {
            bar,
            interactive: std::io::stderr().is_terminal(),
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
            "{:5} {} cos {} ({:.1} s)",
            record.status.name(),
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

fn validate(paths: &[PathBuf]) -> ExitCode {
    let mut code = ExitCode::Success;
    for path in paths {
        let checked = suite::load(path)
            .map_err(|e| e.to_string())
            .and_then(|loaded| {
                for model in &loaded.suite.models {
                    model
                        .check_files()
                        .map_err(|e| format!("{}: model `{}`: {e}", path.display(), model.name))?;
                }
                Ok(loaded)
            });
        match checked {
            Ok(loaded) => println!(
                "ok    {}: {} variants",
                path.display(),
                loaded.suite.variants.len()
            ),
            Err(error) => {
                eprintln!("error: {error}");
                code = ExitCode::UsageOrSuiteError;
            }
        }
    }
    code
}

fn list(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = load(path)?;
    let suite = &loaded.suite;
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(vec![
            "variant", "block", "tokens", "GFLOP", "cos_min", "policy",
        ]);
    for variant in &suite.variants {
        let model = suite.model(&variant.model).expect("validated");
        table.add_row(vec![
            variant.id.clone(),
            model.block.kind_name().to_owned(),
            model.tokens.to_string(),
            format!("{:.2}", model.block.flops(model.tokens) / 1e9),
            variant.gates.cos_min.to_string(),
            variant.precision.to_string(),
        ]);
    }
    println!("{table}");
    let reference = match &suite.reference.file {
        Some(file) => format!("the golden file {}", file.display()),
        None => "exact evaluation of the model held in that precision".to_owned(),
    };
    println!(
        "{} variants; reference: {} ({reference})",
        suite.variants.len(),
        suite.reference.precision.format()
    );
    Ok(ExitCode::Success)
}

fn export(path: &Path, out: &Path, seed: Option<u64>) -> anyhow::Result<ExitCode> {
    let loaded = load(path)?;
    let suite = &loaded.suite;
    let seed = seed.unwrap_or(suite.defaults.seed);
    let format = suite.reference.precision.format();
    let mut written = 0;
    for model in &suite.models {
        let weights = model
            .weights(seed, format)
            .with_context(|| format!("model {}", model.name))?;
        let mut policies: Vec<&Policy> = Vec::new();
        for variant in suite.variants.iter().filter(|v| v.model == model.name) {
            if !policies.iter().any(|p| p.name == variant.precision.name) {
                policies.push(&variant.precision);
            }
        }
        for outcome in export::write_files(model, &weights, &policies, out)? {
            match outcome {
                export::Written::File(file) => {
                    println!("wrote   {}", file.display());
                    written += 1;
                }
                export::Written::Skipped(policy, why) => {
                    println!("skipped {}/{policy}: {why}", model.name)
                }
            }
        }
    }
    println!("{written} models written to {}", out.display());
    Ok(ExitCode::Success)
}

fn golden(args: &GoldenArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.suite)?;
    let suite = &loaded.suite;
    let engines = args.engines.engines(args.backend);
    let selected = args
        .backend
        .map(|choice| backend::select(choice, &engines))
        .transpose()?;
    if let Some(note) = selected.as_ref().and_then(|s| s.note.as_ref()) {
        eprintln!("note: {note}");
    }
    let backend = selected.as_ref().map(|s| s.backend.as_ref());
    let seed = args.seed.unwrap_or(suite.defaults.seed);
    let outputs = runner::golden_outputs(suite, seed, backend).map_err(anyhow::Error::msg)?;
    golden::write(&args.out, &outputs).map_err(anyhow::Error::msg)?;
    for output in &outputs {
        println!("{}: {}", output.model, output.source);
    }
    println!(
        "golden references of {} models in {}",
        outputs.len(),
        args.out.display()
    );
    Ok(ExitCode::Success)
}

fn devices() -> ExitCode {
    for (kind, status) in backend::describe_all() {
        match status {
            Ok(devices) => {
                for device in devices {
                    println!("{:5} available: {device}", kind.name());
                }
            }
            Err(why) => println!("{:5} unavailable: {why}", kind.name()),
        }
    }
    ExitCode::Success
}

fn precisions() -> ExitCode {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(vec!["preset", "policy", "models"]);
    for (name, about) in presets::describe() {
        let policy = presets::preset(name).expect("described presets exist");
        table.add_row(vec![name.to_owned(), policy.to_string(), about.to_owned()]);
    }
    println!("{table}");
    ExitCode::Success
}
