//! Bulk API 2.0: query jobs (states, CSV shape, locator paging, maxRecords, Bulk's SOQL
//! rules, queryAll, abort, delete, list), ingest jobs (insert, update, upsert, delete; empty
//! vs `#N/A`; results matched by key in shuffled files; failed and unprocessed rows), the
//! stall, fail, rate, lock-error and 503 faults, API-call counting, and header spelling read
//! off a raw socket.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value as Json, json};
use sfsim::SimOrg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Api, Reply, V, api, control, opportunities, org, seed};

/// Polls a job until `done(state)`; the last JobInfo. At most 1,000 polls.
async fn wait_for(a: &Api, path: &str, done: impl Fn(&str) -> bool) -> Json {
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

fn ended(s: &str) -> bool {
    matches!(s, "JobComplete" | "Failed" | "Aborted")
}

async fn query_job(a: &Api, soql: &str, operation: &str) -> Reply {
    a.post(
        "jobs/query",
        &json!({"operation": operation, "query": soql, "contentType": "CSV",
                "columnDelimiter": "COMMA", "lineEnding": "LF"}),
    )
    .await
}

/// Creates a query job and waits for it to complete; its id.
async fn completed_query(a: &Api, soql: &str) -> String {
    let r = query_job(a, soql, "query").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    let info = wait_for(a, &format!("jobs/query/{id}"), ended).await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    id
}

/// A parsed CSV: header and rows.
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
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
fn keyed(text: &str) -> Vec<HashMap<String, String>> {
    let (header, rows) = parse_csv(text);
    rows.into_iter()
        .map(|row| header.iter().cloned().zip(row).collect())
        .collect()
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn ingest_job(a: &Api, body: Json) -> String {
    let r = a.post("jobs/ingest", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "Open");
    r.body["id"].as_str().expect("id").to_string()
}

async fn upload(a: &Api, id: &str, csv: &str) -> Reply {
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
async fn run_ingest(a: &Api, body: Json, csv: &str) -> (String, Json) {
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

async fn results(a: &Api, id: &str, which: &str) -> Vec<HashMap<String, String>> {
    let r = a.get(&format!("jobs/ingest/{id}/{which}/")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(header(&r, "content-type").starts_with("text/csv"));
    keyed(&r.text)
}

async fn with_ext_field(org: &SimOrg) {
    org.add_field(
        &json!({"object": "Opportunity", "name": "Ext__c", "type": "string",
        "externalId": true, "unique": true}),
    )
    .expect("field");
}

#[tokio::test]
async fn query_job_pages_by_locator_with_every_value_quoted() {
    let org = org("BQ").await;
    let acc = org
        .seed_records(
            "Account",
            None,
            vec![
                json!({"Name": "Acme, \"Inc\""})
                    .as_object()
                    .cloned()
                    .expect("o"),
            ],
        )
        .expect("account")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut opps = opportunities("Q", 120);
    for o in opps.iter_mut().take(10) {
        o.insert("AccountId".into(), json!(acc));
    }
    seed(&org, opps);
    let a = api(&org).await;
    let r = query_job(
        &a,
        "SELECT Id, Name, Account.Name, Amount, SystemModstamp FROM Opportunity ORDER BY Name",
        "query",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("750") && id.len() == 18, "{id}");
    assert_eq!(r.body["state"], "UploadComplete");
    assert_eq!(r.body["operation"], "query");
    assert_eq!(r.body["object"], "Opportunity");
    assert_eq!(r.body["contentType"], "CSV");
    assert_eq!(r.body["concurrencyMode"], "Parallel");
    assert_eq!(r.body["apiVersion"], 62.0);
    let info = wait_for(&a, &format!("jobs/query/{id}"), ended).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["jobType"], "V2Query");
    assert_eq!(info["numberRecordsProcessed"], 120);

    // Pages of 50: 50, 50, 20, the last with the locator "null".
    let mut locator: Option<String> = None;
    let mut counts = Vec::new();
    let mut names = Vec::new();
    let mut first_locator = String::new();
    loop {
        let path = match &locator {
            None => format!("jobs/query/{id}/results?maxRecords=50"),
            Some(l) => format!("jobs/query/{id}/results?maxRecords=50&locator={l}"),
        };
        let r = a.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(header(&r, "content-type").starts_with("text/csv"));
        assert!(
            r.text
                .starts_with("\"Id\",\"Name\",\"Account.Name\",\"Amount\",\"SystemModstamp\"\n"),
            "{}",
            r.text
        );
        let (_, rows) = parse_csv(&r.text);
        counts.push(header(&r, "sforce-numberofrecords").to_string());
        assert_eq!(header(&r, "sforce-numberofrecords"), rows.len().to_string());
        names.extend(rows.iter().map(|row| row[1].clone()));
        let next = header(&r, "sforce-locator").to_string();
        if locator.is_none() {
            first_locator = next.clone();
            // Every value quoted, parent fields flattened, empty when there is no parent.
            assert_eq!(rows[0][2], "Acme, \"Inc\"");
            assert!(rows[0][4].ends_with('Z'), "{}", rows[0][4]);
            assert!(r.text.contains("\"Acme, \"\"Inc\"\"\""), "{}", r.text);
            assert!(r.text.contains("\"Q 00010\",\"\",\"10.0\""), "{}", r.text);
        }
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    assert_eq!(counts, ["50", "50", "20"]);
    let expected: Vec<String> = (0..120).map(|i| format!("Q {i:05}")).collect();
    assert_eq!(names, expected);

    // A locator can be read again; without maxRecords a page holds every row here.
    let again = a
        .get(&format!(
            "jobs/query/{id}/results?maxRecords=50&locator={first_locator}"
        ))
        .await;
    assert_eq!(parse_csv(&again.text).1[0][1], "Q 00050");
    let all = a.get(&format!("jobs/query/{id}/results")).await;
    assert_eq!(header(&all, "sforce-numberofrecords"), "120");
    assert_eq!(header(&all, "sforce-locator"), "null");
    let bad = a
        .get(&format!("jobs/query/{id}/results?locator=%21%21"))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let bad = a
        .get(&format!("jobs/query/{id}/results?maxRecords=0"))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test]
async fn bulk_soql_restrictions_and_query_errors() {
    let org = org("BR").await;
    let a = api(&org).await;
    for q in [
        "SELECT Id FROM Opportunity LIMIT 10 OFFSET 5",
        "SELECT COUNT() FROM Opportunity",
        "SELECT StageName FROM Opportunity GROUP BY StageName",
        "SELECT Id, (SELECT Id FROM Opportunities) FROM Account",
        "SELECT TYPEOF Owner WHEN User THEN Name END FROM Opportunity",
    ] {
        let r = query_job(&a, q, "query").await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(r.error_code(), "API_ERROR", "{q}: {}", r.text);
    }
    let r = query_job(&a, "SELECT Nope FROM Opportunity", "query").await;
    assert_eq!(r.error_code(), "INVALID_FIELD", "{}", r.text);
    let r = query_job(&a, "SELECT Id FROM Opportunity", "select").await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = a
        .post(
            "jobs/query",
            &json!({"operation": "query", "query": "SELECT Id FROM Opportunity", "columnDelimiter": "COLON"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(a.get("jobs/query/750000000000000AAA").await.status, 404);
}

#[tokio::test]
async fn query_all_includes_deleted_rows_and_other_delimiters() {
    let org = org("BA").await;
    let ids = seed(&org, opportunities("D", 3));
    let a = api(&org).await;
    assert_eq!(
        a.delete(&format!("sobjects/Opportunity/{}", ids[0]))
            .await
            .status,
        204
    );
    for (op, n) in [("query", 2), ("queryAll", 3)] {
        let r = a
            .post(
                "jobs/query",
                &json!({"operation": op, "query": "SELECT Id, IsDeleted FROM Opportunity",
                        "columnDelimiter": "PIPE", "lineEnding": "CRLF"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["operation"], op);
        assert_eq!(r.body["lineEnding"], "CRLF");
        let id = r.body["id"].as_str().expect("id");
        wait_for(&a, &format!("jobs/query/{id}"), |s| s == "JobComplete").await;
        let page = a.get(&format!("jobs/query/{id}/results")).await;
        assert!(
            page.text.starts_with("\"Id\"|\"IsDeleted\"\r\n"),
            "{}",
            page.text
        );
        assert_eq!(header(&page, "sforce-numberofrecords"), n.to_string());
        let deleted = page.text.matches("\"true\"").count();
        assert_eq!(deleted, if op == "queryAll" { 1 } else { 0 });
    }
}

#[tokio::test]
async fn stalled_jobs_stay_in_progress_and_results_wait_for_completion() {
    let org = org("BS").await;
    seed(&org, opportunities("S", 5));
    let a = api(&org).await;
    control(&org, "faults", Some(json!({"bulk_stall": true}))).await;
    let r = query_job(&a, "SELECT Id FROM Opportunity", "query").await;
    let id = r.body["id"].as_str().expect("id").to_string();
    let info = wait_for(&a, &format!("jobs/query/{id}"), |s| s == "InProgress").await;
    assert_eq!(info["state"], "InProgress");
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(
            a.get(&format!("jobs/query/{id}")).await.body["state"],
            "InProgress"
        );
    }
    let early = a.get(&format!("jobs/query/{id}/results")).await;
    assert_eq!(early.status, 412, "{}", early.text);
    assert_eq!(early.error_code(), "JOB_NOT_COMPLETE");
    control(&org, "faults", Some(json!({"bulk_stall": false}))).await;
    wait_for(&a, &format!("jobs/query/{id}"), |s| s == "JobComplete").await;
    let page = a.get(&format!("jobs/query/{id}/results")).await;
    assert_eq!(header(&page, "sforce-numberofrecords"), "5");
    let other = a
        .get(&format!("/services/data/v61.0/jobs/query/{id}/results"))
        .await;
    assert_eq!(other.status, 409, "{}", other.text);
}

#[tokio::test]
async fn failed_faults_fail_query_and_ingest_jobs() {
    let org = org("BF").await;
    let a = api(&org).await;
    control(&org, "faults", Some(json!({"bulk_fail": true}))).await;
    let r = query_job(&a, "SELECT Id FROM Opportunity", "query").await;
    let id = r.body["id"].as_str().expect("id").to_string();
    let info = wait_for(&a, &format!("jobs/query/{id}"), ended).await;
    assert_eq!(info["state"], "Failed");
    assert!(info.get("errorMessage").is_none(), "{info}");
    let csv = "Name,StageName,CloseDate\nF1,Prospecting,2026-01-01\nF2,Prospecting,2026-01-01\n";
    let (id, info) = run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "insert"}),
        csv,
    )
    .await;
    assert_eq!(info["state"], "Failed");
    assert!(info["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
    let unprocessed = results(&a, &id, "unprocessedrecords").await;
    assert_eq!(unprocessed.len(), 2);
    assert_eq!(unprocessed[0]["Name"], "F1");
    assert!(results(&a, &id, "successfulResults").await.is_empty());
    assert_eq!(org.db().count("Opportunity"), 0);
}

#[tokio::test]
async fn insert_reports_successes_and_failures() {
    let org = org("BI").await;
    let a = api(&org).await;
    let csv = "Name,StageName,CloseDate,Amount\n\
               Good one,Prospecting,2026-01-01,10\n\
               ,Prospecting,2026-01-01,20\n\
               \"Good, two\",Prospecting,2026-01-01,#N/A\n";
    let (id, info) = run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "insert", "contentType": "CSV",
               "columnDelimiter": "COMMA", "lineEnding": "LF"}),
        csv,
    )
    .await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(info["jobType"], "V2Ingest");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 1);
    let ok = results(&a, &id, "successfulResults").await;
    assert_eq!(ok.len(), 2);
    for row in &ok {
        assert_eq!(row["sf__Created"], "true");
        assert!(row["sf__Id"].starts_with("006"));
        let rec = a
            .get(&format!("sobjects/Opportunity/{}", row["sf__Id"]))
            .await;
        assert_eq!(rec.body["Name"].as_str(), Some(row["Name"].as_str()));
        assert_eq!(rec.body["CreatedById"], org.integration_user_id.as_str());
    }
    let failed = results(&a, &id, "failedResults").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["sf__Id"], "");
    assert!(
        failed[0]["sf__Error"].starts_with("REQUIRED_FIELD_MISSING:"),
        "{:?}",
        failed[0]
    );
    assert_eq!(failed[0]["Amount"], "20");
    assert!(results(&a, &id, "unprocessedrecords").await.is_empty());
    assert_eq!(org.db().count("Opportunity"), 2);
    assert_eq!(org.stats()["records_written"], 2);
}

#[tokio::test]
async fn update_leaves_empty_cells_alone_and_na_clears() {
    let org = org("BU").await;
    let mut opps = opportunities("U", 2);
    for o in &mut opps {
        o.insert("Description".into(), json!("keep me"));
    }
    let ids = seed(&org, opps);
    let a = api(&org).await;
    let csv = format!(
        "Id,Description,Amount,Name\n{},,#N/A,Renamed\n{},#N/A,,\n",
        ids[0], ids[1]
    );
    let (id, info) = run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "update"}),
        &csv,
    )
    .await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    let ok = results(&a, &id, "successfulResults").await;
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|r| r["sf__Created"] == "false"));
    let r0 = a
        .get(&format!("sobjects/Opportunity/{}", ids[0]))
        .await
        .body;
    assert_eq!(r0["Description"], "keep me");
    assert_eq!(r0["Amount"], Json::Null);
    assert_eq!(r0["Name"], "Renamed");
    let r1 = a
        .get(&format!("sobjects/Opportunity/{}", ids[1]))
        .await
        .body;
    assert_eq!(r1["Description"], Json::Null);
    assert_eq!(r1["Amount"], 1.0);
    assert_eq!(r1["Name"], "U 00001");
    assert!(r0["SystemModstamp"].as_str() > Some(""));
}

