//! The state store's failure queue: the lifecycle of a failed record (backoff, dead, replaced
//! by a newer version, retried, discarded), its class and the values sent, the `--code` filter,
//! and the class given to failures stored before classes existed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use orgsync::store::{Direction, FailureBackoff, FailureClass, FailureState, NewFailure};
use serde_json::json;

use super::store::t;

pub(super) fn policy() -> FailureBackoff {
    FailureBackoff {
        max_attempts: 3,
        initial_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(3600),
    }
}

/// A lock error (transient) when `retryable`, else a validation-rule rejection (needs_edit).
pub(super) fn failure(source_id: &str, retryable: bool, modstamp: DateTime<Utc>) -> NewFailure {
    let code = if retryable {
        "UNABLE_TO_LOCK_ROW"
    } else {
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    };
    failure_of(source_id, code, modstamp)
}

pub(super) fn failure_of(source_id: &str, code: &str, modstamp: DateTime<Utc>) -> NewFailure {
    NewFailure {
        direction: Direction::AToB,
        object: "Opportunity".into(),
        source_id: source_id.into(),
        target_id: None,
        source_modstamp: Some(modstamp),
        error_code: code.into(),
        message: "rejected".into(),
        class: FailureClass::of_code(code),
        sent: None,
    }
}

orgsync::both_backends!(
async fn failure_lifecycle(store) {
    let p = policy();

    // First failure: pending, due after the initial delay.
    let f = store
        .record_failure(&failure("006X", true, t(0)), &p)
        .await
        .unwrap();
    assert_eq!((f.state, f.attempts), (FailureState::Pending, 1));
    let due_at = f.next_attempt_at.unwrap();
    let now = Utc::now();
    assert!(due_at > now + chrono::Duration::seconds(50));
    assert!(
        store
            .due_failures(Direction::AToB, "Opportunity", now, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .due_failures(Direction::AToB, "Opportunity", due_at, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert!(
        store
            .due_failures(Direction::BToA, "Opportunity", due_at, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The same version fails again: attempts count up until dead.
    let f = store
        .record_failure(&failure("006X", true, t(0)), &p)
        .await
        .unwrap();
    assert_eq!((f.state, f.attempts), (FailureState::Pending, 2));
    let f = store
        .record_failure(&failure("006X", true, t(0)), &p)
        .await
        .unwrap();
    assert_eq!(
        (f.state, f.attempts, f.next_attempt_at),
        (FailureState::Dead, 3, None)
    );
    assert_eq!(
        store
            .failures(Some(FailureState::Dead))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .due_failures(Direction::AToB, "Opportunity", t(99_999_999), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Operator retry: pending, due now, fresh attempts.
    assert!(store.retry_failure(f.id).await.unwrap());
    let f = store.failure(f.id).await.unwrap().unwrap();
    assert_eq!((f.state, f.attempts), (FailureState::Pending, 0));
    assert_eq!(
        store
            .due_failures(Direction::AToB, "Opportunity", Utc::now(), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // A validation rejection waits for an edit (no timer); a newer version starts a new series.
    let g = store
        .record_failure(&failure("006Y", false, t(0)), &p)
        .await
        .unwrap();
    assert_eq!(
        (g.state, g.attempts, g.class, g.next_attempt_at),
        (FailureState::Waiting, 1, FailureClass::NeedsEdit, None)
    );
    let g = store
        .record_failure(&failure("006Y", true, t(5)), &p)
        .await
        .unwrap();
    assert_eq!((g.state, g.attempts), (FailureState::Pending, 1));
    assert_eq!(g.source_modstamp, Some(t(5)));

    let counts = store.counts().await.unwrap();
    assert_eq!((counts.failures_pending, counts.failures_dead), (2, 0));
    assert_eq!(store.failures(None).await.unwrap().len(), 2);

    // Retry all, discard one, clear the other (it synced).
    assert_eq!(store.retry_all_failures().await.unwrap(), 2);
    assert!(store.discard_failure(f.id).await.unwrap());
    assert!(!store.discard_failure(f.id).await.unwrap());
    assert!(
        store
            .clear_failure(Direction::AToB, "Opportunity", "006Y")
            .await
            .unwrap()
    );
    assert!(store.failures(None).await.unwrap().is_empty());
    assert!(!store.retry_failure(12345).await.unwrap());
});

orgsync::both_backends!(
async fn failures_keep_their_class_and_the_values_sent_and_filter_by_code(store) {
    let p = policy();
    let sent = json!({"Name": "Big deal", "Amount": 6000, "StageName": "Closed Won"})
        .as_object()
        .cloned()
        .unwrap();
    let mut rejected = failure_of("006V", "FIELD_CUSTOM_VALIDATION_EXCEPTION", t(0));
    rejected.target_id = Some("006B".into());
    rejected.sent = Some(sent.clone());
    let v = store.record_failure(&rejected, &p).await.unwrap();
    assert_eq!(v.class, FailureClass::NeedsEdit);
    assert_eq!(v.state, FailureState::Waiting);
    assert_eq!(v.sent.as_ref(), Some(&sent));
    // Read back in full.
    let read = store.failure(v.id).await.unwrap().unwrap();
    assert_eq!(read, v);
    assert_eq!(read.target_id.as_deref(), Some("006B"));

    let ambiguous = store
        .record_failure(&failure_of("006W", "AMBIGUOUS_MATCH", t(0)), &p)
        .await
        .unwrap();
    assert_eq!(
        (ambiguous.class, ambiguous.state, ambiguous.next_attempt_at),
        (FailureClass::NeedsOperator, FailureState::Dead, None)
    );
    assert_eq!(ambiguous.sent, None);
    let locked = store
        .record_failure(&failure_of("006L", "UNABLE_TO_LOCK_ROW", t(0)), &p)
        .await
        .unwrap();
    assert_eq!(
        (locked.class, locked.state),
        (FailureClass::Transient, FailureState::Pending)
    );
    store
        .record_failure(
            &failure_of("006U", "FIELD_CUSTOM_VALIDATION_EXCEPTION", t(0)),
            &p,
        )
        .await
        .unwrap();

    // Waiting failures are never due on a timer.
    let due = store
        .due_failures(Direction::AToB, "Opportunity", t(99_999_999), 10)
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|f| f.source_id.as_str()).collect::<Vec<_>>(),
        ["006L"]
    );

    // By code, by state, and both.
    let ids_of =
        |fs: Vec<orgsync::store::Failure>| fs.into_iter().map(|f| f.source_id).collect::<Vec<_>>();
    let by_code = store
        .failures_where(None, Some("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
        .await
        .unwrap();
    assert_eq!(ids_of(by_code), ["006V", "006U"]);
    let dead_validation = store
        .failures_where(
            Some(FailureState::Dead),
            Some("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        )
        .await
        .unwrap();
    assert!(dead_validation.is_empty());
    let dead = store
        .failures_where(Some(FailureState::Dead), None)
        .await
        .unwrap();
    assert_eq!(ids_of(dead), ["006W"]);
    assert!(
        store
            .failures_where(None, Some("NO_SUCH_CODE"))
            .await
            .unwrap()
            .is_empty()
    );

    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.failures_pending,
            counts.failures_waiting,
            counts.failures_dead
        ),
        (1, 2, 1)
    );
    assert_eq!(counts.failures_by_class["transient"], 1);
    assert_eq!(counts.failures_by_class["needs_edit"], 2);
    assert_eq!(counts.failures_by_class["needs_operator"], 1);

    // A later attempt that wrote nothing forgets the old values; the operator's retry makes
    // a waiting failure due now.
    let mut again = failure_of("006V", "FIELD_CUSTOM_VALIDATION_EXCEPTION", t(0));
    again.sent = None;
    let v2 = store.record_failure(&again, &p).await.unwrap();
    assert_eq!((v2.id, v2.attempts, v2.sent), (v.id, 2, None));
    assert!(store.retry_failure(v.id).await.unwrap());
    let due = store
        .due_failures(Direction::AToB, "Opportunity", Utc::now(), 10)
        .await
        .unwrap();
    assert!(due.iter().any(|f| f.id == v.id));
});

/// The failure-class migration, run on rows written by the schema before it.
#[tokio::test]
async fn old_failures_get_a_class_from_their_code() {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    for sql in [
        include_str!("../../migrations/20261123000001_initial.sql"),
        include_str!("../../migrations/20261124000001_cycle_outcome_paused.sql"),
    ] {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
    let old = [
        (1, "006P", "UNABLE_TO_LOCK_ROW", "pending"),
        (2, "006E", "INVALID_CROSS_REFERENCE_KEY", "pending"),
        (3, "006V", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "dead"),
        (4, "006A", "AMBIGUOUS_MATCH", "dead"),
        (5, "006T", "SERVER_UNAVAILABLE", "dead"),
        (6, "006I", "INSUFFICIENT_ACCESS_OR_READONLY", "dead"),
        (7, "006U", "SOMETHING_NEW", "dead"),
    ];
    for (id, source, code, state) in old {
        sqlx::query(
            "INSERT INTO failures (id, direction, object, source_id, error_code, message,
                 attempts, next_attempt_at, state, created_at, updated_at)
             VALUES (?, 'a_to_b', 'Opportunity', ?, ?, 'm', 1, ?, ?, 'x', 'x')",
        )
        .bind(id)
        .bind(source)
        .bind(code)
        .bind((state == "pending").then_some("2026-01-01T00:00:00.000000Z"))
        .bind(state)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::raw_sql(include_str!(
        "../../migrations/20261201000001_failure_class.sql"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, class, state FROM failures ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let expected = [
        // Pending rows were retryable: transient, whatever the code.
        (1, "transient", "pending"),
        (2, "transient", "pending"),
        // A dead validation rejection now waits for an edit.
        (3, "needs_edit", "waiting"),
        (4, "needs_operator", "dead"),
        // Out of attempts.
        (5, "transient", "dead"),
        (6, "needs_operator", "dead"),
        (7, "needs_edit", "waiting"),
    ];
    assert_eq!(
        rows,
        expected
            .iter()
            .map(|(id, c, s)| (*id, c.to_string(), s.to_string()))
            .collect::<Vec<_>>()
    );
    // New rows keep counting from the old ids.
    sqlx::query(
        "INSERT INTO failures (direction, object, source_id, error_code, message, class,
             attempts, state, created_at, updated_at)
         VALUES ('a_to_b', 'Opportunity', '006N', 'X', 'm', 'needs_edit', 1, 'waiting', 'x', 'x')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let (max,): (i64,) = sqlx::query_as("SELECT max(id) FROM failures")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(max, 8);
}
