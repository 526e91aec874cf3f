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

use std::collections::{BTreeSet, HashMap};
use std::ops::{Bound, Range};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Map, Value as Json, json};

use crate::error::{ApiError, ItemError};
use crate::ids::{self, IdGenerator};
use crate::schema::{FieldType, OPPORTUNITY_STAGES, ObjectDef, Schema};
use crate::soql::ast::CmpOp;
use crate::soql::eval::{RecordAccess, compare_rows, matches, render};
use crate::soql::plan::{Filter, Operand, Plan, unsupported_object};
use crate::value::{self, Value, format_datetime, index_key, truncate_millis};

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
/// getDeleted reaches back 15 days, getUpdated 30 (reference §6).
pub const DELETED_WINDOW_DAYS: i64 = 15;
pub const UPDATED_WINDOW_DAYS: i64 = 30;
/// getDeleted / getUpdated return at most this many ids.
pub const REPLICATION_ID_LIMIT: usize = 600_000;

/// Distinguishes database instances, so a query cursor of a reset org is refused.
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// One stored record. Its values are indexed by field position (shorter than the field list
/// when fields were added later: missing values are null).
#[derive(Debug, Clone, PartialEq)]
struct Record {
    values: Vec<Value>,
    deleted: bool,
}

/// The records of one object and their indexes.
#[derive(Debug, Default)]
struct Table {
    records: Vec<Record>,
    /// (SystemModstamp in ms, slot) of every record, deleted ones included (queryAll).
    by_modstamp: BTreeSet<(i64, u32)>,
    /// Field position -> lowercase value -> slots of live records holding it.
    lookups: HashMap<usize, HashMap<String, BTreeSet<u32>>>,
    /// Soft deletions in the order they happened: (slot, deletion time).
    deletions: Vec<(u32, DateTime<Utc>)>,
    /// Records not deleted.
    live: usize,
}

/// A handle on one record, for the SOQL evaluator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    object: u32,
    slot: u32,
}

/// How to revert one mutation of an allOrNone call.
#[derive(Debug)]
enum Undo {
    Created {
        object: usize,
    },
    Replaced {
        object: usize,
        slot: u32,
        old: Record,
    },
    DeletionLogged {
        object: usize,
    },
}

/// The matching rows of a query, to be rendered page by page (`nextRecordsUrl`). Rendering
/// reads the records' current values; a cursor of an org that was reset since is refused.
#[derive(Debug, Clone)]
pub struct QueryCursor {
    epoch: u64,
    plan: Arc<Plan>,
    rows: Vec<u32>,
    total_size: usize,
}

impl QueryCursor {
    /// `totalSize` of the reply: the number of rows (or the count of `SELECT COUNT()`).
    pub fn total_size(&self) -> usize {
        self.total_size
    }
    /// Number of rows to render (0 for `SELECT COUNT()`).
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Whether this is a `SELECT COUNT()` query.
    pub fn is_count(&self) -> bool {
        self.plan.count_only
    }
}

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

fn item(code: &str, message: impl Into<String>, fields: Vec<String>) -> ItemError {
    ItemError::new(code, message, fields)
}

fn truncate_seconds(d: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(d.timestamp(), 0).single().unwrap_or(d)
}

fn modstamp_key(obj: &ObjectDef, rec: &Record) -> i64 {
    rec.values
        .get(obj.system.system_modstamp)
        .and_then(Value::as_datetime)
        .map(|d| d.timestamp_millis())
        .unwrap_or(i64::MIN)
}

/// Fields with a value index: upsert keys, unique fields, Name (indexed in Salesforce too:
/// clients match records by name) and lookups to parents (`AccountId IN (...)`, the
/// account -> opportunities cascade). The audit lookups (CreatedById, LastModifiedById) are
/// left out: nearly every record shares their few values.
fn indexed_fields(obj: &ObjectDef) -> impl Iterator<Item = usize> + '_ {
    let audit = [obj.system.created_by_id, obj.system.last_modified_by_id];
    obj.fields
        .iter()
        .enumerate()
        .filter(move |(i, f)| {
            f.is_indexed()
                || f.name_field
                || (f.field_type == FieldType::Reference && !audit.contains(i))
        })
        .map(|(i, _)| i)
}

impl Table {
    fn index(&mut self, obj: &ObjectDef, slot: u32) {
        let rec = &self.records[slot as usize];
        self.by_modstamp.insert((modstamp_key(obj, rec), slot));
        if rec.deleted {
            return;
        }
        self.live += 1;
        for fi in indexed_fields(obj) {
            if let Some(key) = rec.values.get(fi).and_then(index_key) {
                self.lookups
                    .entry(fi)
                    .or_default()
                    .entry(key)
                    .or_default()
                    .insert(slot);
            }
        }
    }

