//! The state store: migrations, forward-only watermarks, links unique on both sides, inbox
//! deduplication, cycles, and page transactions that commit or roll back whole (the failure
//! queue is in `store_failures`).

use chrono::{DateTime, TimeZone, Utc};
use orgsync::store::{
    CycleCounts, CycleOutcome, Direction, LinkWrite, NewNotification, Org, Store, StoreError,
};
use serde_json::json;

use super::store_failures::{failure, policy};

pub(super) fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn link(a: &str, b: &str, name: &str) -> LinkWrite {
    LinkWrite {
        object: "Opportunity".into(),
        a_id: a.into(),
        b_id: b.into(),
        a_modstamp: Some(t(1)),
        b_modstamp: Some(t(2)),
        snapshot: json!({ "Name": name, "Amount": 6000 })
            .as_object()
            .cloned()
            .unwrap(),
    }
}

pub(super) fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test]
async fn migrations_apply_and_reopen_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let store = Store::open(&url).await.unwrap();
    store
        .advance_watermark(Org::A, "Opportunity", t(5))
        .await
        .unwrap();
    store
        .upsert_link(&link("006A1", "006B1", "Deal"))
        .await
        .unwrap();
    store.close().await;

    // Opening again applies no migration twice and finds the state.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(5))
    );
    assert_eq!(store.watermark(Org::B, "Opportunity").await.unwrap(), None);
    let links = store
        .links_by_a_ids("Opportunity", &ids(&["006A1"]))
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert!(
        dir.path().join("state.db-wal").exists(),
        "WAL journal expected"
    );
}

#[tokio::test]
async fn bad_url_is_a_clear_error() {
    let err = Store::open("mysql://nope").await.unwrap_err();
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err}");
}

orgsync::both_backends!(
async fn watermark_never_moves_backward(store) {
    assert_eq!(
        store
            .advance_watermark(Org::A, "Opportunity", t(10))
            .await
            .unwrap(),
        t(10)
    );
    assert_eq!(
        store
            .advance_watermark(Org::A, "Opportunity", t(3))
            .await
            .unwrap(),
        t(10)
    );
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(10))
    );
    // Same inside a page transaction.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.advance_watermark(Org::A, "Opportunity", t(1))
            .await
            .unwrap(),
        t(10)
    );
    assert_eq!(
        tx.advance_watermark(Org::A, "Opportunity", t(20))
            .await
            .unwrap(),
        t(20)
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(20))
    );
    // Millisecond precision, per org and object.
    let precise = t(30) + chrono::Duration::milliseconds(7);
    store
        .advance_watermark(Org::B, "Opportunity", precise)
        .await
        .unwrap();
    assert_eq!(
        store.watermark(Org::B, "Opportunity").await.unwrap(),
        Some(precise)
    );
    assert_eq!(store.watermark(Org::A, "Account").await.unwrap(), None);
    assert_eq!(store.watermarks().await.unwrap().len(), 2);
});

