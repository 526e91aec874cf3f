//! The page pipeline against the fake ports: triage, lookup, plan, writes, the commit, the
//! failure queue, the inbox, API-limit pauses, crashes; then the same pipeline over the real
//! SQLite store.

use super::*;

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn first_sync_creates_and_links_every_record() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("One", 10), opp("Two", 20)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.read, 2);
    assert_eq!(report.created, 2);
    assert_eq!(report.failed, 0);
    assert_eq!(report.outcome, PassOutcome::Completed);
    assert_eq!(w.b.len(), 2);
    let state = w.store.state();
    assert_eq!(state.links.len(), 2);
    for id in &ids {
        let link = state.links.iter().find(|l| &l.a_id == id).expect("linked");
        let b = w.b.get(&link.b_id);
        assert_eq!(
            w.mapping.to_canonical(Org::B, &b),
            w.mapping.to_canonical(Org::A, &w.a.get(id))
        );
    }
    // The watermark is the page's highest SystemModstamp.
    let a_stamp = parse_datetime(
        w.a.get(&ids[0])["SystemModstamp"]
            .as_str()
            .expect("modstamp"),
    );
    assert_eq!(state.watermarks.get(&Org::A).copied(), a_stamp);
}

#[tokio::test]
async fn ties_1000_rows_one_modstamp_page_200_all_arrive_within_the_call_bound() {
    let w = World::new();
    let bodies = (0..1000).map(|i| opp(&format!("Deal {i:04}"), i)).collect();
    w.a.human_create(bodies);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1000);
    assert_eq!(report.pages, 5);
    assert_eq!(w.b.len(), 1000);
    assert_eq!(w.store.state().links.len(), 1000);
    // ceil(X/2000) + 2*ceil(X/page_size) + 2 = 1 + 10 + 2.
    let calls = w.a.calls().total() + w.b.calls().total();
    assert!(
        calls <= 13,
        "{calls} calls: {:?} {:?}",
        w.a.calls(),
        w.b.calls()
    );
    assert_eq!(report.api_calls as usize, calls);
    assert_eq!(w.b.calls().create, 5);

    // Quiescence: the replay of the shared timestamp costs one query and no write.
    w.reset_calls();
    let again = w.run(Direction::AToB).await;
    assert_eq!(again.skipped, 1000);
    assert_eq!(w.a.calls().total(), 1);
    assert_eq!(w.b.calls().total(), 0);
    // Our own creates do not come back: filtered by LastModifiedById...
    let back = w.run(Direction::BToA).await;
    assert_eq!(back.read, 0);
    // ...and recognised by the snapshot when that filter is off.
    w.reset_calls();
    let mut cfg = config(Direction::BToA);
    cfg.skip_integration_user_changes = false;
    let echo = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.read, 1000);
    assert_eq!(echo.skipped, 1000);
    assert_eq!(w.a.calls().writes() + w.b.calls().writes(), 0);
    assert_eq!(w.a.calls().query, 0, "no lookup for echoes");
}

#[tokio::test]
async fn crash_between_write_and_commit_then_rerun_creates_no_duplicate() {
    let w = World::new();
    w.a.human_create((0..5).map(|i| opp(&format!("Deal {i}"), i)).collect());
    w.store.0.fail_commits.store(1, Ordering::SeqCst);
    let crashed = w
        .run_with(&config(Direction::AToB), &CancellationToken::new())
        .await;
    assert!(matches!(crashed, Err(PassError::Store(_))));
    // The writes happened, the page's outcomes did not.
    assert_eq!(w.b.len(), 5);
    let state = w.store.state();
    assert!(state.links.is_empty());
    assert!(state.watermarks.is_empty());

    // The rerun finds the copies by Name and links them: no second copy.
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.linked, 5);
    assert_eq!(report.created, 0);
    assert_eq!(w.b.len(), 5);
    assert_eq!(w.store.state().links.len(), 5);
}

