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

use std::ffi::OsString;

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::daemon::{self, Daemon};
use crate::links_cmd::LinksCommand;
use crate::state_cmd::StateCommand;
use crate::store::{Failure, FailureState, Store};
use crate::{status, telemetry};

/// Exit code for a runtime failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code for bad configuration or usage.
const EXIT_USAGE: u8 = 2;

/// Keeps one Salesforce object in sync, both ways, between two orgs.
#[derive(Debug, Parser)]
#[command(name = "orgsync", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration environment: loads <config-dir>/<ENV>.toml over the built-in defaults (the
    /// template's mule.env).
    #[arg(long, env = "ORGSYNC_ENV", default_value = "dev", global = true)]
    pub env: String,

    /// Folder holding the environment files (<ENV>.toml; a default.toml there is optional).
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
    /// The daemon: a sync cycle (A -> B, then B -> A) every scheduler.frequency until SIGTERM
    /// or SIGINT, which finish and commit the page in flight, then exit 0.
    Run,
    /// One sync cycle, A -> B then B -> A. Exit 0 when every record read got a durable outcome
    /// (written, skipped, or kept in the failure queue).
    Sync(SyncArgs),
    /// The failed-record queue: list, show, retry, discard.
    #[command(subcommand)]
    Failures(FailuresCommand),
    /// The links between records of A and B: list, show, link by hand, unlink.
    #[command(subcommand)]
    Links(LinksCommand),
    /// Compare both orgs in full through the links and report every difference by class
    /// (missing_in_b/a, value_drift explained/unexplained, orphan_link, unlinked_match,
    /// ambiguous). Exit 0 when the orgs agree, 1 when differences were found, 2 for bad
    /// configuration. Writes nothing to either org.
    Reconcile(ReconcileArgs),
    /// The state store itself: `state migrate --to postgres://...` copies the SQLite state
    /// into PostgreSQL, verified by a count per table.
    #[command(subcommand)]
    State(StateCommand),

    // ---- commands that need no configuration (import-properties, demo) ----
    /// Convert the MuleSoft template's mule.<env>.properties / common.properties into
    /// config/<env>.toml. Secrets are left out and listed as environment variables to set;
    /// unknown properties are reported on stderr.
    ImportProperties(ImportPropertiesArgs),
    /// Two simulated orgs in this process, seeded and synced live by the real engine, with a
    /// state store in a temporary folder: the zero-setup first run. Ctrl-C stops it.
    Demo(DemoArgs),
}

/// `orgsync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Opportunities to seed in all: 40% only in A, 30% only in B, 30% in both.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub records: u32,
    /// Simulated round trip added to every API call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Time between sync cycles ("2s", "500ms", or milliseconds).
    #[arg(long, default_value = "2s", value_parser = crate::config::parse_duration)]
    pub interval: std::time::Duration,
    /// Unused: demo reads no configuration. Declared here, hidden, so that the global
    /// `--env` is neither listed by `demo --help` nor refused after `demo`.
    #[arg(long, hide = true)]
    pub env: Option<String>,
    /// Unused, hidden, as `env`.
    #[arg(long, hide = true)]
    pub config_dir: Option<PathBuf>,
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
    /// Write the file even when some properties could not be converted (each is named on
    /// stderr and in the file); without it such an import writes nothing and exits 1.
    #[arg(long)]
    pub allow_partial: bool,
}

/// `orgsync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Accepted for compatibility: `sync` always runs one cycle and exits (`orgsync run` is
    /// the daemon).
    #[arg(long)]
    pub once: bool,
}

