//! The live state of one simulated org besides its records: sessions, query cursors, fault
//! settings, the clock offset, call statistics and the request log. Everything the HTTP
//! handlers share sits in one [`OrgState`] behind short-lived locks (never held across an
//! `await`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::db::{OrgDb, QueryCursor};
use crate::outbound::Outbound;
use crate::value::truncate_millis;

/// Password of every simulated user.
pub const PASSWORD: &str = "password";
/// Security token of every simulated user (appended to the password on login).
pub const SECURITY_TOKEN: &str = "token";
/// Consumer key of the simulated connected app.
pub const CLIENT_ID: &str = "sfsim-client";
/// Consumer secret of the simulated connected app.
pub const CLIENT_SECRET: &str = "sfsim-secret";
/// Default session lifetime: Salesforce's default of 2 hours.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 7200;
/// Default daily API allowance (Enterprise Edition's base).
pub const DEFAULT_API_DAILY_LIMIT: u64 = 100_000;
/// Query cursors idle longer than this are gone (Salesforce: 15 minutes).
pub const CURSOR_IDLE: Duration = Duration::from_secs(15 * 60);
/// At most this many open cursors per org; the least recently used is dropped first (its
/// locator then gets INVALID_QUERY_LOCATOR). Salesforce allows 10 per user; a cursor of 100k
/// rows holds 400 kB here, so this bounds memory too.
pub const MAX_CURSORS: usize = 200;
/// Entries of a user's recently viewed list (Salesforce's RecentlyViewed holds 200).
pub const MAX_RECENT: usize = 200;
/// Entries kept in the request log.
pub const REQUEST_LOG_LEN: usize = 2000;

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every mutation here
/// leaves the data consistent between statements, so the value is still usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random string of `n` ASCII letters and digits.
pub fn random_token(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A simulated user and its credentials.
#[derive(Debug, Clone, Serialize)]
pub struct SimUser {
    pub id: String,
    pub username: String,
    /// Refresh token usable with the `refresh_token` grant.
    pub refresh_token: String,
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    created: Instant,
}

/// Settings of the fault injector (`/__sim/faults`). Every field is optional in a POST: the
/// ones given replace the current values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added to every API call, in milliseconds (on top of `--latency-ms`).
    pub latency_ms: u64,
    /// Share of API calls (0.0..=1.0) that fail with `error_status` / `error_code`.
    pub error_rate: f64,
    pub error_status: u16,
    pub error_code: String,
    /// Lifetime of sessions, in seconds (applies to existing sessions too).
    pub session_ttl_secs: u64,
    /// Share of items in sObject Collections calls that fail with UNABLE_TO_LOCK_ROW.
    pub lock_error_rate: f64,
    /// Daily API allowance.
    pub api_daily_limit: u64,
    /// Records whose Name contains this text fail with FIELD_CUSTOM_VALIDATION_EXCEPTION.
    pub reject_name_marker: Option<String>,
    /// Rows per second Bulk jobs process (0: as fast as sfsim can).
    pub bulk_rows_per_second: u64,
    /// Bulk jobs stay InProgress, processing nothing, while this is set.
    pub bulk_stall: bool,
    /// Bulk jobs that are processed fail (state Failed; ingest jobs with an errorMessage).
    pub bulk_fail: bool,
    /// Largest Bulk ingest upload, in bytes.
    pub bulk_upload_max_bytes: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            error_code: "SERVER_UNAVAILABLE".into(),
            session_ttl_secs: DEFAULT_SESSION_TTL_SECS,
            lock_error_rate: 0.0,
            api_daily_limit: DEFAULT_API_DAILY_LIMIT,
            reject_name_marker: None,
            bulk_rows_per_second: 0,
            bulk_stall: false,
            bulk_fail: false,
            bulk_upload_max_bytes: crate::bulk::DEFAULT_UPLOAD_MAX_BYTES,
        }
    }
}

/// One entry of the request log (`/__sim/requests`).
#[derive(Debug, Clone, Serialize)]
pub struct RequestLogEntry {
    pub time: String,
    pub method: String,
    pub path: String,
    pub kind: Option<String>,
    pub soql: Option<String>,
    pub status: u16,
    pub user: Option<String>,
}

