//! SOAP for the Partner API `login` and `logout` calls (reference §2): reading the request
//! envelope and writing the reply and fault envelopes. Pure text in, text out; the HTTP handler is in
//! `auth.rs`.
//!
//! Namespace prefixes vary between clients (`soapenv:`/`urn:` in the docs, `se:` and a default
//! namespace in jsforce), so elements are matched by local name.

use quick_xml::escape::{escape, unescape};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// Largest SOAP request accepted (a login envelope is a few hundred bytes).
pub const MAX_SOAP_BYTES: usize = 64 * 1024;

/// A parsed `login` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub username: String,
    /// Password with the security token appended.
    pub password: String,
}

/// Why a SOAP request was not understood; becomes a client fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("No operation available for request {0}")]
    UnknownOperation(String),
    #[error("missing element {0}")]
    Missing(&'static str),
}

/// A parsed Partner API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapRequest {
    Login(LoginRequest),
    /// `logout`: ends the session named by the `SessionHeader` (`None` when absent).
    Logout {
        session_id: Option<String>,
    },
}

/// Reads a `login` request: the first element in the SOAP Body must be `login`, holding
/// `username` and `password` (the login half of [`parse_request`], for tests).
#[cfg(test)]
pub fn parse_login(xml: &str) -> Result<LoginRequest, SoapError> {
    match parse_request(xml)? {
        SoapRequest::Login(r) => Ok(r),
        SoapRequest::Logout { .. } => Err(SoapError::UnknownOperation("logout".into())),
    }
}

