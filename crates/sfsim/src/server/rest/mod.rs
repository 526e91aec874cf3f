//! The REST API under `/services/data/vNN.0/`: query and queryAll with cursor paging,
//! explain, sObject rows, describe and its sub-resources, getDeleted / getUpdated, sObject
//! Collections, recently viewed items, limits and Bulk API 2.0 (`jobs/`, in `bulk`).
//!
//! One handler takes every call under a version and routes on the path segments itself:
//! Salesforce accepts trailing slashes (`deleted/?start=`) and answers unknown resources with
//! its own `NOT_FOUND` body, which a router table would not give. Around every call it checks
//! the session, the daily API allowance and the fault settings, then counts, logs and stamps
//! `Sforce-Limit-Info` on the reply. Queries are in `query`, single records in `records`,
//! sObject Collections in `collections`, describe layouts in `layouts`, recent items in
//! `recent`.

pub(super) mod bulk;
mod collections;
mod layouts;
mod query;
mod recent;
mod records;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use chrono::Utc;
use rand::Rng;
use serde_json::{Value as Json, json};

use super::auth::authenticate;
use super::reply::{api_error, json_reply};
use super::state::{MAX_RECENT, OrgState, RequestLogEntry, Session, lock};
use crate::error::ApiError;
use collections::{CollOp, collections_delete, collections_retrieve, collections_write};
use query::{query, query_more};
use records::{
    apply, create_one, delete_one, dml_context, ensure_object, object_body, replication,
    retrieve_by_external_id, retrieve_one, update_one, upsert_one,
};

/// Records per batch of a query when the client does not ask (reference §3).
pub const DEFAULT_BATCH_SIZE: usize = 2000;
/// Smallest batch size `Sforce-Query-Options: batchSize` may set.
pub const MIN_BATCH_SIZE: usize = 200;
/// Records per sObject Collections call.
pub const MAX_COLLECTION_RECORDS: usize = 200;
/// Largest REST request body accepted.
pub const MAX_REST_BODY_BYTES: usize = super::reply::MAX_REQUEST_BYTES;
/// Longest URI accepted (reference §5: 414 above 16,384 bytes).
pub const MAX_URI_BYTES: usize = 16_384;
/// The API versions `GET /services/data` lists.
pub const LISTED_VERSIONS: std::ops::RangeInclusive<u32> = 31..=65;

/// `vNN.0` -> `NN.0`.
pub fn parse_version(segment: &str) -> Option<String> {
    let v = segment.strip_prefix('v')?;
    let (major, minor) = v.split_once('.')?;
    let ok = !major.is_empty()
        && major.len() <= 3
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor == "0";
    ok.then(|| v.to_string())
}

/// The release name of an API version: v20.0 was Winter '11, three releases a year.
fn release_label(major: u32) -> String {
    let idx = major.saturating_sub(20);
    let season = ["Winter", "Spring", "Summer"][(idx % 3) as usize];
    format!("{season} '{:02}", 11 + idx / 3)
}

/// `GET /services/data`: the versions this org speaks (no session needed, as in Salesforce).
pub async fn versions() -> Response {
    let list: Vec<Json> = LISTED_VERSIONS
        .map(|m| {
            json!({"label": release_label(m), "url": format!("/services/data/v{m}.0"), "version": format!("{m}.0")})
        })
        .collect();
    json_reply(200, &Json::Array(list))
}

/// The batch size a `Sforce-Query-Options` header asks for, clamped to 200..=2000.
pub fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split([',', ';']).find_map(|part| {
                let (k, val) = part.split_once('=')?;
                if k.trim().eq_ignore_ascii_case("batchSize") {
                    val.trim().parse::<usize>().ok()
                } else {
                    None
                }
            })
        })
        .map(|n| n.clamp(MIN_BATCH_SIZE, DEFAULT_BATCH_SIZE))
        .unwrap_or(DEFAULT_BATCH_SIZE)
}

