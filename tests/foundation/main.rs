//! Tests of the foundation: configuration, the state store, and the `orgsync` binary.
//! One test binary (one link step) for all three.

mod cli;
mod config;
mod config_deletes;
mod config_state;
mod import;
mod store;
mod store_backends;
mod store_failures;
