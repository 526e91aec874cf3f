//! The Bulk half of the [`OrgPort`](super::ports::OrgPort) over the Salesforce [`Client`]
//! (beside `org_adapter`, which forwards its Bulk methods here): a record query becomes the
//! same SOQL as through REST (one statement: the watermark query), run as a Bulk API 2.0 query
//! job; a results page's CSV becomes REST-shaped records typed by the object's describe (one
//! describe per process, cached by the client); ingest jobs take records written as CSV
//! (`#N/A` for null) and return their result files as rows of cells by column; errors keep
//! their kind.

use super::org_adapter::{build_typed_record_queries, port_error, soql_error};
use serde_json::{Map, Value};

use super::ports::{
    BulkPage, BulkRecords, BulkResultRow, BulkResults, BulkStatus, ErrorKind, PortError,
    RecordQuery,
};
use crate::salesforce::bulk::files::CsvRecords;
use crate::salesforce::bulk::{IngestResults, JobInfo, JobKind, JobState, csv};
use crate::salesforce::{Client, SalesforceError};

fn client_error(err: &SalesforceError) -> PortError {
    port_error(err)
}

/// Creates the query job of `query` (which must be one statement).
pub(super) async fn query_start(client: &Client, query: &RecordQuery) -> Result<String, PortError> {
    let statements = build_typed_record_queries(query, None).map_err(soql_error)?;
    let [soql] = statements.as_slice() else {
        return Err(PortError {
            kind: ErrorKind::NeedsOperator,
            code: "BULK_UNSUPPORTED".into(),
            message: "a Bulk query job runs one SOQL statement".into(),
        });
    };
    let job = client
        .bulk_query_create(soql, super::org_adapter::with_deleted(query))
        .await
        .map_err(|e| client_error(&e))?;
    Ok(job.id)
}

/// A query job's state.
pub(super) async fn query_status(client: &Client, job_id: &str) -> Result<BulkStatus, PortError> {
    let job = client
        .bulk_job(JobKind::Query, job_id)
        .await
        .map_err(|e| client_error(&e))?;
    Ok(status_of(job))
}

fn status_of(job: JobInfo) -> BulkStatus {
    match job.state {
        JobState::JobComplete => BulkStatus::Complete,
        JobState::Failed | JobState::Aborted => BulkStatus::Ended {
            state: format!("{:?}", job.state),
            message: job
                .error_message
                .unwrap_or_else(|| "the org gave no reason".to_string()),
        },
        _ => BulkStatus::Running,
    }
}

/// One results page, typed by `object`'s describe.
pub(super) async fn query_page(
    client: &Client,
    job_id: &str,
    object: &str,
    locator: Option<&str>,
    max_records: u32,
) -> Result<BulkPage, PortError> {
    let types = client
        .field_types(object)
        .await
        .map_err(|e| client_error(&e))?;
    let (rows, next_locator) = client
        .bulk_query_results_rows(job_id, locator, Some(max_records))
        .await
        .map_err(|e| client_error(&e))?;
    Ok(BulkPage {
        records: BulkRecords::Csv(CsvRecords::new(rows, types)),
        next_locator,
    })
}

/// Aborts a job, or deletes an ended one.
pub(super) async fn query_end(
    client: &Client,
    job_id: &str,
    delete: bool,
) -> Result<(), PortError> {
    let result = if delete {
        client.bulk_delete(JobKind::Query, job_id).await
    } else {
        client.bulk_abort(JobKind::Query, job_id).await.map(|_| ())
    };
    result.map_err(|e| client_error(&e))
}

/// Creates an ingest job.
pub(super) async fn ingest_start(
    client: &Client,
    object: &str,
    operation: &str,
    external_id_field: Option<&str>,
) -> Result<String, PortError> {
    let job = client
        .bulk_ingest_create(object, operation, external_id_field)
        .await
        .map_err(|e| client_error(&e))?;
    Ok(job.id)
}

/// Uploads an ingest job's CSV.
pub(super) async fn ingest_upload(
    client: &Client,
    job_id: &str,
    header: &[String],
    records: &[Map<String, Value>],
) -> Result<(), PortError> {
    let text = csv::write_table(header, records).map_err(|m| client_error(&client.bad_csv(&m)))?;
    client
        .bulk_ingest_upload(job_id, &text)
        .await
        .map_err(|e| client_error(&e))
}

/// Closes an ingest job's upload, or aborts it.
pub(super) async fn ingest_close(
    client: &Client,
    job_id: &str,
    abort: bool,
) -> Result<(), PortError> {
    let result = if abort {
        client.bulk_abort(JobKind::Ingest, job_id).await
    } else {
        client.bulk_ingest_close(job_id).await
    };
    result.map(|_| ()).map_err(|e| client_error(&e))
}

/// An ingest job's state.
pub(super) async fn ingest_status(client: &Client, job_id: &str) -> Result<BulkStatus, PortError> {
    let job = client
        .bulk_job(JobKind::Ingest, job_id)
        .await
        .map_err(|e| client_error(&e))?;
    Ok(status_of(job))
}

/// One result file of an ended ingest job.
pub(super) async fn ingest_results(
    client: &Client,
    job_id: &str,
    which: BulkResults,
) -> Result<Vec<BulkResultRow>, PortError> {
    let which = match which {
        BulkResults::Successful => IngestResults::Successful,
        BulkResults::Failed => IngestResults::Failed,
        BulkResults::Unprocessed => IngestResults::Unprocessed,
    };
    let (header, rows) = client
        .bulk_ingest_results(job_id, which)
        .await
        .map_err(|e| client_error(&e))?;
    Ok(rows
        .into_iter()
        .map(|cells| header.iter().cloned().zip(cells).collect())
        .collect())
}
