//! The getDeleted safety net's progress: per org and object, where the next getDeleted window
//! starts, when the last check ran, and how many holes were seen (windows whose start the
//! org's delete log no longer reached). `sync::deleted_check` decides; this table remembers.
//!
//! Contract: the start only moves forward (the update keeps the later of the stored and the
//! new start, in SQL, as watermarks do), so a replayed or late check cannot make the next
//! window skip back or, worse, forward past ids not yet handed on. The caller stores a new
//! start only after the ids of its window have a durable outcome (see
//! `sync::deleted_check::deleted_ids_to_apply`).

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::time::{format_timestamp, parse_opt, parse_timestamp};
use super::{Org, Store, StoreError};

/// One stored check, for the decision and for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeletedCheck {
    pub org: Org,
    pub object: String,
    /// Where the next getDeleted window starts (the last `latestDateCovered`).
    pub next_start: DateTime<Utc>,
    /// When the last check ran (the next one is due a `deleted_check_frequency` later).
    pub last_checked_at: DateTime<Utc>,
    /// Holes seen since the table was created.
    pub holes: u64,
    /// The latest hole: when the check saw it, the start asked for, and the earliest date the
    /// log still reached.
    pub last_hole_at: Option<DateTime<Utc>>,
    pub last_hole_start: Option<DateTime<Utc>>,
    pub last_hole_earliest: Option<DateTime<Utc>>,
}

/// What one check found, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedCheckWrite {
    pub next_start: DateTime<Utc>,
    pub checked_at: DateTime<Utc>,
    /// A hole: `(start asked for, earliestDateAvailable)`.
    pub hole: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

fn from_row(row: &AnyRow) -> Result<DeletedCheck, StoreError> {
    let org: String = row.try_get("org")?;
    let holes: i64 = row.try_get("holes")?;
    Ok(DeletedCheck {
        org: org.parse().map_err(StoreError::Corrupt)?,
        object: row.try_get("object")?,
        next_start: parse_timestamp(&row.try_get::<String, _>("next_start")?)?,
        last_checked_at: parse_timestamp(&row.try_get::<String, _>("last_checked_at")?)?,
        holes: u64::try_from(holes).unwrap_or(0),
        last_hole_at: parse_opt(row.try_get("last_hole_at")?)?,
        last_hole_start: parse_opt(row.try_get("last_hole_start")?)?,
        last_hole_earliest: parse_opt(row.try_get("last_hole_earliest")?)?,
    })
}

impl Store {
    /// The stored check of `org`'s `object`, `None` before the first.
    pub async fn deleted_check(
        &self,
        org: Org,
        object: &str,
    ) -> Result<Option<DeletedCheck>, StoreError> {
        let row = sqlx::query(
            "SELECT org, object, next_start, last_checked_at, holes, last_hole_at, last_hole_start,
                    last_hole_earliest
             FROM deleted_checks WHERE org = $1 AND object = $2",
        )
        .bind(org.as_str())
        .bind(object)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every stored check, by org then object (for `status`).
    pub async fn deleted_checks(&self) -> Result<Vec<DeletedCheck>, StoreError> {
        let rows = sqlx::query(
            "SELECT org, object, next_start, last_checked_at, holes, last_hole_at, last_hole_start,
                    last_hole_earliest
             FROM deleted_checks ORDER BY org, object",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records a check: the next start (never moved backward), the check's time, and a hole
    /// (counted, and kept as the latest) if there was one. Returns the stored row.
    pub async fn record_deleted_check(
        &self,
        org: Org,
        object: &str,
        write: &DeletedCheckWrite,
    ) -> Result<DeletedCheck, StoreError> {
        let row = sqlx::query(
            "INSERT INTO deleted_checks (org, object, next_start, last_checked_at, holes,
                 last_hole_at, last_hole_start, last_hole_earliest, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (org, object) DO UPDATE SET
                 next_start = CASE WHEN excluded.next_start > deleted_checks.next_start
                                   THEN excluded.next_start ELSE deleted_checks.next_start END,
                 last_checked_at = excluded.last_checked_at,
                 holes = deleted_checks.holes + excluded.holes,
                 last_hole_at = coalesce(excluded.last_hole_at, deleted_checks.last_hole_at),
                 last_hole_start = coalesce(excluded.last_hole_start,
                                            deleted_checks.last_hole_start),
                 last_hole_earliest = coalesce(excluded.last_hole_earliest,
                                               deleted_checks.last_hole_earliest),
                 updated_at = excluded.updated_at
             RETURNING org, object, next_start, last_checked_at, holes, last_hole_at, last_hole_start,
                       last_hole_earliest",
        )
        .bind(org.as_str())
        .bind(object)
        .bind(format_timestamp(write.next_start))
        .bind(format_timestamp(write.checked_at))
        .bind(i64::from(write.hole.is_some()))
        .bind(write.hole.map(|_| format_timestamp(write.checked_at)))
        .bind(write.hole.map(|(start, _)| format_timestamp(start)))
        .bind(write.hole.map(|(_, earliest)| format_timestamp(earliest)))
        .bind(format_timestamp(Utc::now()))
        .fetch_one(&self.pool)
        .await?;
        from_row(&row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    #[tokio::test]
    async fn the_start_only_moves_forward_and_holes_add_up() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(
            store.deleted_check(Org::A, "Opportunity").await.unwrap(),
            None
        );
        let first = DeletedCheckWrite {
            next_start: t(10, 0),
            checked_at: t(10, 1),
            hole: None,
        };
        let row = store
            .record_deleted_check(Org::A, "Opportunity", &first)
            .await
            .unwrap();
        assert_eq!((row.next_start, row.holes), (t(10, 0), 0));
        // A late write of an older start keeps the later one; its hole is counted.
        let late = DeletedCheckWrite {
            next_start: t(9, 0),
            checked_at: t(10, 5),
            hole: Some((t(8, 0), t(8, 30))),
        };
        let row = store
            .record_deleted_check(Org::A, "Opportunity", &late)
            .await
            .unwrap();
        assert_eq!(row.next_start, t(10, 0));
        assert_eq!(row.last_checked_at, t(10, 5));
        assert_eq!(row.holes, 1);
        assert_eq!(row.last_hole_earliest, Some(t(8, 30)));
        assert_eq!(row.last_hole_at, Some(t(10, 5)));
        let next = DeletedCheckWrite {
            next_start: t(11, 0),
            checked_at: t(11, 1),
            hole: None,
        };
        let row = store
            .record_deleted_check(Org::A, "Opportunity", &next)
            .await
            .unwrap();
        assert_eq!((row.next_start, row.holes), (t(11, 0), 1));
        assert_eq!(
            row.last_hole_start,
            Some(t(8, 0)),
            "the latest hole is kept"
        );
        // Another org is its own row.
        assert_eq!(
            store.deleted_check(Org::B, "Opportunity").await.unwrap(),
            None
        );
        assert_eq!(store.deleted_checks().await.unwrap(), vec![row]);
    }
}
