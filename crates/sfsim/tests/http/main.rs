//! HTTP-level tests of sfsim: every endpoint and error shape, driven with reqwest against orgs
//! started in-process on port 0. One test binary; `helpers` starts orgs and logs in.

mod auth;
mod bulk;
mod connection;
mod control;
mod deletes;
mod describe;
mod dml;
mod helpers;
mod identity;
mod objects;
mod outbound;
mod query;
