//! The direction pass of DESIGN §3: read the source's changes since the watermark in pages,
//! decide per row with the pure functions of `plan`, write the target through collections, and
//! record every row's outcome together with the page's watermark in one store transaction.
//! The same page pipeline serves the failure-queue retries and the inbox drain (records
//! fetched fresh by id; neither moves the watermark; the child module `drain` holds the drain
//! and the fetch by id, which isolates the ids a source refuses).
//!
//! Pages of the watermark query overlap (`batch.in_flight` Salesforce calls at once, reads
//! running ahead of the pages): each page reads its links, triages and looks up its targets
//! on its own; from the decision on, pages take turns in page order ([`PageGate`]) so that
//! every page sees the targets earlier pages claimed, exactly as one page at a time would; and
//! pages commit in page order, so the watermark never passes a page that is not durable.
//!
//! API calls per page: at most one lookup query (linked rows by `Id`, unlinked rows by match
//! key, OR-ed into one query; more only if the lookup itself pages), one collections call per
//! 200 creates and one per 200 updates. Rows the triage settles (replays, echoes, queued
//! records) cost nothing. With `account.sync_policy = "syncAccount"`, parents cost at most one
//! Account query by Name (only for parents without a stored Account link) and one Account
//! create per 200 missing parents, per page.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::accounts::{
    ACCOUNT_ID_FIELD, ACCOUNT_NAME_PATH, ACCOUNT_OBJECT, AMBIGUOUS_ACCOUNT, AccountMode, ParentKey,
    ParentPlan, account_body, is_missing_reference, parent_name, parent_select_fields,
    parent_token, plan_parents, unlinked_names,
};
use super::errors::AtOrg;
pub use super::errors::{PassError, Stop};
use super::mapping::{Mapping, from_snapshot, lookup, same_value, to_snapshot};
use super::plan::{
    Action, Decision, LinkView, PageItem, Policy, QueuedFailure, SkipReason, SourceRow, Target,
    TargetRow, Triage, Winner, plan_page, triage,
};
use super::ports::{
    Batch, FieldIn, OrgPort, PageTxPort, PortError, QueryKind, RecordError, RecordQuery, StorePort,
    WriteOutcome,
};
use crate::config::{AccountPolicy, ConflictPolicy, Settings};
use crate::store::{
    CycleCounts, CycleOutcome, Direction, FailureBackoff, FailureClass, Link, LinkWrite,
    NewFailure, NewNotification, Org, StoreError,
};

#[path = "drain.rs"]
mod drain;
use drain::Rejected;

/// Records per sObject Collections call (Salesforce's limit).
const COLLECTION_LIMIT: usize = 200;

/// Everything a pass needs to know besides its ports.
#[derive(Debug, Clone)]
pub struct PassConfig {
    /// Cycle number, carried on every log line.
    pub cycle: u64,
    pub direction: Direction,
    /// `sync.object`.
    pub object: String,
    pub conflict: ConflictPolicy,
    /// `sync.match_by`, canonical (A) names.
    pub match_by: Vec<String>,
    /// `sync.external_id_field`: same name in both orgs; holds the other org's record id.
    pub external_id_field: Option<String>,
    /// Rows per page (one store transaction each).
    pub page_size: usize,
    /// Salesforce calls in flight at once (`batch.in_flight`, at least 1): pages of the
    /// watermark query overlap up to this many, and the reads run ahead of them.
    pub in_flight: usize,
    /// Re-read window behind the watermark.
    pub lookback: Duration,
    /// Start of the first read when no watermark is stored.
    pub default_watermark: DateTime<Utc>,
    /// `sync.filter`, applied to the watermark query.
    pub filter: Option<String>,
    /// The source org's integration user.
    pub integration_user_id: Option<String>,
    /// Leave out rows last modified by the integration user (default on). Off for orgs where
    /// people share that user; the snapshot comparison then recognises our own writes.
    pub skip_integration_user_changes: bool,
    /// How failed records are retried (`sync.max_attempts`, `sync.retry_*_delay`).
    pub backoff: FailureBackoff,
    /// Parent accounts (`account.sync_policy`).
    pub account: AccountMode,
}

impl PassConfig {
    /// The pass of `direction` as configured in `settings`; `integration_user_id` is the
    /// source org's (configured or learned at login).
    pub fn from_settings(
        settings: &Settings,
        direction: Direction,
        cycle: u64,
        integration_user_id: Option<String>,
    ) -> PassConfig {
        PassConfig {
            cycle,
            direction,
            object: settings.object.clone(),
            conflict: settings.conflict,
            match_by: settings.match_by.clone(),
            external_id_field: settings.external_id_field.clone(),
            page_size: settings.page_size.max(1),
            in_flight: settings.in_flight.max(1),
            lookback: settings.lookback,
            default_watermark: settings.watermark_default,
            filter: settings.filter.clone(),
            integration_user_id,
            skip_integration_user_changes: settings.skip_integration_user_changes,
            backoff: FailureBackoff::from_settings(settings),
            account: match settings.account_policy {
                AccountPolicy::None => AccountMode::None,
                AccountPolicy::Assign => {
                    let target = match direction.target() {
                        Org::A => &settings.a,
                        Org::B => &settings.b,
                    };
                    match &target.account_id {
                        Some(id) => AccountMode::Assign {
                            account_id: id.clone(),
                        },
                        None => AccountMode::None,
                    }
                }
                AccountPolicy::SyncAccount => AccountMode::SyncByName {
                    fields: settings.account_fields.clone(),
                },
            },
        }
    }
}

/// How a pass ended (when it did not fail).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PassOutcome {
    /// Every row read got a durable outcome.
    #[default]
    Completed,
    /// Stopped between pages on request; the pages done are committed.
    Cancelled,
    /// An org's API limit was reached: the page in flight recorded nothing and the watermark
    /// did not move past it; resume next cycle.
    Paused { org: Org, message: String },
}

/// What a pass did; the counts of the cycle log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PassReport {
    /// Rows read from the source (watermark query, retries and inbox).
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    /// Linked to an existing target record without writing it.
    pub linked: u64,
    /// Replays, echoes, unchanged and queued rows.
    pub skipped: u64,
    pub failed: u64,
    pub conflicts: u64,
    /// Target records queued to be carried back to the source.
    pub reversed: u64,
    /// Salesforce calls made (query batches, lookups, collections calls).
    pub api_calls: u64,
    /// Pages committed.
    pub pages: u64,
    /// The watermark after the pass, when a page moved it.
    pub watermark: Option<DateTime<Utc>>,
    pub outcome: PassOutcome,
}

impl PassReport {
    /// The counts as the store's `cycles` table keeps them.
    pub fn cycle_counts(&self) -> CycleCounts {
        CycleCounts {
            read: self.read,
            created: self.created,
            updated: self.updated,
            linked: self.linked,
            skipped: self.skipped,
            failed: self.failed,
            conflicts: self.conflicts,
            api_calls: self.api_calls,
        }
    }

    /// How the cycle ended, for the `cycles` table: `ok` when every record read got a
    /// durable outcome and none failed, `partial` when some went to the failure queue,
    /// `interrupted` when cancelled, `paused` by an API limit (with the reason).
    pub fn cycle_outcome(&self) -> (CycleOutcome, Option<String>) {
        match &self.outcome {
            PassOutcome::Completed if self.failed == 0 => (CycleOutcome::Ok, None),
            PassOutcome::Completed => (CycleOutcome::Partial, None),
            PassOutcome::Cancelled => (CycleOutcome::Interrupted, None),
            PassOutcome::Paused { org, message } => (
                CycleOutcome::Paused,
                Some(format!(
                    "paused: org {} is at its API limit ({message}); resuming next cycle",
                    org.as_str().to_ascii_uppercase()
                )),
            ),
        }
    }

