//! Reading one org in full for reconcile: the filtered records' Id, SystemModstamp,
//! LastModifiedDate, LastModifiedById and mapped fields (the match key fields are mapped
//! fields), staged page by page into `reconcile_rows` (one page in memory at a time).
//!
//! The first REST page is read anyway; its `totalSize` chooses the path: above
//! `batch.bulk_read_threshold` (`batch.bulk = "auto"`; `"always"`: whatever the size) the rest
//! is read through a Bulk API 2.0 query job instead (create, polls doubling to 20 s, results
//! pages of `sync::MAX_RECORDS` rows each streamed to a temporary file and staged
//! 2,000 rows at a time, delete); a job that fails falls back to the REST
//! pages. API calls: REST `ceil(n / 2000)`; Bulk 1 query + 1 describe (the CSV's types) + 1
//! create + the polls + `ceil(n / 250000)` results pages + 1 delete.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::compare::staged_row;
use crate::config::{BulkMode, Settings};
use crate::salesforce::bulk::files::CsvRecords;
use crate::salesforce::bulk::{JobKind, JobState, poll_delay};
use crate::salesforce::soql::{MAX_ENCODED_SOQL_BYTES, chunk_literals, encoded_len};
use crate::salesforce::{Client, Cond, Literal, Soql};
use crate::store::{Org, ReconcileRow, Store};
use crate::sync::{BulkConfig, Mapping};

use super::report::OrgRead;

/// Rows of a Bulk results page staged per transaction (as the sync's Bulk read does).
const STAGE_CHUNK: usize = 2_000;

/// Ids looked up per page out of the store (several statements when they do not fit a URL).
const LOOKUP_PAGE: u32 = 2_000;

/// What a read needs.
pub struct ReadContext<'c> {
    pub settings: &'c Settings,
    pub mapping: &'c Mapping,
    pub store: &'c Store,
    pub run_id: &'c str,
    /// Records read so far, per org (the progress line).
    pub progress: [Arc<AtomicU64>; 2],
}

/// The query of `org`'s records.
pub fn reconcile_soql(settings: &Settings, mapping: &Mapping, org: Org) -> anyhow::Result<String> {
    let mut soql =
        Soql::select(reconcile_fields(settings, mapping, org)).from(settings.sync.object.clone());
    if let Some(filter) = &settings.sync.filter {
        soql = soql.where_(Cond::raw(filter.clone()));
    }
    soql.build().context("the reconcile query")
}

/// The statements that look `ids` up in `org` without the filter (`queryAll`, so that a
/// deleted record says so): the read's fields and `IsDeleted`, `Id IN (...)` lists cut so
/// that each statement fits the URL.
pub fn lookup_soqls(
    settings: &Settings,
    mapping: &Mapping,
    org: Org,
    ids: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut fields = reconcile_fields(settings, mapping, org);
    fields.push("IsDeleted".to_string());
    let base = || Soql::select(fields.clone()).from(settings.sync.object.clone());
    // The statement around the list: its length with an empty `Id IN ()`.
    let rest = format!("{} WHERE Id IN ()", base().build()?);
    let room = MAX_ENCODED_SOQL_BYTES.saturating_sub(encoded_len(&rest));
    let literals: Vec<Literal> = ids.iter().map(|id| Literal::str(id.clone())).collect();
    chunk_literals(&literals, room.max(1))?
        .into_iter()
        .map(|chunk| {
            base()
                .where_(Cond::in_("Id", chunk))
                .build()
                .context("the reconcile lookup query")
        })
        .collect()
}

/// The fields a read selects: Id, the stamps, the mapped and the match key fields.
fn reconcile_fields(settings: &Settings, mapping: &Mapping, org: Org) -> Vec<String> {
    let mut fields: Vec<String> = [
        "Id",
        "SystemModstamp",
        "LastModifiedDate",
        "LastModifiedById",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    fields.extend(mapping.field_names(org));
    for f in &settings.sync.match_by {
        fields.push(mapping.field_name(org, f).unwrap_or(f).to_string());
    }
    fields
}

/// Whether a looked-up row is a deleted record (in the recycle bin).
fn is_deleted(record: &Map<String, Value>) -> bool {
    record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("IsDeleted"))
        .is_some_and(|(_, v)| v.as_bool() == Some(true) || v.as_str() == Some("true"))
}

