//! Secrets never reach logs, errors or Debug output.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use orgsync::config::AuthMode;

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

/// Installs, once for the whole test binary, a global subscriber that keeps every log line.
/// Global rather than scoped: a scoped subscriber misses events whose callsite another test
/// thread registered first (tracing caches callsite interest process-wide), which made this
/// test flaky. Other tests' logs land here too, which only widens what is checked.
fn capture_logs() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter("orgsync=trace,reqwest=trace,hyper_util=debug,warn")
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
            captured
        })
        .clone()
}

#[tokio::test]
async fn no_secret_in_logs_errors_or_debug() {
    let captured = capture_logs();

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
        crate::helpers::set_secret(&mut wrong, "password", "Wr0ngPassw0rd");
        crate::helpers::set_secret(&mut wrong, "client_secret", "Wr0ngSecret");
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
