//! The daemon's HTTP face, started in every trigger mode on `http.bind`:`http.port`: one axum
//! server that takes Outbound Messaging POSTs (`/outbound/a`, `/outbound/b`, and the template's
//! `/?source=A|B`; push and hybrid only), stores their notifications in the inbox and commits
//! before it acks, plus `GET /healthz`, `/readyz`, `/status` and `/metrics`. [`start`] also
//! starts the scheduling loop ([`crate::worker`]) that the listener wakes after storing a
//! message.
//!
//! A message is acked only after its notifications are durably stored: anything wrong (unknown
//! source, bad or missing secret, oversized body, malformed XML, another org's id, a store
//! error) is answered with a SOAP fault (HTTP 500, as SOAP does) and a log line, so Salesforce
//! keeps the message and retries it. The notification's field values are never trusted: the
//! worker fetches every record fresh from its org.
//!
//! Split by concern: [`outbound`] (the Outbound Messaging handlers and their pure checks),
//! [`health`] (health, readiness, status and the metrics scrape); the Prometheus text is
//! [`crate::metrics`]'s; [`listen`] binds the listener, routes, and starts the worker.

mod health;
mod listen;
mod outbound;

pub(crate) use listen::Shared;
pub use listen::{Running, check_push_settings, serve, start};
pub use outbound::MAX_BODY_BYTES;
