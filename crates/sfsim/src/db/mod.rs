//! One org's data: records of every object, their indexes, and DML with Salesforce's rules
//! (required fields, types, system fields, one timestamp per call, allOrNone). Synchronous and
//! free of I/O: the HTTP layer holds an `OrgDb` behind a lock and speaks JSON to it.
//!
//! Storage: per object, a vector of records addressed by slot (slots never move; a delete is
//! soft, as in Salesforce's recycle bin), a global map from id to (object, slot), an ordered
//! index on (SystemModstamp, slot) and a value index for external-id, unique, idLookup and
//! reference fields. Ids are generated in slot order and sort as strings in that order, so the
//! SystemModstamp index also orders ties by `Id`: the cursor query of orgsync
//! (`WHERE SystemModstamp >= X ... ORDER BY SystemModstamp, Id`) walks the index and stops at
//! its LIMIT instead of scanning and sorting.
//!
//! allOrNone is an undo log: every mutation of a call records how to revert it, and a failed
//! allOrNone call replays the log backwards.
//!
//! Parts: `table` (records and their indexes), `execute` (which rows a SOQL plan selects),
//! `query` (cursors, rendering, retrieve), `dml` (create, update, delete and the undo log),
//! `upsert` (matching by external id), `values` (validating a body into a record's values),
//! `replication` (getDeleted / getUpdated windows), `recycle` (undelete, merge, the recycle-bin
//! purge).

mod dml;
mod execute;
mod query;
mod recycle;
mod replication;
mod table;
#[cfg(test)]
mod test_support;
mod upsert;
mod values;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};

use crate::error::{ApiError, ItemError};
use crate::ids::{self, IdGenerator};
use crate::schema::{FieldType, Schema};
use crate::soql::eval::RecordAccess;
use crate::value::{Value, truncate_millis};

pub use query::QueryCursor;
pub use recycle::{MERGE_MAX_RECORDS, MergeOk, MergeSpec, PurgeOutcome};
pub use replication::{DELETED_WINDOW_DAYS, REPLICATION_ID_LIMIT, UPDATED_WINDOW_DAYS};
pub use table::RowRef;
use table::{Record, Table};

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
    Create {
        object: String,
        fields: Map<String, Json>,
    },
    Update {
        object: Option<String>,
        id: String,
        fields: Map<String, Json>,
    },
    Upsert {
        object: String,
        ext_field: String,
        fields: Map<String, Json>,
    },
    Delete {
        id: String,
    },
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

/// The API version describe URLs use when the caller does not say.
pub const DEFAULT_API_VERSION: &str = "62.0";

/// Distinguishes database instances, so a query cursor of a reset org is refused.
static EPOCH: AtomicU64 = AtomicU64::new(1);
/// A record's values as text, for an outbound notification's `sObject`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordTexts {
    /// The object name, for `xsi:type="sf:Opportunity"`.
    pub object: String,
    /// `Id` first, then the requested fields; `None` is a null value.
    pub fields: Vec<(String, Option<String>)>,
}

/// Everything one org stores.
pub struct OrgDb {
    org_id: String,
    schema: Schema,
    ids: IdGenerator,
    /// Parallel to `schema.objects`.
    tables: Vec<Table>,
    /// 18-character id -> (object, slot).
    locations: HashMap<String, (u32, u32)>,
    epoch: u64,
}

