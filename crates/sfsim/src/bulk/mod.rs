//! Bulk API 2.0 jobs of one org, without I/O: the job records (query and ingest), their
//! state machine (Open -> UploadComplete -> InProgress -> JobComplete | Failed | Aborted;
//! query jobs start at UploadComplete), their JobInfo JSON, and the org's daily Bulk
//! counters. The HTTP routes are in `server::rest::bulk`, the background processing in
//! `server::rest::bulk::worker`. Parts: `csv_io` (reading and writing CSV), `query` (Bulk's
//! SOQL rules, result columns), `ingest` (CSV rows to DML operations, `sf__Error` text).

pub mod csv_io;
pub mod ingest;
pub mod query;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value as Json, json};

use crate::db::QueryCursor;
use crate::error::ApiError;
use crate::server::state::lock;
use csv_io::{CsvFormat, Table};
use ingest::Operation;
use query::Column;

/// Key prefix of Bulk job ids (AsyncApexJob / Job: `750`).
pub const JOB_PREFIX: &str = "750";
/// Rows of a query results page when the client gives no `maxRecords`. Salesforce picks the
/// size itself; jsforce 3.10's `bulk2.query` pipes every page into one CSV stream, so a
/// result of 25,000 rows must come in one page.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;
/// Query jobs per rolling 24 hours (`DailyBulkV2QueryJobs`).
pub const DAILY_QUERY_JOBS: u64 = 10_000;
/// Batches per rolling 24 hours, shared with Bulk 1.0 (`DailyBulkApiBatches`).
pub const DAILY_BATCHES: u64 = 15_000;
/// Megabytes of query results per rolling 24 hours (1 TB, `DailyBulkV2QueryFileStorageMB`).
pub const DAILY_QUERY_RESULT_MB: u64 = 976_562;
/// Records of one internal batch: an upload consumes one batch per started 10,000 rows.
pub const BATCH_RECORDS: usize = 10_000;
/// Largest upload (Salesforce: 150 MB base64, about 100 MB of CSV).
pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 100_000_000;

/// A job's state, spelled as in JobInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// A query job's own data.
pub struct QueryJob {
    pub soql: String,
    /// `queryAll`: deleted rows too.
    pub all: bool,
    pub columns: Vec<Column>,
    /// The matching rows, fixed when processing starts.
    pub cursor: Option<Arc<QueryCursor>>,
}

/// One row's result in an ingest job.
#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    /// The row's position in the upload.
    pub row: usize,
    /// `sf__Id` (empty when a create failed).
    pub id: String,
    /// `Ok(created)` or `Err(sf__Error)`.
    pub outcome: Result<bool, String>,
}

/// An ingest job's own data.
pub struct IngestJob {
    pub operation: Operation,
    pub external_id_field: Option<String>,
    /// The uploaded CSV until processing parses it.
    pub upload: Option<Vec<u8>>,
    pub table: Table,
    /// Rows attempted so far (the next row to process).
    pub next: usize,
    /// Results in the order rows were processed; shuffled when the job ends.
    pub results: Vec<RowResult>,
}

pub enum JobKind {
    Query(QueryJob),
    Ingest(IngestJob),
}

/// One Bulk job.
pub struct Job {
    pub id: String,
    pub object: String,
    pub created_by_id: String,
    pub created_date: DateTime<Utc>,
    pub system_modstamp: DateTime<Utc>,
    pub state: JobState,
    pub api_version: String,
    pub column_delimiter: String,
    pub line_ending: String,
    pub format: CsvFormat,
    pub processed: u64,
    pub failed: u64,
    pub error_message: Option<String>,
    pub processing_ms: u64,
    pub kind: JobKind,
}

impl Job {
    pub fn is_query(&self) -> bool {
        matches!(self.kind, JobKind::Query(_))
    }

