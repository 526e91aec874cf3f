//! Benchmark (issue 8): orgsync's direction pass against the MuleSoft template's algorithm
//! (re-implemented in `template_baseline`, clearly labelled BASELINE) and against the
//! physical minimum of API calls, on two simulated orgs (sfsim) with a simulated round trip.
//!
//! For each X (1,000 and 10,000; 100,000 with `BENCH_FULL=1`) and each case, the parent process
//! starts two fresh orgs, seeds X changed opportunities in A through the control API (not
//! counted), sets the round trip, and runs ONE A -> B sync in a child process (this same
//! binary with `--child`), so that the child's peak RSS is the sync's alone. Calls by kind
//! come from both orgs' `/__sim/stats` before and after; losses from comparing B with A.
//! orgsync runs exactly as the daemon builds it: settings through `config::load_str`, the
//! real client (`ClientOptions::for_settings`), the SQLite store, `PassConfig::from_settings`,
//! `Mapping::from_settings`, `Pass::run`.
//!
//! The baseline makes one call per record; at a 100 ms round trip a whole run at X = 10,000
//! would take about 17 minutes. When a baseline run would exceed `BENCH_BASELINE_BUDGET_S`
//! (default 120 s), its calls, losses and memory are measured in a whole run at 0 ms, and its
//! wall time is extrapolated from a sample of pages run at the configured round trip; the table
//! says so on that row.
//!
//! Settings (environment): `BENCH_RTT_MS` (100), `BENCH_FULL=1` (adds X = 100,000),
//! `BENCH_X` (comma-separated list, overrides the Xs), `BENCH_PAGE_SIZE` (200, the template's
//! `page.size`), `BENCH_BASELINE_BUDGET_S` (120). Output: printed, and written to
//! `target/bench/sync_vs_template.md`.
//!
//! Run without `--bench` (e.g. `cargo test --benches`), the binary runs its self-checks and a
//! small smoke run at 0 ms instead, and writes nothing.

mod report;
mod template_baseline;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use orgsync::salesforce::{Client, ClientOptions};
use orgsync::store::{Direction, Store};
use orgsync::sync::{Mapping, Pass, PassConfig, PassOutcome};
use report::{CaseRow, Measured, RunInfo};
use template_baseline::{BaselineConfig, BaselineReport};

/// Fields synced by both cases: orgsync's defaults (`sync.fields`).
const FIELDS: [&str; 5] = ["Name", "Description", "CloseDate", "Amount", "StageName"];
/// The template's hard-coded filter, also orgsync's default `sync.filter`.
const FILTER: &str = "Amount > 5000";
/// The template's `watermark.default.expression`.
const DEFAULT_WATERMARK: &str = "2018-08-25T11:00:00.000Z";
const API_VERSION: &str = "62.0";
/// orgsync's `batch.in_flight` default.
const DEFAULT_IN_FLIGHT: usize = orgsync::config::DEFAULT_IN_FLIGHT;
/// Seed of the deterministic mix of write sizes.
const TIE_SEED: u64 = 2026;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Case {
    Orgsync,
    Baseline,
}

impl Case {
    fn label(self, scenario: Scenario) -> String {
        let case = match self {
            Case::Orgsync => "orgsync",
            Case::Baseline => "BASELINE (template)",
        };
        match scenario {
            Scenario::Creates => case.to_string(),
            Scenario::Updates => format!("{case}, updates"),
        }
    }
}

/// What the X changes in A are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// X records new to B (the first sync of a backlog).
    Creates,
    /// X records already synced to B (and linked), then edited in A by a person.
    Updates,
}

impl Scenario {
    /// The Amount record `i` holds in A after the scenario's changes (always > 5000).
    fn amount(self, i: usize) -> f64 {
        let base = match self {
            Scenario::Creates => 5001,
            Scenario::Updates => 7001,
        };
        (base + i % 100_000) as f64
    }
}

/// What the parent asks a child to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildSpec {
    case: Case,
    source_url: String,
    target_url: String,
    page_size: usize,
    /// orgsync only: `batch.in_flight`.
    in_flight: usize,
    /// Baseline only: stop after this many polls (a sample).
    max_pages: Option<u64>,
    /// Folder for orgsync's SQLite state.
    state_dir: String,
}

