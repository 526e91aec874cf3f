//! The metrics of `GET /metrics`, kept and rendered by `metrics-exporter-prometheus` (the
//! Prometheus text format 0.0.4). Each daemon owns its own [`Metrics`]: a local
//! `PrometheusRecorder` that is never installed as the process's global recorder, so several
//! daemons in one process (the tests do that) keep separate counters. Rejected:
//! `prometheus-client`, which writes OpenMetrics only (a counter's `# TYPE` names the family
//! without `_total`, and the text ends with `# EOF`): every counter family would change shape.
//!
//! Two kinds of values reach it:
//! - counters and histograms updated when something happens, only through the events of
//!   [`crate::events`] (each emits its log line and its metric together, so the two cannot
//!   drift): records by direction, pass durations, outbound messages;
//! - gauges read at scrape time ([`Gauges`], collected by the HTTP module from the clients and
//!   the store), set just before rendering.
//!
//! Every family's name, type and help text is declared once, in [`FAMILIES`]; the series
//! that have always been served even before anything happened (records and pass durations of
//! both directions) are registered at zero when the daemon starts.

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::domain::Direction;

/// Upper bounds (seconds) of the pass-duration histogram's buckets: from a quiet cycle's tens
/// of milliseconds to a large backlog's minutes (`+Inf` is implied).
pub const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub const RECORDS_SYNCED: &str = "orgsync_records_synced_total";
pub const RECORDS_FAILED: &str = "orgsync_records_failed_total";
pub const RECORDS_SKIPPED: &str = "orgsync_records_skipped_total";
pub const CYCLE_DURATION: &str = "orgsync_cycle_duration_seconds";
pub const LAST_CYCLE_DURATION: &str = "orgsync_last_cycle_duration_seconds";
pub const LAST_SUCCESS: &str = "orgsync_last_success_timestamp_seconds";
pub const AUTH_FAILED: &str = "orgsync_auth_failed";
pub const API_PAUSED: &str = "orgsync_api_paused";
pub const API_CALLS: &str = "orgsync_api_calls_total";
pub const API_USAGE_USED: &str = "orgsync_api_usage_used";
pub const API_USAGE_MAX: &str = "orgsync_api_usage_max";
pub const INBOX_PENDING: &str = "orgsync_inbox_pending";
pub const INBOX_OLDEST_AGE: &str = "orgsync_inbox_oldest_age_seconds";
pub const FAILURES: &str = "orgsync_failures";
pub const FAILURES_BY_CLASS: &str = "orgsync_failures_by_class";
pub const OUTBOUND_MESSAGES: &str = "orgsync_outbound_messages_total";
pub const OUTBOUND_NOTIFICATIONS: &str = "orgsync_outbound_notifications_total";
/// getDeleted windows whose start the delete log no longer reached (a reconcile is needed).
pub const DELETED_WINDOW_HOLES: &str = "orgsync_deleted_window_holes_total";
// Bulk API 2.0 (crate::events::bulk; the open jobs are a gauge read from the store).
pub const BULK_JOBS: &str = "orgsync_bulk_jobs_total";
pub const BULK_ROWS: &str = "orgsync_bulk_rows_total";
pub const BULK_JOBS_OPEN: &str = "orgsync_bulk_jobs_open";
// Reconcile (issue 14): gauges read from the last stored report at scrape time.
pub const RECONCILE_DIFFERENCES: &str = "orgsync_reconcile_differences";
pub const RECONCILE_LAST_RUN: &str = "orgsync_reconcile_last_run_timestamp_seconds";

