//! Authentication: SOAP `login` (reference §2), the OAuth 2.0 token endpoint with the
//! password, client_credentials, refresh_token and JWT bearer grants (reference §1), and the
//! session check every REST call goes through.
//!
//! Choices where Salesforce depends on org settings:
//! - the password grant returns a refresh token only when `scope` names `refresh_token` or
//!   `offline_access` (as a connected app with those scopes does);
//! - the refresh_token grant does not rotate: the same refresh token stays valid;
//! - a password must carry the security token (no trusted IP ranges).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::IntoResponse;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::Deserialize;
use serde_json::json;
use tracing::debug;

use super::reply::{oauth_error, read_body, soap_reply};
use super::soap::{self, LoginReply, LoginRequest, MAX_SOAP_BYTES, SoapError, SoapRequest};
use super::state::{
    CLIENT_ID, CLIENT_SECRET, OrgState, PASSWORD, RequestLogEntry, SECURITY_TOKEN, Session, SimUser,
};
use crate::error::ApiError;

/// Largest OAuth form accepted (a JWT assertion is a few kilobytes).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Audiences a JWT bearer assertion may name besides the org's own URL.
const LOGIN_AUDIENCES: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];

/// The Salesforce error for a missing, unknown or expired session.
pub fn invalid_session() -> ApiError {
    ApiError::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
}

/// The session named by `Authorization: Bearer <token>` (or `OAuth <token>`).
pub fn authenticate(state: &OrgState, headers: &HeaderMap) -> Result<Session, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid_session)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(invalid_session)?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("oauth") {
        return Err(invalid_session());
    }
    state.session(token.trim()).ok_or_else(invalid_session)
}

/// Whether a login's password is right: the password followed by the security token.
pub fn password_matches(given: &str) -> bool {
    given.len() == PASSWORD.len() + SECURITY_TOKEN.len()
        && given.starts_with(PASSWORD)
        && given.ends_with(SECURITY_TOKEN)
}

/// The API version of a `/services/Soap/u/NN.0` path segment, if well-formed.
pub fn soap_version(segment: &str) -> Option<&str> {
    let (major, minor) = segment.split_once('.')?;
    let ok = !major.is_empty()
        && major.len() <= 3
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor == "0";
    ok.then_some(segment)
}

fn log(state: &OrgState, kind: &str, path: &str, status: u16, user: Option<&str>) {
    state.count_call(kind);
    state.log_request(RequestLogEntry {
        time: crate::value::format_datetime(chrono::Utc::now()),
        method: "POST".into(),
        path: path.to_string(),
        kind: Some(kind.to_string()),
        soql: None,
        status,
        user: user.map(str::to_string),
    });
}

/// `POST /services/Soap/u/{version}`: the Partner API `login` and `logout` calls, and the
/// `undelete` and `merge` data calls (`soap_data.rs`).
pub async fn soap_login(
    State(state): State<Arc<OrgState>>,
    Path(version): Path<String>,
    body: Body,
) -> Response {
    state.delay().await;
    let path = format!("/services/Soap/u/{version}");
    let (kind, reply) = match read_soap(&version, body).await {
        Ok((version, SoapRequest::Login(request))) => {
            ("login", soap_login_reply(&state, version, &request))
        }
        Ok((_, SoapRequest::Logout { session_id })) => {
            ("logout", soap_logout(&state, session_id.as_deref()))
        }
        Ok((_, SoapRequest::Undelete { session_id, ids })) => (
            "undelete",
            super::soap_data::undelete(&state, session_id.as_deref(), &ids),
        ),
        Ok((
            _,
            SoapRequest::Merge {
                session_id,
                requests,
            },
        )) => (
            "merge",
            super::soap_data::merge(&state, session_id.as_deref(), &requests),
        ),
        Err(e) => ("login", Err(e)),
    };
    let (status, user, response) = match reply {
        Ok((user, xml)) => (200, Some(user), soap_reply(200, xml)),
        Err((status, xml)) => (status, None, soap_reply(status, xml)),
    };
    log(&state, kind, &path, status, user.as_deref());
    response
}

