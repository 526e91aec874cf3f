//! The `reconcile` section of `orgsync status` (and `GET /status`, and the metrics' source):
//! the last stored report's run, time and counts per class, and its line in the text status.
//! Pure; `status::collect` reads the stored report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::StoredReconcileReport;

/// The `reconcile` section: the last report's time and counts (the whole report is
/// `orgsync reconcile --json`'s). `null` before the first run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileStatus {
    pub run_id: String,
    pub object: String,
    pub finished_at: String,
    /// All classes together: 0 when the orgs agreed.
    pub total: u64,
    pub compared_pairs: u64,
    /// Per class (`missing_in_b`, ...).
    pub differences: BTreeMap<String, u64>,
    /// Linked pairs whose record left `sync.filter` (not a difference).
    pub outside_filter: u64,
}

impl ReconcileStatus {
    /// The section of a stored report; `None` when it cannot be read as one.
    pub fn of(stored: &StoredReconcileReport) -> Option<ReconcileStatus> {
        let report = super::parse_stored(stored)?;
        Some(ReconcileStatus {
            run_id: report.run_id,
            object: report.object,
            finished_at: report.finished_at,
            total: report.total,
            compared_pairs: report.compared_pairs,
            differences: report
                .differences
                .into_iter()
                .map(|(class, c)| (class, c.count))
                .collect(),
            outside_filter: report.outside_filter.count,
        })
    }

    /// The metric's `class` labels and values: every class, and `outside_filter`.
    pub fn metric_classes(&self) -> Vec<(String, u64)> {
        let mut classes: Vec<(String, u64)> = self
            .differences
            .iter()
            .map(|(class, n)| (class.clone(), *n))
            .collect();
        classes.push((
            super::report::OUTSIDE_FILTER.to_string(),
            self.outside_filter,
        ));
        classes
    }
}

/// The section's line in the text status (with its newline).
pub fn status_line(section: Option<&ReconcileStatus>) -> String {
    let Some(r) = section else {
        return "Reconcile never run\n".to_string();
    };
    let classes: Vec<String> = r
        .differences
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(class, n)| format!("{class} {n}"))
        .collect();
    format!(
        "Reconcile {} differences at {} ({} pairs compared){}{}\n",
        r.total,
        r.finished_at,
        r.compared_pairs,
        if classes.is_empty() {
            String::new()
        } else {
            format!(": {}", classes.join(", "))
        },
        if r.outside_filter > 0 {
            format!("; {} linked outside sync.filter", r.outside_filter)
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_section_shows_the_last_report() {
        assert_eq!(status_line(None), "Reconcile never run\n");
        let at = chrono::Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let stored = StoredReconcileReport {
            run_id: "r1".into(),
            object: "Opportunity".into(),
            started_at: at,
            finished_at: at,
            differences: 2,
            report: serde_json::json!({
                "run_id": "r1", "object": "Opportunity",
                "started_at": "2025-01-02T03:04:05.000Z", "finished_at": "2025-01-02T03:04:05.000Z",
                "read": {}, "compared_pairs": 7, "total": 2,
                "differences": {
                    "missing_in_b": {"count": 0, "samples": []},
                    "orphan_link": {"count": 2, "samples": []}
                }
            })
            .to_string(),
        };
        let section = ReconcileStatus::of(&stored).unwrap();
        assert_eq!(
            status_line(Some(&section)),
            "Reconcile 2 differences at 2025-01-02T03:04:05.000Z (7 pairs compared): orphan_link 2\n"
        );
        assert!(
            section
                .metric_classes()
                .contains(&("outside_filter".to_string(), 0))
        );
        let json = serde_json::to_value(&section).unwrap();
        assert_eq!(json["differences"]["orphan_link"], 2);
        assert_eq!(json["total"], 2);
        let mut outside = section.clone();
        outside.outside_filter = 3;
        assert!(
            status_line(Some(&outside)).ends_with("orphan_link 2; 3 linked outside sync.filter\n")
        );
        let unreadable = StoredReconcileReport {
            report: "not json".into(),
            ..stored
        };
        assert_eq!(ReconcileStatus::of(&unreadable), None);
    }
}
