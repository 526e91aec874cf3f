//! CSV as Bulk API 2.0 reads and writes it: the six column delimiters, LF or CRLF line
//! endings, every written value double-quoted (`""` escaping), and uploads parsed into a
//! header row and data rows.

use csv::{QuoteStyle, ReaderBuilder, Terminator, WriterBuilder};

/// `columnDelimiter` of a job: its name and byte.
pub const DELIMITERS: [(&str, u8); 6] = [
    ("BACKQUOTE", b'`'),
    ("CARET", b'^'),
    ("COMMA", b','),
    ("PIPE", b'|'),
    ("SEMICOLON", b';'),
    ("TAB", b'\t'),
];

/// The byte of a `columnDelimiter` name.
pub fn delimiter_byte(name: &str) -> Option<u8> {
    DELIMITERS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// How a job's CSV is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvFormat {
    pub delimiter: u8,
    /// `CRLF` rather than `LF`.
    pub crlf: bool,
}

impl Default for CsvFormat {
    fn default() -> Self {
        CsvFormat {
            delimiter: b',',
            crlf: false,
        }
    }
}

/// An uploaded CSV: the header row and the data rows (every row as long as the header).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Parses an upload. A UTF-8 byte order mark is skipped; LF and CRLF both end rows. A row
/// whose length differs from the header's, or text that is not UTF-8, is an error message in
/// Salesforce's `InvalidBatch : ...` style.
pub fn parse(bytes: &[u8], format: CsvFormat) -> Result<Table, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = ReaderBuilder::new()
        .delimiter(format.delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("InvalidBatch : Failed to parse CSV header: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err("InvalidBatch : The CSV has no header row".into());
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("InvalidBatch : Failed to parse CSV: {e}"))?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(Table { header, rows })
}

/// Writes rows as CSV, every value quoted, in the job's format.
pub fn write<I, R>(header: &[String], rows: I, format: CsvFormat) -> Vec<u8>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut writer = WriterBuilder::new()
        .delimiter(format.delimiter)
        .quote_style(QuoteStyle::Always)
        .terminator(if format.crlf {
            Terminator::CRLF
        } else {
            Terminator::Any(b'\n')
        })
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail; a failed row would only be left out.
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(row);
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_values_crlf_and_a_bom() {
        let t = parse(
            b"\xEF\xBB\xBFName,Description\r\n\"A, \"\"x\"\"\",\"two\nlines\"\r\nB,\r\n",
            CsvFormat::default(),
        )
        .expect("csv");
        assert_eq!(t.header, vec!["Name", "Description"]);
        assert_eq!(t.rows[0], vec!["A, \"x\"", "two\nlines"]);
        assert_eq!(t.rows[1], vec!["B", ""]);
    }

    #[test]
    fn other_delimiters_and_ragged_rows() {
        let f = CsvFormat {
            delimiter: b'|',
            crlf: false,
        };
        let t = parse(b"Name|Amount\nA|1\n", f).expect("csv");
        assert_eq!(t.rows[0], vec!["A", "1"]);
        let e = parse(b"Name,Amount\nA\n", CsvFormat::default()).expect_err("ragged");
        assert!(e.starts_with("InvalidBatch : "), "{e}");
        assert!(parse(b"", CsvFormat::default()).is_err());
    }

    #[test]
    fn writes_every_value_quoted() {
        let out = write(
            &["Id".to_string(), "Name".to_string()],
            vec![vec!["1", "a \"b\""], vec!["2", ""]],
            CsvFormat::default(),
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "\"Id\",\"Name\"\n\"1\",\"a \"\"b\"\"\"\n\"2\",\"\"\n"
        );
        let crlf = write(
            &["Id".to_string()],
            vec![vec!["1"]],
            CsvFormat {
                delimiter: b';',
                crlf: true,
            },
        );
        assert_eq!(crlf, b"\"Id\"\r\n\"1\"\r\n");
        assert_eq!(delimiter_byte("TAB"), Some(b'\t'));
        assert_eq!(delimiter_byte("tab"), None);
    }
}
