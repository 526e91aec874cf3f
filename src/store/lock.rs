//! One syncing process per state database. Two daemons on one database would each create the
//! same new records in the other org (neither sees the other's links until it commits) and
//! would mark each other's running cycles as interrupted. The daemon therefore holds an
//! exclusive advisory lock on `<database>.lock` for as long as it lives; the operating system
//! releases it when the process ends, `kill -9` included, so a restart never finds a stale
//! lock. Read-only commands (`status`, `failures list`) and the failure-queue repairs do not
//! take it: they are safe beside a running daemon.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Store;
use super::StoreError;

/// How long to wait for a process that is still exiting (a restart right after a stop).
const WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);

/// The database is being synced by another process, or its lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the state database {database} is in use by another orgsync process{holder} (lock \
         {lock}): run one orgsync per state database, and stop the service before running \
         `sync --once` by hand"
    )]
    Busy {
        database: String,
        lock: String,
        /// ` (pid N)` when the lock file says which.
        holder: String,
    },
    #[error("cannot lock the state database through {lock}: {source}")]
    Io {
        lock: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Held while a daemon syncs its state database; released when dropped or when the process
/// ends.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// Locks the database that `url` names (no lock for an in-memory database, which no other
    /// process can open), waiting briefly for a process that is still exiting.
    pub async fn acquire(url: &str) -> Result<Option<StateLock>, LockError> {
        match Store::database_file(url)? {
            Some(database) => Ok(Some(StateLock::acquire_file(&database, WAIT).await?)),
            None => Ok(None),
        }
    }

    /// Locks `database` through `<database>.lock`, waiting up to `wait`.
    pub async fn acquire_file(database: &Path, wait: Duration) -> Result<StateLock, LockError> {
        let path = lock_path(database);
        let io = |source| LockError::Io {
            lock: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = match holder.trim().parse::<u32>() {
                        Ok(pid) => format!(" (pid {pid})"),
                        Err(_) => String::new(),
                    };
                    return Err(LockError::Busy {
                        database: database.display().to_string(),
                        lock: path.display().to_string(),
                        holder,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        // Who holds it, for the message of the next process that tries.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        tracing::debug!(lock = %path.display(), "state database locked");
        Ok(StateLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `<database>.lock`, next to the database.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("state.db");
        let first = StateLock::acquire_file(&db, Duration::ZERO)
            .await
            .expect("first lock");
        assert_eq!(first.path(), dir.path().join("state.db.lock"));
        let err = StateLock::acquire_file(&db, Duration::from_millis(250))
            .await
            .expect_err("second lock refused");
        let text = err.to_string();
        assert!(matches!(err, LockError::Busy { .. }), "{text}");
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains("state.db"), "{text}");
        drop(first);
        StateLock::acquire_file(&db, Duration::ZERO)
            .await
            .expect("free again once dropped");
    }

    #[tokio::test]
    async fn an_in_memory_database_needs_no_lock() {
        assert!(
            StateLock::acquire("sqlite::memory:")
                .await
                .expect("no error")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("missing").join("state.db");
        let err = StateLock::acquire_file(&db, Duration::ZERO)
            .await
            .expect_err("no folder");
        assert!(matches!(err, LockError::Io { .. }));
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
