//! Layered settings: `config/default.toml`, `config/<env>.toml`, then `ORGSYNC__SECTION__KEY`
//! environment variables, later layers winning; validated once into [`Settings`].
//!
//! Loading goes in two steps, like ripgrep's low-level and high-level arguments: the layers are
//! merged by the `config` crate and deserialized into raw structs that mirror the TOML
//! (`Raw*`, serde, `deny_unknown_fields`), then [`validate`] turns them into [`Settings`] whose
//! values are ready to use (durations parsed, policies as enums, secrets read from their files).
//! Every problem found on the way names the key and the file or environment variable it came
//! from. The `config` crate forgets where a value came from once it merges, so unknown keys are
//! checked here, source by source, against [`known_key`], and the origin of every key is kept in
//! an [`Origins`] table that error messages consult.
//!
//! Secrets (`password`, `security_token`, `client_secret`, the JWT private key, the refresh
//! token, the outbound-messaging secret) live in [`secrecy::SecretString`]: `Debug` of
//! [`Settings`] prints `[REDACTED]` for them, and no error message ever quotes one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ORGSYNC__";

/// How orgsync logs in to an org (`orgs.X.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "password" => AuthMode::Password,
            "oauth_password" => AuthMode::OauthPassword,
            "jwt" => AuthMode::Jwt,
            "client_credentials" => AuthMode::ClientCredentials,
            "refresh_token" => AuthMode::RefreshToken,
            _ => return None,
        })
    }
}

/// One org's connection settings, validated.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    /// "a" or "b": used in logs and error messages.
    pub name: String,
    /// e.g. `https://login.salesforce.com` or a My Domain URL (no trailing slash).
    pub login_url: String,
    pub auth: AuthMode,
    pub username: String,
    pub password: Option<SecretString>,
    pub security_token: Option<SecretString>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// PEM of the RSA private key for `jwt`.
    pub private_key: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
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

/// `trigger.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerPolicy {
    Poll,
    Push,
    Hybrid,
}

/// `account.sync_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountPolicy {
    /// "": opportunities move without a parent account.
    None,
    /// "syncAccount": the parent is looked up by Name in the target, created when missing.
    SyncAccount,
    /// "assign": every created opportunity gets `orgs.X.account_id`.
    Assign,
}

/// `sync.conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    LastWriterWins,
    AWins,
    BWins,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Everything orgsync runs with, validated. Field names follow DESIGN §4's TOML keys.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The environment whose file was loaded (`dev`, `qa`, `prod`, ...).
    pub env: String,
    pub http_port: u16,
    pub scheduler_frequency: Duration,
    pub scheduler_start_delay: Duration,
    /// `scheduler.safety_frequency`: the slow poll of `trigger.policy = "hybrid"`.
    pub scheduler_safety_frequency: Duration,
    pub watermark_default: chrono::DateTime<chrono::Utc>,
    /// Rows read per page (1..=2000); writes are further chunked by 200 (sObject Collections).
    pub page_size: usize,
    /// `batch.in_flight`: Salesforce calls a direction pass keeps in flight at once (1..=10);
    /// 1 is strictly sequential.
    pub in_flight: usize,
    pub trigger: TriggerPolicy,
    pub account_policy: AccountPolicy,
    /// Parent fields fetched through the relationship for syncAccount (`account.fields`).
    pub account_fields: Vec<String>,
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
    pub lookback: Duration,
    /// `state.url`, e.g. "sqlite://orgsync.db".
    pub state_url: String,
    pub log: LogSettings,
    pub a: OrgSettings,
    pub b: OrgSettings,
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
    /// `failures`): missing org secrets are not an error (they are `None`), so an operator
    /// can run them from a shell that does not hold the service's secrets. Every other
    /// problem is reported as by `load`.
    pub fn load_without_secrets(env: &str, config_dir: &Path) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        load_files(env, config_dir, &vars, Secrets::Optional)
    }

    /// The settings of one org.
    pub fn org(&self, org: crate::store::Org) -> &OrgSettings {
        match org {
            crate::store::Org::A => &self.a,
            crate::store::Org::B => &self.b,
        }
    }

    /// The name of field `a_name` in org B (after `sync.field_map`).
    pub fn b_field_name<'s>(&'s self, a_name: &'s str) -> &'s str {
        self.field_map.get(a_name).map_or(a_name, String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and origins
// ---------------------------------------------------------------------------------------------

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A TOML file.
    File(PathBuf),
    /// An `ORGSYNC__...` environment variable (its exact name).
    Env(String),
    /// A TOML text handed to [`load_str`] (tests, demo), with the name given there.
    Inline(String),
    /// Not set anywhere: the built-in default.
    Default,
    /// A required key that no layer sets.
    NotSet,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Inline(name) => write!(f, "{name}"),
            Origin::Default => write!(f, "built-in default"),
            Origin::NotSet => write!(f, "not set anywhere"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `batch.page_size`.
    pub key: String,
    pub origin: Origin,
    /// What is wrong; never contains a secret value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::NotSet => write!(f, "{} (not set): {}", self.key, self.message),
            origin => write!(f, "{} (from {origin}): {}", self.key, self.message),
        }
    }
}

/// The configuration could not be loaded. The binary exits with code 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid environment name {0:?}: use letters, digits, '-' or '_' (e.g. dev, qa, prod)")]
    BadEnvName(String),
    #[error("configuration file {} not found (environment {env:?}, config dir {})", path.display(), dir.display())]
    MissingFile {
        path: PathBuf,
        env: String,
        dir: PathBuf,
    },
    #[error("cannot read configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not valid TOML: {message}")]
    Parse { origin: Origin, message: String },
    #[error("invalid configuration:\n{}", list_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The individual problems, when the error is [`ConfigError::Invalid`].
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn list_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which source set each key last (later layers win, as in the merge itself).
#[derive(Debug, Default, Clone)]
pub struct Origins(HashMap<String, Origin>);

