//! Matching: the page's one lookup query in the target and the choice of candidates for the
//! unlinked rows, then the plan of every looked-up row. Pure: the pass runs the query
//! (`pass`), waits for its turn at the gate and filters out targets already claimed or linked
//! (`gate`, the store), and calls these functions for the rest.
//!
//! The lookup: linked rows by target `Id`, unlinked rows by external id (their source id)
//! and/or by the `match_by` fields, OR-ed into one query. A candidate for an unlinked row is
//! the target record holding its id in the external id field; else (none found) those with
//! equal `match_by` values (text without regard to case, as SOQL's `IN` compares) and no
//! external id.
//!
//! A live row without a live link whose latest link is a tombstone is decided an undelete
//! (`plan::plan_tombstoned`); its candidates stay on the row for the undelete stage, which
//! plans it as an unlinked row when its target turns out to be gone.

use std::collections::HashMap;

use serde_json::Value;

use super::mapping::{Mapping, same_value};
use super::plan::{
    Decision, PageItem, Policy, SourceRow, Target, TargetRow, plan_page, plan_tombstoned,
};
use super::ports::{FieldIn, QueryKind, RecordQuery};
use super::rows::{Found, RowState};
use crate::store::Org;

/// What matching needs of the pass's configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keys<'c> {
    pub object: &'c str,
    /// `sync.match_by`, canonical names.
    pub match_by: &'c [String],
    /// `sync.external_id_field`.
    pub external_id_field: Option<&'c str>,
}

/// The page's one lookup query in `target` for the looked-up `rows`, selecting `fields`.
pub(super) fn lookup_query<'r>(
    keys: Keys<'_>,
    mapping: &Mapping,
    target: Org,
    fields: Vec<String>,
    rows: impl Iterator<Item = &'r RowState>,
) -> RecordQuery {
    let mut linked_ids: Vec<Value> = Vec::new();
    let mut unlinked: Vec<&SourceRow> = Vec::new();
    for state in rows {
        match state.linked_target() {
            Some(id) => linked_ids.push(Value::String(id.to_string())),
            None => unlinked.push(&state.row),
        }
    }
    let mut any_of: Vec<Vec<FieldIn>> = Vec::new();
    if !linked_ids.is_empty() {
        any_of.push(vec![FieldIn {
            field: "Id".to_string(),
            values: linked_ids,
        }]);
    }
    if !unlinked.is_empty() {
        if let Some(ext) = keys.external_id_field {
            any_of.push(vec![FieldIn {
                field: ext.to_string(),
                values: unlinked
                    .iter()
                    .map(|r| Value::String(r.id.clone()))
                    .collect(),
            }]);
        }
        let keyed: Vec<&&SourceRow> = unlinked
            .iter()
            .filter(|r| match_key(keys.match_by, r).is_some())
            .collect();
        if !keyed.is_empty() {
            let conjunction = keys
                .match_by
                .iter()
                .map(|field| {
                    let mut values: Vec<Value> = Vec::new();
                    for row in &keyed {
                        if let Some(v) = row.values.get(field) {
                            let v = mapping.value_in(target, field, v);
                            if !values.iter().any(|x| same_value(Some(x), Some(&v))) {
                                values.push(v);
                            }
                        }
                    }
                    FieldIn {
                        field: mapping
                            .field_name(target, field)
                            .unwrap_or(field)
                            .to_string(),
                        values,
                    }
                })
                .collect();
            any_of.push(conjunction);
        }
    }
    RecordQuery {
        object: keys.object.to_string(),
        fields,
        kind: QueryKind::Lookup { any_of },
    }
}

/// The row's `match_by` values, when all are set.
pub(super) fn match_key<'r>(match_by: &[String], row: &'r SourceRow) -> Option<Vec<&'r Value>> {
    if match_by.is_empty() {
        return None;
    }
    match_by.iter().map(|f| row.values.get(f)).collect()
}

