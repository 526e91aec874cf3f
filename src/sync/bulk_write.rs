//! Bulk write: a pass with a large backlog writes a page's updates (and its creates, when
//! `sync.external_id_field` is configured: as upserts on it) through one Bulk API 2.0 ingest
//! job instead of sObject Collections calls.
//!
//! Where it sits in the page pipeline: in the page's write stage (`write_page`), before the
//! collections calls, for that page's writes only. So every guarantee of DESIGN §2 holds as on
//! REST: a page commits only after its job has ended and every row's result is known, pages
//! still commit in order, and the watermark never passes a row without a durable outcome.
//! A `kill -9` while a job runs leaves the page uncommitted: the next pass reads the page
//! again and writes it again, which is harmless because Bulk writes are only idempotent ones
//! (updates by Id, upserts on the external id); the job left behind is marked `aborted` in
//! `bulk_jobs` by the next pass ("interrupted"). Creates without an external id stay on
//! collections: Bulk results come in no guaranteed order, so an insert's result could only be
//! matched by position, and a replayed insert would duplicate the record.
//!
//! When: decided once per pass from the backlog estimate ([`write_through_bulk`]: above
//! `batch.bulk_write_threshold` with `"auto"`, any with `"always"`), then per page
//! ([`page_through_bulk`]): with `"auto"` only a page with more than [`MIN_PAGE_WRITES`] writes
//! of a kind, where one job (create, upload, close, a poll or two, successful and failed
//! results, about 7 calls) costs fewer calls than collections (one per 200); so Bulk writes pay
//! with `batch.page_size` of 1,400 or more. `"always"` uses a job for any write (for tests).
//!
//! Results: every row's result is matched by its key, never by position: `Id` for updates,
//! the external id for upserts. A row in `failedResults` fails with the code before the first
//! colon of its `sf__Error`, classed by [`FailureClass::of_code`] as a collections error is; a
//! row in `unprocessedrecords` of a completed job is a transient failure. A job that fails, or
//! is still open `batch.bulk_timeout` after its creation (aborted), leaves its rows without a
//! result to the collections calls that follow: they are replayed through REST. So does a
//! pass being stopped (SIGTERM) while its job runs: the job is aborted and the page finishes
//! through collections and commits, as SIGTERM asks of the pages in flight.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::{Map, Value};

use super::bulk_read::{BulkConfig, overdue};
use super::errors::Stop;
use super::pass::Pass;
use super::ports::{BulkResultRow, BulkResults, BulkStatus, OrgPort, StorePort};
use super::report::PassReport;
use super::rows::{RowOutcome, RowState, Write};
use crate::config::BulkMode;
use crate::domain::FailureClass;
use crate::events::bulk::{BulkJobCreated, BulkJobEnded};
use crate::events::record::{RecordUpdated, RecordWritten};
use crate::salesforce::bulk::{poll_delay, split_row_error};
use crate::store::{BulkJobState, StoreError};

/// With `"auto"`, a page's writes of one kind go through a job only above this many: a job
/// costs about 7 calls, the collections calls of 1,400 records.
pub const MIN_PAGE_WRITES: usize = 1200;

/// Whether a pass with this backlog writes through Bulk (its pages may).
pub fn write_through_bulk(cfg: &BulkConfig, backlog: Option<u64>) -> bool {
    match cfg.mode {
        BulkMode::Never => false,
        BulkMode::Always => true,
        BulkMode::Auto => backlog.is_some_and(|n| n > cfg.write_threshold),
    }
}

/// Whether a page's `writes` of one kind go through a job, in a pass that writes through Bulk.
pub fn page_through_bulk(mode: BulkMode, writes: usize) -> bool {
    match mode {
        BulkMode::Never => false,
        BulkMode::Always => writes > 0,
        BulkMode::Auto => writes > MIN_PAGE_WRITES,
    }
}

/// A row's result in an ingest job's result files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowResult {
    Written {
        id: String,
        created: bool,
    },
    Failed {
        code: String,
        message: String,
    },
    Unprocessed,
    /// In no file: the job ended before it (failed, aborted).
    Missing,
}

