//! One owner per pipeline on one machine: the process that serves a
//! pipeline (`ferry run`, `ferry dlq replay`) holds an exclusive OS lock on
//! `<state dir>/locks/<pipeline>.lock` for as long as it serves it, so two
//! processes never read the same source and write the same sinks at once.
//!
//! The lock is std's `File::try_lock`/`File::lock` (`flock(2)` on Linux):
//! the kernel releases it when the process ends, `kill -9` included, so a
//! crashed holder never leaves a stale lock. The file's content only says
//! who holds it (host, pid, since when) for messages and `ferry status`; the
//! lock, not the content, decides.
//!
//! What it does not do: hold across machines. Two hosts sharing a state
//! folder over a network filesystem may both get the lock (NFS and SMB
//! locks are not to be trusted); leases across machines are not done here.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a try waits out a brief hold (`ferry status` looking) before
/// it concludes another process serves the pipeline.
const BRIEF_HOLD: Duration = Duration::from_millis(300);

/// Who holds a pipeline's lock, as its lock file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The host name of the holder.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Since when it holds the lock (RFC 3339).
    pub since: String,
    /// What holds it: `ferry run` or `ferry dlq replay`.
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` on host {}, pid {}, since {}",
            self.command, self.host, self.pid, self.since
        )
    }
}

/// Why a pipeline's lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// Another process serves the pipeline.
    #[error(
        "pipeline `{pipeline}` is already served by {holder} (lock {}); stop that process first (Ctrl-C or SIGINT lets it commit), or run `ferry run --wait` to wait until it ends and take over",
        path.display()
    )]
    Held {
        /// The pipeline.
        pipeline: String,
        /// Who holds it (as far as the lock file says).
        holder: Box<Holder>,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created, opened or locked.
    #[error("pipeline `{pipeline}`: cannot use the lock file {}: {source}", path.display())]
    Io {
        /// The pipeline.
        pipeline: String,
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The lock file of a pipeline whose state database is `state`.
pub fn lock_path(state: &Path, pipeline: &str) -> PathBuf {
    let dir = state
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join("locks").join(format!("{pipeline}.lock"))
}

/// A pipeline's exclusive lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct Ownership {
    pipeline: String,
    path: PathBuf,
    file: File,
}

impl Ownership {
    /// Takes the lock of `pipeline` (state database `state`) for `command`,
    /// or says who holds it.
    pub fn take(state: &Path, pipeline: &str, command: &str) -> Result<Ownership, OwnerError> {
        let (path, file) = open(state, pipeline)?;
        let deadline = std::time::Instant::now() + BRIEF_HOLD;
        loop {
            match file.try_lock() {
                Ok(()) => return Ownership::record(pipeline, path, file, command),
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(OwnerError::Held {
                        pipeline: pipeline.to_string(),
                        holder: Box::new(read_holder(&path)),
                        path,
                    });
                }
                Err(TryLockError::Error(source)) => {
                    return Err(OwnerError::Io {
                        pipeline: pipeline.to_string(),
                        path,
                        source,
                    });
                }
            }
        }
    }

    /// Takes the lock of `pipeline`, waiting as long as another process
    /// holds it; `waiting` is called once, with the holder, if it must wait.
    pub fn wait(
        state: &Path,
        pipeline: &str,
        command: &str,
        waiting: impl FnOnce(&Holder, &Path),
    ) -> Result<Ownership, OwnerError> {
        match Ownership::take(state, pipeline, command) {
            Err(OwnerError::Held { holder, path, .. }) => {
                waiting(&holder, &path);
                let file = open(state, pipeline)?.1;
                file.lock().map_err(|source| OwnerError::Io {
                    pipeline: pipeline.to_string(),
                    path: path.clone(),
                    source,
                })?;
                Ownership::record(pipeline, path, file, command)
            }
            other => other,
        }
    }

    /// Writes who holds the lock into its file (the lock is held).
    fn record(
        pipeline: &str,
        path: PathBuf,
        mut file: File,
        command: &str,
    ) -> Result<Ownership, OwnerError> {
        let holder = Holder {
            host: host_name(),
            pid: std::process::id(),
            since: ferry_host::batch::rfc3339_micros(ferry_state::now_us()),
            command: command.to_string(),
        };
        let io = |source| OwnerError::Io {
            pipeline: pipeline.to_string(),
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string(&holder).map_err(|e| io(e.into()))?;
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{text}\n").as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Ownership {
            pipeline: pipeline.to_string(),
            path,
            file,
        })
    }

    /// The pipeline it owns.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first makes
        // the release independent of other handles to the same file.
        let _ = self.file.unlock();
    }
}

/// Who holds the lock of `pipeline` now, or `None` when nobody does. Looks
/// without blocking: a shared lock taken and dropped at once.
pub fn holder(state: &Path, pipeline: &str) -> Result<Option<Holder>, OwnerError> {
    let path = lock_path(state, pipeline);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OwnerError::Io {
                pipeline: pipeline.to_string(),
                path,
                source,
            });
        }
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(read_holder(&path))),
        Err(TryLockError::Error(source)) => Err(OwnerError::Io {
            pipeline: pipeline.to_string(),
            path,
            source,
        }),
    }
}

/// Opens (creating it and its folder if needed) a pipeline's lock file,
/// without truncating what the holder wrote.
fn open(state: &Path, pipeline: &str) -> Result<(PathBuf, File), OwnerError> {
    let path = lock_path(state, pipeline);
    let io = |source| OwnerError::Io {
        pipeline: pipeline.to_string(),
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    Ok((path, file))
}

/// What a lock file says of its holder; a holder that has not written yet
/// (or a file from elsewhere) reads as unknown.
fn read_holder(path: &Path) -> Holder {
    let mut text = String::new();
    let parsed = File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .ok()
        .and_then(|_| serde_json::from_str::<Holder>(text.trim()).ok());
    parsed.unwrap_or_else(|| Holder {
        host: "unknown".into(),
        pid: 0,
        since: "unknown".into(),
        command: "another process".into(),
    })
}

/// This machine's host name (Linux: the kernel's; else `$HOSTNAME`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_take_names_the_holder_and_a_drop_frees_it() {
        let dir = std::env::temp_dir().join(format!("ferry-owner-{}", std::process::id()));
        let state = dir.join("state.db");
        assert_eq!(holder(&state, "p").ok().flatten(), None);
        let first = Ownership::take(&state, "p", "ferry run").expect("first take");
        // Another open file description conflicts even within one process.
        match Ownership::take(&state, "p", "ferry run") {
            Err(OwnerError::Held { holder, .. }) => {
                assert_eq!(holder.pid, std::process::id());
                assert_eq!(holder.command, "ferry run");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        let shown = holder(&state, "p").expect("look").expect("held");
        assert_eq!(shown.pid, std::process::id());
        // Other pipelines are free.
        let other = Ownership::take(&state, "q", "ferry run").expect("other pipeline");
        drop(first);
        drop(other);
        assert_eq!(holder(&state, "p").ok().flatten(), None);
        let again = Ownership::take(&state, "p", "ferry run").expect("free again");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
