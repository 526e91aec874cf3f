//! orgsync: keeps one Salesforce object (Opportunity first, with its parent Account)
//! synchronized in both directions between two orgs. See DESIGN and the README.
//!
//! Layers, each importing only the ones below it (never one above, never a sibling's
//! internals):
//! 1. the shell: `cli` (commands), `daemon`, `server` (HTTP), `worker`, plus the commands'
//!    own modules `check`, `status`, `links_cmd`, `demo`, `import_properties`, and `metrics` and
//!    `telemetry` that the shell sets up;
//! 2. `sync`: the engine (direction passes, plans, the failure queue's use), over ports that
//!    it defines and adapts `store` and `salesforce` to;
//! 3. `store` (the SQLite state) and `salesforce` (the API client), side by side;
//! 4. the ground floor: `domain` (`Org`, `Direction`, `FailureClass`) and `config` (the
//!    validated settings), which import nothing above them.
//!
//! Two imports still go upward, left for after the `sync` restructure: `salesforce::org_port`
//! (the engine's `OrgPort` over the client) imports `sync`'s port types and belongs beside
//! `sync::adapters`; and a test in `sync::account_tests` runs `check`.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod events;
pub mod import_properties;
pub mod links_cmd;
pub mod metrics;
pub mod salesforce;
pub mod server;
pub mod status;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod worker;
