//! Starting simulated orgs, building org settings for each auth mode, and the sfsim control
//! API (`/__sim/...`).

use secrecy::SecretString;
use serde_json::Value;

use orgsync::config::{AuthMode, Credentials, OrgSettings};
use orgsync::salesforce::{Client, ClientOptions};

pub const CLIENT_ID: &str = "sfsim-client";
pub const CLIENT_SECRET: &str = "sfsim-secret";

/// A running simulated org (or a mock server's address).
pub struct Org {
    /// Held so the server lives as long as the test's `Org` (dropping it stops the server).
    _sim: Option<sfsim::SimOrg>,
    pub base_url: String,
    pub name: String,
}

impl Org {
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// An org that is some other server at `base_url` (a mock).
    pub fn mock(base_url: &str) -> Org {
        Org {
            _sim: None,
            base_url: base_url.to_string(),
            name: "a".to_string(),
        }
    }
}

/// Starts org `name` ("A", "B", ...) on a free port.
pub async fn start(name: &str) -> Org {
    let sim = sfsim::start_org(
        sfsim::OrgConfig {
            name: name.to_string(),
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("sfsim starts");
    Org {
        base_url: sim.base_url.clone(),
        _sim: Some(sim),
        name: name.to_ascii_lowercase(),
    }
}

pub fn private_key_pem() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/sfsim/testdata/jwt-private.pem"
    ))
    .expect("test key")
}

/// Settings for logging in to `org` as its integration user with `auth`.
pub fn settings(org: &Org, auth: AuthMode) -> OrgSettings {
    let name = &org.name;
    let password = || SecretString::from("password");
    let token = || Some(SecretString::from("token"));
    let client_id = || CLIENT_ID.to_string();
    let client_secret = || SecretString::from(CLIENT_SECRET);
    let credentials = match auth {
        AuthMode::Password => Credentials::Password {
            password: password(),
            security_token: token(),
        },
        AuthMode::OauthPassword => Credentials::OAuthPassword {
            client_id: client_id(),
            client_secret: client_secret(),
            password: password(),
            security_token: token(),
        },
        AuthMode::Jwt => Credentials::Jwt {
            client_id: client_id(),
            private_key: SecretString::from(private_key_pem()),
        },
        AuthMode::ClientCredentials => Credentials::ClientCredentials {
            client_id: client_id(),
            client_secret: client_secret(),
        },
        // The refresh token comes from the org (`refresh_token_for`); set it with `set_secret`.
        AuthMode::RefreshToken => Credentials::RefreshToken {
            client_id: client_id(),
            client_secret: Some(client_secret()),
            refresh_token: SecretString::from(""),
        },
    };
    OrgSettings {
        name: name.clone(),
        login_url: org.url().trim_end_matches('/').to_string(),
        username: format!("integration@{name}.sim"),
        credentials,
        integration_user_id: None,
        account_id: None,
        api_version: "62.0".to_string(),
        api_budget_percent: 100,
        outbound_secret: None,
    }
}

/// Replaces the secret `field` (`password`, `client_secret`, `refresh_token`) or the
/// `client_id` of `s`'s credentials, when its auth mode has it; else leaves them as they are.
pub fn set_secret(s: &mut OrgSettings, field: &str, value: &str) {
    let new = || SecretString::from(value.to_string());
    match (&mut s.credentials, field) {
        (
            Credentials::Password { password, .. } | Credentials::OAuthPassword { password, .. },
            "password",
        ) => *password = new(),
        (
            Credentials::OAuthPassword { client_secret, .. }
            | Credentials::ClientCredentials { client_secret, .. },
            "client_secret",
        ) => *client_secret = new(),
        (Credentials::RefreshToken { client_secret, .. }, "client_secret") => {
            *client_secret = Some(new())
        }
        (Credentials::RefreshToken { refresh_token, .. }, "refresh_token") => {
            *refresh_token = new()
        }
        (
            Credentials::OAuthPassword { client_id, .. }
            | Credentials::Jwt { client_id, .. }
            | Credentials::ClientCredentials { client_id, .. }
            | Credentials::RefreshToken { client_id, .. },
            "client_id",
        ) => *client_id = value.to_string(),
        _ => {}
    }
}

pub fn client(settings: &OrgSettings) -> Client {
    Client::with_options(settings, ClientOptions::fast()).expect("client")
}

pub async fn sim_get(org: &Org, path: &str) -> Value {
    let reply = reqwest::get(format!("{}/__sim/{path}", org.url()))
        .await
        .expect("sim control call");
    assert!(
        reply.status().is_success(),
        "GET /__sim/{path}: {}",
        reply.status()
    );
    reply.json().await.expect("sim json")
}

pub async fn sim_post(org: &Org, path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("{}/__sim/{path}", org.url()))
        .json(&body)
        .send()
        .await
        .expect("sim control call");
    let status = reply.status();
    let text = reply.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST /__sim/{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Calls of `kind` in the org's stats.
pub async fn calls(org: &Org, kind: &str) -> u64 {
    sim_get(org, "stats").await["calls"][kind]
        .as_u64()
        .unwrap_or(0)
}

/// An Opportunity body that passes the org's required-field rules.
pub fn opportunity(name: &str) -> serde_json::Map<String, Value> {
    let Value::Object(map) = serde_json::json!({
        "Name": name,
        "StageName": "Prospecting",
        "CloseDate": "2025-06-30",
        "Amount": 10000,
    }) else {
        unreachable!()
    };
    map
}

/// A refresh token for `username`, from the password grant with the `refresh_token` scope.
pub async fn refresh_token_for(org: &Org, username: &str) -> String {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", org.url()))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", username),
            ("password", "passwordtoken"),
            ("scope", "api refresh_token"),
        ])
        .send()
        .await
        .expect("token call")
        .json()
        .await
        .expect("token json");
    reply["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token in {reply}"))
        .to_string()
}

/// Ends every session of the org.
pub async fn expire_sessions(org: &Org) {
    sim_post(
        org,
        "faults",
        serde_json::json!({"expire_sessions_now": true}),
    )
    .await;
}

/// Waits until the org's request log holds a reply with `status` (polls the control API; a
/// bound turns a hang into a failure).
pub async fn wait_for_status(org: &Org, status: u64) {
    for _ in 0..2000 {
        let log = sim_get(org, "requests?limit=1000").await;
        if log
            .as_array()
            .is_some_and(|entries| entries.iter().any(|e| e["status"].as_u64() == Some(status)))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the org never answered {status}");
}
