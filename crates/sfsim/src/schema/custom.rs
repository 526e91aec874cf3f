//! Custom fields (and objects) added at run time through `/__sim/schema`, with Salesforce's
//! naming rules.

use serde_json::Value as Json;

use super::{FieldDef, FieldType, Schema};
use crate::error::ApiError;

impl Schema {
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
