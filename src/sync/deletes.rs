//! Deletes: the stage of the page pipeline that propagates a deleted source record (issue 13),
//! the mass-delete breaker, and [`Pass::apply_source_deletes`], the entry point for source
//! records known deleted by id (getDeleted's safety net).
//!
//! How a delete arrives: with `sync.deletes = "propagate"` the watermark query reads through
//! `queryAll` and selects `IsDeleted`, so rows deleted since the watermark come in the same
//! call as the edits (a quiet cycle still makes one query per direction). A delete moves
//! `SystemModstamp`: getDeleted's `deletedDate` "is obtained using the SystemModstamp system
//! field if available" (SOAP API Developer Guide, "GetDeletedResult",
//! developer.salesforce.com/docs/platform/api/guide/sforce-api-calls-getdeleted-getdeletedresult.html),
//! and Salesforce's own `undelete()` sample finds recent deletes with `queryAll("SELECT id,
//! SystemModstamp FROM Account WHERE IsDeleted=true ORDER BY SystemModstamp DESC")` (SOAP
//! API, `sforce_api_calls_undelete.htm`); sfsim does the same (crates/sfsim/README.md,
//! "Deletes and the recycle bin").
//!
//! What the stage does with a row [`plan`][super::plan] decided for:
//! - `Delete`: one sObject Collections delete per 200 targets (`allOrNone=false`); success,
//!   or `ENTITY_IS_DELETED` (deleted already: a replay after a crash between the call and the
//!   commit), makes the link a tombstone in the page's transaction; another error goes to the
//!   failure queue with its code.
//! - `Restore` (a delete conflict, `keep_edit`): one SOAP `undelete` per 200 sources, then one
//!   collections update per 200 giving them the target's values; the link stays live. A
//!   source the undelete cannot restore ("not in the recycle bin": purged, or live already)
//!   is looked up by id (one query); live, it is updated as restored; gone, it is created
//!   again from the target's values (an upsert on `sync.external_id_field`, the target's
//!   id, when configured, so a replay after a crash finds the first copy; without one, a
//!   crash between that create and the commit can leave a second copy) and the live link is
//!   rewritten to the new source id, so the pair converges.
//! - The breaker: more than `sync.max_deletes_per_cycle` deleted rows in the part of the pass
//!   running now and every `Delete` of it is held instead: the row goes to the failure queue
//!   as `DELETE_HELD` (needs an operator), one ERROR line for the pass. Failure retries
//!   (`failures retry --code DELETE_HELD`, then a cycle) are not held. The count is decided
//!   before any delete call: from the watermark query's first batch when it settles it (its
//!   `totalSize` is within the limit, or the whole result is in it: see [`breaker_count`]),
//!   else by one count query (`SELECT Id ... AND IsDeleted = true` through `queryAll`, its
//!   `totalSize`) made by the first page that has a delete to make, while the other pages
//!   wait. The count is of deleted rows read, so it may include rows that delete nothing
//!   (never linked, or our own deletes coming back when people share the integration user):
//!   the breaker errs on the side of holding.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::errors::{AtOrg, PassError, Stop};
use super::pass::{Breaker, COLLECTION_LIMIT, Pass, PipelineMode};
use super::plan::{Action, Decision, FailCode, SourceRow};
use super::ports::{Batch, OrgPort, PortError, RecordQuery, StorePort, WriteOutcome};
use super::report::{PassOutcome, PassReport};
use super::rows::{DeleteStep, Revive, RowOutcome, RowState};
use super::undelete::{NOT_IN_RECYCLE_BIN, live_ids};
use super::write::per_record;
use crate::events::deletes::{DeleteConflict, DeletesHeld, RecordDeleted};
use crate::store::{FailureClass, same_record};

