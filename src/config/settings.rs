//! The validated settings orgsync runs with ([`Settings`], [`OrgSettings`] and the policy
//! enums): every value ready to use, field names following DESIGN §4's TOML keys.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::error::ConfigError;
use super::load::{Secrets, load, load_files};

/// How orgsync logs in to an org (`orgs.X.auth`). The serde spelling is the configuration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// SOAP `login()` with password + security token (the template's way).
    Password,
    /// OAuth username-password flow (connected app + password + token).
    OauthPassword,
    /// OAuth JWT bearer flow (connected app + private key).
    Jwt,
    /// OAuth client credentials flow (connected app's run-as user).
    ClientCredentials,
    /// OAuth refresh token flow.
    RefreshToken,
}

impl AuthMode {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Password => "password",
            AuthMode::OauthPassword => "oauth_password",
            AuthMode::Jwt => "jwt",
            AuthMode::ClientCredentials => "client_credentials",
            AuthMode::RefreshToken => "refresh_token",
        }
    }
}

/// One org's connection settings, validated.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    /// "a" or "b": used in logs and error messages.
    pub name: String,
    /// e.g. `https://login.salesforce.com` or a My Domain URL (no trailing slash).
    pub login_url: String,
    /// The integration user's login name; empty for the modes that log in as a connected app
    /// (`client_credentials`, `refresh_token`), where it is only shown.
    pub username: String,
    /// How to log in, with exactly the secrets that mode needs.
    pub credentials: Credentials,
    /// Empty: learned at login.
    pub integration_user_id: Option<String>,
    /// For `account.sync_policy = "assign"`.
    pub account_id: Option<String>,
    /// e.g. "62.0".
    pub api_version: String,
    /// Pause this org when Sforce-Limit-Info says usage is past this share of the daily max.
    pub api_budget_percent: u8,
    /// Shared secret expected in the outbound messaging URL.
    pub outbound_secret: Option<SecretString>,
}

impl OrgSettings {
    /// The auth mode (`orgs.X.auth`).
    pub fn auth(&self) -> AuthMode {
        self.credentials.mode()
    }

    /// Who logs in, for messages: the username, or the connected app's client id.
    pub fn login_name(&self) -> String {
        if self.username.is_empty() {
            format!("client {}", self.credentials.client_id().unwrap_or(""))
        } else {
            self.username.clone()
        }
    }
}

/// How orgsync logs in to one org (`orgs.X.auth` and the keys that mode reads): one variant per
/// auth mode, holding what that mode needs (required values are not `Option`), so a login
/// cannot be attempted with a secret missing. Validation builds it (`config::org`).
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `password`: SOAP `login()` as `username` with the password and the security token
    /// appended (the token is optional for orgs that trust orgsync's IP range).
    Password {
        password: SecretString,
        security_token: Option<SecretString>,
    },
    /// `oauth_password`: the OAuth username-password flow through a connected app.
    OAuthPassword {
        client_id: String,
        client_secret: SecretString,
        password: SecretString,
        security_token: Option<SecretString>,
    },
    /// `jwt`: the OAuth JWT bearer flow as `username`, the assertion signed with the PEM of
    /// an RSA private key (checked to parse at validation).
    Jwt {
        client_id: String,
        private_key: SecretString,
    },
    /// `client_credentials`: the OAuth client credentials flow (the connected app's run-as
    /// user).
    ClientCredentials {
        client_id: String,
        client_secret: SecretString,
    },
    /// `refresh_token`: the OAuth refresh token flow; the client secret only when the
    /// connected app requires it.
    RefreshToken {
        client_id: String,
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
    },
    /// The secrets of `auth` were not loaded ([`Settings::load_without_secrets`], for the
    /// commands that only read the state database): logging in fails with a clear error.
    Withheld { auth: AuthMode, client_id: String },
}

