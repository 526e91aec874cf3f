//! `orgsync reconcile` through the binary (issue 14, part 1): each induced drift is found,
//! exactly it, with exit code 1; a clean pair of orgs exits 0; the last report is in
//! `status`; and 20,000 records are read through Bulk query jobs with the API calls counted.
//! `reconcile --repair` repairs every class but `ambiguous`, after which a second run finds
//! only the ambiguous key. A linked record that left `sync.filter` is compared, not an orphan
//! (`outside_filter`). The daemon's background runs are in `reconcile_background.rs`.

use serde_json::{Map, Value, json};

use super::{World, client_as, seed, text};

/// The id of the live opportunity of `org` named `name`.
pub(super) fn id_named(org: &sfsim::SimOrg, name: &str) -> String {
    let rows = org
        .db()
        .query(
            &format!("SELECT Id FROM Opportunity WHERE Name = '{name}'"),
            false,
            "62.0",
            chrono::Utc::now(),
        )
        .expect("query");
    rows[0]["Id"].as_str().expect("an id").to_string()
}

/// `reconcile --json` with `env`: its exit code and report.
fn reconcile(world: &World, env: &[(&str, &str)]) -> (i32, Value) {
    reconcile_with(world, &[], env)
}

/// `reconcile --json` with `extra` arguments and `env`: its exit code and report.
fn reconcile_with(world: &World, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut args = vec!["reconcile", "--json", "--sample", "5"];
    args.extend_from_slice(extra);
    let mut cmd = world.command(&args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("orgsync runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reconcile prints JSON ({e}):\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// Every class's count, by name.
fn counts(report: &Value) -> Map<String, Value> {
    report["differences"]
        .as_object()
        .expect("differences")
        .iter()
        .map(|(k, v)| (k.clone(), v["count"].clone()))
        .collect()
}

/// `expected` counts, every other class 0.
fn exactly(pairs: &[(&str, u64)]) -> Map<String, Value> {
    let mut all = Map::new();
    for class in [
        "missing_in_b",
        "missing_in_a",
        "value_drift_explained",
        "value_drift_unexplained",
        "orphan_link",
        "unlinked_match",
        "ambiguous",
    ] {
        all.insert(class.to_string(), json!(0));
    }
    for (class, n) in pairs {
        all.insert(class.to_string(), json!(n));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_each_induced_drift_and_nothing_else() {
    let world = World::new().await;
    seed(&world.a, "Pair", 20);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));

    // A clean pair: exit 0.
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(counts(&report), exactly(&[]), "{report:#}");
    assert_eq!(code, 0);
    assert_eq!(report["read"]["a"]["records"], 20);
    assert_eq!(report["read"]["b"]["records"], 20);
    assert_eq!(report["read"]["a"]["path"], "rest");
    assert_eq!(report["compared_pairs"], 20);

    // 1. A write as the integration user in B: the sync skips it.
    let b3 = id_named(&world.b, "Pair 00003");
    let mut fields = Map::new();
    fields.insert("Amount".into(), json!(99_999));
    client_as(&world.b, "integration")
        .update("Opportunity", &[(b3.clone(), fields)])
        .await
        .expect("update in B");
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(
        counts(&report),
        exactly(&[("value_drift_unexplained", 1)]),
        "{report:#}"
    );
    assert_eq!(code, 1);
    let sample = &report["differences"]["value_drift_unexplained"]["samples"][0];
    assert_eq!(sample["b_id"], json!(b3));
    assert_eq!(sample["field"], "Amount");
    assert_eq!(sample["a_value"], 6_003);
    assert_eq!(sample["b_value"], 99_999);

    // 2. A record deleted in A, with deletes ignored by the sync.
    let a7 = id_named(&world.a, "Pair 00007");
    client_as(&world.a, "human")
        .delete(std::slice::from_ref(&a7))
        .await
        .expect("delete in A");
    tokio::task::block_in_place(|| {
        let out = world
            .command(&["sync", "--once"])
            .env("ORGSYNC__SYNC__DELETES", "ignore")
            .output()
            .expect("sync");
        assert!(out.status.success(), "{}", text(&out.stderr));
    });
    let (_, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(
        counts(&report),
        exactly(&[("value_drift_unexplained", 1), ("orphan_link", 1)]),
        "{report:#}"
    );
    assert_eq!(
        report["differences"]["orphan_link"]["samples"][0]["a_id"],
        json!(a7)
    );

    // 3. A link row deleted from the state database (no sync after it: the next cycle's
    // lookback would read the record again and relink it).
    let a5 = id_named(&world.a, "Pair 00005");
    let url = format!("sqlite://{}", world.dir.path().join("state.db").display());
    let store = orgsync::store::Store::open(&url)
        .await
        .expect("state store");
    assert!(store.delete_link("Opportunity", &a5).await.expect("delete"));
    store.close().await;
    let (_, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(
        counts(&report),
        exactly(&[
            ("value_drift_unexplained", 1),
            ("orphan_link", 1),
            ("unlinked_match", 1)
        ]),
        "{report:#}"
    );
    assert_eq!(
        report["differences"]["unlinked_match"]["samples"][0]["a_id"],
        json!(a5)
    );

    // 4. Two namesakes in A (and one in B), made by the integration user: left unlinked.
    let twin = super::opportunity("Twin", 7_000);
    let integ_a = world.a.integration_username.clone();
    let integ_b = world.b.integration_username.clone();
    world
        .a
        .seed_records(
            "Opportunity",
            Some(&integ_a),
            vec![twin.clone(), twin.clone()],
        )
        .expect("seed A");
    world
        .b
        .seed_records("Opportunity", Some(&integ_b), vec![twin])
        .expect("seed B");
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(
        counts(&report),
        exactly(&[
            ("value_drift_unexplained", 1),
            ("unlinked_match", 1),
            ("orphan_link", 1),
            ("ambiguous", 1)
        ]),
        "{report:#}"
    );
    assert_eq!(code, 1);
    assert_eq!(report["total"], 4);

    // 5. A record only in A, made by the integration user (never synced), and a person's edit
    // in A not synced yet (the next cycle carries it).
    world
        .a
        .seed_records(
            "Opportunity",
            Some(&integ_a),
            vec![super::opportunity("Solo", 7_500)],
        )
        .expect("seed A");
    let a9 = id_named(&world.a, "Pair 00009");
    let mut fields = Map::new();
    fields.insert("StageName".into(), json!("Qualification"));
    client_as(&world.a, "human")
        .update("Opportunity", &[(a9.clone(), fields)])
        .await
        .expect("update in A");
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(
        counts(&report),
        exactly(&[
            ("value_drift_unexplained", 1),
            ("unlinked_match", 1),
            ("orphan_link", 1),
            ("ambiguous", 1),
            ("missing_in_b", 1),
            ("value_drift_explained", 1)
        ]),
        "{report:#}"
    );
    assert_eq!(code, 1);
    assert_eq!(report["total"], 6);
    let explained = &report["differences"]["value_drift_explained"]["samples"][0];
    assert_eq!(explained["a_id"], json!(a9));
    assert_eq!(explained["field"], "StageName");
    assert_eq!(explained["a_value"], "Qualification");
    assert_eq!(explained["b_value"], "Prospecting");
    assert_eq!(
        report["differences"]["missing_in_b"]["samples"][0]["a_id"],
        json!(id_named(&world.a, "Solo"))
    );

    // The last report is kept: status shows it.
    let status = tokio::task::block_in_place(|| world.status());
    assert_eq!(status["reconcile"]["total"], 6, "{status:#}");
    assert_eq!(status["reconcile"]["run_id"], report["run_id"]);

    // A daemon serves the stored report from its start: /metrics and /status.
    let log = world.dir.path().join("daemon.log");
    let mut daemon = super::shell::Running(world.spawn_daemon(&log));
    let addr = super::shell::listening_addr(&log, &mut daemon.0).await;
    let (_, metrics) = super::shell::get(&addr, "/metrics").await;
    for (class, n) in [
        ("value_drift_unexplained", 1),
        ("ambiguous", 1),
        ("missing_in_b", 1),
        ("missing_in_a", 0),
    ] {
        let line = format!("orgsync_reconcile_differences{{class=\"{class}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("orgsync_reconcile_last_run_timestamp_seconds "),
        "{metrics}"
    );
    let (_, status) = super::shell::get(&addr, "/status").await;
    let status: Value = serde_json::from_str(&status).expect("JSON");
    assert_eq!(status["reconcile"]["differences"]["orphan_link"], 1);
    super::shell::stop(daemon);

    // Bad configuration: exit 2, with a clear error.
    let (code, stderr) = tokio::task::block_in_place(|| {
        let out = world
            .command(&["reconcile"])
            .env("ORGSYNC__SYNC__MATCH_BY", "Nope")
            .output()
            .expect("runs");
        (out.status.code().unwrap_or(-1), text(&out.stderr))
    });
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("sync.match_by names \"Nope\", which is not one of sync.fields"),
        "{stderr}"
    );
}

/// Each kind's calls of `org` since `before` (a `/__sim/stats` document), and the API calls.
fn calls_since(org: &sfsim::SimOrg, before: &Value) -> (Map<String, Value>, u64) {
    let now = org.stats();
    let mut kinds = Map::new();
    if let Some(calls) = now["calls"].as_object() {
        for (kind, n) in calls {
            let delta = n.as_u64().unwrap_or(0) - before["calls"][kind].as_u64().unwrap_or(0);
            if delta > 0 {
                kinds.insert(kind.clone(), json!(delta));
            }
        }
    }
    let api = now["api_calls_total"].as_u64().unwrap_or(0)
        - before["api_calls_total"].as_u64().unwrap_or(0);
    (kinds, api)
}

/// 20,000 linked pairs read through Bulk query jobs (threshold lowered to 1,000), with an
/// integration-user edit in B, a lost link and a record deleted in A: exactly those are found,
/// in a handful of API calls per org; `--repair` repairs them in a handful more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_of_20000_pairs_through_bulk_finds_the_drifts_in_a_handful_of_calls() {
    const N: usize = 20_000;
    let world = World::new().await;
    seed(&world.a, "Big", N);
    let bulk = [
        ("ORGSYNC__BATCH__BULK_READ_THRESHOLD", "1000"),
        ("ORGSYNC__BATCH__PAGE_SIZE", "2000"),
    ];
    tokio::task::block_in_place(|| {
        for _ in 0..4 {
            let mut cmd = world.command(&["sync", "--once"]);
            for (k, v) in bulk {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("sync");
            assert!(out.status.success(), "{}", text(&out.stderr));
            if text(&out.stdout)
                .lines()
                .all(|l| l.contains("created 0, updated 0, linked 0"))
            {
                break;
            }
        }
    });
    assert_eq!(super::opportunities(&world.b).len(), N);

    // The drifts: an edit as the integration user in B (the sync skips it), a record deleted
    // in A with deletes ignored, then a link row lost from the state database.
    let b3 = id_named(&world.b, "Big 00003");
    let mut fields = Map::new();
    fields.insert(
        "Description".into(),
        json!("changed behind the sync's back"),
    );
    client_as(&world.b, "integration")
        .update("Opportunity", &[(b3.clone(), fields)])
        .await
        .expect("update in B");
    let a7 = id_named(&world.a, "Big 00007");
    client_as(&world.a, "human")
        .delete(std::slice::from_ref(&a7))
        .await
        .expect("delete in A");
    let a5 = id_named(&world.a, "Big 00005");
    let url = format!("sqlite://{}", world.dir.path().join("state.db").display());
    let store = orgsync::store::Store::open(&url)
        .await
        .expect("state store");
    assert!(store.delete_link("Opportunity", &a5).await.expect("delete"));
    store.close().await;

    let before = [world.a.stats(), world.b.stats()];
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &bulk));
    let (kinds_a, api_a) = calls_since(&world.a, &before[0]);
    let (kinds_b, api_b) = calls_since(&world.b, &before[1]);
    assert_eq!(
        counts(&report),
        exactly(&[
            ("value_drift_unexplained", 1),
            ("orphan_link", 1),
            ("unlinked_match", 1)
        ]),
        "{report:#}"
    );
    assert_eq!(code, 1);
    assert_eq!(report["read"]["a"]["records"], N - 1);
    assert_eq!(report["read"]["b"]["records"], N);
    assert_eq!(report["read"]["a"]["path"], "bulk");
    assert_eq!(report["read"]["b"]["path"], "bulk");
    assert_eq!(report["compared_pairs"], N - 2);
    let sample = &report["differences"]["value_drift_unexplained"]["samples"][0];
    assert_eq!(sample["b_id"], json!(b3));
    assert_eq!(sample["field"], "Description");
    // Per org: 1 REST query page (its totalSize chooses Bulk), 1 describe (the CSV's field
    // types), 1 job create, 1 poll (sfsim's job is complete at the first poll, 0.25 s after
    // the create), ceil(20,000 / 250,000) = 1 results page, 1 job delete: 6. REST would take
    // ceil(20,000 / 2,000) = 10 query calls. And in A, where the deleted record's link
    // has no record read, 1 `queryAll` by Id outside the filter (it finds the record
    // deleted: the orphan link); none in B.
    for (org, kinds, api, lookups) in [("a", &kinds_a, api_a, 1), ("b", &kinds_b, api_b, 0)] {
        assert_eq!(kinds["query"], 1, "org {org}: {kinds:?}");
        assert_eq!(kinds["bulk_results"], 1, "org {org}: {kinds:?}");
        assert_eq!(kinds["bulk_query_create"], 1, "org {org}: {kinds:?}");
        let query_all = kinds.get("query_all").cloned().unwrap_or(json!(0));
        assert_eq!(query_all, lookups, "org {org}: {kinds:?}");
        assert_eq!(api, 6 + lookups, "org {org}: {kinds:?}");
        assert_eq!(
            report["read"][org]["api_calls"],
            6 + lookups,
            "org {org}: {report:#}"
        );
        assert_eq!(
            report["read"][org]["lookup_calls"], lookups,
            "org {org}: {report:#}"
        );
    }

    // --repair at 20,000 pairs: the three repaired (exit 0), for the read's 6 calls per org
    // (7 in A with its lookup) and a handful more (the repair's by-id fetches, lookups and writes, and the login),
    // not in proportion to the records; a second run agrees.
    let before = [world.a.stats(), world.b.stats()];
    let (code, report) =
        tokio::task::block_in_place(|| reconcile_with(&world, &["--repair"], &bulk));
    let (kinds_a, api_a) = calls_since(&world.a, &before[0]);
    let (kinds_b, api_b) = calls_since(&world.b, &before[1]);
    assert_eq!(
        report["repaired"]["value_drift_unexplained"], 1,
        "{report:#}"
    );
    assert_eq!(report["repaired"]["orphan_link"], 1, "{report:#}");
    assert_eq!(report["repaired"]["unlinked_match"], 1, "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    for (org, kinds, api) in [("a", &kinds_a, api_a), ("b", &kinds_b, api_b)] {
        assert!(api <= 7 + 8, "org {org}: {api} API calls: {kinds:?}");
    }
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &bulk));
    assert_eq!(counts(&report), exactly(&[]), "{report:#}");
    assert_eq!(code, 0);
}

/// Every repairable class induced at once, then `reconcile --repair`: each is repaired
/// (counted in `repaired`), the ambiguous key is left for an operator (exit 1), and a second
/// `reconcile` finds only it; the failure queue is empty and the links are as expected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repair_fixes_every_class_but_ambiguous_then_a_second_run_agrees() {
    let world = World::new().await;
    seed(&world.a, "Pair", 20);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    let integ_a = world.a.integration_username.clone();
    let integ_b = world.b.integration_username.clone();

    // value_drift_unexplained: a write as the integration user in B (the sync skips it).
    let b3 = id_named(&world.b, "Pair 00003");
    let mut fields = Map::new();
    fields.insert("Amount".into(), json!(99_999));
    client_as(&world.b, "integration")
        .update("Opportunity", &[(b3.clone(), fields)])
        .await
        .expect("update in B");
    // orphan_link (live, record gone): deleted in A with deletes ignored.
    let a7 = id_named(&world.a, "Pair 00007");
    client_as(&world.a, "human")
        .delete(std::slice::from_ref(&a7))
        .await
        .expect("delete in A");
    tokio::task::block_in_place(|| {
        let out = world
            .command(&["sync", "--once"])
            .env("ORGSYNC__SYNC__DELETES", "ignore")
            .output()
            .expect("sync");
        assert!(out.status.success(), "{}", text(&out.stderr));
    });
    // unlinked_match: a link row lost; orphan_link (tombstone, both live): a link made a
    // tombstone in the store while both records live.
    let a5 = id_named(&world.a, "Pair 00005");
    let (a11, b11) = (
        id_named(&world.a, "Pair 00011"),
        id_named(&world.b, "Pair 00011"),
    );
    let url = format!("sqlite://{}", world.dir.path().join("state.db").display());
    let store = orgsync::store::Store::open(&url)
        .await
        .expect("state store");
    assert!(store.delete_link("Opportunity", &a5).await.expect("delete"));
    // The integration user's write as if the sync had seen it (a change that moved no
    // SystemModstamp past the link's, like a formula's): the link records B's modstamp now,
    // so a pass over either record would drop both versions as recorded.
    let a3 = id_named(&world.a, "Pair 00003");
    let rows = world
        .b
        .db()
        .query(
            &format!("SELECT SystemModstamp FROM Opportunity WHERE Id = '{b3}'"),
            false,
            "62.0",
            chrono::Utc::now(),
        )
        .expect("query");
    let b3_stamp: chrono::DateTime<chrono::Utc> = rows[0]["SystemModstamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.3f%z").ok())
        .expect("a modstamp")
        .into();
    let link = store
        .links_by_a_ids("Opportunity", std::slice::from_ref(&a3))
        .await
        .expect("links")
        .remove(0);
    store
        .upsert_link(&orgsync::store::LinkWrite {
            object: "Opportunity".into(),
            a_id: a3.clone(),
            b_id: b3.clone(),
            a_modstamp: link.a_modstamp,
            b_modstamp: Some(b3_stamp),
            snapshot: link.snapshot.clone(),
        })
        .await
        .expect("link");
    assert!(
        store
            .tombstone_link(&orgsync::store::Tombstone {
                object: "Opportunity".into(),
                a_id: a11.clone(),
                b_id: b11.clone(),
                by: orgsync::store::Org::A,
                at: chrono::Utc::now(),
            })
            .await
            .expect("tombstone")
    );
    store.close().await;
    // ambiguous: two namesakes in A (and one in B); missing_in_b / missing_in_a: records made
    // by the integration user, never synced; value_drift_explained: a person's edit in A.
    let twin = super::opportunity("Twin", 7_000);
    world
        .a
        .seed_records(
            "Opportunity",
            Some(&integ_a),
            vec![
                twin.clone(),
                twin.clone(),
                super::opportunity("Solo A", 7_500),
            ],
        )
        .expect("seed A");
    world
        .b
        .seed_records(
            "Opportunity",
            Some(&integ_b),
            vec![twin, super::opportunity("Solo B", 8_500)],
        )
        .expect("seed B");
    let a9 = id_named(&world.a, "Pair 00009");
    let mut fields = Map::new();
    fields.insert("StageName".into(), json!("Qualification"));
    client_as(&world.a, "human")
        .update("Opportunity", &[(a9.clone(), fields)])
        .await
        .expect("update in A");

    let found = exactly(&[
        ("value_drift_unexplained", 1),
        ("value_drift_explained", 1),
        ("orphan_link", 2),
        ("unlinked_match", 1),
        ("ambiguous", 1),
        ("missing_in_b", 1),
        ("missing_in_a", 1),
    ]);
    let before = [world.a.stats(), world.b.stats()];
    let (code, report) = tokio::task::block_in_place(|| reconcile_with(&world, &["--repair"], &[]));
    let (kinds_a, api_a) = calls_since(&world.a, &before[0]);
    let (kinds_b, api_b) = calls_since(&world.b, &before[1]);
    assert_eq!(counts(&report), found, "{report:#}");
    let mut repaired = found.clone();
    repaired.insert("ambiguous".into(), json!(0));
    assert_eq!(
        report["repaired"].as_object().cloned().unwrap_or_default(),
        repaired,
        "{report:#}"
    );
    assert_eq!(code, 1, "the ambiguous key remains: {report:#}");
    // Per org: the read (1 query page, 20-odd records), then the repair (eight differences
    // in one page per direction): the by-id fetch of the source's ids, the lookup of their
    // counterparts, one collections call per kind of write, the inbox drains' fetches, and
    // the login. Bounded by a dozen per org, not by the number of records.
    for (org, kinds, api) in [("a", &kinds_a, api_a), ("b", &kinds_b, api_b)] {
        assert!(api <= 12, "org {org}: {api} API calls: {kinds:?}");
    }

    // A second run finds only the ambiguous key; the values converged.
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(counts(&report), exactly(&[("ambiguous", 1)]), "{report:#}");
    assert_eq!(code, 1);
    assert!(report.get("repaired").is_none(), "{report:#}");
    let status = tokio::task::block_in_place(|| world.status());
    assert_eq!(status["failures"]["pending"], 0, "{status:#}");
    assert_eq!(status["failures"]["dead"], 0, "{status:#}");

    // The links: the lost one and the tombstone live again, the orphan a tombstone, the
    // missing records linked to new copies.
    let store = orgsync::store::Store::open(&url)
        .await
        .expect("state store");
    let live_a = |links: Vec<orgsync::store::Link>| {
        links
            .into_iter()
            .filter(|l| l.is_live())
            .map(|l| l.b_id)
            .collect::<Vec<_>>()
    };
    let b5 = id_named(&world.b, "Pair 00005");
    let pairs = store
        .links_by_a_ids("Opportunity", std::slice::from_ref(&a5))
        .await
        .expect("links");
    assert_eq!(live_a(pairs), vec![b5]);
    let pairs = store
        .links_by_a_ids("Opportunity", std::slice::from_ref(&a11))
        .await
        .expect("links");
    assert_eq!(live_a(pairs), vec![b11]);
    let orphan = store
        .links_by_a_ids("Opportunity", std::slice::from_ref(&a7))
        .await
        .expect("links");
    assert_eq!(orphan.len(), 1);
    assert_eq!(orphan[0].state, orgsync::store::LinkState::Tombstone);
    let solo_a = id_named(&world.a, "Solo A");
    let pairs = store
        .links_by_a_ids("Opportunity", &[solo_a])
        .await
        .expect("links");
    assert_eq!(live_a(pairs), vec![id_named(&world.b, "Solo A")]);
    let pairs = store
        .links_by_b_ids("Opportunity", &[id_named(&world.b, "Solo B")])
        .await
        .expect("links");
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].a_id, id_named(&world.a, "Solo B"));
    store.close().await;

    // One namesake deleted in A: the key is no longer ambiguous but an unlinked match, which
    // --repair links; everything found repaired: exit 0, and a second run agrees (exit 0).
    let twin = id_named(&world.a, "Twin");
    client_as(&world.a, "human")
        .delete(std::slice::from_ref(&twin))
        .await
        .expect("delete in A");
    let (code, report) = tokio::task::block_in_place(|| reconcile_with(&world, &["--repair"], &[]));
    assert_eq!(
        counts(&report),
        exactly(&[("unlinked_match", 1)]),
        "{report:#}"
    );
    assert_eq!(report["repaired"]["unlinked_match"], 1, "{report:#}");
    assert_eq!(code, 0, "everything found was repaired: {report:#}");
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(counts(&report), exactly(&[]), "{report:#}");
    assert_eq!(code, 0);
}

