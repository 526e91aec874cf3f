//! The Salesforce client: authentication (SOAP login and four OAuth flows), SOQL queries with
//! cursor paging, sObject Collections writes, describe and limits, with retries, one re-login
//! on an expired session, API usage tracking and errors that name the org.
//!
//! Files: `bulk` (Bulk API 2.0 query and ingest jobs, CSV), `client` (sessions, the request loop), `auth` (logins), `query`, `collections`,
//! `describe` (describe and limits), `soql` (the SOQL builder), `error`, `retry`, `usage`
//! (`Sforce-Limit-Info`, call counts, API budget), `outbound` (Outbound Messaging
//! notifications and their Ack), `ids` (record id checks: key prefix and checksum),
//! `replication` (getDeleted, the delete log),
//! `soap_calls` (Partner API data calls REST has no verb for: `undelete`).
//!
//! The engine's `OrgPort` over this client lives with the engine (`sync::org_adapter`): this
//! module imports nothing of `sync`.

mod auth;
pub mod bulk;
mod client;
mod collections;
mod describe;
mod error;
pub mod gate;
pub mod ids;
pub mod outbound;
mod query;
mod replication;
mod retry;
mod soap_calls;
pub mod soql;
mod transfer;
mod usage;

pub use auth::{
    Session, SoapLoginReply, ids_from_identity_url, instance_origin, jwt_assertion, jwt_audience,
    parse_soap_login_reply, soap_login_envelope,
};
pub use client::{
    AUTH_FAILED, AuthFailureView, CALL_OPTIONS, Client, ClientOptions, FieldTypes, Identity,
};
pub use collections::{COLLECTION_LIMIT, ItemError, ItemResult, RecordFailure, Saved};
pub use describe::{FieldDescribe, Limits, ObjectDescribe, parse_limits};
pub use error::{ErrorClass, SalesforceError, classify, parse_rest_error_body};
pub use query::{QueryPage, QueryPager};
pub use replication::{DeletedRecord, DeletedWindow, parse_get_deleted};
pub use retry::CallRetry;
pub use soql::{Cond, Literal, Op, Order, Soql, SoqlError};
pub use usage::{CallCounts, CallKind, parse_limit_info};
