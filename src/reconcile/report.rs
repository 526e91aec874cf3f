//! The reconcile report: its classes, its JSON shape (`orgsync reconcile --json`, kept in the
//! store and served in `/status`; fields may be added, never renamed or removed) and its text
//! form for people (a summary table first, then the samples). Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::Org;

/// A kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A record in A with no live link and no copy (a record of its match key) in B.
    MissingInB,
    /// A record in B with no live link and no copy in A.
    MissingInA,
    /// A linked pair whose values differ, one side changed since the last sync: the next
    /// cycle carries it.
    ValueDriftExplained,
    /// A linked pair whose values differ, neither side changed since the last sync (or only
    /// by changes the sync skips): the sync missed it.
    ValueDriftUnexplained,
    /// A live link with a record gone from one side, or a tombstone whose records both live.
    OrphanLink,
    /// Two records without a link that the match key would link.
    UnlinkedMatch,
    /// A match key shared by several records of one org.
    Ambiguous,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::MissingInB,
        Class::MissingInA,
        Class::ValueDriftExplained,
        Class::ValueDriftUnexplained,
        Class::OrphanLink,
        Class::UnlinkedMatch,
        Class::Ambiguous,
    ];

    /// The class's name: the JSON key and the metric's `class` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::MissingInB => "missing_in_b",
            Class::MissingInA => "missing_in_a",
            Class::ValueDriftExplained => "value_drift_explained",
            Class::ValueDriftUnexplained => "value_drift_unexplained",
            Class::OrphanLink => "orphan_link",
            Class::UnlinkedMatch => "unlinked_match",
            Class::Ambiguous => "ambiguous",
        }
    }

    pub(super) fn index(self) -> usize {
        Class::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// The name of the outside-the-filter count: its JSON key and its metric's `class` label.
pub const OUTSIDE_FILTER: &str = "outside_filter";

/// One sample of a difference: the records' ids, and what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Sample {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub a_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub b_id: Option<String>,
    /// The canonical (A) name of the field that differs (`value_drift`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub a_value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub b_value: Option<Value>,
    /// Each side's SystemModstamp as read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub a_modstamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub b_modstamp: Option<String>,
    /// The match key (`unlinked_match`, `ambiguous`), as a JSON array.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub match_key: Option<String>,
    /// What else there is to say (`orphan_link`: which record is gone; `ambiguous`: how many
    /// records share the key, in which org).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

impl Sample {
    /// A sample naming one record of `org`.
    pub fn record(org: Org, id: &str, modstamp: Option<String>) -> Sample {
        match org {
            Org::A => Sample {
                a_id: Some(id.to_string()),
                a_modstamp: modstamp,
                ..Sample::default()
            },
            Org::B => Sample {
                b_id: Some(id.to_string()),
                b_modstamp: modstamp,
                ..Sample::default()
            },
        }
    }
}

/// How one org was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRead {
    /// Records read (after `sync.filter`).
    pub records: u64,
    /// `rest` or `bulk`.
    pub path: String,
    /// API calls the read made in that org (the login not counted), the lookups included.
    pub api_calls: u64,
    /// Of those, the calls that looked linked records up by Id outside `sync.filter`.
    #[serde(default)]
    pub lookup_calls: u64,
}

/// One class's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClassResult {
    pub count: u64,
    pub samples: Vec<Sample>,
}

/// The whole report (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    pub object: String,
    pub started_at: String,
    pub finished_at: String,
    /// Per org (`a`, `b`).
    pub read: BTreeMap<String, OrgRead>,
    /// Linked pairs whose values were compared field by field.
    pub compared_pairs: u64,
    /// Every class, by name (`missing_in_b`, ...), with its count and samples.
    pub differences: BTreeMap<String, ClassResult>,
    /// All classes' counts together: 0 when the orgs agree.
    pub total: u64,
    /// Linked pairs with a record that the filtered read did not return but that lives: it
    /// left `sync.filter`. Not a difference (not in `total`): the pair is compared as any
    /// other, and is never an orphan link.
    #[serde(default)]
    pub outside_filter: ClassResult,
    /// With `--repair`: the differences repaired, per class (every class named).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repaired: Option<BTreeMap<String, u64>>,
}

