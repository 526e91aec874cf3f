//! The getDeleted safety net: deletes that the poll's `queryAll` can no longer see (the record
//! was purged from the recycle bin, or hard-deleted, before the poll read it) are still in the
//! org's delete log, which getDeleted lists. Once per `sync.deleted_check_frequency` (default
//! 1 h) and direction, one getDeleted call lists the source org's deletes since the stored
//! start; those whose link is still live go to the delete path (`Pass::apply_source_deletes`).
//!
//! The decisions are pure and tested here: whether a check is due ([`plan_check`]), its
//! window (minute granularity; at most the delete log's 15 days back; at least two minutes
//! long, since Salesforce wants the start to precede the end "by more than one minute"),
//! what a reply means ([`assess`]: the next start is `latestDateCovered`; an
//! `earliestDateAvailable` later than the start is a hole), and which listed ids to apply
//! ([`ids_to_apply`]). [`deleted_ids_to_apply`] is the thin I/O around them.
//!
//! **Order, so nothing is lost if the process dies anywhere** (the caller's part is 3 and 4):
//! 1. read the stored start (or the first watermark) and the last check time;
//! 2. call getDeleted; keep the ids whose link is live;
//! 3. the caller hands those ids to `Pass::apply_source_deletes`, which makes each one durable
//!    (tombstone, or failure-queue entry) in its page transactions;
//! 4. only then the caller stores the new start: [`PendingDeletedCheck::commit`].
//!
//! A death before 4 leaves the old start: the next check lists the same window again, and the
//! ids already applied are tombstones by then, so [`ids_to_apply`] leaves them out (a replay
//! costs one call, never a second delete). The start is never stored before the ids are
//! durable, so no listed delete can be skipped. A hole found by a check that is not committed
//! is logged and counted again by the next check (at least once, like every event), and
//! counted once in the store.
//!
//! Rejected: calling getDeleted every cycle (one more API call per direction per cycle, when
//! `queryAll` already sees every delete that happens while the recycle bin keeps it).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::errors::store_error_kind;
use super::ports::ErrorKind;
use crate::events::DeletedWindowHole;
use crate::metrics::Metrics;
use crate::salesforce::{Client, DeletedRecord, DeletedWindow, SalesforceError};
use crate::store::{
    DeletedCheck, DeletedCheckWrite, Direction, Link, Org, Store, StoreError, same_record,
};

/// getDeleted reaches back this many days ("no more than 15 days previous to the day the call
/// is executed", SOAP `getDeleted()`); an older start is `INVALID_REPLICATION_DATE`.
pub const DELETE_LOG_DAYS: i64 = 15;

/// Kept between the oldest start we ask for and the log's 15 days, so that the org's clock
/// running a little ahead of ours never turns the call into `INVALID_REPLICATION_DATE`.
const LOG_EDGE_MARGIN_MINUTES: i64 = 5;

/// The shortest window asked for: the start must precede the end "by more than one minute"
/// (newer SOAP `getDeleted()` docs), and both are cut to the minute.
const MIN_WINDOW_MINUTES: i64 = 2;

/// `at` with its seconds dropped: getDeleted ignores them.
pub fn truncate_to_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp();
    Utc.timestamp_opt(secs - secs.rem_euclid(60), 0)
        .single()
        .unwrap_or(at)
}

/// A getDeleted window to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start that was stored, when the log's 15 days no longer reach it (the window was
    /// moved up to the log's edge; deletes before that cannot be listed: a hole).
    pub beyond_log: Option<DateTime<Utc>>,
}

/// What to do about the safety net this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckPlan {
    /// The last check is more recent than the frequency: nothing to do before `due_at`.
    NotDue { due_at: DateTime<Utc> },
    /// No start stored and nothing synced from this org yet: no link to protect.
    NothingSynced,
    /// Due, but the window since `start` is still shorter than Salesforce accepts.
    TooShort { start: DateTime<Utc> },
    /// Call getDeleted over this window.
    Check(Window),
}

