//! One bad row never blocks the inbox (issue 18): an id the org refuses to be queried by
//! (here stored straight into the inbox, as an older version of orgsync, without the
//! listener's id checks, could have stored it) makes the org refuse the whole batch it is
//! fetched in. The drain splits the batch until the bad id is alone, puts it in the failure
//! queue with the org's error, and syncs the rest, for a bounded number of extra queries.

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
