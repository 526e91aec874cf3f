//! [`Client`]: one org's connection: the session, the HTTP machinery every call goes through
//! (headers, `Sforce-Limit-Info`, retries, one re-login on an expired session), and the
//! per-kind call counts.
//!
//! A `Client` is cheap to clone (an `Arc` inside) and safe to share between tasks. It logs in
//! lazily on the first call, or when [`Client::login`] is called. Every request (REST, Bulk
//! API 2.0, the logins) carries `Sforce-Call-Options: client=orgsync`, set once as a default
//! header of the HTTP client, so admins can tell orgsync's changes apart (change
//! data capture's `changeOrigin`). Replies' `Sforce-Limit-Info` is recorded and exposed by
//! [`Client::api_usage`].
//!
//! Retries: a transient failure (5xx, timeout, connection failure, lock error) is retried up
//! to [`CallRetry::max_attempts`] with jittered exponential backoff. Requests that are not
//! idempotent (collection creates) are retried only when Salesforce surely did not act on
//! them (connection refused, 503, 429): retrying a create that timed out could make a
//! duplicate. A 401 `INVALID_SESSION_ID` logs in again once and repeats the call. Over the
//! configured API budget (`api_budget_percent`), calls are refused with
//! `API_BUDGET_EXCEEDED` (a limit error, so the engine pauses) apart from a periodic probe.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::auth::{self, Session};
use super::error::{ErrorClass, SalesforceError};
use super::gate::{Admission, AuthGate, LimitGate, LimitTransition};
use super::retry::CallRetry;
use super::soql::{MAX_URI_BYTES, encoded_len};
use super::usage::{CallCounters, CallCounts, CallKind, UsageSeen, over_budget, parse_limit_info};
use crate::config::OrgSettings;
use crate::events::client::{
    ApiPauseBegan, ApiResumed, ApiStillPaused, LoginAcceptedAgain, LoginRefused,
};

/// The value of `Sforce-Call-Options` on every request.
pub const CALL_OPTIONS: &str = "client=orgsync";

/// Tuning of a client; the defaults suit production.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub retry: CallRetry,
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// `Sforce-Query-Options: batchSize=N` for queries (200..=2000; Salesforce may return
    /// fewer). `None`: Salesforce's default (2,000).
    pub query_batch_size: Option<u32>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retry: CallRetry::default(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(15),
            query_batch_size: None,
        }
    }
}

impl ClientOptions {
    /// Options for the daemon: Salesforce's default query batches of 2,000 rows (no
    /// `batchSize` header). The pass cuts its pages of `batch.page_size` from them locally, so
    /// reading costs ceil(X/2000) calls whatever the page size; asking for batches of the page
    /// size instead cost ten times more query calls at the default page size of 200 (measured
    /// in `benches/sync_vs_template.rs`), for a memory saving of at most 1,800 rows.
    pub fn for_settings(_settings: &crate::config::Settings) -> Self {
        ClientOptions::default()
    }

    /// Options for tests: tiny retry delays, short timeouts.
    pub fn fast() -> Self {
        ClientOptions {
            retry: CallRetry::fast(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        }
    }
}

/// Who the client is logged in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_url: String,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
}

/// The session slot: the current session and a generation number, so that many tasks hitting
/// one expired session trigger one login, not one each.
#[derive(Default)]
struct SessionSlot {
    session: Option<Arc<Session>>,
    generation: u64,
}

struct Inner {
    /// The org's settings (secrets stay wrapped).
    settings: OrgSettings,
    options: ClientOptions,
    http: reqwest::Client,
    /// Held across a login so concurrent callers wait for it instead of logging in too.
    session: tokio::sync::Mutex<SessionSlot>,
    /// The latest `Sforce-Limit-Info: api-usage`.
    usage: Mutex<Option<UsageSeen>>,
    /// Calls sent by this process, by kind.
    calls: CallCounters,
    /// Field types by object, described once per process (see [`Client::field_types`]).
    field_types: Mutex<std::collections::HashMap<String, Arc<FieldTypes>>>,
    /// Login back-off after a refusal of the credentials (see [`super::gate`]).
    auth_gate: Mutex<AuthGate>,
    /// The pause on the org's API limit or our budget, with its probes.
    limit_gate: Mutex<LimitGate>,
    /// The last limit error the org answered (code, message), for refusals while paused.
    last_limit: Mutex<Option<(String, String)>>,
}

