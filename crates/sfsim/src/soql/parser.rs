//! Recursive-descent parser for the SOQL subset: one token of lookahead, keywords compared
//! case-insensitively, errors as Salesforce words them (`unexpected token: 'X'`).
//!
//! Like Salesforce, a condition may not mix AND and OR at one level without parentheses.

use crate::error::ApiError;

use super::ast::{
    CmpOp, Condition, DateLiteral, ForClause, Literal, OrderItem, Path, Query, SelectItem,
};
use super::lexer::{Token, TokenKind, tokenize, unexpected};

/// Parses a whole query.
pub fn parse(src: &str) -> Result<Query, ApiError> {
    if src.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::malformed_query(format!(
            "SOQL statements cannot be longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let q = p.query()?;
    p.expect_eof()?;
    Ok(q)
}

/// Parses a condition alone (what follows WHERE), e.g. a configured filter.
pub fn parse_condition(src: &str) -> Result<Condition, ApiError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let c = p.condition()?;
    p.expect_eof()?;
    Ok(c)
}

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET",
    "NULL", "TRUE", "FALSE", "ASC", "DESC", "NULLS", "GROUP", "HAVING", "FOR",
];

/// Nesting deeper than this (parentheses and NOTs) is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Salesforce's limit on the length of a SOQL statement.
pub const MAX_QUERY_CHARS: usize = 100_000;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `pos` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ApiError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, kind: TokenKind) -> Result<(), ApiError> {
        if self.peek().kind == kind {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect_eof(&self) -> Result<(), ApiError> {
        if self.peek().kind == TokenKind::Eof {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn unexpected(&self) -> ApiError {
        unexpected(&self.peek().text)
    }

    /// An identifier that is not a reserved word.
    fn name(&mut self) -> Result<String, ApiError> {
        match &self.peek().kind {
            TokenKind::Ident(s) if !RESERVED.iter().any(|k| k.eq_ignore_ascii_case(s)) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn path(&mut self) -> Result<Path, ApiError> {
        let mut parts = vec![self.name()?];
        while self.peek().kind == TokenKind::Dot {
            self.advance();
            parts.push(self.name()?);
        }
        Ok(Path(parts))
    }

    fn query(&mut self) -> Result<Query, ApiError> {
        self.expect_kw("SELECT")?;
        let mut select = vec![self.select_item()?];
        while self.peek().kind == TokenKind::Comma {
            self.advance();
            select.push(self.select_item()?);
        }
        self.expect_kw("FROM")?;
        let from = self.name()?;
        let where_clause = if self.eat_kw("WHERE") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            order_by.push(self.order_item()?);
            while self.peek().kind == TokenKind::Comma {
                self.advance();
                order_by.push(self.order_item()?);
            }
        }
        let limit = if self.eat_kw("LIMIT") {
            Some(self.count_value()?)
        } else {
            None
        };
        let offset = if self.eat_kw("OFFSET") {
            Some(self.count_value()?)
        } else {
            None
        };
        let for_clause = if self.eat_kw("FOR") {
            if self.eat_kw("VIEW") {
                Some(ForClause::View)
            } else if self.eat_kw("REFERENCE") {
                Some(ForClause::Reference)
            } else {
                return Err(self.unexpected());
            }
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            where_clause,
            order_by,
            limit,
            offset,
            for_clause,
        })
    }

    fn select_item(&mut self) -> Result<SelectItem, ApiError> {
        if self.is_kw("COUNT") && self.peek_at(1).kind == TokenKind::LParen {
            self.advance();
            self.advance();
            self.expect(TokenKind::RParen)?;
            return Ok(SelectItem::Count);
        }
        if self.peek().kind == TokenKind::LParen
            && matches!(&self.peek_at(1).kind, TokenKind::Ident(s) if s.eq_ignore_ascii_case("SELECT"))
        {
            self.advance();
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.unexpected());
            }
            let inner = self.query()?;
            self.depth -= 1;
            self.expect(TokenKind::RParen)?;
            return Ok(SelectItem::Subquery(Box::new(inner)));
        }
        Ok(SelectItem::Field(self.path()?))
    }

    fn order_item(&mut self) -> Result<OrderItem, ApiError> {
        let path = self.path()?;
        let descending = if self.eat_kw("DESC") {
            true
        } else {
            self.eat_kw("ASC");
            false
        };
        let nulls_first = if self.eat_kw("NULLS") {
            if self.eat_kw("FIRST") {
                Some(true)
            } else {
                self.expect_kw("LAST")?;
                Some(false)
            }
        } else {
            None
        };
        Ok(OrderItem {
            path,
            descending,
            nulls_first,
        })
    }

    fn count_value(&mut self) -> Result<u64, ApiError> {
        match &self.peek().kind {
            TokenKind::Number(n) => {
                let v = n.parse::<u64>().map_err(|_| self.unexpected())?;
                self.advance();
                Ok(v)
            }
            _ => Err(self.unexpected()),
        }
    }

    /// `a AND b AND c`, `a OR b OR c`, or a single term; mixing needs parentheses.
    fn condition(&mut self) -> Result<Condition, ApiError> {
        let first = self.unary()?;
        let joiner = if self.is_kw("AND") {
            "AND"
        } else if self.is_kw("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut terms = vec![first];
        while self.eat_kw(joiner) {
            terms.push(self.unary()?);
        }
        if self.is_kw("AND") || self.is_kw("OR") {
            return Err(self.unexpected());
        }
        Ok(if joiner == "AND" {
            Condition::And(terms)
        } else {
            Condition::Or(terms)
        })
    }

    fn unary(&mut self) -> Result<Condition, ApiError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ApiError::malformed_query(format!(
                "conditions nested deeper than {MAX_DEPTH} levels are not supported"
            )));
        }
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Condition, ApiError> {
        if self.eat_kw("NOT") {
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if self.peek().kind == TokenKind::LParen {
            self.advance();
            let c = self.condition()?;
            self.expect(TokenKind::RParen)?;
            return Ok(c);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, ApiError> {
        let path = self.path()?;
        if self.eat_kw("LIKE") {
            let value = self.literal()?;
            return Ok(Condition::Like { path, value });
        }
        let negated = if self.is_kw("NOT")
            && matches!(&self.peek_at(1).kind, TokenKind::Ident(s) if s.eq_ignore_ascii_case("IN"))
        {
            self.advance();
            true
        } else {
            false
        };
        if self.eat_kw("IN") {
            self.expect(TokenKind::LParen)?;
            let mut values = vec![self.literal()?];
            while self.peek().kind == TokenKind::Comma {
                self.advance();
                values.push(self.literal()?);
            }
            self.expect(TokenKind::RParen)?;
            return Ok(Condition::In {
                path,
                negated,
                values,
            });
        }
        let op = match self.peek().kind {
            TokenKind::Eq => CmpOp::Eq,
            TokenKind::Ne => CmpOp::Ne,
            TokenKind::Lt => CmpOp::Lt,
            TokenKind::Le => CmpOp::Le,
            TokenKind::Gt => CmpOp::Gt,
            TokenKind::Ge => CmpOp::Ge,
            _ => return Err(self.unexpected()),
        };
        self.advance();
        let value = self.literal()?;
        Ok(Condition::Compare { path, op, value })
    }

    fn literal(&mut self) -> Result<Literal, ApiError> {
        let tok = self.peek().clone();
        let lit = match tok.kind {
            TokenKind::Str { text, pattern } => Literal::Str { text, pattern },
            TokenKind::Number(n) => Literal::Number(n),
            TokenKind::Minus | TokenKind::Plus => {
                let sign = if tok.kind == TokenKind::Minus {
                    "-"
                } else {
                    ""
                };
                self.advance();
                return match &self.peek().kind {
                    TokenKind::Number(n) => {
                        let lit = Literal::Number(format!("{sign}{n}"));
                        self.advance();
                        Ok(lit)
                    }
                    _ => Err(self.unexpected()),
                };
            }
            TokenKind::Date(d) => Literal::Date(d),
            TokenKind::DateTime(d) => Literal::DateTime(d),
            TokenKind::Ident(word) => {
                let upper = word.to_ascii_uppercase();
                match upper.as_str() {
                    "NULL" => Literal::Null,
                    "TRUE" => Literal::Bool(true),
                    "FALSE" => Literal::Bool(false),
                    "TODAY" => Literal::Relative(DateLiteral::Today),
                    "YESTERDAY" => Literal::Relative(DateLiteral::Yesterday),
                    "TOMORROW" => Literal::Relative(DateLiteral::Tomorrow),
                    "LAST_N_DAYS" | "NEXT_N_DAYS" => {
                        self.advance();
                        self.expect(TokenKind::Colon)?;
                        let n = match &self.peek().kind {
                            TokenKind::Number(n) => {
                                n.parse::<u32>().map_err(|_| self.unexpected())?
                            }
                            _ => return Err(self.unexpected()),
                        };
                        self.advance();
                        return Ok(Literal::Relative(if upper == "LAST_N_DAYS" {
                            DateLiteral::LastNDays(n)
                        } else {
                            DateLiteral::NextNDays(n)
                        }));
                    }
                    _ => return Err(self.unexpected()),
                }
            }
            _ => return Err(self.unexpected()),
        };
        self.advance();
        Ok(lit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Query {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn subqueries_are_select_items() {
        let q = p(
            "SELECT Id, (SELECT Id, Name FROM Contacts WHERE Name LIKE 'A%' ORDER BY Name LIMIT 5) FROM Account",
        );
        assert_eq!(q.select.len(), 2);
        let SelectItem::Subquery(inner) = &q.select[1] else {
            panic!("{:?}", q.select[1]);
        };
        assert_eq!(inner.from, "Contacts");
        assert_eq!(inner.limit, Some(5));
        assert_eq!(q.from, "Account");
        assert!(parse("SELECT Id, (SELECT Id FROM Contacts FROM Account").is_err());
    }

    #[test]
    fn for_view_and_for_reference_end_a_query() {
        assert_eq!(p("SELECT Id FROM A").for_clause, None);
        assert_eq!(
            p("SELECT Id FROM A LIMIT 5 FOR VIEW").for_clause,
            Some(ForClause::View)
        );
        assert_eq!(
            p("SELECT Id FROM A WHERE Name = 'x' for reference").for_clause,
            Some(ForClause::Reference)
        );
        assert_eq!(
            err("SELECT Id FROM A FOR UPDATE"),
            "unexpected token: 'UPDATE'"
        );
        assert_eq!(
            err("SELECT Id FROM A FOR VIEW LIMIT 5"),
            "unexpected token: 'LIMIT'"
        );
    }

    fn err(s: &str) -> String {
        let e = parse(s).expect_err(s);
        assert_eq!(e.error_code, "MALFORMED_QUERY", "{s}");
        assert!(e.fields.is_none());
        e.message
    }

    fn path(s: &str) -> Path {
        Path(s.split('.').map(str::to_string).collect())
    }

    #[test]
    fn parses_select_from_with_relationships_and_count() {
        let q = p("select Id, Account.Name, name from opportunity");
        assert_eq!(q.from, "opportunity");
        assert_eq!(
            q.select,
            vec![
                SelectItem::Field(path("Id")),
                SelectItem::Field(path("Account.Name")),
                SelectItem::Field(path("name"))
            ]
        );
        assert_eq!(
            p("SELECT COUNT() FROM Account").select,
            vec![SelectItem::Count]
        );
        assert!(q.where_clause.is_none() && q.order_by.is_empty() && q.limit.is_none());
    }

    #[test]
    fn parses_where_with_precedence_and_parentheses() {
        let q = p(
            "SELECT Id FROM Opportunity WHERE Amount > 5000 AND (StageName = 'Won' OR NOT Name LIKE 'x%') AND Id NOT IN ('a','b')",
        );
        let Some(Condition::And(terms)) = q.where_clause else {
            panic!("and")
        };
        assert_eq!(terms.len(), 3);
        assert_eq!(
            terms[0],
            Condition::Compare {
                path: path("Amount"),
                op: CmpOp::Gt,
                value: Literal::Number("5000".into())
            }
        );
        let Condition::Or(alts) = &terms[1] else {
            panic!("or")
        };
        assert!(
            matches!(&alts[1], Condition::Not(inner) if matches!(**inner, Condition::Like { .. }))
        );
        assert!(
            matches!(&terms[2], Condition::In { negated: true, values, .. } if values.len() == 2)
        );
    }

    #[test]
    fn parses_literals() {
        let lit = |s: &str| match p(&format!("SELECT Id FROM A WHERE X = {s}")).where_clause {
            Some(Condition::Compare { value, .. }) => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(lit("null"), Literal::Null);
        assert_eq!(lit("TRUE"), Literal::Bool(true));
        assert_eq!(lit("-12.5"), Literal::Number("-12.5".into()));
        assert_eq!(lit("today"), Literal::Relative(DateLiteral::Today));
        assert_eq!(
            lit("LAST_N_DAYS:30"),
            Literal::Relative(DateLiteral::LastNDays(30))
        );
        assert!(matches!(lit("2024-01-31"), Literal::Date(_)));
        assert!(matches!(lit("2024-01-31T00:00:00Z"), Literal::DateTime(_)));
    }

    #[test]
    fn parses_order_limit_offset() {
        let q = p(
            "SELECT Id FROM A ORDER BY SystemModstamp, Id DESC NULLS FIRST, Name asc nulls last LIMIT 10 OFFSET 5",
        );
        assert_eq!(q.order_by.len(), 3);
        assert!(!q.order_by[0].descending && q.order_by[0].nulls_first());
        assert!(q.order_by[1].descending && q.order_by[1].nulls_first());
        assert!(!q.order_by[2].nulls_first());
        let desc = OrderItem {
            path: path("x"),
            descending: true,
            nulls_first: None,
        };
        assert!(!desc.nulls_first());
        assert_eq!((q.limit, q.offset), (Some(10), Some(5)));
    }

    #[test]
    fn reports_syntax_errors_like_salesforce() {
        assert_eq!(
            err("SELECT Id FROM Account WHERE invalid"),
            "unexpected token: '<EOF>'"
        );
        assert_eq!(
            err("SELECT Id FROM Account invalid"),
            "unexpected token: 'invalid'"
        );
        assert_eq!(err("SELECT FROM Account"), "unexpected token: 'FROM'");
        assert_eq!(err("SELECT Id FROM"), "unexpected token: '<EOF>'");
        assert_eq!(
            err("SELECT Id FROM A WHERE a = 1 AND b = 2 OR c = 3"),
            "unexpected token: 'OR'"
        );
        assert_eq!(
            err("SELECT Id FROM A WHERE a = foo"),
            "unexpected token: 'foo'"
        );
        assert_eq!(err("SELECT Id FROM A LIMIT x"), "unexpected token: 'x'");
        assert_eq!(
            err("SELECT Id FROM A WHERE (a = 1"),
            "unexpected token: '<EOF>'"
        );
        assert_eq!(err("UPDATE A"), "unexpected token: 'UPDATE'");
        assert_eq!(err(""), "unexpected token: '<EOF>'");
        assert!(parse_condition("Amount > 5000 AND Name != null").is_ok());
        let deep = format!(
            "SELECT Id FROM A WHERE {}a = 1{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert_eq!(
            parse(&deep).expect_err("too long").error_code,
            "MALFORMED_QUERY"
        );
        let deep = format!(
            "SELECT Id FROM A WHERE {}a = 1{}",
            "(".repeat(1000),
            ")".repeat(1000)
        );
        assert!(err(&deep).contains("nested deeper"));
        let nots = format!("SELECT Id FROM A WHERE {}a = 1", "NOT ".repeat(1000));
        assert!(err(&nots).contains("nested deeper"));
        let ok = format!(
            "SELECT Id FROM A WHERE {}a = 1{}",
            "(".repeat(30),
            ")".repeat(30)
        );
        assert!(parse(&ok).is_ok());
        assert!(parse_condition("Amount >").is_err());
    }
}
