//! orgsync: keeps one Salesforce object (Opportunity first, with its parent Account)
//! synchronized in both directions between two orgs. See DESIGN and the README.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod events;
pub mod import_properties;
pub mod metrics;
pub mod salesforce;
pub mod server;
pub mod status;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod worker;
