//! The counters this process keeps for `GET /metrics`: records by direction and outcome,
//! direction-pass durations (a histogram), and outbound messages. The daemon's shell records
//! into them for every pass, whichever trigger ran it (poll, inbox drain, failure retries), so
//! a poll-mode daemon is as observable as a push-mode one; the HTTP module renders them as
//! Prometheus text together with the gauges it reads at scrape time.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::domain::Direction;
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
}
