//! Running an engine: in a process group of its own that dies with it and with this process,
//! its output captured in bounded memory.
//!
//! - Each pipe is drained on a thread of its own, keeping its last bytes and counting the rest,
//!   so that an engine writing a gigabyte to stderr costs kilobytes; the engine's exit, not its
//!   pipes, ends the capture, so that a child still holding stderr open cannot stall the run.
//! - The engine leads a new process group. When it exits, the group is killed: nothing it started
//!   runs on. A watcher (`sh`, told by Linux's `PR_SET_PDEATHSIG` when this process dies, even of
//!   `kill -9`) kills the group if this process dies first, so that an engine and its children do
//!   not outlive a killed run on the GPU.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long after an engine exits its pipes may take to reach their end (a child it left
/// behind may hold them open for ever).
pub const AFTER_EXIT: Duration = Duration::from_secs(2);

/// The end of what a pipe carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    /// The last bytes, at most the capture's bound.
    pub kept: Vec<u8>,
    /// How many bytes came before them and were dropped.
    pub dropped: u64,
}

impl Tail {
    /// What the pipe carried after its first `offset` bytes, as far as it is kept.
    pub fn since(mut self, offset: u64) -> Tail {
        let skip = offset
            .saturating_sub(self.dropped)
            .min(self.kept.len() as u64) as usize;
        self.kept.drain(..skip);
        self.dropped = self.dropped.max(offset);
        self
    }

    /// The kept bytes as text (invalid UTF-8 replaced, never a panic), saying how much was
    /// dropped before them.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.kept);
        if self.dropped == 0 {
            text.into_owned()
        } else {
            format!("[{} earlier bytes dropped] {text}", self.dropped)
        }
    }
}

/// A pipe being drained on its own thread.
pub struct Drain {
    tail: Arc<Mutex<Tail>>,
    ended: Receiver<()>,
}

/// Drains `pipe` on a thread, keeping its last `keep` bytes.
pub fn drain(mut pipe: impl Read + Send + 'static, keep: usize) -> Drain {
    let tail = Arc::new(Mutex::new(Tail::default()));
    let (done, ended) = mpsc::channel();
    let shared = tail.clone();
    thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let mut tail = shared.lock().expect("no panic holds this lock");
            tail.kept.extend_from_slice(&buffer[..n]);
            if tail.kept.len() > keep {
                let excess = tail.kept.len() - keep;
                tail.kept.drain(..excess);
                tail.dropped += excess as u64;
            }
        }
        let _ = done.send(());
    });
    Drain { tail, ended }
}

impl Drain {
    /// How many bytes the pipe has carried so far.
    pub fn written(&self) -> u64 {
        let tail = self.tail.lock().expect("no panic holds this lock");
        tail.dropped + tail.kept.len() as u64
    }

    /// What the pipe carried, once it reached its end or `deadline` passed, whichever is first.
    pub fn finish(self, deadline: Instant) -> Tail {
        let _ = self
            .ended
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        self.tail.lock().expect("no panic holds this lock").clone()
    }
}

/// Runs `command` to its exit in a process group of its own, with stdout and stderr captured,
/// each to its last `keep` bytes; then kills what is left of the group.
pub fn run(command: &mut Command, keep: usize) -> io::Result<(ExitStatus, Tail, Tail)> {
    command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let group = i32::try_from(child.id()).expect("process ids fit in pid_t");
    let watcher = watch(group);
    let stdout = drain(child.stdout.take().expect("piped"), keep);
    let stderr = drain(child.stderr.take().expect("piped"), keep);
    let status = child.wait();
    kill_group(group);
    if let Ok(mut watcher) = watcher {
        let _ = watcher.kill();
        let _ = watcher.wait();
    }
    let status = status?;
    let deadline = Instant::now() + AFTER_EXIT;
    Ok((status, stdout.finish(deadline), stderr.finish(deadline)))
}

fn kill_group(group: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group, the engine's own (it was
    // started with process_group(0)); it fails harmlessly (ESRCH) once the group is gone.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// A watcher that kills process group `group` when this process dies: `sh`, sent SIGTERM by
/// the kernel when its parent (this process) dies, traps it and kills the group; it ends by
/// itself once the group is gone. (`kill -SIG -PGID` without `--`: dash takes no `--` there.)
fn watch(group: i32) -> io::Result<Child> {
    let script = format!(
        "trap 'kill -KILL -{group} 2>/dev/null; exit 0' TERM; \
         while kill -0 -{group} 2>/dev/null; do sleep 1; done"
    );
    let mut watcher = Command::new("sh");
    watcher
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and takes plain integers.
    unsafe {
        watcher.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    watcher.spawn()
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
    fn a_flood_of_stderr_keeps_its_tail_and_counts_the_rest() {
        // 10 MB of stderr, then the line that says what went wrong.
        let script =
            "head -c 10000000 /dev/zero | tr '\\\\0' x >&2; echo 'the real error' >&2; exit 3";
        let (status, _, stderr) = run(&mut sh(script), 4096).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr.kept.len(), 4096);
        assert_eq!(stderr.dropped, 10_000_000 + 15 - 4096);
        assert!(stderr.text().ends_with("the real error\n"));
        assert!(stderr.text().starts_with("[9995919 earlier bytes dropped]"));
    }

    #[test]
    fn the_exit_decides_not_a_child_holding_the_pipe() {
        // The engine exits at once; a child it left behind keeps stderr open for a minute.
        let started = Instant::now();
        let (status, _, stderr) = run(&mut sh("echo done >&2; sleep 60 & exit 0"), 4096).unwrap();
        assert!(status.success());
        assert_eq!(stderr.text(), "done\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_a_panic() {
        let (_, _, stderr) = run(&mut sh("printf 'bad \\377\\376 bytes' >&2"), 4096).unwrap();
        assert_eq!(stderr.text(), "bad \u{fffd}\u{fffd} bytes");
    }
}
