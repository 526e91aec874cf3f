//! The command line: `orgsync [--env E] [--config-dir D] <command>`.
//!
//! [`main`] is the binary's only error boundary: it parses the arguments (clap), loads and
//! validates the configuration, sets up logging, and only then builds the tokio runtime and
//! runs the command. Exit codes: 0 ok, 1 runtime failure (or a command that found problems,
//! like a failing `check`), 2 bad configuration or usage. Errors are printed once, to stderr,
//! with their cause chain; no error type of orgsync ever carries a secret.
//!
//! Adding a command is one [`Command`] variant (with its arguments) and one `async fn` called
//! from [`dispatch`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::{status, telemetry};

/// Exit code for a runtime failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code for bad configuration or usage.
const EXIT_USAGE: u8 = 2;

/// Keeps one Salesforce object in sync, both ways, between two orgs.
#[derive(Debug, Parser)]
#[command(name = "orgsync", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration environment: loads <config-dir>/<ENV>.toml over default.toml (the
    /// template's mule.env).
    #[arg(long, env = "ORGSYNC_ENV", default_value = "dev", global = true)]
    pub env: String,

    /// Folder holding default.toml and the environment files.
    #[arg(
        long,
        env = "ORGSYNC_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    pub config_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show watermarks, the last cycle of each direction, links, failures and the inbox,
    /// read from the state store (no Salesforce call).
    Status(StatusArgs),
    /// Preflight: log in to both orgs, check every configured field exists and can be read,
    /// created and updated, run the filter, report remaining daily API calls. Exit 0 only when
    /// all is well.
    Check,

    // ---- commands that need no configuration (import-properties, demo) ----
    /// Convert the MuleSoft template's mule.<env>.properties / common.properties into
    /// config/<env>.toml. Secrets are left out and listed as environment variables to set;
    /// unknown properties are reported on stderr.
    ImportProperties(ImportPropertiesArgs),
}

/// `orgsync import-properties`.
#[derive(Debug, Args)]
pub struct ImportPropertiesArgs {
    /// Properties files, later ones winning (e.g. common.properties mule.prod.properties).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output file; default <config-dir>/<env>.toml, where the environment is --env, else the
    /// files' mule.env. `-` prints the TOML to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite the output file when it exists.
    #[arg(long)]
    pub force: bool,
}

/// `orgsync status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (the same document `GET /status` serves) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// The command ran but found problems it already reported (exit 1).
    Problems,
}

impl From<bool> for Outcome {
    fn from(all_well: bool) -> Self {
        if all_well {
            Outcome::Ok
        } else {
            Outcome::Problems
        }
    }
}

/// Runs one command with validated settings.
pub async fn dispatch(command: Command, settings: &Settings) -> anyhow::Result<Outcome> {
    match command {
        Command::Status(args) => status_command(settings, &args).await,
        Command::Check => check_command(settings).await,
        Command::ImportProperties(_) => Err(anyhow::anyhow!(
            "import-properties runs before the configuration is loaded, not through dispatch"
        )),
    }
}

async fn status_command(settings: &Settings, args: &StatusArgs) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout();
    status::run(settings, args.json, &mut out).await?;
    out.flush()?;
    Ok(Outcome::Ok)
}

async fn check_command(settings: &Settings) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout();
    let all_well = crate::check::run(settings, &mut out).await?;
    out.flush()?;
    Ok(Outcome::from(all_well))
}

/// The binary's entry point: parse, configure, run, map to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let code = if err.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    // Commands that need no configuration run before it is loaded.
    let command = match run_without_settings(cli.command, &cli.env, &cli.config_dir) {
        Ok(code) => return code,
        Err(command) => command,
    };
    let settings = match Settings::load(&cli.env, &cli.config_dir) {
        Ok(settings) => settings,
        Err(err) => {
            print_error(&anyhow::Error::new(err));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(err) = telemetry::init(&settings.log) {
        print_error(&anyhow::Error::new(err));
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            print_error(&anyhow::Error::new(err).context("cannot start the async runtime"));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(dispatch(command, &settings)) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(EXIT_FAILURE),
        Err(err) => {
            print_error(&err);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs the commands that need no configuration (`import-properties`, `demo`) to their exit
/// code; any other command is handed back.
fn run_without_settings(
    command: Command,
    env: &str,
    config_dir: &std::path::Path,
) -> Result<ExitCode, Command> {
    match command {
        Command::ImportProperties(args) => Ok(import_properties_command(args, env, config_dir)),
        other => Err(other),
    }
}

fn import_properties_command(
    args: ImportPropertiesArgs,
    env: &str,
    config_dir: &std::path::Path,
) -> ExitCode {
    // --env defaults to "dev"; only an explicit choice (flag or ORGSYNC_ENV) beats mule.env.
    let explicit_env = std::env::args().any(|a| a == "--env" || a.starts_with("--env="))
        || std::env::var_os("ORGSYNC_ENV").is_some();
    let request = crate::import_properties::ImportRequest {
        files: args.files,
        env: explicit_env.then(|| env.to_string()),
        out: args.out,
        config_dir: config_dir.to_path_buf(),
        force: args.force,
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    match crate::import_properties::run(&request, &mut stdout, &mut stderr) {
        Ok(_) => {
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(err) => {
            let code = match err {
                crate::import_properties::ImportError::Write { .. } => EXIT_FAILURE,
                _ => EXIT_USAGE,
            };
            print_error(&anyhow::Error::new(err));
            ExitCode::from(code)
        }
    }
}

/// `top\n  caused by: ...` for every cause. A cause whose text the previous line already
/// shows (some libraries repeat their source in their own message) is left out.
pub fn format_chain(err: &anyhow::Error) -> String {
    let mut text = format!("{err}");
    let mut previous = text.clone();
    for cause in err.chain().skip(1) {
        let line = cause.to_string();
        if !previous.contains(&line) {
            text.push_str(&format!("\n  caused by: {line}"));
        }
        previous = line;
    }
    text
}

fn print_error(err: &anyhow::Error) {
    let _ = writeln!(std::io::stderr(), "orgsync: error: {}", format_chain(err));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_parse_after_the_command() {
        let cli = Cli::try_parse_from(["orgsync", "status", "--json", "--env", "qa"]).unwrap();
        assert_eq!(cli.env, "qa");
        assert!(matches!(
            cli.command,
            Command::Status(StatusArgs { json: true })
        ));
    }

    #[test]
    fn repeated_causes_are_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("error returned from database: (code: 26) file is not a database")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("(code: 26) file is not a database")]
        struct Inner;
        let err = anyhow::Error::new(Outer(Inner)).context("cannot open the state store");
        assert_eq!(
            format_chain(&err),
            "cannot open the state store\n  caused by: error returned from database: (code: 26) \
             file is not a database"
        );
    }

    #[test]
    fn cause_chain_is_printed() {
        let err = anyhow::anyhow!("disk on fire").context("cannot open the state store");
        assert_eq!(
            format_chain(&err),
            "cannot open the state store\n  caused by: disk on fire"
        );
    }
}
