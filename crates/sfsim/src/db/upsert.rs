//! Upserts: matching a record by an external id (or idLookup) field, Salesforce's errors for
//! the key, and the rule that upserts of one call sharing a key value all fail.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::dml::{ItemOutcome, Undo};
use super::{DmlContext, DmlOp, OrgDb, item};
use crate::error::{ApiError, ItemError};
use crate::soql::plan::unsupported_object;
use crate::value::{self, Value};

impl OrgDb {
    /// Ids of the live records of `object` whose external-id (or idLookup) field holds
    /// `value`: what an upsert would match. For the single-record upsert's 300 reply.
    pub fn find_by_external_id(
        &self,
        object: &str,
        ext_field: &str,
        value: &Json,
    ) -> Result<Vec<String>, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let obj = &self.schema.objects[oi];
        let fi = self
            .upsert_field(oi, ext_field)
            .map_err(|e| ApiError::new(400, &e.status_code, e.message))?;
        let v = value::from_json(&obj.fields[fi], value)
            .map_err(|e| ApiError::new(400, &e.status_code, e.message))?;
        Ok(self
            .matching_slots(oi, fi, &v)
            .into_iter()
            .filter_map(|s| {
                self.tables[oi].records[s as usize].values[obj.system.id]
                    .as_str()
                    .map(str::to_string)
            })
            .collect())
    }
    /// Live slots of `oi` whose field `fi` holds `v`.
    pub(super) fn matching_slots(&self, oi: usize, fi: usize, v: &Value) -> Vec<u32> {
        let obj = &self.schema.objects[oi];
        if fi == obj.system.id {
            let Some(id) = v.as_str() else {
                return Vec::new();
            };
            return match self.locations.get(id) {
                Some((o, s))
                    if *o as usize == oi && !self.tables[oi].records[*s as usize].deleted =>
                {
                    vec![*s]
                }
                _ => Vec::new(),
            };
        }
        self.tables[oi].lookup(fi, v)
    }

    /// Resolves an upsert key field: it must exist and be an external id or idLookup field.
    fn upsert_field(&self, oi: usize, ext_field: &str) -> Result<usize, ItemError> {
        let obj = &self.schema.objects[oi];
        let fi = obj.field_index(ext_field).ok_or_else(|| {
            item(
                "NOT_FOUND",
                format!(
                    "Provided external ID field does not exist or is not accessible: {ext_field}"
                ),
                vec![],
            )
        })?;
        let f = &obj.fields[fi];
        if !(f.external_id || f.id_lookup) {
            return Err(item(
                "INVALID_FIELD",
                format!(
                    "Field {} is not an External ID or indexed field for {}",
                    f.name, obj.name
                ),
                vec![f.name.clone()],
            ));
        }
        Ok(fi)
    }

    pub(super) fn upsert(
        &mut self,
        object: &str,
        ext_field: &str,
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
        let fi = self
            .upsert_field(oi, ext_field)
            .map_err(|e| (None, vec![e]))?;
        let obj = &self.schema.objects[oi];
        let field = &obj.fields[fi];
        let raw = fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field.name))
            .map(|(_, v)| v.clone())
            .unwrap_or(Json::Null);
        let key = value::from_json(field, &raw).map_err(|e| (None, vec![e]))?;
        if fi == obj.system.id {
            // Upsert on Id: no id creates, an id updates that record.
            let mut body = fields.clone();
            body.retain(|k, _| !k.eq_ignore_ascii_case("Id"));
            return match key.as_str() {
                None => self
                    .create(object, &body, ctx, now, undo)
                    .map(|(mut ok, c)| {
                        ok.created = Some(true);
                        (ok, c)
                    }),
                Some(id) => {
                    let (oi, slot, id18) = self.locate_live(id, Some(object))?;
                    self.update_slot(oi, slot, id18, &body, ctx, now, undo, Some(false))
                }
            };
        }
        if key.is_null() {
            return Err((
                None,
                vec![item(
                    "MISSING_ARGUMENT",
                    format!("{} not specified", field.name),
                    vec![field.name.clone()],
                )],
            ));
        }
        let found = self.matching_slots(oi, fi, &key);
        match found.as_slice() {
            [] => self
                .create(object, fields, ctx, now, undo)
                .map(|(mut ok, c)| {
                    ok.created = Some(true);
                    (ok, c)
                }),
            [slot] => {
                let slot = *slot;
                let id18 = self.tables[oi].records[slot as usize].values[obj.system.id]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.update_slot(oi, slot, id18, fields, ctx, now, undo, Some(false))
            }
            many => {
                let ids: Vec<&str> = many
                    .iter()
                    .filter_map(|s| {
                        self.tables[oi].records[*s as usize].values[obj.system.id].as_str()
                    })
                    .collect();
                Err((
                    None,
                    vec![item(
                        "DUPLICATE_EXTERNAL_ID",
                        format!(
                            "{}: more than one record found for external id field: [{}]",
                            field.name,
                            ids.join(", ")
                        ),
                        vec![field.name.clone()],
                    )],
                ))
            }
        }
    }
}

