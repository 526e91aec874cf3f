//! The engine's decisions, as pure functions: what to do with one source row, given its link,
//! the target row and the match candidates. No I/O happens here; the direction pass
//! (`pass.rs`) gathers the inputs, calls these functions and carries out the result.
//!
//! Two steps:
//! - [`triage`] runs before any lookup in the target org: it drops overlap replays, leaves
//!   records to the failure queue, and recognises echoes (our own write coming back, or no
//!   change in a mapped field) by comparing with the link's snapshot. Only rows it answers
//!   [`Triage::Lookup`] for cost an API call.
//! - [`plan`] decides the action for a looked-up row; [`plan_page`] applies it to a page and
//!   adds the rule no row can see alone: two source rows must never be linked to one target.
//!
//! Deletes. A row read with `IsDeleted = true` (the watermark query reads through `queryAll`
//! when `sync.deletes = "propagate"`) is triaged like any other (replay, queue) but is never
//! an echo, and without a live link it settles at once ([`Triage::Gone`]): never synced,
//! unlinked, or a tombstone (our own delete coming back, whoever the user). A linked one is
//! looked up, and [`plan`] decides: the target already gone is a tombstone; a target equal
//! to the snapshot is deleted; a target edited since the snapshot is a delete conflict,
//! resolved by `sync.delete_conflict` (keep the edit: restore the source and write the edit
//! to it; or delete).
//!
//! Undeletes. A live row without a live link whose latest link is a tombstone came back from
//! the recycle bin: [`plan_tombstoned`] decides [`Action::Undelete`] of the tombstone's
//! target, and once the target org answered, [`plan_restored`] decides the write (update the
//! target back, or plan the row as unlinked when the target is gone).
//!
//! The snapshot. A link's snapshot is the canonical values the *source* of the last sync held
//! when it was synced. When every field of the source won, that is also what the target
//! holds. When the target won a field (a conflict lost by the source, or a target-only
//! change), the target holds another value, the snapshot still holds the source's, and the
//! decision carries `reverse = true`: the pass queues the target record for the opposite
//! direction, which then sees "target changed since the snapshot, source did not" and carries
//! the value back. (Storing the merged values instead would make the opposite direction take
//! the target's row for an echo of the snapshot and never carry the value back.)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::mapping::{Canonical, Mapping, same_value};
use crate::config::{ConflictPolicy, DeleteConflictPolicy};
use crate::store::{Direction, Org};

/// A row read from the source org, in canonical form.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceRow {
    pub id: String,
    pub system_modstamp: DateTime<Utc>,
    pub last_modified_date: DateTime<Utc>,
    pub last_modified_by: Option<String>,
    pub values: Canonical,
    /// The parent account's record as the row carried it (`account.sync_policy =
    /// "syncAccount"`): its `Id` (for the Account link and the canonical parent value) and
    /// `account.fields`, used to create a missing parent in the target.
    pub parent: Option<Map<String, Value>>,
    /// The row was read deleted (`IsDeleted = true`, through `queryAll`), or is known deleted
    /// (getDeleted: then its values are empty).
    pub deleted: bool,
}

/// A row found in the target org, in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    pub id: String,
    pub system_modstamp: DateTime<Utc>,
    pub last_modified_date: DateTime<Utc>,
    /// The value of `sync.external_id_field`, when configured and set.
    pub external_id: Option<String>,
    pub values: Canonical,
}

/// A link seen from one direction: the counterpart in the target org and what the link
/// records about the source side.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkView {
    pub target_id: String,
    /// SystemModstamp of the source version last given an outcome through this link.
    pub source_modstamp: Option<DateTime<Utc>>,
    /// Canonical values last synced; `None` when the link has none yet.
    pub snapshot: Option<Canonical>,
}

/// What the failure queue records about a source record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedFailure {
    /// SystemModstamp of the version that failed, when known.
    pub source_modstamp: Option<DateTime<Utc>>,
}

