//! Bulk API 2.0 jobs and their staged rows (`bulk_jobs`, `bulk_staging`): what a direction
//! pass needs to resume a Bulk read after a `kill -9` at any stage. A job is recorded as soon
//! as it is created (`running`); its results are staged page by page, each page's rows and the
//! locator of the next page in one transaction (`staging`, then `staged` after the last); the
//! staged rows are fed to the page pipeline in `(SystemModstamp, Id)` order and each page's
//! rows are deleted in that page's own transaction ([`PageTx::delete_staged`]). A job ends
//! `completed`, `failed` or `aborted` (its staged rows dropped). Ingest jobs are recorded
//! too (for `status` and the metrics), from creation to their end.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::time::{format_timestamp, parse_opt, parse_timestamp};
use super::{Direction, Org, PageTx, Store, StoreError};

/// Where a job is, as orgsync records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkJobState {
    /// Created; not complete yet.
    Running,
    /// Complete; results being staged.
    Staging,
    /// Every result row staged; being fed to the pipeline (a Bulk pass: being planned).
    Staged,
    /// A Bulk pass (`sync::bulk_pass`): every row planned, its writes waiting in
    /// `bulk_pending` for the pass's ingest jobs.
    Planned,
    /// A Bulk pass: the ingest jobs ended, every written row's result in `bulk_results`;
    /// being committed.
    Written,
    Completed,
    Failed,
    Aborted,
}

impl BulkJobState {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkJobState::Running => "running",
            BulkJobState::Staging => "staging",
            BulkJobState::Staged => "staged",
            BulkJobState::Planned => "planned",
            BulkJobState::Written => "written",
            BulkJobState::Completed => "completed",
            BulkJobState::Failed => "failed",
            BulkJobState::Aborted => "aborted",
        }
    }

    fn parse(text: &str) -> Result<BulkJobState, StoreError> {
        Ok(match text {
            "running" => BulkJobState::Running,
            "staging" => BulkJobState::Staging,
            "staged" => BulkJobState::Staged,
            "planned" => BulkJobState::Planned,
            "written" => BulkJobState::Written,
            "completed" => BulkJobState::Completed,
            "failed" => BulkJobState::Failed,
            "aborted" => BulkJobState::Aborted,
            other => return Err(StoreError::Corrupt(format!("bulk job state {other:?}"))),
        })
    }

    /// Whether the job is still orgsync's to continue.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            BulkJobState::Running
                | BulkJobState::Staging
                | BulkJobState::Staged
                | BulkJobState::Planned
                | BulkJobState::Written
        )
    }
}

/// One recorded job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BulkJob {
    pub job_id: String,
    pub org: Org,
    pub object: String,
    /// `query`, `update`, `upsert`.
    pub operation: String,
    pub direction: Direction,
    pub cycle: u64,
    pub state: BulkJobState,
    /// The next results page's locator (`None`: the first, or none left).
    pub locator: Option<String>,
    pub rows_staged: u64,
    pub rows_moved: u64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A row to stage: its SystemModstamp, Id and the record (a JSON object).
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow {
    pub system_modstamp: DateTime<Utc>,
    pub record_id: String,
    pub record: serde_json::Map<String, serde_json::Value>,
}

/// Jobs by state and the rows they moved, for `status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkSummary {
    pub open: u64,
    pub completed: u64,
    pub failed: u64,
    pub aborted: u64,
    pub rows_moved: u64,
}

/// The columns of a [`BulkJob`] (a macro, so that queries stay `&'static str`).
macro_rules! columns {
    () => {
        "job_id, org, object, operation, direction, cycle, state, locator, rows_staged, \
         rows_moved, error, created_at, finished_at"
    };
}

