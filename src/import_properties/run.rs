//! The command's shell: reads the properties files, converts them, writes the TOML and prints
//! the report.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::convert::{Conversion, convert};
use super::properties::parse_properties;

/// The import did not write its output: a properties file could not be read or parsed, the
/// request was wrong, some properties could not be converted, or the output could not be
/// written.
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
    /// Some properties could not be converted and `--allow-partial` was not given: nothing
    /// was written. A "problems found" outcome (the binary exits 1), not a usage error.
    #[error(
        "{} could not be converted ({}): nothing written; fix {} in the properties and run \
         again, or pass --allow-partial to write the file without {}",
        count(.0.len()), .0.join(", "), them(.0.len()), them(.0.len())
    )]
    Partial(Vec<String>),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// "1 property", "3 properties".
fn count(n: usize) -> String {
    if n == 1 {
        "1 property".to_string()
    } else {
        format!("{n} properties")
    }
}

fn them(n: usize) -> &'static str {
    if n == 1 { "it" } else { "them" }
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
    /// Write the output even when some properties could not be converted (they are listed
    /// in the report and in the file's header); else nothing is written.
    pub allow_partial: bool,
}

/// Converts the files and writes the result; the report goes to `report` (stderr in the
/// binary), the TOML to `stdout` when the output is `-`. The output's folder is created when
/// missing (`config/` in a new folder). Returns the conversion; when some properties could not
/// be converted, [`ImportError::Partial`] after the report, unless `allow_partial`.
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
    if !to_stdout && out_path.exists() && !request.force {
        return Err(ImportError::Exists(out_path));
    }
    let partial = !conv.not_converted.is_empty();
    if !partial || request.allow_partial {
        write_output(&conv.toml, &out_path, to_stdout, stdout)?;
        if !to_stdout {
            let _ = writeln!(report, "wrote {}", out_path.display());
        }
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
    if partial {
        if !request.allow_partial {
            return Err(ImportError::Partial(conv.not_converted));
        }
        let _ = writeln!(
            report,
            "warning: written without {} that could not be converted ({}): set {} by hand",
            count(conv.not_converted.len()),
            conv.not_converted.join(", "),
            them(conv.not_converted.len())
        );
    }
    Ok(conv)
}

/// Writes the TOML to stdout, or to `path`, creating its folder when missing.
fn write_output(
    toml: &str,
    path: &Path,
    to_stdout: bool,
    stdout: &mut dyn Write,
) -> Result<(), ImportError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Write { path, source }
    };
    if to_stdout {
        return stdout.write_all(toml.as_bytes()).map_err(write_err(path));
    }
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(write_err(folder))?;
    }
    std::fs::write(path, toml).map_err(write_err(path))?;
    tracing::info!(path = %path.display(), "configuration written");
    Ok(())
}