/// Call counters (`/__sim/stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Calls by kind: `query`, `query_more`, `collections_create`, `login`, ...
    pub calls: BTreeMap<String, u64>,
    /// Authenticated API calls, the ones that count against the daily allowance.
    pub api_calls_total: u64,
    /// Records created, updated or deleted successfully.
    pub records_written: u64,
}

/// An open query cursor (`nextRecordsUrl`).
pub struct OpenCursor {
    pub cursor: Arc<QueryCursor>,
    pub batch_size: usize,
    pub last_used: Instant,
}

/// Everything one org shares between its handlers.
pub struct OrgState {
    pub name: String,
    pub org_id: String,
    /// `http://127.0.0.1:PORT`, known once bound.
    pub base_url: String,
    /// Delay of every API call from the command line (`--latency-ms`).
    pub base_latency_ms: u64,
    /// Public key that verifies JWT bearer assertions.
    pub jwt_public_key_pem: String,
    pub users: Vec<SimUser>,
    pub db: Mutex<OrgDb>,
    pub sessions: Mutex<HashMap<String, Session>>,
    /// Refresh tokens revoked through `/services/oauth2/revoke`: refused from then on.
    pub revoked_refresh_tokens: Mutex<HashSet<String>>,
    pub cursors: Mutex<HashMap<String, OpenCursor>>,
    /// Per user id: ids of records viewed or referenced (`FOR VIEW` / `FOR REFERENCE`),
    /// most recent first.
    pub recent: Mutex<HashMap<String, VecDeque<String>>>,
    pub faults: Mutex<Faults>,
    /// Current use of the daily API allowance.
    pub api_usage: Mutex<u64>,
    pub stats: Mutex<Stats>,
    pub log: Mutex<VecDeque<RequestLogEntry>>,
    /// Skew of this org's clock against the real one, in milliseconds.
    pub clock_offset_ms: Mutex<i64>,
    /// The last timestamp handed out: timestamps never go backwards.
    last_now: Mutex<DateTime<Utc>>,
    pub outbound: Outbound,
    /// Bulk API 2.0 jobs.
    pub bulk: crate::bulk::BulkJobs,
}

impl OrgState {
    pub fn new(
        name: String,
        org_id: String,
        base_url: String,
        base_latency_ms: u64,
        jwt_public_key_pem: String,
        db: OrgDb,
        users: Vec<SimUser>,
    ) -> Self {
        OrgState {
            name,
            org_id,
            base_url,
            base_latency_ms,
            jwt_public_key_pem,
            users,
            db: Mutex::new(db),
            sessions: Mutex::new(HashMap::new()),
            revoked_refresh_tokens: Mutex::new(HashSet::new()),
            cursors: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            api_usage: Mutex::new(0),
            stats: Mutex::new(Stats::default()),
            log: Mutex::new(VecDeque::new()),
            clock_offset_ms: Mutex::new(0),
            last_now: Mutex::new(DateTime::<Utc>::MIN_UTC),
            outbound: Outbound::new(),
            bulk: crate::bulk::BulkJobs::default(),
        }
    }

