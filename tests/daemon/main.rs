//! The `orgsync` binary end to end against two in-process sfsim orgs: `sync --once`, the
//! failure queue commands, SIGTERM during a cycle, and kill -9 at random instants (DESIGN §2.4:
//! no loss, no duplicate).
//!
//! The simulated orgs live in this test process, so killing orgsync never kills them.
//! `ORGSYNC_LONG_TESTS=1` runs 100 kill -9 rounds instead of 10.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_orgsync");

mod bulk;
mod deletes;
mod links;
mod reconcile;
mod reconcile_background;
mod shell;
mod state;
mod undeletes;

/// Two simulated orgs and a configuration folder pointing orgsync at them.
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
        let repo_default = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        std::fs::copy(repo_default, dir.path().join("default.toml")).expect("copy default.toml");
        let state = dir.path().join("state.db");
        let test_toml = format!(
            r#"
[http]
bind = "127.0.0.1"
port = 0

[scheduler]
frequency = "200ms"

[watermark]
default = "2000-01-01T00:00:00.000Z"

[state]
url = "sqlite://{state}"

[log]
format = "json"

[orgs.a]
login_url = "{a}"
username = "integration@a.sim"

[orgs.b]
login_url = "{b}"
username = "integration@b.sim"
"#,
            state = state.display(),
            a = a.base_url,
            b = b.base_url,
        );
        std::fs::write(dir.path().join("test.toml"), test_toml).expect("write test.toml");
        World { a, b, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ORGSYNC__ORGS__A__PASSWORD", "password")
            .env("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token")
            .env("ORGSYNC__ORGS__B__PASSWORD", "password")
            .env("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token")
            .arg("--config-dir")
            .arg(self.dir.path())
            .arg("--env")
            .arg("test")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("orgsync runs")
    }

    fn spawn_daemon(&self, log: &Path) -> Child {
        self.spawn_daemon_with(log, &[])
    }

    /// [`World::spawn_daemon`] with these environment variables set (settings overrides).
    fn spawn_daemon_with(&self, log: &Path, vars: &[(&str, &str)]) -> Child {
        let log = std::fs::File::create(log).expect("log file");
        let mut cmd = self.command(&["run"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("orgsync run starts")
    }

    fn status(&self) -> Value {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status prints JSON")
    }

    /// `sync --once` until a cycle writes nothing in either direction (at most `max` cycles).
    fn sync_until_quiet(&self, max: usize) {
        self.sync_until_quiet_with(max, &[]);
    }

    /// [`World::sync_until_quiet`] with these environment variables set (settings overrides).
    fn sync_until_quiet_with(&self, max: usize, vars: &[(&str, &str)]) {
        for _ in 0..max {
            let mut cmd = self.command(&["sync", "--once"]);
            for (k, v) in vars {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("orgsync runs");
            assert!(
                out.status.success(),
                "sync --once failed:\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            let report = text(&out.stdout);
            if report.lines().count() == 2
                && report
                    .lines()
                    .all(|l| l.contains("created 0, updated 0, linked 0") && l.contains("failed 0"))
            {
                return;
            }
        }
        panic!("orgs still changing after {max} cycles");
    }
}

/// A client of `org` logged in as `user` (`integration` or `human`: sfsim's test users,
/// `USER@<org>.sim`, password "password", token "token").
fn client_as(org: &sfsim::SimOrg, user: &str) -> orgsync::salesforce::Client {
    let name = org.name.to_ascii_lowercase();
    let settings = orgsync::config::OrgSettings {
        name: name.clone(),
        login_url: org.base_url.trim_end_matches('/').to_string(),
        username: format!("{user}@{name}.sim"),
        credentials: orgsync::config::Credentials::Password {
            password: secrecy::SecretString::from("password"),
            security_token: Some(secrecy::SecretString::from("token")),
        },
        integration_user_id: None,
        account_id: None,
        api_version: "62.0".to_string(),
        api_budget_percent: 100,
        outbound_secret: None,
    };
    orgsync::salesforce::Client::with_options(&settings, orgsync::salesforce::ClientOptions::fast())
        .expect("client")
}

/// A client of `org` logged in as its human user (the person who edits and deletes).
fn human(org: &sfsim::SimOrg) -> orgsync::salesforce::Client {
    client_as(org, "human")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn opportunity(name: &str, amount: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "Name": name,
        "StageName": "Prospecting",
        "CloseDate": "2026-12-31",
        "Amount": amount,
        "Description": format!("seeded {name}"),
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// Seeds `count` opportunities named `{prefix} {i}` in `org` as its human user, 200 per step
/// (one timestamp per step, as one collections call would give).
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

/// The synced fields of every live opportunity, by Name.
fn opportunities(org: &sfsim::SimOrg) -> Vec<(String, Value)> {
    let rows = org
        .db()
        .query(
            "SELECT Name, Amount, StageName, CloseDate, Description FROM Opportunity ORDER BY Name",
            false,
            "62.0",
            Utc::now(),
        )
        .expect("query");
    rows.into_iter()
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.remove("attributes");
            }
            let name = r["Name"].as_str().unwrap_or_default().to_string();
            (name, r)
        })
        .collect()
}

/// Both orgs hold the same records with the same synced values, each exactly once, and every
/// pair is linked once.
fn assert_converged(world: &World, expected: usize) {
    let a = opportunities(&world.a);
    let b = opportunities(&world.b);
    let unique = |rows: &[(String, Value)]| {
        let mut names: Vec<_> = rows.iter().map(|(n, _)| n.clone()).collect();
        names.dedup();
        names.len()
    };
    assert_eq!(a.len(), expected, "records in A");
    assert_eq!(b.len(), expected, "records in B");
    assert_eq!(
        unique(&a),
        expected,
        "a Name appears twice in A: a duplicate"
    );
    assert_eq!(
        unique(&b),
        expected,
        "a Name appears twice in B: a duplicate"
    );
    for ((na, ra), (nb, rb)) in a.iter().zip(b.iter()) {
        assert_eq!(na, nb);
        assert_eq!(ra, rb, "values differ for {na}");
    }
    let status = world.status();
    assert_eq!(
        status["links"]["total"],
        json!(expected),
        "one link per pair"
    );
    assert_eq!(status["failures"]["pending"], json!(0));
    assert_eq!(status["failures"]["dead"], json!(0));
}

fn set_faults(org: &sfsim::SimOrg, faults: Value) {
    let Value::Object(map) = faults else {
        panic!("faults must be an object")
    };
    org.set_faults(map).expect("faults accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_syncs_both_ways_and_status_shows_the_cycles() {
    let world = World::new().await;
    seed(&world.a, "From A", 30);
    seed(&world.b, "From B", 20);
    let out = tokio::task::block_in_place(|| world.run(&["sync", "--once"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("a_to_b: read 30, created 30"), "{report}");
    assert!(report.contains("b_to_a: read 20, created 20"), "{report}");
    tokio::task::block_in_place(|| {
        world.sync_until_quiet(3);
        assert_converged(&world, 50);
        let status = world.status();
        assert_eq!(status["last_cycles"]["a_to_b"]["outcome"], json!("ok"));
        assert_eq!(status["last_cycles"]["b_to_a"]["outcome"], json!("ok"));
        // A cycle is A->B then B->A: both directions carry the cycle's one number.
        let cycle = &status["last_cycles"]["a_to_b"]["cycle"];
        assert!(cycle.as_i64().is_some_and(|n| n >= 1), "{status}");
        assert_eq!(&status["last_cycles"]["b_to_a"]["cycle"], cycle, "{status}");
        assert!(status["last_success"]["a_to_b"].is_string(), "{status}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_record_is_listed_then_synced_after_failures_retry_all() {
    let world = World::new().await;
    set_faults(&world.b, json!({ "reject_name_marker": "REJECTME" }));
    seed(&world.a, "Deal", 9);
    world
        .a
        .seed_records(
            "Opportunity",
            Some(&world.a.human_username.clone()),
            vec![opportunity("Deal REJECTME", 9_999)],
        )
        .expect("seed");
    tokio::task::block_in_place(|| {
        let out = world.run(&["sync", "--once"]);
        // the rejected record has a durable outcome (the queue): the cycle is complete
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            opportunities(&world.b).len(),
            9,
            "the rest of the page synced"
        );

        let out = world.run(&["failures", "list", "--json"]);
        assert!(out.status.success());
        let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let list = list.as_array().expect("array");
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(
            list[0]["error_code"],
            json!("FIELD_CUSTOM_VALIDATION_EXCEPTION")
        );
        let id = list[0]["id"].as_i64().expect("id");

        let out = world.run(&["failures", "retry", "999999"]);
        assert_eq!(out.status.code(), Some(1), "an unknown id is an error");
        assert!(text(&out.stderr).contains("no failed record with id 999999"));

        set_faults(&world.b, json!({ "reject_name_marker": "" }));
        let out = world.run(&["failures", "retry", "--all"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        world.sync_until_quiet(3);
        assert_converged(&world, 10);
        let out = world.run(&["failures", "discard", &id.to_string()]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "the failure is gone once synced"
        );
    });
}

/// Waits for `child` to exit, at most `limit`; kills it and fails the test past that.
fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("orgsync did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send_sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_cycle_exits_0_and_leaves_a_consistent_store() {
    let world = World::new().await;
    // slow orgs so that SIGTERM lands in the middle of the first cycle
    set_faults(&world.a, json!({ "latency_ms": 40 }));
    set_faults(&world.b, json!({ "latency_ms": 40 }));
    seed(&world.a, "Term", 2_000);
    tokio::task::block_in_place(|| {
        let log = world.dir.path().join("run.log");
        let mut child = world.spawn_daemon(&log);
        // wait until the daemon has committed at least one page, then stop it
        let start = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("record written to the target")
        {
            assert!(start.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        send_sigterm(&child);
        // a bound on liveness (the page in flight is at most a few calls), not a speed claim
        let status = wait_with_limit(&mut child, Duration::from_secs(60));
        assert!(status.success(), "exit status {status:?}");
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(log.contains("orgsync stopped"), "{log}");

        set_faults(&world.a, json!({ "latency_ms": 0 }));
        set_faults(&world.b, json!({ "latency_ms": 0 }));
        world.sync_until_quiet(4);
        assert_converged(&world, 2_000);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_instants_loses_and_duplicates_nothing() {
    let rounds = if std::env::var_os("ORGSYNC_LONG_TESTS").is_some() {
        100
    } else {
        10
    };
    let world = World::new().await;
    set_faults(&world.a, json!({ "latency_ms": 15 }));
    set_faults(&world.b, json!({ "latency_ms": 15 }));
    seed(&world.a, "Kill A", 2_500);
    seed(&world.b, "Kill B", 700);
    let mut rng = StdRng::seed_from_u64(0x5EED_0009);
    tokio::task::block_in_place(|| {
        let log: PathBuf = world.dir.path().join("run.log");
        let mut cut_mid_cycle = 0;
        for round in 0..rounds {
            // people keep editing between crashes: a few updates in A
            if round % 3 == 1 {
                let human = world.a.human_username.clone();
                let edits: Vec<_> = (0..5)
                    .map(|i| {
                        let mut o = opportunity(&format!("Kill A extra {round:03} {i}"), 7_000);
                        o.insert("Description".into(), json!(format!("round {round}")));
                        o
                    })
                    .collect();
                world
                    .a
                    .seed_records("Opportunity", Some(&human), edits)
                    .expect("seed");
            }
            let mut child = world.spawn_daemon(&log);
            let wait = rng.random_range(50..900);
            std::thread::sleep(Duration::from_millis(wait));
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            // the process started in this round found the previous round's cycle cut short
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("found cycles left running")
            {
                cut_mid_cycle += 1;
            }
        }
        // the kills must have landed inside cycles, not only between them, for this to prove
        // anything (a count, deterministic for the seed up to scheduling)
        assert!(
            cut_mid_cycle >= 1,
            "no kill landed during a cycle in {rounds} rounds"
        );
        set_faults(&world.a, json!({ "latency_ms": 0 }));
        set_faults(&world.b, json!({ "latency_ms": 0 }));
        world.sync_until_quiet(6);
        let extras = (0..rounds).filter(|r| r % 3 == 1).count() * 5;
        assert_converged(&world, 2_500 + 700 + extras);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_past_its_api_budget_is_paused_and_resumes_when_usage_drops() {
    let world = World::new().await;
    // org B has used 900 of its 1000 daily calls; orgsync may use up to 50%
    set_faults(
        &world.b,
        json!({ "api_daily_limit": 1000, "api_usage": 900 }),
    );
    seed(&world.a, "Budget", 12);
    tokio::task::block_in_place(|| {
        let out = world
            .command(&["sync", "--once"])
            .env("ORGSYNC__ORGS__B__API_BUDGET_PERCENT", "50")
            .output()
            .expect("orgsync runs");
        assert_eq!(
            out.status.code(),
            Some(1),
            "a paused direction is not a complete cycle:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            opportunities(&world.b).is_empty(),
            "nothing written to an org past its budget"
        );
        let status = world.status();
        let errors: Vec<String> = ["a_to_b", "b_to_a"]
            .iter()
            .filter_map(|d| status["last_cycles"][d]["error"].as_str().map(String::from))
            .collect();
        assert!(
            errors.iter().any(|e| e.contains("paused")),
            "the cycle record says why: {status}"
        );
        assert_eq!(
            status["last_cycles"]["a_to_b"]["outcome"],
            json!("paused"),
            "a pause is not a failure: {status}"
        );
        // B's usage drops (a new day): the next cycle resumes on its own
        set_faults(&world.b, json!({ "api_usage": 0 }));
        let out = world
            .command(&["sync", "--once"])
            .env("ORGSYNC__ORGS__B__API_BUDGET_PERCENT", "50")
            .output()
            .expect("orgsync runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        world.sync_until_quiet(3);
        assert_converged(&world, 12);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_does_not_take_the_daemon_down() {
    let world = World::new().await;
    seed(&world.a, "Pipe", 50);
    tokio::task::block_in_place(|| {
        // stderr is a pipe whose reader goes away, as when `orgsync run | head` ends
        let mut child = world
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("orgsync run starts");
        drop(child.stderr.take());
        // the daemon keeps syncing: the records reach B although no log line can be written
        let start = Instant::now();
        while opportunities(&world.b).len() < 50 {
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "orgsync exited when its stderr closed"
            );
            assert!(start.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        send_sigterm(&child);
        let status = wait_with_limit(&mut child, Duration::from_secs(60));
        assert!(status.success(), "exit status {status:?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_state_database_is_refused() {
    let world = World::new().await;
    seed(&world.a, "Lock", 20);
    tokio::task::block_in_place(|| {
        let log = world.dir.path().join("run.log");
        let mut child = world.spawn_daemon(&log);
        // the daemon holds the state once it has started syncing
        let start = Instant::now();
        while opportunities(&world.b).len() < 20 {
            assert!(start.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = world.run(&["sync", "--once"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("in use by another orgsync process")
                && stderr.contains(&format!("(pid {})", child.id())),
            "{stderr}"
        );
        // reading and repairing stay available beside the daemon
        world.status();
        let list = world.run(&["failures", "list"]);
        assert!(list.status.success(), "{}", text(&list.stderr));

        send_sigterm(&child);
        let status = wait_with_limit(&mut child, Duration::from_secs(60));
        assert!(status.success(), "exit status {status:?}");
        // once the daemon is gone, the database is free again
        world.sync_until_quiet(3);
    });
}
