//! The push trigger end to end, in process: two sfsim orgs, the daemon's listener on a free
//! port, and sfsim's Outbound Messaging pointed at it (or messages posted by hand when a test
//! needs to control order, duplicates and malformed input).
//!
//! Waits are on observable state (sfsim's delivery counters, the target org's records), never
//! on wall-clock limits; the deadline in `eventually` only turns a hang into a failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orgsync::config::{self, Settings};
use orgsync::daemon::Daemon;
use orgsync::server;
use orgsync::store::{NewNotification, Org, Store};
use serde_json::{Map, Value, json};
use sqlx::Row as _;
use tokio_util::sync::CancellationToken;

mod drain;
mod prometheus;
mod validation;

use prometheus::parse_prometheus;

const SECRET_A: &str = "secret-of-a+/=";
const SECRET_B: &str = "secret-of-b";

struct World {
    a: sfsim::SimOrg,
    b: sfsim::SimOrg,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let a = sfsim::start_org(sfsim::OrgConfig::named("A"), "127.0.0.1:0")
            .await
            .expect("org A starts");
        let b = sfsim::start_org(sfsim::OrgConfig::named("B"), "127.0.0.1:0")
            .await
            .expect("org B starts");
        let dir = tempfile::tempdir().expect("temp dir");
        World { a, b, dir }
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    fn settings(&self, policy: &str) -> Settings {
        let toml = format!(
            "[http]\nport = 0\n\
             [scheduler]\nfrequency = \"1h\"\nsafety_frequency = \"1h\"\n\
             [trigger]\npolicy = \"{policy}\"\n\
             [watermark]\ndefault = \"2000-01-01T00:00:00.000Z\"\n\
             [state]\nurl = {state}\n\
             [orgs.a]\nlogin_url = {a}\nusername = \"integration@a.sim\"\n\
             [orgs.b]\nlogin_url = {b}\nusername = \"integration@b.sim\"\n",
            state = json!(format!("sqlite://{}", self.db_path().display())),
            a = json!(self.a.base_url),
            b = json!(self.b.base_url),
        );
        let vars: HashMap<String, String> = [
            ("ORGSYNC__ORGS__A__PASSWORD", "password"),
            ("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token"),
            ("ORGSYNC__ORGS__A__OUTBOUND_SECRET", SECRET_A),
            ("ORGSYNC__ORGS__B__PASSWORD", "password"),
            ("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token"),
            ("ORGSYNC__ORGS__B__OUTBOUND_SECRET", SECRET_B),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        config::load_str("test", &[("test", &toml)], &vars).expect("test settings load")
    }

    /// Starts the daemon's listener and worker.
    async fn start(&self, policy: &str) -> Listener {
        let settings = self.settings(policy);
        let daemon = Arc::new(Daemon::new(&settings).await.expect("daemon builds"));
        daemon.recover().await.expect("recover");
        let cancel = CancellationToken::new();
        let running = server::start(
            daemon,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            cancel.clone(),
        )
        .await
        .expect("listener starts");
        Listener {
            addr: running.addr,
            running: Some(running),
            cancel,
            http: reqwest::Client::new(),
        }
    }

    /// Points org A's outbound message for Opportunity at the listener.
    fn point_a_at(&self, listener: &Listener, query: &str) {
        self.a.set_outbound(sfsim::outbound::OutboundConfig {
            endpoint_url: Some(format!("http://{}/outbound/a?{query}", listener.addr)),
            object: "Opportunity".into(),
            fields: vec!["Name".into()],
            enabled: true,
            retry_base_delay_ms: 20,
            retry_max_delay_ms: 200,
            give_up_after_ms: 60_000,
            duplicate_rate: 0.0,
        });
    }

    /// Creates an opportunity in `sim` as its human user; returns its id.
    fn create_as_human(&self, sim: &sfsim::SimOrg, name: &str, amount: f64) -> String {
        let mut record = Map::new();
        record.insert("Name".into(), json!(name));
        record.insert("StageName".into(), json!("Prospecting"));
        record.insert("CloseDate".into(), json!("2026-12-31"));
        record.insert("Amount".into(), json!(amount));
        let created = sim
            .seed_records("Opportunity", Some(&sim.human_username), vec![record])
            .expect("seed");
        created[0]["id"]
            .as_str()
            .or_else(|| created[0]["Id"].as_str())
            .unwrap_or_else(|| panic!("seed answer without id: {created:?}"))
            .to_string()
    }
}

/// Rows of an org's opportunities named `name`.
fn named(sim: &sfsim::SimOrg, name: &str) -> Vec<Value> {
    sim.db()
        .query(
            "SELECT Id, Name, Amount, StageName FROM Opportunity",
            false,
            "62.0",
            chrono::Utc::now(),
        )
        .expect("query")
        .into_iter()
        .filter(|r| r["Name"] == json!(name))
        .collect()
}

/// Polls `check` until it holds; panics after a generous deadline (a hang, not a timing test).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

struct Listener {
    addr: SocketAddr,
    running: Option<server::Running>,
    cancel: CancellationToken,
    http: reqwest::Client,
}

impl Listener {
    async fn post(&self, path_and_query: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let response = self
            .http
            .post(format!("http://{}{path_and_query}", self.addr))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"\"")
            .body(body)
            .send()
            .await
            .expect("the listener answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .expect("the listener answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// GETs `path` until `ready` holds for the body (up to 10 s); returns the last body.
    async fn get_until(&self, path: &str, mut ready: impl FnMut(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..500 {
            let (code, text) = self.get(path).await;
            assert_eq!(code, 200, "{path}: {text}");
            last = text;
            if ready(&last) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        last
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await.expect("clean stop");
        }
    }
}

/// A notifications envelope as Salesforce sends it.
fn envelope(org_id: &str, notifications: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (notification_id, record_id) in notifications {
        body.push_str(&format!(
            "<Notification><Id>{notification_id}</Id>\
             <sObject xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\" xsi:type=\"sf:Opportunity\">\
             <sf:Id>{record_id}</sf:Id><sf:Name>stale value</sf:Name></sObject></Notification>"
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>{org_id}</OrganizationId><ActionId>04k000000000001AAA</ActionId>
<SessionId xsi:nil="true"/>
<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/{org_id}</EnterpriseUrl>
<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/{org_id}</PartnerUrl>
{body}</notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

fn is_ack(text: &str) -> bool {
    text.contains("<Ack>true</Ack>") && !text.contains("Fault")
}

fn is_fault(text: &str) -> bool {
    text.contains("<soapenv:Fault>") && !text.contains("<Ack>")
}

fn secret_a() -> String {
    url::form_urlencoded::byte_serialize(SECRET_A.as_bytes()).collect()
}

/// How many inbox rows (processed or not) hold `notification_id`, read straight from the file.
async fn inbox_rows(db: &std::path::Path, notification_id: &str) -> i64 {
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the state db");
    let row = sqlx::query("SELECT count(*) AS n FROM inbox WHERE notification_id = ?")
        .bind(notification_id)
        .fetch_one(&pool)
        .await
        .expect("count inbox rows");
    let n: i64 = row.try_get("n").expect("n");
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_a_human_in_a_reaches_b_through_outbound_messaging_with_polling_off() {
    let world = World::new().await;
    let listener = world.start("push").await;
    world.point_a_at(&listener, &format!("secret={}", secret_a()));

    world.create_as_human(&world.a, "Pushed deal", 12_000.0);
    let stats = world.a.wait_outbound(|s| s.messages_acked >= 1).await;
    assert_eq!(
        stats.messages_failed, 0,
        "every message was acked: {stats:?}"
    );
    eventually("the deal reaches B", || {
        named(&world.b, "Pushed deal").len() == 1
    })
    .await;
    let b = named(&world.b, "Pushed deal");
    assert_eq!(b[0]["Amount"], json!(12000.0));

    // push, not poll: nothing ever queried A by watermark (the drain fetches by Id). The
    // notification is marked processed in the page's commit, a moment after the write.
    let pending = |text: &str| -> Value {
        let status: Value = serde_json::from_str(text).expect("/status is JSON");
        status["inbox"]["pending"].clone()
    };
    let text = listener
        .get_until("/status", |t| pending(t) == json!(0))
        .await;
    let status: Value = serde_json::from_str(&text).expect("/status is JSON");
    assert_eq!(status["inbox"]["pending"], json!(0), "{status}");
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_messages_create_no_duplicates_or_regressions() {
    let world = World::new().await;
    let listener = world.start("push").await;
    let org_a = world.a.org_id.clone();
    let id = world.create_as_human(&world.a, "Reordered deal", 10_000.0);
    let path = format!("/outbound/a?secret={}", secret_a());

    // The first version's message arrives and is processed.
    let (code, text) = listener
        .post(&path, envelope(&org_a, &[("04l000000000001AAA", &id)]))
        .await;
    assert_eq!(code, 200, "{text}");
    assert!(is_ack(&text), "{text}");
    eventually("v1 reaches B", || {
        named(&world.b, "Reordered deal").len() == 1
    })
    .await;

    // The human edits the deal; the newer message arrives, then the older one again (a
    // redelivery, out of order), then the newer one twice more.
    let human = {
        let mut org = world.settings("push").a.clone();
        org.username = world.a.human_username.clone();
        orgsync::salesforce::Client::new(&org).expect("human client")
    };
    let mut fields = Map::new();
    fields.insert("Amount".into(), json!(20_000.0));
    fields.insert("StageName".into(), json!("Closed Won"));
    let results = human
        .update("Opportunity", &[(id.clone(), fields)])
        .await
        .expect("the human's update");
    assert!(results.iter().all(|r| r.is_ok()));
    for notification in [
        "04l000000000002AAA",
        "04l000000000001AAA",
        "04l000000000002AAA",
        "04l000000000002AAA",
    ] {
        let (code, text) = listener
            .post(&path, envelope(&org_a, &[(notification, &id)]))
            .await;
        assert_eq!(code, 200, "{text}");
        assert!(is_ack(&text), "{text}");
        assert_eq!(
            inbox_rows(&world.db_path(), notification).await,
            1,
            "one inbox row per notification id"
        );
    }
    eventually("v2 reaches B", || {
        named(&world.b, "Reordered deal")
            .first()
            .is_some_and(|r| r["Amount"] == json!(20000.0))
    })
    .await;
    // Let the worker finish whatever the redeliveries woke it for, then look again.
    let store = Store::open(&format!("sqlite://{}", world.db_path().display()))
        .await
        .expect("store");
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
    assert!(drained, "the inbox is drained");
    let b = named(&world.b, "Reordered deal");
    assert_eq!(b.len(), 1, "no duplicate in B: {b:?}");
    assert_eq!(b[0]["Amount"], json!(20000.0), "no regression to v1");
    assert_eq!(b[0]["StageName"], json!("Closed Won"));
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_a_fault_and_the_server_keeps_serving() {
    let world = World::new().await;
    let listener = world.start("push").await;
    let org_a = world.a.org_id.clone();
    let org_b = world.b.org_id.clone();
    let good = |n: &str| envelope(&org_a, &[(n, "006000000000001AAA")]);
    let path = format!("/outbound/a?secret={}", secret_a());

    let cases: Vec<(&str, String, String)> = vec![
        (
            "wrong org id",
            path.clone(),
            envelope(&org_b, &[("04l0000000000w1AAA", "006000000000001AAA")]),
        ),
        (
            "bad secret",
            "/outbound/a?secret=guess".into(),
            good("04l0000000000w2AAA"),
        ),
        (
            "no secret",
            "/outbound/a".into(),
            good("04l0000000000w3AAA"),
        ),
        (
            "B's secret for A",
            format!("/outbound/a?secret={SECRET_B}"),
            good("04l0000000000w4AAA"),
        ),
        (
            "unknown source",
            format!("/outbound/c?secret={}", secret_a()),
            good("04l0000000000w5AAA"),
        ),
        (
            "template route, no source",
            format!("/?secret={}", secret_a()),
            good("04l0000000000w6AAA"),
        ),
        ("garbage XML", path.clone(), "<<<not xml at all & <".into()),
        (
            "not a notification",
            path.clone(),
            "<?xml version=\"1.0\"?><a><b/></a>".into(),
        ),
    ];
    for (what, path, body) in cases {
        let (code, text) = listener.post(&path, body).await;
        assert_eq!(code, 500, "{what}: {text}");
        assert!(is_fault(&text), "{what}: {text}");
    }
    // The 15-character form of the org's own id is accepted (the check compares 15 chars).
    let (code, text) = listener
        .post(
            &path,
            envelope(
                &org_a[..15],
                &[("04l0000000000w7AAA", "006000000000001AAA")],
            ),
        )
        .await;
    assert_eq!(code, 200, "{text}");

    // 20 MB: refused (the body limit is 5 MB), whether or not the sender got to send it all.
    let big = format!(
        "{}{}",
        good("04l0000000000w8AAA"),
        " ".repeat(20 * 1024 * 1024)
    );
    match listener
        .http
        .post(format!("http://{}{path}", listener.addr))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(big)
        .send()
        .await
    {
        Ok(response) => {
            assert_eq!(response.status().as_u16(), 500);
            let text = response.text().await.expect("body");
            assert!(is_fault(&text), "{text}");
        }
        Err(e) => {
            // the server answered and closed before the client finished sending
            assert!(!e.is_timeout(), "{e}");
        }
    }
    assert_eq!(inbox_rows(&world.db_path(), "04l0000000000w8AAA").await, 0);
    for n in [
        "04l0000000000w1AAA",
        "04l0000000000w2AAA",
        "04l0000000000w5AAA",
    ] {
        assert_eq!(
            inbox_rows(&world.db_path(), n).await,
            0,
            "{n} was not stored"
        );
    }

    // Still serving: health, and a good message through the template's route.
    assert_eq!(listener.get("/healthz").await.0, 200);
    let (code, text) = listener
        .post(
            &format!("/?source=A&secret={}", secret_a()),
            good("04l0000000000w9AAA"),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    assert!(is_ack(&text), "{text}");
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_row_is_committed_before_the_ack() {
    let world = World::new().await;
    let listener = world.start("push").await;
    world.point_a_at(&listener, &format!("secret={}", secret_a()));
    // Hold the worker off B: its writes would not matter here, the check is on the inbox.
    let id = world.create_as_human(&world.a, "Acked deal", 9_000.0);
    world.a.wait_outbound(|s| s.messages_acked >= 1).await;
    // sfsim counted the Ack; the row must already be in the file.
    let url = format!("sqlite://{}", world.db_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    let rows = sqlx::query("SELECT record_id FROM inbox WHERE org = 'a'")
        .fetch_all(&pool)
        .await
        .expect("inbox");
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>("record_id").expect("record_id"))
        .collect();
    assert!(
        ids.iter().any(|r| r[..15] == id[..15]),
        "inbox {ids:?} holds {id}"
    );
    pool.close().await;

    // And by hand: the moment the Ack is read, the row is there.
    let (code, text) = listener
        .post(
            &format!("/outbound/a?secret={}", secret_a()),
            envelope(&world.a.org_id, &[("04l00000000ack1AAA", &id)]),
        )
        .await;
    assert!(code == 200 && is_ack(&text), "{text}");
    assert_eq!(inbox_rows(&world.db_path(), "04l00000000ack1AAA").await, 1);
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_rows_left_by_a_crash_are_finished_after_restart() {
    let world = World::new().await;
    let id = world.create_as_human(&world.a, "Left behind", 15_000.0);
    {
        // A previous process stored and acked the notification, then died before draining.
        let store = Store::open(&format!("sqlite://{}", world.db_path().display()))
            .await
            .expect("store");
        let new = store
            .insert_notifications(&[NewNotification {
                org: Org::A,
                notification_id: "04l00000000crs1AAA".into(),
                object: "Opportunity".into(),
                record_id: id.clone(),
            }])
            .await
            .expect("insert");
        assert_eq!(new, 1);
        store.close().await;
    }
    assert!(named(&world.b, "Left behind").is_empty());
    let listener = world.start("push").await;
    eventually("the leftover reaches B", || {
        named(&world.b, "Left behind").len() == 1
    })
    .await;
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_polls_at_start_and_the_http_endpoints_answer() {
    let world = World::new().await;
    // Outbound Messaging is not configured: only the safety poll can bring this one over.
    world.create_as_human(&world.a, "Polled deal", 11_000.0);
    let listener = world.start("hybrid").await;
    eventually("the safety poll brings the deal to B", || {
        named(&world.b, "Polled deal").len() == 1
    })
    .await;

    assert_eq!(listener.get("/healthz").await.0, 200);
    let (code, text) = listener.get("/readyz").await;
    assert_eq!(code, 200, "{text}");
    let (code, text) = listener.get("/status").await;
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&text).expect("/status is JSON");
    assert!(status["last_cycles"].is_object(), "{status}");

    // The poll's counts reach the metrics when its cycle ends (both directions, then
    // housekeeping), a moment after the deal reached B.
    let synced = "orgsync_records_synced_total{direction=\"a_to_b\"}";
    let text = listener
        .get_until("/metrics", |t| parse_prometheus(t)[synced] >= 1.0)
        .await;
    let samples = parse_prometheus(&text);
    assert!(
        samples["orgsync_records_synced_total{direction=\"a_to_b\"}"] >= 1.0,
        "{text}"
    );
    assert!(
        samples.contains_key("orgsync_inbox_pending{org=\"a\"}"),
        "{text}"
    );
    assert!(
        samples
            .keys()
            .any(|k| k.starts_with("orgsync_api_calls_total{org=\"a\"")),
        "{text}"
    );
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_writes_echoed_back_by_outbound_messaging_are_skipped() {
    let world = World::new().await;
    let listener = world.start("push").await;
    world.point_a_at(&listener, &format!("secret={}", secret_a()));
    // B's outbound message fires for orgsync's own writes too (as a real Flow would unless its
    // entry condition excludes the integration user); those must not travel back to A.
    world.b.set_outbound(sfsim::outbound::OutboundConfig {
        endpoint_url: Some(format!(
            "http://{}/outbound/b?secret={SECRET_B}",
            listener.addr
        )),
        object: "Opportunity".into(),
        fields: vec!["Name".into()],
        enabled: true,
        retry_base_delay_ms: 20,
        retry_max_delay_ms: 200,
        give_up_after_ms: 60_000,
        duplicate_rate: 0.0,
    });
    world.create_as_human(&world.a, "Echoed deal", 13_000.0);
    eventually("the deal reaches B", || {
        named(&world.b, "Echoed deal").len() == 1
    })
    .await;
    // B announces orgsync's create; the listener acks it and the worker drains it.
    world.b.wait_outbound(|s| s.messages_acked >= 1).await;
    let store = Store::open(&format!("sqlite://{}", world.db_path().display()))
        .await
        .expect("store");
    let mut drained = false;
    for _ in 0..3000 {
        if store
            .pending_notifications(Org::B, 10)
            .await
            .expect("inbox")
            .is_empty()
        {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(drained, "B's inbox is drained");
    let a = named(&world.a, "Echoed deal");
    assert_eq!(a.len(), 1, "no copy back in A: {a:?}");
    let a_stats = world.a.outbound_stats();
    assert_eq!(
        a_stats.notifications_queued, 1,
        "A was not written again (only the human's create was announced): {a_stats:?}"
    );
    listener.stop().await;
}

/// `orgsync run` with `trigger.policy = "push"`: the binary serves, answers /healthz, and
/// exits 0 on SIGTERM; without an outbound secret it refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_push_mode_and_stops_on_sigterm() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let world = World::new().await;
    let dir = world.dir.path();
    let repo_default = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    std::fs::copy(repo_default, dir.join("default.toml")).expect("copy default.toml");
    let toml = format!(
        "[http]\nport = 0\n[trigger]\npolicy = \"push\"\n[log]\nformat = \"json\"\n\
         [state]\nurl = {state}\n\
         [orgs.a]\nlogin_url = {a}\nusername = \"integration@a.sim\"\n\
         [orgs.b]\nlogin_url = {b}\nusername = \"integration@b.sim\"\n",
        state = json!(format!("sqlite://{}", world.db_path().display())),
        a = json!(world.a.base_url),
        b = json!(world.b.base_url),
    );
    std::fs::write(dir.join("test.toml"), toml).expect("write test.toml");
    let command = |secrets: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgsync"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ORGSYNC__ORGS__A__PASSWORD", "password")
            .env("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token")
            .env("ORGSYNC__ORGS__B__PASSWORD", "password")
            .env("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token")
            .args(["--config-dir"])
            .arg(dir)
            .args(["--env", "test", "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if secrets {
            cmd.env("ORGSYNC__ORGS__A__OUTBOUND_SECRET", SECRET_A)
                .env("ORGSYNC__ORGS__B__OUTBOUND_SECRET", SECRET_B);
        }
        cmd
    };

    let refused = command(false).output().expect("orgsync runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("outbound_secret"), "{stderr}");

    let mut child = command(true).spawn().expect("orgsync run starts");
    let stderr = child.stderr.take().expect("stderr");
    // The reader keeps draining stderr after the address line: a closed pipe would make the
    // daemon's log writes fail.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening for outbound messages")
                && let Some(tx) = tx.take()
            {
                let value: Value = serde_json::from_str(&line).expect("JSON log line");
                let addr = value["fields"]["addr"]
                    .as_str()
                    .or_else(|| value["addr"].as_str())
                    .unwrap_or_else(|| panic!("no addr in {line}"))
                    .to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = tokio::task::spawn_blocking(move || rx.recv())
        .await
        .expect("waiter")
        .expect("orgsync logs its address");
    let port = addr.rsplit(':').next().expect("port");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("healthz answers");
    assert_eq!(health.status().as_u16(), 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("waiter")
        .expect("orgsync exits");
    assert!(status.success(), "exit status {status:?}");
    reader.join().expect("stderr reader");
}
