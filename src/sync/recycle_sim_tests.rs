//! The getDeleted safety net against a simulated org (sfsim) and a real SQLite store, on its
//! own (the delete path that makes tombstones, and the daemon's cycle that runs the check, are
//! another module's; the tombstones here are made by hand, `store::tombstone_for_test`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::deleted_check::{
    CheckPlan, DeletedCheckOutcome, DeletedCheckRun, PendingDeletedCheck, deleted_ids_to_apply,
};
use super::ports::OrgPort;
use super::sim_tests::{client, file_store, start};
use crate::metrics::{Gauges, Metrics};
use crate::salesforce::Client;
use crate::store::{Direction, LinkWrite, Org, tombstone_for_test};

const OBJECT: &str = "Opportunity";

fn opportunity(name: &str, amount: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "Name": name, "StageName": "Prospecting", "CloseDate": "2026-06-30", "Amount": amount
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

async fn create_one(org: &Client, values: Map<String, Value>) -> String {
    let out = OrgPort::create(org, OBJECT, &[values])
        .await
        .expect("create");
    out[0].as_ref().expect("created").id.clone()
}

async fn control(sim: &sfsim::SimOrg, path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/{path}", sim.base_url))
        .json(&body)
        .send()
        .await
        .expect("control call");
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.expect("control json")
}

/// The org's daily API allowance used up: every call is refused with REQUEST_LIMIT_EXCEEDED.
fn spend_allowance(sim: &sfsim::SimOrg) {
    let Value::Object(patch) = json!({"api_daily_limit": 10, "api_usage": 10}) else {
        unreachable!("a JSON object literal")
    };
    sim.set_faults(patch).expect("faults");
}

fn link_write(direction: Direction, source_id: &str, target_id: &str) -> LinkWrite {
    let (a_id, b_id) = match direction.source() {
        Org::A => (source_id, target_id),
        Org::B => (target_id, source_id),
    };
    LinkWrite {
        object: OBJECT.into(),
        a_id: a_id.into(),
        b_id: b_id.into(),
        a_modstamp: None,
        b_modstamp: None,
        snapshot: opportunity("Restore me", 10),
    }
}

/// Log lines of the current thread while `guard` lives.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .without_time()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("logs").clone()).expect("utf-8")
    }
}

fn run(direction: Direction) -> DeletedCheckRun<'static> {
    DeletedCheckRun {
        cycle: 9,
        direction,
        object: OBJECT,
        frequency: Duration::from_secs(3600),
    }
}

