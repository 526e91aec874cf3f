//! Tests of the pure decisions for deleted source rows: triage and `plan` (issue 13).

use super::*;
use crate::config::DeleteConflictPolicy;
use chrono::TimeZone;
use serde_json::json;

fn mapping() -> Mapping {
    let fields: Vec<String> = ["Name", "Amount"].iter().map(|s| s.to_string()).collect();
    Mapping::new(&fields, &BTreeMap::new(), &BTreeMap::new()).expect("mapping")
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 10, minute, 0)
        .single()
        .expect("time")
}

fn values(v: Value) -> Canonical {
    let Value::Object(map) = v else {
        panic!("object")
    };
    map.into_iter().collect()
}

fn deleted(minute: u32) -> SourceRow {
    SourceRow {
        id: "006A".into(),
        system_modstamp: at(minute),
        last_modified_date: at(minute),
        last_modified_by: Some("005human".into()),
        values: values(json!({"Name": "Deal", "Amount": 100})),
        parent: None,
        deleted: true,
    }
}

fn link(snapshot: Option<Value>) -> LinkView {
    LinkView {
        target_id: "006B".into(),
        source_modstamp: Some(at(5)),
        snapshot: snapshot.map(values),
    }
}

fn target(v: Value) -> TargetRow {
    TargetRow {
        id: "006B".into(),
        system_modstamp: at(6),
        last_modified_date: at(6),
        external_id: None,
        values: values(v),
    }
}

fn policy(delete_conflict: DeleteConflictPolicy) -> Policy {
    Policy {
        direction: Direction::AToB,
        conflict: ConflictPolicy::LastWriterWins,
        delete_conflict,
    }
}

#[test]
fn a_deleted_row_without_a_live_link_settles_in_triage_and_a_linked_one_is_looked_up() {
    let m = mapping();
    let snapshot = Some(json!({"Name": "Deal", "Amount": 100}));
    // Never an echo, although its values equal the snapshot: it is looked up.
    assert_eq!(
        triage(&deleted(9), Some(&link(snapshot.clone())), None, &m),
        Triage::Lookup
    );
    // Unlinked, or a tombstone (our own delete coming back): nothing to do, no lookup.
    assert_eq!(triage(&deleted(9), None, None, &m), Triage::Gone);
    // Replays and the failure queue come first, as for any row.
    assert_eq!(
        triage(&deleted(5), Some(&link(snapshot.clone())), None, &m),
        Triage::Drop
    );
    let queued = QueuedFailure {
        source_modstamp: Some(at(9)),
    };
    assert_eq!(
        triage(&deleted(9), Some(&link(snapshot)), Some(&queued), &m),
        Triage::LeaveToQueue
    );
}

#[test]
fn an_unchanged_target_is_deleted_and_a_gone_one_is_only_tombstoned() {
    let m = mapping();
    let l = link(Some(json!({"Name": "Deal", "Amount": 100})));
    let same = target(json!({"Name": "Deal", "Amount": 100.0}));
    let d = plan(
        &deleted(9),
        Target::Linked {
            link: &l,
            row: Some(&same),
        },
        &policy(DeleteConflictPolicy::KeepEdit),
        &m,
    );
    assert_eq!(
        d.action,
        Action::Delete {
            target_id: "006B".into(),
            conflict: None
        }
    );
    let d = plan(
        &deleted(9),
        Target::Linked {
            link: &l,
            row: None,
        },
        &policy(DeleteConflictPolicy::KeepEdit),
        &m,
    );
    assert_eq!(
        d.action,
        Action::Tombstone {
            target_id: "006B".into()
        }
    );
    // Never matched: a deleted unlinked row creates nothing.
    let d = plan(
        &deleted(9),
        Target::Unlinked { candidates: &[] },
        &policy(DeleteConflictPolicy::KeepEdit),
        &m,
    );
    assert_eq!(d.action, Action::Skip(SkipReason::Gone));
}

