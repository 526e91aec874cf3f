//! The Bulk read end to end: the pass over the real client, the real SQLite store and two
//! simulated orgs (sfsim's Bulk API 2.0), at a read threshold of 500. DESIGN §2 on the Bulk
//! path: convergence, no duplicates, ties in SystemModstamp across page boundaries, resume of
//! an open job and of staged rows, a stalled job and a failed job falling back to REST, the
//! call count, and `batch.bulk = "never"` keeping the REST calls.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::bulk_read::BulkConfig;
use super::sim_tests::{client, config, file_store, start};
use crate::config::BulkMode;
use crate::metrics::Metrics;
use crate::salesforce::Client;
use crate::store::{Direction, Store};
use crate::sync::{Mapping, Pass, PassOutcome, PassReport};

fn mapping() -> Mapping {
    let fields: Vec<String> = ["Name", "StageName", "CloseDate", "Amount"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Mapping::new(&fields, &Default::default(), &Default::default()).expect("mapping")
}

fn bulk(mode: BulkMode) -> BulkConfig {
    BulkConfig {
        mode,
        read_threshold: 500,
        poll_initial: Duration::from_millis(20),
        poll_max: Duration::from_millis(100),
        ..BulkConfig::never()
    }
}

fn opportunity(i: usize) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "Name": format!("Bulk {i:05}"), "StageName": "Prospecting",
        "CloseDate": "2026-06-30", "Amount": 1000 + i
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// `n` opportunities in `sim` written by a person in one seeding step: one SystemModstamp
/// for all of them (ties across every page boundary).
fn seed(sim: &sfsim::SimOrg, from: usize, n: usize) {
    let human = sim.human_username.clone();
    let rows = (from..from + n).map(opportunity).collect();
    sim.seed_records("Opportunity", Some(&human), rows)
        .expect("seed");
}

async fn stats(sim: &sfsim::SimOrg) -> Value {
    reqwest::get(format!("{}/__sim/stats", sim.base_url))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

fn calls(stats: &Value, kind: &str) -> u64 {
    stats["calls"][kind].as_u64().unwrap_or(0)
}

fn bulk_calls(stats: &Value) -> u64 {
    stats["calls"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("bulk_"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

async fn set_faults(sim: &sfsim::SimOrg, faults: Value) {
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/faults", sim.base_url))
        .json(&faults)
        .send()
        .await
        .expect("faults call");
    assert!(reply.status().is_success(), "faults: {}", reply.status());
}

/// Names of B's opportunities, sorted, each once.
async fn names(c: &Client) -> Vec<String> {
    let rows = c
        .query_collect("SELECT Name FROM Opportunity ORDER BY Name")
        .await
        .expect("query");
    rows.iter()
        .filter_map(|r| r["Name"].as_str().map(str::to_string))
        .collect()
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("Bulk {i:05}")).collect()
}

struct Pair {
    sim_a: sfsim::SimOrg,
    sim_b: sfsim::SimOrg,
    a: Client,
    b: Client,
    human_b: Client,
    user_a: String,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn new() -> Pair {
        let (sim_a, sim_b) = (start("A").await, start("B").await);
        let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
        let human_b = client(&sim_b, "human");
        let user_a = a.user_id().await.expect("login A");
        let (store, dir) = file_store().await;
        Pair {
            sim_a,
            sim_b,
            a,
            b,
            human_b,
            user_a,
            store,
            _dir: dir,
        }
    }

    /// One A -> B pass (cycle `cycle`) with these Bulk settings.
    async fn a_to_b(&self, cycle: u64, bulk: BulkConfig, cancel: &CancellationToken) -> PassReport {
        let cfg = config(Direction::AToB, self.user_a.clone(), cycle);
        Pass::new(
            &cfg,
            &mapping(),
            &self.a,
            &self.b,
            &self.store,
            &Metrics::default(),
        )
        .with_bulk(bulk)
        .run(cancel)
        .await
        .expect("A -> B")
    }
}

/// 5,000 tied records read through one query job: every one arrives once, the watermark is
/// the tie's timestamp, nothing stays staged, and the reads cost 1 REST query (the estimate),
/// 1 job create, the polls, 1 results page (5,000 < maxRecords 10,000) and 1 job delete. The
/// next pass reads the overlap through REST (it is all replays) and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_above_the_threshold_reads_through_one_bulk_job() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 5000);
    let cancel = CancellationToken::new();
    let report = p.a_to_b(1, bulk(BulkMode::Auto), &cancel).await;
    assert_eq!(report.outcome, PassOutcome::Completed, "{report:?}");
    assert_eq!(report.created, 5000, "{report:?}");
    assert_eq!(names(&p.human_b).await, expected(5000));

    let a = stats(&p.sim_a).await;
    assert_eq!((calls(&a, "query") + calls(&a, "query_all")), 1, "{a}");
    assert_eq!(calls(&a, "query_more"), 0, "{a}");
    assert_eq!(calls(&a, "bulk_query_create"), 1, "{a}");
    assert_eq!(calls(&a, "bulk_results"), 1, "{a}");
    assert_eq!(calls(&a, "bulk_query_delete"), 1, "{a}");
    let polls = calls(&a, "bulk_query_get");
    assert!((1..=10).contains(&polls), "{a}");
    // Every call of the pass on A: the 4 above, the polls and one describe (the CSV's types);
    // REST would have made ceil(5000/2000) = 3 query calls.
    assert_eq!(calls(&a, "describe"), 1, "{a}");
    assert_eq!(a["api_calls_total"].as_u64(), Some(5 + polls), "{a}");

    let summary = p.store.bulk_summary().await.expect("summary");
    assert_eq!(
        (summary.completed, summary.open, summary.rows_moved),
        (1, 0, 5000)
    );
    let jobs = p.store.bulk_jobs(10).await.expect("jobs");
    assert!(
        p.store
            .staged_rows(&jobs[0].job_id, 10)
            .await
            .expect("staged")
            .is_empty()
    );

    // The next pass: the 5,000 rows are the lookback overlap: REST, no job, no writes.
    let again = p.a_to_b(2, bulk(BulkMode::Auto), &cancel).await;
    assert_eq!((again.created, again.updated), (0, 0), "{again:?}");
    assert_eq!(calls(&stats(&p.sim_a).await, "bulk_query_create"), 1);
    assert_eq!(names(&p.human_b).await, expected(5000), "no duplicates");
}

/// `batch.bulk = "never"`: the same backlog goes through REST exactly as before Bulk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_keeps_the_rest_calls() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 3000);
    let cancel = CancellationToken::new();
    let report = p.a_to_b(1, bulk(BulkMode::Never), &cancel).await;
    assert_eq!(report.created, 3000, "{report:?}");
    let (a, b) = (stats(&p.sim_a).await, stats(&p.sim_b).await);
    assert_eq!(bulk_calls(&a) + bulk_calls(&b), 0, "{a} {b}");
    // ceil(3000/2000) query calls in A.
    assert_eq!(
        (calls(&a, "query") + calls(&a, "query_all")) + calls(&a, "query_more"),
        2,
        "{a}"
    );
    assert_eq!(p.store.bulk_summary().await.expect("summary").completed, 0);
}

/// A job still open after `batch.bulk_timeout` is aborted and the rows arrive through REST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_job_is_aborted_and_the_rows_arrive_through_rest() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 1200);
    set_faults(&p.sim_a, json!({"bulk_stall": true})).await;
    let cancel = CancellationToken::new();
    let cfg = BulkConfig {
        timeout: Duration::from_millis(300),
        ..bulk(BulkMode::Auto)
    };
    let report = p.a_to_b(1, cfg, &cancel).await;
    assert_eq!(report.outcome, PassOutcome::Completed, "{report:?}");
    assert_eq!(report.created, 1200, "{report:?}");
    assert_eq!(names(&p.human_b).await, expected(1200));
    let a = stats(&p.sim_a).await;
    assert_eq!(calls(&a, "bulk_query_abort"), 1, "{a}");
    assert_eq!(calls(&a, "bulk_results"), 0, "{a}");
    let summary = p.store.bulk_summary().await.expect("summary");
    assert_eq!((summary.aborted, summary.open), (1, 0));
}

/// A job that fails falls back to REST in the same pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_falls_back_to_rest() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 800);
    set_faults(&p.sim_a, json!({"bulk_fail": true})).await;
    let cancel = CancellationToken::new();
    let report = p.a_to_b(1, bulk(BulkMode::Auto), &cancel).await;
    assert_eq!(report.created, 800, "{report:?}");
    assert_eq!(names(&p.human_b).await, expected(800));
    let summary = p.store.bulk_summary().await.expect("summary");
    assert_eq!((summary.failed, summary.open), (1, 0));
    assert_eq!(calls(&stats(&p.sim_a).await, "bulk_results"), 0);
}

