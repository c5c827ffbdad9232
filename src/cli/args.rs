//! The arguments the subcommands share (clap types).

use std::path::PathBuf;

use clap::Args;

use crate::backend::{BackendChoice, CommandBackend, Engines, TrtexecBackend};
use crate::measure::{AgreementMode, CacheMode};
use crate::shard::Shard;
use crate::suite::Timeout;

#[derive(Debug, Args)]
pub(super) struct GoldenArgs {
    /// Suite file.
    pub(super) suite: PathBuf,
    /// The golden file to write (`.safetensors`).
    #[arg(long)]
    pub(super) out: PathBuf,
    /// Run the reference precision on this backend [default: precheck's exact evaluation].
    #[arg(long, value_enum)]
    pub(super) backend: Option<BackendChoice>,
    #[command(flatten)]
    pub(super) engines: EngineArgs,
    /// Seed of weights and inputs [default: the suite's].
    #[arg(long, value_name = "N")]
    pub(super) seed: Option<u64>,
}

/// How the engines outside precheck are reached: the command backend's program, trtexec.
#[derive(Debug, Args)]
pub(super) struct EngineArgs {
    /// The program of `--backend command`, a shell command line; precheck appends the work folder
    /// (see docs/engines.md, "Command backend").
    #[arg(long, value_name = "PROGRAM ARGS")]
    pub(super) command: Option<String>,
    /// With `--backend command`: also write each variant exported as ONNX (`model.onnx`, opset
    /// 21, Q/DQ for quantized operands) into its work folder, for engines that take ONNX.
    #[arg(long, requires = "command")]
    pub(super) onnx: bool,
    /// trtexec for `--backend trtexec` [default: on PATH, else /usr/src/tensorrt/bin/trtexec].
    #[arg(long, value_name = "PATH")]
    pub(super) trtexec: Option<PathBuf>,
    /// Where `--backend trtexec` caches built engines [default: ~/.cache/precheck/engines].
    #[arg(long, value_name = "DIR")]
    pub(super) engine_cache: Option<PathBuf>,
}

impl EngineArgs {
    /// The engines as configured; trtexec is looked for only when `backend` is trtexec.
    pub(super) fn engines(&self, backend: Option<BackendChoice>) -> Engines {
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
pub(super) struct RunArgs {
    /// Suite file.
    pub(super) suite: PathBuf,
    /// Run folder [default: reports/<suite>/<UTC timestamp>].
    #[arg(long, conflicts_with = "resume")]
    pub(super) out: Option<PathBuf>,
    /// Continue the interrupted run in this folder: recorded variants are kept, the rest run
    /// (a folder without results starts the run there).
    #[arg(long, value_name = "RUN_DIR")]
    pub(super) resume: Option<PathBuf>,
    /// Run slice INDEX of COUNT (from 0) of the variants [default: from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX with PRECHECK_SHARD_COUNT].
    #[arg(long, value_name = "INDEX/COUNT")]
    pub(super) shard: Option<Shard>,
    /// Backend to run on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    pub(super) backend: BackendChoice,
    #[command(flatten)]
    pub(super) engines: EngineArgs,
    /// Run only variants whose id matches: a glob (`*/fp16/*`) or a substring (`mlp`). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub(super) filter: Vec<String>,
    /// Timed iterations per variant [default: the suite's].
    #[arg(long, value_name = "N")]
    pub(super) iterations: Option<usize>,
    /// Untimed warm-up runs per variant [default: the suite's].
    #[arg(long, value_name = "N")]
    pub(super) warmup: Option<u32>,
    /// Seed of weights and inputs [default: the suite's].
    #[arg(long, value_name = "N")]
    pub(super) seed: Option<u64>,
    /// End a variant's worker after this long (`90s`, `10m`) [default: the suite's, or 10m].
    #[arg(long, value_name = "DURATION")]
    pub(super) timeout: Option<Timeout>,
    /// The GPU's L2 cache at the start of each timed iteration: `cold` flushes it first
    /// [default: the suite's, or warm].
    #[arg(long, value_enum)]
    pub(super) cache: Option<CacheMode>,
    /// Which variants on an engine other than the CPU emulation are also emulated on the CPU,
    /// for their agreement and numeric fingerprint: `every`; `sample`, the first of each policy
    /// and those whose kernel trace cannot vouch for their GEMMs; or `off`. Overrides the
    /// suite's `defaults.cpu_agreement` [default: sample].
    #[arg(long, value_enum)]
    pub(super) cpu_agreement: Option<AgreementMode>,
    /// Compute the exact reference's and the CPU emulations' matrix products on the host's
    /// cores, not on the run's GPU: the CPU definition exactly as CI runs it (on the GPU they
    /// differ from it by the order of accumulation only).
    #[arg(long)]
    pub(super) products_on_host: bool,
    /// The reference store: references and CPU emulations kept under a key of everything they
    /// depend on, for later variants, runs and farm nodes sharing the folder
    /// [default: ~/.cache/precheck/references].
    #[arg(long, value_name = "DIR", conflicts_with = "no_store")]
    pub(super) store: Option<PathBuf>,
    /// Compute every reference and emulation, keeping none.
    #[arg(long)]
    pub(super) no_store: bool,
}
