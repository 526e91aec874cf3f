//! The Outbound Messaging delivery task of one org (the shell around `outbound`): it takes up
//! to 100 queued notifications at a time, reads the records' current values from the org's
//! state, and hands each message to its own task that POSTs it and retries with backoff until
//! it is acknowledged, the org is reset or closed, or it is older than `give_up_after_ms`.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::state::{OrgState, lock};
use crate::db::RecordTexts;
use crate::ids::{self, IdGenerator};
use crate::outbound::{DeliveryEvent, Pending, backoff, envelope, is_ack};

/// How long one POST to the endpoint may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The delivery task of one org: takes up to 100 queued notifications at a time and hands
/// each message to its own retrying task. Ends when the org closes or is dropped.
pub async fn run_delivery(state: Weak<OrgState>) {
    let (client, mut shutdown, action_id, wake) = {
        let Some(s) = state.upgrade() else { return };
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let action_id = IdGenerator::new(&s.org_id).next_id(ids::ACTION_PREFIX);
        (
            client,
            s.outbound.shutdown_signal(),
            action_id,
            s.outbound.wake_signal(),
        )
    };
    let action_id: Arc<str> = action_id.into();
    loop {
        let Some(s) = state.upgrade() else { return };
        if *shutdown.borrow() {
            return;
        }
        let batch = s.outbound.take_batch();
        if batch.is_empty() {
            drop(s);
            tokio::select! {
                _ = wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        tokio::spawn(deliver_message(
            Arc::downgrade(&s),
            client.clone(),
            action_id.clone(),
            batch,
            s.outbound.generation(),
            s.outbound.shutdown_signal(),
        ));
    }
}

/// Delivers one message until it is acknowledged, the org is reset or closed, or it is
/// older than `give_up_after_ms`.
async fn deliver_message(
    state: Weak<OrgState>,
    client: reqwest::Client,
    action_id: Arc<str>,
    batch: Vec<Pending>,
    generation: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        let Some(s) = state.upgrade() else { return };
        let out = &s.outbound;
        if out.generation() != generation || *shutdown.borrow() {
            return;
        }
        let config = out.config();
        let Some(endpoint) = config.endpoint_url.clone() else {
            return;
        };
        let notifications: Vec<(String, RecordTexts)> = {
            let db = lock(&s.db);
            batch
                .iter()
                .filter_map(|p| {
                    db.record_field_texts(&p.record_id, &config.fields)
                        .map(|t| (p.notification_id.clone(), t))
                })
                .collect()
        };
        if notifications.is_empty() {
            return;
        }
        let body = envelope(&s.org_id, &action_id, &s.base_url, &notifications);
        out.record(DeliveryEvent::Sent);
        drop(s);
        let acked = post(&client, &endpoint, body.clone()).await;
        let Some(s) = state.upgrade() else { return };
        if acked {
            s.outbound.record(DeliveryEvent::Acked {
                notifications: notifications.len(),
            });
            debug!(org = %s.name, notifications = notifications.len(), attempt, "outbound message acknowledged");
            let duplicate = config.duplicate_rate > 0.0
                && rand::rng().random_bool(config.duplicate_rate.clamp(0.0, 1.0));
            if duplicate {
                let _ = post(&client, &endpoint, body).await;
                s.outbound.record(DeliveryEvent::DuplicateSent);
            }
            return;
        }
        s.outbound.record(DeliveryEvent::Failed);
        let delay = backoff(
            attempt,
            config.retry_base_delay_ms,
            config.retry_max_delay_ms,
        );
        if started.elapsed() + delay > Duration::from_millis(config.give_up_after_ms) {
            s.outbound.record(DeliveryEvent::Dropped);
            warn!(org = %s.name, attempts = attempt + 1, "outbound message dropped after retries");
            return;
        }
        drop(s);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// POSTs one message; true when the endpoint acknowledged it.
async fn post(client: &reqwest::Client, endpoint: &str, body: String) -> bool {
    let reply = client
        .post(endpoint)
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", "\"\"")
        .body(body)
        .send()
        .await;
    match reply {
        Ok(r) if r.status().as_u16() == 200 => match r.text().await {
            Ok(text) => is_ack(&text),
            Err(_) => false,
        },
        Ok(r) => {
            debug!(status = r.status().as_u16(), "outbound message refused");
            false
        }
        Err(e) => {
            debug!(error = %e, "outbound message not delivered");
            false
        }
    }
}
