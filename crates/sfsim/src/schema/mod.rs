//! Objects and fields: what a record of Account, Opportunity or User may hold, which fields are
//! required, createable, updateable, unique or external ids, and the describe shape clients read.
//!
//! Field names are case-insensitive everywhere (SOQL, DML bodies); lookups go through a
//! lowercase index and replies use the canonical casing kept in [`FieldDef::name`].
//!
//! The standard objects are in `standard`, fields and objects added at run time in `custom`.

mod custom;
mod standard;

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use crate::ids;

/// The field types the simulator knows, named as `describe` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Id,
    String,
    Textarea,
    Picklist,
    Phone,
    Url,
    Email,
    Date,
    DateTime,
    Currency,
    Double,
    Percent,
    Int,
    Boolean,
    Reference,
}

impl FieldType {
    /// The `type` of describe.
    pub fn describe_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Email => "email",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Currency => "currency",
            FieldType::Double => "double",
            FieldType::Percent => "percent",
            FieldType::Int => "int",
            FieldType::Boolean => "boolean",
            FieldType::Reference => "reference",
        }
    }

    /// Parses a describe type name (case-insensitive), as used by `add_field`.
    pub fn from_describe_name(name: &str) -> Option<FieldType> {
        let all = [
            FieldType::Id,
            FieldType::String,
            FieldType::Textarea,
            FieldType::Picklist,
            FieldType::Phone,
            FieldType::Url,
            FieldType::Email,
            FieldType::Date,
            FieldType::DateTime,
            FieldType::Currency,
            FieldType::Double,
            FieldType::Percent,
            FieldType::Int,
            FieldType::Boolean,
            FieldType::Reference,
        ];
        all.into_iter()
            .find(|t| t.describe_name().eq_ignore_ascii_case(name))
    }

    /// The `soapType` of describe.
    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Date => "xsd:date",
            FieldType::DateTime => "xsd:dateTime",
            FieldType::Currency | FieldType::Double | FieldType::Percent => "xsd:double",
            FieldType::Int => "xsd:int",
            FieldType::Boolean => "xsd:boolean",
            _ => "xsd:string",
        }
    }

    /// Text-valued types: compared case-insensitively, usable with LIKE, limited by `length`.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::Textarea
                | FieldType::Picklist
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Email
        )
    }

    /// Id-valued types: 18-character ids, compared exactly.
    pub fn is_id(self) -> bool {
        matches!(self, FieldType::Id | FieldType::Reference)
    }

    /// Floating-point types.
    pub fn is_fractional(self) -> bool {
        matches!(
            self,
            FieldType::Currency | FieldType::Double | FieldType::Percent
        )
    }
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// Canonical API name, e.g. `StageName`.
    pub name: String,
    pub label: String,
    pub field_type: FieldType,
    /// Maximum length of text types (0 for others).
    pub length: u32,
    /// Digits of number types (`precision`, `scale`; `digits` for int).
    pub precision: u32,
    pub scale: u32,
    /// May be null. Required fields are `nillable: false` and not defaulted on create.
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub defaulted_on_create: bool,
    pub external_id: bool,
    pub unique: bool,
    pub id_lookup: bool,
    /// Set by the server, never by a client (Id, audit fields, formula-like flags).
    pub calculated: bool,
    pub custom: bool,
    pub name_field: bool,
    /// For references: the object referred to, and the relationship name used in SOQL.
    pub reference_to: Option<String>,
    pub relationship_name: Option<String>,
    pub picklist_values: Vec<String>,
    /// The value a create gives the field when the body leaves it out (picklist defaults).
    pub default_value: Option<String>,
    /// For references: the parent's name for its children in SOQL subqueries
    /// (`Account.Contacts`), when the relationship has one.
    pub child_relationship: Option<String>,
}

impl FieldDef {
    fn base(name: &str, label: &str, field_type: FieldType) -> FieldDef {
        let (length, precision, scale) = match field_type {
            FieldType::Id | FieldType::Reference => (18, 0, 0),
            FieldType::String | FieldType::Picklist | FieldType::Url => (255, 0, 0),
            FieldType::Phone => (40, 0, 0),
            FieldType::Email => (80, 0, 0),
            FieldType::Textarea => (32000, 0, 0),
            FieldType::Currency => (0, 18, 2),
            FieldType::Double => (0, 18, 0),
            FieldType::Percent => (0, 3, 0),
            FieldType::Int => (0, 9, 0),
            _ => (0, 0, 0),
        };
        FieldDef {
            name: name.to_string(),
            label: label.to_string(),
            field_type,
            length,
            precision,
            scale,
            nillable: field_type != FieldType::Boolean,
            createable: true,
            updateable: true,
            defaulted_on_create: field_type == FieldType::Boolean,
            external_id: false,
            unique: false,
            id_lookup: false,
            calculated: false,
            custom: false,
            name_field: false,
            reference_to: None,
            relationship_name: None,
            picklist_values: Vec::new(),
            default_value: None,
            child_relationship: None,
        }
    }

