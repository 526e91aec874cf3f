//! One sync cycle: the A -> B pass, then the B -> A pass (which also drains what A -> B queued
//! to be carried back). A failed direction does not stop the other: each reports its own
//! result, and the caller (scheduler, `sync --once`) decides what to log and how to exit.

use tokio_util::sync::CancellationToken;

use super::mapping::Mapping;
use super::pass::{Pass, PassConfig, PassError, PassOutcome, PassReport};
use super::ports::{OrgPort, StorePort};

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

/// Runs one cycle. `a_to_b` and `b_to_a` are the two directions' configurations (see
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
    let first = Pass::new(a_to_b, mapping, a, b, store).run(cancel).await;
    if let Err(e) = &first {
        tracing::error!(
            cycle = a_to_b.cycle,
            direction = %a_to_b.direction,
            error = %e,
            "direction pass failed; the page in flight will be read again next cycle"
        );
    }
    if cancel.is_cancelled() {
        return CycleReport {
            a_to_b: first,
            b_to_a: None,
        };
    }
    let second = Pass::new(b_to_a, mapping, b, a, store).run(cancel).await;
    if let Err(e) = &second {
        tracing::error!(
            cycle = b_to_a.cycle,
            direction = %b_to_a.direction,
            error = %e,
            "direction pass failed; the page in flight will be read again next cycle"
        );
    }
    CycleReport {
        a_to_b: first,
        b_to_a: Some(second),
    }
}
