//! Counts of what the store holds, for `status` and `/metrics`: one cheap query per table.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{FailureClass, LinkState, Store, StoreError};

/// Sizes of the store's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    /// Live links per object (e.g. `Opportunity`, `Account`).
    pub links: BTreeMap<String, u64>,
    /// Links per state (`live`, `unlinked`, `tombstone`), every state present.
    pub links_by_state: BTreeMap<String, u64>,
    pub failures_pending: u64,
    /// Needs-edit failures waiting for their source record to change.
    pub failures_waiting: u64,
    pub failures_dead: u64,
    /// Failures per class (`transient`, `needs_edit`, `needs_operator`), every class present.
    pub failures_by_class: BTreeMap<String, u64>,
    /// Unprocessed notifications per org (`a`, `b`).
    pub inbox_pending: BTreeMap<String, u64>,
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Store {
    /// Counts links (live per object, and per state), failures and the inbox.
    pub async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let mut counts = StoreCounts::default();
        for row in sqlx::query(
            "SELECT object, count(*) AS n FROM links WHERE state = 'live' GROUP BY object",
        )
        .fetch_all(&self.pool)
        .await?
        {
            counts
                .links
                .insert(row.try_get("object")?, to_u64(row.try_get("n")?));
        }
        for state in LinkState::ALL {
            counts.links_by_state.insert(state.as_str().to_string(), 0);
        }
        for row in sqlx::query("SELECT state, count(*) AS n FROM links GROUP BY state")
            .fetch_all(&self.pool)
            .await?
        {
            let state: String = row.try_get("state")?;
            let state = LinkState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("link state {state:?}")))?;
            counts
                .links_by_state
                .insert(state.as_str().to_string(), to_u64(row.try_get("n")?));
        }
        for class in FailureClass::ALL {
            counts
                .failures_by_class
                .insert(class.as_str().to_string(), 0);
        }
        for row in sqlx::query("SELECT class, count(*) AS n FROM failures GROUP BY class")
            .fetch_all(&self.pool)
            .await?
        {
            let class: String = row.try_get("class")?;
            let class: FailureClass = class.parse().map_err(StoreError::Corrupt)?;
            counts
                .failures_by_class
                .insert(class.as_str().to_string(), to_u64(row.try_get("n")?));
        }
        for row in sqlx::query("SELECT state, count(*) AS n FROM failures GROUP BY state")
            .fetch_all(&self.pool)
            .await?
        {
            let state: String = row.try_get("state")?;
            let n = to_u64(row.try_get("n")?);
            match state.as_str() {
                "pending" => counts.failures_pending = n,
                "waiting" => counts.failures_waiting = n,
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
