//! Tests of the pure decisions of `plan`: triage, the plan of one row and of a page.

use super::*;
use chrono::TimeZone;
use serde_json::json;

fn mapping() -> Mapping {
    let fields: Vec<String> = ["Name", "Amount", "StageName"]
        .iter()
        .map(|s| s.to_string())
        .collect();
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

fn source(id: &str, minute: u32, v: Value) -> SourceRow {
    SourceRow {
        id: id.into(),
        system_modstamp: at(minute),
        last_modified_date: at(minute),
        last_modified_by: Some("005human".into()),
        values: values(v),
        parent: None,
        deleted: false,
    }
}

fn target(id: &str, minute: u32, v: Value) -> TargetRow {
    TargetRow {
        id: id.into(),
        system_modstamp: at(minute),
        last_modified_date: at(minute),
        external_id: None,
        values: values(v),
    }
}

fn link(target_id: &str, modstamp: u32, snapshot: Option<Value>) -> LinkView {
    LinkView {
        target_id: target_id.into(),
        source_modstamp: Some(at(modstamp)),
        snapshot: snapshot.map(values),
    }
}

fn policy(conflict: ConflictPolicy) -> Policy {
    Policy {
        direction: Direction::AToB,
        conflict,
        delete_conflict: crate::config::DeleteConflictPolicy::KeepEdit,
    }
}

fn lww() -> Policy {
    policy(ConflictPolicy::LastWriterWins)
}

fn writes(v: Value) -> BTreeMap<String, Value> {
    values(v)
}

// ---- 1. triage ------------------------------------------------------------------------

#[test]
fn triage_drops_a_version_the_link_already_records() {
    let m = mapping();
    let row = source("006A", 5, json!({"Name": "x"}));
    let l = link("006B", 5, Some(json!({"Name": "old"})));
    assert_eq!(triage(&row, Some(&l), None, &m), Triage::Drop);
    let older = link("006B", 7, Some(json!({"Name": "old"})));
    assert_eq!(triage(&row, Some(&older), None, &m), Triage::Drop);
}

#[test]
fn triage_echo_when_source_equals_snapshot() {
    let m = mapping();
    let row = source("006A", 6, json!({"Name": "x", "Amount": 5000.0}));
    let l = link("006B", 5, Some(json!({"Name": "x", "Amount": 5000})));
    assert_eq!(triage(&row, Some(&l), None, &m), Triage::Echo);
}

#[test]
fn triage_needs_lookup_when_changed_or_unlinked() {
    let m = mapping();
    let row = source("006A", 6, json!({"Name": "y"}));
    let l = link("006B", 5, Some(json!({"Name": "x"})));
    assert_eq!(triage(&row, Some(&l), None, &m), Triage::Lookup);
    assert_eq!(triage(&row, None, None, &m), Triage::Lookup);
    // A link without a snapshot can never be an echo.
    let bare = link("006B", 5, None);
    assert_eq!(triage(&row, Some(&bare), None, &m), Triage::Lookup);
}

// ---- 6. the failure queue -------------------------------------------------------------

#[test]
fn queued_record_is_left_to_the_queue_unless_newer() {
    let m = mapping();
    let queued = QueuedFailure {
        source_modstamp: Some(at(6)),
    };
    let same = source("006A", 6, json!({"Name": "y"}));
    assert_eq!(triage(&same, None, Some(&queued), &m), Triage::LeaveToQueue);
    let newer = source("006A", 8, json!({"Name": "z"}));
    assert_eq!(triage(&newer, None, Some(&queued), &m), Triage::Lookup);
    // Unknown failed version: the row is tried.
    let unknown = QueuedFailure {
        source_modstamp: None,
    };
    assert_eq!(triage(&same, None, Some(&unknown), &m), Triage::Lookup);
}

// ---- 2. linked, target found ----------------------------------------------------------

#[test]
fn linked_source_change_is_written_field_by_field() {
    let m = mapping();
    let row = source(
        "006A",
        9,
        json!({"Name": "x", "Amount": 10, "StageName": "S1"}),
    );
    let l = link(
        "006B",
        5,
        Some(json!({"Name": "x", "Amount": 5, "StageName": "S1"})),
    );
    let t = target(
        "006B",
        6,
        json!({"Name": "x", "Amount": 5, "StageName": "S1"}),
    );
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(
        d.action,
        Action::Update {
            target_id: "006B".into(),
            fields: writes(json!({"Amount": 10}))
        }
    );
    assert!(!d.reverse);
    assert!(d.conflicts.is_empty());
    assert_eq!(d.snapshot, Some(row.values.clone()));
}

#[test]
fn linked_changes_on_different_fields_merge_and_reverse() {
    let m = mapping();
    let row = source(
        "006A",
        9,
        json!({"Name": "x", "Amount": 10, "StageName": "S1"}),
    );
    let l = link(
        "006B",
        5,
        Some(json!({"Name": "x", "Amount": 5, "StageName": "S1"})),
    );
    let t = target(
        "006B",
        8,
        json!({"Name": "x", "Amount": 5, "StageName": "S2"}),
    );
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(
        d.action,
        Action::Update {
            target_id: "006B".into(),
            fields: writes(json!({"Amount": 10}))
        }
    );
    // The target's StageName must travel back to the source.
    assert!(d.reverse);
    assert!(d.conflicts.is_empty());
}

#[test]
fn conflict_last_writer_wins_source_newer() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x", "Amount": 10}));
    let l = link("006B", 5, Some(json!({"Name": "x", "Amount": 5})));
    let t = target("006B", 8, json!({"Name": "x", "Amount": 7}));
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(
        d.action,
        Action::Update {
            target_id: "006B".into(),
            fields: writes(json!({"Amount": 10}))
        }
    );
    assert!(!d.reverse);
    assert_eq!(d.conflicts.len(), 1);
    let c = &d.conflicts[0];
    assert_eq!(c.field, "Amount");
    assert_eq!(c.winner, Winner::Source);
    assert_eq!(c.source_value, Some(json!(10)));
    assert_eq!(c.target_value, Some(json!(7)));
    assert_eq!(c.source_last_modified, at(9));
    assert_eq!(c.target_last_modified, at(8));
}

