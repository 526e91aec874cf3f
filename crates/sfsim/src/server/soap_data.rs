//! The Partner API data calls sfsim serves over SOAP, `undelete` and `merge` (REST has no verb
//! for either): the session from the `SessionHeader`, one API call charged, the database
//! call, and the reply envelope. Parsing and writing the XML is in `soap.rs`.

use serde_json::{Map, Value as Json};
use tracing::debug;

use super::rest::charge_api_call;
use super::soap::{self, MergeItem, MergeRequestXml, UndeleteItem};
use super::state::{OrgState, Session, lock};
use crate::db::{DmlContext, MergeSpec, OrgDb};
use crate::schema::FieldType;

/// A reply: the username and XML on success, or the HTTP status and fault envelope.
pub type SoapOutcome = Result<(String, String), (u16, String)>;

/// The session of a data call, with the API call charged.
fn begin(state: &OrgState, session_id: Option<&str>) -> Result<Session, (u16, String)> {
    let session = state
        .session(session_id.unwrap_or_default())
        .ok_or_else(|| (500, soap::invalid_session_fault()))?;
    charge_api_call(state).map_err(|e| (500, soap::api_fault(&e.error_code, &e.message)))?;
    Ok(session)
}

fn context(state: &OrgState, session: &Session) -> DmlContext {
    DmlContext {
        user_id: session.user_id.clone(),
        now: state.now(),
        reject_marker: None,
        forced_errors: Vec::new(),
    }
}

/// SOAP `undelete`: one UndeleteResult per id (at most 200, as for every Partner DML call).
pub fn undelete(state: &OrgState, session_id: Option<&str>, ids: &[String]) -> SoapOutcome {
    let session = begin(state, session_id)?;
    if ids.len() > 200 {
        return Err((
            500,
            soap::api_fault(
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            ),
        ));
    }
    let mut db = lock(&state.db);
    // Taken under the database lock: calls commit in timestamp order.
    let ctx = context(state, &session);
    let results = db.undelete(ids, &ctx);
    drop(db);
    let items: Vec<UndeleteItem> = results
        .into_iter()
        .map(|r| match r {
            Ok(ok) => UndeleteItem {
                id: Some(ok.id),
                errors: Vec::new(),
            },
            Err((id, errors)) => UndeleteItem { id, errors },
        })
        .collect();
    let restored = items.iter().filter(|i| i.errors.is_empty()).count();
    state.add_records_written(restored as u64);
    debug!(org = %state.name, user = %session.username, ids = ids.len(), restored, "SOAP undelete");
    Ok((session.username, soap::undelete_response(&items)))
}

/// A SOAP text value as the JSON a REST body would carry, by the field's type.
fn field_json(db: &OrgDb, object: &str, field: &str, text: Option<&str>) -> Json {
    let Some(text) = text else {
        return Json::Null;
    };
    let kind = db
        .schema()
        .object(object)
        .and_then(|o| o.field(field))
        .map(|f| f.field_type);
    let number = || {
        text.trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
    };
    match kind {
        Some(FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent) => {
            number().unwrap_or_else(|| Json::String(text.to_string()))
        }
        Some(FieldType::Boolean) => match text.trim() {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            _ => Json::String(text.to_string()),
        },
        _ => Json::String(text.to_string()),
    }
}

fn merge_spec(db: &OrgDb, r: &MergeRequestXml) -> MergeSpec {
    let object = if r.object.is_empty() {
        "Account".to_string()
    } else {
        r.object.clone()
    };
    let master_fields: Map<String, Json> = r
        .master_fields
        .iter()
        .map(|(k, v)| (k.clone(), field_json(db, &object, k, v.as_deref())))
        .collect();
    MergeSpec {
        object,
        master_id: r.master_id.clone(),
        master_fields,
        loser_ids: r.loser_ids.clone(),
    }
}

/// SOAP `merge`: each MergeRequest is its own transaction; one MergeResult each.
pub fn merge(
    state: &OrgState,
    session_id: Option<&str>,
    requests: &[MergeRequestXml],
) -> SoapOutcome {
    let session = begin(state, session_id)?;
    let mut db = lock(&state.db);
    let mut items = Vec::with_capacity(requests.len());
    let mut written = 0u64;
    for r in requests {
        let ctx = context(state, &session);
        let spec = merge_spec(&db, r);
        items.push(match db.merge(&spec, &ctx) {
            Ok(ok) => {
                written += 1 + (ok.merged_ids.len() + ok.updated_related_ids.len()) as u64;
                MergeItem {
                    id: Some(ok.id),
                    merged_ids: ok.merged_ids,
                    updated_related_ids: ok.updated_related_ids,
                    errors: Vec::new(),
                }
            }
            Err((id, errors)) => MergeItem {
                id,
                merged_ids: Vec::new(),
                updated_related_ids: Vec::new(),
                errors,
            },
        });
    }
    drop(db);
    state.add_records_written(written);
    debug!(org = %state.name, user = %session.username, requests = requests.len(), "SOAP merge");
    Ok((session.username, soap::merge_response(&items)))
}