impl Origins {
    /// The origin of `key`, or of its nearest parent that was set as a whole.
    pub fn of(&self, key: &str) -> Origin {
        let mut key = strip_index(key);
        loop {
            if let Some(origin) = self.0.get(key) {
                return origin.clone();
            }
            match key.rfind('.') {
                Some(dot) => key = &key[..dot],
                None => return Origin::Default,
            }
        }
    }

    fn set(&mut self, key: String, origin: Origin) {
        self.0.insert(key, origin);
    }
}

fn strip_index(key: &str) -> &str {
    key.find('[').map_or(key, |i| &key[..i])
}

// ---------------------------------------------------------------------------------------------
// Known keys
// ---------------------------------------------------------------------------------------------

/// What a known dotted key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A table of other keys (`sync`, `orgs.a`).
    Section,
    /// A single value (string, number, list).
    Leaf,
    /// A table whose keys are data (field names, picklist values): `sync.field_map`,
    /// `sync.value_map`. Its keys are case-sensitive, so it can only come from a file.
    DataTable,
}

const SECTIONS: &[&str] = &[
    "http",
    "scheduler",
    "watermark",
    "batch",
    "trigger",
    "account",
    "sync",
    "state",
    "log",
    "orgs",
    "orgs.a",
    "orgs.b",
];

const LEAVES: &[&str] = &[
    "http.port",
    "scheduler.frequency",
    "scheduler.start_delay",
    "scheduler.safety_frequency",
    "watermark.default",
    "watermark.lookback",
    "batch.page_size",
    "batch.in_flight",
    "trigger.policy",
    "account.sync_policy",
    "account.fields",
    "sync.object",
    "sync.fields",
    "sync.filter",
    "sync.match_by",
    "sync.external_id_field",
    "sync.conflict",
    "sync.max_attempts",
    "sync.skip_integration_user_changes",
    "sync.retry_initial_delay",
    "sync.retry_max_delay",
    "state.url",
    "log.format",
    "log.level",
];

const ORG_KEYS: &[&str] = &[
    "login_url",
    "auth",
    "username",
    "password",
    "password_file",
    "security_token",
    "security_token_file",
    "client_id",
    "client_secret",
    "client_secret_file",
    "private_key",
    "private_key_file",
    "refresh_token",
    "refresh_token_file",
    "integration_user_id",
    "account_id",
    "api_version",
    "api_budget_percent",
    "outbound_secret",
    "outbound_secret_file",
];

const DATA_TABLES: &[&str] = &["sync.field_map", "sync.value_map"];

/// Classifies a dotted key (lower-case section and key names as in the TOML files), or `None`
/// when orgsync has no such key.
pub fn known_key(key: &str) -> Option<KeyKind> {
    if SECTIONS.contains(&key) {
        return Some(KeyKind::Section);
    }
    if LEAVES.contains(&key) {
        return Some(KeyKind::Leaf);
    }
    if DATA_TABLES.contains(&key) {
        return Some(KeyKind::DataTable);
    }
    for org in ["orgs.a.", "orgs.b."] {
        if let Some(rest) = key.strip_prefix(org)
            && ORG_KEYS.contains(&rest)
        {
            return Some(KeyKind::Leaf);
        }
    }
    None
}

/// Every known key, for "did you mean" hints.
fn all_keys() -> impl Iterator<Item = String> {
    SECTIONS
        .iter()
        .chain(LEAVES)
        .chain(DATA_TABLES)
        .map(|k| (*k).to_string())
        .chain(
            ["orgs.a.", "orgs.b."]
                .into_iter()
                .flat_map(|org| ORG_KEYS.iter().map(move |k| format!("{org}{k}"))),
        )
}

fn unknown_key_message(key: &str) -> String {
    let suggestion = all_keys()
        .map(|candidate| (edit_distance(key, &candidate), candidate))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance);
    match suggestion {
        Some((_, candidate)) => format!("unknown key (did you mean `{candidate}`?)"),
        None => "unknown key".to_string(),
    }
}

/// Levenshtein distance, for suggestions only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Walks one file's table: records the origin of every key, reports unknown ones.
fn walk_table(
    table: &config::Map<String, config::Value>,
    prefix: &str,
    origin: &Origin,
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match known_key(&key) {
            Some(KeyKind::Section) => match &value.kind {
                config::ValueKind::Table(inner) => {
                    walk_table(inner, &key, origin, origins, problems)
                }
                _ => problems.push(Problem {
                    key: key.clone(),
                    origin: origin.clone(),
                    message: "is a section and must be a table".into(),
                }),
            },
            Some(KeyKind::Leaf) => origins.set(key, origin.clone()),
            Some(KeyKind::DataTable) => {
                if let config::ValueKind::Table(inner) = &value.kind {
                    record_data_table(inner, &key, origin, origins);
                }
                origins.set(key, origin.clone());
            }
            None => problems.push(Problem {
                message: unknown_key_message(&key),
                key,
                origin: origin.clone(),
            }),
        }
    }
}

fn record_data_table(
    table: &config::Map<String, config::Value>,
    prefix: &str,
    origin: &Origin,
    origins: &mut Origins,
) {
    for (name, value) in table {
        let key = format!("{prefix}.{name}");
        if let config::ValueKind::Table(inner) = &value.kind {
            record_data_table(inner, &key, origin, origins);
        }
        origins.set(key, origin.clone());
    }
}

