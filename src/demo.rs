//! `orgsync demo`: the zero-setup first run. Two simulated orgs (sfsim) start in this process,
//! get seeded with opportunities and accounts (some only in A, some only in B, some in both
//! with different values), and the real daemon ([`Daemon::run_once`], the code path of
//! `orgsync run`) keeps them in sync with a SQLite store in a temporary folder. After the
//! first cycle the `human@` users of both orgs edit a few records; every cycle prints one line
//! per direction (read, created, updated, linked, conflicts, skipped, failed, API calls), and once both orgs hold
//! the same opportunities the demo says so, with counts, then keeps syncing until Ctrl-C.
//!
//! The pure parts (what to seed, what to edit, whether the orgs agree, how a cycle reads)
//! are plain functions with unit tests; [`run`] is the I/O around them.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Settings};
use crate::daemon::{CycleSummary, Daemon};
use crate::salesforce::{Client, ClientOptions};
use crate::store::Direction;

/// The sync fields of the demo (config's default `sync.fields`).
const FIELDS: [&str; 5] = ["Name", "Description", "CloseDate", "Amount", "StageName"];
/// The largest `--records` accepted (sfsim seeds at most 10,000 records per call and org).
pub const MAX_RECORDS: usize = 10_000;
const STAGES: [&str; 4] = [
    "Prospecting",
    "Qualification",
    "Proposal/Price Quote",
    "Negotiation/Review",
];

/// The demo's knobs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Opportunities in all (split between only-A, only-B and both).
    pub records: usize,
    /// Simulated round trip added to every API call.
    pub latency_ms: u64,
    /// Time between cycles.
    pub interval: Duration,
    /// Redraw a progress line while a cycle runs (for a terminal; off when piped).
    pub progress: bool,
}

/// What to seed in one org: accounts by name, and opportunities referring to an account name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgSeed {
    pub accounts: Vec<String>,
    /// `(opportunity fields, account name)`.
    pub opportunities: Vec<(Map<String, Value>, String)>,
}

/// Splits `records` opportunities: 40% only in A, 30% only in B, 30% in both (same Name,
/// different Amount and StageName; B's copy is written later, so it is the newer one and wins
/// under last-writer-wins). One account per ten opportunities; accounts of shared
/// opportunities exist in both orgs, the others only on their side (syncAccount creates them).
pub fn seed_plan(records: usize) -> (OrgSeed, OrgSeed) {
    let only_a = records * 4 / 10;
    let both = records * 3 / 10;
    let only_b = records - only_a - both;
    let mut a = OrgSeed::default();
    let mut b = OrgSeed::default();
    let account = |group: &str, i: usize| format!("{group} Account {:03}", i / 10);
    for i in 0..only_a {
        let name = account("Alpha", i);
        if !a.accounts.contains(&name) {
            a.accounts.push(name.clone());
        }
        a.opportunities
            .push((opportunity(&format!("Alpha deal {i:05}"), i, 0), name));
    }
    for i in 0..only_b {
        let name = account("Bravo", i);
        if !b.accounts.contains(&name) {
            b.accounts.push(name.clone());
        }
        b.opportunities
            .push((opportunity(&format!("Bravo deal {i:05}"), i, 1), name));
    }
    for i in 0..both {
        let name = account("Shared", i);
        if !a.accounts.contains(&name) {
            a.accounts.push(name.clone());
            b.accounts.push(name.clone());
        }
        let deal = format!("Shared deal {i:05}");
        a.opportunities
            .push((opportunity(&deal, i, 0), name.clone()));
        b.opportunities.push((opportunity(&deal, i, 2), name));
    }
    (a, b)
}

fn opportunity(name: &str, i: usize, variant: usize) -> Map<String, Value> {
    let amount = 5_000 + (i % 97) * 250 + variant * 1_000;
    let mut fields = Map::new();
    fields.insert("Name".into(), json!(name));
    fields.insert(
        "StageName".into(),
        json!(STAGES[(i + variant) % STAGES.len()]),
    );
    fields.insert(
        "CloseDate".into(),
        json!(format!("2027-{:02}-{:02}", i % 12 + 1, i % 28 + 1)),
    );
    fields.insert("Amount".into(), json!(amount));
    fields.insert(
        "Description".into(),
        json!(format!("Seeded by orgsync demo (variant {variant})")),
    );
    fields
}

