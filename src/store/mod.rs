//! The state store: everything orgsync must remember across restarts, in SQLite through sqlx.
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
//! `inbox`, `cycles`, `bulk` (Bulk API jobs and their staged rows), plus `counts` for `status`. Migrations live in `/migrations` and are
//! embedded in the binary and applied by [`Store::open`].

mod bulk;
mod counts;
mod cycles;
mod db;
mod failures;
mod inbox;
mod link_admin;
mod links;
mod lock;
mod org_state;
mod time;
mod watermarks;

/// Re-exported from the ground floor so `crate::store::{Org, Direction, FailureClass}` keeps
/// working.
pub use crate::domain::{Direction, FailureClass, Org};
pub use bulk::{BulkJob, BulkJobState, BulkSummary, StagedRow};
pub use counts::StoreCounts;
pub use cycles::{Cycle, CycleCounts, CycleOutcome};
pub use db::{PageTx, Store, StoreError};
pub use failures::{Failure, FailureBackoff, FailureState, NewFailure, schedule_after_failure};
pub use inbox::{InboxItem, NewNotification};
pub use link_admin::{LinkAdminError, same_record};
pub use links::{Link, LinkState, LinkWrite};
pub use lock::{LockError, StateLock};
pub use org_state::AuthFailed;
pub use time::{format_timestamp, parse_timestamp};
pub use watermarks::WatermarkRow;
