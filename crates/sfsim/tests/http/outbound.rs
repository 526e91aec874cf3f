//! Outbound Messaging delivered to a tiny receiver in the test.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::json;
use sfsim::outbound::OutboundConfig;
use tokio::sync::mpsc;

use crate::helpers::{api, control, opportunities, org, seed};

const ACK: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

/// A receiver that fails the first `fail_first` posts with 500, then acknowledges; every
/// post body goes to the channel as (attempt number, body, acknowledged).
/// What the receiver reports per post: (attempt number, body, acknowledged).
type Delivery = (usize, String, bool);
type ReceiverState = (mpsc::UnboundedSender<Delivery>, Arc<Mutex<usize>>);

struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Delivery>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(0usize));
    let app = Router::new()
        .route(
            "/notify",
            post(
                move |State((tx, seen)): State<ReceiverState>, body: String| async move {
                    let n = {
                        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                        *s += 1;
                        *s
                    };
                    let ack = n > fail_first;
                    let _ = tx.send((n, body, ack));
                    if ack {
                        (axum::http::StatusCode::OK, ACK.to_string())
                    } else {
                        (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "busy".to_string(),
                        )
                    }
                },
            ),
        )
        .with_state((tx, seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/notify"),
        rx,
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open)
        .skip(1)
        .filter_map(|part| part.split(close).next())
        .collect()
}

#[tokio::test]
async fn notifications_are_retried_until_acknowledged() {
    let org = org("A").await;
    let mut recv = receiver(2).await;
    let r = control(
        &org,
        "outbound",
        Some(json!({
            "endpoint_url": recv.url, "object": "Opportunity", "fields": ["Name", "Amount"],
            "enabled": true, "retry_base_delay_ms": 5, "retry_max_delay_ms": 20
        })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = api(&org).await;
    let r = a
        .post(
            "sobjects/Opportunity",
            &json!({"Name": "Sent & Co", "StageName": "Prospecting", "CloseDate": "2026-12-31"}),
        )
        .await;
    let id = r.body["id"].as_str().expect("id").to_string();
    let mut attempts = vec![];
    loop {
        let (n, body, acked) = recv.rx.recv().await.expect("a delivery");
        attempts.push(body);
        if acked {
            assert_eq!(n, 3);
            break;
        }
    }
    let body = attempts.last().expect("body");
    assert_eq!(
        between(body, "<OrganizationId>", "</OrganizationId>"),
        vec![org.org_id.as_str()]
    );
    assert!(between(body, "<ActionId>", "</ActionId>")[0].starts_with("04k"));
    assert!(body.contains(r#"<SessionId xsi:nil="true"/>"#));
    assert!(body.contains(&format!(
        "<PartnerUrl>{}/services/Soap/u/62.0/",
        org.base_url
    )));
    let nids = between(body, "<Notification><Id>", "</Id>");
    assert_eq!(nids.len(), 1);
    assert!(nids[0].starts_with("04l"));
    assert_eq!(between(body, "<sf:Id>", "</sf:Id>"), vec![id.as_str()]);
    assert_eq!(
        between(body, "<sf:Name>", "</sf:Name>"),
        vec!["Sent &amp; Co"]
    );
    assert!(body.contains(r#"<sf:Amount xsi:nil="true"/>"#));
    // every attempt carries the same notification id
    for b in &attempts {
        assert_eq!(between(b, "<Notification><Id>", "</Id>"), nids);
    }
    let stats = org.wait_outbound(|s| s.messages_acked >= 1).await;
    assert_eq!(stats.messages_acked, 1);
    assert_eq!(stats.messages_failed, 2);
    assert_eq!(stats.notifications_acked, 1);
    let r = control(&org, "stats", None).await;
    assert_eq!(r.body["outbound"]["messages_acked"], json!(1));
}

#[tokio::test]
async fn large_changes_split_into_messages_of_100() {
    let org = org("A").await;
    let mut recv = receiver(0).await;
    org.set_outbound(OutboundConfig {
        endpoint_url: Some(recv.url.clone()),
        enabled: true,
        fields: vec!["Name".into()],
        retry_base_delay_ms: 5,
        retry_max_delay_ms: 20,
        ..OutboundConfig::default()
    });
    seed(&org, opportunities("Many", 150));
    // accounts are not the configured object
    org.seed_records(
        "Account",
        None,
        vec![
            json!({"Name": "acc"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ],
    )
    .expect("account");
    let mut ids = std::collections::HashSet::new();
    let mut messages = 0;
    while ids.len() < 150 {
        let (_, body, _) = recv.rx.recv().await.expect("a delivery");
        let nids = between(&body, "<Notification><Id>", "</Id>");
        assert!(nids.len() <= 100);
        assert!(!body.contains("sf:Account"));
        ids.extend(nids.into_iter().map(str::to_string));
        messages += 1;
    }
    assert_eq!(messages, 2);
}

#[tokio::test]
async fn duplicate_delivery_for_tests() {
    let org = org("A").await;
    let mut recv = receiver(0).await;
    org.set_outbound(OutboundConfig {
        endpoint_url: Some(recv.url.clone()),
        enabled: true,
        duplicate_rate: 1.0,
        ..OutboundConfig::default()
    });
    seed(&org, opportunities("Dup", 1));
    let (_, first, _) = recv.rx.recv().await.expect("first");
    let (_, second, _) = recv.rx.recv().await.expect("duplicate");
    assert_eq!(
        between(&first, "<Notification><Id>", "</Id>"),
        between(&second, "<Notification><Id>", "</Id>")
    );
}

#[tokio::test]
async fn outbound_settings_are_validated() {
    let org = org("A").await;
    for bad in [
        json!({"enabled": true}),
        json!({"endpoint_url": "not a url"}),
        json!({"endpoint_url": "ftp://x/"}),
        json!({"object": "Nothing"}),
        json!({"fields": ["Nope"]}),
        json!({"duplicate_rate": 3}),
        json!({"unknown": 1}),
        json!({"retry_base_delay_ms": 0}),
        json!({"retry_base_delay_ms": 10, "retry_max_delay_ms": 5}),
    ] {
        let r = control(&org, "outbound", Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let r = control(&org, "outbound", None).await;
    assert_eq!(r.body["enabled"], json!(false));
    assert_eq!(r.body["queued"], json!(0));
}