impl Credentials {
    /// The auth mode these credentials are for.
    pub fn mode(&self) -> AuthMode {
        match self {
            Credentials::Password { .. } => AuthMode::Password,
            Credentials::OAuthPassword { .. } => AuthMode::OauthPassword,
            Credentials::Jwt { .. } => AuthMode::Jwt,
            Credentials::ClientCredentials { .. } => AuthMode::ClientCredentials,
            Credentials::RefreshToken { .. } => AuthMode::RefreshToken,
            Credentials::Withheld { auth, .. } => *auth,
        }
    }

    /// The connected app's client id, for the OAuth modes.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Credentials::Password { .. } => None,
            Credentials::OAuthPassword { client_id, .. }
            | Credentials::Jwt { client_id, .. }
            | Credentials::ClientCredentials { client_id, .. }
            | Credentials::RefreshToken { client_id, .. }
            | Credentials::Withheld { client_id, .. } => Some(client_id),
        }
    }

    /// The password, for the modes that have one.
    pub fn password(&self) -> Option<&SecretString> {
        match self {
            Credentials::Password { password, .. }
            | Credentials::OAuthPassword { password, .. } => Some(password),
            _ => None,
        }
    }

    /// The security token, when the mode has one and it is set.
    pub fn security_token(&self) -> Option<&SecretString> {
        match self {
            Credentials::Password { security_token, .. }
            | Credentials::OAuthPassword { security_token, .. } => security_token.as_ref(),
            _ => None,
        }
    }

    /// The connected app's client secret, when the mode has one and it is set.
    pub fn client_secret(&self) -> Option<&SecretString> {
        match self {
            Credentials::OAuthPassword { client_secret, .. }
            | Credentials::ClientCredentials { client_secret, .. } => Some(client_secret),
            Credentials::RefreshToken { client_secret, .. } => client_secret.as_ref(),
            _ => None,
        }
    }

    /// The configured refresh token (`refresh_token` mode).
    pub fn refresh_token(&self) -> Option<&SecretString> {
        match self {
            Credentials::RefreshToken { refresh_token, .. } => Some(refresh_token),
            _ => None,
        }
    }

    /// The PEM of the JWT signing key (`jwt` mode).
    pub fn private_key(&self) -> Option<&SecretString> {
        match self {
            Credentials::Jwt { private_key, .. } => Some(private_key),
            _ => None,
        }
    }
}

/// `trigger.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerPolicy {
    Poll,
    Push,
    Hybrid,
}

/// `account.sync_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AccountPolicy {
    /// "": opportunities move without a parent account.
    #[serde(rename = "")]
    None,
    /// "syncAccount": the parent is looked up by Name in the target, created when missing.
    SyncAccount,
    /// "assign": every created opportunity gets `orgs.X.account_id`.
    Assign,
}

/// `sync.conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    LastWriterWins,
    AWins,
    BWins,
}

/// `sync.deletes`: what a record deleted in one org does to its linked copy in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// The linked copy is deleted too (unless it was edited since the last sync: then
    /// `sync.delete_conflict` decides).
    Propagate,
    /// Deletes are not synchronized (the watermark query reads through `query`, as before).
    Ignore,
}

/// `sync.delete_conflict`: a record deleted in one org whose copy was edited in the other
/// since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteConflictPolicy {
    /// The edit wins: the deleted record is undeleted and receives the edit.
    KeepEdit,
    /// The delete wins: the edited copy is deleted.
    Delete,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON when the log destination is not a terminal, readable text when it is.
    Auto,
    Json,
    Text,
}

/// `[log]`: what the telemetry module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,orgsync=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// `http.port`.
    pub port: u16,
    /// `http.bind`: the address the HTTP listener binds (`0.0.0.0` every IPv4 interface, `::`
    /// every interface, `127.0.0.1` behind a local reverse proxy).
    pub bind: std::net::IpAddr,
}

