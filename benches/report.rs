//! The benchmark's pure parts: the physical minimum of API calls, the deterministic shape of
//! the seeded changes (writes of 1 to 100 records sharing one timestamp), call counts from
//! two `/__sim/stats` snapshots, the extrapolation of a sampled run, memory figures from
//! `/proc/self/status`, and the markdown table. No I/O here, so `self_check` can test it all.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::ensure;
use serde_json::Value;

/// Rows Salesforce returns per query call at most (REST query batch).
pub const QUERY_BATCH_MAX: u64 = 2000;
/// Records per sObject Collections write at most.
pub const WRITE_BATCH_MAX: u64 = 200;
/// The daily API allowance of an Enterprise org with no extra licences.
pub const DAILY_ALLOWANCE: u64 = 100_000;

/// The fewest API calls that can move `x` changed records one way: read them in 2,000-row
/// query batches and write them in 200-record collections, with no lookup at all.
pub fn physical_minimum(x: u64) -> u64 {
    x.div_ceil(QUERY_BATCH_MAX) + x.div_ceil(WRITE_BATCH_MAX)
}

/// Sizes of the writes that produced the `x` seeded changes: a deterministic mix of 1 to 100
/// records per write (mean about 50), as people and loaders write an org. Records written by
/// one call share one timestamp, so these are also the groups of tied `LastModifiedDate`s.
pub fn tie_groups(x: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut left = x;
    let mut groups = Vec::new();
    while left > 0 {
        // Knuth's MMIX linear congruential generator: enough for a reproducible mix.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let size = 1 + ((state >> 33) % 100) as usize;
        let size = size.min(left);
        groups.push(size);
        left -= size;
    }
    groups
}

/// API calls by kind between two `/__sim/stats` snapshots of one org.
pub fn calls_between(before: &Value, after: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Some(after_calls) = after["calls"].as_object() {
        for (kind, n) in after_calls {
            let n = n.as_u64().unwrap_or(0);
            let was = before["calls"][kind.as_str()].as_u64().unwrap_or(0);
            if n > was {
                out.insert(kind.clone(), n - was);
            }
        }
    }
    out
}

/// API calls counted against the daily allowance between two snapshots (logins excluded).
pub fn api_calls_between(before: &Value, after: &Value) -> u64 {
    let a = after["api_calls_total"].as_u64().unwrap_or(0);
    let b = before["api_calls_total"].as_u64().unwrap_or(0);
    a.saturating_sub(b)
}

/// Adds the calls of `more` into `into`.
pub fn add_calls(into: &mut BTreeMap<String, u64>, more: &BTreeMap<String, u64>) {
    for (kind, n) in more {
        *into.entry(kind.clone()).or_insert(0) += n;
    }
}

/// A value in kB from `/proc/self/status` (e.g. `VmHWM`, `VmRSS`).
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The wall time of a whole run from a sample of it: the sample's time per call (login
/// included) times the whole run's calls. Calls are sequential and each costs one round
/// trip plus a little work, so time grows linearly with calls.
pub fn extrapolate(sample_wall: Duration, sample_calls: u64, full_calls: u64) -> Duration {
    if sample_calls == 0 {
        return sample_wall;
    }
    sample_wall.mul_f64(full_calls as f64 / sample_calls as f64)
}

/// How a row's figures were obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// Everything measured in one run at the configured round trip.
    Full,
    /// Calls, losses and memory measured in a whole run at `full_rtt_ms`; wall time
    /// extrapolated from `sample_pages` pages (`sample_calls` calls) run at the configured
    /// round trip.
    Sampled {
        full_rtt_ms: u64,
        sample_pages: u64,
        sample_calls: u64,
        sample_wall: Duration,
    },
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct CaseRow {
    /// `orgsync` or `BASELINE (template)`.
    pub case: String,
    pub x: u64,
    /// Calls by kind in the source org A and the target org B (logins included).
    pub calls_a: BTreeMap<String, u64>,
    pub calls_b: BTreeMap<String, u64>,
    /// Calls counted against the daily allowance, both orgs (logins excluded).
    pub total: u64,
    /// The largest count on one org (what that org's allowance pays).
    pub max_on_one_org: u64,
    pub wall: Duration,
    /// Distinct seeded records found in the target afterwards.
    pub synced: u64,
    /// Seeded records missing from the target afterwards.
    pub lost: u64,
    /// Target records beyond one per seeded record.
    pub duplicates: u64,
    /// Peak resident memory of the process that ran the sync, and its resident memory just
    /// before the sync started (runtime and libraries loaded).
    pub peak_rss_kb: u64,
    pub start_rss_kb: u64,
    pub measured: Measured,
}

