//! Bulk read: a direction pass whose backlog is large reads its changes through a Bulk API
//! 2.0 query job instead of REST query pages, and feeds them to the same page pipeline.
//!
//! When: the first REST page's `totalSize` (free: the pass asks for that page anyway), less
//! the rows of that page inside the lookback overlap, is the backlog estimate
//! ([`backlog_estimate`]; a first page wholly inside the overlap gives no estimate and the read
//! stays on REST, so the re-read of a large tie after a Bulk load does not start another job);
//! above `batch.bulk_read_threshold` (`batch.bulk = "auto"`), or whenever
//! there is anything to read (`"always"`), the pass creates a query job for the same SOQL as
//! the watermark query (fields, filter, the integration-user exclusion, `ORDER BY
//! SystemModstamp, Id`). `"never"` keeps the REST calls exactly as they were.
//!
//! Stages, each durable before the next, so a `kill -9` anywhere resumes (the next pass finds
//! its open job in `bulk_jobs` before it reads anything else):
//! 1. `running`: the job is recorded as soon as it is created, then polled with a back-off
//!    (0.25 s doubling to 2 s, as simple-salesforce caps it; [`poll_delay`]). A job that ends `Failed` or `Aborted`, or is
//!    still open `batch.bulk_timeout` after its creation (then aborted), falls back: the pass
//!    reads through REST as if Bulk had never been tried (logged at WARN, counted in
//!    `orgsync_bulk_jobs_total{outcome}`).
//! 2. `staging`: results are read page by page (`maxRecords` = [`MAX_RECORDS`]; one page in
//!    memory at a time), each page's rows staged in `bulk_staging` together with the next
//!    page's locator in one transaction; a resumed job continues from the stored locator.
//! 3. `staged`: the staged rows run through the page pipeline (`run_page`, `commit_page`) in
//!    `(SystemModstamp, Id)` order, `page_size` rows per page, up to `batch.in_flight` pages
//!    overlapping and committing in page order, as on the REST path; each page's
//!    transaction records its outcomes, advances the watermark to the page's highest
//!    SystemModstamp, and deletes the page's staged rows. So the watermark never passes a row
//!    without a durable outcome, and a resumed feed starts at the first row not committed.
//! 4. `completed`: the job is deleted in the org (its results with it) and recorded as done.
//!
//! API calls of a Bulk read of X rows: 1 REST query (the estimate), 1 create, P polls (about
//! log2 of the job's run time in quarter seconds, then one per 2 s), ceil(X / [`MAX_RECORDS`])
//! results pages, 1 delete; against ceil(X / 2000) REST query pages. The lookups and writes of
//! the pages are the same on both paths.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesOrdered, StreamExt};
use tokio_util::sync::CancellationToken;

use super::errors::{AtOrg, Stop};
use super::gate::PageGate;
use super::pass::{Pass, PipelineMode};
use super::ports::{Batch, BulkStatus, ErrorKind, OrgPort, PortError, RecordQuery, StorePort};
use super::report::{PassOutcome, PassReport};
use crate::config::{BulkMode, Settings};
use crate::events::bulk::{BulkJobCreated, BulkJobEnded};
pub use crate::salesforce::bulk::poll_delay;
use crate::store::{BulkJob, BulkJobState, StagedRow, Store};

/// Rows per Bulk results page (`maxRecords`). A page is downloaded to a temporary file and
/// staged [`STAGE_CHUNK`] rows at a time, so its size costs calls, not memory: 1,000,000 rows
/// are 4 pages. Salesforce documents that a page is "still subject to the size limits": a
/// smaller page just comes with a locator for the rest.
pub const MAX_RECORDS: u32 = 250_000;

/// Rows staged per transaction while a results page is read back.
pub const STAGE_CHUNK: usize = 2_000;

/// The Bulk settings of a pass (`batch.bulk*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkConfig {
    pub mode: BulkMode,
    pub read_threshold: u64,
    pub write_threshold: u64,
    /// A job still open this long after its creation is aborted.
    pub timeout: Duration,
    /// The first wait between polls of a job, doubled up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// `maxRecords` of a results page.
    pub max_records: u32,
}

impl BulkConfig {
    /// REST only.
    pub fn never() -> BulkConfig {
        BulkConfig {
            mode: BulkMode::Never,
            read_threshold: 10_000,
            write_threshold: 2_000,
            timeout: Duration::from_secs(30 * 60),
            poll_initial: Duration::from_millis(250),
            // Doubling to 20 s: a job of a million rows that runs two minutes costs about
            // a dozen polls (capped at 2 s, as simple-salesforce does, it would be 60).
            poll_max: Duration::from_secs(20),
            max_records: MAX_RECORDS,
        }
    }

