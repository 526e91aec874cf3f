//! Records fetched fresh by id: the inbox drain, and the step it shares with the failure
//! retries (fetch the ids, run the rows found through the page pipeline as one page).
//!
//! One bad id must not block the rest. The source is asked for a batch of ids in one
//! `Id IN (...)` query, and the org refuses the whole query when one id in it is not an id
//! (`INVALID_QUERY_FILTER_OPERATOR`): left alone, that batch would stay pending on every retry
//! and every later notification would queue behind it. So a batch refused as a whole with a
//! permanent error is split in halves, and the halves again, until the refused ids are alone
//! ([`isolate`]): each one goes to the failure queue (dead, with the org's error, for an
//! operator) in the transaction of the page that processes the rest. One bad id among `n`
//! costs about `2 * log2(n)` more queries. A transient error (5xx, timeout) or an API limit
//! splits nothing: the batch stays pending and is tried again, as before. Nor does an error
//! that says the query itself is wrong, whatever ids it holds (an unknown field, an object
//! the user cannot read: see [`is_about_the_query`]): splitting would only move every row to
//! the failure queue.
//!
//! Part of the pass's feeds (see `feeds` for the watermark query and the failure queue).

use std::collections::HashSet;
use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::errors::{PassError, Stop};
use super::pass::{Pass, PipelineMode};
use super::plan::SourceRow;
use super::report::{PassOutcome, PassReport};
use crate::store::{FailureClass, NewFailure};
use crate::sync::ports::{OrgPort, PageTxPort, PortError, StorePort};

/// An id the source refused to be queried by: a batch holding it was refused as a whole, and
/// so was the id alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejected {
    pub id: String,
    /// The org's error for the query of this id alone.
    pub error: PortError,
}

/// What [`isolate`] found: the rows of the ids that could be fetched, and the ids that could
/// not, each with its error.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Isolated<R, E> {
    pub found: Vec<R>,
    pub rejected: Vec<(String, E)>,
}

