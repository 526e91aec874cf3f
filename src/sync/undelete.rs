//! Undelete: a source record restored from its recycle bin (it reappears with
//! `IsDeleted = false`) whose link is a tombstone. Its target is undeleted (SOAP `undelete`,
//! REST has no verb for it) and updated to the source's values; when the target is gone from
//! its recycle bin (purged, hard-deleted), it is created again and the link follows the new
//! id. Either way the link is live again, with the snapshot of the values written, so the
//! restored pair's next reads are recognised as our own writes.
//!
//! [`plan_undelete`] is the pure decision over (tombstone link, source row, undelete result,
//! and, when the undelete said the target is not in the recycle bin, whether it is live).
//! `UNDELETE_FAILED` ("Entity is not in the recycle bin") is answered both for a purged
//! record and for a live one (someone undeleted it already, or a replay of our own undelete
//! whose reply was lost), so that answer is checked with one query by id before anything is
//! created: creating on the code alone would duplicate a live target. The other answers of
//! an id the org no longer has (`ENTITY_IS_DELETED`, `INVALID_ID_FIELD`,
//! `INVALID_CROSS_REFERENCE_KEY`) are checked the same way.
//!
//! In the page pipeline ([`Pass::undelete_page`], after the plan, before parents and writes):
//! a source row without a live link whose latest link is a tombstone (`RowState::tombstone`,
//! from the page's link query) is decided [`Action::Undelete`] by the plan
//! (`plan::plan_tombstoned`). The stage makes one undelete call per 200 targets and one query
//! by id for the "not in the recycle bin" ones, then decides each row anew
//! (`plan::plan_restored`): a target back is an update of every mapped field; a target gone
//! is planned as an unlinked row with the candidates the page's lookup found for it. The
//! write stage then writes it like any decision (the create is an upsert on
//! `sync.external_id_field` when configured; parents resolved), and the commit rewrites the
//! tombstone in place (`PageTx::revive_link`) with the target's id, possibly new. A refusal
//! of the undelete goes to the failure queue with its code; the retry undeletes again.
//!
//! API cost: nothing in a cycle without undeletes; per page with some, one undelete call per
//! 200 rows, at most one query by id, and the writes (one update call, one create call per
//! 200).
//!
//! Replay (`kill -9` before the page's commit): the page is read again and undeletes again,
//! answered `UNDELETE_FAILED`, then found live: updated, no duplicate. A target re-created
//! before the crash is not linked yet, but the page's lookup finds it as the row's candidate
//! (by its external id, the source's id, when `sync.external_id_field` is set; else by the
//! `sync.match_by` key, as any create before a crash is found): the row is linked to it, not
//! created a second time.
//!
//! [`undelete_tombstones`] is the same I/O on its own (it writes the targets itself and
//! returns, per row, the link write or the error): kept for callers outside a pass.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::errors::{AtOrg, Stop};
use super::pass::Pass;
use super::plan::{Action, Policy, Restored, TargetRow, plan_restored};
use super::ports::{
    OrgPort, PortError, QueryKind, RecordError, RecordQuery, StorePort, WriteOutcome,
};
use super::report::PassReport;
use super::rows::{Found, Revive, RowState};
use super::write::per_record;
use crate::events::TargetRestored;
use crate::metrics::Metrics;
use crate::store::{Direction, FailureClass, Link, LinkState, LinkWrite, Org, same_record};

/// Undelete answers meaning "the org has no deleted record of this id to restore": the
/// record was purged (or hard-deleted), is not deleted at all, or is unknown. Checked with a
/// query before the target is created again.
pub const NOT_IN_RECYCLE_BIN: [&str; 4] = [
    "UNDELETE_FAILED",
    "ENTITY_IS_DELETED",
    "INVALID_ID_FIELD",
    "INVALID_CROSS_REFERENCE_KEY",
];

/// Whether a source row on a link in this state is an undelete: the link is a tombstone and
/// the source row is not deleted (it came back from the recycle bin).
pub fn is_undelete(link: &Link, source_is_deleted: bool) -> bool {
    link.state == LinkState::Tombstone && !source_is_deleted
}

/// The id of the link's record in `org`.
pub fn id_in(link: &Link, org: Org) -> &str {
    match org {
        Org::A => &link.a_id,
        Org::B => &link.b_id,
    }
}

