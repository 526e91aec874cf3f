//! The daemon's HTTP face, started in every trigger mode on `http.bind`:`http.port`: one axum
//! server that takes Outbound Messaging POSTs (`/outbound/a`, `/outbound/b`, and the template's
//! `/?source=A|B`; push and hybrid only), stores their notifications in the inbox and commits
//! before it acks, plus `GET /healthz`, `/readyz`, `/status` and `/metrics`. [`start`] also
//! starts the scheduling loop ([`crate::worker`]) that the listener wakes after storing a
//! message.
//!
//! A message is acked only after its notifications are durably stored: anything wrong (unknown
//! source, bad or missing secret, oversized body, malformed XML, another org's id, a store
//! error) is answered with a SOAP fault (HTTP 500, as SOAP does) and a log line, so Salesforce
//! keeps the message and retries it. The notification's field values are never trusted: the
//! worker fetches every record fresh from its org.
//!
//! The pure parts (routing a request to an org, the secret comparison, the org id check, the
//! Prometheus text) are separate functions with unit tests; the I/O is in the handlers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, TriggerPolicy};
use crate::daemon::Daemon;
use crate::metrics::Counters;
use crate::salesforce::outbound::{ack_envelope, fault_envelope, parse_notifications};
use crate::store::{Direction, NewNotification, Org};

/// The largest message body accepted. Salesforce sends at most 100 notifications per message;
/// even with long text fields that stays far below this.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Shared by the handlers and the worker.
struct Shared {
    daemon: Arc<Daemon>,
    /// Signalled by the listener after a message is stored; the worker drains the inbox.
    wake: Arc<Notify>,
}

/// The listener and its worker, running.
pub struct Running {
    /// The address the server is bound to (useful with `http.port = 0`).
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    worker: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until both the server and the worker have stopped (after `cancel` fires).
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await.context("the HTTP server task panicked")?;
        self.worker.await.context("the worker task panicked")?;
        served.context("the HTTP server failed")
    }
}

/// `orgsync run`, in every trigger mode: builds the daemon (push and hybrid check that both
/// orgs have an outbound secret first), logs in to both orgs, then serves HTTP on
/// `http.bind`:`http.port` and runs the worker until `cancel`. In poll mode a listener that
/// cannot bind is logged and the daemon syncs without it (monitoring is lost, not data); in
/// push and hybrid modes it is the trigger, so it is an error.
pub async fn serve(settings: &Settings, cancel: CancellationToken) -> anyhow::Result<()> {
    let push = settings.trigger.policy != TriggerPolicy::Poll;
    if push {
        check_push_settings(settings)?;
    }
    let daemon = Arc::new(Daemon::new(settings).await?);
    daemon.recover().await?;
    daemon.login_all().await;
    let addr = SocketAddr::new(settings.http.bind, settings.http.port);
    match start(daemon.clone(), addr, cancel.clone()).await {
        Ok(running) => running.wait().await?,
        Err(e) if !push => {
            tracing::error!(
                error = %format!("{e:#}"),
                "no HTTP listener (health, readiness, metrics, status): syncing without it; \
                 set http.port (and http.bind) to a free address"
            );
            crate::worker::run(daemon, Arc::new(Notify::new()), cancel).await;
        }
        Err(e) => return Err(e),
    }
    tracing::info!("orgsync stopped: the pages in flight were committed");
    Ok(())
}

/// The settings push mode needs: a secret per org (a listener without one would accept
/// anybody's messages).
pub fn check_push_settings(settings: &Settings) -> anyhow::Result<()> {
    for org in [&settings.a, &settings.b] {
        let ok = org
            .outbound_secret
            .as_ref()
            .is_some_and(|s| !s.expose_secret().is_empty());
        if !ok {
            anyhow::bail!(
                "trigger.policy = {:?} needs orgs.{}.outbound_secret (or outbound_secret_file): \
                 the shared secret carried as ?secret=... in the outbound message's endpoint URL",
                settings.trigger.policy,
                org.name
            );
        }
    }
    Ok(())
}

