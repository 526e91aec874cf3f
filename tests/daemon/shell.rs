//! The daemon's shell through the binary, as an operator sees it: the HTTP listener in poll
//! mode (health, readiness, metrics, status), a wrong password that is tried once and then
//! backed off from (not once per cycle), and an API-limit pause that is logged once, costs the
//! org almost no calls while it lasts, and ends on its own when the limit rises.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{World, opportunities, seed, send_sigterm, set_faults, text, wait_with_limit};

/// The JSON log lines written so far.
fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Log lines whose message contains `needle`.
fn count_messages(log: &Path, needle: &str) -> usize {
    log_lines(log)
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
        .count()
}

/// Waits for the daemon's "listening" line and returns its address.
pub(super) async fn listening_addr(log: &Path, child: &mut Child) -> String {
    let start = Instant::now();
    loop {
        if let Some(addr) = log_lines(log).iter().find_map(|l| {
            let message = l["message"].as_str()?;
            message
                .starts_with("orgsync listening")
                .then(|| l["addr"].as_str().map(String::from))?
        }) {
            return addr;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "orgsync exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no listening line:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn get(addr: &str, path: &str) -> (u16, String) {
    let reply = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("the listener answers");
    let code = reply.status().as_u16();
    (code, reply.text().await.expect("a body"))
}

/// Waits until `done` holds (at most 30 s).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// REST data calls the org received (refused ones included), from its request log.
async fn data_calls(org: &sfsim::SimOrg) -> usize {
    let log: Value = reqwest::get(format!("{}/__sim/requests?limit=100000", org.base_url))
        .await
        .expect("sfsim answers")
        .json()
        .await
        .expect("the request log is JSON");
    log.as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| {
                    e["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("/services/data/"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// A running `orgsync run`, killed if the test ends without stopping it (a failed assertion
/// would otherwise leave the daemon running after the test).
pub(super) struct Running(pub(super) Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// SIGTERM, then the exit status, which must be 0.
pub(super) fn stop(mut daemon: Running) {
    send_sigterm(&daemon.0);
    let status = wait_with_limit(&mut daemon.0, Duration::from_secs(30));
    assert!(status.success(), "orgsync run exits 0 on SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_mode_daemon_serves_health_readiness_metrics_and_status() {
    let world = World::new().await;
    seed(&world.a, "Watched", 5);
    let log = world.dir.path().join("daemon.log");
    let mut child = Running(world.spawn_daemon(&log));
    let addr = listening_addr(&log, &mut child.0).await;
    assert!(addr.starts_with("127.0.0.1:"), "http.bind is used: {addr}");
    eventually("the records reach B", || opportunities(&world.b).len() == 5).await;

    assert_eq!(get(&addr, "/healthz").await.0, 200);
    let (code, body) = get(&addr, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    // The counts reach the metrics when the cycle ends, a moment after the records reach B.
    let start = Instant::now();
    let metrics = loop {
        let (code, body) = get(&addr, "/metrics").await;
        assert_eq!(code, 200);
        if body.contains("orgsync_records_synced_total{direction=\"a_to_b\"} 5\n")
            && body.contains("orgsync_last_success_timestamp_seconds{direction=\"b_to_a\"}")
        {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics.contains("# TYPE orgsync_cycle_duration_seconds histogram\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"+Inf\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orgsync_auth_failed{org=\"a\"} 0\n"),
        "{metrics}"
    );
    let (code, body) = get(&addr, "/status").await;
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).expect("/status is JSON");
    assert!(status["last_success"]["a_to_b"].is_string(), "{status}");
    assert_eq!(status["orgs"]["a"]["state"], json!("ok"), "{status}");
    // Outbound messages are not taken in poll mode: a fault, nothing stored.
    let refused = reqwest::Client::new()
        .post(format!("http://{addr}/outbound/a?secret=x"))
        .body("<x/>")
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status().as_u16(), 500);
    assert!(
        refused.text().await.unwrap_or_default().contains("poll"),
        "the fault says why"
    );

    // Idle cycles log their summary at debug: with nothing to do, no new info lines.
    let before = count_messages(&log, "direction pass finished");
    assert!(before >= 1, "the pass that wrote logged at info");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count_messages(&log, "direction pass finished"),
        before,
        "idle passes log at debug"
    );
    stop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_tried_once_then_backed_off_and_shown_as_auth_failed() {
    let world = World::new().await;
    let log = world.dir.path().join("daemon.log");
    let child = world
        .command(&["run"])
        .env("ORGSYNC__ORGS__A__PASSWORD", "wrong")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("orgsync run starts");
    let mut child = Running(child);
    let addr = listening_addr(&log, &mut child.0).await;
    // 20 poll cycles (scheduler.frequency = 200ms) and /readyz probes: still one login.
    for _ in 0..8 {
        let (code, body) = get(&addr, "/readyz").await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("org a auth_failed: INVALID_LOGIN"), "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        world.a.calls("login"),
        1,
        "one login attempt in the first minute, however many cycles ran"
    );
    assert!(world.b.calls("login") >= 1, "org B logs in as usual");
    assert_eq!(
        count_messages(&log, "login refused for its credentials"),
        1,
        "one log line per attempt, not per cycle"
    );
    assert_eq!(
        count_messages(&log, "direction pass failed"),
        0,
        "no error line per cycle while backing off"
    );
    let (_, metrics) = get(&addr, "/metrics").await;
    assert!(
        metrics.contains("orgsync_auth_failed{org=\"a\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orgsync_auth_failed{org=\"b\"} 0\n"),
        "{metrics}"
    );
    let status = tokio::task::block_in_place(|| world.status());
    assert_eq!(
        status["orgs"]["a"]["state"],
        json!("auth_failed"),
        "{status}"
    );
    assert_eq!(
        status["orgs"]["a"]["auth_failed"]["code"],
        json!("INVALID_LOGIN"),
        "{status}"
    );
    assert!(
        status["orgs"]["a"]["auth_failed"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Invalid username")),
        "Salesforce's message: {status}"
    );
    let out = tokio::task::block_in_place(|| world.run(&["status"]));
    assert!(
        text(&out.stdout).contains("a   auth_failed: INVALID_LOGIN"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("wrong"),
        "the password never reaches the log"
    );
    stop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_limit_pauses_once_probes_sparingly_and_resumes_when_the_limit_rises() {
    let world = World::new().await;
    // Org B is at its daily limit, and orgsync leaves the limit to Salesforce (budget 100%):
    // every call B answers is a 403 REQUEST_LIMIT_EXCEEDED.
    set_faults(
        &world.b,
        json!({ "api_daily_limit": 1000, "api_usage": 1000 }),
    );
    seed(&world.a, "Limited", 5);
    let log = world.dir.path().join("daemon.log");
    let child = world
        .command(&["run"])
        .env("ORGSYNC__ORGS__B__API_BUDGET_PERCENT", "100")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("orgsync run starts");
    let mut child = Running(child);
    let addr = listening_addr(&log, &mut child.0).await;
    eventually("org B is paused", || {
        count_messages(&log, "org paused on its API limit") >= 1
    })
    .await;
    let calls_at_pause = data_calls(&world.b).await;
    // 4 s of cycles every 200 ms: the gate lets through probes after 2 s and 6 s, nothing else.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls_while_paused = data_calls(&world.b).await - calls_at_pause;
    assert!(
        calls_while_paused <= 2,
        "{calls_while_paused} calls reached org B while paused (20 cycles ran)"
    );
    assert_eq!(
        count_messages(&log, "org paused on its API limit"),
        1,
        "the pause is logged once"
    );
    let (_, metrics) = get(&addr, "/metrics").await;
    assert!(
        metrics.contains("orgsync_api_paused{org=\"b\"} 1\n"),
        "{metrics}"
    );
    assert!(opportunities(&world.b).is_empty());
    // The limit rises (an admin raised it, or the rolling count fell): a probe notices it and
    // the records arrive without a restart.
    set_faults(&world.b, json!({ "api_usage": 0 }));
    eventually("the records reach B after the limit rose", || {
        opportunities(&world.b).len() == 5
    })
    .await;
    eventually("the resume is logged", || {
        count_messages(&log, "org resumed") == 1
    })
    .await;
    stop(child);
}