/// `POST /services/Soap/u/{version}/{orgId15}`: the login reply's `serverUrl`, where clients
/// send their later calls; the same calls as [`soap_login`] (the org segment is not checked).
pub async fn soap_server_url(
    state: State<Arc<OrgState>>,
    Path((version, _org)): Path<(String, String)>,
    body: Body,
) -> Response {
    soap_login(state, Path(version), body).await
}

/// SOAP `logout`: ends the session of the SessionHeader; a missing or dead session is the
/// INVALID_SESSION_ID fault.
fn soap_logout(
    state: &OrgState,
    session_id: Option<&str>,
) -> Result<(String, String), (u16, String)> {
    let token = session_id.unwrap_or_default();
    let user = state.session(token).map(|s| s.username);
    match user {
        Some(username) if state.end_session(token) => {
            debug!(org = %state.name, user = %username, "SOAP logout");
            Ok((username, soap::logout_response()))
        }
        _ => Err((500, soap::invalid_session_fault())),
    }
}

/// Reads a Partner API request of a well-formed version.
async fn read_soap(version: &str, body: Body) -> Result<(&str, SoapRequest), (u16, String)> {
    let Some(version) = soap_version(version) else {
        return Err((
            404,
            soap::client_fault("UNKNOWN_EXCEPTION", "Unknown API version"),
        ));
    };
    let bytes = read_body(body, MAX_SOAP_BYTES)
        .await
        .map_err(|e| (413, soap::client_fault("INVALID_REQUEST", &e.message)))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        (
            500,
            soap::client_fault("INVALID_REQUEST", "request is not valid UTF-8"),
        )
    })?;
    let request = soap::parse_request(text).map_err(|e| {
        let code = match e {
            SoapError::UnknownOperation(_) => "INVALID_OPERATION",
            _ => "INVALID_REQUEST",
        };
        (500, soap::client_fault(code, &e.to_string()))
    })?;
    Ok((version, request))
}

/// SOAP `login`: a new session for the right username and password.
fn soap_login_reply(
    state: &OrgState,
    version: &str,
    request: &LoginRequest,
) -> Result<(String, String), (u16, String)> {
    let user = state
        .user_by_name(&request.username)
        .filter(|_| password_matches(&request.password))
        .ok_or_else(|| (500, soap::invalid_login_fault()))?;
    let token = state.open_session(user);
    debug!(org = %state.name, user = %user.username, "SOAP login");
    let xml = soap::login_response(&LoginReply {
        base_url: &state.base_url,
        api_version: version,
        org_id: &state.org_id,
        org_name: &state.name,
        session_id: &token,
        user_id: &user.id,
        username: &user.username,
        session_seconds_valid: state.session_ttl_secs(),
    });
    Ok((user.username.clone(), xml))
}

/// The form fields of a token request.
#[derive(Debug, Default)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    assertion: Option<String>,
    scope: Option<String>,
}

fn parse_form(bytes: &[u8]) -> TokenForm {
    let mut f = TokenForm::default();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "grant_type" => f.grant_type = v,
            "client_id" => f.client_id = v,
            "client_secret" => f.client_secret = v,
            "username" => f.username = v,
            "password" => f.password = v,
            "refresh_token" => f.refresh_token = v,
            "assertion" => f.assertion = v,
            "scope" => f.scope = v,
            _ => {}
        }
    }
    f
}

/// Client id and secret from `Authorization: Basic`, if present.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, data) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(data.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Why a token request failed: the OAuth `error` and `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

const fn oauth(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError { error, description }
}

const AUTH_FAILURE: OAuthError = oauth("invalid_grant", "authentication failure");
const BAD_CLIENT_ID: OAuthError = oauth("invalid_client_id", "client identifier invalid");
const BAD_CLIENT_SECRET: OAuthError = oauth("invalid_client", "invalid client credentials");

fn check_client(
    id: Option<&str>,
    secret: Option<&str>,
    secret_required: bool,
) -> Result<(), OAuthError> {
    if id != Some(CLIENT_ID) {
        return Err(BAD_CLIENT_ID);
    }
    match secret {
        Some(s) if s == CLIENT_SECRET => Ok(()),
        None if !secret_required => Ok(()),
        _ => Err(BAD_CLIENT_SECRET),
    }
}

