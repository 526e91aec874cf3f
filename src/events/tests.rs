//! Each event emits its log line and its metric together.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::*;
use super::record::*;
use super::*;
use crate::metrics::Gauges;
use crate::metrics::Metrics;
use crate::store::{Direction, Org};
use crate::sync::PassReport;

/// The log lines `f` emits (every level, no time, no colour).
fn capture(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .without_time()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().expect("buffer").clone();
    String::from_utf8(bytes).expect("utf-8 log")
}

/// The value of one series in `metrics`' text, if served.
fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics
        .render(&Gauges::default())
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_finished_pass_logs_its_summary_and_counts_its_records_and_duration() {
    let metrics = Metrics::default();
    let report = PassReport {
        read: 9,
        created: 2,
        updated: 1,
        linked: 1,
        skipped: 4,
        failed: 1,
        ..PassReport::default()
    };
    let log = capture(|| {
        PassFinished {
            cycle: 7,
            direction: Direction::BToA,
            kind: "poll",
            report: report.counts(),
            elapsed: Duration::from_millis(250),
        }
        .emit(&metrics)
    });
    assert!(log.contains(" INFO "), "{log}");
    assert!(log.contains("direction pass finished"), "{log}");
    for field in [
        "cycle=7",
        "direction=b_to_a",
        "kind=\"poll\"",
        "created=2",
        "elapsed_ms=250",
    ] {
        assert!(log.contains(field), "{field} in {log}");
    }
    assert_eq!(log.lines().count(), 1, "{log}");
    let synced = "orgsync_records_synced_total{direction=\"b_to_a\"}";
    assert_eq!(sample(&metrics, synced), Some(4.0));
    assert_eq!(
        sample(
            &metrics,
            "orgsync_records_failed_total{direction=\"b_to_a\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "orgsync_records_skipped_total{direction=\"b_to_a\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "orgsync_cycle_duration_seconds_count{direction=\"b_to_a\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "orgsync_cycle_duration_seconds_bucket{direction=\"b_to_a\",le=\"0.25\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "orgsync_last_cycle_duration_seconds{direction=\"b_to_a\"}"
        ),
        Some(0.25)
    );
    // The other direction is untouched.
    assert_eq!(
        sample(
            &metrics,
            "orgsync_records_synced_total{direction=\"a_to_b\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn an_idle_pass_logs_at_debug_and_is_still_timed() {
    let metrics = Metrics::default();
    let report = PassReport {
        read: 3,
        skipped: 3,
        ..PassReport::default()
    };
    let log = capture(|| {
        PassFinished {
            cycle: 1,
            direction: Direction::AToB,
            kind: "inbox",
            report: report.counts(),
            elapsed: Duration::from_millis(20),
        }
        .emit(&metrics)
    });
    assert!(log.contains("DEBUG"), "{log}");
    assert!(!log.contains(" INFO "), "{log}");
    assert_eq!(
        sample(
            &metrics,
            "orgsync_cycle_duration_seconds_count{direction=\"a_to_b\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn a_failed_pass_is_an_error_unless_its_login_is_backing_off() {
    let failed = |login_backing_off| {
        capture(|| {
            PassFailed {
                cycle: 3,
                direction: Direction::AToB,
                kind: "retries",
                error: "boom",
                login_backing_off,
            }
            .emit()
        })
    };
    let log = failed(false);
    assert!(
        log.contains("ERROR") && log.contains("direction pass failed"),
        "{log}"
    );
    assert!(
        log.contains("cycle=3") && log.contains("error=boom"),
        "{log}"
    );
    let log = failed(true);
    assert!(
        log.contains("DEBUG") && log.contains("login is backing off"),
        "{log}"
    );
}

#[test]
fn outbound_messages_count_by_org_and_result_and_log() {
    let metrics = Metrics::default();
    let log = capture(|| {
        OutboundAcked {
            org: Org::B,
            notifications: 5,
            new: 2,
        }
        .emit(&metrics);
        OutboundAcked {
            org: Org::B,
            notifications: 1,
            new: 0,
        }
        .emit(&metrics);
        OutboundRefused {
            org: "unknown",
            reason: "no source",
            client: true,
        }
        .emit(&metrics);
        OutboundRefused {
            org: "a",
            reason: "cannot store",
            client: false,
        }
        .emit(&metrics);
    });
    let messages = |org: &str, result: &str| {
        sample(
            &metrics,
            &format!("orgsync_outbound_messages_total{{org=\"{org}\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(messages("b", "acked"), Some(2.0));
    assert_eq!(messages("unknown", "refused"), Some(1.0));
    assert_eq!(messages("a", "refused"), Some(1.0));
    assert_eq!(
        sample(&metrics, "orgsync_outbound_notifications_total{org=\"b\"}"),
        Some(6.0)
    );
    assert_eq!(
        sample(&metrics, "orgsync_outbound_notifications_total{org=\"a\"}"),
        Some(0.0)
    );
    assert_eq!(
        log.matches("outbound message stored; acked").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains(" WARN ") && log.contains("outbound message refused"),
        "{log}"
    );
    assert!(
        log.contains("ERROR") && log.contains("Salesforce will retry it"),
        "{log}"
    );
}

#[test]
fn each_per_record_event_logs_its_line_and_counts_in_its_own_family() {
    let metrics = Metrics::default();
    let d = Direction::AToB;
    let body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"Name": "Big deal", "Amount": 5}"#).expect("json");
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time");
    let log = capture(|| {
        let (cycle, direction) = (4, d);
        RecordWritten {
            cycle,
            direction,
            source_id: "s1",
            target_id: "t1",
            created: true,
        }
        .emit(&metrics);
        RecordWritten {
            cycle,
            direction,
            source_id: "s2",
            target_id: "t2",
            created: false,
        }
        .emit(&metrics);
        RecordUpdated {
            cycle,
            direction,
            source_id: "s3",
            target_id: "t3",
            body: &body,
        }
        .emit(&metrics);
        RecordLinked {
            cycle,
            direction,
            source_id: "s4",
            target_id: "t4",
        }
        .emit(&metrics);
        RecordSkipped {
            cycle,
            direction,
            source_id: "s5",
            target_id: None,
            reason: "echo",
        }
        .emit(&metrics);
        Conflict {
            cycle,
            direction,
            source_id: "s6",
            target_id: "t6",
            field: "Amount",
            source_value: "5",
            target_value: "6",
            source_last_modified: at,
            target_last_modified: at,
            winner: "target",
            policy: &"newest_wins",
        }
        .emit(&metrics);
        FailureQueued {
            cycle,
            direction,
            source_id: "s7",
            target_id: None,
            code: "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            message: "no",
            class: "needs_edit",
        }
        .emit(&metrics);
        ReverseQueued {
            cycle,
            direction,
            source_id: "s8",
            target_id: "t8",
        }
        .emit(&metrics);
        FailureCleared {
            cycle,
            direction,
            source_id: "s9",
        }
        .emit(&metrics);
        let account = |created| ParentAccount {
            cycle,
            direction,
            account: "Acme",
            source_id: "s10",
            target_id: "t10",
            created,
        };
        account(false).emit(&metrics);
        account(true).emit(&metrics);
    });
    let series = [
        (
            "orgsync_record_writes_total{direction=\"a_to_b\",operation=\"create\"}",
            1.0,
        ),
        (
            "orgsync_record_writes_total{direction=\"a_to_b\",operation=\"update\"}",
            2.0,
        ),
        ("orgsync_record_links_total{direction=\"a_to_b\"}", 1.0),
        (
            "orgsync_record_skips_total{direction=\"a_to_b\",reason=\"echo\"}",
            1.0,
        ),
        (
            "orgsync_conflicts_total{direction=\"a_to_b\",winner=\"target\"}",
            1.0,
        ),
        (
            "orgsync_failures_queued_total{direction=\"a_to_b\",class=\"needs_edit\"}",
            1.0,
        ),
        ("orgsync_reverses_queued_total{direction=\"a_to_b\"}", 1.0),
        ("orgsync_failures_cleared_total{direction=\"a_to_b\"}", 1.0),
        (
            "orgsync_parent_accounts_total{direction=\"a_to_b\",how=\"found\"}",
            1.0,
        ),
        (
            "orgsync_parent_accounts_total{direction=\"a_to_b\",how=\"created\"}",
            1.0,
        ),
    ];
    for (name, value) in series {
        assert_eq!(sample(&metrics, name), Some(value), "{name}");
    }
    // They do not touch the pass-level families (PassFinished counts those).
    assert_eq!(
        sample(
            &metrics,
            "orgsync_records_synced_total{direction=\"a_to_b\"}"
        ),
        Some(0.0)
    );
    for message in [
        "record written to the target",
        "record updated in the target",
        "values written to the target",
        "linked to an existing record with equal values",
        "record skipped",
        "conflict: both sides changed the field",
        "record failed: kept in the failure queue",
        "target holds newer values: queued to be carried back",
        "failed record no longer exists in the source: failure cleared",
        "parent account found in the target by Name: linked",
        "parent account created in the target",
    ] {
        assert!(log.contains(message), "{message} in {log}");
    }
    // One line per event (the update's values line at debug is its second), each with the
    // cycle, the direction and the source id.
    assert_eq!(log.lines().count(), 12, "{log}");
    for line in log.lines() {
        assert!(
            line.contains("cycle=4") && line.contains("direction=a_to_b"),
            "{line}"
        );
        // (the created account's id is logged as a plain string, so quoted in text logs)
        assert!(
            line.contains("source_id=s") || line.contains("source_id=\"s"),
            "{line}"
        );
    }
    assert!(
        log.contains("fields=Name,Amount") || log.contains("fields=Amount,Name"),
        "{log}"
    );
    // Every per-record family is declared with its help and type.
    let text = metrics.render(&Gauges::default());
    for name in crate::metrics::PER_RECORD {
        assert!(text.contains(&format!("# TYPE {name} counter\n")), "{name}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
}

#[test]
fn client_state_changes_log_one_line_each() {
    let log = capture(|| {
        LoginRefused {
            org: "a",
            auth: "password",
            code: "INVALID_LOGIN",
            error: "bad password",
            wait: Duration::from_secs(60),
        }
        .emit();
        LoginAcceptedAgain {
            org: "a",
            refusals: 2,
        }
        .emit();
        ApiPauseBegan {
            org: "b",
            code: "REQUEST_LIMIT_EXCEEDED",
            error: "limit",
        }
        .emit();
        ApiStillPaused {
            org: "b",
            paused_for: Duration::from_secs(90),
            code: "REQUEST_LIMIT_EXCEEDED",
        }
        .emit();
        ApiResumed {
            org: "b",
            lasted: Duration::from_secs(120),
        }
        .emit();
    });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5, "{log}");
    assert!(
        lines[0].contains("ERROR")
            && lines[0].contains("orgs.a.*")
            && lines[0].contains("next_attempt_in_s=60")
    );
    assert!(lines[1].contains("login accepted again") && lines[1].contains("refusals=2"));
    assert!(lines[2].contains(" WARN ") && lines[2].contains("org paused on its API limit"));
    assert!(lines[3].contains("org still paused") && lines[3].contains("paused_for_s=90"));
    assert!(lines[4].contains("org resumed") && lines[4].contains("paused_for_s=120"));
}

#[test]
fn the_heartbeat_says_idle_and_housekeeping_logs_only_when_it_deleted_something() {
    let log = capture(|| {
        Heartbeat {
            policy: &"Push",
            cycles: 3,
            written: 0,
            failed: 0,
            last_cycle: 9,
        }
        .emit();
        Heartbeat {
            policy: &"Push",
            cycles: 1,
            written: 2,
            failed: 0,
            last_cycle: 10,
        }
        .emit();
        Housekeeping::Done {
            inbox_rows: 0,
            cycles: 0,
        }
        .emit();
        Housekeeping::Done {
            inbox_rows: 4,
            cycles: 1,
        }
        .emit();
        Housekeeping::Failed {
            error: "disk full".into(),
        }
        .emit();
    });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines[0].contains("orgsync alive: idle") && lines[0].contains("last_cycle=9"));
    assert!(lines[1].contains("orgsync alive") && !lines[1].contains("idle"));
    assert!(lines[2].contains("inbox_rows=4") && lines[2].contains("cycles=1"));
    assert!(lines[3].contains(" WARN ") && lines[3].contains("disk full"));
}

#[test]
fn the_delete_events_log_one_line_each_and_count_in_their_own_families() {
    use super::deletes::{DeleteConflict, DeletesHeld, RecordDeleted};
    let metrics = Metrics::default();
    let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let log = capture(|| {
        for already_gone in [false, true] {
            RecordDeleted {
                cycle: 4,
                direction: Direction::AToB,
                source_id: "s1",
                target_id: "t1",
                already_gone,
            }
            .emit(&metrics);
        }
        DeleteConflict {
            cycle: 4,
            direction: Direction::AToB,
            source_id: "s2",
            target_id: "t2",
            source_deleted_at: at,
            target_last_modified: at,
            edited_fields: "Amount",
            synced_values: r#"{"Amount":100}"#,
            target_values: r#"{"Amount":250}"#,
            resolution: "keep_edit",
        }
        .emit(&metrics);
        DeletesHeld {
            cycle: 4,
            direction: Direction::AToB,
            count: 150,
            limit: 100,
        }
        .emit(&metrics);
    });
    assert_eq!(log.lines().count(), 4, "{log}");
    for line in log.lines() {
        assert!(
            line.contains("cycle=4") && line.contains("direction=a_to_b"),
            "{line}"
        );
    }
    assert!(log.contains("edited_fields=Amount") && log.contains("resolution=\"keep_edit\""));
    assert!(
        log.contains(r#"synced_values={"Amount":100}"#)
            && log.contains(r#"target_values={"Amount":250}"#),
        "{log}"
    );
    assert!(log.contains("ERROR") && log.contains("count=150"), "{log}");
    let text = metrics.render(&Gauges::default());
    for name in crate::metrics::DELETE_EVENTS {
        assert!(text.contains(&format!("# TYPE {name} counter\n")), "{name}");
    }
    assert!(
        text.contains(
            "orgsync_record_deletes_total{direction=\"a_to_b\",outcome=\"already_gone\"} 1"
        ),
        "{text}"
    );
}
