//! The Partner API (SOAP) `undelete` call, which REST lacks, and the little SOAP it needs: the
//! request envelope (the session in `SessionHeader`, `client=orgsync` in `CallOptions`), the
//! reply's `UndeleteResult`s, and a fault turned into the client's usual [`SalesforceError`]
//! with the fault's `exceptionCode`, so the client's gates, retries and re-login treat a SOAP
//! call like every other (an `INVALID_SESSION_ID` fault logs in again, a
//! `REQUEST_LIMIT_EXCEEDED` fault pauses the org).
//!
//! Shapes (SOAP API Developer Guide, `undelete()` and `UndeleteResult`,
//! developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_undelete.htm): at
//! most 200 ids a call; one `result` per id, in order, with `id`, `success` and, on failure,
//! `errors` (`statusCode`, `message`, `fields`). A record no longer in the recycle bin (purged,
//! hard-deleted, or not deleted at all) fails with `UNDELETE_FAILED` ("Entity is not in the
//! recycle bin", Salesforce Help article 000386040); sfsim answers the same, and
//! `INVALID_CROSS_REFERENCE_KEY` for an id it never had.
//!
//! Parsing is strict: a reply that is not an `undeleteResponse` with exactly one well-formed
//! `result` per id is a `BAD_RESPONSE` error, never a guess.

use quick_xml::events::Event;

use super::client::{ApiRequest, Client, Target};
use super::error::{ErrorClass, SalesforceError, classify};
use super::usage::CallKind;

/// At most this many ids per `undelete` call (as for every Partner DML call).
pub const UNDELETE_LIMIT: usize = 200;

/// One error of an [`UndeleteResult`] (a Partner `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeleteError {
    /// `statusCode`, e.g. `UNDELETE_FAILED`, `ENTITY_IS_DELETED`.
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

/// The outcome of one id of an `undelete` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeleteResult {
    /// The record's id (absent on some failures, e.g. a malformed id).
    pub id: Option<String>,
    pub success: bool,
    pub errors: Vec<UndeleteError>,
}

impl UndeleteResult {
    /// The first error's code, if the undelete failed.
    pub fn code(&self) -> Option<&str> {
        if self.success {
            return None;
        }
        Some(
            self.errors
                .first()
                .map_or("UNKNOWN_ERROR", |e| e.status_code.as_str()),
        )
    }
}

impl Client {
    /// SOAP `undelete` of `ids` (at most [`UNDELETE_LIMIT`]): one result per id, in order.
    /// One API call (counted as `other`); not repeated after an unknown outcome, although an
    /// undelete repeated is harmless (the second one fails with `UNDELETE_FAILED`).
    pub async fn undelete(&self, ids: &[String]) -> Result<Vec<UndeleteResult>, SalesforceError> {
        let org = self.org_name();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > UNDELETE_LIMIT {
            return Err(SalesforceError::client(
                org,
                "EXCEEDED_ID_LIMIT",
                format!(
                    "{} ids in one undelete call, over Salesforce's {UNDELETE_LIMIT}",
                    ids.len()
                ),
                ErrorClass::Permanent,
            ));
        }
        let operation = undelete_operation(ids);
        let req = ApiRequest {
            idempotent: true,
            method: reqwest::Method::POST,
            ..ApiRequest::get(CallKind::Other, Target::Soap(&operation))
        };
        let body = self.send(&req).await?;
        let results = parse_undelete_reply(&body).map_err(|e| bad_response(org, e))?;
        if results.len() != ids.len() {
            return Err(bad_response(
                org,
                format!(
                    "the undelete reply has {} results for {} ids",
                    results.len(),
                    ids.len()
                ),
            ));
        }
        Ok(results)
    }
}

fn bad_response(org: &str, detail: String) -> SalesforceError {
    SalesforceError::client(
        org,
        "BAD_RESPONSE",
        format!("unexpected undelete reply: {detail}"),
        ErrorClass::Transient,
    )
}

/// The Body's `<undelete>` element for `ids`.
fn undelete_operation(ids: &[String]) -> String {
    let ids: String = ids
        .iter()
        .map(|id| {
            format!(
                "<urn:ids>{}</urn:ids>",
                quick_xml::escape::escape(id.as_str())
            )
        })
        .collect();
    format!("<urn:undelete>{ids}</urn:undelete>")
}

/// A Partner API request envelope around `operation` (an element with the `urn:` prefix),
/// with the session and `CallOptions client=orgsync`.
pub(crate) fn soap_envelope(session_id: &str, operation: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
            r#"xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header>"#,
            "<urn:SessionHeader><urn:sessionId>{}</urn:sessionId></urn:SessionHeader>",
            "<urn:CallOptions><urn:client>orgsync</urn:client></urn:CallOptions>",
            "</soapenv:Header><soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
        ),
        quick_xml::escape::escape(session_id),
        operation
    )
}