pub(super) fn item(code: &str, message: impl Into<String>, fields: Vec<String>) -> ItemError {
    ItemError::new(code, message, fields)
}
impl OrgDb {
    /// An org with the standard schema (Account, Opportunity, User) and no users or records.
    pub fn new(org_id: &str) -> Self {
        let schema = Schema::standard();
        let tables = schema.objects.iter().map(|_| Table::default()).collect();
        OrgDb {
            org_id: org_id.to_string(),
            ids: IdGenerator::starting_at(org_id, IdGenerator::fresh_start()),
            schema,
            tables,
            locations: HashMap::new(),
            epoch: EPOCH.fetch_add(1, AtomicOrdering::Relaxed),
        }
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The org's objects and fields.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Adds a User record (Username, Name, Email, IsActive) and returns its id (prefix 005).
    /// The user is its own creator; the username doubles as the email address.
    pub fn add_user(&mut self, username: &str, name: &str) -> String {
        if let Some(existing) = self.find_user_any(username) {
            return existing;
        }
        let now = truncate_millis(Utc::now());
        let Some(oi) = self.schema.object_index("User") else {
            return String::new();
        };
        let id = self.ids.next_id(ids::USER_PREFIX);
        let obj = &self.schema.objects[oi];
        let mut values = self.defaults(oi);
        let set = |values: &mut Vec<Value>, name: &str, v: Value| {
            if let Some(fi) = obj.field_index(name) {
                values[fi] = v;
            }
        };
        set(&mut values, "Username", Value::Str(username.to_string()));
        set(&mut values, "Name", Value::Str(name.to_string()));
        set(&mut values, "Email", Value::Str(username.to_string()));
        set(&mut values, "IsActive", Value::Bool(true));
        let sys = obj.system;
        values[sys.id] = Value::Str(id.clone());
        values[sys.created_by_id] = Value::Str(id.clone());
        values[sys.last_modified_by_id] = Value::Str(id.clone());
        for f in [
            sys.created_date,
            sys.last_modified_date,
            sys.system_modstamp,
        ] {
            values[f] = Value::DateTime(now);
        }
        let mut undo = Vec::new();
        self.push_record(
            oi,
            Record {
                values,
                deleted: false,
            },
            &mut undo,
        );
        id
    }

    /// The id of a user by username, active or not.
    fn find_user_any(&self, username: &str) -> Option<String> {
        let oi = self.schema.object_index("User")?;
        let obj = &self.schema.objects[oi];
        let fi = obj.field_index("Username")?;
        let slot = *self.tables[oi]
            .lookup(fi, &Value::Str(username.to_string()))
            .first()?;
        self.tables[oi].records[slot as usize].values[obj.system.id]
            .as_str()
            .map(str::to_string)
    }

    /// Empties the org: every record but the users is gone, custom fields are removed, query
    /// cursors become invalid. Users keep their ids and the id counter keeps running, so no
    /// id is ever handed out twice.
    pub fn reset(&mut self) {
        let schema = Schema::standard();
        let users: Vec<Record> = match self.schema.object_index("User") {
            Some(oi) => std::mem::take(&mut self.tables[oi].records),
            None => Vec::new(),
        };
        self.tables = schema.objects.iter().map(|_| Table::default()).collect();
        self.locations.clear();
        self.schema = schema;
        self.epoch = EPOCH.fetch_add(1, AtomicOrdering::Relaxed);
        if let Some(oi) = self.schema.object_index("User") {
            let len = self.schema.objects[oi].fields.len();
            let mut ignored = Vec::new();
            for mut rec in users {
                rec.values.resize(len, Value::Null);
                self.push_record(oi, rec, &mut ignored);
            }
        }
    }

    /// The user id of an active username (case-insensitive, as Salesforce logins are).
    pub fn find_user(&self, username: &str) -> Option<String> {
        let oi = self.schema.object_index("User")?;
        let obj = &self.schema.objects[oi];
        let fi = obj.field_index("Username")?;
        let active = obj.field_index("IsActive")?;
        let table = &self.tables[oi];
        table
            .lookup(fi, &Value::Str(username.to_string()))
            .into_iter()
            .map(|s| &table.records[s as usize])
            .find(|r| r.values.get(active) == Some(&Value::Bool(true)))
            .and_then(|r| r.values[obj.system.id].as_str().map(str::to_string))
    }

    /// sobjects/{object}/describe in Salesforce's shape (name, keyPrefix, fields[] with name,
    /// type, length, nillable, createable, updateable, filterable, externalId, unique,
    /// referenceTo, relationshipName, picklistValues, defaultedOnCreate, custom, label).
    pub fn describe(&self, object: &str) -> Result<Json, ApiError> {
        self.describe_version(object, DEFAULT_API_VERSION)
    }

    /// [`OrgDb::describe`] with the URLs under the caller's API version.
    pub fn describe_version(&self, object: &str, api_version: &str) -> Result<Json, ApiError> {
        let obj = self.schema.object(object).ok_or_else(ApiError::not_found)?;
        Ok(obj.describe(api_version, self.schema.child_relationships(&obj.name)))
    }

    /// GET sobjects: {"encoding","maxBatchSize","sobjects":[...]}.
    pub fn describe_global(&self) -> Json {
        self.describe_global_version(DEFAULT_API_VERSION)
    }

    /// [`OrgDb::describe_global`] with the URLs under the caller's API version.
    pub fn describe_global_version(&self, api_version: &str) -> Json {
        let sobjects: Vec<Json> = self
            .schema
            .objects
            .iter()
            .map(|o| o.global_entry(api_version))
            .collect();
        json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})
    }

    /// Adds a custom object (see [`Schema::add_object`]) with an empty table. Returns its key
    /// prefix.
    pub fn add_object(&mut self, spec: &Map<String, Json>) -> Result<String, ApiError> {
        let oi = self.schema.add_object(spec)?;
        self.tables
            .resize_with(self.schema.objects.len(), Table::default);
        Ok(self.schema.objects[oi].key_prefix.clone())
    }

    /// Adds a custom field (name ends in `__c`) from a spec like
    /// `{"object":"Opportunity","name":"Ext_Id__c","type":"string","externalId":true,"unique":true}`.
    pub fn add_field(&mut self, spec: &Json) -> Result<(), ApiError> {
        let (oi, fi) = self.schema.add_field(spec)?;
        let default = match self.schema.objects[oi].fields[fi].field_type {
            FieldType::Boolean => Value::Bool(false),
            _ => Value::Null,
        };
        let len = self.schema.objects[oi].fields.len();
        for rec in &mut self.tables[oi].records {
            rec.values.resize(len, Value::Null);
            rec.values[fi] = default.clone();
        }
        Ok(())
    }

    /// The current field values of a record, for an outbound notification's sObject: `Id`
    /// first, then the requested fields that exist, under their canonical names.
    pub fn record_fields(&self, id: &str, fields: &[String]) -> Option<Map<String, Json>> {
        let id18 = ids::to_18(id).ok()?;
        let (o, slot) = *self.locations.get(&id18)?;
        let obj = &self.schema.objects[o as usize];
        let rec = &self.tables[o as usize].records[slot as usize];
        let mut m = Map::new();
        m.insert("Id".into(), Json::String(id18));
        for f in fields {
            if let Some(fi) = obj.field_index(f) {
                m.insert(
                    obj.fields[fi].name.clone(),
                    rec.values.get(fi).unwrap_or(&Value::Null).to_json(),
                );
            }
        }
        Some(m)
    }

    /// [`OrgDb::record_fields`] as text for a SOAP notification: `Id` first, then each
    /// requested field that exists with its value as SOAP writes it (`50000.0`, `true`,
    /// `2024-03-10T10:00:00.000Z`), `None` for null (`xsi:nil`).
    pub fn record_field_texts(&self, id: &str, fields: &[String]) -> Option<RecordTexts> {
        let id18 = ids::to_18(id).ok()?;
        let (o, slot) = *self.locations.get(&id18)?;
        let obj = &self.schema.objects[o as usize];
        let rec = &self.tables[o as usize].records[slot as usize];
        let mut out = vec![("Id".to_string(), Some(id18))];
        for f in fields {
            if let Some(fi) = obj.field_index(f)
                && fi != obj.system.id
            {
                let text = rec.values.get(fi).and_then(Value::to_text);
                out.push((obj.fields[fi].name.clone(), text));
            }
        }
        Some(RecordTexts {
            object: obj.name.clone(),
            fields: out,
        })
    }

    /// Number of live records of an object (for stats and tests).
    pub fn count(&self, object: &str) -> usize {
        self.schema
            .object_index(object)
            .map(|oi| self.tables[oi].live)
            .unwrap_or(0)
    }

    /// The object name of an existing record's id (deleted records included).
    pub fn object_of(&self, id: &str) -> Option<&str> {
        let id18 = ids::to_18(id).ok()?;
        let (o, _) = self.locations.get(&id18)?;
        Some(self.schema.objects[*o as usize].name.as_str())
    }
}

