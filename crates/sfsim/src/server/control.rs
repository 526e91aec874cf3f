//! The control API under `/__sim/` (no auth, JSON), for tests and benchmarks: reset, stats,
//! the request log, faults, clock skew, custom fields, Outbound Messaging settings, users,
//! bulk seeding, and the recycle bin (purge, hard delete, the start of getDeleted's window).
//! Each operation is a plain function on [`OrgState`] so that in-process tests can call it
//! through [`super::SimOrg`] without HTTP.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json, json};

use super::reply::{api_error, json_reply, parse_json, read_body};
use super::state::{
    CLIENT_ID, CLIENT_SECRET, Faults, OrgState, PASSWORD, SECURITY_TOKEN, SimUser, lock,
};
use crate::db::{DmlContext, DmlOp};
use crate::error::ApiError;
use crate::outbound::OutboundConfig;

/// Records one seeding call may write.
pub const MAX_SEED_RECORDS: usize = 10_000;
/// Largest control request body (a seeding call of 10,000 records).
const MAX_CONTROL_BODY_BYTES: usize = super::reply::MAX_CONTROL_REQUEST_BYTES;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "INVALID_REQUEST", message)
}

/// Replaces the fields of `current` named in `patch`; unknown names are refused.
fn merge<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: &Map<String, Json>,
) -> Result<T, ApiError> {
    let mut value = serde_json::to_value(current)
        .map_err(|e| ApiError::new(500, "UNKNOWN_EXCEPTION", e.to_string()))?;
    if let Json::Object(m) = &mut value {
        for (k, v) in patch {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).map_err(|e| bad_request(e.to_string()))
}

fn as_object(v: Json) -> Result<Map<String, Json>, ApiError> {
    match v {
        Json::Object(m) => Ok(m),
        _ => Err(bad_request("the body must be a JSON object")),
    }
}

/// Counters of `/__sim/stats`.
pub fn stats(state: &OrgState) -> Json {
    let s = lock(&state.stats).clone();
    json!({
        "calls": s.calls,
        "api_calls_total": s.api_calls_total,
        "records_written": s.records_written,
        "api_usage": *lock(&state.api_usage),
        "outbound": state.outbound.stats(),
    })
}

/// The most recent `limit` calls, oldest first.
pub fn requests(state: &OrgState, limit: usize) -> Json {
    let log = lock(&state.log);
    let skip = log.len().saturating_sub(limit);
    json!(log.iter().skip(skip).collect::<Vec<_>>())
}

/// Current faults, with the session and usage controls that are not stored as faults.
pub fn faults(state: &OrgState) -> Json {
    let mut v = json!(lock(&state.faults).clone());
    v["api_usage"] = json!(*lock(&state.api_usage));
    v
}

/// Applies a faults patch: any [`Faults`] field, plus `api_usage` (sets the current use of
/// the daily allowance) and `expire_sessions_now` (ends every session).
pub fn set_faults(state: &OrgState, mut patch: Map<String, Json>) -> Result<Json, ApiError> {
    let expire = match patch.remove("expire_sessions_now") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => b,
        Some(_) => return Err(bad_request("expire_sessions_now must be a boolean")),
    };
    let usage = match patch.remove("api_usage") {
        None | Some(Json::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad_request("api_usage must be a non-negative integer"))?,
        ),
    };
    let new: Faults = {
        let current = lock(&state.faults).clone();
        merge(&current, &patch)?
    };
    for (name, rate) in [
        ("error_rate", new.error_rate),
        ("lock_error_rate", new.lock_error_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(bad_request(format!("{name} must be between 0 and 1")));
        }
    }
    if !(100..=599).contains(&new.error_status) {
        return Err(bad_request(
            "error_status must be an HTTP status (100..599)",
        ));
    }
    *lock(&state.faults) = new;
    if let Some(u) = usage {
        *lock(&state.api_usage) = u;
    }
    if expire {
        state.expire_sessions();
    }
    Ok(faults(state))
}

/// `{"offset_ms": n, "now": "..."}`.
pub fn clock(state: &OrgState) -> Json {
    json!({
        "offset_ms": *lock(&state.clock_offset_ms),
        "now": crate::value::format_datetime(state.now()),
    })
}

