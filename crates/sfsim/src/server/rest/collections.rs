//! sObject Collections: create, update, upsert and delete of up to 200 records per call, and
//! retrieve by ids, with allOrNone from the body or the query string.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::{
    Call, MAX_COLLECTION_RECORDS, apply, dml_context, ensure_object, missing_argument, object_body,
};
use crate::db::{DmlOp, DmlResult};
use crate::error::{ApiError, ItemError};
use crate::server::reply::json_reply;
use crate::server::state::lock;

pub(super) enum CollOp {
    Create,
    Update,
    Upsert { object: String, field: String },
}

fn item_json(r: DmlResult, upsert: bool) -> Json {
    match r {
        Ok(ok) => {
            let mut m = json!({"id": ok.id, "success": true, "errors": []});
            if upsert {
                m["created"] = json!(ok.created.unwrap_or(false));
            }
            m
        }
        Err((id, errors)) => {
            let mut m = Map::new();
            if let Some(id) = id {
                m.insert("id".into(), json!(id));
            }
            m.insert("success".into(), json!(false));
            m.insert("errors".into(), json!(errors));
            if upsert {
                // Every UpsertResult has `created`; a failed or rolled-back item created nothing.
                m.insert("created".into(), json!(false));
            }
            Json::Object(m)
        }
    }
}

fn exceeded_limit() -> ApiError {
    ApiError::new(
        400,
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {MAX_COLLECTION_RECORDS} records into this call"
        ),
    )
}

/// Reads `allOrNone` from a JSON body or the query string (`true`/`false`).
fn all_or_none(
    body: Option<&Map<String, Json>>,
    params: &HashMap<String, String>,
) -> Result<bool, ApiError> {
    if let Some(v) = body.and_then(|b| b.get("allOrNone")) {
        return match v {
            Json::Bool(b) => Ok(*b),
            Json::Null => Ok(false),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(ApiError::new(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize value of type `boolean` for allOrNone",
            )),
        };
    }
    Ok(params
        .get("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

pub(super) async fn collections_write(
    call: &Call<'_>,
    op: CollOp,
    body: Body,
) -> Result<Response, ApiError> {
    let body = object_body(body).await;
    let mut body = body?;
    let all_or_none = all_or_none(Some(&body), &call.params)?;
    let records = match body.remove("records") {
        Some(Json::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::new(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize records: expected a JSON array",
            ));
        }
        None => return Err(missing_argument("records is required")),
    };
    if records.len() > MAX_COLLECTION_RECORDS {
        return Err(exceeded_limit());
    }
    let mut ctx = dml_context(call, records.len());
    let mut ops = Vec::with_capacity(records.len());
    let upsert = matches!(op, CollOp::Upsert { .. });
    {
        let db = lock(&call.state.db);
        if let CollOp::Upsert { object, .. } = &op {
            ensure_object(&db, object)?;
        }
    }
    for (i, rec) in records.into_iter().enumerate() {
        let Json::Object(mut fields) = rec else {
            ctx.forced_errors.push((
                i,
                ItemError::new(
                    "JSON_PARSER_ERROR",
                    "each record must be a JSON object",
                    vec![],
                ),
            ));
            ops.push(placeholder());
            continue;
        };
        let rec_type = fields
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Json::as_str)
            .map(str::to_string);
        fields.remove("attributes");
        match &op {
            CollOp::Create => match rec_type {
                Some(object) => ops.push(DmlOp::Create { object, fields }),
                None => {
                    ctx.forced_errors.push((
                        i,
                        ItemError::new("INVALID_TYPE", "Must send a concrete entity type.", vec![]),
                    ));
                    ops.push(placeholder());
                }
            },
            CollOp::Update => {
                let id = fields
                    .remove("id")
                    .or_else(|| fields.remove("Id"))
                    .and_then(|v| v.as_str().map(str::to_string));
                match id {
                    Some(id) => ops.push(DmlOp::Update {
                        object: rec_type,
                        id,
                        fields,
                    }),
                    None => {
                        ctx.forced_errors.push((
                            i,
                            ItemError::new(
                                "MISSING_ARGUMENT",
                                "Id not specified in an update call",
                                vec![],
                            ),
                        ));
                        ops.push(placeholder());
                    }
                }
            }
            CollOp::Upsert { object, field } => ops.push(DmlOp::Upsert {
                object: object.clone(),
                ext_field: field.clone(),
                fields,
            }),
        }
    }
    let mut db = lock(&call.state.db);
    let results = apply(call.state, &mut db, ops, all_or_none, ctx);
    let items: Vec<Json> = results.into_iter().map(|r| item_json(r, upsert)).collect();
    Ok(json_reply(200, &Json::Array(items)))
}

pub(super) fn collections_delete(call: &Call<'_>) -> Result<Response, ApiError> {
    let ids: Vec<String> = call
        .params
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(missing_argument("ids parameter is required"));
    }
    if ids.len() > MAX_COLLECTION_RECORDS {
        return Err(exceeded_limit());
    }
    let all_or_none = all_or_none(None, &call.params)?;
    let ctx = dml_context(call, ids.len());
    let ops = ids.into_iter().map(|id| DmlOp::Delete { id }).collect();
    let mut db = lock(&call.state.db);
    let results = apply(call.state, &mut db, ops, all_or_none, ctx);
    let items: Vec<Json> = results.into_iter().map(|r| item_json(r, false)).collect();
    Ok(json_reply(200, &Json::Array(items)))
}

