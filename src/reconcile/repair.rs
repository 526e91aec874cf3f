//! `orgsync reconcile --repair` (issue 14, part 2): after the comparison, every difference
//! found is repaired through the same engine as a cycle ([`Pass::sync_ids`]: the ids fetched
//! fresh and run through the page pipeline, so matching, `sync.conflict` and the failure
//! queue apply), and each repair is logged ([`DifferenceRepaired`]) and counted.
//!
//! - `missing_in_b` / `missing_in_a`: the record's id through the pass from the org that has
//!   it: created in the other org and linked (or matched, if a copy appeared since).
//! - `value_drift_explained`: both ids through their passes; the side that changed since the
//!   link's snapshot is carried (the other side's version is recorded and dropped).
//! - `value_drift_unexplained`: neither side's modstamp moved past the link's (or only by
//!   changes the sync skips), so a pass would drop both versions as recorded; the link's
//!   snapshot and modstamps are forgotten first ([`Store::forget_link_snapshot`]), so the
//!   plan sees every differing field as changed on both sides and `sync.conflict` picks the
//!   winner, field by field, as for a pair linked by hand.
//! - `orphan_link`: a live link whose record is gone becomes a tombstone (by the org whose
//!   record is gone); a tombstone whose records both live is made live again
//!   ([`Store::link_by_hand`]: empty snapshot) and merged like an unexplained drift.
//! - `unlinked_match`: linked ([`Store::link_by_hand`], as `orgsync links link`), then
//!   merged.
//! - `ambiguous`: not repaired: an operator picks the pair (`orgsync links link`).
//!
//! After the two by-id passes (A -> B, then B -> A), each direction's inbox is drained once,
//! so that a value the policy gave to the target side is carried back. A difference counts
//! as repaired when its action held and neither record is in the failure queue afterwards.

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::report::Class;
use crate::config::Settings;
use crate::domain::Direction;
use crate::events::reconcile::DifferenceRepaired;
use crate::metrics::Metrics;
use crate::salesforce::Client;
use crate::store::{Org, OrphanRow, Store, Tombstone};
use crate::sync::{Mapping, Pass, PassConfig, PassReport};

/// The differences a comparison found that `--repair` acts on (their ids), collected only
/// when repairing (memory in proportion to the differences, not the records).
#[derive(Debug, Default)]
pub struct Found {
    pub enabled: bool,
    /// A ids.
    pub missing_in_b: Vec<String>,
    /// B ids.
    pub missing_in_a: Vec<String>,
    /// (A id, B id) pairs.
    pub drift_explained: Vec<(String, String)>,
    pub drift_unexplained: Vec<(String, String)>,
    pub orphans: Vec<OrphanRow>,
    pub unlinked: Vec<(String, String)>,
}

/// A difference acted on, and the records whose outcome decides whether it held.
struct Attempt {
    class: Class,
    a_id: Option<String>,
    b_id: Option<String>,
    action: &'static str,
    /// Why the action itself could not be taken (then it is not repaired).
    refused: Option<String>,
    /// Whether a live link between `a_id` and `b_id` must exist afterwards.
    needs_live_link: bool,
}

impl Attempt {
    fn new(class: Class, a_id: Option<&str>, b_id: Option<&str>, action: &'static str) -> Self {
        Attempt {
            class,
            a_id: a_id.map(str::to_string),
            b_id: b_id.map(str::to_string),
            action,
            refused: None,
            needs_live_link: true,
        }
    }
}