/// 1 while this replica holds the sync lease (always on SQLite: one process), else 0.
pub const HA_LEADER: &str = "orgsync_ha_leader";
/// This replica's role changes (lease taken, lost).
pub const HA_LEASE_CHANGES: &str = "orgsync_ha_lease_changes_total";
// Per-record events (crate::events::record); served once their events are emitted.
pub const RECORD_WRITES: &str = "orgsync_record_writes_total";
pub const RECORD_LINKS: &str = "orgsync_record_links_total";
pub const RECORD_SKIPS: &str = "orgsync_record_skips_total";
pub const CONFLICTS: &str = "orgsync_conflicts_total";
pub const FAILURES_QUEUED: &str = "orgsync_failures_queued_total";
pub const REVERSES_QUEUED: &str = "orgsync_reverses_queued_total";
pub const FAILURES_CLEARED: &str = "orgsync_failures_cleared_total";
pub const PARENT_ACCOUNTS: &str = "orgsync_parent_accounts_total";
// Delete events (crate::events::deletes).
pub const RECORD_DELETES: &str = "orgsync_record_deletes_total";
pub const DELETE_CONFLICTS: &str = "orgsync_delete_conflicts_total";
pub const DELETES_HELD: &str = "orgsync_deletes_held_total";
/// The families of the delete events: absent from `/metrics` until one is emitted.
pub const DELETE_EVENTS: [&str; 3] = [RECORD_DELETES, DELETE_CONFLICTS, DELETES_HELD];
/// The families of the per-record events: absent from `/metrics` until one is emitted.
pub const PER_RECORD: [&str; 8] = [
    RECORD_WRITES,
    RECORD_LINKS,
    RECORD_SKIPS,
    CONFLICTS,
    FAILURES_QUEUED,
    REVERSES_QUEUED,
    FAILURES_CLEARED,
    PARENT_ACCOUNTS,
];

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family: (name, type, help).
pub const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        BULK_JOBS,
        Kind::Counter,
        "Bulk API 2.0 jobs ended, by org, operation (query, update, upsert) and outcome (completed, failed, aborted).",
    ),
    (
        BULK_ROWS,
        Kind::Counter,
        "Rows moved by completed Bulk API 2.0 jobs, by org and operation.",
    ),
    (
        BULK_JOBS_OPEN,
        Kind::Gauge,
        "Bulk API 2.0 jobs orgsync has open (recorded, not ended), by org.",
    ),
    (
        RECONCILE_DIFFERENCES,
        Kind::Gauge,
        "Differences the last reconcile found, by class (missing_in_b, missing_in_a, value_drift_explained, value_drift_unexplained, orphan_link, unlinked_match, ambiguous), and outside_filter: linked pairs whose record left sync.filter (compared, not a difference).",
    ),
    (
        RECONCILE_LAST_RUN,
        Kind::Gauge,
        "When the last reconcile finished (Unix time).",
    ),
    (
        RECORDS_SYNCED,
        Kind::Counter,
        "Records written to the target or linked, by direction (since this process started).",
    ),
    (
        RECORDS_FAILED,
        Kind::Counter,
        "Records whose write failed (queued for retry), by direction.",
    ),
    (
        RECORDS_SKIPPED,
        Kind::Counter,
        "Records read and skipped (replays, echoes, unchanged, queued), by direction.",
    ),
    (
        CYCLE_DURATION,
        Kind::Histogram,
        "Durations of direction passes (poll cycles, inbox drains, retries), by direction.",
    ),
    (
        LAST_CYCLE_DURATION,
        Kind::Gauge,
        "Duration of the latest direction pass, by direction.",
    ),
    (
        LAST_SUCCESS,
        Kind::Gauge,
        "When each direction last finished a pass with every record read durably handled (Unix time).",
    ),
    (
        AUTH_FAILED,
        Kind::Gauge,
        "1 while the org's logins are refused for their credentials (the daemon backs off, 1 min doubling to 1 h), else 0.",
    ),
    (
        API_PAUSED,
        Kind::Gauge,
        "1 while the org is paused on its daily API limit or api_budget_percent, else 0.",
    ),
    (
        API_CALLS,
        Kind::Counter,
        "Salesforce HTTP calls this process made, by org and kind (logins included).",
    ),
    (
        API_USAGE_USED,
        Kind::Gauge,
        "The org's API requests used in the last 24 h, from the latest Sforce-Limit-Info.",
    ),
    (
        API_USAGE_MAX,
        Kind::Gauge,
        "The org's daily API request limit, from the latest Sforce-Limit-Info.",
    ),
    (
        INBOX_PENDING,
        Kind::Gauge,
        "Outbound Messaging notifications stored and not yet processed, by org.",
    ),
    (
        INBOX_OLDEST_AGE,
        Kind::Gauge,
        "Seconds since the oldest unprocessed notification was received, by org (0 when none).",
    ),
    (
        FAILURES,
        Kind::Gauge,
        "Records in the failure queue, by state.",
    ),
    (
        FAILURES_BY_CLASS,
        Kind::Gauge,
        "Records in the failure queue, by class (transient, needs_edit, needs_operator).",
    ),
    (
        OUTBOUND_MESSAGES,
        Kind::Counter,
        "Outbound messages received, by org and result (acked or refused with a fault).",
    ),
    (
        OUTBOUND_NOTIFICATIONS,
        Kind::Counter,
        "Notifications in acked outbound messages (redeliveries included), by org.",
    ),
    (
        DELETED_WINDOW_HOLES,
        Kind::Counter,
        "getDeleted windows that started before the org's delete log did (deletes may have been missed: run a reconcile), by org.",
    ),
    (
        HA_LEADER,
        Kind::Gauge,
        "1 while this replica holds the sync lease and syncs (always 1 on SQLite, one process), 0 while it is a standby.",
    ),
    (
        HA_LEASE_CHANGES,
        Kind::Counter,
        "Times this replica's role changed (it took the sync lease, or lost it), since it started.",
    ),
    (
        RECORD_WRITES,
        Kind::Counter,
        "Records written to the target, by direction and operation (create, update, undelete).",
    ),
    (
        RECORD_LINKS,
        Kind::Counter,
        "Records linked to an existing target record with equal values, by direction.",
    ),
    (
        RECORD_SKIPS,
        Kind::Counter,
        "Records read and skipped, by direction and reason (replay, queued, echo, unchanged).",
    ),
    (
        CONFLICTS,
        Kind::Counter,
        "Fields changed on both sides, by direction and winner (source, target).",
    ),
    (
        FAILURES_QUEUED,
        Kind::Counter,
        "Records whose sync failed and were kept in the failure queue, by direction and class.",
    ),
    (
        REVERSES_QUEUED,
        Kind::Counter,
        "Records whose target held newer values, queued to be carried back, by direction.",
    ),
    (
        FAILURES_CLEARED,
        Kind::Counter,
        "Failures cleared because the record no longer exists in the source, by direction.",
    ),
    (
        PARENT_ACCOUNTS,
        Kind::Counter,
        "Parent accounts found in the target by Name or created there, by direction and how.",
    ),
    (
        RECORD_DELETES,
        Kind::Counter,
        "Source records deleted whose target was deleted (or was gone already), by direction and outcome.",
    ),
    (
        DELETE_CONFLICTS,
        Kind::Counter,
        "Deleted source records whose target was edited since the last sync, by direction and resolution (keep_edit, delete).",
    ),
    (
        DELETES_HELD,
        Kind::Counter,
        "Passes whose deletes the mass-delete breaker held (sync.max_deletes_per_cycle), by direction.",
    ),
];

