//! Layered settings: `config/default.toml`, `config/<env>.toml`, then `ORGSYNC__SECTION__KEY`
//! environment variables, later layers winning; validated once into [`Settings`].
//!
//! Loading goes in two steps, like ripgrep's low-level and high-level arguments: the layers are
//! merged by the `config` crate and deserialized into raw structs that mirror the TOML
//! (`Raw*`, serde, `deny_unknown_fields`: `raw`), then validation (`validate`, `org`) turns them
//! into [`Settings`] (`settings`) whose values are ready to use (durations parsed, policies as
//! enums, secrets read from their files). [`Settings`] is nested like the TOML: one struct per
//! section (`settings.http.port`, `settings.scheduler.frequency`, `settings.batch.page_size`,
//! `settings.sync.fields`, `settings.state.url`, ...) and one [`OrgSettings`] per org
//! (`settings.a`, `settings.b`) whose [`Credentials`] hold exactly what its auth mode needs
//! (one variant per mode; `org::needs` is the one table of which keys each mode requires). Every problem found on the way names the key and the
//! file or environment variable it came from. The `config` crate forgets where a value came from
//! once it merges, so unknown keys are checked by `load`, source by source, against
//! [`known_key`] (`keys`), and the origin of every key is kept in an [`Origins`] table (`error`)
//! that error messages consult.
//!
//! Secrets (`password`, `security_token`, `client_secret`, the JWT private key, the refresh
//! token, the outbound-messaging secret) live in [`secrecy::SecretString`] (`secrets`): `Debug`
//! of [`Settings`] prints `[REDACTED]` for them, and no error message ever quotes one.
//!
//! This module only re-exports: the `crate::config::...` paths stay those of the one-file
//! module it was split from.

mod duration;
mod error;
mod keys;
mod load;
mod org;
mod raw;
mod secrets;
mod settings;
mod state;
mod validate;

pub use duration::parse_duration;
pub use error::{ConfigError, Origin, Origins, Problem};
pub use keys::{ENV_PREFIX, KeyKind, SECTIONS, known_key};
pub use load::{load, load_str};
pub use settings::{
    AccountPolicy, AccountSettings, AuthMode, BatchSettings, BulkMode, ConflictPolicy, Credentials,
    DeleteConflictPolicy, DeletePolicy, HaSettings, HttpSettings, LogFormat, LogSettings,
    MAX_LEASE_TTL, MIN_LEASE_TTL, OrgSettings, ReconcileSettings, SchedulerSettings, Settings,
    StateSettings, SyncSettings, TriggerPolicy, TriggerSettings, WatermarkSettings,
};
pub use state::{check_state_url, valid_pair_name};
pub use validate::{DEFAULT_IN_FLIGHT, MAX_IN_FLIGHT, MAX_PAGE_SIZE, is_api_name};
