//! BASELINE, NOT ORGSYNC: a faithful re-implementation of the MuleSoft template's one-way flow
//! ("Salesforce Org to Org Opportunity Bidirectional Sync"), used only by this benchmark to
//! compare orgsync against what it replaces. Do not reuse it: it has the template's flaws on
//! purpose.
//!
//! The template's algorithm, per poll, strictly sequential:
//! 1. `SELECT <fields>, LastModifiedDate FROM Opportunity WHERE LastModifiedDate > :wm AND
//!    LastModifiedById != :integration_user AND (Amount > 5000) ORDER BY LastModifiedDate
//!    LIMIT page_size`; the watermark (in memory) becomes the page's last `LastModifiedDate`
//!    right after the query, before any write. The strict `>` skips rows that share the
//!    page's last timestamp but fell beyond the `LIMIT`.
//! 2. For each row, one lookup in the target by Name:
//!    `SELECT Id, LastModifiedDate FROM Opportunity WHERE Name = '<name>'`.
//! 3. Keep the rows the target lacks or holds with an older `LastModifiedDate`; upsert them in
//!    chunks of `page_size` (the template's SOAP upsert; here sObject Collections create and
//!    update, at most 200 records per call). Failed records are only counted (the template
//!    logs them).
//!
//! Polls repeat until a query returns no row (the template would wait `scheduler.frequency`
//! between polls; the benchmark does not, to measure API cost and work time only).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use orgsync::salesforce::{
    SoapLoginReply, instance_origin, parse_soap_login_reply, soap_login_envelope,
};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

/// Records per sObject Collections call (Salesforce's limit, and the SOAP upsert's).
const CHUNK_LIMIT: usize = 200;

/// What the baseline runs with.
#[derive(Debug, Clone)]
pub struct BaselineConfig {
    /// Login URLs of the source and target orgs.
    pub source_url: String,
    pub target_url: String,
    pub source_username: String,
    pub target_username: String,
    /// Password with the security token appended (SOAP login, as the template).
    pub password_and_token: String,
    pub api_version: String,
    pub object: String,
    /// Fields copied, as named in both orgs (`Name` must be one).
    pub fields: Vec<String>,
    /// The template's hard-coded filter.
    pub filter: String,
    /// `page.size`.
    pub page_size: usize,
    /// `watermark.default.expression`.
    pub default_watermark: DateTime<Utc>,
    /// Stop after this many polls (a sample of the run), or run until a poll is empty.
    pub max_pages: Option<u64>,
}

/// What the baseline did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct BaselineReport {
    /// Polls that returned rows.
    pub pages: u64,
    pub read: u64,
    pub lookups: u64,
    pub created: u64,
    pub updated: u64,
    /// Rows whose target copy was as new or newer.
    pub skipped: u64,
    /// Records the target rejected (the template only logs them).
    pub failed: u64,
    /// Whether the run stopped at `max_pages` rather than at an empty poll.
    pub sampled: bool,
}

/// What to do with one source row, from the target's copy found by Name.
#[derive(Debug, Clone, PartialEq)]
pub enum Upsert {
    Create,
    Update { target_id: String },
    Skip,
}

/// The template's rule: write when the target lacks the record or its copy is older.
pub fn decide(source_modified: DateTime<Utc>, target: Option<(String, DateTime<Utc>)>) -> Upsert {
    match target {
        None => Upsert::Create,
        Some((id, modified)) if modified < source_modified => Upsert::Update { target_id: id },
        Some(_) => Upsert::Skip,
    }
}

/// A datetime as a SOQL literal.
pub fn soql_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A string as a quoted SOQL literal.
pub fn soql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The template's poll query.
pub fn poll_soql(cfg: &BaselineConfig, watermark: DateTime<Utc>, integration_user: &str) -> String {
    let mut fields: Vec<&str> = cfg.fields.iter().map(String::as_str).collect();
    for f in ["Id", "LastModifiedDate"] {
        if !fields.contains(&f) {
            fields.push(f);
        }
    }
    format!(
        "SELECT {} FROM {} WHERE LastModifiedDate > {} AND LastModifiedById != {} AND ({}) \
         ORDER BY LastModifiedDate LIMIT {}",
        fields.join(", "),
        cfg.object,
        soql_datetime(watermark),
        soql_string(integration_user),
        cfg.filter,
        cfg.page_size
    )
}

