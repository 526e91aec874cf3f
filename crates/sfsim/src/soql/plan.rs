//! The planner: checks a parsed query against the schema and turns it into a [`Plan`] whose
//! fields are positions and whose literals are typed values, so evaluation does no name
//! lookups. Every error a real org gives for a well-formed but wrong query is raised here:
//! unknown object (`INVALID_TYPE`), unknown field or relationship (`INVALID_FIELD`), a literal
//! of the wrong type, a non-filterable field.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};

use crate::error::ApiError;
use crate::schema::{FieldType, Schema};
use crate::value::Value;

use super::ast::{CmpOp, Condition, DateLiteral, ForClause, Literal, Path, Query, SelectItem};
use super::lexer::LikePart;

/// Salesforce's largest OFFSET.
pub const MAX_OFFSET: u64 = 2000;

/// A field reached from the queried object, possibly through parent relationships.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    /// The reference field followed at each level (level 0 is the queried object).
    pub hops: Vec<usize>,
    /// The object at each level: `hops.len() + 1` entries.
    pub objects: Vec<usize>,
    /// The field's position on the last object.
    pub field: usize,
    pub field_type: FieldType,
    /// Canonical names: the relationship names, then the field name.
    pub names: Vec<String>,
}

impl FieldPath {
    /// The canonical dotted name, e.g. `Account.Name`.
    pub fn dotted(&self) -> String {
        self.names.join(".")
    }

    /// The object the field belongs to.
    pub fn last_object(&self) -> usize {
        self.objects.last().copied().unwrap_or(0)
    }
}

/// The right-hand side of a comparison, typed for its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Null,
    Value(Value),
    /// A relative date literal: `lo <= v < hi`.
    Range(Value, Value),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        path: FieldPath,
        op: CmpOp,
        operand: Operand,
    },
    In {
        path: FieldPath,
        negated: bool,
        operands: Vec<Operand>,
    },
    Like {
        path: FieldPath,
        pattern: Vec<LikePart>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub path: FieldPath,
    pub descending: bool,
    pub nulls_first: bool,
}

/// A checked query, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The queried object.
    pub object: usize,
    /// Selected fields, in the order written.
    pub select: Vec<FieldPath>,
    /// `SELECT COUNT()`: only the number of matching rows is wanted.
    pub count_only: bool,
    pub filter: Option<Filter>,
    pub order: Vec<OrderKey>,
    pub limit: Option<usize>,
    pub offset: usize,
    /// `FOR VIEW` / `FOR REFERENCE`.
    pub for_clause: Option<ForClause>,
    /// Parent-to-child subqueries, in the order written.
    pub children: Vec<ChildPlan>,
}

/// A parent-to-child subquery: the child rows whose `ref_field` holds the parent's id, run
/// through `plan` (its filter, order, limit and offset; `plan.object` is the child object).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildPlan {
    /// The relationship name as the reply keys it (`Contacts`).
    pub name: String,
    pub ref_field: usize,
    pub plan: Plan,
}

/// Plans a subquery of `parent`: its FROM is a child relationship name.
fn child_plan(
    schema: &Schema,
    parent: usize,
    inner: &Query,
    now: DateTime<Utc>,
) -> Result<ChildPlan, ApiError> {
    let parent_name = &schema.objects[parent].name;
    let (child, ref_field) = schema
        .child_relationship(parent_name, &inner.from)
        .ok_or_else(|| {
            ApiError::new(
                400,
                "INVALID_TYPE",
                format!(
                    "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                    inner.from
                ),
            )
        })?;
    if inner
        .select
        .iter()
        .any(|i| matches!(i, SelectItem::Subquery(_) | SelectItem::Count))
    {
        return Err(ApiError::malformed_query(
            "a subquery may select only fields of its child object",
        ));
    }
    let name = schema.objects[child].fields[ref_field]
        .child_relationship
        .clone()
        .unwrap_or_else(|| inner.from.clone());
    let mut q = inner.clone();
    q.from = schema.objects[child].name.clone();
    Ok(ChildPlan {
        name,
        ref_field,
        plan: plan(&q, schema, now)?,
    })
}

