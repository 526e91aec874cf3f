//! Logging in: the five ways an org can be configured to authenticate, and the session they
//! produce (access token, instance URL, user id, org id).
//!
//! - `password`: SOAP `login()` with the password and security token appended (the template's
//!   way; Salesforce retires it in Summer '27). The instance URL is the origin of `serverUrl`.
//! - `oauth_password`, `jwt`, `client_credentials`, `refresh_token`: the OAuth token endpoint
//!   `POST {login_url}/services/oauth2/token`. The user and org ids are the last two segments
//!   of the reply's `id` URL.
//!
//! The parsing of replies and the building of requests are pure functions, tested here on the
//! reference's wire samples; [`login`] is the thin I/O around them. Secrets are exposed only
//! while a request body is built, and no error quotes a reply body whole.

use std::fmt;

use chrono::{DateTime, Utc};
use quick_xml::events::Event;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::{ErrorClass, SalesforceError};
use crate::config::{Credentials, OrgSettings};

/// A logged-in session with one org.
#[derive(Clone)]
pub struct Session {
    /// Bearer token (OAuth) or session id (SOAP).
    pub access_token: SecretString,
    /// `https://instance.my.salesforce.com`, no trailing slash.
    pub instance_url: String,
    /// The logged-in user (`005…`), when the login reply said.
    pub user_id: Option<String>,
    /// The org (`00D…`), when the login reply said.
    pub org_id: Option<String>,
    /// A rotated refresh token, when the token endpoint sent a new one.
    pub refresh_token: Option<SecretString>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("access_token", &"[REDACTED]")
            .field("instance_url", &self.instance_url)
            .field("user_id", &self.user_id)
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// SOAP login
// ---------------------------------------------------------------------------------------------

/// The SOAP `login()` request body; `password` is the password with the security token
/// appended.
pub fn soap_login_envelope(username: &str, password: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
            r#"xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Body><urn:login>"#,
            "<urn:username>{}</urn:username><urn:password>{}</urn:password>",
            "</urn:login></soapenv:Body></soapenv:Envelope>"
        ),
        quick_xml::escape::escape(username),
        quick_xml::escape::escape(password)
    )
}

/// What a SOAP login reply said.
#[derive(Debug)]
pub enum SoapLoginReply {
    Ok {
        server_url: String,
        session_id: SecretString,
        user_id: Option<String>,
        org_id: Option<String>,
    },
    /// A `soapenv:Fault`: `exceptionCode` (or the `faultcode` without prefix) and message.
    Fault { code: String, message: String },
}

/// Parses a SOAP login reply (success or fault). `Err` when it is neither.
pub fn parse_soap_login_reply(xml: &str) -> Result<SoapLoginReply, String> {
    const WANTED: [&str; 8] = [
        "serverUrl",
        "sessionId",
        "userId",
        "organizationId",
        "faultcode",
        "faultstring",
        "exceptionCode",
        "exceptionMessage",
    ];
    let mut found: std::collections::HashMap<&'static str, String> = Default::default();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                stack.push(e.local_name().as_ref().to_string());
                text.clear();
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::CData(t)) => text.push_str(&t),
            Ok(Event::GeneralRef(r)) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    text.push_str(s);
                }
            }
            Ok(Event::End(_)) => {
                if let Some(name) = stack.pop()
                    && let Some(key) = WANTED.iter().find(|k| **k == name)
                {
                    found.entry(key).or_insert_with(|| text.trim().to_string());
                }
                text.clear();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("the login reply is not valid XML: {e}")),
        }
    }
    if let (Some(server_url), Some(session_id)) =
        (found.remove("serverUrl"), found.remove("sessionId"))
    {
        return Ok(SoapLoginReply::Ok {
            server_url,
            session_id: SecretString::from(session_id),
            user_id: found.remove("userId").filter(|s| !s.is_empty()),
            org_id: found.remove("organizationId").filter(|s| !s.is_empty()),
        });
    }
    let code = found.remove("exceptionCode").or_else(|| {
        found
            .remove("faultcode")
            .map(|c| c.rsplit(':').next().unwrap_or(&c).to_string())
    });
    if let Some(code) = code {
        let message = found
            .remove("exceptionMessage")
            .or_else(|| found.remove("faultstring"))
            .unwrap_or_default();
        return Ok(SoapLoginReply::Fault { code, message });
    }
    Err("the login reply has neither a session nor a fault".to_string())
}

