//! The `[state]` keys: `state.url` from a file, the environment or `state.url_file`, both
//! backends' URLs, `state.pair_name`, and a URL's password never shown.

use super::config::{USERS, creds, load, problems};

const PG_URL: &str = "postgres://orgsync:s3cretPW@db.example.com:5432/orgsync";

#[test]
fn a_postgres_url_and_a_pair_name_load_from_the_file() {
    let (_dir, result) = load(
        &format!("{USERS}\n[state]\nurl = \"{PG_URL}\"\npair_name = \"emea\"\n"),
        &creds(&[]),
    );
    let settings = result.unwrap();
    assert_eq!(settings.state.url, PG_URL);
    assert_eq!(settings.state.pair_name, "emea");
    // Debug output (a panic message, a stray log) never holds the password.
    let debug = format!("{settings:?}");
    assert!(!debug.contains("s3cretPW"), "{debug}");
    assert!(debug.contains("orgsync:***@db.example.com"), "{debug}");
    assert_eq!(
        settings.state.shown_url(),
        "postgres://orgsync:***@db.example.com:5432/orgsync"
    );
}

#[test]
fn the_pair_name_defaults_to_default() {
    let (_dir, result) = load(USERS, &creds(&[]));
    let settings = result.unwrap();
    assert_eq!(settings.state.pair_name, "default");
    assert_eq!(settings.state.url, "sqlite://orgsync.db");
}

#[test]
fn the_url_comes_from_the_environment() {
    let (_dir, result) = load(USERS, &creds(&[("ORGSYNC__STATE__URL", PG_URL)]));
    assert_eq!(result.unwrap().state.url, PG_URL);
}

#[test]
fn the_url_comes_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state_url");
    std::fs::write(&file, format!("{PG_URL}\n")).unwrap();
    let (_cfg, result) = load(
        &format!("{USERS}\n[state]\nurl_file = \"{}\"\n", file.display()),
        &creds(&[]),
    );
    assert_eq!(result.unwrap().state.url, PG_URL);
    // Or from the environment's ORGSYNC__STATE__URL_FILE.
    let (_cfg, result) = load(
        USERS,
        &creds(&[("ORGSYNC__STATE__URL_FILE", &file.display().to_string())]),
    );
    assert_eq!(result.unwrap().state.url, PG_URL);
}

#[test]
fn url_and_url_file_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state_url");
    std::fs::write(&file, PG_URL).unwrap();
    let (_cfg, result) = load(
        &format!(
            "{USERS}\n[state]\nurl = \"sqlite://x.db\"\nurl_file = \"{}\"\n",
            file.display()
        ),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("state.url"), "{text}");
    assert!(text.contains("give only one"), "{text}");
    assert!(!text.contains("s3cretPW"), "{text}");
}

#[test]
fn a_bad_url_in_the_file_is_named_by_the_file_key_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state_url");
    std::fs::write(&file, "mysql://orgsync:s3cretPW@db/orgsync").unwrap();
    let (_cfg, result) = load(
        &format!("{USERS}\n[state]\nurl_file = \"{}\"\n", file.display()),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("state.url_file"), "{text}");
    assert!(!text.contains("s3cretPW"), "the password leaked: {text}");
    let (_cfg, result) = load(
        &format!(
            "{USERS}\n[state]\nurl_file = \"{}\"\n",
            dir.path().join("missing").display()
        ),
        &creds(&[]),
    );
    let text = problems(result);
    assert!(text.contains("state.url_file"), "{text}");
    assert!(text.contains("cannot read"), "{text}");
}

#[test]
fn a_bad_pair_name_is_refused() {
    for bad in ["EMEA", "a-b", "", "x; drop schema"] {
        let (_dir, result) = load(
            &format!("{USERS}\n[state]\npair_name = \"{bad}\"\n"),
            &creds(&[]),
        );
        let text = problems(result);
        assert!(text.contains("state.pair_name"), "{bad}: {text}");
    }
}