/// A pass stopped while its job runs leaves the job open; the next pass polls the same job
/// (no second create) and finishes the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_job_is_resumed_by_the_next_pass() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 700);
    set_faults(&p.sim_a, json!({"bulk_stall": true})).await;
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let report = p.a_to_b(1, bulk(BulkMode::Auto), &cancel).await;
    assert_eq!(report.outcome, PassOutcome::Cancelled, "{report:?}");
    assert_eq!(report.created, 0);
    assert_eq!(p.store.bulk_summary().await.expect("summary").open, 1);

    set_faults(&p.sim_a, json!({"bulk_stall": false})).await;
    let report = p
        .a_to_b(2, bulk(BulkMode::Auto), &CancellationToken::new())
        .await;
    assert_eq!(report.created, 700, "{report:?}");
    let a = stats(&p.sim_a).await;
    assert_eq!(calls(&a, "bulk_query_create"), 1, "{a}");
    // The resumed pass read nothing through REST: it went straight to its job.
    assert_eq!((calls(&a, "query") + calls(&a, "query_all")), 1, "{a}");
    assert_eq!(names(&p.human_b).await, expected(700));
}

/// Rows staged when the pass stopped (here: B refused every call, so no page committed) are
/// fed by the next pass from the store, with no new job and no second results read; pages
/// committed before a stop are not fed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_rows_are_fed_by_the_next_pass() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 900);
    set_faults(
        &p.sim_b,
        json!({"error_rate": 1.0, "error_status": 503, "error_code": "SERVER_UNAVAILABLE"}),
    )
    .await;
    let cfg = config(Direction::AToB, p.user_a.clone(), 1);
    let stopped = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .with_bulk(bulk(BulkMode::Auto))
        .run(&CancellationToken::new())
        .await;
    assert!(stopped.is_err(), "{stopped:?}");
    let jobs = p.store.bulk_jobs(10).await.expect("jobs");
    assert_eq!(jobs[0].state, crate::store::BulkJobState::Staged);
    assert_eq!(
        p.store
            .staged_rows(&jobs[0].job_id, 2000)
            .await
            .expect("staged")
            .len(),
        900
    );

    set_faults(&p.sim_b, json!({"error_rate": 0.0})).await;
    let report = p
        .a_to_b(2, bulk(BulkMode::Auto), &CancellationToken::new())
        .await;
    assert_eq!(report.created, 900, "{report:?}");
    let a = stats(&p.sim_a).await;
    assert_eq!(
        (calls(&a, "bulk_query_create"), calls(&a, "bulk_results")),
        (1, 1),
        "{a}"
    );
    assert_eq!(names(&p.human_b).await, expected(900));
    assert!(
        p.store
            .staged_rows(&jobs[0].job_id, 10)
            .await
            .expect("staged")
            .is_empty()
    );
}

