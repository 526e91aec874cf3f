//! Errors of the Salesforce client, and how each one should be treated.
//!
//! One type, [`SalesforceError`], carries what an operator needs to act: the org it came from,
//! the HTTP status, Salesforce's `errorCode` (or the OAuth `error`, or the SOAP
//! `exceptionCode`), and Salesforce's message. Its [`ErrorClass`] drives the retry policy the
//! way supabase/etl's error kinds do: a transient error is retried with backoff, the daily
//! limit pauses the engine, everything else fails fast. No variant ever holds a token,
//! password or secret: bodies are parsed into code and message, never quoted whole.

use std::fmt;

use crate::domain::ErrorKind;

/// What kind of failure an error is, which decides what the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 5xx, timeouts, connection failures, `UNABLE_TO_LOCK_ROW`: the same call can succeed
    /// if tried again a little later.
    Transient,
    /// `REQUEST_LIMIT_EXCEEDED` or our own API budget: stop calling this org for a while.
    LimitExceeded,
    /// `INVALID_SESSION_ID`: the session expired; log in again and retry once.
    SessionExpired,
    /// Login refused (wrong password, secret, key, unknown client): a person must fix the
    /// configuration.
    Auth,
    /// Any other client error (400 `MALFORMED_QUERY`, `INVALID_FIELD`, 404...): the same
    /// request fails the same way.
    Permanent,
}

/// A failed call to one org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceError {
    /// The org's name in the configuration ("a", "b").
    pub org: String,
    /// HTTP status, when a reply came back.
    pub status: Option<u16>,
    /// Salesforce's `errorCode` / OAuth `error` / SOAP `exceptionCode`, or a client code:
    /// `TIMEOUT`, `CONNECTION_FAILED`, `BAD_RESPONSE`, `URI_TOO_LONG`, `API_BUDGET_EXCEEDED`,
    /// `BAD_CONFIGURATION`.
    pub code: String,
    /// Salesforce's message (or ours); never holds a secret.
    pub message: String,
    /// How to treat it.
    pub class: ErrorClass,
}

impl fmt::Display for SalesforceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "org {}: {}", self.org, self.code)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SalesforceError {}

impl SalesforceError {
    /// An error found before or without a Salesforce reply.
    pub fn client(org: &str, code: &str, message: impl Into<String>, class: ErrorClass) -> Self {
        SalesforceError {
            org: org.to_string(),
            status: None,
            code: code.to_string(),
            message: message.into(),
            class,
        }
    }

    /// What the error needs, in the one classification every layer uses: the client's retry
    /// mechanics mapped onto it (an expired session is transient: the client logs in again;
    /// any other refusal is classed by its code, [`ErrorKind::of_refusal`]).
    pub fn kind(&self) -> ErrorKind {
        match self.class {
            ErrorClass::LimitExceeded => ErrorKind::Limit,
            ErrorClass::Transient | ErrorClass::SessionExpired => ErrorKind::Transient,
            ErrorClass::Auth => ErrorKind::Auth,
            ErrorClass::Permanent => ErrorKind::of_refusal(&self.code),
        }
    }

    /// True when trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// True for the daily API limit (or our budget): the caller should pause this org.
    pub fn is_limit_exceeded(&self) -> bool {
        self.class == ErrorClass::LimitExceeded
    }

    /// True for a login the client did not even attempt: it is backing off from a refusal of
    /// the credentials (logged once, when the refusal happened; see `gate`).
    pub fn is_login_backing_off(&self) -> bool {
        self.class == ErrorClass::Auth && self.code == super::client::AUTH_FAILED
    }

    /// True for an expired or invalid session.
    pub fn is_session_expired(&self) -> bool {
        self.class == ErrorClass::SessionExpired
    }

    /// Builds the error of a non-2xx REST reply from its status and body.
    pub fn from_rest_reply(org: &str, status: u16, body: &str) -> Self {
        let (code, message) = parse_rest_error_body(body).unwrap_or_else(|| {
            (
                default_code(status).to_string(),
                summarize_body(body, status),
            )
        });
        let class = classify(status, &code);
        SalesforceError {
            org: org.to_string(),
            status: Some(status),
            code,
            message,
            class,
        }
    }

    /// Builds the error of a failed OAuth token request.
    pub fn from_oauth_reply(org: &str, status: u16, body: &str) -> Self {
        let parsed: Option<(String, String)> = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?.as_str()?.to_string();
                let description = v
                    .get("error_description")
                    .and_then(|d| d.as_str())
                    .unwrap_or("")
                    .to_string();
                Some((error, description))
            });
        match parsed {
            Some((code, message)) => {
                let class = if status >= 500 {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Auth
                };
                SalesforceError {
                    org: org.to_string(),
                    status: Some(status),
                    code,
                    message: format!("login refused: {message}"),
                    class,
                }
            }
            None => {
                let mut err = Self::from_rest_reply(org, status, body);
                if err.class == ErrorClass::Permanent || err.class == ErrorClass::SessionExpired {
                    err.class = ErrorClass::Auth;
                }
                err
            }
        }
    }

    /// Builds the error of a transport failure (no reply, or an unreadable one).
    pub fn from_transport(org: &str, err: &reqwest::Error) -> Self {
        // `without_url`: the URL holds no secret, but it can be long (SOQL); keep lines short.
        let code = if err.is_timeout() {
            "TIMEOUT"
        } else if err.is_connect() {
            "CONNECTION_FAILED"
        } else if err.is_decode() || err.is_body() {
            "BAD_RESPONSE"
        } else {
            "HTTP_ERROR"
        };
        let mut message = describe_chain(err);
        if message.is_empty() {
            message = "request failed".to_string();
        }
        SalesforceError {
            org: org.to_string(),
            status: err.status().map(|s| s.as_u16()),
            code: code.to_string(),
            message,
            class: ErrorClass::Transient,
        }
    }
}

