//! Observability as events: one struct per thing worth observing, and one `emit` method that
//! writes its log line (tracing, one line, with `cycle`, `direction` and the record or org ids)
//! and updates its metric together, so a log line and a counter cannot disagree or drift
//! apart (the model is vector's `internal_events`). The metric names are the constants of
//! [`crate::metrics`]; the daemon's [`crate::metrics::Metrics`] is passed to `emit` (each
//! daemon has its own, so several daemons in one process keep separate counters).
//!
//! - this module: the shell's events (a direction pass finished, failed or was skipped, an
//!   outbound message acked or refused, the heartbeat, housekeeping);
//! - [`client`]: the Salesforce client's state changes (login refused, accepted again; API
//!   pause began, still paused, resumed). The client has no daemon handle, so those events
//!   only log: their metrics (`orgsync_auth_failed`, `orgsync_api_paused`) are gauges the
//!   scrape reads from the client's gates, which those same transitions set;
//! - [`record`]: the per-record events of a direction pass (written, updated, linked, skipped,
//!   conflict, failure queued, carried back), each with a counter of its own.
//!
//! An event that has no metric (a failed pass is counted by the `cycles` table; the heartbeat
//! and housekeeping are log lines only) says so on its struct.

pub mod client;
pub mod record;

#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::metrics::{
    CYCLE_DURATION, LAST_CYCLE_DURATION, Metrics, OUTBOUND_MESSAGES, OUTBOUND_NOTIFICATIONS,
    RECORDS_FAILED, RECORDS_SKIPPED, RECORDS_SYNCED, label,
};
use crate::store::{Direction, Org};
use crate::sync::{PassOutcome, PassReport};

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A direction pass finished (completed, cancelled or paused) with what it counted. Metrics:
/// records synced (created, updated, linked), failed and skipped by direction; the pass's
/// duration in the histogram and as the latest duration.
#[derive(Debug)]
pub struct PassFinished<'a> {
    pub cycle: i64,
    pub direction: Direction,
    /// `poll`, `inbox` or `retries`.
    pub kind: &'static str,
    pub report: &'a PassReport,
    pub elapsed: Duration,
}

impl PassFinished<'_> {
    /// Whether the pass did anything worth a line at info: wrote, linked or failed records,
    /// or was cancelled. Rows read again and skipped (the lookback's replays, echoes of our
    /// own writes) are not; nor is a pass paused by an API limit that got nothing done: the
    /// client logs the pause once when it begins and once when it ends.
    pub fn did_something(&self) -> bool {
        let r = self.report;
        r.created + r.updated + r.linked + r.failed + r.conflicts > 0
            || r.outcome == PassOutcome::Cancelled
    }

    /// The summary line (at info when the pass did something, at debug when idle) and the
    /// pass metrics.
    pub fn emit(&self, metrics: &Metrics) {
        let report = self.report;
        let d = self.direction.as_str();
        let by_direction = || vec![label("direction", d)];
        metrics
            .counter(RECORDS_SYNCED, by_direction())
            .increment(report.created + report.updated + report.linked);
        metrics
            .counter(RECORDS_FAILED, by_direction())
            .increment(report.failed);
        metrics
            .counter(RECORDS_SKIPPED, by_direction())
            .increment(report.skipped);
        let secs = self.elapsed.as_secs_f64();
        metrics
            .histogram(CYCLE_DURATION, by_direction())
            .record(secs);
        metrics.gauge(LAST_CYCLE_DURATION, by_direction()).set(secs);
        metrics.upkeep();
        macro_rules! summary {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    cycle = self.cycle,
                    direction = %self.direction,
                    kind = self.kind,
                    read = report.read,
                    created = report.created,
                    updated = report.updated,
                    linked = report.linked,
                    skipped = report.skipped,
                    failed = report.failed,
                    conflicts = report.conflicts,
                    reversed = report.reversed,
                    api_calls = report.api_calls,
                    pages = report.pages,
                    outcome = ?report.outcome,
                    elapsed_ms = millis(self.elapsed),
                    "direction pass finished"
                )
            };
        }
        if self.did_something() {
            summary!(tracing::Level::INFO);
        } else {
            summary!(tracing::Level::DEBUG);
        }
    }
}