/// Each key's result, matched by the `key` column of the result files (never by position).
pub fn match_results(
    keys: &[String],
    key: &str,
    successful: &[BulkResultRow],
    failed: &[BulkResultRow],
    unprocessed: &[BulkResultRow],
) -> Vec<RowResult> {
    let mut by_key: HashMap<&str, RowResult> = HashMap::new();
    for row in unprocessed {
        if let Some(k) = row.get(key) {
            by_key.insert(k, RowResult::Unprocessed);
        }
    }
    for row in failed {
        if let Some(k) = row.get(key) {
            let (code, message) = split_row_error(row.get("sf__Error").map_or("", String::as_str));
            by_key.insert(k, RowResult::Failed { code, message });
        }
    }
    for row in successful {
        if let (Some(k), Some(id)) = (row.get(key), row.get("sf__Id")) {
            let created = row
                .get("sf__Created")
                .is_some_and(|c| c.eq_ignore_ascii_case("true"));
            by_key.insert(
                k,
                RowResult::Written {
                    id: id.clone(),
                    created,
                },
            );
        }
    }
    keys.iter()
        .map(|k| by_key.remove(k.as_str()).unwrap_or(RowResult::Missing))
        .collect()
}

/// The upload's columns: the key first, then every field of the bodies, sorted.
pub fn upload_header(key: &str, records: &[Map<String, Value>]) -> Vec<String> {
    let mut fields: Vec<String> = records
        .iter()
        .flat_map(|r| r.keys().cloned())
        .filter(|f| f != key)
        .collect();
    fields.sort();
    fields.dedup();
    std::iter::once(key.to_string()).chain(fields).collect()
}

