//! query / queryAll with cursor paging, and query errors.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{api, control, opportunities, org, seed};

#[tokio::test]
async fn five_thousand_records_page_by_batch_size() {
    let org = org("A").await;
    seed(&org, opportunities("Paging", 5000));
    let a = api(&org).await;
    let soql = "SELECT Id, Name FROM Opportunity WHERE Name LIKE 'Paging%' ORDER BY Name";

    // default batches of 2,000
    let mut r = a.query(soql).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalSize"], json!(5000));
    let mut sizes = vec![];
    let mut ids = HashSet::new();
    loop {
        let records = r.body["records"].as_array().expect("records");
        sizes.push(records.len());
        for rec in records {
            ids.insert(rec["Id"].as_str().expect("Id").to_string());
            assert_eq!(rec["attributes"]["type"], json!("Opportunity"));
        }
        if r.body["done"] == json!(true) {
            assert!(r.body.get("nextRecordsUrl").is_none());
            break;
        }
        let next = r.body["nextRecordsUrl"]
            .as_str()
            .expect("nextRecordsUrl")
            .to_string();
        assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
        r = a.get(&next).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(sizes, vec![2000, 2000, 1000]);
    assert_eq!(ids.len(), 5000);
    assert_eq!(org.calls("query"), 1);
    assert_eq!(org.calls("query_more"), 2);

    // batchSize=500 through Sforce-Query-Options
    let first = a
        .request(reqwest::Method::GET, "query")
        .header("Sforce-Query-Options", "batchSize=500")
        .query(&[("q", soql)])
        .send()
        .await
        .expect("query");
    let mut r = crate::helpers::Reply::from(first).await;
    let mut pages = 1;
    let mut names = vec![];
    loop {
        for rec in r.body["records"].as_array().expect("records") {
            names.push(rec["Name"].as_str().expect("Name").to_string());
        }
        if r.body["done"] == json!(true) {
            break;
        }
        assert_eq!(r.body["records"].as_array().map(Vec::len), Some(500));
        let next = r.body["nextRecordsUrl"].as_str().expect("next").to_string();
        r = a.get(&next).await;
        pages += 1;
    }
    assert_eq!(pages, 10);
    assert_eq!(names.len(), 5000);
    assert_eq!(names.first().map(String::as_str), Some("Paging 00000"));
    assert_eq!(names.last().map(String::as_str), Some("Paging 04999"));
}

#[tokio::test]
async fn query_all_sees_deleted_rows_and_count_works() {
    let org = org("A").await;
    let ids = seed(&org, opportunities("Q", 3));
    let a = api(&org).await;
    assert_eq!(
        a.delete(&format!("sobjects/Opportunity/{}", ids[0]))
            .await
            .status,
        204
    );
    let r = a.query("SELECT Id FROM Opportunity").await;
    assert_eq!(r.body["totalSize"], json!(2));
    let r = crate::helpers::Reply::from(
        a.request(reqwest::Method::GET, "queryAll")
            .query(&[("q", "SELECT Id, IsDeleted FROM Opportunity ORDER BY Name")])
            .send()
            .await
            .expect("queryAll"),
    )
    .await;
    assert_eq!(r.body["totalSize"], json!(3), "{}", r.text);
    assert_eq!(r.body["records"][0]["IsDeleted"], json!(true));
    assert_eq!(org.calls("query_all"), 1);
    let r = a.query("SELECT COUNT() FROM Opportunity").await;
    assert_eq!(r.body["totalSize"], json!(2), "{}", r.text);
    assert_eq!(r.body["records"], json!([]));
    assert_eq!(r.body["done"], json!(true));
}

#[tokio::test]
async fn query_all_next_url_says_query() {
    let org = org("A").await;
    seed(&org, opportunities("N", 300));
    let a = api(&org).await;
    let r = crate::helpers::Reply::from(
        a.request(reqwest::Method::GET, "queryAll")
            .header("Sforce-Query-Options", "batchSize=200")
            .query(&[("q", "SELECT Id FROM Opportunity")])
            .send()
            .await
            .expect("queryAll"),
    )
    .await;
    let next = r.body["nextRecordsUrl"].as_str().expect("next").to_string();
    assert!(next.contains("/query/"), "{next}");
    let r = a.get(&next).await;
    assert_eq!(r.body["records"].as_array().map(Vec::len), Some(100));
}

#[tokio::test]
async fn bad_locators_and_reset_cursors() {
    let org = org("A").await;
    seed(&org, opportunities("L", 400));
    let a = api(&org).await;
    for bad in [
        "query/01gNOPE-200",
        "query/garbage",
        "query/01gX-notanumber",
    ] {
        let r = a.get(bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.error_code(), "INVALID_QUERY_LOCATOR");
    }
    let r = crate::helpers::Reply::from(
        a.request(reqwest::Method::GET, "query")
            .header("Sforce-Query-Options", "batchSize=200")
            .query(&[("q", "SELECT Id FROM Opportunity")])
            .send()
            .await
            .expect("query"),
    )
    .await;
    let next = r.body["nextRecordsUrl"].as_str().expect("next").to_string();
    control(&org, "reset", Some(json!({}))).await;
    let r = a.get(&next).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn malformed_queries() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = a
        .query("SELECT Id FROM Opportunity WHERE invalid invalid")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "MALFORMED_QUERY");
    assert!(
        r.body[0].get("fields").is_none(),
        "MALFORMED_QUERY has no fields key"
    );
    let r = a.query("SELECT Nope FROM Opportunity").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "INVALID_FIELD");
    let r = a.query("SELECT Id FROM Nothing").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "INVALID_TYPE");
    let r = a.get("query").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "MALFORMED_QUERY");
    let r = a
        .query("SELECT Id FROM Opportunity WHERE Name = '\u{0}\u{7f}'")
        .await;
    assert!(r.status == 200 || r.status == 400);
    let r = a.query(&"(".repeat(5000)).await;
    assert_eq!(r.status, 400);
    assert_eq!(org.stats()["calls"]["query"], json!(6));
}

