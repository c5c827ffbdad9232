//! The command line: argument types (clap) and one function per subcommand.

mod args;
mod catalog;
mod output;
mod reports;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
pub use output::OutputFormat;

use crate::exit_code::ExitCode;
use args::{GoldenArgs, RunArgs};
use catalog::{devices, export, golden, list, precisions, validate};
use reports::explain;
#[cfg(feature = "report")]
use reports::{compare, history, report};
use run::{merge, run, worker};

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
    /// What commands print on stdout: text for people, or one JSON document.
    #[arg(long, value_enum, global = true, default_value_t)]
    format: OutputFormat,
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
    /// Serve variants on stdin, one JSON job per line, each measurement a line on stdout (what
    /// `run` starts per device).
    #[command(hide = true)]
    Worker,
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
    /// Print the JSON Schema of a `results.jsonl` record (the committed copy is in `schema/`).
    Schema,
    /// Write a run folder's reports: report.html, summary.md, junit.xml, results.parquet.
    #[cfg(feature = "report")]
    #[command(after_help = EXIT_CODES)]
    Report {
        /// Run folder (holding results.jsonl and run.json).
        run_dir: PathBuf,
    },
    /// Compare a run with one or more earlier runs, variant by variant: compare.html, compare.md;
    /// exit 1 on a regression.
    #[cfg(feature = "report")]
    #[command(after_help = crate::report::compare::EXIT_CODES)]
    Compare {
        /// The runs to compare against, oldest first. The last is the base of verdicts and
        /// accuracy; with 3 or more, compare measures the drift of each variant's latency
        /// between runs and counts only slowdowns beyond it.
        #[arg(value_name = "BASE_RUN", required = true, num_args = 1..)]
        base_runs: Vec<PathBuf>,
        /// The run under test.
        #[arg(value_name = "HEAD_RUN")]
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
    let format = cli.format;
    let result = match cli.command {
        Command::Run(args) => run(&args, format),
        Command::Validate { suites } => Ok(validate(&suites, format)),
        Command::List { suite } => list(&suite, format),
        Command::Merge { run_dirs, out } => merge(&run_dirs, &out, format),
        Command::Worker => worker(),
        Command::Explain { run_dir, variant } => explain(&run_dir, &variant, format),
        Command::Export { suite, out, seed } => export(&suite, &out, seed, format),
        Command::Golden(args) => golden(&args, format),
        Command::Devices => Ok(devices(format)),
        Command::Precisions => Ok(precisions(format)),
        Command::Schema => {
            output::print_json(&crate::results::record_schema());
            Ok(ExitCode::Success)
        }
        #[cfg(feature = "report")]
        Command::Report { run_dir } => report(&run_dir, format),
        #[cfg(feature = "report")]
        Command::Compare {
            base_runs,
            head_run,
            out,
        } => compare(&base_runs, &head_run, out.as_deref(), format),
        #[cfg(feature = "report")]
        Command::History { reports_dir, out } => history(&reports_dir, out.as_deref(), format),
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