    /// The `cycles` row of a pass that ran (`Ok`) or stopped with an error message (`Err`):
    /// its counts, outcome and error.
    pub fn cycle_record(
        result: &Result<PassReport, String>,
    ) -> (CycleCounts, CycleOutcome, Option<String>) {
        match result {
            Ok(report) => {
                let (outcome, error) = report.cycle_outcome();
                (report.cycle_counts(), outcome, error)
            }
            Err(message) => (
                CycleCounts::default(),
                CycleOutcome::Failed,
                Some(message.clone()),
            ),
        }
    }

    /// Adds another part of the same pass (retries, inbox) to this report.
    pub fn absorb(&mut self, other: PassReport) {
        self.read += other.read;
        self.created += other.created;
        self.updated += other.updated;
        self.linked += other.linked;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        self.reversed += other.reversed;
        self.api_calls += other.api_calls;
        self.pages += other.pages;
        self.watermark = self.watermark.max(other.watermark);
        if self.outcome == PassOutcome::Completed {
            self.outcome = other.outcome;
        }
    }
}

/// Which pipeline a page goes through.
#[derive(Debug, Clone)]
enum PipelineMode {
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
}

/// What a page's transaction records.
struct PageWork {
    /// The page's place in its pipeline.
    index: usize,
    rows: Vec<SourceRow>,
    page: PageOutcomes,
    failures: HashMap<String, QueuedFailure>,
    mode: PipelineMode,
    page_max: Option<DateTime<Utc>>,
    /// The page's counts, added to the pass's report when the page commits.
    counts: PassReport,
}

/// What a page waits for before it decides (see [`PageGate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Earlier pages have decided: the targets they link or update are claimed.
    Decided,
    /// Earlier pages have also written: the targets they created are claimed too. Needed when
    /// the page's lookup found candidates for unlinked rows, since a candidate may be a
    /// record an earlier page has just created.
    Written,
}

/// The turn a page waits for before deciding: [`Turn::Written`] when its lookup found a
/// candidate for some unlinked row, else [`Turn::Decided`].
fn turn_for(has_candidates: bool) -> Turn {
    if has_candidates {
        Turn::Written
    } else {
        Turn::Decided
    }
}

/// Whether pages must go one at a time from their start (after the previous page's commit):
/// with `syncAccount`, a page reads the parent-account links that earlier pages store.
fn pages_one_at_a_time(account: &AccountMode) -> bool {
    matches!(account, AccountMode::SyncByName { .. })
}

/// Progress of the pages in flight, in page order.
#[derive(Debug, Default)]
struct GateState {
    /// Pages `0..decided` have decided.
    decided: usize,
    /// Pages `0..committed` have committed.
    committed: usize,
    /// `written[i]`: page `i` has made its writes.
    written: Vec<bool>,
}

impl GateState {
    fn ready(&self, index: usize, turn: Turn) -> bool {
        self.decided >= index
            && match turn {
                Turn::Decided => true,
                Turn::Written => (0..index).all(|i| self.written.get(i).copied().unwrap_or(false)),
            }
    }
}

/// How the pages of one pipeline, in flight together, take turns: each decides after the
/// pages before it (and, when its lookup found candidates, after their writes), and no page
/// takes a target another page of the pass has claimed (linked, updated or created), which
/// the store does not show until that page commits.
struct PageGate {
    state: watch::Sender<GateState>,
    claims: Mutex<HashSet<String>>,
}

impl PageGate {
    fn new() -> PageGate {
        PageGate {
            state: watch::Sender::new(GateState::default()),
            claims: Mutex::new(HashSet::new()),
        }
    }

    async fn wait(&self, ready: impl FnMut(&GateState) -> bool) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as the gate: waiting cannot fail.
        let _ = rx.wait_for(ready).await;
    }

    async fn wait_turn(&self, index: usize, turn: Turn) {
        self.wait(|s| s.ready(index, turn)).await;
    }

    async fn wait_committed(&self, index: usize) {
        self.wait(|s| s.committed >= index).await;
    }

    fn decided(&self, index: usize) {
        self.state
            .send_modify(|s| s.decided = s.decided.max(index + 1));
    }

    fn written(&self, index: usize) {
        self.state.send_modify(|s| {
            if s.written.len() <= index {
                s.written.resize(index + 1, false);
            }
            s.written[index] = true;
        });
    }

    fn committed(&self, index: usize) {
        self.state
            .send_modify(|s| s.committed = s.committed.max(index + 1));
    }

    fn claim<'i>(&self, ids: impl IntoIterator<Item = &'i str>) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.extend(ids.into_iter().map(str::to_string));
    }

    fn is_claimed(&self, id: &str) -> bool {
        let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.contains(id)
    }
}

/// One direction pass over its ports.
pub struct Pass<'p, S, T, St> {
    config: &'p PassConfig,
    mapping: &'p Mapping,
    source: &'p S,
    target: &'p T,
    store: &'p St,
    /// Salesforce calls made so far (every part of the pass).
    calls: AtomicU64,
    /// `batch.in_flight` permits: one per Salesforce call in flight.
    permits: Semaphore,
}