pub fn set_clock(state: &OrgState, patch: &Map<String, Json>) -> Result<Json, ApiError> {
    let offset = patch
        .get("offset_ms")
        .and_then(Json::as_i64)
        .ok_or_else(|| bad_request("offset_ms (an integer) is required"))?;
    // Within ±100 years: chrono's range is far larger, but nothing sensible needs more.
    const MAX: i64 = 100 * 366 * 24 * 3600 * 1000;
    if !(-MAX..=MAX).contains(&offset) {
        return Err(bad_request("offset_ms is out of range"));
    }
    *lock(&state.clock_offset_ms) = offset;
    Ok(clock(state))
}

/// Outbound settings with the delivery counters and queue length.
pub fn outbound(state: &OrgState) -> Json {
    let mut v = json!(state.outbound.config());
    v["stats"] = json!(state.outbound.stats());
    v["queued"] = json!(state.outbound.queued());
    v
}

pub fn set_outbound(state: &OrgState, patch: &Map<String, Json>) -> Result<Json, ApiError> {
    let mut patch = patch.clone();
    patch.remove("stats");
    patch.remove("queued");
    let new: OutboundConfig = merge(&state.outbound.config(), &patch)?;
    if new.retry_base_delay_ms == 0 || new.retry_max_delay_ms < new.retry_base_delay_ms {
        return Err(bad_request(
            "retry_base_delay_ms must be at least 1 and at most retry_max_delay_ms",
        ));
    }
    if !(0.0..=1.0).contains(&new.duplicate_rate) {
        return Err(bad_request("duplicate_rate must be between 0 and 1"));
    }
    if let Some(url) = &new.endpoint_url {
        let parsed = url::Url::parse(url).map_err(|e| bad_request(format!("endpoint_url: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad_request("endpoint_url must be http or https"));
        }
    }
    if new.enabled && new.endpoint_url.is_none() {
        return Err(bad_request(
            "endpoint_url is required to enable outbound messages",
        ));
    }
    {
        let db = lock(&state.db);
        let obj = db
            .schema()
            .object(&new.object)
            .ok_or_else(|| bad_request(format!("unknown object {}", new.object)))?;
        if let Some(f) = new.fields.iter().find(|f| obj.field(f).is_none()) {
            return Err(bad_request(format!("unknown field {f} on {}", obj.name)));
        }
    }
    state.outbound.set_config(new);
    Ok(outbound(state))
}

/// Users and every credential a client needs.
pub fn users(state: &OrgState) -> Json {
    let users: Vec<Json> = state
        .users
        .iter()
        .map(|u: &SimUser| {
            json!({
                "id": u.id,
                "username": u.username,
                "password": PASSWORD,
                "security_token": SECURITY_TOKEN,
                "refresh_token": u.refresh_token,
            })
        })
        .collect();
    json!({
        "org_id": state.org_id,
        "org_name": state.name,
        "base_url": state.base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "users": users,
    })
}

/// Writes up to 10,000 records of one object in one step (one timestamp), not counted as API
/// calls. `as_user` is a username or user id (default: the integration user). Returns one
/// result per record in the sObject Collections item shape.
pub fn seed_records(
    state: &OrgState,
    object: &str,
    as_user: Option<&str>,
    records: Vec<Map<String, Json>>,
) -> Result<Vec<Json>, ApiError> {
    if records.len() > MAX_SEED_RECORDS {
        return Err(bad_request(format!(
            "at most {MAX_SEED_RECORDS} records per seeding call"
        )));
    }
    let user = match as_user {
        None => state.users.first(),
        Some(u) => state.user_by_name(u).or_else(|| state.user_by_id(u)),
    }
    .ok_or_else(|| bad_request(format!("unknown user {}", as_user.unwrap_or(""))))?;
    let mut db = lock(&state.db);
    // Taken under the database lock: calls commit in timestamp order.
    let ctx = DmlContext {
        user_id: user.id.clone(),
        now: state.now(),
        reject_marker: None,
        forced_errors: Vec::new(),
    };
    let object = db
        .schema()
        .object(object)
        .map(|o| o.name.clone())
        .ok_or_else(|| bad_request(format!("unknown object {object}")))?;
    let ops = records
        .into_iter()
        .map(|mut fields| {
            fields.remove("attributes");
            DmlOp::Create {
                object: object.clone(),
                fields,
            }
        })
        .collect();
    let (results, changes) = db.apply(ops, false, &ctx);
    drop(db);
    if !changes.is_empty() {
        state.outbound.on_changes(&state.org_id, &changes);
    }
    Ok(results
        .into_iter()
        .map(|r| match r {
            Ok(ok) => json!({"id": ok.id, "success": true, "errors": []}),
            Err((_, errors)) => json!({"success": false, "errors": errors}),
        })
        .collect())
}

fn string_list(v: Option<&Json>, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad_request(format!("{name} must be an array of ids")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad_request(format!("{name} must be an array of ids"))),
    }
}

/// `POST /__sim/recycle_bin/purge`: empties the recycle bin of every object, or only of the
/// records deleted more than `older_than_s` seconds ago, or only the listed `ids`. Purged
/// records leave queryAll and can no longer be undeleted; getDeleted still lists them, and
/// its `earliestDateAvailable` moves up to the purge point.
pub fn purge_recycle_bin(state: &OrgState, body: &Map<String, Json>) -> Result<Json, ApiError> {
    let older = match body.get("older_than_s") {
        None | Some(Json::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| *n <= 100 * 366 * 24 * 3600)
                .ok_or_else(|| bad_request("older_than_s must be a non-negative integer"))?,
        ),
    };
    let ids = string_list(body.get("ids"), "ids")?;
    let mut db = lock(&state.db);
    let now = state.now();
    let cutoff = older.map(|s| now - chrono::Duration::seconds(s as i64));
    let out = db.purge_recycle_bin(cutoff, ids.as_deref(), now);
    Ok(json!({"purged": out.purged.len(), "ids": out.purged}))
}