#[tokio::test]
async fn crash_with_external_id_field_replays_as_upsert_without_duplicate() {
    let w = World::new();
    let ids =
        w.a.human_create((0..5).map(|i| opp("Same name", i)).collect());
    let mut cfg = config(Direction::AToB);
    cfg.external_id_field = Some("Sync_Id__c".into());
    w.store.0.fail_commits.store(1, Ordering::SeqCst);
    assert!(w.run_with(&cfg, &CancellationToken::new()).await.is_err());
    assert_eq!(w.b.calls().upsert, 1);
    assert_eq!(w.b.len(), 5);
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    // Found again through the external id (even though all share one Name).
    assert_eq!(report.linked, 5);
    assert_eq!(report.failed, 0);
    assert_eq!(w.b.len(), 5);
    let state = w.store.state();
    for id in &ids {
        let link = state.links.iter().find(|l| &l.a_id == id).expect("linked");
        assert_eq!(w.b.get(&link.b_id)["Sync_Id__c"], json!(id));
    }
}

#[tokio::test]
async fn failing_record_does_not_block_its_page_and_is_retried() {
    let w = World::new();
    let ids = w.a.human_create(vec![
        opp("Good 1", 1),
        opp("Bad REJECT", 2),
        opp("Good 2", 3),
    ]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 2);
    assert_eq!(report.failed, 1);
    assert_eq!(w.b.len(), 2);
    let state = w.store.state();
    assert_eq!(state.failures.len(), 1);
    let failure = &state.failures[0];
    assert_eq!(failure.source_id, ids[1]);
    assert_eq!(failure.error_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    // Needs an edit: waits for the source record to change (or an operator), on no timer.
    assert_eq!(failure.state, FailureState::Waiting);
    assert_eq!(failure.class, FailureClass::NeedsEdit);
    assert_eq!(failure.next_attempt_at, None);
    // The values that were sent are kept with it.
    let sent = failure.sent.as_ref().expect("values sent");
    assert_eq!(sent.get("Name"), Some(&json!("Bad REJECT")));
    // The watermark moved past the page anyway: the outcome is durable.
    assert!(state.watermarks.contains_key(&Org::A));

    // Reading the same version again leaves it to the queue, at no cost.
    w.reset_calls();
    let again = w.run(Direction::AToB).await;
    assert_eq!(again.failed, 0);
    assert_eq!(w.b.calls().total(), 0);

    // The validation is fixed and an operator retries: it syncs and leaves the queue.
    w.b.state().reject_marker = None;
    {
        let mut s = w.store.0.state.lock().expect("lock");
        for f in s.failures.iter_mut() {
            f.state = FailureState::Pending;
            f.attempts = 0;
            f.next_attempt_at = Some(Utc::now());
        }
    }
    let retried = w.run(Direction::AToB).await;
    assert_eq!(retried.created, 1);
    assert_eq!(w.b.len(), 3);
    assert!(w.store.state().failures.is_empty());
}

#[tokio::test]
async fn retryable_failures_back_off_then_die_after_max_attempts() {
    let w = World::new();
    w.a.human_create(vec![opp("Locked", 1)]);
    let mut cfg = config(Direction::AToB);
    cfg.backoff.max_attempts = 2;
    // The whole create call fails with a retryable error.
    struct Flaky<'o>(&'o FakeOrg);
    impl OrgPort for Flaky<'_> {
        async fn query(&self, q: &RecordQuery) -> Result<Batch, PortError> {
            self.0.query(q).await
        }
        async fn query_more(&self, c: &str) -> Result<Batch, PortError> {
            self.0.query_more(c).await
        }
        async fn create(
            &self,
            _: &str,
            _: &[Map<String, Value>],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            Err(PortError {
                kind: ErrorKind::Transient,
                code: "SERVER_UNAVAILABLE".into(),
                message: "503".into(),
            })
        }
        async fn update(
            &self,
            o: &str,
            r: &[(String, Map<String, Value>)],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            self.0.update(o, r).await
        }
        async fn upsert(
            &self,
            o: &str,
            f: &str,
            r: &[Map<String, Value>],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            self.0.upsert(o, f, r).await
        }
        async fn delete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
            OrgPort::delete(self.0, ids).await
        }
        async fn undelete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
            OrgPort::undelete(self.0, ids).await
        }
        async fn count_deleted(&self, query: &RecordQuery) -> Result<u64, PortError> {
            OrgPort::count_deleted(self.0, query).await
        }
    }
    let flaky = Flaky(&w.b);
    let cancel = CancellationToken::new();
    let pass = Pass::new(&cfg, &w.mapping, &w.a, &flaky, &w.store, &w.metrics);
    let first = pass.sync_changes(&cancel).await.expect("pass");
    assert_eq!(first.failed, 1);
    let f = &w.store.state().failures[0];
    assert_eq!((f.state, f.attempts), (FailureState::Pending, 1));
    assert_eq!(f.error_code, "SERVER_UNAVAILABLE");
    let second = pass.retry_failures(&cancel).await.expect("retry");
    assert_eq!(second.failed, 1);
    let f = &w.store.state().failures[0];
    assert_eq!((f.state, f.attempts), (FailureState::Dead, 2));
    // Dead: no longer due.
    let third = pass.retry_failures(&cancel).await.expect("retry");
    assert_eq!(third.read, 0);
}

