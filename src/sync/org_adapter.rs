//! The engine's [`OrgPort`] over the Salesforce [`Client`] (beside `adapters`, the store
//! ports over the SQLite store; here so that `salesforce` never imports the engine): record
//! queries become SOQL through the client's builder, writes go through sObject Collections,
//! errors become [`PortError`]s.
//!
//! Record queries always select `Id, SystemModstamp, LastModifiedDate, LastModifiedById` and
//! the asked fields. A lookup or by-id query whose `IN` lists would push the URL past
//! Salesforce's 16 KB limit is split ([`build_record_queries`]) into several statements; their
//! rows are read in full, deduplicated by Id, and returned as one batch without a cursor (the
//! results of such queries are bounded by the ids or keys asked for). A query that fits in
//! one statement returns its first batch and `nextRecordsUrl` as the cursor, as the port asks.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::ports::{
    Batch, BulkPage, BulkResultRow, BulkResults, BulkStatus, ErrorKind, FieldIn, OrgPort,
    PortError, QueryKind, RecordError, RecordQuery, WriteOk, WriteOutcome,
};
use crate::salesforce::soql::{
    Cond, Literal, MAX_ENCODED_SOQL_BYTES, Order, Soql, SoqlError, chunk_literals, encoded_len,
};
use crate::salesforce::{Client, FieldTypes, ItemResult, RecordFailure, SalesforceError};

/// The system fields every record query selects.
const SYSTEM_FIELDS: [&str; 4] = [
    "Id",
    "SystemModstamp",
    "LastModifiedDate",
    "LastModifiedById",
];

/// Room kept for ` WHERE `, parentheses and ` OR ` joins when sizing a statement.
const JOIN_OVERHEAD: usize = 16;

/// A client error as the engine's ports carry it: its kind ([`SalesforceError::kind`], the
/// one classification), code and message.
pub fn port_error(err: &SalesforceError) -> PortError {
    PortError {
        kind: err.kind(),
        code: err.code.clone(),
        message: err.to_string(),
    }
}

pub(super) fn soql_error(err: SoqlError) -> PortError {
    PortError {
        kind: ErrorKind::of_refusal("MALFORMED_QUERY"),
        code: "MALFORMED_QUERY".into(),
        message: format!("cannot build the query: {err}"),
    }
}

/// Whether a query reads deleted rows too: through `queryAll`, with `IsDeleted` selected.
pub(super) fn with_deleted(query: &RecordQuery) -> bool {
    matches!(
        query.kind,
        QueryKind::Changes {
            with_deleted: true,
            ..
        } | QueryKind::ByIdsWithDeleted(_)
            | QueryKind::MergedInto(_)
    )
}

fn base_query(query: &RecordQuery) -> Soql {
    let deleted = with_deleted(query).then(|| "IsDeleted".to_string());
    Soql::select(
        SYSTEM_FIELDS
            .iter()
            .map(|s| (*s).to_string())
            .chain(deleted)
            .chain(query.fields.iter().cloned()),
    )
    .from(query.object.clone())
}

/// The watermark query's conditions (`SystemModstamp >= since`, the integration user left
/// out, `sync.filter`) on `base`.
fn changes_where(
    base: Soql,
    since: &DateTime<Utc>,
    exclude_modified_by: Option<&String>,
    filter: Option<&String>,
) -> Soql {
    let mut soql = base.where_(Cond::ge("SystemModstamp", Literal::DateTime(*since)));
    if let Some(user) = exclude_modified_by {
        soql = soql.where_(Cond::ne("LastModifiedById", Literal::str(user.clone())));
    }
    // A deleted row keeps its values, so the filter applies to it as to a live row: a
    // record deleted while it matched the filter is a delete to propagate; one that did not
    // match is not read, as its edits would not be.
    if let Some(filter) = filter.filter(|f| !f.trim().is_empty()) {
        soql = soql.where_(Cond::raw(filter.clone()));
    }
    soql
}

