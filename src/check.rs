//! `orgsync check`: the preflight. Logs in to both orgs, describes the synced object (and
//! Account when parents are synced), and reports every configured field that does not exist
//! in an org or that the integration user cannot read, create or update there (the template's
//! `INVALID_FIELD` fault, caught before any sync), the match and external-id fields, the
//! filter (run as `SELECT Id FROM <object> WHERE (<filter>) LIMIT 1` in both orgs), the
//! assigned parent account, and the remaining daily API calls.
//!
//! The decisions (what is wrong with a field, which hint to give) are pure functions over a
//! describe, unit-tested here; [`run`] is the I/O around them. Every line names its org.

use std::io::Write;

use crate::config::{AccountPolicy, OrgSettings, Settings};
use crate::salesforce::{Client, ClientOptions, Cond, Literal, ObjectDescribe, Soql};

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Info,
    Problem,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub message: String,
}

impl Finding {
    fn ok(message: impl Into<String>) -> Self {
        Finding {
            level: Level::Ok,
            message: message.into(),
        }
    }
    fn info(message: impl Into<String>) -> Self {
        Finding {
            level: Level::Info,
            message: message.into(),
        }
    }
    fn problem(message: impl Into<String>) -> Self {
        Finding {
            level: Level::Problem,
            message: message.into(),
        }
    }
}

/// What orgsync needs to do with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Need {
    pub create: bool,
    pub update: bool,
    pub external_id: bool,
}

/// Problems of one field in one describe (empty when all is well). Pure.
pub fn field_problems(describe: &ObjectDescribe, field: &str, need: Need) -> Vec<String> {
    let object = &describe.name;
    let Some(f) = describe.field(field) else {
        return vec![format!(
            "field {field} does not exist on {object}, or field-level security hides it from \
             the integration user{}",
            missing_field_hint(describe, field)
        )];
    };
    let mut problems = Vec::new();
    if need.create && !f.createable {
        problems.push(format!(
            "field {object}.{} is not createable by the integration user",
            f.name
        ));
    }
    if need.update && !f.updateable {
        problems.push(format!(
            "field {object}.{} is not updateable by the integration user",
            f.name
        ));
    }
    if need.external_id && !f.external_id {
        problems.push(format!(
            "field {object}.{} is not an External ID field (tick \"External ID\" in its \
             definition)",
            f.name
        ));
    }
    problems
}

/// Problems of `account.sync_policy = "syncAccount"` in an org's Account describe: parents
/// are looked up by Name (query) and created when missing, from `account.fields`, so the
/// integration user must be able to query and create Accounts and set every one of those
/// fields. Accounts are never updated, so updateability does not matter. Pure.
pub fn account_problems(describe: &ObjectDescribe, fields: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for (allowed, what) in [
        (describe.queryable, "queried (parents are found by Name)"),
        (describe.createable, "created (missing parents are created)"),
    ] {
        if !allowed {
            problems.push(format!(
                "Account records cannot be {what} by the integration user (object permissions)"
            ));
        }
    }
    for f in fields {
        let need = Need {
            create: !f.eq_ignore_ascii_case("Id"),
            update: false,
            external_id: false,
        };
        problems.extend(field_problems(describe, f, need));
    }
    problems
}

/// A hint for a field name that is not in the describe.
pub fn missing_field_hint(describe: &ObjectDescribe, field: &str) -> String {
    let custom = format!("{field}__c");
    if let Some(f) = describe.field(&custom) {
        return format!(
            ": did you mean {}? Custom fields' API names end in __c",
            f.name
        );
    }
    let squash = |s: &str| {
        s.trim_end_matches("__c")
            .replace('_', "")
            .to_ascii_lowercase()
    };
    let wanted = squash(field);
    let best = describe
        .fields
        .iter()
        .map(|f| (strsim::levenshtein(&wanted, &squash(&f.name)), &f.name))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d);
    if let Some((_, name)) = best {
        return format!(": did you mean {name}?");
    }
    if field.ends_with("__c") {
        String::new()
    } else {
        ". If it is a custom field, be sure to append '__c' to its name".to_string()
    }
}

/// Runs every check and writes the report to `out`. `Ok(true)` only when all is well;
/// `Err` only when `out` cannot be written.
pub async fn run(settings: &Settings, out: &mut impl Write) -> anyhow::Result<bool> {
    run_with(settings, ClientOptions::for_settings(settings), out).await
}

/// [`run`] with client options (tests use short retry delays).
pub async fn run_with(
    settings: &Settings,
    options: ClientOptions,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut all_well = true;
    for (org, is_b) in [(&settings.a, false), (&settings.b, true)] {
        writeln!(
            out,
            "org {} ({} via {}, {}):",
            org.name,
            org.login_name(),
            org.auth().as_str(),
            org.login_url
        )?;
        let findings = check_org(settings, org, is_b, options.clone()).await;
        for f in &findings {
            let tag = match f.level {
                Level::Ok => "ok     ",
                Level::Info => "info   ",
                Level::Problem => "PROBLEM",
            };
            writeln!(out, "  {tag} {}", f.message)?;
            if f.level == Level::Problem {
                all_well = false;
            }
        }
    }
    if all_well {
        writeln!(out, "all checks passed")?;
    } else {
        writeln!(
            out,
            "problems found: fix them before running orgsync (see PROBLEM lines above)"
        )?;
    }
    Ok(all_well)
}

