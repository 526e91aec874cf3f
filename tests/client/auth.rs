//! Every auth mode logs in; bad credentials give a clear error naming the org; an expired
//! session is renewed without the caller noticing.

use orgsync::config::AuthMode;
use orgsync::salesforce::{CallKind, ErrorClass};

use crate::helpers::{self, client, settings, start};

#[tokio::test]
async fn every_auth_mode_logs_in_and_learns_user_and_org() {
    let org = start("A").await;
    for auth in [
        AuthMode::Password,
        AuthMode::OauthPassword,
        AuthMode::Jwt,
        AuthMode::ClientCredentials,
    ] {
        let c = client(&settings(&org, auth));
        let me = c.login().await.unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        let user = me.user_id.unwrap_or_default();
        assert!(user.starts_with("005"), "{auth:?}: user {user:?}");
        assert!(me.org_id.unwrap_or_default().starts_with("00D"), "{auth:?}");
        // And a real call works with the session.
        let d = c.describe("Opportunity").await.unwrap();
        assert!(d.field("Name").is_some());
        assert_eq!(c.calls().get(CallKind::Login), 1);
    }
}

#[tokio::test]
async fn refresh_token_mode_logs_in() {
    let org = start("A").await;
    let token = helpers::refresh_token_for(&org, "integration@a.sim").await;
    let mut s = settings(&org, AuthMode::RefreshToken);
    helpers::set_secret(&mut s, "refresh_token", &token);
    let c = client(&s);
    let me = c.login().await.unwrap();
    assert!(me.user_id.unwrap_or_default().starts_with("005"));
}

#[tokio::test]
async fn wrong_credentials_name_the_org() {
    let org = start("B").await;

    let mut s = settings(&org, AuthMode::Password);
    helpers::set_secret(&mut s, "password", "wrong");
    let err = client(&s).login().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth);
    assert_eq!(err.code, "INVALID_LOGIN");
    let text = err.to_string();
    assert!(text.starts_with("org b:"), "{text}");
    assert!(text.contains("integration@b.sim"), "{text}");
    assert!(!text.contains("wrong"), "{text}");

    let mut s = settings(&org, AuthMode::OauthPassword);
    helpers::set_secret(&mut s, "client_secret", "not-the-secret");
    let c = client(&s);
    let err = c.login().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth);
    let text = err.to_string();
    assert!(text.starts_with("org b:"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
    // An auth failure is not retried.
    assert_eq!(c.calls().get(CallKind::Login), 1);

    let mut s = settings(&org, AuthMode::ClientCredentials);
    helpers::set_secret(&mut s, "client_id", "nobody");
    let err = client(&s).login().await.unwrap_err();
    assert!(err.to_string().starts_with("org b:"), "{err}");
    assert_eq!(err.class, ErrorClass::Auth);
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_invisibly() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::OauthPassword));
    c.describe("Opportunity").await.unwrap();
    assert_eq!(c.calls().get(CallKind::Login), 1);

    helpers::expire_sessions(&org).await;

    let d = c.describe("Account").await.expect("renewed transparently");
    assert_eq!(d.name, "Account");
    assert_eq!(c.calls().get(CallKind::Login), 2);
    assert_eq!(c.calls().get(CallKind::Describe), 3);
}

#[tokio::test]
async fn many_tasks_on_an_expired_session_log_in_once() {
    let org = start("A").await;
    let c = client(&settings(&org, AuthMode::Jwt));
    c.login().await.unwrap();
    helpers::expire_sessions(&org).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.describe("Opportunity").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("renewed");
    }
    assert_eq!(c.calls().get(CallKind::Login), 2);
}

#[tokio::test]
async fn an_unreachable_org_is_a_retryable_connection_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let org = helpers::Org::mock(&url);
    let c = client(&settings(&org, AuthMode::ClientCredentials));
    let err = c.describe("Opportunity").await.unwrap_err();
    assert_eq!(err.code, "CONNECTION_FAILED", "{err}");
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(
        text.starts_with("org a: CONNECTION_FAILED: error sending request: "),
        "{text}"
    );
    // Logins are retried like any transient failure, a bounded number of times.
    let attempts = orgsync::salesforce::ClientOptions::fast()
        .retry
        .max_attempts;
    assert_eq!(c.calls().get(CallKind::Login), u64::from(attempts));
}
