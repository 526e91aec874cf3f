//! A small SOQL builder: the only place orgsync writes SOQL text.
//!
//! `Soql::select(fields).from(object).where_(cond).order_by(field, Order::Asc).limit(n)`
//! renders one statement. Values are [`Literal`]s, escaped here and nowhere else: string
//! literals get SOQL's backslash escapes (`\'`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, `\"`), so
//! a name like `O'Brien \ Co` matches itself and cannot end the literal early. Field and object
//! names are checked to be API names (`Name`, `Ext_Id__c`, `Account.Name`), so nothing from
//! data ever reaches the statement unescaped. The one exception is the user's `sync.filter`,
//! inserted parenthesised as written ([`Cond::raw`]): it comes from the configuration, not from
//! records, and `orgsync check` runs it against both orgs first.
//!
//! Datetime literals are rendered in whole seconds, floored (`2024-01-31T10:00:00Z`). Whether
//! Salesforce accepts fractional seconds in a literal is not settled by any source we have
//! (the reference marks it UNCONFIRMED), and whole seconds are the documented form. Flooring is
//! safe for the only comparison the engine makes, `SystemModstamp >= watermark`: a floored
//! bound can only re-read a few rows (which replay drops for free), never skip one. Do not use
//! a datetime literal with `>` or `<=` where losing the fraction would change the answer.
//!
//! Request URLs must stay under 16,384 bytes (`414 URI Too Long` otherwise), and SOQL itself
//! has no POST form in the REST API. Long `IN` lists are therefore cut by the caller with
//! [`chunk_literals`], which measures each value as it will appear URL-encoded.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

/// The longest request URI Salesforce accepts.
pub const MAX_URI_BYTES: usize = 16_384;

/// Budget for the URL-encoded SOQL text of one query: leaves room for the instance URL and
/// the `/services/data/vNN.0/query?q=` prefix.
pub const MAX_ENCODED_SOQL_BYTES: usize = 15_000;

/// A SOQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A quoted, escaped string (also ids and picklist values).
    Str(String),
    /// A number, rendered as given (validated as a decimal number).
    Number(String),
    Bool(bool),
    Null,
    /// Rendered `YYYY-MM-DDTHH:MM:SSZ`, floored to the second (see the module doc).
    DateTime(DateTime<Utc>),
    /// Rendered `YYYY-MM-DD`, unquoted.
    Date(NaiveDate),
}

impl Literal {
    pub fn str(s: impl Into<String>) -> Self {
        Literal::Str(s.into())
    }

    /// A literal for a JSON value as the REST API returns it: strings are quoted, numbers and
    /// booleans bare, `null` as `null`. Arrays and objects have no SOQL literal form.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, SoqlError> {
        Ok(match value {
            serde_json::Value::String(s) => Literal::Str(s.clone()),
            serde_json::Value::Number(n) => Literal::Number(n.to_string()),
            serde_json::Value::Bool(b) => Literal::Bool(*b),
            serde_json::Value::Null => Literal::Null,
            other => return Err(SoqlError::BadValue(format!("{other}"))),
        })
    }

    fn render_into(&self, out: &mut String) -> Result<(), SoqlError> {
        match self {
            Literal::Str(s) => {
                out.push('\'');
                escape_into(s, out);
                out.push('\'');
            }
            Literal::Number(n) => {
                if !is_number(n) {
                    return Err(SoqlError::BadValue(n.clone()));
                }
                out.push_str(n);
            }
            Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Literal::Null => out.push_str("null"),
            Literal::DateTime(t) => out.push_str(&format_datetime(t)),
            Literal::Date(d) => out.push_str(&d.format("%Y-%m-%d").to_string()),
        }
        Ok(())
    }

    /// The literal as it appears in SOQL.
    pub fn render(&self) -> Result<String, SoqlError> {
        let mut out = String::new();
        self.render_into(&mut out)?;
        Ok(out)
    }
}

/// A SOQL datetime literal, whole seconds floored: `2024-01-31T10:00:00Z`.
pub fn format_datetime(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Escapes text for the inside of a SOQL string literal.
pub fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    escape_into(s, &mut out);
    out
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
}

fn is_number(n: &str) -> bool {
    let body = n.strip_prefix('-').unwrap_or(n);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int)
        && frac.is_none_or(digits)
        && exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)))
}

