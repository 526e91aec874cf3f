//! SOAP for the Partner API calls sfsim serves (`login` and `logout`, reference §2;
//! `undelete` and `merge`): reading the request envelope and writing the reply and fault
//! envelopes. Pure text in, text out; the HTTP handlers are in `auth.rs` and `soap_data.rs`.
//!
//! Namespace prefixes vary between clients (`soapenv:`/`urn:` in the docs, `se:` and a default
//! namespace in jsforce), so elements are matched by local name.

use quick_xml::escape::{escape, unescape};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::error::ItemError;

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

/// One `MergeRequest` as sent: the master record's type, id and field values (`None` for
/// `xsi:nil` or `fieldsToNull`), and the ids merged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequestXml {
    pub object: String,
    pub master_id: String,
    pub master_fields: Vec<(String, Option<String>)>,
    pub loser_ids: Vec<String>,
}

/// A parsed Partner API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapRequest {
    Login(LoginRequest),
    /// `logout`: ends the session named by the `SessionHeader` (`None` when absent).
    Logout {
        session_id: Option<String>,
    },
    /// `undelete`: `<undelete><ids>…</ids>…</undelete>`.
    Undelete {
        session_id: Option<String>,
        ids: Vec<String>,
    },
    /// `merge`: `<merge><request>` (jsforce: `<mergeRequests>`) elements.
    Merge {
        session_id: Option<String>,
        requests: Vec<MergeRequestXml>,
    },
}

#[cfg(test)]
impl SoapRequest {
    /// The operation's name.
    pub fn operation(&self) -> &'static str {
        match self {
            SoapRequest::Login(_) => "login",
            SoapRequest::Logout { .. } => "logout",
            SoapRequest::Undelete { .. } => "undelete",
            SoapRequest::Merge { .. } => "merge",
        }
    }
}

/// Reads a `login` request: the first element in the SOAP Body must be `login`, holding
/// `username` and `password` (the login half of [`parse_request`], for tests).
#[cfg(test)]
pub fn parse_login(xml: &str) -> Result<LoginRequest, SoapError> {
    match parse_request(xml)? {
        SoapRequest::Login(r) => Ok(r),
        other => Err(SoapError::UnknownOperation(other.operation().into())),
    }
}

/// An element of the request: local name, `xsi:nil`, text and children.
#[derive(Debug, Default)]
struct Node {
    name: String,
    nil: bool,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn value(&self) -> String {
        self.text.trim().to_string()
    }
}

fn start_node(e: &quick_xml::events::BytesStart<'_>) -> Node {
    let nil = e
        .attributes()
        .flatten()
        .any(|a| a.key.local_name().as_ref() == "nil" && matches!(a.value.as_ref(), "true" | "1"));
    Node {
        name: e.local_name().as_ref().to_string(),
        nil,
        ..Node::default()
    }
}