/// The decision rules of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub direction: Direction,
    pub conflict: ConflictPolicy,
    /// `sync.delete_conflict`: a deleted source whose target was edited since the snapshot.
    pub delete_conflict: DeleteConflictPolicy,
}

/// Outcome of [`triage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triage {
    /// The link already records this version (or a later one): an overlap replay. Nothing to
    /// do, nothing to write, not even the link.
    Drop,
    /// The record waits in the failure queue and this row is not newer than the failed
    /// version: leave it to the queue's retries.
    LeaveToQueue,
    /// Linked and the source equals the snapshot: our own write coming back, or a change in
    /// fields we do not sync. Record the modstamp on the link; no lookup, no write.
    Echo,
    /// The row needs its target looked up (by link or by match key) and a [`plan`].
    Lookup,
    /// A deleted row without a live link: nothing to delete (never synced, unlinked, or a
    /// tombstone already: our own delete coming back). No lookup, nothing recorded.
    Gone,
}

/// The first, lookup-free decision for a source row (rule order: replay, queue, echo).
/// `queued` is the record's entry in the failure queue, or `None` (also when the row is being
/// retried from the queue).
pub fn triage(
    row: &SourceRow,
    link: Option<&LinkView>,
    queued: Option<&QueuedFailure>,
    mapping: &Mapping,
) -> Triage {
    if let Some(seen) = link.and_then(|l| l.source_modstamp)
        && row.system_modstamp <= seen
    {
        return Triage::Drop;
    }
    if let Some(failed) = queued.and_then(|q| q.source_modstamp)
        && row.system_modstamp <= failed
    {
        return Triage::LeaveToQueue;
    }
    if row.deleted {
        return if link.is_some() {
            Triage::Lookup
        } else {
            Triage::Gone
        };
    }
    if let Some(snapshot) = link.and_then(|l| l.snapshot.as_ref())
        && mapping.equal(&row.values, snapshot)
    {
        return Triage::Echo;
    }
    Triage::Lookup
}

/// Why a row was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Overlap replay: the link already records this version.
    Replay,
    /// Left to the failure queue.
    Queued,
    /// Source equals the snapshot.
    Echo,
    /// Nothing differs in the target (link and snapshot still updated).
    Unchanged,
    /// A deleted row without a live link (see [`Triage::Gone`]).
    Gone,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Replay => "replay",
            SkipReason::Queued => "queued",
            SkipReason::Echo => "echo",
            SkipReason::Unchanged => "unchanged",
            SkipReason::Gone => "deleted_unlinked",
        }
    }
}

/// Why the engine itself refused a row (Salesforce's own errors keep Salesforce's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailCode {
    /// The linked target record no longer exists; an operator decides (never recreated).
    LinkedTargetMissing,
    /// More than one target record could be this record's counterpart.
    AmbiguousMatch,
    /// A delete held by the mass-delete breaker (`sync.max_deletes_per_cycle`) for an
    /// operator: `failures retry --code DELETE_HELD` applies it, `discard` keeps the target.
    DeleteHeld,
}

impl FailCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailCode::LinkedTargetMissing => "LINKED_TARGET_MISSING",
            FailCode::AmbiguousMatch => "AMBIGUOUS_MATCH",
            FailCode::DeleteHeld => "DELETE_HELD",
        }
    }
}

