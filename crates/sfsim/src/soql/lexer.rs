//! SOQL lexer: turns query text into tokens (identifiers, literals, punctuation), decoding
//! string escapes and recognising unquoted date and datetime literals. Keywords are not
//! special here: the parser compares identifiers case-insensitively.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

use crate::error::ApiError;
use crate::value::truncate_millis;

/// One piece of a LIKE pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum LikePart {
    /// A literal character (including escaped `\%` and `\_`).
    Char(char),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters.
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    Ident(String),
    /// A number as written (digits with an optional fraction).
    Number(String),
    /// A quoted string: its decoded text, and its reading as a LIKE pattern.
    Str {
        text: String,
        pattern: Vec<LikePart>,
    },
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Comma,
    LParen,
    RParen,
    Dot,
    Colon,
    Minus,
    Plus,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

/// A token and the text it was read from (for `unexpected token: '...'`).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub text: String,
}

/// Splits SOQL text into tokens, ending with [`TokenKind::Eof`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, ApiError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let kind = match c {
            ',' => single(&mut i, TokenKind::Comma),
            '(' => single(&mut i, TokenKind::LParen),
            ')' => single(&mut i, TokenKind::RParen),
            '.' => single(&mut i, TokenKind::Dot),
            ':' => single(&mut i, TokenKind::Colon),
            '-' => single(&mut i, TokenKind::Minus),
            '+' => single(&mut i, TokenKind::Plus),
            '=' => single(&mut i, TokenKind::Eq),
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                TokenKind::Ne
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    TokenKind::Le
                }
                Some('>') => {
                    i += 2;
                    TokenKind::Ne
                }
                _ => single(&mut i, TokenKind::Lt),
            },
            '>' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    TokenKind::Ge
                }
                _ => single(&mut i, TokenKind::Gt),
            },
            '\'' => lex_string(&chars, &mut i)?,
            c if c.is_ascii_digit() => lex_number_or_date(&chars, &mut i)?,
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                TokenKind::Ident(chars[start..i].iter().collect())
            }
            other => return Err(unexpected(&other.to_string())),
        };
        out.push(Token {
            kind,
            text: chars[start..i].iter().collect(),
        });
    }
    out.push(Token {
        kind: TokenKind::Eof,
        text: "<EOF>".to_string(),
    });
    Ok(out)
}

/// `MALFORMED_QUERY: unexpected token: '...'`, Salesforce's words for a syntax error.
pub fn unexpected(token: &str) -> ApiError {
    ApiError::malformed_query(format!("unexpected token: '{token}'"))
}

fn single(i: &mut usize, kind: TokenKind) -> TokenKind {
    *i += 1;
    kind
}

fn lex_string(chars: &[char], i: &mut usize) -> Result<TokenKind, ApiError> {
    let start = *i;
    *i += 1;
    let mut text = String::new();
    let mut pattern = Vec::new();
    loop {
        let Some(&c) = chars.get(*i) else {
            let shown: String = chars[start..].iter().collect();
            return Err(ApiError::malformed_query(format!(
                "line 1:{start} mismatched character '<EOF>' expecting ''' in {shown}"
            )));
        };
        *i += 1;
        match c {
            '\'' => break,
            '\\' => {
                let Some(&e) = chars.get(*i) else { continue };
                *i += 1;
                let decoded = match e {
                    'n' | 'N' => '\n',
                    'r' | 'R' => '\r',
                    't' | 'T' => '\t',
                    'b' | 'B' => '\u{8}',
                    'f' | 'F' => '\u{c}',
                    '"' => '"',
                    '\'' => '\'',
                    '\\' => '\\',
                    '%' | '_' => {
                        // Literal in LIKE; as a plain string SOQL keeps the backslash.
                        text.push('\\');
                        text.push(e);
                        pattern.push(LikePart::Char(e));
                        continue;
                    }
                    'u' | 'U' => {
                        let hex: String = chars
                            .get(*i..*i + 4)
                            .map(|s| s.iter().collect())
                            .unwrap_or_default();
                        let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        match decoded {
                            Some(ch) if hex.len() == 4 => {
                                *i += 4;
                                ch
                            }
                            _ => return Err(invalid_escape(chars, start)),
                        }
                    }
                    _ => return Err(invalid_escape(chars, start)),
                };
                text.push(decoded);
                pattern.push(LikePart::Char(decoded));
            }
            '%' => {
                text.push(c);
                pattern.push(LikePart::Any);
            }
            '_' => {
                text.push(c);
                pattern.push(LikePart::One);
            }
            c => {
                text.push(c);
                pattern.push(LikePart::Char(c));
            }
        }
    }
    Ok(TokenKind::Str { text, pattern })
}

fn invalid_escape(chars: &[char], start: usize) -> ApiError {
    let mut end = start + 1;
    while end < chars.len() && chars[end] != '\'' {
        end += if chars[end] == '\\' { 2 } else { 1 };
    }
    let shown: String = chars[start..(end + 1).min(chars.len())].iter().collect();
    ApiError::malformed_query(format!(
        "Invalid string literal {shown}. Illegal character sequence '\\' in string literal."
    ))
}

fn digits_at(chars: &[char], at: usize, n: usize) -> bool {
    (at..at + n).all(|k| chars.get(k).is_some_and(|c| c.is_ascii_digit()))
}