/// The instance URL (scheme, host and port) of a `serverUrl` or `instance_url`.
pub fn instance_origin(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad instance URL {url:?}: {e}"))?;
    if parsed.host().is_none() || !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("bad instance URL {url:?}"));
    }
    Ok(parsed.origin().ascii_serialization())
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

/// The fields of a token endpoint reply that orgsync uses.
#[derive(Deserialize)]
pub struct OAuthReply {
    pub access_token: String,
    pub instance_url: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl fmt::Debug for OAuthReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthReply")
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `(org_id, user_id)` from an identity URL `https://login.salesforce.com/id/{org}/{user}`.
pub fn ids_from_identity_url(id: &str) -> Option<(String, String)> {
    let path = url::Url::parse(id).ok()?.path().to_string();
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let user = segments.next()?.to_string();
    let org = segments.next()?.to_string();
    (user.starts_with("005") && org.starts_with("00D")).then_some((org, user))
}

/// The JWT bearer claims.
#[derive(serde::Serialize)]
struct JwtClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// An RS256 assertion for the JWT bearer flow: `iss` the consumer key, `sub` the username,
/// `aud` the login URL, `exp` three minutes from `now`.
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &str,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .map_err(|_| "the private key is not an RSA private key in PEM format".to_string())?;
    let claims = JwtClaims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: now.timestamp() + 180,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| format!("cannot sign the JWT assertion: {e}"))
}

/// The `aud` of a JWT bearer assertion for `login_url`. Salesforce wants the login server,
/// not the org's own host: `https://login.salesforce.com` for production My Domain URLs,
/// `https://test.salesforce.com` for sandbox ones; any other URL (login/test themselves, an
/// Experience Cloud site, a simulator) is used as configured.
pub fn jwt_audience(login_url: &str) -> String {
    let host = url::Url::parse(login_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com".to_string()
    } else if host.ends_with(".my.salesforce.com") {
        "https://login.salesforce.com".to_string()
    } else {
        login_url.trim_end_matches('/').to_string()
    }
}

fn expose(s: Option<&SecretString>) -> &str {
    s.map_or("", |s| s.expose_secret())
}

/// The error for an org whose secrets were not loaded (`Settings::load_without_secrets`).
fn withheld(org: &OrgSettings) -> String {
    format!(
        "the secrets of orgs.{} were not loaded (this command reads only the state database)",
        org.name
    )
}

