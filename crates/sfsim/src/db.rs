//! One org's data: records of every object, their indexes, and DML with Salesforce's rules
//! (required fields, types, system fields, one timestamp per call, allOrNone). Synchronous and
//! free of I/O: the HTTP layer holds an `OrgDb` behind a lock and speaks JSON to it.
//!
//! OWNER: the data-layer helper. The signatures below are the contract with `server/`; the
//! bodies are to be written. Keep the signatures (add, do not change) unless both sides agree.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use crate::error::{ApiError, ItemError};

/// Who writes, when, and which failures the fault injector wants.
#[derive(Debug, Clone)]
pub struct DmlContext {
    /// The user of the session: becomes CreatedById / LastModifiedById.
    pub user_id: String,
    /// The one timestamp of this call (server clock + skew), shared by every record it writes.
    pub now: DateTime<Utc>,
    /// Records whose Name contains this marker fail with FIELD_CUSTOM_VALIDATION_EXCEPTION.
    pub reject_marker: Option<String>,
    /// Items (by index in the call) that fail with the given error, e.g. UNABLE_TO_LOCK_ROW.
    pub forced_errors: Vec<(usize, ItemError)>,
}

/// One record operation of a call. `fields` are the JSON body's fields without `attributes`
/// (and, for update, without `id`).
#[derive(Debug, Clone)]
pub enum DmlOp {
    Create { object: String, fields: Map<String, Json> },
    Update { object: Option<String>, id: String, fields: Map<String, Json> },
    Upsert { object: String, ext_field: String, fields: Map<String, Json> },
    Delete { id: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DmlOk {
    pub id: String,
    /// `Some` for upserts: whether a record was created.
    pub created: Option<bool>,
}

/// Per item: success, or the id (when known) and its errors.
pub type DmlResult = Result<DmlOk, (Option<String>, Vec<ItemError>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// A committed change, for Outbound Messaging.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub object: String,
    pub id: String,
    pub kind: ChangeKind,
}

/// Everything one org stores.
pub struct OrgDb {}

impl OrgDb {
    /// An org with the standard schema (Account, Opportunity, User) and no users or records.
    pub fn new(org_id: &str) -> Self {
        let _ = org_id;
        todo!()
    }
    pub fn org_id(&self) -> &str {
        todo!()
    }
    /// Adds a User record (Username, Name, Email, IsActive) and returns its id (prefix 005).
    pub fn add_user(&mut self, username: &str, name: &str) -> String {
        let _ = (username, name);
        todo!()
    }
    /// The user id of an active username.
    pub fn find_user(&self, username: &str) -> Option<String> {
        let _ = username;
        todo!()
    }
    /// Runs a SOQL query. `include_deleted` for queryAll. Records come back in the REST
    /// shape (`attributes` with `type` and `url` under `/services/data/v{api_version}/`,
    /// parent relationships nested or `null`, datetimes as `2013-05-20T20:49:32.000+0000`).
    pub fn query(
        &self,
        soql: &str,
        include_deleted: bool,
        api_version: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Json>, ApiError> {
        let _ = (soql, include_deleted, api_version, now);
        todo!()
    }
    /// GET sobjects/{object}/{id}[?fields=a,b]: 404 NOT_FOUND when absent or deleted.
    pub fn retrieve(
        &self,
        object: &str,
        id: &str,
        fields: Option<&[String]>,
        api_version: &str,
    ) -> Result<Json, ApiError> {
        let _ = (object, id, fields, api_version);
        todo!()
    }
    /// Applies the operations of one call in order. With `all_or_none`, any failure rolls the
    /// whole call back and the would-be successes report ALL_OR_NONE_OPERATION_ROLLED_BACK.
    /// Returns one result per op, and the committed changes.
    pub fn apply(
        &mut self,
        ops: Vec<DmlOp>,
        all_or_none: bool,
        ctx: &DmlContext,
    ) -> (Vec<DmlResult>, Vec<Change>) {
        let _ = (ops, all_or_none, ctx);
        todo!()
    }
    /// sobjects/{object}/describe in Salesforce's shape (name, keyPrefix, fields[] with name,
    /// type, length, nillable, createable, updateable, filterable, externalId, unique,
    /// referenceTo, relationshipName, picklistValues, defaultedOnCreate, custom, label).
    pub fn describe(&self, object: &str) -> Result<Json, ApiError> {
        let _ = object;
        todo!()
    }
    /// GET sobjects: {"encoding","maxBatchSize","sobjects":[...]}.
    pub fn describe_global(&self) -> Json {
        todo!()
    }
    /// Adds a custom field (name ends in `__c`) from a spec like
    /// `{"object":"Opportunity","name":"Ext_Id__c","type":"string","externalId":true,"unique":true}`.
    pub fn add_field(&mut self, spec: &Json) -> Result<(), ApiError> {
        let _ = spec;
        todo!()
    }
    /// sobjects/{object}/deleted/?start&end (15-day window, INVALID_REPLICATION_DATE).
    pub fn deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let _ = (object, start, end, now);
        todo!()
    }
    /// sobjects/{object}/updated/?start&end (30-day window, by SystemModstamp).
    pub fn updated(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let _ = (object, start, end, now);
        todo!()
    }
    /// The current field values of a record, for an outbound notification's sObject.
    pub fn record_fields(&self, id: &str, fields: &[String]) -> Option<Map<String, Json>> {
        let _ = (id, fields);
        todo!()
    }
    /// Number of live records of an object (for stats and tests).
    pub fn count(&self, object: &str) -> usize {
        let _ = object;
        todo!()
    }
}
