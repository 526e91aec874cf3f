//! Tests of the direction pass against in-memory fake ports: a HashMap org that keeps
//! Salesforce's system fields and counts calls, and a HashMap store whose page transaction is a
//! staged copy (so a failed commit loses the page, like a crash before the commit).

use super::*;

use std::collections::BTreeMap;

use crate::store::{CycleOutcome, LinkWrite, NewFailure, NewNotification};
use crate::sync::mapping::same_value;
use crate::sync::ports::{Batch, FieldIn, PageTxPort, QueryKind, RecordQuery, WriteOutcome};
use crate::sync::rows::parse_datetime;

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
}

impl World {
    fn new() -> World {
        World {
            a: FakeOrg::new("A"),
            b: FakeOrg::new("B"),
            store: FakeStore::default(),
            mapping: mapping(),
        }
    }

    async fn run_with(
        &self,
        cfg: &PassConfig,
        cancel: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        match cfg.direction {
            Direction::AToB => {
                Pass::new(cfg, &self.mapping, &self.a, &self.b, &self.store)
                    .run(cancel)
                    .await
            }
            Direction::BToA => {
                Pass::new(cfg, &self.mapping, &self.b, &self.a, &self.store)
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

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn first_sync_creates_and_links_every_record() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("One", 10), opp("Two", 20)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.read, 2);
    assert_eq!(report.created, 2);
    assert_eq!(report.failed, 0);
    assert_eq!(report.outcome, PassOutcome::Completed);
    assert_eq!(w.b.len(), 2);
    let state = w.store.state();
    assert_eq!(state.links.len(), 2);
    for id in &ids {
        let link = state.links.iter().find(|l| &l.a_id == id).expect("linked");
        let b = w.b.get(&link.b_id);
        assert_eq!(
            w.mapping.to_canonical(Org::B, &b),
            w.mapping.to_canonical(Org::A, &w.a.get(id))
        );
    }
    // The watermark is the page's highest SystemModstamp.
    let a_stamp = parse_datetime(
        w.a.get(&ids[0])["SystemModstamp"]
            .as_str()
            .expect("modstamp"),
    );
    assert_eq!(state.watermarks.get(&Org::A).copied(), a_stamp);
}

#[tokio::test]
async fn ties_1000_rows_one_modstamp_page_200_all_arrive_within_the_call_bound() {
    let w = World::new();
    let bodies = (0..1000).map(|i| opp(&format!("Deal {i:04}"), i)).collect();
    w.a.human_create(bodies);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1000);
    assert_eq!(report.pages, 5);
    assert_eq!(w.b.len(), 1000);
    assert_eq!(w.store.state().links.len(), 1000);
    // ceil(X/2000) + 2*ceil(X/page_size) + 2 = 1 + 10 + 2.
    let calls = w.a.calls().total() + w.b.calls().total();
    assert!(
        calls <= 13,
        "{calls} calls: {:?} {:?}",
        w.a.calls(),
        w.b.calls()
    );
    assert_eq!(report.api_calls as usize, calls);
    assert_eq!(w.b.calls().create, 5);

    // Quiescence: the replay of the shared timestamp costs one query and no write.
    w.reset_calls();
    let again = w.run(Direction::AToB).await;
    assert_eq!(again.skipped, 1000);
    assert_eq!(w.a.calls().total(), 1);
    assert_eq!(w.b.calls().total(), 0);
    // Our own creates do not come back: filtered by LastModifiedById...
    let back = w.run(Direction::BToA).await;
    assert_eq!(back.read, 0);
    // ...and recognised by the snapshot when that filter is off.
    w.reset_calls();
    let mut cfg = config(Direction::BToA);
    cfg.skip_integration_user_changes = false;
    let echo = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.read, 1000);
    assert_eq!(echo.skipped, 1000);
    assert_eq!(w.a.calls().writes() + w.b.calls().writes(), 0);
    assert_eq!(w.a.calls().query, 0, "no lookup for echoes");
}

#[tokio::test]
async fn crash_between_write_and_commit_then_rerun_creates_no_duplicate() {
    let w = World::new();
    w.a.human_create((0..5).map(|i| opp(&format!("Deal {i}"), i)).collect());
    w.store.0.fail_commits.store(1, Ordering::SeqCst);
    let crashed = w
        .run_with(&config(Direction::AToB), &CancellationToken::new())
        .await;
    assert!(matches!(crashed, Err(PassError::Store(_))));
    // The writes happened, the page's outcomes did not.
    assert_eq!(w.b.len(), 5);
    let state = w.store.state();
    assert!(state.links.is_empty());
    assert!(state.watermarks.is_empty());

    // The rerun finds the copies by Name and links them: no second copy.
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.linked, 5);
    assert_eq!(report.created, 0);
    assert_eq!(w.b.len(), 5);
    assert_eq!(w.store.state().links.len(), 5);
}