/// Where the recorder's handles say they come from (the exporter ignores it).
static METADATA: Metadata<'static> = Metadata::new("orgsync", Level::INFO, Some(module_path!()));

/// One daemon's metrics: a local recorder and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// A label from a static name and any value.
pub fn label(name: &'static str, value: impl Into<SharedString>) -> Label {
    Label::new(name, value)
}

impl Metrics {
    /// A recorder with the pass-duration buckets, every family described, and the series
    /// always served registered at zero.
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = match builder
            .set_buckets_for_metric(Matcher::Full(CYCLE_DURATION.into()), &DURATION_BUCKETS)
        {
            Ok(b) => b,
            // Only refused for empty buckets, which DURATION_BUCKETS is not.
            Err(e) => {
                tracing::error!(error = %e, "metrics: the duration buckets were refused");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder, handle };
        for (name, kind, help) in FAMILIES {
            let help = SharedString::const_str(help);
            let name = metrics::KeyName::from_const_str(name);
            match kind {
                Kind::Counter => metrics.recorder.describe_counter(name, None, help),
                Kind::Gauge => metrics.recorder.describe_gauge(name, None, help),
                Kind::Histogram => metrics.recorder.describe_histogram(name, None, help),
            }
        }
        for d in Direction::BOTH {
            for name in [RECORDS_SYNCED, RECORDS_FAILED, RECORDS_SKIPPED] {
                metrics
                    .counter(name, vec![label("direction", d.as_str())])
                    .increment(0);
            }
            // Registered, so both directions' buckets are served (at 0) before any pass.
            let _ = metrics.histogram(CYCLE_DURATION, vec![label("direction", d.as_str())]);
            metrics
                .gauge(LAST_CYCLE_DURATION, vec![label("direction", d.as_str())])
                .set(0.0);
        }
        for org in ["a", "b"] {
            metrics
                .counter(DELETED_WINDOW_HOLES, vec![label("org", org)])
                .increment(0);
        }
        metrics.gauge(HA_LEADER, Vec::new()).set(0.0);
        metrics.counter(HA_LEASE_CHANGES, Vec::new()).increment(0);
        metrics
    }

