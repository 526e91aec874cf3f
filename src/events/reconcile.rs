//! The repairs of `orgsync reconcile --repair` (issue 14): one event per difference acted on,
//! with its class, both record ids (when known), what was done and whether it held. Log only
//! (no metric: the counts are the report's `repaired`, kept in the store and served with it).
//! Imports nothing of the engine.

/// One difference that `--repair` acted on. No metric (see the module doc).
#[derive(Debug)]
pub struct DifferenceRepaired<'a> {
    /// The report class (`missing_in_b`, `orphan_link`, ...).
    pub class: &'a str,
    pub a_id: Option<&'a str>,
    pub b_id: Option<&'a str>,
    /// What was done (`created_and_linked`, `merged`, `tombstoned`, `relinked`, `linked`).
    pub action: &'a str,
    /// Whether the difference is gone (else why not, in `detail`).
    pub repaired: bool,
    pub detail: Option<&'a str>,
}

impl DifferenceRepaired<'_> {
    pub fn emit(&self) {
        let a_id = self.a_id.unwrap_or("-");
        let b_id = self.b_id.unwrap_or("-");
        let detail = self.detail.unwrap_or("");
        if self.repaired {
            tracing::info!(
                class = self.class,
                a_id,
                b_id,
                action = self.action,
                "reconcile: difference repaired"
            );
        } else {
            tracing::warn!(
                class = self.class,
                a_id,
                b_id,
                action = self.action,
                detail,
                "reconcile: difference not repaired"
            );
        }
    }
}
