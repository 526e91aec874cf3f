//! Replicas' role changes (issue 15, README "Replicas"): this replica took the sync lease,
//! lost it (a renewal refused or failed), or had a page commit refused by its fence. Log lines
//! only: the number of changes is the keeper's own counter, served as
//! `orgsync_ha_lease_changes_total`, and the role is the gauge `orgsync_ha_leader`, both read
//! at scrape time.

use crate::domain::Direction;

/// A role change seen by the lease keeper.
#[derive(Debug)]
pub enum RoleChanged<'a> {
    /// This replica took the sync lease: it syncs now, fencing with `epoch`.
    Leader { holder: &'a str, epoch: i64 },
    /// It no longer holds it (a renewal was refused or failed, or a commit was refused).
    Standby { holder: &'a str, epoch: i64 },
}

impl RoleChanged<'_> {
    pub fn emit(&self) {
        match self {
            RoleChanged::Leader { holder, epoch } => {
                tracing::info!(epoch, holder = %holder, "took the sync lease: leader");
            }
            RoleChanged::Standby { holder, epoch } => {
                tracing::warn!(epoch, holder = %holder, "lost the sync lease: standby");
            }
        }
    }
}

/// A pass's page commit was refused by its fence: another replica took the lease over. The
/// pass stopped with nothing of the page kept; the replica becomes a standby.
#[derive(Debug)]
pub struct LeaseLostOnCommit {
    pub cycle: i64,
    pub direction: Direction,
    pub epoch: i64,
}

impl LeaseLostOnCommit {
    pub fn emit(&self) {
        tracing::warn!(
            cycle = self.cycle,
            direction = %self.direction,
            epoch = self.epoch,
            "lost the sync lease: a commit was refused (another replica took over); the pass \
             stopped and nothing of its page was kept; standby"
        );
    }
}