/// Binds `addr`, then runs the HTTP server and the worker ([`crate::worker::run`]) until
/// `cancel` fires. In push and hybrid modes, pending inbox rows (left by a previous process)
/// are drained at once.
pub async fn start(
    daemon: Arc<Daemon>,
    addr: SocketAddr,
    cancel: CancellationToken,
) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP listener on {addr} (http.bind, http.port)"))?;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let shared = Arc::new(Shared {
        daemon,
        wake: Arc::new(Notify::new()),
    });
    let policy = shared.daemon.settings().trigger.policy;
    if policy == TriggerPolicy::Poll {
        tracing::info!(%addr, policy = ?policy, "orgsync listening (health, readiness, metrics, status)");
    } else {
        tracing::info!(%addr, policy = ?policy, "orgsync listening for outbound messages (and health, readiness, metrics, status)");
    }
    let app = router(shared.clone());
    let server_cancel = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .await
    });
    let worker = tokio::spawn(crate::worker::run(
        shared.daemon.clone(),
        shared.wake.clone(),
        cancel,
    ));
    Ok(Running {
        addr,
        server,
        worker,
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", post(outbound_root))
        .route("/outbound/{org}", post(outbound_path))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Outbound Messaging
// ---------------------------------------------------------------------------------------------

/// Why a message was refused: the fault text, whether the sender is at fault, and the log.
#[derive(Debug)]
struct Refusal {
    client: bool,
    message: String,
}

impl Refusal {
    fn client(message: impl Into<String>) -> Refusal {
        Refusal {
            client: true,
            message: message.into(),
        }
    }

    fn server(message: impl Into<String>) -> Refusal {
        Refusal {
            client: false,
            message: message.into(),
        }
    }
}

/// The query string's parameters (first value of each name).
fn query_params(raw: Option<&str>) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    if let Some(raw) = raw {
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            params
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    params
}

/// The org named by `/outbound/{org}` or `?source=`: `a`/`b`, any case.
fn parse_org(name: &str) -> Option<Org> {
    match name.trim().to_ascii_lowercase().as_str() {
        "a" => Some(Org::A),
        "b" => Some(Org::B),
        _ => None,
    }
}

/// Compares two secrets in time independent of where they differ (`subtle`; only a length
/// mismatch returns early, and the length is not what keeps a secret).
fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(given, expected).into()
}

/// Whether a message's `OrganizationId` is the org we logged in to: 15- and 18-character ids
/// of the same org share their first 15 characters (case-sensitive).
fn same_org_id(message: &str, learned: &str) -> bool {
    let m = message.trim();
    let l = learned.trim();
    matches!(m.len(), 15 | 18)
        && matches!(l.len(), 15 | 18)
        && m.is_ascii()
        && l.is_ascii()
        && m[..15] == l[..15]
}

async fn outbound_path(
    State(shared): State<Arc<Shared>>,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let params = query_params(query.as_deref());
    let org = parse_org(&org).ok_or_else(|| {
        Refusal::client(format!(
            "unknown source {org:?} in the path: use /outbound/a or /outbound/b"
        ))
    });
    handle_outbound(&shared, org, params.get("secret").map(String::as_str), body).await
}

async fn outbound_root(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let params = query_params(query.as_deref());
    let org = match params.get("source") {
        None => Err(Refusal::client(
            "no source: use /outbound/a, /outbound/b or /?source=A|B",
        )),
        Some(s) => parse_org(s)
            .ok_or_else(|| Refusal::client(format!("unknown source {s:?}: use source=A or B"))),
    };
    handle_outbound(&shared, org, params.get("secret").map(String::as_str), body).await
}

async fn handle_outbound(
    shared: &Shared,
    org: Result<Org, Refusal>,
    secret: Option<&str>,
    body: Body,
) -> Response {
    let org_label = org.as_ref().map(|o| o.as_str()).unwrap_or("unknown");
    match accept(shared, org, secret, body).await {
        Ok((org, received, new)) => {
            shared
                .daemon
                .metrics()
                .message(org_label, "acked", received);
            tracing::info!(
                org = org.as_str(),
                notifications = received,
                new,
                "outbound message stored; acked"
            );
            if new > 0 {
                shared.wake.notify_one();
            }
            xml_response(StatusCode::OK, ack_envelope(true))
        }
        Err(refusal) => {
            shared.daemon.metrics().message(org_label, "refused", 0);
            if refusal.client {
                tracing::warn!(org = org_label, reason = %refusal.message, "outbound message refused");
            } else {
                tracing::error!(org = org_label, reason = %refusal.message, "outbound message not stored; Salesforce will retry it");
            }
            xml_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                fault_envelope(refusal.client, &refusal.message),
            )
        }
    }
}

