//! What a Bulk pass (`sync::bulk_pass`) keeps beside its read job, so that a `kill -9` at
//! any stage resumes (migration `20261204000002_bulk_pass`):
//! - the results page being staged (`bulk_jobs.page_start`): a page is staged in chunks, and
//!   a page read again after a crash first drops the rows it had staged;
//! - `bulk_targets`: the target org's records, staged once per pass for the lookups of every
//!   page (by Id, external id, match key);
//! - `bulk_pending`: the writes planned and waiting for the pass's ingest jobs, each with
//!   what its commit needs (opaque JSON here);
//! - `bulk_results`: each written row's result, matched by its key.
//!
//! Everything goes with the job ([`Store::finish_bulk_job`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};

use super::bulk::{BulkJobState, StagedRow};
use super::time::{format_timestamp, parse_timestamp};
use super::{PageTx, Store, StoreError};

/// Binds per statement of an `IN` list (well under SQLite's and PostgreSQL's limits).
const IN_CHUNK: usize = 500;
// The only text formatted into SQL here is a fixed column name and `$N` placeholders
// ([`placeholders`]); every value is bound.

/// A target record staged for a pass's lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedTarget {
    pub record_id: String,
    pub external_id: Option<String>,
    pub match_key: Option<String>,
    pub record: Map<String, Value>,
}

/// A planned write waiting for the pass's ingest job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    pub seq: u64,
    /// `update` or `upsert`.
    pub operation: String,
    /// What its result is matched by: the Id (update) or the external id (upsert).
    pub key: String,
    /// What its commit needs, as JSON.
    pub pending: String,
}

