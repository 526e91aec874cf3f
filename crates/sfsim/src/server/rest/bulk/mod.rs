//! Bulk API 2.0 over HTTP, under `/services/data/vNN.0/jobs/`: query jobs (create, poll,
//! results pages with `Sforce-Locator` / `Sforce-NumberOfRecords`, abort, delete, list) and
//! ingest jobs (create, one CSV upload, close or abort, poll, successful / failed /
//! unprocessed results, delete, list). Routed from the REST handler, so every call goes through
//! the same session check, daily allowance, fault injection, stats and `Sforce-Limit-Info`.
//! Jobs are processed in the background by `worker`.

pub(in crate::server) mod worker;

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::seq::SliceRandom;
use serde_json::{Map, Value as Json, json};

use super::{Call, Outcome, method_not_allowed};
use crate::bulk::csv_io::{self, CsvFormat, Table};
use crate::bulk::ingest::Operation;
use crate::bulk::{
    self, DAILY_QUERY_JOBS, DEFAULT_MAX_RECORDS, IngestJob, Job, JobKind, JobState, QueryJob,
    RowResult,
};
use crate::error::ApiError;
use crate::server::reply::{json_reply, parse_json, read_body};
use crate::server::state::lock;

/// Routes a call under `jobs/`.
pub(super) async fn route(call: &Call<'_>, s: &[&str], m: &Method, body: Body) -> Outcome {
    let not_allowed = |allowed: &str| Outcome::unrouted(method_not_allowed(m, allowed));
    match s {
        ["jobs", "query"] => match *m {
            Method::POST => Outcome::new("bulk_query_create", create_query(call, body).await),
            Method::GET => Outcome::new("bulk_query_list", Ok(list(call, true))),
            _ => not_allowed("GET,POST"),
        },
        ["jobs", "query", id] => match *m {
            Method::GET => Outcome::new("bulk_query_get", info(call, id, true)),
            Method::PATCH => {
                Outcome::new("bulk_query_abort", patch_state(call, id, true, body).await)
            }
            Method::DELETE => Outcome::new("bulk_query_delete", delete(call, id, true)),
            _ => not_allowed("GET,PATCH,DELETE"),
        },
        ["jobs", "query", id, "results"] => match *m {
            Method::GET => Outcome::new("bulk_results", query_results(call, id)),
            _ => not_allowed("GET"),
        },
        ["jobs", "ingest"] => match *m {
            Method::POST => Outcome::new("bulk_ingest_create", create_ingest(call, body).await),
            Method::GET => Outcome::new("bulk_ingest_list", Ok(list(call, false))),
            _ => not_allowed("GET,POST"),
        },
        ["jobs", "ingest", id] => match *m {
            Method::GET => Outcome::new("bulk_ingest_get", info(call, id, false)),
            Method::PATCH => Outcome::new(
                "bulk_ingest_state",
                patch_state(call, id, false, body).await,
            ),
            Method::DELETE => Outcome::new("bulk_ingest_delete", delete(call, id, false)),
            _ => not_allowed("GET,PATCH,DELETE"),
        },
        ["jobs", "ingest", id, "batches"] => match *m {
            Method::PUT => Outcome::new("bulk_ingest_upload", upload(call, id, body).await),
            _ => not_allowed("PUT"),
        },
        [
            "jobs",
            "ingest",
            id,
            which @ ("successfulResults" | "failedResults" | "unprocessedrecords"),
        ] => match *m {
            Method::GET => Outcome::new("bulk_ingest_results", ingest_results(call, id, which)),
            _ => not_allowed("GET"),
        },
        _ => Outcome::unrouted(ApiError::not_found()),
    }
}

fn invalid_job(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "INVALIDJOB", message)
}

async fn json_object(body: Body) -> Result<Map<String, Json>, ApiError> {
    let bytes = read_body(body, super::MAX_REST_BODY_BYTES).await?;
    match parse_json(&bytes)? {
        Json::Object(m) => Ok(m),
        _ => Err(ApiError::new(
            400,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
        )),
    }
}

fn text<'a>(m: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Json::as_str)
}