/// Upserts of one call that share an external id value all fail, as in Salesforce.
pub(super) fn duplicate_upsert_keys(ops: &[DmlOp]) -> HashMap<usize, ItemError> {
    let mut seen: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let DmlOp::Upsert {
            object,
            ext_field,
            fields,
        } = op
            && let Some((_, v)) = fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(ext_field))
        {
            let text = match v {
                Json::String(s) => s.to_lowercase(),
                Json::Null => continue,
                other => other.to_string(),
            };
            seen.entry((object.to_lowercase(), ext_field.to_lowercase(), text))
                .or_default()
                .push(i);
        }
    }
    let mut out = HashMap::new();
    for ((_, field, value), idx) in seen {
        if idx.len() > 1 {
            for i in idx {
                out.insert(
                    i,
                    item(
                        "DUPLICATE_EXTERNAL_ID",
                        format!("Duplicate external id specified: {value}"),
                        vec![field.clone()],
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::db::test_support::*;
    use crate::db::*;
    use serde_json::json;

    #[test]
    fn upsert_by_external_id_creates_updates_and_refuses_ambiguity() {
        let mut f = Fixture::new();
        f.db.add_field(
            &json!({"object":"Opportunity","name":"Ext_Id__c","type":"string","externalId":true}),
        )
        .expect("field");
        let up = |ext: &str, name: &str| DmlOp::Upsert {
            object: "Opportunity".into(),
            ext_field: "ext_id__c".into(),
            fields: body(
                json!({"Ext_Id__c": ext, "Name": name, "StageName": "Prospecting", "CloseDate": "2024-01-01"}),
            ),
        };
        let (r, _) = f.apply(vec![up("E1", "one")], false, "2024-03-10T10:00:00Z");
        let created = r[0].clone().expect("created");
        assert_eq!(created.created, Some(true));
        let (r, changes) = f.apply(vec![up("e1", "uno")], false, "2024-03-10T10:01:00Z");
        assert_eq!(
            r[0],
            Ok(DmlOk {
                id: created.id.clone(),
                created: Some(false)
            })
        );
        assert_eq!(changes[0].kind, ChangeKind::Updated);
        assert_eq!(f.q("SELECT Name FROM Opportunity")[0]["Name"], "uno");
        // Two records with one value (the field is not unique) make the key ambiguous.
        f.create_ok("Opportunity", json!({"Ext_Id__c": "E1", "Name": "two", "StageName": "Prospecting", "CloseDate": "2024-01-01"}), "2024-03-10T10:02:00Z");
        let (r, _) = f.apply(vec![up("E1", "x")], false, "2024-03-10T10:03:00Z");
        assert_eq!(errors(&r[0]), ["DUPLICATE_EXTERNAL_ID"]);
        assert_eq!(
            f.db.find_by_external_id("Opportunity", "Ext_Id__c", &json!("e1"))
                .expect("ids")
                .len(),
            2
        );
        // Duplicates inside one call fail both items.
        let (r, _) = f.apply(
            vec![up("E9", "a"), up("E9", "b")],
            false,
            "2024-03-10T10:04:00Z",
        );
        assert_eq!(errors(&r[0]), ["DUPLICATE_EXTERNAL_ID"]);
        assert_eq!(errors(&r[1]), ["DUPLICATE_EXTERNAL_ID"]);
        // The key must be an external id or idLookup field.
        let (r, _) = f.apply(
            vec![DmlOp::Upsert {
                object: "Opportunity".into(),
                ext_field: "StageName".into(),
                fields: body(opp("z")),
            }],
            false,
            "2024-03-10T10:05:00Z",
        );
        assert_eq!(errors(&r[0]), ["INVALID_FIELD"]);
        let (r, _) = f.apply(
            vec![DmlOp::Upsert {
                object: "Opportunity".into(),
                ext_field: "Nope__c".into(),
                fields: body(opp("z")),
            }],
            false,
            "2024-03-10T10:05:00Z",
        );
        assert_eq!(errors(&r[0]), ["NOT_FOUND"]);
        // Upsert on Id: no Id creates.
        let (r, _) = f.apply(
            vec![DmlOp::Upsert {
                object: "Opportunity".into(),
                ext_field: "Id".into(),
                fields: body(opp("by id")),
            }],
            false,
            "2024-03-10T10:06:00Z",
        );
        assert_eq!(r[0].as_ref().map(|ok| ok.created), Ok(Some(true)));
    }
}
