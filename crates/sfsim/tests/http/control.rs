//! The control API: stats, requests, faults, limits, clock, reset, users, seeding.

use serde_json::json;

use crate::helpers::{Reply, api, control, opportunities, org, seed};

#[tokio::test]
async fn limit_info_header_and_request_limit() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = a.get("limits").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["sforce-limit-info"], "api-usage=1/100000");
    assert_eq!(
        r.body["DailyApiRequests"],
        json!({"Max": 100000, "Remaining": 99999})
    );
    let r = a.query("SELECT Id FROM User").await;
    assert_eq!(r.headers["sforce-limit-info"], "api-usage=2/100000");

    let r = control(
        &org,
        "faults",
        Some(json!({"api_daily_limit": 5, "api_usage": 4})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(a.query("SELECT Id FROM User").await.status, 200);
    let r = a.query("SELECT Id FROM User").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(r.headers["sforce-limit-info"], "api-usage=5/5");
    let stats = control(&org, "stats", None).await;
    assert_eq!(stats.body["api_calls_total"], json!(3));
    assert_eq!(stats.body["api_usage"], json!(5));
}

#[tokio::test]
async fn injected_errors_locks_and_rejections() {
    let org = org("A").await;
    let a = api(&org).await;
    control(&org, "faults", Some(json!({"error_rate": 1.0, "error_status": 503, "error_code": "SERVER_UNAVAILABLE", "latency_ms": 1}))).await;
    let r = a.query("SELECT Id FROM User").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "SERVER_UNAVAILABLE");
    let r = control(&org, "faults", None).await;
    assert_eq!(r.body["error_rate"], json!(1.0));
    assert_eq!(r.body["latency_ms"], json!(1));
    control(
        &org,
        "faults",
        Some(json!({"error_rate": 0.0, "lock_error_rate": 1.0})),
    )
    .await;
    let recs: Vec<_> = opportunities("L", 3)
        .into_iter()
        .map(|mut m| {
            m.insert("attributes".into(), json!({"type": "Opportunity"}));
            serde_json::Value::Object(m)
        })
        .collect();
    let r = a
        .post("composite/sobjects", &json!({"records": recs}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for item in r.body.as_array().expect("items") {
        assert_eq!(item["errors"][0]["statusCode"], json!("UNABLE_TO_LOCK_ROW"));
    }
    control(
        &org,
        "faults",
        Some(json!({"lock_error_rate": 0.0, "reject_name_marker": "[reject]"})),
    )
    .await;
    let r = a
        .post(
            "sobjects/Opportunity",
            &json!({"Name": "bad [reject]", "StageName": "Prospecting", "CloseDate": "2026-12-31"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    for bad in [
        json!({"error_rate": 2.0}),
        json!({"nope": 1}),
        json!({"latency_ms": "x"}),
        json!({"api_usage": -1}),
    ] {
        let r = control(&org, "faults", Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    let r = Reply::from(
        reqwest::Client::new()
            .post(format!("{}/__sim/faults", org.base_url))
            .body("{not json")
            .send()
            .await
            .expect("faults"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "JSON_PARSER_ERROR");
}

#[tokio::test]
async fn clock_offset_and_monotonic_timestamps() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = control(&org, "clock", Some(json!({"offset_ms": 86_400_000}))).await;
    assert_eq!(r.body["offset_ms"], json!(86_400_000));
    let id1 = a
        .post(
            "sobjects/Opportunity",
            &json!({"Name": "t1", "StageName": "Prospecting", "CloseDate": "2026-12-31"}),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let rec = a.get(&format!("sobjects/Opportunity/{id1}")).await;
    let created = sfsim::value::parse_datetime(rec.body["CreatedDate"].as_str().expect("date"))
        .expect("parsed");
    assert!(created > chrono::Utc::now() + chrono::Duration::hours(23));
    // the clock moves back: new writes still do not go back in time
    control(&org, "clock", Some(json!({"offset_ms": -86_400_000}))).await;
    let id2 = a
        .post(
            "sobjects/Opportunity",
            &json!({"Name": "t2", "StageName": "Prospecting", "CloseDate": "2026-12-31"}),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let rec2 = a.get(&format!("sobjects/Opportunity/{id2}")).await;
    let created2 = sfsim::value::parse_datetime(rec2.body["CreatedDate"].as_str().expect("date"))
        .expect("parsed");
    assert!(created2 >= created);
    assert_eq!(
        control(&org, "clock", Some(json!({"offset_ms": "x"})))
            .await
            .status,
        400
    );
    assert!(control(&org, "clock", None).await.body["now"].is_string());
}

#[tokio::test]
async fn one_call_one_timestamp() {
    let org = org("A").await;
    let a = api(&org).await;
    let recs: Vec<_> = opportunities("S", 50)
        .into_iter()
        .map(|mut m| {
            m.insert("attributes".into(), json!({"type": "Opportunity"}));
            serde_json::Value::Object(m)
        })
        .collect();
    a.post("composite/sobjects", &json!({"records": recs}))
        .await;
    let r = a.query("SELECT SystemModstamp FROM Opportunity").await;
    let stamps: std::collections::HashSet<_> = r.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["SystemModstamp"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(stamps.len(), 1);
}

#[tokio::test]
async fn stats_requests_reset_users_and_seeding() {
    let org = org("A").await;
    let a = api(&org).await;
    a.query("SELECT Id FROM Opportunity").await;
    let r = control(&org, "stats", None).await;
    assert_eq!(r.body["calls"]["query"], json!(1));
    assert_eq!(r.body["calls"]["oauth_token"], json!(1));
    let r = control(&org, "requests?limit=1", None).await;
    let log = r.body.as_array().expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["soql"], json!("SELECT Id FROM Opportunity"));
    assert_eq!(log[0]["status"], json!(200));
    assert_eq!(log[0]["method"], json!("GET"));
    assert_eq!(log[0]["user"], json!("integration@a.sim"));
    let r = control(&org, "requests?limit=many", None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body[0]["errorCode"], json!("INVALID_REQUEST"));

    let r = control(&org, "records", Some(json!({"object": "Opportunity", "as_user": "human@a.sim", "records": opportunities("Seed", 3)}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"].as_array().map(Vec::len), Some(3));
    let r = a.query("SELECT CreatedById FROM Opportunity").await;
    assert_eq!(
        r.body["records"][0]["CreatedById"],
        json!(org.human_user_id)
    );
    assert_eq!(
        control(
            &org,
            "records",
            Some(json!({"object": "Nothing", "records": []}))
        )
        .await
        .status,
        400
    );
    assert_eq!(
        control(&org, "records", Some(json!({"object": "Opportunity"})))
            .await
            .status,
        400
    );
    let too_many = opportunities("Big", 10_001);
    assert_eq!(
        control(
            &org,
            "records",
            Some(json!({"object": "Opportunity", "records": too_many}))
        )
        .await
        .status,
        400
    );

    let users = control(&org, "users", None).await;
    assert_eq!(users.body["client_id"], json!("sfsim-client"));
    assert_eq!(
        users.body["users"][0]["username"],
        json!("integration@a.sim")
    );
    assert_eq!(users.body["users"][1]["id"], json!(org.human_user_id));

    let r = control(&org, "reset", Some(json!({}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(org.db().count("Opportunity"), 0);
    let r = control(&org, "stats", None).await;
    assert_eq!(r.body["calls"], json!({}));
    // users and sessions survive a reset
    let r = a.query("SELECT Id FROM User").await;
    assert_eq!(r.body["totalSize"], json!(2));
    assert_eq!(
        control(
            &org,
            "schema",
            Some(json!({"object": "Opportunity", "name": "NoSuffix"}))
        )
        .await
        .status,
        400
    );
    assert_eq!(control(&org, "nothing", None).await.status, 404);
}

#[tokio::test]
async fn several_orgs_in_one_process() {
    let a = org("A").await;
    let b = org("B").await;
    assert_ne!(a.org_id, b.org_id);
    assert_ne!(a.base_url, b.base_url);
    assert_eq!(b.integration_username, "integration@b.sim");
    let ids = seed(&a, opportunities("X", 1));
    let api_b = api(&b).await;
    let r = api_b.get(&format!("sobjects/Opportunity/{}", ids[0])).await;
    assert_eq!(r.status, 404);
    // a token of org A is not valid on org B
    let api_a = api(&a).await;
    let r = Reply::from(
        reqwest::Client::new()
            .get(format!("{}/services/data/v62.0/limits", b.base_url))
            .bearer_auth(&api_a.token)
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(r.status, 401);
    b.shutdown().await;
    assert_eq!(api_a.get("limits").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_commit_in_timestamp_order() {
    let org = org("A").await;
    let a = std::sync::Arc::new(api(&org).await);
    let mut tasks = vec![];
    for i in 0..40 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"Name": format!("c{i}"), "StageName": "Prospecting", "CloseDate": "2026-12-31"});
            a.post("sobjects/Opportunity", &body).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 201);
    }
    // ids are handed out in commit order: SystemModstamp must not go down along them
    let r = a
        .query("SELECT Id, SystemModstamp FROM Opportunity ORDER BY Id")
        .await;
    let stamps: Vec<String> = r.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["SystemModstamp"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(stamps.len(), 40);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
}
