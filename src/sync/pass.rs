//! The direction pass of DESIGN §3, orchestration only: read the source's changes since the
//! watermark in pages, decide per row with the pure functions of `plan`, write the target
//! through collections, and record every row's outcome together with the page's watermark
//! in one store transaction. The same page pipeline serves the failure-queue retries, the
//! inbox drain (records fetched fresh by id) and source records known deleted by id
//! ([`Pass::apply_source_deletes`]); none of them moves the watermark.
//!
//! A page travels as one [`RowState`] per source row, which each stage fills in, in order:
//! rows (dedup, parent tokens, links and failure-queue entries: `rows`, `parents`), triage
//! (`plan::triage`), one lookup and the candidates (`matching`), the turn at the gate
//! (`gate`), the plan and the writes it asks for (`matching::decide`, `rows::write_of`),
//! undeletes (`undelete`: targets of tombstoned pairs restored, their writes decided anew),
//! parents (`parents`), writes (`write`), deletes (`deletes`: target deletes, restored
//! sources, the mass-delete breaker), commit (`commit`), report (`report`). Where pages
//! come from is `feeds` (watermark query, failure queue) and `drain` (inbox).
//!
//! Pages of the watermark query overlap (`batch.in_flight` Salesforce calls at once, reads
//! running ahead of the pages): each page reads its links, triages and looks up its targets
//! on its own; from the decision on, pages take turns in page order ([`PageGate`]) so that
//! every page sees the targets earlier pages claimed, exactly as one page at a time would; and
//! pages commit in page order, so the watermark never passes a page that is not durable.
//!
//! API calls per page: at most one lookup query (linked rows by `Id`, unlinked rows by match
//! key, OR-ed into one query; more only if the lookup itself pages), one collections call per
//! 200 creates, one per 200 updates and one per 200 deletes (a delete conflict kept by
//! `keep_edit`: one undelete and one update of the source per 200; rows restored from the
//! recycle bin: one undelete of their targets per 200 and at most one query by id, before
//! their writes). Rows the triage settles
//! (replays, echoes, queued records, deleted rows without a live link) cost nothing. With `account.sync_policy = "syncAccount"`, parents cost at most one
//! Account query by Name (only for parents without a stored Account link) and one Account
//! create per 200 missing parents, per page.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::accounts::{ACCOUNT_OBJECT, AccountMode, parent_select_fields};
use super::drain::Rejected;
use super::errors::{PassError, Stop};
use super::gate::{PageGate, pages_one_at_a_time, turn_for};
use super::mapping::Mapping;
use super::matching::{self, Keys};
pub use super::pass_config::PassConfig;
use super::plan::{
    Action, Decision, LinkView, Policy, QueuedFailure, SkipReason, SourceRow, Triage, Winner,
    triage,
};
use super::ports::{OrgPort, PortError, StorePort};
use super::report::{PassOutcome, PassReport};
use super::rows::{
    RowOutcome, RowState, dedup_latest, link_view, parse_source_row, parse_target_row,
    reverse_target, rewrite_parent_snapshot, side_id, write_of,
};
use crate::events::record::{Conflict, RecordLinked, RecordSkipped};
use crate::metrics::Metrics;
use crate::store::{FailureClass, Link, LinkState, Org, StoreError};

/// Records per sObject Collections call (Salesforce's limit).
pub(super) const COLLECTION_LIMIT: usize = 200;

/// Which pipeline a page goes through.
#[derive(Debug, Clone)]
pub(super) enum PipelineMode {
    /// The watermark query: the failure-queue rule applies, the watermark moves.
    Changes,
    /// Failure retries: rows fetched fresh; `missing` ids no longer exist in the source;
    /// `rejected` ids the source refuses to be queried by (failed again, for an operator).
    Retry {
        missing: Vec<String>,
        rejected: Vec<Rejected>,
    },
    /// Inbox drain: these inbox items are processed with the page; the `rejected` ids (ones
    /// the source refuses to be queried by) go to the failure queue.
    Inbox {
        item_ids: Vec<i64>,
        rejected: Vec<Rejected>,
    },
    /// Source records known deleted by id ([`Pass::apply_source_deletes`]): the delete path
    /// and the breaker, no watermark.
    Deletes,
}

