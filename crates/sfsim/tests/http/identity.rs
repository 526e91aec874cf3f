//! The Identity Service (identity URL, UserInfo) and ending sessions (SOAP logout, OAuth
//! revoke).

use serde_json::json;

use crate::helpers::{Reply, V, api, control, org, token_for};

async fn get_with_token(url: &str, token: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Reply::from(req.send().await.expect("GET")).await
}

#[tokio::test]
async fn the_version_root_and_the_token_reply_name_the_identity_url() {
    let org = org("A").await;
    let api = api(&org).await;
    let expected = format!(
        "{}/id/{}/{}",
        org.base_url, org.org_id, org.integration_user_id
    );
    let root = api.get("").await;
    assert_eq!(root.status, 200, "{}", root.text);
    assert_eq!(root.body["identity"], json!(expected));
    let r = Reply::from(
        reqwest::Client::new()
            .post(format!("{}/services/oauth2/token", org.base_url))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "sfsim-client"),
                ("client_secret", "sfsim-secret"),
                ("username", org.integration_username.as_str()),
                ("password", "passwordtoken"),
            ])
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(r.body["id"], json!(expected));
}

#[tokio::test]
async fn the_identity_url_describes_the_user_and_org() {
    let org = org("A").await;
    let api = api(&org).await;
    let url = format!(
        "{}/id/{}/{}",
        org.base_url, org.org_id, org.integration_user_id
    );
    let r = get_with_token(&url, Some(&api.token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], json!(url));
    assert_eq!(r.body["user_id"], json!(org.integration_user_id));
    assert_eq!(r.body["organization_id"], json!(org.org_id));
    assert_eq!(r.body["username"], json!(org.integration_username));
    assert_eq!(r.body["display_name"], json!("Integration User"));
    assert_eq!(r.body["active"], json!(true));
    assert_eq!(
        r.body["urls"]["rest"],
        json!(format!("{}/services/data/v{{version}}/", org.base_url))
    );
    // The token as jsforce sends it: a query parameter, with format=json and a version.
    let q = Reply::from(
        reqwest::Client::new()
            .get(&url)
            .query(&[
                ("format", "json"),
                ("version", V),
                ("oauth_token", api.token.as_str()),
            ])
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(
        q.body["urls"]["query"],
        json!(format!("{}/services/data/v{V}/query/", org.base_url))
    );
    // Another user of the same org, and the 15-character ids.
    let human = format!(
        "{}/id/{}/{}",
        org.base_url,
        &org.org_id[..15],
        &org.human_user_id[..15]
    );
    let h = get_with_token(&human, Some(&api.token)).await;
    assert_eq!(h.body["user_id"], json!(org.human_user_id), "{}", h.text);
}

#[tokio::test]
async fn identity_errors_are_salesforces_codes() {
    let org = org("A").await;
    let api = api(&org).await;
    let url = format!(
        "{}/id/{}/{}",
        org.base_url, org.org_id, org.integration_user_id
    );
    let r = get_with_token(&url, None).await;
    assert_eq!((r.status, r.text.as_str()), (403, "Missing_OAuth_Token"));
    let r = get_with_token(&url, Some("00D!nope")).await;
    assert_eq!((r.status, r.text.as_str()), (403, "Bad_OAuth_Token"));
    let other_org = format!(
        "{}/id/00DB00000000001AAA/{}",
        org.base_url, org.integration_user_id
    );
    let r = get_with_token(&other_org, Some(&api.token)).await;
    assert_eq!((r.status, r.text.as_str()), (403, "Wrong_Org"));
    let no_user = format!("{}/id/{}/005000000000000AAA", org.base_url, org.org_id);
    let r = get_with_token(&no_user, Some(&api.token)).await;
    assert_eq!((r.status, r.text.as_str()), (404, "Bad_Id"));
}

#[tokio::test]
async fn userinfo_answers_for_the_callers_user() {
    let org = org("A").await;
    let token = token_for(&org, &org.human_username).await;
    let url = format!("{}/services/oauth2/userinfo", org.base_url);
    let r = get_with_token(&url, Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["sub"],
        json!(format!(
            "{}/id/{}/{}",
            org.base_url, org.org_id, org.human_user_id
        ))
    );
    assert_eq!(r.body["user_id"], json!(org.human_user_id));
    assert_eq!(r.body["organization_id"], json!(org.org_id));
    assert_eq!(r.body["preferred_username"], json!(org.human_username));
    assert_eq!(r.body["name"], json!("Human User"));
    assert!(r.body["urls"]["sobjects"].is_string(), "{}", r.text);
    let r = get_with_token(&url, Some("bad")).await;
    assert_eq!((r.status, r.text.as_str()), (403, "Bad_OAuth_Token"));
    let stats = control(&org, "stats", None).await;
    assert_eq!(stats.body["calls"]["userinfo"], json!(2), "{}", stats.text);
}

fn soap_logout(session: &str) -> String {
    format!(
        r#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>{session}</sessionId></SessionHeader></se:Header><se:Body><logout xmlns="urn:partner.soap.sforce.com"/></se:Body></se:Envelope>"#
    )
}

async fn soap(base: &str, body: String) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}/services/Soap/u/{V}"))
        .header("content-type", "text/xml")
        .header("soapaction", "\"\"")
        .body(body)
        .send()
        .await
        .expect("soap call");
    let status = r.status().as_u16();
    (status, r.text().await.expect("text"))
}

