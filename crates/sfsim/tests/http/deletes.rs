//! Deletes and the recycle bin: system fields of a delete, ENTITY_IS_DELETED on a second
//! delete, queryAll, SOAP undelete and merge, the recycle-bin purge and hard delete of the
//! control API, and the minute granularity of getDeleted / getUpdated.

use reqwest::Method;
use serde_json::{Value as Json, json};
use sfsim::SimOrg;

use crate::helpers::{Api, Reply, V, api, control, opportunities, org, seed};

/// A Partner API call with the session in the SessionHeader, as jsforce sends it.
async fn soap(org: &SimOrg, session: Option<&str>, body: &str) -> (u16, String) {
    soap_at(org, &format!("/services/Soap/u/{V}"), session, body).await
}

async fn soap_at(org: &SimOrg, path: &str, session: Option<&str>, body: &str) -> (u16, String) {
    let header = session
        .map(|s| format!("<soapenv:Header><SessionHeader><sessionId>{s}</sessionId></SessionHeader></soapenv:Header>"))
        .unwrap_or_default();
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{header}<soapenv:Body xmlns="urn:partner.soap.sforce.com">{body}</soapenv:Body></soapenv:Envelope>"#
    );
    let r = reqwest::Client::new()
        .post(format!("{}{path}", org.base_url))
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", "\"\"")
        .body(xml)
        .send()
        .await
        .expect("soap call");
    let status = r.status().as_u16();
    (status, r.text().await.expect("text"))
}

fn undelete_body(ids: &[&str]) -> String {
    let ids: String = ids.iter().map(|i| format!("<ids>{i}</ids>")).collect();
    format!("<undelete>{ids}</undelete>")
}

async fn query_all(a: &Api, soql: &str) -> Reply {
    Reply::from(
        a.request(Method::GET, "queryAll")
            .query(&[("q", soql)])
            .send()
            .await
            .expect("queryAll"),
    )
    .await
}

fn account(a: &str) -> serde_json::Map<String, Json> {
    json!({"Name": a}).as_object().cloned().unwrap_or_default()
}