/// A pass that writes through Bulk: each page's updates go through one ingest job (none
/// through collections); the rows the org refuses are matched to their records by Id (the
/// result files come shuffled) and queued, every other row is linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_go_through_ingest_jobs_and_results_match_by_key() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 600);
    let cancel = CancellationToken::new();
    let first = p.a_to_b(1, bulk(BulkMode::Never), &cancel).await;
    assert_eq!(first.created, 600, "{first:?}");

    let human_a = client(&p.sim_a, "human");
    let rows = human_a
        .query_collect("SELECT Id, Name FROM Opportunity")
        .await
        .expect("query A");
    let edits: Vec<(String, Map<String, Value>)> = rows
        .iter()
        .map(|r| {
            let mut body = Map::new();
            body.insert("Amount".into(), json!(99000));
            (r["Id"].as_str().expect("id").to_string(), body)
        })
        .collect();
    human_a.update("Opportunity", &edits).await.expect("edit A");
    // "Bulk 00010" .. "Bulk 00019" are refused by B.
    set_faults(&p.sim_b, json!({"reject_name_marker": "Bulk 0001"})).await;
    let before = stats(&p.sim_b).await;

    let report = p.a_to_b(2, bulk(BulkMode::Always), &cancel).await;
    assert_eq!((report.updated, report.failed), (590, 10), "{report:?}");
    let b = stats(&p.sim_b).await;
    let delta = |kind: &str| calls(&b, kind) - calls(&before, kind);
    // Three pages of 200 updates, planned, then one job for the pass (`bulk_pass`), no
    // collections update.
    assert_eq!(delta("bulk_ingest_create"), 1, "{b}");
    assert_eq!(delta("collections_update"), 0, "{b}");
    for r in &rows {
        let id = r["Id"].as_str().expect("id");
        let name = r["Name"].as_str().expect("name");
        let queued = p
            .store
            .failure_for(Direction::AToB, "Opportunity", id)
            .await
            .expect("failure");
        assert_eq!(queued.is_some(), name.contains("Bulk 0001"), "{name}");
        if let Some(f) = queued {
            assert_eq!(f.error_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
            assert_eq!(f.class, crate::store::FailureClass::NeedsEdit);
        }
    }
    let summary = p.store.bulk_summary().await.expect("summary");
    assert_eq!(summary.open, 0);
}

