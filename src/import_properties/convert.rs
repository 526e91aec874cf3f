//! The template's keys (DESIGN §1) mapped to orgsync's TOML: what converts, the secrets that
//! become environment variables, and what could not be converted, one sentence each. Pure:
//! pairs in, a [`Conversion`] out.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// The oldest API version whose REST features orgsync uses (sObject Collections arrived in 42.0).
const MIN_API_VERSION: (u32, u32) = (42, 0);

/// What [`convert`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conversion {
    /// The TOML text of the environment layer (loads over the built-in defaults,
    /// `config/default.toml`).
    pub toml: String,
    /// Environment variables that must hold the secrets left out of the file.
    pub secret_vars: Vec<String>,
    /// Keys orgsync does not know, in input order.
    pub unknown: Vec<String>,
    /// Known keys whose value could not be converted, or was converted with a change worth
    /// knowing, one sentence each.
    pub notes: Vec<String>,
    /// Every property left out of the file: unknown keys and values that could not be
    /// converted, in input order. Not empty: the import is partial.
    pub not_converted: Vec<String>,
    /// `mule.env`, when set.
    pub mule_env: Option<String>,
}

impl Conversion {
    /// `key`'s value could not be converted: `why` says so, in a sentence.
    fn reject(&mut self, key: &str, why: String) {
        self.notes.push(why);
        self.not_converted.push(key.to_string());
    }
}

/// One `key = value` line of the output, in its TOML table.
struct Entry {
    table: &'static str,
    key: &'static str,
    /// Already TOML-encoded.
    value: String,
    /// The template property it came from.
    source: String,
}

/// Converts template properties (later pairs win over earlier ones with the same key) into
/// orgsync's TOML, the secret variables to set and the keys it does not know.
pub fn convert(props: &[(String, String)]) -> Conversion {
    let (mut conv, entries) = convert_to_entries(props);
    conv.toml = render(&entries, &conv.secret_vars, &conv.not_converted);
    conv
}

/// [`convert`] before rendering: the conversion without its TOML, and the lines to write.
fn convert_to_entries(props: &[(String, String)]) -> (Conversion, Vec<Entry>) {
    let mut conv = Conversion::default();
    let mut entries: Vec<Entry> = Vec::new();
    let mut secrets: BTreeSet<String> = BTreeSet::new();
    let mut needs_outbound_secret = false;
    // Later pairs win: keep the last value of each key, in first-seen order.
    let mut merged: Vec<(&str, &str)> = Vec::new();
    for (key, value) in props {
        match merged.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => merged.push((key, value)),
        }
    }
    for (key, value) in merged {
        let value = value.trim();
        let mut put = |table: &'static str, toml_key: &'static str, encoded: String| {
            entries.push(Entry {
                table,
                key: toml_key,
                value: encoded,
                source: key.to_string(),
            });
        };
        match key {
            "mule.env" => {
                if !value.is_empty() {
                    conv.mule_env = Some(value.to_string());
                }
            }
            "http.port" => match value.parse::<u16>() {
                Ok(port) if port > 0 => put("http", "port", port.to_string()),
                _ => conv.reject(
                    key,
                    format!("http.port = {value:?} is not a port number (1-65535): not converted"),
                ),
            },
            "page.size" => match value.parse::<u32>() {
                Ok(size) if (1..=2000).contains(&size) => {
                    put("batch", "page_size", size.to_string())
                }
                _ => conv.reject(
                    key,
                    format!("page.size = {value:?} is not a number from 1 to 2000: not converted"),
                ),
            },
            "scheduler.frequency" | "scheduler.startDelay" => {
                let toml_key = if key == "scheduler.frequency" {
                    "frequency"
                } else {
                    "start_delay"
                };
                match value.parse::<u64>() {
                    Ok(ms) => put("scheduler", toml_key, ms.to_string()),
                    Err(_) => conv.reject(
                        key,
                        format!("{key} = {value:?} is not a number of milliseconds: not converted"),
                    ),
                }
            }
            "watermark.default.expression" => match convert_watermark(value) {
                Ok((stamp, note)) => {
                    put("watermark", "default", toml_string(&stamp));
                    conv.notes.extend(note);
                }
                Err(why) => conv.reject(
                    key,
                    format!(
                        "watermark.default.expression = {value:?} {why}: not converted; set \
                         watermark.default to the date-time the first sync should start from \
                         (e.g. \"2018-08-25T11:00:00.000Z\")"
                    ),
                ),
            },
            "trigger.policy" => match value.to_ascii_lowercase().as_str() {
                policy @ ("poll" | "push" | "hybrid") => {
                    put("trigger", "policy", toml_string(policy));
                    // The listener rejects notifications without the URL's shared secret.
                    needs_outbound_secret = policy != "poll";
                }
                _ => conv.reject(
                    key,
                    format!(
                        "trigger.policy = {value:?} is not poll, push or hybrid: not converted"
                    ),
                ),
            },
            "account.sync.policy" => match value {
                "" | "syncAccount" => put("account", "sync_policy", toml_string(value)),
                "assignDummyAccount" => conv.reject(
                    key,
                    "account.sync.policy = \"assignDummyAccount\": orgsync's equivalent is \
                     account.sync_policy = \"assign\" with orgs.a.account_id and \
                     orgs.b.account_id; set those by hand"
                        .to_string(),
                ),
                _ => conv.reject(
                    key,
                    format!(
                        "account.sync.policy = {value:?} is neither empty nor syncAccount: not \
                         converted"
                    ),
                ),
            },
            _ => match org_key(key) {
                Some((org, field)) => {
                    convert_org_key(key, org, field, value, &mut put, &mut secrets, &mut conv)
                }
                None => {
                    conv.unknown.push(key.to_string());
                    conv.not_converted.push(key.to_string());
                }
            },
        }
    }
    if needs_outbound_secret {
        secrets.insert("ORGSYNC__ORGS__A__OUTBOUND_SECRET".to_string());
        secrets.insert("ORGSYNC__ORGS__B__OUTBOUND_SECRET".to_string());
    }
    conv.secret_vars = secrets.into_iter().collect();
    (conv, entries)
}

