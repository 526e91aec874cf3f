//! `GET /healthz` (the process answers), `/readyz` (the store and both orgs' logins; a standby
//! replica is ready too: it stores outbound messages and takes over when the leader stops),
//! `/status` (the status report as JSON, with this process's role under `ha.role`) and `/metrics` (the Prometheus text: the daemon's counters with
//! the gauges read here, at scrape time, from the clients and the store; a store error is
//! logged and the rest is served).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::metrics::Gauges;
use crate::store::{Direction, Org};

pub(super) async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

pub(super) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
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

pub(super) async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let daemon = &shared.daemon;
    match crate::status::collect(daemon.store(), daemon.settings()).await {
        Ok(mut report) => match encode_with_role(&mut report, daemon) {
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

/// The report as JSON, with this process's role (on SQLite always the leader: one process).
fn encode_with_role(
    report: &mut crate::status::StatusReport,
    daemon: &crate::daemon::Daemon,
) -> serde_json::Result<String> {
    let role = if daemon.is_leader() {
        "leader"
    } else {
        "standby"
    };
    let ttl = daemon.settings().ha.lease_ttl;
    report
        .ha
        .get_or_insert_with(|| crate::status::ha_status(None, &[], chrono::Utc::now(), ttl))
        .role = Some(role);
    serde_json::to_string_pretty(report)
}

pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
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
    match daemon.store().bulk_jobs(1000).await {
        Ok(jobs) => {
            for org in [Org::A, Org::B] {
                let open = jobs
                    .iter()
                    .filter(|j| j.org == org && j.state.is_open())
                    .count() as u64;
                gauges.bulk_open.push((org.as_str(), open));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the bulk jobs"),
    }
    gauges.ha_leader = Some(daemon.is_leader());
    gauges.ha_lease_changes = daemon.lease_changes();
    match daemon.store().last_reconcile_report().await {
        Ok(Some(stored)) => {
            if let Some(r) = crate::reconcile::ReconcileStatus::of(&stored) {
                gauges.reconcile_differences = r.metric_classes();
            }
            gauges.reconcile_last_run = Some(stored.finished_at);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the last reconcile report"),
    }
    let text = daemon.metrics().render(&gauges);
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