/// What a child reports on its last stdout line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildResult {
    wall_secs: f64,
    start_rss_kb: u64,
    peak_rss_kb: u64,
    /// The pass report (orgsync) or the baseline's report, for the log.
    detail: Value,
    /// Baseline: polls run.
    pages: u64,
}

/// One case run against two fresh orgs.
#[derive(Debug, Clone)]
struct Measurement {
    calls_a: BTreeMap<String, u64>,
    calls_b: BTreeMap<String, u64>,
    total_a: u64,
    total_b: u64,
    wall: Duration,
    synced: u64,
    lost: u64,
    duplicates: u64,
    start_rss_kb: u64,
    peak_rss_kb: u64,
    pages: u64,
}

impl Measurement {
    fn calls(&self) -> BTreeMap<String, u64> {
        let mut all = self.calls_a.clone();
        report::add_calls(&mut all, &self.calls_b);
        all
    }

    /// Every call, logins included (each costs a round trip).
    fn calls_with_logins(&self) -> u64 {
        self.calls().values().sum()
    }

    fn row(&self, label: String, x: u64, measured: Measured) -> CaseRow {
        CaseRow {
            case: label,
            x,
            calls_a: self.calls_a.clone(),
            calls_b: self.calls_b.clone(),
            total: self.total_a + self.total_b,
            max_on_one_org: self.total_a.max(self.total_b),
            wall: self.wall,
            synced: self.synced,
            lost: self.lost,
            duplicates: self.duplicates,
            peak_rss_kb: self.peak_rss_kb,
            start_rss_kb: self.start_rss_kb,
            measured,
        }
    }
}

/// The benchmark's settings, from the environment.
#[derive(Debug, Clone)]
struct Options {
    xs: Vec<u64>,
    scenarios: Vec<Scenario>,
    rtt_ms: u64,
    page_size: usize,
    /// orgsync's `batch.in_flight`.
    in_flight: usize,
    baseline_budget: Duration,
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a non-negative integer, not {v:?}")),
        _ => Ok(default),
    }
}

