//! Bulk API 2.0 (`/services/data/vNN.0/jobs/`): query jobs (`query`, `queryAll`) read page by
//! page by `Sforce-Locator` with `maxRecords`, and ingest jobs (`update` by Id, `upsert` on an
//! external id) uploaded as CSV, closed, polled and read back (`successfulResults`,
//! `failedResults`, `unprocessedrecords`).
//!
//! Every call goes through the client's request loop ([`Client::send_reply`]): the gates, the
//! retries, one re-login, `Sforce-Call-Options`, and one API call counted as
//! [`CallKind::Bulk`]; errors keep their kind. Only one results page is in memory at a time:
//! the caller reads a page, hands its records on, and asks for the next by its locator.
//! Polling is the caller's (it decides what to do while waiting); [`poll_delay`] is the
//! back-off real clients use, exponential and capped. `csv` converts cells to and from the
//! pipeline's JSON values by the fields' describe types.

pub mod csv;
pub mod files;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{ApiRequest, Client, Target};
use super::error::{ErrorClass, SalesforceError};
use super::usage::CallKind;

/// The state of a job, as JobInfo's `state` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
    /// A state this client does not know (treated as still running).
    Other(String),
}

impl JobState {
    fn parse(text: &str) -> JobState {
        match text {
            "Open" => JobState::Open,
            "UploadComplete" => JobState::UploadComplete,
            "InProgress" => JobState::InProgress,
            "JobComplete" => JobState::JobComplete,
            "Failed" => JobState::Failed,
            "Aborted" => JobState::Aborted,
            other => JobState::Other(other.to_string()),
        }
    }

    /// Whether the job has ended (nothing more will change).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// What orgsync reads of a JobInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: String,
    pub state: JobState,
    pub records_processed: u64,
    pub records_failed: u64,
    /// `errorMessage` (ingest jobs that failed; query jobs carry none).
    pub error_message: Option<String>,
}

#[derive(Deserialize)]
struct RawJobInfo {
    id: String,
    state: String,
    #[serde(rename = "numberRecordsProcessed", default)]
    processed: Option<u64>,
    #[serde(rename = "numberRecordsFailed", default)]
    failed: Option<u64>,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<String>,
}

impl From<RawJobInfo> for JobInfo {
    fn from(raw: RawJobInfo) -> Self {
        JobInfo {
            id: raw.id,
            state: JobState::parse(&raw.state),
            records_processed: raw.processed.unwrap_or(0),
            records_failed: raw.failed.unwrap_or(0),
            error_message: raw.error_message.filter(|m| !m.is_empty()),
        }
    }
}

/// Query or ingest: the path segment under `jobs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Query,
    Ingest,
}

impl JobKind {
    fn segment(self) -> &'static str {
        match self {
            JobKind::Query => "query",
            JobKind::Ingest => "ingest",
        }
    }
}

/// One page of a query job's results: its CSV and the locator of the next page (`None` after
/// the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsPage {
    pub csv: String,
    pub next_locator: Option<String>,
}

/// Which result file of an ingest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestResults {
    Successful,
    Failed,
    Unprocessed,
}

impl IngestResults {
    fn segment(self) -> &'static str {
        match self {
            IngestResults::Successful => "successfulResults/",
            IngestResults::Failed => "failedResults/",
            IngestResults::Unprocessed => "unprocessedrecords/",
        }
    }
}

/// The wait before poll number `attempt` (1-based) of a job: `initial`, doubling, capped at `max`
/// (simple-salesforce doubles up to 2 s; jsforce polls every second).
pub fn poll_delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    initial.saturating_mul(factor).min(max)
}

/// The code of a per-row `sf__Error` (`REQUIRED_FIELD_MISSING:Required fields...`): the part
/// before the first colon; the message is the rest.
pub fn split_row_error(text: &str) -> (String, String) {
    match text.split_once(':') {
        Some((code, message)) if !code.is_empty() => {
            (code.trim().to_string(), message.trim().to_string())
        }
        _ => ("UNKNOWN_ERROR".to_string(), text.trim().to_string()),
    }
}

impl Client {
    fn job_path(kind: JobKind, id: &str) -> String {
        format!("jobs/{}/{id}", kind.segment())
    }

    async fn job_request(&self, req: &ApiRequest<'_>) -> Result<JobInfo, SalesforceError> {
        let raw: RawJobInfo = self.send_json(req).await?;
        Ok(raw.into())
    }

