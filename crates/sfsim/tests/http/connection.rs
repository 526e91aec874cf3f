//! Kept-alive connections survive error replies: a reply sent before a large request body was
//! read must not leave the connection silently closed for the client's next request. Driven
//! over one raw TCP connection (a pooled client would hide a closed socket by retrying), and
//! with a pooled reqwest client as a real client sees it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Reply, V, api, org};

/// One HTTP/1.1 reply read off a connection: status, lower-cased headers, body.
struct RawReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one reply with a `content-length` body; an error when the connection ends first.
async fn read_reply(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<RawReply> {
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed");
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
    buffer.drain(..head_end + length);
    Ok(RawReply {
        status,
        headers,
        body,
    })
}

fn large_body() -> String {
    format!("{{\"padding\":\"{}\"}}", "x".repeat(100_000))
}

/// Sends a large POST that is answered with an error, then `GET limits` on the same
/// connection, three times over; both replies must arrive each time.
async fn error_then_limits(path: &str, authorization: &str, expected: u16) {
    let org = org("A").await;
    let api = api(&org).await;
    let mut stream = TcpStream::connect(org.addr).await.expect("connect");
    let mut buffer = Vec::new();
    for round in 0..3 {
        let body = large_body();
        let post = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: {authorization}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            org.addr,
            body.len()
        );
        stream
            .write_all(post.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("round {round}: POST written: {e}"));
        let r = read_reply(&mut stream, &mut buffer)
            .await
            .unwrap_or_else(|e| panic!("round {round}: error reply read: {e}"));
        assert_eq!(r.status, expected, "{}", r.body);
        if r.header("connection") == Some("close") {
            // An announced close is allowed: the client opens a new connection.
            stream = TcpStream::connect(org.addr).await.expect("reconnect");
            buffer.clear();
        }
        let get = format!(
            "GET /services/data/v{V}/limits HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\r\n",
            org.addr, api.token
        );
        stream
            .write_all(get.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("round {round}: GET written: {e}"));
        let r = read_reply(&mut stream, &mut buffer)
            .await
            .unwrap_or_else(|e| panic!("round {round}: limits on the same connection: {e}"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("DailyApiRequests"), "{}", r.body);
    }
}

#[tokio::test]
async fn a_404_for_a_large_post_keeps_the_connection_usable() {
    error_then_limits("/no/such/path", "Bearer none", 404).await;
}

#[tokio::test]
async fn an_auth_failure_with_a_large_body_keeps_the_connection_usable() {
    error_then_limits(
        &format!("/services/data/v{V}/sobjects/Account"),
        "Bearer not-a-session",
        401,
    )
    .await;
}

#[tokio::test]
async fn a_pooled_client_keeps_working_after_large_error_posts() {
    let org = org("A").await;
    let api = api(&org).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    for _ in 0..3 {
        let r = http
            .post(format!("{}/no/such/path", org.base_url))
            .header("content-type", "application/json")
            .body(large_body())
            .send()
            .await
            .expect("unknown path answered");
        assert_eq!(r.status().as_u16(), 404);
        let r = http
            .post(format!(
                "{}/services/data/v{V}/sobjects/Account",
                org.base_url
            ))
            .bearer_auth("not-a-session")
            .body(large_body())
            .send()
            .await
            .expect("auth failure answered");
        let r = Reply::from(r).await;
        assert_eq!(r.error_code(), "INVALID_SESSION_ID");
        let r = http
            .get(format!("{}/services/data/v{V}/limits", org.base_url))
            .bearer_auth(&api.token)
            .send()
            .await
            .expect("limits on the same client");
        let r = Reply::from(r).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_the_close_announced() {
    let org = org("A").await;
    let api = api(&org).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let r = http
        .post(format!(
            "{}/services/data/v{V}/sobjects/Account",
            org.base_url
        ))
        .bearer_auth(&api.token)
        .body(vec![b' '; 16 * 1024 * 1024 + 1])
        .send()
        .await
        .expect("oversized body answered");
    assert_eq!(
        r.headers().get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    let r = Reply::from(r).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.error_code(), "REQUEST_ENTITY_TOO_LARGE");
    let r = http
        .get(format!("{}/services/data/v{V}/limits", org.base_url))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("limits after the announced close");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn control_bodies_over_the_rest_limit_are_still_read() {
    let org = org("A").await;
    // 17 MB: over the REST limit, under the control API's 64 MB.
    let padding = "x".repeat(17 * 1024 * 1024);
    let body = format!(r#"{{"object":"Opportunity","records":[{{"Name":"{padding}"}}]}}"#);
    let r = reqwest::Client::new()
        .post(format!("{}/__sim/records", org.base_url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("control call answered");
    let r = Reply::from(r).await;
    assert_ne!(r.status, 413, "{}", &r.text[..r.text.len().min(300)]);
}
