//! A Bulk pass's write stage (`bulk_pass`, stage 2): the planned writes of one operation
//! through ingest jobs of at most [`MAX_JOB_BYTES`] of CSV (uploaded from a file, results read
//! back from files by key into `bulk_results`), and through sObject Collections whatever has
//! no result after them (too few for a job, or a job that failed, stalled or was refused).

use std::collections::BTreeSet;

use chrono::Utc;
use futures::future::join_all;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::bulk_pass::{CHUNK, MAX_JOB_BYTES, pending_row};
use super::bulk_read::overdue;
use super::bulk_write::page_through_bulk;
use super::errors::Stop;
use super::pass::{COLLECTION_LIMIT, Pass};
use super::ports::{BulkResults, BulkStatus, OrgPort, StorePort};
use super::rows::Write;
use super::write::per_record;
use crate::events::bulk::BulkJobCreated;
use crate::salesforce::bulk::files::{CsvRows, CsvUpload};
use crate::salesforce::bulk::{poll_delay, split_row_error};
use crate::store::{BulkJob, BulkJobState, Store, StoredResult};
/// The record an upload sends for a planned write: the body, with the `Id` of an update.
fn upload_record(write: &Write) -> Map<String, Value> {
    match write {
        Write::Update { target_id, body } => {
            let mut record = body.clone();
            record.insert("Id".into(), Value::String(target_id.clone()));
            record
        }
        Write::Create(body) => body.clone(),
    }
}