    /// `query` / `queryAll`, or the ingest operation.
    pub fn operation(&self) -> &'static str {
        match &self.kind {
            JobKind::Query(q) if q.all => "queryAll",
            JobKind::Query(_) => "query",
            JobKind::Ingest(i) => i.operation.name(),
        }
    }

    /// Moves to `state`, stamping `systemModstamp`.
    pub fn set_state(&mut self, state: JobState, now: DateTime<Utc>) {
        self.state = state;
        self.system_modstamp = now;
    }

    /// JobInfo as `GET /jobs/{query|ingest}/{id}` answers it.
    pub fn info(&self) -> Json {
        let fmt = crate::value::format_datetime;
        let mut m = Map::new();
        let mut put = |k: &str, v: Json| {
            m.insert(k.to_string(), v);
        };
        put("id", json!(self.id));
        put("operation", json!(self.operation()));
        put("object", json!(self.object));
        put("createdById", json!(self.created_by_id));
        put("createdDate", json!(fmt(self.created_date)));
        put("systemModstamp", json!(fmt(self.system_modstamp)));
        put("state", json!(self.state.name()));
        put("concurrencyMode", json!("Parallel"));
        put("contentType", json!("CSV"));
        put(
            "apiVersion",
            json!(self.api_version.parse::<f64>().unwrap_or(0.0)),
        );
        put("lineEnding", json!(self.line_ending));
        put("columnDelimiter", json!(self.column_delimiter));
        put("numberRecordsProcessed", json!(self.processed));
        put("retries", json!(0));
        put("totalProcessingTime", json!(self.processing_ms));
        match &self.kind {
            JobKind::Query(_) => put("jobType", json!("V2Query")),
            JobKind::Ingest(i) => {
                put("jobType", json!("V2Ingest"));
                put(
                    "contentUrl",
                    json!(format!(
                        "services/data/v{}/jobs/ingest/{}/batches",
                        self.api_version, self.id
                    )),
                );
                if let Some(f) = &i.external_id_field {
                    put("externalIdFieldName", json!(f));
                }
                put("numberRecordsFailed", json!(self.failed));
                put("apiActiveProcessingTime", json!(self.processing_ms));
                put("apexProcessingTime", json!(0));
                if let Some(e) = &self.error_message {
                    put("errorMessage", json!(e));
                }
            }
        }
        Json::Object(m)
    }
}

/// A new job id: prefix `750`, 12 random characters, the 3-character checksum.
pub fn new_job_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let id15 = format!("{JOB_PREFIX}{tail}");
    format!("{id15}{}", crate::ids::checksum(&id15))
}

/// The locator of the page starting at row `offset`: opaque text (base64 of the offset).
pub fn locator_for(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(offset.to_string())
}