/// One job's share of a page: the rows, their keys and bodies (the key column included).
struct JobRows {
    operation: &'static str,
    key: String,
    external_id_field: Option<String>,
    index: Vec<usize>,
    keys: Vec<String>,
    records: Vec<Map<String, Value>>,
}

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// The page's updates (and upserts) through ingest jobs when the pass writes through
    /// Bulk; the rows it settles lose their `write`, the others are left to collections.
    pub(super) async fn bulk_write_page(
        &self,
        rows: &mut [RowState],
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        if !self.bulk_writes() || self.store.bulk().is_none() {
            return Ok(());
        }
        let mut updates = JobRows {
            operation: "update",
            key: "Id".into(),
            external_id_field: None,
            index: Vec::new(),
            keys: Vec::new(),
            records: Vec::new(),
        };
        let ext = self.config.external_id_field.clone();
        let mut upserts = JobRows {
            operation: "upsert",
            key: ext.clone().unwrap_or_default(),
            external_id_field: ext.clone(),
            index: Vec::new(),
            keys: Vec::new(),
            records: Vec::new(),
        };
        for (i, state) in rows.iter().enumerate() {
            match &state.write {
                Some(Write::Update { target_id, body }) => {
                    let mut record = body.clone();
                    record.insert("Id".into(), Value::String(target_id.clone()));
                    updates.index.push(i);
                    updates.keys.push(target_id.clone());
                    updates.records.push(record);
                }
                Some(Write::Create(body)) => {
                    let Some(ext) = &ext else { continue };
                    let Some(key) = body.get(ext).and_then(Value::as_str) else {
                        continue;
                    };
                    upserts.index.push(i);
                    upserts.keys.push(key.to_string());
                    upserts.records.push(body.clone());
                }
                None => {}
            }
        }
        for job in [updates, upserts] {
            if page_through_bulk(self.bulk.mode, job.records.len()) {
                self.ingest(rows, job, report).await?;
            }
        }
        Ok(())
    }

    /// One ingest job for `job`'s rows: their outcomes from its result files.
    async fn ingest(
        &self,
        rows: &mut [RowState],
        job: JobRows,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let Some(store) = self.store.bulk() else {
            return Ok(());
        };
        let started = self
            .call(self.target.bulk_ingest_start(
                &cfg.object,
                job.operation,
                job.external_id_field.as_deref(),
            ))
            .await;
        let job_id = match started {
            Ok(id) => id,
            Err(e) => {
                if let Some(stop) = Stop::pause(tgt, &e) {
                    return Err(stop);
                }
                tracing::warn!(
                    cycle = cfg.cycle,
                    direction = %cfg.direction,
                    org = %tgt,
                    code = %e.code,
                    error = %e.message,
                    "bulk ingest job refused: the page writes through collections"
                );
                return Ok(());
            }
        };
        let created_at = Utc::now();
        {
            let (store, id, object) = (store.clone(), job_id.clone(), cfg.object.clone());
            let (operation, direction, cycle) = (job.operation, cfg.direction, cfg.cycle);
            detached(async move {
                store
                    .insert_bulk_job(&id, tgt, &object, operation, direction, cycle, created_at)
                    .await
            })
            .await?;
        }
        BulkJobCreated {
            cycle: cfg.cycle,
            direction: cfg.direction,
            org: tgt,
            job_id: &job_id,
            operation: job.operation,
            backlog: None,
        }
        .emit();
        let header = upload_header(&job.key, &job.records);
        let uploaded = match self
            .call(
                self.target
                    .bulk_ingest_upload(&job_id, &header, &job.records),
            )
            .await
        {
            Ok(()) => {
                self.call(self.target.bulk_ingest_close(&job_id, false))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = uploaded {
            let _ = self
                .call(self.target.bulk_ingest_close(&job_id, true))
                .await;
            return self
                .end_ingest(
                    &job_id,
                    job.operation,
                    BulkJobState::Failed,
                    0,
                    Some(&e.to_string()),
                )
                .await;
        }
        // Poll until the job ends, or abort it past the timeout.
        let mut attempt = 0u32;
        let ended = loop {
            match self.call(self.target.bulk_ingest_status(&job_id)).await {
                Ok(BulkStatus::Complete) => break BulkJobState::Completed,
                Ok(BulkStatus::Ended { .. }) => break BulkJobState::Failed,
                Ok(BulkStatus::Running) => {}
                Err(e) => {
                    if let Some(stop) = Stop::pause(tgt, &e) {
                        return Err(stop);
                    }
                }
            }
            // Past the timeout, or the pass is stopping (SIGTERM): abort, and let the page's
            // rows go through collections so that it can still commit.
            let cancelled = self.bulk_cancel.get().is_some_and(|c| c.is_cancelled());
            if cancelled || overdue(created_at, Utc::now(), self.bulk.timeout) {
                let _ = self
                    .call(self.target.bulk_ingest_close(&job_id, true))
                    .await;
                break BulkJobState::Aborted;
            }
            attempt += 1;
            let delay = poll_delay(attempt, self.bulk.poll_initial, self.bulk.poll_max);
            match self.bulk_cancel.get() {
                Some(cancel) => tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(delay) => {}
                },
                None => tokio::time::sleep(delay).await,
            }
        };
        let mut files = Vec::new();
        for which in [
            BulkResults::Successful,
            BulkResults::Failed,
            BulkResults::Unprocessed,
        ] {
            match self
                .call(self.target.bulk_ingest_results(&job_id, which))
                .await
            {
                Ok(rows) => files.push(rows),
                Err(e) => {
                    // Results unknown: every row is replayed through collections (updates
                    // and upserts are idempotent).
                    if let Some(stop) = Stop::pause(tgt, &e) {
                        return Err(stop);
                    }
                    let reason = format!("results unreadable: {e}");
                    return self
                        .end_ingest(
                            &job_id,
                            job.operation,
                            BulkJobState::Failed,
                            0,
                            Some(&reason),
                        )
                        .await;
                }
            }
        }
        let results = match files.as_slice() {
            [ok, failed, unprocessed] => {
                match_results(&job.keys, &job.key, ok, failed, unprocessed)
            }
            _ => Vec::new(),
        };
        let mut moved = 0u64;
        for ((i, result), record) in job.index.iter().zip(results).zip(job.records) {
            let Some(state) = rows.get_mut(*i) else {
                continue;
            };
            let outcome = match (result, ended) {
                (RowResult::Written { id, created }, _) => {
                    moved += 1;
                    Some(self.written(state, id, created, report))
                }
                (RowResult::Failed { code, message }, _) => Some(RowOutcome::Failed {
                    target_id: state.linked_target().map(str::to_string),
                    class: FailureClass::of_code(&code),
                    code,
                    message,
                    sent: Some(record),
                }),
                (RowResult::Unprocessed | RowResult::Missing, BulkJobState::Completed) => {
                    Some(RowOutcome::Failed {
                        target_id: state.linked_target().map(str::to_string),
                        code: "BULK_UNPROCESSED".into(),
                        message: format!("bulk job {job_id} did not process the record"),
                        class: FailureClass::Transient,
                        sent: Some(record),
                    })
                }
                // The job failed or was aborted before the row: replayed through REST.
                _ => None,
            };
            if let Some(outcome) = outcome {
                state.write = None;
                state.outcome = outcome;
            }
        }
        let reason = match ended {
            BulkJobState::Completed => None,
            BulkJobState::Aborted => {
                Some("still open after batch.bulk_timeout: aborted; rows replayed through REST")
            }
            _ => Some("the job failed; rows without a result replayed through REST"),
        };
        self.end_ingest(&job_id, job.operation, ended, moved, reason)
            .await
    }

    /// A row written by a job: its event, counts and outcome.
    fn written(
        &self,
        state: &RowState,
        id: String,
        created: bool,
        report: &mut PassReport,
    ) -> RowOutcome {
        let cfg = self.config;
        let snapshot = state
            .decision
            .as_ref()
            .and_then(|d| d.snapshot.clone())
            .unwrap_or_default();
        match &state.write {
            Some(Write::Update { target_id, body }) => {
                report.updated += 1;
                RecordUpdated {
                    cycle: cfg.cycle,
                    direction: cfg.direction,
                    source_id: &state.row.id,
                    target_id,
                    body,
                }
                .emit(self.metrics);
                RowOutcome::Linked {
                    target_id: target_id.clone(),
                    snapshot,
                }
            }
            _ => {
                report.created += u64::from(created);
                report.updated += u64::from(!created);
                RecordWritten {
                    cycle: cfg.cycle,
                    direction: cfg.direction,
                    source_id: &state.row.id,
                    target_id: &id,
                    created,
                }
                .emit(self.metrics);
                RowOutcome::Linked {
                    target_id: id,
                    snapshot,
                }
            }
        }
    }

    pub(super) async fn end_ingest(
        &self,
        job_id: &str,
        operation: &str,
        state: BulkJobState,
        rows: u64,
        reason: Option<&str>,
    ) -> Result<(), Stop> {
        if let Some(store) = self.store.bulk() {
            let (store, id) = (store.clone(), job_id.to_string());
            let reason_text = reason.map(str::to_string);
            detached(async move {
                store
                    .finish_bulk_job(&id, state, rows, reason_text.as_deref(), Utc::now())
                    .await
            })
            .await?;
        }
        BulkJobEnded {
            cycle: self.config.cycle,
            direction: self.config.direction,
            org: self.target_org(),
            job_id,
            operation,
            outcome: state.as_str(),
            rows,
            reason,
        }
        .emit(self.metrics);
        Ok(())
    }
}

