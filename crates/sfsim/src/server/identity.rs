//! The Identity Service: the identity URL the token reply hands out
//! (`GET /id/{orgId}/{userId}`) and the OpenID Connect UserInfo endpoint
//! (`GET|POST /services/oauth2/userinfo`), in the shapes of Salesforce's "Identity URL
//! Response" and "UserInfo Endpoint Response" pages. The access token comes in an
//! `Authorization: Bearer` (or `OAuth`) header or an `oauth_token` / `access_token` parameter.
//! Errors are Salesforce's plain-text codes: 403 `Missing_OAuth_Token`, `Bad_OAuth_Token`,
//! `Wrong_Org`; 404 `Bad_Id`. These calls do not count against the daily API allowance.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::reply::json_reply;
use super::rest::LISTED_VERSIONS;
use super::state::{OrgState, RequestLogEntry, Session, lock};

/// The absolute identity URL of a user: `{base}/id/{orgId}/{userId}`.
pub fn identity_url(state: &OrgState, user_id: &str) -> String {
    format!("{}/id/{}/{}", state.base_url, state.org_id, user_id)
}

/// An identity error: its status and Salesforce's plain-text code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityError {
    pub status: u16,
    pub code: &'static str,
}

const MISSING_TOKEN: IdentityError = IdentityError {
    status: 403,
    code: "Missing_OAuth_Token",
};
const BAD_TOKEN: IdentityError = IdentityError {
    status: 403,
    code: "Bad_OAuth_Token",
};
const WRONG_ORG: IdentityError = IdentityError {
    status: 403,
    code: "Wrong_Org",
};
const BAD_ID: IdentityError = IdentityError {
    status: 404,
    code: "Bad_Id",
};

/// The access token of an identity call: the Authorization header, else `oauth_token` or
/// `access_token` in the query string.
pub fn access_token(headers: &HeaderMap, params: &HashMap<String, String>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth")
        })
        .map(|(_, t)| t.trim().to_string());
    from_header
        .or_else(|| params.get("oauth_token").cloned())
        .or_else(|| params.get("access_token").cloned())
        .filter(|t| !t.is_empty())
}

/// The 15-character form of an id (Salesforce accepts either in the identity URL).
fn id15(id: &str) -> &str {
    id.get(..15).unwrap_or(id)
}

/// Whether the identity URL's ids name the session's org and a user of it: `Ok(())`, or the
/// error Salesforce gives.
pub fn check_ids(
    org_id: &str,
    user_exists: impl Fn(&str) -> bool,
    url_org: &str,
    url_user: &str,
) -> Result<(), IdentityError> {
    if id15(url_org) != id15(org_id) {
        return Err(WRONG_ORG);
    }
    if !user_exists(url_user) {
        return Err(BAD_ID);
    }
    Ok(())
}

/// The `urls` block: API endpoints with `{version}` unless a version was asked for.
pub fn urls(base: &str, org_id: &str, user_id: &str, version: &str) -> Json {
    let org15 = id15(org_id);
    let data = format!("{base}/services/data/v{version}");
    json!({
        "enterprise": format!("{base}/services/Soap/c/{version}/{org15}"),
        "metadata": format!("{base}/services/Soap/m/{version}/{org15}"),
        "partner": format!("{base}/services/Soap/u/{version}/{org15}"),
        "rest": format!("{data}/"),
        "sobjects": format!("{data}/sobjects/"),
        "search": format!("{data}/search/"),
        "query": format!("{data}/query/"),
        "recent": format!("{data}/recent/"),
        "tooling_soap": format!("{base}/services/Soap/T/{version}/{org15}"),
        "tooling_rest": format!("{data}/tooling/"),
        "profile": format!("{base}/{user_id}"),
        "feeds": format!("{data}/chatter/feeds"),
        "groups": format!("{data}/chatter/groups"),
        "users": format!("{data}/chatter/users"),
        "feed_items": format!("{data}/chatter/feed-items"),
        "feed_elements": format!("{data}/chatter/feed-elements"),
        "custom_domain": base,
    })
}

