//! The raw configuration: serde structs that mirror the TOML files as written
//! (`deny_unknown_fields`), with the built-in defaults. Validation turns them into settings.
//! Closed sets of values (`trigger.policy`, `orgs.X.auth`, ...) are the settings' enums,
//! spelled by serde `rename_all`, inside a [`Choice`] that keeps an unknown spelling for
//! validation to report with every other problem. The raw structs are also the one list of the
//! keys orgsync knows: `keys` derives it by serializing [`RawSettings::default`] (so a field
//! added here is a known key, for the loader's unknown-key check, its "did you mean" and
//! `import-properties`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::RawDuration;
use super::settings::{
    AccountPolicy, AuthMode, BulkMode, ConflictPolicy, DeleteConflictPolicy, DeletePolicy,
    LogFormat, TriggerPolicy,
};
use super::validate::DEFAULT_IN_FLIGHT;

/// A list of strings: a TOML array, or (from the environment) a comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RawList(pub(super) Vec<String>);

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

impl Serialize for RawList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A value from a closed set (`trigger.policy`, `orgs.X.auth`, ...): the enum `T` spells the
/// values (serde `rename_all`), and a string that is none of them is kept, so that validation
/// reports it together with every other problem, naming the key and the values allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Choice<T> {
    Known(T),
    Unknown(String),
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Choice<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        let text = String::deserialize(deserializer)?;
        let spelled: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            text.as_str().into_deserializer();
        Ok(match T::deserialize(spelled) {
            Ok(value) => Choice::Known(value),
            Err(_) => Choice::Unknown(text),
        })
    }
}

impl<T: Serialize> Serialize for Choice<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Choice::Known(value) => value.serialize(serializer),
            Choice::Unknown(text) => text.serialize(serializer),
        }
    }
}

fn list(items: &[&str]) -> RawList {
    RawList(items.iter().map(|s| (*s).to_string()).collect())
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSettings {
    pub(super) http: RawHttp,
    pub(super) scheduler: RawScheduler,
    pub(super) watermark: RawWatermark,
    pub(super) batch: RawBatch,
    pub(super) trigger: RawTrigger,
    pub(super) account: RawAccount,
    pub(super) sync: RawSync,
    pub(super) state: RawState,
    pub(super) ha: RawHa,
    pub(super) reconcile: RawReconcile,
    pub(super) log: RawLog,
    pub(super) orgs: RawOrgs,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            http: RawHttp {
                port: 9090,
                bind: "0.0.0.0".into(),
            },
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
                bulk: Choice::Known(BulkMode::Auto),
                bulk_read_threshold: 10_000,
                bulk_write_threshold: 2_000,
                bulk_timeout: RawDuration(Duration::from_secs(30 * 60)),
            },
            trigger: RawTrigger {
                policy: Choice::Known(TriggerPolicy::Poll),
            },
            account: RawAccount {
                sync_policy: Choice::Known(AccountPolicy::None),
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
                conflict: Choice::Known(ConflictPolicy::LastWriterWins),
                max_attempts: 8,
                skip_integration_user_changes: true,
                retry_initial_delay: RawDuration(Duration::from_secs(60)),
                retry_max_delay: RawDuration(Duration::from_secs(60 * 60)),
                field_map: BTreeMap::new(),
                value_map: BTreeMap::new(),
                deletes: Choice::Known(DeletePolicy::Propagate),
                delete_conflict: Choice::Known(DeleteConflictPolicy::KeepEdit),
                max_deletes_per_cycle: 100,
                deleted_check_frequency: RawDuration(Duration::from_secs(60 * 60)),
            },
            state: RawState {
                url: "sqlite://orgsync.db".into(),
                url_file: None,
                pair_name: "default".into(),
            },
            ha: RawHa {
                lease_ttl: RawDuration(Duration::from_secs(15)),
            },
            reconcile: RawReconcile {
                frequency: "off".into(),
                repair: false,
            },
            log: RawLog {
                format: Choice::Known(LogFormat::Auto),
                level: "info".into(),
            },
            orgs: RawOrgs::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default = "defaults::port")]
    pub(super) port: i64,
    #[serde(default = "defaults::bind")]
    pub(super) bind: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawSettings::default().http
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScheduler {
    #[serde(default = "defaults::frequency")]
    pub(super) frequency: RawDuration,
    #[serde(default = "defaults::start_delay")]
    pub(super) start_delay: RawDuration,
    #[serde(default = "defaults::safety_frequency")]
    pub(super) safety_frequency: RawDuration,
}

