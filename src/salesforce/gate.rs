//! The two reasons a client stops calling its org for a while, as pure state machines: a
//! login refused for its credentials ([`AuthGate`]) and the org's API limit or our budget
//! ([`LimitGate`]). The client asks them before each call and tells them what came back; they
//! answer with the transitions worth one log line, so an operator sees "paused", "still
//! paused" and "resumed" once each instead of a line per call or per cycle.
//!
//! Why gates in the client rather than in the scheduler: every caller (the poll cycle, the
//! inbox worker, `/readyz`, the login at start) goes through the client, so one gate keeps all
//! of them from hammering the org; a scheduler-level pause would miss `/readyz` probes and the
//! listener's org-id check.
//!
//! - A refused login (wrong password, bad client secret, JWT rejected: `ErrorClass::Auth`) is
//!   not tried again before 1 minute, then 2, 4... up to 1 hour: real orgs lock a user out
//!   after a few failed logins, and a daemon that logs in every 10 s would do exactly that.
//!   Network errors and 5xx are not refusals: they keep the client's ordinary retries.
//! - Over the daily limit (`REQUEST_LIMIT_EXCEEDED`) or the configured budget, calls are
//!   refused locally except a probe: the first a few seconds after the pause began, then with a
//!   doubling delay capped at a minute, so a limit raised by an admin (or a rolling 24-hour
//!   count that fell) is noticed within seconds, not after a fixed minute.

use std::time::{Duration, Instant};

/// The first wait after a refused login.
pub const AUTH_FIRST_DELAY: Duration = Duration::from_secs(60);
/// The longest wait between login attempts.
pub const AUTH_MAX_DELAY: Duration = Duration::from_secs(3600);
/// The first probe after a pause begins.
pub const PROBE_FIRST_DELAY: Duration = Duration::from_secs(2);
/// The longest wait between probes.
pub const PROBE_MAX_DELAY: Duration = Duration::from_secs(60);
/// While paused, a "still paused" line at most this often.
pub const STILL_PAUSED_EVERY: Duration = Duration::from_secs(300);

/// Why the last login was refused, and when the next may be tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// Salesforce's code (`INVALID_LOGIN`, `invalid_grant`, ...).
    pub code: String,
    /// Salesforce's message (never a secret).
    pub message: String,
    /// Refused logins in a row.
    pub attempts: u32,
    /// When the first of them was refused.
    pub since: Instant,
    /// No login before this.
    pub next_attempt: Instant,
}

/// Login back-off after refusals.
#[derive(Debug, Clone, Default)]
pub struct AuthGate {
    failure: Option<AuthFailure>,
}

impl AuthGate {
    /// `Err` with the failure while the next attempt is not due yet.
    pub fn check(&self, now: Instant) -> Result<(), &AuthFailure> {
        match &self.failure {
            Some(f) if now < f.next_attempt => Err(f),
            _ => Ok(()),
        }
    }

    /// A login was refused for its credentials; returns the wait before the next attempt.
    pub fn refused(&mut self, now: Instant, code: &str, message: &str) -> Duration {
        let attempts = self.failure.as_ref().map_or(0, |f| f.attempts) + 1;
        let delay = doubled(AUTH_FIRST_DELAY, AUTH_MAX_DELAY, attempts);
        let since = self.failure.as_ref().map_or(now, |f| f.since);
        self.failure = Some(AuthFailure {
            code: code.to_string(),
            message: message.to_string(),
            attempts,
            since,
            next_attempt: now + delay,
        });
        delay
    }

    /// A login succeeded; returns the failure it ends, if there was one.
    pub fn succeeded(&mut self) -> Option<AuthFailure> {
        self.failure.take()
    }

    pub fn failure(&self) -> Option<&AuthFailure> {
        self.failure.as_ref()
    }
}

/// `first * 2^(n-1)`, capped.
fn doubled(first: Duration, max: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
    first.saturating_mul(factor).min(max)
}

/// What the limit gate says about a call about to go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not paused.
    Go,
    /// Paused, but a probe is due: this call goes out and its reply decides.
    Probe,
    /// Paused: refuse the call without sending it. `log` when a "still paused" line is due.
    Refuse { since: Instant, log: bool },
}

