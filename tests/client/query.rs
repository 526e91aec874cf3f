//! Queries: cursor paging across batches, batch size, quoting of awkward names, errors that
//! are and are not retried.

use orgsync::config::AuthMode;
use orgsync::salesforce::{CallKind, Cond, ErrorClass, Literal, Order, Soql};
use serde_json::json;

use crate::helpers::{self, calls, client, opportunity, settings, sim_post, start};

#[tokio::test]
async fn five_thousand_rows_page_as_2000_2000_1000() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    let records: Vec<_> = (0..5000)
        .map(|i| opportunity(&format!("Deal {i:05}")))
        .collect();
    let results = c.create("Opportunity", &records).await.unwrap();
    assert!(results.iter().all(Result::is_ok));

    let soql = Soql::select(["Id", "Name"])
        .from("Opportunity")
        .order_by("Name", Order::Asc)
        .build()
        .unwrap();
    let before_more = calls(&org, "query_more").await;
    let mut pager = c.query(soql);
    let mut sizes = Vec::new();
    let mut names = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        assert_eq!(page.total_size, 5000);
        sizes.push(page.records.len());
        names.extend(
            page.records
                .iter()
                .map(|r| r["Name"].as_str().unwrap_or_default().to_string()),
        );
    }
    assert_eq!(sizes, vec![2000, 2000, 1000]);
    assert_eq!(names.len(), 5000);
    assert_eq!(names[0], "Deal 00000");
    assert_eq!(names[4999], "Deal 04999");
    assert_eq!(c.calls().get(CallKind::Query), 1);
    assert_eq!(c.calls().get(CallKind::QueryMore), 2);
    assert_eq!(calls(&org, "query_more").await - before_more, 2);
    assert!(c.api_usage().is_some(), "Sforce-Limit-Info was read");
}

#[tokio::test]
async fn batch_size_is_asked_for() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    let records: Vec<_> = (0..450).map(|i| opportunity(&format!("B {i}"))).collect();
    c.create("Opportunity", &records).await.unwrap();
    let mut pager = c.query("SELECT Id FROM Opportunity").batch_size(200);
    let mut sizes = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        sizes.push(page.records.len());
    }
    assert_eq!(sizes, vec![200, 200, 50]);

    // The same as a stream.
    use futures::StreamExt;
    let pages: Vec<_> = c
        .query("SELECT Id FROM Opportunity")
        .batch_size(200)
        .into_stream()
        .collect()
        .await;
    let sizes: Vec<usize> = pages
        .into_iter()
        .map(|p| p.unwrap().records.len())
        .collect();
    assert_eq!(sizes, vec![200, 200, 50]);
}

#[tokio::test]
async fn awkward_names_round_trip_through_where() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::Password));
    let names = [
        "O'Brien \\ Co",
        "Quote \" and 'single'",
        "Line\nbreak",
        "Tab\there",
    ];
    let records: Vec<_> = names.iter().map(|n| opportunity(n)).collect();
    let results = c.create("Opportunity", &records).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for name in names {
        let soql = Soql::select(["Id", "Name"])
            .from("Opportunity")
            .where_(Cond::eq("Name", Literal::str(name)))
            .build()
            .unwrap();
        let rows = c.query_collect(&soql).await.unwrap();
        assert_eq!(rows.len(), 1, "{name:?}: {soql}");
        assert_eq!(rows[0]["Name"], json!(name));
    }
}

#[tokio::test]
async fn a_503_is_retried_until_it_succeeds() {
    let org = start("A").await;
    let mut options = orgsync::salesforce::ClientOptions::fast();
    // Long enough for the test to lift the fault between two tries.
    options.retry.max_attempts = 12;
    options.retry.initial_delay = std::time::Duration::from_millis(100);
    options.retry.max_delay = std::time::Duration::from_millis(500);
    let c = orgsync::salesforce::Client::with_options(
        &settings(&org, AuthMode::OauthPassword),
        options,
    )
    .unwrap();
    c.login().await.unwrap();
    sim_post(
        &org,
        "faults",
        json!({"error_rate": 1.0, "error_status": 503, "error_code": "SERVER_UNAVAILABLE"}),
    )
    .await;

    let task = {
        let c = c.clone();
        tokio::spawn(async move { c.query_collect("SELECT Id FROM Account").await })
    };
    // Wait (deterministically) for the first failed call, then lift the fault.
    helpers::wait_for_status(&org, 503).await;
    sim_post(&org, "faults", json!({"error_rate": 0.0})).await;
    let rows = task.await.unwrap().expect("retried to success");
    assert!(rows.is_empty() || rows[0].get("Id").is_some());
    assert!(c.calls().get(CallKind::Query) >= 2, "{:?}", c.calls());
}

#[tokio::test]
async fn a_bad_query_is_not_retried() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    let err = c
        .query_collect("SELECT Id FROM Opportunity WHERE Nope = 1")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert_eq!(err.code, "INVALID_FIELD");
    assert!(err.to_string().starts_with("org a:"), "{err}");
    let err = c.query_collect("SELECT FROM").await.unwrap_err();
    assert_eq!(err.code, "MALFORMED_QUERY");
    assert!(!err.is_retryable());
    assert_eq!(c.calls().get(CallKind::Query), 2);
}

#[tokio::test]
async fn the_daily_limit_is_its_own_kind() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    c.login().await.unwrap();
    sim_post(&org, "faults", json!({"api_daily_limit": 1})).await;
    let mut last = None;
    for _ in 0..3 {
        if let Err(e) = c.query_collect("SELECT Id FROM Account").await {
            last = Some(e);
            break;
        }
    }
    let err = last.expect("the limit is hit");
    assert_eq!(err.code, "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(err.class, ErrorClass::LimitExceeded);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn over_budget_calls_are_refused_before_they_are_sent() {
    let org = start("A").await;
    let mut s = settings(&org, AuthMode::OauthPassword);
    s.api_budget_percent = 50;
    let c = client(&s);
    sim_post(
        &org,
        "faults",
        json!({"api_daily_limit": 1000, "api_usage": 600}),
    )
    .await;
    // No usage known yet: the call goes out and learns 601/1000.
    c.query_collect("SELECT Id FROM Account").await.unwrap();
    let (used, max) = c.api_usage().unwrap();
    assert_eq!(max, 1000);
    assert!(used >= 600);
    let sent = c.calls().get(CallKind::Query);
    let err = c.query_collect("SELECT Id FROM Account").await.unwrap_err();
    assert_eq!(err.code, "API_BUDGET_EXCEEDED");
    assert!(err.is_limit_exceeded());
    assert!(
        err.to_string().contains("orgs.a.api_budget_percent"),
        "{err}"
    );
    assert_eq!(c.calls().get(CallKind::Query), sent, "nothing was sent");
    let port = orgsync::sync::port_error(&err);
    assert_eq!(port.kind, orgsync::sync::ErrorKind::Limit);
}
