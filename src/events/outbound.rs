//! Outbound Messaging: a message acked or refused, with the messages and notifications
//! counters.

use crate::domain::Org;
use crate::metrics::{Metrics, OUTBOUND_MESSAGES, OUTBOUND_NOTIFICATIONS, label};

/// An outbound message was stored and acked. Metrics: messages by org and result `acked`,
/// notifications by org (redeliveries included).
#[derive(Debug)]
pub struct OutboundAcked {
    pub org: Org,
    /// Notifications in the message.
    pub notifications: usize,
    /// Of those, newly stored (not redeliveries).
    pub new: u64,
}

impl OutboundAcked {
    pub fn emit(&self, metrics: &Metrics) {
        let org = self.org.as_str();
        metrics
            .counter(
                OUTBOUND_MESSAGES,
                vec![label("org", org), label("result", "acked")],
            )
            .increment(1);
        metrics
            .counter(OUTBOUND_NOTIFICATIONS, vec![label("org", org)])
            .increment(self.notifications as u64);
        tracing::info!(
            org,
            notifications = self.notifications,
            new = self.new,
            "outbound message stored; acked"
        );
    }
}

/// An outbound message was answered with a SOAP fault: refused for the sender's fault (a
/// warning), or not stored for ours (an error; Salesforce retries it). Metric: messages by
/// org (`unknown` when the source could not be told) and result `refused`.
#[derive(Debug)]
pub struct OutboundRefused<'a> {
    /// `a`, `b` or `unknown`.
    pub org: &'static str,
    pub reason: &'a str,
    /// The sender is at fault (else we are).
    pub client: bool,
}

impl OutboundRefused<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .counter(
                OUTBOUND_MESSAGES,
                vec![label("org", self.org), label("result", "refused")],
            )
            .increment(1);
        if self.client {
            tracing::warn!(org = self.org, reason = %self.reason, "outbound message refused");
        } else {
            tracing::error!(
                org = self.org,
                reason = %self.reason,
                "outbound message not stored; Salesforce will retry it"
            );
        }
        // A refused message carries no stored notifications; the family shows the org all
        // the same (0), as it did when the counters were kept by hand.
        metrics
            .counter(OUTBOUND_NOTIFICATIONS, vec![label("org", self.org)])
            .increment(0);
    }
}
