//! `orgsync reconcile [--json] [--sample N]` (issue 14, part 1): proves that the two orgs
//! agree, or says exactly what differs. Both orgs' filtered records are read in full (`read`:
//! REST, or a Bulk query job above `batch.bulk_read_threshold`) into the staging table
//! `reconcile_rows`; the live links' records a filtered read did not return are looked up by
//! Id without the filter (`read::ReadContext::look_up_unread`: a live one left the filter, is
//! staged and counted in `outside_filter`, not an orphan); then everything is compared with
//! `links` in SQL (`store::reconcile`), the linked pairs field
//! by field in Rust one pair at a time (`compare`), and classified with counts and up to N
//! samples per class (`report`). The report is printed (text, or `--json`) and kept in the
//! store as the last one (`reconcile_reports`), which `status`, `/status` and `/metrics` show
//! (`section`).
//!
//! With `--repair` (part 2, `repair`) every difference found but `ambiguous` is then repaired
//! through the sync engine, and the report counts what was repaired per class.
//!
//! The daemon runs the same [`reconcile`] then [`repair_and_keep`] in the background with
//! `reconcile.frequency` (`daemon::reconcile_tick`).
//!
//! Exit codes: 0 when the orgs agree (with `--repair`: when every difference found was
//! repaired), 1 when differences were found (remain, with `--repair`) or a run failed, 2 for
//! bad configuration. Without `--repair` nothing is written to either org.

pub mod compare;
pub mod read;
pub mod repair;
pub mod report;
mod section;

pub use section::{ReconcileStatus, status_line};

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use chrono::Utc;
use serde_json::Value;

use crate::config::Settings;
use crate::salesforce::{Client, ClientOptions};
use crate::store::{Org, Store, StoredReconcileReport, format_timestamp};
use crate::sync::Mapping;
use compare::{Tally, canonical_of, carried, field_diffs};
use report::{Class, ClassResult, Report, Sample};

/// The configuration cannot run a reconcile (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("bad configuration for reconcile: {0}")]
pub struct ConfigError(pub String);

/// Samples kept per class by the daemon's background run (the command's `--sample` default).
pub const DEFAULT_SAMPLE: usize = 10;

/// `orgsync reconcile`'s options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub json: bool,
    /// Samples kept per class.
    pub sample: usize,
    /// Repair what was found (`repair`).
    pub repair: bool,
}

/// Runs a reconcile, prints the report to `out`; `Ok(true)` when the orgs agree.
pub async fn run(
    settings: &Settings,
    options: Options,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let mapping = Mapping::from_settings(settings).map_err(|e| ConfigError(e.to_string()))?;
    for f in &settings.sync.match_by {
        if mapping.field_name(Org::A, f).is_none() {
            return Err(ConfigError(format!(
                "sync.match_by names {f:?}, which is not one of sync.fields"
            ))
            .into());
        }
    }
    let store = Store::open_state(&settings.state)
        .await
        .context("opening the state store")?;
    // `--repair` writes to the orgs like a cycle: one syncing process per state database
    // (refused beside a running daemon, as `sync --once` is).
    let _lock = if options.repair {
        crate::store::StateLock::acquire(&settings.state.url).await?
    } else {
        None
    };
    let client_options = ClientOptions::for_settings(settings);
    let a = Client::with_options(&settings.a, client_options.clone())
        .map_err(|e| ConfigError(format!("org a: {e}")))?;
    let b = Client::with_options(&settings.b, client_options)
        .map_err(|e| ConfigError(format!("org b: {e}")))?;
    let (report, found) = reconcile(
        settings,
        &mapping,
        &store,
        [&a, &b],
        options.sample,
        options.repair,
        true,
    )
    .await?;
    let report = repair_and_keep(settings, &mapping, &store, [&a, &b], report, found).await?;
    if options.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report::render_text(&report))?;
    }
    Ok(report.remaining() == 0)
}

/// After [`reconcile`]: repairs what it found when it collected it (`--repair`,
/// `reconcile.repair`), then keeps the report as the last one in `store`.
pub async fn repair_and_keep(
    settings: &Settings,
    mapping: &Mapping,
    store: &Store,
    clients: [&Client; 2],
    mut report: Report,
    found: repair::Found,
) -> anyhow::Result<Report> {
    if found.enabled {
        let repaired = repair::repair(settings, mapping, store, clients, found).await?;
        report.set_repaired(repaired);
    }
    store
        .save_reconcile_report(&StoredReconcileReport {
            run_id: report.run_id.clone(),
            object: report.object.clone(),
            started_at: crate::store::parse_timestamp(&report.started_at)?,
            finished_at: crate::store::parse_timestamp(&report.finished_at)?,
            differences: i64::try_from(report.total).unwrap_or(i64::MAX),
            report: serde_json::to_string(&report)?,
        })
        .await?;
    Ok(report)
}

