//! Single records: retrieve by id or external id, create, update, upsert and delete one
//! record, getDeleted / getUpdated, and the DML plumbing sObject Collections shares (body
//! parsing, the call's DML context, applying a call and handing its changes to Outbound
//! Messaging).

use axum::body::Body;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value as Json, json};

use super::{Call, MAX_REST_BODY_BYTES, missing_argument};
use crate::db::{DmlContext, DmlOp, DmlResult, OrgDb};
use crate::error::{ApiError, ItemError};
use crate::server::reply::{json_reply, no_content, parse_json, read_body};
use crate::server::state::{OrgState, lock};

fn fields_param(call: &Call<'_>) -> Option<Vec<String>> {
    call.params.get("fields").map(|f| {
        f.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

pub(super) fn retrieve_one(call: &Call<'_>, object: &str, id: &str) -> Result<Response, ApiError> {
    let fields = fields_param(call);
    let db = lock(&call.state.db);
    db.retrieve(object, id, fields.as_deref(), call.version)
        .map(|r| json_reply(200, &r))
}

fn ext_lookup_error(e: ApiError) -> ApiError {
    if e.error_code == "NOT_FOUND" {
        ApiError::new(404, "NOT_FOUND", e.message)
    } else {
        e
    }
}

pub(super) fn retrieve_by_external_id(
    call: &Call<'_>,
    object: &str,
    field: &str,
    value: &str,
) -> Result<Response, ApiError> {
    let fields = fields_param(call);
    let db = lock(&call.state.db);
    let ids = db
        .find_by_external_id(object, field, &Json::String(value.to_string()))
        .map_err(ext_lookup_error)?;
    match ids.as_slice() {
        [] => Err(ApiError::not_found()),
        [id] => db
            .retrieve(object, id, fields.as_deref(), call.version)
            .map(|r| json_reply(200, &r)),
        many => Ok(multiple_choices(call.version, object, many)),
    }
}

fn multiple_choices(version: &str, object: &str, ids: &[String]) -> Response {
    let urls: Vec<Json> = ids
        .iter()
        .map(|id| json!(format!("/services/data/v{version}/sobjects/{object}/{id}")))
        .collect();
    json_reply(300, &Json::Array(urls))
}

/// A JSON object body, or Salesforce's parser error.
pub(super) async fn object_body(body: Body) -> Result<Map<String, Json>, ApiError> {
    let bytes = read_body(body, MAX_REST_BODY_BYTES).await?;
    match parse_json(&bytes)? {
        Json::Object(m) => Ok(m),
        _ => Err(ApiError::new(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject from a non-object JSON value",
        )),
    }
}

pub(super) fn dml_context(call: &Call<'_>, lock_errors_for: usize) -> DmlContext {
    let faults = lock(&call.state.faults).clone();
    let mut forced_errors = Vec::new();
    if faults.lock_error_rate > 0.0 {
        let mut rng = rand::rng();
        for i in 0..lock_errors_for {
            if rng.random_bool(faults.lock_error_rate.clamp(0.0, 1.0)) {
                forced_errors.push((
                    i,
                    ItemError::new(
                        "UNABLE_TO_LOCK_ROW",
                        "unable to obtain exclusive access to this record or 1 records",
                        vec![],
                    ),
                ));
            }
        }
    }
    DmlContext {
        user_id: call.session.user_id.clone(),
        // Replaced by `apply`, under the database lock.
        now: Utc::now(),
        reject_marker: faults.reject_name_marker.filter(|m| !m.is_empty()),
        forced_errors,
    }
}

/// Applies a call's operations (stamped with the org's time, taken under the lock), counts the records written and hands the changes to
/// Outbound Messaging.
pub(super) fn apply(
    state: &OrgState,
    db: &mut OrgDb,
    ops: Vec<DmlOp>,
    all_or_none: bool,
    mut ctx: DmlContext,
) -> Vec<DmlResult> {
    // Taken under the database lock: calls commit in timestamp order.
    ctx.now = state.now();
    let (results, changes) = db.apply(ops, all_or_none, &ctx);
    let written = results.iter().filter(|r| r.is_ok()).count() as u64;
    state.add_records_written(written);
    if !changes.is_empty() {
        state.outbound.on_changes(&state.org_id, &changes);
    }
    results
}

/// A single-record DML error: the item's errors as a REST error array with HTTP 400.
fn single_error(errors: Vec<ItemError>) -> Response {
    let body: Vec<Json> = errors
        .into_iter()
        .map(|e| json!({"message": e.message, "errorCode": e.status_code, "fields": e.fields}))
        .collect();
    json_reply(400, &Json::Array(body))
}

fn strip_attributes(mut m: Map<String, Json>) -> Map<String, Json> {
    m.remove("attributes");
    m
}

pub(super) fn ensure_object(db: &OrgDb, object: &str) -> Result<String, ApiError> {
    db.schema()
        .object(object)
        .map(|o| o.name.clone())
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn create_one(
    call: &Call<'_>,
    object: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let body = object_body(body).await.map(strip_attributes);
    let fields = body?;
    let ctx = dml_context(call, 0);
    let mut db = lock(&call.state.db);
    let object = ensure_object(&db, object)?;
    let mut results = apply(
        call.state,
        &mut db,
        vec![DmlOp::Create { object, fields }],
        false,
        ctx,
    );
    match results.pop() {
        Some(Ok(ok)) => Ok(json_reply(
            201,
            &json!({"id": ok.id, "success": true, "errors": []}),
        )),
        Some(Err((_, errors))) => Ok(single_error(errors)),
        None => Err(ApiError::new(500, "UNKNOWN_EXCEPTION", "no result")),
    }
}

/// A PATCH or DELETE of a deleted record: 404 ENTITY_IS_DELETED (as Salesforce answers a
/// second delete), where an id that never existed is 404 NOT_FOUND.
fn refuse_deleted(db: &OrgDb, object: &str, id: &str) -> Result<(), ApiError> {
    if db.is_deleted_record(object, id) {
        let mut e = ApiError::new(404, "ENTITY_IS_DELETED", "entity is deleted");
        e.fields = Some(Vec::new());
        return Err(e);
    }
    Ok(())
}

pub(super) async fn update_one(
    call: &Call<'_>,
    object: &str,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let body = object_body(body).await.map(strip_attributes);
    let mut fields = body?;
    fields.remove("Id");
    fields.remove("id");
    let ctx = dml_context(call, 0);
    let mut db = lock(&call.state.db);
    let object = ensure_object(&db, object)?;
    refuse_deleted(&db, &object, id)?;
    db.retrieve(&object, id, Some(&[]), call.version)?;
    let op = DmlOp::Update {
        object: Some(object),
        id: id.to_string(),
        fields,
    };
    match apply(call.state, &mut db, vec![op], false, ctx).pop() {
        Some(Ok(_)) => Ok(no_content()),
        Some(Err((_, errors))) => Ok(single_error(errors)),
        None => Err(ApiError::new(500, "UNKNOWN_EXCEPTION", "no result")),
    }
}

pub(super) fn delete_one(call: &Call<'_>, object: &str, id: &str) -> Result<Response, ApiError> {
    let ctx = dml_context(call, 0);
    let mut db = lock(&call.state.db);
    let object = ensure_object(&db, object)?;
    refuse_deleted(&db, &object, id)?;
    db.retrieve(&object, id, Some(&[]), call.version)?;
    let op = DmlOp::Delete { id: id.to_string() };
    match apply(call.state, &mut db, vec![op], false, ctx).pop() {
        Some(Ok(_)) => Ok(no_content()),
        Some(Err((_, errors))) => Ok(single_error(errors)),
        None => Err(ApiError::new(500, "UNKNOWN_EXCEPTION", "no result")),
    }
}

pub(super) async fn upsert_one(
    call: &Call<'_>,
    object: &str,
    field: &str,
    value: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let body = object_body(body).await.map(strip_attributes);
    let mut fields = body?;
    let ctx = dml_context(call, 0);
    let mut db = lock(&call.state.db);
    let object = ensure_object(&db, object)?;
    let value_json = Json::String(value.to_string());
    let ids = db
        .find_by_external_id(&object, field, &value_json)
        .map_err(ext_lookup_error)?;
    if ids.len() > 1 {
        return Ok(multiple_choices(call.version, &object, &ids));
    }
    // The URL's value is the key: a body value for the same field is replaced by it.
    let canonical = db
        .schema()
        .object(&object)
        .and_then(|o| o.field(field))
        .map(|f| f.name.clone())
        .unwrap_or_else(|| field.to_string());
    fields.retain(|k, _| !k.eq_ignore_ascii_case(&canonical));
    fields.insert(canonical.clone(), value_json);
    let op = DmlOp::Upsert {
        object,
        ext_field: canonical,
        fields,
    };
    match apply(call.state, &mut db, vec![op], false, ctx).pop() {
        Some(Ok(ok)) => {
            let created = ok.created.unwrap_or(false);
            Ok(json_reply(
                if created { 201 } else { 200 },
                &json!({"id": ok.id, "success": true, "errors": [], "created": created}),
            ))
        }
        Some(Err((_, errors))) => Ok(single_error(errors)),
        None => Err(ApiError::new(500, "UNKNOWN_EXCEPTION", "no result")),
    }
}

pub(super) fn replication(
    call: &Call<'_>,
    object: &str,
    deleted: bool,
) -> Result<Response, ApiError> {
    let param = |name: &str| -> Result<DateTime<Utc>, ApiError> {
        let raw = call
            .params
            .get(name)
            .ok_or_else(|| missing_argument(&format!("Missing required parameter: {name}")))?;
        crate::value::parse_datetime(raw).ok_or_else(|| {
            ApiError::new(
                400,
                "INVALID_REPLICATION_DATE",
                format!("Invalid {name} date: {raw}"),
            )
        })
    };
    let start = param("start")?;
    let end = param("end")?;
    let now = call.state.now();
    let db = lock(&call.state.db);
    let body = if deleted {
        db.deleted(object, start, end, now)?
    } else {
        db.updated(object, start, end, now)?
    };
    Ok(json_reply(200, &body))
}
