//! sObject Collections: chunking by 200, per-record results in order, per-record failures,
//! upsert and delete, and the OrgPort adapter the engine uses.

use orgsync::config::AuthMode;
use orgsync::salesforce::{CallKind, Cond, Soql};
use orgsync::sync::{FieldIn, OrgPort, QueryKind, RecordQuery};
use serde_json::json;

use crate::helpers::{calls, client, opportunity, settings, sim_post, start};

#[tokio::test]
async fn four_hundred_fifty_records_take_three_calls() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    let records: Vec<_> = (0..450).map(|i| opportunity(&format!("W {i}"))).collect();
    let before = calls(&org, "collections_create").await;
    let results = c.create("Opportunity", &records).await.unwrap();
    assert_eq!(results.len(), 450);
    assert_eq!(calls(&org, "collections_create").await - before, 3);
    assert_eq!(c.calls().get(CallKind::Create), 3);
    // Results are in input order: read the names back by id.
    let ids: Vec<String> = results
        .iter()
        .map(|r| r.as_ref().unwrap().id.clone())
        .collect();
    let soql = Soql::select(["Id", "Name"])
        .from("Opportunity")
        .where_(Cond::ids_in(&ids[440..450]))
        .build()
        .unwrap();
    let rows = c.query_collect(&soql).await.unwrap();
    for row in rows {
        let id = row["Id"].as_str().unwrap();
        let index = ids.iter().position(|i| i == id).unwrap();
        assert_eq!(row["Name"], json!(format!("W {index}")));
    }
}

#[tokio::test]
async fn a_rejected_record_is_a_per_record_failure() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    sim_post(&org, "faults", json!({"reject_name_marker": "REJECT"})).await;
    let records = vec![
        opportunity("fine 1"),
        opportunity("please REJECT me"),
        opportunity("fine 2"),
    ];
    let results = c.create("Opportunity", &records).await.unwrap();
    assert!(results[0].is_ok());
    let failure = results[1].clone().unwrap_err();
    assert_eq!(failure.code(), "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert!(!failure.is_retryable());
    assert!(results[2].is_ok());
    assert_eq!(c.calls().get(CallKind::Create), 1);
}