/// What to do with a tombstone row's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndeletePlan {
    /// The target is back (undeleted, or live already): update it to the source's values and
    /// make the link live.
    UpdateTarget { target_id: String },
    /// The undelete said the target is not in the recycle bin: ask the target org whether it
    /// is live before deciding.
    LookUpTarget { target_id: String },
    /// The target is gone: create it again and make the link live with the new id.
    RecreateTarget,
    /// The undelete failed for another reason: the row goes to the failure queue.
    Fail(RecordError),
}

/// Decides a tombstone row's next step from the undelete's `result` for its target and, once
/// looked up, `target_live` (`None` before the lookup).
pub fn plan_undelete(
    link: &Link,
    target_org: Org,
    result: &WriteOutcome,
    target_live: Option<bool>,
) -> UndeletePlan {
    plan_restore(id_in(link, target_org), result, target_live)
}

/// [`plan_undelete`] for the target record `target_id`.
pub fn plan_restore(
    target_id: &str,
    result: &WriteOutcome,
    target_live: Option<bool>,
) -> UndeletePlan {
    let target_id = target_id.to_string();
    let code = result.as_ref().err().map(|e| e.code.as_str());
    match (code, target_live) {
        (None, _) | (Some(_), Some(true)) => UndeletePlan::UpdateTarget { target_id },
        (Some(_), Some(false)) => UndeletePlan::RecreateTarget,
        (Some(code), None) if NOT_IN_RECYCLE_BIN.contains(&code) => {
            UndeletePlan::LookUpTarget { target_id }
        }
        (Some(code), None) => {
            let message = result
                .as_ref()
                .err()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            UndeletePlan::Fail(RecordError::new(
                code,
                format!("undelete of target {target_id} failed: {message}"),
            ))
        }
    }
}

/// A page's row whose link is a tombstone and whose source is not deleted, with the source's
/// values mapped for the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TombstoneRow {
    /// The tombstone link.
    pub link: Link,
    pub source_id: String,
    /// The source row's SystemModstamp.
    pub source_modstamp: Option<DateTime<Utc>>,
    /// The fields to write to the target, named as in the target org (parents resolved).
    pub target_body: Map<String, Value>,
    /// The mapped values named as in A, the link's new snapshot once written.
    pub snapshot: Map<String, Value>,
}

/// A tombstone row's result.
#[derive(Debug, Clone, PartialEq)]
pub struct UndeleteOutcome {
    pub source_id: String,
    /// The tombstone link's id, for `PageTx::revive_link`.
    pub link_id: i64,
    pub result: Result<Revived, RecordError>,
}

/// A target restored: the link write that makes the pair live again.
#[derive(Debug, Clone, PartialEq)]
pub struct Revived {
    pub link: LinkWrite,
    pub target_id: String,
    /// True when the target was created again (a new id).
    pub recreated: bool,
}

/// The pass a page's tombstone rows belong to.
#[derive(Debug, Clone, Copy)]
pub struct UndeleteRun<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub object: &'a str,
}

/// Restores the targets of `rows` in `target` (the direction's target org) and returns one
/// outcome per row, in order. A whole-call failure is an `Err` (the page is not committed; a
/// limit pauses as usual); a row the org refuses is an `Err` outcome.
pub async fn undelete_tombstones<T: OrgPort>(
    target: &T,
    run: &UndeleteRun<'_>,
    rows: &[TombstoneRow],
    metrics: &Metrics,
) -> Result<Vec<UndeleteOutcome>, PortError> {
    let mut outcomes = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(super::pass::COLLECTION_LIMIT) {
        outcomes.extend(undelete_chunk(target, run, chunk, metrics).await?);
    }
    Ok(outcomes)
}

