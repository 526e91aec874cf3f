//! One object's records and their indexes: records by slot (slots never move, deletes are
//! soft), the (SystemModstamp, slot) order and the value index of lookup-able fields.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::schema::{FieldType, ObjectDef};
use crate::value::{Value, index_key};

/// One stored record. Its values are indexed by field position (shorter than the field list
/// when fields were added later: missing values are null).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    pub(super) values: Vec<Value>,
    pub(super) deleted: bool,
}

/// The records of one object and their indexes.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) records: Vec<Record>,
    /// (SystemModstamp in ms, slot) of every record, deleted ones included (queryAll).
    pub(super) by_modstamp: BTreeSet<(i64, u32)>,
    /// Field position -> lowercase value -> slots of live records holding it.
    pub(super) lookups: HashMap<usize, HashMap<String, BTreeSet<u32>>>,
    /// Soft deletions in the order they happened: (slot, deletion time).
    pub(super) deletions: Vec<(u32, DateTime<Utc>)>,
    /// Records not deleted.
    pub(super) live: usize,
    /// Deleted records purged from the recycle bin: gone from queryAll, no longer undeletable
    /// (getDeleted still lists them).
    pub(super) purged: BTreeSet<u32>,
    /// Child slot -> id of the parent whose delete cascaded to it (undeleting the parent
    /// restores it).
    pub(super) deleted_with: HashMap<u32, String>,
    /// Where getDeleted's window starts at the earliest after a recycle-bin purge (or the
    /// control API): its `earliestDateAvailable` is never before this.
    pub(super) earliest_available: Option<DateTime<Utc>>,
}

impl Table {
    /// Whether a slot is visible to a query: live, or deleted (queryAll) and still in the
    /// recycle bin.
    pub(super) fn visible(&self, slot: u32, include_deleted: bool) -> bool {
        match self.records.get(slot as usize) {
            Some(rec) if rec.deleted => include_deleted && !self.purged.contains(&slot),
            Some(_) => true,
            None => false,
        }
    }
}

/// A handle on one record, for the SOQL evaluator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub(super) object: u32,
    pub(super) slot: u32,
}

fn modstamp_key(obj: &ObjectDef, rec: &Record) -> i64 {
    rec.values
        .get(obj.system.system_modstamp)
        .and_then(Value::as_datetime)
        .map(|d| d.timestamp_millis())
        .unwrap_or(i64::MIN)
}

/// Fields with a value index: upsert keys, unique fields, Name (indexed in Salesforce too:
/// clients match records by name) and lookups to parents (`AccountId IN (...)`, the
/// account -> opportunities cascade). The audit lookups (CreatedById, LastModifiedById) are
/// left out: nearly every record shares their few values.
pub(super) fn indexed_fields(obj: &ObjectDef) -> impl Iterator<Item = usize> + '_ {
    let audit = [obj.system.created_by_id, obj.system.last_modified_by_id];
    obj.fields
        .iter()
        .enumerate()
        .filter(move |(i, f)| {
            f.is_indexed()
                || f.name_field
                || (f.field_type == FieldType::Reference && !audit.contains(i))
        })
        .map(|(i, _)| i)
}

impl Table {
    pub(super) fn index(&mut self, obj: &ObjectDef, slot: u32) {
        let rec = &self.records[slot as usize];
        self.by_modstamp.insert((modstamp_key(obj, rec), slot));
        if rec.deleted {
            return;
        }
        self.live += 1;
        for fi in indexed_fields(obj) {
            if let Some(key) = rec.values.get(fi).and_then(index_key) {
                self.lookups
                    .entry(fi)
                    .or_default()
                    .entry(key)
                    .or_default()
                    .insert(slot);
            }
        }
    }

    pub(super) fn unindex(&mut self, obj: &ObjectDef, slot: u32) {
        let rec = &self.records[slot as usize];
        self.by_modstamp.remove(&(modstamp_key(obj, rec), slot));
        if rec.deleted {
            return;
        }
        self.live -= 1;
        for fi in indexed_fields(obj) {
            if let Some(key) = rec.values.get(fi).and_then(index_key)
                && let Some(map) = self.lookups.get_mut(&fi)
                && let Some(slots) = map.get_mut(&key)
            {
                slots.remove(&slot);
                if slots.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    /// Live slots whose field `fi` holds `v` (case-insensitively for text).
    pub(super) fn lookup(&self, fi: usize, v: &Value) -> Vec<u32> {
        index_key(v)
            .and_then(|k| self.lookups.get(&fi).and_then(|m| m.get(&k)))
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }
}