/// `reconcile --repair` writes to the orgs like a cycle: beside a running daemon (which holds
/// the state database's lock) it is refused, while a plain `reconcile` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repair_is_refused_beside_a_running_daemon() {
    let world = World::new().await;
    seed(&world.a, "Pair", 3);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    let log = world.dir.path().join("daemon.log");
    let mut daemon = super::shell::Running(world.spawn_daemon(&log));
    let _ = super::shell::listening_addr(&log, &mut daemon.0).await;
    let (code, stderr) = tokio::task::block_in_place(|| {
        let out = world
            .command(&["reconcile", "--repair"])
            .output()
            .expect("runs");
        (out.status.code().unwrap_or(-1), text(&out.stderr))
    });
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("lock"), "{stderr}");
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(code, 0, "{report:#}");
    super::shell::stop(daemon);
}

/// The `outside_filter` count of a report.
fn outside_filter(report: &Value) -> &Value {
    &report["outside_filter"]["count"]
}

/// A linked record edited in A so that it leaves `sync.filter` (its Amount lowered below
/// `Amount > 5000`) is no orphan link: nothing was deleted. Reconcile looks it up by Id
/// outside the filter, counts it in `outside_filter` and compares the pair (the sync does not
/// read it any more, so B still holds the old Amount: a drift); `--repair` carries the value
/// and keeps the link live; then the values agree and reconcile exits 0, the pair still
/// counted outside the filter. A record deleted while linked stays an orphan link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_record_that_left_the_filter_is_compared_not_orphaned() {
    let world = World::new().await;
    seed(&world.a, "Pair", 6);
    tokio::task::block_in_place(|| world.sync_until_quiet(3));
    let (a2, b2) = (
        id_named(&world.a, "Pair 00002"),
        id_named(&world.b, "Pair 00002"),
    );
    let mut fields = Map::new();
    fields.insert("Amount".into(), json!(100));
    client_as(&world.a, "human")
        .update("Opportunity", &[(a2.clone(), fields)])
        .await
        .expect("update in A");
    // And a record deleted in A, deletes ignored: that link is an orphan.
    let a4 = id_named(&world.a, "Pair 00004");
    client_as(&world.a, "human")
        .delete(std::slice::from_ref(&a4))
        .await
        .expect("delete in A");
    tokio::task::block_in_place(|| {
        world.sync_until_quiet_with(3, &[("ORGSYNC__SYNC__DELETES", "ignore")])
    });

    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(
        counts(&report),
        exactly(&[("value_drift_explained", 1), ("orphan_link", 1)]),
        "{report:#}"
    );
    assert_eq!(code, 1);
    assert_eq!(report["read"]["a"]["records"], 4, "{report:#}");
    assert_eq!(outside_filter(&report), 1, "{report:#}");
    let sample = &report["outside_filter"]["samples"][0];
    assert_eq!((&sample["a_id"], &sample["b_id"]), (&json!(a2), &json!(b2)));
    let drift = &report["differences"]["value_drift_explained"]["samples"][0];
    assert_eq!(
        (&drift["a_value"], &drift["b_value"]),
        (&json!(100), &json!(6_002))
    );
    assert_eq!(
        report["differences"]["orphan_link"]["samples"][0]["a_id"],
        json!(a4)
    );
    // One lookup statement in A (a2 and a4 in one `Id IN`), none in B.
    assert_eq!(report["read"]["a"]["lookup_calls"], 1, "{report:#}");
    assert_eq!(report["read"]["b"]["lookup_calls"], 0, "{report:#}");

    // --repair carries A's value and tombstones only the orphan.
    let (_, report) = tokio::task::block_in_place(|| reconcile_with(&world, &["--repair"], &[]));
    assert_eq!(report["repaired"]["value_drift_explained"], 1, "{report:#}");
    let url = format!("sqlite://{}", world.dir.path().join("state.db").display());
    let store = orgsync::store::Store::open(&url)
        .await
        .expect("state store");
    let links = store
        .links_by_a_ids("Opportunity", &[a2.clone(), a4.clone()])
        .await
        .expect("links");
    store.close().await;
    let of = |id: &str| links.iter().find(|l| l.a_id == id).expect("a link");
    assert!(of(&a2).is_live(), "{links:?}");
    assert_eq!(of(&a2).b_id, b2);
    assert!(!of(&a4).is_live(), "{links:?}");

    // The values agree now: exit 0, the pair still outside the filter.
    let (code, report) = tokio::task::block_in_place(|| reconcile(&world, &[]));
    assert_eq!(counts(&report), exactly(&[]), "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(outside_filter(&report), 1, "{report:#}");
    assert_eq!(report["total"], 0);
    let status = world.status();
    assert_eq!(status["reconcile"]["outside_filter"], 1, "{status:#}");
    assert_eq!(status["reconcile"]["total"], 0, "{status:#}");
}
