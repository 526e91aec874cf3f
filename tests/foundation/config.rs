//! Configuration: layering, sources named in errors, secrets, validation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orgsync::config::{self, AccountPolicy, ConfigError, Origin, Settings, TriggerPolicy};
use secrecy::ExposeSecret;

const PASSWORD_A: &str = "pw-A-0123-secret";
const TOKEN_A: &str = "tok-A-4567-secret";
const PASSWORD_B: &str = "pw-B-89ab-secret";
const TOKEN_B: &str = "tok-B-cdef-secret";

fn repo_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The secrets dev.toml expects from the environment, plus `extra`.
pub(super) fn creds(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map = vars(&[
        ("ORGSYNC__ORGS__A__PASSWORD", PASSWORD_A),
        ("ORGSYNC__ORGS__A__SECURITY_TOKEN", TOKEN_A),
        ("ORGSYNC__ORGS__B__PASSWORD", PASSWORD_B),
        ("ORGSYNC__ORGS__B__SECURITY_TOKEN", TOKEN_B),
        // Not ours: must be ignored.
        ("ORGSYNC_ENV", "qa"),
        ("PATH", "/usr/bin"),
    ]);
    map.extend(vars(extra));
    map
}

/// A config dir holding the repository's default.toml and the given `test.toml`.
fn config_dir(env_file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_config_dir().join("default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("test.toml"), env_file).unwrap();
    dir
}

pub(super) const USERS: &str = r#"
[orgs.a]
username = "integration@a.sim"
[orgs.b]
username = "integration@b.sim"
"#;

pub(super) fn load(
    env_file: &str,
    vars: &HashMap<String, String>,
) -> (tempfile::TempDir, Result<Settings, ConfigError>) {
    let dir = config_dir(env_file);
    let result = config::load("test", dir.path(), vars);
    (dir, result)
}

pub(super) fn problems(result: Result<Settings, ConfigError>) -> String {
    match result {
        Ok(settings) => panic!("expected an error, got {settings:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn repository_dev_config_loads_with_secrets_from_env() {
    let settings = config::load("dev", &repo_config_dir(), &creds(&[])).unwrap();
    assert_eq!(settings.env, "dev");
    assert_eq!(settings.a.login_url, "http://127.0.0.1:8701");
    assert_eq!(settings.b.login_url, "http://127.0.0.1:8702");
    assert_eq!(settings.a.username, "integration@a.sim");
    assert_eq!(settings.b.username, "integration@b.sim");
    assert_eq!(
        settings.a.credentials.password().unwrap().expose_secret(),
        PASSWORD_A
    );
    assert_eq!(
        settings
            .b
            .credentials
            .security_token()
            .unwrap()
            .expose_secret(),
        TOKEN_B
    );
    assert_eq!(settings.scheduler.frequency, Duration::from_secs(5));
    assert_eq!(settings.batch.page_size, 200);
    assert_eq!(settings.sync.object, "Opportunity");
    assert_eq!(settings.sync.filter.as_deref(), Some("Amount > 5000"));
    assert_eq!(settings.trigger.policy, TriggerPolicy::Poll);
    assert_eq!(settings.account.sync_policy, AccountPolicy::None);
    assert_eq!(settings.watermark.lookback, Duration::from_secs(30));
    assert_eq!(
        settings.scheduler.safety_frequency,
        Duration::from_secs(15 * 60)
    );
}

#[test]
fn qa_and_prod_files_have_only_known_keys() {
    for env in ["qa", "prod"] {
        let settings = config::load(
            env,
            &repo_config_dir(),
            &creds(&[
                ("ORGSYNC__ORGS__A__USERNAME", "sync@example.com"),
                ("ORGSYNC__ORGS__B__USERNAME", "sync@example.org"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{env}: {e}"));
        assert_eq!(settings.env, env);
    }
}

#[test]
fn default_toml_matches_the_built_in_defaults() {
    let default_toml = std::fs::read_to_string(repo_config_dir().join("default.toml")).unwrap();
    let from_file = config::load_str(
        "t",
        &[("default", &default_toml), ("users", USERS)],
        &creds(&[]),
    )
    .unwrap();
    let built_in = config::load_str("t", &[("users", USERS)], &creds(&[])).unwrap();
    assert_eq!(format!("{from_file:?}"), format!("{built_in:?}"));
}

#[test]
fn environment_overrides_files() {
    let (_dir, result) = load(
        &format!("{USERS}\n[batch]\npage_size = 100\n"),
        &creds(&[
            ("ORGSYNC__BATCH__PAGE_SIZE", "500"),
            ("ORGSYNC__SYNC__FIELDS", "Name, Amount"),
            ("ORGSYNC__SCHEDULER__FREQUENCY", "2500"),
            ("ORGSYNC__ORGS__B__USERNAME", "other@b.sim"),
        ]),
    );
    let settings = result.unwrap();
    assert_eq!(settings.batch.page_size, 500);
    assert_eq!(settings.sync.fields, ["Name", "Amount"]);
    assert_eq!(settings.scheduler.frequency, Duration::from_millis(2500));
    assert_eq!(settings.b.username, "other@b.sim");
    assert_eq!(settings.a.username, "integration@a.sim");
}

#[test]
fn durations_in_both_forms() {
    let (_dir, result) = load(
        &format!(
            "{USERS}\n[scheduler]\nfrequency = 10000\nstart_delay = \"1min 30s\"\nsafety_frequency = \"15min\"\n"
        ),
        &creds(&[]),
    );
    let settings = result.unwrap();
    assert_eq!(settings.scheduler.frequency, Duration::from_secs(10));
    assert_eq!(settings.scheduler.start_delay, Duration::from_secs(90));
    assert_eq!(
        settings.scheduler.safety_frequency,
        Duration::from_secs(900)
    );
}

#[test]
fn unknown_key_in_a_file_names_key_and_file() {
    let (dir, result) = load(&format!("{USERS}\n[batch]\npagesize = 10\n"), &creds(&[]));
    let err = result.unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.key, "batch.pagesize");
    assert_eq!(problem.origin, Origin::File(dir.path().join("test.toml")));
    let text = err.to_string();
    assert!(text.contains("batch.pagesize"), "{text}");
    assert!(
        text.contains(&dir.path().join("test.toml").display().to_string()),
        "{text}"
    );
    assert!(text.contains("did you mean `batch.page_size`"), "{text}");
}

#[test]
fn unknown_section_and_org_are_reported() {
    let (_dir, result) = load(
        &format!("{USERS}\n[orgs.c]\nusername = \"x\"\n[extra]\nk = 1\n"),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("orgs.c"), "{text}");
    assert!(text.contains("extra"), "{text}");
}

#[test]
fn unknown_environment_variable_is_named() {
    let (_dir, result) = load(USERS, &creds(&[("ORGSYNC__BATCH__PAGESIZE", "10")]));
    let text = problems(result);
    assert!(text.contains("batch.pagesize"), "{text}");
    assert!(
        text.contains("environment variable ORGSYNC__BATCH__PAGESIZE"),
        "{text}"
    );
}

#[test]
fn bad_duration_names_key_and_file() {
    let (dir, result) = load(
        &format!("{USERS}\n[scheduler]\nfrequency = \"ten seconds\"\n"),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("scheduler.frequency"), "{text}");
    assert!(
        text.contains(&dir.path().join("test.toml").display().to_string()),
        "{text}"
    );
    assert!(text.contains("ten seconds"), "{text}");
}

#[test]
fn bad_duration_from_environment_names_the_variable() {
    let (_dir, result) = load(USERS, &creds(&[("ORGSYNC__WATERMARK__LOOKBACK", "soon")]));
    let text = problems(result);
    assert!(text.contains("watermark.lookback"), "{text}");
    assert!(text.contains("ORGSYNC__WATERMARK__LOOKBACK"), "{text}");
}

#[test]
fn wrong_type_names_key_and_file() {
    let (dir, result) = load(
        &format!("{USERS}\n[batch]\npage_size = \"lots\"\n"),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("batch.page_size"), "{text}");
    assert!(
        text.contains(&dir.path().join("test.toml").display().to_string()),
        "{text}"
    );
}

#[test]
fn missing_secret_names_key_and_how_to_set_it() {
    let mut vars = creds(&[]);
    vars.remove("ORGSYNC__ORGS__A__PASSWORD");
    let (_dir, result) = load(USERS, &vars);
    let text = problems(result);
    assert!(text.contains("orgs.a.password"), "{text}");
    assert!(text.contains("ORGSYNC__ORGS__A__PASSWORD"), "{text}");
    assert!(text.contains("password_file"), "{text}");
}

#[test]
fn secret_and_secret_file_together_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file\n").unwrap();
    let file = file.display().to_string();
    let (_cfg, result) = load(
        USERS,
        &creds(&[("ORGSYNC__ORGS__A__PASSWORD_FILE", file.as_str())]),
    );
    let text = problems(result);
    assert!(text.contains("orgs.a.password"), "{text}");
    assert!(text.contains("orgs.a.password_file"), "{text}");
    assert!(text.contains("ORGSYNC__ORGS__A__PASSWORD_FILE"), "{text}");
    assert!(!text.contains(PASSWORD_A), "{text}");
    assert!(!text.contains("from-file"), "{text}");
}

#[test]
fn secret_files_are_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("a-password");
    let token = dir.path().join("a-token");
    std::fs::write(&pw, "p@ss word\r\n").unwrap();
    std::fs::write(&token, "tok\n").unwrap();
    let mut vars = creds(&[]);
    vars.remove("ORGSYNC__ORGS__A__PASSWORD");
    vars.remove("ORGSYNC__ORGS__A__SECURITY_TOKEN");
    let env_file = format!(
        "[orgs.a]\nusername = \"integration@a.sim\"\npassword_file = {:?}\nsecurity_token_file = {:?}\n\
         [orgs.b]\nusername = \"integration@b.sim\"\n",
        pw.display().to_string(),
        token.display().to_string()
    );
    let (_cfg, result) = load(&env_file, &vars);
    let settings = result.unwrap();
    assert_eq!(
        settings.a.credentials.password().unwrap().expose_secret(),
        "p@ss word"
    );
    assert_eq!(
        settings
            .a
            .credentials
            .security_token()
            .unwrap()
            .expose_secret(),
        "tok"
    );
}

#[test]
fn unreadable_secret_file_names_the_key() {
    let mut vars = creds(&[(
        "ORGSYNC__ORGS__B__SECURITY_TOKEN_FILE",
        "/nonexistent/orgsync/token",
    )]);
    vars.remove("ORGSYNC__ORGS__B__SECURITY_TOKEN");
    let (_dir, result) = load(USERS, &vars);
    let text = problems(result);
    assert!(text.contains("orgs.b.security_token_file"), "{text}");
    assert!(text.contains("/nonexistent/orgsync/token"), "{text}");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let (_dir, result) = load(
        &format!("{USERS}\n[trigger]\npolicy = \"hybrid\"\n"),
        &creds(&[
            ("ORGSYNC__ORGS__A__OUTBOUND_SECRET", "outbound-A-secret"),
            ("ORGSYNC__ORGS__B__OUTBOUND_SECRET", "outbound-B-secret"),
        ]),
    );
    let settings = result.unwrap();
    let debug = format!("{settings:?} {:?} {:#?}", settings.a, settings);
    for secret in [
        PASSWORD_A,
        TOKEN_A,
        PASSWORD_B,
        TOKEN_B,
        "outbound-A-secret",
        "outbound-B-secret",
    ] {
        assert!(!debug.contains(secret), "secret {secret} leaked in {debug}");
    }
    assert!(debug.contains("REDACTED"));
}

#[test]
fn bad_values_are_all_reported_with_their_keys() {
    let env_file = r#"
[batch]
page_size = 0
in_flight = 11
[trigger]
policy = "sometimes"
[account]
sync_policy = "syncaccount"
[sync]
filter = "   "
conflict = "newest"
[sync.value_map.StageName]
"Closed Won" = "Won"
"Closed" = "Won"
[state]
url = "mysql://x"
[orgs.a]
username = "integration@a.sim"
login_url = "not a url"
api_budget_percent = 101
[orgs.b]
username = "integration@b.sim"
"#;
    let (_dir, result) = load(env_file, &creds(&[]));
    let err = result.unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "batch.page_size",
        "batch.in_flight",
        "trigger.policy",
        "account.sync_policy",
        "sync.filter",
        "sync.conflict",
        "sync.value_map.StageName",
        "state.url",
        "orgs.a.login_url",
        "orgs.a.api_budget_percent",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}\n{err}");
    }
    let text = err.to_string();
    assert!(text.contains("one-to-one"), "{text}");
}

#[test]
fn value_map_keys_keep_case_dots_and_spaces() {
    let env_file = format!(
        "{USERS}\n[sync.value_map.StageName]\n\"Closed Won\" = \"Won\"\n\"v1.0 Draft\" = \"Draft\"\n[sync.field_map]\nAmount = \"Amount__c\"\n"
    );
    let (_dir, result) = load(&env_file, &creds(&[]));
    let settings = result.unwrap();
    let stage = &settings.sync.value_map["StageName"];
    assert_eq!(stage["Closed Won"], "Won");
    assert_eq!(stage["v1.0 Draft"], "Draft");
    assert_eq!(settings.sync.b_field_name("Amount"), "Amount__c");
    assert_eq!(settings.sync.b_field_name("Name"), "Name");
}

#[test]
fn field_map_must_not_merge_two_fields() {
    let env_file = format!("{USERS}\n[sync.field_map]\nDescription = \"Name\"\n");
    let (_dir, result) = load(&env_file, &creds(&[]));
    let text = problems(result);
    assert!(text.contains("sync.field_map.Description"), "{text}");
}

#[test]
fn filter_false_means_no_filter() {
    let (_dir, result) = load(&format!("{USERS}\n[sync]\nfilter = false\n"), &creds(&[]));
    assert_eq!(result.unwrap().sync.filter, None);
    let (_dir, result) = load(USERS, &creds(&[("ORGSYNC__SYNC__FILTER", "false")]));
    assert_eq!(result.unwrap().sync.filter, None);
    let (_dir, result) = load(
        USERS,
        &creds(&[("ORGSYNC__SYNC__FILTER", "StageName != 'Closed Lost'")]),
    );
    assert_eq!(
        result.unwrap().sync.filter.as_deref(),
        Some("StageName != 'Closed Lost'")
    );
}

#[test]
fn auth_modes_require_their_secrets() {
    let env_file = r#"
[orgs.a]
auth = "jwt"
username = "integration@a.sim"
client_id = "sfsim-client"
[orgs.b]
auth = "client_credentials"
client_id = "sfsim-client"
"#;
    let (_dir, result) = load(env_file, &creds(&[]));
    let err = result.unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["orgs.a.private_key", "orgs.b.client_secret"],
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("orgs.a.auth = \"jwt\""), "{text}");
}

#[test]
fn push_needs_an_outbound_secret() {
    let (_dir, result) = load(
        &format!("{USERS}\n[trigger]\npolicy = \"push\"\n"),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("orgs.a.outbound_secret"), "{text}");
    assert!(text.contains("orgs.b.outbound_secret"), "{text}");
}

#[test]
fn missing_environment_file_names_the_path() {
    let dir = config_dir(USERS);
    let err = config::load("staging", dir.path(), &creds(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile { .. }));
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().join("staging.toml").display().to_string()),
        "{text}"
    );
}

