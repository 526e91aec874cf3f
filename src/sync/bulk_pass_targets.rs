//! A Bulk pass's staging of the target's records (`bulk_pass`, stage 1): one count query,
//! then the records through REST pages (up to [`TARGETS_THROUGH_REST`]) or a query job of
//! every live record, recorded in `bulk_jobs` as operation `lookup`, staged into
//! `bulk_targets` a chunk at a time with their external id and match key.

use chrono::Utc;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::bulk_pass::{CHUNK, TARGETS_THROUGH_REST, match_key_text, stage_targets_pays};
use super::bulk_read::{Waited, overdue, stops};
use super::errors::{PassError, Stop};
use super::pass::Pass;
use super::ports::{BulkStatus, OrgPort, QueryKind, RecordQuery, StorePort};
use super::rows::parse_target_row;
use crate::events::bulk::{BulkJobCreated, BulkJobEnded};
use crate::salesforce::bulk::poll_delay;
use crate::store::{BulkJob, BulkJobState, StagedTarget, Store};
impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// Stages the target's records for the lookups, when it pays; whether it did.
    pub(super) async fn stage_targets(
        &self,
        store: &Store,
        job: &BulkJob,
        cancel: &CancellationToken,
    ) -> Result<bool, Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let count = match self.call(self.target.count_records(&cfg.object)).await {
            Ok(n) => n,
            Err(e) if stops(&e) => return Err(Stop::port(tgt, e)),
            Err(_) => return Ok(false),
        };
        if !stage_targets_pays(job.rows_staged, count) {
            tracing::info!(
                cycle = cfg.cycle,
                direction = %cfg.direction,
                target_records = count,
                rows = job.rows_staged,
                "bulk pass: the target is too large to stage; pages look up as on REST"
            );
            return Ok(false);
        }
        let query = RecordQuery {
            object: cfg.object.clone(),
            fields: self.target_fields(),
            kind: QueryKind::All,
        };
        if count <= TARGETS_THROUGH_REST {
            let records = self.query_all(self.target, tgt, &query).await?;
            for chunk in records.chunks(CHUNK as usize) {
                self.stage_target_chunk(store, &job.job_id, chunk.to_vec())
                    .await?;
            }
            return Ok(true);
        }
        let job_id = match self.call(self.target.bulk_query_start(&query)).await {
            Ok(id) => id,
            Err(e) if stops(&e) => return Err(Stop::port(tgt, e)),
            Err(_) => return Ok(false),
        };
        let created_at = Utc::now();
        store
            .insert_bulk_job(
                &job_id,
                tgt,
                &cfg.object,
                "lookup",
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
            operation: "lookup",
            backlog: Some(count),
        }
        .emit();
        let waited = self
            .wait_query(self.target, tgt, &job_id, created_at, cancel)
            .await?;
        if !matches!(waited, Waited::Complete) {
            let _ = self.call(self.target.bulk_query_end(&job_id, false)).await;
            let reason = match waited {
                Waited::Ended(reason) => reason,
                Waited::Cancelled => "the pass was stopped".to_string(),
                _ => "still open after batch.bulk_timeout: aborted".to_string(),
            };
            self.end_lookup(store, &job_id, BulkJobState::Aborted, 0, Some(&reason))
                .await?;
            return Ok(false);
        }
        let mut locator: Option<String> = None;
        let mut staged = 0u64;
        loop {
            let page = match self
                .call(self.target.bulk_query_page(
                    &job_id,
                    &cfg.object,
                    locator.as_deref(),
                    self.bulk.max_records,
                ))
                .await
            {
                Ok(page) => page,
                Err(e) if stops(&e) => return Err(Stop::port(tgt, e)),
                Err(e) => {
                    self.end_lookup(
                        store,
                        &job_id,
                        BulkJobState::Failed,
                        staged,
                        Some(&e.to_string()),
                    )
                    .await?;
                    store.clear_bulk_targets(&job.job_id).await?;
                    return Ok(false);
                }
            };
            let mut records = page.records;
            loop {
                let chunk = records
                    .next_chunk(CHUNK as usize)
                    .map_err(|e| Stop::port(tgt, e))?;
                if chunk.is_empty() {
                    break;
                }
                staged += chunk.len() as u64;
                self.stage_target_chunk(store, &job.job_id, chunk).await?;
            }
            match page.next_locator {
                Some(next) => locator = Some(next),
                None => break,
            }
        }
        if let Err(e) = self.call(self.target.bulk_query_end(&job_id, true)).await {
            tracing::debug!(job_id = %job_id, error = %e, "delete of a finished bulk job failed");
        }
        self.end_lookup(store, &job_id, BulkJobState::Completed, staged, None)
            .await?;
        Ok(true)
    }

    async fn stage_target_chunk(
        &self,
        store: &Store,
        job_id: &str,
        records: Vec<Map<String, Value>>,
    ) -> Result<(), Stop> {
        let cfg = self.config;
        let tgt = self.target_org();
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let parsed =
                parse_target_row(tgt, self.mapping, cfg.external_id_field.as_deref(), &record)
                    .map_err(|message| PassError::BadRow { org: tgt, message })?;
            rows.push(StagedTarget {
                record_id: parsed.id.clone(),
                external_id: parsed.external_id.clone(),
                match_key: match_key_text(&cfg.match_by, &parsed.values),
                record,
            });
        }
        store.stage_bulk_targets(job_id, &rows).await?;
        Ok(())
    }

    async fn end_lookup(
        &self,
        store: &Store,
        job_id: &str,
        state: BulkJobState,
        rows: u64,
        reason: Option<&str>,
    ) -> Result<(), Stop> {
        store
            .finish_bulk_job(job_id, state, rows, reason, Utc::now())
            .await?;
        BulkJobEnded {
            cycle: self.config.cycle,
            direction: self.config.direction,
            org: self.target_org(),
            job_id,
            operation: "lookup",
            outcome: state.as_str(),
            rows,
            reason,
        }
        .emit(self.metrics);
        Ok(())
    }

    /// Polls a query job of `port` until it completes, ends, stalls or the pass stops.
    async fn wait_query<O: OrgPort>(
        &self,
        port: &O,
        org: crate::store::Org,
        job_id: &str,
        created_at: chrono::DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> Result<Waited, Stop> {
        let mut attempt = 0u32;
        loop {
            match self.call(port.bulk_query_status(job_id)).await {
                Ok(BulkStatus::Complete) => return Ok(Waited::Complete),
                Ok(BulkStatus::Ended { state, message }) => {
                    return Ok(Waited::Ended(format!("job {state}: {message}")));
                }
                Ok(BulkStatus::Running) => {}
                Err(e) if stops(&e) => return Err(Stop::port(org, e)),
                Err(e) => return Ok(Waited::Ended(e.to_string())),
            }
            if overdue(created_at, Utc::now(), self.bulk.timeout) {
                return Ok(Waited::Overdue);
            }
            attempt += 1;
            let delay = poll_delay(attempt, self.bulk.poll_initial, self.bulk.poll_max);
            tokio::select! {
                () = cancel.cancelled() => return Ok(Waited::Cancelled),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}