#[tokio::test]
async fn crash_with_external_id_field_replays_as_upsert_without_duplicate() {
    let w = World::new();
    let ids =
        w.a.human_create((0..5).map(|i| opp("Same name", i)).collect());
    let mut cfg = config(Direction::AToB);
    cfg.external_id_field = Some("Sync_Id__c".into());
    w.store.0.fail_commits.store(1, Ordering::SeqCst);
    assert!(w.run_with(&cfg, &CancellationToken::new()).await.is_err());
    assert_eq!(w.b.calls().upsert, 1);
    assert_eq!(w.b.len(), 5);
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    // Found again through the external id (even though all share one Name).
    assert_eq!(report.linked, 5);
    assert_eq!(report.failed, 0);
    assert_eq!(w.b.len(), 5);
    let state = w.store.state();
    for id in &ids {
        let link = state.links.iter().find(|l| &l.a_id == id).expect("linked");
        assert_eq!(w.b.get(&link.b_id)["Sync_Id__c"], json!(id));
    }
}

#[tokio::test]
async fn failing_record_does_not_block_its_page_and_is_retried() {
    let w = World::new();
    let ids = w.a.human_create(vec![
        opp("Good 1", 1),
        opp("Bad REJECT", 2),
        opp("Good 2", 3),
    ]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 2);
    assert_eq!(report.failed, 1);
    assert_eq!(w.b.len(), 2);
    let state = w.store.state();
    assert_eq!(state.failures.len(), 1);
    let failure = &state.failures[0];
    assert_eq!(failure.source_id, ids[1]);
    assert_eq!(failure.error_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    // Needs an edit: waits for the source record to change (or an operator), on no timer.
    assert_eq!(failure.state, FailureState::Waiting);
    assert_eq!(failure.class, FailureClass::NeedsEdit);
    assert_eq!(failure.next_attempt_at, None);
    // The values that were sent are kept with it.
    let sent = failure.sent.as_ref().expect("values sent");
    assert_eq!(sent.get("Name"), Some(&json!("Bad REJECT")));
    // The watermark moved past the page anyway: the outcome is durable.
    assert!(state.watermarks.contains_key(&Org::A));

    // Reading the same version again leaves it to the queue, at no cost.
    w.reset_calls();
    let again = w.run(Direction::AToB).await;
    assert_eq!(again.failed, 0);
    assert_eq!(w.b.calls().total(), 0);

    // The validation is fixed and an operator retries: it syncs and leaves the queue.
    w.b.state().reject_marker = None;
    {
        let mut s = w.store.0.state.lock().expect("lock");
        for f in s.failures.iter_mut() {
            f.state = FailureState::Pending;
            f.attempts = 0;
            f.next_attempt_at = Some(Utc::now());
        }
    }
    let retried = w.run(Direction::AToB).await;
    assert_eq!(retried.created, 1);
    assert_eq!(w.b.len(), 3);
    assert!(w.store.state().failures.is_empty());
}

#[tokio::test]
async fn retryable_failures_back_off_then_die_after_max_attempts() {
    let w = World::new();
    w.a.human_create(vec![opp("Locked", 1)]);
    let mut cfg = config(Direction::AToB);
    cfg.backoff.max_attempts = 2;
    // The whole create call fails with a retryable error.
    struct Flaky<'o>(&'o FakeOrg);
    impl OrgPort for Flaky<'_> {
        async fn query(&self, q: &RecordQuery) -> Result<Batch, PortError> {
            self.0.query(q).await
        }
        async fn query_more(&self, c: &str) -> Result<Batch, PortError> {
            self.0.query_more(c).await
        }
        async fn create(
            &self,
            _: &str,
            _: &[Map<String, Value>],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            Err(PortError {
                kind: ErrorKind::Transient,
                code: "SERVER_UNAVAILABLE".into(),
                message: "503".into(),
            })
        }
        async fn update(
            &self,
            o: &str,
            r: &[(String, Map<String, Value>)],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            self.0.update(o, r).await
        }
        async fn upsert(
            &self,
            o: &str,
            f: &str,
            r: &[Map<String, Value>],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            self.0.upsert(o, f, r).await
        }
    }
    let flaky = Flaky(&w.b);
    let cancel = CancellationToken::new();
    let pass = Pass::new(&cfg, &w.mapping, &w.a, &flaky, &w.store);
    let first = pass.sync_changes(&cancel).await.expect("pass");
    assert_eq!(first.failed, 1);
    let f = &w.store.state().failures[0];
    assert_eq!((f.state, f.attempts), (FailureState::Pending, 1));
    assert_eq!(f.error_code, "SERVER_UNAVAILABLE");
    let second = pass.retry_failures(&cancel).await.expect("retry");
    assert_eq!(second.failed, 1);
    let f = &w.store.state().failures[0];
    assert_eq!((f.state, f.attempts), (FailureState::Dead, 2));
    // Dead: no longer due.
    let third = pass.retry_failures(&cancel).await.expect("retry");
    assert_eq!(third.read, 0);
}