#[tokio::test]
async fn update_upsert_and_delete() {
    let org = start("A").await;
    sim_post(
        &org,
        "schema",
        json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string", "externalId": true, "unique": true}),
    )
    .await;
    let c = client(&settings(&org, AuthMode::Jwt));
    let mut first = opportunity("U1");
    first.insert("Ext_Id__c".into(), json!("X-1"));
    let created = c
        .upsert("Opportunity", "Ext_Id__c", &[first.clone()])
        .await
        .unwrap();
    let saved = created[0].clone().unwrap();
    assert!(saved.created);
    first.insert("Amount".into(), json!(20000));
    let again = c
        .upsert("Opportunity", "Ext_Id__c", &[first])
        .await
        .unwrap();
    assert_eq!(again[0].as_ref().unwrap().id, saved.id);
    assert!(!again[0].as_ref().unwrap().created);

    let mut fields = serde_json::Map::new();
    fields.insert("Description".into(), json!("updated"));
    let updated = c
        .update("Opportunity", &[(saved.id.clone(), fields)])
        .await
        .unwrap();
    assert_eq!(updated[0].as_ref().unwrap().id, saved.id);

    let deleted = c.delete(std::slice::from_ref(&saved.id)).await.unwrap();
    assert!(deleted[0].is_ok());
    let rows = c
        .query_collect(&format!(
            "SELECT Id FROM Opportunity WHERE Id = '{}'",
            saved.id
        ))
        .await
        .unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn the_org_port_queries_and_writes() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let records: Vec<_> = (0..5).map(|i| opportunity(&format!("Port {i}"))).collect();
    let outcomes = OrgPort::create(&c, "Opportunity", &records).await.unwrap();
    let ids: Vec<String> = outcomes
        .iter()
        .map(|o| o.as_ref().unwrap().id.clone())
        .collect();

    let changes = RecordQuery {
        object: "Opportunity".into(),
        fields: vec!["Name".into(), "Amount".into()],
        kind: QueryKind::Changes {
            since,
            exclude_modified_by: None,
            filter: Some("Amount > 5000".into()),
            with_deleted: false,
        },
    };
    let batch = OrgPort::query(&c, &changes).await.unwrap();
    assert_eq!(batch.records.len(), 5);
    assert!(batch.next.is_none());
    assert!(batch.records[0].get("SystemModstamp").is_some());

    // The integration user's own changes are left out.
    let me = c.user_id().await.unwrap();
    let mine = RecordQuery {
        kind: QueryKind::Changes {
            since,
            exclude_modified_by: Some(me),
            filter: None,
            with_deleted: false,
        },
        ..changes.clone()
    };
    assert!(OrgPort::query(&c, &mine).await.unwrap().records.is_empty());

    let lookup = RecordQuery {
        object: "Opportunity".into(),
        fields: vec!["Name".into()],
        kind: QueryKind::Lookup {
            any_of: vec![
                vec![FieldIn {
                    field: "Id".into(),
                    values: vec![json!(ids[0])],
                }],
                vec![FieldIn {
                    field: "Name".into(),
                    values: vec![json!("Port 3"), json!("nobody")],
                }],
            ],
        },
    };
    let found = OrgPort::query(&c, &lookup).await.unwrap();
    assert_eq!(found.records.len(), 2);

    // A by-id query longer than a URL allows is split and still finds everything.
    let mut many = ids.clone();
    many.extend((0..1500).map(|i| format!("0060000000{i:05}AAA")));
    let by_ids = RecordQuery {
        object: "Opportunity".into(),
        fields: vec!["Name".into()],
        kind: QueryKind::ByIds(many),
    };
    let found = OrgPort::query(&c, &by_ids).await.unwrap();
    assert_eq!(found.records.len(), 5);

    let mut fields = serde_json::Map::new();
    fields.insert("Amount".into(), json!(1));
    let out = OrgPort::update(&c, "Opportunity", &[(ids[0].clone(), fields)])
        .await
        .unwrap();
    assert!(out[0].is_ok());
    let bad = OrgPort::query(
        &c,
        &RecordQuery {
            object: "Opportunity".into(),
            fields: vec!["Nope__c".into()],
            kind: QueryKind::ByIds(vec![ids[0].clone()]),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.kind, orgsync::sync::ErrorKind::NeedsOperator);
    assert_eq!(bad.code, "INVALID_FIELD");
}

#[tokio::test]
async fn locked_records_are_retried_alone_then_reported_retryable() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    sim_post(&org, "faults", json!({"lock_error_rate": 1.0})).await;
    let records: Vec<_> = (0..3).map(|i| opportunity(&format!("L {i}"))).collect();
    let results = c.create("Opportunity", &records).await.unwrap();
    for r in &results {
        let failure = r.clone().unwrap_err();
        assert_eq!(failure.code(), "UNABLE_TO_LOCK_ROW");
        assert!(failure.is_retryable());
    }
    // One call, then `lock_retries` (2 in the fast policy) for the locked records only.
    assert_eq!(c.calls().get(CallKind::Create), 3);

    // Through the port, the per-record error is marked retryable.
    let out = OrgPort::create(&c, "Opportunity", &records[..1])
        .await
        .unwrap();
    let err = out[0].clone().unwrap_err();
    assert_eq!(err.class, orgsync::store::FailureClass::Transient);
    assert_eq!(err.code, "UNABLE_TO_LOCK_ROW");

    sim_post(&org, "faults", json!({"lock_error_rate": 0.0})).await;
    let results = c.create("Opportunity", &records).await.unwrap();
    assert!(results.iter().all(Result::is_ok));
}

#[tokio::test]
async fn query_all_sees_deleted_rows() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    let created = c
        .create("Opportunity", &[opportunity("Gone soon")])
        .await
        .unwrap();
    let id = created[0].clone().unwrap().id;
    c.delete(std::slice::from_ref(&id)).await.unwrap()[0]
        .clone()
        .unwrap();
    let soql = Soql::select(["Id", "IsDeleted"])
        .from("Opportunity")
        .where_(Cond::ids_in(std::slice::from_ref(&id)))
        .build()
        .unwrap();
    assert!(c.query_collect(&soql).await.unwrap().is_empty());
    let mut pager = c.query_all(soql);
    let page = pager.next_page().await.unwrap().unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0]["IsDeleted"], json!(true));
}