/// Every check of one org, as findings.
async fn check_org(
    settings: &Settings,
    org: &OrgSettings,
    is_b: bool,
    options: ClientOptions,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let client = match Client::with_options(org, options) {
        Ok(c) => c,
        Err(e) => return vec![Finding::problem(e.to_string())],
    };
    match client.login().await {
        Ok(identity) => {
            findings.push(Finding::ok(format!(
                "logged in at {} (user {}, org {})",
                identity.instance_url,
                identity.user_id.as_deref().unwrap_or("unknown"),
                identity.org_id.as_deref().unwrap_or("unknown"),
            )));
            if let (Some(configured), Some(actual)) =
                (&org.integration_user_id, identity.user_id.as_deref())
                && !same_id(configured, actual)
            {
                findings.push(Finding::info(format!(
                    "integration_user_id {configured} is not the logged-in user {actual}: \
                     changes made by {actual} will be read back as edits"
                )));
            }
        }
        Err(e) => {
            findings.push(Finding::problem(format!("login failed: {e}")));
            return findings;
        }
    }

    let name_in_org = |a_name: &str| -> String {
        if is_b {
            settings.sync.b_field_name(a_name).to_string()
        } else {
            a_name.to_string()
        }
    };

    let object = &settings.sync.object;
    match client.describe(object).await {
        Err(e) => findings.push(Finding::problem(format!("cannot describe {object}: {e}"))),
        Ok(describe) => {
            let mut problems_found = 0;
            for (allowed, what) in [
                (describe.queryable, "queried"),
                (describe.createable, "created"),
                (describe.updateable, "updated"),
            ] {
                if !allowed {
                    problems_found += 1;
                    findings.push(Finding::problem(format!(
                        "{object} records cannot be {what} by the integration user (object \
                         permissions)"
                    )));
                }
            }
            let mut check = |field: &str, need: Need, findings: &mut Vec<Finding>| {
                for p in field_problems(&describe, field, need) {
                    problems_found += 1;
                    findings.push(Finding::problem(p));
                }
            };
            let write = Need {
                create: true,
                update: true,
                external_id: false,
            };
            for f in &settings.sync.fields {
                check(&name_in_org(f), write, &mut findings);
            }
            for f in &settings.sync.match_by {
                let name = name_in_org(f);
                if !settings
                    .sync
                    .fields
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(f))
                {
                    check(&name, Need::default(), &mut findings);
                }
            }
            if let Some(ext) = &settings.sync.external_id_field {
                check(
                    &name_in_org(ext),
                    Need {
                        create: true,
                        update: false,
                        external_id: true,
                    },
                    &mut findings,
                );
            }
            match settings.account.sync_policy {
                AccountPolicy::None => {}
                // Set on creates only.
                AccountPolicy::Assign => check(
                    "AccountId",
                    Need {
                        create: true,
                        update: false,
                        external_id: false,
                    },
                    &mut findings,
                ),
                // Set on creates, changed on updates when the parent changes.
                AccountPolicy::SyncAccount => check("AccountId", write, &mut findings),
            }
            if problems_found == 0 {
                findings.push(Finding::ok(format!(
                    "{object}: all {} configured fields exist and are readable, createable and \
                     updateable",
                    settings.sync.fields.len()
                )));
            }
        }
    }

    match settings.account.sync_policy {
        AccountPolicy::None => {}
        AccountPolicy::SyncAccount => match client.describe("Account").await {
            Err(e) => findings.push(Finding::problem(format!("cannot describe Account: {e}"))),
            Ok(describe) => {
                let problems = account_problems(&describe, &settings.account.fields);
                if problems.is_empty() {
                    findings.push(Finding::ok(format!(
                        "Account: can be queried and created; fields {} exist and are createable",
                        settings.account.fields.join(", ")
                    )));
                }
                findings.extend(problems.into_iter().map(Finding::problem));
            }
        },
        AccountPolicy::Assign => match &org.account_id {
            None => findings.push(Finding::problem(
                "account.sync_policy is \"assign\" but account_id is not set",
            )),
            Some(id) => {
                let soql = Soql::select(["Id"])
                    .from("Account")
                    .where_(Cond::eq("Id", Literal::str(id.clone())))
                    .limit(1)
                    .build();
                match soql {
                    Err(e) => findings.push(Finding::problem(format!("account_id {id}: {e}"))),
                    Ok(soql) => match client.query_collect(&soql).await {
                        Ok(rows) if !rows.is_empty() => {
                            findings.push(Finding::ok(format!("account {id} exists")))
                        }
                        Ok(_) => findings.push(Finding::problem(format!(
                            "account_id {id}: no such Account (or the integration user cannot \
                             see it)"
                        ))),
                        Err(e)
                            if e.code == "INVALID_QUERY_FILTER_OPERATOR"
                                || e.code == "MALFORMED_ID" =>
                        {
                            findings.push(Finding::problem(format!(
                                "account_id {id} is not a valid Account id in org {}: {}",
                                org.name, e.message
                            )))
                        }
                        Err(e) => findings.push(Finding::problem(format!("account_id {id}: {e}"))),
                    },
                }
            }
        },
    }

    if let Some(filter) = &settings.sync.filter {
        let soql = Soql::select(["Id"])
            .from(object.clone())
            .where_(Cond::raw(filter.clone()))
            .limit(1)
            .build();
        match soql {
            Err(e) => findings.push(Finding::problem(format!("filter {filter:?}: {e}"))),
            Ok(soql) => match client.query_first(&soql, false, None).await {
                Ok(_) => findings.push(Finding::ok(format!("filter {filter:?} runs"))),
                Err(e) => findings.push(Finding::problem(format!(
                    "filter {filter:?} does not run: {}: {}",
                    e.code, e.message
                ))),
            },
        }
    }

    match client.limits().await {
        Ok(limits) => match limits.daily_api_requests {
            Some((remaining, max)) => findings.push(Finding::info(format!(
                "daily API calls: {remaining} of {max} remaining"
            ))),
            None => findings.push(Finding::info("daily API calls: not reported by the org")),
        },
        Err(e) => findings.push(Finding::info(format!(
            "daily API calls: cannot read limits: {e}"
        ))),
    }
    findings
}

