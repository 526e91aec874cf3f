//! The `[state]` keys: where the state store is (`state.url`, or `state.url_file` for a URL
//! holding a password, like the orgs' `*_file` secrets) and which sync pair it is for
//! (`state.pair_name`). No message here ever shows a URL's password (`domain::redact_url`).

use super::error::Origin;
use super::validate::Checker;

/// Whether `name` is a valid `state.pair_name`: 1 to 40 of `a-z`, `0-9`, `_` (it becomes part
/// of a PostgreSQL schema name, `orgsync_<name>`, spliced in as an identifier).
pub fn valid_pair_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What a `state.url` names, or why it names nothing orgsync can open.
pub fn check_state_url(url: &str) -> Result<(), String> {
    let shown = crate::domain::redact_url(url);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url::Url::parse(url) {
            Ok(parsed) if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
            Ok(_) => Err(format!("{shown:?} names no host")),
            // The parser's message never quotes the URL.
            Err(e) => Err(format!("{shown:?} is not a URL: {e}")),
        }
    } else if url.starts_with("sqlite:") || (!url.is_empty() && !url.contains(':')) {
        Ok(())
    } else {
        Err(format!(
            "{shown:?} is neither SQLite nor PostgreSQL: use \"sqlite://path/to/orgsync.db\", a \
             file path, \"sqlite::memory:\" or \"postgres://user@host/database\""
        ))
    }
}

/// The state URL: `state.url`, or the contents of the file `state.url_file` names (one or the
/// other: a `state.url` other than the built-in default, together with `state.url_file`, is a
/// problem). Problems are recorded in `c`; the result is then a
/// placeholder so that checking goes on.
pub(super) fn state_url(c: &mut Checker<'_>, url: &str, url_file: Option<&str>) -> String {
    let url = url.trim().to_string();
    let url = match url_file.map(str::trim).filter(|f| !f.is_empty()) {
        None => url,
        Some(path) => {
            // The shipped default.toml (copied into config folders) sets the default URL: only
            // another URL beside url_file is a contradiction.
            if c.origins.of("state.url") != Origin::Default
                && url != super::raw::defaults::state_url()
            {
                let other = c.origins.of("state.url_file");
                c.problem(
                    "state.url",
                    format!(
                        "is set, and so is state.url_file (from {other}): give only one of them"
                    ),
                );
                return url;
            }
            match std::fs::read_to_string(path) {
                Ok(contents) => {
                    let value = contents.trim().to_string();
                    if value.is_empty() {
                        c.problem("state.url_file", format!("file {path:?} is empty"));
                    }
                    value
                }
                Err(e) => {
                    c.problem("state.url_file", format!("cannot read file {path:?}: {e}"));
                    return url;
                }
            }
        }
    };
    if let Err(message) = check_state_url(&url) {
        let key = if url_file.is_some_and(|f| !f.trim().is_empty()) {
            "state.url_file"
        } else {
            "state.url"
        };
        c.problem(key, message);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_names_are_short_lower_case_identifiers() {
        for good in ["default", "emea_2", "a", &"x".repeat(40)] {
            assert!(valid_pair_name(good), "{good}");
        }
        for bad in ["", "EMEA", "a-b", "a b", "x;drop", &"x".repeat(41), "é"] {
            assert!(!valid_pair_name(bad), "{bad}");
        }
    }

    #[test]
    fn urls_of_both_backends_pass_and_others_are_refused_without_their_password() {
        for good in [
            "sqlite://orgsync.db",
            "sqlite::memory:",
            "/var/lib/orgsync/state.db",
            "orgsync.db",
            "postgres://orgsync:pw@db.example.com:5432/orgsync",
            "postgresql://orgsync@db/orgsync?sslmode=require",
        ] {
            assert_eq!(check_state_url(good), Ok(()), "{good}");
        }
        let err = check_state_url("mysql://orgsync:s3cretPW@db/orgsync").unwrap_err();
        assert!(err.contains("mysql://orgsync:***@db/orgsync"), "{err}");
        assert!(!err.contains("s3cretPW"), "{err}");
        let err = check_state_url("postgres://orgsync:s3cretPW@/orgsync").unwrap_err();
        assert!(!err.contains("s3cretPW"), "{err}");
    }
}
