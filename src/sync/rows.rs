//! Rows: a page's source rows as the stages carry them. Parsing (source and target rows into
//! canonical form), dedup (one row per id, the latest version), the link view (a stored link
//! seen from the pass's direction), and [`RowState`], the one state per source row that each
//! stage of the page pipeline fills in, in order: the link and failure-queue entry (this
//! module), the triage, what the lookup found (`matching`), the decision and the write
//! (`plan`, `pass`), the parent account (`parents`), the write's outcome (`write`), then the
//! commit records the outcome (`commit`). Data only moves forward: no stage reaches back to
//! a side table by row index.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::accounts::{ACCOUNT_NAME_PATH, ACCOUNT_OBJECT};
use super::mapping::{Mapping, from_snapshot, lookup, to_snapshot};
use super::plan::{Action, Decision, LinkView, QueuedFailure, SourceRow, TargetRow, Triage};
use crate::store::{FailureClass, Link, LinkWrite, Org};

/// One source row of a page and everything the stages have settled about it so far.
#[derive(Debug, Clone)]
pub(super) struct RowState {
    pub row: SourceRow,
    /// Its stored link, seen from the pass's direction.
    pub link: Option<LinkView>,
    /// Its failure-queue entry (pending or dead), whatever the pipeline.
    pub queued: Option<QueuedFailure>,
    /// The triage's verdict; `None` until triaged.
    pub triage: Option<Triage>,
    /// What the lookup found for it (rows triaged [`Triage::Lookup`] only).
    pub target: Found,
    /// The plan's decision (looked-up rows only).
    pub decision: Option<Decision>,
    /// The write the decision asks for, until the write stage makes it.
    pub write: Option<Write>,
    /// A Bulk pass (`bulk_pass`): the write, deferred to the pass's ingest jobs; the page's
    /// commit records it as planned instead of an outcome.
    pub deferred: Option<Write>,
    /// The delete-side call the decision asks for (`deletes`), until that stage makes it.
    pub delete: Option<DeleteStep>,
    /// The target record to carry back to the source, when the decision says so.
    pub reverse: Option<String>,
    /// The target parent account its write names, once resolved (`syncAccount`).
    pub account_id: Option<String>,
    /// The Account link that gave it its parent: (source account id, target account id).
    pub account_link: Option<(String, String)>,
    /// What the commit records.
    pub outcome: RowOutcome,
    /// Target records this row is never matched with: the other side of its unlinked and
    /// tombstoned links.
    pub barred: Vec<String>,
    /// Its latest tombstoned link, seen from the pass's direction, when it has no live one:
    /// what the undelete stage (a live source row whose pair was deleted) starts from.
    pub tombstone: Option<LinkView>,
    /// The stored id of [`Self::tombstone`]'s link.
    pub tombstone_id: Option<i64>,
    /// The stored id of [`Self::link`] (the live link).
    pub link_id: Option<i64>,
    /// Set by the undelete stage and a delete conflict whose purged source was created
    /// again: the commit rewrites this stored link in place (`revive_link`) instead of
    /// writing a link by its ids.
    pub revive: Option<Revive>,
}

/// A stored link the commit rewrites in place, live, with the row's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Revive {
    pub link_id: i64,
    /// The target the link named before (the tombstone's), for the restore's log line.
    pub old_target_id: String,
    /// The source's new id, when the source itself was created again (its old one purged).
    pub new_source_id: Option<String>,
}

impl RowState {
    pub fn new(row: SourceRow, link: Option<LinkView>, queued: Option<QueuedFailure>) -> Self {
        RowState {
            row,
            link,
            queued,
            triage: None,
            target: Found::Nothing,
            decision: None,
            write: None,
            deferred: None,
            delete: None,
            reverse: None,
            account_id: None,
            account_link: None,
            outcome: RowOutcome::Nothing,
            barred: Vec::new(),
            tombstone: None,
            tombstone_id: None,
            link_id: None,
            revive: None,
        }
    }