/// `sfdc.a.password` -> `("a", "password")`.
fn org_key(key: &str) -> Option<(&'static str, &str)> {
    let rest = key.strip_prefix("sfdc.")?;
    let (org, field) = rest.split_once('.')?;
    let org = match org {
        "a" | "A" => "a",
        "b" | "B" => "b",
        _ => return None,
    };
    matches!(
        field,
        "username" | "password" | "securityToken" | "url" | "integration.user.id"
    )
    .then_some((org, field))
}

fn convert_org_key(
    key: &str,
    org: &'static str,
    field: &str,
    value: &str,
    put: &mut impl FnMut(&'static str, &'static str, String),
    secrets: &mut BTreeSet<String>,
    conv: &mut Conversion,
) {
    let table = if org == "a" { "orgs.a" } else { "orgs.b" };
    let upper = org.to_ascii_uppercase();
    match field {
        "username" if value.is_empty() => conv.notes.push(format!(
            "{key} is empty: set orgs.{org}.username to org {upper}'s integration user"
        )),
        "username" => put(table, "username", toml_string(value)),
        "password" => {
            secrets.insert(format!("ORGSYNC__ORGS__{upper}__PASSWORD"));
        }
        "securityToken" => {
            secrets.insert(format!("ORGSYNC__ORGS__{upper}__SECURITY_TOKEN"));
        }
        "integration.user.id" if value.is_empty() => {}
        "integration.user.id" => {
            if value.len() == 15 || value.len() == 18 {
                put(table, "integration_user_id", toml_string(value));
            } else {
                conv.reject(
                    key,
                    format!(
                        "{key} = {value:?} is not a 15- or 18-character user id: not converted \
                         (left empty, orgsync learns it at login)"
                    ),
                );
            }
        }
        "url" if value.is_empty() => {}
        "url" => match split_soap_url(value) {
            Some((login_url, version)) => {
                put(table, "login_url", toml_string(&login_url));
                match version {
                    Some((major, minor)) if (major, minor) >= MIN_API_VERSION => put(
                        table,
                        "api_version",
                        toml_string(&format!("{major}.{minor}")),
                    ),
                    Some((major, minor)) => conv.notes.push(format!(
                        "{key} uses API version {major}.{minor}; orgsync needs {}.{} or later \
                         (sObject Collections), so orgs.{org}.api_version keeps its default",
                        MIN_API_VERSION.0, MIN_API_VERSION.1
                    )),
                    None => {}
                }
            }
            None => conv.reject(
                key,
                format!("{key} = {value:?} is not an http(s) URL: not converted"),
            ),
        },
        _ => {}
    }
}