/// The breaker's count for the watermark query, from its first batch: `Some(n)` when the
/// batch settles it (the whole result is at most the limit, or the whole result is in the
/// batch: its deleted rows), `None` when the org must be asked (a count query). Pure.
pub(super) fn breaker_count(first: &Batch, limit: u32) -> Option<u64> {
    let deleted = || {
        first
            .records
            .iter()
            .filter(|r| r.get("IsDeleted").and_then(Value::as_bool) == Some(true))
            .count() as u64
    };
    let total = first
        .total_size
        .unwrap_or(first.records.len() as u64)
        .max(first.records.len() as u64);
    if limit == 0 || total <= u64::from(limit) {
        // Fewer rows than the limit: fewer deletes, whatever they are.
        Some(deleted())
    } else if first.next.is_none() {
        Some(deleted())
    } else {
        None
    }
}

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// The breaker's state for `count` deleted rows: tripped (with its one ERROR line) when
    /// they are more than allowed.
    fn breaker_for(&self, count: u64) -> Breaker {
        let rules = self.config.deletes;
        if !(rules.propagate && rules.over_limit(count)) {
            return Breaker::Closed;
        }
        DeletesHeld {
            cycle: self.config.cycle,
            direction: self.config.direction,
            count,
            limit: rules.max_per_cycle,
        }
        .emit(self.metrics);
        Breaker::Tripped
    }

    /// Sets the breaker for the watermark query whose first batch is `first`: from the batch
    /// when it settles it ([`breaker_count`]), else left to be counted when a page first
    /// has a delete to make (so a backlog of edits alone never pays the count query).
    pub(super) async fn arm_breaker(&self, query: &RecordQuery, first: &Batch) {
        let state = match breaker_count(first, self.config.deletes.max_per_cycle) {
            Some(n) => self.breaker_for(n),
            None => Breaker::Uncounted(query.clone()),
        };
        *self.breaker.lock().await = state;
    }

    /// Whether the deletes of the part of the pass running now are held: counts the deleted
    /// rows first (one count query) when the first batch could not.
    async fn holds_deletes(&self) -> Result<bool, Stop> {
        let mut breaker = self.breaker.lock().await;
        if let Breaker::Uncounted(query) = &*breaker {
            let org = self.source_org();
            let count = self.call(self.source.count_deleted(query)).await.at(org)?;
            *breaker = self.breaker_for(count);
        }
        Ok(*breaker == Breaker::Tripped)
    }

    /// What a delete decision asks for: the call of the delete stage, or its outcome at once
    /// (a tombstone for a target gone already), with the conflict's log line and counts.
    pub(super) fn settle_delete(
        &self,
        state: &mut RowState,
        decision: &Decision,
        counts: &mut PassReport,
    ) {
        let cfg = self.config;
        let row = &state.row;
        match &decision.action {
            Action::Delete {
                target_id,
                conflict,
            } => {
                if let Some(c) = conflict {
                    self.log_delete_conflict(row, target_id, c, "delete", counts);
                }
                state.delete = Some(DeleteStep::Delete {
                    target_id: target_id.clone(),
                });
            }
            Action::Tombstone { target_id } => {
                counts.skipped += 1;
                RecordDeleted {
                    cycle: cfg.cycle,
                    direction: cfg.direction,
                    source_id: &row.id,
                    target_id,
                    already_gone: true,
                }
                .emit(self.metrics);
                state.outcome = RowOutcome::Tombstone {
                    target_id: target_id.clone(),
                };
            }
            Action::Restore {
                target_id,
                fields,
                conflict,
            } => {
                self.log_delete_conflict(row, target_id, conflict, "keep_edit", counts);
                let mut body = self.mapping.to_org(self.source_org(), fields);
                // Relationship paths (the parent pseudo-field `Account.Name` of syncAccount)
                // are not writable: the undelete restores the record's own parent.
                body.retain(|name, _| !name.contains('.'));
                state.delete = Some(DeleteStep::Restore {
                    target_id: target_id.clone(),
                    body,
                });
            }
            // The undelete stage's (`undelete::undelete_page`, next in the pipeline): it
            // restores the target and replaces the decision.
            Action::Undelete { .. } => {}
            Action::Create { .. }
            | Action::Update { .. }
            | Action::Link { .. }
            | Action::Skip(_)
            | Action::Fail { .. } => {}
        }
    }

    fn log_delete_conflict(
        &self,
        row: &SourceRow,
        target_id: &str,
        conflict: &super::plan::DeleteConflict,
        resolution: &'static str,
        counts: &mut PassReport,
    ) {
        counts.delete_conflicts += 1;
        DeleteConflict {
            cycle: self.config.cycle,
            direction: self.config.direction,
            source_id: &row.id,
            target_id,
            source_deleted_at: conflict.source_deleted_at,
            target_last_modified: conflict.target_last_modified,
            edited_fields: &conflict.edited.join(","),
            synced_values: &Value::Object(conflict.synced_values.clone().into_iter().collect())
                .to_string(),
            target_values: &Value::Object(conflict.target_values.clone().into_iter().collect())
                .to_string(),
            resolution,
        }
        .emit(self.metrics);
    }

    /// The delete stage: holds the page's deletes when the breaker tripped (not for failure
    /// retries), else deletes the targets and restores the sources the decisions ask for;
    /// each row's outcome. A limit on any call pauses the page (nothing of it is recorded).
    pub(super) async fn delete_page(
        &self,
        rows: &mut [RowState],
        mode: &PipelineMode,
        counts: &mut PassReport,
    ) -> Result<(), Stop> {
        if !rows.iter().any(|s| s.delete.is_some()) {
            return Ok(());
        }
        let deleting = rows
            .iter()
            .any(|s| matches!(s.delete, Some(DeleteStep::Delete { .. })));
        let hold =
            deleting && !matches!(mode, PipelineMode::Retry { .. }) && self.holds_deletes().await?;
        if hold {
            for state in rows.iter_mut() {
                if let Some(DeleteStep::Delete { target_id }) = &state.delete {
                    counts.held += 1;
                    let target_id = target_id.clone();
                    state.fail(
                        Some(target_id),
                        FailCode::DeleteHeld.as_str().to_string(),
                        format!(
                            "the delete was held: more than sync.max_deletes_per_cycle = {} \
                             deletes in one cycle. `orgsync failures retry --code DELETE_HELD` \
                             applies the held deletes on the next cycle; `orgsync failures \
                             discard` keeps this copy (its link stays live)",
                            self.config.deletes.max_per_cycle
                        ),
                        FailureClass::of_code(FailCode::DeleteHeld.as_str()),
                    );
                }
            }
        }
        let deletes: Vec<String> = rows
            .iter()
            .filter_map(|s| match &s.delete {
                Some(DeleteStep::Delete { target_id }) => Some(target_id.clone()),
                _ => None,
            })
            .collect();
        let restores: Vec<String> = rows
            .iter()
            .filter_map(|s| match &s.delete {
                Some(DeleteStep::Restore { .. }) => Some(s.row.id.clone()),
                _ => None,
            })
            .collect();
        let delete_calls = deletes
            .chunks(COLLECTION_LIMIT)
            .map(|ids| async move { (self.call(self.target.delete(ids)).await, ids.len()) });
        let undelete_calls = restores
            .chunks(COLLECTION_LIMIT)
            .map(|ids| async move { (self.call(self.source.undelete(ids)).await, ids.len()) });
        let (deleted, undeleted) = futures::join!(
            futures::future::join_all(delete_calls),
            futures::future::join_all(undelete_calls)
        );
        let (src, tgt) = (self.source_org(), self.target_org());
        if let Some(stop) = pause_of(&deleted, tgt).or_else(|| pause_of(&undeleted, src)) {
            return Err(stop);
        }
        let mut deleted = deleted
            .into_iter()
            .flat_map(|(result, len)| per_record(result, len));
        let mut undeleted = undeleted
            .into_iter()
            .flat_map(|(result, len)| per_record(result, len));

        // Deletes settle here; restored sources still need the target's values.
        for state in rows.iter_mut() {
            match state.delete.take() {
                None => {}
                Some(DeleteStep::Delete { target_id }) => {
                    let result = deleted.next().unwrap_or_else(no_result);
                    match result {
                        Ok(_) => self.deleted(state, target_id, counts),
                        // Deleted already (our own call before a crash, or a person): done.
                        Err(e) if e.code == "ENTITY_IS_DELETED" => {
                            self.deleted(state, target_id, counts)
                        }
                        Err(e) => state.fail(Some(target_id), e.code, e.message, e.class),
                    }
                }
                Some(DeleteStep::Restore { target_id, body }) => {
                    match undeleted.next().unwrap_or_else(no_result) {
                        Ok(_) => {
                            state.delete = Some(DeleteStep::Restore { target_id, body });
                        }
                        // Purged, or live already: looked up below.
                        Err(e) if NOT_IN_RECYCLE_BIN.contains(&e.code.as_str()) => {
                            state.delete = Some(DeleteStep::Recreate { target_id, body });
                        }
                        Err(e) => state.fail(Some(target_id), e.code, e.message, e.class),
                    }
                }
                Some(DeleteStep::Recreate { .. }) => {}
            }
        }
        self.recreate_sources(rows, counts).await?;
        // In row order: the sources restored, and those found live again.
        let updates: Vec<(String, Map<String, Value>)> = rows
            .iter()
            .filter_map(|s| match &s.delete {
                Some(DeleteStep::Restore { body, .. }) => Some((s.row.id.clone(), body.clone())),
                _ => None,
            })
            .collect();
        if updates.is_empty() {
            return Ok(());
        }
        let cfg = self.config;
        let update_calls = updates.chunks(COLLECTION_LIMIT).map(|bodies| async move {
            let result = self.call(self.source.update(&cfg.object, bodies)).await;
            (result, bodies.len())
        });
        let updated = futures::future::join_all(update_calls).await;
        if let Some(stop) = pause_of(&updated, src) {
            return Err(stop);
        }
        let mut updated = updated
            .into_iter()
            .flat_map(|(result, len)| per_record(result, len));
        for state in rows.iter_mut() {
            let Some(DeleteStep::Restore { target_id, .. }) = state.delete.take() else {
                continue;
            };
            match updated.next().unwrap_or_else(no_result) {
                Ok(_) => {
                    counts.updated += 1;
                    tracing::info!(
                        cycle = cfg.cycle,
                        direction = %cfg.direction,
                        source_id = %state.row.id,
                        target_id = %target_id,
                        "deleted source restored with the target's edit (sync.delete_conflict = keep_edit)"
                    );
                    state.outcome = RowOutcome::Linked {
                        target_id,
                        snapshot: state
                            .decision
                            .as_ref()
                            .and_then(|d| d.snapshot.clone())
                            .unwrap_or_default(),
                    };
                }
                Err(e) => state.fail(Some(target_id), e.code, e.message, e.class),
            }
        }
        Ok(())
    }

    /// The delete conflicts kept by `keep_edit` whose source the undelete could not restore:
    /// one query by id tells the live (someone restored it, or our own undelete's reply was
    /// lost: updated as restored) from the gone (purged), which are created again in the
    /// source from the edited target's values (an upsert on `sync.external_id_field`, the
    /// target's id, when configured, so a replay after a crash finds the first copy) and
    /// relinked: the commit rewrites the live link to the new source id.
    async fn recreate_sources(
        &self,
        rows: &mut [RowState],
        counts: &mut PassReport,
    ) -> Result<(), Stop> {
        let ids: Vec<String> = rows
            .iter()
            .filter(|s| matches!(s.delete, Some(DeleteStep::Recreate { .. })))
            .map(|s| s.row.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let cfg = self.config;
        let src = self.source_org();
        let live = self
            .call(live_ids(self.source, &cfg.object, ids))
            .await
            .at(src)?;
        let mut creates: Vec<Map<String, Value>> = Vec::new();
        for state in rows.iter_mut() {
            let Some(DeleteStep::Recreate { target_id, body }) = state.delete.take() else {
                continue;
            };
            if live.iter().any(|id| same_record(id, &state.row.id)) {
                state.delete = Some(DeleteStep::Restore { target_id, body });
            } else {
                let mut create = body.clone();
                if let Some(ext) = &cfg.external_id_field {
                    create.insert(ext.clone(), Value::String(target_id.clone()));
                }
                creates.push(create);
                state.delete = Some(DeleteStep::Recreate { target_id, body });
            }
        }
        let calls = creates.chunks(COLLECTION_LIMIT).map(|bodies| async move {
            let outcomes = match &cfg.external_id_field {
                Some(ext) => {
                    self.call(self.source.upsert(&cfg.object, ext, bodies))
                        .await
                }
                None => self.call(self.source.create(&cfg.object, bodies)).await,
            };
            (outcomes, bodies.len())
        });
        let created = futures::future::join_all(calls).await;
        if let Some(stop) = pause_of(&created, src) {
            return Err(stop);
        }
        let mut created = created
            .into_iter()
            .flat_map(|(result, len)| per_record(result, len));
        for state in rows.iter_mut() {
            let Some(DeleteStep::Recreate { target_id, body }) = state.delete.take() else {
                continue;
            };
            match created.next().unwrap_or_else(no_result) {
                Ok(ok) => {
                    counts.created += 1;
                    tracing::info!(
                        cycle = cfg.cycle,
                        direction = %cfg.direction,
                        source_id = %state.row.id,
                        new_source_id = %ok.id,
                        target_id = %target_id,
                        "deleted source was purged: created again with the target's edit and relinked (sync.delete_conflict = keep_edit)"
                    );
                    state.revive = state.link_id.map(|link_id| Revive {
                        link_id,
                        old_target_id: target_id.clone(),
                        new_source_id: Some(ok.id.clone()),
                    });
                    state.outcome = RowOutcome::Linked {
                        target_id,
                        snapshot: state
                            .decision
                            .as_ref()
                            .and_then(|d| d.snapshot.clone())
                            .unwrap_or_default(),
                    };
                }
                Err(e) => {
                    let sent = Some(body);
                    state.fail(Some(target_id), e.code, e.message, e.class);
                    if let RowOutcome::Failed { sent: s, .. } = &mut state.outcome {
                        *s = sent;
                    }
                }
            }
        }
        Ok(())
    }

    fn deleted(&self, state: &mut RowState, target_id: String, counts: &mut PassReport) {
        counts.deleted += 1;
        RecordDeleted {
            cycle: self.config.cycle,
            direction: self.config.direction,
            source_id: &state.row.id,
            target_id: &target_id,
            already_gone: false,
        }
        .emit(self.metrics);
        state.outcome = RowOutcome::Tombstone { target_id };
    }

    /// Runs the delete path for source records known deleted, by id (getDeleted: no values,
    /// maybe purged, so `queryAll` may not read them): the same page pipeline (a page of
    /// `page_size` ids at a time: their links, the target lookup, the plan, the delete stage,
    /// the page's transaction), the same breaker (counted on the ids with a live link) and
    /// tombstones; the watermark does not move. An id without a live link does nothing.
    pub async fn apply_source_deletes(
        &self,
        ids: Vec<String>,
        cancel: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        let before = self.calls_made();
        let mut report = PassReport::default();
        let result = self
            .apply_source_delete_pages(ids, cancel, &mut report)
            .await;
        *self.breaker.lock().await = Breaker::Closed;
        report.api_calls = self.calls_made() - before;
        self.settle(report, result)
    }

    async fn apply_source_delete_pages(
        &self,
        ids: Vec<String>,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let cfg = self.config;
        let mut seen = HashSet::new();
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        let page_size = cfg.page_size.max(1);
        let mut linked = 0u64;
        for chunk in ids.chunks(page_size) {
            linked += self
                .store
                .links_by_ids(self.source_org(), &cfg.object, chunk)
                .await?
                .iter()
                .filter(|l| l.is_live())
                .count() as u64;
        }
        let breaker = self.breaker_for(linked);
        *self.breaker.lock().await = breaker;
        let now = Utc::now();
        for chunk in ids.chunks(page_size) {
            if cancel.is_cancelled() {
                report.outcome = PassOutcome::Cancelled;
                return Ok(());
            }
            let rows = chunk
                .iter()
                .map(|id| known_deleted(id.clone(), now))
                .collect();
            self.process_page(rows, PipelineMode::Deletes, report)
                .await?;
        }
        Ok(())
    }
}

