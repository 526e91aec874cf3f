//! Convergence under random edits (DESIGN §2.1, §2.2, §2.3), several seeds.

use super::*;

// ---------------------------------------------------------------------------------------------
// Convergence under random edits (DESIGN §2.1, §2.2, §2.3), several seeds.
// ---------------------------------------------------------------------------------------------

async fn cycle(w: &World, number: u64) -> crate::sync::test_support::CycleReport {
    let mut ab = config(Direction::AToB);
    let mut ba = config(Direction::BToA);
    ab.cycle = number;
    ba.cycle = number;
    ab.page_size = 7;
    ba.page_size = 7;
    crate::sync::test_support::run_cycle(
        &ab,
        &ba,
        &w.mapping,
        &w.a,
        &w.b,
        &w.store,
        &CancellationToken::new(),
    )
    .await
}

fn random_edit(rng: &mut rand::rngs::StdRng, org: &FakeOrg, serial: &mut u32) {
    use rand::Rng;
    let ids: Vec<String> = org.state().records.keys().cloned().collect();
    if ids.is_empty() || rng.random_bool(0.3) {
        *serial += 1;
        org.human_create(vec![opp(&format!("R{serial}"), rng.random_range(0..100))]);
        return;
    }
    let id = &ids[rng.random_range(0..ids.len())];
    match rng.random_range(0..3) {
        0 => org.human_edit(id, json!({"Amount": rng.random_range(0..100)})),
        1 => {
            let stage = ["Prospecting", "Closed Won", "Closed Lost"][rng.random_range(0..3)];
            org.human_edit(id, json!({ "StageName": stage }));
        }
        _ => {
            *serial += 1;
            org.human_edit(id, json!({"Name": format!("R{serial}")}));
        }
    }
}

#[tokio::test]
async fn random_edits_in_both_orgs_converge_without_duplicates_then_go_quiet() {
    use rand::{Rng, SeedableRng};
    for seed in 0..20u64 {
        let w = World::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut serial = 0;
        for n in 0..6 {
            for _ in 0..rng.random_range(1..12) {
                let org = if rng.random_bool(0.5) { &w.a } else { &w.b };
                random_edit(&mut rng, org, &mut serial);
                // Time passes unevenly in the two orgs.
                org.state().clock_ms += rng.random_range(0..3);
            }
            let report = cycle(&w, n).await;
            assert!(report.complete(), "seed {seed} cycle {n}: {report:?}");
        }
        // People stop editing: within two cycles every pair is equal.
        for n in 6..8 {
            cycle(&w, n).await;
        }
        let state = w.store.state();
        assert!(
            state.failures.is_empty(),
            "seed {seed}: {:?}",
            state.failures
        );
        assert_eq!(w.a.len(), w.b.len(), "seed {seed}");
        assert_eq!(state.links.len(), w.a.len(), "seed {seed}");
        for link in &state.links {
            let a = w.mapping.to_canonical(Org::A, &w.a.get(&link.a_id));
            let b = w.mapping.to_canonical(Org::B, &w.b.get(&link.b_id));
            assert_eq!(a, b, "seed {seed}: {} <-> {}", link.a_id, link.b_id);
        }
        // And quiet: no writes, one query per direction.
        w.reset_calls();
        cycle(&w, 8).await;
        assert_eq!(
            w.a.calls().writes() + w.b.calls().writes(),
            0,
            "seed {seed}"
        );
        assert_eq!(w.a.calls().total() + w.b.calls().total(), 2, "seed {seed}");
    }
}

#[tokio::test]
async fn inbox_notifications_are_fetched_fresh_deduplicated_and_marked_processed() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Pushed", 1)]);
    // The watermark is already past the record: only the inbox can bring it.
    w.store
        .set_watermark(Org::A, base_time() + chrono::Duration::days(1));
    {
        let mut s = w.store.0.state.lock().expect("lock");
        for (n, (object, record)) in [
            ("Opportunity", ids[0].as_str()),
            ("Opportunity", ids[0].as_str()),
            ("Account", "001A"),
            ("Opportunity", "006A-deleted"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = n as i64 + 100;
            s.inbox.push((
                InboxItem {
                    id,
                    org: Org::A,
                    notification_id: format!("04l{id}"),
                    object: object.into(),
                    record_id: record.into(),
                    received_at: Utc::now(),
                },
                false,
            ));
        }
    }
    // The notification carried stale values; the record is read fresh.
    w.a.human_edit(&ids[0], json!({"Amount": 7}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1);
    assert_eq!(w.b.find_by_name("Pushed")[0]["Amount"], json!(7));
    assert!(w.store.state().inbox.iter().all(|(_, done)| *done));
    // One fetch by id for the whole batch, one lookup, one create.
    assert_eq!(w.a.calls().query, 2, "{:?}", w.a.calls());
}
