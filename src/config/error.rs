//! What can go wrong loading the configuration ([`ConfigError`], [`Problem`]) and where each
//! value came from ([`Origin`], [`Origins`]): every message names the key and its source.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A TOML file.
    File(PathBuf),
    /// An `ORGSYNC__...` environment variable (its exact name).
    Env(String),
    /// A TOML text handed to [`load_str`] (tests, demo), with the name given there.
    Inline(String),
    /// Not set anywhere: the built-in default.
    Default,
    /// A required key that no layer sets.
    NotSet,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Inline(name) => write!(f, "{name}"),
            Origin::Default => write!(f, "built-in default"),
            Origin::NotSet => write!(f, "not set anywhere"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `batch.page_size`.
    pub key: String,
    pub origin: Origin,
    /// What is wrong; never contains a secret value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::NotSet => write!(f, "{} (not set): {}", self.key, self.message),
            origin => write!(f, "{} (from {origin}): {}", self.key, self.message),
        }
    }
}

/// The configuration could not be loaded. The binary exits with code 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid environment name {0:?}: use letters, digits, '-' or '_' (e.g. dev, qa, prod)")]
    BadEnvName(String),
    #[error("configuration file {} not found (environment {env:?}, config dir {})", path.display(), dir.display())]
    MissingFile {
        path: PathBuf,
        env: String,
        dir: PathBuf,
    },
    #[error("cannot read configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not valid TOML: {message}")]
    Parse { origin: Origin, message: String },
    #[error("invalid configuration:\n{}", list_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The individual problems, when the error is [`ConfigError::Invalid`].
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn list_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which source set each key last (later layers win, as in the merge itself).
#[derive(Debug, Default, Clone)]
pub struct Origins(HashMap<String, Origin>);

impl Origins {
    /// The origin of `key`, or of its nearest parent that was set as a whole.
    pub fn of(&self, key: &str) -> Origin {
        let mut key = strip_index(key);
        loop {
            if let Some(origin) = self.0.get(key) {
                return origin.clone();
            }
            match key.rfind('.') {
                Some(dot) => key = &key[..dot],
                None => return Origin::Default,
            }
        }
    }

    pub(super) fn set(&mut self, key: String, origin: Origin) {
        self.0.insert(key, origin);
    }
}

fn strip_index(key: &str) -> &str {
    key.find('[').map_or(key, |i| &key[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_fall_back_to_parent() {
        let mut origins = Origins::default();
        origins.set("sync.fields".into(), Origin::Env("X".into()));
        assert_eq!(origins.of("sync.fields[2]"), Origin::Env("X".into()));
        assert_eq!(origins.of("batch.page_size"), Origin::Default);
    }
}
