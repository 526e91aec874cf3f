//! `orgsync import-properties`: turns the MuleSoft template's `mule.<env>.properties` and
//! `common.properties` into an orgsync `config/<env>.toml`.
//!
//! Three layers, pure to I/O: [`parse_properties`] reads the Java properties format (`key=value`,
//! `key: value`, `key value`, `#`/`!` comments, `\` line continuations, `\t`/`\uXXXX` escapes);
//! [`convert`] maps the template's keys (DESIGN §1) to orgsync's TOML and says what it could not
//! convert; [`run`] reads the files, writes the result and prints the report. Secrets
//! (`sfdc.x.password`, `sfdc.x.securityToken`) are never written to the file: they are listed as
//! the environment variables to set instead. Unknown keys and values that cannot be converted
//! are reported, never dropped silently.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// The oldest API version whose REST features orgsync uses (sObject Collections arrived in 42.0).
const MIN_API_VERSION: (u32, u32) = (42, 0);

/// A properties file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "no environment name: pass --env NAME (or set mule.env in the properties) to name config/NAME.toml"
    )]
    NoEnv,
    #[error("invalid environment name {0:?}: use letters, digits, '-' or '_' (e.g. dev, qa, prod)")]
    BadEnv(String),
    #[error("{} already exists: pass --force to overwrite it, or --out another file", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A syntax error in a properties text (line numbers start at 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses a Java properties text into `(key, value)` pairs in file order. A key repeated in the
/// text keeps its last value (as `java.util.Properties` does), at its first position.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, SyntaxError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut index = 0;
    while index < lines.len() {
        let start_line = index + 1;
        let first = lines[index].strip_suffix('\r').unwrap_or(lines[index]);
        index += 1;
        let trimmed = first.trim_start_matches([' ', '\t', '\u{c}']);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines: a line ending in an odd number of backslashes continues.
        let mut logical = String::from(trimmed);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.get(index) {
                Some(next) => {
                    let next = next.strip_suffix('\r').unwrap_or(next);
                    logical.push_str(next.trim_start_matches([' ', '\t', '\u{c}']));
                    index += 1;
                }
                None => break,
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key).map_err(|message| SyntaxError {
            line: start_line,
            message,
        })?;
        let value = unescape(raw_value).map_err(|message| SyntaxError {
            line: start_line,
            message,
        })?;
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    Ok(out)
}