/// A written row's result, as the job's result files said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredResult {
    Written { target_id: String, created: bool },
    Failed { code: String, message: String },
    Unprocessed,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row `INSERT` (a statement per row would be a round trip to the database
/// per row: 1,000,000 of them in a Bulk pass).
const ROWS_PER_INSERT: usize = 100;

/// `($1, $2, ...), (...)`: `rows` tuples of `cols` placeholders.
fn values_list(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(1 + r * cols, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `bulk_pending` row.
fn pending_of(row: &sqlx::any::AnyRow) -> Result<PendingWrite, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    Ok(PendingWrite {
        seq: u64::try_from(seq)
            .map_err(|_| StoreError::Corrupt(format!("planned write seq {seq}")))?,
        operation: row.try_get("operation")?,
        key: row.try_get("write_key")?,
        pending: row.try_get("pending")?,
    })
}

fn json_of(text: &str, what: &str) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Starts (or starts again) the staging of a results page: rows staged by an earlier try
    /// of the same page are dropped. Returns the rows staged before the page.
    pub async fn begin_staged_page(&self, job_id: &str) -> Result<u64, StoreError> {
        let job_id = job_id.to_string();
        self.in_tx(async move |conn: &mut AnyConnection| {
            let row =
                sqlx::query("SELECT rows_staged, page_start FROM bulk_jobs WHERE job_id = $1")
                    .bind(&job_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("no bulk job {job_id}")))?;
            let staged: i64 = row.try_get("rows_staged")?;
            let start: Option<i64> = row.try_get("page_start")?;
            let start = start.unwrap_or(staged);
            sqlx::query("DELETE FROM bulk_staging WHERE job_id = $1 AND seq >= $2")
                .bind(&job_id)
                .bind(start)
                .execute(&mut *conn)
                .await?;
            sqlx::query("UPDATE bulk_jobs SET rows_staged = $2, page_start = $2 WHERE job_id = $1")
                .bind(&job_id)
                .bind(start)
                .execute(&mut *conn)
                .await?;
            Ok(u64::try_from(start).unwrap_or(0))
        })
        .await
    }

    /// Stages a chunk of the page being staged (numbered after the rows already staged).
    pub async fn stage_bulk_chunk(
        &self,
        job_id: &str,
        rows: &[StagedRow],
    ) -> Result<(), StoreError> {
        let job_id = job_id.to_string();
        let rows = rows.to_vec();
        self.in_tx(async move |conn: &mut AnyConnection| {
            let staged: i64 = sqlx::query_scalar(
                "SELECT rows_staged FROM bulk_jobs WHERE job_id = $1 AND state = 'staging'",
            )
            .bind(&job_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("bulk job {job_id} is not staging")))?;
            for (c, chunk) in rows.chunks(ROWS_PER_INSERT).enumerate() {
                let sql = format!(
                    "INSERT INTO bulk_staging (job_id, seq, system_modstamp, record_id, record)
                     VALUES {} ON CONFLICT (job_id, seq) DO NOTHING",
                    values_list(chunk.len(), 5)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (i, row) in chunk.iter().enumerate() {
                    let record = serde_json::to_string(&row.record)
                        .map_err(|e| StoreError::Corrupt(format!("staged row: {e}")))?;
                    query = query
                        .bind(job_id.clone())
                        .bind(staged + to_i64((c * ROWS_PER_INSERT + i) as u64))
                        .bind(format_timestamp(row.system_modstamp))
                        .bind(row.record_id.clone())
                        .bind(record);
                }
                query.execute(&mut *conn).await?;
            }
            sqlx::query("UPDATE bulk_jobs SET rows_staged = rows_staged + $2 WHERE job_id = $1")
                .bind(&job_id)
                .bind(to_i64(rows.len() as u64))
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Ends the page being staged: the next page's locator (`None`: it was the last; the job
    /// becomes `staged`).
    pub async fn end_staged_page(
        &self,
        job_id: &str,
        next_locator: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bulk_jobs SET locator = $2, page_start = NULL,
                    state = CASE WHEN $2 IS NULL THEN 'staged' ELSE 'staging' END
             WHERE job_id = $1",
        )
        .bind(job_id)
        .bind(next_locator)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves an open job to another open stage (a Bulk pass: `staged`, `planned`,
    /// `written`).
    pub async fn set_bulk_job_state(
        &self,
        job_id: &str,
        state: BulkJobState,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE bulk_jobs SET state = $2 WHERE job_id = $1")
            .bind(job_id)
            .bind(state.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The highest SystemModstamp of a job's staged rows.
    pub async fn staged_max_modstamp(
        &self,
        job_id: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let max: Option<String> =
            sqlx::query_scalar("SELECT MAX(system_modstamp) FROM bulk_staging WHERE job_id = $1")
                .bind(job_id)
                .fetch_one(&self.pool)
                .await?;
        max.as_deref().map(parse_timestamp).transpose()
    }

    /// Drops the target records staged for a job (a pass planning again).
    pub async fn clear_bulk_targets(&self, job_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM bulk_targets WHERE job_id = $1")
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stages target records for a job's lookups (a record staged twice keeps its last copy).
    pub async fn stage_bulk_targets(
        &self,
        job_id: &str,
        rows: &[StagedTarget],
    ) -> Result<(), StoreError> {
        let job_id = job_id.to_string();
        let rows = rows.to_vec();
        self.in_tx(async move |conn: &mut AnyConnection| {
            // A record twice in one statement would be refused by PostgreSQL's ON CONFLICT:
            // the last copy of each.
            let mut last: std::collections::HashMap<&str, &StagedTarget> = Default::default();
            for row in &rows {
                last.insert(row.record_id.as_str(), row);
            }
            let mut unique: Vec<&StagedTarget> = last.into_values().collect();
            unique.sort_by(|a, b| a.record_id.cmp(&b.record_id));
            for chunk in unique.chunks(ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO bulk_targets (job_id, record_id, external_id, match_key, record)
                     VALUES {} ON CONFLICT (job_id, record_id) DO UPDATE SET
                        external_id = excluded.external_id, match_key = excluded.match_key,
                        record = excluded.record",
                    values_list(chunk.len(), 5)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    let record = serde_json::to_string(&row.record)
                        .map_err(|e| StoreError::Corrupt(format!("staged target: {e}")))?;
                    query = query
                        .bind(job_id.clone())
                        .bind(row.record_id.clone())
                        .bind(row.external_id.clone())
                        .bind(row.match_key.clone())
                        .bind(record);
                }
                query.execute(&mut *conn).await?;
            }
            Ok(())
        })
        .await
    }

    /// The staged target records with one of these ids, external ids or match keys, each
    /// once.
    pub async fn bulk_targets(
        &self,
        job_id: &str,
        ids: &[String],
        external_ids: &[String],
        match_keys: &[String],
    ) -> Result<Vec<Map<String, Value>>, StoreError> {
        let mut found: HashMap<String, Map<String, Value>> = HashMap::new();
        for (column, values) in [
            ("record_id", ids),
            ("external_id", external_ids),
            ("match_key", match_keys),
        ] {
            for chunk in values.chunks(IN_CHUNK) {
                let sql = format!(
                    "SELECT record_id, record FROM bulk_targets
                     WHERE job_id = $1 AND {column} IN ({})",
                    placeholders(2, chunk.len())
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(job_id);
                for v in chunk {
                    query = query.bind(v);
                }
                for row in query.fetch_all(&self.pool).await? {
                    let id: String = row.try_get("record_id")?;
                    if let std::collections::hash_map::Entry::Vacant(slot) = found.entry(id) {
                        let text: String = row.try_get("record")?;
                        slot.insert(json_of(&text, "staged target")?);
                    }
                }
            }
        }
        let mut ids: Vec<String> = found.keys().cloned().collect();
        ids.sort();
        Ok(ids.into_iter().filter_map(|id| found.remove(&id)).collect())
    }

    /// How many target records are staged for a job.
    pub async fn bulk_target_count(&self, job_id: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bulk_targets WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Drops a job's planned writes and their results (a pass planning again).
    pub async fn clear_bulk_pending(&self, job_id: &str) -> Result<(), StoreError> {
        let job_id = job_id.to_string();
        self.in_tx(async move |conn: &mut AnyConnection| {
            for sql in [
                "DELETE FROM bulk_pending WHERE job_id = $1",
                "DELETE FROM bulk_results WHERE job_id = $1",
            ] {
                sqlx::query(sql).bind(&job_id).execute(&mut *conn).await?;
            }
            Ok(())
        })
        .await
    }

    /// Drops a job's results (its ingest jobs run again).
    pub async fn clear_bulk_results(&self, job_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM bulk_results WHERE job_id = $1")
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A job's planned writes after `after` (seq order), of one operation or all, at most
    /// `limit`.
    pub async fn bulk_pending(
        &self,
        job_id: &str,
        operation: Option<&str>,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<PendingWrite>, StoreError> {
        let after = after.map_or(-1, to_i64);
        let rows = sqlx::query(
            "SELECT seq, operation, write_key, pending FROM bulk_pending
             WHERE job_id = $1 AND seq > $2 AND ($3 IS NULL OR operation = $3)
             ORDER BY seq LIMIT $4",
        )
        .bind(job_id)
        .bind(after)
        .bind(operation)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pending_of).collect()
    }

    /// A job's planned writes of `operation` with no result yet, after `after` (seq order),
    /// at most `limit`.
    pub async fn bulk_unwritten(
        &self,
        job_id: &str,
        operation: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<PendingWrite>, StoreError> {
        let after = after.map_or(-1, to_i64);
        let rows = sqlx::query(
            "SELECT p.seq, p.operation, p.write_key, p.pending FROM bulk_pending p
             LEFT JOIN bulk_results r
               ON r.job_id = p.job_id AND r.operation = p.operation AND r.write_key = p.write_key
             WHERE p.job_id = $1 AND p.operation = $2 AND p.seq > $3 AND r.write_key IS NULL
             ORDER BY p.seq LIMIT $4",
        )
        .bind(job_id)
        .bind(operation)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pending_of).collect()
    }

    /// How many planned writes of `operation` have no result yet.
    pub async fn bulk_unwritten_count(
        &self,
        job_id: &str,
        operation: &str,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM bulk_pending p
             LEFT JOIN bulk_results r
               ON r.job_id = p.job_id AND r.operation = p.operation AND r.write_key = p.write_key
             WHERE p.job_id = $1 AND p.operation = $2 AND r.write_key IS NULL",
        )
        .bind(job_id)
        .bind(operation)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records written rows' results of one operation (a key recorded again keeps the last).
    pub async fn stage_bulk_results(
        &self,
        job_id: &str,
        operation: &str,
        results: &[(String, StoredResult)],
    ) -> Result<(), StoreError> {
        let job_id = job_id.to_string();
        let operation = operation.to_string();
        let results = results.to_vec();
        self.in_tx(async move |conn: &mut AnyConnection| {
            // A key twice in one statement would be refused by PostgreSQL's ON CONFLICT: the
            // last result of each.
            let mut last: std::collections::HashMap<&str, &StoredResult> = Default::default();
            for (key, result) in &results {
                last.insert(key.as_str(), result);
            }
            let mut unique: Vec<(&str, &StoredResult)> = last.into_iter().collect();
            unique.sort_by(|a, b| a.0.cmp(b.0));
            for chunk in unique.chunks(ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO bulk_results (job_id, operation, write_key, outcome, target_id,
                                               created, error_code, error_message)
                     VALUES {} ON CONFLICT (job_id, operation, write_key) DO UPDATE SET
                        outcome = excluded.outcome, target_id = excluded.target_id,
                        created = excluded.created, error_code = excluded.error_code,
                        error_message = excluded.error_message",
                    values_list(chunk.len(), 8)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (key, result) in chunk {
                    let (outcome, target_id, created, code, message) = match result {
                        StoredResult::Written { target_id, created } => {
                            ("written", Some(target_id.clone()), *created, None, None)
                        }
                        StoredResult::Failed { code, message } => (
                            "failed",
                            None,
                            false,
                            Some(code.clone()),
                            Some(message.clone()),
                        ),
                        StoredResult::Unprocessed => ("unprocessed", None, false, None, None),
                    };
                    query = query
                        .bind(job_id.clone())
                        .bind(operation.clone())
                        .bind(key.to_string())
                        .bind(outcome)
                        .bind(target_id)
                        .bind(i64::from(created))
                        .bind(code)
                        .bind(message);
                }
                query.execute(&mut *conn).await?;
            }
            Ok(())
        })
        .await
    }

    /// The recorded results of these keys of one operation.
    pub async fn bulk_results(
        &self,
        job_id: &str,
        operation: &str,
        keys: &[String],
    ) -> Result<HashMap<String, StoredResult>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT write_key, outcome, target_id, created, error_code, error_message
                 FROM bulk_results WHERE job_id = $1 AND operation = $2 AND write_key IN ({})",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(job_id)
                .bind(operation);
            for k in chunk {
                query = query.bind(k);
            }
            for row in query.fetch_all(&self.pool).await? {
                let key: String = row.try_get("write_key")?;
                let outcome: String = row.try_get("outcome")?;
                let result = match outcome.as_str() {
                    "written" => StoredResult::Written {
                        target_id: row
                            .try_get::<Option<String>, _>("target_id")?
                            .unwrap_or_default(),
                        created: row.try_get::<i64, _>("created")? != 0,
                    },
                    "failed" => StoredResult::Failed {
                        code: row
                            .try_get::<Option<String>, _>("error_code")?
                            .unwrap_or_default(),
                        message: row
                            .try_get::<Option<String>, _>("error_message")?
                            .unwrap_or_default(),
                    },
                    "unprocessed" => StoredResult::Unprocessed,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "bulk result outcome {other:?}"
                        )));
                    }
                };
                found.insert(key, result);
            }
        }
        Ok(found)
    }
}

impl PageTx {
    /// Records a page's planned writes (`bulk_pass`), in the transaction that records the
    /// page's other outcomes.
    pub async fn insert_pending(
        &mut self,
        job_id: &str,
        rows: &[PendingWrite],
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO bulk_pending (job_id, seq, operation, write_key, pending)
                 VALUES {} ON CONFLICT (job_id, seq) DO UPDATE SET operation = excluded.operation,
                    write_key = excluded.write_key, pending = excluded.pending",
                values_list(chunk.len(), 5)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(job_id.to_string())
                    .bind(to_i64(row.seq))
                    .bind(row.operation.clone())
                    .bind(row.key.clone())
                    .bind(row.pending.clone());
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Deletes planned writes once their outcomes are recorded (in the same transaction).
    pub async fn delete_pending(&mut self, job_id: &str, seqs: &[u64]) -> Result<(), StoreError> {
        for chunk in seqs.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM bulk_pending WHERE job_id = $1 AND seq IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(job_id);
            for seq in chunk {
                query = query.bind(to_i64(*seq));
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Direction, Org};

    fn staged(id: &str, sec: u32) -> StagedRow {
        use chrono::TimeZone;
        StagedRow {
            system_modstamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, sec).unwrap(),
            record_id: id.to_string(),
            record: serde_json::json!({"Id": id})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    async fn job(store: &Store) -> String {
        store
            .insert_bulk_job(
                "750J",
                Org::A,
                "Opportunity",
                "query",
                Direction::AToB,
                1,
                Utc::now(),
            )
            .await
            .unwrap();
        store.bulk_job_staging("750J").await.unwrap();
        "750J".to_string()
    }

    crate::both_backends! {
        async fn a_page_staged_again_drops_its_first_try(store) {
            let job = job(&store).await;
            store.begin_staged_page(&job).await.unwrap();
            store.stage_bulk_chunk(&job, &[staged("a1", 1), staged("a2", 2)]).await.unwrap();
            store.end_staged_page(&job, Some("L1")).await.unwrap();
            // The second page: one chunk, then a crash before its end.
            assert_eq!(store.begin_staged_page(&job).await.unwrap(), 2);
            store.stage_bulk_chunk(&job, &[staged("a3", 3)]).await.unwrap();
            // Read again: its first try is dropped.
            assert_eq!(store.begin_staged_page(&job).await.unwrap(), 2);
            store.stage_bulk_chunk(&job, &[staged("a3", 3), staged("a4", 4)]).await.unwrap();
            store.end_staged_page(&job, None).await.unwrap();
            let rows = store.staged_rows(&job, 10).await.unwrap();
            let ids: Vec<&str> = rows.iter().filter_map(|r| r["Id"].as_str()).collect();
            assert_eq!(ids, ["a1", "a2", "a3", "a4"]);
            let open = store.open_bulk_read(Direction::AToB, "Opportunity").await.unwrap().unwrap();
            assert_eq!(open.state, BulkJobState::Staged);
            assert_eq!(open.rows_staged, 4);
            assert_eq!(store.staged_max_modstamp(&job).await.unwrap(), Some(staged("a4", 4).system_modstamp));
        }
    }

    crate::both_backends! {
        async fn targets_pending_and_results_round_trip_and_go_with_the_job(store) {
            let job = job(&store).await;
            let target = |id: &str, ext: Option<&str>, key: Option<&str>| StagedTarget {
                record_id: id.into(),
                external_id: ext.map(str::to_string),
                match_key: key.map(str::to_string),
                record: serde_json::json!({"Id": id}).as_object().cloned().unwrap_or_default(),
            };
            store.stage_bulk_targets(&job, &[
                target("b1", Some("a1"), None),
                target("b2", None, Some("[\"acme\"]")),
                target("b3", None, None),
            ]).await.unwrap();
            assert_eq!(store.bulk_target_count(&job).await.unwrap(), 3);
            let found = store.bulk_targets(&job, &["b3".into()], &["a1".into()], &["[\"acme\"]".into()]).await.unwrap();
            let ids: Vec<&str> = found.iter().filter_map(|r| r["Id"].as_str()).collect();
            assert_eq!(ids, ["b1", "b2", "b3"]);

            let mut tx = store.begin().await.unwrap();
            tx.insert_pending(&job, &[
                PendingWrite { seq: 0, operation: "update".into(), key: "b1".into(), pending: "{}".into() },
                PendingWrite { seq: 1, operation: "upsert".into(), key: "a9".into(), pending: "{}".into() },
            ]).await.unwrap();
            tx.commit().await.unwrap();
            let ups = store.bulk_pending(&job, Some("upsert"), None, 10).await.unwrap();
            assert_eq!(ups.len(), 1);
            assert_eq!(ups[0].key, "a9");
            assert_eq!(store.bulk_pending(&job, None, Some(0), 10).await.unwrap().len(), 1);

            assert_eq!(store.bulk_unwritten(&job, "update", None, 10).await.unwrap().len(), 1);
            store.stage_bulk_results(&job, "update", &[
                ("b1".into(), StoredResult::Written { target_id: "b1".into(), created: false }),
            ]).await.unwrap();
            store.stage_bulk_results(&job, "upsert", &[
                ("a9".into(), StoredResult::Failed { code: "X".into(), message: "m".into() }),
            ]).await.unwrap();
            assert_eq!(store.bulk_unwritten_count(&job, "update").await.unwrap(), 0);
            // A failure is a result too.
            assert_eq!(store.bulk_unwritten_count(&job, "upsert").await.unwrap(), 0);
            let results = store.bulk_results(&job, "upsert", &["a9".into(), "zz".into()]).await.unwrap();
            assert_eq!(results.len(), 1);
            assert_eq!(results["a9"], StoredResult::Failed { code: "X".into(), message: "m".into() });

            let mut tx = store.begin().await.unwrap();
            tx.delete_pending(&job, &[0]).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(store.bulk_pending(&job, None, None, 10).await.unwrap().len(), 1);

            store.finish_bulk_job(&job, BulkJobState::Completed, 2, None, Utc::now()).await.unwrap();
            assert_eq!(store.bulk_target_count(&job).await.unwrap(), 0);
            assert!(store.bulk_pending(&job, None, None, 10).await.unwrap().is_empty());
            assert!(store.bulk_results(&job, "update", &["b1".into()]).await.unwrap().is_empty());
        }
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::store::{Direction, Org};

    crate::both_backends! {
        async fn chunks_past_one_statement_stage_every_row_once(store) {
            use chrono::TimeZone;
            store
                .insert_bulk_job("750K", Org::A, "Opportunity", "query", Direction::AToB, 1, Utc::now())
                .await
                .unwrap();
            store.bulk_job_staging("750K").await.unwrap();
            store.begin_staged_page("750K").await.unwrap();
            let rows: Vec<StagedRow> = (0..250)
                .map(|i| StagedRow {
                    system_modstamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                    record_id: format!("a{i:03}"),
                    record: serde_json::json!({"Id": format!("a{i:03}")}).as_object().cloned().unwrap_or_default(),
                })
                .collect();
            store.stage_bulk_chunk("750K", &rows).await.unwrap();
            store.end_staged_page("750K", None).await.unwrap();
            assert_eq!(store.staged_rows("750K", 1000).await.unwrap().len(), 250);

            let targets: Vec<StagedTarget> = (0..250)
                .map(|i| StagedTarget {
                    record_id: format!("b{:03}", i % 240),
                    external_id: None,
                    match_key: None,
                    record: serde_json::json!({"Id": format!("b{i:03}")}).as_object().cloned().unwrap_or_default(),
                })
                .collect();
            store.stage_bulk_targets("750K", &targets).await.unwrap();
            assert_eq!(store.bulk_target_count("750K").await.unwrap(), 240);

            let results: Vec<(String, StoredResult)> = (0..250)
                .map(|i| (format!("k{:03}", i % 200), StoredResult::Unprocessed))
                .chain([("k000".to_string(), StoredResult::Written { target_id: "b1".into(), created: true })])
                .collect();
            store.stage_bulk_results("750K", "update", &results).await.unwrap();
            let keys: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
            let found = store.bulk_results("750K", "update", &keys).await.unwrap();
            assert_eq!(found.len(), 200);
            assert_eq!(found["k000"], StoredResult::Written { target_id: "b1".into(), created: true });

            let pending: Vec<PendingWrite> = (0..250)
                .map(|i| PendingWrite { seq: i, operation: "update".into(), key: format!("k{i}"), pending: "{}".into() })
                .collect();
            let mut tx = store.begin().await.unwrap();
            tx.insert_pending("750K", &pending).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(store.bulk_pending("750K", None, None, 1000).await.unwrap().len(), 250);
        }
    }
}