    /// Creates a query job for `soql` (`queryAll` with `all_rows`: deleted rows included).
    pub async fn bulk_query_create(
        &self,
        soql: &str,
        all_rows: bool,
    ) -> Result<JobInfo, SalesforceError> {
        let body = json!({
            "operation": if all_rows { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data("jobs/query"));
        req.method = reqwest::Method::POST;
        req.body = Some(&body);
        // A repeated create makes a second job, harmless (the first is never read).
        req.idempotent = true;
        tracing::debug!(org = self.org_name(), soql, "bulk query job");
        self.job_request(&req).await
    }

    /// A job's JobInfo (its state).
    pub async fn bulk_job(&self, kind: JobKind, id: &str) -> Result<JobInfo, SalesforceError> {
        let path = Self::job_path(kind, id);
        self.job_request(&ApiRequest::get(CallKind::Bulk, Target::Data(&path)))
            .await
    }

    /// One page of a completed query job's results: the first without `locator`.
    pub async fn bulk_query_results(
        &self,
        id: &str,
        locator: Option<&str>,
        max_records: u32,
    ) -> Result<ResultsPage, SalesforceError> {
        let path = format!("{}/results", Self::job_path(JobKind::Query, id));
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.accept = "text/csv";
        if let Some(locator) = locator {
            req.query.push(("locator", locator.to_string()));
        }
        req.query.push(("maxRecords", max_records.to_string()));
        let reply = self.send_reply(&req).await?;
        let next_locator = reply
            .locator
            .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("null"));
        Ok(ResultsPage {
            csv: reply.body,
            next_locator,
        })
    }

    /// One page of a completed query job's results streamed to a temporary file and read
    /// back a chunk at a time (never the page in memory), with the next page's locator. The
    /// page holds at most `max_records` rows (`None`: the org chooses).
    pub async fn bulk_query_results_rows(
        &self,
        id: &str,
        locator: Option<&str>,
        max_records: Option<u32>,
    ) -> Result<(files::CsvRows, Option<String>), SalesforceError> {
        let path = format!("{}/results", Self::job_path(JobKind::Query, id));
        let file = files::temp_file().map_err(|m| self.bad_csv(&m))?;
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.accept = "text/csv";
        req.download = Some(&file);
        if let Some(locator) = locator {
            req.query.push(("locator", locator.to_string()));
        }
        if let Some(max) = max_records {
            req.query.push(("maxRecords", max.to_string()));
        }
        let reply = self.send_reply(&req).await?;
        let next_locator = reply
            .locator
            .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("null"));
        let rows = files::CsvRows::open(file).map_err(|m| self.bad_csv(&m))?;
        Ok((rows, next_locator))
    }

    /// Uploads a job's CSV streamed from a file (one upload per job; 201 Created).
    pub async fn bulk_ingest_upload_file(
        &self,
        id: &str,
        file: &std::fs::File,
    ) -> Result<(), SalesforceError> {
        let path = format!("{}/batches", Self::job_path(JobKind::Ingest, id));
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.method = reqwest::Method::PUT;
        req.file_body = Some(("text/csv", file));
        // A repeated upload is refused (one per job), never applied twice.
        req.idempotent = true;
        self.send(&req).await.map(|_| ())
    }

    /// One of an ended ingest job's result files, streamed to a temporary file and read back
    /// a chunk at a time.
    pub async fn bulk_ingest_results_rows(
        &self,
        id: &str,
        which: IngestResults,
    ) -> Result<files::CsvRows, SalesforceError> {
        let path = format!(
            "{}/{}",
            Self::job_path(JobKind::Ingest, id),
            which.segment()
        );
        let file = files::temp_file().map_err(|m| self.bad_csv(&m))?;
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.accept = "text/csv";
        req.download = Some(&file);
        self.send(&req).await?;
        files::CsvRows::open(file).map_err(|m| self.bad_csv(&m))
    }

    /// Aborts a job (`PATCH {"state":"Aborted"}`).
    pub async fn bulk_abort(&self, kind: JobKind, id: &str) -> Result<JobInfo, SalesforceError> {
        self.bulk_set_state(kind, id, "Aborted").await
    }

