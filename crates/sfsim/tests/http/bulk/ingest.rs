//! Bulk ingest jobs: insert, update, upsert and delete; empty cells vs `#N/A`; shuffled results
//! matched by key; failed and unprocessed rows; the fail, stall, rate and lock-error faults;
//! upload checks.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::{ended, ingest_job, query_job, results, run_ingest, upload, wait_for, with_ext_field};
use crate::helpers::{Reply, api, control, opportunities, org, seed};

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

#[tokio::test]
async fn ingest_writes_queue_outbound_messages_like_rest_writes() {
    let org = org("BO").await;
    org.set_outbound(sfsim::outbound::OutboundConfig {
        // Nothing listens there: the notifications stay queued.
        endpoint_url: Some("http://127.0.0.1:9/outbound".into()),
        enabled: true,
        retry_base_delay_ms: 3_600_000,
        ..Default::default()
    });
    let a = api(&org).await;
    let csv = "Name,StageName,CloseDate\nO1,Prospecting,2026-01-01\nO2,Prospecting,2026-01-01\n,Prospecting,2026-01-01\n";
    let (_, info) = run_ingest(
        &a,
        json!({"object": "Opportunity", "operation": "insert"}),
        csv,
    )
    .await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsFailed"], 1);
    assert_eq!(org.outbound_stats().notifications_queued, 2);
}
