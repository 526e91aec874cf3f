//! The undelete stage of the page pipeline end to end (issue 13): a record restored from its
//! recycle bin after its delete was propagated brings its copy back, both ways: undeleted
//! when the copy is still in its recycle bin, created again and relinked when it was purged,
//! and never duplicated when a crash left a re-created copy unlinked.

use serde_json::{Map, Value, json};

use tokio_util::sync::CancellationToken;

use super::delete_sim_tests::{Orgs, mapping, names, opportunity};
use crate::metrics::Metrics;
use crate::salesforce::Client;
use crate::store::LinkState;
use crate::sync::Pass;

async fn purge(sim: &sfsim::SimOrg, id: &str) {
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/recycle_bin/purge", sim.base_url))
        .json(&json!({"ids": [id]}))
        .send()
        .await
        .expect("purge");
    assert!(reply.status().is_success(), "{}", reply.status());
}

fn amount(value: i64) -> Map<String, Value> {
    let mut edit = Map::new();
    edit.insert("Amount".into(), json!(value));
    edit
}

/// Who deletes and restores: the source of the undelete (`a_deletes`: A).
struct Sides<'o> {
    person: &'o Client,
    target_sim: &'o sfsim::SimOrg,
    target: &'o Client,
}

fn sides(o: &Orgs, a_deletes: bool) -> Sides<'_> {
    if a_deletes {
        Sides {
            person: &o.human_a,
            target_sim: &o.sim_b,
            target: &o.human_b,
        }
    } else {
        Sides {
            person: &o.human_b,
            target_sim: &o.sim_a,
            target: &o.human_a,
        }
    }
}

/// A synced pair, the source deleted by a person and the delete propagated (the link a
/// tombstone), the copy purged from its recycle bin when `purged`, then the source restored
/// and edited (Amount 500). Returns (source id, target id before).
async fn deleted_then_restored(o: &mut Orgs, a_deletes: bool, purged: bool) -> (String, String) {
    let a_id = Orgs::create(&o.human_a, &names("U", 1)).await.remove(0);
    o.cycle().await;
    let b_id = o.linked_b(&a_id).await;
    let (source_id, target_id) = if a_deletes {
        (a_id, b_id)
    } else {
        (b_id, a_id)
    };
    let s = sides(o, a_deletes);
    s.person
        .delete(std::slice::from_ref(&source_id))
        .await
        .expect("delete");
    let cycle = o.cycle().await;
    assert_eq!(cycle.ab.deleted + cycle.ba.deleted, 1);
    assert_eq!(o.tombstones().await, 1);
    let s = sides(o, a_deletes);
    if purged {
        purge(s.target_sim, &target_id).await;
    }
    let restored = s
        .person
        .undelete(std::slice::from_ref(&source_id))
        .await
        .expect("undelete");
    assert!(restored[0].is_ok(), "{restored:?}");
    s.person
        .update("Opportunity", &[(source_id.clone(), amount(500))])
        .await
        .expect("edit");
    (source_id, target_id)
}