impl fmt::Display for FailCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a source row.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the record in the target (an upsert on the external id field when configured).
    Create { fields: Canonical },
    /// Write these canonical fields to the target record (`Value::Null` clears a field). On
    /// success the source is linked to `target_id` (it may not be linked yet).
    Update {
        target_id: String,
        fields: BTreeMap<String, Value>,
    },
    /// Link to an existing target record that needs no write.
    Link { target_id: String },
    /// Nothing to write in the target. For `Unchanged` and `Echo`, the link still records the
    /// new modstamp (and snapshot).
    Skip(SkipReason),
    /// The row cannot be synced now: it goes to the failure queue.
    Fail { code: FailCode, message: String },
    /// The source was deleted and the target is unchanged since the snapshot (or the delete
    /// wins a delete conflict): delete the target, make the link a tombstone.
    Delete {
        target_id: String,
        /// Set when the target had been edited (`sync.delete_conflict = "delete"`).
        conflict: Option<DeleteConflict>,
    },
    /// The source was deleted and the linked target is already gone: the link becomes a
    /// tombstone, no call.
    Tombstone { target_id: String },
    /// A delete conflict kept the edit (`sync.delete_conflict = "keep_edit"`): the deleted
    /// source is restored (undelete) and gets `fields`, the target's values; the link stays
    /// live with them as its snapshot.
    Restore {
        target_id: String,
        fields: Canonical,
        conflict: DeleteConflict,
    },
    /// A live source row whose link is a tombstone (it came back from the recycle bin): its
    /// deleted target is to be restored (SOAP undelete) and given `fields`. The undelete
    /// stage (`sync::undelete`) replaces it with [`plan_restored`]'s decision once the
    /// target org answered.
    Undelete {
        target_id: String,
        fields: Canonical,
    },
}

/// A deleted source whose target was edited since the last sync: what the target holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteConflict {
    /// Canonical fields whose target value differs from the snapshot.
    pub edited: Vec<String>,
    /// Their values as last synced (the deleted source's side; `null` without a snapshot).
    pub synced_values: BTreeMap<String, Value>,
    /// Their values in the target now (the edit).
    pub target_values: BTreeMap<String, Value>,
    pub target_last_modified: DateTime<Utc>,
    pub source_deleted_at: DateTime<Utc>,
}

/// Which side's value was kept for a conflicting field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    Source,
    Target,
}

/// A field changed on both sides (or differing on a first link) with different values.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Canonical field name.
    pub field: String,
    pub source_value: Option<Value>,
    pub target_value: Option<Value>,
    pub source_last_modified: DateTime<Utc>,
    pub target_last_modified: DateTime<Utc>,
    pub winner: Winner,
}

/// The full decision for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    /// The target record is to be carried back to the source (queued for the opposite
    /// direction): it holds a value the source does not.
    pub reverse: bool,
    /// The snapshot to store on the link once the action succeeded; `None` keeps the stored
    /// one (or means there is no link to write).
    pub snapshot: Option<Canonical>,
    pub conflicts: Vec<Conflict>,
}

impl Decision {
    fn new(action: Action) -> Decision {
        Decision {
            action,
            reverse: false,
            snapshot: None,
            conflicts: Vec::new(),
        }
    }

    fn fail(code: FailCode, message: String) -> Decision {
        Decision::new(Action::Fail { code, message })
    }

    /// The target record this decision is about, when known.
    pub fn target_id(&self) -> Option<&str> {
        match &self.action {
            Action::Update { target_id, .. }
            | Action::Link { target_id }
            | Action::Delete { target_id, .. }
            | Action::Tombstone { target_id }
            | Action::Restore { target_id, .. }
            | Action::Undelete { target_id, .. } => Some(target_id),
            _ => None,
        }
    }
}

/// What the pass found in the target for a row that needed a lookup.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The row is linked; `row` is the linked target record, `None` when it is gone.
    Linked {
        link: &'a LinkView,
        row: Option<&'a TargetRow>,
    },
    /// The row is not linked; `candidates` are the target records with its match key that
    /// are not linked to another record.
    Unlinked { candidates: &'a [&'a TargetRow] },
}