/// Ids compare on their case-sensitive 15-character form.
fn same_id(a: &str, b: &str) -> bool {
    let short = |s: &str| s.get(..15).unwrap_or(s).to_string();
    short(a) == short(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe() -> ObjectDescribe {
        serde_json::from_value(serde_json::json!({
            "name": "Opportunity",
            "fields": [
                {"name": "Name", "type": "string", "createable": true, "updateable": true},
                {"name": "Amount", "type": "currency", "createable": true, "updateable": true},
                {"name": "Region__c", "type": "string", "createable": true, "updateable": true},
                {"name": "Ext_Id__c", "type": "string", "createable": true, "updateable": true, "externalId": true},
                {"name": "ExpectedRevenue", "type": "currency", "createable": false, "updateable": false},
            ]
        }))
        .unwrap()
    }

    #[test]
    fn fields_that_are_fine() {
        let need = Need {
            create: true,
            update: true,
            external_id: false,
        };
        assert!(field_problems(&describe(), "Name", need).is_empty());
        assert!(field_problems(&describe(), "amount", need).is_empty());
        let ext = Need {
            external_id: true,
            ..need
        };
        assert!(field_problems(&describe(), "Ext_Id__c", ext).is_empty());
    }

    #[test]
    fn missing_fields_get_hints() {
        let need = Need::default();
        let p = field_problems(&describe(), "Region", need);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("did you mean Region__c?"), "{}", p[0]);
        let p = field_problems(&describe(), "Amout", need);
        assert!(p[0].contains("did you mean Amount?"), "{}", p[0]);
        let p = field_problems(&describe(), "Zebra", need);
        assert!(p[0].contains("append '__c'"), "{}", p[0]);
        let p = field_problems(&describe(), "Zebra__c", need);
        assert!(!p[0].contains("__c'"), "{}", p[0]);
    }

    #[test]
    fn read_only_and_non_external_fields() {
        let need = Need {
            create: true,
            update: true,
            external_id: true,
        };
        let p = field_problems(&describe(), "ExpectedRevenue", need);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("not createable"));
        assert!(p[1].contains("not updateable"));
        assert!(p[2].contains("External ID"));
    }

    #[test]
    fn account_fields_must_exist_and_be_createable() {
        let account = |createable: bool| -> ObjectDescribe {
            serde_json::from_value(serde_json::json!({
                "name": "Account",
                "createable": createable,
                "fields": [
                    {"name": "Id", "type": "id", "createable": false, "updateable": false},
                    {"name": "Name", "type": "string", "createable": true, "updateable": true},
                    {"name": "Industry", "type": "picklist", "createable": true, "updateable": true},
                    {"name": "AnnualRevenue", "type": "currency", "createable": false, "updateable": false},
                ]
            }))
            .unwrap()
        };
        let fields = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(account_problems(&account(true), &fields(&["Id", "Name", "industry"])).is_empty());
        let p = account_problems(
            &account(true),
            &fields(&["Name", "AnnualRevenue", "Industri"]),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("Account.AnnualRevenue is not createable"),
            "{}",
            p[0]
        );
        assert!(p[1].contains("did you mean Industry?"), "{}", p[1]);
        let p = account_problems(&account(false), &fields(&["Name"]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("cannot be created"), "{}", p[0]);
    }

    #[test]
    fn ids_compare_on_fifteen_characters() {
        assert!(same_id("005000000000001", "005000000000001AAA"));
        assert!(!same_id("005000000000001", "005000000000002AAA"));
    }
}
