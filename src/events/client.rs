//! The Salesforce client's state changes, each logged once by the client's gates (see
//! `salesforce::gate`): a login refused for its credentials, accepted again; an API
//! pause that began, is still on, ended. The client has no daemon handle, so these events
//! only log: their metrics are gauges (`orgsync_auth_failed`, `orgsync_api_paused`) that the
//! scrape reads from the same gates whose transitions emit these events, so the two agree.

use std::time::Duration;

/// A login was refused for its credentials: the org is paused, not tried again before `wait`.
#[derive(Debug)]
pub struct LoginRefused<'a> {
    pub org: &'a str,
    /// The auth mode (`password`, `jwt`, ...).
    pub auth: &'a str,
    pub code: &'a str,
    pub error: &'a str,
    pub wait: Duration,
}

impl LoginRefused<'_> {
    pub fn emit(&self) {
        tracing::error!(
            org = %self.org,
            auth = self.auth,
            code = %self.code,
            error = %self.error,
            next_attempt_in_s = self.wait.as_secs(),
            "login refused for its credentials: org paused, not tried again before the wait (fix the credentials; orgs.{}.*)",
            self.org
        );
    }
}

/// A login was accepted after `refusals` refusals in a row.
#[derive(Debug)]
pub struct LoginAcceptedAgain<'a> {
    pub org: &'a str,
    pub refusals: u32,
}

impl LoginAcceptedAgain<'_> {
    pub fn emit(&self) {
        tracing::info!(
            org = %self.org,
            refusals = self.refusals,
            "login accepted again; the org is no longer paused"
        );
    }
}

/// The org answered that its API limit (or our budget) is reached: no calls but a probe.
#[derive(Debug)]
pub struct ApiPauseBegan<'a> {
    pub org: &'a str,
    pub code: &'a str,
    pub error: &'a str,
}

impl ApiPauseBegan<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            org = self.org,
            code = %self.code,
            error = %self.error,
            "org paused on its API limit: no calls but a probe (after 2 s, doubling up to 1 min) until it answers again"
        );
    }
}

/// The org is still paused (at most one line per interval of the gate).
#[derive(Debug)]
pub struct ApiStillPaused<'a> {
    pub org: &'a str,
    pub paused_for: Duration,
    pub code: &'a str,
}

impl ApiStillPaused<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            org = self.org,
            paused_for_s = self.paused_for.as_secs(),
            code = %self.code,
            "org still paused on its API limit; probing with back-off"
        );
    }
}

/// The org answered again after a pause of `lasted`.
#[derive(Debug)]
pub struct ApiResumed<'a> {
    pub org: &'a str,
    pub lasted: Duration,
}

impl ApiResumed<'_> {
    pub fn emit(&self) {
        tracing::info!(
            org = self.org,
            paused_for_s = self.lasted.as_secs(),
            "org resumed: its API limit allows calls again"
        );
    }
}
