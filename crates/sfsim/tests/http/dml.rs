//! sObject rows, upserts, sObject Collections, describe, getDeleted / getUpdated.

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::helpers::{Reply, api, control, opportunities, org, seed};

fn opp(name: &str) -> Json {
    json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2026-12-31"})
}

#[tokio::test]
async fn single_record_crud() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = a.post("sobjects/Opportunity", &opp("One")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["success"], json!(true));
    assert_eq!(r.body["errors"], json!([]));
    let id = r.body["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("006") && id.len() == 18);

    let r = a.get(&format!("sobjects/Opportunity/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["Name"], json!("One"));
    assert_eq!(r.body["CreatedById"], json!(org.integration_user_id));
    let r = a
        .get(&format!("sobjects/Opportunity/{id}?fields=Name,Amount"))
        .await;
    assert_eq!(r.body["Amount"], json!(null));
    assert!(r.body.get("StageName").is_none());

    let r = a
        .patch(
            &format!("sobjects/Opportunity/{id}"),
            &json!({"Amount": 10}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = a.get(&format!("sobjects/Opportunity/{id}")).await;
    assert_eq!(r.body["Amount"], json!(10.0));

    let r = a
        .patch(
            &format!("sobjects/Opportunity/{id}"),
            &json!({"CloseDate": "soon"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body[0]["errorCode"].is_string() && r.body[0]["fields"].is_array(),
        "{}",
        r.text
    );

    let r = a.delete(&format!("sobjects/Opportunity/{id}")).await;
    assert_eq!(r.status, 204);
    let r = a.get(&format!("sobjects/Opportunity/{id}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    );
    assert_eq!(
        a.delete(&format!("sobjects/Opportunity/{id}")).await.status,
        404
    );
    assert_eq!(
        a.patch(&format!("sobjects/Opportunity/{id}"), &json!({"Amount": 1}))
            .await
            .status,
        404
    );
    assert_eq!(org.calls("create"), 1);
    assert_eq!(org.calls("update"), 3);
    assert_eq!(org.calls("delete"), 2);
    assert_eq!(org.stats()["records_written"], json!(3));
}

#[tokio::test]
async fn single_record_errors() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = a.post("sobjects/Opportunity", &json!({"Name": "x"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "REQUIRED_FIELD_MISSING", "{}", r.text);
    let r = a.post("sobjects/Nothing", &opp("x")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NOT_FOUND");
    let r = Reply::from(
        a.request(Method::POST, "sobjects/Opportunity")
            .header("content-type", "application/json")
            .body("{\"Name\": ")
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "JSON_PARSER_ERROR");
    let r = a.post("sobjects/Opportunity", &json!([1, 2])).await;
    assert_eq!(r.error_code(), "JSON_PARSER_ERROR");
    let r = a.get("sobjects/Opportunity/not-an-id").await;
    assert_eq!(r.status, 404);
    let r = a.get("no/such/resource/here/at/all").await;
    assert_eq!(r.status, 404);
    let r = Reply::from(
        a.request(Method::PUT, "sobjects/Opportunity")
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "METHOD_NOT_ALLOWED");
    let big = "x".repeat(17 * 1024 * 1024);
    let r = Reply::from(
        a.request(Method::POST, "sobjects/Opportunity")
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(r.status, 413);
    let long = format!("query?q={}", "a".repeat(20_000));
    assert_eq!(a.get(&long).await.status, 414);
}

#[tokio::test]
async fn upsert_by_external_id() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = control(&org, "schema", Some(json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string", "externalId": true, "unique": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = a
        .patch("sobjects/Opportunity/Ext_Id__c/E-1", &opp("Up"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["created"], json!(true));
    let id = r.body["id"].as_str().expect("id").to_string();
    let r = a
        .patch("sobjects/Opportunity/Ext_Id__c/E-1", &json!({"Amount": 5}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["created"], json!(false));
    assert_eq!(r.body["id"], json!(id));
    let r = a.get("sobjects/Opportunity/Ext_Id__c/E-1").await;
    assert_eq!(r.body["Amount"], json!(5.0));
    let r = a
        .patch("sobjects/Opportunity/Nope__c/E-1", &json!({}))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = a.patch("sobjects/Opportunity/Name/E-1", &json!({})).await;
    assert_eq!(r.status, 400, "{}", r.text);

    // several matches: 300 with their URLs
    control(&org, "schema", Some(json!({"object": "Opportunity", "name": "Loose__c", "type": "string", "externalId": true}))).await;
    let mut two = opportunities("Dup", 2);
    for rec in &mut two {
        rec.insert("Loose__c".into(), json!("same"));
    }
    seed(&org, two);
    let r = a
        .patch("sobjects/Opportunity/Loose__c/same", &json!({"Amount": 1}))
        .await;
    assert_eq!(r.status, 300, "{}", r.text);
    assert_eq!(r.body.as_array().map(Vec::len), Some(2));
    assert_eq!(org.calls("upsert"), 5);
}

#[tokio::test]
async fn collections_create_update_delete() {
    let org = org("A").await;
    let a = api(&org).await;
    let body = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Opportunity"}, "Name": "C1", "StageName": "Prospecting", "CloseDate": "2026-12-31"},
        {"attributes": {"type": "Opportunity"}, "Name": "C2"},
        {"Name": "no type"},
    ]});
    let r = a.post("composite/sobjects", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body.as_array().expect("array");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["success"], json!(true));
    assert_eq!(items[1]["success"], json!(false));
    assert_eq!(
        items[1]["errors"][0]["statusCode"],
        json!("REQUIRED_FIELD_MISSING")
    );
    assert!(items[1]["errors"][0]["fields"].is_array());
    assert!(items[1].get("id").is_none());
    assert_eq!(items[2]["errors"][0]["statusCode"], json!("INVALID_TYPE"));
    let id = items[0]["id"].as_str().expect("id").to_string();

    // allOrNone: the good item is rolled back
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Opportunity"}, "Name": "R1", "StageName": "Prospecting", "CloseDate": "2026-12-31"},
        {"attributes": {"type": "Opportunity"}, "Name": "R2"},
    ]});
    let r = a.post("composite/sobjects", &body).await;
    assert_eq!(r.body[0]["success"], json!(false));
    assert_eq!(
        r.body[0]["errors"][0]["statusCode"],
        json!("ALL_OR_NONE_OPERATION_ROLLED_BACK")
    );
    assert_eq!(
        r.body[1]["errors"][0]["statusCode"],
        json!("REQUIRED_FIELD_MISSING")
    );
    assert_eq!(org.db().count("Opportunity"), 1);

    let r = a
        .patch(
            "composite/sobjects",
            &json!({"records": [
                {"attributes": {"type": "Opportunity"}, "id": id, "Amount": 7},
                {"attributes": {"type": "Opportunity"}, "Amount": 7},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0], json!({"id": id, "success": true, "errors": []}));
    assert_eq!(
        r.body[1]["errors"][0]["statusCode"],
        json!("MISSING_ARGUMENT")
    );

    // array retrieve, as jsforce does it
    let r = a
        .post(
            "composite/sobjects/Opportunity",
            &json!({"ids": [id, "006000000000000AAA"], "fields": ["Name", "Amount"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["Amount"], json!(7.0));
    assert_eq!(r.body[1], json!(null));
    let r = a
        .post(
            "composite/sobjects/Opportunity",
            &json!({"ids": ["006000000000000AAA"], "fields": ["Nope"]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "INVALID_FIELD");
    let r = a
        .get(&format!(
            "composite/sobjects/Opportunity?ids={id}&fields=Name"
        ))
        .await;
    assert_eq!(r.body[0]["Name"], json!("C1"));

    let r = a
        .delete(&format!(
            "composite/sobjects?ids={id},006000000000000AAA&allOrNone=false"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["success"], json!(true));
    assert_eq!(r.body[1]["success"], json!(false));
    assert_eq!(org.db().count("Opportunity"), 0);
    assert_eq!(org.calls("collections_create"), 2);
    assert_eq!(org.calls("collections_update"), 1);
    assert_eq!(org.calls("collections_delete"), 1);
    assert_eq!(org.stats()["records_written"], json!(3));
}

#[tokio::test]
async fn collections_limits_and_malformed_requests() {
    let org = org("A").await;
    let a = api(&org).await;
    let records: Vec<Json> = (0..201)
        .map(|i| json!({"attributes": {"type": "Opportunity"}, "Name": format!("n{i}"), "StageName": "Prospecting", "CloseDate": "2026-12-31"}))
        .collect();
    let r = a
        .post("composite/sobjects", &json!({"records": records}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "EXCEEDED_ID_LIMIT");
    let r = a
        .post("composite/sobjects", &json!({"records": records[..200]}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_array().map(Vec::len), Some(200));
    let ids: Vec<String> = (0..201).map(|i| format!("006{i:015}")).collect();
    let r = a
        .delete(&format!("composite/sobjects?ids={}", ids.join(",")))
        .await;
    assert_eq!(r.error_code(), "EXCEEDED_ID_LIMIT");
    let r = a.delete("composite/sobjects").await;
    assert_eq!(r.status, 400);
    let r = a.post("composite/sobjects", &json!({"records": "x"})).await;
    assert_eq!(r.status, 400);
    let r = a
        .post(
            "composite/sobjects",
            &json!({"allOrNone": 3, "records": []}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .post("composite/sobjects", &json!({"records": [1, "x", null]}))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["success"] == json!(false))
    );
}

#[tokio::test]
async fn collections_upsert_reports_created() {
    let org = org("A").await;
    let a = api(&org).await;
    org.add_field(&json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string", "externalId": true, "unique": true}))
        .expect("field");
    let mut one = opportunities("U", 1);
    one[0].insert("Ext_Id__c".into(), json!("K-1"));
    seed(&org, one);
    let r = a.patch("composite/sobjects/Opportunity/Ext_Id__c", &json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Opportunity"}, "Ext_Id__c": "K-1", "Amount": 3},
        {"attributes": {"type": "Opportunity"}, "Ext_Id__c": "K-2", "Name": "New", "StageName": "Prospecting", "CloseDate": "2027-01-31"},
    ]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["created"], json!(false));
    assert_eq!(r.body[1]["created"], json!(true));
    assert!(
        r.body
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["success"] == json!(true))
    );
    let r = a
        .patch(
            "composite/sobjects/Nothing/Ext_Id__c",
            &json!({"records": []}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(org.calls("collections_upsert"), 2);
}

#[tokio::test]
async fn failed_items_of_an_all_or_none_upsert_carry_created() {
    let org = org("A").await;
    let a = api(&org).await;
    org.add_field(&json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string", "externalId": true, "unique": true}))
        .expect("field");
    let mut one = opportunities("U", 1);
    one[0].insert("Ext_Id__c".into(), json!("K-1"));
    seed(&org, one);
    let r = a.patch("composite/sobjects/Opportunity/Ext_Id__c", &json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Opportunity"}, "Ext_Id__c": "K-1", "Amount": 3},
        {"attributes": {"type": "Opportunity"}, "Ext_Id__c": "K-2", "Name": "New", "StageName": "Prospecting", "CloseDate": "2027-01-31"},
        {"attributes": {"type": "Opportunity"}, "Ext_Id__c": "K-3", "Name": "No close date", "StageName": "Prospecting"},
    ]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body.as_array().expect("items");
    assert_eq!(items.len(), 3);
    for item in items {
        assert_eq!(item["success"], json!(false), "{item}");
        assert_eq!(item["created"], json!(false), "{item}");
    }
    assert_eq!(
        items[0]["errors"][0]["statusCode"],
        json!("ALL_OR_NONE_OPERATION_ROLLED_BACK")
    );
    assert_eq!(
        items[2]["errors"][0]["statusCode"],
        json!("REQUIRED_FIELD_MISSING")
    );
}

#[tokio::test]
async fn describe_versions_and_limits() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = Reply::from(
        reqwest::get(format!("{}/services/data", org.base_url))
            .await
            .expect("versions"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .as_array()
            .expect("list")
            .iter()
            .any(|v| v["version"] == json!("62.0") && v["url"] == json!("/services/data/v62.0"))
    );
    let r = a.get("/services/data/v62.0").await;
    assert_eq!(r.body["sobjects"], json!("/services/data/v62.0/sobjects"));
    let r = a.get("/services/data/v62.0/").await;
    assert_eq!(r.status, 200);
    let head = a
        .request(Method::HEAD, "limits")
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status().as_u16(), 200);
    let r = a.get("sobjects").await;
    assert!(
        r.body["sobjects"]
            .as_array()
            .expect("sobjects")
            .iter()
            .any(|o| o["name"] == json!("Account"))
    );
    let r = a.get("sobjects/Opportunity/describe").await;
    assert_eq!(r.body["keyPrefix"], json!("006"));
    let r = a.get("sobjects/Opportunity").await;
    assert_eq!(r.body["objectDescribe"]["name"], json!("Opportunity"));
    let r = a.get("sobjects/Nothing/describe").await;
    assert_eq!(r.status, 404);
    let r = a
        .get("/services/data/v50.0/sobjects/Opportunity/describe")
        .await;
    assert_eq!(r.status, 200);
    let r = a.get("/services/data/62.0/sobjects").await;
    assert_eq!(r.status, 404);
    assert_eq!(org.calls("describe"), 7);
}

#[tokio::test]
async fn deleted_and_updated() {
    let org = org("A").await;
    let a = api(&org).await;
    let ids = seed(&org, opportunities("D", 2));
    a.delete(&format!("sobjects/Opportunity/{}", ids[0])).await;
    // getDeleted and getUpdated cover up to the last whole minute: move the org's clock on.
    org.set_clock_offset_ms(120_000);
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let q = [("start", start.as_str()), ("end", end.as_str())];
    let r = Reply::from(
        a.request(Method::GET, "sobjects/Opportunity/deleted/")
            .query(&q)
            .send()
            .await
            .expect("deleted"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["deletedRecords"][0]["id"], json!(ids[0]));
    assert!(r.body["latestDateCovered"].is_string());
    let r = Reply::from(
        a.request(Method::GET, "sobjects/Opportunity/updated/")
            .query(&q)
            .send()
            .await
            .expect("updated"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["ids"], json!([ids[1]]));
    let r = a
        .get("sobjects/Opportunity/updated/?start=yesterday&end=now")
        .await;
    assert_eq!(r.status, 400);
    let r = a.get("sobjects/Opportunity/deleted/").await;
    assert_eq!(r.status, 400);
    let r = Reply::from(
        a.request(Method::GET, "sobjects/Opportunity/deleted/")
            .query(&[("start", end.as_str()), ("end", start.as_str())])
            .send()
            .await
            .expect("deleted"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "INVALID_REPLICATION_DATE");
    assert_eq!(org.calls("deleted"), 3);
    assert_eq!(org.calls("updated"), 2);
}

/// Garbage to every endpoint: a Salesforce-shaped 4xx, never a panic or a 5xx.
#[tokio::test]
async fn garbage_never_breaks_the_server() {
    let org = org("A").await;
    let a = api(&org).await;
    let bodies: [&[u8]; 6] = [
        b"",
        b"null",
        b"{\"records\": [{\"attributes\": 5}]}",
        b"\xff\xfe\x00garbage",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"{\"Name\": {\"nested\": [1, {\"x\": null}]}, \"CloseDate\": 12}",
    ];
    let paths = [
        "sobjects/Opportunity",
        "sobjects/Opportunity/006000000000000AAA",
        "sobjects/Opportunity/Name/x",
        "sobjects/Opportunity/Id/006000000000000AAA",
        "composite/sobjects",
        "composite/sobjects/Opportunity",
        "composite/sobjects/Opportunity/Name",
        "sobjects/%ZZ/%00",
        "query/%FF-1",
    ];
    for path in paths {
        for method in [
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::GET,
            Method::PUT,
        ] {
            for body in bodies {
                let r = a
                    .request(method.clone(), path)
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await
                    .expect("reply");
                let status = r.status().as_u16();
                assert!(
                    (200..500).contains(&status),
                    "{method} {path} {:?}: {status}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
    assert_eq!(a.get("limits").await.status, 200);
}