/// The `version` parameter as the URLs show it: a number, `latest`, or `{version}`.
fn version_param(params: &HashMap<String, String>) -> String {
    match params.get("version").map(String::as_str) {
        Some("latest") => format!("{}.0", LISTED_VERSIONS.end()),
        Some(v) if !v.is_empty() => v.trim_start_matches('v').to_string(),
        _ => "{version}".to_string(),
    }
}

/// What the identity replies say about a user.
pub struct UserFacts<'a> {
    pub base_url: &'a str,
    pub org_id: &'a str,
    pub user_id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub email: &'a str,
    pub active: bool,
    pub last_modified: &'a str,
    pub version: &'a str,
}

fn name_parts(display_name: &str) -> (&str, &str) {
    display_name.split_once(' ').unwrap_or(("", display_name))
}

/// The identity URL reply.
pub fn identity_body(u: &UserFacts<'_>) -> Json {
    let (first, last) = name_parts(u.display_name);
    let photo = format!("{}/profilephoto/005/F", u.base_url);
    json!({
        "id": format!("{}/id/{}/{}", u.base_url, u.org_id, u.user_id),
        "asserted_user": true,
        "user_id": u.user_id,
        "organization_id": u.org_id,
        "username": u.username,
        "nick_name": u.username.split('@').next().unwrap_or(u.username),
        "display_name": u.display_name,
        "email": u.email,
        "email_verified": true,
        "first_name": first,
        "last_name": last,
        "timezone": "GMT",
        "photos": {"picture": photo, "thumbnail": format!("{}/profilephoto/005/T", u.base_url)},
        "addr_street": null,
        "addr_city": null,
        "addr_state": null,
        "addr_country": null,
        "addr_zip": null,
        "mobile_phone": null,
        "mobile_phone_verified": false,
        "is_lightning_login_user": false,
        "status": {"created_date": null, "body": null},
        "urls": urls(u.base_url, u.org_id, u.user_id, u.version),
        "active": u.active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "last_modified_date": u.last_modified,
        "is_app_installed": true,
    })
}

/// The UserInfo reply (OpenID Connect claims plus Salesforce's own).
pub fn userinfo_body(u: &UserFacts<'_>) -> Json {
    let (first, last) = name_parts(u.display_name);
    json!({
        "sub": format!("{}/id/{}/{}", u.base_url, u.org_id, u.user_id),
        "user_id": u.user_id,
        "organization_id": u.org_id,
        "preferred_username": u.username,
        "nickname": u.username.split('@').next().unwrap_or(u.username),
        "name": u.display_name,
        "email": u.email,
        "email_verified": true,
        "given_name": first,
        "family_name": last,
        "zoneinfo": "GMT",
        "photos": {
            "picture": format!("{}/profilephoto/005/F", u.base_url),
            "thumbnail": format!("{}/profilephoto/005/T", u.base_url),
        },
        "profile": format!("{}/{}", u.base_url, u.user_id),
        "picture": format!("{}/profilephoto/005/F", u.base_url),
        "address": {},
        "is_salesforce_integration_user": false,
        "urls": urls(u.base_url, u.org_id, u.user_id, u.version),
        "active": u.active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "updated_at": u.last_modified,
    })
}

fn error_reply(e: IdentityError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut r = (status, e.code).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    r
}

fn query_params(request: &Request) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn session_of(state: &OrgState, request: &Request) -> Result<Session, IdentityError> {
    let token = access_token(request.headers(), &query_params(request)).ok_or(MISSING_TOKEN)?;
    state.session(&token).ok_or(BAD_TOKEN)
}

