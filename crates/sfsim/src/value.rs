//! Typed field values: how a record stores a field, how a JSON body value becomes one (with
//! Salesforce's leniency and its errors), how values render in replies, and how they compare
//! (text case-insensitively, ids exactly, as SOQL does).

use std::cmp::Ordering;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone,
    Timelike, Utc,
};
use serde_json::Value as Json;

use crate::error::ItemError;
use crate::schema::{FieldDef, FieldType};

/// One stored field value. The field's [`FieldType`] says how to render and compare it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Text, picklist, id and reference values.
    Str(String),
    Bool(bool),
    Int(i64),
    /// Currency, double and percent values.
    Num(f64),
    Date(NaiveDate),
    /// Always at millisecond precision.
    DateTime(DateTime<Utc>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_datetime(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::DateTime(d) => Some(*d),
            _ => None,
        }
    }

    /// The value as a reply renders it: datetimes as `2013-05-20T20:49:32.000+0000`, dates as
    /// `2022-04-29`, numbers as JSON numbers.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Str(s) => Json::String(s.clone()),
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Num(n) => serde_json::Number::from_f64(*n)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Value::Date(d) => Json::String(format_date(*d)),
            Value::DateTime(d) => Json::String(format_datetime(*d)),
        }
    }

    /// The value as text, for SOAP notifications (`50000.0`, `true`, dates as in JSON).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Num(n) => Some(format!("{n:?}")),
            Value::Date(d) => Some(format_date(*d)),
            Value::DateTime(d) => Some(d.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

/// `2013-05-20T20:49:32.000+0000`: milliseconds, `+0000`, no colon (reference §3).
pub fn format_datetime(d: DateTime<Utc>) -> String {
    // Written out digit by digit: replies render three datetimes per row, and both chrono's
    // `format` (which re-parses its pattern) and `format!` showed up in the page benchmark.
    let mut out = String::with_capacity(28);
    push_date(&mut out, d.year(), d.month(), d.day());
    out.push('T');
    push_digits(&mut out, d.hour(), 2);
    out.push(':');
    push_digits(&mut out, d.minute(), 2);
    out.push(':');
    push_digits(&mut out, d.second(), 2);
    out.push('.');
    push_digits(&mut out, d.timestamp_subsec_millis().min(999), 3);
    out.push_str("+0000");
    out
}

/// `2022-04-29`.
pub fn format_date(d: NaiveDate) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, d.year(), d.month(), d.day());
    out
}

fn push_date(out: &mut String, year: i32, month: u32, day: u32) {
    if (0..=9999).contains(&year) {
        push_digits(out, year as u32, 4);
    } else {
        // Outside four digits (never stored by the simulator, but representable).
        out.push_str(&format!("{year:04}"));
    }
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
}

/// `n` in decimal, zero-padded to `width` digits (n must fit).
fn push_digits(out: &mut String, n: u32, width: u32) {
    let mut div = 10u32.pow(width.saturating_sub(1));
    while div > 0 {
        out.push(char::from(b'0' + ((n / div) % 10) as u8));
        div /= 10;
    }
}

/// Truncates a timestamp to whole milliseconds, the precision Salesforce stores.
pub fn truncate_millis(d: DateTime<Utc>) -> DateTime<Utc> {
    let ms = d.timestamp_millis();
    Utc.timestamp_millis_opt(ms).single().unwrap_or(d)
}

/// Parses the datetime forms clients send: `2024-01-31T10:00:00Z`, with `.SSS`, with
/// `+hh:mm`, `+hhmm` or `-hh:mm`, and a bare date (midnight UTC).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(truncate_millis(d.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(d) = DateTime::<FixedOffset>::parse_from_str(s, fmt) {
            return Some(truncate_millis(d.with_timezone(&Utc)));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(truncate_millis(d.and_utc()));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

/// Parses a date: `2024-01-31`, or the date part of a datetime.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d);
    }
    parse_datetime(s).map(|d| d.date_naive())
}

/// Jackson's name of a JSON token, as Salesforce's parser errors quote it.
fn token_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "VALUE_NULL",
        Json::Bool(true) => "VALUE_TRUE",
        Json::Bool(false) => "VALUE_FALSE",
        Json::Number(n) if n.is_i64() || n.is_u64() => "VALUE_NUMBER_INT",
        Json::Number(_) => "VALUE_NUMBER_FLOAT",
        Json::String(_) => "VALUE_STRING",
        Json::Array(_) => "START_ARRAY",
        Json::Object(_) => "START_OBJECT",
    }
}

