//! Opening the database and the two handles the rest of the store hangs its methods on:
//! [`Store`] (the pool; each call is its own transaction) and [`PageTx`] (one open write
//! transaction for a page).
//!
//! Two backends behind one code path: every query goes through `sqlx::Any` and is written once,
//! in SQL both accept (`$N` placeholders, which SQLite binds by number; `ON CONFLICT`; no
//! backend's own functions; timestamps as fixed-width UTC text, see `time`). Where SQL must
//! differ, the difference sits beside the query, chosen by [`Backend::of_conn`]: reading a JSON
//! array of ids (`json_ids!`, in `links` and `inbox`), the database's clock (`lease`), and the
//! catalog (`copy`).
//!
//! - **SQLite** (`sqlite://path`, `sqlite::memory:`, or a bare path): WAL, `synchronous =
//!   NORMAL`, `busy_timeout`, foreign keys (set per connection), migrations from
//!   `/migrations`. The sync pair is the file: `state.pair_name` is validated and otherwise
//!   unused.
//! - **PostgreSQL** (`postgres://` or `postgresql://`): each sync pair lives in its own schema,
//!   `orgsync_<pair_name>`, created on first open; every connection of the pool sets its
//!   `search_path` to it, so every table (and any table a later migration adds) is per pair
//!   with no query naming a schema. Migrations from `/migrations/postgres` (the same schema;
//!   `migrations/README.md` says how to port one).
//!
//! Write transactions: SQLite's `BEGIN IMMEDIATE` takes the database's write lock at once, so
//! writers queue instead of failing mid-transaction. PostgreSQL gets the same guarantee from a
//! transaction-scoped advisory lock per pair (`pg_advisory_xact_lock`) taken right after
//! `BEGIN` (READ COMMITTED): a page commit that reads a link or a failure and then writes it
//! cannot interleave with another writer of the pair (an operator's `links unlink`, `failures
//! retry`, a second process), so no read-then-write loses an update, and there are no
//! serialization failures to retry. The lock is released at commit or rollback, also behind a
//! transaction-mode pooler (PgBouncer), since it never outlives the transaction. Single-statement
//! writes outside a transaction are atomic on both backends.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};

/// How long a writer waits for another writer's lock before giving up (SQLite).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of a file database: enough for the daemon's reader tasks and `status`.
const FILE_POOL_SIZE: u32 = 4;
/// Connections to PostgreSQL.
const PG_POOL_SIZE: u32 = 5;
/// The pair a store belongs to unless `state.pair_name` says otherwise.
pub const DEFAULT_PAIR: &str = "default";
/// The first key of the store's advisory locks on PostgreSQL (the second is the pair's
/// schema): "orgs" in ASCII, so other applications' locks in the same database do not collide.
const PG_LOCK_CLASS: i32 = 0x6f72_6773;

/// Something went wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid state.url {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("invalid state.pair_name {name:?}: expected 1 to 40 of a-z, 0-9 and _")]
    BadPairName { name: String },
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
    /// A fenced write refused: this replica no longer holds the sync lease with this epoch
    /// (another replica took over), so nothing of the write is kept.
    #[error(
        "lost the sync lease (epoch {epoch}): another replica took over, so this write is not \
         committed"
    )]
    LeaseLost { epoch: i64 },
}