    /// The row with its latest tombstoned link (its stored id and its view).
    pub fn with_tombstone(mut self, tombstone: Option<(i64, LinkView)>) -> Self {
        self.tombstone_id = tombstone.as_ref().map(|(id, _)| *id);
        self.tombstone = tombstone.map(|(_, view)| view);
        self
    }

    /// The row with the stored id of its live link.
    pub fn with_link_id(mut self, link_id: Option<i64>) -> Self {
        self.link_id = link_id;
        self
    }

    /// The row with the target records it must never be matched with.
    pub fn never_matched_with(mut self, barred: Vec<String>) -> Self {
        self.barred = barred;
        self
    }

    /// Whether the row goes through the lookup and the plan.
    pub fn looked_up(&self) -> bool {
        self.triage == Some(Triage::Lookup)
    }

    /// The linked target's id, when the row is linked.
    pub fn linked_target(&self) -> Option<&str> {
        self.link.as_ref().map(|l| l.target_id.as_str())
    }

    /// The target the row's outcome names (linked, tombstoned or failed with one).
    pub fn outcome_target(&self) -> Option<&str> {
        match &self.outcome {
            RowOutcome::Nothing => None,
            RowOutcome::Linked { target_id, .. } | RowOutcome::Tombstone { target_id } => {
                Some(target_id)
            }
            RowOutcome::Failed { target_id, .. } => target_id.as_deref(),
        }
    }

    /// Fails the row with a record error, dropping any write it still had.
    pub fn fail(
        &mut self,
        target_id: Option<String>,
        code: String,
        message: String,
        class: FailureClass,
    ) {
        self.write = None;
        self.delete = None;
        self.outcome = RowOutcome::Failed {
            target_id,
            code,
            message,
            class,
            sent: None,
        };
    }
}

/// What the lookup found in the target for a row.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Found {
    /// Not looked up (triaged away), or nothing found yet.
    Nothing,
    /// The row is linked: its target record, `None` when it is gone.
    Linked(Option<TargetRow>),
    /// The row is not linked: target records that could be its counterpart.
    Candidates(Vec<TargetRow>),
}

/// A write to the target, in the target org's field names.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) enum Write {
    /// A create (an upsert on the external id field when one is configured).
    Create(Map<String, Value>),
    Update {
        target_id: String,
        body: Map<String, Value>,
    },
}

impl Write {
    pub fn body(&self) -> &Map<String, Value> {
        match self {
            Write::Create(body) | Write::Update { body, .. } => body,
        }
    }

    pub fn body_mut(&mut self) -> &mut Map<String, Value> {
        match self {
            Write::Create(body) | Write::Update { body, .. } => body,
        }
    }

    /// The record updated; `None` for a create.
    pub fn target_id(&self) -> Option<&str> {
        match self {
            Write::Create(_) => None,
            Write::Update { target_id, .. } => Some(target_id),
        }
    }
}

/// A call of the delete stage (`deletes`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum DeleteStep {
    /// Delete the target record; the link becomes a tombstone.
    Delete { target_id: String },
    /// Restore the deleted source record (undelete) and write `body` (source org names) to
    /// it; the link stays live with the decision's snapshot.
    Restore {
        target_id: String,
        body: Map<String, Value>,
    },
    /// The restore's undelete said the source is not in its recycle bin: looked up, and when
    /// it is gone (purged), created again from `body` and the link rewritten to its new id.
    Recreate {
        target_id: String,
        body: Map<String, Value>,
    },
}

/// A row's final outcome, recorded in the page transaction.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RowOutcome {
    /// Nothing to record.
    Nothing,
    /// Write the link (new or refreshed) with this snapshot.
    Linked {
        target_id: String,
        snapshot: BTreeMap<String, Value>,
    },
    /// The link becomes a tombstone: the source was deleted and its target is gone (deleted
    /// now, or already).
    Tombstone { target_id: String },
    /// Into the failure queue, with the body written to the target when there was a write.
    Failed {
        target_id: Option<String>,
        code: String,
        message: String,
        class: FailureClass,
        sent: Option<Map<String, Value>>,
    },
}

