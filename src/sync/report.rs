//! Report: what a pass did, and how it ended. The counts of the cycle log line and of the
//! store's `cycles` row; a page adds its counts to the pass's report only when it commits
//! (a page that did not commit reports only the API calls it spent).

use chrono::{DateTime, Utc};

use super::ports::PortError;
use crate::events::PassCounts;
use crate::store::{CycleCounts, CycleOutcome, Org};

/// How a pass ended (when it did not fail).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PassOutcome {
    /// Every row read got a durable outcome.
    #[default]
    Completed,
    /// Stopped between pages on request; the pages done are committed.
    Cancelled,
    /// An org's API limit was reached: the page in flight recorded nothing and the watermark
    /// did not move past it; resume next cycle. `error` is the org's (its kind is
    /// [`super::ErrorKind::Limit`]).
    Paused { org: Org, error: PortError },
}

/// What a pass did; the counts of the cycle log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PassReport {
    /// Rows read from the source (watermark query, retries and inbox).
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    /// Linked to an existing target record without writing it.
    pub linked: u64,
    /// Replays, echoes, unchanged and queued rows.
    pub skipped: u64,
    pub failed: u64,
    pub conflicts: u64,
    /// Target records queued to be carried back to the source.
    pub reversed: u64,
    /// Target records deleted because their source was (links made tombstones).
    pub deleted: u64,
    /// Deleted sources whose target was edited since the last sync (`sync.delete_conflict`).
    pub delete_conflicts: u64,
    /// Deletes held by the mass-delete breaker (failure code `DELETE_HELD`).
    pub held: u64,
    /// Salesforce calls made (query batches, lookups, collections calls).
    pub api_calls: u64,
    /// Pages committed.
    pub pages: u64,
    /// The watermark after the pass, when a page moved it.
    pub watermark: Option<DateTime<Utc>>,
    pub outcome: PassOutcome,
}

impl PassReport {
    /// What the pass's end event reads of it.
    pub fn counts(&self) -> PassCounts<'_> {
        PassCounts {
            read: self.read,
            created: self.created,
            updated: self.updated,
            linked: self.linked,
            skipped: self.skipped,
            failed: self.failed,
            conflicts: self.conflicts,
            reversed: self.reversed,
            deleted: self.deleted,
            delete_conflicts: self.delete_conflicts,
            held: self.held,
            api_calls: self.api_calls,
            pages: self.pages,
            cancelled: self.outcome == PassOutcome::Cancelled,
            outcome: &self.outcome,
        }
    }

    /// The counts as the store's `cycles` table keeps them.
    pub fn cycle_counts(&self) -> CycleCounts {
        CycleCounts {
            read: self.read,
            created: self.created,
            updated: self.updated,
            linked: self.linked,
            skipped: self.skipped,
            failed: self.failed,
            conflicts: self.conflicts,
            api_calls: self.api_calls,
        }
    }

    /// How the cycle ended, for the `cycles` table: `ok` when every record read got a
    /// durable outcome and none failed, `partial` when some went to the failure queue,
    /// `interrupted` when cancelled, `paused` by an API limit (with the reason).
    pub fn cycle_outcome(&self) -> (CycleOutcome, Option<String>) {
        match &self.outcome {
            PassOutcome::Completed if self.failed == 0 => (CycleOutcome::Ok, None),
            PassOutcome::Completed => (CycleOutcome::Partial, None),
            PassOutcome::Cancelled => (CycleOutcome::Interrupted, None),
            PassOutcome::Paused { org, error } => (
                CycleOutcome::Paused,
                Some(format!(
                    "paused: org {} is at its API limit ({error}); resuming next cycle",
                    org.as_str().to_ascii_uppercase()
                )),
            ),
        }
    }

    /// The `cycles` row of a pass that ran (`Ok`) or stopped with an error (`Err`, written
    /// as its text): its counts, outcome and error.
    pub fn cycle_record<E: std::fmt::Display>(
        result: &Result<PassReport, E>,
    ) -> (CycleCounts, CycleOutcome, Option<String>) {
        match result {
            Ok(report) => {
                let (outcome, error) = report.cycle_outcome();
                (report.cycle_counts(), outcome, error)
            }
            Err(message) => (
                CycleCounts::default(),
                CycleOutcome::Failed,
                Some(message.to_string()),
            ),
        }
    }

    /// Adds another part of the same pass (retries, inbox) to this report.
    pub fn absorb(&mut self, other: PassReport) {
        self.read += other.read;
        self.created += other.created;
        self.updated += other.updated;
        self.linked += other.linked;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        self.reversed += other.reversed;
        self.deleted += other.deleted;
        self.delete_conflicts += other.delete_conflicts;
        self.held += other.held;
        self.api_calls += other.api_calls;
        self.pages += other.pages;
        self.watermark = self.watermark.max(other.watermark);
        if self.outcome == PassOutcome::Completed {
            self.outcome = other.outcome;
        }
    }
}
