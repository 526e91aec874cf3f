//! Tests of the direction pass against in-memory fake ports: a HashMap org that keeps
//! Salesforce's system fields and counts calls, and a HashMap store whose page transaction is a
//! staged copy (so a failed commit loses the page, like a crash before the commit). This file
//! holds the fake org and the harness (the fake store is `fake_store.rs`); the tests are in its child modules, by concern: the
//! pipeline (`pipeline_tests.rs`, with the same pipeline over the real SQLite store),
//! convergence under random edits (`convergence_tests.rs`), parent accounts
//! (`parents_tests.rs`), pages in flight (`gate_tests.rs`).

use super::*;

#[path = "fake_store.rs"]
mod fake_store;
use fake_store::*;

use std::collections::BTreeMap;

use crate::config::ConflictPolicy;
use crate::store::{
    CycleOutcome, Direction, FailureBackoff, LinkWrite, NewFailure, NewNotification,
};
use crate::sync::mapping::same_value;
use crate::sync::ports::{Batch, FieldIn, PageTxPort, QueryKind, RecordQuery, WriteOutcome};
use crate::sync::rows::parse_datetime;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::TimeZone;
use serde_json::json;

use crate::store::{Failure, FailureClass, FailureState, InboxItem, schedule_after_failure};
use crate::sync::ports::{ErrorKind, RecordError, WriteOk};

// ---------------------------------------------------------------------------------------------
// Fake org
// ---------------------------------------------------------------------------------------------

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid time")
}

fn sf_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Calls {
    query: usize,
    query_more: usize,
    create: usize,
    update: usize,
    upsert: usize,
    delete: usize,
    undelete: usize,
}

impl Calls {
    fn total(&self) -> usize {
        self.query + self.query_more + self.writes()
    }
    fn writes(&self) -> usize {
        self.create + self.update + self.upsert + self.delete + self.undelete
    }
}

struct OrgState {
    prefix: &'static str,
    records: BTreeMap<String, Map<String, Value>>,
    next_id: u64,
    clock_ms: i64,
    batch_size: usize,
    cursors: HashMap<String, Vec<Map<String, Value>>>,
    next_cursor: u64,
    calls: Calls,
    limit_exceeded: bool,
    reject_marker: Option<String>,
    integration_user: String,
}

struct FakeOrg(Mutex<OrgState>);

const HUMAN: &str = "005HUMAN";

impl FakeOrg {
    fn new(prefix: &'static str) -> FakeOrg {
        FakeOrg(Mutex::new(OrgState {
            prefix,
            records: BTreeMap::new(),
            next_id: 0,
            clock_ms: 0,
            batch_size: 2000,
            cursors: HashMap::new(),
            next_cursor: 0,
            calls: Calls::default(),
            limit_exceeded: false,
            reject_marker: Some("REJECT".to_string()),
            integration_user: format!("005INT{prefix}"),
        }))
    }

    fn state(&self) -> MutexGuard<'_, OrgState> {
        self.0.lock().expect("fake org lock")
    }

    fn calls(&self) -> Calls {
        self.state().calls
    }

    fn reset_calls(&self) {
        self.state().calls = Calls::default();
    }

    /// Opportunities held.
    fn len(&self) -> usize {
        self.state()
            .records
            .values()
            .filter(|r| is_type(r, "Opportunity"))
            .count()
    }

    fn accounts(&self) -> Vec<Map<String, Value>> {
        self.state()
            .records
            .values()
            .filter(|r| is_type(r, "Account"))
            .cloned()
            .collect()
    }

    fn get(&self, id: &str) -> Map<String, Value> {
        self.state()
            .records
            .get(id)
            .cloned()
            .expect("record exists")
    }

    fn find_by_name(&self, name: &str) -> Vec<Map<String, Value>> {
        self.state()
            .records
            .values()
            .filter(|r| is_type(r, "Opportunity") && r.get("Name") == Some(&json!(name)))
            .cloned()
            .collect()
    }

    /// People's edits: several records in one call share one timestamp.
    fn human_create(&self, bodies: Vec<Value>) -> Vec<String> {
        self.human_create_in("Opportunity", bodies)
    }

    fn human_create_in(&self, object: &str, bodies: Vec<Value>) -> Vec<String> {
        let mut s = self.state();
        s.clock_ms += 1;
        let user = HUMAN.to_string();
        bodies
            .into_iter()
            .map(|b| {
                let Value::Object(body) = b else {
                    panic!("object body")
                };
                s.insert_new(object, body, &user)
            })
            .collect()
    }

    fn human_edit(&self, id: &str, fields: Value) {
        let mut s = self.state();
        s.clock_ms += 1;
        let Value::Object(fields) = fields else {
            panic!("object body")
        };
        s.apply(id, fields, HUMAN);
    }

    fn delete(&self, id: &str) {
        self.state().records.remove(id);
    }
}

