//! CSV as Bulk API 2.0 speaks it, converted to and from the JSON values the pipeline uses.
//!
//! Reading (query results): a header row of API names (parent fields dotted, `Account.Name`),
//! every value a string; an empty cell is null (Salesforce writes null and `""` alike). Each
//! cell becomes the JSON value the REST API would have returned, by the field's describe type
//! ([`FieldTypes`]): numbers for `int`/`double`/`currency`/`percent`, booleans for `boolean`,
//! datetimes in the REST form `2024-03-10T10:00:00.000+0000` (Bulk writes `...Z`), text for
//! the rest; dotted columns become nested parent objects (`null` when every cell is empty), as
//! in REST rows. Writing (uploads): a header and rows, every value quoted; `Value::Null` is
//! `#N/A` (sets the field to null), an absent field an empty cell (leaves it alone).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Number, Value};

use crate::salesforce::FieldTypes;

/// A cell that sets a field to null in an upload.
pub const NULL_CELL: &str = "#N/A";

/// Parses a CSV body into its header and rows of cells.
pub fn parse_table(body: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    // NUL bytes occur in real data and break parsers (reference §3.1): dropped.
    let cleaned;
    let text = if body.contains('\0') {
        cleaned = body.replace('\0', "");
        cleaned.as_str()
    } else {
        body
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("unreadable CSV header: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("unreadable CSV row: {e}"))?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

/// One CSV row as a REST-shaped record, typed by `types` (the queried object's fields).
pub fn record_of(header: &[String], cells: &[String], types: &FieldTypes) -> Map<String, Value> {
    let mut record = Map::new();
    for (name, cell) in header.iter().zip(cells) {
        match name.split_once('.') {
            None => {
                let lower = name.to_ascii_lowercase();
                // IsDeleted (a queryAll job's) is boolean on every object, described or not:
                // the delete stage reads it as a JSON boolean.
                let ty = types
                    .get(&lower)
                    .map(String::as_str)
                    .or((lower == "isdeleted").then_some("boolean"));
                record.insert(name.clone(), typed(cell, ty));
            }
            Some((parent, field)) => {
                let slot = record
                    .entry(parent.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = slot {
                    // Parent types are not described here: text, as most parent fields are.
                    map.insert(field.to_string(), typed(cell, None));
                }
            }
        }
    }
    // A parent whose every cell is empty is no parent.
    for value in record.values_mut() {
        if let Value::Object(map) = value
            && map.values().all(Value::is_null)
        {
            *value = Value::Null;
        }
    }
    record
}

/// A cell as the JSON value of a field of describe type `ty`.
pub fn typed(cell: &str, ty: Option<&str>) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    match ty {
        Some("int") => cell
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(cell.to_string())),
        Some("double" | "currency" | "percent") => cell
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(cell.to_string())),
        Some("boolean") => match cell.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(cell.to_string()),
        },
        Some("datetime") => match parse_datetime(cell) {
            Some(at) => Value::String(rest_datetime(at)),
            None => Value::String(cell.to_string()),
        },
        _ => Value::String(cell.to_string()),
    }
}

/// An ISO-8601 datetime, read leniently (`Z`, `+0000` or `+00:00`, with or without millis).
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some(at.with_timezone(&Utc));
        }
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// A datetime as the REST API writes it: `2013-05-20T20:49:32.000+0000`.
pub fn rest_datetime(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// One upload cell of a JSON value: `#N/A` for null, text for the rest.
pub fn cell_of(value: &Value) -> String {
    match value {
        Value::Null => NULL_CELL.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// An upload: the header, then one row per record (a field a record lacks is an empty cell,
/// which leaves the field alone).
pub fn write_table(header: &[String], records: &[Map<String, Value>]) -> Result<String, String> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    writer
        .write_record(header)
        .map_err(|e| format!("cannot write CSV: {e}"))?;
    for record in records {
        let row: Vec<String> = header
            .iter()
            .map(|name| record.get(name).map(cell_of).unwrap_or_default())
            .collect();
        writer
            .write_record(&row)
            .map_err(|e| format!("cannot write CSV: {e}"))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| format!("cannot write CSV: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("cannot write CSV: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types() -> FieldTypes {
        [
            ("amount", "currency"),
            ("systemmodstamp", "datetime"),
            ("isprivate", "boolean"),
            ("closedate", "date"),
            ("numberofemployees", "int"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn cells_take_their_describe_types() {
        let (header, rows) = parse_table(
            "\"Id\",\"Amount\",\"SystemModstamp\",\"IsPrivate\",\"CloseDate\",\"Name\",\"Account.Name\"\n\
             \"006A\",\"5000.5\",\"2024-03-10T10:00:00.000Z\",\"true\",\"2024-06-30\",\"a \"\"b\"\", c\",\"\"\n\
             \"006B\",\"\",\"2024-03-10T10:00:01Z\",\"false\",\"\",\"x\",\"Acme\"\n",
        )
        .unwrap();
        let a = record_of(&header, &rows[0], &types());
        assert_eq!(a["Amount"], json!(5000.5));
        assert_eq!(a["SystemModstamp"], "2024-03-10T10:00:00.000+0000");
        assert_eq!(a["IsPrivate"], json!(true));
        assert_eq!(a["CloseDate"], "2024-06-30");
        assert_eq!(a["Name"], "a \"b\", c");
        assert_eq!(a["Account"], Value::Null);
        let b = record_of(&header, &rows[1], &types());
        assert_eq!(b["Amount"], Value::Null);
        assert_eq!(b["SystemModstamp"], "2024-03-10T10:00:01.000+0000");
        assert_eq!(b["Account"], json!({"Name": "Acme"}));
    }

    #[test]
    fn is_deleted_is_a_boolean_even_when_not_described() {
        let header = vec!["Id".to_string(), "IsDeleted".to_string()];
        let cells = vec!["006000000000001AAA".to_string(), "true".to_string()];
        let record = record_of(&header, &cells, &FieldTypes::default());
        assert_eq!(record["IsDeleted"], Value::Bool(true));
    }

    #[test]
    fn datetimes_parse_leniently() {
        for text in [
            "2024-03-10T10:00:00.000Z",
            "2024-03-10T10:00:00.000+0000",
            "2024-03-10T10:00:00+00:00",
            "2024-03-10T12:00:00.000+0200",
            "2024-03-10T10:00:00",
        ] {
            assert_eq!(
                parse_datetime(text).map(rest_datetime).as_deref(),
                Some("2024-03-10T10:00:00.000+0000"),
                "{text}"
            );
        }
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn uploads_write_null_as_na_and_absent_as_empty() {
        let Value::Object(r) = json!({"Id": "006A", "Amount": null, "Name": "x,\"y\""}) else {
            unreachable!()
        };
        let header: Vec<String> = ["Id", "Name", "Amount", "StageName"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = write_table(&header, &[r]).unwrap();
        assert_eq!(
            text,
            "\"Id\",\"Name\",\"Amount\",\"StageName\"\n\"006A\",\"x,\"\"y\"\"\",\"#N/A\",\"\"\n"
        );
    }

    #[test]
    fn nul_bytes_are_dropped() {
        let (_, rows) = parse_table("\"Name\"\n\"a\0b\"\n").unwrap();
        assert_eq!(rows[0][0], "ab");
    }
}