    /// A plain createable, updateable, nillable field.
    pub fn new(name: &str, label: &str, field_type: FieldType) -> FieldDef {
        Self::base(name, label, field_type)
    }

    fn length(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    fn required(mut self) -> Self {
        self.nillable = false;
        self.defaulted_on_create = false;
        self
    }

    fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self.nillable = self.field_type != FieldType::Boolean && self.field_type != FieldType::Id;
        self.defaulted_on_create = true;
        self.calculated = true;
        self
    }

    fn id_lookup(mut self) -> Self {
        self.id_lookup = true;
        self
    }

    fn name_field(mut self) -> Self {
        self.name_field = true;
        self
    }

    fn reference(mut self, to: &str, relationship: &str) -> Self {
        self.reference_to = Some(to.to_string());
        self.relationship_name = Some(relationship.to_string());
        self
    }

    /// The children's relationship name on the parent (`Contacts` for Contact.AccountId).
    fn children(mut self, name: &str) -> Self {
        self.child_relationship = Some(name.to_string());
        self
    }

    /// Required, but a create without it gets `value` (Task.Status, Task.Priority).
    fn defaulted(mut self, value: &str) -> Self {
        self.nillable = false;
        self.defaulted_on_create = true;
        self.default_value = Some(value.to_string());
        self
    }

    fn picklist(mut self, values: &[&str]) -> Self {
        self.picklist_values = values.iter().map(|v| v.to_string()).collect();
        self
    }

    /// Whether a create must supply this field.
    pub fn is_required(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create
    }

    /// Whether the field's values are kept in a lookup index (upsert keys, uniqueness).
    pub fn is_indexed(&self) -> bool {
        self.external_id || self.unique || (self.id_lookup && self.field_type != FieldType::Id)
    }

    /// The field in describe's shape.
    pub fn describe(&self) -> Json {
        let t = self.field_type;
        let picklist: Vec<Json> = self
            .picklist_values
            .iter()
            .map(|v| {
                json!({"active": true, "defaultValue": false, "label": v, "validFor": null, "value": v})
            })
            .collect();
        let is_number = matches!(
            t,
            FieldType::Currency | FieldType::Double | FieldType::Percent | FieldType::Int
        );
        json!({
            "aggregatable": t != FieldType::Textarea,
            "autoNumber": false,
            "byteLength": if t.is_text() || t.is_id() { self.length * 3 } else { 0 },
            "calculated": false,
            "caseSensitive": false,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": if t == FieldType::Boolean && !self.calculated { json!(false) } else { Json::Null },
            "defaultedOnCreate": self.defaulted_on_create,
            "dependentPicklist": false,
            "deprecatedAndHidden": false,
            "digits": if t == FieldType::Int { self.precision } else { 0 },
            "encrypted": false,
            "externalId": self.external_id,
            "filterable": t != FieldType::Textarea,
            "groupable": !is_number && t != FieldType::Textarea,
            "htmlFormatted": false,
            "idLookup": self.id_lookup,
            "inlineHelpText": null,
            "label": self.label,
            "length": if t.is_text() || t.is_id() { self.length } else { 0 },
            "name": self.name,
            "nameField": self.name_field,
            "nillable": self.nillable,
            "permissionable": self.nillable && self.createable && !self.name_field,
            "picklistValues": picklist,
            "polymorphicForeignKey": false,
            "precision": if t.is_fractional() { self.precision } else { 0 },
            "referenceTo": self.reference_to.iter().collect::<Vec<_>>(),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": false,
            "scale": if t.is_fractional() { self.scale } else { 0 },
            "soapType": t.soap_type(),
            "sortable": t != FieldType::Textarea,
            "type": t.describe_name(),
            "unique": self.unique,
            "updateable": self.updateable,
        })
    }
}

/// Positions of the system fields every object has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemFields {
    pub id: usize,
    pub is_deleted: usize,
    pub created_date: usize,
    pub created_by_id: usize,
    pub last_modified_date: usize,
    pub last_modified_by_id: usize,
    pub system_modstamp: usize,
}

/// One object (sObject type) and its fields.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    pub fields: Vec<FieldDef>,
    pub system: SystemFields,
    /// Position of the `Name` field, if the object has one.
    pub name_field: Option<usize>,
    /// A custom object (`__c`), added through `/__sim/schema`.
    pub custom: bool,
    by_name: HashMap<String, usize>,
    by_relationship: HashMap<String, usize>,
}