#[tokio::test]
async fn newer_version_replaces_the_queued_failure_and_is_tried_now() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Bad REJECT", 1)]);
    w.run(Direction::AToB).await;
    assert_eq!(w.store.state().failures.len(), 1);
    w.a.human_edit(&ids[0], json!({"Name": "Fixed"}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1);
    assert!(w.store.state().failures.is_empty());
}

/// The value of one series of `/metrics` (0 when it is absent).
fn series(metrics: &Metrics, series: &str) -> u64 {
    let text = metrics.render(&crate::metrics::Gauges::default());
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().expect("a count"))
}

#[tokio::test]
async fn the_pass_counts_its_per_record_events_once_each() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Good", 1), opp("Bad REJECT", 2)]);
    w.run(Direction::AToB).await;
    let writes = r#"orgsync_record_writes_total{direction="a_to_b",operation="create"}"#;
    let queued = r#"orgsync_failures_queued_total{direction="a_to_b",class="needs_edit"}"#;
    assert_eq!(series(&w.metrics, writes), 1);
    assert_eq!(series(&w.metrics, queued), 1);
    // Read again: the queued record is skipped, the written one is a replay.
    w.run(Direction::AToB).await;
    assert_eq!(series(&w.metrics, writes), 1);
    assert_eq!(series(&w.metrics, queued), 1);
    let skips = |reason: &str| {
        series(
            &w.metrics,
            &format!(r#"orgsync_record_skips_total{{direction="a_to_b",reason="{reason}"}}"#),
        )
    };
    assert_eq!(skips("queued") + skips("replay"), 2);
    // An edit is an update.
    w.a.human_edit(&ids[0], json!({"Amount": 99.0}));
    w.run(Direction::AToB).await;
    let updates = r#"orgsync_record_writes_total{direction="a_to_b",operation="update"}"#;
    assert_eq!(series(&w.metrics, updates), 1);
}

#[tokio::test]
async fn a_conflict_and_its_carry_back_are_counted() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 10)]);
    w.run(Direction::AToB).await;
    w.run(Direction::BToA).await;
    let b_id = w.store.state().links[0].b_id.clone();
    w.a.human_edit(&ids[0], json!({"Amount": 11}));
    w.b.state().clock_ms += 5;
    w.b.human_edit(&b_id, json!({"Amount": 22}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.conflicts, 1);
    let conflicts = r#"orgsync_conflicts_total{direction="a_to_b",winner="target"}"#;
    assert_eq!(series(&w.metrics, conflicts), report.conflicts);
    let reversed = r#"orgsync_reverses_queued_total{direction="a_to_b"}"#;
    assert_eq!(series(&w.metrics, reversed), report.reversed);
    assert_eq!(report.reversed, 1);
}