    /// As configured.
    pub fn from_settings(settings: &Settings) -> BulkConfig {
        BulkConfig {
            mode: settings.batch.bulk,
            read_threshold: settings.batch.bulk_read_threshold,
            write_threshold: settings.batch.bulk_write_threshold,
            timeout: settings.batch.bulk_timeout,
            ..BulkConfig::never()
        }
    }
}

impl Default for BulkConfig {
    fn default() -> Self {
        BulkConfig::never()
    }
}

/// Whether a watermark read with this backlog (the first page's `totalSize`) goes through
/// Bulk.
pub fn read_through_bulk(cfg: &BulkConfig, backlog: Option<u64>) -> bool {
    match cfg.mode {
        BulkMode::Never => false,
        BulkMode::Always => backlog.is_some_and(|n| n > 0),
        BulkMode::Auto => backlog.is_some_and(|n| n > cfg.read_threshold),
    }
}

/// The backlog of a watermark read, estimated from its first REST page: the query's
/// `totalSize` less the rows of the first page at or before the watermark (the lookback
/// overlap, which the pipeline drops as replays). `None` when it cannot be told: no
/// `totalSize`, or a first page wholly inside the overlap with more to come (the overlap may
/// go on; such a read stays on REST, which costs the same paging either way).
pub fn backlog_estimate(
    total_size: Option<u64>,
    first_page: &[DateTime<Utc>],
    more: bool,
    watermark: DateTime<Utc>,
) -> Option<u64> {
    let total = total_size?;
    let overlap = first_page.iter().filter(|m| **m <= watermark).count();
    if more && overlap == first_page.len() {
        return None;
    }
    Some(total.saturating_sub(overlap as u64))
}

/// Whether a job created at `created` has been open longer than `timeout` at `now`.
pub fn overdue(created: DateTime<Utc>, now: DateTime<Utc>, timeout: Duration) -> bool {
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    now.signed_duration_since(created) > timeout
}

/// What became of a watermark read offered to Bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkRead {
    /// Bulk was not used (below the threshold, `never`, no open job, no Bulk in the ports).
    NotUsed,
    /// The read went through Bulk (or was cancelled while it did; the job stays open).
    Done,
    /// The job failed or stalled: the pass reads through REST.
    FellBack,
}

/// Why waiting for a job stopped.
pub(super) enum Waited {
    Complete,
    Cancelled,
    Ended(String),
    Overdue,
}

/// A page's staged rows, deleted in that page's transaction.
#[derive(Debug, Clone)]
pub struct StagedIds {
    pub job_id: String,
    /// The page's last row in feed order: `(SystemModstamp text, Id)`.
    pub through: (String, String),
}

