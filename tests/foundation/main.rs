//! Tests of the foundation: configuration, the state store, and the `orgsync` binary.
//! One test binary (one link step) for all three.

mod cli;
mod config;
mod config_deletes;
mod import;
mod store;
mod store_failures;