#[tokio::test]
async fn newer_version_replaces_the_queued_failure_and_is_tried_now() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Bad REJECT", 1)]);
    w.run(Direction::AToB).await;
    assert_eq!(w.store.state().failures.len(), 1);
    w.a.human_edit(&ids[0], json!({"Name": "Fixed"}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1);
    assert!(w.store.state().failures.is_empty());
}

#[tokio::test]
async fn linked_edit_is_updated_and_its_echo_is_quiet() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 10)]);
    w.run(Direction::AToB).await;
    w.a.human_edit(&ids[0], json!({"Amount": 99.0}));
    w.reset_calls();
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.calls().update, 1);
    let b = w.b.find_by_name("Deal");
    assert_eq!(b[0]["Amount"], json!(99));

    // People share the integration user: our update comes back, the snapshot stops it.
    let mut cfg = config(Direction::BToA);
    cfg.skip_integration_user_changes = false;
    w.reset_calls();
    let echo = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.skipped, echo.read);
    assert_eq!(w.a.calls().total() + w.b.calls().writes(), 0);
}

#[tokio::test]
async fn target_edited_after_the_source_is_not_overwritten_and_travels_back() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 10)]);
    w.run(Direction::AToB).await;
    w.run(Direction::BToA).await;
    let b_id = w.store.state().links[0].b_id.clone();
    // Both edit Amount; B's edit is later.
    w.a.human_edit(&ids[0], json!({"Amount": 11}));
    w.b.state().clock_ms += 5;
    w.b.human_edit(&b_id, json!({"Amount": 22}));

    let ab = w.run(Direction::AToB).await;
    assert_eq!(ab.conflicts, 1);
    assert_eq!(ab.updated, 0);
    assert_eq!(w.b.get(&b_id)["Amount"], json!(22));
    let ba = w.run(Direction::BToA).await;
    assert_eq!(ba.updated, 1);
    assert_eq!(w.a.get(&ids[0])["Amount"], json!(22));
    // Converged, then quiet.
    w.reset_calls();
    w.run(Direction::AToB).await;
    w.run(Direction::BToA).await;
    assert_eq!(w.a.calls().writes() + w.b.calls().writes(), 0);
}

#[tokio::test]
async fn a_wins_overwrites_a_newer_target() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 10)]);
    w.run(Direction::AToB).await;
    let b_id = w.store.state().links[0].b_id.clone();
    w.a.human_edit(&ids[0], json!({"Amount": 11}));
    w.b.state().clock_ms += 5;
    w.b.human_edit(&b_id, json!({"Amount": 22}));
    let mut cfg = config(Direction::AToB);
    cfg.conflict = ConflictPolicy::AWins;
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(report.conflicts, 1);
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.get(&b_id)["Amount"], json!(11));
}

#[tokio::test]
async fn first_link_to_a_newer_target_is_carried_back_through_the_inbox() {
    let w = World::new();
    // Both orgs already hold "Deal"; B's copy is newer and differs. B->A has read past it.
    let a_ids = w.a.human_create(vec![opp("Deal", 1)]);
    w.b.state().clock_ms += 10;
    w.b.human_create(vec![opp("Deal", 2)]);
    w.store
        .set_watermark(Org::B, base_time() + chrono::Duration::days(1));

    let ab = w.run(Direction::AToB).await;
    assert_eq!(ab.linked, 1);
    assert_eq!(ab.reversed, 1);
    assert_eq!(ab.conflicts, 1);
    assert_eq!(w.b.find_by_name("Deal")[0]["Amount"], json!(2));
    // B->A reads nothing new, but the inbox carries B's value to A.
    let ba = w.run(Direction::BToA).await;
    assert_eq!(ba.updated, 1);
    assert_eq!(w.a.get(&a_ids[0])["Amount"], json!(2));
    assert!(w.store.state().inbox.iter().all(|(_, done)| *done));
}

#[tokio::test]
async fn limit_exceeded_pauses_without_recording_anything() {
    let w = World::new();
    w.a.human_create(vec![opp("Deal", 1)]);
    w.b.state().limit_exceeded = true;
    let report = w.run(Direction::AToB).await;
    assert!(matches!(
        report.outcome,
        PassOutcome::Paused { org: Org::B, .. }
    ));
    let state = w.store.state();
    assert!(state.failures.is_empty());
    assert!(state.links.is_empty());
    assert!(state.watermarks.is_empty());
    // Resumes next cycle.
    w.b.state().limit_exceeded = false;
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1);
}

