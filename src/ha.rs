//! Replicas (issue 15, part 2): the lease keeper, a task that
//! takes the pair's sync lease when it is free and renews it while held, and publishes this
//! replica's [`Role`] on a watch channel. The daemon's worker is to sync, drain the inbox and
//! retry failures only while the role is [`Role::Leader`], and to fence every page commit with
//! its [`Fence`] (`store::PageTx::commit_fenced`), which is what makes a replica that is slow
//! to notice a lost lease harmless to the store.
//!
//! The decisions are pure ([`role_after_take`], [`role_after_renewal`]); the loop only runs
//! them every [`renew_interval`] (a third of the TTL). A renewal that fails for any reason (the
//! lease expired or was taken, or the database is unreachable) makes this replica a standby at
//! once: it cannot know whether it still holds the lease, and its commits would be refused
//! anyway. A pass whose fenced commit was refused tells the keeper ([`LeaseKeeper::demote`]),
//! which steps down at once instead of at its next renewal. On shutdown a leader releases the
//! lease so that a standby takes over at its next try instead of after the TTL.
//!
//! The daemon's side ([`crate::daemon::Daemon`]): on PostgreSQL it spawns a keeper, its worker
//! runs passes only as leader, each pass writing through `Store::fenced`; on SQLite there is
//! no keeper (the file lock makes the process the only one, always the leader).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::events::RoleChanged;
use crate::store::{Fence, Lease, Replica, Store, renew_interval};

/// What this replica may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It holds the sync lease: it syncs, fencing each commit with this epoch.
    Leader(Fence),
    /// Another replica holds it (the lease as last read), or nobody is known to.
    Standby { leader: Option<Lease> },
}

impl Role {
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader(_))
    }

    /// The fence to commit with, when leader.
    pub fn fence(&self) -> Option<&Fence> {
        match self {
            Role::Leader(fence) => Some(fence),
            Role::Standby { .. } => None,
        }
    }
}

/// The role after a take attempt returned `lease` (as it now stands) at `now`.
pub fn role_after_take(me: &Replica, lease: Lease, now: DateTime<Utc>) -> Role {
    if lease.holder == me.holder && lease.is_valid_at(now) {
        Role::Leader(Fence {
            holder: lease.holder,
            epoch: lease.epoch,
        })
    } else {
        Role::Standby {
            leader: lease.is_valid_at(now).then_some(lease),
        }
    }
}

/// The role after the leader `fence` tried to renew: still leader only if the renewal was
/// stored.
pub fn role_after_renewal(fence: Fence, renewed: Result<bool, String>) -> Role {
    match renewed {
        Ok(true) => Role::Leader(fence),
        Ok(false) | Err(_) => Role::Standby { leader: None },
    }
}

/// A running lease keeper: its role channel, its task, and its hooks.
#[derive(Debug)]
pub struct LeaseKeeper {
    pub role: watch::Receiver<Role>,
    pub task: tokio::task::JoinHandle<()>,
    /// [`LeaseKeeper::demote`]'s channel to the task.
    demote: mpsc::UnboundedSender<i64>,
    /// Role changes so far (`orgsync_ha_lease_changes_total`).
    changes: Arc<AtomicU64>,
}

