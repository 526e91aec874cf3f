//! Throughput of sfsim over HTTP at 100k Opportunities, the way a sync client uses it: full
//! query paging through `nextRecordsUrl`, orgsync's cursor query (SystemModstamp range, ORDER
//! BY SystemModstamp, Id, LIMIT 2000), and 200-record sObject Collections creates and updates.
//! One org in-process on a loopback port, one client. Prints timings; asserts nothing about
//! them. Run: `cargo bench -p sfsim --bench http_throughput`.

use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};
use sfsim::{OrgConfig, start_org};

const RECORDS: usize = 100_000;
const SEED_CHUNK: usize = 10_000;
const BATCH: usize = 200;
const CALLS: usize = 50;

fn report(what: &str, samples: &mut [Duration], records_per_sample: usize) {
    samples.sort();
    let n = samples.len().max(1);
    let total: Duration = samples.iter().sum();
    let p = |q: f64| {
        samples
            .get(((n as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    let rate = (records_per_sample * n) as f64 / total.as_secs_f64().max(1e-9);
    println!(
        "{what:<52} n={n:<4} mean={:>9.3?} p50={:>9.3?} p95={:>9.3?} {rate:>9.0} records/s",
        total / n as u32,
        p(0.5),
        p(0.95),
    );
}

fn opportunity(i: usize) -> Map<String, Json> {
    json!({"Name": format!("Bench {i:06}"), "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": i})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let org = start_org(OrgConfig::named("Bench"), "127.0.0.1:0").await?;
    let seeding = Instant::now();
    for start in (0..RECORDS).step_by(SEED_CHUNK) {
        let records = (start..start + SEED_CHUNK).map(opportunity).collect();
        org.seed_records("Opportunity", None, records)?;
    }
    println!(
        "seeded {RECORDS} opportunities in {:.3?} (in-process, no HTTP)",
        seeding.elapsed()
    );

    let http = reqwest::Client::new();
    let token: Json = http
        .post(format!("{}/services/oauth2/token", org.base_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sfsim-client"),
            ("client_secret", "sfsim-secret"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api = |path: &str| format!("{}/services/data/v62.0/{path}", org.base_url);

    // full paging: every record, 2,000 per page
    let mut pages = vec![];
    let mut url = api("query");
    let mut first = true;
    let whole = Instant::now();
    loop {
        let t = Instant::now();
        let mut req = http.get(&url).bearer_auth(&token);
        if first {
            req = req.query(&[(
                "q",
                "SELECT Id, Name, Amount, StageName, SystemModstamp FROM Opportunity",
            )]);
            first = false;
        }
        let page: Json = req.send().await?.json().await?;
        pages.push(t.elapsed());
        match page["nextRecordsUrl"].as_str() {
            Some(next) => url = format!("{}{next}", org.base_url),
            None => break,
        }
    }
    println!("paged {RECORDS} records in {:.3?}", whole.elapsed());
    report("query page of 2,000 (nextRecordsUrl)", &mut pages, 2000);

    // orgsync's cursor query from the middle of the data
    let mid: Json = http
        .get(api("query"))
        .bearer_auth(&token)
        .query(&[(
            "q",
            "SELECT SystemModstamp FROM Opportunity ORDER BY SystemModstamp LIMIT 1 OFFSET 2000",
        )])
        .send()
        .await?
        .json()
        .await?;
    let since = mid["records"][0]["SystemModstamp"]
        .as_str()
        .unwrap_or("2000-01-01T00:00:00.000+0000")
        .replace(".000+0000", "Z");
    let mut cursor = vec![];
    for _ in 0..CALLS {
        let soql = format!(
            "SELECT Id, Name, Amount, SystemModstamp FROM Opportunity WHERE SystemModstamp >= {since} ORDER BY SystemModstamp, Id LIMIT 2000"
        );
        let t = Instant::now();
        let page: Json = http
            .get(api("query"))
            .bearer_auth(&token)
            .query(&[("q", soql)])
            .send()
            .await?
            .json()
            .await?;
        cursor.push(t.elapsed());
        if page["records"].as_array().map(Vec::len) != Some(2000) {
            return Err(format!("cursor query returned {}", page["totalSize"]).into());
        }
    }
    report(
        "cursor query, LIMIT 2000 by SystemModstamp, Id",
        &mut cursor,
        2000,
    );

    // sObject Collections: create, then update what was created
    let mut creates = vec![];
    let mut created_ids: Vec<String> = vec![];
    for c in 0..CALLS {
        let records: Vec<Json> = (0..BATCH)
            .map(|i| {
                let mut m = opportunity(RECORDS + c * BATCH + i);
                m.insert("attributes".into(), json!({"type": "Opportunity"}));
                Json::Object(m)
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        let t = Instant::now();
        let reply: Json = http
            .post(api("composite/sobjects"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        creates.push(t.elapsed());
        created_ids.extend(
            reply
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["id"].as_str().map(str::to_string)),
        );
    }
    report("collections create, 200 records", &mut creates, BATCH);
    let mut updates = vec![];
    for chunk in created_ids.chunks(BATCH) {
        let records: Vec<Json> = chunk
            .iter()
            .map(|id| json!({"attributes": {"type": "Opportunity"}, "id": id, "StageName": "Qualification"}))
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        let t = Instant::now();
        http.patch(api("composite/sobjects"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?
            .bytes()
            .await?;
        updates.push(t.elapsed());
    }
    report("collections update, 200 records", &mut updates, BATCH);
    org.shutdown().await;
    Ok(())
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
