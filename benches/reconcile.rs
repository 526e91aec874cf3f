//! Benchmark (issue 14): `orgsync reconcile` of X linked pairs that agree, on two simulated
//! orgs (sfsim, in this process) with a simulated round trip: API calls by kind per org, wall
//! time and the peak RSS of the reconcile (it runs in a child process, this same binary with
//! `--child`, so its peak RSS is the reconcile's alone: the orgs' records live in the parent).
//!
//! Set-up, fast and outside the measure: X identical opportunities seeded in each org through
//! sfsim's control API (10,000 per step, no API calls), and X live links inserted straight
//! into a migrated state database (one transaction, 500 rows per statement). The reconcile
//! then reads both orgs in full (`batch.bulk = "auto"`, `bulk_read_threshold = 1000`: a
//! Bulk query job per org above it), stages, compares and keeps its report; the benchmark
//! checks it found X pairs that agree.
//!
//! Settings (environment): `BENCH_RECONCILE_X` (comma-separated Xs, default `5000`; the
//! issue's size is `1000000`), `BENCH_RTT_MS` (50). Output: printed, and written to
//! `target/bench/reconcile.md`. Run without `--bench` (`cargo test --benches`), it runs a
//! smoke check at X = 1,500 and 0 ms instead and writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, anyhow, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use orgsync::salesforce::{Client, ClientOptions};
use orgsync::store::Store;
use orgsync::sync::Mapping;