impl RecordAccess for OrgDb {
    type Row = RowRef;

    fn value(&self, row: RowRef, field: usize) -> &Value {
        static NULL: Value = Value::Null;
        self.tables
            .get(row.object as usize)
            .and_then(|t| t.records.get(row.slot as usize))
            .and_then(|r| r.values.get(field))
            .unwrap_or(&NULL)
    }

    fn children(&self, row: RowRef, object: usize, ref_field: usize) -> Vec<RowRef> {
        let Some(parent) = self.schema.objects.get(row.object as usize) else {
            return Vec::new();
        };
        let id = self.value(row, parent.system.id).clone();
        let Some(table) = self.tables.get(object) else {
            return Vec::new();
        };
        // Reference fields have a value index (live rows), in slot = Id order.
        let mut slots = table.lookup(ref_field, &id);
        slots.sort_unstable();
        slots
            .into_iter()
            .map(|slot| RowRef {
                object: object as u32,
                slot,
            })
            .collect()
    }

    fn parent(&self, row: RowRef, ref_field: usize, object: usize) -> Option<RowRef> {
        let id = self.value(row, ref_field).as_str()?;
        let (o, slot) = *self.locations.get(id)?;
        if o as usize != object || self.tables[object].records[slot as usize].deleted {
            return None;
        }
        Some(RowRef { object: o, slot })
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::*;
    use serde_json::json;

    #[test]
    fn users_are_records_and_can_be_found() {
        let f = Fixture::new();
        assert!(f.user.starts_with("005") && f.user.len() == 18);
        assert_eq!(f.db.find_user("INTEGRATION@a.sim"), Some(f.user.clone()));
        assert_eq!(f.db.find_user("nobody@a.sim"), None);
        assert_eq!(f.db.count("User"), 2);
        let rows = f.q("SELECT Username, Name FROM User ORDER BY Username");
        assert_eq!(rows[0]["Username"], "human@a.sim");
        assert_eq!(f.db.org_id(), ORG);
    }

    #[test]
    fn the_database_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<OrgDb>();
        assert_send_sync::<QueryCursor>();
    }

