//! Validation: raw configuration -> [`Settings`], every problem reported at once with the key
//! and where its value came from.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::{ConfigError, Origin, Origins, Problem};
use super::load::Secrets;
use super::org::validate_org;
use super::raw::{Choice, RawSettings};
use super::settings::{
    AccountPolicy, AccountSettings, BatchSettings, BulkMode, ConflictPolicy, DeleteConflictPolicy,
    DeletePolicy, HaSettings, HttpSettings, LogFormat, LogSettings, ReconcileSettings,
    SchedulerSettings, Settings, StateSettings, SyncSettings, TriggerPolicy, TriggerSettings,
    WatermarkSettings,
};

/// Largest page the REST query API returns (`batchSize` caps at 2000).
pub const MAX_PAGE_SIZE: usize = 2000;

/// The most Salesforce calls a pass may keep in flight (`batch.in_flight`). Salesforce
/// allows 25 concurrent long-running requests per org, shared with every other integration.
pub const MAX_IN_FLIGHT: usize = 10;

/// The largest `batch.bulk_read_threshold` / `batch.bulk_write_threshold` (150 million: Bulk
/// API 2.0's daily record allowance).
pub const MAX_BULK_THRESHOLD: usize = 150_000_000;

/// `batch.in_flight` when not configured.
pub const DEFAULT_IN_FLIGHT: usize = 4;

/// Collects problems with their origins while validating.
pub(super) struct Checker<'o> {
    pub(super) origins: &'o Origins,
    pub(super) problems: Vec<Problem>,
    pub(super) secrets: Secrets,
}

