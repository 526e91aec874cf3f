//! Bulk pass: a direction pass whose read went through a Bulk query job (`bulk_read`) and
//! whose backlog is above `batch.bulk_write_threshold` looks its rows up and writes them per
//! pass, not per page, so that 1,000,000 records cost a few dozen API calls:
//!
//! 1. **Plan** (job state `staged`). The target's records are staged once in `bulk_targets`
//!    (one count query, then a Bulk query job of every live record; REST pages up to
//!    [`TARGETS_THROUGH_REST`] records; not at all when the target holds more than
//!    [`stage_targets_pays`] allows: the pages then look up as on REST). The staged rows
//!    run through the page pipeline in `(SystemModstamp, Id)` order as on the REST path,
//!    each page's lookup served from `bulk_targets`; its updates (by `Id`) and its creates
//!    (upserts on `sync.external_id_field`) are not written but recorded in `bulk_pending`
//!    in the page's transaction, with everything else the page decided (links, skips,
//!    failures, deletes, creates without an external id through collections).
//! 2. **Write** (`planned`). The planned writes of each operation go through ingest jobs of
//!    at most [`MAX_JOB_BYTES`] of CSV each, uploaded from a file and never held in memory;
//!    each row's result, read back from the result files by its key (never by position), is
//!    recorded in `bulk_results`. A job that fails or stalls past `batch.bulk_timeout` leaves
//!    its rows without a result, and they are written through sObject Collections, as are
//!    the writes of an operation too few for a job to pay (`bulk_write::page_through_bulk`).
//! 3. **Commit** (`written`). The planned rows get their outcomes (links and snapshots, or
//!    failures in the queue) page by page, each page deleting its planned rows; then the
//!    watermark moves to the read's highest SystemModstamp, and the job ends.
//!
//! A `kill -9` at any point resumes from the job's state: while planning, the plan starts
//! again (the rows already committed are replays; the planned ones are dropped and planned
//! again, nothing of them having been written); while writing, only the rows without a
//! result are written (updates and upserts are idempotent, so a row written twice is
//! harmless); while committing, the rows left are committed. The watermark never passes a
//! row without a durable outcome.
//!
//! What is traded: the target is read once for the pass, so an edit made in the target
//! after that read and before the ingest job writes the record is overwritten without a
//! conflict being seen (as any Bulk write is unconditional); the REST path's window is a
//! page's lookup and write.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::bulk_read::BulkRead;
use super::errors::{PassError, Stop};
use super::mapping::Canonical;
use super::pass::{Page, Pass, PipelineMode};
use super::plan::{Action, QueuedFailure, SourceRow};
use super::ports::{OrgPort, PageTxPort, StorePort};
use super::report::{PassOutcome, PassReport};
use super::rows::{RowOutcome, RowState, Write};
use crate::domain::FailureClass;
use crate::events::record::{RecordUpdated, RecordWritten};
use crate::store::{BulkJob, BulkJobState, PendingWrite, Store, StoreError, StoredResult};
/// Largest upload of one ingest job, in bytes of CSV (Salesforce takes 150 MB base64
/// encoded, about 100 MB of CSV; sfsim's default limit is 100,000,000 bytes).
pub const MAX_JOB_BYTES: u64 = 90_000_000;

/// A target of at most this many records is staged through REST query pages (5 calls)
/// instead of a query job.
pub const TARGETS_THROUGH_REST: u64 = 10_000;

/// Planned rows read from the store at a time.
pub(super) const CHUNK: u32 = 2_000;

/// Whether staging the target's records for a pass of `backlog` rows pays: the target holds
/// at most four times the backlog, or 100,000 records (staging costs a few calls, but time
/// and disk in proportion to the target; the per-page lookups cost a call per page).
pub fn stage_targets_pays(backlog: u64, target_count: u64) -> bool {
    target_count <= backlog.saturating_mul(4).max(100_000)
}

/// The operation and key a write is planned under: an update by its `Id`, a create as an
/// upsert on the external id (when configured and set). `None`: it cannot go through a job
/// (a create without an external id: an insert's result could only be matched by position).
pub(super) fn planned_key(
    write: &Write,
    external_id_field: Option<&str>,
) -> Option<(&'static str, String)> {
    match write {
        Write::Update { target_id, .. } => Some(("update", target_id.clone())),
        Write::Create(body) => {
            let ext = external_id_field?;
            let key = body.get(ext).and_then(Value::as_str)?;
            Some(("upsert", key.to_string()))
        }
    }
}