/// Checks the `ORGSYNC__*` variables; returns the ones to apply, keyed by variable name.
fn check_env(
    vars: &HashMap<String, String>,
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) -> config::Map<String, String> {
    let mut names: Vec<&String> = vars.keys().filter(|k| k.starts_with(ENV_PREFIX)).collect();
    names.sort();
    let mut accepted = config::Map::new();
    for name in names {
        let key = env_var_key(name);
        let origin = Origin::Env(name.clone());
        let under_data_table = DATA_TABLES
            .iter()
            .any(|t| key == *t || key.starts_with(&format!("{t}.")));
        if under_data_table {
            problems.push(Problem {
                key,
                origin,
                message: "cannot be set from the environment (its keys are case-sensitive \
                          data); set it in a configuration file"
                    .into(),
            });
            continue;
        }
        match known_key(&key) {
            Some(KeyKind::Leaf) => {
                origins.set(key, origin);
                if let Some(value) = vars.get(name) {
                    accepted.insert(name.clone(), value.clone());
                }
            }
            Some(_) => problems.push(Problem {
                key,
                origin,
                message: "is a section, not a key: set one of its keys instead".into(),
            }),
            None => problems.push(Problem {
                message: unknown_key_message(&key),
                key,
                origin,
            }),
        }
    }
    accepted
}

/// `ORGSYNC__BATCH__PAGE_SIZE` -> `batch.page_size`.
fn env_var_key(name: &str) -> String {
    name[ENV_PREFIX.len()..]
        .to_lowercase()
        .split("__")
        .collect::<Vec<_>>()
        .join(".")
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Loads `<config_dir>/default.toml`, `<config_dir>/<env>.toml` and the `ORGSYNC__*` entries
/// of `vars` (the process environment in production, a map in tests), then validates.
pub fn load(
    env: &str,
    config_dir: &Path,
    vars: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    load_files(env, config_dir, vars, Secrets::Required)
}

/// Whether missing org secrets are problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrets {
    Required,
    /// For commands that never call an org.
    Optional,
}

fn load_files(
    env: &str,
    config_dir: &Path,
    vars: &HashMap<String, String>,
    secrets: Secrets,
) -> Result<Settings, ConfigError> {
    let valid_env = !env.is_empty()
        && env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_env {
        return Err(ConfigError::BadEnvName(env.to_string()));
    }
    let mut layers = Vec::new();
    for path in [
        config_dir.join("default.toml"),
        config_dir.join(format!("{env}.toml")),
    ] {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::MissingFile {
                    path,
                    env: env.to_string(),
                    dir: config_dir.to_path_buf(),
                });
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        layers.push((Origin::File(path), text));
    }
    load_layers(env, &layers, vars, secrets)
}

/// Loads from TOML texts instead of files: each layer is `(name, toml)`, later layers win,
/// then the `ORGSYNC__*` entries of `vars`. Keys not set anywhere take their built-in default
/// (the same values as `config/default.toml`). For tests and the demo.
pub fn load_str(
    env: &str,
    layers: &[(&str, &str)],
    vars: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    let layers: Vec<(Origin, String)> = layers
        .iter()
        .map(|(name, text)| (Origin::Inline((*name).to_string()), (*text).to_string()))
        .collect();
    load_layers(env, &layers, vars, Secrets::Required)
}

