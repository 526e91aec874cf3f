//! Commit: the page's one store transaction. It records every row's outcome (links and
//! snapshots, failure-queue entries, cleared failures), the new parent-account links and the
//! stale ones dropped, the reverse carries (inbox rows of the target org), the processed
//! inbox items, the refused ids, and the watermark (the page's highest SystemModstamp, for
//! the watermark query only), and the tombstones of deleted pairs. All of it becomes durable together, or none of it; the page's
//! counts join the pass's report only once it has.

use serde_json::{Map, Value};

use super::accounts::ACCOUNT_OBJECT;
use super::errors::PassError;
use super::pass::{Page, Pass, PipelineMode};
use super::plan::{Action, FailCode, SourceRow};
use super::ports::{OrgPort, PageTxPort, RecordError, StorePort};
use super::report::PassReport;
use super::rows::{RowOutcome, link_write};
use crate::events::TargetRestored;
use crate::events::record::{FailureCleared, FailureQueued, ReverseQueued};
use crate::store::{Direction, NewFailure, NewNotification, Org, StoreError, Tombstone};

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// Records a page's outcomes in its transaction, then adds its counts to `report`.
    pub(super) async fn commit_page(
        &self,
        page: Page,
        report: &mut PassReport,
    ) -> Result<(), PassError> {
        let Page {
            rows,
            mode,
            page_max,
            mut counts,
            account_links,
            stale_account_links,
            staged,
            pending_job,
            pending_done,
            ..
        } = page;
        let counts_ref = &mut counts;
        let cfg = self.config;
        let (src, tgt) = (self.source_org(), self.target_org());
        let mut tx = self.store.begin().await?;
        for (source_id, target_id) in &stale_account_links {
            let a_id = match src {
                Org::A => source_id,
                Org::B => target_id,
            };
            tx.delete_link(ACCOUNT_OBJECT, a_id).await?;
        }
        for link in &account_links {
            match tx.upsert_link(link).await {
                Ok(()) => {}
                // The account is in use all the same; its link stays as it was.
                Err(StoreError::LinkConflict { detail, .. }) => tracing::warn!(
                    cycle = cfg.cycle,
                    direction = %cfg.direction,
                    a_id = %link.a_id,
                    b_id = %link.b_id,
                    detail = %detail,
                    "parent account link not stored: one side is linked to another account"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        let mut reverse: Vec<NewNotification> = Vec::new();
        let mut planned: Vec<crate::store::PendingWrite> = Vec::new();
        for mut state in rows {
            // A Bulk pass: a deferred write is recorded as planned; its outcome comes with
            // the pass's ingest jobs (`bulk_pass`).
            if let Some(write) = state.deferred.take() {
                planned.push(self.planned_write(&state, write)?);
                continue;
            }
            let row = &state.row;
            let had_failure = state.queued.is_some();
            // A delete settled (tombstone) or a delete conflict kept the edit (restored): the
            // target's own failure of the opposite direction (its edit found the source
            // gone: LINKED_TARGET_MISSING) is settled with it.
            let settles_opposite = matches!(state.outcome, RowOutcome::Tombstone { .. })
                || matches!(
                    (&state.outcome, state.decision.as_ref().map(|d| &d.action)),
                    (RowOutcome::Linked { .. }, Some(Action::Restore { .. }))
                );
            if settles_opposite && let Some(target_id) = state.outcome_target() {
                tx.clear_failure(opposite(cfg.direction), &cfg.object, target_id)
                    .await?;
            }
            match state.outcome {
                RowOutcome::Nothing => {
                    if matches!(mode, PipelineMode::Retry { .. }) {
                        // The retried version is already recorded (or settled): stale failure.
                        tx.clear_failure(cfg.direction, &cfg.object, &row.id)
                            .await?;
                    }
                }
                RowOutcome::Linked {
                    target_id,
                    snapshot,
                } => {
                    let mut write = link_write(&cfg.object, src, row, &target_id, snapshot);
                    let stored = match &state.revive {
                        // A tombstone revived (undelete), or a purged source created again:
                        // the stored link is rewritten in place, live.
                        Some(revive) => {
                            if let Some(id) = &revive.new_source_id {
                                match src {
                                    Org::A => write.a_id = id.clone(),
                                    Org::B => write.b_id = id.clone(),
                                }
                            }
                            let done = tx.revive_link(revive.link_id, &write).await;
                            if done.is_ok() && revive.new_source_id.is_none() {
                                TargetRestored {
                                    cycle: cfg.cycle,
                                    direction: cfg.direction,
                                    source_id: &row.id,
                                    old_target_id: &revive.old_target_id,
                                    target_id: &target_id,
                                    recreated: revive.old_target_id != target_id,
                                }
                                .emit(self.metrics);
                            }
                            done
                        }
                        None => tx.upsert_link(&write).await,
                    };
                    match stored {
                        Ok(()) => {
                            if had_failure {
                                tx.clear_failure(cfg.direction, &cfg.object, &row.id)
                                    .await?;
                            }
                        }
                        Err(StoreError::LinkConflict { detail, .. }) => {
                            counts_ref.failed += 1;
                            let error = RecordError::new("LINK_CONFLICT", detail);
                            self.record_failure(&mut tx, row, Some(target_id), error, None)
                                .await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                RowOutcome::Tombstone { target_id } => {
                    let (a_id, b_id) = match src {
                        Org::A => (row.id.clone(), target_id),
                        Org::B => (target_id, row.id.clone()),
                    };
                    // Already a tombstone (a replayed page): nothing to change.
                    tx.tombstone_link(&Tombstone {
                        object: cfg.object.clone(),
                        a_id,
                        b_id,
                        by: src,
                        at: row.system_modstamp,
                    })
                    .await?;
                    if had_failure {
                        tx.clear_failure(cfg.direction, &cfg.object, &row.id)
                            .await?;
                    }
                }
                RowOutcome::Failed {
                    target_id,
                    code,
                    message,
                    class,
                    sent,
                } => {
                    counts_ref.failed += 1;
                    // A held delete: the link records the deleted version, so that a re-read
                    // of it (the lookback) is a replay, and `failures discard` keeps the copy.
                    if code == FailCode::DeleteHeld.as_str()
                        && let (Some(link), Some(target_id)) = (&state.link, &target_id)
                    {
                        let snapshot = link.snapshot.clone().unwrap_or_default();
                        let write = link_write(&cfg.object, src, row, target_id, snapshot);
                        tx.upsert_link(&write).await?;
                    }
                    let error = RecordError {
                        code,
                        message,
                        class,
                    };
                    self.record_failure(&mut tx, row, target_id, error, sent)
                        .await?;
                    // A failed row is not carried back: its reverse waits for its success.
                    continue;
                }
            }
            if let Some(target_id) = &state.reverse {
                ReverseQueued {
                    cycle: cfg.cycle,
                    direction: cfg.direction,
                    source_id: &row.id,
                    target_id,
                }
                .emit(self.metrics);
                reverse.push(reverse_carry(
                    cfg.direction,
                    &cfg.object,
                    tgt,
                    row,
                    target_id,
                ));
            }
        }
        if !reverse.is_empty() {
            counts_ref.reversed += reverse.len() as u64;
            tx.insert_notifications(&reverse).await?;
        }
        if let Some(job_id) = &pending_job {
            if !planned.is_empty() {
                tx.insert_pending(job_id, &planned).await?;
            }
            if !pending_done.is_empty() {
                tx.delete_pending(job_id, &pending_done).await?;
            }
        }
        match &mode {
            // A Bulk pass moves the watermark at its end, once every row has its outcome.
            PipelineMode::Changes if pending_job.is_some() => {}
            PipelineMode::Changes => {
                if let Some(max) = page_max {
                    tx.advance_watermark(src, &cfg.object, max).await?;
                    counts_ref.watermark = counts_ref.watermark.max(Some(max));
                }
            }
            PipelineMode::Retry { missing, rejected } => {
                self.record_rejected(&mut tx, rejected, counts_ref).await?;
                for id in missing {
                    FailureCleared {
                        cycle: cfg.cycle,
                        direction: cfg.direction,
                        source_id: id,
                    }
                    .emit(self.metrics);
                    tx.clear_failure(cfg.direction, &cfg.object, id).await?;
                }
            }
            PipelineMode::Inbox { item_ids, rejected } => {
                self.record_rejected(&mut tx, rejected, counts_ref).await?;
                tx.mark_processed(item_ids).await?;
            }
            PipelineMode::Deletes => {}
        }
        // A Bulk read's page: its staged rows go with its outcomes (`bulk_read`).
        if let Some(staged) = &staged {
            tx.delete_staged(&staged.job_id, (&staged.through.0, &staged.through.1))
                .await?;
        }
        tx.commit().await?;
        counts.pages += 1;
        report.absorb(counts);
        Ok(())
    }

    pub(super) async fn record_failure(
        &self,
        tx: &mut St::Tx,
        row: &SourceRow,
        target_id: Option<String>,
        error: RecordError,
        sent: Option<Map<String, Value>>,
    ) -> Result<(), PassError> {
        let cfg = self.config;
        FailureQueued {
            cycle: cfg.cycle,
            direction: cfg.direction,
            source_id: &row.id,
            target_id: target_id.as_deref(),
            code: &error.code,
            message: &error.message,
            class: error.class.as_str(),
        }
        .emit(self.metrics);
        let failure = NewFailure {
            direction: cfg.direction,
            object: cfg.object.clone(),
            source_id: row.id.clone(),
            target_id,
            source_modstamp: Some(row.system_modstamp),
            error_code: error.code,
            message: error.message,
            class: error.class,
            sent,
        };
        tx.record_failure(&failure, &cfg.backoff).await?;
        Ok(())
    }
}

/// The direction opposite `direction`.
fn opposite(direction: Direction) -> Direction {
    match direction {
        Direction::AToB => Direction::BToA,
        Direction::BToA => Direction::AToB,
    }
}

/// The inbox row that carries `target_id` (a record of the target org, which holds values the
/// source does not) back to the source in the opposite direction. Its notification id names
/// the direction, the source row and its version, so a replayed page queues it once.
pub(super) fn reverse_carry(
    direction: Direction,
    object: &str,
    target: Org,
    row: &SourceRow,
    target_id: &str,
) -> NewNotification {
    NewNotification {
        org: target,
        notification_id: format!(
            "orgsync-reverse:{}:{}:{}",
            direction,
            row.id,
            row.system_modstamp.timestamp_millis()
        ),
        object: object.to_string(),
        record_id: target_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn a_reverse_carry_is_an_inbox_row_of_the_target_named_by_the_source_version() {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 10, 0, 0)
            .single()
            .expect("time");
        let row = SourceRow {
            id: "a1".into(),
            system_modstamp: at,
            last_modified_date: at,
            last_modified_by: None,
            values: Default::default(),
            parent: None,
            deleted: false,
        };
        let n = reverse_carry(Direction::AToB, "Opportunity", Org::B, &row, "b1");
        assert_eq!(n.org, Org::B);
        assert_eq!(n.record_id, "b1");
        assert_eq!(n.object, "Opportunity");
        assert_eq!(
            n.notification_id,
            format!(
                "orgsync-reverse:{}:a1:{}",
                Direction::AToB,
                at.timestamp_millis()
            )
        );
    }
}
