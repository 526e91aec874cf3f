//! The keys orgsync knows, as dotted lower-case names (`batch.page_size`, `orgs.a.password`),
//! and the "did you mean" hint for a key it does not know. The keys come from one place, the
//! raw serde structs (`raw`); [`SECTIONS`] only adds their order.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::raw::RawSettings;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ORGSYNC__";

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

/// The sections (TOML tables) orgsync knows, in the order `config/default.toml` lists them
/// (the order `import-properties` writes them in). A test checks it against the raw structs,
/// the one source of keys.
pub const SECTIONS: &[&str] = &[
    "http",
    "scheduler",
    "watermark",
    "batch",
    "trigger",
    "account",
    "sync",
    "state",
    "ha",
    "reconcile",
    "log",
    "orgs",
    "orgs.a",
    "orgs.b",
];

/// Every key orgsync knows with its kind, derived from the raw structs (`raw`): the built-in
/// defaults serialized, each table a [`KeyKind::Section`], each value a [`KeyKind::Leaf`], and
/// each table that is empty in the defaults (`sync.field_map`, `sync.value_map`: its keys are
/// data) a [`KeyKind::DataTable`]. The raw structs are what deserialization accepts
/// (`deny_unknown_fields`), so this list cannot drift from it.
static KNOWN: LazyLock<BTreeMap<String, KeyKind>> = LazyLock::new(|| {
    let mut known = BTreeMap::new();
    // Serializing plain structs of strings, numbers and maps cannot fail; if it ever did,
    // every key would be unknown and the first load would say so.
    let defaults = serde_json::to_value(RawSettings::default()).unwrap_or_default();
    collect("", &defaults, &mut known);
    known
});

fn collect(prefix: &str, value: &Value, known: &mut BTreeMap<String, KeyKind>) {
    let Value::Object(table) = value else {
        return;
    };
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::Object(inner) if inner.is_empty() => {
                known.insert(key, KeyKind::DataTable);
            }
            Value::Object(_) => {
                collect(&key, value, known);
                known.insert(key, KeyKind::Section);
            }
            _ => {
                known.insert(key, KeyKind::Leaf);
            }
        }
    }
}

/// Classifies a dotted key (lower-case section and key names as in the TOML files), or `None`
/// when orgsync has no such key.
pub fn known_key(key: &str) -> Option<KeyKind> {
    KNOWN.get(key).copied()
}

/// The tables whose keys are data (`sync.field_map`, `sync.value_map`).
pub(super) fn data_tables() -> impl Iterator<Item = &'static str> {
    KNOWN
        .iter()
        .filter(|(_, kind)| **kind == KeyKind::DataTable)
        .map(|(key, _)| key.as_str())
}

/// The secret keys of an org (`password`, `client_secret`, ...): those with a `<key>_file`
/// twin. `secrets::SECRET_KEYS` lists them in the order warnings name them; a test checks the
/// two agree.
#[cfg(test)]
fn org_secret_keys() -> impl Iterator<Item = &'static str> {
    KNOWN.keys().filter_map(|key| {
        let name = key.strip_prefix("orgs.a.")?;
        KNOWN.contains_key(&format!("{key}_file")).then_some(name)
    })
}

/// Every known key, for "did you mean" hints.
fn all_keys() -> impl Iterator<Item = &'static str> {
    KNOWN.keys().map(String::as_str)
}

pub(super) fn unknown_key_message(key: &str) -> String {
    let suggestion = all_keys()
        .map(|candidate| (strsim::levenshtein(key, candidate), candidate))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance);
    match suggestion {
        Some((_, candidate)) => format!("unknown key (did you mean `{candidate}`?)"),
        None => "unknown key".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys() {
        assert_eq!(known_key("orgs.a.password_file"), Some(KeyKind::Leaf));
        assert_eq!(known_key("orgs.c.password"), None);
        assert_eq!(known_key("sync"), Some(KeyKind::Section));
        assert_eq!(known_key("sync.value_map"), Some(KeyKind::DataTable));
        assert_eq!(known_key("batch.pagesize"), None);
        assert!(unknown_key_message("batch.pagesize").contains("batch.page_size"));
        assert_eq!(known_key("orgs.b.api_budget_percent"), Some(KeyKind::Leaf));
        assert_eq!(known_key("sync.field_map"), Some(KeyKind::DataTable));
        assert_eq!(known_key("orgs.a.auth.x"), None);
    }

    #[test]
    fn sections_are_the_raw_structs_tables_in_the_default_files_order() {
        let mut derived: Vec<&str> = KNOWN
            .iter()
            .filter(|(_, kind)| **kind == KeyKind::Section)
            .map(|(key, _)| key.as_str())
            .collect();
        let mut listed = SECTIONS.to_vec();
        derived.sort_unstable();
        listed.sort_unstable();
        assert_eq!(derived, listed);
        // The order is that of config/default.toml's tables.
        let file = include_str!("../../config/default.toml");
        let tables: Vec<&str> = file
            .lines()
            .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
            .collect();
        let in_file: Vec<&str> = SECTIONS
            .iter()
            .copied()
            .filter(|s| tables.contains(s))
            .collect();
        let file_order: Vec<&str> = tables
            .iter()
            .copied()
            .filter(|t| SECTIONS.contains(t))
            .collect();
        assert_eq!(in_file, file_order);
    }

    #[test]
    fn secret_keys_are_those_with_a_file_twin() {
        let secrets: Vec<&str> = org_secret_keys().collect();
        let mut listed = super::super::secrets::SECRET_KEYS.to_vec();
        listed.sort_unstable();
        assert_eq!(secrets, listed);
        assert_eq!(
            secrets,
            [
                "client_secret",
                "outbound_secret",
                "password",
                "private_key",
                "refresh_token",
                "security_token"
            ]
        );
        assert_eq!(
            data_tables().collect::<Vec<_>>(),
            ["sync.field_map", "sync.value_map"]
        );
    }
}