impl LeaseKeeper {
    /// Starts keeping the sync lease of `store` for `me`, with leases of `ttl`; stops (and
    /// releases a held lease) when `shutdown` is cancelled.
    pub fn spawn(
        store: Store,
        me: Replica,
        ttl: Duration,
        shutdown: CancellationToken,
    ) -> LeaseKeeper {
        let (tx, role) = watch::channel(Role::Standby { leader: None });
        let (demote, mut demoted) = mpsc::unbounded_channel::<i64>();
        let changes = Arc::new(AtomicU64::new(0));
        let counted = changes.clone();
        let task = tokio::spawn(async move {
            let mut current = Role::Standby { leader: None };
            loop {
                let next = step(&store, &me, ttl, current.clone()).await;
                if announce(&me, &current, &next) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                current = next;
                tx.send_replace(current.clone());
                if let Err(e) = store.heartbeat_replica(&me, current.is_leader()).await {
                    tracing::debug!(error = %e, "cannot record this replica's heartbeat");
                }
                tokio::select! {
                    () = tokio::time::sleep(renew_interval(ttl)) => {}
                    Some(epoch) = demoted.recv() => {
                        let next = role_after_refused_commit(current.clone(), epoch);
                        if announce(&me, &current, &next) {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        current = next;
                        tx.send_replace(current.clone());
                        // Then at once a take: the lease may be free again (expired, nobody
                        // took it), and a take gives a new epoch.
                    }
                    () = shutdown.cancelled() => break,
                }
            }
            if let Role::Leader(fence) = &current {
                match store.release_lease(fence).await {
                    Ok(_) => {
                        tracing::info!(epoch = fence.epoch, holder = %me.holder, "lease released")
                    }
                    Err(e) => {
                        tracing::warn!(epoch = fence.epoch, error = %e, "cannot release the lease; it expires by itself")
                    }
                }
            }
            tx.send_replace(Role::Standby { leader: None });
        });
        LeaseKeeper {
            role,
            task,
            demote,
            changes,
        }
    }

    /// A commit fenced with `epoch` was refused: if that is still the epoch this replica
    /// leads with, it becomes a standby at once (without waiting for its next renewal).
    pub fn demote(&self, epoch: i64) {
        // The task is gone only after shutdown, when the role is standby anyway.
        let _ = self.demote.send(epoch);
    }

    /// How many times this replica's role changed.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// The role after a commit fenced with `epoch` was refused: a standby if it was led with
/// that epoch; a leader under a newer epoch (taken again since) stays one.
pub fn role_after_refused_commit(current: Role, epoch: i64) -> Role {
    match current {
        Role::Leader(fence) if fence.epoch == epoch => Role::Standby { leader: None },
        other => other,
    }
}

/// One round: a leader renews, a standby tries to take the lease.
async fn step(store: &Store, me: &Replica, ttl: Duration, current: Role) -> Role {
    match current {
        Role::Leader(fence) => {
            let renewed = store
                .renew_lease(&fence, ttl)
                .await
                .map_err(|e| e.to_string());
            if let Err(e) = &renewed {
                tracing::warn!(epoch = fence.epoch, error = %e, "cannot renew the lease");
            }
            role_after_renewal(fence, renewed)
        }
        Role::Standby { .. } => match store.try_acquire_lease(me, ttl).await {
            Ok(lease) => match store.sync_lease().await {
                Ok((_, now)) => role_after_take(me, lease, now),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the lease");
                    Role::Standby { leader: None }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the lease");
                Role::Standby { leader: None }
            }
        },
    }
}

/// One log line when the role changes; whether it did.
fn announce(me: &Replica, before: &Role, after: &Role) -> bool {
    match (before, after) {
        (Role::Leader(old), Role::Leader(new)) if old == new => false,
        (_, Role::Leader(fence)) => {
            RoleChanged::Leader {
                holder: &me.holder,
                epoch: fence.epoch,
            }
            .emit();
            true
        }
        (Role::Leader(fence), Role::Standby { .. }) => {
            RoleChanged::Standby {
                holder: &me.holder,
                epoch: fence.epoch,
            }
            .emit();
            true
        }
        (Role::Standby { .. }, Role::Standby { .. }) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Replica {
        Replica {
            holder: "me-1-a".into(),
            host: "me".into(),
            pid: 1,
        }
    }

    fn lease(holder: &str, expires_in: i64, now: DateTime<Utc>) -> Lease {
        Lease {
            name: "sync".into(),
            holder: holder.into(),
            host: "h".into(),
            pid: 2,
            epoch: 7,
            acquired_at: now,
            renewed_at: now,
            expires_at: now + chrono::Duration::seconds(expires_in),
        }
    }

    #[test]
    fn a_take_makes_a_leader_only_of_the_valid_holder() {
        let now = Utc::now();
        assert_eq!(
            role_after_take(&me(), lease("me-1-a", 15, now), now),
            Role::Leader(Fence {
                holder: "me-1-a".into(),
                epoch: 7
            })
        );
        let theirs = lease("other-2-b", 15, now);
        assert_eq!(
            role_after_take(&me(), theirs.clone(), now),
            Role::Standby {
                leader: Some(theirs)
            }
        );
        assert_eq!(
            role_after_take(&me(), lease("me-1-a", -1, now), now),
            Role::Standby { leader: None }
        );
    }

    #[test]
    fn a_refused_commit_steps_down_only_the_epoch_it_was_fenced_with() {
        let fence = |epoch| Fence {
            holder: "me-1-a".into(),
            epoch,
        };
        assert!(!role_after_refused_commit(Role::Leader(fence(3)), 3).is_leader());
        // Taken again since (a newer epoch): a late refusal of the old one changes nothing.
        assert_eq!(
            role_after_refused_commit(Role::Leader(fence(4)), 3),
            Role::Leader(fence(4))
        );
        assert!(!role_after_refused_commit(Role::Standby { leader: None }, 3).is_leader());
    }

    #[test]
    fn any_failed_renewal_steps_down() {
        let fence = Fence {
            holder: "me-1-a".into(),
            epoch: 3,
        };
        assert!(role_after_renewal(fence.clone(), Ok(true)).is_leader());
        assert!(!role_after_renewal(fence.clone(), Ok(false)).is_leader());
        assert!(!role_after_renewal(fence, Err("connection refused".into())).is_leader());
    }

    async fn until(rx: &mut watch::Receiver<Role>, want: impl Fn(&Role) -> bool) -> Role {
        // A hang guard, not a timing assertion: the change is expected within a few rounds.
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|r| want(r)))
            .await
            .expect("the role changes")
            .expect("the keeper runs")
            .clone()
    }

    crate::both_backends!(
        async fn one_keeper_leads_and_the_other_takes_over_when_it_stops(store) {
            let ttl = Duration::from_millis(300);
            let replica = |name: &str| Replica {
                holder: format!("{name}-1-x"),
                host: name.into(),
                pid: 1,
            };
            let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
            let a = LeaseKeeper::spawn(store.clone(), replica("a"), ttl, stop_a.clone());
            let mut a_role = a.role.clone();
            let first = until(&mut a_role, Role::is_leader).await;
            let b = LeaseKeeper::spawn(store.clone(), replica("b"), ttl, stop_b.clone());
            let mut b_role = b.role.clone();
            // b sees a as the leader.
            until(&mut b_role, |r| {
                matches!(r, Role::Standby { leader: Some(l) } if l.holder == "a-1-x")
            })
            .await;
            stop_a.cancel();
            a.task.await.expect("a stops");
            let taken = until(&mut b_role, Role::is_leader).await;
            let (Some(first), Some(taken)) = (first.fence(), taken.fence()) else {
                unreachable!("both are leaders")
            };
            assert_eq!(taken.epoch, first.epoch + 1);
            stop_b.cancel();
            b.task.await.expect("b stops");
        }
    );

    crate::both_backends!(
        async fn a_leader_that_stops_renewing_is_replaced_after_the_ttl(store) {
            // As a paused or partitioned leader: its task is gone, it never releases.
            let ttl = Duration::from_millis(300);
            let replica = |name: &str| Replica {
                holder: format!("{name}-1-x"),
                host: name.into(),
                pid: 1,
            };
            let a = LeaseKeeper::spawn(store.clone(), replica("a"), ttl, CancellationToken::new());
            let mut a_role = a.role.clone();
            let first = until(&mut a_role, Role::is_leader).await;
            a.task.abort();
            let stop_b = CancellationToken::new();
            let b = LeaseKeeper::spawn(store.clone(), replica("b"), ttl, stop_b.clone());
            let mut b_role = b.role.clone();
            let taken = until(&mut b_role, Role::is_leader).await;
            let (Some(old), Some(new)) = (first.fence(), taken.fence()) else {
                unreachable!("both are leaders")
            };
            assert_eq!(new.epoch, old.epoch + 1);
            // The old leader's fence no longer commits.
            let page = store.begin().await.expect("begin");
            assert!(page.commit_fenced(old).await.is_err());
            stop_b.cancel();
            b.task.await.expect("b stops");
        }
    );
}