#[tokio::test]
async fn linked_edit_is_updated_and_its_echo_is_quiet() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 10)]);
    w.run(Direction::AToB).await;
    w.a.human_edit(&ids[0], json!({"Amount": 99.0}));
    w.reset_calls();
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.calls().update, 1);
    let b = w.b.find_by_name("Deal");
    assert_eq!(b[0]["Amount"], json!(99));

    // People share the integration user: our update comes back, the snapshot stops it.
    let mut cfg = config(Direction::BToA);
    cfg.skip_integration_user_changes = false;
    w.reset_calls();
    let echo = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.skipped, echo.read);
    assert_eq!(w.a.calls().total() + w.b.calls().writes(), 0);
}

#[tokio::test]
async fn target_edited_after_the_source_is_not_overwritten_and_travels_back() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 10)]);
    w.run(Direction::AToB).await;
    w.run(Direction::BToA).await;
    let b_id = w.store.state().links[0].b_id.clone();
    // Both edit Amount; B's edit is later.
    w.a.human_edit(&ids[0], json!({"Amount": 11}));
    w.b.state().clock_ms += 5;
    w.b.human_edit(&b_id, json!({"Amount": 22}));

    let ab = w.run(Direction::AToB).await;
    assert_eq!(ab.conflicts, 1);
    assert_eq!(ab.updated, 0);
    assert_eq!(w.b.get(&b_id)["Amount"], json!(22));
    let ba = w.run(Direction::BToA).await;
    assert_eq!(ba.updated, 1);
    assert_eq!(w.a.get(&ids[0])["Amount"], json!(22));
    // Converged, then quiet.
    w.reset_calls();
    w.run(Direction::AToB).await;
    w.run(Direction::BToA).await;
    assert_eq!(w.a.calls().writes() + w.b.calls().writes(), 0);
}

#[tokio::test]
async fn a_wins_overwrites_a_newer_target() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 10)]);
    w.run(Direction::AToB).await;
    let b_id = w.store.state().links[0].b_id.clone();
    w.a.human_edit(&ids[0], json!({"Amount": 11}));
    w.b.state().clock_ms += 5;
    w.b.human_edit(&b_id, json!({"Amount": 22}));
    let mut cfg = config(Direction::AToB);
    cfg.conflict = ConflictPolicy::AWins;
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(report.conflicts, 1);
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.get(&b_id)["Amount"], json!(11));
}

#[tokio::test]
async fn first_link_to_a_newer_target_is_carried_back_through_the_inbox() {
    let w = World::new();
    // Both orgs already hold "Deal"; B's copy is newer and differs. B->A has read past it.
    let a_ids = w.a.human_create(vec![opp("Deal", 1)]);
    w.b.state().clock_ms += 10;
    w.b.human_create(vec![opp("Deal", 2)]);
    w.store
        .set_watermark(Org::B, base_time() + chrono::Duration::days(1));

    let ab = w.run(Direction::AToB).await;
    assert_eq!(ab.linked, 1);
    assert_eq!(ab.reversed, 1);
    assert_eq!(ab.conflicts, 1);
    assert_eq!(w.b.find_by_name("Deal")[0]["Amount"], json!(2));
    // B->A reads nothing new, but the inbox carries B's value to A.
    let ba = w.run(Direction::BToA).await;
    assert_eq!(ba.updated, 1);
    assert_eq!(w.a.get(&a_ids[0])["Amount"], json!(2));
    assert!(w.store.state().inbox.iter().all(|(_, done)| *done));
}

