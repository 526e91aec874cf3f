//! `orgsync state migrate --to URL`: moves the configured SQLite state into another store
//! (PostgreSQL, for replicas), verified by a count per table. The source must not be in use:
//! the command takes its state lock, so a running daemon (which would go on writing to the
//! old store) makes it stop with that daemon's pid. The target is opened (created and
//! migrated) as the daemon would open it, for `--pair` (default `state.pair_name`); a target
//! that already holds a state is refused unless `--force`, which replaces it. The copy is one
//! transaction on the target (see `store::copy`): counts that differ roll it back and exit 1.
//! Afterwards, point `state.url` at the target. No URL is ever shown with its password.

use std::io::Write;

use anyhow::Context as _;
use clap::Subcommand;

use crate::config::{Settings, check_state_url, valid_pair_name};
use crate::domain::redact_url;
use crate::store::{Backend, CopyError, StateLock, Store};

/// `orgsync state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy the configured SQLite state (state.url) into another store, typically
    /// PostgreSQL: every table, ids included, in one transaction, then a count per table on
    /// both sides (exit 1 if any differs; nothing is kept then). Stop the daemon first.
    Migrate {
        /// The target store: postgres://user@host/database, or a sqlite:// URL. Its password:
        /// in the URL, or PGPASSWORD / ~/.pgpass; ORGSYNC_STATE_MIGRATE_TO keeps the URL off
        /// the command line (and out of `ps`).
        #[arg(
            long,
            value_name = "URL",
            env = "ORGSYNC_STATE_MIGRATE_TO",
            hide_env_values = true
        )]
        to: String,
        /// The target's sync pair (its PostgreSQL schema is orgsync_<pair>); default
        /// state.pair_name.
        #[arg(long, value_name = "NAME")]
        pair: Option<String>,
        /// Replace a state the target already holds (its rows are deleted in the copy's
        /// transaction); without it a non-empty target is refused.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `orgsync state ...`; `Ok(false)` when the copy's counts differed.
pub async fn run(
    settings: &Settings,
    cmd: StateCommand,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let StateCommand::Migrate { to, pair, force } = cmd;
    let pair = pair.unwrap_or_else(|| settings.state.pair_name.clone());
    let shown_to = redact_url(&to);
    if let Err(problem) = check_state_url(&to) {
        anyhow::bail!("--to: {problem}");
    }
    if !valid_pair_name(&pair) {
        anyhow::bail!("--pair {pair:?}: expected 1 to 40 of a-z, 0-9 and _");
    }
    let source_url = &settings.state.url;
    if Backend::of_url(source_url)? != Backend::Sqlite {
        anyhow::bail!(
            "state migrate copies a SQLite state, and state.url is {}",
            settings.state.shown_url()
        );
    }
    if to.trim() == source_url.trim() {
        anyhow::bail!("--to names the configured state itself ({shown_to})");
    }
    match Store::database_file(source_url)? {
        Some(path) if !path.exists() => anyhow::bail!(
            "there is no state to migrate at {} (state.url {}; a relative path is resolved \
             from the working directory)",
            path.display(),
            settings.state.shown_url()
        ),
        _ => {}
    }
    let _lock = StateLock::acquire(source_url).await?;
    let source = Store::open_state(&settings.state)
        .await
        .with_context(|| format!("opening the state store {}", settings.state.shown_url()))?;
    let target = Store::open_pair(&to, &pair)
        .await
        .with_context(|| format!("opening the target store {shown_to}"))?;
    let result = source.copy_into(&target, force).await;
    source.close().await;
    target.close().await;
    match result {
        Ok(counts) => {
            for c in &counts {
                writeln!(
                    out,
                    "{:<12} {:>8} rows copied ({} in the source, {} in the target)",
                    c.table, c.target, c.source, c.target
                )?;
            }
            writeln!(
                out,
                "state copied to {shown_to} (pair {pair}); every table's count matches. Set \
                 state.url to the target (and state.pair_name = \"{pair}\") before starting \
                 orgsync again."
            )?;
            tracing::info!(to = %shown_to, pair, tables = counts.len(), "state migrated");
            Ok(true)
        }
        Err(CopyError::Mismatch(counts)) => {
            for c in &counts {
                writeln!(
                    out,
                    "{:<12} MISMATCH: {} in the source, {} in the target",
                    c.table, c.source, c.target
                )?;
            }
            writeln!(out, "the copy was rolled back: the target is unchanged")?;
            Ok(false)
        }
        Err(e) => Err(e).context("state migrate"),
    }
}