/// The match key of canonical values, as `bulk_targets.match_key` holds it: the `match_by`
/// values in order, text lower-cased (SOQL's `IN` and `matching::same_key` compare text
/// without regard to case), as a JSON array; `None` when a value is missing or null.
pub(super) fn match_key_text(match_by: &[String], values: &Canonical) -> Option<String> {
    if match_by.is_empty() {
        return None;
    }
    let key: Option<Vec<Value>> = match_by
        .iter()
        .map(|f| match values.get(f) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Value::String(s.to_lowercase())),
            Some(other) => Some(other.clone()),
        })
        .collect();
    serde_json::to_string(&key?).ok()
}

/// What a planned row's commit needs (`bulk_pending.pending`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct PendingRow {
    pub row: SourceRow,
    /// It had a failure-queue entry (cleared when it succeeds).
    pub queued: bool,
    /// Its linked target, for a failure's record.
    pub linked_target: Option<String>,
    pub write: Write,
    pub snapshot: Canonical,
    /// The target record to carry back to the source once written.
    pub reverse: Option<String>,
}

pub(super) fn pending_row(p: &PendingWrite) -> Result<PendingRow, StoreError> {
    serde_json::from_str(&p.pending)
        .map_err(|e| StoreError::Corrupt(format!("planned write {}: {e}", p.seq)))
}