/// A change worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitTransition {
    Paused,
    /// The pause lasted this long.
    Resumed(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Pause {
    since: Instant,
    probes: u32,
    next_probe: Instant,
    logged: Instant,
}

/// The pause on an org's API limit or budget.
#[derive(Debug, Clone, Default)]
pub struct LimitGate {
    pause: Option<Pause>,
}

impl LimitGate {
    /// Whether a call may go out now.
    pub fn admit(&mut self, now: Instant) -> Admission {
        let Some(pause) = &mut self.pause else {
            return Admission::Go;
        };
        if now >= pause.next_probe {
            // One probe at a time: the next is scheduled now, and the reply may end the pause.
            pause.probes += 1;
            pause.next_probe = now + doubled(PROBE_FIRST_DELAY, PROBE_MAX_DELAY, pause.probes + 1);
            return Admission::Probe;
        }
        let log = now.saturating_duration_since(pause.logged) >= STILL_PAUSED_EVERY;
        if log {
            pause.logged = now;
        }
        Admission::Refuse {
            since: pause.since,
            log,
        }
    }

    /// A reply came back: `limited` when it was a limit error or its usage is over budget.
    pub fn observe(&mut self, now: Instant, limited: bool) -> Option<LimitTransition> {
        match (&self.pause, limited) {
            (None, true) => {
                self.pause = Some(Pause {
                    since: now,
                    probes: 0,
                    next_probe: now + PROBE_FIRST_DELAY,
                    logged: now,
                });
                Some(LimitTransition::Paused)
            }
            (Some(p), false) => {
                let lasted = now.saturating_duration_since(p.since);
                self.pause = None;
                Some(LimitTransition::Resumed(lasted))
            }
            _ => None,
        }
    }

    pub fn paused_since(&self) -> Option<Instant> {
        self.pause.map(|p| p.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_refused_login_waits_one_minute_then_doubles_up_to_an_hour() {
        let t0 = Instant::now();
        let mut gate = AuthGate::default();
        assert!(gate.check(t0).is_ok());
        assert_eq!(gate.refused(t0, "INVALID_LOGIN", "bad"), 60 * S);
        assert!(gate.check(t0 + 59 * S).is_err());
        assert!(gate.check(t0 + 60 * S).is_ok());
        assert_eq!(gate.refused(t0 + 60 * S, "INVALID_LOGIN", "bad"), 120 * S);
        assert_eq!(gate.refused(t0 + 180 * S, "INVALID_LOGIN", "bad"), 240 * S);
        for _ in 0..10 {
            gate.refused(t0, "INVALID_LOGIN", "bad");
        }
        assert_eq!(gate.refused(t0, "INVALID_LOGIN", "bad"), 3600 * S);
        let failure = gate.failure().expect("failing");
        assert_eq!(failure.since, t0);
        assert_eq!(failure.attempts, 14);
        assert!(gate.succeeded().is_some());
        assert!(gate.check(t0).is_ok());
        assert!(gate.succeeded().is_none());
    }

    #[test]
    fn in_its_first_minute_a_wrong_password_costs_one_login() {
        // The daemon's promise: at most 2 attempts in the first 60 s (the one at start, and
        // the one when the minute is up), however often cycles ask.
        let t0 = Instant::now();
        let mut gate = AuthGate::default();
        let mut attempts = 0;
        for ms in (0..60_000).step_by(500) {
            let now = t0 + Duration::from_millis(ms);
            if gate.check(now).is_ok() {
                attempts += 1;
                gate.refused(now, "INVALID_LOGIN", "bad");
            }
        }
        assert_eq!(attempts, 1);
    }

    #[test]
    fn a_pause_probes_after_two_seconds_then_doubles_up_to_a_minute() {
        let t0 = Instant::now();
        let mut gate = LimitGate::default();
        assert_eq!(gate.admit(t0), Admission::Go);
        assert_eq!(gate.observe(t0, true), Some(LimitTransition::Paused));
        assert!(matches!(
            gate.admit(t0 + S),
            Admission::Refuse { log: false, .. }
        ));
        assert_eq!(gate.admit(t0 + 2 * S), Admission::Probe);
        assert_eq!(gate.observe(t0 + 2 * S, true), None);
        // next probe 4 s later, then 8, 16, 32, 60, 60
        assert!(matches!(gate.admit(t0 + 5 * S), Admission::Refuse { .. }));
        assert_eq!(gate.admit(t0 + 6 * S), Admission::Probe);
        assert_eq!(gate.admit(t0 + 14 * S), Admission::Probe);
        assert_eq!(gate.admit(t0 + 30 * S), Admission::Probe);
        assert_eq!(gate.admit(t0 + 62 * S), Admission::Probe);
        assert!(matches!(gate.admit(t0 + 100 * S), Admission::Refuse { .. }));
        assert_eq!(gate.admit(t0 + 122 * S), Admission::Probe);
        assert_eq!(gate.admit(t0 + 182 * S), Admission::Probe);
        assert_eq!(
            gate.observe(t0 + 183 * S, false),
            Some(LimitTransition::Resumed(183 * S))
        );
        assert_eq!(gate.admit(t0 + 183 * S), Admission::Go);
        assert_eq!(gate.observe(t0 + 184 * S, false), None);
    }

    #[test]
    fn a_long_pause_says_still_paused_every_five_minutes_not_per_call() {
        let t0 = Instant::now();
        let mut gate = LimitGate::default();
        gate.observe(t0, true);
        let mut lines = 0;
        for ms in (0..900_000u64).step_by(250) {
            let now = t0 + Duration::from_millis(ms);
            match gate.admit(now) {
                Admission::Refuse { log: true, .. } => lines += 1,
                Admission::Probe => {
                    gate.observe(now, true);
                }
                _ => {}
            }
        }
        assert_eq!(lines, 2, "at 5 and 10 minutes (15 min would be the third)");
    }
}
