//! What differs between the two backends and must behave the same: reopening keeps the state,
//! sync pairs in one PostgreSQL database are apart, concurrent opens of a new store all
//! succeed, and concurrent writers of one store lose no update (SQLite `BEGIN IMMEDIATE`,
//! PostgreSQL the pair's advisory transaction lock). The PostgreSQL tests skip without
//! `ORGSYNC_TEST_PG_URL` (`scripts/pg start`), unless `ORGSYNC_TEST_PG_REQUIRED=1`.

use orgsync::store::testing::{fresh_pair_name, pg_url};
use orgsync::store::{Backend, LinkWrite, Org, Store, StoreError};
use serde_json::json;

use super::store::{ids, t};
use super::store_failures::{failure, policy};

fn link(a: &str, b: &str) -> LinkWrite {
    LinkWrite {
        object: "Opportunity".into(),
        a_id: a.into(),
        b_id: b.into(),
        a_modstamp: Some(t(1)),
        b_modstamp: Some(t(2)),
        snapshot: json!({ "Name": "Deal" }).as_object().cloned().unwrap(),
    }
}

#[tokio::test]
async fn a_postgres_store_reopens_with_its_state_and_pairs_sharing_a_database_are_apart() {
    let Some(url) = pg_url() else { return };
    let (emea, apac) = (fresh_pair_name(), fresh_pair_name());
    let store = Store::open_pair(&url, &emea).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    store
        .advance_watermark(Org::A, "Opportunity", t(5))
        .await
        .unwrap();
    store.upsert_link(&link("006A1", "006B1")).await.unwrap();
    store.close().await;

    // Opening again applies no migration twice and finds the state.
    let store = Store::open_pair(&url, &emea).await.unwrap();
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(5))
    );
    assert_eq!(
        store
            .links_by_a_ids("Opportunity", &ids(&["006A1"]))
            .await
            .unwrap()
            .len(),
        1
    );

    // Another pair in the same database has its own, empty, state; the same ids link there
    // without a conflict.
    let other = Store::open_pair(&url, &apac).await.unwrap();
    assert_eq!(other.watermark(Org::A, "Opportunity").await.unwrap(), None);
    assert!(other.links_where(None, None).await.unwrap().is_empty());
    other.upsert_link(&link("006A1", "006B9")).await.unwrap();
    let links = store.links_where(None, None).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].b_id, "006B1");
}

#[tokio::test]
async fn a_bad_pair_name_is_refused_before_anything_is_opened() {
    for bad in ["", "Upper", "a-b", "x; DROP SCHEMA public"] {
        let err = Store::open_pair("sqlite::memory:", bad).await.unwrap_err();
        assert!(
            matches!(err, StoreError::BadPairName { .. }),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn a_refused_postgres_url_never_shows_its_password() {
    // Nothing listens on port 1: the open fails, and its error names the URL redacted.
    let err = Store::open("postgres://orgsync:s3cretPW@127.0.0.1:1/orgsync")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Open { .. }), "{text}");
    assert!(text.contains("orgsync:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cretPW"), "the password leaked: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_opening_a_new_postgres_pair_at_once_all_get_it_migrated() {
    let Some(url) = pg_url() else { return };
    for _ in 0..3 {
        let pair = fresh_pair_name();
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let (url, pair) = (url.clone(), pair.clone());
                tokio::spawn(async move { Store::open_pair(&url, &pair).await })
            })
            .collect();
        for open in opens {
            let store = open.await.unwrap().expect("every open succeeds");
            assert!(store.counts().await.is_ok());
            store.close().await;
        }
    }
}

