//! Benchmark (issue 16): one A -> B sync of X records through the REST path
//! (`batch.bulk = "never"`) and through the Bulk path (`"auto"` with thresholds of 1,000), side
//! by side, on two simulated orgs (sfsim) with a simulated round trip: API calls by kind, wall
//! time, records per second and the peak RSS of orgsync (each sync runs in a child process,
//! this same binary with `--child`, so its peak RSS is the sync's alone).
//!
//! Scenarios: `new` (X records new to B; creates go through upserts on the external id
//! `Ext_Id__c` on both paths, so that the Bulk path can write them) and, with
//! `BENCH_UPDATES=1`, `updates` (X records already linked, then edited in A).
//!
//! Settings (environment): `BENCH_BULK_X` (comma-separated Xs, default `5000`; the issue's
//! size is `1000000`), `BENCH_RTT_MS` (50), `BENCH_PAGE_SIZE` (2000: Bulk writes pay only on
//! pages of more than 1,200 writes), `BENCH_UPDATES=1`. Output: printed, and written to
//! `target/bench/bulk.md`. Run without `--bench` (`cargo test --benches`), it runs a smoke
//! check at X = 1,500 (one page of 1,500) and 0 ms instead and writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use orgsync::salesforce::{Client, ClientOptions};
use orgsync::store::{Direction, Store};
use orgsync::sync::{BulkConfig, Mapping, Pass, PassConfig, PassOutcome};

