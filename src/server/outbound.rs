//! Outbound Messaging: the `POST /outbound/{org}` and `POST /?source=A|B` handlers. A message
//! is acked only after its notifications are durably stored; anything wrong is answered with a
//! SOAP fault (HTTP 500) so Salesforce keeps the message and retries it. The pure checks
//! (routing to an org, the secret comparison, the org id check) have unit tests here.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;

use super::Shared;
use crate::config::TriggerPolicy;
use crate::events::{OutboundAcked, OutboundRefused};
use crate::salesforce::outbound::{ack_envelope, fault_envelope, parse_notifications};
use crate::store::{NewNotification, Org};

/// The largest message body accepted. Salesforce sends at most 100 notifications per message;
/// even with long text fields that stays far below this.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Why a message was refused: the fault text, whether the sender is at fault, and the log.
#[derive(Debug)]
struct Refusal {
    client: bool,
    message: String,
}

impl Refusal {
    fn client(message: impl Into<String>) -> Refusal {
        Refusal {
            client: true,
            message: message.into(),
        }
    }

    fn server(message: impl Into<String>) -> Refusal {
        Refusal {
            client: false,
            message: message.into(),
        }
    }
}

/// The query string's parameters (first value of each name).
fn query_params(raw: Option<&str>) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    if let Some(raw) = raw {
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            params
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    params
}

/// The org named by `/outbound/{org}` or `?source=`: `a`/`b`, any case.
fn parse_org(name: &str) -> Option<Org> {
    match name.trim().to_ascii_lowercase().as_str() {
        "a" => Some(Org::A),
        "b" => Some(Org::B),
        _ => None,
    }
}

/// Compares two secrets in time independent of where they differ (`subtle`; only a length
/// mismatch returns early, and the length is not what keeps a secret).
fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(given, expected).into()
}

/// Whether a message's `OrganizationId` is the org we logged in to: 15- and 18-character ids
/// of the same org share their first 15 characters (case-sensitive).
fn same_org_id(message: &str, learned: &str) -> bool {
    let m = message.trim();
    let l = learned.trim();
    matches!(m.len(), 15 | 18)
        && matches!(l.len(), 15 | 18)
        && m.is_ascii()
        && l.is_ascii()
        && m[..15] == l[..15]
}

pub(super) async fn outbound_path(
    State(shared): State<Arc<Shared>>,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let params = query_params(query.as_deref());
    let org = parse_org(&org).ok_or_else(|| {
        Refusal::client(format!(
            "unknown source {org:?} in the path: use /outbound/a or /outbound/b"
        ))
    });
    handle_outbound(&shared, org, params.get("secret").map(String::as_str), body).await
}

pub(super) async fn outbound_root(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let params = query_params(query.as_deref());
    let org = match params.get("source") {
        None => Err(Refusal::client(
            "no source: use /outbound/a, /outbound/b or /?source=A|B",
        )),
        Some(s) => parse_org(s)
            .ok_or_else(|| Refusal::client(format!("unknown source {s:?}: use source=A or B"))),
    };
    handle_outbound(&shared, org, params.get("secret").map(String::as_str), body).await
}

async fn handle_outbound(
    shared: &Shared,
    org: Result<Org, Refusal>,
    secret: Option<&str>,
    body: Body,
) -> Response {
    let org_label = org.as_ref().map(|o| o.as_str()).unwrap_or("unknown");
    match accept(shared, org, secret, body).await {
        Ok((org, received, new)) => {
            OutboundAcked {
                org,
                notifications: received,
                new,
            }
            .emit(shared.daemon.metrics());
            if new > 0 {
                shared.wake.notify_one();
            }
            xml_response(StatusCode::OK, ack_envelope(true))
        }
        Err(refusal) => {
            OutboundRefused {
                org: org_label,
                reason: &refusal.message,
                client: refusal.client,
            }
            .emit(shared.daemon.metrics());
            xml_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                fault_envelope(refusal.client, &refusal.message),
            )
        }
    }
}