    async fn bulk_set_state(
        &self,
        kind: JobKind,
        id: &str,
        state: &str,
    ) -> Result<JobInfo, SalesforceError> {
        let path = Self::job_path(kind, id);
        let body = json!({ "state": state });
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.method = reqwest::Method::PATCH;
        req.body = Some(&body);
        self.job_request(&req).await
    }

    /// Deletes an ended job (its results with it).
    pub async fn bulk_delete(&self, kind: JobKind, id: &str) -> Result<(), SalesforceError> {
        let path = Self::job_path(kind, id);
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.method = reqwest::Method::DELETE;
        self.send(&req).await.map(|_| ())
    }

    /// Creates an ingest job: `operation` `update` (by Id) or `upsert` (on
    /// `external_id_field`).
    pub async fn bulk_ingest_create(
        &self,
        object: &str,
        operation: &str,
        external_id_field: Option<&str>,
    ) -> Result<JobInfo, SalesforceError> {
        let mut body = json!({
            "object": object,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        if let (Some(ext), Value::Object(map)) = (external_id_field, &mut body) {
            map.insert("externalIdFieldName".into(), Value::String(ext.into()));
        }
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data("jobs/ingest"));
        req.method = reqwest::Method::POST;
        req.body = Some(&body);
        req.idempotent = true;
        self.job_request(&req).await
    }

    /// Uploads a job's CSV (one upload per job; 201 Created).
    pub async fn bulk_ingest_upload(&self, id: &str, csv: &str) -> Result<(), SalesforceError> {
        let path = format!("{}/batches", Self::job_path(JobKind::Ingest, id));
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.method = reqwest::Method::PUT;
        req.text_body = Some(("text/csv", csv));
        // A repeated upload is refused (one per job), never applied twice.
        req.idempotent = true;
        self.send(&req).await.map(|_| ())
    }

    /// Closes an ingest job's upload: processing starts.
    pub async fn bulk_ingest_close(&self, id: &str) -> Result<JobInfo, SalesforceError> {
        self.bulk_set_state(JobKind::Ingest, id, "UploadComplete")
            .await
    }

    /// One of an ended ingest job's result files, parsed: its header and rows.
    pub async fn bulk_ingest_results(
        &self,
        id: &str,
        which: IngestResults,
    ) -> Result<(Vec<String>, Vec<Vec<String>>), SalesforceError> {
        let path = format!(
            "{}/{}",
            Self::job_path(JobKind::Ingest, id),
            which.segment()
        );
        let mut req = ApiRequest::get(CallKind::Bulk, Target::Data(&path));
        req.accept = "text/csv";
        let body = self.send(&req).await?;
        if body.trim().is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        csv::parse_table(&body).map_err(|m| self.bad_csv(&m))
    }

    pub(crate) fn bad_csv(&self, message: &str) -> SalesforceError {
        SalesforceError::client(
            self.org_name(),
            "BAD_RESPONSE",
            format!("unexpected Bulk CSV: {message}"),
            ErrorClass::Transient,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_delays_double_up_to_the_cap() {
        let d = |n| poll_delay(n, Duration::from_millis(500), Duration::from_secs(5));
        assert_eq!(d(1), Duration::from_millis(500));
        assert_eq!(d(2), Duration::from_secs(1));
        assert_eq!(d(4), Duration::from_secs(4));
        assert_eq!(d(5), Duration::from_secs(5));
        assert_eq!(d(60), Duration::from_secs(5));
    }

    #[test]
    fn row_errors_split_at_the_first_colon() {
        assert_eq!(
            split_row_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"),
            (
                "REQUIRED_FIELD_MISSING".to_string(),
                "Required fields are missing: [Name]:Name --".to_string()
            )
        );
        assert_eq!(
            split_row_error("no code here"),
            ("UNKNOWN_ERROR".to_string(), "no code here".to_string())
        );
    }

    #[test]
    fn job_infos_parse() {
        let raw: RawJobInfo = serde_json::from_str(
            r#"{"id":"7501","state":"Failed","numberRecordsProcessed":3,"errorMessage":"boom"}"#,
        )
        .unwrap();
        let info = JobInfo::from(raw);
        assert_eq!(info.state, JobState::Failed);
        assert!(info.state.is_terminal());
        assert_eq!(info.records_processed, 3);
        assert_eq!(info.error_message.as_deref(), Some("boom"));
        assert!(!JobState::parse("InProgress").is_terminal());
    }
}