/// A row's final outcome, recorded in the page transaction.
enum RowOutcome {
    /// Nothing to record.
    Nothing,
    /// Write the link (new or refreshed) with this snapshot.
    Linked {
        target_id: String,
        snapshot: BTreeMap<String, Value>,
    },
    /// Into the failure queue, with the body written to the target when there was a write.
    Failed {
        target_id: Option<String>,
        code: String,
        message: String,
        class: FailureClass,
        sent: Option<Map<String, Value>>,
    },
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
    ) -> Self {
        Pass {
            config,
            mapping,
            source,
            target,
            store,
            calls: AtomicU64::new(0),
            permits: Semaphore::new(config.in_flight.max(1)),
        }
    }

    /// Makes one Salesforce call, counted, when a `batch.in_flight` permit is free.
    async fn call<F: Future>(&self, call: F) -> F::Output {
        // The semaphore is never closed; without a permit the call would still be bounded
        // by the pages in flight.
        let _permit = self.permits.acquire().await.ok();
        self.calls.fetch_add(1, Ordering::Relaxed);
        call.await
    }

    fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn source_org(&self) -> Org {
        self.config.direction.source()
    }

    fn target_org(&self) -> Org {
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

    /// The watermark query, cursor-paged, in committed pages of `page_size` rows: up to
    /// `in_flight` pages overlap, the next batch is read while they are looked up and
    /// written, and they commit in page order.
    pub async fn sync_changes(&self, cancel: &CancellationToken) -> Result<PassReport, PassError> {
        let before = self.calls_made();
        let mut report = PassReport::default();
        let result = self.sync_changes_pages(cancel, &mut report).await;
        report.api_calls = self.calls_made() - before;
        self.settle(report, result)
    }

    /// A part of the pass that stopped: a pause becomes the report's outcome (the pages
    /// committed before it stay counted); a failure is the pass's error.
    fn settle(
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
        let first = self.call(self.source.query(&query)).await.at(org)?;

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
                    self.commit_work(*work, report).await?;
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
            let retry = |rows: &[SourceRow], rejected: Vec<Rejected>| {
                let found: HashSet<&str> = rows
                    .iter()
                    .map(|r| r.id.as_str())
                    .chain(rejected.iter().map(|r| r.id.as_str()))
                    .collect();
                let missing = ids
                    .iter()
                    .filter(|id| !found.contains(id.as_str()))
                    .cloned()
                    .collect();
                PipelineMode::Retry { missing, rejected }
            };
            self.process_fetched(&ids, retry, report).await?;
        }
    }

    fn paused(&self, org: Org, e: PortError) -> PassOutcome {
        // At debug: the client logs the pause once when it begins and once when it ends;
        // a line per pass would repeat it every cycle for as long as the pause lasts.
        tracing::debug!(
            cycle = self.config.cycle,
            direction = %self.config.direction,
            org = %org,
            code = %e.code,
            "API limit reached: pass paused, nothing recorded for the page in flight; resuming next cycle"
        );
        PassOutcome::Paused {
            org,
            message: e.to_string(),
        }
    }

    fn source_fields(&self) -> Vec<String> {
        let mut fields = self.mapping.field_names(self.source_org());
        for extra in parent_select_fields(&self.config.account) {
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(&extra)) {
                fields.push(extra);
            }
        }
        fields
    }

    fn target_fields(&self) -> Vec<String> {
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

    fn parse_source(&self, record: &Map<String, Value>) -> Result<SourceRow, PassError> {
        parse_source_row(self.source_org(), self.mapping, record).map_err(|message| {
            PassError::BadRow {
                org: self.source_org(),
                message,
            }
        })
    }

    async fn fetch_by_ids(&self, ids: &[String]) -> Result<Vec<SourceRow>, Stop> {
        let query = RecordQuery {
            object: self.config.object.clone(),
            fields: self.source_fields(),
            kind: QueryKind::ByIds(ids.to_vec()),
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
    async fn query_all<O: OrgPort>(
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

    /// The page pipeline: triage, one lookup, plan, writes, one transaction. The counts of a
    /// page that did not commit are not reported (only the API calls it spent).
    async fn process_page(
        &self,
        rows: Vec<SourceRow>,
        mode: PipelineMode,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let work = self.run_page(rows, mode, 0, &PageGate::new()).await?;
        self.commit_work(*work, report).await?;
        Ok(())
    }

    /// Records a page's outcomes in its transaction, then adds its counts to `report`. The
    /// counts of a page that did not commit are not reported (only the calls it made).
    async fn commit_work(&self, work: PageWork, report: &mut PassReport) -> Result<(), PassError> {
        let PageWork {
            rows,
            page,
            failures,
            mode,
            page_max,
            mut counts,
            ..
        } = work;
        self.commit_page(&rows, page, &failures, &mode, page_max, &mut counts)
            .await?;
        report.absorb(counts);
        Ok(())
    }

    /// The page pipeline up to the commit: triage, one lookup, plan, writes. Page `index` of
    /// the pages sharing `gate` decides after the pages before it (see [`PageGate`]).
    async fn run_page(
        &self,
        rows: Vec<SourceRow>,
        mode: PipelineMode,
        index: usize,
        gate: &PageGate,
    ) -> Result<Box<PageWork>, Stop> {
        let cfg = self.config;
        let (src, tgt) = (self.source_org(), self.target_org());
        let policy = Policy {
            direction: cfg.direction,
            conflict: cfg.conflict,
        };
        if pages_one_at_a_time(&cfg.account) {
            gate.wait_committed(index).await;
        }
        let mut counts = PassReport::default();
        let report = &mut counts;
        let page_max = rows.iter().map(|r| r.system_modstamp).max();
        let mut rows = dedup_latest(rows);
        self.source_parent_tokens(&mut rows).await?;
        report.read += rows.len() as u64;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();

        let links: HashMap<String, Link> = self
            .store
            .links_by_ids(src, &cfg.object, &ids)
            .await?
            .into_iter()
            .map(|l| (side_id(&l, src).to_string(), l))
            .collect();
        let failures: HashMap<String, QueuedFailure> = self
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
        let views: HashMap<&str, LinkView> = links
            .iter()
            .map(|(id, l)| (id.as_str(), link_view(l, src)))
            .collect();

        // 1. Triage.
        let mut outcomes: Vec<RowOutcome> = Vec::with_capacity(rows.len());
        let mut reverse: Vec<(usize, String)> = Vec::new();
        let mut needs_lookup: Vec<usize> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let view = views.get(row.id.as_str());
            let queued = match mode {
                PipelineMode::Retry { .. } => None,
                _ => failures.get(&row.id),
            };
            let outcome = match triage(row, view, queued, self.mapping) {
                Triage::Drop => {
                    self.log_skip(row, view.map(|v| v.target_id.as_str()), SkipReason::Replay);
                    report.skipped += 1;
                    RowOutcome::Nothing
                }
                Triage::LeaveToQueue => {
                    self.log_skip(row, view.map(|v| v.target_id.as_str()), SkipReason::Queued);
                    report.skipped += 1;
                    RowOutcome::Nothing
                }
                Triage::Echo => {
                    let view = view.ok_or_else(|| {
                        PassError::Store(StoreError::Corrupt("an echo without a link".to_string()))
                    })?;
                    self.log_skip(row, Some(&view.target_id), SkipReason::Echo);
                    report.skipped += 1;
                    RowOutcome::Linked {
                        target_id: view.target_id.clone(),
                        snapshot: view.snapshot.clone().unwrap_or_default(),
                    }
                }
                Triage::Lookup => {
                    needs_lookup.push(i);
                    RowOutcome::Nothing
                }
            };
            outcomes.push(outcome);
        }

        // 2. One lookup in the target for the rows that need it.
        let mut targets: HashMap<String, TargetRow> = HashMap::new();
        if !needs_lookup.is_empty() {
            let query = self.lookup_query(&rows, &needs_lookup, &views);
            let records = self.query_all(self.target, tgt, &query).await?;
            let mut parsed = Vec::with_capacity(records.len());
            for record in &records {
                let row =
                    parse_target_row(tgt, self.mapping, cfg.external_id_field.as_deref(), record)
                        .map_err(|message| PassError::BadRow { org: tgt, message })?;
                parsed.push(row);
            }
            self.target_parent_tokens(&records, &mut parsed).await?;
            for row in parsed {
                targets.insert(row.id.clone(), row);
            }
        }

        // Candidates for unlinked rows, minus target records already linked to another.
        let mut candidates: HashMap<usize, Vec<&TargetRow>> = HashMap::new();
        for &i in &needs_lookup {
            if !views.contains_key(rows[i].id.as_str()) {
                candidates.insert(i, self.candidates_for(&rows[i], &targets));
            }
        }
        // From here on, pages take their turn: targets that earlier pages of the pass link,
        // update or create are theirs, though not yet in the store.
        let turn = turn_for(candidates.values().any(|list| !list.is_empty()));
        gate.wait_turn(index, turn).await;
        for list in candidates.values_mut() {
            list.retain(|t| !gate.is_claimed(&t.id));
        }
        let candidate_ids: Vec<String> = {
            let mut set: Vec<String> = candidates
                .values()
                .flatten()
                .map(|t| t.id.clone())
                .collect();
            set.sort();
            set.dedup();
            set
        };
        if !candidate_ids.is_empty() {
            let linked: HashSet<String> = self
                .store
                .links_by_ids(tgt, &cfg.object, &candidate_ids)
                .await?
                .iter()
                .map(|l| side_id(l, tgt).to_string())
                .collect();
            for list in candidates.values_mut() {
                list.retain(|t| !linked.contains(&t.id));
            }
        }

        // 3. Plan the looked-up rows (with the page-level rule).
        let empty: Vec<&TargetRow> = Vec::new();
        let items: Vec<PageItem<'_>> = needs_lookup
            .iter()
            .map(|&i| {
                let row = &rows[i];
                let target = match views.get(row.id.as_str()) {
                    Some(link) => Target::Linked {
                        link,
                        row: targets.get(&link.target_id),
                    },
                    None => Target::Unlinked {
                        candidates: candidates.get(&i).unwrap_or(&empty),
                    },
                };
                PageItem { row, target }
            })
            .collect();
        let decisions = plan_page(&items, &policy, self.mapping);
        drop(items);

        // 4. Writes.
        let mut creates: Vec<(usize, Map<String, Value>)> = Vec::new();
        let mut updates: Vec<(usize, String, Map<String, Value>)> = Vec::new();
        for (&i, decision) in needs_lookup.iter().zip(&decisions) {
            let row = &rows[i];
            self.log_conflicts(row, decision);
            report.conflicts += decision.conflicts.len() as u64;
            match &decision.action {
                Action::Create { fields } => {
                    let mut body = self.mapping.to_org(tgt, fields);
                    if let Some(ext) = &cfg.external_id_field {
                        body.insert(ext.clone(), Value::String(row.id.clone()));
                    }
                    creates.push((i, body));
                }
                Action::Update { target_id, fields } => {
                    updates.push((i, target_id.clone(), self.mapping.to_org(tgt, fields)));
                }
                Action::Link { target_id } => {
                    report.linked += 1;
                    tracing::info!(
                        cycle = cfg.cycle,
                        direction = %cfg.direction,
                        source_id = %row.id,
                        target_id = %target_id,
                        "linked to an existing record with equal values"
                    );
                    outcomes[i] = RowOutcome::Linked {
                        target_id: target_id.clone(),
                        snapshot: decision.snapshot.clone().unwrap_or_default(),
                    };
                }
                Action::Skip(reason) => {
                    report.skipped += 1;
                    let target_id = views
                        .get(row.id.as_str())
                        .map(|v| v.target_id.clone())
                        .unwrap_or_default();
                    self.log_skip(row, Some(&target_id), *reason);
                    outcomes[i] = RowOutcome::Linked {
                        target_id,
                        snapshot: decision.snapshot.clone().unwrap_or_default(),
                    };
                }
                Action::Fail { code, message } => {
                    outcomes[i] = RowOutcome::Failed {
                        target_id: views.get(row.id.as_str()).map(|v| v.target_id.clone()),
                        code: code.as_str().to_string(),
                        message: message.clone(),
                        class: FailureClass::of_code(code.as_str()),
                        sent: None,
                    };
                }
            }
            if decision.reverse
                && let Some(target_id) = decision
                    .target_id()
                    .map(str::to_string)
                    .or_else(|| views.get(row.id.as_str()).map(|v| v.target_id.clone()))
            {
                reverse.push((i, target_id));
            }
        }
        let decision_of: HashMap<usize, &Decision> =
            needs_lookup.iter().copied().zip(decisions.iter()).collect();
        gate.claim(decisions.iter().filter_map(Decision::target_id));
        gate.decided(index);

        // Parent accounts of the writes: one lookup (and creates of missing ones) per page.
        let resolved = self
            .resolve_accounts(&rows, &mut creates, &mut updates)
            .await?;
        for (i, target_id, e) in resolved.failed {
            outcomes[i] = RowOutcome::Failed {
                target_id,
                code: e.code,
                message: e.message,
                class: e.class,
                sent: None,
            };
        }
        let (account_links, from_links, parent_of_row) =
            (resolved.links, resolved.from_links, resolved.parent_of_row);

        self.write_page(
            &rows,
            &creates,
            &updates,
            &decision_of,
            &mut outcomes,
            report,
        )
        .await?;
        gate.claim(outcomes.iter().filter_map(|o| match o {
            RowOutcome::Linked { target_id, .. } => Some(target_id.as_str()),
            _ => None,
        }));
        gate.written(index);

        let stale_account_links = self.stale_account_links(&from_links, &mut outcomes);
        if src == Org::B {
            // The parent's canonical value is its A-side id: the A account just resolved.
            for (i, account_id) in parent_of_row {
                if let Some(RowOutcome::Linked { snapshot, .. }) = outcomes.get_mut(i)
                    && snapshot.contains_key(ACCOUNT_NAME_PATH)
                {
                    snapshot.insert(ACCOUNT_NAME_PATH.to_string(), Value::String(account_id));
                }
            }
        }
        let page = PageOutcomes {
            outcomes,
            reverse,
            account_links,
            stale_account_links,
        };
        Ok(Box::new(PageWork {
            index,
            rows,
            page,
            failures,
            mode,
            page_max,
            counts,
        }))
    }

    /// Writes the page: creates (or upserts on the external id field) and updates in calls of
    /// at most 200 records, all calls in flight together (within `batch.in_flight`), each
    /// record's outcome mapped back to its row. A limit on any call pauses the page.
    async fn write_page(
        &self,
        rows: &[SourceRow],
        creates: &[(usize, Map<String, Value>)],
        updates: &[(usize, String, Map<String, Value>)],
        decision_of: &HashMap<usize, &Decision>,
        outcomes: &mut [RowOutcome],
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let cfg = self.config;
        let create_calls = creates.chunks(COLLECTION_LIMIT).map(|chunk| async move {
            let bodies: Vec<Map<String, Value>> = chunk.iter().map(|(_, b)| b.clone()).collect();
            match &cfg.external_id_field {
                Some(ext) => {
                    self.call(self.target.upsert(&cfg.object, ext, &bodies))
                        .await
                }
                None => self.call(self.target.create(&cfg.object, &bodies)).await,
            }
        });
        let update_calls = updates.chunks(COLLECTION_LIMIT).map(|chunk| async move {
            let bodies: Vec<(String, Map<String, Value>)> = chunk
                .iter()
                .map(|(_, id, b)| (id.clone(), b.clone()))
                .collect();
            self.call(self.target.update(&cfg.object, &bodies)).await
        });
        let (created, updated) = futures::join!(join_all(create_calls), join_all(update_calls));
        for result in created.iter().chain(&updated) {
            if let Err(e) = result
                && let stop @ Stop::Paused { .. } = Stop::port(self.target_org(), e.clone())
            {
                return Err(stop);
            }
        }
        let snapshot_of = |i: &usize| {
            decision_of
                .get(i)
                .and_then(|d| d.snapshot.clone())
                .unwrap_or_default()
        };
        for (chunk, result) in creates.chunks(COLLECTION_LIMIT).zip(created) {
            let results = per_record(result, chunk.len());
            for ((i, body), outcome) in chunk.iter().zip(results) {
                let row = &rows[*i];
                outcomes[*i] = match outcome {
                    Ok(ok) => {
                        report.created += u64::from(ok.created);
                        report.updated += u64::from(!ok.created);
                        tracing::info!(
                            cycle = cfg.cycle,
                            direction = %cfg.direction,
                            source_id = %row.id,
                            target_id = %ok.id,
                            created = ok.created,
                            "record written to the target"
                        );
                        RowOutcome::Linked {
                            target_id: ok.id,
                            snapshot: snapshot_of(i),
                        }
                    }
                    Err(e) => RowOutcome::Failed {
                        target_id: None,
                        code: e.code,
                        message: e.message,
                        class: e.class,
                        sent: Some(body.clone()),
                    },
                };
            }
        }
        for (chunk, result) in updates.chunks(COLLECTION_LIMIT).zip(updated) {
            let results = per_record(result, chunk.len());
            for ((i, target_id, body), outcome) in chunk.iter().zip(results) {
                let row = &rows[*i];
                outcomes[*i] = match outcome {
                    Ok(_) => {
                        report.updated += 1;
                        // Field names at info (what changed), values at debug (they may be
                        // business data an operator does not want in every log).
                        let fields = body.keys().cloned().collect::<Vec<_>>().join(",");
                        tracing::info!(
                            cycle = cfg.cycle,
                            direction = %cfg.direction,
                            source_id = %row.id,
                            target_id = %target_id,
                            fields = %fields,
                            "record updated in the target"
                        );
                        tracing::debug!(
                            cycle = cfg.cycle,
                            direction = %cfg.direction,
                            source_id = %row.id,
                            target_id = %target_id,
                            values = %serde_json::Value::Object(body.clone()),
                            "values written to the target"
                        );
                        RowOutcome::Linked {
                            target_id: target_id.clone(),
                            snapshot: snapshot_of(i),
                        }
                    }
                    Err(e) => RowOutcome::Failed {
                        target_id: Some(target_id.clone()),
                        code: e.code,
                        message: e.message,
                        class: e.class,
                        sent: Some(body.clone()),
                    },
                };
            }
        }
        Ok(())
    }

    /// The page's one transaction: every row's outcome (links and snapshots, failures), the
    /// new parent-account links, the reverse carries, processed inbox items or cleared
    /// failures, and the watermark.
    async fn commit_page(
        &self,
        rows: &[SourceRow],
        page: PageOutcomes,
        failures: &HashMap<String, QueuedFailure>,
        mode: &PipelineMode,
        page_max: Option<DateTime<Utc>>,
        report: &mut PassReport,
    ) -> Result<(), PassError> {
        let cfg = self.config;
        let (src, tgt) = (self.source_org(), self.target_org());
        // 5. One transaction: outcomes, reverse carries, inbox, watermark.
        let PageOutcomes {
            outcomes,
            mut reverse,
            account_links,
            stale_account_links,
        } = page;
        let mut tx = self.store.begin().await?;
        for (source_id, target_id) in &stale_account_links {
            let a_id = match src {
                Org::A => source_id,
                Org::B => target_id,
            };
            tx.delete_link(ACCOUNT_OBJECT, a_id).await?;
        }
        for link in &account_links {
            match tx.upsert_link(link).await {
                Ok(()) => {}
                // The account is in use all the same; its link stays as it was.
                Err(StoreError::LinkConflict { detail, .. }) => tracing::warn!(
                    cycle = cfg.cycle,
                    direction = %cfg.direction,
                    a_id = %link.a_id,
                    b_id = %link.b_id,
                    detail = %detail,
                    "parent account link not stored: one side is linked to another account"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let row = &rows[i];
            let had_failure = failures.contains_key(&row.id);
            match outcome {
                RowOutcome::Nothing => {
                    if matches!(mode, PipelineMode::Retry { .. }) {
                        // The retried version is already recorded (or settled): stale failure.
                        tx.clear_failure(cfg.direction, &cfg.object, &row.id)
                            .await?;
                    }
                }
                RowOutcome::Linked {
                    target_id,
                    snapshot,
                } => {
                    let write = link_write(&cfg.object, src, row, &target_id, snapshot);
                    match tx.upsert_link(&write).await {
                        Ok(()) => {
                            if had_failure {
                                tx.clear_failure(cfg.direction, &cfg.object, &row.id)
                                    .await?;
                            }
                        }
                        Err(StoreError::LinkConflict { detail, .. }) => {
                            report.failed += 1;
                            let error = RecordError::new("LINK_CONFLICT", detail);
                            self.record_failure(&mut tx, row, Some(target_id), error, None)
                                .await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                RowOutcome::Failed {
                    target_id,
                    code,
                    message,
                    class,
                    sent,
                } => {
                    report.failed += 1;
                    let error = RecordError {
                        code,
                        message,
                        class,
                    };
                    self.record_failure(&mut tx, row, target_id, error, sent)
                        .await?;
                    // A failed row is not carried back: its reverse waits for its success.
                    reverse.retain(|(r, _)| *r != i);
                }
            }
        }
        if !reverse.is_empty() {
            let notifications: Vec<NewNotification> = reverse
                .iter()
                .map(|(i, target_id)| {
                    let row = &rows[*i];
                    tracing::info!(
                        cycle = cfg.cycle,
                        direction = %cfg.direction,
                        source_id = %row.id,
                        target_id = %target_id,
                        "target holds newer values: queued to be carried back"
                    );
                    NewNotification {
                        org: tgt,
                        notification_id: format!(
                            "orgsync-reverse:{}:{}:{}",
                            cfg.direction,
                            row.id,
                            row.system_modstamp.timestamp_millis()
                        ),
                        object: cfg.object.clone(),
                        record_id: target_id.clone(),
                    }
                })
                .collect();
            report.reversed += notifications.len() as u64;
            tx.insert_notifications(&notifications).await?;
        }
        match mode {
            PipelineMode::Changes => {
                if let Some(max) = page_max {
                    tx.advance_watermark(src, &cfg.object, max).await?;
                    report.watermark = report.watermark.max(Some(max));
                }
            }
            PipelineMode::Retry { missing, rejected } => {
                self.record_rejected(&mut tx, rejected, report).await?;
                for id in missing {
                    tracing::info!(
                        cycle = cfg.cycle,
                        direction = %cfg.direction,
                        source_id = %id,
                        "failed record no longer exists in the source: failure cleared"
                    );
                    tx.clear_failure(cfg.direction, &cfg.object, id).await?;
                }
            }
            PipelineMode::Inbox { item_ids, rejected } => {
                self.record_rejected(&mut tx, rejected, report).await?;
                tx.mark_processed(item_ids).await?;
            }
        }
        tx.commit().await?;
        report.pages += 1;
        Ok(())
    }

    /// For rows of `org` = B: the A-side ids of their parent accounts, from the Account links
    /// (one store query). Empty for A (its parents are their own A-side ids).
    async fn a_ids_of_b_parents<'r>(
        &self,
        org: Org,
        parents: impl Iterator<Item = Option<&'r Map<String, Value>>>,
    ) -> Result<HashMap<String, String>, PassError> {
        if org != Org::B {
            return Ok(HashMap::new());
        }
        let mut ids: Vec<String> = parents
            .flatten()
            .filter_map(|p| p.get("Id").and_then(Value::as_str))
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .store
            .links_by_ids(Org::B, ACCOUNT_OBJECT, &ids)
            .await?
            .into_iter()
            .map(|l| (l.b_id, l.a_id))
            .collect())
    }

    /// With `syncAccount`, sets the source rows' parent pseudo-field to its canonical value
    /// ([`parent_token`]) so that it compares across orgs and with the snapshot.
    async fn source_parent_tokens(&self, rows: &mut [SourceRow]) -> Result<(), PassError> {
        if !matches!(self.config.account, AccountMode::SyncByName { .. }) {
            return Ok(());
        }
        let org = self.source_org();
        let links = self
            .a_ids_of_b_parents(org, rows.iter().map(|r| r.parent.as_ref()))
            .await?;
        for row in rows.iter_mut() {
            if let Some(token) = parent_token(org, row.parent.as_ref(), &links) {
                row.values
                    .insert(ACCOUNT_NAME_PATH.to_string(), Value::String(token));
            }
        }
        Ok(())
    }

    /// [`Self::source_parent_tokens`] for the target rows of the lookup (`records[i]` is the
    /// record `rows[i]` was parsed from).
    async fn target_parent_tokens(
        &self,
        records: &[Map<String, Value>],
        rows: &mut [TargetRow],
    ) -> Result<(), PassError> {
        if !matches!(self.config.account, AccountMode::SyncByName { .. }) {
            return Ok(());
        }
        let org = self.target_org();
        let parent_of = |r: &Map<String, Value>| match lookup(r, ACCOUNT_OBJECT) {
            Some(Value::Object(p)) => Some(p.clone()),
            _ => None,
        };
        let parents: Vec<Option<Map<String, Value>>> = records.iter().map(parent_of).collect();
        let links = self
            .a_ids_of_b_parents(org, parents.iter().map(Option::as_ref))
            .await?;
        for (row, parent) in rows.iter_mut().zip(&parents) {
            if let Some(token) = parent_token(org, parent.as_ref(), &links) {
                row.values
                    .insert(ACCOUNT_NAME_PATH.to_string(), Value::String(token));
            }
        }
        Ok(())
    }

    /// Rows whose write failed because the parent account a stored link gave them is gone
    /// from the target (deleted, or merged into another account): their failure says so and
    /// is retried, and the links to drop are returned, so that the retry resolves the parent
    /// again (by Name, else by creating it).
    fn stale_account_links(
        &self,
        from_links: &[(usize, String, String)],
        outcomes: &mut [RowOutcome],
    ) -> Vec<(String, String)> {
        let cfg = self.config;
        let tgt = self.target_org().as_str().to_ascii_uppercase();
        let mut stale: Vec<(String, String)> = Vec::new();
        for (i, source_id, target_id) in from_links {
            let Some(RowOutcome::Failed {
                code,
                message,
                class,
                ..
            }) = outcomes.get_mut(*i)
            else {
                continue;
            };
            if !is_missing_reference(code) {
                continue;
            }
            *message = format!(
                "the parent account {target_id} linked to {source_id} is gone from org {tgt} \
                 ({code}: {message}); the link is dropped and the parent resolved again on retry"
            );
            *class = FailureClass::Transient;
            let pair = (source_id.clone(), target_id.clone());
            if !stale.contains(&pair) {
                tracing::warn!(
                    cycle = cfg.cycle,
                    direction = %cfg.direction,
                    source_id = %source_id,
                    target_id = %target_id,
                    "parent account link is stale (the target account is gone): dropped"
                );
                stale.push(pair);
            }
        }
        stale
    }

    /// Applies `account.sync_policy` to the page's write bodies: `assign` sets the configured
    /// account on creates; `syncAccount` turns the `Account.Name` pseudo-field into the
    /// `AccountId` of the parent's target account: linked in the store, else found by one
    /// query by Name for the page, else created by one collections call for the page (one
    /// account per source parent, however many rows name it). Returns the rows whose parent
    /// could not be resolved (removed from the writes) and the new account links, or the
    /// limit that paused the page.
    async fn resolve_accounts(
        &self,
        rows: &[SourceRow],
        creates: &mut Vec<(usize, Map<String, Value>)>,
        updates: &mut Vec<(usize, String, Map<String, Value>)>,
    ) -> Result<AccountsResolved, Stop> {
        let (src, tgt) = (self.source_org(), self.target_org());
        let cfg = self.config;
        let fields = match &cfg.account {
            AccountMode::None => return Ok(AccountsResolved::default()),
            AccountMode::Assign { account_id } => {
                for (_, body) in creates.iter_mut() {
                    body.insert(
                        ACCOUNT_ID_FIELD.to_string(),
                        Value::String(account_id.clone()),
                    );
                }
                return Ok(AccountsResolved::default());
            }
            AccountMode::SyncByName { fields } => fields,
        };
        // The parent each write names, and the first row naming each parent (its parent's
        // fields are used to create the account).
        let mut row_parent: HashMap<usize, ParentKey> = HashMap::new();
        let mut parents: BTreeMap<ParentKey, String> = BTreeMap::new();
        let mut carrier: HashMap<ParentKey, usize> = HashMap::new();
        let bodies = creates
            .iter()
            .map(|(i, b)| (*i, b))
            .chain(updates.iter().map(|(i, _, b)| (*i, b)));
        for (i, body) in bodies {
            if let Some(Value::String(token)) = body.get(ACCOUNT_NAME_PATH) {
                let parent = rows[i].parent.as_ref();
                let name = parent_name(parent).unwrap_or(token);
                let key = ParentKey::of(parent, name);
                parents
                    .entry(key.clone())
                    .or_insert_with(|| name.to_string());
                carrier.entry(key.clone()).or_insert(i);
                row_parent.insert(i, key);
            }
        }

        // 1. The store's account links (no API call).
        let source_ids: Vec<String> = parents
            .keys()
            .filter_map(|k| k.source_id().map(str::to_string))
            .collect();
        let links: HashMap<String, String> = if source_ids.is_empty() {
            HashMap::new()
        } else {
            self.store
                .links_by_ids(src, ACCOUNT_OBJECT, &source_ids)
                .await?
                .iter()
                .map(|l| (side_id(l, src).to_string(), side_id(l, tgt).to_string()))
                .collect()
        };

        // 2. One query by Name for the unlinked parents.
        let names = unlinked_names(&parents, &links);
        let mut by_name: Vec<(String, String)> = Vec::new();
        if !names.is_empty() {
            let query = RecordQuery {
                object: ACCOUNT_OBJECT.to_string(),
                fields: vec!["Name".to_string()],
                kind: QueryKind::Lookup {
                    any_of: vec![vec![FieldIn {
                        field: "Name".to_string(),
                        values: names.iter().cloned().map(Value::String).collect(),
                    }]],
                },
            };
            let records = self.query_all(self.target, tgt, &query).await?;
            by_name = records
                .iter()
                .filter_map(|r| {
                    Some((
                        r.get("Id")?.as_str()?.to_string(),
                        r.get("Name")?.as_str()?.to_string(),
                    ))
                })
                .collect();
        }
        // Target accounts found by name that already mirror another source account.
        let found_ids: Vec<String> = by_name.iter().map(|(id, _)| id.clone()).collect();
        let linked_targets: HashSet<String> = if found_ids.is_empty() {
            HashSet::new()
        } else {
            self.store
                .links_by_ids(tgt, ACCOUNT_OBJECT, &found_ids)
                .await?
                .iter()
                .map(|l| side_id(l, tgt).to_string())
                .collect()
        };

        let mut done = AccountsResolved::default();
        let mut resolved: HashMap<ParentKey, Result<String, RecordError>> = HashMap::new();
        let mut to_create: Vec<ParentKey> = Vec::new();
        let mut linked: HashMap<ParentKey, (String, String)> = HashMap::new();
        let tgt_name = tgt.as_str().to_ascii_uppercase();
        for (key, plan) in plan_parents(&parents, &links, &by_name, &linked_targets) {
            let name = parents.get(&key).cloned().unwrap_or_default();
            let outcome = match plan {
                ParentPlan::Linked(id) => {
                    if let Some(source_id) = key.source_id() {
                        linked.insert(key.clone(), (source_id.to_string(), id.clone()));
                    }
                    Ok(id)
                }
                ParentPlan::Found(id) => {
                    if let Some(source_id) = key.source_id() {
                        tracing::info!(
                            cycle = cfg.cycle,
                            direction = %cfg.direction,
                            account = %name,
                            source_id = %source_id,
                            target_id = %id,
                            "parent account found in the target by Name: linked"
                        );
                        done.links.push(account_link(src, source_id, &id));
                    }
                    Ok(id)
                }
                ParentPlan::Create => {
                    to_create.push(key);
                    continue;
                }
                ParentPlan::Ambiguous(ids) => Err(RecordError::new(
                    AMBIGUOUS_ACCOUNT,
                    format!(
                        "{} accounts named {name:?} in org {tgt_name}: {}; the parent is never \
                         guessed: rename or merge them, or link one by hand",
                        ids.len(),
                        ids.join(", ")
                    ),
                )),
                ParentPlan::Twins { target_id, parents } => Err(RecordError::new(
                    AMBIGUOUS_ACCOUNT,
                    format!(
                        "{parents} accounts of org {} named {name:?} are not yet linked, and \
                         org {tgt_name} has one such account ({target_id}): which one it \
                         mirrors is never guessed: rename one of them",
                        src.as_str().to_ascii_uppercase()
                    ),
                )),
            };
            resolved.insert(key, outcome);
        }

        // 3. One collections call per 200 missing parents.
        for chunk in to_create.chunks(COLLECTION_LIMIT) {
            let bodies: Vec<Map<String, Value>> = chunk
                .iter()
                .map(|key| {
                    let name = parents.get(key).map(String::as_str).unwrap_or_default();
                    let parent = carrier.get(key).and_then(|&i| rows[i].parent.as_ref());
                    account_body(name, parent, fields)
                })
                .collect();
            let results = match self.call(self.target.create(ACCOUNT_OBJECT, &bodies)).await {
                Err(e) => match Stop::port(tgt, e.clone()) {
                    stop @ Stop::Paused { .. } => return Err(stop),
                    // Any other error of the call fails every parent of it.
                    Stop::Failed(_) => per_record(Err(e), chunk.len()),
                },
                ok => per_record(ok, chunk.len()),
            };
            for (key, outcome) in chunk.iter().zip(results) {
                let name = parents.get(key).cloned().unwrap_or_default();
                let outcome = match outcome {
                    Ok(ok) => {
                        tracing::info!(
                            cycle = cfg.cycle,
                            direction = %cfg.direction,
                            account = %name,
                            source_id = key.source_id().unwrap_or(""),
                            target_id = %ok.id,
                            "parent account created in the target"
                        );
                        if let Some(source_id) = key.source_id() {
                            done.links.push(account_link(src, source_id, &ok.id));
                        }
                        Ok(ok.id)
                    }
                    Err(e) => Err(RecordError {
                        code: e.code,
                        message: format!("creating the parent account {name:?}: {}", e.message),
                        class: e.class,
                    }),
                };
                resolved.insert(key.clone(), outcome);
            }
        }

        let apply = |i: usize, body: &mut Map<String, Value>| -> Result<(), RecordError> {
            match body.remove(ACCOUNT_NAME_PATH) {
                None => Ok(()),
                Some(Value::String(name)) => {
                    match row_parent.get(&i).and_then(|key| resolved.get(key)) {
                        Some(Ok(id)) => {
                            body.insert(ACCOUNT_ID_FIELD.to_string(), Value::String(id.clone()));
                            Ok(())
                        }
                        Some(Err(e)) => Err(e.clone()),
                        None => Err(RecordError::new(
                            "ACCOUNT_UNRESOLVED",
                            format!("the parent account {name:?} could not be resolved"),
                        )),
                    }
                }
                // No parent in the source: clear it in the target.
                Some(_) => {
                    body.insert(ACCOUNT_ID_FIELD.to_string(), Value::Null);
                    Ok(())
                }
            }
        };
        creates.retain_mut(|(i, body)| match apply(*i, body) {
            Ok(()) => true,
            Err(e) => {
                done.failed.push((*i, None, e));
                false
            }
        });
        updates.retain_mut(|(i, target_id, body)| match apply(*i, body) {
            Ok(()) => true,
            Err(e) => {
                done.failed.push((*i, Some(target_id.clone()), e));
                false
            }
        });
        let written = creates
            .iter()
            .map(|(i, _)| *i)
            .chain(updates.iter().map(|(i, _, _)| *i));
        for i in written {
            if let Some(Some(Ok(account_id))) = row_parent.get(&i).map(|k| resolved.get(k)) {
                done.parent_of_row.push((i, account_id.clone()));
            }
            if let Some((source_id, target_id)) = row_parent.get(&i).and_then(|k| linked.get(k)) {
                done.from_links
                    .push((i, source_id.clone(), target_id.clone()));
            }
        }
        Ok(done)
    }

    async fn record_failure(
        &self,
        tx: &mut St::Tx,
        row: &SourceRow,
        target_id: Option<String>,
        error: RecordError,
        sent: Option<Map<String, Value>>,
    ) -> Result<(), PassError> {
        let cfg = self.config;
        tracing::warn!(
            cycle = cfg.cycle,
            direction = %cfg.direction,
            source_id = %row.id,
            target_id = target_id.as_deref().unwrap_or(""),
            code = %error.code,
            message = %error.message,
            class = error.class.as_str(),
            "record failed: kept in the failure queue"
        );
        let failure = NewFailure {
            direction: cfg.direction,
            object: cfg.object.clone(),
            source_id: row.id.clone(),
            target_id,
            source_modstamp: Some(row.system_modstamp),
            error_code: error.code,
            message: error.message,
            class: error.class,
            sent,
        };
        tx.record_failure(&failure, &cfg.backoff).await?;
        Ok(())
    }

    /// One query for the page: linked rows by target `Id`, unlinked rows by external id
    /// (source id) and/or by the `match_by` fields.
    fn lookup_query(
        &self,
        rows: &[SourceRow],
        needs_lookup: &[usize],
        views: &HashMap<&str, LinkView>,
    ) -> RecordQuery {
        let cfg = self.config;
        let tgt = self.target_org();
        let mut linked_ids: Vec<Value> = Vec::new();
        let mut unlinked: Vec<&SourceRow> = Vec::new();
        for &i in needs_lookup {
            match views.get(rows[i].id.as_str()) {
                Some(view) => linked_ids.push(Value::String(view.target_id.clone())),
                None => unlinked.push(&rows[i]),
            }
        }
        let mut any_of: Vec<Vec<FieldIn>> = Vec::new();
        if !linked_ids.is_empty() {
            any_of.push(vec![FieldIn {
                field: "Id".to_string(),
                values: linked_ids,
            }]);
        }
        if !unlinked.is_empty() {
            if let Some(ext) = &cfg.external_id_field {
                any_of.push(vec![FieldIn {
                    field: ext.clone(),
                    values: unlinked
                        .iter()
                        .map(|r| Value::String(r.id.clone()))
                        .collect(),
                }]);
            }
            let keyed: Vec<&&SourceRow> = unlinked
                .iter()
                .filter(|r| self.match_key(r).is_some())
                .collect();
            if !keyed.is_empty() {
                let conjunction = cfg
                    .match_by
                    .iter()
                    .map(|field| {
                        let mut values: Vec<Value> = Vec::new();
                        for row in &keyed {
                            if let Some(v) = row.values.get(field) {
                                let v = self.mapping.value_in(tgt, field, v);
                                if !values.iter().any(|x| same_value(Some(x), Some(&v))) {
                                    values.push(v);
                                }
                            }
                        }
                        FieldIn {
                            field: self
                                .mapping
                                .field_name(tgt, field)
                                .unwrap_or(field)
                                .to_string(),
                            values,
                        }
                    })
                    .collect();
                any_of.push(conjunction);
            }
        }
        RecordQuery {
            object: cfg.object.clone(),
            fields: self.target_fields(),
            kind: QueryKind::Lookup { any_of },
        }
    }

    /// The row's `match_by` values, when all are set.
    fn match_key<'r>(&self, row: &'r SourceRow) -> Option<Vec<&'r Value>> {
        if self.config.match_by.is_empty() {
            return None;
        }
        self.config
            .match_by
            .iter()
            .map(|f| row.values.get(f))
            .collect()
    }

    /// Target rows that could be `row`'s counterpart: the one holding its id in the external
    /// id field; else (none found) those with equal `match_by` values and no external id.
    fn candidates_for<'t>(
        &self,
        row: &SourceRow,
        targets: &'t HashMap<String, TargetRow>,
    ) -> Vec<&'t TargetRow> {
        let mut found: Vec<&TargetRow> = Vec::new();
        if self.config.external_id_field.is_some() {
            found = targets
                .values()
                .filter(|t| t.external_id.as_deref() == Some(row.id.as_str()))
                .collect();
        }
        if found.is_empty()
            && let Some(key) = self.match_key(row)
        {
            found = targets
                .values()
                .filter(|t| self.config.external_id_field.is_none() || t.external_id.is_none())
                .filter(|t| {
                    self.config
                        .match_by
                        .iter()
                        .zip(&key)
                        .all(|(f, v)| same_key(t.values.get(f), Some(v)))
                })
                .collect();
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    fn log_skip(&self, row: &SourceRow, target_id: Option<&str>, reason: SkipReason) {
        tracing::debug!(
            cycle = self.config.cycle,
            direction = %self.config.direction,
            source_id = %row.id,
            target_id = target_id.unwrap_or(""),
            reason = reason.as_str(),
            "record skipped"
        );
    }

    fn log_conflicts(&self, row: &SourceRow, decision: &Decision) {
        for c in &decision.conflicts {
            let source_value = c.source_value.clone().unwrap_or_default().to_string();
            let target_value = c.target_value.clone().unwrap_or_default().to_string();
            tracing::info!(
                cycle = self.config.cycle,
                direction = %self.config.direction,
                source_id = %row.id,
                target_id = decision.target_id().unwrap_or(""),
                field = %c.field,
                source_value = %source_value,
                target_value = %target_value,
                source_last_modified = %c.source_last_modified,
                target_last_modified = %c.target_last_modified,
                winner = match c.winner { Winner::Source => "source", Winner::Target => "target" },
                policy = ?self.config.conflict,
                "conflict: both sides changed the field"
            );
        }
    }
}

/// The parent accounts of a page's writes, resolved.
#[derive(Debug, Default)]
struct AccountsResolved {
    /// Rows whose parent could not be resolved (removed from the writes): row, target id
    /// (updates), error.
    failed: Vec<(usize, Option<String>, RecordError)>,
    /// Account links found by name or created, stored with the page.
    links: Vec<LinkWrite>,
    /// Writes whose `AccountId` came from a stored link: row, source account id, target
    /// account id (to drop the link if the target account turns out to be gone).
    from_links: Vec<(usize, String, String)>,
    /// Writes with a parent: row, target account id.
    parent_of_row: Vec<(usize, String)>,
}

/// What a page's transaction records besides its inputs.
struct PageOutcomes {
    /// Per row.
    outcomes: Vec<RowOutcome>,
    /// Rows whose target holds newer values: (row, target id).
    reverse: Vec<(usize, String)>,
    /// New parent-account links.
    account_links: Vec<LinkWrite>,
    /// Stale parent-account links to drop: (source account id, target account id).
    stale_account_links: Vec<(String, String)>,
}

/// The link of a source parent account to its target account (no modstamps, no snapshot:
/// accounts are created, never updated, so nothing of theirs is compared).
fn account_link(source: Org, source_id: &str, target_id: &str) -> LinkWrite {
    let (a_id, b_id) = match source {
        Org::A => (source_id.to_string(), target_id.to_string()),
        Org::B => (target_id.to_string(), source_id.to_string()),
    };
    LinkWrite {
        object: ACCOUNT_OBJECT.to_string(),
        a_id,
        b_id,
        a_modstamp: None,
        b_modstamp: None,
        snapshot: Map::new(),
    }
}

/// Per-record outcomes of a write call; a whole-call error fails every record of it, and a
/// reply with too few items fails the records it does not mention.
fn per_record(result: Result<Vec<WriteOutcome>, PortError>, len: usize) -> Vec<WriteOutcome> {
    match result {
        Ok(mut outcomes) => {
            while outcomes.len() < len {
                outcomes.push(Err(RecordError::new(
                    "NO_RESULT",
                    "the org's reply had no result for this record",
                )));
            }
            outcomes.truncate(len);
            outcomes
        }
        Err(e) => (0..len)
            .map(|_| {
                Err(RecordError {
                    code: e.code.clone(),
                    message: e.message.clone(),
                    class: e.failure_class(),
                })
            })
            .collect(),
    }
}

/// Match-key equality: text compares without regard to case, as SOQL's `IN` that found the
/// candidates does; other values as [`same_value`].
fn same_key(left: Option<&Value>, right: Option<&Value>) -> bool {
    match (left, right) {
        (Some(Value::String(l)), Some(Value::String(r))) => l.to_lowercase() == r.to_lowercase(),
        _ => same_value(left, right),
    }
}

/// Keeps one row per id (the latest version), in first-seen order.
fn dedup_latest(rows: Vec<SourceRow>) -> Vec<SourceRow> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<SourceRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.id) {
            Some(&i) => {
                if row.system_modstamp > out[i].system_modstamp {
                    out[i] = row;
                }
            }
            None => {
                index.insert(row.id.clone(), out.len());
                out.push(row);
            }
        }
    }
    out
}

