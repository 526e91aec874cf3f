//! The delete events of a direction pass (issue 13): a target record deleted (or found gone)
//! and its link made a tombstone, a delete conflict and how it was resolved, a batch of
//! deletes held by the mass-delete breaker. Like [`super::record`], each logs one line with
//! `cycle`, `direction` and the record ids, and increments its own counter. Imports only
//! `metrics` and `domain`.

use chrono::{DateTime, Utc};

use crate::domain::Direction;
use crate::metrics::{DELETE_CONFLICTS, DELETES_HELD, Metrics, RECORD_DELETES, label};

/// The source record was deleted: its target was deleted now (`already_gone = false`; also
/// when the org answered `ENTITY_IS_DELETED`), or was gone already; the link is a tombstone.
#[derive(Debug)]
pub struct RecordDeleted<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: &'a str,
    pub already_gone: bool,
}

impl RecordDeleted<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let outcome = if self.already_gone {
            "already_gone"
        } else {
            "deleted"
        };
        metrics
            .counter(
                RECORD_DELETES,
                vec![
                    label("direction", self.direction.as_str()),
                    label("outcome", outcome),
                ],
            )
            .increment(1);
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = %self.target_id,
            outcome,
            "source record deleted: target deleted, link kept as a tombstone"
        );
    }
}

/// A deleted source record whose target was edited since the last sync: both sides, and the
/// resolution (`keep_edit`: the source is restored and gets the edit; `delete`).
#[derive(Debug)]
pub struct DeleteConflict<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    pub target_id: &'a str,
    /// When the source was deleted (its SystemModstamp).
    pub source_deleted_at: DateTime<Utc>,
    pub target_last_modified: DateTime<Utc>,
    /// The target's fields that differ from the last synced snapshot, comma-separated.
    pub edited_fields: &'a str,
    /// Those fields as last synced (what the deleted source held), as JSON.
    pub synced_values: &'a str,
    /// Those fields in the target now (the edit), as JSON.
    pub target_values: &'a str,
    pub resolution: &'static str,
}

impl DeleteConflict<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                DELETE_CONFLICTS,
                vec![
                    label("direction", self.direction.as_str()),
                    label("resolution", self.resolution),
                ],
            )
            .increment(1);
        tracing::warn!(
            cycle = self.cycle,
            direction = %self.direction,
            source_id = %self.source_id,
            target_id = %self.target_id,
            source_deleted_at = %self.source_deleted_at,
            target_last_modified = %self.target_last_modified,
            edited_fields = %self.edited_fields,
            synced_values = %self.synced_values,
            target_values = %self.target_values,
            resolution = self.resolution,
            "delete conflict: the source was deleted, the target edited since the last sync"
        );
    }
}

/// The mass-delete breaker held this pass's deletes: `count` deleted source rows, more than
/// `limit` (`sync.max_deletes_per_cycle`). One ERROR line per pass; each held record goes
/// to the failure queue with code `DELETE_HELD`.
#[derive(Debug)]
pub struct DeletesHeld {
    pub cycle: u64,
    pub direction: Direction,
    pub count: u64,
    pub limit: u32,
}

impl DeletesHeld {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                DELETES_HELD,
                vec![label("direction", self.direction.as_str())],
            )
            .increment(1);
        tracing::error!(
            cycle = self.cycle,
            direction = %self.direction,
            count = self.count,
            limit = self.limit,
            "mass delete: {} deleted records in one cycle, more than sync.max_deletes_per_cycle = {}; \
             none is applied: each waits in the failure queue as DELETE_HELD \
             (`orgsync failures retry --code DELETE_HELD` applies them, `failures discard` keeps the copies)",
            self.count,
            self.limit
        );
    }
}