/// The integration user of `client`'s org, when the sync skips its changes.
async fn skipped_user(settings: &Settings, client: &Client) -> anyhow::Result<Option<String>> {
    if !settings.sync.skip_integration_user_changes {
        return Ok(None);
    }
    Ok(Some(client.user_id().await.with_context(|| {
        format!("learning the integration user of org {}", client.org_name())
    })?))
}

/// Reads, compares and classifies; the staged rows are dropped at the end. `collect`: keep
/// the differences' ids for a repair; `progress`: the progress line on a terminal (the
/// command's, not the daemon's).
pub async fn reconcile(
    settings: &Settings,
    mapping: &Mapping,
    store: &Store,
    clients: [&Client; 2],
    sample: usize,
    collect: bool,
    progress: bool,
) -> anyhow::Result<(Report, repair::Found)> {
    let started_at = Utc::now();
    let run_id = format!("{}", started_at.format("%Y%m%dT%H%M%S%.3fZ"));
    store.start_reconcile_run().await?;
    let ctx = read::ReadContext {
        settings,
        mapping,
        store,
        run_id: &run_id,
        progress: [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))],
    };
    let compared = Arc::new(AtomicU64::new(0));
    let ticker = if progress {
        progress_line(ctx.progress.clone(), compared.clone())
    } else {
        None
    };
    let mut found = repair::Found {
        enabled: collect,
        ..repair::Found::default()
    };
    let result = compare_all(&ctx, clients, &compared, sample, started_at, &mut found).await;
    if let Some(ticker) = ticker {
        ticker.abort();
        let _ = writeln!(std::io::stderr());
    }
    store.finish_reconcile_run(&run_id).await?;
    Ok((result?, found))
}