/// `POST /__sim/replication {"earliest_available": "...", "object": "Opportunity"}`: getDeleted's
/// window starts no earlier than this (for one object, or all), as after a purge: a way to
/// make a hole in the delete log.
pub fn set_replication(state: &OrgState, body: &Map<String, Json>) -> Result<Json, ApiError> {
    let raw = body
        .get("earliest_available")
        .and_then(Json::as_str)
        .ok_or_else(|| bad_request("earliest_available (a dateTime) is required"))?;
    let at = crate::value::parse_datetime(raw)
        .ok_or_else(|| bad_request(format!("earliest_available is not a dateTime: {raw}")))?;
    let object = body.get("object").and_then(Json::as_str);
    if !lock(&state.db).set_earliest_available(object, at) {
        return Err(bad_request(format!(
            "unknown object {}",
            object.unwrap_or("")
        )));
    }
    Ok(json!({"ok": true}))
}

/// `POST /__sim/hard_delete {"ids": [...], "as_user": "..."}`: deletes the records (an
/// Account with its opportunities) and purges them at once, as a hard delete or
/// `emptyRecycleBin` does. Not counted as API calls. One result per id in the sObject
/// Collections item shape.
pub fn hard_delete(state: &OrgState, body: &Map<String, Json>) -> Result<Json, ApiError> {
    let ids = string_list(body.get("ids"), "ids")?
        .ok_or_else(|| bad_request("ids (an array of ids) is required"))?;
    if ids.len() > MAX_SEED_RECORDS {
        return Err(bad_request(format!(
            "at most {MAX_SEED_RECORDS} ids per call"
        )));
    }
    let as_user = body.get("as_user").and_then(Json::as_str);
    let user = match as_user {
        None => state.users.first(),
        Some(u) => state.user_by_name(u).or_else(|| state.user_by_id(u)),
    }
    .ok_or_else(|| bad_request(format!("unknown user {}", as_user.unwrap_or(""))))?;
    let mut db = lock(&state.db);
    let ctx = DmlContext {
        user_id: user.id.clone(),
        now: state.now(),
        reject_marker: None,
        forced_errors: Vec::new(),
    };
    let results: Vec<Json> = db
        .hard_delete(&ids, &ctx)
        .into_iter()
        .map(|r| match r {
            Ok(ok) => json!({"id": ok.id, "success": true, "errors": []}),
            Err((id, errors)) => json!({"id": id, "success": false, "errors": errors}),
        })
        .collect();
    Ok(json!({"results": results}))
}

// ---- HTTP ------------------------------------------------------------------------------

async fn body_object(body: Body) -> Result<Map<String, Json>, ApiError> {
    let bytes = read_body(body, MAX_CONTROL_BODY_BYTES).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    as_object(parse_json(&bytes)?)
}

fn reply(r: Result<Json, ApiError>) -> Response {
    match r {
        Ok(v) => json_reply(200, &v),
        Err(e) => api_error(&e),
    }
}

async fn reset_handler(State(state): State<Arc<OrgState>>) -> Response {
    state.reset();
    json_reply(200, &json!({"ok": true}))
}

async fn stats_handler(State(state): State<Arc<OrgState>>) -> Response {
    json_reply(200, &stats(&state))
}

