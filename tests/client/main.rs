//! End-to-end tests of the Salesforce client and `orgsync check` against in-process sfsim
//! orgs. One test binary (one link step) for all of them.

mod auth;
mod check;
mod helpers;
mod mock;
mod outbound;
mod query;
mod secrets;
mod undelete;
mod writes;