/// Reads the document into a tree of elements; the root must be a SOAP Envelope.
fn parse_tree(xml: &str) -> Result<Node, SoapError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| SoapError::Malformed(e.to_string()))?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(SoapError::Malformed("content after the Envelope".into()));
                }
                let node = start_node(&e);
                if stack.is_empty() && node.name != "Envelope" {
                    return Err(SoapError::Malformed(format!(
                        "root element is {}, expected a SOAP Envelope",
                        node.name
                    )));
                }
                stack.push(node);
            }
            Event::Empty(e) => {
                let node = start_node(&e);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Err(SoapError::Malformed("empty document element".into())),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let raw = format!("&{};", r.xml10_content());
                    let resolved =
                        unescape(&raw).map_err(|e| SoapError::Malformed(e.to_string()))?;
                    top.text.push_str(&resolved);
                }
            }
            Event::End(_) => {
                let Some(node) = stack.pop() else {
                    return Err(SoapError::Malformed("unexpected end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(SoapError::Malformed("unexpected end of document".into()));
    }
    root.ok_or_else(|| SoapError::Malformed("no SOAP Envelope".into()))
}

fn merge_request(r: &Node) -> Result<MergeRequestXml, SoapError> {
    let master = r
        .child("masterRecord")
        .ok_or(SoapError::Missing("masterRecord"))?;
    let mut object = String::new();
    let mut master_id = String::new();
    let mut master_fields = Vec::new();
    for f in &master.children {
        match f.name.as_str() {
            "type" => object = f.value(),
            "Id" => master_id = f.value(),
            "fieldsToNull" => master_fields.push((f.value(), None)),
            _ if f.nil => master_fields.push((f.name.clone(), None)),
            _ => master_fields.push((f.name.clone(), Some(f.text.clone()))),
        }
    }
    if master_id.is_empty() {
        return Err(SoapError::Missing("masterRecord/Id"));
    }
    Ok(MergeRequestXml {
        object,
        master_id,
        master_fields,
        loser_ids: r.all("recordToMergeIds").map(Node::value).collect(),
    })
}

/// Reads a Partner API request: the operation is the first element in the SOAP Body (the
/// `SOAPAction` header is not needed); calls other than `login` take their session from
/// `Header/SessionHeader/sessionId`.
pub fn parse_request(xml: &str) -> Result<SoapRequest, SoapError> {
    let root = parse_tree(xml)?;
    let session_id = root
        .child("Header")
        .and_then(|h| h.child("SessionHeader"))
        .and_then(|h| h.child("sessionId"))
        .map(Node::value);
    let op = root
        .child("Body")
        .and_then(|b| b.children.first())
        .ok_or(SoapError::Missing("Body/login"))?;
    match op.name.as_str() {
        "login" => Ok(SoapRequest::Login(LoginRequest {
            username: op
                .child("username")
                .map(|n| n.text.clone())
                .ok_or(SoapError::Missing("username"))?,
            password: op
                .child("password")
                .map(|n| n.text.clone())
                .ok_or(SoapError::Missing("password"))?,
        })),
        "logout" => Ok(SoapRequest::Logout { session_id }),
        "undelete" => Ok(SoapRequest::Undelete {
            session_id,
            ids: op.all("ids").map(Node::value).collect(),
        }),
        "merge" => {
            let requests = op
                .children
                .iter()
                .filter(|c| c.name == "request" || c.name == "mergeRequests")
                .map(merge_request)
                .collect::<Result<Vec<_>, _>>()?;
            if requests.is_empty() {
                return Err(SoapError::Missing("merge/request"));
            }
            Ok(SoapRequest::Merge {
                session_id,
                requests,
            })
        }
        other => Err(SoapError::UnknownOperation(other.to_string())),
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

/// The envelope of a data call's reply: `<{op}Response>` in the partner namespace.
fn data_response(op: &str, results: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><{op}Response>{results}</{op}Response></soapenv:Body></soapenv:Envelope>"
        ),
        op = op,
        results = results
    )
}

/// Partner `Error` elements: `fields`, `message`, `statusCode`.
fn errors_xml(errors: &[ItemError]) -> String {
    errors
        .iter()
        .map(|e| {
            let fields: String = e
                .fields
                .iter()
                .map(|f| format!("<fields>{}</fields>", escape(f.as_str())))
                .collect();
            format!(
                "<errors>{fields}<message>{}</message><statusCode>{}</statusCode></errors>",
                escape(e.message.as_str()),
                escape(e.status_code.as_str())
            )
        })
        .collect()
}

fn id_xml(id: Option<&str>) -> String {
    match id {
        Some(id) => format!("<id>{}</id>", escape(id)),
        None => r#"<id xsi:nil="true"/>"#.to_string(),
    }
}

/// One `UndeleteResult`: the id (when known), success, and the errors of a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct UndeleteItem {
    pub id: Option<String>,
    pub errors: Vec<ItemError>,
}

/// The `undeleteResponse` envelope: one `result` (UndeleteResult) per id, in order.
pub fn undelete_response(items: &[UndeleteItem]) -> String {
    let results: String = items
        .iter()
        .map(|r| {
            format!(
                "<result>{}{}<success>{}</success></result>",
                errors_xml(&r.errors),
                id_xml(r.id.as_deref()),
                r.errors.is_empty()
            )
        })
        .collect();
    data_response("undelete", &results)
}

/// One `MergeResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeItem {
    pub id: Option<String>,
    pub merged_ids: Vec<String>,
    pub updated_related_ids: Vec<String>,
    pub errors: Vec<ItemError>,
}

/// The `mergeResponse` envelope: one `result` (MergeResult) per MergeRequest.
pub fn merge_response(items: &[MergeItem]) -> String {
    let list = |tag: &str, ids: &[String]| -> String {
        ids.iter()
            .map(|i| format!("<{tag}>{}</{tag}>", escape(i.as_str())))
            .collect()
    };
    let results: String = items
        .iter()
        .map(|r| {
            format!(
                "<result>{}{}{}<success>{}</success>{}</result>",
                errors_xml(&r.errors),
                id_xml(r.id.as_deref()),
                list("mergedRecordIds", &r.merged_ids),
                r.errors.is_empty(),
                list("updatedRelatedIds", &r.updated_related_ids)
            )
        })
        .collect();
    data_response("merge", &results)
}

/// The envelope of every non-login fault: `faultcode`, `faultstring`, and the
/// `UnexpectedErrorFault` detail with the exception code and message (all already escaped).
fn unexpected_error_fault(faultcode: &str, faultstring: &str, code: &str, m: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>{faultcode}</faultcode>",
            "<faultstring>{faultstring}</faultstring>",
            r#"<detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault"><sf:exceptionCode>{code}</sf:exceptionCode>"#,
            "<sf:exceptionMessage>{m}</sf:exceptionMessage></sf:UnexpectedErrorFault></detail>",
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
        faultcode = faultcode,
        faultstring = faultstring,
        code = code,
        m = m
    )
}

