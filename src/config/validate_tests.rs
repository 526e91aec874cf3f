//! Tests of the validated settings through `load_str`: nested sections, defaults, and the
//! errors naming their keys (`validate`'s own unit tests of filters and API names stay
//! beside it).

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{
    AccountPolicy, ConflictPolicy, Credentials, LogFormat, TriggerPolicy, load_str,
};

/// Every section lands in its own struct, under the names of its TOML keys.
#[test]
fn each_section_maps_to_its_settings() {
    let toml = r#"
[http]
port = 8081
bind = "127.0.0.1"
[scheduler]
frequency = "7s"
start_delay = "2s"
safety_frequency = "5m"
[watermark]
default = "2020-01-02T03:04:05.000Z"
lookback = "45s"
[batch]
page_size = 150
in_flight = 3
[trigger]
policy = "hybrid"
[account]
sync_policy = "syncAccount"
fields = ["Name", "Industry"]
[sync]
object = "Opportunity"
fields = ["Name", "Amount"]
filter = "Amount > 1"
match_by = ["Name"]
external_id_field = "Ext__c"
conflict = "b_wins"
max_attempts = 3
skip_integration_user_changes = false
retry_initial_delay = "30s"
retry_max_delay = "10m"
field_map = { Amount = "Amount__c" }
[state]
url = "sqlite::memory:"
[log]
format = "json"
level = "debug"
[orgs.a]
username = "u@a"
outbound_secret = "oa"
[orgs.b]
auth = "refresh_token"
client_id = "app"
refresh_token = "rt"
outbound_secret = "ob"
api_budget_percent = 50
"#;
    let vars: HashMap<String, String> =
        [("ORGSYNC__ORGS__A__PASSWORD".to_string(), "pw".to_string())].into();
    let s = load_str("t", &[("t", toml)], &vars).unwrap();
    assert_eq!(s.http.port, 8081);
    assert_eq!(s.http.bind.to_string(), "127.0.0.1");
    assert_eq!(s.scheduler.frequency, Duration::from_secs(7));
    assert_eq!(s.scheduler.start_delay, Duration::from_secs(2));
    assert_eq!(s.scheduler.safety_frequency, Duration::from_secs(300));
    assert_eq!(
        s.watermark.default.to_rfc3339(),
        "2020-01-02T03:04:05+00:00"
    );
    assert_eq!(s.watermark.lookback, Duration::from_secs(45));
    assert_eq!((s.batch.page_size, s.batch.in_flight), (150, 3));
    assert_eq!(s.trigger.policy, TriggerPolicy::Hybrid);
    assert_eq!(s.account.sync_policy, AccountPolicy::SyncAccount);
    assert_eq!(s.account.fields, ["Name", "Industry"]);
    assert_eq!(s.sync.object, "Opportunity");
    assert_eq!(s.sync.fields, ["Name", "Amount"]);
    assert_eq!(s.sync.filter.as_deref(), Some("Amount > 1"));
    assert_eq!(s.sync.match_by, ["Name"]);
    assert_eq!(s.sync.external_id_field.as_deref(), Some("Ext__c"));
    assert_eq!(s.sync.conflict, ConflictPolicy::BWins);
    assert_eq!(s.sync.max_attempts, 3);
    assert!(!s.sync.skip_integration_user_changes);
    assert_eq!(s.sync.retry_initial_delay, Duration::from_secs(30));
    assert_eq!(s.sync.retry_max_delay, Duration::from_secs(600));
    assert_eq!(s.sync.b_field_name("Amount"), "Amount__c");
    assert_eq!(s.sync.b_field_name("Name"), "Name");
    assert_eq!(s.state.url, "sqlite::memory:");
    assert_eq!(
        (s.log.format, s.log.level.as_str()),
        (LogFormat::Json, "debug")
    );
    assert_eq!(s.a.username, "u@a");
    assert!(matches!(s.a.credentials, Credentials::Password { .. }));
    assert_eq!(s.b.login_name(), "client app");
    assert!(matches!(s.b.credentials, Credentials::RefreshToken { .. }));
    assert_eq!(s.b.api_budget_percent, 50);
    assert_eq!(s.org(crate::domain::Org::B).name, "b");
}

