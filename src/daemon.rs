//! The imperative shell around the sync engine: builds the clients, the store and the mapping
//! from [`Settings`], and runs direction passes with their bookkeeping: a cycle number, a row
//! in the store's `cycles` table, the pass metrics, the org states `status` shows, one summary
//! log line. [`Daemon::run_pass`] is that bookkeeping for every caller: the poll cycle
//! ([`Daemon::run_once`], A -> B then B -> A), the push worker's inbox drains and failure
//! retries ([`Daemon::drain`]); the scheduling loop that calls them is [`crate::worker`].
//! A direction's result stays typed ([`DirectionError`], with its [`ErrorKind`]) up to where
//! it is written: the `cycles` row, the log line, `orgsync sync`'s output, the demo's lines.
//!
//! [`Daemon::run_once`] is the one-step function: `orgsync sync` calls it once, the worker
//! calls it on a schedule, and tests call it directly. Cancellation (SIGTERM/SIGINT in `run`)
//! reaches the passes, which stop between pages: the pages in flight are finished and
//! committed, so nothing read is lost and nothing is left half-recorded.
//!
//! After a completed poll pass, with `sync.deletes = "propagate"`, the getDeleted safety net
//! (`sync::deleted_check`) runs for the pass's source org when it is due (once per
//! `sync.deleted_check_frequency`; not due: store reads only, no API call): the deletes it
//! lists whose links are live go through the pass's delete path, and its new start is stored
//! only once they are durable ([`Daemon::run_pass`]).
//!
//! Replicas (issue 15, README "Replicas"): on PostgreSQL the daemon keeps the pair's sync
//! lease with a [`LeaseKeeper`] (`ha.lease_ttl`); it runs cycles only while the lease is its
//! own ([`Daemon::role`]), each pass writing through a store fenced with the lease's epoch, so
//! a commit after another replica took over is refused ([`PassError::LeaseLost`]): the pass
//! stops, the event is logged at WARN and the keeper steps down at once. On SQLite the file
//! lock makes the process the only one: always the leader, nothing fenced.
//!
//! The API budget (`orgs.X.api_budget_percent`), the daily limit and refused logins are
//! enforced by each client's gates (see [`crate::salesforce::gate`]): a pass that meets one
//! is paused (limits) or fails at its login (credentials), records nothing, and the next
//! pass tries again; the gates keep those retries from reaching the org more than their
//! back-off allows, and log each change of state once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::events::{Housekeeping, LeaseLostOnCommit, PassFailed, PassFinished};
use crate::ha::LeaseKeeper;
use crate::metrics::Metrics;
use crate::salesforce::{AuthFailureView, Client, ClientOptions, SalesforceError};
use crate::store::{AuthFailed, Backend, Direction, Org, StateLock, Store, StoreError};
use crate::sync::deleted_check::DeletedCheckRun;

mod reconcile_tick;
mod replicas;
mod safety_net;

pub use reconcile_tick::{ReconcileTurns, check_period as reconcile_check_period};

use safety_net::checks_deletes;

use crate::sync::{
    ErrorKind, Mapping, Pass, PassConfig, PassError, PassOutcome, PassReport, port_error,
    store_error_kind,
};
pub use replicas::this_replica;
use replicas::{Ha, cancel_on_demotion};

/// Why a direction pass could not run, or stopped: kept typed up to where it is written (the
/// `cycles` row, the log line, the `sync` output), which use its text ([`Display`]).
///
/// [`Display`]: std::fmt::Display
#[derive(Debug, thiserror::Error)]
pub enum DirectionError {
    /// The source org's login failed (refused, or the org did not answer).
    #[error("cannot log in to org {}: {error}", org.as_str())]
    Login { org: Org, error: SalesforceError },
    /// The source org's logins are backing off from a refusal: no login was attempted (the
    /// client logged the refusal once, when it happened).
    #[error("cannot log in to org {}: {error}", org.as_str())]
    LoginBackingOff { org: Org, error: SalesforceError },
    /// The state store could not record the cycle (shared by the directions of a cycle that
    /// could not get its number).
    #[error("cannot record the cycle in the state store: {0}")]
    Store(Arc<StoreError>),
    /// The pass itself stopped.
    #[error(transparent)]
    Pass(#[from] PassError),
    /// This replica does not hold the sync lease: another one syncs.
    #[error("not the leader: another replica holds the sync lease")]
    Standby,
}

impl DirectionError {
    /// A login error of `org`'s client: backing off when the client did not even try.
    pub fn login(org: Org, error: SalesforceError) -> DirectionError {
        if error.is_login_backing_off() {
            DirectionError::LoginBackingOff { org, error }
        } else {
            DirectionError::Login { org, error }
        }
    }

