//! `orgsync links ...`: the links an operator can see and repair. `list`, `show` and `unlink`
//! work from the state store alone (no Salesforce call, no secrets needed), beside a running
//! daemon: they never take the state lock, which is for syncing processes only, and each write
//! is one short transaction. `link` is the one command that logs in, to check that both
//! records exist before linking them. The store side is `store::link_admin`.

use std::io::Write;

use anyhow::Context as _;
use clap::Subcommand;

use crate::config::Settings;
use crate::salesforce::{Client, ClientOptions, ids};
use crate::store::{Link, LinkAdminError, LinkState, Org, Store};

/// `orgsync links ...`.
#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// List the links: each pair of records (A id, B id), its object and state (live: synced;
    /// unlinked: an operator unlinked it, never matched again; tombstone: one side deleted).
    List {
        /// Only links of this object (e.g. Opportunity, Account).
        #[arg(long, value_name = "OBJECT")]
        object: Option<String>,
        /// Only links in this state.
        #[arg(long, value_parser = ["live", "unlinked", "tombstone"])]
        state: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a link in full: both ids, object, state, the last synced SystemModstamps and the
    /// snapshot of the values last synced. By the link's id, or by either record's id (15 or
    /// 18 characters; every link of that record is shown).
    Show {
        /// The link's id (as `links list` shows it), or a record id in A or B.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Link A record A_ID and B record B_ID by hand (both must exist and have no live link).
    /// The next cycle merges the pair field by field: with no snapshot yet, every field that
    /// differs is a conflict, resolved by sync.conflict. Logs in to both orgs.
    Link {
        /// The record's id in org A (15 or 18 characters).
        a_id: String,
        /// The record's id in org B.
        b_id: String,
    },
    /// Stop syncing a pair: the link becomes `unlinked` and the engine never matches the two
    /// records with each other again (each is synced on its own at its next edit). With
    /// --forget the link is removed instead and the next cycle matches both records again.
    Unlink {
        /// The link's id, or a record id in A or B (its live link).
        id: String,
        /// Remove the link (in any state), so that the next cycle matches the records again.
        #[arg(long)]
        forget: bool,
    },
}

/// Runs one `links` command, printing to `out`.
pub async fn run(
    settings: &Settings,
    cmd: LinksCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = Store::open_state(&settings.state).await.with_context(|| {
        format!(
            "opening the state store {}",
            crate::domain::redact_url(&settings.state.url)
        )
    })?;
    match cmd {
        LinksCommand::List {
            object,
            state,
            json,
        } => {
            let state = state.as_deref().and_then(LinkState::parse);
            let links = store.links_where(object.as_deref(), state).await?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &links)?;
                writeln!(out)?;
            } else if links.is_empty() {
                writeln!(out, "no links")?;
            } else {
                write_table(out, &links)?;
            }
        }
        LinksCommand::Show { id, json } => {
            let links = store.find_links(&id).await?;
            if links.is_empty() {
                anyhow::bail!("no link has id or record {id} (see `orgsync links list`)");
            }
            if json {
                let doc = if links.len() == 1 {
                    serde_json::to_value(&links[0])?
                } else {
                    serde_json::to_value(&links)?
                };
                serde_json::to_writer_pretty(&mut *out, &doc)?;
                writeln!(out)?;
            } else {
                for link in &links {
                    write_link(out, link)?;
                }
            }
        }
        LinksCommand::Link { a_id, b_id } => {
            let object = object_of(settings, &a_id, &b_id)?;
            let options = ClientOptions::for_settings(settings);
            let a = Client::with_options(&settings.a, options.clone())
                .context("setting up the client of org a")?;
            let b = Client::with_options(&settings.b, options)
                .context("setting up the client of org b")?;
            let a_id = existing_id(&a, Org::A, &object, &a_id).await?;
            let b_id = existing_id(&b, Org::B, &object, &b_id).await?;
            let link = store
                .link_by_hand(&object, &a_id, &b_id)
                .await
                .map_err(refusal)?;
            tracing::info!(link = link.id, object, a_id, b_id, "linked by hand");
            writeln!(
                out,
                "link {}: {object} A {a_id} <-> B {b_id}; the next cycle (or `orgsync sync \
                 --once`) merges the pair by sync.conflict",
                link.id
            )?;
        }
        LinksCommand::Unlink { id, forget } => {
            let link = store.unlink(&id, forget).await.map_err(refusal)?;
            tracing::info!(
                link = link.id,
                object = link.object,
                a_id = link.a_id,
                b_id = link.b_id,
                forget,
                "unlinked by hand"
            );
            if forget {
                writeln!(
                    out,
                    "link {} forgotten: {} A {} and B {} are no longer linked; the next cycle \
                     (or `orgsync sync --once`) matches them again",
                    link.id, link.object, link.a_id, link.b_id
                )?;
            } else {
                writeln!(
                    out,
                    "link {} unlinked: {} A {} and B {} are no longer synced with each other \
                     and never matched again (`orgsync links unlink {} --forget` undoes that)",
                    link.id, link.object, link.a_id, link.b_id, link.id
                )?;
            }
        }
    }
    store.close().await;
    Ok(())
}

