//! Reconcile's staging tables (`reconcile_rows`, `reconcile_reports`): both orgs' records as
//! a run read them, the comparisons that classify their differences (SQL over the staged rows
//! and `links`, each streamed row by row to a callback, so that memory stays bounded at
//! millions of records), and the last report.
//!
//! A run's rows are deleted when it ends and, for a run that died half-way, when the next one
//! starts ([`Store::start_reconcile_run`]). Only the last report is kept.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::{AnyConnection, Row};

use super::time::{format_timestamp, parse_opt, parse_timestamp};
use super::{Org, Store, StoreError};

/// One record as a reconcile run read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileRow {
    pub record_id: String,
    pub system_modstamp: Option<DateTime<Utc>>,
    pub last_modified: Option<DateTime<Utc>>,
    pub last_modified_by: Option<String>,
    /// The normalized match key (a JSON array), `None` when it has an empty field.
    pub match_key: Option<String>,
    /// The canonical mapped values: a JSON object.
    pub vals: String,
}

/// A staged record with no live (or tombstoned) link and no unlinked record of the same match
/// key in the other org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRow {
    pub record_id: String,
    pub system_modstamp: Option<DateTime<Utc>>,
    pub vals: String,
}

/// A link whose records do not agree with its state: live with a record gone, or a tombstone
/// with both records still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanRow {
    pub a_id: String,
    pub b_id: String,
    pub state: String,
    pub a_present: bool,
    pub b_present: bool,
}

/// Two records without a live link that hold the same match key, unique in both orgs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlinkedMatchRow {
    pub a_id: String,
    pub b_id: String,
    pub match_key: String,
}

/// A match key held by several records of one org, one of them at least without a live link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbiguousRow {
    pub org: Org,
    pub match_key: String,
    pub records: i64,
    pub first_id: String,
    pub last_id: String,
}

/// A live link with both records read: what the per-field comparison needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRow {
    pub a_id: String,
    pub b_id: String,
    /// The SystemModstamps the link holds (as last seen by a sync).
    pub link_a_modstamp: Option<DateTime<Utc>>,
    pub link_b_modstamp: Option<DateTime<Utc>>,
    pub a_modstamp: Option<DateTime<Utc>>,
    pub b_modstamp: Option<DateTime<Utc>>,
    pub a_last_modified_by: Option<String>,
    pub b_last_modified_by: Option<String>,
    pub a_vals: String,
    pub b_vals: String,
    /// Whether A's (B's) record was not in the filtered read but found live by its Id: it
    /// left `sync.filter` ([`Store::stage_reconcile_outside_rows`]).
    pub a_outside: bool,
    pub b_outside: bool,
}

/// The last reconcile report, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReconcileReport {
    pub run_id: String,
    pub object: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub differences: i64,
    /// The report as JSON text.
    pub report: String,
}