impl ObjectDef {
    fn new(name: &str, label_plural: &str, key_prefix: &str, own: Vec<FieldDef>) -> ObjectDef {
        let mut fields = vec![
            FieldDef::new("Id", &format!("{name} ID"), FieldType::Id)
                .read_only()
                .id_lookup(),
        ];
        fields[0].nillable = false;
        fields.push(FieldDef::new("IsDeleted", "Deleted", FieldType::Boolean).read_only());
        fields.extend(own);
        fields.push(
            FieldDef::new("CreatedDate", "Created Date", FieldType::DateTime)
                .read_only()
                .required_read_only(),
        );
        fields.push(
            FieldDef::new("CreatedById", "Created By ID", FieldType::Reference)
                .read_only()
                .required_read_only()
                .reference("User", "CreatedBy"),
        );
        fields.push(
            FieldDef::new(
                "LastModifiedDate",
                "Last Modified Date",
                FieldType::DateTime,
            )
            .read_only()
            .required_read_only(),
        );
        fields.push(
            FieldDef::new(
                "LastModifiedById",
                "Last Modified By ID",
                FieldType::Reference,
            )
            .read_only()
            .required_read_only()
            .reference("User", "LastModifiedBy"),
        );
        fields.push(
            FieldDef::new("SystemModstamp", "System Modstamp", FieldType::DateTime)
                .read_only()
                .required_read_only(),
        );
        let mut obj = ObjectDef {
            name: name.to_string(),
            label: name.to_string(),
            label_plural: label_plural.to_string(),
            key_prefix: key_prefix.to_string(),
            fields: Vec::new(),
            system: SystemFields {
                id: 0,
                is_deleted: 0,
                created_date: 0,
                created_by_id: 0,
                last_modified_date: 0,
                last_modified_by_id: 0,
                system_modstamp: 0,
            },
            name_field: None,
            custom: false,
            by_name: HashMap::new(),
            by_relationship: HashMap::new(),
        };
        for f in fields {
            obj.push_field(f);
        }
        let pos = |n: &str| {
            obj.by_name
                .get(&n.to_ascii_lowercase())
                .copied()
                .unwrap_or(0)
        };
        obj.system = SystemFields {
            id: pos("Id"),
            is_deleted: pos("IsDeleted"),
            created_date: pos("CreatedDate"),
            created_by_id: pos("CreatedById"),
            last_modified_date: pos("LastModifiedDate"),
            last_modified_by_id: pos("LastModifiedById"),
            system_modstamp: pos("SystemModstamp"),
        };
        obj.name_field = obj.by_name.get("name").copied();
        obj
    }

    fn push_field(&mut self, f: FieldDef) {
        let idx = self.fields.len();
        self.by_name.insert(f.name.to_ascii_lowercase(), idx);
        if let Some(rel) = &f.relationship_name {
            self.by_relationship.insert(rel.to_ascii_lowercase(), idx);
        }
        self.fields.push(f);
    }

    /// Position of a field, by case-insensitive name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// A field by case-insensitive name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// Position of the reference field behind a relationship name (`Account` -> `AccountId`).
    pub fn relationship_index(&self, name: &str) -> Option<usize> {
        self.by_relationship
            .get(&name.to_ascii_lowercase())
            .copied()
    }

    /// The object in describe's shape.
    pub fn describe(&self, api_version: &str, child_relationships: Vec<Json>) -> Json {
        let fields: Vec<Json> = self.fields.iter().map(FieldDef::describe).collect();
        let mut d = self.global_entry(api_version);
        if let Some(o) = d.as_object_mut() {
            o.insert("fields".into(), Json::Array(fields));
            o.insert(
                "childRelationships".into(),
                Json::Array(child_relationships),
            );
            o.insert("recordTypeInfos".into(), json!([]));
            o.insert(
                "supportedScopes".into(),
                json!([{"label": "All", "name": "everything"}]),
            );
            o.insert("networkScopeFieldName".into(), Json::Null);
            o.insert("namedLayoutInfos".into(), json!([]));
            o.insert("actionOverrides".into(), json!([]));
        }
        d
    }

    /// The object's entry in `GET sobjects` (describeGlobal).
    pub fn global_entry(&self, api_version: &str) -> Json {
        let base = format!("/services/data/v{api_version}/sobjects/{}", self.name);
        json!({
            "activateable": false,
            "createable": true,
            "custom": self.custom,
            "customSetting": false,
            "deletable": true,
            "deprecatedAndHidden": false,
            "feedEnabled": false,
            "hasSubtypes": false,
            "isSubtype": false,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": true,
            "mergeable": self.name != "Opportunity",
            "mruEnabled": true,
            "name": self.name,
            "queryable": true,
            "replicateable": true,
            "retrieveable": true,
            "searchable": true,
            "triggerable": true,
            "undeletable": true,
            "updateable": true,
            "urls": {
                "rowTemplate": format!("{base}/{{ID}}"),
                "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
                "describe": format!("{base}/describe"),
                "sobject": base,
            },
        })
    }
}