/// The template's per-record lookup in the target.
pub fn lookup_soql(object: &str, name: &str) -> String {
    format!(
        "SELECT Id, LastModifiedDate FROM {object} WHERE Name = {}",
        soql_string(name)
    )
}

/// A Salesforce datetime as the REST API writes it (`2026-01-02T03:04:05.000+0000`).
pub fn parse_sf_datetime(text: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("bad datetime {text:?}"))
}

/// One logged-in org.
struct Org {
    http: reqwest::Client,
    instance: String,
    session: String,
    user_id: String,
    api_version: String,
}

impl Org {
    async fn login(
        http: &reqwest::Client,
        login_url: &str,
        username: &str,
        password: &str,
        api_version: &str,
    ) -> anyhow::Result<Org> {
        let url = format!(
            "{}/services/Soap/u/{api_version}",
            login_url.trim_end_matches('/')
        );
        let reply = http
            .post(&url)
            .header("content-type", "text/xml; charset=utf-8")
            .header("SOAPAction", "login")
            .body(soap_login_envelope(username, password))
            .send()
            .await
            .with_context(|| format!("login to {login_url}"))?
            .text()
            .await
            .context("login reply")?;
        match parse_soap_login_reply(&reply).map_err(|e| anyhow!("login reply: {e}"))? {
            SoapLoginReply::Ok {
                server_url,
                session_id,
                user_id,
                ..
            } => Ok(Org {
                http: http.clone(),
                instance: instance_origin(&server_url).map_err(|e| anyhow!(e))?,
                session: session_id.expose_secret().to_string(),
                user_id: user_id.context("the login reply has no userId")?,
                api_version: api_version.to_string(),
            }),
            SoapLoginReply::Fault { code, message } => bail!("login refused: {code}: {message}"),
        }
    }

    fn url(&self, rest: &str) -> String {
        format!(
            "{}/services/data/v{}/{rest}",
            self.instance, self.api_version
        )
    }

