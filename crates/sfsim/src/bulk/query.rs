//! Bulk query jobs' SOQL: what Bulk API 2.0 refuses (OFFSET, aggregates such as COUNT(),
//! GROUP BY, TYPEOF, parent-to-child subqueries), the CSV columns of a query (the SELECT
//! list in order, parent fields as dotted `Account.Name`), and one REST-shaped row flattened
//! into those columns.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::error::ApiError;
use crate::schema::{FieldType, Schema};
use crate::soql::ast::SelectItem;

/// One CSV column of a query's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Canonical dotted name: `Name`, `Account.Name`.
    pub name: String,
    pub field_type: FieldType,
}

fn unsupported(message: &str) -> ApiError {
    ApiError::new(400, "API_ERROR", message)
}

/// Whether `soql` has the keyword sequence `words` outside string literals (case-insensitive).
fn has_keywords(soql: &str, words: &[&str]) -> bool {
    let mut tokens = Vec::new();
    let mut in_string = false;
    let mut current = String::new();
    let mut chars = soql.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            if c == '\\' {
                chars.next();
            } else if c == '\'' {
                in_string = false;
            }
            continue;
        }
        if c == '\'' {
            in_string = true;
        }
        if c.is_alphanumeric() || c == '_' {
            current.push(c.to_ascii_uppercase());
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if c == '(' {
                tokens.push("(".into());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
        .windows(words.len())
        .any(|w| w.iter().zip(words).all(|(a, b)| a == b))
}

/// Checks a Bulk query and returns its result columns. SOQL errors are the REST API's
/// (`MALFORMED_QUERY`, `INVALID_FIELD`, ...); what Bulk alone refuses is `API_ERROR`.
pub fn check(soql: &str, schema: &Schema, now: DateTime<Utc>) -> Result<Vec<Column>, ApiError> {
    if soql.trim().is_empty() {
        return Err(ApiError::malformed_query("The query is empty"));
    }
    if has_keywords(soql, &["GROUP", "BY"]) {
        return Err(unsupported("GROUP BY is not supported by the Bulk API"));
    }
    if has_keywords(soql, &["TYPEOF"]) {
        return Err(unsupported("TYPEOF is not supported by the Bulk API"));
    }
    if has_keywords(soql, &["(", "SELECT"]) {
        return Err(unsupported(
            "Parent-to-child relationship subqueries are not supported by the Bulk API",
        ));
    }
    let parsed = crate::soql::parse(soql)?;
    if parsed.offset.is_some() {
        return Err(unsupported("OFFSET is not supported by the Bulk API"));
    }
    if parsed.select.iter().any(|s| matches!(s, SelectItem::Count)) {
        return Err(unsupported(
            "Aggregate queries such as COUNT() are not supported by the Bulk API",
        ));
    }
    let plan = crate::soql::plan(&parsed, schema, now)?;
    Ok(plan
        .select
        .iter()
        .map(|p| Column {
            name: p.dotted(),
            field_type: p.field_type,
        })
        .collect())
}

/// One REST-shaped record as CSV cells: a missing parent or a null is an empty cell; a
/// datetime is written `2024-03-10T10:00:00.000Z`.
pub fn flatten(record: &Json, columns: &[Column]) -> Vec<String> {
    columns
        .iter()
        .map(|c| {
            let mut v = record;
            for part in c.name.split('.') {
                v = match v.get(part) {
                    Some(x) => x,
                    None => &Json::Null,
                };
            }
            cell(v, c.field_type)
        })
        .collect()
}

fn cell(v: &Json, t: FieldType) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) if t == FieldType::DateTime => match s.strip_suffix("+0000") {
            Some(head) => format!("{head}Z"),
            None => s.clone(),
        },
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn columns_follow_the_select_list() {
        let s = Schema::standard();
        let cols = check(
            "SELECT name, Account.name, SystemModstamp FROM Opportunity",
            &s,
            now(),
        )
        .expect("ok");
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Name", "Account.Name", "SystemModstamp"]);
    }

    #[test]
    fn bulk_restrictions_are_errors() {
        let s = Schema::standard();
        for q in [
            "SELECT Id FROM Opportunity LIMIT 5 OFFSET 2",
            "SELECT COUNT() FROM Opportunity",
            "SELECT StageName FROM Opportunity GROUP BY StageName",
            "SELECT TYPEOF Owner WHEN User THEN Name END FROM Opportunity",
            "SELECT Id, (SELECT Id FROM Opportunities) FROM Account",
        ] {
            let e = check(q, &s, now()).expect_err(q);
            assert_eq!(e.error_code, "API_ERROR", "{q}: {}", e.message);
        }
        // Keywords inside a string literal are data.
        check(
            "SELECT Id FROM Opportunity WHERE Name = 'GROUP BY (SELECT'",
            &s,
            now(),
        )
        .expect("literal");
        assert_eq!(
            check("SELECT Nope FROM Opportunity", &s, now())
                .expect_err("field")
                .error_code,
            "INVALID_FIELD"
        );
    }

    #[test]
    fn rows_flatten_to_cells() {
        let cols = vec![
            Column {
                name: "Name".into(),
                field_type: FieldType::String,
            },
            Column {
                name: "Account.Name".into(),
                field_type: FieldType::String,
            },
            Column {
                name: "Amount".into(),
                field_type: FieldType::Currency,
            },
            Column {
                name: "SystemModstamp".into(),
                field_type: FieldType::DateTime,
            },
        ];
        let row = json!({"Name": "x", "Account": null, "Amount": 10.5,
            "SystemModstamp": "2024-03-10T10:00:00.000+0000"});
        assert_eq!(
            flatten(&row, &cols),
            ["x", "", "10.5", "2024-03-10T10:00:00.000Z"]
        );
        let with_parent = json!({"Name": "y", "Account": {"Name": "Acme"}, "Amount": null});
        assert_eq!(flatten(&with_parent, &cols)[1], "Acme");
        assert_eq!(flatten(&with_parent, &cols)[2], "");
    }
}