/// A parsed XML element: local name, text, children.
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    nil: bool,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

fn element(e: &quick_xml::events::BytesStart<'_>) -> Node {
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

/// Parses an XML document into its root element (namespaces dropped: local names only).
fn parse_tree(xml: &str) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => stack.push(element(&e)),
            Ok(Event::Empty(e)) => {
                let node = element(&e);
                if let Some(top) = stack.last_mut() {
                    top.children.push(node);
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(top) = stack.last_mut() {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        top.text.push(c);
                    } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                        top.text.push_str(s);
                    }
                }
            }
            Ok(Event::End(_)) => {
                let node = stack.pop().ok_or("unbalanced XML")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Err("unbalanced XML".into()),
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("not valid XML: {e}")),
        }
    }
    if stack.len() != 1 {
        return Err("the XML ends inside an element".into());
    }
    let mut root = stack.pop().ok_or("empty XML")?;
    match root.children.len() {
        1 => Ok(root.children.remove(0)),
        0 => Err("empty XML".into()),
        _ => Err("more than one root element".into()),
    }
}

/// Parses an `undeleteResponse` envelope into its results, in order.
pub fn parse_undelete_reply(xml: &str) -> Result<Vec<UndeleteResult>, String> {
    let root = parse_tree(xml)?;
    if root.name != "Envelope" {
        return Err(format!("the root element is {}, not Envelope", root.name));
    }
    let body = root.child("Body").ok_or("no soapenv:Body")?;
    let response = body
        .child("undeleteResponse")
        .ok_or("no undeleteResponse in the Body")?;
    response
        .all("result")
        .enumerate()
        .map(|(i, r)| undelete_result(r).map_err(|e| format!("result {}: {e}", i + 1)))
        .collect()
}