/// The form of a token request for `org`'s auth mode (not SOAP). `refresh` overrides the
/// configured refresh token (after a rotation).
fn oauth_form(
    org: &OrgSettings,
    refresh: Option<&SecretString>,
    now: DateTime<Utc>,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut form: Vec<(&'static str, String)> = Vec::new();
    match &org.credentials {
        Credentials::Password { .. } => return Err("SOAP login has no OAuth form".to_string()),
        Credentials::Withheld { .. } => return Err(withheld(org)),
        Credentials::OAuthPassword {
            client_id,
            client_secret,
            password,
            security_token,
        } => {
            form.push(("grant_type", "password".into()));
            form.push(("client_id", client_id.clone()));
            form.push(("client_secret", client_secret.expose_secret().to_string()));
            form.push(("username", org.username.clone()));
            form.push((
                "password",
                format!(
                    "{}{}",
                    password.expose_secret(),
                    expose(security_token.as_ref())
                ),
            ));
        }
        Credentials::Jwt {
            client_id,
            private_key,
        } => {
            let assertion = jwt_assertion(
                client_id,
                &org.username,
                &jwt_audience(&org.login_url),
                private_key.expose_secret(),
                now,
            )?;
            form.push((
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
            ));
            form.push(("assertion", assertion));
        }
        Credentials::ClientCredentials {
            client_id,
            client_secret,
        } => {
            form.push(("grant_type", "client_credentials".into()));
            form.push(("client_id", client_id.clone()));
            form.push(("client_secret", client_secret.expose_secret().to_string()));
        }
        Credentials::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => {
            let token = refresh.unwrap_or(refresh_token);
            form.push(("grant_type", "refresh_token".into()));
            form.push(("refresh_token", token.expose_secret().to_string()));
            form.push(("client_id", client_id.clone()));
            if let Some(secret) = client_secret {
                form.push(("client_secret", secret.expose_secret().to_string()));
            }
        }
    }
    Ok(form)
}

// ---------------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------------

/// Logs in to `org`. One HTTP call; errors name the org and, for refusals, the user.
pub async fn login(
    http: &reqwest::Client,
    org: &OrgSettings,
    refresh: Option<&SecretString>,
) -> Result<Session, SalesforceError> {
    match &org.credentials {
        Credentials::Password {
            password,
            security_token,
        } => soap_login(http, org, password, security_token.as_ref()).await,
        Credentials::Withheld { .. } => Err(SalesforceError::client(
            &org.name,
            "BAD_CONFIGURATION",
            withheld(org),
            ErrorClass::Auth,
        )),
        _ => oauth_login(http, org, refresh).await,
    }
}

fn bad_reply(org: &OrgSettings, status: u16, message: String) -> SalesforceError {
    SalesforceError {
        org: org.name.clone(),
        status: Some(status),
        code: "BAD_RESPONSE".into(),
        message,
        class: ErrorClass::Transient,
    }
}

async fn soap_login(
    http: &reqwest::Client,
    org: &OrgSettings,
    password: &SecretString,
    security_token: Option<&SecretString>,
) -> Result<Session, SalesforceError> {
    let url = format!("{}/services/Soap/u/{}", org.login_url, org.api_version);
    let password = format!("{}{}", password.expose_secret(), expose(security_token));
    let body = soap_login_envelope(&org.username, &password);
    let reply = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=UTF-8")
        .header("SOAPAction", "login")
        .body(body)
        .send()
        .await
        .map_err(|e| SalesforceError::from_transport(&org.name, &e))?;
    let status = reply.status().as_u16();
    let text = reply
        .text()
        .await
        .map_err(|e| SalesforceError::from_transport(&org.name, &e))?;
    match parse_soap_login_reply(&text) {
        Ok(SoapLoginReply::Ok {
            server_url,
            session_id,
            user_id,
            org_id,
        }) => {
            let instance_url =
                instance_origin(&server_url).map_err(|m| bad_reply(org, status, m))?;
            Ok(Session {
                access_token: session_id,
                instance_url,
                user_id,
                org_id,
                refresh_token: None,
            })
        }
        Ok(SoapLoginReply::Fault { code, message }) => {
            let class = if status >= 500 && code != "INVALID_LOGIN" && code.contains("UNAVAILABLE")
            {
                ErrorClass::Transient
            } else {
                ErrorClass::Auth
            };
            Err(SalesforceError {
                org: org.name.clone(),
                status: Some(status),
                message: format!(
                    "SOAP login as {} at {} refused: {message}",
                    org.username, org.login_url
                ),
                code,
                class,
            })
        }
        Err(_) if status >= 400 => {
            let mut err = SalesforceError::from_rest_reply(&org.name, status, &text);
            if !err.is_retryable() {
                err.class = ErrorClass::Auth;
            }
            err.message = format!("SOAP login at {} failed: {}", org.login_url, err.message);
            Err(err)
        }
        Err(message) => Err(bad_reply(org, status, message)),
    }
}

async fn oauth_login(
    http: &reqwest::Client,
    org: &OrgSettings,
    refresh: Option<&SecretString>,
) -> Result<Session, SalesforceError> {
    let form = oauth_form(org, refresh, Utc::now()).map_err(|m| {
        SalesforceError::client(&org.name, "BAD_CONFIGURATION", m, ErrorClass::Auth)
    })?;
    let url = format!("{}/services/oauth2/token", org.login_url);
    let reply = http
        .post(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| SalesforceError::from_transport(&org.name, &e))?;
    let status = reply.status().as_u16();
    let text = reply
        .text()
        .await
        .map_err(|e| SalesforceError::from_transport(&org.name, &e))?;
    if !(200..300).contains(&status) {
        let mut err = SalesforceError::from_oauth_reply(&org.name, status, &text);
        let who = org.login_name();
        err.message = format!(
            "OAuth {} login as {who} at {}: {}",
            org.auth().as_str(),
            org.login_url,
            err.message
        );
        return Err(err);
    }
    let parsed: OAuthReply = serde_json::from_str(&text).map_err(|e| {
        bad_reply(
            org,
            status,
            format!("the token reply is not the expected JSON: {e}"),
        )
    })?;
    let instance_url =
        instance_origin(&parsed.instance_url).map_err(|m| bad_reply(org, status, m))?;
    let (org_id, user_id) = parsed
        .id
        .as_deref()
        .and_then(ids_from_identity_url)
        .map_or((None, None), |(o, u)| (Some(o), Some(u)));
    Ok(Session {
        access_token: SecretString::from(parsed.access_token),
        instance_url,
        user_id,
        org_id,
        refresh_token: parsed.refresh_token.map(SecretString::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;

    const SOAP_OK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body><loginResponse><result>
  <metadataServerUrl>https://cs18.salesforce.com/services/Soap/m/34.0/00D11000000DMaw</metadataServerUrl>
  <passwordExpired>false</passwordExpired><sandbox>true</sandbox>
  <serverUrl>https://cs18.salesforce.com/services/Soap/u/34.0/00D11000000DMaw</serverUrl>
  <sessionId>00D11000000DMaw!AQQAQ&amp;x</sessionId><userId>005600000045vWeAAI</userId>
  <userInfo><organizationId>00Di0000000icUBEAY</organizationId><sessionSecondsValid>7200</sessionSecondsValid></userInfo>
 </result></loginResponse></soapenv:Body></soapenv:Envelope>"#;

    const SOAP_FAULT: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>
 <faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring>
 <detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>
 <sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn soap_success_reply() {
        let SoapLoginReply::Ok {
            server_url,
            session_id,
            user_id,
            org_id,
        } = parse_soap_login_reply(SOAP_OK).unwrap()
        else {
            panic!("expected success");
        };
        assert_eq!(
            server_url,
            "https://cs18.salesforce.com/services/Soap/u/34.0/00D11000000DMaw"
        );
        assert_eq!(session_id.expose_secret(), "00D11000000DMaw!AQQAQ&x");
        assert_eq!(user_id.as_deref(), Some("005600000045vWeAAI"));
        assert_eq!(org_id.as_deref(), Some("00Di0000000icUBEAY"));
        assert_eq!(
            instance_origin(&server_url).unwrap(),
            "https://cs18.salesforce.com"
        );
        assert_eq!(
            instance_origin("http://127.0.0.1:8701/services/Soap/u/62.0/00D").unwrap(),
            "http://127.0.0.1:8701"
        );
    }

    #[test]
    fn soap_fault_reply() {
        let SoapLoginReply::Fault { code, message } = parse_soap_login_reply(SOAP_FAULT).unwrap()
        else {
            panic!("expected a fault");
        };
        assert_eq!(code, "INVALID_LOGIN");
        assert_eq!(
            message,
            "Invalid username, password, security token; or user locked out."
        );
        // A fault with only a faultcode.
        let bare = r#"<Envelope><Body><Fault><faultcode>sf:LOGIN_MUST_USE_SECURITY_TOKEN</faultcode><faultstring>use the token</faultstring></Fault></Body></Envelope>"#;
        let SoapLoginReply::Fault { code, message } = parse_soap_login_reply(bare).unwrap() else {
            panic!("expected a fault");
        };
        assert_eq!(code, "LOGIN_MUST_USE_SECURITY_TOKEN");
        assert_eq!(message, "use the token");
        assert!(parse_soap_login_reply("<html>oops</html>").is_err());
        assert!(parse_soap_login_reply("<a><b></a>").is_err());
    }

    #[test]
    fn soap_envelope_escapes() {
        let body = soap_login_envelope("u@x.com", "p<&>'\"wTOKEN");
        assert!(body.contains("<urn:username>u@x.com</urn:username>"));
        assert!(body.contains("p&lt;&amp;&gt;"));
        assert!(!body.contains("p<&"));
    }

    #[test]
    fn identity_url() {
        assert_eq!(
            ids_from_identity_url(
                "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P"
            ),
            Some(("00Dx0000000BV7z".into(), "005x00000012Q9P".into()))
        );
        assert_eq!(ids_from_identity_url("https://x/id/abc/def"), None);
        assert_eq!(ids_from_identity_url("not a url"), None);
    }

    #[test]
    fn oauth_reply_debug_hides_the_token() {
        let reply: OAuthReply = serde_json::from_str(
            r#"{"access_token":"SECRET-TOKEN","instance_url":"https://x","id":"https://l/id/00D/005","token_type":"Bearer","issued_at":"1"}"#,
        )
        .unwrap();
        assert!(!format!("{reply:?}").contains("SECRET-TOKEN"));
        let session = Session {
            access_token: SecretString::from("SECRET-TOKEN"),
            instance_url: "https://x".into(),
            user_id: None,
            org_id: None,
            refresh_token: Some(SecretString::from("SECRET-REFRESH")),
        };
        let debug = format!("{session:?}");
        assert!(!debug.contains("SECRET"));
    }

    fn org(auth: AuthMode) -> OrgSettings {
        let pw = || SecretString::from("pw");
        let tok = || Some(SecretString::from("TOK"));
        let cid = || "cid".to_string();
        let csecret = || SecretString::from("csecret");
        let credentials = match auth {
            AuthMode::Password => Credentials::Password {
                password: pw(),
                security_token: tok(),
            },
            AuthMode::OauthPassword => Credentials::OAuthPassword {
                client_id: cid(),
                client_secret: csecret(),
                password: pw(),
                security_token: tok(),
            },
            // Not a PEM: building the assertion fails.
            AuthMode::Jwt => Credentials::Jwt {
                client_id: cid(),
                private_key: SecretString::from("not a key"),
            },
            AuthMode::ClientCredentials => Credentials::ClientCredentials {
                client_id: cid(),
                client_secret: csecret(),
            },
            AuthMode::RefreshToken => Credentials::RefreshToken {
                client_id: cid(),
                client_secret: Some(csecret()),
                refresh_token: SecretString::from("rt"),
            },
        };
        OrgSettings {
            name: "a".into(),
            login_url: "https://login.salesforce.com".into(),
            username: "u@x.com".into(),
            credentials,
            integration_user_id: None,
            account_id: None,
            api_version: "62.0".into(),
            api_budget_percent: 100,
            outbound_secret: None,
        }
    }

    fn form_of(auth: AuthMode, refresh: Option<&SecretString>) -> Vec<(&'static str, String)> {
        oauth_form(&org(auth), refresh, Utc::now()).unwrap()
    }

    #[test]
    fn oauth_forms() {
        let f = form_of(AuthMode::OauthPassword, None);
        assert!(f.contains(&("grant_type", "password".into())));
        assert!(f.contains(&("password", "pwTOK".into())));
        assert!(f.contains(&("client_secret", "csecret".into())));
        let f = form_of(AuthMode::ClientCredentials, None);
        assert_eq!(f[0], ("grant_type", "client_credentials".into()));
        assert!(!f.iter().any(|(k, _)| *k == "username"));
        let f = form_of(AuthMode::RefreshToken, None);
        assert!(f.contains(&("refresh_token", "rt".into())));
        let rotated = SecretString::from("rt2");
        let f = form_of(AuthMode::RefreshToken, Some(&rotated));
        assert!(f.contains(&("refresh_token", "rt2".into())));
        // jwt with a key that is not a PEM is a configuration error, not a panic.
        assert!(oauth_form(&org(AuthMode::Jwt), None, Utc::now()).is_err());
        assert!(oauth_form(&org(AuthMode::Password), None, Utc::now()).is_err());
    }

    #[test]
    fn jwt_audiences() {
        assert_eq!(
            jwt_audience("https://acme.my.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            jwt_audience("https://acme--uat.sandbox.my.salesforce.com/"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            jwt_audience("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            jwt_audience("http://127.0.0.1:8701"),
            "http://127.0.0.1:8701"
        );
    }

    #[test]
    fn bad_private_key_is_a_clear_error() {
        let err = jwt_assertion("id", "u", "https://login", "not a key", Utc::now()).unwrap_err();
        assert!(err.contains("PEM"));
    }
}
