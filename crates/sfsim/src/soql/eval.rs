//! Evaluates a [`Plan`] over any record store: WHERE matching (with SOQL's null rules), ORDER BY
//! comparison, and rendering a row in the REST shape. The store is reached through
//! [`RecordAccess`], so this module does no I/O and is tested with a tiny in-memory store.
//!
//! Null rules, as SOQL applies them: `= null` / `!= null` test for null; `!=` a value, and
//! `NOT IN`, are true for a null field; `<`, `>`, `IN`, `LIKE` are false for it.

use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

use crate::schema::Schema;
use crate::value::{Value, cmp_values, eq_values};

use super::ast::CmpOp;
use super::lexer::LikePart;
use super::plan::{ChildPlan, FieldPath, Filter, Operand, OrderKey, Plan};

static NULL: Value = Value::Null;

/// Read access to records, as the evaluator needs it.
pub trait RecordAccess {
    /// A cheap handle on one record.
    type Row: Copy;
    /// The value at a field position of a record (Null past the end of its values).
    fn value(&self, row: Self::Row, field: usize) -> &Value;
    /// The live record a reference field of `row` points to, if it is of object `object`.
    fn parent(&self, row: Self::Row, ref_field: usize, object: usize) -> Option<Self::Row>;
    /// The live records of `object` whose reference field `ref_field` points to `row`, in Id
    /// order.
    fn children(&self, row: Self::Row, object: usize, ref_field: usize) -> Vec<Self::Row>;
}

/// The record at the end of a path's relationships, if every lookup is filled.
pub fn follow<A: RecordAccess>(acc: &A, row: A::Row, path: &FieldPath) -> Option<A::Row> {
    let mut r = row;
    for (i, hop) in path.hops.iter().enumerate() {
        r = acc.parent(r, *hop, path.objects[i + 1])?;
    }
    Some(r)
}

/// A path's value for a row: Null when a lookup on the way is empty.
pub fn path_value<'a, A: RecordAccess>(acc: &'a A, row: A::Row, path: &FieldPath) -> &'a Value {
    match follow(acc, row, path) {
        Some(r) => acc.value(r, path.field),
        None => &NULL,
    }
}

/// Whether a row satisfies a filter.
pub fn matches<A: RecordAccess>(acc: &A, row: A::Row, filter: &Filter) -> bool {
    match filter {
        Filter::And(terms) => terms.iter().all(|t| matches(acc, row, t)),
        Filter::Or(terms) => terms.iter().any(|t| matches(acc, row, t)),
        Filter::Not(inner) => !matches(acc, row, inner),
        Filter::Compare { path, op, operand } => {
            compare(path, path_value(acc, row, path), *op, operand)
        }
        Filter::In {
            path,
            negated,
            operands,
        } => {
            let v = path_value(acc, row, path);
            let found = operands.iter().any(|o| compare(path, v, CmpOp::Eq, o));
            found != *negated
        }
        Filter::Like { path, pattern } => match path_value(acc, row, path) {
            Value::Str(s) => like(s, pattern),
            _ => false,
        },
    }
}

/// One comparison under SOQL's null rules.
pub fn compare(path: &FieldPath, v: &Value, op: CmpOp, operand: &Operand) -> bool {
    let t = path.field_type;
    match operand {
        Operand::Null => match op {
            CmpOp::Eq => v.is_null(),
            CmpOp::Ne => !v.is_null(),
            _ => false,
        },
        _ if v.is_null() => op == CmpOp::Ne,
        Operand::Value(x) => match op {
            CmpOp::Eq => eq_values(t, v, x),
            CmpOp::Ne => !eq_values(t, v, x),
            CmpOp::Lt => cmp_values(t, v, x) == Ordering::Less,
            CmpOp::Le => cmp_values(t, v, x) != Ordering::Greater,
            CmpOp::Gt => cmp_values(t, v, x) == Ordering::Greater,
            CmpOp::Ge => cmp_values(t, v, x) != Ordering::Less,
        },
        Operand::Range(lo, hi) => {
            let at_or_after_lo = cmp_values(t, v, lo) != Ordering::Less;
            let before_hi = cmp_values(t, v, hi) == Ordering::Less;
            match op {
                CmpOp::Eq => at_or_after_lo && before_hi,
                CmpOp::Ne => !(at_or_after_lo && before_hi),
                CmpOp::Lt => !at_or_after_lo,
                CmpOp::Le => before_hi,
                CmpOp::Gt => !before_hi,
                CmpOp::Ge => at_or_after_lo,
            }
        }
    }
}

