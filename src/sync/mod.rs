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
//! Files, in the order a page meets them: `feeds` (where pages come from: the watermark
//! query, the failure queue) and `drain` (the inbox, and the fetch by id that isolates the
//! ids a source refuses); `rows` (parsing, dedup, the link view, and [`RowState`][rows], the
//! one state per source row that every stage fills in); `matching` (the lookup query,
//! candidate selection and the plan of a page, pure, beside `plan`, the pure decisions);
//! `gate` (how pages in flight take turns); `parents` (parent accounts, over the pure
//! `accounts`); `write` (collections calls); `deletes` (the delete stage after the writes,
//! the mass-delete breaker, and the entry point for source records known deleted); `commit`
//! (the page's one transaction); `report` (what a pass did). `pass` orchestrates them
//! (`pass_config` is its configuration); `errors` is why a pass stops; `mapping` is
//! the canonical form; `ports` is what the pass needs from an org and from the store;
//! `adapters` are the store ports over the SQLite store and `org_adapter` the org port over
//! the Salesforce client (with the record queries' SOQL and the client errors' kinds).
//!
//! [rows]: rows::RowState

#[cfg(test)]
mod account_tests;
mod accounts;
mod adapters;
mod bulk_pass;
mod bulk_pass_targets;
mod bulk_pass_write;
mod bulk_port;
mod bulk_read;
#[cfg(test)]
mod bulk_sim_tests;
mod bulk_write;
mod by_ids;
mod commit;
#[cfg(test)]
mod delete_sim_tests;
pub mod deleted_check;
mod deletes;
mod drain;
mod errors;
mod feeds;
mod gate;
mod mapping;
mod matching;
mod org_adapter;
mod parents;
mod pass;
mod pass_config;
mod plan;
mod ports;
#[cfg(test)]
mod recycle_sim_tests;
mod report;
mod rows;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod test_support;
pub mod undelete;
#[cfg(test)]
mod undelete_sim_tests;
mod write;

pub use accounts::{AccountMode, Resolution, resolve_names};
pub use bulk_read::{BulkConfig, BulkRead, MAX_RECORDS, backlog_estimate, read_through_bulk};
pub use errors::{PassError, Stop, store_error_kind};
pub use mapping::{
    Canonical, Mapping, MappingError, from_snapshot, normalize, same_value, to_snapshot,
};
pub use org_adapter::{build_record_queries, build_typed_record_queries, port_error};
pub use pass::{Pass, PassConfig};
pub use pass_config::DeleteRules;
pub use plan::{
    Action, Conflict, Decision, DeleteConflict, FailCode, LinkView, PageItem, Policy,
    QueuedFailure, SkipReason, SourceRow, Target, TargetRow, Triage, Winner, plan, plan_page,
    triage,
};
pub use ports::{
    Batch, ErrorKind, FieldIn, OrgPort, PageTxPort, PortError, QueryKind, RecordError, RecordQuery,
    StorePort, WriteOk, WriteOutcome,
};
pub use report::{PassOutcome, PassReport};
pub use rows::{parse_source_row, parse_target_row};