const API_VERSION: &str = "62.0";
/// Links per INSERT statement when the set-up writes them.
const LINKS_PER_STATEMENT: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildSpec {
    a_url: String,
    b_url: String,
    state_dir: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChildResult {
    wall_secs: f64,
    peak_rss_kb: u64,
    compared_pairs: u64,
    total: u64,
    outside_filter: u64,
    records: [u64; 2],
    paths: [String; 2],
}

struct Row {
    x: u64,
    /// Calls by kind, per org (logins left out).
    calls: [BTreeMap<String, u64>; 2],
    totals: [u64; 2],
    result: ChildResult,
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
            eprintln!("reconcile benchmark: {e:#}");
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
    let (xs, rtt) = if bench {
        let xs: Vec<u64> = std::env::var("BENCH_RECONCILE_X")
            .unwrap_or_else(|_| "5000".into())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .with_context(|| format!("BENCH_RECONCILE_X: {s:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        (xs, env_number("BENCH_RTT_MS", 50)?)
    } else {
        (vec![1500], 0)
    };
    let mut rows = Vec::new();
    for &x in &xs {
        rows.push(run_case(x, rtt).await?);
        // The table so far, before the checks: a long run keeps its figures.
        let table = render(&rows, rtt);
        if bench {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
            std::fs::create_dir_all(&dir).context("target/bench")?;
            std::fs::write(dir.join("reconcile.md"), &table).context("write reconcile.md")?;
        }
    }
    println!("{}", render(&rows, rtt));
    for row in &rows {
        let x = row.x;
        ensure!(
            row.result.compared_pairs == x && row.result.total == 0,
            "X={x}: {} pairs compared, {} differences (expected {x} and 0)",
            row.result.compared_pairs,
            row.result.total
        );
        ensure!(
            row.result.records == [x, x] && row.result.outside_filter == 0,
            "X={x}: records read {:?}, {} outside the filter",
            row.result.records,
            row.result.outside_filter
        );
    }
    Ok(())
}

fn render(rows: &[Row], rtt: u64) -> String {
    let mut out = format!(
        "orgsync reconcile of X linked pairs that agree, {rtt} ms simulated round trip, \
         batch.bulk = \"auto\", bulk_read_threshold = 1000\n\n\
         | X | path (A / B) | API calls (A + B) | calls by kind, A | calls by kind, B | wall time | pairs/s | peak RSS |\n\
         |---:|---|---:|---|---|---:|---:|---:|\n"
    );
    for r in rows {
        let kinds = |calls: &BTreeMap<String, u64>| {
            calls
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let secs = r.result.wall_secs.max(1e-9);
        out.push_str(&format!(
            "| {} | {} / {} | {} + {} = {} | {} | {} | {:.1} s | {:.0} | {:.1} MB |\n",
            r.x,
            r.result.paths[0],
            r.result.paths[1],
            r.totals[0],
            r.totals[1],
            r.totals[0] + r.totals[1],
            kinds(&r.calls[0]),
            kinds(&r.calls[1]),
            secs,
            r.x as f64 / secs,
            r.result.peak_rss_kb as f64 / 1024.0
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

/// X opportunities written by a person, the same in both orgs, 10,000 per seeding step; their
/// ids in order.
fn seed(org: &sfsim::SimOrg, x: u64) -> anyhow::Result<Vec<String>> {
    let x = usize::try_from(x).context("X")?;
    let mut ids = Vec::with_capacity(x);
    let mut start = 0;
    while start < x {
        let end = (start + 10_000).min(x);
        let records: Vec<Map<String, Value>> = (start..end)
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
        let results = org
            .seed_records("Opportunity", Some(&org.human_username), records)
            .map_err(|e| anyhow!("seeding: {e:?}"))?;
        for r in results {
            ids.push(r["id"].as_str().context("a seeded id")?.to_string());
        }
        start = end;
    }
    Ok(ids)
}

/// The live links `a[i]` - `b[i]`, written straight into the migrated state database.
async fn link_all(url: &str, a: &[String], b: &[String]) -> anyhow::Result<()> {
    Store::open(url)
        .await
        .map_err(|e| anyhow!("store: {e}"))?
        .close()
        .await;
    let options: sqlx::sqlite::SqliteConnectOptions =
        url.parse().context("the state database's URL")?;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .context("open the state database")?;
    let now = orgsync::store::format_timestamp(chrono::Utc::now());
    let mut tx = pool.begin().await.context("begin")?;
    let pairs: Vec<(&String, &String)> = a.iter().zip(b).collect();
    for chunk in pairs.chunks(LINKS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO links (object, a_id, b_id, snapshot, state, created_at, updated_at) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let n = i * 3;
            sql.push_str(&format!(
                "('Opportunity', ${}, ${}, '{{}}', 'live', ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 3
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
        for (a_id, b_id) in chunk {
            query = query.bind(a_id.as_str()).bind(b_id.as_str()).bind(&now);
        }
        query.execute(&mut *tx).await.context("insert links")?;
    }
    tx.commit().await.context("commit")?;
    pool.close().await;
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

async fn run_case(x: u64, rtt: u64) -> anyhow::Result<Row> {
    eprintln!("reconcile X={x}: seeding ...");
    let a = sfsim::start_org(sfsim::OrgConfig::named("A"), "127.0.0.1:0")
        .await
        .context("start org A")?;
    let b = sfsim::start_org(sfsim::OrgConfig::named("B"), "127.0.0.1:0")
        .await
        .context("start org B")?;
    for org in [&a, &b] {
        set_faults(
            org,
            json!({"latency_ms": 0, "api_daily_limit": 1_000_000_000u64}),
        )?;
    }
    let seeding = Instant::now();
    let a_ids = seed(&a, x)?;
    let b_ids = seed(&b, x)?;
    let state = tempfile::tempdir().context("temporary folder")?;
    let spec = ChildSpec {
        a_url: a.base_url.clone(),
        b_url: b.base_url.clone(),
        state_dir: state.path().display().to_string(),
    };
    link_all(&settings(&spec)?.state.url, &a_ids, &b_ids).await?;
    drop((a_ids, b_ids));
    eprintln!(
        "  set up in {:.1} s; reconciling ...",
        seeding.elapsed().as_secs_f64()
    );
    for org in [&a, &b] {
        set_faults(org, json!({"latency_ms": rtt}))?;
    }
    let before = [a.stats(), b.stats()];
    let result = run_child(&spec).await?;
    let after = [a.stats(), b.stats()];
    let calls = [
        calls_between(&before[0], &after[0]),
        calls_between(&before[1], &after[1]),
    ];
    let totals = [calls[0].values().sum(), calls[1].values().sum()];
    eprintln!(
        "  {:.1} s, {} + {} calls, peak RSS {:.1} MB",
        result.wall_secs,
        totals[0],
        totals[1],
        result.peak_rss_kb as f64 / 1024.0
    );
    a.shutdown().await;
    b.shutdown().await;
    Ok(Row {
        x,
        calls,
        totals,
        result,
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
bulk = "auto"
bulk_read_threshold = 1000
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
        db = db.display(),
        a = spec.a_url,
        b = spec.b_url,
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
    let result = rt.block_on(child_reconcile(&spec))?;
    println!("{}", serde_json::to_string(&result).context("result")?);
    Ok(())
}

async fn child_reconcile(spec: &ChildSpec) -> anyhow::Result<ChildResult> {
    let settings = settings(spec)?;
    let started = Instant::now();
    let store = Store::open(&settings.state.url)
        .await
        .map_err(|e| anyhow!("store: {e}"))?;
    let options = ClientOptions::for_settings(&settings);
    let a = Client::with_options(&settings.a, options.clone()).map_err(|e| anyhow!("A: {e}"))?;
    let b = Client::with_options(&settings.b, options).map_err(|e| anyhow!("B: {e}"))?;
    let mapping = Mapping::from_settings(&settings).map_err(|e| anyhow!("mapping: {e}"))?;
    let (report, found) =
        orgsync::reconcile::reconcile(&settings, &mapping, &store, [&a, &b], 10, false, false)
            .await?;
    let report =
        orgsync::reconcile::repair_and_keep(&settings, &mapping, &store, [&a, &b], report, found)
            .await?;
    let wall = started.elapsed();
    store.close().await;
    let read = |org: &str| report.read.get(org);
    Ok(ChildResult {
        wall_secs: wall.as_secs_f64(),
        peak_rss_kb: peak_rss_kb(),
        compared_pairs: report.compared_pairs,
        total: report.total,
        outside_filter: report.outside_filter.count,
        records: [
            read("a").map_or(0, |r| r.records),
            read("b").map_or(0, |r| r.records),
        ],
        paths: [
            read("a").map_or(String::new(), |r| r.path.clone()),
            read("b").map_or(String::new(), |r| r.path.clone()),
        ],
    })
}
