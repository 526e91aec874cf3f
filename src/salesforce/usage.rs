//! API usage: the org's daily count from `Sforce-Limit-Info`, the calls this process made by
//! kind, and the API budget that pauses an org before Salesforce itself refuses calls.
//!
//! Salesforce reports `api-usage=N/M` on every REST reply: N calls used in the rolling 24
//! hours, M the allowance. The client records the latest value; cycle logs and metrics read it
//! together with our own per-kind counts. The budget check is a pure function so its edge
//! cases are tested without a server.

use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of calls the client makes, for counts in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallKind {
    Login,
    Query,
    QueryMore,
    Create,
    Update,
    Upsert,
    Delete,
    Describe,
    Limits,
    /// Bulk API 2.0 (query and ingest jobs: create, poll, upload, results, abort, delete).
    Bulk,
    Other,
}

impl CallKind {
    /// Every kind, in a stable order.
    pub const ALL: [CallKind; 11] = [
        CallKind::Login,
        CallKind::Query,
        CallKind::QueryMore,
        CallKind::Create,
        CallKind::Update,
        CallKind::Upsert,
        CallKind::Delete,
        CallKind::Describe,
        CallKind::Limits,
        CallKind::Bulk,
        CallKind::Other,
    ];

    /// The name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Login => "login",
            CallKind::Query => "query",
            CallKind::QueryMore => "query_more",
            CallKind::Create => "create",
            CallKind::Update => "update",
            CallKind::Upsert => "upsert",
            CallKind::Delete => "delete",
            CallKind::Describe => "describe",
            CallKind::Limits => "limits",
            CallKind::Bulk => "bulk",
            CallKind::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts of HTTP calls sent, by kind (retries count: each is a call Salesforce charges).
#[derive(Debug, Default)]
pub struct CallCounters {
    counts: [AtomicU64; CallKind::ALL.len()],
}

impl CallCounters {
    pub fn add(&self, kind: CallKind) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: CallKind) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// A snapshot of all counts.
    pub fn snapshot(&self) -> CallCounts {
        let mut counts = [0u64; CallKind::ALL.len()];
        for kind in CallKind::ALL {
            counts[kind.index()] = self.get(kind);
        }
        CallCounts { counts }
    }
}

/// A copy of the per-kind call counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    counts: [u64; CallKind::ALL.len()],
}

impl CallCounts {
    pub fn get(&self, kind: CallKind) -> u64 {
        self.counts[kind.index()]
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Calls other than logins (what a cycle costs in API allowance beyond authentication).
    pub fn api_calls(&self) -> u64 {
        self.total() - self.get(CallKind::Login)
    }

    /// `(kind, count)` for every kind with a non-zero count.
    pub fn nonzero(&self) -> Vec<(CallKind, u64)> {
        CallKind::ALL
            .into_iter()
            .map(|k| (k, self.get(k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The calls made since `earlier`.
    pub fn since(&self, earlier: &CallCounts) -> CallCounts {
        let mut counts = [0u64; CallKind::ALL.len()];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = self.counts[i].saturating_sub(earlier.counts[i]);
        }
        CallCounts { counts }
    }
}

/// Parses `Sforce-Limit-Info` (`api-usage=18/5000` or `api-usage=18/5000; api-bursts=1/750`)
/// into `(used, max)`.
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    header.split([';', ',']).find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("api-usage") {
            return None;
        }
        let (used, max) = value.trim().split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

/// The latest usage seen.
#[derive(Debug, Clone, Copy)]
pub struct UsageSeen {
    pub used: u64,
    pub max: u64,
}

/// Whether the latest usage seen is over `budget_percent` of the daily max. 100 % leaves the
/// limit to Salesforce (`REQUEST_LIMIT_EXCEEDED`). While over, the client refuses calls but
/// its probes (see [`super::gate::LimitGate`]): the usage is a rolling 24-hour count that
/// falls again, and only a call's reply tells us that it did.
pub fn over_budget(seen: Option<UsageSeen>, budget_percent: u8) -> bool {
    let Some(seen) = seen else { return false };
    if budget_percent >= 100 || seen.max == 0 {
        return false;
    }
    u128::from(seen.used) * 100 >= u128::from(seen.max) * u128::from(budget_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_forms() {
        assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse_limit_info("api-usage=18/5000; api-bursts=1/750"),
            Some((18, 5000))
        );
        assert_eq!(
            parse_limit_info("api-bursts=1/750; api-usage=7/15000"),
            Some((7, 15000))
        );
        assert_eq!(parse_limit_info("api-usage=x/5000"), None);
        assert_eq!(parse_limit_info(""), None);
        assert_eq!(parse_limit_info("per-app-api-usage=1/2"), None);
    }

    #[test]
    fn counters_count_by_kind() {
        let c = CallCounters::default();
        c.add(CallKind::Query);
        c.add(CallKind::Query);
        c.add(CallKind::Login);
        let before = c.snapshot();
        c.add(CallKind::Create);
        let after = c.snapshot();
        assert_eq!(after.get(CallKind::Query), 2);
        assert_eq!(after.total(), 4);
        assert_eq!(after.api_calls(), 3);
        assert_eq!(after.since(&before).total(), 1);
        assert_eq!(
            after.nonzero(),
            vec![
                (CallKind::Login, 1),
                (CallKind::Query, 2),
                (CallKind::Create, 1)
            ]
        );
    }

    #[test]
    fn budget() {
        let seen = |used| Some(UsageSeen { used, max: 1000 });
        assert!(!over_budget(None, 80));
        assert!(!over_budget(seen(799), 80));
        assert!(over_budget(seen(800), 80));
        assert!(!over_budget(seen(1000), 100));
    }
}