impl Options {
    fn from_env() -> anyhow::Result<Options> {
        let full = std::env::var("BENCH_FULL").is_ok_and(|v| v == "1" || v == "true");
        let xs = match std::env::var("BENCH_X") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|s| {
                    s.trim()
                        .replace('_', "")
                        .parse::<u64>()
                        .with_context(|| format!("BENCH_X: bad number {s:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            _ if full => vec![1_000, 10_000, 100_000],
            _ => vec![1_000, 10_000],
        };
        ensure!(
            xs.iter().all(|&x| x > 0),
            "BENCH_X: every X must be at least 1"
        );
        let page_size = env_number("BENCH_PAGE_SIZE", 200)?;
        ensure!(
            (1..=2000).contains(&page_size),
            "BENCH_PAGE_SIZE must be 1..=2000"
        );
        let in_flight = env_number("BENCH_IN_FLIGHT", DEFAULT_IN_FLIGHT as u64)?;
        ensure!(
            (1..=orgsync::config::MAX_IN_FLIGHT as u64).contains(&in_flight),
            "BENCH_IN_FLIGHT must be 1..={}",
            orgsync::config::MAX_IN_FLIGHT
        );
        let updates = std::env::var("BENCH_UPDATES").is_ok_and(|v| v == "1" || v == "true");
        Ok(Options {
            xs,
            scenarios: if updates {
                vec![Scenario::Creates, Scenario::Updates]
            } else {
                vec![Scenario::Creates]
            },
            rtt_ms: env_number("BENCH_RTT_MS", 100)?,
            page_size: page_size as usize,
            in_flight: in_flight as usize,
            baseline_budget: Duration::from_secs(env_number("BENCH_BASELINE_BUDGET_S", 120)?),
        })
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if let Some(i) = args.iter().position(|a| a == "--child") {
        match args.get(i + 1) {
            Some(spec) => child_main(spec),
            None => Err(anyhow!("--child needs a JSON spec")),
        }
    } else if args.iter().any(|a| a == "--bench") {
        runtime().and_then(|rt| rt.block_on(bench_main()))
    } else {
        runtime().and_then(|rt| rt.block_on(smoke_main()))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
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

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

// ---- the parent --------------------------------------------------------------------------

async fn bench_main() -> anyhow::Result<()> {
    init_logs();
    let opts = Options::from_env()?;
    let started = Instant::now();
    let mut rows = Vec::new();
    for &x in &opts.xs {
        for &scenario in &opts.scenarios {
            rows.push(orgsync_case(scenario, x, &opts).await?);
            rows.push(baseline_case(scenario, x, &opts).await?);
        }
    }
    // What the calls in flight buy: the largest X again, one call at a time.
    let sequential = match opts.xs.iter().max() {
        Some(&x) if opts.in_flight > 1 => {
            let one = Options {
                in_flight: 1,
                ..opts.clone()
            };
            eprintln!("orgsync with batch.in_flight = 1, for comparison:");
            Some(orgsync_case(Scenario::Creates, x, &one).await?)
        }
        _ => None,
    };
    let info = RunInfo {
        command: command_line(),
        machine: machine(),
        rtt_ms: opts.rtt_ms,
        page_size: opts.page_size,
        in_flight: opts.in_flight,
        date: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    let md = report::markdown(&info, &rows, &findings(&rows, &opts, sequential.as_ref()));
    println!("{md}");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("sync_vs_template.md");
    std::fs::write(&path, &md).with_context(|| format!("write {}", path.display()))?;
    eprintln!(
        "wrote {} ({:.0} s in all)",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Self-checks of the pure parts, then both cases at a small X with no round trip.
async fn smoke_main() -> anyhow::Result<()> {
    init_logs();
    report::self_check().context("report self-check")?;
    template_baseline::self_check().context("baseline self-check")?;
    let opts = Options {
        xs: vec![450],
        scenarios: vec![Scenario::Creates, Scenario::Updates],
        rtt_ms: 0,
        page_size: 200,
        in_flight: DEFAULT_IN_FLIGHT,
        baseline_budget: Duration::from_secs(60),
    };
    let rows = vec![
        orgsync_case(Scenario::Creates, 450, &opts).await?,
        baseline_case(Scenario::Creates, 450, &opts).await?,
        orgsync_case(Scenario::Updates, 450, &opts).await?,
        baseline_case(Scenario::Updates, 450, &opts).await?,
    ];
    ensure!(
        rows[2].lost == 0 && rows[2].duplicates == 0,
        "{:?}",
        rows[2]
    );
    ensure!(
        rows[2].calls_b.get("collections_update").copied() == Some(3),
        "orgsync updates: {:?}",
        rows[2]
    );
    ensure!(
        rows[0].lost == 0 && rows[0].duplicates == 0,
        "{:?}",
        rows[0]
    );
    ensure!(rows[0].total <= 3 * 3 + 1, "orgsync calls: {:?}", rows[0]);
    ensure!(
        rows[1].total >= rows[1].synced,
        "the baseline looks up every record it reads"
    );
    let info = RunInfo {
        command: "smoke run (no --bench)".into(),
        machine: machine(),
        rtt_ms: 0,
        page_size: 200,
        in_flight: DEFAULT_IN_FLIGHT,
        date: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    eprintln!("{}", report::markdown(&info, &rows, &[]));
    eprintln!("self-checks and smoke run passed");
    Ok(())
}

async fn orgsync_case(scenario: Scenario, x: u64, opts: &Options) -> anyhow::Result<CaseRow> {
    let label = Case::Orgsync.label(scenario);
    eprintln!("{label}, X = {x}, {} ms round trip ...", opts.rtt_ms);
    let m = run_case(
        Case::Orgsync,
        scenario,
        x,
        opts.rtt_ms,
        (opts.page_size, opts.in_flight),
        None,
    )
    .await?;
    Ok(m.row(label, x, Measured::Full))
}

async fn baseline_case(scenario: Scenario, x: u64, opts: &Options) -> anyhow::Result<CaseRow> {
    let label = Case::Baseline.label(scenario);
    let pages = x.div_ceil(opts.page_size as u64);
    // One query and one write per page, one lookup per record, two logins, an empty poll.
    let estimated_calls = x + 2 * pages + 3;
    let estimated = Duration::from_millis(estimated_calls.saturating_mul(opts.rtt_ms));
    if opts.rtt_ms == 0 || estimated <= opts.baseline_budget {
        eprintln!("{label}, X = {x}, {} ms round trip ...", opts.rtt_ms);
        let m = run_case(
            Case::Baseline,
            scenario,
            x,
            opts.rtt_ms,
            (opts.page_size, 1),
            None,
        )
        .await?;
        return Ok(m.row(label, x, Measured::Full));
    }
    eprintln!("{label}, X = {x}, whole run at 0 ms (calls, losses, memory) ...");
    let whole = run_case(Case::Baseline, scenario, x, 0, (opts.page_size, 1), None).await?;
    let per_page_ms = (opts.page_size as u64 + 2)
        .saturating_mul(opts.rtt_ms)
        .max(1);
    let sample_pages = (opts.baseline_budget.as_millis() as u64 / per_page_ms).clamp(1, pages);
    eprintln!(
        "{label}, X = {x}, sample of {sample_pages} pages at {} ms (wall time) ...",
        opts.rtt_ms
    );
    let sample = run_case(
        Case::Baseline,
        scenario,
        x,
        opts.rtt_ms,
        (opts.page_size, 1),
        Some(sample_pages),
    )
    .await?;
    let mut row = whole.row(
        label,
        x,
        Measured::Sampled {
            full_rtt_ms: 0,
            sample_pages: sample.pages,
            sample_calls: sample.calls_with_logins(),
            sample_wall: sample.wall,
        },
    );
    row.wall = report::extrapolate(
        sample.wall,
        sample.calls_with_logins(),
        whole.calls_with_logins(),
    );
    Ok(row)
}

/// Two fresh orgs, X changes in A (for `Updates`: X records seeded, synced to B by orgsync at
/// 0 ms, then edited in A), one measured sync A -> B in a child process, the figures.
async fn run_case(
    case: Case,
    scenario: Scenario,
    x: u64,
    rtt_ms: u64,
    (page_size, in_flight): (usize, usize),
    max_pages: Option<u64>,
) -> anyhow::Result<Measurement> {
    let a = sfsim::start_org(sfsim::OrgConfig::named("A"), "127.0.0.1:0")
        .await
        .context("start org A")?;
    let b = sfsim::start_org(sfsim::OrgConfig::named("B"), "127.0.0.1:0")
        .await
        .context("start org B")?;
    // The baseline needs more than a day's allowance at X = 100,000: raise the simulated limit
    // so that every case finishes (the table reports the calls per org against 100,000).
    for org in [&a, &b] {
        set_faults(
            org,
            json!({"latency_ms": 0, "api_daily_limit": 1_000_000_000u64}),
        )?;
    }
    let seeded = seed(&a, x)?;
    let state = tempfile::tempdir().context("temporary folder")?;
    if scenario == Scenario::Updates {
        let initial = ChildSpec {
            case: Case::Orgsync,
            source_url: a.base_url.clone(),
            target_url: b.base_url.clone(),
            page_size,
            in_flight: DEFAULT_IN_FLIGHT,
            max_pages: None,
            state_dir: state.path().display().to_string(),
        };
        run_child(&initial).await.context("the initial sync")?;
        edit(&a, &initial, &seeded).await?;
    }
    let expected: Vec<(String, f64)> = seeded
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), scenario.amount(i)))
        .collect();
    for org in [&a, &b] {
        set_faults(org, json!({"latency_ms": rtt_ms}))?;
    }
    let spec = ChildSpec {
        case,
        source_url: a.base_url.clone(),
        target_url: b.base_url.clone(),
        page_size,
        in_flight,
        max_pages,
        state_dir: state.path().display().to_string(),
    };
    let (before_a, before_b) = (a.stats(), b.stats());
    let result = run_child(&spec).await?;
    let (after_a, after_b) = (a.stats(), b.stats());
    let (synced, lost, duplicates) = compare(&b, &expected)?;
    eprintln!(
        "  {:.2} s, synced {synced}, lost {lost}; {}",
        result.wall_secs, result.detail
    );
    let m = Measurement {
        calls_a: report::calls_between(&before_a, &after_a),
        calls_b: report::calls_between(&before_b, &after_b),
        total_a: report::api_calls_between(&before_a, &after_a),
        total_b: report::api_calls_between(&before_b, &after_b),
        wall: Duration::from_secs_f64(result.wall_secs.max(0.0)),
        synced,
        lost,
        duplicates,
        start_rss_kb: result.start_rss_kb,
        peak_rss_kb: result.peak_rss_kb,
        pages: result.pages,
    };
    a.shutdown().await;
    b.shutdown().await;
    Ok(m)
}

fn set_faults(org: &sfsim::SimOrg, patch: Value) -> anyhow::Result<()> {
    let Value::Object(patch) = patch else {
        bail!("a faults patch is a JSON object");
    };
    org.set_faults(patch)
        .map_err(|e| anyhow!("faults on {}: {e:?}", org.name))?;
    Ok(())
}

/// The records seeded in A.
struct Seeded {
    names: Vec<String>,
    ids: Vec<String>,
    /// The clock offset of A after seeding (each write got 1 ms more).
    offset_ms: i64,
}

/// Seeds X opportunities in A as the human user, in writes of 1 to 100 records that each
/// share one timestamp; each write is stamped at least 1 ms after the previous one.
fn seed(org: &sfsim::SimOrg, x: u64) -> anyhow::Result<Seeded> {
    let x = usize::try_from(x).context("X is too large")?;
    let mut names = Vec::with_capacity(x);
    let mut ids = Vec::with_capacity(x);
    let mut offset_ms = 0i64;
    for size in report::tie_groups(x, TIE_SEED) {
        offset_ms += 1;
        org.set_clock_offset_ms(offset_ms);
        let records: Vec<Map<String, Value>> = (0..size)
            .map(|_| {
                let i = names.len();
                let name = format!("Deal {i:06}");
                names.push(name.clone());
                let Value::Object(m) = json!({
                    "Name": name,
                    "StageName": "Prospecting",
                    "CloseDate": "2026-12-31",
                    "Amount": Scenario::Creates.amount(i),
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
        for r in &results {
            match r["id"].as_str() {
                Some(id) if r["success"] == json!(true) => ids.push(id.to_string()),
                _ => bail!("seeding refused a record: {r}"),
            }
        }
    }
    Ok(Seeded {
        names,
        ids,
        offset_ms,
    })
}

/// A person edits every seeded record in A (a new Amount), through the REST API at 0 ms, in
/// the same mix of write sizes as the seeding (each write one timestamp, 1 ms apart).
async fn edit(org: &sfsim::SimOrg, spec: &ChildSpec, seeded: &Seeded) -> anyhow::Result<()> {
    let mut settings = orgsync_settings(spec)?;
    settings.a.username = org.human_username.clone();
    let human = Client::with_options(&settings.a, ClientOptions::default())
        .map_err(|e| anyhow!("client for the human user: {e}"))?;
    let mut offset_ms = seeded.offset_ms;
    let mut next = 0usize;
    for size in report::tie_groups(seeded.ids.len(), TIE_SEED + 1) {
        offset_ms += 1;
        org.set_clock_offset_ms(offset_ms);
        let edits: Vec<(String, Map<String, Value>)> = (next..next + size)
            .map(|i| {
                let mut fields = Map::new();
                fields.insert("Amount".into(), json!(Scenario::Updates.amount(i)));
                (seeded.ids[i].clone(), fields)
            })
            .collect();
        next += size;
        let results = human
            .update("Opportunity", &edits)
            .await
            .map_err(|e| anyhow!("editing A: {e}"))?;
        ensure!(
            results.iter().all(Result::is_ok),
            "editing A: a record was refused"
        );
    }
    Ok(())
}

/// (synced, lost, duplicates): records found in B with their name and expected Amount,
/// records missing from B or holding another Amount, extra copies in B.
fn compare(target: &sfsim::SimOrg, expected: &[(String, f64)]) -> anyhow::Result<(u64, u64, u64)> {
    let rows = target
        .db()
        .query(
            "SELECT Name, Amount FROM Opportunity",
            false,
            API_VERSION,
            Utc::now(),
        )
        .map_err(|e| anyhow!("reading B: {e:?}"))?;
    let in_b: Vec<&str> = rows.iter().filter_map(|r| r["Name"].as_str()).collect();
    let distinct: BTreeSet<&str> = in_b.iter().copied().collect();
    let amounts: HashMap<&str, f64> = rows
        .iter()
        .filter_map(|r| Some((r["Name"].as_str()?, r["Amount"].as_f64()?)))
        .collect();
    let synced = expected
        .iter()
        .filter(|(name, amount)| amounts.get(name.as_str()) == Some(amount))
        .count() as u64;
    let lost = expected.len() as u64 - synced;
    let duplicates = (in_b.len() - distinct.len()) as u64;
    Ok((synced, lost, duplicates))
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
    ensure!(
        status.success(),
        "the {:?} child failed: {status}",
        spec.case
    );
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the child printed no result")?;
    serde_json::from_str(last).with_context(|| format!("the child's result {last:?}"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

fn command_line() -> String {
    let mut parts: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BENCH_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.sort();
    parts.push("cargo bench --bench sync_vs_template".into());
    parts.join(" ")
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = report::status_kb(&meminfo, "MemTotal").unwrap_or(0) as f64 / 1024.0 / 1024.0;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cores} cores (nproc), {mem_gb:.1} GB memory, {cpu}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// What the figures show, in words, with the numbers: one comparison per pair of rows, then
/// where orgsync has room, from the largest X of each scenario. Estimates say so.
fn findings(rows: &[CaseRow], opts: &Options, sequential: Option<&CaseRow>) -> Vec<String> {
    let count = |calls: &BTreeMap<String, u64>, kind: &str| calls.get(kind).copied().unwrap_or(0);
    let mut out = Vec::new();
    // The pair with the largest X, per scenario (false: creates, true: updates).
    let mut largest: BTreeMap<bool, (&CaseRow, &CaseRow)> = BTreeMap::new();
    for pair in rows.chunks(2) {
        let [ours, base] = pair else { continue };
        let updates = ours.case.ends_with("updates");
        let tag = if updates {
            format!("X = {}, updates", ours.x)
        } else {
            format!("X = {}", ours.x)
        };
        let calls_ratio = base.total as f64 / ours.total.max(1) as f64;
        let time_ratio = base.wall.as_secs_f64() / ours.wall.as_secs_f64().max(1e-9);
        let sampled = matches!(base.measured, Measured::Sampled { .. });
        out.push(format!(
            "{tag}: orgsync made {} calls against the baseline's {} ({calls_ratio:.0}x fewer) \
             and took {:.1} s against {}{:.1} s ({time_ratio:.0}x less). orgsync lost {} \
             records; the baseline lost {} ({:.1} %): rows sharing the timestamp of a poll's \
             last row but cut off by its `LIMIT`, which the next poll's strict `>` skips.",
            ours.total,
            base.total,
            ours.wall.as_secs_f64(),
            if sampled { "an extrapolated " } else { "" },
            base.wall.as_secs_f64(),
            ours.lost,
            base.lost,
            100.0 * base.lost as f64 / base.x.max(1) as f64
        ));
        if largest.get(&updates).is_none_or(|(o, _)| o.x < ours.x) {
            largest.insert(updates, (ours, base));
        }
    }
    if let Some((ours, base)) = largest.get(&false) {
        let x = ours.x;
        let polls = count(&base.calls_a, "query");
        if polls > 1 {
            out.push(format!(
                "X = {x}: the baseline ran its {polls} polls back to back. The template waits \
                 `scheduler.frequency` (10 s by default) between polls and moves at most \
                 `page.size` records per poll, so in production it needs at least {} more \
                 for these changes, whatever the round trip.",
                humantime::format_duration(Duration::from_secs(10 * (polls - 1)))
            ));
        }
        let reads = count(&ours.calls_a, "query") + count(&ours.calls_a, "query_more");
        let min_reads = x.div_ceil(report::QUERY_BATCH_MAX);
        if reads > min_reads {
            let saved = reads - min_reads;
            out.push(format!(
                "Room in orgsync, X = {x}: it read A in {reads} query calls where 2,000-row \
                 batches need {min_reads}: `ClientOptions::for_settings` asks for `batchSize` \
                 = page size ({}). Reading 2,000 rows per call and cutting pages of {} locally \
                 would save {saved} calls ({:.1}x the minimum instead of {:.1}x).",
                opts.page_size,
                opts.page_size,
                (ours.total - saved) as f64 / report::physical_minimum(x).max(1) as f64,
                ours.ratio_to_minimum()
            ));
        }
        let lookups = count(&ours.calls_b, "query") + count(&ours.calls_b, "query_more");
        let writes = count(&ours.calls_b, "collections_create");
        out.push(format!(
            "Room in orgsync, X = {x}: its calls in B were {lookups} lookup queries (one per \
             page, for rows not linked yet) and {writes} writes (the minimum is {}). The \
             lookups are what a first-time link by Name costs; an external-id upsert \
             (`sync.external_id_field`) could drop them for records never seen before.",
            x.div_ceil(report::WRITE_BATCH_MAX)
        ));
        let all_calls: u64 =
            ours.calls_a.values().sum::<u64>() + ours.calls_b.values().sum::<u64>();
        if opts.rtt_ms > 0 && all_calls > 0 {
            let secs = ours.wall.as_secs_f64();
            let per_call = secs * 1000.0 / all_calls as f64;
            // The critical path of the pipeline: the reads of A follow one cursor (each needs
            // the one before), and a page's write follows its lookup; the pages' lookups and
            // writes share `in_flight` connections alongside the reads.
            let pages = x.div_ceil(opts.page_size as u64) as f64;
            let path = (reads as f64).max((2.0 * pages / opts.in_flight as f64).ceil()) + 2.0;
            let mut line = format!(
                "Overlap in orgsync, X = {x}: with `batch.in_flight = {}` its {all_calls} calls \
                 (logins included) took {secs:.1} s, {per_call:.0} ms of wall time per call at a \
                 {} ms round trip: reads of A run ahead while pages are looked up and written \
                 in B, and up to {} calls are in flight.",
                opts.in_flight, opts.rtt_ms, opts.in_flight
            );
            if let Some(seq) = sequential.filter(|s| s.x == x) {
                let seq_secs = seq.wall.as_secs_f64();
                line.push_str(&format!(
                    " The same sync with `batch.in_flight = 1` (one call at a time, measured in \
                     this run) made {} calls in {seq_secs:.1} s: {:.1}x the time for the same \
                     calls.",
                    seq.total,
                    seq_secs / secs.max(1e-9)
                ));
            }
            line.push_str(&format!(
                " What is left is the critical path: {reads} reads on one cursor, and per page a \
                 lookup before its write, shared by {} connections: about {path:.0} round trips \
                 ({:.1} s at {} ms), against {all_calls} one at a time.",
                opts.in_flight,
                path * opts.rtt_ms as f64 / 1000.0,
                opts.rtt_ms
            ));
            out.push(line);
        }
    }
    if let Some((ours, _)) = largest.get(&true) {
        let lookups = count(&ours.calls_b, "query") + count(&ours.calls_b, "query_more");
        let writes = count(&ours.calls_b, "collections_update");
        out.push(format!(
            "Updates, X = {}: orgsync's calls in B were {lookups} lookups of linked rows (`Id \
             IN`, one per page) and {writes} writes (the minimum is {}). The lookup reads B's \
             current values and `LastModifiedDate`, which the field-level merge and every \
             conflict policy need (a person may have edited B since the last sync), so it \
             stays; it overlaps with the writes of other pages like the lookups above.",
            ours.x,
            ours.x.div_ceil(report::WRITE_BATCH_MAX)
        ));
    }
    out
}

// ---- the child ---------------------------------------------------------------------------

fn child_main(spec: &str) -> anyhow::Result<()> {
    init_logs();
    let spec: ChildSpec = serde_json::from_str(spec).context("child spec")?;
    let rt = runtime()?;
    let start_rss_kb = rss_kb("VmRSS");
    let (wall, detail, pages) = rt.block_on(async {
        match spec.case {
            Case::Orgsync => orgsync_child(&spec).await,
            Case::Baseline => baseline_child(&spec).await,
        }
    })?;
    let result = ChildResult {
        wall_secs: wall.as_secs_f64(),
        start_rss_kb,
        peak_rss_kb: rss_kb("VmHWM"),
        detail,
        pages,
    };
    println!("{}", serde_json::to_string(&result).context("result")?);
    Ok(())
}

fn rss_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| report::status_kb(&s, key))
        .unwrap_or(0)
}

/// The settings a daemon would load for these two orgs (`config::load_str`, built-in
/// defaults for everything else).
fn orgsync_settings(spec: &ChildSpec) -> anyhow::Result<orgsync::config::Settings> {
    let db = PathBuf::from(&spec.state_dir).join("state.db");
    let toml = format!(
        r#"
[batch]
page_size = {page}
in_flight = {in_flight}
[watermark]
default = "{wm}"
[sync]
fields = [{fields}]
filter = "{FILTER}"
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
        in_flight = spec.in_flight,
        wm = DEFAULT_WATERMARK,
        fields = FIELDS.map(|f| format!("\"{f}\"")).join(", "),
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

async fn orgsync_child(spec: &ChildSpec) -> anyhow::Result<(Duration, Value, u64)> {
    let settings = orgsync_settings(spec)?;
    let started = Instant::now();
    let store = Store::open(&settings.state.url)
        .await
        .map_err(|e| anyhow!("store: {e}"))?;
    let options = ClientOptions::for_settings(&settings);
    let a = Client::with_options(&settings.a, options.clone()).map_err(|e| anyhow!("A: {e}"))?;
    let b = Client::with_options(&settings.b, options).map_err(|e| anyhow!("B: {e}"))?;
    let user_a = match &settings.a.integration_user_id {
        Some(id) => id.clone(),
        None => a.user_id().await.map_err(|e| anyhow!("login A: {e}"))?,
    };
    b.user_id().await.map_err(|e| anyhow!("login B: {e}"))?;
    let config = PassConfig::from_settings(&settings, Direction::AToB, 1, Some(user_a));
    let mapping = Mapping::from_settings(&settings).map_err(|e| anyhow!("mapping: {e}"))?;
    let cancel = CancellationToken::new();
    let report = Pass::new(
        &config,
        &mapping,
        &a,
        &b,
        &store,
        &orgsync::metrics::Metrics::default(),
    )
    .run(&cancel)
    .await
    .map_err(|e| anyhow!("pass: {e}"))?;
    let wall = started.elapsed();
    store.close().await;
    ensure!(
        report.outcome == PassOutcome::Completed,
        "the pass did not complete: {report:?}"
    );
    let detail = json!({
        "read": report.read, "created": report.created, "updated": report.updated,
        "skipped": report.skipped, "failed": report.failed, "pages": report.pages,
    });
    Ok((wall, detail, report.pages))
}

async fn baseline_child(spec: &ChildSpec) -> anyhow::Result<(Duration, Value, u64)> {
    let default_watermark = chrono::DateTime::parse_from_rfc3339(DEFAULT_WATERMARK)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc.timestamp_opt(0, 0).single().unwrap_or_default());
    let cfg = BaselineConfig {
        source_url: spec.source_url.clone(),
        target_url: spec.target_url.clone(),
        source_username: "integration@a.sim".into(),
        target_username: "integration@b.sim".into(),
        password_and_token: "passwordtoken".into(),
        api_version: API_VERSION.into(),
        object: "Opportunity".into(),
        fields: FIELDS.map(String::from).to_vec(),
        filter: FILTER.into(),
        page_size: spec.page_size,
        default_watermark,
        max_pages: spec.max_pages,
    };
    let started = Instant::now();
    let report: BaselineReport = template_baseline::run(&cfg).await?;
    let wall = started.elapsed();
    let pages = report.pages;
    Ok((
        wall,
        serde_json::to_value(&report).context("report")?,
        pages,
    ))
}