#[test]
fn a_target_edited_since_the_snapshot_is_a_delete_conflict_resolved_by_the_policy() {
    let m = mapping();
    let l = link(Some(json!({"Name": "Deal", "Amount": 100})));
    let edited = target(json!({"Name": "Deal", "Amount": 250}));
    let input = Target::Linked {
        link: &l,
        row: Some(&edited),
    };
    let conflict = DeleteConflict {
        edited: vec!["Amount".into()],
        synced_values: [("Amount".to_string(), json!(100))].into_iter().collect(),
        target_values: [("Amount".to_string(), json!(250))].into_iter().collect(),
        target_last_modified: at(6),
        source_deleted_at: at(9),
    };
    let keep = plan(
        &deleted(9),
        input,
        &policy(DeleteConflictPolicy::KeepEdit),
        &m,
    );
    assert_eq!(
        keep.action,
        Action::Restore {
            target_id: "006B".into(),
            fields: edited.values.clone(),
            conflict: conflict.clone(),
        }
    );
    // The link keeps the values both sides hold once the source got the edit.
    assert_eq!(keep.snapshot, Some(edited.values.clone()));
    let delete = plan(
        &deleted(9),
        input,
        &policy(DeleteConflictPolicy::Delete),
        &m,
    );
    assert_eq!(
        delete.action,
        Action::Delete {
            target_id: "006B".into(),
            conflict: Some(conflict),
        }
    );
    // A pair linked by hand has no snapshot: nothing says the target is unchanged.
    let bare = link(None);
    let same = target(json!({"Name": "Deal", "Amount": 100}));
    let d = plan(
        &deleted(9),
        Target::Linked {
            link: &bare,
            row: Some(&same),
        },
        &policy(DeleteConflictPolicy::Delete),
        &m,
    );
    assert!(
        matches!(
            d.action,
            Action::Delete {
                conflict: Some(_),
                ..
            }
        ),
        "{d:?}"
    );
}

#[test]
fn a_live_row_on_a_tombstone_is_an_undelete_with_its_values_and_a_deleted_one_is_not() {
    let mut row = deleted(9);
    let tombstone = link(Some(json!({"Name": "Deal", "Amount": 50})));
    assert_eq!(plan_tombstoned(&row, &tombstone), None, "the delete path's");
    row.deleted = false;
    let d = plan_tombstoned(&row, &tombstone).expect("an undelete");
    assert_eq!(
        d.action,
        Action::Undelete {
            target_id: "006B".into(),
            fields: row.values.clone()
        }
    );
    assert_eq!(d.snapshot, Some(row.values.clone()));
    assert_eq!(d.target_id(), Some("006B"));
}

#[test]
fn a_restored_target_is_updated_and_a_gone_one_is_planned_as_an_unlinked_row() {
    let m = mapping();
    let p = policy(DeleteConflictPolicy::KeepEdit);
    let mut row = deleted(9);
    row.deleted = false;
    let back = plan_restored(&row, Restored::Back("006B"), &p, &m);
    assert_eq!(
        back.action,
        Action::Update {
            target_id: "006B".into(),
            fields: row.values.clone()
        },
        "every field: nothing says what the restored target holds"
    );
    assert_eq!(back.snapshot, Some(row.values.clone()));
    // Gone, nothing with its key: created again.
    let gone = plan_restored(&row, Restored::Gone { candidates: &[] }, &p, &m);
    assert!(matches!(gone.action, Action::Create { .. }), "{gone:?}");
    // Gone, and the copy a crash left unlinked has its key: linked to it, not duplicated.
    let copy = target(json!({"Name": "Deal", "Amount": 100}));
    let found = plan_restored(
        &row,
        Restored::Gone {
            candidates: &[&copy],
        },
        &p,
        &m,
    );
    assert_eq!(
        found.action,
        Action::Link {
            target_id: "006B".into()
        }
    );
    let other = TargetRow {
        id: "006C".into(),
        ..copy.clone()
    };
    let two = plan_restored(
        &row,
        Restored::Gone {
            candidates: &[&copy, &other],
        },
        &p,
        &m,
    );
    assert!(
        matches!(
            two.action,
            Action::Fail {
                code: FailCode::AmbiguousMatch,
                ..
            }
        ),
        "{two:?}"
    );
}
