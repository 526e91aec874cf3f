//! The ports of the direction pass: the little it needs from an org (query pages, look up,
//! write through collections) and from the state store (links, failures, inbox, watermark,
//! one transaction per page). The real Salesforce client and SQLite store are adapted to
//! these traits; the tests use in-memory fakes. Keeping them small keeps the pass testable
//! without a network or a database.
//!
//! Contracts the pass relies on:
//! - An [`OrgPort`] query returns every row matching at the time of the call, in the order
//!   asked, in batches linked by a cursor; writes return one outcome per input record, in input
//!   order. A whole-call failure is an `Err`; a rejected record is an `Err` item.
//! - A [`StorePort`]'s writes go through a [`PageTxPort`] and become durable together at
//!   [`PageTxPort::commit`], or not at all when the transaction is dropped.

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use crate::domain::ErrorKind;

use crate::store::{
    Direction, Failure, FailureBackoff, FailureClass, InboxItem, Link, LinkWrite, NewFailure,
    NewNotification, Org, StoreError, Tombstone,
};

/// `field IN (values)`: one condition of a lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldIn {
    /// The field's name in the queried org (`Id` for record ids).
    pub field: String,
    /// Values as the queried org holds them (strings, numbers, dates as `YYYY-MM-DD`).
    pub values: Vec<Value>,
}

/// Which rows a query selects.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryKind {
    /// The watermark query: `SystemModstamp >= since [AND LastModifiedById != user]
    /// [AND (filter)] ORDER BY SystemModstamp, Id`.
    Changes {
        since: DateTime<Utc>,
        /// Leave out rows last modified by this user (the integration user).
        exclude_modified_by: Option<String>,
        /// `sync.filter`, a SOQL condition inserted parenthesised.
        filter: Option<String>,
        /// Deleted rows too (`sync.deletes = "propagate"`): read through `queryAll`, with
        /// `IsDeleted` selected; `false` reads through `query`, as before deletes were synced.
        with_deleted: bool,
    },
    /// Records by id (failure retries, the inbox, reverse carries); deleted ones are absent.
    ByIds(Vec<String>),
    /// Records by id, deleted ones included (`queryAll`, `IsDeleted` selected): the failure
    /// retries when deletes are propagated (a held delete is retried by id).
    ByIdsWithDeleted(Vec<String>),
    /// Records merged away into one of these ids (`MasterRecordId IN (...)`, deleted rows,
    /// through `queryAll`): the Accounts a merge deleted in favour of a master.
    MergedInto(Vec<String>),
    /// One target lookup for a page: rows matching ANY of the conjunctions, each conjunction
    /// being ALL of its `field IN (values)` conditions.
    Lookup { any_of: Vec<Vec<FieldIn>> },
    /// Every live record of the object (a Bulk pass stages the target's records for the
    /// lookups of all its pages: `bulk_pass`).
    All,
}

/// A query: object, the fields to select besides the system fields, and which rows.
/// Every query also selects `Id, SystemModstamp, LastModifiedDate, LastModifiedById`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordQuery {
    pub object: String,
    /// Field names in the queried org.
    pub fields: Vec<String>,
    pub kind: QueryKind,
}

/// One batch of query results (up to 2,000 rows in Salesforce) and the cursor to the next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Rows as the REST API returns them (`Id`, the selected fields, `attributes`...).
    pub records: Vec<Map<String, Value>>,
    /// `nextRecordsUrl`, when there are more rows.
    pub next: Option<String>,
    /// `totalSize` of the query's first batch: the rows the whole query matches (the pass's
    /// backlog estimate, free with the first page). `None` when unknown.
    pub total_size: Option<u64>,
}

/// A Bulk job's state, as the pass needs it (Bulk API 2.0: `sync::bulk_read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkStatus {
    /// Not done yet (UploadComplete, InProgress, Open).
    Running,
    /// JobComplete: results can be read.
    Complete,
    /// Failed or Aborted, with what the org said.
    Ended { state: String, message: String },
}

/// One page of a Bulk query job's results, as REST-shaped records read a chunk at a time
/// (the page itself stays on disk), and the next locator.
#[derive(Debug)]
pub struct BulkPage {
    pub records: BulkRecords,
    /// `None` after the last page.
    pub next_locator: Option<String>,
}

