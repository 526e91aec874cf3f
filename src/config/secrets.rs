//! Secrets: a secret key is given inline (from the environment) or through its `*_file` key
//! (Docker secrets, systemd `LoadCredential=`), one or the other, and is held in a
//! [`SecretString`] that no message ever quotes. A secret written in a configuration file
//! itself still loads (refusing it would stop a running service at its next restart), with a
//! warning naming the key and the file: files are committed, copied and shown around.

use std::path::Path;

use secrecy::SecretString;

use super::keys::ENV_PREFIX;
use super::validate::Checker;

/// The secret keys of each org (`orgs.X.<key>`), in the order warnings name them; each has a
/// `<key>_file` twin (a test in `keys` checks this list against the raw structs).
pub(super) const SECRET_KEYS: &[&str] = &[
    "password",
    "security_token",
    "client_secret",
    "private_key",
    "refresh_token",
    "outbound_secret",
];

/// One warning for every secret that the file at `path` (its parsed `table`) sets itself,
/// rather than through the environment or the `*_file` key. Empty values set nothing. The
/// warning never holds the value.
pub(super) fn secrets_written_in(
    table: &config::Map<String, config::Value>,
    path: &Path,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(config::ValueKind::Table(orgs)) = table.get("orgs").map(|v| &v.kind) else {
        return warnings;
    };
    for org in ["a", "b"] {
        let Some(config::ValueKind::Table(keys)) = orgs.get(org).map(|v| &v.kind) else {
            continue;
        };
        for name in SECRET_KEYS {
            let set = match keys.get(*name).map(|v| &v.kind) {
                None | Some(config::ValueKind::Nil) => false,
                Some(config::ValueKind::String(text)) => !text.is_empty(),
                Some(_) => true,
            };
            if set {
                let key = format!("orgs.{org}.{name}");
                let var = format!(
                    "{ENV_PREFIX}{}",
                    key.to_ascii_uppercase().replace('.', "__")
                );
                warnings.push(format!(
                    "{key} is set in {}: secrets belong in the environment ({var}) or in \
                     {key}_file",
                    path.display()
                ));
            }
        }
    }
    warnings
}

/// A secret given inline or through a `*_file` key (one or the other, not both).
pub(super) fn secret(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml: &str) -> config::Map<String, config::Value> {
        config::Source::collect(&config::File::from_str(toml, config::FileFormat::Toml)).unwrap()
    }

    #[test]
    fn every_secret_written_in_a_file_is_named_without_its_value() {
        let toml = "[orgs.a]\nusername = \"u\"\npassword = \"pw-1\"\nsecurity_token = \"\"\n\
                    private_key_file = \"/k\"\n[orgs.b]\nclient_secret = \"cs-2\"\n\
                    refresh_token = \"rt-3\"\n";
        let warnings = secrets_written_in(&table(toml), Path::new("config/prod.toml"));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert_eq!(
            warnings[0],
            "orgs.a.password is set in config/prod.toml: secrets belong in the environment \
             (ORGSYNC__ORGS__A__PASSWORD) or in orgs.a.password_file"
        );
        assert!(warnings[1].starts_with("orgs.b.client_secret is set"));
        assert!(warnings[2].starts_with("orgs.b.refresh_token is set"));
        for secret in ["pw-1", "cs-2", "rt-3"] {
            assert!(!warnings.concat().contains(secret));
        }
    }

    #[test]
    fn a_file_without_secrets_has_no_warning() {
        let toml = "[batch]\npage_size = 10\n[orgs.a]\npassword_file = \"/run/pw\"\n";
        assert!(secrets_written_in(&table(toml), Path::new("x.toml")).is_empty());
        assert!(secrets_written_in(&table(""), Path::new("x.toml")).is_empty());
    }
}