/// The statement that counts the deleted rows of a watermark query: its conditions and
/// `IsDeleted = true`, selecting only `Id` (the reply's `totalSize` is the count).
pub fn count_deleted_statement(query: &RecordQuery) -> Result<Option<String>, SoqlError> {
    let QueryKind::Changes {
        since,
        exclude_modified_by,
        filter,
        ..
    } = &query.kind
    else {
        return Ok(None);
    };
    let base = Soql::select(["Id"]).from(query.object.clone());
    let soql = changes_where(base, since, exclude_modified_by.as_ref(), filter.as_ref())
        .where_(Cond::eq("IsDeleted", Literal::Bool(true)));
    Ok(Some(soql.build()?))
}

/// The conjunction of `field IN (values)` conditions; `None` when one list is empty (it
/// matches nothing).
/// `field IN (values)` conditions ANDed together.
type Conjunction = Vec<(String, Vec<Literal>)>;

fn conjunction(
    conds: &[FieldIn],
    types: Option<&FieldTypes>,
) -> Result<Option<Conjunction>, SoqlError> {
    let mut out = Vec::with_capacity(conds.len());
    for c in conds {
        if c.values.is_empty() {
            return Ok(None);
        }
        let literals = c
            .values
            .iter()
            .map(|v| literal(&c.field, v, types))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((c.field.clone(), literals));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The SOQL literal of `value` compared with `field`: dates and datetimes unquoted (SOQL
/// rejects a quoted date), when the field's type says so; else as its JSON form.
fn literal(field: &str, value: &Value, types: Option<&FieldTypes>) -> Result<Literal, SoqlError> {
    if let (Some(types), Value::String(text)) = (types, value) {
        match types.get(&field.to_ascii_lowercase()).map(String::as_str) {
            Some("date") => {
                if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                    return Ok(Literal::Date(date));
                }
            }
            Some("datetime") => {
                if let Some(at) = parse_datetime(text) {
                    return Ok(Literal::DateTime(at));
                }
            }
            _ => {}
        }
    }
    Literal::from_json(value)
}

/// A Salesforce datetime as the REST API returns it (`2026-06-30T10:00:00.000+0000`) or
/// RFC 3339.
fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether a lookup compares a field other than `Id` with a string shaped like a date or a
/// datetime: only then does rendering it need the field's type (one describe per process).
fn needs_field_types(query: &RecordQuery) -> bool {
    let QueryKind::Lookup { any_of } = &query.kind else {
        return false;
    };
    any_of.iter().flatten().any(|c| {
        !c.field.eq_ignore_ascii_case("Id")
            && c.values.iter().any(|v| {
                v.as_str().is_some_and(|s| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() || parse_datetime(s).is_some()
                })
            })
    })
}

fn conj_cond(conj: &[(String, Vec<Literal>)]) -> Cond {
    Cond::and(
        conj.iter()
            .map(|(f, v)| Cond::in_(f.clone(), v.clone()))
            .collect(),
    )
}

fn cond_len(cond: &Cond) -> Result<usize, SoqlError> {
    Ok(encoded_len(&cond.render()?) + JOIN_OVERHEAD)
}

/// Cuts one conjunction into pieces that each fit `budget`, by splitting its longest IN list.
fn split_conjunction(conj: Conjunction, budget: usize) -> Result<Vec<Cond>, SoqlError> {
    let whole = conj_cond(&conj);
    if cond_len(&whole)? <= budget {
        return Ok(vec![whole]);
    }
    let (longest, _) = conj
        .iter()
        .enumerate()
        .max_by_key(|(_, (_, v))| v.len())
        .ok_or(SoqlError::NoFields)?;
    let mut rest = conj.clone();
    let (field, values) = rest.remove(longest);
    let rest_len = if rest.is_empty() {
        0
    } else {
        cond_len(&conj_cond(&rest))?
    };
    let room = budget
        .saturating_sub(rest_len)
        .saturating_sub(encoded_len(&field) + JOIN_OVERHEAD);
    let mut pieces = Vec::new();
    for chunk in chunk_literals(&values, room.max(1))? {
        let mut piece = rest.clone();
        piece.push((field.clone(), chunk));
        pieces.push(conj_cond(&piece));
    }
    Ok(pieces)
}

/// The SOQL statement(s) of a record query; several when `IN` lists would make the URL too
/// long. An empty list means the query can match nothing (no call needed).
pub fn build_record_queries(query: &RecordQuery) -> Result<Vec<String>, SoqlError> {
    build_typed_record_queries(query, None)
}

/// [`build_record_queries`] knowing the object's field types, so that lookup values of date
/// and datetime fields are rendered as SOQL dates and datetimes, not quoted strings.
pub fn build_typed_record_queries(
    query: &RecordQuery,
    types: Option<&FieldTypes>,
) -> Result<Vec<String>, SoqlError> {
    let base = base_query(query);
    match &query.kind {
        QueryKind::Changes {
            since,
            exclude_modified_by,
            filter,
            ..
        } => {
            let soql = changes_where(base, since, exclude_modified_by.as_ref(), filter.as_ref())
                .order_by("SystemModstamp", Order::Asc)
                .order_by("Id", Order::Asc);
            Ok(vec![soql.build()?])
        }
        QueryKind::ByIds(ids) | QueryKind::ByIdsWithDeleted(ids) => lookup_queries(
            &base,
            &[vec![FieldIn {
                field: "Id".into(),
                values: ids.iter().map(|id| Value::String(id.clone())).collect(),
            }]],
            None,
        ),
        QueryKind::Lookup { any_of } => lookup_queries(&base, any_of, types),
        QueryKind::All => Ok(vec![base.build()?]),
        QueryKind::MergedInto(ids) => lookup_queries(
            &base,
            &[vec![FieldIn {
                field: "MasterRecordId".into(),
                values: ids.iter().map(|id| Value::String(id.clone())).collect(),
            }]],
            None,
        ),
    }
}

fn lookup_queries(
    base: &Soql,
    any_of: &[Vec<FieldIn>],
    types: Option<&FieldTypes>,
) -> Result<Vec<String>, SoqlError> {
    let budget = MAX_ENCODED_SOQL_BYTES
        .saturating_sub(encoded_len(&base.build()?))
        .saturating_sub(JOIN_OVERHEAD);
    let mut pieces: Vec<Cond> = Vec::new();
    for conds in any_of {
        if let Some(conj) = conjunction(conds, types)? {
            pieces.extend(split_conjunction(conj, budget)?);
        }
    }
    // Pack the pieces into as few OR-ed statements as fit.
    let mut statements = Vec::new();
    let mut group: Vec<Cond> = Vec::new();
    let mut used = 0usize;
    for piece in pieces {
        let len = cond_len(&piece)?;
        if !group.is_empty() && used + len > budget {
            statements.push(
                base.clone()
                    .where_(Cond::or(std::mem::take(&mut group)))
                    .build()?,
            );
            used = 0;
        }
        used += len;
        group.push(piece);
    }
    if !group.is_empty() {
        statements.push(base.clone().where_(Cond::or(group)).build()?);
    }
    Ok(statements)
}

fn outcome(result: ItemResult) -> WriteOutcome {
    result
        .map(|saved| WriteOk {
            id: saved.id,
            created: saved.created,
        })
        .map_err(|failure: RecordFailure| RecordError {
            code: failure.code().to_string(),
            message: failure.message(),
            class: failure.class(),
        })
}

impl OrgPort for Client {
    async fn query(&self, query: &RecordQuery) -> Result<Batch, PortError> {
        let types = if needs_field_types(query) {
            Some(
                self.field_types(&query.object)
                    .await
                    .map_err(|e| port_error(&e))?,
            )
        } else {
            None
        };
        let statements = build_typed_record_queries(query, types.as_deref()).map_err(soql_error)?;
        let all_rows = with_deleted(query);
        match statements.as_slice() {
            [] => Ok(Batch::default()),
            [one] => {
                let page = self
                    .query_first(one, all_rows, None)
                    .await
                    .map_err(|e| port_error(&e))?;
                let next = page.next().map(str::to_string);
                Ok(Batch {
                    total_size: Some(page.total_size),
                    records: page.records,
                    next,
                })
            }
            many => {
                let mut seen = HashSet::new();
                let mut records = Vec::new();
                for soql in many {
                    let mut pager = if all_rows {
                        self.query_all(soql.as_str())
                    } else {
                        Client::query(self, soql.as_str())
                    };
                    while let Some(page) = pager.next_page().await.map_err(|e| port_error(&e))? {
                        for row in page.records {
                            let id = row.get("Id").and_then(Value::as_str).map(str::to_string);
                            if id.is_none_or(|id| seen.insert(id)) {
                                records.push(row);
                            }
                        }
                    }
                }
                Ok(Batch {
                    total_size: Some(records.len() as u64),
                    records,
                    next: None,
                })
            }
        }
    }

    async fn count_deleted(&self, query: &RecordQuery) -> Result<u64, PortError> {
        let Some(soql) = count_deleted_statement(query).map_err(soql_error)? else {
            return Ok(0);
        };
        // The smallest batch Salesforce accepts: only `totalSize` is read.
        let page = self
            .query_first(&soql, true, Some(200))
            .await
            .map_err(|e| port_error(&e))?;
        Ok(page.total_size)
    }

    async fn count_records(&self, object: &str) -> Result<u64, PortError> {
        let soql = Soql::select(["Id"])
            .from(object.to_string())
            .build()
            .map_err(soql_error)?;
        let page = self
            .query_first(&soql, false, Some(200))
            .await
            .map_err(|e| port_error(&e))?;
        Ok(page.total_size)
    }

    async fn delete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
        let results = Client::delete(self, ids)
            .await
            .map_err(|e| port_error(&e))?;
        Ok(results.into_iter().map(outcome).collect())
    }

    async fn undelete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
        let results = Client::undelete(self, ids)
            .await
            .map_err(|e| port_error(&e))?;
        Ok(results.into_iter().map(outcome).collect())
    }

    async fn query_more(&self, cursor: &str) -> Result<Batch, PortError> {
        let page = Client::query_more(self, cursor)
            .await
            .map_err(|e| port_error(&e))?;
        let next = page.next().map(str::to_string);
        Ok(Batch {
            records: page.records,
            next,
            total_size: None,
        })
    }

    async fn bulk_query_start(&self, query: &RecordQuery) -> Result<String, PortError> {
        super::bulk_port::query_start(self, query).await
    }

    async fn bulk_query_status(&self, job_id: &str) -> Result<BulkStatus, PortError> {
        super::bulk_port::query_status(self, job_id).await
    }

    async fn bulk_query_page(
        &self,
        job_id: &str,
        object: &str,
        locator: Option<&str>,
        max_records: u32,
    ) -> Result<BulkPage, PortError> {
        super::bulk_port::query_page(self, job_id, object, locator, max_records).await
    }

    async fn bulk_query_end(&self, job_id: &str, delete: bool) -> Result<(), PortError> {
        super::bulk_port::query_end(self, job_id, delete).await
    }

    async fn bulk_ingest_start(
        &self,
        object: &str,
        operation: &str,
        external_id_field: Option<&str>,
    ) -> Result<String, PortError> {
        super::bulk_port::ingest_start(self, object, operation, external_id_field).await
    }

    async fn bulk_ingest_upload(
        &self,
        job_id: &str,
        header: &[String],
        records: &[Map<String, Value>],
    ) -> Result<(), PortError> {
        super::bulk_port::ingest_upload(self, job_id, header, records).await
    }

    async fn bulk_ingest_upload_file(
        &self,
        job_id: &str,
        file: &std::fs::File,
    ) -> Result<(), PortError> {
        Client::bulk_ingest_upload_file(self, job_id, file)
            .await
            .map_err(|e| port_error(&e))
    }

    async fn bulk_ingest_result_rows(
        &self,
        job_id: &str,
        which: BulkResults,
    ) -> Result<crate::salesforce::bulk::files::CsvRows, PortError> {
        let which = match which {
            BulkResults::Successful => crate::salesforce::bulk::IngestResults::Successful,
            BulkResults::Failed => crate::salesforce::bulk::IngestResults::Failed,
            BulkResults::Unprocessed => crate::salesforce::bulk::IngestResults::Unprocessed,
        };
        Client::bulk_ingest_results_rows(self, job_id, which)
            .await
            .map_err(|e| port_error(&e))
    }

    async fn bulk_ingest_close(&self, job_id: &str, abort: bool) -> Result<(), PortError> {
        super::bulk_port::ingest_close(self, job_id, abort).await
    }

    async fn bulk_ingest_status(&self, job_id: &str) -> Result<BulkStatus, PortError> {
        super::bulk_port::ingest_status(self, job_id).await
    }

    async fn bulk_ingest_results(
        &self,
        job_id: &str,
        which: BulkResults,
    ) -> Result<Vec<BulkResultRow>, PortError> {
        super::bulk_port::ingest_results(self, job_id, which).await
    }

    async fn create(
        &self,
        object: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let results = Client::create(self, object, records)
            .await
            .map_err(|e| port_error(&e))?;
        Ok(results.into_iter().map(outcome).collect())
    }

    async fn update(
        &self,
        object: &str,
        records: &[(String, Map<String, Value>)],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let results = Client::update(self, object, records)
            .await
            .map_err(|e| port_error(&e))?;
        Ok(results.into_iter().map(outcome).collect())
    }

    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let results = Client::upsert(self, object, external_id_field, records)
            .await
            .map_err(|e| port_error(&e))?;
        Ok(results.into_iter().map(outcome).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::ErrorClass;
    use chrono::TimeZone;
    use serde_json::json;

    fn rq(kind: QueryKind) -> RecordQuery {
        RecordQuery {
            object: "Opportunity".into(),
            fields: vec!["Name".into(), "Amount".into(), "Account.Name".into()],
            kind,
        }
    }

    #[test]
    fn lookup_values_of_date_and_datetime_fields_are_unquoted_when_the_types_are_known() {
        let lookup = rq(QueryKind::Lookup {
            any_of: vec![vec![
                FieldIn {
                    field: "Name".into(),
                    values: vec![json!("2026-06-30")],
                },
                FieldIn {
                    field: "CloseDate".into(),
                    values: vec![json!("2026-06-30")],
                },
                FieldIn {
                    field: "Signed__c".into(),
                    values: vec![json!("2026-06-30T10:00:00.000+0000")],
                },
            ]],
        });
        assert!(needs_field_types(&lookup));
        let types: FieldTypes = [
            ("name", "string"),
            ("closedate", "date"),
            ("signed__c", "datetime"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let q = build_typed_record_queries(&lookup, Some(&types)).unwrap();
        assert_eq!(q.len(), 1);
        assert!(
            q[0].contains("Name IN ('2026-06-30')")
                && q[0].contains("CloseDate IN (2026-06-30)")
                && q[0].contains("Signed__c IN (2026-06-30T10:00:00Z)"),
            "{}",
            q[0]
        );
        // Without the types (no date-like value needs them), everything is as JSON says.
        let plain = build_record_queries(&lookup).unwrap();
        assert!(
            plain[0].contains("CloseDate IN ('2026-06-30')"),
            "{}",
            plain[0]
        );
        let names = rq(QueryKind::Lookup {
            any_of: vec![vec![FieldIn {
                field: "Name".into(),
                values: vec![json!("Acme"), json!(5000)],
            }]],
        });
        assert!(!needs_field_types(&names));
        assert!(!needs_field_types(&rq(QueryKind::ByIds(vec![
            "006000000000001AAA".into()
        ]))));
    }

    #[test]
    fn changes_query() {
        let since = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
            + chrono::Duration::milliseconds(250);
        let q = build_record_queries(&rq(QueryKind::Changes {
            since,
            exclude_modified_by: Some("005000000000001AAA".into()),
            filter: Some("Amount > 5000".into()),
            with_deleted: false,
        }))
        .unwrap();
        assert_eq!(
            q,
            vec![
                "SELECT Id, SystemModstamp, LastModifiedDate, LastModifiedById, Name, Amount, \
                 Account.Name FROM Opportunity WHERE SystemModstamp >= 2024-05-01T12:00:00Z AND \
                 LastModifiedById != '005000000000001AAA' AND (Amount > 5000) \
                 ORDER BY SystemModstamp ASC, Id ASC"
            ]
        );
    }

    #[test]
    fn lookups_and_empty_lists() {
        let q = build_record_queries(&rq(QueryKind::Lookup {
            any_of: vec![
                vec![FieldIn {
                    field: "Id".into(),
                    values: vec![json!("006A"), json!("006B")],
                }],
                vec![FieldIn {
                    field: "Name".into(),
                    values: vec![json!("O'Brien \\ Co")],
                }],
                vec![FieldIn {
                    field: "Ext__c".into(),
                    values: vec![],
                }],
            ],
        }))
        .unwrap();
        assert_eq!(q.len(), 1);
        assert!(
            q[0].ends_with("WHERE Id IN ('006A', '006B') OR Name IN ('O\\'Brien \\\\ Co')"),
            "{}",
            q[0]
        );
        assert!(
            build_record_queries(&rq(QueryKind::ByIds(vec![])))
                .unwrap()
                .is_empty()
        );
        assert!(
            build_record_queries(&rq(QueryKind::Lookup { any_of: vec![] }))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn long_id_lists_are_split_under_the_url_limit() {
        let ids: Vec<String> = (0..2000)
            .map(|i| format!("006000000000{i:03}AAA"))
            .collect();
        let q = build_record_queries(&rq(QueryKind::ByIds(ids.clone()))).unwrap();
        assert!(q.len() > 1, "{}", q.len());
        let mut seen = 0;
        for s in &q {
            assert!(encoded_len(s) <= MAX_ENCODED_SOQL_BYTES);
            seen += s.matches("AAA'").count();
        }
        assert_eq!(seen, 2000);

        // A lookup mixing a long name list with another condition.
        let names: Vec<Value> = (0..1500)
            .map(|i| json!(format!("Deal number {i}")))
            .collect();
        let q = build_record_queries(&rq(QueryKind::Lookup {
            any_of: vec![vec![
                FieldIn {
                    field: "Name".into(),
                    values: names,
                },
                FieldIn {
                    field: "StageName".into(),
                    values: vec![json!("Prospecting")],
                },
            ]],
        }))
        .unwrap();
        assert!(q.len() > 1);
        for s in &q {
            assert!(encoded_len(s) <= MAX_ENCODED_SOQL_BYTES);
            assert!(s.contains("StageName IN ('Prospecting')"));
        }
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        let mut query = rq(QueryKind::ByIds(vec!["006A".into()]));
        query.fields.push("Name, (SELECT Id FROM x)".into());
        assert!(build_record_queries(&query).is_err());
        let q = rq(QueryKind::Lookup {
            any_of: vec![vec![FieldIn {
                field: "Name".into(),
                values: vec![json!({"a": 1})],
            }]],
        });
        assert!(build_record_queries(&q).is_err());
    }

    #[test]
    fn error_kinds() {
        let limit = SalesforceError::from_rest_reply(
            "a",
            403,
            r#"[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]"#,
        );
        assert_eq!(port_error(&limit).kind, ErrorKind::Limit);
        let busy = SalesforceError::from_rest_reply("a", 503, "");
        assert_eq!(port_error(&busy).kind, ErrorKind::Transient);
        let bad = SalesforceError::from_rest_reply(
            "a",
            400,
            r#"[{"errorCode":"INVALID_FIELD","message":"No such column"}]"#,
        );
        let e = port_error(&bad);
        assert_eq!(e.kind, ErrorKind::NeedsOperator);
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(e.message.contains("org a"));
        let refused = SalesforceError::from_rest_reply(
            "a",
            400,
            r#"[{"errorCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","message":"no"}]"#,
        );
        assert_eq!(port_error(&refused).kind, ErrorKind::NeedsEdit);
        let login = SalesforceError::client("a", "invalid_grant", "refused", ErrorClass::Auth);
        assert_eq!(port_error(&login).kind, ErrorKind::Auth);
    }
}
