//! The configuration of one direction pass: what it needs to know besides its ports, taken
//! from the validated [`Settings`] for one direction and cycle ([`PassConfig::from_settings`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::accounts::{ACCOUNT_OBJECT, AccountMode};
use crate::config::{AccountPolicy, ConflictPolicy, DeleteConflictPolicy, DeletePolicy, Settings};
use crate::store::{Direction, FailureBackoff, Org};

/// Everything a pass needs to know besides its ports.
#[derive(Debug, Clone)]
pub struct PassConfig {
    /// Cycle number, carried on every log line.
    pub cycle: u64,
    pub direction: Direction,
    /// `sync.object`.
    pub object: String,
    pub conflict: ConflictPolicy,
    /// `sync.match_by`, canonical (A) names.
    pub match_by: Vec<String>,
    /// `sync.external_id_field`: same name in both orgs; holds the other org's record id.
    pub external_id_field: Option<String>,
    /// Rows per page (one store transaction each).
    pub page_size: usize,
    /// Salesforce calls in flight at once (`batch.in_flight`, at least 1): pages of the
    /// watermark query overlap up to this many, and the reads run ahead of them.
    pub in_flight: usize,
    /// Re-read window behind the watermark.
    pub lookback: Duration,
    /// Start of the first read when no watermark is stored.
    pub default_watermark: DateTime<Utc>,
    /// `sync.filter`, applied to the watermark query.
    pub filter: Option<String>,
    /// The source org's integration user.
    pub integration_user_id: Option<String>,
    /// Leave out rows last modified by the integration user (default on). Off for orgs where
    /// people share that user; the snapshot comparison then recognises our own writes.
    pub skip_integration_user_changes: bool,
    /// How failed records are retried (`sync.max_attempts`, `sync.retry_*_delay`).
    pub backoff: FailureBackoff,
    /// Parent accounts (`account.sync_policy`).
    pub account: AccountMode,
    /// Delete propagation (`sync.deletes`, `sync.delete_conflict`,
    /// `sync.max_deletes_per_cycle`).
    pub deletes: DeleteRules,
}

/// How deletes are propagated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteRules {
    /// `sync.deletes = "propagate"`: the watermark query reads deleted rows too (`queryAll`).
    /// Never for `sync.object = "Account"`: orgsync never deletes an Account.
    pub propagate: bool,
    /// `sync.delete_conflict`.
    pub conflict: DeleteConflictPolicy,
    /// `sync.max_deletes_per_cycle`; 0 = no limit.
    pub max_per_cycle: u32,
}

impl Default for DeleteRules {
    /// The built-in defaults: propagate, keep the edit, at most 100 deletes a cycle.
    fn default() -> Self {
        DeleteRules {
            propagate: true,
            conflict: DeleteConflictPolicy::KeepEdit,
            max_per_cycle: 100,
        }
    }
}

impl DeleteRules {
    /// Whether `count` deletes in one direction in one cycle are more than allowed.
    pub fn over_limit(&self, count: u64) -> bool {
        self.max_per_cycle > 0 && count > u64::from(self.max_per_cycle)
    }
}

impl PassConfig {
    /// The pass of `direction` as configured in `settings`; `integration_user_id` is the
    /// source org's (configured or learned at login).
    pub fn from_settings(
        settings: &Settings,
        direction: Direction,
        cycle: u64,
        integration_user_id: Option<String>,
    ) -> PassConfig {
        PassConfig {
            cycle,
            direction,
            object: settings.sync.object.clone(),
            conflict: settings.sync.conflict,
            match_by: settings.sync.match_by.clone(),
            external_id_field: settings.sync.external_id_field.clone(),
            page_size: settings.batch.page_size.max(1),
            in_flight: settings.batch.in_flight.max(1),
            lookback: settings.watermark.lookback,
            default_watermark: settings.watermark.default,
            filter: settings.sync.filter.clone(),
            integration_user_id,
            skip_integration_user_changes: settings.sync.skip_integration_user_changes,
            backoff: FailureBackoff::new(
                settings.sync.retry_initial_delay,
                settings.sync.retry_max_delay,
                settings.sync.max_attempts,
            ),
            account: match settings.account.sync_policy {
                AccountPolicy::None => AccountMode::None,
                AccountPolicy::Assign => {
                    let target = match direction.target() {
                        Org::A => &settings.a,
                        Org::B => &settings.b,
                    };
                    match &target.account_id {
                        Some(id) => AccountMode::Assign {
                            account_id: id.clone(),
                        },
                        None => AccountMode::None,
                    }
                }
                AccountPolicy::SyncAccount => AccountMode::SyncByName {
                    fields: settings.account.fields.clone(),
                },
            },
            deletes: DeleteRules {
                // Accounts are never deleted by orgsync, whatever the object synced.
                propagate: settings.sync.deletes == DeletePolicy::Propagate
                    && !settings.sync.object.eq_ignore_ascii_case(ACCOUNT_OBJECT),
                conflict: settings.sync.delete_conflict,
                max_per_cycle: settings.sync.max_deletes_per_cycle,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(sync: &str) -> Settings {
        let toml =
            format!("[sync]\n{sync}\n[orgs.a]\nusername = \"a@x\"\n[orgs.b]\nusername = \"b@x\"\n");
        let vars: HashMap<String, String> = [
            ("ORGSYNC__ORGS__A__PASSWORD", "pw"),
            ("ORGSYNC__ORGS__B__PASSWORD", "pw"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        crate::config::load_str("t", &[("t", &toml)], &vars).expect("settings")
    }

    #[test]
    fn the_delete_settings_reach_the_pass_and_accounts_are_never_deleted() {
        let rules = |sync: &str| {
            PassConfig::from_settings(&settings(sync), Direction::AToB, 1, None).deletes
        };
        assert_eq!(rules(""), DeleteRules::default());
        let set = rules("delete_conflict = \"delete\"\nmax_deletes_per_cycle = 7");
        assert_eq!(
            (set.propagate, set.conflict, set.max_per_cycle),
            (true, DeleteConflictPolicy::Delete, 7)
        );
        assert!(!rules("deletes = \"ignore\"").propagate);
        assert!(
            !rules("object = \"Account\"\nfields = [\"Name\"]").propagate,
            "an Account is never deleted by orgsync"
        );
        assert!(!DeleteRules::default().over_limit(100));
        assert!(DeleteRules::default().over_limit(101));
        let unlimited = DeleteRules {
            max_per_cycle: 0,
            ..DeleteRules::default()
        };
        assert!(!unlimited.over_limit(u64::MAX));
    }
}
