//! Secrets: a secret key is given inline (from the environment) or through its `*_file` key
//! (Docker secrets, systemd `LoadCredential=`), one or the other, and is held in a
//! [`SecretString`] that no message ever quotes.

use secrecy::SecretString;

use super::validate::Checker;

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
