//! The undelete path and the getDeleted safety net against two simulated orgs (sfsim) and a
//! real SQLite store, each on its own (the delete path that makes tombstones, and the pass
//! that routes rows to these modules, are another module's; the tombstones here are made by
//! hand, `store::tombstone_for_test`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::deleted_check::{
    CheckPlan, DeletedCheckOutcome, DeletedCheckRun, PendingDeletedCheck, deleted_ids_to_apply,
};
use super::ports::{OrgPort, QueryKind, RecordQuery};
use super::sim_tests::{client, file_store, start};
use super::undelete::{TombstoneRow, UndeleteRun, undelete_tombstones};
use crate::metrics::{Gauges, Metrics};
use crate::salesforce::Client;
use crate::store::{Direction, LinkState, LinkWrite, Org, tombstone_for_test};

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

/// The record `id` as `query` returns it (deleted ones are absent).
async fn live_row(org: &Client, id: &str) -> Option<Map<String, Value>> {
    let query = RecordQuery {
        object: OBJECT.into(),
        fields: vec!["Name".into(), "Amount".into()],
        kind: QueryKind::ByIds(vec![id.to_string()]),
    };
    OrgPort::query(org, &query)
        .await
        .expect("query")
        .records
        .pop()
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

/// A linked pair, both records deleted, the link a tombstone, then the source undeleted and
/// edited (Amount 10 -> 20); the target purged from its recycle bin when `purge` is set. Runs
/// the undelete path and checks the target is back with the source's values and the link is
/// live.
async fn undelete_case(direction: Direction, purge: bool) {
    let (sim_a, sim_b) = (start("A").await, start("B").await);
    let (source_sim, target_sim) = match direction.source() {
        Org::A => (&sim_a, &sim_b),
        Org::B => (&sim_b, &sim_a),
    };
    let person = client(source_sim, "human");
    let target = client(target_sim, "integration");
    let (store, _dir) = file_store().await;
    let source_id = create_one(&person, opportunity("Restore me", 10)).await;
    let target_id = create_one(&target, opportunity("Restore me", 10)).await;
    store
        .upsert_link(&link_write(direction, &source_id, &target_id))
        .await
        .expect("link");
    // The delete path's doing (another module): both deleted, the link a tombstone.
    person
        .delete(std::slice::from_ref(&source_id))
        .await
        .expect("delete source");
    target
        .delete(std::slice::from_ref(&target_id))
        .await
        .expect("delete target");
    let a_id = link_write(direction, &source_id, &target_id).a_id;
    tombstone_for_test(&store, OBJECT, &a_id, direction.source())
        .await
        .expect("tombstone");
    if purge {
        let purged = control(target_sim, "recycle_bin/purge", json!({"ids": [target_id]})).await;
        assert_eq!(purged["purged"], 1);
    }
    // A person restores the source from the recycle bin and edits it.
    let restored = person
        .undelete(std::slice::from_ref(&source_id))
        .await
        .expect("undelete");
    assert!(restored[0].is_ok(), "{restored:?}");
    let mut edit = Map::new();
    edit.insert("Amount".into(), json!(20));
    OrgPort::update(&person, OBJECT, &[(source_id.clone(), edit)])
        .await
        .expect("edit");
    let links = match direction.source() {
        Org::A => {
            store
                .links_by_a_ids(OBJECT, std::slice::from_ref(&source_id))
                .await
        }
        Org::B => {
            store
                .links_by_b_ids(OBJECT, std::slice::from_ref(&source_id))
                .await
        }
    }
    .expect("links");
    assert_eq!(links[0].state, LinkState::Tombstone);
    let row = TombstoneRow {
        link: links[0].clone(),
        source_id: source_id.clone(),
        source_modstamp: None,
        target_body: opportunity("Restore me", 20),
        snapshot: opportunity("Restore me", 20),
    };
    let metrics = Metrics::default();
    let run = UndeleteRun {
        cycle: 3,
        direction,
        object: OBJECT,
    };
    let undeletes_before = target_sim.calls("undelete");
    let outcomes = undelete_tombstones(&target, &run, &[row], &metrics)
        .await
        .expect("undelete path");
    assert_eq!(outcomes.len(), 1);
    let revived = outcomes[0].result.clone().expect("restored");
    assert_eq!(revived.recreated, purge);
    assert_eq!(
        revived.target_id == target_id,
        !purge,
        "a new id only when recreated"
    );
    assert_eq!(
        target_sim.calls("undelete") - undeletes_before,
        1,
        "one undelete call"
    );
    store
        .revive_link(outcomes[0].link_id, &revived.link)
        .await
        .expect("revive");
    // The target is back (or anew) with the source's values, and the link is live on it.
    let back = live_row(&target, &revived.target_id)
        .await
        .expect("target is live");
    assert_eq!(back["Amount"].as_f64(), Some(20.0), "{back:?}");
    if purge {
        assert!(
            live_row(&target, &target_id).await.is_none(),
            "the purged one stays gone"
        );
    }
    // Found from the source's side (the target's id may be new).
    let links = match direction.source() {
        Org::A => {
            store
                .links_by_a_ids(OBJECT, std::slice::from_ref(&source_id))
                .await
        }
        Org::B => {
            store
                .links_by_b_ids(OBJECT, std::slice::from_ref(&source_id))
                .await
        }
    }
    .expect("links");
    let live: Vec<_> = links.iter().filter(|l| l.is_live()).collect();
    assert_eq!(live.len(), 1, "{links:?}");
    assert_eq!(live[0].id, outcomes[0].link_id);
    let target_side = match direction.target() {
        Org::A => &live[0].a_id,
        Org::B => &live[0].b_id,
    };
    assert_eq!(target_side, &revived.target_id);
    assert_eq!((live[0].deleted_at, live[0].deleted_by), (None, None));
    let operation = if purge { "create" } else { "undelete" };
    let series = format!(
        "orgsync_record_writes_total{{direction=\"{}\",operation=\"{operation}\"}} 1",
        direction.as_str()
    );
    assert!(
        metrics.render(&Gauges::default()).contains(&series),
        "{series}"
    );
}

#[tokio::test]
async fn undelete_a_to_b_restores_the_target_from_the_recycle_bin_and_updates_it() {
    undelete_case(Direction::AToB, false).await;
}

#[tokio::test]
async fn undelete_b_to_a_recreates_a_purged_target_and_relinks_it() {
    undelete_case(Direction::BToA, true).await;
}

#[tokio::test]
async fn an_undelete_whose_target_is_live_already_updates_it_and_creates_nothing() {
    // A replay: the target was undeleted by an earlier run whose page did not commit.
    let (sim_a, sim_b) = (start("A").await, start("B").await);
    let person = client(&sim_a, "human");
    let target = client(&sim_b, "integration");
    let (store, _dir) = file_store().await;
    let source_id = create_one(&person, opportunity("Restore me", 10)).await;
    let target_id = create_one(&target, opportunity("Restore me", 10)).await;
    store
        .upsert_link(&link_write(Direction::AToB, &source_id, &target_id))
        .await
        .expect("link");
    tombstone_for_test(&store, OBJECT, &source_id, Org::A)
        .await
        .expect("tombstone");
    let link = store
        .links_by_a_ids(OBJECT, std::slice::from_ref(&source_id))
        .await
        .expect("links")
        .remove(0);
    let row = TombstoneRow {
        link,
        source_id: source_id.clone(),
        source_modstamp: None,
        target_body: opportunity("Restore me", 30),
        snapshot: opportunity("Restore me", 30),
    };
    let run = UndeleteRun {
        cycle: 1,
        direction: Direction::AToB,
        object: OBJECT,
    };
    let creates = sim_b.calls("collections_create");
    let outcomes = undelete_tombstones(&target, &run, &[row], &Metrics::default())
        .await
        .expect("undelete path");
    let revived = outcomes[0].result.clone().expect("restored");
    assert!(!revived.recreated);
    assert_eq!(revived.target_id, target_id);
    assert_eq!(
        sim_b.calls("collections_create"),
        creates,
        "nothing created"
    );
    let back = live_row(&target, &target_id).await.expect("live");
    assert_eq!(back["Amount"].as_f64(), Some(30.0));
}

#[tokio::test]
async fn the_soap_undelete_goes_through_the_client_relogin_and_its_faults_keep_their_code() {
    let sim = start("B").await;
    let org = client(&sim, "integration");
    let id = create_one(&org, opportunity("Session", 1)).await;
    org.delete(std::slice::from_ref(&id)).await.expect("delete");
    // An expired session is the INVALID_SESSION_ID fault: the client logs in again once.
    sim.expire_sessions();
    let logins = org.calls().get(crate::salesforce::CallKind::Login);
    let results = org
        .undelete(std::slice::from_ref(&id))
        .await
        .expect("undelete");
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        org.calls().get(crate::salesforce::CallKind::Login),
        logins + 1
    );
    // A second undelete: not in the recycle bin.
    let again = org
        .undelete(std::slice::from_ref(&id))
        .await
        .expect("undelete");
    assert_eq!(
        again[0].as_ref().err().map(|f| f.code()),
        Some("UNDELETE_FAILED")
    );
    // The daily allowance spent: the fault is the usual limit error.
    spend_allowance(&sim);
    let err = org.undelete(&[id]).await.expect_err("limit");
    assert!(err.is_limit_exceeded(), "{err}");
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