#[derive(Debug, Deserialize)]
struct JwtClaims {
    sub: String,
}

/// Verifies a JWT bearer assertion and returns the username it names (its `sub`).
pub fn verify_assertion(
    assertion: &str,
    public_key_pem: &str,
    base_url: &str,
) -> Result<String, OAuthError> {
    let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
        .map_err(|_| oauth("invalid_grant", "invalid assertion"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[CLIENT_ID]);
    let with_slash = format!("{base_url}/");
    let mut audiences: Vec<&str> = LOGIN_AUDIENCES.to_vec();
    audiences.push(base_url);
    audiences.push(&with_slash);
    validation.set_audience(&audiences);
    // `exp` must be in the future: no grace period.
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let data = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => oauth("invalid_grant", "expired authorization code"),
            K::InvalidIssuer => BAD_CLIENT_ID,
            K::InvalidAudience => oauth("invalid_grant", "audience is invalid"),
            K::InvalidSignature => oauth("invalid_grant", "invalid assertion"),
            _ => oauth("invalid_grant", "invalid assertion"),
        }
    })?;
    Ok(data.claims.sub)
}

/// Salesforce's `signature`: HMAC-SHA256 of `id` + `issued_at` keyed by the client secret,
/// base64.
fn token_signature(id: &str, issued_at: &str) -> String {
    let message = format!("{id}{issued_at}");
    let key = EncodingKey::from_secret(CLIENT_SECRET.as_bytes());
    jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .ok()
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .map(|raw| STANDARD.encode(raw))
        .unwrap_or_default()
}

/// Decides a token request: which user it logs in, whether to return a refresh token, and
/// the scope to report.
fn grant(
    state: &OrgState,
    form: &TokenForm,
    basic: Option<(String, String)>,
) -> Result<(SimUser, bool, Option<String>), OAuthError> {
    let (client_id, client_secret) = match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (form.client_id.clone(), form.client_secret.clone()),
    };
    let grant_type = form
        .grant_type
        .as_deref()
        .ok_or(oauth("unsupported_grant_type", "grant type not supported"))?;
    match grant_type {
        "password" => {
            check_client(client_id.as_deref(), client_secret.as_deref(), true)?;
            let username = form.username.as_deref().ok_or(AUTH_FAILURE)?;
            let password = form.password.as_deref().ok_or(AUTH_FAILURE)?;
            let user = state
                .user_by_name(username)
                .filter(|_| password_matches(password))
                .ok_or(AUTH_FAILURE)?;
            let scopes = form.scope.as_deref().unwrap_or("");
            let refresh = scopes
                .split([' ', '+', ','])
                .any(|s| s == "refresh_token" || s == "offline_access");
            Ok((user.clone(), refresh, form.scope.clone()))
        }
        "client_credentials" => {
            check_client(client_id.as_deref(), client_secret.as_deref(), true)?;
            let user = state
                .users
                .first()
                .ok_or(oauth("invalid_grant", "no client credentials user enabled"))?;
            Ok((user.clone(), false, Some("api".into())))
        }
        "refresh_token" => {
            check_client(client_id.as_deref(), client_secret.as_deref(), false)?;
            let token = form
                .refresh_token
                .as_deref()
                .ok_or(oauth("invalid_grant", "expired access/refresh token"))?;
            let user = state
                .refresh_token_user(token)
                .ok_or(oauth("invalid_grant", "expired access/refresh token"))?;
            Ok((user.clone(), false, Some("api refresh_token".into())))
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let assertion = form
                .assertion
                .as_deref()
                .ok_or(oauth("invalid_grant", "invalid assertion"))?;
            let sub = verify_assertion(assertion, &state.jwt_public_key_pem, &state.base_url)?;
            let user = state
                .user_by_name(&sub)
                .ok_or(oauth("invalid_grant", "user hasn't approved this consumer"))?;
            Ok((user.clone(), false, Some("api".into())))
        }
        _ => Err(oauth("unsupported_grant_type", "grant type not supported")),
    }
}