/// `https://login.salesforce.com/services/Soap/u/40.0` -> the login URL and `(40, 0)`.
/// A URL without the SOAP path is taken as the login URL itself.
fn split_soap_url(value: &str) -> Option<(String, Option<(u32, u32)>)> {
    let url = url::Url::parse(value).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let path = url.path();
    let (base_path, version) = match path.find("/services/Soap/") {
        Some(at) => {
            let version = path[at..]
                .rsplit('/')
                .find(|part| !part.is_empty())
                .and_then(|v| v.split_once('.'))
                .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
            (&path[..at], version)
        }
        None => (path, None),
    };
    let mut login = format!("{}://{}", url.scheme(), url.host_str()?);
    if let Some(port) = url.port() {
        let _ = write!(login, ":{port}");
    }
    login.push_str(base_path.trim_end_matches('/'));
    Some((login, version))
}

/// A watermark expression as a UTC RFC 3339 timestamp, with a note when the conversion
/// assumed something; the error says why it is not a date.
fn convert_watermark(value: &str) -> Result<(String, Option<String>), String> {
    let mut text = value.trim();
    // `#['2018-08-25T11:00:00.000Z']` or `#["..."]`: a DataWeave/MEL string literal.
    if let Some(inner) = text.strip_prefix("#[").and_then(|t| t.strip_suffix(']')) {
        let inner = inner.trim();
        let unquoted = inner
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .or_else(|| inner.strip_prefix('"').and_then(|t| t.strip_suffix('"')));
        match unquoted {
            Some(literal) => text = literal,
            None => {
                return Err("is an expression evaluated at run time, not a date".to_string());
            }
        }
    }
    if text.is_empty() {
        return Err("is empty".to_string());
    }
    if let Ok(stamp) = DateTime::parse_from_rfc3339(text) {
        return Ok((
            stamp
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            None,
        ));
    }
    // The template's format without a zone ("yyyy-MM-dd'T'HH:mm:ss.SSS"): taken as UTC.
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            let stamp = naive.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true);
            return Ok((
                stamp.clone(),
                Some(format!(
                    "watermark.default.expression {text:?} has no time zone: taken as UTC ({stamp})"
                )),
            ));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let stamp = date
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true))
            .ok_or_else(|| "is not a valid date".to_string())?;
        return Ok((stamp, None));
    }
    Err("is not a date (RFC 3339, e.g. 2018-08-25T11:00:00.000Z)".to_string())
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The output file. Written by hand rather than through `toml_edit`: the file is always new
/// (there are no comments or layout of an existing file to keep, which is what `toml_edit` is
/// for), every line carries a comment naming its source property aligned in one column, and the
/// values are already encoded by [`toml_string`]; `tests/ops/import_properties.rs` loads the
/// result back through orgsync's own loader.
fn render(entries: &[Entry], secret_vars: &[String], not_converted: &[String]) -> String {
    let mut out = String::from(
        "# Converted from the MuleSoft template's properties by `orgsync import-properties`.\n\
         # Loads over orgsync's built-in defaults (config/default.toml); every key not set here\n\
         # keeps its default.\n",
    );
    if !not_converted.is_empty() {
        out.push_str(
            "# Written with --allow-partial: these properties were not converted (the import's\n\
             # report says why); set their orgsync keys by hand:\n",
        );
        for key in not_converted {
            let _ = writeln!(out, "#   {key}");
        }
    }
    if !secret_vars.is_empty() {
        out.push_str(
            "# Secrets are not in this file. Set them in the environment (or through the\n\
             # matching *_file keys, e.g. orgs.a.password_file):\n",
        );
        for var in secret_vars {
            let _ = writeln!(out, "#   {var}");
        }
    }
    // Tables in the order of orgsync's own list of sections (that of config/default.toml).
    for &table in crate::config::SECTIONS {
        let rows: Vec<&Entry> = entries.iter().filter(|e| e.table == table).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n[{table}]");
        for entry in rows {
            let line = format!("{} = {}", entry.key, entry.value);
            let _ = writeln!(out, "{line:<40} # {}", entry.source);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_template_keys_become_toml_and_secrets_become_variables() {
        let conv = convert(&pairs(&[
            ("http.port", "8081"),
            ("page.size", "200"),
            ("scheduler.frequency", "10000"),
            ("scheduler.startDelay", "500"),
            ("watermark.default.expression", "2018-08-25T11:00:00.000Z"),
            ("trigger.policy", "poll"),
            ("account.sync.policy", "syncAccount"),
            ("sfdc.a.username", "int@a.example.com"),
            ("sfdc.a.password", "s3cret"),
            ("sfdc.a.securityToken", "tok"),
            (
                "sfdc.a.url",
                "https://login.salesforce.com/services/Soap/u/45.0",
            ),
            ("sfdc.a.integration.user.id", "005000000000001AAA"),
            ("sfdc.b.username", "int@b.example.com"),
            ("sfdc.b.password", ""),
            ("sfdc.b.securityToken", ""),
            (
                "sfdc.b.url",
                "https://test.salesforce.com/services/Soap/u/40.0",
            ),
            ("sfdc.b.integration.user.id", ""),
            ("mule.env", "prod"),
        ]));
        assert!(conv.unknown.is_empty(), "{:?}", conv.unknown);
        assert_eq!(conv.mule_env.as_deref(), Some("prod"));
        assert_eq!(
            conv.secret_vars,
            vec![
                "ORGSYNC__ORGS__A__PASSWORD",
                "ORGSYNC__ORGS__A__SECURITY_TOKEN",
                "ORGSYNC__ORGS__B__PASSWORD",
                "ORGSYNC__ORGS__B__SECURITY_TOKEN",
            ]
        );
        let toml = &conv.toml;
        for line in [
            "port = 8081",
            "page_size = 200",
            "frequency = 10000",
            "start_delay = 500",
            "default = \"2018-08-25T11:00:00.000Z\"",
            "policy = \"poll\"",
            "sync_policy = \"syncAccount\"",
            "username = \"int@a.example.com\"",
            "login_url = \"https://login.salesforce.com\"",
            "api_version = \"45.0\"",
            "integration_user_id = \"005000000000001AAA\"",
            "login_url = \"https://test.salesforce.com\"",
        ] {
            assert!(toml.contains(line), "missing {line:?} in\n{toml}");
        }
        assert!(
            !toml.contains("s3cret") && !toml.contains("tok\""),
            "{toml}"
        );
        // API 40.0 is too old for orgsync: reported, default kept.
        assert_eq!(toml.matches("api_version").count(), 1, "{toml}");
        assert!(
            conv.notes.iter().any(|n| n.contains("40.0")),
            "{:?}",
            conv.notes
        );
    }

    /// The keys the import writes come from orgsync's own list of keys (`config::known_key`),
    /// so a renamed setting cannot leave the import writing the old name.
    #[test]
    fn every_key_the_import_writes_is_a_key_orgsync_knows() {
        let (conv, entries) = convert_to_entries(&pairs(&[
            ("http.port", "8081"),
            ("page.size", "200"),
            ("scheduler.frequency", "10000"),
            ("scheduler.startDelay", "500"),
            ("watermark.default.expression", "2018-08-25T11:00:00.000Z"),
            ("trigger.policy", "hybrid"),
            ("account.sync.policy", "syncAccount"),
            ("sfdc.a.username", "int@a.example.com"),
            (
                "sfdc.a.url",
                "https://login.salesforce.com/services/Soap/u/45.0",
            ),
            ("sfdc.a.integration.user.id", "005000000000001AAA"),
            ("sfdc.b.username", "int@b.example.com"),
            (
                "sfdc.b.url",
                "https://test.salesforce.com/services/Soap/u/62.0",
            ),
            ("sfdc.b.integration.user.id", "005000000000002AAA"),
        ]));
        assert!(conv.not_converted.is_empty(), "{:?}", conv.notes);
        assert_eq!(entries.len(), 15);
        for entry in &entries {
            let key = format!("{}.{}", entry.table, entry.key);
            assert_eq!(
                crate::config::known_key(&key),
                Some(crate::config::KeyKind::Leaf),
                "{key} (from {})",
                entry.source
            );
        }
    }

    #[test]
    fn unknown_keys_are_reported_in_order() {
        let conv = convert(&pairs(&[
            ("http.port", "9090"),
            ("smtp.host", "mail"),
            ("sfdc.c.username", "x"),
            ("sfdc.a.loginUrl", "y"),
        ]));
        assert_eq!(
            conv.unknown,
            vec!["smtp.host", "sfdc.c.username", "sfdc.a.loginUrl"]
        );
    }

    #[test]
    fn later_values_win() {
        let conv = convert(&pairs(&[("page.size", "100"), ("page.size", "300")]));
        assert!(conv.toml.contains("page_size = 300"), "{}", conv.toml);
        assert!(!conv.toml.contains("page_size = 100"));
    }

    #[test]
    fn bad_values_are_notes_not_output() {
        let conv = convert(&pairs(&[
            ("http.port", "eighty"),
            ("page.size", "5000"),
            ("scheduler.frequency", "10s"),
            ("trigger.policy", "cron"),
            ("sfdc.a.url", "login.salesforce.com"),
            ("sfdc.a.integration.user.id", "123"),
        ]));
        assert_eq!(conv.notes.len(), 6, "{:?}", conv.notes);
        assert!(!conv.toml.contains(" = "), "{}", conv.toml);
        assert_eq!(
            conv.not_converted,
            [
                "http.port",
                "page.size",
                "scheduler.frequency",
                "trigger.policy",
                "sfdc.a.url",
                "sfdc.a.integration.user.id",
            ]
        );
    }

    #[test]
    fn not_converted_lists_unknown_keys_and_bad_values_in_input_order_and_the_file_names_them() {
        let conv = convert(&pairs(&[
            ("smtp.host", "mail"),
            ("page.size", "200"),
            ("trigger.policy", "cron"),
            ("account.sync.policy", "assignDummyAccount"),
        ]));
        assert_eq!(
            conv.not_converted,
            ["smtp.host", "trigger.policy", "account.sync.policy"]
        );
        assert!(conv.toml.contains("#   smtp.host\n"), "{}", conv.toml);
        assert!(
            conv.toml.contains("#   account.sync.policy\n"),
            "{}",
            conv.toml
        );
        assert!(conv.toml.contains("page_size = 200"), "{}", conv.toml);
    }

    #[test]
    fn notes_that_still_convert_are_not_a_partial_import() {
        let conv = convert(&pairs(&[
            ("watermark.default.expression", "2018-08-25T11:00:00.000"),
            (
                "sfdc.a.url",
                "https://test.salesforce.com/services/Soap/u/40.0",
            ),
            ("sfdc.a.username", ""),
            ("sfdc.a.password", "secret"),
        ]));
        assert_eq!(conv.notes.len(), 3, "{:?}", conv.notes);
        assert!(conv.not_converted.is_empty(), "{:?}", conv.not_converted);
        assert!(!conv.toml.contains("--allow-partial"), "{}", conv.toml);
    }

    #[test]
    fn hybrid_converts_and_push_modes_list_the_outbound_secrets() {
        for policy in ["hybrid", "push", "Hybrid"] {
            let conv = convert(&pairs(&[("trigger.policy", policy)]));
            assert!(conv.not_converted.is_empty(), "{policy}: {:?}", conv.notes);
            let expected = format!("policy = \"{}\"", policy.to_ascii_lowercase());
            assert!(conv.toml.contains(&expected), "{}", conv.toml);
            assert_eq!(
                conv.secret_vars,
                [
                    "ORGSYNC__ORGS__A__OUTBOUND_SECRET",
                    "ORGSYNC__ORGS__B__OUTBOUND_SECRET"
                ]
            );
        }
        let conv = convert(&pairs(&[("trigger.policy", "poll")]));
        assert!(conv.secret_vars.is_empty(), "{:?}", conv.secret_vars);
    }

    #[test]
    fn watermark_expressions() {
        let ok = |v: &str| convert_watermark(v).unwrap().0;
        assert_eq!(ok("2018-08-25T11:00:00.000Z"), "2018-08-25T11:00:00.000Z");
        assert_eq!(ok("2018-08-25T13:00:00+02:00"), "2018-08-25T11:00:00.000Z");
        assert_eq!(ok("#['2018-08-25T11:00:00Z']"), "2018-08-25T11:00:00.000Z");
        assert_eq!(ok("2018-08-25"), "2018-08-25T00:00:00.000Z");
        let (stamp, note) = convert_watermark("2018-08-25T11:00:00.000").unwrap();
        assert_eq!(stamp, "2018-08-25T11:00:00.000Z");
        assert!(note.is_some());
        let groovy = "#[groovy: new Date(System.currentTimeMillis() - 10000).format(\"yyyy-MM-dd'T'HH:mm:ss.SSS'Z'\", TimeZone.getTimeZone('UTC'))]";
        assert!(convert_watermark(groovy).unwrap_err().contains("run time"));
        assert!(convert_watermark("yesterday").is_err());
        let conv = convert(&pairs(&[("watermark.default.expression", groovy)]));
        assert_eq!(conv.notes.len(), 1);
        assert!(!conv.toml.contains("[watermark]"));
    }

    #[test]
    fn soap_urls() {
        assert_eq!(
            split_soap_url("https://acme.my.salesforce.com/services/Soap/u/62.0"),
            Some(("https://acme.my.salesforce.com".to_string(), Some((62, 0))))
        );
        assert_eq!(
            split_soap_url("http://127.0.0.1:8701/services/Soap/u/40.0/"),
            Some(("http://127.0.0.1:8701".to_string(), Some((40, 0))))
        );
        assert_eq!(
            split_soap_url("https://login.salesforce.com"),
            Some(("https://login.salesforce.com".to_string(), None))
        );
        assert_eq!(split_soap_url("ftp://x/services/Soap/u/40.0"), None);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
