//! Bulk API 2.0 through the binary (issue 16), at a read threshold of 500: `kill -9` while a
//! Bulk read is at any stage (job running, results being staged, staged rows being fed) and
//! while Bulk writes run, then a restart, ends with every record once in both orgs (DESIGN
//! §2.4 on the Bulk path). And the Bulk pass's API calls at 20,000 records each way
//! (`sync::bulk_pass`): one job per operation per pass, not per page.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::{World, assert_converged, human, seed, set_faults};

/// `orgsync run` with the Bulk settings `env` (`ORGSYNC__BATCH__...`).
fn spawn_with(world: &World, log: &PathBuf, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    let mut cmd = world.command(&["run"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("orgsync run starts")
}

/// Kills `orgsync run` at random instants, at least `min` rounds and then on, up to `max`,
/// until `enough` holds of the Bulk job states the kills left open (`status`'s `open_jobs`,
/// round after round, which it returns): how long a process takes to reach a stage depends
/// on the machine's load, so the test keeps killing until a kill has landed where it must
/// (or `max` rounds are spent).
fn kill_rounds_until(
    world: &World,
    env: &[(&str, &str)],
    min: usize,
    max: usize,
    seed: u64,
    enough: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let log: PathBuf = world.dir.path().join("run.log");
    let mut open_states = Vec::new();
    for round in 0..max {
        if round >= min && enough(&open_states) {
            break;
        }
        let mut child = spawn_with(world, &log, env);
        let wait = rng.random_range(200..1500);
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let status = world.status();
        if let Some(jobs) = status["bulk"]["open_jobs"].as_array() {
            open_states.extend(
                jobs.iter()
                    .filter_map(|j| j["state"].as_str().map(str::to_string)),
            );
        }
    }
    open_states
}

const READ_ENV: &[(&str, &str)] = &[
    ("ORGSYNC__BATCH__BULK_READ_THRESHOLD", "500"),
    ("ORGSYNC__BATCH__PAGE_SIZE", "200"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_bulk_reads_resumes_with_exactly_the_right_records() {
    let world = World::new().await;
    seed(&world.a, "Bulk A", 3_000);
    seed(&world.b, "Bulk B", 1_200);
    // Slow jobs and calls, so the kills land inside every stage.
    for org in [&world.a, &world.b] {
        set_faults(
            org,
            json!({ "latency_ms": 10, "bulk_rows_per_second": 3000 }),
        );
    }
    tokio::task::block_in_place(|| {
        let staged = |states: &[String]| states.iter().any(|s| s == "staging" || s == "staged");
        let open = kill_rounds_until(&world, READ_ENV, 8, 24, 0xB01C_0001, staged);
        // Kills landed with a job open, and with rows staged.
        assert!(
            open.iter().any(|s| s == "staging" || s == "staged"),
            "no kill landed while rows were staged: {open:?}"
        );
        for org in [&world.a, &world.b] {
            set_faults(org, json!({ "latency_ms": 0, "bulk_rows_per_second": 0 }));
        }
        // The restart finishes the open job, then goes quiet; at the same threshold, so a
        // direction the kills never let start its job reads through Bulk now.
        world.sync_until_quiet_with(6, READ_ENV);
        assert_converged(&world, 4_200);
        let status = world.status();
        assert_eq!(status["bulk"]["open"], json!(0), "{}", status["bulk"]);
        assert!(
            status["bulk"]["completed"].as_u64().unwrap_or(0) >= 2,
            "both directions read through Bulk: {}",
            status["bulk"]
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_bulk_writes_resumes_with_exactly_the_right_records() {
    let world = World::new().await;
    let field = json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string",
                       "length": 64, "externalId": true, "unique": true});
    world.a.add_field(&field).expect("field A");
    world.b.add_field(&field).expect("field B");
    seed(&world.a, "Write A", 2_000);
    for org in [&world.a, &world.b] {
        set_faults(
            org,
            json!({ "latency_ms": 10, "bulk_rows_per_second": 2000 }),
        );
    }
    let env: &[(&str, &str)] = &[
        ("ORGSYNC__BATCH__BULK", "always"),
        ("ORGSYNC__SYNC__EXTERNAL_ID_FIELD", "Ext_Id__c"),
    ];
    tokio::task::block_in_place(|| {
        // Kills keep landing until one has caught the Bulk pass planned (its writes waiting
        // for the job) or written (results recorded, outcomes being committed).
        let later = |states: &[String]| states.iter().any(|s| s == "planned" || s == "written");
        let open = kill_rounds_until(&world, env, 6, 24, 0xB01C_0002, later);
        assert!(
            later(&open),
            "no kill landed while the pass was writing: {open:?}"
        );
        let status: Value = world.status();
        assert!(
            status["bulk"]["completed"].as_u64().unwrap_or(0)
                + status["bulk"]["aborted"].as_u64().unwrap_or(0)
                + status["bulk"]["open"].as_u64().unwrap_or(0)
                >= 1,
            "no Bulk job ran: {}",
            status["bulk"]
        );
        for org in [&world.a, &world.b] {
            set_faults(org, json!({ "latency_ms": 0, "bulk_rows_per_second": 0 }));
        }
        let mut last = world.command(&["sync", "--once"]);
        for (k, v) in env {
            last.env(k, v);
        }
        for _ in 0..4 {
            let out = last.output().expect("sync runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_converged(&world, 2_000);
    });
}

/// Every API call of `org` since `before`, by kind, and their total (logins left out: one
/// per process).
fn calls_since(org: &sfsim::SimOrg, before: &Value) -> (serde_json::Map<String, Value>, u64) {
    let now = org.stats();
    let mut kinds = serde_json::Map::new();
    let mut total = 0;
    if let Some(calls) = now["calls"].as_object() {
        for (kind, n) in calls {
            let n = n.as_u64().unwrap_or(0) - before["calls"][kind].as_u64().unwrap_or(0);
            if n > 0 && kind != "login" {
                total += n;
                kinds.insert(kind.clone(), json!(n));
            }
        }
    }
    (kinds, total)
}

fn sync_once(world: &World, env: &[(&str, &str)]) {
    let mut cmd = world.command(&["sync", "--once"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("sync runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 20,000 new records A -> B, then the same 20,000 edited in A, at the default thresholds
/// lowered to 1,000 (`"auto"`): each is one Bulk pass, its read one query job, its lookups
/// one staging of B's records, its writes one ingest job: a handful of calls per org where
/// REST takes ceil(20,000 / 2,000) + ceil(20,000 / 200) = 110.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_pass_moves_20000_records_in_a_handful_of_calls() {
    const N: usize = 20_000;
    let world = World::new().await;
    let field = json!({"object": "Opportunity", "name": "Ext_Id__c", "type": "string",
                       "length": 64, "externalId": true, "unique": true});
    world.a.add_field(&field).expect("field A");
    world.b.add_field(&field).expect("field B");
    seed(&world.a, "Pass", N);
    let env: &[(&str, &str)] = &[
        ("ORGSYNC__BATCH__BULK_READ_THRESHOLD", "1000"),
        ("ORGSYNC__BATCH__BULK_WRITE_THRESHOLD", "1000"),
        ("ORGSYNC__SYNC__EXTERNAL_ID_FIELD", "Ext_Id__c"),
    ];
    let before = [world.a.stats(), world.b.stats()];
    tokio::task::block_in_place(|| sync_once(&world, env));
    let (kinds_a, api_a) = calls_since(&world.a, &before[0]);
    let (kinds_b, api_b) = calls_since(&world.b, &before[1]);
    tokio::task::block_in_place(|| assert_converged(&world, N));
    // A: the estimate's query page, the describe, the job's create, polls, one results page
    // (250,000 rows a page), its delete; and B -> A's quiet watermark query.
    assert_eq!(kinds_a["bulk_query_create"], json!(1), "A: {kinds_a:?}");
    assert!(api_a <= 12, "A: {api_a} calls: {kinds_a:?}");
    // B: the count of its records and their staging (none yet: one REST page), one upsert
    // job (create, upload, close, polls, three result files); B -> A's query.
    assert_eq!(kinds_b["bulk_ingest_create"], json!(1), "B: {kinds_b:?}");
    assert!(
        !kinds_b.contains_key("collections_upsert"),
        "B: {kinds_b:?}"
    );
    assert!(api_b <= 16, "B: {api_b} calls: {kinds_b:?}");
    eprintln!("new: A {api_a} calls {kinds_a:?}; B {api_b} calls {kinds_b:?}");

    // Every record edited in A by a person.
    let edits: Vec<(String, serde_json::Map<String, Value>)> = world
        .a
        .db()
        .query(
            "SELECT Id FROM Opportunity",
            false,
            "62.0",
            chrono::Utc::now(),
        )
        .expect("ids")
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .map(|id| {
            let mut body = serde_json::Map::new();
            body.insert("Description".into(), json!("edited in A"));
            (id, body)
        })
        .collect();
    assert_eq!(edits.len(), N);
    let person = human(&world.a);
    person
        .update("Opportunity", &edits)
        .await
        .expect("edits in A");
    let before = [world.a.stats(), world.b.stats()];
    tokio::task::block_in_place(|| sync_once(&world, env));
    let (kinds_a, api_a) = calls_since(&world.a, &before[0]);
    let (kinds_b, api_b) = calls_since(&world.b, &before[1]);
    tokio::task::block_in_place(|| assert_converged(&world, N));
    assert!(api_a <= 12, "A: {api_a} calls: {kinds_a:?}");
    // B: the count, a query job staging its 20,000 records (create, polls, a page, delete),
    // one update job.
    assert_eq!(kinds_b["bulk_query_create"], json!(1), "B: {kinds_b:?}");
    assert_eq!(kinds_b["bulk_ingest_create"], json!(1), "B: {kinds_b:?}");
    assert!(
        !kinds_b.contains_key("collections_update"),
        "B: {kinds_b:?}"
    );
    assert!(api_b <= 20, "B: {api_b} calls: {kinds_b:?}");
    let edited = world
        .b
        .db()
        .query(
            "SELECT Description FROM Opportunity",
            false,
            "62.0",
            chrono::Utc::now(),
        )
        .expect("descriptions")
        .iter()
        .filter(|r| r["Description"] == json!("edited in A"))
        .count();
    assert_eq!(edited, N);
    eprintln!("updates: A {api_a} calls {kinds_a:?}; B {api_b} calls {kinds_b:?}");
}
