//! The daemon's background reconcile (`reconcile.frequency`, issue 14): between cycles, in
//! its turn in the worker loop (so never during a cycle of the pair), only on the leader, the
//! same run as `orgsync reconcile` (with `reconcile.repair`, as `--repair`), its report kept
//! like the command's. The pure decisions first: whether a run is due (counted from the last
//! stored report, so a restart does not run it early), what a run is likely to cost and
//! whether each org's API budget covers it; then the thin shell, [`Daemon::reconcile_turn`].
//! The daemon already holds the state lock, so the run takes none.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::Daemon;
use super::replicas::cancel_on_demotion;
use crate::config::BulkMode;
use crate::reconcile::{self, report::Report};
use crate::store::Org;

/// The longest wait between two looks at whether a run is due.
const MAX_CHECK_PERIOD: Duration = Duration::from_secs(60);
/// After a skipped or failed run, the wait before trying again (at most the frequency).
const RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Rows a REST query page returns.
const REST_PAGE: u64 = 2_000;
/// Rows a Bulk results page returns (as the read asks for them).
const BULK_PAGE: u64 = crate::sync::MAX_RECORDS as u64;

/// How often the worker looks whether a run is due: the frequency, at most a minute.
pub fn check_period(frequency: Duration) -> Duration {
    frequency
        .min(MAX_CHECK_PERIOD)
        .max(Duration::from_millis(100))
}

/// Whether a run is due at `now`: never run, or the last report finished at least
/// `frequency` ago (a report of the command counts as well).
pub fn is_due(
    now: DateTime<Utc>,
    last_finished: Option<DateTime<Utc>>,
    frequency: Duration,
) -> bool {
    let Some(last) = last_finished else {
        return true;
    };
    let every = chrono::Duration::from_std(frequency).unwrap_or(chrono::Duration::MAX);
    last.checked_add_signed(every).is_some_and(|due| now >= due)
}

/// The API calls a run is likely to make in one org: what the last run's read of it cost,
/// or, before a first run, the read of `records` records (REST pages, or above the Bulk
/// threshold a query job's calls: 1 REST page, 1 describe, 1 create, 1 poll, the results
/// pages, 1 delete).
pub fn estimated_calls(last: Option<u64>, records: u64, bulk: BulkMode, threshold: u64) -> u64 {
    if let Some(calls) = last {
        return calls.max(1);
    }
    if reconcile::read::use_bulk(bulk, threshold, records) {
        5 + records.div_ceil(BULK_PAGE)
    } else {
        records.div_ceil(REST_PAGE).max(1)
    }
}

/// Whether `calls` more keep the org within `budget_percent` of its daily API limit, given
/// the latest usage seen `(used, max)`; unknown usage (no reply seen yet) does not hold a run
/// back (the client's own gate still refuses calls past the budget).
pub fn within_budget(usage: Option<(u64, u64)>, budget_percent: u8, calls: u64) -> bool {
    let Some((used, max)) = usage else {
        return true;
    };
    if max == 0 {
        return true;
    }
    let percent = u128::from(budget_percent.min(100));
    (u128::from(used) + u128::from(calls)) * 100 <= u128::from(max) * percent
}

/// The API calls the last report says its read of `org` cost.
fn last_calls(last: Option<&Report>, org: Org) -> Option<u64> {
    last?.read.get(org.as_str()).map(|r| r.api_calls)
}

/// The worker's memory of the background runs: when a skipped or failed run may be tried
/// again.
#[derive(Debug, Default)]
pub struct ReconcileTurns {
    retry_at: Option<Instant>,
}

