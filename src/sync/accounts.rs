//! Parent accounts of synced opportunities (`account.sync_policy`), the pure part.
//!
//! - `""`: opportunities move without a parent.
//! - `"assign"`: every opportunity created in the target gets the target org's configured
//!   `orgs.X.account_id`.
//! - `"syncAccount"` (the template's): the parent travels with the opportunity as the
//!   canonical pseudo-field `Account.Name` (so a change of parent is merged and detected like any
//!   field change), and the parent's id, Name and `account.fields` travel with the row. The
//!   pseudo-field's canonical value is the parent's identity as org A knows it ([`parent_token`]:
//!   the A account id, through the Account links for B's parents), not its Name: the two orgs'
//!   accounts may be named differently (a reused account, a rename: accounts are never
//!   overwritten), and comparing names would read that as an edit and write it back and forth
//!   for ever. When the pass
//!   writes the row, the parent is resolved in the target once per page for all rows: first
//!   through the Account links of the store, then by one query by Name for the unlinked parents,
//!   then by one collections call creating the missing ones (from the source parent's
//!   `account.fields`); the new links are stored with the page. Two target Accounts with the
//!   name are a failure of the row, never a guess. Accounts are created, never overwritten.
//!
//! [`plan_parents`] is the decision, without I/O: it takes the page's parents, their links and
//! the target accounts the Name query found, and says per parent: linked, found (link it),
//! create, or ambiguous.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::store::Org;

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
            if field.eq_ignore_ascii_case("Name") || field.eq_ignore_ascii_case("Id") {
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

/// Which source parent a row names: its record id when the row carried it (so it can be
/// linked), else only its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParentKey {
    /// The source parent's record id.
    Id(String),
    /// The lower-cased name, when the row carried no parent id.
    Name(String),
}