impl Report {
    /// The count of `class` (0 when the report does not list it).
    pub fn count(&self, class: Class) -> u64 {
        self.differences.get(class.as_str()).map_or(0, |c| c.count)
    }

    /// The count of `class` repaired (0 without `--repair`).
    pub fn repaired(&self, class: Class) -> u64 {
        self.repaired
            .as_ref()
            .and_then(|r| r.get(class.as_str()).copied())
            .unwrap_or(0)
    }

    /// Records what `--repair` repaired.
    pub fn set_repaired(&mut self, repaired: BTreeMap<String, u64>) {
        self.repaired = Some(repaired);
    }

    /// The differences found and not repaired: what the exit code is decided by.
    pub fn remaining(&self) -> u64 {
        let repaired: u64 = Class::ALL.iter().map(|c| self.repaired(*c)).sum();
        self.total.saturating_sub(repaired)
    }
}

/// The report as text: the summary table, then each class's samples.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "reconcile of {} ({} to {})",
        report.object, report.started_at, report.finished_at
    );
    for (org, read) in &report.read {
        let _ = writeln!(
            out,
            "  org {org}: {} records read through {} ({} API calls)",
            read.records, read.path, read.api_calls
        );
    }
    let _ = writeln!(out, "  linked pairs compared: {}", report.compared_pairs);
    let _ = writeln!(out);
    match &report.repaired {
        None => {
            let _ = writeln!(out, "{:<26} {:>10}", "class", "count");
            for class in Class::ALL {
                let _ = writeln!(out, "{:<26} {:>10}", class.as_str(), report.count(class));
            }
            let _ = writeln!(out, "{:<26} {:>10}", "total", report.total);
        }
        Some(repaired) => {
            let _ = writeln!(out, "{:<26} {:>10} {:>10}", "class", "count", "repaired");
            for class in Class::ALL {
                let _ = writeln!(
                    out,
                    "{:<26} {:>10} {:>10}",
                    class.as_str(),
                    report.count(class),
                    report.repaired(class)
                );
            }
            let all: u64 = repaired.values().sum();
            let _ = writeln!(out, "{:<26} {:>10} {:>10}", "total", report.total, all);
            if report.count(Class::Ambiguous) > 0 {
                let _ = writeln!(
                    out,
                    "\nambiguous keys are not repaired: link the right pair with \
                     `orgsync links link <A id> <B id>`"
                );
            }
        }
    }
    if report.outside_filter.count > 0 {
        let _ = writeln!(
            out,
            "\n{:<26} {:>10}  (linked pairs whose record left sync.filter; compared, not a \
             difference)",
            OUTSIDE_FILTER, report.outside_filter.count
        );
        for s in &report.outside_filter.samples {
            let _ = writeln!(out, "  {}", sample_line(s));
        }
    }
    if report.total == 0 {
        let _ = writeln!(out, "\nthe orgs agree");
        return out;
    }
    for class in Class::ALL {
        let Some(result) = report.differences.get(class.as_str()) else {
            continue;
        };
        if result.samples.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{} ({} of {}):",
            class.as_str(),
            result.samples.len(),
            result.count
        );
        for s in &result.samples {
            let _ = writeln!(out, "  {}", sample_line(s));
        }
    }
    out
}