async fn compare_all(
    ctx: &read::ReadContext<'_>,
    clients: [&Client; 2],
    compared: &AtomicU64,
    sample: usize,
    started_at: chrono::DateTime<Utc>,
    found: &mut repair::Found,
) -> anyhow::Result<Report> {
    let collect = found.enabled;
    let (store, run_id, object) = (ctx.store, ctx.run_id, ctx.settings.sync.object.as_str());
    let (mut read_a, mut read_b) = tokio::try_join!(
        ctx.read_org(Org::A, clients[0]),
        ctx.read_org(Org::B, clients[1])
    )?;
    // Linked records missing from a filtered read: gone, or only outside the filter.
    let ((_, calls_a), (_, calls_b)) = tokio::try_join!(
        ctx.look_up_unread(Org::A, clients[0]),
        ctx.look_up_unread(Org::B, clients[1])
    )?;
    for (read, calls) in [(&mut read_a, calls_a), (&mut read_b, calls_b)] {
        read.api_calls += calls;
        read.lookup_calls = calls;
    }
    let skip_a = skipped_user(ctx.settings, clients[0]).await?;
    let skip_b = skipped_user(ctx.settings, clients[1]).await?;
    let stamp = |t: Option<chrono::DateTime<Utc>>| t.map(format_timestamp);
    let mut tally = Tally::new(sample);
    let mut outside = ClassResult::default();

    for (org, class) in [(Org::A, Class::MissingInB), (Org::B, Class::MissingInA)] {
        store
            .reconcile_missing(run_id, object, org, |r| {
                tally.add(
                    class,
                    [Sample::record(org, &r.record_id, stamp(r.system_modstamp))],
                );
                if collect {
                    match org {
                        Org::A => found.missing_in_b.push(r.record_id.clone()),
                        Org::B => found.missing_in_a.push(r.record_id.clone()),
                    }
                }
            })
            .await?;
    }
    store
        .reconcile_orphans(run_id, object, |r| {
            let note = match (r.state.as_str(), r.a_present, r.b_present) {
                ("tombstone", _, _) => "tombstone whose records both live",
                (_, false, false) => "live link, both records gone",
                (_, false, true) => "live link, the record in A is gone",
                _ => "live link, the record in B is gone",
            };
            if collect {
                found.orphans.push(r.clone());
            }
            tally.add(
                Class::OrphanLink,
                [Sample {
                    a_id: Some(r.a_id),
                    b_id: Some(r.b_id),
                    note: Some(note.to_string()),
                    ..Sample::default()
                }],
            );
        })
        .await?;
    store
        .reconcile_unlinked_matches(run_id, object, |r| {
            if collect {
                found.unlinked.push((r.a_id.clone(), r.b_id.clone()));
            }
            tally.add(
                Class::UnlinkedMatch,
                [Sample {
                    a_id: Some(r.a_id),
                    b_id: Some(r.b_id),
                    match_key: Some(r.match_key),
                    ..Sample::default()
                }],
            );
        })
        .await?;
    store
        .reconcile_ambiguous(run_id, object, |r| {
            let note = format!(
                "{} records of org {} share the key ({} .. {})",
                r.records, r.org, r.first_id, r.last_id
            );
            let (a_id, b_id) = match r.org {
                Org::A => (Some(r.first_id), None),
                Org::B => (None, Some(r.first_id)),
            };
            tally.add(
                Class::Ambiguous,
                [Sample {
                    a_id,
                    b_id,
                    match_key: Some(r.match_key),
                    note: Some(note),
                    ..Sample::default()
                }],
            );
        })
        .await?;
    store
        .reconcile_pairs(run_id, object, |p| {
            compared.fetch_add(1, Ordering::Relaxed);
            if p.a_outside || p.b_outside {
                outside.count += 1;
                if outside.samples.len() < sample {
                    let note = match (p.a_outside, p.b_outside) {
                        (true, true) => "both records left sync.filter",
                        (true, false) => "the record in A left sync.filter",
                        _ => "the record in B left sync.filter",
                    };
                    outside.samples.push(Sample {
                        a_id: Some(p.a_id.clone()),
                        b_id: Some(p.b_id.clone()),
                        a_modstamp: stamp(p.a_modstamp),
                        b_modstamp: stamp(p.b_modstamp),
                        note: Some(note.to_string()),
                        ..Sample::default()
                    });
                }
            }
            let diffs = field_diffs(
                ctx.mapping,
                &canonical_of(&p.a_vals),
                &canonical_of(&p.b_vals),
            );
            if diffs.is_empty() {
                return;
            }
            let explained = carried(
                p.a_modstamp,
                p.link_a_modstamp,
                p.a_last_modified_by.as_deref(),
                skip_a.as_deref(),
            ) || carried(
                p.b_modstamp,
                p.link_b_modstamp,
                p.b_last_modified_by.as_deref(),
                skip_b.as_deref(),
            );
            let class = if explained {
                Class::ValueDriftExplained
            } else {
                Class::ValueDriftUnexplained
            };
            if collect {
                let pair = (p.a_id.clone(), p.b_id.clone());
                if explained {
                    found.drift_explained.push(pair);
                } else {
                    found.drift_unexplained.push(pair);
                }
            }
            let samples: Vec<Sample> = diffs
                .into_iter()
                .map(|(field, a_value, b_value)| Sample {
                    a_id: Some(p.a_id.clone()),
                    b_id: Some(p.b_id.clone()),
                    field: Some(field),
                    a_value: Some(a_value),
                    b_value: Some(b_value),
                    a_modstamp: stamp(p.a_modstamp),
                    b_modstamp: stamp(p.b_modstamp),
                    ..Sample::default()
                })
                .collect();
            tally.add(class, samples);
        })
        .await?;

    let total = tally.total();
    let differences: BTreeMap<String, ClassResult> = tally
        .into_parts()
        .into_iter()
        .map(|(class, count, samples)| (class.as_str().to_string(), ClassResult { count, samples }))
        .collect();
    let mut read = BTreeMap::new();
    read.insert("a".to_string(), read_a);
    read.insert("b".to_string(), read_b);
    let report = Report {
        run_id: run_id.to_string(),
        object: object.to_string(),
        started_at: format_timestamp(started_at),
        finished_at: format_timestamp(Utc::now()),
        read,
        compared_pairs: compared.load(Ordering::Relaxed),
        differences,
        total,
        outside_filter: outside,
        repaired: None,
    };
    tracing::info!(
        total,
        compared_pairs = report.compared_pairs,
        missing_in_b = report.count(Class::MissingInB),
        missing_in_a = report.count(Class::MissingInA),
        value_drift_explained = report.count(Class::ValueDriftExplained),
        value_drift_unexplained = report.count(Class::ValueDriftUnexplained),
        orphan_link = report.count(Class::OrphanLink),
        unlinked_match = report.count(Class::UnlinkedMatch),
        ambiguous = report.count(Class::Ambiguous),
        outside_filter = report.outside_filter.count,
        api_calls_a = report.read.get("a").map_or(0, |r| r.api_calls),
        api_calls_b = report.read.get("b").map_or(0, |r| r.api_calls),
        "reconcile: done"
    );
    Ok(report)
}

/// A progress line on stderr, redrawn every half second, when stderr is a terminal.
fn progress_line(
    read: [Arc<AtomicU64>; 2],
    compared: Arc<AtomicU64>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            let _ = write!(
                std::io::stderr(),
                "\rreconcile: read A {}, B {}; compared {} pairs",
                read[0].load(Ordering::Relaxed),
                read[1].load(Ordering::Relaxed),
                compared.load(Ordering::Relaxed)
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }))
}

/// The last stored report, parsed (for `status` and the metrics); `None` before the first
/// run, or when it cannot be read as a report.
pub fn parse_stored(stored: &StoredReconcileReport) -> Option<Report> {
    serde_json::from_str::<Report>(&stored.report).ok()
}

/// The JSON of a stored report (for `status`): the report itself, or `null`.
pub fn stored_json(stored: Option<&StoredReconcileReport>) -> Value {
    stored
        .and_then(|s| serde_json::from_str(&s.report).ok())
        .unwrap_or(Value::Null)
}
