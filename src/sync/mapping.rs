//! Mapping between each org's records and the canonical form the engine compares.
//!
//! The canonical form of a record is org A's view of it: A's field names and A's values,
//! normalised so that equal data compares equal whatever org it came from. `sync.field_map`
//! renames fields (A name -> B name) and `sync.value_map` translates values per field (A value
//! -> B value, one-to-one, so B -> A is the inverted map). Normalisation:
//! - JSON numbers compare numerically: `5000`, `5000.0` and `5.0e3` are the same value;
//! - `null`, an absent field and the empty string are the same (Salesforce stores an empty
//!   text field as null, so writing `""` and reading it back gives `null`);
//! - every other value (strings, dates as `YYYY-MM-DD`, booleans) compares exactly.
//!
//! Canonical maps never hold `null`: a field that is empty is simply absent. Values a value map
//! does not list pass through unchanged in both directions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::config::{AccountPolicy, Settings};
use crate::store::Org;

/// A record's mapped fields in canonical form: A's field names, normalised A values, no nulls.
pub type Canonical = BTreeMap<String, Value>;

/// The configured mapping is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("sync.fields is empty: there is nothing to sync")]
    NoFields,
    #[error("sync.fields lists {0:?} twice")]
    DuplicateField(String),
    #[error("sync.field_map renames {0:?}, which is not one of sync.fields")]
    UnknownRenamedField(String),
    #[error("fields {first:?} and {second:?} would both be {b_name:?} in org B")]
    DuplicateBName {
        first: String,
        second: String,
        b_name: String,
    },
    #[error("sync.value_map has values for {0:?}, which is not one of sync.fields")]
    UnknownValueField(String),
    #[error(
        "sync.value_map.{field} maps both {first:?} and {second:?} to {b_value:?}: the map must be one-to-one"
    )]
    NotOneToOne {
        field: String,
        first: String,
        second: String,
        b_value: String,
    },
}

/// One mapped field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldSpec {
    /// Name in org A (the canonical name).
    a_name: String,
    /// Name in org B.
    b_name: String,
    /// A value -> B value.
    a_to_b: BTreeMap<String, String>,
    /// B value -> A value (the inverse of `a_to_b`).
    b_to_a: BTreeMap<String, String>,
}

/// The validated field and value mapping between the two orgs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    fields: Vec<FieldSpec>,
}

