//! The daemon's one scheduling loop, for every trigger policy: a `select!` over the poll tick,
//! the inbox wake-up (signalled by the listener after it stored a message), the failure-retry
//! tick, the hybrid safety tick, a heartbeat and shutdown. One task, so passes never overlap;
//! each arm calls the same shell ([`Daemon::run_once`] or [`Daemon::drain`]) and the shell does
//! the bookkeeping.
//!
//! | policy | poll tick (`scheduler.frequency`) | inbox wake-up | retry tick (`scheduler.frequency`) | safety tick (`scheduler.safety_frequency`) |
//! |---|---|---|---|---|
//! | poll | a full cycle (retries and the inbox included) | - | - | - |
//! | push | - | drain | retries + drain | - |
//! | hybrid | - | drain | retries + drain | a full cycle, at start too |
//!
//! Replicas (PostgreSQL): every arm that syncs is enabled only while this replica is the
//! leader ([`Daemon::role`]); a standby waits on the role channel and otherwise idles (its
//! HTTP listener still stores outbound messages in the shared inbox, whose wake-up permit the
//! worker takes once it leads). On becoming the leader it marks the old leader's cycles left
//! running as interrupted and, in push modes, drains the inbox at once; a poll tick that came
//! due while standby fires at once too. On SQLite the process is always the leader.
//!
//! With `reconcile.frequency`, a reconcile arm looks (at most a minute apart) whether the
//! background reconcile is due and runs it in its turn, on the leader only, so it never
//! overlaps a cycle ([`Daemon::reconcile_turn`]).
//!
//! A heartbeat line at info every [`HEARTBEAT_EVERY`] says the daemon is alive and what it did
//! since the last one, so an idle daemon (whose passes log at debug) is still visibly alive.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::TriggerPolicy;
use crate::daemon::{CycleSummary, Daemon, ReconcileTurns};
use crate::events::Heartbeat;
use crate::ha::Role;

/// How often the heartbeat line is logged.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(300);

/// What happened since the last heartbeat.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct SinceHeartbeat {
    cycles: u64,
    written: u64,
    failed: u64,
    last_cycle: u64,
}

impl SinceHeartbeat {
    fn absorb(&mut self, summary: &CycleSummary) {
        self.cycles += 1;
        self.last_cycle = summary.cycle;
        let (created, updated, failed) = summary.totals();
        self.written += created + updated;
        self.failed += failed;
    }
}

/// Runs the loop until `cancel` fires.
pub async fn run(daemon: Arc<Daemon>, wake: Arc<Notify>, cancel: CancellationToken) {
    let settings = daemon.settings();
    let policy = settings.trigger.policy;
    let poll = policy == TriggerPolicy::Poll;
    let push = !poll;
    let hybrid = policy == TriggerPolicy::Hybrid;
    tracing::info!(
        policy = ?policy,
        frequency_ms = duration_ms(settings.scheduler.frequency),
        start_delay_ms = duration_ms(settings.scheduler.start_delay),
        object = %settings.sync.object,
        "orgsync started"
    );
    if poll && !sleep_or_cancel(settings.scheduler.start_delay, &cancel).await {
        return;
    }
    let mut poll_ticks = schedule(settings.scheduler.frequency);
    let mut retries = schedule(settings.scheduler.frequency);
    let mut safety = schedule(settings.scheduler.safety_frequency);
    let mut heartbeat = schedule(HEARTBEAT_EVERY);
    // The background reconcile (`reconcile.frequency`): a look every check period whether a
    // run is due, its turn between the other arms' passes.
    let reconcile_every = settings.reconcile.frequency;
    let mut reconcile_ticks = schedule(crate::daemon::reconcile_check_period(
        reconcile_every.unwrap_or(Duration::MAX),
    ));
    let mut reconcile_turns = ReconcileTurns::default();
    // The first tick of an interval fires at once: the retry sweep's is not needed (a wake
    // permit set at start covers a leftover inbox), the heartbeat's says nothing yet.
    retries.tick().await;
    heartbeat.tick().await;
    if push {
        // Whatever a crash left in the inbox is drained first.
        wake.notify_one();
    }
    let mut since = SinceHeartbeat::default();
    let mut role = daemon.role_watch();
    // A replica leads once the role channel says so (its first value is seen as a change, so
    // a lease taken before the worker started still counts as taking over: recovery, drain).
    let mut leader = role.is_none();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            now = role_change(&mut role), if role.is_some() => {
                let Some(now) = now else {
                    // The keeper stopped (shutting down): nothing more to lead.
                    role = None;
                    leader = false;
                    continue;
                };
                if now && !leader {
                    if let Err(e) = daemon.recover().await {
                        tracing::error!(error = %format!("{e:#}"), "cannot mark the previous leader's running cycles interrupted");
                    }
                    if push {
                        wake.notify_one();
                    }
                }
                leader = now;
            }
            _ = poll_ticks.tick(), if poll && leader => {
                since.absorb(&daemon.run_once(&cancel).await);
            }
            _ = safety.tick(), if hybrid && leader => {
                since.absorb(&daemon.run_once(&cancel).await);
            }
            _ = wake.notified(), if push && leader => {
                if let Some(summary) = daemon.drain(false, &cancel).await {
                    since.absorb(&summary);
                }
            }
            _ = retries.tick(), if push && leader => {
                if let Some(summary) = daemon.drain(true, &cancel).await {
                    since.absorb(&summary);
                }
                daemon.housekeeping().await;
            }
            _ = reconcile_ticks.tick(), if reconcile_every.is_some() && leader => {
                daemon.reconcile_turn(&mut reconcile_turns, &cancel).await;
            }
            _ = heartbeat.tick() => {
                Heartbeat {
                    policy: &policy,
                    cycles: since.cycles,
                    written: since.written,
                    failed: since.failed,
                    last_cycle: since.last_cycle,
                }
                .emit();
                since = SinceHeartbeat { last_cycle: since.last_cycle, ..SinceHeartbeat::default() };
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    tracing::debug!("worker stopped");
}

/// The next role change: whether this replica now leads; `None` once the keeper has stopped.
async fn role_change(role: &mut Option<watch::Receiver<Role>>) -> Option<bool> {
    let rx = role.as_mut()?;
    rx.changed().await.ok()?;
    let leads = rx.borrow_and_update().is_leader();
    Some(leads)
}

/// A schedule: a tick at once, then every `period`; a late tick is delayed, never bunched (no
/// burst of catch-up cycles after a slow one).
fn schedule(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period.max(Duration::from_millis(1)));
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

    #[test]
    fn the_heartbeat_sums_what_cycles_wrote() {
        let mut since = SinceHeartbeat::default();
        let summary = CycleSummary {
            cycle: 7,
            directions: vec![crate::daemon::DirectionResult {
                direction: crate::store::Direction::AToB,
                result: Ok(crate::sync::PassReport {
                    created: 2,
                    updated: 1,
                    failed: 1,
                    ..Default::default()
                }),
            }],
        };
        since.absorb(&summary);
        since.absorb(&summary);
        assert_eq!(
            since,
            SinceHeartbeat {
                cycles: 2,
                written: 6,
                failed: 2,
                last_cycle: 7
            }
        );
    }
}
