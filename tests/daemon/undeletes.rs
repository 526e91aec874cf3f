//! Undeletes and the getDeleted safety net through the binary (issue 13): a record restored
//! from its recycle bin brings its copy back (undeleted, or created again and relinked when
//! the copy was purged) in `orgsync sync` cycles, both ways; a hard delete that `queryAll`
//! cannot see is applied by the safety net in an `orgsync run` cycle, and a delete log that
//! no longer reaches the stored start is reported (WARN line, `status`); `kill -9` during
//! undeletes converges without duplicates.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::deletes::{ids_named, ok};
use super::human;
use super::{World, opportunities, seed, set_faults, text};

async fn control(org: &sfsim::SimOrg, path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/{path}", org.base_url))
        .json(&body)
        .send()
        .await
        .expect("control call");
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap_or(Value::Null)
}

fn amounts(org: &sfsim::SimOrg) -> Vec<(String, f64)> {
    opportunities(org)
        .into_iter()
        .map(|(name, row)| (name, row["Amount"].as_f64().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeleted_record_brings_its_copy_back_both_ways_from_the_recycle_bin_or_anew() {
    for a_deletes in [true, false] {
        let world = World::new().await;
        seed(&world.a, "Und", 2);
        tokio::task::block_in_place(|| world.sync_until_quiet(3));
        let (source, target) = if a_deletes {
            (&world.a, &world.b)
        } else {
            (&world.b, &world.a)
        };
        let ids = ids_named(source, "Und");
        let copies = ids_named(target, "Und");
        let person = human(source);
        person.delete(&ids).await.expect("delete both");
        tokio::task::block_in_place(|| ok(&world, &["sync", "--once"]));
        assert!(opportunities(target).is_empty(), "the deletes propagated");
        // One copy purged from its recycle bin; the other stays there.
        control(target, "recycle_bin/purge", json!({"ids": [copies[1]]})).await;
        let restored = person.undelete(&ids).await.expect("undelete");
        assert!(restored.iter().all(Result::is_ok), "{restored:?}");
        let edit: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut m = serde_json::Map::new();
                m.insert("Amount".into(), json!(9_000));
                (id.clone(), m)
            })
            .collect();
        person.update("Opportunity", &edit).await.expect("edit");
        tokio::task::block_in_place(|| world.sync_until_quiet(3));
        let expect = vec![
            ("Und 00000".to_string(), 9_000.0),
            ("Und 00001".to_string(), 9_000.0),
        ];
        assert_eq!(amounts(&world.a), expect, "a_deletes {a_deletes}");
        assert_eq!(amounts(&world.b), expect, "a_deletes {a_deletes}");
        let now = ids_named(target, "Und");
        assert_eq!(now[0], copies[0], "undeleted in place");
        assert_ne!(now[1], copies[1], "the purged one created again");
        let status = world.status();
        assert_eq!(status["links"]["by_state"]["live"], json!(2), "{status}");
        assert_eq!(
            status["links"]["by_state"]["tombstone"],
            json!(0),
            "{status}"
        );
        let links = ok(&world, &["links", "list", "--json"]);
        for id in now.iter().chain(&ids) {
            assert!(links.contains(id.as_str()), "{id} linked: {links}");
        }
        assert_eq!(ok(&world, &["failures", "list", "--json"]).trim(), "[]");
    }
}

/// The running daemon's `/metrics` text, at the address its log names.
fn metrics(log: &str) -> String {
    use std::io::{Read, Write};
    let Some(addr) = log
        .lines()
        .filter(|l| l.contains("orgsync listening"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["addr"].as_str().map(str::to_string))
    else {
        return String::new();
    };
    let Ok(mut stream) = std::net::TcpStream::connect(&addr) else {
        return String::new();
    };
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

/// Runs `orgsync run` with `vars` until `done` holds (at most 60 s), then stops it: its log
/// and its `/metrics` text just before it stopped.
fn run_until(world: &World, vars: &[(&str, &str)], done: impl Fn() -> bool) -> (String, String) {
    let log: PathBuf = world.dir.path().join("net.log");
    let mut child = world.spawn_daemon_with(&log, vars);
    let started = Instant::now();
    while !done() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // One more cycle's worth, so the check's commit is in.
    std::thread::sleep(Duration::from_millis(600));
    let metrics = metrics(&std::fs::read_to_string(&log).unwrap_or_default());
    child.kill().expect("stop");
    let _ = child.wait();
    (std::fs::read_to_string(&log).unwrap_or_default(), metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_applies_a_hard_delete_and_reports_a_hole_in_a_daemon_cycle() {
    let world = World::new().await;
    // A's clock 10 minutes behind: the records' watermark is old enough for a getDeleted
    // window (Salesforce wants more than a minute, at minute granularity).
    control(&world.a, "clock", json!({"offset_ms": -600_000})).await;
    seed(&world.a, "Hard", 3);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    assert_eq!(opportunities(&world.b).len(), 3);
    let ids = ids_named(&world.a, "Hard");
    // Deleted and purged at once: the poll's queryAll never sees it.
    control(
        &world.a,
        "hard_delete",
        json!({"ids": [ids[0]], "as_user": world.a.human_username}),
    )
    .await;
    // Two minutes on: getDeleted lists a delete once its minute is over.
    control(&world.a, "clock", json!({"offset_ms": -480_000})).await;
    tokio::task::block_in_place(|| {
        let out = world.run(&["sync", "--once"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            opportunities(&world.b).len(),
            3,
            "queryAll cannot see it, and the check is not due (1h)"
        );
        let vars = [("ORGSYNC__SYNC__DELETED_CHECK_FREQUENCY", "1s")];
        let (log, _) = run_until(&world, &vars, || opportunities(&world.b).len() == 2);
        assert_eq!(
            opportunities(&world.b).len(),
            2,
            "applied by the safety net: {log}"
        );
        assert!(log.contains("getDeleted safety net checked"), "{log}");
        let status = world.status();
        assert_eq!(
            status["links"]["by_state"]["tombstone"],
            json!(1),
            "{status}"
        );
        let checks = status["deleted_checks"].to_string();
        assert!(checks.contains("\"holes\":0"), "{status}");
    });
    // The delete log now starts after the stored start: a hole.
    // (A minute and a half after A's clock: later than the stored start, A's last minute.)
    let earliest = chrono::Utc::now() - chrono::Duration::seconds(480 - 90);
    control(
        &world.a,
        "replication",
        json!({"earliest_available": earliest.to_rfc3339(), "object": "Opportunity"}),
    )
    .await;
    tokio::task::block_in_place(|| {
        let vars = [("ORGSYNC__SYNC__DELETED_CHECK_FREQUENCY", "1s")];
        let (log, metrics) = run_until(&world, &vars, || {
            world.status()["deleted_checks"]
                .to_string()
                .contains("\"holes\":1")
        });
        assert!(
            metrics.contains("orgsync_deleted_window_holes_total{org=\"a\"} 1"),
            "{metrics}"
        );
        assert!(
            log.contains("getDeleted window has a hole") && log.contains("WARN"),
            "{log}"
        );
        let status = world.status();
        assert!(
            status["deleted_checks"]
                .to_string()
                .contains("last_hole_earliest"),
            "{status}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_undeletes_converges_without_duplicates() {
    let world = World::new().await;
    seed(&world.a, "Back", 300);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    let ids = ids_named(&world.a, "Back");
    let copies = ids_named(&world.b, "Back");
    let person = human(&world.a);
    person.delete(&ids).await.expect("delete");
    tokio::task::block_in_place(|| {
        let out = world
            .command(&["sync", "--once"])
            .env("ORGSYNC__SYNC__MAX_DELETES_PER_CYCLE", "0")
            .output()
            .expect("orgsync runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
    });
    assert!(opportunities(&world.b).is_empty());
    // Half the copies purged: those are created again, the others undeleted.
    let purge: Vec<&String> = copies.iter().step_by(2).collect();
    control(&world.b, "recycle_bin/purge", json!({"ids": purge})).await;
    for chunk in ids.chunks(200) {
        person.undelete(chunk).await.expect("undelete");
    }
    set_faults(&world.a, json!({ "latency_ms": 60 }));
    set_faults(&world.b, json!({ "latency_ms": 60 }));
    let mut rng = StdRng::seed_from_u64(0x0DE1_E7E5);
    tokio::task::block_in_place(|| {
        let log: PathBuf = world.dir.path().join("run.log");
        let mut cut_mid_cycle = 0;
        for _ in 0..6 {
            let mut child = world.spawn_daemon_with(&log, &[("ORGSYNC__BATCH__PAGE_SIZE", "50")]);
            std::thread::sleep(Duration::from_millis(rng.random_range(100..900)));
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("found cycles left running")
            {
                cut_mid_cycle += 1;
            }
        }
        assert!(cut_mid_cycle >= 1, "no kill landed during a cycle");
        set_faults(&world.a, json!({ "latency_ms": 0 }));
        set_faults(&world.b, json!({ "latency_ms": 0 }));
        world.sync_until_quiet(4);
    });
    let names = |org: &sfsim::SimOrg| -> Vec<String> {
        opportunities(org).into_iter().map(|(n, _)| n).collect()
    };
    let all: Vec<String> = (0..300).map(|i| format!("Back {i:05}")).collect();
    assert_eq!(names(&world.a), all);
    assert_eq!(names(&world.b), all, "every copy back exactly once");
    let status = world.status();
    assert_eq!(status["links"]["by_state"]["live"], json!(300), "{status}");
    assert_eq!(
        status["links"]["by_state"]["tombstone"],
        json!(0),
        "{status}"
    );
    assert_eq!(ok(&world, &["failures", "list", "--json"]).trim(), "[]");
}