    /// The counter `name` with `labels` (registered on first use).
    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// The gauge `name` with `labels`.
    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// The histogram `name` with `labels`.
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// Folds the histograms' recorded samples into their buckets (the exporter keeps samples
    /// until then): called after each pass, so memory stays flat between scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Sets the scrape-time gauges, then renders every family as Prometheus text, in a
    /// stable order (see [`in_order`]).
    pub fn render(&self, gauges: &Gauges) -> String {
        gauges.set(self);
        in_order(&self.handle.render())
    }
}

/// The exporter's text in a stable order (it writes families and series in hash order):
/// families in the order of [`FAMILIES`] (any other after them, by name), each family's series
/// by label set, a histogram's buckets, `_sum` and `_count` kept in their order; without the
/// blank lines the exporter puts between families (pure).
pub fn in_order(text: &str) -> String {
    let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
    for line in text.lines() {
        match blocks.last_mut() {
            Some(block) if !line.is_empty() => block.push(line),
            _ => blocks.push(Vec::new()),
        }
    }
    blocks.retain(|b| !b.is_empty());
    let family_of = |block: &[&str]| -> String {
        block
            .iter()
            .find_map(|l| l.strip_prefix("# TYPE "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default()
            .to_string()
    };
    let rank = |name: &str| {
        FAMILIES
            .iter()
            .position(|(n, _, _)| *n == name)
            .unwrap_or(FAMILIES.len())
    };
    blocks.sort_by_cached_key(|b| {
        let name = family_of(b);
        (rank(&name), name)
    });
    let mut out = String::with_capacity(text.len());
    for mut block in blocks {
        // The comments first, as written; then the samples by label set (a stable sort, so a
        // histogram's lines for one label set keep their order).
        block.sort_by_key(|l| match l.strip_prefix('#') {
            Some(_) => (0, ""),
            None => (1, series_labels(l)),
        });
        for line in block {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A sample line's labels without `le` (`direction="a_to_b"` of
/// `x_bucket{direction="a_to_b",le="1"} 0`); empty when it has none.
fn series_labels(line: &str) -> &str {
    let Some((_, rest)) = line.split_once('{') else {
        return "";
    };
    let end = rest
        .find(",le=\"")
        .or_else(|| rest.find("le=\""))
        .or_else(|| rest.rfind('}'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (org, kind, calls this process made).
    pub api_calls: Vec<(&'static str, String, u64)>,
    /// (org, used, max) from the latest `Sforce-Limit-Info`.
    pub api_usage: Vec<(&'static str, u64, u64)>,
    /// (org, pending notifications).
    pub inbox: Vec<(&'static str, u64)>,
    /// (state, failures): pending, waiting, dead.
    pub failures: Vec<(&'static str, u64)>,
    /// (class, failures): transient, needs_edit, needs_operator.
    pub failures_by_class: Vec<(String, u64)>,
    /// (org, whether its logins are refused and backing off).
    pub auth_failed: Vec<(&'static str, bool)>,
    /// (org, whether it is paused on its API limit or budget).
    pub paused: Vec<(&'static str, bool)>,
    /// (direction, when it last finished a pass with every record handled).
    pub last_success: Vec<(&'static str, chrono::DateTime<chrono::Utc>)>,
    /// (org, seconds since its oldest pending notification was received; 0 when none).
    pub inbox_oldest_age: Vec<(&'static str, u64)>,
    /// (org, Bulk jobs open).
    pub bulk_open: Vec<(&'static str, u64)>,
    /// Whether this replica holds the sync lease (true on SQLite); `None` leaves it as it was.
    pub ha_leader: Option<bool>,
    /// This replica's role changes so far.
    pub ha_lease_changes: u64,
    /// (class, differences) of the last reconcile report; empty before the first.
    pub reconcile_differences: Vec<(String, u64)>,
    /// When the last reconcile finished.
    pub reconcile_last_run: Option<chrono::DateTime<chrono::Utc>>,
}

impl Gauges {
    /// Writes the values into `metrics` (the API call counts are the clients' own counters,
    /// copied as they are).
    fn set(&self, m: &Metrics) {
        for (org, kind, n) in &self.api_calls {
            m.counter(
                API_CALLS,
                vec![label("org", *org), label("kind", kind.clone())],
            )
            .absolute(*n);
        }
        for (org, used, max) in &self.api_usage {
            m.gauge(API_USAGE_USED, vec![label("org", *org)])
                .set(*used as f64);
            m.gauge(API_USAGE_MAX, vec![label("org", *org)])
                .set(*max as f64);
        }
        for (org, n) in &self.inbox {
            m.gauge(INBOX_PENDING, vec![label("org", *org)])
                .set(*n as f64);
        }
        for (org, age) in &self.inbox_oldest_age {
            m.gauge(INBOX_OLDEST_AGE, vec![label("org", *org)])
                .set(*age as f64);
        }
        for (state, n) in &self.failures {
            m.gauge(FAILURES, vec![label("state", *state)])
                .set(*n as f64);
        }
        for (class, n) in &self.failures_by_class {
            m.gauge(FAILURES_BY_CLASS, vec![label("class", class.clone())])
                .set(*n as f64);
        }
        for (org, failed) in &self.auth_failed {
            m.gauge(AUTH_FAILED, vec![label("org", *org)])
                .set(f64::from(u8::from(*failed)));
        }
        for (org, paused) in &self.paused {
            m.gauge(API_PAUSED, vec![label("org", *org)])
                .set(f64::from(u8::from(*paused)));
        }
        for (org, n) in &self.bulk_open {
            m.gauge(BULK_JOBS_OPEN, vec![label("org", *org)])
                .set(*n as f64);
        }
        for (class, n) in &self.reconcile_differences {
            m.gauge(RECONCILE_DIFFERENCES, vec![label("class", class.clone())])
                .set(*n as f64);
        }
        if let Some(at) = self.reconcile_last_run {
            m.gauge(RECONCILE_LAST_RUN, vec![])
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
        for (direction, at) in &self.last_success {
            m.gauge(LAST_SUCCESS, vec![label("direction", *direction)])
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
        if let Some(leader) = self.ha_leader {
            m.gauge(HA_LEADER, Vec::new())
                .set(f64::from(u8::from(leader)));
        }
        m.counter(HA_LEASE_CHANGES, Vec::new())
            .absolute(self.ha_lease_changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{OutboundAcked, PassFinished};

    #[test]
    fn metrics_render_every_family_with_help_and_type() {
        let metrics = Metrics::default();
        let report = crate::sync::PassReport {
            created: 2,
            updated: 1,
            skipped: 4,
            failed: 1,
            ..crate::sync::PassReport::default()
        };
        PassFinished {
            cycle: 1,
            direction: Direction::AToB,
            kind: "poll",
            report: report.counts(),
            elapsed: std::time::Duration::from_millis(1500),
        }
        .emit(&metrics);
        OutboundAcked {
            org: crate::store::Org::A,
            notifications: 3,
            new: 3,
        }
        .emit(&metrics);
        let gauges = Gauges {
            api_calls: vec![("a", "query".into(), 7)],
            api_usage: vec![("b", 10, 15000)],
            inbox: vec![("a", 0), ("b", 2)],
            failures: vec![("pending", 1), ("waiting", 2), ("dead", 0)],
            failures_by_class: vec![
                ("needs_edit".into(), 2),
                ("needs_operator".into(), 0),
                ("transient".into(), 1),
            ],
            auth_failed: vec![("a", true), ("b", false)],
            paused: vec![("a", false), ("b", true)],
            last_success: vec![(
                "a_to_b",
                chrono::DateTime::from_timestamp(1_700_000_000, 500_000_000).expect("time"),
            )],
            inbox_oldest_age: vec![("a", 0), ("b", 75)],
            bulk_open: vec![("a", 1), ("b", 0)],
            ha_leader: Some(true),
            ha_lease_changes: 3,
            reconcile_differences: vec![
                ("missing_in_b".to_string(), 0),
                ("value_drift_unexplained".to_string(), 3),
            ],
            reconcile_last_run: chrono::DateTime::from_timestamp(1_700_000_100, 0),
        };
        crate::events::bulk::BulkJobEnded {
            cycle: 1,
            direction: Direction::AToB,
            org: crate::store::Org::A,
            job_id: "750000000000001AAA",
            operation: "query",
            outcome: "completed",
            rows: 5000,
            reason: None,
        }
        .emit(&metrics);
        let text = metrics.render(&gauges);
        assert!(text.contains(
            "orgsync_bulk_jobs_total{org=\"a\",operation=\"query\",outcome=\"completed\"} 1\n"
        ));
        assert!(text.contains("orgsync_bulk_rows_total{org=\"a\",operation=\"query\"} 5000\n"));
        assert!(text.contains("orgsync_bulk_jobs_open{org=\"a\"} 1\n"));
        assert!(text.contains("orgsync_ha_leader 1\n"), "{text}");
        assert!(text.contains("orgsync_ha_lease_changes_total 3\n"));
        assert!(
            text.contains("orgsync_reconcile_differences{class=\"value_drift_unexplained\"} 3\n")
        );
        assert!(text.contains("orgsync_reconcile_differences{class=\"missing_in_b\"} 0\n"));
        assert!(text.contains("orgsync_reconcile_last_run_timestamp_seconds 1700000100\n"));
        assert!(text.contains("orgsync_records_synced_total{direction=\"a_to_b\"} 3\n"));
        assert!(text.contains("orgsync_records_synced_total{direction=\"b_to_a\"} 0\n"));
        assert!(text.contains("orgsync_records_failed_total{direction=\"a_to_b\"} 1\n"));
        assert!(text.contains("orgsync_records_skipped_total{direction=\"a_to_b\"} 4\n"));
        assert!(text.contains("orgsync_cycle_duration_seconds_sum{direction=\"a_to_b\"} 1.5\n"));
        assert!(text.contains("# TYPE orgsync_cycle_duration_seconds histogram\n"));
        assert!(
            text.contains(
                "orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"1\"} 0\n"
            )
        );
        assert!(text.contains(
            "orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"2.5\"} 1\n"
        ));
        assert!(text.contains(
            "orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains("orgsync_cycle_duration_seconds_count{direction=\"a_to_b\"} 1\n"));
        assert!(text.contains("orgsync_auth_failed{org=\"a\"} 1\n"));
        assert!(text.contains("orgsync_api_paused{org=\"b\"} 1\n"));
        assert!(text.contains(
            "orgsync_last_success_timestamp_seconds{direction=\"a_to_b\"} 1700000000.5\n"
        ));
        assert!(text.contains("orgsync_api_calls_total{org=\"a\",kind=\"query\"} 7\n"));
        assert!(text.contains("orgsync_api_usage_max{org=\"b\"} 15000\n"));
        assert!(text.contains("orgsync_inbox_pending{org=\"b\"} 2\n"));
        assert!(text.contains("orgsync_failures{state=\"waiting\"} 2\n"));
        assert!(text.contains("orgsync_failures_by_class{class=\"needs_edit\"} 2\n"));
        assert!(text.contains("orgsync_failures_by_class{class=\"transient\"} 1\n"));
        assert!(text.contains("orgsync_inbox_oldest_age_seconds{org=\"b\"} 75\n"));
        assert!(text.contains("orgsync_outbound_messages_total{org=\"a\",result=\"acked\"} 1\n"));
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP orgsync_")
                    || line.starts_with("# TYPE orgsync_")
                    || line.starts_with("orgsync_"),
                "unexpected line {line:?}"
            );
        }
        // Every family has its help and type, once, with the type declared in FAMILIES (the
        // per-record families only once their events are emitted).
        let emitted_only = |name: &str| PER_RECORD.contains(&name) || DELETE_EVENTS.contains(&name);
        for (name, kind, help) in FAMILIES.iter().filter(|f| !emitted_only(f.0)) {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert_eq!(
                text.matches(&format!("# TYPE {name} {kind}\n")).count(),
                1,
                "{name}"
            );
            assert!(text.contains(&format!("# HELP {name} {help}\n")), "{name}");
        }
    }

    #[test]
    fn the_duration_histogram_counts_each_pass_in_its_bucket_and_accumulates() {
        let metrics = Metrics::default();
        let h = metrics.histogram(CYCLE_DURATION, vec![label("direction", "b_to_a")]);
        for seconds in [0.01, 0.3, 0.5, 1000.0] {
            h.record(seconds);
        }
        metrics.upkeep();
        let text = metrics.render(&Gauges::default());
        let series = |le: &str| {
            format!("orgsync_cycle_duration_seconds_bucket{{direction=\"b_to_a\",le=\"{le}\"}}")
        };
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
                .unwrap_or(-1.0)
        };
        assert_eq!(value(&series("0.05")), 1.0);
        assert_eq!(value(&series("0.25")), 1.0);
        assert_eq!(value(&series("0.5")), 3.0);
        assert_eq!(value(&series("300")), 3.0);
        assert_eq!(value(&series("+Inf")), 4.0);
        assert_eq!(
            value("orgsync_cycle_duration_seconds_count{direction=\"b_to_a\"}"),
            4.0
        );
        let sum = value("orgsync_cycle_duration_seconds_sum{direction=\"b_to_a\"}");
        assert!((sum - 1000.81).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn the_text_is_in_a_stable_order_families_as_declared_series_by_labels() {
        let metrics = Metrics::default();
        PassFinished {
            cycle: 1,
            direction: Direction::BToA,
            kind: "poll",
            report: crate::sync::PassReport::default().counts(),
            elapsed: std::time::Duration::from_millis(70),
        }
        .emit(&metrics);
        let gauges = Gauges {
            inbox: vec![("b", 1), ("a", 2)],
            paused: vec![("a", false), ("b", true)],
            ..Gauges::default()
        };
        let text = metrics.render(&gauges);
        assert_eq!(text, metrics.render(&gauges), "two renders differ");
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let declared: Vec<&str> = FAMILIES
            .iter()
            .map(|f| f.0)
            .filter(|n| types.contains(n))
            .collect();
        assert_eq!(types, declared);
        assert!(types.starts_with(&[RECORDS_SYNCED, RECORDS_FAILED, RECORDS_SKIPPED]));
        let inbox: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(INBOX_PENDING))
            .collect();
        assert_eq!(
            inbox,
            [
                "orgsync_inbox_pending{org=\"a\"} 2",
                "orgsync_inbox_pending{org=\"b\"} 1"
            ]
        );
        // a_to_b's histogram lines first, each series' buckets in increasing le, then its
        // _sum and _count.
        let histogram: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(CYCLE_DURATION))
            .collect();
        assert_eq!(histogram.len(), 2 * (DURATION_BUCKETS.len() + 3));
        assert!(histogram[0].starts_with(
            "orgsync_cycle_duration_seconds_bucket{direction=\"a_to_b\",le=\"0.05\"}"
        ));
        let b_to_a = &histogram[DURATION_BUCKETS.len() + 3..];
        assert_eq!(
            b_to_a[1],
            "orgsync_cycle_duration_seconds_bucket{direction=\"b_to_a\",le=\"0.1\"} 1"
        );
        assert_eq!(
            b_to_a[DURATION_BUCKETS.len()],
            "orgsync_cycle_duration_seconds_bucket{direction=\"b_to_a\",le=\"+Inf\"} 1"
        );
        assert!(
            b_to_a[DURATION_BUCKETS.len() + 1].starts_with("orgsync_cycle_duration_seconds_sum")
        );
        assert!(
            b_to_a[DURATION_BUCKETS.len() + 2].starts_with("orgsync_cycle_duration_seconds_count")
        );
        assert!(!text.contains("\n\n"));
    }

    #[test]
    fn two_daemons_in_one_process_keep_their_own_counters() {
        let one = Metrics::default();
        let other = Metrics::default();
        one.counter(RECORDS_FAILED, vec![label("direction", "a_to_b")])
            .increment(2);
        assert!(
            one.render(&Gauges::default())
                .contains("orgsync_records_failed_total{direction=\"a_to_b\"} 2\n")
        );
        assert!(
            other
                .render(&Gauges::default())
                .contains("orgsync_records_failed_total{direction=\"a_to_b\"} 0\n")
        );
    }
}
