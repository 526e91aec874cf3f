//! Parent accounts of synced opportunities (`account.sync_policy`), the pure part.
//!
//! - `""`: opportunities move without a parent.
//! - `"assign"`: every opportunity created in the target gets the target org's configured
//!   `orgs.X.account_id`.
//! - `"syncAccount"` (the template's): the parent's Name travels with the opportunity as the
//!   canonical pseudo-field `Account.Name` (so a change of parent is merged and detected like any
//!   field change). When the pass writes it, the name is resolved to an Account of the target
//!   by Name, once per page for all rows, and an Account is created from the source's parent
//!   fields (`account.fields`) when none exists. Two target Accounts with the name are a
//!   failure of the row, never a guess.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// The parent object.
pub const ACCOUNT_OBJECT: &str = "Account";
/// The canonical pseudo-field holding the parent's Name.
pub const ACCOUNT_NAME_PATH: &str = "Account.Name";
/// The lookup field written on the opportunity.
pub const ACCOUNT_ID_FIELD: &str = "AccountId";
/// Failure code of a parent name matching several target accounts.
pub const AMBIGUOUS_ACCOUNT: &str = "AMBIGUOUS_ACCOUNT";

/// How the pass treats parent accounts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccountMode {
    #[default]
    None,
    /// Creates get this target account id.
    Assign { account_id: String },
    /// Parents resolved by Name in the target, created when missing from these fields of the
    /// source parent (`account.fields`, which include `Name`).
    SyncByName { fields: Vec<String> },
}

/// What a parent name resolves to in the target org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Found(String),
    /// Several target accounts have the name: their ids.
    Ambiguous(Vec<String>),
    /// No target account has the name: create one.
    Missing,
}

/// Resolves parent names against the target's accounts `(id, name)`. Names compare without
/// regard to case, as SOQL's `Name IN (...)` that found the accounts does.
pub fn resolve_names(
    names: &BTreeSet<String>,
    accounts: &[(String, String)],
) -> BTreeMap<String, Resolution> {
    names
        .iter()
        .map(|name| {
            let mut ids: Vec<String> = accounts
                .iter()
                .filter(|(_, n)| n.to_lowercase() == name.to_lowercase())
                .map(|(id, _)| id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            let resolution = match ids.len() {
                0 => Resolution::Missing,
                1 => Resolution::Found(ids.remove(0)),
                _ => Resolution::Ambiguous(ids),
            };
            (name.clone(), resolution)
        })
        .collect()
}

/// The body of an Account to create in the target for parent `name`: the configured fields
/// copied from the source's parent record (when the row carried it), and always the Name.
pub fn account_body(
    name: &str,
    parent: Option<&Map<String, Value>>,
    fields: &[String],
) -> Map<String, Value> {
    let mut body = Map::new();
    if let Some(parent) = parent {
        for field in fields {
            if field.eq_ignore_ascii_case("Name") {
                continue;
            }
            if let Some(value) = parent
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                .map(|(_, v)| v)
                && !value.is_null()
            {
                body.insert(field.clone(), value.clone());
            }
        }
    }
    body.insert("Name".to_string(), Value::String(name.to_string()));
    body
}

/// The relationship fields the source query selects for `mode` (`Account.<field>`).
pub fn parent_select_fields(mode: &AccountMode) -> Vec<String> {
    match mode {
        AccountMode::SyncByName { fields } => fields
            .iter()
            .map(|f| format!("{ACCOUNT_OBJECT}.{f}"))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_resolve_found_missing_or_ambiguous() {
        let names: BTreeSet<String> = ["Acme", "Globex", "Twin"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let accounts = vec![
            ("001a".to_string(), "ACME".to_string()),
            ("001t1".to_string(), "Twin".to_string()),
            ("001t2".to_string(), "twin".to_string()),
        ];
        let r = resolve_names(&names, &accounts);
        assert_eq!(r["Acme"], Resolution::Found("001a".into()));
        assert_eq!(r["Globex"], Resolution::Missing);
        assert_eq!(
            r["Twin"],
            Resolution::Ambiguous(vec!["001t1".into(), "001t2".into()])
        );
    }

    #[test]
    fn account_body_copies_configured_fields() {
        let Value::Object(parent) = json!({
            "attributes": {"type": "Account"}, "Name": "Acme", "Industry": "Retail",
            "Phone": null, "Secret__c": "x"
        }) else {
            panic!("object")
        };
        let fields: Vec<String> = ["Name", "Industry", "Phone"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let body = account_body("Acme", Some(&parent), &fields);
        assert_eq!(
            Value::Object(body),
            json!({"Name": "Acme", "Industry": "Retail"})
        );
        let bare = account_body("Acme", None, &fields);
        assert_eq!(Value::Object(bare), json!({"Name": "Acme"}));
    }

    #[test]
    fn select_fields_follow_the_mode() {
        let mode = AccountMode::SyncByName {
            fields: vec!["Name".into(), "Industry".into()],
        };
        assert_eq!(
            parent_select_fields(&mode),
            vec!["Account.Name".to_string(), "Account.Industry".to_string()]
        );
        assert!(parent_select_fields(&AccountMode::None).is_empty());
    }
}