/// A page on its way through the pipeline, up to its commit.
pub(super) struct Page {
    /// The page's place in its pipeline.
    pub index: usize,
    /// One state per source row (deduplicated), in read order.
    pub rows: Vec<RowState>,
    pub mode: PipelineMode,
    /// The page's highest SystemModstamp (the watermark it commits, for the watermark query).
    pub page_max: Option<DateTime<Utc>>,
    /// The page's counts, added to the pass's report when the page commits.
    pub counts: PassReport,
    /// New parent-account links.
    pub account_links: Vec<crate::store::LinkWrite>,
    /// Stale parent-account links to drop: (source account id, target account id).
    pub stale_account_links: Vec<(String, String)>,
    /// Bulk read: the staged rows this page's transaction deletes (`bulk_read`).
    pub staged: Option<super::bulk_read::StagedIds>,
    /// A Bulk pass (`bulk_pass`): the read job whose planned writes this page records (its
    /// rows' deferred writes) or settles (`pending_done`); the watermark then moves only at
    /// the pass's end.
    pub pending_job: Option<String>,
    /// The planned writes whose outcomes this page records (deleted with its commit).
    pub pending_done: Vec<u64>,
}

/// One direction pass over its ports.
pub struct Pass<'p, S, T, St> {
    pub(super) config: &'p PassConfig,
    pub(super) mapping: &'p Mapping,
    pub(super) source: &'p S,
    pub(super) target: &'p T,
    pub(super) store: &'p St,
    /// Where the per-record events count (the daemon's, or a test's own).
    pub(super) metrics: &'p Metrics,
    /// Salesforce calls made so far (every part of the pass).
    calls: AtomicU64,
    /// `batch.in_flight` permits: one per Salesforce call in flight.
    permits: Semaphore,
    /// `batch.bulk*` (`bulk_read`); REST only unless [`Pass::with_bulk`] says otherwise.
    pub(super) bulk: super::bulk_read::BulkConfig,
    /// Whether this pass writes through Bulk (`bulk_write`), decided from its backlog.
    bulk_writes: std::sync::atomic::AtomicBool,
    /// The pass's cancellation, for the waits of Bulk ingest jobs (set by the watermark read).
    pub(super) bulk_cancel: std::sync::OnceLock<CancellationToken>,
    /// A Bulk pass planning (`bulk_pass`): its pages defer their writes.
    pub(super) deferral: std::sync::Mutex<Option<std::sync::Arc<super::bulk_pass::Deferral>>>,
    /// The mass-delete breaker of the part of the pass running now (the watermark query, or
    /// a batch of known deletes): whether its deletes are held, or still to be counted.
    pub(super) breaker: tokio::sync::Mutex<Breaker>,
}

/// The mass-delete breaker's state for the part of a pass running now.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Breaker {
    /// Deletes are applied.
    Closed,
    /// Deletes are held (`DELETE_HELD`).
    Tripped,
    /// The first batch did not settle it: the first page with a delete counts the deleted
    /// rows of this query (one count query), before any delete call.
    Uncounted(super::ports::RecordQuery),
}