fn seed_accounts(org: &SimOrg, names: &[&str]) -> Vec<String> {
    org.seed_records("Account", None, names.iter().map(|n| account(n)).collect())
        .expect("seeded")
        .into_iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn opp_of(account: &str, name: &str) -> serde_json::Map<String, Json> {
    json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": account})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

async fn replication(a: &Api, what: &str, start: &str, end: &str) -> Reply {
    Reply::from(
        a.request(Method::GET, &format!("sobjects/Opportunity/{what}/"))
            .query(&[("start", start), ("end", end)])
            .send()
            .await
            .expect("replication"),
    )
    .await
}

fn iso(d: chrono::DateTime<chrono::Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

#[tokio::test]
async fn a_delete_moves_system_fields_and_a_second_delete_is_entity_is_deleted() {
    let org = org("A").await;
    let a = api(&org).await;
    let ids = org
        .seed_records(
            "Opportunity",
            Some(&org.human_username),
            opportunities("D", 3),
        )
        .expect("seeded")
        .into_iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect::<Vec<_>>();
    let before = a
        .get(&format!("sobjects/Opportunity/{}", ids[0]))
        .await
        .body["SystemModstamp"]
        .clone();
    org.set_clock_offset_ms(5_000);
    let r = a.delete(&format!("sobjects/Opportunity/{}", ids[0])).await;
    assert_eq!(r.status, 204);
    let r = query_all(
        &a,
        "SELECT Id, IsDeleted, SystemModstamp, LastModifiedById FROM Opportunity WHERE IsDeleted = true",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalSize"], 1);
    let row = &r.body["records"][0];
    assert_eq!(row["Id"], json!(ids[0]));
    assert_eq!(row["IsDeleted"], true);
    assert_eq!(row["LastModifiedById"], json!(org.integration_user_id));
    assert!(row["SystemModstamp"].as_str() > before.as_str(), "{row}");
    assert_eq!(
        a.query("SELECT Id FROM Opportunity").await.body["totalSize"],
        2
    );
    // A second delete, and an update of the deleted record: 404 ENTITY_IS_DELETED.
    let r = a.delete(&format!("sobjects/Opportunity/{}", ids[0])).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!([{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}])
    );
    let r = a
        .patch(
            &format!("sobjects/Opportunity/{}", ids[0]),
            &json!({"Amount": 1}),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (404, "ENTITY_IS_DELETED"));
    // An id that never existed stays NOT_FOUND.
    let r = a.delete("sobjects/Opportunity/006000000000000AAA").await;
    assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND"));
    // In sObject Collections, per item.
    let r = a
        .delete(&format!(
            "composite/sobjects?ids={},{}&allOrNone=false",
            ids[0], ids[1]
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["success"], false);
    assert_eq!(r.body[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    assert_eq!(r.body[1]["success"], true);
}

#[tokio::test]
async fn soap_undelete_restores_records_and_what_the_delete_cascaded_to() {
    let org = org("A").await;
    let a = api(&org).await;
    let acc = seed_accounts(&org, &["Acme"]).remove(0);
    let opp = org
        .seed_records("Opportunity", None, vec![opp_of(&acc, "o1")])
        .expect("seeded")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        a.delete(&format!("sobjects/Account/{acc}")).await.status,
        204
    );
    assert_eq!(
        a.query("SELECT Id FROM Opportunity").await.body["totalSize"],
        0
    );
    let deleted_stamp = query_all(&a, "SELECT SystemModstamp FROM Opportunity")
        .await
        .body["records"][0]["SystemModstamp"]
        .clone();
    org.set_clock_offset_ms(5_000);
    let (status, xml) = soap(
        &org,
        Some(&a.token),
        &undelete_body(&[&acc[..15], "001000000000000AAA", "bad"]),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains(&format!(
            "<undeleteResponse><result><id>{acc}</id><success>true</success></result>"
        )),
        "{xml}"
    );
    assert!(
        xml.contains("<statusCode>INVALID_CROSS_REFERENCE_KEY</statusCode>"),
        "{xml}"
    );
    assert!(
        xml.contains("<statusCode>MALFORMED_ID</statusCode>"),
        "{xml}"
    );
    let r = a
        .query("SELECT Id, IsDeleted, SystemModstamp, AccountId FROM Opportunity")
        .await;
    assert_eq!(r.body["totalSize"], 1, "{}", r.text);
    let row = &r.body["records"][0];
    assert_eq!(row["Id"], json!(opp));
    assert_eq!(row["IsDeleted"], false);
    assert!(row["SystemModstamp"].as_str() > deleted_stamp.as_str());
    assert_eq!(a.query("SELECT Id FROM Account").await.body["totalSize"], 1);
    // A live record is not in the recycle bin.
    let (status, xml) = soap(&org, Some(&a.token), &undelete_body(&[&acc])).await;
    assert_eq!(status, 200);
    assert!(
        xml.contains("<errors><message>Entity is not in the recycle bin</message><statusCode>UNDELETE_FAILED</statusCode></errors>"),
        "{xml}"
    );
    assert!(xml.contains("<success>false</success>"));
    // The login reply's serverUrl (with the org id) takes the same calls.
    let server_url = format!("/services/Soap/u/{V}/{}", &org.org_id[..15]);
    let (status, xml) = soap_at(&org, &server_url, Some(&a.token), &undelete_body(&[&acc])).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<statusCode>UNDELETE_FAILED</statusCode>"),
        "{xml}"
    );
    // No session: the INVALID_SESSION_ID fault.
    let (status, xml) = soap(&org, None, &undelete_body(&[&acc])).await;
    assert_eq!(status, 500);
    assert!(
        xml.contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>"),
        "{xml}"
    );
    assert_eq!(org.calls("undelete"), 4);
}

#[tokio::test]
async fn soap_merge_deletes_losers_with_master_record_id_and_reparents_opportunities() {
    let org = org("A").await;
    let a = api(&org).await;
    let accs = seed_accounts(&org, &["Acme", "Acme Inc", "ACME"]);
    let opps = org
        .seed_records(
            "Opportunity",
            None,
            vec![opp_of(&accs[1], "o1"), opp_of(&accs[2], "o2")],
        )
        .expect("seeded")
        .into_iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect::<Vec<_>>();
    // The shape of the Partner API docs (`request`), with a field that supersedes the master's.
    let body = format!(
        "<merge><request><masterRecord><type>Account</type><Id>{}</Id><Phone>555-0100</Phone><NumberOfEmployees>12</NumberOfEmployees></masterRecord><recordToMergeIds>{}</recordToMergeIds><recordToMergeIds>{}</recordToMergeIds></request></merge>",
        accs[0], accs[1], accs[2]
    );
    let (status, xml) = soap(&org, Some(&a.token), &body).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains(&format!(
            "<result><id>{}</id><mergedRecordIds>{}</mergedRecordIds><mergedRecordIds>{}</mergedRecordIds><success>true</success><updatedRelatedIds>{}</updatedRelatedIds><updatedRelatedIds>{}</updatedRelatedIds></result>",
            accs[0], accs[1], accs[2], opps[0], opps[1]
        )),
        "{xml}"
    );
    let r = query_all(
        &a,
        "SELECT Id, IsDeleted, MasterRecordId, Phone, NumberOfEmployees FROM Account ORDER BY Name",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        if row["Id"] == json!(accs[0]) {
            assert_eq!(row["IsDeleted"], false);
            assert_eq!(row["Phone"], "555-0100");
            assert_eq!(row["NumberOfEmployees"], 12);
            assert_eq!(row["MasterRecordId"], Json::Null);
        } else {
            assert_eq!(row["IsDeleted"], true, "{row}");
            assert_eq!(row["MasterRecordId"], json!(accs[0]), "{row}");
        }
    }
    let r = a
        .query(&format!(
            "SELECT Id FROM Opportunity WHERE AccountId = '{}'",
            accs[0]
        ))
        .await;
    assert_eq!(r.body["totalSize"], 2, "{}", r.text);
    // A merge with a deleted record fails as a whole, per request.
    let body = format!(
        "<merge><request><masterRecord><type>Account</type><Id>{}</Id></masterRecord><recordToMergeIds>{}</recordToMergeIds></request></merge>",
        accs[0], accs[1]
    );
    let (status, xml) = soap(&org, Some(&a.token), &body).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<statusCode>ENTITY_IS_DELETED</statusCode>"),
        "{xml}"
    );
    assert!(xml.contains("<success>false</success>"));
    // Merged losers can be undeleted; their opportunities stay with the master.
    let (_, xml) = soap(&org, Some(&a.token), &undelete_body(&[&accs[1]])).await;
    assert!(xml.contains("<success>true</success>"), "{xml}");
    let r = a
        .query(&format!(
            "SELECT Id FROM Opportunity WHERE AccountId = '{}'",
            accs[1]
        ))
        .await;
    assert_eq!(r.body["totalSize"], 0);
    assert_eq!(org.calls("merge"), 2);
}

#[tokio::test]
async fn purge_and_hard_delete_empty_the_recycle_bin_but_not_get_deleted() {
    let org = org("A").await;
    let a = api(&org).await;
    let ids = seed(&org, opportunities("P", 3));
    for id in &ids[..2] {
        assert_eq!(
            a.delete(&format!("sobjects/Opportunity/{id}")).await.status,
            204
        );
    }
    // Nothing deleted more than an hour ago: nothing purged.
    let r = control(
        &org,
        "recycle_bin/purge",
        Some(json!({"older_than_s": 3600})),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["purged"]),
        (200, &json!(0)),
        "{}",
        r.text
    );
    org.set_clock_offset_ms(120_000);
    let r = control(&org, "recycle_bin/purge", Some(json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["purged"], 2);
    let r = query_all(&a, "SELECT Id FROM Opportunity WHERE IsDeleted = true").await;
    assert_eq!(r.body["totalSize"], 0, "{}", r.text);
    let (_, xml) = soap(&org, Some(&a.token), &undelete_body(&[&ids[0]])).await;
    assert!(
        xml.contains("<statusCode>UNDELETE_FAILED</statusCode>"),
        "{xml}"
    );
    let now = chrono::Utc::now() + chrono::Duration::minutes(2);
    let start = iso(now - chrono::Duration::hours(1));
    let end = iso(now + chrono::Duration::minutes(5));
    let r = replication(&a, "deleted", &start, &end).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["deletedRecords"].as_array().map(Vec::len), Some(2));
    // earliestDateAvailable is the purge point, on its minute.
    let earliest = r.body["earliestDateAvailable"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(earliest.ends_with(":00.000+0000"), "{earliest}");
    assert!(
        earliest > start.replace("+00:00", ".000+0000"),
        "{earliest} vs {start}"
    );
    // The control API moves the window's start: a hole in the delete log.
    let later = iso(now + chrono::Duration::minutes(1));
    let r = control(
        &org,
        "replication",
        Some(json!({"earliest_available": later, "object": "Opportunity"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = replication(&a, "deleted", &start, &end).await;
    assert!(r.body["earliestDateAvailable"].as_str().unwrap_or("") > earliest.as_str());
    let r = control(
        &org,
        "replication",
        Some(json!({"earliest_available": "soon"})),
    )
    .await;
    assert_eq!(r.status, 400);
    // A hard delete: gone from queryAll at once, still in getDeleted, a second delete fails.
    let r = control(&org, "hard_delete", Some(json!({"ids": [ids[2]]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"][0]["success"], true);
    assert_eq!(
        query_all(&a, "SELECT Id FROM Opportunity").await.body["totalSize"],
        0
    );
    // getDeleted covers whole minutes: the hard delete shows once its minute is over.
    org.set_clock_offset_ms(240_000);
    let r = replication(&a, "deleted", &start, &end).await;
    assert_eq!(r.body["deletedRecords"].as_array().map(Vec::len), Some(3));
    let r = control(&org, "hard_delete", Some(json!({"ids": [ids[2]]}))).await;
    assert_eq!(
        r.body["results"][0]["errors"][0]["statusCode"],
        "ENTITY_IS_DELETED"
    );
    let r = control(&org, "recycle_bin/purge", Some(json!({"older_than_s": -1}))).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn get_deleted_and_get_updated_ignore_seconds() {
    let org = org("A").await;
    let a = api(&org).await;
    seed(&org, opportunities("S", 1));
    org.set_clock_offset_ms(120_000);
    let now = chrono::Utc::now();
    let minute = now.format("%Y-%m-%dT%H:%M").to_string();
    // Two dates in the same minute: start does not precede end.
    let r = replication(
        &a,
        "updated",
        &format!("{minute}:05+00:00"),
        &format!("{minute}:55+00:00"),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "INVALID_REPLICATION_DATE"),
        "{}",
        r.text
    );
    let r = replication(
        &a,
        "deleted",
        &format!("{minute}:05+00:00"),
        &format!("{minute}:55+00:00"),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "INVALID_REPLICATION_DATE")
    );
    let start = iso(now - chrono::Duration::hours(1));
    let r = replication(
        &a,
        "updated",
        &start,
        &iso(now + chrono::Duration::hours(1)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let covered = r.body["latestDateCovered"].as_str().unwrap_or("");
    assert!(covered.ends_with(":00.000+0000"), "{covered}");
    assert_eq!(r.body["ids"].as_array().map(Vec::len), Some(1));
}
