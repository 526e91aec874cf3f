//! Writes through sObject Collections: create, update, upsert on an external id, delete.
//!
//! Each call carries at most 200 records (Salesforce's limit) with `allOrNone: false`, so one
//! bad record never blocks the others. The reply is one item per record, in input order,
//! which we return as one [`ItemResult`] per input record, in input order, however many calls
//! it took. A record refused only with `UNABLE_TO_LOCK_ROW` (another transaction held a row
//! for more than 10 s) is tried again alone, a bounded number of times, with backoff; other
//! per-record errors (validation rules, required fields, duplicates) are returned as they are.
//!
//! If a call fails as a whole after earlier calls succeeded, the earlier records keep their
//! results and every record of the failed and later chunks gets that call's error as its own,
//! so the caller never loses track of a write that did happen. A failure of the first call is
//! returned as `Err`.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use super::client::{ApiRequest, Client, Target};
use super::error::{ErrorClass, SalesforceError};
use super::soql::is_field_path;
use super::usage::CallKind;
use crate::domain::FailureClass;

/// Records per sObject Collections call.
pub const COLLECTION_LIMIT: usize = 200;

/// One error of a refused record (`statusCode`, `message`, `fields`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ItemError {
    #[serde(rename = "statusCode")]
    pub status_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A record the org refused, with every error it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    pub errors: Vec<ItemError>,
}

impl RecordFailure {
    /// The first error's code (`FIELD_CUSTOM_VALIDATION_EXCEPTION`, ...).
    pub fn code(&self) -> &str {
        self.errors
            .first()
            .map_or("UNKNOWN_ERROR", |e| e.status_code.as_str())
    }