/// The write a decision asks for, in the target's names: a create carries the source id in
/// the external id field when one is configured. `None` for decisions that write nothing.
pub(super) fn write_of(
    decision: &Decision,
    row: &SourceRow,
    mapping: &Mapping,
    target: Org,
    external_id_field: Option<&str>,
) -> Option<Write> {
    match &decision.action {
        Action::Create { fields } => {
            let mut body = mapping.to_org(target, fields);
            if let Some(ext) = external_id_field {
                body.insert(ext.to_string(), Value::String(row.id.clone()));
            }
            Some(Write::Create(body))
        }
        Action::Update { target_id, fields } => Some(Write::Update {
            target_id: target_id.clone(),
            body: mapping.to_org(target, fields),
        }),
        Action::Link { .. }
        | Action::Skip(_)
        | Action::Fail { .. }
        | Action::Delete { .. }
        | Action::Tombstone { .. }
        | Action::Restore { .. }
        | Action::Undelete { .. } => None,
    }
}

/// The reverse-carry decision: the target record to queue for the opposite direction when
/// the decision says the target holds values the source does not (the decision's target,
/// else the linked one).
pub(super) fn reverse_target(decision: &Decision, link: Option<&LinkView>) -> Option<String> {
    if !decision.reverse {
        return None;
    }
    decision
        .target_id()
        .map(str::to_string)
        .or_else(|| link.map(|l| l.target_id.clone()))
}

/// The B-side snapshot rewrite: for a B source row, the parent pseudo-field's canonical value
/// is the parent's A-side id, so the snapshot of a row linked after its write records the A
/// account just resolved (`account_id`) rather than the token the plan saw.
pub(super) fn rewrite_parent_snapshot(source: Org, state: &mut RowState) {
    if source != Org::B {
        return;
    }
    if let (Some(account_id), RowOutcome::Linked { snapshot, .. }) =
        (&state.account_id, &mut state.outcome)
        && snapshot.contains_key(ACCOUNT_NAME_PATH)
    {
        snapshot.insert(
            ACCOUNT_NAME_PATH.to_string(),
            Value::String(account_id.clone()),
        );
    }
}

/// Keeps one row per id (the latest version), in first-seen order.
pub(super) fn dedup_latest(rows: Vec<SourceRow>) -> Vec<SourceRow> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<SourceRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.id) {
            Some(&i) => {
                if row.system_modstamp > out[i].system_modstamp {
                    out[i] = row;
                }
            }
            None => {
                index.insert(row.id.clone(), out.len());
                out.push(row);
            }
        }
    }
    out
}

/// The id of `link`'s record in `org`.
pub(super) fn side_id(link: &Link, org: Org) -> &str {
    match org {
        Org::A => &link.a_id,
        Org::B => &link.b_id,
    }
}

/// A stored link seen from the direction whose source is `source`.
pub(super) fn link_view(link: &Link, source: Org) -> LinkView {
    let (target_id, source_modstamp) = match source {
        Org::A => (&link.b_id, link.a_modstamp),
        Org::B => (&link.a_id, link.b_modstamp),
    };
    let snapshot = from_snapshot(&link.snapshot);
    LinkView {
        target_id: target_id.clone(),
        source_modstamp,
        // An empty snapshot is "none": every synced record has at least its required fields.
        snapshot: (!snapshot.is_empty()).then_some(snapshot),
    }
}

pub(super) fn link_write(
    object: &str,
    source: Org,
    row: &SourceRow,
    target_id: &str,
    snapshot: BTreeMap<String, Value>,
) -> LinkWrite {
    let (a_id, b_id, a_modstamp, b_modstamp) = match source {
        Org::A => (
            row.id.clone(),
            target_id.to_string(),
            Some(row.system_modstamp),
            None,
        ),
        Org::B => (
            target_id.to_string(),
            row.id.clone(),
            None,
            Some(row.system_modstamp),
        ),
    };
    LinkWrite {
        object: object.to_string(),
        a_id,
        b_id,
        a_modstamp,
        b_modstamp,
        snapshot: to_snapshot(&snapshot),
    }
}

