//! Value building: turning a create or update body into a record's values with Salesforce's
//! checks (unknown and read-only fields, types, required fields, lengths, references by id or
//! external id, validation rules, uniqueness) and Opportunity's derived fields.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::{DmlContext, OrgDb, Record, item};
use crate::error::ItemError;
use crate::ids;
use crate::schema::{FieldType, OPPORTUNITY_STAGES, ObjectDef};
use crate::value::{self, Value};

/// Whether a write is a create or an update of an existing record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteMode {
    Create,
    Update,
}
impl OrgDb {
    pub(super) fn defaults(&self, oi: usize) -> Vec<Value> {
        self.schema.objects[oi]
            .fields
            .iter()
            .map(|f| {
                if let Some(d) = &f.default_value {
                    Value::Str(d.clone())
                } else if f.field_type == FieldType::Boolean {
                    Value::Bool(false)
                } else {
                    Value::Null
                }
            })
            .collect()
    }
    /// The id of the parent a relationship body names by external id, e.g.
    /// `{"attributes": {"type": "Account"}, "Ext_Id__c": "A-1"}` for `Account`.
    fn resolve_foreign_key(
        &self,
        field: &crate::schema::FieldDef,
        spec: &Map<String, Json>,
    ) -> Result<Value, ItemError> {
        let target_name = field.reference_to.as_deref().unwrap_or_default();
        let bad = |m: String| item("INVALID_FIELD", m, vec![field.name.clone()]);
        let toi = self
            .schema
            .object_index(target_name)
            .ok_or_else(|| bad(format!("sObject type '{target_name}' is not supported.")))?;
        let target = &self.schema.objects[toi];
        let keys: Vec<(&String, &Json)> = spec
            .iter()
            .filter(|(k, _)| k.as_str() != "attributes")
            .collect();
        let [(key, raw)] = keys.as_slice() else {
            return Err(bad(format!(
                "The {} foreign key must name exactly one external id field of {}",
                field.relationship_name.as_deref().unwrap_or_default(),
                target.name
            )));
        };
        let tfi = target
            .field_index(key)
            .filter(|i| target.fields[*i].external_id || target.fields[*i].id_lookup)
            .ok_or_else(|| {
                bad(format!(
                    "Field {key} is not an External ID or indexed field for {}",
                    target.name
                ))
            })?;
        let v = value::from_json(&target.fields[tfi], raw)?;
        let shown = v.to_text().unwrap_or_default();
        let tname = &target.fields[tfi].name;
        match self.matching_slots(toi, tfi, &v).as_slice() {
            [slot] => Ok(self.tables[toi].records[*slot as usize].values[target.system.id].clone()),
            [] => Err(bad(format!(
                "Foreign key external ID: {shown} not found for field {tname} in entity {}",
                target.name
            ))),
            _ => Err(bad(format!(
                "Foreign key external ID: {shown} matched more than one record for field {tname} in entity {}",
                target.name
            ))),
        }
    }