impl<'p, S, T, St> Pass<'p, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    pub fn new(
        config: &'p PassConfig,
        mapping: &'p Mapping,
        source: &'p S,
        target: &'p T,
        store: &'p St,
        metrics: &'p Metrics,
    ) -> Self {
        Pass {
            config,
            mapping,
            source,
            target,
            store,
            metrics,
            calls: AtomicU64::new(0),
            permits: Semaphore::new(config.in_flight.max(1)),
            breaker: tokio::sync::Mutex::new(Breaker::Closed),
            bulk: super::bulk_read::BulkConfig::never(),
            bulk_writes: std::sync::atomic::AtomicBool::new(false),
            bulk_cancel: std::sync::OnceLock::new(),
            deferral: std::sync::Mutex::new(None),
        }
    }

    /// Whether this pass writes through Bulk (`bulk_write`).
    pub(super) fn bulk_writes(&self) -> bool {
        self.bulk_writes.load(Ordering::Relaxed)
    }

    /// Decides, from the pass's backlog, whether it writes through Bulk.
    pub(super) fn set_bulk_writes(&self, backlog: Option<u64>) {
        let on = super::bulk_write::write_through_bulk(&self.bulk, backlog);
        self.bulk_writes.store(on, Ordering::Relaxed);
    }

    /// The pass with Bulk API 2.0 settings (`batch.bulk*`; see `bulk_read`).
    pub fn with_bulk(mut self, bulk: super::bulk_read::BulkConfig) -> Self {
        self.bulk = bulk;
        self
    }

    /// Makes one Salesforce call, counted, when a `batch.in_flight` permit is free.
    pub(super) async fn call<F: Future>(&self, call: F) -> F::Output {
        // The semaphore is never closed; without a permit the call would still be bounded
        // by the pages in flight.
        let _permit = self.permits.acquire().await.ok();
        self.calls.fetch_add(1, Ordering::Relaxed);
        call.await
    }

    pub(super) fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(super) fn source_org(&self) -> Org {
        self.config.direction.source()
    }

    pub(super) fn target_org(&self) -> Org {
        self.config.direction.target()
    }

    /// The whole direction: the watermark query, then due failure retries, then the inbox.
    pub async fn run(&self, cancel: &CancellationToken) -> Result<PassReport, PassError> {
        let mut report = self.sync_changes(cancel).await?;
        if report.outcome == PassOutcome::Completed {
            report.absorb(self.retry_failures(cancel).await?);
        }
        if report.outcome == PassOutcome::Completed {
            report.absorb(self.drain_inbox(cancel).await?);
        }
        // The summary line is the shell's (daemon::run_pass), for every kind of pass.
        Ok(report)
    }

    pub(super) fn paused(&self, org: Org, e: PortError) -> PassOutcome {
        // At debug: the client logs the pause once when it begins and once when it ends;
        // a line per pass would repeat it every cycle for as long as the pause lasts.
        tracing::debug!(
            cycle = self.config.cycle,
            direction = %self.config.direction,
            org = %org,
            code = %e.code,
            "API limit reached: pass paused, nothing recorded for the page in flight; resuming next cycle"
        );
        PassOutcome::Paused { org, error: e }
    }

    pub(super) fn source_fields(&self) -> Vec<String> {
        let mut fields = self.mapping.field_names(self.source_org());
        for extra in parent_select_fields(&self.config.account) {
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(&extra)) {
                fields.push(extra);
            }
        }
        fields
    }

    pub(super) fn target_fields(&self) -> Vec<String> {
        let mut fields = self.mapping.field_names(self.target_org());
        // The target parent's id: its canonical value (see `parent_token`).
        if matches!(self.config.account, AccountMode::SyncByName { .. }) {
            let id = format!("{ACCOUNT_OBJECT}.Id");
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(&id)) {
                fields.push(id);
            }
        }
        if let Some(ext) = &self.config.external_id_field
            && !fields.iter().any(|f| f.eq_ignore_ascii_case(ext))
        {
            fields.push(ext.clone());
        }
        fields
    }

    pub(super) fn parse_source(&self, record: &Map<String, Value>) -> Result<SourceRow, PassError> {
        parse_source_row(self.source_org(), self.mapping, record).map_err(|message| {
            PassError::BadRow {
                org: self.source_org(),
                message,
            }
        })
    }

    /// The page pipeline as one page on its own, then its transaction.
    pub(super) async fn process_page(
        &self,
        rows: Vec<SourceRow>,
        mode: PipelineMode,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let page = self.run_page(rows, mode, 0, &PageGate::new()).await?;
        self.commit_page(*page, report).await?;
        Ok(())
    }

    /// The page pipeline up to the commit: rows, triage, one lookup, plan, parents, writes.
    /// Page `index` of the pages sharing `gate` decides after the pages before it (see
    /// [`PageGate`]).
    pub(super) async fn run_page(
        &self,
        rows: Vec<SourceRow>,
        mode: PipelineMode,
        index: usize,
        gate: &PageGate,
    ) -> Result<Box<Page>, Stop> {
        let cfg = self.config;
        if pages_one_at_a_time(&cfg.account) {
            gate.wait_committed(index).await;
        }
        let mut counts = PassReport::default();
        let page_max = rows.iter().map(|r| r.system_modstamp).max();

        // Rows: one per id, parent tokens, links and failure-queue entries.
        let mut rows = dedup_latest(rows);
        self.source_parent_tokens(&mut rows).await?;
        counts.read += rows.len() as u64;
        let mut rows = self.row_states(rows).await?;

        // Triage.
        for state in rows.iter_mut() {
            self.triage_row(state, &mode, &mut counts)?;
        }

        // One lookup in the target for the rows that need it; candidates for the unlinked.
        self.look_up(&mut rows).await?;

        // From here on, pages take their turn: targets that earlier pages of the pass link,
        // update or create are theirs, though not yet in the store.
        gate.wait_turn(index, turn_for(matching::has_candidates(&rows)))
            .await;
        matching::drop_candidates(&mut rows, |id| gate.is_claimed(id));
        let candidate_ids = matching::candidate_ids(&rows);
        if !candidate_ids.is_empty() {
            let tgt = self.target_org();
            let linked: HashSet<String> = self
                .store
                .links_by_ids(tgt, &cfg.object, &candidate_ids)
                .await?
                .iter()
                .filter(|l| l.is_live())
                .map(|l| side_id(l, tgt).to_string())
                .collect();
            matching::drop_candidates(&mut rows, |id| linked.contains(id));
        }

        // Plan the looked-up rows (with the page-level rule), and what each decision asks.
        let policy = Policy {
            direction: cfg.direction,
            conflict: cfg.conflict,
            delete_conflict: cfg.deletes.conflict,
        };
        matching::decide(&mut rows, &policy, self.mapping);
        for state in rows.iter_mut() {
            self.settle_decision(state, &mut counts);
        }
        // Undeletes: restore the targets, then each row's write as decided anew.
        self.undelete_page(&mut rows, &policy, &mut counts).await?;
        gate.claim(
            index,
            rows.iter()
                .filter_map(|s| s.decision.as_ref().and_then(Decision::target_id)),
        );
        gate.decided(index);

        // Parent accounts of the writes: one lookup (and creates of missing ones) per page.
        let (account_links, merged_away) = self.resolve_accounts(&mut rows).await?;

        // Writes, then the delete stage (target deletes, restored sources).
        self.write_page(&mut rows, &mut counts).await?;
        self.delete_page(&mut rows, &mode, &mut counts).await?;
        gate.claim(
            index,
            rows.iter().filter_map(|s| match &s.outcome {
                RowOutcome::Linked { target_id, .. } => Some(target_id.as_str()),
                _ => None,
            }),
        );
        gate.written(index);

        let mut stale_account_links = self.stale_account_links(&mut rows);
        stale_account_links.extend(merged_away);
        for state in rows.iter_mut() {
            rewrite_parent_snapshot(self.source_org(), state);
        }
        Ok(Box::new(Page {
            index,
            rows,
            mode,
            page_max,
            counts,
            account_links,
            stale_account_links,
            staged: None,
            pending_job: None,
            pending_done: Vec::new(),
        }))
    }

    /// The rows' states: each with its stored live link (one store query for the page), the
    /// records it must never be matched with (its unlinked and tombstoned pairs, from the same
    /// query) and its failure-queue entry (one more).
    async fn row_states(&self, rows: Vec<SourceRow>) -> Result<Vec<RowState>, Stop> {
        let cfg = self.config;
        let src = self.source_org();
        let tgt = self.target_org();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut links: HashMap<String, Link> = HashMap::new();
        let mut barred: HashMap<String, Vec<String>> = HashMap::new();
        let mut tombstones: HashMap<String, Link> = HashMap::new();
        for l in self.store.links_by_ids(src, &cfg.object, &ids).await? {
            let id = side_id(&l, src).to_string();
            if l.is_live() {
                links.insert(id, l);
            } else {
                if l.state == LinkState::Tombstone
                    && tombstones
                        .get(&id)
                        .is_none_or(|t| t.deleted_at < l.deleted_at)
                {
                    tombstones.insert(id.clone(), l.clone());
                }
                barred
                    .entry(id)
                    .or_default()
                    .push(side_id(&l, tgt).to_string());
            }
        }
        let mut failures: HashMap<String, QueuedFailure> = self
            .store
            .failures_for(cfg.direction, &cfg.object, &ids)
            .await?
            .into_iter()
            .map(|f| {
                (
                    f.source_id,
                    QueuedFailure {
                        source_modstamp: f.source_modstamp,
                    },
                )
            })
            .collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let live = links.remove(&row.id);
                let link_id = live.as_ref().map(|l| l.id);
                let link = live.map(|l| link_view(&l, src));
                let queued = failures.remove(&row.id);
                let barred = barred.remove(&row.id).unwrap_or_default();
                let tombstone = match link {
                    Some(_) => None,
                    None => tombstones
                        .remove(&row.id)
                        .map(|l| (l.id, link_view(&l, src))),
                };
                RowState::new(row, link, queued)
                    .never_matched_with(barred)
                    .with_tombstone(tombstone)
                    .with_link_id(link_id)
            })
            .collect())
    }

    /// The lookup-free first decision: replays, queued records and echoes are settled here.
    fn triage_row(
        &self,
        state: &mut RowState,
        mode: &PipelineMode,
        counts: &mut PassReport,
    ) -> Result<(), Stop> {
        // A retried row is the queue's own: the failure-queue rule does not hold it back.
        let queued = match mode {
            PipelineMode::Retry { .. } => None,
            _ => state.queued.as_ref(),
        };
        // A retried delete (a held one, after `failures retry`) is decided again although
        // its link records its version (see `deletes`): applying it twice is harmless.
        let retried_delete = state.row.deleted && matches!(mode, PipelineMode::Retry { .. });
        let unseen;
        let link = match &state.link {
            Some(l) if retried_delete => {
                unseen = LinkView {
                    source_modstamp: None,
                    ..l.clone()
                };
                Some(&unseen)
            }
            other => other.as_ref(),
        };
        let verdict = triage(&state.row, link, queued, self.mapping);
        state.triage = Some(verdict);
        let target_id = state.linked_target();
        match verdict {
            Triage::Drop => {
                self.log_skip(&state.row, target_id, SkipReason::Replay);
                counts.skipped += 1;
            }
            Triage::LeaveToQueue => {
                self.log_skip(&state.row, target_id, SkipReason::Queued);
                counts.skipped += 1;
            }
            Triage::Echo => {
                let view = state
                    .link
                    .as_ref()
                    .ok_or_else(|| StoreError::Corrupt("an echo without a link".to_string()))?;
                self.log_skip(&state.row, Some(&view.target_id), SkipReason::Echo);
                counts.skipped += 1;
                state.outcome = RowOutcome::Linked {
                    target_id: view.target_id.clone(),
                    snapshot: view.snapshot.clone().unwrap_or_default(),
                };
            }
            Triage::Gone => {
                self.log_skip(&state.row, None, SkipReason::Gone);
                counts.skipped += 1;
            }
            Triage::Lookup => {}
        }
        Ok(())
    }

    /// The page's one lookup query in the target (when some row needs it), parsed, each
    /// looked-up row given what it found.
    async fn look_up(&self, rows: &mut [RowState]) -> Result<(), Stop> {
        if !rows.iter().any(RowState::looked_up) {
            return Ok(());
        }
        let cfg = self.config;
        let tgt = self.target_org();
        let keys = self.keys();
        let records = match self.deferral().filter(|d| d.targets) {
            // A Bulk pass: from the target's records staged for the pass (`bulk_pass`).
            Some(deferral) => self.staged_lookup(&deferral, rows).await?,
            None => {
                let query = matching::lookup_query(
                    keys,
                    self.mapping,
                    tgt,
                    self.target_fields(),
                    rows.iter().filter(|s| s.looked_up()),
                );
                self.query_all(self.target, tgt, &query).await?
            }
        };
        let mut parsed = Vec::with_capacity(records.len());
        for record in &records {
            let row = parse_target_row(tgt, self.mapping, cfg.external_id_field.as_deref(), record)
                .map_err(|message| PassError::BadRow { org: tgt, message })?;
            parsed.push(row);
        }
        self.target_parent_tokens(&records, &mut parsed).await?;
        let targets = parsed
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        matching::attach(keys, rows, &targets);
        Ok(())
    }

    /// What a row's decision asks for: its write, or its outcome (linked without a write,
    /// skipped, failed), and the reverse carry; with its log line and counts.
    pub(super) fn settle_decision(&self, state: &mut RowState, counts: &mut PassReport) {
        let cfg = self.config;
        let Some(decision) = &state.decision else {
            return;
        };
        let row = &state.row;
        self.log_conflicts(row, decision);
        counts.conflicts += decision.conflicts.len() as u64;
        let ext = cfg.external_id_field.as_deref();
        state.write = write_of(decision, row, self.mapping, self.target_org(), ext);
        match &decision.action {
            Action::Create { .. } | Action::Update { .. } => {}
            Action::Delete { .. }
            | Action::Tombstone { .. }
            | Action::Restore { .. }
            | Action::Undelete { .. } => {
                let decision = decision.clone();
                self.settle_delete(state, &decision, counts);
                return;
            }
            Action::Link { target_id } => {
                counts.linked += 1;
                RecordLinked {
                    cycle: cfg.cycle,
                    direction: cfg.direction,
                    source_id: &row.id,
                    target_id,
                }
                .emit(self.metrics);
                state.outcome = RowOutcome::Linked {
                    target_id: target_id.clone(),
                    snapshot: decision.snapshot.clone().unwrap_or_default(),
                };
            }
            Action::Skip(reason) => {
                counts.skipped += 1;
                let target_id = state.linked_target().unwrap_or_default().to_string();
                self.log_skip(row, Some(&target_id), *reason);
                state.outcome = RowOutcome::Linked {
                    target_id,
                    snapshot: decision.snapshot.clone().unwrap_or_default(),
                };
            }
            Action::Fail { code, message } => {
                state.outcome = RowOutcome::Failed {
                    target_id: state.linked_target().map(str::to_string),
                    code: code.as_str().to_string(),
                    message: message.clone(),
                    class: FailureClass::of_code(code.as_str()),
                    sent: None,
                };
            }
        }
        state.reverse = reverse_target(decision, state.link.as_ref());
    }

    /// What matching needs of the configuration.
    fn keys(&self) -> Keys<'_> {
        Keys {
            object: &self.config.object,
            match_by: &self.config.match_by,
            external_id_field: self.config.external_id_field.as_deref(),
        }
    }

    fn log_skip(&self, row: &SourceRow, target_id: Option<&str>, reason: SkipReason) {
        RecordSkipped {
            cycle: self.config.cycle,
            direction: self.config.direction,
            source_id: &row.id,
            target_id,
            reason: reason.as_str(),
        }
        .emit(self.metrics);
    }

    fn log_conflicts(&self, row: &SourceRow, decision: &Decision) {
        for c in &decision.conflicts {
            let source_value = c.source_value.clone().unwrap_or_default().to_string();
            let target_value = c.target_value.clone().unwrap_or_default().to_string();
            Conflict {
                cycle: self.config.cycle,
                direction: self.config.direction,
                source_id: &row.id,
                target_id: decision.target_id().unwrap_or(""),
                field: &c.field,
                source_value: &source_value,
                target_value: &target_value,
                source_last_modified: c.source_last_modified,
                target_last_modified: c.target_last_modified,
                winner: match c.winner {
                    Winner::Source => "source",
                    Winner::Target => "target",
                },
                policy: &self.config.conflict,
            }
            .emit(self.metrics);
        }
    }
}

#[cfg(test)]
#[path = "pass_tests.rs"]
mod tests;