/// `orgsync failures ...`.
#[derive(Debug, Subcommand)]
pub enum FailuresCommand {
    /// List the failed records: pending (transient, retried on a timer), waiting (needs an
    /// edit of the source record) and dead (needs an operator, or out of attempts).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only failures in this state.
        #[arg(long, value_parser = ["pending", "waiting", "dead"])]
        state: Option<String>,
        /// Only failures with this error code (e.g. FIELD_CUSTOM_VALIDATION_EXCEPTION).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Show one failed record in full: both ids, error code and message, class, attempts,
    /// next attempt, and the values that were sent to the target.
    Show {
        /// The failure's id, as `failures list` shows it.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a failed record (or all of them, or all with one error code) due now: the next
    /// cycle retries it, fetched fresh.
    Retry {
        /// The failure's id, as `failures list` shows it.
        #[arg(required_unless_present_any = ["all", "code"], conflicts_with_all = ["all", "code"])]
        id: Option<i64>,
        /// Every failed record, pending, waiting or dead.
        #[arg(long, conflicts_with = "code")]
        all: bool,
        /// Every failed record with this error code (e.g. DELETE_HELD: the deletes the
        /// mass-delete breaker held are applied by the next cycle).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Remove a failed record from the queue: orgsync gives up on that version of it (a later
    /// edit of the record is synced again).
    Discard {
        /// The failure's id, as `failures list` shows it.
        id: i64,
    },
}

/// `orgsync reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Print the report as JSON (the shape README "Reconcile" documents) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Samples kept per class (ids, field, both values, both timestamps).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub sample: usize,
    /// Repair every difference found (but `ambiguous`) through the sync engine; exit 0 when
    /// all were repaired, 1 when some remain.
    #[arg(long)]
    pub repair: bool,
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
        Command::Run => run_command(settings).await,
        Command::Sync(_) => sync_once_command(settings).await,
        Command::Failures(cmd) => failures_command(settings, cmd).await,
        Command::Reconcile(args) => {
            let mut out = std::io::stdout();
            let options = crate::reconcile::Options {
                json: args.json,
                sample: args.sample,
                repair: args.repair,
            };
            let agree = crate::reconcile::run(settings, options, &mut out).await?;
            out.flush()?;
            Ok(Outcome::from(agree))
        }
        Command::Links(cmd) => {
            let mut out = std::io::stdout();
            crate::links_cmd::run(settings, cmd, &mut out).await?;
            out.flush()?;
            Ok(Outcome::Ok)
        }
        Command::State(cmd) => {
            let mut out = std::io::stdout();
            let complete = crate::state_cmd::run(settings, cmd, &mut out).await?;
            out.flush()?;
            Ok(Outcome::from(complete))
        }
        Command::ImportProperties(_) | Command::Demo(_) => Err(anyhow::anyhow!(
            "import-properties and demo run before the configuration is loaded, not through dispatch"
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

async fn run_command(settings: &Settings) -> anyhow::Result<Outcome> {
    let cancel = CancellationToken::new();
    daemon::cancel_on_signals(cancel.clone())?;
    crate::server::serve(settings, cancel).await?;
    Ok(Outcome::Ok)
}

async fn sync_once_command(settings: &Settings) -> anyhow::Result<Outcome> {
    let daemon = Daemon::new(settings).await?;
    // On PostgreSQL, one cycle only as the sync lease's holder (never beside a leading daemon).
    if let Some(role) = daemon.first_role().await
        && !role.is_leader()
    {
        let holder = match &role {
            crate::ha::Role::Standby { leader: Some(l) } => {
                format!(" ({} pid {}, epoch {})", l.host, l.pid, l.epoch)
            }
            _ => String::new(),
        };
        daemon.shutdown().await;
        anyhow::bail!(
            "another replica holds the sync lease{holder}: orgsync sync runs only when no \
             daemon leads this pair (see `orgsync status`)"
        );
    }
    daemon.recover().await?;
    let cancel = CancellationToken::new();
    daemon::cancel_on_signals(cancel.clone())?;
    let summary = daemon.run_once(&cancel).await;
    daemon.shutdown().await;
    let mut out = std::io::stdout();
    for d in &summary.directions {
        match &d.result {
            Ok(r) => writeln!(
                out,
                "{}: read {}, created {}, updated {}, linked {}, skipped {}, failed {}, conflicts {}, deleted {}, held {}, api calls {} ({:?})",
                d.direction,
                r.read,
                r.created,
                r.updated,
                r.linked,
                r.skipped,
                r.failed,
                r.conflicts,
                r.deleted,
                r.held,
                r.api_calls,
                r.outcome
            )?,
            Err(e) => writeln!(out, "{}: did not complete: {e}", d.direction)?,
        }
    }
    out.flush()?;
    Ok(Outcome::from(summary.complete()))
}

async fn failures_command(settings: &Settings, cmd: FailuresCommand) -> anyhow::Result<Outcome> {
    let store = Store::open_state(&settings.state).await?;
    let mut out = std::io::stdout();
    match cmd {
        FailuresCommand::List { json, state, code } => {
            let state = state.as_deref().and_then(FailureState::parse);
            let failures = store.failures_where(state, code.as_deref()).await?;
            if json {
                serde_json::to_writer_pretty(&mut out, &failures)?;
                writeln!(out)?;
            } else if failures.is_empty() {
                writeln!(out, "no failed records")?;
            } else {
                write_failure_table(&mut out, &failures)?;
            }
        }
        FailuresCommand::Show { id, json } => {
            let Some(failure) = store.failure(id).await? else {
                anyhow::bail!("no failed record with id {id} (see `orgsync failures list`)");
            };
            if json {
                serde_json::to_writer_pretty(&mut out, &failure)?;
                writeln!(out)?;
            } else {
                write_failure(&mut out, &failure)?;
            }
        }
        FailuresCommand::Retry { all: true, .. } => {
            let n = store.retry_all_failures().await?;
            writeln!(
                out,
                "{n} failed record(s) due now; the next cycle (or `orgsync sync --once`) retries them"
            )?;
        }
        FailuresCommand::Retry { id: Some(id), .. } => {
            if !store.retry_failure(id).await? {
                anyhow::bail!("no failed record with id {id} (see `orgsync failures list`)");
            }
            writeln!(
                out,
                "failure {id} due now; the next cycle (or `orgsync sync --once`) retries it"
            )?;
        }
        FailuresCommand::Retry {
            code: Some(code), ..
        } => {
            let n = store.retry_failures_with_code(&code).await?;
            writeln!(
                out,
                "{n} failed record(s) with code {code} due now; the next cycle (or `orgsync sync --once`) retries them"
            )?;
        }
        FailuresCommand::Retry {
            id: None,
            all: false,
            code: None,
        } => {
            anyhow::bail!("name a failure id, --all or --code CODE");
        }
        FailuresCommand::Discard { id } => {
            if !store.discard_failure(id).await? {
                anyhow::bail!("no failed record with id {id} (see `orgsync failures list`)");
            }
            writeln!(out, "failure {id} discarded")?;
        }
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

fn format_time(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `failures list`: one line per failure.
fn write_failure_table(out: &mut impl std::io::Write, failures: &[Failure]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:<7} {:<14} {:<6} {:<18} {:>8}  {:<19}  error",
        "id", "state", "class", "dir", "source", "attempts", "next attempt"
    )?;
    for f in failures {
        writeln!(
            out,
            "{:>6}  {:<7} {:<14} {:<6} {:<18} {:>8}  {:<19}  {}: {}",
            f.id,
            f.state.as_str(),
            f.class.as_str(),
            f.direction.as_str(),
            f.source_id,
            f.attempts,
            format_time(f.next_attempt_at),
            f.error_code,
            f.message
        )?;
    }
    Ok(())
}

/// `failures show`: one failure in full.
fn write_failure(out: &mut impl std::io::Write, f: &Failure) -> anyhow::Result<()> {
    let what_next = match f.state {
        FailureState::Pending => "retried at the next attempt",
        FailureState::Waiting => {
            "retried when the source record is edited, or by `orgsync failures retry`"
        }
        FailureState::Dead => "waits for `orgsync failures retry` or `orgsync failures discard`",
    };
    let source = f.direction.source().as_str().to_ascii_uppercase();
    let target = f.direction.target().as_str().to_ascii_uppercase();
    writeln!(out, "failure {}", f.id)?;
    writeln!(out, "  state         {} ({what_next})", f.state.as_str())?;
    writeln!(out, "  class         {}", f.class.as_str())?;
    writeln!(
        out,
        "  direction     {} ({})",
        f.direction.as_str(),
        f.object
    )?;
    writeln!(out, "  source id     {} (org {source})", f.source_id)?;
    writeln!(
        out,
        "  target id     {} (org {target})",
        f.target_id.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "  source stamp  {}",
        f.source_modstamp
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| "-".into())
    )?;
    writeln!(out, "  error code    {}", f.error_code)?;
    writeln!(out, "  message       {}", f.message)?;
    writeln!(out, "  attempts      {}", f.attempts)?;
    writeln!(out, "  next attempt  {}", format_time(f.next_attempt_at))?;
    writeln!(out, "  first failed  {}", format_time(Some(f.created_at)))?;
    writeln!(out, "  last failed   {}", format_time(Some(f.updated_at)))?;
    match &f.sent {
        None => writeln!(out, "  values sent   - (no write was tried)")?,
        Some(values) => {
            writeln!(out, "  values sent")?;
            let text = serde_json::to_string_pretty(values)?;
            for line in text.lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    Ok(())
}

/// The command line as parsed: [`Cli`], built (every subcommand knows its full name).
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Parses the arguments (the first is the program). A usage error shows the command's own
/// usage line: clap's would list the options given, so that `--env <ENV>` looked required.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut cmd = command();
    let parsed = cmd
        .try_get_matches_from_mut(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd)));
    parsed.map_err(|mut err| {
        if err.get(ContextKind::Usage).is_some() {
            err.insert(ContextKind::Usage, ContextValue::StyledStr(usage_of(&args)));
        }
        err
    })
}

/// `Usage: orgsync <subcommand...> [OPTIONS] ...` of the deepest subcommand named in `args`,
/// as its `--help` shows it.
fn usage_of(args: &[OsString]) -> StyledStr {
    let mut path: Vec<String> = Vec::new();
    if let Ok(matches) = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
    {
        let mut current = &matches;
        while let Some((name, sub)) = current.subcommand() {
            path.push(name.to_string());
            current = sub;
        }
    }
    let cmd = command();
    let mut current = &cmd;
    for name in &path {
        match current.find_subcommand(name) {
            Some(sub) => current = sub,
            None => break,
        }
    }
    current.clone().render_usage()
}

/// The binary's entry point: parse, configure, run, map to an exit code.
pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os()) {
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
    // `status`, `failures`, `links` (but `links link`) and `state` only read (and repair, or
    // copy) the state database: they never call an org, so they run without the org secrets.
    let store_only = match &command {
        Command::Status(_) | Command::Failures(_) | Command::State(_) => true,
        Command::Links(cmd) => !matches!(cmd, LinksCommand::Link { .. }),
        _ => false,
    };
    let load = if store_only {
        Settings::load_without_secrets
    } else {
        Settings::load
    };
    let settings = match load(&cli.env, &cli.config_dir) {
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
    for warning in &settings.warnings {
        tracing::warn!(env = %settings.env, "{warning}");
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
            // A configuration only reconcile finds unusable is bad configuration too.
            if err.is::<crate::reconcile::ConfigError>() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
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
        Command::Demo(args) => Ok(demo_command(&args)),
        other => Err(other),
    }
}

/// `orgsync demo`: its own logging (warnings only, as text, unless RUST_LOG says otherwise)
/// and runtime; progress lines go to stdout.
fn demo_command(args: &DemoArgs) -> ExitCode {
    let log = crate::config::LogSettings {
        format: crate::config::LogFormat::Text,
        level: "warn".to_string(),
    };
    if let Err(err) = telemetry::init(&log) {
        print_error(&anyhow::Error::new(err));
        return ExitCode::from(EXIT_USAGE);
    }
    let options = crate::demo::DemoOptions {
        records: usize::try_from(args.records).unwrap_or(crate::demo::MAX_RECORDS),
        latency_ms: args.latency_ms,
        interval: args.interval,
        progress: std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
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
    let result = runtime.block_on(async {
        let cancel = tokio_util::sync::CancellationToken::new();
        crate::daemon::cancel_on_signals(cancel.clone())?;
        let mut out = std::io::stdout();
        crate::demo::run(&options, &mut out, &cancel).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            print_error(&err);
            ExitCode::from(EXIT_FAILURE)
        }
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
        allow_partial: args.allow_partial,
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
                crate::import_properties::ImportError::Write { .. }
                | crate::import_properties::ImportError::Partial(_) => EXIT_FAILURE,
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