#[test]
fn environment_names_cannot_escape_the_config_dir() {
    let err = config::load("../etc/x", &repo_config_dir(), &creds(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::BadEnvName(_)), "{err}");
}

#[test]
fn invalid_toml_names_the_file() {
    let (dir, result) = load("[batch\npage_size = 1", &creds(&[]));
    let text = problems(result);
    assert!(
        text.contains(&dir.path().join("test.toml").display().to_string()),
        "{text}"
    );
}

#[test]
fn data_tables_cannot_come_from_the_environment() {
    let (_dir, result) = load(
        USERS,
        &creds(&[("ORGSYNC__SYNC__FIELD_MAP__AMOUNT", "Amount__c")]),
    );
    let text = problems(result);
    assert!(text.contains("ORGSYNC__SYNC__FIELD_MAP__AMOUNT"), "{text}");
}

/// A config dir holding only `test.toml`: no default.toml, as `import-properties` leaves it.
fn bare_config_dir(env_file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.toml"), env_file).unwrap();
    dir
}

#[test]
fn a_config_dir_with_only_the_environment_file_loads_with_the_built_in_defaults() {
    let dir = bare_config_dir(USERS);
    let settings = config::load("test", dir.path(), &creds(&[])).unwrap();
    // The same settings as with the repository's default.toml beside it.
    let (_with_default, with_default) = load(USERS, &creds(&[]));
    assert_eq!(
        format!("{settings:?}"),
        format!("{:?}", with_default.unwrap())
    );
    assert_eq!(settings.batch.page_size, 200);
    assert_eq!(settings.sync.filter.as_deref(), Some("Amount > 5000"));
    assert_eq!(settings.a.username, "integration@a.sim");
}

