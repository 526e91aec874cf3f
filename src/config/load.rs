//! Loading: reads the layers (files, TOML texts, `ORGSYNC__*` variables), records the origin of
//! every key and reports unknown ones source by source (the `config` crate forgets where a value
//! came from once it merges), merges them, and hands the raw result to validation.

use std::collections::HashMap;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};

use super::error::{ConfigError, Origin, Origins, Problem};
use super::keys::{ENV_PREFIX, KeyKind, data_tables, known_key, unknown_key_message};
use super::raw::RawSettings;
use super::secrets::secrets_written_in;
use super::settings::Settings;
use super::validate::validate;

/// Walks one file's table: records the origin of every key, reports unknown ones.
fn walk_table(
    table: &config::Map<String, config::Value>,
    prefix: &str,
    origin: &Origin,
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match known_key(&key) {
            Some(KeyKind::Section) => match &value.kind {
                config::ValueKind::Table(inner) => {
                    walk_table(inner, &key, origin, origins, problems)
                }
                _ => problems.push(Problem {
                    key: key.clone(),
                    origin: origin.clone(),
                    message: "is a section and must be a table".into(),
                }),
            },
            Some(KeyKind::Leaf) => origins.set(key, origin.clone()),
            Some(KeyKind::DataTable) => {
                if let config::ValueKind::Table(inner) = &value.kind {
                    record_data_table(inner, &key, origin, origins);
                }
                origins.set(key, origin.clone());
            }
            None => problems.push(Problem {
                message: unknown_key_message(&key),
                key,
                origin: origin.clone(),
            }),
        }
    }
}

fn record_data_table(
    table: &config::Map<String, config::Value>,
    prefix: &str,
    origin: &Origin,
    origins: &mut Origins,
) {
    for (name, value) in table {
        let key = format!("{prefix}.{name}");
        if let config::ValueKind::Table(inner) = &value.kind {
            record_data_table(inner, &key, origin, origins);
        }
        origins.set(key, origin.clone());
    }
}

/// Checks the `ORGSYNC__*` variables; returns the ones to apply, keyed by variable name.
fn check_env(
    vars: &HashMap<String, String>,
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) -> config::Map<String, String> {
    let mut names: Vec<&String> = vars.keys().filter(|k| k.starts_with(ENV_PREFIX)).collect();
    names.sort();
    let mut accepted = config::Map::new();
    for name in names {
        let key = env_var_key(name);
        let origin = Origin::Env(name.clone());
        let under_data_table = data_tables().any(|t| key == t || key.starts_with(&format!("{t}.")));
        if under_data_table {
            problems.push(Problem {
                key,
                origin,
                message: "cannot be set from the environment (its keys are case-sensitive \
                          data); set it in a configuration file"
                    .into(),
            });
            continue;
        }
        match known_key(&key) {
            Some(KeyKind::Leaf) => {
                origins.set(key, origin);
                if let Some(value) = vars.get(name) {
                    accepted.insert(name.clone(), value.clone());
                }
            }
            Some(_) => problems.push(Problem {
                key,
                origin,
                message: "is a section, not a key: set one of its keys instead".into(),
            }),
            None => problems.push(Problem {
                message: unknown_key_message(&key),
                key,
                origin,
            }),
        }
    }
    accepted
}

/// `ORGSYNC__BATCH__PAGE_SIZE` -> `batch.page_size`.
fn env_var_key(name: &str) -> String {
    name[ENV_PREFIX.len()..]
        .to_lowercase()
        .split("__")
        .collect::<Vec<_>>()
        .join(".")
}

/// `config/default.toml`, built into the binary: the base layer of every load, so that a
/// config folder needs only `<env>.toml`.
pub(super) const BUILT_IN_DEFAULTS: &str = include_str!("../../config/default.toml");

/// Loads the built-in defaults, `<config_dir>/default.toml` when there is one,
/// `<config_dir>/<env>.toml` and the `ORGSYNC__*` entries of `vars` (the process environment in
/// production, a map in tests), then validates.
///
/// `<env>.toml` is required: a misspelled `--env` must not run with the defaults alone (which
/// log in to login.salesforce.com as nobody). `default.toml` is optional: deployments that keep
/// a copy of it (the Dockerfile, the systemd set-up) load it between the built-in defaults and
/// `<env>.toml`, as before.
pub fn load(
    env: &str,
    config_dir: &Path,
    vars: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    load_files(env, config_dir, vars, Secrets::Required)
}