/// Decides the action for one looked-up row (DESIGN §3's pure step). See the module docs for
/// the snapshot and `reverse`.
pub fn plan(row: &SourceRow, target: Target<'_>, policy: &Policy, mapping: &Mapping) -> Decision {
    let target_org = policy.direction.target();
    if row.deleted {
        return plan_delete(row, target, policy, mapping);
    }
    match target {
        Target::Linked { link, row: None } => {
            let tgt = target_org.as_str().to_ascii_uppercase();
            Decision::fail(
                FailCode::LinkedTargetMissing,
                format!(
                    "the linked record {target} no longer exists in org {tgt} (deleted?); it is \
                     not recreated. To match this record again, or create it anew in org {tgt}: \
                     `orgsync links unlink {source} --forget`; to link it to another record: \
                     `orgsync links unlink {source}` then {relink} (either way the next cycle \
                     retries it)",
                    target = link.target_id,
                    source = row.id,
                    relink = link_command(policy.direction, &row.id, &format!("<{tgt} id>")),
                ),
            )
        }
        Target::Linked {
            link,
            row: Some(target),
        } => {
            let merge = merge(row, target, link.snapshot.as_ref(), policy, mapping);
            let action = if merge.writes.is_empty() {
                Action::Skip(SkipReason::Unchanged)
            } else {
                Action::Update {
                    target_id: target.id.clone(),
                    fields: merge.writes,
                }
            };
            Decision {
                action,
                reverse: merge.reverse,
                snapshot: Some(row.values.clone()),
                conflicts: merge.conflicts,
            }
        }
        Target::Unlinked { candidates } => match candidates {
            [] => Decision {
                action: Action::Create {
                    fields: row.values.clone(),
                },
                reverse: false,
                snapshot: Some(row.values.clone()),
                conflicts: Vec::new(),
            },
            [target] => {
                let merge = merge(row, target, None, policy, mapping);
                let action = if merge.writes.is_empty() {
                    Action::Link {
                        target_id: target.id.clone(),
                    }
                } else {
                    Action::Update {
                        target_id: target.id.clone(),
                        fields: merge.writes,
                    }
                };
                Decision {
                    action,
                    reverse: merge.reverse,
                    snapshot: Some(row.values.clone()),
                    conflicts: merge.conflicts,
                }
            }
            many => Decision::fail(
                FailCode::AmbiguousMatch,
                format!(
                    "{} records in org {} match this record: {}; link it by hand to the right \
                     one, {} (the next cycle merges the pair by sync.conflict), or make the \
                     match key unique",
                    many.len(),
                    target_org.as_str().to_ascii_uppercase(),
                    join_ids(many.iter().map(|t| t.id.as_str())),
                    link_commands(
                        policy.direction,
                        &row.id,
                        many.iter().map(|t| t.id.as_str())
                    ),
                ),
            ),
        },
    }
}

