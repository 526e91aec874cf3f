//! Errors in Salesforce's shapes: top-level REST errors carry `errorCode`, per-item errors in
//! sObject Collections carry `statusCode` (reference §4, §5).

use serde::Serialize;

/// A top-level REST error: HTTP status plus `[{"message","errorCode","fields"?}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub error_code: String,
    pub message: String,
    /// `None` means the key is absent (MALFORMED_QUERY has no `fields`).
    pub fields: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_code: code.to_string(),
            message: message.into(),
            fields: None,
        }
    }
    pub fn malformed_query(message: impl Into<String>) -> Self {
        Self::new(400, "MALFORMED_QUERY", message)
    }
    pub fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_FIELD", message)
    }
    pub fn not_found() -> Self {
        Self::new(404, "NOT_FOUND", "The requested resource does not exist")
    }
    /// The JSON body Salesforce sends: an array with one error object.
    pub fn body(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("message".into(), self.message.clone().into());
        o.insert("errorCode".into(), self.error_code.clone().into());
        if let Some(f) = &self.fields {
            o.insert("fields".into(), f.clone().into());
        }
        serde_json::Value::Array(vec![serde_json::Value::Object(o)])
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {}: {}",
            self.status, self.error_code, self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// A per-record error inside an sObject Collections reply or a DML result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    #[serde(rename = "statusCode")]
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl ItemError {
    pub fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        ItemError {
            status_code: code.to_string(),
            message: message.into(),
            fields,
        }
    }
}