/// Query string parameters (last value wins).
fn query_params(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Percent-decodes one path segment.
fn decode_segment(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn method_not_allowed(method: &Method, allowed: &str) -> ApiError {
    ApiError::new(
        405,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
}

fn missing_argument(message: &str) -> ApiError {
    ApiError::new(400, "MISSING_ARGUMENT", message)
}

/// What one call did, for stats and the request log.
struct Outcome {
    kind: Option<&'static str>,
    soql: Option<String>,
    result: Result<Response, ApiError>,
}

impl Outcome {
    fn new(kind: &'static str, result: Result<Response, ApiError>) -> Self {
        Outcome {
            kind: Some(kind),
            soql: None,
            result,
        }
    }
    fn unrouted(e: ApiError) -> Self {
        Outcome {
            kind: None,
            soql: None,
            result: Err(e),
        }
    }
}

/// Everything a routed call needs.
struct Call<'a> {
    state: &'a OrgState,
    session: &'a Session,
    version: &'a str,
    method: &'a Method,
    headers: &'a HeaderMap,
    params: HashMap<String, String>,
}

/// The root of a version, `GET /services/data/vNN.0`.
pub async fn version_root(
    State(state): State<Arc<OrgState>>,
    Path(version): Path<String>,
    request: Request,
) -> Response {
    handle(state, version, String::new(), request).await
}

/// Every call under `/services/data/vNN.0/`.
pub async fn rest(
    State(state): State<Arc<OrgState>>,
    Path((version, rest)): Path<(String, String)>,
    request: Request,
) -> Response {
    handle(state, version, rest, request).await
}

async fn handle(state: Arc<OrgState>, version: String, rest: String, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let raw = uri.query().map(str::to_string);
    state.delay().await;
    let path = uri.path().to_string();
    let mut user = None;
    let outcome = 'call: {
        if uri.to_string().len() > MAX_URI_BYTES {
            break 'call Outcome::unrouted(ApiError::new(
                414,
                "URI_TOO_LONG",
                "The request URI is too long",
            ));
        }
        let session = match authenticate(&state, &headers) {
            Ok(s) => s,
            Err(e) => break 'call Outcome::unrouted(e),
        };
        user = Some(session.username.clone());
        let Some(version) = parse_version(&version) else {
            break 'call Outcome::unrouted(ApiError::not_found());
        };
        if let Err(e) = charge_api_call(&state) {
            break 'call Outcome::unrouted(e);
        }
        if let Some(e) = injected_error(&state) {
            break 'call Outcome::unrouted(e);
        }
        let segments: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode_segment)
            .collect();
        let call = Call {
            state: &state,
            session: &session,
            version: &version,
            method: &method,
            headers: &headers,
            params: query_params(raw.as_deref()),
        };
        route(&call, &segments, body).await
    };
    let status;
    let mut response = match outcome.result {
        Ok(r) => {
            status = r.status().as_u16();
            r
        }
        Err(e) => {
            status = e.status;
            api_error(&e)
        }
    };
    if let Some(kind) = outcome.kind {
        state.count_call(kind);
    }
    state.log_request(RequestLogEntry {
        time: crate::value::format_datetime(Utc::now()),
        method: method.to_string(),
        path,
        kind: outcome.kind.map(str::to_string),
        soql: outcome.soql,
        status,
        user,
    });
    let usage = *lock(&state.api_usage);
    let limit = lock(&state.faults).api_daily_limit;
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={usage}/{limit}")) {
        response.headers_mut().insert("sforce-limit-info", v);
    }
    response
}

/// Counts one call against the daily allowance, or refuses it when the allowance is spent.
pub(super) fn charge_api_call(state: &OrgState) -> Result<(), ApiError> {
    let limit = lock(&state.faults).api_daily_limit;
    let mut usage = lock(&state.api_usage);
    if *usage >= limit {
        return Err(ApiError::new(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ));
    }
    *usage += 1;
    drop(usage);
    lock(&state.stats).api_calls_total += 1;
    Ok(())
}

/// The error the fault injector picks for this call, if any.
fn injected_error(state: &OrgState) -> Option<ApiError> {
    let f = lock(&state.faults).clone();
    if f.error_rate > 0.0 && rand::rng().random_bool(f.error_rate.clamp(0.0, 1.0)) {
        return Some(ApiError::new(
            f.error_status,
            &f.error_code,
            "Simulated failure (sfsim fault injection)",
        ));
    }
    None
}