    /// All messages, with the fields they name: `msg [Field1, Field2]; msg2`.
    pub fn message(&self) -> String {
        if self.errors.is_empty() {
            return "the org refused the record without saying why".to_string();
        }
        self.errors
            .iter()
            .map(|e| {
                if e.fields.is_empty() {
                    e.message.clone()
                } else {
                    format!("{} [{}]", e.message, e.fields.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What the record needs, by [`FailureClass::of_code`] of its errors: the most demanding
    /// of them (transient < needs_edit < needs_operator), so a write is retried on a timer only
    /// when every error is transient. No error at all counts as an unknown code.
    pub fn class(&self) -> FailureClass {
        self.errors
            .iter()
            .map(|e| FailureClass::of_code(&e.status_code))
            .max()
            .unwrap_or_else(|| FailureClass::of_code(self.code()))
    }

    /// True when every error is transient (lock contention, server trouble): the same write
    /// can succeed later unchanged.
    pub fn is_retryable(&self) -> bool {
        self.class() == FailureClass::Transient
    }

    /// True when the only trouble is a row lock.
    pub fn is_lock_error(&self) -> bool {
        !self.errors.is_empty()
            && self
                .errors
                .iter()
                .all(|e| e.status_code == "UNABLE_TO_LOCK_ROW")
    }

    fn from_call_error(err: &SalesforceError) -> Self {
        RecordFailure {
            errors: vec![ItemError {
                status_code: err.code.clone(),
                message: format!("the write call failed: {}", err.message),
                fields: Vec::new(),
            }],
        }
    }
}

/// A record written: its id, and for upserts whether it was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub id: String,
    /// Creates: true. Updates and deletes: false. Upserts: as Salesforce says.
    pub created: bool,
}

/// The outcome of one record.
pub type ItemResult = Result<Saved, RecordFailure>;

/// One item of a collections reply.
#[derive(Debug, Deserialize)]
struct ReplyItem {
    #[serde(default)]
    id: Option<String>,
    success: bool,
    #[serde(default)]
    errors: Vec<ItemError>,
    #[serde(default)]
    created: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Upsert,
    Delete,
}

/// Turns the reply items of one call into results, in order. Pure.
fn results_from_reply(op: Op, items: Vec<ReplyItem>, ids: &[Option<String>]) -> Vec<ItemResult> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            if item.success {
                let id = item
                    .id
                    .or_else(|| ids.get(i).cloned().flatten())
                    .unwrap_or_default();
                let created = match op {
                    Op::Create => true,
                    Op::Upsert => item.created.unwrap_or(false),
                    Op::Update | Op::Delete => false,
                };
                Ok(Saved { id, created })
            } else {
                Err(RecordFailure {
                    errors: item.errors,
                })
            }
        })
        .collect()
}

/// Adds `attributes.type` (and `id` for updates) to a record body.
fn body_of(object: &str, id: Option<&str>, fields: &Map<String, Value>) -> Value {
    let mut record = Map::with_capacity(fields.len() + 2);
    record.insert("attributes".into(), json!({ "type": object }));
    if let Some(id) = id {
        record.insert("id".into(), Value::String(id.to_string()));
    }
    for (k, v) in fields {
        if k == "attributes" || (id.is_some() && k.eq_ignore_ascii_case("id")) {
            continue;
        }
        record.insert(k.clone(), v.clone());
    }
    Value::Object(record)
}

fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Client {
    /// Creates records of `object`; one result per record, in order.
    pub async fn create(
        &self,
        object: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<ItemResult>, SalesforceError> {
        self.check_name(object)?;
        let bodies: Vec<(Option<String>, Value)> = records
            .iter()
            .map(|r| (None, body_of(object, None, r)))
            .collect();
        self.write(Op::Create, object, None, bodies).await
    }

    /// Updates records: `(id, fields to set)`; one result per record, in order.
    pub async fn update(
        &self,
        object: &str,
        records: &[(String, Map<String, Value>)],
    ) -> Result<Vec<ItemResult>, SalesforceError> {
        self.check_name(object)?;
        let bodies = records
            .iter()
            .map(|(id, r)| (Some(id.clone()), body_of(object, Some(id), r)))
            .collect();
        self.write(Op::Update, object, None, bodies).await
    }

    /// Upserts records on `external_id_field` (each body holds its value).
    pub async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<ItemResult>, SalesforceError> {
        self.check_name(object)?;
        self.check_name(external_id_field)?;
        let bodies = records
            .iter()
            .map(|r| (None, body_of(object, None, r)))
            .collect();
        self.write(Op::Upsert, object, Some(external_id_field), bodies)
            .await
    }

    /// Deletes records by id (of any object); one result per id, in order.
    pub async fn delete(&self, ids: &[String]) -> Result<Vec<ItemResult>, SalesforceError> {
        if let Some(bad) = ids.iter().find(|id| !is_record_id(id)) {
            return Err(SalesforceError::client(
                self.org_name(),
                "MALFORMED_ID",
                format!("{bad:?} is not a record id"),
                ErrorClass::Permanent,
            ));
        }
        let bodies = ids
            .iter()
            .map(|id| (Some(id.clone()), Value::String(id.clone())))
            .collect();
        self.write(Op::Delete, "", None, bodies).await
    }

    fn check_name(&self, name: &str) -> Result<(), SalesforceError> {
        if is_field_path(name) && !name.contains('.') {
            Ok(())
        } else {
            Err(SalesforceError::client(
                self.org_name(),
                "INVALID_TYPE",
                format!("{name:?} is not an API name"),
                ErrorClass::Permanent,
            ))
        }
    }

    /// Chunks by 200, calls, retries lock-refused records alone, keeps input order.
    async fn write(
        &self,
        op: Op,
        object: &str,
        ext_field: Option<&str>,
        bodies: Vec<(Option<String>, Value)>,
    ) -> Result<Vec<ItemResult>, SalesforceError> {
        let mut results: Vec<ItemResult> = Vec::with_capacity(bodies.len());
        for (chunk_index, chunk) in bodies.chunks(COLLECTION_LIMIT).enumerate() {
            match self
                .write_chunk_with_lock_retries(op, object, ext_field, chunk)
                .await
            {
                Ok(chunk_results) => results.extend(chunk_results),
                Err(err) if chunk_index == 0 => return Err(err),
                Err(err) => {
                    warn!(org = self.org_name(), error = %err, written = results.len(),
                          "a collection call failed after earlier ones succeeded");
                    let failure = RecordFailure::from_call_error(&err);
                    results.extend((results.len()..bodies.len()).map(|_| Err(failure.clone())));
                    return Ok(results);
                }
            }
        }
        Ok(results)
    }

    async fn write_chunk_with_lock_retries(
        &self,
        op: Op,
        object: &str,
        ext_field: Option<&str>,
        chunk: &[(Option<String>, Value)],
    ) -> Result<Vec<ItemResult>, SalesforceError> {
        let mut results = self.write_call(op, object, ext_field, chunk).await?;
        let policy = self.options().retry.clone();
        for round in 1..=policy.lock_retries {
            let locked: Vec<usize> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.as_ref().err().is_some_and(RecordFailure::is_lock_error))
                .map(|(i, _)| i)
                .collect();
            if locked.is_empty() {
                break;
            }
            let delay = policy.jittered_delay(round);
            debug!(
                org = self.org_name(),
                records = locked.len(),
                round,
                ?delay,
                "retrying records refused with UNABLE_TO_LOCK_ROW"
            );
            tokio::time::sleep(delay).await;
            let again: Vec<(Option<String>, Value)> =
                locked.iter().map(|&i| chunk[i].clone()).collect();
            let retried = match self.write_call(op, object, ext_field, &again).await {
                Ok(r) => r,
                // The first results stand; the lock errors are reported as they were.
                Err(err) => {
                    warn!(org = self.org_name(), error = %err, "lock retry call failed");
                    break;
                }
            };
            for (slot, result) in locked.into_iter().zip(retried) {
                results[slot] = result;
            }
        }
        Ok(results)
    }

    /// One sObject Collections call.
    async fn write_call(
        &self,
        op: Op,
        object: &str,
        ext_field: Option<&str>,
        chunk: &[(Option<String>, Value)],
    ) -> Result<Vec<ItemResult>, SalesforceError> {
        let ids: Vec<Option<String>> = chunk.iter().map(|(id, _)| id.clone()).collect();
        let upsert_path;
        let body;
        let req = match op {
            Op::Create | Op::Update | Op::Upsert => {
                body = json!({
                    "allOrNone": false,
                    "records": chunk.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
                });
                let (kind, method, target) = match op {
                    Op::Create => (
                        CallKind::Create,
                        reqwest::Method::POST,
                        Target::Data("composite/sobjects"),
                    ),
                    Op::Update => (
                        CallKind::Update,
                        reqwest::Method::PATCH,
                        Target::Data("composite/sobjects"),
                    ),
                    _ => {
                        upsert_path =
                            format!("composite/sobjects/{object}/{}", ext_field.unwrap_or("Id"));
                        (
                            CallKind::Upsert,
                            reqwest::Method::PATCH,
                            Target::Data(&upsert_path),
                        )
                    }
                };
                ApiRequest {
                    kind,
                    method,
                    target,
                    query: Vec::new(),
                    body: Some(&body),
                    headers: Vec::new(),
                    idempotent: op != Op::Create,
                    text_body: None,
                    accept: "application/json",
                    file_body: None,
                    download: None,
                }
            }
            Op::Delete => {
                let mut req = ApiRequest::get(CallKind::Delete, Target::Data("composite/sobjects"));
                req.method = reqwest::Method::DELETE;
                req.query.push((
                    "ids",
                    ids.iter().flatten().cloned().collect::<Vec<_>>().join(","),
                ));
                req.query.push(("allOrNone", "false".into()));
                req
            }
        };
        let items: Vec<ReplyItem> = self.send_json(&req).await?;
        if items.len() != chunk.len() {
            return Err(SalesforceError::client(
                self.org_name(),
                "BAD_RESPONSE",
                format!(
                    "the collection reply has {} items for {} records",
                    items.len(),
                    chunk.len()
                ),
                ErrorClass::Transient,
            ));
        }
        Ok(results_from_reply(op, items, &ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(json: &str) -> Vec<ReplyItem> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn reply_items_in_order() {
        let reply = items(
            r#"[{"id":"001RM000003oLrHYAU","success":true,"errors":[]},
                {"success":false,"errors":[{"statusCode":"DUPLICATES_DETECTED","message":"Use one of these records?","fields":[]}]},
                {"id":"001RM000003oLrIYAU","success":true,"errors":[],"created":false}]"#,
        );
        let results = results_from_reply(Op::Upsert, reply, &[None, None, None]);
        assert_eq!(
            results[0],
            Ok(Saved {
                id: "001RM000003oLrHYAU".into(),
                created: false
            })
        );
        let failure = results[1].clone().unwrap_err();
        assert_eq!(failure.code(), "DUPLICATES_DETECTED");
        assert_eq!(failure.message(), "Use one of these records?");
        assert!(!failure.is_retryable());
        assert!(results[2].is_ok());
    }

    #[test]
    fn creates_are_created_and_updates_keep_their_id() {
        let reply = items(r#"[{"id":"006A","success":true,"errors":[]}]"#);
        assert!(
            results_from_reply(Op::Create, reply, &[None])[0]
                .as_ref()
                .unwrap()
                .created
        );
        let reply = items(r#"[{"success":true,"errors":[]}]"#);
        let r = results_from_reply(Op::Update, reply, &[Some("006B".into())]);
        assert_eq!(r[0].as_ref().unwrap().id, "006B");
    }

    #[test]
    fn lock_errors_are_retryable() {
        let f = RecordFailure {
            errors: vec![ItemError {
                status_code: "UNABLE_TO_LOCK_ROW".into(),
                message: "unable to obtain exclusive access to this record".into(),
                fields: vec![],
            }],
        };
        assert!(f.is_lock_error());
        assert!(f.is_retryable());
        let f = RecordFailure {
            errors: vec![ItemError {
                status_code: "REQUIRED_FIELD_MISSING".into(),
                message: "Required fields are missing".into(),
                fields: vec!["StageName".into(), "CloseDate".into()],
            }],
        };
        assert!(!f.is_retryable());
        assert_eq!(
            f.message(),
            "Required fields are missing [StageName, CloseDate]"
        );
        assert!(!RecordFailure { errors: vec![] }.is_retryable());
    }

    #[test]
    fn a_record_is_in_the_most_demanding_class_of_its_errors() {
        let error = |code: &str| ItemError {
            status_code: code.into(),
            message: String::new(),
            fields: vec![],
        };
        let of = |codes: &[&str]| {
            RecordFailure {
                errors: codes.iter().map(|c| error(c)).collect(),
            }
            .class()
        };
        assert_eq!(of(&["UNABLE_TO_LOCK_ROW"]), FailureClass::Transient);
        assert_eq!(
            of(&["FIELD_CUSTOM_VALIDATION_EXCEPTION"]),
            FailureClass::NeedsEdit
        );
        assert_eq!(
            of(&["UNABLE_TO_LOCK_ROW", "REQUIRED_FIELD_MISSING"]),
            FailureClass::NeedsEdit
        );
        assert_eq!(
            of(&[
                "STRING_TOO_LONG",
                "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
            ]),
            FailureClass::NeedsOperator
        );
        assert_eq!(of(&[]), FailureClass::NeedsEdit);
    }

    #[test]
    fn bodies_carry_type_and_id() {
        let mut fields = Map::new();
        fields.insert("Name".into(), json!("x"));
        fields.insert("Id".into(), json!("ignored"));
        fields.insert("attributes".into(), json!({"type": "Other"}));
        let body = body_of("Opportunity", Some("006X"), &fields);
        assert_eq!(
            body,
            json!({"attributes": {"type": "Opportunity"}, "id": "006X", "Name": "x"})
        );
        let body = body_of("Account", None, &Map::new());
        assert_eq!(body, json!({"attributes": {"type": "Account"}}));
        assert!(is_record_id("001RM000003oLrHYAU"));
        assert!(!is_record_id("001,002"));
    }
}