fn no_such_column(name: &str, entity: &str) -> ApiError {
    ApiError::invalid_field(format!(
        "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    ))
}

fn no_such_relationship(name: &str) -> ApiError {
    ApiError::invalid_field(format!(
        "Didn't understand relationship '{name}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
    ))
}

/// `INVALID_TYPE` for an object the org does not have.
pub fn unsupported_object(name: &str) -> ApiError {
    ApiError::new(
        400,
        "INVALID_TYPE",
        format!(
            "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

/// Checks a parsed query against the schema. `now` anchors TODAY and LAST_N_DAYS.
pub fn plan(query: &Query, schema: &Schema, now: DateTime<Utc>) -> Result<Plan, ApiError> {
    let object = schema
        .object_index(&query.from)
        .ok_or_else(|| unsupported_object(&query.from))?;
    let count_only = query.select.contains(&SelectItem::Count);
    if count_only && query.select.len() > 1 {
        return Err(ApiError::malformed_query(
            "COUNT() must be the only element in the SELECT list",
        ));
    }
    let mut select: Vec<FieldPath> = Vec::new();
    let mut children: Vec<ChildPlan> = Vec::new();
    for item in &query.select {
        if let SelectItem::Subquery(inner) = item {
            children.push(child_plan(schema, object, inner, now)?);
        }
        if let SelectItem::Field(p) = item {
            let fp = resolve(schema, object, p)?;
            if select
                .iter()
                .any(|s| s.dotted().eq_ignore_ascii_case(&fp.dotted()))
            {
                return Err(ApiError::malformed_query(format!(
                    "duplicate field selected: {}",
                    p.dotted()
                )));
            }
            select.push(fp);
        }
    }
    let filter = match &query.where_clause {
        Some(c) => Some(bind_condition(schema, object, c, now)?),
        None => None,
    };
    let mut order = Vec::new();
    for item in &query.order_by {
        let path = resolve(schema, object, &item.path)?;
        if path.field_type == FieldType::Textarea {
            return Err(ApiError::invalid_field(format!(
                "field '{}' can not be sorted in a query call",
                path.dotted()
            )));
        }
        order.push(OrderKey {
            path,
            descending: item.descending,
            nulls_first: item.nulls_first(),
        });
    }
    if let Some(off) = query.offset
        && off > MAX_OFFSET
    {
        return Err(ApiError::new(
            400,
            "NUMBER_OUTSIDE_VALID_RANGE",
            format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
        ));
    }
    Ok(Plan {
        object,
        select,
        count_only,
        filter,
        order,
        limit: query
            .limit
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        offset: query.offset.unwrap_or(0) as usize,
        for_clause: query.for_clause,
        children,
    })
}

/// Resolves a dotted path against the schema, starting at `object`.
pub fn resolve(schema: &Schema, object: usize, path: &Path) -> Result<FieldPath, ApiError> {
    let mut parts: &[String] = &path.0;
    // `SELECT Opportunity.Name FROM Opportunity` names the queried object first.
    if parts.len() > 1
        && parts[0].eq_ignore_ascii_case(&schema.objects[object].name)
        && schema.objects[object]
            .relationship_index(&parts[0])
            .is_none()
    {
        parts = &parts[1..];
    }
    let mut objects = vec![object];
    let mut hops = Vec::new();
    let mut names = Vec::new();
    let mut current = object;
    let (last, rels) = parts
        .split_last()
        .ok_or_else(|| ApiError::malformed_query("unexpected token: '<EOF>'"))?;
    for rel in rels {
        let obj = &schema.objects[current];
        let fi = obj
            .relationship_index(rel)
            .ok_or_else(|| no_such_relationship(rel))?;
        let f = &obj.fields[fi];
        let target = f
            .reference_to
            .as_deref()
            .and_then(|t| schema.object_index(t))
            .ok_or_else(|| no_such_relationship(rel))?;
        names.push(f.relationship_name.clone().unwrap_or_else(|| rel.clone()));
        hops.push(fi);
        objects.push(target);
        current = target;
    }
    let obj = &schema.objects[current];
    let field = obj
        .field_index(last)
        .ok_or_else(|| no_such_column(last, &obj.name))?;
    let def = &obj.fields[field];
    names.push(def.name.clone());
    Ok(FieldPath {
        hops,
        objects,
        field,
        field_type: def.field_type,
        names,
    })
}

fn bind_condition(
    schema: &Schema,
    object: usize,
    c: &Condition,
    now: DateTime<Utc>,
) -> Result<Filter, ApiError> {
    Ok(match c {
        Condition::And(terms) => Filter::And(
            terms
                .iter()
                .map(|t| bind_condition(schema, object, t, now))
                .collect::<Result<_, _>>()?,
        ),
        Condition::Or(terms) => Filter::Or(
            terms
                .iter()
                .map(|t| bind_condition(schema, object, t, now))
                .collect::<Result<_, _>>()?,
        ),
        Condition::Not(inner) => Filter::Not(Box::new(bind_condition(schema, object, inner, now)?)),
        Condition::Compare { path, op, value } => {
            let path = filterable(resolve(schema, object, path)?)?;
            let operand = bind_literal(&path, value, now)?;
            Filter::Compare {
                path,
                op: *op,
                operand,
            }
        }
        Condition::In {
            path,
            negated,
            values,
        } => {
            let path = filterable(resolve(schema, object, path)?)?;
            let operands = values
                .iter()
                .map(|v| bind_literal(&path, v, now))
                .collect::<Result<_, _>>()?;
            Filter::In {
                path,
                negated: *negated,
                operands,
            }
        }
        Condition::Like { path, value } => {
            let path = filterable(resolve(schema, object, path)?)?;
            if !path.field_type.is_text() && !path.field_type.is_id() {
                return Err(ApiError::invalid_field(format!(
                    "invalid operator on field '{}': LIKE applies to string fields",
                    path.dotted()
                )));
            }
            match value {
                Literal::Str { pattern, .. } => Filter::Like {
                    path,
                    pattern: pattern.clone(),
                },
                _ => return Err(type_error(&path, true)),
            }
        }
    })
}

fn filterable(path: FieldPath) -> Result<FieldPath, ApiError> {
    if path.field_type == FieldType::Textarea {
        return Err(ApiError::invalid_field(format!(
            "field '{}' can not be filtered in a query call",
            path.dotted()
        )));
    }
    Ok(path)
}

/// `value of filter criterion for field 'Amount' must be of type double and should not be
/// enclosed in quotes` and its variants.
fn type_error(path: &FieldPath, quoted_expected: bool) -> ApiError {
    let t = match path.field_type {
        FieldType::Currency | FieldType::Double | FieldType::Percent => "double",
        FieldType::Int => "integer",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::DateTime => "dateTime",
        FieldType::Id | FieldType::Reference => "id",
        _ => "string",
    };
    let quotes = if quoted_expected {
        "should be enclosed in quotes"
    } else {
        "should not be enclosed in quotes"
    };
    ApiError::invalid_field(format!(
        "value of filter criterion for field '{}' must be of type {t} and {quotes}",
        path.names.last().map(String::as_str).unwrap_or_default()
    ))
}

/// The days `[lo, hi)` a relative date literal covers (UTC is the org's time zone).
pub fn date_range(lit: DateLiteral, now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let today = now.date_naive();
    let add = |d: NaiveDate, n: u64| d.checked_add_days(Days::new(n)).unwrap_or(NaiveDate::MAX);
    let sub = |d: NaiveDate, n: u64| d.checked_sub_days(Days::new(n)).unwrap_or(NaiveDate::MIN);
    match lit {
        DateLiteral::Today => (today, add(today, 1)),
        DateLiteral::Yesterday => (sub(today, 1), today),
        DateLiteral::Tomorrow => (add(today, 1), add(today, 2)),
        DateLiteral::LastNDays(n) => (sub(today, u64::from(n)), add(today, 1)),
        DateLiteral::NextNDays(n) => (add(today, 1), add(today, u64::from(n) + 1)),
    }
}

fn bind_literal(path: &FieldPath, lit: &Literal, now: DateTime<Utc>) -> Result<Operand, ApiError> {
    let t = path.field_type;
    if *lit == Literal::Null {
        return Ok(Operand::Null);
    }
    Ok(match t {
        _ if t.is_text() => match lit {
            Literal::Str { text, .. } => Operand::Value(Value::Str(text.clone())),
            _ => return Err(type_error(path, true)),
        },
        FieldType::Id | FieldType::Reference => match lit {
            Literal::Str { text, .. } => match crate::ids::to_18(text) {
                Ok(id) => Operand::Value(Value::Str(id)),
                Err(_) => {
                    return Err(ApiError::new(
                        400,
                        "INVALID_QUERY_FILTER_OPERATOR",
                        format!("invalid ID field: {text}"),
                    ));
                }
            },
            _ => return Err(type_error(path, true)),
        },
        FieldType::Boolean => match lit {
            Literal::Bool(b) => Operand::Value(Value::Bool(*b)),
            _ => return Err(type_error(path, false)),
        },
        FieldType::Int | FieldType::Currency | FieldType::Double | FieldType::Percent => {
            match lit {
                Literal::Number(n) => match n.parse::<i64>() {
                    Ok(i) if t == FieldType::Int => Operand::Value(Value::Int(i)),
                    _ => match n.parse::<f64>() {
                        Ok(f) => Operand::Value(Value::Num(f)),
                        Err(_) => return Err(type_error(path, false)),
                    },
                },
                _ => return Err(type_error(path, false)),
            }
        }
        FieldType::Date => match lit {
            Literal::Date(d) => Operand::Value(Value::Date(*d)),
            Literal::Relative(r) => {
                let (lo, hi) = date_range(*r, now);
                Operand::Range(Value::Date(lo), Value::Date(hi))
            }
            _ => return Err(type_error(path, false)),
        },
        FieldType::DateTime => match lit {
            Literal::DateTime(d) => Operand::Value(Value::DateTime(*d)),
            Literal::Relative(r) => {
                let (lo, hi) = date_range(*r, now);
                Operand::Range(
                    Value::DateTime(lo.and_time(NaiveTime::MIN).and_utc()),
                    Value::DateTime(hi.and_time(NaiveTime::MIN).and_utc()),
                )
            }
            _ => return Err(type_error(path, false)),
        },
        _ => return Err(type_error(path, true)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soql::parse;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn plan_of(s: &str) -> Result<Plan, ApiError> {
        plan(&parse(s)?, &Schema::standard(), now())
    }

    fn err(s: &str) -> ApiError {
        plan_of(s).expect_err(s)
    }

    #[test]
    fn resolves_fields_and_relationships_case_insensitively() {
        let p =
            plan_of("SELECT id, account.NAME, createdby.username FROM OPPORTUNITY").expect("plan");
        assert_eq!(p.select[0].names, ["Id"]);
        assert_eq!(p.select[1].names, ["Account", "Name"]);
        assert_eq!(p.select[1].objects.len(), 2);
        assert_eq!(p.select[2].dotted(), "CreatedBy.Username");
        let p = plan_of("SELECT Opportunity.Name FROM Opportunity").expect("own prefix");
        assert_eq!(p.select[0].dotted(), "Name");
    }

    #[test]
    fn unknown_names_give_salesforce_errors() {
        let e = err("SELECT Foo FROM Account");
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert_eq!(
            e.message,
            "No such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        );
        let e = err("SELECT Id FROM Foo");
        assert_eq!(e.error_code, "INVALID_TYPE");
        assert!(
            e.message
                .starts_with("sObject type 'Foo' is not supported.")
        );
        let e = err("SELECT Partner.Name FROM Opportunity");
        assert!(
            e.message
                .starts_with("Didn't understand relationship 'Partner'")
        );
        let e = err("SELECT Account.Foo FROM Opportunity");
        assert!(
            e.message
                .starts_with("No such column 'Foo' on entity 'Account'")
        );
        assert_eq!(
            err("SELECT Id, id FROM Account").message,
            "duplicate field selected: id"
        );
        assert_eq!(
            err("SELECT Id FROM Account OFFSET 2001").error_code,
            "NUMBER_OUTSIDE_VALID_RANGE"
        );
        assert_eq!(
            err("SELECT Id FROM Opportunity WHERE Description = 'x'").error_code,
            "INVALID_FIELD"
        );
    }

    #[test]
    fn literal_types_are_checked() {
        let e = err("SELECT Id FROM Opportunity WHERE Amount > '5000'");
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert_eq!(
            e.message,
            "value of filter criterion for field 'Amount' must be of type double and should not be enclosed in quotes"
        );
        let e = err("SELECT Id FROM Opportunity WHERE Name = 5");
        assert!(
            e.message
                .ends_with("must be of type string and should be enclosed in quotes")
        );
        assert!(
            err("SELECT Id FROM Opportunity WHERE CloseDate = 2024-01-01T00:00:00Z")
                .message
                .contains("type date")
        );
        assert!(
            err("SELECT Id FROM Opportunity WHERE CreatedDate = 2024-01-01")
                .message
                .contains("type dateTime")
        );
        assert!(
            err("SELECT Id FROM Opportunity WHERE IsWon = 'true'")
                .message
                .contains("type boolean")
        );
        let e = err("SELECT Id FROM Opportunity WHERE Id = 'nope'");
        assert_eq!(
            (e.error_code.as_str(), e.message.as_str()),
            ("INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope")
        );
        assert!(plan_of("SELECT Id FROM Opportunity WHERE Amount > 5000 AND Amount != null AND CloseDate = TODAY").is_ok());
    }

    #[test]
    fn ids_are_normalised_and_relative_dates_become_ranges() {
        let p = plan_of(
            "SELECT Id FROM Account WHERE Id = '001RM000003oLnn' AND CreatedDate = LAST_N_DAYS:2",
        )
        .expect("plan");
        let Some(Filter::And(terms)) = p.filter else {
            panic!("and")
        };
        assert!(
            matches!(&terms[0], Filter::Compare { operand: Operand::Value(Value::Str(s)), .. } if s == "001RM000003oLnnYAE")
        );
        let Filter::Compare {
            operand: Operand::Range(lo, hi),
            ..
        } = &terms[1]
        else {
            panic!("range")
        };
        assert_eq!(
            crate::value::format_datetime(lo.as_datetime().expect("dt")),
            "2024-03-08T00:00:00.000+0000"
        );
        assert_eq!(
            crate::value::format_datetime(hi.as_datetime().expect("dt")),
            "2024-03-11T00:00:00.000+0000"
        );
        let (lo, hi) = date_range(DateLiteral::Yesterday, now());
        assert_eq!(
            (lo.to_string(), hi.to_string()),
            ("2024-03-09".into(), "2024-03-10".into())
        );
    }
}
