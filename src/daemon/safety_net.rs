//! The daemon's getDeleted safety net (issue 13, README "The getDeleted safety net"): after a
//! completed poll pass with `sync.deletes = "propagate"`, the check of `sync::deleted_check`
//! runs for the pass's source org when it is due, its deletes go through the pass's delete
//! path, and its new start is stored only once they are durable.

use tokio_util::sync::CancellationToken;

use super::{Daemon, PassKind};
use crate::config::DeletePolicy;
use crate::salesforce::Client;
use crate::store::Store;
use crate::sync::deleted_check::{DeletedCheckOutcome, DeletedCheckRun, deleted_ids_to_apply};
use crate::sync::{Pass, PassError, PassOutcome, PassReport};

impl Daemon {
    /// The getDeleted safety net after a completed poll pass (`report`, to which its own
    /// counts are added): when due ([`deleted_ids_to_apply`]: no API call otherwise), one
    /// getDeleted call on the source org; the deletes it lists whose links are still live go
    /// through the pass's delete path (`Pass::apply_source_deletes`: same breaker,
    /// tombstones); only once they are durable is the check's new start stored. A failed
    /// getDeleted call is logged and tried again next cycle (nothing stored); the pass's own
    /// result stands.
    pub(super) async fn safety_net(
        &self,
        pass: &Pass<'_, Client, Client, Store>,
        source: &Client,
        run: &DeletedCheckRun<'_>,
        mut report: PassReport,
        cancel: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        let now = chrono::Utc::now();
        let pending = match deleted_ids_to_apply(source, &self.store, &self.metrics, run, now).await
        {
            Ok(DeletedCheckOutcome::Skipped(_)) => return Ok(report),
            Ok(DeletedCheckOutcome::Checked(pending)) => pending,
            Err(e) => {
                tracing::warn!(
                    cycle = run.cycle,
                    direction = %run.direction,
                    kind = ?e.kind(),
                    error = %e,
                    "getDeleted safety net not run: tried again next cycle"
                );
                return Ok(report);
            }
        };
        let applied = if pending.ids.is_empty() {
            PassReport::default()
        } else {
            pass.apply_source_deletes(pending.ids.clone(), cancel)
                .await?
        };
        let durable = applied.outcome == PassOutcome::Completed;
        report.absorb(applied);
        if durable && let Err(e) = pending.commit(&self.store).await {
            // Not stored: the next check lists the same window again (the applied ids are
            // tombstones by then).
            tracing::error!(
                cycle = run.cycle,
                direction = %run.direction,
                error = %e,
                "cannot store the getDeleted safety net's next start"
            );
        }
        Ok(report)
    }
}

/// Whether the getDeleted safety net may run after this pass: a poll pass that ran to its
/// end, with `sync.deletes = "propagate"` (whether it is due is the check's own decision).
pub(super) fn checks_deletes(kind: PassKind, deletes: DeletePolicy, report: &PassReport) -> bool {
    kind == PassKind::Poll
        && deletes == DeletePolicy::Propagate
        && report.outcome == PassOutcome::Completed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_net_follows_only_a_completed_poll_pass_with_deletes_propagated() {
        let done = PassReport::default();
        assert_eq!(done.outcome, PassOutcome::Completed);
        assert!(checks_deletes(
            PassKind::Poll,
            DeletePolicy::Propagate,
            &done
        ));
        assert!(!checks_deletes(PassKind::Poll, DeletePolicy::Ignore, &done));
        assert!(!checks_deletes(
            PassKind::Drain { retries: true },
            DeletePolicy::Propagate,
            &done
        ));
        let cancelled = PassReport {
            outcome: PassOutcome::Cancelled,
            ..PassReport::default()
        };
        assert!(!checks_deletes(
            PassKind::Poll,
            DeletePolicy::Propagate,
            &cancelled
        ));
    }
}
