//! Outbound Messaging (reference §7): after every committed create or update of the
//! configured object, the org queues a notification (fresh `04l` id) and a delivery task POSTs
//! SOAP `notifications` envelopes of up to 100 notifications to the configured endpoint. A
//! message that is not acknowledged (`<Ack>true</Ack>` with HTTP 200) is retried with
//! exponential backoff, each message on its own schedule, so retries can overtake each other
//! and arrive out of order, as in Salesforce. Each attempt carries the record's current values
//! (the endpoint gets the latest values, not intermediate ones). For tests, `duplicate_rate`
//! sends an acknowledged message a second time.
//!
//! The envelope and ack parsing are pure functions; [`Outbound`] holds the queue, the settings
//! and the counters; the delivery task that drains the queue over HTTP is
//! `server::delivery` (it reads the records from the org's state).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::db::{Change, ChangeKind, RecordTexts};
use crate::ids::{self, IdGenerator};

/// Notifications per message (Salesforce's limit).
pub const MAX_NOTIFICATIONS_PER_MESSAGE: usize = 100;
/// The API version of the Enterprise and Partner URLs in the envelope.
pub const OUTBOUND_API_VERSION: &str = "62.0";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Settings of an org's outbound message (`/__sim/outbound`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Where notifications are POSTed.
    pub endpoint_url: Option<String>,
    /// The object whose changes are sent.
    pub object: String,
    /// Fields sent besides `Id`.
    pub fields: Vec<String>,
    pub enabled: bool,
    /// First retry delay; doubles per attempt up to `retry_max_delay_ms`.
    pub retry_base_delay_ms: u64,
    /// Longest delay between two attempts (Salesforce: 2 hours).
    pub retry_max_delay_ms: u64,
    /// A message not acknowledged within this time is dropped (Salesforce: 24 hours).
    pub give_up_after_ms: u64,
    /// Share of acknowledged messages delivered a second time (tests of deduplication).
    pub duplicate_rate: f64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            endpoint_url: None,
            object: "Opportunity".into(),
            fields: vec![
                "Name".into(),
                "StageName".into(),
                "CloseDate".into(),
                "Amount".into(),
                "AccountId".into(),
                "SystemModstamp".into(),
            ],
            enabled: false,
            retry_base_delay_ms: 1_000,
            retry_max_delay_ms: 2 * 60 * 60 * 1000,
            give_up_after_ms: 24 * 60 * 60 * 1000,
            duplicate_rate: 0.0,
        }
    }
}

/// Delivery counters, reported by `/__sim/stats` under `outbound`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OutboundStats {
    /// Notifications queued.
    pub notifications_queued: u64,
    /// Notifications in acknowledged messages.
    pub notifications_acked: u64,
    /// POSTs made (first attempts, retries and duplicates).
    pub messages_sent: u64,
    /// Messages acknowledged.
    pub messages_acked: u64,
    /// Attempts that were not acknowledged (error status, no Ack, unreachable endpoint).
    pub messages_failed: u64,
    /// Messages given up after `give_up_after_ms`.
    pub messages_dropped: u64,
    /// Extra deliveries made by `duplicate_rate`.
    pub duplicates_sent: u64,
}

#[derive(Default)]
struct Counters {
    notifications_queued: AtomicU64,
    notifications_acked: AtomicU64,
    messages_sent: AtomicU64,
    messages_acked: AtomicU64,
    messages_failed: AtomicU64,
    messages_dropped: AtomicU64,
    duplicates_sent: AtomicU64,
}

/// What happened to a message, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryEvent {
    /// A message was POSTed.
    Sent,
    /// A message of `notifications` notifications was acknowledged.
    Acked { notifications: usize },
    /// A POST was not acknowledged (it will be retried or dropped).
    Failed,
    /// A message was given up after `give_up_after_ms`.
    Dropped,
    /// An acknowledged message was sent again (`duplicate_rate`).
    DuplicateSent,
}

/// A queued notification: which record changed. Its values are read at delivery time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub notification_id: String,
    pub record_id: String,
}

/// One org's outbound messaging: settings, queue and counters.
pub struct Outbound {
    config: Mutex<OutboundConfig>,
    queue: Mutex<VecDeque<Pending>>,
    ids: Mutex<Option<IdGenerator>>,
    /// Bumped by a reset: messages of an older generation stop retrying.
    generation: AtomicU64,
    counters: Counters,
    wake: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    /// Bumped after every counter change, so tests can wait for delivery without sleeping.
    progress: watch::Sender<u64>,
}

impl Default for Outbound {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbound {
    pub fn new() -> Self {
        Outbound {
            config: Mutex::new(OutboundConfig::default()),
            queue: Mutex::new(VecDeque::new()),
            ids: Mutex::new(None),
            generation: AtomicU64::new(0),
            counters: Counters::default(),
            wake: Arc::new(Notify::new()),
            shutdown: watch::channel(false).0,
            progress: watch::channel(0).0,
        }
    }

