//! Starting orgs and calling them.

use reqwest::header::HeaderMap;
use serde_json::{Map, Value as Json, json};
use sfsim::{OrgConfig, SimOrg, start_org};

pub const V: &str = "62.0";

pub async fn org(name: &str) -> SimOrg {
    start_org(OrgConfig::named(name), "127.0.0.1:0")
        .await
        .expect("org starts")
}

/// A reply: status, headers and JSON body (Null when the body is empty or not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Json,
    pub text: String,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Json::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// The `errorCode` of a REST error array.
    pub fn error_code(&self) -> &str {
        self.body[0]["errorCode"].as_str().unwrap_or("")
    }
}

/// A logged-in REST client.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub async fn token_for(org: &SimOrg, username: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", org.base_url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "sfsim-client"),
            ("client_secret", "sfsim-secret"),
            ("username", username),
            ("password", "passwordtoken"),
        ])
        .send()
        .await
        .expect("token call");
    let r = Reply::from(r).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

pub async fn api(org: &SimOrg) -> Api {
    let token = token_for(org, &org.integration_username).await;
    Api {
        http: reqwest::Client::new(),
        base: org.base_url.clone(),
        token,
    }
}

impl Api {
    /// A path under `/services/data/v62.0/`, or an absolute path starting with `/`.
    fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/services/data/v{V}/{path}", self.base)
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(
            self.request(reqwest::Method::GET, path)
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Json) -> Reply {
        Reply::from(
            self.request(method, path)
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Json) -> Reply {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Json) -> Reply {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Reply::from(
            self.request(reqwest::Method::DELETE, path)
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    pub async fn query(&self, soql: &str) -> Reply {
        Reply::from(
            self.request(reqwest::Method::GET, "query")
                .query(&[("q", soql)])
                .send()
                .await
                .expect("query"),
        )
        .await
    }
}

/// A control call: GET when `body` is None, else POST.
pub async fn control(org: &SimOrg, path: &str, body: Option<Json>) -> Reply {
    let c = reqwest::Client::new();
    let url = format!("{}/__sim/{path}", org.base_url);
    let req = match body {
        None => c.get(url),
        Some(b) => c.post(url).json(&b),
    };
    Reply::from(req.send().await.expect("control call")).await
}

/// `n` valid Opportunity bodies named `{prefix} 00000`...
pub fn opportunities(prefix: &str, n: usize) -> Vec<Map<String, Json>> {
    (0..n)
        .map(|i| {
            let v = json!({
                "Name": format!("{prefix} {i:05}"),
                "StageName": "Prospecting",
                "CloseDate": "2026-12-31",
                "Amount": i,
            });
            v.as_object().cloned().unwrap_or_default()
        })
        .collect()
}

pub fn seed(org: &SimOrg, records: Vec<Map<String, Json>>) -> Vec<String> {
    org.seed_records("Opportunity", None, records)
        .expect("seeded")
        .into_iter()
        .map(|r| {
            assert_eq!(r["success"], json!(true), "{r}");
            r["id"].as_str().expect("id").to_string()
        })
        .collect()
}