/// A value outside an enum's spellings is kept by the raw struct and reported with every
/// other, naming the key and the values allowed; the spellings are the enums' serde names.
#[test]
fn unknown_choices_are_all_reported_at_once() {
    let toml = r#"
[trigger]
policy = "webhook"
[account]
sync_policy = "SyncAccount"
[sync]
conflict = "newest"
[log]
format = "yaml"
[orgs.a]
auth = "saml"
[orgs.b]
username = "u@b"
"#;
    let vars: HashMap<String, String> =
        [("ORGSYNC__ORGS__B__PASSWORD".to_string(), "pw".to_string())].into();
    let err = load_str("t", &[("t", toml)], &vars).unwrap_err();
    let crate::config::ConfigError::Invalid(problems) = err else {
        panic!("{err:?}")
    };
    let found: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.key.as_str(), p.message.as_str()))
        .collect();
    let expect = [
        (
            "trigger.policy",
            "unknown policy \"webhook\": use \"poll\", \"push\" or \"hybrid\"",
        ),
        ("account.sync_policy", "unknown policy \"SyncAccount\""),
        ("sync.conflict", "unknown policy \"newest\""),
        ("log.format", "unknown format \"yaml\""),
        ("orgs.a.auth", "unknown auth mode \"saml\""),
    ];
    for (key, start) in expect {
        assert!(
            found.iter().any(|(k, m)| *k == key && m.starts_with(start)),
            "{key}: {found:?}"
        );
    }
    // Each spelling the messages offer is accepted.
    let toml = r#"