/// Checks and stores one message; returns (org, notifications received, newly stored).
async fn accept(
    shared: &Shared,
    org: Result<Org, Refusal>,
    secret: Option<&str>,
    body: Body,
) -> Result<(Org, usize, u64), Refusal> {
    let org = org?;
    let settings = shared.daemon.settings();
    if settings.trigger.policy == TriggerPolicy::Poll {
        return Err(Refusal::client(
            "trigger.policy is \"poll\": outbound messages are not accepted (set trigger.policy \
             to \"push\" or \"hybrid\")",
        ));
    }
    let org_settings = match org {
        Org::A => &settings.a,
        Org::B => &settings.b,
    };
    let expected = org_settings.outbound_secret.as_ref().ok_or_else(|| {
        Refusal::server(format!(
            "orgs.{}.outbound_secret is not set: messages cannot be authenticated",
            org_settings.name
        ))
    })?;
    let given = secret.unwrap_or("");
    if !secrets_match(given.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(Refusal::client(if secret.is_none() {
            "no secret: the endpoint URL must carry ?secret=..."
        } else {
            "the secret does not match"
        }));
    }
    // A declared length over the limit is refused without reading the body.
    if let Some(declared) = body_size_hint(&body)
        && declared > MAX_BODY_BYTES as u64
    {
        return Err(Refusal::client(format!(
            "the body ({declared} bytes) is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            Refusal::client(format!(
                "the body could not be read or is larger than {MAX_BODY_BYTES} bytes: {e}"
            ))
        })?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Refusal::client("the body is not UTF-8 text"))?;
    let message = parse_notifications(text).map_err(|e| Refusal::client(e.to_string()))?;
    let identity = shared
        .daemon
        .client(org)
        .identity()
        .await
        .map_err(|e| Refusal::server(format!("cannot log in to org {}: {e}", org.as_str())))?;
    let learned = identity.org_id.ok_or_else(|| {
        Refusal::server(format!(
            "the login to org {} did not tell its organization id",
            org.as_str()
        ))
    })?;
    if !same_org_id(&message.organization_id, &learned) {
        return Err(Refusal::client(format!(
            "OrganizationId {} is not org {}'s ({})",
            message.organization_id,
            org.as_str(),
            learned
        )));
    }
    let notifications: Vec<NewNotification> = message
        .notifications
        .iter()
        .map(|n| NewNotification {
            org,
            notification_id: n.id.clone(),
            object: n.object.clone(),
            record_id: n.record_id.clone(),
        })
        .collect();
    let new = shared
        .daemon
        .store()
        .insert_notifications(&notifications)
        .await
        .map_err(|e| Refusal::server(format!("cannot store the notifications: {e}")))?;
    Ok((org, notifications.len(), new))
}

