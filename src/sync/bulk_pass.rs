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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use futures::future::join_all;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::bulk_read::{BulkRead, Waited, overdue, stops};
use super::bulk_write::page_through_bulk;
use super::errors::{PassError, Stop};
use super::mapping::Canonical;
use super::pass::{COLLECTION_LIMIT, Page, Pass, PipelineMode};
use super::plan::{Action, QueuedFailure, SourceRow};
use super::ports::{
    BulkResults, BulkStatus, OrgPort, PageTxPort, QueryKind, RecordQuery, StorePort,
};
use super::report::{PassOutcome, PassReport};
use super::rows::{RowOutcome, RowState, Write, parse_target_row};
use super::write::per_record;
use crate::domain::FailureClass;
use crate::events::bulk::{BulkJobCreated, BulkJobEnded};
use crate::events::record::{RecordUpdated, RecordWritten};
use crate::salesforce::bulk::files::{CsvRows, CsvUpload};
use crate::salesforce::bulk::{poll_delay, split_row_error};
use crate::store::{
    BulkJob, BulkJobState, PendingWrite, StagedTarget, Store, StoreError, StoredResult,
};

/// Largest upload of one ingest job, in bytes of CSV (Salesforce takes 150 MB base64
/// encoded, about 100 MB of CSV; sfsim's default limit is 100,000,000 bytes).
pub const MAX_JOB_BYTES: u64 = 90_000_000;

/// A target of at most this many records is staged through REST query pages (5 calls)
/// instead of a query job.
pub const TARGETS_THROUGH_REST: u64 = 10_000;

/// Planned rows read from the store at a time.
const CHUNK: u32 = 2_000;

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

/// The record an upload sends for a planned write: the body, with the `Id` of an update.
fn upload_record(write: &Write) -> Map<String, Value> {
    match write {
        Write::Update { target_id, body } => {
            let mut record = body.clone();
            record.insert("Id".into(), Value::String(target_id.clone()));
            record
        }
        Write::Create(body) => body.clone(),
    }
}

/// What a planned row's commit needs (`bulk_pending.pending`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PendingRow {
    row: SourceRow,
    /// It had a failure-queue entry (cleared when it succeeds).
    queued: bool,
    /// Its linked target, for a failure's record.
    linked_target: Option<String>,
    write: Write,
    snapshot: Canonical,
    /// The target record to carry back to the source once written.
    reverse: Option<String>,
}