/// True for an API name or a relationship path of them: `Name`, `Ext_Id__c`, `Account.Name`.
pub fn is_field_path(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Something the builder refuses to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoqlError {
    #[error("{0:?} is not a field or object API name")]
    BadName(String),
    #[error("{0} has no SOQL literal form")]
    BadValue(String),
    #[error("IN list of {0} is empty")]
    EmptyIn(String),
    #[error("the query selects no field")]
    NoFields,
    #[error("the query names no object (call .from())")]
    NoObject,
    #[error("the filter is empty")]
    EmptyFilter,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
        }
    }
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp {
        field: String,
        op: Op,
        value: Literal,
    },
    In {
        field: String,
        values: Vec<Literal>,
        negated: bool,
    },
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// A condition written by the user (`sync.filter`), inserted parenthesised as is.
    Raw(String),
}

impl Cond {
    pub fn cmp(field: impl Into<String>, op: Op, value: Literal) -> Self {
        Cond::Cmp {
            field: field.into(),
            op,
            value,
        }
    }
    pub fn eq(field: impl Into<String>, value: Literal) -> Self {
        Self::cmp(field, Op::Eq, value)
    }
    pub fn ne(field: impl Into<String>, value: Literal) -> Self {
        Self::cmp(field, Op::Ne, value)
    }
    pub fn ge(field: impl Into<String>, value: Literal) -> Self {
        Self::cmp(field, Op::Ge, value)
    }
    pub fn gt(field: impl Into<String>, value: Literal) -> Self {
        Self::cmp(field, Op::Gt, value)
    }
    pub fn lt(field: impl Into<String>, value: Literal) -> Self {
        Self::cmp(field, Op::Lt, value)
    }
    pub fn le(field: impl Into<String>, value: Literal) -> Self {
        Self::cmp(field, Op::Le, value)
    }
    pub fn in_(field: impl Into<String>, values: Vec<Literal>) -> Self {
        Cond::In {
            field: field.into(),
            values,
            negated: false,
        }
    }
    pub fn not_in(field: impl Into<String>, values: Vec<Literal>) -> Self {
        Cond::In {
            field: field.into(),
            values,
            negated: true,
        }
    }
    /// `Id IN ('…', …)`.
    pub fn ids_in<S: AsRef<str>>(ids: &[S]) -> Self {
        Self::in_(
            "Id",
            ids.iter().map(|id| Literal::str(id.as_ref())).collect(),
        )
    }
    pub fn and(conds: Vec<Cond>) -> Self {
        Cond::And(conds)
    }
    pub fn or(conds: Vec<Cond>) -> Self {
        Cond::Or(conds)
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(cond: Cond) -> Self {
        Cond::Not(Box::new(cond))
    }
    /// The user's filter, as written.
    pub fn raw(text: impl Into<String>) -> Self {
        Cond::Raw(text.into())
    }

    /// True when rendering it needs parentheses inside AND / OR / NOT.
    fn is_compound(&self) -> bool {
        match self {
            Cond::And(c) | Cond::Or(c) => c.len() > 1,
            // Both render their own parentheses.
            Cond::Raw(_) | Cond::Not(_) => false,
            Cond::Cmp { .. } | Cond::In { .. } => false,
        }
    }

    fn render_into(&self, out: &mut String) -> Result<(), SoqlError> {
        match self {
            Cond::Cmp { field, op, value } => {
                check_name(field)?;
                out.push_str(field);
                out.push(' ');
                out.push_str(op.as_str());
                out.push(' ');
                value.render_into(out)?;
            }
            Cond::In {
                field,
                values,
                negated,
            } => {
                check_name(field)?;
                if values.is_empty() {
                    return Err(SoqlError::EmptyIn(field.clone()));
                }
                out.push_str(field);
                out.push_str(if *negated { " NOT IN (" } else { " IN (" });
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.render_into(out)?;
                }
                out.push(')');
            }
            Cond::And(conds) | Cond::Or(conds) => {
                let joiner = if matches!(self, Cond::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let live: Vec<&Cond> = conds.iter().filter(|c| !c.is_empty()).collect();
                for (i, c) in live.iter().enumerate() {
                    if i > 0 {
                        out.push_str(joiner);
                    }
                    let wrap = live.len() > 1 && c.is_compound();
                    if wrap {
                        out.push('(');
                    }
                    c.render_into(out)?;
                    if wrap {
                        out.push(')');
                    }
                }
            }
            Cond::Not(inner) => {
                out.push_str("NOT (");
                inner.render_into(out)?;
                out.push(')');
            }
            Cond::Raw(text) => {
                let text = text.trim();
                if text.is_empty() {
                    return Err(SoqlError::EmptyFilter);
                }
                out.push('(');
                out.push_str(text);
                out.push(')');
            }
        }
        Ok(())
    }

    /// An AND / OR with nothing in it.
    fn is_empty(&self) -> bool {
        match self {
            Cond::And(c) | Cond::Or(c) => c.iter().all(Cond::is_empty),
            _ => false,
        }
    }

    /// The condition as SOQL text.
    pub fn render(&self) -> Result<String, SoqlError> {
        let mut out = String::new();
        self.render_into(&mut out)?;
        Ok(out)
    }
}

fn check_name(name: &str) -> Result<(), SoqlError> {
    if is_field_path(name) {
        Ok(())
    } else {
        Err(SoqlError::BadName(name.to_string()))
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// A SELECT statement under construction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Soql {
    fields: Vec<String>,
    object: String,
    cond: Option<Cond>,
    order: Vec<(String, Order)>,
    limit: Option<u64>,
}

impl Soql {
    /// `SELECT fields`; a field named twice (in any case) is selected once.
    pub fn select<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut soql = Soql::default();
        for f in fields {
            let f = f.into();
            if !soql.fields.iter().any(|g| g.eq_ignore_ascii_case(&f)) {
                soql.fields.push(f);
            }
        }
        soql
    }

    pub fn from(mut self, object: impl Into<String>) -> Self {
        self.object = object.into();
        self
    }

    /// Adds a condition; several calls are joined with AND.
    pub fn where_(mut self, cond: Cond) -> Self {
        self.cond = Some(match self.cond.take() {
            None => cond,
            Some(Cond::And(mut all)) => {
                all.push(cond);
                Cond::And(all)
            }
            Some(previous) => Cond::And(vec![previous, cond]),
        });
        self
    }

    pub fn order_by(mut self, field: impl Into<String>, order: Order) -> Self {
        self.order.push((field.into(), order));
        self
    }

    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// The statement's text.
    pub fn build(&self) -> Result<String, SoqlError> {
        if self.fields.is_empty() {
            return Err(SoqlError::NoFields);
        }
        if self.object.is_empty() {
            return Err(SoqlError::NoObject);
        }
        check_name(&self.object)?;
        if self.object.contains('.') {
            return Err(SoqlError::BadName(self.object.clone()));
        }
        let mut out = String::from("SELECT ");
        for (i, f) in self.fields.iter().enumerate() {
            check_name(f)?;
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(f);
        }
        out.push_str(" FROM ");
        out.push_str(&self.object);
        if let Some(cond) = self.cond.as_ref().filter(|c| !c.is_empty()) {
            out.push_str(" WHERE ");
            cond.render_into(&mut out)?;
        }
        if !self.order.is_empty() {
            out.push_str(" ORDER BY ");
            for (i, (f, o)) in self.order.iter().enumerate() {
                check_name(f)?;
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(f);
                out.push_str(match o {
                    Order::Asc => " ASC",
                    Order::Desc => " DESC",
                });
            }
        }
        if let Some(n) = self.limit {
            out.push_str(&format!(" LIMIT {n}"));
        }
        Ok(out)
    }
}

impl fmt::Display for Soql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.build() {
            Ok(text) => f.write_str(&text),
            Err(e) => write!(f, "<invalid SOQL: {e}>"),
        }
    }
}