    #[test]
    fn reset_keeps_users_and_never_reuses_ids() {
        let mut f = Fixture::new();
        assert_eq!(f.db.add_user("Integration@a.sim", "again"), f.user);
        f.db.add_field(&json!({"object":"Account","name":"Code__c"}))
            .expect("field");
        let before = f.create_ok(
            "Account",
            json!({"Name": "Acme", "Code__c": "x"}),
            "2024-03-10T10:00:00Z",
        );
        let cursor =
            f.db.query_cursor("SELECT Id FROM Account", false, t("2024-03-10T12:00:00Z"))
                .expect("cursor");
        f.db.reset();
        assert_eq!(f.db.count("Account"), 0);
        assert_eq!(f.db.count("User"), 2);
        assert_eq!(f.db.find_user("integration@a.sim"), Some(f.user.clone()));
        assert!(f.db.render_rows(&cursor, 0..1, "62.0").is_err());
        assert_eq!(
            f.q_err("SELECT Code__c FROM Account").error_code,
            "INVALID_FIELD"
        );
        let after = f.create_ok("Account", json!({"Name": "Acme"}), "2024-03-10T10:00:00Z");
        assert!(after > before);
        assert_eq!(
            f.q("SELECT Name FROM User WHERE Username = 'human@a.sim'")
                .len(),
            1
        );
    }

    #[test]
    fn notification_texts_use_soap_formats() {
        let mut f = Fixture::new();
        let id = f.create_ok("Opportunity", json!({"Name": "n", "StageName": "Closed Won", "CloseDate": "2024-01-02", "Amount": 50000}), "2024-03-10T10:00:00.5Z");
        let RecordTexts {
            object,
            fields: texts,
        } =
            f.db.record_field_texts(
                &id,
                &[
                    "amount".into(),
                    "IsWon".into(),
                    "SystemModstamp".into(),
                    "Description".into(),
                    "CloseDate".into(),
                ],
            )
            .expect("texts");
        assert_eq!(object, "Opportunity");
        let get = |n: &str| {
            texts
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .expect("field")
        };
        assert_eq!(get("Id"), Some(id.clone()));
        assert_eq!(get("Amount").as_deref(), Some("50000.0"));
        assert_eq!(get("IsWon").as_deref(), Some("true"));
        assert_eq!(
            get("SystemModstamp").as_deref(),
            Some("2024-03-10T10:00:00.500Z")
        );
        assert_eq!(get("CloseDate").as_deref(), Some("2024-01-02"));
        assert_eq!(get("Description"), None);
    }

    #[test]
    fn describe_and_global_describe() {
        let f = Fixture::new();
        let d = f.db.describe("opportunity").expect("describe");
        assert_eq!(d["name"], "Opportunity");
        let names: Vec<&str> = d["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .filter_map(|x| x["name"].as_str())
            .collect();
        for n in [
            "Id",
            "Name",
            "StageName",
            "CloseDate",
            "Amount",
            "AccountId",
            "SystemModstamp",
            "LastModifiedById",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        assert_eq!(f.db.describe("Nope").expect_err("404").status, 404);
        let g = f.db.describe_global();
        assert_eq!(g["maxBatchSize"], 200);
        let global: Vec<&str> = g["sobjects"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            global,
            ["Account", "Opportunity", "User", "Contact", "Task"]
        );
        assert_eq!(
            f.db.describe_version("Account", "59.0").expect("d")["urls"]["sobject"],
            "/services/data/v59.0/sobjects/Account"
        );
    }

    #[test]
    fn added_boolean_fields_default_to_false_on_existing_records() {
        let mut f = Fixture::new();
        f.create_ok("Account", json!({"Name": "Acme"}), "2024-03-10T10:00:00Z");
        f.db.add_field(&json!({"object":"Account","name":"Vip__c","type":"boolean"}))
            .expect("field");
        assert_eq!(f.q("SELECT Vip__c FROM Account")[0]["Vip__c"], false);
        assert_eq!(f.q("SELECT Id FROM Account WHERE vip__c = false").len(), 1);
    }
}