/// The row offset of a locator, if it is one of ours.
pub fn offset_of(locator: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(locator)
        .ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// Aborts a job that has not ended (`PATCH {"state":"Aborted"}`).
pub fn abort(job: &mut Job, now: DateTime<Utc>) -> Result<(), ApiError> {
    if job.state.is_terminal() {
        return Err(invalid_state(job, "Aborted"));
    }
    job.set_state(JobState::Aborted, now);
    Ok(())
}

/// `INVALIDJOBSTATE` for a transition the job's state does not allow.
pub fn invalid_state(job: &Job, wanted: &str) -> ApiError {
    ApiError::new(
        409,
        "INVALIDJOBSTATE",
        format!(
            "Job {} is in state {}: it cannot change to {wanted}",
            job.id,
            job.state.name()
        ),
    )
}

/// The org's Bulk jobs and daily counters.
#[derive(Default)]
pub struct BulkJobs {
    pub jobs: Mutex<BTreeMap<String, Job>>,
    /// Wakes the processing task when a job becomes ready.
    pub wake: tokio::sync::Notify,
    pub query_jobs_created: AtomicU64,
    pub batches_used: AtomicU64,
    /// Bytes of query results served (`DailyBulkV2QueryFileStorageMB`).
    pub query_result_bytes: AtomicU64,
}

impl BulkJobs {
    pub fn insert(&self, job: Job) {
        lock(&self.jobs).insert(job.id.clone(), job);
        self.wake.notify_one();
    }

    /// Runs `f` on a job, `NOT_FOUND` when there is none of that kind.
    pub fn with_job<T>(
        &self,
        id: &str,
        query: bool,
        f: impl FnOnce(&mut Job) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut jobs = lock(&self.jobs);
        match jobs.get_mut(id) {
            Some(job) if job.is_query() == query => f(job),
            _ => Err(ApiError::new(
                404,
                "NOT_FOUND",
                "The requested resource does not exist",
            )),
        }
    }

    /// JobInfo of every job of one kind, oldest first.
    pub fn list(&self, query: bool) -> Vec<Json> {
        let jobs = lock(&self.jobs);
        let mut list: Vec<&Job> = jobs.values().filter(|j| j.is_query() == query).collect();
        list.sort_by_key(|j| j.created_date);
        list.into_iter().map(Job::info).collect()
    }

    pub fn remove(&self, id: &str) {
        lock(&self.jobs).remove(id);
    }

    /// Counts an upload's batches against the daily allocation.
    pub fn use_batches(&self, rows: usize) {
        let n = rows.div_ceil(BATCH_RECORDS).max(1) as u64;
        self.batches_used.fetch_add(n, Ordering::Relaxed);
    }

    /// Forgets every job and counter (`/__sim/reset`).
    pub fn reset(&self) {
        lock(&self.jobs).clear();
        self.query_jobs_created.store(0, Ordering::Relaxed);
        self.batches_used.store(0, Ordering::Relaxed);
        self.query_result_bytes.store(0, Ordering::Relaxed);
    }

    /// Megabytes of query results served, rounded up (`DailyBulkV2QueryFileStorageMB` used).
    pub fn query_result_mb(&self) -> u64 {
        self.query_result_bytes
            .load(Ordering::Relaxed)
            .div_ceil(1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState) -> Job {
        Job {
            id: new_job_id(),
            object: "Opportunity".into(),
            created_by_id: "005".into(),
            created_date: Utc::now(),
            system_modstamp: Utc::now(),
            state,
            api_version: "62.0".into(),
            column_delimiter: "COMMA".into(),
            line_ending: "LF".into(),
            format: CsvFormat::default(),
            processed: 0,
            failed: 0,
            error_message: None,
            processing_ms: 0,
            kind: JobKind::Ingest(IngestJob {
                operation: Operation::Upsert,
                external_id_field: Some("Ext__c".into()),
                upload: None,
                table: Table::default(),
                next: 0,
                results: Vec::new(),
            }),
        }
    }

    #[test]
    fn job_ids_are_valid_750_ids() {
        let id = new_job_id();
        assert!(id.starts_with("750") && id.len() == 18, "{id}");
        assert!(crate::ids::is_valid(&id));
        assert_ne!(new_job_id(), id);
    }

    #[test]
    fn locators_round_trip_and_reject_garbage() {
        assert_eq!(offset_of(&locator_for(50_000)), Some(50_000));
        assert_eq!(offset_of("not a locator!"), None);
        assert_eq!(offset_of(&locator_for(0)), Some(0));
    }

    #[test]
    fn abort_only_before_the_end() {
        let mut j = job(JobState::InProgress);
        abort(&mut j, Utc::now()).expect("abort");
        assert_eq!(j.state, JobState::Aborted);
        let e = abort(&mut j, Utc::now()).expect_err("twice");
        assert_eq!(e.error_code, "INVALIDJOBSTATE");
    }

    #[test]
    fn ingest_info_has_its_fields() {
        let mut j = job(JobState::Failed);
        j.error_message = Some("boom".into());
        let info = j.info();
        assert_eq!(info["jobType"], "V2Ingest");
        assert_eq!(info["operation"], "upsert");
        assert_eq!(info["externalIdFieldName"], "Ext__c");
        assert_eq!(info["errorMessage"], "boom");
        assert_eq!(info["apiVersion"], 62.0);
        assert!(
            info["contentUrl"]
                .as_str()
                .is_some_and(|u| u.ends_with("/batches"))
        );
    }

    #[test]
    fn batches_count_per_started_ten_thousand_rows() {
        let b = BulkJobs::default();
        b.use_batches(0);
        b.use_batches(10_001);
        assert_eq!(b.batches_used.load(Ordering::Relaxed), 3);
    }
}