/// `error: cause: cause`, for a transport error, without its URL.
fn describe_chain(err: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut current: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = current {
        let line = match e.downcast_ref::<reqwest::Error>() {
            Some(r) => {
                // Display of a reqwest error without its URL.
                let mut s = format!("{r}");
                if let Some(url) = r.url() {
                    s = s
                        .replace(&format!(" ({url})"), "")
                        .replace(url.as_str(), "")
                        .replace(" for url", "");
                }
                s
            }
            None => e.to_string(),
        };
        if !line.is_empty() && !text.contains(&line) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&line);
        }
        current = e.source();
    }
    text
}

/// Classifies a REST error by HTTP status and Salesforce `errorCode`.
pub fn classify(status: u16, code: &str) -> ErrorClass {
    match code {
        "REQUEST_LIMIT_EXCEEDED" | "API_BUDGET_EXCEEDED" => return ErrorClass::LimitExceeded,
        "INVALID_SESSION_ID" => return ErrorClass::SessionExpired,
        "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "REQUEST_RUNNING_TOO_LONG" => {
            return ErrorClass::Transient;
        }
        _ => {}
    }
    match status {
        401 => ErrorClass::SessionExpired,
        408 | 429 => ErrorClass::Transient,
        s if s >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// Reads `[{"message":..,"errorCode":..}]` (or a single object, as some endpoints answer).
pub fn parse_rest_error_body(body: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let first = match &value {
        serde_json::Value::Array(items) => items.first()?,
        obj @ serde_json::Value::Object(_) => obj,
        _ => return None,
    };
    let code = first
        .get("errorCode")
        .or_else(|| first.get("error"))
        .and_then(|c| c.as_str())?
        .to_string();
    let message = first
        .get("message")
        .or_else(|| first.get("error_description"))
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "BAD_REQUEST",
        401 => "INVALID_SESSION_ID",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        414 => "URI_TOO_LONG",
        429 => "TOO_MANY_REQUESTS",
        500 => "SERVER_ERROR",
        502 => "BAD_GATEWAY",
        503 => "SERVER_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        _ => "HTTP_ERROR",
    }
}

/// A short, single-line excerpt of a non-JSON error body (e.g. an HTML 503 page).
fn summarize_body(body: &str, status: u16) -> String {
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return format!("HTTP {status} with an empty body");
    }
    let mut excerpt: String = flat.chars().take(200).collect();
    if flat.chars().count() > 200 {
        excerpt.push_str("...");
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_errors_parse_and_classify() {
        let e = SalesforceError::from_rest_reply(
            "a",
            400,
            r#"[{"message":"unexpected token: 'invalid'","errorCode":"MALFORMED_QUERY"}]"#,
        );
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert_eq!(e.message, "unexpected token: 'invalid'");
        assert!(!e.is_retryable());
        assert_eq!(e.class, ErrorClass::Permanent);
        assert_eq!(
            e.to_string(),
            "org a: MALFORMED_QUERY (HTTP 400): unexpected token: 'invalid'"
        );

        let e = SalesforceError::from_rest_reply(
            "b",
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert!(e.is_limit_exceeded());
        assert!(!e.is_retryable());

        let e = SalesforceError::from_rest_reply(
            "a",
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert!(e.is_session_expired());

        let e = SalesforceError::from_rest_reply("a", 503, "<html>Service Unavailable</html>");
        assert!(e.is_retryable());
        assert_eq!(e.code, "SERVER_UNAVAILABLE");
        assert_eq!(e.message, "<html>Service Unavailable</html>");

        let e = SalesforceError::from_rest_reply(
            "a",
            500,
            r#"[{"message":"unable to obtain exclusive access","errorCode":"UNABLE_TO_LOCK_ROW"}]"#,
        );
        assert!(e.is_retryable());

        let e = SalesforceError::from_rest_reply(
            "a",
            400,
            r#"[{"message":"No such column 'Foo'","errorCode":"INVALID_FIELD"}]"#,
        );
        assert!(!e.is_retryable());
        let e = SalesforceError::from_rest_reply("a", 404, "");
        assert_eq!(e.code, "NOT_FOUND");
        assert_eq!(e.class, ErrorClass::Permanent);
    }

    #[test]
    fn oauth_errors_are_auth_failures() {
        let e = SalesforceError::from_oauth_reply(
            "b",
            400,
            r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#,
        );
        assert_eq!(e.code, "invalid_client_id");
        assert_eq!(e.class, ErrorClass::Auth);
        assert!(
            e.to_string()
                .starts_with("org b: invalid_client_id (HTTP 400)")
        );
        let e = SalesforceError::from_oauth_reply("b", 503, "down");
        assert!(e.is_retryable());
    }

    #[test]
    fn classification_table() {
        assert_eq!(classify(500, "X"), ErrorClass::Transient);
        assert_eq!(classify(502, ""), ErrorClass::Transient);
        assert_eq!(classify(429, ""), ErrorClass::Transient);
        assert_eq!(classify(400, "INVALID_FIELD"), ErrorClass::Permanent);
        assert_eq!(classify(404, "NOT_FOUND"), ErrorClass::Permanent);
        assert_eq!(classify(403, "INSUFFICIENT_ACCESS"), ErrorClass::Permanent);
        assert_eq!(
            classify(403, "REQUEST_LIMIT_EXCEEDED"),
            ErrorClass::LimitExceeded
        );
        assert_eq!(classify(400, "UNABLE_TO_LOCK_ROW"), ErrorClass::Transient);
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(1000);
        let e = SalesforceError::from_rest_reply("a", 502, &body);
        assert!(e.message.len() < 260);
    }
}
