//! The daemon's side of replicas (issue 15, README "Replicas"): who this process is, its lease
//! keeper (PostgreSQL only), the role the worker and the passes read, the store a pass writes
//! through (fenced while leader), and the watcher that stops a pass once its replica no longer
//! leads. On SQLite there is no keeper and the process is always the leader.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Daemon;
use crate::ha::{LeaseKeeper, Role};
use crate::store::{Replica, Store};

/// A replica's part in leadership.
pub(super) struct Ha {
    pub(super) me: Replica,
    pub(super) keeper: LeaseKeeper,
    /// Stops the keeper (which releases a held lease).
    pub(super) stop: CancellationToken,
}

/// Who this process is among a pair's replicas: its host, its pid, and a random suffix (a
/// restarted process on the same host is someone else).
pub fn this_replica() -> Replica {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let pid = std::process::id();
    let suffix: u32 = rand::random();
    Replica {
        holder: format!("{host}-{pid}-{suffix:08x}"),
        host,
        pid,
    }
}

impl Daemon {
    /// This replica's role, `None` on SQLite (one process, always the leader).
    pub fn role(&self) -> Option<Role> {
        self.ha.as_ref().map(|ha| ha.keeper.role.borrow().clone())
    }

    /// Whether this process may sync now.
    pub fn is_leader(&self) -> bool {
        self.role().is_none_or(|r| r.is_leader())
    }

    /// The role channel (for the worker to wait on), `None` on SQLite.
    pub fn role_watch(&self) -> Option<watch::Receiver<Role>> {
        self.ha.as_ref().map(|ha| ha.keeper.role.clone())
    }

    /// Who this replica is (`None` on SQLite).
    pub fn replica(&self) -> Option<&Replica> {
        self.ha.as_ref().map(|ha| &ha.me)
    }

    /// How many times this replica's role changed (0 on SQLite).
    pub fn lease_changes(&self) -> u64 {
        self.ha.as_ref().map_or(0, |ha| ha.keeper.changes())
    }

    /// Waits for the lease keeper's first answer (the role after its first take), at most a
    /// TTL; at once on SQLite. For `orgsync sync`, which syncs once only as the leader.
    pub async fn first_role(&self) -> Option<Role> {
        let mut role = self.role_watch()?;
        let ttl = self.settings.ha.lease_ttl;
        // A time-out leaves the role as it is: a standby.
        let _ = tokio::time::timeout(ttl, role.changed()).await;
        let now = role.borrow().clone();
        Some(now)
    }

    /// Stops the lease keeper, which releases a held lease (a standby takes over at its next
    /// try, not after the TTL), and waits for it. Nothing on SQLite.
    pub async fn shutdown(&self) {
        let Some(ha) = &self.ha else { return };
        ha.stop.cancel();
        let mut role = ha.keeper.role.clone();
        // The keeper's task ends by dropping its sender.
        while role.changed().await.is_ok() {}
    }

    /// The store a pass writes through: this one on SQLite; fenced with the lease's epoch on
    /// PostgreSQL while leader; none while standby.
    pub(super) fn pass_store(&self) -> Option<Store> {
        match self.role() {
            None => Some(self.store.clone()),
            Some(Role::Leader(fence)) => Some(self.store.fenced(fence, self.settings.ha.lease_ttl)),
            Some(Role::Standby { .. }) => None,
        }
    }
}

/// Cancels `token` as soon as `role` is not the leader (or the keeper has stopped).
pub(super) async fn cancel_on_demotion(mut role: watch::Receiver<Role>, token: CancellationToken) {
    loop {
        if !role.borrow_and_update().is_leader() {
            tracing::warn!("no longer the leader: the pass stops after the pages in flight");
            token.cancel();
            return;
        }
        if role.changed().await.is_err() {
            token.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pass_is_cancelled_when_its_replica_stops_leading() {
        let fence = crate::store::Fence {
            holder: "h-1-a".into(),
            epoch: 2,
        };
        let (tx, rx) = watch::channel(Role::Leader(fence.clone()));
        let token = CancellationToken::new();
        let watcher = tokio::spawn(cancel_on_demotion(rx, token.clone()));
        // A renewal of the same lease changes nothing.
        tx.send_replace(Role::Leader(fence));
        tokio::task::yield_now().await;
        assert!(!token.is_cancelled());
        tx.send_replace(Role::Standby { leader: None });
        watcher.await.expect("the watcher ends");
        assert!(token.is_cancelled());
    }
}