/// Decides whether a check is due and over which window: `stored` is the last check (its
/// next start and time), `first_watermark` the source org's watermark (the start of a first
/// check), `frequency` is `sync.deleted_check_frequency`.
pub fn plan_check(
    stored: Option<&DeletedCheck>,
    first_watermark: Option<DateTime<Utc>>,
    frequency: Duration,
    now: DateTime<Utc>,
) -> CheckPlan {
    if let Some(last) = stored {
        // A frequency too large to add is "never again" (no panic on overflow).
        let due_at = chrono::Duration::from_std(frequency)
            .ok()
            .and_then(|f| last.last_checked_at.checked_add_signed(f))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now < due_at {
            return CheckPlan::NotDue { due_at };
        }
    }
    let Some(stored_start) = stored.map(|c| c.next_start).or(first_watermark) else {
        return CheckPlan::NothingSynced;
    };
    let stored_start = truncate_to_minute(stored_start);
    let end = truncate_to_minute(now);
    let log_edge = end - chrono::Duration::days(DELETE_LOG_DAYS)
        + chrono::Duration::minutes(LOG_EDGE_MARGIN_MINUTES);
    let (start, beyond_log) = match (stored_start < log_edge, stored.is_some()) {
        (false, _) => (stored_start, None),
        // A start the safety net stored and the log no longer reaches: checks were missed.
        (true, true) => (log_edge, Some(stored_start)),
        // A first check from an old watermark (a quiet org's last change) is no hole: every
        // cycle's queryAll read the deletes since the watermark; only the log's reach limits
        // this first window.
        (true, false) => (log_edge, None),
    };
    if end - start < chrono::Duration::minutes(MIN_WINDOW_MINUTES) {
        return CheckPlan::TooShort { start };
    }
    CheckPlan::Check(Window {
        start,
        end,
        beyond_log,
    })
}

/// A window whose start the org's delete log no longer reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    /// The start that was asked for (or stored, when it was beyond the log's 15 days).
    pub start: DateTime<Utc>,
    /// Where the delete log starts.
    pub earliest_available: DateTime<Utc>,
}

/// What a getDeleted reply means for the next check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The next window's start: `latestDateCovered` (never before this window's start).
    pub next_start: DateTime<Utc>,
    pub hole: Option<Hole>,
}

/// Reads a reply of the call over `window`.
pub fn assess(window: &Window, reply: &DeletedWindow) -> Assessment {
    let next_start = truncate_to_minute(reply.latest_date_covered).max(window.start);
    let hole = match window.beyond_log {
        Some(stored) => Some(Hole {
            start: stored,
            earliest_available: reply.earliest_date_available.max(window.start),
        }),
        None if reply.earliest_date_available > window.start => Some(Hole {
            start: window.start,
            earliest_available: reply.earliest_date_available,
        }),
        None => None,
    };
    Assessment { next_start, hole }
}

/// The listed ids whose link is live, seen from the `source` org's side: the deletes the
/// `queryAll` feed did not apply. Ids without a link (never synced), or whose link is a
/// tombstone (already applied: a replay) or unlinked (not synced), are left out. In the
/// order listed, each once.
pub fn ids_to_apply(deleted: &[DeletedRecord], links: &[Link], source: Org) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for record in deleted {
        let live = links.iter().any(|l| {
            let side = match source {
                Org::A => &l.a_id,
                Org::B => &l.b_id,
            };
            l.is_live() && same_record(side, &record.id)
        });
        if live && !out.iter().any(|id| same_record(id, &record.id)) {
            out.push(record.id.clone());
        }
    }
    out
}

/// One direction's check, as the daemon's cycle runs it.
#[derive(Debug, Clone)]
pub struct DeletedCheckRun<'a> {
    pub cycle: u64,
    /// The direction whose source org is checked (its deletes are applied to the target).
    pub direction: Direction,
    /// `sync.object`.
    pub object: &'a str,
    /// `sync.deleted_check_frequency`.
    pub frequency: Duration,
}

/// A check made, whose new start is not stored yet: hand [`Self::ids`] to the delete path,
/// then [`Self::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeletedCheck {
    /// Source ids deleted in the org whose links are live: for `Pass::apply_source_deletes`.
    pub ids: Vec<String>,
    /// How many ids getDeleted listed in the window (applied or not).
    pub listed: usize,
    pub window: Window,
    pub hole: Option<Hole>,
    org: Org,
    object: String,
    write: DeletedCheckWrite,
}

impl PendingDeletedCheck {
    /// Stores the new start, the check's time and its hole. Call it only once every id of
    /// [`Self::ids`] has a durable outcome (see the module's order).
    pub async fn commit(self, store: &Store) -> Result<DeletedCheck, StoreError> {
        store
            .record_deleted_check(self.org, &self.object, &self.write)
            .await
    }
}

/// What [`deleted_ids_to_apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletedCheckOutcome {
    /// No call made (not due, nothing synced yet, window too short).
    Skipped(CheckPlan),
    /// One getDeleted call made.
    Checked(PendingDeletedCheck),
}