/// Case-insensitive LIKE with `%` (any run) and `_` (one character).
pub fn like(s: &str, pattern: &[LikePart]) -> bool {
    let text: Vec<char> = s.chars().flat_map(char::to_lowercase).collect();
    let pat: Vec<LikePart> = pattern
        .iter()
        .flat_map(|p| match p {
            LikePart::Char(c) => c.to_lowercase().map(LikePart::Char).collect::<Vec<_>>(),
            other => vec![other.clone()],
        })
        .collect();
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(LikePart::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(LikePart::One) => {
                t += 1;
                p += 1;
            }
            Some(LikePart::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|x| *x == LikePart::Any)
}

/// Orders two rows by the ORDER BY keys (Equal when there are none).
pub fn compare_rows<A: RecordAccess>(
    acc: &A,
    a: A::Row,
    b: A::Row,
    order: &[OrderKey],
) -> Ordering {
    for key in order {
        let va = path_value(acc, a, &key.path);
        let vb = path_value(acc, b, &key.path);
        let o = match (va.is_null(), vb.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if key.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if key.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = cmp_values(key.path.field_type, va, vb);
                if key.descending { o.reverse() } else { o }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// `{"type": ..., "url": "/services/data/vNN.0/sobjects/Type/Id"}`.
pub fn attributes(object: &str, id: &str, api_version: &str) -> Json {
    let mut m = Map::with_capacity(2);
    m.insert("type".into(), Json::String(object.to_string()));
    let mut url = String::with_capacity(40 + api_version.len() + object.len() + id.len());
    url.push_str("/services/data/v");
    url.push_str(api_version);
    url.push_str("/sobjects/");
    url.push_str(object);
    url.push('/');
    url.push_str(id);
    m.insert("url".into(), Json::String(url));
    Json::Object(m)
}

fn record_header<A: RecordAccess>(
    acc: &A,
    schema: &Schema,
    row: A::Row,
    object: usize,
    api_version: &str,
    capacity: usize,
) -> Map<String, Json> {
    let obj = &schema.objects[object];
    let id = acc.value(row, obj.system.id).as_str().unwrap_or_default();
    let mut m = Map::with_capacity(capacity);
    m.insert("attributes".into(), attributes(&obj.name, id, api_version));
    m
}

/// A row in the REST query shape: `attributes` and the selected fields, parent relationships
/// as nested objects with their own `attributes`, or `null` when empty. Key order follows
/// serde_json's map (sorted): JSON clients do not depend on it, and enabling serde_json's
/// `preserve_order` here would change map order for the whole workspace, but only in builds
/// that include sfsim (tests), so the daemon would behave differently under test.
pub fn render<A: RecordAccess>(
    acc: &A,
    schema: &Schema,
    plan: &Plan,
    row: A::Row,
    api_version: &str,
) -> Json {
    let mut root = record_header(
        acc,
        schema,
        row,
        plan.object,
        api_version,
        plan.select.len() + 1,
    );
    for path in &plan.select {
        insert_path(acc, schema, &mut root, row, path, 0, api_version);
    }
    for child in &plan.children {
        root.insert(
            child.name.clone(),
            render_children(acc, schema, child, row, api_version),
        );
    }
    Json::Object(root)
}

/// A subquery's result for one parent row: `{"totalSize","done":true,"records"}`, or `null`
/// when no child matches (as Salesforce answers).
fn render_children<A: RecordAccess>(
    acc: &A,
    schema: &Schema,
    child: &ChildPlan,
    row: A::Row,
    api_version: &str,
) -> Json {
    let plan = &child.plan;
    let mut rows: Vec<A::Row> = acc
        .children(row, plan.object, child.ref_field)
        .into_iter()
        .filter(|r| plan.filter.as_ref().is_none_or(|f| matches(acc, *r, f)))
        .collect();
    if !plan.order.is_empty() {
        rows.sort_by(|a, b| compare_rows(acc, *a, *b, &plan.order));
    }
    let rows: Vec<A::Row> = rows
        .into_iter()
        .skip(plan.offset)
        .take(plan.limit.unwrap_or(usize::MAX))
        .collect();
    if rows.is_empty() {
        return Json::Null;
    }
    let records: Vec<Json> = rows
        .iter()
        .map(|r| render(acc, schema, plan, *r, api_version))
        .collect();
    serde_json::json!({"totalSize": records.len(), "done": true, "records": records})
}

fn insert_path<A: RecordAccess>(
    acc: &A,
    schema: &Schema,
    map: &mut Map<String, Json>,
    row: A::Row,
    path: &FieldPath,
    level: usize,
    api_version: &str,
) {
    if level == path.hops.len() {
        let name = path.names[level].clone();
        map.insert(name, acc.value(row, path.field).to_json());
        return;
    }
    let rel = &path.names[level];
    let parent = acc.parent(row, path.hops[level], path.objects[level + 1]);
    match parent {
        None => {
            map.insert(rel.clone(), Json::Null);
        }
        Some(p) => {
            if !map.get(rel).is_some_and(Json::is_object) {
                let header = record_header(acc, schema, p, path.objects[level + 1], api_version, 4);
                map.insert(rel.clone(), Json::Object(header));
            }
            if let Some(Json::Object(child)) = map.get_mut(rel) {
                insert_path(acc, schema, child, p, path, level + 1, api_version);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soql::{parse, plan::plan};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    /// Records as (object, values); references hold the index of the parent as an id string.
    struct Store {
        schema: Schema,
        rows: Vec<(usize, Vec<Value>)>,
    }

    impl RecordAccess for Store {
        type Row = usize;
        fn value(&self, row: usize, field: usize) -> &Value {
            self.rows[row].1.get(field).unwrap_or(&NULL)
        }
        fn parent(&self, row: usize, ref_field: usize, object: usize) -> Option<usize> {
            let id = self.value(row, ref_field).as_str()?;
            self.rows
                .iter()
                .position(|(o, v)| *o == object && v.first().and_then(Value::as_str) == Some(id))
        }
        fn children(&self, row: usize, object: usize, ref_field: usize) -> Vec<usize> {
            let id = self.value(row, 0).as_str();
            (0..self.rows.len())
                .filter(|r| self.rows[*r].0 == object && self.value(*r, ref_field).as_str() == id)
                .collect()
        }
    }

    fn store() -> Store {
        let schema = Schema::standard();
        let acc = schema.object_index("Account").expect("Account");
        let opp = schema.object_index("Opportunity").expect("Opportunity");
        let mut rows = Vec::new();
        let mut put = |object: usize, fields: &[(&str, Value)]| {
            let def = &schema.objects[object];
            let mut values = vec![Value::Null; def.fields.len()];
            for (name, v) in fields {
                values[def.field_index(name).expect("field")] = v.clone();
            }
            rows.push((object, values));
        };
        let s = |x: &str| Value::Str(x.to_string());
        put(acc, &[("Id", s("001000000000001AAA")), ("Name", s("Acme"))]);
        put(
            opp,
            &[
                ("Id", s("006000000000001AAA")),
                ("Name", s("Big deal")),
                ("Amount", Value::Num(9000.0)),
                ("AccountId", s("001000000000001AAA")),
            ],
        );
        put(
            opp,
            &[
                ("Id", s("006000000000002AAA")),
                ("Name", s("small deal")),
                ("Amount", Value::Num(100.0)),
            ],
        );
        put(
            opp,
            &[("Id", s("006000000000003AAA")), ("Name", s("O'Brien 50%"))],
        );
        Store { schema, rows }
    }

    fn run(st: &Store, soql: &str) -> Vec<Json> {
        let now = Utc
            .with_ymd_and_hms(2024, 3, 10, 12, 0, 0)
            .single()
            .expect("valid");
        let p = plan(&parse(soql).expect("parse"), &st.schema, now).expect("plan");
        let mut rows: Vec<usize> = (0..st.rows.len())
            .filter(|r| st.rows[*r].0 == p.object)
            .filter(|r| p.filter.as_ref().is_none_or(|f| matches(st, *r, f)))
            .collect();
        rows.sort_by(|a, b| compare_rows(st, *a, *b, &p.order));
        rows.into_iter()
            .map(|r| render(st, &st.schema, &p, r, "62.0"))
            .collect()
    }

    fn names(rows: &[Json]) -> Vec<String> {
        rows.iter()
            .map(|r| r["Name"].as_str().unwrap_or("<null>").to_string())
            .collect()
    }

    #[test]
    fn renders_parent_relationships_nested_or_null() {
        let st = store();
        let rows = run(
            &st,
            "SELECT Name, Account.Name, Account.Id FROM Opportunity ORDER BY Name",
        );
        assert_eq!(
            rows[0],
            json!({
                "attributes": {"type": "Opportunity", "url": "/services/data/v62.0/sobjects/Opportunity/006000000000001AAA"},
                "Name": "Big deal",
                "Account": {
                    "attributes": {"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001000000000001AAA"},
                    "Name": "Acme",
                    "Id": "001000000000001AAA"
                }
            })
        );
        assert_eq!(rows[1]["Account"], Json::Null);
        let mut keys: Vec<&String> = rows[0].as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["Account", "Name", "attributes"]);
    }

    #[test]
    fn filters_with_null_rules_and_case_insensitive_text() {
        let st = store();
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE Amount != 100 ORDER BY Name"
            )),
            ["Big deal", "O'Brien 50%"]
        );
        assert_eq!(
            names(&run(&st, "SELECT Name FROM Opportunity WHERE Amount > 50")).len(),
            2
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE Amount = null"
            )),
            ["O'Brien 50%"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE name = 'BIG DEAL'"
            )),
            ["Big deal"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE Name IN ('small deal', 'x')"
            )),
            ["small deal"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE Name NOT IN ('small deal') ORDER BY Name"
            )),
            ["Big deal", "O'Brien 50%"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE Account.Name = 'acme'"
            )),
            ["Big deal"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE Name = 'O\\'Brien 50%'"
            )),
            ["O'Brien 50%"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE NOT (Amount > 500 OR Amount = null)"
            )),
            ["small deal"]
        );
    }

    #[test]
    fn like_handles_wildcards_and_escapes() {
        let pat = |s: &str| match crate::soql::lexer::tokenize(s).expect("lex").remove(0).kind {
            crate::soql::lexer::TokenKind::Str { pattern, .. } => pattern,
            other => panic!("{other:?}"),
        };
        assert!(like("Big Deal", &pat("'big%'")));
        assert!(like("Big Deal", &pat("'%DEAL'")));
        assert!(like("Big Deal", &pat("'b_g d%l'")));
        assert!(!like("Big Deal", &pat("'b_g'")));
        assert!(like("50%", &pat("'50\\%'")));
        assert!(!like("50x", &pat("'50\\%'")));
        assert!(like("a_b", &pat("'a\\_b'")));
        assert!(!like("axb", &pat("'a\\_b'")));
        assert!(like("", &pat("'%'")));
        assert!(like("aXbXc", &pat("'%x%x%'")));
        let st = store();
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity WHERE Name LIKE '%deal' ORDER BY Name"
            )),
            ["Big deal", "small deal"]
        );
    }

    #[test]
    fn orders_with_nulls_first_or_last() {
        let st = store();
        assert_eq!(
            names(&run(&st, "SELECT Name FROM Opportunity ORDER BY Amount")),
            ["O'Brien 50%", "small deal", "Big deal"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity ORDER BY Amount DESC"
            )),
            ["Big deal", "small deal", "O'Brien 50%"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity ORDER BY Amount NULLS LAST"
            )),
            ["small deal", "Big deal", "O'Brien 50%"]
        );
        assert_eq!(
            names(&run(
                &st,
                "SELECT Name FROM Opportunity ORDER BY Amount DESC NULLS FIRST"
            )),
            ["O'Brien 50%", "Big deal", "small deal"]
        );
        assert_eq!(
            names(&run(&st, "SELECT Name FROM Opportunity ORDER BY Name")),
            ["Big deal", "O'Brien 50%", "small deal"]
        );
    }
}