fn sample_line(s: &Sample) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &s.a_id {
        parts.push(format!("A {id}"));
    }
    if let Some(id) = &s.b_id {
        parts.push(format!("B {id}"));
    }
    if let Some(field) = &s.field {
        let show = |v: &Option<Value>| v.as_ref().map_or("-".to_string(), Value::to_string);
        parts.push(format!(
            "{field}: A {} / B {}",
            show(&s.a_value),
            show(&s.b_value)
        ));
    }
    if let Some(key) = &s.match_key {
        parts.push(format!("key {key}"));
    }
    if s.a_modstamp.is_some() || s.b_modstamp.is_some() {
        parts.push(format!(
            "modstamps A {} / B {}",
            s.a_modstamp.as_deref().unwrap_or("-"),
            s.b_modstamp.as_deref().unwrap_or("-")
        ));
    }
    if let Some(note) = &s.note {
        parts.push(note.clone());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(count: u64) -> Report {
        let mut differences = BTreeMap::new();
        for class in Class::ALL {
            differences.insert(
                class.as_str().to_string(),
                ClassResult {
                    count: 0,
                    samples: vec![],
                },
            );
        }
        if count > 0 {
            differences.insert(
                "value_drift_unexplained".into(),
                ClassResult {
                    count,
                    samples: vec![Sample {
                        a_id: Some("006A".into()),
                        b_id: Some("006B".into()),
                        field: Some("Amount".into()),
                        a_value: Some(serde_json::json!(5)),
                        b_value: Some(serde_json::json!(7)),
                        ..Sample::default()
                    }],
                },
            );
        }
        Report {
            run_id: "r".into(),
            object: "Opportunity".into(),
            started_at: "s".into(),
            finished_at: "f".into(),
            read: BTreeMap::new(),
            compared_pairs: 3,
            differences,
            total: count,
            outside_filter: ClassResult::default(),
            repaired: None,
        }
    }

    #[test]
    fn text_has_the_table_then_the_samples() {
        let text = render_text(&report(2));
        let line = text
            .lines()
            .find(|l| l.starts_with("value_drift_unexplained "))
            .unwrap();
        assert_eq!(line.split_whitespace().nth(1), Some("2"), "{text}");
        let table = text.find(line).unwrap();
        let sample = text.find("A 006A, B 006B, Amount: A 5 / B 7").unwrap();
        assert!(table < sample, "{text}");
        assert!(render_text(&report(0)).contains("the orgs agree"));
    }

    #[test]
    fn outside_the_filter_is_its_own_count_and_not_a_difference() {
        let mut r = report(0);
        assert!(!render_text(&r).contains(OUTSIDE_FILTER));
        r.outside_filter = ClassResult {
            count: 1,
            samples: vec![Sample {
                a_id: Some("006A".into()),
                b_id: Some("006B".into()),
                note: Some("the record in A left sync.filter".into()),
                ..Sample::default()
            }],
        };
        assert_eq!(r.remaining(), 0);
        let text = render_text(&r);
        let line = text
            .lines()
            .find(|l| l.starts_with("outside_filter "))
            .unwrap();
        assert_eq!(line.split_whitespace().nth(1), Some("1"), "{text}");
        assert!(
            text.contains("A 006A, B 006B, the record in A left sync.filter"),
            "{text}"
        );
        assert!(text.contains("the orgs agree"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outside_filter"]["count"], 1);
        assert!(json["differences"].get(OUTSIDE_FILTER).is_none());
        // A report stored before the count existed still reads.
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("outside_filter");
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back.outside_filter.count, 0);
    }

    #[test]
    fn the_json_round_trips_and_names_every_class() {
        let r = report(2);
        let json = serde_json::to_value(&r).unwrap();
        for class in Class::ALL {
            assert!(json["differences"][class.as_str()]["count"].is_u64());
        }
        assert_eq!(
            json["differences"]["value_drift_unexplained"]["samples"][0]["field"],
            "Amount"
        );
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.count(Class::ValueDriftUnexplained), 2);
    }

    #[test]
    fn repaired_counts_decide_what_remains_and_show_in_the_table() {
        let mut r = report(2);
        assert_eq!(r.remaining(), 2);
        assert!(!render_text(&r).contains("repaired"));
        let mut repaired: BTreeMap<String, u64> = Class::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), 0))
            .collect();
        repaired.insert("value_drift_unexplained".into(), 2);
        r.set_repaired(repaired);
        assert_eq!(r.remaining(), 0);
        let text = render_text(&r);
        let line = text
            .lines()
            .find(|l| l.starts_with("value_drift_unexplained "))
            .unwrap();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            ["value_drift_unexplained", "2", "2"],
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["repaired"]["value_drift_unexplained"], 2);
        assert!(
            serde_json::to_value(report(1))
                .unwrap()
                .get("repaired")
                .is_none()
        );
    }
}