    /// Validates a create (`base` None) or update body and returns the record's new values,
    /// system fields set. Errors are reported per stage, as Salesforce does: unknown or
    /// read-only fields, then values, then required fields, lengths, references, validation
    /// rules, uniqueness.
    pub(super) fn build_values(
        &self,
        oi: usize,
        base: Option<(u32, &Record)>,
        fields: &Map<String, Json>,
        ctx: &DmlContext,
        now: DateTime<Utc>,
    ) -> Result<Vec<Value>, Vec<ItemError>> {
        let obj = &self.schema.objects[oi];
        let mode = if base.is_some() {
            WriteMode::Update
        } else {
            WriteMode::Create
        };
        let mut unknown = Vec::new();
        let mut read_only = Vec::new();
        let mut bad_values = Vec::new();
        let mut assigned: Vec<(usize, Value)> = Vec::new();
        for (key, raw) in fields {
            if key == "attributes" {
                continue;
            }
            let Some(fi) = obj.field_index(key) else {
                // A parent named by its external id: "Account": {"Ext_Id__c": "A-1"}.
                if let (Some(ri), Json::Object(spec)) = (obj.relationship_index(key), raw) {
                    let f = &obj.fields[ri];
                    let writable = match mode {
                        WriteMode::Create => f.createable,
                        WriteMode::Update => f.updateable,
                    };
                    if !writable {
                        read_only.push(f.name.clone());
                    } else {
                        match self.resolve_foreign_key(f, spec) {
                            Ok(v) => assigned.push((ri, v)),
                            Err(e) => bad_values.push(e),
                        }
                    }
                    continue;
                }
                unknown.push(item(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type {}", obj.name),
                    vec![],
                ));
                continue;
            };
            let f = &obj.fields[fi];
            if fi == obj.system.id && mode == WriteMode::Update {
                // An update body may repeat its own id.
                let same = base
                    .and_then(|(_, r)| r.values[fi].as_str())
                    .is_some_and(|own| {
                        raw.as_str().and_then(|s| ids::to_18(s).ok()).as_deref() == Some(own)
                    });
                if same {
                    continue;
                }
            }
            let writable = match mode {
                WriteMode::Create => f.createable,
                WriteMode::Update => f.updateable,
            };
            if !writable {
                read_only.push(f.name.clone());
                continue;
            }
            match value::from_json(f, raw) {
                Ok(v) => assigned.push((fi, v)),
                Err(e) => bad_values.push(e),
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        if !read_only.is_empty() {
            return Err(vec![item(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    read_only.join(", ")
                ),
                read_only,
            )]);
        }
        if !bad_values.is_empty() {
            return Err(bad_values);
        }
        let mut values = match base {
            Some((_, r)) => {
                let mut v = r.values.clone();
                v.resize(obj.fields.len(), Value::Null);
                v
            }
            None => self.defaults(oi),
        };
        let old_values = values.clone();
        for (fi, v) in &assigned {
            values[*fi] = v.clone();
        }
        if obj.name == "Opportunity" {
            compute_opportunity(obj, &mut values, &old_values, &assigned, mode);
        }
        compute_derived(obj, &mut values);
        // Required fields.
        let missing: Vec<String> = obj
            .fields
            .iter()
            .enumerate()
            .filter(|(fi, f)| {
                f.is_required()
                    && values[*fi].is_null()
                    && (mode == WriteMode::Create || assigned.iter().any(|(a, _)| a == fi))
            })
            .map(|(_, f)| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(vec![item(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            )]);
        }
        // Lengths.
        let mut too_long = Vec::new();
        for (fi, v) in &assigned {
            let f = &obj.fields[*fi];
            if let Value::Str(s) = v
                && f.field_type.is_text()
                && s.chars().count() > f.length as usize
            {
                too_long.push(item(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {} (max length={})",
                        f.label, s, f.length
                    ),
                    vec![f.name.clone()],
                ));
            }
        }
        if !too_long.is_empty() {
            return Err(too_long);
        }
        // References.
        for (fi, v) in &assigned {
            let f = &obj.fields[*fi];
            let (Some(target), Value::Str(id)) = (&f.reference_to, v) else {
                continue;
            };
            let target_oi = self.schema.object_index(target);
            match self.locations.get(id) {
                Some((o, _)) if Some(*o as usize) != target_oi => {
                    return Err(vec![item(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: id value of incorrect type: {id}", f.label),
                        vec![f.name.clone()],
                    )]);
                }
                Some((o, s)) if self.tables[*o as usize].records[*s as usize].deleted => {
                    return Err(vec![item(
                        "ENTITY_IS_DELETED",
                        "entity is deleted",
                        vec![f.name.clone()],
                    )]);
                }
                Some(_) => {}
                None => {
                    return Err(vec![item(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                        vec![f.name.clone()],
                    )]);
                }
            }
        }
        // The fault injector's validation rule.
        if let (Some(marker), Some(nf)) = (ctx.reject_marker.as_deref(), obj.name_field)
            && !marker.is_empty()
            && values[nf].as_str().is_some_and(|n| n.contains(marker))
        {
            return Err(vec![item(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                format!("Record rejected by validation rule: Name contains '{marker}'"),
                vec![],
            )]);
        }
        // Uniqueness.
        let own_slot = base.map(|(s, _)| s);
        for (fi, f) in obj.fields.iter().enumerate() {
            if !f.unique || values[fi].is_null() {
                continue;
            }
            if let Some(other) = self.tables[oi]
                .lookup(fi, &values[fi])
                .into_iter()
                .find(|s| Some(*s) != own_slot)
            {
                let other_id = self.tables[oi].records[other as usize].values[obj.system.id]
                    .as_str()
                    .unwrap_or_default();
                return Err(vec![item(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other_id}",
                        f.name
                    ),
                    vec![f.name.clone()],
                )]);
            }
        }
        // System fields: one timestamp for the whole call.
        let sys = obj.system;
        if mode == WriteMode::Create
            && let Some(owner) = obj.field_index("OwnerId")
            && values[owner].is_null()
        {
            values[owner] = Value::Str(ctx.user_id.clone());
        }
        if mode == WriteMode::Create {
            values[sys.is_deleted] = Value::Bool(false);
            values[sys.created_date] = Value::DateTime(now);
            values[sys.created_by_id] = Value::Str(ctx.user_id.clone());
        }
        values[sys.last_modified_date] = Value::DateTime(now);
        values[sys.last_modified_by_id] = Value::Str(ctx.user_id.clone());
        values[sys.system_modstamp] = Value::DateTime(now);
        Ok(values)
    }
}