/// `columnDelimiter`, `lineEnding` and `contentType` of a create body.
fn csv_format(m: &Map<String, Json>) -> Result<(String, String, CsvFormat), ApiError> {
    if let Some(ct) = text(m, "contentType")
        && ct != "CSV"
    {
        return Err(invalid_job(format!("Unsupported contentType: {ct}")));
    }
    let delimiter = text(m, "columnDelimiter").unwrap_or("COMMA");
    let byte = csv_io::delimiter_byte(delimiter)
        .ok_or_else(|| invalid_job(format!("Invalid columnDelimiter: {delimiter}")))?;
    let line = text(m, "lineEnding").unwrap_or("LF");
    if line != "LF" && line != "CRLF" {
        return Err(invalid_job(format!("Invalid lineEnding: {line}")));
    }
    Ok((
        delimiter.to_string(),
        line.to_string(),
        CsvFormat {
            delimiter: byte,
            crlf: line == "CRLF",
        },
    ))
}

fn new_job(
    call: &Call<'_>,
    object: String,
    csv: (String, String, CsvFormat),
    kind: JobKind,
) -> Job {
    let now = call.state.now();
    let (column_delimiter, line_ending, format) = csv;
    Job {
        id: bulk::new_job_id(),
        object,
        created_by_id: call.session.user_id.clone(),
        created_date: now,
        system_modstamp: now,
        state: if matches!(kind, JobKind::Query(_)) {
            JobState::UploadComplete
        } else {
            JobState::Open
        },
        api_version: call.version.to_string(),
        column_delimiter,
        line_ending,
        format,
        processed: 0,
        failed: 0,
        error_message: None,
        processing_ms: 0,
        kind,
    }
}

async fn create_query(call: &Call<'_>, body: Body) -> Result<Response, ApiError> {
    let m = json_object(body).await?;
    let all = match text(&m, "operation") {
        Some("query") => false,
        Some("queryAll") => true,
        Some(other) => return Err(invalid_job(format!("Invalid operation: {other}"))),
        None => return Err(invalid_job("The operation is required: query or queryAll")),
    };
    let soql = text(&m, "query")
        .ok_or_else(|| invalid_job("The query is required"))?
        .to_string();
    let csv = csv_format(&m)?;
    let now = call.state.now();
    let (object, columns) = {
        let db = lock(&call.state.db);
        let columns = bulk::query::check(&soql, db.schema(), now)?;
        let parsed = crate::soql::parse(&soql)?;
        let object = db
            .schema()
            .object(&parsed.from)
            .map(|o| o.name.clone())
            .unwrap_or(parsed.from);
        (object, columns)
    };
    let created = call.state.bulk.query_jobs_created.load(Ordering::Relaxed);
    if created >= DAILY_QUERY_JOBS {
        return Err(ApiError::new(
            400,
            "LIMIT_EXCEEDED",
            format!("Max bulk v2 query jobs ({DAILY_QUERY_JOBS}) per 24 hrs has been reached"),
        ));
    }
    call.state
        .bulk
        .query_jobs_created
        .fetch_add(1, Ordering::Relaxed);
    let job = new_job(
        call,
        object,
        csv,
        JobKind::Query(QueryJob {
            soql,
            all,
            columns,
            cursor: None,
        }),
    );
    let info = job.info();
    tracing::info!(job = %job.id, operation = job.operation(), "bulk query job created");
    call.state.bulk.insert(job);
    Ok(json_reply(200, &info))
}

async fn create_ingest(call: &Call<'_>, body: Body) -> Result<Response, ApiError> {
    let m = json_object(body).await?;
    let op_name = text(&m, "operation").unwrap_or_default();
    let operation = Operation::parse(op_name)
        .ok_or_else(|| invalid_job(format!("Invalid operation: {op_name}")))?;
    let object_name = text(&m, "object").ok_or_else(|| invalid_job("The object is required"))?;
    let csv = csv_format(&m)?;
    let (object, external_id_field) = {
        let db = lock(&call.state.db);
        let obj = db
            .schema()
            .object(object_name)
            .ok_or_else(|| invalid_job(format!("Unable to find object: {object_name}")))?;
        let ext = match (operation, text(&m, "externalIdFieldName")) {
            (Operation::Upsert, None) => {
                return Err(invalid_job(
                    "External ID field name is required for upsert operation",
                ));
            }
            (Operation::Upsert, Some(f)) => {
                let field = obj
                    .field(f)
                    .ok_or_else(|| invalid_job(format!("Unable to find external id field: {f}")))?;
                if !(field.external_id || field.id_lookup) {
                    return Err(invalid_job(format!(
                        "Field {} is not an External ID or indexed field for {}",
                        field.name, obj.name
                    )));
                }
                Some(field.name.clone())
            }
            (_, _) => None,
        };
        (obj.name.clone(), ext)
    };
    let job = new_job(
        call,
        object,
        csv,
        JobKind::Ingest(IngestJob {
            operation,
            external_id_field,
            upload: None,
            table: Table::default(),
            next: 0,
            results: Vec::new(),
        }),
    );
    let info = job.info();
    tracing::info!(job = %job.id, operation = job.operation(), object = %job.object, "bulk ingest job created");
    call.state.bulk.insert(job);
    Ok(json_reply(200, &info))
}