orgsync::both_backends!(
async fn links_are_unique_on_both_sides(store) {
    store.upsert_link(&link("A1", "B1", "Deal")).await.unwrap();
    // Idempotent: the same link again, with a new snapshot, is an update.
    store
        .upsert_link(&link("A1", "B1", "Deal renamed"))
        .await
        .unwrap();
    let found = store
        .links_by_a_ids("Opportunity", &ids(&["A1"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].snapshot["Name"], "Deal renamed");
    assert_eq!(found[0].b_id, "B1");

    let err = store.upsert_link(&link("A1", "B2", "x")).await.unwrap_err();
    assert!(matches!(err, StoreError::LinkConflict { .. }), "{err}");
    assert!(err.to_string().contains("already linked to B B1"), "{err}");
    let err = store.upsert_link(&link("A2", "B1", "x")).await.unwrap_err();
    assert!(matches!(err, StoreError::LinkConflict { .. }), "{err}");
    assert!(err.to_string().contains("already linked to A A1"), "{err}");

    // The same ids under another object are another link.
    let mut account = link("A2", "B1", "Acme");
    account.object = "Account".into();
    store.upsert_link(&account).await.unwrap();

    let counts = store.counts().await.unwrap();
    assert_eq!(counts.links["Opportunity"], 1);
    assert_eq!(counts.links["Account"], 1);
});

orgsync::both_backends!(
async fn links_are_looked_up_by_batches_of_ids(store) {
    for i in 0..50 {
        store
            .upsert_link(&link(
                &format!("A{i}"),
                &format!("B{i}"),
                &format!("Deal {i}"),
            ))
            .await
            .unwrap();
    }
    let wanted = ids(&["A3", "A7", "A49", "Anope", "A3"]);
    let found = store.links_by_a_ids("Opportunity", &wanted).await.unwrap();
    let mut a_ids: Vec<&str> = found.iter().map(|l| l.a_id.as_str()).collect();
    a_ids.sort();
    assert_eq!(a_ids, ["A3", "A49", "A7"]);
    let found = store
        .links_by_b_ids("Opportunity", &ids(&["B10", "B11"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert!(
        store
            .links_by_b_ids("Opportunity", &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .links_by_a_ids("Account", &ids(&["A3"]))
            .await
            .unwrap()
            .is_empty()
    );
    // A modstamp left None keeps the stored one.
    let mut partial = link("A3", "B3", "Deal 3");
    partial.b_modstamp = None;
    partial.a_modstamp = Some(t(9));
    store.upsert_link(&partial).await.unwrap();
    let l = &store
        .links_by_a_ids("Opportunity", &ids(&["A3"]))
        .await
        .unwrap()[0];
    assert_eq!((l.a_modstamp, l.b_modstamp), (Some(t(9)), Some(t(2))));
    assert!(store.delete_link("Opportunity", "A3").await.unwrap());
    assert!(!store.delete_link("Opportunity", "A3").await.unwrap());
});

orgsync::both_backends!(
async fn inbox_deduplicates_notifications(store) {
    let n = |org, id: &str, record: &str| NewNotification {
        org,
        notification_id: id.into(),
        object: "Opportunity".into(),
        record_id: record.into(),
    };
    let message = [
        n(Org::A, "04l1", "006A1"),
        n(Org::A, "04l2", "006A2"),
        n(Org::A, "04l1", "006A1"),
    ];
    assert_eq!(store.insert_notifications(&message).await.unwrap(), 2);
    // Salesforce redelivers the whole message: nothing new.
    assert_eq!(store.insert_notifications(&message).await.unwrap(), 0);
    // The same notification id from the other org is another notification.
    assert_eq!(
        store
            .insert_notifications(&[n(Org::B, "04l1", "006B1")])
            .await
            .unwrap(),
        1
    );

    let pending = store.pending_notifications(Org::A, 10).await.unwrap();
    let records: Vec<&str> = pending.iter().map(|i| i.record_id.as_str()).collect();
    assert_eq!(records, ["006A1", "006A2"]);
    assert_eq!(store.counts().await.unwrap().inbox_pending["a"], 2);

    // Marked processed with the page; not pending any more, still deduplicated.
    let mut tx = store.begin().await.unwrap();
    let ids: Vec<i64> = pending.iter().map(|i| i.id).collect();
    assert_eq!(tx.mark_processed(&ids).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert!(
        store
            .pending_notifications(Org::A, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.insert_notifications(&message).await.unwrap(), 0);
    assert_eq!(
        store.pending_notifications(Org::B, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        store
            .purge_processed_notifications(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
});

orgsync::both_backends!(
async fn page_transaction_rolls_back_on_error(store) {
    store
        .upsert_link(&link("A1", "B1", "Existing"))
        .await
        .unwrap();

    let result: Result<(), StoreError> = async {
        let mut tx = store.begin().await?;
        tx.upsert_link(&link("A2", "B2", "New")).await?;
        tx.record_failure(&failure("A3", true, t(0)), &policy())
            .await?;
        tx.advance_watermark(Org::A, "Opportunity", t(100)).await?;
        // Links B1 a second time: fails, and the `?` drops the transaction.
        tx.upsert_link(&link("A4", "B1", "Dup")).await?;
        tx.commit().await
    }
    .await;
    assert!(matches!(result, Err(StoreError::LinkConflict { .. })));

    assert!(
        store
            .links_by_a_ids("Opportunity", &ids(&["A2"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.failures(None).await.unwrap().is_empty());
    assert_eq!(store.watermark(Org::A, "Opportunity").await.unwrap(), None);

    // The same page without the bad link commits whole.
    let mut tx = store.begin().await.unwrap();
    tx.upsert_link(&link("A2", "B2", "New")).await.unwrap();
    tx.record_failure(&failure("A3", true, t(0)), &policy())
        .await
        .unwrap();
    assert!(
        tx.failure_for(Direction::AToB, "Opportunity", "A3")
            .await
            .unwrap()
            .is_some()
    );
    tx.advance_watermark(Org::A, "Opportunity", t(100))
        .await
        .unwrap();
    assert_eq!(
        tx.links_by_a_ids("Opportunity", &ids(&["A1", "A2"]))
            .await
            .unwrap()
            .len(),
        2
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(100))
    );
    assert_eq!(store.failures(None).await.unwrap().len(), 1);
});

#[tokio::test]
async fn readers_are_not_blocked_by_an_open_page_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let store = Store::open(&url).await.unwrap();
    store
        .advance_watermark(Org::A, "Opportunity", t(1))
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.advance_watermark(Org::A, "Opportunity", t(2))
        .await
        .unwrap();
    // WAL: a reader sees the last committed value while the page is open.
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(1))
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.watermark(Org::A, "Opportunity").await.unwrap(),
        Some(t(2))
    );
}

orgsync::both_backends!(
async fn old_finished_cycles_are_purged_but_each_direction_keeps_its_last(store) {
    let counts = CycleCounts::default();
    let mut finished = Vec::new();
    for direction in [Direction::AToB, Direction::BToA, Direction::AToB] {
        let id = store.begin_cycle(direction).await.unwrap();
        store
            .finish_cycle(id, &counts, CycleOutcome::Ok, None)
            .await
            .unwrap();
        finished.push(id);
    }
    let running = store.begin_cycle(Direction::BToA).await.unwrap();
    // Nothing is old enough yet.
    let day_ago = Utc::now() - chrono::Duration::days(1);
    assert_eq!(store.purge_cycles(day_ago).await.unwrap(), 0);
    // Everything is old: the first A->B cycle and the finished B->A cycle go; the last cycle
    // of each direction stays (B->A's is the running one, which is never purged).
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.purge_cycles(later).await.unwrap(), 2);
    let last_a = store.last_cycle(Direction::AToB).await.unwrap().unwrap();
    assert_eq!(last_a.id, finished[2]);
    let last_b = store.last_cycle(Direction::BToA).await.unwrap().unwrap();
    assert_eq!(last_b.id, running);
});

orgsync::both_backends!(
async fn cycles_record_counts_and_outcomes(store) {
    assert!(store.last_cycle(Direction::AToB).await.unwrap().is_none());
    let first = store.begin_cycle(Direction::AToB).await.unwrap();
    let counts = CycleCounts {
        read: 10,
        created: 4,
        updated: 3,
        linked: 6,
        skipped: 2,
        failed: 1,
        conflicts: 7,
        api_calls: 5,
    };
    store
        .finish_cycle(first, &counts, CycleOutcome::Partial, None)
        .await
        .unwrap();
    let running = store.begin_cycle(Direction::AToB).await.unwrap();
    let last = store.last_cycle(Direction::AToB).await.unwrap().unwrap();
    assert_eq!((last.id, last.outcome), (running, CycleOutcome::Running));
    assert_eq!(store.interrupt_running_cycles().await.unwrap(), 1);
    let last = store.last_cycle(Direction::AToB).await.unwrap().unwrap();
    assert_eq!(last.outcome, CycleOutcome::Interrupted);
    assert!(store.last_cycle(Direction::BToA).await.unwrap().is_none());

    let b = store.begin_cycle(Direction::BToA).await.unwrap();
    store
        .finish_cycle(
            b,
            &counts,
            CycleOutcome::Failed,
            Some("login failed for org b"),
        )
        .await
        .unwrap();
    let last = store.last_cycle(Direction::BToA).await.unwrap().unwrap();
    assert_eq!(last.counts, counts);
    assert_eq!(last.error.as_deref(), Some("login failed for org b"));
    assert!(last.finished_at.is_some());
    assert!(
        store
            .finish_cycle(9999, &counts, CycleOutcome::Ok, None)
            .await
            .is_err()
    );
});

#[tokio::test]
async fn a_database_of_the_first_version_is_migrated_and_its_paused_cycles_say_so() {
    // A state database as the first release left it: only the initial migration applied.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let first = dir.path().join("migrations");
    std::fs::create_dir(&first).unwrap();
    let initial = "20261123000001_initial.sql";
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(initial),
        first.join(initial),
    )
    .unwrap();
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::migrate::Migrator::new(first.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for (direction, error) in [
        (
            "a_to_b",
            "paused: org B is at its API limit (REQUEST_LIMIT_EXCEEDED); resuming",
        ),
        ("b_to_a", "cannot log in to org b"),
    ] {
        sqlx::query(
            "INSERT INTO cycles (direction, started_at, finished_at, outcome, error)
             VALUES (?, '2026-11-23T10:00:00.000Z', '2026-11-23T10:00:01.000Z', 'failed', ?)",
        )
        .bind(direction)
        .bind(error)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let a = store.last_cycle(Direction::AToB).await.unwrap().unwrap();
    assert_eq!((a.id, a.outcome), (1, CycleOutcome::Paused));
    assert!(a.error.is_some_and(|e| e.starts_with("paused:")));
    let b = store.last_cycle(Direction::BToA).await.unwrap().unwrap();
    assert_eq!((b.id, b.outcome), (2, CycleOutcome::Failed));
    // Ids go on after the migrated rows.
    assert_eq!(store.begin_cycle(Direction::AToB).await.unwrap(), 3);
}

/// The link-state migration: a database from before it keeps its links, live, with ids, and
/// the uniqueness of live links still holds.
#[tokio::test]
async fn links_from_before_the_link_state_migration_become_live() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let before = dir.path().join("migrations");
    std::fs::create_dir(&before).unwrap();
    for name in [
        "20261123000001_initial.sql",
        "20261124000001_cycle_outcome_paused.sql",
        "20261201000001_failure_class.sql",
        "20261201000002_cycle_numbers_org_state.sql",
    ] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(name),
            before.join(name),
        )
        .unwrap();
    }
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for (a_id, b_id) in [("A1", "B1"), ("A2", "B2")] {
        sqlx::query(
            "INSERT INTO links (object, a_id, b_id, a_modstamp, snapshot, created_at, updated_at)
             VALUES ('Opportunity', ?, ?, '2026-11-23T10:00:00.000Z', '{\"Name\":\"x\"}',
                     '2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.000Z')",
        )
        .bind(a_id)
        .bind(b_id)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let links = store
        .links_by_a_ids("Opportunity", &ids(&["A1", "A2"]))
        .await
        .unwrap();
    assert_eq!(links.len(), 2);
    assert!(links.iter().all(|l| l.is_live() && l.deleted_at.is_none()));
    assert_eq!(links[0].b_id, "B1");
    assert_eq!(links[0].snapshot.get("Name"), Some(&json!("x")));
    assert_ne!(links[0].id, links[1].id);
    let clash = LinkWrite {
        object: "Opportunity".into(),
        a_id: "A3".into(),
        b_id: "B1".into(),
        a_modstamp: None,
        b_modstamp: None,
        snapshot: Default::default(),
    };
    assert!(matches!(
        store.upsert_link(&clash).await,
        Err(StoreError::LinkConflict { .. })
    ));
    assert_eq!(store.counts().await.unwrap().links_by_state["live"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_opening_a_new_database_at_once_all_get_it_migrated() {
    // A daemon's first start and an operator's `status` (or `links list`) at the same moment:
    // each open applies the migrations, and none may fail on tables another just made.
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("new-{round}.db")).display()
        );
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::open(&url).await })
            })
            .collect();
        for open in opens {
            let store = open.await.unwrap().expect("every open succeeds");
            assert!(store.counts().await.is_ok());
            store.close().await;
        }
    }
}
