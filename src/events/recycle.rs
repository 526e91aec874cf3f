//! The recycle bin's events: a getDeleted window with a hole (the safety net,
//! `sync::deleted_check`), and a tombstoned pair's target undeleted or created again
//! (`sync::undelete`).
//!
//! A hole: the org's delete log no longer reaches back to the window's start
//! (`earliestDateAvailable` is later: the recycle bin was emptied, the log was trimmed, or the
//! daemon was stopped longer than the log's 15 days), so records deleted in between may never
//! be seen: only a full reconcile can find them. Logged at WARN and counted
//! (`orgsync_deleted_window_holes_total{org}`); `status` shows the holes the store counted.
//! A target restored is counted with the other writes (`orgsync_record_writes_total`,
//! operation `undelete` or `create`).

use chrono::{DateTime, Utc};

use crate::domain::Direction;
use crate::metrics::{DELETED_WINDOW_HOLES, Metrics, RECORD_WRITES, label};

/// A getDeleted window started before the org's delete log did.
#[derive(Debug)]
pub struct DeletedWindowHole<'a> {
    pub cycle: u64,
    /// The direction whose source org was checked.
    pub direction: Direction,
    pub object: &'a str,
    /// The window's start as stored (deletes since then were to be listed).
    pub start: DateTime<Utc>,
    /// Where the org's delete log starts now.
    pub earliest_available: DateTime<Utc>,
}

impl DeletedWindowHole<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let org = self.direction.source();
        metrics
            .counter(DELETED_WINDOW_HOLES, vec![label("org", org.as_str())])
            .increment(1);
        tracing::warn!(
            cycle = self.cycle,
            direction = %self.direction,
            org = %org,
            object = %self.object,
            start = %self.start.to_rfc3339(),
            earliest_available = %self.earliest_available.to_rfc3339(),
            "getDeleted window has a hole: the org's delete log starts after the window's start, \
             so deletes in between may have been missed; a reconcile is needed (orgsync reconcile)"
        );
    }
}

/// A source record restored from the recycle bin whose link was a tombstone: its target was
/// undeleted and updated to the source's values (`recreated` false), or, gone from the
/// target's recycle bin, created again (`recreated` true, with a new id); the link is live
/// again.
#[derive(Debug)]
pub struct TargetRestored<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub source_id: &'a str,
    /// The target's id before (the tombstone's).
    pub old_target_id: &'a str,
    /// The target's id now (a new one when recreated).
    pub target_id: &'a str,
    pub recreated: bool,
}

impl TargetRestored<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let operation = if self.recreated { "create" } else { "undelete" };
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
            old_target_id = %self.old_target_id,
            target_id = %self.target_id,
            recreated = self.recreated,
            "{}",
            if self.recreated {
                "source undeleted: its target was gone from the recycle bin and was created again; the link is live"
            } else {
                "source undeleted: its target was undeleted and updated; the link is live"
            }
        );
    }
}
