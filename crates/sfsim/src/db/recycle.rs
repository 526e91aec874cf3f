//! The recycle bin: undelete (with the children a delete cascaded to), Account merge (losers
//! deleted with `MasterRecordId`, their opportunities reparented), and the purge that takes
//! deleted records out of the bin (gone from queryAll, no longer undeletable, still listed by
//! getDeleted, whose window then starts later).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::dml::{ItemFailure, Undo};
use super::replication::truncate_to_minute;
use super::{DmlContext, DmlOp, DmlResult, OrgDb, item};
use crate::error::ItemError;
use crate::ids;
use crate::value::{Value, truncate_millis};

/// Records one merge may combine, the master included (Salesforce's limit).
pub const MERGE_MAX_RECORDS: usize = 3;

/// One `MergeRequest`: the master record's id and the field values that supersede its own,
/// and the ids of the records merged into it.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSpec {
    pub object: String,
    pub master_id: String,
    pub master_fields: Map<String, Json>,
    pub loser_ids: Vec<String>,
}

/// A successful merge: `MergeResult`'s `id`, `mergedRecordIds` and `updatedRelatedIds`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOk {
    pub id: String,
    pub merged_ids: Vec<String>,
    pub updated_related_ids: Vec<String>,
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq)]
pub struct PurgeOutcome {
    /// Ids of the records taken out of the recycle bin.
    pub purged: Vec<String>,
}

fn not_in_bin(id: &str) -> ItemFailure {
    (
        Some(id.to_string()),
        vec![item(
            "UNDELETE_FAILED",
            "Entity is not in the recycle bin",
            vec![],
        )],
    )
}

impl OrgDb {
    /// Whether `id` names a deleted record of `object` (in the recycle bin or purged): the
    /// single-record REST routes answer it with 404 ENTITY_IS_DELETED, not NOT_FOUND.
    pub fn is_deleted_record(&self, object: &str, id: &str) -> bool {
        let Ok(id18) = ids::to_18(id) else {
            return false;
        };
        match (self.schema.object_index(object), self.locations.get(&id18)) {
            (Some(oi), Some(&(o, slot))) => {
                o as usize == oi && self.tables[oi].records[slot as usize].deleted
            }
            _ => false,
        }
    }

    /// The (object, slot, 18-character id) of any stored record, deleted or not.
    fn locate_any(&self, id: &str) -> Result<(usize, u32, String), ItemFailure> {
        let id18 = ids::to_18(id).map_err(|_| {
            (
                None,
                vec![item("MALFORMED_ID", format!("malformed id {id}"), vec![])],
            )
        })?;
        match self.locations.get(&id18) {
            Some(&(o, slot)) => Ok((o as usize, slot, id18)),
            None => Err((
                Some(id18),
                vec![item(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                    vec![],
                )],
            )),
        }
    }

    /// SOAP `undelete`: each id separately (no AllOrNoneHeader). A record not in the recycle
    /// bin (live, or purged) fails with UNDELETE_FAILED. An undeleted record gets
    /// `IsDeleted = false` and a new SystemModstamp, LastModifiedDate and LastModifiedById;
    /// undeleting an Account restores the opportunities its delete cascaded to.
    pub fn undelete(&mut self, ids_in: &[String], ctx: &DmlContext) -> Vec<DmlResult> {
        let now = truncate_millis(ctx.now);
        ids_in
            .iter()
            .map(|id| {
                let (oi, slot, id18) = self.locate_any(id)?;
                let table = &self.tables[oi];
                if !table.records[slot as usize].deleted || table.purged.contains(&slot) {
                    return Err(not_in_bin(&id18));
                }
                let mut undo = Vec::new();
                self.restore(oi, slot, ctx, now, &mut undo);
                if self.schema.objects[oi].name == "Account"
                    && let Some(child) = self.schema.object_index("Opportunity")
                {
                    let mut children: Vec<u32> = self.tables[child]
                        .deleted_with
                        .iter()
                        .filter(|(_, parent)| **parent == id18)
                        .map(|(s, _)| *s)
                        .collect();
                    children.sort_unstable();
                    for s in children {
                        if !self.tables[child].purged.contains(&s) {
                            self.restore(child, s, ctx, now, &mut undo);
                        }
                    }
                }
                Ok(super::DmlOk {
                    id: id18,
                    created: None,
                })
            })
            .collect()
    }