/// A results page's records, read a chunk at a time.
#[derive(Debug)]
pub enum BulkRecords {
    /// Already in memory (test ports).
    Memory(std::vec::IntoIter<Map<String, Value>>),
    /// A results file on disk (`salesforce::bulk::files`).
    Csv(crate::salesforce::bulk::files::CsvRecords),
}

impl BulkRecords {
    /// The next at most `n` records; empty at the end. An unreadable file is a transient
    /// error (the page is read again).
    pub fn next_chunk(&mut self, n: usize) -> Result<Vec<Map<String, Value>>, PortError> {
        match self {
            BulkRecords::Memory(rows) => Ok(rows.by_ref().take(n).collect()),
            BulkRecords::Csv(records) => records.next_records(n).map_err(|message| PortError {
                kind: ErrorKind::Transient,
                code: "BAD_RESPONSE".into(),
                message: format!("unexpected Bulk CSV: {message}"),
            }),
        }
    }
}

impl PortError {
    /// What an org or store without Bulk support answers (the pass then reads through REST).
    pub fn bulk_unsupported() -> PortError {
        PortError {
            kind: ErrorKind::NeedsOperator,
            code: "BULK_UNSUPPORTED".into(),
            message: "this port has no Bulk API".into(),
        }
    }
}

/// A whole call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    pub kind: ErrorKind,
    /// Salesforce's `errorCode` (or a client code such as `TIMEOUT`).
    pub code: String,
    /// Never contains a secret.
    pub message: String,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for PortError {}

impl PortError {
    /// The failure-queue class of the records a failed write call names: a transient error or
    /// a limit is retried on a timer; any other error is classed by its code
    /// ([`FailureClass::of_code`]), as a per-record error of the same code would be.
    pub fn failure_class(&self) -> FailureClass {
        match self.kind {
            ErrorKind::Transient | ErrorKind::Limit => FailureClass::Transient,
            ErrorKind::NeedsEdit | ErrorKind::NeedsOperator | ErrorKind::Auth => {
                FailureClass::of_code(&self.code)
            }
        }
    }
}

/// A record written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOk {
    pub id: String,
    /// For upserts: whether the record was created (false: an existing one was updated).
    pub created: bool,
}

/// A record rejected by the org (a per-item error of sObject Collections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// `statusCode`, e.g. `FIELD_CUSTOM_VALIDATION_EXCEPTION`, `UNABLE_TO_LOCK_ROW`.
    pub code: String,
    pub message: String,
    /// What the record needs before the write can succeed: decides how it is retried.
    pub class: FailureClass,
}

impl RecordError {
    /// An error of `code`, classed by the one table, [`FailureClass::of_code`].
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> RecordError {
        let code = code.into();
        RecordError {
            class: FailureClass::of_code(&code),
            code,
            message: message.into(),
        }
    }
}

/// The outcome of one record of a write call.
pub type WriteOutcome = Result<WriteOk, RecordError>;

/// One org, as the pass uses it.
pub trait OrgPort: Send + Sync {
    /// Runs a query; returns its first batch.
    fn query(&self, query: &RecordQuery) -> impl Future<Output = Result<Batch, PortError>> + Send;

    /// The batch after `cursor` (a `nextRecordsUrl`).
    fn query_more(&self, cursor: &str) -> impl Future<Output = Result<Batch, PortError>> + Send;