async fn undelete_chunk<T: OrgPort>(
    target: &T,
    run: &UndeleteRun<'_>,
    rows: &[TombstoneRow],
    metrics: &Metrics,
) -> Result<Vec<UndeleteOutcome>, PortError> {
    let target_org = run.direction.target();
    let target_ids: Vec<String> = rows
        .iter()
        .map(|r| id_in(&r.link, target_org).to_string())
        .collect();
    let results = target.undelete(&target_ids).await?;
    let mut plans: Vec<UndeletePlan> = rows
        .iter()
        .zip(&results)
        .map(|(row, result)| plan_undelete(&row.link, target_org, result, None))
        .collect();
    // The "not in the recycle bin" ones: one query tells the live from the gone.
    let look_up: Vec<String> = plans
        .iter()
        .filter_map(|p| match p {
            UndeletePlan::LookUpTarget { target_id } => Some(target_id.clone()),
            _ => None,
        })
        .collect();
    if !look_up.is_empty() {
        let live = live_ids(target, run.object, look_up).await?;
        for ((plan, row), result) in plans.iter_mut().zip(rows).zip(&results) {
            if let UndeletePlan::LookUpTarget { target_id } = plan {
                let is_live = live.iter().any(|id| same_record(id, target_id));
                *plan = plan_undelete(&row.link, target_org, result, Some(is_live));
            }
        }
    }
    // One update call and one create call for the page's rows.
    let updates: Vec<(String, Map<String, Value>)> = plans
        .iter()
        .zip(rows)
        .filter_map(|(p, r)| match p {
            UndeletePlan::UpdateTarget { target_id } => {
                Some((target_id.clone(), r.target_body.clone()))
            }
            _ => None,
        })
        .collect();
    let creates: Vec<Map<String, Value>> = plans
        .iter()
        .zip(rows)
        .filter(|(p, _)| matches!(p, UndeletePlan::RecreateTarget))
        .map(|(_, r)| r.target_body.clone())
        .collect();
    let mut updated = written(target.update(run.object, &updates).await, updates.len())?;
    let mut created = written(target.create(run.object, &creates).await, creates.len())?;
    let mut out = Vec::with_capacity(rows.len());
    for (plan, row) in plans.into_iter().zip(rows) {
        let old_target_id = id_in(&row.link, target_org).to_string();
        let result = match plan {
            UndeletePlan::UpdateTarget { .. } => next(&mut updated).map(|ok| (ok.id, false)),
            UndeletePlan::RecreateTarget => next(&mut created).map(|ok| (ok.id, true)),
            UndeletePlan::Fail(e) => Err(e),
            UndeletePlan::LookUpTarget { .. } => Err(RecordError::new(
                "UNDELETE_FAILED",
                "the target's state could not be looked up",
            )),
        };
        let result = result.map(|(target_id, recreated)| {
            TargetRestored {
                cycle: run.cycle,
                direction: run.direction,
                source_id: &row.source_id,
                old_target_id: &old_target_id,
                target_id: &target_id,
                recreated,
            }
            .emit(metrics);
            Revived {
                link: revival(row, run, &target_id),
                target_id,
                recreated,
            }
        });
        out.push(UndeleteOutcome {
            source_id: row.source_id.clone(),
            link_id: row.link.id,
            result,
        });
    }
    Ok(out)
}

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// The undelete stage of the page pipeline, for the rows the plan decided
    /// [`Action::Undelete`] for: one undelete call per 200 targets, one query by id for the
    /// "not in the recycle bin" ones, then each row decided anew by
    /// [`plan_restored`] (a target back is updated; a target gone is planned as an unlinked
    /// row: created through the write stage, an upsert on `sync.external_id_field` when
    /// configured, or linked to the copy a crash left) and settled as any decision. The
    /// commit revives the tombstone in place. A limit pauses the page; a refusal fails the
    /// row.
    pub(super) async fn undelete_page(
        &self,
        rows: &mut [RowState],
        policy: &Policy,
        counts: &mut PassReport,
    ) -> Result<(), Stop> {
        let pending: Vec<(usize, String)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.decision.as_ref().map(|d| &d.action) {
                Some(Action::Undelete { target_id, .. }) => Some((i, target_id.clone())),
                _ => None,
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let cfg = self.config;
        let tgt = self.target_org();
        let target_ids: Vec<String> = pending.iter().map(|(_, id)| id.clone()).collect();
        let calls = target_ids
            .chunks(super::pass::COLLECTION_LIMIT)
            .map(|ids| async move { (self.call(self.target.undelete(ids)).await, ids.len()) });
        let results = futures::future::join_all(calls).await;
        if let Some(stop) = results
            .iter()
            .find_map(|(r, _)| r.as_ref().err().and_then(|e| Stop::pause(tgt, e)))
        {
            return Err(stop);
        }
        let results: Vec<WriteOutcome> = results
            .into_iter()
            .flat_map(|(r, len)| per_record(r, len))
            .collect();
        let mut plans: Vec<UndeletePlan> = target_ids
            .iter()
            .zip(&results)
            .map(|(id, result)| plan_restore(id, result, None))
            .collect();
        let look_up: Vec<String> = plans
            .iter()
            .filter_map(|p| match p {
                UndeletePlan::LookUpTarget { target_id } => Some(target_id.clone()),
                _ => None,
            })
            .collect();
        if !look_up.is_empty() {
            let live = self
                .call(live_ids(self.target, &cfg.object, look_up))
                .await
                .at(tgt)?;
            for ((plan, id), result) in plans.iter_mut().zip(&target_ids).zip(&results) {
                if matches!(plan, UndeletePlan::LookUpTarget { .. }) {
                    let is_live = live.iter().any(|l| same_record(l, id));
                    *plan = plan_restore(id, result, Some(is_live));
                }
            }
        }
        for ((i, old_target_id), plan) in pending.into_iter().zip(plans) {
            let state = &mut rows[i];
            let Some(link_id) = state.tombstone_id else {
                continue;
            };
            let decision = match plan {
                UndeletePlan::UpdateTarget { target_id } => {
                    plan_restored(&state.row, Restored::Back(&target_id), policy, self.mapping)
                }
                UndeletePlan::RecreateTarget => {
                    let candidates: Vec<&TargetRow> = match &state.target {
                        Found::Candidates(list) => list.iter().collect(),
                        _ => Vec::new(),
                    };
                    plan_restored(
                        &state.row,
                        Restored::Gone {
                            candidates: &candidates,
                        },
                        policy,
                        self.mapping,
                    )
                }
                UndeletePlan::Fail(e) => {
                    state.fail(Some(old_target_id), e.code, e.message, e.class);
                    continue;
                }
                UndeletePlan::LookUpTarget { .. } => {
                    state.fail(
                        Some(old_target_id),
                        "UNDELETE_FAILED".to_string(),
                        "the target's state could not be looked up".to_string(),
                        FailureClass::Transient,
                    );
                    continue;
                }
            };
            state.revive = Some(Revive {
                link_id,
                old_target_id,
                new_source_id: None,
            });
            state.decision = Some(decision);
            self.settle_decision(state, counts);
        }
        Ok(())
    }
}