/// Parses a Salesforce datetime: `2013-05-20T20:49:32.000+0000` (REST) or RFC 3339.
pub(super) fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn required_time(record: &Map<String, Value>, field: &str) -> Result<DateTime<Utc>, String> {
    let text = record
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field} is missing or not a string"))?;
    parse_datetime(text).ok_or_else(|| format!("{field} {text:?} is not a datetime"))
}

fn record_id(record: &Map<String, Value>) -> Result<String, String> {
    match record.get("Id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err("a row has no Id".to_string()),
    }
}

/// A query row of the source org in canonical form.
pub fn parse_source_row(
    org: Org,
    mapping: &Mapping,
    record: &Map<String, Value>,
) -> Result<SourceRow, String> {
    let id = record_id(record)?;
    let context = |e: String| format!("record {id}: {e}");
    Ok(SourceRow {
        system_modstamp: required_time(record, "SystemModstamp").map_err(context)?,
        last_modified_date: required_time(record, "LastModifiedDate").map_err(context)?,
        last_modified_by: record
            .get("LastModifiedById")
            .and_then(Value::as_str)
            .map(str::to_string),
        values: mapping.to_canonical(org, record),
        parent: match lookup(record, ACCOUNT_OBJECT) {
            Some(Value::Object(parent)) => Some(parent.clone()),
            _ => None,
        },
        deleted: record.get("IsDeleted").and_then(Value::as_bool) == Some(true),
        id,
    })
}