#[test]
fn conflict_last_writer_wins_target_newer_is_not_overwritten() {
    let m = mapping();
    let row = source("006A", 8, json!({"Name": "x", "Amount": 10}));
    let l = link("006B", 5, Some(json!({"Name": "x", "Amount": 5})));
    let t = target("006B", 9, json!({"Name": "x", "Amount": 7}));
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(d.action, Action::Skip(SkipReason::Unchanged));
    assert!(d.reverse);
    assert_eq!(d.conflicts[0].winner, Winner::Target);
    // The snapshot keeps the source's value so the opposite direction carries 7 back.
    assert_eq!(
        d.snapshot.as_ref().and_then(|s| s.get("Amount")),
        Some(&json!(10))
    );
}

#[test]
fn conflict_last_writer_wins_tie_keeps_the_target() {
    let m = mapping();
    let row = source("006A", 8, json!({"Name": "x", "Amount": 10}));
    let l = link("006B", 5, Some(json!({"Name": "x", "Amount": 5})));
    let t = target("006B", 8, json!({"Name": "x", "Amount": 7}));
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(d.conflicts[0].winner, Winner::Target);
}

#[test]
fn conflict_a_wins_and_b_wins_name_the_master() {
    let m = mapping();
    let row = source("006A", 1, json!({"Name": "x", "Amount": 10}));
    let l = link("006B", 0, Some(json!({"Name": "x", "Amount": 5})));
    let t = target("006B", 9, json!({"Name": "x", "Amount": 7}));
    let input = Target::Linked {
        link: &l,
        row: Some(&t),
    };
    let a_wins = plan(&row, input, &policy(ConflictPolicy::AWins), &m);
    assert_eq!(a_wins.conflicts[0].winner, Winner::Source);
    assert!(matches!(a_wins.action, Action::Update { .. }));
    let b_wins = plan(&row, input, &policy(ConflictPolicy::BWins), &m);
    assert_eq!(b_wins.conflicts[0].winner, Winner::Target);
    assert!(b_wins.reverse);
    // In the other direction the roles swap.
    let b_to_a = Policy {
        direction: Direction::BToA,
        conflict: ConflictPolicy::BWins,
        delete_conflict: crate::config::DeleteConflictPolicy::KeepEdit,
    };
    assert_eq!(
        plan(&row, input, &b_to_a, &m).conflicts[0].winner,
        Winner::Source
    );
}