    pub fn config(&self) -> OutboundConfig {
        lock(&self.config).clone()
    }

    pub fn set_config(&self, config: OutboundConfig) {
        *lock(&self.config) = config;
        self.wake.notify_one();
    }

    pub fn stats(&self) -> OutboundStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OutboundStats {
            notifications_queued: get(&c.notifications_queued),
            notifications_acked: get(&c.notifications_acked),
            messages_sent: get(&c.messages_sent),
            messages_acked: get(&c.messages_acked),
            messages_failed: get(&c.messages_failed),
            messages_dropped: get(&c.messages_dropped),
            duplicates_sent: get(&c.duplicates_sent),
        }
    }

    /// A receiver that changes whenever a counter does (see [`Outbound::stats`]).
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    fn bump(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Notifications waiting for a message.
    pub fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Disables delivery, drops the queue and stops retries in flight; counters restart.
    pub fn reset(&self) {
        *lock(&self.config) = OutboundConfig::default();
        lock(&self.queue).clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let c = &self.counters;
        for a in [
            &c.notifications_queued,
            &c.notifications_acked,
            &c.messages_sent,
            &c.messages_acked,
            &c.messages_failed,
            &c.messages_dropped,
            &c.duplicates_sent,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    /// Stops the delivery task and every retry.
    pub fn close(&self) {
        self.shutdown.send_replace(true);
    }

    /// Queues a notification per committed create or update of the configured object.
    pub fn on_changes(&self, org_id: &str, changes: &[Change]) {
        let config = lock(&self.config).clone();
        if !config.enabled || config.endpoint_url.is_none() {
            return;
        }
        let selected: Vec<&Change> = changes
            .iter()
            .filter(|c| {
                c.kind != ChangeKind::Deleted && c.object.eq_ignore_ascii_case(&config.object)
            })
            .collect();
        if selected.is_empty() {
            return;
        }
        let mut gen_lock = lock(&self.ids);
        let id_gen = gen_lock.get_or_insert_with(|| IdGenerator::new(org_id));
        let mut queue = lock(&self.queue);
        for c in selected {
            queue.push_back(Pending {
                notification_id: id_gen.next_id(ids::NOTIFICATION_PREFIX),
                record_id: c.id.clone(),
            });
            self.counters
                .notifications_queued
                .fetch_add(1, Ordering::Relaxed);
        }
        drop(queue);
        drop(gen_lock);
        self.bump();
        self.wake.notify_one();
    }

    /// A receiver that turns `true` when the org closes.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Notified whenever there may be new work (queued notifications, new settings).
    pub fn wake_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The current generation: a message of an older one stops retrying.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Counts one delivery event (see [`DeliveryEvent`]) and wakes the progress watchers.
    pub fn record(&self, event: DeliveryEvent) {
        let c = &self.counters;
        let add = |a: &AtomicU64, n: u64| {
            a.fetch_add(n, Ordering::Relaxed);
        };
        match event {
            DeliveryEvent::Sent => add(&c.messages_sent, 1),
            DeliveryEvent::Acked { notifications } => {
                add(&c.messages_acked, 1);
                add(&c.notifications_acked, notifications as u64);
            }
            DeliveryEvent::Failed => add(&c.messages_failed, 1),
            DeliveryEvent::Dropped => add(&c.messages_dropped, 1),
            DeliveryEvent::DuplicateSent => {
                add(&c.duplicates_sent, 1);
                add(&c.messages_sent, 1);
            }
        }
        self.bump();
    }

    /// Takes up to [`MAX_NOTIFICATIONS_PER_MESSAGE`] queued notifications, oldest first.
    pub fn take_batch(&self) -> Vec<Pending> {
        let mut q = lock(&self.queue);
        let n = q.len().min(MAX_NOTIFICATIONS_PER_MESSAGE);
        q.drain(..n).collect()
    }
}

/// The retry delay before attempt `attempt + 1` (attempt 0 is the first try):
/// `base * 2^attempt`, capped at `max`.
pub fn backoff(attempt: u32, base_ms: u64, max_ms: u64) -> Duration {
    let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
    Duration::from_millis(base_ms.saturating_mul(factor).min(max_ms))
}

/// The 15-character form of an id, as Salesforce writes ids in URLs.
fn id15(id: &str) -> &str {
    id.get(..15).unwrap_or(id)
}

/// The `notifications` envelope of reference §7.
pub fn envelope(
    org_id: &str,
    action_id: &str,
    base_url: &str,
    notifications: &[(String, RecordTexts)],
) -> String {
    let org15 = escape(id15(org_id));
    let base = escape(base_url);
    let mut out = String::with_capacity(512 + notifications.len() * 256);
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    out.push_str(r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#);
    out.push_str(
        r#"<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
    );
    out.push_str(&format!(
        "<OrganizationId>{}</OrganizationId><ActionId>{}</ActionId><SessionId xsi:nil=\"true\"/>",
        escape(org_id),
        escape(action_id)
    ));
    out.push_str(&format!(
        "<EnterpriseUrl>{base}/services/Soap/c/{OUTBOUND_API_VERSION}/{org15}</EnterpriseUrl>"
    ));
    out.push_str(&format!(
        "<PartnerUrl>{base}/services/Soap/u/{OUTBOUND_API_VERSION}/{org15}</PartnerUrl>"
    ));
    for (nid, rec) in notifications {
        out.push_str(&format!("<Notification><Id>{}</Id>", escape(nid.as_str())));
        out.push_str(&format!(
            r#"<sObject xsi:type="sf:{}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">"#,
            escape(rec.object.as_str())
        ));
        for (name, value) in &rec.fields {
            let name = escape(name.as_str());
            match value {
                Some(v) => out.push_str(&format!("<sf:{name}>{}</sf:{name}>", escape(v.as_str()))),
                None => out.push_str(&format!("<sf:{name} xsi:nil=\"true\"/>")),
            }
        }
        out.push_str("</sObject></Notification>");
    }
    out.push_str("</notifications></soapenv:Body></soapenv:Envelope>");
    out
}

/// Whether a reply body is a `notificationsResponse` with `<Ack>true</Ack>` (any prefix).
pub fn is_ack(body: &str) -> bool {
    let mut reader = Reader::from_str(body);
    let mut in_ack = false;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                in_ack = e.local_name().as_ref() == "Ack";
                text.clear();
            }
            Ok(Event::Text(t)) if in_ack => text.push_str(&t.xml10_content()),
            Ok(Event::End(_)) => {
                if in_ack && text.trim() == "true" {
                    return true;
                }
                in_ack = false;
            }
            Ok(Event::Eof) | Err(_) => return false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0, 10, 1000), Duration::from_millis(10));
        assert_eq!(backoff(3, 10, 1000), Duration::from_millis(80));
        assert_eq!(backoff(20, 10, 1000), Duration::from_millis(1000));
        assert_eq!(backoff(200, 10, 1000), Duration::from_millis(1000));
    }