/// Fetches `ids` with `fetch`; when a fetch fails with an error `splittable` accepts, fetches
/// each half on its own, down to single ids, which are then rejected with their error. Any
/// other error ends it (nothing found so far is returned). Without a bad id this is the one
/// fetch; `k` bad ids among `n` cost at most about `2 * k * log2(n)` more.
pub(super) async fn isolate<'i, R, E, F, Fut>(
    ids: &'i [String],
    mut fetch: F,
    splittable: impl Fn(&E) -> bool,
) -> Result<Isolated<R, E>, E>
where
    F: FnMut(&'i [String]) -> Fut,
    Fut: Future<Output = Result<Vec<R>, E>>,
{
    let mut isolated = Isolated {
        found: Vec::new(),
        rejected: Vec::new(),
    };
    // Depth first, left half first: the rows come back in the order of `ids`.
    let mut parts: Vec<&'i [String]> = vec![ids];
    while let Some(part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        match fetch(part).await {
            Ok(mut rows) => isolated.found.append(&mut rows),
            Err(e) if splittable(&e) => {
                if let [id] = part {
                    isolated.rejected.push((id.clone(), e));
                } else {
                    let (left, right) = part.split_at(part.len() / 2);
                    parts.push(right);
                    parts.push(left);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(isolated)
}

/// Errors that condemn the query whatever ids it holds (a field or object the configuration
/// names and the org does not have or does not let the user read): no split can help.
pub(super) fn is_about_the_query(code: &str) -> bool {
    matches!(
        code,
        "INVALID_FIELD"
            | "INVALID_TYPE"
            | "INSUFFICIENT_ACCESS"
            | "API_DISABLED_FOR_ORG"
            | "API_CURRENTLY_DISABLED"
            | "FUNCTIONALITY_NOT_ENABLED"
            | "NOT_FOUND"
    )
}

/// Whether a failed fetch of a batch of ids may be the fault of some of the ids: a permanent
/// refusal of the query, not one of [`is_about_the_query`].
fn may_be_an_id(e: &Stop) -> bool {
    matches!(
        e,
        Stop::Failed(PassError::Query { source, .. })
            if source.kind.is_permanent() && !is_about_the_query(&source.code)
    )
}

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// Drains the source org's inbox (push notifications and reverse carries): each record
    /// fetched fresh by id and run through the page pipeline.
    pub async fn drain_inbox(&self, cancel: &CancellationToken) -> Result<PassReport, PassError> {
        let mut report = PassReport::default();
        let before = self.calls_made();
        let result = self.drain_inbox_pages(cancel, &mut report).await;
        report.api_calls = self.calls_made() - before;
        self.settle(report, result)
    }

    async fn drain_inbox_pages(
        &self,
        cancel: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let mut seen: HashSet<i64> = HashSet::new();
        let limit = u32::try_from(self.config.page_size).unwrap_or(u32::MAX);
        loop {
            if cancel.is_cancelled() {
                report.outcome = PassOutcome::Cancelled;
                return Ok(());
            }
            let pending = self
                .store
                .pending_notifications(self.source_org(), limit)
                .await?;
            let pending: Vec<_> = pending.into_iter().filter(|i| seen.insert(i.id)).collect();
            if pending.is_empty() {
                return Ok(());
            }
            let (ours, others): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|i| i.object.eq_ignore_ascii_case(&self.config.object));
            if !others.is_empty() {
                tracing::warn!(
                    cycle = self.config.cycle,
                    direction = %self.config.direction,
                    count = others.len(),
                    "inbox items for another object are set aside as processed"
                );
                let ids: Vec<i64> = others.iter().map(|i| i.id).collect();
                self.store.mark_processed(&ids).await?;
            }
            if ours.is_empty() {
                continue;
            }
            let mut ids: Vec<String> = Vec::new();
            for item in &ours {
                if !ids.contains(&item.record_id) {
                    ids.push(item.record_id.clone());
                }
            }
            // Every item is processed with the page, the rejected ones' too: their record
            // waits in the failure queue instead.
            let inbox = |_: &[SourceRow], rejected: Vec<Rejected>| PipelineMode::Inbox {
                item_ids: ours.iter().map(|i| i.id).collect(),
                rejected,
            };
            // Notifications name live records: deleted ones are simply not found.
            self.process_fetched(&ids, false, inbox, report).await?;
        }
    }

    /// Fetches `ids` fresh from the source (isolating the ids it refuses) and runs the rows
    /// found through the page pipeline as one page, in the mode `mode` makes of them and of
    /// the refused ids; `with_deleted` fetches deleted records too (`queryAll`). A pause stops
    /// the loop.
    pub(super) async fn process_fetched(
        &self,
        ids: &[String],
        with_deleted: bool,
        mode: impl FnOnce(&[SourceRow], Vec<Rejected>) -> PipelineMode,
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        let (rows, rejected) = self.fetch_isolating(ids, with_deleted).await?;
        let mode = mode(&rows, rejected);
        self.process_page(rows, mode, report).await
    }

    /// [`Pass::fetch_by_ids`], splitting a batch the source refuses as a whole (see
    /// [`isolate`]): the rows found, and the ids refused on their own.
    async fn fetch_isolating(
        &self,
        ids: &[String],
        with_deleted: bool,
    ) -> Result<(Vec<SourceRow>, Vec<Rejected>), Stop> {
        let before = self.calls_made();
        let isolated = isolate(
            ids,
            |part| self.fetch_by_ids(part, with_deleted),
            may_be_an_id,
        )
        .await?;
        let mut rejected = Vec::with_capacity(isolated.rejected.len());
        for (id, e) in isolated.rejected {
            match e {
                Stop::Failed(PassError::Query { source, .. }) => {
                    rejected.push(Rejected { id, error: source });
                }
                // `may_be_an_id` lets only query errors through.
                other => return Err(other),
            }
        }
        if !rejected.is_empty() {
            tracing::warn!(
                cycle = self.config.cycle,
                direction = %self.config.direction,
                ids = ids.len(),
                rejected = rejected.len(),
                api_calls = self.calls_made() - before,
                "the source refused a batch of ids as a whole: the refused ids were isolated"
            );
        }
        Ok((isolated.found, rejected))
    }

    /// Records the ids the source refused as failures for an operator (in the page's
    /// transaction): retrying the same id cannot succeed.
    pub(super) async fn record_rejected(
        &self,
        tx: &mut St::Tx,
        rejected: &[Rejected],
        report: &mut PassReport,
    ) -> Result<(), PassError> {
        let cfg = self.config;
        for r in rejected {
            tracing::warn!(
                cycle = cfg.cycle,
                direction = %cfg.direction,
                source_id = %r.id,
                code = %r.error.code,
                message = %r.error.message,
                "the source refuses to be queried by this id: kept in the failure queue"
            );
            let failure = NewFailure {
                direction: cfg.direction,
                object: cfg.object.clone(),
                source_id: r.id.clone(),
                target_id: None,
                source_modstamp: None,
                error_code: r.error.code.clone(),
                message: r.error.message.clone(),
                // The id itself is refused: no edit of the record can fix it (it is not a
                // record of this object), so an operator looks at it.
                class: FailureClass::NeedsOperator,
                sent: None,
            };
            tx.record_failure(&failure, &cfg.backoff).await?;
            report.failed += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::sync::ports::ErrorKind;

    /// A fetch that refuses any batch holding an id starting with `bad`, and counts calls.
    fn fetcher(
        calls: &RefCell<u32>,
    ) -> impl FnMut(&[String]) -> std::future::Ready<Result<Vec<String>, String>> + '_ {
        move |part: &[String]| {
            *calls.borrow_mut() += 1;
            std::future::ready(match part.iter().find(|id| id.starts_with("bad")) {
                Some(id) => Err(format!("invalid ID field: {id}")),
                None => Ok(part.to_vec()),
            })
        }
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    async fn run(names: &[&str]) -> (Isolated<String, String>, u32) {
        let ids = ids(names);
        let calls = RefCell::new(0);
        let isolated = isolate(&ids, fetcher(&calls), |_| true).await.unwrap();
        (isolated, calls.into_inner())
    }

    #[tokio::test]
    async fn without_a_bad_id_it_is_one_fetch() {
        let (isolated, calls) = run(&["a", "b", "c"]).await;
        assert_eq!(isolated.found, ids(&["a", "b", "c"]));
        assert!(isolated.rejected.is_empty());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn one_bad_id_among_n_costs_about_two_log2_n_more_fetches() {
        let names: Vec<String> = (0..200)
            .map(|i| {
                if i == 137 {
                    "bad".into()
                } else {
                    format!("id{i}")
                }
            })
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (isolated, calls) = run(&names).await;
        assert_eq!(isolated.found.len(), 199);
        assert_eq!(
            isolated.rejected,
            vec![("bad".to_string(), "invalid ID field: bad".to_string())]
        );
        // 1 + 2 per halving; 200 ids take 8 halvings to reach one.
        assert!(calls <= 1 + 2 * 8, "{calls} fetches");
        // The rows keep the order of the ids.
        let mut sorted = isolated.found.clone();
        sorted.sort_by_key(|id| id[2..].parse::<u32>().unwrap_or(0));
        assert_eq!(isolated.found, sorted);
    }

    #[tokio::test]
    async fn several_bad_ids_are_each_isolated() {
        let (isolated, calls) = run(&["bad1", "a", "b", "bad2", "c", "d", "e", "bad3"]).await;
        assert_eq!(isolated.found, ids(&["a", "b", "c", "d", "e"]));
        let rejected: Vec<&str> = isolated
            .rejected
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(rejected, ["bad1", "bad2", "bad3"]);
        assert!(calls <= 15, "{calls} fetches: never more than 2n - 1");
        // All bad: every id alone, 2n - 1 fetches.
        let (isolated, calls) = run(&["bad1", "bad2"]).await;
        assert!(isolated.found.is_empty());
        assert_eq!(isolated.rejected.len(), 2);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn an_error_that_is_not_splittable_ends_it() {
        let ids = ids(&["a", "bad", "b"]);
        let calls = RefCell::new(0);
        let result = isolate(&ids, fetcher(&calls), |_| false).await;
        assert_eq!(result, Err("invalid ID field: bad".to_string()));
        assert_eq!(calls.into_inner(), 1);
    }

    #[test]
    fn only_errors_that_may_be_an_ids_fault_are_split() {
        let query = |kind, code: &str| {
            Stop::Failed(PassError::Query {
                org: crate::store::Org::A,
                source: PortError {
                    kind,
                    code: code.into(),
                    message: String::new(),
                },
            })
        };
        assert!(may_be_an_id(&query(
            ErrorKind::NeedsOperator,
            "INVALID_QUERY_FILTER_OPERATOR"
        )));
        assert!(may_be_an_id(&query(
            ErrorKind::NeedsEdit,
            "MALFORMED_QUERY"
        )));
        assert!(may_be_an_id(&query(ErrorKind::Auth, "INVALID_ID_FIELD")));
        // the query is wrong whatever ids it holds
        assert!(!may_be_an_id(&query(
            ErrorKind::NeedsOperator,
            "INVALID_FIELD"
        )));
        // transient, or a limit: the batch stays pending
        assert!(!may_be_an_id(&query(
            ErrorKind::Transient,
            "SERVER_UNAVAILABLE"
        )));
        assert!(!may_be_an_id(&query(
            ErrorKind::Limit,
            "REQUEST_LIMIT_EXCEEDED"
        )));
        assert!(!may_be_an_id(&Stop::Failed(PassError::BadRow {
            org: crate::store::Org::A,
            message: String::new(),
        })));
    }
}