#[tokio::test]
async fn for_view_and_for_reference_fill_the_recently_viewed_list() {
    let org = org("A").await;
    let a = api(&org).await;
    let ids = seed(&org, opportunities("Recent", 5));
    let r = a.get("recent").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!([]));
    let q = a
        .query("SELECT Id, Name FROM Opportunity WHERE Name = 'Recent 00001' FOR VIEW")
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["totalSize"], json!(1));
    let q = a
        .query("SELECT Id FROM Opportunity WHERE Name = 'Recent 00003' FOR REFERENCE")
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
    // A plain query marks nothing.
    a.query("SELECT Id FROM Opportunity WHERE Name = 'Recent 00004'")
        .await;
    let r = a.get("recent").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body.as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", r.text);
    assert_eq!(items[0]["Id"], json!(ids[3]));
    assert_eq!(items[0]["Name"], json!("Recent 00003"));
    assert_eq!(items[0]["attributes"]["type"], json!("Opportunity"));
    assert_eq!(items[1]["Id"], json!(ids[1]));
    let r = a.get("recent?limit=1").await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    let r = a.get("recent?limit=x").await;
    assert_eq!(r.status, 400);
    // The object's resource lists its recent items; another user has none.
    let info = a.get("sobjects/Opportunity").await;
    assert_eq!(info.body["recentItems"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        a.get("sobjects/Account").await.body["recentItems"],
        json!([])
    );
    let human = crate::helpers::token_for(&org, &org.human_username).await;
    let other = crate::helpers::Api {
        http: reqwest::Client::new(),
        base: org.base_url.clone(),
        token: human,
    };
    assert_eq!(other.get("recent").await.body, json!([]));
    // A deleted record leaves the list.
    assert_eq!(
        a.delete(&format!("sobjects/Opportunity/{}", ids[3]))
            .await
            .status,
        204
    );
    let r = a.get("recent").await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1), "{}", r.text);
    let bad = a.query("SELECT Id FROM Opportunity FOR UPDATE").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "MALFORMED_QUERY");
    assert_eq!(
        a.get("").await.body["recent"],
        json!(format!("/services/data/v{}/recent", crate::helpers::V))
    );
}

