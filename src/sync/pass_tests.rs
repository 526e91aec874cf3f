//! Tests of the direction pass against in-memory fake ports: a HashMap org that keeps
//! Salesforce's system fields and counts calls, and a HashMap store whose page transaction is a
//! staged copy (so a failed commit loses the page, like a crash before the commit). This file
//! holds the fakes and the harness; the tests are in its child modules, by concern: the
//! pipeline (`pipeline_tests.rs`, with the same pipeline over the real SQLite store),
//! convergence under random edits (`convergence_tests.rs`), parent accounts
//! (`parents_tests.rs`), pages in flight (`gate_tests.rs`).

use super::*;

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
}

impl Calls {
    fn total(&self) -> usize {
        self.query + self.query_more + self.create + self.update + self.upsert
    }
    fn writes(&self) -> usize {
        self.create + self.update + self.upsert
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
                records: rows,
                next: None,
            };
        }
        let rest = rows.split_off(self.batch_size);
        self.next_cursor += 1;
        let cursor = format!("/query/{}", self.next_cursor);
        self.cursors.insert(cursor.clone(), rest);
        Batch {
            records: rows,
            next: Some(cursor),
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
                QueryKind::ByIds(ids) => ids.iter().any(|id| r.get("Id") == Some(&json!(id))),
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
}

// ---------------------------------------------------------------------------------------------
// Fake store
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct StoreState {
    watermarks: HashMap<Org, DateTime<Utc>>,
    links: Vec<Link>,
    failures: Vec<Failure>,
    inbox: Vec<(InboxItem, bool)>,
    next_id: i64,
}

#[derive(Default)]
struct StoreInner {
    state: Mutex<StoreState>,
    /// Commits to fail (a crash between the writes and the commit).
    fail_commits: AtomicUsize,
    commits: AtomicUsize,
    /// Cancel this token when the n-th commit succeeds.
    cancel_after: Mutex<Option<(usize, CancellationToken)>>,
}

#[derive(Clone, Default)]
struct FakeStore(Arc<StoreInner>);

impl FakeStore {
    fn state(&self) -> StoreState {
        self.0.state.lock().expect("store lock").clone()
    }

    fn set_watermark(&self, org: Org, at: DateTime<Utc>) {
        self.0
            .state
            .lock()
            .expect("store lock")
            .watermarks
            .insert(org, at);
    }
}

struct FakeTx {
    store: Arc<StoreInner>,
    staged: StoreState,
}

fn link_side(link: &Link, org: Org) -> &str {
    match org {
        Org::A => &link.a_id,
        Org::B => &link.b_id,
    }
}

impl StorePort for FakeStore {
    type Tx = FakeTx;

    async fn watermark(
        &self,
        org: Org,
        _object: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.state().watermarks.get(&org).copied())
    }

    async fn links_by_ids(
        &self,
        org: Org,
        _object: &str,
        ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        Ok(self
            .state()
            .links
            .into_iter()
            .filter(|l| ids.iter().any(|id| id == link_side(l, org)))
            .collect())
    }

    async fn failures_for(
        &self,
        direction: Direction,
        _object: &str,
        source_ids: &[String],
    ) -> Result<Vec<Failure>, StoreError> {
        Ok(self
            .state()
            .failures
            .into_iter()
            .filter(|f| f.direction == direction && source_ids.contains(&f.source_id))
            .collect())
    }

    async fn due_failures(
        &self,
        direction: Direction,
        _object: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Failure>, StoreError> {
        Ok(self
            .state()
            .failures
            .into_iter()
            .filter(|f| {
                f.direction == direction
                    && f.state == FailureState::Pending
                    && f.next_attempt_at.is_some_and(|t| t <= now)
            })
            .take(limit as usize)
            .collect())
    }

    async fn pending_notifications(
        &self,
        org: Org,
        limit: u32,
    ) -> Result<Vec<InboxItem>, StoreError> {
        Ok(self
            .state()
            .inbox
            .into_iter()
            .filter(|(i, done)| !done && i.org == org)
            .map(|(i, _)| i)
            .take(limit as usize)
            .collect())
    }

    async fn mark_processed(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let mut s = self.0.state.lock().expect("store lock");
        for (item, done) in s.inbox.iter_mut() {
            if ids.contains(&item.id) {
                *done = true;
            }
        }
        Ok(ids.len() as u64)
    }

    async fn begin(&self) -> Result<FakeTx, StoreError> {
        Ok(FakeTx {
            store: self.0.clone(),
            staged: self.state(),
        })
    }
}

