//! Reading one org in full for reconcile: the filtered records' Id, SystemModstamp,
//! LastModifiedDate, LastModifiedById and mapped fields (the match key fields are mapped
//! fields), staged page by page into `reconcile_rows` (one page in memory at a time).
//!
//! The first REST page is read anyway; its `totalSize` chooses the path: above
//! `batch.bulk_read_threshold` (`batch.bulk = "auto"`; `"always"`: whatever the size) the rest
//! is read through a Bulk API 2.0 query job instead (create, polls, results pages of
//! `sync::MAX_RECORDS` rows, delete); a job that fails falls back to the REST pages. API
//! calls: REST `ceil(n / 2000)`; Bulk 1 query + 1 describe (the CSV's types) + 1 create + the
//! polls + `ceil(n / 10000)` results pages + 1 delete.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::compare::staged_row;
use crate::config::{BulkMode, Settings};
use crate::salesforce::bulk::{JobKind, JobState, csv, poll_delay};
use crate::salesforce::{Client, Cond, Soql};
use crate::store::{Org, ReconcileRow, Store};
use crate::sync::{MAX_RECORDS, Mapping};

use super::report::OrgRead;

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
    let mut soql = Soql::select(fields).from(settings.sync.object.clone());
    if let Some(filter) = &settings.sync.filter {
        soql = soql.where_(Cond::raw(filter.clone()));
    }
    soql.build().context("the reconcile query")
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
        })
    }

    async fn read_bulk(&self, org: Org, client: &Client, soql: &str) -> anyhow::Result<()> {
        let object = &self.settings.sync.object;
        let types = client.field_types(object).await?;
        let job = client.bulk_query_create(soql, false).await?;
        tracing::info!(org = %org, job_id = %job.id, "reconcile: bulk query job created");
        let started = std::time::Instant::now();
        let timeout = self.settings.batch.bulk_timeout;
        let mut state = job.state;
        let mut attempt = 0;
        while !state.is_terminal() {
            if started.elapsed() > timeout {
                client.bulk_abort(JobKind::Query, &job.id).await.ok();
                anyhow::bail!("bulk query job {} still open after {timeout:?}", job.id);
            }
            tokio::time::sleep(poll_delay(
                attempt,
                std::time::Duration::from_millis(250),
                std::time::Duration::from_secs(2),
            ))
            .await;
            attempt += 1;
            state = client.bulk_job(JobKind::Query, &job.id).await?.state;
        }
        if state != JobState::JobComplete {
            anyhow::bail!("bulk query job {} ended {state:?}", job.id);
        }
        let mut locator: Option<String> = None;
        loop {
            let page = client
                .bulk_query_results(&job.id, locator.as_deref(), MAX_RECORDS)
                .await?;
            let (header, cells) = csv::parse_table(&page.csv).map_err(anyhow::Error::msg)?;
            let records: Vec<Map<String, Value>> = cells
                .iter()
                .map(|row| csv::record_of(&header, row, &types))
                .collect();
            self.stage(org, &records).await?;
            match page.next_locator {
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
}