/// Whether missing org secrets are problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Secrets {
    Required,
    /// For commands that never call an org.
    Optional,
}

pub(super) fn load_files(
    env: &str,
    config_dir: &Path,
    vars: &HashMap<String, String>,
    secrets: Secrets,
) -> Result<Settings, ConfigError> {
    let valid_env = !env.is_empty()
        && env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_env {
        return Err(ConfigError::BadEnvName(env.to_string()));
    }
    let mut layers = Vec::new();
    for (path, required) in [
        (config_dir.join("default.toml"), false),
        (config_dir.join(format!("{env}.toml")), true),
    ] {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::MissingFile {
                    path,
                    env: env.to_string(),
                    dir: config_dir.to_path_buf(),
                });
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        layers.push((Origin::File(path), text));
    }
    load_layers(env, &layers, vars, secrets)
}

/// Loads from TOML texts instead of files: each layer is `(name, toml)`, later layers win,
/// over the built-in defaults (`config/default.toml`), then the `ORGSYNC__*` entries of `vars`.
/// For tests and the demo.
pub fn load_str(
    env: &str,
    layers: &[(&str, &str)],
    vars: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    let layers: Vec<(Origin, String)> = layers
        .iter()
        .map(|(name, text)| (Origin::Inline((*name).to_string()), (*text).to_string()))
        .collect();
    load_layers(env, &layers, vars, Secrets::Required)
}

pub(super) fn load_layers(
    env: &str,
    layers: &[(Origin, String)],
    vars: &HashMap<String, String>,
    secrets: Secrets,
) -> Result<Settings, ConfigError> {
    let mut origins = Origins::default();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut builder = Config::builder();
    let built_in = (Origin::Default, BUILT_IN_DEFAULTS.to_string());
    for (origin, text) in std::iter::once(&built_in).chain(layers) {
        let file = File::from_str(text, FileFormat::Toml);
        let table = config::Source::collect(&file).map_err(|err| ConfigError::Parse {
            origin: origin.clone(),
            message: parse_message(&err),
        })?;
        walk_table(&table, "", origin, &mut origins, &mut problems);
        if let Origin::File(path) = origin {
            warnings.extend(secrets_written_in(&table, path));
        }
        builder = builder.add_source(file);
    }
    let env_vars = check_env(vars, &mut origins, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let environment = Environment::with_prefix("ORGSYNC")
        .prefix_separator("__")
        .separator("__")
        .source(Some(env_vars));
    let merged = builder
        .add_source(environment)
        .build()
        .map_err(|err| ConfigError::Invalid(vec![problem_from_config(err, &origins)]))?;
    let raw: RawSettings = merged
        .try_deserialize()
        .map_err(|err| ConfigError::Invalid(vec![problem_from_config(err, &origins)]))?;
    let mut settings = validate(env, raw, &origins, secrets)?;
    settings.warnings = warnings;
    Ok(settings)
}

fn parse_message(err: &config::ConfigError) -> String {
    match err {
        config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    }
}

/// Turns a merge or deserialization error of the `config` crate into a [`Problem`] with the
/// key's real origin.
fn problem_from_config(err: config::ConfigError, origins: &Origins) -> Problem {
    match err {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => {
            let key = key.unwrap_or_default();
            Problem {
                origin: origins.of(&key),
                message: format!("expected {expected}, found {unexpected}"),
                key,
            }
        }
        config::ConfigError::At { error, key, .. } => {
            let key = key.unwrap_or_default();
            Problem {
                origin: origins.of(&key),
                message: error.to_string(),
                key,
            }
        }
        other => Problem {
            key: String::new(),
            origin: Origin::Default,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in file is the base layer of every load, and the serde defaults fill what a
    /// layer leaves out: they must say the same.
    #[test]
    fn the_built_in_file_and_the_serde_defaults_agree() {
        let merged = Config::builder()
            .add_source(File::from_str(BUILT_IN_DEFAULTS, FileFormat::Toml))
            .build()
            .unwrap();
        let raw: RawSettings = merged.try_deserialize().unwrap();
        assert_eq!(raw, RawSettings::default());
    }

    #[test]
    fn env_var_names_map_to_keys() {
        assert_eq!(env_var_key("ORGSYNC__BATCH__PAGE_SIZE"), "batch.page_size");
        assert_eq!(env_var_key("ORGSYNC__ORGS__A__PASSWORD"), "orgs.a.password");
    }
}
