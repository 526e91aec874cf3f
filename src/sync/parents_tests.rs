//! Parent accounts through the pipeline (`account.sync_policy`), against the fake ports.

use super::*;

// ---------------------------------------------------------------------------------------------
// Parent accounts
// ---------------------------------------------------------------------------------------------

pub(super) fn sync_account_world() -> (World, PassConfig) {
    let mut w = World::new();
    w.mapping = mapping().with_parent_field("Account.Name");
    let mut cfg = config(Direction::AToB);
    cfg.account = AccountMode::SyncByName {
        fields: vec!["Name".into(), "Industry".into()],
    };
    (w, cfg)
}

#[tokio::test]
async fn sync_account_finds_parents_by_name_and_creates_missing_ones_once_per_page() {
    let (w, cfg) = sync_account_world();
    let acme_a = w.a.human_create_in(
        "Account",
        vec![json!({"Name": "Acme", "Industry": "Retail"})],
    );
    let globex_a =
        w.a.human_create_in("Account", vec![json!({"Name": "Globex"})]);
    let acme_b =
        w.b.human_create_in("Account", vec![json!({"Name": "ACME"})]);
    w.a.human_create(vec![
        json!({"Name": "O1", "AccountId": acme_a[0]}),
        json!({"Name": "O2", "AccountId": globex_a[0]}),
        json!({"Name": "O3", "AccountId": globex_a[0]}),
        json!({"Name": "O4"}),
    ]);
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(report.created, 4);
    let accounts = w.b.accounts();
    assert_eq!(accounts.len(), 2, "Globex created once: {accounts:?}");
    let globex_b = accounts
        .iter()
        .find(|a| a["Name"] == json!("Globex"))
        .expect("Globex created");
    assert_eq!(w.b.find_by_name("O1")[0]["AccountId"], json!(acme_b[0]));
    assert_eq!(w.b.find_by_name("O2")[0]["AccountId"], globex_b["Id"]);
    assert_eq!(w.b.find_by_name("O3")[0]["AccountId"], globex_b["Id"]);
    assert!(w.b.find_by_name("O4")[0].get("AccountId").is_none());
    // One Opportunity lookup, one Account lookup, one Account create, one Opportunity create.
    assert_eq!(w.b.calls().query, 2);
    assert_eq!(w.b.calls().create, 2);

    // A change of parent is a change like any other; the echo of it is quiet.
    let o1 = w.a.find_by_name("O1")[0]["Id"]
        .as_str()
        .expect("id")
        .to_string();
    w.a.human_edit(&o1, json!({"AccountId": globex_a[0]}));
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.find_by_name("O1")[0]["AccountId"], globex_b["Id"]);
    let mut back = config(Direction::BToA);
    back.account = cfg.account.clone();
    back.skip_integration_user_changes = false;
    w.reset_calls();
    let echo = w
        .run_with(&back, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(echo.skipped, echo.read);
    assert_eq!(w.a.calls().total() + w.b.calls().writes(), 0);
}

#[tokio::test]
async fn sync_account_never_guesses_between_two_parents_with_one_name() {
    let (w, cfg) = sync_account_world();
    let twin =
        w.a.human_create_in("Account", vec![json!({"Name": "Twin"})]);
    w.b.human_create_in(
        "Account",
        vec![json!({"Name": "Twin"}), json!({"Name": "Twin"})],
    );
    w.a.human_create(vec![
        json!({"Name": "Child", "AccountId": twin[0]}),
        json!({"Name": "Free"}),
    ]);
    let report = w
        .run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!((report.created, report.failed), (1, 1));
    let failure = &w.store.state().failures[0];
    assert_eq!(failure.error_code, "AMBIGUOUS_ACCOUNT");
}

#[tokio::test]
async fn assign_policy_sets_the_configured_account_on_creates() {
    let w = World::new();
    let mut cfg = config(Direction::AToB);
    cfg.account = AccountMode::Assign {
        account_id: "001B000000000042".into(),
    };
    w.a.human_create(vec![opp("Assigned", 1)]);
    w.run_with(&cfg, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(
        w.b.find_by_name("Assigned")[0]["AccountId"],
        json!("001B000000000042")
    );
}

#[tokio::test]
async fn match_by_name_ignores_case_like_soql() {
    let w = World::new();
    w.b.human_create(vec![opp("ACME deal", 1)]);
    w.a.state().clock_ms += 10;
    w.a.human_create(vec![opp("Acme Deal", 1)]);
    let report = w.run(Direction::AToB).await;
    assert_eq!(report.created, 0);
    assert_eq!(w.b.len(), 1);
    // Linked; the newer A spelling wins the Name.
    assert_eq!(report.updated, 1);
    assert_eq!(w.b.find_by_name("Acme Deal").len(), 1);
}

#[test]
fn reports_map_to_cycle_rows() {
    let mut report = PassReport {
        read: 5,
        created: 2,
        linked: 1,
        skipped: 1,
        failed: 1,
        api_calls: 4,
        ..PassReport::default()
    };
    // Linked records are counted as linked, not folded into skipped (they were until the
    // hardening issue: the demo showed "skipped 90" for 90 linked records).
    assert_eq!(report.cycle_counts().skipped, 1);
    assert_eq!(report.cycle_counts().linked, 1);
    assert_eq!(report.cycle_outcome().0, CycleOutcome::Partial);
    report.failed = 0;
    assert_eq!(report.cycle_outcome(), (CycleOutcome::Ok, None));
    report.outcome = PassOutcome::Paused {
        org: Org::B,
        error: PortError {
            kind: ErrorKind::Limit,
            code: "REQUEST_LIMIT_EXCEEDED".into(),
            message: "TotalRequests Limit exceeded.".into(),
        },
    };
    let (outcome, error) = report.cycle_outcome();
    assert_eq!(outcome, CycleOutcome::Paused);
    assert!(error.is_some_and(|e| e.contains("org B") && e.contains("REQUEST_LIMIT_EXCEEDED")));
}