/// One edit: the opportunity's Name and the fields to set.
pub type Edit = (String, Map<String, Value>);

/// The edits the `human@` users make after the first cycle: `(name, fields)` per org. A
/// raises a few amounts of its own deals, B moves a few of its deals to "Closed Won" and one
/// shared deal gets a new description in A.
pub fn edit_plan(a: &OrgSeed, b: &OrgSeed) -> (Vec<Edit>, Vec<Edit>) {
    let name_of = |fields: &Map<String, Value>| {
        fields
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut a_edits: Vec<Edit> = a
        .opportunities
        .iter()
        .take(3)
        .map(|(fields, _)| {
            let mut edit = Map::new();
            edit.insert("Amount".into(), json!(99_000));
            (name_of(fields), edit)
        })
        .collect();
    if let Some((fields, _)) = a.opportunities.last() {
        let mut edit = Map::new();
        edit.insert(
            "Description".into(),
            json!("Edited in org A by human@a.sim during the demo"),
        );
        a_edits.push((name_of(fields), edit));
    }
    let b_edits = b
        .opportunities
        .iter()
        .take(3)
        .map(|(fields, _)| {
            let mut edit = Map::new();
            edit.insert("StageName".into(), json!("Closed Won"));
            (name_of(fields), edit)
        })
        .collect();
    (a_edits, b_edits)
}

/// Whether the orgs hold the same opportunities (by Name, every sync field and the parent
/// account's Name) and what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    pub a_count: usize,
    pub b_count: usize,
    /// Names whose record is missing on one side or differs.
    pub differing: Vec<String>,
}

impl Agreement {
    pub fn agree(&self) -> bool {
        self.differing.is_empty() && self.a_count == self.b_count
    }
}

/// Compares two orgs' opportunity rows (REST shape, `Account` nested).
pub fn compare(a_rows: &[Value], b_rows: &[Value]) -> Agreement {
    let a = comparable(a_rows);
    let b = comparable(b_rows);
    let mut differing: Vec<String> = a
        .iter()
        .filter(|(name, values)| b.get(*name) != Some(values))
        .map(|(name, _)| name.clone())
        .collect();
    differing.extend(b.keys().filter(|name| !a.contains_key(*name)).cloned());
    differing.sort();
    Agreement {
        a_count: a_rows.len(),
        b_count: b_rows.len(),
        differing,
    }
}

fn comparable(rows: &[Value]) -> BTreeMap<String, Vec<String>> {
    rows.iter()
        .map(|row| {
            let text = |v: Option<&Value>| match v {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => {
                    n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string())
                }
                Some(other) => other.to_string(),
            };
            let mut values: Vec<String> = FIELDS.iter().map(|f| text(row.get(*f))).collect();
            values.push(text(row.get("Account").and_then(|acc| acc.get("Name"))));
            (text(row.get("Name")), values)
        })
        .collect()
}

/// One line per direction of cycle number `n`, or one line when the cycle was quiet (both
/// directions finished without creating, updating or failing anything).
pub fn cycle_lines(n: u64, summary: &CycleSummary) -> Vec<String> {
    let reports: Vec<_> = summary
        .directions
        .iter()
        .filter_map(|d| d.result.as_ref().ok())
        .collect();
    let quiet = summary.complete()
        && reports
            .iter()
            .all(|r| r.created == 0 && r.updated == 0 && r.linked == 0 && r.failed == 0);
    if quiet {
        let calls: u64 = reports.iter().map(|r| r.api_calls).sum();
        return vec![format!(
            "cycle {n:>3}  quiet: nothing changed in either org ({calls} API calls)"
        )];
    }
    summary
        .directions
        .iter()
        .map(|d| {
            let arrow = match d.direction {
                Direction::AToB => "A -> B",
                Direction::BToA => "B -> A",
            };
            match &d.result {
                Ok(r) => format!(
                    "cycle {n:>3}  {arrow}  read {:>5}  created {:>5}  updated {:>5}  linked {:>5}  conflicts {:>4}  skipped {:>5}  failed {:>3}  API calls {:>3}",
                    r.read,
                    r.created,
                    r.updated,
                    r.linked,
                    r.conflicts,
                    r.skipped,
                    r.failed,
                    r.api_calls
                ),
                Err(message) => format!("cycle {n:>3}  {arrow}  did not finish: {message}"),
            }
        })
        .collect()
}