/// A direction pass could not run or stopped on an error (what did not commit is read again
/// next time). No metric: the `cycles` table records it (status shows it) and the
/// last-success gauge stops moving.
#[derive(Debug)]
pub struct PassFailed<'a> {
    pub cycle: i64,
    pub direction: Direction,
    pub kind: &'static str,
    pub error: &'a str,
    /// The source's login is backing off from a refusal: that was logged once by the client
    /// when it was refused, so this is at debug, not an error every cycle.
    pub login_backing_off: bool,
}

impl PassFailed<'_> {
    pub fn emit(&self) {
        if self.login_backing_off {
            tracing::debug!(
                cycle = self.cycle,
                direction = %self.direction,
                kind = self.kind,
                error = %self.error,
                "direction pass skipped: the org's login is backing off"
            );
        } else {
            tracing::error!(
                cycle = self.cycle,
                direction = %self.direction,
                kind = self.kind,
                error = %self.error,
                "direction pass failed; what did not commit is read again next time"
            );
        }
    }
}

/// An outbound message was stored and acked. Metrics: messages by org and result `acked`,
/// notifications by org (redeliveries included).
#[derive(Debug)]
pub struct OutboundAcked {
    pub org: Org,
    /// Notifications in the message.
    pub notifications: usize,
    /// Of those, newly stored (not redeliveries).
    pub new: u64,
}

impl OutboundAcked {
    pub fn emit(&self, metrics: &Metrics) {
        let org = self.org.as_str();
        metrics
            .counter(
                OUTBOUND_MESSAGES,
                vec![label("org", org), label("result", "acked")],
            )
            .increment(1);
        metrics
            .counter(OUTBOUND_NOTIFICATIONS, vec![label("org", org)])
            .increment(self.notifications as u64);
        tracing::info!(
            org,
            notifications = self.notifications,
            new = self.new,
            "outbound message stored; acked"
        );
    }
}

/// An outbound message was answered with a SOAP fault: refused for the sender's fault (a
/// warning), or not stored for ours (an error; Salesforce retries it). Metric: messages by
/// org (`unknown` when the source could not be told) and result `refused`.
#[derive(Debug)]
pub struct OutboundRefused<'a> {
    /// `a`, `b` or `unknown`.
    pub org: &'static str,
    pub reason: &'a str,
    /// The sender is at fault (else we are).
    pub client: bool,
}

impl OutboundRefused<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                OUTBOUND_MESSAGES,
                vec![label("org", self.org), label("result", "refused")],
            )
            .increment(1);
        if self.client {
            tracing::warn!(org = self.org, reason = %self.reason, "outbound message refused");
        } else {
            tracing::error!(
                org = self.org,
                reason = %self.reason,
                "outbound message not stored; Salesforce will retry it"
            );
        }
        // A refused message carries no stored notifications; the family shows the org all
        // the same (0), as it did when the counters were kept by hand.
        metrics
            .counter(OUTBOUND_NOTIFICATIONS, vec![label("org", self.org)])
            .increment(0);
    }
}

/// The worker's heartbeat: the daemon is alive, and what it did since the last one. A log
/// line only (the counters say the same cumulatively).
#[derive(Debug)]
pub struct Heartbeat<'a> {
    /// The trigger policy, as configured.
    pub policy: &'a dyn std::fmt::Debug,
    pub cycles: u64,
    pub written: u64,
    pub failed: u64,
    pub last_cycle: u64,
}

impl Heartbeat<'_> {
    pub fn emit(&self) {
        tracing::info!(
            policy = ?self.policy,
            cycles = self.cycles,
            written = self.written,
            failed = self.failed,
            last_cycle = self.last_cycle,
            "orgsync alive{}",
            if self.written + self.failed == 0 { ": idle" } else { "" }
        );
    }
}

/// Housekeeping deleted old processed notifications and finished cycles (logged only when it
/// deleted something), or failed (tried again in an hour). A log line only.
#[derive(Debug)]
pub enum Housekeeping {
    Done { inbox_rows: u64, cycles: u64 },
    Failed { error: String },
}

impl Housekeeping {
    pub fn emit(&self) {
        match self {
            Housekeeping::Done { inbox_rows, cycles } => {
                if inbox_rows + cycles > 0 {
                    tracing::info!(
                        inbox_rows,
                        cycles,
                        "housekeeping: old processed notifications and cycles deleted"
                    );
                }
            }
            Housekeeping::Failed { error } => {
                tracing::warn!(error = %error, "housekeeping failed; tried again in an hour");
            }
        }
    }
}