fn ends_with_odd_backslashes(text: &str) -> bool {
    text.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits a logical line (leading whitespace removed) at the first unescaped `=`, `:` or
/// whitespace; whitespace around one `=` or `:` belongs to neither side.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                key_end = i;
                break;
            }
            _ => {}
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches([' ', '\t', '\u{c}']);
    if let Some(stripped) = rest.strip_prefix(['=', ':']) {
        rest = stripped.trim_start_matches([' ', '\t', '\u{c}']);
    }
    (key, rest)
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("malformed \\u escape \"\\u{hex}\""))?;
                // A surrogate pair (\uD83D\uDE00) is two escapes.
                if (0xD800..0xDC00).contains(&code) {
                    let rest: String = chars.by_ref().take(6).collect();
                    let low = rest
                        .strip_prefix("\\u")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|low| (0xDC00..0xE000).contains(low))
                        .ok_or_else(|| format!("unpaired surrogate \"\\u{hex}\""))?;
                    let combined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    out.push(char::from_u32(combined).ok_or("invalid surrogate pair")?);
                } else {
                    out.push(
                        char::from_u32(code)
                            .ok_or_else(|| format!("\"\\u{hex}\" is not a character"))?,
                    );
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// What [`convert`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conversion {
    /// The TOML text of the environment layer (loads over `config/default.toml`).
    pub toml: String,
    /// Environment variables that must hold the secrets left out of the file.
    pub secret_vars: Vec<String>,
    /// Keys orgsync does not know, in input order.
    pub unknown: Vec<String>,
    /// Known keys whose value could not be converted, or was converted with a change worth
    /// knowing, one sentence each.
    pub notes: Vec<String>,
    /// `mule.env`, when set.
    pub mule_env: Option<String>,
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
    let mut conv = Conversion::default();
    let mut entries: Vec<Entry> = Vec::new();
    let mut secrets: BTreeSet<String> = BTreeSet::new();
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
                _ => conv.notes.push(format!(
                    "http.port = {value:?} is not a port number (1-65535): not converted"
                )),
            },
            "page.size" => match value.parse::<u32>() {
                Ok(size) if (1..=2000).contains(&size) => {
                    put("batch", "page_size", size.to_string())
                }
                _ => conv.notes.push(format!(
                    "page.size = {value:?} is not a number from 1 to 2000: not converted"
                )),
            },
            "scheduler.frequency" | "scheduler.startDelay" => {
                let toml_key = if key == "scheduler.frequency" {
                    "frequency"
                } else {
                    "start_delay"
                };
                match value.parse::<u64>() {
                    Ok(ms) => put("scheduler", toml_key, ms.to_string()),
                    Err(_) => conv.notes.push(format!(
                        "{key} = {value:?} is not a number of milliseconds: not converted"
                    )),
                }
            }
            "watermark.default.expression" => match convert_watermark(value) {
                Ok((stamp, note)) => {
                    put("watermark", "default", toml_string(&stamp));
                    conv.notes.extend(note);
                }
                Err(why) => conv.notes.push(format!(
                    "watermark.default.expression = {value:?} {why}: not converted; set \
                     watermark.default to the date-time the first sync should start from \
                     (e.g. \"2018-08-25T11:00:00.000Z\")"
                )),
            },
            "trigger.policy" => match value.to_ascii_lowercase().as_str() {
                policy @ ("poll" | "push") => put("trigger", "policy", toml_string(policy)),
                _ => conv.notes.push(format!(
                    "trigger.policy = {value:?} is neither poll nor push: not converted"
                )),
            },
            "account.sync.policy" => match value {
                "" | "syncAccount" => put("account", "sync_policy", toml_string(value)),
                "assignDummyAccount" => conv.notes.push(
                    "account.sync.policy = \"assignDummyAccount\": orgsync's equivalent is \
                     account.sync_policy = \"assign\" with orgs.a.account_id and \
                     orgs.b.account_id; set those by hand"
                        .to_string(),
                ),
                _ => conv.notes.push(format!(
                    "account.sync.policy = {value:?} is neither empty nor syncAccount: not converted"
                )),
            },
            _ => match org_key(key) {
                Some((org, field)) => {
                    convert_org_key(key, org, field, value, &mut put, &mut secrets, &mut conv)
                }
                None => conv.unknown.push(key.to_string()),
            },
        }
    }
    conv.secret_vars = secrets.into_iter().collect();
    conv.toml = render(&entries, &conv.secret_vars);
    conv
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
                conv.notes.push(format!(
                    "{key} = {value:?} is not a 15- or 18-character user id: not converted \
                     (left empty, orgsync learns it at login)"
                ));
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
            None => conv.notes.push(format!(
                "{key} = {value:?} is not an http(s) URL: not converted"
            )),
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

fn render(entries: &[Entry], secret_vars: &[String]) -> String {
    let mut out = String::from(
        "# Converted from the MuleSoft template's properties by `orgsync import-properties`.\n\
         # Loads over config/default.toml; every key not set here keeps its default there.\n",
    );
    if !secret_vars.is_empty() {
        out.push_str(
            "# Secrets are not in this file. Set them in the environment (or through the\n\
             # matching *_file keys, e.g. orgs.a.password_file):\n",
        );
        for var in secret_vars {
            let _ = writeln!(out, "#   {var}");
        }
    }
    for table in [
        "http",
        "scheduler",
        "watermark",
        "batch",
        "trigger",
        "account",
        "orgs.a",
        "orgs.b",
    ] {
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

/// Reads a properties file: UTF-8, or ISO-8859-1 (the format's historical encoding) when the
/// bytes are not UTF-8.
pub fn read_properties_file(path: &Path) -> Result<Vec<(String, String)>, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => err.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    parse_properties(&text).map_err(|e| ImportError::Syntax {
        path: path.to_path_buf(),
        line: e.line,
        message: e.message,
    })
}

/// What to do: the command's arguments.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// Properties files, later ones winning (e.g. common.properties then mule.prod.properties).
    pub files: Vec<PathBuf>,
    /// The environment name; else `mule.env`.
    pub env: Option<String>,
    /// Output file; else `<config_dir>/<env>.toml`. `-` writes to stdout.
    pub out: Option<PathBuf>,
    pub config_dir: PathBuf,
    /// Overwrite an existing output file.
    pub force: bool,
}

