//! The state store: everything orgsync must remember across restarts, in SQLite or PostgreSQL
//! through sqlx (`db` says how the two backends share one code path).
//!
//! Contract (what the sync engine may rely on, and what every method here keeps):
//! - **Writes are idempotent.** Writing the same link, failure outcome, notification or
//!   watermark twice leaves the same state as writing it once, so replaying a page after a
//!   crash is harmless.
//! - **A watermark only moves forward.** [`Store::advance_watermark`] stores `max(old, new)`
//!   in SQL; a smaller value is ignored, never an error.
//! - **Live links are unique on both sides.** A record in A is linked to at most one record in
//!   B and the other way round; a write that would break this fails with
//!   [`StoreError::LinkConflict`] instead of replacing a link. Unlinked and tombstoned pairs
//!   ([`LinkState`]) are kept beside them and do not count for uniqueness.
//! - **A page is one transaction.** [`Store::begin`] returns a [`PageTx`] with the same write
//!   methods; links, snapshots, failures, processed notifications and the watermark of a page
//!   become durable together at [`PageTx::commit`], or not at all (dropping the `PageTx`
//!   rolls back).
//!
//! Each file is one table: `watermarks`, `links` (and the operator's `link_admin`), `failures` (with the pure retry schedule),
//! `inbox`, `cycles`, `deleted_checks` (the getDeleted safety net's progress), `bulk` (Bulk
//! API jobs and their staged rows), plus `counts` for `status` and `reconcile` (`orgsync reconcile`'s staged rows, comparisons and last report); `link_revive` makes a
//! tombstoned link live again (undelete); `copy` serves `orgsync state migrate`, and
//! `testing` gives stores of both backends to the tests. Migrations live in `/migrations`
//! (SQLite) and `/migrations/postgres`, are embedded in the binary and applied by
//! [`Store::open`]; `migrations/README.md` says how to write one for both.

mod bulk;
mod bulk_pass;
mod copy;
mod counts;
mod cycles;
mod db;
mod deleted_checks;
mod failures;
mod inbox;
mod lease;
mod link_admin;
mod link_revive;
mod links;
mod lock;
mod org_state;
mod reconcile;
#[doc(hidden)]
pub mod testing;
mod time;
mod watermarks;

/// Re-exported from the ground floor so `crate::store::{Org, Direction, FailureClass}` keeps
/// working.
pub use crate::domain::{Direction, FailureClass, Org};
pub use bulk::{BulkJob, BulkJobState, BulkSummary, StagedRow};
pub use bulk_pass::{PendingWrite, StagedTarget, StoredResult};
pub use copy::{CopyError, TableCount, count_mismatches};
pub use counts::StoreCounts;
pub use cycles::{Cycle, CycleCounts, CycleOutcome};
pub use db::{Backend, DEFAULT_PAIR, PageTx, Store, StoreError, pair_schema, valid_pair_name};
pub use deleted_checks::{DeletedCheck, DeletedCheckWrite};
pub use failures::{Failure, FailureBackoff, FailureState, NewFailure, schedule_after_failure};
pub use inbox::{InboxItem, NewNotification};
pub use lease::{Fence, FenceError, Lease, Replica, SYNC_LEASE, SeenReplica, renew_interval};
pub use link_admin::{LinkAdminError, same_record};
pub use links::{Link, LinkState, LinkWrite, Tombstone};
pub use lock::{LockError, StateLock};
pub use org_state::AuthFailed;
pub use reconcile::{
    AmbiguousRow, MissingRow, OrphanRow, PairRow, ReconcileRow, StoredReconcileReport,
    UnlinkedMatchRow,
};
pub use time::{format_timestamp, parse_timestamp};
pub use watermarks::WatermarkRow;

#[cfg(test)]
pub(crate) use link_revive::tombstone_for_test;