fn load_layers(
    env: &str,
    layers: &[(Origin, String)],
    vars: &HashMap<String, String>,
    secrets: Secrets,
) -> Result<Settings, ConfigError> {
    let mut origins = Origins::default();
    let mut problems = Vec::new();
    let mut builder = Config::builder();
    for (origin, text) in layers {
        let file = File::from_str(text, FileFormat::Toml);
        let table = config::Source::collect(&file).map_err(|err| ConfigError::Parse {
            origin: origin.clone(),
            message: parse_message(&err),
        })?;
        walk_table(&table, "", origin, &mut origins, &mut problems);
        builder = builder.add_source(file);
    }
    let env_vars = check_env(vars, &mut origins, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let environment = Environment::with_prefix("ORGSYNC")
        .prefix_separator("__")
        .separator("__")
        .source(Some(env_vars));
    let merged = builder
        .add_source(environment)
        .build()
        .map_err(|err| ConfigError::Invalid(vec![problem_from_config(err, &origins)]))?;
    let raw: RawSettings = merged
        .try_deserialize()
        .map_err(|err| ConfigError::Invalid(vec![problem_from_config(err, &origins)]))?;
    validate(env, raw, &origins, secrets)
}

fn parse_message(err: &config::ConfigError) -> String {
    match err {
        config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    }
}

/// Turns a merge or deserialization error of the `config` crate into a [`Problem`] with the
/// key's real origin.
fn problem_from_config(err: config::ConfigError, origins: &Origins) -> Problem {
    match err {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => {
            let key = key.unwrap_or_default();
            Problem {
                origin: origins.of(&key),
                message: format!("expected {expected}, found {unexpected}"),
                key,
            }
        }
        config::ConfigError::At { error, key, .. } => {
            let key = key.unwrap_or_default();
            Problem {
                origin: origins.of(&key),
                message: error.to_string(),
                key,
            }
        }
        other => Problem {
            key: String::new(),
            origin: Origin::Default,
            message: other.to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Raw configuration: mirrors the TOML
// ---------------------------------------------------------------------------------------------

/// A duration as written: `"10s"`, `"15min"` (humantime) or a bare integer of milliseconds
/// (the template's unit; from the environment, a string of digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawDuration(Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"10s\" or \"15min\", or an integer of milliseconds",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(Duration::from_millis(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawDuration, E> {
                u64::try_from(v)
                    .map(|ms| RawDuration(Duration::from_millis(ms)))
                    .map_err(|_| E::custom(format!("a duration cannot be negative, got {v}")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawDuration, E> {
                parse_duration(v).map(RawDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses `"10s"`, `"1h 30min"`, or a bare integer of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("invalid duration {text:?}: {e}"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?} ({e}): write e.g. \"10s\", \"15min\", or milliseconds")
    })
}

/// A list of strings: a TOML array, or (from the environment) a comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RawList(Vec<String>);

impl<'de> Deserialize<'de> for RawList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings, or a comma-separated string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawList, E> {
                Ok(RawList(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                ))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(RawList(items))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn list(items: &[&str]) -> RawList {
    RawList(items.iter().map(|s| (*s).to_string()).collect())
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct RawSettings {
    http: RawHttp,
    scheduler: RawScheduler,
    watermark: RawWatermark,
    batch: RawBatch,
    trigger: RawTrigger,
    account: RawAccount,
    sync: RawSync,
    state: RawState,
    log: RawLog,
    orgs: RawOrgs,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            http: RawHttp { port: 9090 },
            scheduler: RawScheduler {
                frequency: RawDuration(Duration::from_secs(10)),
                start_delay: RawDuration(Duration::ZERO),
                safety_frequency: RawDuration(Duration::from_secs(15 * 60)),
            },
            watermark: RawWatermark {
                default: "2018-08-25T11:00:00.000Z".into(),
                lookback: RawDuration(Duration::from_secs(30)),
            },
            batch: RawBatch {
                page_size: 200,
                in_flight: DEFAULT_IN_FLIGHT as i64,
            },
            trigger: RawTrigger {
                policy: "poll".into(),
            },
            account: RawAccount {
                sync_policy: String::new(),
                fields: list(&[
                    "Name",
                    "AccountNumber",
                    "Description",
                    "Industry",
                    "NumberOfEmployees",
                ]),
            },
            sync: RawSync {
                object: "Opportunity".into(),
                fields: list(&["Name", "Description", "CloseDate", "Amount", "StageName"]),
                filter: Some("Amount > 5000".into()),
                match_by: list(&["Name"]),
                external_id_field: String::new(),
                conflict: "last_writer_wins".into(),
                max_attempts: 8,
                skip_integration_user_changes: true,
                retry_initial_delay: RawDuration(Duration::from_secs(60)),
                retry_max_delay: RawDuration(Duration::from_secs(60 * 60)),
                field_map: BTreeMap::new(),
                value_map: BTreeMap::new(),
            },
            state: RawState {
                url: "sqlite://orgsync.db".into(),
            },
            log: RawLog {
                format: "auto".into(),
                level: "info".into(),
            },
            orgs: RawOrgs::default(),
        }
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "defaults::port")]
    port: i64,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawSettings::default().http
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    #[serde(default = "defaults::frequency")]
    frequency: RawDuration,
    #[serde(default = "defaults::start_delay")]
    start_delay: RawDuration,
    #[serde(default = "defaults::safety_frequency")]
    safety_frequency: RawDuration,
}

impl Default for RawScheduler {
    fn default() -> Self {
        RawSettings::default().scheduler
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawWatermark {
    #[serde(default = "defaults::watermark_default")]
    default: String,
    #[serde(default = "defaults::lookback")]
    lookback: RawDuration,
}

impl Default for RawWatermark {
    fn default() -> Self {
        RawSettings::default().watermark
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    #[serde(default = "defaults::page_size")]
    page_size: i64,
    #[serde(default = "defaults::in_flight")]
    in_flight: i64,
}

impl Default for RawBatch {
    fn default() -> Self {
        RawSettings::default().batch
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(default = "defaults::trigger")]
    policy: String,
}

impl Default for RawTrigger {
    fn default() -> Self {
        RawSettings::default().trigger
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    #[serde(default)]
    sync_policy: String,
    #[serde(default = "defaults::account_fields")]
    fields: RawList,
}

impl Default for RawAccount {
    fn default() -> Self {
        RawSettings::default().account
    }
}

/// `sync.filter`: a condition, or `false` for none.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum RawFilter {
    Condition(String),
    Switch(bool),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawSync {
    #[serde(default = "defaults::object")]
    object: String,
    #[serde(default = "defaults::fields")]
    fields: RawList,
    #[serde(default = "defaults::filter", deserialize_with = "deserialize_filter")]
    filter: Option<String>,
    #[serde(default = "defaults::match_by")]
    match_by: RawList,
    #[serde(default)]
    external_id_field: String,
    #[serde(default = "defaults::conflict")]
    conflict: String,
    #[serde(default = "defaults::max_attempts")]
    max_attempts: i64,
    #[serde(default = "defaults::skip_integration_user_changes")]
    skip_integration_user_changes: bool,
    #[serde(default = "defaults::retry_initial_delay")]
    retry_initial_delay: RawDuration,
    #[serde(default = "defaults::retry_max_delay")]
    retry_max_delay: RawDuration,
    #[serde(default)]
    field_map: BTreeMap<String, String>,
    #[serde(default)]
    value_map: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for RawSync {
    fn default() -> Self {
        RawSettings::default().sync
    }
}

/// `filter = false` means "no filter"; `filter = true` is a mistake.
fn deserialize_filter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match RawFilter::deserialize(d)? {
        // `false` is never a SOQL condition: from the environment (where every value is a
        // string) it means the same as in a file.
        RawFilter::Condition(text) if text.trim().eq_ignore_ascii_case("false") => Ok(None),
        RawFilter::Condition(text) => Ok(Some(text)),
        RawFilter::Switch(false) => Ok(None),
        RawFilter::Switch(true) => Err(serde::de::Error::custom(
            "expected a SOQL condition, or false for no filter",
        )),
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawState {
    #[serde(default = "defaults::state_url")]
    url: String,
}

impl Default for RawState {
    fn default() -> Self {
        RawSettings::default().state
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default = "defaults::log_format")]
    format: String,
    #[serde(default = "defaults::log_level")]
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawSettings::default().log
    }
}

#[derive(Debug, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct RawOrgs {
    a: RawOrg,
    b: RawOrg,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct RawOrg {
    login_url: String,
    auth: String,
    username: String,
    password: Option<String>,
    password_file: Option<String>,
    security_token: Option<String>,
    security_token_file: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    private_key: Option<String>,
    private_key_file: Option<String>,
    refresh_token: Option<String>,
    refresh_token_file: Option<String>,
    integration_user_id: String,
    account_id: String,
    api_version: String,
    api_budget_percent: i64,
    outbound_secret: Option<String>,
    outbound_secret_file: Option<String>,
}

impl Default for RawOrg {
    fn default() -> Self {
        RawOrg {
            login_url: "https://login.salesforce.com".into(),
            auth: "password".into(),
            username: String::new(),
            password: None,
            password_file: None,
            security_token: None,
            security_token_file: None,
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            private_key: None,
            private_key_file: None,
            refresh_token: None,
            refresh_token_file: None,
            integration_user_id: String::new(),
            account_id: String::new(),
            api_version: "62.0".into(),
            api_budget_percent: 80,
            outbound_secret: None,
            outbound_secret_file: None,
        }
    }
}

/// Field defaults for sections given only in part (serde needs one function per field).
mod defaults {
    use super::{RawDuration, RawList, RawSettings};

    pub fn port() -> i64 {
        RawSettings::default().http.port
    }
    pub fn frequency() -> RawDuration {
        RawSettings::default().scheduler.frequency
    }
    pub fn start_delay() -> RawDuration {
        RawSettings::default().scheduler.start_delay
    }
    pub fn safety_frequency() -> RawDuration {
        RawSettings::default().scheduler.safety_frequency
    }
    pub fn watermark_default() -> String {
        RawSettings::default().watermark.default
    }
    pub fn lookback() -> RawDuration {
        RawSettings::default().watermark.lookback
    }
    pub fn page_size() -> i64 {
        RawSettings::default().batch.page_size
    }
    pub fn in_flight() -> i64 {
        RawSettings::default().batch.in_flight
    }
    pub fn trigger() -> String {
        RawSettings::default().trigger.policy
    }
    pub fn account_fields() -> RawList {
        RawSettings::default().account.fields
    }
    pub fn object() -> String {
        RawSettings::default().sync.object
    }
    pub fn fields() -> RawList {
        RawSettings::default().sync.fields
    }
    pub fn filter() -> Option<String> {
        RawSettings::default().sync.filter
    }
    pub fn match_by() -> RawList {
        RawSettings::default().sync.match_by
    }
    pub fn conflict() -> String {
        RawSettings::default().sync.conflict
    }
    pub fn max_attempts() -> i64 {
        RawSettings::default().sync.max_attempts
    }
    pub fn skip_integration_user_changes() -> bool {
        RawSettings::default().sync.skip_integration_user_changes
    }
    pub fn retry_initial_delay() -> RawDuration {
        RawSettings::default().sync.retry_initial_delay
    }
    pub fn retry_max_delay() -> RawDuration {
        RawSettings::default().sync.retry_max_delay
    }
    pub fn state_url() -> String {
        RawSettings::default().state.url
    }
    pub fn log_format() -> String {
        RawSettings::default().log.format
    }
    pub fn log_level() -> String {
        RawSettings::default().log.level
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: raw -> Settings
// ---------------------------------------------------------------------------------------------

/// Largest page the REST query API returns (`batchSize` caps at 2000).
pub const MAX_PAGE_SIZE: usize = 2000;

/// The most Salesforce calls a pass may keep in flight (`batch.in_flight`). Salesforce
/// allows 25 concurrent long-running requests per org, shared with every other integration.
pub const MAX_IN_FLIGHT: usize = 10;

/// `batch.in_flight` when not configured.
pub const DEFAULT_IN_FLIGHT: usize = 4;

/// Collects problems with their origins while validating.
struct Checker<'o> {
    origins: &'o Origins,
    problems: Vec<Problem>,
    secrets: Secrets,
}

impl Checker<'_> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            origin: self.origins.of(key),
            message: message.into(),
        });
    }

    /// A problem with a required key that no layer sets.
    fn missing(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            origin: Origin::NotSet,
            message: message.into(),
        });
    }

    /// A count in `1..=max`; else a problem, and `fallback` so that checking goes on.
    fn count(&mut self, key: &str, value: i64, max: usize, fallback: usize) -> usize {
        match usize::try_from(value) {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                self.problem(key, format!("must be between 1 and {max}, got {value}"));
                fallback
            }
        }
    }

    fn positive(&mut self, key: &str, value: Duration) -> Duration {
        if value.is_zero() {
            self.problem(key, "must be greater than zero");
        }
        value
    }

    fn identifier(&mut self, key: &str, name: &str) {
        if !is_api_name(name) {
            self.problem(
                key,
                format!("{name:?} is not a Salesforce API name (letters, digits and '_', starting with a letter)"),
            );
        }
    }

    fn identifiers(&mut self, key: &str, names: &[String]) {
        let mut seen = BTreeSet::new();
        for name in names {
            self.identifier(key, name);
            if !seen.insert(name.to_ascii_lowercase()) {
                self.problem(key, format!("{name:?} is listed twice"));
            }
        }
    }
}

/// A Salesforce API name: `Name`, `Amount__c`, `ns__Field__c`.
pub fn is_api_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.ends_with('_')
}

