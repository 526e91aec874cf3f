//! `orgsync import-properties` from a bare folder, as a first-time operator runs it: the folder
//! it writes (`config/<env>.toml` only) passes `orgsync check` against two simulated orgs with
//! only the secrets in the environment; a property that cannot be converted stops the import
//! (exit 1, naming it) unless `--allow-partial`; `trigger.policy = hybrid` converts.

use std::path::Path;
use std::process::Output;

/// Template-style properties (the keys of the template's mule.<env>.properties) for two orgs.
fn template_properties(a_url: &str, b_url: &str, extra: &str) -> String {
    format!(
        "# mule.test.properties\n\
         http.port=9090\n\
         page.size=200\n\
         scheduler.frequency=10000\n\
         scheduler.startDelay=0\n\
         watermark.default.expression=2018-08-25T11:00:00.000Z\n\
         trigger.policy=poll\n\
         account.sync.policy=syncAccount\n\
         sfdc.a.username=integration@a.sim\n\
         sfdc.a.password=\n\
         sfdc.a.securityToken=\n\
         sfdc.a.url={a_url}/services/Soap/u/45.0\n\
         sfdc.a.integration.user.id=\n\
         sfdc.b.username=integration@b.sim\n\
         sfdc.b.password=\n\
         sfdc.b.securityToken=\n\
         sfdc.b.url={b_url}/services/Soap/u/45.0\n\
         sfdc.b.integration.user.id=\n\
         {extra}"
    )
}

/// `orgsync <args>` in `dir` with nothing in the environment but `env`.
async fn orgsync(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgsync"));
    command.env_clear().current_dir(dir).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("run orgsync")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn sim(name: &str) -> sfsim::SimOrg {
    sfsim::start_org(
        sfsim::OrgConfig {
            name: name.to_string(),
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("sfsim starts")
}

#[tokio::test]
async fn import_in_an_empty_folder_then_check_passes_with_only_the_secrets() {
    let a = sim("A").await;
    let b = sim("B").await;
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("mule.test.properties");
    std::fs::write(&props, template_properties(&a.base_url, &b.base_url, "")).unwrap();

    let out = orgsync(
        dir.path(),
        &[
            "--env",
            "test",
            "import-properties",
            props.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // config/ was created, holding only the environment's file.
    let config = dir.path().join("config");
    let names: Vec<String> = std::fs::read_dir(&config)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["test.toml"]);

    let secrets = [
        ("ORGSYNC__ORGS__A__PASSWORD", "password"),
        ("ORGSYNC__ORGS__A__SECURITY_TOKEN", "token"),
        ("ORGSYNC__ORGS__B__PASSWORD", "password"),
        ("ORGSYNC__ORGS__B__SECURITY_TOKEN", "token"),
    ];
    for (var, _) in secrets {
        assert!(stderr.contains(var), "{var} not listed: {stderr}");
    }
    let config_dir = config.to_str().unwrap();
    let out = orgsync(
        dir.path(),
        &["--config-dir", config_dir, "--env", "test", "check"],
        &secrets,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The secrets came from the environment, so nothing warns about them.
    assert!(
        !text(&out.stderr).contains("is set in"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_property_that_cannot_be_converted_stops_the_import_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("mule.test.properties");
    let extra = "trigger.policy=cron\nsmtp.host=mail.example.com\n";
    std::fs::write(
        &props,
        template_properties(
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            extra,
        ),
    )
    .unwrap();
    let out = orgsync(
        dir.path(),
        &[
            "--env",
            "test",
            "import-properties",
            props.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("trigger.policy = \"cron\""), "{stderr}");
    assert!(stderr.contains("unknown property smtp.host"), "{stderr}");
    assert!(
        stderr.contains("2 properties could not be converted (trigger.policy, smtp.host)"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-partial"), "{stderr}");
    assert!(!dir.path().join("config/test.toml").exists());

    // --allow-partial writes the rest, warns, and exits 0; the file names what is missing.
    let out = orgsync(
        dir.path(),
        &[
            "--env",
            "test",
            "import-properties",
            "--allow-partial",
            props.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: written without 2 properties"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(dir.path().join("config/test.toml")).unwrap();
    assert!(written.contains("#   trigger.policy\n"), "{written}");
    assert!(written.contains("#   smtp.host\n"), "{written}");
    assert!(!written.contains("policy = \"cron\""), "{written}");
    assert!(written.contains("page_size = 200"), "{written}");
}

#[tokio::test]
async fn hybrid_converts_and_the_outbound_secrets_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("mule.test.properties");
    let text_props = template_properties(
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        "",
    )
    .replace("trigger.policy=poll", "trigger.policy=hybrid");
    std::fs::write(&props, text_props).unwrap();
    let out = orgsync(
        dir.path(),
        &[
            "--env",
            "test",
            "import-properties",
            props.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ORGSYNC__ORGS__A__OUTBOUND_SECRET"),
        "{stderr}"
    );
    let config = dir.path().join("config");
    let mut vars: std::collections::HashMap<String, String> = [
        "ORGSYNC__ORGS__A__PASSWORD",
        "ORGSYNC__ORGS__A__SECURITY_TOKEN",
        "ORGSYNC__ORGS__B__PASSWORD",
        "ORGSYNC__ORGS__B__SECURITY_TOKEN",
        "ORGSYNC__ORGS__A__OUTBOUND_SECRET",
        "ORGSYNC__ORGS__B__OUTBOUND_SECRET",
    ]
    .iter()
    .map(|v| (v.to_string(), "from-the-environment".to_string()))
    .collect();
    let settings = orgsync::config::load("test", &config, &vars).unwrap();
    assert_eq!(
        settings.trigger.policy,
        orgsync::config::TriggerPolicy::Hybrid
    );
    // The listed outbound secrets are the ones the loader needs.
    vars.remove("ORGSYNC__ORGS__B__OUTBOUND_SECRET");
    let err = orgsync::config::load("test", &config, &vars).unwrap_err();
    assert!(err.to_string().contains("orgs.b.outbound_secret"), "{err}");
}

#[tokio::test]
async fn the_output_folder_of_out_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("mule.test.properties");
    std::fs::write(
        &props,
        template_properties(
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            "",
        ),
    )
    .unwrap();
    let out = orgsync(
        dir.path(),
        &[
            "import-properties",
            "--out",
            "etc/orgsync/prod.toml",
            props.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.path().join("etc/orgsync/prod.toml").is_file());
}