[trigger]
policy = "push"
[account]
sync_policy = "assign"
[sync]
conflict = "a_wins"
[log]
format = "text"
[orgs.a]
auth = "oauth_password"
username = "u@a"
client_id = "app"
account_id = "001000000000001"
[orgs.b]
username = "u@b"
account_id = "001000000000002"
"#;
    let vars: HashMap<String, String> = [
        ("ORGSYNC__ORGS__A__PASSWORD", "pw"),
        ("ORGSYNC__ORGS__A__CLIENT_SECRET", "cs"),
        ("ORGSYNC__ORGS__A__OUTBOUND_SECRET", "oa"),
        ("ORGSYNC__ORGS__B__PASSWORD", "pw"),
        ("ORGSYNC__ORGS__B__OUTBOUND_SECRET", "ob"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = load_str("t", &[("t", toml)], &vars).unwrap();
    assert_eq!(s.trigger.policy, TriggerPolicy::Push);
    assert_eq!(s.account.sync_policy, AccountPolicy::Assign);
    assert_eq!(s.sync.conflict, ConflictPolicy::AWins);
    assert_eq!(s.log.format, LogFormat::Text);
    assert_eq!(s.a.auth(), crate::config::AuthMode::OauthPassword);
}

/// The Bulk keys: defaults, values, and errors naming the key.
#[test]
fn bulk_keys_default_parse_and_name_their_errors() {
    let vars: HashMap<String, String> = [
        ("ORGSYNC__ORGS__A__PASSWORD".to_string(), "pw".to_string()),
        ("ORGSYNC__ORGS__B__PASSWORD".to_string(), "pw".to_string()),
    ]
    .into();
    let orgs = "[orgs.a]\nusername = \"u@a\"\n[orgs.b]\nusername = \"u@b\"\n";
    let s = load_str("t", &[("t", orgs)], &vars).unwrap();
    assert_eq!(s.batch.bulk, crate::config::BulkMode::Auto);
    assert_eq!(s.batch.bulk_read_threshold, 10_000);
    assert_eq!(s.batch.bulk_write_threshold, 2_000);
    assert_eq!(s.batch.bulk_timeout, Duration::from_secs(1800));
    let toml = format!(
        "[batch]\nbulk = \"always\"\nbulk_read_threshold = 500\nbulk_write_threshold = 50\nbulk_timeout = \"2m\"\n{orgs}"
    );
    let s = load_str("t", &[("t", &toml)], &vars).unwrap();
    assert_eq!(s.batch.bulk, crate::config::BulkMode::Always);
    assert_eq!(
        (s.batch.bulk_read_threshold, s.batch.bulk_write_threshold),
        (500, 50)
    );
    assert_eq!(s.batch.bulk_timeout, Duration::from_secs(120));
    let toml = format!(
        "[batch]\nbulk = \"sometimes\"\nbulk_read_threshold = 0\nbulk_write_threshold = -1\nbulk_timeout = \"0s\"\n{orgs}"
    );
    let err = load_str("t", &[("t", &toml)], &vars).unwrap_err();
    let crate::config::ConfigError::Invalid(problems) = err else {
        panic!("{err:?}")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "batch.bulk",
        "batch.bulk_read_threshold",
        "batch.bulk_write_threshold",
        "batch.bulk_timeout",
    ] {
        assert!(keys.contains(&key), "{key}: {problems:?}");
    }
    let bulk = problems.iter().find(|p| p.key == "batch.bulk").unwrap();
    assert!(bulk.message.contains("\"auto\", \"never\" or \"always\""));
}

#[test]
fn the_lease_ttl_defaults_to_15s_and_is_bounded() {
    let vars: HashMap<String, String> = [
        ("ORGSYNC__ORGS__A__PASSWORD", "pw"),
        ("ORGSYNC__ORGS__B__PASSWORD", "pw"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let orgs = "[orgs.a]\nusername = \"u@a\"\n[orgs.b]\nusername = \"u@b\"\n";
    let s = load_str("t", &[("t", orgs)], &vars).unwrap();
    assert_eq!(s.ha.lease_ttl, Duration::from_secs(15));
    let with = |ttl: &str| format!("[ha]\nlease_ttl = \"{ttl}\"\n{orgs}");
    let s = load_str("t", &[("t", &with("3s"))], &vars).unwrap();
    assert_eq!(s.ha.lease_ttl, Duration::from_secs(3));
    for bad in ["2s", "6min"] {
        let err = load_str("t", &[("t", &with(bad))], &vars).unwrap_err();
        let crate::config::ConfigError::Invalid(problems) = err else {
            panic!("{err:?}")
        };
        assert!(
            problems
                .iter()
                .any(|p| p.key == "ha.lease_ttl" && p.message.contains("from 3s to 5min")),
            "{bad}: {problems:?}"
        );
    }
}

#[test]
fn the_background_reconcile_is_off_by_default_and_takes_a_duration() {
    let vars: HashMap<String, String> = [
        ("ORGSYNC__ORGS__A__PASSWORD", "pw"),
        ("ORGSYNC__ORGS__B__PASSWORD", "pw"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let orgs = "[orgs.a]\nusername = \"u@a\"\n[orgs.b]\nusername = \"u@b\"\n";
    let s = load_str("t", &[("t", orgs)], &vars).unwrap();
    assert_eq!(s.reconcile.frequency, None);
    assert!(!s.reconcile.repair);
    let with = |f: &str| format!("[reconcile]\nfrequency = \"{f}\"\nrepair = true\n{orgs}");
    let s = load_str("t", &[("t", &with("24h"))], &vars).unwrap();
    assert_eq!(s.reconcile.frequency, Some(Duration::from_secs(24 * 3600)));
    assert!(s.reconcile.repair);
    let s = load_str("t", &[("t", &with("1s"))], &vars).unwrap();
    assert_eq!(s.reconcile.frequency, Some(Duration::from_secs(1)));
    for off in ["off", "OFF", ""] {
        let s = load_str("t", &[("t", &with(off))], &vars).unwrap();
        assert_eq!(s.reconcile.frequency, None, "{off:?}");
    }
    for bad in ["daily", "0s", "-1h"] {
        let err = load_str("t", &[("t", &with(bad))], &vars).unwrap_err();
        let crate::config::ConfigError::Invalid(problems) = err else {
            panic!("{err:?}")
        };
        assert!(
            problems.iter().any(|p| p.key == "reconcile.frequency"
                && (p.message.contains("\"off\"") || p.message.contains("not a frequency"))),
            "{bad}: {problems:?}"
        );
    }
    // An unknown key of the section is named too.
    let err = load_str(
        "t",
        &[("t", &format!("[reconcile]\nfrequncy = \"1h\"\n{orgs}"))],
        &vars,
    )
    .unwrap_err();
    assert!(format!("{err}").contains("reconcile.frequncy"), "{err}");
}