fn checked(outcome: DeletedCheckOutcome) -> PendingDeletedCheck {
    match outcome {
        DeletedCheckOutcome::Checked(pending) => pending,
        other => panic!("expected a check, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hard_delete_after_a_purge_is_listed_by_the_safety_net_once() {
    let sim = start("A").await;
    let person = client(&sim, "human");
    let integration = client(&sim, "integration");
    let (store, _dir) = file_store().await;
    let metrics = Metrics::default();
    let linked = create_one(&person, opportunity("Linked", 1)).await;
    let never_synced = create_one(&person, opportunity("Never synced", 2)).await;
    let already_applied = create_one(&person, opportunity("Tombstoned", 3)).await;
    for (i, a_id) in [&linked, &already_applied].into_iter().enumerate() {
        let b_id = format!("006B0000000000{i}AAA");
        store
            .upsert_link(&link_write(Direction::AToB, a_id, &b_id))
            .await
            .expect("link");
    }
    tombstone_for_test(&store, OBJECT, &already_applied, Org::A)
        .await
        .expect("tombstone");
    let began = Utc::now() - chrono::Duration::minutes(10);
    store
        .advance_watermark(Org::A, OBJECT, began)
        .await
        .expect("watermark");
    // Gone for good before any poll saw them: queryAll no longer returns them.
    let hard = control(
        &sim,
        "hard_delete",
        json!({"ids": [linked, never_synced, already_applied]}),
    )
    .await;
    assert!(hard.is_object(), "{hard}");
    // The delete log lists a minute once it is over: three minutes later.
    sim.set_clock_offset_ms(180_000);
    let now = Utc::now() + chrono::Duration::minutes(3);
    let calls = integration.calls().get(crate::salesforce::CallKind::Other);
    let pending = checked(
        deleted_ids_to_apply(&integration, &store, &metrics, &run(Direction::AToB), now)
            .await
            .expect("check"),
    );
    assert_eq!(
        integration.calls().get(crate::salesforce::CallKind::Other),
        calls + 1,
        "one getDeleted call"
    );
    assert_eq!(pending.listed, 3);
    assert_eq!(pending.ids, vec![linked.clone()], "only the live link's id");
    assert_eq!(
        pending.window.start,
        super::deleted_check::truncate_to_minute(began)
    );
    // The lead's wiring: apply the ids (Pass::apply_source_deletes), then commit.
    let stored = pending.commit(&store).await.expect("commit");
    assert!(stored.next_start > began, "{stored:?}");
    assert_eq!(
        stored.last_checked_at.timestamp_millis(),
        now.timestamp_millis()
    );
    // Not due again before the frequency: no call.
    let again = deleted_ids_to_apply(
        &integration,
        &store,
        &metrics,
        &run(Direction::AToB),
        now + chrono::Duration::minutes(59),
    )
    .await
    .expect("check");
    assert!(
        matches!(
            again,
            DeletedCheckOutcome::Skipped(CheckPlan::NotDue { .. })
        ),
        "{again:?}"
    );
    assert_eq!(
        integration.calls().get(crate::salesforce::CallKind::Other),
        calls + 1
    );
}

#[tokio::test]
async fn a_check_that_dies_before_its_commit_lists_the_same_window_again() {
    let sim = start("B").await;
    let person = client(&sim, "human");
    let integration = client(&sim, "integration");
    let (store, _dir) = file_store().await;
    let b_id = create_one(&person, opportunity("Linked", 1)).await;
    store
        .upsert_link(&link_write(Direction::BToA, &b_id, "006A00000000009AAA"))
        .await
        .expect("link");
    store
        .advance_watermark(Org::B, OBJECT, Utc::now() - chrono::Duration::minutes(5))
        .await
        .expect("watermark");
    control(&sim, "hard_delete", json!({"ids": [b_id]})).await;
    sim.set_clock_offset_ms(180_000);
    let now = Utc::now() + chrono::Duration::minutes(3);
    let metrics = Metrics::default();
    let first = checked(
        deleted_ids_to_apply(&integration, &store, &metrics, &run(Direction::BToA), now)
            .await
            .expect("check"),
    );
    assert_eq!(first.ids, vec![b_id.clone()]);
    // The process dies here: no commit. The next check lists the id again.
    drop(first);
    let second = checked(
        deleted_ids_to_apply(&integration, &store, &metrics, &run(Direction::BToA), now)
            .await
            .expect("check"),
    );
    assert_eq!(second.ids, vec![b_id.clone()]);
    // Applied this time (the delete path tombstones the link), then committed: a replay of
    // the window would list nothing to apply.
    tombstone_for_test(&store, OBJECT, "006A00000000009AAA", Org::B)
        .await
        .expect("tombstone");
    let replay = checked(
        deleted_ids_to_apply(&integration, &store, &metrics, &run(Direction::BToA), now)
            .await
            .expect("check"),
    );
    assert_eq!(replay.listed, 1);
    assert!(
        replay.ids.is_empty(),
        "an applied id is never applied twice"
    );
    second.commit(&store).await.expect("commit");
    assert!(
        store
            .deleted_check(Org::B, OBJECT)
            .await
            .expect("read")
            .is_some()
    );
}

#[tokio::test]
async fn a_window_with_a_hole_is_reported_by_log_metric_and_status() {
    let sim = start("A").await;
    let integration = client(&sim, "integration");
    let (store, _dir) = file_store().await;
    let began = Utc::now() - chrono::Duration::minutes(30);
    store
        .advance_watermark(Org::A, OBJECT, began)
        .await
        .expect("watermark");
    // The delete log now starts 10 minutes ago: the 20 minutes before are a hole.
    let earliest =
        super::deleted_check::truncate_to_minute(Utc::now() - chrono::Duration::minutes(10));
    control(
        &sim,
        "replication",
        json!({"earliest_available": earliest.to_rfc3339(), "object": OBJECT}),
    )
    .await;
    let metrics = Metrics::default();
    let logs = Logs::default();
    let pending = {
        let _guard = logs.capture();
        checked(
            deleted_ids_to_apply(
                &integration,
                &store,
                &metrics,
                &run(Direction::AToB),
                Utc::now(),
            )
            .await
            .expect("check"),
        )
    };
    let hole = pending.hole.expect("a hole");
    assert_eq!(hole.earliest_available, earliest);
    assert_eq!(hole.start, super::deleted_check::truncate_to_minute(began));
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("getDeleted window has a hole"))
        .unwrap_or_else(|| panic!("no hole line in {text}"));
    assert!(line.starts_with(" WARN"), "{line}");
    for field in [
        "cycle=9",
        "direction=a_to_b",
        "org=a",
        "object=Opportunity",
        "reconcile",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    let rendered = metrics.render(&Gauges::default());
    assert!(
        rendered.contains("orgsync_deleted_window_holes_total{org=\"a\"} 1\n"),
        "{rendered}"
    );
    assert!(rendered.contains("orgsync_deleted_window_holes_total{org=\"b\"} 0\n"));
    // Counted in the store once committed (`status` shows it: see status.rs's tests).
    let stored = pending.commit(&store).await.expect("commit");
    assert_eq!(stored.holes, 1);
    assert_eq!(stored.last_hole_earliest, Some(earliest));
}

#[tokio::test]
async fn a_get_deleted_refusal_is_the_usual_error_and_stores_nothing() {
    let sim = start("A").await;
    let integration = client(&sim, "integration");
    let (store, _dir) = file_store().await;
    // Older than the log's 15 days: INVALID_REPLICATION_DATE, as Salesforce answers.
    let now = Utc::now();
    let err = integration
        .get_deleted(OBJECT, now - chrono::Duration::days(16), now)
        .await
        .expect_err("refused");
    assert_eq!(err.code, "INVALID_REPLICATION_DATE");
    assert_eq!(err.status, Some(400));
    // Through the check: the error is returned, nothing is stored.
    store
        .advance_watermark(Org::A, OBJECT, now - chrono::Duration::minutes(10))
        .await
        .expect("watermark");
    spend_allowance(&sim);
    let err = deleted_ids_to_apply(
        &integration,
        &store,
        &Metrics::default(),
        &run(Direction::AToB),
        now,
    )
    .await
    .expect_err("limit");
    assert_eq!(err.kind(), crate::domain::ErrorKind::Limit, "{err}");
    assert!(
        store
            .deleted_check(Org::A, OBJECT)
            .await
            .expect("read")
            .is_none()
    );
}