impl ParentKey {
    /// The key of the parent a row carries: `parent` is the row's nested `Account` record,
    /// `name` its `Account.Name`.
    pub fn of(parent: Option<&Map<String, Value>>, name: &str) -> ParentKey {
        match parent
            .and_then(|p| p.get("Id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
        {
            Some(id) => ParentKey::Id(id.to_string()),
            None => ParentKey::Name(name.to_lowercase()),
        }
    }

    /// The source record id, when known.
    pub fn source_id(&self) -> Option<&str> {
        match self {
            ParentKey::Id(id) => Some(id),
            ParentKey::Name(_) => None,
        }
    }
}

/// What the pass does for one source parent of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentPlan {
    /// The store links it to this target account: no lookup, no write.
    Linked(String),
    /// The Name query found exactly this unlinked target account: use it and link it.
    Found(String),
    /// No target account has the name: create one (once, whatever the number of rows).
    Create,
    /// Several unlinked target accounts have the name: their ids. The rows fail.
    Ambiguous(Vec<String>),
    /// Several unlinked source parents of the page share the name of one unlinked target
    /// account: which of them it belongs to is a guess. The rows fail.
    Twins { target_id: String, parents: usize },
}

/// The names to query in the target: those of the page's parents without a link, distinct
/// without regard to case (SOQL's `IN` ignores it).
pub fn unlinked_names(
    parents: &BTreeMap<ParentKey, String>,
    links: &HashMap<String, String>,
) -> BTreeSet<String> {
    let mut seen: HashSet<String> = HashSet::new();
    parents
        .iter()
        .filter(|(key, _)| !key.source_id().is_some_and(|id| links.contains_key(id)))
        .filter(|(_, name)| seen.insert(name.to_lowercase()))
        .map(|(_, name)| name.clone())
        .collect()
}

/// Decides every parent of the page. `parents`: key -> name as the rows carry it; `links`:
/// source account id -> linked target account id; `by_name`: the target accounts `(id, name)`
/// the Name query returned; `linked_targets`: those of them already linked to some source
/// account (they belong to that one, so they are no candidates for another).
pub fn plan_parents(
    parents: &BTreeMap<ParentKey, String>,
    links: &HashMap<String, String>,
    by_name: &[(String, String)],
    linked_targets: &HashSet<String>,
) -> BTreeMap<ParentKey, ParentPlan> {
    let free: Vec<(String, String)> = by_name
        .iter()
        .filter(|(id, _)| !linked_targets.contains(id))
        .cloned()
        .collect();
    let names = unlinked_names(parents, links);
    let resolved = resolve_names(&names, &free);
    let resolved: HashMap<String, Resolution> = resolved
        .into_iter()
        .map(|(name, r)| (name.to_lowercase(), r))
        .collect();
    // Unlinked parents per name: more than one sharing one free target account are twins.
    let mut unlinked_per_name: HashMap<String, usize> = HashMap::new();
    for (key, name) in parents {
        if !key.source_id().is_some_and(|id| links.contains_key(id)) {
            *unlinked_per_name.entry(name.to_lowercase()).or_default() += 1;
        }
    }
    parents
        .iter()
        .map(|(key, name)| {
            if let Some(target) = key.source_id().and_then(|id| links.get(id)) {
                return (key.clone(), ParentPlan::Linked(target.clone()));
            }
            let lower = name.to_lowercase();
            let plan = match resolved.get(&lower) {
                None | Some(Resolution::Missing) => ParentPlan::Create,
                Some(Resolution::Ambiguous(ids)) => ParentPlan::Ambiguous(ids.clone()),
                Some(Resolution::Found(id)) => match unlinked_per_name.get(&lower) {
                    Some(&n) if n > 1 => ParentPlan::Twins {
                        target_id: id.clone(),
                        parents: n,
                    },
                    _ => ParentPlan::Found(id.clone()),
                },
            };
            (key.clone(), plan)
        })
        .collect()
}

/// The canonical value of the parent pseudo-field for a row of `org` whose nested `Account`
/// record is `parent`: the parent's A-side id (its own id in A; in B, the A id its Account
/// link gives, from `a_ids_of_b`), else, for a B parent not linked yet, its Name. `None` when
/// the row has no parent (the pseudo-field then stays absent).
pub fn parent_token(
    org: Org,
    parent: Option<&Map<String, Value>>,
    a_ids_of_b: &HashMap<String, String>,
) -> Option<String> {
    let parent = parent?;
    let text = |field: &str| {
        parent
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let id = text("Id");
    let by_id = match org {
        Org::A => id.map(str::to_string),
        Org::B => id.and_then(|id| a_ids_of_b.get(id)).cloned(),
    };
    by_id.or_else(|| text("Name").map(str::to_string))
}

/// The Name of a row's nested parent record, when it has one.
pub fn parent_name(parent: Option<&Map<String, Value>>) -> Option<&str> {
    parent?
        .get("Name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether a write's error code says a reference it set points to no live record: for a
/// row whose `AccountId` came from a stored link, the linked account was deleted (or merged
/// away) in the target, so the link is stale.
pub fn is_missing_reference(code: &str) -> bool {
    matches!(code, "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY")
}

/// The relationship fields the source query selects for `mode` (`Account.<field>`): the
/// parent's `Id` (for its link) and `account.fields`.
pub fn parent_select_fields(mode: &AccountMode) -> Vec<String> {
    match mode {
        AccountMode::SyncByName { fields } => {
            let mut out = vec![format!("{ACCOUNT_OBJECT}.Id")];
            for f in fields {
                if !f.eq_ignore_ascii_case("Id") {
                    out.push(format!("{ACCOUNT_OBJECT}.{f}"));
                }
            }
            out
        }
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
            vec![
                "Account.Id".to_string(),
                "Account.Name".to_string(),
                "Account.Industry".to_string()
            ]
        );
        assert!(parent_select_fields(&AccountMode::None).is_empty());
    }

    fn key(id: &str) -> ParentKey {
        ParentKey::Id(id.to_string())
    }

    fn parents(list: &[(ParentKey, &str)]) -> BTreeMap<ParentKey, String> {
        list.iter()
            .map(|(k, n)| (k.clone(), n.to_string()))
            .collect()
    }

    #[test]
    fn parent_key_prefers_the_source_id() {
        let Value::Object(parent) = json!({"Id": "001A1", "Name": "Acme"}) else {
            panic!("object")
        };
        assert_eq!(ParentKey::of(Some(&parent), "Acme"), key("001A1"));
        assert_eq!(
            ParentKey::of(None, "ACME"),
            ParentKey::Name("acme".to_string())
        );
        let Value::Object(no_id) = json!({"Name": "Acme", "Id": ""}) else {
            panic!("object")
        };
        assert_eq!(
            ParentKey::of(Some(&no_id), "Acme"),
            ParentKey::Name("acme".to_string())
        );
    }

    #[test]
    fn links_come_first_and_only_unlinked_names_are_queried() {
        let page = parents(&[(key("001A1"), "Acme"), (key("001A2"), "Globex")]);
        let links: HashMap<String, String> = [("001A1".to_string(), "001B1".to_string())].into();
        let names = unlinked_names(&page, &links);
        assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["Globex"]);
        let plans = plan_parents(&page, &links, &[], &HashSet::new());
        assert_eq!(plans[&key("001A1")], ParentPlan::Linked("001B1".into()));
        assert_eq!(plans[&key("001A2")], ParentPlan::Create);
    }

    #[test]
    fn names_are_queried_once_without_regard_to_case() {
        let page = parents(&[
            (key("001A1"), "Acme"),
            (ParentKey::Name("acme".into()), "ACME"),
        ]);
        assert_eq!(unlinked_names(&page, &HashMap::new()).len(), 1);
    }

    #[test]
    fn a_found_account_is_used_unless_linked_to_another_parent() {
        let page = parents(&[(key("001A1"), "Acme"), (key("001A2"), "Globex")]);
        let found = vec![
            ("001B1".to_string(), "ACME".to_string()),
            ("001B2".to_string(), "Globex".to_string()),
        ];
        // 001B2 mirrors some other A account named Globex: this Globex gets its own.
        let linked: HashSet<String> = ["001B2".to_string()].into();
        let plans = plan_parents(&page, &HashMap::new(), &found, &linked);
        assert_eq!(plans[&key("001A1")], ParentPlan::Found("001B1".into()));
        assert_eq!(plans[&key("001A2")], ParentPlan::Create);
    }

    #[test]
    fn two_target_accounts_with_the_name_are_ambiguous() {
        let page = parents(&[(key("001A1"), "Twin")]);
        let found = vec![
            ("001B2".to_string(), "Twin".to_string()),
            ("001B1".to_string(), "twin".to_string()),
        ];
        let plans = plan_parents(&page, &HashMap::new(), &found, &HashSet::new());
        assert_eq!(
            plans[&key("001A1")],
            ParentPlan::Ambiguous(vec!["001B1".into(), "001B2".into()])
        );
    }

    #[test]
    fn two_source_parents_for_one_target_account_are_not_guessed() {
        let page = parents(&[(key("001A1"), "Twin"), (key("001A2"), "Twin")]);
        let found = vec![("001B1".to_string(), "Twin".to_string())];
        let plans = plan_parents(&page, &HashMap::new(), &found, &HashSet::new());
        for k in [key("001A1"), key("001A2")] {
            assert_eq!(
                plans[&k],
                ParentPlan::Twins {
                    target_id: "001B1".into(),
                    parents: 2
                }
            );
        }
        // With no target account each source parent gets its own.
        let plans = plan_parents(&page, &HashMap::new(), &[], &HashSet::new());
        assert!(plans.values().all(|p| *p == ParentPlan::Create));
        assert_eq!(plans.len(), 2);
    }

    #[test]
    fn the_parent_token_is_the_a_side_identity() {
        let Value::Object(parent) = json!({"Id": "001X1", "Name": "Acme"}) else {
            panic!("object")
        };
        let links: HashMap<String, String> = [("001X1".to_string(), "001A9".to_string())].into();
        // A's own id; B's through its link; an unlinked B parent by Name; no parent: none.
        assert_eq!(
            parent_token(Org::A, Some(&parent), &HashMap::new()).as_deref(),
            Some("001X1")
        );
        assert_eq!(
            parent_token(Org::B, Some(&parent), &links).as_deref(),
            Some("001A9")
        );
        assert_eq!(
            parent_token(Org::B, Some(&parent), &HashMap::new()).as_deref(),
            Some("Acme")
        );
        assert_eq!(parent_token(Org::A, None, &links), None);
        assert_eq!(parent_name(Some(&parent)), Some("Acme"));
    }

    #[test]
    fn deleted_or_unknown_references_are_missing_references() {
        assert!(is_missing_reference("ENTITY_IS_DELETED"));
        assert!(is_missing_reference("INVALID_CROSS_REFERENCE_KEY"));
        assert!(!is_missing_reference("FIELD_CUSTOM_VALIDATION_EXCEPTION"));
    }

    #[test]
    fn account_body_never_copies_the_id() {
        let Value::Object(parent) = json!({"Id": "001A1", "Name": "Acme"}) else {
            panic!("object")
        };
        let fields: Vec<String> = vec!["Id".into(), "Name".into()];
        assert_eq!(
            Value::Object(account_body("Acme", Some(&parent), &fields)),
            json!({"Name": "Acme"})
        );
    }
}
