//! Feeds: where a direction's pages come from. The watermark query (cursor-paged into
//! committed pages of `page_size` rows, up to `batch.in_flight` pages overlapping, the next
//! batch read while they are looked up and written, committed in page order: see `gate`),
//! the failure queue's due records (fetched fresh by id, page by page; neither they nor the
//! inbox move the watermark), and, in `drain`, the inbox. Each part of the pass counts its
//! own API calls; a pause ends it with the pages committed so far counted
//! ([`Pass::settle`]).

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::bulk_read::BulkRead;
use super::deletes::known_deleted;
use super::drain::Rejected;
use super::errors::{AtOrg, PassError, Stop};
use super::gate::PageGate;
use super::pass::{Pass, PipelineMode};
use super::plan::{FailCode, SourceRow};
use super::ports::{Batch, OrgPort, PortError, QueryKind, RecordQuery, StorePort};
use super::report::{PassOutcome, PassReport};
use crate::store::Org;

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// The watermark query, cursor-paged, in committed pages of `page_size` rows: up to
    /// `in_flight` pages overlap, the next batch is read while they are looked up and
    /// written, and they commit in page order.
    pub async fn sync_changes(&self, cancel: &CancellationToken) -> Result<PassReport, PassError> {
        let before = self.calls_made();
        let mut report = PassReport::default();
        let result = self.sync_changes_pages(cancel, &mut report).await;
        *self.breaker.lock().await = super::pass::Breaker::Closed;
        report.api_calls = self.calls_made() - before;
        self.settle(report, result)
    }

    /// A part of the pass that stopped: a pause becomes the report's outcome (the pages
    /// committed before it stay counted); a failure is the pass's error.
    pub(super) fn settle(
        &self,
        mut report: PassReport,
        result: Result<(), Stop>,
    ) -> Result<PassReport, PassError> {
        match result {
            Ok(()) => Ok(report),
            Err(Stop::Paused { org, error }) => {
                report.outcome = self.paused(org, error);
                Ok(report)
            }
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    async fn sync_changes_pages(
        &self,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let org = self.source_org();
        let watermark = self
            .store
            .watermark(org, &self.config.object)
            .await?
            .unwrap_or(self.config.default_watermark);
        let lookback =
            chrono::Duration::from_std(self.config.lookback).unwrap_or(chrono::Duration::zero());
        let since = watermark
            .checked_sub_signed(lookback)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let exclude = if self.config.skip_integration_user_changes {
            self.config.integration_user_id.clone()
        } else {
            None
        };
        let query = RecordQuery {
            object: self.config.object.clone(),
            fields: self.source_fields(),
            kind: QueryKind::Changes {
                since,
                exclude_modified_by: exclude,
                filter: self.config.filter.clone(),
                with_deleted: self.config.deletes.propagate,
            },
        };
        tracing::debug!(
            cycle = self.config.cycle,
            direction = %self.config.direction,
            watermark = %watermark,
            since = %since,
            in_flight = self.config.in_flight,
            "reading changes"
        );
        if cancel.is_cancelled() {
            report.outcome = PassOutcome::Cancelled;
            return Ok(());
        }
        // The mass-delete breaker: settled by the first batch when it can be, else counted
        // by the first page with a delete, before its delete call (see `deletes`). A
        // resumed Bulk job's rows are counted the same way (no first batch is read then).
        if self.config.deletes.propagate {
            *self.breaker.lock().await = super::pass::Breaker::Uncounted(query.clone());
        }
        // Bulk API 2.0 (`bulk_read`): this direction's open job continues; else a backlog
        // above the threshold (the first page's totalSize) reads through a new job. A job
        // that fails or stalls falls back to this REST path, with a fresh cursor.
        let resumed = self.bulk_resume(cancel, report).await?;
        if resumed == BulkRead::Done {
            return Ok(());
        }
        let mut first = self.call(self.source.query(&query)).await.at(org)?;
        if self.config.deletes.propagate {
            self.arm_breaker(&query, &first).await;
        }
        if resumed == BulkRead::NotUsed {
            match self
                .bulk_read(&query, &first, watermark, cancel, report)
                .await?
            {
                BulkRead::Done => return Ok(()),
                BulkRead::FellBack => first = self.call(self.source.query(&query)).await.at(org)?,
                BulkRead::NotUsed => {}
            }
        }

        let page_size = self.config.page_size.max(1);
        let depth = self.config.in_flight.max(1);
        let gate = PageGate::new();
        let mut buffer: VecDeque<Map<String, Value>> = first.records.into();
        let mut next = first.next;
        let mut reading = None;
        let mut pages = FuturesOrdered::new();
        let mut index = 0usize;
        // Why no more pages start: cancelled, or a stop (pause or error) returned once the
        // pages in flight have committed.
        let mut cancelled = false;
        let mut stop: Option<Stop> = None;
        loop {
            if stop.is_none() && !cancelled && cancel.is_cancelled() {
                cancelled = true;
            }
            if stop.is_some() || cancelled {
                reading = None;
            } else if reading.is_none()
                && buffer.len() < page_size * depth
                && let Some(cursor) = next.take()
            {
                reading = Some(Box::pin(self.read_more(cursor)));
            }
            while stop.is_none() && !cancelled && pages.len() < depth {
                // A whole page, or the rest of the rows once nothing more is to come.
                let rest = next.is_none() && reading.is_none() && !buffer.is_empty();
                if buffer.len() < page_size && !rest {
                    break;
                }
                let take = page_size.min(buffer.len());
                let rows = buffer
                    .drain(..take)
                    .map(|r| self.parse_source(&r))
                    .collect();
                match rows {
                    Ok(rows) => {
                        pages.push_back(self.run_page(rows, PipelineMode::Changes, index, &gate));
                        index += 1;
                    }
                    Err(e) => stop = Some(Stop::Failed(e)),
                }
            }
            if pages.is_empty() && reading.is_none() {
                break;
            }
            tokio::select! {
                batch = async {
                    match reading.as_mut() {
                        Some(read) => read.await,
                        None => std::future::pending().await,
                    }
                }, if reading.is_some() => {
                    reading = None;
                    match batch {
                        Ok(batch) => {
                            buffer.extend(batch.records);
                            next = batch.next;
                        }
                        Err(e) => stop = Some(Stop::port(org, e)),
                    }
                }
                Some(done) = pages.next() => {
                    // A page that stops drops the pages after it: nothing of theirs is
                    // recorded.
                    let work = done?;
                    let index = work.index;
                    self.commit_page(*work, report).await?;
                    gate.committed(index);
                }
                else => break,
            }
        }
        if let Some(stop) = stop {
            return Err(stop);
        }
        if cancelled {
            report.outcome = PassOutcome::Cancelled;
        }
        Ok(())
    }

    /// The batch after `cursor` of the watermark query.
    async fn read_more(&self, cursor: String) -> Result<Batch, PortError> {
        self.call(self.source.query_more(&cursor)).await
    }

    /// Retries the failure queue's due records, fetched fresh by id, page by page.
    pub async fn retry_failures(
        &self,
        cancel: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        let mut report = PassReport::default();
        let before = self.calls_made();
        let result = self.retry_failure_pages(cancel, &mut report).await;
        report.api_calls = self.calls_made() - before;
        self.settle(report, result)
    }

    async fn retry_failure_pages(
        &self,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let mut seen: HashSet<i64> = HashSet::new();
        let limit = u32::try_from(self.config.page_size).unwrap_or(u32::MAX);
        loop {
            if cancel.is_cancelled() {
                report.outcome = PassOutcome::Cancelled;
                return Ok(());
            }
            let due = self
                .store
                .due_failures(
                    self.config.direction,
                    &self.config.object,
                    Utc::now(),
                    limit,
                )
                .await?;
            // A failure that is due again at once (no backoff configured) waits for the next
            // cycle rather than spinning here.
            let due: Vec<_> = due.into_iter().filter(|f| seen.insert(f.id)).collect();
            if due.is_empty() {
                return Ok(());
            }
            let ids: Vec<String> = due.iter().map(|f| f.source_id.clone()).collect();
            // Held deletes whose source is gone even from the recycle bin (purged before the
            // operator's retry): still deletes to apply, by id, not failures to clear.
            let held: HashMap<&str, Option<DateTime<Utc>>> = due
                .iter()
                .filter(|f| f.error_code == FailCode::DeleteHeld.as_str())
                .map(|f| (f.source_id.as_str(), f.source_modstamp))
                .collect();
            let purged_held: std::sync::Mutex<Vec<SourceRow>> = std::sync::Mutex::new(Vec::new());
            let retry = |rows: &[SourceRow], rejected: Vec<Rejected>| {
                let found: HashSet<&str> = rows
                    .iter()
                    .map(|r| r.id.as_str())
                    .chain(rejected.iter().map(|r| r.id.as_str()))
                    .collect();
                let (gone_held, missing): (Vec<String>, Vec<String>) = ids
                    .iter()
                    .filter(|id| !found.contains(id.as_str()))
                    .cloned()
                    .partition(|id| held.contains_key(id.as_str()));
                *purged_held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = gone_held
                    .into_iter()
                    .map(|id| {
                        let at = held
                            .get(id.as_str())
                            .copied()
                            .flatten()
                            .unwrap_or_else(Utc::now);
                        known_deleted(id, at)
                    })
                    .collect();
                PipelineMode::Retry { missing, rejected }
            };
            // Deleted records too: a held delete is retried by id.
            let with_deleted = self.config.deletes.propagate;
            self.process_fetched(&ids, with_deleted, retry, report)
                .await?;
            let purged = purged_held
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !purged.is_empty() {
                let mode = PipelineMode::Retry {
                    missing: Vec::new(),
                    rejected: Vec::new(),
                };
                self.process_page(purged, mode, report).await?;
            }
        }
    }

    /// The records of `ids` fresh from the source; deleted ones too when `with_deleted`.
    pub(super) async fn fetch_by_ids(
        &self,
        ids: &[String],
        with_deleted: bool,
    ) -> Result<Vec<SourceRow>, Stop> {
        let query = RecordQuery {
            object: self.config.object.clone(),
            fields: self.source_fields(),
            kind: if with_deleted {
                QueryKind::ByIdsWithDeleted(ids.to_vec())
            } else {
                QueryKind::ByIds(ids.to_vec())
            },
        };
        let records = self
            .query_all(self.source, self.source_org(), &query)
            .await?;
        let rows = records
            .iter()
            .map(|r| self.parse_source(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Runs a query and follows its cursor to the end.
    pub(super) async fn query_all<O: OrgPort>(
        &self,
        port: &O,
        org: Org,
        query: &RecordQuery,
    ) -> Result<Vec<Map<String, Value>>, Stop> {
        let mut out = Vec::new();
        let mut batch: Batch = self.call(port.query(query)).await.at(org)?;
        loop {
            out.append(&mut batch.records);
            let Some(cursor) = batch.next.take() else {
                break;
            };
            batch = self.call(port.query_more(&cursor)).await.at(org)?;
        }
        Ok(out)
    }
}