async fn route(call: &Call<'_>, seg: &[String], body: Body) -> Outcome {
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    // HEAD is answered as GET (the server drops the body).
    let m = if *call.method == Method::HEAD {
        Method::GET
    } else {
        call.method.clone()
    };
    match s.as_slice() {
        [] => Outcome::new(
            "describe",
            if m == Method::GET {
                Ok(version_resources(call))
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["query"] if call.params.contains_key("explain") && !call.params.contains_key("q") => {
            let target = call.params.get("explain").cloned().unwrap_or_default();
            let result = if m == Method::GET {
                query::explain(call, &target)
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            };
            Outcome {
                kind: Some("explain"),
                soql: Some(target),
                result,
            }
        }
        ["query"] | ["queryAll"] => {
            let all = s[0] == "queryAll";
            let kind = if all { "query_all" } else { "query" };
            let soql = call.params.get("q").cloned();
            let result = if m == Method::GET {
                query(call, soql.as_deref(), all)
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            };
            Outcome {
                kind: Some(kind),
                soql,
                result,
            }
        }
        ["query", locator] | ["queryAll", locator] => Outcome::new(
            "query_more",
            if m == Method::GET {
                query_more(call, locator)
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["recent"] => Outcome::new(
            "recent",
            if m == Method::GET {
                recent::limit_param(call.params.get("limit").map(String::as_str))
                    .map(|n| json_reply(200, &Json::Array(recent::items(call, None, n))))
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["limits"] => Outcome::new(
            "limits",
            if m == Method::GET {
                Ok(limits(call.state))
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["sobjects"] => Outcome::new(
            "describe",
            if m == Method::GET {
                let db = lock(&call.state.db);
                Ok(json_reply(200, &db.describe_global_version(call.version)))
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["sobjects", object] => match m {
            Method::GET => Outcome::new("describe", sobject_info(call, object)),
            Method::POST => Outcome::new("create", create_one(call, object, body).await),
            _ => Outcome::unrouted(method_not_allowed(&m, "GET,HEAD,POST")),
        },
        ["sobjects", object, "describe"] => Outcome::new(
            "describe",
            if m == Method::GET {
                let db = lock(&call.state.db);
                db.describe_version(object, call.version)
                    .map(|d| json_reply(200, &d))
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["sobjects", object, "describe", sub] => Outcome::new(
            "describe",
            if m == Method::GET {
                describe_part(call, object, sub, None)
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["sobjects", object, "describe", "layouts", record_type] => Outcome::new(
            "describe",
            if m == Method::GET {
                describe_part(call, object, "layouts", Some(record_type))
            } else {
                Err(method_not_allowed(&m, "GET,HEAD"))
            },
        ),
        ["sobjects", object, which @ ("deleted" | "updated")] => {
            let kind = if *which == "deleted" {
                "deleted"
            } else {
                "updated"
            };
            Outcome::new(
                kind,
                if m == Method::GET {
                    replication(call, object, kind == "deleted")
                } else {
                    Err(method_not_allowed(&m, "GET,HEAD"))
                },
            )
        }
        ["sobjects", object, id] => match m {
            Method::GET => Outcome::new("retrieve", retrieve_one(call, object, id)),
            Method::PATCH => Outcome::new("update", update_one(call, object, id, body).await),
            Method::DELETE => Outcome::new("delete", delete_one(call, object, id)),
            _ => Outcome::unrouted(method_not_allowed(&m, "GET,HEAD,PATCH,DELETE")),
        },
        ["sobjects", object, field, value] => match m {
            Method::PATCH => {
                Outcome::new("upsert", upsert_one(call, object, field, value, body).await)
            }
            Method::GET => Outcome::new(
                "retrieve",
                retrieve_by_external_id(call, object, field, value),
            ),
            _ => Outcome::unrouted(method_not_allowed(&m, "GET,HEAD,PATCH")),
        },
        ["composite", "sobjects"] => match m {
            Method::POST => Outcome::new(
                "collections_create",
                collections_write(call, CollOp::Create, body).await,
            ),
            Method::PATCH => Outcome::new(
                "collections_update",
                collections_write(call, CollOp::Update, body).await,
            ),
            Method::DELETE => Outcome::new("collections_delete", collections_delete(call)),
            _ => Outcome::unrouted(method_not_allowed(&m, "POST,PATCH,DELETE")),
        },
        ["composite", "sobjects", object] => match m {
            Method::POST | Method::GET => {
                Outcome::new("retrieve", collections_retrieve(call, object, body).await)
            }
            _ => Outcome::unrouted(method_not_allowed(&m, "GET,POST")),
        },
        ["composite", "sobjects", object, field] => match m {
            Method::PATCH => Outcome::new(
                "collections_upsert",
                collections_write(
                    call,
                    CollOp::Upsert {
                        object: object.to_string(),
                        field: field.to_string(),
                    },
                    body,
                )
                .await,
            ),
            _ => Outcome::unrouted(method_not_allowed(&m, "PATCH")),
        },
        ["jobs", ..] => bulk::route(call, &s, &m, body).await,
        _ => Outcome::unrouted(ApiError::not_found()),
    }
}

/// `describe/layouts[/{recordTypeId}]`, `describe/compactLayouts`, `describe/approvalLayouts`.
fn describe_part(
    call: &Call<'_>,
    object: &str,
    part: &str,
    record_type: Option<&str>,
) -> Result<Response, ApiError> {
    let db = lock(&call.state.db);
    let obj = db.schema().object(object).ok_or_else(ApiError::not_found)?;
    let body = match (part, record_type) {
        ("layouts", None) => layouts::layouts(obj, call.version),
        ("layouts", Some(rt)) => layouts::layout_for_record_type(obj, rt).ok_or_else(|| {
            ApiError::new(
                404,
                "NOT_FOUND",
                format!("The requested resource does not exist: record type {rt}"),
            )
        })?,
        ("compactLayouts", None) => layouts::compact_layouts(),
        ("approvalLayouts", None) => layouts::approval_layouts(),
        _ => return Err(ApiError::not_found()),
    };
    Ok(json_reply(200, &body))
}

/// The resources of a version, with `identity`: the caller's absolute identity URL.
fn version_resources(call: &Call<'_>) -> Response {
    let base = format!("/services/data/v{}", call.version);
    json_reply(
        200,
        &json!({
            "identity": super::identity::identity_url(call.state, &call.session.user_id),
            "recent": format!("{base}/recent"),
            "sobjects": format!("{base}/sobjects"),
            "query": format!("{base}/query"),
            "queryAll": format!("{base}/queryAll"),
            "composite": format!("{base}/composite"),
            "limits": format!("{base}/limits"),
        }),
    )
}

fn limits(state: &OrgState) -> Response {
    let usage = *lock(&state.api_usage);
    let max = lock(&state.faults).api_daily_limit;
    let entry = |max: u64, used: u64| json!({"Max": max, "Remaining": max.saturating_sub(used)});
    json_reply(
        200,
        &json!({
            "DailyApiRequests": entry(max, usage),
            "DailyBulkApiBatches": entry(crate::bulk::DAILY_BATCHES, state.bulk.batches_used.load(std::sync::atomic::Ordering::Relaxed)),
            "DailyBulkV2QueryJobs": entry(crate::bulk::DAILY_QUERY_JOBS, state.bulk.query_jobs_created.load(std::sync::atomic::Ordering::Relaxed)),
            "DailyBulkV2QueryFileStorageMB": entry(crate::bulk::DAILY_QUERY_RESULT_MB, state.bulk.query_result_mb()),
            "DailyAsyncApexExecutions": entry(250000, 0),
            "DataStorageMB": entry(1024, 0),
            "FileStorageMB": entry(1024, 0),
            "HourlyODataCallout": entry(10000, 0),
        }),
    )
}

fn sobject_info(call: &Call<'_>, object: &str) -> Result<Response, ApiError> {
    let entry = {
        let db = lock(&call.state.db);
        let obj = db.schema().object(object).ok_or_else(ApiError::not_found)?;
        obj.global_entry(call.version)
    };
    let recent = recent::items(call, Some(object), MAX_RECENT);
    Ok(json_reply(
        200,
        &json!({"objectDescribe": entry, "recentItems": recent}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("v62.0").as_deref(), Some("62.0"));
        assert_eq!(parse_version("62.0"), None);
        assert_eq!(parse_version("v62"), None);
        assert_eq!(parse_version("vx.0"), None);
    }

    #[test]
    fn release_labels() {
        assert_eq!(release_label(20), "Winter '11");
        assert_eq!(release_label(62), "Winter '25");
        assert_eq!(release_label(64), "Summer '25");
    }

    #[test]
    fn batch_size_header() {
        let mut h = HeaderMap::new();
        assert_eq!(batch_size(&h), 2000);
        h.insert(
            "sforce-query-options",
            HeaderValue::from_static("batchSize=500"),
        );
        assert_eq!(batch_size(&h), 500);
        h.insert(
            "sforce-query-options",
            HeaderValue::from_static("batchSize=5"),
        );
        assert_eq!(batch_size(&h), 200);
        h.insert(
            "sforce-query-options",
            HeaderValue::from_static("batchSize=99999"),
        );
        assert_eq!(batch_size(&h), 2000);
        h.insert(
            "sforce-query-options",
            HeaderValue::from_static("batchSize=abc"),
        );
        assert_eq!(batch_size(&h), 2000);
    }

    #[test]
    fn segments_decode() {
        assert_eq!(decode_segment("A%20B"), "A B");
        assert_eq!(decode_segment("a+b"), "a+b");
    }
}
