//! Ingest jobs' rows: checking an upload's header against the object, turning each CSV row
//! into the same DML operation a REST write would be (an empty cell leaves a field alone,
//! `#N/A` sets it to null, `Account.Ext__c` names a parent by external id), and the
//! `sf__Error` text of a failed row.

use serde_json::{Map, Value as Json};

use crate::db::DmlOp;
use crate::error::ItemError;
use crate::schema::ObjectDef;

/// The ingest operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Insert,
    Update,
    Upsert,
    Delete,
    HardDelete,
}

impl Operation {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "insert" => Operation::Insert,
            "update" => Operation::Update,
            "upsert" => Operation::Upsert,
            "delete" => Operation::Delete,
            "hardDelete" => Operation::HardDelete,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
            Operation::HardDelete => "hardDelete",
        }
    }
}

/// The text that sets a field to null in an upload.
pub const NULL_CELL: &str = "#N/A";

/// Checks an upload's header: every column a field of the object (or `Relationship.Field`),
/// `Id` for update and delete (and only `Id` for delete), the external id column for upsert.
/// The error is the job's `errorMessage`.
pub fn check_header(
    header: &[String],
    obj: &ObjectDef,
    op: Operation,
    ext_field: Option<&str>,
) -> Result<(), String> {
    for h in header {
        let known = match h.split_once('.') {
            Some((rel, _)) => obj.relationship_index(rel).is_some(),
            None => obj.field_index(h).is_some(),
        };
        if !known {
            return Err(format!("InvalidBatch : Field name not found : {h}"));
        }
    }
    let has = |name: &str| header.iter().any(|h| h.eq_ignore_ascii_case(name));
    match op {
        Operation::Update if !has("Id") => {
            Err("InvalidBatch : Field name not found : Id (required for update)".into())
        }
        Operation::Delete | Operation::HardDelete if header.len() != 1 || !has("Id") => {
            Err("InvalidBatch : A delete job's CSV must have only the Id column".into())
        }
        Operation::Upsert => match ext_field {
            Some(f) if has(f) => Ok(()),
            _ => Err(format!(
                "InvalidBatch : Field name not found : {} (the external id field of the job)",
                ext_field.unwrap_or_default()
            )),
        },
        _ => Ok(()),
    }
}

fn cell_json(cell: &str) -> Option<Json> {
    if cell.is_empty() {
        None
    } else if cell == NULL_CELL {
        Some(Json::Null)
    } else {
        Some(Json::String(cell.to_string()))
    }
}

/// The DML operation of one row, or the row's error. The row has the header's length.
pub fn row_op(
    header: &[String],
    row: &[String],
    object: &str,
    op: Operation,
    ext_field: Option<&str>,
) -> Result<DmlOp, ItemError> {
    let mut fields = Map::new();
    let mut id = None;
    for (h, cell) in header.iter().zip(row) {
        if h.eq_ignore_ascii_case("Id") {
            id = Some(cell.trim().to_string()).filter(|s| !s.is_empty());
            if (op == Operation::Insert || op == Operation::Upsert)
                && let Some(v) = cell_json(cell)
            {
                fields.insert("Id".into(), v);
            }
            continue;
        }
        let Some(value) = cell_json(cell) else {
            continue;
        };
        match h.split_once('.') {
            Some((rel, key)) => {
                let mut spec = Map::new();
                spec.insert(key.to_string(), value);
                fields.insert(rel.to_string(), Json::Object(spec));
            }
            None => {
                fields.insert(h.clone(), value);
            }
        }
    }
    let missing_id = || {
        ItemError::new(
            "MISSING_ARGUMENT",
            "Id not specified in an update call",
            vec!["Id".into()],
        )
    };
    Ok(match op {
        Operation::Insert => DmlOp::Create {
            object: object.to_string(),
            fields,
        },
        Operation::Update => DmlOp::Update {
            object: Some(object.to_string()),
            id: id.ok_or_else(missing_id)?,
            fields,
        },
        Operation::Upsert => {
            let ext = ext_field.unwrap_or("Id");
            let has_key = header
                .iter()
                .zip(row)
                .any(|(h, c)| h.eq_ignore_ascii_case(ext) && !c.is_empty() && c != NULL_CELL);
            if !has_key {
                return Err(ItemError::new(
                    "MISSING_ARGUMENT",
                    format!("{ext} not specified"),
                    vec![ext.to_string()],
                ));
            }
            if ext.eq_ignore_ascii_case("Id") {
                // Upsert on Id: an update of that record.
                fields.remove("Id");
                DmlOp::Update {
                    object: Some(object.to_string()),
                    id: id.ok_or_else(missing_id)?,
                    fields,
                }
            } else {
                DmlOp::Upsert {
                    object: object.to_string(),
                    ext_field: ext.to_string(),
                    fields,
                }
            }
        }
        Operation::Delete | Operation::HardDelete => DmlOp::Delete {
            id: id.ok_or_else(missing_id)?,
        },
    })
}