fn lex_number_or_date(chars: &[char], i: &mut usize) -> Result<TokenKind, ApiError> {
    let start = *i;
    // A date: dddd-dd-dd, optionally followed by Thh:mm:ss[.fff](Z|+hh:mm|-hh:mm).
    if digits_at(chars, start, 4)
        && chars.get(start + 4) == Some(&'-')
        && digits_at(chars, start + 5, 2)
        && chars.get(start + 7) == Some(&'-')
        && digits_at(chars, start + 8, 2)
    {
        let mut end = start + 10;
        let is_datetime = chars.get(end) == Some(&'T');
        if is_datetime {
            end += 1;
            while end < chars.len()
                && (chars[end].is_ascii_alphanumeric()
                    || matches!(chars[end], ':' | '.' | '+' | '-'))
            {
                end += 1;
            }
        }
        let text: String = chars[start..end].iter().collect();
        *i = end;
        if is_datetime {
            return parse_datetime_literal(&text).map(TokenKind::DateTime);
        }
        return NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(TokenKind::Date)
            .map_err(|_| {
                ApiError::malformed_query(format!(
                    "line 1:{start} no viable alternative at character '{text}'"
                ))
            });
    }
    while *i < chars.len() && chars[*i].is_ascii_digit() {
        *i += 1;
    }
    if chars.get(*i) == Some(&'.') && chars.get(*i + 1).is_some_and(|c| c.is_ascii_digit()) {
        *i += 1;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
    }
    if chars
        .get(*i)
        .is_some_and(|c| c.is_alphabetic() || *c == '_')
    {
        let mut end = *i;
        while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
            end += 1;
        }
        let text: String = chars[start..end].iter().collect();
        return Err(unexpected(&text));
    }
    Ok(TokenKind::Number(chars[start..*i].iter().collect()))
}

/// `2024-01-31T10:00:00Z`, `...00.000Z`, `...+05:30`, `...-08:00` (SOQL wants a zone).
fn parse_datetime_literal(text: &str) -> Result<DateTime<Utc>, ApiError> {
    let bad = || {
        ApiError::malformed_query(format!(
            "line 1:0 no viable alternative at character '{text}'"
        ))
    };
    let normalized = match text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        Some(head) => format!("{head}+00:00"),
        None => text.to_string(),
    };
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z"] {
        if let Ok(d) = DateTime::<FixedOffset>::parse_from_str(&normalized, fmt) {
            return Ok(truncate_millis(d.with_timezone(&Utc)));
        }
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize(s)
            .expect("lexes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn lexes_punctuation_and_identifiers() {
        use TokenKind::*;
        assert_eq!(
            kinds("SELECT Id,Account.Name FROM x WHERE a<>1 AND b!=2 AND c<=3 AND d>=4"),
            vec![
                Ident("SELECT".into()),
                Ident("Id".into()),
                Comma,
                Ident("Account".into()),
                Dot,
                Ident("Name".into()),
                Ident("FROM".into()),
                Ident("x".into()),
                Ident("WHERE".into()),
                Ident("a".into()),
                Ne,
                Number("1".into()),
                Ident("AND".into()),
                Ident("b".into()),
                Ne,
                Number("2".into()),
                Ident("AND".into()),
                Ident("c".into()),
                Le,
                Number("3".into()),
                Ident("AND".into()),
                Ident("d".into()),
                Ge,
                Number("4".into()),
                Eof
            ]
        );
        assert_eq!(kinds("5000.50 LAST_N_DAYS:7")[0], Number("5000.50".into()));
        assert_eq!(kinds("LAST_N_DAYS:7")[1], Colon);
    }

    #[test]
    fn decodes_string_escapes() {
        let k = kinds(r#"'O\'Brien \\ \n\t \"x\" \u00e9'"#);
        match &k[0] {
            TokenKind::Str { text, .. } => assert_eq!(text, "O'Brien \\ \n\t \"x\" é"),
            other => panic!("{other:?}"),
        }
        match &kinds(r"'a\%b_%'")[0] {
            TokenKind::Str { text, pattern } => {
                assert_eq!(text, "a\\%b_%");
                assert_eq!(
                    pattern,
                    &vec![
                        LikePart::Char('a'),
                        LikePart::Char('%'),
                        LikePart::Char('b'),
                        LikePart::One,
                        LikePart::Any
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        let e = tokenize(r"'bad \q'").expect_err("bad escape");
        assert_eq!(e.error_code, "MALFORMED_QUERY");
        assert!(tokenize("'open").is_err());
    }

    #[test]
    fn lexes_dates_and_datetimes() {
        let d = |s: &str| match &kinds(s)[0] {
            TokenKind::DateTime(d) => crate::value::format_datetime(*d),
            other => panic!("{other:?}"),
        };
        assert_eq!(d("2024-01-31T10:00:00Z"), "2024-01-31T10:00:00.000+0000");
        assert_eq!(
            d("2024-01-31T10:00:00.123Z"),
            "2024-01-31T10:00:00.123+0000"
        );
        assert_eq!(
            d("2024-01-31T10:00:00+02:00"),
            "2024-01-31T08:00:00.000+0000"
        );
        assert_eq!(
            d("2024-01-31T10:00:00.5-01:30"),
            "2024-01-31T11:30:00.500+0000"
        );
        assert!(matches!(kinds("2024-01-31")[0], TokenKind::Date(_)));
        assert!(tokenize("2024-01-31T10:00:00").is_err());
        assert!(tokenize("2024-02-30").is_err());
        assert_eq!(
            tokenize("x # y").expect_err("bad char").message,
            "unexpected token: '#'"
        );
    }
}