    /// What the failure needs: a login error keeps its client error's kind (a refusal is
    /// `Auth`); a store error its store kind; a pass error its own [`PassError::kind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            DirectionError::Login { error, .. } | DirectionError::LoginBackingOff { error, .. } => {
                port_error(error).kind
            }
            DirectionError::Store(e) => store_error_kind(e),
            DirectionError::Pass(e) => e.kind(),
            DirectionError::Standby => ErrorKind::Transient,
        }
    }

    /// Whether the failure is a login backing off, logged at debug (not an error every
    /// cycle: the refusal itself was logged once).
    pub fn login_backing_off(&self) -> bool {
        matches!(self, DirectionError::LoginBackingOff { .. })
    }
}

/// What one direction of a cycle came to.
#[derive(Debug)]
pub struct DirectionResult {
    pub direction: Direction,
    /// The pass's counts and outcome, or why it could not run or stopped.
    pub result: Result<PassReport, DirectionError>,
}

impl DirectionResult {
    /// Every record read got a durable outcome: the pass ran to its end.
    pub fn complete(&self) -> bool {
        matches!(&self.result, Ok(report) if report.outcome == PassOutcome::Completed)
    }
}

/// One cycle: A -> B, then B -> A (absent when cancelled before it started).
#[derive(Debug)]
pub struct CycleSummary {
    /// The cycle's number: both directions' `cycles` rows and log lines carry it.
    pub cycle: u64,
    pub directions: Vec<DirectionResult>,
}

impl CycleSummary {
    /// Whether both directions ran to their end (failed records included: they are durable
    /// in the failure queue).
    pub fn complete(&self) -> bool {
        self.directions.len() == 2 && self.directions.iter().all(DirectionResult::complete)
    }

    /// Records created, updated and failed over both directions.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.directions
            .iter()
            .filter_map(|d| d.result.as_ref().ok())
            .fold((0, 0, 0), |(c, u, f), r| {
                (c + r.created, u + r.updated, f + r.failed)
            })
    }
}

/// What a direction pass does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// The watermark query, then due failure retries, then the inbox (a poll cycle).
    Poll,
    /// The inbox only, or (`retries`) due failure retries then the inbox (push worker).
    Drain { retries: bool },
}

impl PassKind {
    fn as_str(self) -> &'static str {
        match self {
            PassKind::Poll => "poll",
            PassKind::Drain { retries: false } => "inbox",
            PassKind::Drain { retries: true } => "retries",
        }
    }
}

/// The daemon's long-lived parts.
pub struct Daemon {
    settings: Settings,
    /// The state: watermarks, links, failures, inbox, cycles.
    store: Store,
    /// Org A's client; logs in lazily and renews its session on 401.
    a: Client,
    /// Org B's client.
    b: Client,
    /// Field names and value translations between the orgs.
    mapping: Mapping,
    /// This process's hold on the state database (none for an in-memory one).
    _lock: Option<StateLock>,
    /// When housekeeping last ran (see [`Daemon::housekeeping`]).
    housekept: Mutex<Option<Instant>>,
    /// Counters for `/metrics`, recorded by every pass whatever triggered it.
    metrics: Metrics,
    /// The refused-login state last written to the store, per org (A, B): written again only
    /// when it changes, so a daemon backing off does not write every cycle.
    auth_written: Mutex<[Option<Option<AuthFailureView>>; 2]>,
    /// The lease keeper, on PostgreSQL (none on SQLite: always the leader).
    ha: Option<Ha>,
}

