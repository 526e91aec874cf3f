//! Deletes through the binary (issue 13): the mass-delete breaker held 150 deletes and
//! `orgsync failures retry --code DELETE_HELD` applies them; `kill -9` at random instants
//! during 500 deletes ends with exactly the deleted records gone from the other org.

use std::path::PathBuf;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{World, human, opportunities, seed, set_faults, text};

/// The ids of the live opportunities of `org` whose Name starts with `prefix`.
pub(super) fn ids_named(org: &sfsim::SimOrg, prefix: &str) -> Vec<String> {
    org.db()
        .query(
            &format!("SELECT Id FROM Opportunity WHERE Name LIKE '{prefix}%' ORDER BY Name"),
            false,
            "62.0",
            chrono::Utc::now(),
        )
        .expect("query")
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .collect()
}

pub(super) fn ok(world: &World, args: &[&str]) -> String {
    let out = world.run(args);
    assert!(
        out.status.success(),
        "orgsync {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_delete_is_held_whole_and_failures_retry_code_delete_held_applies_it() {
    let world = World::new().await;
    seed(&world.a, "Mass", 150);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    assert_eq!(opportunities(&world.b).len(), 150);
    let ids = ids_named(&world.a, "Mass");
    human(&world.a).delete(&ids).await.expect("delete 150 in A");
    tokio::task::block_in_place(|| {
        // The default sync.max_deletes_per_cycle is 100: nothing is applied.
        let out = world.run(&["sync", "--once"]);
        let log = text(&out.stderr);
        assert!(
            log.contains("mass delete") && log.contains("\"count\":150"),
            "one ERROR line with the count: {log}"
        );
        assert_eq!(opportunities(&world.b).len(), 150, "0 applied");
        let held = ok(
            &world,
            &["failures", "list", "--code", "DELETE_HELD", "--json"],
        );
        let held: serde_json::Value = serde_json::from_str(&held).expect("json");
        assert_eq!(held.as_array().map(Vec::len), Some(150), "150 held");
        // The operator applies them; the next cycle deletes all 150.
        let said = ok(&world, &["failures", "retry", "--code", "DELETE_HELD"]);
        assert!(said.contains("150 failed record(s)"), "{said}");
        ok(&world, &["sync", "--once"]);
        assert!(opportunities(&world.b).is_empty(), "all 150 applied");
        let left = ok(&world, &["failures", "list", "--json"]);
        assert_eq!(left.trim(), "[]");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_500_deletes_ends_with_exactly_the_deleted_records_gone() {
    let world = World::new().await;
    seed(&world.a, "Del", 700);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    assert_eq!(opportunities(&world.b).len(), 700);
    // 500 deletes in A, in five calls; no breaker for this test (0 = no limit).
    let ids = ids_named(&world.a, "Del");
    let client = human(&world.a);
    for chunk in ids[..500].chunks(100) {
        client.delete(chunk).await.expect("delete in A");
    }
    // Slow calls and pages of 50 (10 pages: a lookup and a delete call each), so that kills
    // land between a delete call and its page's commit.
    set_faults(&world.a, json!({ "latency_ms": 60 }));
    set_faults(&world.b, json!({ "latency_ms": 60 }));
    let mut rng = StdRng::seed_from_u64(0xDE1E_7E00);
    tokio::task::block_in_place(|| {
        let log: PathBuf = world.dir.path().join("run.log");
        let mut cut_mid_cycle = 0;
        for _ in 0..8 {
            let mut child = world.spawn_daemon_with(
                &log,
                &[
                    ("ORGSYNC__SYNC__MAX_DELETES_PER_CYCLE", "0"),
                    ("ORGSYNC__BATCH__PAGE_SIZE", "50"),
                ],
            );
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
        for _ in 0..3 {
            let out = world
                .command(&["sync", "--once"])
                .env("ORGSYNC__SYNC__MAX_DELETES_PER_CYCLE", "0")
                .output()
                .expect("orgsync runs");
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
    });
    let kept: Vec<String> = (500..700).map(|i| format!("Del {i:05}")).collect();
    let names = |org: &sfsim::SimOrg| -> Vec<String> {
        opportunities(org).into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(names(&world.a), kept);
    assert_eq!(
        names(&world.b),
        kept,
        "exactly the deleted records are gone"
    );
    let status = world.status();
    assert_eq!(
        status["links"]["by_state"]["tombstone"],
        json!(500),
        "{status}"
    );
    let left = ok(&world, &["failures", "list", "--json"]);
    assert_eq!(left.trim(), "[]");
}
