//! One bad row never blocks the inbox (issue 18): an id the org refuses to be queried by
//! (here stored straight into the inbox, as an older version of orgsync, without the
//! listener's id checks, could have stored it) makes the org refuse the whole batch it is
//! fetched in. The drain splits the batch until the bad id is alone, puts it in the failure
//! queue with the org's error, and syncs the rest, for a bounded number of extra queries.
//! And a row that does wait (here: the org's API allowance is spent) shows its age in
//! `/metrics` and `/status`.

use orgsync::store::{Failure, FailureState};

use super::*;

/// A record id with the 15 characters of `id` and a wrong checksum suffix.
fn with_wrong_checksum(id: &str) -> String {
    let wrong = if &id[15..] == "AAA" { "AAB" } else { "AAA" };
    format!("{}{wrong}", &id[..15])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_id_in_the_inbox_is_isolated_into_the_failure_queue_and_the_rest_reach_b() {
    let world = World::new().await;
    let good: Vec<String> = (0..7)
        .map(|i| {
            world.create_as_human(
                &world.a,
                &format!("Batch deal {i}"),
                10_000.0 + f64::from(i),
            )
        })
        .collect();
    let bad = with_wrong_checksum(&good[0]);
    // Eight ids in one batch, the bad one among them.
    let mut record_ids: Vec<&str> = good.iter().map(String::as_str).collect();
    record_ids.insert(3, &bad);
    let url = format!("sqlite://{}", world.db_path().display());
    {
        let store = Store::open(&url).await.expect("store");
        let rows: Vec<NewNotification> = record_ids
            .iter()
            .enumerate()
            .map(|(i, id)| NewNotification {
                org: Org::A,
                notification_id: format!("04l0000000000b{i}AAA"),
                object: "Opportunity".into(),
                record_id: id.to_string(),
            })
            .collect();
        assert_eq!(store.insert_notifications(&rows).await.expect("insert"), 8);
        store.close().await;
    }
    let queries_before = world.a.calls("query");

    let listener = world.start("push").await;
    eventually("the seven good deals reach B", || {
        (0..7).all(|i| named(&world.b, &format!("Batch deal {i}")).len() == 1)
    })
    .await;
    let store = Store::open(&url).await.expect("store");
    let mut drained = false;
    for _ in 0..3000 {
        if store
            .pending_notifications(Org::A, 10)
            .await
            .expect("inbox")
            .is_empty()
        {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(drained, "no inbox row stays pending");

    let failures: Vec<Failure> = store.failures(None).await.expect("failures");
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = &failures[0];
    assert_eq!(failure.source_id, bad);
    assert_eq!(failure.direction.as_str(), "a_to_b");
    assert_eq!(failure.error_code, "INVALID_QUERY_FILTER_OPERATOR");
    assert!(failure.message.contains(&bad), "{}", failure.message);
    assert_eq!(
        failure.state,
        FailureState::Dead,
        "it waits for an operator"
    );

    // The isolation's cost: the refused batch of 8, then 2 per halving down to one id
    // (1 + 2 * log2(8) = 7 queries of A, the good rows' fetches included).
    let queries = world.a.calls("query") - queries_before;
    assert!(
        (3..=7).contains(&queries),
        "{queries} queries of A to isolate one bad id among 8"
    );
    store.close().await;
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_waits_shows_its_age_in_metrics_and_status() {
    let world = World::new().await;
    let id = world.create_as_human(&world.a, "Waiting deal", 12_000.0);
    // Received an hour ago, by a process that stopped before draining it.
    let url = format!("sqlite://{}", world.db_path().display());
    {
        let store = Store::open(&url).await.expect("store");
        store.close().await;
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
        let received = chrono::Utc::now() - chrono::Duration::hours(1);
        sqlx::query(
            "INSERT INTO inbox (org, notification_id, object, record_id, received_at)
             VALUES ('a', '04l0000000000o1AAA', 'Opportunity', ?, ?)",
        )
        .bind(&id)
        .bind(orgsync::store::format_timestamp(received))
        .execute(&pool)
        .await
        .expect("insert");
        pool.close().await;
    }
    // A's daily API allowance is spent: the drain pauses and the row waits.
    let mut faults = Map::new();
    faults.insert("api_daily_limit".into(), json!(10));
    faults.insert("api_usage".into(), json!(10));
    world.a.set_faults(faults).expect("faults");

    let listener = world.start("push").await;
    let oldest_a = "orgsync_inbox_oldest_age_seconds{org=\"a\"}";
    let text = listener
        .get_until("/metrics", |t| {
            parse_prometheus(t).get(oldest_a).copied().unwrap_or(0.0) >= 3600.0
        })
        .await;
    let samples = parse_prometheus(&text);
    assert!(samples[oldest_a] >= 3600.0, "{text}");
    assert!(samples[oldest_a] < 7200.0, "{text}");
    assert_eq!(
        samples["orgsync_inbox_oldest_age_seconds{org=\"b\"}"], 0.0,
        "{text}"
    );
    assert_eq!(samples["orgsync_inbox_pending{org=\"a\"}"], 1.0, "{text}");

    let (code, text) = listener.get("/status").await;
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&text).expect("/status is JSON");
    let age = status["inbox"]["oldest_age_seconds"]["a"]
        .as_u64()
        .unwrap_or_else(|| panic!("no oldest age in {status}"));
    assert!((3600..7200).contains(&age), "{status}");
    assert_eq!(status["inbox"]["oldest_age_seconds"]["b"], json!(0));
    listener.stop().await;
}

/// The failure-queue retries fetch by id the same way: an operator's `failures retry --all`
/// with a refused id among the due failures fails that id again and retries the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_id_among_retried_failures_fails_again_and_the_rest_are_retried() {
    use orgsync::store::{Direction, FailureBackoff, NewFailure};
    use orgsync::sync::{Pass, PassConfig, PassOutcome};

    let world = World::new().await;
    let good = world.create_as_human(&world.a, "Retried deal", 14_000.0);
    let bad = with_wrong_checksum(&good);
    let settings = world.settings("push");
    let daemon = Daemon::new(&settings).await.expect("daemon builds");
    let store = daemon.store();
    for id in [&good, &bad] {
        let failure = NewFailure {
            direction: Direction::AToB,
            object: "Opportunity".into(),
            source_id: id.clone(),
            target_id: None,
            source_modstamp: None,
            error_code: "UNABLE_TO_LOCK_ROW".into(),
            message: "earlier trouble".into(),
            class: orgsync::store::FailureClass::Transient,
            sent: None,
        };
        let policy = FailureBackoff::new(
            settings.sync.retry_initial_delay,
            settings.sync.retry_max_delay,
            settings.sync.max_attempts,
        );
        store
            .record_failure(&failure, &policy)
            .await
            .expect("failure");
    }
    assert_eq!(store.retry_all_failures().await.expect("retry --all"), 2);

    let (a, b) = (daemon.client(Org::A), daemon.client(Org::B));
    let user = a.user_id().await.expect("login");
    let config = PassConfig::from_settings(&settings, Direction::AToB, 1, Some(user));
    let pass = Pass::new(&config, daemon.mapping(), a, b, store, daemon.metrics());
    let report = pass
        .retry_failures(&CancellationToken::new())
        .await
        .expect("the retries run");
    assert_eq!(report.outcome, PassOutcome::Completed);
    assert_eq!(report.created, 1, "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(named(&world.b, "Retried deal").len(), 1);

    let failures = store.failures(None).await.expect("failures");
    assert_eq!(failures.len(), 1, "the good one is cleared: {failures:?}");
    assert_eq!(failures[0].source_id, bad);
    assert_eq!(failures[0].error_code, "INVALID_QUERY_FILTER_OPERATOR");
    assert_eq!(failures[0].state, FailureState::Dead);
}