/// A 15- or 18-character Salesforce id with the given key prefix.
fn is_record_id(id: &str, prefix: &str) -> bool {
    (id.len() == 15 || id.len() == 18)
        && id.chars().all(|c| c.is_ascii_alphanumeric())
        && id.starts_with(prefix)
}

/// Validates the raw configuration into [`Settings`], reporting every problem at once.
fn validate(
    env: &str,
    raw: RawSettings,
    origins: &Origins,
    secrets: Secrets,
) -> Result<Settings, ConfigError> {
    let mut c = Checker {
        origins,
        problems: Vec::new(),
        secrets,
    };

    let http_port = u16::try_from(raw.http.port).unwrap_or_else(|_| {
        c.problem(
            "http.port",
            format!("must be between 0 and 65535, got {}", raw.http.port),
        );
        0
    });
    let scheduler_frequency = c.positive("scheduler.frequency", raw.scheduler.frequency.0);
    let scheduler_start_delay = raw.scheduler.start_delay.0;
    let scheduler_safety_frequency = c.positive(
        "scheduler.safety_frequency",
        raw.scheduler.safety_frequency.0,
    );

    let watermark_default = chrono::DateTime::parse_from_rfc3339(raw.watermark.default.trim())
        .map(|dt| dt.with_timezone(&chrono::Utc))
        .unwrap_or_else(|e| {
            c.problem(
                "watermark.default",
                format!(
                    "{:?} is not an ISO 8601 date-time with offset, e.g. 2018-08-25T11:00:00.000Z ({e})",
                    raw.watermark.default
                ),
            );
            chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
        });
    let lookback = raw.watermark.lookback.0;

    let page_size = c.count("batch.page_size", raw.batch.page_size, MAX_PAGE_SIZE, 200);
    let in_flight = c.count(
        "batch.in_flight",
        raw.batch.in_flight,
        MAX_IN_FLIGHT,
        DEFAULT_IN_FLIGHT,
    );

    let trigger = match raw.trigger.policy.as_str() {
        "poll" => TriggerPolicy::Poll,
        "push" => TriggerPolicy::Push,
        "hybrid" => TriggerPolicy::Hybrid,
        other => {
            c.problem(
                "trigger.policy",
                format!("unknown policy {other:?}: use \"poll\", \"push\" or \"hybrid\""),
            );
            TriggerPolicy::Poll
        }
    };

    let account_policy = match raw.account.sync_policy.as_str() {
        "" => AccountPolicy::None,
        "syncAccount" => AccountPolicy::SyncAccount,
        "assign" => AccountPolicy::Assign,
        other => {
            c.problem(
                "account.sync_policy",
                format!("unknown policy {other:?}: use \"\", \"syncAccount\" or \"assign\""),
            );
            AccountPolicy::None
        }
    };
    let account_fields = raw.account.fields.0;
    c.identifiers("account.fields", &account_fields);
    if account_policy == AccountPolicy::SyncAccount
        && !account_fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case("Name"))
    {
        c.problem(
            "account.fields",
            "must include \"Name\": syncAccount finds the parent account in the target by Name",
        );
    }

    let object = raw.sync.object.trim().to_string();
    c.identifier("sync.object", &object);
    let fields = raw.sync.fields.0;
    if fields.is_empty() {
        c.problem("sync.fields", "must list at least one field");
    }
    c.identifiers("sync.fields", &fields);
    let filter = match raw.sync.filter {
        None => None,
        Some(text) => match check_filter(&text) {
            Ok(()) => Some(text.trim().to_string()),
            Err(message) => {
                c.problem("sync.filter", message);
                None
            }
        },
    };
    let match_by = raw.sync.match_by.0;
    c.identifiers("sync.match_by", &match_by);
    let external_id_field = match raw.sync.external_id_field.trim() {
        "" => None,
        name => {
            c.identifier("sync.external_id_field", name);
            Some(name.to_string())
        }
    };
    if match_by.is_empty() && external_id_field.is_none() {
        c.problem(
            "sync.match_by",
            "is empty and sync.external_id_field is not set: records could never be linked \
             the first time (every run would create duplicates)",
        );
    }
    let conflict = match raw.sync.conflict.as_str() {
        "last_writer_wins" => ConflictPolicy::LastWriterWins,
        "a_wins" => ConflictPolicy::AWins,
        "b_wins" => ConflictPolicy::BWins,
        other => {
            c.problem(
                "sync.conflict",
                format!(
                    "unknown policy {other:?}: use \"last_writer_wins\", \"a_wins\" or \"b_wins\""
                ),
            );
            ConflictPolicy::LastWriterWins
        }
    };
    let max_attempts = match u32::try_from(raw.sync.max_attempts) {
        Ok(n) if n >= 1 => n,
        _ => {
            c.problem(
                "sync.max_attempts",
                format!("must be at least 1, got {}", raw.sync.max_attempts),
            );
            1
        }
    };
    let retry_initial_delay =
        c.positive("sync.retry_initial_delay", raw.sync.retry_initial_delay.0);
    let retry_max_delay = raw.sync.retry_max_delay.0;
    if retry_max_delay < retry_initial_delay {
        c.problem(
            "sync.retry_max_delay",
            "must not be shorter than sync.retry_initial_delay",
        );
    }
    let field_map = raw.sync.field_map;
    check_field_map(&mut c, &fields, &field_map);
    let value_map = raw.sync.value_map;
    check_value_map(&mut c, &fields, &value_map);

    let state_url = raw.state.url.trim().to_string();
    if !(state_url.starts_with("sqlite:")) {
        c.problem(
            "state.url",
            format!("{state_url:?} is not a SQLite URL: use \"sqlite://path/to/orgsync.db\" or \"sqlite::memory:\""),
        );
    }

    let log_format = match raw.log.format.as_str() {
        "auto" => LogFormat::Auto,
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => {
            c.problem(
                "log.format",
                format!("unknown format {other:?}: use \"auto\", \"json\" or \"text\""),
            );
            LogFormat::Auto
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&raw.log.level) {
        c.problem(
            "log.level",
            format!(
                "{:?} is not a log filter such as \"info\" or \"info,orgsync=debug\": {e}",
                raw.log.level
            ),
        );
    }
    let log = LogSettings {
        format: log_format,
        level: raw.log.level,
    };

    let needs_outbound_secret = trigger != TriggerPolicy::Poll;
    let a = validate_org(
        &mut c,
        "a",
        raw.orgs.a,
        account_policy,
        needs_outbound_secret,
    );
    let b = validate_org(
        &mut c,
        "b",
        raw.orgs.b,
        account_policy,
        needs_outbound_secret,
    );

    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid(c.problems));
    }
    Ok(Settings {
        env: env.to_string(),
        http_port,
        scheduler_frequency,
        scheduler_start_delay,
        scheduler_safety_frequency,
        watermark_default,
        page_size,
        in_flight,
        trigger,
        account_policy,
        account_fields,
        object,
        fields,
        filter,
        match_by,
        external_id_field,
        conflict,
        max_attempts,
        skip_integration_user_changes: raw.sync.skip_integration_user_changes,
        retry_initial_delay,
        retry_max_delay,
        field_map,
        value_map,
        lookback,
        state_url,
        log,
        a,
        b,
    })
}

