//! Partner API (SOAP) data calls, for what REST has no verb for: `undelete` (restore records
//! from the recycle bin). The call goes through the client's one request loop (session,
//! retries, one re-login on `INVALID_SESSION_ID`, the limit gate) as [`Target::Soap`]: this
//! file writes the envelope (the session in `Header/SessionHeader/sessionId`, as for every
//! Partner call after login) and reads the reply and its faults.
//!
//! Shapes, from the SOAP API Developer Guide (`undelete()`, `UndeleteResult`,
//! developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_undelete.htm):
//! `<undelete><ids>ID</ids>...</undelete>` in the partner namespace, at most 200 ids; the
//! reply's `undeleteResponse` holds one `result` (`errors`, `id`, `success`) per id, in order;
//! a call-level fault is HTTP 500 with `faultcode` `sf:CODE` and the `UnexpectedErrorFault`
//! detail's `exceptionCode`/`exceptionMessage`.

use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::client::{ApiRequest, Client, Target};
use super::collections::{COLLECTION_LIMIT, ItemError, ItemResult, RecordFailure, Saved};
use super::error::{ErrorClass, SalesforceError, classify};
use super::usage::CallKind;

/// The whole request envelope of a Partner data call: the session header and `body`.
pub(crate) fn envelope(session_id: &str, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">"#,
            "<soapenv:Header><SessionHeader><sessionId>{session}</sessionId></SessionHeader></soapenv:Header>",
            "<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
        ),
        session = escape(session_id),
        body = body
    )
}

/// The Body of an `undelete` call.
fn undelete_body(ids: &[String]) -> String {
    let ids: String = ids
        .iter()
        .map(|id| format!("<ids>{}</ids>", escape(id.as_str())))
        .collect();
    format!("<undelete>{ids}</undelete>")
}

/// A small walk over an XML document: `on_start` at each element's start with the path of
/// local names down to it, `on_end` at its end with the path and its text.
fn walk(
    xml: &str,
    mut on_start: impl FnMut(&[String]),
    mut on_end: impl FnMut(&[String], &str),
) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                stack.push(e.local_name().as_ref().to_string());
                on_start(&stack);
                text.clear();
            }
            Ok(Event::Empty(e)) => {
                stack.push(e.local_name().as_ref().to_string());
                on_start(&stack);
                on_end(&stack, "");
                stack.pop();
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
                on_end(&stack, text.trim());
                stack.pop();
                text.clear();
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("the SOAP reply is not valid XML: {e}")),
        }
    }
}

/// The error of a non-2xx SOAP reply: the fault's exception code and message (the code
/// classed as a REST error of the same code; a fault that is not a known transient code is
/// permanent, though SOAP faults all come with HTTP 500), or the REST reading of a body that
/// is not a fault (a proxy's 503).
pub(crate) fn fault_error(org: &str, status: u16, body: &str) -> SalesforceError {
    let mut code: Option<String> = None;
    let mut message: Option<String> = None;
    let mut faultcode: Option<String> = None;
    let mut faultstring: Option<String> = None;
    let parsed = walk(
        body,
        |_| {},
        |path, text| match path.last().map(String::as_str) {
            Some("exceptionCode") => code = Some(text.to_string()),
            Some("exceptionMessage") => message = Some(text.to_string()),
            Some("faultcode") => faultcode = Some(text.to_string()),
            Some("faultstring") => faultstring = Some(text.to_string()),
            _ => {}
        },
    );
    let code =
        code.or_else(|| faultcode.map(|c| c.rsplit(':').next().unwrap_or(c.as_str()).to_string()));
    match (parsed, code) {
        (Ok(()), Some(code)) => {
            let class = match code.as_str() {
                "UNKNOWN_EXCEPTION" | "SERVER_UNAVAILABLE" => ErrorClass::Transient,
                other => classify(400, other),
            };
            SalesforceError {
                org: org.to_string(),
                status: Some(status),
                message: message.or(faultstring).unwrap_or_default(),
                code,
                class,
            }
        }
        _ => SalesforceError::from_rest_reply(org, status, body),
    }
}

/// One `result` of an `undeleteResponse`, as read.
#[derive(Default)]
struct ResultXml {
    id: Option<String>,
    success: bool,
    errors: Vec<ItemError>,
}

/// The part of `path` below `undeleteResponse`, when inside it.
fn in_response(path: &[String]) -> Option<Vec<&str>> {
    let at = path.iter().position(|n| n == "undeleteResponse")?;
    Some(path[at + 1..].iter().map(String::as_str).collect())
}

fn no_error() -> ItemError {
    ItemError {
        status_code: String::new(),
        message: String::new(),
        fields: Vec::new(),
    }
}