    /// Creates records (at most 200 per call); one outcome per record, in order.
    fn create(
        &self,
        object: &str,
        records: &[Map<String, Value>],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, PortError>> + Send;

    /// Updates records (at most 200 per call), each body holding the fields to set.
    fn update(
        &self,
        object: &str,
        records: &[(String, Map<String, Value>)],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, PortError>> + Send;

    /// Upserts records on `external_id_field` (at most 200 per call); each body holds the
    /// external id value.
    fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, PortError>> + Send;

    /// Deletes records by id (sObject Collections, at most 200 per call, `allOrNone=false`);
    /// one outcome per id, in order. A record already deleted fails with `ENTITY_IS_DELETED`.
    fn delete(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, PortError>> + Send;

    /// Restores records from the recycle bin (SOAP `undelete`, at most 200 per call); one
    /// outcome per id, in order. A record not in the recycle bin fails with `UNDELETE_FAILED`.
    fn undelete(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, PortError>> + Send;

    /// How many deleted rows a [`QueryKind::Changes`] query matches (`SELECT COUNT()` through
    /// `queryAll` with `IsDeleted = true`): the mass-delete breaker's count when the rows do
    /// not fit in the first batch.
    fn count_deleted(
        &self,
        query: &RecordQuery,
    ) -> impl Future<Output = Result<u64, PortError>> + Send;
    /// How many live records `object` has (one query, only its `totalSize` read): whether a
    /// Bulk pass stages the target's records (`bulk_pass`).
    fn count_records(&self, _object: &str) -> impl Future<Output = Result<u64, PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// Bulk API 2.0: creates a query job for a record query; returns the job id. Ports without
    /// Bulk answer [`PortError::bulk_unsupported`] (the default).
    fn bulk_query_start(
        &self,
        _query: &RecordQuery,
    ) -> impl Future<Output = Result<String, PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// A query job's state.
    fn bulk_query_status(
        &self,
        _job_id: &str,
    ) -> impl Future<Output = Result<BulkStatus, PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// One page (at most `max_records` rows) of a complete query job's results on `object`:
    /// the first with no locator.
    fn bulk_query_page(
        &self,
        _job_id: &str,
        _object: &str,
        _locator: Option<&str>,
        _max_records: u32,
    ) -> impl Future<Output = Result<BulkPage, PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// Aborts a query job (`delete`: deletes an ended one instead).
    fn bulk_query_end(
        &self,
        _job_id: &str,
        _delete: bool,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// Creates an ingest job on `object`: `update` (by Id) or `upsert` on `external_id_field`.
    fn bulk_ingest_start(
        &self,
        _object: &str,
        _operation: &str,
        _external_id_field: Option<&str>,
    ) -> impl Future<Output = Result<String, PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// Uploads an ingest job's rows (columns `header`; a field a record lacks is left alone,
    /// a null one is cleared) and closes the upload: processing starts. One call each.
    fn bulk_ingest_upload(
        &self,
        _job_id: &str,
        _header: &[String],
        _records: &[Map<String, Value>],
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// Uploads an ingest job's CSV from a file written by `salesforce::bulk::files::CsvUpload`
    /// (streamed, never whole in memory). One call.
    fn bulk_ingest_upload_file(
        &self,
        _job_id: &str,
        _file: &std::fs::File,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// One result file of an ended ingest job, on disk, read back a chunk of rows at a time.
    fn bulk_ingest_result_rows(
        &self,
        _job_id: &str,
        _which: BulkResults,
    ) -> impl Future<Output = Result<crate::salesforce::bulk::files::CsvRows, PortError>> + Send
    {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// Closes an ingest job's upload (`UploadComplete`), or aborts the job (`abort`).
    fn bulk_ingest_close(
        &self,
        _job_id: &str,
        _abort: bool,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// An ingest job's state.
    fn bulk_ingest_status(
        &self,
        _job_id: &str,
    ) -> impl Future<Output = Result<BulkStatus, PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }

    /// One result file of an ended ingest job, each row its cells by column name.
    fn bulk_ingest_results(
        &self,
        _job_id: &str,
        _which: BulkResults,
    ) -> impl Future<Output = Result<Vec<BulkResultRow>, PortError>> + Send {
        async { Err(PortError::bulk_unsupported()) }
    }
}

/// Which result file of an ingest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkResults {
    Successful,
    Failed,
    Unprocessed,
}

/// One row of an ingest result file: cells by column name (`sf__Id`, `sf__Created`,
/// `sf__Error`, then the uploaded columns).
pub type BulkResultRow = std::collections::HashMap<String, String>;

/// The state store, as the pass reads it.
pub trait StorePort: Send + Sync {
    type Tx: PageTxPort + Send;

    /// The stored watermark of `org` for `object`.
    fn watermark(
        &self,
        org: Org,
        object: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Links of `object` whose record in `org` is one of `ids` (one query for the batch), in
    /// every state: only live ones are synced; unlinked and tombstoned ones bar their pair from
    /// being matched again.
    fn links_by_ids(
        &self,
        org: Org,
        object: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Link>, StoreError>> + Send;

    /// Failure-queue entries (pending or dead) of these source records.
    fn failures_for(
        &self,
        direction: Direction,
        object: &str,
        source_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Failure>, StoreError>> + Send;

    /// Pending failures due at `now`, oldest due first.
    fn due_failures(
        &self,
        direction: Direction,
        object: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Failure>, StoreError>> + Send;

    /// Unprocessed inbox items of `org`, oldest first.
    fn pending_notifications(
        &self,
        org: Org,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<InboxItem>, StoreError>> + Send;

    /// Marks inbox items processed outside a page (items for another object).
    fn mark_processed(&self, ids: &[i64]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Opens the write transaction of one page.
    fn begin(&self) -> impl Future<Output = Result<Self::Tx, StoreError>> + Send;

    /// The Bulk jobs and staged rows of `store::bulk` (`sync::bulk_read`). `None`: this store
    /// keeps no Bulk state (the default), so the pass reads through REST.
    fn bulk(&self) -> Option<&crate::store::Store> {
        None
    }
}

/// The write transaction of one page.
pub trait PageTxPort: Send {
    fn upsert_link(
        &mut self,
        link: &LinkWrite,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes the live link of `a_id` and `b_id` a tombstone: deleted at `at` in org `by`, the
    /// deleting side's modstamp recorded (`modstamp`); whether there was such a live link.
    fn tombstone_link(
        &mut self,
        tombstone: &Tombstone,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Rewrites link `link_id` in place as a live link with `link`'s ids, modstamps and
    /// snapshot: a tombstone revived by the undelete stage (the target possibly new), or a
    /// live link whose deleted source was created again. Idempotent; a record live in another
    /// link is [`StoreError::LinkConflict`].
    fn revive_link(
        &mut self,
        link_id: i64,
        link: &LinkWrite,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the link of A record `a_id` (a stale parent-account link); whether there was one.
    fn delete_link(
        &mut self,
        object: &str,
        a_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn record_failure(
        &mut self,
        failure: &NewFailure,
        policy: &FailureBackoff,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn clear_failure(
        &mut self,
        direction: Direction,
        object: &str,
        source_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queues records for a pass (reverse carries use the inbox of the record's org).
    fn insert_notifications(
        &mut self,
        notifications: &[NewNotification],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn mark_processed(
        &mut self,
        ids: &[i64],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves the watermark forward to `value` (never backward).
    fn advance_watermark(
        &mut self,
        org: Org,
        object: &str,
        value: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes a Bulk job's staged rows up to and including `(SystemModstamp text, Id)` in
    /// feed order (the page that records the outcomes of the last of them).
    fn delete_staged(
        &mut self,
        _job_id: &str,
        _through: (&str, &str),
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Records planned writes of a Bulk pass (`bulk_pass`).
    fn insert_pending(
        &mut self,
        _job_id: &str,
        _rows: &[crate::store::PendingWrite],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Err(StoreError::Corrupt("this store keeps no Bulk state".into())) }
    }

    /// Deletes planned writes of a Bulk pass once their outcomes are recorded.
    fn delete_pending(
        &mut self,
        _job_id: &str,
        _seqs: &[u64],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Err(StoreError::Corrupt("this store keeps no Bulk state".into())) }
    }

    /// Makes every write of the page durable.
    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: ErrorKind, code: &str) -> PortError {
        PortError {
            kind,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn refusals_take_their_kind_from_the_code_table() {
        assert_eq!(
            ErrorKind::of_refusal("INVALID_FIELD"),
            ErrorKind::NeedsOperator
        );
        assert_eq!(
            ErrorKind::of_refusal("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
            ErrorKind::NeedsEdit
        );
        // A code the table calls transient, refused for good by the org: an edit.
        assert_eq!(ErrorKind::of_refusal("BAD_RESPONSE"), ErrorKind::NeedsEdit);
        assert!(ErrorKind::Auth.is_permanent());
        assert!(!ErrorKind::Transient.is_permanent());
        assert!(!ErrorKind::Limit.is_permanent());
    }

    #[test]
    fn a_failed_write_call_classes_its_records() {
        let class = |kind, code| error(kind, code).failure_class();
        assert_eq!(
            class(ErrorKind::Limit, "REQUEST_LIMIT_EXCEEDED"),
            FailureClass::Transient
        );
        assert_eq!(
            class(ErrorKind::Transient, "INVALID_FIELD"),
            FailureClass::Transient
        );
        assert_eq!(
            class(ErrorKind::NeedsEdit, "BAD_RESPONSE"),
            FailureClass::Transient
        );
        assert_eq!(
            class(ErrorKind::NeedsOperator, "INVALID_FIELD"),
            FailureClass::NeedsOperator
        );
        assert_eq!(
            class(ErrorKind::Auth, "invalid_grant"),
            FailureClass::NeedsEdit
        );
    }
}