/// `POST /services/oauth2/token`.
pub async fn oauth_token(
    State(state): State<Arc<OrgState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const PATH: &str = "/services/oauth2/token";
    state.delay().await;
    let bytes = match read_body(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            log(&state, "oauth_token", PATH, 400, None);
            return oauth_error("invalid_request", "request body too large");
        }
    };
    let form = parse_form(&bytes);
    match grant(&state, &form, basic_credentials(&headers)) {
        Ok((user, with_refresh, scope)) => {
            let token = state.open_session(&user);
            let issued_at = chrono::Utc::now().timestamp_millis().to_string();
            let id = format!("{}/id/{}/{}", state.base_url, state.org_id, user.id);
            let mut body = json!({
                "access_token": token,
                "instance_url": state.base_url,
                "id": id,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": token_signature(&id, &issued_at),
            });
            if let Some(scope) = scope {
                body["scope"] = json!(scope);
            }
            if with_refresh {
                body["refresh_token"] = json!(user.refresh_token);
            }
            debug!(org = %state.name, user = %user.username, "OAuth token issued");
            log(&state, "oauth_token", PATH, 200, Some(&user.username));
            super::reply::json_reply(200, &body)
        }
        Err(e) => {
            log(&state, "oauth_token", PATH, 400, None);
            oauth_error(e.error, e.description)
        }
    }
}

/// `POST /services/oauth2/revoke` (form `token=`, or `GET ?token=`): revokes an access token,
/// or a refresh token and every session of its user. HTTP 200 with an empty body; an unknown
/// token is HTTP 400 `invalid_token`.
pub async fn oauth_revoke(State(state): State<Arc<OrgState>>, uri: Uri, body: Body) -> Response {
    const PATH: &str = "/services/oauth2/revoke";
    state.delay().await;
    let bytes = read_body(body, MAX_FORM_BYTES).await.unwrap_or_default();
    let from_form = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let from_query = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let token = from_form.or(from_query).unwrap_or_default();
    let token = token.trim();
    let user = state
        .session(token)
        .map(|s| s.username)
        .or_else(|| state.refresh_token_user(token).map(|u| u.username.clone()));
    let revoked =
        !token.is_empty() && (state.end_session(token) || state.revoke_refresh_token(token));
    if revoked {
        debug!(org = %state.name, user = user.as_deref().unwrap_or_default(), "OAuth token revoked");
        log(&state, "oauth_revoke", PATH, 200, user.as_deref());
        return axum::http::StatusCode::OK.into_response();
    }
    log(&state, "oauth_revoke", PATH, 400, None);
    oauth_error("invalid_token", "invalid token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_needs_the_token() {
        assert!(password_matches("passwordtoken"));
        assert!(!password_matches("password"));
        assert!(!password_matches("wrongtoken"));
        assert!(!password_matches(""));
    }

    #[test]
    fn soap_versions() {
        assert_eq!(soap_version("62.0"), Some("62.0"));
        assert_eq!(soap_version("8.0"), Some("8.0"));
        assert_eq!(soap_version("62"), None);
        assert_eq!(soap_version("v62.0"), None);
        assert_eq!(soap_version("62.1"), None);
    }

    #[test]
    fn client_checks() {
        assert_eq!(
            check_client(Some(CLIENT_ID), Some(CLIENT_SECRET), true),
            Ok(())
        );
        assert_eq!(check_client(Some(CLIENT_ID), None, false), Ok(()));
        assert_eq!(
            check_client(Some(CLIENT_ID), None, true),
            Err(BAD_CLIENT_SECRET)
        );
        assert_eq!(
            check_client(Some("x"), Some(CLIENT_SECRET), true),
            Err(BAD_CLIENT_ID)
        );
    }

    #[test]
    fn signature_is_base64_of_32_bytes() {
        let s = token_signature("https://x/id/1/2", "123");
        assert_eq!(STANDARD.decode(&s).map(|v| v.len()).ok(), Some(32));
    }
}
