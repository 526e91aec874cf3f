//! `orgsync import-properties` on the template's own property files (samples in `fixtures/`):
//! the TOML it writes loads with the real configuration loader once the secrets it lists are
//! provided; unknown keys and unconvertible values are reported on stderr.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ops/fixtures")
        .join(name)
}

/// A config folder holding the repository's default.toml, as a fresh install has.
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    std::fs::copy(default, dir.path().join("default.toml")).unwrap();
    dir
}

fn import(config_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .env_clear()
        .arg("--config-dir")
        .arg(config_dir)
        .arg("import-properties")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn secrets(vars: &[&str]) -> HashMap<String, String> {
    vars.iter()
        .map(|v| (v.to_string(), "from-the-environment".to_string()))
        .collect()
}

#[test]
fn prod_properties_convert_to_a_loadable_config() {
    let dir = config_dir();
    let common = fixture("common.properties");
    let prod = fixture("mule.prod.properties");
    // The unknown key and the run-time watermark cannot be converted: without --allow-partial
    // nothing is written and the import exits 1 naming them.
    let out = import(
        dir.path(),
        &[common.to_str().unwrap(), prod.to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("(watermark.default.expression, smtp.host)"),
        "{stderr}"
    );
    assert!(!dir.path().join("prod.toml").exists());
    let out = import(
        dir.path(),
        &[
            "--allow-partial",
            common.to_str().unwrap(),
            prod.to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    // mule.env names the file; the unknown key and the run-time watermark are reported.
    let written = std::fs::read_to_string(dir.path().join("prod.toml")).unwrap();
    assert!(stderr.contains("unknown property smtp.host"), "{stderr}");
    assert!(stderr.contains("watermark.default.expression"), "{stderr}");
    let vars = [
        "ORGSYNC__ORGS__A__PASSWORD",
        "ORGSYNC__ORGS__A__SECURITY_TOKEN",
        "ORGSYNC__ORGS__B__PASSWORD",
        "ORGSYNC__ORGS__B__SECURITY_TOKEN",
    ];
    for var in vars {
        assert!(stderr.contains(var), "{var} not listed: {stderr}");
        assert!(
            written.contains(var),
            "{var} not in the file's comment: {written}"
        );
    }
    assert!(!written.contains("ChangeMe!") && !written.contains("ABCdef123"));

    // Without the secrets the file does not load (password auth needs them) ...
    assert!(orgsync::config::load("prod", dir.path(), &HashMap::new()).is_err());
    // ... with them it does, holding the template's values.
    let settings = orgsync::config::load("prod", dir.path(), &secrets(&vars))
        .unwrap_or_else(|e| panic!("{e}: {:?}\n{written}", e.problems()));
    assert_eq!(settings.http.port, 9090);
    assert_eq!(settings.batch.page_size, 200);
    assert_eq!(settings.scheduler.frequency.as_millis(), 60_000);
    assert_eq!(settings.a.username, "integration@acme.com");
    assert_eq!(settings.a.login_url, "https://login.salesforce.com");
    assert_eq!(settings.a.api_version, "45.0");
    assert_eq!(
        settings.a.integration_user_id.as_deref(),
        Some("005B0000003tzRkIAI")
    );
    assert_eq!(settings.b.login_url, "https://acme-b.my.salesforce.com");
    assert_eq!(settings.b.integration_user_id, None);
}

#[test]
fn dev_properties_keep_a_supported_api_version() {
    let dir = config_dir();
    let common = fixture("common.properties");
    let dev = fixture("mule.dev.properties");
    let out = import(
        dir.path(),
        &[common.to_str().unwrap(), dev.to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("40.0"), "{stderr}");
    let vars = [
        "ORGSYNC__ORGS__A__PASSWORD",
        "ORGSYNC__ORGS__A__SECURITY_TOKEN",
        "ORGSYNC__ORGS__B__PASSWORD",
        "ORGSYNC__ORGS__B__SECURITY_TOKEN",
    ];
    let settings = orgsync::config::load("dev", dir.path(), &secrets(&vars)).unwrap();
    assert_eq!(settings.a.login_url, "https://test.salesforce.com");
    assert_eq!(settings.a.api_version, "62.0");
    assert_eq!(
        settings.watermark.default.to_rfc3339(),
        "2018-08-25T11:00:00+00:00"
    );
}

#[test]
fn an_existing_file_is_not_overwritten_without_force() {
    let dir = config_dir();
    let common = fixture("common.properties");
    let target = dir.path().join("qa.toml");
    std::fs::write(&target, "# mine\n").unwrap();
    let out = import(dir.path(), &["--env", "qa", common.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "# mine\n");
    let out = import(
        dir.path(),
        &["--env", "qa", "--force", common.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .contains("[batch]")
    );
}

#[test]
fn stdout_output_and_usage_errors() {
    let dir = config_dir();
    let common = fixture("common.properties");
    let out = import(dir.path(), &["--out", "-", common.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("page_size = 200"));
    // No mule.env and no --env: a clear usage error.
    let out = import(dir.path(), &[common.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--env"), "{}", text(&out.stderr));
    // A missing file names itself.
    let out = import(
        dir.path(),
        &["--env", "qa", "/nonexistent/mule.qa.properties"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/mule.qa.properties"));
}