impl Daemon {
    /// The background reconcile's turn in the worker loop: runs one when it is due, this
    /// replica leads and both orgs' API budgets cover it; otherwise returns at once (a store
    /// read only). One INFO line per run (`reconcile: done`, with the counts) and one per
    /// skip.
    pub async fn reconcile_turn(&self, turns: &mut ReconcileTurns, cancel: &CancellationToken) {
        let Some(frequency) = self.settings.reconcile.frequency else {
            return;
        };
        if !self.is_leader() || turns.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let last = match self.store.last_reconcile_report().await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(error = %e, "reconcile: cannot read the last report");
                return;
            }
        };
        if !is_due(Utc::now(), last.as_ref().map(|r| r.finished_at), frequency) {
            return;
        }
        let last_report = last.as_ref().and_then(reconcile::parse_stored);
        let retry_at = Instant::now() + RETRY_AFTER.min(frequency);
        if let Some(org) = self.over_budget(last_report.as_ref()).await {
            turns.retry_at = Some(retry_at);
            tracing::info!(
                org = %org,
                retry_in_ms = u64::try_from(RETRY_AFTER.min(frequency).as_millis()).unwrap_or(u64::MAX),
                "reconcile: skipped, the API budget (orgs.{org}.api_budget_percent) would not cover it"
            );
            return;
        }
        match self.reconcile_now(cancel).await {
            Ok(Some(report)) => {
                turns.retry_at = None;
                tracing::debug!(
                    run_id = %report.run_id,
                    total = report.total,
                    remaining = report.remaining(),
                    repair = self.settings.reconcile.repair,
                    "reconcile: background run kept its report"
                );
            }
            Ok(None) => tracing::info!(
                "reconcile: background run stopped (shutdown, or no longer the leader)"
            ),
            Err(e) => {
                turns.retry_at = Some(retry_at);
                tracing::warn!(error = %format!("{e:#}"), "reconcile: background run failed");
            }
        }
    }

    /// The first org whose budget a run would exceed, if any.
    async fn over_budget(&self, last: Option<&Report>) -> Option<Org> {
        let object = &self.settings.sync.object;
        let records = match self.store.counts().await {
            Ok(counts) => counts.links.get(object).copied().unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "reconcile: cannot count the links");
                0
            }
        };
        let batch = &self.settings.batch;
        for (org, settings) in [(Org::A, &self.settings.a), (Org::B, &self.settings.b)] {
            let client = self.client(org);
            let calls = estimated_calls(
                last_calls(last, org),
                records,
                batch.bulk,
                batch.bulk_read_threshold,
            );
            let usage = client.api_usage();
            if !within_budget(usage, settings.api_budget_percent, calls) {
                let (used, max) = usage.unwrap_or_default();
                tracing::debug!(org = %org, used, max, estimated_calls = calls, "reconcile: over budget");
                return Some(org);
            }
        }
        None
    }

    /// One run: the read and the comparison stop on shutdown or demotion (`None`; the staged
    /// rows are dropped by the next run); a repair, once started, runs to its end (its pages
    /// commit as a cycle's do), through the store a pass writes through.
    async fn reconcile_now(&self, cancel: &CancellationToken) -> anyhow::Result<Option<Report>> {
        let settings = &self.settings;
        let stop = cancel.child_token();
        let watcher = self
            .role_watch()
            .map(|role| tokio::spawn(cancel_on_demotion(role, stop.clone())));
        let clients = [&self.a, &self.b];
        let run = reconcile::reconcile(
            settings,
            &self.mapping,
            &self.store,
            clients,
            reconcile::DEFAULT_SAMPLE,
            settings.reconcile.repair,
            false,
        );
        let found = tokio::select! {
            _ = stop.cancelled() => None,
            found = run => Some(found),
        };
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        let Some(found) = found else { return Ok(None) };
        let (report, found) = found?;
        let Some(store) = self.pass_store() else {
            return Ok(None);
        };
        let report =
            reconcile::repair_and_keep(settings, &self.mapping, &store, clients, report, found)
                .await?;
        Ok(Some(report))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(sec: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + sec, 0).unwrap()
    }

    #[test]
    fn a_run_is_due_a_frequency_after_the_last_report() {
        let day = Duration::from_secs(86_400);
        assert!(is_due(at(0), None, day));
        assert!(!is_due(at(10), Some(at(0)), day));
        assert!(!is_due(at(86_399), Some(at(0)), day));
        assert!(is_due(at(86_400), Some(at(0)), day));
        // A report from the future (a clock moved back) is not due before its time either.
        assert!(!is_due(at(0), Some(at(5)), Duration::from_secs(1)));
        // A frequency past chrono's range is never due again.
        assert!(!is_due(at(10), Some(at(0)), Duration::MAX));
    }

    #[test]
    fn the_worker_looks_at_most_a_minute_apart() {
        assert_eq!(check_period(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(check_period(Duration::from_secs(86_400)), MAX_CHECK_PERIOD);
        assert_eq!(check_period(Duration::ZERO), Duration::from_millis(100));
    }

    #[test]
    fn a_run_is_estimated_from_the_last_one_or_from_the_links() {
        assert_eq!(
            estimated_calls(Some(8), 1_000_000, BulkMode::Auto, 10_000),
            8
        );
        assert_eq!(estimated_calls(Some(0), 0, BulkMode::Auto, 10_000), 1);
        assert_eq!(estimated_calls(None, 0, BulkMode::Auto, 10_000), 1);
        assert_eq!(estimated_calls(None, 4_001, BulkMode::Auto, 10_000), 3);
        assert_eq!(estimated_calls(None, 4_001, BulkMode::Never, 1_000), 3);
        // Bulk: 1 page, 1 describe, 1 create, 1 poll, 1 delete and the results pages of
        // `sync::MAX_RECORDS` rows.
        let pages = |n: u64| n.div_ceil(u64::from(crate::sync::MAX_RECORDS));
        assert_eq!(
            estimated_calls(None, 20_000, BulkMode::Auto, 10_000),
            5 + pages(20_000)
        );
        assert_eq!(
            estimated_calls(None, 1_000_000, BulkMode::Auto, 10_000),
            5 + pages(1_000_000)
        );
        assert!(estimated_calls(None, 1_000_000, BulkMode::Auto, 10_000) < 20);
    }

    #[test]
    fn the_budget_must_cover_the_run() {
        assert!(within_budget(None, 80, 1_000));
        assert!(within_budget(Some((70, 100)), 80, 10));
        assert!(!within_budget(Some((70, 100)), 80, 11));
        assert!(within_budget(Some((0, 0)), 80, 5));
        // 100 %: the org's own limit.
        assert!(within_budget(Some((95, 100)), 100, 5));
        assert!(!within_budget(Some((95, 100)), 100, 6));
    }

    #[test]
    fn the_last_reports_read_gives_each_orgs_cost() {
        let report: Report = serde_json::from_value(serde_json::json!({
            "run_id": "r", "object": "Opportunity", "started_at": "s", "finished_at": "f",
            "read": {"a": {"records": 5, "path": "rest", "api_calls": 3},
                     "b": {"records": 5, "path": "bulk", "api_calls": 9}},
            "compared_pairs": 5, "differences": {}, "total": 0
        }))
        .unwrap();
        assert_eq!(last_calls(Some(&report), Org::A), Some(3));
        assert_eq!(last_calls(Some(&report), Org::B), Some(9));
        assert_eq!(last_calls(None, Org::B), None);
    }
}