/// The length of `text` once URL-encoded as a query-string value (as reqwest sends `q`).
pub fn encoded_len(text: &str) -> usize {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .map(str::len)
        .sum()
}

/// Cuts `values` into runs whose rendered, URL-encoded `IN (...)` list stays within
/// `max_encoded_bytes` each (every run holds at least one value). Pass the budget left after
/// the rest of the statement: `MAX_ENCODED_SOQL_BYTES - encoded_len(rest)`.
pub fn chunk_literals(
    values: &[Literal],
    max_encoded_bytes: usize,
) -> Result<Vec<Vec<Literal>>, SoqlError> {
    let mut chunks: Vec<Vec<Literal>> = Vec::new();
    let mut current: Vec<Literal> = Vec::new();
    let mut used = 0usize;
    // ", " between values encodes as "%2C+" (4 bytes).
    const SEPARATOR: usize = 4;
    for v in values {
        let len = encoded_len(&v.render()?) + SEPARATOR;
        if !current.is_empty() && used + len > max_encoded_bytes {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += len;
        current.push(v.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(escape_string("O'Brien \\ Co"), "O\\'Brien \\\\ Co");
        assert_eq!(escape_string("a\nb\r\tc\"d"), "a\\nb\\r\\tc\\\"d");
        assert_eq!(
            Literal::str("x' OR Name != '").render().unwrap(),
            "'x\\' OR Name != \\''"
        );
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(Literal::Number("5000".into()).render().unwrap(), "5000");
        assert_eq!(Literal::Number("-1.5e3".into()).render().unwrap(), "-1.5e3");
        assert!(Literal::Number("1 OR 1=1".into()).render().is_err());
        assert!(Literal::Number("".into()).render().is_err());
        assert_eq!(
            Literal::from_json(&serde_json::json!(12.5))
                .unwrap()
                .render()
                .unwrap(),
            "12.5"
        );
        assert!(Literal::from_json(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn datetimes_are_floored_to_seconds() {
        let t = Utc.with_ymd_and_hms(2024, 1, 31, 10, 0, 5).unwrap()
            + chrono::Duration::milliseconds(999);
        assert_eq!(
            Literal::DateTime(t).render().unwrap(),
            "2024-01-31T10:00:05Z"
        );
        let d = NaiveDate::from_ymd_opt(2022, 4, 29).unwrap();
        assert_eq!(Literal::Date(d).render().unwrap(), "2022-04-29");
    }

    #[test]
    fn full_statement() {
        let since = Utc.with_ymd_and_hms(2024, 1, 31, 10, 0, 0).unwrap();
        let q = Soql::select(["Id", "SystemModstamp", "Name", "id", "Account.Name"])
            .from("Opportunity")
            .where_(Cond::ge("SystemModstamp", Literal::DateTime(since)))
            .where_(Cond::ne(
                "LastModifiedById",
                Literal::str("005000000000001AAA"),
            ))
            .where_(Cond::raw("Amount > 5000 OR StageName = 'Won'"))
            .order_by("SystemModstamp", Order::Asc)
            .order_by("Id", Order::Asc)
            .limit(10)
            .build()
            .unwrap();
        assert_eq!(
            q,
            "SELECT Id, SystemModstamp, Name, Account.Name FROM Opportunity \
             WHERE SystemModstamp >= 2024-01-31T10:00:00Z AND LastModifiedById != '005000000000001AAA' \
             AND (Amount > 5000 OR StageName = 'Won') ORDER BY SystemModstamp ASC, Id ASC LIMIT 10"
        );
    }

    #[test]
    fn nested_conditions_are_parenthesised() {
        let c = Cond::or(vec![
            Cond::ids_in(&["006A", "006B"]),
            Cond::and(vec![
                Cond::in_("Name", vec![Literal::str("a")]),
                Cond::eq("StageName", Literal::str("x")),
            ]),
            Cond::and(vec![]),
        ]);
        assert_eq!(
            c.render().unwrap(),
            "Id IN ('006A', '006B') OR (Name IN ('a') AND StageName = 'x')"
        );
        assert_eq!(
            Cond::not(Cond::eq("IsDeleted", Literal::Bool(true)))
                .render()
                .unwrap(),
            "NOT (IsDeleted = true)"
        );
        // A single AND inside a WHERE needs no parentheses; an empty one disappears.
        let q = Soql::select(["Id"])
            .from("Account")
            .where_(Cond::and(vec![]))
            .build()
            .unwrap();
        assert_eq!(q, "SELECT Id FROM Account");
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            Soql::select(["Name; DELETE"]).from("Account").build(),
            Err(SoqlError::BadName("Name; DELETE".into()))
        );
        assert!(Soql::select(["Id"]).from("Account.Name").build().is_err());
        assert!(
            Soql::select(Vec::<String>::new())
                .from("X")
                .build()
                .is_err()
        );
        assert!(Soql::select(["Id"]).build().is_err());
        assert!(Cond::in_("Id", vec![]).render().is_err());
        assert!(Cond::raw("  ").render().is_err());
        assert!(is_field_path("Ext_Id__c"));
        assert!(is_field_path("Account.Owner.Name"));
        assert!(!is_field_path("Account..Name"));
        assert!(!is_field_path("_x"));
    }

    #[test]
    fn chunks_stay_under_budget() {
        let ids: Vec<Literal> = (0..2000)
            .map(|i| Literal::str(format!("006000000000{i:03}AAA")))
            .collect();
        let chunks = chunk_literals(&ids, 5_000).unwrap();
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 2000);
        for chunk in &chunks {
            let text = Cond::in_("Id", chunk.clone()).render().unwrap();
            assert!(encoded_len(&text) <= 5_000 + 20, "{}", encoded_len(&text));
        }
        // Order is kept.
        assert_eq!(chunks[0][0], ids[0]);
        assert_eq!(chunks.last().unwrap().last(), ids.last());
        // A single oversize value still gets its own chunk rather than being dropped.
        let big = vec![Literal::str("x".repeat(100))];
        assert_eq!(chunk_literals(&big, 10).unwrap().len(), 1);
    }
}