/// Whether a read of `total` records goes through Bulk.
pub fn use_bulk(mode: BulkMode, threshold: u64, total: u64) -> bool {
    match mode {
        BulkMode::Never => false,
        BulkMode::Always => total > 0,
        BulkMode::Auto => total > threshold,
    }
}

impl ReadContext<'_> {
    fn stage_rows(&self, org: Org, records: &[Map<String, Value>]) -> Vec<ReconcileRow> {
        records
            .iter()
            .filter_map(|r| staged_row(self.mapping, &self.settings.sync.match_by, org, r))
            .collect()
    }

    async fn stage(&self, org: Org, records: &[Map<String, Value>]) -> anyhow::Result<()> {
        let rows = self.stage_rows(org, records);
        self.store
            .stage_reconcile_rows(self.run_id, org, &rows)
            .await?;
        let slot = match org {
            Org::A => &self.progress[0],
            Org::B => &self.progress[1],
        };
        slot.fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Reads `org` in full into the staging table.
    pub async fn read_org(&self, org: Org, client: &Client) -> anyhow::Result<OrgRead> {
        let before = client.calls();
        let soql = reconcile_soql(self.settings, self.mapping, org)?;
        let mut pager = client.query(soql.clone());
        let first = pager
            .next_page()
            .await
            .with_context(|| format!("reading org {org}"))?;
        let total = first.as_ref().map_or(0, |p| p.total_size);
        let batch = &self.settings.batch;
        let mut path = "rest";
        if use_bulk(batch.bulk, batch.bulk_read_threshold, total) {
            match self.read_bulk(org, client, &soql).await {
                Ok(()) => path = "bulk",
                // Rows a failed job staged are staged once more by REST, harmlessly.
                Err(e) => tracing::warn!(org = %org, error = %format!("{e:#}"),
                    "reconcile: the Bulk read failed; reading through REST"),
            }
        }
        if path == "rest" {
            let mut page = first;
            while let Some(p) = page {
                self.stage(org, &p.records).await?;
                page = pager
                    .next_page()
                    .await
                    .with_context(|| format!("reading org {org}"))?;
            }
        }
        let records = self.store.reconcile_row_count(self.run_id, org).await?;
        let calls = client.calls().since(&before).api_calls();
        tracing::info!(org = %org, records, path, api_calls = calls, "reconcile: org read");
        Ok(OrgRead {
            records,
            path: path.to_string(),
            api_calls: calls,
            lookup_calls: 0,
        })
    }

    /// Looks up, by Id and without the filter, the records of `org` that live links hold and
    /// the filtered read did not return (a page of ids out of the store at a time); the live
    /// ones left the filter and are staged as such, the deleted or absent ones stay missing
    /// (orphan links). Returns (records found live, API calls made).
    pub async fn look_up_unread(&self, org: Org, client: &Client) -> anyhow::Result<(u64, u64)> {
        let before = client.calls();
        let object = &self.settings.sync.object;
        let mut after = String::new();
        let mut found = 0u64;
        loop {
            let ids = self
                .store
                .reconcile_unread_linked(self.run_id, object, org, &after, LOOKUP_PAGE)
                .await?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            for soql in lookup_soqls(self.settings, self.mapping, org, &ids)? {
                let mut pager = client.query_all(soql);
                while let Some(page) = pager
                    .next_page()
                    .await
                    .with_context(|| format!("looking linked records up in org {org}"))?
                {
                    let live: Vec<Map<String, Value>> = page
                        .records
                        .into_iter()
                        .filter(|r| !is_deleted(r))
                        .collect();
                    let rows = self.stage_rows(org, &live);
                    found += rows.len() as u64;
                    self.store
                        .stage_reconcile_outside_rows(self.run_id, org, &rows)
                        .await?;
                }
            }
        }
        let calls = client.calls().since(&before).api_calls();
        if calls > 0 {
            tracing::info!(org = %org, outside_filter = found, api_calls = calls,
                "reconcile: linked records looked up outside the filter");
        }
        Ok((found, calls))
    }

    async fn read_bulk(&self, org: Org, client: &Client, soql: &str) -> anyhow::Result<()> {
        let object = &self.settings.sync.object;
        let types = client.field_types(object).await?;
        let job = client.bulk_query_create(soql, false).await?;
        tracing::info!(org = %org, job_id = %job.id, "reconcile: bulk query job created");
        let started = std::time::Instant::now();
        // The sync's Bulk read's timing: the configured time-out, polls doubling to 20 s.
        let bulk = BulkConfig::from_settings(self.settings);
        let mut state = job.state;
        let mut attempt = 0;
        while !state.is_terminal() {
            if started.elapsed() > bulk.timeout {
                client.bulk_abort(JobKind::Query, &job.id).await.ok();
                anyhow::bail!(
                    "bulk query job {} still open after {:?}",
                    job.id,
                    bulk.timeout
                );
            }
            attempt += 1;
            tokio::time::sleep(poll_delay(attempt, bulk.poll_initial, bulk.poll_max)).await;
            state = client.bulk_job(JobKind::Query, &job.id).await?.state;
        }
        if state != JobState::JobComplete {
            anyhow::bail!("bulk query job {} ended {state:?}", job.id);
        }
        // Each results page (up to `maxRecords` rows) is streamed to a temporary file and
        // read back `STAGE_CHUNK` rows at a time: one chunk in memory, not the page.
        let mut locator: Option<String> = None;
        loop {
            let (rows, next) = client
                .bulk_query_results_rows(&job.id, locator.as_deref(), Some(bulk.max_records))
                .await?;
            let mut records = CsvRecords::new(rows, types.clone());
            loop {
                let chunk = records
                    .next_records(STAGE_CHUNK)
                    .map_err(anyhow::Error::msg)?;
                if chunk.is_empty() {
                    break;
                }
                self.stage(org, &chunk).await?;
            }
            match next {
                Some(next) => locator = Some(next),
                None => break,
            }
        }
        if let Err(e) = client.bulk_delete(JobKind::Query, &job.id).await {
            tracing::warn!(org = %org, job_id = %job.id, error = %e, "reconcile: cannot delete the bulk job");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_the_mode_and_the_threshold() {
        assert!(!use_bulk(BulkMode::Auto, 10, 10));
        assert!(use_bulk(BulkMode::Auto, 10, 11));
        assert!(!use_bulk(BulkMode::Never, 10, 1_000_000));
        assert!(use_bulk(BulkMode::Always, 10, 1));
        assert!(!use_bulk(BulkMode::Always, 10, 0));
    }

    fn settings() -> Settings {
        let vars: std::collections::HashMap<String, String> = [
            ("ORGSYNC__ORGS__A__PASSWORD", "p"),
            ("ORGSYNC__ORGS__B__PASSWORD", "p"),
            ("ORGSYNC__ORGS__A__USERNAME", "a@x"),
            ("ORGSYNC__ORGS__B__USERNAME", "b@x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        crate::config::load_str("test", &[], &vars).expect("settings")
    }

    #[test]
    fn lookups_select_is_deleted_without_the_filter_and_fit_the_url() {
        let settings = settings();
        assert!(settings.sync.filter.is_some());
        let mapping = Mapping::from_settings(&settings).unwrap();
        let ids: Vec<String> = (0..3_000).map(|i| format!("006A{i:014}")).collect();
        let soqls = lookup_soqls(&settings, &mapping, Org::A, &ids).unwrap();
        assert!(soqls.len() > 1, "3,000 ids do not fit one URL");
        let mut seen = 0;
        for soql in &soqls {
            assert!(encoded_len(soql) <= MAX_ENCODED_SOQL_BYTES, "{soql}");
            assert!(soql.contains("IsDeleted"), "{soql}");
            let filter = settings.sync.filter.as_deref().unwrap();
            assert!(!soql.contains(filter), "{soql}");
            seen += soql.matches("'006A").count();
        }
        assert_eq!(seen, ids.len());
        assert!(
            lookup_soqls(&settings, &mapping, Org::A, &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_deleted_row_says_so_as_json_or_as_csv_text() {
        let row = |v: Value| {
            let mut m = Map::new();
            m.insert("IsDeleted".to_string(), v);
            m
        };
        assert!(is_deleted(&row(Value::Bool(true))));
        assert!(is_deleted(&row(Value::String("true".into()))));
        assert!(!is_deleted(&row(Value::Bool(false))));
        assert!(!is_deleted(&Map::new()));
    }
}
