//! Throughput of the simulator's data layer at 100k Opportunities: 200-record creates and
//! updates (one sObject Collections call each), and 2,000-row query pages the way orgsync
//! reads them (SystemModstamp range, ORDER BY SystemModstamp, Id). Prints timings; asserts
//! nothing about them. Run: `cargo bench -p sfsim --bench db_throughput`.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value as Json, json};
use sfsim::db::{DmlContext, DmlOp, OrgDb};

const RECORDS: usize = 100_000;
const BATCH: usize = 200;
const PAGE: usize = 2_000;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_710_000_000_000 + ms)
        .single()
        .unwrap_or_else(Utc::now)
}

fn body(v: Json) -> Map<String, Json> {
    v.as_object().cloned().unwrap_or_default()
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let n = samples.len().max(1);
    let total: Duration = samples.iter().sum();
    let p = |q: f64| {
        samples
            .get(((n as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{what:<58} n={n:<5} mean={:>9.3?} p50={:>9.3?} p95={:>9.3?} max={:>9.3?}",
        total / n as u32,
        p(0.5),
        p(0.95),
        p(1.0)
    );
}

fn main() {
    let mut db = OrgDb::new("00DB0000000bench1AAA");
    let user = db.add_user("integration@bench.sim", "Integration");
    let human = db.add_user("human@bench.sim", "Human");
    let ctx = |user: &str, ms: i64| DmlContext {
        user_id: user.to_string(),
        now: at(ms),
        reject_marker: None,
        forced_errors: Vec::new(),
    };

    // Accounts to hang opportunities on.
    let accounts: Vec<DmlOp> = (0..BATCH)
        .map(|i| DmlOp::Create {
            object: "Account".into(),
            fields: body(json!({"Name": format!("Account {i}")})),
        })
        .collect();
    let (results, _) = db.apply(accounts, false, &ctx(&human, 0));
    let account_ids: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.ok().map(|ok| ok.id))
        .collect();

    let mut create = Vec::new();
    for call in 0..RECORDS / BATCH {
        let ops: Vec<DmlOp> = (0..BATCH)
            .map(|i| {
                let n = call * BATCH + i;
                DmlOp::Create {
                    object: "Opportunity".into(),
                    fields: body(json!({
                        "Name": format!("Opportunity {n}"),
                        "StageName": "Prospecting",
                        "CloseDate": "2024-06-30",
                        "Amount": (n % 10_000) as f64,
                        "AccountId": account_ids[n % account_ids.len()],
                        "Description": "Created by the throughput benchmark",
                    })),
                }
            })
            .collect();
        let started = Instant::now();
        let (results, _) = db.apply(ops, false, &ctx(&human, 1_000 + call as i64 * 10));
        create.push(started.elapsed());
        if results.iter().any(Result::is_err) {
            eprintln!("a create failed: {:?}", results.iter().find(|r| r.is_err()));
            return;
        }
    }
    println!(
        "records: {} Opportunities, {} Accounts",
        db.count("Opportunity"),
        db.count("Account")
    );
    report("create, 200 records per call", &mut create);

    // Update 200 scattered records per call.
    let all = db
        .query("SELECT Id FROM Opportunity", false, "62.0", at(10_000_000))
        .unwrap_or_default();
    let ids: Vec<String> = all
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .collect();
    let mut update = Vec::new();
    for call in 0..100 {
        let ops: Vec<DmlOp> = (0..BATCH)
            .map(|i| DmlOp::Update {
                object: Some("Opportunity".into()),
                id: ids[(call * 7919 + i * 499) % ids.len()].clone(),
                fields: body(json!({"Amount": 6000 + i, "StageName": "Qualification"})),
            })
            .collect();
        let started = Instant::now();
        db.apply(ops, false, &ctx(&human, 2_000_000 + call as i64));
        update.push(started.elapsed());
    }
    report("update, 200 records per call", &mut update);

    let now = at(10_000_000);
    let fields = "Id, SystemModstamp, LastModifiedDate, LastModifiedById, Name, Description, CloseDate, Amount, StageName, Account.Name";
    // orgsync's page: a SystemModstamp window, its own writes excluded, LIMIT 2000.
    let mut page = Vec::new();
    for k in 0..50 {
        let from = at(1_000 + k * 9_000).format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let soql = format!(
            "SELECT {fields} FROM Opportunity WHERE SystemModstamp >= {from} AND LastModifiedById != '{user}' AND (Amount > 5000) ORDER BY SystemModstamp, Id LIMIT {PAGE}"
        );
        let started = Instant::now();
        let rows = db.query(&soql, false, "62.0", now).unwrap_or_default();
        page.push(started.elapsed());
        if k == 0 {
            println!("LIMIT page rows: {}", rows.len());
        }
    }
    report("query page: SystemModstamp range, LIMIT 2000", &mut page);

    // Cursor paging: one query over the whole range, then 2,000-row pages rendered.
    let soql = format!(
        "SELECT {fields} FROM Opportunity WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id",
        at(0).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let mut open = Vec::new();
    let mut render = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let cursor = match db.query_cursor(&soql, false, now) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("query failed: {e:?}");
                return;
            }
        };
        open.push(started.elapsed());
        let mut at_row = 0;
        while at_row < cursor.len() {
            let started = Instant::now();
            let rows = db
                .render_rows(&cursor, at_row..at_row + PAGE, "62.0")
                .unwrap_or_default();
            render.push(started.elapsed());
            at_row += rows.len().max(1);
        }
    }
    report("query_cursor over all 100k rows (ids only)", &mut open);
    report("render_rows, one 2,000-row page", &mut render);

    // The per-page target lookup: Id IN (200 ids).
    let mut lookup = Vec::new();
    for call in 0..100 {
        let list: Vec<String> = (0..BATCH)
            .map(|i| format!("'{}'", ids[(call * 211 + i * 397) % ids.len()]))
            .collect();
        let soql = format!(
            "SELECT Id, LastModifiedDate, Name, Amount FROM Opportunity WHERE Id IN ({})",
            list.join(",")
        );
        let started = Instant::now();
        let _ = db.query(&soql, false, "62.0", now);
        lookup.push(started.elapsed());
    }
    report("query: Id IN (200 ids)", &mut lookup);

    // Name has a value index (as in Salesforce); Amount has none: a scan of 100k rows.
    let mut by_name = Vec::new();
    let mut scan = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let _ = db.query_cursor(
            "SELECT Id FROM Opportunity WHERE Name IN ('Opportunity 99999', 'Opportunity 5')",
            false,
            now,
        );
        by_name.push(started.elapsed());
        let started = Instant::now();
        let _ = db.query_cursor("SELECT Id FROM Opportunity WHERE Amount = 1234", false, now);
        scan.push(started.elapsed());
    }
    report("query: Name IN (2 names), value index", &mut by_name);
    report("query: full scan, Amount = literal", &mut scan);

    let mut sorted = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let _ = db.query_cursor(
            "SELECT Id FROM Opportunity ORDER BY Amount DESC, Name LIMIT 2000",
            false,
            now,
        );
        sorted.push(started.elapsed());
    }
    report(
        "query: full scan + sort by Amount, Name, LIMIT 2000",
        &mut sorted,
    );
}
