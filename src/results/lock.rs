//! One writer per run folder: an advisory lock (`flock`) on `DIR/.precheck.lock`, held while a
//! run appends to the folder, so that a second run or `--resume` of the same folder is refused
//! instead of recording every variant twice. The lock file holds the holder's process id, for the
//! message; the kernel releases the lock when the holder exits, however it exits.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name in a run folder.
pub const LOCK_FILE: &str = ".precheck.lock";

/// Why a run folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{dir} is being written by another precheck (process {holder}); wait for it to end, or use another --out")]
    Held {
        /// The run folder.
        dir: PathBuf,
        /// The holder's process id, as its lock file says.
        holder: String,
    },
    /// The lock file cannot be opened or locked.
    #[error("locking {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A held lock on a run folder; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Locks the run folder `dir` (which must exist) for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<FolderLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: `flock` takes a descriptor `file` owns and keeps open for the call; it reads
        // and writes no memory of ours.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(io(error));
            }
            let mut holder = String::new();
            file.read_to_string(&mut holder).map_err(io)?;
            return Err(LockError::Held {
                dir: dir.to_owned(),
                holder: holder.trim().to_owned(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(FolderLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path()).unwrap();
        let error = FolderLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "another precheck (process {})",
                std::process::id()
            )),
            "{error}"
        );
        drop(first);
        FolderLock::acquire(dir.path()).unwrap();
    }
}
