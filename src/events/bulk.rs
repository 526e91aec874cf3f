//! Bulk API 2.0 jobs of a direction pass (`sync::bulk_read`): a job created, a job ended
//! (completed, failed, aborted) with the rows it moved, and the fall back to REST after a
//! failed or stalled job. An ended job counts in `orgsync_bulk_jobs_total{org,operation,
//! outcome}` and its rows in `orgsync_bulk_rows_total{org,operation}`; the open jobs are a
//! gauge the scrape reads from the store (`orgsync_bulk_jobs_open{org}`). This file imports
//! only `metrics` and `domain`.

use crate::domain::{Direction, Org};
use crate::metrics::{BULK_JOBS, BULK_ROWS, Metrics, label};

/// A Bulk job was created (and recorded in the store before anything else).
#[derive(Debug)]
pub struct BulkJobCreated<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub org: Org,
    pub job_id: &'a str,
    pub operation: &'a str,
    /// The backlog that made the pass choose Bulk (the first page's `totalSize`), if known.
    pub backlog: Option<u64>,
}

impl BulkJobCreated<'_> {
    /// Log only: the job is counted when it ends.
    pub fn emit(&self) {
        tracing::info!(
            cycle = self.cycle,
            direction = %self.direction,
            org = %self.org,
            job_id = %self.job_id,
            operation = self.operation,
            backlog = self.backlog,
            "bulk job created"
        );
    }
}

/// A Bulk job ended: `completed`, `failed` or `aborted`, with the rows it moved.
#[derive(Debug)]
pub struct BulkJobEnded<'a> {
    pub cycle: u64,
    pub direction: Direction,
    pub org: Org,
    pub job_id: &'a str,
    pub operation: &'a str,
    pub outcome: &'a str,
    pub rows: u64,
    /// Why it failed or was aborted.
    pub reason: Option<&'a str>,
}

impl BulkJobEnded<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let org = self.org.as_str();
        metrics
            .counter(
                BULK_JOBS,
                vec![
                    label("org", org),
                    label("operation", self.operation.to_string()),
                    label("outcome", self.outcome.to_string()),
                ],
            )
            .increment(1);
        metrics
            .counter(
                BULK_ROWS,
                vec![
                    label("org", org),
                    label("operation", self.operation.to_string()),
                ],
            )
            .increment(self.rows);
        if self.outcome == "completed" {
            tracing::info!(
                cycle = self.cycle,
                direction = %self.direction,
                org = %self.org,
                job_id = %self.job_id,
                operation = self.operation,
                rows = self.rows,
                "bulk job completed"
            );
        } else {
            tracing::warn!(
                cycle = self.cycle,
                direction = %self.direction,
                org = %self.org,
                job_id = %self.job_id,
                operation = self.operation,
                outcome = self.outcome,
                reason = self.reason.unwrap_or(""),
                "bulk job did not complete: the pass falls back to REST for its rows"
            );
        }
    }
}