#[tokio::test]
async fn limit_exceeded_pauses_without_recording_anything() {
    let w = World::new();
    w.a.human_create(vec![opp("Deal", 1)]);
    w.b.state().limit_exceeded = true;
    let report = w.run(Direction::AToB).await;
    assert!(matches!(
        &report.outcome,
        PassOutcome::Paused { org: Org::B, error } if error.kind == ErrorKind::Limit
    ));
    let state = w.store.state();
    assert!(state.failures.is_empty());
    assert!(state.links.is_empty());
    assert!(state.watermarks.is_empty());
    // Resumes next cycle.
    w.b.state().limit_exceeded = false;
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1);
}

#[tokio::test]
async fn a_limit_on_the_write_call_alone_pauses_without_recording_anything() {
    let w = World::new();
    w.a.human_create(vec![opp("Deal", 1)]);
    // B answers the lookup, then refuses the create with its daily limit.
    struct LimitOnWrites<'o>(&'o FakeOrg);
    impl OrgPort for LimitOnWrites<'_> {
        async fn query(&self, q: &RecordQuery) -> Result<Batch, PortError> {
            self.0.query(q).await
        }
        async fn query_more(&self, c: &str) -> Result<Batch, PortError> {
            self.0.query_more(c).await
        }
        async fn create(
            &self,
            _: &str,
            _: &[Map<String, Value>],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            Err(PortError {
                kind: ErrorKind::Limit,
                code: "REQUEST_LIMIT_EXCEEDED".into(),
                message: "TotalRequests Limit exceeded.".into(),
            })
        }
        async fn update(
            &self,
            o: &str,
            r: &[(String, Map<String, Value>)],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            self.0.update(o, r).await
        }
        async fn upsert(
            &self,
            o: &str,
            f: &str,
            r: &[Map<String, Value>],
        ) -> Result<Vec<WriteOutcome>, PortError> {
            self.0.upsert(o, f, r).await
        }
        async fn delete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
            OrgPort::delete(self.0, ids).await
        }
        async fn undelete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
            OrgPort::undelete(self.0, ids).await
        }
        async fn count_deleted(&self, query: &RecordQuery) -> Result<u64, PortError> {
            OrgPort::count_deleted(self.0, query).await
        }
    }
    let cfg = config(Direction::AToB);
    let limited = LimitOnWrites(&w.b);
    let cancel = CancellationToken::new();
    let pass = Pass::new(&cfg, &w.mapping, &w.a, &limited, &w.store, &w.metrics);
    let report = pass.sync_changes(&cancel).await.expect("pass");
    assert!(matches!(
        report.outcome,
        PassOutcome::Paused { org: Org::B, .. }
    ));
    assert_eq!((report.failed, report.pages), (0, 0));
    let state = w.store.state();
    assert!(
        state.failures.is_empty(),
        "a limit is not the record's failure"
    );
    assert!(state.links.is_empty());
    assert!(state.watermarks.is_empty());
    drop(state);
    // Resumes next cycle.
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 1);
}

/// Cancels the pass after its first commit; returns the pages it committed and the records
/// B then holds, and checks that the next run picks up the rest.
async fn cancel_after_first_commit(in_flight: usize) -> (u64, usize) {
    let w = World::new();
    w.a.human_create((0..1000).map(|i| opp(&format!("D{i}"), i)).collect());
    let cancel = CancellationToken::new();
    *w.store.0.cancel_after.lock().expect("lock") = Some((1, cancel.clone()));
    let cfg = PassConfig {
        in_flight,
        ..config(Direction::AToB)
    };
    let report = w.run_with(&cfg, &cancel).await.expect("pass");
    assert_eq!(report.outcome, PassOutcome::Cancelled);
    assert!(w.store.state().watermarks.contains_key(&Org::A));
    let done = w.b.len();
    assert_eq!(done as u64, report.created);
    // The next run picks up the rest; the committed pages are a free replay.
    let rest = w.run(Direction::AToB).await;
    assert_eq!(rest.created as usize, 1000 - done);
    assert_eq!(rest.skipped as usize, done);
    assert_eq!(w.b.len(), 1000);
    (report.pages, done)
}