/// The query of [`Store::reconcile_missing`] for the side `$side` (`"a_id"` or `"b_id"`) of
/// the org staged as `$3`, the other org (`$4`) on `$other`.
macro_rules! missing_sql {
    ($side:literal, $other:literal) => {
        concat!(
            "SELECT r.record_id, r.system_modstamp, r.vals FROM reconcile_rows r
             WHERE r.run_id = $1 AND r.org = $3
               AND NOT EXISTS (SELECT 1 FROM links l WHERE l.object = $2 AND l.",
            $side,
            " = r.record_id AND l.state IN ('live', 'tombstone'))
               AND NOT (r.match_key IS NOT NULL AND EXISTS (
                   SELECT 1 FROM reconcile_rows o
                   WHERE o.run_id = $1 AND o.org = $4 AND o.match_key = r.match_key
                     AND NOT EXISTS (SELECT 1 FROM links l2 WHERE l2.object = $2 AND l2.",
            $other,
            " = o.record_id AND l2.state = 'live')))
             ORDER BY r.record_id"
        )
    };
}

/// The query of [`Store::reconcile_unread_linked`] for the side `$side` of live links.
macro_rules! unread_sql {
    ($side:literal) => {
        concat!(
            "SELECT DISTINCT l.",
            $side,
            " AS id FROM links l
             WHERE l.object = $2 AND l.state = 'live' AND l.",
            $side,
            " > $4
               AND NOT EXISTS (SELECT 1 FROM reconcile_rows r WHERE r.run_id = $1
                               AND r.org = $3 AND r.record_id = l.",
            $side,
            ")
             ORDER BY id LIMIT $5"
        )
    };
}

impl Store {
    /// Starts a run: drops every staged row of earlier runs (one that died half-way).
    pub async fn start_reconcile_run(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM reconcile_rows")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a run: drops its staged rows.
    pub async fn finish_reconcile_run(&self, run_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM reconcile_rows WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `reconcile --repair` of an unexplained drift: forgets what live link `(object, a_id,
    /// b_id)` last synced (its snapshot emptied, both modstamps cleared, as `orgsync links
    /// link` leaves a new link), so that the next pass over either record sees every differing
    /// field as changed on both sides and merges the pair by `sync.conflict`. Whether there
    /// was such a live link.
    pub async fn forget_link_snapshot(
        &self,
        object: &str,
        a_id: &str,
        b_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE links SET snapshot = '{}', a_modstamp = NULL, b_modstamp = NULL,
                 updated_at = $4
             WHERE object = $1 AND a_id = $2 AND b_id = $3 AND state = 'live'",
        )
        .bind(object)
        .bind(a_id)
        .bind(b_id)
        .bind(format_timestamp(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stages one page of `org`'s records for run `run_id`, in one transaction (a record read
    /// twice, by a retried page, is staged once).
    pub async fn stage_reconcile_rows(
        &self,
        run_id: &str,
        org: Org,
        rows: &[ReconcileRow],
    ) -> Result<(), StoreError> {
        self.stage_rows(run_id, org, rows, false).await
    }

    /// Stages records of `org` that a live link holds, which the filtered read did not return
    /// and a lookup by Id found live: they left `sync.filter`. They are compared as linked
    /// pairs ([`Store::reconcile_pairs`] flags them), are not orphans, and are left out of the
    /// records read and of the ambiguous keys.
    pub async fn stage_reconcile_outside_rows(
        &self,
        run_id: &str,
        org: Org,
        rows: &[ReconcileRow],
    ) -> Result<(), StoreError> {
        self.stage_rows(run_id, org, rows, true).await
    }

    async fn stage_rows(
        &self,
        run_id: &str,
        org: Org,
        rows: &[ReconcileRow],
        outside_filter: bool,
    ) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        let run_id = run_id.to_string();
        self.in_tx(async move |conn: &mut AnyConnection| {
            for row in &rows {
                sqlx::query(
                    "INSERT INTO reconcile_rows (run_id, org, record_id, system_modstamp,
                         last_modified, last_modified_by, match_key, vals, outside_filter)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (run_id, org, record_id) DO NOTHING",
                )
                .bind(&run_id)
                .bind(org.as_str())
                .bind(&row.record_id)
                .bind(row.system_modstamp.map(format_timestamp))
                .bind(row.last_modified.map(format_timestamp))
                .bind(&row.last_modified_by)
                .bind(&row.match_key)
                .bind(&row.vals)
                .bind(i64::from(outside_filter))
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
        .await
    }

    /// Rows of `org`'s filtered read staged in run `run_id` (not those found outside it).
    pub async fn reconcile_row_count(&self, run_id: &str, org: Org) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM reconcile_rows
             WHERE run_id = $1 AND org = $2 AND outside_filter = 0",
        )
        .bind(run_id)
        .bind(org.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` ids of `org`'s side of live links of `object` that run `run_id` has not
    /// staged, after `after` (`""` for the first page), in id order: the records to look up
    /// outside the filter, paged out of the store so that memory stays bounded.
    pub async fn reconcile_unread_linked(
        &self,
        run_id: &str,
        object: &str,
        org: Org,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let sql = match org {
            Org::A => unread_sql!("a_id"),
            Org::B => unread_sql!("b_id"),
        };
        let ids: Vec<String> = sqlx::query_scalar(sql)
            .bind(run_id)
            .bind(object)
            .bind(org.as_str())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(ids)
    }

    /// Every record of `org` with no live or tombstoned link and no record of the same match
    /// key without a live link in the other org, in Id order.
    pub async fn reconcile_missing(
        &self,
        run_id: &str,
        object: &str,
        org: Org,
        mut each: impl FnMut(MissingRow),
    ) -> Result<(), StoreError> {
        let sql = match org {
            Org::A => missing_sql!("a_id", "b_id"),
            Org::B => missing_sql!("b_id", "a_id"),
        };
        let mut rows = sqlx::query(sql)
            .bind(run_id)
            .bind(object)
            .bind(org.as_str())
            .bind(org.other().as_str())
            .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(MissingRow {
                record_id: row.try_get("record_id")?,
                system_modstamp: parse_opt(row.try_get("system_modstamp")?)?,
                vals: row.try_get("vals")?,
            });
        }
        Ok(())
    }

    /// Every link of `object` whose records do not fit its state (a live link with a record
    /// not read, a tombstone with both records read), in `a_id` order.
    pub async fn reconcile_orphans(
        &self,
        run_id: &str,
        object: &str,
        mut each: impl FnMut(OrphanRow),
    ) -> Result<(), StoreError> {
        let mut rows = sqlx::query(
            "SELECT a_id, b_id, state, a_present, b_present FROM (
                 SELECT l.a_id, l.b_id, l.state,
                   -- A record found outside the filter is there for its live link; a
                   -- tombstone is judged by the filtered read alone.
                   CASE WHEN EXISTS (SELECT 1 FROM reconcile_rows ra WHERE ra.run_id = $1
                        AND ra.org = 'a' AND ra.record_id = l.a_id
                        AND (l.state = 'live' OR ra.outside_filter = 0)) THEN 1 ELSE 0 END AS a_present,
                   CASE WHEN EXISTS (SELECT 1 FROM reconcile_rows rb WHERE rb.run_id = $1
                        AND rb.org = 'b' AND rb.record_id = l.b_id
                        AND (l.state = 'live' OR rb.outside_filter = 0)) THEN 1 ELSE 0 END AS b_present
                 FROM links l WHERE l.object = $2 AND l.state IN ('live', 'tombstone')) t
             WHERE (state = 'live' AND (a_present = 0 OR b_present = 0))
                OR (state = 'tombstone' AND a_present = 1 AND b_present = 1)
             ORDER BY a_id, b_id",
        )
        .bind(run_id)
        .bind(object)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let a_present: i64 = row.try_get("a_present")?;
            let b_present: i64 = row.try_get("b_present")?;
            each(OrphanRow {
                a_id: row.try_get("a_id")?,
                b_id: row.try_get("b_id")?,
                state: row.try_get("state")?,
                a_present: a_present == 1,
                b_present: b_present == 1,
            });
        }
        Ok(())
    }

    /// Pairs of records without a live link that share a match key held once in each org,
    /// and that no unlinked or tombstoned link separates, in `a_id` order.
    pub async fn reconcile_unlinked_matches(
        &self,
        run_id: &str,
        object: &str,
        mut each: impl FnMut(UnlinkedMatchRow),
    ) -> Result<(), StoreError> {
        let mut rows = sqlx::query(
            "SELECT ra.record_id AS a_id, rb.record_id AS b_id, ra.match_key
             FROM reconcile_rows ra
             JOIN reconcile_rows rb ON rb.run_id = $1 AND rb.org = 'b'
                                   AND rb.match_key = ra.match_key
             WHERE ra.run_id = $1 AND ra.org = 'a' AND ra.match_key IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM links l WHERE l.object = $2
                               AND l.a_id = ra.record_id AND l.state = 'live')
               AND NOT EXISTS (SELECT 1 FROM links l WHERE l.object = $2
                               AND l.b_id = rb.record_id AND l.state = 'live')
               AND NOT EXISTS (SELECT 1 FROM links l WHERE l.object = $2
                               AND l.a_id = ra.record_id AND l.b_id = rb.record_id)
               AND (SELECT COUNT(*) FROM reconcile_rows x WHERE x.run_id = $1 AND x.org = 'a'
                    AND x.match_key = ra.match_key) = 1
               AND (SELECT COUNT(*) FROM reconcile_rows y WHERE y.run_id = $1 AND y.org = 'b'
                    AND y.match_key = ra.match_key) = 1
             ORDER BY ra.record_id",
        )
        .bind(run_id)
        .bind(object)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(UnlinkedMatchRow {
                a_id: row.try_get("a_id")?,
                b_id: row.try_get("b_id")?,
                match_key: row.try_get("match_key")?,
            });
        }
        Ok(())
    }

    /// Match keys held by several records of one org, one at least without a live link, by
    /// org then key.
    pub async fn reconcile_ambiguous(
        &self,
        run_id: &str,
        object: &str,
        mut each: impl FnMut(AmbiguousRow),
    ) -> Result<(), StoreError> {
        let mut rows = sqlx::query(
            "SELECT org, match_key, COUNT(*) AS records, MIN(record_id) AS first_id,
                    MAX(record_id) AS last_id
             FROM (SELECT r.org, r.match_key, r.record_id,
                     -- One EXISTS per side, each on its own index (an OR of the two
                     -- would scan links for every row).
                     CASE WHEN r.org = 'a' THEN
                         CASE WHEN EXISTS (SELECT 1 FROM links l WHERE l.object = $2
                              AND l.a_id = r.record_id AND l.state = 'live') THEN 1 ELSE 0 END
                     ELSE
                         CASE WHEN EXISTS (SELECT 1 FROM links l WHERE l.object = $2
                              AND l.b_id = r.record_id AND l.state = 'live') THEN 1 ELSE 0 END
                     END AS linked
                   FROM reconcile_rows r
                   WHERE r.run_id = $1 AND r.match_key IS NOT NULL
                     AND r.outside_filter = 0) t
             GROUP BY org, match_key
             HAVING COUNT(*) > 1 AND MIN(linked) = 0
             ORDER BY org, match_key",
        )
        .bind(run_id)
        .bind(object)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let org: String = row.try_get("org")?;
            each(AmbiguousRow {
                org: org
                    .parse()
                    .map_err(|e: String| StoreError::Corrupt(format!("reconcile row org: {e}")))?,
                match_key: row.try_get("match_key")?,
                records: row.try_get("records")?,
                first_id: row.try_get("first_id")?,
                last_id: row.try_get("last_id")?,
            });
        }
        Ok(())
    }

    /// Every live link of `object` with both records read, in `a_id` order (a sorted join:
    /// one pair at a time).
    pub async fn reconcile_pairs(
        &self,
        run_id: &str,
        object: &str,
        mut each: impl FnMut(PairRow),
    ) -> Result<(), StoreError> {
        let mut rows = sqlx::query(
            "SELECT l.a_id, l.b_id, l.a_modstamp AS link_a, l.b_modstamp AS link_b,
                    ra.system_modstamp AS a_stamp, rb.system_modstamp AS b_stamp,
                    ra.last_modified_by AS a_by, rb.last_modified_by AS b_by,
                    ra.vals AS a_vals, rb.vals AS b_vals,
                    ra.outside_filter AS a_out, rb.outside_filter AS b_out
             FROM links l
             JOIN reconcile_rows ra ON ra.run_id = $1 AND ra.org = 'a' AND ra.record_id = l.a_id
             JOIN reconcile_rows rb ON rb.run_id = $1 AND rb.org = 'b' AND rb.record_id = l.b_id
             WHERE l.object = $2 AND l.state = 'live'
             ORDER BY l.a_id",
        )
        .bind(run_id)
        .bind(object)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(PairRow {
                a_id: row.try_get("a_id")?,
                b_id: row.try_get("b_id")?,
                link_a_modstamp: parse_opt(row.try_get("link_a")?)?,
                link_b_modstamp: parse_opt(row.try_get("link_b")?)?,
                a_modstamp: parse_opt(row.try_get("a_stamp")?)?,
                b_modstamp: parse_opt(row.try_get("b_stamp")?)?,
                a_last_modified_by: row.try_get("a_by")?,
                b_last_modified_by: row.try_get("b_by")?,
                a_vals: row.try_get("a_vals")?,
                b_vals: row.try_get("b_vals")?,
                a_outside: row.try_get::<i64, _>("a_out")? == 1,
                b_outside: row.try_get::<i64, _>("b_out")? == 1,
            });
        }
        Ok(())
    }

    /// Keeps `report` as the last reconcile report (earlier ones are dropped).
    pub async fn save_reconcile_report(
        &self,
        report: &StoredReconcileReport,
    ) -> Result<(), StoreError> {
        let report = report.clone();
        self.in_tx(async move |conn: &mut AnyConnection| {
            sqlx::query("DELETE FROM reconcile_reports WHERE run_id <> $1")
                .bind(&report.run_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO reconcile_reports (run_id, object, started_at, finished_at,
                     differences, report)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (run_id) DO UPDATE SET object = excluded.object,
                     started_at = excluded.started_at, finished_at = excluded.finished_at,
                     differences = excluded.differences, report = excluded.report",
            )
            .bind(&report.run_id)
            .bind(&report.object)
            .bind(format_timestamp(report.started_at))
            .bind(format_timestamp(report.finished_at))
            .bind(report.differences)
            .bind(&report.report)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// The last reconcile report, if a run ever finished.
    pub async fn last_reconcile_report(&self) -> Result<Option<StoredReconcileReport>, StoreError> {
        let row = sqlx::query(
            "SELECT run_id, object, started_at, finished_at, differences, report
             FROM reconcile_reports ORDER BY finished_at DESC, run_id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let started: String = row.try_get("started_at")?;
        let finished: String = row.try_get("finished_at")?;
        Ok(Some(StoredReconcileReport {
            run_id: row.try_get("run_id")?,
            object: row.try_get("object")?,
            started_at: parse_timestamp(&started)?,
            finished_at: parse_timestamp(&finished)?,
            differences: row.try_get("differences")?,
            report: row.try_get("report")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::LinkWrite;

    fn at(sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, sec).unwrap()
    }

    fn row(id: &str, key: Option<&str>, vals: &str, sec: u32) -> ReconcileRow {
        ReconcileRow {
            record_id: id.into(),
            system_modstamp: Some(at(sec)),
            last_modified: Some(at(sec)),
            last_modified_by: Some("005H".into()),
            match_key: key.map(|k| format!("[\"{k}\"]")),
            vals: vals.into(),
        }
    }

    async fn link(store: &Store, a: &str, b: &str) {
        store
            .upsert_link(&LinkWrite {
                object: "Opportunity".into(),
                a_id: a.into(),
                b_id: b.into(),
                a_modstamp: Some(at(1)),
                b_modstamp: Some(at(1)),
                snapshot: serde_json::Map::new(),
            })
            .await
            .unwrap();
    }

    crate::both_backends! {
        async fn every_comparison_finds_its_class(store) {
            let run = "run1";
            store.start_reconcile_run().await.unwrap();
            let a = [
                row("a1", Some("pair"), "{\"Name\":\"x\"}", 1),
                row("a2", Some("gone"), "{}", 1),
                row("a3", Some("lonely"), "{}", 1),
                row("a4", Some("match"), "{}", 1),
                row("a5", Some("twin"), "{}", 1),
                row("a6", Some("twin"), "{}", 1),
            ];
            let b = [
                row("b1", Some("pair"), "{\"Name\":\"y\"}", 2),
                row("b4", Some("match"), "{}", 1),
                row("b5", Some("twin"), "{}", 1),
                row("b7", None, "{}", 1),
            ];
            store.stage_reconcile_rows(run, Org::A, &a).await.unwrap();
            store.stage_reconcile_rows(run, Org::B, &b).await.unwrap();
            // Staged twice (a retried page): once.
            store.stage_reconcile_rows(run, Org::B, &b[..1]).await.unwrap();
            assert_eq!(store.reconcile_row_count(run, Org::A).await.unwrap(), 6);
            assert_eq!(store.reconcile_row_count(run, Org::B).await.unwrap(), 4);
            link(&store, "a1", "b1").await;
            link(&store, "a2", "b2").await;

            let mut missing_b = Vec::new();
            store.reconcile_missing(run, "Opportunity", Org::A, |r| missing_b.push(r.record_id)).await.unwrap();
            assert_eq!(missing_b, vec!["a3"]);
            let mut missing_a = Vec::new();
            store.reconcile_missing(run, "Opportunity", Org::B, |r| missing_a.push(r.record_id)).await.unwrap();
            assert_eq!(missing_a, vec!["b7"]);
            let mut orphans = Vec::new();
            store.reconcile_orphans(run, "Opportunity", |r| orphans.push((r.a_id, r.a_present, r.b_present))).await.unwrap();
            assert_eq!(orphans, vec![("a2".to_string(), true, false)]);
            let mut matches = Vec::new();
            store.reconcile_unlinked_matches(run, "Opportunity", |r| matches.push((r.a_id, r.b_id))).await.unwrap();
            assert_eq!(matches, vec![("a4".to_string(), "b4".to_string())]);
            let mut ambiguous = Vec::new();
            store.reconcile_ambiguous(run, "Opportunity", |r| ambiguous.push((r.org, r.records, r.first_id, r.last_id))).await.unwrap();
            assert_eq!(ambiguous, vec![(Org::A, 2, "a5".to_string(), "a6".to_string())]);
            let mut pairs = Vec::new();
            store.reconcile_pairs(run, "Opportunity", |p| pairs.push(p)).await.unwrap();
            assert_eq!(pairs.len(), 1);
            assert_eq!(pairs[0].b_modstamp, Some(at(2)));
            assert_eq!(pairs[0].link_b_modstamp, Some(at(1)));
            assert_eq!(pairs[0].b_vals, "{\"Name\":\"y\"}");

            store.finish_reconcile_run(run).await.unwrap();
            assert_eq!(store.reconcile_row_count(run, Org::A).await.unwrap(), 0);
        }
    }

    crate::both_backends! {
        async fn records_found_outside_the_filter_pair_up_and_are_not_read_rows(store) {
            let run = "run1";
            store.start_reconcile_run().await.unwrap();
            for (a, b) in [("a1", "b1"), ("a2", "b2"), ("a3", "b3"), ("a4", "b4")] {
                link(&store, a, b).await;
            }
            // A read a1 and an unlinked a5 of a2's key; B read all four.
            let a = [row("a1", Some("k1"), "{}", 1), row("a5", Some("k2"), "{}", 1)];
            store.stage_reconcile_rows(run, Org::A, &a).await.unwrap();
            let b: Vec<ReconcileRow> = (1..=4)
                .map(|i| row(&format!("b{i}"), Some(&format!("k{i}")), "{}", 1))
                .collect();
            store.stage_reconcile_rows(run, Org::B, &b).await.unwrap();
            // The unread ids of A's side, paged two at a time.
            let first = store.reconcile_unread_linked(run, "Opportunity", Org::A, "", 2).await.unwrap();
            assert_eq!(first, vec!["a2", "a3"]);
            let next = store.reconcile_unread_linked(run, "Opportunity", Org::A, "a3", 2).await.unwrap();
            assert_eq!(next, vec!["a4"]);
            assert!(store.reconcile_unread_linked(run, "Opportunity", Org::B, "", 2).await.unwrap().is_empty());
            // a2 and a3 are found live outside the filter (a4 was deleted: not staged).
            let outside = [row("a2", Some("k2"), "{}", 1), row("a3", Some("k3"), "{}", 1)];
            store.stage_reconcile_outside_rows(run, Org::A, &outside).await.unwrap();
            assert_eq!(store.reconcile_unread_linked(run, "Opportunity", Org::A, "", 9).await.unwrap(), vec!["a4"]);
            assert_eq!(store.reconcile_row_count(run, Org::A).await.unwrap(), 2);
            let mut pairs = Vec::new();
            store.reconcile_pairs(run, "Opportunity", |p| pairs.push((p.a_id, p.a_outside, p.b_outside))).await.unwrap();
            assert_eq!(pairs, vec![
                ("a1".to_string(), false, false),
                ("a2".to_string(), true, false),
                ("a3".to_string(), true, false),
            ]);
            // A tombstone of a2 (found outside the filter) with b1 (read): not both read.
            sqlx::query("INSERT INTO links (object, a_id, b_id, snapshot, state, deleted_at,
                             deleted_by, created_at, updated_at)
                         VALUES ('Opportunity', 'a2', 'b1', '{}', 'tombstone', $1, 'a', $1, $1)")
                .bind(format_timestamp(at(3)))
                .execute(&store.pool)
                .await
                .unwrap();
            let mut orphans = Vec::new();
            store.reconcile_orphans(run, "Opportunity", |r| orphans.push(r.a_id)).await.unwrap();
            assert_eq!(orphans, vec!["a4"]);
            // a2 shares the unlinked a5's key, but only the filtered read makes keys ambiguous.
            let mut ambiguous = 0;
            store.reconcile_ambiguous(run, "Opportunity", |_| ambiguous += 1).await.unwrap();
            assert_eq!(ambiguous, 0);
        }
    }

    crate::both_backends! {
        async fn only_the_last_report_is_kept(store) {
            assert!(store.last_reconcile_report().await.unwrap().is_none());
            for (i, run) in ["r1", "r2"].iter().enumerate() {
                store
                    .save_reconcile_report(&StoredReconcileReport {
                        run_id: run.to_string(),
                        object: "Opportunity".into(),
                        started_at: at(10 * i as u32),
                        finished_at: at(10 * i as u32 + 5),
                        differences: i as i64,
                        report: format!("{{\"run\":{i}}}"),
                    })
                    .await
                    .unwrap();
            }
            let last = store.last_reconcile_report().await.unwrap().unwrap();
            assert_eq!(last.run_id, "r2");
            assert_eq!(last.differences, 1);
            assert_eq!(last.finished_at, at(15));
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reconcile_reports")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
    }

    crate::both_backends! {
        async fn forgetting_a_snapshot_clears_only_that_live_link(store) {
            let mut snapshot = serde_json::Map::new();
            snapshot.insert("Name".into(), serde_json::json!("x"));
            for (a, b) in [("a1", "b1"), ("a2", "b2")] {
                store
                    .upsert_link(&LinkWrite {
                        object: "Opportunity".into(),
                        a_id: a.into(),
                        b_id: b.into(),
                        a_modstamp: Some(at(1)),
                        b_modstamp: Some(at(2)),
                        snapshot: snapshot.clone(),
                    })
                    .await
                    .unwrap();
            }
            assert!(store.forget_link_snapshot("Opportunity", "a1", "b1").await.unwrap());
            // Not that pair, not that object: nothing.
            assert!(!store.forget_link_snapshot("Opportunity", "a1", "b2").await.unwrap());
            assert!(!store.forget_link_snapshot("Account", "a2", "b2").await.unwrap());
            let ids = ["a1".to_string(), "a2".to_string()];
            let links = store.links_by_a_ids("Opportunity", &ids).await.unwrap();
            let of = |id: &str| links.iter().find(|l| l.a_id == id).unwrap();
            assert!(of("a1").snapshot.is_empty());
            assert_eq!((of("a1").a_modstamp, of("a1").b_modstamp), (None, None));
            assert!(of("a1").is_live());
            assert_eq!(of("a2").snapshot, snapshot);
            assert_eq!(of("a2").b_modstamp, Some(at(2)));
        }
    }
}
