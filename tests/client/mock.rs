//! Client behaviour sfsim cannot show: the headers on the wire, and which failed writes are
//! repeated. A tiny axum server stands in for an org.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use orgsync::config::AuthMode;
use orgsync::salesforce::{CallKind, Client, ClientOptions};
use serde_json::json;

#[derive(Default)]
struct Seen {
    headers: Vec<HeaderMap>,
    login_headers: Vec<HeaderMap>,
    bulk_headers: Vec<HeaderMap>,
    creates: u32,
    updates: u32,
    fail_with: u16,
}

type Shared = Arc<Mutex<Seen>>;

async fn token(State(base): State<(Shared, String)>, headers: HeaderMap) -> Response {
    base.0.lock().unwrap().login_headers.push(headers);
    axum::Json(json!({
        "access_token": "MOCK-ACCESS-TOKEN",
        "instance_url": base.1,
        "id": format!("{}/id/00D000000000001AAA/005000000000001AAA", base.1),
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn query(State(base): State<(Shared, String)>, headers: HeaderMap) -> Response {
    base.0.lock().unwrap().headers.push(headers);
    (
        [("Sforce-Limit-Info", "api-usage=42/15000; api-bursts=1/750")],
        axum::Json(json!({"totalSize": 0, "done": true, "records": []})),
    )
        .into_response()
}

async fn bulk_query(State(base): State<(Shared, String)>, headers: HeaderMap) -> Response {
    base.0.lock().unwrap().bulk_headers.push(headers);
    axum::Json(json!({"id": "750000000000001AAA", "state": "UploadComplete"})).into_response()
}

async fn create(State(base): State<(Shared, String)>) -> Response {
    let mut seen = base.0.lock().unwrap();
    seen.creates += 1;
    let status = StatusCode::from_u16(seen.fail_with).unwrap();
    (
        status,
        axum::Json(json!([{"errorCode": "UNKNOWN_EXCEPTION", "message": "boom"}])),
    )
        .into_response()
}

async fn update(State(base): State<(Shared, String)>) -> Response {
    let mut seen = base.0.lock().unwrap();
    seen.updates += 1;
    let status = StatusCode::from_u16(seen.fail_with).unwrap();
    (
        status,
        axum::Json(json!([{"errorCode": "UNKNOWN_EXCEPTION", "message": "boom"}])),
    )
        .into_response()
}

async fn mock_org(fail_with: u16) -> (Shared, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared: Shared = Arc::new(Mutex::new(Seen {
        fail_with,
        ..Seen::default()
    }));
    let app = Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/v62.0/query", get(query))
        .route("/services/data/v62.0/jobs/query", post(bulk_query))
        .route(
            "/services/data/v62.0/composite/sobjects",
            post(create).patch(update),
        )
        .with_state((shared.clone(), base.clone()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (shared, base)
}

fn mock_client(base: &str) -> Client {
    let org = crate::helpers::Org::mock(base);
    let mut s = crate::helpers::settings(&org, AuthMode::OauthPassword);
    s.name = "a".into();
    Client::with_options(&s, ClientOptions::fast()).unwrap()
}

#[tokio::test]
async fn every_call_carries_the_client_name_and_the_usage_is_read() {
    let (seen, base) = mock_org(500).await;
    let c = mock_client(&base);
    c.query_first("SELECT Id FROM Account", false, Some(500))
        .await
        .unwrap();
    let headers = seen.lock().unwrap().headers[0].clone();
    assert_eq!(headers["sforce-call-options"], "client=orgsync");
    assert_eq!(headers["sforce-query-options"], "batchSize=500");
    assert_eq!(headers["authorization"], "Bearer MOCK-ACCESS-TOKEN");
    assert_eq!(c.api_usage(), Some((42, 15000)));
    let me = c.identity().await.unwrap();
    assert_eq!(me.user_id.as_deref(), Some("005000000000001AAA"));
    assert_eq!(me.org_id.as_deref(), Some("00D000000000001AAA"));
}

/// The call options are on the logins and the Bulk calls too, not only REST queries.
#[tokio::test]
async fn logins_and_bulk_calls_carry_the_client_name() {
    let (seen, base) = mock_org(500).await;
    let c = mock_client(&base);
    let job = c
        .bulk_query_create("SELECT Id FROM Account", false)
        .await
        .unwrap();
    assert_eq!(job.id, "750000000000001AAA");
    assert_eq!(c.calls().get(CallKind::Bulk), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.login_headers[0]["sforce-call-options"],
        "client=orgsync"
    );
    assert_eq!(
        seen.bulk_headers[0]["sforce-call-options"],
        "client=orgsync"
    );
}

#[tokio::test]
async fn a_create_that_may_have_happened_is_not_repeated() {
    // 500: the org may have committed the records; repeating could duplicate them.
    let (seen, base) = mock_org(500).await;
    let c = mock_client(&base);
    let record = crate::helpers::opportunity("x");
    let err = c
        .create("Opportunity", std::slice::from_ref(&record))
        .await
        .unwrap_err();
    assert!(
        err.is_retryable(),
        "the caller may still retry later: {err}"
    );
    assert_eq!(seen.lock().unwrap().creates, 1);

    // An update is idempotent: it is retried up to max_attempts.
    let err = c
        .update("Opportunity", &[("006000000000001AAA".into(), record)])
        .await
        .unwrap_err();
    assert_eq!(err.code, "UNKNOWN_EXCEPTION");
    let attempts = ClientOptions::fast().retry.max_attempts;
    assert_eq!(seen.lock().unwrap().updates, attempts);
    assert_eq!(c.calls().get(CallKind::Update), u64::from(attempts));
}

#[tokio::test]
async fn a_create_refused_with_503_is_repeated() {
    // 503: the org did not act; repeating is safe.
    let (seen, base) = mock_org(503).await;
    let c = mock_client(&base);
    let err = c
        .create("Opportunity", &[crate::helpers::opportunity("x")])
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(503));
    assert_eq!(
        seen.lock().unwrap().creates,
        ClientOptions::fast().retry.max_attempts
    );
}
