//! Recently viewed records: `GET recent[?limit=N]` and the `recentItems` of
//! `GET sobjects/{type}`. The list is the caller's records marked by `FOR VIEW` /
//! `FOR REFERENCE` queries, most recent first, at most 200; each item is the record's
//! `attributes`, `Id` and `Name` (when the object has one). Deleted records are left out.

use serde_json::Value as Json;

use super::Call;
use crate::db::OrgDb;
use crate::error::ApiError;
use crate::server::state::{MAX_RECENT, lock};

/// The `limit` parameter: a number up to 200 (larger is clamped), default 200; anything else
/// is refused (sfsim's choice: Salesforce does not document the error).
pub fn limit_param(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(MAX_RECENT),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map(|n| n.min(MAX_RECENT))
            .map_err(|_| {
                ApiError::new(
                    400,
                    "INVALID_PARAMETER_VALUE",
                    format!("limit must be a number: {v}"),
                )
            }),
    }
}

/// One recent item: `attributes`, `Id`, `Name` if the object has one; `None` when the record
/// is gone or not of `object`.
fn item(db: &OrgDb, id: &str, object: Option<&str>, api_version: &str) -> Option<Json> {
    let of = db.object_of(id)?.to_string();
    if object.is_some_and(|o| !o.eq_ignore_ascii_case(&of)) {
        return None;
    }
    let def = db.schema().object(&of)?;
    let mut fields = vec!["Id".to_string()];
    if let Some(name) = def.name_field.and_then(|i| def.fields.get(i)) {
        fields.push(name.name.clone());
    }
    db.retrieve(&of, id, Some(&fields), api_version).ok()
}

/// The caller's recent items, optionally of one object, at most `limit`.
pub fn items(call: &Call<'_>, object: Option<&str>, limit: usize) -> Vec<Json> {
    let ids = call.state.recent_ids(&call.session.user_id);
    let db = lock(&call.state.db);
    ids.iter()
        .filter_map(|id| item(&db, id, object, call.version))
        .take(limit)
        .collect()
}
