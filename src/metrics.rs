//! The counters this process keeps for `GET /metrics`: records by direction and outcome,
//! direction-pass durations (a histogram), and outbound messages. The daemon's shell records
//! into them for every pass, whichever trigger ran it (poll, inbox drain, failure retries), so
//! a poll-mode daemon is as observable as a push-mode one; the HTTP module renders them as
//! Prometheus text together with the gauges it reads at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::store::Direction;
use crate::sync::PassReport;

/// Upper bounds (seconds) of the pass-duration histogram's buckets: from a quiet cycle's tens
/// of milliseconds to a large backlog's minutes (`+Inf` is implied).
pub const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A Prometheus histogram: cumulative counts per bucket, the sum and the count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each of [`DURATION_BUCKETS`] (not cumulative here; the
    /// renderer accumulates).
    pub buckets: [u64; DURATION_BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// `(le, cumulative count)` for every bucket, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(String, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
        for (le, n) in DURATION_BUCKETS.iter().zip(self.buckets) {
            total += n;
            out.push((format!("{le}"), total));
        }
        out.push(("+Inf".to_string(), self.count));
        out
    }
}

/// The counters, behind one lock (they are touched a few times per pass or message).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

/// What the counters hold.
#[derive(Debug, Default)]
pub struct Counters {
    /// (direction, outcome) -> records.
    pub records: BTreeMap<(&'static str, &'static str), u64>,
    /// direction -> durations of its passes.
    pub passes: BTreeMap<&'static str, Histogram>,
    /// direction -> seconds of its latest pass.
    pub last_pass: BTreeMap<&'static str, f64>,
    /// (org, result) -> messages.
    pub messages: BTreeMap<(&'static str, &'static str), u64>,
    /// org -> notifications received in acked messages.
    pub notifications: BTreeMap<&'static str, u64>,
}

impl Metrics {
    pub fn lock(&self) -> MutexGuard<'_, Counters> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An outbound message was acked or refused.
    pub fn message(&self, org: &'static str, result: &'static str, notifications: usize) {
        let mut c = self.lock();
        *c.messages.entry((org, result)).or_default() += 1;
        *c.notifications.entry(org).or_default() += notifications as u64;
    }

    /// A direction pass finished (with whatever it counted) after `elapsed`.
    pub fn pass(&self, direction: Direction, report: &PassReport, elapsed: Duration) {
        let d = direction.as_str();
        let mut c = self.lock();
        for (outcome, n) in [
            ("created", report.created),
            ("updated", report.updated),
            ("linked", report.linked),
            ("skipped", report.skipped),
            ("failed", report.failed),
        ] {
            *c.records.entry((d, outcome)).or_default() += n;
        }
        let secs = elapsed.as_secs_f64();
        c.passes.entry(d).or_default().observe(secs);
        c.last_pass.insert(d, secs);
    }
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
}

