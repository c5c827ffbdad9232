//! An engine's output captured in bounded memory: each pipe drained on a thread of its own,
//! keeping its last bytes and counting the rest, so that an engine writing a gigabyte to stderr
//! costs kilobytes; and an engine's exit, not its pipes, ends the capture, so that a background
//! child still holding stderr open cannot stall the run.

use std::io::{self, Read};
use std::process::{Command, ExitStatus, Stdio};
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
    /// What the pipe carried, once it reached its end or `deadline` passed, whichever is first.
    pub fn finish(self, deadline: Instant) -> Tail {
        let _ = self
            .ended
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        self.tail.lock().expect("no panic holds this lock").clone()
    }
}

/// Runs `command` to its exit with stdout and stderr captured, each to its last `keep` bytes.
pub fn run(command: &mut Command, keep: usize) -> io::Result<(ExitStatus, Tail, Tail)> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = drain(child.stdout.take().expect("piped"), keep);
    let stderr = drain(child.stderr.take().expect("piped"), keep);
    let status = child.wait()?;
    let deadline = Instant::now() + AFTER_EXIT;
    Ok((status, stdout.finish(deadline), stderr.finish(deadline)))
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