impl Checker<'_> {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            origin: self.origins.of(key),
            message: message.into(),
        });
    }

    /// A problem with a required key that no layer sets.
    pub(super) fn missing(&mut self, key: &str, message: impl Into<String>) {
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

    pub(super) fn identifier(&mut self, key: &str, name: &str) {
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
pub(super) fn is_record_id(id: &str, prefix: &str) -> bool {
    (id.len() == 15 || id.len() == 18)
        && id.chars().all(|c| c.is_ascii_alphanumeric())
        && id.starts_with(prefix)
}

/// Validates the raw configuration into [`Settings`], reporting every problem at once.
pub(super) fn validate(
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
    let http_bind = parse_bind(&raw.http.bind).unwrap_or_else(|message| {
        c.problem("http.bind", message);
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
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
    let bulk = match raw.batch.bulk {
        Choice::Known(mode) => mode,
        Choice::Unknown(other) => {
            c.problem(
                "batch.bulk",
                format!("unknown mode {other:?}: use \"auto\", \"never\" or \"always\""),
            );
            BulkMode::Auto
        }
    };
    let bulk_read_threshold = c.count(
        "batch.bulk_read_threshold",
        raw.batch.bulk_read_threshold,
        MAX_BULK_THRESHOLD,
        10_000,
    ) as u64;
    let bulk_write_threshold = c.count(
        "batch.bulk_write_threshold",
        raw.batch.bulk_write_threshold,
        MAX_BULK_THRESHOLD,
        2_000,
    ) as u64;
    let bulk_timeout = c.positive("batch.bulk_timeout", raw.batch.bulk_timeout.0);

    let trigger = match raw.trigger.policy {
        Choice::Known(policy) => policy,
        Choice::Unknown(other) => {
            c.problem(
                "trigger.policy",
                format!("unknown policy {other:?}: use \"poll\", \"push\" or \"hybrid\""),
            );
            TriggerPolicy::Poll
        }
    };

    let account_policy = match raw.account.sync_policy {
        Choice::Known(policy) => policy,
        Choice::Unknown(other) => {
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
    let conflict = match raw.sync.conflict {
        Choice::Known(policy) => policy,
        Choice::Unknown(other) => {
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
    let deletes = match raw.sync.deletes {
        Choice::Known(policy) => policy,
        Choice::Unknown(other) => {
            c.problem(
                "sync.deletes",
                format!("unknown policy {other:?}: use \"propagate\" or \"ignore\""),
            );
            DeletePolicy::Propagate
        }
    };
    let delete_conflict = match raw.sync.delete_conflict {
        Choice::Known(policy) => policy,
        Choice::Unknown(other) => {
            c.problem(
                "sync.delete_conflict",
                format!("unknown policy {other:?}: use \"keep_edit\" or \"delete\""),
            );
            DeleteConflictPolicy::KeepEdit
        }
    };
    let max_deletes_per_cycle = match u32::try_from(raw.sync.max_deletes_per_cycle) {
        Ok(n) => n,
        Err(_) => {
            c.problem(
                "sync.max_deletes_per_cycle",
                format!(
                    "must be 0 (no limit) or a positive number of deletes, got {}",
                    raw.sync.max_deletes_per_cycle
                ),
            );
            0
        }
    };
    let deleted_check_frequency = c.positive(
        "sync.deleted_check_frequency",
        raw.sync.deleted_check_frequency.0,
    );
    let field_map = raw.sync.field_map;
    check_field_map(&mut c, &fields, &field_map);
    let value_map = raw.sync.value_map;
    check_value_map(&mut c, &fields, &value_map);

    let state_url = super::state::state_url(&mut c, &raw.state.url, raw.state.url_file.as_deref());
    let pair_name = raw.state.pair_name.trim().to_string();
    if !super::state::valid_pair_name(&pair_name) {
        c.problem(
            "state.pair_name",
            format!(
                "{pair_name:?} is not a pair name: 1 to 40 of a-z, 0-9 and _ (it names the \
                 PostgreSQL schema orgsync_<pair_name>)"
            ),
        );
    }

    let lease_ttl = raw.ha.lease_ttl.0;
    if !(super::settings::MIN_LEASE_TTL..=super::settings::MAX_LEASE_TTL).contains(&lease_ttl) {
        c.problem(
            "ha.lease_ttl",
            format!(
                "{} is out of range: from 3s to 5min (the lease is renewed every third of it)",
                format_args!("{}ms", lease_ttl.as_millis())
            ),
        );
    }

    let reconcile = ReconcileSettings {
        frequency: reconcile_frequency(&mut c, &raw.reconcile.frequency),
        repair: raw.reconcile.repair,
    };

    let log_format = match raw.log.format {
        Choice::Known(format) => format,
        Choice::Unknown(other) => {
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
        http: HttpSettings {
            port: http_port,
            bind: http_bind,
        },
        scheduler: SchedulerSettings {
            frequency: scheduler_frequency,
            start_delay: scheduler_start_delay,
            safety_frequency: scheduler_safety_frequency,
        },
        watermark: WatermarkSettings {
            default: watermark_default,
            lookback,
        },
        batch: BatchSettings {
            page_size,
            in_flight,
            bulk,
            bulk_read_threshold,
            bulk_write_threshold,
            bulk_timeout,
        },
        trigger: TriggerSettings { policy: trigger },
        account: AccountSettings {
            sync_policy: account_policy,
            fields: account_fields,
        },
        sync: SyncSettings {
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
            deletes,
            delete_conflict,
            max_deletes_per_cycle,
            deleted_check_frequency,
        },
        state: StateSettings {
            url: state_url,
            pair_name,
        },
        ha: HaSettings { lease_ttl },
        reconcile,
        log,
        a,
        b,
        warnings: Vec::new(),
    })
}

/// `reconcile.frequency`: `"off"` (or empty) is never, otherwise a duration above zero.
fn reconcile_frequency(c: &mut Checker<'_>, text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return None;
    }
    match super::duration::parse_duration(text) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            c.problem(
                "reconcile.frequency",
                "0 is not a frequency: use a duration such as \"24h\", or \"off\"".to_string(),
            );
            None
        }
        Err(e) => {
            c.problem(
                "reconcile.frequency",
                format!("{text:?} is not \"off\" or a duration such as \"24h\": {e}"),
            );
            None
        }
    }
}

/// `http.bind`: an IPv4 or IPv6 address, the latter with or without brackets (`::1`, `[::1]`).
/// No host names (the listener binds one address, and resolving a name at start would make
/// the address depend on DNS) and no port (that is `http.port`).
fn parse_bind(text: &str) -> Result<std::net::IpAddr, String> {
    let trimmed = text.trim();
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(trimmed);
    unbracketed.parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address: use \"0.0.0.0\" (every interface), \"127.0.0.1\" \
             (behind a local reverse proxy), \"::\" or another IPv4 or IPv6 address; the port \
             is http.port"
        )
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod nested_tests;
