//! Bulk API 2.0: query jobs (`query`: states, CSV shape, locator paging, maxRecords, Bulk's
//! SOQL rules, queryAll, abort), ingest jobs (`ingest`: insert, update, upsert, delete; empty
//! vs `#N/A`; results matched by key in shuffled files; failed and unprocessed rows; the stall,
//! fail, rate and lock-error faults), and here: API-call counting, the 503 storm, delete, list,
//! and header spelling read off a raw socket. The helpers below drive jobs.

mod ingest;
mod query;

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value as Json, json};
use sfsim::SimOrg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Api, Reply, V, api, control, opportunities, org, seed};

/// Polls a job until `done(state)`; the last JobInfo. At most 1,000 polls.
pub async fn wait_for(a: &Api, path: &str, done: impl Fn(&str) -> bool) -> Json {
    let mut last = Json::Null;
    for _ in 0..1000 {
        let r = a.get(path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if done(r.body["state"].as_str().unwrap_or("")) {
            return r.body;
        }
        last = r.body;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("job never reached the state: {last}");
}

pub fn ended(s: &str) -> bool {
    matches!(s, "JobComplete" | "Failed" | "Aborted")
}

pub async fn query_job(a: &Api, soql: &str, operation: &str) -> Reply {
    a.post(
        "jobs/query",
        &json!({"operation": operation, "query": soql, "contentType": "CSV",
                "columnDelimiter": "COMMA", "lineEnding": "LF"}),
    )
    .await
}

/// Creates a query job and waits for it to complete; its id.
pub async fn completed_query(a: &Api, soql: &str) -> String {
    let r = query_job(a, soql, "query").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    let info = wait_for(a, &format!("jobs/query/{id}"), ended).await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    id
}

/// A parsed CSV: header and rows.
pub fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = r
        .records()
        .map(|x| x.expect("row").iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// Rows as maps by column name.
pub fn keyed(text: &str) -> Vec<HashMap<String, String>> {
    let (header, rows) = parse_csv(text);
    rows.into_iter()
        .map(|row| header.iter().cloned().zip(row).collect())
        .collect()
}

pub fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub async fn ingest_job(a: &Api, body: Json) -> String {
    let r = a.post("jobs/ingest", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "Open");
    r.body["id"].as_str().expect("id").to_string()
}

pub async fn upload(a: &Api, id: &str, csv: &str) -> Reply {
    Reply::from(
        a.request(Method::PUT, &format!("jobs/ingest/{id}/batches"))
            .header("Content-Type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .expect("upload"),
    )
    .await
}

/// Creates, uploads, closes and waits for an ingest job; its final JobInfo.
pub async fn run_ingest(a: &Api, body: Json, csv: &str) -> (String, Json) {
    let id = ingest_job(a, body).await;
    let r = upload(a, &id, csv).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = a
        .patch(
            &format!("jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let info = wait_for(a, &format!("jobs/ingest/{id}"), ended).await;
    (id, info)
}

pub async fn results(a: &Api, id: &str, which: &str) -> Vec<HashMap<String, String>> {
    let r = a.get(&format!("jobs/ingest/{id}/{which}/")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(header(&r, "content-type").starts_with("text/csv"));
    keyed(&r.text)
}

pub async fn with_ext_field(org: &SimOrg) {
    org.add_field(
        &json!({"object": "Opportunity", "name": "Ext__c", "type": "string",
        "externalId": true, "unique": true}),
    )
    .expect("field");
}

#[tokio::test]
async fn bulk_calls_count_as_api_calls_and_fail_in_a_storm() {
    let org = org("BC").await;
    seed(&org, opportunities("C", 3));
    let a = api(&org).await;
    let before = org.stats()["api_calls_total"].as_u64().expect("total");
    let id = completed_query(&a, "SELECT Id FROM Opportunity").await;
    let page = a.get(&format!("jobs/query/{id}/results")).await;
    assert!(header(&page, "sforce-limit-info").starts_with("api-usage="));
    let list = a.get("jobs/query").await;
    assert_eq!(list.body["done"], true);
    assert_eq!(list.body["records"][0]["id"], id.as_str());
    assert_eq!(org.calls("bulk_query_create"), 1);
    assert_eq!(org.calls("bulk_results"), 1);
    assert_eq!(org.calls("bulk_query_list"), 1);
    let polls = org.calls("bulk_query_get");
    assert!(polls >= 1);
    let after = org.stats()["api_calls_total"].as_u64().expect("total");
    assert_eq!(after - before, 3 + polls);
    let limits = a.get("limits").await.body;
    assert_eq!(limits["DailyBulkV2QueryFileStorageMB"]["Max"], 976562);
    assert_eq!(limits["DailyBulkV2QueryFileStorageMB"]["Remaining"], 976561);
    assert_eq!(limits["DailyBulkV2QueryJobs"]["Max"], 10000);
    assert_eq!(limits["DailyBulkV2QueryJobs"]["Remaining"], 9999);
    run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "insert"}),
        "Name,StageName,CloseDate\nA,Prospecting,2026-01-01\n",
    )
    .await;
    assert_eq!(org.calls("bulk_ingest_create"), 1);
    assert_eq!(org.calls("bulk_ingest_upload"), 1);
    assert_eq!(org.calls("bulk_ingest_state"), 1);
    let limits = a.get("limits").await.body;
    assert_eq!(limits["DailyBulkApiBatches"]["Remaining"], 14999);

    let r = a.delete(&format!("jobs/query/{id}")).await;
    assert_eq!(r.status, 204);
    assert_eq!(a.get(&format!("jobs/query/{id}")).await.status, 404);
    assert_eq!(org.calls("bulk_query_delete"), 1);

    control(&org, "faults", Some(json!({"error_rate": 1.0}))).await;
    let r = query_job(&a, "SELECT Id FROM Opportunity", "query").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.error_code(), "SERVER_UNAVAILABLE");
    control(
        &org,
        "faults",
        Some(json!({"error_rate": 0.0, "api_daily_limit": 1})),
    )
    .await;
    let r = query_job(&a, "SELECT Id FROM Opportunity", "query").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.error_code(), "REQUEST_LIMIT_EXCEEDED");
}

/// Reads one reply's head off a raw socket.
async fn raw_head(org: &SimOrg, token: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(org.addr)
        .await
        .expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        org.addr
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).to_string();
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
}

#[tokio::test]
async fn reply_headers_are_spelled_as_salesforce_sends_them() {
    let org = org("BH").await;
    seed(&org, opportunities("H", 2));
    let a = api(&org).await;
    let id = completed_query(&a, "SELECT Id FROM Opportunity").await;
    let head = raw_head(
        &org,
        &a.token,
        &format!("/services/data/v{V}/jobs/query/{id}/results"),
    )
    .await;
    for line in [
        "\r\nContent-Type: text/csv",
        "\r\nSforce-Locator: null",
        "\r\nSforce-NumberOfRecords: 2",
        "\r\nSforce-Limit-Info: api-usage=",
        "\r\nContent-Length: ",
    ] {
        assert!(head.contains(line), "{line:?} not in {head}");
    }
}