/// A call-level fault with Salesforce's exception code (`sf:REQUEST_LIMIT_EXCEEDED`, ...),
/// sent with HTTP 500.
pub fn api_fault(exception_code: &str, message: &str) -> String {
    let code = escape(exception_code);
    let m = escape(message);
    unexpected_error_fault(&format!("sf:{code}"), &format!("{code}: {m}"), &code, &m)
}

/// The INVALID_SESSION_ID fault of a call whose SessionHeader names no live session (sent
/// with HTTP 500).
pub fn invalid_session_fault() -> String {
    api_fault(
        "INVALID_SESSION_ID",
        "Invalid Session ID found in SessionHeader: Illegal Session",
    )
}

/// A generic SOAP client fault (`soapenv:Client`), for requests that cannot be read, with
/// Salesforce's exception code (e.g. `INVALID_REQUEST` or `UNKNOWN_EXCEPTION`).
pub fn client_fault(exception_code: &str, message: &str) -> String {
    let code = escape(exception_code);
    let m = escape(message);
    unexpected_error_fault("soapenv:Client", &m, &code, &m)
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
    fn parses_undelete_and_merge_as_jsforce_and_the_docs_send_them() {
        // jsforce 3.10.16 conn.soap.undelete(ids)
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Header xmlns="urn:partner.soap.sforce.com"><SessionHeader><sessionId>00D!tok</sessionId></SessionHeader></soapenv:Header><soapenv:Body xmlns="urn:partner.soap.sforce.com"><undelete xmlns="urn:partner.soap.sforce.com" xmlns:ns1="sobject.partner.soap.sforce.com"><ns1:ids>001A</ns1:ids><ns1:ids> 001B </ns1:ids></undelete></soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(
            parse_request(xml),
            Ok(SoapRequest::Undelete {
                session_id: Some("00D!tok".into()),
                ids: vec!["001A".into(), "001B".into()]
            })
        );
        let merge = r#"<e:Envelope xmlns:e="x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><e:Header><SessionHeader><sessionId>s</sessionId></SessionHeader></e:Header><e:Body><merge><request><masterRecord><type>Account</type><Id>001M</Id><Phone>555</Phone><Fax xsi:nil="true"/><fieldsToNull>Website</fieldsToNull></masterRecord><recordToMergeIds>001L</recordToMergeIds></request><mergeRequests><masterRecord><type>Account</type><Id>001N</Id></masterRecord><recordToMergeIds>001P</recordToMergeIds><recordToMergeIds>001Q</recordToMergeIds></mergeRequests></merge></e:Body></e:Envelope>"#;
        let Ok(SoapRequest::Merge {
            session_id,
            requests,
        }) = parse_request(merge)
        else {
            panic!("merge not parsed");
        };
        assert_eq!(session_id.as_deref(), Some("s"));
        assert_eq!(
            requests[0],
            MergeRequestXml {
                object: "Account".into(),
                master_id: "001M".into(),
                master_fields: vec![
                    ("Phone".into(), Some("555".into())),
                    ("Fax".into(), None),
                    ("Website".into(), None)
                ],
                loser_ids: vec!["001L".into()],
            }
        );
        assert_eq!(requests[1].loser_ids, vec!["001P", "001Q"]);
        let no_master =
            r#"<e:Envelope xmlns:e="x"><e:Body><merge><request/></merge></e:Body></e:Envelope>"#;
        assert_eq!(
            parse_request(no_master),
            Err(SoapError::Missing("masterRecord"))
        );
    }

    #[test]
    fn writes_undelete_and_merge_results() {
        let xml = undelete_response(&[
            UndeleteItem {
                id: Some("001A".into()),
                errors: vec![],
            },
            UndeleteItem {
                id: None,
                errors: vec![ItemError::new("MALFORMED_ID", "bad <id>", vec![])],
            },
        ]);
        assert!(xml.contains("<undeleteResponse><result><id>001A</id><success>true</success></result><result><errors><message>bad &lt;id&gt;</message><statusCode>MALFORMED_ID</statusCode></errors><id xsi:nil=\"true\"/><success>false</success></result></undeleteResponse>"), "{xml}");
        let xml = merge_response(&[MergeItem {
            id: Some("001M".into()),
            merged_ids: vec!["001L".into()],
            updated_related_ids: vec!["006O".into()],
            errors: vec![],
        }]);
        assert!(xml.contains("<result><id>001M</id><mergedRecordIds>001L</mergedRecordIds><success>true</success><updatedRelatedIds>006O</updatedRelatedIds></result>"), "{xml}");
        assert!(
            api_fault("REQUEST_LIMIT_EXCEEDED", "x")
                .contains("<faultcode>sf:REQUEST_LIMIT_EXCEEDED</faultcode>")
        );
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
