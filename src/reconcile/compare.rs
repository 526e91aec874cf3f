//! The pure decisions of reconcile: a record's staged form (its match key normalized as the
//! matcher compares it, its mapped values canonical), whether a linked pair's drift is
//! explained (a change the next cycle carries) or not, and the tally of each class (a count
//! and the first N samples). The SQL that finds the candidates is in `store::reconcile`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::report::{Class, Sample};
use crate::store::ReconcileRow;
use crate::sync::{Canonical, Mapping, normalize, same_value};

/// A record's match key: the `match_by` fields' canonical values, text lowercased (SOQL's
/// `IN`, through which the matcher finds candidates, compares text without regard to case),
/// as a JSON array; `None` when there is no key or one of its fields is empty (the matcher
/// does not match such a record).
pub fn match_key(match_by: &[String], canonical: &Canonical) -> Option<String> {
    if match_by.is_empty() {
        return None;
    }
    let mut key = Vec::with_capacity(match_by.len());
    for field in match_by {
        let value = normalize(canonical.get(field)?)?;
        key.push(match value {
            Value::String(s) => Value::String(s.to_lowercase()),
            other => other,
        });
    }
    serde_json::to_string(&key).ok()
}

/// A text field of a query row (names compare without regard to case, as Salesforce's do).
fn text(record: &Map<String, Value>, field: &str) -> Option<String> {
    record
        .get(field)
        .or_else(|| {
            record
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                .map(|(_, v)| v)
        })
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A timestamp as a Salesforce row carries it (`SystemModstamp`, `LastModifiedDate`).
fn stamp(record: &Map<String, Value>, field: &str) -> Option<DateTime<Utc>> {
    text(record, field).and_then(|text| crate::salesforce::bulk::csv::parse_datetime(&text))
}

/// The staged form of a query row of `org`; `None` without an `Id`.
pub fn staged_row(
    mapping: &Mapping,
    match_by: &[String],
    org: crate::store::Org,
    record: &Map<String, Value>,
) -> Option<ReconcileRow> {
    let record_id = text(record, "Id")?;
    let canonical = mapping.to_canonical(org, record);
    Some(ReconcileRow {
        record_id,
        system_modstamp: stamp(record, "SystemModstamp"),
        last_modified: stamp(record, "LastModifiedDate"),
        last_modified_by: text(record, "LastModifiedById"),
        match_key: match_key(match_by, &canonical),
        vals: serde_json::to_string(&canonical).unwrap_or_else(|_| "{}".to_string()),
    })
}

/// Whether one side changed since the link's snapshot in a way the next cycle carries: its
/// SystemModstamp is after the link's (or the link has none), and the change was not made by
/// the integration user when the sync skips those (`skip_by`).
pub fn carried(
    now: Option<DateTime<Utc>>,
    at_link: Option<DateTime<Utc>>,
    last_modified_by: Option<&str>,
    skip_by: Option<&str>,
) -> bool {
    let changed = match (now, at_link) {
        (Some(now), Some(at_link)) => now > at_link,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let skipped = skip_by.is_some() && last_modified_by == skip_by;
    changed && !skipped
}

/// The canonical fields whose values differ, with both values (`null` when empty).
pub fn field_diffs(mapping: &Mapping, a: &Canonical, b: &Canonical) -> Vec<(String, Value, Value)> {
    mapping
        .canonical_fields()
        .filter(|f| !same_value(a.get(*f), b.get(*f)))
        .map(|f| {
            (
                f.to_string(),
                a.get(f).cloned().unwrap_or(Value::Null),
                b.get(f).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// A staged JSON object as a canonical map (an unreadable one is empty).
pub fn canonical_of(vals: &str) -> Canonical {
    serde_json::from_str(vals).unwrap_or_default()
}

/// The count and the first `limit` samples of each class.
#[derive(Debug, Clone)]
pub struct Tally {
    limit: usize,
    counts: [u64; Class::ALL.len()],
    samples: Vec<Vec<Sample>>,
}

impl Tally {
    pub fn new(limit: usize) -> Tally {
        Tally {
            limit,
            counts: [0; Class::ALL.len()],
            samples: vec![Vec::new(); Class::ALL.len()],
        }
    }

    /// Counts one difference of `class`; keeps `samples` (several for a pair whose fields
    /// differ) while the class has fewer than the limit.
    pub fn add(&mut self, class: Class, samples: impl IntoIterator<Item = Sample>) {
        let i = class.index();
        self.counts[i] += 1;
        for sample in samples {
            if self.samples[i].len() >= self.limit {
                break;
            }
            self.samples[i].push(sample);
        }
    }

    pub fn count(&self, class: Class) -> u64 {
        self.counts[class.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The counts and samples, class by class in [`Class::ALL`] order.
    pub fn into_parts(self) -> Vec<(Class, u64, Vec<Sample>)> {
        Class::ALL
            .iter()
            .zip(self.counts)
            .zip(self.samples)
            .map(|((c, n), s)| (*c, n, s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::store::Org;

    fn at(sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, sec).unwrap()
    }

    fn mapping() -> Mapping {
        let fields = vec![
            "Name".to_string(),
            "Amount".to_string(),
            "StageName".to_string(),
        ];
        let mut stage = BTreeMap::new();
        stage.insert("Closed Won".to_string(), "Won".to_string());
        let mut value_map = BTreeMap::new();
        value_map.insert("StageName".to_string(), stage);
        let mut field_map = BTreeMap::new();
        field_map.insert("Amount".to_string(), "Amount__c".to_string());
        Mapping::new(&fields, &field_map, &value_map).unwrap()
    }

    #[test]
    fn a_b_row_is_staged_in_canonical_form_with_the_matchers_key() {
        let Value::Object(record) = json!({
            "attributes": {"type": "Opportunity"},
            "Id": "006B1",
            "SystemModstamp": "2026-01-01T00:00:05.000+0000",
            "LastModifiedDate": "2026-01-01T00:00:04.000+0000",
            "LastModifiedById": "005B",
            "Name": "Big Deal",
            "Amount__c": 5000.0,
            "StageName": "Won",
        }) else {
            unreachable!()
        };
        let row = staged_row(&mapping(), &["Name".to_string()], Org::B, &record).unwrap();
        assert_eq!(row.record_id, "006B1");
        assert_eq!(row.system_modstamp, Some(at(5)));
        assert_eq!(row.last_modified, Some(at(4)));
        assert_eq!(row.last_modified_by.as_deref(), Some("005B"));
        assert_eq!(row.match_key.as_deref(), Some("[\"big deal\"]"));
        assert_eq!(
            row.vals,
            r#"{"Amount":5000,"Name":"Big Deal","StageName":"Closed Won"}"#
        );
    }

    #[test]
    fn an_empty_key_field_gives_no_key() {
        let mut canonical = Canonical::new();
        canonical.insert("Amount".into(), json!(5));
        let by = ["Name".to_string(), "Amount".to_string()];
        assert_eq!(match_key(&by, &canonical), None);
        canonical.insert("Name".into(), json!("X"));
        assert_eq!(match_key(&by, &canonical).as_deref(), Some("[\"x\",5]"));
        assert_eq!(match_key(&[], &canonical), None);
    }

    #[test]
    fn drift_is_explained_only_by_a_change_the_sync_carries() {
        // Changed after the link's stamp, by a person: carried.
        assert!(carried(
            Some(at(5)),
            Some(at(1)),
            Some("005H"),
            Some("005I")
        ));
        // By the integration user, whose changes the sync skips: not carried.
        assert!(!carried(
            Some(at(5)),
            Some(at(1)),
            Some("005I"),
            Some("005I")
        ));
        // Same change when the sync does not skip them.
        assert!(carried(Some(at(5)), Some(at(1)), Some("005I"), None));
        // Not changed since the snapshot.
        assert!(!carried(Some(at(1)), Some(at(1)), Some("005H"), None));
        assert!(carried(Some(at(1)), None, None, None));
    }

    #[test]
    fn field_diffs_compare_after_normalization() {
        let m = mapping();
        let a = canonical_of(r#"{"Name":"X","Amount":5000}"#);
        let b = canonical_of(r#"{"Name":"X","Amount":5000.0,"StageName":"Won"}"#);
        assert_eq!(
            field_diffs(&m, &a, &b),
            vec![("StageName".to_string(), Value::Null, json!("Won"))]
        );
    }

    #[test]
    fn a_tally_counts_everything_and_keeps_n_samples() {
        let mut t = Tally::new(2);
        for i in 0..5 {
            t.add(
                Class::MissingInB,
                [Sample::record(Org::A, &format!("a{i}"), None)],
            );
        }
        assert_eq!(t.count(Class::MissingInB), 5);
        assert_eq!(t.total(), 5);
        let parts = t.into_parts();
        let (_, n, samples) = &parts[Class::MissingInB.index()];
        assert_eq!((*n, samples.len()), (5, 2));
    }
}
