//! `orgsync demo --records 50` as a user runs it: it converges, says so, keeps running, and
//! exits 0 on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A safety net so a broken demo fails the test instead of hanging it; not a speed assertion.
const GIVE_UP: Duration = Duration::from_secs(300);

#[test]
fn the_demo_converges_then_stops_cleanly_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .args(["demo", "--records", "50", "--interval", "200ms"])
        .env_remove("RUST_LOG")
        .env_remove("ORGSYNC_ENV")
        .env_remove("ORGSYNC_CONFIG_DIR")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start orgsync demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut seen = Vec::new();
    let agreed = loop {
        match rx.recv_timeout(GIVE_UP) {
            Ok(line) => {
                let done = line.starts_with("both orgs agree");
                seen.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !agreed {
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        panic!(
            "the demo never said the orgs agree; stdout:\n{}\nstderr:\n{}",
            seen.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let agreement = seen.last().cloned().unwrap_or_default();
    // 50 records: 20 only in A, 15 only in B, 15 in both -> 50 in each org.
    assert!(
        agreement.contains("50 opportunities in A, 50 in B"),
        "{agreement}"
    );
    let all = seen.join("\n");
    assert!(all.contains("human@a.sim edits"), "{all}");
    assert!(all.contains("human@b.sim edits"), "{all}");
    assert!(all.contains("A -> B  read"), "{all}");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait for the demo");
    reader.join().expect("reader thread");
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout after agreement:\n{}\nstderr:\n{}",
        rest.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rest.iter().any(|l| l.starts_with("stopped")),
        "{}",
        rest.join("\n")
    );
}

#[test]
fn sigterm_during_the_first_sync_finishes_the_page_and_exits_0() {
    // 3,000 opportunities at 20 ms a call: the first cycle takes dozens of pages, so the
    // signal lands while it runs.
    let mut child = Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .args(["demo", "--records", "3000", "--latency-ms", "20"])
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start orgsync demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let started = line.starts_with("syncing every");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.starts_with("syncing every")),
        "{}",
        seen.join("\n")
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let rest: Vec<String> = lines.collect();
    let out = child.wait_with_output().expect("wait for the demo");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        rest.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rest.iter().any(|l| l.starts_with("stopped")),
        "{}",
        rest.join("\n")
    );
    // The cycle was cut short: the orgs did not get to agree.
    assert!(
        !rest.iter().any(|l| l.starts_with("both orgs agree")),
        "{}",
        rest.join("\n")
    );
}
