//! The per-record events of a direction pass: a record written (created or updated), linked,
//! skipped, a field conflict, a failure queued or cleared, a newer target carried back, a
//! parent account found or created. The engine (`sync`'s stages) emits them where it settles
//! a record, with the pass's [`Metrics`]; each logs the record's line (message and fields) and
//! increments a counter of its own (by direction, and by operation, reason, winner or class),
//! so the counts of a log search and of `/metrics` are the same count.
//!
//! These families (see [`crate::metrics::PER_RECORD`]) do not replace the pass-level
//! `orgsync_records_*_total` (counted from the pass report by [`super::PassFinished`]), so
//! nothing is counted twice. This file imports only `metrics` and `domain`, so the engine
//! below the shell may use it.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::Direction;
use crate::metrics::{
    CONFLICTS, FAILURES_CLEARED, FAILURES_QUEUED, Metrics, PARENT_ACCOUNTS, RECORD_LINKS,
    RECORD_SKIPS, RECORD_WRITES, REVERSES_QUEUED, label,
};

/// A record was written to the target by an upsert or a create (`created` tells which).
#[derive(Debug)]
pub struct RecordWritten<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: &'a str,
    pub created: bool,
}

impl RecordWritten<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let operation = if self.created { "create" } else { "update" };
        metrics
            .counter(
                RECORD_WRITES,
                vec![
                    label("direction", self.direction.as_str()),
                    label("operation", operation),
                ],
            )
            .increment(1);
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = %self.target_id,
            created = self.created,
            "record written to the target"
        );
    }
}

/// A linked record was updated in the target with `body`: the field names at info (what
/// changed), the values at debug (they may be business data an operator does not want in
/// every log).
#[derive(Debug)]
pub struct RecordUpdated<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: &'a str,
    pub body: &'a Map<String, Value>,
}

impl RecordUpdated<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                RECORD_WRITES,
                vec![
                    label("direction", self.direction.as_str()),
                    label("operation", "update"),
                ],
            )
            .increment(1);
        let fields = self.body.keys().cloned().collect::<Vec<_>>().join(",");
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = %self.target_id,
            fields = %fields,
            "record updated in the target"
        );
        if tracing::enabled!(tracing::Level::DEBUG) {
            let values = Value::Object(self.body.clone());
            tracing::debug!(
                cycle = self.cycle,
                direction = %self.direction,
                source_id = %self.source_id,
                target_id = %self.target_id,
                values = %values,
                "values written to the target"
            );
        }
    }
}

/// A record was linked to an existing target record with equal values.
#[derive(Debug)]
pub struct RecordLinked<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: &'a str,
}

impl RecordLinked<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                RECORD_LINKS,
                vec![label("direction", self.direction.as_str())],
            )
            .increment(1);
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = %self.target_id,
            "linked to an existing record with equal values"
        );
    }
}

/// A record read was skipped (`reason`: `replay`, `queued`, `echo`, `unchanged`).
#[derive(Debug)]
pub struct RecordSkipped<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: Option<&'a str>,
    pub reason: &'static str,
}

impl RecordSkipped<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                RECORD_SKIPS,
                vec![
                    label("direction", self.direction.as_str()),
                    label("reason", self.reason),
                ],
            )
            .increment(1);
        tracing::debug!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = self.target_id.unwrap_or(""),
            reason = self.reason,
            "record skipped"
        );
    }
}

/// Both sides changed `field`; `winner` (`source` or `target`) kept its value under `policy`.
#[derive(Debug)]
pub struct Conflict<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: &'a str,
    pub field: &'a str,
    pub source_value: &'a str,
    pub target_value: &'a str,
    pub source_last_modified: DateTime<Utc>,
    pub target_last_modified: DateTime<Utc>,
    pub winner: &'static str,
    /// The conflict policy, as configured (logged with `Debug`).
    pub policy: &'a dyn Debug,
}

impl Conflict<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                CONFLICTS,
                vec![
                    label("direction", self.direction.as_str()),
                    label("winner", self.winner),
                ],
            )
            .increment(1);
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = self.target_id,
            field = %self.field,
            source_value = %self.source_value,
            target_value = %self.target_value,
            source_last_modified = %self.source_last_modified,
            target_last_modified = %self.target_last_modified,
            winner = self.winner,
            policy = ?self.policy,
            "conflict: both sides changed the field"
        );
    }
}

/// A record failed and was kept in the failure queue (`class`: `transient`, `needs_edit`,
/// `needs_operator`).
#[derive(Debug)]
pub struct FailureQueued<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: Option<&'a str>,
    pub code: &'a str,
    pub message: &'a str,
    pub class: &'static str,
}

impl FailureQueued<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                FAILURES_QUEUED,
                vec![
                    label("direction", self.direction.as_str()),
                    label("class", self.class),
                ],
            )
            .increment(1);
        tracing::warn!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = self.target_id.unwrap_or(""),
            code = %self.code,
            message = %self.message,
            class = self.class,
            "record failed: kept in the failure queue"
        );
    }
}

/// The target held newer values than the source: queued to be carried back.
#[derive(Debug)]
pub struct ReverseQueued<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: &'a str,
}

impl ReverseQueued<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                REVERSES_QUEUED,
                vec![label("direction", self.direction.as_str())],
            )
            .increment(1);
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = %self.target_id,
            "target holds newer values: queued to be carried back"
        );
    }
}

/// A failed record no longer exists in the source: its failure is cleared.
#[derive(Debug)]
pub struct FailureCleared<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
}

impl FailureCleared<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                FAILURES_CLEARED,
                vec![label("direction", self.direction.as_str())],
            )
            .increment(1);
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            "failed record no longer exists in the source: failure cleared"
        );
    }
}

/// A parent account was found in the target by Name and linked (`created` false), or created
/// in the target (`created` true). `source_id` is empty for an account not read from the
/// source (the created line logs it so, as today).
#[derive(Debug)]
pub struct ParentAccount<'a> {
    pub cycle: u64,
    pub direction: Direction,
    /// The account's Name.
    pub account: &'a str,
    pub source_id: &'a str,
    pub target_id: &'a str,
    pub created: bool,
}

impl ParentAccount<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let how = if self.created { "created" } else { "found" };
        metrics
            .counter(
                PARENT_ACCOUNTS,
                vec![
                    label("direction", self.direction.as_str()),
                    label("how", how),
                ],
            )
            .increment(1);
        if self.created {
            tracing::info!(
                cycle = self.cycle,
                direction = %self.direction,
                account = %self.account,
                source_id = self.source_id,
                target_id = %self.target_id,
                "parent account created in the target"
            );
        } else {
            tracing::info!(
                cycle = self.cycle,
                direction = %self.direction,
                account = %self.account,
                source_id = %self.source_id,
                target_id = %self.target_id,
                "parent account found in the target by Name: linked"
            );
        }
    }
}