const API_VERSION: &str = "62.0";
const EXT: &str = "Ext_Id__c";
const EDITED_AMOUNT: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Path {
    Rest,
    Bulk,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Rest => "REST (bulk = never)",
            Path::Bulk => "Bulk (bulk = auto)",
        }
    }
    fn mode(self) -> &'static str {
        match self {
            Path::Rest => "never",
            Path::Bulk => "auto",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildSpec {
    path: Path,
    source_url: String,
    target_url: String,
    page_size: usize,
    state_dir: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChildResult {
    wall_secs: f64,
    peak_rss_kb: u64,
    created: u64,
    updated: u64,
    failed: u64,
}

struct Row {
    path: Path,
    scenario: &'static str,
    x: u64,
    calls: BTreeMap<String, u64>,
    total: u64,
    wall: Duration,
    peak_rss_kb: u64,
    synced: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = if let Some(i) = args.iter().position(|a| a == "--child") {
        match args.get(i + 1) {
            Some(spec) => child_main(spec),
            None => Err(anyhow!("--child needs a spec")),
        }
    } else {
        let bench = args.iter().any(|a| a == "--bench");
        runtime().and_then(|rt| rt.block_on(parent_main(bench)))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulk benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}

async fn parent_main(bench: bool) -> anyhow::Result<()> {
    let (xs, rtt, page_size, updates) = if bench {
        let xs: Vec<u64> = std::env::var("BENCH_BULK_X")
            .unwrap_or_else(|_| "5000".into())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .with_context(|| format!("BENCH_BULK_X: {s:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let updates = std::env::var_os("BENCH_UPDATES").is_some();
        (
            xs,
            env_number("BENCH_RTT_MS", 50)?,
            env_number("BENCH_PAGE_SIZE", 2000)?,
            updates,
        )
    } else {
        (vec![1500], 0, 1500, true)
    };
    let page_size = usize::try_from(page_size).context("BENCH_PAGE_SIZE")?;
    let mut rows = Vec::new();
    for &x in &xs {
        // Bulk first: its figures are the ones a long run is for.
        for path in [Path::Bulk, Path::Rest] {
            rows.push(run_case(path, "new", x, rtt, page_size).await?);
            if updates {
                rows.push(run_case(path, "updates", x, rtt, page_size).await?);
            }
        }
    }
    let table = render(&rows, rtt, page_size);
    println!("{table}");
    if bench {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(&dir).context("target/bench")?;
        std::fs::write(dir.join("bulk.md"), &table).context("write bulk.md")?;
    }
    // Checked after the table is written, so that a long run's figures are kept.
    for row in &rows {
        ensure!(
            row.synced == row.x,
            "{} {} X={}: {} of {} records synced",
            row.path.label(),
            row.scenario,
            row.x,
            row.synced,
            row.x
        );
    }
    Ok(())
}

fn render(rows: &[Row], rtt: u64, page_size: usize) -> String {
    let mut out = format!(
        "One A -> B sync, {rtt} ms simulated round trip, batch.page_size = {page_size}\n\n\
         | path | scenario | X | total calls | calls by kind (both orgs) | wall time | records/s | peak RSS |\n\
         |---|---|---:|---:|---|---:|---:|---:|\n"
    );
    for r in rows {
        let kinds: Vec<String> = r.calls.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let secs = r.wall.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} s | {:.0} | {:.1} MB |\n",
            r.path.label(),
            r.scenario,
            r.x,
            r.total,
            kinds.join(", "),
            secs,
            r.x as f64 / secs,
            r.peak_rss_kb as f64 / 1024.0
        ));
    }
    out
}

fn set_faults(org: &sfsim::SimOrg, patch: Value) -> anyhow::Result<()> {
    let Value::Object(patch) = patch else {
        bail!("a faults patch is a JSON object");
    };
    org.set_faults(patch)
        .map_err(|e| anyhow!("faults on {}: {e:?}", org.name))?;
    Ok(())
}

/// X opportunities in A written by a person, 10,000 per seeding step.
fn seed(org: &sfsim::SimOrg, x: u64) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let x = usize::try_from(x).context("X")?;
    let records: Vec<Map<String, Value>> = (0..x)
        .map(|i| {
            let Value::Object(m) = json!({
                "Name": format!("Deal {i:07}"), "StageName": "Prospecting",
                "CloseDate": "2026-12-31", "Amount": 10_000 + i,
                "Description": format!("Benchmark opportunity number {i}"),
            }) else {
                unreachable!("a JSON object literal")
            };
            m
        })
        .collect();
    for chunk in records.chunks(10_000) {
        let results = org
            .seed_records("Opportunity", Some(&org.human_username), chunk.to_vec())
            .map_err(|e| anyhow!("seeding: {e:?}"))?;
        for r in results {
            ids.push(r["id"].as_str().context("a seeded id")?.to_string());
        }
    }
    Ok(ids)
}

/// A person edits every record in A (a new Amount), 200 per call at 0 ms.
async fn edit(org: &sfsim::SimOrg, ids: &[String]) -> anyhow::Result<()> {
    let spec = ChildSpec {
        path: Path::Rest,
        source_url: org.base_url.clone(),
        target_url: org.base_url.clone(),
        page_size: 200,
        state_dir: String::new(),
    };
    let mut settings = settings(&spec)?;
    settings.a.username = org.human_username.clone();
    let human = Client::with_options(&settings.a, ClientOptions::default())
        .map_err(|e| anyhow!("human client: {e}"))?;
    for chunk in ids.chunks(200) {
        let edits: Vec<(String, Map<String, Value>)> = chunk
            .iter()
            .map(|id| {
                let mut body = Map::new();
                // Above every seeded Amount (10,000 + i), so that every edit changes the
                // record (an unchanged value would be no update to make).
                body.insert("Amount".into(), json!(EDITED_AMOUNT));
                (id.clone(), body)
            })
            .collect();
        human
            .update("Opportunity", &edits)
            .await
            .map_err(|e| anyhow!("editing A: {e}"))?;
    }
    Ok(())
}

fn calls_between(before: &Value, after: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Some(calls) = after["calls"].as_object() {
        for (kind, n) in calls {
            let n = n.as_u64().unwrap_or(0);
            let was = before["calls"][kind.as_str()].as_u64().unwrap_or(0);
            if n > was && !kind.starts_with("login") {
                out.insert(kind.clone(), n - was);
            }
        }
    }
    out
}

fn total_between(before: &Value, after: &Value) -> u64 {
    let n = |v: &Value| v["api_calls_total"].as_u64().unwrap_or(0);
    n(after).saturating_sub(n(before))
}

async fn run_case(
    path: Path,
    scenario: &'static str,
    x: u64,
    rtt: u64,
    page_size: usize,
) -> anyhow::Result<Row> {
    eprintln!("{} {scenario} X={x} ...", path.label());
    let a = sfsim::start_org(sfsim::OrgConfig::named("A"), "127.0.0.1:0")
        .await
        .context("start org A")?;
    let b = sfsim::start_org(sfsim::OrgConfig::named("B"), "127.0.0.1:0")
        .await
        .context("start org B")?;
    let field = json!({"object": "Opportunity", "name": EXT, "type": "string", "length": 64,
                       "externalId": true, "unique": true});
    for org in [&a, &b] {
        org.add_field(&field).map_err(|e| anyhow!("field: {e:?}"))?;
        set_faults(
            org,
            json!({"latency_ms": 0, "api_daily_limit": 1_000_000_000u64}),
        )?;
    }
    let ids = seed(&a, x)?;
    let state = tempfile::tempdir().context("temporary folder")?;
    let spec = ChildSpec {
        path,
        source_url: a.base_url.clone(),
        target_url: b.base_url.clone(),
        page_size,
        state_dir: state.path().display().to_string(),
    };
    if scenario == "updates" {
        run_child(&ChildSpec {
            path: Path::Rest,
            ..spec.clone()
        })
        .await
        .context("the initial sync")?;
        edit(&a, &ids).await?;
    }
    for org in [&a, &b] {
        set_faults(org, json!({"latency_ms": rtt}))?;
    }
    let (before_a, before_b) = (a.stats(), b.stats());
    let result = run_child(&spec).await?;
    let (after_a, after_b) = (a.stats(), b.stats());
    let mut calls = calls_between(&before_a, &after_a);
    for (k, n) in calls_between(&before_b, &after_b) {
        *calls.entry(k).or_insert(0) += n;
    }
    let total = total_between(&before_a, &after_a) + total_between(&before_b, &after_b);
    let synced = (result.created + result.updated).min(x);
    eprintln!(
        "  {:.2} s, {total} calls, created {}, updated {}, failed {}",
        result.wall_secs, result.created, result.updated, result.failed
    );
    a.shutdown().await;
    b.shutdown().await;
    Ok(Row {
        path,
        scenario,
        x,
        calls,
        total,
        wall: Duration::from_secs_f64(result.wall_secs.max(0.0)),
        peak_rss_kb: result.peak_rss_kb,
        synced,
    })
}

async fn run_child(spec: &ChildSpec) -> anyhow::Result<ChildResult> {
    let exe = std::env::current_exe().context("the benchmark's own path")?;
    let mut child = tokio::process::Command::new(exe)
        .arg("--child")
        .arg(serde_json::to_string(spec).context("child spec")?)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("start the child process")?;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .await
            .context("read the child's output")?;
    }
    let status = child.wait().await.context("wait for the child")?;
    ensure!(status.success(), "the child failed: {status}");
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the child printed no result")?;
    serde_json::from_str(last).with_context(|| format!("the child's result {last:?}"))
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|line| {
                let rest = line.strip_prefix("VmHWM:")?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

/// The settings a daemon would load for these two orgs.
fn settings(spec: &ChildSpec) -> anyhow::Result<orgsync::config::Settings> {
    let db = PathBuf::from(&spec.state_dir).join("state.db");
    let toml = format!(
        r#"
[batch]
page_size = {page}
bulk = "{mode}"
bulk_read_threshold = 1000
bulk_write_threshold = 1000
[watermark]
default = "2018-08-25T11:00:00.000Z"
[sync]
external_id_field = "{EXT}"
[state]
url = "sqlite://{db}"
[orgs.a]
login_url = "{a}"
username = "integration@a.sim"
api_version = "{API_VERSION}"
[orgs.b]
login_url = "{b}"
username = "integration@b.sim"
api_version = "{API_VERSION}"
"#,
        page = spec.page_size,
        mode = spec.path.mode(),
        db = db.display(),
        a = spec.source_url,
        b = spec.target_url,
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
    orgsync::config::load_str("bench", &[("benchmark settings", &toml)], &vars)
        .map_err(|e| anyhow!("settings: {e}"))
}

fn child_main(spec: &str) -> anyhow::Result<()> {
    let spec: ChildSpec = serde_json::from_str(spec).context("child spec")?;
    let rt = runtime()?;
    let result = rt.block_on(child_sync(&spec))?;
    println!("{}", serde_json::to_string(&result).context("result")?);
    Ok(())
}

async fn child_sync(spec: &ChildSpec) -> anyhow::Result<ChildResult> {
    let settings = settings(spec)?;
    let started = Instant::now();
    let store = Store::open(&settings.state.url)
        .await
        .map_err(|e| anyhow!("store: {e}"))?;
    let options = ClientOptions::for_settings(&settings);
    let a = Client::with_options(&settings.a, options.clone()).map_err(|e| anyhow!("A: {e}"))?;
    let b = Client::with_options(&settings.b, options).map_err(|e| anyhow!("B: {e}"))?;
    let user_a = a.user_id().await.map_err(|e| anyhow!("login A: {e}"))?;
    b.user_id().await.map_err(|e| anyhow!("login B: {e}"))?;
    let config = PassConfig::from_settings(&settings, Direction::AToB, 1, Some(user_a));
    let mapping = Mapping::from_settings(&settings).map_err(|e| anyhow!("mapping: {e}"))?;
    let report = Pass::new(
        &config,
        &mapping,
        &a,
        &b,
        &store,
        &orgsync::metrics::Metrics::default(),
    )
    .with_bulk(BulkConfig::from_settings(&settings))
    .run(&CancellationToken::new())
    .await
    .map_err(|e| anyhow!("pass: {e}"))?;
    let wall = started.elapsed();
    store.close().await;
    ensure!(
        report.outcome == PassOutcome::Completed,
        "the pass did not complete: {report:?}"
    );
    Ok(ChildResult {
        wall_secs: wall.as_secs_f64(),
        peak_rss_kb: peak_rss_kb(),
        created: report.created,
        updated: report.updated,
        failed: report.failed,
    })
}