    async fn check(reply: reqwest::Response, what: &str) -> anyhow::Result<Value> {
        let status = reply.status();
        let body = reply
            .text()
            .await
            .with_context(|| format!("{what}: reply"))?;
        if !status.is_success() {
            let head: String = body.chars().take(300).collect();
            bail!("{what}: HTTP {status}: {head}");
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: reply is not JSON"))
    }

    /// One query call (the template's queries fit one batch: `LIMIT page_size`, one row).
    async fn query(&self, soql: &str) -> anyhow::Result<Vec<Map<String, Value>>> {
        let reply = self
            .http
            .get(self.url("query"))
            .query(&[("q", soql)])
            .bearer_auth(&self.session)
            .send()
            .await
            .context("query")?;
        let body = Self::check(reply, "query").await?;
        let records = body["records"]
            .as_array()
            .context("query reply without records")?;
        records
            .iter()
            .map(|r| {
                r.as_object()
                    .cloned()
                    .context("query record is not an object")
            })
            .collect()
    }

    /// One sObject Collections write (`allOrNone: false`); returns the number of failures.
    async fn collections(
        &self,
        method: reqwest::Method,
        records: Vec<Value>,
    ) -> anyhow::Result<u64> {
        let n = records.len();
        let reply = self
            .http
            .request(method, self.url("composite/sobjects"))
            .bearer_auth(&self.session)
            .json(&json!({"allOrNone": false, "records": records}))
            .send()
            .await
            .context("collections")?;
        let body = Self::check(reply, "collections").await?;
        let items = body.as_array().context("collections reply is not a list")?;
        if items.len() != n {
            bail!(
                "collections reply has {} items for {n} records",
                items.len()
            );
        }
        Ok(items
            .iter()
            .filter(|i| i["success"].as_bool() != Some(true))
            .count() as u64)
    }
}

/// Runs the template's flow once from source to target, as described in the module docs.
pub async fn run(cfg: &BaselineConfig) -> anyhow::Result<BaselineReport> {
    if !cfg.fields.iter().any(|f| f == "Name") {
        bail!("the baseline matches by Name: fields must include Name");
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("HTTP client")?;
    let source = Org::login(
        &http,
        &cfg.source_url,
        &cfg.source_username,
        &cfg.password_and_token,
        &cfg.api_version,
    )
    .await?;
    let target = Org::login(
        &http,
        &cfg.target_url,
        &cfg.target_username,
        &cfg.password_and_token,
        &cfg.api_version,
    )
    .await?;
    let mut report = BaselineReport::default();
    let mut watermark = cfg.default_watermark;
    let chunk = cfg.page_size.clamp(1, CHUNK_LIMIT);
    loop {
        if cfg.max_pages.is_some_and(|max| report.pages >= max) {
            report.sampled = true;
            break;
        }
        let rows = source
            .query(&poll_soql(cfg, watermark, &source.user_id))
            .await?;
        let Some(last) = rows.last() else { break };
        // The template stores the watermark here, before any write.
        watermark = parse_sf_datetime(last["LastModifiedDate"].as_str().unwrap_or_default())?;
        report.pages += 1;
        report.read += rows.len() as u64;

        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for row in &rows {
            let name = row["Name"].as_str().context("a row without Name")?;
            let modified = parse_sf_datetime(row["LastModifiedDate"].as_str().unwrap_or_default())?;
            report.lookups += 1;
            let found = target.query(&lookup_soql(&cfg.object, name)).await?;
            let existing = match found.first() {
                Some(t) => Some((
                    t["Id"]
                        .as_str()
                        .context("lookup row without Id")?
                        .to_string(),
                    parse_sf_datetime(t["LastModifiedDate"].as_str().unwrap_or_default())?,
                )),
                None => None,
            };
            let mut body = Map::new();
            body.insert("attributes".into(), json!({"type": cfg.object}));
            for f in &cfg.fields {
                body.insert(f.clone(), row.get(f).cloned().unwrap_or(Value::Null));
            }
            match decide(modified, existing) {
                Upsert::Create => {
                    body.retain(|_, v| !v.is_null());
                    creates.push(Value::Object(body));
                }
                Upsert::Update { target_id } => {
                    body.insert("Id".into(), Value::String(target_id));
                    updates.push(Value::Object(body));
                }
                Upsert::Skip => report.skipped += 1,
            }
        }
        for part in creates.chunks(chunk) {
            let failed = target
                .collections(reqwest::Method::POST, part.to_vec())
                .await?;
            report.failed += failed;
            report.created += part.len() as u64 - failed;
        }
        for part in updates.chunks(chunk) {
            let failed = target
                .collections(reqwest::Method::PATCH, part.to_vec())
                .await?;
            report.failed += failed;
            report.updated += part.len() as u64 - failed;
        }
    }
    Ok(report)
}

/// Checks of the pure parts (see `report::self_check` for why this is not `#[test]`).
pub fn self_check() -> anyhow::Result<()> {
    use anyhow::ensure;
    let t = parse_sf_datetime("2026-01-02T03:04:05.120+0000")?;
    ensure!(soql_datetime(t) == "2026-01-02T03:04:05.120Z");
    let older = parse_sf_datetime("2026-01-02T03:04:05.000+0000")?;
    ensure!(decide(t, None) == Upsert::Create);
    ensure!(
        decide(t, Some(("006x".into(), older)))
            == Upsert::Update {
                target_id: "006x".into()
            }
    );
    ensure!(
        decide(t, Some(("006x".into(), t))) == Upsert::Skip,
        "not newer: skipped"
    );
    ensure!(soql_string("O'Brien \\ co") == r"'O\'Brien \\ co'");
    ensure!(
        lookup_soql("Opportunity", "A'B")
            == r"SELECT Id, LastModifiedDate FROM Opportunity WHERE Name = 'A\'B'"
    );
    let cfg = BaselineConfig {
        source_url: String::new(),
        target_url: String::new(),
        source_username: String::new(),
        target_username: String::new(),
        password_and_token: String::new(),
        api_version: "62.0".into(),
        object: "Opportunity".into(),
        fields: vec!["Name".into(), "Amount".into()],
        filter: "Amount > 5000".into(),
        page_size: 200,
        default_watermark: older,
        max_pages: None,
    };
    ensure!(
        poll_soql(&cfg, t, "005A")
            == "SELECT Name, Amount, Id, LastModifiedDate FROM Opportunity WHERE \
                LastModifiedDate > 2026-01-02T03:04:05.120Z AND LastModifiedById != '005A' AND \
                (Amount > 5000) ORDER BY LastModifiedDate LIMIT 200"
    );
    Ok(())
}
