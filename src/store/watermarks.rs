//! Watermarks: per org and object, the SystemModstamp up to which every record read has a
//! durable outcome. The next pass reads from it (minus the lookback). It never moves backward:
//! the update is `max(old, new)` in SQL (a `CASE`, which both backends spell alike), so a late or replayed page cannot undo progress.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::time::{format_timestamp, parse_timestamp};
use super::{Org, PageTx, Store, StoreError};

/// One stored watermark, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WatermarkRow {
    pub org: Org,
    pub object: String,
    pub value: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

async fn get(
    conn: &mut AnyConnection,
    org: Org,
    object: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM watermarks WHERE org = $1 AND object = $2")
            .bind(org.as_str())
            .bind(object)
            .fetch_optional(&mut *conn)
            .await?;
    value.as_deref().map(parse_timestamp).transpose()
}

async fn advance(
    conn: &mut AnyConnection,
    org: Org,
    object: &str,
    value: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    let stored: String = sqlx::query_scalar(
        "INSERT INTO watermarks (org, object, value, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org, object) DO UPDATE SET
             value = CASE WHEN excluded.value > watermarks.value
                          THEN excluded.value ELSE watermarks.value END,
             updated_at = CASE WHEN excluded.value > watermarks.value
                               THEN excluded.updated_at ELSE watermarks.updated_at END
         RETURNING value",
    )
    .bind(org.as_str())
    .bind(object)
    .bind(format_timestamp(value))
    .bind(format_timestamp(now))
    .fetch_one(&mut *conn)
    .await?;
    parse_timestamp(&stored)
}

impl Store {
    /// The stored watermark of `org` for `object`, or `None` before the first page.
    pub async fn watermark(
        &self,
        org: Org,
        object: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        get(&mut conn, org, object).await
    }

    /// Moves the watermark to `value` unless it is already past it; returns the stored value.
    pub async fn advance_watermark(
        &self,
        org: Org,
        object: &str,
        value: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        advance(&mut conn, org, object, value, Utc::now()).await
    }

    /// Every stored watermark, ordered by org then object.
    pub async fn watermarks(&self) -> Result<Vec<WatermarkRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT org, object, value, updated_at FROM watermarks ORDER BY org, object",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let org: String = row.try_get("org")?;
                Ok(WatermarkRow {
                    org: org.parse().map_err(StoreError::Corrupt)?,
                    object: row.try_get("object")?,
                    value: parse_timestamp(&row.try_get::<String, _>("value")?)?,
                    updated_at: parse_timestamp(&row.try_get::<String, _>("updated_at")?)?,
                })
            })
            .collect()
    }
}

impl PageTx {
    /// [`Store::watermark`] inside this transaction.
    pub async fn watermark(
        &mut self,
        org: Org,
        object: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        get(self.conn(), org, object).await
    }

    /// [`Store::advance_watermark`] inside this transaction.
    pub async fn advance_watermark(
        &mut self,
        org: Org,
        object: &str,
        value: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        advance(self.conn(), org, object, value, Utc::now()).await
    }
}