/// The row of a source record known deleted at `at` (by id only: no values).
pub(super) fn known_deleted(id: String, at: DateTime<Utc>) -> SourceRow {
    SourceRow {
        id,
        system_modstamp: at,
        last_modified_date: at,
        last_modified_by: None,
        values: Default::default(),
        parent: None,
        deleted: true,
    }
}

/// A pause in any of these calls' results: the page stops.
fn pause_of(
    results: &[(Result<Vec<WriteOutcome>, PortError>, usize)],
    org: crate::store::Org,
) -> Option<Stop> {
    results
        .iter()
        .find_map(|(result, _)| result.as_ref().err().and_then(|e| Stop::pause(org, e)))
}

fn no_result() -> WriteOutcome {
    Err(super::ports::RecordError::new(
        "NO_RESULT",
        "the org's reply had no result for this record",
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rows(deleted: usize, live: usize) -> Vec<Map<String, Value>> {
        let row = |d: bool| {
            let Value::Object(m) = json!({"Id": "x", "IsDeleted": d}) else {
                unreachable!("an object literal")
            };
            m
        };
        (0..deleted)
            .map(|_| row(true))
            .chain((0..live).map(|_| row(false)))
            .collect()
    }

    #[test]
    fn the_first_batch_settles_the_breaker_unless_the_result_is_larger_than_both() {
        let batch = |deleted, live, total, next: bool| Batch {
            records: rows(deleted, live),
            next: next.then(|| "/next".to_string()),
            total_size: Some(total),
        };
        // A quiet or small result: counted from the batch, no count query.
        assert_eq!(breaker_count(&batch(3, 5, 8, false), 100), Some(3));
        assert_eq!(breaker_count(&batch(30, 20, 90, true), 100), Some(30));
        // Everything in the batch: its deleted rows, whatever the total.
        assert_eq!(breaker_count(&batch(150, 10, 160, false), 100), Some(150));
        // More rows than the limit and than the batch: the org is asked.
        assert_eq!(breaker_count(&batch(10, 190, 5000, true), 100), None);
        // No limit: never asked.
        assert_eq!(breaker_count(&batch(10, 190, 5000, true), 0), Some(10));
    }
}
