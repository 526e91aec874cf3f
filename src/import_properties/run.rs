//! The command's shell: reads the properties files, converts them, writes the TOML and prints
//! the report.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::convert::{Conversion, convert};
use super::properties::parse_properties;

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