/// Repairs `found`; the count repaired per class (by class name).
pub async fn repair(
    settings: &Settings,
    mapping: &Mapping,
    store: &Store,
    clients: [&Client; 2],
    found: Found,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let object = settings.sync.object.as_str();
    let mut attempts = Vec::new();
    // What each pass is to carry: A ids (A -> B), B ids (B -> A).
    let mut a_ids: Vec<String> = found.missing_in_b.clone();
    let mut b_ids: Vec<String> = found.missing_in_a.clone();
    for a in &found.missing_in_b {
        attempts.push(Attempt::new(
            Class::MissingInB,
            Some(a),
            None,
            "created_and_linked",
        ));
    }
    for b in &found.missing_in_a {
        attempts.push(Attempt::new(
            Class::MissingInA,
            None,
            Some(b),
            "created_and_linked",
        ));
    }
    let mut merge = |a: &str, b: &str| {
        a_ids.push(a.to_string());
        b_ids.push(b.to_string());
    };
    for (a, b) in &found.drift_explained {
        merge(a, b);
        attempts.push(Attempt::new(
            Class::ValueDriftExplained,
            Some(a),
            Some(b),
            "merged",
        ));
    }
    for (a, b) in &found.drift_unexplained {
        let mut attempt = Attempt::new(Class::ValueDriftUnexplained, Some(a), Some(b), "merged");
        if store.forget_link_snapshot(object, a, b).await? {
            merge(a, b);
        } else {
            attempt.refused = Some("the link is no longer live".to_string());
        }
        attempts.push(attempt);
    }
    for o in &found.orphans {
        let (a, b) = (o.a_id.as_str(), o.b_id.as_str());
        if o.state == "tombstone" {
            let mut attempt = Attempt::new(Class::OrphanLink, Some(a), Some(b), "relinked");
            match store.link_by_hand(object, a, b).await {
                Ok(_) => merge(a, b),
                Err(e) => attempt.refused = Some(e.to_string()),
            }
            attempts.push(attempt);
        } else {
            let mut attempt = Attempt::new(Class::OrphanLink, Some(a), Some(b), "tombstoned");
            attempt.needs_live_link = false;
            let by = if o.a_present { Org::B } else { Org::A };
            let tombstone = Tombstone {
                object: object.to_string(),
                a_id: a.to_string(),
                b_id: b.to_string(),
                by,
                at: Utc::now(),
            };
            if !store.tombstone_link(&tombstone).await? {
                attempt.refused = Some("the link is no longer live".to_string());
            }
            attempts.push(attempt);
        }
    }
    for (a, b) in &found.unlinked {
        let mut attempt = Attempt::new(Class::UnlinkedMatch, Some(a), Some(b), "linked");
        match store.link_by_hand(object, a, b).await {
            Ok(_) => merge(a, b),
            Err(e) => attempt.refused = Some(e.to_string()),
        }
        attempts.push(attempt);
    }

    if !a_ids.is_empty() || !b_ids.is_empty() {
        run_passes(settings, mapping, store, clients, &a_ids, &b_ids).await?;
    }

    let mut repaired: BTreeMap<String, u64> = Class::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), 0))
        .collect();
    for attempt in attempts {
        let verdict = match attempt.refused.clone() {
            Some(why) => Err(why),
            None => held(store, object, &attempt).await?,
        };
        DifferenceRepaired {
            class: attempt.class.as_str(),
            a_id: attempt.a_id.as_deref(),
            b_id: attempt.b_id.as_deref(),
            action: attempt.action,
            repaired: verdict.is_ok(),
            detail: verdict.as_ref().err().map(String::as_str),
        }
        .emit();
        if verdict.is_ok() {
            *repaired
                .entry(attempt.class.as_str().to_string())
                .or_insert(0) += 1;
        }
    }
    Ok(repaired)
}

/// The by-id passes (A -> B with `a_ids`, B -> A with `b_ids`), then each direction's inbox.
async fn run_passes(
    settings: &Settings,
    mapping: &Mapping,
    store: &Store,
    clients: [&Client; 2],
    a_ids: &[String],
    b_ids: &[String],
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    let mut configs = Vec::new();
    for direction in Direction::BOTH {
        let source = match direction.source() {
            Org::A => clients[0],
            Org::B => clients[1],
        };
        let user = source.user_id().await.with_context(|| {
            format!("learning the integration user of org {}", source.org_name())
        })?;
        configs.push(PassConfig::from_settings(
            settings,
            direction,
            0,
            Some(user),
        ));
    }
    let pass = |i: usize| {
        let (source, target) = match configs[i].direction.source() {
            Org::A => (clients[0], clients[1]),
            Org::B => (clients[1], clients[0]),
        };
        Pass::new(&configs[i], mapping, source, target, store, &metrics)
    };
    let (a_to_b, b_to_a) = (pass(0), pass(1));
    log_pass(
        Direction::AToB,
        "by_ids",
        a_to_b.sync_ids(a_ids, &cancel).await?,
    );
    log_pass(
        Direction::BToA,
        "by_ids",
        b_to_a.sync_ids(b_ids, &cancel).await?,
    );
    log_pass(Direction::BToA, "inbox", b_to_a.drain_inbox(&cancel).await?);
    log_pass(Direction::AToB, "inbox", a_to_b.drain_inbox(&cancel).await?);
    Ok(())
}

fn log_pass(direction: Direction, part: &str, report: PassReport) {
    tracing::info!(
        direction = %direction,
        part,
        outcome = ?report.outcome,
        api_calls = report.api_calls,
        "reconcile: repair pass"
    );
}

/// Whether an attempt held: the link it needs is live, and neither record is in the failure
/// queue (in either direction).
async fn held(
    store: &Store,
    object: &str,
    attempt: &Attempt,
) -> anyhow::Result<Result<(), String>> {
    for (direction, id) in [
        (Direction::AToB, attempt.a_id.as_deref()),
        (Direction::BToA, attempt.b_id.as_deref()),
    ] {
        if let Some(id) = id
            && let Some(f) = store.failure_for(direction, object, id).await?
        {
            return Ok(Err(format!(
                "in the failure queue ({}): {}",
                f.error_code, f.message
            )));
        }
    }
    if !attempt.needs_live_link {
        return Ok(Ok(()));
    }
    let links = match (&attempt.a_id, &attempt.b_id) {
        (Some(a), _) => {
            store
                .links_by_a_ids(object, std::slice::from_ref(a))
                .await?
        }
        (None, Some(b)) => {
            store
                .links_by_b_ids(object, std::slice::from_ref(b))
                .await?
        }
        (None, None) => Vec::new(),
    };
    let live = links.iter().any(|l| {
        l.is_live()
            && attempt.a_id.as_ref().is_none_or(|a| *a == l.a_id)
            && attempt.b_id.as_ref().is_none_or(|b| *b == l.b_id)
    });
    Ok(if live {
        Ok(())
    } else {
        Err("no live link afterwards".to_string())
    })
}