#[tokio::test]
async fn soap_logout_ends_the_session() {
    let org = org("A").await;
    let api = api(&org).await;
    let other = token_for(&org, &org.integration_username).await;
    assert_eq!(api.get("limits").await.status, 200);
    let (status, xml) = soap(&org.base_url, soap_logout(&api.token)).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<logoutResponse/>"), "{xml}");
    let r = api.get("limits").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "INVALID_SESSION_ID");
    // Only that session ended.
    let r = get_with_token(
        &format!("{}/services/data/v{V}/limits", org.base_url),
        Some(&other),
    )
    .await;
    assert_eq!(r.status, 200);
    // A second logout of the same session is a fault.
    let (status, xml) = soap(&org.base_url, soap_logout(&api.token)).await;
    assert_eq!(status, 500);
    assert!(
        xml.contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>"),
        "{xml}"
    );
    let stats = control(&org, "stats", None).await;
    assert_eq!(stats.body["calls"]["logout"], json!(2), "{}", stats.text);
}

async fn revoke(base: &str, token: &str) -> Reply {
    Reply::from(
        reqwest::Client::new()
            .post(format!("{base}/services/oauth2/revoke"))
            .form(&[("token", token)])
            .send()
            .await
            .expect("revoke"),
    )
    .await
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_session() {
    let org = org("A").await;
    let api = api(&org).await;
    let r = revoke(&org.base_url, &api.token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.text, "");
    let r = api.get("limits").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "INVALID_SESSION_ID");
    let r = revoke(&org.base_url, &api.token).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], json!("invalid_token"), "{}", r.text);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_it_and_its_users_sessions() {
    let org = org("A").await;
    let api = api(&org).await;
    let human = token_for(&org, &org.human_username).await;
    let refresh = org.users()[0].refresh_token.clone();
    let r = revoke(&org.base_url, &refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(api.get("limits").await.error_code(), "INVALID_SESSION_ID");
    let r = get_with_token(
        &format!("{}/services/data/v{V}/limits", org.base_url),
        Some(&human),
    )
    .await;
    assert_eq!(r.status, 200, "the other user's session stays");
    let grant = Reply::from(
        reqwest::Client::new()
            .post(format!("{}/services/oauth2/token", org.base_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "sfsim-client"),
                ("refresh_token", refresh.as_str()),
            ])
            .send()
            .await
            .expect("refresh"),
    )
    .await;
    assert_eq!(grant.status, 400, "{}", grant.text);
    assert_eq!(grant.body["error"], json!("invalid_grant"));
}
