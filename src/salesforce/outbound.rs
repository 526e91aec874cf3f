//! Outbound Messaging: reading the SOAP `notifications` message Salesforce POSTs to the push
//! listener, and the envelopes the listener answers with (`Ack`, or a SOAP fault).
//!
//! Pure functions, no I/O: the listener (issue 6) checks the shared secret and the body size,
//! calls [`parse_notifications`], checks `organization_id` against the org it logged in to,
//! stores the record ids in the inbox, and only then answers [`ack_envelope`]. A notification's
//! field values may be stale or partial, so orgsync keeps only the ids and refetches records;
//! the values are parsed anyway (as text) for logs and diagnostics.
//!
//! Hostile input: a DOCTYPE is refused (no entity tricks), more than 100 notifications is
//! refused (Salesforce never sends more), every record id must look like one, and nothing here
//! panics on malformed XML. Reference: salesforce-api.md §7.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};

/// Salesforce sends at most this many notifications in one message.
pub const MAX_NOTIFICATIONS: usize = 100;

/// One parsed outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The sending org (`00D…`); must match the org the listener expects.
    pub organization_id: String,
    /// The outbound message action (`04k…`), when given.
    pub action_id: Option<String>,
    pub notifications: Vec<Notification>,
}

/// One notification: a record that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notification's own id (`04l…`): Salesforce resends a message with the same ids, so
    /// this is the deduplication key.
    pub id: String,
    /// The object, from the `sObject`'s `xsi:type` (`sf:Opportunity` -> `Opportunity`).
    pub object: String,
    /// The record's id.
    pub record_id: String,
    /// The other fields sent, as text; `None` for `xsi:nil="true"`.
    pub fields: BTreeMap<String, Option<String>>,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("the body is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the body is not an Outbound Messaging notifications message")]
    NotANotification,
    #[error("a DOCTYPE is not allowed in an outbound message")]
    Doctype,
    #[error("the message has no OrganizationId")]
    NoOrganizationId,
    #[error("the message has {0} notifications, more than the 100 Salesforce sends")]
    TooMany(usize),
    #[error("notification {index} is incomplete: {what}")]
    Incomplete { index: usize, what: String },
}

fn is_id(s: &str, prefix: Option<&str>) -> bool {
    matches!(s.len(), 15 | 18)
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
        && prefix.is_none_or(|p| s.starts_with(p))
}

/// The value of the `xsi:type` attribute (any prefix), without its namespace prefix.
fn xsi_type(e: &BytesStart<'_>) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        let key = a.key.local_name();
        if key.as_ref() != "type" {
            return None;
        }
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .ok()?
            .to_string();
        Some(value.rsplit(':').next().unwrap_or(&value).to_string())
    })
}

/// True when the element carries `xsi:nil="true"`.
fn is_nil(e: &BytesStart<'_>) -> bool {
    e.attributes().flatten().any(|a| {
        a.key.local_name().as_ref() == "nil"
            && a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .is_ok_and(|v| v.as_ref() == "true")
    })
}

#[derive(Default)]
struct Partial {
    id: Option<String>,
    object: Option<String>,
    record_id: Option<String>,
    fields: BTreeMap<String, Option<String>>,
}

/// Parses a notifications message.
pub fn parse_notifications(xml: &str) -> Result<OutboundMessage, OutboundError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut seen_notifications = false;
    let mut organization_id: Option<String> = None;
    let mut action_id: Option<String> = None;
    let mut notifications: Vec<Notification> = Vec::new();
    let mut current: Option<Partial> = None;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| OutboundError::Malformed(e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(OutboundError::Doctype),
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                let parent = stack.last().map(String::as_str);
                match (parent, name.as_str()) {
                    (_, "notifications") => seen_notifications = true,
                    (Some("notifications"), "Notification") => {
                        if notifications.len() >= MAX_NOTIFICATIONS {
                            return Err(OutboundError::TooMany(notifications.len() + 1));
                        }
                        current = Some(Partial::default());
                    }
                    (Some("Notification"), "sObject") => {
                        if let Some(p) = current.as_mut() {
                            p.object = xsi_type(&e);
                        }
                    }
                    _ => {}
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if stack.last().map(String::as_str) == Some("sObject")
                    && let Some(p) = current.as_mut()
                {
                    let value = if is_nil(&e) {
                        None
                    } else {
                        Some(String::new())
                    };
                    p.fields.insert(name, value);
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    text.push_str(s);
                } else {
                    return Err(OutboundError::Malformed(format!(
                        "unknown entity &{};",
                        &*r
                    )));
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str);
                let value = text.trim().to_string();
                text.clear();
                match (parent, name.as_str()) {
                    (Some("notifications"), "OrganizationId") => {
                        organization_id = Some(value);
                    }
                    (Some("notifications"), "ActionId") => {
                        action_id = Some(value).filter(|v| !v.is_empty());
                    }
                    (Some("Notification"), "Id") => {
                        if let Some(p) = current.as_mut() {
                            p.id = Some(value);
                        }
                    }
                    (Some("sObject"), field) => {
                        if let Some(p) = current.as_mut() {
                            if field == "Id" {
                                p.record_id = Some(value);
                            } else {
                                p.fields.insert(field.to_string(), Some(value));
                            }
                        }
                    }
                    (Some("notifications"), "Notification") => {
                        let index = notifications.len();
                        let p = current.take().unwrap_or_default();
                        notifications.push(finish(index, p)?);
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_notifications {
        return Err(OutboundError::NotANotification);
    }
    let organization_id = organization_id
        .filter(|id| is_id(id, Some("00D")))
        .ok_or(OutboundError::NoOrganizationId)?;
    Ok(OutboundMessage {
        organization_id,
        action_id,
        notifications,
    })
}

fn finish(index: usize, p: Partial) -> Result<Notification, OutboundError> {
    let incomplete = |what: &str| OutboundError::Incomplete {
        index,
        what: what.to_string(),
    };
    let id =
        p.id.filter(|id| is_id(id, None))
            .ok_or_else(|| incomplete("no valid notification Id"))?;
    let object = p
        .object
        .filter(|o| crate::salesforce::soql::is_field_path(o) && !o.contains('.'))
        .ok_or_else(|| incomplete("no sObject type"))?;
    let record_id = p
        .record_id
        .filter(|id| is_id(id, None))
        .ok_or_else(|| incomplete("no valid record Id"))?;
    Ok(Notification {
        id,
        object,
        record_id,
        fields: p.fields,
    })
}

/// The reply that tells Salesforce the message was received (`ack = true`) or not.
pub fn ack_envelope(ack: bool) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            "<soapenv:Body>",
            r#"<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
            "<Ack>{}</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
        ),
        ack
    )
}