/// Which database a [`Store`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend `url` names: `postgres://`/`postgresql://`, `sqlite:`, or a bare path
    /// (no `:`, SQLite); anything else is an error (`config::check_state_url` agrees).
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") || (!url.is_empty() && !url.contains(':')) {
            Ok(Backend::Sqlite)
        } else {
            Err(StoreError::BadUrl {
                url: crate::domain::redact_url(url),
                detail: "expected sqlite://path/to/file.db, sqlite::memory:, a file path, or \
                         postgres://user@host/database"
                    .into(),
            })
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend of an open connection.
    pub(crate) fn of_conn(conn: &AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("postgresql") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// `$before (<the elements of the JSON array bound at $param>) $after`, as one static string
/// per backend: the one piece of SQL the two backends spell differently (SQLite `json_each`,
/// PostgreSQL `jsonb_array_elements_text`). A page of ids travels as one bind, so a lookup is
/// one statement whatever the page size. `int` casts the elements to integers (PostgreSQL
/// compares text and bigint only after a cast).
macro_rules! json_ids {
    ($conn:expr, $before:expr, $param:literal, $after:literal) => {
        match $crate::store::Backend::of_conn($conn) {
            $crate::store::Backend::Sqlite => {
                concat!(
                    $before,
                    "(SELECT value FROM json_each(",
                    $param,
                    "))",
                    $after
                )
            }
            $crate::store::Backend::Postgres => concat!(
                $before,
                "(SELECT jsonb_array_elements_text(CAST(",
                $param,
                " AS jsonb)))",
                $after
            ),
        }
    };
    (int $conn:expr, $before:expr, $param:literal, $after:literal) => {
        match $crate::store::Backend::of_conn($conn) {
            $crate::store::Backend::Sqlite => {
                concat!(
                    $before,
                    "(SELECT value FROM json_each(",
                    $param,
                    "))",
                    $after
                )
            }
            $crate::store::Backend::Postgres => concat!(
                $before,
                "(SELECT CAST(jsonb_array_elements_text(CAST(",
                $param,
                " AS jsonb)) AS BIGINT))",
                $after
            ),
        }
    };
}
pub(crate) use json_ids;

pub use crate::config::valid_pair_name;

/// The PostgreSQL schema of a sync pair.
pub fn pair_schema(pair_name: &str) -> String {
    format!("orgsync_{pair_name}")
}

/// The state store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// The sync lease's holder and epoch this handle's progress writes are fenced with (see
    /// `lease`): set by [`Store::fenced`] for a leader's passes, none on SQLite.
    pub(crate) fence: Option<super::Fence>,
    /// How long a fenced page's transaction may sit idle on PostgreSQL before the server ends
    /// its session (`idle_in_transaction_session_timeout`): a paused or stalled leader must
    /// not hold the pair's write lock, which a take of the lease waits for, past the TTL.
    pub(crate) fence_idle_limit: Option<std::time::Duration>,
}

impl Store {
    /// Opens the store of the default pair at `url`; see [`Store::open_pair`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_pair(url, DEFAULT_PAIR).await
    }

    /// Opens (creating it if missing) the state of sync pair `pair_name` at `url`, and applies
    /// the embedded migrations: a SQLite file (`sqlite://path/to/file.db`, a bare path, or
    /// `sqlite::memory:`), or the pair's schema in a PostgreSQL database (`postgres://...`).
    ///
    /// An in-memory store has a single connection (each SQLite connection would otherwise see
    /// its own empty database): while a [`PageTx`] is open on it, read through the `PageTx`.
    pub async fn open_pair(url: &str, pair_name: &str) -> Result<Store, StoreError> {
        if !valid_pair_name(pair_name) {
            return Err(StoreError::BadPairName {
                name: pair_name.to_string(),
            });
        }
        sqlx::any::install_default_drivers();
        match Backend::of_url(url)? {
            Backend::Sqlite => open_sqlite(url).await,
            Backend::Postgres => open_postgres(url, pair_name).await,
        }
    }

    /// Opens the store that `[state]` names (`state.url`, `state.pair_name`).
    pub async fn open_state(state: &crate::config::StateSettings) -> Result<Store, StoreError> {
        Store::open_pair(&state.url, &state.pair_name).await
    }

    /// Which database this store is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database file `url` names, or `None` for an in-memory database or PostgreSQL. Lets
    /// read-only callers (`status`) tell "nothing synced yet" from "wrong working directory"
    /// without creating a file.
    pub fn database_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
        if Backend::of_url(url)? == Backend::Postgres || is_in_memory(url) {
            return Ok(None);
        }
        let url = sqlite_url(url);
        let options =
            sqlx::sqlite::SqliteConnectOptions::from_str(&url).map_err(|e| StoreError::BadUrl {
                url: crate::domain::redact_url(&url),
                detail: e.to_string(),
            })?;
        Ok(Some(options.get_filename().to_path_buf()))
    }

    /// Starts the write transaction of a page: it holds the pair's write lock from its start
    /// (SQLite `BEGIN IMMEDIATE`; PostgreSQL an advisory transaction lock), so two writers
    /// queue instead of failing mid-transaction.
    pub async fn begin(&self) -> Result<PageTx, StoreError> {
        let mut tx = self.begin_write().await?;
        if let (Some(limit), Backend::Postgres) = (self.fence_idle_limit, self.backend) {
            // A number of milliseconds, spliced in: SET takes no bind parameters.
            let ms = limit.as_millis().max(1);
            tx.execute(sqlx::AssertSqlSafe(format!(
                "SET LOCAL idle_in_transaction_session_timeout = {ms}"
            )))
            .await?;
        }
        Ok(PageTx {
            tx,
            fence: self.fence.clone(),
        })
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `f` in its own write transaction (for multi-statement writes).
    pub(crate) async fn in_tx<T>(
        &self,
        f: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.begin_write().await?;
        let value = f(&mut *tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// A transaction that holds the pair's write lock from its first statement.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
                    .bind(PG_LOCK_CLASS)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }
}

/// `url` as sqlx's SQLite driver reads it: a bare path becomes `sqlite://path`, and a file is
/// created when missing (`mode=rwc`) unless the URL says otherwise.
fn sqlite_url(url: &str) -> String {
    let url = if url.starts_with("sqlite:") {
        url.to_string()
    } else {
        format!("sqlite://{url}")
    };
    if is_in_memory(&url) || url.contains("mode=") {
        url
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

async fn open_sqlite(url: &str) -> Result<Store, StoreError> {
    let in_memory = is_in_memory(url);
    let full = sqlite_url(url);
    let options = AnyConnectOptions::from_str(&full).map_err(|e| StoreError::BadUrl {
        url: crate::domain::redact_url(url),
        detail: e.to_string(),
    })?;
    let pool_options = if in_memory {
        AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Waiting for the only connection means a caller read through the Store while its
            // own PageTx was open: fail fast instead of hanging.
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        AnyPoolOptions::new().max_connections(FILE_POOL_SIZE)
    };
    let pool_options = pool_options.after_connect(move |conn, _meta| {
        Box::pin(async move {
            // The driver's own options are not reachable through `Any`: the same settings as
            // pragmas. In WAL mode NORMAL is durable across process crashes (kill -9); only an
            // OS crash or power loss can lose the last transactions.
            let mut pragmas = format!(
                "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};",
                BUSY_TIMEOUT.as_millis()
            );
            if !in_memory {
                pragmas.push_str(" PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
            }
            conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
            Ok(())
        })
    });
    // Two processes opening a new database at once (a daemon's first start and an operator's
    // `status`) would race: on the switch of the new file to WAL ("database is locked") and on
    // the migrations (the second fails on tables the first just made). SQLite cannot lock
    // across the pool's and the migrator's connections, so the first connection and the
    // migrations happen under an exclusive lock on a file beside the database; the second
    // process waits, then finds the file ready.
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
    tracing::debug!(
        url = %crate::domain::redact_url(url),
        backend = "sqlite",
        "state store open"
    );
    Ok(Store {
        pool,
        backend: Backend::Sqlite,
        fence: None,
        fence_idle_limit: None,
    })
}

async fn open_postgres(url: &str, pair_name: &str) -> Result<Store, StoreError> {
    let shown = crate::domain::redact_url(url);
    let options = AnyConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
        url: shown.clone(),
        detail: crate::domain::redact_url(&e.to_string()),
    })?;
    let open_error = |source| StoreError::Open {
        url: shown.clone(),
        source,
    };
    let schema = pair_schema(pair_name);
    // The pair's schema, created by the first process to open it (two at once wait on the
    // advisory lock rather than race on CREATE SCHEMA's catalog insert).
    let mut conn = AnyConnection::connect_with(&options)
        .await
        .map_err(open_error)?;
    let mut tx = conn.begin().await.map_err(open_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(PG_LOCK_CLASS)
        .execute(&mut *tx)
        .await?;
    // Created only when missing: CREATE SCHEMA checks the database's CREATE privilege even
    // with IF NOT EXISTS, and a role a DBA made the schema for may not have it.
    let exists: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&schema)
        .fetch_one(&mut *tx)
        .await?;
    if exists == 0 {
        // The name is validated ([a-z0-9_]), so it can be spliced in as an identifier.
        tx.execute(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .await?;
    }
    tx.commit().await?;
    conn.close().await.map_err(open_error)?;

    let search_path = format!("SET search_path TO {schema}");
    let pool = AnyPoolOptions::new()
        .max_connections(PG_POOL_SIZE)
        .after_connect(move |conn, _meta| {
            let search_path = search_path.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(search_path)).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(open_error)?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    tracing::debug!(url = %shown, backend = "postgres", schema, "state store open");
    Ok(Store {
        pool,
        backend: Backend::Postgres,
        fence: None,
        fence_idle_limit: None,
    })
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// One open write transaction, normally one page of a direction pass. Everything written
/// through it becomes durable at [`PageTx::commit`]; dropping it without committing (for
/// instance on an early `?` return) rolls everything back.
#[derive(Debug)]
pub struct PageTx {
    pub(crate) tx: Transaction<'static, Any>,
    /// Checked by [`PageTx::commit`] when set (a fenced store's page).
    pub(crate) fence: Option<super::Fence>,
}

impl PageTx {
    /// Makes the page's writes durable. A page of a fenced store ([`Store::fenced`]) commits
    /// only while its fence still holds the sync lease: otherwise nothing of it is kept and
    /// the error is [`StoreError::LeaseLost`].
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if let Some(fence) = self.fence.take() {
            return self.commit_fenced(&fence).await.map_err(StoreError::from);
        }
        self.tx.commit().await?;
        Ok(())
    }

    /// Discards the page's writes explicitly (dropping the `PageTx` does the same).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }

    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
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