#[test]
fn a_default_toml_in_the_config_dir_still_loads_between_the_built_in_one_and_the_env_file() {
    let dir = bare_config_dir(&format!("{USERS}\n[scheduler]\nfrequency = \"7s\"\n"));
    std::fs::write(
        dir.path().join("default.toml"),
        "[batch]\npage_size = 100\n[scheduler]\nfrequency = \"3s\"\n",
    )
    .unwrap();
    let settings = config::load("test", dir.path(), &creds(&[])).unwrap();
    assert_eq!(settings.batch.page_size, 100);
    assert_eq!(settings.scheduler.frequency, Duration::from_secs(7));
    // Keys neither file sets keep the built-in default.
    assert_eq!(settings.batch.in_flight, config::DEFAULT_IN_FLIGHT);
    // A bad value in it still names it.
    std::fs::write(dir.path().join("default.toml"), "[batch]\npage_size = 0\n").unwrap();
    let text = problems(config::load("test", dir.path(), &creds(&[])));
    assert!(text.contains("batch.page_size"), "{text}");
    assert!(
        text.contains(&dir.path().join("default.toml").display().to_string()),
        "{text}"
    );
}

#[test]
fn a_shorter_list_in_the_environment_file_replaces_the_default_list() {
    let dir = bare_config_dir(&format!(
        "{USERS}\n[sync]\nfields = [\"Name\", \"Amount\"]\n"
    ));
    let settings = config::load("test", dir.path(), &creds(&[])).unwrap();
    assert_eq!(settings.sync.fields, ["Name", "Amount"]);
}