/// A login refused for its credentials, as `status`, `/readyz` and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuthFailureView {
    /// Salesforce's code (`INVALID_LOGIN`, `invalid_grant`, ...).
    pub code: String,
    /// Salesforce's message.
    pub message: String,
    /// Refused logins in a row.
    pub attempts: u32,
    pub since: chrono::DateTime<chrono::Utc>,
    pub next_attempt: chrono::DateTime<chrono::Utc>,
}

/// An object's field types: lower-cased field name to the describe `type` (`date`,
/// `datetime`, `string`...).
pub type FieldTypes = std::collections::HashMap<String, String>;

/// A Salesforce client for one org.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("org", &self.inner.settings.name)
            .field("login_url", &self.inner.settings.login_url)
            .field("auth", &self.inner.settings.auth())
            .field("username", &self.inner.settings.username)
            .finish_non_exhaustive()
    }
}

/// Where a request goes.
pub(crate) enum Target<'a> {
    /// Under `/services/data/vNN.0/`, e.g. `query`, `sobjects/Account/describe`.
    Data(&'a str),
    /// A server-given path (`nextRecordsUrl`) or URL on the instance.
    Path(&'a str),
    /// A Partner API (SOAP) data call at `/services/Soap/u/NN.0`: `body` is the inside of the
    /// envelope's Body; the SessionHeader is added per attempt (`soap_calls`).
    Soap { body: &'a str },
}

/// One REST call, rebuilt for every attempt.
pub(crate) struct ApiRequest<'a> {
    pub kind: CallKind,
    pub method: Method,
    pub target: Target<'a>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<&'a serde_json::Value>,
    pub headers: Vec<(&'static str, String)>,
    /// Safe to repeat after an unknown outcome (timeout, 500).
    pub idempotent: bool,
    /// A non-JSON body with its content type (Bulk CSV uploads), sent instead of `body`.
    pub text_body: Option<(&'static str, &'a str)>,
    /// The `Accept` header (`application/json`, or `text/csv` for Bulk results).
    pub accept: &'static str,
    /// A body streamed from a file (Bulk uploads) with its content type, sent from the
    /// file's start on every attempt, instead of `body`.
    pub file_body: Option<(&'static str, &'a std::fs::File)>,
    /// A 2xx reply's body goes into this file (emptied first) instead of into memory; the
    /// reply's `body` is then empty.
    pub download: Option<&'a std::fs::File>,
}

impl<'a> ApiRequest<'a> {
    pub fn get(kind: CallKind, target: Target<'a>) -> Self {
        ApiRequest {
            kind,
            method: Method::GET,
            target,
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            idempotent: true,
            text_body: None,
            accept: "application/json",
            file_body: None,
            download: None,
        }
    }
}

/// A 2xx reply: its body and the reply headers Bulk API 2.0 pages by.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reply {
    pub body: String,
    /// `Sforce-Locator`: the next results page (`null` on the last).
    pub locator: Option<String>,
}

impl Client {
    /// A client for `org` with default options. Does not log in yet.
    pub fn new(org: &OrgSettings) -> Result<Client, SalesforceError> {
        Self::with_options(org, ClientOptions::default())
    }

    /// A client for `org`. Does not log in yet.
    pub fn with_options(
        org: &OrgSettings,
        options: ClientOptions,
    ) -> Result<Client, SalesforceError> {
        // Every request (REST, Bulk, the SOAP and OAuth logins) carries the call options: the
        // one place they are set.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "Sforce-Call-Options",
            reqwest::header::HeaderValue::from_static(CALL_OPTIONS),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                SalesforceError::client(
                    &org.name,
                    "BAD_CONFIGURATION",
                    format!("cannot build the HTTP client: {e}"),
                    ErrorClass::Permanent,
                )
            })?;
        Ok(Client {
            inner: Arc::new(Inner {
                settings: org.clone(),
                options,
                http,
                session: tokio::sync::Mutex::new(SessionSlot::default()),
                usage: Mutex::new(None),
                calls: CallCounters::default(),
                field_types: Mutex::new(std::collections::HashMap::new()),
                auth_gate: Mutex::new(AuthGate::default()),
                limit_gate: Mutex::new(LimitGate::default()),
                last_limit: Mutex::new(None),
            }),
        })
    }

    /// The org's name in the configuration ("a", "b").
    pub fn org_name(&self) -> &str {
        &self.inner.settings.name
    }

    /// The org's settings.
    pub fn settings(&self) -> &OrgSettings {
        &self.inner.settings
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// `(used, max)` from the latest `Sforce-Limit-Info: api-usage=N/M`.
    pub fn api_usage(&self) -> Option<(u64, u64)> {
        self.usage_seen().map(|u| (u.used, u.max))
    }

    fn usage_seen(&self) -> Option<UsageSeen> {
        *self
            .inner
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record_usage(&self, used: u64, max: u64) {
        *self
            .inner
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(UsageSeen { used, max });
    }

    /// The refused login this client is backing off from, if any.
    pub fn auth_failure(&self) -> Option<AuthFailureView> {
        let gate = lock(&self.inner.auth_gate);
        let f = gate.failure()?;
        let now = Instant::now();
        let wall = chrono::Utc::now();
        let to_wall = |at: Instant| {
            if at >= now {
                wall + chrono::Duration::from_std(at - now).unwrap_or_default()
            } else {
                wall - chrono::Duration::from_std(now - at).unwrap_or_default()
            }
        };
        Some(AuthFailureView {
            code: f.code.clone(),
            message: f.message.clone(),
            attempts: f.attempts,
            since: to_wall(f.since),
            next_attempt: to_wall(f.next_attempt),
        })
    }

    /// How long the org has been paused on its API limit or our budget, if it is.
    pub fn paused_for(&self) -> Option<Duration> {
        lock(&self.inner.limit_gate)
            .paused_since()
            .map(|since| since.elapsed())
    }

    /// Calls this process made to the org, by kind (logins included).
    pub fn calls(&self) -> CallCounts {
        self.inner.calls.snapshot()
    }

    /// The types of `object`'s fields: one describe call the first time, then from memory
    /// (field types do not change while a process runs; a restart reads them again).
    pub async fn field_types(&self, object: &str) -> Result<Arc<FieldTypes>, SalesforceError> {
        let key = object.to_ascii_lowercase();
        let cached = self
            .inner
            .field_types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(types) = cached {
            return Ok(types);
        }
        let described = self.describe(object).await?;
        let types: Arc<FieldTypes> = Arc::new(
            described
                .fields
                .iter()
                .map(|f| (f.name.to_ascii_lowercase(), f.field_type.clone()))
                .collect(),
        );
        self.inner
            .field_types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, types.clone());
        Ok(types)
    }

    /// Logs in now (again, if already logged in) and returns who we are.
    pub async fn login(&self) -> Result<Identity, SalesforceError> {
        let generation = {
            let slot = self.inner.session.lock().await;
            slot.generation
        };
        let session = self.renew(generation).await?;
        Ok(identity_of(&session))
    }

    /// Who we are logged in as (logging in first if needed).
    pub async fn identity(&self) -> Result<Identity, SalesforceError> {
        let (session, _) = self.session().await?;
        Ok(identity_of(&session))
    }

    /// The integration user's id: `orgs.X.integration_user_id` when configured, else the
    /// logged-in user learned at login.
    pub async fn user_id(&self) -> Result<String, SalesforceError> {
        if let Some(id) = &self.inner.settings.integration_user_id {
            return Ok(id.clone());
        }
        self.identity().await?.user_id.ok_or_else(|| {
            SalesforceError::client(
                self.org_name(),
                "UNKNOWN_USER",
                "the login reply did not say which user logged in: set integration_user_id",
                ErrorClass::Permanent,
            )
        })
    }

    /// The current session, logging in if there is none.
    async fn session(&self) -> Result<(Arc<Session>, u64), SalesforceError> {
        let mut slot = self.inner.session.lock().await;
        if let Some(session) = &slot.session {
            return Ok((session.clone(), slot.generation));
        }
        let session = Arc::new(self.login_with_retries(&slot).await?);
        slot.generation += 1;
        slot.session = Some(session.clone());
        Ok((session, slot.generation))
    }

    /// Replaces the session of generation `stale` with a fresh login; if another task already
    /// replaced it, uses that one.
    async fn renew(&self, stale: u64) -> Result<Arc<Session>, SalesforceError> {
        let mut slot = self.inner.session.lock().await;
        if slot.generation != stale
            && let Some(session) = &slot.session
        {
            return Ok(session.clone());
        }
        let session = Arc::new(self.login_with_retries(&slot).await?);
        slot.generation += 1;
        slot.session = Some(session.clone());
        Ok(session)
    }

    async fn login_with_retries(&self, slot: &SessionSlot) -> Result<Session, SalesforceError> {
        let settings = &self.inner.settings;
        // A rotated refresh token replaces the configured one.
        let rotated: Option<SecretString> =
            slot.session.as_ref().and_then(|s| s.refresh_token.clone());
        let policy = &self.inner.options.retry;
        let mut attempt = 1;
        loop {
            if let Err(failure) = lock(&self.inner.auth_gate).check(Instant::now()) {
                // Backing off from a refusal: no call, so the org never sees a burst of bad
                // logins (it would lock the user out). Logged once per attempt, not here.
                let wait = failure
                    .next_attempt
                    .saturating_duration_since(Instant::now());
                return Err(SalesforceError::client(
                    &settings.name,
                    AUTH_FAILED,
                    format!(
                        "the login was refused ({}: {}); {} refusal(s) in a row, next attempt in {} s",
                        failure.code,
                        failure.message,
                        failure.attempts,
                        wait.as_secs() + 1
                    ),
                    ErrorClass::Auth,
                ));
            }
            self.inner.calls.add(CallKind::Login);
            match auth::login(&self.inner.http, settings, rotated.as_ref()).await {
                Ok(mut session) => {
                    if session.refresh_token.is_none() {
                        session.refresh_token = rotated.clone();
                    }
                    if let Some(ended) = lock(&self.inner.auth_gate).succeeded() {
                        LoginAcceptedAgain {
                            org: &settings.name,
                            refusals: ended.attempts,
                        }
                        .emit();
                    }
                    debug!(
                        org = %settings.name,
                        auth = settings.auth().as_str(),
                        instance_url = %session.instance_url,
                        user_id = session.user_id.as_deref().unwrap_or(""),
                        "logged in"
                    );
                    return Ok(session);
                }
                Err(err) if err.is_retryable() && policy.may_retry(attempt) => {
                    let delay = policy.jittered_delay(attempt);
                    warn!(org = %settings.name, attempt, error = %err, ?delay, "login failed, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) if err.class == ErrorClass::Auth => {
                    let wait = lock(&self.inner.auth_gate).refused(
                        Instant::now(),
                        &err.code,
                        &err.message,
                    );
                    LoginRefused {
                        org: &settings.name,
                        auth: settings.auth().as_str(),
                        code: &err.code,
                        error: &err.message,
                        wait,
                    }
                    .emit();
                    return Err(err);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The data API path prefix, `/services/data/vNN.0/`.
    pub(crate) fn data_prefix(&self) -> String {
        format!("/services/data/v{}/", self.inner.settings.api_version)
    }

    fn url_for(&self, session: &Session, target: &Target<'_>) -> Result<String, SalesforceError> {
        match target {
            Target::Data(path) => Ok(format!(
                "{}{}{}",
                session.instance_url,
                self.data_prefix(),
                path.trim_start_matches('/')
            )),
            Target::Soap { .. } => Ok(format!(
                "{}/services/Soap/u/{}",
                session.instance_url, self.inner.settings.api_version
            )),
            Target::Path(path) if path.starts_with('/') => {
                Ok(format!("{}{}", session.instance_url, path))
            }
            Target::Path(url) => {
                // A full URL must be on the instance: the token is never sent elsewhere.
                match auth::instance_origin(url) {
                    Ok(origin) if origin == session.instance_url => Ok((*url).to_string()),
                    _ => Err(SalesforceError::client(
                        self.org_name(),
                        "BAD_RESPONSE",
                        format!("refusing to follow a URL off the instance: {url}"),
                        ErrorClass::Permanent,
                    )),
                }
            }
        }
    }

    /// Sends a request (with retries and one re-login) and returns the reply body of a 2xx.
    pub(crate) async fn send(&self, req: &ApiRequest<'_>) -> Result<String, SalesforceError> {
        self.send_reply(req).await.map(|reply| reply.body)
    }

    /// [`Self::send`], with the reply headers Bulk pages by.
    pub(crate) async fn send_reply(&self, req: &ApiRequest<'_>) -> Result<Reply, SalesforceError> {
        let policy = &self.inner.options.retry;
        let org = self.org_name();
        let mut attempt: u32 = 1;
        let mut renewed = false;
        loop {
            let admission = lock(&self.inner.limit_gate).admit(Instant::now());
            if let Admission::Refuse { since, log } = admission {
                let err = self.paused_error();
                if log {
                    ApiStillPaused {
                        org,
                        paused_for: since.elapsed(),
                        code: &err.code,
                    }
                    .emit();
                }
                return Err(err);
            }
            let (session, generation) = self.session().await?;
            let sent = self.send_once(req, &session).await;
            let limited = match &sent {
                Err(err) if err.is_limit_exceeded() => {
                    *lock(&self.inner.last_limit) = Some((err.code.clone(), err.message.clone()));
                    true
                }
                _ => self.over_budget(),
            };
            self.observe_limit(limited);
            let err = match sent {
                Ok(body) => return Ok(body),
                Err(err) => err,
            };
            if err.is_session_expired() && !renewed {
                debug!(
                    org,
                    kind = req.kind.as_str(),
                    "session expired, logging in again"
                );
                renewed = true;
                self.renew(generation).await?;
                continue;
            }
            let safe_to_repeat = req.idempotent
                || err.code == "CONNECTION_FAILED"
                || matches!(err.status, Some(429 | 503));
            if err.is_retryable() && safe_to_repeat && policy.may_retry(attempt) {
                let delay = policy.jittered_delay(attempt);
                warn!(org, kind = req.kind.as_str(), attempt, error = %err, ?delay, "call failed, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            return Err(err);
        }
    }

    /// Whether the latest usage seen is over `api_budget_percent`.
    fn over_budget(&self) -> bool {
        over_budget(self.usage_seen(), self.inner.settings.api_budget_percent)
    }

    /// Tells the limit gate what a reply said, and logs a pause or a resume once.
    fn observe_limit(&self, limited: bool) {
        let transition = lock(&self.inner.limit_gate).observe(Instant::now(), limited);
        let org = self.org_name();
        match transition {
            Some(LimitTransition::Paused) => {
                let err = self.paused_error();
                ApiPauseBegan {
                    org,
                    code: &err.code,
                    error: &err.message,
                }
                .emit();
            }
            Some(LimitTransition::Resumed(lasted)) => ApiResumed { org, lasted }.emit(),
            None => {}
        }
    }

    /// The error a call gets while the org is paused: our budget, or the org's own limit.
    fn paused_error(&self) -> SalesforceError {
        let org = self.org_name();
        if self.over_budget() {
            let (used, max) = self.api_usage().unwrap_or((0, 0));
            return SalesforceError::client(
                org,
                "API_BUDGET_EXCEEDED",
                format!(
                    "{used} of {max} daily API calls used, over the budget of {}% \
                     (orgs.{org}.api_budget_percent)",
                    self.inner.settings.api_budget_percent
                ),
                ErrorClass::LimitExceeded,
            );
        }
        let (code, message) = lock(&self.inner.last_limit).clone().unwrap_or_else(|| {
            (
                "REQUEST_LIMIT_EXCEEDED".to_string(),
                "the org refused calls at its API limit".to_string(),
            )
        });
        SalesforceError::client(org, &code, message, ErrorClass::LimitExceeded)
    }

    async fn send_once(
        &self,
        req: &ApiRequest<'_>,
        session: &Session,
    ) -> Result<Reply, SalesforceError> {
        let org = self.org_name();
        let url = self.url_for(session, &req.target)?;
        let query_len: usize = req
            .query
            .iter()
            .map(|(k, v)| k.len() + 2 + encoded_len(v))
            .sum();
        if url.len() + query_len > MAX_URI_BYTES {
            return Err(SalesforceError::client(
                org,
                "URI_TOO_LONG",
                format!(
                    "the request URL would be {} bytes, over Salesforce's {MAX_URI_BYTES}: \
                     split the IN list",
                    url.len() + query_len
                ),
                ErrorClass::Permanent,
            ));
        }
        let mut builder = match &req.target {
            Target::Soap { body } => self
                .inner
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=UTF-8")
                .header("SOAPAction", "\"\"")
                .body(super::soap_calls::envelope(
                    session.access_token.expose_secret(),
                    body,
                )),
            _ => self
                .inner
                .http
                .request(req.method.clone(), &url)
                .bearer_auth(session.access_token.expose_secret())
                .header(reqwest::header::ACCEPT, req.accept),
        };
        if !req.query.is_empty() {
            builder = builder.query(&req.query);
        }
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let Some((content_type, file)) = req.file_body {
            let (file, len) = super::transfer::rewound(file).map_err(|e| {
                SalesforceError::client(org, "UPLOAD_FAILED", e, ErrorClass::Permanent)
            })?;
            let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(stream));
        } else if let Some((content_type, text)) = req.text_body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(text.to_string());
        } else if let Some(body) = req.body {
            builder = builder.json(body);
        }
        self.inner.calls.add(req.kind);
        let reply = builder
            .send()
            .await
            .map_err(|e| SalesforceError::from_transport(org, &e))?;
        let status = reply.status().as_u16();
        if let Some((used, max)) = reply
            .headers()
            .get("Sforce-Limit-Info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            self.record_usage(used, max);
        }
        let locator = reply
            .headers()
            .get("Sforce-Locator")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let (Some(file), true) = (req.download, (200..300).contains(&status)) {
            super::transfer::download(org, reply, file).await?;
            debug!(org, kind = req.kind.as_str(), status, "salesforce call");
            return Ok(Reply {
                body: String::new(),
                locator,
            });
        }
        let body = reply
            .text()
            .await
            .map_err(|e| SalesforceError::from_transport(org, &e))?;
        debug!(org, kind = req.kind.as_str(), status, "salesforce call");
        if (200..300).contains(&status) {
            Ok(Reply { body, locator })
        } else if let Target::Soap { .. } = req.target {
            Err(super::soap_calls::fault_error(org, status, &body))
        } else {
            Err(SalesforceError::from_rest_reply(org, status, &body))
        }
    }

    /// [`Self::send`], then parses the JSON reply.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        req: &ApiRequest<'_>,
    ) -> Result<T, SalesforceError> {
        let body = self.send(req).await?;
        serde_json::from_str(&body).map_err(|e| {
            SalesforceError::client(
                self.org_name(),
                "BAD_RESPONSE",
                format!("unexpected {} reply: {e}", req.kind.as_str()),
                ErrorClass::Transient,
            )
        })
    }
}

/// The error code of a login not attempted because an earlier one was refused (the message
/// carries Salesforce's code and message of that refusal).
pub const AUTH_FAILED: &str = "AUTH_FAILED";

/// Locks a mutex, taking the value over from a task that panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn identity_of(session: &Session) -> Identity {
    Identity {
        instance_url: session.instance_url.clone(),
        user_id: session.user_id.clone(),
        org_id: session.org_id.clone(),
    }
}