/// Cancels the pass after its first commit; returns the pages it committed and the records
/// B then holds, and checks that the next run picks up the rest.
async fn cancel_after_first_commit(in_flight: usize) -> (u64, usize) {
    let w = World::new();
    w.a.human_create((0..1000).map(|i| opp(&format!("D{i}"), i)).collect());
    let cancel = CancellationToken::new();
    *w.store.0.cancel_after.lock().expect("lock") = Some((1, cancel.clone()));
    let cfg = PassConfig {
        in_flight,
        ..config(Direction::AToB)
    };
    let report = w.run_with(&cfg, &cancel).await.expect("pass");
    assert_eq!(report.outcome, PassOutcome::Cancelled);
    assert!(w.store.state().watermarks.contains_key(&Org::A));
    let done = w.b.len();
    assert_eq!(done as u64, report.created);
    // The next run picks up the rest; the committed pages are a free replay.
    let rest = w.run(Direction::AToB).await;
    assert_eq!(rest.created as usize, 1000 - done);
    assert_eq!(rest.skipped as usize, done);
    assert_eq!(w.b.len(), 1000);
    (report.pages, done)
}

#[tokio::test]
async fn cancellation_stops_between_pages_after_committing_the_page_in_flight() {
    assert_eq!(cancel_after_first_commit(1).await, (1, 200));
}

#[tokio::test]
async fn cancellation_finishes_the_pages_in_flight_and_starts_no_other() {
    // Four pages start together; the cancel comes with the first commit: the three others
    // finish and commit, the fifth never starts.
    assert_eq!(cancel_after_first_commit(4).await, (4, 800));
}

#[tokio::test]
async fn deleted_linked_target_is_a_failure_never_a_recreation() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 1)]);
    w.run(Direction::AToB).await;
    let b_id = w.store.state().links[0].b_id.clone();
    w.b.delete(&b_id);
    w.a.human_edit(&ids[0], json!({"Amount": 5}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.failed, 1);
    assert_eq!(w.b.len(), 0);
    let failure = &w.store.state().failures[0];
    assert_eq!(failure.error_code, "LINKED_TARGET_MISSING");
    assert_eq!(failure.target_id.as_deref(), Some(b_id.as_str()));
}