#[tokio::test]
async fn upsert_results_are_shuffled_and_match_by_key() {
    let org = org("BP").await;
    with_ext_field(&org).await;
    let mut existing = opportunities("P", 100);
    for (i, o) in existing.iter_mut().enumerate() {
        o.insert("Ext__c".into(), json!(format!("K{i:04}")));
    }
    let existing_ids = seed(&org, existing);
    let a = api(&org).await;
    let mut csv = String::from("Ext__c,Name,StageName,CloseDate\n");
    for i in 0..300 {
        csv.push_str(&format!("K{i:04},Up {i},Prospecting,2026-02-01\n"));
    }
    let (id, info) = run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "upsert", "externalIdFieldName": "Ext__c"}),
        &csv,
    )
    .await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(info["externalIdFieldName"], "Ext__c");
    let ok = results(&a, &id, "successfulResults").await;
    assert_eq!(ok.len(), 300);
    let order: Vec<&str> = ok.iter().map(|r| r["Ext__c"].as_str()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_ne!(order, sorted, "results came back in upload order");
    for row in &ok {
        let n: usize = row["Ext__c"][1..].parse().expect("key");
        assert_eq!(row["Name"], format!("Up {n}"));
        assert_eq!(row["sf__Created"], (n >= 100).to_string(), "{row:?}");
        if n < 100 {
            assert_eq!(row["sf__Id"], existing_ids[n]);
        }
        let rec = a
            .get(&format!("sobjects/Opportunity/{}", row["sf__Id"]))
            .await;
        assert_eq!(rec.body["Ext__c"].as_str(), Some(row["Ext__c"].as_str()));
    }
    assert_eq!(org.db().count("Opportunity"), 300);
    // upsert needs an external id field.
    let r = a
        .post(
            "jobs/ingest",
            &json!({"object": "Opportunity", "operation": "upsert"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = a
        .post(
            "jobs/ingest",
            &json!({"object": "Opportunity", "operation": "upsert", "externalIdFieldName": "Name"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn delete_job_removes_records() {
    let org = org("BD").await;
    let ids = seed(&org, opportunities("X", 3));
    let a = api(&org).await;
    let csv = format!("Id\n{}\n{}\n006000000000000AAA\n", ids[0], ids[1]);
    let (id, info) = run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "delete"}),
        &csv,
    )
    .await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(results(&a, &id, "successfulResults").await.len(), 2);
    let failed = results(&a, &id, "failedResults").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["Id"], "006000000000000AAA");
    assert_eq!(org.db().count("Opportunity"), 1);
}

#[tokio::test]
async fn uploads_are_checked() {
    let org = org("BL").await;
    let a = api(&org).await;
    let id = ingest_job(&a, json!({"object": "Opportunity", "operation": "insert"})).await;
    let wrong = Reply::from(
        a.request(Method::PUT, &format!("jobs/ingest/{id}/batches"))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    control(&org, "faults", Some(json!({"bulk_upload_max_bytes": 20}))).await;
    let big = upload(&a, &id, "Name,StageName,CloseDate\nA,B,2026-01-01\n").await;
    assert_eq!(big.status, 413, "{}", big.text);
    control(&org, "faults", Some(json!({"bulk_upload_max_bytes": 1000}))).await;
    let csv = "Name,Nope__c\nA,b\n";
    assert_eq!(upload(&a, &id, csv).await.status, 201);
    assert_eq!(upload(&a, &id, csv).await.status, 409);
    let r = a
        .patch(
            &format!("jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(r.body["state"], "UploadComplete");
    let info = wait_for(&a, &format!("jobs/ingest/{id}"), ended).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "InvalidBatch : Field name not found : Nope__c"
    );
    let left = results(&a, &id, "unprocessedrecords").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["Nope__c"], "b");
    let r = a
        .post(
            "jobs/ingest",
            &json!({"object": "Nope", "operation": "insert"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = a
        .post(
            "jobs/ingest",
            &json!({"object": "Opportunity", "operation": "merge"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn slow_jobs_can_be_aborted_leaving_unprocessed_rows() {
    let org = org("BW").await;
    let a = api(&org).await;
    control(&org, "faults", Some(json!({"bulk_rows_per_second": 10}))).await;
    let mut csv = String::from("Name,StageName,CloseDate\n");
    for i in 0..40 {
        csv.push_str(&format!("W{i},Prospecting,2026-01-01\n"));
    }
    let id = ingest_job(&a, json!({"object": "Opportunity", "operation": "insert"})).await;
    assert_eq!(upload(&a, &id, &csv).await.status, 201);
    a.patch(
        &format!("jobs/ingest/{id}"),
        &json!({"state": "UploadComplete"}),
    )
    .await;
    let path = format!("jobs/ingest/{id}");
    let info = wait_for(&a, &path, |s| s == "InProgress").await;
    assert_eq!(info["state"], "InProgress");
    let early = a.get(&format!("{path}/successfulResults")).await;
    assert_eq!(early.error_code(), "JOB_NOT_COMPLETE");
    // Wait until some rows are done, then abort.
    for _ in 0..1000 {
        if a.get(&path).await.body["numberRecordsProcessed"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = a.patch(&path, &json!({"state": "Aborted"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "Aborted");
    let done = results(&a, &id, "successfulResults").await.len();
    let left = results(&a, &id, "unprocessedrecords").await.len();
    assert!(done > 0 && done < 40, "{done}");
    assert_eq!(done + left, 40);
    assert_eq!(org.db().count("Opportunity"), done);
    let again = a.patch(&path, &json!({"state": "Aborted"})).await;
    assert_eq!(again.status, 409, "{}", again.text);
}

#[tokio::test]
async fn lock_errors_become_row_errors() {
    let org = org("BK").await;
    let ids = seed(&org, opportunities("L", 4));
    let a = api(&org).await;
    control(&org, "faults", Some(json!({"lock_error_rate": 1.0}))).await;
    let csv = format!(
        "Id,Name\n{}\n",
        ids.iter()
            .map(|i| format!("{i},New"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (id, info) = run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "update"}),
        &csv,
    )
    .await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsFailed"], 4);
    let failed = results(&a, &id, "failedResults").await;
    assert_eq!(failed.len(), 4);
    for row in &failed {
        assert!(
            row["sf__Error"].starts_with("UNABLE_TO_LOCK_ROW:"),
            "{row:?}"
        );
        assert_eq!(row["sf__Id"], row["Id"]);
    }
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

#[tokio::test]
async fn query_jobs_can_be_aborted() {
    let org = org("BB").await;
    let a = api(&org).await;
    control(&org, "faults", Some(json!({"bulk_stall": true}))).await;
    let r = query_job(&a, "SELECT Id FROM Opportunity", "query").await;
    let id = r.body["id"].as_str().expect("id").to_string();
    let r = a
        .patch(&format!("jobs/query/{id}"), &json!({"state": "Aborted"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "Aborted");
    assert_eq!(org.calls("bulk_query_abort"), 1);
    let r = a
        .patch(
            &format!("jobs/query/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = a.get(&format!("jobs/query/{id}/results")).await;
    assert_eq!(r.error_code(), "JOB_NOT_COMPLETE");
    // A query job is not an ingest job.
    assert_eq!(a.get(&format!("jobs/ingest/{id}")).await.status, 404);
}

#[tokio::test]
async fn ingest_jobs_stall_are_deleted_only_when_not_running_and_keep_unprocessed_rows() {
    let org = org("BT").await;
    let a = api(&org).await;
    let csv = "Name,StageName,CloseDate\nT1,Prospecting,2026-01-01\nT2,Prospecting,2026-01-01\n";
    // Aborted while Open: every uploaded row is unprocessed; an Open job cannot be deleted.
    let id = ingest_job(&a, json!({"object": "Opportunity", "operation": "insert"})).await;
    assert_eq!(upload(&a, &id, csv).await.status, 201);
    let r = a.delete(&format!("jobs/ingest/{id}")).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.error_code(), "INVALIDJOBSTATE");
    let r = a
        .patch(&format!("jobs/ingest/{id}"), &json!({"state": "Aborted"}))
        .await;
    assert_eq!(r.body["state"], "Aborted");
    let left = results(&a, &id, "unprocessedrecords").await;
    assert_eq!(left.len(), 2);
    assert_eq!(left[1]["Name"], "T2");
    assert_eq!(a.delete(&format!("jobs/ingest/{id}")).await.status, 204);
    assert_eq!(a.get(&format!("jobs/ingest/{id}")).await.status, 404);

    // Stalled: InProgress, nothing written, until the fault is cleared.
    control(&org, "faults", Some(json!({"bulk_stall": true}))).await;
    let id = ingest_job(&a, json!({"object": "Opportunity", "operation": "insert"})).await;
    assert_eq!(upload(&a, &id, csv).await.status, 201);
    a.patch(
        &format!("jobs/ingest/{id}"),
        &json!({"state": "UploadComplete"}),
    )
    .await;
    let path = format!("jobs/ingest/{id}");
    wait_for(&a, &path, |s| s == "InProgress").await;
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let info = a.get(&path).await.body;
        assert_eq!(info["state"], "InProgress");
        assert_eq!(info["numberRecordsProcessed"], 0);
    }
    assert_eq!(a.delete(&path).await.status, 409);
    assert_eq!(org.db().count("Opportunity"), 0);
    control(&org, "faults", Some(json!({"bulk_stall": false}))).await;
    let info = wait_for(&a, &path, ended).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(org.db().count("Opportunity"), 2);
    let list = a.get("jobs/ingest").await.body;
    assert_eq!(list["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["records"][0]["jobType"], "V2Ingest");
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