fn pending_row(p: &PendingWrite) -> Result<PendingRow, StoreError> {
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

/// The results of one result file, by key.
fn results_of(
    rows: Vec<Vec<String>>,
    header: &[String],
    key: &str,
    which: BulkResults,
) -> Vec<(String, StoredResult)> {
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(k), id, created, error) = (
        col(key),
        col("sf__Id"),
        col("sf__Created"),
        col("sf__Error"),
    ) else {
        return Vec::new();
    };
    rows.into_iter()
        .filter_map(|cells| {
            let key = cells.get(k)?.clone();
            let cell = |i: Option<usize>| i.and_then(|i| cells.get(i)).cloned().unwrap_or_default();
            let result = match which {
                BulkResults::Successful => StoredResult::Written {
                    target_id: cell(id),
                    created: cell(created).eq_ignore_ascii_case("true"),
                },
                BulkResults::Failed => {
                    let (code, message) = split_row_error(&cell(error));
                    StoredResult::Failed { code, message }
                }
                BulkResults::Unprocessed => StoredResult::Unprocessed,
            };
            Some((key, result))
        })
        .collect()
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
            self.set_deferral(None);
            if !fed? {
                report.outcome = PassOutcome::Cancelled;
                return Ok(BulkRead::Done);
            }
            store
                .set_bulk_job_state(&job.job_id, BulkJobState::Planned)
                .await?;
            job.state = BulkJobState::Planned;
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
        }
        self.commit_planned(store, &job, report).await?;
        self.end_read(store, &job).await?;
        Ok(BulkRead::Done)
    }

    /// Stages the target's records for the lookups, when it pays; whether it did.
    async fn stage_targets(
        &self,
        store: &Store,
        job: &BulkJob,
        cancel: &CancellationToken,
    ) -> Result<bool, Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let count = match self.call(self.target.count_records(&cfg.object)).await {
            Ok(n) => n,
            Err(e) if stops(&e) => return Err(Stop::port(tgt, e)),
            Err(_) => return Ok(false),
        };
        if !stage_targets_pays(job.rows_staged, count) {
            tracing::info!(
                cycle = cfg.cycle,
                direction = %cfg.direction,
                target_records = count,
                rows = job.rows_staged,
                "bulk pass: the target is too large to stage; pages look up as on REST"
            );
            return Ok(false);
        }
        let query = RecordQuery {
            object: cfg.object.clone(),
            fields: self.target_fields(),
            kind: QueryKind::All,
        };
        if count <= TARGETS_THROUGH_REST {
            let records = self.query_all(self.target, tgt, &query).await?;
            for chunk in records.chunks(CHUNK as usize) {
                self.stage_target_chunk(store, &job.job_id, chunk.to_vec())
                    .await?;
            }
            return Ok(true);
        }
        let job_id = match self.call(self.target.bulk_query_start(&query)).await {
            Ok(id) => id,
            Err(e) if stops(&e) => return Err(Stop::port(tgt, e)),
            Err(_) => return Ok(false),
        };
        let created_at = Utc::now();
        store
            .insert_bulk_job(
                &job_id,
                tgt,
                &cfg.object,
                "lookup",
                cfg.direction,
                cfg.cycle,
                created_at,
            )
            .await?;
        BulkJobCreated {
            cycle: cfg.cycle,
            direction: cfg.direction,
            org: tgt,
            job_id: &job_id,
            operation: "lookup",
            backlog: Some(count),
        }
        .emit();
        let waited = self
            .wait_query(self.target, tgt, &job_id, created_at, cancel)
            .await?;
        if !matches!(waited, Waited::Complete) {
            let _ = self.call(self.target.bulk_query_end(&job_id, false)).await;
            let reason = match waited {
                Waited::Ended(reason) => reason,
                Waited::Cancelled => "the pass was stopped".to_string(),
                _ => "still open after batch.bulk_timeout: aborted".to_string(),
            };
            self.end_lookup(store, &job_id, BulkJobState::Aborted, 0, Some(&reason))
                .await?;
            return Ok(false);
        }
        let mut locator: Option<String> = None;
        let mut staged = 0u64;
        loop {
            let page = match self
                .call(self.target.bulk_query_page(
                    &job_id,
                    &cfg.object,
                    locator.as_deref(),
                    self.bulk.max_records,
                ))
                .await
            {
                Ok(page) => page,
                Err(e) if stops(&e) => return Err(Stop::port(tgt, e)),
                Err(e) => {
                    self.end_lookup(
                        store,
                        &job_id,
                        BulkJobState::Failed,
                        staged,
                        Some(&e.to_string()),
                    )
                    .await?;
                    store.clear_bulk_targets(&job.job_id).await?;
                    return Ok(false);
                }
            };
            let mut records = page.records;
            loop {
                let chunk = records
                    .next_chunk(CHUNK as usize)
                    .map_err(|e| Stop::port(tgt, e))?;
                if chunk.is_empty() {
                    break;
                }
                staged += chunk.len() as u64;
                self.stage_target_chunk(store, &job.job_id, chunk).await?;
            }
            match page.next_locator {
                Some(next) => locator = Some(next),
                None => break,
            }
        }
        if let Err(e) = self.call(self.target.bulk_query_end(&job_id, true)).await {
            tracing::debug!(job_id = %job_id, error = %e, "delete of a finished bulk job failed");
        }
        self.end_lookup(store, &job_id, BulkJobState::Completed, staged, None)
            .await?;
        Ok(true)
    }

    async fn stage_target_chunk(
        &self,
        store: &Store,
        job_id: &str,
        records: Vec<Map<String, Value>>,
    ) -> Result<(), Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let parsed =
                parse_target_row(tgt, self.mapping, cfg.external_id_field.as_deref(), &record)
                    .map_err(|message| PassError::BadRow { org: tgt, message })?;
            rows.push(StagedTarget {
                record_id: parsed.id.clone(),
                external_id: parsed.external_id.clone(),
                match_key: match_key_text(&cfg.match_by, &parsed.values),
                record,
            });
        }
        store.stage_bulk_targets(job_id, &rows).await?;
        Ok(())
    }

    async fn end_lookup(
        &self,
        store: &Store,
        job_id: &str,
        state: BulkJobState,
        rows: u64,
        reason: Option<&str>,
    ) -> Result<(), Stop> {
        store
            .finish_bulk_job(job_id, state, rows, reason, Utc::now())
            .await?;
        BulkJobEnded {
            cycle: self.config.cycle,
            direction: self.config.direction,
            org: self.target_org(),
            job_id,
            operation: "lookup",
            outcome: state.as_str(),
            rows,
            reason,
        }
        .emit(self.metrics);
        Ok(())
    }

    /// Polls a query job of `port` until it completes, ends, stalls or the pass stops.
    async fn wait_query<O: OrgPort>(
        &self,
        port: &O,
        org: crate::store::Org,
        job_id: &str,
        created_at: chrono::DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> Result<Waited, Stop> {
        let mut attempt = 0u32;
        loop {
            match self.call(port.bulk_query_status(job_id)).await {
                Ok(BulkStatus::Complete) => return Ok(Waited::Complete),
                Ok(BulkStatus::Ended { state, message }) => {
                    return Ok(Waited::Ended(format!("job {state}: {message}")));
                }
                Ok(BulkStatus::Running) => {}
                Err(e) if stops(&e) => return Err(Stop::port(org, e)),
                Err(e) => return Ok(Waited::Ended(e.to_string())),
            }
            if overdue(created_at, Utc::now(), self.bulk.timeout) {
                return Ok(Waited::Overdue);
            }
            attempt += 1;
            let delay = poll_delay(attempt, self.bulk.poll_initial, self.bulk.poll_max);
            tokio::select! {
                () = cancel.cancelled() => return Ok(Waited::Cancelled),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// The write stage of one operation: ingest jobs when they pay, then collections for
    /// whatever has no result yet. `false`: the pass was stopped.
    async fn write_planned(
        &self,
        store: &Store,
        job: &BulkJob,
        operation: &'static str,
        cancel: &CancellationToken,
    ) -> Result<bool, Stop> {
        let unwritten = store.bulk_unwritten_count(&job.job_id, operation).await?;
        if unwritten == 0 {
            return Ok(true);
        }
        let many = usize::try_from(unwritten).unwrap_or(usize::MAX);
        if page_through_bulk(self.bulk.mode, many) {
            let mut after: Option<u64> = None;
            loop {
                match self
                    .ingest_planned(store, job, operation, after, cancel)
                    .await?
                {
                    Ingested::Through(last) => after = Some(last),
                    Ingested::Nothing => break,
                    Ingested::Stopped => break,
                }
            }
            if cancel.is_cancelled() {
                return Ok(false);
            }
        }
        self.collections_planned(store, job, operation).await?;
        Ok(true)
    }

    /// One ingest job for the unwritten rows of `operation` after `after`, up to
    /// [`MAX_JOB_BYTES`]: their results recorded.
    async fn ingest_planned(
        &self,
        store: &Store,
        job: &BulkJob,
        operation: &'static str,
        after: Option<u64>,
        cancel: &CancellationToken,
    ) -> Result<Ingested, Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let key = match operation {
            "update" => "Id".to_string(),
            _ => cfg.external_id_field.clone().unwrap_or_default(),
        };
        // First the rows' extent and columns, then the upload, both streamed from the store.
        let mut fields: BTreeSet<String> = BTreeSet::new();
        let mut bytes = 0u64;
        let mut first: Option<u64> = None;
        let mut last: Option<u64> = None;
        let mut cursor = after;
        'extent: loop {
            let chunk = store
                .bulk_unwritten(&job.job_id, operation, cursor, CHUNK)
                .await?;
            if chunk.is_empty() {
                break;
            }
            for p in &chunk {
                let row = pending_row(p)?;
                let record = upload_record(&row.write);
                bytes += serde_json::to_string(&record).map_or(0, |t| t.len() as u64);
                fields.extend(record.keys().filter(|k| **k != key).cloned());
                first.get_or_insert(p.seq);
                last = Some(p.seq);
                cursor = Some(p.seq);
                if bytes > MAX_JOB_BYTES {
                    break 'extent;
                }
            }
        }
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Ingested::Nothing);
        };
        let header: Vec<String> = std::iter::once(key.clone()).chain(fields).collect();
        let mut upload = CsvUpload::new(header).map_err(|m| Stop::port(tgt, upload_error(&m)))?;
        let mut cursor = first.checked_sub(1);
        'upload: loop {
            let chunk = store
                .bulk_unwritten(&job.job_id, operation, cursor, CHUNK)
                .await?;
            if chunk.is_empty() {
                break;
            }
            for p in &chunk {
                if p.seq > last {
                    break 'upload;
                }
                let row = pending_row(p)?;
                upload
                    .push(&upload_record(&row.write))
                    .map_err(|m| Stop::port(tgt, upload_error(&m)))?;
                cursor = Some(p.seq);
            }
        }
        let rows = upload.rows();
        let file = upload
            .finish()
            .map_err(|m| Stop::port(tgt, upload_error(&m)))?;
        let ext = (operation == "upsert").then_some(key.as_str());
        let job_id = match self
            .call(self.target.bulk_ingest_start(&cfg.object, operation, ext))
            .await
        {
            Ok(id) => id,
            Err(e) => {
                if let Some(stop) = Stop::pause(tgt, &e) {
                    return Err(stop);
                }
                tracing::warn!(
                    cycle = cfg.cycle,
                    direction = %cfg.direction,
                    org = %tgt,
                    code = %e.code,
                    error = %e.message,
                    "bulk ingest job refused: the planned writes go through collections"
                );
                return Ok(Ingested::Stopped);
            }
        };
        let created_at = Utc::now();
        store
            .insert_bulk_job(
                &job_id,
                tgt,
                &cfg.object,
                operation,
                cfg.direction,
                cfg.cycle,
                created_at,
            )
            .await?;
        BulkJobCreated {
            cycle: cfg.cycle,
            direction: cfg.direction,
            org: tgt,
            job_id: &job_id,
            operation,
            backlog: Some(rows),
        }
        .emit();
        let uploaded = match self
            .call(self.target.bulk_ingest_upload_file(&job_id, &file))
            .await
        {
            Ok(()) => {
                self.call(self.target.bulk_ingest_close(&job_id, false))
                    .await
            }
            Err(e) => Err(e),
        };
        drop(file);
        if let Err(e) = uploaded {
            let _ = self
                .call(self.target.bulk_ingest_close(&job_id, true))
                .await;
            if let Some(stop) = Stop::pause(tgt, &e) {
                self.end_ingest(
                    &job_id,
                    operation,
                    BulkJobState::Aborted,
                    0,
                    Some(&e.to_string()),
                )
                .await?;
                return Err(stop);
            }
            self.end_ingest(
                &job_id,
                operation,
                BulkJobState::Failed,
                0,
                Some(&e.to_string()),
            )
            .await?;
            return Ok(Ingested::Stopped);
        }
        let mut attempt = 0u32;
        let ended = loop {
            match self.call(self.target.bulk_ingest_status(&job_id)).await {
                Ok(BulkStatus::Complete) => break BulkJobState::Completed,
                Ok(BulkStatus::Ended { .. }) => break BulkJobState::Failed,
                Ok(BulkStatus::Running) => {}
                Err(e) => {
                    if let Some(stop) = Stop::pause(tgt, &e) {
                        return Err(stop);
                    }
                }
            }
            if cancel.is_cancelled() || overdue(created_at, Utc::now(), self.bulk.timeout) {
                let _ = self
                    .call(self.target.bulk_ingest_close(&job_id, true))
                    .await;
                break BulkJobState::Aborted;
            }
            attempt += 1;
            let delay = poll_delay(attempt, self.bulk.poll_initial, self.bulk.poll_max);
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(delay) => {}
            }
        };
        // Every result file (a failed or aborted job's too: the rows it did write; its
        // unprocessed rows are left without a result, for collections).
        let mut moved = 0u64;
        let files: &[BulkResults] = if ended == BulkJobState::Completed {
            &[
                BulkResults::Successful,
                BulkResults::Failed,
                BulkResults::Unprocessed,
            ]
        } else {
            &[BulkResults::Successful, BulkResults::Failed]
        };
        for &which in files {
            let mut file: CsvRows = match self
                .call(self.target.bulk_ingest_result_rows(&job_id, which))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    if let Some(stop) = Stop::pause(tgt, &e) {
                        return Err(stop);
                    }
                    // Results unknown: the rows go through collections.
                    let reason = format!("results unreadable: {e}");
                    self.end_ingest(
                        &job_id,
                        operation,
                        BulkJobState::Failed,
                        moved,
                        Some(&reason),
                    )
                    .await?;
                    return Ok(Ingested::Stopped);
                }
            };
            let header = file.header().to_vec();
            loop {
                let rows = file
                    .next_rows(CHUNK as usize)
                    .map_err(|m| Stop::port(tgt, upload_error(&m)))?;
                if rows.is_empty() {
                    break;
                }
                let results = results_of(rows, &header, &key, which);
                if which == BulkResults::Successful {
                    moved += results.len() as u64;
                }
                store
                    .stage_bulk_results(&job.job_id, operation, &results)
                    .await?;
            }
        }
        if ended == BulkJobState::Completed {
            // A row in no result file of a completed job was not processed.
            let mut cursor = first.checked_sub(1);
            loop {
                let chunk = store
                    .bulk_unwritten(&job.job_id, operation, cursor, CHUNK)
                    .await?;
                let unprocessed: Vec<(String, StoredResult)> = chunk
                    .iter()
                    .take_while(|p| p.seq <= last)
                    .map(|p| (p.key.clone(), StoredResult::Unprocessed))
                    .collect();
                if unprocessed.is_empty() {
                    break;
                }
                cursor = chunk
                    .iter()
                    .take_while(|p| p.seq <= last)
                    .last()
                    .map(|p| p.seq);
                store
                    .stage_bulk_results(&job.job_id, operation, &unprocessed)
                    .await?;
            }
        }
        let reason = match ended {
            BulkJobState::Completed => None,
            BulkJobState::Aborted => Some(
                "aborted (batch.bulk_timeout, or the pass stopping); rows without a result go through collections",
            ),
            _ => Some("the job failed; rows without a result go through collections"),
        };
        self.end_ingest(&job_id, operation, ended, moved, reason)
            .await?;
        Ok(match ended {
            BulkJobState::Completed => Ingested::Through(last),
            _ => Ingested::Stopped,
        })
    }

    /// Writes the unwritten rows of `operation` through sObject Collections (200 per call,
    /// `batch.in_flight` calls at a time), recording each row's result.
    async fn collections_planned(
        &self,
        store: &Store,
        job: &BulkJob,
        operation: &'static str,
    ) -> Result<(), Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let per_round = u32::try_from(COLLECTION_LIMIT * cfg.in_flight.max(1)).unwrap_or(CHUNK);
        loop {
            let chunk = store
                .bulk_unwritten(&job.job_id, operation, None, per_round)
                .await?;
            if chunk.is_empty() {
                return Ok(());
            }
            let mut planned: Vec<(String, Write)> = Vec::with_capacity(chunk.len());
            for p in &chunk {
                planned.push((p.key.clone(), pending_row(p)?.write));
            }
            let calls = planned.chunks(COLLECTION_LIMIT).map(|part| async move {
                let result = match operation {
                    "update" => {
                        let bodies: Vec<(String, Map<String, Value>)> = part
                            .iter()
                            .map(|(key, w)| (key.clone(), w.body().clone()))
                            .collect();
                        self.call(self.target.update(&cfg.object, &bodies)).await
                    }
                    _ => {
                        let ext = cfg.external_id_field.as_deref().unwrap_or_default();
                        let bodies: Vec<Map<String, Value>> =
                            part.iter().map(|(_, w)| w.body().clone()).collect();
                        self.call(self.target.upsert(&cfg.object, ext, &bodies))
                            .await
                    }
                };
                (result, part)
            });
            let done = join_all(calls).await;
            if let Some(stop) = done
                .iter()
                .find_map(|(result, _)| result.as_ref().err().and_then(|e| Stop::pause(tgt, e)))
            {
                return Err(stop);
            }
            let mut results = Vec::with_capacity(planned.len());
            for (result, part) in done {
                for ((key, _), outcome) in part.iter().zip(per_record(result, part.len())) {
                    results.push((
                        key.clone(),
                        match outcome {
                            Ok(ok) => StoredResult::Written {
                                target_id: ok.id,
                                created: ok.created,
                            },
                            Err(e) => StoredResult::Failed {
                                code: e.code,
                                message: e.message,
                            },
                        },
                    ));
                }
            }
            store
                .stage_bulk_results(&job.job_id, operation, &results)
                .await?;
        }
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