/// A SOAP fault reply (Salesforce keeps the message and retries it later). `client` is true
/// when the message itself is at fault (`soapenv:Client`), false for our own trouble
/// (`soapenv:Server`).
pub fn fault_envelope(client: bool, message: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>soapenv:{}</faultcode>",
            "<faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
        if client { "Client" } else { "Server" },
        quick_xml::escape::escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>00D90000000gNcmEAE</OrganizationId><ActionId>04k90000000PGrlAAG</ActionId>
  <SessionId xsi:nil="true"/>
  <EnterpriseUrl>https://na1.salesforce.com/services/Soap/c/41.0/00D90000000gNcm</EnterpriseUrl>
  <PartnerUrl>https://na1.salesforce.com/services/Soap/u/41.0/00D90000000gNcm</PartnerUrl>
  <Notification><Id>04l9000001olR84AAE</Id>
   <sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Opportunity">
    <sf:Id>006900000062Wt9AAE</sf:Id><sf:Amount>50000.0</sf:Amount><sf:StageName>Closed Won</sf:StageName>
    <sf:Name>O&apos;Brien &amp; Co</sf:Name><sf:Description xsi:nil="true"/></sObject>
  </Notification>
  <Notification><Id>04l9000001olR85AAE</Id>
   <sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Opportunity">
    <sf:Id>006900000062WtAAAU</sf:Id></sObject>
  </Notification></notifications></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn the_reference_message() {
        let m = parse_notifications(SAMPLE).unwrap();
        assert_eq!(m.organization_id, "00D90000000gNcmEAE");
        assert_eq!(m.action_id.as_deref(), Some("04k90000000PGrlAAG"));
        assert_eq!(m.notifications.len(), 2);
        let n = &m.notifications[0];
        assert_eq!(n.id, "04l9000001olR84AAE");
        assert_eq!(n.object, "Opportunity");
        assert_eq!(n.record_id, "006900000062Wt9AAE");
        assert_eq!(n.fields["Amount"].as_deref(), Some("50000.0"));
        assert_eq!(n.fields["Name"].as_deref(), Some("O'Brien & Co"));
        assert_eq!(n.fields["Description"], None);
        assert_eq!(m.notifications[1].record_id, "006900000062WtAAAU");
    }

    #[test]
    fn bad_messages_are_refused() {
        assert!(matches!(
            parse_notifications("<not xml"),
            Err(OutboundError::Malformed(_) | OutboundError::NotANotification)
        ));
        assert_eq!(
            parse_notifications("<a><b/></a>"),
            Err(OutboundError::NotANotification)
        );
        let doctype = format!(
            "<!DOCTYPE x [<!ENTITY e \"boom\">]>{}",
            SAMPLE.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        );
        assert_eq!(parse_notifications(&doctype), Err(OutboundError::Doctype));
        let no_org = SAMPLE.replace("<OrganizationId>00D90000000gNcmEAE</OrganizationId>", "");
        assert_eq!(
            parse_notifications(&no_org),
            Err(OutboundError::NoOrganizationId)
        );
        let bad_id = SAMPLE.replace("006900000062Wt9AAE", "006' OR 1=1");
        assert!(matches!(
            parse_notifications(&bad_id),
            Err(OutboundError::Incomplete { index: 0, .. })
        ));
        let mismatched = SAMPLE.replace("</Notification></notifications>", "</notifications>");
        assert!(matches!(
            parse_notifications(&mismatched),
            Err(OutboundError::Malformed(_))
        ));
    }

    #[test]
    fn more_than_one_hundred_notifications_is_refused() {
        let one = r#"<Notification><Id>04l9000001olR84AAE</Id><sObject xmlns:sf="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="sf:Opportunity"><sf:Id>006900000062Wt9AAE</sf:Id></sObject></Notification>"#;
        let message = |n: usize| {
            format!(
                r#"<notifications><OrganizationId>00D90000000gNcmEAE</OrganizationId>{}</notifications>"#,
                one.repeat(n)
            )
        };
        assert_eq!(
            parse_notifications(&message(100))
                .unwrap()
                .notifications
                .len(),
            100
        );
        assert_eq!(
            parse_notifications(&message(101)),
            Err(OutboundError::TooMany(101))
        );
    }

    #[test]
    fn replies() {
        let ack = ack_envelope(true);
        assert!(ack.contains("<Ack>true</Ack>"));
        assert!(ack.contains("http://soap.sforce.com/2005/09/outbound"));
        let fault = fault_envelope(true, "bad <secret>");
        assert!(fault.contains("<faultcode>soapenv:Client</faultcode>"));
        assert!(fault.contains("bad &lt;secret&gt;"));
        assert!(fault_envelope(false, "x").contains("soapenv:Server"));
    }
}