impl OrgState {
    fn now(&self) -> DateTime<Utc> {
        base_time() + chrono::Duration::milliseconds(self.clock_ms)
    }

    fn insert_new(&mut self, object: &str, mut body: Map<String, Value>, user: &str) -> String {
        self.next_id += 1;
        let key = if object == "Account" { "001" } else { "006" };
        let id = format!("{key}{}{:012}", self.prefix, self.next_id);
        body.insert("Id".into(), json!(id));
        body.insert("attributes".into(), json!({ "type": object }));
        self.records.insert(id.clone(), Map::new());
        self.apply(&id, body, user);
        id
    }

    fn apply(&mut self, id: &str, fields: Map<String, Value>, user: &str) {
        let now = sf_time(self.now());
        let record = self.records.entry(id.to_string()).or_default();
        for (k, v) in fields {
            record.insert(k, v);
        }
        record.insert("SystemModstamp".into(), json!(now));
        record.insert("LastModifiedDate".into(), json!(now));
        record.insert("LastModifiedById".into(), json!(user));
    }

    fn rejects(&self, body: &Map<String, Value>) -> Option<RecordError> {
        let marker = self.reject_marker.as_ref()?;
        let name = body.get("Name").and_then(Value::as_str)?;
        name.contains(marker.as_str()).then(|| {
            RecordError::new(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "rejected by a validation rule",
            )
        })
    }

    fn limit(&self) -> Result<(), PortError> {
        if self.limit_exceeded {
            Err(PortError {
                kind: ErrorKind::Limit,
                code: "REQUEST_LIMIT_EXCEEDED".into(),
                message: "TotalRequests Limit exceeded.".into(),
            })
        } else {
            Ok(())
        }
    }

    fn batch(&mut self, mut rows: Vec<Map<String, Value>>) -> Batch {
        if rows.len() <= self.batch_size {
            return Batch {
                total_size: Some(rows.len() as u64),
                records: rows,
                next: None,
            };
        }
        let total = rows.len() as u64;
        let rest = rows.split_off(self.batch_size);
        self.next_cursor += 1;
        let cursor = format!("/query/{}", self.next_cursor);
        self.cursors.insert(cursor.clone(), rest);
        Batch {
            records: rows,
            next: Some(cursor),
            total_size: Some(total),
        }
    }
}

fn is_type(record: &Map<String, Value>, object: &str) -> bool {
    record.get("attributes").and_then(|a| a.get("type")) == Some(&json!(object))
}

/// SOQL's `IN`: text compares without regard to case.
fn field_matches(record: &Map<String, Value>, cond: &FieldIn) -> bool {
    let lower = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(Value::String(s.to_lowercase())),
        other => other.cloned(),
    };
    cond.values.iter().any(|v| {
        same_value(
            lower(record.get(&cond.field)).as_ref(),
            lower(Some(v)).as_ref(),
        )
    })
}