fn undelete_result(r: &Node) -> Result<UndeleteResult, String> {
    let success = match r.child("success").map(|s| s.text.trim()) {
        Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(format!("success is {other:?}, not true or false")),
        None => return Err("no success element".into()),
    };
    let id = r
        .child("id")
        .filter(|n| !n.nil)
        .map(|n| n.text.trim().to_string())
        .filter(|s| !s.is_empty());
    let errors: Vec<UndeleteError> = r
        .all("errors")
        .map(|e| {
            let status_code = e
                .child("statusCode")
                .map(|c| c.text.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or("an error without a statusCode")?;
            Ok(UndeleteError {
                status_code,
                message: e
                    .child("message")
                    .map(|m| m.text.trim().to_string())
                    .unwrap_or_default(),
                fields: e.all("fields").map(|f| f.text.trim().to_string()).collect(),
            })
        })
        .collect::<Result<_, String>>()?;
    if success && id.is_none() {
        return Err("a success without an id".into());
    }
    if !success && errors.is_empty() {
        return Err("a failure without errors".into());
    }
    Ok(UndeleteResult {
        id,
        success,
        errors,
    })
}

/// The error of a SOAP call's non-2xx reply: a `soapenv:Fault`'s `exceptionCode` (or its
/// `faultcode` without the `sf:` prefix) and message, classed as a REST error of that code
/// would be (`INVALID_SESSION_ID` expired, `REQUEST_LIMIT_EXCEEDED` a limit, ...). Salesforce
/// sends every fault with HTTP 500, so the status does not make a fault transient; a reply
/// that is not a fault (a proxy's 503 page) is classed by its status as REST replies are.
pub fn soap_fault_error(org: &str, status: u16, body: &str) -> SalesforceError {
    let Some((code, message)) = parse_fault(body) else {
        return SalesforceError::from_rest_reply(org, status, body);
    };
    let class = match classify(400, &code) {
        // A server-side fault with no code of its own may pass if tried again.
        ErrorClass::Permanent if code == "Server" => ErrorClass::Transient,
        class => class,
    };
    SalesforceError {
        org: org.to_string(),
        status: Some(status),
        code,
        message,
        class,
    }
}

/// `(code, message)` of a `soapenv:Fault`, `None` when the body holds none.
fn parse_fault(body: &str) -> Option<(String, String)> {
    let root = parse_tree(body).ok()?;
    let fault = root.find("Fault")?;
    let detail_code = fault
        .find("exceptionCode")
        .map(|n| n.text.trim().to_string());
    let faultcode = fault.child("faultcode").map(|n| {
        let text = n.text.trim();
        text.rsplit(':').next().unwrap_or(text).to_string()
    });
    let code = detail_code
        .filter(|c| !c.is_empty())
        .or(faultcode)
        .filter(|c| !c.is_empty())?;
    let message = fault
        .find("exceptionMessage")
        .or_else(|| fault.child("faultstring"))
        .map(|n| n.text.trim().to_string())
        .unwrap_or_default();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_AND_PURGED: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><undeleteResponse><result><id>006000000000001AAA</id><success>true</success></result><result><errors><message>Entity is not in the recycle bin</message><statusCode>UNDELETE_FAILED</statusCode></errors><id>006000000000002AAA</id><success>false</success></result><result><errors><fields>Id</fields><message>malformed id 0x</message><statusCode>MALFORMED_ID</statusCode></errors><id xsi:nil="true"/><success>false</success></result></undeleteResponse></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn parses_successes_and_failures_in_order() {
        let results = parse_undelete_reply(OK_AND_PURGED).unwrap();
        assert_eq!(results.len(), 3);
        assert!(results[0].success);
        assert_eq!(results[0].id.as_deref(), Some("006000000000001AAA"));
        assert_eq!(results[0].code(), None);
        assert_eq!(results[1].code(), Some("UNDELETE_FAILED"));
        assert_eq!(
            results[1].errors[0].message,
            "Entity is not in the recycle bin"
        );
        assert_eq!(results[2].id, None, "xsi:nil id");
        assert_eq!(results[2].code(), Some("MALFORMED_ID"));
        assert_eq!(results[2].errors[0].fields, vec!["Id".to_string()]);
    }

    #[test]
    fn malformed_replies_are_errors_not_guesses() {
        let wrap = |inner: &str| {
            format!(
                r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"#
            )
        };
        for (bad, why) in [
            ("not xml <".to_string(), "not XML"),
            ("<Other/>".to_string(), "not an envelope"),
            (wrap("<deleteResponse/>"), "another operation"),
            (
                wrap("<undeleteResponse><result><id>1</id></result></undeleteResponse>"),
                "no success",
            ),
            (
                wrap(
                    "<undeleteResponse><result><id>1</id><success>yes</success></result></undeleteResponse>",
                ),
                "success not a boolean",
            ),
            (
                wrap(
                    "<undeleteResponse><result><success>true</success></result></undeleteResponse>",
                ),
                "success without id",
            ),
            (
                wrap(
                    "<undeleteResponse><result><id>1</id><success>false</success></result></undeleteResponse>",
                ),
                "failure without errors",
            ),
            (
                wrap(
                    "<undeleteResponse><result><errors><message>m</message></errors><success>false</success></result></undeleteResponse>",
                ),
                "error without statusCode",
            ),
        ] {
            assert!(parse_undelete_reply(&bad).is_err(), "{why}: {bad}");
        }
    }

    const FAULT: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:CODE</faultcode><faultstring>CODE: the message</faultstring><detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault"><sf:exceptionCode>CODE</sf:exceptionCode><sf:exceptionMessage>the message</sf:exceptionMessage></sf:UnexpectedErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn a_fault_is_the_usual_error_with_its_code_and_class() {
        let fault = |code: &str| FAULT.replace("CODE", code);
        let expired = soap_fault_error("b", 500, &fault("INVALID_SESSION_ID"));
        assert_eq!(expired.code, "INVALID_SESSION_ID");
        assert_eq!(expired.message, "the message");
        assert_eq!(expired.status, Some(500));
        assert!(expired.is_session_expired());
        assert!(soap_fault_error("b", 500, &fault("REQUEST_LIMIT_EXCEEDED")).is_limit_exceeded());
        let limit = soap_fault_error("b", 500, &fault("EXCEEDED_ID_LIMIT"));
        assert_eq!(
            limit.class,
            ErrorClass::Permanent,
            "a fault's 500 is not transient"
        );
        // A fault with only a faultcode.
        let bare = r#"<Envelope><Body><Fault><faultcode>soapenv:Server</faultcode><faultstring>oops</faultstring></Fault></Body></Envelope>"#;
        let server = soap_fault_error("b", 500, bare);
        assert_eq!(
            (server.code.as_str(), server.message.as_str()),
            ("Server", "oops")
        );
        assert!(server.is_retryable());
        // Not a fault at all: classed by status, as a REST reply.
        let proxy = soap_fault_error("b", 503, "<html>busy</html>");
        assert!(proxy.is_retryable());
        assert_eq!(proxy.status, Some(503));
    }

    #[test]
    fn the_envelope_carries_the_session_and_escapes_ids() {
        let xml = soap_envelope("00D!se<ss>", &undelete_operation(&["a&b".to_string()]));
        assert!(xml.contains("<urn:sessionId>00D!se&lt;ss&gt;</urn:sessionId>"));
        assert!(xml.contains("<urn:undelete><urn:ids>a&amp;b</urn:ids></urn:undelete>"));
        assert!(xml.contains("<urn:client>orgsync</urn:client>"));
        assert!(parse_tree(&xml).is_ok());
    }
}