/// `POST composite/sobjects/{type}` `{"ids":[...],"fields":[...]}` (or GET with `?ids=&fields=`):
/// one record or `null` per id.
pub(super) async fn collections_retrieve(
    call: &Call<'_>,
    object: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let (ids, fields) = if *call.method == Method::POST {
        let body = object_body(body).await?;
        let list = |k: &str| -> Result<Vec<String>, ApiError> {
            match body.get(k) {
                Some(Json::Array(a)) => Ok(a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()),
                Some(_) => Err(ApiError::new(
                    400,
                    "JSON_PARSER_ERROR",
                    format!("Cannot deserialize {k}: expected a JSON array"),
                )),
                None => Ok(Vec::new()),
            }
        };
        (list("ids")?, list("fields")?)
    } else {
        let split = |k: &str| -> Vec<String> {
            call.params
                .get(k)
                .map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        (split("ids"), split("fields"))
    };
    if ids.is_empty() {
        return Err(missing_argument("ids is required"));
    }
    if fields.is_empty() {
        return Err(missing_argument("fields is required"));
    }
    if ids.len() > 2000 {
        return Err(exceeded_limit());
    }
    let db = lock(&call.state.db);
    let object = ensure_object(&db, object)?;
    // An unknown field is a 400 for the whole call, even when no id matches.
    if let Some(obj) = db.schema().object(&object)
        && let Some(f) = fields.iter().find(|f| obj.field(f).is_none())
    {
        return Err(ApiError::invalid_field(format!(
            "No such column '{f}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        )));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        match db.retrieve(&object, id, Some(&fields), call.version) {
            Ok(r) => out.push(r),
            Err(e) if e.error_code == "NOT_FOUND" => out.push(Json::Null),
            Err(e) => return Err(e),
        }
    }
    Ok(json_reply(200, &Json::Array(out)))
}

/// The op standing for an item refused before reaching the database (its error is in the
/// context's `forced_errors`, which `apply` reports without running the op).
fn placeholder() -> DmlOp {
    DmlOp::Create {
        object: String::new(),
        fields: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_none_sources() {
        let p = HashMap::from([("allOrNone".to_string(), "true".to_string())]);
        assert_eq!(all_or_none(None, &p), Ok(true));
        let body: Map<String, Json> =
            serde_json::from_str(r#"{"allOrNone":false}"#).unwrap_or_default();
        assert_eq!(all_or_none(Some(&body), &HashMap::new()), Ok(false));
        let bad: Map<String, Json> = serde_json::from_str(r#"{"allOrNone":3}"#).unwrap_or_default();
        assert!(all_or_none(Some(&bad), &HashMap::new()).is_err());
    }
}