async fn requests_handler(State(state): State<Arc<OrgState>>, RawQuery(q): RawQuery) -> Response {
    let raw = q.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "limit")
            .map(|(_, v)| v.into_owned())
    });
    let limit = match raw {
        None => 100,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                return api_error(&ApiError::new(
                    400,
                    "INVALID_REQUEST",
                    format!("limit must be a non-negative integer, got {v:?}"),
                ));
            }
        },
    };
    json_reply(200, &requests(&state, limit))
}

async fn faults_get(State(state): State<Arc<OrgState>>) -> Response {
    json_reply(200, &faults(&state))
}

async fn faults_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = match body_object(body).await {
        Ok(patch) => set_faults(&state, patch),
        Err(e) => Err(e),
    };
    reply(r)
}

async fn clock_get(State(state): State<Arc<OrgState>>) -> Response {
    json_reply(200, &clock(&state))
}

async fn clock_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = match body_object(body).await {
        Ok(patch) => set_clock(&state, &patch),
        Err(e) => Err(e),
    };
    reply(r)
}

async fn schema_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = match body_object(body).await {
        // A spec without a field `name` is a custom object.
        Ok(spec) if !spec.contains_key("name") => lock(&state.db)
            .add_object(&spec)
            .map(|prefix| json!({"ok": true, "keyPrefix": prefix})),
        Ok(spec) => {
            let spec = Json::Object(spec);
            lock(&state.db)
                .add_field(&spec)
                .map(|_| json!({"ok": true}))
        }
        Err(e) => Err(e),
    };
    reply(r)
}

async fn outbound_get(State(state): State<Arc<OrgState>>) -> Response {
    json_reply(200, &outbound(&state))
}

async fn outbound_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = match body_object(body).await {
        Ok(patch) => set_outbound(&state, &patch),
        Err(e) => Err(e),
    };
    reply(r)
}

async fn users_handler(State(state): State<Arc<OrgState>>) -> Response {
    json_reply(200, &users(&state))
}

async fn records_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = async {
        let mut b = body_object(body).await?;
        let object = b
            .get("object")
            .and_then(Json::as_str)
            .ok_or_else(|| bad_request("object is required"))?
            .to_string();
        let as_user = b.get("as_user").and_then(Json::as_str).map(str::to_string);
        let records = match b.remove("records") {
            Some(Json::Array(a)) => a
                .into_iter()
                .map(as_object)
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(bad_request("records (an array of objects) is required")),
        };
        let results = seed_records(&state, &object, as_user.as_deref(), records)?;
        Ok(json!({"results": results}))
    }
    .await;
    reply(r)
}

async fn purge_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = match body_object(body).await {
        Ok(b) => purge_recycle_bin(&state, &b),
        Err(e) => Err(e),
    };
    reply(r)
}

async fn replication_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = match body_object(body).await {
        Ok(b) => set_replication(&state, &b),
        Err(e) => Err(e),
    };
    reply(r)
}

async fn hard_delete_post(State(state): State<Arc<OrgState>>, body: Body) -> Response {
    let r = match body_object(body).await {
        Ok(b) => hard_delete(&state, &b),
        Err(e) => Err(e),
    };
    reply(r)
}

/// The `/__sim` routes.
pub fn router() -> Router<Arc<OrgState>> {
    Router::new()
        .route("/reset", post(reset_handler))
        .route("/stats", get(stats_handler))
        .route("/requests", get(requests_handler))
        .route("/faults", get(faults_get).post(faults_post))
        .route("/clock", get(clock_get).post(clock_post))
        .route("/schema", post(schema_post))
        .route("/outbound", get(outbound_get).post(outbound_post))
        .route("/users", get(users_handler))
        .route("/records", post(records_post))
        .route("/recycle_bin/purge", post(purge_post))
        .route("/replication", post(replication_post))
        .route("/hard_delete", post(hard_delete_post))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_named_fields_only() {
        let current = Faults::default();
        let patch: Map<String, Json> =
            serde_json::from_str(r#"{"latency_ms": 5}"#).unwrap_or_default();
        let merged = merge(&current, &patch).expect("merged");
        assert_eq!(merged.latency_ms, 5);
        assert_eq!(merged.api_daily_limit, current.api_daily_limit);
        let unknown: Map<String, Json> = serde_json::from_str(r#"{"nope": 1}"#).unwrap_or_default();
        assert!(merge(&current, &unknown).is_err());
        let wrong_type: Map<String, Json> =
            serde_json::from_str(r#"{"latency_ms": "x"}"#).unwrap_or_default();
        assert!(merge(&current, &wrong_type).is_err());
    }
}
