//! The engine end to end: the direction pass over the real Salesforce client (and its org
//! port), the real SQLite store, and two simulated orgs in process (sfsim).

use std::time::Duration;

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::{ConflictPolicy, Credentials, OrgSettings};
use crate::metrics::Metrics;
use crate::salesforce::{Client, ClientOptions};
use crate::store::{Direction, FailureBackoff, FailureClass, FailureState, Store};
use crate::sync::test_support::run_cycle;
use crate::sync::{AccountMode, Mapping, Pass, PassConfig, PassOutcome};

pub(super) async fn start(name: &str) -> sfsim::SimOrg {
    sfsim::start_org(sfsim::OrgConfig::named(name), "127.0.0.1:0")
        .await
        .expect("sfsim starts")
}

/// A client of `sim` logging in as `user` (`integration` or `human`).
pub(super) fn client(sim: &sfsim::SimOrg, user: &str) -> Client {
    let name = sim.name.to_ascii_lowercase();
    let settings = OrgSettings {
        name: name.clone(),
        login_url: sim.base_url.trim_end_matches('/').to_string(),
        username: format!("{user}@{name}.sim"),
        credentials: Credentials::Password {
            password: SecretString::from("password"),
            security_token: Some(SecretString::from("token")),
        },
        integration_user_id: None,
        account_id: None,
        api_version: "62.0".to_string(),
        api_budget_percent: 100,
        outbound_secret: None,
    };
    Client::with_options(&settings, ClientOptions::fast()).expect("client")
}

/// A SQLite state store in a fresh folder (kept as long as the folder lives).
pub(super) async fn file_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("state.db").display()
    ))
    .await
    .expect("store");
    (store, dir)
}

async fn api_calls(sim: &sfsim::SimOrg) -> u64 {
    let stats: Value = reqwest::get(format!("{}/__sim/stats", sim.base_url))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    stats["api_calls_total"].as_u64().unwrap_or(0)
}

