//! The direction pass's end: finished (its summary line with the records counters and the
//! duration histogram) or failed (a log line; the `cycles` table records it).
//!
//! A finished pass is described by [`PassCounts`], which the engine's report fills in
//! (`sync::PassReport::counts`), so that this module, like every event, imports nothing above
//! `metrics` and `domain` and the engine may use the events.

use std::fmt::Debug;
use std::time::Duration;

use crate::domain::Direction;
use crate::metrics::{
    CYCLE_DURATION, LAST_CYCLE_DURATION, Metrics, RECORDS_FAILED, RECORDS_SKIPPED, RECORDS_SYNCED,
    label,
};

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a finished pass counted, and how it ended: the parts of the engine's report that the
/// summary line and the counters read.
#[derive(Debug, Clone, Copy)]
pub struct PassCounts<'a> {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub linked: u64,
    pub skipped: u64,
    pub failed: u64,
    pub conflicts: u64,
    pub reversed: u64,
    /// Targets deleted because their source was.
    pub deleted: u64,
    /// Deleted sources whose target was edited since the last sync.
    pub delete_conflicts: u64,
    /// Deletes held by the mass-delete breaker.
    pub held: u64,
    pub api_calls: u64,
    pub pages: u64,
    /// Stopped between pages on request.
    pub cancelled: bool,
    /// How the pass ended (logged with `Debug`).
    pub outcome: &'a dyn Debug,
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
    pub report: PassCounts<'a>,
    pub elapsed: Duration,
}

impl PassFinished<'_> {
    /// Whether the pass did anything worth a line at info: wrote, linked, deleted, held or
    /// failed records,
    /// or was cancelled. Rows read again and skipped (the lookback's replays, echoes of our
    /// own writes) are not; nor is a pass paused by an API limit that got nothing done: the
    /// client logs the pause once when it begins and once when it ends.
    pub fn did_something(&self) -> bool {
        let r = &self.report;
        r.created + r.updated + r.linked + r.failed + r.conflicts + r.deleted + r.held > 0
            || r.cancelled
    }

    /// The summary line (at info when the pass did something, at debug when idle) and the
    /// pass metrics.
    pub fn emit(&self, metrics: &Metrics) {
        let report = &self.report;
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
                    deleted = report.deleted,
                    delete_conflicts = report.delete_conflicts,
                    held = report.held,
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