/// How often housekeeping runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);
/// Processed inbox rows are kept this long: well past Salesforce's 24 hours of redelivery, so
/// that a late duplicate is still recognised, and long enough to look into a recent message.
const KEEP_PROCESSED_INBOX: chrono::Duration = chrono::Duration::days(7);
/// Finished cycles are kept this long (the history `status` and the logs refer to).
const KEEP_CYCLES: chrono::Duration = chrono::Duration::days(30);
impl Daemon {
    /// Opens the store (applying migrations), locks it for this process (another daemon on
    /// the same database is refused: see [`StateLock`]) and builds both clients. Does not log
    /// in: the first cycle does, and a login failure is that cycle's error, not a crash.
    pub async fn new(settings: &Settings) -> anyhow::Result<Daemon> {
        let store = Store::open_state(&settings.state).await.with_context(|| {
            format!(
                "opening the state store {}",
                crate::domain::redact_url(&settings.state.url)
            )
        })?;
        let lock = StateLock::acquire(&settings.state.url).await?;
        let mapping = Mapping::from_settings(settings).context("building the field mapping")?;
        let options = ClientOptions::for_settings(settings);
        let a = Client::with_options(&settings.a, options.clone())
            .context("setting up the client of org a")?;
        let b =
            Client::with_options(&settings.b, options).context("setting up the client of org b")?;
        let ha = (store.backend() == Backend::Postgres).then(|| {
            let me = this_replica();
            let stop = CancellationToken::new();
            let keeper = LeaseKeeper::spawn(
                store.clone(),
                me.clone(),
                settings.ha.lease_ttl,
                stop.clone(),
            );
            tracing::info!(
                holder = %me.holder,
                lease_ttl_ms = u64::try_from(settings.ha.lease_ttl.as_millis()).unwrap_or(u64::MAX),
                "replica: syncing only while holding the sync lease"
            );
            Ha { me, keeper, stop }
        });
        Ok(Daemon {
            settings: settings.clone(),
            store,
            a,
            b,
            mapping,
            _lock: lock,
            housekept: Mutex::new(None),
            metrics: Metrics::default(),
            auth_written: Mutex::new([None, None]),
            ha,
        })
    }

    /// The state store (for status and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings the daemon was built from (for the push listener).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The client of `org` (the push listener learns the org id through it).
    pub fn client(&self, org: Org) -> &Client {
        match org {
            Org::A => &self.a,
            Org::B => &self.b,
        }
    }

    /// The field mapping (for passes run outside `run_once`, e.g. inbox drains).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Marks cycles left `running` by a crashed process as interrupted. Call once at start;
    /// a replica (PostgreSQL) does so when it becomes the leader instead ([`Daemon::recover`]
    /// from the worker), never while another replica may be running a cycle.
    pub async fn recover(&self) -> anyhow::Result<()> {
        if self.ha.is_some() && !self.is_leader() {
            return Ok(());
        }
        let n = self.store.interrupt_running_cycles().await?;
        if n > 0 {
            tracing::warn!(
                cycles = n,
                "found cycles left running by a previous process; marked interrupted (their pages that did not commit are read again)"
            );
        }
        Ok(())
    }

    /// The counters of `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Logs in to both orgs and logs who we are, or why not (a refused login starts its
    /// back-off here, so a wrong password shows at start in every mode, not at the first
    /// notification). Never fails: the passes try again.
    pub async fn login_all(&self) {
        for org in [Org::A, Org::B] {
            match self.client(org).login().await {
                Ok(identity) => tracing::info!(
                    org = org.as_str(),
                    user_id = identity.user_id.as_deref().unwrap_or(""),
                    org_id = identity.org_id.as_deref().unwrap_or(""),
                    instance_url = %identity.instance_url,
                    "logged in"
                ),
                // A refusal of the credentials was logged by the client with its back-off.
                Err(e) if e.class == crate::salesforce::ErrorClass::Auth => {}
                Err(e) => tracing::warn!(
                    org = org.as_str(),
                    error = %e,
                    "cannot log in yet; the passes try again"
                ),
            }
        }
        self.record_org_states().await;
    }

    /// Writes each org's refused-login state to the store when it changed.
    async fn record_org_states(&self) {
        for (i, org) in [Org::A, Org::B].into_iter().enumerate() {
            let now = self.client(org).auth_failure();
            let changed = {
                let written = self.auth_written.lock().unwrap_or_else(|e| e.into_inner());
                match &written[i] {
                    // The same failure (same code and attempt count) is already stored.
                    Some(Some(w)) => now
                        .as_ref()
                        .is_none_or(|n| n.code != w.code || n.attempts != w.attempts),
                    Some(None) => now.is_some(),
                    None => true,
                }
            };
            if !changed {
                continue;
            }
            let stored = now.as_ref().map(|f| AuthFailed {
                code: f.code.clone(),
                message: f.message.clone(),
                attempts: f.attempts,
                since: Some(f.since),
                next_attempt: Some(f.next_attempt),
            });
            match self.store.set_auth_failed(org, stored.as_ref()).await {
                Ok(()) => {
                    self.auth_written.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(now);
                }
                Err(e) => {
                    tracing::warn!(org = org.as_str(), error = %e, "cannot store the org's login state")
                }
            }
        }
    }