/// Why a check could not be made. Nothing was stored: the next cycle tries again.
#[derive(Debug, thiserror::Error)]
pub enum DeletedCheckError {
    #[error("getDeleted failed: {0}")]
    Salesforce(#[from] SalesforceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DeletedCheckError {
    /// What it needs, in the one classification (a limit pauses the org as any call does).
    pub fn kind(&self) -> ErrorKind {
        match self {
            DeletedCheckError::Salesforce(e) => e.kind(),
            DeletedCheckError::Store(e) => store_error_kind(e),
        }
    }
}

/// Steps 1 and 2 of the module's order: when due, one getDeleted call on the `run`'s source
/// org (through `source`, its client), the hole reported (WARN, the counter), and the ids to
/// hand to the delete path. Stores nothing: the caller commits the returned check after the
/// ids are applied. `now` is the end of the window (the caller's clock).
pub async fn deleted_ids_to_apply(
    source: &Client,
    store: &Store,
    metrics: &Metrics,
    run: &DeletedCheckRun<'_>,
    now: DateTime<Utc>,
) -> Result<DeletedCheckOutcome, DeletedCheckError> {
    let org = run.direction.source();
    let stored = store.deleted_check(org, run.object).await?;
    let watermark = match &stored {
        Some(_) => None,
        None => store.watermark(org, run.object).await?,
    };
    let window = match plan_check(stored.as_ref(), watermark, run.frequency, now) {
        CheckPlan::Check(window) => window,
        other => return Ok(DeletedCheckOutcome::Skipped(other)),
    };
    let reply = source
        .get_deleted(run.object, window.start, window.end)
        .await?;
    let assessment = assess(&window, &reply);
    if let Some(hole) = assessment.hole {
        DeletedWindowHole {
            cycle: run.cycle,
            direction: run.direction,
            object: run.object,
            start: hole.start,
            earliest_available: hole.earliest_available,
        }
        .emit(metrics);
    }
    let listed: Vec<String> = reply.deleted.iter().map(|r| r.id.clone()).collect();
    let links = match org {
        Org::A => store.links_by_a_ids(run.object, &listed).await?,
        Org::B => store.links_by_b_ids(run.object, &listed).await?,
    };
    let ids = ids_to_apply(&reply.deleted, &links, org);
    tracing::info!(
        cycle = run.cycle,
        direction = %run.direction,
        org = %org,
        object = %run.object,
        start = %window.start.to_rfc3339(),
        end = %window.end.to_rfc3339(),
        listed = listed.len(),
        to_apply = ids.len(),
        ids = %ids.join(","),
        "getDeleted safety net checked"
    );
    Ok(DeletedCheckOutcome::Checked(PendingDeletedCheck {
        ids,
        listed: listed.len(),
        hole: assessment.hole,
        org,
        object: run.object.to_string(),
        write: DeletedCheckWrite {
            next_start: assessment.next_start,
            checked_at: now,
            hole: assessment.hole.map(|h| (h.start, h.earliest_available)),
        },
        window,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn t(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, m, s).unwrap()
    }

    fn stored(next_start: DateTime<Utc>, last_checked_at: DateTime<Utc>) -> DeletedCheck {
        DeletedCheck {
            org: Org::A,
            object: "Opportunity".into(),
            next_start,
            last_checked_at,
            holes: 0,
            last_hole_at: None,
            last_hole_start: None,
            last_hole_earliest: None,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_check_is_due_a_frequency_after_the_last_one() {
        let last = stored(t(20, 9, 0, 0), t(20, 9, 0, 30));
        assert_eq!(
            plan_check(Some(&last), None, HOUR, t(20, 9, 59, 0)),
            CheckPlan::NotDue {
                due_at: t(20, 10, 0, 30)
            }
        );
        assert!(matches!(
            plan_check(Some(&last), None, HOUR, t(20, 10, 0, 30)),
            CheckPlan::Check(_)
        ));
    }

    #[test]
    fn the_first_check_starts_at_the_watermark_and_none_without_one() {
        assert_eq!(
            plan_check(None, None, HOUR, t(20, 9, 0, 0)),
            CheckPlan::NothingSynced
        );
        assert_eq!(
            plan_check(None, Some(t(20, 8, 15, 42)), HOUR, t(20, 9, 0, 0)),
            CheckPlan::Check(Window {
                start: t(20, 8, 15, 0),
                end: t(20, 9, 0, 0),
                beyond_log: None
            })
        );
    }

    #[test]
    fn both_ends_are_cut_to_the_minute_and_a_short_window_waits() {
        let last = stored(t(20, 9, 0, 59), t(20, 8, 0, 0));
        assert_eq!(
            plan_check(Some(&last), None, HOUR, t(20, 9, 30, 59)),
            CheckPlan::Check(Window {
                start: t(20, 9, 0, 0),
                end: t(20, 9, 30, 0),
                beyond_log: None
            })
        );
        // 09:00:59 .. 09:01:59 is 09:00 .. 09:01 after the cut: not more than a minute.
        assert_eq!(
            plan_check(Some(&last), None, Duration::ZERO, t(20, 9, 1, 59)),
            CheckPlan::TooShort {
                start: t(20, 9, 0, 0)
            }
        );
        assert!(matches!(
            plan_check(Some(&last), None, Duration::ZERO, t(20, 9, 2, 0)),
            CheckPlan::Check(_)
        ));
    }

    #[test]
    fn a_start_older_than_the_log_is_moved_to_its_edge_and_is_a_hole() {
        // Stopped for 20 days: the log reaches back 15.
        let last = stored(t(1, 9, 0, 0), t(1, 9, 0, 0));
        let now = t(21, 9, 0, 20);
        let CheckPlan::Check(window) = plan_check(Some(&last), None, HOUR, now) else {
            panic!("due");
        };
        assert_eq!(window.start, t(6, 9, 5, 0), "15 days back, plus the margin");
        assert_eq!(window.end, t(21, 9, 0, 0));
        assert_eq!(window.beyond_log, Some(t(1, 9, 0, 0)));
        let reply = DeletedWindow {
            deleted: Vec::new(),
            earliest_date_available: t(6, 9, 0, 0),
            latest_date_covered: t(21, 9, 0, 0),
        };
        assert_eq!(
            assess(&window, &reply),
            Assessment {
                next_start: t(21, 9, 0, 0),
                hole: Some(Hole {
                    start: t(1, 9, 0, 0),
                    earliest_available: t(6, 9, 5, 0)
                })
            }
        );
    }

    #[test]
    fn a_first_check_from_a_watermark_older_than_the_log_starts_at_its_edge_without_a_hole() {
        let now = t(21, 9, 0, 20);
        assert_eq!(
            plan_check(None, Some(t(1, 9, 0, 0)), HOUR, now),
            CheckPlan::Check(Window {
                start: t(6, 9, 5, 0),
                end: t(21, 9, 0, 0),
                beyond_log: None
            })
        );
    }

    #[test]
    fn an_earliest_date_after_the_start_is_a_hole_and_latest_covered_is_the_next_start() {
        let window = Window {
            start: t(20, 9, 0, 0),
            end: t(20, 10, 0, 0),
            beyond_log: None,
        };
        let reply = |earliest, latest| DeletedWindow {
            deleted: Vec::new(),
            earliest_date_available: earliest,
            latest_date_covered: latest,
        };
        assert_eq!(
            assess(&window, &reply(t(20, 9, 0, 0), t(20, 9, 58, 0))),
            Assessment {
                next_start: t(20, 9, 58, 0),
                hole: None
            },
            "the log reaching exactly the start is no hole"
        );
        assert_eq!(
            assess(&window, &reply(t(20, 9, 30, 0), t(20, 10, 0, 0))).hole,
            Some(Hole {
                start: t(20, 9, 0, 0),
                earliest_available: t(20, 9, 30, 0)
            })
        );
        // A latestDateCovered before the start (a skewed org clock) never moves it back.
        assert_eq!(
            assess(&window, &reply(t(5, 0, 0, 0), t(20, 8, 0, 0))).next_start,
            t(20, 9, 0, 0)
        );
    }

    fn link(a: &str, b: &str, state: crate::store::LinkState) -> Link {
        Link {
            id: 1,
            object: "Opportunity".into(),
            a_id: a.into(),
            b_id: b.into(),
            a_modstamp: None,
            b_modstamp: None,
            snapshot: Map::new(),
            state,
            deleted_at: None,
            deleted_by: None,
            created_at: t(1, 0, 0, 0),
            updated_at: t(1, 0, 0, 0),
        }
    }

    #[test]
    fn only_ids_with_a_live_link_are_applied_once_each() {
        use crate::store::LinkState::{Live, Tombstone, Unlinked};
        let deleted: Vec<DeletedRecord> = [
            "006A00000000001AAA",
            "006A00000000002AAA",
            "006A00000000003AAA",
            "006A00000000004AAA",
            "006A00000000001AAA",
        ]
        .iter()
        .map(|id| DeletedRecord {
            id: id.to_string(),
            deleted_date: t(20, 9, 0, 0),
        })
        .collect();
        let links = vec![
            link("006A00000000001AAA", "006B00000000001AAA", Live),
            link("006A00000000002AAA", "006B00000000002AAA", Tombstone),
            link("006A00000000003AAA", "006B00000000003AAA", Unlinked),
            // 004 was never synced: no link.
        ];
        assert_eq!(
            ids_to_apply(&deleted, &links, Org::A),
            vec!["006A00000000001AAA".to_string()]
        );
        // Seen from B, A's ids match nothing.
        assert!(ids_to_apply(&deleted, &links, Org::B).is_empty());
        // A 15-character id stored for the link still matches.
        let short = vec![link("006A00000000001", "006B00000000001AAA", Live)];
        assert_eq!(ids_to_apply(&deleted[..1], &short, Org::A).len(), 1);
    }
}