#[test]
fn a_bare_config_dir_without_the_environment_file_names_it() {
    let dir = bare_config_dir(USERS);
    let err = config::load("prod", dir.path(), &creds(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&dir.path().join("prod.toml").display().to_string()),
        "{err}"
    );
}

/// `orgsync --config-dir <dir> --env test <args>` with a clean environment plus `env`.
fn orgsync_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orgsync"));
    command
        .env_clear()
        .current_dir(dir)
        .arg("--config-dir")
        .arg(dir)
        .args(["--env", "test"])
        .args(args)
        .env(
            "ORGSYNC__STATE__URL",
            format!("sqlite://{}", dir.join("state.db").display()),
        );
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run orgsync")
}

#[test]
fn the_binary_runs_from_a_folder_holding_only_the_environment_file() {
    let dir = bare_config_dir(USERS);
    let out = orgsync_in(dir.path(), &["status", "--json"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["env"], "test");
    assert_eq!(report["object"], "Opportunity");
}

#[test]
fn http_bind_defaults_to_every_interface_and_takes_v4_and_v6_addresses() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let (_dir, result) = load(USERS, &creds(&[]));
    assert_eq!(result.unwrap().http.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (_dir, result) = load(
        &format!("{USERS}\n[http]\nbind = \"127.0.0.1\"\n"),
        &creds(&[]),
    );
    assert_eq!(result.unwrap().http.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (_dir, result) = load(USERS, &creds(&[("ORGSYNC__HTTP__BIND", "::1")]));
    assert_eq!(result.unwrap().http.bind, IpAddr::V6(Ipv6Addr::LOCALHOST));
    let (_dir, result) = load(&format!("{USERS}\n[http]\nbind = \"[::]\"\n"), &creds(&[]));
    assert_eq!(result.unwrap().http.bind, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
}

#[test]
fn a_bad_http_bind_names_the_key_and_its_source() {
    for bad in ["localhost", "127.0.0.1:9090", "300.1.1.1", ""] {
        let (dir, result) = load(&format!("{USERS}\n[http]\nbind = {bad:?}\n"), &creds(&[]));
        let err = result.unwrap_err();
        let problem = &err.problems()[0];
        assert_eq!(problem.key, "http.bind", "{err}");
        assert_eq!(problem.origin, Origin::File(dir.path().join("test.toml")));
        assert!(err.to_string().contains("IP address"), "{err}");
    }
    let (_dir, result) = load(USERS, &creds(&[("ORGSYNC__HTTP__BIND", "any")]));
    let text = problems(result);
    assert!(
        text.contains("http.bind (from environment variable ORGSYNC__HTTP__BIND)"),
        "{text}"
    );
}

#[test]
fn a_secret_in_a_config_file_loads_with_a_warning_naming_key_and_file() {
    let mut vars = creds(&[]);
    vars.remove("ORGSYNC__ORGS__A__PASSWORD");
    let env_file = format!(
        "[orgs.a]\nusername = \"integration@a.sim\"\npassword = {PASSWORD_A:?}\n\
         [orgs.b]\nusername = \"integration@b.sim\"\n"
    );
    let (dir, result) = load(&env_file, &vars);
    let settings = result.unwrap();
    assert_eq!(
        settings.a.credentials.password().unwrap().expose_secret(),
        PASSWORD_A
    );
    let file = dir.path().join("test.toml").display().to_string();
    assert_eq!(settings.warnings.len(), 1, "{:?}", settings.warnings);
    let warning = &settings.warnings[0];
    assert!(
        warning.starts_with("orgs.a.password is set in "),
        "{warning}"
    );
    assert!(warning.contains(&file), "{warning}");
    assert!(warning.contains("orgs.a.password_file"), "{warning}");
    assert!(!warning.contains(PASSWORD_A), "{warning}");
    // Overridden from the environment, the file still holds it: still a warning.
    let (_dir, result) = load(&env_file, &creds(&[]));
    assert_eq!(result.unwrap().warnings.len(), 1);
    // Secrets from the environment or from *_file keys: no warning.
    let (_dir, result) = load(USERS, &creds(&[]));
    assert_eq!(result.unwrap().warnings, Vec::<String>::new());
}

#[test]
fn the_binary_logs_a_warning_for_a_secret_in_a_config_file_without_its_value() {
    let secret = "outbound-in-a-file-7f3a";
    let dir = bare_config_dir(&format!(
        "[orgs.a]\nusername = \"integration@a.sim\"\n\
         [orgs.b]\nusername = \"integration@b.sim\"\noutbound_secret = {secret:?}\n\
         security_token = \"\"\n"
    ));
    let out = orgsync_in(dir.path(), &["status", "--json"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("orgs.b.outbound_secret is set in"))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("test.toml"), "{line}");
    assert!(!stderr.contains(secret), "{stderr}");
    // The empty security_token is not a secret written in the file.
    assert!(!stderr.contains("orgs.b.security_token is set"), "{stderr}");
}

#[test]
fn a_rejected_state_url_never_shows_its_password() {
    let (_dir, result) = load(
        &format!("{USERS}\n[state]\nurl = \"mysql://orgsync:s3cretPW@db.example.com/orgsync\"\n"),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("state.url"), "{text}");
    assert!(
        text.contains("mysql://orgsync:***@db.example.com/orgsync"),
        "{text}"
    );
    assert!(!text.contains("s3cretPW"), "the password leaked: {text}");
}
