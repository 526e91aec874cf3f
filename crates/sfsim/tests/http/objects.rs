//! Objects beyond Account and Opportunity: custom objects added through `/__sim/schema`.

use serde_json::json;

use crate::helpers::{api, control, org};

#[tokio::test]
async fn a_custom_object_added_by_the_control_api_supports_crud() {
    let org = org("A").await;
    let a = api(&org).await;
    let r = control(
        &org,
        "schema",
        Some(json!({"object": "BigTable__c", "label": "Big Table", "fields": [
            {"name": "Ext_Id__c", "type": "string", "length": 40, "externalId": true, "unique": true},
            {"name": "Score__c", "type": "double"},
            {"name": "Account__c", "type": "reference", "referenceTo": "Account"},
        ]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["keyPrefix"], json!("a00"));
    let again = control(&org, "schema", Some(json!({"object": "BigTable__c"}))).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.error_code(), "DUPLICATE_DEVELOPER_NAME");

    let d = a.get("sobjects/BigTable__c/describe").await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["custom"], json!(true));
    assert_eq!(d.body["keyPrefix"], json!("a00"));
    let g = a.get("sobjects").await;
    assert!(
        g.body["sobjects"]
            .as_array()
            .expect("sobjects")
            .iter()
            .any(|o| o["name"] == json!("BigTable__c") && o["custom"] == json!(true))
    );

    let acc = a.post("sobjects/Account", &json!({"Name": "Parent"})).await;
    let acc_id = acc.body["id"].as_str().expect("account id").to_string();
    let c = a
        .post(
            "sobjects/BigTable__c",
            &json!({"Name": "Row 1", "Ext_Id__c": "R-1", "Score__c": 1.5, "Account__c": acc_id}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let id = c.body["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("a00"), "{id}");
    // No Name: the record is named by its id.
    let unnamed = a
        .post("sobjects/BigTable__c", &json!({"Ext_Id__c": "R-2"}))
        .await;
    assert_eq!(unnamed.status, 201, "{}", unnamed.text);
    let unnamed_id = unnamed.body["id"].as_str().expect("id").to_string();
    let got = a.get(&format!("sobjects/BigTable__c/{unnamed_id}")).await;
    assert_eq!(got.body["Name"], json!(unnamed_id));

    let q = a
        .query(
            "SELECT Id, Name, Score__c, Account__r.Name FROM BigTable__c WHERE Ext_Id__c = 'R-1'",
        )
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["records"][0]["Name"], json!("Row 1"));
    assert_eq!(q.body["records"][0]["Score__c"], json!(1.5));
    assert_eq!(q.body["records"][0]["Account__r"]["Name"], json!("Parent"));

    let up = a
        .patch(
            "sobjects/BigTable__c/Ext_Id__c/R-1",
            &json!({"Score__c": 2.5}),
        )
        .await;
    assert!(up.status == 200 || up.status == 204, "{}", up.text);
    let u = a
        .patch(
            &format!("sobjects/BigTable__c/{id}"),
            &json!({"Name": "Row one"}),
        )
        .await;
    assert_eq!(u.status, 204, "{}", u.text);
    let got = a.get(&format!("sobjects/BigTable__c/{id}")).await;
    assert_eq!(got.body["Name"], json!("Row one"));
    assert_eq!(got.body["Score__c"], json!(2.5));
    assert_eq!(got.body["OwnerId"], json!(org.integration_user_id));
    let del = a.delete(&format!("sobjects/BigTable__c/{id}")).await;
    assert_eq!(del.status, 204);
    let q = a.query("SELECT COUNT() FROM BigTable__c").await;
    assert_eq!(q.body["totalSize"], json!(1));

    // A reset removes custom objects with the records.
    control(&org, "reset", Some(json!({}))).await;
    assert_eq!(a.get("sobjects/BigTable__c/describe").await.status, 404);
}

#[tokio::test]
async fn contact_and_task_are_standard_objects_with_their_lookups() {
    let org = org("A").await;
    let a = api(&org).await;
    let acc = a.post("sobjects/Account", &json!({"Name": "Acme"})).await;
    let acc_id = acc.body["id"].as_str().expect("account").to_string();
    let c = a
        .post(
            "sobjects/Contact",
            &json!({"FirstName": "Ada", "LastName": "Lovelace", "AccountId": acc_id}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let contact_id = c.body["id"].as_str().expect("contact").to_string();
    assert!(contact_id.starts_with("003"), "{contact_id}");
    let missing = a
        .post("sobjects/Contact", &json!({"FirstName": "No"}))
        .await;
    assert_eq!(
        missing.body[0]["errorCode"],
        json!("REQUIRED_FIELD_MISSING")
    );
    let t = a
        .post(
            "sobjects/Task",
            &json!({"Subject": "Call", "WhoId": contact_id, "WhatId": acc_id, "ActivityDate": "2026-12-01"}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text);
    let task_id = t.body["id"].as_str().expect("task").to_string();
    assert!(task_id.starts_with("00T"), "{task_id}");
    let q = a
        .query(&format!(
            "SELECT Subject, Status, Priority, IsClosed, Who.Name, What.Name FROM Task WHERE Id = '{task_id}'"
        ))
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
    let row = &q.body["records"][0];
    assert_eq!(row["Status"], json!("Not Started"));
    assert_eq!(row["Priority"], json!("Normal"));
    assert_eq!(row["IsClosed"], json!(false));
    assert_eq!(row["Who"]["Name"], json!("Ada Lovelace"));
    assert_eq!(row["What"]["Name"], json!("Acme"));
    let done = a
        .patch(
            &format!("sobjects/Task/{task_id}"),
            &json!({"Status": "Completed"}),
        )
        .await;
    assert_eq!(done.status, 204, "{}", done.text);
    let got = a.get(&format!("sobjects/Task/{task_id}")).await;
    assert_eq!(got.body["IsClosed"], json!(true));
    // The lookup is checked: a Task's WhoId must be a Contact.
    let wrong = a
        .post("sobjects/Task", &json!({"Subject": "x", "WhoId": acc_id}))
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    let q = a.query("SELECT Name, Account.Name FROM Contact").await;
    assert_eq!(q.body["records"][0]["Account"]["Name"], json!("Acme"));
    // Account.LastActivityDate exists (read-only).
    let d = a.get("sobjects/Account/describe").await;
    let lad = d.body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == json!("LastActivityDate"))
        .cloned()
        .expect("LastActivityDate");
    assert_eq!(lad["type"], json!("date"));
    assert_eq!(lad["updateable"], json!(false));
    let q = a.query("SELECT Id, LastActivityDate FROM Account").await;
    assert_eq!(q.status, 200, "{}", q.text);
    let rels = d.body["childRelationships"].to_string();
    assert!(
        rels.contains("\"Contacts\"")
            && rels.contains("\"Opportunities\"")
            && rels.contains("\"Tasks\""),
        "{rels}"
    );
}
