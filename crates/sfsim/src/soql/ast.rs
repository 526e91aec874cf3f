//! The syntax tree of a SOQL query, as written: names are not yet checked against the schema
//! (that is the planner's job).

use chrono::{DateTime, NaiveDate, Utc};

use super::lexer::LikePart;

/// `SELECT ... FROM ... [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n] [FOR VIEW|REFERENCE]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: String,
    pub where_clause: Option<Condition>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// `FOR VIEW` / `FOR REFERENCE`: the returned records become recently viewed / referenced.
    pub for_clause: Option<ForClause>,
}

/// The `FOR VIEW` / `FOR REFERENCE` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForClause {
    View,
    Reference,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// A field or a parent relationship path such as `Account.Name`.
    Field(Path),
    /// `COUNT()`.
    Count,
    /// A parent-to-child subquery, `(SELECT Id FROM Contacts)`: its FROM names a child
    /// relationship of the outer object.
    Subquery(Box<Query>),
}

/// A dotted field path as written: `Name`, `Account.Name`, `Account.Owner.Name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<String>);

impl Path {
    /// The path as written, with dots.
    pub fn dotted(&self) -> String {
        self.0.join(".")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Relative date literals (`TODAY`, `LAST_N_DAYS:7`, ...): each names a range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateLiteral {
    Today,
    Yesterday,
    Tomorrow,
    LastNDays(u32),
    NextNDays(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    /// The number as written, sign included.
    Number(String),
    Str {
        text: String,
        pattern: Vec<LikePart>,
    },
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Relative(DateLiteral),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        path: Path,
        op: CmpOp,
        value: Literal,
    },
    In {
        path: Path,
        negated: bool,
        values: Vec<Literal>,
    },
    Like {
        path: Path,
        value: Literal,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub path: Path,
    pub descending: bool,
    /// `Some(true)` for NULLS FIRST, `Some(false)` for NULLS LAST, `None` for the default
    /// (first when ascending, last when descending).
    pub nulls_first: Option<bool>,
}

impl OrderItem {
    /// Whether nulls sort first, with Salesforce's default.
    pub fn nulls_first(&self) -> bool {
        self.nulls_first.unwrap_or(!self.descending)
    }
}