/// The decision for a deleted source row (see the module docs). A deleted row is only looked
/// up when linked; unlinked, it is settled by [`triage`] and never matched (a deleted record
/// is not created again anywhere).
fn plan_delete(
    row: &SourceRow,
    target: Target<'_>,
    policy: &Policy,
    mapping: &Mapping,
) -> Decision {
    let (link, found) = match target {
        Target::Linked { link, row } => (link, row),
        Target::Unlinked { .. } => return Decision::new(Action::Skip(SkipReason::Gone)),
    };
    let Some(found) = found else {
        return Decision::new(Action::Tombstone {
            target_id: link.target_id.clone(),
        });
    };
    let edited: Vec<String> = match &link.snapshot {
        Some(snapshot) => mapping
            .canonical_fields()
            .filter(|f| !same_value(found.values.get(*f), snapshot.get(*f)))
            .map(str::to_string)
            .collect(),
        // No snapshot (a pair linked by hand and never synced): nothing says the target is
        // unchanged, so it counts as edited in every field.
        None => mapping.canonical_fields().map(str::to_string).collect(),
    };
    if edited.is_empty() {
        return Decision::new(Action::Delete {
            target_id: found.id.clone(),
            conflict: None,
        });
    }
    let value_of = |values: Option<&Canonical>, f: &String| {
        values
            .and_then(|v| v.get(f))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let conflict = DeleteConflict {
        synced_values: edited
            .iter()
            .map(|f| (f.clone(), value_of(link.snapshot.as_ref(), f)))
            .collect(),
        target_values: edited
            .iter()
            .map(|f| (f.clone(), value_of(Some(&found.values), f)))
            .collect(),
        edited,
        target_last_modified: found.last_modified_date,
        source_deleted_at: row.system_modstamp,
    };
    match policy.delete_conflict {
        DeleteConflictPolicy::Delete => Decision::new(Action::Delete {
            target_id: found.id.clone(),
            conflict: Some(conflict),
        }),
        DeleteConflictPolicy::KeepEdit => Decision {
            action: Action::Restore {
                target_id: found.id.clone(),
                fields: found.values.clone(),
                conflict,
            },
            reverse: false,
            // Both sides hold the target's values once the source got them.
            snapshot: Some(found.values.clone()),
            conflicts: Vec::new(),
        },
    }
}

/// The decision for a source row without a live link whose latest link is `tombstone`: a
/// live row is an undelete (restore the tombstone's target and give it the source's values;
/// the snapshot is those values); a deleted row is `None` (the delete path's, settled by
/// [`triage`]).
pub fn plan_tombstoned(row: &SourceRow, tombstone: &LinkView) -> Option<Decision> {
    if row.deleted {
        return None;
    }
    Some(Decision {
        action: Action::Undelete {
            target_id: tombstone.target_id.clone(),
            fields: row.values.clone(),
        },
        reverse: false,
        snapshot: Some(row.values.clone()),
        conflicts: Vec::new(),
    })
}

/// What the target org said about an undeleted row's target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Restored<'a> {
    /// The target is back (undeleted now, or live already): this id.
    Back(&'a str),
    /// The target is gone (purged, hard-deleted): `candidates` are the unlinked target
    /// records with the row's match key (a copy created before a crash, among others).
    Gone { candidates: &'a [&'a TargetRow] },
}

/// The decision that replaces an [`Action::Undelete`] once the target org answered: a target
/// back is updated to the source's values (all of them: nothing says what it holds), with
/// the row's values as the snapshot; a target gone is planned as an unlinked row (a create,
/// an upsert on the external id field when configured, or the link of the one candidate:
/// the copy a crash before the commit left unlinked is found again, never duplicated).
pub fn plan_restored(
    row: &SourceRow,
    restored: Restored<'_>,
    policy: &Policy,
    mapping: &Mapping,
) -> Decision {
    match restored {
        Restored::Back(target_id) => Decision {
            action: Action::Update {
                target_id: target_id.to_string(),
                fields: row.values.clone(),
            },
            reverse: false,
            snapshot: Some(row.values.clone()),
            conflicts: Vec::new(),
        },
        Restored::Gone { candidates } => {
            plan(row, Target::Unlinked { candidates }, policy, mapping)
        }
    }
}

/// One row of a page, with what the pass found for it.
#[derive(Debug, Clone, Copy)]
pub struct PageItem<'a> {
    pub row: &'a SourceRow,
    pub target: Target<'a>,
}

