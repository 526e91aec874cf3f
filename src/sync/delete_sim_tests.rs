//! Delete propagation end to end (issue 13): the direction passes over the real client and
//! store against two simulated orgs (sfsim, with its recycle bin, `queryAll`, SOAP
//! `undelete` and hard deletes).

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::sim_tests::{client, config, file_store, start};
use crate::config::DeleteConflictPolicy;
use crate::metrics::Metrics;
use crate::salesforce::Client;
use crate::store::{Direction, FailureClass, LinkState, Store};
use crate::sync::test_support::run_cycle;
use crate::sync::{Mapping, Pass, PassConfig, PassReport};

pub(super) fn mapping() -> Mapping {
    let fields: Vec<String> = ["Name", "StageName", "CloseDate", "Amount"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Mapping::new(&fields, &Default::default(), &Default::default()).expect("mapping")
}

pub(super) fn opportunity(name: &str, amount: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "Name": name, "StageName": "Prospecting", "CloseDate": "2026-06-30", "Amount": amount
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

pub(super) struct Orgs {
    pub(super) sim_a: sfsim::SimOrg,
    pub(super) sim_b: sfsim::SimOrg,
    pub(super) a: Client,
    pub(super) b: Client,
    pub(super) human_a: Client,
    pub(super) human_b: Client,
    pub(super) ab: PassConfig,
    pub(super) ba: PassConfig,
    pub(super) store: Store,
    _dir: tempfile::TempDir,
}

/// The two passes' reports of one cycle.
pub(super) struct Cycle {
    pub(super) ab: PassReport,
    pub(super) ba: PassReport,
}

impl Orgs {
    pub(super) async fn new() -> Orgs {
        let (sim_a, sim_b) = (start("A").await, start("B").await);
        let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
        let user_a = a.user_id().await.expect("login A");
        let user_b = b.user_id().await.expect("login B");
        let (store, dir) = file_store().await;
        Orgs {
            human_a: client(&sim_a, "human"),
            human_b: client(&sim_b, "human"),
            sim_a,
            sim_b,
            a,
            b,
            ab: config(Direction::AToB, user_a, 1),
            ba: config(Direction::BToA, user_b, 1),
            store,
            _dir: dir,
        }
    }

    /// Changes both directions' configurations.
    pub(super) fn configure(&mut self, change: impl Fn(&mut PassConfig)) {
        change(&mut self.ab);
        change(&mut self.ba);
    }

    pub(super) async fn cycle(&mut self) -> Cycle {
        self.ab.cycle += 1;
        self.ba.cycle += 1;
        let report = run_cycle(
            &self.ab,
            &self.ba,
            &mapping(),
            &self.a,
            &self.b,
            &self.store,
            &CancellationToken::new(),
        )
        .await;
        assert!(report.complete(), "{report:?}");
        let ab = report.a_to_b.expect("A -> B");
        let ba = report.b_to_a.expect("B -> A").expect("B -> A");
        Cycle { ab, ba }
    }

    /// Records created by a person; their ids.
    pub(super) async fn create(human: &Client, names: &[String]) -> Vec<String> {
        let bodies: Vec<_> = names.iter().map(|n| opportunity(n, 6000)).collect();
        let mut ids = Vec::new();
        for chunk in bodies.chunks(200) {
            for r in human.create("Opportunity", chunk).await.expect("create") {
                ids.push(r.expect("created").id);
            }
        }
        ids
    }

    /// The live opportunities of an org: (Id, Name, Amount).
    pub(super) async fn rows(client: &Client) -> Vec<(String, String, f64)> {
        let mut rows: Vec<(String, String, f64)> = client
            .query_collect("SELECT Id, Name, Amount FROM Opportunity")
            .await
            .expect("query")
            .iter()
            .map(|r| {
                (
                    r["Id"].as_str().unwrap_or_default().to_string(),
                    r["Name"].as_str().unwrap_or_default().to_string(),
                    r["Amount"].as_f64().unwrap_or_default(),
                )
            })
            .collect();
        rows.sort_by(|x, y| x.1.cmp(&y.1));
        rows
    }

    pub(super) async fn names(client: &Client) -> Vec<String> {
        Self::rows(client).await.into_iter().map(|r| r.1).collect()
    }

    /// The B id linked (live) to A record `a_id`.
    pub(super) async fn linked_b(&self, a_id: &str) -> String {
        let links = self
            .store
            .links_by_a_ids("Opportunity", &[a_id.to_string()])
            .await
            .expect("links");
        links
            .iter()
            .find(|l| l.is_live())
            .map(|l| l.b_id.clone())
            .expect("a live link")
    }

    pub(super) async fn tombstones(&self) -> usize {
        self.store
            .links_where(None, Some(LinkState::Tombstone))
            .await
            .expect("links")
            .len()
    }

    /// Calls of `kind` in both orgs, by sfsim's stats kinds (the pipeline writes through
    /// sObject Collections: `collections_create`, `collections_update`, `collections_delete`;
    /// a kind sfsim never counts would make an assertion that cannot fail, so it panics).
    pub(super) fn calls(&self, kind: &str) -> u64 {
        assert!(
            !matches!(kind, "create" | "update" | "delete"),
            "{kind}: the single-record REST kind; the pipeline's writes are collections_{kind}"
        );
        self.sim_a.calls(kind) + self.sim_b.calls(kind)
    }

    pub(super) fn api_calls(&self) -> u64 {
        let total = |s: &sfsim::SimOrg| s.stats()["api_calls_total"].as_u64().unwrap_or(0);
        total(&self.sim_a) + total(&self.sim_b)
    }
}

pub(super) fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_propagate_both_ways_and_the_cycle_after_writes_nothing_with_one_query_per_direction()
 {
    for shared_user in [false, true] {
        let mut o = Orgs::new().await;
        // People sharing the integration user: the changes query no longer leaves our own
        // deletes out; their tombstones recognise them.
        o.configure(|c| c.skip_integration_user_changes = !shared_user);
        let from_a = Orgs::create(&o.human_a, &names("A", 3)).await;
        let from_b = Orgs::create(&o.human_b, &names("B", 2)).await;
        o.cycle().await;
        assert_eq!(Orgs::names(&o.human_b).await.len(), 5);
        assert_eq!(Orgs::names(&o.human_a).await.len(), 5);

        o.human_a.delete(&from_a[..1]).await.expect("delete in A");
        o.human_b.delete(&from_b[..1]).await.expect("delete in B");
        let deletes_before = o.calls("collections_delete");
        let cycle = o.cycle().await;
        assert_eq!(
            (cycle.ab.deleted, cycle.ba.deleted),
            (1, 1),
            "shared {shared_user}"
        );
        // One collections delete call per direction.
        assert_eq!(o.calls("collections_delete") - deletes_before, 2);
        let expect: Vec<String> = ["A 001", "A 002", "B 001"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(Orgs::names(&o.human_a).await, expect);
        assert_eq!(Orgs::names(&o.human_b).await, expect);
        assert_eq!(o.tombstones().await, 2);

        // Quiet: no writes, one query per direction (our own deletes do not come back).
        let (before, deletes, writes) = (
            o.api_calls(),
            o.calls("collections_delete"),
            o.calls("collections_create") + o.calls("collections_update"),
        );
        let cycle = o.cycle().await;
        assert_eq!(o.api_calls() - before, 2, "shared {shared_user}");
        assert_eq!(o.calls("collections_delete"), deletes);
        assert_eq!(
            o.calls("collections_create") + o.calls("collections_update"),
            writes
        );
        assert_eq!((cycle.ab.deleted, cycle.ba.deleted), (0, 0));
        assert_eq!(Orgs::names(&o.human_a).await, expect);
        assert!(o.store.failures(None).await.expect("failures").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_deletes_ignored_the_query_is_query_and_copies_stay() {
    let mut o = Orgs::new().await;
    o.configure(|c| c.deletes.propagate = false);
    let ids = Orgs::create(&o.human_a, &names("A", 2)).await;
    o.cycle().await;
    o.human_a.delete(&ids[..1]).await.expect("delete in A");
    let cycle = o.cycle().await;
    assert_eq!(cycle.ab.deleted, 0);
    assert_eq!(o.calls("query_all"), 0, "today's query endpoint");
    assert!(o.calls("query") > 0);
    assert_eq!(Orgs::names(&o.human_b).await.len(), 2, "the copy stays");
    assert_eq!(o.tombstones().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_against_an_edit_since_the_last_sync_converges_under_both_policies() {
    // keep_edit: the edited copy survives, the deleted record is restored with the edit.
    for a_deletes in [true, false] {
        let mut o = Orgs::new().await;
        let a_id = Orgs::create(&o.human_a, &names("A", 1)).await.remove(0);
        o.cycle().await;
        let b_id = o.linked_b(&a_id).await;
        let mut edit = Map::new();
        edit.insert("Amount".into(), json!(777));
        if a_deletes {
            o.human_a
                .delete(std::slice::from_ref(&a_id))
                .await
                .expect("delete A");
            o.human_b
                .update("Opportunity", &[(b_id.clone(), edit)])
                .await
                .expect("edit B");
        } else {
            o.human_b
                .delete(std::slice::from_ref(&b_id))
                .await
                .expect("delete B");
            o.human_a
                .update("Opportunity", &[(a_id.clone(), edit)])
                .await
                .expect("edit A");
        }
        let cycle = o.cycle().await;
        assert_eq!(
            cycle.ab.delete_conflicts + cycle.ba.delete_conflicts,
            1,
            "a_deletes {a_deletes}"
        );
        for c in [&o.human_a, &o.human_b] {
            let rows = Orgs::rows(c).await;
            assert_eq!(rows.len(), 1, "a_deletes {a_deletes}: {rows:?}");
            assert_eq!(rows[0].2, 777.0, "a_deletes {a_deletes}: {rows:?}");
        }
        assert_eq!(o.linked_b(&a_id).await, b_id, "the link stays live");
        // Nothing left for an operator (the edit that found its target deleted is settled).
        assert!(o.store.failures(None).await.expect("failures").is_empty());
        let (before, writes) = (
            o.api_calls(),
            o.calls("collections_create") + o.calls("collections_update"),
        );
        o.cycle().await;
        assert_eq!(o.api_calls() - before, 2, "quiet after the conflict");
        assert_eq!(
            o.calls("collections_create") + o.calls("collections_update"),
            writes
        );
    }

    // delete: the delete wins over the edit.
    let mut o = Orgs::new().await;
    o.configure(|c| c.deletes.conflict = DeleteConflictPolicy::Delete);
    let a_id = Orgs::create(&o.human_a, &names("A", 1)).await.remove(0);
    o.cycle().await;
    let b_id = o.linked_b(&a_id).await;
    let mut edit = Map::new();
    edit.insert("Amount".into(), json!(777));
    o.human_a
        .delete(std::slice::from_ref(&a_id))
        .await
        .expect("delete A");
    o.human_b
        .update("Opportunity", &[(b_id, edit)])
        .await
        .expect("edit B");
    let cycle = o.cycle().await;
    assert_eq!((cycle.ab.delete_conflicts, cycle.ab.deleted), (1, 1));
    assert!(Orgs::names(&o.human_a).await.is_empty());
    assert!(Orgs::names(&o.human_b).await.is_empty());
    assert_eq!(o.tombstones().await, 1);
    let before = o.api_calls();
    o.cycle().await;
    assert_eq!(o.api_calls() - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_delete_over_the_breaker_is_held_whole_then_applied_by_an_operators_retry() {
    let mut o = Orgs::new().await;
    o.configure(|c| c.deletes.max_per_cycle = 100);
    let ids = Orgs::create(&o.human_a, &names("A", 150)).await;
    o.cycle().await;
    assert_eq!(Orgs::names(&o.human_b).await.len(), 150);

    o.human_a.delete(&ids).await.expect("delete 150 in A");
    let deletes = o.calls("collections_delete");
    let cycle = o.cycle().await;
    assert_eq!((cycle.ab.deleted, cycle.ab.held), (0, 150));
    assert_eq!(
        o.calls("collections_delete"),
        deletes,
        "no delete call at all"
    );
    assert_eq!(Orgs::names(&o.human_b).await.len(), 150);
    let failures = o.store.failures(None).await.expect("failures");
    assert_eq!(failures.len(), 150);
    assert!(
        failures
            .iter()
            .all(|f| f.error_code == "DELETE_HELD" && f.class == FailureClass::NeedsOperator)
    );
    // Held, they wait: another cycle applies nothing.
    let cycle = o.cycle().await;
    assert_eq!(cycle.ab.deleted, 0);
    assert_eq!(Orgs::names(&o.human_b).await.len(), 150);

    // The operator applies them: the next cycle deletes all 150, past the breaker.
    assert_eq!(
        o.store
            .retry_failures_with_code("DELETE_HELD")
            .await
            .expect("retry"),
        150
    );
    let cycle = o.cycle().await;
    assert_eq!(cycle.ab.deleted, 150);
    assert!(Orgs::names(&o.human_b).await.is_empty());
    assert!(o.store.failures(None).await.expect("failures").is_empty());
    assert_eq!(o.tombstones().await, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_deletes_by_id_go_through_the_delete_path_without_moving_the_watermark() {
    let mut o = Orgs::new().await;
    let ids = Orgs::create(&o.human_a, &names("A", 3)).await;
    o.cycle().await;
    // Deleted and purged at once: queryAll cannot read it any more.
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/hard_delete", o.sim_a.base_url))
        .json(&json!({"ids": [ids[0]], "as_user": "human@a.sim"}))
        .send()
        .await
        .expect("hard delete");
    assert!(reply.status().is_success());
    let watermark = o
        .store
        .watermark(crate::store::Org::A, "Opportunity")
        .await
        .expect("watermark");
    let metrics = Metrics::default();
    let m = mapping();
    let pass = Pass::new(&o.ab, &m, &o.a, &o.b, &o.store, &metrics);
    // An unknown id and a repeated one do nothing.
    let report = pass
        .apply_source_deletes(
            vec![ids[0].clone(), ids[0].clone(), "006000000000000AAA".into()],
            &CancellationToken::new(),
        )
        .await
        .expect("deletes");
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(Orgs::names(&o.human_b).await, vec!["A 001", "A 002"]);
    assert_eq!(o.tombstones().await, 1);
    assert_eq!(
        o.store
            .watermark(crate::store::Org::A, "Opportunity")
            .await
            .expect("watermark"),
        watermark
    );
    // Replayed: harmless.
    let again = pass
        .apply_source_deletes(vec![ids[0].clone()], &CancellationToken::new())
        .await
        .expect("deletes");
    assert_eq!(again.deleted, 0);
    let cycle = o.cycle().await;
    assert_eq!(cycle.ab.deleted + cycle.ba.deleted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_held_delete_keeps_the_copy_and_its_live_link() {
    let mut o = Orgs::new().await;
    o.configure(|c| c.deletes.max_per_cycle = 1);
    let ids = Orgs::create(&o.human_a, &names("A", 2)).await;
    o.cycle().await;
    o.human_a.delete(&ids).await.expect("delete 2 in A");
    let cycle = o.cycle().await;
    assert_eq!(cycle.ab.held, 2);
    for f in o.store.failures(None).await.expect("failures") {
        assert!(o.store.discard_failure(f.id).await.expect("discard"));
    }
    // The next cycles re-read the deletes (the lookback): replays, not deletes.
    for _ in 0..2 {
        let cycle = o.cycle().await;
        assert_eq!((cycle.ab.deleted, cycle.ab.held), (0, 0));
    }
    assert_eq!(
        Orgs::names(&o.human_b).await.len(),
        2,
        "the copies are kept"
    );
    assert!(o.store.failures(None).await.expect("failures").is_empty());
    o.linked_b(&ids[0]).await;
    assert_eq!(o.tombstones().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_delete_whose_source_was_purged_before_the_retry_is_still_applied() {
    let mut o = Orgs::new().await;
    o.configure(|c| c.deletes.max_per_cycle = 1);
    let ids = Orgs::create(&o.human_a, &names("A", 3)).await;
    o.cycle().await;
    o.human_a.delete(&ids[..2]).await.expect("delete 2 in A");
    assert_eq!(o.cycle().await.ab.held, 2);
    // The recycle bin is emptied: queryAll cannot read the two any more.
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/recycle_bin/purge", o.sim_a.base_url))
        .json(&json!({}))
        .send()
        .await
        .expect("purge");
    assert!(reply.status().is_success());
    assert_eq!(
        o.store
            .retry_failures_with_code("DELETE_HELD")
            .await
            .expect("retry"),
        2
    );
    let cycle = o.cycle().await;
    assert_eq!(cycle.ab.deleted, 2, "{:?}", cycle.ab);
    assert_eq!(Orgs::names(&o.human_b).await, vec!["A 002"]);
    assert!(o.store.failures(None).await.expect("failures").is_empty());
    assert_eq!(o.tombstones().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_deleted_on_both_sides_becomes_a_tombstone_without_a_delete_call() {
    let mut o = Orgs::new().await;
    let a_id = Orgs::create(&o.human_a, &names("A", 1)).await.remove(0);
    o.cycle().await;
    let b_id = o.linked_b(&a_id).await;
    o.human_a
        .delete(std::slice::from_ref(&a_id))
        .await
        .expect("delete A");
    o.human_b
        .delete(std::slice::from_ref(&b_id))
        .await
        .expect("delete B");
    let deletes = o.calls("collections_delete");
    let cycle = o.cycle().await;
    assert_eq!((cycle.ab.deleted, cycle.ba.deleted), (0, 0));
    assert_eq!(
        o.calls("collections_delete"),
        deletes,
        "the target was gone already"
    );
    assert_eq!(o.tombstones().await, 1);
    assert!(o.store.failures(None).await.expect("failures").is_empty());
}

/// The integration clients of `o` reading 200 rows a batch (so a result of more rows than
/// that and than the breaker's limit is not settled by its first batch).
fn small_batches(o: &mut Orgs) {
    let small = |c: &Client| {
        let options = crate::salesforce::ClientOptions {
            query_batch_size: Some(200),
            ..crate::salesforce::ClientOptions::fast()
        };
        Client::with_options(c.settings(), options).expect("client")
    };
    o.a = small(&o.a);
    o.b = small(&o.b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_with_deletes_counts_them_with_one_query_before_any_delete() {
    for deleted in [150usize, 50, 0] {
        let mut o = Orgs::new().await;
        small_batches(&mut o);
        o.configure(|c| c.deletes.max_per_cycle = 100);
        let ids = Orgs::create(&o.human_a, &names("A", 400)).await;
        o.cycle().await;
        // 250 edits and the deletes: more rows than one batch and than the limit.
        let mut edit = Map::new();
        edit.insert("Amount".into(), json!(9000));
        let edits: Vec<(String, Map<String, Value>)> = ids[..250]
            .iter()
            .map(|id| (id.clone(), edit.clone()))
            .collect();
        for chunk in edits.chunks(200) {
            o.human_a.update("Opportunity", chunk).await.expect("edit");
        }
        if deleted > 0 {
            o.human_a
                .delete(&ids[400 - deleted..])
                .await
                .expect("delete");
        }
        let (queries, deletes) = (o.sim_a.calls("query_all"), o.calls("collections_delete"));
        let cycle = o.cycle().await;
        // In A: the changes query (its next batch is a query_more) and, only when a page has
        // a delete to make, the count.
        let count = u64::from(deleted > 0);
        assert_eq!(
            o.sim_a.calls("query_all") - queries,
            1 + count,
            "deleted {deleted}"
        );
        assert_eq!(cycle.ab.updated, 250);
        if deleted > 100 {
            assert_eq!((cycle.ab.deleted, cycle.ab.held), (0, deleted as u64));
            assert_eq!(o.calls("collections_delete"), deletes, "no delete call");
        } else {
            assert_eq!((cycle.ab.deleted, cycle.ab.held), (deleted as u64, 0));
        }
    }
}