/// With an external id, creates go through ingest upserts on it: matched by the external id,
/// created once; the next pass creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_go_through_upsert_jobs_on_the_external_id() {
    let p = Pair::new().await;
    let field = json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string",
                       "length": 64, "externalId": true, "unique": true});
    p.sim_a.add_field(&field).expect("field A");
    p.sim_b.add_field(&field).expect("field B");
    seed(&p.sim_a, 0, 300);
    let mut cfg = config(Direction::AToB, p.user_a.clone(), 1);
    cfg.external_id_field = Some("Ext_Id__c".into());
    let pair = &p;
    let run = |cycle: u64| {
        let p = pair;
        let mut cfg = cfg.clone();
        cfg.cycle = cycle;
        async move {
            Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
                .with_bulk(bulk(BulkMode::Always))
                .run(&CancellationToken::new())
                .await
                .expect("A -> B")
        }
    };
    let report = run(1).await;
    assert_eq!(report.created, 300, "{report:?}");
    let b = stats(&p.sim_b).await;
    // Two pages planned, one upsert job for the pass (`bulk_pass`).
    assert_eq!(calls(&b, "bulk_ingest_create"), 1, "{b}");
    assert_eq!(calls(&b, "collections_upsert"), 0, "{b}");
    assert_eq!(names(&p.human_b).await, expected(300));
    let with_ext = p
        .human_b
        .query_collect("SELECT Id FROM Opportunity WHERE Ext_Id__c != null")
        .await
        .expect("query B");
    assert_eq!(with_ext.len(), 300);
    let again = run(2).await;
    assert_eq!((again.created, again.updated), (0, 0), "{again:?}");
    assert_eq!(names(&p.human_b).await, expected(300), "no duplicates");
}