/// `[scheduler]`: when passes run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// `scheduler.frequency`: the poll interval.
    pub frequency: Duration,
    /// `scheduler.start_delay`: wait before the first cycle.
    pub start_delay: Duration,
    /// `scheduler.safety_frequency`: the slow poll of `trigger.policy = "hybrid"`.
    pub safety_frequency: Duration,
}

/// `[watermark]`: where a direction starts and how far back each read looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkSettings {
    /// `watermark.default`: the first pass reads from here.
    pub default: chrono::DateTime<chrono::Utc>,
    /// `watermark.lookback`: each read starts this much before the watermark.
    pub lookback: Duration,
}

/// `[batch]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettings {
    /// Rows read per page (1..=2000); writes are further chunked by 200 (sObject Collections).
    pub page_size: usize,
    /// `batch.in_flight`: Salesforce calls a direction pass keeps in flight at once (1..=10);
    /// 1 is strictly sequential.
    pub in_flight: usize,
    /// `batch.bulk`: when a pass reads and writes through Bulk API 2.0.
    pub bulk: BulkMode,
    /// `batch.bulk_read_threshold`: a backlog of more rows than this is read through a Bulk
    /// query job (with `bulk = "auto"`).
    pub bulk_read_threshold: u64,
    /// `batch.bulk_write_threshold`: a pass with more writes than this writes through Bulk
    /// ingest jobs (with `bulk = "auto"`).
    pub bulk_write_threshold: u64,
    /// `batch.bulk_timeout`: a Bulk job still open this long after it was created is aborted
    /// and the pass falls back to REST.
    pub bulk_timeout: Duration,
}

/// `batch.bulk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkMode {
    /// Bulk above the thresholds, REST below.
    Auto,
    /// REST only (the calls of orgsync before Bulk).
    Never,
    /// Bulk for every watermark read and every write it can take, whatever the size.
    Always,
}

/// `[trigger]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerSettings {
    /// `trigger.policy`.
    pub policy: TriggerPolicy,
}

/// `[account]`: the parent Account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// `account.sync_policy`.
    pub sync_policy: AccountPolicy,
    /// Parent fields fetched through the relationship for syncAccount (`account.fields`).
    pub fields: Vec<String>,
}

/// `[sync]`: what is synced and how conflicts and failures are handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// `sync.object`, e.g. "Opportunity".
    pub object: String,
    /// `sync.fields`, as named in org A.
    pub fields: Vec<String>,
    /// `sync.filter`: a SOQL condition, or None.
    pub filter: Option<String>,
    pub match_by: Vec<String>,
    pub external_id_field: Option<String>,
    pub conflict: ConflictPolicy,
    pub max_attempts: u32,
    /// `sync.skip_integration_user_changes`: leave out rows last modified by the integration
    /// user (the template's loop guard). Turn off where people share that user; the snapshot
    /// comparison then recognises orgsync's own writes.
    pub skip_integration_user_changes: bool,
    /// `sync.retry_initial_delay`: wait before the first retry of a failed record; doubles
    /// with each attempt.
    pub retry_initial_delay: Duration,
    /// `sync.retry_max_delay`: cap of the backoff between retries.
    pub retry_max_delay: Duration,
    /// `sync.field_map`: field name in A -> field name in B, for fields named differently.
    /// Fields not listed keep their name.
    pub field_map: BTreeMap<String, String>,
    /// `sync.value_map`: per field (A name), value in A -> value in B. One-to-one, so the
    /// reverse direction is the inverted map.
    pub value_map: BTreeMap<String, BTreeMap<String, String>>,
    /// `sync.deletes`.
    pub deletes: DeletePolicy,
    /// `sync.delete_conflict`.
    pub delete_conflict: DeleteConflictPolicy,
    /// `sync.max_deletes_per_cycle`: more deletes than this in one direction in one cycle
    /// are held for an operator (`DELETE_HELD`); 0 = no limit.
    pub max_deletes_per_cycle: u32,
    /// `sync.deleted_check_frequency`: how often the getDeleted safety net runs.
    pub deleted_check_frequency: Duration,
}

