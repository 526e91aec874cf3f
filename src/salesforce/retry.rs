//! Retries of failed calls: bounded attempts, exponential backoff with jitter.
//!
//! Only errors that [`super::SalesforceError::is_retryable`] calls transient (5xx, timeouts,
//! connection failures, `UNABLE_TO_LOCK_ROW`) are retried here. The daily limit is not: the
//! engine pauses the org instead, since hammering a refused org only makes it worse. Jitter
//! ("equal jitter": half the delay fixed, half random) keeps two orgsync processes, or the
//! two directions, from retrying in lockstep against a struggling org.

use std::time::Duration;

/// How often and how patiently one Salesforce call is retried (the call retry policy; the
/// failure queue's backoff is [`crate::store::FailureBackoff`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRetry {
    /// Total tries of one call, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub initial_delay: Duration,
    /// Cap on any single wait.
    pub max_delay: Duration,
    /// Extra tries of records rejected with a per-item `UNABLE_TO_LOCK_ROW` in a collection call.
    pub lock_retries: u32,
}

impl Default for CallRetry {
    fn default() -> Self {
        CallRetry {
            max_attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            lock_retries: 2,
        }
    }
}

impl CallRetry {
    /// A policy with tiny delays, for tests.
    pub fn fast() -> Self {
        CallRetry {
            max_attempts: 4,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            lock_retries: 2,
        }
    }

    /// The wait before retry number `retry` (1 = the first retry), given a random `fraction`
    /// in `[0, 1)`: half the exponential delay plus up to the other half at random.
    pub fn delay(&self, retry: u32, fraction: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = base / 2;
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        half + half.mul_f64(fraction)
    }

    /// [`Self::delay`] with a random fraction.
    pub fn jittered_delay(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random::<f64>())
    }

    /// Whether another try may follow try number `attempt` (1-based).
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let p = CallRetry {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            lock_retries: 1,
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay(10, 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay(60, 0.0), Duration::from_millis(500));
        assert_eq!(p.delay(1, f64::NAN), Duration::from_millis(50));
        let d = p.jittered_delay(2);
        assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
    }

    #[test]
    fn attempts_are_bounded() {
        let p = CallRetry {
            max_attempts: 3,
            ..CallRetry::default()
        };
        assert!(p.may_retry(1));
        assert!(p.may_retry(2));
        assert!(!p.may_retry(3));
        let never = CallRetry {
            max_attempts: 0,
            ..CallRetry::default()
        };
        assert!(!never.may_retry(1));
    }
}
