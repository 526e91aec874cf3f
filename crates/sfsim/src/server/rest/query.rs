//! Query and queryAll with cursor paging (`nextRecordsUrl`, `Sforce-Query-Options`); `FOR
//! VIEW` / `FOR REFERENCE` put the returned records on the caller's recently viewed list.

use std::sync::Arc;

use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::{Call, batch_size};
use crate::db::OrgDb;
use crate::error::ApiError;
use crate::server::reply::json_reply;
use crate::server::state::{MAX_RECENT, lock};

fn query_page(
    call: &Call<'_>,
    db: &OrgDb,
    cursor: Arc<crate::db::QueryCursor>,
    locator: Option<String>,
    offset: usize,
    batch: usize,
) -> Result<Response, ApiError> {
    let end = (offset + batch).min(cursor.len());
    let records = db.render_rows(&cursor, offset..end, call.version)?;
    let done = end >= cursor.len();
    let mut body = Map::new();
    body.insert("totalSize".into(), json!(cursor.total_size()));
    body.insert("done".into(), json!(done));
    if !done {
        let id = match locator {
            Some(id) => id,
            None => call.state.store_cursor(cursor.clone(), batch),
        };
        body.insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/v{}/query/{id}-{end}", call.version)),
        );
    } else if let Some(id) = locator {
        call.state.drop_cursor(&id);
    }
    body.insert("records".into(), Json::Array(records));
    Ok(json_reply(200, &Json::Object(body)))
}

pub(super) fn query(
    call: &Call<'_>,
    soql: Option<&str>,
    include_deleted: bool,
) -> Result<Response, ApiError> {
    let soql = soql.filter(|q| !q.trim().is_empty()).ok_or_else(|| {
        ApiError::malformed_query("A query string must be provided with the q parameter")
    })?;
    let batch = batch_size(call.headers);
    let now = call.state.now();
    let db = lock(&call.state.db);
    let cursor = Arc::new(db.query_cursor(soql, include_deleted, now)?);
    if cursor.for_clause().is_some() {
        let ids = db.row_ids(&cursor, MAX_RECENT);
        call.state.mark_recent(&call.session.user_id, &ids);
    }
    query_page(call, &db, cursor, None, 0, batch)
}

/// `query?explain=SOQL`: the query's plans (not counted as a query of rows). A report or list
/// view id (sfsim has none) is `INVALID_ID`.
pub(super) fn explain(call: &Call<'_>, target: &str) -> Result<Response, ApiError> {
    let target = target.trim();
    let looks_like_soql = target
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"));
    if !looks_like_soql && crate::ids::is_valid(target) {
        return Err(ApiError::new(
            400,
            "INVALID_ID",
            format!("invalid report or list view id: {target}"),
        ));
    }
    if target.is_empty() {
        return Err(ApiError::malformed_query(
            "A query string must be provided with the explain parameter",
        ));
    }
    let now = call.state.now();
    let db = lock(&call.state.db);
    Ok(json_reply(200, &db.explain(target, now)?))
}

fn invalid_locator() -> ApiError {
    ApiError::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
}

pub(super) fn query_more(call: &Call<'_>, locator: &str) -> Result<Response, ApiError> {
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid_locator)?;
    let offset: usize = offset.parse().map_err(|_| invalid_locator())?;
    let (cursor, batch) = call.state.take_cursor(id).ok_or_else(invalid_locator)?;
    if offset > cursor.len() {
        return Err(invalid_locator());
    }
    let db = lock(&call.state.db);
    query_page(call, &db, cursor, Some(id.to_string()), offset, batch)
}