/// [`plan`] for every row of a page, plus the page-level rule: when two unlinked rows of the
/// page share a candidate, both fail as ambiguous (two records are never merged into one).
/// Two rows with the same key and no candidate are two creates.
pub fn plan_page(items: &[PageItem<'_>], policy: &Policy, mapping: &Mapping) -> Vec<Decision> {
    let mut claims: HashMap<&str, Vec<&str>> = HashMap::new();
    for item in items {
        if let Target::Unlinked { candidates } = item.target {
            for candidate in candidates {
                claims
                    .entry(candidate.id.as_str())
                    .or_default()
                    .push(item.row.id.as_str());
            }
        }
    }
    items
        .iter()
        .map(|item| {
            if let Target::Unlinked { candidates } = item.target {
                let rivals: BTreeSet<&str> = candidates
                    .iter()
                    .flat_map(|c| claims.get(c.id.as_str()).into_iter().flatten())
                    .copied()
                    .filter(|id| *id != item.row.id)
                    .collect();
                if !rivals.is_empty() {
                    return Decision::fail(
                        FailCode::AmbiguousMatch,
                        format!(
                            "records {} of org {} both match {} in org {}; neither is linked \
                             (two records are never merged into one): link this one by hand, \
                             {} (the next cycle merges the pair by sync.conflict), or make the \
                             match key unique",
                            join_ids(
                                std::iter::once(item.row.id.as_str()).chain(rivals.iter().copied())
                            ),
                            policy.direction.source().as_str().to_ascii_uppercase(),
                            join_ids(candidates.iter().map(|c| c.id.as_str())),
                            policy.direction.target().as_str().to_ascii_uppercase(),
                            link_commands(
                                policy.direction,
                                &item.row.id,
                                candidates.iter().map(|c| c.id.as_str())
                            ),
                        ),
                    );
                }
            }
            plan(item.row, item.target, policy, mapping)
        })
        .collect()
}

/// The `orgsync links link <A id> <B id>` command that links source record `source_id` to
/// target record `target_id` (A's id first, whichever the direction).
fn link_command(direction: Direction, source_id: &str, target_id: &str) -> String {
    let (a, b) = match direction.source() {
        Org::A => (source_id, target_id),
        Org::B => (target_id, source_id),
    };
    format!("`orgsync links link {a} {b}`")
}

/// [`link_command`] for each candidate, joined with "or".
fn link_commands<'s>(
    direction: Direction,
    source_id: &str,
    candidates: impl Iterator<Item = &'s str>,
) -> String {
    candidates
        .map(|c| link_command(direction, source_id, c))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn join_ids<'s>(ids: impl Iterator<Item = &'s str>) -> String {
    ids.collect::<Vec<_>>().join(", ")
}

struct Merge {
    writes: BTreeMap<String, Value>,
    conflicts: Vec<Conflict>,
    reverse: bool,
}

/// Field-level three-way merge of source and target against the snapshot (all fields count
/// as changed on both sides when there is none).
fn merge(
    row: &SourceRow,
    target: &TargetRow,
    snapshot: Option<&Canonical>,
    policy: &Policy,
    mapping: &Mapping,
) -> Merge {
    let mut out = Merge {
        writes: BTreeMap::new(),
        conflicts: Vec::new(),
        reverse: false,
    };
    for field in mapping.canonical_fields() {
        let source = row.values.get(field);
        let current = target.values.get(field);
        if same_value(source, current) {
            continue;
        }
        let base = snapshot.map(|s| s.get(field));
        let source_changed = base.is_none_or(|b| !same_value(source, b));
        let target_changed = base.is_none_or(|b| !same_value(current, b));
        let source_wins = match (source_changed, target_changed) {
            (true, false) => true,
            // Only the target changed: keep its value; the source gets it back.
            (false, _) => false,
            (true, true) => {
                let winner = if source_wins_conflict(row, target, policy) {
                    Winner::Source
                } else {
                    Winner::Target
                };
                out.conflicts.push(Conflict {
                    field: field.to_string(),
                    source_value: source.cloned(),
                    target_value: current.cloned(),
                    source_last_modified: row.last_modified_date,
                    target_last_modified: target.last_modified_date,
                    winner,
                });
                winner == Winner::Source
            }
        };
        if source_wins {
            out.writes
                .insert(field.to_string(), source.cloned().unwrap_or(Value::Null));
        } else {
            out.reverse = true;
        }
    }
    out
}

/// The conflict rule: `last_writer_wins` is the template's (the source wins iff the target's
/// LastModifiedDate is older); `a_wins` / `b_wins` name the master org.
fn source_wins_conflict(row: &SourceRow, target: &TargetRow, policy: &Policy) -> bool {
    match policy.conflict {
        ConflictPolicy::LastWriterWins => target.last_modified_date < row.last_modified_date,
        ConflictPolicy::AWins => policy.direction.source() == Org::A,
        ConflictPolicy::BWins => policy.direction.source() == Org::B,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "plan_delete_tests.rs"]
mod delete_tests;