fn list(call: &Call<'_>, query: bool) -> Response {
    json_reply(
        200,
        &json!({"done": true, "records": call.state.bulk.list(query), "nextRecordsUrl": null}),
    )
}

fn info(call: &Call<'_>, id: &str, query: bool) -> Result<Response, ApiError> {
    call.state
        .bulk
        .with_job(id, query, |job| Ok(json_reply(200, &job.info())))
}

/// `DELETE`: only a job in UploadComplete, JobComplete, Aborted or Failed (Salesforce, "Delete
/// a Job"); Open or InProgress is 409 `INVALIDJOBSTATE`.
fn delete(call: &Call<'_>, id: &str, query: bool) -> Result<Response, ApiError> {
    call.state.bulk.with_job(id, query, |job| match job.state {
        JobState::Open | JobState::InProgress => Err(bulk::invalid_state(job, "deleted")),
        _ => Ok(()),
    })?;
    call.state.bulk.remove(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH {"state": ...}`: `Aborted` for both kinds, `UploadComplete` for ingest jobs.
async fn patch_state(
    call: &Call<'_>,
    id: &str,
    query: bool,
    body: Body,
) -> Result<Response, ApiError> {
    let m = json_object(body).await?;
    let wanted = text(&m, "state").unwrap_or_default().to_string();
    let now = call.state.now();
    let info = call.state.bulk.with_job(id, query, |job| {
        match wanted.as_str() {
            "Aborted" => bulk::abort(job, now)?,
            "UploadComplete" if !query => {
                if job.state != JobState::Open {
                    return Err(bulk::invalid_state(job, "UploadComplete"));
                }
                job.set_state(JobState::UploadComplete, now);
            }
            other => {
                return Err(invalid_job(format!("Invalid state change to: {other}")));
            }
        }
        Ok(job.info())
    })?;
    call.state.bulk.wake.notify_one();
    Ok(json_reply(200, &info))
}

async fn upload(call: &Call<'_>, id: &str, body: Body) -> Result<Response, ApiError> {
    let content_type = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("text/csv") {
        return Err(ApiError::new(
            400,
            "INVALID_CONTENT_TYPE",
            format!("Unsupported Content-Type for an upload: {content_type:?} (expected text/csv)"),
        ));
    }
    let max = lock(&call.state.faults).bulk_upload_max_bytes;
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = read_body(body, limit.saturating_add(1)).await?;
    if bytes.len() > limit {
        return Err(ApiError::new(
            413,
            "REQUEST_ENTITY_TOO_LARGE",
            format!("The upload is larger than the limit of {limit} bytes"),
        ));
    }
    call.state.bulk.with_job(id, false, |job| {
        let JobKind::Ingest(ingest) = &mut job.kind else {
            return Err(ApiError::not_found());
        };
        if job.state != JobState::Open || ingest.upload.is_some() {
            return Err(ApiError::new(
                409,
                "INVALIDJOBSTATE",
                format!(
                    "Job {} accepts one upload while Open (state {})",
                    job.id,
                    job.state.name()
                ),
            ));
        }
        ingest.upload = Some(bytes.to_vec());
        Ok(())
    })?;
    Ok(StatusCode::CREATED.into_response())
}

/// Salesforce's answer to results asked for too early: 412 `JOB_NOT_COMPLETE`.
fn not_complete(job: &Job) -> ApiError {
    ApiError::new(
        412,
        "JOB_NOT_COMPLETE",
        format!(
            "Job {} is not complete (state {}): results are available once it is",
            job.id,
            job.state.name()
        ),
    )
}

fn csv_reply(body: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    r
}

/// `GET /jobs/query/{id}/results[?locator=L][&maxRecords=N]`.
fn query_results(call: &Call<'_>, id: &str) -> Result<Response, ApiError> {
    let max = match call.params.get("maxRecords") {
        None => DEFAULT_MAX_RECORDS,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "INVALIDPARAMETER",
                    format!("maxRecords must be a positive integer: {raw}"),
                )
            })?,
    };
    let offset = match call.params.get("locator").map(String::as_str) {
        None | Some("") => 0,
        Some(raw) => bulk::offset_of(raw).ok_or_else(|| {
            ApiError::new(400, "INVALIDPARAMETER", format!("Invalid locator: {raw}"))
        })?,
    };
    let (cursor, columns, format) = call.state.bulk.with_job(id, true, |job| {
        if job.api_version != call.version {
            return Err(ApiError::new(
                409,
                "API_VERSION_MISMATCH",
                format!(
                    "Get the results with the API version that created the job (v{})",
                    job.api_version
                ),
            ));
        }
        if job.state != JobState::JobComplete {
            return Err(not_complete(job));
        }
        let JobKind::Query(q) = &job.kind else {
            return Err(ApiError::not_found());
        };
        let cursor = q.cursor.clone().ok_or_else(|| not_complete(job))?;
        Ok((cursor, q.columns.clone(), job.format))
    })?;
    if offset > cursor.len() {
        return Err(ApiError::new(
            400,
            "INVALIDPARAMETER",
            "Invalid locator: past the end of the results",
        ));
    }
    let end = offset.saturating_add(max).min(cursor.len());
    let rows = {
        let db = lock(&call.state.db);
        db.render_rows(&cursor, offset..end, call.version)?
    };
    let header: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let count = rows.len();
    let body = csv_io::write(
        &header,
        rows.iter().map(|r| bulk::query::flatten(r, &columns)),
        format,
    );
    call.state
        .bulk
        .query_result_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let next = if end >= cursor.len() {
        "null".to_string()
    } else {
        bulk::locator_for(end)
    };
    let mut r = csv_reply(body);
    if let Ok(v) = HeaderValue::from_str(&next) {
        r.headers_mut().insert("sforce-locator", v);
    }
    r.headers_mut()
        .insert("sforce-numberofrecords", HeaderValue::from(count));
    Ok(r)
}

/// `successfulResults`, `failedResults`, `unprocessedrecords` of an ingest job that ended.
fn ingest_results(call: &Call<'_>, id: &str, which: &str) -> Result<Response, ApiError> {
    call.state.bulk.with_job(id, false, |job| {
        if !job.state.is_terminal() {
            return Err(not_complete(job));
        }
        let format = job.format;
        let JobKind::Ingest(ingest) = &job.kind else {
            return Err(ApiError::not_found());
        };
        let table = &ingest.table;
        // Result files come in no guaranteed order: a different one on every read.
        let mut results: Vec<&RowResult> = ingest.results.iter().collect();
        results.shuffle(&mut rand::rng());
        let cells = |r: &RowResult| table.rows.get(r.row).cloned().unwrap_or_default();
        let body = match which {
            "successfulResults" => {
                let mut header = vec!["sf__Id".to_string(), "sf__Created".to_string()];
                header.extend(table.header.iter().cloned());
                let rows = results.iter().filter_map(|r| {
                    let created = *r.outcome.as_ref().ok()?;
                    let mut row = vec![r.id.clone(), created.to_string()];
                    row.extend(cells(r));
                    Some(row)
                });
                csv_io::write(&header, rows, format)
            }
            "failedResults" => {
                let mut header = vec!["sf__Id".to_string(), "sf__Error".to_string()];
                header.extend(table.header.iter().cloned());
                let rows = results.iter().filter_map(|r| {
                    let error = r.outcome.as_ref().err()?;
                    let mut row = vec![r.id.clone(), error.clone()];
                    row.extend(cells(r));
                    Some(row)
                });
                csv_io::write(&header, rows, format)
            }
            _ => match (&ingest.upload, table.header.is_empty()) {
                // Never parsed (aborted before processing): every uploaded row.
                (Some(raw), true) => match csv_io::parse(raw, format) {
                    Ok(t) => csv_io::write(&t.header, t.rows.iter(), format),
                    Err(_) => raw.clone(),
                },
                _ => {
                    let rows = table.rows.get(ingest.next..).unwrap_or_default();
                    csv_io::write(&table.header, rows.iter(), format)
                }
            },
        };
        Ok(csv_reply(body))
    })
}
