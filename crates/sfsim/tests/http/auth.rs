//! SOAP login, the OAuth grants, and session checks.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sfsim::server::state::lock;
use sfsim::{TEST_JWT_PRIVATE_KEY_PEM, TEST_JWT_PUBLIC_KEY_PEM};

use crate::helpers::{Reply, api, control, org};

fn soap_envelope(user: &str, password: &str) -> String {
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Body><urn:login><urn:username>{user}</urn:username><urn:password>{password}</urn:password></urn:login></soapenv:Body></soapenv:Envelope>"#
    )
}

async fn soap(base: &str, body: String) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}/services/Soap/u/62.0"))
        .header("content-type", "text/xml")
        .header("soapaction", "login")
        .body(body)
        .send()
        .await
        .expect("soap call");
    let status = r.status().as_u16();
    (status, r.text().await.expect("text"))
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map(|i| i + open.len()).unwrap_or(0);
    let end = text[start..]
        .find(close)
        .map(|i| start + i)
        .unwrap_or(start);
    &text[start..end]
}

#[tokio::test]
async fn soap_login_returns_a_working_session() {
    let org = org("A").await;
    let (status, xml) = soap(
        &org.base_url,
        soap_envelope("Integration@A.sim", "passwordtoken"),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let server_url = between(&xml, "<serverUrl>", "</serverUrl>");
    assert_eq!(
        server_url,
        format!(
            "{}/services/Soap/u/62.0/{}",
            org.base_url,
            &org.org_id[..15]
        )
    );
    assert_eq!(
        between(&xml, "<userId>", "</userId>"),
        org.integration_user_id
    );
    assert_eq!(
        between(&xml, "<organizationId>", "</organizationId>"),
        org.org_id
    );
    assert_eq!(
        between(&xml, "<sessionSecondsValid>", "</sessionSecondsValid>"),
        "7200"
    );
    let sid = between(&xml, "<sessionId>", "</sessionId>");
    assert!(sid.starts_with(&format!("{}!", org.org_id)));
    let r = reqwest::Client::new()
        .get(format!("{}/services/data/v62.0/limits", org.base_url))
        .bearer_auth(sid)
        .send()
        .await
        .expect("limits");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(org.calls("login"), 1);
}

#[tokio::test]
async fn soap_login_failures_are_faults() {
    let org = org("A").await;
    let (status, xml) = soap(
        &org.base_url,
        soap_envelope("integration@a.sim", "password"),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        xml.contains("<faultcode>sf:INVALID_LOGIN</faultcode>"),
        "{xml}"
    );
    assert!(xml.contains("<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring>"));
    assert!(xml.contains(r#"xmlns:sf="urn:fault.partner.soap.sforce.com""#));
    let (status, xml) = soap(
        &org.base_url,
        soap_envelope("nobody@a.sim", "passwordtoken"),
    )
    .await;
    assert_eq!(status, 500);
    assert!(xml.contains("INVALID_LOGIN"));
    for bad in [
        "<not-closed>",
        "",
        "plain text",
        "<soapenv:Envelope xmlns:soapenv=\"x\"><soapenv:Body><logout/></soapenv:Body></soapenv:Envelope>",
    ] {
        let (status, xml) = soap(&org.base_url, bad.to_string()).await;
        assert_eq!(status, 500, "{bad}");
        assert!(
            xml.contains("<soapenv:Fault>") && xml.contains("<faultstring>"),
            "{xml}"
        );
    }
    let (status, _) = soap(&org.base_url, "\u{0}\u{ffff}<<<".into()).await;
    assert_eq!(status, 500);
}

async fn token(base: &str, form: &[(&str, &str)]) -> Reply {
    Reply::from(
        reqwest::Client::new()
            .post(format!("{base}/services/oauth2/token"))
            .form(form)
            .send()
            .await
            .expect("token"),
    )
    .await
}

#[tokio::test]
async fn password_grant_and_refresh() {
    let org = org("A").await;
    let base = &org.base_url;
    let form = [
        ("grant_type", "password"),
        ("client_id", "sfsim-client"),
        ("client_secret", "sfsim-secret"),
        ("username", "human@a.sim"),
        ("password", "passwordtoken"),
    ];
    let r = token(base, &form).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = &r.body;
    assert_eq!(b["instance_url"], json!(base));
    assert_eq!(b["token_type"], json!("Bearer"));
    assert_eq!(
        b["id"],
        json!(format!("{base}/id/{}/{}", org.org_id, org.human_user_id))
    );
    let issued = b["issued_at"].as_str().expect("issued_at is a string");
    assert!(issued.parse::<i64>().is_ok());
    assert!(b["signature"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        b.get("refresh_token").is_none(),
        "no refresh token without the scope"
    );

    let mut with_scope = form.to_vec();
    with_scope.push(("scope", "api refresh_token"));
    let r = token(base, &with_scope).await;
    let refresh = r.body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();
    let r = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "sfsim-client"),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["id"]
            .as_str()
            .is_some_and(|id| id.ends_with(&org.human_user_id))
    );
    // the token also comes from /__sim/users
    let users = control(&org, "users", None).await;
    assert_eq!(users.body["users"][1]["refresh_token"], json!(refresh));
    let r = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "sfsim-client"),
            ("refresh_token", "nope"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], json!("invalid_grant"));
}

