//! `orgsync status`: what the daemon has done, read from the state store only (no Salesforce
//! call, so it works while an org is down or the daily API limit is spent).
//!
//! [`collect`] reads the store into a [`StatusReport`]; [`render_text`] and the report's
//! `Serialize` (the `--json` output, and later `GET /status`) are pure. The JSON shape is a
//! stable interface: fields may be added, never renamed or removed.

mod bulk;
mod deletes;
mod ha;

pub use bulk::{BulkJobStatus, BulkStatus, bulk_status};
pub use deletes::DeletedCheckStatus;
pub use ha::{HaStatus, LeaderStatus, StandbyStatus, ha_status};

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::store::{
    AuthFailed, Cycle, CycleOutcome, Direction, Org, Store, StoreCounts, StoreError, WatermarkRow,
    format_timestamp,
};

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// The configuration environment (`dev`, `prod`, ...).
    pub env: String,
    /// The synced object (`sync.object`).
    pub object: String,
    pub state: StateInfo,
    /// Per org and object; the configured object always appears for both orgs.
    pub watermarks: Vec<WatermarkStatus>,
    /// The last cycle of each direction, `null` before the first.
    pub last_cycles: BTreeMap<&'static str, Option<CycleStatus>>,
    /// When each direction last finished a pass with every record read durably handled
    /// (outcome `ok` or `partial`), `null` before the first.
    pub last_success: BTreeMap<&'static str, Option<String>>,
    /// Per org: `auth_failed` while its logins are refused for their credentials (the daemon
    /// backs off, 1 min doubling to 1 h), else `null`.
    pub orgs: BTreeMap<&'static str, OrgStatus>,
    pub links: LinkCounts,
    pub failures: FailureCounts,
    pub inbox: InboxCounts,
    /// The getDeleted safety net, per org and object checked (empty before the first check).
    pub deleted_checks: Vec<DeletedCheckStatus>,
    /// Bulk API 2.0 jobs (issue 16): by state, the rows they moved, and the open ones.
    pub bulk: BulkStatus,
    /// Replicas (PostgreSQL; absent on SQLite, where one process syncs): the lease's holder
    /// and the standbys seen recently; on `/status`, this process's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaStatus>,
    /// The last `orgsync reconcile` (issue 14), `null` before the first.
    pub reconcile: Option<crate::reconcile::ReconcileStatus>,
}

/// Which state database the report comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateInfo {
    /// `state.url`.
    pub url: String,
    /// False when the database file does not exist yet (nothing has run with this
    /// configuration, or `state.url` is relative and this is another working directory).
    pub exists: bool,
}

/// One org's watermark for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatermarkStatus {
    pub org: Org,
    pub object: String,
    /// `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub value: String,
    /// `"stored"`, or `"default"` when nothing was synced yet (`watermark.default`).
    pub source: &'static str,
}

/// What the daemon last saw of an org's logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct OrgStatus {
    /// `"ok"`, or `"auth_failed"` while logins are refused.
    pub state: &'static str,
    pub auth_failed: Option<AuthFailed>,
}

