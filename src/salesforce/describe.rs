//! Metadata calls: `describe` of an object (its fields and what the user may do with them)
//! and `limits` (the org's remaining daily API calls).
//!
//! Only the describe properties orgsync uses are kept. A field absent from a describe is
//! either misspelled or hidden from the logged-in user by field-level security: either way
//! orgsync cannot read it, which is what `orgsync check` reports.

use serde::Deserialize;
use serde_json::Value;

use super::client::{ApiRequest, Client, Target};
use super::error::{ErrorClass, SalesforceError};
use super::soql::is_field_path;
use super::usage::CallKind;

/// One field of a describe.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// `string`, `double`, `currency`, `date`, `datetime`, `picklist`, `reference`, ...
    #[serde(rename = "type", default)]
    pub field_type: String,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub custom: bool,
    #[serde(default = "yes")]
    pub filterable: bool,
    #[serde(default)]
    pub length: u64,
    /// For references: the objects it points to.
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// For references: the relationship name (`Account` for `AccountId`).
    #[serde(default)]
    pub relationship_name: Option<String>,
}

fn yes() -> bool {
    true
}

/// An object's describe.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectDescribe {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default = "yes")]
    pub queryable: bool,
    #[serde(default = "yes")]
    pub createable: bool,
    #[serde(default = "yes")]
    pub updateable: bool,
    #[serde(default)]
    pub fields: Vec<FieldDescribe>,
}

impl ObjectDescribe {
    /// The field named `name`, compared as Salesforce does (case-insensitively).
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// The org's daily API allowance, from `limits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `DailyApiRequests`: `(remaining, max)`.
    pub daily_api_requests: Option<(u64, u64)>,
    /// The whole reply, for anything else.
    pub raw: Value,
}

/// Reads `DailyApiRequests` out of a `limits` reply.
pub fn parse_limits(raw: Value) -> Limits {
    let daily = raw
        .get("DailyApiRequests")
        .and_then(|d| Some((d.get("Remaining")?.as_u64()?, d.get("Max")?.as_u64()?)));
    Limits {
        daily_api_requests: daily,
        raw,
    }
}

impl Client {
    /// `GET sobjects/{object}/describe`.
    pub async fn describe(&self, object: &str) -> Result<ObjectDescribe, SalesforceError> {
        if !is_field_path(object) || object.contains('.') {
            return Err(SalesforceError::client(
                self.org_name(),
                "INVALID_TYPE",
                format!("{object:?} is not an object API name"),
                ErrorClass::Permanent,
            ));
        }
        let path = format!("sobjects/{object}/describe");
        self.send_json(&ApiRequest::get(CallKind::Describe, Target::Data(&path)))
            .await
    }

    /// `GET limits`.
    pub async fn limits(&self) -> Result<Limits, SalesforceError> {
        let raw: Value = self
            .send_json(&ApiRequest::get(CallKind::Limits, Target::Data("limits")))
            .await?;
        Ok(parse_limits(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shape() {
        let d: ObjectDescribe = serde_json::from_str(
            r#"{"name":"Opportunity","label":"Opportunity","queryable":true,"fields":[
                {"name":"Name","type":"string","createable":true,"updateable":true,"nillable":false,"externalId":false,"custom":false,"length":120},
                {"name":"Ext_Id__c","type":"string","createable":true,"updateable":true,"nillable":true,"externalId":true,"custom":true,"unique":true},
                {"name":"AccountId","type":"reference","referenceTo":["Account"],"relationshipName":"Account"}]}"#,
        )
        .unwrap();
        assert_eq!(d.field("name").unwrap().field_type, "string");
        assert!(d.field("EXT_ID__C").unwrap().external_id);
        assert_eq!(
            d.field("AccountId").unwrap().relationship_name.as_deref(),
            Some("Account")
        );
        assert!(d.field("Nope").is_none());
    }

    #[test]
    fn limits_shape() {
        let l = parse_limits(serde_json::json!({
            "DailyApiRequests": {"Remaining": 14998, "Max": 15000},
            "DailyBulkApiRequests": {"Remaining": 10000, "Max": 10000}
        }));
        assert_eq!(l.daily_api_requests, Some((14998, 15000)));
        assert_eq!(parse_limits(serde_json::json!({})).daily_api_requests, None);
    }
}