/// The ids among `ids` that are live in the org (a query by id leaves deleted ones out).
pub(super) async fn live_ids<T: OrgPort>(
    org: &T,
    object: &str,
    ids: Vec<String>,
) -> Result<Vec<String>, PortError> {
    let query = RecordQuery {
        object: object.to_string(),
        fields: Vec::new(),
        kind: QueryKind::ByIds(ids),
    };
    let mut batch = org.query(&query).await?;
    let mut live = Vec::new();
    loop {
        live.extend(
            batch
                .records
                .iter()
                .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string)),
        );
        match batch.next.take() {
            Some(cursor) => batch = org.query_more(&cursor).await?,
            None => return Ok(live),
        }
    }
}

/// A write call's outcomes, checked to be one per record.
fn written(
    outcomes: Result<Vec<WriteOutcome>, PortError>,
    expected: usize,
) -> Result<std::vec::IntoIter<WriteOutcome>, PortError> {
    let outcomes = outcomes?;
    if outcomes.len() != expected {
        return Err(PortError {
            kind: crate::domain::ErrorKind::Transient,
            code: "BAD_RESPONSE".into(),
            message: format!(
                "a write call answered {} results for {expected} records",
                outcomes.len()
            ),
        });
    }
    Ok(outcomes.into_iter())
}

fn next(
    outcomes: &mut std::vec::IntoIter<WriteOutcome>,
) -> Result<super::ports::WriteOk, RecordError> {
    outcomes
        .next()
        .unwrap_or_else(|| Err(RecordError::new("BAD_RESPONSE", "no result for the record")))
}

