//! A worker process that serves jobs: its own process group, a job as one line on its stdin and
//! the reply as one line on its stdout, stdout and stderr drained on their own threads (a chatty
//! worker can never block on a full pipe), a deadline per job, and an end that is always the whole
//! group's: SIGTERM, a grace period, then SIGKILL.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
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
    /// The end of what it wrote to stderr while serving its last job.
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

/// A worker process serving jobs, one at a time.
pub struct Live {
    child: Child,
    /// Closed (taken) to tell the worker that no job will come.
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line.
    lines: Receiver<String>,
    stderr: Option<capture::Drain>,
}

impl Live {
    /// Starts `command` in a process group of its own, its stdin and stdout the job protocol's.
    pub fn spawn(mut command: Command) -> io::Result<Live> {
        command
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = capture::drain(child.stderr.take().expect("piped"), STDERR_TAIL_BYTES);
        Ok(Live {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
        })
    }

    /// Sends `job` (one line) and waits for the worker's reply line, until `timeout` passes or
    /// `stop` is set. When no reply comes, the worker has ended or is ended, and how is returned.
    pub fn ask(
        &mut self,
        job: &str,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<String, Ended> {
        let deadline = Instant::now() + timeout;
        let since = self.stderr.as_ref().map_or(0, capture::Drain::written);
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{job}").and_then(|()| stdin.flush()),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        };
        let how = match sent {
            // A worker that is gone cannot read its job: how it went is read below.
            Err(_) => self.exited(),
            Ok(()) => loop {
                match self.lines.recv_timeout(POLL) {
                    Ok(line) if line.trim().is_empty() => continue,
                    Ok(line) => return Ok(line),
                    // Its stdout is closed: it is exiting, or has exited.
                    Err(RecvTimeoutError::Disconnected) => break self.exited(),
                    Err(RecvTimeoutError::Timeout) => {}
                }
                let how = if stop.load(Ordering::SeqCst) {
                    How::Stopped
                } else if Instant::now() >= deadline {
                    How::TimedOut
                } else {
                    continue;
                };
                end(&mut self.child);
                break how;
            },
        };
        // The group, not just the worker: a process the worker started may still hold the pipes.
        signal_group(&self.child, libc::SIGKILL);
        let stderr = self
            .stderr
            .take()
            .map(|drain| {
                drain
                    .finish(Instant::now() + capture::AFTER_EXIT)
                    .since(since)
            })
            .unwrap_or_default();
        Err(Ended {
            how,
            stderr_tail: String::from_utf8_lossy(&stderr.kept).trim_end().to_owned(),
        })
    }

    /// How the worker ended, once it has ([`GRACE`] at most; then it is ended).
    fn exited(&mut self) -> How {
        let deadline = Instant::now() + GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return How::Exited(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                _ => {
                    end(&mut self.child);
                    return match self.child.try_wait() {
                        Ok(Some(status)) => How::Exited(status),
                        _ => How::TimedOut,
                    };
                }
            }
        }
    }
}

impl Drop for Live {
    /// Tells the worker that no job will come (it exits), gives it [`GRACE`] to, then ends its
    /// group: nothing it started outlives it.
    fn drop(&mut self) {
        drop(self.stdin.take());
        self.exited();
        signal_group(&self.child, libc::SIGKILL);
    }
}

/// SIGTERM to the group, [`GRACE`] to exit, then SIGKILL.
fn end(child: &mut Child) {
    signal_group(child, libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(POLL);
    }
    signal_group(child, libc::SIGKILL);
    let _ = child.wait();
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
    use std::path::Path;

    use super::*;

    fn sh(script: &str) -> Live {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        Live::spawn(command).unwrap()
    }

    const LONG: Duration = Duration::from_secs(20);

    #[test]
    fn jobs_are_answered_in_turn_by_one_process() {
        let stop = AtomicBool::new(false);
        let mut live = sh("echo $$ >&2; while read job; do echo \"$job done by $$\"; done");
        let first = live.ask("a", LONG, &stop).unwrap();
        let second = live.ask("b", LONG, &stop).unwrap();
        let pid = first.strip_prefix("a done by ").unwrap();
        assert_eq!(second, format!("b done by {pid}"));
    }

    #[test]
    fn a_crash_keeps_the_stderr_tail_of_its_own_job() {
        let stop = AtomicBool::new(false);
        let script = "read job; echo 'an old warning' >&2; echo ok; read job; \
            i=0; while [ $i -lt 2000 ]; do echo line $i >&2; i=$((i+1)); done; exit 4";
        let mut live = sh(script);
        assert_eq!(live.ask("a", LONG, &stop).unwrap(), "ok");
        let ended = live.ask("b", LONG, &stop).unwrap_err();
        assert!(ended.stderr_tail.ends_with("line 1999"));
        assert!(!ended.stderr_tail.contains("old warning"));
        assert!(ended.stderr_tail.len() <= STDERR_TAIL_BYTES);
        let exit = WorkerExit::of(&ended);
        assert_eq!((exit.exit_code, exit.signal), (Some(4), None));
        assert_eq!(exit.describe(Duration::ZERO), "exited with status 4");

        let mut live = sh("read job; echo 'only this job' >&2; exit 1");
        let ended = live.ask("a", LONG, &stop).unwrap_err();
        assert_eq!(ended.stderr_tail, "only this job");
    }

    #[test]
    fn a_timeout_ends_the_whole_group() {
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        // The grandchild holds the pipes open: unless the group is killed, draining never ends.
        let mut live = sh("sleep 30 & echo started >&2; wait");
        let ended = live
            .ask("a", Duration::from_millis(300), &stop)
            .unwrap_err();
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
        let ended = sh("kill -SEGV $$").ask("a", LONG, &stop).unwrap_err();
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
        let ended = sh("sleep 30")
            .ask("a", Duration::from_secs(60), &stop)
            .unwrap_err();
        assert_eq!(ended.how, How::Stopped);
    }

    #[test]
    fn a_dropped_worker_is_told_to_exit_and_its_group_ends() {
        let stop = AtomicBool::new(false);
        let marker = tempfile::NamedTempFile::new().unwrap();
        let script = format!(
            "sleep 60 & echo $! > {}; read job; echo ok; while read job; do :; done",
            marker.path().display()
        );
        let mut live = sh(&script);
        assert_eq!(live.ask("a", LONG, &stop).unwrap(), "ok");
        let started = Instant::now();
        drop(live);
        assert!(started.elapsed() < GRACE, "it exited when its stdin closed");
        let child = std::fs::read_to_string(marker.path()).unwrap();
        let proc = format!("/proc/{}", child.trim());
        // Killed, it is reaped by init a moment later.
        let gone = (0..100).any(|_| {
            thread::sleep(POLL);
            !Path::new(&proc).exists()
        });
        assert!(gone, "the worker's child went with its group");
    }
}