impl Default for RawScheduler {
    fn default() -> Self {
        RawSettings::default().scheduler
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatermark {
    #[serde(default = "defaults::watermark_default")]
    pub(super) default: String,
    #[serde(default = "defaults::lookback")]
    pub(super) lookback: RawDuration,
}

impl Default for RawWatermark {
    fn default() -> Self {
        RawSettings::default().watermark
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatch {
    #[serde(default = "defaults::page_size")]
    pub(super) page_size: i64,
    #[serde(default = "defaults::in_flight")]
    pub(super) in_flight: i64,
    #[serde(default = "defaults::bulk")]
    pub(super) bulk: Choice<BulkMode>,
    #[serde(default = "defaults::bulk_read_threshold")]
    pub(super) bulk_read_threshold: i64,
    #[serde(default = "defaults::bulk_write_threshold")]
    pub(super) bulk_write_threshold: i64,
    #[serde(default = "defaults::bulk_timeout")]
    pub(super) bulk_timeout: RawDuration,
}

impl Default for RawBatch {
    fn default() -> Self {
        RawSettings::default().batch
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrigger {
    #[serde(default = "defaults::trigger")]
    pub(super) policy: Choice<TriggerPolicy>,
}

impl Default for RawTrigger {
    fn default() -> Self {
        RawSettings::default().trigger
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    #[serde(default = "defaults::sync_policy")]
    pub(super) sync_policy: Choice<AccountPolicy>,
    #[serde(default = "defaults::account_fields")]
    pub(super) fields: RawList,
}

impl Default for RawAccount {
    fn default() -> Self {
        RawSettings::default().account
    }
}

/// `sync.filter`: a condition, or `false` for none.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub(super) enum RawFilter {
    Condition(String),
    Switch(bool),
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    #[serde(default = "defaults::object")]
    pub(super) object: String,
    #[serde(default = "defaults::fields")]
    pub(super) fields: RawList,
    #[serde(default = "defaults::filter", deserialize_with = "deserialize_filter")]
    pub(super) filter: Option<String>,
    #[serde(default = "defaults::match_by")]
    pub(super) match_by: RawList,
    #[serde(default)]
    pub(super) external_id_field: String,
    #[serde(default = "defaults::conflict")]
    pub(super) conflict: Choice<ConflictPolicy>,
    #[serde(default = "defaults::max_attempts")]
    pub(super) max_attempts: i64,
    #[serde(default = "defaults::skip_integration_user_changes")]
    pub(super) skip_integration_user_changes: bool,
    #[serde(default = "defaults::retry_initial_delay")]
    pub(super) retry_initial_delay: RawDuration,
    #[serde(default = "defaults::retry_max_delay")]
    pub(super) retry_max_delay: RawDuration,
    #[serde(default)]
    pub(super) field_map: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) value_map: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default = "defaults::deletes")]
    pub(super) deletes: Choice<DeletePolicy>,
    #[serde(default = "defaults::delete_conflict")]
    pub(super) delete_conflict: Choice<DeleteConflictPolicy>,
    #[serde(default = "defaults::max_deletes_per_cycle")]
    pub(super) max_deletes_per_cycle: i64,
    #[serde(default = "defaults::deleted_check_frequency")]
    pub(super) deleted_check_frequency: RawDuration,
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

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    #[serde(default = "defaults::state_url")]
    pub(super) url: String,
    /// A file holding the URL (it may hold a password), instead of `url`.
    #[serde(default)]
    pub(super) url_file: Option<String>,
    #[serde(default = "defaults::state_pair_name")]
    pub(super) pair_name: String,
}

impl Default for RawState {
    fn default() -> Self {
        RawSettings::default().state
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHa {
    #[serde(default = "defaults::lease_ttl")]
    pub(super) lease_ttl: RawDuration,
}

impl Default for RawHa {
    fn default() -> Self {
        RawSettings::default().ha
    }
}

/// `[reconcile]`: the daemon's background reconcile. `frequency` is text (`"off"` or a
/// duration), parsed by validation, which names the key when it is neither.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReconcile {
    #[serde(default = "defaults::reconcile_frequency")]
    pub(super) frequency: String,
    #[serde(default)]
    pub(super) repair: bool,
}

impl Default for RawReconcile {
    fn default() -> Self {
        RawSettings::default().reconcile
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default = "defaults::log_format")]
    pub(super) format: Choice<LogFormat>,
    #[serde(default = "defaults::log_level")]
    pub(super) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawSettings::default().log
    }
}

#[derive(Debug, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawOrgs {
    pub(super) a: RawOrg,
    pub(super) b: RawOrg,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawOrg {
    pub(super) login_url: String,
    pub(super) auth: Choice<AuthMode>,
    pub(super) username: String,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) security_token: Option<String>,
    pub(super) security_token_file: Option<String>,
    pub(super) client_id: String,
    pub(super) client_secret: Option<String>,
    pub(super) client_secret_file: Option<String>,
    pub(super) private_key: Option<String>,
    pub(super) private_key_file: Option<String>,
    pub(super) refresh_token: Option<String>,
    pub(super) refresh_token_file: Option<String>,
    pub(super) integration_user_id: String,
    pub(super) account_id: String,
    pub(super) api_version: String,
    pub(super) api_budget_percent: i64,
    pub(super) outbound_secret: Option<String>,
    pub(super) outbound_secret_file: Option<String>,
}

impl Default for RawOrg {
    fn default() -> Self {
        RawOrg {
            login_url: "https://login.salesforce.com".into(),
            auth: Choice::Known(AuthMode::Password),
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
pub(super) mod defaults {
    use super::{
        AccountPolicy, BulkMode, Choice, ConflictPolicy, DeleteConflictPolicy, DeletePolicy,
        LogFormat, RawDuration, RawList, RawSettings, TriggerPolicy,
    };

    pub fn port() -> i64 {
        RawSettings::default().http.port
    }
    pub fn bind() -> String {
        RawSettings::default().http.bind
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
    pub fn bulk() -> Choice<BulkMode> {
        RawSettings::default().batch.bulk
    }
    pub fn bulk_read_threshold() -> i64 {
        RawSettings::default().batch.bulk_read_threshold
    }
    pub fn bulk_write_threshold() -> i64 {
        RawSettings::default().batch.bulk_write_threshold
    }
    pub fn bulk_timeout() -> RawDuration {
        RawSettings::default().batch.bulk_timeout
    }
    pub fn trigger() -> Choice<TriggerPolicy> {
        RawSettings::default().trigger.policy
    }
    pub fn sync_policy() -> Choice<AccountPolicy> {
        RawSettings::default().account.sync_policy
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
    pub fn conflict() -> Choice<ConflictPolicy> {
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
    pub fn deletes() -> Choice<DeletePolicy> {
        RawSettings::default().sync.deletes
    }
    pub fn delete_conflict() -> Choice<DeleteConflictPolicy> {
        RawSettings::default().sync.delete_conflict
    }
    pub fn max_deletes_per_cycle() -> i64 {
        RawSettings::default().sync.max_deletes_per_cycle
    }
    pub fn deleted_check_frequency() -> RawDuration {
        RawSettings::default().sync.deleted_check_frequency
    }
    pub fn state_url() -> String {
        RawSettings::default().state.url
    }

    pub fn state_pair_name() -> String {
        RawSettings::default().state.pair_name
    }
    pub fn lease_ttl() -> RawDuration {
        RawSettings::default().ha.lease_ttl
    }
    pub fn reconcile_frequency() -> String {
        RawSettings::default().reconcile.frequency
    }
    pub fn log_format() -> Choice<LogFormat> {
        RawSettings::default().log.format
    }
    pub fn log_level() -> String {
        RawSettings::default().log.level
    }
}