    fn unindex(&mut self, obj: &ObjectDef, slot: u32) {
        let rec = &self.records[slot as usize];
        self.by_modstamp.remove(&(modstamp_key(obj, rec), slot));
        if rec.deleted {
            return;
        }
        self.live -= 1;
        for fi in indexed_fields(obj) {
            if let Some(key) = rec.values.get(fi).and_then(index_key)
                && let Some(map) = self.lookups.get_mut(&fi)
                && let Some(slots) = map.get_mut(&key)
            {
                slots.remove(&slot);
                if slots.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    /// Live slots whose field `fi` holds `v` (case-insensitively for text).
    fn lookup(&self, fi: usize, v: &Value) -> Vec<u32> {
        index_key(v)
            .and_then(|k| self.lookups.get(&fi).and_then(|m| m.get(&k)))
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// A failed item: the record id when known, and its errors.
type ItemFailure = (Option<String>, Vec<ItemError>);

/// Per-item outcome inside `apply`.
type ItemOutcome = Result<(DmlOk, Vec<Change>), ItemFailure>;

/// Whether a write is a create or an update of an existing record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    Create,
    Update,
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

    /// Runs a SOQL query. `include_deleted` for queryAll. Records come back in the REST
    /// shape (`attributes` with `type` and `url` under `/services/data/v{api_version}/`,
    /// parent relationships nested or `null`, datetimes as `2013-05-20T20:49:32.000+0000`).
    /// For `SELECT COUNT()` the list is empty: use [`OrgDb::query_cursor`] for `totalSize`.
    pub fn query(
        &self,
        soql: &str,
        include_deleted: bool,
        api_version: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Json>, ApiError> {
        let cursor = self.query_cursor(soql, include_deleted, now)?;
        self.render_rows(&cursor, 0..cursor.len(), api_version)
    }

    /// Runs a SOQL query and keeps the matching rows for paging: render them a batch at a
    /// time with [`OrgDb::render_rows`]. Cheap even for 100k rows (no JSON is built here).
    pub fn query_cursor(
        &self,
        soql: &str,
        include_deleted: bool,
        now: DateTime<Utc>,
    ) -> Result<QueryCursor, ApiError> {
        let parsed = crate::soql::parse(soql)?;
        let plan = crate::soql::plan(&parsed, &self.schema, now)?;
        let mut rows = self.execute(&plan, include_deleted);
        let total_size = rows.len();
        if plan.count_only {
            rows.clear();
        }
        Ok(QueryCursor {
            epoch: self.epoch,
            plan: Arc::new(plan),
            rows,
            total_size,
        })
    }

    /// Renders the rows `range` of a cursor in the REST shape (the range is clipped to the
    /// cursor). A cursor from before a reset gets `INVALID_QUERY_LOCATOR`.
    pub fn render_rows(
        &self,
        cursor: &QueryCursor,
        range: Range<usize>,
        api_version: &str,
    ) -> Result<Vec<Json>, ApiError> {
        if cursor.epoch != self.epoch {
            return Err(ApiError::new(
                400,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            ));
        }
        let end = range.end.min(cursor.rows.len());
        let start = range.start.min(end);
        let object = cursor.plan.object as u32;
        // Sized up front: growing a large vector after freeing the previous page's many small
        // values made glibc consolidate its free lists on every page.
        let mut out = Vec::with_capacity(end - start);
        out.extend(
            cursor.rows[start..end]
                .iter()
                .filter(|slot| self.tables[object as usize].records.len() > **slot as usize)
                .map(|slot| {
                    render(
                        self,
                        &self.schema,
                        &cursor.plan,
                        RowRef {
                            object,
                            slot: *slot,
                        },
                        api_version,
                    )
                }),
        );
        Ok(out)
    }

    /// GET sobjects/{object}/{id}[?fields=a,b]: 404 NOT_FOUND when absent or deleted.
    pub fn retrieve(
        &self,
        object: &str,
        id: &str,
        fields: Option<&[String]>,
        api_version: &str,
    ) -> Result<Json, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let id18 = ids::to_18(id).map_err(|_| ApiError::not_found())?;
        let (o, slot) = *self.locations.get(&id18).ok_or_else(ApiError::not_found)?;
        let rec = &self.tables[o as usize].records[slot as usize];
        if o as usize != oi || rec.deleted {
            return Err(ApiError::not_found());
        }
        let obj = &self.schema.objects[oi];
        let positions: Vec<usize> = match fields {
            None => (0..obj.fields.len()).collect(),
            Some(list) => list
                .iter()
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
                .map(|f| {
                    obj.field_index(f).ok_or_else(|| {
                        ApiError::invalid_field(format!(
                            "No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                            obj.name
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut m = Map::new();
        m.insert(
            "attributes".into(),
            crate::soql::eval::attributes(&obj.name, &id18, api_version),
        );
        for fi in positions {
            m.insert(
                obj.fields[fi].name.clone(),
                rec.values.get(fi).unwrap_or(&Value::Null).to_json(),
            );
        }
        Ok(Json::Object(m))
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
        let now = truncate_millis(ctx.now);
        let duplicates = duplicate_upsert_keys(&ops);
        let mut undo = Vec::new();
        let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            let known_id = match &op {
                DmlOp::Update { id, .. } | DmlOp::Delete { id } => {
                    Some(ids::to_18(id).unwrap_or_else(|_| id.clone()))
                }
                _ => None,
            };
            let forced: Vec<ItemError> = ctx
                .forced_errors
                .iter()
                .filter(|(at, _)| *at == i)
                .map(|(_, e)| e.clone())
                .collect();
            let outcome = if !forced.is_empty() {
                Err((known_id, forced))
            } else if let Some(e) = duplicates.get(&i) {
                Err((None, vec![e.clone()]))
            } else {
                match op {
                    DmlOp::Create { object, fields } => {
                        self.create(&object, &fields, ctx, now, &mut undo)
                    }
                    DmlOp::Update { object, id, fields } => {
                        self.update(object.as_deref(), &id, &fields, ctx, now, &mut undo)
                    }
                    DmlOp::Upsert {
                        object,
                        ext_field,
                        fields,
                    } => self.upsert(&object, &ext_field, &fields, ctx, now, &mut undo),
                    DmlOp::Delete { id } => self.delete(&id, ctx, now, &mut undo),
                }
            };
            outcomes.push(outcome);
        }
        let failed = outcomes.iter().any(Result::is_err);
        if all_or_none && failed {
            self.rollback(undo);
            let rolled_back = || {
                vec![item(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    vec![],
                )]
            };
            let results = outcomes
                .into_iter()
                .map(|o| match o {
                    Ok((ok, changes)) => {
                        // A rolled-back create leaves no record, so no id to report.
                        let created = changes
                            .first()
                            .is_some_and(|c| c.kind == ChangeKind::Created);
                        let id = if created { None } else { Some(ok.id) };
                        Err((id, rolled_back()))
                    }
                    Err(e) => Err(e),
                })
                .collect();
            return (results, Vec::new());
        }
        let mut changes = Vec::new();
        let results = outcomes
            .into_iter()
            .map(|o| {
                o.map(|(ok, mut c)| {
                    changes.append(&mut c);
                    ok
                })
            })
            .collect();
        (results, changes)
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

    /// sobjects/{object}/deleted/?start&end (15-day window, INVALID_REPLICATION_DATE).
    pub fn deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let window = replication_window(start, end, now, DELETED_WINDOW_DAYS)?;
        let table = &self.tables[oi];
        let id_field = self.schema.objects[oi].system.id;
        let mut out = Vec::new();
        for (slot, when) in &table.deletions {
            let rec = &table.records[*slot as usize];
            if rec.deleted && *when >= window.start && *when < window.latest {
                let id = rec.values[id_field].as_str().unwrap_or_default();
                out.push(json!({"id": id, "deletedDate": format_datetime(*when)}));
                if out.len() > REPLICATION_ID_LIMIT {
                    return Err(exceeded_id_limit());
                }
            }
        }
        Ok(json!({
            "deletedRecords": out,
            "earliestDateAvailable": format_datetime(window.earliest),
            "latestDateCovered": format_datetime(window.latest),
        }))
    }

    /// sobjects/{object}/updated/?start&end (30-day window, by SystemModstamp).
    pub fn updated(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let window = replication_window(start, end, now, UPDATED_WINDOW_DAYS)?;
        let table = &self.tables[oi];
        let id_field = self.schema.objects[oi].system.id;
        let lo = (window.start.timestamp_millis(), 0u32);
        let hi = (window.latest.timestamp_millis(), 0u32);
        let mut ids_out = Vec::new();
        if lo < hi {
            for (_, slot) in table.by_modstamp.range(lo..hi) {
                let rec = &table.records[*slot as usize];
                if !rec.deleted {
                    ids_out.push(Json::String(
                        rec.values[id_field]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ));
                    if ids_out.len() > REPLICATION_ID_LIMIT {
                        return Err(exceeded_id_limit());
                    }
                }
            }
        }
        Ok(json!({"ids": ids_out, "latestDateCovered": format_datetime(window.latest)}))
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

    /// Ids of the live records of `object` whose external-id (or idLookup) field holds
    /// `value`: what an upsert would match. For the single-record upsert's 300 reply.
    pub fn find_by_external_id(
        &self,
        object: &str,
        ext_field: &str,
        value: &Json,
    ) -> Result<Vec<String>, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let obj = &self.schema.objects[oi];
        let fi = self
            .upsert_field(oi, ext_field)
            .map_err(|e| ApiError::new(400, &e.status_code, e.message))?;
        let v = value::from_json(&obj.fields[fi], value)
            .map_err(|e| ApiError::new(400, &e.status_code, e.message))?;
        Ok(self
            .matching_slots(oi, fi, &v)
            .into_iter()
            .filter_map(|s| {
                self.tables[oi].records[s as usize].values[obj.system.id]
                    .as_str()
                    .map(str::to_string)
            })
            .collect())
    }

    // ---- query execution -------------------------------------------------------------

    /// The slots of the rows a plan selects, in order, after OFFSET and LIMIT.
    fn execute(&self, plan: &Plan, include_deleted: bool) -> Vec<u32> {
        let oi = plan.object;
        let table = &self.tables[oi];
        let obj = &self.schema.objects[oi];
        let keep = |slot: u32| -> bool {
            let Some(rec) = table.records.get(slot as usize) else {
                return false;
            };
            (include_deleted || !rec.deleted)
                && plan.filter.as_ref().is_none_or(|f| {
                    matches(
                        self,
                        RowRef {
                            object: oi as u32,
                            slot,
                        },
                        f,
                    )
                })
        };
        let conjuncts: Vec<&Filter> = match &plan.filter {
            Some(Filter::And(terms)) => terms.iter().collect(),
            Some(f) => vec![f],
            None => Vec::new(),
        };
        // Id fast path: `Id = '...'` or `Id IN (...)` at the top level.
        if let Some(ids) = id_candidates(&conjuncts, obj.system.id) {
            let mut slots: Vec<u32> = ids
                .iter()
                .filter_map(|id| self.locations.get(id))
                .filter(|(o, _)| *o as usize == oi)
                .map(|(_, s)| *s)
                .collect();
            slots.sort_unstable();
            slots.dedup();
            slots.retain(|s| keep(*s));
            return self.finish(plan, slots);
        }
        // Value-index fast path (`Name IN (...)`, an external id, a lookup): live rows only,
        // so not for queryAll.
        if !include_deleted && let Some((field, values)) = indexed_candidates(&conjuncts, obj) {
            let mut slots: Vec<u32> = values.iter().flat_map(|v| table.lookup(field, v)).collect();
            slots.sort_unstable();
            slots.dedup();
            slots.retain(|s| keep(*s));
            return self.finish(plan, slots);
        }
        let bounds = plan
            .filter
            .as_ref()
            .and_then(|f| modstamp_bounds(f, obj.system.system_modstamp));
        let range = match bounds {
            Some((lo, hi)) if lo >= hi => return Vec::new(),
            Some((lo, hi)) => (
                Bound::Included((lo, 0u32)),
                if hi == i64::MAX {
                    Bound::Unbounded
                } else {
                    Bound::Excluded((hi, 0u32))
                },
            ),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        if let Some(descending) = index_order(plan, obj) {
            // Walk the (SystemModstamp, Id) index and stop once OFFSET + LIMIT rows matched.
            let want = plan.limit.map(|l| plan.offset.saturating_add(l));
            let mut out = Vec::new();
            let mut visit = |slot: u32| {
                if keep(slot) {
                    out.push(slot);
                }
                want.is_some_and(|w| out.len() >= w)
            };
            let iter = table.by_modstamp.range(range);
            if descending {
                for (_, slot) in iter.rev() {
                    if visit(*slot) {
                        break;
                    }
                }
            } else {
                for (_, slot) in iter {
                    if visit(*slot) {
                        break;
                    }
                }
            }
            return page(out, plan.offset, plan.limit);
        }
        let mut slots: Vec<u32> = if bounds.is_some() {
            let mut s: Vec<u32> = table.by_modstamp.range(range).map(|(_, s)| *s).collect();
            s.sort_unstable();
            s
        } else {
            (0..table.records.len() as u32).collect()
        };
        slots.retain(|s| keep(*s));
        self.finish(plan, slots)
    }

    /// The reference the indexed paths are tested against: every row, filtered and sorted.
    #[cfg(test)]
    fn execute_by_scan(&self, plan: &Plan, include_deleted: bool) -> Vec<u32> {
        let oi = plan.object;
        let slots = (0..self.tables[oi].records.len() as u32)
            .filter(|s| include_deleted || !self.tables[oi].records[*s as usize].deleted)
            .filter(|s| {
                plan.filter.as_ref().is_none_or(|f| {
                    matches(
                        self,
                        RowRef {
                            object: oi as u32,
                            slot: *s,
                        },
                        f,
                    )
                })
            })
            .collect();
        self.finish(plan, slots)
    }

    /// Sorts (stably, so ties stay in Id order) and applies OFFSET and LIMIT.
    fn finish(&self, plan: &Plan, mut slots: Vec<u32>) -> Vec<u32> {
        if plan.order.is_empty() {
            return page(slots, plan.offset, plan.limit);
        }
        let object = plan.object as u32;
        // Ties fall back to slot order (= Id order), which makes the order total: the partial
        // sort below then gives the same rows as a full stable sort.
        let cmp = |a: &u32, b: &u32| {
            compare_rows(
                self,
                RowRef { object, slot: *a },
                RowRef { object, slot: *b },
                &plan.order,
            )
            .then(a.cmp(b))
        };
        match plan.limit.map(|l| plan.offset.saturating_add(l)) {
            Some(want) if want < slots.len() / 2 => {
                // LIMIT: select the first OFFSET + LIMIT rows in O(n), then sort only those.
                if want == 0 {
                    return Vec::new();
                }
                slots.select_nth_unstable_by(want - 1, cmp);
                slots.truncate(want);
                slots.sort_unstable_by(cmp);
            }
            _ => slots.sort_unstable_by(cmp),
        }
        page(slots, plan.offset, plan.limit)
    }

    // ---- DML ---------------------------------------------------------------------------

    fn defaults(&self, oi: usize) -> Vec<Value> {
        self.schema.objects[oi]
            .fields
            .iter()
            .map(|f| {
                if f.field_type == FieldType::Boolean {
                    Value::Bool(false)
                } else {
                    Value::Null
                }
            })
            .collect()
    }

    fn push_record(&mut self, oi: usize, rec: Record, undo: &mut Vec<Undo>) -> u32 {
        let obj = &self.schema.objects[oi];
        let table = &mut self.tables[oi];
        let slot = table.records.len() as u32;
        let id = rec.values[obj.system.id]
            .as_str()
            .unwrap_or_default()
            .to_string();
        table.records.push(rec);
        table.index(obj, slot);
        self.locations.insert(id, (oi as u32, slot));
        undo.push(Undo::Created { object: oi });
        slot
    }

    fn replace_record(&mut self, oi: usize, slot: u32, rec: Record, undo: &mut Vec<Undo>) {
        let obj = &self.schema.objects[oi];
        let table = &mut self.tables[oi];
        table.unindex(obj, slot);
        let old = std::mem::replace(&mut table.records[slot as usize], rec);
        table.index(obj, slot);
        undo.push(Undo::Replaced {
            object: oi,
            slot,
            old,
        });
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Created { object } => {
                    let obj = &self.schema.objects[object];
                    let table = &mut self.tables[object];
                    let Some(last) = table.records.len().checked_sub(1) else {
                        continue;
                    };
                    table.unindex(obj, last as u32);
                    if let Some(rec) = table.records.pop()
                        && let Some(id) = rec.values[obj.system.id].as_str()
                    {
                        self.locations.remove(id);
                    }
                }
                Undo::Replaced { object, slot, old } => {
                    let mut ignored = Vec::new();
                    self.replace_record(object, slot, old, &mut ignored);
                }
                Undo::DeletionLogged { object } => {
                    self.tables[object].deletions.pop();
                }
            }
        }
    }

    /// Live slots of `oi` whose field `fi` holds `v`.
    fn matching_slots(&self, oi: usize, fi: usize, v: &Value) -> Vec<u32> {
        let obj = &self.schema.objects[oi];
        if fi == obj.system.id {
            let Some(id) = v.as_str() else {
                return Vec::new();
            };
            return match self.locations.get(id) {
                Some((o, s))
                    if *o as usize == oi && !self.tables[oi].records[*s as usize].deleted =>
                {
                    vec![*s]
                }
                _ => Vec::new(),
            };
        }
        self.tables[oi].lookup(fi, v)
    }

    /// Resolves an upsert key field: it must exist and be an external id or idLookup field.
    fn upsert_field(&self, oi: usize, ext_field: &str) -> Result<usize, ItemError> {
        let obj = &self.schema.objects[oi];
        let fi = obj.field_index(ext_field).ok_or_else(|| {
            item(
                "NOT_FOUND",
                format!(
                    "Provided external ID field does not exist or is not accessible: {ext_field}"
                ),
                vec![],
            )
        })?;
        let f = &obj.fields[fi];
        if !(f.external_id || f.id_lookup) {
            return Err(item(
                "INVALID_FIELD",
                format!(
                    "Field {} is not an External ID or indexed field for {}",
                    f.name, obj.name
                ),
                vec![f.name.clone()],
            ));
        }
        Ok(fi)
    }

    fn create(
        &mut self,
        object: &str,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> ItemOutcome {
        let oi = self.schema.object_index(object).ok_or_else(|| {
            (
                None,
                vec![item(
                    "INVALID_TYPE",
                    unsupported_object(object).message,
                    vec![],
                )],
            )
        })?;
        let mut values = self
            .build_values(oi, None, fields, ctx, now)
            .map_err(|e| (None, e))?;
        let obj = &self.schema.objects[oi];
        let id = self.ids.next_id(&obj.key_prefix);
        values[obj.system.id] = Value::Str(id.clone());
        let name = obj.name.clone();
        self.push_record(
            oi,
            Record {
                values,
                deleted: false,
            },
            undo,
        );
        Ok((
            DmlOk {
                id: id.clone(),
                created: None,
            },
            vec![Change {
                object: name,
                id,
                kind: ChangeKind::Created,
            }],
        ))
    }

    /// Finds a live record by id for update or delete, with Salesforce's errors.
    fn locate_live(
        &self,
        id: &str,
        object: Option<&str>,
    ) -> Result<(usize, u32, String), ItemFailure> {
        let id18 = ids::to_18(id).map_err(|_| {
            (
                None,
                vec![item("MALFORMED_ID", format!("malformed id {id}"), vec![])],
            )
        })?;
        let fail = |code: &str, msg: String| (Some(id18.clone()), vec![item(code, msg, vec![])]);
        if let Some(expected) = object
            && self.schema.object_index(expected).is_none()
        {
            return Err((
                Some(id18.clone()),
                vec![item(
                    "INVALID_TYPE",
                    unsupported_object(expected).message,
                    vec![],
                )],
            ));
        }
        let Some(&(o, slot)) = self.locations.get(&id18) else {
            return Err(fail(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id".into(),
            ));
        };
        let oi = o as usize;
        if let Some(expected) = object {
            let want = self.schema.object_index(expected);
            if want != Some(oi) {
                let label = self
                    .schema
                    .object(expected)
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                return Err((
                    Some(id18.clone()),
                    vec![item(
                        "MALFORMED_ID",
                        format!("{label} ID: id value of incorrect type: {id18}"),
                        vec!["Id".into()],
                    )],
                ));
            }
        }
        if self.tables[oi].records[slot as usize].deleted {
            return Err(fail("ENTITY_IS_DELETED", "entity is deleted".into()));
        }
        Ok((oi, slot, id18))
    }

    fn update(
        &mut self,
        object: Option<&str>,
        id: &str,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> ItemOutcome {
        let (oi, slot, id18) = self.locate_live(id, object)?;
        self.update_slot(oi, slot, id18, fields, ctx, now, undo, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_slot(
        &mut self,
        oi: usize,
        slot: u32,
        id18: String,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
        created: Option<bool>,
    ) -> ItemOutcome {
        let base = self.tables[oi].records[slot as usize].clone();
        let values = self
            .build_values(oi, Some((slot, &base)), fields, ctx, now)
            .map_err(|e| (Some(id18.clone()), e))?;
        self.replace_record(
            oi,
            slot,
            Record {
                values,
                deleted: false,
            },
            undo,
        );
        let name = self.schema.objects[oi].name.clone();
        Ok((
            DmlOk {
                id: id18.clone(),
                created,
            },
            vec![Change {
                object: name,
                id: id18,
                kind: ChangeKind::Updated,
            }],
        ))
    }

    fn upsert(
        &mut self,
        object: &str,
        ext_field: &str,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> ItemOutcome {
        let oi = self.schema.object_index(object).ok_or_else(|| {
            (
                None,
                vec![item(
                    "INVALID_TYPE",
                    unsupported_object(object).message,
                    vec![],
                )],
            )
        })?;
        let fi = self
            .upsert_field(oi, ext_field)
            .map_err(|e| (None, vec![e]))?;
        let obj = &self.schema.objects[oi];
        let field = &obj.fields[fi];
        let raw = fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field.name))
            .map(|(_, v)| v.clone())
            .unwrap_or(Json::Null);
        let key = value::from_json(field, &raw).map_err(|e| (None, vec![e]))?;
        if fi == obj.system.id {
            // Upsert on Id: no id creates, an id updates that record.
            let mut body = fields.clone();
            body.retain(|k, _| !k.eq_ignore_ascii_case("Id"));
            return match key.as_str() {
                None => self
                    .create(object, &body, ctx, now, undo)
                    .map(|(mut ok, c)| {
                        ok.created = Some(true);
                        (ok, c)
                    }),
                Some(id) => {
                    let (oi, slot, id18) = self.locate_live(id, Some(object))?;
                    self.update_slot(oi, slot, id18, &body, ctx, now, undo, Some(false))
                }
            };
        }
        if key.is_null() {
            return Err((
                None,
                vec![item(
                    "MISSING_ARGUMENT",
                    format!("{} not specified", field.name),
                    vec![field.name.clone()],
                )],
            ));
        }
        let found = self.matching_slots(oi, fi, &key);
        match found.as_slice() {
            [] => self
                .create(object, fields, ctx, now, undo)
                .map(|(mut ok, c)| {
                    ok.created = Some(true);
                    (ok, c)
                }),
            [slot] => {
                let slot = *slot;
                let id18 = self.tables[oi].records[slot as usize].values[obj.system.id]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.update_slot(oi, slot, id18, fields, ctx, now, undo, Some(false))
            }
            many => {
                let ids: Vec<&str> = many
                    .iter()
                    .filter_map(|s| {
                        self.tables[oi].records[*s as usize].values[obj.system.id].as_str()
                    })
                    .collect();
                Err((
                    None,
                    vec![item(
                        "DUPLICATE_EXTERNAL_ID",
                        format!(
                            "{}: more than one record found for external id field: [{}]",
                            field.name,
                            ids.join(", ")
                        ),
                        vec![field.name.clone()],
                    )],
                ))
            }
        }
    }

    fn delete(
        &mut self,
        id: &str,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> ItemOutcome {
        let (oi, slot, id18) = self.locate_live(id, None)?;
        let obj_name = self.schema.objects[oi].name.clone();
        if obj_name == "User" {
            return Err((
                Some(id18),
                vec![item(
                    "INVALID_TYPE_FOR_OPERATION",
                    "entity type cannot be deleted",
                    vec![],
                )],
            ));
        }
        let mut changes = Vec::new();
        self.soft_delete(oi, slot, ctx, now, undo);
        changes.push(Change {
            object: obj_name.clone(),
            id: id18.clone(),
            kind: ChangeKind::Deleted,
        });
        // Deleting an account deletes its opportunities, as in Salesforce.
        if obj_name == "Account"
            && let Some(child) = self.schema.object_index("Opportunity")
            && let Some(fk) = self.schema.objects[child].field_index("AccountId")
        {
            let children = self.tables[child].lookup(fk, &Value::Str(id18.clone()));
            let child_id = self.schema.objects[child].system.id;
            for s in children {
                self.soft_delete(child, s, ctx, now, undo);
                let cid = self.tables[child].records[s as usize].values[child_id]
                    .as_str()
                    .unwrap_or_default();
                changes.push(Change {
                    object: "Opportunity".into(),
                    id: cid.to_string(),
                    kind: ChangeKind::Deleted,
                });
            }
        }
        Ok((
            DmlOk {
                id: id18,
                created: None,
            },
            changes,
        ))
    }

    fn soft_delete(
        &mut self,
        oi: usize,
        slot: u32,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) {
        let sys = self.schema.objects[oi].system;
        let mut rec = self.tables[oi].records[slot as usize].clone();
        rec.deleted = true;
        rec.values
            .resize(self.schema.objects[oi].fields.len(), Value::Null);
        rec.values[sys.is_deleted] = Value::Bool(true);
        rec.values[sys.last_modified_date] = Value::DateTime(now);
        rec.values[sys.last_modified_by_id] = Value::Str(ctx.user_id.clone());
        rec.values[sys.system_modstamp] = Value::DateTime(now);
        self.replace_record(oi, slot, rec, undo);
        self.tables[oi].deletions.push((slot, now));
        undo.push(Undo::DeletionLogged { object: oi });
    }

    /// The id of the parent a relationship body names by external id, e.g.
    /// `{"attributes": {"type": "Account"}, "Ext_Id__c": "A-1"}` for `Account`.
    fn resolve_foreign_key(
        &self,
        field: &crate::schema::FieldDef,
        spec: &Map<String, Json>,
    ) -> Result<Value, ItemError> {
        let target_name = field.reference_to.as_deref().unwrap_or_default();
        let bad = |m: String| item("INVALID_FIELD", m, vec![field.name.clone()]);
        let toi = self
            .schema
            .object_index(target_name)
            .ok_or_else(|| bad(format!("sObject type '{target_name}' is not supported.")))?;
        let target = &self.schema.objects[toi];
        let keys: Vec<(&String, &Json)> = spec
            .iter()
            .filter(|(k, _)| k.as_str() != "attributes")
            .collect();
        let [(key, raw)] = keys.as_slice() else {
            return Err(bad(format!(
                "The {} foreign key must name exactly one external id field of {}",
                field.relationship_name.as_deref().unwrap_or_default(),
                target.name
            )));
        };
        let tfi = target
            .field_index(key)
            .filter(|i| target.fields[*i].external_id || target.fields[*i].id_lookup)
            .ok_or_else(|| {
                bad(format!(
                    "Field {key} is not an External ID or indexed field for {}",
                    target.name
                ))
            })?;
        let v = value::from_json(&target.fields[tfi], raw)?;
        let shown = v.to_text().unwrap_or_default();
        let tname = &target.fields[tfi].name;
        match self.matching_slots(toi, tfi, &v).as_slice() {
            [slot] => Ok(self.tables[toi].records[*slot as usize].values[target.system.id].clone()),
            [] => Err(bad(format!(
                "Foreign key external ID: {shown} not found for field {tname} in entity {}",
                target.name
            ))),
            _ => Err(bad(format!(
                "Foreign key external ID: {shown} matched more than one record for field {tname} in entity {}",
                target.name
            ))),
        }
    }

    /// Validates a create (`base` None) or update body and returns the record's new values,
    /// system fields set. Errors are reported per stage, as Salesforce does: unknown or
    /// read-only fields, then values, then required fields, lengths, references, validation
    /// rules, uniqueness.
    fn build_values(
        &self,
        oi: usize,
        base: Option<(u32, &Record)>,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
    ) -> Result<Vec<Value>, Vec<ItemError>> {
        let obj = &self.schema.objects[oi];
        let mode = if base.is_some() {
            WriteMode::Update
        } else {
            WriteMode::Create
        };
        let mut unknown = Vec::new();
        let mut read_only = Vec::new();
        let mut bad_values = Vec::new();
        let mut assigned: Vec<(usize, Value)> = Vec::new();
        for (key, raw) in fields {
            if key == "attributes" {
                continue;
            }
            let Some(fi) = obj.field_index(key) else {
                // A parent named by its external id: "Account": {"Ext_Id__c": "A-1"}.
                if let (Some(ri), Json::Object(spec)) = (obj.relationship_index(key), raw) {
                    let f = &obj.fields[ri];
                    let writable = match mode {
                        WriteMode::Create => f.createable,
                        WriteMode::Update => f.updateable,
                    };
                    if !writable {
                        read_only.push(f.name.clone());
                    } else {
                        match self.resolve_foreign_key(f, spec) {
                            Ok(v) => assigned.push((ri, v)),
                            Err(e) => bad_values.push(e),
                        }
                    }
                    continue;
                }
                unknown.push(item(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type {}", obj.name),
                    vec![],
                ));
                continue;
            };
            let f = &obj.fields[fi];
            if fi == obj.system.id && mode == WriteMode::Update {
                // An update body may repeat its own id.
                let same = base
                    .and_then(|(_, r)| r.values[fi].as_str())
                    .is_some_and(|own| {
                        raw.as_str().and_then(|s| ids::to_18(s).ok()).as_deref() == Some(own)
                    });
                if same {
                    continue;
                }
            }
            let writable = match mode {
                WriteMode::Create => f.createable,
                WriteMode::Update => f.updateable,
            };
            if !writable {
                read_only.push(f.name.clone());
                continue;
            }
            match value::from_json(f, raw) {
                Ok(v) => assigned.push((fi, v)),
                Err(e) => bad_values.push(e),
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        if !read_only.is_empty() {
            return Err(vec![item(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    read_only.join(", ")
                ),
                read_only,
            )]);
        }
        if !bad_values.is_empty() {
            return Err(bad_values);
        }
        let mut values = match base {
            Some((_, r)) => {
                let mut v = r.values.clone();
                v.resize(obj.fields.len(), Value::Null);
                v
            }
            None => self.defaults(oi),
        };
        let old_values = values.clone();
        for (fi, v) in &assigned {
            values[*fi] = v.clone();
        }
        if obj.name == "Opportunity" {
            compute_opportunity(obj, &mut values, &old_values, &assigned, mode);
        }
        // Required fields.
        let missing: Vec<String> = obj
            .fields
            .iter()
            .enumerate()
            .filter(|(fi, f)| {
                f.is_required()
                    && values[*fi].is_null()
                    && (mode == WriteMode::Create || assigned.iter().any(|(a, _)| a == fi))
            })
            .map(|(_, f)| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(vec![item(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            )]);
        }
        // Lengths.
        let mut too_long = Vec::new();
        for (fi, v) in &assigned {
            let f = &obj.fields[*fi];
            if let Value::Str(s) = v
                && f.field_type.is_text()
                && s.chars().count() > f.length as usize
            {
                too_long.push(item(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {} (max length={})",
                        f.label, s, f.length
                    ),
                    vec![f.name.clone()],
                ));
            }
        }
        if !too_long.is_empty() {
            return Err(too_long);
        }
        // References.
        for (fi, v) in &assigned {
            let f = &obj.fields[*fi];
            let (Some(target), Value::Str(id)) = (&f.reference_to, v) else {
                continue;
            };
            let target_oi = self.schema.object_index(target);
            match self.locations.get(id) {
                Some((o, _)) if Some(*o as usize) != target_oi => {
                    return Err(vec![item(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: id value of incorrect type: {id}", f.label),
                        vec![f.name.clone()],
                    )]);
                }
                Some((o, s)) if self.tables[*o as usize].records[*s as usize].deleted => {
                    return Err(vec![item(
                        "ENTITY_IS_DELETED",
                        "entity is deleted",
                        vec![f.name.clone()],
                    )]);
                }
                Some(_) => {}
                None => {
                    return Err(vec![item(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                        vec![f.name.clone()],
                    )]);
                }
            }
        }
        // The fault injector's validation rule.
        if let (Some(marker), Some(nf)) = (ctx.reject_marker.as_deref(), obj.name_field)
            && !marker.is_empty()
            && values[nf].as_str().is_some_and(|n| n.contains(marker))
        {
            return Err(vec![item(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                format!("Record rejected by validation rule: Name contains '{marker}'"),
                vec![],
            )]);
        }
        // Uniqueness.
        let own_slot = base.map(|(s, _)| s);
        for (fi, f) in obj.fields.iter().enumerate() {
            if !f.unique || values[fi].is_null() {
                continue;
            }
            if let Some(other) = self.tables[oi]
                .lookup(fi, &values[fi])
                .into_iter()
                .find(|s| Some(*s) != own_slot)
            {
                let other_id = self.tables[oi].records[other as usize].values[obj.system.id]
                    .as_str()
                    .unwrap_or_default();
                return Err(vec![item(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other_id}",
                        f.name
                    ),
                    vec![f.name.clone()],
                )]);
            }
        }
        // System fields: one timestamp for the whole call.
        let sys = obj.system;
        if mode == WriteMode::Create
            && let Some(owner) = obj.field_index("OwnerId")
            && values[owner].is_null()
        {
            values[owner] = Value::Str(ctx.user_id.clone());
        }
        if mode == WriteMode::Create {
            values[sys.is_deleted] = Value::Bool(false);
            values[sys.created_date] = Value::DateTime(now);
            values[sys.created_by_id] = Value::Str(ctx.user_id.clone());
        }
        values[sys.last_modified_date] = Value::DateTime(now);
        values[sys.last_modified_by_id] = Value::Str(ctx.user_id.clone());
        values[sys.system_modstamp] = Value::DateTime(now);
        Ok(values)
    }
}

/// Opportunity's derived fields: IsClosed and IsWon from the stage, and the stage's default
/// Probability when the stage is set without one.
fn compute_opportunity(
    obj: &ObjectDef,
    values: &mut [Value],
    old: &[Value],
    assigned: &[(usize, Value)],
    mode: WriteMode,
) {
    let (Some(stage_f), Some(closed_f), Some(won_f), Some(prob_f)) = (
        obj.field_index("StageName"),
        obj.field_index("IsClosed"),
        obj.field_index("IsWon"),
        obj.field_index("Probability"),
    ) else {
        return;
    };
    let stage = values[stage_f].as_str().unwrap_or_default().to_string();
    let lower = stage.to_lowercase();
    values[closed_f] = Value::Bool(lower.starts_with("closed"));
    values[won_f] = Value::Bool(lower == "closed won");
    let stage_changed = mode == WriteMode::Create
        || !value::eq_values(FieldType::Picklist, &values[stage_f], &old[stage_f]);
    let probability_given = assigned.iter().any(|(fi, _)| *fi == prob_f);
    if stage_changed
        && !probability_given
        && let Some((_, p)) = OPPORTUNITY_STAGES
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(&stage))
    {
        values[prob_f] = Value::Num(*p);
    }
}

/// Upserts of one call that share an external id value all fail, as in Salesforce.
fn duplicate_upsert_keys(ops: &[DmlOp]) -> HashMap<usize, ItemError> {
    let mut seen: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let DmlOp::Upsert {
            object,
            ext_field,
            fields,
        } = op
            && let Some((_, v)) = fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(ext_field))
        {
            let text = match v {
                Json::String(s) => s.to_lowercase(),
                Json::Null => continue,
                other => other.to_string(),
            };
            seen.entry((object.to_lowercase(), ext_field.to_lowercase(), text))
                .or_default()
                .push(i);
        }
    }
    let mut out = HashMap::new();
    for ((_, field, value), idx) in seen {
        if idx.len() > 1 {
            for i in idx {
                out.insert(
                    i,
                    item(
                        "DUPLICATE_EXTERNAL_ID",
                        format!("Duplicate external id specified: {value}"),
                        vec![field.clone()],
                    ),
                );
            }
        }
    }
    out
}

/// Ids named by a top-level `Id = '...'` or `Id IN (...)` conjunct.
fn id_candidates(conjuncts: &[&Filter], id_field: usize) -> Option<Vec<String>> {
    let own = |p: &crate::soql::plan::FieldPath| p.hops.is_empty() && p.field == id_field;
    for c in conjuncts {
        match c {
            Filter::Compare {
                path,
                op: CmpOp::Eq,
                operand,
            } if own(path) => {
                return Some(match operand {
                    Operand::Value(Value::Str(id)) => vec![id.clone()],
                    _ => Vec::new(),
                });
            }
            Filter::In {
                path,
                negated: false,
                operands,
            } if own(path) => {
                return Some(
                    operands
                        .iter()
                        .filter_map(|o| match o {
                            Operand::Value(Value::Str(id)) => Some(id.clone()),
                            _ => None,
                        })
                        .collect(),
                );
            }
            _ => {}
        }
    }
    None
}

/// The SystemModstamp window `[lo, hi)` in epoch milliseconds outside which no row can
/// satisfy `filter`, or `None` when the filter does not bound SystemModstamp. AND intersects,
/// OR takes the hull (a superset is safe: the full filter still runs on every candidate).
fn modstamp_bounds(filter: &Filter, field: usize) -> Option<(i64, i64)> {
    match filter {
        Filter::And(terms) => terms
            .iter()
            .filter_map(|t| modstamp_bounds(t, field))
            .reduce(|(a, b), (c, d)| (a.max(c), b.min(d))),
        Filter::Or(terms) => {
            let mut hull: Option<(i64, i64)> = None;
            for t in terms {
                let (l, h) = modstamp_bounds(t, field)?;
                hull = Some(match hull {
                    None => (l, h),
                    Some((a, b)) => (a.min(l), b.max(h)),
                });
            }
            hull
        }
        Filter::Compare { path, op, operand } if path.hops.is_empty() && path.field == field => {
            let ms = |v: &Value| v.as_datetime().map(|d| d.timestamp_millis());
            // The literal (or relative date) covers [a, b).
            let (a, b) = match operand {
                Operand::Value(v) => {
                    let m = ms(v)?;
                    (m, m.saturating_add(1))
                }
                Operand::Range(l, h) => (ms(l)?, ms(h)?),
                Operand::Null => return None,
            };
            match op {
                CmpOp::Eq => Some((a, b)),
                CmpOp::Gt => Some((b, i64::MAX)),
                CmpOp::Ge => Some((a, i64::MAX)),
                CmpOp::Lt => Some((i64::MIN, a)),
                CmpOp::Le => Some((i64::MIN, b)),
                CmpOp::Ne => None,
            }
        }
        _ => None,
    }
}

/// Values named by a top-level `F = 'x'` or `F IN (...)` conjunct on a text or id field that
/// has a value index, as (field, values).
fn indexed_candidates<'a>(
    conjuncts: &[&'a Filter],
    obj: &ObjectDef,
) -> Option<(usize, Vec<&'a Value>)> {
    let usable = |p: &crate::soql::plan::FieldPath| {
        p.hops.is_empty()
            && (p.field_type.is_text() || p.field_type.is_id())
            && indexed_fields(obj).any(|f| f == p.field)
    };
    for c in conjuncts {
        match c {
            Filter::Compare {
                path,
                op: CmpOp::Eq,
                operand: Operand::Value(v),
            } if usable(path) => {
                return Some((path.field, vec![v]));
            }
            Filter::In {
                path,
                negated: false,
                operands,
            } if usable(path) => {
                let values: Option<Vec<&Value>> = operands
                    .iter()
                    .map(|o| match o {
                        Operand::Value(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                if let Some(values) = values {
                    return Some((path.field, values));
                }
            }
            _ => {}
        }
    }
    None
}

/// `Some(descending)` when ORDER BY is SystemModstamp [, Id] in one direction: the order of
/// the (SystemModstamp, slot) index. `SystemModstamp DESC` alone is left to the sort, whose
/// ties stay in ascending Id order (walking the index backwards would reverse them).
fn index_order(plan: &Plan, obj: &ObjectDef) -> Option<bool> {
    let own =
        |k: &crate::soql::plan::OrderKey, f: usize| k.path.hops.is_empty() && k.path.field == f;
    match plan.order.as_slice() {
        [a] if own(a, obj.system.system_modstamp) && !a.descending => Some(false),
        [a, b]
            if own(a, obj.system.system_modstamp)
                && own(b, obj.system.id)
                && a.descending == b.descending =>
        {
            Some(a.descending)
        }
        _ => None,
    }
}

fn page(mut rows: Vec<u32>, offset: usize, limit: Option<usize>) -> Vec<u32> {
    if offset > 0 {
        rows.drain(..offset.min(rows.len()));
    }
    if let Some(l) = limit {
        rows.truncate(l);
    }
    rows
}

/// The checked, second-truncated bounds of a getDeleted / getUpdated call.
struct ReplicationWindow {
    start: DateTime<Utc>,
    latest: DateTime<Utc>,
    earliest: DateTime<Utc>,
}

fn replication_window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    days: i64,
) -> Result<ReplicationWindow, ApiError> {
    let start = truncate_seconds(start);
    let end = truncate_seconds(end);
    let now = truncate_seconds(now);
    let earliest = now - Duration::days(days);
    if start >= end {
        return Err(ApiError::new(
            400,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate",
        ));
    }
    if start < earliest {
        return Err(ApiError::new(
            400,
            "INVALID_REPLICATION_DATE",
            format!("startDate cannot be more than {days} days ago"),
        ));
    }
    Ok(ReplicationWindow {
        start,
        latest: end.min(now),
        earliest,
    })
}

fn exceeded_id_limit() -> ApiError {
    ApiError::new(
        400,
        "EXCEEDED_ID_LIMIT",
        format!("record limit reached. cannot submit more than {REPLICATION_ID_LIMIT} records"),
    )
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

    const ORG: &str = "00DA0000000test1AAA";

    fn t(s: &str) -> DateTime<Utc> {
        value::parse_datetime(s).expect("datetime")
    }

    fn body(v: Json) -> Map<String, Json> {
        v.as_object().cloned().expect("object")
    }

    struct Fixture {
        db: OrgDb,
        user: String,
    }

    impl Fixture {
        fn new() -> Fixture {
            let mut db = OrgDb::new(ORG);
            let user = db.add_user("integration@a.sim", "Integration User");
            db.add_user("human@a.sim", "Human User");
            Fixture { db, user }
        }

        fn ctx(&self, now: &str) -> DmlContext {
            DmlContext {
                user_id: self.user.clone(),
                now: t(now),
                reject_marker: None,
                forced_errors: Vec::new(),
            }
        }

        fn apply(
            &mut self,
            ops: Vec<DmlOp>,
            all_or_none: bool,
            now: &str,
        ) -> (Vec<DmlResult>, Vec<Change>) {
            let ctx = self.ctx(now);
            self.db.apply(ops, all_or_none, &ctx)
        }

        fn create(&mut self, object: &str, fields: Json, now: &str) -> DmlResult {
            let (mut r, _) = self.apply(
                vec![DmlOp::Create {
                    object: object.into(),
                    fields: body(fields),
                }],
                false,
                now,
            );
            r.remove(0)
        }

        fn create_ok(&mut self, object: &str, fields: Json, now: &str) -> String {
            self.create(object, fields, now).expect("created").id
        }

        fn q(&self, soql: &str) -> Vec<Json> {
            self.db
                .query(soql, false, "62.0", t("2024-03-10T12:00:00Z"))
                .unwrap_or_else(|e| panic!("{soql}: {e:?}"))
        }

        fn q_all(&self, soql: &str) -> Vec<Json> {
            self.db
                .query(soql, true, "62.0", t("2024-03-10T12:00:00Z"))
                .expect("queryAll")
        }

        fn q_err(&self, soql: &str) -> ApiError {
            self.db
                .query(soql, false, "62.0", t("2024-03-10T12:00:00Z"))
                .expect_err(soql)
        }
    }

    fn opp(name: &str) -> Json {
        json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2024-06-30"})
    }

    fn errors(r: &DmlResult) -> Vec<String> {
        match r {
            Ok(_) => Vec::new(),
            Err((_, e)) => e.iter().map(|e| e.status_code.clone()).collect(),
        }
    }

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
    fn create_sets_system_fields_with_one_timestamp_per_call() {
        let mut f = Fixture::new();
        let ops = (0..3)
            .map(|i| DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp(&format!("o{i}"))),
            })
            .collect();
        let (results, changes) = f.apply(ops, false, "2024-03-10T10:00:00.123456Z");
        assert_eq!(results.len(), 3);
        assert_eq!(changes.len(), 3);
        assert!(
            changes
                .iter()
                .all(|c| c.kind == ChangeKind::Created && c.object == "Opportunity")
        );
        let rows = f.q("SELECT Id, Name, CreatedDate, LastModifiedDate, SystemModstamp, CreatedById, LastModifiedById, IsDeleted, IsClosed, Probability, CloseDate FROM Opportunity ORDER BY Name");
        assert_eq!(rows.len(), 3);
        for r in &rows {
            assert_eq!(r["CreatedDate"], "2024-03-10T10:00:00.123+0000");
            assert_eq!(r["SystemModstamp"], "2024-03-10T10:00:00.123+0000");
            assert_eq!(r["LastModifiedDate"], "2024-03-10T10:00:00.123+0000");
            assert_eq!(r["CreatedById"], json!(f.user));
            assert_eq!(r["IsDeleted"], false);
            assert_eq!(r["IsClosed"], false);
            assert_eq!(r["Probability"], 10.0);
            assert_eq!(r["CloseDate"], "2024-06-30");
            assert!(r["Id"].as_str().is_some_and(|id| id.starts_with("006")));
        }
        let id = rows[0]["Id"].as_str().expect("id");
        assert_eq!(
            rows[0]["attributes"]["url"],
            json!(format!("/services/data/v62.0/sobjects/Opportunity/{id}"))
        );
        assert_eq!(f.db.count("Opportunity"), 3);
    }

    #[test]
    fn write_errors_match_salesforce() {
        let mut f = Fixture::new();
        let now = "2024-03-10T10:00:00Z";
        let r = f.create("Opportunity", json!({"Name": "x"}), now);
        let Err((None, e)) = &r else { panic!("{r:?}") };
        assert_eq!(e[0].status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(
            e[0].message,
            "Required fields are missing: [StageName, CloseDate]"
        );
        assert_eq!(e[0].fields, ["StageName", "CloseDate"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "Foo": 1}),
            now,
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
        let r = f.create("Opportunity", json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "CreatedDate": "2024-01-01T00:00:00Z"}), now);
        assert_eq!(errors(&r), ["INVALID_FIELD_FOR_INSERT_UPDATE"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "soon"}),
            now,
        );
        assert_eq!(errors(&r), ["JSON_PARSER_ERROR"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x".repeat(121), "StageName": "a", "CloseDate": "2024-01-01"}),
            now,
        );
        assert_eq!(errors(&r), ["STRING_TOO_LONG"]);
        let r = f.create("Opportunity", json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "AccountId": "001000000000000AAA"}), now);
        assert_eq!(errors(&r), ["INVALID_CROSS_REFERENCE_KEY"]);
        let user = f.user.clone();
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "AccountId": user}),
            now,
        );
        assert_eq!(errors(&r), ["FIELD_INTEGRITY_EXCEPTION"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "AccountId": "bad"}),
            now,
        );
        assert_eq!(errors(&r), ["MALFORMED_ID"]);
        let r = f.create("Foo", json!({"Name": "x"}), now);
        assert_eq!(errors(&r), ["INVALID_TYPE"]);
        // Field names are case-insensitive in bodies.
        let id = f.create_ok(
            "opportunity",
            json!({"name": "ok", "STAGENAME": "Closed Won", "closedate": "2024-01-01"}),
            now,
        );
        let rows = f.q(&format!(
            "SELECT Name, StageName, IsWon, IsClosed FROM Opportunity WHERE Id = '{id}'"
        ));
        assert_eq!(rows[0]["StageName"], "Closed Won");
        assert_eq!(rows[0]["IsWon"], true);
        let (r, _) = f.apply(
            vec![DmlOp::Update {
                object: None,
                id: "nope".into(),
                fields: Map::new(),
            }],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["MALFORMED_ID"]);
        let (r, _) = f.apply(
            vec![DmlOp::Update {
                object: None,
                id: id.clone(),
                fields: body(json!({"Name": null})),
            }],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["REQUIRED_FIELD_MISSING"]);
        let (r, _) = f.apply(
            vec![DmlOp::Update {
                object: Some("Account".into()),
                id: id.clone(),
                fields: Map::new(),
            }],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["MALFORMED_ID"]);
        let (r, _) = f.apply(vec![DmlOp::Delete { id: id.clone() }], false, now);
        assert!(r[0].is_ok());
        let (r, _) = f.apply(
            vec![
                DmlOp::Delete { id: id.clone() },
                DmlOp::Update {
                    object: None,
                    id: id.clone(),
                    fields: Map::new(),
                },
            ],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["ENTITY_IS_DELETED"]);
        assert_eq!(errors(&r[1]), ["ENTITY_IS_DELETED"]);
        let (r, _) = f.apply(vec![DmlOp::Delete { id: user }], false, now);
        assert_eq!(errors(&r[0]), ["INVALID_TYPE_FOR_OPERATION"]);
    }

    #[test]
    fn update_bumps_timestamps_even_when_unchanged() {
        let mut f = Fixture::new();
        let id = f.create_ok("Opportunity", opp("a"), "2024-03-10T10:00:00Z");
        let (r, changes) = f.apply(
            vec![DmlOp::Update {
                object: Some("Opportunity".into()),
                id: id[..15].to_string(),
                fields: body(json!({"Id": id, "Name": "a"})),
            }],
            false,
            "2024-03-10T10:05:00Z",
        );
        assert_eq!(
            r[0],
            Ok(DmlOk {
                id: id.clone(),
                created: None
            })
        );
        assert_eq!(
            changes,
            vec![Change {
                object: "Opportunity".into(),
                id: id.clone(),
                kind: ChangeKind::Updated
            }]
        );
        let row = &f.q("SELECT CreatedDate, LastModifiedDate, SystemModstamp FROM Opportunity")[0];
        assert_eq!(row["CreatedDate"], "2024-03-10T10:00:00.000+0000");
        assert_eq!(row["LastModifiedDate"], "2024-03-10T10:05:00.000+0000");
        assert_eq!(row["SystemModstamp"], "2024-03-10T10:05:00.000+0000");
    }

    #[test]
    fn all_or_none_rolls_back_everything() {
        let mut f = Fixture::new();
        let keep = f.create_ok("Opportunity", opp("keep"), "2024-03-10T10:00:00Z");
        let ops = vec![
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("new")),
            },
            DmlOp::Update {
                object: None,
                id: keep.clone(),
                fields: body(json!({"Name": "renamed"})),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(json!({"Name": "bad"})),
            },
            DmlOp::Delete { id: keep.clone() },
        ];
        let (r, changes) = f.apply(ops, true, "2024-03-10T11:00:00Z");
        assert!(changes.is_empty());
        assert_eq!(
            r[0],
            Err((
                None,
                vec![item(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    vec![]
                )]
            ))
        );
        assert_eq!(errors(&r[1]), ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]);
        assert!(matches!(&r[1], Err((Some(id), _)) if *id == keep));
        assert_eq!(errors(&r[2]), ["REQUIRED_FIELD_MISSING"]);
        assert_eq!(errors(&r[3]), ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]);
        let rows = f.q_all("SELECT Name, IsDeleted, SystemModstamp FROM Opportunity");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Name"], "keep");
        assert_eq!(rows[0]["IsDeleted"], false);
        assert_eq!(rows[0]["SystemModstamp"], "2024-03-10T10:00:00.000+0000");
        assert_eq!(f.db.count("Opportunity"), 1);
        let got =
            f.db.deleted(
                "Opportunity",
                t("2024-03-10T00:00:00Z"),
                t("2024-03-10T12:00:00Z"),
                t("2024-03-10T12:00:00Z"),
            )
            .expect("deleted");
        assert_eq!(got["deletedRecords"], json!([]));
        // Index consistency after the rollback: range queries see the restored row.
        assert_eq!(f.q("SELECT Id FROM Opportunity WHERE SystemModstamp >= 2024-03-10T10:00:00Z ORDER BY SystemModstamp, Id").len(), 1);
        // Without allOrNone the good items commit.
        let ops = vec![
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("new")),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(json!({"Name": "bad"})),
            },
        ];
        let (r, changes) = f.apply(ops, false, "2024-03-10T11:00:00Z");
        assert!(r[0].is_ok() && r[1].is_err());
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn reject_marker_and_forced_errors_fail_items() {
        let mut f = Fixture::new();
        let mut ctx = f.ctx("2024-03-10T10:00:00Z");
        ctx.reject_marker = Some("[reject]".into());
        ctx.forced_errors = vec![(
            1,
            item(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record",
                vec![],
            ),
        )];
        let ops = vec![
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("x [reject]")),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("fine")),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("fine too")),
            },
        ];
        let (r, _) = f.db.apply(ops, false, &ctx);
        assert_eq!(errors(&r[0]), ["FIELD_CUSTOM_VALIDATION_EXCEPTION"]);
        assert_eq!(errors(&r[1]), ["UNABLE_TO_LOCK_ROW"]);
        assert!(r[2].is_ok());
    }

    #[test]
    fn upsert_by_external_id_creates_updates_and_refuses_ambiguity() {
        let mut f = Fixture::new();
        f.db.add_field(
            &json!({"object":"Opportunity","name":"Ext_Id__c","type":"string","externalId":true}),
        )
        .expect("field");
        let up = |ext: &str, name: &str| DmlOp::Upsert {
            object: "Opportunity".into(),
            ext_field: "ext_id__c".into(),
            fields: body(
                json!({"Ext_Id__c": ext, "Name": name, "StageName": "Prospecting", "CloseDate": "2024-01-01"}),
            ),
        };
        let (r, _) = f.apply(vec![up("E1", "one")], false, "2024-03-10T10:00:00Z");
        let created = r[0].clone().expect("created");
        assert_eq!(created.created, Some(true));
        let (r, changes) = f.apply(vec![up("e1", "uno")], false, "2024-03-10T10:01:00Z");
        assert_eq!(
            r[0],
            Ok(DmlOk {
                id: created.id.clone(),
                created: Some(false)
            })
        );
        assert_eq!(changes[0].kind, ChangeKind::Updated);
        assert_eq!(f.q("SELECT Name FROM Opportunity")[0]["Name"], "uno");
        // Two records with one value (the field is not unique) make the key ambiguous.
        f.create_ok("Opportunity", json!({"Ext_Id__c": "E1", "Name": "two", "StageName": "Prospecting", "CloseDate": "2024-01-01"}), "2024-03-10T10:02:00Z");
        let (r, _) = f.apply(vec![up("E1", "x")], false, "2024-03-10T10:03:00Z");
        assert_eq!(errors(&r[0]), ["DUPLICATE_EXTERNAL_ID"]);
        assert_eq!(
            f.db.find_by_external_id("Opportunity", "Ext_Id__c", &json!("e1"))
                .expect("ids")
                .len(),
            2
        );
        // Duplicates inside one call fail both items.
        let (r, _) = f.apply(
            vec![up("E9", "a"), up("E9", "b")],
            false,
            "2024-03-10T10:04:00Z",
        );
        assert_eq!(errors(&r[0]), ["DUPLICATE_EXTERNAL_ID"]);
        assert_eq!(errors(&r[1]), ["DUPLICATE_EXTERNAL_ID"]);
        // The key must be an external id or idLookup field.
        let (r, _) = f.apply(
            vec![DmlOp::Upsert {
                object: "Opportunity".into(),
                ext_field: "StageName".into(),
                fields: body(opp("z")),
            }],
            false,
            "2024-03-10T10:05:00Z",
        );
        assert_eq!(errors(&r[0]), ["INVALID_FIELD"]);
        let (r, _) = f.apply(
            vec![DmlOp::Upsert {
                object: "Opportunity".into(),
                ext_field: "Nope__c".into(),
                fields: body(opp("z")),
            }],
            false,
            "2024-03-10T10:05:00Z",
        );
        assert_eq!(errors(&r[0]), ["NOT_FOUND"]);
        // Upsert on Id: no Id creates.
        let (r, _) = f.apply(
            vec![DmlOp::Upsert {
                object: "Opportunity".into(),
                ext_field: "Id".into(),
                fields: body(opp("by id")),
            }],
            false,
            "2024-03-10T10:06:00Z",
        );
        assert_eq!(r[0].as_ref().map(|ok| ok.created), Ok(Some(true)));
    }

    #[test]
    fn parents_can_be_named_by_external_id() {
        let mut f = Fixture::new();
        f.db.add_field(
            &json!({"object":"Account","name":"Code__c","type":"string","externalId":true}),
        )
        .expect("field");
        let acc = f.create_ok(
            "Account",
            json!({"Name": "Acme", "Code__c": "A-1"}),
            "2024-03-10T10:00:00Z",
        );
        let with_parent = |spec: Json| json!({"Name": "o", "StageName": "Prospecting", "CloseDate": "2024-01-01", "Account": spec});
        f.create_ok(
            "Opportunity",
            with_parent(json!({"attributes": {"type": "Account"}, "code__c": "a-1"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(
            f.q("SELECT AccountId FROM Opportunity")[0]["AccountId"],
            json!(acc)
        );
        // Account Name is an idLookup field too.
        assert!(
            f.create(
                "Opportunity",
                with_parent(json!({"Name": "Acme"})),
                "2024-03-10T10:00:00Z"
            )
            .is_ok()
        );
        let r = f.create(
            "Opportunity",
            with_parent(json!({"Code__c": "nope"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
        let r = f.create(
            "Opportunity",
            with_parent(json!({"Industry": "Energy"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
        let r = f.create(
            "Opportunity",
            with_parent(json!({"Code__c": "A-1", "Name": "Acme"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
    }

    #[test]
    fn unique_fields_reject_duplicates() {
        let mut f = Fixture::new();
        f.db.add_field(&json!({"object":"Account","name":"Code__c","type":"string","unique":true,"externalId":true})).expect("field");
        f.create_ok(
            "Account",
            json!({"Name": "a", "Code__c": "X"}),
            "2024-03-10T10:00:00Z",
        );
        let r = f.create(
            "Account",
            json!({"Name": "b", "Code__c": "x"}),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["DUPLICATE_VALUE"]);
        let r = f.create(
            "Account",
            json!({"Name": "b", "Code__c": "Y"}),
            "2024-03-10T10:00:00Z",
        );
        assert!(r.is_ok());
        let d = f.db.describe("Account").expect("describe");
        let code = d["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|x| x["name"] == "Code__c")
            .cloned()
            .expect("Code__c");
        assert_eq!(
            (
                code["unique"].clone(),
                code["externalId"].clone(),
                code["custom"].clone()
            ),
            (json!(true), json!(true), json!(true))
        );
    }

    #[test]
    fn delete_is_soft_logged_and_cascades_to_opportunities() {
        let mut f = Fixture::new();
        let acc = f.create_ok("Account", json!({"Name": "Acme"}), "2024-03-10T09:00:00Z");
        let o1 = f.create_ok("Opportunity", json!({"Name": "o1", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": acc}), "2024-03-10T09:00:00Z");
        let o2 = f.create_ok("Opportunity", opp("o2"), "2024-03-10T09:00:00Z");
        let (r, changes) = f.apply(
            vec![DmlOp::Delete { id: acc.clone() }],
            false,
            "2024-03-10T10:00:00Z",
        );
        assert!(r[0].is_ok());
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[1],
            Change {
                object: "Opportunity".into(),
                id: o1.clone(),
                kind: ChangeKind::Deleted
            }
        );
        assert_eq!(f.q("SELECT Id FROM Opportunity").len(), 1);
        let all = f.q_all("SELECT Id, IsDeleted FROM Opportunity ORDER BY Name");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["IsDeleted"], true);
        assert_eq!(
            f.q_all("SELECT Id FROM Opportunity WHERE IsDeleted = true")
                .len(),
            1
        );
        let d =
            f.db.deleted(
                "Opportunity",
                t("2024-03-10T00:00:00Z"),
                t("2024-03-11T00:00:00Z"),
                t("2024-03-10T12:00:30.500Z"),
            )
            .expect("deleted");
        assert_eq!(
            d["deletedRecords"],
            json!([{"id": o1, "deletedDate": "2024-03-10T10:00:00.000+0000"}])
        );
        assert_eq!(d["latestDateCovered"], "2024-03-10T12:00:30.000+0000");
        assert_eq!(d["earliestDateAvailable"], "2024-02-24T12:00:30.000+0000");
        assert!(f.db.retrieve("Opportunity", &o1, None, "62.0").is_err());
        let got =
            f.db.retrieve(
                "Opportunity",
                &o2[..15],
                Some(&["name".to_string()]),
                "62.0",
            )
            .expect("retrieve");
        assert_eq!(got["Name"], "o2");
        assert_eq!(got.as_object().map(Map::len), Some(2));
        assert_eq!(
            f.db.retrieve("Opportunity", &o2, Some(&["Foo".to_string()]), "62.0")
                .expect_err("bad field")
                .error_code,
            "INVALID_FIELD"
        );
        assert_eq!(
            f.db.retrieve("Account", &o2, None, "62.0")
                .expect_err("wrong object")
                .status,
            404
        );
        let fields =
            f.db.record_fields(&o2, &["name".into(), "Amount".into(), "Nope".into()])
                .expect("fields");
        assert_eq!(
            Json::Object(fields),
            json!({"Id": o2, "Name": "o2", "Amount": null})
        );
    }

    #[test]
    fn replication_windows_are_checked() {
        let mut f = Fixture::new();
        let id = f.create_ok("Opportunity", opp("a"), "2024-03-10T10:00:00.400Z");
        let now = t("2024-03-10T12:00:00Z");
        let u =
            f.db.updated(
                "Opportunity",
                t("2024-03-10T10:00:00.900Z"),
                t("2024-03-10T10:00:01Z"),
                now,
            )
            .expect("updated");
        assert_eq!(u["ids"], json!([id]));
        assert_eq!(u["latestDateCovered"], "2024-03-10T10:00:01.000+0000");
        let e =
            f.db.updated(
                "Opportunity",
                t("2024-03-10T10:00:00Z"),
                t("2024-03-10T10:00:00Z"),
                now,
            )
            .expect_err("empty");
        assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
        let e =
            f.db.updated("Opportunity", t("2024-01-01T00:00:00Z"), now, now)
                .expect_err("too old");
        assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
        assert!(
            f.db.updated("Opportunity", t("2024-02-15T00:00:00Z"), now, now)
                .is_ok()
        );
        assert!(
            f.db.deleted("Opportunity", t("2024-02-15T00:00:00Z"), now, now)
                .is_err()
        );
        assert_eq!(
            f.db.updated("Foo", now, now, now)
                .expect_err("object")
                .status,
            404
        );
    }

    #[test]
    fn queries_render_relationships_and_count() {
        let mut f = Fixture::new();
        let acc = f.create_ok(
            "Account",
            json!({"Name": "Acme", "NumberOfEmployees": 12}),
            "2024-03-10T09:00:00Z",
        );
        f.create_ok("Opportunity", json!({"Name": "with", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": acc, "Amount": 6000}), "2024-03-10T09:00:00Z");
        f.create_ok("Opportunity", json!({"Name": "without", "StageName": "Prospecting", "CloseDate": "2024-01-01", "Amount": "100.5"}), "2024-03-10T09:00:00Z");
        let rows = f.q("SELECT Name, Amount, Account.Name, Account.NumberOfEmployees, CreatedBy.Username, Owner.Username FROM Opportunity ORDER BY Name");
        assert_eq!(rows[0]["Owner"]["Username"], "integration@a.sim");
        assert_eq!(rows[0]["Account"]["Name"], "Acme");
        assert_eq!(rows[0]["Account"]["NumberOfEmployees"], 12);
        assert_eq!(rows[0]["Account"]["attributes"]["type"], "Account");
        assert_eq!(rows[0]["Amount"], 6000.0);
        assert_eq!(rows[0]["CreatedBy"]["Username"], "integration@a.sim");
        assert_eq!(rows[1]["Account"], Json::Null);
        assert_eq!(rows[1]["Amount"], 100.5);
        assert_eq!(
            f.q("SELECT Name FROM Opportunity WHERE Amount > 5000 AND Account.Name LIKE 'ac%'")
                .len(),
            1
        );
        let c =
            f.db.query_cursor(
                "SELECT COUNT() FROM Opportunity WHERE Amount > 50",
                false,
                t("2024-03-10T12:00:00Z"),
            )
            .expect("count");
        assert!(c.is_count() && c.is_empty());
        assert_eq!(c.total_size(), 2);
        assert_eq!(
            f.q("SELECT Name FROM Opportunity ORDER BY Name LIMIT 1 OFFSET 1")[0]["Name"],
            "without"
        );
        assert_eq!(
            f.q("SELECT Name FROM Opportunity WHERE CreatedDate = TODAY")
                .len(),
            2
        );
        assert_eq!(
            f.q("SELECT Name FROM Opportunity WHERE CreatedDate = YESTERDAY")
                .len(),
            0
        );
        assert_eq!(
            f.q_err("SELECT Foo FROM Opportunity").error_code,
            "INVALID_FIELD"
        );
        assert_eq!(f.q_err("SELECT Id FROM Nope").error_code, "INVALID_TYPE");
        assert_eq!(
            f.q_err("SELECT Id FROM Opportunity WHERE").error_code,
            "MALFORMED_QUERY"
        );
    }

    #[test]
    fn id_fast_path_accepts_15_and_18_character_ids() {
        let mut f = Fixture::new();
        let a = f.create_ok("Opportunity", opp("a"), "2024-03-10T09:00:00Z");
        let b = f.create_ok("Opportunity", opp("b"), "2024-03-10T09:00:00Z");
        f.create_ok("Opportunity", opp("c"), "2024-03-10T09:00:00Z");
        let rows = f.q(&format!(
            "SELECT Name FROM Opportunity WHERE Id IN ('{}', '{b}', '{}') ORDER BY Name DESC",
            &a[..15],
            f.user
        ));
        assert_eq!(
            rows.iter().map(|r| r["Name"].clone()).collect::<Vec<_>>(),
            [json!("b"), json!("a")]
        );
        assert_eq!(
            f.q(&format!(
                "SELECT Name FROM Opportunity WHERE Id = '{a}' AND Name = 'A'"
            ))
            .len(),
            1
        );
        assert_eq!(
            f.q(&format!(
                "SELECT Name FROM Opportunity WHERE Id = '{a}' AND Name = 'b'"
            ))
            .len(),
            0
        );
        assert_eq!(
            f.q(&format!("SELECT Name FROM Opportunity WHERE Id != '{a}'"))
                .len(),
            2
        );
    }

    /// The index path and the general scan-and-sort path must agree.
    #[test]
    fn modstamp_index_agrees_with_full_sort() {
        let mut f = Fixture::new();
        for call in 0..20 {
            let ops = (0..7)
                .map(|i| DmlOp::Create {
                    object: "Opportunity".into(),
                    fields: body(opp(&format!("c{call}-{i}"))),
                })
                .collect();
            f.apply(ops, false, &format!("2024-03-10T10:{:02}:00Z", call % 10));
        }
        // Updates move records to later stamps.
        let ids: Vec<String> = f
            .q("SELECT Id FROM Opportunity")
            .iter()
            .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
            .collect();
        let ops = ids
            .iter()
            .step_by(5)
            .map(|id| DmlOp::Update {
                object: None,
                id: id.clone(),
                fields: body(json!({"Amount": 1})),
            })
            .collect();
        f.apply(ops, false, "2024-03-10T10:30:00Z");
        let ops = ids
            .iter()
            .skip(1)
            .step_by(9)
            .map(|id| DmlOp::Delete { id: id.clone() })
            .collect();
        f.apply(ops, false, "2024-03-10T10:31:00Z");
        let tie = format!(
            "(SystemModstamp = 2024-03-10T10:05:00Z AND Id > '{}') OR SystemModstamp > 2024-03-10T10:05:00Z",
            ids[40]
        );
        let names = |rows: Vec<Json>| {
            rows.into_iter()
                .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        for (cond, tail) in [
            ("SystemModstamp >= 2024-03-10T10:03:00Z", ""),
            (
                "SystemModstamp > 2024-03-10T10:03:00Z AND SystemModstamp <= 2024-03-10T10:30:00Z",
                " LIMIT 11",
            ),
            (
                "SystemModstamp >= 2024-03-10T10:03:00Z AND LastModifiedById != '005000000000000AAA'",
                " LIMIT 5 OFFSET 3",
            ),
            ("SystemModstamp = 2024-03-10T10:05:00Z", ""),
            (
                "SystemModstamp < 2024-03-10T10:05:00Z AND SystemModstamp > 2024-03-10T10:06:00Z",
                "",
            ),
            ("SystemModstamp = TODAY", ""),
            ("Name LIKE 'c1%'", " LIMIT 4"),
            (tie.as_str(), " LIMIT 9"),
            (
                "Name IN ('c1-1', 'C2-2', 'c3-3', 'c19-6') AND SystemModstamp > 2024-03-10T10:01:00Z",
                "",
            ),
            ("(Name = 'c4-4' OR Name = 'c5-5')", ""),
            ("NOT (SystemModstamp < 2024-03-10T10:08:00Z)", ""),
        ] {
            for dir in ["ASC", "DESC"] {
                let fast = format!(
                    "SELECT Id FROM Opportunity WHERE {cond} ORDER BY SystemModstamp {dir}, Id {dir}{tail}"
                );
                let slow = format!(
                    "SELECT Id FROM Opportunity WHERE {cond} ORDER BY SystemModstamp {dir}, Id {dir}, Name{tail}"
                );
                assert_eq!(names(f.q(&fast)), names(f.q(&slow)), "{fast}");
                for soql in [&fast, &slow] {
                    let now = t("2024-03-10T12:00:00Z");
                    let plan = crate::soql::plan(
                        &crate::soql::parse(soql).expect("parse"),
                        &f.db.schema,
                        now,
                    )
                    .expect("plan");
                    for all in [false, true] {
                        assert_eq!(
                            f.db.execute(&plan, all),
                            f.db.execute_by_scan(&plan, all),
                            "{soql} all={all}"
                        );
                    }
                }
                let fast_all =
                    f.db.query(&fast, true, "62.0", t("2024-03-10T12:00:00Z"))
                        .expect("all");
                let slow_all =
                    f.db.query(&slow, true, "62.0", t("2024-03-10T12:00:00Z"))
                        .expect("all");
                assert_eq!(names(fast_all), names(slow_all), "queryAll {fast}");
            }
        }
        // Ties are ordered by Id, which is creation order.
        let rows = names(f.q("SELECT Id FROM Opportunity WHERE SystemModstamp = 2024-03-10T10:00:00Z ORDER BY SystemModstamp, Id"));
        let mut sorted = rows.clone();
        sorted.sort();
        assert_eq!(rows, sorted);
        assert!(!rows.is_empty());
    }

    /// Random queries over random data: every fast path must return what a plain scan returns.
    #[test]
    fn random_queries_agree_with_a_plain_scan() {
        let mut f = Fixture::new();
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n.max(1)
        };
        let accounts: Vec<String> = (0..4)
            .map(|i| {
                f.create_ok(
                    "Account",
                    json!({"Name": format!("Acc{i}")}),
                    "2024-03-10T09:00:00Z",
                )
            })
            .collect();
        for call in 0..30 {
            let ops = (0..1 + rand(12))
                .map(|_| {
                    let mut b = opp(&format!("N{}", rand(40)));
                    if rand(3) > 0 {
                        b["Amount"] = json!(rand(10_000));
                    }
                    if rand(2) == 0 {
                        b["AccountId"] = json!(accounts[rand(4) as usize]);
                    }
                    DmlOp::Create {
                        object: "Opportunity".into(),
                        fields: body(b),
                    }
                })
                .collect();
            f.apply(
                ops,
                false,
                &format!(
                    "2024-03-10T10:{:02}:{:02}.{:03}Z",
                    rand(20),
                    rand(60),
                    rand(3) * 250
                ),
            );
            let _ = call;
        }
        let ids: Vec<String> = f
            .q_all("SELECT Id FROM Opportunity")
            .iter()
            .filter_map(|r| r["Id"].as_str().map(str::to_string))
            .collect();
        for _ in 0..40 {
            let id = ids[rand(ids.len() as u64) as usize].clone();
            let op = if rand(4) == 0 {
                DmlOp::Delete { id }
            } else {
                DmlOp::Update {
                    object: None,
                    id,
                    fields: body(json!({"Amount": rand(10_000)})),
                }
            };
            f.apply(
                vec![op],
                false,
                &format!("2024-03-10T10:{:02}:00Z", 20 + rand(20)),
            );
        }
        let stamp =
            |r: &mut dyn FnMut(u64) -> u64| format!("2024-03-10T10:{:02}:{:02}Z", r(45), r(60));
        let ops = ["=", "!=", "<", "<=", ">", ">="];
        for _ in 0..400 {
            let mut terms: Vec<String> = Vec::new();
            for _ in 0..rand(4) {
                let term = match rand(8) {
                    0 | 1 => format!(
                        "SystemModstamp {} {}",
                        ops[rand(6) as usize],
                        stamp(&mut rand)
                    ),
                    2 => format!("Amount {} {}", ops[rand(6) as usize], rand(10_000)),
                    3 => format!("Name IN ('N{}', 'n{}')", rand(40), rand(40)),
                    4 => format!(
                        "Id {} '{}'",
                        ops[rand(6) as usize],
                        ids[rand(ids.len() as u64) as usize]
                    ),
                    5 => format!(
                        "Id IN ('{}', '{}')",
                        ids[rand(ids.len() as u64) as usize],
                        &ids[rand(ids.len() as u64) as usize][..15]
                    ),
                    6 => format!("AccountId = '{}'", accounts[rand(4) as usize]),
                    _ => format!(
                        "(SystemModstamp = {} AND Id > '{}') OR SystemModstamp > {}",
                        stamp(&mut rand),
                        ids[rand(ids.len() as u64) as usize],
                        stamp(&mut rand)
                    ),
                };
                terms.push(if term.contains(" OR ") {
                    format!("({term})")
                } else {
                    term
                });
            }
            let dir = if rand(2) == 0 { "ASC" } else { "DESC" };
            let order = match rand(5) {
                0 => String::new(),
                1 => format!(" ORDER BY SystemModstamp {dir}"),
                2 => format!(" ORDER BY SystemModstamp {dir}, Id {dir}"),
                3 => format!(" ORDER BY Amount {dir} NULLS LAST, Name"),
                _ => format!(" ORDER BY Account.Name {dir}, SystemModstamp, Id"),
            };
            let mut soql = String::from("SELECT Id FROM Opportunity");
            if !terms.is_empty() {
                soql += &format!(" WHERE {}", terms.join(" AND "));
            }
            soql += &order;
            if rand(2) == 0 {
                soql += &format!(" LIMIT {}", rand(30));
            }
            if rand(3) == 0 {
                soql += &format!(" OFFSET {}", rand(30));
            }
            let plan = crate::soql::plan(
                &crate::soql::parse(&soql).expect("parse"),
                &f.db.schema,
                t("2024-03-10T12:00:00Z"),
            )
            .unwrap_or_else(|e| panic!("{soql}: {e:?}"));
            for all in [false, true] {
                let fast = f.db.execute(&plan, all);
                let scan = f.db.execute_by_scan(&plan, all);
                if order.is_empty() {
                    // No ORDER BY: any order is right, the set must match.
                    if plan.limit.is_none() && plan.offset == 0 {
                        let (mut a, mut b) = (fast.clone(), scan.clone());
                        a.sort_unstable();
                        b.sort_unstable();
                        assert_eq!(a, b, "{soql} all={all}");
                    } else {
                        assert_eq!(fast.len(), scan.len(), "{soql} all={all}");
                    }
                } else {
                    assert_eq!(fast, scan, "{soql} all={all}");
                }
            }
        }
    }

    #[test]
    fn cursors_page_and_expire_with_the_database() {
        let mut f = Fixture::new();
        let ops = (0..30)
            .map(|i| DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp(&format!("o{i:02}"))),
            })
            .collect();
        f.apply(ops, false, "2024-03-10T10:00:00Z");
        let now = t("2024-03-10T12:00:00Z");
        let c =
            f.db.query_cursor("SELECT Name FROM Opportunity ORDER BY Name", false, now)
                .expect("cursor");
        assert_eq!((c.len(), c.total_size()), (30, 30));
        let page = f.db.render_rows(&c, 10..20, "62.0").expect("page");
        assert_eq!(page.len(), 10);
        assert_eq!(page[0]["Name"], "o10");
        assert_eq!(f.db.render_rows(&c, 25..99, "62.0").expect("tail").len(), 5);
        let other = OrgDb::new(ORG);
        assert_eq!(
            other
                .render_rows(&c, 0..1, "62.0")
                .expect_err("stale")
                .error_code,
            "INVALID_QUERY_LOCATOR"
        );
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
        assert_eq!(g["sobjects"].as_array().map(Vec::len), Some(3));
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
