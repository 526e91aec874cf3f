//! Observability as events: one struct per thing worth observing, and one `emit` method that
//! writes its log line (tracing, one line, with `cycle`, `direction` and the record or org ids)
//! and updates its metric together, so a log line and a counter cannot disagree or drift
//! apart (the model is vector's `internal_events`). The metric names are the constants of
//! [`crate::metrics`]; the daemon's [`crate::metrics::Metrics`] is passed to `emit` (each
//! daemon has its own, so several daemons in one process keep separate counters).
//!
//! - [`pass`]: a direction pass finished or failed (the daemon's shell; a finished pass is
//!   described by [`PassCounts`], so this module imports nothing of the engine);
//! - [`outbound`]: an outbound message acked or refused (the HTTP listener);
//! - [`worker`]: the heartbeat and housekeeping;
//! - [`ha`]: a replica's role changes (the sync lease taken or lost, a fenced commit refused);
//! - [`client`]: the Salesforce client's state changes (login refused, accepted again; API
//!   pause began, still paused, resumed). The client has no daemon handle, so those events
//!   only log: their metrics (`orgsync_auth_failed`, `orgsync_api_paused`) are gauges the
//!   scrape reads from the client's gates, which those same transitions set;
//! - [`bulk`]: Bulk API 2.0 jobs of a pass (created, ended, with the fall back to REST);
//! - [`record`]: the per-record events of a direction pass (written, updated, linked, skipped,
//!   conflict, failure queued or cleared, carried back, parent account), each with a counter
//!   of its own, emitted by the engine's stages; [`deletes`]: a target deleted, a delete
//!   conflict, deletes held by the mass-delete breaker;
//! - [`reconcile`]: a difference repaired by `orgsync reconcile --repair`;
//! - [`recycle`]: a getDeleted window with a hole (the safety net, `sync::deleted_check`); a
//!   tombstoned pair's target undeleted or recreated (`sync::undelete`).
//!
//! Every file here imports only `metrics` and `domain` (the ground floor, see the crate's
//! layering), so the client, the engine and the shell may all emit these events.
//!
//! An event that has no metric (a failed pass is counted by the `cycles` table; the heartbeat
//! and housekeeping are log lines only) says so on its struct.

pub mod bulk;
pub mod client;
pub mod deletes;
pub mod ha;
pub mod outbound;
pub mod pass;
pub mod reconcile;
pub mod record;
pub mod recycle;
pub mod worker;

#[cfg(test)]
mod tests;

pub use ha::{LeaseLostOnCommit, RoleChanged};
pub use outbound::{OutboundAcked, OutboundRefused};
pub use pass::{PassCounts, PassFailed, PassFinished};
pub use recycle::{DeletedWindowHole, TargetRestored};
pub use worker::{Heartbeat, Housekeeping};