/// Light checks on `sync.filter`; `orgsync check` runs it against the org for the real test.
fn check_filter(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("is empty: write a SOQL condition such as \"Amount > 5000\", or `filter = false` for no filter".into());
    }
    let upper = trimmed.to_ascii_uppercase();
    if upper.starts_with("WHERE ") {
        return Err("write the condition without the WHERE keyword".into());
    }
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    for ch in trimmed.chars() {
        if in_string {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '\'') => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '\'' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("has a ')' without its '('".into());
                }
            }
            ';' => return Err("must be one SOQL condition (no ';')".into()),
            _ => {}
        }
    }
    if in_string {
        return Err("has an unterminated string literal (quote ' inside a literal as \\')".into());
    }
    if depth != 0 {
        return Err("has unbalanced parentheses".into());
    }
    Ok(())
}

fn check_field_map(c: &mut Checker<'_>, fields: &[String], field_map: &BTreeMap<String, String>) {
    for (a_name, b_name) in field_map {
        let key = format!("sync.field_map.{a_name}");
        if !fields.contains(a_name) {
            c.problem(&key, format!("{a_name:?} is not one of sync.fields"));
        }
        c.identifier(&key, b_name);
    }
    // Every field must have a distinct name in B once renamed.
    let mut b_names: BTreeMap<String, &str> = BTreeMap::new();
    for a_name in fields {
        let b_name = field_map
            .get(a_name)
            .map_or(a_name.as_str(), String::as_str);
        if let Some(previous) = b_names.insert(b_name.to_ascii_lowercase(), a_name) {
            let key = field_map
                .get(a_name)
                .map_or("sync.field_map".to_string(), |_| {
                    format!("sync.field_map.{a_name}")
                });
            c.problem(
                &key,
                format!(
                    "{a_name:?} and {previous:?} would both be written to B's field {b_name:?}"
                ),
            );
        }
    }
}

