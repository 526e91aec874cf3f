//! `orgsync check` over `syncAccount`'s account fields, against the same two simulated orgs
//! as the account passes. The one test of `sync` that runs a module above it (`check`, the
//! shell's preflight): the account fields are the engine's, and their check is best proven
//! on the orgs the passes use.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_sync_account_with_the_default_account_fields_and_names_a_bad_one() {
    let w = World::new().await;
    let load = |fields: &str| {
        let toml = format!(
            r#"
[account]
sync_policy = "syncAccount"
{fields}

[orgs.a]
login_url = "{a}"
username = "integration@a.sim"

[orgs.b]
login_url = "{b}"
username = "integration@b.sim"
"#,
            a = w.sims[0].base_url.trim_end_matches('/'),
            b = w.sims[1].base_url.trim_end_matches('/'),
        );
        let vars: std::collections::HashMap<String, String> = [
            ("ORGSYNC__ORGS__A__PASSWORD", "password"),
            ("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token"),
            ("ORGSYNC__ORGS__B__PASSWORD", "password"),
            ("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        crate::config::load_str("test", &[("account test", &toml)], &vars).expect("settings")
    };
    let run = async |settings: &crate::config::Settings| {
        let mut out = Vec::new();
        let ok = crate::check::run_with(settings, ClientOptions::fast(), &mut out)
            .await
            .expect("report written");
        (ok, String::from_utf8_lossy(&out).into_owned())
    };

    let settings = load("");
    assert_eq!(
        settings.account.fields,
        ACCOUNT_FIELDS.map(str::to_string).to_vec()
    );
    let (ok, report) = run(&settings).await;
    assert!(ok, "{report}");
    assert_eq!(
        report
            .matches("Account: can be queried and created; fields Name, AccountNumber")
            .count(),
        2,
        "{report}"
    );

    let (ok, report) = run(&load(r#"fields = ["Name", "NumberOfEmployes"]"#)).await;
    assert!(!ok, "{report}");
    assert_eq!(
        report.matches("did you mean NumberOfEmployees?").count(),
        2,
        "{report}"
    );
}
