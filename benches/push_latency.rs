//! Change-to-target latency of the push trigger on sfsim: a human creates an opportunity in
//! org A, sfsim's Outbound Messaging posts it to the listener, the worker fetches it fresh and
//! writes it to org B. Reports p50 and p99 over `PUSH_BENCH_CHANGES` changes (default 200),
//! one at a time. A benchmark, not a test: `cargo bench --bench push_latency`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use orgsync::config;
use orgsync::daemon::Daemon;
use orgsync::server;
use serde_json::{Map, json};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let changes: usize = std::env::var("PUSH_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(changes.max(1)))
}

async fn run(changes: usize) -> anyhow::Result<()> {
    let a = sfsim::start_org(sfsim::OrgConfig::named("A"), "127.0.0.1:0").await?;
    let b = sfsim::start_org(sfsim::OrgConfig::named("B"), "127.0.0.1:0").await?;
    let dir = tempfile::tempdir()?;
    let toml = format!(
        "[http]\nport = 0\n[scheduler]\nfrequency = \"1h\"\n[trigger]\npolicy = \"push\"\n\
         [watermark]\ndefault = \"2000-01-01T00:00:00.000Z\"\n[sync]\nfilter = false\n\
         [state]\nurl = {state}\n\
         [orgs.a]\nlogin_url = {a}\nusername = \"integration@a.sim\"\n\
         [orgs.b]\nlogin_url = {b}\nusername = \"integration@b.sim\"\n",
        state = json!(format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        )),
        a = json!(a.base_url),
        b = json!(b.base_url),
    );
    let vars: HashMap<String, String> = [
        ("ORGSYNC__ORGS__A__PASSWORD", "password"),
        ("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token"),
        ("ORGSYNC__ORGS__A__OUTBOUND_SECRET", "bench"),
        ("ORGSYNC__ORGS__B__PASSWORD", "password"),
        ("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token"),
        ("ORGSYNC__ORGS__B__OUTBOUND_SECRET", "bench"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = config::load_str("bench", &[("bench", &toml)], &vars)?;
    let daemon = Arc::new(Daemon::new(&settings).await?);
    let cancel = CancellationToken::new();
    let running = server::start(
        daemon,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        cancel.clone(),
    )
    .await?;
    a.set_outbound(sfsim::outbound::OutboundConfig {
        endpoint_url: Some(format!("http://{}/outbound/a?secret=bench", running.addr)),
        enabled: true,
        retry_base_delay_ms: 50,
        ..sfsim::outbound::OutboundConfig::default()
    });

    let mut latencies = Vec::with_capacity(changes);
    for i in 0..changes {
        let name = format!("Latency {i}");
        let mut record = Map::new();
        record.insert("Name".into(), json!(name));
        record.insert("StageName".into(), json!("Prospecting"));
        record.insert("CloseDate".into(), json!("2026-12-31"));
        record.insert("Amount".into(), json!(10_000 + i));
        let started = Instant::now();
        a.seed_records("Opportunity", Some(&a.human_username), vec![record])
            .map_err(|e| anyhow::anyhow!("seeding A: {e:?}"))?;
        let soql = format!("SELECT Id FROM Opportunity WHERE Name = '{name}'");
        loop {
            let rows = b
                .db()
                .query(&soql, false, "62.0", chrono::Utc::now())
                .map_err(|e| anyhow::anyhow!("reading B: {e:?}"))?;
            if !rows.is_empty() {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("change {i} did not reach B within a minute");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(started.elapsed());
    }
    cancel.cancel();
    running.wait().await.context("stopping the listener")?;

    latencies.sort();
    let pick = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[index.min(latencies.len() - 1)]
    };
    println!(
        "push change-to-target latency on sfsim ({changes} changes, one at a time, no added latency)"
    );
    println!("  p50 {:>8.2} ms", pick(0.50).as_secs_f64() * 1000.0);
    println!("  p99 {:>8.2} ms", pick(0.99).as_secs_f64() * 1000.0);
    println!("  max {:>8.2} ms", pick(1.0).as_secs_f64() * 1000.0);
    Ok(())
}
