//! The state on PostgreSQL end to end: the binary syncs two sfsim orgs with `state.url` on
//! PostgreSQL (from ORGSYNC__STATE__URL), and `orgsync state migrate` copies a SQLite state
//! with links, failures and watermarks into PostgreSQL, after which a cycle on PostgreSQL
//! writes nothing (the copy is complete). Skipped without ORGSYNC_TEST_PG_URL (`scripts/pg
//! start`), a failure with ORGSYNC_TEST_PG_REQUIRED=1 (`scripts/test`).

use std::process::Output;

use orgsync::store::testing::{fresh_pair_name, pg_url};
use serde_json::{Value, json};

use super::{World, opportunity, seed, set_faults, text};

/// `args` with the state on PostgreSQL: `url`, sync pair `pair`.
fn on_pg(world: &World, url: &str, pair: &str, args: &[&str]) -> Output {
    world
        .command(args)
        .env("ORGSYNC__STATE__URL", url)
        .env("ORGSYNC__STATE__PAIR_NAME", pair)
        .output()
        .expect("orgsync runs")
}

fn status_on_pg(world: &World, url: &str, pair: &str) -> Value {
    let out = on_pg(world, url, pair, &["status", "--json"]);
    assert!(out.status.success(), "status: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status prints JSON")
}

/// The two direction lines of a `sync --once` that wrote nothing and failed nothing.
fn wrote_nothing(report: &str) -> bool {
    report.lines().count() == 2
        && report
            .lines()
            .all(|l| l.contains("created 0, updated 0, linked 0") && l.contains("failed 0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_syncs_two_orgs_with_its_state_on_postgres() {
    let Some(url) = pg_url() else { return };
    let pair = fresh_pair_name();
    let world = World::new().await;
    seed(&world.a, "From A", 30);
    seed(&world.b, "From B", 20);
    tokio::task::block_in_place(|| {
        let out = on_pg(&world, &url, &pair, &["sync", "--once"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report = text(&out.stdout);
        assert!(report.contains("a_to_b: read 30, created 30"), "{report}");
        assert!(report.contains("b_to_a: read 20, created 20"), "{report}");
        let mut quiet = false;
        for _ in 0..3 {
            let out = on_pg(&world, &url, &pair, &["sync", "--once"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            if wrote_nothing(&text(&out.stdout)) {
                quiet = true;
                break;
            }
        }
        assert!(quiet, "orgs still changing after 3 cycles");
        let status = status_on_pg(&world, &url, &pair);
        assert_eq!(status["links"]["total"], json!(50), "{status}");
        assert_eq!(status["last_cycles"]["a_to_b"]["outcome"], json!("ok"));
        // Nothing went to the SQLite file the configuration names.
        assert!(!world.dir.path().join("state.db").exists());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_migrate_copies_a_sqlite_state_and_a_cycle_on_postgres_then_writes_nothing() {
    let Some(url) = pg_url() else { return };
    let pair = fresh_pair_name();
    let world = World::new().await;
    seed(&world.a, "From A", 25);
    seed(&world.b, "From B", 15);
    set_faults(&world.b, json!({ "reject_name_marker": "REJECTME" }));
    world
        .a
        .seed_records(
            "Opportunity",
            Some(&world.a.human_username.clone()),
            vec![opportunity("Deal REJECTME", 9_999)],
        )
        .expect("seed");
    tokio::task::block_in_place(|| {
        // A SQLite state with links, a failure and watermarks.
        world.sync_until_quiet(4);
        let before = world.status();
        assert_eq!(before["links"]["total"], json!(40), "{before}");
        let failures = world.run(&["failures", "list", "--json"]);
        let failures: Value = serde_json::from_slice(&failures.stdout).expect("JSON");
        assert_eq!(failures.as_array().map(Vec::len), Some(1), "{failures}");

        let out = world.run(&["state", "migrate", "--to", &url, "--pair", &pair]);
        let report = text(&out.stdout);
        assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
        for table in ["links", "failures", "watermarks", "cycles"] {
            assert!(
                report
                    .lines()
                    .any(|l| l.starts_with(table) && l.contains("rows copied")),
                "{table} missing from:\n{report}"
            );
        }
        assert!(report.contains("every table's count matches"), "{report}");

        // The same state, read from PostgreSQL.
        let after = status_on_pg(&world, &url, &pair);
        assert_eq!(after["links"], before["links"], "{after}");
        assert_eq!(after["failures"], before["failures"], "{after}");
        assert_eq!(after["watermarks"], before["watermarks"], "{after}");

        // A cycle on PostgreSQL finds everything already synced: no write, no new failure.
        let out = on_pg(&world, &url, &pair, &["sync", "--once"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let cycle = text(&out.stdout);
        assert!(wrote_nothing(&cycle), "{cycle}");
        let out = on_pg(&world, &url, &pair, &["failures", "list", "--json"]);
        let on_pg_failures: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(on_pg_failures, failures);

        // The target now holds a state: a second copy is refused, with --force it replaces it.
        let out = world.run(&["state", "migrate", "--to", &url, "--pair", &pair]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("already holds a state"),
            "{}",
            text(&out.stderr)
        );
        let out = world.run(&["state", "migrate", "--to", &url, "--pair", &pair, "--force"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let again = status_on_pg(&world, &url, &pair);
        assert_eq!(again["links"], before["links"], "{again}");
    });
}