impl FieldDef {
    /// Audit fields are never null.
    fn required_read_only(mut self) -> Self {
        self.nillable = false;
        self
    }
}

/// Every object of an org.
#[derive(Debug, Clone)]
pub struct Schema {
    pub objects: Vec<ObjectDef>,
    by_name: HashMap<String, usize>,
}

pub use standard::OPPORTUNITY_STAGES;

impl Schema {
    /// The child object and its reference field behind a child relationship name of
    /// `parent` (`Contacts` on Account -> Contact.AccountId).
    pub fn child_relationship(&self, parent: &str, name: &str) -> Option<(usize, usize)> {
        self.objects.iter().enumerate().find_map(|(oi, o)| {
            o.fields
                .iter()
                .position(|f| {
                    f.reference_to.as_deref() == Some(parent)
                        && f.child_relationship
                            .as_deref()
                            .is_some_and(|r| r.eq_ignore_ascii_case(name))
                })
                .map(|fi| (oi, fi))
        })
    }

    /// Position of an object, by case-insensitive name.
    pub fn object_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// An object by case-insensitive name.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.object_index(name).map(|i| &self.objects[i])
    }

    /// The object an id belongs to, by key prefix.
    pub fn object_for_id(&self, id: &str) -> Option<usize> {
        let prefix = ids::key_prefix(id)?;
        self.objects.iter().position(|o| o.key_prefix == prefix)
    }

    /// Child relationships of an object (e.g. Account -> Opportunities), for describe.
    pub fn child_relationships(&self, object: &str) -> Vec<Json> {
        let mut out = Vec::new();
        for child in &self.objects {
            for f in &child.fields {
                if f.reference_to.as_deref() == Some(object) {
                    let rel = f
                        .child_relationship
                        .as_ref()
                        .map_or(Json::Null, |r| json!(r));
                    out.push(json!({
                        "cascadeDelete": child.name == "Opportunity" && f.name == "AccountId",
                        "childSObject": child.name,
                        "deprecatedAndHidden": false,
                        "field": f.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": rel,
                        "restrictedDelete": false,
                    }));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_objects_have_system_fields_and_required_fields() {
        let s = Schema::standard();
        let opp = s.object("opportunity").expect("Opportunity");
        assert_eq!(opp.name, "Opportunity");
        assert_eq!(opp.key_prefix, "006");
        assert_eq!(opp.fields[opp.system.id].name, "Id");
        assert_eq!(
            opp.fields[opp.system.system_modstamp].name,
            "SystemModstamp"
        );
        let required: Vec<&str> = opp
            .fields
            .iter()
            .filter(|f| f.is_required())
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(required, ["Name", "StageName", "CloseDate"]);
        let acc = s.object("ACCOUNT").expect("Account");
        let required: Vec<&str> = acc
            .fields
            .iter()
            .filter(|f| f.is_required())
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(required, ["Name"]);
        assert_eq!(
            opp.relationship_index("account"),
            opp.field_index("AccountId")
        );
        assert_eq!(
            opp.field("stagename").map(|f| f.field_type),
            Some(FieldType::Picklist)
        );
        assert!(
            !opp.field("SystemModstamp")
                .is_some_and(|f| f.createable || f.updateable)
        );
        assert_eq!(
            s.object_for_id("006000000000001AAA"),
            s.object_index("Opportunity")
        );
    }

    #[test]
    fn describe_names_fields_with_their_flags() {
        let s = Schema::standard();
        let opp = s.object("Opportunity").expect("Opportunity");
        let d = opp.describe("62.0", s.child_relationships("Opportunity"));
        assert_eq!(d["name"], "Opportunity");
        assert_eq!(d["keyPrefix"], "006");
        let fields = d["fields"].as_array().expect("fields");
        let amount = fields
            .iter()
            .find(|f| f["name"] == "Amount")
            .expect("Amount");
        assert_eq!(amount["type"], "currency");
        assert_eq!(amount["createable"], true);
        assert_eq!(amount["externalId"], false);
        let acc = fields
            .iter()
            .find(|f| f["name"] == "AccountId")
            .expect("AccountId");
        assert_eq!(acc["referenceTo"], json!(["Account"]));
        assert_eq!(acc["relationshipName"], "Account");
        let id = fields.iter().find(|f| f["name"] == "Id").expect("Id");
        assert_eq!(id["type"], "id");
        assert_eq!(id["createable"], false);
        assert_eq!(
            d["urls"]["describe"],
            "/services/data/v62.0/sobjects/Opportunity/describe"
        );
    }
}
