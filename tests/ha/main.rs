//! Replicas end to end (issue 15, README "Replicas"): two `orgsync run` processes on one
//! PostgreSQL pair and two in-process sfsim orgs, `ha.lease_ttl = "3s"`. The leader is
//! killed (`kill -9`) or paused (`SIGSTOP` past the TTL) mid-sync; the standby takes over and
//! finishes; nothing is lost or duplicated, and nothing the old leader does after it lost the
//! lease reaches the store.
//!
//! Each test is named `<what>::postgres`, so `scripts/test` counts it among the PostgreSQL
//! runs; without `ORGSYNC_TEST_PG_URL` it is skipped (a failure with
//! `ORGSYNC_TEST_PG_REQUIRED=1`). Waits are on observable state (log lines, records, the
//! store); their deadlines only turn a hang into a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_orgsync");
const SECRET_A: &str = "secret-of-a";
const SECRET_B: &str = "secret-of-b";
/// Turns a hang into a failure; never a speed claim.
const HANG: Duration = Duration::from_secs(180);

struct World {
    a: sfsim::SimOrg,
    b: sfsim::SimOrg,
    dir: tempfile::TempDir,
}

/// One `orgsync run` replica: its process, its log and its HTTP port.
struct Replica {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Drop for Replica {
    fn drop(&mut self) {
        // A failed assertion must not leave processes behind (a stopped one is continued
        // first, or SIGKILL would still end it; this is for clarity).
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < HANG,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }
}

impl World {
    /// Two orgs and a configuration on a fresh pair of the test PostgreSQL; `None` to skip.
    async fn new(policy: &str) -> Option<World> {
        let url = orgsync::store::testing::pg_url()?;
        let pair = orgsync::store::testing::fresh_pair_name();
        let a = sfsim::start_org(sfsim::OrgConfig::named("A"), "127.0.0.1:0")
            .await
            .expect("org A starts");
        let b = sfsim::start_org(sfsim::OrgConfig::named("B"), "127.0.0.1:0")
            .await
            .expect("org B starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let repo_default = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        std::fs::copy(repo_default, dir.path().join("default.toml")).expect("copy default.toml");
        let test_toml = format!(
            r#"
[http]
bind = "127.0.0.1"

[scheduler]
frequency = "200ms"
safety_frequency = "1h"

[trigger]
policy = "{policy}"

[watermark]
default = "2000-01-01T00:00:00.000Z"

[state]
url = {url}
pair_name = "{pair}"

[ha]
lease_ttl = "3s"

[log]
format = "json"

[orgs.a]
login_url = "{a}"
username = "integration@a.sim"

[orgs.b]
login_url = "{b}"
username = "integration@b.sim"
"#,
            url = json!(url),
            a = a.base_url,
            b = b.base_url,
        );
        std::fs::write(dir.path().join("test.toml"), test_toml).expect("write test.toml");
        Some(World { a, b, dir })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ORGSYNC__ORGS__A__PASSWORD", "password")
            .env("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token")
            .env("ORGSYNC__ORGS__A__OUTBOUND_SECRET", SECRET_A)
            .env("ORGSYNC__ORGS__B__PASSWORD", "password")
            .env("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token")
            .env("ORGSYNC__ORGS__B__OUTBOUND_SECRET", SECRET_B)
            .arg("--config-dir")
            .arg(self.dir.path())
            .arg("--env")
            .arg("test")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts replica `name` (its host name, as `status` shows it) on a free port.
    fn replica(&self, name: &str) -> Replica {
        let port = free_port();
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = self
            .command(&["run"])
            .env("HOSTNAME", name)
            .env("ORGSYNC__HTTP__PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("orgsync run starts");
        Replica { child, log, port }
    }

    /// Two replicas, `r1` the leader (started first), `r2` a standby that has seen it.
    fn two_replicas(&self) -> (Replica, Replica) {
        let r1 = self.replica("r1");
        r1.wait_log("took the sync lease: leader");
        r1.wait_log("orgsync listening");
        let r2 = self.replica("r2");
        r2.wait_log("orgsync listening");
        (r1, r2)
    }

    fn status(&self) -> Value {
        let out = self
            .command(&["status", "--json"])
            .output()
            .expect("status");
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status prints JSON")
    }

    fn links(&self) -> Value {
        self.status()["links"]["total"].clone()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn opportunity(name: &str, amount: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "Name": name,
        "StageName": "Prospecting",
        "CloseDate": "2026-12-31",
        "Amount": amount,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// Seeds `count` opportunities `{prefix} {i}` in `org` as its human user.
fn seed(org: &sfsim::SimOrg, prefix: &str, count: usize) {
    let human = org.human_username.clone();
    let records: Vec<_> = (0..count)
        .map(|i| opportunity(&format!("{prefix} {i:05}"), 6_000 + i as i64))
        .collect();
    for chunk in records.chunks(200) {
        org.seed_records("Opportunity", Some(&human), chunk.to_vec())
            .expect("seeding");
    }
}

/// (Id, Name) of every live opportunity of `org`.
fn ids_and_names(org: &sfsim::SimOrg) -> Vec<(String, String)> {
    org.db()
        .query(
            "SELECT Id, Name FROM Opportunity ORDER BY Name",
            false,
            "62.0",
            Utc::now(),
        )
        .expect("query")
        .into_iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("Id"), s("Name"))
        })
        .collect()
}

/// The names in `org`, and how many of them are there more than once.
fn names_and_duplicates(org: &sfsim::SimOrg) -> (Vec<String>, usize) {
    let names: Vec<String> = ids_and_names(org).into_iter().map(|(_, n)| n).collect();
    let mut unique = names.clone();
    unique.dedup();
    let duplicates = names.len() - unique.len();
    (unique, duplicates)
}

fn set_faults(org: &sfsim::SimOrg, faults: Value) {
    let Value::Object(map) = faults else {
        panic!("faults must be an object")
    };
    org.set_faults(map).expect("faults accepted");
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// B holds exactly `expected` records, each once, and the store one link per pair; still so
/// a few cycles later (a late duplicate would show).
fn assert_synced_once(world: &World, expected: usize) {
    eventually("B holds every record and the store links each", || {
        ids_and_names(&world.b).len() >= expected && world.links() == json!(expected)
    });
    std::thread::sleep(Duration::from_secs(2));
    let (names, duplicates) = names_and_duplicates(&world.b);
    assert_eq!(duplicates, 0, "duplicates in B");
    assert_eq!(names.len(), expected, "records in B");
    assert_eq!(
        ids_and_names(&world.a).len(),
        expected,
        "nothing came back to A"
    );
    assert_eq!(world.links(), json!(expected), "one link per pair");
}

mod kill_9_of_the_leader_mid_sync {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(world) = World::new("poll").await else {
            return;
        };
        set_faults(&world.b, json!({ "latency_ms": 20 }));
        seed(&world.a, "Fail over", 5_000);
        tokio::task::block_in_place(|| {
            let (mut r1, r2) = world.two_replicas();
            // The leader is syncing: some records reached B, not all.
            eventually("the leader wrote to B", || {
                !ids_and_names(&world.b).is_empty()
            });
            // The standby idles: it synced nothing while the leader led.
            assert!(
                !r2.log().contains("record written to the target"),
                "the standby wrote:\n{}",
                r2.log()
            );
            r1.child.kill().expect("SIGKILL");
            let _ = r1.child.wait();
            let written_by_r1 = ids_and_names(&world.b).len();
            assert!(written_by_r1 < 5_000, "killed mid-sync");
            r2.wait_log("took the sync lease: leader");
            // The new leader marks the cycle the dead one left running as interrupted.
            r2.wait_log("found cycles left running");
            assert_synced_once(&world, 5_000);
            let ha = &world.status()["ha"];
            assert_eq!(ha["leader"]["host"], json!("r2"), "{ha}");
            assert_eq!(ha["leader"]["epoch"], json!(2), "{ha}");
        });
    }
}

mod sigstop_of_the_leader_past_the_ttl {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(world) = World::new("poll").await else {
            return;
        };
        // Slow writes to B: the leader is nearly always waiting on one when it is paused, so
        // its page is in flight and its commit pending.
        set_faults(&world.b, json!({ "latency_ms": 400 }));
        seed(&world.a, "Paused", 2_000);
        tokio::task::block_in_place(|| {
            let (r1, r2) = world.two_replicas();
            eventually("the leader wrote to B", || {
                !ids_and_names(&world.b).is_empty()
            });
            r1.signal("STOP");
            r2.wait_log("took the sync lease: leader");
            set_faults(&world.b, json!({ "latency_ms": 0 }));
            assert_synced_once(&world, 2_000);
            let before = world.status();

            r1.signal("CONT");
            // Its pending commit is refused (by its fence, or, when it was paused inside the
            // page's transaction, by PostgreSQL, which ended that idle session so that the
            // take-over did not wait on its write lock), and it logs that it lost the lease.
            r1.wait_log("lost the sync lease");

            // A few of the old leader's rounds later, the store is what the new leader wrote.
            std::thread::sleep(Duration::from_secs(3));
            let after = world.status();
            assert_eq!(after["watermarks"], before["watermarks"]);
            assert_eq!(after["links"], before["links"]);
            assert_eq!(after["ha"]["leader"]["host"], json!("r2"), "{after}");
            let (names, duplicates) = names_and_duplicates(&world.b);
            assert_eq!((names.len(), duplicates), (2_000, 0), "records in B");
            drop(r2);
        });
    }
}

/// `GET path` of a replica: the status code and the body.
async fn get(client: &reqwest::Client, port: u16, path: &str) -> (u16, String) {
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .expect("the replica answers");
    let code = response.status().as_u16();
    (code, response.text().await.unwrap_or_default())
}

async fn role(client: &reqwest::Client, port: u16) -> Value {
    let (code, body) = get(client, port, "/status").await;
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("/status is JSON");
    status["ha"]["role"].clone()
}

/// Posts one notification of `record_id` (org A) to a replica; whether it was acked.
async fn post(
    client: &reqwest::Client,
    port: u16,
    org_id: &str,
    n: usize,
    record_id: &str,
) -> bool {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>{org_id}</OrganizationId><ActionId>04k000000000001AAA</ActionId>
<SessionId xsi:nil="true"/>
<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/{org_id}</EnterpriseUrl>
<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/{org_id}</PartnerUrl>
<Notification><Id>04l{n:012}AAA</Id>
<sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Opportunity">
<sf:Id>{record_id}</sf:Id></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#
    );
    let url = format!("http://127.0.0.1:{port}/outbound/a?secret={SECRET_A}");
    match client
        .post(url)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
    {
        Ok(response) => {
            let text = response.text().await.unwrap_or_default();
            let acked = text.contains("<Ack>true</Ack>");
            if !acked {
                eprintln!("not acked by :{port}: {text}");
            }
            acked
        }
        Err(e) => {
            eprintln!("not acked by :{port}: {e}");
            false
        }
    }
}

mod outbound_messages_to_both_replicas_while_the_leader_dies {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(world) = World::new("push").await else {
            return;
        };
        const N: usize = 300;
        seed(&world.a, "Pushed", N);
        let records = ids_and_names(&world.a);
        let (mut r1, r2) = tokio::task::block_in_place(|| world.two_replicas());
        let client = reqwest::Client::new();
        // Each says its role; the standby is ready too, and its metrics say it does not lead.
        assert_eq!(role(&client, r1.port).await, json!("leader"));
        assert_eq!(role(&client, r2.port).await, json!("standby"));
        let (ready, body) = get(&client, r2.port, "/readyz").await;
        assert_eq!(ready, 200, "a standby is ready: {body}");
        let (_, metrics) = get(&client, r2.port, "/metrics").await;
        assert!(metrics.contains("\norgsync_ha_leader 0\n"), "{metrics}");
        let (_, metrics) = get(&client, r1.port, "/metrics").await;
        assert!(metrics.contains("\norgsync_ha_leader 1\n"), "{metrics}");
        assert!(
            metrics.contains("\norgsync_ha_lease_changes_total 1\n"),
            "{metrics}"
        );
        let mut acked = Vec::new();
        for (n, (id, name)) in records.iter().enumerate() {
            if n == N / 2 {
                // The leader dies with notifications acked and not yet synced.
                r1.child.kill().expect("SIGKILL");
                let _ = r1.child.wait();
            }
            let first = if n % 2 == 0 { r1.port } else { r2.port };
            // A message that was not acked is sent again (as Salesforce retries), to the other.
            if post(&client, first, &world.a.org_id, n, id).await
                || post(&client, r2.port, &world.a.org_id, n, id).await
            {
                acked.push(name.clone());
            }
        }
        assert_eq!(acked.len(), N, "every message was acked by one replica");
        tokio::task::block_in_place(|| {
            r2.wait_log("took the sync lease: leader");
            assert_synced_once(&world, N);
            let (names, _) = names_and_duplicates(&world.b);
            let mut acked = acked.clone();
            acked.sort();
            assert_eq!(
                names, acked,
                "each acked notification's record is in B once"
            );
            assert_eq!(world.status()["inbox"]["pending"], json!(0));
        });
        assert_eq!(role(&client, r2.port).await, json!("leader"));
        let status = tokio::task::block_in_place(|| world.status());
        assert_eq!(status["ha"]["leader"]["host"], json!("r2"), "{status}");
    }
}

mod sync_once_beside_a_leading_daemon {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(world) = World::new("poll").await else {
            return;
        };
        tokio::task::block_in_place(|| {
            let r1 = world.replica("r1");
            r1.wait_log("took the sync lease: leader");
            let out = world
                .command(&["sync", "--once"])
                .output()
                .expect("sync runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{stderr}");
            assert!(
                stderr.contains("another replica holds the sync lease (r1 pid"),
                "{stderr}"
            );
            // The leader keeps its lease (same epoch); the refused `sync` was seen, as a
            // standby (for three TTLs).
            let status = world.status();
            assert_eq!(status["ha"]["leader"]["host"], json!("r1"), "{status}");
            assert_eq!(status["ha"]["leader"]["epoch"], json!(1), "{status}");
            assert_eq!(
                status["ha"]["standbys"].as_array().map(Vec::len),
                Some(1),
                "{status}"
            );
        });
    }
}