fn parser_error(field: &FieldDef, v: &Json) -> ItemError {
    let shown = match v {
        Json::String(s) => s.clone(),
        Json::Array(_) => "[".to_string(),
        Json::Object(_) => "{".to_string(),
        other => other.to_string(),
    };
    let type_name = match field.field_type {
        FieldType::DateTime => "dateTime",
        t => t.describe_name(),
    };
    ItemError::new(
        "JSON_PARSER_ERROR",
        format!(
            "Cannot deserialize instance of {type_name} from {} value {shown} or request may be missing a required field",
            token_name(v)
        ),
        vec![field.name.clone()],
    )
}

/// Converts a JSON body value to a field's value, as Salesforce's deserializer does: numbers
/// and booleans are accepted for text fields, numeric strings for number fields, `"true"` for
/// booleans; anything else is a per-item error naming the field.
pub fn from_json(field: &FieldDef, v: &Json) -> Result<Value, ItemError> {
    if v.is_null() {
        // A checkbox is never null: clearing it unchecks it.
        return Ok(if field.field_type == FieldType::Boolean {
            Value::Bool(false)
        } else {
            Value::Null
        });
    }
    let err = || parser_error(field, v);
    match field.field_type {
        t if t.is_text() => match v {
            Json::String(s) => Ok(if s.is_empty() {
                Value::Null
            } else {
                Value::Str(s.clone())
            }),
            Json::Number(n) => Ok(Value::Str(n.to_string())),
            Json::Bool(b) => Ok(Value::Str(b.to_string())),
            _ => Err(err()),
        },
        FieldType::Id | FieldType::Reference => match v {
            Json::String(s) if s.is_empty() => Ok(Value::Null),
            Json::String(s) => match crate::ids::to_18(s) {
                Ok(id) => Ok(Value::Str(id)),
                Err(_) => Err(ItemError::new(
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {s}", field.label),
                    vec![field.name.clone()],
                )),
            },
            _ => Err(err()),
        },
        FieldType::Boolean => match v {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(err()),
        },
        FieldType::Int => {
            let n = match v {
                Json::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                Json::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            let n = n.ok_or_else(err)?;
            let max = 10i64.pow(field.precision.min(18));
            if n.abs() >= max {
                return Err(ItemError::new(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    format!(
                        "{}: value outside of valid range on numeric field: {n}",
                        field.label
                    ),
                    vec![field.name.clone()],
                ));
            }
            Ok(Value::Int(n))
        }
        FieldType::Currency | FieldType::Double | FieldType::Percent => {
            let n = match v {
                Json::Number(n) => n.as_f64(),
                Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                _ => None,
            };
            let n = n.ok_or_else(err)?;
            let int_digits = field.precision.saturating_sub(field.scale).min(300);
            if n.abs() >= 10f64.powi(int_digits as i32) {
                return Err(ItemError::new(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    format!(
                        "{}: value outside of valid range on numeric field: {n}",
                        field.label
                    ),
                    vec![field.name.clone()],
                ));
            }
            Ok(Value::Num(n))
        }
        FieldType::Date => match v {
            Json::String(s) if s.is_empty() => Ok(Value::Null),
            Json::String(s) => parse_date(s).map(Value::Date).ok_or_else(err),
            _ => Err(err()),
        },
        FieldType::DateTime => match v {
            Json::String(s) if s.is_empty() => Ok(Value::Null),
            Json::String(s) => parse_datetime(s).map(Value::DateTime).ok_or_else(err),
            _ => Err(err()),
        },
        _ => Err(err()),
    }
}

/// Case-insensitive text order without allocating (SOQL compares text this way).
pub fn cmp_text_ci(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()));
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

/// Case-insensitive text equality.
pub fn eq_text_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    cmp_text_ci(a, b) == Ordering::Equal
}

/// Orders two non-null values of one field type. Text compares case-insensitively, ids
/// exactly; values of different kinds (which a bound query never produces) order by kind.
pub fn cmp_values(t: FieldType, a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => {
            if t.is_id() {
                x.cmp(y)
            } else {
                cmp_text_ci(x, y)
            }
        }
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Num(x), Value::Num(y)) => x.total_cmp(y),
        (Value::Int(x), Value::Num(y)) => (*x as f64).total_cmp(y),
        (Value::Num(x), Value::Int(y)) => x.total_cmp(&(*y as f64)),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::DateTime(x), Value::DateTime(y)) => x.cmp(y),
        _ => kind_rank(a).cmp(&kind_rank(b)),
    }
}

fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Num(_) => 2,
        Value::Date(_) => 3,
        Value::DateTime(_) => 4,
        Value::Str(_) => 5,
    }
}

/// Equality under SOQL's rules (text case-insensitive, ids exact).
pub fn eq_values(t: FieldType, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Str(x), Value::Str(y)) if !t.is_id() => eq_text_ci(x, y),
        _ => cmp_values(t, a, b) == Ordering::Equal,
    }
}