/// Contact's compound Name (FirstName LastName) and Task's IsClosed (Status Completed).
fn compute_derived(obj: &ObjectDef, values: &mut [Value]) {
    let text = |values: &[Value], name: &str| {
        obj.field_index(name)
            .and_then(|i| values[i].as_str())
            .map(str::to_string)
    };
    match obj.name.as_str() {
        "Contact" => {
            let parts: Vec<String> = [text(values, "FirstName"), text(values, "LastName")]
                .into_iter()
                .flatten()
                .filter(|p| !p.is_empty())
                .collect();
            if let Some(n) = obj.field_index("Name") {
                values[n] = if parts.is_empty() {
                    Value::Null
                } else {
                    Value::Str(parts.join(" "))
                };
            }
        }
        "Task" => {
            let closed = text(values, "Status").as_deref() == Some("Completed");
            if let Some(c) = obj.field_index("IsClosed") {
                values[c] = Value::Bool(closed);
            }
        }
        _ => {}
    }
}

/// Opportunity's derived fields: IsClosed and IsWon from the stage, and the stage's default
/// Probability when the stage is set without one.
fn compute_opportunity(
    obj: &ObjectDef,
    values: &mut [Value],
    old: &[Value],
    assigned: &[(usize, Value)],
    mode: WriteMode,
) {
    let (Some(stage_f), Some(closed_f), Some(won_f), Some(prob_f)) = (
        obj.field_index("StageName"),
        obj.field_index("IsClosed"),
        obj.field_index("IsWon"),
        obj.field_index("Probability"),
    ) else {
        return;
    };
    let stage = values[stage_f].as_str().unwrap_or_default().to_string();
    let lower = stage.to_lowercase();
    values[closed_f] = Value::Bool(lower.starts_with("closed"));
    values[won_f] = Value::Bool(lower == "closed won");
    let stage_changed = mode == WriteMode::Create
        || !value::eq_values(FieldType::Picklist, &values[stage_f], &old[stage_f]);
    let probability_given = assigned.iter().any(|(fi, _)| *fi == prob_f);
    if stage_changed
        && !probability_given
        && let Some((_, p)) = OPPORTUNITY_STAGES
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(&stage))
    {
        values[prob_f] = Value::Num(*p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::*;
    use crate::db::*;
    use serde_json::json;

    #[test]
    fn write_errors_match_salesforce() {
        let mut f = Fixture::new();
        let now = "2024-03-10T10:00:00Z";
        let r = f.create("Opportunity", json!({"Name": "x"}), now);
        let Err((None, e)) = &r else { panic!("{r:?}") };
        assert_eq!(e[0].status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(
            e[0].message,
            "Required fields are missing: [StageName, CloseDate]"
        );
        assert_eq!(e[0].fields, ["StageName", "CloseDate"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "Foo": 1}),
            now,
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
        let r = f.create("Opportunity", json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "CreatedDate": "2024-01-01T00:00:00Z"}), now);
        assert_eq!(errors(&r), ["INVALID_FIELD_FOR_INSERT_UPDATE"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "soon"}),
            now,
        );
        assert_eq!(errors(&r), ["JSON_PARSER_ERROR"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x".repeat(121), "StageName": "a", "CloseDate": "2024-01-01"}),
            now,
        );
        assert_eq!(errors(&r), ["STRING_TOO_LONG"]);
        let r = f.create("Opportunity", json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "AccountId": "001000000000000AAA"}), now);
        assert_eq!(errors(&r), ["INVALID_CROSS_REFERENCE_KEY"]);
        let user = f.user.clone();
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "AccountId": user}),
            now,
        );
        assert_eq!(errors(&r), ["FIELD_INTEGRITY_EXCEPTION"]);
        let r = f.create(
            "Opportunity",
            json!({"Name": "x", "StageName": "a", "CloseDate": "2024-01-01", "AccountId": "bad"}),
            now,
        );
        assert_eq!(errors(&r), ["MALFORMED_ID"]);
        let r = f.create("Foo", json!({"Name": "x"}), now);
        assert_eq!(errors(&r), ["INVALID_TYPE"]);
        // Field names are case-insensitive in bodies.
        let id = f.create_ok(
            "opportunity",
            json!({"name": "ok", "STAGENAME": "Closed Won", "closedate": "2024-01-01"}),
            now,
        );
        let rows = f.q(&format!(
            "SELECT Name, StageName, IsWon, IsClosed FROM Opportunity WHERE Id = '{id}'"
        ));
        assert_eq!(rows[0]["StageName"], "Closed Won");
        assert_eq!(rows[0]["IsWon"], true);
        let (r, _) = f.apply(
            vec![DmlOp::Update {
                object: None,
                id: "nope".into(),
                fields: Map::new(),
            }],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["MALFORMED_ID"]);
        let (r, _) = f.apply(
            vec![DmlOp::Update {
                object: None,
                id: id.clone(),
                fields: body(json!({"Name": null})),
            }],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["REQUIRED_FIELD_MISSING"]);
        let (r, _) = f.apply(
            vec![DmlOp::Update {
                object: Some("Account".into()),
                id: id.clone(),
                fields: Map::new(),
            }],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["MALFORMED_ID"]);
        let (r, _) = f.apply(vec![DmlOp::Delete { id: id.clone() }], false, now);
        assert!(r[0].is_ok());
        let (r, _) = f.apply(
            vec![
                DmlOp::Delete { id: id.clone() },
                DmlOp::Update {
                    object: None,
                    id: id.clone(),
                    fields: Map::new(),
                },
            ],
            false,
            now,
        );
        assert_eq!(errors(&r[0]), ["ENTITY_IS_DELETED"]);
        assert_eq!(errors(&r[1]), ["ENTITY_IS_DELETED"]);
        let (r, _) = f.apply(vec![DmlOp::Delete { id: user }], false, now);
        assert_eq!(errors(&r[0]), ["INVALID_TYPE_FOR_OPERATION"]);
    }

    #[test]
    fn parents_can_be_named_by_external_id() {
        let mut f = Fixture::new();
        f.db.add_field(
            &json!({"object":"Account","name":"Code__c","type":"string","externalId":true}),
        )
        .expect("field");
        let acc = f.create_ok(
            "Account",
            json!({"Name": "Acme", "Code__c": "A-1"}),
            "2024-03-10T10:00:00Z",
        );
        let with_parent = |spec: Json| json!({"Name": "o", "StageName": "Prospecting", "CloseDate": "2024-01-01", "Account": spec});
        f.create_ok(
            "Opportunity",
            with_parent(json!({"attributes": {"type": "Account"}, "code__c": "a-1"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(
            f.q("SELECT AccountId FROM Opportunity")[0]["AccountId"],
            json!(acc)
        );
        // Account Name is an idLookup field too.
        assert!(
            f.create(
                "Opportunity",
                with_parent(json!({"Name": "Acme"})),
                "2024-03-10T10:00:00Z"
            )
            .is_ok()
        );
        let r = f.create(
            "Opportunity",
            with_parent(json!({"Code__c": "nope"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
        let r = f.create(
            "Opportunity",
            with_parent(json!({"Industry": "Energy"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
        let r = f.create(
            "Opportunity",
            with_parent(json!({"Code__c": "A-1", "Name": "Acme"})),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["INVALID_FIELD"]);
    }

    #[test]
    fn unique_fields_reject_duplicates() {
        let mut f = Fixture::new();
        f.db.add_field(&json!({"object":"Account","name":"Code__c","type":"string","unique":true,"externalId":true})).expect("field");
        f.create_ok(
            "Account",
            json!({"Name": "a", "Code__c": "X"}),
            "2024-03-10T10:00:00Z",
        );
        let r = f.create(
            "Account",
            json!({"Name": "b", "Code__c": "x"}),
            "2024-03-10T10:00:00Z",
        );
        assert_eq!(errors(&r), ["DUPLICATE_VALUE"]);
        let r = f.create(
            "Account",
            json!({"Name": "b", "Code__c": "Y"}),
            "2024-03-10T10:00:00Z",
        );
        assert!(r.is_ok());
        let d = f.db.describe("Account").expect("describe");
        let code = d["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|x| x["name"] == "Code__c")
            .cloned()
            .expect("Code__c");
        assert_eq!(
            (
                code["unique"].clone(),
                code["externalId"].clone(),
                code["custom"].clone()
            ),
            (json!(true), json!(true), json!(true))
        );
    }
}
