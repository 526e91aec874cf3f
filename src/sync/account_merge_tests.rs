//! Deletes and parent accounts (issue 13). An Account merged away in the source (SOAP
//! `merge`: the loser deleted with `MasterRecordId`, its opportunities moved to the master):
//! its account link follows the master, so the target keeps its account and no new one is
//! created (both directions). A delete conflict kept by `keep_edit` restores the opportunity
//! with its own parent.

use super::*;
use crate::salesforce::{SoapLoginReply, parse_soap_login_reply, soap_login_envelope};
use secrecy::ExposeSecret;

/// Merges account `loser` into `master` in `sim`, as its human user (SOAP `merge`).
async fn merge_accounts(sim: &sfsim::SimOrg, master: &str, loser: &str) {
    let http = reqwest::Client::new();
    let url = format!(
        "{}/services/Soap/u/62.0",
        sim.base_url.trim_end_matches('/')
    );
    let login = http
        .post(&url)
        .header("Content-Type", "text/xml")
        .body(soap_login_envelope(
            &format!("human@{}.sim", sim.name.to_ascii_lowercase()),
            "passwordtoken",
        ))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("login reply");
    let Ok(SoapLoginReply::Ok { session_id, .. }) = parse_soap_login_reply(&login) else {
        panic!("login refused: {login}")
    };
    let envelope = format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">"#,
            "<soapenv:Header><SessionHeader><sessionId>{}</sessionId></SessionHeader></soapenv:Header>",
            "<soapenv:Body><merge><request><masterRecord><type>Account</type><Id>{}</Id></masterRecord>",
            "<recordToMergeIds>{}</recordToMergeIds></request></merge></soapenv:Body></soapenv:Envelope>"
        ),
        session_id.expose_secret(),
        master,
        loser
    );
    let reply = http
        .post(&url)
        .header("Content-Type", "text/xml")
        .body(envelope)
        .send()
        .await
        .expect("merge");
    let status = reply.status();
    let text = reply.text().await.expect("merge reply");
    assert!(
        status.is_success() && text.contains("<success>true</success>"),
        "merge: {status} {text}"
    );
}

async fn a_merged_away_account_hands_its_link_to_the_master(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(true);
    let accounts = w
        .create(
            src,
            "Account",
            vec![json!({"Name": "Acme Old"}), json!({"Name": "Acme"})],
        )
        .await;
    let (loser, master) = (accounts[0].clone(), accounts[1].clone());
    w.create(
        src,
        "Opportunity",
        vec![opportunity("Acme deal", Some(&loser))],
    )
    .await;
    let cfg = w.config(direction, sync_account());
    w.pass(&cfg, &m).await;
    let target_account = w.account_link(src, &loser).await.expect("linked");
    assert_eq!(w.accounts(tgt).await.len(), 1);

    // The master was never synced (no opportunity of its own); the merge moves the deal.
    merge_accounts(w.sim(src), &master, &loser).await;
    let before = w.call_count(tgt, "collections_create").await;
    let report = w.pass(&cfg, &m).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        w.account_link(src, &master).await.as_deref(),
        Some(target_account.as_str()),
        "the link follows the master"
    );
    assert_eq!(w.account_link(src, &loser).await, None);
    let accounts = w.accounts(tgt).await;
    assert_eq!(accounts.len(), 1, "no account created: {accounts:?}");
    assert_eq!(w.call_count(tgt, "collections_create").await, before);
    let opportunities = w.opportunities(tgt).await;
    assert_eq!(str_of(&opportunities[0], "AccountId"), target_account);

    // Both ways, the next cycle is quiet.
    let (ab, ba) = (
        w.config(Direction::AToB, sync_account()),
        w.config(Direction::BToA, sync_account()),
    );
    let cycle = run_cycle(
        &ab,
        &ba,
        &m,
        &w.integration[0],
        &w.integration[1],
        &w.store,
        &CancellationToken::new(),
    )
    .await;
    assert!(cycle.complete(), "{cycle:?}");
    assert_eq!(w.accounts(tgt).await.len(), 1);
    assert_eq!(
        w.accounts(src).await.len(),
        1,
        "the loser is gone, the master stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_merged_away_in_the_source_hands_its_link_to_the_master() {
    for direction in DIRECTIONS {
        a_merged_away_account_hands_its_link_to_the_master(direction).await;
    }
}

/// With syncAccount, a delete conflict kept by `keep_edit` restores the deleted opportunity
/// with the edit and its own parent (the parent pseudo-field is never written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_edit_restores_the_deleted_opportunity_with_its_parent() {
    let w = World::new().await;
    let m = mapping(true);
    let account = w
        .create(Org::A, "Account", vec![json!({"Name": "Acme"})])
        .await
        .remove(0);
    let a_id = w
        .create(
            Org::A,
            "Opportunity",
            vec![opportunity("Acme deal", Some(&account))],
        )
        .await
        .remove(0);
    let cfg = w.config(Direction::AToB, sync_account());
    w.pass(&cfg, &m).await;
    let b_id = str_of(&w.opportunities(Org::B).await[0], "Id").to_string();
    w.human(Org::A)
        .delete(std::slice::from_ref(&a_id))
        .await
        .expect("delete in A");
    let mut edit = Map::new();
    edit.insert("Amount".into(), json!(4242));
    w.human(Org::B)
        .update("Opportunity", &[(b_id, edit)])
        .await
        .expect("edit in B");
    let report = w.pass(&cfg, &m).await;
    assert_eq!(
        (report.delete_conflicts, report.failed),
        (1, 0),
        "{report:?}"
    );
    let restored = w
        .query(
            Org::A,
            "SELECT Id, Amount, AccountId FROM Opportunity WHERE Name = 'Acme deal'",
        )
        .await;
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0]["Amount"].as_f64(), Some(4242.0));
    assert_eq!(str_of(&restored[0], "AccountId"), account);
}