fn check_value_map(
    c: &mut Checker<'_>,
    fields: &[String],
    value_map: &BTreeMap<String, BTreeMap<String, String>>,
) {
    for (field, values) in value_map {
        let key = format!("sync.value_map.{field}");
        if !fields.contains(field) {
            c.problem(&key, format!("{field:?} is not one of sync.fields"));
        }
        let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
        for (a_value, b_value) in values {
            if let Some(previous) = targets.insert(b_value, a_value) {
                c.problem(
                    &key,
                    format!(
                        "{b_value:?} is the B value of both {previous:?} and {a_value:?}: the map \
                         must be one-to-one so that B -> A can be translated back"
                    ),
                );
            }
        }
    }
}

/// A secret given inline or through a `*_file` key (one or the other, not both).
fn secret(
    c: &mut Checker<'_>,
    key: &str,
    inline: Option<String>,
    file: Option<String>,
) -> Option<SecretString> {
    let inline = inline.filter(|s| !s.is_empty());
    let file = file.filter(|s| !s.trim().is_empty());
    let file_key = format!("{key}_file");
    match (inline, file) {
        (Some(_), Some(_)) => {
            let other = c.origins.of(&file_key);
            c.problem(
                key,
                format!("is set, and so is {file_key} (from {other}): give only one of them"),
            );
            None
        }
        (Some(value), None) => Some(SecretString::from(value)),
        (None, Some(path)) => match std::fs::read_to_string(path.trim()) {
            Ok(contents) => {
                let value = contents.trim_end_matches(['\r', '\n']);
                if value.is_empty() {
                    c.problem(&file_key, format!("file {path:?} is empty"));
                    None
                } else {
                    Some(SecretString::from(value.to_string()))
                }
            }
            Err(e) => {
                c.problem(&file_key, format!("cannot read file {path:?}: {e}"));
                None
            }
        },
        (None, None) => None,
    }
}

