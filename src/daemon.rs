//! The imperative shell around the sync engine: builds the clients, the store and the mapping
//! from [`Settings`], runs one cycle (A -> B, then B -> A) with its bookkeeping in the store's
//! `cycles` table, and repeats it on the poll schedule until cancelled.
//!
//! [`Daemon::run_once`] is the one-step function: `orgsync sync --once` calls it once,
//! `orgsync run` calls it on a schedule, and tests call it directly. Cancellation
//! (SIGTERM/SIGINT in `run`) reaches the passes, which stop between pages: the page in flight
//! is finished and committed, so nothing read is lost and nothing is left half-recorded.
//!
//! The API budget (`orgs.X.api_budget_percent`) is enforced by the client itself (it refuses
//! calls past the budget, letting a probe through each minute); the pass turns that refusal, like
//! a daily-limit error, into a pause that records nothing and resumes on a later cycle.

use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::salesforce::{Client, ClientOptions};
use crate::store::{CycleCounts, CycleOutcome, Direction, Org, StateLock, Store};
use crate::sync::{Mapping, Pass, PassConfig, PassOutcome, PassReport};

/// What one direction of a cycle came to.
#[derive(Debug)]
pub struct DirectionResult {
    pub direction: Direction,
    /// The pass's counts and outcome, or why it could not run or stopped.
    pub result: Result<PassReport, String>,
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
}

impl Daemon {
    /// Opens the store (applying migrations), locks it for this process (another daemon on
    /// the same database is refused: see [`StateLock`]) and builds both clients. Does not log
    /// in: the first cycle does, and a login failure is that cycle's error, not a crash.
    pub async fn new(settings: &Settings) -> anyhow::Result<Daemon> {
        let store = Store::open(&settings.state_url)
            .await
            .with_context(|| format!("opening the state store {}", settings.state_url))?;
        let lock = StateLock::acquire(&settings.state_url).await?;
        let mapping = Mapping::from_settings(settings).context("building the field mapping")?;
        let options = ClientOptions::for_settings(settings);
        let a = Client::with_options(&settings.a, options.clone())
            .context("setting up the client of org a")?;
        let b =
            Client::with_options(&settings.b, options).context("setting up the client of org b")?;
        Ok(Daemon {
            settings: settings.clone(),
            store,
            a,
            b,
            mapping,
            _lock: lock,
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

    /// Marks cycles left `running` by a crashed process as interrupted. Call once at start.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let n = self.store.interrupt_running_cycles().await?;
        if n > 0 {
            tracing::warn!(
                cycles = n,
                "found cycles left running by a previous process; marked interrupted (their pages that did not commit are read again)"
            );
        }
        Ok(())
    }

    /// One cycle, A -> B then B -> A, each recorded in the `cycles` table.
    pub async fn run_once(&self, cancel: &CancellationToken) -> CycleSummary {
        let mut directions = Vec::with_capacity(2);
        let mut cycle = 0;
        for direction in [Direction::AToB, Direction::BToA] {
            if cancel.is_cancelled() {
                break;
            }
            let (id, result) = self.run_direction(direction, cancel).await;
            if cycle == 0 {
                cycle = u64::try_from(id).unwrap_or(0);
            }
            directions.push(DirectionResult { direction, result });
        }
        CycleSummary { cycle, directions }
    }

    async fn run_direction(
        &self,
        direction: Direction,
        cancel: &CancellationToken,
    ) -> (i64, Result<PassReport, String>) {
        let id = match self.store.begin_cycle(direction).await {
            Ok(id) => id,
            Err(e) => {
                let message = format!("cannot record the cycle in the state store: {e}");
                tracing::error!(direction = %direction, error = %message, "direction skipped");
                return (0, Err(message));
            }
        };
        let cycle = u64::try_from(id).unwrap_or(0);
        let (source, target) = match direction.source() {
            Org::A => (&self.a, &self.b),
            Org::B => (&self.b, &self.a),
        };
        let result = match source.user_id().await {
            Err(e) => Err(format!(
                "cannot log in to org {}: {e}",
                direction.source().as_str()
            )),
            Ok(user) => {
                let config =
                    PassConfig::from_settings(&self.settings, direction, cycle, Some(user));
                Pass::new(&config, &self.mapping, source, target, &self.store)
                    .run(cancel)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let (counts, outcome, error) = match &result {
            Ok(report) => {
                let (outcome, error) = report.cycle_outcome();
                (report.cycle_counts(), outcome, error)
            }
            Err(message) => {
                tracing::error!(
                    cycle,
                    direction = %direction,
                    error = %message,
                    "direction pass failed; what did not commit is read again next cycle"
                );
                (
                    CycleCounts::default(),
                    CycleOutcome::Failed,
                    Some(message.clone()),
                )
            }
        };
        if let Err(e) = self
            .store
            .finish_cycle(id, &counts, outcome, error.as_deref())
            .await
        {
            tracing::error!(cycle, direction = %direction, error = %e, "cannot record the end of the cycle");
        }
        (id, result)
    }

    /// `orgsync run` in poll mode: waits `scheduler.start_delay`, then runs a cycle every
    /// `scheduler.frequency` until `cancel` fires. Cycles never overlap: a slow cycle delays
    /// the next one (the next starts `frequency` after the previous one started, or at once if
    /// it took longer).
    pub async fn run(&self, cancel: &CancellationToken) -> anyhow::Result<()> {
        self.recover().await?;
        tracing::info!(
            frequency_ms = duration_ms(self.settings.scheduler_frequency),
            start_delay_ms = duration_ms(self.settings.scheduler_start_delay),
            object = %self.settings.object,
            "orgsync started (poll)"
        );
        if !sleep_or_cancel(self.settings.scheduler_start_delay, cancel).await {
            return Ok(());
        }
        let mut ticks = schedule(self.settings.scheduler_frequency);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let summary = self.run_once(cancel).await;
            let (created, updated, failed) = summary.totals();
            tracing::debug!(
                cycle = summary.cycle,
                created,
                updated,
                failed,
                complete = summary.complete(),
                "cycle finished"
            );
            if cancel.is_cancelled() {
                break;
            }
        }
        tracing::info!("orgsync stopped: the page in flight was committed");
        Ok(())
    }
}

/// The poll schedule: a tick at once, then every `frequency`; a late tick is delayed, never
/// bunched (no burst of catch-up cycles after a slow one).
fn schedule(frequency: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(frequency.max(Duration::from_millis(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Sleeps, unless cancelled first; returns whether the sleep completed.
async fn sleep_or_cancel(duration: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

    #[tokio::test(start_paused = true)]
    async fn a_slow_cycle_delays_the_next_tick_instead_of_bunching_them() {
        let start = tokio::time::Instant::now();
        let mut ticks = schedule(Duration::from_secs(10));
        ticks.tick().await; // at once
        assert_eq!(start.elapsed(), Duration::ZERO);
        // a cycle that takes 35 s (three and a half periods)
        tokio::time::sleep(Duration::from_secs(35)).await;
        ticks.tick().await; // the late tick fires at once...
        assert_eq!(start.elapsed(), Duration::from_secs(35));
        ticks.tick().await; // ...and the next one is a full period later, not a catch-up burst
        assert_eq!(start.elapsed(), Duration::from_secs(45));
    }

    #[tokio::test(start_paused = true)]
    async fn the_start_delay_is_cut_short_by_cancellation() {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            c.cancel();
        });
        let start = tokio::time::Instant::now();
        assert!(!sleep_or_cancel(Duration::from_secs(3600), &cancel).await);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(sleep_or_cancel(Duration::from_secs(5), &CancellationToken::new()).await);
    }
}