/// Reads a `login` or `logout` request: the operation is the first element in the SOAP Body;
/// `logout` takes its session from `Header/SessionHeader/sessionId`.
pub fn parse_request(xml: &str) -> Result<SoapRequest, SoapError> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut operation: Option<String> = None;
    let mut username: Option<String> = None;
    let mut password: Option<String> = None;
    let mut session_id: Option<String> = None;
    // The element whose text is being collected, and the text so far.
    let mut current: Option<(usize, String)> = None;
    let mut saw_envelope = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| SoapError::Malformed(e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    if name != "Envelope" {
                        return Err(SoapError::Malformed(format!(
                            "root element is {name}, expected a SOAP Envelope"
                        )));
                    }
                    saw_envelope = true;
                }
                if path.len() == 2 && path[1] == "Body" && operation.is_none() {
                    operation = Some(name.clone());
                }
                path.push(name);
                if path.len() == 4 {
                    let in_login = path[1] == "Body" && operation.as_deref() == Some("login");
                    let in_session_header = path[1] == "Header" && path[2] == "SessionHeader";
                    if in_login || in_session_header {
                        current = Some((path.len(), String::new()));
                    }
                }
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    return Err(SoapError::Malformed("empty document element".into()));
                }
                if path.len() == 2 && path[1] == "Body" && operation.is_none() {
                    operation = Some(name.clone());
                }
                if path.len() == 3 && operation.as_deref() == Some("login") {
                    match name.as_str() {
                        "username" => username = Some(String::new()),
                        "password" => password = Some(String::new()),
                        _ => {}
                    }
                }
            }
            Event::Text(t) => {
                if let Some((depth, text)) = current.as_mut()
                    && *depth == path.len()
                {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some((depth, text)) = current.as_mut()
                    && *depth == path.len()
                {
                    text.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((depth, text)) = current.as_mut()
                    && *depth == path.len()
                {
                    let raw = format!("&{};", r.xml10_content());
                    let resolved =
                        unescape(&raw).map_err(|e| SoapError::Malformed(e.to_string()))?;
                    text.push_str(&resolved);
                }
            }
            Event::End(_) => {
                if let Some((depth, text)) = current.take() {
                    if depth == path.len() {
                        match (path[1].as_str(), path.last().map(String::as_str)) {
                            ("Body", Some("username")) => username = Some(text),
                            ("Body", Some("password")) => password = Some(text),
                            ("Header", Some("sessionId")) => session_id = Some(text),
                            _ => {}
                        }
                    } else {
                        current = Some((depth, text));
                    }
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_envelope {
        return Err(SoapError::Malformed("no SOAP Envelope".into()));
    }
    if !path.is_empty() {
        return Err(SoapError::Malformed("unexpected end of document".into()));
    }
    match operation.as_deref() {
        Some("login") => Ok(SoapRequest::Login(LoginRequest {
            username: username.ok_or(SoapError::Missing("username"))?,
            password: password.ok_or(SoapError::Missing("password"))?,
        })),
        Some("logout") => Ok(SoapRequest::Logout {
            session_id: session_id.map(|s| s.trim().to_string()),
        }),
        Some(other) => Err(SoapError::UnknownOperation(other.to_string())),
        None => Err(SoapError::Missing("Body/login")),
    }
}

/// What a successful login reply carries.
#[derive(Debug, Clone)]
pub struct LoginReply<'a> {
    pub base_url: &'a str,
    pub api_version: &'a str,
    pub org_id: &'a str,
    pub org_name: &'a str,
    pub session_id: &'a str,
    pub user_id: &'a str,
    pub username: &'a str,
    pub session_seconds_valid: u64,
}

/// The 15-character form of an 18-character id (Salesforce's URLs use it).
fn id15(id: &str) -> &str {
    id.get(..15).unwrap_or(id)
}

/// The `loginResponse` envelope of reference §2.
pub fn login_response(r: &LoginReply<'_>) -> String {
    let base = escape(r.base_url);
    let v = escape(r.api_version);
    let org15 = escape(id15(r.org_id));
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><loginResponse><result>",
            "<metadataServerUrl>{base}/services/Soap/m/{v}/{org15}</metadataServerUrl>",
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>",
            "<serverUrl>{base}/services/Soap/u/{v}/{org15}</serverUrl>",
            "<sessionId>{sid}</sessionId><userId>{uid}</userId>",
            "<userInfo><accessibilityMode>false</accessibilityMode><chatterExternal>false</chatterExternal>",
            "<currencySymbol>$</currencySymbol><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>",
            "<orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode><orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments>",
            "<orgHasPersonAccounts>false</orgHasPersonAccounts><organizationId>{org}</organizationId>",
            "<organizationMultiCurrency>false</organizationMultiCurrency><organizationName>{org_name}</organizationName>",
            "<profileId xsi:nil=\"true\"/><roleId xsi:nil=\"true\"/><sessionSecondsValid>{ttl}</sessionSecondsValid>",
            "<userDefaultCurrencyIsoCode xsi:nil=\"true\"/><userEmail>{user}</userEmail><userFullName>{user}</userFullName>",
            "<userId>{uid}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale>",
            "<userName>{user}</userName><userTimeZone>UTC</userTimeZone><userType>Standard</userType>",
            "<userUiSkin>Theme3</userUiSkin></userInfo>",
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        ),
        base = base,
        v = v,
        org15 = org15,
        sid = escape(r.session_id),
        uid = escape(r.user_id),
        org = escape(r.org_id),
        org_name = escape(r.org_name),
        ttl = r.session_seconds_valid,
        user = escape(r.username),
    )
}

/// The message of Salesforce's INVALID_LOGIN fault.
pub const INVALID_LOGIN_MESSAGE: &str =
    "Invalid username, password, security token; or user locked out.";

/// The INVALID_LOGIN fault envelope of reference §2 (sent with HTTP 500).
pub fn invalid_login_fault() -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>",
            "<faultstring>INVALID_LOGIN: {m}</faultstring>",
            r#"<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"#,
            "<sf:exceptionMessage>{m}</sf:exceptionMessage></sf:LoginFault></detail>",
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
        m = INVALID_LOGIN_MESSAGE
    )
}

/// The `logoutResponse` envelope.
pub fn logout_response() -> String {
    concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">"#,
        "<soapenv:Body><logoutResponse/></soapenv:Body></soapenv:Envelope>"
    )
    .to_string()
}

/// The INVALID_SESSION_ID fault of a call whose SessionHeader names no live session (sent
/// with HTTP 500).
pub fn invalid_session_fault() -> String {
    let m = "Invalid Session ID found in SessionHeader: Illegal Session";
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode>",
            "<faultstring>INVALID_SESSION_ID: {m}</faultstring>",
            r#"<detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault"><sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode>"#,
            "<sf:exceptionMessage>{m}</sf:exceptionMessage></sf:UnexpectedErrorFault></detail>",
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
        m = m
    )
}