/// The results of one result file, by key.
fn results_of(
    rows: Vec<Vec<String>>,
    header: &[String],
    key: &str,
    which: BulkResults,
) -> Vec<(String, StoredResult)> {
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(k), id, created, error) = (
        col(key),
        col("sf__Id"),
        col("sf__Created"),
        col("sf__Error"),
    ) else {
        return Vec::new();
    };
    rows.into_iter()
        .filter_map(|cells| {
            let key = cells.get(k)?.clone();
            let cell = |i: Option<usize>| i.and_then(|i| cells.get(i)).cloned().unwrap_or_default();
            let result = match which {
                BulkResults::Successful => StoredResult::Written {
                    target_id: cell(id),
                    created: cell(created).eq_ignore_ascii_case("true"),
                },
                BulkResults::Failed => {
                    let (code, message) = split_row_error(&cell(error));
                    StoredResult::Failed { code, message }
                }
                BulkResults::Unprocessed => StoredResult::Unprocessed,
            };
            Some((key, result))
        })
        .collect()
}

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// The write stage of one operation: ingest jobs when they pay, then collections for
    /// whatever has no result yet. `false`: the pass was stopped.
    pub(super) async fn write_planned(
        &self,
        store: &Store,
        job: &BulkJob,
        operation: &'static str,
        cancel: &CancellationToken,
    ) -> Result<bool, Stop> {
        let unwritten = store.bulk_unwritten_count(&job.job_id, operation).await?;
        if unwritten == 0 {
            return Ok(true);
        }
        let many = usize::try_from(unwritten).unwrap_or(usize::MAX);
        if page_through_bulk(self.bulk.mode, many) {
            let mut after: Option<u64> = None;
            loop {
                match self
                    .ingest_planned(store, job, operation, after, cancel)
                    .await?
                {
                    Ingested::Through(last) => after = Some(last),
                    Ingested::Nothing => break,
                    Ingested::Stopped => break,
                }
            }
            if cancel.is_cancelled() {
                return Ok(false);
            }
        }
        self.collections_planned(store, job, operation, cancel)
            .await
    }

    /// One ingest job for the unwritten rows of `operation` after `after`, up to
    /// [`MAX_JOB_BYTES`]: their results recorded.
    async fn ingest_planned(
        &self,
        store: &Store,
        job: &BulkJob,
        operation: &'static str,
        after: Option<u64>,
        cancel: &CancellationToken,
    ) -> Result<Ingested, Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let key = match operation {
            "update" => "Id".to_string(),
            _ => cfg.external_id_field.clone().unwrap_or_default(),
        };
        // First the rows' extent and columns, then the upload, both streamed from the store.
        let mut fields: BTreeSet<String> = BTreeSet::new();
        let mut bytes = 0u64;
        let mut first: Option<u64> = None;
        let mut last: Option<u64> = None;
        let mut cursor = after;
        'extent: loop {
            let chunk = store
                .bulk_unwritten(&job.job_id, operation, cursor, CHUNK)
                .await?;
            if chunk.is_empty() {
                break;
            }
            for p in &chunk {
                let row = pending_row(p)?;
                let record = upload_record(&row.write);
                bytes += serde_json::to_string(&record).map_or(0, |t| t.len() as u64);
                fields.extend(record.keys().filter(|k| **k != key).cloned());
                first.get_or_insert(p.seq);
                last = Some(p.seq);
                cursor = Some(p.seq);
                if bytes > MAX_JOB_BYTES {
                    break 'extent;
                }
            }
        }
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Ingested::Nothing);
        };
        let header: Vec<String> = std::iter::once(key.clone()).chain(fields).collect();
        let mut upload = CsvUpload::new(header).map_err(|m| Stop::port(tgt, upload_error(&m)))?;
        let mut cursor = first.checked_sub(1);
        'upload: loop {
            let chunk = store
                .bulk_unwritten(&job.job_id, operation, cursor, CHUNK)
                .await?;
            if chunk.is_empty() {
                break;
            }
            for p in &chunk {
                if p.seq > last {
                    break 'upload;
                }
                let row = pending_row(p)?;
                upload
                    .push(&upload_record(&row.write))
                    .map_err(|m| Stop::port(tgt, upload_error(&m)))?;
                cursor = Some(p.seq);
            }
        }
        let rows = upload.rows();
        let file = upload
            .finish()
            .map_err(|m| Stop::port(tgt, upload_error(&m)))?;
        let ext = (operation == "upsert").then_some(key.as_str());
        let job_id = match self
            .call(self.target.bulk_ingest_start(&cfg.object, operation, ext))
            .await
        {
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
                    "bulk ingest job refused: the planned writes go through collections"
                );
                return Ok(Ingested::Stopped);
            }
        };
        let created_at = Utc::now();
        store
            .insert_bulk_job(
                &job_id,
                tgt,
                &cfg.object,
                operation,
                cfg.direction,
                cfg.cycle,
                created_at,
            )
            .await?;
        BulkJobCreated {
            cycle: cfg.cycle,
            direction: cfg.direction,
            org: tgt,
            job_id: &job_id,
            operation,
            backlog: Some(rows),
        }
        .emit();
        let uploaded = match self
            .call(self.target.bulk_ingest_upload_file(&job_id, &file))
            .await
        {
            Ok(()) => {
                self.call(self.target.bulk_ingest_close(&job_id, false))
                    .await
            }
            Err(e) => Err(e),
        };
        drop(file);
        if let Err(e) = uploaded {
            let _ = self
                .call(self.target.bulk_ingest_close(&job_id, true))
                .await;
            if let Some(stop) = Stop::pause(tgt, &e) {
                self.end_ingest(
                    &job_id,
                    operation,
                    BulkJobState::Aborted,
                    0,
                    Some(&e.to_string()),
                )
                .await?;
                return Err(stop);
            }
            self.end_ingest(
                &job_id,
                operation,
                BulkJobState::Failed,
                0,
                Some(&e.to_string()),
            )
            .await?;
            return Ok(Ingested::Stopped);
        }
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
            if cancel.is_cancelled() || overdue(created_at, Utc::now(), self.bulk.timeout) {
                let _ = self
                    .call(self.target.bulk_ingest_close(&job_id, true))
                    .await;
                break BulkJobState::Aborted;
            }
            attempt += 1;
            let delay = poll_delay(attempt, self.bulk.poll_initial, self.bulk.poll_max);
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(delay) => {}
            }
        };
        // Every result file (a failed or aborted job's too: the rows it did write; its
        // unprocessed rows are left without a result, for collections).
        let mut moved = 0u64;
        let files: &[BulkResults] = if ended == BulkJobState::Completed {
            &[
                BulkResults::Successful,
                BulkResults::Failed,
                BulkResults::Unprocessed,
            ]
        } else {
            &[BulkResults::Successful, BulkResults::Failed]
        };
        for &which in files {
            let mut file: CsvRows = match self
                .call(self.target.bulk_ingest_result_rows(&job_id, which))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    if let Some(stop) = Stop::pause(tgt, &e) {
                        return Err(stop);
                    }
                    // Results unknown: the rows go through collections.
                    let reason = format!("results unreadable: {e}");
                    self.end_ingest(
                        &job_id,
                        operation,
                        BulkJobState::Failed,
                        moved,
                        Some(&reason),
                    )
                    .await?;
                    return Ok(Ingested::Stopped);
                }
            };
            let header = file.header().to_vec();
            loop {
                let rows = file
                    .next_rows(CHUNK as usize)
                    .map_err(|m| Stop::port(tgt, upload_error(&m)))?;
                if rows.is_empty() {
                    break;
                }
                let results = results_of(rows, &header, &key, which);
                if which == BulkResults::Successful {
                    moved += results.len() as u64;
                }
                store
                    .stage_bulk_results(&job.job_id, operation, &results)
                    .await?;
            }
        }
        if ended == BulkJobState::Completed {
            // A row in no result file of a completed job was not processed.
            let mut cursor = first.checked_sub(1);
            loop {
                let chunk = store
                    .bulk_unwritten(&job.job_id, operation, cursor, CHUNK)
                    .await?;
                let unprocessed: Vec<(String, StoredResult)> = chunk
                    .iter()
                    .take_while(|p| p.seq <= last)
                    .map(|p| (p.key.clone(), StoredResult::Unprocessed))
                    .collect();
                if unprocessed.is_empty() {
                    break;
                }
                cursor = chunk
                    .iter()
                    .take_while(|p| p.seq <= last)
                    .last()
                    .map(|p| p.seq);
                store
                    .stage_bulk_results(&job.job_id, operation, &unprocessed)
                    .await?;
            }
        }
        let reason = match ended {
            BulkJobState::Completed => None,
            BulkJobState::Aborted => Some(
                "aborted (batch.bulk_timeout, or the pass stopping); rows without a result go through collections",
            ),
            _ => Some("the job failed; rows without a result go through collections"),
        };
        self.end_ingest(&job_id, operation, ended, moved, reason)
            .await?;
        Ok(match ended {
            BulkJobState::Completed => Ingested::Through(last),
            _ => Ingested::Stopped,
        })
    }

    /// Writes the unwritten rows of `operation` through sObject Collections (200 per call,
    /// `batch.in_flight` calls at a time), recording each row's result. `false`: the pass
    /// was stopped first (the rest waits for the next pass).
    async fn collections_planned(
        &self,
        store: &Store,
        job: &BulkJob,
        operation: &'static str,
        cancel: &CancellationToken,
    ) -> Result<bool, Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let per_round = u32::try_from(COLLECTION_LIMIT * cfg.in_flight.max(1)).unwrap_or(CHUNK);
        loop {
            if cancel.is_cancelled() {
                return Ok(false);
            }
            let chunk = store
                .bulk_unwritten(&job.job_id, operation, None, per_round)
                .await?;
            if chunk.is_empty() {
                return Ok(true);
            }
            let mut planned: Vec<(String, Write)> = Vec::with_capacity(chunk.len());
            for p in &chunk {
                planned.push((p.key.clone(), pending_row(p)?.write));
            }
            let calls = planned.chunks(COLLECTION_LIMIT).map(|part| async move {
                let result = match operation {
                    "update" => {
                        let bodies: Vec<(String, Map<String, Value>)> = part
                            .iter()
                            .map(|(key, w)| (key.clone(), w.body().clone()))
                            .collect();
                        self.call(self.target.update(&cfg.object, &bodies)).await
                    }
                    _ => {
                        let ext = cfg.external_id_field.as_deref().unwrap_or_default();
                        let bodies: Vec<Map<String, Value>> =
                            part.iter().map(|(_, w)| w.body().clone()).collect();
                        self.call(self.target.upsert(&cfg.object, ext, &bodies))
                            .await
                    }
                };
                (result, part)
            });
            let done = join_all(calls).await;
            if let Some(stop) = done
                .iter()
                .find_map(|(result, _)| result.as_ref().err().and_then(|e| Stop::pause(tgt, e)))
            {
                return Err(stop);
            }
            let mut results = Vec::with_capacity(planned.len());
            for (result, part) in done {
                for ((key, _), outcome) in part.iter().zip(per_record(result, part.len())) {
                    results.push((
                        key.clone(),
                        match outcome {
                            Ok(ok) => StoredResult::Written {
                                target_id: ok.id,
                                created: ok.created,
                            },
                            Err(e) => StoredResult::Failed {
                                code: e.code,
                                message: e.message,
                            },
                        },
                    ));
                }
            }
            store
                .stage_bulk_results(&job.job_id, operation, &results)
                .await?;
        }
    }
}

