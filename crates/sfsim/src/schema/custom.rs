//! Custom fields and custom objects added at run time through `/__sim/schema`, with
//! Salesforce's naming rules.

use serde_json::{Map, Value as Json};

use super::{FieldDef, FieldType, ObjectDef, Schema, standard::owner};
use crate::error::ApiError;

/// Key prefixes of custom objects, in the order they are added: `a00`, `a01`, ... `a0z`,
/// `a10`, ... (Salesforce hands out `a0X`-style prefixes per org).
pub fn custom_key_prefix(n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let hi = DIGITS[(n / 62) % 62] as char;
    let lo = DIGITS[n % 62] as char;
    format!("a{hi}{lo}")
}

impl Schema {
    /// Adds a custom object from a spec like `{"object":"BigTable__c","label":"Big Table",
    /// "labelPlural":"Big Tables","fields":[{"name":"Ext_Id__c","externalId":true}, ...]}`:
    /// the object gets the system fields, `Name` (text 80; the record id when a create leaves
    /// it out, as Salesforce does), `OwnerId`, then the listed custom fields (field specs
    /// without `object`). Returns the object's index.
    pub fn add_object(&mut self, spec: &Map<String, Json>) -> Result<usize, ApiError> {
        let bad = |m: String| ApiError::new(400, "INVALID_TYPE", m);
        let name = spec
            .get("object")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("object spec needs \"object\"".into()))?;
        validate_custom_name(name).map_err(bad)?;
        if self.object_index(name).is_some() {
            return Err(ApiError::new(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                format!("There is already an object named {name}."),
            ));
        }
        let fields = match spec.get("fields") {
            None => Vec::new(),
            Some(Json::Array(list)) => list.clone(),
            Some(_) => return Err(bad("\"fields\" must be a list of field specs".into())),
        };
        let stem = name[..name.len() - 3].replace('_', " ");
        let label = spec
            .get("label")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| stem.clone());
        let plural = spec
            .get("labelPlural")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{label}s"));
        let mut record_name = FieldDef::new("Name", &format!("{label} Name"), FieldType::String)
            .length(80)
            .id_lookup()
            .name_field();
        record_name.nillable = false;
        record_name.defaulted_on_create = true;
        let customs = self.objects.iter().filter(|o| o.custom).count();
        let mut obj = ObjectDef::new(
            name,
            &plural,
            &custom_key_prefix(customs),
            vec![record_name, owner()],
        );
        obj.label = label;
        obj.custom = true;
        // Validate every field against a copy first: the object is added whole or not at all.
        let mut trial = self.clone();
        trial.push_object(obj.clone());
        for f in &fields {
            let mut f = f
                .as_object()
                .cloned()
                .ok_or_else(|| bad("each field spec must be a JSON object".into()))?;
            f.insert("object".into(), Json::String(name.to_string()));
            trial.add_field(&Json::Object(f))?;
        }
        *self = trial;
        self.object_index(name)
            .ok_or_else(|| bad(format!("object {name} was not added")))
    }

    fn push_object(&mut self, obj: ObjectDef) {
        self.by_name
            .insert(obj.name.to_ascii_lowercase(), self.objects.len());
        self.objects.push(obj);
    }

    /// Adds a custom field from a spec like
    /// `{"object":"Opportunity","name":"Ext_Id__c","type":"string","externalId":true,"unique":true}`.
    /// Optional keys: `label`, `length`, `required`, `picklistValues`, `referenceTo`,
    /// `relationshipName`. Returns the object's index and the new field's position.
    pub fn add_field(&mut self, spec: &Json) -> Result<(usize, usize), ApiError> {
        let bad = |m: String| ApiError::new(400, "INVALID_FIELD", m);
        let spec = spec
            .as_object()
            .ok_or_else(|| bad("field spec must be a JSON object".into()))?;
        let text = |k: &str| spec.get(k).and_then(Json::as_str);
        let flag = |k: &str| spec.get(k).and_then(Json::as_bool).unwrap_or(false);
        let object = text("object").ok_or_else(|| bad("field spec needs \"object\"".into()))?;
        let name = text("name").ok_or_else(|| bad("field spec needs \"name\"".into()))?;
        let type_name = text("type").unwrap_or("string");
        let oi = self.object_index(object).ok_or_else(|| {
            ApiError::new(
                400,
                "INVALID_TYPE",
                format!("sObject type '{object}' is not supported."),
            )
        })?;
        validate_custom_name(name).map_err(bad)?;
        if self.objects[oi].field_index(name).is_some() {
            return Err(ApiError::new(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                format!(
                    "There is already a field named {name} on {}.",
                    self.objects[oi].name
                ),
            ));
        }
        let field_type = FieldType::from_describe_name(type_name)
            .filter(|t| *t != FieldType::Id)
            .ok_or_else(|| bad(format!("unknown field type '{type_name}'")))?;
        let label = text("label")
            .map(str::to_string)
            .unwrap_or_else(|| name[..name.len() - 3].replace('_', " "));
        let mut f = FieldDef::new(name, &label, field_type);
        f.custom = true;
        if let Some(len) = spec.get("length") {
            let len = len
                .as_u64()
                .filter(|l| (1..=131_072).contains(l))
                .ok_or_else(|| bad("length must be an integer from 1 to 131072".into()))?;
            f.length = len as u32;
        }
        let external_id = flag("externalId");
        let unique = flag("unique");
        if (external_id || unique)
            && !matches!(
                field_type,
                FieldType::String | FieldType::Email | FieldType::Int | FieldType::Double
            )
        {
            return Err(bad(format!(
                "an external id or unique field must be of type string, email, int or double, not {type_name}"
            )));
        }
        f.external_id = external_id;
        f.unique = unique;
        f.id_lookup = external_id;
        if flag("required") {
            f = f.required();
        }
        if let Some(values) = spec.get("picklistValues").and_then(Json::as_array) {
            f.picklist_values = values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
        }
        if field_type == FieldType::Reference {
            let to = text("referenceTo")
                .ok_or_else(|| bad("a reference field needs \"referenceTo\"".into()))?;
            let target = self
                .object(to)
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "INVALID_TYPE",
                        format!("sObject type '{to}' is not supported."),
                    )
                })?
                .name
                .clone();
            let rel = text("relationshipName")
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}__r", &name[..name.len() - 3]));
            f = f.reference(&target, &rel);
        }
        let obj = &mut self.objects[oi];
        obj.push_field(f);
        Ok((oi, obj.fields.len() - 1))
    }
}