impl Mapping {
    /// Builds the mapping from `sync.fields`, `sync.field_map` and `sync.value_map`.
    pub fn new(
        fields: &[String],
        field_map: &BTreeMap<String, String>,
        value_map: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Mapping, MappingError> {
        if fields.is_empty() {
            return Err(MappingError::NoFields);
        }
        let mut seen = BTreeSet::new();
        for field in fields {
            if !seen.insert(field.to_ascii_lowercase()) {
                return Err(MappingError::DuplicateField(field.clone()));
            }
        }
        if let Some(unknown) = field_map.keys().find(|k| !fields.contains(k)) {
            return Err(MappingError::UnknownRenamedField(unknown.clone()));
        }
        if let Some(unknown) = value_map.keys().find(|k| !fields.contains(k)) {
            return Err(MappingError::UnknownValueField(unknown.clone()));
        }
        let mut b_names: BTreeMap<String, &str> = BTreeMap::new();
        let mut specs = Vec::with_capacity(fields.len());
        for a_name in fields {
            let b_name = field_map.get(a_name).unwrap_or(a_name).clone();
            if let Some(first) = b_names.insert(b_name.to_ascii_lowercase(), a_name) {
                return Err(MappingError::DuplicateBName {
                    first: first.to_string(),
                    second: a_name.clone(),
                    b_name,
                });
            }
            let a_to_b = value_map.get(a_name).cloned().unwrap_or_default();
            let mut b_to_a = BTreeMap::new();
            for (a_value, b_value) in &a_to_b {
                if let Some(first) = b_to_a.insert(b_value.clone(), a_value.clone()) {
                    return Err(MappingError::NotOneToOne {
                        field: a_name.clone(),
                        first,
                        second: a_value.clone(),
                        b_value: b_value.clone(),
                    });
                }
            }
            specs.push(FieldSpec {
                a_name: a_name.clone(),
                b_name,
                a_to_b,
                b_to_a,
            });
        }
        Ok(Mapping { fields: specs })
    }

    /// The mapping configured in `settings`.
    /// With `account.sync_policy = "syncAccount"` the parent's `Account.Name` is a mapped
    /// field too (see `accounts`).
    pub fn from_settings(settings: &Settings) -> Result<Mapping, MappingError> {
        let mapping = Mapping::new(
            &settings.sync.fields,
            &settings.sync.field_map,
            &settings.sync.value_map,
        )?;
        Ok(match settings.account.sync_policy {
            AccountPolicy::SyncAccount => {
                mapping.with_parent_field(super::accounts::ACCOUNT_NAME_PATH)
            }
            _ => mapping,
        })
    }

    /// Adds a field of a parent record reached through a relationship, e.g. `Account.Name`
    /// (same path in both orgs, no value map). Query rows carry it as a nested object; the
    /// canonical form keeps it under its dotted path, so a change of parent is a change like
    /// any other. Writing it is the caller's business (a relationship is written as an id).
    pub fn with_parent_field(mut self, path: &str) -> Mapping {
        if self.spec(path).is_none() {
            self.fields.push(FieldSpec {
                a_name: path.to_string(),
                b_name: path.to_string(),
                a_to_b: BTreeMap::new(),
                b_to_a: BTreeMap::new(),
            });
        }
        self
    }

    /// The canonical (A) names of the mapped fields, in configuration order.
    pub fn canonical_fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.a_name.as_str())
    }

    /// The names of the mapped fields in `org`, in configuration order (for SELECT lists).
    pub fn field_names(&self, org: Org) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| f.name_in(org).to_string())
            .collect()
    }

    /// The name in `org` of the canonical field `canonical`, if it is mapped.
    pub fn field_name(&self, org: Org, canonical: &str) -> Option<&str> {
        self.spec(canonical).map(|f| f.name_in(org))
    }

    fn spec(&self, canonical: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.a_name == canonical)
    }

    /// The canonical form of a record as `org` returned it (a query row: extra keys such as
    /// `attributes` or `Id` are ignored). Field names are matched exactly first, then without
    /// regard to case, as Salesforce does.
    pub fn to_canonical(&self, org: Org, record: &Map<String, Value>) -> Canonical {
        let mut canonical = Canonical::new();
        for spec in &self.fields {
            let Some(raw) = lookup(record, spec.name_in(org)) else {
                continue;
            };
            let value = match org {
                Org::A => raw.clone(),
                Org::B => translate(raw, &spec.b_to_a),
            };
            if let Some(value) = normalize(&value) {
                canonical.insert(spec.a_name.clone(), value);
            }
        }
        canonical
    }

    /// The value of canonical field `canonical` as `org` holds it (value map applied).
    /// `value` may be `Value::Null` (a field to clear). Unmapped fields pass through.
    pub fn value_in(&self, org: Org, canonical: &str, value: &Value) -> Value {
        match (org, self.spec(canonical)) {
            (Org::B, Some(spec)) => translate(value, &spec.a_to_b),
            _ => value.clone(),
        }
    }

    /// A write body for `org`: the given canonical fields under `org`'s names with `org`'s
    /// values. A `Value::Null` entry clears the field in the target.
    pub fn to_org(&self, org: Org, fields: &BTreeMap<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (canonical, value) in fields {
            let name = self
                .field_name(org, canonical)
                .unwrap_or(canonical)
                .to_string();
            out.insert(name, self.value_in(org, canonical, value));
        }
        out
    }

    /// The canonical fields whose values differ between `left` and `right` (absent == null).
    pub fn diff(&self, left: &Canonical, right: &Canonical) -> Vec<String> {
        self.canonical_fields()
            .filter(|f| !same_value(left.get(*f), right.get(*f)))
            .map(str::to_string)
            .collect()
    }

    /// Whether two canonical records hold the same values in every mapped field.
    pub fn equal(&self, left: &Canonical, right: &Canonical) -> bool {
        self.canonical_fields()
            .all(|f| same_value(left.get(f), right.get(f)))
    }
}

impl FieldSpec {
    fn name_in(&self, org: Org) -> &str {
        match org {
            Org::A => &self.a_name,
            Org::B => &self.b_name,
        }
    }
}

/// The value at `path` in a query row: a field name, or `Relationship.Field` through a nested
/// parent object (JSON `null` when the record has no parent). Names match exactly first, then
/// without regard to case, as Salesforce's do.
pub fn lookup<'r>(record: &'r Map<String, Value>, path: &str) -> Option<&'r Value> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let value = record.get(head).or_else(|| {
        record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(head))
            .map(|(_, v)| v)
    })?;
    match (rest, value) {
        (None, value) => Some(value),
        (Some(rest), Value::Object(parent)) => lookup(parent, rest),
        (Some(_), _) => None,
    }
}