fn side_id(link: &Link, org: Org) -> &str {
    match org {
        Org::A => &link.a_id,
        Org::B => &link.b_id,
    }
}

/// A stored link seen from the direction whose source is `source`.
fn link_view(link: &Link, source: Org) -> LinkView {
    let (target_id, source_modstamp) = match source {
        Org::A => (&link.b_id, link.a_modstamp),
        Org::B => (&link.a_id, link.b_modstamp),
    };
    let snapshot = from_snapshot(&link.snapshot);
    LinkView {
        target_id: target_id.clone(),
        source_modstamp,
        // An empty snapshot is "none": every synced record has at least its required fields.
        snapshot: (!snapshot.is_empty()).then_some(snapshot),
    }
}

fn link_write(
    object: &str,
    source: Org,
    row: &SourceRow,
    target_id: &str,
    snapshot: BTreeMap<String, Value>,
) -> LinkWrite {
    let (a_id, b_id, a_modstamp, b_modstamp) = match source {
        Org::A => (
            row.id.clone(),
            target_id.to_string(),
            Some(row.system_modstamp),
            None,
        ),
        Org::B => (
            target_id.to_string(),
            row.id.clone(),
            None,
            Some(row.system_modstamp),
        ),
    };
    LinkWrite {
        object: object.to_string(),
        a_id,
        b_id,
        a_modstamp,
        b_modstamp,
        snapshot: to_snapshot(&snapshot),
    }
}

