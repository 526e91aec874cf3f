//! Parent accounts (`account.sync_policy`, issue 5) end to end: the direction pass over the
//! real Salesforce client, the real SQLite store and two simulated orgs in process (sfsim).
//! Every scenario runs in both directions. API calls are counted by sfsim (`/__sim/stats`,
//! `/__sim/requests`), never by the engine's own report. `orgsync check` over the account
//! fields is tested in `account_check_tests.rs`.

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::salesforce::{Client, ClientOptions};
use crate::store::{Direction, Org, Store};
use crate::sync::accounts::ACCOUNT_NAME_PATH;
use crate::sync::sim_tests::{client, config as sim_config, file_store, start};
use crate::sync::test_support::run_cycle;
use crate::sync::{AccountMode, Mapping, Pass, PassConfig, PassOutcome, PassReport};

/// The default `account.fields`.
const ACCOUNT_FIELDS: [&str; 5] = [
    "Name",
    "AccountNumber",
    "Description",
    "Industry",
    "NumberOfEmployees",
];

/// Two simulated orgs, their integration and human clients, and a store.
struct World {
    sims: [sfsim::SimOrg; 2],
    integration: [Client; 2],
    human: [Client; 2],
    users: [String; 2],
    store: Store,
    _dir: tempfile::TempDir,
}

fn idx(org: Org) -> usize {
    match org {
        Org::A => 0,
        Org::B => 1,
    }
}

impl World {
    async fn new() -> World {
        let (sim_a, sim_b) = (start("A").await, start("B").await);
        let integration = [client(&sim_a, "integration"), client(&sim_b, "integration")];
        let human = [client(&sim_a, "human"), client(&sim_b, "human")];
        let users = [
            integration[0].user_id().await.expect("login A"),
            integration[1].user_id().await.expect("login B"),
        ];
        let (store, dir) = file_store().await;
        World {
            sims: [sim_a, sim_b],
            integration,
            human,
            users,
            store,
            _dir: dir,
        }
    }

    fn sim(&self, org: Org) -> &sfsim::SimOrg {
        &self.sims[idx(org)]
    }

    fn human(&self, org: Org) -> &Client {
        &self.human[idx(org)]
    }

    fn config(&self, direction: Direction, account: AccountMode) -> PassConfig {
        PassConfig {
            account,
            ..sim_config(direction, self.users[idx(direction.source())].clone(), 1)
        }
    }

    /// One pass in `direction`.
    async fn pass(&self, config: &PassConfig, mapping: &Mapping) -> PassReport {
        let (source, target) = match config.direction.source() {
            Org::A => (&self.integration[0], &self.integration[1]),
            Org::B => (&self.integration[1], &self.integration[0]),
        };
        let report = Pass::new(
            config,
            mapping,
            source,
            target,
            &self.store,
            &Metrics::default(),
        )
        .run(&CancellationToken::new())
        .await
        .expect("pass");
        assert_eq!(report.outcome, PassOutcome::Completed, "{report:?}");
        report
    }

    /// Creates records as a person in `org`; their ids.
    async fn create(&self, org: Org, object: &str, bodies: Vec<Value>) -> Vec<String> {
        let bodies: Vec<Map<String, Value>> = bodies
            .into_iter()
            .map(|b| match b {
                Value::Object(m) => m,
                other => panic!("not an object: {other}"),
            })
            .collect();
        let mut ids = Vec::new();
        for chunk in bodies.chunks(200) {
            let results = self.human(org).create(object, chunk).await.expect("create");
            for r in results {
                ids.push(r.expect("record created").id);
            }
        }
        ids
    }

    async fn query(&self, org: Org, soql: &str) -> Vec<Map<String, Value>> {
        self.human(org).query_collect(soql).await.expect("query")
    }

    async fn accounts(&self, org: Org) -> Vec<Map<String, Value>> {
        self.query(
            org,
            "SELECT Id, Name, AccountNumber, Description, Industry, NumberOfEmployees \
             FROM Account ORDER BY Name",
        )
        .await
    }

    async fn opportunities(&self, org: Org) -> Vec<Map<String, Value>> {
        self.query(
            org,
            "SELECT Id, Name, AccountId FROM Opportunity ORDER BY Name",
        )
        .await
    }

    /// Calls by kind in `org` (`query`, `collections_create`, ...).
    async fn calls(&self, org: Org) -> Map<String, Value> {
        let stats: Value = reqwest::get(format!("{}/__sim/stats", self.sim(org).base_url))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json");
        match &stats["calls"] {
            Value::Object(m) => m.clone(),
            other => panic!("calls: {other}"),
        }
    }