#[tokio::test]
async fn explain_answers_with_plans_or_the_query_error() {
    let org = org("A").await;
    let a = api(&org).await;
    seed(&org, opportunities("Plan", 10));
    let explain = |soql: &str| {
        a.request(reqwest::Method::GET, "query")
            .query(&[("explain", soql)])
            .send()
    };
    let r = crate::helpers::Reply::from(
        explain("SELECT Id FROM Opportunity WHERE Name = 'Plan 00003'")
            .await
            .expect("explain"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let plans = r.body["plans"].as_array().expect("plans");
    assert_eq!(plans.len(), 2, "{}", r.text);
    assert_eq!(plans[0]["leadingOperationType"], json!("Index"));
    assert_eq!(plans[0]["fields"], json!(["Name"]));
    assert_eq!(plans[0]["cardinality"], json!(1));
    assert_eq!(plans[0]["sobjectCardinality"], json!(10));
    assert_eq!(plans[0]["sobjectType"], json!("Opportunity"));
    assert_eq!(plans[1]["leadingOperationType"], json!("TableScan"));
    assert!(plans[1]["relativeCost"].is_number());
    assert!(plans[0]["notes"].is_array());
    // An unindexed filter: the table scan alone.
    let r = crate::helpers::Reply::from(
        explain("SELECT Id FROM Opportunity WHERE Amount > 4")
            .await
            .expect("explain"),
    )
    .await;
    let plans = r.body["plans"].as_array().expect("plans");
    assert_eq!(plans.len(), 1, "{}", r.text);
    assert_eq!(plans[0]["cardinality"], json!(5));
    // Errors are the query's; a report or list view id is INVALID_ID.
    let r = crate::helpers::Reply::from(explain("SELECT FROM").await.expect("explain")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "MALFORMED_QUERY");
    let r = crate::helpers::Reply::from(
        explain("SELECT Nope FROM Opportunity")
            .await
            .expect("explain"),
    )
    .await;
    assert_eq!(r.error_code(), "INVALID_FIELD");
    let r = crate::helpers::Reply::from(explain("00O000000000001").await.expect("explain")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "INVALID_ID");
    assert_eq!(org.calls("explain"), 5);
    assert_eq!(org.calls("query"), 0);
}

#[tokio::test]
async fn parent_to_child_subqueries_nest_the_children() {
    let org = org("A").await;
    let a = api(&org).await;
    let mut accounts = Vec::new();
    for name in ["Acme", "Empty"] {
        let r = a.post("sobjects/Account", &json!({"Name": name})).await;
        accounts.push(r.body["id"].as_str().expect("id").to_string());
    }
    for last in ["Zed", "Adams", "Brown"] {
        let r = a
            .post(
                "sobjects/Contact",
                &json!({"LastName": last, "AccountId": accounts[0]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = a
        .post(
            "sobjects/Opportunity",
            &json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": accounts[0]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let q = a
        .query(
            "SELECT Id, Name, (SELECT Id, LastName FROM Contacts WHERE LastName != 'Zed' ORDER BY LastName), \
             (SELECT Name FROM Opportunities) FROM Account ORDER BY Name",
        )
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
    let acme = &q.body["records"][0];
    assert_eq!(acme["Name"], json!("Acme"));
    assert_eq!(acme["Contacts"]["totalSize"], json!(2), "{}", q.text);
    assert_eq!(acme["Contacts"]["done"], json!(true));
    let names: Vec<&str> = acme["Contacts"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|c| c["LastName"].as_str())
        .collect();
    assert_eq!(names, ["Adams", "Brown"]);
    assert_eq!(
        acme["Contacts"]["records"][0]["attributes"]["type"],
        json!("Contact")
    );
    assert_eq!(acme["Opportunities"]["records"][0]["Name"], json!("Deal"));
    let empty = &q.body["records"][1];
    assert_eq!(empty["Contacts"], json!(null));
    assert_eq!(empty["Opportunities"], json!(null));
    let limited = a
        .query("SELECT Id, (SELECT Id FROM Contacts ORDER BY LastName DESC LIMIT 1) FROM Account WHERE Name = 'Acme'")
        .await;
    assert_eq!(
        limited.body["records"][0]["Contacts"]["totalSize"],
        json!(1)
    );
    let bad = a
        .query("SELECT Id, (SELECT Id FROM Nothings) FROM Account")
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "INVALID_TYPE");
    let bad = a
        .query("SELECT Id, (SELECT Nope FROM Contacts) FROM Account")
        .await;
    assert_eq!(bad.error_code(), "INVALID_FIELD");
    let d = a.get("sobjects/Account/describe").await;
    let contacts = d.body["childRelationships"]
        .as_array()
        .expect("childRelationships")
        .iter()
        .find(|r| r["relationshipName"] == json!("Contacts"))
        .cloned()
        .expect("Contacts");
    assert_eq!(contacts["childSObject"], json!("Contact"));
    assert_eq!(contacts["field"], json!("AccountId"));
}