#[tokio::test]
async fn ambiguous_match_is_a_failure_naming_every_candidate() {
    let w = World::new();
    let b_ids = w.b.human_create(vec![opp("Twin", 1), opp("Twin", 2)]);
    w.a.state().clock_ms += 10;
    w.a.human_create(vec![opp("Twin", 3)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.failed, 1);
    assert_eq!(w.b.len(), 2);
    let failure = &w.store.state().failures[0];
    assert_eq!(failure.error_code, "AMBIGUOUS_MATCH");
    assert!(b_ids.iter().all(|id| failure.message.contains(id.as_str())));
}

#[tokio::test]
async fn two_new_records_with_one_name_become_two() {
    let w = World::new();
    w.a.human_create(vec![opp("Same", 1), opp("Same", 2)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 2);
    assert_eq!(w.b.find_by_name("Same").len(), 2);
}

#[tokio::test]
async fn renamed_record_stays_linked() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Old name", 1)]);
    w.run(Direction::AToB).await;
    w.a.human_edit(&ids[0], json!({"Name": "New name"}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.len(), 1);
    assert_eq!(w.b.find_by_name("New name").len(), 1);
}

#[tokio::test]
async fn mapped_fields_and_values_are_written_in_the_target_form() {
    let mut w = World::new();
    let fields: Vec<String> = ["Name", "StageName"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    w.mapping = Mapping::new(
        &fields,
        &BTreeMap::from([("StageName".to_string(), "Stage__c".to_string())]),
        &BTreeMap::from([(
            "StageName".to_string(),
            BTreeMap::from([("Prospecting".to_string(), "Lead".to_string())]),
        )]),
    )
    .expect("mapping");
    w.a.human_create(vec![json!({"Name": "Deal", "StageName": "Prospecting"})]);
    w.run(Direction::AToB).await;
    let b = &w.b.find_by_name("Deal")[0];
    assert_eq!(b["Stage__c"], json!("Lead"));
    // Back in A's terms, B's copy equals A's: an echo.
    let mut cfg = config(Direction::BToA);
    cfg.skip_integration_user_changes = false;
    let echo = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.skipped, 1);
}

#[tokio::test]
async fn parse_rows_reads_salesforce_datetimes_and_rejects_bad_rows() {
    let m = mapping();
    let Value::Object(record) = json!({
        "attributes": {"type": "Opportunity"},
        "Id": "006A", "SystemModstamp": "2013-05-20T20:49:32.000+0000",
        "LastModifiedDate": "2013-05-20T20:49:32.123Z", "LastModifiedById": "005X",
        "Name": "x", "Amount": 5000.0
    }) else {
        panic!("object")
    };
    let row = parse_source_row(Org::A, &m, &record).expect("row");
    assert_eq!(row.values.get("Amount"), Some(&json!(5000)));
    assert_eq!(row.last_modified_date.timestamp_subsec_millis(), 123);
    let mut bad = record.clone();
    bad.remove("SystemModstamp");
    let err = parse_source_row(Org::A, &m, &bad).expect_err("no modstamp");
    assert!(
        err.contains("006A") && err.contains("SystemModstamp"),
        "{err}"
    );
    bad.remove("Id");
    assert!(parse_target_row(Org::B, &m, None, &bad).is_err());
}

// ---------------------------------------------------------------------------------------------
// The same pipeline over the real SQLite store (the adapter in `adapters.rs`).
// ---------------------------------------------------------------------------------------------

async fn run_real(
    direction: Direction,
    a: &FakeOrg,
    b: &FakeOrg,
    store: &crate::store::Store,
    mapping: &Mapping,
) -> PassReport {
    let cfg = config(direction);
    let cancel = CancellationToken::new();
    let result = match direction {
        Direction::AToB => Pass::new(&cfg, mapping, a, b, store).run(&cancel).await,
        Direction::BToA => Pass::new(&cfg, mapping, b, a, store).run(&cancel).await,
    };
    result.expect("pass over the real store")
}

#[tokio::test]
async fn real_store_records_links_failures_watermarks_and_reverse_carries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let store = crate::store::Store::open(&url).await.expect("store");
    let (a, b, m) = (FakeOrg::new("A"), FakeOrg::new("B"), mapping());
    let ids = a.human_create(vec![opp("One", 1), opp("Two REJECT", 2), opp("Three", 3)]);

    let ab = run_real(Direction::AToB, &a, &b, &store, &m).await;
    assert_eq!((ab.created, ab.failed), (2, 1));
    let links = store
        .links_by_a_ids("Opportunity", &ids)
        .await
        .expect("links");
    assert_eq!(links.len(), 2);
    assert!(links.iter().all(|l| !l.snapshot.is_empty()));
    let failure = store
        .failure_for(Direction::AToB, "Opportunity", &ids[1])
        .await
        .expect("read")
        .expect("queued");
    assert_eq!(failure.error_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert!(
        store
            .watermark(Org::A, "Opportunity")
            .await
            .expect("watermark")
            .is_some()
    );

    // A conflict B wins, carried back through the real inbox.
    let one = links.iter().find(|l| l.a_id == ids[0]).expect("link");
    a.human_edit(&ids[0], json!({"Amount": 10}));
    b.state().clock_ms += 5;
    b.human_edit(&one.b_id, json!({"Amount": 20, "StageName": "Closed Won"}));
    let ab = run_real(Direction::AToB, &a, &b, &store, &m).await;
    assert_eq!((ab.conflicts, ab.reversed, ab.updated), (1, 1, 0));
    let ba = run_real(Direction::BToA, &a, &b, &store, &m).await;
    assert_eq!(ba.updated, 1);
    assert_eq!(a.get(&ids[0])["Amount"], json!(20));
    assert_eq!(a.get(&ids[0])["StageName"], json!("Closed Won"));
    assert!(
        store
            .pending_notifications(Org::B, 10)
            .await
            .expect("inbox")
            .is_empty()
    );

    // Quiet afterwards: no writes either way.
    a.reset_calls();
    b.reset_calls();
    run_real(Direction::AToB, &a, &b, &store, &m).await;
    run_real(Direction::BToA, &a, &b, &store, &m).await;
    assert_eq!(a.calls().writes() + b.calls().writes(), 0);
    assert_eq!(a.calls().query + b.calls().query, 2);
}

// ---------------------------------------------------------------------------------------------
// Convergence under random edits (DESIGN §2.1, §2.2, §2.3), several seeds.
// ---------------------------------------------------------------------------------------------

async fn cycle(w: &World, number: u64) -> crate::sync::test_support::CycleReport {
    let mut ab = config(Direction::AToB);
    let mut ba = config(Direction::BToA);
    ab.cycle = number;
    ba.cycle = number;
    ab.page_size = 7;
    ba.page_size = 7;
    crate::sync::test_support::run_cycle(
        &ab,
        &ba,
        &w.mapping,
        &w.a,
        &w.b,
        &w.store,
        &CancellationToken::new(),
    )
    .await
}

fn random_edit(rng: &mut rand::rngs::StdRng, org: &FakeOrg, serial: &mut u32) {
    use rand::Rng;
    let ids: Vec<String> = org.state().records.keys().cloned().collect();
    if ids.is_empty() || rng.random_bool(0.3) {
        *serial += 1;
        org.human_create(vec![opp(&format!("R{serial}"), rng.random_range(0..100))]);
        return;
    }
    let id = &ids[rng.random_range(0..ids.len())];
    match rng.random_range(0..3) {
        0 => org.human_edit(id, json!({"Amount": rng.random_range(0..100)})),
        1 => {
            let stage = ["Prospecting", "Closed Won", "Closed Lost"][rng.random_range(0..3)];
            org.human_edit(id, json!({ "StageName": stage }));
        }
        _ => {
            *serial += 1;
            org.human_edit(id, json!({"Name": format!("R{serial}")}));
        }
    }
}

#[tokio::test]
async fn random_edits_in_both_orgs_converge_without_duplicates_then_go_quiet() {
    use rand::{Rng, SeedableRng};
    for seed in 0..20u64 {
        let w = World::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut serial = 0;
        for n in 0..6 {
            for _ in 0..rng.random_range(1..12) {
                let org = if rng.random_bool(0.5) { &w.a } else { &w.b };
                random_edit(&mut rng, org, &mut serial);
                // Time passes unevenly in the two orgs.
                org.state().clock_ms += rng.random_range(0..3);
            }
            let report = cycle(&w, n).await;
            assert!(report.complete(), "seed {seed} cycle {n}: {report:?}");
        }
        // People stop editing: within two cycles every pair is equal.
        for n in 6..8 {
            cycle(&w, n).await;
        }
        let state = w.store.state();
        assert!(
            state.failures.is_empty(),
            "seed {seed}: {:?}",
            state.failures
        );
        assert_eq!(w.a.len(), w.b.len(), "seed {seed}");
        assert_eq!(state.links.len(), w.a.len(), "seed {seed}");
        for link in &state.links {
            let a = w.mapping.to_canonical(Org::A, &w.a.get(&link.a_id));
            let b = w.mapping.to_canonical(Org::B, &w.b.get(&link.b_id));
            assert_eq!(a, b, "seed {seed}: {} <-> {}", link.a_id, link.b_id);
        }
        // And quiet: no writes, one query per direction.
        w.reset_calls();
        cycle(&w, 8).await;
        assert_eq!(
            w.a.calls().writes() + w.b.calls().writes(),
            0,
            "seed {seed}"
        );
        assert_eq!(w.a.calls().total() + w.b.calls().total(), 2, "seed {seed}");
    }
}

#[tokio::test]
async fn inbox_notifications_are_fetched_fresh_deduplicated_and_marked_processed() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Pushed", 1)]);
    // The watermark is already past the record: only the inbox can bring it.
    w.store
        .set_watermark(Org::A, base_time() + chrono::Duration::days(1));
    {
        let mut s = w.store.0.state.lock().expect("lock");
        for (n, (object, record)) in [
            ("Opportunity", ids[0].as_str()),
            ("Opportunity", ids[0].as_str()),
            ("Account", "001A"),
            ("Opportunity", "006A-deleted"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = n as i64 + 100;
            s.inbox.push((
                InboxItem {
                    id,
                    org: Org::A,
                    notification_id: format!("04l{id}"),
                    object: object.into(),
                    record_id: record.into(),
                    received_at: Utc::now(),
                },
                false,
            ));
        }
    }
    // The notification carried stale values; the record is read fresh.
    w.a.human_edit(&ids[0], json!({"Amount": 7}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1);
    assert_eq!(w.b.find_by_name("Pushed")[0]["Amount"], json!(7));
    assert!(w.store.state().inbox.iter().all(|(_, done)| *done));
    // One fetch by id for the whole batch, one lookup, one create.
    assert_eq!(w.a.calls().query, 2, "{:?}", w.a.calls());
}

// ---------------------------------------------------------------------------------------------
// Parent accounts
// ---------------------------------------------------------------------------------------------

fn sync_account_world() -> (World, PassConfig) {
    let mut w = World::new();
    w.mapping = mapping().with_parent_field("Account.Name");
    let mut cfg = config(Direction::AToB);
    cfg.account = AccountMode::SyncByName {
        fields: vec!["Name".into(), "Industry".into()],
    };
    (w, cfg)
}

#[tokio::test]
async fn sync_account_finds_parents_by_name_and_creates_missing_ones_once_per_page() {
    let (w, cfg) = sync_account_world();
    let acme_a = w.a.human_create_in(
        "Account",
        vec![json!({"Name": "Acme", "Industry": "Retail"})],
    );
    let globex_a =
        w.a.human_create_in("Account", vec![json!({"Name": "Globex"})]);
    let acme_b =
        w.b.human_create_in("Account", vec![json!({"Name": "ACME"})]);
    w.a.human_create(vec![
        json!({"Name": "O1", "AccountId": acme_a[0]}),
        json!({"Name": "O2", "AccountId": globex_a[0]}),
        json!({"Name": "O3", "AccountId": globex_a[0]}),
        json!({"Name": "O4"}),
    ]);
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(report.created, 4);
    let accounts = w.b.accounts();
    assert_eq!(accounts.len(), 2, "Globex created once: {accounts:?}");
    let globex_b = accounts
        .iter()
        .find(|a| a["Name"] == json!("Globex"))
        .expect("Globex created");
    assert_eq!(w.b.find_by_name("O1")[0]["AccountId"], json!(acme_b[0]));
    assert_eq!(w.b.find_by_name("O2")[0]["AccountId"], globex_b["Id"]);
    assert_eq!(w.b.find_by_name("O3")[0]["AccountId"], globex_b["Id"]);
    assert!(w.b.find_by_name("O4")[0].get("AccountId").is_none());
    // One Opportunity lookup, one Account lookup, one Account create, one Opportunity create.
    assert_eq!(w.b.calls().query, 2);
    assert_eq!(w.b.calls().create, 2);

    // A change of parent is a change like any other; the echo of it is quiet.
    let o1 = w.a.find_by_name("O1")[0]["Id"]
        .as_str()
        .expect("id")
        .to_string();
    w.a.human_edit(&o1, json!({"AccountId": globex_a[0]}));
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.find_by_name("O1")[0]["AccountId"], globex_b["Id"]);
    let mut back = config(Direction::BToA);
    back.account = cfg.account.clone();
    back.skip_integration_user_changes = false;
    w.reset_calls();
    let echo = w
        .run_with(&back, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.skipped, echo.read);
    assert_eq!(w.a.calls().total() + w.b.calls().writes(), 0);
}

#[tokio::test]
async fn sync_account_never_guesses_between_two_parents_with_one_name() {
    let (w, cfg) = sync_account_world();
    let twin =
        w.a.human_create_in("Account", vec![json!({"Name": "Twin"})]);
    w.b.human_create_in(
        "Account",
        vec![json!({"Name": "Twin"}), json!({"Name": "Twin"})],
    );
    w.a.human_create(vec![
        json!({"Name": "Child", "AccountId": twin[0]}),
        json!({"Name": "Free"}),
    ]);
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!((report.created, report.failed), (1, 1));
    let failure = &w.store.state().failures[0];
    assert_eq!(failure.error_code, "AMBIGUOUS_ACCOUNT");
}

#[tokio::test]
async fn assign_policy_sets_the_configured_account_on_creates() {
    let w = World::new();
    let mut cfg = config(Direction::AToB);
    cfg.account = AccountMode::Assign {
        account_id: "001B000000000042".into(),
    };
    w.a.human_create(vec![opp("Assigned", 1)]);
    w.run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(
        w.b.find_by_name("Assigned")[0]["AccountId"],
        json!("001B000000000042")
    );
}

#[tokio::test]
async fn match_by_name_ignores_case_like_soql() {
    let w = World::new();
    w.b.human_create(vec![opp("ACME deal", 1)]);
    w.a.state().clock_ms += 10;
    w.a.human_create(vec![opp("Acme Deal", 1)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 0);
    assert_eq!(w.b.len(), 1);
    // Linked; the newer A spelling wins the Name.
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.find_by_name("Acme Deal").len(), 1);
}

#[test]
fn reports_map_to_cycle_rows() {
    let mut report = PassReport {
        read: 5,
        created: 2,
        linked: 1,
        skipped: 1,
        failed: 1,
        api_calls: 4,
        ..PassReport::default()
    };
    // Linked records are counted as linked, not folded into skipped (they were until the
    // hardening issue: the demo showed "skipped 90" for 90 linked records).
    assert_eq!(report.cycle_counts().skipped, 1);
    assert_eq!(report.cycle_counts().linked, 1);
    assert_eq!(report.cycle_outcome().0, CycleOutcome::Partial);
    report.failed = 0;
    assert_eq!(report.cycle_outcome(), (CycleOutcome::Ok, None));
    report.outcome = PassOutcome::Paused {
        org: Org::B,
        message: "REQUEST_LIMIT_EXCEEDED".into(),
    };
    let (outcome, error) = report.cycle_outcome();
    assert_eq!(outcome, CycleOutcome::Paused);
    assert!(error.is_some_and(|e| e.contains("org B")));
}

// ---------------------------------------------------------------------------------------------
// Pages in flight (`batch.in_flight`)
// ---------------------------------------------------------------------------------------------

/// Calls in flight across both orgs of a pass, and the most seen at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// An org whose every call takes `delay` (tokio time), counted in a shared [`InFlight`].
struct Slow<'o> {
    org: &'o FakeOrg,
    delay: Duration,
    in_flight: &'o InFlight,
}

impl Slow<'_> {
    async fn around<R>(&self, call: impl Future<Output = R>) -> R {
        let now = self.in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.in_flight.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let result = call.await;
        self.in_flight.now.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl OrgPort for Slow<'_> {
    async fn query(&self, query: &RecordQuery) -> Result<Batch, PortError> {
        self.around(self.org.query(query)).await
    }
    async fn query_more(&self, cursor: &str) -> Result<Batch, PortError> {
        self.around(self.org.query_more(cursor)).await
    }
    async fn create(
        &self,
        object: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(self.org.create(object, records)).await
    }
    async fn update(
        &self,
        object: &str,
        records: &[(String, Map<String, Value>)],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(self.org.update(object, records)).await
    }
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(self.org.upsert(object, external_id_field, records))
            .await
    }
}