/// A lookup row of the target org in canonical form.
pub fn parse_target_row(
    org: Org,
    mapping: &Mapping,
    external_id_field: Option<&str>,
    record: &Map<String, Value>,
) -> Result<TargetRow, String> {
    let id = record_id(record)?;
    let context = |e: String| format!("record {id}: {e}");
    let external_id = external_id_field.and_then(|f| {
        record
            .get(f)
            .or_else(|| {
                record
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(f))
                    .map(|(_, v)| v)
            })
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    Ok(TargetRow {
        system_modstamp: required_time(record, "SystemModstamp").map_err(context)?,
        last_modified_date: required_time(record, "LastModifiedDate").map_err(context)?,
        external_id,
        values: mapping.to_canonical(org, record),
        id,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::sync::plan::{FailCode, SkipReason};

    fn mapping() -> Mapping {
        let fields: Vec<String> = ["Name", "Amount"].iter().map(|s| s.to_string()).collect();
        Mapping::new(&fields, &BTreeMap::new(), &BTreeMap::new()).expect("mapping")
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 10, minute, 0)
            .single()
            .expect("time")
    }

    fn row(id: &str, minute: u32) -> SourceRow {
        SourceRow {
            id: id.into(),
            system_modstamp: at(minute),
            last_modified_date: at(minute),
            last_modified_by: None,
            values: [("Name".to_string(), json!("Acme"))].into_iter().collect(),
            parent: None,
            deleted: false,
        }
    }

    fn decision(action: Action, reverse: bool) -> Decision {
        Decision {
            action,
            reverse,
            snapshot: None,
            conflicts: Vec::new(),
        }
    }

    fn link(target_id: &str) -> LinkView {
        LinkView {
            target_id: target_id.into(),
            source_modstamp: None,
            snapshot: None,
        }
    }

    #[test]
    fn a_decision_asks_for_its_write_in_the_targets_names() {
        let fields: BTreeMap<String, Value> =
            [("Name".to_string(), json!("Acme"))].into_iter().collect();
        let create = decision(
            Action::Create {
                fields: fields.clone(),
            },
            false,
        );
        let write = write_of(&create, &row("a1", 1), &mapping(), Org::B, Some("Ext__c"));
        let Some(Write::Create(body)) = write else {
            panic!("a create: {write:?}")
        };
        assert_eq!(body.get("Name"), Some(&json!("Acme")));
        assert_eq!(
            body.get("Ext__c"),
            Some(&json!("a1")),
            "the source id rides along"
        );
        let update = decision(
            Action::Update {
                target_id: "b1".into(),
                fields,
            },
            false,
        );
        let write = write_of(&update, &row("a1", 1), &mapping(), Org::B, Some("Ext__c"));
        assert!(matches!(&write, Some(Write::Update { target_id, body })
            if target_id == "b1" && !body.contains_key("Ext__c")));
        for action in [
            Action::Link {
                target_id: "b1".into(),
            },
            Action::Skip(SkipReason::Unchanged),
            Action::Fail {
                code: FailCode::AmbiguousMatch,
                message: String::new(),
            },
        ] {
            assert_eq!(
                write_of(
                    &decision(action, false),
                    &row("a1", 1),
                    &mapping(),
                    Org::B,
                    None
                ),
                None
            );
        }
    }

    #[test]
    fn the_reverse_carry_names_the_decisions_target_else_the_linked_one() {
        let update = Action::Update {
            target_id: "b1".into(),
            fields: BTreeMap::new(),
        };
        assert_eq!(reverse_target(&decision(update.clone(), false), None), None);
        assert_eq!(
            reverse_target(&decision(update, true), Some(&link("b9"))),
            Some("b1".to_string())
        );
        let skip = Action::Skip(SkipReason::Unchanged);
        assert_eq!(
            reverse_target(&decision(skip.clone(), true), Some(&link("b9"))),
            Some("b9".to_string())
        );
        assert_eq!(reverse_target(&decision(skip, true), None), None);
    }

    #[test]
    fn a_b_sources_snapshot_records_the_a_account_just_resolved() {
        let linked = |account: Option<&str>| {
            let mut state = RowState::new(row("b1", 1), None, None);
            state.account_id = account.map(str::to_string);
            state.outcome = RowOutcome::Linked {
                target_id: "a1".into(),
                snapshot: [(ACCOUNT_NAME_PATH.to_string(), json!("token"))]
                    .into_iter()
                    .collect(),
            };
            state
        };
        let snapshot_value = |state: &RowState| match &state.outcome {
            RowOutcome::Linked { snapshot, .. } => snapshot.get(ACCOUNT_NAME_PATH).cloned(),
            _ => None,
        };
        let mut state = linked(Some("001A"));
        rewrite_parent_snapshot(Org::B, &mut state);
        assert_eq!(snapshot_value(&state), Some(json!("001A")));
        // A source: its parents are their own A-side ids already.
        let mut state = linked(Some("001A"));
        rewrite_parent_snapshot(Org::A, &mut state);
        assert_eq!(snapshot_value(&state), Some(json!("token")));
        // No parent resolved: the snapshot stays.
        let mut state = linked(None);
        rewrite_parent_snapshot(Org::B, &mut state);
        assert_eq!(snapshot_value(&state), Some(json!("token")));
        // A snapshot without the pseudo-field does not gain it.
        let mut state = RowState::new(row("b1", 1), None, None);
        state.account_id = Some("001A".into());
        state.outcome = RowOutcome::Linked {
            target_id: "a1".into(),
            snapshot: BTreeMap::new(),
        };
        rewrite_parent_snapshot(Org::B, &mut state);
        assert_eq!(snapshot_value(&state), None);
    }

    #[test]
    fn dedup_keeps_the_latest_version_in_first_seen_order() {
        let rows = vec![row("a1", 1), row("a2", 2), row("a1", 3), row("a1", 2)];
        let out = dedup_latest(rows);
        let seen: Vec<(&str, DateTime<Utc>)> = out
            .iter()
            .map(|r| (r.id.as_str(), r.system_modstamp))
            .collect();
        assert_eq!(seen, [("a1", at(3)), ("a2", at(2))]);
    }

    #[test]
    fn failing_a_row_drops_its_write() {
        let mut state = RowState::new(row("a1", 1), None, None);
        state.write = Some(Write::Create(Map::new()));
        state.fail(None, "X".into(), "m".into(), FailureClass::NeedsEdit);
        assert_eq!(state.write, None);
        assert!(matches!(state.outcome, RowOutcome::Failed { ref code, .. } if code == "X"));
    }
}
