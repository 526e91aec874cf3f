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
use crate::store::{Direction, Org, StateLock, Store};
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
    /// When housekeeping last ran (see [`Daemon::housekeeping`]).
    housekept: std::sync::Mutex<Option<std::time::Instant>>,
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
            housekept: std::sync::Mutex::new(None),
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
        self.housekeeping().await;
        CycleSummary { cycle, directions }
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
        match (inbox, cycles) {
            (Ok(inbox), Ok(cycles)) => {
                if inbox + cycles > 0 {
                    tracing::info!(
                        inbox_rows = inbox,
                        cycles,
                        "housekeeping: old processed notifications and cycles deleted"
                    );
                }
            }
            (inbox, cycles) => {
                let error = [inbox.err(), cycles.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(error = %error, "housekeeping failed; tried again in an hour");
            }
        }
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
        if let Err(message) = &result {
            tracing::error!(
                cycle,
                direction = %direction,
                error = %message,
                "direction pass failed; what did not commit is read again next cycle"
            );
        }
        let (counts, outcome, error) = PassReport::cycle_record(&result);
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