/// What one ingest job of planned rows did.
enum Ingested {
    /// It completed through this planned row.
    Through(u64),
    /// No unwritten rows were left.
    Nothing,
    /// It failed, was refused or aborted: the rest goes through collections.
    Stopped,
}

fn upload_error(message: &str) -> super::ports::PortError {
    super::ports::PortError {
        kind: super::ports::ErrorKind::Transient,
        code: "BULK_FILE".into(),
        message: message.to_string(),
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
        assert_eq!(upload_record(&update)["Id"], json!("006B"));
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

    #[test]
    fn result_files_are_read_by_key_column() {
        let header: Vec<String> = ["sf__Id", "sf__Created", "Ext__c", "Name"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = vec![
            vec!["006B".into(), "true".into(), "a2".into(), "x".into()],
            vec!["006C".into(), "false".into(), "a1".into(), "y".into()],
        ];
        let got = results_of(rows, &header, "Ext__c", BulkResults::Successful);
        assert_eq!(
            got,
            [
                (
                    "a2".to_string(),
                    StoredResult::Written {
                        target_id: "006B".into(),
                        created: true
                    }
                ),
                (
                    "a1".to_string(),
                    StoredResult::Written {
                        target_id: "006C".into(),
                        created: false
                    }
                ),
            ]
        );
        let header: Vec<String> = ["sf__Id", "sf__Error", "Id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = vec![vec![
            "".into(),
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access:--".into(),
            "006D".into(),
        ]];
        assert_eq!(
            results_of(rows, &header, "Id", BulkResults::Failed),
            [(
                "006D".to_string(),
                StoredResult::Failed {
                    code: "UNABLE_TO_LOCK_ROW".into(),
                    message: "unable to obtain exclusive access:--".into()
                }
            )]
        );
        // A file without the key column says nothing.
        assert!(
            results_of(
                vec![vec!["x".into()]],
                &["sf__Id".to_string()],
                "Id",
                BulkResults::Successful
            )
            .is_empty()
        );
    }
}