/// Parses a Salesforce datetime: `2013-05-20T20:49:32.000+0000` (REST) or RFC 3339.
fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn required_time(record: &Map<String, Value>, field: &str) -> Result<DateTime<Utc>, String> {
    let text = record
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field} is missing or not a string"))?;
    parse_datetime(text).ok_or_else(|| format!("{field} {text:?} is not a datetime"))
}

fn record_id(record: &Map<String, Value>) -> Result<String, String> {
    match record.get("Id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err("a row has no Id".to_string()),
    }
}

/// A query row of the source org in canonical form.
pub fn parse_source_row(
    org: Org,
    mapping: &Mapping,
    record: &Map<String, Value>,
) -> Result<SourceRow, String> {
    let id = record_id(record)?;
    let context = |e: String| format!("record {id}: {e}");
    Ok(SourceRow {
        system_modstamp: required_time(record, "SystemModstamp").map_err(context)?,
        last_modified_date: required_time(record, "LastModifiedDate").map_err(context)?,
        last_modified_by: record
            .get("LastModifiedById")
            .and_then(Value::as_str)
            .map(str::to_string),
        values: mapping.to_canonical(org, record),
        parent: match lookup(record, ACCOUNT_OBJECT) {
            Some(Value::Object(parent)) => Some(parent.clone()),
            _ => None,
        },
        id,
    })
}

/// A lookup row of the target org in canonical form.
pub fn parse_target_row(
    org: Org,
    mapping: &Mapping,
    external_id_field: Option<&str>,
    record: &Map<String, Value>,
) -> Result<TargetRow, String> {
    let id = record_id(record)?;
    let context = |e: String| format!("record {id}: {e}");
    let external_id = external_id_field.and_then(|f| {
        record
            .get(f)
            .or_else(|| {
                record
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(f))
                    .map(|(_, v)| v)
            })
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    Ok(TargetRow {
        system_modstamp: required_time(record, "SystemModstamp").map_err(context)?,
        last_modified_date: required_time(record, "LastModifiedDate").map_err(context)?,
        external_id,
        values: mapping.to_canonical(org, record),
        id,
    })
}

#[cfg(test)]
#[path = "pass_tests.rs"]
mod tests;
