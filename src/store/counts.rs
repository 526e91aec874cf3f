//! Counts of what the store holds, for `status` and `/metrics`: one cheap query per table.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Store, StoreError};

/// Sizes of the store's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    /// Links per object (e.g. `Opportunity`, `Account`).
    pub links: BTreeMap<String, u64>,
    pub failures_pending: u64,
    pub failures_dead: u64,
    /// Unprocessed notifications per org (`a`, `b`).
    pub inbox_pending: BTreeMap<String, u64>,
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Store {
    /// Counts links, failures and the inbox.
    pub async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let mut counts = StoreCounts::default();
        for row in sqlx::query("SELECT object, count(*) AS n FROM links GROUP BY object")
            .fetch_all(&self.pool)
            .await?
        {
            counts
                .links
                .insert(row.try_get("object")?, to_u64(row.try_get("n")?));
        }
        for row in sqlx::query("SELECT state, count(*) AS n FROM failures GROUP BY state")
            .fetch_all(&self.pool)
            .await?
        {
            let state: String = row.try_get("state")?;
            let n = to_u64(row.try_get("n")?);
            match state.as_str() {
                "pending" => counts.failures_pending = n,
                "dead" => counts.failures_dead = n,
                other => return Err(StoreError::Corrupt(format!("failure state {other:?}"))),
            }
        }
        for row in sqlx::query(
            "SELECT org, count(*) AS n FROM inbox WHERE processed_at IS NULL GROUP BY org",
        )
        .fetch_all(&self.pool)
        .await?
        {
            counts
                .inbox_pending
                .insert(row.try_get("org")?, to_u64(row.try_get("n")?));
        }
        Ok(counts)
    }
}
