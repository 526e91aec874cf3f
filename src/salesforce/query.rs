//! SOQL queries: one batch at a time, following `nextRecordsUrl`.
//!
//! Salesforce returns at most 2,000 rows per batch (fewer with `Sforce-Query-Options:
//! batchSize=N`, which it treats as a hint) and a `nextRecordsUrl` while `done` is false.
//! [`QueryPager`] walks the batches in order; nothing is buffered beyond the batch in hand, so
//! a million-row query costs one batch of memory. `queryAll` also returns soft-deleted rows.
//! Build the SOQL text with [`super::soql::Soql`].

use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::{ApiRequest, Client, Target};
use super::error::SalesforceError;
use super::usage::CallKind;

/// One batch of a query's rows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct QueryPage {
    /// Rows matching the whole query (not this batch).
    #[serde(rename = "totalSize", default)]
    pub total_size: u64,
    /// No batch follows.
    #[serde(default = "default_true")]
    pub done: bool,
    /// Path of the next batch, when `done` is false.
    #[serde(rename = "nextRecordsUrl", default)]
    pub next_records_url: Option<String>,
    /// Rows as the REST API returns them (with `attributes`).
    #[serde(default)]
    pub records: Vec<Map<String, Value>>,
}

fn default_true() -> bool {
    true
}

impl QueryPage {
    /// The cursor to the next batch, if any.
    pub fn next(&self) -> Option<&str> {
        if self.done {
            None
        } else {
            self.next_records_url.as_deref()
        }
    }
}

impl Client {
    /// Runs `soql` (`/query`); returns its first batch. `batch_size` overrides the client's
    /// default `Sforce-Query-Options: batchSize`.
    pub async fn query_first(
        &self,
        soql: &str,
        all_rows: bool,
        batch_size: Option<u32>,
    ) -> Result<QueryPage, SalesforceError> {
        let mut req = ApiRequest::get(
            CallKind::Query,
            Target::Data(if all_rows { "queryAll" } else { "query" }),
        );
        req.query.push(("q", soql.to_string()));
        if let Some(n) = batch_size.or(self.options().query_batch_size) {
            req.headers
                .push(("Sforce-Query-Options", format!("batchSize={n}")));
        }
        tracing::debug!(org = self.org_name(), soql, "query");
        self.send_json(&req).await
    }

    /// The batch at `next_records_url` (from a previous batch).
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage, SalesforceError> {
        let req = ApiRequest::get(CallKind::QueryMore, Target::Path(next_records_url));
        self.send_json(&req).await
    }

    /// A pager over the batches of `soql`.
    pub fn query(&self, soql: impl Into<String>) -> QueryPager {
        QueryPager::new(self.clone(), soql.into(), false)
    }

    /// A pager over the batches of `soql`, soft-deleted rows included (`queryAll`).
    pub fn query_all(&self, soql: impl Into<String>) -> QueryPager {
        QueryPager::new(self.clone(), soql.into(), true)
    }

    /// Every row of `soql`, all batches read. For bounded result sets only (lookups by id).
    pub async fn query_collect(
        &self,
        soql: &str,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let mut pager = self.query(soql);
        let mut rows = Vec::new();
        while let Some(page) = pager.next_page().await? {
            rows.extend(page.records);
        }
        Ok(rows)
    }
}

enum PagerState {
    NotStarted,
    More(String),
    Done,
}

/// Walks a query's batches: `while let Some(page) = pager.next_page().await? { ... }`.
pub struct QueryPager {
    client: Client,
    soql: String,
    all_rows: bool,
    batch_size: Option<u32>,
    state: PagerState,
    batches: u64,
}

impl QueryPager {
    fn new(client: Client, soql: String, all_rows: bool) -> Self {
        QueryPager {
            client,
            soql,
            all_rows,
            batch_size: None,
            state: PagerState::NotStarted,
            batches: 0,
        }
    }

    /// Asks for batches of `n` rows (Salesforce accepts 200..=2000 and may return fewer).
    pub fn batch_size(mut self, n: u32) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Batches read so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// The batches as a stream; it ends after the last batch or after the first error.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<QueryPage, SalesforceError>> + Send {
        futures::stream::unfold(Some(self), |pager| async move {
            let mut pager = pager?;
            match pager.next_page().await {
                Ok(Some(page)) => Some((Ok(page), Some(pager))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// The next batch, or `None` after the last. An error leaves the pager where it was, so
    /// the same call can be tried again.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage>, SalesforceError> {
        let page = match &self.state {
            PagerState::Done => return Ok(None),
            PagerState::NotStarted => {
                self.client
                    .query_first(&self.soql, self.all_rows, self.batch_size)
                    .await?
            }
            PagerState::More(url) => self.client.query_more(url).await?,
        };
        self.batches += 1;
        self.state = match page.next() {
            Some(url) => PagerState::More(url.to_string()),
            None => PagerState::Done,
        };
        Ok(Some(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_shapes() {
        let page: QueryPage = serde_json::from_str(
            r#"{"totalSize":3222,"done":false,"nextRecordsUrl":"/services/data/v65.0/query/01gRO0000016PIAYA2-500",
             "records":[{"attributes":{"type":"Contact","url":"/x"},"Id":"003RO0000035WQgYAM","Name":"John Smith"}]}"#,
        )
        .unwrap();
        assert_eq!(page.total_size, 3222);
        assert_eq!(
            page.next(),
            Some("/services/data/v65.0/query/01gRO0000016PIAYA2-500")
        );
        assert_eq!(page.records[0]["Name"], "John Smith");
        let last: QueryPage =
            serde_json::from_str(r#"{"totalSize":1,"done":true,"records":[]}"#).unwrap();
        assert_eq!(last.next(), None);
    }
}
