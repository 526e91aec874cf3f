//! The inbox of Outbound Messaging notifications. The listener writes a message's
//! notifications and commits before it acks, so an acked notification is never lost; the
//! worker reads pending ones, fetches each record fresh from its org, and marks them
//! processed in the same transaction as the page's other writes. Salesforce redelivers
//! messages (out of order, sometimes twice), so inserts are deduplicated on (org,
//! notification id): a redelivery is accepted and ignored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::db::json_ids;
use super::time::{format_timestamp, parse_timestamp};
use super::{Org, PageTx, Store, StoreError};

/// A notification as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub org: Org,
    /// The notification's `Id` (unique per org; the deduplication key).
    pub notification_id: String,
    pub object: String,
    pub record_id: String,
}

/// A stored, not yet processed notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    /// Row id, for [`PageTx::mark_processed`].
    pub id: i64,
    pub org: Org,
    pub notification_id: String,
    pub object: String,
    pub record_id: String,
    pub received_at: DateTime<Utc>,
}

fn from_row(row: &AnyRow) -> Result<InboxItem, StoreError> {
    let org: String = row.try_get("org")?;
    Ok(InboxItem {
        id: row.try_get("id")?,
        org: org.parse().map_err(StoreError::Corrupt)?,
        notification_id: row.try_get("notification_id")?,
        object: row.try_get("object")?,
        record_id: row.try_get("record_id")?,
        received_at: parse_timestamp(&row.try_get::<String, _>("received_at")?)?,
    })
}

pub(super) async fn insert(
    conn: &mut AnyConnection,
    notifications: &[NewNotification],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let now = format_timestamp(now);
    let mut inserted = 0;
    for n in notifications {
        let done = sqlx::query(
            "INSERT INTO inbox (org, notification_id, object, record_id, received_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (org, notification_id) DO NOTHING",
        )
        .bind(n.org.as_str())
        .bind(&n.notification_id)
        .bind(&n.object)
        .bind(&n.record_id)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        inserted += done.rows_affected();
    }
    Ok(inserted)
}

async fn mark(
    conn: &mut AnyConnection,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids_json = serde_json::to_string(ids)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode ids: {e}")))?;
    let sql = json_ids!(
        int conn,
        "UPDATE inbox SET processed_at = $1 WHERE processed_at IS NULL AND id IN ",
        "$2",
        ""
    );
    let done = sqlx::query(sql)
        .bind(format_timestamp(now))
        .bind(ids_json)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

impl Store {
    /// Stores the notifications of one message, all or none; returns how many were new
    /// (redelivered ones are skipped). When this returns `Ok`, the message may be acked.
    pub async fn insert_notifications(
        &self,
        notifications: &[NewNotification],
    ) -> Result<u64, StoreError> {
        self.in_tx(async |conn| insert(conn, notifications, Utc::now()).await)
            .await
    }

    /// Up to `limit` unprocessed notifications of `org`, oldest first. Reading does not
    /// claim them: they stay pending until [`PageTx::mark_processed`] commits.
    pub async fn pending_notifications(
        &self,
        org: Org,
        limit: u32,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org, notification_id, object, record_id, received_at FROM inbox
             WHERE org = $1 AND processed_at IS NULL ORDER BY id LIMIT $2",
        )
        .bind(org.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// When the oldest unprocessed notification of each org was received (orgs with none are
    /// absent): how long the inbox has been waiting, for `status` and `/metrics`.
    pub async fn oldest_pending_notifications(
        &self,
    ) -> Result<BTreeMap<Org, DateTime<Utc>>, StoreError> {
        let rows = sqlx::query(
            "SELECT org, min(received_at) AS oldest FROM inbox
             WHERE processed_at IS NULL GROUP BY org",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut oldest = BTreeMap::new();
        for row in &rows {
            let org: String = row.try_get("org")?;
            let at: String = row.try_get("oldest")?;
            oldest.insert(
                org.parse().map_err(StoreError::Corrupt)?,
                parse_timestamp(&at)?,
            );
        }
        Ok(oldest)
    }

    /// Marks notifications processed (outside a page; e.g. ones for another object).
    pub async fn mark_processed(&self, ids: &[i64]) -> Result<u64, StoreError> {
        if self.fence.is_some() {
            // A leader's mark moves progress: fenced like a page.
            let mut tx = self.begin().await?;
            let n = tx.mark_processed(ids).await?;
            tx.commit().await?;
            return Ok(n);
        }
        let mut conn = self.pool.acquire().await?;
        mark(&mut conn, ids, Utc::now()).await
    }

    /// Deletes processed notifications received before `before` (housekeeping; the dedup
    /// window only needs to cover Salesforce's 24 hours of redelivery).
    pub async fn purge_processed_notifications(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM inbox WHERE processed_at IS NOT NULL AND received_at < $1")
                .bind(format_timestamp(before))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }
}

impl PageTx {
    /// [`Store::insert_notifications`] inside this transaction.
    pub async fn insert_notifications(
        &mut self,
        notifications: &[NewNotification],
    ) -> Result<u64, StoreError> {
        insert(self.conn(), notifications, Utc::now()).await
    }

    /// Marks notifications processed as part of this page; returns how many changed.
    pub async fn mark_processed(&mut self, ids: &[i64]) -> Result<u64, StoreError> {
        mark(self.conn(), ids, Utc::now()).await
    }
}
