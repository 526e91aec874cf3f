//! Write: the page's writes to the target through sObject Collections. Creates (upserts on
//! the external id field when one is configured) and updates go in calls of at most 200
//! records, all calls in flight together (within `batch.in_flight`); each record's outcome
//! becomes its row's outcome (linked with the decision's snapshot, or failed with the body
//! sent). A limit on any call pauses the page: nothing of it is recorded. Any other error of
//! a whole call fails every record of it ([`per_record`]).

use futures::future::join_all;
use serde_json::{Map, Value};

use super::errors::Stop;
use super::pass::{COLLECTION_LIMIT, Pass};
use super::ports::{OrgPort, PortError, RecordError, StorePort, WriteOutcome};
use super::report::PassReport;
use super::rows::{RowOutcome, RowState, Write};
use crate::events::record::{RecordUpdated, RecordWritten};

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// Makes every row's write and sets its outcome; adds the created and updated counts.
    pub(super) async fn write_page(
        &self,
        rows: &mut [RowState],
        report: &mut PassReport,
    ) -> Result<(), Stop> {
        // A Bulk pass (`bulk_pass`) defers its updates and upserts to the pass's jobs.
        self.defer_writes(rows);
        // Bulk API 2.0 (`bulk_write`): a large pass's updates and upserts go through an
        // ingest job; the rows it settles have no write left for the calls below.
        self.bulk_write_page(rows, report).await?;
        let cfg = self.config;
        let creates: Vec<Map<String, Value>> = rows
            .iter()
            .filter_map(|s| match &s.write {
                Some(Write::Create(body)) => Some(body.clone()),
                _ => None,
            })
            .collect();
        let updates: Vec<(String, Map<String, Value>)> = rows
            .iter()
            .filter_map(|s| match &s.write {
                Some(Write::Update { target_id, body }) => Some((target_id.clone(), body.clone())),
                _ => None,
            })
            .collect();
        let create_calls = creates.chunks(COLLECTION_LIMIT).map(|bodies| async move {
            let outcomes = match &cfg.external_id_field {
                Some(ext) => {
                    self.call(self.target.upsert(&cfg.object, ext, bodies))
                        .await
                }
                None => self.call(self.target.create(&cfg.object, bodies)).await,
            };
            (outcomes, bodies.len())
        });
        let update_calls = updates.chunks(COLLECTION_LIMIT).map(|bodies| async move {
            let outcomes = self.call(self.target.update(&cfg.object, bodies)).await;
            (outcomes, bodies.len())
        });
        let (created, updated) = futures::join!(join_all(create_calls), join_all(update_calls));
        let tgt = self.target_org();
        if let Some(stop) = created
            .iter()
            .chain(&updated)
            .find_map(|(result, _)| result.as_ref().err().and_then(|e| Stop::pause(tgt, e)))
        {
            return Err(stop);
        }
        let mut created = created
            .into_iter()
            .flat_map(|(result, len)| per_record(result, len));
        let mut updated = updated
            .into_iter()
            .flat_map(|(result, len)| per_record(result, len));
        for state in rows.iter_mut() {
            let Some(write) = state.write.take() else {
                continue;
            };
            let snapshot = state
                .decision
                .as_ref()
                .and_then(|d| d.snapshot.clone())
                .unwrap_or_default();
            let row = &state.row;
            state.outcome = match write {
                Write::Create(body) => match created.next().unwrap_or_else(no_result) {
                    Ok(ok) => {
                        report.created += u64::from(ok.created);
                        report.updated += u64::from(!ok.created);
                        RecordWritten {
                            cycle: cfg.cycle,
                            direction: cfg.direction,
                            source_id: &row.id,
                            target_id: &ok.id,
                            created: ok.created,
                        }
                        .emit(self.metrics);
                        RowOutcome::Linked {
                            target_id: ok.id,
                            snapshot,
                        }
                    }
                    Err(e) => RowOutcome::Failed {
                        target_id: None,
                        code: e.code,
                        message: e.message,
                        class: e.class,
                        sent: Some(body),
                    },
                },
                Write::Update { target_id, body } => {
                    match updated.next().unwrap_or_else(no_result) {
                        Ok(_) => {
                            report.updated += 1;
                            // Field names at info, values at debug (see the event).
                            RecordUpdated {
                                cycle: cfg.cycle,
                                direction: cfg.direction,
                                source_id: &row.id,
                                target_id: &target_id,
                                body: &body,
                            }
                            .emit(self.metrics);
                            RowOutcome::Linked {
                                target_id,
                                snapshot,
                            }
                        }
                        Err(e) => RowOutcome::Failed {
                            target_id: Some(target_id),
                            code: e.code,
                            message: e.message,
                            class: e.class,
                            sent: Some(body),
                        },
                    }
                }
            };
        }
        Ok(())
    }
}

fn no_result() -> WriteOutcome {
    Err(RecordError::new(
        "NO_RESULT",
        "the org's reply had no result for this record",
    ))
}

/// Per-record outcomes of a write call; a whole-call error fails every record of it, and a
/// reply with too few items fails the records it does not mention.
pub(super) fn per_record(
    result: Result<Vec<WriteOutcome>, PortError>,
    len: usize,
) -> Vec<WriteOutcome> {
    match result {
        Ok(mut outcomes) => {
            while outcomes.len() < len {
                outcomes.push(no_result());
            }
            outcomes.truncate(len);
            outcomes
        }
        Err(e) => (0..len)
            .map(|_| {
                Err(RecordError {
                    code: e.code.clone(),
                    message: e.message.clone(),
                    class: e.failure_class(),
                })
            })
            .collect(),
    }
}
