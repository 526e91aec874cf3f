//! The status report's getDeleted safety-net section (issue 13, README "The getDeleted safety
//! net"): per org and object, where the next window starts and the holes seen (pure), and its
//! lines of the text report (only when there were holes).

use std::fmt::Write as _;

use serde::Serialize;

use crate::store::{DeletedCheck, Org, format_timestamp};

/// The getDeleted safety net of one org and object: where the next window starts, and the
/// holes seen (windows the delete log no longer reached: a reconcile is needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedCheckStatus {
    pub org: Org,
    pub object: String,
    pub next_start: String,
    pub last_checked_at: String,
    pub holes: u64,
    /// The latest hole: when it was seen, the window's start, and where the log started.
    pub last_hole_at: Option<String>,
    pub last_hole_start: Option<String>,
    pub last_hole_earliest: Option<String>,
}

impl DeletedCheckStatus {
    pub fn of(check: &DeletedCheck) -> DeletedCheckStatus {
        DeletedCheckStatus {
            org: check.org,
            object: check.object.clone(),
            next_start: format_timestamp(check.next_start),
            last_checked_at: format_timestamp(check.last_checked_at),
            holes: check.holes,
            last_hole_at: check.last_hole_at.map(format_timestamp),
            last_hole_start: check.last_hole_start.map(format_timestamp),
            last_hole_earliest: check.last_hole_earliest.map(format_timestamp),
        }
    }
}

/// The section's lines of the text report: one per org and object with holes.
pub(super) fn render_text(out: &mut String, checks: &[DeletedCheckStatus]) {
    for c in checks.iter().filter(|c| c.holes > 0) {
        let _ = writeln!(
            out,
            "Deletes   {} {}: {} getDeleted window hole(s), the latest seen {} (the delete log \
             started {}, after the window's start {}): deletes may have been missed, a \
             reconcile is needed (orgsync reconcile)",
            c.org,
            c.object,
            c.holes,
            c.last_hole_at.as_deref().unwrap_or("?"),
            c.last_hole_earliest.as_deref().unwrap_or("?"),
            c.last_hole_start.as_deref().unwrap_or("?"),
        );
    }
}
