//! `orgsync check` against two simulated orgs: all well, a misspelled field, a field missing
//! in only one org, a filter that does not run, a wrong secret.

use std::collections::HashMap;

use orgsync::config::{self, Settings};
use serde_json::json;

use crate::helpers::{CLIENT_SECRET, Org, sim_post, start};

fn load(a: &Org, b: &Org, sync: &str, auth: &str) -> Settings {
    let toml = format!(
        r#"
[sync]
object = "Opportunity"
{sync}

[orgs.a]
login_url = "{a}"
auth = "{auth}"
username = "integration@a.sim"
client_id = "sfsim-client"

[orgs.b]
login_url = "{b}"
auth = "{auth}"
username = "integration@b.sim"
client_id = "sfsim-client"
"#,
        a = a.url(),
        b = b.url(),
    );
    let vars: HashMap<String, String> = [
        ("ORGSYNC__ORGS__A__PASSWORD", "password"),
        ("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token"),
        ("ORGSYNC__ORGS__A__CLIENT_SECRET", CLIENT_SECRET),
        ("ORGSYNC__ORGS__B__PASSWORD", "password"),
        ("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token"),
        ("ORGSYNC__ORGS__B__CLIENT_SECRET", CLIENT_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    config::load_str("test", &[("check test", &toml)], &vars).expect("valid settings")
}

async fn run(settings: &Settings) -> (bool, String) {
    let mut out = Vec::new();
    let ok = orgsync::check::run_with(
        settings,
        orgsync::salesforce::ClientOptions::fast(),
        &mut out,
    )
    .await
    .unwrap();
    (ok, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn a_good_configuration_passes() {
    let (a, b) = (start("A").await, start("B").await);
    let settings = load(
        &a,
        &b,
        r#"fields = ["Name", "Amount", "StageName", "CloseDate"]
filter = "Amount > 5000""#,
        "oauth_password",
    );
    let (ok, report) = run(&settings).await;
    assert!(ok, "{report}");
    assert!(report.contains("all checks passed"), "{report}");
    assert!(report.contains("daily API calls"), "{report}");
    assert!(
        report.contains("org a") && report.contains("org b"),
        "{report}"
    );
}

#[tokio::test]
async fn misspelled_and_one_sided_fields_are_caught() {
    let (a, b) = (start("A").await, start("B").await);
    sim_post(
        &a,
        "schema",
        json!({"object": "Opportunity", "name": "Region__c", "type": "string"}),
    )
    .await;
    let settings = load(
        &a,
        &b,
        r#"fields = ["Name", "Amout", "Region__c"]"#,
        "password",
    );
    let (ok, report) = run(&settings).await;
    assert!(!ok, "{report}");
    // The misspelling in both orgs, with a hint.
    assert_eq!(
        report.matches("field Amout does not exist").count(),
        2,
        "{report}"
    );
    assert!(report.contains("did you mean Amount?"), "{report}");
    // Region__c only in org b's section.
    let b_section = report.split("org b (").nth(1).unwrap();
    let a_section = report.split("org b (").next().unwrap();
    assert!(
        b_section.contains("field Region__c does not exist"),
        "{report}"
    );
    assert!(!a_section.contains("Region__c does not exist"), "{report}");
}

#[tokio::test]
async fn a_filter_that_does_not_run_is_reported() {
    let (a, b) = (start("A").await, start("B").await);
    let settings = load(
        &a,
        &b,
        r#"fields = ["Name"]
filter = "Amountt > 5000""#,
        "oauth_password",
    );
    let (ok, report) = run(&settings).await;
    assert!(!ok);
    assert!(report.contains("does not run: INVALID_FIELD"), "{report}");
}

#[tokio::test]
async fn a_wrong_secret_fails_the_login_of_that_org() {
    let (a, b) = (start("A").await, start("B").await);
    let mut settings = load(&a, &b, r#"fields = ["Name"]"#, "oauth_password");
    crate::helpers::set_secret(&mut settings.b, "client_secret", "nope-nope");
    let (ok, report) = run(&settings).await;
    assert!(!ok);
    let b_section = report.split("org b (").nth(1).unwrap();
    assert!(b_section.contains("login failed: org b:"), "{report}");
    assert!(!report.contains("nope-nope"));
}

/// `orgsync check` as a process: exit 0 when all is well, 1 when a problem is found.
#[tokio::test]
async fn the_binary_exits_zero_only_when_all_is_well() {
    let (a, b) = (start("A").await, start("B").await);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    let run = |fields: &'static str| {
        let env_file = format!(
            r#"
[log]
format = "text"
[sync]
fields = {fields}
[orgs.a]
login_url = "{a}"
auth = "oauth_password"
username = "integration@a.sim"
client_id = "sfsim-client"
[orgs.b]
login_url = "{b}"
auth = "oauth_password"
username = "integration@b.sim"
client_id = "sfsim-client"
"#,
            a = a.url(),
            b = b.url()
        );
        std::fs::write(dir.path().join("test.toml"), env_file).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgsync"));
        cmd.args(["--env", "test", "--config-dir"])
            .arg(dir.path())
            .arg("check")
            .env_remove("RUST_LOG")
            .env_remove("ORGSYNC_ENV")
            .env_remove("ORGSYNC_CONFIG_DIR");
        for org in ["A", "B"] {
            cmd.env(format!("ORGSYNC__ORGS__{org}__PASSWORD"), "password")
                .env(format!("ORGSYNC__ORGS__{org}__SECURITY_TOKEN"), "token")
                .env(
                    format!("ORGSYNC__ORGS__{org}__CLIENT_SECRET"),
                    CLIENT_SECRET,
                );
        }
        cmd
    };
    let good = run(r#"["Name", "Amount"]"#).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert_eq!(
        good.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");

    let bad = run(r#"["Name", "Amout"]"#).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("did you mean Amount?"), "{stdout}");
    for out in [&good, &bad] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(CLIENT_SECRET), "the secret leaked: {all}");
    }
}

#[tokio::test]
async fn parent_account_settings_are_checked() {
    let (a, b) = (start("A").await, start("B").await);
    // A real account in org a; org b is given an id that does not exist there, then a
    // malformed one.
    let ca = crate::helpers::client(&crate::helpers::settings(
        &a,
        orgsync::config::AuthMode::OauthPassword,
    ));
    let mut account = serde_json::Map::new();
    account.insert("Name".into(), json!("Parent Co"));
    let id = ca.create("Account", &[account]).await.unwrap()[0]
        .clone()
        .unwrap()
        .id;
    // A well-formed id that org b does not have: org a's.
    let missing = id.clone();
    let mut settings = load(&a, &b, r#"fields = ["Name"]"#, "oauth_password");
    settings.account.sync_policy = orgsync::config::AccountPolicy::Assign;
    settings.a.account_id = Some(id.clone());
    settings.b.account_id = Some(missing.clone());
    let (ok, report) = run(&settings).await;
    assert!(!ok, "{report}");
    let (a_section, b_section) = report.split_once("org b (").unwrap();
    assert!(
        a_section.contains(&format!("account {id} exists")),
        "{report}"
    );
    assert!(
        b_section.contains(&format!("account_id {missing}: no such Account")),
        "{report}"
    );

    settings.b.account_id = Some("001000000000000ZZZ".into());
    let (ok, report) = run(&settings).await;
    assert!(!ok, "{report}");
    assert!(report.contains("is not a valid Account id"), "{report}");

    let mut settings = load(&a, &b, r#"fields = ["Name"]"#, "oauth_password");
    settings.account.sync_policy = orgsync::config::AccountPolicy::SyncAccount;
    settings.account.fields = vec!["Name".into(), "Industri".into()];
    let (ok, report) = run(&settings).await;
    assert!(!ok, "{report}");
    assert_eq!(
        report
            .matches("field Industri does not exist on Account")
            .count(),
        2,
        "{report}"
    );
}