/// What one ingest job of planned rows did.
enum Ingested {
    /// It completed through this planned row.
    Through(u64),
    /// No unwritten rows were left.
    Nothing,
    /// It failed, was refused or aborted: the rest goes through collections.
    Stopped,
}

fn upload_error(message: &str) -> super::ports::PortError {
    super::ports::PortError {
        kind: super::ports::ErrorKind::Transient,
        code: "BULK_FILE".into(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_uploads_its_id() {
        let update = Write::Update {
            target_id: "006B".into(),
            body: serde_json::json!({"Name": "x"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let record = upload_record(&update);
        assert_eq!(record["Id"], serde_json::json!("006B"));
        assert_eq!(record["Name"], serde_json::json!("x"));
    }

    #[test]
    fn result_files_are_read_by_key_column() {
        let header: Vec<String> = ["sf__Id", "sf__Created", "Ext__c", "Name"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = vec![
            vec!["006B".into(), "true".into(), "a2".into(), "x".into()],
            vec!["006C".into(), "false".into(), "a1".into(), "y".into()],
        ];
        let got = results_of(rows, &header, "Ext__c", BulkResults::Successful);
        assert_eq!(
            got,
            [
                (
                    "a2".to_string(),
                    StoredResult::Written {
                        target_id: "006B".into(),
                        created: true
                    }
                ),
                (
                    "a1".to_string(),
                    StoredResult::Written {
                        target_id: "006C".into(),
                        created: false
                    }
                ),
            ]
        );
        let header: Vec<String> = ["sf__Id", "sf__Error", "Id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = vec![vec![
            "".into(),
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access:--".into(),
            "006D".into(),
        ]];
        assert_eq!(
            results_of(rows, &header, "Id", BulkResults::Failed),
            [(
                "006D".to_string(),
                StoredResult::Failed {
                    code: "UNABLE_TO_LOCK_ROW".into(),
                    message: "unable to obtain exclusive access:--".into()
                }
            )]
        );
        // A file without the key column says nothing.
        assert!(
            results_of(
                vec![vec!["x".into()]],
                &["sf__Id".to_string()],
                "Id",
                BulkResults::Successful
            )
            .is_empty()
        );
    }
}
