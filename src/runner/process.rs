//! Running one worker process: its own process group, stdout and stderr drained on their own
//! threads (a chatty worker can never block on a full pipe), a deadline, and an end that is always
//! the whole group's: SIGTERM, a grace period, then SIGKILL.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::backend::capture;
use crate::results::WorkerExit;

/// How long a worker has between SIGTERM and SIGKILL: enough for a CUDA context to tear down.
pub const GRACE: Duration = Duration::from_secs(5);
/// How much of the end of a worker's stderr a record keeps.
const STDERR_TAIL_BYTES: usize = 4096;
/// How often a running worker is checked for its end, its deadline and a stop.
const POLL: Duration = Duration::from_millis(20);

/// How a worker process ended.
#[derive(Debug)]
pub struct Ended {
    /// Why it ended.
    pub how: How,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// The end of what it wrote to stderr.
    pub stderr_tail: String,
}

/// Why a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// It exited on its own (successfully or not).
    Exited(ExitStatus),
    /// It ran past its deadline and was ended.
    TimedOut,
    /// The run was stopped (Ctrl-C, SIGTERM) and it was ended.
    Stopped,
}

impl WorkerExit {
    /// What a record keeps of `ended`.
    pub fn of(ended: &Ended) -> Self {
        let status = match ended.how {
            How::Exited(status) => Some(status),
            How::TimedOut | How::Stopped => None,
        };
        WorkerExit {
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            timed_out: ended.how == How::TimedOut,
            stderr_tail: ended.stderr_tail.clone(),
        }
    }

    /// One line for people: `exit status 1`, `killed by signal 11 (SIGSEGV)`, `timed out`.
    pub fn describe(&self, timeout: Duration) -> String {
        match (self.timed_out, self.exit_code, self.signal) {
            (true, _, _) => format!(
                "timed out after {} and was ended",
                humantime::format_duration(timeout)
            ),
            (false, Some(code), _) => format!("exited with status {code}"),
            (false, None, Some(signal)) => {
                format!("killed by signal {signal} ({})", signal_name(signal))
            }
            (false, None, None) => "ended without a status".into(),
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL: out of memory, or killed",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// Runs `command` in a process group of its own until it exits, `timeout` passes, or `stop` is set.
pub fn run(mut command: Command, timeout: Duration, stop: &AtomicBool) -> io::Result<Ended> {
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = capture::drain(child.stdout.take().expect("piped"), usize::MAX);
    let stderr = capture::drain(child.stderr.take().expect("piped"), STDERR_TAIL_BYTES);
    let how = wait(&mut child, Instant::now() + timeout, stop)?;
    // The group, not just the worker: a process the worker started may still hold the pipes open.
    signal_group(&child, libc::SIGKILL);
    let deadline = Instant::now() + capture::AFTER_EXIT;
    let stdout = stdout.finish(deadline).kept;
    let stderr = stderr.finish(deadline);
    Ok(Ended {
        how,
        stdout,
        stderr_tail: String::from_utf8_lossy(&stderr.kept).trim_end().to_owned(),
    })
}

fn wait(child: &mut Child, deadline: Instant, stop: &AtomicBool) -> io::Result<How> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(How::Exited(status));
        }
        let how = if stop.load(Ordering::SeqCst) {
            How::Stopped
        } else if Instant::now() >= deadline {
            How::TimedOut
        } else {
            thread::sleep(POLL);
            continue;
        };
        end(child)?;
        return Ok(how);
    }
}

/// SIGTERM to the group, [`GRACE`] to exit, then SIGKILL.
fn end(child: &mut Child) -> io::Result<()> {
    signal_group(child, libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(POLL);
    }
    signal_group(child, libc::SIGKILL);
    child.wait().map(drop)
}

fn signal_group(child: &Child, signal: i32) {
    let group = i32::try_from(child.id()).expect("process ids fit in pid_t");
    // SAFETY: kill(2) with a negative pid signals that process group; the group is the worker's
    // own (process_group(0)), so nothing else is touched. It fails harmlessly (ESRCH) once the
    // group is gone.
    unsafe { libc::kill(-group, signal) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn output_is_collected_and_the_stderr_tail_kept() {
        let stop = AtomicBool::new(false);
        let script =
            "echo reply; i=0; while [ $i -lt 2000 ]; do echo line $i >&2; i=$((i+1)); done; exit 4";
        let ended = run(sh(script), Duration::from_secs(20), &stop).unwrap();
        assert_eq!(ended.stdout, b"reply\n");
        assert!(ended.stderr_tail.ends_with("line 1999"));
        assert!(ended.stderr_tail.len() <= STDERR_TAIL_BYTES);
        let exit = WorkerExit::of(&ended);
        assert_eq!((exit.exit_code, exit.signal), (Some(4), None));
        assert_eq!(exit.describe(Duration::ZERO), "exited with status 4");
    }

    #[test]
    fn a_timeout_ends_the_whole_group() {
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        // The grandchild holds stderr open: unless the group is killed, draining never ends.
        let ended = run(
            sh("sleep 30 & echo started >&2; wait"),
            Duration::from_millis(300),
            &stop,
        )
        .unwrap();
        assert_eq!(ended.how, How::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
        let exit = WorkerExit::of(&ended);
        assert!(exit.timed_out);
        assert_eq!(
            exit.describe(Duration::from_millis(300)),
            "timed out after 300ms and was ended"
        );
    }

    #[test]
    fn a_signal_is_named() {
        let stop = AtomicBool::new(false);
        let ended = run(sh("kill -SEGV $$"), Duration::from_secs(20), &stop).unwrap();
        let exit = WorkerExit::of(&ended);
        assert_eq!(exit.signal, Some(libc::SIGSEGV));
        assert_eq!(
            exit.describe(Duration::ZERO),
            "killed by signal 11 (SIGSEGV)"
        );
    }

    #[test]
    fn a_stop_ends_the_worker() {
        let stop = AtomicBool::new(true);
        let ended = run(sh("sleep 30"), Duration::from_secs(60), &stop).unwrap();
        assert_eq!(ended.how, How::Stopped);
    }
}