fn translate(value: &Value, map: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => match map.get(s) {
            Some(mapped) => Value::String(mapped.clone()),
            None => value.clone(),
        },
        other => other.clone(),
    }
}

/// The normalised form of a value, or `None` when it is empty (null or `""`).
/// Integral numbers become integers so that `5000.0` and `5000` are the same JSON value.
pub fn normalize(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                return Some(value.clone());
            }
            let f = n.as_f64()?;
            // Integral and exactly representable: store as an integer.
            if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                #[allow(clippy::cast_possible_truncation)]
                return Some(Value::from(f as i64));
            }
            Some(value.clone())
        }
        other => Some(other.clone()),
    }
}

/// Whether two (possibly absent) values are the same after normalisation.
pub fn same_value(left: Option<&Value>, right: Option<&Value>) -> bool {
    let left = left.and_then(normalize);
    let right = right.and_then(normalize);
    match (&left, &right) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => left == right,
    }
}

/// A canonical map as stored in a link's snapshot.
pub fn to_snapshot(canonical: &Canonical) -> Map<String, Value> {
    canonical
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A link's stored snapshot as a canonical map (normalised, nulls dropped).
pub fn from_snapshot(snapshot: &Map<String, Value>) -> Canonical {
    snapshot
        .iter()
        .filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn mapping() -> Mapping {
        let fields = strings(&["Name", "Amount", "StageName", "CloseDate", "Description"]);
        let field_map = BTreeMap::from([("Description".to_string(), "Notes__c".to_string())]);
        let value_map = BTreeMap::from([(
            "StageName".to_string(),
            BTreeMap::from([
                ("Prospecting".to_string(), "Lead".to_string()),
                ("Closed Won".to_string(), "Won".to_string()),
            ]),
        )]);
        Mapping::new(&fields, &field_map, &value_map).expect("valid mapping")
    }

    fn record(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn b_record_becomes_canonical_with_a_names_and_values() {
        let m = mapping();
        let b = record(json!({
            "attributes": {"type": "Opportunity"}, "Id": "006B",
            "Name": "Deal", "Amount": 5000.0, "StageName": "Won",
            "CloseDate": "2024-05-01", "Notes__c": "hello"
        }));
        let canonical = m.to_canonical(Org::B, &b);
        assert_eq!(
            canonical,
            Canonical::from([
                ("Name".into(), json!("Deal")),
                ("Amount".into(), json!(5000)),
                ("StageName".into(), json!("Closed Won")),
                ("CloseDate".into(), json!("2024-05-01")),
                ("Description".into(), json!("hello")),
            ])
        );
    }

    #[test]
    fn round_trip_a_to_b_to_a_is_identity() {
        let m = mapping();
        let a = record(json!({
            "Name": "Deal", "Amount": 12.5, "StageName": "Prospecting",
            "CloseDate": "2024-05-01", "Description": "x"
        }));
        let canonical = m.to_canonical(Org::A, &a);
        let all: BTreeMap<String, Value> = canonical.clone();
        let b = m.to_org(Org::B, &all);
        assert_eq!(b.get("StageName"), Some(&json!("Lead")));
        assert_eq!(b.get("Notes__c"), Some(&json!("x")));
        assert!(b.get("Description").is_none());
        let back = m.to_canonical(Org::B, &b);
        assert_eq!(back, canonical);
        assert_eq!(m.to_org(Org::A, &back), a);
    }

    #[test]
    fn inverse_value_map_translates_b_values_back() {
        let m = mapping();
        let b = record(json!({"StageName": "Lead"}));
        assert_eq!(
            m.to_canonical(Org::B, &b).get("StageName"),
            Some(&json!("Prospecting"))
        );
        // Values the map does not list pass through both ways.
        let b = record(json!({"StageName": "Negotiation"}));
        assert_eq!(
            m.to_canonical(Org::B, &b).get("StageName"),
            Some(&json!("Negotiation"))
        );
        assert_eq!(
            m.value_in(Org::B, "StageName", &json!("Negotiation")),
            json!("Negotiation")
        );
        // A's values are canonical: never translated.
        assert_eq!(
            m.value_in(Org::A, "StageName", &json!("Prospecting")),
            json!("Prospecting")
        );
    }

    #[test]
    fn numbers_compare_numerically() {
        assert!(same_value(Some(&json!(5000)), Some(&json!(5000.0))));
        assert!(same_value(Some(&json!(5e3)), Some(&json!(5000))));
        assert!(!same_value(Some(&json!(5000)), Some(&json!(5000.5))));
        assert!(same_value(Some(&json!(0.1)), Some(&json!(0.1))));
        assert_eq!(normalize(&json!(5000.0)), Some(json!(5000)));
        assert_eq!(normalize(&json!(-3.0)), Some(json!(-3)));
        assert_eq!(normalize(&json!(2.25)), Some(json!(2.25)));
    }

    #[test]
    fn null_absent_and_empty_string_are_the_same() {
        assert!(same_value(None, Some(&Value::Null)));
        assert!(same_value(Some(&json!("")), None));
        assert!(!same_value(Some(&json!("x")), None));
        let m = mapping();
        let canonical = m.to_canonical(Org::A, &record(json!({"Name": "x", "Amount": null})));
        assert!(!canonical.contains_key("Amount"));
    }

    #[test]
    fn strings_and_dates_compare_exactly() {
        assert!(!same_value(Some(&json!("Deal")), Some(&json!("deal"))));
        assert!(same_value(
            Some(&json!("2024-05-01")),
            Some(&json!("2024-05-01"))
        ));
        assert!(!same_value(
            Some(&json!("2024-05-01")),
            Some(&json!("2024-05-02"))
        ));
        assert!(!same_value(Some(&json!("5000")), Some(&json!(5000))));
    }

    #[test]
    fn diff_lists_fields_that_differ() {
        let m = mapping();
        let left = m.to_canonical(Org::A, &record(json!({"Name": "x", "Amount": 1})));
        let right = m.to_canonical(
            Org::A,
            &record(json!({"Name": "x", "Amount": 1.0, "Description": "d"})),
        );
        assert_eq!(m.diff(&left, &right), vec!["Description".to_string()]);
        assert!(!m.equal(&left, &right));
        assert!(m.equal(&left, &left));
    }

    #[test]
    fn field_names_match_without_case() {
        let m = mapping();
        let canonical = m.to_canonical(Org::B, &record(json!({"notes__C": "y"})));
        assert_eq!(canonical.get("Description"), Some(&json!("y")));
    }

    #[test]
    fn null_write_clears_the_field() {
        let m = mapping();
        let body = m.to_org(
            Org::B,
            &BTreeMap::from([("Description".to_string(), Value::Null)]),
        );
        assert_eq!(body.get("Notes__c"), Some(&Value::Null));
    }

    #[test]
    fn invalid_mappings_are_rejected() {
        let fields = strings(&["Name", "StageName"]);
        let not_one_to_one = BTreeMap::from([(
            "StageName".to_string(),
            BTreeMap::from([
                ("A".to_string(), "X".to_string()),
                ("B".to_string(), "X".to_string()),
            ]),
        )]);
        assert!(matches!(
            Mapping::new(&fields, &BTreeMap::new(), &not_one_to_one),
            Err(MappingError::NotOneToOne { .. })
        ));
        let clash = BTreeMap::from([("StageName".to_string(), "Name".to_string())]);
        assert!(matches!(
            Mapping::new(&fields, &clash, &BTreeMap::new()),
            Err(MappingError::DuplicateBName { .. })
        ));
        assert_eq!(
            Mapping::new(&[], &BTreeMap::new(), &BTreeMap::new()),
            Err(MappingError::NoFields)
        );
        let unknown = BTreeMap::from([("Amount".to_string(), "Amt__c".to_string())]);
        assert!(matches!(
            Mapping::new(&fields, &unknown, &BTreeMap::new()),
            Err(MappingError::UnknownRenamedField(_))
        ));
    }

    #[test]
    fn parent_fields_are_read_through_the_relationship() {
        let m = mapping().with_parent_field("Account.Name");
        let row = record(json!({
            "Name": "x",
            "Account": {"attributes": {"type": "Account"}, "Name": "Acme"}
        }));
        assert_eq!(
            m.to_canonical(Org::B, &row).get("Account.Name"),
            Some(&json!("Acme"))
        );
        let orphan = record(json!({"Name": "x", "Account": null}));
        assert!(!m.to_canonical(Org::A, &orphan).contains_key("Account.Name"));
        assert!(m.field_names(Org::A).contains(&"Account.Name".to_string()));
    }

    #[test]
    fn snapshots_round_trip() {
        let m = mapping();
        let canonical = m.to_canonical(Org::A, &record(json!({"Name": "x", "Amount": 3.0})));
        assert_eq!(from_snapshot(&to_snapshot(&canonical)), canonical);
    }
}