/// Runs a store write of a page in flight on its own task. Pages overlap and commit in
/// order: a write left half done in a page future that is not being polled (while an earlier
/// page commits) would hold SQLite's write lock against that commit; on its own task it
/// always finishes.
async fn detached<F>(write: F) -> Result<(), StoreError>
where
    F: std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
{
    match tokio::spawn(write).await {
        Ok(result) => result,
        Err(e) => Err(StoreError::Corrupt(format!(
            "a bulk job write did not finish: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[(&str, &str)]) -> BulkResultRow {
        cells
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn results_are_matched_by_key_not_position() {
        let keys: Vec<String> = ["k1", "k2", "k3", "k4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Shuffled, as Bulk returns them.
        let ok = [
            row(&[
                ("sf__Id", "006B"),
                ("sf__Created", "false"),
                ("Ext__c", "k2"),
            ]),
            row(&[
                ("sf__Id", "006A"),
                ("sf__Created", "true"),
                ("Ext__c", "k1"),
            ]),
        ];
        let failed = [row(&[
            ("sf__Id", ""),
            (
                "sf__Error",
                "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --",
            ),
            ("Ext__c", "k4"),
        ])];
        let results = match_results(&keys, "Ext__c", &ok, &failed, &[]);
        assert_eq!(
            results,
            [
                RowResult::Written {
                    id: "006A".into(),
                    created: true
                },
                RowResult::Written {
                    id: "006B".into(),
                    created: false
                },
                RowResult::Missing,
                RowResult::Failed {
                    code: "REQUIRED_FIELD_MISSING".into(),
                    message: "Required fields are missing: [Name]:Name --".into()
                },
            ]
        );
        let unprocessed = [row(&[("Ext__c", "k3")])];
        assert_eq!(
            match_results(&keys, "Ext__c", &ok, &failed, &unprocessed)[2],
            RowResult::Unprocessed
        );
    }

    #[test]
    fn the_mode_and_the_page_decide() {
        let cfg = BulkConfig {
            mode: BulkMode::Auto,
            write_threshold: 2000,
            ..BulkConfig::never()
        };
        assert!(!write_through_bulk(&cfg, Some(2000)));
        assert!(write_through_bulk(&cfg, Some(2001)));
        assert!(!write_through_bulk(&BulkConfig::never(), Some(1_000_000)));
        assert!(!page_through_bulk(BulkMode::Auto, MIN_PAGE_WRITES));
        assert!(page_through_bulk(BulkMode::Auto, MIN_PAGE_WRITES + 1));
        assert!(page_through_bulk(BulkMode::Always, 1));
        assert!(!page_through_bulk(BulkMode::Always, 0));
    }

    #[test]
    fn the_key_column_comes_first() {
        let serde_json::Value::Object(a) = serde_json::json!({"Name": "x", "Id": "006A"}) else {
            unreachable!()
        };
        let serde_json::Value::Object(b) = serde_json::json!({"Amount": 5, "Id": "006B"}) else {
            unreachable!()
        };
        assert_eq!(upload_header("Id", &[a, b]), ["Id", "Amount", "Name"]);
    }
}
