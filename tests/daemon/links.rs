//! `orgsync links ...` through the binary: the operator follows the `AMBIGUOUS_MATCH` (and
//! `LINKED_TARGET_MISSING`) failure's message word for word and the next cycle links and
//! merges the pair (or creates the record anew); `unlink
//! --forget` lets the next cycle match a pair again; a plain `unlink` keeps the two records
//! from ever being matched with each other again.

use serde_json::{Value, json};

use super::{World, human, opportunities, opportunity, text};

/// Runs `orgsync links|failures ...` and returns its stdout; the command must succeed.
fn ok(world: &World, args: &[&str]) -> String {
    let out = world.run(args);
    assert!(
        out.status.success(),
        "orgsync {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json_of(world: &World, args: &[&str]) -> Value {
    serde_json::from_str(&ok(world, args)).expect("the command prints JSON")
}

fn sync_once(world: &World) -> String {
    ok(world, &["sync", "--once"])
}

/// The first command a message names: the text between the first pair of backticks.
fn first_command(message: &str) -> Vec<String> {
    let start = message.find('`').expect("the message names a command") + 1;
    let len = message[start..].find('`').expect("closing backtick");
    message[start..start + len]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The (Id, Amount) of each opportunity named `name` in `org`. (Amounts are above 5000:
/// the default `sync.filter` is `Amount > 5000`.)
fn named(org: &sfsim::SimOrg, name: &str) -> Vec<(String, Value)> {
    opportunities(org)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, r)| {
            let id = org
                .db()
                .query(
                    &format!(
                        "SELECT Id FROM Opportunity WHERE Name = '{name}' AND Amount = {}",
                        r["Amount"]
                    ),
                    false,
                    "62.0",
                    chrono::Utc::now(),
                )
                .expect("query")[0]["Id"]
                .as_str()
                .expect("Id")
                .to_string();
            (id, r["Amount"].clone())
        })
        .collect()
}

/// `org`'s human user edits record `id` (a REST update through orgsync's client).
fn human_edit(org: &sfsim::SimOrg, id: &str, fields: Value) {
    let Value::Object(fields) = fields else {
        panic!("fields are an object")
    };
    let results = tokio::runtime::Handle::current()
        .block_on(human(org).update("Opportunity", &[(id.to_string(), fields)]))
        .expect("the human's update");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

/// `org`'s human user deletes record `id`.
fn human_delete(org: &sfsim::SimOrg, id: &str) {
    let results = tokio::runtime::Handle::current()
        .block_on(human(org).delete(&[id.to_string()]))
        .expect("the human's delete");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

fn seeded_id(rows: &[Value]) -> String {
    rows[0]["Id"]
        .as_str()
        .or_else(|| rows[0]["id"].as_str())
        .expect("a seeded record has an Id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_link_as_the_ambiguous_match_message_says_resolves_it() {
    let world = World::new().await;
    let human_a = world.a.human_username.clone();
    world
        .a
        .seed_records(
            "Opportunity",
            Some(&human_a),
            vec![opportunity("Twin Deal", 6_100)],
        )
        .expect("seed A");
    // Two namesakes in B, loaded earlier by the integration user (so B -> A leaves them alone)
    // and edited later than A's record: last writer wins gives B's values.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let integration_b = world.b.integration_username.clone();
    for amount in [6_200, 6_300] {
        world
            .b
            .seed_records(
                "Opportunity",
                Some(&integration_b),
                vec![opportunity("Twin Deal", amount)],
            )
            .expect("seed B");
    }
    tokio::task::block_in_place(|| {
        let report = sync_once(&world);
        assert!(report.contains("a_to_b: read 1, created 0"), "{report}");
        let failures = json_of(&world, &["failures", "list", "--json"]);
        let failures = failures.as_array().expect("a list");
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0]["error_code"], json!("AMBIGUOUS_MATCH"));
        let message = failures[0]["message"].as_str().expect("message");

        // Exactly what the message says.
        let command = first_command(message);
        assert_eq!(command[..3], ["orgsync", "links", "link"], "{message}");
        let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
        let said = ok(&world, &args);
        assert!(said.contains("the next cycle"), "{said}");
        let (a_id, b_id) = (command[3].clone(), command[4].clone());

        // The next cycle merges the pair (B's values, the newer), links nothing else.
        let report = sync_once(&world);
        assert!(report.contains("failed 0"), "{report}");
        world.sync_until_quiet(3);
        let in_a = named(&world.a, "Twin Deal");
        let in_b = named(&world.b, "Twin Deal");
        assert_eq!(in_a.len(), 1, "no copy made in A");
        assert_eq!(in_b.len(), 2, "no copy made in B");
        let linked_b = in_b
            .iter()
            .find(|(id, _)| *id == b_id)
            .expect("the B record");
        assert_eq!(in_a[0].0, a_id);
        assert_eq!(in_a[0].1, linked_b.1, "the pair converged");
        assert_eq!(
            in_a[0].1,
            json!(6_200.0),
            "last writer (B) won the conflict"
        );

        let status = world.status();
        assert_eq!(status["links"]["total"], json!(1), "{status}");
        assert_eq!(status["links"]["by_state"]["live"], json!(1), "{status}");
        assert_eq!(status["failures"]["dead"], json!(0), "{status}");
        assert_eq!(status["failures"]["pending"], json!(0), "{status}");
        let shown = json_of(&world, &["links", "show", &a_id, "--json"]);
        assert_eq!(shown["b_id"], json!(b_id));
        assert_eq!(shown["state"], json!("live"));
        assert_eq!(
            shown["snapshot"]["Amount"].as_f64(),
            Some(6_200.0),
            "{shown}"
        );
        // A record already linked cannot be linked again.
        let other_b = in_b.iter().find(|(id, _)| *id != b_id).expect("the other");
        // Both records must exist: B's record is no record of A.
        let out = world.run(&["links", "link", &other_b.0, &other_b.0]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(&format!("no Opportunity {} in org A", other_b.0)),
            "{}",
            text(&out.stderr)
        );
        let out = world.run(&["links", "link", &a_id, &other_b.0]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("already linked"),
            "{}",
            text(&out.stderr)
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_forget_then_a_cycle_rematches_and_plain_unlink_never_does() {
    let world = World::new().await;
    let human_a = world.a.human_username.clone();
    let human_b = world.b.human_username.clone();
    let a_id = seeded_id(
        &world
            .a
            .seed_records(
                "Opportunity",
                Some(&human_a),
                vec![opportunity("Solo Deal", 7_000)],
            )
            .expect("seed A"),
    );
    let b_id = seeded_id(
        &world
            .b
            .seed_records(
                "Opportunity",
                Some(&human_b),
                vec![opportunity("Solo Deal", 7_000)],
            )
            .expect("seed B"),
    );
    tokio::task::block_in_place(|| {
        world.sync_until_quiet(3);
        let shown = json_of(&world, &["links", "show", &a_id, "--json"]);
        assert_eq!(shown["b_id"], json!(b_id), "matched by Name");
        // From the store alone: no org secrets needed (beside a running daemon, like `failures`).
        let out = world
            .command(&["links", "list"])
            .env_remove("ORGSYNC__ORGS__A__PASSWORD")
            .env_remove("ORGSYNC__ORGS__A__SECURITY_TOKEN")
            .env_remove("ORGSYNC__ORGS__B__PASSWORD")
            .env_remove("ORGSYNC__ORGS__B__SECURITY_TOKEN")
            .output()
            .expect("orgsync runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let table = text(&out.stdout);
        assert!(
            table.contains(&a_id) && table.contains(&b_id) && table.contains(" live "),
            "{table}"
        );
        let shown_text = ok(&world, &["links", "show", &a_id]);
        assert!(
            shown_text.contains("state         live (synced)"),
            "{shown_text}"
        );
        assert!(
            shown_text.contains("\"Name\": \"Solo Deal\""),
            "{shown_text}"
        );

        // --forget (by the B id, 15 characters): no link; the next cycle matches them again.
        let said = ok(&world, &["links", "unlink", &b_id[..15], "--forget"]);
        assert!(said.contains("forgotten"), "{said}");
        let listed = json_of(&world, &["links", "list", "--json"]);
        assert_eq!(listed, json!([]));
        let report = sync_once(&world);
        assert!(report.contains("linked 1"), "{report}");
        let shown = json_of(&world, &["links", "show", &a_id, "--json"]);
        assert_eq!(shown["b_id"], json!(b_id), "rematched");
        assert_eq!(shown["state"], json!("live"));
        assert_eq!(named(&world.b, "Solo Deal").len(), 1, "nothing created");

        // A plain unlink: the pair is never matched again. An edit of A's record makes it
        // synced on its own: a new record in B, not B's namesake.
        let link_id = shown["id"].as_i64().expect("link id").to_string();
        ok(&world, &["links", "unlink", &link_id]);
        let listed = json_of(&world, &["links", "list", "--state", "unlinked", "--json"]);
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        let status = world.status();
        assert_eq!(
            status["links"]["by_state"]["unlinked"],
            json!(1),
            "{status}"
        );
        assert_eq!(status["links"]["total"], json!(0), "{status}");
        human_edit(&world.a, &a_id, json!({"Amount": 7_100}));
        world.sync_until_quiet(3);
        let in_b = named(&world.b, "Solo Deal");
        assert_eq!(
            in_b.len(),
            2,
            "A's record was not matched with B's again: {in_b:?}"
        );
        let shown = json_of(&world, &["links", "show", &a_id, "--json"]);
        let shown = shown.as_array().expect("two links of A's record");
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown
                .iter()
                .any(|l| l["state"] == json!("live") && l["b_id"] != json!(b_id)),
            "{shown:?}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_target_missing_is_repaired_by_the_command_its_message_names() {
    let world = World::new().await;
    // With deletes propagated (the default), B's delete against A's edit is a delete conflict
    // the engine settles itself (sync::delete_sim_tests); LINKED_TARGET_MISSING is the
    // failure of a pair whose delete is not synchronized.
    let toml = world.dir.path().join("test.toml");
    let mut config = std::fs::read_to_string(&toml).expect("test.toml");
    config.push_str("\n[sync]\ndeletes = \"ignore\"\n");
    std::fs::write(&toml, config).expect("write test.toml");
    let human_a = world.a.human_username.clone();
    let a_id = seeded_id(
        &world
            .a
            .seed_records(
                "Opportunity",
                Some(&human_a),
                vec![opportunity("Lost Twin", 8_000)],
            )
            .expect("seed A"),
    );
    tokio::task::block_in_place(|| {
        world.sync_until_quiet(3);
        let gone = named(&world.b, "Lost Twin");
        assert_eq!(gone.len(), 1, "created in B");
        // Someone deletes B's copy, then A's record is edited: the update has no target.
        human_delete(&world.b, &gone[0].0);
        human_edit(&world.a, &a_id, json!({"Amount": 8_100}));
        sync_once(&world);
        let failures = json_of(&world, &["failures", "list", "--json"]);
        let failures = failures.as_array().expect("a list");
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0]["error_code"], json!("LINKED_TARGET_MISSING"));
        let message = failures[0]["message"].as_str().expect("message");

        // Exactly what the message says first: forget the link; the next cycle creates the
        // record anew in B and the failure is gone.
        let command = first_command(message);
        assert_eq!(
            command,
            ["orgsync", "links", "unlink", a_id.as_str(), "--forget"],
            "{message}"
        );
        let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
        ok(&world, &args);
        world.sync_until_quiet(3);
        let again = named(&world.b, "Lost Twin");
        assert_eq!(again.len(), 1, "{again:?}");
        assert_ne!(again[0].0, gone[0].0, "a new record");
        assert_eq!(again[0].1.as_f64(), Some(8_100.0));
        let status = world.status();
        assert_eq!(status["links"]["total"], json!(1), "{status}");
        assert_eq!(status["failures"]["dead"], json!(0), "{status}");
        assert_eq!(status["failures"]["pending"], json!(0), "{status}");
    });
}

/// Waits until `done` holds (at most 30 s), checking every 100 ms.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_commands_work_beside_a_running_daemon_which_rematches_a_forgotten_pair() {
    let world = World::new().await;
    let human_a = world.a.human_username.clone();
    let human_b = world.b.human_username.clone();
    let a_id = seeded_id(
        &world
            .a
            .seed_records(
                "Opportunity",
                Some(&human_a),
                vec![opportunity("Busy Deal", 9_000)],
            )
            .expect("seed A"),
    );
    world
        .b
        .seed_records(
            "Opportunity",
            Some(&human_b),
            vec![opportunity("Busy Deal", 9_000)],
        )
        .expect("seed B");
    let log = world.dir.path().join("daemon.log");
    let daemon = super::shell::Running(world.spawn_daemon(&log));
    tokio::task::block_in_place(|| {
        // Once the daemon has opened (and migrated) the state database.
        wait_until("the daemon's first pass", || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("direction pass finished"))
        });
        let live = |world: &World| {
            json_of(world, &["links", "list", "--state", "live", "--json"])
                .as_array()
                .map_or(0, Vec::len)
        };
        wait_until("the daemon links the pair", || live(&world) == 1);
        let first = json_of(&world, &["links", "show", &a_id, "--json"]);
        // The daemon holds the state lock; `links` does not need it.
        let said = ok(&world, &["links", "unlink", &a_id, "--forget"]);
        assert!(said.contains("forgotten"), "{said}");
        // The daemon's next cycle reads both records again and links them again.
        wait_until("the daemon rematches the pair", || {
            let links = json_of(&world, &["links", "list", "--json"]);
            links.as_array().is_some_and(|l| {
                l.len() == 1 && l[0]["state"] == json!("live") && l[0]["id"] != first["id"]
            })
        });
        let again = json_of(&world, &["links", "show", &a_id, "--json"]);
        assert_eq!(again["b_id"], first["b_id"], "the same pair");
        assert_eq!(named(&world.b, "Busy Deal").len(), 1, "nothing created");
        super::shell::stop(daemon);
    });
}