    async fn call_count(&self, org: Org, kind: &str) -> u64 {
        self.calls(org)
            .await
            .get(kind)
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// The SOQL of the queries the integration user (orgsync) ran in `org`, oldest first.
    async fn queries(&self, org: Org) -> Vec<String> {
        let log: Value = reqwest::get(format!(
            "{}/__sim/requests?limit=100000",
            self.sim(org).base_url
        ))
        .await
        .expect("requests")
        .json()
        .await
        .expect("requests json");
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| {
                        e["user"]
                            .as_str()
                            .is_some_and(|u| u.starts_with("integration@"))
                    })
                    .filter_map(|e| e["soql"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn account_queries(&self, org: Org) -> usize {
        self.queries(org)
            .await
            .iter()
            .filter(|q| q.to_ascii_uppercase().contains("FROM ACCOUNT"))
            .count()
    }

    /// The stored Account link of source account `source_id`: its target id.
    async fn account_link(&self, source: Org, source_id: &str) -> Option<String> {
        let ids = [source_id.to_string()];
        let links = match source {
            Org::A => self.store.links_by_a_ids("Account", &ids).await,
            Org::B => self.store.links_by_b_ids("Account", &ids).await,
        }
        .expect("links");
        links.first().map(|l| match source {
            Org::A => l.b_id.clone(),
            Org::B => l.a_id.clone(),
        })
    }
}

fn mapping(sync_account: bool) -> Mapping {
    let fields: Vec<String> = ["Name", "StageName", "CloseDate", "Amount"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let m = Mapping::new(&fields, &Default::default(), &Default::default()).expect("mapping");
    if sync_account {
        m.with_parent_field(ACCOUNT_NAME_PATH)
    } else {
        m
    }
}

fn sync_account() -> AccountMode {
    AccountMode::SyncByName {
        fields: ACCOUNT_FIELDS.iter().map(|s| s.to_string()).collect(),
    }
}

fn opportunity(name: &str, account_id: Option<&str>) -> Value {
    let mut body = json!({
        "Name": name, "StageName": "Prospecting", "CloseDate": "2026-06-30", "Amount": 6000
    });
    if let Some(id) = account_id {
        body["AccountId"] = json!(id);
    }
    body
}

fn str_of<'m>(record: &'m Map<String, Value>, field: &str) -> &'m str {
    record.get(field).and_then(Value::as_str).unwrap_or("")
}

const DIRECTIONS: [Direction; 2] = [Direction::AToB, Direction::BToA];

// ---------------------------------------------------------------------------------------------

async fn new_account_travels_with_its_opportunity(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(true);
    let acme = w
        .create(
            src,
            "Account",
            vec![json!({
                "Name": "Acme", "AccountNumber": "AC-1", "Description": "Anvils",
                "Industry": "Manufacturing", "NumberOfEmployees": 42, "Phone": "555-0100"
            })],
        )
        .await;
    w.create(
        src,
        "Opportunity",
        vec![opportunity("Acme deal", Some(&acme[0]))],
    )
    .await;

    let report = w.pass(&w.config(direction, sync_account()), &m).await;
    assert_eq!((report.created, report.failed), (1, 0), "{report:?}");

    let accounts = w.accounts(tgt).await;
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let account = &accounts[0];
    assert_eq!(str_of(account, "Name"), "Acme");
    assert_eq!(str_of(account, "AccountNumber"), "AC-1");
    assert_eq!(str_of(account, "Description"), "Anvils");
    assert_eq!(str_of(account, "Industry"), "Manufacturing");
    assert_eq!(account["NumberOfEmployees"].as_f64(), Some(42.0));
    let opportunities = w.opportunities(tgt).await;
    assert_eq!(opportunities.len(), 1);
    assert_eq!(
        str_of(&opportunities[0], "AccountId"),
        str_of(account, "Id")
    );
    assert_eq!(
        w.account_link(src, &acme[0]).await.as_deref(),
        Some(str_of(account, "Id"))
    );

    // The next cycle, both ways, creates nothing anywhere: no ping-pong of the account.
    let (ab, ba) = (
        w.config(Direction::AToB, sync_account()),
        w.config(Direction::BToA, sync_account()),
    );
    let cancel = CancellationToken::new();
    let cycle = run_cycle(
        &ab,
        &ba,
        &m,
        &w.integration[0],
        &w.integration[1],
        &w.store,
        &cancel,
    )
    .await;
    assert!(cycle.complete(), "{cycle:?}");
    assert_eq!(w.accounts(src).await.len(), 1);
    assert_eq!(w.accounts(tgt).await.len(), 1);
    assert_eq!(w.opportunities(src).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_opportunity_with_a_new_account_yields_one_account_and_one_opportunity_linked() {
    for direction in DIRECTIONS {
        new_account_travels_with_its_opportunity(direction).await;
    }
}

async fn existing_account_is_reused(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(true);
    let globex_tgt = w
        .create(
            tgt,
            "Account",
            vec![json!({"Name": "GLOBEX", "Description": "theirs"})],
        )
        .await;
    let globex_src = w
        .create(
            src,
            "Account",
            vec![json!({"Name": "Globex", "Description": "ours"})],
        )
        .await;
    w.create(
        src,
        "Opportunity",
        vec![
            opportunity("Globex 1", Some(&globex_src[0])),
            opportunity("Globex 2", Some(&globex_src[0])),
        ],
    )
    .await;
    let creates_before = w.call_count(tgt, "collections_create").await;

    let report = w.pass(&w.config(direction, sync_account()), &m).await;
    assert_eq!((report.created, report.failed), (2, 0), "{report:?}");
    let accounts = w.accounts(tgt).await;
    assert_eq!(accounts.len(), 1, "reused, not duplicated: {accounts:?}");
    // Never overwritten.
    assert_eq!(str_of(&accounts[0], "Name"), "GLOBEX");
    assert_eq!(str_of(&accounts[0], "Description"), "theirs");
    for o in w.opportunities(tgt).await {
        assert_eq!(str_of(&o, "AccountId"), globex_tgt[0]);
    }
    // One create call: the opportunities'.
    assert_eq!(
        w.call_count(tgt, "collections_create").await - creates_before,
        1
    );
    assert_eq!(
        w.account_link(src, &globex_src[0]).await.as_deref(),
        Some(globex_tgt[0].as_str())
    );

    // Linked now: a later opportunity of Globex costs no account query.
    let queries_before = w.account_queries(tgt).await;
    w.create(
        src,
        "Opportunity",
        vec![opportunity("Globex 3", Some(&globex_src[0]))],
    )
    .await;
    let report = w.pass(&w.config(direction, sync_account()), &m).await;
    assert_eq!(report.created, 1, "{report:?}");
    assert_eq!(w.account_queries(tgt).await, queries_before);
    let third = w
        .query(
            tgt,
            "SELECT AccountId FROM Opportunity WHERE Name = 'Globex 3'",
        )
        .await;
    assert_eq!(str_of(&third[0], "AccountId"), globex_tgt[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_exists_in_the_target_by_name_is_reused_not_duplicated() {
    for direction in DIRECTIONS {
        existing_account_is_reused(direction).await;
    }
}

async fn one_query_and_one_create_per_page(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(true);
    let parents = w
        .create(
            src,
            "Account",
            vec![
                json!({"Name": "North", "Industry": "Energy"}),
                json!({"Name": "South", "Industry": "Retail"}),
                json!({"Name": "West", "NumberOfEmployees": 7}),
            ],
        )
        .await;
    let opportunities: Vec<Value> = (0..150)
        .map(|i| opportunity(&format!("Deal {i:03}"), Some(&parents[i % 3])))
        .collect();
    w.create(src, "Opportunity", opportunities).await;
    let account_queries = w.account_queries(tgt).await;
    let creates = w.call_count(tgt, "collections_create").await;

    let report = w.pass(&w.config(direction, sync_account()), &m).await;
    assert_eq!((report.created, report.failed), (150, 0), "{report:?}");
    assert_eq!(report.pages, 1, "{report:?}");
    assert_eq!(
        w.account_queries(tgt).await - account_queries,
        1,
        "{:?}",
        w.queries(tgt).await
    );
    // One for the 3 accounts, one for the 150 opportunities.
    assert_eq!(w.call_count(tgt, "collections_create").await - creates, 2);

    let accounts = w.accounts(tgt).await;
    let names: Vec<&str> = accounts.iter().map(|a| str_of(a, "Name")).collect();
    assert_eq!(names, vec!["North", "South", "West"]);
    let id_of = |name: &str| {
        accounts
            .iter()
            .find(|a| str_of(a, "Name") == name)
            .map(|a| str_of(a, "Id").to_string())
            .unwrap_or_default()
    };
    for o in w.opportunities(tgt).await {
        let n: usize = str_of(&o, "Name")[5..].parse().expect("deal number");
        let parent = ["North", "South", "West"][n % 3];
        assert_eq!(str_of(&o, "AccountId"), id_of(parent), "{o:?}");
    }
    for (i, name) in ["North", "South", "West"].iter().enumerate() {
        assert_eq!(
            w.account_link(src, &parents[i]).await,
            Some(id_of(name)),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opportunities_150_of_3_new_accounts_cost_one_account_query_and_one_account_create() {
    for direction in DIRECTIONS {
        one_query_and_one_create_per_page(direction).await;
    }
}

async fn assign_links_to_the_configured_account(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(false);
    let house = w
        .create(tgt, "Account", vec![json!({"Name": "House account"})])
        .await;
    let own = w
        .create(src, "Account", vec![json!({"Name": "Own parent"})])
        .await;
    w.create(
        src,
        "Opportunity",
        vec![
            opportunity("Orphan", None),
            opportunity("With parent", Some(&own[0])),
        ],
    )
    .await;
    let config = w.config(
        direction,
        AccountMode::Assign {
            account_id: house[0].clone(),
        },
    );
    let report = w.pass(&config, &m).await;
    assert_eq!((report.created, report.failed), (2, 0), "{report:?}");
    for o in w.opportunities(tgt).await {
        assert_eq!(str_of(&o, "AccountId"), house[0], "{o:?}");
    }
    // No account created in the target.
    assert_eq!(w.accounts(tgt).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_links_every_created_opportunity_to_the_configured_account() {
    for direction in DIRECTIONS {
        assign_links_to_the_configured_account(direction).await;
    }
}

async fn empty_policy_leaves_the_parent_out(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(false);
    let own = w
        .create(src, "Account", vec![json!({"Name": "Own parent"})])
        .await;
    w.create(
        src,
        "Opportunity",
        vec![opportunity("With parent", Some(&own[0]))],
    )
    .await;
    let report = w.pass(&w.config(direction, AccountMode::None), &m).await;
    assert_eq!((report.created, report.failed), (1, 0), "{report:?}");
    let opportunities = w.opportunities(tgt).await;
    assert_eq!(opportunities.len(), 1);
    assert!(
        opportunities[0].get("AccountId").is_none_or(Value::is_null),
        "{opportunities:?}"
    );
    assert!(w.accounts(tgt).await.is_empty());
    assert_eq!(w.account_queries(tgt).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_empty_policy_leaves_account_id_empty() {
    for direction in DIRECTIONS {
        empty_policy_leaves_the_parent_out(direction).await;
    }
}

async fn a_deleted_target_account_is_resolved_again(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(true);
    let config = w.config(direction, sync_account());
    let acme = w
        .create(src, "Account", vec![json!({"Name": "Acme"})])
        .await;
    w.create(
        src,
        "Opportunity",
        vec![opportunity("First", Some(&acme[0]))],
    )
    .await;
    w.pass(&config, &m).await;
    let first_parent = w.account_link(src, &acme[0]).await.expect("account linked");

    // An admin merges the account away in the target: the link now points to a deleted one.
    let deleted = w
        .human(tgt)
        .delete(std::slice::from_ref(&first_parent))
        .await
        .expect("delete");
    assert!(deleted.iter().all(Result::is_ok));
    w.create(
        src,
        "Opportunity",
        vec![opportunity("Second", Some(&acme[0]))],
    )
    .await;
    let report = w.pass(&config, &m).await;
    assert_eq!((report.created, report.failed), (0, 1), "{report:?}");
    assert_eq!(
        w.account_link(src, &acme[0]).await,
        None,
        "stale link dropped"
    );
    let failures = w.store.failures(None).await.expect("failures");
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].message.contains("is gone from org"),
        "{}",
        failures[0].message
    );

    // The retry resolves the parent again: no account by that name, so one is created.
    assert_eq!(w.store.retry_all_failures().await.expect("retry"), 1);
    let report = w.pass(&config, &m).await;
    assert_eq!((report.created, report.failed), (1, 0), "{report:?}");
    let accounts = w.accounts(tgt).await;
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let new_parent = str_of(&accounts[0], "Id").to_string();
    assert_ne!(new_parent, first_parent);
    assert_eq!(
        w.account_link(src, &acme[0]).await,
        Some(new_parent.clone())
    );
    let second = w
        .query(
            tgt,
            "SELECT AccountId FROM Opportunity WHERE Name = 'Second'",
        )
        .await;
    assert_eq!(str_of(&second[0], "AccountId"), new_parent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_an_account_deleted_in_the_target_is_dropped_and_the_parent_resolved_again() {
    for direction in DIRECTIONS {
        a_deleted_target_account_is_resolved_again(direction).await;
    }
}

async fn differently_named_parents_stay_quiet(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(true);
    w.create(tgt, "Account", vec![json!({"Name": "GLOBEX"})])
        .await;
    let globex = w
        .create(src, "Account", vec![json!({"Name": "Globex"})])
        .await;
    w.create(
        src,
        "Opportunity",
        vec![opportunity("G1", Some(&globex[0]))],
    )
    .await;
    // The strictest setting: our own writes come back and only the snapshot tells them apart.
    let mut ab = w.config(Direction::AToB, sync_account());
    let mut ba = w.config(Direction::BToA, sync_account());
    ab.skip_integration_user_changes = false;
    ba.skip_integration_user_changes = false;
    let cancel = CancellationToken::new();
    let cycle = async || {
        let c = run_cycle(
            &ab,
            &ba,
            &m,
            &w.integration[0],
            &w.integration[1],
            &w.store,
            &cancel,
        )
        .await;
        assert!(c.complete(), "{c:?}");
        let ab = c
            .a_to_b
            .as_ref()
            .map(|r| r.created + r.updated)
            .unwrap_or(0);
        let ba = c
            .b_to_a
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.created + r.updated)
            .unwrap_or(0);
        ab + ba
    };
    assert_eq!(cycle().await, 1, "the opportunity is created");
    // "GLOBEX" in one org, "Globex" in the other: the same parent, no write back.
    assert_eq!(cycle().await, 0);
    // A rename in the source is not carried (accounts are never overwritten) and writes
    // nothing.
    let mut rename = Map::new();
    rename.insert("Name".into(), json!("Globex Corporation"));
    w.human(src)
        .update("Account", &[(globex[0].clone(), rename)])
        .await
        .expect("rename");
    assert_eq!(cycle().await, 0);
    assert_eq!(cycle().await, 0);
    let accounts = w.accounts(tgt).await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(str_of(&accounts[0], "Name"), "GLOBEX");
    assert_eq!(w.accounts(src).await.len(), 1);

    // Moving the opportunity to another parent of the same name is a change.
    let other = w
        .create(src, "Account", vec![json!({"Name": "GLOBEX"})])
        .await;
    let g1 = w
        .query(src, "SELECT Id FROM Opportunity WHERE Name = 'G1'")
        .await;
    let mut move_it = Map::new();
    move_it.insert("AccountId".into(), json!(other[0]));
    w.human(src)
        .update(
            "Opportunity",
            &[(str_of(&g1[0], "Id").to_string(), move_it)],
        )
        .await
        .expect("re-parent");
    assert_eq!(cycle().await, 1);
    assert_eq!(cycle().await, 0);
    let accounts = w.accounts(tgt).await;
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    let moved = w
        .query(tgt, "SELECT AccountId FROM Opportunity WHERE Name = 'G1'")
        .await;
    assert_eq!(
        w.account_link(src, &other[0]).await.as_deref(),
        Some(str_of(&moved[0], "AccountId"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_named_differently_in_the_two_orgs_cause_no_ping_pong() {
    for direction in DIRECTIONS {
        differently_named_parents_stay_quiet(direction).await;
    }
}

async fn twin_parents_are_never_guessed(direction: Direction) {
    let w = World::new().await;
    let (src, tgt) = (direction.source(), direction.target());
    let m = mapping(true);
    w.create(
        tgt,
        "Account",
        vec![json!({"Name": "Twin"}), json!({"Name": "twin"})],
    )
    .await;
    let parents = w
        .create(
            src,
            "Account",
            vec![json!({"Name": "Twin"}), json!({"Name": "Solo"})],
        )
        .await;
    w.create(
        src,
        "Opportunity",
        vec![
            opportunity("Of twin", Some(&parents[0])),
            opportunity("Of solo", Some(&parents[1])),
        ],
    )
    .await;
    let report = w.pass(&w.config(direction, sync_account()), &m).await;
    assert_eq!((report.created, report.failed), (1, 1), "{report:?}");
    let failures = w.store.failures(None).await.expect("failures");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].error_code, "AMBIGUOUS_ACCOUNT");
    assert!(
        failures[0].message.contains("2 accounts named \"Twin\""),
        "{}",
        failures[0].message
    );
    // Nothing guessed, nothing created for the twin; Solo created and linked.
    assert_eq!(w.accounts(tgt).await.len(), 3);
    assert_eq!(w.account_link(src, &parents[0]).await, None);
    assert!(w.account_link(src, &parents[1]).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_target_accounts_with_the_parent_name_fail_the_row_instead_of_a_guess() {
    for direction in DIRECTIONS {
        twin_parents_are_never_guessed(direction).await;
    }
}

#[path = "account_check_tests.rs"]
mod check;

#[path = "account_merge_tests.rs"]
mod merge;
