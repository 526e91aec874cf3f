//! The status report's Bulk API 2.0 section (issue 16, README "Bulk API 2.0"): jobs by state,
//! the rows completed jobs moved and each open job, from the store's summary (pure), and its
//! lines of the text report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::store::{BulkJob, BulkSummary, Direction, Org, format_timestamp};

/// The `bulk` section: jobs by state and the rows completed jobs moved, with each open job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkStatus {
    pub open: u64,
    pub completed: u64,
    pub failed: u64,
    pub aborted: u64,
    pub rows_moved: u64,
    pub open_jobs: Vec<BulkJobStatus>,
}

/// One open Bulk job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkJobStatus {
    pub job_id: String,
    pub org: Org,
    pub direction: Direction,
    pub operation: String,
    /// running, staging, staged; a Bulk pass: planned, written.
    pub state: &'static str,
    pub rows_staged: u64,
    pub created_at: String,
}

/// The `bulk` section from the store's summary and its recent jobs (pure).
pub fn bulk_status(summary: &BulkSummary, recent: &[BulkJob]) -> BulkStatus {
    BulkStatus {
        open: summary.open,
        completed: summary.completed,
        failed: summary.failed,
        aborted: summary.aborted,
        rows_moved: summary.rows_moved,
        open_jobs: recent
            .iter()
            .filter(|j| j.state.is_open())
            .map(|j| BulkJobStatus {
                job_id: j.job_id.clone(),
                org: j.org,
                direction: j.direction,
                operation: j.operation.clone(),
                state: j.state.as_str(),
                rows_staged: j.rows_staged,
                created_at: format_timestamp(j.created_at),
            })
            .collect(),
    }
}

/// The section's lines of the text report.
pub(super) fn render_text(out: &mut String, bulk: &BulkStatus) {
    let _ = writeln!(
        out,
        "Bulk      {} open, {} completed, {} failed, {} aborted; {} rows moved",
        bulk.open, bulk.completed, bulk.failed, bulk.aborted, bulk.rows_moved
    );
    for job in &bulk.open_jobs {
        let _ = writeln!(
            out,
            "  {} {} {} {} ({} rows staged, created {})",
            job.job_id, job.direction, job.operation, job.state, job.rows_staged, job.created_at
        );
    }
}
