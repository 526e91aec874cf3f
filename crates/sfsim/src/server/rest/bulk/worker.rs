//! The background task that processes an org's Bulk jobs: a query job runs its query when
//! processing starts and counts its rows as processed; an ingest job parses its upload, checks
//! the header, and applies its rows through the same DML as REST writes (validation, required
//! fields, timestamps, lock-error and validation faults, Outbound Messaging), 200 rows per
//! database call. The `bulk_rows_per_second`, `bulk_stall` and `bulk_fail` faults slow, stall
//! or fail jobs. Locks are never nested: the job table and the database are taken in turn.

use std::sync::Weak;
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::{info, warn};

use crate::bulk::csv_io::{self, Table};
use crate::bulk::ingest::{self, Operation};
use crate::bulk::{JobKind, JobState, RowResult};
use crate::db::{DmlContext, DmlOp};
use crate::error::ItemError;
use crate::server::state::{Faults, OrgState, lock};

/// The pause between steps when jobs are rate-limited or idle.
const TICK: Duration = Duration::from_millis(100);
/// Rows a query job counts per step when not rate-limited.
const QUERY_CHUNK: usize = 50_000;
/// Rows an ingest job processes per step when not rate-limited.
const INGEST_CHUNK: usize = 2_000;
/// Rows per database call of an ingest job (Salesforce runs triggers 200 at a time).
const DML_CHUNK: usize = 200;
/// The `errorMessage` of an ingest job failed by the `bulk_fail` fault.
pub const FAULT_MESSAGE: &str =
    "InternalServerError : simulated job failure (sfsim fault bulk_fail)";

