//! DML of one call: create, update, upsert and delete with Salesforce's item errors, and the
//! undo log that rolls an allOrNone call back.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::upsert::duplicate_upsert_keys;
use super::{Change, ChangeKind, DmlContext, DmlOk, DmlOp, DmlResult, OrgDb, Record, item};
use crate::error::ItemError;
use crate::ids;
use crate::soql::plan::unsupported_object;
use crate::value::{Value, truncate_millis};

/// How to revert one mutation of an allOrNone call.
#[derive(Debug)]
pub(super) enum Undo {
    Created {
        object: usize,
    },
    Replaced {
        object: usize,
        slot: u32,
        old: Record,
    },
    DeletionLogged {
        object: usize,
    },
    CascadeLogged {
        object: usize,
        slot: u32,
    },
}
/// A failed item: the record id when known, and its errors.
pub(super) type ItemFailure = (Option<String>, Vec<ItemError>);

/// Per-item outcome inside `apply`.
pub(super) type ItemOutcome = Result<(DmlOk, Vec<Change>), ItemFailure>;
impl OrgDb {
    /// Applies the operations of one call in order. With `all_or_none`, any failure rolls the
    /// whole call back and the would-be successes report ALL_OR_NONE_OPERATION_ROLLED_BACK.
    /// Returns one result per op, and the committed changes.
    pub fn apply(
        &mut self,
        ops: Vec<DmlOp>,
        all_or_none: bool,
        ctx: &DmlContext,
    ) -> (Vec<DmlResult>, Vec<Change>) {
        let now = truncate_millis(ctx.now);
        let duplicates = duplicate_upsert_keys(&ops);
        let mut undo = Vec::new();
        let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            let known_id = match &op {
                DmlOp::Update { id, .. } | DmlOp::Delete { id } => {
                    Some(ids::to_18(id).unwrap_or_else(|_| id.clone()))
                }
                _ => None,
            };
            let forced: Vec<ItemError> = ctx
                .forced_errors
                .iter()
                .filter(|(at, _)| *at == i)
                .map(|(_, e)| e.clone())
                .collect();
            let outcome = if !forced.is_empty() {
                Err((known_id, forced))
            } else if let Some(e) = duplicates.get(&i) {
                Err((None, vec![e.clone()]))
            } else {
                match op {
                    DmlOp::Create { object, fields } => {
                        self.create(&object, &fields, ctx, now, &mut undo)
                    }
                    DmlOp::Update { object, id, fields } => {
                        self.update(object.as_deref(), &id, &fields, ctx, now, &mut undo)
                    }
                    DmlOp::Upsert {
                        object,
                        ext_field,
                        fields,
                    } => self.upsert(&object, &ext_field, &fields, ctx, now, &mut undo),
                    DmlOp::Delete { id } => self.delete(&id, ctx, now, &mut undo),
                }
            };
            outcomes.push(outcome);
        }
        let failed = outcomes.iter().any(Result::is_err);
        if all_or_none && failed {
            self.rollback(undo);
            let rolled_back = || {
                vec![item(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    vec![],
                )]
            };
            let results = outcomes
                .into_iter()
                .map(|o| match o {
                    Ok((ok, changes)) => {
                        // A rolled-back create leaves no record, so no id to report.
                        let created = changes
                            .first()
                            .is_some_and(|c| c.kind == ChangeKind::Created);
                        let id = if created { None } else { Some(ok.id) };
                        Err((id, rolled_back()))
                    }
                    Err(e) => Err(e),
                })
                .collect();
            return (results, Vec::new());
        }
        let mut changes = Vec::new();
        let results = outcomes
            .into_iter()
            .map(|o| {
                o.map(|(ok, mut c)| {
                    changes.append(&mut c);
                    ok
                })
            })
            .collect();
        (results, changes)
    }
    pub(super) fn push_record(&mut self, oi: usize, rec: Record, undo: &mut Vec<Undo>) -> u32 {
        let obj = &self.schema.objects[oi];
        let table = &mut self.tables[oi];
        let slot = table.records.len() as u32;
        let id = rec.values[obj.system.id]
            .as_str()
            .unwrap_or_default()
            .to_string();
        table.records.push(rec);
        table.index(obj, slot);
        self.locations.insert(id, (oi as u32, slot));
        undo.push(Undo::Created { object: oi });
        slot
    }

    pub(super) fn replace_record(
        &mut self,
        oi: usize,
        slot: u32,
        rec: Record,
        undo: &mut Vec<Undo>,
    ) {
        let obj = &self.schema.objects[oi];
        let table = &mut self.tables[oi];
        table.unindex(obj, slot);
        let old = std::mem::replace(&mut table.records[slot as usize], rec);
        table.index(obj, slot);
        undo.push(Undo::Replaced {
            object: oi,
            slot,
            old,
        });
    }

    pub(super) fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Created { object } => {
                    let obj = &self.schema.objects[object];
                    let table = &mut self.tables[object];
                    let Some(last) = table.records.len().checked_sub(1) else {
                        continue;
                    };
                    table.unindex(obj, last as u32);
                    if let Some(rec) = table.records.pop()
                        && let Some(id) = rec.values[obj.system.id].as_str()
                    {
                        self.locations.remove(id);
                    }
                }
                Undo::Replaced { object, slot, old } => {
                    let mut ignored = Vec::new();
                    self.replace_record(object, slot, old, &mut ignored);
                }
                Undo::DeletionLogged { object } => {
                    self.tables[object].deletions.pop();
                }
                Undo::CascadeLogged { object, slot } => {
                    self.tables[object].deleted_with.remove(&slot);
                }
            }
        }
    }

    pub(super) fn create(
        &mut self,
        object: &str,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> ItemOutcome {
        let oi = self.schema.object_index(object).ok_or_else(|| {
            (
                None,
                vec![item(
                    "INVALID_TYPE",
                    unsupported_object(object).message,
                    vec![],
                )],
            )
        })?;
        let mut values = self
            .build_values(oi, None, fields, ctx, now)
            .map_err(|e| (None, e))?;
        let obj = &self.schema.objects[oi];
        let id = self.ids.next_id(&obj.key_prefix);
        values[obj.system.id] = Value::Str(id.clone());
        // A custom object's record created without a Name is named by its id.
        if obj.custom
            && let Some(n) = obj.name_field
            && values[n].is_null()
        {
            values[n] = Value::Str(id.clone());
        }
        let name = obj.name.clone();
        self.push_record(
            oi,
            Record {
                values,
                deleted: false,
            },
            undo,
        );
        Ok((
            DmlOk {
                id: id.clone(),
                created: None,
            },
            vec![Change {
                object: name,
                id,
                kind: ChangeKind::Created,
            }],
        ))
    }

    /// Finds a live record by id for update or delete, with Salesforce's errors.
    pub(super) fn locate_live(
        &self,
        id: &str,
        object: Option<&str>,
    ) -> Result<(usize, u32, String), ItemFailure> {
        let id18 = ids::to_18(id).map_err(|_| {
            (
                None,
                vec![item("MALFORMED_ID", format!("malformed id {id}"), vec![])],
            )
        })?;
        let fail = |code: &str, msg: String| (Some(id18.clone()), vec![item(code, msg, vec![])]);
        if let Some(expected) = object
            && self.schema.object_index(expected).is_none()
        {
            return Err((
                Some(id18.clone()),
                vec![item(
                    "INVALID_TYPE",
                    unsupported_object(expected).message,
                    vec![],
                )],
            ));
        }
        let Some(&(o, slot)) = self.locations.get(&id18) else {
            return Err(fail(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id".into(),
            ));
        };
        let oi = o as usize;
        if let Some(expected) = object {
            let want = self.schema.object_index(expected);
            if want != Some(oi) {
                let label = self
                    .schema
                    .object(expected)
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                return Err((
                    Some(id18.clone()),
                    vec![item(
                        "MALFORMED_ID",
                        format!("{label} ID: id value of incorrect type: {id18}"),
                        vec!["Id".into()],
                    )],
                ));
            }
        }
        if self.tables[oi].records[slot as usize].deleted {
            return Err(fail("ENTITY_IS_DELETED", "entity is deleted".into()));
        }
        Ok((oi, slot, id18))
    }

    fn update(
        &mut self,
        object: Option<&str>,
        id: &str,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> ItemOutcome {
        let (oi, slot, id18) = self.locate_live(id, object)?;
        self.update_slot(oi, slot, id18, fields, ctx, now, undo, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_slot(
        &mut self,
        oi: usize,
        slot: u32,
        id18: String,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
        created: Option<bool>,
    ) -> ItemOutcome {
        let base = self.tables[oi].records[slot as usize].clone();
        let values = self
            .build_values(oi, Some((slot, &base)), fields, ctx, now)
            .map_err(|e| (Some(id18.clone()), e))?;
        self.replace_record(
            oi,
            slot,
            Record {
                values,
                deleted: false,
            },
            undo,
        );
        let name = self.schema.objects[oi].name.clone();
        Ok((
            DmlOk {
                id: id18.clone(),
                created,
            },
            vec![Change {
                object: name,
                id: id18,
                kind: ChangeKind::Updated,
            }],
        ))
    }

    pub(super) fn delete(
        &mut self,
        id: &str,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> ItemOutcome {
        let (oi, slot, id18) = self.locate_live(id, None)?;
        let obj_name = self.schema.objects[oi].name.clone();
        if obj_name == "User" {
            return Err((
                Some(id18),
                vec![item(
                    "INVALID_TYPE_FOR_OPERATION",
                    "entity type cannot be deleted",
                    vec![],
                )],
            ));
        }
        let mut changes = Vec::new();
        self.soft_delete(oi, slot, ctx, now, undo);
        changes.push(Change {
            object: obj_name.clone(),
            id: id18.clone(),
            kind: ChangeKind::Deleted,
        });
        // Deleting an account deletes its opportunities, as in Salesforce.
        if obj_name == "Account"
            && let Some(child) = self.schema.object_index("Opportunity")
            && let Some(fk) = self.schema.objects[child].field_index("AccountId")
        {
            let children = self.tables[child].lookup(fk, &Value::Str(id18.clone()));
            let child_id = self.schema.objects[child].system.id;
            for s in children {
                self.soft_delete(child, s, ctx, now, undo);
                self.tables[child].deleted_with.insert(s, id18.clone());
                undo.push(Undo::CascadeLogged {
                    object: child,
                    slot: s,
                });
                let cid = self.tables[child].records[s as usize].values[child_id]
                    .as_str()
                    .unwrap_or_default();
                changes.push(Change {
                    object: "Opportunity".into(),
                    id: cid.to_string(),
                    kind: ChangeKind::Deleted,
                });
            }
        }
        Ok((
            DmlOk {
                id: id18,
                created: None,
            },
            changes,
        ))
    }

    pub(super) fn soft_delete(
        &mut self,
        oi: usize,
        slot: u32,
        ctx: &DmlContext,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) {
        let sys = self.schema.objects[oi].system;
        let mut rec = self.tables[oi].records[slot as usize].clone();
        rec.deleted = true;
        rec.values
            .resize(self.schema.objects[oi].fields.len(), Value::Null);
        rec.values[sys.is_deleted] = Value::Bool(true);
        rec.values[sys.last_modified_date] = Value::DateTime(now);
        rec.values[sys.last_modified_by_id] = Value::Str(ctx.user_id.clone());
        rec.values[sys.system_modstamp] = Value::DateTime(now);
        self.replace_record(oi, slot, rec, undo);
        self.tables[oi].deletions.push((slot, now));
        undo.push(Undo::DeletionLogged { object: oi });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::*;
    use crate::db::*;
    use serde_json::json;

    #[test]
    fn create_sets_system_fields_with_one_timestamp_per_call() {
        let mut f = Fixture::new();
        let ops = (0..3)
            .map(|i| DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp(&format!("o{i}"))),
            })
            .collect();
        let (results, changes) = f.apply(ops, false, "2024-03-10T10:00:00.123456Z");
        assert_eq!(results.len(), 3);
        assert_eq!(changes.len(), 3);
        assert!(
            changes
                .iter()
                .all(|c| c.kind == ChangeKind::Created && c.object == "Opportunity")
        );
        let rows = f.q("SELECT Id, Name, CreatedDate, LastModifiedDate, SystemModstamp, CreatedById, LastModifiedById, IsDeleted, IsClosed, Probability, CloseDate FROM Opportunity ORDER BY Name");
        assert_eq!(rows.len(), 3);
        for r in &rows {
            assert_eq!(r["CreatedDate"], "2024-03-10T10:00:00.123+0000");
            assert_eq!(r["SystemModstamp"], "2024-03-10T10:00:00.123+0000");
            assert_eq!(r["LastModifiedDate"], "2024-03-10T10:00:00.123+0000");
            assert_eq!(r["CreatedById"], json!(f.user));
            assert_eq!(r["IsDeleted"], false);
            assert_eq!(r["IsClosed"], false);
            assert_eq!(r["Probability"], 10.0);
            assert_eq!(r["CloseDate"], "2024-06-30");
            assert!(r["Id"].as_str().is_some_and(|id| id.starts_with("006")));
        }
        let id = rows[0]["Id"].as_str().expect("id");
        assert_eq!(
            rows[0]["attributes"]["url"],
            json!(format!("/services/data/v62.0/sobjects/Opportunity/{id}"))
        );
        assert_eq!(f.db.count("Opportunity"), 3);
    }

    #[test]
    fn update_bumps_timestamps_even_when_unchanged() {
        let mut f = Fixture::new();
        let id = f.create_ok("Opportunity", opp("a"), "2024-03-10T10:00:00Z");
        let (r, changes) = f.apply(
            vec![DmlOp::Update {
                object: Some("Opportunity".into()),
                id: id[..15].to_string(),
                fields: body(json!({"Id": id, "Name": "a"})),
            }],
            false,
            "2024-03-10T10:05:00Z",
        );
        assert_eq!(
            r[0],
            Ok(DmlOk {
                id: id.clone(),
                created: None
            })
        );
        assert_eq!(
            changes,
            vec![Change {
                object: "Opportunity".into(),
                id: id.clone(),
                kind: ChangeKind::Updated
            }]
        );
        let row = &f.q("SELECT CreatedDate, LastModifiedDate, SystemModstamp FROM Opportunity")[0];
        assert_eq!(row["CreatedDate"], "2024-03-10T10:00:00.000+0000");
        assert_eq!(row["LastModifiedDate"], "2024-03-10T10:05:00.000+0000");
        assert_eq!(row["SystemModstamp"], "2024-03-10T10:05:00.000+0000");
    }

    #[test]
    fn all_or_none_rolls_back_everything() {
        let mut f = Fixture::new();
        let keep = f.create_ok("Opportunity", opp("keep"), "2024-03-10T10:00:00Z");
        let ops = vec![
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("new")),
            },
            DmlOp::Update {
                object: None,
                id: keep.clone(),
                fields: body(json!({"Name": "renamed"})),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(json!({"Name": "bad"})),
            },
            DmlOp::Delete { id: keep.clone() },
        ];
        let (r, changes) = f.apply(ops, true, "2024-03-10T11:00:00Z");
        assert!(changes.is_empty());
        assert_eq!(
            r[0],
            Err((
                None,
                vec![item(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    vec![]
                )]
            ))
        );
        assert_eq!(errors(&r[1]), ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]);
        assert!(matches!(&r[1], Err((Some(id), _)) if *id == keep));
        assert_eq!(errors(&r[2]), ["REQUIRED_FIELD_MISSING"]);
        assert_eq!(errors(&r[3]), ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]);
        let rows = f.q_all("SELECT Name, IsDeleted, SystemModstamp FROM Opportunity");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Name"], "keep");
        assert_eq!(rows[0]["IsDeleted"], false);
        assert_eq!(rows[0]["SystemModstamp"], "2024-03-10T10:00:00.000+0000");
        assert_eq!(f.db.count("Opportunity"), 1);
        let got =
            f.db.deleted(
                "Opportunity",
                t("2024-03-10T00:00:00Z"),
                t("2024-03-10T12:00:00Z"),
                t("2024-03-10T12:00:00Z"),
            )
            .expect("deleted");
        assert_eq!(got["deletedRecords"], json!([]));
        // Index consistency after the rollback: range queries see the restored row.
        assert_eq!(f.q("SELECT Id FROM Opportunity WHERE SystemModstamp >= 2024-03-10T10:00:00Z ORDER BY SystemModstamp, Id").len(), 1);
        // Without allOrNone the good items commit.
        let ops = vec![
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("new")),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(json!({"Name": "bad"})),
            },
        ];
        let (r, changes) = f.apply(ops, false, "2024-03-10T11:00:00Z");
        assert!(r[0].is_ok() && r[1].is_err());
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn reject_marker_and_forced_errors_fail_items() {
        let mut f = Fixture::new();
        let mut ctx = f.ctx("2024-03-10T10:00:00Z");
        ctx.reject_marker = Some("[reject]".into());
        ctx.forced_errors = vec![(
            1,
            item(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record",
                vec![],
            ),
        )];
        let ops = vec![
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("x [reject]")),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("fine")),
            },
            DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp("fine too")),
            },
        ];
        let (r, _) = f.db.apply(ops, false, &ctx);
        assert_eq!(errors(&r[0]), ["FIELD_CUSTOM_VALIDATION_EXCEPTION"]);
        assert_eq!(errors(&r[1]), ["UNABLE_TO_LOCK_ROW"]);
        assert!(r[2].is_ok());
    }

    #[test]
    fn delete_is_soft_logged_and_cascades_to_opportunities() {
        let mut f = Fixture::new();
        let acc = f.create_ok("Account", json!({"Name": "Acme"}), "2024-03-10T09:00:00Z");
        let o1 = f.create_ok("Opportunity", json!({"Name": "o1", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": acc}), "2024-03-10T09:00:00Z");
        let o2 = f.create_ok("Opportunity", opp("o2"), "2024-03-10T09:00:00Z");
        let (r, changes) = f.apply(
            vec![DmlOp::Delete { id: acc.clone() }],
            false,
            "2024-03-10T10:00:00Z",
        );
        assert!(r[0].is_ok());
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[1],
            Change {
                object: "Opportunity".into(),
                id: o1.clone(),
                kind: ChangeKind::Deleted
            }
        );
        assert_eq!(f.q("SELECT Id FROM Opportunity").len(), 1);
        let all = f.q_all("SELECT Id, IsDeleted FROM Opportunity ORDER BY Name");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["IsDeleted"], true);
        assert_eq!(
            f.q_all("SELECT Id FROM Opportunity WHERE IsDeleted = true")
                .len(),
            1
        );
        let d =
            f.db.deleted(
                "Opportunity",
                t("2024-03-10T00:00:00Z"),
                t("2024-03-11T00:00:00Z"),
                t("2024-03-10T12:00:30.500Z"),
            )
            .expect("deleted");
        assert_eq!(
            d["deletedRecords"],
            json!([{"id": o1, "deletedDate": "2024-03-10T10:00:00.000+0000"}])
        );
        // Minute granularity: the seconds of `now` are ignored.
        assert_eq!(d["latestDateCovered"], "2024-03-10T12:00:00.000+0000");
        assert_eq!(d["earliestDateAvailable"], "2024-02-24T12:00:00.000+0000");
        assert!(f.db.retrieve("Opportunity", &o1, None, "62.0").is_err());
        let got =
            f.db.retrieve(
                "Opportunity",
                &o2[..15],
                Some(&["name".to_string()]),
                "62.0",
            )
            .expect("retrieve");
        assert_eq!(got["Name"], "o2");
        assert_eq!(got.as_object().map(Map::len), Some(2));
        assert_eq!(
            f.db.retrieve("Opportunity", &o2, Some(&["Foo".to_string()]), "62.0")
                .expect_err("bad field")
                .error_code,
            "INVALID_FIELD"
        );
        assert_eq!(
            f.db.retrieve("Account", &o2, None, "62.0")
                .expect_err("wrong object")
                .status,
            404
        );
        let fields =
            f.db.record_fields(&o2, &["name".into(), "Amount".into(), "Nope".into()])
                .expect("fields");
        assert_eq!(
            Json::Object(fields),
            json!({"Id": o2, "Name": "o2", "Amount": null})
        );
    }
}