/// The key under which a value is kept in a lookup index (case-insensitive for text).
pub fn index_key(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.to_lowercase()),
        Value::Int(i) => Some(i.to_string()),
        Value::Num(n) => Some(format!("{n:?}")),
        other => other.to_text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(t: FieldType) -> FieldDef {
        FieldDef::new("F", "F", t)
    }

    #[test]
    fn datetimes_render_like_salesforce() {
        let d = parse_datetime("2013-05-20T20:49:32Z").expect("parses");
        assert_eq!(
            Value::DateTime(d).to_json(),
            json!("2013-05-20T20:49:32.000+0000")
        );
        let d = parse_datetime("2013-05-20T22:49:32.123+02:00").expect("parses");
        assert_eq!(format_datetime(d), "2013-05-20T20:49:32.123+0000");
        let d = parse_datetime("2013-05-20T20:49:32.000+0000").expect("parses");
        assert_eq!(format_datetime(d), "2013-05-20T20:49:32.000+0000");
        let d = parse_datetime("2013-05-20T20:49:32.1234567Z").expect("parses");
        assert_eq!(format_datetime(d), "2013-05-20T20:49:32.123+0000");
        assert!(parse_datetime("2013-13-20T20:49:32Z").is_none());
        let d = parse_datetime("0999-01-02T03:04:05.006Z").expect("parses");
        assert_eq!(format_datetime(d), "0999-01-02T03:04:05.006+0000");
        assert_eq!(format_date(d.date_naive()), "0999-01-02");
        assert_eq!(
            Value::Date(parse_date("2022-04-29").expect("date")).to_json(),
            json!("2022-04-29")
        );
        assert_eq!(Value::Num(5000.0).to_json(), json!(5000.0));
    }

    #[test]
    fn json_values_coerce_per_type() {
        assert_eq!(
            from_json(&field(FieldType::String), &json!(12)),
            Ok(Value::Str("12".into()))
        );
        assert_eq!(
            from_json(&field(FieldType::String), &json!("")),
            Ok(Value::Null)
        );
        assert_eq!(
            from_json(&field(FieldType::Currency), &json!("12.5")),
            Ok(Value::Num(12.5))
        );
        assert_eq!(
            from_json(&field(FieldType::Int), &json!(7.0)),
            Ok(Value::Int(7))
        );
        assert_eq!(
            from_json(&field(FieldType::Boolean), &json!("TRUE")),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            from_json(&field(FieldType::Boolean), &Json::Null),
            Ok(Value::Bool(false))
        );
        assert!(from_json(&field(FieldType::Int), &json!(7.5)).is_err());
        let e = from_json(&field(FieldType::Currency), &json!("abc")).expect_err("not a number");
        assert_eq!(e.status_code, "JSON_PARSER_ERROR");
        assert!(
            e.message.contains("VALUE_STRING value abc"),
            "{}",
            e.message
        );
        let e = from_json(&field(FieldType::Date), &json!("2024-02-30")).expect_err("bad date");
        assert_eq!(e.status_code, "JSON_PARSER_ERROR");
        assert!(from_json(&field(FieldType::String), &json!({"a": 1})).is_err());
        assert!(from_json(&field(FieldType::Boolean), &json!(1)).is_err());
        let e = from_json(&field(FieldType::Reference), &json!("nope")).expect_err("bad id");
        assert_eq!(e.status_code, "MALFORMED_ID");
        assert_eq!(
            from_json(&field(FieldType::Reference), &json!("001RM000003oLnn")),
            Ok(Value::Str("001RM000003oLnnYAE".into()))
        );
        let big = from_json(&field(FieldType::Currency), &json!(1e20)).expect_err("range");
        assert_eq!(big.status_code, "NUMBER_OUTSIDE_VALID_RANGE");
    }

    #[test]
    fn comparisons_follow_soql() {
        let a = Value::Str("apple".into());
        let b = Value::Str("Banana".into());
        assert_eq!(cmp_values(FieldType::String, &a, &b), Ordering::Less);
        assert!(eq_values(
            FieldType::String,
            &Value::Str("ÄBC".into()),
            &Value::Str("äbc".into())
        ));
        // Ids compare exactly: 'B' < 'a' in ASCII.
        assert_eq!(cmp_values(FieldType::Id, &b, &a), Ordering::Less);
        assert!(!eq_values(
            FieldType::Id,
            &Value::Str("a".into()),
            &Value::Str("A".into())
        ));
        assert_eq!(
            cmp_values(FieldType::Double, &Value::Int(2), &Value::Num(2.5)),
            Ordering::Less
        );
        assert_eq!(index_key(&Value::Str("AbC".into())).as_deref(), Some("abc"));
    }
}
