//! SOQL: a lexer and recursive-descent parser for the subset Salesforce clients use here, a
//! planner that checks names and literal types against the schema (with Salesforce's errors),
//! and an evaluator over any record store that implements [`eval::RecordAccess`].

pub mod ast;
pub mod eval;
pub mod lexer;
pub mod parser;
pub mod plan;

pub use eval::RecordAccess;
pub use parser::{parse, parse_condition};
pub use plan::{Plan, plan};
