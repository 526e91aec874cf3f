//! orgsync: keeps one Salesforce object (Opportunity first, with its parent Account)
//! synchronized in both directions between two orgs. See DESIGN and the README.
//!
//! Layers, each importing only the ones below it (never one above, never a sibling's
//! internals):
//! 1. the shell: `cli` (commands), `daemon`, `server` (HTTP), `worker`, plus the commands'
//!    own modules `check`, `status`, `links_cmd`, `state_cmd`, `demo`, `import_properties`,
//!    `ha` (the lease keeper of replicas), `reconcile` (the full comparison of both orgs), and `telemetry` that the shell sets up;
//! 2. `sync`: the engine (direction passes, plans, the failure queue's use), over ports that
//!    it defines and adapts `store` (`sync::adapters`) and `salesforce` (`sync::org_adapter`)
//!    to;
//! 3. `store` (the state, on SQLite or PostgreSQL) and `salesforce` (the API client), side by side;
//! 4. the ground floor: `domain` (`Org`, `Direction`, `FailureClass`), `config` (the
//!    validated settings), `metrics` (the daemon's recorder and the family names) and
//!    `events` (one struct per observable event, its log line and its metric together: the
//!    client, the engine and the shell all emit them), which import nothing above them (an
//!    event takes plain values: the pass's end takes `events::PassCounts`, which
//!    `sync::PassReport::counts` fills in).
//!
//! Tests may reach up where the behaviour they check crosses layers:
//! `sync::account_check_tests` runs `check` (its preflight of `syncAccount`'s account fields, against the same simulated
//! orgs as the account passes), and the tests of
//! `metrics` and `events` render a `sync::PassReport`. No other import goes upward.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod events;
pub mod ha;
pub mod import_properties;
pub mod links_cmd;
pub mod metrics;
pub mod reconcile;
pub mod salesforce;
pub mod server;
pub mod state_cmd;
pub mod status;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod worker;