fn refusal(e: LinkAdminError) -> anyhow::Error {
    match e {
        LinkAdminError::Refused(message) => anyhow::anyhow!(message),
        LinkAdminError::Store(e) => anyhow::Error::new(e).context("updating the links"),
    }
}

/// The object both ids are records of: Account for two Account ids, else `sync.object`. Both
/// ids are checked (15 or 18 characters, checksum, key prefix) before any is sent to an org.
fn object_of(settings: &Settings, a_id: &str, b_id: &str) -> anyhow::Result<String> {
    let account = ids::ACCOUNT_PREFIX;
    let object = if a_id.starts_with(account) && b_id.starts_with(account) {
        "Account".to_string()
    } else {
        settings.sync.object.clone()
    };
    for (org, id) in [("A", a_id), ("B", b_id)] {
        ids::check_record_id(&object, id)
            .map_err(|e| anyhow::anyhow!("{id} is not a {object} id of org {org}: {e}"))?;
    }
    Ok(object)
}

/// The 18-character id of record `id` of `object` in `org`, which must exist (and not be
/// deleted).
async fn existing_id(client: &Client, org: Org, object: &str, id: &str) -> anyhow::Result<String> {
    let name = org.as_str().to_ascii_uppercase();
    // `id` passed ids::check_record_id: letters and digits only.
    let soql = format!("SELECT Id FROM {object} WHERE Id = '{id}'");
    let rows = client
        .query_collect(&soql)
        .await
        .with_context(|| format!("looking up {object} {id} in org {name}"))?;
    rows.first()
        .and_then(|r| r.get("Id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no {object} {id} in org {name} (deleted, or not visible to the integration user)"
            )
        })
}

fn format_time(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".into())
}

/// `links list`: one line per link.
fn write_table(out: &mut impl Write, links: &[Link]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:<12} {:<9} {:<18}  {:<18}  updated",
        "id", "object", "state", "A id", "B id"
    )?;
    for l in links {
        writeln!(
            out,
            "{:>6}  {:<12} {:<9} {:<18}  {:<18}  {}",
            l.id,
            l.object,
            l.state.as_str(),
            l.a_id,
            l.b_id,
            format_time(Some(l.updated_at))
        )?;
    }
    Ok(())
}

/// `links show`: one link in full.
fn write_link(out: &mut impl Write, l: &Link) -> anyhow::Result<()> {
    let meaning = match l.state {
        LinkState::Live => "synced",
        LinkState::Unlinked => "unlinked by an operator: not synced, never matched again",
        LinkState::Tombstone => "a side was deleted: not synced, never matched again",
    };
    writeln!(out, "link {}", l.id)?;
    writeln!(out, "  object        {}", l.object)?;
    writeln!(out, "  state         {} ({meaning})", l.state.as_str())?;
    writeln!(out, "  A id          {}", l.a_id)?;
    writeln!(out, "  B id          {}", l.b_id)?;
    writeln!(out, "  A modstamp    {}", format_time(l.a_modstamp))?;
    writeln!(out, "  B modstamp    {}", format_time(l.b_modstamp))?;
    if l.state == LinkState::Tombstone {
        writeln!(
            out,
            "  deleted       {} in org {}",
            format_time(l.deleted_at),
            l.deleted_by
                .map(|o| o.as_str().to_ascii_uppercase())
                .unwrap_or_else(|| "-".into())
        )?;
    }
    writeln!(out, "  linked        {}", format_time(Some(l.created_at)))?;
    writeln!(out, "  last synced   {}", format_time(Some(l.updated_at)))?;
    if l.snapshot.is_empty() {
        writeln!(
            out,
            "  snapshot      {{}} (none yet: the next sync merges the pair)"
        )?;
    } else {
        writeln!(out, "  snapshot")?;
        for line in serde_json::to_string_pretty(&l.snapshot)?.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}
