//! Bulk CSV on disk, never whole in memory: a results file (a query job's page, an ingest
//! job's result file) is downloaded into an unnamed temporary file and read back a chunk of
//! rows at a time ([`CsvRows`]); an upload is written row by row into one ([`CsvUpload`]) and
//! streamed from it. So a results page of 250,000 rows, or an upload of 100 MB, costs the
//! process a chunk of rows, not the file.
//!
//! The temporary files are unnamed (`tempfile::tempfile`, in the system's temporary
//! directory, `TMPDIR`): the kernel removes them when the process ends, even by `kill -9`.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::csv::{cell_of, record_of};
use crate::salesforce::FieldTypes;

/// A new unnamed temporary file.
pub fn temp_file() -> Result<File, String> {
    tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))
}

/// The rows of a CSV file with a header, read a chunk at a time; an empty file has no rows.
pub struct CsvRows {
    reader: Option<csv::Reader<File>>,
    header: Vec<String>,
}

impl std::fmt::Debug for CsvRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvRows")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl CsvRows {
    /// Reads `file` from its start.
    pub fn open(mut file: File) -> Result<CsvRows, String> {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| format!("cannot read the CSV file: {e}"))?;
        let empty = file
            .metadata()
            .map_err(|e| format!("cannot read the CSV file: {e}"))?
            .len()
            == 0;
        if empty {
            return Ok(CsvRows {
                reader: None,
                header: Vec::new(),
            });
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(file);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| format!("unreadable CSV header: {e}"))?
            .iter()
            .map(clean)
            .collect();
        Ok(CsvRows {
            reader: Some(reader),
            header,
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The next at most `n` rows of cells; empty at the end.
    pub fn next_rows(&mut self, n: usize) -> Result<Vec<Vec<String>>, String> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::with_capacity(n.min(4096));
        let mut record = csv::StringRecord::new();
        while rows.len() < n {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| format!("unreadable CSV row: {e}"))?;
            if !more {
                break;
            }
            rows.push(record.iter().map(clean).collect());
        }
        Ok(rows)
    }
}

/// NUL bytes occur in real data and break parsers (reference §3.1): dropped.
fn clean(cell: &str) -> String {
    if cell.contains('\0') {
        cell.replace('\0', "")
    } else {
        cell.to_string()
    }
}

/// A query job's results file read back as REST-shaped records, typed by the object's
/// describe ([`record_of`]).
#[derive(Debug)]
pub struct CsvRecords {
    rows: CsvRows,
    types: Arc<FieldTypes>,
}

impl CsvRecords {
    pub fn new(rows: CsvRows, types: Arc<FieldTypes>) -> CsvRecords {
        CsvRecords { rows, types }
    }

    /// The next at most `n` records; empty at the end.
    pub fn next_records(&mut self, n: usize) -> Result<Vec<Map<String, Value>>, String> {
        let rows = self.rows.next_rows(n)?;
        let header = self.rows.header();
        Ok(rows
            .iter()
            .map(|cells| record_of(header, cells, &self.types))
            .collect())
    }
}

/// An upload being written: a header, then a row per record, every value quoted (`#N/A` for
/// null, an empty cell for a field a record lacks: left alone).
pub struct CsvUpload {
    writer: csv::Writer<File>,
    header: Vec<String>,
    rows: u64,
}

impl CsvUpload {
    /// A new upload with these columns.
    pub fn new(header: Vec<String>) -> Result<CsvUpload, String> {
        let mut writer = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(temp_file()?);
        writer
            .write_record(&header)
            .map_err(|e| format!("cannot write CSV: {e}"))?;
        Ok(CsvUpload {
            writer,
            header,
            rows: 0,
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one record's row.
    pub fn push(&mut self, record: &Map<String, Value>) -> Result<(), String> {
        let row = self
            .header
            .iter()
            .map(|name| record.get(name).map(cell_of).unwrap_or_default());
        self.writer
            .write_record(row)
            .map_err(|e| format!("cannot write CSV: {e}"))?;
        self.rows += 1;
        Ok(())
    }

    /// Bytes written so far (flushed).
    pub fn bytes(&mut self) -> Result<u64, String> {
        self.writer
            .flush()
            .map_err(|e| format!("cannot write CSV: {e}"))?;
        self.writer
            .get_ref()
            .metadata()
            .map(|m| m.len())
            .map_err(|e| format!("cannot write CSV: {e}"))
    }

    /// The finished file, to upload.
    pub fn finish(self) -> Result<File, String> {
        self.writer
            .into_inner()
            .map_err(|e| format!("cannot write CSV: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn an_upload_reads_back_in_chunks() {
        let mut up = CsvUpload::new(vec!["Id".into(), "Name".into(), "Amount".into()]).unwrap();
        for i in 0..5 {
            up.push(&map(
                json!({"Id": format!("006{i}"), "Name": "a,\"b\"", "Amount": null}),
            ))
            .unwrap();
        }
        up.push(&map(json!({"Id": "0069"}))).unwrap();
        assert_eq!(up.rows(), 6);
        assert!(up.bytes().unwrap() > 0);
        let mut rows = CsvRows::open(up.finish().unwrap()).unwrap();
        assert_eq!(rows.header(), ["Id", "Name", "Amount"]);
        let first = rows.next_rows(4).unwrap();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0], ["0060", "a,\"b\"", "#N/A"]);
        let rest = rows.next_rows(4).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[1], ["0069", "", ""]);
        assert!(rows.next_rows(4).unwrap().is_empty());
    }

    #[test]
    fn an_empty_file_has_no_rows_and_nul_bytes_are_dropped() {
        let mut rows = CsvRows::open(temp_file().unwrap()).unwrap();
        assert!(rows.header().is_empty());
        assert!(rows.next_rows(10).unwrap().is_empty());
        let mut file = temp_file().unwrap();
        std::io::Write::write_all(&mut file, b"\"Id\",\"Name\"\n\"006A\",\"x\0y\"\n").unwrap();
        let mut rows = CsvRows::open(file).unwrap();
        assert_eq!(rows.next_rows(10).unwrap(), [["006A", "xy"]]);
    }

    #[test]
    fn a_ragged_file_is_an_error_naming_the_row() {
        let mut file = temp_file().unwrap();
        std::io::Write::write_all(&mut file, b"\"Id\",\"Name\"\n\"006A\"\n").unwrap();
        let mut rows = CsvRows::open(file).unwrap();
        let err = rows.next_rows(10).unwrap_err();
        assert!(err.contains("unreadable CSV row"), "{err}");
    }
}
