//! Isolated workers: variants run in `precheck worker` processes, so that a crash, a CUDA error
//! that poisons the context, or a hung kernel ends that variant only.
//!
//! A worker serves one device: it reads jobs on stdin, one JSON [`WorkerJob`] per line, and
//! answers each with one JSON [`WorkerReply`] line on stdout. It keeps what the next variant can
//! reuse (the backend with its CUDA context and kernels, the model's weights, input and
//! reference), so a model's variants pay for them once. A worker whose variant failed exits, and
//! the next variant starts a fresh one: a failed GPU context is never reused.
//!
//! The protocol cannot lose or duplicate a record: the worker writes nothing to the run folder.
//! The run (the only writer of `results.jsonl`) appends the variant's record after the worker has
//! answered or ended, whatever the way: reply, crash or timeout. A run killed before that append
//! runs the variant again on `--resume`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::execute::{ContextCache, Execution, Executor};
use super::measurement::Outcome;
use super::pool::{Placement, Slot};
use super::process::{How, Live};
use super::reference::BlockInputs;
use crate::backend::{Backend, Engines};
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

/// A job a worker cannot read: it exits with status 2 and says why on stderr.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Reading stdin or writing stdout failed.
    #[error("the worker's pipes: {0}")]
    Pipe(#[from] std::io::Error),
    /// A line that is not a job.
    #[error("not a job: {0}")]
    Job(#[from] serde_json::Error),
    /// The job cannot be started on.
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// The worker's side: serves the jobs on `jobs`, one reply line each on `replies`, until `jobs`
/// ends or a variant fails (a failure may leave the device unusable, so the next variant gets a
/// fresh worker).
pub fn serve(jobs: impl BufRead, mut replies: impl Write) -> Result<(), ProtocolError> {
    let mut kept = Kept::default();
    for line in jobs.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let job: WorkerJob = serde_json::from_str(&line)?;
        let outcome = kept.measure(&job)?;
        let failed = outcome.is_err();
        let reply = WorkerReply { outcome };
        writeln!(
            replies,
            "{}",
            serde_json::to_string(&reply).expect("replies serialize")
        )?;
        replies.flush()?;
        if failed {
            break;
        }
    }
    Ok(())
}

/// What a worker keeps from one job for the next.
#[derive(Default)]
struct Kept {
    /// The backend, with the device and outside engines it was opened for.
    backend: Option<(Placement, Engines, Box<dyn Backend>)>,
    contexts: ContextCache,
}

impl Kept {
    fn measure(&mut self, job: &WorkerJob) -> Result<Outcome, WorkerError> {
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
        let fits = |(device, engines, _): &(Placement, Engines, Box<dyn Backend>)| {
            *device == job.device && *engines == job.engines
        };
        let mut inputs = None;
        if !self.backend.as_ref().is_some_and(fits) {
            self.backend = None;
            // A device takes a while to open (its context, kernels, cuBLASLt) and so do a model's
            // weights (an MLP's 100 M seeded values): they are drawn on a thread while the backend
            // gets ready for the suite's policies on this one (`anticipate` opens a CUDA device:
            // its context is current on the thread that made it, which then uses it). Inputs that
            // cannot be read fail the variant as they would when the context is made.
            let reading = !self.contexts.holds(model, &job.settings)
                && !matches!(model.block, crate::model::Block::Onnx(_));
            let (opened, read) = std::thread::scope(|scope| {
                let reader = scope.spawn(|| {
                    super::fault::inject_while_reading(&job.policy.name);
                    reading.then(|| BlockInputs::read(model, &job.settings))
                });
                let opened = job.device.open(&job.engines);
                if let Ok(backend) = &opened {
                    // This job's policy first, then the suite's others.
                    let others = loaded.suite.precisions.iter().cloned();
                    let policies: Vec<Policy> = std::iter::once(job.policy.clone())
                        .chain(others.filter(|p| *p != job.policy))
                        .collect();
                    backend.anticipate(&policies);
                }
                (opened, reader.join())
            });
            match opened {
                Ok(backend) => self.backend = Some((job.device, job.engines.clone(), backend)),
                Err(error) => return Ok(Err(format!("backend: {error}"))),
            }
            match read.map(Option::transpose) {
                Ok(Ok(read)) => inputs = read,
                Ok(Err(error)) => return Ok(Err(format!("model: {error}"))),
                Err(_) => return Ok(Err("model: panicked while reading its inputs".into())),
            }
        }
        let (_, _, backend) = self.backend.as_ref().expect("opened above");
        Ok(self.contexts.measure(
            backend.as_ref(),
            (model, inputs),
            &job.policy,
            &job.settings,
        ))
    }
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

/// Runs variants in `precheck worker` processes (the binary `exe`), one per device, each job
/// ended after the suite's timeout or when `stop` is set. Dropping it ends the workers.
pub struct Workers {
    /// The precheck binary.
    exe: PathBuf,
    /// The suite file, as the run read it.
    suite: PathBuf,
    /// Its SHA-256.
    sha256: String,
    /// The outside engines, for their variants.
    engines: Engines,
    /// Set by Ctrl-C or SIGTERM.
    stop: Arc<AtomicBool>,
    /// Each device's keeper: the thread that owns its worker.
    keepers: Mutex<HashMap<Placement, Keeper>>,
}

/// The thread that owns a device's worker process. The worker is started from it and dies with
/// it (Linux's parent-death signal follows the thread that started a process, and a task's
/// thread ends with its variant, while a worker serves many).
struct Keeper {
    jobs: Sender<Request>,
    thread: JoinHandle<()>,
}

/// A job for a keeper, and where its execution goes.
struct Request {
    job: WorkerJob,
    timeout: Duration,
    answer: Sender<Execution>,
}

impl Workers {
    /// Workers of the precheck binary `exe` for the suite at `suite` (read with this SHA-256).
    pub fn new(
        exe: PathBuf,
        suite: PathBuf,
        sha256: String,
        engines: Engines,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Workers {
            exe,
            suite,
            sha256,
            engines,
            stop,
            keepers: Mutex::default(),
        }
    }

    /// The sender of `device`'s keeper, started on first use.
    fn keeper(&self, device: Placement) -> Sender<Request> {
        let mut keepers = self.keepers.lock().expect("no panic holds this lock");
        let keeper = keepers.entry(device).or_insert_with(|| {
            let (jobs, requests) = mpsc::channel::<Request>();
            let (exe, stop) = (self.exe.clone(), self.stop.clone());
            let thread = std::thread::spawn(move || {
                let mut worker = None;
                for request in requests {
                    let execution = serve_on(&mut worker, &exe, &request, &stop);
                    let _ = request.answer.send(execution);
                }
            });
            Keeper { jobs, thread }
        });
        keeper.jobs.clone()
    }
}

impl Drop for Workers {
    /// Ends every worker (each exits when its stdin closes) and waits for them.
    fn drop(&mut self) {
        let keepers = std::mem::take(self.keepers.get_mut().expect("no panic holds this lock"));
        for (_, keeper) in keepers {
            drop(keeper.jobs);
            let _ = keeper.thread.join();
        }
    }
}

/// A worker process and its scratch folder, which goes when the worker has (fields drop in
/// order).
struct Running {
    live: Live,
    _scratch: tempfile::TempDir,
}

/// Runs `request` on the keeper's `worker`, started first when there is none; the worker is kept
/// for the next job only when it measured this one.
fn serve_on(
    worker: &mut Option<Running>,
    exe: &Path,
    request: &Request,
    stop: &AtomicBool,
) -> Execution {
    let mut running = match worker.take() {
        Some(running) => running,
        None => match start(exe) {
            Ok(running) => running,
            Err(message) => return Execution::Finished(Box::new(Err(message))),
        },
    };
    let job = serde_json::to_string(&request.job).expect("jobs serialize");
    match running.live.ask(&job, request.timeout, stop) {
        Ok(line) => match serde_json::from_str::<WorkerReply>(&line) {
            Ok(reply) => {
                if reply.outcome.is_ok() {
                    *worker = Some(running);
                }
                Execution::Finished(Box::new(reply.outcome))
            }
            Err(error) => {
                let exit = WorkerExit {
                    exit_code: None,
                    signal: None,
                    timed_out: false,
                    stderr_tail: String::new(),
                };
                Execution::Failed(format!("worker sent no result ({error}): {line}"), exit)
            }
        },
        Err(ended) if ended.how == How::Stopped => Execution::Interrupted,
        Err(ended) => {
            let exit = WorkerExit::of(&ended);
            Execution::Failed(failure_message(&exit, request.timeout), exit)
        }
    }
}

/// Starts a worker. Its temporary files (an engine's work folder, what the engine itself writes)
/// go to a folder of its own that is removed when it ends, however it ends: a killed worker
/// cannot clean up after itself.
fn start(exe: &Path) -> Result<Running, String> {
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| format!("could not create the worker's temporary folder: {e}"))?;
    let mut command = Command::new(exe);
    command.arg("worker").env("TMPDIR", scratch.path());
    let live = Live::spawn(command)
        .map_err(|e| format!("could not start a worker ({}): {e}", exe.display()))?;
    Ok(Running {
        live,
        _scratch: scratch,
    })
}

impl Executor for Workers {
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
        let (answer, execution) = mpsc::channel();
        let request = Request {
            job,
            timeout: Duration::from_secs_f64(settings.timeout_s),
            answer,
        };
        // A keeper ends only when the Workers are dropped; one that panicked fails the variant.
        let ended =
            || Execution::Finished(Box::new(Err("the device's worker keeper ended".into())));
        if self.keeper(slot.device).send(request).is_err() {
            return ended();
        }
        execution.recv().unwrap_or_else(|_| ended())
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