#[test]
fn both_sides_changed_to_the_same_value_is_no_conflict() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x", "Amount": 10}));
    let l = link("006B", 5, Some(json!({"Name": "x", "Amount": 5})));
    let t = target("006B", 8, json!({"Name": "x", "Amount": 10.0}));
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(d.action, Action::Skip(SkipReason::Unchanged));
    assert!(d.conflicts.is_empty());
    assert!(!d.reverse);
    assert_eq!(d.snapshot, Some(row.values.clone()));
}

#[test]
fn cleared_source_field_is_written_as_null() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x"}));
    let l = link("006B", 5, Some(json!({"Name": "x", "Amount": 5})));
    let t = target("006B", 6, json!({"Name": "x", "Amount": 5}));
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(
        d.action,
        Action::Update {
            target_id: "006B".into(),
            fields: writes(json!({"Amount": null}))
        }
    );
}

#[test]
fn linked_without_snapshot_treats_every_difference_as_conflict() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x", "Amount": 10}));
    let l = link("006B", 5, None);
    let t = target("006B", 6, json!({"Name": "x", "Amount": 7}));
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: Some(&t),
        },
        &lww(),
        &m,
    );
    assert_eq!(d.conflicts.len(), 1);
    assert_eq!(d.conflicts[0].winner, Winner::Source);
}

// ---- 3. linked, target missing --------------------------------------------------------

