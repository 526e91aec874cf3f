//! The keys orgsync knows, as dotted lower-case names (`batch.page_size`, `orgs.a.password`),
//! and the "did you mean" hint for a key it does not know.

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

/// The sections (TOML tables) orgsync knows, in the order `config/default.toml` lists them.
pub const SECTIONS: &[&str] = &[
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
    "http.bind",
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

pub(super) const DATA_TABLES: &[&str] = &["sync.field_map", "sync.value_map"];

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

pub(super) fn unknown_key_message(key: &str) -> String {
    let suggestion = all_keys()
        .map(|candidate| (strsim::levenshtein(key, &candidate), candidate))
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
    }
}