    /// One cycle, A -> B then B -> A, both under one cycle number, each recorded in the
    /// `cycles` table.
    pub async fn run_once(&self, cancel: &CancellationToken) -> CycleSummary {
        let summary = self
            .run_cycle(&Direction::BOTH, PassKind::Poll, cancel)
            .await;
        if self.is_leader() {
            self.housekeeping().await;
        }
        summary
    }

    /// For the push worker: drains the inbox of each direction that has pending
    /// notifications (and, with `retries`, due failures), both under one cycle number.
    /// `None` when there was nothing to do (no cycle is recorded then).
    pub async fn drain(&self, retries: bool, cancel: &CancellationToken) -> Option<CycleSummary> {
        let mut busy = Vec::new();
        for direction in Direction::BOTH {
            match self.has_work(direction, retries).await {
                Ok(true) => busy.push(direction),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(direction = %direction, error = %e, "cannot read the inbox")
                }
            }
        }
        if busy.is_empty() {
            return None;
        }
        Some(
            self.run_cycle(&busy, PassKind::Drain { retries }, cancel)
                .await,
        )
    }

    async fn has_work(
        &self,
        direction: Direction,
        retries: bool,
    ) -> Result<bool, crate::store::StoreError> {
        if !self
            .store
            .pending_notifications(direction.source(), 1)
            .await?
            .is_empty()
        {
            return Ok(true);
        }
        if retries {
            let due = self
                .store
                .due_failures(direction, &self.settings.sync.object, chrono::Utc::now(), 1)
                .await?;
            return Ok(!due.is_empty());
        }
        Ok(false)
    }

    async fn run_cycle(
        &self,
        directions: &[Direction],
        kind: PassKind,
        cancel: &CancellationToken,
    ) -> CycleSummary {
        if !self.is_leader() {
            tracing::debug!("cycle skipped: not the leader");
            return CycleSummary {
                cycle: 0,
                directions: directions
                    .iter()
                    .map(|&direction| DirectionResult {
                        direction,
                        result: Err(DirectionError::Standby),
                    })
                    .collect(),
            };
        }
        let cycle = match self.store.next_cycle_number().await {
            Ok(n) => n,
            Err(e) => {
                let e = Arc::new(e);
                tracing::error!(error = %DirectionError::Store(e.clone()), "cycle skipped");
                return CycleSummary {
                    cycle: 0,
                    directions: directions
                        .iter()
                        .map(|&direction| DirectionResult {
                            direction,
                            result: Err(DirectionError::Store(e.clone())),
                        })
                        .collect(),
                };
            }
        };
        let mut results = Vec::with_capacity(directions.len());
        for &direction in directions {
            if cancel.is_cancelled() {
                break;
            }
            let result = self.run_pass(cycle, direction, kind, cancel).await;
            let lost = matches!(&result.result, Err(DirectionError::Pass(e)) if e.lease_lost().is_some())
                || matches!(&result.result, Err(DirectionError::Standby));
            results.push(result);
            if lost {
                // The other direction is the new leader's.
                break;
            }
        }
        self.record_org_states().await;
        CycleSummary {
            cycle: u64::try_from(cycle).unwrap_or(0),
            directions: results,
        }
    }

    /// One direction pass of cycle `cycle` with all its bookkeeping: the `cycles` row, the
    /// integration user, the pass itself, the metrics and one summary log line (at debug when
    /// the pass found nothing to do, so a quiet daemon's log stays quiet).
    pub async fn run_pass(
        &self,
        cycle: i64,
        direction: Direction,
        kind: PassKind,
        cancel: &CancellationToken,
    ) -> DirectionResult {
        let started = Instant::now();
        let id = match self.store.begin_direction(cycle, direction).await {
            Ok(id) => id,
            Err(e) => {
                let error = DirectionError::Store(Arc::new(e));
                tracing::error!(cycle, direction = %direction, error = %error, "direction skipped");
                return DirectionResult {
                    direction,
                    result: Err(error),
                };
            }
        };
        let (source, target) = match direction.source() {
            Org::A => (&self.a, &self.b),
            Org::B => (&self.b, &self.a),
        };
        let store = self.pass_store();
        // A replica that loses the lease mid-pass stops issuing pages at once (its writes to
        // the orgs cannot be fenced); the pages in flight end at their refused commit.
        let pass_cancel = cancel.child_token();
        let watcher = self
            .role_watch()
            .map(|role| tokio::spawn(cancel_on_demotion(role, pass_cancel.clone())));
        let cancel = &pass_cancel;
        let result = match (store, source.user_id().await) {
            (None, _) => Err(DirectionError::Standby),
            (_, Err(e)) => Err(DirectionError::login(direction.source(), e)),
            (Some(store), Ok(user)) => {
                let config = PassConfig::from_settings(
                    &self.settings,
                    direction,
                    u64::try_from(cycle).unwrap_or(0),
                    Some(user),
                );
                let pass = Pass::new(
                    &config,
                    &self.mapping,
                    source,
                    target,
                    &store,
                    &self.metrics,
                )
                .with_bulk(crate::sync::BulkConfig::from_settings(&self.settings));
                match kind {
                    PassKind::Poll => match pass.run(cancel).await {
                        Ok(report) if checks_deletes(kind, self.settings.sync.deletes, &report) => {
                            let run = DeletedCheckRun {
                                cycle: config.cycle,
                                direction,
                                object: &self.settings.sync.object,
                                frequency: self.settings.sync.deleted_check_frequency,
                            };
                            self.safety_net(&pass, source, &run, report, cancel)
                                .await
                                .map_err(DirectionError::from)
                        }
                        other => other.map_err(DirectionError::from),
                    },
                    PassKind::Drain { retries } => drain_pass(&pass, retries, cancel)
                        .await
                        .map_err(DirectionError::from),
                }
            }
        };
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        let elapsed = started.elapsed();
        match &result {
            Ok(report) => PassFinished {
                cycle,
                direction,
                kind: kind.as_str(),
                report: report.counts(),
                elapsed,
            }
            .emit(&self.metrics),
            Err(DirectionError::Pass(e)) if e.lease_lost().is_some() => {
                let epoch = e.lease_lost().unwrap_or_default();
                LeaseLostOnCommit {
                    cycle,
                    direction,
                    epoch,
                }
                .emit();
                if let Some(ha) = &self.ha {
                    ha.keeper.demote(epoch);
                }
            }
            Err(error) => PassFailed {
                cycle,
                direction,
                kind: kind.as_str(),
                error: &error.to_string(),
                // A login not even attempted (backing off from a refusal) was logged once
                // by the client when it was refused: not again every cycle.
                login_backing_off: error.login_backing_off(),
            }
            .emit(),
        }
        let (counts, outcome, error) = PassReport::cycle_record(&result);
        if let Err(e) = self
            .store
            .finish_cycle(id, &counts, outcome, error.as_deref())
            .await
        {
            tracing::error!(cycle, direction = %direction, error = %e, "cannot record the end of the cycle");
        }
        DirectionResult { direction, result }
    }

    /// At most once an hour: deletes processed inbox rows older than 7 days and finished
    /// cycles older than 30 days, so that the state database does not grow without end.
    /// Links, watermarks and the failure queue are never touched. A failure is logged and
    /// tried again at the next hour.
    pub async fn housekeeping(&self) {
        {
            let mut last = self.housekept.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < HOUSEKEEPING_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let now = chrono::Utc::now();
        let inbox = self
            .store
            .purge_processed_notifications(now - KEEP_PROCESSED_INBOX)
            .await;
        let cycles = self.store.purge_cycles(now - KEEP_CYCLES).await;
        let event = match (inbox, cycles) {
            (Ok(inbox_rows), Ok(cycles)) => Housekeeping::Done { inbox_rows, cycles },
            (inbox, cycles) => Housekeeping::Failed {
                error: [inbox.err(), cycles.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        };
        event.emit();
    }
}

/// The push worker's pass: due failure retries (with `retries`), then the inbox.
async fn drain_pass(
    pass: &Pass<'_, Client, Client, Store>,
    retries: bool,
    cancel: &CancellationToken,
) -> Result<PassReport, PassError> {
    let mut report = PassReport::default();
    if retries {
        report = pass.retry_failures(cancel).await?;
        if report.outcome != PassOutcome::Completed {
            return Ok(report);
        }
    }
    let more = pass.drain_inbox(cancel).await?;
    report.absorb(more);
    Ok(report)
}

/// Cancels `token` on SIGTERM or SIGINT (Ctrl-C).
pub fn cancel_on_signals(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping after the page in flight"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "stopping after the page in flight"),
        }
        token.cancel();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direction_error_keeps_its_kind_and_writes_the_same_text_as_before() {
        use crate::salesforce::{AUTH_FAILED, ErrorClass};
        let refused = |code: &str, class| {
            DirectionError::login(
                Org::A,
                SalesforceError::client("a", code, "the login was refused", class),
            )
        };
        let backing_off = refused(AUTH_FAILED, ErrorClass::Auth);
        assert!(backing_off.login_backing_off());
        assert_eq!(backing_off.kind(), ErrorKind::Auth);
        assert!(
            backing_off
                .to_string()
                .starts_with("cannot log in to org a: org a: AUTH_FAILED"),
            "{backing_off}"
        );
        let invalid = refused("INVALID_LOGIN", ErrorClass::Auth);
        assert!(
            !invalid.login_backing_off(),
            "a login tried and refused is an error"
        );
        assert_eq!(invalid.kind(), ErrorKind::Auth);
        let down = refused("CONNECTION_FAILED", ErrorClass::Transient);
        assert_eq!(down.kind(), ErrorKind::Transient);
        assert!(!down.login_backing_off());

        let store = DirectionError::Store(Arc::new(StoreError::Corrupt("x".into())));
        assert_eq!(
            store.to_string(),
            "cannot record the cycle in the state store: unexpected value in the state database: x"
        );
        assert_eq!(store.kind(), ErrorKind::NeedsOperator);
        assert!(!store.login_backing_off());

        let bad_row = PassError::BadRow {
            org: Org::B,
            message: "no Id".into(),
        };
        let text = bad_row.to_string();
        let pass = DirectionError::from(bad_row);
        assert_eq!(pass.to_string(), text, "a pass error's text is its own");
        assert_eq!(pass.kind(), ErrorKind::NeedsOperator);
    }

    /// A daemon on a state file in `dir` (its orgs are never called).
    async fn daemon_in(dir: &std::path::Path) -> Daemon {
        let toml = format!(
            "[state]\nurl = \"sqlite://{}\"\n[orgs.a]\nusername = \"a@example.com\"\n\
             [orgs.b]\nusername = \"b@example.com\"\n",
            dir.join("state.db").display()
        );
        let vars = [
            ("ORGSYNC__ORGS__A__PASSWORD", "p"),
            ("ORGSYNC__ORGS__A__SECURITY_TOKEN", "t"),
            ("ORGSYNC__ORGS__B__PASSWORD", "p"),
            ("ORGSYNC__ORGS__B__SECURITY_TOKEN", "t"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings =
            crate::config::load_str("test", &[("test", &toml)], &vars).expect("settings load");
        Daemon::new(&settings).await.expect("daemon builds")
    }

    async fn count(store: &Store, table: &str) -> i64 {
        let sql = match table {
            "inbox" => "SELECT count(*) FROM inbox",
            _ => "SELECT count(*) FROM cycles",
        };
        sqlx::query_scalar(sql)
            .fetch_one(&store.pool)
            .await
            .expect("count")
    }

    /// An inbox row processed long ago, and one processed now; a cycle finished long ago.
    async fn age_rows(store: &Store, tag: &str) {
        for (received, processed) in [
            ("2020-01-01T00:00:00.000Z", Some("2020-01-01T00:00:01.000Z")),
            ("2020-01-01T00:00:00.000Z", None),
        ] {
            sqlx::query(
                "INSERT INTO inbox (org, notification_id, object, record_id, received_at, \
                 processed_at) VALUES ('a', ?, 'Opportunity', '006000000000001AAA', ?, ?)",
            )
            .bind(format!("{tag}-{}", processed.is_some()))
            .bind(received)
            .bind(processed)
            .execute(&store.pool)
            .await
            .expect("insert inbox row");
        }
        for _ in 0..2 {
            sqlx::query(
                "INSERT INTO cycles (direction, started_at, finished_at, outcome) \
                 VALUES ('a_to_b', '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:01.000Z', 'ok')",
            )
            .execute(&store.pool)
            .await
            .expect("insert cycle");
        }
    }

    #[tokio::test]
    async fn housekeeping_deletes_old_processed_notifications_and_cycles_once_an_hour() {
        let dir = tempfile::tempdir().expect("temp dir");
        let daemon = daemon_in(dir.path()).await;
        let store = daemon.store();
        age_rows(store, "first").await;
        daemon.housekeeping().await;
        // The unprocessed notification stays, however old; of the two old cycles, the last
        // one of its direction stays.
        assert_eq!(count(store, "inbox").await, 1);
        assert_eq!(count(store, "cycles").await, 1);
        // Within the hour, housekeeping does not run again.
        age_rows(store, "second").await;
        daemon.housekeeping().await;
        assert_eq!(count(store, "inbox").await, 3);
        assert_eq!(count(store, "cycles").await, 3);
    }
}