/// Both orgs hold the one record with the edit, and its link is live (the tombstone revived
/// in place): the target's id in it.
async fn assert_restored(o: &Orgs, a_deletes: bool) -> String {
    for c in [&o.human_a, &o.human_b] {
        let rows = Orgs::rows(c).await;
        assert_eq!(rows.len(), 1, "a_deletes {a_deletes}: {rows:?}");
        assert_eq!(rows[0].2, 500.0, "a_deletes {a_deletes}: {rows:?}");
    }
    let links = o.store.links_where(None, None).await.expect("links");
    assert_eq!(links.len(), 1, "revived in place: {links:?}");
    assert_eq!(links[0].state, LinkState::Live);
    assert_eq!((links[0].deleted_at, links[0].deleted_by), (None, None));
    let (a, b) = (Orgs::rows(&o.human_a).await, Orgs::rows(&o.human_b).await);
    assert_eq!((&links[0].a_id, &links[0].b_id), (&a[0].0, &b[0].0));
    if a_deletes {
        links[0].b_id.clone()
    } else {
        links[0].a_id.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeleted_source_brings_its_copy_back_from_the_recycle_bin_or_anew_both_ways() {
    for a_deletes in [true, false] {
        for purged in [false, true] {
            let mut o = Orgs::new().await;
            let (_source_id, old_target) = deleted_then_restored(&mut o, a_deletes, purged).await;
            let (undeletes, creates) = (o.calls("undelete"), o.calls("collections_create"));
            o.cycle().await;
            let case = format!("a_deletes {a_deletes}, purged {purged}");
            let target_id = assert_restored(&o, a_deletes).await;
            assert_eq!(
                target_id == old_target,
                !purged,
                "{case}: a new id when purged"
            );
            assert_eq!(
                o.calls("undelete") - undeletes,
                1,
                "{case}: one undelete call"
            );
            assert_eq!(
                o.calls("collections_create") - creates,
                u64::from(purged),
                "{case}: created again only when purged"
            );
            assert!(o.store.failures(None).await.expect("failures").is_empty());
            // Quiet: our own restore does not come back.
            let (before, writes) = (
                o.api_calls(),
                o.calls("collections_create") + o.calls("collections_update"),
            );
            o.cycle().await;
            assert_eq!(o.api_calls() - before, 2, "{case}: one query per direction");
            assert_eq!(
                o.calls("collections_create") + o.calls("collections_update"),
                writes,
                "{case}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_recreated_before_a_crash_is_linked_again_not_duplicated() {
    // The state a `kill -9` between the re-creation and the page's commit leaves: the purged
    // copy created again in the target (same values), not linked, the link still a tombstone.
    for ext in [false, true] {
        let mut o = Orgs::new().await;
        if ext {
            for sim in [&o.sim_a, &o.sim_b] {
                let reply = reqwest::Client::new()
                    .post(format!("{}/__sim/schema", sim.base_url))
                    .json(
                        &json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string",
                        "length": 64, "externalId": true, "unique": true}),
                    )
                    .send()
                    .await
                    .expect("schema");
                assert!(reply.status().is_success());
            }
            o.configure(|c| c.external_id_field = Some("Ext_Id__c".into()));
        }
        let (source_id, _) = deleted_then_restored(&mut o, true, true).await;
        let mut copy = opportunity("U 000", 500);
        if ext {
            copy.insert("Ext_Id__c".into(), json!(source_id));
        }
        let s = sides(&o, true);
        let made = s.target.create("Opportunity", &[copy]).await.expect("copy");
        let copy_id = made[0].as_ref().expect("created").id.clone();
        let creates = o.calls("collections_create") + o.calls("collections_upsert");
        o.cycle().await;
        let target_id = assert_restored(&o, true).await;
        assert_eq!(target_id, copy_id, "ext {ext}: the copy is linked");
        assert_eq!(
            o.calls("collections_create") + o.calls("collections_upsert"),
            creates,
            "ext {ext}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_conflict_whose_deleted_source_was_purged_recreates_it_with_the_edit() {
    // keep_edit: the edited copy survives; the deleted record, gone from its recycle bin,
    // cannot be undeleted: it is created again from the edit and relinked.
    for a_deletes in [true, false] {
        let mut o = Orgs::new().await;
        let a_id = Orgs::create(&o.human_a, &names("K", 1)).await.remove(0);
        o.cycle().await;
        let b_id = o.linked_b(&a_id).await;
        let (deleter, deleted, editor, edited, deleter_sim) = if a_deletes {
            (&o.human_a, &a_id, &o.human_b, &b_id, &o.sim_a)
        } else {
            (&o.human_b, &b_id, &o.human_a, &a_id, &o.sim_b)
        };
        deleter
            .delete(std::slice::from_ref(deleted))
            .await
            .expect("delete");
        purge(deleter_sim, deleted).await;
        editor
            .update("Opportunity", &[(edited.clone(), amount(777))])
            .await
            .expect("edit");
        // Purged before any poll read it: the getDeleted safety net lists it (its ids go
        // through the delete path, as the daemon hands them).
        let metrics = Metrics::default();
        let m = mapping();
        let report = if a_deletes {
            Pass::new(&o.ab, &m, &o.a, &o.b, &o.store, &metrics)
                .apply_source_deletes(vec![deleted.clone()], &CancellationToken::new())
                .await
        } else {
            Pass::new(&o.ba, &m, &o.b, &o.a, &o.store, &metrics)
                .apply_source_deletes(vec![deleted.clone()], &CancellationToken::new())
                .await
        }
        .expect("known deletes");
        let case = format!("a_deletes {a_deletes}");
        assert_eq!(report.delete_conflicts, 1, "{case}: {report:?}");
        assert_eq!(report.created, 1, "{case}: {report:?}");
        o.cycle().await;
        for c in [&o.human_a, &o.human_b] {
            let rows = Orgs::rows(c).await;
            assert_eq!(rows.len(), 1, "{case}: {rows:?}");
            assert_eq!(rows[0].2, 777.0, "{case}: {rows:?}");
        }
        let links = o.store.links_where(None, None).await.expect("links");
        assert_eq!(links.len(), 1, "{case}: {links:?}");
        assert_eq!(links[0].state, LinkState::Live, "{case}");
        let (a, b) = (Orgs::rows(&o.human_a).await, Orgs::rows(&o.human_b).await);
        assert_eq!(
            (&links[0].a_id, &links[0].b_id),
            (&a[0].0, &b[0].0),
            "{case}"
        );
        assert_ne!(
            if a_deletes { &a[0].0 } else { &b[0].0 },
            deleted,
            "{case}: created again"
        );
        assert!(
            o.store.failures(None).await.expect("failures").is_empty(),
            "{case}"
        );
        let (before, writes) = (
            o.api_calls(),
            o.calls("collections_create") + o.calls("collections_update"),
        );
        o.cycle().await;
        assert_eq!(o.api_calls() - before, 2, "{case}: quiet after");
        assert_eq!(
            o.calls("collections_create") + o.calls("collections_update"),
            writes,
            "{case}"
        );
    }
}