#[tokio::test]
async fn cancellation_stops_between_pages_after_committing_the_page_in_flight() {
    assert_eq!(cancel_after_first_commit(1).await, (1, 200));
}

#[tokio::test]
async fn cancellation_finishes_the_pages_in_flight_and_starts_no_other() {
    // Four pages start together; the cancel comes with the first commit: the three others
    // finish and commit, the fifth never starts.
    assert_eq!(cancel_after_first_commit(4).await, (4, 800));
}

#[tokio::test]
async fn deleted_linked_target_is_a_failure_never_a_recreation() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Deal", 1)]);
    w.run(Direction::AToB).await;
    let b_id = w.store.state().links[0].b_id.clone();
    w.b.delete(&b_id);
    w.a.human_edit(&ids[0], json!({"Amount": 5}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.failed, 1);
    assert_eq!(w.b.len(), 0);
    let failure = &w.store.state().failures[0];
    assert_eq!(failure.error_code, "LINKED_TARGET_MISSING");
    assert_eq!(failure.target_id.as_deref(), Some(b_id.as_str()));
}

#[tokio::test]
async fn ambiguous_match_is_a_failure_naming_every_candidate() {
    let w = World::new();
    let b_ids = w.b.human_create(vec![opp("Twin", 1), opp("Twin", 2)]);
    w.a.state().clock_ms += 10;
    w.a.human_create(vec![opp("Twin", 3)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.failed, 1);
    assert_eq!(w.b.len(), 2);
    let failure = &w.store.state().failures[0];
    assert_eq!(failure.error_code, "AMBIGUOUS_MATCH");
    assert!(b_ids.iter().all(|id| failure.message.contains(id.as_str())));
}

#[tokio::test]
async fn two_new_records_with_one_name_become_two() {
    let w = World::new();
    w.a.human_create(vec![opp("Same", 1), opp("Same", 2)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 2);
    assert_eq!(w.b.find_by_name("Same").len(), 2);
}

#[tokio::test]
async fn renamed_record_stays_linked() {
    let w = World::new();
    let ids = w.a.human_create(vec![opp("Old name", 1)]);
    w.run(Direction::AToB).await;
    w.a.human_edit(&ids[0], json!({"Name": "New name"}));
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.len(), 1);
    assert_eq!(w.b.find_by_name("New name").len(), 1);
}

#[tokio::test]
async fn mapped_fields_and_values_are_written_in_the_target_form() {
    let mut w = World::new();
    let fields: Vec<String> = ["Name", "StageName"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    w.mapping = Mapping::new(
        &fields,
        &BTreeMap::from([("StageName".to_string(), "Stage__c".to_string())]),
        &BTreeMap::from([(
            "StageName".to_string(),
            BTreeMap::from([("Prospecting".to_string(), "Lead".to_string())]),
        )]),
    )
    .expect("mapping");
    w.a.human_create(vec![json!({"Name": "Deal", "StageName": "Prospecting"})]);
    w.run(Direction::AToB).await;
    let b = &w.b.find_by_name("Deal")[0];
    assert_eq!(b["Stage__c"], json!("Lead"));
    // Back in A's terms, B's copy equals A's: an echo.
    let mut cfg = config(Direction::BToA);
    cfg.skip_integration_user_changes = false;
    let echo = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.skipped, 1);
}

#[tokio::test]
async fn parse_rows_reads_salesforce_datetimes_and_rejects_bad_rows() {
    let m = mapping();
    let Value::Object(record) = json!({
        "attributes": {"type": "Opportunity"},
        "Id": "006A", "SystemModstamp": "2013-05-20T20:49:32.000+0000",
        "LastModifiedDate": "2013-05-20T20:49:32.123Z", "LastModifiedById": "005X",
        "Name": "x", "Amount": 5000.0
    }) else {
        panic!("object")
    };
    let row = parse_source_row(Org::A, &m, &record).expect("row");
    assert_eq!(row.values.get("Amount"), Some(&json!(5000)));
    assert_eq!(row.last_modified_date.timestamp_subsec_millis(), 123);
    let mut bad = record.clone();
    bad.remove("SystemModstamp");
    let err = parse_source_row(Org::A, &m, &bad).expect_err("no modstamp");
    assert!(
        err.contains("006A") && err.contains("SystemModstamp"),
        "{err}"
    );
    bad.remove("Id");
    assert!(parse_target_row(Org::B, &m, None, &bad).is_err());
}

// ---------------------------------------------------------------------------------------------
// The same pipeline over the real SQLite store (the adapter in `adapters.rs`).
// ---------------------------------------------------------------------------------------------

async fn run_real(
    direction: Direction,
    a: &FakeOrg,
    b: &FakeOrg,
    store: &crate::store::Store,
    mapping: &Mapping,
) -> PassReport {
    let cfg = config(direction);
    let cancel = CancellationToken::new();
    let metrics = Metrics::default();
    let result = match direction {
        Direction::AToB => {
            Pass::new(&cfg, mapping, a, b, store, &metrics)
                .run(&cancel)
                .await
        }
        Direction::BToA => {
            Pass::new(&cfg, mapping, b, a, store, &metrics)
                .run(&cancel)
                .await
        }
    };
    result.expect("pass over the real store")
}

#[tokio::test]
async fn real_store_records_links_failures_watermarks_and_reverse_carries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let store = crate::store::Store::open(&url).await.expect("store");
    let (a, b, m) = (FakeOrg::new("A"), FakeOrg::new("B"), mapping());
    let ids = a.human_create(vec![opp("One", 1), opp("Two REJECT", 2), opp("Three", 3)]);

    let ab = run_real(Direction::AToB, &a, &b, &store, &m).await;
    assert_eq!((ab.created, ab.failed), (2, 1));
    let links = store
        .links_by_a_ids("Opportunity", &ids)
        .await
        .expect("links");
    assert_eq!(links.len(), 2);
    assert!(links.iter().all(|l| !l.snapshot.is_empty()));
    let failure = store
        .failure_for(Direction::AToB, "Opportunity", &ids[1])
        .await
        .expect("read")
        .expect("queued");
    assert_eq!(failure.error_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert!(
        store
            .watermark(Org::A, "Opportunity")
            .await
            .expect("watermark")
            .is_some()
    );

    // A conflict B wins, carried back through the real inbox.
    let one = links.iter().find(|l| l.a_id == ids[0]).expect("link");
    a.human_edit(&ids[0], json!({"Amount": 10}));
    b.state().clock_ms += 5;
    b.human_edit(&one.b_id, json!({"Amount": 20, "StageName": "Closed Won"}));
    let ab = run_real(Direction::AToB, &a, &b, &store, &m).await;
    assert_eq!((ab.conflicts, ab.reversed, ab.updated), (1, 1, 0));
    let ba = run_real(Direction::BToA, &a, &b, &store, &m).await;
    assert_eq!(ba.updated, 1);
    assert_eq!(a.get(&ids[0])["Amount"], json!(20));
    assert_eq!(a.get(&ids[0])["StageName"], json!("Closed Won"));
    assert!(
        store
            .pending_notifications(Org::B, 10)
            .await
            .expect("inbox")
            .is_empty()
    );

    // Quiet afterwards: no writes either way.
    a.reset_calls();
    b.reset_calls();
    run_real(Direction::AToB, &a, &b, &store, &m).await;
    run_real(Direction::BToA, &a, &b, &store, &m).await;
    assert_eq!(a.calls().writes() + b.calls().writes(), 0);
    assert_eq!(a.calls().query + b.calls().query, 2);
}