/// A cycle, flattened for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleStatus {
    pub id: i64,
    /// The cycle's number, shared by its two directions (and their log lines' `cycle`).
    pub cycle: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: CycleOutcome,
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub linked: u64,
    pub skipped: u64,
    pub failed: u64,
    pub conflicts: u64,
    pub api_calls: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkCounts {
    /// Live links (the pairs being synced).
    pub total: u64,
    /// Live links per object.
    pub by_object: BTreeMap<String, u64>,
    /// Links per state (`live`, `unlinked`, `tombstone`), every state present.
    pub by_state: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCounts {
    /// Transient, retried on a timer.
    pub pending: u64,
    /// Needs an edit: waits for its source record to change.
    pub waiting: u64,
    /// Needs an operator, or out of attempts.
    pub dead: u64,
    /// Every class (`transient`, `needs_edit`, `needs_operator`) with its count.
    pub by_class: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxCounts {
    /// Notifications received and not yet processed, both orgs.
    pub pending: u64,
    pub by_org: BTreeMap<String, u64>,
    /// Per org, seconds since the oldest unprocessed notification was received (0 when none
    /// is pending): a row the worker cannot process shows here, growing.
    pub oldest_age_seconds: BTreeMap<String, u64>,
}

/// Seconds since each org's oldest unprocessed notification was received, at `now`, for
/// both orgs (0 when an org has none pending; never negative, whatever the clocks do).
pub fn inbox_ages(
    oldest: &BTreeMap<Org, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> BTreeMap<String, u64> {
    [Org::A, Org::B]
        .iter()
        .map(|org| {
            let age = oldest
                .get(org)
                .map(|at| u64::try_from((now - *at).num_seconds()).unwrap_or(0))
                .unwrap_or(0);
            (org.as_str().to_string(), age)
        })
        .collect()
}

/// Builds the report from what the store returned (pure).
pub fn build_report(
    settings: &Settings,
    exists: bool,
    stored: &[WatermarkRow],
    last_cycles: &[(Direction, Option<Cycle>)],
    counts: &StoreCounts,
) -> StatusReport {
    let mut watermarks = Vec::new();
    for org in [Org::A, Org::B] {
        let row = stored
            .iter()
            .find(|w| w.org == org && w.object == settings.sync.object);
        watermarks.push(match row {
            Some(w) => WatermarkStatus {
                org,
                object: w.object.clone(),
                value: format_timestamp(w.value),
                source: "stored",
            },
            None => WatermarkStatus {
                org,
                object: settings.sync.object.clone(),
                value: format_timestamp(settings.watermark.default),
                source: "default",
            },
        });
    }
    for w in stored.iter().filter(|w| w.object != settings.sync.object) {
        watermarks.push(WatermarkStatus {
            org: w.org,
            object: w.object.clone(),
            value: format_timestamp(w.value),
            source: "stored",
        });
    }
    let last_cycles = last_cycles
        .iter()
        .map(|(direction, cycle)| (direction.as_str(), cycle.as_ref().map(cycle_status)))
        .collect();
    let mut by_org: BTreeMap<String, u64> = [Org::A, Org::B]
        .iter()
        .map(|o| (o.as_str().to_string(), 0))
        .collect();
    by_org.extend(counts.inbox_pending.clone());
    StatusReport {
        env: settings.env.clone(),
        object: settings.sync.object.clone(),
        state: StateInfo {
            url: crate::domain::redact_url(&settings.state.url),
            exists,
        },
        watermarks,
        last_cycles,
        last_success: Direction::BOTH.iter().map(|d| (d.as_str(), None)).collect(),
        orgs: [Org::A, Org::B]
            .iter()
            .map(|o| {
                (
                    o.as_str(),
                    OrgStatus {
                        state: "ok",
                        auth_failed: None,
                    },
                )
            })
            .collect(),
        links: LinkCounts {
            total: counts.links.values().sum(),
            by_object: counts.links.clone(),
            by_state: counts.links_by_state.clone(),
        },
        failures: FailureCounts {
            pending: counts.failures_pending,
            waiting: counts.failures_waiting,
            dead: counts.failures_dead,
            by_class: counts.failures_by_class.clone(),
        },
        inbox: InboxCounts {
            pending: by_org.values().sum(),
            by_org,
            // Filled in by `collect`, which reads the receipt times.
            oldest_age_seconds: inbox_ages(&BTreeMap::new(), Utc::now()),
        },
        // Filled in by `collect`.
        deleted_checks: Vec::new(),
        ha: None,
        bulk: BulkStatus::default(),
        reconcile: None,
    }
}

fn cycle_status(cycle: &Cycle) -> CycleStatus {
    CycleStatus {
        id: cycle.id,
        cycle: cycle.cycle,
        started_at: format_timestamp(cycle.started_at),
        finished_at: cycle.finished_at.map(format_timestamp),
        outcome: cycle.outcome,
        read: cycle.counts.read,
        created: cycle.counts.created,
        updated: cycle.counts.updated,
        linked: cycle.counts.linked,
        skipped: cycle.counts.skipped,
        failed: cycle.counts.failed,
        conflicts: cycle.counts.conflicts,
        api_calls: cycle.counts.api_calls,
        error: cycle.error.clone(),
    }
}

/// Reads the store and builds the report.
pub async fn collect(store: &Store, settings: &Settings) -> Result<StatusReport, StoreError> {
    let stored = store.watermarks().await?;
    let mut cycles = Vec::new();
    for direction in Direction::BOTH {
        cycles.push((direction, store.last_cycle(direction).await?));
    }
    let counts = store.counts().await?;
    let mut report = build_report(settings, true, &stored, &cycles, &counts);
    for direction in Direction::BOTH {
        let at = store.last_success(direction).await?;
        report
            .last_success
            .insert(direction.as_str(), at.map(format_timestamp));
    }
    for org in [Org::A, Org::B] {
        if let Some(failed) = store.auth_failed(org).await? {
            report.orgs.insert(
                org.as_str(),
                OrgStatus {
                    state: "auth_failed",
                    auth_failed: Some(failed),
                },
            );
        }
    }
    report.inbox.oldest_age_seconds =
        inbox_ages(&store.oldest_pending_notifications().await?, Utc::now());
    report.deleted_checks = store
        .deleted_checks()
        .await?
        .iter()
        .map(DeletedCheckStatus::of)
        .collect();
    report.bulk = bulk_status(&store.bulk_summary().await?, &store.bulk_jobs(50).await?);
    if store.backend() == crate::store::Backend::Postgres {
        let ttl = settings.ha.lease_ttl;
        let (lease, _) = store.sync_lease().await?;
        let (seen, now) = store.replicas_seen(ttl * 3).await?;
        report.ha = Some(ha_status(lease.as_ref(), &seen, now, ttl));
    }
    report.reconcile = store
        .last_reconcile_report()
        .await?
        .as_ref()
        .and_then(crate::reconcile::ReconcileStatus::of);
    Ok(report)
}

/// The report as a table for people (pure).
pub fn render_text(report: &StatusReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        out,
        "orgsync status (env {}, object {})",
        report.env, report.object
    );
    if !report.state.exists {
        let _ = writeln!(
            out,
            "No state database at {} yet: nothing has been synced with this configuration \
             (a relative state.url is resolved from the working directory).",
            report.state.url
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Watermarks");
    for w in &report.watermarks {
        let note = if w.source == "default" {
            "  (default: nothing synced yet)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {:<3} {:<20} {}{}", w.org, w.object, w.value, note);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Last cycle");
    for (direction, cycle) in &report.last_cycles {
        match cycle {
            None => {
                let _ = writeln!(out, "  {direction:<7} none yet");
            }
            Some(c) => {
                let _ = writeln!(
                    out,
                    "  {direction:<7} cycle {} {} started {}{}",
                    c.cycle,
                    c.outcome.as_str(),
                    c.started_at,
                    c.finished_at
                        .as_ref()
                        .map(|f| format!(", finished {f}"))
                        .unwrap_or_default(),
                );
                let _ = writeln!(
                    out,
                    "          read {}  created {}  updated {}  linked {}  skipped {}  failed {}  conflicts {}  api calls {}",
                    c.read,
                    c.created,
                    c.updated,
                    c.linked,
                    c.skipped,
                    c.failed,
                    c.conflicts,
                    c.api_calls
                );
                if let Some(error) = &c.error {
                    let _ = writeln!(out, "          error: {error}");
                }
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Last successful cycle");
    for (direction, at) in &report.last_success {
        let _ = writeln!(
            out,
            "  {direction:<7} {}",
            at.as_deref().unwrap_or("none yet")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Orgs");
    for (org, o) in &report.orgs {
        match &o.auth_failed {
            None => {
                let _ = writeln!(out, "  {org:<3} ok");
            }
            Some(f) => {
                let _ = writeln!(
                    out,
                    "  {org:<3} auth_failed: {}: {} ({} refused login(s) in a row{}{})",
                    f.code,
                    f.message,
                    f.attempts,
                    f.since
                        .map(|t| format!(", since {}", format_timestamp(t)))
                        .unwrap_or_default(),
                    f.next_attempt
                        .map(|t| format!(", next attempt {}", format_timestamp(t)))
                        .unwrap_or_default(),
                );
            }
        }
    }
    let _ = writeln!(out);
    let by_object = report
        .links
        .by_object
        .iter()
        .map(|(object, n)| format!("{object} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Live links first (the pairs synced), then the others only when there are some.
    let not_live = report
        .links
        .by_state
        .iter()
        .filter(|(state, n)| state.as_str() != "live" && **n > 0)
        .map(|(state, n)| format!(", {n} {state}"))
        .collect::<String>();
    let _ = writeln!(
        out,
        "Links     {} live{}{not_live}",
        report.links.total,
        if by_object.is_empty() {
            String::new()
        } else {
            format!(" ({by_object})")
        }
    );
    let _ = writeln!(
        out,
        "Failures  {} pending, {} waiting, {} dead{}",
        report.failures.pending,
        report.failures.waiting,
        report.failures.dead,
        if report.failures.by_class.values().sum::<u64>() > 0 {
            let classes: Vec<String> = report
                .failures
                .by_class
                .iter()
                .map(|(class, n)| format!("{n} {class}"))
                .collect();
            format!(" ({})  (orgsync failures list)", classes.join(", "))
        } else {
            String::new()
        }
    );
    let waiting = report
        .inbox
        .by_org
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(org, n)| {
            let age = report
                .inbox
                .oldest_age_seconds
                .get(org)
                .copied()
                .unwrap_or(0);
            format!("{org}: {n}, the oldest received {age} s ago")
        })
        .collect::<Vec<_>>()
        .join("; ");
    let _ = writeln!(
        out,
        "Inbox     {} unprocessed notifications{}",
        report.inbox.pending,
        if waiting.is_empty() {
            String::new()
        } else {
            format!(" ({waiting})")
        }
    );
    if let Some(ha) = &report.ha {
        ha::render_text(&mut out, ha);
    }
    deletes::render_text(&mut out, &report.deleted_checks);
    bulk::render_text(&mut out, &report.bulk);
    out.push_str(&crate::reconcile::status_line(report.reconcile.as_ref()));
    out
}

/// `orgsync status [--json]`: reads the store, writes the report to `out`. A missing
/// database file is reported as an empty state, and not created.
pub async fn run(
    settings: &Settings,
    json: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let file = Store::database_file(&settings.state.url).context("invalid state.url")?;
    let report = match file {
        Some(path) if !path.exists() => {
            tracing::warn!(path = %path.display(), "no state database yet");
            let none = [(Direction::AToB, None), (Direction::BToA, None)];
            build_report(settings, false, &[], &none, &StoreCounts::default())
        }
        _ => {
            let store = Store::open_state(&settings.state)
                .await
                .context("cannot open the state store")?;
            let report = collect(&store, settings)
                .await
                .context("cannot read the state store")?;
            store.close().await;
            report
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        writeln!(out, "{text}").context("cannot write the report")?;
    } else {
        write!(out, "{}", render_text(&report)).context("cannot write the report")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BulkJob, BulkSummary, CycleCounts, DeletedCheck, StoreCounts};
    use chrono::TimeZone;
    use std::collections::HashMap;

    fn settings() -> Settings {
        let vars: HashMap<String, String> = [
            ("ORGSYNC__ORGS__A__PASSWORD", "p"),
            ("ORGSYNC__ORGS__B__PASSWORD", "p"),
            ("ORGSYNC__ORGS__A__USERNAME", "a@x"),
            ("ORGSYNC__ORGS__B__USERNAME", "b@x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        crate::config::load_str("test", &[], &vars).expect("settings")
    }

    #[test]
    fn report_fills_defaults_and_lists_other_objects() {
        let at = chrono::Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let stored = vec![
            WatermarkRow {
                org: Org::B,
                object: "Opportunity".into(),
                value: at,
                updated_at: at,
            },
            WatermarkRow {
                org: Org::A,
                object: "Account".into(),
                value: at,
                updated_at: at,
            },
        ];
        let cycle = Cycle {
            id: 7,
            cycle: 4,
            direction: Direction::AToB,
            started_at: at,
            finished_at: None,
            counts: CycleCounts {
                read: 2,
                ..CycleCounts::default()
            },
            outcome: CycleOutcome::Running,
            error: None,
        };
        let mut counts = StoreCounts::default();
        counts.links.insert("Opportunity".into(), 3);
        counts.links.insert("Account".into(), 1);
        counts.links_by_state = BTreeMap::from([
            ("live".to_string(), 4),
            ("tombstone".to_string(), 0),
            ("unlinked".to_string(), 2),
        ]);
        counts.inbox_pending.insert("b".into(), 4);
        let report = build_report(
            &settings(),
            true,
            &stored,
            &[(Direction::AToB, Some(cycle)), (Direction::BToA, None)],
            &counts,
        );
        let sources: Vec<(Org, &str, &str)> = report
            .watermarks
            .iter()
            .map(|w| (w.org, w.object.as_str(), w.source))
            .collect();
        assert_eq!(
            sources,
            [
                (Org::A, "Opportunity", "default"),
                (Org::B, "Opportunity", "stored"),
                (Org::A, "Account", "stored"),
            ]
        );
        assert_eq!(report.links.total, 4);
        assert_eq!(report.inbox.pending, 4);
        assert_eq!(report.inbox.by_org["a"], 0);
        assert_eq!(report.inbox.oldest_age_seconds["a"], 0);
        let mut report = report;
        let received = at - chrono::Duration::seconds(90);
        report.inbox.oldest_age_seconds = inbox_ages(&BTreeMap::from([(Org::B, received)]), at);
        assert_eq!(report.inbox.oldest_age_seconds["b"], 90);
        assert_eq!(report.inbox.oldest_age_seconds["a"], 0);
        let text = render_text(&report);
        assert!(text.contains("cycle 4 running"), "{text}");
        assert!(text.contains("b_to_a  none yet"), "{text}");
        assert!(
            text.contains("Links     4 live (Account 1, Opportunity 3), 2 unlinked\n"),
            "{text}"
        );
        assert_eq!(report.links.by_state["unlinked"], 2);
        assert!(
            text.contains(
                "Inbox     4 unprocessed notifications (b: 4, the oldest received 90 s ago)"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["inbox"]["oldest_age_seconds"]["b"], 90);
        assert_eq!(json["last_cycles"]["a_to_b"]["outcome"], "running");
        assert!(json["last_cycles"]["b_to_a"].is_null());
    }

    #[test]
    fn a_getdeleted_hole_is_a_line_saying_a_reconcile_is_needed() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let none = [(Direction::AToB, None), (Direction::BToA, None)];
        let mut report = build_report(&settings(), true, &[], &none, &StoreCounts::default());
        let mut check = DeletedCheck {
            org: Org::B,
            object: "Opportunity".into(),
            next_start: at,
            last_checked_at: at,
            holes: 0,
            last_hole_at: None,
            last_hole_start: None,
            last_hole_earliest: None,
        };
        report.deleted_checks = vec![DeletedCheckStatus::of(&check)];
        assert!(
            !render_text(&report).contains("Deletes"),
            "no hole, no line"
        );
        check.holes = 2;
        check.last_hole_at = Some(at);
        check.last_hole_start = Some(at - chrono::Duration::hours(2));
        check.last_hole_earliest = Some(at - chrono::Duration::hours(1));
        report.deleted_checks = vec![DeletedCheckStatus::of(&check)];
        let text = render_text(&report);
        assert!(
            text.contains(
                "Deletes   b Opportunity: 2 getDeleted window hole(s), the latest seen \
                 2026-12-01T10:00:00.000Z (the delete log started 2026-12-01T09:00:00.000Z, \
                 after the window's start 2026-12-01T08:00:00.000Z): deletes may have been \
                 missed, a reconcile is needed (orgsync reconcile)\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["deleted_checks"][0]["holes"], 2);
        assert_eq!(json["deleted_checks"][0]["org"], "b");
    }

    #[tokio::test]
    async fn status_reads_the_holes_the_safety_net_stored() {
        let store = Store::open("sqlite::memory:").await.expect("store");
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let report = collect(&store, &settings()).await.expect("status");
        assert!(report.deleted_checks.is_empty());
        let write = crate::store::DeletedCheckWrite {
            next_start: at,
            checked_at: at,
            hole: Some((
                at - chrono::Duration::hours(2),
                at - chrono::Duration::hours(1),
            )),
        };
        store
            .record_deleted_check(Org::A, "Opportunity", &write)
            .await
            .expect("record");
        let report = collect(&store, &settings()).await.expect("status");
        assert_eq!(report.deleted_checks.len(), 1);
        assert_eq!(report.deleted_checks[0].holes, 1);
        let text = render_text(&report);
        assert!(
            text.contains("Deletes   a Opportunity: 1 getDeleted window hole(s)")
                && text.contains("a reconcile is needed"),
            "{text}"
        );
    }

    #[test]
    fn inbox_ages_are_per_org_zero_when_empty_and_never_negative() {
        let now = chrono::Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let oldest = BTreeMap::from([
            (Org::A, now - chrono::Duration::seconds(3_600)),
            // a receipt time ahead of this clock (another host wrote it)
            (Org::B, now + chrono::Duration::seconds(5)),
        ]);
        let ages = inbox_ages(&oldest, now);
        assert_eq!(ages["a"], 3_600);
        assert_eq!(ages["b"], 0);
        let none = inbox_ages(&BTreeMap::new(), now);
        assert_eq!(none, BTreeMap::from([("a".into(), 0), ("b".into(), 0)]));
    }

    #[test]
    fn the_reconcile_section_is_null_before_the_first_run() {
        let report = build_report(&settings(), true, &[], &[], &StoreCounts::default());
        assert!(render_text(&report).contains("Reconcile never run"));
        assert!(serde_json::to_value(&report).unwrap()["reconcile"].is_null());
    }

    #[test]
    fn the_bulk_section_counts_jobs_and_lists_the_open_ones() {
        let at = chrono::Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let job = |id: &str, state| BulkJob {
            job_id: id.into(),
            org: Org::A,
            object: "Opportunity".into(),
            operation: "query".into(),
            direction: Direction::AToB,
            cycle: 3,
            state,
            locator: None,
            rows_staged: 1500,
            rows_moved: 0,
            error: None,
            created_at: at,
            finished_at: None,
        };
        let summary = BulkSummary {
            open: 1,
            completed: 2,
            failed: 1,
            aborted: 0,
            rows_moved: 12000,
        };
        let jobs = [
            job("750A", crate::store::BulkJobState::Staging),
            job("750B", crate::store::BulkJobState::Completed),
        ];
        let mut report = build_report(&settings(), true, &[], &[], &StoreCounts::default());
        report.bulk = bulk_status(&summary, &jobs);
        assert_eq!(report.bulk.open_jobs.len(), 1);
        let text = render_text(&report);
        assert!(
            text.contains("Bulk      1 open, 2 completed, 1 failed, 0 aborted; 12000 rows moved"),
            "{text}"
        );
        assert!(
            text.contains(
                "750A a_to_b query staging (1500 rows staged, created 2025-01-02T03:04:05.000Z)"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["bulk"]["open_jobs"][0]["state"], "staging");
        assert_eq!(json["bulk"]["rows_moved"], 12000);
    }
}