/// The results of an `undeleteResponse`, in order. Pure.
fn parse_undelete_reply(xml: &str) -> Result<Vec<ItemResult>, String> {
    let results = std::cell::RefCell::new(Vec::<ResultXml>::new());
    let error = std::cell::RefCell::new(no_error());
    let mut seen = false;
    walk(
        xml,
        |path| match in_response(path).as_deref() {
            Some(["result"]) => results.borrow_mut().push(ResultXml::default()),
            Some(["result", "errors"]) => *error.borrow_mut() = no_error(),
            _ => {}
        },
        |path, text| {
            let Some(below) = in_response(path) else {
                return;
            };
            seen = true;
            let mut results = results.borrow_mut();
            let mut error = error.borrow_mut();
            match (below.as_slice(), results.last_mut()) {
                (["result", "id"], Some(r)) => r.id = (!text.is_empty()).then(|| text.to_string()),
                (["result", "success"], Some(r)) => r.success = text == "true",
                (["result", "errors", "statusCode"], _) => error.status_code = text.to_string(),
                (["result", "errors", "message"], _) => error.message = text.to_string(),
                (["result", "errors", "fields"], _) => error.fields.push(text.to_string()),
                (["result", "errors"], Some(r)) => {
                    r.errors.push(std::mem::replace(&mut *error, no_error()))
                }
                _ => {}
            }
        },
    )?;
    if !seen {
        return Err("the SOAP reply has no undeleteResponse".to_string());
    }
    Ok(results
        .into_inner()
        .into_iter()
        .map(|r| {
            if r.success {
                Ok(Saved {
                    id: r.id.unwrap_or_default(),
                    created: false,
                })
            } else {
                Err(RecordFailure { errors: r.errors })
            }
        })
        .collect())
}

impl Client {
    /// Restores records from the recycle bin (SOAP `undelete`), 200 ids a call; one result
    /// per id, in order. A record not in the recycle bin (live, or purged) fails with
    /// `UNDELETE_FAILED`. A failure of a later call fails its ids and the rest (the earlier
    /// results stand), as the collections writes do.
    pub async fn undelete(&self, ids: &[String]) -> Result<Vec<ItemResult>, SalesforceError> {
        let mut results: Vec<ItemResult> = Vec::with_capacity(ids.len());
        for (index, chunk) in ids.chunks(COLLECTION_LIMIT).enumerate() {
            let body = undelete_body(chunk);
            let mut req = ApiRequest::get(CallKind::Other, Target::Soap { body: &body });
            req.method = reqwest::Method::POST;
            let reply = match self.send(&req).await {
                Ok(reply) => reply,
                Err(err) if index == 0 => return Err(err),
                Err(err) => {
                    let failure = RecordFailure {
                        errors: vec![ItemError {
                            status_code: err.code.clone(),
                            message: format!("the undelete call failed: {}", err.message),
                            fields: Vec::new(),
                        }],
                    };
                    results.extend((results.len()..ids.len()).map(|_| Err(failure.clone())));
                    return Ok(results);
                }
            };
            let items = parse_undelete_reply(&reply).map_err(|m| {
                SalesforceError::client(self.org_name(), "BAD_RESPONSE", m, ErrorClass::Transient)
            })?;
            if items.len() != chunk.len() {
                return Err(SalesforceError::client(
                    self.org_name(),
                    "BAD_RESPONSE",
                    format!(
                        "the undelete reply has {} results for {} ids",
                        items.len(),
                        chunk.len()
                    ),
                    ErrorClass::Transient,
                ));
            }
            results.extend(items);
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_carries_the_session_and_escapes_ids() {
        let xml = envelope("00D!tok<", &undelete_body(&["006A".into(), "0<6".into()]));
        assert!(
            xml.contains("<SessionHeader><sessionId>00D!tok&lt;</sessionId></SessionHeader>"),
            "{xml}"
        );
        assert!(
            xml.contains("<soapenv:Body><undelete><ids>006A</ids><ids>0&lt;6</ids></undelete>"),
            "{xml}"
        );
    }

    #[test]
    fn undelete_results_in_order_with_their_errors() {
        // sfsim's reply, as soap_data.rs writes it (the documented UndeleteResult shape).
        let xml = concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><undeleteResponse><result><id>006A</id><success>true</success></result>",
            "<result><errors><message>Entity is not in the recycle bin</message><statusCode>UNDELETE_FAILED</statusCode></errors>",
            r#"<id xsi:nil="true"/><success>false</success></result></undeleteResponse></soapenv:Body></soapenv:Envelope>"#
        );
        let results = parse_undelete_reply(xml).unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].as_ref().unwrap().id, "006A");
        let failure = results[1].as_ref().unwrap_err();
        assert_eq!(failure.code(), "UNDELETE_FAILED");
        assert_eq!(failure.message(), "Entity is not in the recycle bin");
        assert!(parse_undelete_reply("<a/>").is_err());
    }

    #[test]
    fn faults_keep_salesforces_code_and_class() {
        let fault = concat!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: x</faultstring>",
            "<detail><sf:UnexpectedErrorFault><sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode><sf:exceptionMessage>Invalid Session ID</sf:exceptionMessage></sf:UnexpectedErrorFault></detail>",
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        );
        let e = fault_error("a", 500, fault);
        assert_eq!(e.code, "INVALID_SESSION_ID");
        assert!(e.is_session_expired());
        let limit = fault.replace("INVALID_SESSION_ID", "REQUEST_LIMIT_EXCEEDED");
        assert!(fault_error("a", 500, &limit).is_limit_exceeded());
        let other = fault.replace("INVALID_SESSION_ID", "EXCEEDED_ID_LIMIT");
        assert!(!fault_error("a", 500, &other).is_retryable());
        assert!(fault_error("a", 503, "busy").is_retryable());
    }
}
