//! The Bulk half of the [`OrgPort`](super::ports::OrgPort) over the Salesforce [`Client`]
//! (beside `org_adapter`, which forwards its Bulk methods here): a record query becomes the
//! same SOQL as through REST (one statement: the watermark query), run as a Bulk API 2.0 query
//! job; a results page's CSV becomes REST-shaped records typed by the object's describe (one
//! describe per process, cached by the client); errors keep their kind.

use super::org_adapter::{build_typed_record_queries, port_error, soql_error};
use super::ports::{BulkPage, BulkStatus, ErrorKind, PortError, RecordQuery};
use crate::salesforce::bulk::{JobKind, JobState, csv};
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
        .bulk_query_create(soql, false)
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
    Ok(match job.state {
        JobState::JobComplete => BulkStatus::Complete,
        JobState::Failed | JobState::Aborted => BulkStatus::Ended {
            state: format!("{:?}", job.state),
            message: job
                .error_message
                .unwrap_or_else(|| "the org gave no reason".to_string()),
        },
        _ => BulkStatus::Running,
    })
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
    let page = client
        .bulk_query_results(job_id, locator, max_records)
        .await
        .map_err(|e| client_error(&e))?;
    let records = if page.csv.trim().is_empty() {
        Vec::new()
    } else {
        let (header, rows) =
            csv::parse_table(&page.csv).map_err(|m| client_error(&client.bad_csv(&m)))?;
        rows.iter()
            .map(|cells| csv::record_of(&header, cells, &types))
            .collect()
    };
    Ok(BulkPage {
        records,
        next_locator: page.next_locator,
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