/// The demo's configuration: the built-in defaults plus the two simulated orgs, a SQLite store
/// in `state_dir`, no filter, syncAccount; secrets given as the environment would.
pub fn demo_settings(
    a_url: &str,
    b_url: &str,
    state_dir: &std::path::Path,
    interval: Duration,
) -> anyhow::Result<Settings> {
    let db = state_dir.join("orgsync-demo.db");
    let db = db
        .to_str()
        .context("the temporary folder's path is not UTF-8")?;
    let toml = format!(
        "[scheduler]\nfrequency = {interval}\n\
         [watermark]\ndefault = \"2000-01-01T00:00:00.000Z\"\n\
         [state]\nurl = {state}\n\
         [sync]\nfilter = false\n\
         [account]\nsync_policy = \"syncAccount\"\n\
         [orgs.a]\nlogin_url = {a}\nusername = \"integration@a.sim\"\n\
         [orgs.b]\nlogin_url = {b}\nusername = \"integration@b.sim\"\n",
        interval = interval.as_millis(),
        state = toml_quote(&format!("sqlite://{db}")),
        a = toml_quote(a_url),
        b = toml_quote(b_url),
    );
    let vars: HashMap<String, String> = [
        ("ORGSYNC__ORGS__A__PASSWORD", "password"),
        ("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token"),
        ("ORGSYNC__ORGS__B__PASSWORD", "password"),
        ("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    config::load_str("demo", &[("demo", &toml)], &vars).context("building the demo configuration")
}

fn toml_quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// Runs the demo until `cancel` fires. Progress goes to `out`.
pub async fn run(
    options: &DemoOptions,
    out: &mut (dyn Write + Send),
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    if options.records == 0 || options.records > MAX_RECORDS {
        anyhow::bail!("--records must be between 1 and {MAX_RECORDS}");
    }
    let sim_config = |name: &str| sfsim::OrgConfig {
        latency_ms: options.latency_ms,
        ..sfsim::OrgConfig::named(name)
    };
    let sim_a = sfsim::start_org(sim_config("A"), "127.0.0.1:0")
        .await
        .context("starting simulated org A")?;
    let sim_b = sfsim::start_org(sim_config("B"), "127.0.0.1:0")
        .await
        .context("starting simulated org B")?;
    let state_dir = tempfile::Builder::new()
        .prefix("orgsync-demo-")
        .tempdir()
        .context("creating the demo's temporary folder")?;
    writeln!(out, "orgsync demo: two simulated orgs, synced both ways")?;
    writeln!(
        out,
        "  org A  {}  (users integration@a.sim, human@a.sim)",
        sim_a.base_url
    )?;
    writeln!(
        out,
        "  org B  {}  (users integration@b.sim, human@b.sim)",
        sim_b.base_url
    )?;
    writeln!(
        out,
        "  state  {}",
        state_dir.path().join("orgsync-demo.db").display()
    )?;

    let (seed_a, seed_b) = seed_plan(options.records);
    seed(&sim_a, &seed_a).context("seeding org A")?;
    seed(&sim_b, &seed_b).context("seeding org B")?;
    writeln!(
        out,
        "seeded A with {} opportunities and {} accounts, B with {} opportunities and {} accounts \
         ({} deals in both, with different amounts and stages)",
        seed_a.opportunities.len(),
        seed_a.accounts.len(),
        seed_b.opportunities.len(),
        seed_b.accounts.len(),
        options.records * 3 / 10,
    )?;
    writeln!(
        out,
        "syncing every {} (Ctrl-C to stop)",
        humantime::format_duration(options.interval)
    )?;
    out.flush()?;

    let settings = demo_settings(
        &sim_a.base_url,
        &sim_b.base_url,
        state_dir.path(),
        options.interval,
    )?;
    let daemon = Daemon::new(&settings).await?;
    daemon.recover().await?;
    let human = |org: &crate::config::OrgSettings| {
        let mut org = org.clone();
        org.username = org.username.replace("integration@", "human@");
        Client::with_options(&org, ClientOptions::for_settings(&settings))
    };
    let (human_a, human_b) = (human(&settings.a)?, human(&settings.b)?);
    let (edits_a, edits_b) = edit_plan(&seed_a, &seed_b);

    let mut edited = false;
    let mut agreed = false;
    let mut total_calls = 0u64;
    let mut cycles = 0u64;
    let mut ticks = tokio::time::interval(options.interval.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let summary = if options.progress {
            run_with_progress(&daemon, cancel, [&sim_a, &sim_b], out).await?
        } else {
            daemon.run_once(cancel).await
        };
        cycles += 1;
        for line in cycle_lines(cycles, &summary) {
            writeln!(out, "{line}")?;
        }
        total_calls += summary
            .directions
            .iter()
            .filter_map(|d| d.result.as_ref().ok())
            .map(|r| r.api_calls)
            .sum::<u64>();
        if cancel.is_cancelled() {
            break;
        }
        if !edited && summary.complete() {
            edited = true;
            apply_edits(&human_a, &sim_a, &edits_a, out).await?;
            apply_edits(&human_b, &sim_b, &edits_b, out).await?;
        } else if edited {
            let agreement = compare(&opportunities(&sim_a)?, &opportunities(&sim_b)?);
            if agreement.agree() && !agreed {
                agreed = true;
                writeln!(
                    out,
                    "both orgs agree: {} opportunities in A, {} in B, every field equal \
                     (accounts: {} in A, {} in B; {} cycles, {} API calls by orgsync)",
                    agreement.a_count,
                    agreement.b_count,
                    sim_a.db().count("Account"),
                    sim_b.db().count("Account"),
                    cycles,
                    total_calls,
                )?;
                writeln!(
                    out,
                    "still syncing (edit through the orgs' REST API as human@a.sim / human@b.sim, password \"password\", token \"token\"); Ctrl-C to stop"
                )?;
            } else if !agreement.agree() {
                agreed = false;
                writeln!(
                    out,
                    "  not yet in agreement: {} opportunities differ (A {}, B {})",
                    agreement.differing.len(),
                    agreement.a_count,
                    agreement.b_count
                )?;
            }
        }
        out.flush()?;
    }
    writeln!(out, "stopped: the page in flight was committed")?;
    out.flush()?;
    daemon.store().close().await;
    Ok(())
}

/// Runs one cycle, redrawing one progress line (records written and API calls so far, as the
/// simulated orgs count them) until it ends, then erases it.
async fn run_with_progress(
    daemon: &Daemon,
    cancel: &CancellationToken,
    sims: [&sfsim::SimOrg; 2],
    out: &mut (dyn Write + Send),
) -> anyhow::Result<CycleSummary> {
    let totals = || {
        sims.iter().fold((0u64, 0u64), |(written, calls), sim| {
            let stats = sim.stats();
            let n = |key: &str| stats.get(key).and_then(Value::as_u64).unwrap_or(0);
            (written + n("records_written"), calls + n("api_calls_total"))
        })
    };
    let (written_before, calls_before) = totals();
    let cycle = daemon.run_once(cancel);
    tokio::pin!(cycle);
    let mut redraw = tokio::time::interval(Duration::from_millis(250));
    let started = tokio::time::Instant::now();
    let mut drawn = false;
    let summary = loop {
        tokio::select! {
            summary = &mut cycle => break summary,
            _ = redraw.tick() => {
                // Only cycles long enough to wonder about get a progress line.
                if started.elapsed() >= Duration::from_millis(500) {
                    let (written, calls) = totals();
                    write!(
                        out,
                        "\r\x1b[2K  syncing: {} records written, {} API calls so far ({:.0?})",
                        written.saturating_sub(written_before),
                        calls.saturating_sub(calls_before),
                        started.elapsed()
                    )?;
                    out.flush()?;
                    drawn = true;
                }
            }
        }
    };
    if drawn {
        write!(out, "\r\x1b[2K")?;
    }
    Ok(summary)
}

fn seed(sim: &sfsim::SimOrg, plan: &OrgSeed) -> anyhow::Result<()> {
    let accounts: Vec<Map<String, Value>> = plan
        .accounts
        .iter()
        .map(|name| {
            let mut fields = Map::new();
            fields.insert("Name".into(), json!(name));
            fields.insert("Industry".into(), json!("Technology"));
            fields
        })
        .collect();
    let results = sim
        .seed_records("Account", Some(&sim.human_username), accounts)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (name, result) in plan.accounts.iter().zip(&results) {
        let id = result
            .get("id")
            .and_then(Value::as_str)
            .with_context(|| format!("account {name} was not created: {result}"))?;
        ids.insert(name, id.to_string());
    }
    let opportunities: Vec<Map<String, Value>> = plan
        .opportunities
        .iter()
        .map(|(fields, account)| {
            let mut fields = fields.clone();
            if let Some(id) = ids.get(account.as_str()) {
                fields.insert("AccountId".into(), json!(id));
            }
            fields
        })
        .collect();
    let results = sim
        .seed_records("Opportunity", Some(&sim.human_username), opportunities)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(bad) = results
        .iter()
        .find(|r| r.get("success") != Some(&json!(true)))
    {
        anyhow::bail!("an opportunity was not created: {bad}");
    }
    Ok(())
}

/// The org's opportunities with the sync fields and the parent account's Name, read from the
/// simulator's database directly (no API call is counted).
fn opportunities(sim: &sfsim::SimOrg) -> anyhow::Result<Vec<Value>> {
    let soql = format!(
        "SELECT {}, Account.Name FROM Opportunity",
        FIELDS.join(", ")
    );
    sim.db()
        .query(&soql, false, "62.0", chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("reading the opportunities of org {}: {e}", sim.name))
}

/// Applies the edits of one org's human user by Name, through the REST API.
async fn apply_edits(
    client: &Client,
    sim: &sfsim::SimOrg,
    edits: &[Edit],
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let rows = opportunities_with_ids(sim)?;
    let updates: Vec<(String, Map<String, Value>)> = edits
        .iter()
        .filter_map(|(name, fields)| rows.get(name).map(|id| (id.clone(), fields.clone())))
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    let results = client
        .update("Opportunity", &updates)
        .await
        .with_context(|| format!("editing opportunities in org {}", sim.name))?;
    let done = results.iter().filter(|r| r.is_ok()).count();
    let what: Vec<String> = edits
        .iter()
        .map(|(name, fields)| {
            let changes: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{name}: {}", changes.join(", "))
        })
        .collect();
    writeln!(
        out,
        "{} edits {done} opportunities in org {}: {}",
        sim.human_username,
        sim.name,
        what.join("; ")
    )?;
    Ok(())
}

fn opportunities_with_ids(sim: &sfsim::SimOrg) -> anyhow::Result<HashMap<String, String>> {
    let rows = sim
        .db()
        .query(
            "SELECT Id, Name FROM Opportunity",
            false,
            "62.0",
            chrono::Utc::now(),
        )
        .map_err(|e| anyhow::anyhow!("reading the opportunities of org {}: {e}", sim.name))?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some((
                row.get("Name")?.as_str()?.to_string(),
                row.get("Id")?.as_str()?.to_string(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_splits_records_between_the_orgs() {
        let (a, b) = seed_plan(100);
        // 40 only in A, 30 only in B, 30 in both.
        assert_eq!(a.opportunities.len(), 70);
        assert_eq!(b.opportunities.len(), 60);
        let names = |s: &OrgSeed| -> Vec<String> {
            s.opportunities
                .iter()
                .map(|(f, _)| f["Name"].as_str().unwrap().to_string())
                .collect()
        };
        let (na, nb) = (names(&a), names(&b));
        let shared: Vec<&String> = na.iter().filter(|n| nb.contains(n)).collect();
        assert_eq!(shared.len(), 30);
        // Shared deals differ in value.
        let first_shared = |s: &OrgSeed| {
            s.opportunities
                .iter()
                .find(|(f, _)| f["Name"] == "Shared deal 00000")
                .map(|(f, _)| f.clone())
                .unwrap()
        };
        assert_ne!(first_shared(&a)["Amount"], first_shared(&b)["Amount"]);
        // Every opportunity's account is seeded on its side; shared accounts on both.
        for seed in [&a, &b] {
            assert!(
                seed.opportunities
                    .iter()
                    .all(|(_, acc)| seed.accounts.contains(acc))
            );
        }
        assert!(a.accounts.contains(&"Shared Account 000".to_string()));
        assert!(b.accounts.contains(&"Shared Account 000".to_string()));
        assert!(!b.accounts.contains(&"Alpha Account 000".to_string()));
    }

    #[test]
    fn a_tiny_seed_still_has_something_everywhere() {
        let (a, b) = seed_plan(1);
        assert_eq!(a.opportunities.len() + b.opportunities.len(), 1);
        let (a, b) = seed_plan(10);
        assert_eq!((a.opportunities.len(), b.opportunities.len()), (7, 6));
    }

    #[test]
    fn edits_touch_existing_records() {
        let (a, b) = seed_plan(50);
        let (ea, eb) = edit_plan(&a, &b);
        assert_eq!(ea.len(), 4);
        assert_eq!(eb.len(), 3);
        for (name, _) in &ea {
            assert!(
                a.opportunities
                    .iter()
                    .any(|(f, _)| f["Name"] == name.as_str())
            );
        }
        for (name, _) in &eb {
            assert!(
                b.opportunities
                    .iter()
                    .any(|(f, _)| f["Name"] == name.as_str())
            );
        }
    }

    fn row(name: &str, amount: Value, account: Option<&str>) -> Value {
        json!({
            "attributes": {"type": "Opportunity"},
            "Name": name, "Description": null, "CloseDate": "2027-01-01",
            "Amount": amount, "StageName": "Prospecting",
            "Account": account.map(|n| json!({"attributes": {"type": "Account"}, "Name": n})),
        })
    }

    #[test]
    fn agreement_compares_values_names_and_accounts() {
        let a = vec![
            row("x", json!(5000), Some("Acme")),
            row("y", json!(1), None),
        ];
        let same = vec![
            row("y", json!(1.0), None),
            row("x", json!(5000.0), Some("Acme")),
        ];
        assert!(compare(&a, &same).agree());
        let other_amount = vec![
            row("x", json!(5001), Some("Acme")),
            row("y", json!(1), None),
        ];
        assert_eq!(compare(&a, &other_amount).differing, vec!["x"]);
        let other_account = vec![
            row("x", json!(5000), Some("Beta")),
            row("y", json!(1), None),
        ];
        assert_eq!(compare(&a, &other_account).differing, vec!["x"]);
        let missing = vec![row("x", json!(5000), Some("Acme"))];
        let result = compare(&a, &missing);
        assert!(!result.agree());
        assert_eq!(result.differing, vec!["y"]);
        let extra = vec![
            row("x", json!(5000), Some("Acme")),
            row("y", json!(1), None),
            row("z", json!(1), None),
        ];
        assert_eq!(compare(&a, &extra).differing, vec!["z"]);
    }

    #[test]
    fn demo_settings_load() {
        let dir = tempfile::tempdir().unwrap();
        let s = demo_settings(
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            dir.path(),
            Duration::from_millis(1500),
        )
        .unwrap();
        assert_eq!(s.scheduler.frequency, Duration::from_millis(1500));
        assert_eq!(s.sync.filter, None);
        assert_eq!(s.a.login_url, "http://127.0.0.1:1");
        assert!(s.state.url.ends_with("orgsync-demo.db"));
    }
}