/// An ingest job still open after `batch.bulk_timeout` is aborted and its rows are written
/// through collections in the same page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_ingest_job_is_aborted_and_its_rows_replayed_through_rest() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 150);
    set_faults(&p.sim_b, json!({"bulk_stall": true})).await;
    let field = json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string",
                       "length": 64, "externalId": true, "unique": true});
    p.sim_a.add_field(&field).expect("field A");
    p.sim_b.add_field(&field).expect("field B");
    let mut cfg = config(Direction::AToB, p.user_a.clone(), 1);
    cfg.external_id_field = Some("Ext_Id__c".into());
    let report = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .with_bulk(BulkConfig {
            timeout: Duration::from_millis(300),
            ..bulk(BulkMode::Always)
        })
        .run(&CancellationToken::new())
        .await
        .expect("A -> B");
    assert_eq!(report.created, 150, "{report:?}");
    let b = stats(&p.sim_b).await;
    assert_eq!(calls(&b, "bulk_ingest_create"), 1, "{b}");
    assert_eq!(calls(&b, "collections_upsert"), 1, "{b}");
    assert_eq!(names(&p.human_b).await, expected(150));
    let summary = p.store.bulk_summary().await.expect("summary");
    assert_eq!((summary.aborted, summary.open), (1, 0));
}

/// A pass stopped (SIGTERM) while its ingest job runs does not wait for the job: it aborts
/// it and stops, its planned writes durable (`bulk_pass`); the next pass writes them and
/// commits, with no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_pass_aborts_its_ingest_job_and_the_next_pass_finishes_it() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 150);
    set_faults(&p.sim_b, json!({"bulk_stall": true})).await;
    let field = json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string",
                       "length": 64, "externalId": true, "unique": true});
    p.sim_a.add_field(&field).expect("field A");
    p.sim_b.add_field(&field).expect("field B");
    let mut cfg = config(Direction::AToB, p.user_a.clone(), 1);
    cfg.external_id_field = Some("Ext_Id__c".into());
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let sim_b = p.sim_b.base_url.clone();
    tokio::spawn(async move {
        // Stop once the ingest job exists.
        loop {
            let stats: Value = reqwest::get(format!("{sim_b}/__sim/stats"))
                .await
                .expect("stats")
                .json()
                .await
                .expect("json");
            if calls(&stats, "bulk_ingest_state") > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stopper.cancel();
    });
    let report = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .with_bulk(bulk(BulkMode::Always))
        .run(&cancel)
        .await
        .expect("A -> B");
    assert_eq!(report.outcome, PassOutcome::Cancelled, "{report:?}");
    assert_eq!(report.created, 0, "{report:?}");
    assert!(
        names(&p.human_b).await.is_empty(),
        "the stalled job wrote nothing"
    );
    let open = p
        .store
        .open_bulk_read(Direction::AToB, "Opportunity")
        .await
        .expect("open read")
        .expect("the read is still open");
    assert_eq!(open.state, crate::store::BulkJobState::Planned);

    set_faults(&p.sim_b, json!({"bulk_stall": false})).await;
    cfg.cycle = 2;
    let again = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .with_bulk(bulk(BulkMode::Always))
        .run(&CancellationToken::new())
        .await
        .expect("A -> B again");
    assert_eq!(again.created, 150, "{again:?}");
    assert_eq!(names(&p.human_b).await, expected(150));
    let summary = p.store.bulk_summary().await.expect("summary");
    assert_eq!((summary.aborted, summary.open), (1, 0));
    let third = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .with_bulk(bulk(BulkMode::Always))
        .run(&CancellationToken::new())
        .await
        .expect("A -> B a third time");
    assert_eq!((third.created, third.updated), (0, 0), "{third:?}");
}