impl SyncSettings {
    /// The name of field `a_name` in org B (after `sync.field_map`).
    pub fn b_field_name<'s>(&'s self, a_name: &'s str) -> &'s str {
        self.field_map.get(a_name).map_or(a_name, String::as_str)
    }
}

/// `[state]`.
#[derive(Clone, PartialEq, Eq)]
pub struct StateSettings {
    /// `state.url` (or the contents of `state.url_file`), e.g. "sqlite://orgsync.db" or
    /// "postgres://orgsync:PASSWORD@db/orgsync". It may hold a password: show it only through
    /// [`StateSettings::shown_url`].
    pub url: String,
    /// `state.pair_name`: which sync pair's state this is (a PostgreSQL schema,
    /// `orgsync_<pair_name>`; on SQLite the file is the pair).
    pub pair_name: String,
}

/// `[ha]`: replicas of one pair on a shared PostgreSQL store (README "Replicas").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSettings {
    /// `ha.lease_ttl`: how long the sync lease lasts unless renewed (every third of it). A
    /// standby takes over within about the TTL plus one renew interval after the leader
    /// stops. Unused on SQLite (one process, the file lock).
    pub lease_ttl: Duration,
}

/// `[reconcile]`: the daemon's background reconcile (README "Reconcile").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// `reconcile.frequency`: how often `orgsync run` reconciles the orgs between cycles,
    /// counted from the last stored report; `None` (`"off"`, the default): never.
    pub frequency: Option<Duration>,
    /// `reconcile.repair`: the background run repairs what it finds, as `--repair` does.
    pub repair: bool,
}

/// The shortest `ha.lease_ttl` (renewals every second).
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(3);
/// The longest `ha.lease_ttl`.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(300);

impl StateSettings {
    /// The URL with its password replaced by `***`, for messages and `status`.
    pub fn shown_url(&self) -> String {
        crate::domain::redact_url(&self.url)
    }
}

/// Never prints the URL's password.
impl std::fmt::Debug for StateSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSettings")
            .field("url", &self.shown_url())
            .field("pair_name", &self.pair_name)
            .finish()
    }
}

/// Everything orgsync runs with, validated: one field per TOML section (DESIGN §4), the two
/// orgs as `a` and `b`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The environment whose file was loaded (`dev`, `qa`, `prod`, ...).
    pub env: String,
    pub http: HttpSettings,
    pub scheduler: SchedulerSettings,
    pub watermark: WatermarkSettings,
    pub batch: BatchSettings,
    pub trigger: TriggerSettings,
    pub account: AccountSettings,
    pub sync: SyncSettings,
    pub state: StateSettings,
    pub ha: HaSettings,
    pub reconcile: ReconcileSettings,
    pub log: LogSettings,
    pub a: OrgSettings,
    pub b: OrgSettings,
    /// Things worth an operator's attention that do not stop orgsync (a secret written in a
    /// configuration file), one sentence each, never holding a secret. Logging is set up only
    /// after the settings load, so the binary logs them then.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Loads the configuration the way the binary does: files from `config_dir`, environment
    /// `env`, and overrides from the process environment.
    pub fn load(env: &str, config_dir: &Path) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        load(env, config_dir, &vars)
    }

    /// [`Settings::load`] for commands that only read the state database (`status`,
    /// `failures`): missing org secrets are not an error (the org's credentials are
    /// [`Credentials::Withheld`]), so an operator
    /// can run them from a shell that does not hold the service's secrets. Every other
    /// problem is reported as by `load`.
    pub fn load_without_secrets(env: &str, config_dir: &Path) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        load_files(env, config_dir, &vars, Secrets::Optional)
    }

    /// The settings of one org.
    pub fn org(&self, org: crate::domain::Org) -> &OrgSettings {
        match org {
            crate::domain::Org::A => &self.a,
            crate::domain::Org::B => &self.b,
        }
    }
}