/// Target rows that could be `row`'s counterpart, sorted by id: the one holding its id in
/// the external id field; else (none found) those with equal `match_by` values and no
/// external id.
pub(super) fn candidates_for<'t>(
    keys: Keys<'_>,
    row: &SourceRow,
    targets: &'t HashMap<String, TargetRow>,
) -> Vec<&'t TargetRow> {
    let mut found: Vec<&TargetRow> = Vec::new();
    if keys.external_id_field.is_some() {
        found = targets
            .values()
            .filter(|t| t.external_id.as_deref() == Some(row.id.as_str()))
            .collect();
    }
    if found.is_empty()
        && let Some(key) = match_key(keys.match_by, row)
    {
        found = targets
            .values()
            .filter(|t| keys.external_id_field.is_none() || t.external_id.is_none())
            .filter(|t| {
                keys.match_by
                    .iter()
                    .zip(&key)
                    .all(|(f, v)| same_key(t.values.get(f), Some(v)))
            })
            .collect();
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

/// Gives every looked-up row what the lookup found: a linked row its target record (or
/// `None`, gone), an unlinked row its candidates (never a record it was unlinked from).
pub(super) fn attach(keys: Keys<'_>, rows: &mut [RowState], targets: &HashMap<String, TargetRow>) {
    for state in rows.iter_mut().filter(|s| s.looked_up()) {
        state.target = match state.linked_target() {
            Some(id) => Found::Linked(targets.get(id).cloned()),
            None => Found::Candidates(
                candidates_for(keys, &state.row, targets)
                    .into_iter()
                    .filter(|t| !state.barred.contains(&t.id))
                    .cloned()
                    .collect(),
            ),
        };
    }
}

/// Whether some unlinked row has a candidate.
pub(super) fn has_candidates(rows: &[RowState]) -> bool {
    rows.iter()
        .any(|s| matches!(&s.target, Found::Candidates(c) if !c.is_empty()))
}

/// Drops the candidates `taken` says are taken (claimed by an earlier page, or linked to
/// another record).
pub(super) fn drop_candidates(rows: &mut [RowState], taken: impl Fn(&str) -> bool) {
    for state in rows.iter_mut() {
        if let Found::Candidates(list) = &mut state.target {
            list.retain(|t| !taken(&t.id));
        }
    }
}

/// The ids of every candidate left, sorted, once each.
pub(super) fn candidate_ids(rows: &[RowState]) -> Vec<String> {
    let mut ids: Vec<String> = rows
        .iter()
        .filter_map(|s| match &s.target {
            Found::Candidates(list) => Some(list.iter().map(|t| t.id.clone())),
            _ => None,
        })
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Plans the looked-up rows with the page-level rule ([`plan_page`]): each gets its decision.
pub(super) fn decide(rows: &mut [RowState], policy: &Policy, mapping: &Mapping) {
    let decisions: Vec<Decision> = {
        let candidates: Vec<Vec<&TargetRow>> = rows
            .iter()
            .filter(|s| s.looked_up())
            .map(|s| match &s.target {
                Found::Candidates(list) => list.iter().collect(),
                _ => Vec::new(),
            })
            .collect();
        let items: Vec<PageItem<'_>> = rows
            .iter()
            .filter(|s| s.looked_up())
            .zip(&candidates)
            .map(|(s, candidates)| PageItem {
                row: &s.row,
                target: match (&s.link, &s.target) {
                    (Some(link), Found::Linked(row)) => Target::Linked {
                        link,
                        row: row.as_ref(),
                    },
                    (Some(link), _) => Target::Linked { link, row: None },
                    (None, _) => Target::Unlinked { candidates },
                },
            })
            .collect();
        plan_page(&items, policy, mapping)
    };
    for (state, decision) in rows.iter_mut().filter(|s| s.looked_up()).zip(decisions) {
        // A live row whose pair was deleted: an undelete (its candidates wait for the
        // undelete stage, in case the target is gone).
        let undelete = match (&state.link, &state.tombstone) {
            (None, Some(tombstone)) => plan_tombstoned(&state.row, tombstone),
            _ => None,
        };
        state.decision = Some(undelete.unwrap_or(decision));
    }
}

/// Match-key equality: text compares without regard to case, as SOQL's `IN` that found the
/// candidates does; other values as [`same_value`].
pub(super) fn same_key(left: Option<&Value>, right: Option<&Value>) -> bool {
    match (left, right) {
        (Some(Value::String(l)), Some(Value::String(r))) => l.to_lowercase() == r.to_lowercase(),
        _ => same_value(left, right),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::config::ConflictPolicy;
    use crate::store::Direction;
    use crate::sync::plan::{Action, LinkView, Triage};

    fn mapping() -> Mapping {
        let fields: Vec<String> = ["Name", "Amount"].iter().map(|s| s.to_string()).collect();
        Mapping::new(&fields, &BTreeMap::new(), &BTreeMap::new()).expect("mapping")
    }

    fn at(minute: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 10, minute, 0)
            .single()
            .expect("time")
    }

    fn values(v: Value) -> BTreeMap<String, Value> {
        match v {
            Value::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    fn state(id: &str, link: Option<&str>, v: Value) -> RowState {
        let row = SourceRow {
            id: id.into(),
            system_modstamp: at(5),
            last_modified_date: at(5),
            last_modified_by: None,
            values: values(v),
            parent: None,
            deleted: false,
        };
        let link = link.map(|target_id| LinkView {
            target_id: target_id.into(),
            source_modstamp: Some(at(1)),
            snapshot: None,
        });
        let mut state = RowState::new(row, link, None);
        state.triage = Some(Triage::Lookup);
        state
    }

    fn target(id: &str, external_id: Option<&str>, v: Value) -> TargetRow {
        TargetRow {
            id: id.into(),
            system_modstamp: at(2),
            last_modified_date: at(2),
            external_id: external_id.map(str::to_string),
            values: values(v),
        }
    }

    fn keys<'c>(match_by: &'c [String], ext: Option<&'c str>) -> Keys<'c> {
        Keys {
            object: "Opportunity",
            match_by,
            external_id_field: ext,
        }
    }

    #[test]
    fn the_lookup_ors_linked_ids_external_ids_and_match_keys() {
        let match_by = vec!["Name".to_string()];
        let rows = [
            state("a1", Some("b1"), json!({"Name": "One"})),
            state("a2", None, json!({"Name": "Two"})),
            // No match key: looked up by external id only.
            state("a3", None, json!({"Amount": 3})),
        ];
        let query = lookup_query(
            keys(&match_by, Some("Ext__c")),
            &mapping(),
            Org::B,
            vec!["Name".into()],
            rows.iter(),
        );
        let QueryKind::Lookup { any_of } = query.kind else {
            panic!("a lookup: {query:?}")
        };
        assert_eq!(any_of.len(), 3);
        assert_eq!(any_of[0][0].field, "Id");
        assert_eq!(any_of[0][0].values, vec![json!("b1")]);
        assert_eq!(any_of[1][0].field, "Ext__c");
        assert_eq!(any_of[1][0].values, vec![json!("a2"), json!("a3")]);
        assert_eq!(any_of[2][0].field, "Name");
        assert_eq!(any_of[2][0].values, vec![json!("Two")]);
    }

    #[test]
    fn candidates_prefer_the_external_id_then_match_keys_without_one() {
        let match_by = vec!["Name".to_string()];
        let targets: HashMap<String, TargetRow> = [
            target("b2", None, json!({"Name": "acme"})),
            target("b1", None, json!({"Name": "ACME"})),
            target("b3", Some("other"), json!({"Name": "Acme"})),
        ]
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
        let row = state("a1", None, json!({"Name": "Acme"}));
        let ids = |found: Vec<&TargetRow>| found.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        // Equal names without regard to case, sorted, never one holding another's id.
        let found = candidates_for(keys(&match_by, Some("Ext__c")), &row.row, &targets);
        assert_eq!(ids(found), ["b1", "b2"]);
        // The one holding the row's id wins alone.
        let mut with_ext = targets.clone();
        with_ext.insert("b4".into(), target("b4", Some("a1"), json!({"Name": "x"})));
        let found = candidates_for(keys(&match_by, Some("Ext__c")), &row.row, &with_ext);
        assert_eq!(ids(found), ["b4"]);
        // Without a match key and without an external id field: none.
        assert!(candidates_for(keys(&[], None), &row.row, &targets).is_empty());
    }

    #[test]
    fn attach_drop_and_decide_carry_each_row_forward() {
        let match_by = vec!["Name".to_string()];
        let mut rows = vec![
            state("a1", Some("b1"), json!({"Name": "One"})),
            state("a2", None, json!({"Name": "Two", "Amount": 2})),
            state("a3", None, json!({"Name": "Three"})),
        ];
        rows[2].triage = Some(Triage::Drop);
        let targets: HashMap<String, TargetRow> = [
            target("b1", None, json!({"Name": "One"})),
            target("b2", None, json!({"Name": "Two", "Amount": 2})),
            target("b9", None, json!({"Name": "Two", "Amount": 2})),
        ]
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
        attach(keys(&match_by, None), &mut rows, &targets);
        assert!(matches!(&rows[0].target, Found::Linked(Some(t)) if t.id == "b1"));
        assert!(matches!(&rows[1].target, Found::Candidates(c) if c.len() == 2));
        assert_eq!(rows[2].target, Found::Nothing);
        assert!(has_candidates(&rows));
        assert_eq!(candidate_ids(&rows), ["b2", "b9"]);
        drop_candidates(&mut rows, |id| id == "b9");
        assert_eq!(candidate_ids(&rows), ["b2"]);

        let policy = Policy {
            direction: Direction::AToB,
            conflict: ConflictPolicy::LastWriterWins,
            delete_conflict: crate::config::DeleteConflictPolicy::KeepEdit,
        };
        decide(&mut rows, &policy, &mapping());
        assert!(rows[0].decision.is_some());
        assert_eq!(
            rows[1].decision.as_ref().map(|d| d.action.clone()),
            Some(Action::Link {
                target_id: "b2".into()
            })
        );
        assert!(rows[2].decision.is_none(), "a dropped row is not planned");
    }
}