/// The pass's plan stage: its read job, whether the lookups come from staged targets, and
/// the next planned row's number.
#[derive(Debug)]
pub(super) struct Deferral {
    pub job_id: String,
    pub targets: bool,
    next_seq: AtomicU64,
}

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    pub(super) fn deferral(&self) -> Option<Arc<Deferral>> {
        self.deferral
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_deferral(&self, deferral: Option<Deferral>) {
        *self
            .deferral
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = deferral.map(Arc::new);
    }

    /// Whether a staged read job is carried on as a Bulk pass.
    pub(super) fn bulk_pass_applies(&self, job: &BulkJob) -> bool {
        match job.state {
            BulkJobState::Planned | BulkJobState::Written => true,
            BulkJobState::Staged => self.bulk_writes(),
            _ => false,
        }
    }

    /// The plan stage: the page's writes a job can make are deferred to the pass's jobs.
    pub(super) fn defer_writes(&self, rows: &mut [RowState]) {
        if self.deferral().is_none() {
            return;
        }
        let ext = self.config.external_id_field.as_deref();
        for state in rows.iter_mut() {
            let plain = matches!(
                state.decision.as_ref().map(|d| &d.action),
                Some(Action::Create { .. } | Action::Update { .. })
            );
            if plain
                && state.revive.is_none()
                && state
                    .write
                    .as_ref()
                    .is_some_and(|w| planned_key(w, ext).is_some())
            {
                state.deferred = state.write.take();
            }
        }
    }

    /// A deferred write as its planned row (numbered in commit order).
    pub(super) fn planned_write(
        &self,
        state: &RowState,
        write: Write,
    ) -> Result<PendingWrite, PassError> {
        let deferral = self
            .deferral()
            .ok_or_else(|| StoreError::Corrupt("a deferred write outside a bulk pass".into()))?;
        let (operation, key) = planned_key(&write, self.config.external_id_field.as_deref())
            .ok_or_else(|| StoreError::Corrupt("a deferred write without a key".into()))?;
        let pending = PendingRow {
            row: state.row.clone(),
            queued: state.queued.is_some(),
            linked_target: state.linked_target().map(str::to_string),
            write,
            snapshot: state
                .decision
                .as_ref()
                .and_then(|d| d.snapshot.clone())
                .unwrap_or_default(),
            reverse: state.reverse.clone(),
        };
        let pending = serde_json::to_string(&pending)
            .map_err(|e| StoreError::Corrupt(format!("planned write: {e}")))?;
        Ok(PendingWrite {
            seq: deferral.next_seq.fetch_add(1, Ordering::Relaxed),
            operation: operation.to_string(),
            key,
            pending,
        })
    }

    /// A page's lookup served from the staged target records.
    pub(super) async fn staged_lookup(
        &self,
        deferral: &Deferral,
        rows: &[RowState],
    ) -> Result<Vec<Map<String, Value>>, Stop> {
        let Some(store) = self.store.bulk() else {
            return Ok(Vec::new());
        };
        let cfg = self.config;
        let mut ids = Vec::new();
        let mut exts = Vec::new();
        let mut keys = Vec::new();
        for state in rows.iter().filter(|s| s.looked_up()) {
            match state.linked_target() {
                Some(id) => ids.push(id.to_string()),
                None => {
                    if cfg.external_id_field.is_some() {
                        exts.push(state.row.id.clone());
                    }
                    if let Some(key) = match_key_text(&cfg.match_by, &state.row.values) {
                        keys.push(key);
                    }
                }
            }
        }
        Ok(store
            .bulk_targets(&deferral.job_id, &ids, &exts, &keys)
            .await?)
    }

    /// Carries a staged read job on as a Bulk pass, from its stage to the end.
    pub(super) async fn bulk_pass(
        &self,
        store: &Store,
        mut job: BulkJob,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<BulkRead, Stop> {
        if job.state == BulkJobState::Staged {
            store.clear_bulk_pending(&job.job_id).await?;
            store.clear_bulk_targets(&job.job_id).await?;
            let targets = self.stage_targets(store, &job, cancel).await?;
            tracing::info!(
                cycle = self.config.cycle,
                direction = %self.config.direction,
                job_id = %job.job_id,
                rows = job.rows_staged,
                staged_targets = targets,
                "bulk pass: planning"
            );
            self.set_deferral(Some(Deferral {
                job_id: job.job_id.clone(),
                targets,
                next_seq: AtomicU64::new(0),
            }));
            let fed = self.feed_pages(store, &job, true, cancel, report).await;
            let planned = self.deferral().map(|d| d.next_seq.load(Ordering::Relaxed));
            self.set_deferral(None);
            if !fed? {
                report.outcome = PassOutcome::Cancelled;
                return Ok(BulkRead::Done);
            }
            store
                .set_bulk_job_state(&job.job_id, BulkJobState::Planned)
                .await?;
            job.state = BulkJobState::Planned;
            tracing::info!(
                cycle = self.config.cycle,
                direction = %self.config.direction,
                job_id = %job.job_id,
                planned = planned.unwrap_or_default(),
                "bulk pass: planned; writing"
            );
        }
        if job.state == BulkJobState::Planned {
            for operation in ["update", "upsert"] {
                if !self.write_planned(store, &job, operation, cancel).await? {
                    report.outcome = PassOutcome::Cancelled;
                    return Ok(BulkRead::Done);
                }
            }
            store
                .set_bulk_job_state(&job.job_id, BulkJobState::Written)
                .await?;
            job.state = BulkJobState::Written;
            tracing::info!(
                cycle = self.config.cycle,
                direction = %self.config.direction,
                job_id = %job.job_id,
                "bulk pass: written; committing"
            );
        }
        self.commit_planned(store, &job, report).await?;
        tracing::info!(
            cycle = self.config.cycle,
            direction = %self.config.direction,
            job_id = %job.job_id,
            rows = job.rows_staged,
            "bulk pass: committed"
        );
        self.end_read(store, &job).await?;
        Ok(BulkRead::Done)
    }

    /// The commit stage: every planned row's outcome, page by page; then the watermark.
    async fn commit_planned(
        &self,
        store: &Store,
        job: &BulkJob,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let cfg = self.config;
        let limit = u32::try_from(cfg.page_size.max(1)).unwrap_or(CHUNK);
        loop {
            let chunk = store.bulk_pending(&job.job_id, None, None, limit).await?;
            if chunk.is_empty() {
                break;
            }
            let mut by_op: HashMap<String, Vec<String>> = HashMap::new();
            for p in &chunk {
                by_op
                    .entry(p.operation.clone())
                    .or_default()
                    .push(p.key.clone());
            }
            let mut results: HashMap<(String, String), StoredResult> = HashMap::new();
            for (op, keys) in by_op {
                for (key, result) in store.bulk_results(&job.job_id, &op, &keys).await? {
                    results.insert((op.clone(), key), result);
                }
            }
            let mut counts = PassReport::default();
            let mut rows = Vec::with_capacity(chunk.len());
            for p in &chunk {
                let pending = pending_row(p)?;
                let result = results.remove(&(p.operation.clone(), p.key.clone()));
                rows.push(self.planned_outcome(pending, result, &mut counts));
            }
            let page = Page {
                index: 0,
                rows,
                mode: PipelineMode::Changes,
                page_max: None,
                counts,
                account_links: Vec::new(),
                stale_account_links: Vec::new(),
                staged: None,
                pending_job: Some(job.job_id.clone()),
                pending_done: chunk.iter().map(|p| p.seq).collect(),
            };
            self.commit_page(page, report).await?;
        }
        // Every row of the read has its outcome: the watermark moves to its highest stamp.
        if let Some(max) = store.staged_max_modstamp(&job.job_id).await? {
            let mut tx = self.store.begin().await?;
            tx.advance_watermark(self.source_org(), &cfg.object, max)
                .await?;
            tx.commit().await?;
            report.watermark = report.watermark.max(Some(max));
        }
        Ok(())
    }

    /// A planned row with its result, as the commit records it; with its event and counts.
    fn planned_outcome(
        &self,
        pending: PendingRow,
        result: Option<StoredResult>,
        counts: &mut PassReport,
    ) -> RowState {
        let cfg = self.config;
        let queued = pending.queued.then_some(QueuedFailure {
            source_modstamp: None,
        });
        let mut state = RowState::new(pending.row, None, queued);
        state.reverse = pending.reverse;
        let body = pending.write.body().clone();
        let failed = |code: String, message: String, class: FailureClass| RowOutcome::Failed {
            target_id: pending.linked_target.clone(),
            code,
            message,
            class,
            sent: Some(body.clone()),
        };
        state.outcome = match result {
            Some(StoredResult::Written { target_id, created }) => {
                let target_id = match &pending.write {
                    Write::Update { target_id, body } => {
                        counts.updated += 1;
                        RecordUpdated {
                            cycle: cfg.cycle,
                            direction: cfg.direction,
                            source_id: &state.row.id,
                            target_id,
                            body,
                        }
                        .emit(self.metrics);
                        target_id.clone()
                    }
                    Write::Create(_) => {
                        counts.created += u64::from(created);
                        counts.updated += u64::from(!created);
                        RecordWritten {
                            cycle: cfg.cycle,
                            direction: cfg.direction,
                            source_id: &state.row.id,
                            target_id: &target_id,
                            created,
                        }
                        .emit(self.metrics);
                        target_id
                    }
                };
                RowOutcome::Linked {
                    target_id,
                    snapshot: pending.snapshot,
                }
            }
            Some(StoredResult::Failed { code, message }) => {
                let class = FailureClass::of_code(&code);
                failed(code, message, class)
            }
            Some(StoredResult::Unprocessed) => failed(
                "BULK_UNPROCESSED".into(),
                "the bulk job did not process the record".into(),
                FailureClass::Transient,
            ),
            None => failed(
                "NO_RESULT".into(),
                "no result was recorded for the planned write".into(),
                FailureClass::Transient,
            ),
        };
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn targets_are_staged_while_the_target_is_not_much_larger_than_the_backlog() {
        assert!(stage_targets_pays(10, 100_000));
        assert!(!stage_targets_pays(10, 100_001));
        assert!(stage_targets_pays(1_000_000, 4_000_000));
        assert!(!stage_targets_pays(1_000_000, 4_000_001));
    }

    #[test]
    fn updates_and_upserts_are_planned_inserts_are_not() {
        let update = Write::Update {
            target_id: "006B".into(),
            body: map(json!({"Name": "x"})),
        };
        assert_eq!(planned_key(&update, None), Some(("update", "006B".into())));
        let create = Write::Create(map(json!({"Name": "x", "Ext__c": "006A"})));
        assert_eq!(
            planned_key(&create, Some("Ext__c")),
            Some(("upsert", "006A".into()))
        );
        assert_eq!(planned_key(&create, None), None);
        let unkeyed = Write::Create(map(json!({"Name": "x"})));
        assert_eq!(planned_key(&unkeyed, Some("Ext__c")), None);
    }

    #[test]
    fn match_keys_ignore_case_and_need_every_value() {
        let by = vec!["Name".to_string(), "CloseDate".to_string()];
        let values: Canonical = [
            ("Name".to_string(), json!("Acme")),
            ("CloseDate".to_string(), json!("2026-01-01")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            match_key_text(&by, &values).as_deref(),
            Some("[\"acme\",\"2026-01-01\"]")
        );
        let mut partial = values.clone();
        partial.insert("CloseDate".into(), Value::Null);
        assert_eq!(match_key_text(&by, &partial), None);
        assert_eq!(match_key_text(&[], &values), None);
    }
}