/// A custom field's API name: a letter, then letters, digits and single underscores, ending in
/// `__c`, at most 43 characters with the suffix.
fn validate_custom_name(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let Some(stem) = lower.strip_suffix("__c") else {
        return Err(format!("custom field name '{name}' must end in '__c'"));
    };
    let ok = stem.len() <= 40
        && stem.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !stem.contains("__")
        && !stem.ends_with('_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "custom field name '{name}' must begin with a letter and hold only letters, digits and single underscores"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_object_builds_a_custom_object_whole_or_not_at_all() {
        let mut s = Schema::standard();
        let spec = json!({"object": "BigTable__c", "label": "Big Table", "fields": [
            {"name": "Ext_Id__c", "type": "string", "externalId": true, "unique": true},
            {"name": "Score__c", "type": "double"},
            {"name": "Account__c", "type": "reference", "referenceTo": "Account"},
        ]});
        let oi = s
            .add_object(spec.as_object().expect("spec"))
            .expect("added");
        let o = &s.objects[oi];
        assert!(o.custom);
        assert_eq!(o.key_prefix, "a00");
        assert_eq!(o.label, "Big Table");
        assert_eq!(o.label_plural, "Big Tables");
        assert!(o.field("Name").is_some_and(|f| !f.is_required()));
        assert!(o.field("OwnerId").is_some());
        assert!(o.field("ext_id__c").is_some_and(|f| f.external_id));
        assert_eq!(
            o.relationship_index("Account__r"),
            o.field_index("Account__c")
        );
        assert_eq!(s.object_for_id("a00000000000001"), Some(oi));
        let again = s.add_object(spec.as_object().expect("spec"));
        assert_eq!(
            again.map_err(|e| e.error_code),
            Err("DUPLICATE_DEVELOPER_NAME".to_string())
        );
        let broken = json!({"object": "Other__c", "fields": [{"name": "NoSuffix"}]});
        assert!(s.add_object(broken.as_object().expect("spec")).is_err());
        assert!(
            s.object("Other__c").is_none(),
            "a failed object is not half added"
        );
        let not_custom = json!({"object": "Plain"});
        assert!(s.add_object(not_custom.as_object().expect("spec")).is_err());
        assert_eq!(custom_key_prefix(1), "a01");
        assert_eq!(custom_key_prefix(62), "a10");
    }

    #[test]
    fn add_field_validates_and_registers() {
        let mut s = Schema::standard();
        let spec = json!({"object":"opportunity","name":"Ext_Id__c","type":"string","externalId":true,"unique":true});
        let (oi, fi) = s.add_field(&spec).expect("added");
        let f = &s.objects[oi].fields[fi];
        assert!(f.external_id && f.unique && f.custom && f.id_lookup);
        assert_eq!(s.objects[oi].field_index("EXT_ID__C"), Some(fi));
        let dup = s.add_field(&spec).expect_err("duplicate");
        assert_eq!(dup.error_code, "DUPLICATE_DEVELOPER_NAME");
        let no_suffix = s
            .add_field(&json!({"object":"Account","name":"Foo"}))
            .expect_err("suffix");
        assert_eq!(no_suffix.error_code, "INVALID_FIELD");
        let bad_obj = s
            .add_field(&json!({"object":"Foo","name":"A__c"}))
            .expect_err("object");
        assert_eq!(bad_obj.error_code, "INVALID_TYPE");
        let bad_type = s.add_field(&json!({"object":"Account","name":"A__c","type":"blob"}));
        assert!(bad_type.is_err());
        let bad_name = s.add_field(&json!({"object":"Account","name":"a__b__c"}));
        assert!(bad_name.is_err());
        let (oi, fi) = s
            .add_field(&json!({"object":"Opportunity","name":"Partner__c","type":"reference","referenceTo":"account"}))
            .expect("reference");
        assert_eq!(s.objects[oi].relationship_index("partner__r"), Some(fi));
    }
}