/// The body's exact length when the request declared it (`Content-Length`).
fn body_size_hint(body: &Body) -> Option<u64> {
    use axum::body::HttpBody as _;
    body.size_hint().exact()
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Health, status, metrics
// ---------------------------------------------------------------------------------------------

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = shared.daemon.store().counts().await {
        problems.push(format!("state store unreachable: {e}"));
    }
    for org in [Org::A, Org::B] {
        let client = shared.daemon.client(org);
        // A refused login is reported as such, and never tried again from here (a probe
        // every few seconds would lock the user out).
        if let Some(f) = client.auth_failure() {
            problems.push(format!(
                "org {} auth_failed: {}: {} ({} refused login(s) in a row; next attempt at {})",
                org.as_str(),
                f.code,
                f.message,
                f.attempts,
                crate::store::format_timestamp(f.next_attempt)
            ));
        } else if let Err(e) = client.identity().await {
            problems.push(format!("org {} not logged in: {e}", org.as_str()));
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let mut text = problems.join("\n");
        text.push('\n');
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let daemon = &shared.daemon;
    match crate::status::collect(daemon.store(), daemon.settings()).await {
        Ok(report) => match serde_json::to_string_pretty(&report) {
            Ok(json) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                json,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the status report");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot encode the status\n",
                )
                    .into_response()
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot read the status from the store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the state store: {e}\n"),
            )
                .into_response()
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let daemon = &shared.daemon;
    let mut gauges = Gauges::default();
    for org in [Org::A, Org::B] {
        let client = daemon.client(org);
        let calls = client.calls();
        for (kind, n) in calls.nonzero() {
            gauges
                .api_calls
                .push((org.as_str(), kind.as_str().to_string(), n));
        }
        if let Some((used, max)) = client.api_usage() {
            gauges.api_usage.push((org.as_str(), used, max));
        }
        gauges
            .auth_failed
            .push((org.as_str(), client.auth_failure().is_some()));
        gauges
            .paused
            .push((org.as_str(), client.paused_for().is_some()));
    }
    for direction in Direction::BOTH {
        match daemon.store().last_success(direction).await {
            Ok(Some(at)) => gauges.last_success.push((direction.as_str(), at)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the last successful cycle"),
        }
    }
    match daemon.store().counts().await {
        Ok(counts) => {
            let report = crate::status::build_report(daemon.settings(), true, &[], &[], &counts);
            for org in [Org::A, Org::B] {
                let depth = report.inbox.by_org.get(org.as_str()).copied().unwrap_or(0);
                gauges.inbox.push((org.as_str(), depth));
            }
            gauges.failures = vec![
                ("pending", report.failures.pending),
                ("waiting", report.failures.waiting),
                ("dead", report.failures.dead),
            ];
            gauges.failures_by_class = report.failures.by_class.into_iter().collect();
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the store's counts"),
    }
    match daemon.store().oldest_pending_notifications().await {
        Ok(oldest) => {
            let ages = crate::status::inbox_ages(&oldest, chrono::Utc::now());
            for org in [Org::A, Org::B] {
                let age = ages.get(org.as_str()).copied().unwrap_or(0);
                gauges.inbox_oldest_age.push((org.as_str(), age));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the inbox's oldest row"),
    }
    let text = render_metrics(&daemon.metrics().lock(), &gauges);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Values read at scrape time.
#[derive(Debug, Default)]
struct Gauges {
    /// (org, kind, calls this process made).
    api_calls: Vec<(&'static str, String, u64)>,
    /// (org, used, max) from the latest `Sforce-Limit-Info`.
    api_usage: Vec<(&'static str, u64, u64)>,
    /// (org, pending notifications).
    inbox: Vec<(&'static str, u64)>,
    /// (state, failures): pending, waiting, dead.
    failures: Vec<(&'static str, u64)>,
    /// (class, failures): transient, needs_edit, needs_operator.
    failures_by_class: Vec<(String, u64)>,
    /// (org, whether its logins are refused and backing off).
    auth_failed: Vec<(&'static str, bool)>,
    /// (org, whether it is paused on its API limit or budget).
    paused: Vec<(&'static str, bool)>,
    /// (direction, when it last finished a pass with every record handled).
    last_success: Vec<(&'static str, chrono::DateTime<chrono::Utc>)>,
    /// (org, seconds since its oldest pending notification was received; 0 when none).
    inbox_oldest_age: Vec<(&'static str, u64)>,
}

/// The Prometheus text exposition (format 0.0.4) of the counters and gauges (pure).
fn render_metrics(c: &Counters, g: &Gauges) -> String {
    let mut out = String::new();
    let out = &mut out;
    let by_outcome = |wanted: &[&str]| -> Vec<(String, String)> {
        Direction::BOTH
            .iter()
            .map(|d| {
                let n: u64 = wanted
                    .iter()
                    .map(|o| c.records.get(&(d.as_str(), *o)).copied().unwrap_or(0))
                    .sum();
                (format!("direction=\"{}\"", d.as_str()), n.to_string())
            })
            .collect()
    };
    family(
        out,
        "orgsync_records_synced_total",
        "counter",
        "Records written to the target or linked, by direction (since this process started).",
        by_outcome(&["created", "updated", "linked"]),
    );
    family(
        out,
        "orgsync_records_failed_total",
        "counter",
        "Records whose write failed (queued for retry), by direction.",
        by_outcome(&["failed"]),
    );
    family(
        out,
        "orgsync_records_skipped_total",
        "counter",
        "Records read and skipped (replays, echoes, unchanged, queued), by direction.",
        by_outcome(&["skipped"]),
    );
    let mut histogram = Vec::new();
    let mut last = Vec::new();
    for d in Direction::BOTH {
        let h = c.passes.get(d.as_str()).cloned().unwrap_or_default();
        let label = format!("direction=\"{}\"", d.as_str());
        for (le, n) in h.cumulative() {
            histogram.push((
                format!("orgsync_cycle_duration_seconds_bucket{{{label},le=\"{le}\"}}"),
                n.to_string(),
            ));
        }
        histogram.push((
            format!("orgsync_cycle_duration_seconds_sum{{{label}}}"),
            format_float(h.sum),
        ));
        histogram.push((
            format!("orgsync_cycle_duration_seconds_count{{{label}}}"),
            h.count.to_string(),
        ));
        let latest = c.last_pass.get(d.as_str()).copied().unwrap_or_default();
        last.push((label, format_float(latest)));
    }
    series_family(
        out,
        "orgsync_cycle_duration_seconds",
        "histogram",
        "Durations of direction passes (poll cycles, inbox drains, retries), by direction.",
        histogram,
    );
    family(
        out,
        "orgsync_last_cycle_duration_seconds",
        "gauge",
        "Duration of the latest direction pass, by direction.",
        last,
    );
    family(
        out,
        "orgsync_last_success_timestamp_seconds",
        "gauge",
        "When each direction last finished a pass with every record read durably handled (Unix time).",
        g.last_success
            .iter()
            .map(|(d, at)| {
                (
                    format!("direction=\"{d}\""),
                    format_float(at.timestamp_millis() as f64 / 1000.0),
                )
            })
            .collect(),
    );
    family(
        out,
        "orgsync_auth_failed",
        "gauge",
        "1 while the org's logins are refused for their credentials (the daemon backs off, 1 min doubling to 1 h), else 0.",
        g.auth_failed
            .iter()
            .map(|(org, failed)| (format!("org=\"{org}\""), u8::from(*failed).to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_paused",
        "gauge",
        "1 while the org is paused on its daily API limit or api_budget_percent, else 0.",
        g.paused
            .iter()
            .map(|(org, paused)| (format!("org=\"{org}\""), u8::from(*paused).to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_calls_total",
        "counter",
        "Salesforce HTTP calls this process made, by org and kind (logins included).",
        g.api_calls
            .iter()
            .map(|(org, kind, n)| (format!("org=\"{org}\",kind=\"{kind}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_usage_used",
        "gauge",
        "The org's API requests used in the last 24 h, from the latest Sforce-Limit-Info.",
        g.api_usage
            .iter()
            .map(|(org, used, _)| (format!("org=\"{org}\""), used.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_usage_max",
        "gauge",
        "The org's daily API request limit, from the latest Sforce-Limit-Info.",
        g.api_usage
            .iter()
            .map(|(org, _, max)| (format!("org=\"{org}\""), max.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_inbox_pending",
        "gauge",
        "Outbound Messaging notifications stored and not yet processed, by org.",
        g.inbox
            .iter()
            .map(|(org, n)| (format!("org=\"{org}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_inbox_oldest_age_seconds",
        "gauge",
        "Seconds since the oldest unprocessed notification was received, by org (0 when none).",
        g.inbox_oldest_age
            .iter()
            .map(|(org, age)| (format!("org=\"{org}\""), age.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_failures",
        "gauge",
        "Records in the failure queue, by state.",
        g.failures
            .iter()
            .map(|(state, n)| (format!("state=\"{state}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_failures_by_class",
        "gauge",
        "Records in the failure queue, by class (transient, needs_edit, needs_operator).",
        g.failures_by_class
            .iter()
            .map(|(class, n)| (format!("class=\"{class}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_outbound_messages_total",
        "counter",
        "Outbound messages received, by org and result (acked or refused with a fault).",
        c.messages
            .iter()
            .map(|((org, result), n)| (format!("org=\"{org}\",result=\"{result}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_outbound_notifications_total",
        "counter",
        "Notifications in acked outbound messages (redeliveries included), by org.",
        c.notifications
            .iter()
            .map(|(org, n)| (format!("org=\"{org}\""), n.to_string()))
            .collect(),
    );
    std::mem::take(out)
}

/// Writes one metric family whose samples are `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: Vec<(String, String)>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Writes one metric family whose samples name their own series (a histogram's `_bucket`,
/// `_sum` and `_count`): `(series with labels, value)`.
fn series_family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    series: Vec<(String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (series, value) in series {
        let _ = writeln!(out, "{series} {value}");
    }
}

/// A sample value as Prometheus text writes floats.
fn format_float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_a_or_b_in_any_case() {
        assert_eq!(parse_org("a"), Some(Org::A));
        assert_eq!(parse_org("B"), Some(Org::B));
        assert_eq!(parse_org(" A "), Some(Org::A));
        assert_eq!(parse_org("c"), None);
        assert_eq!(parse_org(""), None);
    }

    #[test]
    fn secrets_must_match_exactly() {
        assert!(secrets_match(b"s3cret", b"s3cret"));
        assert!(!secrets_match(b"s3cre", b"s3cret"));
        assert!(!secrets_match(b"s3cretx", b"s3cret"));
        assert!(!secrets_match(b"S3cret", b"s3cret"));
        assert!(!secrets_match(b"", b"s3cret"));
        // an empty expected secret never matches a non-empty one, and is refused at start
        assert!(!secrets_match(b"x", b""));
    }

    #[test]
    fn org_ids_compare_on_their_first_15_characters() {
        assert!(same_org_id("00D90000000gNcmEAE", "00D90000000gNcm"));
        assert!(same_org_id("00D90000000gNcm", "00D90000000gNcmEAE"));
        assert!(same_org_id("00D90000000gNcmEAE", "00D90000000gNcmEAE"));
        // case matters in 15-character ids
        assert!(!same_org_id("00D90000000gncmEAE", "00D90000000gNcmEAE"));
        assert!(!same_org_id("00D90000000gNcXEAE", "00D90000000gNcmEAE"));
        assert!(!same_org_id("00D9", "00D90000000gNcmEAE"));
        assert!(!same_org_id("", ""));
    }

    #[test]
    fn query_parameters_are_decoded_and_the_first_value_wins() {
        let p = query_params(Some("source=A&secret=a%2Bb%20c&secret=other"));
        assert_eq!(p.get("source").map(String::as_str), Some("A"));
        assert_eq!(p.get("secret").map(String::as_str), Some("a+b c"));
        assert!(query_params(None).is_empty());
    }

    #[test]
    fn metrics_render_every_family_with_help_and_type() {
        let metrics = crate::metrics::Metrics::default();
        let report = crate::sync::PassReport {
            created: 2,
            updated: 1,
            skipped: 4,
            failed: 1,
            ..crate::sync::PassReport::default()
        };
        metrics.pass(
            Direction::AToB,
            &report,
            std::time::Duration::from_millis(1500),
        );
        metrics.message("a", "acked", 3);
        let gauges = Gauges {
            api_calls: vec![("a", "query".into(), 7)],
            api_usage: vec![("b", 10, 15000)],
            inbox: vec![("a", 0), ("b", 2)],
            failures: vec![("pending", 1), ("waiting", 2), ("dead", 0)],
            failures_by_class: vec![
                ("needs_edit".into(), 2),
                ("needs_operator".into(), 0),
                ("transient".into(), 1),
            ],
            auth_failed: vec![("a", true), ("b", false)],
            paused: vec![("a", false), ("b", true)],
            last_success: vec![(
                "a_to_b",
                chrono::DateTime::from_timestamp(1_700_000_000, 500_000_000).expect("time"),
            )],
            inbox_oldest_age: vec![("a", 0), ("b", 75)],
        };
        let text = render_metrics(&metrics.lock(), &gauges);
        assert!(text.contains("orgsync_records_synced_total{direction=\"a_to_b\"} 3\n"));
        assert!(text.contains("orgsync_records_synced_total{direction=\"b_to_a\"} 0\n"));
        assert!(text.contains("orgsync_records_failed_total{direction=\"a_to_b\"} 1\n"));
        assert!(text.contains("orgsync_records_skipped_total{direction=\"a_to_b\"} 4\n"));
        assert!(text.contains("orgsync_cycle_duration_seconds_sum{direction=\"a_to_b\"} 1.5\n"));
        assert!(text.contains("# TYPE orgsync_cycle_duration_seconds histogram\n"));
        assert!(
            text.contains(
                "orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"1\"} 0\n"
            )
        );
        assert!(text.contains(
            "orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"2.5\"} 1\n"
        ));
        assert!(text.contains(
            "orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains("orgsync_cycle_duration_seconds_count{direction=\"a_to_b\"} 1\n"));
        assert!(text.contains("orgsync_auth_failed{org=\"a\"} 1\n"));
        assert!(text.contains("orgsync_api_paused{org=\"b\"} 1\n"));
        assert!(text.contains(
            "orgsync_last_success_timestamp_seconds{direction=\"a_to_b\"} 1700000000.5\n"
        ));
        assert!(text.contains("orgsync_api_calls_total{org=\"a\",kind=\"query\"} 7\n"));
        assert!(text.contains("orgsync_api_usage_max{org=\"b\"} 15000\n"));
        assert!(text.contains("orgsync_inbox_pending{org=\"b\"} 2\n"));
        assert!(text.contains("orgsync_failures{state=\"waiting\"} 2\n"));
        assert!(text.contains("orgsync_failures_by_class{class=\"needs_edit\"} 2\n"));
        assert!(text.contains("orgsync_failures_by_class{class=\"transient\"} 1\n"));
        assert!(text.contains("orgsync_inbox_oldest_age_seconds{org=\"b\"} 75\n"));
        assert!(text.contains("orgsync_outbound_messages_total{org=\"a\",result=\"acked\"} 1\n"));
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP orgsync_")
                    || line.starts_with("# TYPE orgsync_")
                    || line.starts_with("orgsync_"),
                "unexpected line {line:?}"
            );
        }
    }

    #[test]
    fn floats_are_written_as_prometheus_reads_them() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
    }
}