#[test]
fn linked_target_missing_fails_and_never_recreates() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x"}));
    let l = link("006B", 5, Some(json!({"Name": "y"})));
    let d = plan(
        &row,
        Target::Linked {
            link: &l,
            row: None,
        },
        &lww(),
        &m,
    );
    match d.action {
        Action::Fail { code, message } => {
            assert_eq!(code, FailCode::LinkedTargetMissing);
            assert!(message.contains("006B"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(d.snapshot, None);
}

// ---- 4. unlinked ----------------------------------------------------------------------

#[test]
fn unlinked_without_candidate_is_created() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x", "Amount": 1}));
    let d = plan(&row, Target::Unlinked { candidates: &[] }, &lww(), &m);
    assert_eq!(
        d.action,
        Action::Create {
            fields: row.values.clone()
        }
    );
    assert_eq!(d.snapshot, Some(row.values.clone()));
}

#[test]
fn unlinked_single_equal_candidate_is_just_linked() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x", "Amount": 1}));
    let t = target("006B", 3, json!({"Name": "x", "Amount": 1.0}));
    let d = plan(&row, Target::Unlinked { candidates: &[&t] }, &lww(), &m);
    assert_eq!(
        d.action,
        Action::Link {
            target_id: "006B".into()
        }
    );
    assert!(!d.reverse);
    assert!(d.conflicts.is_empty());
}

#[test]
fn unlinked_single_candidate_differences_are_conflicts() {
    let m = mapping();
    // Source newer: its differing fields are written.
    let row = source(
        "006A",
        9,
        json!({"Name": "x", "Amount": 1, "StageName": "S"}),
    );
    let t = target("006B", 3, json!({"Name": "x", "Amount": 2}));
    let d = plan(&row, Target::Unlinked { candidates: &[&t] }, &lww(), &m);
    assert_eq!(
        d.action,
        Action::Update {
            target_id: "006B".into(),
            fields: writes(json!({"Amount": 1, "StageName": "S"}))
        }
    );
    assert_eq!(d.conflicts.len(), 2);
    assert!(!d.reverse);
    // Target newer: it keeps its values, linked, and carried back.
    let t = target("006B", 10, json!({"Name": "x", "Amount": 2}));
    let d = plan(&row, Target::Unlinked { candidates: &[&t] }, &lww(), &m);
    assert_eq!(
        d.action,
        Action::Link {
            target_id: "006B".into()
        }
    );
    assert!(d.reverse);
    assert!(d.conflicts.iter().all(|c| c.winner == Winner::Target));
}

#[test]
fn unlinked_several_candidates_fail_as_ambiguous_naming_all() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x"}));
    let t1 = target("006B1", 3, json!({"Name": "x"}));
    let t2 = target("006B2", 3, json!({"Name": "x"}));
    let d = plan(
        &row,
        Target::Unlinked {
            candidates: &[&t1, &t2],
        },
        &lww(),
        &m,
    );
    match d.action {
        Action::Fail { code, message } => {
            assert_eq!(code, FailCode::AmbiguousMatch);
            assert!(
                message.contains("006B1") && message.contains("006B2"),
                "{message}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn same_key_twice_in_a_page_with_one_candidate_both_fail() {
    let m = mapping();
    let r1 = source("006A1", 9, json!({"Name": "x"}));
    let r2 = source("006A2", 9, json!({"Name": "x"}));
    let other = source("006A3", 9, json!({"Name": "y"}));
    let t = target("006B", 3, json!({"Name": "x"}));
    let ty = target("006BY", 3, json!({"Name": "y"}));
    let c = [&t];
    let cy = [&ty];
    let items = [
        PageItem {
            row: &r1,
            target: Target::Unlinked { candidates: &c },
        },
        PageItem {
            row: &r2,
            target: Target::Unlinked { candidates: &c },
        },
        PageItem {
            row: &other,
            target: Target::Unlinked { candidates: &cy },
        },
    ];
    let decisions = plan_page(&items, &lww(), &m);
    for d in &decisions[..2] {
        match &d.action {
            Action::Fail { code, message } => {
                assert_eq!(*code, FailCode::AmbiguousMatch);
                assert!(
                    message.contains("006A1") && message.contains("006A2"),
                    "{message}"
                );
                assert!(message.contains("006B"), "{message}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    assert_eq!(
        decisions[2].action,
        Action::Link {
            target_id: "006BY".into()
        }
    );
}

#[test]
fn same_key_twice_in_a_page_without_candidate_creates_two() {
    let m = mapping();
    let r1 = source("006A1", 9, json!({"Name": "x"}));
    let r2 = source("006A2", 9, json!({"Name": "x"}));
    let items = [
        PageItem {
            row: &r1,
            target: Target::Unlinked { candidates: &[] },
        },
        PageItem {
            row: &r2,
            target: Target::Unlinked { candidates: &[] },
        },
    ];
    let decisions = plan_page(&items, &lww(), &m);
    assert!(
        decisions
            .iter()
            .all(|d| matches!(d.action, Action::Create { .. }))
    );
}

#[test]
fn plan_page_leaves_linked_rows_alone() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x", "Amount": 2}));
    let l = link("006B", 5, Some(json!({"Name": "x", "Amount": 1})));
    let t = target("006B", 6, json!({"Name": "x", "Amount": 1}));
    let items = [PageItem {
        row: &row,
        target: Target::Linked {
            link: &l,
            row: Some(&t),
        },
    }];
    let d = plan_page(&items, &lww(), &m);
    assert!(matches!(d[0].action, Action::Update { .. }));
}

#[test]
fn codes_are_stable_strings() {
    assert_eq!(FailCode::AmbiguousMatch.as_str(), "AMBIGUOUS_MATCH");
    assert_eq!(
        FailCode::LinkedTargetMissing.to_string(),
        "LINKED_TARGET_MISSING"
    );
    assert_eq!(SkipReason::Echo.as_str(), "echo");
}

// ---- the operator's commands named by the failures, and a link made by hand -----------

fn fail_message(d: &Decision) -> &str {
    match &d.action {
        Action::Fail { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn ambiguous_match_names_a_links_link_command_per_candidate_a_id_first() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x"}));
    let t1 = target("006B1", 3, json!({"Name": "x"}));
    let t2 = target("006B2", 3, json!({"Name": "x"}));
    let input = Target::Unlinked {
        candidates: &[&t1, &t2],
    };
    let a_to_b = plan(&row, input, &lww(), &m);
    let message = fail_message(&a_to_b);
    assert!(
        message.contains("`orgsync links link 006A 006B1` or `orgsync links link 006A 006B2`"),
        "{message}"
    );
    // From B the source is the B record: A's id still comes first.
    let b_to_a = Policy {
        direction: Direction::BToA,
        conflict: ConflictPolicy::LastWriterWins,
        delete_conflict: crate::config::DeleteConflictPolicy::KeepEdit,
    };
    let from_b = plan(&row, input, &b_to_a, &m);
    let message = fail_message(&from_b);
    assert!(
        message.contains("`orgsync links link 006B1 006A` or `orgsync links link 006B2 006A`"),
        "{message}"
    );
}

#[test]
fn ambiguous_within_a_page_names_the_command_for_this_row() {
    let m = mapping();
    let r1 = source("006A1", 9, json!({"Name": "x"}));
    let r2 = source("006A2", 9, json!({"Name": "x"}));
    let t = target("006B", 3, json!({"Name": "x"}));
    let c = [&t];
    let items = [
        PageItem {
            row: &r1,
            target: Target::Unlinked { candidates: &c },
        },
        PageItem {
            row: &r2,
            target: Target::Unlinked { candidates: &c },
        },
    ];
    let decisions = plan_page(&items, &lww(), &m);
    assert!(fail_message(&decisions[0]).contains("`orgsync links link 006A1 006B`"));
    assert!(fail_message(&decisions[1]).contains("`orgsync links link 006A2 006B`"));
}

#[test]
fn linked_target_missing_names_unlink_forget_and_relink() {
    let m = mapping();
    let row = source("006A", 9, json!({"Name": "x"}));
    let l = link("006B", 5, Some(json!({"Name": "y"})));
    let input = Target::Linked {
        link: &l,
        row: None,
    };
    let d = plan(&row, input, &lww(), &m);
    let message = fail_message(&d);
    assert!(
        message.contains("`orgsync links unlink 006A --forget`"),
        "{message}"
    );
    assert!(
        message.contains("`orgsync links unlink 006A` then `orgsync links link 006A <B id>`"),
        "{message}"
    );
    let b_to_a = Policy {
        direction: Direction::BToA,
        conflict: ConflictPolicy::LastWriterWins,
        delete_conflict: crate::config::DeleteConflictPolicy::KeepEdit,
    };
    let d = plan(&row, input, &b_to_a, &m);
    assert!(
        fail_message(&d).contains("`orgsync links link <A id> 006A`"),
        "{}",
        fail_message(&d)
    );
}

/// `orgsync links link` stores a link with an empty snapshot and no modstamps: the link view
/// has no snapshot, so every field that differs is a conflict, resolved by the policy.
#[test]
fn a_link_made_by_hand_merges_every_differing_field_as_a_conflict() {
    let m = mapping();
    let by_hand = crate::store::Link {
        id: 1,
        object: "Opportunity".into(),
        a_id: "006A".into(),
        b_id: "006B".into(),
        a_modstamp: None,
        b_modstamp: None,
        snapshot: Map::new(),
        state: crate::store::LinkState::Live,
        deleted_at: None,
        deleted_by: None,
        created_at: at(0),
        updated_at: at(0),
    };
    let l = crate::sync::rows::link_view(&by_hand, Org::A);
    assert_eq!(l.snapshot, None);
    let row = source(
        "006A",
        9,
        json!({"Name": "x", "Amount": 10, "StageName": "s"}),
    );
    assert_eq!(triage(&row, Some(&l), None, &m), Triage::Lookup);
    let t = target(
        "006B",
        3,
        json!({"Name": "x", "Amount": 7, "StageName": "t"}),
    );
    let input = Target::Linked {
        link: &l,
        row: Some(&t),
    };
    let a_wins = plan(&row, input, &policy(ConflictPolicy::AWins), &m);
    let fields: Vec<&str> = a_wins.conflicts.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["Amount", "StageName"]);
    assert!(a_wins.conflicts.iter().all(|c| c.winner == Winner::Source));
    assert_eq!(
        a_wins.action,
        Action::Update {
            target_id: "006B".into(),
            fields: writes(json!({"Amount": 10, "StageName": "s"}))
        }
    );
    let b_wins = plan(&row, input, &policy(ConflictPolicy::BWins), &m);
    assert_eq!(b_wins.conflicts.len(), 2);
    assert!(b_wins.conflicts.iter().all(|c| c.winner == Winner::Target));
    assert_eq!(b_wins.action, Action::Skip(SkipReason::Unchanged));
    assert!(b_wins.reverse);
}