impl World {
    /// A pass A -> B whose calls take 10 ms each (tokio time); returns the report and the
    /// most calls that were in flight at once.
    async fn run_slow(&self, cfg: &PassConfig) -> (PassReport, usize) {
        let in_flight = InFlight::default();
        let slow = |org| Slow {
            org,
            delay: Duration::from_millis(10),
            in_flight: &in_flight,
        };
        let (a, b) = (slow(&self.a), slow(&self.b));
        let report = Pass::new(cfg, &self.mapping, &a, &b, &self.store)
            .run(&CancellationToken::new())
            .await
            .expect("pass succeeds");
        (report, in_flight.peak.load(Ordering::SeqCst))
    }
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_stay_within_batch_in_flight_and_cost_no_extra_call() {
    let mut peaks = Vec::new();
    for in_flight in [1, 4] {
        let w = World::new();
        w.a.state().batch_size = 1000;
        for chunk in 0..5 {
            w.a.human_create(
                (0..1000)
                    .map(|i| opp(&format!("P{chunk}-{i}"), i))
                    .collect(),
            );
        }
        let cfg = PassConfig {
            in_flight,
            ..config(Direction::AToB)
        };
        let (report, peak) = w.run_slow(&cfg).await;
        assert_eq!(report.created, 5000);
        assert_eq!(report.failed, 0);
        assert_eq!(report.pages, 25);
        assert_eq!(w.b.len(), 5000);
        assert_eq!(w.store.state().links.len(), 5000);
        // As many calls as one page at a time: 5 reads, 25 lookups, 25 creates.
        assert_eq!(w.a.calls().total(), 5, "in_flight = {in_flight}");
        assert_eq!(w.b.calls().query, 25, "in_flight = {in_flight}");
        assert_eq!(w.b.calls().create, 25, "in_flight = {in_flight}");
        assert_eq!(report.api_calls, 55);
        assert!(
            peak <= in_flight,
            "{peak} calls at once, in_flight = {in_flight}"
        );
        peaks.push(peak);
    }
    assert_eq!(
        peaks,
        vec![1, 4],
        "reads, lookups and writes of pages overlap"
    );
}

#[tokio::test(start_paused = true)]
async fn namesakes_in_pages_in_flight_never_share_a_target() {
    // Six "Acme" in A, one page each, four pages in flight; B holds one unlinked "Acme" with
    // an older amount. One page at a time, the first takes it (an update) and the five
    // others create theirs. Pages in flight must do the same: while the first page is still
    // writing, the others must not take that record too.
    for in_flight in [1, 4] {
        let w = World::new();
        w.b.human_create(vec![opp("Acme", 8)]);
        // A's edits come later than B's (each fake org has its own clock).
        w.a.human_create(Vec::new());
        w.a.human_create((0..6).map(|_| opp("Acme", 7)).collect());
        let cfg = PassConfig {
            in_flight,
            page_size: 1,
            ..config(Direction::AToB)
        };
        let (report, _) = w.run_slow(&cfg).await;
        assert_eq!(
            (report.updated, report.created, report.failed),
            (1, 5, 0),
            "in_flight = {in_flight}: {report:?} {:?}",
            w.store.state().failures
        );
        let state = w.store.state();
        let b_ids: HashSet<&str> = state.links.iter().map(|l| l.b_id.as_str()).collect();
        assert_eq!(state.links.len(), 6);
        assert_eq!(b_ids.len(), 6, "links are unique on the B side");
        let acmes = w.b.find_by_name("Acme");
        assert_eq!(acmes.len(), 6);
        assert!(acmes.iter().all(|r| r["Amount"] == json!(7)), "{acmes:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_parent_account_named_in_several_pages_in_flight_is_created_once() {
    let (w, mut cfg) = sync_account_world();
    cfg.page_size = 2;
    cfg.in_flight = 4;
    let globex =
        w.a.human_create_in("Account", vec![json!({"Name": "Globex"})]);
    let initech =
        w.a.human_create_in("Account", vec![json!({"Name": "Initech"})]);
    w.a.human_create(
        (0..12)
            .map(|i| {
                let parent = if i % 2 == 0 { &globex[0] } else { &initech[0] };
                json!({"Name": format!("O{i}"), "AccountId": parent})
            })
            .collect(),
    );
    let (report, _) = w.run_slow(&cfg).await;
    assert_eq!((report.created, report.failed), (12, 0));
    let accounts = w.b.accounts();
    assert_eq!(accounts.len(), 2, "each parent created once: {accounts:?}");
}