impl OrgPort for FakeOrg {
    async fn query(&self, query: &RecordQuery) -> Result<Batch, PortError> {
        let mut s = self.state();
        s.calls.query += 1;
        s.limit()?;
        let mut rows: Vec<Map<String, Value>> = s
            .records
            .values()
            .filter(|r| is_type(r, &query.object))
            .filter(|r| match &query.kind {
                QueryKind::Changes {
                    since,
                    exclude_modified_by,
                    ..
                } => {
                    let stamp = r
                        .get("SystemModstamp")
                        .and_then(Value::as_str)
                        .and_then(parse_datetime);
                    stamp.is_some_and(|t| t >= *since)
                        && exclude_modified_by
                            .as_ref()
                            .is_none_or(|u| r.get("LastModifiedById") != Some(&json!(u)))
                }
                QueryKind::ByIds(ids) | QueryKind::ByIdsWithDeleted(ids) => {
                    ids.iter().any(|id| r.get("Id") == Some(&json!(id)))
                }
                // The fake has no merges.
                QueryKind::MergedInto(_) => false,
                QueryKind::All => true,
                QueryKind::Lookup { any_of } => any_of
                    .iter()
                    .any(|conj| conj.iter().all(|c| field_matches(r, c))),
            })
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            let key = |r: &Map<String, Value>| {
                (
                    r.get("SystemModstamp")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    r.get("Id").and_then(Value::as_str).map(str::to_string),
                )
            };
            key(a).cmp(&key(b))
        });
        // Parent relationship, as the REST API nests it.
        for row in rows.iter_mut() {
            if !is_type(row, "Opportunity") {
                continue;
            }
            let parent = row
                .get("AccountId")
                .and_then(Value::as_str)
                .and_then(|id| s.records.get(id))
                .cloned()
                .map_or(Value::Null, Value::Object);
            row.insert("Account".into(), parent);
        }
        Ok(s.batch(rows))
    }

    async fn query_more(&self, cursor: &str) -> Result<Batch, PortError> {
        let mut s = self.state();
        s.calls.query_more += 1;
        s.limit()?;
        let rows = s.cursors.remove(cursor).ok_or_else(|| PortError {
            kind: ErrorKind::NeedsOperator,
            code: "INVALID_QUERY_LOCATOR".into(),
            message: "unknown cursor".into(),
        })?;
        Ok(s.batch(rows))
    }

    async fn create(
        &self,
        object: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let mut s = self.state();
        s.calls.create += 1;
        s.limit()?;
        assert!(records.len() <= 200, "collections take at most 200 records");
        s.clock_ms += 1;
        let user = s.integration_user.clone();
        Ok(records
            .iter()
            .map(|body| match s.rejects(body) {
                Some(e) => Err(e),
                None => Ok(WriteOk {
                    id: s.insert_new(object, body.clone(), &user),
                    created: true,
                }),
            })
            .collect())
    }

    async fn update(
        &self,
        _object: &str,
        records: &[(String, Map<String, Value>)],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let mut s = self.state();
        s.calls.update += 1;
        s.limit()?;
        assert!(records.len() <= 200, "collections take at most 200 records");
        s.clock_ms += 1;
        let user = s.integration_user.clone();
        Ok(records
            .iter()
            .map(|(id, body)| {
                if let Some(e) = s.rejects(body) {
                    return Err(e);
                }
                if !s.records.contains_key(id) {
                    return Err(RecordError::new("ENTITY_IS_DELETED", "entity is deleted"));
                }
                s.apply(id, body.clone(), &user);
                Ok(WriteOk {
                    id: id.clone(),
                    created: false,
                })
            })
            .collect())
    }

    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let mut s = self.state();
        s.calls.upsert += 1;
        s.limit()?;
        s.clock_ms += 1;
        let user = s.integration_user.clone();
        Ok(records
            .iter()
            .map(|body| {
                if let Some(e) = s.rejects(body) {
                    return Err(e);
                }
                let key = body.get(external_id_field).cloned();
                let existing = s
                    .records
                    .iter()
                    .find(|(_, r)| key.is_some() && r.get(external_id_field) == key.as_ref())
                    .map(|(id, _)| id.clone());
                match existing {
                    Some(id) => {
                        s.apply(&id, body.clone(), &user);
                        Ok(WriteOk { id, created: false })
                    }
                    None => Ok(WriteOk {
                        id: s.insert_new(object, body.clone(), &user),
                        created: true,
                    }),
                }
            })
            .collect())
    }

    /// The fake keeps no recycle bin: a deleted record is gone.
    async fn delete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
        let mut s = self.state();
        s.calls.delete += 1;
        s.limit()?;
        Ok(ids
            .iter()
            .map(|id| match s.records.remove(id) {
                Some(_) => Ok(WriteOk {
                    id: id.clone(),
                    created: false,
                }),
                None => Err(RecordError::new("ENTITY_IS_DELETED", "entity is deleted")),
            })
            .collect())
    }

    /// No recycle bin: nothing can be restored.
    async fn undelete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
        let mut s = self.state();
        s.calls.undelete += 1;
        s.limit()?;
        Ok(ids
            .iter()
            .map(|_| {
                Err(RecordError::new(
                    "UNDELETE_FAILED",
                    "Entity is not in the recycle bin",
                ))
            })
            .collect())
    }

    /// No deleted rows are ever read from the fake.
    async fn count_deleted(&self, _query: &RecordQuery) -> Result<u64, PortError> {
        let mut s = self.state();
        s.calls.query += 1;
        s.limit()?;
        Ok(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn mapping() -> Mapping {
    let fields: Vec<String> = ["Name", "Amount", "StageName"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Mapping::new(&fields, &BTreeMap::new(), &BTreeMap::new()).expect("mapping")
}

fn config(direction: Direction) -> PassConfig {
    let source = direction.source();
    PassConfig {
        cycle: 1,
        direction,
        object: "Opportunity".into(),
        conflict: ConflictPolicy::LastWriterWins,
        match_by: vec!["Name".into()],
        external_id_field: None,
        page_size: 200,
        in_flight: 4,
        lookback: Duration::from_secs(30),
        default_watermark: base_time() - chrono::Duration::days(1),
        filter: None,
        integration_user_id: Some(format!("005INT{}", source.as_str().to_ascii_uppercase())),
        skip_integration_user_changes: true,
        backoff: FailureBackoff {
            max_attempts: 3,
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        },
        account: AccountMode::None,
        deletes: crate::sync::pass_config::DeleteRules::default(),
    }
}

struct World {
    a: FakeOrg,
    b: FakeOrg,
    store: FakeStore,
    mapping: Mapping,
    /// The per-record events' counters of every pass this world runs.
    metrics: Metrics,
}

impl World {
    fn new() -> World {
        World {
            a: FakeOrg::new("A"),
            b: FakeOrg::new("B"),
            store: FakeStore::default(),
            mapping: mapping(),
            metrics: Metrics::default(),
        }
    }

    async fn run_with(
        &self,
        cfg: &PassConfig,
        cancel: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        match cfg.direction {
            Direction::AToB => {
                Pass::new(
                    cfg,
                    &self.mapping,
                    &self.a,
                    &self.b,
                    &self.store,
                    &self.metrics,
                )
                .run(cancel)
                .await
            }
            Direction::BToA => {
                Pass::new(
                    cfg,
                    &self.mapping,
                    &self.b,
                    &self.a,
                    &self.store,
                    &self.metrics,
                )
                .run(cancel)
                .await
            }
        }
    }

    async fn run(&self, direction: Direction) -> PassReport {
        self.run_with(&config(direction), &CancellationToken::new())
            .await
            .expect("pass succeeds")
    }

    fn reset_calls(&self) {
        self.a.reset_calls();
        self.b.reset_calls();
    }
}

fn opp(name: &str, amount: i64) -> Value {
    json!({"Name": name, "Amount": amount, "StageName": "Prospecting"})
}

#[path = "pipeline_tests.rs"]
mod pipeline;

#[path = "convergence_tests.rs"]
mod convergence;

#[path = "parents_tests.rs"]
mod parents;

#[path = "gate_tests.rs"]
mod gate;

/// A row whose pairs were all deleted or unlinked carries its latest tombstone (what the
/// undelete stage starts from) and is never matched with any of them.
#[tokio::test]
async fn a_row_without_a_live_link_carries_its_latest_tombstone() {
    let w = World::new();
    let link = |b_id: &str, state: crate::store::LinkState, minute: i64| Link {
        id: minute,
        object: "Opportunity".into(),
        a_id: "006A1".into(),
        b_id: b_id.into(),
        a_modstamp: None,
        b_modstamp: None,
        snapshot: Map::new(),
        state,
        deleted_at: (state == crate::store::LinkState::Tombstone)
            .then(|| base_time() + chrono::Duration::minutes(minute)),
        deleted_by: (state == crate::store::LinkState::Tombstone).then_some(Org::A),
        created_at: base_time(),
        updated_at: base_time(),
    };
    {
        let mut s = w.store.0.state.lock().expect("store lock");
        s.links
            .push(link("006B1", crate::store::LinkState::Tombstone, 1));
        s.links
            .push(link("006B2", crate::store::LinkState::Tombstone, 5));
        s.links
            .push(link("006B3", crate::store::LinkState::Unlinked, 9));
    }
    let cfg = config(Direction::AToB);
    let pass = Pass::new(&cfg, &w.mapping, &w.a, &w.b, &w.store, &w.metrics);
    let row = SourceRow {
        id: "006A1".into(),
        system_modstamp: base_time(),
        last_modified_date: base_time(),
        last_modified_by: None,
        values: Default::default(),
        parent: None,
        deleted: false,
    };
    let Ok(states) = pass.row_states(vec![row]).await else {
        panic!("row states")
    };
    assert_eq!(states[0].link, None);
    assert_eq!(
        states[0].tombstone.as_ref().map(|t| t.target_id.as_str()),
        Some("006B2")
    );
    assert_eq!(states[0].barred.len(), 3);
}