fn job_of(row: &sqlx::any::AnyRow) -> Result<BulkJob, StoreError> {
    let org: String = row.try_get("org")?;
    let direction: String = row.try_get("direction")?;
    let state: String = row.try_get("state")?;
    let count = |name: &str| -> Result<u64, StoreError> {
        let n: i64 = row.try_get(name)?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("bulk job {name} {n}")))
    };
    Ok(BulkJob {
        job_id: row.try_get("job_id")?,
        org: org.parse().map_err(StoreError::Corrupt)?,
        object: row.try_get("object")?,
        operation: row.try_get("operation")?,
        direction: direction.parse().map_err(StoreError::Corrupt)?,
        cycle: count("cycle")?,
        state: BulkJobState::parse(&state)?,
        locator: row.try_get("locator")?,
        rows_staged: count("rows_staged")?,
        rows_moved: count("rows_moved")?,
        error: row.try_get("error")?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        finished_at: parse_opt(row.try_get("finished_at")?)?,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Records a job just created (`running`).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_bulk_job(
        &self,
        job_id: &str,
        org: Org,
        object: &str,
        operation: &str,
        direction: Direction,
        cycle: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bulk_jobs (job_id, org, object, operation, direction, cycle, state,
                                    created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'running', $7)
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(job_id)
        .bind(org.as_str())
        .bind(object)
        .bind(operation)
        .bind(direction.as_str())
        .bind(to_i64(cycle))
        .bind(format_timestamp(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The open query job of a direction's watermark read, if any (the oldest).
    pub async fn open_bulk_read(
        &self,
        direction: Direction,
        object: &str,
    ) -> Result<Option<BulkJob>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM bulk_jobs
             WHERE direction = $1 AND object = $2 AND operation = 'query'
               AND state IN ('running', 'staging', 'staged', 'planned', 'written')
             ORDER BY created_at, job_id LIMIT 1"
        ))
        .bind(direction.as_str())
        .bind(object)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_of).transpose()
    }

    /// Marks the ingest jobs a direction left open as `aborted` (a process stopped while they
    /// ran; their pages were not committed and are written again). Returns how many.
    pub async fn abort_interrupted_writes(
        &self,
        direction: Direction,
        object: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE bulk_jobs SET state = 'aborted', finished_at = $3,
                    error = 'interrupted: the page was written again by a later pass'
             WHERE direction = $1 AND object = $2 AND operation <> 'query'
               AND state IN ('running', 'staging', 'staged')",
        )
        .bind(direction.as_str())
        .bind(object)
        .bind(format_timestamp(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Every recorded job, newest first, at most `limit`.
    pub async fn bulk_jobs(&self, limit: u32) -> Result<Vec<BulkJob>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM bulk_jobs ORDER BY created_at DESC, job_id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_of).collect()
    }

    /// Jobs by state and rows moved.
    pub async fn bulk_summary(&self) -> Result<BulkSummary, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS jobs, COALESCE(SUM(rows_moved), 0) AS moved
             FROM bulk_jobs GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut summary = BulkSummary::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let jobs = u64::try_from(row.try_get::<i64, _>("jobs")?).unwrap_or(0);
            let moved = u64::try_from(row.try_get::<i64, _>("moved")?).unwrap_or(0);
            summary.rows_moved += moved;
            match BulkJobState::parse(&state)? {
                s if s.is_open() => summary.open += jobs,
                BulkJobState::Completed => summary.completed += jobs,
                BulkJobState::Failed => summary.failed += jobs,
                _ => summary.aborted += jobs,
            }
        }
        Ok(summary)
    }

    /// Marks a running query job complete: its results are read next.
    pub async fn bulk_job_staging(&self, job_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bulk_jobs SET state = 'staging' WHERE job_id = $1 AND state = 'running'",
        )
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stages one results page: its rows (numbered after those already staged) and the
    /// locator of the next page (`None`: this was the last; the job becomes `staged`), in one
    /// transaction, so a crash stages a page wholly or not at all.
    pub async fn stage_bulk_rows(
        &self,
        job_id: &str,
        rows: &[StagedRow],
        next_locator: Option<&str>,
    ) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        let next_locator = next_locator.map(str::to_string);
        let job_id = job_id.to_string();
        self.in_tx(async move |conn: &mut AnyConnection| {
            let staged: i64 = sqlx::query_scalar(
                "SELECT rows_staged FROM bulk_jobs WHERE job_id = $1 AND state = 'staging'",
            )
            .bind(&job_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("bulk job {job_id} is not staging")))?;
            for (i, row) in rows.iter().enumerate() {
                let record = serde_json::to_string(&row.record)
                    .map_err(|e| StoreError::Corrupt(format!("staged row: {e}")))?;
                sqlx::query(
                    "INSERT INTO bulk_staging (job_id, seq, system_modstamp, record_id, record)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (job_id, seq) DO NOTHING",
                )
                .bind(&job_id)
                .bind(staged + to_i64(i as u64))
                .bind(format_timestamp(row.system_modstamp))
                .bind(&row.record_id)
                .bind(record)
                .execute(&mut *conn)
                .await?;
            }
            sqlx::query(
                "UPDATE bulk_jobs SET rows_staged = rows_staged + $2, locator = $3,
                        state = CASE WHEN $3 IS NULL THEN 'staged' ELSE 'staging' END
                 WHERE job_id = $1",
            )
            .bind(&job_id)
            .bind(to_i64(rows.len() as u64))
            .bind(next_locator)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// The first `limit` staged rows of a job in `(SystemModstamp, Id)` order, after `after`
    /// (the last row fed, when the feed has started), each with its SystemModstamp text and Id
    /// (the next call's `after`). Rows committed are deleted anyway; `after` keeps a feed from
    /// reading a row twice even if a delete were missed.
    pub async fn staged_rows_after(
        &self,
        job_id: &str,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String, serde_json::Map<String, serde_json::Value>)>, StoreError> {
        let (stamp, id) = after.unwrap_or(("", ""));
        let rows = sqlx::query(
            "SELECT system_modstamp, record_id, record FROM bulk_staging
             WHERE job_id = $1
               AND (system_modstamp > $2 OR (system_modstamp = $2 AND record_id > $3))
             ORDER BY system_modstamp, record_id LIMIT $4",
        )
        .bind(job_id)
        .bind(stamp)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("record")?;
                let record = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("staged row of {job_id}: {e}")))?;
                Ok((
                    row.try_get("system_modstamp")?,
                    row.try_get("record_id")?,
                    record,
                ))
            })
            .collect()
    }

    /// The first `limit` staged rows of a job in `(SystemModstamp, Id)` order.
    pub async fn staged_rows(
        &self,
        job_id: &str,
        limit: u32,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
        Ok(self
            .staged_rows_after(job_id, None, limit)
            .await?
            .into_iter()
            .map(|(_, _, record)| record)
            .collect())
    }

    /// Ends a job: `completed` (with the rows it moved), `failed` or `aborted` (with why);
    /// its staged rows are dropped, and so is what a Bulk pass kept for it (`bulk_pass`).
    pub async fn finish_bulk_job(
        &self,
        job_id: &str,
        state: BulkJobState,
        rows_moved: u64,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let job_id = job_id.to_string();
        let error = error.map(str::to_string);
        self.in_tx(async move |conn: &mut AnyConnection| {
            for table in [
                "DELETE FROM bulk_staging WHERE job_id = $1",
                "DELETE FROM bulk_targets WHERE job_id = $1",
                "DELETE FROM bulk_pending WHERE job_id = $1",
                "DELETE FROM bulk_results WHERE job_id = $1",
            ] {
                sqlx::query(table).bind(&job_id).execute(&mut *conn).await?;
            }
            sqlx::query(
                "UPDATE bulk_jobs SET state = $2, rows_moved = $3, error = $4, finished_at = $5,
                        locator = NULL, page_start = NULL
                 WHERE job_id = $1",
            )
            .bind(&job_id)
            .bind(state.as_str())
            .bind(to_i64(rows_moved))
            .bind(error)
            .bind(format_timestamp(now))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }
}

impl PageTx {
    /// Deletes a job's staged rows up to and including `(system_modstamp, record_id)` in feed
    /// order, in the transaction of the page that records the outcomes of the last of them
    /// (pages commit in feed order, so every row before that page's is committed already):
    /// one statement per page.
    pub async fn delete_staged(
        &mut self,
        job_id: &str,
        through: (&str, &str),
    ) -> Result<(), StoreError> {
        let (stamp, id) = through;
        sqlx::query(
            "DELETE FROM bulk_staging WHERE job_id = $1
               AND (system_modstamp < $2 OR (system_modstamp = $2 AND record_id <= $3))",
        )
        .bind(job_id)
        .bind(stamp)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, sec).unwrap()
    }

    fn row(id: &str, sec: u32) -> StagedRow {
        let serde_json::Value::Object(record) = json!({"Id": id}) else {
            unreachable!()
        };
        StagedRow {
            system_modstamp: at(sec),
            record_id: id.into(),
            record,
        }
    }

    #[tokio::test]
    async fn a_job_stages_feeds_in_order_and_ends() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let d = Direction::AToB;
        store
            .insert_bulk_job("750A", Org::A, "Opportunity", "query", d, 3, at(0))
            .await
            .unwrap();
        let open = store
            .open_bulk_read(d, "Opportunity")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(open.state, BulkJobState::Running);
        assert_eq!(open.cycle, 3);
        assert!(
            store
                .open_bulk_read(Direction::BToA, "Opportunity")
                .await
                .unwrap()
                .is_none()
        );
        store.bulk_job_staging("750A").await.unwrap();
        store
            .stage_bulk_rows("750A", &[row("006C", 2), row("006B", 1)], Some("L2"))
            .await
            .unwrap();
        let open = store
            .open_bulk_read(d, "Opportunity")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (open.state, open.locator.as_deref(), open.rows_staged),
            (BulkJobState::Staging, Some("L2"), 2)
        );
        // A tie in SystemModstamp is ordered by Id.
        store
            .stage_bulk_rows("750A", &[row("006A", 2)], None)
            .await
            .unwrap();
        let open = store
            .open_bulk_read(d, "Opportunity")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (open.state, open.locator, open.rows_staged),
            (BulkJobState::Staged, None, 3)
        );
        let ids = |rows: Vec<serde_json::Map<String, serde_json::Value>>| {
            rows.iter()
                .map(|r| r["Id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(store.staged_rows("750A", 2).await.unwrap()),
            ["006B", "006A"]
        );
        // After a row: the rows past it in the same order (ties by Id).
        let stamp = format_timestamp(at(2));
        let after = store
            .staged_rows_after("750A", Some((&stamp, "006A")), 10)
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].1, "006C");
        // Deleting through (at(2), 006A) takes 006B and 006A, not 006C (at(2), after 006A).
        let mut tx = store.begin().await.unwrap();
        tx.delete_staged("750A", (&stamp, "006A")).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(ids(store.staged_rows("750A", 10).await.unwrap()), ["006C"]);
        store
            .finish_bulk_job("750A", BulkJobState::Completed, 3, None, at(9))
            .await
            .unwrap();
        assert!(
            store
                .open_bulk_read(d, "Opportunity")
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.staged_rows("750A", 10).await.unwrap().is_empty());
        let summary = store.bulk_summary().await.unwrap();
        assert_eq!(
            (summary.completed, summary.open, summary.rows_moved),
            (1, 0, 3)
        );
    }

    #[tokio::test]
    async fn a_dropped_page_stages_nothing() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store
            .insert_bulk_job(
                "750B",
                Org::B,
                "Opportunity",
                "query",
                Direction::BToA,
                1,
                at(0),
            )
            .await
            .unwrap();
        // Not complete yet: staging is refused, nothing is written.
        assert!(
            store
                .stage_bulk_rows("750B", &[row("006A", 1)], None)
                .await
                .is_err()
        );
        assert!(store.staged_rows("750B", 10).await.unwrap().is_empty());
    }
}