#[tokio::test]
async fn oauth_errors_have_salesforce_shapes() {
    let org = org("A").await;
    let base = &org.base_url;
    let mut form = vec![
        ("grant_type", "password"),
        ("client_id", "sfsim-client"),
        ("client_secret", "sfsim-secret"),
        ("username", "integration@a.sim"),
        ("password", "wrongtoken"),
    ];
    let r = token(base, &form).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "invalid_grant", "error_description": "authentication failure"})
    );
    form[4] = ("password", "passwordtoken");
    form[1] = ("client_id", "other");
    let r = token(base, &form).await;
    assert_eq!(
        r.body,
        json!({"error": "invalid_client_id", "error_description": "client identifier invalid"})
    );
    form[1] = ("client_id", "sfsim-client");
    form[2] = ("client_secret", "bad");
    let r = token(base, &form).await;
    assert_eq!(r.body["error"], json!("invalid_client"));
    let r = token(base, &[("grant_type", "authorization_code")]).await;
    assert_eq!(r.body["error"], json!("unsupported_grant_type"));
    let r = token(base, &[]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn client_credentials_runs_as_the_integration_user() {
    let org = org("A").await;
    let r = token(
        &org.base_url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "sfsim-client"),
            ("client_secret", "sfsim-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["id"]
            .as_str()
            .is_some_and(|id| id.ends_with(&org.integration_user_id))
    );
    // client id and secret in HTTP Basic
    let r = Reply::from(
        reqwest::Client::new()
            .post(format!("{}/services/oauth2/token", org.base_url))
            .basic_auth("sfsim-client", Some("sfsim-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = Reply::from(
        reqwest::Client::new()
            .post(format!("{}/services/oauth2/token", org.base_url))
            .basic_auth("sfsim-client", Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(r.status, 400);
}

fn jwt(claims: serde_json::Value, key_pem: &str) -> String {
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("signed")
}

#[tokio::test]
async fn jwt_bearer_grant() {
    let org = org("A").await;
    let now = chrono::Utc::now().timestamp();
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let claims = |aud: &str, iss: &str, sub: &str, exp: i64| json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp});
    let with_slash = format!("{}/", org.base_url);
    for aud in [
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        org.base_url.as_str(),
        with_slash.as_str(),
    ] {
        let a = jwt(
            claims(aud, "sfsim-client", "human@a.sim", now + 180),
            TEST_JWT_PRIVATE_KEY_PEM,
        );
        let r = token(&org.base_url, &[("grant_type", grant), ("assertion", &a)]).await;
        assert_eq!(r.status, 200, "{aud}: {}", r.text);
        assert!(
            r.body["id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&org.human_user_id))
        );
        assert!(r.body.get("refresh_token").is_none());
    }
    let expect = |r: &Reply, error: &str, description: &str| {
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.body["error"], json!(error), "{}", r.text);
        assert_eq!(
            r.body["error_description"],
            json!(description),
            "{}",
            r.text
        );
    };
    let expired = jwt(
        claims(
            "https://login.salesforce.com",
            "sfsim-client",
            "human@a.sim",
            now - 3600,
        ),
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    expect(
        &token(
            &org.base_url,
            &[("grant_type", grant), ("assertion", &expired)],
        )
        .await,
        "invalid_grant",
        "expired authorization code",
    );
    let wrong_iss = jwt(
        claims(
            "https://login.salesforce.com",
            "other",
            "human@a.sim",
            now + 180,
        ),
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    expect(
        &token(
            &org.base_url,
            &[("grant_type", grant), ("assertion", &wrong_iss)],
        )
        .await,
        "invalid_client_id",
        "client identifier invalid",
    );
    let wrong_aud = jwt(
        claims(
            "https://evil.example",
            "sfsim-client",
            "human@a.sim",
            now + 180,
        ),
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    expect(
        &token(
            &org.base_url,
            &[("grant_type", grant), ("assertion", &wrong_aud)],
        )
        .await,
        "invalid_grant",
        "audience is invalid",
    );
    let nobody = jwt(
        claims(
            "https://login.salesforce.com",
            "sfsim-client",
            "nobody@a.sim",
            now + 180,
        ),
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    let r = token(
        &org.base_url,
        &[("grant_type", grant), ("assertion", &nobody)],
    )
    .await;
    assert_eq!(r.body["error"], json!("invalid_grant"));
    let r = token(
        &org.base_url,
        &[("grant_type", grant), ("assertion", "not.a.jwt")],
    )
    .await;
    assert_eq!(r.body["error"], json!("invalid_grant"));
    // a token whose signature does not verify: flip the last signature character
    let good = jwt(
        claims(
            "https://login.salesforce.com",
            "sfsim-client",
            "human@a.sim",
            now + 180,
        ),
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    let mut forged = good.clone();
    let last = forged.pop().unwrap_or('A');
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let r = token(
        &org.base_url,
        &[("grant_type", grant), ("assertion", &forged)],
    )
    .await;
    assert_eq!(r.body["error"], json!("invalid_grant"));
    assert!(TEST_JWT_PUBLIC_KEY_PEM.contains("PUBLIC KEY"));
}

#[tokio::test]
async fn invalid_and_expired_sessions_get_401() {
    let org = org("A").await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/services/data/v62.0/query?q=SELECT+Id+FROM+User",
        org.base_url
    );
    let expected =
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
    let r = Reply::from(client.get(&url).send().await.expect("call")).await;
    assert_eq!((r.status, &r.body), (401, &expected));
    let r = Reply::from(
        client
            .get(&url)
            .bearer_auth("00Dxx!garbage")
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!((r.status, &r.body), (401, &expected));

    let a = api(&org).await;
    assert_eq!(a.query("SELECT Id FROM User").await.status, 200);
    let r = control(&org, "faults", Some(json!({"expire_sessions_now": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = a.query("SELECT Id FROM User").await;
    assert_eq!((r.status, &r.body), (401, &expected));

    // a zero lifetime expires every session, the new ones included
    let a = api(&org).await;
    control(&org, "faults", Some(json!({"session_ttl_secs": 0}))).await;
    assert_eq!(a.query("SELECT Id FROM User").await.status, 401);
    assert!(lock(&org.state().sessions).is_empty());
}