fn mapping() -> Mapping {
    let fields: Vec<String> = ["Name", "StageName", "CloseDate", "Amount"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Mapping::new(&fields, &Default::default(), &Default::default()).expect("mapping")
}

/// The pass configuration of the sfsim tests: Opportunity by Name, last writer wins, no
/// parent accounts.
pub(super) fn config(direction: Direction, integration_user_id: String, cycle: u64) -> PassConfig {
    PassConfig {
        cycle,
        direction,
        object: "Opportunity".into(),
        conflict: ConflictPolicy::LastWriterWins,
        match_by: vec!["Name".into()],
        external_id_field: None,
        page_size: 200,
        in_flight: 4,
        lookback: Duration::from_secs(30),
        default_watermark: Utc
            .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
            .single()
            .expect("time"),
        filter: None,
        integration_user_id: Some(integration_user_id),
        skip_integration_user_changes: true,
        backoff: FailureBackoff {
            max_attempts: 3,
            initial_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(600),
        },
        account: AccountMode::None,
        deletes: crate::sync::pass_config::DeleteRules::default(),
    }
}

fn opportunity(name: &str, amount: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "Name": name, "StageName": "Prospecting", "CloseDate": "2026-06-30", "Amount": amount
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_simulated_orgs_sync_1000_records_within_the_call_bound_then_go_quiet() {
    let (sim_a, sim_b) = (start("A").await, start("B").await);
    let human_a = client(&sim_a, "human");
    let human_b = client(&sim_b, "human");
    let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
    let user_a = a.user_id().await.expect("login A");
    let user_b = b.user_id().await.expect("login B");
    let (store, _dir) = file_store().await;
    let m = mapping();

    let bodies: Vec<_> = (0..1000)
        .map(|i| opportunity(&format!("Deal {i:04}"), 5000 + i))
        .collect();
    let created = human_a.create("Opportunity", &bodies).await.expect("seed");
    assert!(created.iter().all(Result::is_ok));

    // One direction, X = 1,000: ceil(X/2000) + 2*ceil(X/200) + 2 = 13 calls at most.
    let before = api_calls(&sim_a).await + api_calls(&sim_b).await;
    let cancel = CancellationToken::new();
    let ab = config(Direction::AToB, user_a.clone(), 1);
    let report = Pass::new(&ab, &m, &a, &b, &store, &Metrics::default())
        .run(&cancel)
        .await
        .expect("A -> B");
    let spent = api_calls(&sim_a).await + api_calls(&sim_b).await - before;
    assert_eq!(report.created, 1000, "{report:?}");
    assert_eq!(report.outcome, PassOutcome::Completed);
    assert!(spent <= 13, "{spent} calls: {report:?}");

    // Quiescence: both directions, no writes, one query each.
    let ba = config(Direction::BToA, user_b.clone(), 1);
    let before = api_calls(&sim_a).await + api_calls(&sim_b).await;
    let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
    assert!(cycle.complete(), "{cycle:?}");
    let spent = api_calls(&sim_a).await + api_calls(&sim_b).await - before;
    assert_eq!(spent, 2, "{cycle:?}");

    // A person edits in B; the next cycle carries it to A, and the one after is quiet.
    let b_rows = human_b
        .query_collect("SELECT Id, Name FROM Opportunity WHERE Name = 'Deal 0007'")
        .await
        .expect("query B");
    let b_id = b_rows[0]["Id"].as_str().expect("id").to_string();
    let mut edit = Map::new();
    edit.insert("Amount".into(), json!(123456));
    human_b
        .update("Opportunity", &[(b_id, edit)])
        .await
        .expect("edit B");
    let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
    assert!(cycle.complete(), "{cycle:?}");
    let a_rows = human_a
        .query_collect("SELECT Id, Amount FROM Opportunity WHERE Name = 'Deal 0007'")
        .await
        .expect("query A");
    assert_eq!(a_rows.len(), 1);
    assert_eq!(a_rows[0]["Amount"].as_f64(), Some(123456.0));
    let before = api_calls(&sim_a).await + api_calls(&sim_b).await;
    let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
    assert!(cycle.complete(), "{cycle:?}");
    assert_eq!(
        api_calls(&sim_a).await + api_calls(&sim_b).await - before,
        2
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_record_waits_in_the_queue_and_syncs_after_an_operator_retry() {
    let (sim_a, sim_b) = (start("A").await, start("B").await);
    let human_a = client(&sim_a, "human");
    let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
    let (user_a, user_b) = (
        a.user_id().await.expect("login A"),
        b.user_id().await.expect("login B"),
    );
    let (store, _dir) = file_store().await;
    let m = mapping();
    set_faults(&sim_b, json!({"reject_name_marker": "REJECT"})).await;
    let bodies = vec![
        opportunity("Good 1", 6000),
        opportunity("Bad REJECT", 7000),
        opportunity("Good 2", 8000),
    ];
    human_a.create("Opportunity", &bodies).await.expect("seed");

    let (ab, ba) = (
        config(Direction::AToB, user_a, 1),
        config(Direction::BToA, user_b, 1),
    );
    let cancel = CancellationToken::new();
    let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
    let report = cycle.a_to_b.as_ref().expect("A -> B");
    assert_eq!((report.created, report.failed), (2, 1), "{report:?}");
    let failures = store.failures(None).await.expect("failures");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].direction, Direction::AToB);

    // The validation is lifted and an operator retries everything.
    set_faults(&sim_b, json!({"reject_name_marker": null})).await;
    assert_eq!(store.retry_all_failures().await.expect("retry"), 1);
    let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
    assert!(cycle.complete(), "{cycle:?}");
    assert_eq!(cycle.a_to_b.as_ref().map(|r| r.created).ok(), Some(1));
    assert!(store.failures(None).await.expect("failures").is_empty());
    let rows = b
        .query_collect("SELECT Id FROM Opportunity WHERE Name = 'Bad REJECT'")
        .await
        .expect("query B");
    assert_eq!(rows.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_rejection_needs_an_edit_retried_when_the_source_changes_not_on_a_timer() {
    let (sim_a, sim_b) = (start("A").await, start("B").await);
    let human_a = client(&sim_a, "human");
    let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
    let (user_a, user_b) = (
        a.user_id().await.expect("login A"),
        b.user_id().await.expect("login B"),
    );
    let (store, _dir) = file_store().await;
    let m = mapping();
    // A validation rule of B refuses this Name, for good.
    set_faults(&sim_b, json!({"reject_name_marker": "REJECT"})).await;
    let created = human_a
        .create("Opportunity", &[opportunity("Deal REJECT", 7000)])
        .await
        .expect("seed");
    let id = created[0].clone().expect("created").id;

    // A transient failure would be due again at once: no delay at all.
    let (mut ab, mut ba) = (
        config(Direction::AToB, user_a, 1),
        config(Direction::BToA, user_b, 1),
    );
    for cfg in [&mut ab, &mut ba] {
        cfg.backoff.initial_delay = Duration::ZERO;
        cfg.backoff.max_attempts = 5;
    }
    let cancel = CancellationToken::new();
    let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
    assert_eq!(cycle.a_to_b.as_ref().map(|r| r.failed).ok(), Some(1));
    let failures = store.failures(None).await.expect("failures");
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    assert_eq!(f.error_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(
        (f.class, f.state, f.attempts, f.next_attempt_at),
        (FailureClass::NeedsEdit, FailureState::Waiting, 1, None)
    );
    let sent = f.sent.as_ref().expect("the values sent are kept");
    assert_eq!(sent.get("Name"), Some(&json!("Deal REJECT")));
    assert_eq!(sent.get("Amount").and_then(Value::as_f64), Some(7000.0));

    // Cycles go by: the same version is never tried again on a timer.
    for _ in 0..2 {
        let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
        assert!(cycle.complete(), "{cycle:?}");
        assert_eq!(cycle.a_to_b.as_ref().map(|r| r.failed).ok(), Some(0));
    }
    let f = &store.failures(None).await.expect("failures")[0];
    assert_eq!((f.state, f.attempts), (FailureState::Waiting, 1));

    // Someone fixes the record in A: the new version is tried at once, and syncs.
    let mut fix = Map::new();
    fix.insert("Name".into(), json!("Deal fixed"));
    human_a
        .update("Opportunity", &[(id, fix)])
        .await
        .expect("edit in A")[0]
        .clone()
        .expect("edited");
    let cycle = run_cycle(&ab, &ba, &m, &a, &b, &store, &cancel).await;
    assert!(cycle.complete(), "{cycle:?}");
    assert_eq!(cycle.a_to_b.as_ref().map(|r| r.created).ok(), Some(1));
    assert!(store.failures(None).await.expect("failures").is_empty());
    let rows = b
        .query_collect("SELECT Id FROM Opportunity WHERE Name = 'Deal fixed'")
        .await
        .expect("query B");
    assert_eq!(rows.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_visible_late_behind_the_watermark_arrives_through_the_lookback() {
    let (sim_a, sim_b) = (start("A").await, start("B").await);
    let human_a = client(&sim_a, "human");
    let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
    let user_a = a.user_id().await.expect("login A");
    let (store, _dir) = file_store().await;
    let m = mapping();
    let ab = config(Direction::AToB, user_a, 1);
    let cancel = CancellationToken::new();

    human_a
        .create("Opportunity", &[opportunity("Early", 6000)])
        .await
        .expect("seed");
    let first = Pass::new(&ab, &m, &a, &b, &store, &Metrics::default())
        .run(&cancel)
        .await
        .expect("pass");
    assert_eq!(first.created, 1);

    // A long transaction commits a row stamped 10 s before the stored watermark.
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/clock", sim_a.base_url))
        .json(&json!({"offset_ms": -10_000}))
        .send()
        .await
        .expect("clock");
    assert!(reply.status().is_success());
    human_a
        .create("Opportunity", &[opportunity("Late", 7000)])
        .await
        .expect("late row");
    let second = Pass::new(&ab, &m, &a, &b, &store, &Metrics::default())
        .run(&cancel)
        .await
        .expect("pass");
    assert_eq!(second.created, 1, "{second:?}");
    // The overlap replay of "Early" cost nothing.
    assert_eq!(second.skipped, 1, "{second:?}");
}

/// The synced fields of every opportunity of an org, sorted by Name.
async fn synced_rows(client: &Client) -> Vec<Map<String, Value>> {
    let mut rows = client
        .query_collect("SELECT Name, StageName, CloseDate, Amount FROM Opportunity ORDER BY Name")
        .await
        .expect("query");
    for row in &mut rows {
        row.remove("attributes");
    }
    rows
}

/// DESIGN §2.1 on two simulated orgs: people create and edit opportunities in both orgs,
/// sometimes the same record on both sides between two cycles (conflicts); once they stop,
/// two cycles leave both orgs with the same records and equal synced values, each once.
/// 20 seeds (100 with `ORGSYNC_LONG_TESTS=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convergence_after_random_edits_by_people_in_both_orgs() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let seeds: u64 = if std::env::var_os("ORGSYNC_LONG_TESTS").is_some() {
        100
    } else {
        20
    };
    let stages = ["Prospecting", "Qualification", "Negotiation", "Closed Won"];
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut p = Pair::new().await;
        let humans = [client(&p.sim_a, "human"), client(&p.sim_b, "human")];
        let mut created = 0;
        for round in 0..5 {
            for op in 0..rng.random_range(1..12) {
                let org = rng.random_range(0..2usize);
                let human = &humans[org];
                if rng.random_range(0..3) == 0 || round == 0 {
                    let mut body = opportunity(
                        &format!("S{seed} R{round} O{op} in {}", ["A", "B"][org]),
                        rng.random_range(1..100_000),
                    );
                    body.insert(
                        "StageName".into(),
                        json!(stages[rng.random_range(0..stages.len())]),
                    );
                    let done = human.create("Opportunity", &[body]).await.expect("create");
                    assert!(done.iter().all(Result::is_ok), "{done:?}");
                    created += 1;
                } else {
                    let ids = human
                        .query_collect("SELECT Id FROM Opportunity")
                        .await
                        .expect("ids");
                    if ids.is_empty() {
                        continue;
                    }
                    let row = &ids[rng.random_range(0..ids.len())];
                    let id = row["Id"].as_str().expect("Id").to_string();
                    let mut change = Map::new();
                    if rng.random_bool(0.5) {
                        change.insert("Amount".into(), json!(rng.random_range(1..100_000)));
                    } else {
                        change.insert(
                            "StageName".into(),
                            json!(stages[rng.random_range(0..stages.len())]),
                        );
                    }
                    let done = human
                        .update("Opportunity", &[(id, change)])
                        .await
                        .expect("update");
                    assert!(done.iter().all(Result::is_ok), "{done:?}");
                }
            }
            p.cycle().await;
        }
        // people stop: within two cycles both orgs agree
        p.cycle().await;
        p.cycle().await;
        let rows_a = synced_rows(&p.a).await;
        let rows_b = synced_rows(&p.b).await;
        assert_eq!(rows_a.len(), created, "seed {seed}: records in A");
        assert_eq!(
            rows_a, rows_b,
            "seed {seed}: the orgs disagree after two quiet cycles"
        );
    }
}

/// Two orgs, both integration clients logged in, a store and the mapping.
struct Pair {
    sim_a: sfsim::SimOrg,
    sim_b: sfsim::SimOrg,
    a: Client,
    b: Client,
    user_a: String,
    user_b: String,
    store: Store,
    _dir: tempfile::TempDir,
    cycle: u64,
}

impl Pair {
    async fn new() -> Pair {
        let (sim_a, sim_b) = (start("A").await, start("B").await);
        let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
        let user_a = a.user_id().await.expect("login A");
        let user_b = b.user_id().await.expect("login B");
        let (store, dir) = file_store().await;
        Pair {
            sim_a,
            sim_b,
            a,
            b,
            user_a,
            user_b,
            store,
            _dir: dir,
            cycle: 0,
        }
    }

    async fn cycle(&mut self) {
        self.cycle += 1;
        let ab = config(Direction::AToB, self.user_a.clone(), self.cycle);
        let ba = config(Direction::BToA, self.user_b.clone(), self.cycle);
        let report = run_cycle(
            &ab,
            &ba,
            &mapping(),
            &self.a,
            &self.b,
            &self.store,
            &CancellationToken::new(),
        )
        .await;
        assert!(report.complete(), "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_duplicates_a_renamed_record_stays_linked_and_namesakes_stay_two() {
    let mut p = Pair::new().await;
    let human_a = client(&p.sim_a, "human");
    let made = human_a
        .create(
            "Opportunity",
            &[
                opportunity("Acme renewal", 9000),
                opportunity("Twin", 1000),
                opportunity("Twin", 2000),
            ],
        )
        .await
        .expect("create");
    let renewal = made[0].as_ref().expect("created").id.clone();
    p.cycle().await;
    let b_rows = synced_rows(&p.b).await;
    assert_eq!(
        b_rows.len(),
        3,
        "two records with one Name in A are two in B"
    );
    assert_eq!(
        b_rows.iter().filter(|r| r["Name"] == json!("Twin")).count(),
        2
    );

    let mut rename = Map::new();
    rename.insert("Name".into(), json!("Acme renewal 2027"));
    human_a
        .update("Opportunity", &[(renewal, rename)])
        .await
        .expect("rename");
    p.cycle().await;
    p.cycle().await;
    let b_rows = synced_rows(&p.b).await;
    assert_eq!(b_rows.len(), 3, "a rename creates no duplicate");
    assert!(
        b_rows
            .iter()
            .any(|r| r["Name"] == json!("Acme renewal 2027"))
    );
    assert!(!b_rows.iter().any(|r| r["Name"] == json!("Acme renewal")));
    assert_eq!(synced_rows(&p.a).await, b_rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_1000_records_written_in_one_call_all_arrive_with_page_size_200() {
    let mut p = Pair::new().await;
    // one seeding step = one timestamp for all 1,000 rows (a real org gives one timestamp per
    // call; the simulator's bulk seeding stands for a call larger than 200)
    let human = p.sim_a.human_username.clone();
    let rows: Vec<_> = (0..1000)
        .map(|i| opportunity(&format!("Tie {i:04}"), 6000 + i))
        .collect();
    p.sim_a
        .seed_records("Opportunity", Some(&human), rows)
        .expect("seed");
    p.cycle().await;
    let b_rows = synced_rows(&p.b).await;
    assert_eq!(b_rows.len(), 1000, "every tied row arrived");
    p.cycle().await;
    assert_eq!(synced_rows(&p.b).await.len(), 1000, "and none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_a_target_edited_after_the_source_is_not_overwritten() {
    let mut p = Pair::new().await;
    let (human_a, human_b) = (client(&p.sim_a, "human"), client(&p.sim_b, "human"));
    let made = human_a
        .create("Opportunity", &[opportunity("Contested", 1000)])
        .await
        .expect("create");
    let id_a = made[0].as_ref().expect("created").id.clone();
    p.cycle().await;
    let id_b = human_b
        .query_collect("SELECT Id FROM Opportunity WHERE Name = 'Contested'")
        .await
        .expect("query")[0]["Id"]
        .as_str()
        .expect("Id")
        .to_string();
    // A edits, then B edits the same field later: B is the last writer
    let mut change = Map::new();
    change.insert("Amount".into(), json!(2000));
    human_a
        .update("Opportunity", &[(id_a, change)])
        .await
        .expect("edit A");
    tokio::time::sleep(Duration::from_millis(5)).await; // distinct LastModifiedDate
    let mut change = Map::new();
    change.insert("Amount".into(), json!(3000));
    human_b
        .update("Opportunity", &[(id_b, change)])
        .await
        .expect("edit B");
    p.cycle().await;
    p.cycle().await;
    let (rows_a, rows_b) = (synced_rows(&p.a).await, synced_rows(&p.b).await);
    assert_eq!(rows_b[0]["Amount"], json!(3000.0), "B's later edit stands");
    assert_eq!(rows_a, rows_b, "and A converged to it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_by_a_date_field_looks_it_up_as_a_date() {
    // Salesforce rejects a quoted date (`CloseDate IN ('2026-06-30')`), as sfsim does.
    let p = Pair::new().await;
    let mut acme_june = opportunity("Acme", 7000);
    let mut acme_july = opportunity("Acme", 7000);
    acme_july.insert("CloseDate".into(), json!("2026-07-31"));
    let in_b = client(&p.sim_b, "human")
        .create("Opportunity", &[acme_june.clone(), acme_july])
        .await
        .expect("seed B");
    let june_b = in_b[0].as_ref().expect("created").id.clone();
    acme_june.insert("Amount".into(), json!(7000));
    client(&p.sim_a, "human")
        .create("Opportunity", &[acme_june])
        .await
        .expect("seed A");
    let cfg = PassConfig {
        match_by: vec!["Name".into(), "CloseDate".into()],
        ..config(Direction::AToB, p.user_a.clone(), 1)
    };
    let report = Pass::new(&cfg, &mapping(), &p.a, &p.b, &p.store, &Metrics::default())
        .run(&CancellationToken::new())
        .await
        .expect("the lookup by Name and CloseDate runs");
    assert_eq!(
        (
            report.linked + report.updated,
            report.created,
            report.failed
        ),
        (1, 0, 0),
        "{report:?}"
    );
    let links = p
        .store
        .links_by_b_ids("Opportunity", std::slice::from_ref(&june_b))
        .await
        .expect("links");
    assert_eq!(links.len(), 1, "linked to the record of the same date");
}
