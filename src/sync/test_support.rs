//! Test support: both direction passes of a cycle, A -> B then B -> A, run straight through
//! [`Pass`] for the engine's tests (the daemon's shell, `daemon::Daemon`, runs the passes of
//! a real cycle with their bookkeeping; this is not a second shell). A failed direction does
//! not stop the other: each reports its own result.

use tokio_util::sync::CancellationToken;

use super::errors::PassError;
use super::mapping::Mapping;
use super::pass::{Pass, PassConfig};
use super::ports::{OrgPort, StorePort};
use super::report::{PassOutcome, PassReport};
use crate::metrics::Metrics;

/// The outcome of both directions of a cycle.
#[derive(Debug)]
pub struct CycleReport {
    pub a_to_b: Result<PassReport, PassError>,
    /// `None` when the cycle was cancelled before B -> A started.
    pub b_to_a: Option<Result<PassReport, PassError>>,
}

impl CycleReport {
    /// Whether every record read in both directions got a durable outcome (written, skipped,
    /// or kept in the failure queue): both passes ran to the end without error or pause.
    pub fn complete(&self) -> bool {
        let done = |r: &Result<PassReport, PassError>| matches!(r, Ok(report) if report.outcome == PassOutcome::Completed);
        done(&self.a_to_b) && self.b_to_a.as_ref().is_some_and(done)
    }
}

/// Runs both passes. `a_to_b` and `b_to_a` are the two directions' configurations (see
/// [`PassConfig::from_settings`]).
pub async fn run_cycle<A, B, St>(
    a_to_b: &PassConfig,
    b_to_a: &PassConfig,
    mapping: &Mapping,
    a: &A,
    b: &B,
    store: &St,
    cancel: &CancellationToken,
) -> CycleReport
where
    A: OrgPort,
    B: OrgPort,
    St: StorePort,
{
    let metrics = Metrics::default();
    let first = Pass::new(a_to_b, mapping, a, b, store, &metrics)
        .run(cancel)
        .await;
    if cancel.is_cancelled() {
        return CycleReport {
            a_to_b: first,
            b_to_a: None,
        };
    }
    let second = Pass::new(b_to_a, mapping, b, a, store, &metrics)
        .run(cancel)
        .await;
    CycleReport {
        a_to_b: first,
        b_to_a: Some(second),
    }
}