/// A generic SOAP client fault (`soapenv:Client`), for requests that cannot be read, with
/// Salesforce's exception code (e.g. `INVALID_REQUEST` or `UNKNOWN_EXCEPTION`).
pub fn client_fault(exception_code: &str, message: &str) -> String {
    let code = escape(exception_code);
    let m = escape(message);
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>",
            "<faultstring>{m}</faultstring>",
            r#"<detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault"><sf:exceptionCode>{code}</sf:exceptionCode>"#,
            "<sf:exceptionMessage>{m}</sf:exceptionMessage></sf:UnexpectedErrorFault></detail>",
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
        code = code,
        m = m
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_envelope() {
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
 <soapenv:Body><urn:login><urn:username>u@x.com</urn:username><urn:password>pwdTOKEN</urn:password></urn:login></soapenv:Body>
</soapenv:Envelope>"#;
        let r = parse_login(xml).expect("parsed");
        assert_eq!(r.username, "u@x.com");
        assert_eq!(r.password, "pwdTOKEN");
    }

    #[test]
    fn parses_jsforce_default_namespace_and_escapes() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header/><se:Body><login xmlns="urn:partner.soap.sforce.com"><username>a&amp;b@x.sim</username><password>p&lt;w&#x41;<![CDATA[&z]]></password></login></se:Body></se:Envelope>"#;
        let r = parse_login(xml).expect("parsed");
        assert_eq!(r.username, "a&b@x.sim");
        assert_eq!(r.password, "p<wA&z");
    }

    #[test]
    fn refuses_bad_documents() {
        assert!(matches!(
            parse_login("<a><b>"),
            Err(SoapError::Malformed(_))
        ));
        assert!(parse_login("not xml at all <").is_err());
        assert!(matches!(parse_login(""), Err(SoapError::Malformed(_))));
        let other = r#"<e:Envelope xmlns:e="x"><e:Body><logout/></e:Body></e:Envelope>"#;
        assert_eq!(
            parse_login(other),
            Err(SoapError::UnknownOperation("logout".into()))
        );
        let no_pw = r#"<e:Envelope xmlns:e="x"><e:Body><login><username>u</username></login></e:Body></e:Envelope>"#;
        assert_eq!(parse_login(no_pw), Err(SoapError::Missing("password")));
        let mismatched = r#"<e:Envelope xmlns:e="x"><e:Body><login><username>u</password></login></e:Body></e:Envelope>"#;
        assert!(parse_login(mismatched).is_err());
    }

    #[test]
    fn parses_a_logout_with_its_session_header() {
        let xml = r#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>00D!abc</sessionId></SessionHeader></se:Header><se:Body><logout xmlns="urn:partner.soap.sforce.com"/></se:Body></se:Envelope>"#;
        assert_eq!(
            parse_request(xml),
            Ok(SoapRequest::Logout {
                session_id: Some("00D!abc".into())
            })
        );
        let bare = r#"<e:Envelope xmlns:e="x"><e:Body><logout/></e:Body></e:Envelope>"#;
        assert_eq!(
            parse_request(bare),
            Ok(SoapRequest::Logout { session_id: None })
        );
        assert!(logout_response().contains("<logoutResponse/>"));
        assert!(invalid_session_fault().contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>"));
    }

    #[test]
    fn reply_carries_the_fields_clients_read() {
        let xml = login_response(&LoginReply {
            base_url: "http://127.0.0.1:8701",
            api_version: "62.0",
            org_id: "00D000000000001AAA",
            org_name: "A",
            session_id: "00D000000000001!abc",
            user_id: "005000000000001AAA",
            username: "integration@a.sim",
            session_seconds_valid: 7200,
        });
        assert!(xml.contains(
            "<serverUrl>http://127.0.0.1:8701/services/Soap/u/62.0/00D000000000001</serverUrl>"
        ));
        assert!(xml.contains("<organizationId>00D000000000001AAA</organizationId>"));
        assert!(xml.contains("<sessionSecondsValid>7200</sessionSecondsValid>"));
        assert!(invalid_login_fault().contains("<faultstring>INVALID_LOGIN: Invalid username"));
    }
}
