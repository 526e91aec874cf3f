//! SOAP `undelete` through the client (issue 13): records restored from the recycle bin, one
//! result per id in order, `UNDELETE_FAILED` for a record not in it, 200 ids a call, and a
//! session that expired renewed once as for REST calls, with either login.

use orgsync::config::AuthMode;
use orgsync::salesforce::{Cond, Soql};
use orgsync::sync::OrgPort;

use crate::helpers::{calls, client, expire_sessions, opportunity, settings, start};

#[tokio::test]
async fn deleted_records_are_restored_in_order_with_per_record_failures() {
    for auth in [AuthMode::Password, AuthMode::OauthPassword] {
        let org = start("A").await;
        let c = client(&settings(&org, auth));
        let records: Vec<_> = (0..250).map(|i| opportunity(&format!("U {i}"))).collect();
        let ids: Vec<String> = c
            .create("Opportunity", &records)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap().id)
            .collect();
        c.delete(&ids[..240]).await.unwrap();
        expire_sessions(&org).await;
        let before = calls(&org, "undelete").await;
        // 240 deleted and 10 live ones: the live ones are not in the recycle bin.
        let results = c.undelete(&ids).await.unwrap();
        // 200 ids a call; the first was refused once for the expired session and repeated
        // after the re-login.
        assert_eq!(calls(&org, "undelete").await - before, 3, "{auth:?}");
        assert_eq!(results.len(), 250);
        for (i, r) in results.iter().enumerate() {
            if i < 240 {
                assert_eq!(
                    r.as_ref().map(|s| s.id.as_str()),
                    Ok(ids[i].as_str()),
                    "{i}"
                );
            } else {
                let failure = r.as_ref().unwrap_err();
                assert_eq!(failure.code(), "UNDELETE_FAILED", "{i}");
            }
        }
        let soql = Soql::select(["Id"])
            .from("Opportunity")
            .where_(Cond::ids_in(&ids[..240]))
            .build()
            .unwrap();
        assert_eq!(c.query_collect(&soql).await.unwrap().len(), 240, "{auth:?}");
        // Through the engine's port: one outcome per id.
        let again = OrgPort::undelete(&c, &ids[..1]).await.unwrap();
        assert_eq!(again[0].as_ref().unwrap_err().code, "UNDELETE_FAILED");
    }
}