/// Checks and stores one message; returns (org, notifications received, newly stored).
async fn accept(
    shared: &Shared,
    org: Result<Org, Refusal>,
    secret: Option<&str>,
    body: Body,
) -> Result<(Org, usize, u64), Refusal> {
    let org = org?;
    let settings = shared.daemon.settings();
    if settings.trigger.policy == TriggerPolicy::Poll {
        return Err(Refusal::client(
            "trigger.policy is \"poll\": outbound messages are not accepted (set trigger.policy \
             to \"push\" or \"hybrid\")",
        ));
    }
    let org_settings = match org {
        Org::A => &settings.a,
        Org::B => &settings.b,
    };
    let expected = org_settings.outbound_secret.as_ref().ok_or_else(|| {
        Refusal::server(format!(
            "orgs.{}.outbound_secret is not set: messages cannot be authenticated",
            org_settings.name
        ))
    })?;
    let given = secret.unwrap_or("");
    if !secrets_match(given.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(Refusal::client(if secret.is_none() {
            "no secret: the endpoint URL must carry ?secret=..."
        } else {
            "the secret does not match"
        }));
    }
    // A declared length over the limit is refused without reading the body.
    if let Some(declared) = body_size_hint(&body)
        && declared > MAX_BODY_BYTES as u64
    {
        return Err(Refusal::client(format!(
            "the body ({declared} bytes) is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            Refusal::client(format!(
                "the body could not be read or is larger than {MAX_BODY_BYTES} bytes: {e}"
            ))
        })?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Refusal::client("the body is not UTF-8 text"))?;
    let message = parse_notifications(text).map_err(|e| Refusal::client(e.to_string()))?;
    let identity = shared
        .daemon
        .client(org)
        .identity()
        .await
        .map_err(|e| Refusal::server(format!("cannot log in to org {}: {e}", org.as_str())))?;
    let learned = identity.org_id.ok_or_else(|| {
        Refusal::server(format!(
            "the login to org {} did not tell its organization id",
            org.as_str()
        ))
    })?;
    if !same_org_id(&message.organization_id, &learned) {
        return Err(Refusal::client(format!(
            "OrganizationId {} is not org {}'s ({})",
            message.organization_id,
            org.as_str(),
            learned
        )));
    }
    let notifications: Vec<NewNotification> = message
        .notifications
        .iter()
        .map(|n| NewNotification {
            org,
            notification_id: n.id.clone(),
            object: n.object.clone(),
            record_id: n.record_id.clone(),
        })
        .collect();
    let new = shared
        .daemon
        .store()
        .insert_notifications(&notifications)
        .await
        .map_err(|e| Refusal::server(format!("cannot store the notifications: {e}")))?;
    Ok((org, notifications.len(), new))
}

/// The body's exact length when the request declared it (`Content-Length`).
fn body_size_hint(body: &Body) -> Option<u64> {
    use axum::body::HttpBody as _;
    body.size_hint().exact()
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_a_or_b_in_any_case() {
        assert_eq!(parse_org("a"), Some(Org::A));
        assert_eq!(parse_org("B"), Some(Org::B));
        assert_eq!(parse_org(" A "), Some(Org::A));
        assert_eq!(parse_org("c"), None);
        assert_eq!(parse_org(""), None);
    }

    #[test]
    fn secrets_must_match_exactly() {
        assert!(secrets_match(b"s3cret", b"s3cret"));
        assert!(!secrets_match(b"s3cre", b"s3cret"));
        assert!(!secrets_match(b"s3cretx", b"s3cret"));
        assert!(!secrets_match(b"S3cret", b"s3cret"));
        assert!(!secrets_match(b"", b"s3cret"));
        // an empty expected secret never matches a non-empty one, and is refused at start
        assert!(!secrets_match(b"x", b""));
    }

    #[test]
    fn org_ids_compare_on_their_first_15_characters() {
        assert!(same_org_id("00D90000000gNcmEAE", "00D90000000gNcm"));
        assert!(same_org_id("00D90000000gNcm", "00D90000000gNcmEAE"));
        assert!(same_org_id("00D90000000gNcmEAE", "00D90000000gNcmEAE"));
        // case matters in 15-character ids
        assert!(!same_org_id("00D90000000gncmEAE", "00D90000000gNcmEAE"));
        assert!(!same_org_id("00D90000000gNcXEAE", "00D90000000gNcmEAE"));
        assert!(!same_org_id("00D9", "00D90000000gNcmEAE"));
        assert!(!same_org_id("", ""));
    }

    #[test]
    fn query_parameters_are_decoded_and_the_first_value_wins() {
        let p = query_params(Some("source=A&secret=a%2Bb%20c&secret=other"));
        assert_eq!(p.get("source").map(String::as_str), Some("A"));
        assert_eq!(p.get("secret").map(String::as_str), Some("a+b c"));
        assert!(query_params(None).is_empty());
    }
}
