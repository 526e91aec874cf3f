//! Building HTTP replies in Salesforce's shapes: JSON bodies, REST error arrays, OAuth errors,
//! SOAP envelopes, and reading request bodies with a size limit.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use crate::error::ApiError;

/// A JSON reply with a status.
pub fn json_reply(status: u16, body: &Json) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

/// A REST error: its status and `[{"message","errorCode"}]` body.
pub fn api_error(e: &ApiError) -> Response {
    json_reply(e.status, &e.body())
}

/// An empty reply (204 No Content).
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// An OAuth token endpoint error: HTTP 400 `{"error","error_description"}` (reference §1).
pub fn oauth_error(error: &str, description: &str) -> Response {
    json_reply(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

/// A SOAP envelope reply.
pub fn soap_reply(status: u16, xml: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, xml).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    r
}

/// Reads a request body of at most `limit` bytes; a larger body is refused with 413
/// `REQUEST_ENTITY_TOO_LARGE` (Salesforce's code for an oversized REST request).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            413,
            "REQUEST_ENTITY_TOO_LARGE",
            format!("The request body is larger than the limit of {limit} bytes"),
        )
    })
}

/// Parses a JSON body as Salesforce's parser reports failures: 400 `JSON_PARSER_ERROR`.
pub fn parse_json(bytes: &[u8]) -> Result<Json, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            400,
            "JSON_PARSER_ERROR",
            format!(
                "Unexpected character or end of input: {e} at [line:{}, column:{}]",
                e.line(),
                e.column()
            ),
        )
    })
}

/// Largest request body of the Salesforce endpoints; the whole body is read before a handler
/// runs.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Largest request body of the control API (`/__sim/records` seeds up to 10,000 records).
pub const MAX_CONTROL_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Largest body read for a Bulk ingest upload (Salesforce: 150 MB base64).
pub const MAX_BULK_UPLOAD_BYTES: usize = 150 * 1024 * 1024;

/// The body limit of a path: the control API's under `/__sim/`, a Bulk ingest upload's under
/// `/jobs/ingest/` (its handler applies the upload limit), else the REST limit.
pub fn body_limit(path: &str) -> usize {
    if path == "/__sim" || path.starts_with("/__sim/") {
        MAX_CONTROL_REQUEST_BYTES
    } else if path.contains("/jobs/ingest/") {
        MAX_BULK_UPLOAD_BYTES
    } else {
        MAX_REQUEST_BYTES
    }
}

/// Middleware reading every request body (up to [`body_limit`]) before the handler
/// runs. A handler that answers early (404, 401, a fault) would otherwise leave the body
/// unread, and hyper then closes the kept-alive connection without `Connection: close`: the
/// client's next request on that socket fails (EPIPE, "socket hang up"). A body over the limit
/// is answered 413 `REQUEST_ENTITY_TOO_LARGE` with `Connection: close`, announcing the close.
pub async fn buffer_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match read_body(body, body_limit(parts.uri.path())).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            let mut r = api_error(&e);
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bodies_may_be_larger() {
        assert_eq!(
            body_limit("/services/data/v62.0/sobjects"),
            MAX_REQUEST_BYTES
        );
        assert_eq!(body_limit("/__sim/records"), MAX_CONTROL_REQUEST_BYTES);
        assert_eq!(body_limit("/__simulator"), MAX_REQUEST_BYTES);
    }
}