/// Twelve writers record a failure of one record at once; each write reads the attempts so
/// far and stores one more. Serialized writers count all twelve.
async fn concurrent_failure_writes_lose_no_attempt(store: Store) {
    let writes: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let policy = orgsync::store::FailureBackoff {
                    max_attempts: 100,
                    ..policy()
                };
                store
                    .record_failure(&failure("006A1", true, t(1)), &policy)
                    .await
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap().expect("every write succeeds");
    }
    let stored = store
        .failure_for(orgsync::store::Direction::AToB, "Opportunity", "006A1")
        .await
        .unwrap()
        .expect("the failure");
    assert_eq!(stored.attempts, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_a_sqlite_file_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    concurrent_failure_writes_lose_no_attempt(Store::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_a_postgres_pair_lose_no_update() {
    let Some(url) = pg_url() else { return };
    let store = Store::open_pair(&url, &fresh_pair_name()).await.unwrap();
    concurrent_failure_writes_lose_no_attempt(store).await;
}

#[tokio::test]
async fn a_postgres_user_without_create_on_the_database_uses_a_schema_made_for_it() {
    // Managed databases often give the application a role that may not create schemas: the
    // DBA creates `orgsync_<pair>` owned by it, and orgsync must open it without trying to.
    use sqlx::Connection as _;
    let Some(url) = pg_url() else { return };
    let pair = fresh_pair_name();
    let role = format!("r_{pair}");
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("REVOKE CREATE ON DATABASE postgres FROM {role}"),
        format!("CREATE SCHEMA orgsync_{pair} AUTHORIZATION {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let mut as_role = url::Url::parse(&url).unwrap();
    as_role.set_username(&role).unwrap();
    let store = Store::open_pair(as_role.as_str(), &pair)
        .await
        .expect("opens the schema made for it");
    store
        .advance_watermark(Org::A, "Opportunity", t(5))
        .await
        .unwrap();
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(5))
    );
    // A pair whose schema does not exist is a clear error for this role.
    let err = Store::open_pair(as_role.as_str(), &fresh_pair_name())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
}

#[tokio::test]
async fn a_bare_file_path_is_a_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path.display().to_string()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store
        .advance_watermark(Org::A, "Opportunity", t(5))
        .await
        .unwrap();
    store.close().await;
    assert!(path.exists());
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(5))
    );
}

#[test]
fn every_sqlite_migration_has_its_postgres_twin_under_the_same_name() {
    // The queries are written once for both backends, so both must have every migration
    // (migrations/README.md says how to port one).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let (sqlite, postgres) = (names(&dir), names(&dir.join("postgres")));
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "migrations/ and migrations/postgres/ must hold the same files"
    );
}

/// A holder's page is open when its lease runs out and another replica asks for it: the take
/// waits for the page (the pair's write lock), and the page's fenced commit, checked under that
/// lock, is refused: an expired lease commits nothing, even before anyone took it over.
async fn a_page_open_when_the_lease_expires_commits_nothing(store: Store) {
    use orgsync::store::{Fence, FenceError, Replica};
    use std::time::Duration;
    let short = Duration::from_millis(50);
    let replica = |name: &str| Replica {
        holder: format!("{name}-1-x"),
        host: name.into(),
        pid: 1,
    };
    let held = store.try_acquire_lease(&replica("a"), short).await.unwrap();
    let fence = Fence {
        holder: held.holder.clone(),
        epoch: held.epoch,
    };
    let mut page = store.begin().await.unwrap();
    page.advance_watermark(Org::A, "Opportunity", t(9))
        .await
        .unwrap();
    let taker = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            store
                .try_acquire_lease(&replica("b"), Duration::from_secs(60))
                .await
        })
    };
    tokio::time::sleep(short * 4).await;
    let err = page.commit_fenced(&fence).await.unwrap_err();
    assert!(matches!(err, FenceError::Lost { .. }), "{err}");
    let taken = taker.await.unwrap().unwrap();
    assert_eq!(taken.holder, "b-1-x");
    assert_eq!(taken.epoch, held.epoch + 1);
    assert_eq!(store.watermark(Org::A, "Opportunity").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_open_when_the_lease_expires_commits_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    a_page_open_when_the_lease_expires_commits_nothing(Store::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_open_when_the_lease_expires_commits_nothing_on_postgres() {
    let Some(url) = pg_url() else { return };
    let store = Store::open_pair(&url, &fresh_pair_name()).await.unwrap();
    a_page_open_when_the_lease_expires_commits_nothing(store).await;
}
