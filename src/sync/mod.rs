//! The sync engine: one direction pass at a time, A -> B then B -> A.
//!
//! Contract (what holds whatever happens, crash included):
//! - **Writes are idempotent.** A page can be replayed any number of times: a version the link
//!   already records is dropped before any lookup; a record written but not yet linked is found
//!   again by its match key (or written again by an upsert on the external id field), never
//!   created twice.
//! - **Delivery is at least once.** Every row read gets a durable outcome (link and snapshot,
//!   failure-queue entry, or "already recorded") before the watermark passes it; a crash
//!   between a write and the page's commit replays the page.
//! - **The watermark only moves forward, and only at a page commit**: it becomes the page's
//!   highest SystemModstamp in the same store transaction that records every row's outcome.
//!   A daily-limit stop, a query error or a store error commits nothing for the page.
//!
//! Files: `accounts` (parent accounts), `mapping` (canonical form, value maps), `plan` (pure
//! decisions), `ports` (what the pass needs from an org and from the store), `pass` (the
//! direction pass, failure retries and the inbox drain), `cycle` (A -> B then B -> A),
//! `adapters` (the store ports over the SQLite store; the org port over the Salesforce client
//! lives in `salesforce::org_port`).

#[cfg(test)]
mod account_tests;
mod accounts;
mod adapters;
mod errors;
mod mapping;
mod pass;
mod plan;
mod ports;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod test_support;

pub use accounts::{AccountMode, Resolution, resolve_names};
pub use mapping::{
    Canonical, Mapping, MappingError, from_snapshot, normalize, same_value, to_snapshot,
};
pub use pass::{
    Pass, PassConfig, PassError, PassOutcome, PassReport, Stop, parse_source_row, parse_target_row,
};
pub use plan::{
    Action, Conflict, Decision, FailCode, LinkView, PageItem, Policy, QueuedFailure, SkipReason,
    SourceRow, Target, TargetRow, Triage, Winner, plan, plan_page, triage,
};
pub use ports::{
    Batch, ErrorKind, FieldIn, OrgPort, PageTxPort, PortError, QueryKind, RecordError, RecordQuery,
    StorePort, WriteOk, WriteOutcome,
};
