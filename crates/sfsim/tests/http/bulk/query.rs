//! Bulk query jobs: states, the CSV shape, locator paging and maxRecords, Bulk's SOQL rules,
//! queryAll, other delimiters, stall and abort.

use serde_json::json;

use super::{ended, header, parse_csv, query_job, wait_for};
use crate::helpers::{api, control, opportunities, org, seed};

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
