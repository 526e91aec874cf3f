//! Stores for tests, on either backend: every store test runs once on SQLite and once on
//! PostgreSQL (`both_backends!`). The PostgreSQL store is the one `ORGSYNC_TEST_PG_URL` names
//! (`scripts/pg start` prints it), in a fresh schema per call, so tests never see each other's
//! rows. Without the variable the PostgreSQL variant is skipped, unless
//! `ORGSYNC_TEST_PG_REQUIRED=1` (set by `scripts/test`), which makes a skip a failure: CI
//! really runs both. Not part of the daemon: only tests call it.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{Backend, Store, StoreError};

/// The variable naming the test PostgreSQL.
pub const PG_URL_VAR: &str = "ORGSYNC_TEST_PG_URL";
/// Set to `1` to make a missing [`PG_URL_VAR`] a failure instead of a skip.
pub const PG_REQUIRED_VAR: &str = "ORGSYNC_TEST_PG_REQUIRED";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The test PostgreSQL's URL, `None` to skip. Panics (a test failure) when it is required but
/// missing.
pub fn pg_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var(PG_REQUIRED_VAR).is_ok_and(|v| v == "1") => {
            panic!("{PG_REQUIRED_VAR}=1 but {PG_URL_VAR} is not set: run scripts/pg start")
        }
        _ => None,
    }
}

/// A pair name no other test (in this or another test process) uses.
pub fn fresh_pair_name() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{}_{n}_{nanos}", std::process::id())
}

/// Where a fresh store of `backend` lives: `(url, pair_name)`, or `None` when PostgreSQL is
/// not configured (see [`pg_url`]).
pub fn fresh_location(backend: Backend) -> Option<(String, String)> {
    match backend {
        Backend::Sqlite => Some((
            "sqlite::memory:".to_string(),
            super::DEFAULT_PAIR.to_string(),
        )),
        Backend::Postgres => pg_url().map(|url| (url, fresh_pair_name())),
    }
}

/// A fresh, empty, migrated store of `backend`, or `None` when PostgreSQL is not configured.
pub async fn store(backend: Backend) -> Result<Option<Store>, StoreError> {
    match fresh_location(backend) {
        Some((url, pair)) => Store::open_pair(&url, &pair).await.map(Some),
        None => Ok(None),
    }
}

/// Defines a test that runs once per backend, as `<name>::sqlite` and `<name>::postgres`:
/// `both_backends!(async fn name(store) { ... })`, where `store` is a fresh [`Store`].
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($store:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let $store = $crate::store::testing::store($crate::store::Backend::Sqlite)
                    .await
                    .expect("open a SQLite test store")
                    .expect("SQLite is always available");
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let Some($store) =
                    $crate::store::testing::store($crate::store::Backend::Postgres)
                        .await
                        .expect("open a PostgreSQL test store")
                else {
                    return;
                };
                $body
            }
        }
    };
}
