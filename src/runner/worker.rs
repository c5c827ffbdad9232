//! Isolated workers: each variant runs in a `precheck worker` process of its own, so that a crash,
//! a CUDA error that poisons the context, or a hung kernel ends that variant only.
//!
//! The protocol cannot lose or duplicate a record: the worker writes nothing to the run folder; it
//! prints one JSON [`WorkerReply`] on stdout and exits. The run (the only writer of
//! `results.jsonl`) appends the variant's record after the worker has ended, whatever the way:
//! reply, crash or timeout. A run killed before that append runs the variant again on `--resume`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::execute::{Execution, Executor};
use super::measurement::{measure_guarded, Outcome};
use super::pool::{Placement, Slot};
use super::process::{self, How};
use super::reference::ModelContext;
use crate::backend::Engines;
use crate::model::Model;
use crate::precision::Policy;
use crate::results::{RunSettings, WorkerExit};
use crate::suite;

/// What a worker measures: everything it needs, on its command line as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerJob {
    /// The suite file.
    pub suite: PathBuf,
    /// Its SHA-256 when the run started: a suite edited since is refused.
    pub sha256: String,
    /// The model, by name.
    pub model: String,
    /// The precision policy.
    pub policy: Policy,
    /// The run's settings.
    pub settings: RunSettings,
    /// The device.
    pub device: Placement,
    /// The outside engines (command, trtexec) as the run configured them.
    #[serde(default)]
    pub engines: Engines,
    /// The run's process id: a worker whose run has died exits.
    pub parent: u32,
}

/// What a worker prints on stdout: its one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReply {
    /// The measurement, or the error the backend reported.
    pub outcome: Outcome,
}

/// A job a worker cannot even start on: it exits with status 2 and says why on stderr.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The suite cannot be read.
    #[error(transparent)]
    Suite(#[from] suite::SuiteError),
    /// The suite file changed since the run started.
    #[error("{path} changed since the run started (sha256 {now}, was {then}): results would mix two suites")]
    SuiteChanged {
        /// The suite file.
        path: PathBuf,
        /// Its hash now.
        now: String,
        /// Its hash at the start.
        then: String,
    },
    /// The job names a model the suite lacks.
    #[error("the suite has no model `{0}`")]
    NoModel(String),
}

/// Runs `job` in this process (the worker's side) and returns the reply to print.
pub fn serve(job: &WorkerJob) -> Result<WorkerReply, WorkerError> {
    exit_with_parent(job.parent);
    let loaded = suite::load(&job.suite)?;
    if loaded.sha256 != job.sha256 {
        return Err(WorkerError::SuiteChanged {
            path: job.suite.clone(),
            now: loaded.sha256,
            then: job.sha256.clone(),
        });
    }
    let model = loaded
        .suite
        .models
        .iter()
        .find(|m| m.name.as_str() == job.model)
        .ok_or_else(|| WorkerError::NoModel(job.model.clone()))?;
    super::fault::inject(&job.policy.name);
    let backend = match job.device.open(&job.engines) {
        Ok(backend) => backend,
        Err(error) => {
            return Ok(WorkerReply {
                outcome: Err(format!("backend: {error}")),
            })
        }
    };
    let started = std::time::Instant::now();
    let outcome = match ModelContext::new(model, &job.settings) {
        Ok(ctx) => {
            let reference_s = started.elapsed().as_secs_f64();
            measure_guarded(&ctx, &job.policy, backend.as_ref(), &job.settings).map(|mut m| {
                m.phases.reference = reference_s;
                m
            })
        }
        Err(error) => Err(format!("model: {error}")),
    };
    Ok(WorkerReply { outcome })
}

/// Asks Linux to kill this worker when the run dies (a `kill -9` of the run must not leave a
/// worker holding a GPU), and exits at once if the run is already gone.
fn exit_with_parent(parent: u32) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid take and return plain integers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if u32::try_from(libc::getppid()).ok() != Some(parent) {
            std::process::exit(2);
        }
    }
}

/// How a worker's scratch folder is named in the system's temporary folder, before the run's
/// process id: `precheck-worker-PID-XXXXXX`.
const SCRATCH_PREFIX: &str = "precheck-worker-";

/// Removes the scratch folders of runs whose process is gone (a run killed with `kill -9`
/// cannot remove its own), from the system's temporary folder; returns how many. A folder whose
/// process id is alive, whatever runs under it now, is left alone.
pub fn sweep_stale_scratch() -> usize {
    // Whether a process lives is read from /proc: without one, nothing is known dead.
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .filter(|entry| std::fs::remove_dir_all(entry.path()).is_ok())
        .count()
}

/// Runs each variant in a `precheck worker` process (the binary `exe`), ended after the suite's
/// timeout or when `stop` is set.
pub struct Workers<'a> {
    /// The precheck binary.
    pub exe: PathBuf,
    /// The suite file, as the run read it.
    pub suite: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// The outside engines, for their variants.
    pub engines: Engines,
    /// Set by Ctrl-C or SIGTERM.
    pub stop: &'a AtomicBool,
}

impl Executor for Workers<'_> {
    fn execute(
        &self,
        slot: &Slot,
        model: &Model,
        policy: &Policy,
        settings: &RunSettings,
    ) -> Execution {
        let job = WorkerJob {
            suite: self.suite.clone(),
            sha256: self.sha256.clone(),
            model: model.name.to_string(),
            policy: policy.clone(),
            settings: settings.clone(),
            device: slot.device,
            engines: self.engines.clone(),
            parent: std::process::id(),
        };
        // The worker's temporary files (an engine's work folder, what the engine itself writes)
        // go to a folder this process removes when the worker ends, however it ends: a killed
        // worker cannot clean up after itself.
        let scratch = match tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
            .tempdir()
        {
            Ok(scratch) => scratch,
            Err(error) => {
                return Execution::Finished(Box::new(Err(format!(
                    "could not create the worker's temporary folder: {error}"
                ))))
            }
        };
        let mut command = Command::new(&self.exe);
        command
            .arg("worker")
            .arg("--job")
            .arg(serde_json::to_string(&job).expect("jobs serialize"))
            .env("TMPDIR", scratch.path());
        let timeout = Duration::from_secs_f64(settings.timeout_s);
        let ended = match process::run(command, timeout, self.stop) {
            Ok(ended) => ended,
            Err(error) => {
                return Execution::Finished(Box::new(Err(format!(
                    "could not start a worker ({}): {error}",
                    self.exe.display()
                ))))
            }
        };
        let exit = WorkerExit::of(&ended);
        match ended.how {
            How::Stopped => Execution::Interrupted,
            How::Exited(status) if status.success() => {
                match serde_json::from_slice::<WorkerReply>(&ended.stdout) {
                    Ok(reply) => Execution::Finished(Box::new(reply.outcome)),
                    Err(e) => Execution::Failed(format!("worker sent no result ({e})"), exit),
                }
            }
            _ => Execution::Failed(failure_message(&exit, timeout), exit),
        }
    }
}

/// `worker killed by signal 11 (SIGSEGV): <last line of its stderr>`.
fn failure_message(exit: &WorkerExit, timeout: Duration) -> String {
    let mut message = format!("worker {}", exit.describe(timeout));
    if let Some(last) = exit
        .stderr_tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
    {
        message.push_str(": ");
        message.push_str(last.trim());
    }
    message
}
