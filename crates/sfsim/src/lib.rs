//! sfsim: a faithful subset of a Salesforce org, served over HTTP, for tests, benchmarks and
//! the orgsync demo. One org per listener ([`start_org`] gives a [`SimOrg`]); see the README for the control API.
//!
//! Layers: `ids`, `value`, `schema` (what a record is), `soql` (parse and evaluate queries),
//! `db` (one org's records, indexes and DML, pure and synchronous), `server` (HTTP: auth, REST,
//! collections, Bulk API 2.0, control API, the Outbound Messaging delivery task), `bulk` (Bulk API 2.0 jobs), `outbound` (Outbound
//! Messaging: queue, settings, counters, the SOAP envelope).

pub mod bulk;
pub mod db;
pub mod error;
pub mod ids;
pub mod outbound;
pub mod schema;
pub mod server;
pub mod soql;
pub mod value;

pub use server::{OrgConfig, SimOrg, TEST_JWT_PRIVATE_KEY_PEM, TEST_JWT_PUBLIC_KEY_PEM, start_org};
