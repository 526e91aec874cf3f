//! `reconcile.frequency` through the binary (issue 14): the daemon's background reconcile,
//! its report in `status`, not run again before it is due after a restart, and skipped
//! outside the API budget.

use serde_json::{Map, Value, json};

use super::reconcile::id_named;
use super::{World, client_as, seed};

/// Waits until `done` holds (at most 60 s), checking every 100 ms.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The number of the last finished B -> A pass's cycle in `status` (0 before the first).
fn last_cycle(status: &Value) -> u64 {
    status["last_cycles"]["b_to_a"]["cycle"]
        .as_u64()
        .unwrap_or(0)
}

/// `reconcile.frequency`: the daemon reconciles between its cycles and keeps the report as
/// the command does (`status` shows it), so a drift induced in B (a write as the integration
/// user, which the sync skips) shows up in a later background report, with one INFO line per
/// run; a restart right after does not run it again before it is due (the schedule counts
/// from the last stored report, not from the process's start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reconciles_in_the_background_and_not_again_before_it_is_due() {
    let world = World::new().await;
    seed(&world.a, "Pair", 8);
    let log = world.dir.path().join("daemon.log");
    let daemon = super::shell::Running(
        world.spawn_daemon_with(&log, &[("ORGSYNC__RECONCILE__FREQUENCY", "1s")]),
    );
    tokio::task::block_in_place(|| {
        wait_for("a background report of 8 agreeing pairs", || {
            let status = world.status();
            status["reconcile"]["compared_pairs"] == 8 && status["reconcile"]["total"] == 0
        })
    });
    let b3 = id_named(&world.b, "Pair 00003");
    let mut fields = Map::new();
    fields.insert("Amount".into(), json!(99_999));
    client_as(&world.b, "integration")
        .update("Opportunity", &[(b3.clone(), fields)])
        .await
        .expect("update in B");
    let status = tokio::task::block_in_place(|| {
        wait_for("the drift in a background report", || {
            world.status()["reconcile"]["differences"]["value_drift_unexplained"] == 1
        });
        world.status()
    });
    assert_eq!(status["reconcile"]["total"], 1, "{status:#}");
    let logged = std::fs::read_to_string(&log).expect("the daemon's log");
    let done: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("\"reconcile: done\""))
        .collect();
    assert!(done.len() >= 2, "{logged}");
    assert!(
        done.iter()
            .any(|l| l.contains("\"value_drift_unexplained\":1") && l.contains("\"INFO\"")),
        "{logged}"
    );
    super::shell::stop(daemon);

    // Restarted with a frequency of an hour: the last report is seconds old, so none runs.
    let kept = world.status()["reconcile"]["run_id"].clone();
    let cycle = last_cycle(&world.status());
    let log = world.dir.path().join("daemon2.log");
    let daemon = super::shell::Running(
        world.spawn_daemon_with(&log, &[("ORGSYNC__RECONCILE__FREQUENCY", "1h")]),
    );
    tokio::task::block_in_place(|| {
        wait_for("two cycles of the restarted daemon", || {
            last_cycle(&world.status()) >= cycle + 2
        })
    });
    let status = world.status();
    assert_eq!(status["reconcile"]["run_id"], kept, "{status:#}");
    let logged = std::fs::read_to_string(&log).expect("the daemon's log");
    assert!(!logged.contains("\"reconcile: done\""), "{logged}");
    super::shell::stop(daemon);
}

/// A background reconcile that org B's API budget would not cover (`api_budget_percent` 80
/// of a daily limit of 1,000, 850 used) is skipped with an INFO line naming the org, and
/// makes no report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_reconcile_is_skipped_outside_the_api_budget() {
    let world = World::new().await;
    seed(&world.a, "Pair", 3);
    reqwest::Client::new()
        .post(format!("{}/__sim/faults", world.b.base_url))
        .json(&json!({"api_daily_limit": 1000, "api_usage": 850}))
        .send()
        .await
        .expect("sfsim answers")
        .error_for_status()
        .expect("faults set");
    let log = world.dir.path().join("daemon.log");
    let daemon = super::shell::Running(
        world.spawn_daemon_with(&log, &[("ORGSYNC__RECONCILE__FREQUENCY", "1s")]),
    );
    tokio::task::block_in_place(|| {
        wait_for("the skip's line", || {
            std::fs::read_to_string(&log).is_ok_and(|t| {
                t.lines().any(|l| {
                    l.contains("reconcile: skipped, the API budget")
                        && l.contains("\"INFO\"")
                        && l.contains("\"org\":\"b\"")
                })
            })
        })
    });
    let status = world.status();
    assert!(status["reconcile"].is_null(), "{status:#}");
    let logged = std::fs::read_to_string(&log).expect("the daemon's log");
    assert!(!logged.contains("\"reconcile: done\""), "{logged}");
    super::shell::stop(daemon);
}