/// A failed row's `sf__Error`: `CODE:message:Field1,Field2 --`, errors one after another.
pub fn error_text(errors: &[ItemError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}:{}:{} --", e.status_code, e.message, e.fields.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn h(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn headers_are_checked_against_the_object() {
        let s = Schema::standard();
        let opp = s.object("Opportunity").expect("opp");
        check_header(&h(&["Name", "Account.Name"]), opp, Operation::Insert, None).expect("ok");
        let e = check_header(&h(&["Name", "Nope__c"]), opp, Operation::Insert, None)
            .expect_err("unknown");
        assert_eq!(e, "InvalidBatch : Field name not found : Nope__c");
        assert!(check_header(&h(&["Name"]), opp, Operation::Update, None).is_err());
        assert!(check_header(&h(&["Id", "Name"]), opp, Operation::Delete, None).is_err());
        check_header(&h(&["Id"]), opp, Operation::Delete, None).expect("delete");
        assert!(check_header(&h(&["Name"]), opp, Operation::Upsert, Some("Id")).is_err());
    }

    #[test]
    fn empty_leaves_alone_and_na_sets_null() {
        let header = h(&["Id", "Name", "Description", "Amount", "Account.Ext__c"]);
        let row = h(&["006000000000001AAA", "n", "", "#N/A", "A-1"]);
        let DmlOp::Update { id, fields, .. } =
            row_op(&header, &row, "Opportunity", Operation::Update, None).expect("op")
        else {
            panic!("not an update");
        };
        assert_eq!(id, "006000000000001AAA");
        assert_eq!(fields.get("Name"), Some(&Json::String("n".into())));
        assert!(!fields.contains_key("Description"));
        assert_eq!(fields.get("Amount"), Some(&Json::Null));
        assert_eq!(fields["Account"]["Ext__c"], "A-1");
        assert!(!fields.contains_key("Id"));
    }

    #[test]
    fn rows_without_their_key_fail() {
        let header = h(&["Id", "Name"]);
        let e = row_op(
            &header,
            &h(&["", "n"]),
            "Opportunity",
            Operation::Update,
            None,
        )
        .expect_err("no id");
        assert_eq!(e.status_code, "MISSING_ARGUMENT");
        let header = h(&["Ext__c", "Name"]);
        assert!(
            row_op(
                &header,
                &h(&["", "n"]),
                "Opportunity",
                Operation::Upsert,
                Some("Ext__c")
            )
            .is_err()
        );
        assert!(matches!(
            row_op(
                &header,
                &h(&["k", "n"]),
                "Opportunity",
                Operation::Upsert,
                Some("Ext__c")
            ),
            Ok(DmlOp::Upsert { .. })
        ));
        assert!(matches!(
            row_op(
                &h(&["Id"]),
                &h(&["x"]),
                "Opportunity",
                Operation::Delete,
                None
            ),
            Ok(DmlOp::Delete { .. })
        ));
    }

    #[test]
    fn error_text_has_salesforce_shape() {
        let e = ItemError::new(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Name]",
            vec!["Name".into()],
        );
        assert_eq!(
            error_text(&[e]),
            "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
        );
    }
}
