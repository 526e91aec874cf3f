//! The `orgsync` binary: exit codes, `status` output, errors on stderr without secrets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orgsync::store::{CycleCounts, CycleOutcome, Direction, LinkWrite, Org, Store};

const SECRET: &str = "hunter2-very-secret";

fn repo_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn state_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("state.db").display())
}

/// `orgsync <args>` with a clean environment: the dev config, the sim's users, secrets from
/// the environment, the state in `dir`.
fn orgsync(dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = without_secrets(dir, args);
    command
        .env("ORGSYNC__ORGS__A__PASSWORD", SECRET)
        .env("ORGSYNC__ORGS__A__SECURITY_TOKEN", SECRET)
        .env("ORGSYNC__ORGS__B__PASSWORD", SECRET)
        .env("ORGSYNC__ORGS__B__SECURITY_TOKEN", SECRET);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.output().expect("run orgsync")
}

/// `orgsync <args>` as an operator's shell runs it: the dev config and the state in `dir`,
/// none of the service's secrets.
fn without_secrets(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orgsync"));
    command
        .env_clear()
        .current_dir(dir)
        .arg("--config-dir")
        .arg(repo_config_dir())
        .args(args)
        .env("ORGSYNC_ENV", "dev")
        .env("ORGSYNC__STATE__URL", state_url(dir));
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn status_json_on_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        Store::open(&state_url(dir.path()))
            .await
            .unwrap()
            .close()
            .await;
    });
    let out = orgsync(dir.path(), &["status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(report["env"], "dev");
    assert_eq!(report["object"], "Opportunity");
    assert_eq!(report["state"]["exists"], true);
    let watermarks = report["watermarks"].as_array().unwrap();
    assert_eq!(watermarks.len(), 2);
    assert_eq!(watermarks[0]["org"], "a");
    assert_eq!(watermarks[0]["source"], "default");
    assert_eq!(watermarks[0]["value"], "2000-01-01T00:00:00.000Z");
    assert!(report["last_cycles"]["a_to_b"].is_null());
    assert!(report["last_cycles"]["b_to_a"].is_null());
    assert_eq!(report["links"]["total"], 0);
    assert_eq!(report["failures"]["pending"], 0);
    assert_eq!(report["failures"]["dead"], 0);
    assert_eq!(report["inbox"]["pending"], 0);
    assert!(!text(&out.stdout).contains(SECRET));
    assert!(!text(&out.stderr).contains(SECRET));
}

#[test]
fn status_without_a_database_reports_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = orgsync(dir.path(), &["status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["state"]["exists"], false);
    assert_eq!(report["links"]["total"], 0);
    assert!(!dir.path().join("state.db").exists());
    let out = orgsync(dir.path(), &["status"], &[]);
    assert!(
        text(&out.stdout).contains("No state database at"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn status_shows_what_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(&state_url(dir.path())).await.unwrap();
        let wm = chrono::DateTime::parse_from_rfc3339("2025-05-01T10:00:00.123Z")
            .unwrap()
            .to_utc();
        store
            .advance_watermark(Org::A, "Opportunity", wm)
            .await
            .unwrap();
        store
            .upsert_link(&LinkWrite {
                object: "Opportunity".into(),
                a_id: "006A".into(),
                b_id: "006B".into(),
                a_modstamp: None,
                b_modstamp: None,
                snapshot: serde_json::Map::new(),
            })
            .await
            .unwrap();
        let id = store.begin_cycle(Direction::AToB).await.unwrap();
        let counts = CycleCounts {
            read: 3,
            created: 1,
            updated: 1,
            skipped: 1,
            failed: 0,
            api_calls: 4,
            ..CycleCounts::default()
        };
        store
            .finish_cycle(id, &counts, CycleOutcome::Ok, None)
            .await
            .unwrap();
        store.close().await;
    });

    let out = orgsync(dir.path(), &["status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["watermarks"][0]["value"], "2025-05-01T10:00:00.123Z");
    assert_eq!(report["watermarks"][0]["source"], "stored");
    assert_eq!(report["watermarks"][1]["source"], "default");
    assert_eq!(report["links"]["total"], 1);
    assert_eq!(report["links"]["by_object"]["Opportunity"], 1);
    assert_eq!(report["last_cycles"]["a_to_b"]["outcome"], "ok");
    assert_eq!(report["last_cycles"]["a_to_b"]["read"], 3);
    assert_eq!(report["last_cycles"]["a_to_b"]["api_calls"], 4);

    let out = orgsync(dir.path(), &["status"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("Watermarks"), "{table}");
    assert!(table.contains("2025-05-01T10:00:00.123Z"), "{table}");
    assert!(table.contains("read 3"), "{table}");
    assert!(table.contains("Links     1"), "{table}");
}

#[test]
fn bad_configuration_exits_2_naming_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = orgsync(
        dir.path(),
        &["status"],
        &[
            ("ORGSYNC__BATCH__PAGESIZE", "10"),
            ("ORGSYNC__BATCH__PAGE_SIZE", "0"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("batch.pagesize"), "{stderr}");
    assert!(stderr.contains("ORGSYNC__BATCH__PAGESIZE"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_value_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = orgsync(
        dir.path(),
        &["status"],
        &[("ORGSYNC__BATCH__PAGE_SIZE", "0")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("batch.page_size (from environment variable ORGSYNC__BATCH__PAGE_SIZE)"),
        "{stderr}"
    );
}

#[test]
fn missing_environment_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = orgsync(dir.path(), &["--env", "nowhere", "status"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nowhere.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        orgsync(dir.path(), &["frobnicate"], &[]).status.code(),
        Some(2)
    );
    assert_eq!(orgsync(dir.path(), &[], &[]).status.code(), Some(2));
    let help = orgsync(dir.path(), &["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("status"));
}

#[test]
fn runtime_failure_exits_1_with_the_cause_chain() {
    let dir = tempfile::tempdir().unwrap();
    // Not a SQLite database (big enough for SQLite to read its header).
    std::fs::write(dir.path().join("state.db"), "not a database\n".repeat(1000)).unwrap();
    let out = orgsync(dir.path(), &["status"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    assert!(stderr.contains("cannot open the state store"), "{stderr}");
    assert!(stderr.contains("caused by"), "{stderr}");
    assert!(stderr.contains("file is not a database"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

#[test]
fn status_and_failures_run_without_the_org_secrets_but_sync_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        Store::open(&state_url(dir.path()))
            .await
            .unwrap()
            .close()
            .await;
    });
    let run = |args: &[&str]| {
        without_secrets(dir.path(), args)
            .output()
            .expect("run orgsync")
    };
    for args in [&["status"][..], &["failures", "list"][..]] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run(&["sync", "--once"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("orgs.a.password"), "{stderr}");
    // Other problems are still reported to the read-only commands.
    let out = without_secrets(dir.path(), &["status"])
        .env("ORGSYNC__BATCH__IN_FLIGHT", "0")
        .output()
        .expect("run orgsync");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("batch.in_flight"));
}

/// A store holding a validation rejection (with the values sent) and an ambiguous match.
fn store_with_failures(dir: &Path) -> (i64, i64) {
    use orgsync::store::{FailureBackoff, FailureClass, NewFailure};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(&state_url(dir)).await.unwrap();
        let policy = FailureBackoff {
            max_attempts: 3,
            initial_delay: std::time::Duration::from_secs(60),
            max_delay: std::time::Duration::from_secs(600),
        };
        let new = |source: &str, target: Option<&str>, code: &str| NewFailure {
            direction: Direction::AToB,
            object: "Opportunity".into(),
            source_id: source.into(),
            target_id: target.map(str::to_string),
            source_modstamp: None,
            error_code: code.into(),
            message: format!("{code} happened"),
            class: FailureClass::of_code(code),
            sent: None,
        };
        let mut rejected = new(
            "006A00000000001AAA",
            Some("006B00000000001AAA"),
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        );
        rejected.sent = serde_json::json!({"Name": "Deal REJECTME", "Amount": 9999})
            .as_object()
            .cloned();
        let v = store.record_failure(&rejected, &policy).await.unwrap();
        let a = store
            .record_failure(&new("006A00000000002AAA", None, "AMBIGUOUS_MATCH"), &policy)
            .await
            .unwrap();
        store.close().await;
        (v.id, a.id)
    })
}

#[test]
fn failures_show_prints_one_failure_in_full_and_list_filters_by_code() {
    let dir = tempfile::tempdir().unwrap();
    let (rejected, ambiguous) = store_with_failures(dir.path());

    let out = orgsync(
        dir.path(),
        &["failures", "show", &rejected.to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "006A00000000001AAA",
        "006B00000000001AAA",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION happened",
        "needs_edit",
        "waiting",
        "attempts      1",
        "next attempt  -",
        "\"Name\": \"Deal REJECTME\"",
        "\"Amount\": 9999",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} missing from:\n{shown}"
        );
    }

    let out = orgsync(
        dir.path(),
        &["failures", "show", &ambiguous.to_string(), "--json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["id"], ambiguous);
    assert_eq!(json["class"], "needs_operator");
    assert_eq!(json["state"], "dead");
    assert_eq!(json["error_code"], "AMBIGUOUS_MATCH");
    assert!(json["sent"].is_null());
    assert!(json["target_id"].is_null());

    let out = orgsync(dir.path(), &["failures", "show", "424242"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no failed record with id 424242"),
        "{}",
        text(&out.stderr)
    );

    // The list by code, alone and with a state, as a table (with the class) and as JSON.
    let out = orgsync(
        dir.path(),
        &["failures", "list", "--code", "AMBIGUOUS_MATCH"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("class"), "{table}");
    assert!(table.contains("needs_operator"), "{table}");
    assert!(table.contains("006A00000000002AAA"), "{table}");
    assert!(!table.contains("006A00000000001AAA"), "{table}");

    let list = |args: &[&str]| -> Vec<i64> {
        let out = orgsync(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_i64().unwrap())
            .collect()
    };
    let code = "FIELD_CUSTOM_VALIDATION_EXCEPTION";
    assert_eq!(
        list(&["failures", "list", "--json", "--code", code]),
        [rejected]
    );
    assert_eq!(
        list(&[
            "failures", "list", "--json", "--code", code, "--state", "waiting"
        ]),
        [rejected]
    );
    assert!(
        list(&[
            "failures", "list", "--json", "--code", code, "--state", "dead"
        ])
        .is_empty()
    );
    assert_eq!(
        list(&["failures", "list", "--json", "--state", "dead"]),
        [ambiguous]
    );
    assert_eq!(list(&["failures", "list", "--json"]), [rejected, ambiguous]);

    // status counts the queue by class.
    let out = orgsync(dir.path(), &["status", "--json"], &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failures"]["waiting"], 1);
    assert_eq!(report["failures"]["dead"], 1);
    assert_eq!(report["failures"]["by_class"]["needs_edit"], 1);
    assert_eq!(report["failures"]["by_class"]["needs_operator"], 1);
    assert_eq!(report["failures"]["by_class"]["transient"], 0);
    let out = orgsync(dir.path(), &["status"], &[]);
    let table = text(&out.stdout);
    assert!(table.contains("1 needs_edit"), "{table}");
    assert!(table.contains("1 needs_operator"), "{table}");
}

#[test]
fn sync_needs_no_once_and_usage_lines_show_no_global_option_as_required() {
    let dir = tempfile::tempdir().unwrap();
    // `sync` alone is accepted: it goes on to load the configuration (and wants the secrets).
    for args in [&["sync"][..], &["sync", "--once"][..]] {
        let out = without_secrets(dir.path(), args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("orgs.a.password"), "{args:?}: {stderr}");
    }

    let help = orgsync(dir.path(), &["sync", "--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    assert!(help.contains("Usage: orgsync sync [OPTIONS]\n"), "{help}");

    // Errors after global options (the helper passes --config-dir; add --env): the usage
    // line is the command's own.
    for (args, usage) in [
        (
            &["failures", "retry", "--env", "dev"][..],
            "Usage: orgsync failures retry [OPTIONS] [ID]\n",
        ),
        (
            &["sync", "--env", "dev", "--bogus"][..],
            "Usage: orgsync sync [OPTIONS]\n",
        ),
        (
            &["failures", "show"][..],
            "Usage: orgsync failures show [OPTIONS] <ID>\n",
        ),
    ] {
        let out = orgsync(dir.path(), args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(usage), "{args:?}: {stderr}");
        assert!(!stderr.contains("<ENV>"), "{args:?}: {stderr}");
        assert!(!stderr.contains("<CONFIG_DIR>"), "{args:?}: {stderr}");
    }
    let help = orgsync(dir.path(), &["failures", "retry", "--help"], &[]);
    assert!(
        text(&help.stdout).contains("Usage: orgsync failures retry [OPTIONS] [ID]\n"),
        "{}",
        text(&help.stdout)
    );
}

#[test]
fn demo_help_lists_only_the_demo_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = orgsync(dir.path(), &["demo", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("--records"), "{help}");
    assert!(help.contains("--interval"), "{help}");
    assert!(!help.contains("--env"), "{help}");
    assert!(!help.contains("--config-dir"), "{help}");
    // Still listed where they apply.
    let out = orgsync(dir.path(), &["status", "--help"], &[]);
    let help = text(&out.stdout);
    assert!(
        help.contains("--env") && help.contains("--config-dir"),
        "{help}"
    );
}