/// Whether a port error stops the pass (a limit pauses it; a transient or login error ends it
/// and the next cycle resumes the job); any other means Bulk cannot serve this read: the pass
/// falls back to REST.
pub(super) fn stops(error: &PortError) -> bool {
    matches!(
        error.kind,
        ErrorKind::Limit | ErrorKind::Transient | ErrorKind::Auth
    )
}

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// Continues this direction's open Bulk read, if the store holds one.
    pub(super) async fn bulk_resume(
        &self,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<BulkRead, Stop> {
        let _ = self.bulk_cancel.set(cancel.clone());
        let Some(store) = self.store.bulk() else {
            return Ok(BulkRead::NotUsed);
        };
        let cfg = self.config;
        let interrupted = if self.bulk.mode == BulkMode::Never {
            0
        } else {
            store
                .abort_interrupted_writes(cfg.direction, &cfg.object, Utc::now())
                .await?
        };
        if interrupted > 0 {
            tracing::warn!(
                cycle = cfg.cycle,
                direction = %cfg.direction,
                jobs = interrupted,
                "bulk ingest jobs left open by a stopped process marked aborted (their pages are written again)"
            );
        }
        let Some(job) = store.open_bulk_read(cfg.direction, &cfg.object).await? else {
            return Ok(BulkRead::NotUsed);
        };
        if self.bulk.mode == BulkMode::Never {
            // Configured off since: the job is left to the org (it deletes ended jobs after
            // 7 days) and the read goes through REST from the watermark.
            store
                .finish_bulk_job(
                    &job.job_id,
                    BulkJobState::Aborted,
                    0,
                    Some("batch.bulk = \"never\""),
                    Utc::now(),
                )
                .await?;
            return Ok(BulkRead::NotUsed);
        }
        tracing::info!(
            cycle = cfg.cycle,
            direction = %cfg.direction,
            job_id = %job.job_id,
            state = job.state.as_str(),
            rows_staged = job.rows_staged,
            "resuming the open bulk read"
        );
        self.continue_bulk(store, job, cancel, report).await
    }

    /// Reads the watermark query through a new Bulk query job when the backlog calls for it.
    pub(super) async fn bulk_read(
        &self,
        query: &RecordQuery,
        first: &Batch,
        watermark: DateTime<Utc>,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<BulkRead, Stop> {
        if self.bulk.mode == BulkMode::Never {
            return Ok(BulkRead::NotUsed);
        }
        let modstamps: Vec<DateTime<Utc>> = first
            .records
            .iter()
            .filter_map(|r| self.parse_source(r).ok().map(|row| row.system_modstamp))
            .collect();
        let backlog = backlog_estimate(
            first.total_size,
            &modstamps,
            first.next.is_some(),
            watermark,
        );
        // The same estimate decides the pass's writes (`bulk_write`).
        self.set_bulk_writes(backlog);
        if !read_through_bulk(&self.bulk, backlog) {
            return Ok(BulkRead::NotUsed);
        }
        let Some(store) = self.store.bulk() else {
            return Ok(BulkRead::NotUsed);
        };
        let cfg = self.config;
        let org = self.source_org();
        let job_id = match self.call(self.source.bulk_query_start(query)).await {
            Ok(id) => id,
            Err(e) if stops(&e) => return Err(Stop::port(org, e)),
            Err(e) => {
                tracing::warn!(
                    cycle = cfg.cycle,
                    direction = %cfg.direction,
                    org = %org,
                    code = %e.code,
                    error = %e.message,
                    "bulk query job refused: the pass reads through REST"
                );
                return Ok(BulkRead::FellBack);
            }
        };
        let now = Utc::now();
        store
            .insert_bulk_job(
                &job_id,
                org,
                &cfg.object,
                "query",
                cfg.direction,
                cfg.cycle,
                now,
            )
            .await?;
        BulkJobCreated {
            cycle: cfg.cycle,
            direction: cfg.direction,
            org,
            job_id: &job_id,
            operation: "query",
            backlog,
        }
        .emit();
        let job = BulkJob {
            job_id,
            org,
            object: cfg.object.clone(),
            operation: "query".into(),
            direction: cfg.direction,
            cycle: cfg.cycle,
            state: BulkJobState::Running,
            locator: None,
            rows_staged: 0,
            rows_moved: 0,
            error: None,
            created_at: now,
            finished_at: None,
        };
        self.continue_bulk(store, job, cancel, report).await
    }

    /// Takes a recorded job from its stage to the end.
    async fn continue_bulk(
        &self,
        store: &Store,
        mut job: BulkJob,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<BulkRead, Stop> {
        let org = self.source_org();
        if job.state == BulkJobState::Running {
            match self.wait_for_job(&job, cancel).await? {
                Waited::Complete => {
                    store.bulk_job_staging(&job.job_id).await?;
                    job.state = BulkJobState::Staging;
                }
                Waited::Cancelled => {
                    report.outcome = PassOutcome::Cancelled;
                    return Ok(BulkRead::Done);
                }
                Waited::Ended(reason) => {
                    return self
                        .bulk_fell_back(store, &job, BulkJobState::Failed, &reason)
                        .await;
                }
                Waited::Overdue => {
                    if let Err(e) = self
                        .call(self.source.bulk_query_end(&job.job_id, false))
                        .await
                    {
                        tracing::debug!(job_id = %job.job_id, error = %e, "abort of a stalled bulk job failed");
                    }
                    let reason = format!(
                        "still open {} s after its creation (batch.bulk_timeout): aborted",
                        self.bulk.timeout.as_secs()
                    );
                    return self
                        .bulk_fell_back(store, &job, BulkJobState::Aborted, &reason)
                        .await;
                }
            }
        }
        if job.state == BulkJobState::Staging {
            let mut locator = job.locator.clone();
            loop {
                if cancel.is_cancelled() {
                    report.outcome = PassOutcome::Cancelled;
                    return Ok(BulkRead::Done);
                }
                let page = self
                    .call(self.source.bulk_query_page(
                        &job.job_id,
                        &self.config.object,
                        locator.as_deref(),
                        self.bulk.max_records,
                    ))
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(e) if stops(&e) => return Err(Stop::port(org, e)),
                    Err(e) => {
                        return self
                            .bulk_fell_back(store, &job, BulkJobState::Failed, &e.to_string())
                            .await;
                    }
                };
                // The page stays on disk; its rows are staged a chunk at a time, and a page
                // read again after a crash first drops what it had staged.
                let mut page = page;
                job.rows_staged = store.begin_staged_page(&job.job_id).await?;
                loop {
                    let records = match page.records.next_chunk(STAGE_CHUNK) {
                        Ok(records) => records,
                        Err(e) => return Err(Stop::port(org, e)),
                    };
                    if records.is_empty() {
                        break;
                    }
                    let mut rows = Vec::with_capacity(records.len());
                    for record in records {
                        let parsed = self.parse_source(&record)?;
                        rows.push(StagedRow {
                            system_modstamp: parsed.system_modstamp,
                            record_id: parsed.id,
                            record,
                        });
                    }
                    store.stage_bulk_chunk(&job.job_id, &rows).await?;
                    job.rows_staged += rows.len() as u64;
                }
                store
                    .end_staged_page(&job.job_id, page.next_locator.as_deref())
                    .await?;
                match page.next_locator {
                    Some(next) => locator = Some(next),
                    None => break,
                }
            }
            job.state = BulkJobState::Staged;
        }
        self.feed_staged(store, &job, cancel, report).await
    }

    /// Polls a job until it completes, ends, stalls past the timeout, or the pass is
    /// cancelled.
    async fn wait_for_job(
        &self,
        job: &BulkJob,
        cancel: &CancellationToken,
    ) -> Result<Waited, Stop> {
        let org = self.source_org();
        let mut attempt = 0u32;
        loop {
            match self.call(self.source.bulk_query_status(&job.job_id)).await {
                Ok(BulkStatus::Complete) => return Ok(Waited::Complete),
                Ok(BulkStatus::Ended { state, message }) => {
                    return Ok(Waited::Ended(format!("job {state}: {message}")));
                }
                Ok(BulkStatus::Running) => {}
                Err(e) if stops(&e) => return Err(Stop::port(org, e)),
                Err(e) => return Ok(Waited::Ended(e.to_string())),
            }
            if overdue(job.created_at, Utc::now(), self.bulk.timeout) {
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

    /// Feeds a job's staged rows to the page pipeline in `(SystemModstamp, Id)` order, one
    /// committed page at a time; then ends the job. A job whose pass writes through Bulk goes
    /// on as a Bulk pass instead (`bulk_pass`: lookups and writes per pass).
    async fn feed_staged(
        &self,
        store: &Store,
        job: &BulkJob,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<BulkRead, Stop> {
        self.set_bulk_writes(Some(job.rows_staged));
        if self.bulk_pass_applies(job) {
            return self.bulk_pass(store, job.clone(), cancel, report).await;
        }
        if !self.feed_pages(store, job, false, cancel, report).await? {
            // Stopping: the rows left stay staged for the next pass.
            report.outcome = PassOutcome::Cancelled;
            return Ok(BulkRead::Done);
        }
        self.end_read(store, job).await?;
        Ok(BulkRead::Done)
    }

    /// Runs a job's staged rows through the page pipeline, `page_size` rows per page, up to
    /// `in_flight` pages overlapping and committing in order. Each page deletes its staged
    /// rows, or (`planning`: a Bulk pass) keeps them and records its deferred writes as
    /// planned. Whether every staged row was fed (`false`: the pass is stopping).
    pub(super) async fn feed_pages(
        &self,
        store: &Store,
        job: &BulkJob,
        planning: bool,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<bool, Stop> {
        let cfg = self.config;
        let limit = u32::try_from(cfg.page_size.max(1)).unwrap_or(u32::MAX);
        // As the REST path: up to `in_flight` pages overlap (their lookups and writes), take
        // their turns at the gate, and commit in page order.
        let depth = cfg.in_flight.max(1);
        let gate = PageGate::new();
        let gate = &gate;
        let mut pages = FuturesOrdered::new();
        let mut after: Option<(String, String)> = None;
        let mut index = 0usize;
        let mut exhausted = false;
        loop {
            while !exhausted && !cancel.is_cancelled() && pages.len() < depth {
                let staged = store
                    .staged_rows_after(
                        &job.job_id,
                        after.as_ref().map(|(s, i)| (s.as_str(), i.as_str())),
                        limit,
                    )
                    .await?;
                let Some((stamp, id, _)) = staged.last() else {
                    exhausted = true;
                    break;
                };
                after = Some((stamp.clone(), id.clone()));
                let rows = staged
                    .iter()
                    .map(|(_, _, r)| self.parse_source(r))
                    .collect::<Result<Vec<_>, _>>()?;
                let through = (stamp.clone(), id.clone());
                let i = index;
                pages.push_back(async move {
                    (
                        self.run_page(rows, PipelineMode::Changes, i, gate).await,
                        through,
                    )
                });
                index += 1;
            }
            // A page that stops drops the pages after it: nothing of theirs is recorded.
            let Some((done, through)) = pages.next().await else {
                break;
            };
            let mut page = done?;
            let committed = page.index;
            if planning {
                page.pending_job = Some(job.job_id.clone());
            } else {
                page.staged = Some(StagedIds {
                    job_id: job.job_id.clone(),
                    through,
                });
            }
            self.commit_page(*page, report).await?;
            gate.committed(committed);
        }
        if !exhausted {
            // Stopped: a job fed to the end is ended all the same.
            exhausted = store
                .staged_rows_after(
                    &job.job_id,
                    after.as_ref().map(|(s, i)| (s.as_str(), i.as_str())),
                    1,
                )
                .await?
                .is_empty();
        }
        Ok(exhausted)
    }

    /// Ends a read job fed to the end: deleted in the org, recorded `completed`.
    pub(super) async fn end_read(&self, store: &Store, job: &BulkJob) -> Result<(), Stop> {
        let cfg = self.config;
        if let Err(e) = self
            .call(self.source.bulk_query_end(&job.job_id, true))
            .await
            .at(self.source_org())
        {
            // The org deletes ended jobs after 7 days anyway.
            tracing::debug!(job_id = %job.job_id, error = ?e, "delete of a finished bulk job failed");
        }
        store
            .finish_bulk_job(
                &job.job_id,
                BulkJobState::Completed,
                job.rows_staged,
                None,
                Utc::now(),
            )
            .await?;
        BulkJobEnded {
            cycle: cfg.cycle,
            direction: cfg.direction,
            org: self.source_org(),
            job_id: &job.job_id,
            operation: "query",
            outcome: "completed",
            rows: job.rows_staged,
            reason: None,
        }
        .emit(self.metrics);
        Ok(())
    }

    /// Ends a job that failed or stalled; the pass reads through REST.
    async fn bulk_fell_back(
        &self,
        store: &Store,
        job: &BulkJob,
        state: BulkJobState,
        reason: &str,
    ) -> Result<BulkRead, Stop> {
        store
            .finish_bulk_job(&job.job_id, state, 0, Some(reason), Utc::now())
            .await?;
        BulkJobEnded {
            cycle: self.config.cycle,
            direction: self.config.direction,
            org: self.source_org(),
            job_id: &job.job_id,
            operation: "query",
            outcome: state.as_str(),
            rows: 0,
            reason: Some(reason),
        }
        .emit(self.metrics);
        Ok(BulkRead::FellBack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_backlog_decides_by_mode_and_threshold() {
        let cfg = |mode| BulkConfig {
            mode,
            read_threshold: 500,
            ..BulkConfig::never()
        };
        assert!(!read_through_bulk(&cfg(BulkMode::Never), Some(1_000_000)));
        assert!(!read_through_bulk(&cfg(BulkMode::Auto), Some(500)));
        assert!(read_through_bulk(&cfg(BulkMode::Auto), Some(501)));
        assert!(!read_through_bulk(&cfg(BulkMode::Auto), None));
        assert!(read_through_bulk(&cfg(BulkMode::Always), Some(1)));
        assert!(!read_through_bulk(&cfg(BulkMode::Always), Some(0)));
    }

    #[test]
    fn the_backlog_leaves_out_the_lookback_overlap() {
        let wm = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let before = wm - chrono::Duration::seconds(10);
        let after = wm + chrono::Duration::seconds(10);
        // First run or no overlap: the total.
        assert_eq!(
            backlog_estimate(Some(5000), &[after, after], true, wm),
            Some(5000)
        );
        // Two overlapping rows in the first page, then new ones: the rest.
        assert_eq!(
            backlog_estimate(Some(5000), &[before, wm, after], true, wm),
            Some(4998)
        );
        // A first page wholly in the overlap with more to come: unknown.
        assert_eq!(backlog_estimate(Some(5000), &[before, wm], true, wm), None);
        // ... unless it is the only page.
        assert_eq!(backlog_estimate(Some(2), &[before, wm], false, wm), Some(0));
        assert_eq!(backlog_estimate(None, &[after], false, wm), None);
    }

    #[test]
    fn a_job_is_overdue_past_the_timeout() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let timeout = Duration::from_secs(60);
        assert!(!overdue(t0, t0 + chrono::Duration::seconds(60), timeout));
        assert!(overdue(t0, t0 + chrono::Duration::seconds(61), timeout));
    }
}