/// Reads the user's facts from its User record and builds a reply with `body`.
fn reply_for(
    state: &OrgState,
    user_id: &str,
    version: &str,
    body: fn(&UserFacts<'_>) -> Json,
) -> Result<Response, IdentityError> {
    let fields = ["Username", "Name", "Email", "IsActive", "LastModifiedDate"].map(String::from);
    let record = lock(&state.db)
        .record_fields(user_id, &fields)
        .ok_or(BAD_ID)?;
    let text = |f: &str| record.get(f).and_then(Json::as_str).unwrap_or_default();
    let id18 = text("Id");
    let facts = UserFacts {
        base_url: &state.base_url,
        org_id: &state.org_id,
        user_id: id18,
        username: text("Username"),
        display_name: text("Name"),
        email: text("Email"),
        active: record
            .get("IsActive")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        last_modified: text("LastModifiedDate"),
        version,
    };
    Ok(json_reply(200, &body(&facts)))
}

fn log(state: &OrgState, request: &Request, kind: &str, status: u16, user: Option<String>) {
    state.count_call(kind);
    state.log_request(RequestLogEntry {
        time: crate::value::format_datetime(chrono::Utc::now()),
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        kind: Some(kind.to_string()),
        soql: None,
        status,
        user,
    });
}

fn finish(
    state: &OrgState,
    request: &Request,
    kind: &str,
    result: Result<(Response, String), IdentityError>,
) -> Response {
    match result {
        Ok((r, user)) => {
            log(state, request, kind, 200, Some(user));
            r
        }
        Err(e) => {
            log(state, request, kind, e.status, None);
            error_reply(e)
        }
    }
}

/// `GET /id/{orgId}/{userId}`.
pub async fn identity(
    State(state): State<Arc<OrgState>>,
    Path((org, user)): Path<(String, String)>,
    request: Request,
) -> Response {
    state.delay().await;
    let result = (|| {
        let session = session_of(&state, &request)?;
        let exists = |id: &str| {
            crate::ids::to_18(id)
                .ok()
                .is_some_and(|id18| state.user_by_id(&id18).is_some())
        };
        check_ids(&state.org_id, exists, &org, &user)?;
        let id18 = crate::ids::to_18(&user).map_err(|_| BAD_ID)?;
        let version = version_param(&query_params(&request));
        let r = reply_for(&state, &id18, &version, identity_body)?;
        Ok((r, session.username))
    })();
    finish(&state, &request, "identity", result)
}

/// `GET|POST /services/oauth2/userinfo`: the caller's own user.
pub async fn userinfo(State(state): State<Arc<OrgState>>, request: Request) -> Response {
    state.delay().await;
    let result = (|| {
        let session = session_of(&state, &request)?;
        let version = version_param(&query_params(&request));
        let r = reply_for(&state, &session.user_id, &version, userinfo_body)?;
        Ok((r, session.username))
    })();
    finish(&state, &request, "userinfo", result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        let mut h = HeaderMap::new();
        let mut p = HashMap::new();
        assert_eq!(access_token(&h, &p), None);
        p.insert("oauth_token".to_string(), "q".to_string());
        assert_eq!(access_token(&h, &p).as_deref(), Some("q"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(access_token(&h, &p).as_deref(), Some("h"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert_eq!(access_token(&h, &p).as_deref(), Some("q"));
    }

    #[test]
    fn ids_are_checked_as_salesforce_does() {
        let org = "00DA0000000test1AAA";
        let exists = |id: &str| id.starts_with("005");
        assert_eq!(check_ids(org, exists, org, "005A"), Ok(()));
        assert_eq!(check_ids(org, exists, &org[..15], "005A"), Ok(()));
        assert_eq!(
            check_ids(org, exists, "00DB0000000other", "005A"),
            Err(WRONG_ORG)
        );
        assert_eq!(check_ids(org, exists, org, "001A"), Err(BAD_ID));
    }

    #[test]
    fn urls_keep_the_version_placeholder_unless_asked() {
        let u = urls("http://h", "00DA0000000test1AAA", "005A", "{version}");
        assert_eq!(u["rest"], "http://h/services/data/v{version}/");
        assert_eq!(
            u["partner"],
            "http://h/services/Soap/u/{version}/00DA0000000test"
        );
        let mut p = HashMap::new();
        p.insert("version".to_string(), "62.0".to_string());
        assert_eq!(version_param(&p), "62.0");
        p.insert("version".to_string(), "latest".to_string());
        assert_eq!(version_param(&p), format!("{}.0", LISTED_VERSIONS.end()));
    }
}