/// The Prometheus text exposition (format 0.0.4) of the counters and gauges (pure).
pub fn render_metrics(c: &Counters, g: &Gauges) -> String {
    let mut out = String::new();
    let out = &mut out;
    let by_outcome = |wanted: &[&str]| -> Vec<(String, String)> {
        Direction::BOTH
            .iter()
            .map(|d| {
                let n: u64 = wanted
                    .iter()
                    .map(|o| c.records.get(&(d.as_str(), *o)).copied().unwrap_or(0))
                    .sum();
                (format!("direction=\"{}\"", d.as_str()), n.to_string())
            })
            .collect()
    };
    family(
        out,
        "orgsync_records_synced_total",
        "counter",
        "Records written to the target or linked, by direction (since this process started).",
        by_outcome(&["created", "updated", "linked"]),
    );
    family(
        out,
        "orgsync_records_failed_total",
        "counter",
        "Records whose write failed (queued for retry), by direction.",
        by_outcome(&["failed"]),
    );
    family(
        out,
        "orgsync_records_skipped_total",
        "counter",
        "Records read and skipped (replays, echoes, unchanged, queued), by direction.",
        by_outcome(&["skipped"]),
    );
    let mut histogram = Vec::new();
    let mut last = Vec::new();
    for d in Direction::BOTH {
        let h = c.passes.get(d.as_str()).cloned().unwrap_or_default();
        let label = format!("direction=\"{}\"", d.as_str());
        for (le, n) in h.cumulative() {
            histogram.push((
                format!("orgsync_cycle_duration_seconds_bucket{{{label},le=\"{le}\"}}"),
                n.to_string(),
            ));
        }
        histogram.push((
            format!("orgsync_cycle_duration_seconds_sum{{{label}}}"),
            format_float(h.sum),
        ));
        histogram.push((
            format!("orgsync_cycle_duration_seconds_count{{{label}}}"),
            h.count.to_string(),
        ));
        let latest = c.last_pass.get(d.as_str()).copied().unwrap_or_default();
        last.push((label, format_float(latest)));
    }
    series_family(
        out,
        "orgsync_cycle_duration_seconds",
        "histogram",
        "Durations of direction passes (poll cycles, inbox drains, retries), by direction.",
        histogram,
    );
    family(
        out,
        "orgsync_last_cycle_duration_seconds",
        "gauge",
        "Duration of the latest direction pass, by direction.",
        last,
    );
    family(
        out,
        "orgsync_last_success_timestamp_seconds",
        "gauge",
        "When each direction last finished a pass with every record read durably handled (Unix time).",
        g.last_success
            .iter()
            .map(|(d, at)| {
                (
                    format!("direction=\"{d}\""),
                    format_float(at.timestamp_millis() as f64 / 1000.0),
                )
            })
            .collect(),
    );
    family(
        out,
        "orgsync_auth_failed",
        "gauge",
        "1 while the org's logins are refused for their credentials (the daemon backs off, 1 min doubling to 1 h), else 0.",
        g.auth_failed
            .iter()
            .map(|(org, failed)| (format!("org=\"{org}\""), u8::from(*failed).to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_paused",
        "gauge",
        "1 while the org is paused on its daily API limit or api_budget_percent, else 0.",
        g.paused
            .iter()
            .map(|(org, paused)| (format!("org=\"{org}\""), u8::from(*paused).to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_calls_total",
        "counter",
        "Salesforce HTTP calls this process made, by org and kind (logins included).",
        g.api_calls
            .iter()
            .map(|(org, kind, n)| (format!("org=\"{org}\",kind=\"{kind}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_usage_used",
        "gauge",
        "The org's API requests used in the last 24 h, from the latest Sforce-Limit-Info.",
        g.api_usage
            .iter()
            .map(|(org, used, _)| (format!("org=\"{org}\""), used.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_api_usage_max",
        "gauge",
        "The org's daily API request limit, from the latest Sforce-Limit-Info.",
        g.api_usage
            .iter()
            .map(|(org, _, max)| (format!("org=\"{org}\""), max.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_inbox_pending",
        "gauge",
        "Outbound Messaging notifications stored and not yet processed, by org.",
        g.inbox
            .iter()
            .map(|(org, n)| (format!("org=\"{org}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_inbox_oldest_age_seconds",
        "gauge",
        "Seconds since the oldest unprocessed notification was received, by org (0 when none).",
        g.inbox_oldest_age
            .iter()
            .map(|(org, age)| (format!("org=\"{org}\""), age.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_failures",
        "gauge",
        "Records in the failure queue, by state.",
        g.failures
            .iter()
            .map(|(state, n)| (format!("state=\"{state}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_failures_by_class",
        "gauge",
        "Records in the failure queue, by class (transient, needs_edit, needs_operator).",
        g.failures_by_class
            .iter()
            .map(|(class, n)| (format!("class=\"{class}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_outbound_messages_total",
        "counter",
        "Outbound messages received, by org and result (acked or refused with a fault).",
        c.messages
            .iter()
            .map(|((org, result), n)| (format!("org=\"{org}\",result=\"{result}\""), n.to_string()))
            .collect(),
    );
    family(
        out,
        "orgsync_outbound_notifications_total",
        "counter",
        "Notifications in acked outbound messages (redeliveries included), by org.",
        c.notifications
            .iter()
            .map(|(org, n)| (format!("org=\"{org}\""), n.to_string()))
            .collect(),
    );
    std::mem::take(out)
}

/// Writes one metric family whose samples are `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: Vec<(String, String)>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Writes one metric family whose samples name their own series (a histogram's `_bucket`,
/// `_sum` and `_count`): `(series with labels, value)`.
fn series_family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    series: Vec<(String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (series, value) in series {
        let _ = writeln!(out, "{series} {value}");
    }
}

/// A sample value as Prometheus text writes floats.
fn format_float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_in_its_bucket_and_accumulates() {
        let mut h = Histogram::default();
        h.observe(0.01);
        h.observe(0.3);
        h.observe(0.5);
        h.observe(1000.0);
        let cumulative = h.cumulative();
        assert_eq!(cumulative[0], ("0.05".to_string(), 1));
        assert_eq!(cumulative[2], ("0.25".to_string(), 1));
        assert_eq!(cumulative[3], ("0.5".to_string(), 3));
        assert_eq!(cumulative[11], ("300".to_string(), 3));
        assert_eq!(cumulative[12], ("+Inf".to_string(), 4));
        assert_eq!(h.count, 4);
        assert!((h.sum - 1000.81).abs() < 1e-9);
    }

    #[test]
    fn metrics_render_every_family_with_help_and_type() {
        let metrics = crate::metrics::Metrics::default();
        let report = crate::sync::PassReport {
            created: 2,
            updated: 1,
            skipped: 4,
            failed: 1,
            ..crate::sync::PassReport::default()
        };
        metrics.pass(
            Direction::AToB,
            &report,
            std::time::Duration::from_millis(1500),
        );
        metrics.message("a", "acked", 3);
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
        };
        let text = render_metrics(&metrics.lock(), &gauges);
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
    }

    #[test]
    fn floats_are_written_as_prometheus_reads_them() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
    }
}