    /// The org's current time for one call: the real clock plus the offset, truncated to
    /// milliseconds, and never earlier than a time handed out before.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = *lock(&self.clock_offset_ms);
        let candidate = truncate_millis(Utc::now() + chrono::Duration::milliseconds(offset));
        let mut last = lock(&self.last_now);
        if candidate > *last {
            *last = candidate;
        }
        *last
    }

    /// Waits the simulated round trip of one API call: `--latency-ms` plus the fault's
    /// `latency_ms`.
    pub async fn delay(&self) {
        let ms = self.base_latency_ms + lock(&self.faults).latency_ms;
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    pub fn user_by_name(&self, username: &str) -> Option<&SimUser> {
        self.users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
    }

    pub fn user_by_id(&self, id: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.id == id)
    }

    /// Opens a session for a user and returns its token `{orgId}!{random}`.
    pub fn open_session(&self, user: &SimUser) -> String {
        let token = format!("{}!{}", self.org_id, random_token(96));
        lock(&self.sessions).insert(
            token.clone(),
            Session {
                user_id: user.id.clone(),
                username: user.username.clone(),
                created: Instant::now(),
            },
        );
        token
    }

    /// The session of a token, if it exists and has not expired.
    pub fn session(&self, token: &str) -> Option<Session> {
        let ttl = Duration::from_secs(lock(&self.faults).session_ttl_secs);
        let mut sessions = lock(&self.sessions);
        let s = sessions.get(token)?;
        if s.created.elapsed() >= ttl {
            sessions.remove(token);
            return None;
        }
        Some(s.clone())
    }

    pub fn session_ttl_secs(&self) -> u64 {
        lock(&self.faults).session_ttl_secs
    }

    /// Ends one session (SOAP `logout`, revoking an access token). Whether it was live.
    pub fn end_session(&self, token: &str) -> bool {
        self.session(token).is_some() && lock(&self.sessions).remove(token).is_some()
    }

    /// The user of a refresh token that has not been revoked.
    pub fn refresh_token_user(&self, token: &str) -> Option<&SimUser> {
        if lock(&self.revoked_refresh_tokens).contains(token) {
            return None;
        }
        self.users.iter().find(|u| u.refresh_token == token)
    }

    /// Revokes a refresh token and every session of its user, as Salesforce revokes a refresh
    /// token "and any associated access tokens". Whether the token was valid.
    pub fn revoke_refresh_token(&self, token: &str) -> bool {
        let Some(user) = self.refresh_token_user(token) else {
            return false;
        };
        let user_id = user.id.clone();
        lock(&self.revoked_refresh_tokens).insert(token.to_string());
        lock(&self.sessions).retain(|_, s| s.user_id != user_id);
        true
    }

    pub fn expire_sessions(&self) {
        lock(&self.sessions).clear();
    }

    pub fn count_call(&self, kind: &str) {
        *lock(&self.stats).calls.entry(kind.to_string()).or_insert(0) += 1;
    }

    pub fn add_records_written(&self, n: u64) {
        lock(&self.stats).records_written += n;
    }

    pub fn log_request(&self, entry: RequestLogEntry) {
        let mut log = lock(&self.log);
        if log.len() >= REQUEST_LOG_LEN {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// Stores a cursor and returns its locator id (`01g...`).
    pub fn store_cursor(&self, cursor: Arc<QueryCursor>, batch_size: usize) -> String {
        let id = format!("{}{}", crate::ids::QUERY_LOCATOR_PREFIX, random_token(15));
        let mut cursors = lock(&self.cursors);
        cursors.retain(|_, c| c.last_used.elapsed() < CURSOR_IDLE);
        while cursors.len() >= MAX_CURSORS {
            let oldest = cursors
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    cursors.remove(&k);
                }
                None => break,
            }
        }
        cursors.insert(
            id.clone(),
            OpenCursor {
                cursor,
                batch_size,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// The cursor of a locator id, if it is still open.
    pub fn take_cursor(&self, id: &str) -> Option<(Arc<QueryCursor>, usize)> {
        let mut cursors = lock(&self.cursors);
        let c = cursors.get_mut(id)?;
        if c.last_used.elapsed() >= CURSOR_IDLE {
            cursors.remove(id);
            return None;
        }
        c.last_used = Instant::now();
        Some((c.cursor.clone(), c.batch_size))
    }

    /// Puts records at the front of a user's recently viewed list (the first id first), at
    /// most [`MAX_RECENT`] kept.
    pub fn mark_recent(&self, user_id: &str, ids: &[String]) {
        let mut recent = lock(&self.recent);
        let list = recent.entry(user_id.to_string()).or_default();
        for id in ids.iter().rev() {
            list.retain(|r| r != id);
            list.push_front(id.clone());
        }
        list.truncate(MAX_RECENT);
    }

    /// A user's recently viewed ids, most recent first.
    pub fn recent_ids(&self, user_id: &str) -> Vec<String> {
        lock(&self.recent)
            .get(user_id)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn drop_cursor(&self, id: &str) {
        lock(&self.cursors).remove(id);
    }

    /// Empties the org: records, cursors, Bulk jobs, recently viewed lists, stats, faults, clock offset, API usage, request log
    /// and outbound configuration. Users and their sessions stay.
    pub fn reset(&self) {
        lock(&self.db).reset();
        lock(&self.cursors).clear();
        lock(&self.recent).clear();
        *lock(&self.stats) = Stats::default();
        *lock(&self.faults) = Faults::default();
        *lock(&self.api_usage) = 0;
        *lock(&self.clock_offset_ms) = 0;
        lock(&self.log).clear();
        self.outbound.reset();
        self.bulk.reset();
    }
}
