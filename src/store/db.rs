//! Opening the database (WAL, `busy_timeout`, foreign keys, embedded migrations) and the two
//! handles the rest of the store hangs its methods on: [`Store`] (the pool; each call is its
//! own transaction) and [`PageTx`] (one open write transaction for a page).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of a file database: enough for the daemon's reader tasks and `status`.
const FILE_POOL_SIZE: u32 = 4;

/// Something went wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid state.url {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("cannot open the state database {url:?}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply migrations to the state database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot lock {path} to apply the state database's migrations")]
    MigrationLock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A link write would link a record to a second record (links are unique on both sides).
    #[error("link conflict for {object}: cannot link A {a_id} to B {b_id}: {detail}")]
    LinkConflict {
        object: String,
        a_id: String,
        b_id: String,
        detail: String,
    },
    /// A value in the database does not parse (hand-edited, or written by a newer version).
    #[error("unexpected value in the state database: {0}")]
    Corrupt(String),
    #[error("state database error")]
    Db(#[from] sqlx::Error),
}

/// The state store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
}

impl Store {
    /// Opens (creating it if missing) the database at `url` — `sqlite://path/to/file.db` or
    /// `sqlite::memory:` — and applies the embedded migrations.
    ///
    /// An in-memory store has a single connection (each SQLite connection would otherwise see
    /// its own empty database): while a [`PageTx`] is open on it, read through the `PageTx`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        check_url(url)?;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl {
                url: crate::domain::redact_url(url),
                detail: e.to_string(),
            })?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let (options, pool_options) = if is_in_memory(url) {
            (
                options,
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    // Waiting for the only connection means a caller read through the Store
                    // while its own PageTx was open: fail fast instead of hanging.
                    .acquire_timeout(Duration::from_secs(5))
                    .idle_timeout(None)
                    .max_lifetime(None),
            )
        } else {
            (
                options
                    .journal_mode(SqliteJournalMode::Wal)
                    // In WAL mode NORMAL is durable across process crashes (kill -9); only an
                    // OS crash or power loss can lose the last transactions.
                    .synchronous(SqliteSynchronous::Normal),
                SqlitePoolOptions::new().max_connections(FILE_POOL_SIZE),
            )
        };
        // Two processes opening a new database at once (a daemon's first start and an
        // operator's `status`) would race: on the switch of the new file to WAL ("database is
        // locked") and on the migrations (the second fails on tables the first just made).
        // SQLite cannot lock across the pool's and the migrator's connections, so the first
        // connection and the migrations happen under an exclusive lock on a file beside the
        // database; the second process waits, then finds the file ready.
        let guard = match Store::database_file(url)? {
            Some(path) => Some(migration_lock(&path).await?),
            None => None,
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                url: crate::domain::redact_url(url),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        drop(guard);
        tracing::debug!(url, "state store open");
        Ok(Store { pool })
    }

    /// The database file `url` names, or `None` for an in-memory database. Lets read-only
    /// callers (`status`) tell "nothing synced yet" from "wrong working directory" without
    /// creating a file.
    pub fn database_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
        check_url(url)?;
        if is_in_memory(url) {
            return Ok(None);
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: crate::domain::redact_url(url),
            detail: e.to_string(),
        })?;
        Ok(Some(options.get_filename().to_path_buf()))
    }

    /// Starts the write transaction of a page. `BEGIN IMMEDIATE` takes the write lock at
    /// once, so two writers queue on `busy_timeout` instead of failing mid-transaction.
    pub async fn begin(&self) -> Result<PageTx, StoreError> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(PageTx { tx })
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `f` in its own immediate transaction (for multi-statement writes).
    pub(crate) async fn in_tx<T>(
        &self,
        f: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let value = f(&mut *tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

fn check_url(url: &str) -> Result<(), StoreError> {
    if url.starts_with("sqlite:") {
        Ok(())
    } else {
        Err(StoreError::BadUrl {
            url: crate::domain::redact_url(url),
            detail: "expected sqlite://path/to/file.db or sqlite::memory:".into(),
        })
    }
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// One open write transaction, normally one page of a direction pass. Everything written
/// through it becomes durable at [`PageTx::commit`]; dropping it without committing (for
/// instance on an early `?` return) rolls everything back.
#[derive(Debug)]
pub struct PageTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
}

impl PageTx {
    /// Makes the page's writes durable.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Discards the page's writes explicitly (dropping the `PageTx` does the same).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }

    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// Takes the exclusive lock of `<database>.migrate-lock` (waiting for another process that is
/// migrating the same database); released when the returned file is dropped or the process
/// ends.
async fn migration_lock(database: &std::path::Path) -> Result<std::fs::File, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".migrate-lock");
    let path = std::path::PathBuf::from(name);
    let shown = path.display().to_string();
    let error = |source| StoreError::MigrationLock {
        path: shown.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(error)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| error(std::io::Error::other(e)))?
        .map_err(error)
}