impl CaseRow {
    pub fn ratio_to_minimum(&self) -> f64 {
        self.total as f64 / physical_minimum(self.x).max(1) as f64
    }

    pub fn records_per_second(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.synced as f64 / secs
        } else {
            0.0
        }
    }
}

/// Where and how the table was produced.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub command: String,
    pub machine: String,
    pub rtt_ms: u64,
    pub page_size: usize,
    /// orgsync's `batch.in_flight`.
    pub in_flight: usize,
    pub date: String,
}

/// `A: query 1, query_more 4; B: query 5, collections_create 5; logins 2`.
fn format_calls(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> String {
    let side = |org: &str, calls: &BTreeMap<String, u64>| {
        let parts: Vec<String> = calls
            .iter()
            .filter(|(k, _)| k.as_str() != "login")
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if parts.is_empty() {
            format!("{org}: none")
        } else {
            format!("{org}: {}", parts.join(", "))
        }
    };
    let logins = a.get("login").copied().unwrap_or(0) + b.get("login").copied().unwrap_or(0);
    format!("{}; {}; logins {logins}", side("A", a), side("B", b))
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 {
        format!("{:.0} min {:.0} s", (s / 60.0).floor(), s % 60.0)
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.2} s")
    }
}

fn format_mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// The markdown report: the run's settings, the table, and how each figure was obtained.
pub fn markdown(info: &RunInfo, rows: &[CaseRow], findings: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# orgsync vs the MuleSoft template's algorithm, on sfsim\n"
    );
    let _ = writeln!(out, "- command: `{}`", info.command);
    let _ = writeln!(out, "- machine: {}", info.machine);
    let _ = writeln!(out, "- date: {}", info.date);
    let _ = writeln!(
        out,
        "- simulated round trip: {} ms per API call; page size {} (both); orgsync with \
         `batch.in_flight = {}` (the baseline is sequential, as the template); one direction A -> B; \
         every changed record passes the filter `Amount > 5000`. Rows without \"updates\": X \
         records new to B. Rows \"updates\" (`BENCH_UPDATES=1`): X records synced to B and \
         linked beforehand (not measured), then edited in A by a person",
        info.rtt_ms, info.page_size, info.in_flight
    );
    let _ = writeln!(
        out,
        "- seeded changes: written in calls of 1 to 100 records (deterministic mix), each call's \
         records sharing one timestamp, as in a real org (the baseline's losses depend on this \
         mix: it loses nothing when no two changes share a timestamp)\n"
    );
    let _ = writeln!(
        out,
        "| case | X | calls by kind | total calls | physical minimum | ratio to minimum | \
         wall time | records/s | peak RSS (at start) | records lost | how measured |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let how = match &r.measured {
            Measured::Full => "measured".to_string(),
            Measured::Sampled {
                full_rtt_ms,
                sample_pages,
                sample_calls,
                sample_wall,
            } => format!(
                "calls, losses, RSS: whole run at {full_rtt_ms} ms; time **extrapolated** from \
                 {sample_pages} pages ({sample_calls} calls, {}) at {} ms",
                format_duration(*sample_wall),
                info.rtt_ms
            ),
        };
        let wall = match r.measured {
            Measured::Full => format_duration(r.wall),
            Measured::Sampled { .. } => format!("~{}", format_duration(r.wall)),
        };
        let lost = if r.duplicates > 0 {
            format!("{} (+{} duplicates)", r.lost, r.duplicates)
        } else {
            r.lost.to_string()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1}x | {} | {:.0} | {} ({}) | {} | {} |",
            r.case,
            r.x,
            format_calls(&r.calls_a, &r.calls_b),
            r.total,
            physical_minimum(r.x),
            r.ratio_to_minimum(),
            wall,
            r.records_per_second(),
            format_mb(r.peak_rss_kb),
            format_mb(r.start_rss_kb),
            lost,
            how
        );
    }
    let _ = writeln!(
        out,
        "\nTotal calls: calls counted against the orgs' daily allowance, A and B together \
         (logins are listed by kind but not counted, as Salesforce does). Physical minimum: \
         ceil(X/{QUERY_BATCH_MAX}) queries + ceil(X/{WRITE_BATCH_MAX}) writes. Wall time: from \
         the logins to the end of the direction pass. Peak RSS: VmHWM of a child process that \
         ran only that sync (the orgs run in the parent); in brackets its RSS just before the \
         sync. Records lost: changed records that B does not hold with A's values after the run."
    );
    for r in rows {
        if r.max_on_one_org > DAILY_ALLOWANCE {
            let _ = writeln!(
                out,
                "\n{} at X = {} spends {} calls on one org: more than a whole daily allowance of \
                 {DAILY_ALLOWANCE} (the benchmark raises the simulated limit to finish).",
                r.case, r.x, r.max_on_one_org
            );
        }
    }
    if !findings.is_empty() {
        let _ = writeln!(out, "\n## What the figures say\n");
        for f in findings {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

/// Checks of the functions above; run by the benchmark binary when it is not benchmarking
/// (e.g. under `cargo test --benches`), because a `harness = false` target has no `#[test]`.
pub fn self_check() -> anyhow::Result<()> {
    ensure!(physical_minimum(1_000) == 1 + 5);
    ensure!(physical_minimum(10_000) == 5 + 50);
    ensure!(physical_minimum(100_000) == 50 + 500);
    ensure!(physical_minimum(1) == 2);

    let groups = tie_groups(10_000, 7);
    ensure!(groups.iter().sum::<usize>() == 10_000);
    ensure!(groups.iter().all(|g| (1..=100).contains(g)));
    ensure!(groups == tie_groups(10_000, 7), "the mix is reproducible");
    ensure!(tie_groups(0, 7).is_empty());
    let mean = 10_000.0 / groups.len() as f64;
    ensure!((35.0..65.0).contains(&mean), "mean group size {mean}");

    let before = serde_json::json!({"calls": {"query": 3, "login": 1}, "api_calls_total": 3});
    let after = serde_json::json!({
        "calls": {"query": 5, "login": 1, "collections_create": 2}, "api_calls_total": 7
    });
    let calls = calls_between(&before, &after);
    ensure!(calls.get("query") == Some(&2));
    ensure!(calls.get("collections_create") == Some(&2));
    ensure!(!calls.contains_key("login"), "unchanged kinds are left out");
    ensure!(api_calls_between(&before, &after) == 4);
    let mut sum = calls.clone();
    add_calls(&mut sum, &calls);
    ensure!(sum.get("query") == Some(&4));

    let status = "Name:\tx\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t  2000 kB\n";
    ensure!(status_kb(status, "VmHWM") == Some(12345));
    ensure!(status_kb(status, "VmRSS") == Some(2000));
    ensure!(status_kb(status, "VmSwap").is_none());

    let e = extrapolate(Duration::from_secs(10), 100, 1000);
    ensure!(e == Duration::from_secs(100), "{e:?}");
    ensure!(extrapolate(Duration::from_secs(3), 0, 10) == Duration::from_secs(3));

    let row = CaseRow {
        case: "orgsync".into(),
        x: 1000,
        calls_a: calls.clone(),
        calls_b: BTreeMap::from([("login".to_string(), 1)]),
        total: 12,
        max_on_one_org: 7,
        wall: Duration::from_secs(2),
        synced: 1000,
        lost: 0,
        duplicates: 0,
        peak_rss_kb: 20480,
        start_rss_kb: 10240,
        measured: Measured::Full,
    };
    ensure!((row.ratio_to_minimum() - 2.0).abs() < 1e-9);
    ensure!((row.records_per_second() - 500.0).abs() < 1e-9);
    let info = RunInfo {
        command: "cargo bench".into(),
        machine: "test".into(),
        rtt_ms: 100,
        page_size: 200,
        in_flight: 4,
        date: "today".into(),
    };
    let md = markdown(&info, &[row], &["a finding".into()]);
    ensure!(
        md.contains(
            "| orgsync | 1000 | A: collections_create 2, query 2; B: none; logins 1 | 12 | 6 | 2.0x |"
        ),
        "{md}"
    );
    ensure!(md.contains("20.0 MB (10.0 MB)"));
    ensure!(md.contains("- a finding"));
    ensure!(format_duration(Duration::from_secs(125)) == "2 min 5 s");
    Ok(())
}