/// The link write of a restored pair: both ids (the target's possibly new), the source's
/// modstamp, the snapshot of the values written.
fn revival(row: &TombstoneRow, run: &UndeleteRun<'_>, target_id: &str) -> LinkWrite {
    let (a_id, b_id, a_modstamp, b_modstamp) = match run.direction.source() {
        Org::A => (
            row.source_id.clone(),
            target_id.to_string(),
            row.source_modstamp,
            None,
        ),
        Org::B => (
            target_id.to_string(),
            row.source_id.clone(),
            None,
            row.source_modstamp,
        ),
    };
    LinkWrite {
        object: run.object.to_string(),
        a_id,
        b_id,
        a_modstamp,
        b_modstamp,
        snapshot: row.snapshot.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ports::WriteOk;
    use super::*;
    use crate::store::FailureClass;
    use chrono::TimeZone;

    fn tombstone() -> Link {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        Link {
            id: 7,
            object: "Opportunity".into(),
            a_id: "006A00000000001AAA".into(),
            b_id: "006B00000000001AAA".into(),
            a_modstamp: None,
            b_modstamp: None,
            snapshot: Map::new(),
            state: LinkState::Tombstone,
            deleted_at: Some(at),
            deleted_by: Some(Org::A),
            created_at: at,
            updated_at: at,
        }
    }

    fn ok() -> WriteOutcome {
        Ok(WriteOk {
            id: "006B00000000001AAA".into(),
            created: false,
        })
    }

    fn failed(code: &str) -> WriteOutcome {
        Err(RecordError::new(code, "why"))
    }

    #[test]
    fn only_a_live_source_on_a_tombstone_is_an_undelete() {
        let mut link = tombstone();
        assert!(is_undelete(&link, false));
        assert!(
            !is_undelete(&link, true),
            "still deleted: the delete path's"
        );
        link.state = LinkState::Live;
        assert!(!is_undelete(&link, false));
        link.state = LinkState::Unlinked;
        assert!(!is_undelete(&link, false), "an unlinked pair is not synced");
    }

    #[test]
    fn a_target_restored_from_the_recycle_bin_is_updated() {
        assert_eq!(
            plan_undelete(&tombstone(), Org::B, &ok(), None),
            UndeletePlan::UpdateTarget {
                target_id: "006B00000000001AAA".into()
            }
        );
        // B -> A: the target is A's record.
        assert_eq!(
            plan_undelete(&tombstone(), Org::A, &ok(), None),
            UndeletePlan::UpdateTarget {
                target_id: "006A00000000001AAA".into()
            }
        );
    }

    #[test]
    fn not_in_the_recycle_bin_is_looked_up_before_anything_is_created() {
        for code in NOT_IN_RECYCLE_BIN {
            assert_eq!(
                plan_undelete(&tombstone(), Org::B, &failed(code), None),
                UndeletePlan::LookUpTarget {
                    target_id: "006B00000000001AAA".into()
                },
                "{code}"
            );
        }
        let purged = failed("UNDELETE_FAILED");
        assert_eq!(
            plan_undelete(&tombstone(), Org::B, &purged, Some(false)),
            UndeletePlan::RecreateTarget,
            "gone: created again"
        );
        assert_eq!(
            plan_undelete(&tombstone(), Org::B, &purged, Some(true)),
            UndeletePlan::UpdateTarget {
                target_id: "006B00000000001AAA".into()
            },
            "live already (undeleted by someone, or our own lost reply): updated, never duplicated"
        );
    }

    #[test]
    fn any_other_refusal_goes_to_the_failure_queue_with_its_code() {
        let UndeletePlan::Fail(e) =
            plan_undelete(&tombstone(), Org::B, &failed("INSUFFICIENT_ACCESS"), None)
        else {
            panic!("a failure");
        };
        assert_eq!(e.code, "INSUFFICIENT_ACCESS");
        assert!(e.message.contains("006B00000000001AAA"), "{}", e.message);
        assert_eq!(e.class, FailureClass::of_code("INSUFFICIENT_ACCESS"));
        let transient = plan_undelete(&tombstone(), Org::B, &failed("UNABLE_TO_LOCK_ROW"), None);
        assert!(
            matches!(transient, UndeletePlan::Fail(ref e) if e.class == FailureClass::Transient),
            "{transient:?}"
        );
    }
}
