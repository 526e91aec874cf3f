//! Configuration of delete propagation (issue 13): `sync.deletes`, `sync.delete_conflict`,
//! `sync.max_deletes_per_cycle`, `sync.deleted_check_frequency`: defaults, accepted spellings,
//! and bad values rejected with an error naming the key.

use std::collections::HashMap;
use std::time::Duration;

use orgsync::config::{self, ConfigError, DeleteConflictPolicy, DeletePolicy, Settings};

const USERS: &str = r#"
[orgs.a]
username = "integration@a.sim"
[orgs.b]
username = "integration@b.sim"
"#;

fn secrets() -> HashMap<String, String> {
    [
        ("ORGSYNC__ORGS__A__PASSWORD", "pw"),
        ("ORGSYNC__ORGS__B__PASSWORD", "pw"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn load(sync: &str) -> Result<Settings, ConfigError> {
    let text = format!("[sync]\n{sync}\n{USERS}");
    config::load_str("t", &[("t", &text)], &secrets())
}

#[test]
fn delete_settings_default_to_propagate_keep_edit_100_and_1h() {
    let s = load("").unwrap();
    assert_eq!(s.sync.deletes, DeletePolicy::Propagate);
    assert_eq!(s.sync.delete_conflict, DeleteConflictPolicy::KeepEdit);
    assert_eq!(s.sync.max_deletes_per_cycle, 100);
    assert_eq!(s.sync.deleted_check_frequency, Duration::from_secs(3600));
}

#[test]
fn delete_settings_take_every_spelling_they_document() {
    let s = load(
        "deletes = \"ignore\"\ndelete_conflict = \"delete\"\nmax_deletes_per_cycle = 0\n\
         deleted_check_frequency = \"15min\"",
    )
    .unwrap();
    assert_eq!(s.sync.deletes, DeletePolicy::Ignore);
    assert_eq!(s.sync.delete_conflict, DeleteConflictPolicy::Delete);
    assert_eq!(s.sync.max_deletes_per_cycle, 0);
    assert_eq!(s.sync.deleted_check_frequency, Duration::from_secs(900));
}

#[test]
fn bad_delete_settings_are_rejected_naming_the_key() {
    let err = load(
        "deletes = \"cascade\"\ndelete_conflict = \"newest\"\nmax_deletes_per_cycle = -1\n\
         deleted_check_frequency = \"0s\"",
    )
    .unwrap_err();
    let ConfigError::Invalid(problems) = err else {
        panic!("{err:?}")
    };
    let found: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.key.as_str(), p.message.as_str()))
        .collect();
    for (key, start) in [
        ("sync.deletes", "unknown policy \"cascade\""),
        ("sync.delete_conflict", "unknown policy \"newest\""),
        ("sync.max_deletes_per_cycle", "must be 0 (no limit)"),
        ("sync.deleted_check_frequency", "must be greater than zero"),
    ] {
        assert!(
            found.iter().any(|(k, m)| *k == key && m.starts_with(start)),
            "{key}: {found:?}"
        );
    }
}
