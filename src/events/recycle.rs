//! The recycle bin's events: a getDeleted window with a hole (the safety net,
//! `sync::deleted_check`).
//!
//! A hole: the org's delete log no longer reaches back to the window's start
//! (`earliestDateAvailable` is later: the recycle bin was emptied, the log was trimmed, or the
//! daemon was stopped longer than the log's 15 days), so records deleted in between may never
//! be seen: only a full reconcile can find them. Logged at WARN and counted
//! (`orgsync_deleted_window_holes_total{org}`); `status` shows the holes the store counted.

use chrono::{DateTime, Utc};

use crate::domain::Direction;
use crate::metrics::{DELETED_WINDOW_HOLES, Metrics, label};

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