    #[test]
    fn ack_detection() {
        let ok = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
 <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>
</soapenv:Body></soapenv:Envelope>"#;
        assert!(is_ack(ok));
        assert!(is_ack(
            "<a:Envelope xmlns:a='x'><a:Body><r><x:Ack xmlns:x='y'> true </x:Ack></r></a:Body></a:Envelope>"
        ));
        assert!(!is_ack(&ok.replace("true", "false")));
        assert!(!is_ack("not xml <"));
        assert!(!is_ack(""));
    }

    #[test]
    fn envelope_shape() {
        let rec = RecordTexts {
            object: "Opportunity".into(),
            fields: vec![
                ("Id".into(), Some("006000000000001AAA".into())),
                ("Name".into(), Some("A & B".into())),
                ("Amount".into(), None),
            ],
        };
        let xml = envelope(
            "00D000000000001AAA",
            "04k000000000001AAA",
            "http://127.0.0.1:1",
            &[("04l000000000001AAA".into(), rec)],
        );
        assert!(xml.contains("<OrganizationId>00D000000000001AAA</OrganizationId>"));
        assert!(xml.contains("<SessionId xsi:nil=\"true\"/>"));
        assert!(xml.contains(
            "<PartnerUrl>http://127.0.0.1:1/services/Soap/u/62.0/00D000000000001</PartnerUrl>"
        ));
        assert!(xml.contains("<Notification><Id>04l000000000001AAA</Id>"));
        assert!(xml.contains(r#"xsi:type="sf:Opportunity""#));
        assert!(xml.contains("<sf:Name>A &amp; B</sf:Name>"));
        assert!(xml.contains("<sf:Amount xsi:nil=\"true\"/>"));
    }

    #[test]
    fn only_enabled_object_changes_queue() {
        let out = Outbound::new();
        let change = |object: &str, kind| Change {
            object: object.into(),
            id: "006000000000001AAA".into(),
            kind,
        };
        out.on_changes(
            "00D000000000001AAA",
            &[change("Opportunity", ChangeKind::Created)],
        );
        assert_eq!(out.queued(), 0, "disabled: nothing queued");
        out.set_config(OutboundConfig {
            enabled: true,
            endpoint_url: Some("http://127.0.0.1:1/".into()),
            ..OutboundConfig::default()
        });
        out.on_changes(
            "00D000000000001AAA",
            &[
                change("Opportunity", ChangeKind::Created),
                change("Account", ChangeKind::Created),
                change("Opportunity", ChangeKind::Deleted),
                change("opportunity", ChangeKind::Updated),
            ],
        );
        assert_eq!(out.queued(), 2);
        let batch = out.take_batch();
        assert_ne!(batch[0].notification_id, batch[1].notification_id);
        assert!(batch[0].notification_id.starts_with("04l"));
        out.reset();
        assert_eq!(out.stats(), OutboundStats::default());
    }
}