    /// Brings one deleted slot back: live again, out of the delete log.
    fn restore(
        &mut self,
        oi: usize,
        slot: u32,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) {
        let obj = &self.schema.objects[oi];
        let sys = obj.system;
        let master = obj.field_index("MasterRecordId");
        let mut rec = self.tables[oi].records[slot as usize].clone();
        rec.deleted = false;
        rec.values.resize(obj.fields.len(), Value::Null);
        rec.values[sys.is_deleted] = Value::Bool(false);
        rec.values[sys.last_modified_date] = Value::DateTime(now);
        rec.values[sys.last_modified_by_id] = Value::Str(ctx.user_id.clone());
        rec.values[sys.system_modstamp] = Value::DateTime(now);
        if let Some(m) = master {
            rec.values[m] = Value::Null;
        }
        self.replace_record(oi, slot, rec, undo);
        let table = &mut self.tables[oi];
        table.deletions.retain(|(s, _)| *s != slot);
        table.deleted_with.remove(&slot);
    }

    /// SOAP `merge` of one MergeRequest, as one transaction: the master takes the request's
    /// field values; each loser's opportunities move to the master; the losers are deleted
    /// with `MasterRecordId` set to the master. Only Account is mergeable in sfsim.
    pub fn merge(&mut self, spec: &MergeSpec, ctx: &DmlContext) -> Result<MergeOk, ItemFailure> {
        let now = truncate_millis(ctx.now);
        let fail = |code: &str, msg: &str| -> ItemFailure {
            (
                Some(spec.master_id.clone()),
                vec![ItemError::new(code, msg, vec![])],
            )
        };
        if !spec.object.eq_ignore_ascii_case("Account") {
            return Err(fail(
                "INVALID_TYPE_FOR_OPERATION",
                "merge is supported for Account only",
            ));
        }
        if spec.loser_ids.is_empty() || spec.loser_ids.len() + 1 > MERGE_MAX_RECORDS {
            return Err(fail(
                "INVALID_ARGUMENT_TYPE",
                "a merge combines the master with one or two records",
            ));
        }
        let (moi, mslot, master) = self.locate_live(&spec.master_id, Some("Account"))?;
        let mut losers = Vec::new();
        for id in &spec.loser_ids {
            let (_, slot, id18) = self.locate_live(id, Some("Account"))?;
            if id18 == master || losers.iter().any(|(_, l)| *l == id18) {
                return Err((
                    Some(id18),
                    vec![item(
                        "INVALID_ID_FIELD",
                        "a record cannot be merged with itself",
                        vec![],
                    )],
                ));
            }
            losers.push((slot, id18));
        }
        let mut undo = Vec::new();
        let result = self.merge_steps(moi, mslot, &master, &losers, spec, ctx, now, &mut undo);
        if result.is_err() {
            self.rollback(undo);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn merge_steps(
        &mut self,
        moi: usize,
        mslot: u32,
        master: &str,
        losers: &[(u32, String)],
        spec: &MergeSpec,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> Result<MergeOk, ItemFailure> {
        let mut fields = spec.master_fields.clone();
        fields.retain(|k, _| !k.eq_ignore_ascii_case("Id") && !k.eq_ignore_ascii_case("type"));
        self.update_slot(
            moi,
            mslot,
            master.to_string(),
            &fields,
            ctx,
            now,
            undo,
            None,
        )?;
        let mut related = Vec::new();
        let opp = self.schema.object_index("Opportunity");
        let fk = opp.and_then(|o| self.schema.objects[o].field_index("AccountId"));
        for (slot, loser) in losers {
            if let (Some(o), Some(fk)) = (opp, fk) {
                let children = self.tables[o].lookup(fk, &Value::Str(loser.clone()));
                let id_field = self.schema.objects[o].system.id;
                let mut reparent = Map::new();
                reparent.insert("AccountId".into(), Json::String(master.to_string()));
                for s in children {
                    let cid = self.tables[o].records[s as usize].values[id_field]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    self.update_slot(o, s, cid.clone(), &reparent, ctx, now, undo, None)?;
                    related.push(cid);
                }
            }
            self.soft_delete(moi, *slot, ctx, now, undo);
            if let Some(m) = self.schema.objects[moi].field_index("MasterRecordId") {
                let mut rec = self.tables[moi].records[*slot as usize].clone();
                rec.values[m] = Value::Str(master.to_string());
                self.replace_record(moi, *slot, rec, undo);
            }
        }
        Ok(MergeOk {
            id: master.to_string(),
            merged_ids: losers.iter().map(|(_, id)| id.clone()).collect(),
            updated_related_ids: related,
        })
    }

    /// Takes deleted records out of the recycle bin: those deleted before `older_than` (all
    /// when `None`), or only `only_ids` when given. Each object's getDeleted window then
    /// starts no earlier than the purge point (`older_than`, or `now`).
    pub fn purge_recycle_bin(
        &mut self,
        older_than: Option<DateTime<Utc>>,
        only_ids: Option<&[String]>,
        now: DateTime<Utc>,
    ) -> PurgeOutcome {
        let wanted: Option<Vec<String>> =
            only_ids.map(|v| v.iter().filter_map(|id| ids::to_18(id).ok()).collect());
        let point = older_than.unwrap_or(now);
        let mut purged = Vec::new();
        for (oi, table) in self.tables.iter_mut().enumerate() {
            let id_field = self.schema.objects[oi].system.id;
            let mut touched = false;
            for (slot, when) in &table.deletions {
                let rec = &table.records[*slot as usize];
                let id = rec.values[id_field].as_str().unwrap_or_default();
                let chosen = match &wanted {
                    Some(w) => w.iter().any(|x| x == id),
                    None => *when < point,
                };
                if rec.deleted && chosen && table.purged.insert(*slot) {
                    purged.push(id.to_string());
                    touched = true;
                }
            }
            if touched {
                let floor = truncate_to_minute(point);
                table.earliest_available =
                    Some(table.earliest_available.map_or(floor, |f| f.max(floor)));
            }
        }
        PurgeOutcome { purged }
    }

    /// Moves the start of getDeleted's window (`earliestDateAvailable`) to `at` for one
    /// object, or all objects when `object` is `None`; returns false for an unknown object.
    pub fn set_earliest_available(&mut self, object: Option<&str>, at: DateTime<Utc>) -> bool {
        let targets: Vec<usize> = match object {
            Some(o) => match self.schema.object_index(o) {
                Some(oi) => vec![oi],
                None => return false,
            },
            None => (0..self.tables.len()).collect(),
        };
        for oi in targets {
            self.tables[oi].earliest_available = Some(truncate_to_minute(at));
        }
        true
    }

    /// A hard delete: each record (and the opportunities of an Account) is deleted and
    /// purged at once, as `emptyRecycleBin` right after a delete does.
    pub fn hard_delete(&mut self, ids_in: &[String], ctx: &DmlContext) -> Vec<DmlResult> {
        let ops = ids_in
            .iter()
            .map(|id| DmlOp::Delete { id: id.clone() })
            .collect();
        let (results, changes) = self.apply(ops, false, ctx);
        let gone: Vec<String> = changes.into_iter().map(|c| c.id).collect();
        if !gone.is_empty() {
            let now = truncate_millis(ctx.now);
            self.purge_recycle_bin(None, Some(&gone), now);
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use crate::db::test_support::*;
    use crate::db::*;
    use serde_json::json;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn delete(f: &mut Fixture, id: &str, now: &str) {
        let (r, _) = f.apply(vec![DmlOp::Delete { id: id.into() }], false, now);
        assert!(r[0].is_ok(), "{r:?}");
    }

    #[test]
    fn undelete_restores_the_record_and_its_cascaded_children() {
        let mut f = Fixture::new();
        let acc = f.create_ok("Account", json!({"Name": "Acme"}), "2024-03-10T09:00:00Z");
        let o1 = f.create_ok("Opportunity", json!({"Name": "o1", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": acc}), "2024-03-10T09:00:00Z");
        let o2 = f.create_ok("Opportunity", json!({"Name": "o2", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": acc}), "2024-03-10T09:00:00Z");
        // o2 deleted on its own first: the account's undelete must not bring it back.
        delete(&mut f, &o2, "2024-03-10T09:30:00Z");
        delete(&mut f, &acc, "2024-03-10T10:00:00Z");
        assert_eq!(f.q("SELECT Id FROM Opportunity").len(), 0);
        let ctx = f.ctx("2024-03-10T11:00:00.250Z");
        let r = f.db.undelete(&ids(&[&acc[..15]]), &ctx);
        assert_eq!(
            r,
            vec![Ok(DmlOk {
                id: acc.clone(),
                created: None
            })]
        );
        let rows = f.q("SELECT Id, IsDeleted, SystemModstamp, LastModifiedById FROM Opportunity");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Id"], json!(o1));
        assert_eq!(rows[0]["IsDeleted"], false);
        assert_eq!(rows[0]["SystemModstamp"], "2024-03-10T11:00:00.250+0000");
        assert_eq!(f.q("SELECT Id FROM Account").len(), 1);
        // Out of the delete log; o2 still in it.
        let d =
            f.db.deleted(
                "Opportunity",
                t("2024-03-10T00:00:00Z"),
                t("2024-03-10T12:00:00Z"),
                t("2024-03-10T12:00:00Z"),
            )
            .expect("deleted");
        assert_eq!(d["deletedRecords"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["deletedRecords"][0]["id"], json!(o2));
        // Live and unknown ids fail per id.
        let r =
            f.db.undelete(&ids(&[&acc, "001000000000000", "nope"]), &ctx);
        assert_eq!(errors(&r[0]), ["UNDELETE_FAILED"]);
        assert_eq!(errors(&r[1]), ["INVALID_CROSS_REFERENCE_KEY"]);
        assert_eq!(errors(&r[2]), ["MALFORMED_ID"]);
    }

    #[test]
    fn purge_empties_the_bin_but_not_the_delete_log() {
        let mut f = Fixture::new();
        let old = f.create_ok("Opportunity", opp("old"), "2024-03-10T09:00:00Z");
        let new = f.create_ok("Opportunity", opp("new"), "2024-03-10T09:00:00Z");
        delete(&mut f, &old, "2024-03-10T09:10:00Z");
        delete(&mut f, &new, "2024-03-10T10:10:00Z");
        let out = f.db.purge_recycle_bin(
            Some(t("2024-03-10T10:00:30Z")),
            None,
            t("2024-03-10T11:00:00Z"),
        );
        assert_eq!(out.purged, vec![old.clone()]);
        let all = f.q_all("SELECT Id FROM Opportunity WHERE IsDeleted = true");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["Id"], json!(new));
        let ctx = f.ctx("2024-03-10T11:00:00Z");
        assert_eq!(
            errors(&f.db.undelete(&ids(&[&old]), &ctx)[0]),
            ["UNDELETE_FAILED"]
        );
        let d =
            f.db.deleted(
                "Opportunity",
                t("2024-03-10T00:00:00Z"),
                t("2024-03-10T12:00:00Z"),
                t("2024-03-10T12:00:00Z"),
            )
            .expect("deleted");
        assert_eq!(d["deletedRecords"].as_array().map(Vec::len), Some(2));
        assert_eq!(d["earliestDateAvailable"], "2024-03-10T10:00:00.000+0000");
        // A hard delete: deleted and purged at once.
        let gone = f.create_ok("Opportunity", opp("gone"), "2024-03-10T11:00:00Z");
        let r =
            f.db.hard_delete(&ids(&[&gone]), &f.ctx("2024-03-10T11:30:00Z"));
        assert!(r[0].is_ok());
        assert_eq!(
            f.q_all("SELECT Id FROM Opportunity WHERE Name = 'gone'")
                .len(),
            0
        );
        let (r, _) = f.apply(
            vec![DmlOp::Delete { id: gone }],
            false,
            "2024-03-10T11:40:00Z",
        );
        assert_eq!(errors(&r[0]), ["ENTITY_IS_DELETED"]);
    }

    #[test]
    fn merge_deletes_losers_with_master_record_id_and_reparents() {
        let mut f = Fixture::new();
        let master = f.create_ok("Account", json!({"Name": "Acme"}), "2024-03-10T09:00:00Z");
        let loser = f.create_ok(
            "Account",
            json!({"Name": "Acme Inc"}),
            "2024-03-10T09:00:00Z",
        );
        let o = f.create_ok("Opportunity", json!({"Name": "o", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": loser}), "2024-03-10T09:00:00Z");
        let spec = MergeSpec {
            object: "Account".into(),
            master_id: master.clone(),
            master_fields: body(json!({"Id": master, "Phone": "555"})),
            loser_ids: vec![loser[..15].to_string()],
        };
        let ok =
            f.db.merge(&spec, &f.ctx("2024-03-10T10:00:00Z"))
                .expect("merged");
        assert_eq!(ok.merged_ids, vec![loser.clone()]);
        assert_eq!(ok.updated_related_ids, vec![o.clone()]);
        let rows =
            f.q_all("SELECT Id, IsDeleted, MasterRecordId, Phone FROM Account ORDER BY Name");
        assert_eq!(rows[0]["Phone"], "555");
        assert_eq!(rows[0]["IsDeleted"], false);
        assert_eq!(rows[1]["IsDeleted"], true);
        assert_eq!(rows[1]["MasterRecordId"], json!(master));
        let opp = f.q("SELECT AccountId, SystemModstamp FROM Opportunity");
        assert_eq!(opp[0]["AccountId"], json!(master));
        assert_eq!(opp[0]["SystemModstamp"], "2024-03-10T10:00:00.000+0000");
        // A deleted loser fails the whole request and changes nothing.
        let third = f.create_ok("Account", json!({"Name": "Third"}), "2024-03-10T09:00:00Z");
        let bad = MergeSpec {
            loser_ids: vec![third.clone(), loser.clone()],
            master_fields: body(json!({"Phone": "777"})),
            ..spec
        };
        let e =
            f.db.merge(&bad, &f.ctx("2024-03-10T11:00:00Z"))
                .expect_err("deleted loser");
        assert_eq!(e.1[0].status_code, "ENTITY_IS_DELETED");
        let rows = f.q("SELECT Phone FROM Account WHERE Name = 'Acme'");
        assert_eq!(rows[0]["Phone"], "555");
        assert_eq!(f.q("SELECT Id FROM Account").len(), 2);
    }
}