/// Processes jobs until the org is gone.
pub(in crate::server) async fn run(state: Weak<OrgState>) {
    loop {
        let Some(st) = state.upgrade() else { return };
        let busy = step_all(&st);
        let limited = lock(&st.faults).bulk_rows_per_second > 0;
        if limited {
            // A steady pace: wake-ups do not speed a rate-limited job up.
            drop(st);
            tokio::time::sleep(TICK).await;
            continue;
        }
        if busy {
            drop(st);
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = st.bulk.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Rows one step may process.
fn budget(faults: &Faults, chunk: usize) -> usize {
    match faults.bulk_rows_per_second {
        0 => chunk,
        rate => usize::try_from(rate.div_ceil(10)).unwrap_or(chunk).max(1),
    }
}

/// One step of every job that is ready; whether any job made progress.
fn step_all(st: &OrgState) -> bool {
    let faults = lock(&st.faults).clone();
    let ready: Vec<String> = lock(&st.bulk.jobs)
        .values()
        .filter(|j| matches!(j.state, JobState::UploadComplete | JobState::InProgress))
        .map(|j| j.id.clone())
        .collect();
    let mut busy = false;
    for id in ready {
        let started = Instant::now();
        busy |= step_job(st, &id, &faults);
        let ms = started.elapsed().as_millis() as u64;
        if let Some(job) = lock(&st.bulk.jobs).get_mut(&id) {
            job.processing_ms += ms;
        }
    }
    busy
}

fn step_job(st: &OrgState, id: &str, faults: &Faults) -> bool {
    let state = match lock(&st.bulk.jobs).get(id) {
        Some(j) => j.state,
        None => return false,
    };
    if faults.bulk_fail {
        fail(st, id, None);
        return false;
    }
    match state {
        JobState::UploadComplete => start(st, id),
        JobState::InProgress if faults.bulk_stall => false,
        JobState::InProgress => advance(st, id, faults),
        _ => false,
    }
}

/// Ends a job as Failed: `message` or the fault's message for ingest jobs, none for query
/// jobs (Salesforce gives a failed query job no message).
fn fail(st: &OrgState, id: &str, message: Option<String>) {
    let now = st.now();
    if let Some(job) = lock(&st.bulk.jobs).get_mut(id) {
        if job.state.is_terminal() {
            return;
        }
        if !job.is_query() {
            job.error_message = Some(message.unwrap_or_else(|| FAULT_MESSAGE.to_string()));
        }
        job.set_state(JobState::Failed, now);
        warn!(job = %id, error = job.error_message.as_deref().unwrap_or(""), "bulk job failed");
    }
}

/// UploadComplete -> InProgress: a query job runs its query; an ingest job parses and checks
/// its upload.
fn start(st: &OrgState, id: &str) -> bool {
    enum Work {
        Query(String, bool),
        Ingest(
            Option<Vec<u8>>,
            csv_io::CsvFormat,
            String,
            Operation,
            Option<String>,
        ),
    }
    let work = {
        let mut jobs = lock(&st.bulk.jobs);
        let Some(job) = jobs.get_mut(id) else {
            return false;
        };
        let format = job.format;
        match &mut job.kind {
            JobKind::Query(q) => Work::Query(q.soql.clone(), q.all),
            // Taken out: once parsed, the rows live in the job's table (put back on failure).
            JobKind::Ingest(i) => Work::Ingest(
                i.upload.take(),
                format,
                job.object.clone(),
                i.operation,
                i.external_id_field.clone(),
            ),
        }
    };
    let now = st.now();
    match work {
        Work::Query(soql, all) => {
            let cursor = {
                let db = lock(&st.db);
                db.query_cursor(&soql, all, now)
            };
            let cursor = match cursor {
                Ok(c) => std::sync::Arc::new(c),
                Err(e) => {
                    fail(st, id, Some(e.message));
                    return false;
                }
            };
            let mut jobs = lock(&st.bulk.jobs);
            if let Some(job) = jobs.get_mut(id)
                && job.state == JobState::UploadComplete
                && let JobKind::Query(q) = &mut job.kind
            {
                q.cursor = Some(cursor);
                job.set_state(JobState::InProgress, now);
            }
        }
        Work::Ingest(upload, format, object, op, ext) => {
            let parsed = csv_io::parse(upload.as_deref().unwrap_or_default(), format);
            let table = match (upload.is_some(), parsed) {
                (false, _) => Table::default(),
                (true, Ok(t)) => t,
                (true, Err(e)) => {
                    restore_upload(st, id, upload);
                    fail(st, id, Some(e));
                    return false;
                }
            };
            if !table.header.is_empty() {
                let checked = {
                    let db = lock(&st.db);
                    match db.schema().object(&object) {
                        Some(obj) => ingest::check_header(&table.header, obj, op, ext.as_deref()),
                        None => Err(format!("InvalidBatch : Unable to find object: {object}")),
                    }
                };
                if let Err(e) = checked {
                    restore_upload(st, id, upload);
                    fail(st, id, Some(e));
                    return false;
                }
            }
            st.bulk.use_batches(table.rows.len());
            let mut jobs = lock(&st.bulk.jobs);
            if let Some(job) = jobs.get_mut(id) {
                // Kept even when the job was aborted meanwhile: its rows are unprocessed.
                if let JobKind::Ingest(i) = &mut job.kind {
                    i.table = table;
                }
                if job.state == JobState::UploadComplete {
                    job.set_state(JobState::InProgress, now);
                }
            }
        }
    }
    true
}

/// Puts an upload that could not be processed back, for `unprocessedrecords`.
fn restore_upload(st: &OrgState, id: &str, upload: Option<Vec<u8>>) {
    if let Some(job) = lock(&st.bulk.jobs).get_mut(id)
        && let JobKind::Ingest(i) = &mut job.kind
    {
        i.upload = upload;
    }
}

/// Processes the next rows of an InProgress job.
fn advance(st: &OrgState, id: &str, faults: &Faults) -> bool {
    let now = st.now();
    {
        let mut jobs = lock(&st.bulk.jobs);
        let Some(job) = jobs.get_mut(id) else {
            return false;
        };
        if let JobKind::Query(q) = &job.kind {
            let total = q.cursor.as_ref().map(|c| c.len()).unwrap_or(0) as u64;
            let step = budget(faults, QUERY_CHUNK) as u64;
            job.processed = (job.processed + step).min(total);
            if job.processed >= total {
                job.set_state(JobState::JobComplete, now);
                info!(job = %id, rows = total, "bulk query job complete");
            }
            return true;
        }
    }
    advance_ingest(st, id, faults)
}

fn lock_errors(faults: &Faults, n: usize) -> Vec<(usize, ItemError)> {
    if faults.lock_error_rate <= 0.0 {
        return Vec::new();
    }
    let mut rng = rand::rng();
    (0..n)
        .filter(|_| rng.random_bool(faults.lock_error_rate.clamp(0.0, 1.0)))
        .map(|i| {
            (
                i,
                ItemError::new(
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record or 1 records",
                    vec![],
                ),
            )
        })
        .collect()
}

fn advance_ingest(st: &OrgState, id: &str, faults: &Faults) -> bool {
    let (header, rows, start, object, op, ext, user) = {
        let jobs = lock(&st.bulk.jobs);
        let Some(job) = jobs.get(id) else {
            return false;
        };
        let JobKind::Ingest(i) = &job.kind else {
            return false;
        };
        let end = (i.next + budget(faults, INGEST_CHUNK)).min(i.table.rows.len());
        (
            i.table.header.clone(),
            i.table.rows.get(i.next..end).unwrap_or_default().to_vec(),
            i.next,
            job.object.clone(),
            i.operation,
            i.external_id_field.clone(),
            job.created_by_id.clone(),
        )
    };
    let mut results = Vec::with_capacity(rows.len());
    for (c, chunk) in rows.chunks(DML_CHUNK).enumerate() {
        let base = start + c * DML_CHUNK;
        let mut ops = Vec::new();
        let mut op_rows = Vec::new();
        for (k, row) in chunk.iter().enumerate() {
            match ingest::row_op(&header, row, &object, op, ext.as_deref()) {
                Ok(o) => {
                    op_rows.push(base + k);
                    ops.push(o);
                }
                Err(e) => results.push(RowResult {
                    row: base + k,
                    id: row_id(&header, row),
                    outcome: Err(ingest::error_text(&[e])),
                }),
            }
        }
        let created_flags: Vec<bool> = ops
            .iter()
            .map(|o| matches!(o, DmlOp::Create { .. }))
            .collect();
        let ctx = DmlContext {
            user_id: user.clone(),
            now: chrono::Utc::now(),
            reject_marker: faults.reject_name_marker.clone().filter(|m| !m.is_empty()),
            forced_errors: lock_errors(faults, ops.len()),
        };
        let outcomes = {
            let mut db = lock(&st.db);
            super::super::apply(st, &mut db, ops, false, ctx)
        };
        for ((row, is_create), outcome) in op_rows.into_iter().zip(created_flags).zip(outcomes) {
            results.push(match outcome {
                Ok(ok) => RowResult {
                    row,
                    id: ok.id,
                    outcome: Ok(ok.created.unwrap_or(is_create)),
                },
                Err((id, errors)) => RowResult {
                    row,
                    id: id.unwrap_or_default(),
                    outcome: Err(ingest::error_text(&errors)),
                },
            });
        }
    }
    let now = st.now();
    let mut jobs = lock(&st.bulk.jobs);
    let Some(job) = jobs.get_mut(id) else {
        return false;
    };
    let n = results.len();
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    job.processed += n as u64;
    job.failed += failed as u64;
    let JobKind::Ingest(i) = &mut job.kind else {
        return false;
    };
    i.next += n;
    i.results.extend(results);
    let done = i.next >= i.table.rows.len();
    let rows_total = i.table.rows.len();
    if done && job.state == JobState::InProgress {
        job.set_state(JobState::JobComplete, now);
        info!(job = %id, rows = rows_total, failed = job.failed, "bulk ingest job complete");
    }
    true
}

/// The `Id` cell of a row, if the upload has one.
fn row_id(header: &[String], row: &[String]) -> String {
    header
        .iter()
        .zip(row)
        .find(|(h, _)| h.eq_ignore_ascii_case("Id"))
        .map(|(_, c)| c.clone())
        .filter(|c| c != ingest::NULL_CELL)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_the_rate() {
        let mut f = Faults::default();
        assert_eq!(budget(&f, 2000), 2000);
        f.bulk_rows_per_second = 5;
        assert_eq!(budget(&f, 2000), 1);
        f.bulk_rows_per_second = 1000;
        assert_eq!(budget(&f, 2000), 100);
    }

    #[test]
    fn row_ids_come_from_the_id_column() {
        let h = vec!["Name".to_string(), "id".to_string()];
        assert_eq!(row_id(&h, &["n".into(), "006x".into()]), "006x");
        assert_eq!(row_id(&h, &["n".into(), "#N/A".into()]), "");
    }
}