/// Converts the files and writes the result; the report goes to `report` (stderr in the
/// binary), the TOML to `stdout` when the output is `-`. Returns the conversion.
pub fn run(
    request: &ImportRequest,
    stdout: &mut dyn Write,
    report: &mut dyn Write,
) -> Result<Conversion, ImportError> {
    let mut props = Vec::new();
    for file in &request.files {
        props.extend(read_properties_file(file)?);
    }
    let conv = convert(&props);
    let to_stdout = request.out.as_deref() == Some(Path::new("-"));
    let out_path = match &request.out {
        Some(path) => path.clone(),
        None => {
            let env = request
                .env
                .clone()
                .or_else(|| conv.mule_env.clone())
                .ok_or(ImportError::NoEnv)?;
            let valid = !env.is_empty()
                && env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(ImportError::BadEnv(env));
            }
            request.config_dir.join(format!("{env}.toml"))
        }
    };
    let write_err = |source| ImportError::Write {
        path: out_path.clone(),
        source,
    };
    if to_stdout {
        stdout.write_all(conv.toml.as_bytes()).map_err(write_err)?;
    } else {
        if out_path.exists() && !request.force {
            return Err(ImportError::Exists(out_path));
        }
        std::fs::write(&out_path, &conv.toml).map_err(write_err)?;
        tracing::info!(path = %out_path.display(), "configuration written");
        let _ = writeln!(report, "wrote {}", out_path.display());
    }
    for key in &conv.unknown {
        let _ = writeln!(
            report,
            "unknown property {key}: not converted (orgsync has no such setting; see the README's \
             table of keys)"
        );
    }
    for note in &conv.notes {
        let _ = writeln!(report, "note: {note}");
    }
    if !conv.secret_vars.is_empty() {
        let _ = writeln!(
            report,
            "secrets left out of the file; set these environment variables (or the matching \
             *_file keys):"
        );
        for var in &conv.secret_vars {
            let _ = writeln!(report, "  {var}");
        }
    }
    Ok(conv)
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
    fn properties_separators_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n\n  a=1\nb : 2\nc 3\nd=\ne\n f = x = y \n";
        assert_eq!(
            parse_properties(text).unwrap(),
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", ""),
                ("e", ""),
                ("f", "x = y "),
            ])
        );
    }

    #[test]
    fn properties_continuations_and_escapes() {
        let text = "long = one, \\\n      two\r\nkey\\ with\\=odd\\:chars = v\ntab=a\\tb\\u00e9\\\\\nemoji=\\uD83D\\uDE00\n";
        assert_eq!(
            parse_properties(text).unwrap(),
            pairs(&[
                ("long", "one, two"),
                ("key with=odd:chars", "v"),
                ("tab", "a\tb\u{e9}\\"),
                ("emoji", "\u{1F600}"),
            ])
        );
    }

    #[test]
    fn an_escaped_trailing_backslash_does_not_continue() {
        assert_eq!(
            parse_properties("a=x\\\\\nb=y").unwrap(),
            pairs(&[("a", "x\\"), ("b", "y")])
        );
    }

    #[test]
    fn a_continuation_at_the_end_of_the_file_ends_the_value() {
        assert_eq!(parse_properties("a=x\\").unwrap(), pairs(&[("a", "x")]));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        assert_eq!(
            parse_properties("a=1\nb=2\na=3").unwrap(),
            pairs(&[("a", "3"), ("b", "2")])
        );
    }

    #[test]
    fn a_malformed_unicode_escape_names_its_line() {
        let err = parse_properties("ok=1\n\nbad=\\u12g4\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("\\u12g4"), "{}", err.message);
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
