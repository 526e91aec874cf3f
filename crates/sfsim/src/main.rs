//! The `sfsim` binary: serves one simulated Salesforce org per `--org NAME=ADDR`, logs to
//! stderr, and runs until SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sfsim::{OrgConfig, SimOrg, start_org};
use tracing::{error, info};

/// A Salesforce org simulator for tests, benchmarks and demos.
#[derive(Debug, Parser)]
#[command(name = "sfsim", version, about)]
struct Args {
    /// An org to serve, as NAME=HOST:PORT (repeat for several orgs), e.g. A=127.0.0.1:8701.
    #[arg(long = "org", value_name = "NAME=ADDR", required = true, value_parser = parse_org)]
    orgs: Vec<(String, String)>,
    /// Seed of the org ids (same name and seed give the same org id).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Delay added to every API call, in milliseconds (a simulated round trip).
    #[arg(long = "latency-ms", default_value_t = 0)]
    latency_ms: u64,
}

fn parse_org(s: &str) -> Result<(String, String), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=HOST:PORT, got {s:?}"))?;
    if name.trim().is_empty() || addr.trim().is_empty() {
        return Err(format!("expected NAME=HOST:PORT, got {s:?}"));
    }
    Ok((name.trim().to_string(), addr.trim().to_string()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut orgs: Vec<SimOrg> = Vec::new();
    for (name, addr) in &args.orgs {
        if orgs.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
            return Err(format!("org {name} is given twice"));
        }
        let config = OrgConfig {
            name: name.clone(),
            seed: args.seed,
            latency_ms: args.latency_ms,
            jwt_public_key_pem: None,
        };
        let org = start_org(config, addr)
            .await
            .map_err(|e| format!("cannot start org {name} on {addr}: {e}"))?;
        info!(
            org = %org.name,
            url = %org.base_url,
            org_id = %org.org_id,
            users = %format!("{}, {}", org.integration_username, org.human_username),
            "org ready"
        );
        orgs.push(org);
    }
    wait_for_signal().await?;
    info!("shutting down");
    for org in orgs {
        org.shutdown().await;
    }
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("SIGINT handler: {e}")),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Result<(), String> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("Ctrl-C handler: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_arguments() {
        assert_eq!(
            parse_org("A=127.0.0.1:8701"),
            Ok(("A".to_string(), "127.0.0.1:8701".to_string()))
        );
        assert!(parse_org("A").is_err());
        assert!(parse_org("=127.0.0.1:1").is_err());
        assert!(parse_org("A=").is_err());
        let args = Args::try_parse_from([
            "sfsim",
            "--org",
            "A=127.0.0.1:0",
            "--org",
            "B=127.0.0.1:0",
            "--latency-ms",
            "5",
        ])
        .expect("parsed");
        assert_eq!(args.orgs.len(), 2);
        assert_eq!(args.latency_ms, 5);
        assert!(Args::try_parse_from(["sfsim"]).is_err());
    }
}