impl PageTxPort for FakeTx {
    async fn delete_link(&mut self, object: &str, a_id: &str) -> Result<bool, StoreError> {
        let links = &mut self.staged.links;
        let before = links.len();
        links.retain(|l| !(l.object == object && l.a_id == a_id));
        Ok(links.len() < before)
    }

    async fn upsert_link(&mut self, link: &LinkWrite) -> Result<(), StoreError> {
        let conflict = |detail: &str| StoreError::LinkConflict {
            object: link.object.clone(),
            a_id: link.a_id.clone(),
            b_id: link.b_id.clone(),
            detail: detail.to_string(),
        };
        let links = &mut self.staged.links;
        if links
            .iter()
            .any(|l| l.b_id == link.b_id && l.a_id != link.a_id)
        {
            return Err(conflict("B record already linked"));
        }
        match links.iter_mut().find(|l| l.a_id == link.a_id) {
            Some(l) if l.b_id != link.b_id => return Err(conflict("A record already linked")),
            Some(l) => {
                l.a_modstamp = link.a_modstamp.or(l.a_modstamp);
                l.b_modstamp = link.b_modstamp.or(l.b_modstamp);
                l.snapshot = link.snapshot.clone();
            }
            None => links.push(Link {
                object: link.object.clone(),
                a_id: link.a_id.clone(),
                b_id: link.b_id.clone(),
                a_modstamp: link.a_modstamp,
                b_modstamp: link.b_modstamp,
                snapshot: link.snapshot.clone(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }),
        }
        Ok(())
    }

    async fn record_failure(
        &mut self,
        failure: &NewFailure,
        policy: &FailureBackoff,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let failures = &mut self.staged.failures;
        let existing = failures
            .iter()
            .position(|f| f.direction == failure.direction && f.source_id == failure.source_id);
        let attempts = match existing {
            Some(i) if failure.source_modstamp > failures[i].source_modstamp => 1,
            Some(i) => failures[i].attempts + 1,
            None => 1,
        };
        let (state, next_attempt_at) = schedule_after_failure(attempts, failure.class, policy, now);
        self.staged.next_id += 1;
        let row = Failure {
            id: existing.map_or(self.staged.next_id, |i| failures[i].id),
            direction: failure.direction,
            object: failure.object.clone(),
            source_id: failure.source_id.clone(),
            target_id: failure.target_id.clone(),
            source_modstamp: failure.source_modstamp,
            error_code: failure.error_code.clone(),
            message: failure.message.clone(),
            class: failure.class,
            sent: failure.sent.clone(),
            attempts,
            next_attempt_at,
            state,
            created_at: now,
            updated_at: now,
        };
        match existing {
            Some(i) => failures[i] = row,
            None => failures.push(row),
        }
        Ok(())
    }

    async fn clear_failure(
        &mut self,
        direction: Direction,
        _object: &str,
        source_id: &str,
    ) -> Result<(), StoreError> {
        self.staged
            .failures
            .retain(|f| !(f.direction == direction && f.source_id == source_id));
        Ok(())
    }

    async fn insert_notifications(
        &mut self,
        notifications: &[NewNotification],
    ) -> Result<(), StoreError> {
        for n in notifications {
            let known = self
                .staged
                .inbox
                .iter()
                .any(|(i, _)| i.org == n.org && i.notification_id == n.notification_id);
            if !known {
                self.staged.next_id += 1;
                let item = InboxItem {
                    id: self.staged.next_id,
                    org: n.org,
                    notification_id: n.notification_id.clone(),
                    object: n.object.clone(),
                    record_id: n.record_id.clone(),
                    received_at: Utc::now(),
                };
                self.staged.inbox.push((item, false));
            }
        }
        Ok(())
    }

    async fn mark_processed(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        for (item, done) in self.staged.inbox.iter_mut() {
            if ids.contains(&item.id) {
                *done = true;
            }
        }
        Ok(())
    }

    async fn advance_watermark(
        &mut self,
        org: Org,
        _object: &str,
        value: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let entry = self.staged.watermarks.entry(org).or_insert(value);
        *entry = (*entry).max(value);
        Ok(())
    }

    async fn commit(self) -> Result<(), StoreError> {
        let failing = self.store.fail_commits.load(Ordering::SeqCst);
        if failing > 0 {
            self.store.fail_commits.store(failing - 1, Ordering::SeqCst);
            return Err(StoreError::Corrupt("injected crash before commit".into()));
        }
        *self.store.state.lock().expect("store lock") = self.staged;
        let n = self.store.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((at, token)) = &*self.store.cancel_after.lock().expect("lock")
            && *at == n
        {
            token.cancel();
        }
        Ok(())
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
