//! Secrets never reach logs, errors or Debug output.

use std::io::Write;
use std::sync::{Arc, Mutex};

use orgsync::config::AuthMode;
use secrecy::SecretString;

use crate::helpers::{CLIENT_SECRET, client, private_key_pem, settings, start};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_logs_errors_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let org = start("A").await;
    let key = private_key_pem();
    let key_body: String = key.lines().nth(2).unwrap_or_default().to_string();
    let mut shown = String::new();
    for auth in [
        AuthMode::Password,
        AuthMode::OauthPassword,
        AuthMode::Jwt,
        AuthMode::ClientCredentials,
    ] {
        let s = settings(&org, auth);
        let c = client(&s);
        c.describe("Opportunity").await.unwrap();
        shown.push_str(&format!("{s:?} {c:?}"));
        // A failed login's error, too.
        let mut wrong = s.clone();
        wrong.password = Some(SecretString::from("Wr0ngPassw0rd"));
        wrong.client_secret = Some(SecretString::from("Wr0ngSecret"));
        if let Err(e) = client(&wrong).login().await {
            shown.push_str(&format!("{e} {e:?}"));
        }
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("logged in"), "logging was captured");
    for text in [&logs, &shown] {
        for secret in [
            CLIENT_SECRET,
            "passwordtoken",
            "Wr0ngPassw0rd",
            "Wr0ngSecret",
            key_body.as_str(),
            "Bearer ",
            "access_token",
        ] {
            assert!(!text.contains(secret), "{secret:?} leaked");
        }
    }
}
