//! The worker's own lines: the heartbeat and housekeeping (log lines only).

/// The worker's heartbeat: the daemon is alive, and what it did since the last one. A log
/// line only (the counters say the same cumulatively).
#[derive(Debug)]
pub struct Heartbeat<'a> {
    /// The trigger policy, as configured.
    pub policy: &'a dyn std::fmt::Debug,
    pub cycles: u64,
    pub written: u64,
    pub failed: u64,
    pub last_cycle: u64,
}

impl Heartbeat<'_> {
    pub fn emit(&self) {
        tracing::info!(
            policy = ?self.policy,
            cycles = self.cycles,
            written = self.written,
            failed = self.failed,
            last_cycle = self.last_cycle,
            "orgsync alive{}",
            if self.written + self.failed == 0 { ": idle" } else { "" }
        );
    }
}

/// Housekeeping deleted old processed notifications and finished cycles (logged only when it
/// deleted something), or failed (tried again in an hour). A log line only.
#[derive(Debug)]
pub enum Housekeeping {
    Done { inbox_rows: u64, cycles: u64 },
    Failed { error: String },
}

impl Housekeeping {
    pub fn emit(&self) {
        match self {
            Housekeeping::Done { inbox_rows, cycles } => {
                if inbox_rows + cycles > 0 {
                    tracing::info!(
                        inbox_rows,
                        cycles,
                        "housekeeping: old processed notifications and cycles deleted"
                    );
                }
            }
            Housekeeping::Failed { error } => {
                tracing::warn!(error = %error, "housekeeping failed; tried again in an hour");
            }
        }
    }
}
