//! The history of direction passes ("cycles"): when each ran, what it read and wrote, and
//! how it ended. `status` shows the last one per direction; a cycle that never finished
//! (the process died) stays `running` until the next daemon start marks it `interrupted`.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::time::{format_timestamp, parse_opt, parse_timestamp};
use super::{Direction, Store, StoreError};

/// How a cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CycleOutcome {
    /// Not finished yet (or the process died; see [`Store::interrupt_running_cycles`]).
    Running,
    /// Every record read got a durable outcome and none failed.
    Ok,
    /// Finished, but some records went to the failure queue.
    Partial,
    /// Stopped by an error (login, query, database); the watermark kept its last safe value.
    Failed,
    /// The process stopped while the cycle ran.
    Interrupted,
    /// An org reached its API limit or `api_budget_percent`: the pages done are committed,
    /// the rest waits for the next cycle (the error says which org).
    Paused,
}

impl CycleOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleOutcome::Running => "running",
            CycleOutcome::Ok => "ok",
            CycleOutcome::Partial => "partial",
            CycleOutcome::Failed => "failed",
            CycleOutcome::Interrupted => "interrupted",
            CycleOutcome::Paused => "paused",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "running" => CycleOutcome::Running,
            "ok" => CycleOutcome::Ok,
            "partial" => CycleOutcome::Partial,
            "failed" => CycleOutcome::Failed,
            "interrupted" => CycleOutcome::Interrupted,
            "paused" => CycleOutcome::Paused,
            other => return Err(StoreError::Corrupt(format!("cycle outcome {other:?}"))),
        })
    }
}

/// What a cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CycleCounts {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    /// Linked to an existing record in the target (a namesake or an external-id match),
    /// nothing written.
    pub linked: u64,
    /// Replays, echoes of our own writes, unchanged rows and rows left to the failure queue.
    pub skipped: u64,
    pub failed: u64,
    /// Fields changed on both sides since the last sync, resolved by `sync.conflict`.
    pub conflicts: u64,
    pub api_calls: u64,
}

/// A stored cycle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cycle {
    pub id: i64,
    /// The cycle's number: both directions of one cycle (A->B then B->A) share it.
    pub cycle: i64,
    pub direction: Direction,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: CycleCounts,
    pub outcome: CycleOutcome,
    pub error: Option<String>,
}

fn count(row: &AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("cycle {column} = {value}")))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_row(row: &AnyRow) -> Result<Cycle, StoreError> {
    let direction: String = row.try_get("direction")?;
    let id: i64 = row.try_get("id")?;
    Ok(Cycle {
        id,
        cycle: row.try_get::<Option<i64>, _>("cycle")?.unwrap_or(id),
        direction: direction.parse().map_err(StoreError::Corrupt)?,
        started_at: parse_timestamp(&row.try_get::<String, _>("started_at")?)?,
        finished_at: parse_opt(row.try_get("finished_at")?)?,
        counts: CycleCounts {
            read: count(row, "read")?,
            created: count(row, "created")?,
            updated: count(row, "updated")?,
            linked: count(row, "linked")?,
            skipped: count(row, "skipped")?,
            failed: count(row, "failed")?,
            conflicts: count(row, "conflicts")?,
            api_calls: count(row, "api_calls")?,
        },
        outcome: CycleOutcome::parse(&row.try_get::<String, _>("outcome")?)?,
        error: row.try_get("error")?,
    })
}

impl Store {
    /// Records the start of a direction pass as a cycle of its own (a new cycle number);
    /// returns its row id for [`Store::finish_cycle`].
    pub async fn begin_cycle(&self, direction: Direction) -> Result<i64, StoreError> {
        let cycle = self.next_cycle_number().await?;
        self.begin_direction(cycle, direction).await
    }

    /// The number the next cycle gets: one more than any recorded (housekeeping keeps the
    /// last cycle of each direction, so numbers never repeat).
    pub async fn next_cycle_number(&self) -> Result<i64, StoreError> {
        let max: Option<i64> = sqlx::query_scalar("SELECT max(coalesce(cycle, id)) FROM cycles")
            .fetch_one(&self.pool)
            .await?;
        Ok(max.unwrap_or(0) + 1)
    }

    /// Records the start of `direction`'s pass in cycle number `cycle`; returns its row id for
    /// [`Store::finish_cycle`].
    pub async fn begin_direction(
        &self,
        cycle: i64,
        direction: Direction,
    ) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO cycles (cycle, direction, started_at, outcome) VALUES ($1, $2, $3, 'running')
             RETURNING id",
        )
        .bind(cycle)
        .bind(direction.as_str())
        .bind(format_timestamp(Utc::now()))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Records the end of a cycle with its counts and outcome (and the error, for `Failed`).
    pub async fn finish_cycle(
        &self,
        id: i64,
        counts: &CycleCounts,
        outcome: CycleOutcome,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE cycles SET finished_at = $1, read = $2, created = $3, updated = $4, linked = $5,
                 skipped = $6, failed = $7, conflicts = $8, api_calls = $9, outcome = $10, error = $11
             WHERE id = $12",
        )
        .bind(format_timestamp(Utc::now()))
        .bind(to_i64(counts.read))
        .bind(to_i64(counts.created))
        .bind(to_i64(counts.updated))
        .bind(to_i64(counts.linked))
        .bind(to_i64(counts.skipped))
        .bind(to_i64(counts.failed))
        .bind(to_i64(counts.conflicts))
        .bind(to_i64(counts.api_calls))
        .bind(outcome.as_str())
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Corrupt(format!("no cycle with id {id}")));
        }
        Ok(())
    }

    /// The most recent cycle of `direction`.
    pub async fn last_cycle(&self, direction: Direction) -> Result<Option<Cycle>, StoreError> {
        let row = sqlx::query(
            "SELECT id, cycle, direction, started_at, finished_at, read, created, updated, linked,
                 skipped, failed, conflicts, api_calls, outcome, error
             FROM cycles WHERE direction = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(direction.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// When `direction` last finished a pass that got every record read a durable outcome
    /// (`ok` or `partial`): the "last successful cycle" of `status` and `/metrics`.
    pub async fn last_success(
        &self,
        direction: Direction,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = sqlx::query_scalar(
            "SELECT max(finished_at) FROM cycles
             WHERE direction = $1 AND outcome IN ('ok', 'partial')",
        )
        .bind(direction.as_str())
        .fetch_one(&self.pool)
        .await?;
        parse_opt(at)
    }

    /// Deletes finished cycles that started before `before` (housekeeping: a cycle every
    /// 10 s is 17,280 rows a day). The latest cycles, which `status` shows, stay.
    pub async fn purge_cycles(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM cycles WHERE finished_at IS NOT NULL AND started_at < $1
                 AND id NOT IN (SELECT max(id) FROM cycles GROUP BY direction)",
        )
        .bind(format_timestamp(before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Marks cycles still `running` as `interrupted`. Call once at daemon start, before the
    /// first cycle (never from a second process while a daemon runs).
    pub async fn interrupt_running_cycles(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE cycles SET outcome = 'interrupted', finished_at = $1 WHERE outcome = 'running'",
        )
        .bind(format_timestamp(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