fn validate_org(
    c: &mut Checker<'_>,
    name: &str,
    raw: RawOrg,
    account_policy: AccountPolicy,
    needs_outbound_secret: bool,
) -> OrgSettings {
    let key = |k: &str| format!("orgs.{name}.{k}");

    let login_url = raw.login_url.trim().trim_end_matches('/').to_string();
    match url::Url::parse(&login_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            if url.query().is_some() || url.fragment().is_some() {
                c.problem(&key("login_url"), "must not have a query or fragment");
            }
        }
        Ok(_) => c.problem(
            &key("login_url"),
            format!("{login_url:?} must be an http(s) URL such as https://login.salesforce.com"),
        ),
        Err(e) => c.problem(
            &key("login_url"),
            format!("{login_url:?} is not a URL: {e}"),
        ),
    }

    let auth = AuthMode::parse(raw.auth.as_str()).unwrap_or_else(|| {
        c.problem(
            &key("auth"),
            format!(
                "unknown auth mode {:?}: use \"password\", \"oauth_password\", \"jwt\", \
                 \"client_credentials\" or \"refresh_token\"",
                raw.auth
            ),
        );
        AuthMode::Password
    });

    let password = secret(c, &key("password"), raw.password, raw.password_file);
    let security_token = secret(
        c,
        &key("security_token"),
        raw.security_token,
        raw.security_token_file,
    );
    let client_secret = secret(
        c,
        &key("client_secret"),
        raw.client_secret,
        raw.client_secret_file,
    );
    let private_key = secret(
        c,
        &key("private_key"),
        raw.private_key,
        raw.private_key_file,
    );
    let refresh_token = secret(
        c,
        &key("refresh_token"),
        raw.refresh_token,
        raw.refresh_token_file,
    );
    let outbound_secret = secret(
        c,
        &key("outbound_secret"),
        raw.outbound_secret,
        raw.outbound_secret_file,
    );

    let username = raw.username.trim().to_string();
    let client_id = raw.client_id.trim().to_string();
    let (need_username, need_password, need_client, need_client_secret, need_key, need_refresh) =
        match auth {
            AuthMode::Password => (true, true, false, false, false, false),
            AuthMode::OauthPassword => (true, true, true, true, false, false),
            AuthMode::Jwt => (true, false, true, false, true, false),
            AuthMode::ClientCredentials => (false, false, true, true, false, false),
            AuthMode::RefreshToken => (false, false, true, false, false, true),
        };
    let auth_origin = c.origins.of(&key("auth"));
    let require = |c: &mut Checker<'_>, field: &str, present: bool, secret: bool| {
        if present || (secret && c.secrets == Secrets::Optional) {
            return;
        }
        let k = key(field);
        let env = format!("{ENV_PREFIX}{}", k.to_ascii_uppercase().replace('.', "__"));
        let how = if secret {
            format!("set {env} or {k}_file")
        } else {
            format!("set {k} or {env}")
        };
        c.missing(
            &k,
            format!(
                "is required by orgs.{name}.auth = \"{}\" (from {auth_origin}) but not set: {how}",
                auth.as_str()
            ),
        );
    };
    require(c, "username", !need_username || !username.is_empty(), false);
    require(c, "password", !need_password || password.is_some(), true);
    require(c, "client_id", !need_client || !client_id.is_empty(), false);
    require(
        c,
        "client_secret",
        !need_client_secret || client_secret.is_some(),
        true,
    );
    require(c, "private_key", !need_key || private_key.is_some(), true);
    require(
        c,
        "refresh_token",
        !need_refresh || refresh_token.is_some(),
        true,
    );
    if let Some(pem) = &private_key
        && jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).is_err()
    {
        let k = if c.origins.of(&key("private_key_file")) != Origin::Default {
            key("private_key_file")
        } else {
            key("private_key")
        };
        c.problem(&k, "is not an RSA private key in PEM format");
    }
    if needs_outbound_secret && outbound_secret.is_none() && c.secrets == Secrets::Required {
        let k = key("outbound_secret");
        c.missing(
            &k,
            format!(
                "is required when trigger.policy is push or hybrid (the listener rejects \
                 notifications without it): set {ENV_PREFIX}ORGS__{}__OUTBOUND_SECRET or {k}_file",
                name.to_ascii_uppercase()
            ),
        );
    }

    let integration_user_id = match raw.integration_user_id.trim() {
        "" => None,
        id => {
            if !is_record_id(id, "005") {
                c.problem(
                    &key("integration_user_id"),
                    format!("{id:?} is not a User id (15 or 18 characters starting with 005)"),
                );
            }
            Some(id.to_string())
        }
    };
    let account_id = match raw.account_id.trim() {
        "" => None,
        id => {
            if !is_record_id(id, "001") {
                c.problem(
                    &key("account_id"),
                    format!("{id:?} is not an Account id (15 or 18 characters starting with 001)"),
                );
            }
            Some(id.to_string())
        }
    };
    if account_policy == AccountPolicy::Assign && account_id.is_none() {
        c.missing(
            &key("account_id"),
            "is required by account.sync_policy = \"assign\"",
        );
    }

    let api_version = raw.api_version.trim().to_string();
    let version_ok = api_version.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()) && minor == "0"
    });
    if !version_ok {
        c.problem(
            &key("api_version"),
            format!("{api_version:?} is not an API version such as \"62.0\""),
        );
    }

    let api_budget_percent = match u8::try_from(raw.api_budget_percent) {
        Ok(p) if (1..=100).contains(&p) => p,
        _ => {
            c.problem(
                &key("api_budget_percent"),
                format!("must be between 1 and 100, got {}", raw.api_budget_percent),
            );
            100
        }
    };

    OrgSettings {
        name: name.to_string(),
        login_url,
        auth,
        username,
        password,
        security_token,
        client_id,
        client_secret,
        private_key,
        refresh_token,
        integration_user_id,
        account_id,
        api_version,
        api_budget_percent,
        outbound_secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_both_forms() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("15min"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("10000"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn env_var_names_map_to_keys() {
        assert_eq!(env_var_key("ORGSYNC__BATCH__PAGE_SIZE"), "batch.page_size");
        assert_eq!(env_var_key("ORGSYNC__ORGS__A__PASSWORD"), "orgs.a.password");
    }

    #[test]
    fn known_keys() {
        assert_eq!(known_key("orgs.a.password_file"), Some(KeyKind::Leaf));
        assert_eq!(known_key("orgs.c.password"), None);
        assert_eq!(known_key("sync"), Some(KeyKind::Section));
        assert_eq!(known_key("sync.value_map"), Some(KeyKind::DataTable));
        assert_eq!(known_key("batch.pagesize"), None);
        assert!(unknown_key_message("batch.pagesize").contains("batch.page_size"));
    }

    #[test]
    fn filters() {
        assert!(check_filter("Amount > 5000").is_ok());
        assert!(check_filter("Name = 'O\\'Brien (x'").is_ok());
        assert!(check_filter("  ").is_err());
        assert!(check_filter("WHERE Amount > 1").is_err());
        assert!(check_filter("(Amount > 1").is_err());
        assert!(check_filter("Name = 'x").is_err());
        assert!(check_filter("Amount > 1; DELETE").is_err());
    }

    #[test]
    fn api_names() {
        assert!(is_api_name("Amount"));
        assert!(is_api_name("Ext_Id__c"));
        assert!(!is_api_name("1Amount"));
        assert!(!is_api_name("Account.Name"));
        assert!(!is_api_name(""));
    }

    #[test]
    fn origins_fall_back_to_parent() {
        let mut origins = Origins::default();
        origins.set("sync.fields".into(), Origin::Env("X".into()));
        assert_eq!(origins.of("sync.fields[2]"), Origin::Env("X".into()));
        assert_eq!(origins.of("batch.page_size"), Origin::Default);
    }
}