/// REST reads with Bulk writes (a backlog between the two thresholds): pages of 1,500 overlap
/// as on the REST path, each page's updates go through its own ingest job while an earlier
/// page commits, and every update arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_reads_with_bulk_writes_overlap_their_pages() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 3000);
    let cancel = CancellationToken::new();
    let first = p.a_to_b(1, bulk(BulkMode::Never), &cancel).await;
    assert_eq!(first.created, 3000, "{first:?}");
    let human_a = client(&p.sim_a, "human");
    let rows = human_a
        .query_collect("SELECT Id FROM Opportunity")
        .await
        .expect("query A");
    let edits: Vec<(String, Map<String, Value>)> = rows
        .iter()
        .map(|r| {
            let mut body = Map::new();
            body.insert("Amount".into(), json!(4242));
            (r["Id"].as_str().expect("id").to_string(), body)
        })
        .collect();
    human_a.update("Opportunity", &edits).await.expect("edit A");
    let before = stats(&p.sim_b).await;
    let mut cfg = config(Direction::AToB, p.user_a.clone(), 2);
    cfg.page_size = 1500;
    let report = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .with_bulk(BulkConfig {
            read_threshold: 100_000,
            write_threshold: 500,
            ..bulk(BulkMode::Auto)
        })
        .run(&cancel)
        .await
        .expect("A -> B");
    assert_eq!(report.updated, 3000, "{report:?}");
    let b = stats(&p.sim_b).await;
    let delta = |kind: &str| calls(&b, kind) - calls(&before, kind);
    assert_eq!(delta("bulk_ingest_create"), 2, "{b}");
    assert_eq!(delta("collections_update"), 0, "{b}");
    assert_eq!(calls(&stats(&p.sim_a).await, "bulk_query_create"), 0);
    let amounts = p
        .human_b
        .query_collect("SELECT Amount FROM Opportunity WHERE Amount = 4242")
        .await
        .expect("query B");
    assert_eq!(amounts.len(), 3000);
}

/// Deletes read through a Bulk job: with `sync.deletes = "propagate"` the job is a
/// `queryAll` with `IsDeleted` (the CSV's "true" a boolean), so 600 records deleted in A
/// (above the read threshold of 500) are deleted in B and their links become tombstones,
/// exactly as through REST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_read_through_a_bulk_job_are_propagated() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 600);
    let cancel = CancellationToken::new();
    let first = p.a_to_b(1, bulk(BulkMode::Auto), &cancel).await;
    assert_eq!(first.created, 600, "{first:?}");
    let human_a = client(&p.sim_a, "human");
    let ids: Vec<String> = human_a
        .query_collect("SELECT Id FROM Opportunity")
        .await
        .expect("ids")
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 600);
    for chunk in ids.chunks(200) {
        let done = human_a.delete(chunk).await.expect("delete in A");
        assert!(done.iter().all(Result::is_ok));
    }
    let mut cfg = config(Direction::AToB, p.user_a.clone(), 2);
    cfg.deletes.max_per_cycle = 0;
    let report = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .with_bulk(bulk(BulkMode::Auto))
        .run(&cancel)
        .await
        .expect("A -> B");
    assert_eq!(report.outcome, PassOutcome::Completed, "{report:?}");
    let a = stats(&p.sim_a).await;
    assert_eq!(
        calls(&a, "bulk_query_create"),
        2,
        "the deletes came through a job: {a}"
    );
    assert!(
        names(&p.human_b).await.is_empty(),
        "every copy in B is deleted"
    );
    let counts = p.store.counts().await.expect("counts");
    assert_eq!(counts.links_by_state["tombstone"], 600, "{counts:?}");
}

/// A Bulk pass matches unlinked rows from the target's staged records (`bulk_pass`): B's
/// 300 namesakes of A's first 300 records are linked by Name, not duplicated, without a
/// lookup query per page (B is queried twice: its count and its one staging page); the 300
/// others are created through collections (no external id: inserts stay off Bulk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_pass_matches_namesakes_from_the_staged_target() {
    let p = Pair::new().await;
    seed(&p.sim_a, 0, 600);
    seed(&p.sim_b, 0, 300);
    let cancel = CancellationToken::new();
    let report = p.a_to_b(1, bulk(BulkMode::Always), &cancel).await;
    assert_eq!(report.outcome, PassOutcome::Completed, "{report:?}");
    assert_eq!((report.created, report.linked), (300, 300), "{report:?}");
    let b = stats(&p.sim_b).await;
    // Three pages of 200, one count and one staging page: no per-page lookup.
    assert_eq!(calls(&b, "query") + calls(&b, "query_all"), 2, "{b}");
    assert_eq!(calls(&b, "collections_create"), 2, "{b}");
    assert_eq!(names(&p.human_b).await, expected(600), "no duplicates");
    assert_eq!(p.store.bulk_summary().await.expect("summary").open, 0);
    let again = p.a_to_b(2, bulk(BulkMode::Always), &cancel).await;
    assert_eq!((again.created, again.updated), (0, 0), "{again:?}");
}
