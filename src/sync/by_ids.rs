//! Running chosen source ids through the page pipeline: [`Pass::sync_ids`], the entry point
//! of `orgsync reconcile --repair` (and of anything else that knows which records to carry).
//! The ids are fetched fresh from the source (the ids it refuses isolated, as the failure
//! retries do), a page of `page_size` ids at a time, and each page goes through the same
//! stages as a cycle's: matching, the conflict policy, the writes, the failure queue, the
//! page's one transaction. The watermark does not move (the pages are in retry mode: a row
//! whose version is already recorded settles its stale failure, if any).

use tokio_util::sync::CancellationToken;

use super::errors::{PassError, Stop};
use super::pass::{Pass, PipelineMode};
use super::ports::{OrgPort, StorePort};
use super::report::{PassOutcome, PassReport};

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// Fetches `ids` fresh from the source and runs them through the page pipeline, page by
    /// page, without moving the watermark. Ids the source no longer has are left alone;
    /// ids it refuses to be queried by go to the failure queue.
    pub async fn sync_ids(
        &self,
        ids: &[String],
        cancel: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        let mut report = PassReport::default();
        let before = self.calls_made();
        let result = self.sync_id_pages(ids, cancel, &mut report).await;
        report.api_calls = self.calls_made() - before;
        self.settle(report, result)
    }

    async fn sync_id_pages(
        &self,
        ids: &[String],
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        for page in ids.chunks(self.config.page_size.max(1)) {
            if cancel.is_cancelled() {
                report.outcome = PassOutcome::Cancelled;
                return Ok(());
            }
            let mode = |_: &[super::plan::SourceRow], rejected| PipelineMode::Retry {
                missing: Vec::new(),
                rejected,
            };
            self.process_fetched(page, false, mode, report).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};
    use tokio_util::sync::CancellationToken;

    use crate::metrics::Metrics;
    use crate::store::{Direction, Org};
    use crate::sync::sim_tests::{client, config, file_store, start};
    use crate::sync::{Mapping, Pass, PassOutcome};

    fn mapping() -> Mapping {
        let fields: Vec<String> = ["Name", "StageName", "CloseDate", "Amount"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Mapping::new(&fields, &Default::default(), &Default::default()).expect("mapping")
    }

    /// A record the watermark query skips (made by the integration user) is carried by id:
    /// created in B and linked, the watermark untouched; carried again, nothing is written.
    #[tokio::test]
    async fn sync_ids_carries_a_record_the_watermark_query_skips() {
        let (sim_a, sim_b) = (start("A").await, start("B").await);
        let (a, b) = (client(&sim_a, "integration"), client(&sim_b, "integration"));
        let user_a = a.user_id().await.expect("login A");
        let (store, _dir) = file_store().await;
        let m = mapping();
        let Value::Object(body) = json!({
            "Name": "Skipped", "StageName": "Prospecting", "CloseDate": "2026-06-30",
            "Amount": 4200
        }) else {
            unreachable!("a JSON object literal")
        };
        let made: Vec<Map<String, Value>> = vec![body];
        let created = a.create("Opportunity", &made).await.expect("create");
        let id = created[0].as_ref().expect("created").id.clone();

        let ab = config(Direction::AToB, user_a, 1);
        let metrics = Metrics::default();
        let pass = Pass::new(&ab, &m, &a, &b, &store, &metrics);
        let cancel = CancellationToken::new();
        let report = pass.run(&cancel).await.expect("pass");
        assert_eq!(
            report.created, 0,
            "the integration user's record is skipped"
        );
        let watermark = store.watermark(Org::A, "Opportunity").await.expect("wm");

        let report = pass
            .sync_ids(std::slice::from_ref(&id), &cancel)
            .await
            .expect("by ids");
        assert_eq!(report.outcome, PassOutcome::Completed);
        assert_eq!((report.read, report.created), (1, 1), "{report:?}");
        let links = store
            .links_by_a_ids("Opportunity", std::slice::from_ref(&id))
            .await
            .expect("links");
        assert_eq!(links.len(), 1);
        assert!(links[0].is_live());
        assert_eq!(
            store.watermark(Org::A, "Opportunity").await.expect("wm"),
            watermark,
            "the watermark does not move"
        );

        let again = pass
            .sync_ids(std::slice::from_ref(&id), &cancel)
            .await
            .expect("by ids");
        assert_eq!((again.created, again.updated), (0, 0), "{again:?}");
    }
}
